//! A lake written by an older version of vaten (`tests/fixtures/lake-schema-1`, lake schema
//! version 1, before the cable tables counted derived quarter-hours) still transforms: the
//! derived tables are rebuilt whole in today's schema, also when the first command asks for a
//! range of days only.

use std::path::Path;
use std::process::Command;

use crate::common::*;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_lake_of_schema_version_1_is_rebuilt_in_todays_schema() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lake-schema-1");
    copy_dir(&fixture, dir.path());
    let config = dir.path().join("vaten.toml");
    std::fs::write(
        &config,
        "lake = \"lake\"\nregistry = \"registry\"\n[grid]\nbase_url = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let vaten = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_vaten"))
            .arg("--config")
            .arg(&config)
            .args(["--now", "2026-11-22T10:00:00Z"])
            .args(args)
            .env_remove("VATEN_CONFIG")
            .output()
            .unwrap()
    };
    // A range over an old lake recomputes everything (never a mix of old and new files).
    assert_ok(&vaten(&[
        "transform",
        "--from",
        "2026-11-15",
        "--to",
        "2026-11-16",
    ]));
    let runs = vaten(&[
        "query",
        "--format",
        "csv",
        "select message from _runs where job = 'transform' order by started_at desc limit 1",
    ]);
    assert_ok(&runs);
    assert!(
        String::from_utf8_lossy(&runs.stdout).contains("full recompute"),
        "{}",
        String::from_utf8_lossy(&runs.stdout)
    );
    // pyarrow finds today's schema in every derived table (and the old received files still
    // carry theirs); DuckDB reads the new column across all files.
    let lake = dir.path().join("lake");
    let out = Command::new(crate::tools::python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/check_lake_schema.py"
        ))
        .arg(&lake)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/data-dictionary.md"
        ))
        .args([
            "grid_readings",
            "installation_readings",
            "intervals",
            "consumption_daily",
            "tax_base_yearly",
            "cable_balance_15m",
            "cable_balance_daily",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    let sum = Command::new(crate::tools::python())
        .args([
            "-c",
            &format!(
                "import duckdb; print(duckdb.sql(\"select count(*), sum(connection_quarters_derived) >= 0 from read_parquet('{}/cable_balance_daily/*/*.parquet', hive_partitioning = true)\").fetchall()[0])",
                lake.display()
            ),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&sum.stdout);
    assert!(
        sum.status.success() && text.contains("True"),
        "{text}{}",
        stderr(&sum)
    );
}
