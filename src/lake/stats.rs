//! What each file's footer says about one integer column, without reading the column: the
//! smallest and largest value. A query uses it to leave out files that cannot hold what it asks
//! for (`query::top_files`): a year of `intervals` is 14,640 files, and opening each one to
//! read a column costs more than the answer.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parquet::basic::{ConvertedType, IntType, LogicalType, Type as PhysicalType};
use parquet::file::metadata::ParquetMetaDataReader;
use parquet::file::statistics::Statistics;

use super::readahead::{beside, Ask, StopOnDrop};
use super::{Lake, Partitioning, TableSpec};

/// One file of a table and the range of one column in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRange {
    pub path: PathBuf,
    /// The partition folder's value as written (`2026-11-25` of `date=2026-11-25`); `None` for
    /// a table without partitions.
    pub partition: Option<String>,
    /// The smallest and largest value of the column; `None` when the file holds no rows.
    pub range: Option<(i64, i64)>,
}

impl Lake {
    /// Every file a scan of `spec` reads, with the range of `column` from its footer. `None`
    /// when any file cannot say for certain: an unreadable footer, a row group whose
    /// statistics are missing or count nulls, a column stored as anything but a signed
    /// integer, files whose schemas differ (a scan of some of them could then answer where a
    /// scan of all refuses), a file not laid out as `<table>/<key>=<value>/<file>.parquet` (or
    /// `<table>/<file>.parquet` for a table without partitions), a value Polars would decode
    /// (`%`), or a file of another kind (a folder scan refuses the table then). What has a size
    /// of 0 is left out unopened, as a folder scan leaves it out. (For integers the Parquet
    /// reader takes a footer's minimum and maximum as exact; the caller checks what it gets.)
    pub fn column_ranges(&self, spec: &TableSpec, column: &str) -> Option<Vec<FileRange>> {
        let files = self.partition_files(spec)?;
        let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
        // Two threads at most: the footers are small, and the query after this needs the cores.
        // Each takes the next file; a third asks for the footers ahead of them (one footer at a
        // time per thread keeps at most two reads in flight; see `readahead`).
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
        let next = AtomicUsize::new(0);
        let given_up = AtomicBool::new(false);
        let work = || {
            // A reader that fails or panics stops the other: the answer is `None` then.
            let stop_the_other = StopOnDrop(&given_up);
            let mut done = Vec::new();
            while !given_up.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, partition)) = files.get(i) else {
                    std::mem::forget(stop_the_other);
                    return Some(done);
                };
                done.push((i, file_range(path, partition, column)?));
            }
            None
        };
        let parts: Vec<Option<Found>> = beside(&paths, &next, Ask::Footers, || {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|_| std::thread::Builder::new().spawn_scoped(scope, work))
                    .collect();
                if handles.iter().any(|h| h.is_err()) {
                    // The answer is `None` then: the reader that did start need not go on.
                    given_up.store(true, Ordering::Relaxed);
                }
                handles
                    .into_iter()
                    .map(|h| h.ok().and_then(|h| h.join().ok()).flatten())
                    .collect()
            })
        });
        let mut found = Found::with_capacity(files.len());
        for part in parts {
            found.extend(part?);
        }
        in_file_order(found, files.len())
    }

    /// Every file a scan of `spec` reads, with its partition value (as [`FileRange`] has it),
    /// sorted by path (the files of a partition are neighbours). `None` for a file not where
    /// the layout puts it, a value Polars would decode, or a file of another kind (a folder
    /// scan refuses the table then). What has a size of 0 is left out unopened, as a folder
    /// scan leaves it out.
    pub fn partition_files(&self, spec: &TableSpec) -> Option<Vec<(PathBuf, Option<String>)>> {
        let table = self.table_dir(spec);
        let mut out = Vec::new();
        for path in super::files_under(&table).ok()? {
            // Before anything else: a pipe has a size of 0, and opening it would wait.
            let about = std::fs::metadata(&path).ok()?;
            if about.len() == 0 {
                continue;
            }
            if !about.is_file() || path.extension().is_none_or(|e| e != "parquet") {
                return None;
            }
            let partition = partition_value(&table, spec, &path)?;
            out.push((path, partition));
        }
        out.sort();
        Some(out)
    }
}

/// Each file's range and schema, by the file's index among the table's files.
type Found<F = Fingerprint> = Vec<(usize, (FileRange, F))>;

/// The ranges of all `files` files in the order of the files (the threads took them in
/// turns), or `None` when one is missing or their schemas differ (compared as before the
/// threads: each with the first file's).
fn in_file_order<F: PartialEq>(mut found: Found<F>, files: usize) -> Option<Vec<FileRange>> {
    found.sort_unstable_by_key(|(i, _)| *i);
    if found.len() != files || found.iter().enumerate().any(|(n, (i, _))| n != *i) {
        return None;
    }
    let mut all = Vec::with_capacity(files);
    let mut first: Option<F> = None;
    for (_, (file, fingerprint)) in found {
        match &first {
            None => first = Some(fingerprint),
            Some(f) if *f == fingerprint => {}
            Some(_) => return None,
        }
        all.push(file);
    }
    Some(all)
}

/// What a scan takes from a file's schema: its Parquet columns and the Arrow types written
/// beside them.
#[derive(PartialEq)]
struct Fingerprint {
    columns: parquet::schema::types::TypePtr,
    arrow: Option<String>,
}

/// The range of `column` in the file at `path` (one of [`Lake::partition_files`], which checked
/// what it is and where it lies) and the file's schema: `None` when the file cannot say for
/// certain.
fn file_range(
    path: &Path,
    partition: &Option<String>,
    column: &str,
) -> Option<(FileRange, Fingerprint)> {
    let file = File::open(path).ok()?;
    let meta = ParquetMetaDataReader::new().parse_and_finish(&file).ok()?;
    let schema = meta.file_metadata().schema_descr();
    let index = (0..schema.num_columns()).find(|&i| schema.column(i).path().parts() == [column])?;
    let descr = schema.column(index);
    let signed = matches!(
        descr.physical_type(),
        PhysicalType::INT32 | PhysicalType::INT64
    ) && matches!(
        descr.logical_type_ref(),
        None | Some(LogicalType::Integer(IntType {
            is_signed: true,
            ..
        }))
    ) && matches!(
        descr.converted_type(),
        ConvertedType::NONE
            | ConvertedType::INT_8
            | ConvertedType::INT_16
            | ConvertedType::INT_32
            | ConvertedType::INT_64
    );
    if !signed {
        return None;
    }
    let mut range: Option<(i64, i64)> = None;
    for group in meta.row_groups() {
        if group.num_rows() == 0 {
            continue;
        }
        let stats = group.column(index).statistics()?;
        if stats.null_count_opt() != Some(0) {
            return None;
        }
        let (low, high) = match stats {
            Statistics::Int32(s) => (i64::from(*s.min_opt()?), i64::from(*s.max_opt()?)),
            Statistics::Int64(s) => (*s.min_opt()?, *s.max_opt()?),
            _ => return None,
        };
        range = Some(range.map_or((low, high), |(l, h)| (l.min(low), h.max(high))));
    }
    let fingerprint = Fingerprint {
        columns: schema.root_schema_ptr(),
        arrow: meta
            .file_metadata()
            .key_value_metadata()
            // Of several, Polars reads the last one with a value.
            .and_then(|kv| {
                kv.iter()
                    .rev()
                    .filter(|e| e.key == "ARROW:schema")
                    .find_map(|e| e.value.clone())
            }),
    };
    let file = FileRange {
        path: path.to_path_buf(),
        partition: partition.clone(),
        range,
    };
    Some((file, fingerprint))
}

/// Whether a partition folder's value reads as written: Polars decodes `%xx` and reads
/// `__HIVE_DEFAULT_PARTITION__` as null.
pub(crate) fn plain_partition_value(value: &str) -> bool {
    !value.is_empty() && !value.contains('%') && value != "__HIVE_DEFAULT_PARTITION__"
}

/// The partition value of a file at `path`, checked against the table's layout: `Some(None)`
/// for a table without partitions, `None` for a file not where the layout puts it.
fn partition_value(table: &Path, spec: &TableSpec, path: &Path) -> Option<Option<String>> {
    let parts: Vec<&str> = path
        .strip_prefix(table)
        .ok()?
        .iter()
        .map(|p| p.to_str())
        .collect::<Option<_>>()?;
    match (spec.partitioning, parts.as_slice()) {
        (Partitioning::None, [name]) if !name.contains('=') => Some(None),
        (Partitioning::Date | Partitioning::Year, [folder, name]) if !name.contains('=') => {
            let value = folder
                .strip_prefix(spec.partitioning.key())?
                .strip_prefix('=')?;
            plain_partition_value(value).then(|| Some(value.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::readahead::LEAD;
    use crate::lake::schema::GRID_READINGS;
    use crate::received::rows::{readings_batch, GridReading};

    fn reading(ean: &str, day: u32, import_wh: i64) -> GridReading {
        GridReading {
            ean: ean.into(),
            meter_id: "M".into(),
            t_us: i64::from(day) * 86_400_000_000,
            import_wh,
            export_wh: 0,
            quality: "measured".into(),
            received_at_us: 0,
            delivery_seq: 1,
            cursor: "c".into(),
            date: chrono::NaiveDate::from_ymd_opt(2026, 10, day).unwrap(),
        }
    }

    /// Two files on 1 October (imports 5, 9 and -3, 2) and one on 2 October (7).
    fn lake(root: &Path) -> Lake {
        lake_of(
            root,
            [
                vec![reading("a", 1, 5), reading("b", 1, 9)],
                vec![reading("c", 1, -3), reading("d", 1, 2)],
                vec![reading("a", 2, 7)],
            ],
        )
    }

    /// A lake at `root` with a file of `grid_readings` per list of rows (on its first row's day).
    fn lake_of(root: &Path, files: impl IntoIterator<Item = Vec<GridReading>>) -> Lake {
        let lake = Lake::open_for_write(root, "test", std::time::Duration::ZERO).unwrap();
        let mut txn = lake.begin().unwrap();
        for rows in files {
            let date = rows[0].date.to_string();
            lake.stage_batch(
                &mut txn,
                &GRID_READINGS,
                Some(&date),
                &readings_batch(&rows, "r"),
            )
            .unwrap();
        }
        txn.commit().unwrap();
        lake
    }

    fn ranges(lake: &Lake) -> Option<Vec<(String, (i64, i64))>> {
        let mut out: Vec<_> = lake
            .column_ranges(&GRID_READINGS, "import_wh")?
            .into_iter()
            .map(|f| (f.partition.unwrap(), f.range.unwrap()))
            .collect();
        out.sort();
        Some(out)
    }

    #[test]
    fn each_files_range_comes_from_its_footer() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        let expected = vec![
            ("2026-10-01".to_string(), (-3, 2)),
            ("2026-10-01".to_string(), (5, 9)),
            ("2026-10-02".to_string(), (7, 7)),
        ];
        assert_eq!(ranges(&lake), Some(expected));
        // An empty file is left out, as a folder scan leaves it out.
        let day = lake.table_dir(&GRID_READINGS).join("date=2026-10-02");
        std::fs::write(day.join("empty.parquet"), b"").unwrap();
        assert_eq!(ranges(&lake).map(|r| r.len()), Some(3));
    }

    #[test]
    fn ranges_come_in_the_order_of_the_files_whichever_thread_read_them() {
        // Thirty days, a file each, whose imports are the day's number times ten: two threads
        // take the files in turns, and the answer must still follow the files.
        let dir = tempfile::tempdir().unwrap();
        let lake = lake_of(
            dir.path(),
            (1..=30).map(|day| vec![reading("a", day, i64::from(day) * 10)]),
        );
        let got = lake.column_ranges(&GRID_READINGS, "import_wh").unwrap();
        let days: Vec<(String, (i64, i64))> = got
            .iter()
            .map(|f| (f.partition.clone().unwrap(), f.range.unwrap()))
            .collect();
        let expected: Vec<(String, (i64, i64))> = (1..=30)
            .map(|d| (format!("2026-10-{d:02}"), (d * 10, d * 10)))
            .collect();
        assert_eq!(days, expected);
        // And each path is its partition's file.
        for f in &got {
            let folder = format!("date={}", f.partition.as_ref().unwrap());
            assert!(f.path.parent().unwrap().ends_with(&folder), "{f:?}");
        }
    }

    #[test]
    fn footers_found_in_any_order_come_back_in_the_order_of_the_files() {
        let range = |n: usize| FileRange {
            path: PathBuf::from(format!("f{n}")),
            partition: None,
            range: Some((n as i64, n as i64)),
        };
        // Two threads taking the files in turns, their finds gathered thread by thread.
        let found: Found<u8> = [0, 2, 4, 1, 3]
            .into_iter()
            .map(|i| (i, (range(i), 7)))
            .collect();
        let got = in_file_order(found.clone(), 5).unwrap();
        let values: Vec<i64> = got.iter().map(|f| f.range.unwrap().0).collect();
        assert_eq!(values, [0, 1, 2, 3, 4]);
        assert_eq!(got[3].path, PathBuf::from("f3"));
        // A file missing (a reader stopped early), or one found twice in place of another:
        // no answer.
        assert!(in_file_order(found[..4].to_vec(), 5).is_none());
        let mut twice = found.clone();
        twice[1] = (0, (range(0), 7));
        assert!(in_file_order(twice, 5).is_none());
        // A schema of its own, wherever that file comes: no answer.
        for k in 0..5 {
            let mut other = found.clone();
            other[k].1 .1 = 8;
            assert!(in_file_order(other, 5).is_none(), "file {k}");
        }
    }

    #[test]
    fn an_unreadable_first_footer_among_many_ends_the_readers_and_the_hints() {
        // More files than the hints run ahead (`readahead::LEAD`), the first unreadable: the
        // answer is `None`, and the readers end (the hints' own stop is tested in `readahead`).
        let dir = tempfile::tempdir().unwrap();
        let lake = lake_of(
            dir.path(),
            (0..LEAD as u32 + 6).map(|i| vec![reading("a", 1 + i % 30, 1)]),
        );
        let files = lake.partition_files(&GRID_READINGS).unwrap();
        assert_eq!(files.len(), LEAD + 6);
        std::fs::write(&files[0].0, b"PAR1 not a Parquet file PAR1").unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let answer = lake.column_ranges(&GRID_READINGS, "import_wh");
            done.send(answer.is_none()).unwrap()
        });
        let none = finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the readers or the hints did not end");
        assert!(none, "an unreadable footer gave ranges");
    }

    #[test]
    fn a_file_that_cannot_say_for_certain_makes_the_answer_none() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        // A text column, and a column no file has.
        assert!(lake.column_ranges(&GRID_READINGS, "ean").is_none());
        assert!(lake.column_ranges(&GRID_READINGS, "nothing").is_none());
        let day = lake.table_dir(&GRID_READINGS).join("date=2026-10-02");
        // A file that is no Parquet file.
        std::fs::write(day.join("broken.parquet"), b"not parquet").unwrap();
        assert!(ranges(&lake).is_none());
        std::fs::remove_file(day.join("broken.parquet")).unwrap();
        assert!(ranges(&lake).is_some());
        // A file a level deeper than the layout puts files (in a folder that looks right).
        let deeper = day.join("date=2026-10-02");
        std::fs::create_dir(&deeper).unwrap();
        let one = lake.files(&GRID_READINGS, Some("2026-10-01")).unwrap();
        std::fs::copy(&one[0], deeper.join("copy.parquet")).unwrap();
        assert!(ranges(&lake).is_none());
        std::fs::remove_dir_all(&deeper).unwrap();
        // A partition value Polars would decode.
        let encoded = lake.table_dir(&GRID_READINGS).join("date=2026%2D10%2D03");
        std::fs::create_dir(&encoded).unwrap();
        std::fs::copy(&one[0], encoded.join("copy.parquet")).unwrap();
        assert!(ranges(&lake).is_none());
    }

    /// Writes column `k` (nullable) to `path` in row groups of at most `rows_per_group`.
    fn write_k(path: &Path, values: arrow::array::ArrayRef, rows_per_group: usize) {
        write_k_then(path, values, rows_per_group, None);
    }

    /// As `write_k`, with a second `ARROW:schema` entry after the writer's own, when given.
    fn write_k_then(
        path: &Path,
        values: arrow::array::ArrayRef,
        rows_per_group: usize,
        arrow_schema: Option<String>,
    ) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let batch =
            arrow::array::RecordBatch::try_from_iter_with_nullable([("k", values, true)]).unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(rows_per_group))
            .build();
        let file = File::create(path).unwrap();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        if let Some(value) = arrow_schema {
            writer.append_key_value_metadata(parquet::file::metadata::KeyValue::new(
                "ARROW:schema".into(),
                value,
            ));
        }
        writer.close().unwrap();
    }

    fn int32(values: &[Option<i32>]) -> arrow::array::ArrayRef {
        std::sync::Arc::new(arrow::array::Int32Array::from(values.to_vec()))
    }

    fn k_ranges(lake: &Lake) -> Option<Vec<(i64, i64)>> {
        let mut out: Vec<_> = lake
            .column_ranges(&GRID_READINGS, "k")?
            .into_iter()
            .map(|f| f.range.unwrap())
            .collect();
        out.sort();
        Some(out)
    }

    #[test]
    fn row_groups_nulls_types_and_schemas_as_other_writers_leave_them() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open_for_write(dir.path(), "test", std::time::Duration::ZERO).unwrap();
        let day = lake.table_dir(&GRID_READINGS).join("date=2026-10-01");
        // Three values in row groups of two: the range spans both groups.
        write_k(
            &day.join("a.parquet"),
            int32(&[Some(3), Some(8), Some(-4)]),
            2,
        );
        write_k(&day.join("b.parquet"), int32(&[Some(5)]), 2);
        assert_eq!(k_ranges(&lake), Some(vec![(-4, 8), (5, 5)]));
        // A pipe has a size of 0: left out unopened (opening it would wait for a writer).
        let pipe = std::ffi::CString::new(day.join("pipe.parquet").to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only creates the file.
        assert_eq!(unsafe { libc::mkfifo(pipe.as_ptr(), 0o600) }, 0);
        // In a thread of its own, so that a reader stuck on the pipe fails the test instead
        // of hanging it.
        let (sent, answer) = std::sync::mpsc::channel();
        let root = dir.path().to_path_buf();
        std::thread::spawn(move || {
            let _ = sent.send(k_ranges(&Lake::open_read(&root)).map(|r| r.len()));
        });
        let within = answer.recv_timeout(std::time::Duration::from_secs(60));
        assert_eq!(within, Ok(Some(2)), "the pipe was opened");
        // A null beside a value in the first row group: its statistics count it.
        let nulls = day.join("nulls.parquet");
        write_k(&nulls, int32(&[Some(1), None, Some(2)]), 2);
        assert!(k_ranges(&lake).is_none());
        std::fs::remove_file(&nulls).unwrap();
        // Another schema: 64-bit where the others are 32-bit.
        let wide = day.join("wide.parquet");
        let values = arrow::array::Int64Array::from(vec![Some(1_i64)]);
        write_k(&wide, std::sync::Arc::new(values), 2);
        assert!(k_ranges(&lake).is_none());
        std::fs::remove_file(&wide).unwrap();
        assert!(k_ranges(&lake).is_some());
        // The same Parquet column (INT64) read as another Arrow type, a duration, is another
        // schema. Of two `ARROW:schema` entries the last one counts, as Polars reads it: a
        // 64-bit file that ends with a duration's schema agrees with a duration file, and not
        // with a file of plain 64-bit integers.
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open_for_write(dir.path(), "test", std::time::Duration::ZERO).unwrap();
        let day = lake.table_dir(&GRID_READINGS).join("date=2026-10-01");
        let int64 = || -> arrow::array::ArrayRef {
            std::sync::Arc::new(arrow::array::Int64Array::from(vec![Some(4_i64)]))
        };
        let as_duration =
            parquet::arrow::encode_arrow_schema(&arrow::datatypes::Schema::new(vec![
                arrow::datatypes::Field::new(
                    "k",
                    arrow::datatypes::DataType::Duration(arrow::datatypes::TimeUnit::Microsecond),
                    true,
                ),
            ]));
        write_k_then(&day.join("a.parquet"), int64(), 2, Some(as_duration));
        let micros: arrow::array::ArrayRef = std::sync::Arc::new(
            arrow::array::DurationMicrosecondArray::from(vec![Some(1_i64)]),
        );
        write_k(&day.join("b.parquet"), micros, 2);
        assert_eq!(k_ranges(&lake), Some(vec![(1, 1), (4, 4)]));
        std::fs::remove_file(day.join("b.parquet")).unwrap();
        write_k(&day.join("c.parquet"), int64(), 2);
        assert!(k_ranges(&lake).is_none());
        // An unsigned column (its statistics are ordered unsigned), alone in a table.
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open_for_write(dir.path(), "test", std::time::Duration::ZERO).unwrap();
        let day = lake.table_dir(&GRID_READINGS).join("date=2026-10-01");
        let values = arrow::array::UInt32Array::from(vec![Some(1_u32), Some(u32::MAX)]);
        write_k(&day.join("u.parquet"), std::sync::Arc::new(values), 2);
        assert!(k_ranges(&lake).is_none());
    }
}
