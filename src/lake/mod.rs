//! The Parquet lake (`docs/data-dictionary.md`): one folder per table, hive partitions,
//! atomic journaled publication, one writer at a time.
//!
//! Layout under the lake root:
//! - `<table>/[date=YYYY-MM-DD/ | year=YYYY/][<tag>~]part-<txid>-<n>.parquet`: the tables
//!   analysts read (derived tables tag each file with its cable, to replace it alone, or with
//!   [`SHARED_TAG`] for a file of every cable's rows; `consumption_daily`'s also with their
//!   months, `<tag>~YYYY-MM..MM~part-…`, see [`Lake::stage_tagged_months`]);
//! - `_staging/`, `_journal/`: in-flight changes (see [`txn`]), never inside a table;
//! - `_state/<source>.json`: cursors, published in the same change as the rows they cover;
//! - `_lock`: the writer lock; `_commit.lock`: readers (shared) and publication (exclusive).

pub mod convert;
pub(crate) mod durable;
pub mod lock;
pub mod migrate;
pub mod object_log;
pub mod parquet_io;
pub mod read;
pub mod readahead;
pub mod remote;
pub mod runs;
pub mod schema;
pub mod stats;
pub mod txn;

use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
pub use schema::{Partitioning, TableSpec};
pub use txn::Txn;

/// An open lake. Opened for writing it holds the write lock and has recovered any change an
/// earlier command left unfinished.
pub struct Lake {
    root: PathBuf,
    _lock: Option<lock::WriteLock>,
    recovered: Vec<String>,
    /// The run this command records in `_runs`; the rows it stores carry it.
    run_id: String,
    /// For a lake on object storage (`root` is then its working copy).
    remote: Option<std::sync::Arc<remote::Remote>>,
    /// Rows of tables held in memory for a while (see [`Lake::prefetch`]).
    prefetched: read::Prefetched,
}

impl Lake {
    /// Opens the lake for writing: takes the lock (waiting up to `wait`), then completes or
    /// rolls back whatever an interrupted command left.
    pub fn open_for_write(root: &Path, what: &str, wait: Duration) -> Result<Self> {
        Self::open_for_write_at(root, None, what, wait)
    }

    /// Opens the lake the configuration names for writing: on disk, or on object storage
    /// (the writer's lease on the bucket first, then its working copy made equal to it).
    pub fn open_configured(config: &crate::config::Config, what: &str) -> Result<Self> {
        let wait = Duration::from_secs_f64(config.lock_wait_s.max(0.0));
        let remote = config
            .lake_remote
            .as_ref()
            .map(remote::Remote::connect)
            .transpose()?;
        Self::open_for_write_at(&config.lake, remote, what, wait)
    }

    fn open_for_write_at(
        root: &Path,
        remote: Option<remote::Remote>,
        what: &str,
        wait: Duration,
    ) -> Result<Self> {
        // This machine's lock first (a reader pulling into the working copy holds it for a
        // moment), then, on object storage, the lease that keeps other machines out.
        std::fs::create_dir_all(root).map_err(|e| Error::lake(root, e))?;
        let lock = lock::WriteLock::acquire(root, what, wait)?;
        let mut recovered = Vec::new();
        let remote = match remote {
            Some(mut r) => {
                recovered.extend(r.acquire(root, what, wait)?);
                Some(std::sync::Arc::new(r))
            }
            None => None,
        };
        recovered.extend(txn::recover(root)?);
        if let Some(r) = &remote {
            r.pull(root)?;
        }
        for r in &recovered {
            tracing::warn!(lake = %root.display(), "{r}");
        }
        Ok(Lake {
            root: root.to_path_buf(),
            _lock: Some(lock),
            recovered,
            run_id: runs::this_run_id(),
            remote,
            prefetched: Default::default(),
        })
    }

    /// Opens the lake the configuration names for reading. On object storage, the working
    /// copy is first made equal to the bucket (unless a writer on this machine holds it: that
    /// writer keeps it current).
    pub fn open_read_configured(config: &crate::config::Config) -> Result<Self> {
        if let Some(spec) = &config.lake_remote {
            let root = &config.lake;
            std::fs::create_dir_all(root).map_err(|e| Error::lake(root, e))?;
            match lock::WriteLock::acquire(root, "read", Duration::ZERO) {
                Ok(_lock) => {
                    txn::recover(root)?;
                    remote::Remote::connect(spec)?.pull(root)?;
                }
                Err(Error::Locked { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Self::open_read(&config.lake))
    }

    /// Opens the lake for reading only; takes no lock and changes nothing.
    pub fn open_read(root: &Path) -> Self {
        Lake {
            root: root.to_path_buf(),
            _lock: None,
            recovered: Vec::new(),
            run_id: String::new(),
            remote: None,
            prefetched: Default::default(),
        }
    }

    /// The run id this command records in `_runs` (empty for a lake opened for reading).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Holds publication of changes off while a reader lists and reads files (see
    /// [`lock::CommitGuard`]).
    pub fn read_guard(&self) -> Result<Option<lock::CommitGuard>> {
        lock::CommitGuard::shared(&self.root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What opening the lake had to complete or roll back.
    pub fn recovered(&self) -> &[String] {
        &self.recovered
    }

    pub fn begin(&self) -> Result<Txn> {
        assert!(
            self._lock.is_some(),
            "writing needs the lake opened for writing"
        );
        Txn::begin(&self.root, self.remote.clone())
    }

    pub fn table_dir(&self, spec: &TableSpec) -> PathBuf {
        self.root.join(spec.name)
    }

    /// Parquet files of a table, or of one partition of it (`Some("2026-11-25")`), sorted.
    pub fn files(&self, spec: &TableSpec, partition: Option<&str>) -> Result<Vec<PathBuf>> {
        let dir = match partition {
            Some(p) => self
                .table_dir(spec)
                .join(format!("{}={p}", spec.partitioning.key())),
            None => self.table_dir(spec),
        };
        parquet_under(&dir, &|_| false)
    }

    /// Parquet files of a table, sorted; with `from`, a table partitioned by day leaves out its
    /// partitions of days before it without listing them (only folders `date=<day>` right
    /// under the table; a folder whose name is no day is kept).
    pub fn files_from(&self, spec: &TableSpec, from: Option<NaiveDate>) -> Result<Vec<PathBuf>> {
        let key = format!("{}=", spec.partitioning.key());
        let table = self.table_dir(spec);
        let before_from = |dir: &Path| {
            let day = (dir.parent() == Some(table.as_path()))
                .then(|| dir.file_name())
                .flatten()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(key.as_str()))
                .and_then(|d| d.parse::<NaiveDate>().ok());
            spec.partitioning == Partitioning::Date && from.zip(day).is_some_and(|(f, d)| d < f)
        };
        parquet_under(&table, &before_from)
    }

    /// Stages `batch` as a new file of `spec` (in partition `partition` when the table is
    /// partitioned) in `txn`; returns the file's path relative to the lake root.
    pub fn stage_batch(
        &self,
        txn: &mut Txn,
        spec: &TableSpec,
        partition: Option<&str>,
        batch: &RecordBatch,
    ) -> Result<String> {
        self.stage_tagged(txn, spec, partition, None, batch)
    }

    /// As [`Lake::stage_batch`], with the file's name starting with `tag` (see [`file_tag`]) so
    /// that a later change can find and replace exactly the files of that tag (one cable's
    /// share of a derived table).
    pub fn stage_tagged(
        &self,
        txn: &mut Txn,
        spec: &TableSpec,
        partition: Option<&str>,
        tag: Option<&str>,
        batch: &RecordBatch,
    ) -> Result<String> {
        if let Some(tag) = tag {
            rows_of_cable(spec, tag, batch)?;
        }
        let prefix = tag.map(|t| format!("{}~", file_tag(t))).unwrap_or_default();
        self.stage_named(txn, spec, partition, &prefix, batch)
    }

    /// As [`Lake::stage_tagged`], for the rows of the calendar months `first..=last` of `year`
    /// of the tag in a table partitioned by year (`<tag>~YYYY-MM..MM~part-…`, see
    /// [`file_months`]): a later change replaces the files of the months it reaches alone.
    pub fn stage_tagged_months(
        &self,
        txn: &mut Txn,
        spec: &TableSpec,
        (year, first, last): (i32, u32, u32),
        tag: &str,
        batch: &RecordBatch,
    ) -> Result<String> {
        rows_of_cable(spec, tag, batch)?;
        let prefix = format!("{}~{year:04}-{first:02}..{last:02}~", file_tag(tag));
        self.stage_named(txn, spec, Some(&year.to_string()), &prefix, batch)
    }

    /// As [`Lake::stage_tagged`], for a file holding the rows of every cable (see
    /// [`SHARED_TAG`]).
    pub fn stage_shared(
        &self,
        txn: &mut Txn,
        spec: &TableSpec,
        partition: Option<&str>,
        batch: &RecordBatch,
    ) -> Result<String> {
        self.stage_named(txn, spec, partition, &format!("{SHARED_TAG}~"), batch)
    }

    fn stage_named(
        &self,
        txn: &mut Txn,
        spec: &TableSpec,
        partition: Option<&str>,
        prefix: &str,
        batch: &RecordBatch,
    ) -> Result<String> {
        let staged = txn.staging_path("parquet");
        txn.write_parquet(&staged, spec, batch)?;
        let file = format!(
            "{prefix}part-{}-{}",
            txn.txid(),
            staged.file_name().unwrap().to_string_lossy()
        );
        let rel = match (spec.partitioning, partition) {
            (Partitioning::Date | Partitioning::Year, Some(p)) => {
                format!("{}/{}={p}/{file}", spec.name, spec.partitioning.key())
            }
            (Partitioning::None, None) => format!("{}/{file}", spec.name),
            _ => panic!(
                "partition value does not match the partitioning of {}",
                spec.name
            ),
        };
        txn.publish(&staged, rel.clone());
        Ok(rel)
    }

    /// A file's path relative to the lake root, as changes name their files.
    pub fn rel(&self, file: &Path) -> String {
        file.strip_prefix(&self.root)
            .expect("file in lake")
            .to_string_lossy()
            .into_owned()
    }

    /// The files of a table by tag (as [`file_tag`] writes it; untagged files are left out),
    /// each with the partition value it sits in (`None` for an unpartitioned table): one
    /// listing answers for every cable. With `from`, as [`Lake::files_from`].
    pub fn files_by_tag(&self, spec: &TableSpec, from: Option<NaiveDate>) -> Result<TaggedFiles> {
        let key = format!("{}=", spec.partitioning.key());
        let mut out = TaggedFiles::default();
        for f in self.files_from(spec, from)? {
            let Some(tag) = f
                .file_name()
                .and_then(|n| tag_of(&n.to_string_lossy()).map(str::to_string))
            else {
                continue;
            };
            let part = f
                .parent()
                .and_then(|d| d.file_name())
                .and_then(|d| d.to_string_lossy().strip_prefix(&key).map(str::to_string));
            out.0.entry(tag).or_default().push((f, part));
        }
        Ok(out)
    }

    /// Reads a small JSON state document (a source's cursor) from `_state/<name>.json`.
    pub fn read_state<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let path = self.root.join("_state").join(format!("{name}.json"));
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::lake(&path, format!("unreadable state: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::lake(&path, e)),
        }
    }

    /// Stages a new version of a state document in `txn`.
    pub fn stage_state<T: Serialize>(&self, txn: &mut Txn, name: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(value).expect("state serialises");
        txn.put_file(format!("_state/{name}.json"), &bytes)
    }
}

/// The Parquet files below `dir`, sorted, not looking into the folders `prune` names.
fn parquet_under(dir: &Path, prune: &dyn Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = files_under_pruned(dir, prune)?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    out.sort();
    Ok(out)
}

/// Whether some Parquet file lies below `dir` (stops at the first: a year of a table is
/// thousands of files).
fn any_parquet_under(dir: &Path) -> Result<bool> {
    let mut found = false;
    walk_files(dir, &|_| false, &mut |f| {
        found = f.extension().is_some_and(|e| e == "parquet");
        found
    })?;
    Ok(found)
}

/// Every file below `dir`, at any depth (none when `dir` does not exist).
pub fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    files_under_pruned(dir, &|_| false)
}

/// As [`files_under`], not looking into the folders `prune` names.
fn files_under_pruned(dir: &Path, prune: &dyn Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk_files(dir, prune, &mut |f| {
        out.push(f);
        false
    })?;
    Ok(out)
}

/// Hands every file below `dir` to `visit` until it answers `true` (stop), not looking into
/// the folders `prune` names.
fn walk_files(
    dir: &Path,
    prune: &dyn Fn(&Path) -> bool,
    visit: &mut dyn FnMut(PathBuf) -> bool,
) -> Result<()> {
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::lake(&d, e)),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            // The type readdir gave (no stat per file: a year of a table is thousands of
            // files); a symbolic link is followed, as `Path::is_dir` does.
            let is_dir = match entry.file_type() {
                Ok(t) if !t.is_symlink() => t.is_dir(),
                _ => path.is_dir(),
            };
            if is_dir {
                if !prune(&path) {
                    todo.push(path);
                }
            } else if visit(path) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A table's files by tag: see [`Lake::files_by_tag`].
#[derive(Debug, Default)]
pub struct TaggedFiles(std::collections::HashMap<String, Vec<(PathBuf, Option<String>)>>);

impl TaggedFiles {
    /// The files carrying `tag` (a cable), with their partition values.
    pub fn of(&self, tag: &str) -> &[(PathBuf, Option<String>)] {
        self.0.get(&file_tag(tag)).map_or(&[], Vec::as_slice)
    }

    /// The files holding the rows of every cable (see [`SHARED_TAG`]).
    pub fn shared(&self) -> &[(PathBuf, Option<String>)] {
        self.0.get(SHARED_TAG).map_or(&[], Vec::as_slice)
    }
}

/// Checks that every row of `batch` has `tag` as its `cable_id` when the table has that
/// column: a file named with a cable's tag holds that cable's rows only, which `vaten query`
/// relies on to leave other cables' files unread (`query::cable_files`).
fn rows_of_cable(spec: &TableSpec, tag: &str, batch: &RecordBatch) -> Result<()> {
    let Some(column) = batch.column_by_name("cable_id") else {
        return Ok(());
    };
    let foreign = match column.as_any().downcast_ref::<arrow::array::StringArray>() {
        Some(cables) => cables.iter().any(|c| c != Some(tag)),
        None => !column.is_empty(),
    };
    if foreign {
        return Err(Error::Internal(format!(
            "rows of another cable in a {} file of cable {tag} (a lake edited by hand? \
             `vaten transform --full` computes every cable's files again)",
            spec.name
        )));
    }
    Ok(())
}

/// The tag of a file holding the rows of several cables (`cable_balance_15m` is written as
/// one file per day for all of them): no cable's tag is this, as [`file_tag`] writes `+` as
/// `%2B`.
pub const SHARED_TAG: &str = "+all";

/// `tag` made safe for a file name and unambiguous as a prefix: letters, digits, `-` and `_`
/// stay, every other byte becomes `%XX` (so `~`, the separator, never occurs in it).
pub fn file_tag(tag: &str) -> String {
    let mut out = String::with_capacity(tag.len());
    for b in tag.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The year and calendar months (first, last) a file written by [`Lake::stage_tagged_months`]
/// holds, from its name (`<tag>~YYYY-MM..MM~part-…`); `None` for any other name (a file of
/// the whole year, as earlier versions wrote them).
pub fn file_months(file: &Path) -> Option<(i32, u32, u32)> {
    let name = file.file_name()?.to_str()?;
    let (_, rest) = name.split_once('~')?;
    let (months, rest) = rest.split_once('~')?;
    let b = months.as_bytes();
    if !rest.starts_with("part-") || b.len() != 11 || b[4] != b'-' || &b[7..9] != b".." {
        return None;
    }
    let year = months[..4].parse().ok()?;
    let (first, last): (u32, u32) = (months[5..7].parse().ok()?, months[9..].parse().ok()?);
    (1 <= first && first <= last && last <= 12).then_some((year, first, last))
}

/// The tag a file's name starts with (before its first `~`: [`file_tag`] writes `~` as
/// `%7E`), `None` for an untagged file.
pub fn tag_of(name: &str) -> Option<&str> {
    name.split_once('~').map(|(tag, _)| tag)
}

/// What a file's name holds before its `part-…`: its tag and months (`K1~2026-01..10~`), its tag
/// (`K1~`), or nothing. The last `~part-` counts: a tag may hold `part-` itself. A name
/// without `~part-` (not written by vaten) gives what precedes its first `~`.
pub fn name_prefix(file: &Path) -> String {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rfind("~part-") {
        Some(i) => name[..=i].to_string(),
        None => name
            .split_once('~')
            .map(|(t, _)| format!("{t}~"))
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::schema::{CONSUMPTION_DAILY, INTERVALS};
    use super::*;

    /// A file's months are told by its name alone; a tag holding `part-` does not confuse
    /// either reading.
    #[test]
    fn a_files_months_are_told_by_its_name() {
        let p = |n: &str| PathBuf::from(format!("consumption_daily/year=2026/{n}"));
        let months = |n: &str| file_months(&p(n));
        assert_eq!(
            months("K1~2026-01..10~part-7-0.parquet"),
            Some((2026, 1, 10))
        );
        assert_eq!(
            months("part-x~2026-11..11~part-7-0.parquet"),
            Some((2026, 11, 11))
        );
        assert_eq!(months("K1~part-7-0.parquet"), None);
        assert_eq!(months("K1~2026-11~part-7-0.parquet"), None);
        assert_eq!(months("K1~2026-10..09~part-7-0.parquet"), None);
        assert_eq!(months("K1~2026-00..09~part-7-0.parquet"), None);
        assert_eq!(months("K1~2026-01..13~part-7-0.parquet"), None);
        assert_eq!(months("K1~2026-1..12~part-7-0.parquet"), None);
        assert_eq!(months("K1~2026-01..10~x.parquet"), None);
        assert_eq!(months("K1~2026-01..10~"), None);
        assert_eq!(months("part-7-0.parquet"), None);
        let prefix = |n: &str| name_prefix(&p(n));
        assert_eq!(prefix("K1~2026-01..10~part-7-0.parquet"), "K1~2026-01..10~");
        assert_eq!(prefix("part-x~part-7-compacted.parquet"), "part-x~");
        assert_eq!(prefix("K1~part-7-0.parquet"), "K1~");
        assert_eq!(prefix("part-7-0.parquet"), "");
        assert_eq!(prefix("K%7E1~odd.parquet"), "K%7E1~");
        assert_eq!(prefix("odd.parquet"), "");
        assert_eq!(prefix("part-x~odd.parquet"), "part-x~");
    }

    /// With `from`, only the day partitions right under a table and before `from` are left
    /// out; odd folders, files at the top, nested folders and other tables are all listed.
    #[test]
    fn files_by_tag_leaves_out_only_the_days_before_from() {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            "intervals/date=2026-11-18/K1~a.parquet",
            "intervals/date=2026-11-19/K1~b.parquet",
            "intervals/date=2026-11-20/K2~c.parquet",
            "intervals/date=junk/K1~d.parquet",
            "intervals/K1~e.parquet",
            "intervals/date=2026-11-20/date=2026-11-01/K1~f.parquet",
            "intervals/date=2026-11-18/notes.txt",
            "consumption_daily/year=2025/K1~g.parquet",
        ];
        for f in files {
            let path = dir.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        }
        let lake = Lake::open_read(dir.path());
        let names = |spec: &TableSpec, from: Option<&str>, tag: &str| -> Vec<String> {
            let from = from.map(|d| d.parse::<NaiveDate>().unwrap());
            let listed = lake.files_by_tag(spec, from).unwrap();
            listed
                .of(tag)
                .iter()
                .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        let from = Some("2026-11-19");
        assert_eq!(
            names(&INTERVALS, None, "K1"),
            ["e", "a", "b", "f", "d"].map(|n| format!("K1~{n}.parquet"))
        );
        assert_eq!(
            names(&INTERVALS, from, "K1"),
            ["e", "b", "f", "d"].map(|n| format!("K1~{n}.parquet"))
        );
        assert_eq!(names(&INTERVALS, from, "K2"), ["K2~c.parquet"]);
        assert_eq!(
            names(&CONSUMPTION_DAILY, Some("2026-11-19"), "K1"),
            ["K1~g.parquet"]
        );
    }
}
