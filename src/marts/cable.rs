//! `cable_balance_15m` and `cable_balance_daily`: the "communicating vessels" per street
//! cable. Per quarter-hour, `matched_wh = min(Σ L, Σ T)` over the cooperative's connections on
//! the cable (one's own import and export in the same quarter-hour included); voltages come
//! from the members' installations on the cable, one value per installation per quarter-hour.

use chrono_tz::Tz;
use polars::prelude::*;

use crate::error::Result;
use crate::intervals::series::QUARTER_US;
use crate::lake::schema::INSTALLATION_READINGS;
use crate::lake::Lake;
use crate::registry::Registry;

/// Per installation on the cable and quarter-hour: (the quarter-hour's start, its connection's
/// index in the registry, mean, minimum, maximum voltage), in order of (start, connection):
/// [`balance_part`] relies on it.
type Voltages = Vec<(i64, usize, f64, f64, f64)>;

/// Voltages reported by the installations on `cable` for the quarter-hours starting at or
/// after `first_start` (µs): one value per installation per quarter-hour (at a production-meter
/// exchange two readings share a time; a re-delivered reading has a later `seq`: the latest
/// reading with voltages counts).
fn voltages(
    lake: &Lake,
    registry: &Registry,
    cable: &str,
    first_start: Option<i64>,
) -> Result<Voltages> {
    let out: Voltages = Vec::new();
    // Partitions are local days, never before the UTC day: one day of margin skips files.
    let day = first_start.map(|first| {
        crate::domain::time::from_micros(first).date_naive() - chrono::Duration::days(1)
    });
    let Some(mut lf) = lake.scan_from(&INSTALLATION_READINGS, day)? else {
        return Ok(out);
    };
    if let (Some(first), Some(day)) = (first_start, day) {
        lf = lf
            .filter(col("date").cast(DataType::Date).gt_eq(lit(day)))
            .filter(col("t").cast(DataType::Int64).gt(lit(first)));
    }
    let conn_of: PlHashMap<&str, usize> = registry
        .connections
        .iter()
        .enumerate()
        .filter(|(_, c)| c.cable_id == cable)
        .filter_map(|(i, c)| c.installation.as_ref().map(|inst| (inst.id.as_str(), i)))
        .collect();
    if conn_of.is_empty() {
        return Ok(out);
    }
    let ids: Vec<String> = conn_of.keys().map(|k| k.to_string()).collect();
    let wanted = lit(Series::new("wanted".into(), ids)).implode(false);
    let df = lf
        .filter(col("installation_id").is_in(wanted, false))
        .select([
            col("installation_id"),
            col("t").cast(DataType::Int64),
            col("seq"),
            col("voltage_avg_v"),
            col("voltage_min_v"),
            col("voltage_max_v"),
        ])
        .collect()?;
    let id = df.column("installation_id")?.str()?;
    let t = df.column("t")?.i64()?;
    let seq = df.column("seq")?.cast(&DataType::Int64)?;
    let seq = seq.i64()?;
    let f = |n: &str| -> Result<&Float64Chunked> { Ok(df.column(n)?.f64()?) };
    let (avg, min, max) = (
        f("voltage_avg_v")?,
        f("voltage_min_v")?,
        f("voltage_max_v")?,
    );
    let values = avg.iter().zip(min.iter()).zip(max.iter());
    let mut readings: Vec<Reading> = Vec::with_capacity(df.height());
    // Rows come grouped by installation (files sorted by key): the previous row's connection
    // usually answers without a lookup.
    let mut last: Option<(&str, Option<usize>)> = None;
    for (((inst, t), seq), ((a, lo), hi)) in id.iter().zip(t.iter()).zip(seq.iter()).zip(values) {
        // Readings without voltages say nothing about them.
        let (Some(inst), Some(t), Some(a), Some(lo), Some(hi)) = (inst, t, a, lo, hi) else {
            continue;
        };
        let conn = match last {
            Some((l, conn)) if l == inst => conn,
            _ => conn_of.get(inst).copied(),
        };
        last = Some((inst, conn));
        let Some(conn) = conn else { continue };
        // A reading without `seq` (none the lake's writer lets through) counts as the latest,
        // as sorting by `seq` descending put it.
        readings.push((t, conn, seq.unwrap_or(i64::MAX), a, lo, hi));
    }
    Ok(latest_by_time(readings))
}

/// One installation reading with voltages: (time, its connection's index in the registry,
/// `seq`, mean, minimum, maximum).
type Reading = (i64, usize, i64, f64, f64, f64);

/// Per connection (it has one installation) and time: the reading with the highest `seq` (a
/// re-delivered one), as (quarter-hour start, connection, mean, minimum, maximum), in order of
/// (start, connection). Of two readings with one `seq` (the ingest lets none through, a lake
/// written by hand may hold them) the one with the highest voltages, so that no order of
/// arrival decides.
///
/// The readings are put in order of time by a counting sort over the quarter-hours they span
/// (a hash map of every reading was a tenth of a full recompute's cable work); only readings
/// of one quarter-hour are then compared. Times off the quarter-hour grid, or spread over far
/// more quarter-hours than there are readings, fall back to one general sort.
fn latest_by_time(readings: Vec<Reading>) -> Voltages {
    let order = |x: &Reading, y: &Reading| {
        (x.0, x.1)
            .cmp(&(y.0, y.1))
            .then(y.2.cmp(&x.2))
            .then(y.3.total_cmp(&x.3))
            .then(y.4.total_cmp(&x.4))
            .then(y.5.total_cmp(&x.5))
    };
    let mut sorted = match by_quarter(&readings) {
        Some(mut by_time) => {
            // Held twice only while the counting sort runs (a group's year of readings is
            // some 50 MB).
            drop(readings);
            // Each run of one time is small (an installation per connection, re-deliveries).
            for run in by_time.chunk_by_mut(|x, y| x.0 == y.0) {
                run.sort_unstable_by(order);
            }
            by_time
        }
        None => {
            let mut all = readings;
            all.sort_unstable_by(order);
            all
        }
    };
    // The first of each (time, connection) is its latest reading.
    sorted.dedup_by_key(|r| (r.0, r.1));
    sorted
        .into_iter()
        .map(|(t, conn, _, a, lo, hi)| (t - QUARTER_US, conn, a, lo, hi))
        .collect()
}

/// `readings` in order of time by a counting sort over their quarter-hours; `None` when a time
/// is off the grid or the quarter-hours spanned outnumber the readings many times over.
fn by_quarter(readings: &[Reading]) -> Option<Vec<Reading>> {
    // The span, in one pass; a time off the grid ends it.
    let (mut first, mut last) = (readings.first()?.0, readings.first()?.0);
    for r in readings {
        if r.0.rem_euclid(QUARTER_US) != 0 {
            return None;
        }
        first = first.min(r.0);
        last = last.max(r.0);
    }
    let span = usize::try_from(last.checked_sub(first)? / QUARTER_US)
        .ok()?
        .checked_add(1)?;
    if span > readings.len().saturating_mul(4).saturating_add(1024) {
        return None;
    }
    let slot = |r: &Reading| ((r.0 - first) / QUARTER_US) as usize;
    let mut starts = vec![0usize; span + 1];
    for r in readings {
        starts[slot(r) + 1] += 1;
    }
    for i in 1..=span {
        starts[i] += starts[i - 1];
    }
    let mut by_time = vec![(0, 0, 0, 0.0, 0.0, 0.0); readings.len()];
    for r in readings {
        let at = &mut starts[slot(r)];
        by_time[*at] = *r;
        *at += 1;
    }
    Some(by_time)
}

/// One group of a cable's connections' share of its balance: per quarter-hour the sums over
/// its connections, and the voltages of its members' installations. A large cable is computed
/// a group of connections at a time (memory bounded by the group, not the cable); the groups'
/// parts add up to what the whole cable gives, in any order.
pub struct BalancePart {
    /// Per (interval_start, date): connections reporting and derived, Σ L, T, P, V, the
    /// battery sum and how many reported one. `None` when the group has no rows (its
    /// installations' voltages still count where other groups have rows).
    sums: Option<DataFrame>,
    volts: PlHashMap<i64, VoltSum>,
}

/// Voltages of one quarter-hour over some installations. The sum is exact (fixed point, 2⁻⁶⁰ V):
/// groups added in any order give the same mean, to the last bit, as one pass over the cable.
#[derive(Debug, Clone, Copy, PartialEq)]
struct VoltSum {
    sum: i128,
    n: u32,
    lo: f64,
    hi: f64,
}

/// 2⁶⁰: a voltage from 2⁻⁸ V up (every plausible one) is a whole number of 2⁻⁶⁰ V, so the sum
/// rounds nothing; a thousand volts is 2⁷⁰ of them, and i128 holds 2⁵⁷ such.
const VOLT_SCALE: f64 = 1_152_921_504_606_846_976.0;

impl VoltSum {
    fn one(a: f64, lo: f64, hi: f64) -> Self {
        // Multiplying by a power of two is exact; `as` saturates (a hostile huge value).
        VoltSum {
            sum: (a * VOLT_SCALE).round() as i128,
            n: 1,
            lo,
            hi,
        }
    }

    fn add(&mut self, o: VoltSum) {
        self.sum = self.sum.saturating_add(o.sum);
        self.n = self.n.saturating_add(o.n);
        self.lo = self.lo.min(o.lo);
        self.hi = self.hi.max(o.hi);
    }

    fn mean(&self) -> f64 {
        (self.sum as f64 / VOLT_SCALE) / f64::from(self.n.max(1))
    }
}

/// The part of the cable balance the connections of `registry` (all on `cable`, or a group of
/// them) make, from their interval frame (`None` without rows); voltages of the quarter-hours starting at or after
/// `from` (µs; all when `None`), every one its installations reported, not only those of the
/// group's own rows: another group's connections may have rows where this group has none.
pub fn balance_part(
    lake: &Lake,
    intervals: Option<&DataFrame>,
    registry: &Registry,
    cable: &str,
    from: Option<i64>,
    tz: Tz,
) -> Result<BalancePart> {
    let sums = intervals.map(sums).transpose()?;
    // In order of quarter-hour (its local day is looked up once, not once per installation),
    // then connection, so every run adds them in the same order.
    let readings = voltages(lake, registry, cable, from)?;
    let mut volts: PlHashMap<i64, VoltSum> = PlHashMap::new();
    let mut day = None;
    for (s, conn, a, lo, hi) in readings {
        // Only installations of members that day (the local day the quarter-hour starts on,
        // as `intervals` dates it) speak for the cooperative's cable.
        let date = match day {
            Some((at, date)) if at == s => date,
            _ => crate::domain::time::local_date(crate::domain::time::from_micros(s), tz),
        };
        day = Some((s, date));
        if member(&registry.connections[conn], date) {
            let one = VoltSum::one(a, lo, hi);
            volts.entry(s).and_modify(|v| v.add(one)).or_insert(one);
        }
    }
    Ok(BalancePart { sums, volts })
}

/// Per (interval_start, date) of an interval frame: what [`BalancePart::sums`] holds.
fn sums(intervals: &DataFrame) -> Result<DataFrame> {
    Ok(intervals
        .clone()
        .lazy()
        .group_by_stable([col("interval_start"), col("date")])
        .agg([
            col("l")
                .is_not_null()
                .cast(DataType::Int64)
                .sum()
                .alias("connections_reporting"),
            col("l_derived").sum().alias("connections_derived"),
            col("l").sum().alias("l_wh"),
            col("t").sum().alias("t_wh"),
            col("p").sum().alias("p_wh"),
            col("v").sum().alias("v_wh"),
            col("battery_net").sum().alias("battery_sum"),
            col("battery_net")
                .is_not_null()
                .cast(DataType::Int64)
                .sum()
                .alias("battery_n"),
        ])
        .collect()?)
}

fn member(x: &crate::registry::Connection, day: chrono::NaiveDate) -> bool {
    x.member_from.is_none_or(|f| day >= f) && x.member_until.is_none_or(|u| day <= u)
}

/// Both cable tables from the parts of the connections on `cable` (see [`balance_part`]);
/// `registry` holds all of them. The daily one carries a `year` column. `None` when no part
/// has rows.
pub fn cable_balance(
    parts: Vec<BalancePart>,
    registry: &Registry,
    cable: &str,
) -> Result<Option<(DataFrame, DataFrame)>> {
    let mut volts: PlHashMap<i64, VoltSum> = PlHashMap::new();
    let mut sums: Option<DataFrame> = None;
    let mut several = false;
    for part in parts {
        for (s, v) in part.volts {
            volts.entry(s).and_modify(|x| x.add(v)).or_insert(v);
        }
        match (&mut sums, part.sums) {
            (Some(all), Some(more)) => {
                all.vstack_mut(&more)?;
                several = true;
            }
            (None, more) => sums = more,
            (Some(_), None) => {}
        }
    }
    let Some(sums) = sums else {
        return Ok(None);
    };
    let mut q = sums.lazy();
    if several {
        // Sums of sums: each group's quarter-hours are added up.
        q = q.group_by_stable([col("interval_start"), col("date")]).agg(
            [
                "connections_reporting",
                "connections_derived",
                "l_wh",
                "t_wh",
                "p_wh",
                "v_wh",
                "battery_sum",
                "battery_n",
            ]
            .map(|c| col(c).sum()),
        );
    }
    let mut q = q
        .with_columns([
            when(col("l_wh").lt(col("t_wh")))
                .then(col("l_wh"))
                .otherwise(col("t_wh"))
                .alias("matched_wh"),
            (col("l_wh") - col("t_wh")).alias("net_wh"),
            when(col("battery_n").gt(lit(0)))
                .then(col("battery_sum"))
                .otherwise(lit(NULL).cast(DataType::Int64))
                .alias("battery_net_wh"),
        ])
        .with_column(lit(cable.to_string()).alias("cable_id"))
        .sort(["interval_start"], SortMultipleOptions::default())
        .collect()?;

    // Connections of the cooperative on the cable that day (registry membership), voltages,
    // and the quarter-hours beyond the cable's agreed limits.
    let cable_col = q.column("cable_id")?.str()?.clone();
    let start = q.column("interval_start")?.i64()?.clone();
    let date = q.column("date")?.cast(&DataType::Int32)?.i32()?.clone();
    let n = q.height();
    let (mut conns, mut v_avg, mut v_min, mut v_max, mut below, mut above) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let epoch = crate::domain::time::EPOCH_DAY;
    for i in 0..n {
        let (c, s, d) = (
            cable_col.get(i).unwrap_or(""),
            start.get(i).unwrap_or(0),
            date.get(i).unwrap_or(0),
        );
        let day = epoch + chrono::Duration::days(i64::from(d));
        conns.push(
            registry
                .connections
                .iter()
                .filter(|x| x.cable_id == c && member(x, day))
                .count() as i64,
        );
        let v = volts.get(&s).map(|v| (v.mean(), v.lo, v.hi));
        v_avg.push(v.map(|v| v.0));
        v_min.push(v.map(|v| v.1));
        v_max.push(v.map(|v| v.2));
        let limits = registry.cables.get(c);
        below.push(matches!((v, limits), (Some(v), Some(l)) if v.1 < l.v_low_v) as i64);
        above.push(matches!((v, limits), (Some(v), Some(l)) if v.2 > l.v_high_v) as i64);
    }
    for (name, s) in [
        ("connections", Series::new("".into(), conns)),
        ("below", Series::new("".into(), below)),
        ("above", Series::new("".into(), above)),
    ] {
        q.with_column(s.with_name(name.into()).into())?;
    }
    for (name, s) in [
        ("voltage_avg_v", v_avg),
        ("voltage_min_v", v_min),
        ("voltage_max_v", v_max),
    ] {
        q.with_column(Series::new(name.into(), s).into())?;
    }

    let daily = q
        .clone()
        .lazy()
        .group_by_stable([col("cable_id"), col("date")])
        .agg([
            col("l_wh").sum(),
            col("t_wh").sum(),
            col("p_wh").sum(),
            col("v_wh").sum(),
            col("matched_wh").sum(),
            col("connections_derived")
                .sum()
                .alias("connection_quarters_derived"),
            when(col("net_wh").gt(lit(0)))
                .then(col("net_wh"))
                .otherwise(lit(0i64))
                .max()
                .alias("peak_import_wh"),
            when(col("net_wh").lt(lit(0)))
                .then(lit(0i64) - col("net_wh"))
                .otherwise(lit(0i64))
                .max()
                .alias("peak_export_wh"),
            col("below").sum().alias("quarters_below_v_low"),
            col("above").sum().alias("quarters_above_v_high"),
        ])
        .with_columns([
            when(col("l_wh").gt(lit(0)))
                .then(
                    col("matched_wh").cast(DataType::Float64) / col("l_wh").cast(DataType::Float64),
                )
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias("local_share"),
            col("date").dt().year().alias("year"),
        ])
        .sort(["cable_id", "date"], SortMultipleOptions::default())
        .collect()?;
    Ok(Some((q, daily)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_reading_of_an_installation_and_time_gives_its_voltages() {
        // Connection 0 delivered 10:15 twice (seq 5, then again as seq 7 with other
        // voltages), in either order; connection 1 read the same time once; connection 0 read
        // 10:00 twice with one seq (only a lake written by hand holds such), with different voltages:
        // the higher ones count, whichever came first.
        let t = 1_000 * QUARTER_US;
        let rows = [
            (t, 0, 5, 230.0, 228.0, 232.0),
            (t, 0, 7, 236.0, 234.0, 238.0),
            (t, 1, 6, 240.0, 239.0, 241.0),
            (t - QUARTER_US, 0, 3, 231.0, 229.0, 233.0),
            (t - QUARTER_US, 0, 3, 231.0, 229.5, 233.0),
        ];
        let want = [
            (t - 2 * QUARTER_US, 0, 231.0, 229.5, 233.0),
            (t - QUARTER_US, 0, 236.0, 234.0, 238.0),
            (t - QUARTER_US, 1, 240.0, 239.0, 241.0),
        ];
        for order in [[0, 1, 2, 3, 4], [1, 0, 2, 4, 3], [4, 2, 1, 3, 0]] {
            let got = latest_by_time(order.iter().map(|&i| rows[i]).collect());
            assert_eq!(got, want, "order {order:?}");
        }
    }

    #[test]
    fn the_latest_readings_are_the_same_by_counting_sort_and_by_comparing_all() {
        // Pseudo-random readings (a fixed xorshift): few connections and times, so that
        // times, re-deliveries and equal seqs collide often. Each case against the answer
        // found by comparing every reading with every other.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        // Times on the grid (the counting sort), one off it, and two quarter-hours far apart
        // (both fall back to the general sort).
        for case in 0..60 {
            let n = 1 + next(40) as usize;
            let mut rows: Vec<Reading> = (0..n)
                .map(|_| {
                    let t = (next(6) as i64 - 2) * QUARTER_US;
                    let v = 220.0 + next(3) as f64;
                    (
                        t,
                        next(3) as usize,
                        next(3) as i64,
                        v,
                        v - next(2) as f64,
                        v + 1.0,
                    )
                })
                .collect();
            match case % 3 {
                1 => rows[0].0 += 1,
                2 => rows[0].0 = 1_000_000 * QUARTER_US,
                _ => {}
            }
            let mut want: Voltages = Vec::new();
            for r in &rows {
                let beaten = rows.iter().any(|o| {
                    (o.0, o.1) == (r.0, r.1) && (o.2, o.3, o.4, o.5) > (r.2, r.3, r.4, r.5)
                });
                let (s, c) = (r.0 - QUARTER_US, r.1);
                if !beaten && !want.iter().any(|w| (w.0, w.1) == (s, c)) {
                    want.push((s, c, r.3, r.4, r.5));
                }
            }
            want.sort_by_key(|w| (w.0, w.1));
            assert_eq!(by_quarter(&rows).is_some(), case % 3 == 0, "case {case}");
            assert_eq!(latest_by_time(rows.clone()), want, "case {case}: {rows:?}");
        }
    }

    #[test]
    fn a_quarter_hours_mean_voltage_is_the_same_however_its_installations_are_grouped() {
        // In floating point (240.2 + 225.0) + 233.9 is 699.1 but 240.2 + (225.0 + 233.9) is
        // 699.0999999999999: a mean summed group by group would depend on the grouping.
        assert_ne!((240.2 + 225.0) + 233.9, 240.2 + (225.0 + 233.9));
        let v = |a: f64| VoltSum::one(a, a - 1.0, a + 1.0);
        let mut left = v(240.2);
        left.add(v(225.0));
        left.add(v(233.9));
        let mut bc = v(225.0);
        bc.add(v(233.9));
        let mut right = v(240.2);
        right.add(bc);
        assert_eq!(left, right);
        assert_eq!(left.mean().to_bits(), right.mean().to_bits());
        // 699.1 / 3 by hand, and the extremes of all three.
        assert!(
            (left.mean() - 233.033_333_333_333_3).abs() < 1e-9,
            "{}",
            left.mean()
        );
        assert_eq!((left.n, left.lo, left.hi), (3, 224.0, 241.2));
        // A hostile value saturates instead of overflowing.
        let mut huge = v(1e300);
        huge.add(v(1e300));
        assert_eq!(huge.sum, i128::MAX);
    }

    /// Cable K1 with two connections, both members, neither with an installation.
    fn registry() -> Registry {
        crate::registry::test_registry(&[2])
    }

    #[test]
    fn a_cables_balance_from_two_groups_adds_their_quarter_hours_and_voltages() {
        use crate::intervals::compute::IntervalRow;
        use crate::intervals::series::{Quality, QUARTER_US};
        use crate::marts::daily::intervals_frame;
        let date = chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        // 1 June 00:00 in Amsterdam (summer time) is 31 May 22:00 UTC.
        let s0 = crate::domain::time::micros(
            "2026-05-31T22:00:00Z"
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap(),
        );
        let s1 = s0 + QUARTER_US;
        let row = |conn, start_us, l: Option<i64>, t: Option<i64>, battery| IntervalRow {
            conn,
            start_us,
            l_wh: l,
            t_wh: t,
            p_wh: None,
            v_wh: l,
            l_quality: if l.is_some() {
                Quality::Measured
            } else {
                Quality::Missing
            },
            p_quality: None,
            battery_net_wh: battery,
            date,
        };
        let v = |a: f64| VoltSum::one(a, a - 2.0, a + 3.0);
        // Group one: connection 0 imports 100 Wh at s0 and is missing at s1; its installation
        // reported 235 V at s1.
        let one = BalancePart {
            sums: Some(
                sums(
                    &intervals_frame(&[
                        row(0, s0, Some(100), Some(0), None),
                        row(0, s1, None, None, None),
                    ])
                    .unwrap(),
                )
                .unwrap(),
            ),
            volts: [(s1, v(235.0))].into_iter().collect(),
        };
        // Group two: connection 1 has a row at s1 only (30 in, 50 out, battery +5), but its
        // installation reported at s0 too (231 V), and 229 V at s1.
        let two = BalancePart {
            sums: Some(
                sums(&intervals_frame(&[row(1, s1, Some(30), Some(50), Some(5))]).unwrap())
                    .unwrap(),
            ),
            volts: [(s0, v(231.0)), (s1, v(229.0))].into_iter().collect(),
        };
        // A third group without rows: its installation's 250 V at s1 still counts.
        let three = BalancePart {
            sums: None,
            volts: [(s1, v(250.0))].into_iter().collect(),
        };
        let (q, daily) = cable_balance(vec![one, two, three], &registry(), "K1")
            .unwrap()
            .unwrap();
        let i64s = |df: &DataFrame, c: &str| -> Vec<Option<i64>> {
            df.column(c).unwrap().i64().unwrap().iter().collect()
        };
        let f64s =
            |c: &str| -> Vec<Option<f64>> { q.column(c).unwrap().f64().unwrap().iter().collect() };
        assert_eq!(i64s(&q, "interval_start"), [Some(s0), Some(s1)]);
        assert_eq!(i64s(&q, "connections_reporting"), [Some(1), Some(1)]);
        assert_eq!(i64s(&q, "connections"), [Some(2), Some(2)]);
        assert_eq!(i64s(&q, "l_wh"), [Some(100), Some(30)]);
        assert_eq!(i64s(&q, "t_wh"), [Some(0), Some(50)]);
        assert_eq!(i64s(&q, "matched_wh"), [Some(0), Some(30)]);
        assert_eq!(i64s(&q, "net_wh"), [Some(100), Some(-20)]);
        assert_eq!(i64s(&q, "battery_net_wh"), [None, Some(5)]);
        // s0: group two's 231 V alone; s1: (235 + 229 + 250) / 3 = 238, extremes 227 and 253.
        assert_eq!(f64s("voltage_avg_v"), [Some(231.0), Some(238.0)]);
        assert_eq!(f64s("voltage_min_v"), [Some(229.0), Some(227.0)]);
        assert_eq!(f64s("voltage_max_v"), [Some(234.0), Some(253.0)]);
        // 227 V is above 226: no quarter below; 253 above 244 at s1.
        assert_eq!(i64s(&q, "below"), [Some(0), Some(0)]);
        assert_eq!(i64s(&q, "above"), [Some(0), Some(1)]);
        assert_eq!(daily.height(), 1);
        assert_eq!(i64s(&daily, "l_wh"), [Some(130)]);
        assert_eq!(i64s(&daily, "t_wh"), [Some(50)]);
        assert_eq!(i64s(&daily, "matched_wh"), [Some(30)]);
        assert_eq!(i64s(&daily, "peak_import_wh"), [Some(100)]);
        assert_eq!(i64s(&daily, "peak_export_wh"), [Some(20)]);
        assert_eq!(i64s(&daily, "quarters_above_v_high"), [Some(1)]);
        // No rows in any group: no cable tables.
        let empty = BalancePart {
            sums: None,
            volts: [(s1, v(250.0))].into_iter().collect(),
        };
        assert!(cable_balance(vec![empty], &registry(), "K1")
            .unwrap()
            .is_none());
    }
}
