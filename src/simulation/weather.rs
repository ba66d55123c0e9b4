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

/// Clear-sky irradiance on a horizontal surface (W/m², Haurwitz) at 52° N, 5° E.
pub fn clear_sky_w_m2(t: DateTime<Utc>) -> f64 {
    let lat = 52.0_f64.to_radians();
    let doy = f64::from(t.ordinal());
    let decl =
        (23.44_f64).to_radians() * (2.0 * std::f64::consts::PI * (284.0 + doy) / 365.0).sin();
    // Solar time: UTC plus 20 minutes for 5° E (the equation of time left out).
    let hours = f64::from(t.hour())
        + f64::from(t.minute()) / 60.0
        + f64::from(t.second()) / 3600.0
        + 1.0 / 3.0;
    let hour_angle = (15.0 * (hours - 12.0)).to_radians();
    let sin_elev = lat.sin() * decl.sin() + lat.cos() * decl.cos() * hour_angle.cos();
    if sin_elev <= 0.0 {
        return 0.0;
    }
    1098.0 * sin_elev * (-0.057 / sin_elev).exp()
}

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

    #[test]
    fn the_sun_at_52_north() {
        // Midsummer solar noon (about 11:40 UTC): elevation 61.4°, Haurwitz about 900 W/m².
        let noon = clear_sky_w_m2("2026-06-21T11:40:00Z".parse().unwrap());
        assert!((850.0..950.0).contains(&noon), "{noon}");
        // Midwinter noon: elevation 14.6°, far less; night: none.
        let winter = clear_sky_w_m2("2026-12-21T11:40:00Z".parse().unwrap());
        assert!((150.0..300.0).contains(&winter), "{winter}");
        assert_eq!(clear_sky_w_m2("2026-06-21T23:40:00Z".parse().unwrap()), 0.0);
    }
}
