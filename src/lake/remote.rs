//! A lake on object storage (`lake = "s3://bucket/prefix"`): the bucket holds the lake; a local
//! working copy (`[lake_s3] cache`) is what this machine's commands scan with Polars.
//!
//! The bucket under its prefix has the layout of a lake on disk (`<table>/date=…/part-….parquet`,
//! `_state/…`), so DuckDB, Spark or pandas read it directly, plus three folders of its own:
//! `_log/<version>.json` (the commit log), `_lease/<epoch>.json` (the writer lock) and
//! `_staging/<txid>/…` (uploads of a change not yet in place). See [`super::object_log`] for
//! the protocol and `docs/architecture.md` for the whole design.
//!
//! A change, in order (each step survives a crash):
//! 1. its files are uploaded under `_staging/<txid>/<final path>` (created, never overwriting);
//! 2. it is committed by creating `_log/<base + 1>.json` under the lease: the decision;
//! 3. it is applied: each staged object is copied to its final path, removed files are
//!    deleted, then its staging objects are;
//! 4. the working copy takes the same files.
//!
//! A writer killed before 2 leaves staging objects only: the next writer deletes them. Killed
//! after 2, the next writer applies the last log entry again (every step is idempotent). A
//! reader of the bucket that lists while a change is applied reads the last log entry too and
//! takes its files from staging where they are not copied yet, so it sees the change whole.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use super::object_log::{object_path, Change, CommitError, Lease, LeaseError, ObjectLog};
use crate::config::{RemoteLake, S3Location};
use crate::error::{Error, Result};

/// The bucket's own folders: never copied into the working copy.
const INTERNAL: [&str; 4] = ["_log", "_lease", "_staging", "_probe"];
/// The working copy's own files: never deleted to match the bucket.
const LOCAL_ONLY: [&str; 5] = ["_lock", "_commit.lock", "_staging", "_journal", "_mirror"];
/// The largest object the working copy takes (a lake file is tens of MB).
const MAX_OBJECT_BYTES: u64 = 4 << 30;

/// An object-store lake, connected.
pub struct Remote {
    rt: StoreRuntime,
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    log: Arc<ObjectLog>,
    lease: Option<Arc<tokio::sync::Mutex<Lease>>>,
    /// When this writer took the lease: staging objects older than that belong to writers
    /// that are gone.
    acquired_at: chrono::DateTime<Utc>,
    /// Set by the renewal when another writer took the lease: nothing is committed after.
    lost: Arc<std::sync::atomic::AtomicBool>,
    renewal: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Set when a change is in the bucket's log but not in place (its copies failed) or the
    /// working copy did not take it: this process commits nothing more; the next command
    /// completes it.
    poisoned: Mutex<Option<String>>,
    ttl: chrono::Duration,
    /// The version the next change is committed on top of.
    version: Mutex<u64>,
    /// A version known to exist (the working copy's), so that finding the latest lists only
    /// the log entries after it.
    known: Mutex<u64>,
}

/// What the working copy last took from the bucket: path → (size, e-tag).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    version: u64,
    files: BTreeMap<String, (u64, String)>,
}

/// One file of the bucket's lake: where to read it now, and how to know it again.
#[derive(Debug, Clone)]
struct Source {
    key: ObjectPath,
    size: u64,
    e_tag: String,
}

impl Remote {
    /// Connects to the bucket `lake` names (credentials from the environment).
    pub fn connect(lake: &RemoteLake) -> Result<Self> {
        let lease_ms = (lake.lease_s * 1000.0).round() as i64;
        Self::with_store(
            s3_store(&lake.at)?,
            &lake.at.prefix,
            &lake.at.url,
            chrono::Duration::milliseconds(lease_ms),
        )
    }

    /// Over any store (the tests use the in-memory and local-file ones).
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        url: &str,
        ttl: chrono::Duration,
    ) -> Result<Self> {
        Ok(Remote {
            rt: StoreRuntime::new(url)?,
            log: Arc::new(ObjectLog::new(store.clone(), prefix)),
            store,
            prefix: prefix.to_string(),
            url: url.to_string(),
            lease: None,
            acquired_at: Utc::now(),
            lost: Default::default(),
            renewal: Mutex::new(None),
            poisoned: Mutex::new(None),
            ttl,
            version: Mutex::new(0),
            known: Mutex::new(0),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn block<F>(&self, f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.rt.block(f)
    }

    fn key(&self, rel: &str) -> ObjectPath {
        key(&self.prefix, rel)
    }

    /// The log's latest version.
    fn latest(&self) -> Result<u64> {
        let (log, known) = (self.log.clone(), *self.known.lock().expect("known"));
        let latest = self
            .block(async move { log.latest_after(known).await })
            .map_err(|e| self.commit_err(e))?;
        *self.known.lock().expect("known") = latest;
        Ok(latest)
    }

    /// Takes the working copy's version as known to exist.
    fn know(&self, root: &Path) {
        *self.known.lock().expect("known") = read_manifest(root).version;
    }

    /// Takes the writer lease (waiting up to `wait` for another writer's to end), keeps it
    /// renewed, completes what an interrupted writer left on the bucket and returns what it did.
    pub fn acquire(&mut self, root: &Path, what: &str, wait: Duration) -> Result<Vec<String>> {
        self.know(root);
        let log = self.log.clone();
        let probe_id = super::txn::new_txid();
        self.block(async move { log.probe(&probe_id).await })
            .map_err(|e| self.commit_err(e))?;
        let holder = format!(
            "pid {} on {} running `vaten {what}` since {}",
            std::process::id(),
            hostname(),
            Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        );
        let start = Instant::now();
        let lease = loop {
            self.acquired_at = Utc::now();
            let (store, prefix, holder, ttl) = (
                self.store.clone(),
                self.prefix.clone(),
                holder.clone(),
                self.ttl,
            );
            let got = self.block(async move {
                Lease::acquire(store, &prefix, &holder, Utc::now(), ttl).await
            });
            match got {
                Ok(lease) => break lease,
                Err(LeaseError::Held { holder, until }) => {
                    if start.elapsed() >= wait {
                        // Text from the bucket: printable, one line, bounded.
                        let holder: String = holder
                            .chars()
                            .filter(|c| !c.is_control())
                            .take(200)
                            .collect();
                        return Err(Error::Locked {
                            holder: format!(
                                "{holder}; its lease on {} runs until {}",
                                self.url,
                                until.format("%Y-%m-%dT%H:%M:%SZ")
                            ),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(remote_err(&self.url, e)),
            }
        };
        let lease = Arc::new(tokio::sync::Mutex::new(lease));
        self.lease = Some(lease.clone());
        // Renewed at a third of its length: two renewals may fail before it ends.
        let (ttl, url, lost) = (self.ttl, self.url.clone(), self.lost.clone());
        let period = (ttl / 3).to_std().unwrap_or(Duration::from_secs(1));
        *self.renewal.lock().expect("renewal") = Some(self.rt.spawn_handle(async move {
            loop {
                tokio::time::sleep(period).await;
                let mut held = lease.lock().await;
                if let Err(e) = held.renew(Utc::now(), ttl).await {
                    // A failed renewal leaves the lease to run out: commits check its end.
                    let why = redact(&e.to_string());
                    tracing::warn!(lake = %url, "cannot renew the writer's lease: {why}");
                    if matches!(e, LeaseError::Lost(_)) {
                        lost.store(true, std::sync::atomic::Ordering::SeqCst);
                        return;
                    }
                }
            }
        }));
        self.recover()
    }

    /// The fence: an empty log entry created right after the lease was taken. A writer whose
    /// lease ran out while it was paused (and who may still try to commit on the version it
    /// read) now finds its version taken, so nothing it does reaches the log after this.
    fn fence(&self, mut latest: u64) -> Result<u64> {
        let lease = self.lease.clone().expect("fenced under the lease");
        for _ in 0..10 {
            let (log, lease) = (self.log.clone(), lease.clone());
            let fence = Change {
                txid: format!("fence-{}", super::txn::new_txid()),
                adds: vec![],
                removes: vec![],
                lease_epoch: None,
            };
            let margin = self.ttl / 4;
            let got = self.block(async move {
                let held = lease.lock().await;
                log.commit_under(&held, Utc::now(), margin, latest, &fence)
                    .await
            });
            match got {
                Ok(v) => return Ok(v),
                // A paused writer committed in between: fence after it, if the lease is
                // still ours (else we are the paused one).
                Err(CommitError::Conflict(_)) => {
                    if !self.still_held()? {
                        return Err(remote_err(
                            &self.url,
                            "another writer took the lease while this one started",
                        ));
                    }
                    latest = self.latest()?
                }
                Err(e) => return Err(self.commit_err(e)),
            }
        }
        Err(remote_err(
            &self.url,
            "the log kept growing under a new writer's lease; another process writes without it",
        ))
    }

    /// Whether this writer's lease is still the latest and not about to end.
    fn still_held(&self) -> Result<bool> {
        let lease = self.lease.clone().expect("under the lease");
        let margin = self.ttl / 4;
        self.block(async move { lease.lock().await.still_held(Utc::now(), margin).await })
            .map_err(|e| remote_err(&self.url, e))
    }

    /// Fences the log, applies again what may not be in place, then deletes the staging
    /// objects of changes that never committed.
    ///
    /// What may not be in place: a writer applies every entry before it creates the next of its
    /// own (and commits nothing more once an apply failed), and recovers before its first; so
    /// every entry before the last one that is not a fence is in place, and that one and the
    /// fences after it may not be (a writer may have died applying it, or while recovering).
    fn recover(&mut self) -> Result<Vec<String>> {
        let found = self.latest()?;
        let fence = self.fence(found)?;
        *self.version.lock().expect("version") = fence;
        let mut todo = Vec::new();
        let mut v = fence;
        // Fences are walked over however many there are; the walk ends at the first real entry.
        while v > 1 {
            v -= 1;
            let log = self.log.clone();
            let change = self
                .block(async move { log.change(v).await })
                .map_err(|e| self.commit_err(e))?;
            let last_real = !is_fence(&change);
            todo.push(change);
            if last_real {
                break;
            }
        }
        let mut done = Vec::new();
        for change in todo.iter().rev().filter(|c| !is_fence(c)) {
            if self.apply(change)? {
                done.push(format!(
                    "completed interrupted change {} on {}",
                    change.txid, self.url
                ));
            }
        }
        done.extend(self.clean_staging(self.acquired_at - self.ttl / 4)?);
        Ok(done)
    }

    /// Deletes the staging objects last written before `before` (by writers whose lease ended
    /// before ours began: a killed writer's uploads). Newer ones may be a live writer's, were
    /// this one paused past its lease: checked again right before deleting.
    fn clean_staging(&self, before: chrono::DateTime<Utc>) -> Result<Vec<String>> {
        let (store, dir) = (self.store.clone(), self.key("_staging"));
        let staged: Vec<object_store::ObjectMeta> = self
            .block(async move { store.list(Some(&dir)).try_collect::<Vec<_>>().await })
            .map_err(|e| remote_err(&self.url, e))?;
        let old: Vec<_> = staged
            .into_iter()
            .filter(|m| m.last_modified < before)
            .collect();
        if old.is_empty() {
            return Ok(Vec::new());
        }
        if self.lease.is_some() && !self.still_held()? {
            return Err(remote_err(
                &self.url,
                "another writer took the lease: its uploads are left alone",
            ));
        }
        let txids: BTreeSet<String> = old
            .iter()
            .filter_map(|m| self.rel_of(&m.location))
            .filter_map(|rel| rel.split('/').nth(1).map(str::to_string))
            .collect();
        self.delete_all(old.into_iter().map(|m| m.location).collect())?;
        Ok(txids
            .into_iter()
            .map(|t| format!("rolled back uncommitted change {t} on {}", self.url))
            .collect())
    }

    /// Step 3 of a change; true when something was still to do.
    fn apply(&self, change: &Change) -> Result<bool> {
        if !names_lake_files(change) {
            return Err(remote_err(
                &self.url,
                format!(
                    "change {} names a file outside the lake's tables and state",
                    change.txid
                ),
            ));
        }
        let (store, prefix, change) = (self.store.clone(), self.prefix.clone(), change.clone());
        self.block(async move {
            let mut did = false;
            for rel in &change.adds {
                let staged = key(&prefix, &staged_rel(&change.txid, rel));
                let target = key(&prefix, rel);
                match store.copy(&staged, &target).await {
                    Ok(()) => did = true,
                    // Copied before, and its staging deleted: applied already, if the file
                    // is in place. If it is not, the change lost a file.
                    Err(object_store::Error::NotFound { .. }) => {
                        store.head(&target).await?;
                    }
                    Err(e) => return Err(e),
                }
            }
            for rel in change.removes.iter().filter(|r| !change.adds.contains(r)) {
                match store.delete(&key(&prefix, rel)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            let staged = change.adds.iter().map(String::as_str).chain([MARKER]);
            for rel in staged {
                let staged = key(&prefix, &staged_rel(&change.txid, rel));
                match store.delete(&staged).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(did)
        })
        .map_err(|e| remote_err(&self.url, e))
    }

    fn delete_all(&self, keys: Vec<ObjectPath>) -> Result<()> {
        let store = self.store.clone();
        self.block(async move {
            for k in keys {
                match store.delete(&k).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
        .map_err(|e| remote_err(&self.url, e))
    }

    /// Commits a change of the working copy at `root` to the bucket: `moves` are (staged file
    /// relative to `root`, final path), `removals` final paths. Returns when the bucket holds
    /// it in place; an error before the log entry leaves the bucket as it was.
    pub fn commit(
        &self,
        root: &Path,
        txid: &str,
        moves: &[(String, String)],
        removals: &[String],
    ) -> Result<()> {
        let lease = self
            .lease
            .clone()
            .expect("changes are committed by a lake opened for writing");
        if let Some(why) = self.poisoned.lock().expect("poisoned").clone() {
            return Err(remote_err(&self.url, why));
        }
        if self.lost.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(remote_err(
                &self.url,
                "another writer took the lease: this change was not committed",
            ));
        }
        let log = self.log.clone();
        let marker = staged_rel(txid, MARKER);
        self.block(async move { log.upload(&marker, Vec::new()).await })
            .map_err(|e| self.commit_err(e))?;
        for (staged, target) in moves {
            let path = root.join(staged);
            let bytes = std::fs::read(&path).map_err(|e| Error::lake(&path, e))?;
            let log = self.log.clone();
            let rel = staged_rel(txid, target);
            self.block(async move { log.upload(&rel, bytes).await })
                .map_err(|e| self.commit_err(e))?;
        }
        super::txn::crash_point("remote-staged");
        let change = Change {
            txid: txid.to_string(),
            adds: moves.iter().map(|(_, t)| t.clone()).collect(),
            removes: removals.to_vec(),
            lease_epoch: None,
        };
        let base = *self.version.lock().expect("version");
        let (log, entry) = (self.log.clone(), change.clone());
        // Renewals wait while the lease is checked and the entry created.
        let margin = self.ttl / 4;
        let version = self
            .block(async move {
                let held = lease.lock().await;
                log.commit_under(&held, Utc::now(), margin, base, &entry)
                    .await
            })
            .map_err(|e| {
                // No clear answer (the store failed, or the entry could not be read back):
                // it may have landed. Whether it did is settled by the next writer (it applies
                // or drops it), not by this one.
                if !matches!(e, CommitError::Conflict(_) | CommitError::LeaseEnding(_)) {
                    self.poison(format!(
                        "the commit of change {txid} got no clear answer from the store; the next command settles it"
                    ));
                }
                self.commit_err(e)
            })?;
        *self.version.lock().expect("version") = version;
        super::txn::crash_point("remote-log");
        if let Err(e) = self.apply(&change) {
            self.poison(format!(
                "change {txid} is committed to the bucket but not all in place ({e}); the next command completes it"
            ));
            return Err(e);
        }
        Ok(())
    }

    /// Renews the lease no more (when dropped; the tests also pause a writer so).
    fn stop_renewal(&self) {
        if let Some(renewal) = self.renewal.lock().expect("renewal").take() {
            renewal.abort();
        }
    }

    /// Commits nothing more in this process (see [`Remote::poisoned`]).
    pub fn poison(&self, why: String) {
        tracing::warn!(lake = %self.url, "{why}");
        *self.poisoned.lock().expect("poisoned") = Some(why);
    }

    /// Records in the working copy's manifest the files a change just put in place (their
    /// e-tags), so that the next pull does not download what this machine wrote.
    pub fn record(
        &self,
        root: &Path,
        moves: &[(String, String)],
        removals: &[String],
    ) -> Result<()> {
        let mut manifest = read_manifest(root);
        for rel in removals {
            manifest.files.remove(rel);
        }
        for (_, rel) in moves {
            let (store, key) = (self.store.clone(), self.key(rel));
            match self.block(async move { store.head(&key).await }) {
                Ok(meta) => {
                    manifest
                        .files
                        .insert(rel.clone(), (meta.size, meta.e_tag.unwrap_or_default()));
                }
                // Not known: the next pull downloads it again, no harm.
                Err(_) => {
                    manifest.files.remove(rel);
                }
            }
        }
        manifest.version = *self.version.lock().expect("version");
        write_manifest(root, &manifest)
    }

    fn commit_err(&self, e: CommitError) -> Error {
        remote_err(&self.url, e)
    }

    fn rel_of(&self, key: &ObjectPath) -> Option<String> {
        let k = key.as_ref();
        let rel = if self.prefix.is_empty() {
            k
        } else {
            k.strip_prefix(&self.prefix)?.strip_prefix('/')?
        };
        Some(rel.to_string())
    }

    /// The bucket's lake as of one version: each file with where to read it. Lists once, and
    /// takes the last log entry's files from staging where they are not in place yet.
    /// `None` when the log moved on while listing.
    fn view(&self) -> Result<Option<(u64, BTreeMap<String, Source>)>> {
        let version = self.latest()?;
        // The top folders (tables, `_state`, `_staging`), each listed; not the log or the
        // lease epochs, which only grow.
        let (store, dir) = (self.store.clone(), object_path(&self.prefix));
        let staging = self.key("_staging");
        let listed = self
            .block(async move {
                let dir = (!dir.as_ref().is_empty()).then_some(dir);
                // Staging first: a change whose marker is gone by then is all in place
                // before the tables are listed; one still marked is laid over them.
                let mut all: Vec<_> = store.list(Some(&staging)).try_collect().await?;
                let top = store.list_with_delimiter(dir.as_ref()).await?;
                for folder in top.common_prefixes {
                    let name = folder.filename().unwrap_or_default().to_string();
                    if INTERNAL.contains(&name.as_str()) {
                        continue;
                    }
                    all.extend(store.list(Some(&folder)).try_collect::<Vec<_>>().await?);
                }
                Ok::<_, object_store::Error>(all)
            })
            .map_err(|e| remote_err(&self.url, e))?;
        // A writer that committed the next version while we listed may have been copying it
        // into place: that listing mixes two versions; the caller lists again.
        if self.latest()? != version {
            return Ok(None);
        }
        let mut files = BTreeMap::new();
        let mut staged = BTreeMap::new();
        for meta in listed {
            let Some(rel) = self.rel_of(&meta.location) else {
                continue;
            };
            let source = Source {
                key: meta.location.clone(),
                size: meta.size,
                e_tag: meta.e_tag.clone().unwrap_or_default(),
            };
            let top = rel.split('/').next().unwrap_or_default();
            if !super::txn::inside(&rel) {
                continue;
            } else if top == "_staging" {
                staged.insert(rel, source);
            } else if !INTERNAL.contains(&top) && !LOCAL_ONLY.contains(&top) {
                files.insert(rel, source);
            }
        }
        // Changes still staged may be committed but not all in place: the log entries that
        // name them (recent ones: walked back a bounded way) are laid over the listing, in
        // order. Staging without an entry is an uncommitted change: not part of the lake.
        let txids: BTreeSet<&str> = staged.keys().filter_map(|r| r.split('/').nth(1)).collect();
        let mut overlays = Vec::new();
        // Staged changes are recent: the walk looks at 32 real entries at most (fences, which
        // stage nothing, do not count), or stops once every staged change is found.
        let (mut v, mut real) = (version, 0);
        while v > 0 && real < 32 && overlays.len() < txids.len() {
            let log = self.log.clone();
            let change = self
                .block(async move { log.change(v).await })
                .map_err(|e| self.commit_err(e))?;
            if !is_fence(&change) {
                real += 1;
            }
            if txids.contains(change.txid.as_str()) {
                overlays.push(change);
            }
            v -= 1;
        }
        for change in overlays.iter().rev().filter(|c| names_lake_files(c)) {
            for r in change.removes.iter().filter(|r| !change.adds.contains(r)) {
                files.remove(r);
            }
            for a in &change.adds {
                if let Some(s) = staged.get(&staged_rel(&change.txid, a)) {
                    files.insert(a.clone(), s.clone());
                }
            }
        }
        Ok(Some((version, files)))
    }

    /// Makes the working copy at `root` equal the bucket: downloads what is new or changed,
    /// deletes what the bucket no longer has. The caller holds the working copy's write lock.
    pub fn pull(&self, root: &Path) -> Result<u64> {
        self.know(root);
        // A file deleted by a writer between our listing and our download: list again.
        let mut last_err = None;
        for _ in 0..5 {
            if last_err.is_some() {
                std::thread::sleep(Duration::from_millis(200));
            }
            let Some((version, files)) = self.view()? else {
                last_err = Some("a writer committed while the bucket was listed".into());
                continue;
            };
            match self.pull_view(root, version, &files) {
                Ok(()) => return Ok(version),
                Err(PullError::Gone(why)) => last_err = Some(why),
                Err(PullError::Fatal(e)) => return Err(e),
            }
        }
        Err(remote_err(
            &self.url,
            format!(
                "the bucket kept changing while it was read: {}",
                last_err.unwrap_or_default()
            ),
        ))
    }

    fn pull_view(
        &self,
        root: &Path,
        version: u64,
        files: &BTreeMap<String, Source>,
    ) -> std::result::Result<(), PullError> {
        let mut manifest = read_manifest(root);
        let tmp = root.join("_mirror").join("tmp");
        // Downloads an earlier pull left half done (it was killed): the caller holds the lock.
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| fatal(Error::lake(&tmp, e)))?;
        // Readers of the working copy see it before the pull or after it.
        let _publishing = super::lock::CommitGuard::exclusive(root).map_err(fatal)?;
        for (rel, source) in files {
            let local = root.join(rel);
            let known = manifest.files.get(rel).is_some_and(|(size, tag)| {
                *size == source.size && !tag.is_empty() && *tag == source.e_tag
            });
            if known && local.metadata().is_ok_and(|m| m.len() == source.size) {
                continue;
            }
            if source.size > MAX_OBJECT_BYTES {
                return Err(fatal(remote_err(
                    &self.url,
                    format!(
                        "{rel} is {} bytes, larger than a lake file can be",
                        source.size
                    ),
                )));
            }
            // Only the object listed: one a later change replaced in the meantime is refused.
            // Streamed to disk, never more than the listed size.
            let (store, key) = (self.store.clone(), source.key.clone());
            let opts = object_store::GetOptions {
                if_match: (!source.e_tag.is_empty()).then(|| source.e_tag.clone()),
                ..Default::default()
            };
            let part = tmp.join(super::txn::new_txid());
            let (into, size) = (part.clone(), source.size);
            let got = self.block(async move {
                use std::io::Write;
                let mut stream = store.get_opts(&key, opts).await?.into_stream();
                let mut file =
                    std::fs::File::create(&into).map_err(|e| object_store::Error::Generic {
                        store: "working copy",
                        source: Box::new(e),
                    })?;
                let mut written = 0u64;
                while let Some(chunk) = stream.try_next().await? {
                    written += chunk.len() as u64;
                    if written > size {
                        return Ok(written);
                    }
                    file.write_all(&chunk)
                        .map_err(|e| object_store::Error::Generic {
                            store: "working copy",
                            source: Box::new(e),
                        })?;
                }
                Ok(written)
            });
            let written = match got {
                Ok(n) => n,
                Err(
                    object_store::Error::NotFound { .. } | object_store::Error::Precondition { .. },
                ) => {
                    let _ = std::fs::remove_file(&part);
                    let _ = write_manifest(root, &manifest);
                    return Err(PullError::Gone(format!("{rel} changed while it was read")));
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&part);
                    return Err(fatal(remote_err(&self.url, e)));
                }
            };
            if written != source.size {
                let _ = std::fs::remove_file(&part);
                let _ = write_manifest(root, &manifest);
                return Err(PullError::Gone(format!("{rel} changed size")));
            }
            let parent = local.parent().expect("a lake file is in a folder");
            std::fs::create_dir_all(parent).map_err(|e| fatal(Error::lake(parent, e)))?;
            std::fs::rename(&part, &local).map_err(|e| fatal(Error::lake(&local, e)))?;
            manifest
                .files
                .insert(rel.clone(), (source.size, source.e_tag.clone()));
        }
        // What the bucket no longer has leaves the working copy too.
        let mut local = Vec::new();
        list_local(root, &mut local).map_err(fatal)?;
        for rel in local.into_iter().filter(|r| !files.contains_key(r)) {
            let path = root.join(&rel);
            std::fs::remove_file(&path).map_err(|e| fatal(Error::lake(&path, e)))?;
            manifest.files.remove(&rel);
        }
        manifest.files.retain(|rel, _| files.contains_key(rel));
        manifest.version = version;
        write_manifest(root, &manifest).map_err(fatal)
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Ends the lease now, so that the next writer need not wait for it to expire.
        self.stop_renewal();
        if let Some(lease) = self.lease.take() {
            let (tx, rx) = std::sync::mpsc::channel();
            self.rt.spawn(async move {
                let mut held = lease.lock().await;
                let _ = held.renew(Utc::now(), chrono::Duration::zero()).await;
                let _ = tx.send(());
            });
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
    }
}

/// Runs a store's requests on threads of its own, so that any caller can wait for them (also
/// one inside another runtime, such as the scheduler's).
pub(crate) struct StoreRuntime(Option<tokio::runtime::Runtime>);

impl StoreRuntime {
    pub(crate) fn new(url: &str) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vaten-store")
            .enable_all()
            .build()
            .map_err(|e| remote_err(url, e))?;
        Ok(StoreRuntime(Some(rt)))
    }

    /// Runs `f` and waits for it, from any thread.
    pub(crate) fn block<F>(&self, f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        self.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv()
            .expect("a request to the object store panicked (see the message above)")
    }

    pub(crate) fn spawn<F>(&self, f: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn_handle(f);
    }

    pub(crate) fn spawn_handle<F>(&self, f: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.0.as_ref().expect("until dropped").spawn(f)
    }
}

impl Drop for StoreRuntime {
    fn drop(&mut self) {
        // Not dropped in place: a caller inside another runtime may not block on it.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The S3 store `at` names: credentials from the usual AWS environment variables; the endpoint
/// (which receives the signed requests) `https://`, or `http://` to this machine only.
pub fn s3_store(at: &S3Location) -> Result<Arc<dyn ObjectStore>> {
    use object_store::aws::AmazonS3Builder;
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(&at.bucket);
    let endpoint = at.effective_endpoint();
    // Plain http only to this machine, whatever `AWS_ALLOW_HTTP` says.
    builder = builder.with_allow_http(false);
    if let Some(endpoint) = &endpoint {
        let url = reqwest::Url::parse(endpoint)
            .map_err(|_| remote_err(&at.url, format!("endpoint `{endpoint}` is not a URL")))?;
        let loopback = url.host_str().is_some_and(crate::config::is_loopback_host);
        match url.scheme() {
            "https" => {}
            "http" if loopback => builder = builder.with_allow_http(true),
            _ => {
                return Err(remote_err(
                    &at.url,
                    format!("endpoint `{endpoint}` must be https:// (http only to this machine)"),
                ))
            }
        }
        // Both keys: the builder prefers the S3-specific one (from `AWS_ENDPOINT_URL_S3`).
        builder = builder.with_endpoint(endpoint).with_config(
            object_store::aws::AmazonS3ConfigKey::S3Endpoint,
            endpoint.clone(),
        );
    }
    if let Some(region) = &at.region {
        builder = builder.with_region(region);
    }
    let store = builder
        .build()
        .map_err(|e| remote_err(&at.url, e.to_string()))?;
    Ok(Arc::new(store))
}

/// The working copy's manifest; an unreadable one is empty (everything is downloaded again).
fn read_manifest(root: &Path) -> Manifest {
    std::fs::read(root.join("_mirror").join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write_manifest(root: &Path, manifest: &Manifest) -> Result<()> {
    let dir = root.join("_mirror").join("tmp");
    std::fs::create_dir_all(&dir).map_err(|e| Error::lake(&dir, e))?;
    let part = dir.join("manifest.json");
    let done = root.join("_mirror").join("manifest.json");
    std::fs::write(
        &part,
        serde_json::to_vec(manifest).expect("manifest serialises"),
    )
    .map_err(|e| Error::lake(&part, e))?;
    std::fs::rename(&part, &done).map_err(|e| Error::lake(&done, e))
}

enum PullError {
    /// The bucket changed under the pull: try again.
    Gone(String),
    Fatal(Error),
}

fn fatal(e: Error) -> PullError {
    PullError::Fatal(e)
}

fn key(prefix: &str, rel: &str) -> ObjectPath {
    if prefix.is_empty() {
        object_path(rel)
    } else {
        object_path(&format!("{prefix}/{rel}"))
    }
}

/// The empty object that marks a change's staging as in flight: uploaded before its files,
/// deleted after every step of its apply (so a change that only removes files is seen too).
const MARKER: &str = "_change";

/// Whether every path a change names is a file of the lake's tables or state: plain path
/// segments, not the scheme's own folders nor a working copy's own names. A log entry naming
/// `_log/…` or `_journal/…` is not followed.
fn names_lake_files(change: &Change) -> bool {
    change.adds.iter().chain(&change.removes).all(|rel| {
        let top = rel.split('/').next().unwrap_or_default();
        super::txn::inside(rel) && !INTERNAL.contains(&top) && !LOCAL_ONLY.contains(&top)
    })
}

fn is_fence(change: &Change) -> bool {
    change.txid.starts_with("fence-") && change.adds.is_empty() && change.removes.is_empty()
}

fn staged_rel(txid: &str, rel: &str) -> String {
    format!("_staging/{txid}/{rel}")
}

/// Files of the working copy that mirror the bucket (everything but its own), relative to it.
fn list_local(root: &Path, out: &mut Vec<String>) -> Result<()> {
    for path in super::files_under(root)? {
        let rel = path
            .strip_prefix(root)
            .expect("under the root")
            .to_string_lossy()
            .into_owned();
        let top = rel.split('/').next().unwrap_or_default();
        if !LOCAL_ONLY.contains(&top) {
            out.push(rel);
        }
    }
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this machine".into())
}

/// An error of the store, for a person: one line, without a server's response body (an S3
/// error body can quote the signed request) and without any credential the environment holds.
pub(crate) fn remote_err(url: &str, e: impl std::fmt::Display) -> Error {
    Error::lake(PathBuf::from(url), redact(&e.to_string()))
}

fn redact(text: &str) -> String {
    let secrets: Vec<String> = [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ACCESS_KEY_ID",
    ]
    .iter()
    .filter_map(|v| std::env::var(v).ok())
    .collect();
    redact_with(text, &secrets)
}

fn redact_with(text: &str, secrets: &[String]) -> String {
    let mut out: String = text
        .split('<')
        .next()
        .unwrap_or_default()
        .replace(['\n', '\r'], " ");
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret.as_str(), "***");
    }
    if out.len() > 400 {
        let cut = (0..=400)
            .rev()
            .find(|i| out.is_char_boundary(*i))
            .unwrap_or(0);
        out.truncate(cut);
        out.push('…');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::Lake;
    use object_store::memory::InMemory;

    fn remote(store: &Arc<dyn ObjectStore>, ttl_ms: i64) -> Remote {
        Remote::with_store(
            store.clone(),
            "lake",
            "mem://lake",
            chrono::Duration::milliseconds(ttl_ms),
        )
        .unwrap()
    }

    fn writer(store: &Arc<dyn ObjectStore>, root: &Path, ttl_ms: i64) -> Lake {
        Lake::open_for_write_at(root, Some(remote(store, ttl_ms)), "test", Duration::ZERO).unwrap()
    }

    fn keys(rt: &tokio::runtime::Runtime, store: &Arc<dyn ObjectStore>) -> Vec<String> {
        let listed: Vec<_> = rt
            .block_on(
                store
                    .list(Some(&ObjectPath::from("lake")))
                    .try_collect::<Vec<_>>(),
            )
            .unwrap();
        let mut out: Vec<String> = listed.iter().map(|m| m.location.to_string()).collect();
        out.sort();
        out
    }

    fn local(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        list_local(root, &mut out).unwrap();
        out.sort();
        out
    }

    const A: &str = "tbl/date=2026-01-01/K1~a.parquet";
    const B: &str = "tbl/date=2026-01-01/b.parquet";

    #[test]
    fn a_reader_sees_a_logged_change_whole_and_the_next_writer_puts_it_in_place() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let dir = tempfile::tempdir().unwrap();
        let lake = writer(&store, &dir.path().join("a"), 30_000);
        let mut txn = lake.begin().unwrap();
        txn.put_file(A.into(), b"AAAA").unwrap();
        txn.commit().unwrap();
        drop(lake);
        // As a writer killed between its log entry and its copies leaves it: `b` staged and
        // logged (replacing `a`), and an upload `c` of a change that never committed.
        let log = ObjectLog::new(store.clone(), "lake");
        rt.block_on(log.upload(&staged_rel("t2", MARKER), Vec::new()))
            .unwrap();
        rt.block_on(log.upload(&staged_rel("t2", B), b"BBBBBB".to_vec()))
            .unwrap();
        rt.block_on(log.upload(&staged_rel("t3", "tbl/c.parquet"), b"CC".to_vec()))
            .unwrap();
        let latest = rt.block_on(log.latest()).unwrap();
        let t2 = Change {
            txid: "t2".into(),
            adds: vec![B.into()],
            removes: vec![A.into()],
            lease_epoch: None,
        };
        rt.block_on(log.commit(latest, &t2)).unwrap();
        assert!(
            keys(&rt, &store).contains(&format!("lake/{A}")),
            "not applied yet"
        );

        // Another machine's reader: `b` from staging, not `a`, not `c`.
        let reader = dir.path().join("reader");
        std::fs::create_dir_all(&reader).unwrap();
        remote(&store, 30_000).pull(&reader).unwrap();
        assert_eq!(local(&reader), vec![B.to_string()]);
        assert_eq!(std::fs::read(reader.join(B)).unwrap(), b"BBBBBB");

        // A writer that took the lease and fenced the log, then died before applying t2: the
        // entry before the fences is still what may not be in place.
        let fence = Change {
            txid: "fence-dead".into(),
            adds: vec![],
            removes: vec![],
            lease_epoch: None,
        };
        let latest = rt.block_on(log.latest()).unwrap();
        rt.block_on(log.commit(latest, &fence)).unwrap();
        // The next writer completes t2 and drops t3's upload (written before its lease began,
        // less a quarter of the lease); its working copy follows.
        std::thread::sleep(Duration::from_millis(150));
        let lake = writer(&store, &dir.path().join("a"), 400);
        let said = lake.recovered().join("; ");
        assert!(said.contains("completed interrupted change t2"), "{said}");
        assert!(said.contains("rolled back uncommitted change t3"), "{said}");
        assert_eq!(local(&dir.path().join("a")), vec![B.to_string()]);
        let data: Vec<String> = keys(&rt, &store)
            .into_iter()
            .filter(|k| !k.starts_with("lake/_log/") && !k.starts_with("lake/_lease/"))
            .collect();
        assert_eq!(data, vec![format!("lake/{B}")]);
    }

    #[test]
    fn a_writer_paused_past_its_lease_commits_nothing_after_the_next_one_took_it() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let dir = tempfile::tempdir().unwrap();
        let paused = writer(&store, &dir.path().join("a"), 1_000);
        let log = ObjectLog::new(store.clone(), "lake");
        let base = rt.block_on(log.latest()).unwrap();
        paused.remote.as_ref().unwrap().stop_renewal();
        std::thread::sleep(Duration::from_millis(1_200));
        let next = writer(&store, &dir.path().join("b"), 30_000);
        // Its own commit refuses (its lease has run out), and even a commit on the version
        // it read, past every clock check, finds that version taken by the fence.
        let mut txn = paused.begin().unwrap();
        txn.put_file(A.into(), b"late").unwrap();
        assert!(txn.commit().is_err());
        let late = Change {
            txid: "late".into(),
            adds: vec![A.into()],
            removes: vec![],
            lease_epoch: None,
        };
        assert!(matches!(
            rt.block_on(log.commit(base, &late)),
            Err(CommitError::Conflict(_))
        ));
        // The new writer commits; the paused one's upload is gone with the next open.
        let mut txn = next.begin().unwrap();
        txn.put_file(B.into(), b"next").unwrap();
        txn.commit().unwrap();
        drop(next);
        drop(paused);
        // A writer whose lease begins well after the paused one's uploads cleans them.
        std::thread::sleep(Duration::from_millis(150));
        let lake = writer(&store, &dir.path().join("b"), 400);
        assert_eq!(local(lake.root()), vec![B.to_string()]);
        assert!(!keys(&rt, &store).iter().any(|k| k.contains("_staging/")));
    }

    #[test]
    fn what_a_bucket_holds_under_the_working_copys_own_names_never_reaches_it() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let journal =
            br#"{"txid":"evil","moves":[["../../outside","tbl/x"]],"removals":["../../victim"]}"#;
        for (key, bytes) in [
            ("lake/_journal/evil.json", &journal[..]),
            ("lake/_lock", b"x"),
            ("lake/_mirror/manifest.json", b"{}"),
            ("lake/tbl/ok.parquet", b"ok"),
        ] {
            rt.block_on(store.put(
                &object_path(key),
                object_store::PutPayload::from(bytes.to_vec()),
            ))
            .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("copy");
        std::fs::create_dir_all(&root).unwrap();
        remote(&store, 30_000).pull(&root).unwrap();
        assert_eq!(local(&root), vec!["tbl/ok.parquet".to_string()]);
        assert!(!root.join("_journal").exists());
        // And a journal that names a path outside the lake is refused, not followed.
        std::fs::create_dir_all(root.join("_journal")).unwrap();
        std::fs::write(root.join("_journal/evil.json"), journal).unwrap();
        let err = super::super::txn::recover(&root).unwrap_err().to_string();
        assert!(err.contains("outside the lake"), "{err}");
    }

    #[test]
    fn store_errors_lose_response_bodies_and_credentials() {
        let secret = "wJalrXUtnFEMI-K7MDENG-vaten-test-secret".to_string();
        let text = format!(
            "Error performing PUT (status 403): <?xml version=\"1.0\"?><Error><CanonicalRequest>x-amz-security-token:{secret}</CanonicalRequest></Error>"
        );
        let secrets = [secret.clone()];
        assert_eq!(
            redact_with(&text, &secrets),
            "Error performing PUT (status 403):"
        );
        assert_eq!(
            redact_with(&format!("token {secret} in a line"), &secrets),
            "token *** in a line"
        );
    }

    #[test]
    fn a_change_that_only_removes_is_seen_whole_while_it_is_applied() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let dir = tempfile::tempdir().unwrap();
        let lake = writer(&store, &dir.path().join("a"), 30_000);
        let mut txn = lake.begin().unwrap();
        txn.put_file(A.into(), b"AAAA").unwrap();
        txn.put_file(B.into(), b"BBBB").unwrap();
        txn.commit().unwrap();
        drop(lake);
        // Logged, its marker staged, not applied: a retention that removes `a`.
        let log = ObjectLog::new(store.clone(), "lake");
        rt.block_on(log.upload(&staged_rel("t9", MARKER), Vec::new()))
            .unwrap();
        let latest = rt.block_on(log.latest()).unwrap();
        let t9 = Change {
            txid: "t9".into(),
            adds: vec![],
            removes: vec![A.into()],
            lease_epoch: None,
        };
        rt.block_on(log.commit(latest, &t9)).unwrap();
        let reader = dir.path().join("reader");
        std::fs::create_dir_all(&reader).unwrap();
        remote(&store, 30_000).pull(&reader).unwrap();
        assert_eq!(local(&reader), vec![B.to_string()]);
    }

    #[test]
    fn only_staging_older_than_the_lease_is_cleaned() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let log = ObjectLog::new(store.clone(), "lake");
        rt.block_on(log.upload(&staged_rel("old", "tbl/x.parquet"), b"x".to_vec()))
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let between = Utc::now();
        std::thread::sleep(Duration::from_millis(20));
        // A live writer's upload, made after this one's lease began (were it paused).
        rt.block_on(log.upload(&staged_rel("live", "tbl/y.parquet"), b"y".to_vec()))
            .unwrap();
        let said = remote(&store, 30_000).clean_staging(between).unwrap();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("old"), "{said:?}");
        let left: Vec<String> = keys(&rt, &store);
        assert_eq!(left, vec!["lake/_staging/live/tbl/y.parquet".to_string()]);
    }
}
