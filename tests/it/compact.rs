//! `vaten compact`: a lake of several nightly runs becomes one file per partition (and cable,
//! for the derived tables, and months, for `consumption_daily`); DuckDB reads the same rows before and after; a reader during the
//! compaction sees the old files or the new ones, never both or neither; the next transform
//! recomputes nothing, and later data still gives what a full recompute gives.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::common::*;
use crate::feeds::*;

/// Per table (but `_runs`): the number of rows and a digest of them all, by DuckDB.
fn digests(lake: &Path) -> BTreeMap<String, String> {
    let script = format!(
        r#"
import duckdb, glob, json, hashlib
lake = {lake:?}
out = {{}}
for table in ["grid_readings", "grid_days", "installation_readings", "installation_gaps",
              "rejected", "intervals", "consumption_daily", "tax_base_yearly",
              "cable_balance_15m", "cable_balance_daily"]:
    files = glob.glob(f"{{lake}}/{{table}}/**/*.parquet", recursive=True)
    rows = duckdb.read_parquet(files, hive_partitioning=True).fetchall() if files else []
    out[table] = f"{{len(rows)}}:" + hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
print(json.dumps(out))
"#
    );
    let run = Command::new(crate::tools::python())
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    serde_json::from_slice(&run.stdout).unwrap()
}

/// Files per (folder, name prefix: the cable, and for `consumption_daily` the months) of every
/// table but `_runs`.
fn groups(lake: &Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for f in files_below(lake) {
        let rel = f.to_string_lossy().into_owned();
        if !rel.ends_with(".parquet") || rel.starts_with("_") {
            continue;
        }
        let prefix = vaten::lake::name_prefix(&f);
        let key = format!("{}/{prefix}", f.parent().unwrap().display());
        *out.entry(key).or_default() += 1;
    }
    out
}

#[test]
fn compaction_leaves_one_file_per_partition_and_the_same_rows() {
    // Two cables: the derived tables keep a file per cable in each partition.
    let reg = registry(&[EAN_A, EAN_B, EAN_C, EAN_D]);
    let mut cables = reg.cables.clone();
    let mut k2 = cables["K1"].clone();
    k2.cable_id = "K2".into();
    cables.insert("K2".into(), k2);
    let mut conns = reg.connections.clone();
    for c in &mut conns[2..] {
        c.cable_id = "K2".into();
    }
    let env = Env::new(&vaten::registry::Registry::new(conns, cables));
    let mut meters = [
        meter(EAN_A, "MA1", 100_000, true),
        meter(EAN_B, "MB1", 200_000, true),
        meter(EAN_C, "MC1", 300_000, false),
        meter(EAN_D, "MD1", 400_000, false),
    ];
    // Three nightly runs, one day's meters split over two of them.
    let nights = [
        (
            "2026-10-25T10:00:00Z",
            vec![(0, "2026-10-24"), (1, "2026-10-24")],
        ),
        (
            "2026-10-26T10:00:00Z",
            vec![
                (2, "2026-10-24"),
                (3, "2026-10-24"),
                (0, "2026-10-25"),
                (1, "2026-10-25"),
            ],
        ),
        (
            "2026-10-27T10:00:00Z",
            vec![(2, "2026-10-25"), (3, "2026-10-25"), (0, "2026-10-26")],
        ),
    ];
    for (now, deliveries) in &nights {
        for (m, date) in deliveries {
            let m = &mut meters[*m];
            env.server.push([
                day(m, date),
                vaten::fake::FeedEntry::interval(intervals(m, date)),
            ]);
        }
        assert_ok(&env.vaten(now, &["ingest"]));
        assert_ok(&env.vaten(now, &["transform"]));
    }
    let lake = env.lake_dir();
    let before = digests(&lake);
    let files_before = groups(&lake);
    assert!(
        files_before.values().any(|&n| n >= 2),
        "the nightly runs left partitions of several files: {files_before:#?}"
    );

    // A reader polling the row count throughout: always the whole table.
    let expected = before["grid_readings"]
        .split(':')
        .next()
        .unwrap()
        .to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, config) = (stop.clone(), env.config());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) || seen.is_empty() {
                let out = Command::new(env!("CARGO_BIN_EXE_vaten"))
                    .arg("--config")
                    .arg(&config)
                    .args([
                        "query",
                        "SELECT count(*) AS n FROM grid_readings",
                        "--format",
                        "csv",
                    ])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", stderr(&out));
                seen.push(
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .nth(1)
                        .unwrap_or("")
                        .to_string(),
                );
            }
            seen
        })
    };
    let run = env.vaten("2026-10-27T11:00:00Z", &["compact"]);
    assert_ok(&run);
    stop.store(true, Ordering::Relaxed);
    for n in reader.join().unwrap() {
        assert_eq!(n, expected, "a reader saw part of the lake");
    }

    assert_eq!(
        digests(&lake),
        before,
        "the same rows, as DuckDB reads them"
    );
    let files_after = groups(&lake);
    assert!(files_after.values().all(|&n| n == 1), "{files_after:#?}");
    assert!(
        files_after
            .keys()
            .any(|k| k.contains("intervals/date=2026-10-24/K1"))
            && files_after
                .keys()
                .any(|k| k.contains("intervals/date=2026-10-24/K2")),
        "{files_after:#?}"
    );
    assert_eq!(
        files_after.keys().collect::<Vec<_>>(),
        files_before.keys().collect::<Vec<_>>(),
        "every partition and cable keeps its file"
    );

    // Nothing new for the transform; later data is placed as before the compaction.
    let t = env.vaten("2026-10-27T11:00:00Z", &["transform"]);
    assert_ok(&t);
    assert!(stderr(&t).contains("of 0 cable"), "{}", stderr(&t));
    assert_eq!(digests(&lake), before);
    for m in [2, 3] {
        let m = &mut meters[m];
        env.server
            .push([vaten::fake::FeedEntry::interval(intervals(m, "2026-10-26"))]);
    }
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["ingest"]));
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["transform"]));
    let incremental = digests(&lake);
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["transform", "--full"]));
    assert_eq!(
        incremental,
        digests(&lake),
        "incremental after compaction equals full"
    );
}
