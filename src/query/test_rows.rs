//! Rows of `intervals` for the query tests, built by hand.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::record_batch::RecordBatch;

use crate::lake::schema::INTERVALS;

/// One row of `intervals`: EAN, cable, quarter-hour of the day, L, T, P, V.
pub type Row = (&'static str, &'static str, i64, i64, i64, Option<i64>, i64);

/// Rows of day `day` of October 2025 as an `intervals` batch (participant and qualities fixed).
pub fn batch(day: u32, rows: &[Row]) -> RecordBatch {
    let midnight = (i64::from(day) - 1 + 20_362) * 86_400_000_000; // 2025-10-01 + day - 1
    let text = |f: &dyn Fn(&Row) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let ints = |f: &dyn Fn(&Row) -> Option<i64>| -> ArrayRef {
        Arc::new(Int64Array::from_iter(rows.iter().map(f)))
    };
    let starts = TimestampMicrosecondArray::from_iter_values(
        rows.iter().map(|r| midnight + r.2 * 900_000_000),
    )
    .with_timezone("UTC");
    let columns: Vec<ArrayRef> = vec![
        text(&|r| r.0),
        text(&|r| r.1),
        text(&|_| "participant"),
        Arc::new(starts),
        ints(&|r| Some(r.3)),
        ints(&|r| Some(r.4)),
        ints(&|r| r.5),
        ints(&|r| Some(r.6)),
        text(&|_| "measured"),
        // P's quality where there is a P: keys that change between null and text.
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.5.map(|_| "measured")),
        )),
    ];
    RecordBatch::try_new(INTERVALS.arrow_schema(), columns).unwrap()
}
