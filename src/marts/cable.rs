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

/// Both cable tables from the interval frame of the connections on `cable`; the daily one
/// carries a `year` column.
pub fn cable_balance(
    lake: &Lake,
    intervals: &DataFrame,
    registry: &Registry,
    cable: &str,
) -> Result<(DataFrame, DataFrame)> {
    let mut q = intervals
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
    let volts = voltages(
        lake,
        registry,
        cable,
        q.column("interval_start")?.i64()?.min(),
    )?;
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
        let member = |x: &crate::registry::Connection| {
            x.member_from.is_none_or(|f| day >= f) && x.member_until.is_none_or(|u| day <= u)
        };
        conns.push(
            registry
                .connections
                .iter()
                .filter(|x| x.cable_id == c && member(x))
                .count() as i64,
        );
        // Only installations of members that day speak for the cooperative's cable.
        let v = volts.get(&s).and_then(|all| {
            let mut acc: Option<(f64, u32, f64, f64)> = None;
            for &(conn, a, lo, hi) in all {
                if member(&registry.connections[conn]) {
                    let e = acc.get_or_insert((0.0, 0, f64::MAX, f64::MIN));
                    *e = (e.0 + a, e.1 + 1, e.2.min(lo), e.3.max(hi));
                }
            }
            acc
        });
        v_avg.push(v.map(|v| v.0 / f64::from(v.1)));
        v_min.push(v.map(|v| v.2));
        v_max.push(v.map(|v| v.3));
        let limits = registry.cables.get(c);
        below.push(matches!((v, limits), (Some(v), Some(l)) if v.2 < l.v_low_v) as i64);
        above.push(matches!((v, limits), (Some(v), Some(l)) if v.3 > l.v_high_v) as i64);
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
