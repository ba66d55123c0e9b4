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
    // pyarrow finds today's schema in every file (the received ones migrated on opening);
    // DuckDB reads the new column across all files.
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

/// The tables `tests/lake_digest.py` compares before and after the migration: every table a
/// transform reads or writes, and the kept ones it does not.
const DIGESTED: &[&str] = &[
    "grid_readings",
    "grid_days",
    "installation_readings",
    "installation_gaps",
    "rejected",
    "intervals",
    "consumption_daily",
    "tax_base_yearly",
    "cable_balance_15m",
    "cable_balance_daily",
];

/// DuckDB's digest of every table (see `tests/lake_digest.py`).
fn digest(lake: &Path) -> serde_json::Value {
    let out = Command::new(crate::tools::python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lake_digest.py"))
        .arg(lake)
        .args(DIGESTED)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Names, sizes and modification times of the files of a table, to tell whether a command
/// rewrote them.
fn listing(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(listing(&entry.path()));
        } else {
            let meta = entry.metadata().unwrap();
            out.push((
                entry.path().display().to_string(),
                meta.len(),
                meta.modified().unwrap(),
            ));
        }
    }
    out.sort();
    out
}

/// A copy of the schema-2 fixture and a way to run vaten on it (with `fault` injected).
fn schema_2_copy() -> (
    tempfile::TempDir,
    impl Fn(&[&str], &str) -> std::process::Output,
) {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lake-schema-2");
    copy_dir(&fixture, dir.path());
    let config = dir.path().join("vaten.toml");
    std::fs::write(
        &config,
        "lake = \"lake\"\nregistry = \"registry\"\n[grid]\nbase_url = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let run = move |args: &[&str], fault: &str| {
        Command::new(env!("CARGO_BIN_EXE_vaten"))
            .arg("--config")
            .arg(&config)
            .args(["--now", "2026-11-22T10:00:00Z"])
            .args(args)
            .env_remove("VATEN_CONFIG")
            .env("VATEN_INJECT_FAULT", fault)
            .output()
            .unwrap()
    };
    (dir, run)
}

#[test]
fn a_lake_of_schema_version_2_migrates_its_received_tables_and_transforms() {
    let (dir, run) = schema_2_copy();
    let vaten = |args: &[&str]| run(args, "");
    let lake = dir.path().join("lake");
    let before = digest(&lake);
    // The fixture really is of the old layout: no file of a received reading table has run_id.
    for table in ["grid_readings", "grid_days", "installation_readings"] {
        let run = &before[format!("{table}.run_id")];
        assert_eq!(run[0], 0, "{table}: {run}");
        assert!(run[1].as_u64().unwrap() > 0, "{table} has files");
    }

    // The first writing command migrates, then recomputes every derived table.
    assert_ok(&vaten(&["transform", "--full"]));
    let runs = vaten(&[
        "query",
        "--format",
        "csv",
        "select message from _runs where job = 'transform'",
    ]);
    assert_ok(&runs);
    let text = String::from_utf8_lossy(&runs.stdout);
    // 9 + 8 + 15 files: the fixture's grid_readings, grid_days and installation_readings.
    assert!(
        text.contains(
            "migrated the lake from schema version 2 to 3: rewrote 9 files of grid_readings, \
             8 files of grid_days, 15 files of installation_readings"
        ),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(lake.join("_state/lake.json"))
            .unwrap()
            .split_whitespace()
            .collect::<String>(),
        "{\"schema_version\":\"3\"}"
    );

    // DuckDB finds every received row as it was and the rebuilt derived tables with the same
    // figures; every file of a received reading table now has run_id, null in the old rows.
    let after = digest(&lake);
    for table in DIGESTED {
        assert_eq!(after[*table], before[*table], "{table} changed");
    }
    for table in ["grid_readings", "grid_days", "installation_readings"] {
        let run = &after[format!("{table}.run_id")];
        assert_eq!(run[0], run[1], "{table}: every file has run_id: {run}");
        assert_eq!(
            run[2], after[table][0],
            "{table}: the old rows' run_id is null"
        );
    }
    // pyarrow finds today's columns in every file of every table.
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
        .args(DIGESTED)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );

    // Migrated once: the next command rewrites nothing.
    let received = listing(&lake.join("grid_readings"));
    assert_ok(&vaten(&["transform"]));
    assert_eq!(listing(&lake.join("grid_readings")), received);
    let runs = vaten(&[
        "query",
        "--format",
        "csv",
        "select count(*) as n from _runs where message like '%migrated%'",
    ]);
    assert!(
        String::from_utf8_lossy(&runs.stdout).contains("\n1"),
        "{}",
        String::from_utf8_lossy(&runs.stdout)
    );

    // A lake a newer vaten wrote is refused, not written in an older layout.
    std::fs::write(lake.join("_state/lake.json"), "{\"schema_version\": \"4\"}").unwrap();
    let refused = vaten(&["transform"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("newer vaten (lake schema version 4"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn a_migration_killed_midway_is_completed_or_rolled_back_by_the_next_command() {
    for point in ["crash:staged", "crash:journal"] {
        let (dir, run) = schema_2_copy();
        let lake = dir.path().join("lake");
        let before = digest(&lake);
        // The migration is the first change the command commits: killed around its journal.
        let killed = run(&["transform"], point);
        assert_eq!(killed.status.code(), None, "{point}: killed by a signal");
        // Killed before any file moved; after the journal's rename the change is decided.
        assert!(!lake.join("_state/lake.json").exists(), "{point}");
        let decided = std::fs::read_dir(lake.join("_journal"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            })
            .count();
        assert_eq!(decided, usize::from(point == "crash:journal"), "{point}");
        assert_ok(&run(&["transform"], ""));
        let after = digest(&lake);
        for table in DIGESTED {
            assert_eq!(after[*table], before[*table], "{point}: {table} changed");
        }
        let readings = &after["grid_readings.run_id"];
        assert_eq!(readings[0], readings[1], "{point}: every file migrated");
        assert!(lake.join("_state/lake.json").exists());
        assert_eq!(
            std::fs::read_dir(lake.join("_journal")).unwrap().count(),
            0,
            "{point}: no change left in flight"
        );
    }
}
