//! Hand-made feeds for the grid tests, built from the synthetic meter model but cut and
//! altered here so that every expected count can be worked out by hand.

use chrono::NaiveDate;
use serde_json::{json, Value};
use vaten::domain::time::AMSTERDAM;
use vaten::fake::synth::{day_intervals, day_registers, Meter};
use vaten::fake::FeedEntry;

pub fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

pub fn meter(ean: &str, id: &str, start_wh: i64, pv: bool) -> Meter {
    Meter {
        ean: ean.into(),
        meter_id: id.into(),
        import_wh: start_wh,
        export_wh: start_wh / 4,
        has_pv: pv,
    }
}

pub fn intervals(m: &mut Meter, date: &str) -> Value {
    day_intervals(m, d(date), AMSTERDAM, 42)
}

/// Splits a day at local time `at` (e.g. "12:00:00+01:00"): the old meter keeps its items up to
/// and including `at`; the new meter (registers starting near zero) starts with an item at `at`.
pub fn exchange(old: &mut Meter, new: &mut Meter, date: &str, at: &str) -> (Value, Value) {
    let full_old = intervals(old, date);
    let start = (new.import_wh, new.export_wh);
    let full_new = intervals(new, date);
    let cut = format!("{date}T{at}");
    let keep = |obj: &Value, before: bool| -> Value {
        let mut o = obj.clone();
        let items: Vec<Value> = o["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| {
                let t = i["t"].as_str().unwrap();
                if before {
                    t <= cut.as_str()
                } else {
                    t >= cut.as_str()
                }
            })
            .cloned()
            .collect();
        o["items"] = Value::Array(items);
        o
    };
    let mut new_obj = keep(&full_new, false);
    // The new meter's registers start at its initial reading at the moment of exchange.
    let wh = |v: &Value| (v.as_f64().unwrap() * 1000.0).round() as i64;
    let first = new_obj["items"][0].clone();
    let (base_i, base_e) = (wh(&first["r180"]) - start.0, wh(&first["r280"]) - start.1);
    for item in new_obj["items"].as_array_mut().unwrap() {
        item["r180"] = json!((wh(&item["r180"]) - base_i) as f64 / 1000.0);
        item["r280"] = json!((wh(&item["r280"]) - base_e) as f64 / 1000.0);
    }
    (keep(&full_old, true), new_obj)
}

pub fn rejection(ean: &str, date: &str, code: &str) -> FeedEntry {
    FeedEntry::rejection(
        json!({"ean": ean, "query_date": date, "code": code, "text": "no valid authorisation"}),
    )
}

pub fn day(m: &Meter, date: &str) -> FeedEntry {
    FeedEntry::day(day_registers(m, d(date)))
}

/// Number of items in an interval object.
pub fn items(v: &Value) -> usize {
    v["items"].as_array().unwrap().len()
}
