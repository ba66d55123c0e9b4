//! Fire times of a cron expression in local time, right across daylight-saving changes.
//!
//! croner (the parser under tokio-cron-scheduler) matches the fields; it is asked for the
//! next matching *wall-clock* time (a naive local time, searched as if it were UTC, which has
//! no gaps or repeats), and the wall-clock time is then placed in UTC here:
//! - a time that does not exist that day (the spring-forward gap) fires at the same offset
//!   after the jump: it is read with the offset before the change (02:30 on 29 March 2026 →
//!   01:30 UTC);
//! - an ambiguous time (the autumn repeat) fires at its first occurrence only (02:30 on
//!   25 October 2026 → 00:30 UTC), so a nightly job never runs twice.
//!
//! tokio-cron-scheduler's own time-zone jobs keep the UTC offset of the moment they were
//! created, fire an hour off after a change until a restart; hence this module.

use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// A parsed cron expression (5 fields, or 6 with seconds first) in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    cron: Cron,
    tz: Tz,
}

impl Schedule {
    /// Parses `expr`; the error says what croner found wrong.
    pub fn parse(expr: &str, tz: Tz) -> Result<Self, String> {
        let cron =
            Cron::from_str(expr).map_err(|e| format!("bad cron expression `{expr}`: {e}"))?;
        Ok(Schedule {
            expr: expr.to_string(),
            cron,
            tz,
        })
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The UTC instant of a local wall-clock time, by the rules above.
    pub fn place(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        match self.tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            LocalResult::None => {
                // In the gap: the offset in force just before it.
                let before = self.tz.offset_from_utc_datetime(
                    &(wall - chrono::Duration::hours(3)).and_utc().naive_utc(),
                );
                let offset = chrono::Offset::fix(&before);
                (wall - chrono::Duration::seconds(i64::from(offset.local_minus_utc()))).and_utc()
            }
        }
    }

    fn wall(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.with_timezone(&self.tz).naive_local()
    }

    /// The next matching wall-clock time strictly after `wall`.
    fn next_wall(&self, wall: NaiveDateTime) -> Option<NaiveDateTime> {
        self.cron
            .find_next_occurrence(&Utc.from_utc_datetime(&wall), false)
            .ok()
            .map(|t| t.naive_utc())
    }

    fn prev_wall(&self, wall: NaiveDateTime) -> Option<NaiveDateTime> {
        self.cron
            .find_previous_occurrence(&Utc.from_utc_datetime(&wall), true)
            .ok()
            .map(|t| t.naive_utc())
    }

    /// The first fire time strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Start an hour of wall clock back: in the repeated hour the wall clock runs behind.
        let mut wall = self.wall(now) - chrono::Duration::hours(1);
        loop {
            wall = self.next_wall(wall)?;
            let t = self.place(wall);
            if t > now {
                return Some(t);
            }
        }
    }

    /// The last fire time at or before `now` (for catch-up).
    pub fn last_at_or_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut wall = self.wall(now) + chrono::Duration::hours(1);
        loop {
            let w = self.prev_wall(wall)?;
            let t = self.place(w);
            if t <= now {
                return Some(t);
            }
            wall = w - chrono::Duration::seconds(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    const AMS: Tz = chrono_tz::Europe::Amsterdam;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// Every fire time in [from, to), stepping with `next_after`.
    fn fires(s: &Schedule, from: &str, to: &str) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = utc(from);
        while let Some(n) = s.next_after(t) {
            if n >= utc(to) {
                break;
            }
            out.push(n);
            t = n;
        }
        out
    }

    #[test]
    fn nightly_jobs_fire_once_per_local_day_across_both_changes() {
        // Expected instants by hand: CET is UTC+1, CEST UTC+2; the change days are
        // 29 March 2026 (02:00 → 03:00) and 25 October 2026 (03:00 → 02:00).
        let s0230 = Schedule::parse("30 2 * * *", AMS).unwrap();
        let s0930 = Schedule::parse("0 30 9 * * *", AMS).unwrap();
        assert_eq!(
            fires(&s0230, "2026-03-27T23:00:00Z", "2026-04-01T22:00:00Z"),
            [
                "2026-03-28T01:30:00Z", // CET
                "2026-03-29T01:30:00Z", // 02:30 does not exist: same offset after the jump
                "2026-03-30T00:30:00Z", // CEST
                "2026-03-31T00:30:00Z",
                "2026-04-01T00:30:00Z",
            ]
            .map(utc)
        );
        assert_eq!(
            fires(&s0930, "2026-03-27T23:00:00Z", "2026-04-01T22:00:00Z"),
            [
                "2026-03-28T08:30:00Z",
                "2026-03-29T07:30:00Z",
                "2026-03-30T07:30:00Z",
                "2026-03-31T07:30:00Z",
                "2026-04-01T07:30:00Z",
            ]
            .map(utc)
        );
        assert_eq!(
            fires(&s0230, "2026-10-23T22:00:00Z", "2026-10-28T23:00:00Z"),
            [
                "2026-10-24T00:30:00Z", // CEST
                "2026-10-25T00:30:00Z", // 02:30 happens twice: the first (CEST) only
                "2026-10-26T01:30:00Z", // CET
                "2026-10-27T01:30:00Z",
                "2026-10-28T01:30:00Z",
            ]
            .map(utc)
        );
        assert_eq!(
            fires(&s0930, "2026-10-23T22:00:00Z", "2026-10-28T23:00:00Z"),
            [
                "2026-10-24T07:30:00Z",
                "2026-10-25T08:30:00Z",
                "2026-10-26T08:30:00Z",
                "2026-10-27T08:30:00Z",
                "2026-10-28T08:30:00Z",
            ]
            .map(utc)
        );
        // Exactly once per local day.
        for (from, to) in [
            ("2026-03-27T23:00:00Z", "2026-04-01T22:00:00Z"),
            ("2026-10-23T22:00:00Z", "2026-10-28T23:00:00Z"),
        ] {
            let days: Vec<NaiveDate> = fires(&s0230, from, to)
                .iter()
                .map(|t| t.with_timezone(&AMS).date_naive())
                .collect();
            let mut unique = days.clone();
            unique.dedup();
            assert_eq!(days, unique);
        }
    }

    #[test]
    fn started_inside_the_repeated_hour_it_does_not_fire_again() {
        let s = Schedule::parse("30 2 * * *", AMS).unwrap();
        // 01:45 UTC on 25 October is 02:45 CET, the second pass: 02:30 already fired.
        assert_eq!(
            s.next_after(utc("2026-10-25T01:45:00Z")),
            Some(utc("2026-10-26T01:30:00Z"))
        );
        assert_eq!(
            s.last_at_or_before(utc("2026-10-25T01:45:00Z")),
            Some(utc("2026-10-25T00:30:00Z"))
        );
    }

    #[test]
    fn seconds_and_the_last_fire_time() {
        let s = Schedule::parse("*/5 * * * * *", AMS).unwrap();
        assert_eq!(
            s.next_after(utc("2026-11-26T10:00:02Z")),
            Some(utc("2026-11-26T10:00:05Z"))
        );
        let nightly = Schedule::parse("0 30 9 * * *", AMS).unwrap();
        assert_eq!(
            nightly.last_at_or_before(utc("2026-11-26T08:00:00Z")),
            Some(utc("2026-11-25T08:30:00Z")),
            "before today's 09:30 the last time was yesterday's"
        );
        assert_eq!(
            nightly.last_at_or_before(utc("2026-11-26T08:30:00Z")),
            Some(utc("2026-11-26T08:30:00Z"))
        );
        assert!(Schedule::parse("61 * * * *", AMS).is_err());
        assert!(Schedule::parse("every day", AMS).is_err());
    }
}
