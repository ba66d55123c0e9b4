//! Bringing a lake written by an older version of vaten up to [`SCHEMA_VERSION`].
//!
//! Every file carries the version that wrote it (`vaten.schema_version`), and the lake records
//! the version it was last brought up to in `_state/lake.json`. Every job starts by comparing
//! that version with its own (`commands::run_job`); when the lake's is older (or absent: a
//! lake from before the record existed, or a new one) it is migrated in one journaled change,
//! recorded with the job's run, before the job reads or writes anything:
//!
//! - the tables the lake keeps as received (they cannot be computed again): every file whose
//!   columns differ from today's is rewritten under its own name with today's columns; a
//!   column a newer version added is null in the old rows (so every added column of a kept
//!   table must be nullable, which the rewriting checks). Rewriting a file under its own name
//!   keeps the transform's bookkeeping true: a migration is no new data.
//! - the derived tables are computed again instead: a layout change of theirs comes with a
//!   new `TRANSFORM_VERSION`, and the next transform rebuilds every unsealed day. (A change
//!   that must also reach sealed days, whose received rows may be gone, needs a rewrite here.)
//!
//! Files whose columns are already today's keep the version tag they were written with. A
//! lake recorded as written by a newer version is refused: an older binary would otherwise
//! write files the newer readers do not expect.

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use super::parquet_io::{read_all, write_sorted};
use super::schema::{
    TableSpec, GRID_DAYS, GRID_READINGS, INSTALLATION_GAPS, INSTALLATION_READINGS, REJECTED, RUNS,
    SCHEMA_VERSION,
};
use super::Lake;
use crate::error::{Error, Result};

/// The lake-wide record of the schema version, `_state/lake.json`.
pub const LAKE_STATE: &str = "lake";

/// Tables whose rows exist nowhere else: migrated file by file, never recomputed.
pub const KEPT_TABLES: [&TableSpec; 6] = [
    &GRID_READINGS,
    &GRID_DAYS,
    &INSTALLATION_READINGS,
    &INSTALLATION_GAPS,
    &REJECTED,
    &RUNS,
];

#[derive(Debug, Serialize, Deserialize)]
pub struct LakeState {
    /// The schema version every kept table's files have been brought up to.
    pub schema_version: String,
}

fn version_number(v: &str) -> Option<u32> {
    v.trim().parse().ok()
}

/// Migrates `lake` (opened for writing, recovered) when it is older than this version.
/// Returns a line for the run's record when it changed anything.
pub fn migrate(lake: &Lake) -> Result<Option<String>> {
    let current = version_number(SCHEMA_VERSION).expect("SCHEMA_VERSION is a number");
    let recorded: Option<LakeState> = lake.read_state(LAKE_STATE)?;
    if let Some(state) = &recorded {
        match version_number(&state.schema_version) {
            Some(v) if v == current => return Ok(None),
            Some(v) if v > current => {
                return Err(Error::lake(
                    lake.root(),
                    format!(
                        "written by a newer vaten (lake schema version {v}; this vaten writes {current}); use that version or newer"
                    ),
                ))
            }
            Some(_) => {}
            None => {
                return Err(Error::lake(
                    lake.root(),
                    format!(
                        "unreadable schema version {:?} in _state/{LAKE_STATE}.json",
                        state.schema_version.chars().take(16).collect::<String>()
                    ),
                ))
            }
        }
    }
    let mut txn = lake.begin()?;
    let mut rewritten: Vec<String> = Vec::new();
    let mut from_versions = std::collections::BTreeSet::new();
    for spec in KEPT_TABLES {
        let mut count = 0;
        for file in lake.files(spec, None)? {
            let (columns, version) = footer_of(&file)?;
            if columns == spec_columns(spec) {
                continue;
            }
            from_versions.insert(version.unwrap_or_else(|| "unknown".into()));
            let batch = match read_all(&file).map_err(|e| Error::lake(&file, e))? {
                Some(b) => conform(spec, &b).map_err(|e| Error::lake(&file, e))?,
                None => RecordBatch::new_empty(spec.arrow_schema()),
            };
            let staged = txn.staging_path("parquet");
            write_sorted(&staged, spec, &batch).map_err(|e| Error::lake(&file, e))?;
            txn.publish(&staged, lake.rel(&file));
            count += 1;
        }
        if count > 0 {
            rewritten.push(format!("{count} files of {}", spec.name));
        }
    }
    lake.stage_state(
        &mut txn,
        LAKE_STATE,
        &LakeState {
            schema_version: SCHEMA_VERSION.to_string(),
        },
    )?;
    txn.commit()?;
    let from: Vec<String> = from_versions.into_iter().collect();
    Ok((!rewritten.is_empty()).then(|| {
        format!(
            "migrated the lake from schema version {} to {SCHEMA_VERSION}: rewrote {}",
            from.join(" and "),
            rewritten.join(", ")
        )
    }))
}

fn spec_columns(spec: &TableSpec) -> Vec<String> {
    spec.columns.iter().map(|c| c.name.to_string()).collect()
}

/// The column names of a Parquet file and the schema version that wrote it, from its footer.
fn footer_of(file: &std::path::Path) -> Result<(Vec<String>, Option<String>)> {
    let f = std::fs::File::open(file).map_err(|e| Error::lake(file, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| Error::lake(file, e))?;
    let version = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| {
            kv.iter()
                .find(|k| k.key == "vaten.schema_version")
                .and_then(|k| k.value.clone())
        })
        // Only a number goes into the run's message, whatever a file says.
        .filter(|v| version_number(v).is_some() && v.len() <= 8);
    let columns = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    Ok((columns, version))
}

/// `batch` in today's columns of `spec`: columns it has are taken by name (and must have
/// today's type), nullable columns it lacks become null, columns today's table does not know
/// are an error (nothing received is dropped silently).
pub(crate) fn conform(
    spec: &TableSpec,
    batch: &RecordBatch,
) -> std::result::Result<RecordBatch, String> {
    let schema = spec.arrow_schema();
    for field in batch.schema().fields() {
        if schema.field_with_name(field.name()).is_err() {
            return Err(format!(
                "column {} is not in today's {} table; refusing to drop it",
                field.name(),
                spec.name
            ));
        }
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => columns.push(c.clone()),
            Some(c) => {
                return Err(format!(
                    "column {} is {}, today's {} table has {}",
                    field.name(),
                    c.data_type(),
                    spec.name,
                    field.data_type()
                ))
            }
            None if field.is_nullable() => {
                columns.push(new_null_array(field.data_type(), batch.num_rows()))
            }
            None => {
                return Err(format!(
                    "column {} of today's {} table is missing and cannot be null",
                    field.name(),
                    spec.name
                ))
            }
        }
    }
    RecordBatch::try_new(Arc::clone(&schema), columns).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, Int64Array, StringArray, TimestampMicrosecondArray};

    fn old_readings(n: usize) -> RecordBatch {
        // grid_readings as schema version 2 wrote it: no run_id.
        let s = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
        let i = |v: i64| Arc::new(Int64Array::from(vec![v; n])) as ArrayRef;
        let t = Arc::new(TimestampMicrosecondArray::from(vec![1_i64; n]).with_timezone("UTC"))
            as ArrayRef;
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("ean", s("871687120000000004")),
            ("meter_id", s("E1")),
            ("t", t.clone()),
            ("import_wh", i(7)),
            ("export_wh", i(0)),
            ("quality", s("measured")),
            ("received_at", t),
            ("delivery_seq", i(1)),
            ("cursor", s("")),
        ];
        RecordBatch::try_from_iter(cols).unwrap()
    }

    #[test]
    fn an_old_file_gains_the_new_column_as_null_and_keeps_its_values() {
        let b = conform(&GRID_READINGS, &old_readings(3)).unwrap();
        assert_eq!(b.schema(), GRID_READINGS.arrow_schema());
        let run = b.column_by_name("run_id").unwrap();
        assert_eq!(run.null_count(), 3);
        let imp = b.column_by_name("import_wh").unwrap();
        assert_eq!(
            imp.as_primitive::<arrow::datatypes::Int64Type>().value(2),
            7
        );
    }

    #[test]
    fn a_column_today_does_not_know_is_not_dropped() {
        let old = old_readings(1);
        let extra = RecordBatch::try_from_iter(
            old.schema()
                .fields()
                .iter()
                .zip(old.columns())
                .map(|(f, c)| (f.name().clone(), c.clone()))
                .chain([(
                    "mystery".to_string(),
                    Arc::new(StringArray::from(vec!["x"])) as ArrayRef,
                )]),
        )
        .unwrap();
        let err = conform(&GRID_READINGS, &extra).unwrap_err();
        assert!(err.contains("mystery"), "{err}");
    }

    #[test]
    fn a_missing_column_that_cannot_be_null_is_refused() {
        let old = old_readings(1);
        let without_quality = old.project(&[0, 1, 2, 3, 4, 6, 7, 8]).unwrap();
        let err = conform(&GRID_READINGS, &without_quality).unwrap_err();
        assert!(err.contains("quality"), "{err}");
    }

    #[test]
    fn a_column_of_another_type_is_refused() {
        let old = old_readings(1);
        let mut cols = old.columns().to_vec();
        // import_wh as text, as no version of vaten wrote it.
        cols[3] = Arc::new(StringArray::from(vec!["7"]));
        let names: Vec<String> = old
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let changed = RecordBatch::try_from_iter(names.into_iter().zip(cols)).unwrap();
        let err = conform(&GRID_READINGS, &changed).unwrap_err();
        assert!(err.contains("import_wh is Utf8"), "{err}");
    }

    #[test]
    fn every_kept_table_is_one_the_lake_writes() {
        for spec in KEPT_TABLES {
            assert!(super::super::schema::ALL_TABLES
                .iter()
                .any(|t| t.name == spec.name));
        }
    }
}
