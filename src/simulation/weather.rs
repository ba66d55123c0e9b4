//! What drives the households: the BDEW H25 standard load profile (vendored in
//! `data/profiles/`) and solar production from a clear-sky model at 52° N with cloudy days.

use std::sync::OnceLock;

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use chrono_tz::Tz;

const H25: &str = include_str!("../../data/profiles/bdew-h25.csv");

/// H25 in kWh per quarter-hour for 1,000,000 kWh a year: [month 0..12][day type 0..3][quarter].
type Table = Vec<[[f64; 96]; 3]>;

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = vec![[[0.0; 96]; 3]; 12];
        for (q, line) in H25.lines().skip(2).take(96).enumerate() {
            // Columns after the time: for each month, SA, FT, WT.
            for (c, v) in line.split(',').skip(1).enumerate() {
                let v: f64 = v.trim().parse().expect("H25 value");
                t[c / 3][c % 3][q] = v;
            }
        }
        t
    })
}

/// The household load in W at local time `t` for a yearly consumption of `kwh_year`,
/// before the household's own noise.
pub fn h25_w(t: DateTime<Utc>, tz: Tz, kwh_year: f64) -> f64 {
    let local = t.with_timezone(&tz);
    let day_type = match local.weekday() {
        Weekday::Sat => 0,
        Weekday::Sun => 1,
        _ => 2,
    };
    let q = (local.hour() * 4 + local.minute() / 15) as usize;
    let v = table()[local.month0() as usize][day_type][q.min(95)];
    let d = f64::from(local.ordinal());
    let dynamic =
        -3.92e-10 * d.powi(4) + 3.2e-7 * d.powi(3) - 7.02e-5 * d.powi(2) + 0.0021 * d + 1.24;
    // kWh per quarter-hour → W: × 4 per hour × 1000.
    v * dynamic * kwh_year / 1e6 * 4.0 * 1000.0
}

pub use crate::domain::sun::clear_sky_w_m2;

/// A deterministic pseudo-random number in [0, 1) from a seed and a key (SplitMix64).
pub fn unit(seed: u64, key: u64) -> f64 {
    let mut z = seed ^ key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The share of clear-sky irradiance that gets through at `t`: per day clear (about a third
/// of days), mixed (passing clouds, changing every few minutes) or overcast.
pub fn cloud_factor(seed: u64, t: DateTime<Utc>) -> f64 {
    let day = t.timestamp().div_euclid(86_400) as u64;
    let kind = unit(seed, day);
    if kind < 0.35 {
        0.95
    } else if kind < 0.7 {
        let block = t.timestamp().div_euclid(300) as u64;
        0.25 + 0.7 * unit(seed ^ 0xC10D, block)
    } else {
        0.12 + 0.15 * unit(seed ^ 0x0FCA, day)
    }
}

/// PV output in W of `kwp` peak at `t` (performance ratio 0.85, panels taken as horizontal).
pub fn pv_w(t: DateTime<Utc>, kwp: f64, cloud: f64) -> f64 {
    clear_sky_w_m2(t) / 1000.0 * kwp * 1000.0 * 0.85 * cloud
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMS: Tz = chrono_tz::Europe::Amsterdam;

    #[test]
    fn h25_scales_to_the_yearly_consumption() {
        // A year of quarter-hours summed: 3,000 kWh within a few per cent (the dynamisation
        // and the day types are not normalised to exactly one year).
        let start: DateTime<Utc> = "2025-01-01T00:07:30Z".parse().unwrap();
        let kwh: f64 = (0..365 * 96)
            .map(|q| h25_w(start + chrono::Duration::minutes(15 * q), AMS, 3000.0) / 4000.0)
            .sum();
        assert!((kwh - 3000.0).abs() < 0.05 * 3000.0, "{kwh}");
        // The evening peak is above the night.
        let at = |s: &str| h25_w(s.parse().unwrap(), AMS, 3000.0);
        assert!(at("2025-01-15T18:00:00Z") > 2.0 * at("2025-01-15T03:00:00Z"));
    }
}
