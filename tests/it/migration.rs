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
    let (dir, run) = fixture_copy("lake-schema-1");
    let vaten = |args: &[&str]| run(args, "");
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

/// A copy of a fixture lake (`tests/fixtures/<name>`) and a way to run vaten on it (with
/// `fault` injected).
fn fixture_copy(
    name: &str,
) -> (
    tempfile::TempDir,
    impl Fn(&[&str], &str) -> std::process::Output,
) {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
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
    let (dir, run) = fixture_copy("lake-schema-2");
    let vaten = |args: &[&str]| run(args, "");
    let lake = dir.path().join("lake");
    let before = digest(&lake);
    // The fixture really is of the old layout: no file of a received reading table has run_id.
    for table in ["grid_readings", "grid_days", "installation_readings"] {
        let run = &before[format!("{table}.run_id")];
        assert_eq!(run[0], 0, "{table}: {run}");
        assert!(run[1].as_u64().unwrap() > 0, "{table} has files");
    }

    // The fixture's transform state names the transform code that wrote it; since then the
    // code changed (`TRANSFORM_VERSION`), which alone means a full recompute. The fingerprint
    // this build gives the same registry and rates (from a second copy, migrated and
    // transformed) goes in its place, so what follows tells whether the migration counts as
    // new data.
    let (other, run_other) = fixture_copy("lake-schema-2");
    assert_ok(&run_other(&["transform"], ""));
    let state = |lake: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(lake.join("_state/transform.json")).unwrap())
            .unwrap()
    };
    let mut ours = state(&lake);
    ours["fingerprint"] = state(&other.path().join("lake"))["fingerprint"].clone();
    std::fs::write(lake.join("_state/transform.json"), ours.to_string()).unwrap();
    // The first job migrates; the rewrite is no new data: nothing is recomputed.
    assert_ok(&vaten(&["transform"]));
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
             8 files of grid_days, 15 files of installation_readings; \
             incremental recompute of 0 cable(s)"
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
    // And the migrated received tables transform: every derived table rebuilt from them.
    assert_ok(&vaten(&["transform", "--full"]));

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

    // Migrated once: the next job looks at no file's footer (an unreadable file in a kept
    // table would stop a migration) and rewrites nothing.
    let received = listing(&lake.join("grid_readings"));
    let junk = lake.join("_runs/part-junk.parquet");
    std::fs::write(&junk, b"not parquet").unwrap();
    assert_ok(&vaten(&["transform"]));
    std::fs::remove_file(&junk).unwrap();
    assert_eq!(listing(&lake.join("grid_readings")), received);
    let runs = vaten(&[
        "query",
        "--format",
        "csv",
        "select count(*) as n from _runs where message like '%migrated%'",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&runs.stdout).lines().nth(1),
        Some("1")
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
        let (dir, run) = fixture_copy("lake-schema-2");
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

#[test]
fn a_lake_that_cannot_be_migrated_still_receives_and_says_which_file() {
    let (dir, run) = fixture_copy("lake-schema-2");
    let lake = dir.path().join("lake");
    let bad = lake.join("grid_days/date=2026-11-13/part-truncated.parquet");
    std::fs::write(&bad, b"PAR1").unwrap();
    // A job that is not receiving stops, naming the file, recorded as failed.
    let transform = run(&["transform"], "");
    assert_eq!(transform.status.code(), Some(1), "{}", stderr(&transform));
    assert!(
        stderr(&transform).contains("part-truncated.parquet"),
        "{}",
        stderr(&transform)
    );
    // An import still stores what it is given (a warning), the old files are left as they
    // were, and nothing claims the lake is migrated.
    let export = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/meter-exports/homewizard_2022-09_15min_elec.csv"
    );
    let import = run(
        &[
            "import",
            "--format",
            "homewizard",
            export,
            "--ean",
            "871687120000000004",
        ],
        "",
    );
    assert_ok(&import);
    assert!(!lake.join("_state/lake.json").exists());
    let runs = run(
        &[
            "query",
            "--format",
            "csv",
            "select job, status from _runs where message like '%could not be migrated%part-truncated.parquet%' order by job",
        ],
        "",
    );
    assert_eq!(
        String::from_utf8_lossy(&runs.stdout)
            .lines()
            .skip(1)
            .collect::<Vec<_>>(),
        vec!["import,warning", "transform,failed"],
        "{}",
        stderr(&runs)
    );
    // Once the bad file is dealt with, the next job migrates old and new files alike.
    std::fs::remove_file(&bad).unwrap();
    assert_ok(&run(&["transform"], ""));
    let after = digest(&lake);
    let readings = &after["grid_readings.run_id"];
    assert_eq!(
        readings[0], readings[1],
        "every file of grid_readings migrated"
    );
    // The import's September 2022 quarter-hours are among them (the fixture has 4,704 rows).
    assert!(
        after["grid_readings"][0].as_u64().unwrap() > 4_704,
        "{after}"
    );
}
