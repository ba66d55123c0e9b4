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
    let file = writer.into_inner()?;
    file.sync_all().map_err(|e| Error::lake(path, e))?;
    Ok(())
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
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use std::sync::Arc;

    fn keys(a: &[Option<&str>], b: &[i64]) -> Vec<SortColumn> {
        let a: ArrayRef = Arc::new(StringArray::from(a.to_vec()));
        let b: ArrayRef = Arc::new(Int64Array::from(b.to_vec()));
        [a, b]
            .into_iter()
            .map(|values| SortColumn {
                values,
                options: None,
            })
            .collect()
    }

    /// First key, second key, whether sorted.
    type Case<'a> = (&'a [Option<&'a str>], &'a [i64], bool);

    #[test]
    fn sorted_means_what_the_sort_would_leave_alone() {
        let cases: [Case; 7] = [
            (&[], &[], true),
            (&[Some("a"), Some("a"), Some("b")], &[1, 2, 0], true),
            (&[Some("a"), Some("a")], &[1, 1], true), // equal keys
            (&[Some("a"), Some("a")], &[2, 1], false), // second key decides
            (&[Some("b"), Some("a")], &[0, 9], false), // first key decides
            (&[None, Some("a")], &[5, 1], true),      // nulls first
            (&[Some("a"), None], &[1, 5], false),
        ];
        for (a, b, sorted) in cases {
            let columns = keys(a, b);
            assert_eq!(is_sorted(&columns).unwrap(), sorted, "{a:?} {b:?}");
            // Independently: the sort itself leaves a sorted batch in its order.
            let order = lexsort_to_indices(&columns, None).unwrap();
            let kept = order
                .values()
                .iter()
                .enumerate()
                .all(|(i, j)| i == *j as usize);
            let ties = a.len() == 2 && a[0] == a[1] && b[0] == b[1]; // any order is sorted
            if !ties {
                assert_eq!(kept, sorted, "{a:?} {b:?}");
            }
        }
    }
}
