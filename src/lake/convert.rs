//! Polars frames into Arrow batches for the lake writer: Polars computes the marts, arrow-rs
//! writes them (zstd, sorting columns, metadata). Columns are taken by the table's names and
//! cast to its types.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use polars::prelude::*;

use super::schema::{ColType, TableSpec};
use crate::error::Result;

/// Builds a batch with exactly the table's columns from a frame that has them (by name).
pub fn to_batch(df: &DataFrame, spec: &TableSpec) -> Result<RecordBatch> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(spec.columns.len());
    for c in spec.columns {
        let column = df.column(c.name)?;
        let array: ArrayRef = match c.ty {
            ColType::Utf8 => Arc::new(StringArray::from_iter(
                column.cast(&DataType::String)?.str()?.iter(),
            )),
            ColType::Int64 => Arc::new(Int64Array::from_iter(
                column.cast(&DataType::Int64)?.i64()?.iter(),
            )),
            ColType::Float64 => Arc::new(Float64Array::from_iter(
                column.cast(&DataType::Float64)?.f64()?.iter(),
            )),
            ColType::Bool => Arc::new(BooleanArray::from_iter(
                column.cast(&DataType::Boolean)?.bool()?.iter(),
            )),
            ColType::TimestampUtc => Arc::new(
                TimestampMicrosecondArray::from_iter(column.cast(&DataType::Int64)?.i64()?.iter())
                    .with_timezone("UTC"),
            ),
            ColType::Date => Arc::new(Date32Array::from_iter(
                column.cast(&DataType::Int32)?.i32()?.iter(),
            )),
        };
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(spec.arrow_schema(), arrays)?)
}
