//! `vaten transform` → `intervals`, against hand-worked cases: a meter exchange, the 92- and
//! 100-quarter-hour days, a late correction, a 7-quarter-hour hole, no installation, a step
//! beyond the connection's capacity, and V = P + L − T with an installation.

use std::collections::BTreeMap;

use serde_json::Value;
use vaten::fake::{FakeInstallations, FeedEntry};
use vaten::registry::Installation;

use crate::common::*;
use crate::feeds::*;

/// (l_wh, t_wh, p_wh, v_wh, l_quality) of one quarter-hour.
type Row = (Option<i64>, Option<i64>, Option<i64>, Option<i64>, String);
/// Rows by (ean, interval_start as text).
type Table = BTreeMap<(String, String), Row>;

fn wh(v: &Value) -> i64 {
    (v.as_f64().unwrap() * 1000.0).round() as i64
}

/// (l_wh, t_wh, p_wh, v_wh, l_quality) per (ean, interval_start text), from `vaten query`-free
/// Polars reading of the lake.
fn table(env: &Env) -> Table {
    use polars::prelude::*;
    let df = env
        .lake()
        .read_table(&vaten::lake::schema::INTERVALS)
        .unwrap();
    let s = |n: &str| df.column(n).unwrap().cast(&DataType::String).unwrap();
    let i = |n: &str| df.column(n).unwrap().i64().unwrap().clone();
    let (ean, start, q) = (s("ean"), s("interval_start"), s("l_quality"));
    let (l, t, p, v) = (i("l_wh"), i("t_wh"), i("p_wh"), i("v_wh"));
    (0..df.height())
        .map(|k| {
            let key = (
                ean.str().unwrap().get(k).unwrap().to_string(),
                start.str().unwrap().get(k).unwrap().to_string(),
            );
            (
                key,
                (
                    l.get(k),
                    t.get(k),
                    p.get(k),
                    v.get(k),
                    q.str().unwrap().get(k).unwrap().to_string(),
                ),
            )
        })
        .collect()
}

fn day_rows<'a>(all: &'a Table, ean: &str, from: &str, to: &str) -> Vec<&'a Row> {
    all.iter()
        .filter(|((e, s), _)| e == ean && s.as_str() >= from && s.as_str() < to)
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn hand_worked_days() {
    let env = Env::new(&registry(&[EAN_A, EAN_B, EAN_C]));
    let mut a = meter(EAN_A, "MA1", 5_000_000, true);
    let mut b = meter(EAN_B, "MB1", 9_000_000, false);
    let mut b_new = meter(EAN_B, "MB2", 3, false);
    let mut c = meter(EAN_C, "MC1", 1_000_000, true);
    // A: the 92-quarter-hour day (29 March 2026) and the day after.
    let a_mar = intervals(&mut a, "2026-03-29");
    let a_mar30 = intervals(&mut a, "2026-03-30");
    // B: the 100-quarter-hour day, then a meter exchange at 12:00 on 26 October.
    let b_oct25 = intervals(&mut b, "2026-10-25");
    let (b_old, b_newobj) = exchange(&mut b, &mut b_new, "2026-10-26", "12:00:00+01:00");
    // C: a hole of 7 quarter-hours (six items missing) and one step beyond capacity.
    let mut c_day = intervals(&mut c, "2026-10-25");
    let mut c_next = intervals(&mut c, "2026-10-26");
    c_day["items"].as_array_mut().unwrap().drain(20..26);
    let items = c_next["items"].as_array_mut().unwrap();
    let jump = 5_000.0 / 1000.0; // 5,000 Wh in one quarter-hour > 17,250 W / 4 = 4,312 Wh
    for item in items[50..].iter_mut() {
        let v = item["r180"].as_f64().unwrap() + jump;
        item["r180"] = serde_json::json!((v * 1000.0).round() / 1000.0);
    }
    for obj in [
        &a_mar, &a_mar30, &b_oct25, &b_old, &b_newobj, &c_day, &c_next,
    ] {
        env.server.push([FeedEntry::interval(obj.clone())]);
    }
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["ingest", "grid"]));
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["transform"]));
    let all = table(&env);

    // 29 March: 92 quarter-hours, L = register at 30 March 00:00 − register at 29 March 00:00.
    // The first reading of the 29th is 00:15, so the first quarter-hour has no start register:
    // missing; the other 91 are measured and sum to last − first item.
    let mar = day_rows(&all, EAN_A, "2026-03-28 23:00:00", "2026-03-29 22:00:00");
    assert_eq!(mar.len(), 92);
    let items = a_mar["items"].as_array().unwrap();
    let l_sum: i64 = mar.iter().filter_map(|r| r.0).sum();
    assert_eq!(l_sum, wh(&items[91]["r180"]) - wh(&items[0]["r180"]));
    assert_eq!(mar.iter().filter(|r| r.4 == "missing").count(), 1);
    // 30 March: 96, all measured (its 00:00 reading closed the 29th).
    let mar30 = day_rows(&all, EAN_A, "2026-03-29 22:00:00", "2026-03-30 22:00:00");
    assert_eq!(mar30.len(), 96);
    assert!(mar30.iter().all(|r| r.4 == "measured"));
    let items30 = a_mar30["items"].as_array().unwrap();
    assert_eq!(
        mar30.iter().filter_map(|r| r.0).sum::<i64>(),
        wh(&items30[95]["r180"]) - wh(&items[91]["r180"])
    );

    // 25 October: 100 quarter-hours for B.
    assert_eq!(
        day_rows(&all, EAN_B, "2026-10-24 22:00:00", "2026-10-25 23:00:00").len(),
        100
    );
    // 26 October, the exchange: 96 quarter-hours, all measured, none negative; L is the old
    // meter's rise up to 12:00 plus the new meter's rise from its initial reading.
    let oct26 = day_rows(&all, EAN_B, "2026-10-25 23:00:00", "2026-10-26 23:00:00");
    assert_eq!(oct26.len(), 96);
    assert!(oct26.iter().all(|r| r.4 == "measured" && r.0.unwrap() >= 0));
    let (old_items, new_items) = (
        b_old["items"].as_array().unwrap(),
        b_newobj["items"].as_array().unwrap(),
    );
    let b25 = b_oct25["items"].as_array().unwrap();
    let expected = (wh(&old_items[47]["r180"]) - wh(&b25[99]["r180"]))
        + (wh(&new_items[48]["r180"]) - wh(&new_items[0]["r180"]));
    assert_eq!(oct26.iter().map(|r| r.0.unwrap()).sum::<i64>(), expected);
    // No installation: V = L, P empty.
    assert!(oct26.iter().all(|r| r.3 == r.0 && r.2.is_none()));

    // C's hole: the reading before it (item 19, t = 05:00 local = 04:00Z) to the one after
    // (item 26 of the full day, now item 20): 7 quarter-hours, estimated, summing exactly.
    let hole = day_rows(&all, EAN_C, "2026-10-25 03:00:00", "2026-10-25 04:45:00");
    let cd = c_day["items"].as_array().unwrap();
    assert_eq!(hole.len(), 7);
    assert!(hole.iter().all(|r| r.4 == "estimated"), "{hole:?}");
    assert_eq!(
        hole.iter().map(|r| r.0.unwrap()).sum::<i64>(),
        wh(&cd[20]["r180"]) - wh(&cd[19]["r180"])
    );
    // The jump: item 50 of the 26th rose 5,000 Wh more than it did: rejected, quarter missing.
    let rows = lake_rows(&env.lake());
    let over: Vec<&String> = rows["rejected"]
        .iter()
        .filter(|r| r.contains("reason=over_capacity;"))
        .collect();
    assert_eq!(over.len(), 1, "{over:?}");
    assert!(over[0].contains(&format!("key={EAN_C};")));
    let oct26c = day_rows(&all, EAN_C, "2026-10-25 23:00:00", "2026-10-26 23:00:00");
    assert_eq!(oct26c.iter().filter(|r| r.4 == "missing").count(), 1);
}

#[test]
fn late_correction_replaces_estimates_and_v_includes_production() {
    let mut reg = registry(&[EAN_A]);
    let fake = FakeInstallations::spawn().unwrap();
    fake.add("inst-a", EAN_A, "tok", "SDM120-A");
    reg.connections[0].installation = Some(Installation {
        id: "inst-a".into(),
        url: fake.url("inst-a"),
    });
    let env = Env::new(&reg);
    env.with_tokens(&[("inst-a", "tok")]);
    // P readings from 24 Oct 00:00 (UTC) every quarter-hour for two days.
    fake.produce(
        "inst-a",
        "2026-10-24T00:00:00Z".parse().unwrap(),
        2 * 96 + 8,
        1,
    );
    let mut a = meter(EAN_A, "MA1", 5_000_000, true);
    let mut first = intervals(&mut a, "2026-10-24");
    let corrected = first.clone();
    for item in first["items"].as_array_mut().unwrap()[40..48].iter_mut() {
        item["quality"] = "estimated".into();
    }
    env.server.push([
        FeedEntry::interval(first),
        FeedEntry::interval(intervals(&mut a, "2026-10-25")),
    ]);
    assert_ok(&env.vaten("2026-10-27T10:00:00Z", &["ingest"]));
    assert_ok(&env.vaten("2026-10-27T10:00:00Z", &["transform"]));
    // Items 40–47 (ends of quarter-hours 40–47) are estimated, and quarter-hour 48 starts at
    // item 47: a quarter-hour is as good as the worse of its two readings, so 9.
    let est = |env: &Env| table(env).values().filter(|r| r.4 == "estimated").count();
    assert_eq!(est(&env), 9);
    env.server.push([FeedEntry::interval(corrected)]);
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["ingest", "grid"]));
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["transform"]));
    let all = table(&env);
    assert_eq!(
        all.values().filter(|r| r.4 == "estimated").count(),
        0,
        "the correction wins"
    );
    // V = P + L − T on every row that has all three; P is there for the quarter-hours the
    // installation covered.
    let with_p: Vec<_> = all
        .values()
        .filter(|r| r.2.is_some() && r.0.is_some())
        .collect();
    assert!(with_p.len() > 150, "{}", with_p.len());
    for r in &with_p {
        assert_eq!(r.3, Some(r.2.unwrap() + r.0.unwrap() - r.1.unwrap()));
    }
    // A transform run again gives the same table.
    let before = lake_rows(&env.lake());
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["transform"]));
    assert_eq!(lake_rows(&env.lake()), before);
}

#[test]
fn daily_sums_match_duckdb_and_reconcile_with_day_registers() {
    let env = Env::new(&registry(&[EAN_A, EAN_B]));
    let mut a = meter(EAN_A, "MA1", 5_000_000, true);
    let mut b = meter(EAN_B, "MB1", 7_000_000, false);
    let dates = ["2026-10-24", "2026-10-25", "2026-10-26", "2026-10-27"];
    for (k, date) in dates.iter().enumerate() {
        let mut day_a = day(&a, date).value();
        if *date == "2026-10-26" {
            // A's register at 26 October 00:00 is off by 10 Wh: the 25th and the 26th of A
            // cannot reconcile; every other day with registers at both ends does.
            let v = day_a["r182"].as_f64().unwrap() + 0.010;
            day_a["r182"] = serde_json::json!((v * 1000.0).round() / 1000.0);
        }
        env.server.push([FeedEntry::day(day_a), day(&b, date)]);
        if k < 3 {
            env.server.push([
                FeedEntry::interval(intervals(&mut a, date)),
                FeedEntry::interval(intervals(&mut b, date)),
            ]);
        }
    }
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["ingest", "grid"]));
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["transform"]));

    let text = duckdb_recomputes_marts(&env);
    assert!(text.contains("daily matches: 6 rows"), "{text}");

    let rows = lake_rows(&env.lake());
    let reconciled = |ean: &str, date: &str| -> String {
        let row = rows["consumption_daily"]
            .iter()
            .find(|r| r.contains(&format!("ean={ean};")) && r.contains(&format!("date={date};")))
            .unwrap();
        field(row, "reconciled").to_string()
    };
    // The 24th's first quarter-hour starts at the day register of 00:00 (no reading stands
    // there), so the 24th is complete and reconciles.
    assert_eq!(reconciled(EAN_A, "2026-10-24"), "true");
    assert_eq!(reconciled(EAN_A, "2026-10-25"), "false");
    assert_eq!(reconciled(EAN_A, "2026-10-26"), "false");
    assert_eq!(reconciled(EAN_B, "2026-10-25"), "true");
    assert_eq!(reconciled(EAN_B, "2026-10-26"), "true");

    // The year's tax base: netting in 2026, a whole-year member, far from complete.
    let tax = rows["tax_base_yearly"]
        .iter()
        .find(|r| r.contains(&format!("ean={EAN_B};")))
        .unwrap();
    for part in [
        "year=2026;",
        "regime=netting;",
        "member_days=365;",
        "complete=false;",
        "rates_confirmed=true;",
    ] {
        assert!(tax.contains(part), "{part} in {tax}");
    }
}

#[test]
fn expired_day_is_derived_from_its_day_registers() {
    let env = Env::new(&registry(&[EAN_A]));
    let mut a = meter(EAN_A, "MA1", 5_000_000, true);
    let regs: Vec<Value> = ["2026-10-05", "2026-10-06", "2026-10-07"]
        .iter()
        .map(|d| {
            let reg = day(&a, d).value();
            let obj = intervals(&mut a, d);
            // The 6th's quarter-hours expired at the service: only its day registers remain.
            if *d != "2026-10-06" {
                env.server.push([FeedEntry::interval(obj)]);
            }
            reg
        })
        .collect();
    env.server.push(regs.iter().cloned().map(FeedEntry::day));
    env.server.push([day(&a, "2026-10-08")]);
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["ingest", "grid"]));
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["transform"]));
    let all = table(&env);
    // 6 October: 96 derived quarter-hours summing exactly to the registers' difference
    // (r181 + r182 at the 7th minus at the 6th); the days around it stay measured.
    let day6 = day_rows(&all, EAN_A, "2026-10-05 22:00:00", "2026-10-06 22:00:00");
    assert_eq!(day6.len(), 96);
    assert!(day6.iter().all(|r| r.4 == "derived"), "{:?}", &day6[..3]);
    let total = |v: &Value, a: &str, b: &str| wh(&v[a]) + wh(&v[b]);
    assert_eq!(
        day6.iter().map(|r| r.0.unwrap()).sum::<i64>(),
        total(&regs[2], "r181", "r182") - total(&regs[1], "r181", "r182")
    );
    assert_eq!(
        day6.iter().map(|r| r.1.unwrap()).sum::<i64>(),
        total(&regs[2], "r281", "r282") - total(&regs[1], "r281", "r282")
    );
    // The 7th's first quarter-hour starts at the daily register of 00:00 (derived): derived
    // too; the other 95 lie between measured readings.
    let day7 = day_rows(&all, EAN_A, "2026-10-06 22:00:00", "2026-10-07 22:00:00");
    assert_eq!(day7[0].4, "derived");
    assert!(day7[1..].iter().all(|r| r.4 == "measured"));
    let rows = lake_rows(&env.lake());
    let daily = rows["consumption_daily"]
        .iter()
        .find(|r| r.contains("date=2026-10-06;"))
        .unwrap();
    assert!(daily.contains("intervals_derived=96;"), "{daily}");
}

/// Invariants over generated cooperatives with random holes and meter exchanges, for several
/// seeds: per connection Σ L and Σ T equal the per-meter last-minus-first registers; V = L for
/// connections without installation; daily, yearly and cable tables agree with intervals
/// (DuckDB recomputes them).
#[test]
fn invariants_over_generated_cooperatives() {
    let eans = [EAN_A, EAN_B, EAN_C, EAN_D];
    for seed in [3u64, 11, 29] {
        let env = Env::new(&registry(&eans));
        let mut rng = seed;
        let mut next = || {
            rng = vaten::fake::synth::mix(rng);
            rng
        };
        // Per EAN: Σ over meters of (last − first) register, L and T.
        let mut expected: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for (k, ean) in eans.iter().enumerate() {
            let mut m = meter(
                ean,
                &format!("M{k}a"),
                1_000_000 + k as i64 * 77_777,
                k % 2 == 0,
            );
            let mut firsts_lasts: Vec<(i64, i64, i64, i64)> = Vec::new();
            let mut current: Option<(i64, i64)> = None;
            for (dn, date) in ["2026-10-24", "2026-10-25", "2026-10-26"]
                .iter()
                .enumerate()
            {
                let mut obj = intervals(&mut m, date);
                let items = obj["items"].as_array_mut().unwrap();
                // A random hole inside the day (never the last item, so it stays bracketed).
                let start = (next() % 60) as usize + 10;
                let len = (next() % 8) as usize;
                items.drain(start..start + len);
                let (f, l) = (&items[0], &items[items.len() - 1]);
                if current.is_none() {
                    current = Some((wh(&f["r180"]), wh(&f["r280"])));
                }
                let last = (wh(&l["r180"]), wh(&l["r280"]));
                let last_t = l["t"].clone();
                env.server.push([FeedEntry::interval(obj)]);
                // Now and then a meter exchange after the day (at 00:00 of the next day, the
                // new meter's first reading at the same time).
                if dn == 1 && next() % 2 == 0 {
                    let (c0, c1) = current.take().unwrap();
                    firsts_lasts.push((c0, last.0, c1, last.1));
                    let mut new = meter(ean, &format!("M{k}b"), (next() % 50) as i64, k % 2 == 0);
                    let first = serde_json::json!({"t": last_t, "r180": new.import_wh as f64 / 1000.0, "r280": new.export_wh as f64 / 1000.0, "quality": "measured"});
                    env.server.push([FeedEntry::interval(serde_json::json!({"ean": ean, "meter_id": new.meter_id, "query_date": date, "unit": "kWh", "items": [first]}))]);
                    current = Some((new.import_wh, new.export_wh));
                    std::mem::swap(&mut m, &mut new);
                }
                if dn == 2 {
                    let (c0, c1) = current.unwrap();
                    firsts_lasts.push((c0, last.0, c1, last.1));
                }
            }
            let l: i64 = firsts_lasts.iter().map(|x| x.1 - x.0).sum();
            let t: i64 = firsts_lasts.iter().map(|x| x.3 - x.2).sum();
            expected.insert(ean, (l, t));
        }
        assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["ingest", "grid"]));
        assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["transform"]));
        let all = table(&env);
        for ean in eans {
            let rows: Vec<_> = all
                .iter()
                .filter(|((e, _), _)| e == ean)
                .map(|(_, r)| r)
                .collect();
            let l: i64 = rows.iter().filter_map(|r| r.0).sum();
            let t: i64 = rows.iter().filter_map(|r| r.1).sum();
            assert_eq!((l, t), expected[ean], "seed {seed}, {ean}");
            assert!(
                rows.iter().all(|r| r.3 == r.0),
                "V = L without installation"
            );
            assert!(
                rows.iter().all(|r| r.0.is_none_or(|v| v >= 0)),
                "never negative"
            );
        }
        duckdb_recomputes_marts(&env);
    }
}

#[test]
fn production_meter_exchange_gives_no_negative_or_huge_p() {
    let mut reg = registry(&[EAN_A]);
    let fake = FakeInstallations::spawn().unwrap();
    fake.add("inst-a", EAN_A, "tok", "SDM120-OLD");
    reg.connections[0].installation = Some(Installation {
        id: "inst-a".into(),
        url: fake.url("inst-a"),
    });
    let env = Env::new(&reg);
    env.with_tokens(&[("inst-a", "tok")]);
    // 40 quarter-hours on the old meter, an exchange (new meter from 2 Wh at the same time),
    // 40 more on the new one.
    fake.produce("inst-a", "2026-10-26T08:00:00Z".parse().unwrap(), 40, 1);
    fake.exchange_meter("inst-a", "SDM120-NEW");
    fake.produce("inst-a", "2026-10-26T18:00:00Z".parse().unwrap(), 40, 2);
    let mut a = meter(EAN_A, "MA1", 100_000, true);
    env.server.push([
        FeedEntry::interval(intervals(&mut a, "2026-10-26")),
        FeedEntry::interval(intervals(&mut a, "2026-10-27")),
    ]);
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["ingest"]));
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["transform"]));
    // Independently from the installation's own registers, read back from the lake.
    let df = env
        .lake()
        .read_table(&vaten::lake::schema::INSTALLATION_READINGS)
        .unwrap();
    let meter_of = df.column("p_meter").unwrap().str().unwrap().clone();
    let p = df.column("p_wh").unwrap().i64().unwrap().clone();
    let mut per_meter: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for i in 0..df.height() {
        let e = per_meter
            .entry(meter_of.get(i).unwrap().to_string())
            .or_insert((i64::MAX, i64::MIN));
        e.0 = e.0.min(p.get(i).unwrap());
        e.1 = e.1.max(p.get(i).unwrap());
    }
    let expected: i64 = per_meter.values().map(|(lo, hi)| hi - lo).sum();
    let all = table(&env);
    let p_values: Vec<i64> = all.values().filter_map(|r| r.2).collect();
    assert_eq!(p_values.iter().sum::<i64>(), expected);
    assert!(
        p_values.iter().all(|v| (0..=5_000).contains(v)),
        "no negative or huge P"
    );
}

/// A production register that jumps without a meter exchange: before, any step passed (the
/// limit was i64::MAX / 4) and became a huge P and V.
#[test]
fn a_production_step_above_the_installations_capacity_is_rejected() {
    let mut reg = registry(&[EAN_A]);
    let fake = FakeInstallations::spawn().unwrap();
    fake.add("inst-a", EAN_A, "tok", "SDM120-A");
    reg.connections[0].installation = Some(Installation {
        id: "inst-a".into(),
        url: fake.url("inst-a"),
    });
    // Panels and inverter of 4 kW: at most 1,000 Wh in a quarter-hour.
    reg.connections[0].production_capacity_w = 4_000;
    let env = Env::new(&reg);
    env.with_tokens(&[("inst-a", "tok")]);
    let t0: chrono::DateTime<chrono::Utc> = "2026-10-24T10:00:00Z".parse().unwrap();
    let q = |k: i64| t0 + chrono::Duration::minutes(15 * k);
    // +300 Wh, a glitch of +50,000 Wh, +200 Wh, then the full 1,000 Wh a quarter-hour allows.
    for (k, p) in [1_000_000, 1_000_300, 1_050_300, 1_050_500, 1_051_500]
        .into_iter()
        .enumerate()
    {
        fake.push_register("inst-a", q(k as i64), p);
    }
    let mut a = meter(EAN_A, "MA1", 5_000_000, true);
    env.server
        .push([FeedEntry::interval(intervals(&mut a, "2026-10-24"))]);
    assert_ok(&env.vaten("2026-10-27T10:00:00Z", &["ingest"]));
    assert_ok(&env.vaten("2026-10-27T10:00:00Z", &["transform"]));
    let rows = lake_rows(&env.lake());
    let over: Vec<&String> = rows["rejected"]
        .iter()
        .filter(|r| r.contains("reason=over_capacity;"))
        .collect();
    assert_eq!(over.len(), 1, "{over:?}");
    assert!(over[0].contains("production"), "{}", over[0]);
    let all = table(&env);
    let p = |k: i64| {
        let start = q(k - 1).format("%Y-%m-%d %H:%M:%S").to_string();
        let row = all
            .iter()
            .find(|((e, s), _)| e == EAN_A && s.starts_with(&start));
        row.expect("the quarter-hour's row").1 .2
    };
    assert_eq!(
        (p(1), p(2), p(3), p(4)),
        (Some(300), None, Some(200), Some(1_000)),
        "the glitch's quarter-hour is missing, the others stand"
    );
}

/// The cable's voltages: only the installations of members that day, one value per
/// installation per quarter-hour. Before, a non-member's installation counted, and at a
/// production-meter exchange (two readings at the same time) an installation counted twice.
#[test]
fn cable_voltages_come_from_members_one_value_per_installation() {
    use vaten_firmware::readings::VoltageStats;
    let mut reg = registry(&[EAN_A, EAN_B, EAN_C]);
    let fake = FakeInstallations::spawn().unwrap();
    for (i, (ean, id)) in [(EAN_A, "inst-a"), (EAN_B, "inst-b"), (EAN_C, "inst-c")]
        .into_iter()
        .enumerate()
    {
        fake.add(id, ean, "tok", &format!("SDM120-{i}"));
        reg.connections[i].installation = Some(Installation {
            id: id.into(),
            url: fake.url(id),
        });
    }
    // B left the cooperative the day before.
    reg.connections[1].member_until = Some(d("2026-10-23"));
    let env = Env::new(&reg);
    env.with_tokens(&[("inst-a", "tok"), ("inst-b", "tok"), ("inst-c", "tok")]);
    let t0: chrono::DateTime<chrono::Utc> = "2026-10-24T10:00:00Z".parse().unwrap();
    let volts = |v: f32| {
        Some(VoltageStats {
            avg_v: v,
            min_v: v - 2.0,
            max_v: v + 2.0,
        })
    };
    for k in 0..4 {
        let t = t0 + chrono::Duration::minutes(15 * k);
        let p = 1_000 + 100 * k as u64;
        fake.record("inst-a", t, p, 0, 0, None, volts(230.0));
        fake.record("inst-b", t, p, 0, 0, None, volts(250.0));
        fake.record("inst-c", t, p, 0, 0, None, volts(240.0));
        if k == 2 {
            // A's production meter is exchanged at the end of this quarter-hour.
            fake.exchange_meter("inst-a", "SDM120-NEW");
        }
    }
    let mut meters = [
        meter(EAN_A, "MA1", 5_000_000, true),
        meter(EAN_B, "MB1", 4_000_000, true),
        meter(EAN_C, "MC1", 3_000_000, true),
    ];
    for m in &mut meters {
        env.server
            .push([FeedEntry::interval(intervals(m, "2026-10-24"))]);
    }
    assert_ok(&env.vaten("2026-10-27T10:00:00Z", &["ingest"]));
    assert_ok(&env.vaten("2026-10-27T10:00:00Z", &["transform"]));
    let rows: Vec<String> = lake_rows(&env.lake())["cable_balance_15m"]
        .iter()
        .filter(|r| r.contains("voltage_avg_v=2"))
        .cloned()
        .collect();
    // Four readings per installation: four quarter-hours with voltages.
    assert_eq!(rows.len(), 4, "{rows:#?}");
    for r in &rows {
        // A (230 V) and C (240 V) only: mean 235, extremes 228 and 242. With B: 240 and 252;
        // with A twice at the exchange: 233.33….
        assert_eq!(
            (
                field(r, "voltage_avg_v"),
                field(r, "voltage_min_v"),
                field(r, "voltage_max_v")
            ),
            ("235.0", "228.0", "242.0"),
            "{r}"
        );
    }
}

/// A connection computed in a group of its own still speaks for the cable's voltages where it
/// has no quarter-hours itself: C's installation reported once (no energy yet, so C has no
/// rows), A's grid readings give the cable that quarter-hour. Computed whole or a connection
/// at a time, the cable balance is the same, with C's voltage in it.
#[test]
fn a_group_without_rows_still_gives_the_cable_its_installations_voltages() {
    use vaten_firmware::readings::VoltageStats;
    let mut reg = registry(&[EAN_A, EAN_C]);
    let fake = FakeInstallations::spawn().unwrap();
    fake.add("inst-c", EAN_C, "tok", "SDM120-C");
    reg.connections[1].installation = Some(Installation {
        id: "inst-c".into(),
        url: fake.url("inst-c"),
    });
    let env = Env::new(&reg);
    env.with_tokens(&[("inst-c", "tok")]);
    let volts = Some(VoltageStats {
        avg_v: 240.0,
        min_v: 238.0,
        max_v: 243.0,
    });
    // The quarter-hour 09:45–10:00 UTC of 24 October.
    fake.record(
        "inst-c",
        "2026-10-24T10:00:00Z".parse().unwrap(),
        1_000,
        0,
        0,
        None,
        volts,
    );
    let mut a = meter(EAN_A, "MA1", 5_000_000, true);
    env.server
        .push([FeedEntry::interval(intervals(&mut a, "2026-10-24"))]);
    let now = "2026-10-27T10:00:00Z";
    assert_ok(&env.vaten(now, &["ingest"]));
    assert_ok(&env.vaten(now, &["transform", "--full"]));
    let whole = lake_rows(&env.lake());
    let with_volts: Vec<&String> = whole["cable_balance_15m"]
        .iter()
        .filter(|r| !r.contains("voltage_avg_v=null"))
        .collect();
    assert_eq!(with_volts.len(), 1, "{with_volts:#?}");
    assert!(
        with_volts[0].contains("voltage_avg_v=240.0;")
            && with_volts[0].contains("voltage_min_v=238.0;")
            && with_volts[0].contains("voltage_max_v=243.0;"),
        "{}",
        with_volts[0]
    );
    assert!(!whole["intervals"].iter().any(|r| r.contains(EAN_C)));
    let grouped = env
        .command(now, &["-v", "transform", "--full"])
        .env("VATEN_GROUP_SERIES_DAYS", "1")
        .output()
        .unwrap();
    assert_ok(&grouped);
    assert!(
        stderr(&grouped).contains("1 large cables computed in 2 groups"),
        "{}",
        stderr(&grouped)
    );
    let got = lake_rows(&env.lake());
    for table in ["intervals", "cable_balance_15m", "cable_balance_daily"] {
        let only_grouped: Vec<&String> = got[table]
            .iter()
            .filter(|r| !whole[table].contains(r))
            .collect();
        assert!(
            got[table].len() == whole[table].len() && only_grouped.is_empty(),
            "{table}: {} rows in groups, {} whole; only in groups: {only_grouped:#?}",
            got[table].len(),
            whole[table].len()
        );
    }
}

/// The tables a transform writes.
const DERIVED_AND_REJECTED: [&str; 6] = [
    "intervals",
    "consumption_daily",
    "tax_base_yearly",
    "cable_balance_15m",
    "cable_balance_daily",
    "rejected",
];

/// A full recompute of a cooperative larger than one batch of cables (over 100 connections,
/// some with an installation; three batches of several cables) reads the received tables once
/// and sets each batch's rows aside, and computes a batch's cables two at a time. Its derived
/// tables equal those of every batch reading the files itself (`VATEN_NO_SPILL`) one cable at a
/// time (`VATEN_CABLE_WORKERS=1`), and each connection's L and T over the two days equal the
/// difference of its registers (the generator's own, not vaten's). The rows are set aside a
/// day at a time here (`VATEN_SPILL_ROWS`); the year benchmark (`tests/bench/transform_year.sh`)
/// compares a year of it, in ranges of about 2 million rows, with DuckDB.
#[test]
fn a_full_recompute_in_batches_reads_the_received_tables_once() {
    use polars::prelude::{col, DataType, IntoLazy};
    use vaten::domain::time::{local_midnight_utc, AMSTERDAM};
    use vaten::fake::synth::{cooperative_on, dates_ending, feed};
    let fake = FakeInstallations::spawn().unwrap();
    // 30 connections on each of eight cables: three cables (up to 100 connections) a batch.
    let (reg, mut meters) = cooperative_on(240, 8);
    let start = meters.clone();
    let dates = dates_ending("2026-11-19".parse().unwrap(), 2);
    let mut conns = reg.connections.clone();
    let mut tokens = Vec::new();
    for i in [0, 3, 121, 239] {
        let id = format!("inst-{i}");
        fake.add(&id, conns[i].ean.as_str(), "tok", &format!("SDM-{i}"));
        let first_end = local_midnight_utc(dates[0], AMSTERDAM) + chrono::Duration::minutes(15);
        fake.produce(&id, first_end, 2 * 96, i as u64);
        conns[i].installation = Some(Installation {
            id: id.clone(),
            url: fake.url(&id),
        });
        tokens.push(id);
    }
    let reg = vaten::registry::Registry::new(conns, reg.cables);
    let env = Env::new(&reg);
    let pairs: Vec<(&str, &str)> = tokens.iter().map(|id| (id.as_str(), "tok")).collect();
    env.with_tokens(&pairs);
    env.server.push(feed(&mut meters, &dates, AMSTERDAM, 7));
    let now = "2026-11-20T10:00:00Z";
    assert_ok(&env.vaten(now, &["ingest", "grid"]));
    assert_ok(&env.vaten(now, &["ingest", "installations"]));

    // One cable at a time, each batch reading the received files itself.
    let each_reads = env
        .command(now, &["transform", "--full"])
        .env("VATEN_NO_SPILL", "1")
        .env("VATEN_CABLE_WORKERS", "1")
        .output()
        .unwrap();
    assert_ok(&each_reads);
    let expected = lake_rows(&env.lake());
    // A day at a time: the batches' rows come from several ranges, stacked; and the cables of
    // a batch computed two at a time, each seeing only its own held rows.
    let once = env
        .command(now, &["-v", "transform", "--full"])
        .env_remove("VATEN_NO_SPILL")
        .env("VATEN_SPILL_ROWS", "1")
        .env("VATEN_CABLE_WORKERS", "2")
        .output()
        .unwrap();
    assert_ok(&once);
    assert!(
        stderr(&once).contains("read once, set aside for 3 batches"),
        "the received tables were set aside by batch: {}",
        stderr(&once)
    );
    let got = lake_rows(&env.lake());
    for table in DERIVED_AND_REJECTED {
        assert!(
            !expected[table].is_empty() || table == "rejected",
            "{table}"
        );
        assert_eq!(got[table], expected[table], "{table}");
    }
    // Cables of 30 connections computed in groups of at most 3 series (a connection with an
    // installation and one without, or three without), each group writing its own intervals
    // files: the marts are finished from the groups' parts, voltages of installations in
    // different groups included, and every table is the same.
    let grouped = env
        .command(now, &["-v", "transform", "--full"])
        .env("VATEN_GROUP_SERIES_DAYS", (3 * 366).to_string())
        .env("VATEN_CABLE_WORKERS", "2")
        .output()
        .unwrap();
    assert_ok(&grouped);
    assert!(
        stderr(&grouped).contains("8 large cables computed in"),
        "the cables were computed in groups: {}",
        stderr(&grouped)
    );
    let got = lake_rows(&env.lake());
    for table in DERIVED_AND_REJECTED {
        assert_eq!(got[table], expected[table], "{table} in groups");
    }
    assert!(
        expected["cable_balance_15m"]
            .iter()
            .any(|r| !r.contains("voltage_avg_v=null")),
        "some quarter-hours have voltages"
    );
    duckdb_recomputes_marts(&env);
    // Σ L and Σ T per connection: the registers' growth over the two days.
    let intervals = env
        .lake()
        .read_table(&vaten::lake::schema::INTERVALS)
        .unwrap();
    let sums = intervals
        .lazy()
        .group_by([col("ean")])
        .agg([
            col("l_wh").sum(),
            col("t_wh").sum(),
            col("p_wh").count().alias("p_n"),
        ])
        .collect()
        .unwrap();
    assert_eq!(sums.height(), 240);
    let (e, l, t) = (
        sums.column("ean").unwrap().str().unwrap(),
        sums.column("l_wh").unwrap().i64().unwrap(),
        sums.column("t_wh").unwrap().i64().unwrap(),
    );
    for i in 0..sums.height() {
        let ean = e.get(i).unwrap();
        let (m0, m1) = (
            start.iter().find(|m| m.ean == ean).unwrap(),
            meters.iter().find(|m| m.ean == ean).unwrap(),
        );
        assert_eq!(l.get(i), Some(m1.import_wh - m0.import_wh), "{ean}");
        assert_eq!(t.get(i), Some(m1.export_wh - m0.export_wh), "{ean}");
    }
    // The installations' production reached their connections (all but the first quarter).
    let with_p = sums.column("p_n").unwrap().cast(&DataType::Int64).unwrap();
    let with_p: Vec<i64> = with_p
        .i64()
        .unwrap()
        .into_no_null_iter()
        .filter(|n| *n > 0)
        .collect();
    assert_eq!(with_p, vec![2 * 96 - 1; 4]);
}

/// The received rows are read a range of days at a time on one thread while another sets the
/// range before aside. A received file that cannot be read, past the first ranges, stops a full
/// recompute with one clear error (no hang between the two threads, no panic), and the lake
/// keeps the derived tables it had.
#[test]
fn a_damaged_received_file_stops_a_full_recompute_that_sets_rows_aside() {
    use vaten::domain::time::AMSTERDAM;
    use vaten::fake::synth::{cooperative_on, dates_ending, feed};
    let (reg, mut meters) = cooperative_on(240, 8);
    let dates = dates_ending("2026-11-19".parse().unwrap(), 3);
    let env = Env::new(&reg);
    env.server.push(feed(&mut meters, &dates, AMSTERDAM, 7));
    let now = "2026-11-20T10:00:00Z";
    assert_ok(&env.vaten(now, &["ingest", "grid"]));
    assert_ok(&env.vaten(now, &["transform", "--full"]));
    let before = lake_rows(&env.lake());
    // The grid readings of the last day: read after the grid days and the first two days'
    // readings were handed over (a day a range).
    let day = env
        .lake()
        .root()
        .join(format!("grid_readings/date={}", dates[2]));
    let file = std::fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .unwrap();
    let kept = std::fs::read(&file).unwrap();
    std::fs::write(&file, b"PAR1 not a parquet file PAR1").unwrap();
    let mut child = env
        .command(now, &["-v", "transform", "--full"])
        .env("VATEN_SPILL_ROWS", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let ended = child.try_wait().unwrap().is_some();
    if !ended {
        child.kill().unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(ended, "the recompute hung: {}", stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    // It stopped while setting rows aside, after the first days' readings, naming the table
    // and day it could not read.
    let log = stderr(&out);
    let (d0, d2) = (dates[0], dates[2]);
    assert!(
        log.contains(&format!("grid_readings of {d0} to {d0} set aside")),
        "{log}"
    );
    assert!(!log.contains("received tables set aside"), "{log}");
    let error = log
        .lines()
        .find(|l| l.starts_with("vaten: error:"))
        .unwrap_or_default();
    let unread = format!("grid_readings: the days {d2} to {d2} could not be read");
    assert!(
        error.starts_with("vaten: error: lake ") && error.contains(&unread),
        "{log}"
    );
    // Readable again, the lake holds what it held.
    std::fs::write(&file, kept).unwrap();
    let after = lake_rows(&env.lake());
    for table in DERIVED_AND_REJECTED {
        assert_eq!(after[table], before[table], "{table}");
    }
}
