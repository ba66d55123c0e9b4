//! Real data nobody here produced (`tests/fixtures/`): a HomeWizard and a DSMR-reader
//! export through `vaten import`, and the OPSD household with PV through a test adapter.

use std::collections::BTreeMap;

use polars::prelude::*;
use vaten::lake::schema::INTERVALS;
use vaten::registry::Installation;

use crate::common::*;

/// (hour start µs, import, export, pv) registers of one line of the OPSD file, in Wh.
type Hour = (i64, Option<i64>, Option<i64>, Option<i64>);

fn fixture(path: &str) -> String {
    format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn kwh_to_wh(s: &str) -> i64 {
    (s.trim().parse::<f64>().unwrap() * 1000.0).round() as i64
}

/// Σ of an intervals column, and rows per local day (the `date` partition) for one EAN.
fn sums(env: &Env, ean: &str) -> (BTreeMap<&'static str, i64>, BTreeMap<String, usize>) {
    let df = env.lake().read_table(&INTERVALS).unwrap();
    let df = df.lazy().filter(col("ean").eq(lit(ean))).collect().unwrap();
    let mut totals = BTreeMap::new();
    for c in ["l_wh", "t_wh", "p_wh", "v_wh"] {
        totals.insert(c, df.column(c).unwrap().i64().unwrap().sum().unwrap_or(0));
    }
    let dates = df.column("date").unwrap().cast(&DataType::String).unwrap();
    let mut per_day = BTreeMap::new();
    for d in dates.str().unwrap().iter().flatten() {
        *per_day.entry(d.to_string()).or_default() += 1;
    }
    (totals, per_day)
}

#[test]
fn homewizard_export_imports_and_transforms() {
    let env = Env::new(&registry(&[EAN_A]));
    let file = fixture("meter-exports/homewizard_2022-09_15min_elec.csv");
    let out = env.vaten(
        "2026-11-20T10:00:00Z",
        &["import", "--format", "homewizard", &file, "--ean", EAN_A],
    );
    assert_ok(&out);
    assert_ok(&env.vaten("2026-11-20T10:00:00Z", &["transform"]));
    // Independently: the registers' last minus first line of the file.
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let reg = |l: &Vec<&str>, a: usize, b: usize| kwh_to_wh(l[a]) + kwh_to_wh(l[b]);
    let (first, last) = (&lines[0], lines.last().unwrap());
    let (totals, per_day) = sums(&env, EAN_A);
    assert_eq!(totals["l_wh"], reg(last, 1, 2) - reg(first, 1, 2));
    assert_eq!(totals["t_wh"], reg(last, 3, 4) - reg(first, 3, 4));
    assert_eq!(per_day.len(), 30, "{per_day:?}");
    assert!(per_day.values().all(|n| *n == 96));
    // Importing the same file again adds nothing.
    let before = lake_rows(&env.lake());
    assert_ok(&env.vaten(
        "2026-11-20T10:00:00Z",
        &["import", "--format", "homewizard", &file, "--ean", EAN_A],
    ));
    assert_eq!(
        lake_rows(&env.lake())["grid_readings"],
        before["grid_readings"]
    );
}

#[test]
fn an_erased_participants_export_is_not_imported_again() {
    // P0 (EAN_A) has been erased, and is still in the registry (the board has not removed the
    // line yet): importing their meter's export would store their data again.
    let env = Env::new(&registry(&[EAN_A, EAN_B]));
    assert_ok(&env.vaten("2026-11-20T10:00:00Z", &["erase", "--participant", "P0"]));
    let file = fixture("meter-exports/homewizard_2022-09_15min_elec.csv");
    let out = env.vaten(
        "2026-11-20T10:00:00Z",
        &["import", "--format", "homewizard", &file, "--ean", EAN_A],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("erased"), "{}", stderr(&out));
    let rows = lake_rows(&env.lake());
    assert!(
        rows.values().flatten().all(|r| !r.contains(EAN_A)),
        "nothing of the erased participant is stored"
    );
    // Someone else's export still goes in.
    assert_ok(&env.vaten(
        "2026-11-20T10:00:00Z",
        &["import", "--format", "homewizard", &file, "--ean", EAN_B],
    ));
    assert!(lake_rows(&env.lake())["grid_readings"]
        .iter()
        .any(|r| r.contains(EAN_B)));
}

#[test]
fn dsmr_reader_export_has_its_dst_days() {
    let env = Env::new(&registry(&[EAN_A]));
    let file = fixture("meter-exports/dsmrreader-data-export-hour.csv");
    assert_ok(&env.vaten(
        "2026-11-20T10:00:00Z",
        &["import", "--format", "dsmr-reader", &file, "--ean", EAN_A],
    ));
    assert_ok(&env.vaten("2026-11-20T10:00:00Z", &["transform"]));
    let (totals, per_day) = sums(&env, EAN_A);
    assert_eq!(per_day["2024-03-31"], 92);
    assert_eq!(per_day["2024-10-27"], 100);
    assert_eq!(per_day["2024-06-01"], 96);
    // Independently: the file's delivered and returned energy, summed per line.
    let text = std::fs::read_to_string(&file).unwrap();
    let (mut l, mut t) = (0, 0);
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        l += kwh_to_wh(f[1]) + kwh_to_wh(f[2]);
        t += kwh_to_wh(f[3]) + kwh_to_wh(f[4]);
    }
    assert_eq!((totals["l_wh"], totals["t_wh"]), (l, t));
}

#[test]
fn opsd_household_with_pv_keeps_every_kwh() {
    use vaten::received::{GridReading, InstallationReading, Received, ReceivedIndex};
    let mut reg = registry(&[EAN_A]);
    reg.connections[0].installation = Some(Installation {
        id: "opsd".into(),
        url: "http://127.0.0.1:9".into(),
    });
    reg.connections[0].capacity_w = 43_470; // a German 3x63 A connection
    let env = Env::new(&reg);
    // The test adapter: grid registers into grid_readings (one delivery per local day), the PV
    // register into installation_readings, as their sources would deliver them.
    let text = std::fs::read_to_string(fixture(
        "opsd-household/household_data_60min_singleindex_res4.csv",
    ))
    .unwrap();
    let tz = vaten::domain::time::AMSTERDAM;
    let mut received = Received::default();
    let mut days: BTreeMap<chrono::NaiveDate, Vec<GridReading>> = BTreeMap::new();
    let (mut first, mut last): (BTreeMap<&str, i64>, BTreeMap<&str, i64>) = Default::default();
    let mut hourly: Vec<Hour> = Vec::new();
    for (seq, line) in text.lines().skip(1).enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let t: chrono::DateTime<chrono::Utc> = f[0].parse().unwrap();
        let val = |i: usize| (!f[i].trim().is_empty()).then(|| kwh_to_wh(f[i]));
        let (export, import, pv) = (val(5), val(6), val(8));
        hourly.push((t.timestamp_micros(), import, export, pv));
        for (name, v) in [("l", import), ("t", export), ("p", pv)] {
            if let Some(v) = v {
                first.entry(name).or_insert(v);
                last.insert(name, v);
            }
        }
        let date = vaten::domain::time::local_date_of_interval_end(t, tz);
        if let (Some(i), Some(e)) = (import, export) {
            days.entry(date).or_default().push(GridReading {
                ean: EAN_A.into(),
                meter_id: "opsd-grid".into(),
                t_us: t.timestamp_micros(),
                import_wh: i,
                export_wh: e,
                quality: "measured".into(),
                received_at_us: 0,
                delivery_seq: 0,
                cursor: "opsd".into(),
                date,
            });
        }
        if let Some(p) = pv {
            received.installation_readings.push(InstallationReading {
                installation_id: "opsd".into(),
                ean: EAN_A.into(),
                p_meter: "opsd-pv".into(),
                seq: seq as i64 + 1,
                t_us: t.timestamp_micros(),
                p_wh: p,
                battery_charge_wh: 0,
                battery_discharge_wh: 0,
                soc_pct: None,
                voltage_avg_v: None,
                voltage_min_v: None,
                voltage_max_v: None,
                received_at_us: 0,
                date,
            });
        }
    }
    received.reading_objects = days.into_values().collect();
    {
        let lake = vaten::lake::Lake::open_for_write(
            &env.lake_dir(),
            "test adapter",
            std::time::Duration::from_secs(1),
        )
        .unwrap();
        let mut txn = lake.begin().unwrap();
        ReceivedIndex::default()
            .stage(&lake, &mut txn, received)
            .unwrap();
        txn.commit().unwrap();
    }
    assert_ok(&env.vaten("2026-11-20T10:00:00Z", &["transform"]));
    let (totals, _) = sums(&env, EAN_A);
    // Last minus first register over the file (the fixture's README: L 6,321.316,
    // T 9,563.098, P 12,336.971 kWh; V = 9,095.189 kWh): the missing hours are spread.
    assert_eq!(totals["l_wh"], last["l"] - first["l"]);
    assert_eq!(totals["l_wh"], 6_321_316);
    assert_eq!(totals["t_wh"], 9_563_098);
    assert_eq!(totals["p_wh"], 12_336_971);
    assert_eq!(totals["v_wh"], 9_095_189);
    // Hours with negative V stay negative: each hour whose three registers are known at both
    // ends keeps V = ΔP + ΔL − ΔT exactly, also when it is below zero.
    let df = env.lake().read_table(&INTERVALS).unwrap();
    let start = df
        .column("interval_start")
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap();
    let v = df.column("v_wh").unwrap().i64().unwrap().clone();
    let mut v_by_hour: BTreeMap<i64, i64> = BTreeMap::new();
    for (s, v) in start.i64().unwrap().iter().zip(v.iter()) {
        if let (Some(s), Some(v)) = (s, v) {
            *v_by_hour
                .entry(s - s.rem_euclid(3_600_000_000))
                .or_default() += v;
        }
    }
    let mut negative = 0;
    for w in hourly.windows(2) {
        let (a, b) = (w[0], w[1]);
        if let (Some(l0), Some(t0), Some(p0), Some(l1), Some(t1), Some(p1)) =
            (a.1, a.2, a.3, b.1, b.2, b.3)
        {
            let v = (p1 - p0) + (l1 - l0) - (t1 - t0);
            if v < 0 {
                negative += 1;
                assert_eq!(v_by_hour[&a.0], v, "hour at {}", a.0);
            }
        }
    }
    assert!(negative > 0, "the file has hours with negative V");
}
