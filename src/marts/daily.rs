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

/// The interval rows as a frame for aggregation.
pub fn intervals_frame(rows: &[IntervalRow]) -> Result<DataFrame> {
    let date = Series::new(
        "date".into(),
        rows.iter()
            .map(|r| days_since_epoch(r.date))
            .collect::<Vec<i32>>(),
    )
    .cast(&DataType::Date)?;
    let df = DataFrame::new_infer_height(vec![
        Series::new(
            "conn".into(),
            rows.iter().map(|r| r.conn).collect::<Vec<u32>>(),
        )
        .into(),
        date.into(),
        Series::new(
            "interval_start".into(),
            rows.iter().map(|r| r.start_us).collect::<Vec<i64>>(),
        )
        .into(),
        Series::new("l".into(), rows.iter().map(|r| r.l_wh).collect::<Vec<_>>()).into(),
        Series::new("t".into(), rows.iter().map(|r| r.t_wh).collect::<Vec<_>>()).into(),
        Series::new("p".into(), rows.iter().map(|r| r.p_wh).collect::<Vec<_>>()).into(),
        Series::new("v".into(), rows.iter().map(|r| r.v_wh).collect::<Vec<_>>()).into(),
        Series::new("worst".into(), rows.iter().map(worst).collect::<Vec<i32>>()).into(),
        // L and T of this quarter-hour spread from daily registers (counted in the cable tables).
        Series::new(
            "l_derived".into(),
            rows.iter()
                .map(|r| i64::from(r.l_quality == Quality::Derived))
                .collect::<Vec<i64>>(),
        )
        .into(),
        Series::new(
            "battery_net".into(),
            rows.iter().map(|r| r.battery_net_wh).collect::<Vec<_>>(),
        )
        .into(),
        Series::new(
            "has_installation".into(),
            rows.iter()
                .map(|r| r.p_quality.is_some())
                .collect::<Vec<bool>>(),
        )
        .into(),
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
