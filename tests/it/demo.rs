//! `vaten demo` end to end on the street-cable simulation: every table of the lake contract,
//! the reports, and the lake's V, L, T, P equal to the simulation's own ground truth for every
//! connection and day that was fully delivered; the same seed and period give the same lake.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use polars::prelude::*;
use vaten::lake::schema::{ALL_TABLES, CONSUMPTION_DAILY, INTERVALS};
use vaten::lake::Lake;

use crate::common::*;

fn demo(dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_vaten"))
        .args([
            "demo",
            "--days",
            "3",
            "--connections",
            "12",
            "--end",
            "2026-11-20",
            "--dir",
        ])
        .arg(dir)
        .env_remove("VATEN_CONFIG")
        .env_remove("VATEN_LOG")
        .output()
        .unwrap();
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("12 connections on 3 cables"), "{text}");
    // Quiet for a first-time user: a line per pass and the summary; the jobs' per-page and
    // per-installation lines are in `_runs` and behind -v.
    assert!(
        text.contains("nightly pass 1/1: 3 jobs ok, 1 with warnings (ingest-installations)")
            && !text.contains("failed")
            && text.lines().count() < 25,
        "{text}"
    );
    let log = stderr(&out);
    assert!(
        !log.contains("grid page stored") && log.lines().count() < 3,
        "{log}"
    );
}

/// (ean, date) → the truth file's columns by name.
fn truth(dir: &Path) -> BTreeMap<(String, String), BTreeMap<String, String>> {
    let text = std::fs::read_to_string(dir.join("simulation/truth.csv")).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            let row: BTreeMap<String, String> = head
                .iter()
                .zip(l.split(','))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect();
            ((row["ean"].clone(), row["date"].clone()), row)
        })
        .collect()
}

fn strs(df: &DataFrame, n: &str) -> Vec<String> {
    let c = df.column(n).unwrap().cast(&DataType::String).unwrap();
    c.str()
        .unwrap()
        .iter()
        .map(|s| s.unwrap_or("").to_string())
        .collect()
}

fn ints(df: &DataFrame, n: &str) -> Vec<Option<i64>> {
    let c = df.column(n).unwrap().cast(&DataType::Int64).unwrap();
    c.i64().unwrap().iter().collect()
}

#[test]
fn the_demo_runs_end_to_end_equals_the_simulation_and_repeats_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    demo(&one);
    let lake = Lake::open_read(&one.join("lake"));
    for spec in ALL_TABLES {
        assert!(
            !lake.files(spec, None).unwrap().is_empty(),
            "{} has files",
            spec.name
        );
    }
    let reports = one.join("reports");
    for f in [
        "nightly/2026-11-20.html",
        "nightly/2026-11-20.md",
        "yearly/2026/index.html",
    ] {
        assert!(reports.join(f).exists(), "{f}");
    }
    assert_eq!(
        std::fs::read_dir(reports.join("private/statements/2026"))
            .unwrap()
            .count(),
        12
    );

    // Every connection and day fully delivered (no quarter-hour missing, estimated or derived)
    // equals the simulation's registers.
    let truth = truth(&one);
    assert_eq!(truth.len(), 12 * 3);
    let daily = lake.read_table(&CONSUMPTION_DAILY).unwrap();
    let (ean, date) = (strs(&daily, "ean"), strs(&daily, "date"));
    let (l, t, p, v) = (
        ints(&daily, "l_wh"),
        ints(&daily, "t_wh"),
        ints(&daily, "p_wh"),
        ints(&daily, "v_wh"),
    );
    let (m, e, d) = (
        ints(&daily, "intervals_missing"),
        ints(&daily, "intervals_estimated"),
        ints(&daily, "intervals_derived"),
    );
    let mut compared = Vec::new();
    for i in 0..daily.height() {
        if m[i] != Some(0) || e[i] != Some(0) || d[i] != Some(0) {
            continue;
        }
        let want = &truth[&(ean[i].clone(), date[i].clone())];
        let num = |k: &str| want[k].parse::<i64>().ok();
        assert_eq!(
            (l[i], t[i], p[i], v[i]),
            (num("l_wh"), num("t_wh"), num("p_wh"), num("v_wh")),
            "{} {}",
            ean[i],
            date[i]
        );
        compared.push((ean[i].clone(), date[i].clone()));
    }
    // By hand: the 3 houses without installation on days 2 and 3 (day 1's first quarter-hour
    // starts at the daily register of 00:00, a derived reading, and a quarter-hour is as good
    // as the worse of its two readings); the 9 with an installation from day 2 on (no P
    // reading before the first quarter-hour's end), less house 0 (offline: no P on days 2
    // and 3) and house 1 (wiped: no P at the start of day 2): 6 + 18 − 2 − 1 = 21, among
    // them the meter exchange (house 6, middle day).
    assert_eq!(compared.len(), 21, "{compared:?}");
    let exchanged = vaten::domain::Ean::with_check_digit("87168712000000006")
        .unwrap()
        .to_string();
    assert!(compared.contains(&(exchanged, "2026-11-19".to_string())));

    // House 0's 19 November was first delivered with eight estimated quarter-hours and
    // corrected later: its L and T are the simulation's, every quarter-hour measured.
    let first = vaten::domain::Ean::with_check_digit("87168712000000000")
        .unwrap()
        .to_string();
    let iv = lake
        .scan(&INTERVALS)
        .unwrap()
        .unwrap()
        .filter(
            col("ean")
                .eq(lit(first.clone()))
                .and(col("date").cast(DataType::String).eq(lit("2026-11-19"))),
        )
        .collect()
        .unwrap();
    assert_eq!(iv.height(), 96);
    assert!(strs(&iv, "l_quality").iter().all(|q| q == "measured"));
    let sum = |n: &str| ints(&iv, n).iter().flatten().sum::<i64>().to_string();
    let want = &truth[&(first, "2026-11-19".to_string())];
    assert_eq!(
        (sum("l_wh"), sum("t_wh")),
        (want["l_wh"].clone(), want["t_wh"].clone())
    );

    // Every figure of the reports on the simulated cooperative, recomputed by DuckDB.
    let registry = one.join("registry");
    let page = |f: &str| reports.join(f).display().to_string();
    crate::reports::check_lake(
        &one.join("lake"),
        &registry,
        &["nightly", "2026-11-20", &page("nightly/2026-11-20.html")],
    );
    crate::reports::check_lake(
        &one.join("lake"),
        &registry,
        &["yearly", "2026", &page("yearly/2026/index.html")],
    );
    crate::reports::check_lake(
        &one.join("lake"),
        &registry,
        &[
            "statement",
            "2026",
            &page("private/statements/2026/P0002.html"),
            "P0002",
        ],
    );

    // The same seed and period: the same lake.
    demo(&two);
    assert_eq!(
        lake_rows(&lake),
        lake_rows(&Lake::open_read(&two.join("lake")))
    );
}

#[test]
fn simulate_compares_settings_in_a_table_and_a_chart() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vaten"))
        .args([
            "simulate",
            "--days",
            "2",
            "--houses",
            "6",
            "--start",
            "2026-06-20",
            "--limits",
            "226:244",
            "--limits",
            "224:246",
            "--out",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_ok(&out);
    let md = std::fs::read_to_string(tmp.path().join("simulate.md")).unwrap();
    // The baseline, the reference limits, pv_priority off, 1/3 and all installed, 224–246 V.
    let rows: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| setting"))
        .collect();
    assert_eq!(rows.len(), 6, "{md}");
    assert!(
        rows[0].starts_with("| no controllers (baseline) |")
            && rows[5].starts_with("| controllers 224–246 V |")
    );
    let svg = std::fs::read_to_string(tmp.path().join("simulate.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("<polyline"));
    let bad = Command::new(env!("CARGO_BIN_EXE_vaten"))
        .args(["simulate", "--limits", "250:240"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
