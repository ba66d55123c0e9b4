//! Synthetic but plausible grid-operator data: quarter-hour registers that follow a daily
//! household rhythm, for the demo, the benchmarks and the tests. Deterministic per seed.

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::grid_operator::FeedEntry;
use crate::domain::time::quarter_hour_ends;

/// SplitMix64: a tiny, stable hash for deterministic noise.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn seed_of(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A smart meter's two cumulative registers, in Wh.
#[derive(Debug, Clone)]
pub struct Meter {
    pub ean: String,
    pub meter_id: String,
    pub import_wh: i64,
    pub export_wh: i64,
    /// Households with solar panels feed back around midday.
    pub has_pv: bool,
}

/// Wh drawn and fed back in the quarter-hour ending at `t_end`.
pub fn quarter_energy(meter: &Meter, t_end: DateTime<Utc>, tz: Tz, seed: u64) -> (i64, i64) {
    let local = t_end.with_timezone(&tz);
    let hour = f64::from(local.hour()) + f64::from(local.minute()) / 60.0;
    let noise = mix(seed ^ seed_of(&meter.ean) ^ (t_end.timestamp() as u64)) % 1000;
    let noise = noise as f64 / 1000.0;
    // Base load plus morning and evening peaks.
    let load = 40.0
        + 60.0 * (-((hour - 8.0) / 1.5).powi(2)).exp()
        + 140.0 * (-((hour - 19.0) / 2.0).powi(2)).exp();
    let import = (load * (0.6 + 0.8 * noise)).round() as i64;
    let export = if meter.has_pv {
        let sun = (-((hour - 13.0) / 2.5).powi(2)).exp();
        (250.0 * sun * (0.5 + noise)).round() as i64
    } else {
        0
    };
    (import, export)
}

fn kwh(wh: i64) -> Value {
    // Three decimals, as the service sends them.
    json!((wh as f64) / 1000.0)
}

/// The interval object of one meter for one local day, advancing the meter's registers.
/// Items carry local offsets, as the real service sends them.
pub fn day_intervals(meter: &mut Meter, date: NaiveDate, tz: Tz, seed: u64) -> Value {
    let items: Vec<Value> = quarter_hour_ends(date, tz)
        .into_iter()
        .map(|t| {
            let (i, e) = quarter_energy(meter, t, tz, seed);
            meter.import_wh += i;
            meter.export_wh += e;
            json!({"t": local_rfc3339(t, tz), "r180": kwh(meter.import_wh), "r280": kwh(meter.export_wh), "quality": "measured"})
        })
        .collect();
    json!({"ean": meter.ean, "meter_id": meter.meter_id, "query_date": date.to_string(), "unit": "kWh", "items": items})
}

/// The day object (tariff registers at 00:00 local at the start of `date`), splitting the
/// meter's totals over low and normal tariff.
pub fn day_registers(meter: &Meter, date: NaiveDate) -> Value {
    let (i1, e1) = (meter.import_wh * 2 / 5, meter.export_wh / 3);
    json!({"ean": meter.ean, "meter_id": meter.meter_id, "query_date": date.to_string(), "unit": "kWh",
           "r181": kwh(i1), "r182": kwh(meter.import_wh - i1), "r281": kwh(e1), "r282": kwh(meter.export_wh - e1)})
}

/// RFC 3339 in local time with its offset (`2026-10-25T02:15:00+01:00`).
pub fn local_rfc3339(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// Advances the meters' registers over `dates` as [`feed`] would, without building the feed
/// (a benchmark serving a year in chunks starts each chunk where the last one ended).
pub fn advance(meters: &mut [Meter], dates: &[NaiveDate], tz: Tz, seed: u64) {
    for &date in dates {
        for m in meters.iter_mut() {
            for t in quarter_hour_ends(date, tz) {
                let (i, e) = quarter_energy(m, t, tz, seed);
                m.import_wh += i;
                m.export_wh += e;
            }
        }
    }
}

/// A feed for `meters` over `dates`, in the order a service receives it: per day, the
/// day registers and the quarter-hours of every meter.
pub fn feed(meters: &mut [Meter], dates: &[NaiveDate], tz: Tz, seed: u64) -> Vec<FeedEntry> {
    let mut out = Vec::with_capacity(meters.len() * dates.len() * 2);
    for &date in dates {
        for m in meters.iter_mut() {
            out.push(FeedEntry::day(day_registers(m, date)));
            out.push(FeedEntry::interval(day_intervals(m, date, tz, seed)));
        }
    }
    out
}

/// A generated cooperative: `n` connections spread over three cables, two in three with
/// solar panels, EANs with valid check digits.
pub fn cooperative(n: usize) -> (crate::registry::Registry, Vec<Meter>) {
    cooperative_on(n, 3)
}

/// As [`cooperative`], over `cables` cables (connection `i` on cable `i mod cables`).
pub fn cooperative_on(n: usize, cables_n: usize) -> (crate::registry::Registry, Vec<Meter>) {
    use crate::registry::{Cable, Connection, Registry, DEFAULT_CAPACITY_W};
    let cables_n = cables_n.max(1);
    let mut cables = std::collections::BTreeMap::new();
    let limits = [(226.0, 244.0), (225.0, 245.0), (227.0, 243.0)];
    for (i, (low, high)) in (0..cables_n).map(|i| (i, limits[i % limits.len()])) {
        let id = format!("K{}", i + 1);
        cables.insert(
            id.clone(),
            Cable {
                cable_id: id,
                substation: "TS-Noord".into(),
                v_low_v: low,
                v_high_v: high,
            },
        );
    }
    let mut connections = Vec::with_capacity(n);
    let mut meters = Vec::with_capacity(n);
    for i in 0..n {
        let ean =
            crate::domain::Ean::with_check_digit(&format!("87168712{i:09}")).expect("17 digits");
        connections.push(Connection {
            ean: ean.clone(),
            participant_id: format!("P{:04}", i + 1),
            cable_id: format!("K{}", i % cables_n + 1),
            installation: None,
            tax_credit: true,
            capacity_w: DEFAULT_CAPACITY_W,
            production_capacity_w: DEFAULT_CAPACITY_W,
            installation_http_public: false,
            installation_cert_sha256: None,
            consent_from: None,
            consent_until: None,
            member_from: None,
            member_until: None,
        });
        let start = (mix(i as u64) % 20_000_000) as i64;
        meters.push(Meter {
            ean: ean.to_string(),
            meter_id: format!("E00{i:014}"),
            import_wh: start,
            export_wh: start / 3,
            has_pv: (i / 3) % 3 != 2,
        });
    }
    (Registry::new(connections, cables), meters)
}

/// The local days `end - days + 1 ..= end`.
pub fn dates_ending(end: NaiveDate, days: u32) -> Vec<NaiveDate> {
    (0..i64::from(days))
        .rev()
        .map(|k| end - chrono::Duration::days(k))
        .collect()
}
