//! `vaten export --participant P`: everything the lake holds about P, for their right of
//! access. DuckDB finds P's rows in the lake with its own query; the export holds them all.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use vaten::fake::{FakeInstallations, FeedEntry};
use vaten::registry::Installation;

use crate::common::*;
use crate::feeds::*;

#[test]
fn the_export_holds_every_row_duckdb_finds_about_the_participant() {
    let fake = FakeInstallations::spawn().unwrap();
    fake.add("inst-a", EAN_A, "tok", "SDM120-A");
    fake.produce("inst-a", "2026-10-25T22:15:00Z".parse().unwrap(), 96, 1);
    let mut reg = registry(&[EAN_A, EAN_B, EAN_C]);
    reg.connections[0].installation = Some(Installation {
        id: "inst-a".into(),
        url: fake.url("inst-a"),
    });
    let env = Env::new(&reg);
    env.with_tokens(&[("inst-a", "tok")]);
    let mut meters = [
        meter(EAN_A, "MA1", 100_000, true),
        meter(EAN_B, "MB1", 200_000, true),
        meter(EAN_C, "MC1", 300_000, false),
    ];
    for m in &mut meters {
        env.server.push([
            day(m, "2026-10-26"),
            FeedEntry::interval(intervals(m, "2026-10-26")),
        ]);
    }
    // One of A's objects is refused (a day in the future): a `rejected` row naming A.
    let mut future = intervals(&mut meters[0].clone(), "2026-10-26");
    future["query_date"] = "2026-12-01".into();
    env.server.push([FeedEntry::interval(future)]);
    assert_ok(&env.vaten("2026-10-27T10:00:00Z", &["ingest"]));
    assert_ok(&env.vaten("2026-10-27T10:00:00Z", &["transform"]));
    assert_ok(&env.vaten(
        "2026-10-27T10:00:00Z",
        &["report", "yearly", "--year", "2026"],
    ));

    let out = env.dir.path().join("export-P0");
    let run = env.vaten(
        "2026-10-27T10:00:00Z",
        &[
            "export",
            "--participant",
            "P0",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_ok(&run);
    // Private: personal data.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&out), 0o700);
    for f in std::fs::read_dir(&out).unwrap() {
        assert_eq!(mode(&f.unwrap().path()), 0o600);
    }
    // DuckDB, on its own: P0's rows in the lake against the export, table by table.
    let lake = env.lake_dir();
    let script = format!(
        r#"
import duckdb, glob, os
lake, out = {lake:?}, {out:?}
ids = ["{EAN_A}", "inst-a"]
checked = 0
for table in ["grid_readings", "grid_days", "installation_readings", "rejected", "intervals",
              "consumption_daily", "tax_base_yearly", "installation_gaps", "_runs"]:
    files = glob.glob(f"{{lake}}/{{table}}/**/*.parquet", recursive=True)
    if not files:
        continue
    rel = duckdb.read_parquet(files, hive_partitioning=True, union_by_name=True)
    cols = rel.columns
    conds = [f"{{c}} IN ('{{ids[0]}}', '{{ids[1]}}')" for c in ["ean", "installation_id", "key"] if c in cols]
    conds += [f"contains({{c}}, '{{i}}')" for c in ["payload", "message", "detail"] if c in cols for i in ids]
    n = duckdb.sql(f"SELECT count(*) FROM rel WHERE {{' OR '.join(conds)}}").fetchall()[0][0]
    path = f"{{out}}/{{table}}.parquet"
    got = duckdb.sql(f"SELECT count(*) FROM read_parquet('{{path}}')").fetchall()[0][0] if os.path.exists(path) else 0
    assert n == got, f"{{table}}: lake {{n}}, export {{got}}"
    checked += n
print("rows", checked)
"#
    );
    let check = Command::new(crate::tools::python())
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{text}{}", stderr(&check));
    // A's day: 96 readings, 96 intervals, 96 production readings, a rejection and more.
    let rows: usize = text.trim().strip_prefix("rows ").unwrap().parse().unwrap();
    assert!(rows > 3 * 96, "{text}");
    // Only P0's registry line, and their statement.
    let registry = std::fs::read_to_string(out.join("registry-connections.csv")).unwrap();
    assert_eq!(registry.lines().count(), 2, "{registry}");
    assert!(registry.contains(EAN_A) && !registry.contains(EAN_B));
    assert!(out.join("statement-2026.html").is_file());
    // Nobody else's readings.
    let csv = std::fs::read_to_string(out.join("grid_readings.csv")).unwrap();
    assert!(!csv.contains(EAN_B) && !csv.contains(EAN_C));
}
