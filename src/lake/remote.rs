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
use crate::config::RemoteLake;
use crate::error::{Error, Result};

/// The bucket's own folders: never copied into the working copy.
const INTERNAL: [&str; 4] = ["_log", "_lease", "_staging", "_probe"];
/// The working copy's own files: never deleted to match the bucket.
const LOCAL_ONLY: [&str; 5] = ["_lock", "_commit.lock", "_staging", "_journal", "_mirror"];
/// The largest object the working copy takes (a lake file is tens of MB).
const MAX_OBJECT_BYTES: u64 = 4 << 30;

/// An object-store lake, connected.
pub struct Remote {
    /// Runs the store's requests; its own threads, so that a caller inside another runtime
    /// (the scheduler) can block on it.
    rt: Option<tokio::runtime::Runtime>,
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    log: Arc<ObjectLog>,
    lease: Option<Arc<tokio::sync::Mutex<Lease>>>,
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
        use object_store::aws::AmazonS3Builder;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&lake.bucket);
        // The endpoint gets the credentials' signatures: https, or http to this machine only.
        let endpoint = lake.endpoint.clone().or_else(|| {
            ["AWS_ENDPOINT", "AWS_ENDPOINT_URL"]
                .iter()
                .find_map(|v| std::env::var(v).ok())
        });
        if let Some(endpoint) = &endpoint {
            let url = reqwest::Url::parse(endpoint).map_err(|_| {
                remote_err(&lake.url, format!("endpoint `{endpoint}` is not a URL"))
            })?;
            let loopback = url.host_str().is_some_and(crate::config::is_loopback_host);
            match url.scheme() {
                "https" => {}
                "http" if loopback => builder = builder.with_allow_http(true),
                _ => {
                    return Err(remote_err(
                        &lake.url,
                        format!(
                            "endpoint `{endpoint}` must be https:// (http only to this machine)"
                        ),
                    ))
                }
            }
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &lake.region {
            builder = builder.with_region(region);
        }
        let store = builder
            .build()
            .map_err(|e| remote_err(&lake.url, e.to_string()))?;
        let lease_ms = (lake.lease_s * 1000.0).round() as i64;
        Self::with_store(
            Arc::new(store),
            &lake.prefix,
            &lake.url,
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
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vaten-lake-store")
            .enable_all()
            .build()
            .map_err(|e| remote_err(url, e))?;
        Ok(Remote {
            rt: Some(rt),
            log: Arc::new(ObjectLog::new(store.clone(), prefix)),
            store,
            prefix: prefix.to_string(),
            url: url.to_string(),
            lease: None,
            ttl,
            version: Mutex::new(0),
            known: Mutex::new(0),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `f` on the store's runtime and waits for it, from any thread.
    fn block<F>(&self, f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        self.rt
            .as_ref()
            .expect("runtime until drop")
            .spawn(async move {
                let _ = tx.send(f.await);
            });
        rx.recv().expect("the store's runtime runs until drop")
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
        let (ttl, url) = (self.ttl, self.url.clone());
        let period = (ttl / 3).to_std().unwrap_or(Duration::from_secs(1));
        self.rt.as_ref().expect("runtime").spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let mut held = lease.lock().await;
                if let Err(e) = held.renew(Utc::now(), ttl).await {
                    // Commits check the lease's end themselves: this one will refuse.
                    tracing::warn!(lake = %url, "cannot renew the writer's lease: {e}");
                    if matches!(e, LeaseError::Lost(_)) {
                        return;
                    }
                }
            }
        });
        self.recover()
    }

    /// Applies the last log entry again (a writer may have died while applying it) and
    /// deletes staging objects of changes that never committed.
    fn recover(&mut self) -> Result<Vec<String>> {
        let latest = self.latest()?;
        *self.version.lock().expect("version") = latest;
        let mut done = Vec::new();
        if latest > 0 {
            let log = self.log.clone();
            let change = self
                .block(async move { log.change(latest).await })
                .map_err(|e| self.commit_err(e))?;
            if self.apply(&change)? {
                done.push(format!(
                    "completed interrupted change {} on {}",
                    change.txid, self.url
                ));
            }
        }
        let (store, dir) = (self.store.clone(), self.key("_staging"));
        let staged: Vec<ObjectPath> = self
            .block(async move {
                store
                    .list(Some(&dir))
                    .map_ok(|m| m.location)
                    .try_collect::<Vec<_>>()
                    .await
            })
            .map_err(|e| remote_err(&self.url, e))?;
        let txids: BTreeSet<String> = staged
            .iter()
            .filter_map(|p| self.rel_of(p))
            .filter_map(|rel| rel.split('/').nth(1).map(str::to_string))
            .collect();
        self.delete_all(staged)?;
        done.extend(
            txids
                .into_iter()
                .map(|t| format!("rolled back uncommitted change {t} on {}", self.url)),
        );
        Ok(done)
    }

    /// Step 3 of a change; true when something was still to do.
    fn apply(&self, change: &Change) -> Result<bool> {
        let (store, prefix, change) = (self.store.clone(), self.prefix.clone(), change.clone());
        self.block(async move {
            let mut did = false;
            for rel in &change.adds {
                let staged = key(&prefix, &staged_rel(&change.txid, rel));
                match store.copy(&staged, &key(&prefix, rel)).await {
                    Ok(()) => did = true,
                    // Copied before, and its staging deleted: applied already.
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            for rel in change.removes.iter().filter(|r| !change.adds.contains(r)) {
                match store.delete(&key(&prefix, rel)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            for rel in &change.adds {
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
            .map_err(|e| self.commit_err(e))?;
        *self.version.lock().expect("version") = version;
        super::txn::crash_point("remote-log");
        self.apply(&change)?;
        Ok(())
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
        let last = if version > 0 {
            let log = self.log.clone();
            Some(
                self.block(async move { log.change(version).await })
                    .map_err(|e| self.commit_err(e))?,
            )
        } else {
            None
        };
        let (store, dir) = (self.store.clone(), object_path(&self.prefix));
        let listed = self
            .block(async move {
                let dir = (!dir.as_ref().is_empty()).then_some(dir);
                store.list(dir.as_ref()).try_collect::<Vec<_>>().await
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
            if top == "_staging" {
                staged.insert(rel, source);
            } else if !INTERNAL.contains(&top) && safe_rel(&rel) {
                files.insert(rel, source);
            }
        }
        if let Some(change) = last {
            for r in &change.removes {
                files.remove(r);
            }
            for a in &change.adds {
                if let Some(s) = staged.remove(&staged_rel(&change.txid, a)) {
                    files.insert(a.clone(), s);
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
        std::fs::create_dir_all(&tmp).map_err(|e| fatal(Error::lake(&tmp, e)))?;
        // Readers of the working copy see it before the pull or after it.
        let _publishing = super::lock::CommitGuard::exclusive(root).map_err(fatal)?;
        for (rel, source) in files {
            let local = root.join(rel);
            let known = manifest
                .files
                .get(rel)
                .is_some_and(|(size, tag)| *size == source.size && *tag == source.e_tag);
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
            let (store, key) = (self.store.clone(), source.key.clone());
            let opts = object_store::GetOptions {
                if_match: (!source.e_tag.is_empty()).then(|| source.e_tag.clone()),
                ..Default::default()
            };
            let got = self.block(async move { store.get_opts(&key, opts).await?.bytes().await });
            let bytes = match got {
                Ok(b) => b,
                Err(
                    object_store::Error::NotFound { .. } | object_store::Error::Precondition { .. },
                ) => return Err(PullError::Gone(format!("{rel} changed while it was read"))),
                Err(e) => return Err(fatal(remote_err(&self.url, e))),
            };
            if bytes.len() as u64 != source.size {
                return Err(PullError::Gone(format!("{rel} changed size")));
            }
            let part = tmp.join(super::txn::new_txid());
            std::fs::write(&part, &bytes).map_err(|e| fatal(Error::lake(&part, e)))?;
            let parent = local.parent().expect("a lake file is in a folder");
            std::fs::create_dir_all(parent).map_err(|e| fatal(Error::lake(parent, e)))?;
            std::fs::rename(&part, &local).map_err(|e| fatal(Error::lake(&local, e)))?;
            manifest
                .files
                .insert(rel.clone(), (source.size, source.e_tag.clone()));
        }
        // What the bucket no longer has leaves the working copy too.
        let mut local = Vec::new();
        list_local(root, root, &mut local).map_err(fatal)?;
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
        if let (Some(lease), Some(rt)) = (self.lease.take(), self.rt.as_ref()) {
            let (tx, rx) = std::sync::mpsc::channel();
            rt.spawn(async move {
                let mut held = lease.lock().await;
                let _ = held.renew(Utc::now(), chrono::Duration::zero()).await;
                let _ = tx.send(());
            });
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
        // Not dropped in place: a caller inside another runtime may not block on it.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
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

fn staged_rel(txid: &str, rel: &str) -> String {
    format!("_staging/{txid}/{rel}")
}

/// A path the working copy may create: plain segments only.
fn safe_rel(rel: &str) -> bool {
    rel.split('/')
        .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\\'))
}

/// Files of the working copy that mirror the bucket (everything but its own).
fn list_local(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::lake(dir, e)),
    };
    for entry in entries {
        let path = entry?.path();
        let rel = path
            .strip_prefix(root)
            .expect("under the root")
            .to_string_lossy()
            .into_owned();
        if dir == root && LOCAL_ONLY.contains(&rel.as_str()) {
            continue;
        }
        if path.is_dir() {
            list_local(root, &path, out)?;
        } else {
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

fn remote_err(url: &str, e: impl std::fmt::Display) -> Error {
    Error::lake(PathBuf::from(url), e)
}
