//! Parquet files of the lake, written with arrow-rs (zstd, sorted by key, statistics, sorting
//! columns and key-value metadata: things Polars' writer does not let us set) and read back
//! with arrow-rs where the writer itself needs to look at what is stored.

use std::fs::File;
use std::path::Path;

use arrow::array::{make_comparator, RecordBatch};
use arrow::compute::{lexsort_to_indices, take_record_batch, SortColumn};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::schema::{TableSpec, SCHEMA_VERSION};
use crate::error::{Error, Result};

/// Sorts `batch` by the table's key and writes it durably to `path`.
pub fn write_sorted(path: &Path, spec: &TableSpec, batch: &RecordBatch) -> Result<()> {
    let file = encode_sorted(path, spec, batch)?;
    file.sync_all().map_err(|e| Error::lake(path, e))?;
    Ok(())
}

/// [`write_sorted`] without the fsync: the caller makes the file durable later (a change
/// that stages thousands of files syncs them all at once before its commit, see
/// `Txn::commit`). Returns the written file.
pub(crate) fn encode_sorted(path: &Path, spec: &TableSpec, batch: &RecordBatch) -> Result<File> {
    let batch = sort_batch(spec, batch)?;
    let sorting: Vec<SortingColumn> = spec
        .sort_by
        .iter()
        .map(|name| SortingColumn {
            column_idx: spec.column_index(name) as i32,
            descending: false,
            nulls_first: true,
        })
        .collect();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(1 << 20))
        .set_sorting_columns(Some(sorting))
        .set_created_by(format!("vaten {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(vec![
            KeyValue::new("vaten.table".into(), spec.name.to_string()),
            KeyValue::new("vaten.schema_version".into(), SCHEMA_VERSION.to_string()),
            KeyValue::new("vaten.units".into(), spec.units_json()),
        ]))
        .build();
    let file = File::create(path).map_err(|e| Error::lake(path, e))?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    writer.write(&batch)?;
    Ok(writer.into_inner()?)
}

fn sort_batch(spec: &TableSpec, batch: &RecordBatch) -> Result<RecordBatch> {
    let columns: Vec<SortColumn> = spec
        .sort_by
        .iter()
        .map(|name| SortColumn {
            values: batch.column(spec.column_index(name)).clone(),
            options: None,
        })
        .collect();
    // Most batches come sorted already (the transform emits rows in key order): one pass
    // checks that, where a sort and a copy of every column would cost far more.
    if is_sorted(&columns)? {
        return Ok(batch.clone());
    }
    let indices = lexsort_to_indices(&columns, None)?;
    Ok(take_record_batch(batch, &indices)?)
}

/// Whether each row's key is at most the next one's, in the order `lexsort_to_indices`
/// sorts with the same options.
fn is_sorted(columns: &[SortColumn]) -> Result<bool> {
    let compare = columns
        .iter()
        .map(|c| {
            let values = c.values.as_ref();
            make_comparator(values, values, c.options.unwrap_or_default())
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let rows = columns.first().map_or(0, |c| c.values.len());
    Ok((1..rows).all(|i| {
        compare
            .iter()
            .map(|cmp| cmp(i - 1, i))
            .find(|o| o.is_ne())
            .is_none_or(std::cmp::Ordering::is_lt)
    }))
}

/// Reads the named columns of one Parquet file.
pub fn read_columns(path: &Path, columns: &[&str]) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(|e| Error::lake(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let schema = builder.parquet_schema();
    let mask = ProjectionMask::columns(schema, columns.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(65_536)
        .build()?;
    reader.map(|b| b.map_err(Error::from)).collect()
}

/// Reads every column of one Parquet file as one batch (`None` when it holds no rows).
pub fn read_all(path: &Path) -> Result<Option<RecordBatch>> {
    let file = File::open(path).map_err(|e| Error::lake(path, e))?;
    read_from(file)
}

fn read_from<R: parquet::file::reader::ChunkReader + 'static>(
    source: R,
) -> Result<Option<RecordBatch>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(source)?
        .with_batch_size(65_536)
        .build()?;
    let schema = arrow::array::RecordBatchReader::schema(&reader);
    let batches: Vec<RecordBatch> = reader.collect::<std::result::Result<_, _>>()?;
    if batches.is_empty() {
        return Ok(None);
    }
    Ok(Some(arrow::compute::concat_batches(&schema, &batches)?))
}

/// Every row of a Parquet file held in memory, as one batch (`None` when it has none).
pub fn read_bytes(bytes: Vec<u8>) -> Result<Option<RecordBatch>> {
    read_from(bytes::Bytes::from(bytes))
}

/// Whether two Parquet files hold the same rows: the same columns by name and type, the same
/// values in the same order. Not their bytes: the writer's name and version, and the
/// compressor, are in those.
pub fn same_rows(a: Vec<u8>, b: Vec<u8>) -> bool {
    let (Ok(a), Ok(b)) = (read_bytes(a), read_bytes(b)) else {
        return false;
    };
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let names = |r: &RecordBatch| -> Vec<(String, arrow::datatypes::DataType)> {
                r.schema()
                    .fields()
                    .iter()
                    .map(|f| (f.name().clone(), f.data_type().clone()))
                    .collect()
            };
            names(&a) == names(&b) && a.columns() == b.columns()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use std::sync::Arc;

    fn columns(arrays: Vec<ArrayRef>) -> Vec<SortColumn> {
        arrays
            .into_iter()
            .map(|values| SortColumn {
                values,
                options: None,
            })
            .collect()
    }

    fn keys(a: &[Option<&str>], b: &[Option<i64>]) -> Vec<SortColumn> {
        columns(vec![
            Arc::new(StringArray::from(a.to_vec())),
            Arc::new(Int64Array::from(b.to_vec())),
        ])
    }

    /// Whether the sort itself leaves `columns` in their order (an independent answer where
    /// no two rows have equal keys).
    fn sort_keeps(columns: &[SortColumn]) -> bool {
        let order = lexsort_to_indices(columns, None).unwrap();
        order
            .values()
            .iter()
            .enumerate()
            .all(|(i, j)| i == *j as usize)
    }

    /// First key, second key, whether sorted.
    type Case<'a> = (&'a [Option<&'a str>], &'a [Option<i64>], bool);

    #[test]
    fn sorted_means_what_the_sort_would_leave_alone() {
        let (a, b) = (Some("a"), Some("b"));
        let cases: [Case; 9] = [
            (&[], &[], true),
            (&[a, a, b], &[Some(1), Some(2), Some(0)], true),
            (&[a, a], &[Some(2), Some(1)], false), // the second key decides
            (&[b, a], &[Some(0), Some(9)], false), // the first key decides
            (&[None, a], &[Some(5), Some(1)], true), // nulls first
            (&[a, None], &[Some(1), Some(5)], false),
            (&[a, a], &[None, Some(1)], true), // nulls first in the second key too
            (&[a, a], &[Some(1), None], false),
            (&[a, a, b], &[Some(1), Some(1), None], true), // equal keys: any order is sorted
        ];
        for (i, (a, b, sorted)) in cases.into_iter().enumerate() {
            let keys = keys(a, b);
            assert_eq!(is_sorted(&keys).unwrap(), sorted, "case {i}");
            if i != 8 {
                assert_eq!(sort_keeps(&keys), sorted, "case {i}");
            }
        }
        // Floats: NaN sorts after every number, as the sort orders it.
        for (values, sorted) in [
            (vec![1.0, f64::NAN], true),
            (vec![f64::NAN, 1.0], false),
            (vec![-0.5, 2.0], true),
        ] {
            let keys = columns(vec![
                Arc::new(StringArray::from(vec!["a"; values.len()])),
                Arc::new(Float64Array::from(values.clone())),
            ]);
            assert_eq!(is_sorted(&keys).unwrap(), sorted, "{values:?}");
            assert_eq!(sort_keeps(&keys), sorted, "{values:?}");
        }
    }
}
