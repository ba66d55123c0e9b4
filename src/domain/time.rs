//! Time on the grid: quarter-hours in UTC, calendar days in Europe/Amsterdam.
//!
//! A quarter-hour is identified by its start in UTC. Dutch offsets are whole hours, so a
//! quarter-hour boundary in UTC is one in local time too. A local day has 92 (last Sunday of
//! March), 96, or 100 (last Sunday of October) quarter-hours.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// The cooperative's time zone for calendar days.
pub const AMSTERDAM: Tz = chrono_tz::Europe::Amsterdam;

pub const QUARTER: Duration = Duration::minutes(15);

/// Parses an RFC 3339 time that must carry an explicit offset (`Z` or `±hh:mm`), to UTC.
/// The repeated October hour stays two different instants because the offset is kept.
pub fn parse_rfc3339_utc(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// True when `t` lies exactly on a quarter-hour boundary.
pub fn is_quarter_hour(t: DateTime<Utc>) -> bool {
    t.nanosecond() == 0 && t.second() == 0 && t.minute().is_multiple_of(15)
}

/// The start (UTC) of local midnight at the beginning of `date`. Midnight exists on every
/// Amsterdam day (the DST jumps are at 02:00/03:00).
pub fn local_midnight_utc(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let naive = date.and_hms_opt(0, 0, 0).expect("midnight is a valid time");
    tz.from_local_datetime(&naive)
        .earliest()
        .expect("local midnight exists in every supported zone")
        .with_timezone(&Utc)
}

/// The UTC interval `[start, end)` covered by a local calendar day.
pub fn local_day_bounds(date: NaiveDate, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let next = date.succ_opt().expect("date in range");
    (local_midnight_utc(date, tz), local_midnight_utc(next, tz))
}

/// Number of quarter-hours in a local day: 92, 96 or 100 in Amsterdam.
pub fn quarter_hours_in_day(date: NaiveDate, tz: Tz) -> usize {
    let (start, end) = local_day_bounds(date, tz);
    ((end - start).num_minutes() / 15) as usize
}

/// Local calendar day that a quarter-hour ending at `t_end` belongs to.
pub fn local_date_of_interval_end(t_end: DateTime<Utc>, tz: Tz) -> NaiveDate {
    (t_end - QUARTER).with_timezone(&tz).date_naive()
}

/// Local calendar day of an instant.
pub fn local_date(t: DateTime<Utc>, tz: Tz) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

/// The ends of all quarter-hours of a local day, in order (first `00:15`, last next `00:00`).
pub fn quarter_hour_ends(date: NaiveDate, tz: Tz) -> Vec<DateTime<Utc>> {
    let (start, end) = local_day_bounds(date, tz);
    let mut out = Vec::with_capacity(100);
    let mut t = start + QUARTER;
    while t <= end {
        out.push(t);
        t += QUARTER;
    }
    out
}

/// Day 0 of Arrow's and Polars' `Date` columns (days since the Unix epoch).
pub const EPOCH_DAY: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

/// Microseconds since the Unix epoch, the unit of every timestamp in the lake.
pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).expect("timestamp in range")
}

/// The first day a reading can plausibly be about: smart meters and this cooperative are younger.
pub const FIRST_PLAUSIBLE_DAY: NaiveDate = match NaiveDate::from_ymd_opt(2000, 1, 1) {
    Some(d) => d,
    None => panic!("a valid date"),
};

/// Why a reading about `day` cannot be true (a clock fallen back to 1970 after a power cut, a
/// corrupt date), or `None`: before 2000, or more than `margin_days` before the connection
/// joined the cooperative.
pub fn implausible_day(
    day: NaiveDate,
    member_from: Option<NaiveDate>,
    margin_days: i64,
) -> Option<String> {
    if day < FIRST_PLAUSIBLE_DAY {
        return Some(format!("is before {FIRST_PLAUSIBLE_DAY}"));
    }
    let earliest = member_from.and_then(|f| f.checked_sub_signed(Duration::days(margin_days)))?;
    (day < earliest)
        .then(|| format!("is more than {margin_days} days before the connection's member_from"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn dst_days_have_92_and_100_quarter_hours() {
        assert_eq!(quarter_hours_in_day(d("2026-03-29"), AMSTERDAM), 92);
        assert_eq!(quarter_hours_in_day(d("2026-10-25"), AMSTERDAM), 100);
        assert_eq!(quarter_hours_in_day(d("2026-11-25"), AMSTERDAM), 96);
        assert_eq!(quarter_hour_ends(d("2026-10-25"), AMSTERDAM).len(), 100);
    }

    #[test]
    fn repeated_october_hour_stays_two_instants() {
        let a = parse_rfc3339_utc("2026-10-25T02:15:00+02:00").unwrap();
        let b = parse_rfc3339_utc("2026-10-25T02:15:00+01:00").unwrap();
        assert_ne!(a, b);
        assert_eq!(b - a, Duration::hours(1));
        assert_eq!(local_date_of_interval_end(a, AMSTERDAM), d("2026-10-25"));
        assert_eq!(local_date_of_interval_end(b, AMSTERDAM), d("2026-10-25"));
    }

    #[test]
    fn offset_is_required() {
        assert!(parse_rfc3339_utc("2026-10-25T02:15:00").is_none());
        assert!(parse_rfc3339_utc("2026-10-25T02:15:00Z").is_some());
    }

    #[test]
    fn day_end_belongs_to_the_day() {
        // D+1 00:00 local closes the last quarter-hour of D.
        let t = parse_rfc3339_utc("2026-11-26T00:00:00+01:00").unwrap();
        assert_eq!(local_date_of_interval_end(t, AMSTERDAM), d("2026-11-25"));
        let (start, _) = local_day_bounds(d("2026-11-25"), AMSTERDAM);
        assert_eq!(start, parse_rfc3339_utc("2026-11-24T23:00:00Z").unwrap());
    }

    #[test]
    fn quarter_hour_check() {
        assert!(is_quarter_hour(
            parse_rfc3339_utc("2026-11-25T13:45:00Z").unwrap()
        ));
        assert!(!is_quarter_hour(
            parse_rfc3339_utc("2026-11-25T13:44:00Z").unwrap()
        ));
        assert!(!is_quarter_hour(
            parse_rfc3339_utc("2026-11-25T13:45:01Z").unwrap()
        ));
    }
}
