//! Reading tables with Polars: the same view an analyst gets (hive partition keys become
//! columns). Polars work is blocking; call it off the async runtime.

use polars::prelude::*;

use super::{Lake, TableSpec};
use crate::error::Result;

/// Tables whose rows for some keys are held in memory, split by group (a cable), and per thread
/// the group its scans answer for now (the transform computes cables side by side).
#[derive(Default)]
pub struct Held {
    /// Table name → group → that group's rows (every group of the prefetch has a frame until
    /// it is released, see [`Lake::release`]).
    tables: std::collections::HashMap<&'static str, std::collections::HashMap<String, DataFrame>>,
    focus: std::collections::HashMap<std::thread::ThreadId, String>,
}

pub type Prefetched = std::sync::Mutex<Held>;

/// Partition folders (`date=…`) become columns.
fn hive_args() -> ScanArgsParquet {
    ScanArgsParquet {
        hive_options: HiveOptions::new_enabled(),
        ..Default::default()
    }
}

/// A scan of exactly `files`, partition keys as columns (typed by `partition_types` if given).
fn listed_scan(
    files: &[std::path::PathBuf],
    partition_types: Option<SchemaRef>,
) -> PolarsResult<LazyFrame> {
    let paths = files
        .iter()
        .map(|f| PlRefPath::try_from_path(f))
        .collect::<PolarsResult<Vec<_>>>()?;
    let mut args = hive_args();
    // Each path names one file: `[`, `*` or `?` in the lake's path is no pattern.
    args.glob = false;
    args.hive_options.schema = partition_types;
    LazyFrame::scan_parquet_files(paths.into_iter().collect(), args)
}

impl Lake {
    /// A lazy scan over every file of a table, partition keys included as columns; `None`
    /// when the table has no files yet. While the table is prefetched, the rows held for the
    /// group in focus (see [`Lake::focus`]).
    pub fn scan(&self, spec: &TableSpec) -> Result<Option<LazyFrame>> {
        if let Some(df) = self.held_rows(spec) {
            return Ok(Some(df.lazy()));
        }
        if !super::any_parquet_under(&self.table_dir(spec))? {
            return Ok(None);
        }
        let dir = self.table_dir(spec);
        let path = PlRefPath::new(format!("{}/", dir.display()));
        Ok(Some(LazyFrame::scan_parquet(path, hive_args())?))
    }

    /// As [`Lake::scan`], and a table partitioned by day may leave out its partitions of days
    /// before `from`: Polars is handed the files of the later days, so neither the listing
    /// nor the scan looks at a year of older files (thousands, each listed and inspected).
    /// The caller still filters on the partition key: a prefetched table's held rows, and
    /// the fallback below, cover every day.
    pub fn scan_from(
        &self,
        spec: &TableSpec,
        from: Option<chrono::NaiveDate>,
    ) -> Result<Option<LazyFrame>> {
        let from = from.filter(|_| spec.partitioning == super::Partitioning::Date);
        // Polars reads every `name=value` folder in a listed file's path as a partition
        // column: the lake's own path must have none.
        let plain_root = !self.root().to_string_lossy().contains('=');
        if let Some(df) = self.held_rows(spec) {
            return Ok(Some(df.lazy()));
        }
        if from.is_none() || !plain_root {
            return self.scan(spec);
        }
        let files = self.files_from(spec, from)?;
        if files.is_empty() {
            // Nothing that recent: the whole table answers (an older reading may be wanted).
            return self.scan(spec);
        }
        // As a folder scan does, an empty file is left out (one `stat` per recent file).
        let files: Vec<std::path::PathBuf> = files
            .into_iter()
            .filter(|f| std::fs::metadata(f).map_or(true, |m| m.len() > 0))
            .collect();
        Ok(Some(listed_scan(&files, None)?))
    }

    /// A scan of exactly `files` (of one table, from the lake's own listing, none empty), the
    /// partition keys as columns of the types `partition_types` gives (as Polars infers them
    /// when `None`). `None` when the lake's own path has a `name=value` folder, which Polars
    /// would read as one more partition column of every file.
    pub fn scan_files(
        &self,
        files: &[std::path::PathBuf],
        partition_types: Option<SchemaRef>,
    ) -> Result<Option<LazyFrame>> {
        if self.root().to_string_lossy().contains('=') {
            return Ok(None);
        }
        Ok(Some(listed_scan(files, partition_types)?))
    }

    /// The rows held for `spec` for this thread's group in focus, if any.
    fn held_rows(&self, spec: &TableSpec) -> Option<DataFrame> {
        let held = self.prefetched.lock().expect("prefetched");
        match (
            held.tables.get(spec.name),
            held.focus.get(&std::thread::current().id()),
        ) {
            (Some(groups), Some(focus)) => groups.get(focus).cloned(),
            _ => None,
        }
    }

    /// Reads once the rows of `spec` whose `key` is one of the groups' keys (the `columns`
    /// named and the partition key) and holds them split by group: while a group is in focus
    /// ([`Lake::focus`]), [`Lake::scan`] of that table answers with its rows, until
    /// [`Lake::forget_prefetched`] (or the group's [`Lake::release`]). The transform reads the received tables once for a batch
    /// of cables instead of once per cable. With `from`, only the partitions from that day on
    /// (a date-partitioned table). Every scan while it holds must ask only for the group's
    /// keys, those columns and those days.
    pub fn prefetch(
        &self,
        spec: &'static TableSpec,
        key: &str,
        groups: &[(String, Vec<String>)],
        columns: &[&str],
        from: Option<chrono::NaiveDate>,
    ) -> Result<()> {
        let Some(mut lf) = self.scan_from(spec, from)? else {
            return Ok(());
        };
        if let Some(from) = from {
            // On the partition key: the scan skips older files altogether.
            lf = lf.filter(
                col(spec.partitioning.key())
                    .cast(DataType::Date)
                    .gt_eq(lit(from)),
            );
        }
        let keys: Vec<&str> = groups
            .iter()
            .flat_map(|(_, k)| k.iter().map(String::as_str))
            .collect();
        let wanted = lit(Series::new("wanted".into(), keys)).implode(false);
        let mut cols: Vec<Expr> = columns.iter().map(|c| col(*c)).collect();
        cols.push(col(spec.partitioning.key()));
        let df = lf
            .filter(col(key).is_in(wanted, false))
            .select(cols)
            .collect()?;
        self.hold(spec, key, groups, &df)
    }

    /// Holds `df` (rows of `spec`, as [`Lake::prefetch`] reads them) split by group; rows of
    /// no group's keys are left out.
    pub fn hold(
        &self,
        spec: &'static TableSpec,
        key: &str,
        groups: &[(String, Vec<String>)],
        df: &DataFrame,
    ) -> Result<()> {
        let mut split = std::collections::HashMap::new();
        for ((name, _), part) in groups.iter().zip(split_by_group(df, key, groups)?) {
            split.insert(name.clone(), part);
        }
        self.prefetched
            .lock()
            .expect("prefetched")
            .tables
            .insert(spec.name, split);
        Ok(())
    }

    /// Scans of prefetched tables on this thread answer with `group`'s rows (none: they read
    /// the files). Other threads keep their own focus.
    pub fn focus(&self, group: Option<&str>) {
        let mut held = self.prefetched.lock().expect("prefetched");
        let me = std::thread::current().id();
        match group {
            Some(g) => held.focus.insert(me, g.to_string()),
            None => held.focus.remove(&me),
        };
    }

    /// Lets go of the held rows of `spec` of the group in focus on this thread: a later scan
    /// of it there reads the files (correct, only slower). For memory: a reader that is done
    /// with a table gives its rows back before the batch ends.
    pub fn release(&self, spec: &TableSpec) {
        let mut held = self
            .prefetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(focus) = held.focus.get(&std::thread::current().id()).cloned() else {
            return;
        };
        let gone = held
            .tables
            .get_mut(spec.name)
            .and_then(|groups| groups.remove(&focus));
        // Freed after the lock: the other worker's scans need not wait for it.
        drop(held);
        drop(gone);
    }

    /// Scans read the files again.
    pub fn forget_prefetched(&self) {
        *self.prefetched.lock().expect("prefetched") = Held::default();
    }

    /// A whole table as a DataFrame (empty frame with no columns when there are no files).
    pub fn read_table(&self, spec: &TableSpec) -> Result<DataFrame> {
        match self.scan(spec)? {
            Some(lf) => Ok(lf.collect()?),
            None => Ok(DataFrame::empty()),
        }
    }
}

/// The rows of `df` whose `key` is one of a group's keys, one frame per group (in the order
/// of `groups`), each in the order of `df`. One pass: files sorted by key repeat the previous
/// key, so most rows need no lookup.
pub fn split_by_group(
    df: &DataFrame,
    key: &str,
    groups: &[(String, Vec<String>)],
) -> Result<Vec<DataFrame>> {
    let (df, rows) = rows_by_group(df, key, groups)?;
    rows.iter().map(|rows| Ok(df.take(rows)?)).collect()
}

/// What [`split_by_group`] gathers: `df` ready to gather from, and each group's row numbers
/// in it (for a caller that gathers and uses the groups on threads of its own).
pub fn rows_by_group(
    df: &DataFrame,
    key: &str,
    groups: &[(String, Vec<String>)],
) -> Result<(DataFrame, Vec<IdxCa>)> {
    let group_of: std::collections::HashMap<&str, usize> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, (_, k))| k.iter().map(move |k| (k.as_str(), g)))
        .collect();
    // Strings in one chunk: Polars gathers the strings of a column of many chunks (one per
    // file read) by copying each value; from one chunk it gathers only their 16-byte views
    // and shares the buffers (a year's full recompute spent a third of its time setting rows
    // aside here). Joining chunks of strings copies the views, not the bytes; numbers gather
    // as fast from many chunks, and are left as they are (no second copy of them). The groups
    // then share the frame's string bytes until the last of them is dropped: the peak fell
    // all the same (a year of 40 cables 964 -> 901-966 MiB, of 3 cables 1,293 -> 1,223 MiB).
    let mut df = df.clone();
    let split: Vec<PlSmallStr> = df
        .columns()
        .iter()
        .filter(|c| c.dtype() == &DataType::String && c.n_chunks() > 1)
        .map(|c| c.name().clone())
        .collect();
    for name in split {
        let joined = df.column(&name)?.rechunk();
        df.with_column(joined)?;
    }
    let mut rows: Vec<Vec<IdxSize>> = vec![Vec::new(); groups.len()];
    let mut last: Option<(&str, Option<usize>)> = None;
    for (i, k) in df.column(key)?.str()?.iter().enumerate() {
        let k = k.unwrap_or("");
        let g = match last {
            Some((l, g)) if l == k => g,
            _ => group_of.get(k).copied(),
        };
        last = Some((k, g));
        if let Some(g) = g {
            rows[g].push(i as IdxSize);
        }
    }
    let rows = rows
        .into_iter()
        .map(|rows| IdxCa::from_vec("rows".into(), rows))
        .collect();
    Ok((df, rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::schema::GRID_READINGS;
    use crate::received::rows::{readings_batch, GridReading};

    fn reading(ean: &str, day: u32) -> GridReading {
        let date = chrono::NaiveDate::from_ymd_opt(2026, 10, day).unwrap();
        GridReading {
            ean: ean.into(),
            meter_id: "M".into(),
            t_us: i64::from(day) * 86_400_000_000,
            import_wh: i64::from(day),
            export_wh: 0,
            quality: "measured".into(),
            received_at_us: 0,
            delivery_seq: 1,
            cursor: "c".into(),
            date,
        }
    }

    fn eans_of(lake: &Lake) -> Vec<String> {
        let df = lake
            .scan(&GRID_READINGS)
            .unwrap()
            .unwrap()
            .sort(["ean", "t"], SortMultipleOptions::default())
            .collect()
            .unwrap();
        df.column("ean")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|e| e.unwrap().to_string())
            .collect()
    }

    /// Stages readings of "a", "b" and "c" on 1, 2 and 3 October in a lake at `root`.
    fn three_days(root: &std::path::Path) -> Lake {
        let lake = Lake::open_for_write(root, "test", std::time::Duration::ZERO).unwrap();
        let mut txn = lake.begin().unwrap();
        for day in [1, 2, 3] {
            let rows: Vec<GridReading> = ["a", "b", "c"].iter().map(|e| reading(e, day)).collect();
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

    /// The days (as `date` partition values) and columns a scan answers with.
    fn days_and_columns(lf: LazyFrame) -> (Vec<String>, Vec<String>) {
        let df = lf
            .sort(["date", "ean"], SortMultipleOptions::default())
            .collect()
            .unwrap();
        let days = df
            .column("date")
            .unwrap()
            .cast(&DataType::String)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|d| d.unwrap().to_string())
            .collect();
        let columns = df
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        (days, columns)
    }

    #[test]
    fn a_scan_from_a_day_is_handed_that_days_files_and_later_with_the_same_columns() {
        let dir = tempfile::tempdir().unwrap();
        let lake = three_days(dir.path());
        let from = chrono::NaiveDate::from_ymd_opt(2026, 10, 2);
        let (all_days, all_columns) = days_and_columns(lake.scan(&GRID_READINGS).unwrap().unwrap());
        assert_eq!(all_days.len(), 9);
        let (days, columns) =
            days_and_columns(lake.scan_from(&GRID_READINGS, from).unwrap().unwrap());
        assert_eq!(
            days,
            ["2026-10-02"; 3]
                .iter()
                .chain(&["2026-10-03"; 3])
                .copied()
                .collect::<Vec<_>>()
        );
        assert_eq!(
            columns, all_columns,
            "the partition key a column as in a whole scan"
        );
        let date = |lf: LazyFrame| {
            lf.select([col("date")]).collect().unwrap()["date"]
                .dtype()
                .clone()
        };
        assert_eq!(
            date(lake.scan_from(&GRID_READINGS, from).unwrap().unwrap()),
            date(lake.scan(&GRID_READINGS).unwrap().unwrap())
        );
        // Nothing that recent: the whole table (an older reading may be what is looked for).
        let later = chrono::NaiveDate::from_ymd_opt(2026, 10, 4);
        let (days, _) = days_and_columns(lake.scan_from(&GRID_READINGS, later).unwrap().unwrap());
        assert_eq!(days, all_days);
    }

    #[test]
    fn a_lake_whose_own_path_looks_like_a_partition_is_scanned_whole() {
        // Polars would read `x=1` in each listed file's path as one more partition column.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("x=1").join("lake");
        let lake = three_days(&root);
        let from = chrono::NaiveDate::from_ymd_opt(2026, 10, 2);
        let (days, columns) =
            days_and_columns(lake.scan_from(&GRID_READINGS, from).unwrap().unwrap());
        assert!(!columns.iter().any(|c| c == "x"), "{columns:?}");
        assert_eq!(days.len(), 9, "every day: the caller filters on the date");
    }

    #[test]
    fn a_lake_whose_path_has_pattern_characters_is_read_as_written() {
        // `lake[1]` as a pattern would match `lake1`: a lake beside it, read in its place.
        let dir = tempfile::tempdir().unwrap();
        let lake = three_days(&dir.path().join("lake[1]"));
        let other = three_days(&dir.path().join("lake1"));
        let mut txn = other.begin().unwrap();
        let date = chrono::NaiveDate::from_ymd_opt(2026, 10, 3).unwrap();
        let rows = vec![reading("z", 3)];
        other
            .stage_batch(
                &mut txn,
                &GRID_READINGS,
                Some(&date.to_string()),
                &readings_batch(&rows, "r"),
            )
            .unwrap();
        txn.commit().unwrap();
        let from = chrono::NaiveDate::from_ymd_opt(2026, 10, 2);
        let lf = lake.scan_from(&GRID_READINGS, from).unwrap().unwrap();
        let eans = lf
            .select([col("ean")])
            .sort(["ean"], SortMultipleOptions::default())
            .collect()
            .unwrap();
        let eans: Vec<&str> = eans["ean"].str().unwrap().iter().flatten().collect();
        assert_eq!(eans, ["a", "a", "b", "b", "c", "c"]);
    }

    #[test]
    fn an_empty_file_among_recent_days_is_left_out_as_a_folder_scan_does() {
        let dir = tempfile::tempdir().unwrap();
        let lake = three_days(dir.path());
        let day = lake.table_dir(&GRID_READINGS).join("date=2026-10-03");
        std::fs::write(day.join("empty.parquet"), b"").unwrap();
        let from = chrono::NaiveDate::from_ymd_opt(2026, 10, 2);
        let (days, _) = days_and_columns(lake.scan(&GRID_READINGS).unwrap().unwrap());
        assert_eq!(days.len(), 9);
        let (days, _) = days_and_columns(lake.scan_from(&GRID_READINGS, from).unwrap().unwrap());
        assert_eq!(days.len(), 6);
    }

    #[test]
    fn scans_answer_with_the_focused_group_and_a_group_not_held_reads_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let lake = three_days(dir.path());
        let groups = vec![
            ("K1".to_string(), vec!["a".to_string()]),
            ("K2".to_string(), vec!["b".to_string()]),
        ];
        // From the 2nd on, as an incremental run holds only recent days.
        let from = chrono::NaiveDate::from_ymd_opt(2026, 10, 2);
        lake.prefetch(&GRID_READINGS, "ean", &groups, &["ean", "t"], from)
            .unwrap();
        lake.focus(Some("K1"));
        assert_eq!(eans_of(&lake), ["a", "a"], "K1's rows from the 2nd");
        lake.focus(Some("K2"));
        assert_eq!(eans_of(&lake), ["b", "b"]);
        // Each thread its own focus (the transform computes cables side by side); a thread
        // without one reads the files.
        lake.focus(Some("K1"));
        std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(eans_of(&lake).len(), 9, "no focus on this thread yet");
                lake.focus(Some("K2"));
                assert_eq!(eans_of(&lake), ["b", "b"]);
            });
        });
        assert_eq!(
            eans_of(&lake),
            ["a", "a"],
            "this thread's focus is still K1"
        );
        // K2's rows released on another thread: its scans read the files (every row, each
        // reader filtering on its own keys), K1's held rows stay.
        std::thread::scope(|s| {
            s.spawn(|| {
                lake.focus(Some("K2"));
                lake.release(&GRID_READINGS);
                assert_eq!(eans_of(&lake).len(), 9, "K2 released: the files");
            });
        });
        assert_eq!(eans_of(&lake), ["a", "a"], "K1 still held");
        // A cable of the batch left out of the prefetch reads the files: every row.
        lake.focus(Some("K3"));
        assert_eq!(eans_of(&lake).len(), 9);
        lake.forget_prefetched();
        lake.focus(Some("K1"));
        assert_eq!(eans_of(&lake).len(), 9, "nothing held any more");
    }

    #[test]
    fn rows_by_group_leaves_out_keys_no_group_holds() {
        // A key no group holds (a connection no longer in the registry) reaches none of
        // them, whatever key came before it.
        let df = DataFrame::new_infer_height(vec![
            Column::new("ean".into(), ["a", "a", "x", "b", "x", "a", "b"]),
            Column::new("v".into(), [0i64, 1, 2, 3, 4, 5, 6]),
        ])
        .unwrap();
        let groups = vec![
            ("0".to_string(), vec!["b".to_string()]),
            ("1".to_string(), vec!["a".to_string()]),
        ];
        let (_, rows) = rows_by_group(&df, "ean", &groups).unwrap();
        let places: Vec<Vec<IdxSize>> = rows
            .iter()
            .map(|r| r.into_no_null_iter().collect())
            .collect();
        assert_eq!(places, vec![vec![3, 6], vec![0, 1, 5]]);
    }
}
