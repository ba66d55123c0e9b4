//! `vaten query`: SQL over the lake's tables.

use vaten::fake::FeedEntry;

use crate::common::*;
use crate::feeds::*;

#[test]
fn sql_over_the_lake_in_every_format() {
    let env = Env::new(&registry(&[EAN_A, EAN_B]));
    let mut a = meter(EAN_A, "MA1", 100_000, true);
    let mut b = meter(EAN_B, "MB1", 200_000, false);
    env.server.push([
        FeedEntry::interval(intervals(&mut a, "2026-10-25")),
        FeedEntry::interval(intervals(&mut b, "2026-10-26")),
    ]);
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["ingest", "grid"]));
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["transform"]));

    // By hand: 100 readings on the 25th (a DST day) and 96 on the 26th.
    let sql = "SELECT CAST(date AS VARCHAR) AS d, count(*) AS n FROM grid_readings GROUP BY date ORDER BY d";
    let out = env.vaten("2026-10-28T10:00:00Z", &["query", "--format", "csv", sql]);
    assert_ok(&out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "d,n\n2026-10-25,100\n2026-10-26,96\n"
    );

    // The table for people shows every row and every column: all 196 readings (Polars' own
    // printer stops at 10 rows and 8 columns unless told otherwise), and all ten columns.
    let out = env.vaten(
        "2026-10-28T10:00:00Z",
        &["query", "SELECT t FROM grid_readings ORDER BY t"],
    );
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.contains("2026-10-2")).count(),
        196
    );
    assert!(!text.contains('…'), "{text}");
    let columns: Vec<String> = (1..=10).map(|i| format!("{i} AS c{i}")).collect();
    let sql = format!("SELECT {}", columns.join(", "));
    let out = env.vaten(
        "2026-10-28T10:00:00Z",
        &["query", "--format", "table", &sql],
    );
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    for i in 1..=10 {
        assert!(text.contains(&format!(" c{i} ")), "c{i} missing: {text}");
    }

    // Tables join; JSON lines for machines.
    let sql = "SELECT i.ean, count(*) AS quarters FROM intervals i JOIN consumption_daily c ON i.ean = c.ean AND i.date = c.date GROUP BY i.ean ORDER BY i.ean";
    let out = env.vaten("2026-10-28T10:00:00Z", &["query", "--format", "json", sql]);
    assert_ok(&out);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["ean"], EAN_B);

    // An analyst's daily sums, answered file by file (`query::partition_groups`, `-vv` says
    // so), equal DuckDB's over the same files: nulls where a connection has no P at all.
    let sql = "SELECT ean, date, sum(l_wh) AS l, sum(t_wh) AS t, sum(p_wh) AS p, \
               sum(v_wh) AS v FROM intervals WHERE date >= '2026-10-25' GROUP BY ean, date";
    let out = env.vaten(
        "2026-10-28T10:00:00Z",
        &["-vv", "query", "--format", "csv", sql],
    );
    assert_ok(&out);
    assert!(
        stderr(&out).contains("sums grouped by partition, file by file"),
        "{}",
        stderr(&out)
    );
    let mut ours: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(String::from)
        .collect();
    ours.sort();
    let files = format!(
        "read_parquet('{}/intervals/*/*.parquet', hive_partitioning = true)",
        env.readable_dir().display()
    );
    let out = std::process::Command::new(crate::tools::python())
        .args([
            "-c",
            "import duckdb, sys; [print(','.join('' if v is None else str(v) for v in r)) \
             for r in duckdb.sql(sys.argv[1]).fetchall()]",
            &sql.replace("FROM intervals", &format!("FROM {files}")),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    theirs.sort();
    assert!(ours.len() >= 2, "{ours:?}");
    assert_eq!(ours, theirs);

    // Output into the lake is refused (it would be read as part of a table, or overwrite one),
    // also through `..`; the table stays as it was.
    let before = files_below(&env.lake_dir());
    for target in [
        env.lake_dir()
            .join("grid_readings/date=2026-10-25/x.parquet"),
        env.lake_dir().join("intervals/../grid_readings/y.parquet"),
    ] {
        let out = env.vaten(
            "2026-10-28T10:00:00Z",
            &[
                "query",
                "--format",
                "parquet",
                "--output",
                target.to_str().unwrap(),
                "SELECT 1 AS one",
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("lies inside the lake"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(files_below(&env.lake_dir()), before);

    // Parquet to a file, read back.
    let file = env.dir.path().join("out.parquet");
    let out = env.vaten(
        "2026-10-28T10:00:00Z",
        &[
            "query",
            "--format",
            "parquet",
            "-o",
            file.to_str().unwrap(),
            "SELECT * FROM _runs",
        ],
    );
    assert_ok(&out);
    let df = polars::prelude::ParquetReader::new(std::fs::File::open(&file).unwrap());
    use polars::prelude::SerReader;
    assert_eq!(
        df.finish().unwrap().height(),
        2,
        "two runs: ingest and transform"
    );

    // A mistake in the SQL: one line, exit 1.
    let out = env.vaten("2026-10-28T10:00:00Z", &["query", "SELEC * FROM intervals"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn run_is_ingest_transform_and_nightly_report() {
    let env = Env::new(&registry(&[EAN_A]));
    let mut a = meter(EAN_A, "MA1", 100_000, true);
    env.server
        .push([FeedEntry::interval(intervals(&mut a, "2026-10-26"))]);
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["run"]));
    let rows = lake_rows(&env.lake());
    assert_eq!(rows["grid_readings"].len(), 96);
    // The 26th's first quarter-hour has no start register: 95 of its 96 carry L.
    assert_eq!(
        rows["intervals"]
            .iter()
            .filter(|r| !r.contains("l_wh=null;"))
            .count(),
        95
    );
    let runs = env.lake().read_table(&vaten::lake::schema::RUNS).unwrap();
    let mut jobs: Vec<String> = runs
        .column("job")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .map(String::from)
        .collect();
    jobs.sort();
    assert_eq!(
        jobs,
        vec![
            "ingest-grid",
            "ingest-installations",
            "report-nightly",
            "transform"
        ]
    );
    // Yesterday's report, as the clock says.
    assert!(env
        .dir
        .path()
        .join("data/reports/nightly/2026-10-27.html")
        .exists());
}
