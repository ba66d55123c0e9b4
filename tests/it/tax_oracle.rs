//! The money oracle: `tests/check_tax_oracle.py` recomputes every connection-year's energy tax,
//! reduction, net tax and exemption saving from `intervals`, the registry and the rates CSV
//! with plain Python decimals, and must agree with `tax_base_yearly` to the cent. The
//! cooperative covers what the tax rules turn on: part-year members (one joining on the DST
//! day of March 2026, one leaving mid-year), connections without the reduction, a business
//! connection above 50,000 kWh, own production, and the years 2025 and 2026 (netting) and 2027
//! (no netting, with a rates file made for this test).

use chrono::NaiveDate;
use serde_json::json;
use vaten::domain::time::{local_midnight_utc, quarter_hour_ends, AMSTERDAM};
use vaten::fake::synth::local_rfc3339;
use vaten::fake::{FakeGridOperator, FakeInstallations, FeedEntry};
use vaten::marts::rates::BUILTIN_RATES;
use vaten::registry::{Installation, Registry};

use crate::common::*;

/// The 2027 rates are not law yet: these are made for the test (and say so). Without a
/// reduction row: connections with the right to it get no reduction and no net tax figure.
const RATES_2027: &str = "\
2027,bracket,0,2900,0.09000,false,made for the test
2027,bracket,2900,10000,0.09000,false,made for the test
2027,bracket,10000,50000,0.06500,false,made for the test
2027,bracket,50000,10000000,0.03600,false,made for the test
2027,bracket,10000000,,0.00200,false,made for the test
";

/// Local midnights at which the meters are read: every half year from 2025 to 2028.
fn reading_days() -> Vec<NaiveDate> {
    (0..7)
        .map(|k| NaiveDate::from_ymd_opt(2025 + k / 2, if k % 2 == 0 { 1 } else { 7 }, 1).unwrap())
        .collect()
}

fn kwh(wh: i64) -> f64 {
    wh as f64 / 1000.0
}

/// Feeds one connection: daily registers every half year (L and T growing by `l_kwh`, `t_kwh`
/// a year), and the quarter-hours of 1 January 2025.
fn feed(server: &FakeGridOperator, ean: &str, l_kwh: i64, t_kwh: i64) {
    let (l0, t0) = (1_000_000, 400_000);
    let mut entries = Vec::new();
    for (k, day) in reading_days().into_iter().enumerate() {
        let (l, t) = (l0 + l_kwh * 500 * k as i64, t0 + t_kwh * 500 * k as i64);
        let (l1, t1) = (l * 2 / 5, t / 3);
        entries.push(FeedEntry::day(json!({"ean": ean, "meter_id": "M1",
            "query_date": day.to_string(), "unit": "kWh",
            "r181": kwh(l1), "r182": kwh(l - l1), "r281": kwh(t1), "r282": kwh(t - t1)})));
    }
    let first = reading_days()[0];
    let items: Vec<_> = quarter_hour_ends(first, AMSTERDAM)
        .into_iter()
        .enumerate()
        .map(|(q, t)| {
            json!({"t": local_rfc3339(t, AMSTERDAM), "r180": kwh(l0 + 10 * (q as i64 + 1)),
                   "r280": kwh(t0), "quality": "measured"})
        })
        .collect();
    entries.push(FeedEntry::interval(json!({"ean": ean, "meter_id": "M1",
        "query_date": first.to_string(), "unit": "kWh", "items": items})));
    server.push(entries);
}

#[test]
fn every_cent_of_the_tax_agrees_with_an_independent_oracle() {
    let ean = |n: u32| {
        vaten::domain::Ean::with_check_digit(&format!("8716871200000{n:04}"))
            .unwrap()
            .to_string()
    };
    let date = |s: &str| Some(s.parse::<NaiveDate>().unwrap());
    let fake = FakeInstallations::spawn().unwrap();
    let household = connection(&ean(1), "P1", "K1");
    let mut joins_on_dst_day = connection(&ean(2), "P2", "K1");
    joins_on_dst_day.member_from = date("2026-03-29");
    let mut leaves_mid_year = connection(&ean(3), "P3", "K1");
    leaves_mid_year.member_until = date("2026-06-30");
    let mut no_reduction = connection(&ean(4), "P4", "K1");
    no_reduction.tax_credit = false;
    let mut business = connection(&ean(5), "P5", "K1");
    business.tax_credit = false;
    business.capacity_w = 2_000_000;
    let mut with_panels = connection(&ean(6), "P6", "K1");
    fake.add("inst-6", &ean(6), "tok-6", "SDM120-6");
    with_panels.installation = Some(Installation {
        id: "inst-6".into(),
        url: fake.url("inst-6"),
    });
    let reg = Registry::new(
        vec![
            household,
            joins_on_dst_day,
            leaves_mid_year,
            no_reduction,
            business,
            with_panels,
        ],
        cables(),
    );
    let env = Env::new(&reg);
    for (n, l, t) in [
        (1, 3_500, 2_800),
        (2, 3_000, 500),
        (3, 4_000, 1_000),
        (4, 2_500, 0),
        (5, 120_000, 0),
        (6, 2_000, 3_000),
    ] {
        feed(&env.server, &ean(n), l, t);
    }
    // The production meter, read at the same local midnights: 4,000 kWh a year.
    for (k, day) in reading_days().into_iter().enumerate() {
        let p = 500_000 + 2_000_000 * k as u64;
        fake.record(
            "inst-6",
            local_midnight_utc(day, AMSTERDAM),
            p,
            0,
            0,
            None,
            None,
        );
    }
    env.with_tokens(&[("inst-6", "tok-6")]);
    let rates = env.dir.path().join("rates.csv");
    std::fs::write(&rates, format!("{BUILTIN_RATES}{RATES_2027}")).unwrap();
    *env.extra_config.borrow_mut() += "[tax]\nrates = \"rates.csv\"\n";
    env.write_config("");

    let now = "2028-01-10T10:00:00Z";
    assert_ok(&env.vaten(now, &["ingest"]));
    assert_ok(&env.vaten(now, &["transform"]));
    let out = std::process::Command::new(crate::tools::python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/check_tax_oracle.py"
        ))
        .arg(env.lake_dir())
        .arg(env.dir.path().join("registry"))
        .arg(&rates)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(out.status.success(), "the oracle disagrees:\n{text}");
    // Every case the test is about was really there.
    for case in [
        "2025:netting",
        "2026:netting",
        "2027:no_netting",
        "joins 2026-03-29",
        "leaves 2026-06-30",
        "business above 50,000 kWh",
        "household without reduction",
        "own use",
        "2027 without a reduction in the rates",
    ] {
        assert!(text.contains(case), "not covered: {case}\n{text}");
    }
    // 6 connections × 3 years, less the years outside membership (P2 in 2025, P3 in 2027).
    assert!(text.starts_with("16 connection-years agree"), "{text}");
}
