//! Where the sun is: the clear-sky irradiance at the cooperative's latitude. Used by the
//! street-cable simulation for its panels and by the intervals stage to give fed-back energy on
//! derived days a daylight shape.

use chrono::{DateTime, Datelike, Timelike, Utc};

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

/// The clear-sky shape of the quarter-hour starting at `start_us` (µs): the irradiance at its
/// middle, in whole W/m², as a weight for spreading fed-back energy.
pub fn daylight_weight(start_us: i64) -> u64 {
    let middle = crate::domain::time::from_micros(start_us + 450_000_000);
    clear_sky_w_m2(middle).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn daylight_weights_are_zero_at_night() {
        let us = |s: &str| s.parse::<DateTime<Utc>>().unwrap().timestamp_micros();
        assert_eq!(daylight_weight(us("2026-03-10T23:00:00Z")), 0);
        assert!(daylight_weight(us("2026-03-10T11:30:00Z")) > 300);
    }
}
