//! The daily tariff registers (`grid_days`) as the intervals stage and the marts use them.

use std::collections::HashMap;

use polars::prelude::*;

use crate::error::Result;
use crate::lake::schema::GRID_DAYS;
use crate::lake::Lake;

/// Daily register totals (import, export) at 00:00 local per (ean, day): the delivery that
/// counts per (ean, meter, day); days with more than one meter are left out (an exchange).
/// (ean, days since the epoch) → (meter, import register, export register) at 00:00 local.
pub type DayRegisters = HashMap<(String, i32), (String, i64, i64)>;

/// With `since`, only the days from then on.
pub fn day_registers(lake: &Lake, since: Option<chrono::NaiveDate>) -> Result<DayRegisters> {
    let mut out = HashMap::new();
    let Some(mut lf) = lake.scan_from(&GRID_DAYS, since)? else {
        return Ok(out);
    };
    if let Some(since) = since {
        lf = lf.filter(col("date").cast(DataType::Date).gt_eq(lit(since)));
    }
    let df = lf
        .sort(
            ["ean", "meter_id", "date", "delivery_seq"],
            SortMultipleOptions::default(),
        )
        .unique_stable_generic(
            Some(vec![col("ean"), col("meter_id"), col("date")]),
            UniqueKeepStrategy::Last,
        )
        .select([
            col("ean"),
            col("meter_id"),
            col("date").cast(DataType::Date).cast(DataType::Int32),
            (col("import_t1_wh") + col("import_t2_wh")).alias("import"),
            (col("export_t1_wh") + col("export_t2_wh")).alias("export"),
        ])
        .collect()?;
    let (ean, meter) = (
        df.column("ean")?.str()?.clone(),
        df.column("meter_id")?.str()?.clone(),
    );
    let date = df.column("date")?.i32()?.clone();
    let (imp, exp) = (
        df.column("import")?.i64()?.clone(),
        df.column("export")?.i64()?.clone(),
    );
    let mut seen: HashMap<(String, i32), usize> = HashMap::new();
    for i in 0..df.height() {
        let key = (
            ean.get(i).unwrap_or("").to_string(),
            date.get(i).unwrap_or(0),
        );
        *seen.entry(key.clone()).or_default() += 1;
        out.insert(
            key,
            (
                meter.get(i).unwrap_or("").to_string(),
                imp.get(i).unwrap_or(0),
                exp.get(i).unwrap_or(0),
            ),
        );
    }
    out.retain(|k, _| seen.get(k) == Some(&1));
    Ok(out)
}
