//! Atomic, journaled changes to the lake.
//!
//! A change writes its new files under `<lake>/_staging/<txid>/` (outside every table, so a
//! reader globbing a table never sees a partial file), then commits by atomically renaming a
//! journal `<lake>/_journal/<txid>.json` into place that lists every rename and removal. Only
//! then are files moved into the tables. The next command that opens the lake replays any
//! committed journal (each step is idempotent) and deletes staging folders without one: an
//! interrupted change is completed when it was committed, rolled back when it was not.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use arrow::array::RecordBatch;

use super::durable::{can_sync_at_once, sync_dir, sync_file_system};
use super::parquet_io::{encode_sorted, write_sorted};
use super::schema::TableSpec;
use crate::error::{Error, Result};

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    txid: String,
    /// (staged path, final path), both relative to the lake root.
    moves: Vec<(String, String)>,
    /// Files to remove, relative to the lake root.
    removals: Vec<String>,
}

/// A change being prepared. Nothing is visible in the lake until [`Txn::commit`].
pub struct Txn {
    root: PathBuf,
    /// The bucket a lake on object storage commits to first (this is its working copy).
    remote: Option<std::sync::Arc<super::remote::Remote>>,
    txid: String,
    moves: Vec<(String, String)>,
    removals: Vec<String>,
    counter: usize,
    /// Parquet files being encoded and written on a thread of their own (see
    /// [`Txn::write_in_background`]).
    background: Option<Background>,
    /// The error a background thread stopped at: nothing more is written, in the background
    /// or here, and every later write and the commit fail with it (the change will not be
    /// committed; with two cables computed at a time, either may be the one to meet it).
    writing_failed: Option<String>,
    /// Whether this change made `_staging`: its entry in the lake's root is synced before the
    /// journal names files in it.
    new_staging: bool,
    /// The staging folder, opened when the background threads started, and how many files
    /// they wrote: the commit syncs those they did not fsync through it in one call (see
    /// [`sync_file_system`]). `None` where one sync is not as safe (`can_sync_at_once`): then
    /// every file is fsynced as it is written.
    staging_handle: Option<(File, std::sync::Arc<std::sync::atomic::AtomicUsize>)>,
}

/// A staged Parquet file to write: where, for which table, which rows.
type Job = (PathBuf, TableSpec, RecordBatch);

/// The threads that encode and write staged Parquet files while the caller computes the next
/// ones, and their queue. Each file is fsynced, four threads on two cores so that while some
/// wait for the disk the others encode; where one `syncfs` is as safe (`lake::durable`), past
/// the first [`FSYNC_EACH`] files they leave the fsync to the commit, which makes all the
/// rest durable at once (a year's full recompute stages some 30,000 files). The queue is
/// bounded, so the caller never runs far ahead of the disk.
struct Background {
    queue: std::sync::mpsc::SyncSender<Job>,
    threads: Vec<std::thread::JoinHandle<Result<()>>>,
    /// Set by a thread that met an error: the caller stops queueing (and computing) at once.
    failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Files taken so far (the first [`FSYNC_EACH`] are fsynced one by one).
    written: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Files a change fsyncs one by one before it leaves the rest to one sync of the file system
/// at its commit: a nightly run (about 360 files) stays below it (a `syncfs` also waits for
/// whatever else the machine has written), a full recompute far above it. A tenth of it is
/// the folders a commit fsyncs one by one after its renames.
const FSYNC_EACH: usize = 1000;

impl Background {
    /// Files queued: this many batches at most wait in memory (and one more per thread being
    /// written).
    const QUEUE: usize = 32;
    const THREADS: usize = 4;

    fn start(sync_at_commit: bool) -> Result<Self> {
        let (queue, jobs) = std::sync::mpsc::sync_channel::<Job>(Self::QUEUE);
        let jobs = std::sync::Arc::new(std::sync::Mutex::new(jobs));
        let failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut threads = Vec::new();
        for _ in 0..Self::THREADS {
            let (jobs, failing, count) = (jobs.clone(), failed.clone(), written.clone());
            let thread = std::thread::Builder::new()
                .name("lake-writer".into())
                .spawn(move || -> Result<()> {
                    // An error or a panic here stops the caller's next write.
                    let mut guard = FailOnExit {
                        failed: failing,
                        drained: false,
                    };
                    loop {
                        // The lock is held only to take the next job, not to write it.
                        let next = jobs.lock().map_err(|_| poisoned())?.recv();
                        let Ok((path, spec, batch)) = next else {
                            guard.drained = true; // the queue is closed and empty
                            return Ok(());
                        };
                        if guard.failed.load(std::sync::atomic::Ordering::SeqCst) {
                            continue; // the change has failed: nothing more is written
                        }
                        let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if sync_at_commit && n >= FSYNC_EACH {
                            encode_sorted(&path, &spec, &batch)?;
                        } else {
                            write_sorted(&path, &spec, &batch)?;
                        }
                    }
                });
            match thread {
                Ok(t) => threads.push(t),
                Err(e) => {
                    // The threads started so far end with the queue.
                    let started = Background {
                        queue,
                        threads,
                        failed,
                        written,
                    };
                    let _ = started.finish();
                    return Err(Error::Internal(format!(
                        "cannot start a thread writing staged files: {e}"
                    )));
                }
            }
        }
        Ok(Background {
            queue,
            threads,
            failed,
            written,
        })
    }

    fn has_failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits for every queued file: the first error, if any. A thread that stopped at an
    /// error drops its share of the queue; the others drain it.
    fn finish(self) -> Result<()> {
        drop(self.queue);
        let mut first = Ok(());
        for thread in self.threads {
            let done = thread.join().unwrap_or_else(|_| Err(poisoned()));
            if first.is_ok() {
                first = done;
            }
        }
        first
    }
}

/// Marks the writing failed when its thread ends other than at the queue's end (an error or
/// a panic).
struct FailOnExit {
    failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    drained: bool,
}

impl Drop for FailOnExit {
    fn drop(&mut self) {
        if !self.drained {
            self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

fn poisoned() -> Error {
    Error::Internal("a thread writing staged files panicked".into())
}

pub fn new_txid() -> String {
    let now = chrono::Utc::now();
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", now.format("%Y%m%dT%H%M%S%6f"), &rand[..8])
}

impl Txn {
    pub(crate) fn begin(
        root: &Path,
        remote: Option<std::sync::Arc<super::remote::Remote>>,
    ) -> Result<Self> {
        let txid = new_txid();
        let dir = root.join("_staging").join(&txid);
        let new_staging = !root.join("_staging").exists();
        fs::create_dir_all(&dir).map_err(|e| Error::lake(&dir, e))?;
        Ok(Txn {
            new_staging,
            root: root.to_path_buf(),
            remote,
            txid,
            moves: Vec::new(),
            removals: Vec::new(),
            counter: 0,
            background: None,
            writing_failed: None,
            staging_handle: None,
        })
    }

    /// From now on [`Txn::write_parquet`] hands its files to a thread of their own; they are
    /// all written (or the first error returned) before [`Txn::commit`] decides anything.
    pub fn write_in_background(&mut self) -> Result<()> {
        if self.background.is_none() {
            // Opened before the first file is written: a write-back error on any of them is
            // then reported by the sync at commit, whenever the kernel met it.
            let handle = File::open(self.staging_dir()).ok().filter(can_sync_at_once);
            let background = Background::start(handle.is_some())?;
            self.staging_handle = handle.map(|h| (h, background.written.clone()));
            self.background = Some(background);
        }
        Ok(())
    }

    /// Writes `batch` sorted by `spec`'s key to the staged path `staged`, durably: now, or on
    /// a background thread when they run (an error one met is returned by a later call or by
    /// the commit; past the first 1,000 files, durable only once the commit synced them).
    pub fn write_parquet(
        &mut self,
        staged: &Path,
        spec: &TableSpec,
        batch: &RecordBatch,
    ) -> Result<()> {
        self.not_failed()?;
        let Some(background) = &self.background else {
            return write_sorted(staged, spec, batch);
        };
        let queued = !background.has_failed()
            && background
                .queue
                .send((staged.to_path_buf(), *spec, batch.clone()))
                .is_ok();
        if !queued {
            // A thread stopped at an error: that error, and nothing more is written.
            let stopped = self.background.take().expect("running").finish();
            let failed = match &stopped {
                Err(e) => e.to_string(),
                Ok(()) => "the threads writing staged files stopped without an error".into(),
            };
            self.writing_failed = Some(failed.clone());
            return Err(stopped.err().unwrap_or(Error::Internal(failed)));
        }
        Ok(())
    }

    /// The error the background threads stopped at, if they did: in the same words as the
    /// first time (a full disk, with its file).
    fn not_failed(&self) -> Result<()> {
        match &self.writing_failed {
            Some(failed) => Err(Error::Io(std::io::Error::other(failed.clone()))),
            None => Ok(()),
        }
    }

    /// Waits for the background threads, if any.
    fn finish_writing(&mut self) -> Result<()> {
        self.not_failed()?;
        match self.background.take() {
            Some(b) => b.finish(),
            None => Ok(()),
        }
    }

    /// This change's folder under `_staging`.
    fn staging_dir(&self) -> PathBuf {
        self.root.join("_staging").join(&self.txid)
    }

    pub fn txid(&self) -> &str {
        &self.txid
    }

    /// A fresh staging path; the caller writes the file there, then calls [`Txn::publish`].
    pub fn staging_path(&mut self, extension: &str) -> PathBuf {
        self.counter += 1;
        self.staging_dir()
            .join(format!("{:05}.{extension}", self.counter))
    }

    /// Publishes a staged file at `final_rel` (relative to the lake root) on commit.
    pub fn publish(&mut self, staged: &Path, final_rel: String) {
        let staged_rel = staged
            .strip_prefix(&self.root)
            .expect("staged file is inside the lake")
            .to_string_lossy()
            .into_owned();
        self.moves.push((staged_rel, final_rel));
    }

    /// Writes `bytes` durably and publishes them at `final_rel` on commit (replacing a file).
    pub fn put_file(&mut self, final_rel: String, bytes: &[u8]) -> Result<()> {
        let staged = self.staging_path("bin");
        let mut f = File::create(&staged).map_err(|e| Error::lake(&staged, e))?;
        f.write_all(bytes).map_err(|e| Error::lake(&staged, e))?;
        f.sync_all().map_err(|e| Error::lake(&staged, e))?;
        self.publish(&staged, final_rel);
        Ok(())
    }

    /// Removes a file (relative to the lake root) on commit.
    pub fn remove(&mut self, rel: String) {
        self.removals.push(rel);
    }

    pub fn is_empty(&self) -> bool {
        self.moves.is_empty() && self.removals.is_empty()
    }

    /// Makes the change durable and visible. After the journal rename the change is decided;
    /// a crash after that point is completed by [`recover`].
    pub fn commit(mut self) -> Result<()> {
        self.finish_writing()?;
        // The staged files are fsynced as they are written, or (the background threads' past
        // the first FSYNC_EACH, where that is as safe) all at once now; their folder's entries
        // must be durable too before a journal names them.
        let staging = self.staging_dir();
        if let Some((handle, written)) = self.staging_handle.take() {
            if written.load(std::sync::atomic::Ordering::SeqCst) > FSYNC_EACH {
                sync_file_system(&handle).map_err(|e| {
                    Error::lake(
                        &staging,
                        format!("syncing the file system of the staged files failed (the error may be another file's on that file system, written by any program): {e}"),
                    )
                })?;
            }
        }
        if staging.exists() {
            sync_dir(&staging)?;
            sync_dir(&self.root.join("_staging"))?;
            if self.new_staging {
                sync_dir(&self.root)?;
            }
        }
        // A lake on object storage: the bucket's log decides; the working copy follows.
        if let Some(remote) = self.remote.clone().filter(|_| !self.is_empty()) {
            remote.commit(&self.root, &self.txid, &self.moves, &self.removals)?;
            let txid = self.txid.clone();
            let root = self.root.clone();
            return self.commit_local().map_err(|e| {
                // Committed: the bucket has it. The working copy does not: nothing more is
                // committed from it in this process, and the next command pulls it.
                let why = format!(
                    "change {txid} is committed to the bucket; the working copy did not take it ({e}) and is brought up to date by the next command"
                );
                remote.poison(why.clone());
                Error::lake(root, why)
            });
        }
        self.commit_local()
    }

    /// The journaled change of the local folder (a lake on disk, or a bucket's working copy).
    fn commit_local(mut self) -> Result<()> {
        // Readers see the lake before this change or after it: from the journal's rename to its
        // removal no reader reads. If the readers keep the lake too long, nothing is committed.
        let _publishing = super::lock::CommitGuard::exclusive(&self.root)?;
        let journal_dir = self.root.join("_journal");
        if !journal_dir.exists() {
            // A new folder: its entry in the lake's root must survive a crash as well.
            fs::create_dir_all(&journal_dir).map_err(|e| Error::lake(&journal_dir, e))?;
            sync_dir(&self.root)?;
        }
        let journal = Journal {
            txid: self.txid.clone(),
            moves: std::mem::take(&mut self.moves),
            removals: std::mem::take(&mut self.removals),
        };
        let tmp = journal_dir.join(format!("{}.json.tmp", self.txid));
        let done = journal_dir.join(format!("{}.json", self.txid));
        {
            let mut f = File::create(&tmp).map_err(|e| Error::lake(&tmp, e))?;
            f.write_all(&serde_json::to_vec(&journal).expect("journal serialises"))
                .map_err(|e| Error::lake(&tmp, e))?;
            f.sync_all().map_err(|e| Error::lake(&tmp, e))?;
        }
        crash_point("staged");
        fs::rename(&tmp, &done).map_err(|e| Error::lake(&done, e))?;
        sync_dir(&journal_dir)?;
        crash_point("journal");
        apply(&self.root, &journal)?;
        finish(&self.root, &journal.txid)?;
        if let Some(remote) = &self.remote {
            remote.record(&self.root, &journal.moves, &journal.removals)?;
        }
        Ok(())
    }
}

/// For the crash tests only (debug builds; a release build ignores it):
/// `VATEN_INJECT_FAULT=crash:staged` SIGKILLs the process (no destructor runs) with every file staged and the journal not yet in place, `crash:journal`
/// right after the journal's rename, before any file is moved.
pub(crate) fn crash_point(point: &str) {
    if cfg!(debug_assertions)
        && std::env::var("VATEN_INJECT_FAULT")
            .is_ok_and(|f| f.strip_prefix("crash:") == Some(point))
    {
        // SAFETY: sending a signal to this very process; nothing is borrowed.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        // No file is written into the folder after it is removed.
        let _ = self.finish_writing();
        // An abandoned change (error before commit) leaves nothing behind. A committed one
        // has already removed its folder, so this is then a no-op.
        let dir = self.staging_dir();
        if !self
            .root
            .join("_journal")
            .join(format!("{}.json", self.txid))
            .exists()
        {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// A path a journal may name: relative, below the lake, plain segments only (a journal is a
/// file like any other: one that names `../x` or `/etc/x` is refused, not followed).
pub(crate) fn inside(rel: &str) -> bool {
    !rel.is_empty()
        && rel
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\\'))
}

/// Moves a committed change's files into place; the caller holds the exclusive commit lock.
fn apply(root: &Path, journal: &Journal) -> Result<()> {
    let named = journal
        .moves
        .iter()
        .flat_map(|(a, b)| [a, b])
        .chain(&journal.removals);
    if let Some(bad) = named.into_iter().find(|p| !inside(p)) {
        return Err(Error::lake(
            root.join("_journal"),
            format!("journal {} names `{bad}`, outside the lake", journal.txid),
        ));
    }
    // Opened before the first rename: a sync through it reports what failed since.
    let root_handle = File::open(root).ok();
    let mut touched_dirs = std::collections::BTreeSet::new();
    for (staged, target) in &journal.moves {
        let (from, to) = (root.join(staged), root.join(target));
        if from.exists() {
            let parent = to.parent().expect("target has a parent");
            if !parent.exists() {
                fs::create_dir_all(parent).map_err(|e| Error::lake(parent, e))?;
                // A new partition (and perhaps table) folder: its entry in the folder above
                // must survive a crash as well.
                let mut d = parent;
                while let Some(up) = d.parent().filter(|up| up.starts_with(root)) {
                    touched_dirs.insert(up.to_path_buf());
                    if up == root {
                        break;
                    }
                    d = up;
                }
            }
            fs::rename(&from, &to).map_err(|e| Error::lake(&to, e))?;
            touched_dirs.insert(parent.to_path_buf());
        } else if !to.exists() {
            return Err(Error::lake(
                &from,
                format!("journal {} names a staged file that is gone", journal.txid),
            ));
        }
    }
    for rel in &journal.removals {
        let path = root.join(rel);
        match fs::remove_file(&path) {
            Ok(()) => {
                touched_dirs.insert(path.parent().expect("file has a parent").to_path_buf());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::lake(&path, e)),
        }
    }
    // The moves must be durable before the journal goes: a folder's fsync each, or for a
    // change of many folders (a full recompute touches every day of five tables) the file
    // system's at once.
    let at_once = root_handle
        .filter(|_| touched_dirs.len() > FSYNC_EACH / 10)
        .filter(can_sync_at_once);
    if let Some(handle) = at_once {
        sync_file_system(&handle).map_err(|e| {
            Error::lake(
                root,
                format!("syncing the file system of the lake's folders: {e}"),
            )
        })?;
    } else {
        for dir in &touched_dirs {
            sync_dir(dir)?;
        }
    }
    for dir in touched_dirs {
        remove_if_empty(root, &dir);
    }
    Ok(())
}

/// Drops an emptied partition folder (a rewrite can leave one) up to the table folder.
fn remove_if_empty(root: &Path, dir: &Path) {
    let mut d = dir.to_path_buf();
    while d.starts_with(root) && d != root && d.parent() != Some(root) {
        if fs::remove_dir(&d).is_err() {
            break;
        }
        d.pop();
    }
}

fn finish(root: &Path, txid: &str) -> Result<()> {
    let journal = root.join("_journal").join(format!("{txid}.json"));
    let staging = root.join("_staging").join(txid);
    // The journal first: once the files are in place the change is done, whatever happens to
    // the emptied staging folder (a leftover one is cleared by the next writer).
    fs::remove_file(&journal).map_err(|e| Error::lake(&journal, e))?;
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| Error::lake(&staging, e))?;
    }
    Ok(())
}

/// Completes committed changes and rolls back uncommitted ones. Returns what it did, for the
/// `_runs` record; empty when the lake was clean.
pub fn recover(root: &Path) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let journal_dir = root.join("_journal");
    if journal_dir.exists() {
        let _publishing = super::lock::CommitGuard::exclusive(root)?;
        let mut names: Vec<_> = fs::read_dir(&journal_dir)
            .map_err(|e| Error::lake(&journal_dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        names.sort();
        for path in names {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if name.ends_with(".json.tmp") {
                fs::remove_file(&path).map_err(|e| Error::lake(&path, e))?;
            } else if name.ends_with(".json") {
                let bytes = fs::read(&path).map_err(|e| Error::lake(&path, e))?;
                let journal: Journal = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::lake(&path, format!("unreadable journal: {e}")))?;
                apply(root, &journal)?;
                finish(root, &journal.txid)?;
                done.push(format!("completed interrupted change {}", journal.txid));
            }
        }
    }
    let staging = root.join("_staging");
    if staging.exists() {
        for entry in fs::read_dir(&staging).map_err(|e| Error::lake(&staging, e))? {
            let path = entry?.path();
            fs::remove_dir_all(&path).map_err(|e| Error::lake(&path, e))?;
            done.push(format!(
                "rolled back uncommitted change {}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged_change(root: &Path, name: &str, body: &[u8]) -> Txn {
        let mut txn = Txn::begin(root, None).unwrap();
        txn.put_file(format!("t/date=2026-11-25/{name}"), body)
            .unwrap();
        txn
    }

    #[test]
    fn uncommitted_change_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let txn = staged_change(dir.path(), "a.parquet", b"x");
        std::mem::forget(txn); // a crash: no commit, no drop
        assert!(dir
            .path()
            .join("_staging")
            .read_dir()
            .unwrap()
            .next()
            .is_some());
        let done = recover(dir.path()).unwrap();
        assert_eq!(done.len(), 1);
        assert!(done[0].starts_with("rolled back"));
        assert!(dir
            .path()
            .join("_staging")
            .read_dir()
            .unwrap()
            .next()
            .is_none());
        assert!(!dir.path().join("t").exists());
    }

    #[test]
    fn committed_change_is_completed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("t/date=2026-11-25")).unwrap();
        std::fs::write(dir.path().join("t/date=2026-11-25/old.parquet"), b"old").unwrap();
        let mut txn = staged_change(dir.path(), "new.parquet", b"new");
        txn.remove("t/date=2026-11-25/old.parquet".into());
        // Commit by hand up to the journal rename, then "crash" before applying.
        let journal = Journal {
            txid: txn.txid.clone(),
            moves: txn.moves.clone(),
            removals: txn.removals.clone(),
        };
        std::fs::create_dir_all(dir.path().join("_journal")).unwrap();
        std::fs::write(
            dir.path()
                .join("_journal")
                .join(format!("{}.json", txn.txid)),
            serde_json::to_vec(&journal).unwrap(),
        )
        .unwrap();
        std::mem::forget(txn);
        let done = recover(dir.path()).unwrap();
        assert_eq!(done.len(), 1, "{done:?}");
        assert!(done[0].starts_with("completed"));
        assert_eq!(
            std::fs::read(dir.path().join("t/date=2026-11-25/new.parquet")).unwrap(),
            b"new"
        );
        assert!(!dir.path().join("t/date=2026-11-25/old.parquet").exists());
        // Replaying the same journal again is harmless (idempotent steps).
        apply(dir.path(), &journal).unwrap();
        assert!(recover(dir.path()).unwrap().is_empty());
    }

    const KEYS: TableSpec = TableSpec {
        name: "t",
        columns: &[super::super::schema::col(
            "k",
            super::super::schema::ColType::Int64,
            false,
            "",
        )],
        sort_by: &["k"],
        partitioning: super::super::Partitioning::Date,
    };

    fn keys(values: Vec<i64>) -> RecordBatch {
        RecordBatch::try_new(
            KEYS.arrow_schema(),
            vec![std::sync::Arc::new(arrow::array::Int64Array::from(values))],
        )
        .unwrap()
    }

    /// Stages `n` files in the background, each in a day folder of its own, and commits; how
    /// many times the commit synced the file system at once.
    fn background_change(n: i64) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let folder = |i: i64| {
            let day =
                chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Days::new(i as u64);
            format!("t/date={day}/a.parquet")
        };
        let mut txn = Txn::begin(dir.path(), None).unwrap();
        txn.write_in_background().unwrap();
        for i in 1..=n {
            let staged = txn.staging_path("parquet");
            txn.write_parquet(&staged, &KEYS, &keys(vec![3, i, 1]))
                .unwrap();
            txn.publish(&staged, folder(i));
        }
        let before = super::super::durable::tests::SYNCED_AT_ONCE.with(|c| c.get());
        txn.commit().unwrap();
        let synced = super::super::durable::tests::SYNCED_AT_ONCE.with(|c| c.get()) - before;
        for i in 1..=n {
            let path = dir.path().join(folder(i));
            let got = super::super::parquet_io::read_all(&path).unwrap().unwrap();
            let mut want = vec![1, 3, i];
            want.sort();
            let got: Vec<i64> = got
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap()
                .values()
                .to_vec();
            assert_eq!(got, want, "file {i}");
        }
        // Nothing left staged once the change is in place.
        let staged: Vec<_> = std::fs::read_dir(dir.path().join("_staging"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(staged.is_empty(), "{staged:?}");
        synced
    }

    #[test]
    fn files_written_in_the_background_are_in_place_and_sorted_after_commit() {
        // Few files and folders: each fsynced, the file system never synced at once.
        assert_eq!(background_change(40), 0);
    }

    #[test]
    fn a_change_of_more_files_than_are_fsynced_one_by_one_commits_them_all() {
        // Past FSYNC_EACH files (and a tenth as many folders) the commit syncs the file
        // system at once: every file is still in place, whole and sorted.
        let synced = background_change(FSYNC_EACH as i64 + 60);
        // Once for the staged files, once for the folders after the renames, where the
        // kernel and file system allow it (Linux 6 on ext4 here, as on the CI machine).
        let dir = tempfile::tempdir().unwrap();
        let trusted = File::open(dir.path()).unwrap();
        let want = 2 * usize::from(can_sync_at_once(&trusted));
        assert_eq!(synced, want);
        if cfg!(target_os = "linux") {
            // Whether it should, as coreutils see the machine: a file system we know, on a
            // kernel of 5.17 or later.
            let run = |args: &[&str]| {
                let out = std::process::Command::new(args[0])
                    .args(&args[1..])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            };
            let path = dir.path().to_string_lossy().into_owned();
            let kind = run(&["stat", "-f", "-c", "%T", &path]);
            let known = ["ext2/ext3", "xfs", "btrfs", "tmpfs"].contains(&kind.as_str());
            let kernel = run(&["uname", "-r"]);
            let mut numbers = kernel
                .split(|c: char| !c.is_ascii_digit())
                .map(|n| n.parse::<u32>().unwrap_or(0));
            let recent = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0)) >= (5, 17);
            assert_eq!(want == 2, known && recent, "{kind} on {kernel}");
        }
    }

    #[test]
    fn a_background_write_that_fails_fails_the_commit_and_publishes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut txn = Txn::begin(dir.path(), None).unwrap();
        txn.write_in_background().unwrap();
        let good = txn.staging_path("parquet");
        txn.write_parquet(&good, &KEYS, &keys(vec![1])).unwrap();
        txn.publish(&good, "t/date=2026-11-01/a.parquet".into());
        // A folder that does not exist: the write fails on the background thread.
        let bad = dir.path().join("_staging/no-such-change/x.parquet");
        // Queued, not written: the error comes later.
        txn.write_parquet(&bad, &KEYS, &keys(vec![2])).unwrap();
        txn.publish(&bad, "t/date=2026-11-02/b.parquet".into());
        assert!(
            txn.commit().is_err(),
            "the failed write must fail the change"
        );
        assert!(!dir.path().join("t").exists(), "nothing may be published");
        assert!(
            !dir.path().join("_journal").exists()
                || std::fs::read_dir(dir.path().join("_journal"))
                    .unwrap()
                    .next()
                    .is_none()
        );
    }

    #[test]
    fn after_a_failed_background_write_the_next_write_fails_before_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut txn = Txn::begin(dir.path(), None).unwrap();
        txn.write_in_background().unwrap();
        let bad = dir.path().join("_staging/no-such-change/x.parquet");
        txn.write_parquet(&bad, &KEYS, &keys(vec![2])).unwrap();
        // The caller learns of it while it is still computing, not only at the commit.
        let mut failed = None;
        for _ in 0..1000 {
            let staged = txn.staging_path("parquet");
            if let Err(e) = txn.write_parquet(&staged, &KEYS, &keys(vec![1])) {
                failed = Some(e);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let e = failed.expect("a write after the failure reports it");
        assert!(e.to_string().contains("no-such-change"), "{e}");
        // Every later write (the other cable computed at the same time) and the commit fail
        // with the same error, and nothing more is written, not even here.
        let staged = txn.staging_path("parquet");
        let again = txn
            .write_parquet(&staged, &KEYS, &keys(vec![3]))
            .expect_err("still failed");
        assert_eq!(again.to_string(), e.to_string());
        assert!(!staged.exists(), "not written after the failure");
        let commit = txn.commit().expect_err("the change fails");
        assert_eq!(commit.to_string(), e.to_string());
    }

    #[test]
    fn a_dropped_change_waits_for_its_background_writes_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // Written outside the change's own folder, so that only waiting makes them whole.
        let out = dir.path().join("elsewhere");
        std::fs::create_dir_all(&out).unwrap();
        let mut txn = Txn::begin(dir.path(), None).unwrap();
        txn.write_in_background().unwrap();
        for day in 1..=40 {
            let staged = out.join(format!("{day}.parquet"));
            txn.write_parquet(&staged, &KEYS, &keys((0..10_000).collect()))
                .unwrap();
        }
        drop(txn);
        // Every queued file is complete the moment the drop returns.
        for day in 1..=40 {
            let got = super::super::parquet_io::read_all(&out.join(format!("{day}.parquet")))
                .unwrap()
                .unwrap();
            assert_eq!(got.num_rows(), 10_000, "day {day}");
        }
        let left: Vec<_> = std::fs::read_dir(dir.path().join("_staging"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
