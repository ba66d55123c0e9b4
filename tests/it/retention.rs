//! `vaten retain` on a lake of 26 months with a 24-month setting: exactly the partitions before
//! the horizon go (received readings a week earlier), the daily and yearly tables stay as they
//! were, also through a full recompute (those days are sealed); `--dry-run` changes nothing;
//! old `rejected` and `_runs` records go by their own settings. DuckDB does the reading.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use vaten::fake::FeedEntry;

use crate::common::*;
use crate::feeds::*;

/// Per table: the dates of its `date=` partitions.
fn partitions(lake: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files_below(lake) {
        let rel = f.to_string_lossy().into_owned();
        let mut parts = rel.split('/');
        let table = parts.next().unwrap().to_string();
        if let Some(d) = parts.find_map(|p| p.strip_prefix("date=")) {
            out.entry(table).or_default().insert(d.to_string());
        }
    }
    out
}

/// DuckDB: a digest of every row of the daily and yearly tables, and the earliest run.
fn summaries(lake: &Path) -> (String, String) {
    let script = format!(
        r#"
import duckdb, glob, hashlib
lake = {lake:?}
out = []
for table in ["consumption_daily", "tax_base_yearly", "cable_balance_daily"]:
    files = glob.glob(f"{{lake}}/{{table}}/**/*.parquet", recursive=True)
    rows = duckdb.read_parquet(files, hive_partitioning=True).fetchall()
    out.append(f"{{table}}:{{len(rows)}}:" + hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest())
print(" ".join(out))
print(duckdb.sql(f"SELECT min(started_at) FROM read_parquet('{{lake}}/_runs/*.parquet')").fetchall()[0][0])
"#
    );
    let run = Command::new(crate::tools::python())
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let text = String::from_utf8_lossy(&run.stdout).into_owned();
    let mut lines = text.lines();
    (
        lines.next().unwrap().to_string(),
        lines.next().unwrap().to_string(),
    )
}

#[test]
fn retention_removes_the_expected_partitions_and_keeps_the_summaries() {
    let env = Env::new(&registry(&[EAN_A, EAN_B]));
    let mut meters = [
        meter(EAN_A, "MA1", 100_000, true),
        meter(EAN_B, "MB1", 200_000, false),
    ];
    // 26 months of data, the first three days of every month (Sept 2024 to Oct 2026).
    let mut days = Vec::new();
    for (y, m) in (0..26).map(|i| (2024 + (8 + i) / 12, (8 + i) % 12 + 1)) {
        for d in 1..=3 {
            days.push(format!("{y}-{m:02}-{d:02}"));
        }
    }
    assert_eq!(days.len(), 78);
    // The first runs in September 2026 (old records by November), with a rejection.
    let (early, late): (Vec<_>, Vec<_>) = days.iter().partition(|d| d.as_str() < "2026-09-04");
    for (batch, now) in [
        (&early, "2026-09-05T10:00:00Z"),
        (&late, "2026-11-05T10:00:00Z"),
    ] {
        for date in batch.iter() {
            for m in &mut meters {
                env.server
                    .push([day(m, date), FeedEntry::interval(intervals(m, date))]);
            }
        }
        if now.starts_with("2026-09") {
            let mut future = intervals(&mut meters[0].clone(), "2026-09-03");
            future["query_date"] = "2026-12-01".into();
            env.server.push([FeedEntry::interval(future)]);
        }
        assert_ok(&env.vaten(now, &["ingest"]));
        assert_ok(&env.vaten(now, &["transform"]));
    }
    const NOW: &str = "2026-11-05T10:00:00Z";
    let lake = env.lake_dir();
    let before = partitions(&lake);
    let (summary, first_run) = summaries(&lake);
    assert!(first_run.starts_with("2026-09-05"), "{first_run}");
    assert_eq!(
        before["rejected"],
        BTreeSet::from(["2026-09-05".to_string()])
    );

    *env.extra_config.borrow_mut() =
        "[retention]\nquarter_hours_months = 24\nrejected_months = 1\nruns_months = 1\n".into();
    env.write_config("");

    // A dry run says what would go and changes nothing.
    let files_before = files_below(&lake);
    let dry = env.vaten(NOW, &["retain", "--dry-run"]);
    assert_ok(&dry);
    let said = String::from_utf8_lossy(&dry.stdout);
    assert!(
        said.contains("would remove") && said.contains("grid_readings: 6 days"),
        "{said}"
    );
    assert_eq!(files_below(&lake), files_before);

    assert_ok(&env.vaten(NOW, &["retain"]));
    let after = partitions(&lake);
    // Today 2026-11-05 less 24 months: 2024-11-05; received readings a week earlier.
    let expect = |table: &str, before_day: &str| -> BTreeSet<String> {
        before
            .get(table)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d.as_str() >= before_day)
            .collect()
    };
    for (table, cut) in [
        ("grid_readings", "2024-10-29"),
        ("installation_readings", "2024-10-29"),
        ("intervals", "2024-11-05"),
        ("cable_balance_15m", "2024-11-05"),
        ("grid_days", "0000"),
    ] {
        assert_eq!(
            after.get(table).cloned().unwrap_or_default(),
            expect(table, cut),
            "{table}"
        );
    }
    // By hand: the delivered days of September and October 2024 are the received ones gone.
    let gone: Vec<_> = before["grid_readings"]
        .difference(&after["grid_readings"])
        .cloned()
        .collect();
    assert_eq!(
        gone,
        [
            "2024-09-01",
            "2024-09-02",
            "2024-09-03",
            "2024-10-01",
            "2024-10-02",
            "2024-10-03"
        ]
    );
    assert!(before["intervals"]
        .iter()
        .any(|d| d.as_str() < "2024-11-05"));
    assert!(!after.contains_key("rejected"));
    let (summary_after, first_run) = summaries(&lake);
    assert_eq!(summary_after, summary, "daily and yearly tables unchanged");
    assert!(first_run.starts_with("2026-11-05"), "{first_run}");

    // The removal is no new data, and the sealed days survive a full recompute.
    let t = env.vaten(NOW, &["transform"]);
    assert_ok(&t);
    assert!(stderr(&t).contains("of 0 cable"), "{}", stderr(&t));
    assert_ok(&env.vaten(NOW, &["transform", "--full"]));
    assert_eq!(
        summaries(&lake).0,
        summary,
        "a full recompute leaves sealed days alone"
    );
    assert_eq!(
        partitions(&lake)["intervals"],
        expect("intervals", "2024-11-05")
    );

    // A later seal covers all of 2024, under other rates; then the rates change back. The
    // sealed year keeps its tax figures, the open one is recomputed.
    let builtin = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/tariffs/energy-tax-nl.csv"),
    )
    .unwrap();
    let changed: Vec<String> = builtin
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.splitn(6, ',').collect();
            if (l.starts_with("2024,bracket,") || l.starts_with("2025,bracket,")) && f.len() == 6 {
                f[4] = "0.50000";
            }
            f.join(",")
        })
        .collect();
    let rates = env.dir.path().join("rates.csv");
    std::fs::write(&rates, changed.join("\n") + "\n").unwrap();
    *env.extra_config.borrow_mut() =
        "[tax]\nrates = \"rates.csv\"\n[retention]\nquarter_hours_months = 12\n".into();
    env.write_config("");
    let tax = |year: i64| -> String {
        let script = format!(
            "import duckdb; print(sorted(duckdb.sql(\"SELECT ean, energy_tax_ct, net_energy_tax_ct FROM read_parquet('{}/tax_base_yearly/*.parquet') WHERE year = {year}\").fetchall()))",
            lake.display()
        );
        let run = Command::new(crate::tools::python())
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", stderr(&run));
        String::from_utf8_lossy(&run.stdout).into_owned()
    };
    let (y2024_before, y2025_before) = (tax(2024), tax(2025));
    // The seal needs the derived tables to reflect today's rates first.
    assert!(!env.vaten(NOW, &["retain"]).status.success());
    assert_ok(&env.vaten(NOW, &["transform"]));
    assert_ok(&env.vaten(NOW, &["retain"]));
    let (y2024, y2025) = (tax(2024), tax(2025));
    assert_ne!(y2024, y2024_before, "2024 was open at the rates change");
    assert_ne!(y2025, y2025_before);
    std::fs::write(&rates, &builtin).unwrap();
    assert_ok(&env.vaten(NOW, &["transform"]));
    assert_eq!(tax(2024), y2024, "a sealed year is never recomputed");
    assert_eq!(tax(2025), y2025_before, "an open year is");
}
