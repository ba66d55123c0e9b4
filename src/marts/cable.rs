//! `cable_balance_15m` and `cable_balance_daily`: the "communicating vessels" per street
//! cable. Per quarter-hour, `matched_wh = min(Σ L, Σ T)` over the cooperative's connections on
//! the cable (one's own import and export in the same quarter-hour included); voltages come
//! from the members' installations on the cable, one value per installation per quarter-hour.

use std::collections::HashMap;

use polars::prelude::*;

use crate::error::Result;
use crate::lake::schema::INSTALLATION_READINGS;
use crate::lake::Lake;
use crate::registry::Registry;

/// Quarter-hour start → per installation on the cable: (its connection's index in the
/// registry, mean, minimum, maximum voltage).
type Voltages = HashMap<i64, Vec<(usize, f64, f64, f64)>>;

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
    let mut out: Voltages = HashMap::new();
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
    let conn_of: HashMap<&str, usize> = registry
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
        .sort(
            ["seq"],
            SortMultipleOptions::default().with_order_descending(true),
        )
        .collect()?;
    let id = df.column("installation_id")?.str()?.clone();
    let t = df.column("t")?.i64()?.clone();
    let f = |n: &str| -> Result<Float64Chunked> { Ok(df.column(n)?.f64()?.clone()) };
    let (avg, min, max) = (
        f("voltage_avg_v")?,
        f("voltage_min_v")?,
        f("voltage_max_v")?,
    );
    let mut seen = std::collections::HashSet::new();
    for i in 0..df.height() {
        let (Some(inst), Some(t)) = (id.get(i), t.get(i)) else {
            continue;
        };
        let (Some(a), Some(lo), Some(hi), Some(&conn)) =
            (avg.get(i), min.get(i), max.get(i), conn_of.get(inst))
        else {
            continue;
        };
        // The latest reading of this installation and time that has voltages decides.
        if !seen.insert((inst, t)) {
            continue;
        }
        let start = t - crate::intervals::series::QUARTER_US;
        out.entry(start).or_default().push((conn, a, lo, hi));
    }
    Ok(out)
}

/// One group of a cable's connections' share of its balance: per quarter-hour the sums over
/// its connections, and the voltages of its members' installations. A large cable is computed
/// a group of connections at a time (memory bounded by the group, not the cable); the groups'
/// parts add up to what the whole cable gives, in any order.
pub struct BalancePart {
    /// Per (interval_start, date): connections reporting and derived, Σ L, T, P, V, the
    /// battery sum and how many reported one.
    sums: DataFrame,
    volts: HashMap<i64, VoltSum>,
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
/// them) make, from their interval frame.
pub fn balance_part(
    lake: &Lake,
    intervals: &DataFrame,
    registry: &Registry,
    cable: &str,
) -> Result<BalancePart> {
    let sums = intervals
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
        .collect()?;
    let all = voltages(
        lake,
        registry,
        cable,
        sums.column("interval_start")?.i64()?.min(),
    )?;
    // Only installations of members that day speak for the cooperative's cable.
    let start = sums.column("interval_start")?.i64()?.clone();
    let date = sums.column("date")?.cast(&DataType::Int32)?.i32()?.clone();
    let epoch = crate::domain::time::EPOCH_DAY;
    let mut volts: HashMap<i64, VoltSum> = HashMap::new();
    for (s, d) in start.iter().zip(date.iter()) {
        let (Some(s), Some(d)) = (s, d) else { continue };
        let Some(readings) = all.get(&s) else {
            continue;
        };
        let day = epoch + chrono::Duration::days(i64::from(d));
        for &(conn, a, lo, hi) in readings {
            if member(&registry.connections[conn], day) {
                let one = VoltSum::one(a, lo, hi);
                volts.entry(s).and_modify(|v| v.add(one)).or_insert(one);
            }
        }
    }
    Ok(BalancePart { sums, volts })
}

fn member(x: &crate::registry::Connection, day: chrono::NaiveDate) -> bool {
    x.member_from.is_none_or(|f| day >= f) && x.member_until.is_none_or(|u| day <= u)
}

/// Both cable tables from the parts of the connections on `cable` (see [`balance_part`]);
/// `registry` holds all of them. The daily one carries a `year` column.
pub fn cable_balance(
    parts: Vec<BalancePart>,
    registry: &Registry,
    cable: &str,
) -> Result<(DataFrame, DataFrame)> {
    let mut volts: HashMap<i64, VoltSum> = HashMap::new();
    let mut sums: Option<DataFrame> = None;
    let several = parts.len() > 1;
    for part in parts {
        for (s, v) in part.volts {
            volts.entry(s).and_modify(|x| x.add(v)).or_insert(v);
        }
        match &mut sums {
            Some(all) => {
                all.vstack_mut(&part.sums)?;
            }
            None => sums = Some(part.sums),
        }
    }
    let Some(sums) = sums else {
        return Err(crate::error::Error::Internal(format!(
            "cable {cable}: no connections to balance"
        )));
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
    Ok((q, daily))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
