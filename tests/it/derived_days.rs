//! Derived days (quarter-hours gone, daily registers known): delivered energy takes the
//! household profile, fed-back energy a shape that fits feed-back. Before, both took the
//! household profile, so L and T had the same shape and nearly all of T counted as matched.

use std::process::Command;

use vaten::fake::{FakeInstallations, FeedEntry};
use vaten::registry::{Installation, Registry};

use crate::common::*;
use crate::feeds::*;

const DERIVED_DAY: &str = "2026-10-21";

/// A (with an installation) alone on K1, B (panels, no installation) alone on K2; both deliver
/// quarter-hours on the 20th and 22nd, and only daily registers around the 21st: L and T of
/// the 21st are set by hand.
fn setup() -> Env {
    let fake = FakeInstallations::spawn().unwrap();
    fake.add("inst-a", EAN_A, "tok", "SDM120-A");
    let mut reg = registry(&[EAN_A, EAN_B]);
    add_second_cable(&mut reg);
    reg.connections[1].cable_id = "K2".into();
    reg.connections[0].installation = Some(Installation {
        id: "inst-a".into(),
        url: fake.url("inst-a"),
    });
    let env = Env::new(&Registry::new(reg.connections, reg.cables));
    env.with_tokens(&[("inst-a", "tok")]);
    // The installation's readings over the three local days (from 00:15 on the 20th).
    fake.produce("inst-a", "2026-10-19T22:15:00Z".parse().unwrap(), 3 * 96, 3);
    let mut entries = Vec::new();
    for (ean, id, l, t) in [(EAN_A, "MA1", 2_000, 6_000), (EAN_B, "MB1", 8_000, 6_000)] {
        let mut m = meter(ean, id, 3_000_000, true);
        entries.push(FeedEntry::interval(intervals(&mut m, "2026-10-20")));
        entries.push(day(&m, DERIVED_DAY));
        m.import_wh += l;
        m.export_wh += t;
        entries.push(day(&m, "2026-10-22"));
        entries.push(FeedEntry::interval(intervals(&mut m, "2026-10-22")));
    }
    env.server.push(entries);
    assert_ok(&env.vaten("2026-10-24T10:00:00Z", &["ingest"]));
    assert_ok(&env.vaten("2026-10-24T10:00:00Z", &["transform"]));
    // Keep the fake installations alive until the ingest is done.
    drop(fake);
    env
}

/// `SQL` through DuckDB over the lake (the independent reader), rows as text.
fn duck(env: &Env, sql: &str) -> Vec<String> {
    let lake = env.lake_dir().display().to_string();
    let sql = sql
        .replace("INTERVALS", &format!("read_parquet('{lake}/intervals/*/*.parquet', hive_partitioning = true)"))
        .replace("READINGS", &format!("read_parquet('{lake}/installation_readings/*/*.parquet', hive_partitioning = true)"))
        .replace("CABLE_DAILY", &format!("read_parquet('{lake}/cable_balance_daily/*/*.parquet', hive_partitioning = true)"));
    let out = Command::new(crate::tools::python())
        .args([
            "-c",
            "import duckdb, sys; duckdb.execute(\"SET TimeZone = 'Europe/Amsterdam'\"); [print(','.join(map(str, r))) for r in duckdb.sql(sys.argv[1]).fetchall()]",
            &sql,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn one(rows: &[String]) -> i64 {
    rows[0].parse().unwrap_or_else(|_| panic!("{rows:?}"))
}

#[test]
fn feed_back_on_a_derived_day_has_a_feed_back_shape() {
    let env = setup();
    let day = format!("date = DATE '{DERIVED_DAY}'");
    // Both days are derived, and their totals are the register differences exactly.
    for (ean, l, t) in [(EAN_A, 2_000, 6_000), (EAN_B, 8_000, 6_000)] {
        let rows = duck(
            &env,
            &format!("SELECT sum(l_wh), sum(t_wh), count(*) FILTER (l_quality = 'derived') FROM INTERVALS WHERE ean = '{ean}' AND {day}"),
        );
        assert_eq!(rows, vec![format!("{l},{t},96")], "{ean}");
    }

    // B, panels without an installation: T only while the sun is up. On 21 October at 52° N
    // it rises about 08:15 and sets about 18:30 local time; nothing before 07:00 or after 19:30.
    let dark = duck(
        &env,
        &format!("SELECT count(*) FROM INTERVALS WHERE ean = '{EAN_B}' AND {day} AND t_wh > 0 AND (hour(interval_start) < 7 OR hour(interval_start) * 60 + minute(interval_start) >= 19 * 60 + 30)"),
    );
    assert_eq!(one(&dark), 0, "T in the dark");
    // Matched energy: the old spread gave L and T the same shape, so matched was min(L, T)
    // = 6,000 Wh up to rounding. Now T is in daylight, where the household profile puts
    // 59 of its 130 weight units (hours 8 to 17 and half of 18): L there is about
    // 8,000 × 59 / 130 = 3,631 Wh, an upper bound for matched.
    let matched = one(&duck(
        &env,
        &format!("SELECT matched_wh FROM CABLE_DAILY WHERE cable_id = 'K2' AND {day}"),
    ));
    assert!((1..4_000).contains(&matched), "matched {matched} Wh");

    // A, with an installation: T follows that day's production plus battery discharge, to
    // the Wh (largest-remainder rounding moves a quarter-hour by at most 1 Wh).
    let off = duck(
        &env,
        &format!(
            "WITH r AS (SELECT t - INTERVAL 15 MINUTE AS s,
                   p_wh - lag(p_wh) OVER w + battery_discharge_wh - lag(battery_discharge_wh) OVER w AS pd
                 FROM READINGS WINDOW w AS (ORDER BY t)),
             i AS (SELECT interval_start AS s, t_wh FROM INTERVALS WHERE ean = '{EAN_A}' AND {day}),
             j AS (SELECT i.t_wh, r.pd, sum(r.pd) OVER () AS total FROM i JOIN r USING (s))
             SELECT count(*) FILTER (abs(t_wh - 6000.0 * pd / total) > 1), count(*) FROM j"
        ),
    );
    assert_eq!(off, vec!["0,96".to_string()], "T against P + discharge");
    // Matched: in the evening the household profile's L (hours 17–21: 44 of 130 units,
    // about 38 Wh a quarter-hour) exceeds T there (battery discharge alone, 20–70 Wh against
    // production of 150–450 Wh by day, about 20 Wh of T a quarter-hour): some L stays
    // unmatched, so matched falls below min(L, T) = 2,000 Wh by more than rounding (96 Wh).
    let matched = one(&duck(
        &env,
        &format!("SELECT matched_wh FROM CABLE_DAILY WHERE cable_id = 'K1' AND {day}"),
    ));
    assert!((1..1_900).contains(&matched), "matched {matched} Wh");
}

/// Σ |estimate − truth| over a day's quarter-hours when `total` is spread by `weights`.
fn shape_error(truth: &[i64], weights: &[u64]) -> i64 {
    let total = truth.iter().sum();
    vaten::intervals::spread::spread(total, weights)
        .iter()
        .zip(truth)
        .map(|(e, t)| (e - t).abs())
        .sum()
}

/// The shapes against real feed-back: the OPSD household with PV (hourly registers of grid
/// export and production, 2015–2017, no battery). Had each day's T been known only as a daily
/// total, both new shapes put it closer to the hours it was really fed back in than the
/// household profile did; production (what an installation reports) closest.
#[test]
fn feed_back_shapes_are_closer_to_real_feed_back() {
    use vaten::domain::sun::daylight_weight;
    use vaten::domain::time::AMSTERDAM;
    use vaten::intervals::derive::weight;

    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/opsd-household/household_data_60min_singleindex_res4.csv"
    ))
    .unwrap();
    // (t µs, export Wh, pv Wh) registers per hour.
    let registers: Vec<(i64, Option<i64>, Option<i64>)> = text
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let t: chrono::DateTime<chrono::Utc> = f[0].parse().unwrap();
            let wh = |i: usize| {
                let v = f[i].trim();
                (!v.is_empty()).then(|| (v.parse::<f64>().unwrap() * 1000.0).round() as i64)
            };
            (t.timestamp_micros(), wh(5), wh(8))
        })
        .collect();
    // Hours (start µs, T, P) with both registers known at both ends, per local day.
    let mut days: std::collections::BTreeMap<chrono::NaiveDate, Vec<(i64, i64, i64)>> =
        Default::default();
    for pair in registers.windows(2) {
        let ((t0, e0, p0), (t1, e1, p1)) = (pair[0], pair[1]);
        if let (Some(e0), Some(e1), Some(p0), Some(p1)) = (e0, e1, p0, p1) {
            let day =
                vaten::domain::time::local_date(vaten::domain::time::from_micros(t0), AMSTERDAM);
            days.entry(day).or_default().push((t0, e1 - e0, p1 - p0));
            assert_eq!(t1 - t0, 3_600_000_000);
        }
    }
    let quarters = |h: i64| (0..4).map(move |k| h + k * 15 * 60 * 1_000_000);
    let (mut profile, mut daylight, mut production, mut n) = (0, 0, 0, 0);
    for hours in days.values().filter(|h| h.len() == 24) {
        let truth: Vec<i64> = hours.iter().map(|h| h.1).collect();
        if truth.iter().sum::<i64>() < 1_000 || truth.iter().any(|t| *t < 0) {
            continue;
        }
        n += 1;
        let by_hour = |w: &dyn Fn(i64) -> u64| -> Vec<u64> {
            hours.iter().map(|h| quarters(h.0).map(w).sum()).collect()
        };
        profile += shape_error(&truth, &by_hour(&|s| weight(s, AMSTERDAM)));
        daylight += shape_error(&truth, &by_hour(&daylight_weight));
        let p: Vec<u64> = hours.iter().map(|h| h.2.max(0) as u64).collect();
        production += shape_error(&truth, &p);
    }
    assert!(n > 200, "{n} days with feed-back");
    assert!(
        daylight < profile,
        "daylight {daylight} Wh against profile {profile} Wh"
    );
    assert!(
        production < daylight,
        "production {production} Wh against daylight {daylight} Wh"
    );
}
