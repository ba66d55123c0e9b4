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
            ColType::Int64 => Arc::new(primitive::<_, Int64Array>(
                column.cast(&DataType::Int64)?.i64()?,
            )),
            ColType::Float64 => Arc::new(primitive::<_, Float64Array>(
                column.cast(&DataType::Float64)?.f64()?,
            )),
            ColType::Bool => Arc::new(BooleanArray::from_iter(
                column.cast(&DataType::Boolean)?.bool()?.iter(),
            )),
            ColType::TimestampUtc => Arc::new(
                primitive::<_, TimestampMicrosecondArray>(column.cast(&DataType::Int64)?.i64()?)
                    .with_timezone("UTC"),
            ),
            ColType::Date => Arc::new(primitive::<_, Date32Array>(
                column.cast(&DataType::Int32)?.i32()?,
            )),
        };
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(spec.arrow_schema(), arrays)?)
}

/// A numeric column as an Arrow array. Without nulls its values are copied chunk by chunk:
/// going value by value through Polars' iterator was most of the conversion's cost (a
/// nightly run converts a year of daily rows per cable).
fn primitive<T, A>(values: &ChunkedArray<T>) -> A
where
    T: PolarsNumericType,
    A: From<Vec<T::Native>> + FromIterator<Option<T::Native>>,
{
    if values.null_count() > 0 {
        return values.iter().collect();
    }
    let mut out = Vec::with_capacity(values.len());
    for chunk in values.downcast_iter() {
        out.extend_from_slice(chunk.values().as_slice());
    }
    A::from(out)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};

    use super::*;
    use crate::lake::schema::{col as spec_col, Partitioning};

    /// One column of each type, nullable and not.
    const SPEC: TableSpec = TableSpec {
        name: "t",
        columns: &[
            spec_col("s", ColType::Utf8, true, ""),
            spec_col("i", ColType::Int64, true, ""),
            spec_col("n", ColType::Int64, false, ""),
            spec_col("f", ColType::Float64, true, ""),
            spec_col("g", ColType::Float64, false, ""),
            spec_col("ts", ColType::TimestampUtc, false, ""),
            spec_col("d", ColType::Date, false, ""),
            spec_col("b", ColType::Bool, true, ""),
        ],
        sort_by: &["s"],
        partitioning: Partitioning::None,
    };

    #[allow(clippy::type_complexity)]
    fn frame(
        rows: &[(
            Option<&str>,
            Option<i64>,
            i64,
            Option<f64>,
            f64,
            i64,
            i32,
            Option<bool>,
        )],
    ) -> DataFrame {
        let c = |name: &str, s: Series| -> Column { s.with_name(name.into()).into() };
        DataFrame::new_infer_height(vec![
            c(
                "s",
                Series::new("".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            ),
            c(
                "i",
                Series::new("".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            ),
            c(
                "n",
                Series::new("".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
            ),
            c(
                "f",
                Series::new("".into(), rows.iter().map(|r| r.3).collect::<Vec<_>>()),
            ),
            c(
                "g",
                Series::new("".into(), rows.iter().map(|r| r.4).collect::<Vec<_>>()),
            ),
            c(
                "ts",
                Series::new("".into(), rows.iter().map(|r| r.5).collect::<Vec<_>>()),
            ),
            c(
                "d",
                Series::new("".into(), rows.iter().map(|r| r.6).collect::<Vec<_>>())
                    .cast(&DataType::Date)
                    .unwrap(),
            ),
            c(
                "b",
                Series::new("".into(), rows.iter().map(|r| r.7).collect::<Vec<_>>()),
            ),
        ])
        .unwrap()
    }

    #[test]
    fn a_frame_of_several_chunks_converts_value_for_value() {
        // Two pieces stacked (as a cable's kept and new days are): the dense columns are
        // copied chunk by chunk, the ones with nulls value by value.
        let mut df = frame(&[
            (
                Some("a"),
                Some(1),
                10,
                Some(0.5),
                1.5,
                100,
                20_000,
                Some(true),
            ),
            (None, None, -11, None, -2.25, 200, 20_001, None),
        ]);
        df.vstack_mut(&frame(&[(
            Some("c"),
            Some(3),
            12,
            Some(7.0),
            3.0,
            300,
            20_002,
            Some(false),
        )]))
        .unwrap();
        assert!(df.column("n").unwrap().as_materialized_series().n_chunks() > 1);
        let batch = to_batch(&df, &SPEC).unwrap();
        let s: Vec<_> = batch.column(0).as_string::<i32>().iter().collect();
        assert_eq!(s, [Some("a"), None, Some("c")]);
        let i: Vec<_> = batch.column(1).as_primitive::<Int64Type>().iter().collect();
        assert_eq!(i, [Some(1), None, Some(3)]);
        let n = batch.column(2).as_primitive::<Int64Type>();
        assert_eq!(
            (n.values().to_vec(), n.null_count()),
            (vec![10, -11, 12], 0)
        );
        let f: Vec<_> = batch
            .column(3)
            .as_primitive::<Float64Type>()
            .iter()
            .collect();
        assert_eq!(f, [Some(0.5), None, Some(7.0)]);
        let g = batch.column(4).as_primitive::<Float64Type>();
        assert_eq!(g.values().to_vec(), vec![1.5, -2.25, 3.0]);
        let ts = batch.column(5).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.values().to_vec(), vec![100, 200, 300]);
        let d = batch.column(6).as_primitive::<Date32Type>();
        assert_eq!(d.values().to_vec(), vec![20_000, 20_001, 20_002]);
        let b: Vec<_> = batch.column(7).as_boolean().iter().collect();
        assert_eq!(b, [Some(true), None, Some(false)]);
        // A slice (a year's rows of a frame of several years) starts where it starts.
        let batch = to_batch(&df.slice(1, 2), &SPEC).unwrap();
        let n = batch.column(2).as_primitive::<Int64Type>();
        assert_eq!(n.values().to_vec(), vec![-11, 12]);
        let d = batch.column(6).as_primitive::<Date32Type>();
        assert_eq!(d.values().to_vec(), vec![20_001, 20_002]);
    }
}
