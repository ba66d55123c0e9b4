//! `consumption_daily`: per connection per local day, from `intervals` (Polars), reconciled
//! against the daily tariff registers where the grid operator delivered them.

use chrono::NaiveDate;
use polars::prelude::*;

use crate::domain::time::EPOCH_DAY as EPOCH;
use crate::error::Result;
use crate::intervals::compute::IntervalRow;
use crate::intervals::days::day_registers;
use crate::intervals::series::Quality;
use crate::lake::Lake;

fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - EPOCH).num_days() as i32
}

/// The quarter-hour's worse quality of L and P, as a rank (0 measured … 3 missing).
fn worst(r: &IntervalRow) -> i32 {
    let q = match r.p_quality {
        Some(p) => r.l_quality.max(p),
        None => r.l_quality,
    };
    q as i32
}

/// The interval rows as a frame for aggregation. One pass over the rows fills every column (a
/// pass per column read the rows, some 100 bytes each, eleven times over).
pub fn intervals_frame(rows: &[IntervalRow]) -> Result<DataFrame> {
    let n = rows.len();
    let mut conn = Vec::with_capacity(n);
    let mut date = Vec::with_capacity(n);
    let mut start = Vec::with_capacity(n);
    // Values and validity as Polars keeps them (a `Vec<Option<i64>>` per column took twice
    // the memory, five of them at once).
    let nullable = |name: &str| PrimitiveChunkedBuilder::<Int64Type>::new(name.into(), n);
    let (mut l, mut t, mut p, mut v) = (nullable("l"), nullable("t"), nullable("p"), nullable("v"));
    let mut battery = nullable("battery_net");
    let mut worst_of = Vec::with_capacity(n);
    let mut l_derived = Vec::with_capacity(n);
    let mut has_installation = Vec::with_capacity(n);
    // A day's rows follow each other: its number is worked out once.
    let mut day: Option<(NaiveDate, i32)> = None;
    for r in rows {
        let d = match day {
            Some((at, d)) if at == r.date => d,
            _ => days_since_epoch(r.date),
        };
        day = Some((r.date, d));
        conn.push(r.conn);
        date.push(d);
        start.push(r.start_us);
        l.append_option(r.l_wh);
        t.append_option(r.t_wh);
        p.append_option(r.p_wh);
        v.append_option(r.v_wh);
        worst_of.push(worst(r));
        // L and T of this quarter-hour spread from daily registers (counted in the cable tables).
        l_derived.push(i64::from(r.l_quality == Quality::Derived));
        battery.append_option(r.battery_net_wh);
        has_installation.push(r.p_quality.is_some());
    }
    let df = DataFrame::new_infer_height(vec![
        Series::from_vec("conn".into(), conn).into(),
        Series::from_vec("date".into(), date)
            .cast(&DataType::Date)?
            .into(),
        Series::from_vec("interval_start".into(), start).into(),
        l.finish().into_column(),
        t.finish().into_column(),
        p.finish().into_column(),
        v.finish().into_column(),
        Series::from_vec("worst".into(), worst_of).into(),
        Series::from_vec("l_derived".into(), l_derived).into(),
        battery.finish().into_column(),
        Series::new("has_installation".into(), has_installation).into(),
    ])?;
    Ok(df)
}

/// The string ids of the connections the `conn` column indexes.
pub struct Ids {
    pub ean: Vec<String>,
    pub participant_id: Vec<String>,
    pub cable_id: Vec<String>,
}

impl Ids {
    pub fn of(registry: &crate::registry::Registry) -> Self {
        let c = &registry.connections;
        Ids {
            ean: c.iter().map(|c| c.ean.as_str().to_string()).collect(),
            participant_id: c.iter().map(|c| c.participant_id.clone()).collect(),
            cable_id: c.iter().map(|c| c.cable_id.clone()).collect(),
        }
    }

    /// The `conn` column of `df` replaced by `ean`, `participant_id` and `cable_id`.
    fn attach(&self, df: DataFrame) -> Result<DataFrame> {
        let conn: Vec<usize> = df
            .column("conn")?
            .u32()?
            .iter()
            .map(|c| c.unwrap_or(0) as usize)
            .collect();
        let col = |name: &str, v: &[String]| -> Column {
            Series::new(
                name.into(),
                conn.iter().map(|&i| v[i].as_str()).collect::<Vec<_>>(),
            )
            .into()
        };
        let mut df = df.drop("conn")?;
        df.with_column(col("ean", &self.ean))?;
        df.with_column(col("participant_id", &self.participant_id))?;
        df.with_column(col("cable_id", &self.cable_id))?;
        Ok(df)
    }
}

/// `consumption_daily` as one frame (with a `year` column for partitioning), sorted by ean, date.
pub fn consumption_daily(lake: &Lake, intervals: &DataFrame, ids: &Ids) -> Result<DataFrame> {
    let by_quality = |rank: i32, name: &str| {
        col("worst")
            .eq(lit(rank))
            .cast(DataType::Int64)
            .sum()
            .alias(name)
    };
    let df = intervals
        .clone()
        .lazy()
        .group_by_stable([col("conn"), col("date")])
        .agg([
            col("l").sum().alias("l_wh"),
            col("t").sum().alias("t_wh"),
            col("p").sum().alias("p_sum"),
            col("v").sum().alias("v_wh"),
            col("has_installation").first().alias("has_installation"),
            len().cast(DataType::Int64).alias("intervals_expected"),
            by_quality(Quality::Measured as i32, "intervals_measured"),
            by_quality(Quality::Estimated as i32, "intervals_estimated"),
            by_quality(Quality::Derived as i32, "intervals_derived"),
            by_quality(Quality::Missing as i32, "intervals_missing"),
            col("l")
                .null_count()
                .cast(DataType::Int64)
                .alias("l_missing"),
        ])
        .with_column(
            when(col("has_installation"))
                .then(col("p_sum"))
                .otherwise(lit(NULL).cast(DataType::Int64))
                .alias("p_wh"),
        )
        .with_column(col("date").dt().year().alias("year"))
        .collect()?;
    let mut df = ids
        .attach(df)?
        .lazy()
        .sort(["ean", "date"], SortMultipleOptions::default())
        .collect()?;
    // Reconciliation: the day's L and T against the difference of the tariff registers at its
    // start and at the next day's start, same meter; null when they were not delivered or the
    // day has missing quarter-hours.
    let first = df
        .column("date")?
        .cast(&DataType::Int32)?
        .i32()?
        .min()
        .map(|d| EPOCH + chrono::Duration::days(i64::from(d)));
    let regs = day_registers(lake, first)?;
    let ean = df.column("ean")?.str()?.clone();
    let date = df.column("date")?.cast(&DataType::Int32)?.i32()?.clone();
    let (l, t) = (
        df.column("l_wh")?.i64()?.clone(),
        df.column("t_wh")?.i64()?.clone(),
    );
    let missing = df.column("l_missing")?.i64()?.clone();
    let reconciled: Vec<Option<bool>> = (0..df.height())
        .map(|i| {
            let (e, d) = (ean.get(i)?.to_string(), date.get(i)?);
            let start = regs.get(&(e.clone(), d))?;
            let end = regs.get(&(e, d + 1))?;
            if start.0 != end.0 || missing.get(i)? != 0 {
                return None;
            }
            Some(l.get(i)? == end.1 - start.1 && t.get(i)? == end.2 - start.2)
        })
        .collect();
    df.with_column(Series::new("reconciled".into(), reconciled).into())?;
    Ok(df)
}
