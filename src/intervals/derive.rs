//! The standard profile for `derived` quarter-hours: when a day's quarter-hours are gone for
//! good (the grid operator's 10-day retention passed) but its daily tariff registers are known,
//! those registers join the meter's series as readings at local midnight (quality `derived`),
//! and the energy between them is spread by this profile, exact to the Wh.

use chrono::Timelike;
use chrono_tz::Tz;

use crate::domain::time::from_micros;

/// A residential day shape: relative weight per local hour (night low, morning and evening
/// peaks). It only distributes a known total; the total itself stays exact.
pub const HOURLY_WEIGHTS: [u64; 24] = [
    3, 2, 2, 2, 2, 3, 5, 7, 6, 5, 5, 5, 5, 5, 5, 5, 6, 8, 10, 10, 9, 7, 5, 4,
];

/// The profile weight of the quarter-hour starting at `start_us`.
pub fn weight(start_us: i64, tz: Tz) -> u64 {
    HOURLY_WEIGHTS[from_micros(start_us).with_timezone(&tz).hour() as usize % 24]
}
