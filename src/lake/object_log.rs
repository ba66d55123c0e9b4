//! The commit scheme of a lake on object storage (S3, MinIO, Ceph; `object_store`'s in-memory
//! and local-file stores in the tests). Object stores have no rename and no `flock`; what the
//! ones we target have (AWS S3 since 2024, recent MinIO and Ceph RGW) is a put that creates an
//! object only if it does not exist yet (`If-None-Match: *`, `PutMode::Create`), atomically.
//! A store that ignores the condition would let two writers win: opening a lake there must
//! first probe it ([`ObjectLog::probe`]: create one object twice, expect the second to fail). Both roles are built
//! on that create alone:
//!
//! - **The log**: a change is committed by creating `_log/<version>.json` (20 digits) naming the
//!   files it adds and removes. Two writers that both read version N and both try to create
//!   N + 1: exactly one succeeds; the other gets [`CommitError::Conflict`] and commits nothing.
//!   The data files are uploaded first, under names no other change uses (its txid), where no
//!   reader looks. [`ObjectLog::snapshot`] replays the whole log (the set of files a version
//!   names); the lake's tables on a bucket ([`super::remote`]) also copy each committed change
//!   into place, so that tools outside vaten see a plain hive layout, and read only the last
//!   entry. Log entries and lease epochs are never deleted, or a stale writer could create
//!   them again.
//! - **The lease** (the writer lock): `_lease/<epoch>.json` holds the holder and until when.
//!   The current lease is the highest epoch. To take the lock a writer creates the next epoch,
//!   when the current one has expired (or there is none); to renew, the holder creates the next
//!   epoch itself. Two writers racing for an expired lease: one create wins. A holder whose
//!   renewal finds the next epoch taken has lost the lock ([`LeaseError::Lost`]), and
//!   [`ObjectLog::commit_under`] refuses to commit once the lease is about to end, so a writer
//!   paused past its lease commits nothing (expiry is judged by the clocks of the writers: the
//!   margin must cover their skew).
//!
//! This module is the protocol, proven on the in-memory and local-file stores; the lake's tables
//! on a bucket (`lake = "s3://…"`, [`super::remote`]) build on it (`docs/architecture.md`).

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

/// One committed change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub txid: String,
    /// Files (relative to the lake's prefix) this change makes part of the lake.
    pub adds: Vec<String>,
    /// Files it takes out.
    pub removes: Vec<String>,
    /// The lease epoch the writer held.
    #[serde(default)]
    pub lease_epoch: Option<u64>,
}

/// The lake as of one version of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub version: u64,
    pub files: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Another writer committed this version first; nothing of this change is visible.
    #[error("another writer committed version {0} first")]
    Conflict(u64),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("log entry {0}: {1}")]
    Corrupt(String, String),
    /// The store cannot be trusted with a lake (it does not honour conditional creates).
    #[error("unsafe object store: {0}")]
    Unsafe(String),
    /// The writer's lease ends (at this instant) too soon to commit safely.
    #[error("the writer's lease ends at {0}: renew it before committing")]
    LeaseEnding(DateTime<Utc>),
}

/// The log of a lake under `prefix` in `store`.
pub struct ObjectLog {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

/// The largest log entry read: a change names files, not rows.
const MAX_ENTRY_BYTES: usize = 64 << 20;

impl ObjectLog {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        ObjectLog {
            store,
            prefix: Path::from(prefix),
        }
    }

    fn at(&self, rel: &str) -> Path {
        object_path(&format!("{}/{rel}", self.prefix))
    }

    fn entry(&self, version: u64) -> Path {
        self.at(&format!("_log/{version:020}.json"))
    }

    /// Whether the store honours a conditional create: creates `_probe/<txid>` twice and
    /// expects the second to be refused. A store that accepts it would let two writers both
    /// commit the same version: a lake must not be opened there.
    pub async fn probe(&self, txid: &str) -> Result<(), CommitError> {
        let path = self.at(&format!("_probe/{txid}"));
        let create = || PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(&path, PutPayload::from_static(b"1"), create())
            .await?;
        let second = self
            .store
            .put_opts(&path, PutPayload::from_static(b"2"), create())
            .await;
        let _ = self.store.delete(&path).await;
        match second {
            Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Ok(_) => Err(CommitError::Unsafe(
                "the store overwrote an object a conditional create should have refused".into(),
            )),
            Err(object_store::Error::NotImplemented { .. }) => Err(CommitError::Unsafe(
                "the store does not implement conditional creates".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Uploads a data file at `rel` (not yet part of the lake: only a log entry makes it so).
    /// Created, never overwritten: a name already taken is an error, not a silent
    /// replacement of a committed file.
    pub async fn upload(&self, rel: &str, bytes: Vec<u8>) -> Result<(), CommitError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(&self.at(rel), PutPayload::from(bytes), opts)
            .await?;
        Ok(())
    }

    /// Reads a file of the lake.
    pub async fn read(&self, rel: &str) -> Result<Vec<u8>, CommitError> {
        Ok(self.store.get(&self.at(rel)).await?.bytes().await?.to_vec())
    }

    /// The versions in the log, in order.
    async fn versions(&self) -> Result<Vec<u64>, CommitError> {
        let listed: Vec<_> = self
            .store
            .list(Some(&self.at("_log")))
            .try_collect()
            .await?;
        let mut versions: Vec<u64> = listed
            .iter()
            .filter_map(|m| version_of(&m.location))
            .collect();
        versions.sort_unstable();
        Ok(versions)
    }

    /// The lake as of the latest version: the log replayed from the start.
    pub async fn snapshot(&self) -> Result<Snapshot, CommitError> {
        let mut snap = Snapshot::default();
        for (expected, version) in (1..).zip(self.versions().await?) {
            // A gap would mean a lost entry: replaying past it would show a lake that never was.
            if version != expected {
                return Err(CommitError::Corrupt(
                    format!("{version:020}"),
                    format!("version {expected} is missing"),
                ));
            }
            let change = self.change(version).await?;
            for r in &change.removes {
                snap.files.remove(r);
            }
            snap.files.extend(change.adds);
            snap.version = version;
        }
        Ok(snap)
    }

    /// The latest version (0 for an empty log).
    pub async fn latest(&self) -> Result<u64, CommitError> {
        Ok(self.versions().await?.last().copied().unwrap_or(0))
    }

    /// The latest version, knowing that `known` exists: lists only the entries after it (the
    /// log is never cut, so a long log costs its full listing only to a new reader).
    pub async fn latest_after(&self, known: u64) -> Result<u64, CommitError> {
        if known == 0 {
            return self.latest().await;
        }
        let after: Vec<_> = self
            .store
            .list_with_offset(Some(&self.at("_log")), &self.entry(known))
            .try_collect()
            .await?;
        let newest = after.iter().filter_map(|m| version_of(&m.location)).max();
        match newest {
            Some(v) => Ok(v.max(known)),
            // Nothing after it: it is the latest, if it is there at all (a bucket emptied and
            // started again is listed in full).
            None => match self.store.head(&self.entry(known)).await {
                Ok(_) => Ok(known),
                Err(object_store::Error::NotFound { .. }) => self.latest().await,
                Err(e) => Err(e.into()),
            },
        }
    }

    /// The change committed as `version`.
    pub async fn change(&self, version: u64) -> Result<Change, CommitError> {
        // The size first: an entry is read only when it is of a sane size.
        let path = self.entry(version);
        if self.store.head(&path).await?.size > MAX_ENTRY_BYTES as u64 {
            return Err(CommitError::Corrupt(
                format!("{version:020}"),
                "larger than 64 MiB".into(),
            ));
        }
        let bytes = self.store.get(&path).await?.bytes().await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| CommitError::Corrupt(format!("{version:020}"), e.to_string()))
    }

    /// Commits `change` under `lease`: refused when the lease ends within `margin` of `now`
    /// (a writer that may have lost the lock commits nothing; the entry records the epoch).
    pub async fn commit_under(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        margin: Duration,
        base: u64,
        change: &Change,
    ) -> Result<u64, CommitError> {
        if lease.record.until - margin <= now {
            return Err(CommitError::LeaseEnding(lease.record.until));
        }
        let mut change = change.clone();
        change.lease_epoch = Some(lease.epoch);
        self.commit(base, &change).await
    }

    /// Commits `change` on top of `base` (the version the writer read): creates the next log
    /// entry, or finds it taken. The log stays linear whoever calls it; writers hold the lease
    /// and use [`ObjectLog::commit_under`] so that two of them do not work at once.
    pub async fn commit(&self, base: u64, change: &Change) -> Result<u64, CommitError> {
        let version = base
            .checked_add(1)
            .filter(|v| *v <= MAX_NUMBER)
            .ok_or_else(|| {
                CommitError::Corrupt(format!("{base:020}"), "version out of range".into())
            })?;
        let bytes = serde_json::to_vec(change).expect("a change serialises");
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.entry(version), PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(version),
            // Ours, when a retried create found the entry its first attempt made (the answer
            // to that one was lost): the same change, not a conflict.
            Err(object_store::Error::AlreadyExists { .. }) => match self.change(version).await {
                Ok(found) if found == *change => Ok(version),
                Ok(_) => Err(CommitError::Conflict(version)),
                // Not known whose it is: not called a conflict.
                Err(e) => Err(e),
            },
            Err(e) => Err(e.into()),
        }
    }
}

/// A key exactly as written: the lake's file names (`K1~part-….parquet`, `date=…`) stay as they
/// are on disk, where `Path::from` would percent-encode `~` and `%`. A name `parse` refuses
/// (an empty, `.` or `..` segment; the lake never makes one) falls back to the encoded form.
pub fn object_path(key: &str) -> Path {
    Path::parse(key).unwrap_or_else(|_| Path::from(key))
}

/// The largest version or epoch taken from a bucket's names: far beyond any real count, and
/// far from overflowing when one is added.
const MAX_NUMBER: u64 = 1 << 60;

/// The version of a log entry's path (`…/_log/<20 digits>.json`).
fn version_of(path: &Path) -> Option<u64> {
    path.filename()
        .and_then(|f| f.strip_suffix(".json"))
        .filter(|v| v.len() == 20)
        .and_then(|v| v.parse().ok())
        .filter(|v| *v <= MAX_NUMBER)
}

/// Lease epochs kept below the current one. Older ones are deleted by the writer that takes
/// the lease, so that taking it lists a bounded folder; a holder's renewal checks that no
/// later epoch exists, so a stale holder cannot renew by re-creating a deleted epoch.
const EPOCHS_KEPT: u64 = 100;

/// The writer lock on object storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub holder: String,
    pub until: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Someone else holds an unexpired lease.
    #[error("the lake is locked by {holder} until {until}")]
    Held {
        holder: String,
        until: DateTime<Utc>,
    },
    /// The lease expired and another writer took it: stop before committing anything.
    #[error("the lease was lost to {0}")]
    Lost(String),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("lease {0}: {1}")]
    Corrupt(String, String),
}

/// A lease held: its epoch and record.
#[derive(Debug)]
pub struct Lease {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    pub epoch: u64,
    pub record: LeaseRecord,
}

async fn latest_lease(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
) -> Result<Option<(u64, LeaseRecord)>, LeaseError> {
    let dir = Path::from(format!("{prefix}/_lease"));
    let listed: Vec<_> = store.list(Some(&dir)).try_collect().await?;
    let Some(epoch) = listed
        .iter()
        .filter_map(|m| {
            m.location
                .filename()
                .and_then(|f| f.strip_suffix(".json"))
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|v| *v <= MAX_NUMBER)
        })
        .max()
    else {
        return Ok(None);
    };
    let path = lease_path(prefix, epoch);
    if store.head(&path).await?.size > 64 << 10 {
        return Err(LeaseError::Corrupt(
            path.to_string(),
            "larger than 64 KiB".into(),
        ));
    }
    let bytes = store.get(&path).await?.bytes().await?;
    let record = serde_json::from_slice(&bytes)
        .map_err(|e| LeaseError::Corrupt(path.to_string(), e.to_string()))?;
    Ok(Some((epoch, record)))
}

fn lease_path(prefix: &Path, epoch: u64) -> Path {
    Path::from(format!("{prefix}/_lease/{epoch:020}.json"))
}

async fn create_lease(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    epoch: u64,
    record: &LeaseRecord,
) -> Result<bool, LeaseError> {
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    let bytes = serde_json::to_vec(record).expect("a lease serialises");
    let path = lease_path(prefix, epoch);
    match store.put_opts(&path, PutPayload::from(bytes), opts).await {
        Ok(_) => Ok(true),
        // Ours, when a retried create found what its first attempt made.
        Err(object_store::Error::AlreadyExists { .. }) => {
            let found = match store.get(&path).await {
                Ok(got) => got.bytes().await.ok(),
                Err(_) => None,
            };
            Ok(found
                .filter(|b| b.len() <= 64 << 10)
                .and_then(|b| serde_json::from_slice::<LeaseRecord>(&b).ok())
                .is_some_and(|r| r == *record))
        }
        Err(e) => Err(e.into()),
    }
}

impl Lease {
    /// Takes the lock for `holder` until `now + ttl`, when no one holds an unexpired lease.
    pub async fn acquire(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Lease, LeaseError> {
        let prefix = Path::from(prefix);
        let current = latest_lease(&store, &prefix).await?;
        let epoch = match &current {
            Some((_, r)) if r.until > now => {
                return Err(LeaseError::Held {
                    holder: r.holder.clone(),
                    until: r.until,
                })
            }
            Some((e, _)) => e + 1,
            None => 1,
        };
        let record = LeaseRecord {
            holder: holder.to_string(),
            until: now + ttl,
        };
        if create_lease(&store, &prefix, epoch, &record).await? {
            // Best effort: a failed delete leaves one more epoch to list, nothing worse.
            let old: Vec<_> = store
                .list(Some(&Path::from(format!("{prefix}/_lease"))))
                .try_collect()
                .await
                .unwrap_or_default();
            for m in old {
                let e = m
                    .location
                    .filename()
                    .and_then(|f| f.strip_suffix(".json"))
                    .and_then(|v| v.parse::<u64>().ok())
                    .filter(|v| *v <= MAX_NUMBER);
                if e.is_some_and(|e| e + EPOCHS_KEPT < epoch) {
                    let _ = store.delete(&m.location).await;
                }
            }
            Ok(Lease {
                store,
                prefix,
                epoch,
                record,
            })
        } else {
            // Another writer created this epoch between our look and our create.
            match latest_lease(&store, &prefix).await? {
                Some((_, r)) => Err(LeaseError::Held {
                    holder: r.holder,
                    until: r.until,
                }),
                // A store whose listing lags behind its creates.
                None => Err(LeaseError::Corrupt(
                    format!("epoch {epoch}"),
                    "taken, but not listed yet".into(),
                )),
            }
        }
    }

    /// Extends the lease to `now + ttl` by creating the next epoch; fails when another writer
    /// took the lock after this lease expired.
    pub async fn renew(&mut self, now: DateTime<Utc>, ttl: Duration) -> Result<(), LeaseError> {
        let record = LeaseRecord {
            holder: self.record.holder.clone(),
            until: now + ttl,
        };
        let next = self.epoch + 1;
        let created = create_lease(&self.store, &self.prefix, next, &record).await?;
        // An epoch after the one just created means ours was deleted long ago (below the
        // kept epochs) and created again: the lease was lost.
        let later = created
            && self
                .store
                .list_with_offset(
                    Some(&Path::from(format!("{}/_lease", self.prefix))),
                    &lease_path(&self.prefix, next),
                )
                .try_collect::<Vec<_>>()
                .await?
                .iter()
                .any(|m| m.location.filename().is_some_and(|f| f.ends_with(".json")));
        if created && !later {
            self.epoch = next;
            self.record = record;
            Ok(())
        } else {
            let holder = latest_lease(&self.store, &self.prefix)
                .await?
                .map_or_else(|| "someone".into(), |(_, r)| r.holder);
            Err(LeaseError::Lost(holder))
        }
    }

    /// Whether this lease is still the latest epoch and has not run out (within `margin` of
    /// `now`): no other writer has taken the lock.
    pub async fn still_held(
        &self,
        now: DateTime<Utc>,
        margin: Duration,
    ) -> Result<bool, LeaseError> {
        if self.record.until - margin <= now {
            return Ok(false);
        }
        let later: Vec<_> = self
            .store
            .list_with_offset(
                Some(&Path::from(format!("{}/_lease", self.prefix))),
                &lease_path(&self.prefix, self.epoch),
            )
            .try_collect()
            .await?;
        Ok(!later
            .iter()
            .any(|m| m.location.filename().is_some_and(|f| f.ends_with(".json"))))
    }

    /// Ends the lease now, by an epoch that has already expired (the next writer need not wait).
    pub async fn release(mut self, now: DateTime<Utc>) -> Result<(), LeaseError> {
        self.renew(now, Duration::zero()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::local::LocalFileSystem;
    use object_store::memory::InMemory;

    fn stores() -> Vec<(
        &'static str,
        Arc<dyn ObjectStore>,
        Option<tempfile::TempDir>,
    )> {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        vec![
            ("in-memory", Arc::new(InMemory::new()), None),
            ("local files", Arc::new(local), Some(dir)),
        ]
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    fn change(txid: &str, adds: &[&str], removes: &[&str]) -> Change {
        Change {
            txid: txid.into(),
            adds: adds.iter().map(|s| s.to_string()).collect(),
            removes: removes.iter().map(|s| s.to_string()).collect(),
            lease_epoch: None,
        }
    }

    #[test]
    fn two_writers_racing_for_the_same_version_exactly_one_commits() {
        let rt = runtime();
        for (name, store, _dir) in stores() {
            let log = Arc::new(ObjectLog::new(store, "coop/lake"));
            for round in 0..40u64 {
                let base = rt.block_on(log.snapshot()).unwrap();
                assert_eq!(base.version, round, "{name}");
                // Both upload their files, then race for version base + 1 on two threads.
                let tasks: Vec<_> = ["a", "b"]
                    .into_iter()
                    .map(|w| {
                        let log = Arc::clone(&log);
                        let file = format!("grid_readings/part-{round}-{w}.parquet");
                        rt.spawn(async move {
                            log.upload(&file, w.as_bytes().to_vec()).await.unwrap();
                            let c = change(&format!("{round}{w}"), &[&file], &[]);
                            (file, log.commit(base.version, &c).await)
                        })
                    })
                    .collect();
                let results: Vec<_> = tasks.into_iter().map(|t| rt.block_on(t).unwrap()).collect();
                let won: Vec<_> = results.iter().filter(|(_, r)| r.is_ok()).collect();
                assert_eq!(won.len(), 1, "{name} round {round}: {results:?}");
                let lost = results.iter().find(|(_, r)| r.is_err()).unwrap();
                assert!(
                    matches!(lost.1, Err(CommitError::Conflict(v)) if v == round + 1),
                    "{name}: {lost:?}"
                );
                // Readers see the winner's file and never the loser's (uploaded, not named).
                let after = rt.block_on(log.snapshot()).unwrap();
                assert!(after.files.contains(&won[0].0), "{name}");
                assert!(!after.files.contains(&lost.0), "{name}");
            }
            assert_eq!(
                rt.block_on(log.snapshot()).unwrap().files.len(),
                40,
                "{name}"
            );
        }
    }

    /// A store that ignores the condition: every put overwrites.
    #[derive(Debug)]
    struct Careless(InMemory);

    impl std::fmt::Display for Careless {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Careless")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Careless {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            _opts: PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.0
                .put_opts(location, payload, PutOptions::default())
                .await
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.0.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.0.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: futures_util::stream::BoxStream<'static, object_store::Result<Path>>,
        ) -> futures_util::stream::BoxStream<'static, object_store::Result<Path>> {
            self.0.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> futures_util::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
        {
            self.0.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<object_store::ListResult> {
            self.0.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.0.copy_opts(from, to, options).await
        }
    }

    #[test]
    fn a_store_that_ignores_conditional_creates_is_refused() {
        let rt = runtime();
        for (name, store, _dir) in stores() {
            let log = ObjectLog::new(store, "lake");
            rt.block_on(log.probe("t1"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let careless = ObjectLog::new(Arc::new(Careless(InMemory::new())), "lake");
        let err = rt.block_on(careless.probe("t1")).unwrap_err();
        assert!(matches!(err, CommitError::Unsafe(_)), "{err}");
    }

    #[test]
    fn a_snapshot_is_the_log_replayed_and_refuses_a_gap() {
        let rt = runtime();
        for (name, store, _dir) in stores() {
            let log = ObjectLog::new(Arc::clone(&store), "lake");
            rt.block_on(async {
                assert_eq!(log.snapshot().await.unwrap(), Snapshot::default());
                log.commit(0, &change("t1", &["a", "b"], &[]))
                    .await
                    .unwrap();
                log.commit(1, &change("t2", &["c"], &["a"])).await.unwrap();
                let s = log.snapshot().await.unwrap();
                assert_eq!(s.version, 2, "{name}");
                assert_eq!(
                    s.files,
                    ["b", "c"].iter().map(|s| s.to_string()).collect(),
                    "{name}"
                );
                // Version 4 without 3: the lake refuses to guess.
                store
                    .put(
                        &Path::from(format!("lake/_log/{:020}.json", 4)),
                        PutPayload::from(serde_json::to_vec(&change("t4", &["d"], &[])).unwrap()),
                    )
                    .await
                    .unwrap();
                let err = log.snapshot().await.unwrap_err();
                assert!(
                    err.to_string().contains("version 3 is missing"),
                    "{name}: {err}"
                );
            });
        }
    }

    #[test]
    fn the_lease_is_held_expires_is_taken_over_once_and_the_old_holder_learns_it() {
        let rt = runtime();
        let t0: DateTime<Utc> = "2026-11-30T02:00:00Z".parse().unwrap();
        let ttl = Duration::seconds(60);
        for (name, store, _dir) in stores() {
            rt.block_on(async {
                let mut a = Lease::acquire(Arc::clone(&store), "coop", "ingest (pid 1)", t0, ttl)
                    .await
                    .unwrap();
                // Held: a second writer is told who holds it and until when.
                let err = Lease::acquire(Arc::clone(&store), "coop", "transform (pid 2)", t0, ttl)
                    .await
                    .unwrap_err();
                assert!(
                    matches!(&err, LeaseError::Held { holder, .. } if holder == "ingest (pid 1)"),
                    "{name}: {err}"
                );
                // Renewed in time, it stays held past the first expiry.
                a.renew(t0 + Duration::seconds(50), ttl).await.unwrap();
                assert!(
                    Lease::acquire(
                        Arc::clone(&store),
                        "coop",
                        "b",
                        t0 + Duration::seconds(90),
                        ttl
                    )
                    .await
                    .is_err(),
                    "{name}"
                );
                // Expired: two writers race for it; exactly one gets it.
                let late = t0 + Duration::seconds(200);
                let (sb, sc) = (Arc::clone(&store), Arc::clone(&store));
                let b =
                    tokio::spawn(async move { Lease::acquire(sb, "coop", "b", late, ttl).await });
                let c =
                    tokio::spawn(async move { Lease::acquire(sc, "coop", "c", late, ttl).await });
                let (b, c) = (b.await.unwrap(), c.await.unwrap());
                assert_eq!(
                    usize::from(b.is_ok()) + usize::from(c.is_ok()),
                    1,
                    "{name}: {b:?} {c:?}"
                );
                // The old holder's renewal finds the lease taken: it must stop.
                let lost = a.renew(late, ttl).await.unwrap_err();
                assert!(matches!(lost, LeaseError::Lost(_)), "{name}: {lost}");
                // The winner commits under its lease; near its end it may not.
                let winner = b.or(c).unwrap();
                let log = ObjectLog::new(Arc::clone(&store), "coop");
                let c1 = change("t1", &["x"], &[]);
                log.commit_under(&winner, late, Duration::seconds(10), 0, &c1)
                    .await
                    .unwrap();
                let ending = log
                    .commit_under(
                        &winner,
                        late + Duration::seconds(55),
                        Duration::seconds(10),
                        1,
                        &c1,
                    )
                    .await
                    .unwrap_err();
                assert!(
                    matches!(ending, CommitError::LeaseEnding(_)),
                    "{name}: {ending}"
                );
                // Released, the next writer need not wait for the expiry.
                winner.release(late).await.unwrap();
                Lease::acquire(Arc::clone(&store), "coop", "d", late, ttl)
                    .await
                    .unwrap();
            });
        }
    }

    #[test]
    fn old_lease_epochs_are_deleted_and_a_stale_holder_cannot_renew_through_them() {
        let rt = runtime();
        for (name, store, _dir) in stores() {
            let t0 = Utc::now();
            let ttl = Duration::seconds(30);
            let stale = rt
                .block_on(Lease::acquire(store.clone(), "lake", "stale", t0, ttl))
                .unwrap();
            assert_eq!(stale.epoch, 1);
            // 150 later writers, each taking the lease after the last one's expired.
            let mut now = t0;
            for i in 0..150 {
                now += Duration::seconds(31);
                let l = rt
                    .block_on(Lease::acquire(
                        store.clone(),
                        "lake",
                        &format!("w{i}"),
                        now,
                        ttl,
                    ))
                    .unwrap();
                rt.block_on(l.release(now)).unwrap();
            }
            let listed: Vec<_> = rt
                .block_on(
                    store
                        .list(Some(&Path::from("lake/_lease")))
                        .try_collect::<Vec<_>>(),
                )
                .unwrap();
            // 301 epochs were created (1 + 150 × (take, release)); only the recent ones stay.
            assert!(
                listed.len() as u64 <= EPOCHS_KEPT + 2,
                "{name}: {} epochs listed",
                listed.len()
            );
            assert!(
                !listed
                    .iter()
                    .any(|m| m.location.as_ref().ends_with(&format!("{:020}.json", 2))),
                "{name}: epoch 2 deleted"
            );
            // The first holder wakes up: creating epoch 2 again succeeds, but it has lost.
            let mut stale = stale;
            let got = rt.block_on(stale.renew(now, ttl));
            assert!(matches!(got, Err(LeaseError::Lost(_))), "{name}: {got:?}");
        }
    }

    #[test]
    fn the_latest_version_after_a_known_one_lists_only_newer_entries() {
        let rt = runtime();
        for (name, store, _dir) in stores() {
            let log = ObjectLog::new(store, "lake");
            assert_eq!(rt.block_on(log.latest_after(0)).unwrap(), 0, "{name}");
            for v in 0..12 {
                rt.block_on(log.commit(v, &change(&format!("t{v}"), &[], &[])))
                    .unwrap();
            }
            for known in [1, 5, 11, 12] {
                assert_eq!(rt.block_on(log.latest_after(known)).unwrap(), 12, "{name}");
            }
            // A hint from a lake that is not there (a bucket started again): listed in full.
            assert_eq!(rt.block_on(log.latest_after(40)).unwrap(), 12, "{name}");
        }
    }

    #[test]
    fn a_lease_is_still_held_until_it_ends_or_a_later_epoch_exists() {
        let rt = runtime();
        for (name, store, _dir) in stores() {
            let t0 = Utc::now();
            let ttl = Duration::seconds(30);
            let held = rt
                .block_on(Lease::acquire(store.clone(), "lake", "a", t0, ttl))
                .unwrap();
            let margin = Duration::seconds(5);
            assert!(rt.block_on(held.still_held(t0, margin)).unwrap(), "{name}");
            // Within the margin of its end: not any more.
            let late = t0 + Duration::seconds(26);
            assert!(
                !rt.block_on(held.still_held(late, margin)).unwrap(),
                "{name}"
            );
            // Another writer's epoch after it (it expired and was taken): not held.
            let taker = rt
                .block_on(Lease::acquire(store.clone(), "lake", "b", t0 + ttl, ttl))
                .unwrap();
            assert_eq!(taker.epoch, held.epoch + 1, "{name}");
            assert!(!rt.block_on(held.still_held(t0, margin)).unwrap(), "{name}");
        }
    }

    #[test]
    fn a_taken_version_that_cannot_be_read_back_is_not_called_a_conflict() {
        let rt = runtime();
        for (name, store, _dir) in stores() {
            let log = ObjectLog::new(store.clone(), "lake");
            rt.block_on(store.put(
                &object_path("lake/_log/00000000000000000001.json"),
                PutPayload::from_static(b"not json"),
            ))
            .unwrap();
            let got = rt.block_on(log.commit(0, &change("mine", &[], &[])));
            assert!(
                matches!(got, Err(CommitError::Corrupt(..))),
                "{name}: {got:?}"
            );
        }
    }
}
