//! `vaten publish` straight into the federation's bucket (`[federation] out = "s3://…"`).
//!
//! The aggregates are written as for a folder, into a local outbox
//! (`<cache>/federation/<server>/<bucket>/<prefix>/`), then uploaded a month at a time:
//! - each day's `quarter_hours` then `days` file, created, never overwriting. A file the bucket
//!   already has must have the same bytes (the same publication, e.g. a run that was cut short
//!   and is completed now); different bytes stop the upload with an error: a month is never
//!   made of two computations, or the month-level rule of `src/publish.rs` would not hold;
//! - then the month's marker `coop=<id>/_complete/<YYYY-MM>`: the month is whole in the bucket;
//! - last `months/part-0.parquet`, the sums of the shared days, replaced.
//!
//! Before publishing, the days of the months the bucket marks complete and the outbox lacks (a
//! new machine) are downloaded, so that they count as published and are never computed again.
//! A month in the bucket without its marker is computed again and uploaded; it completes only
//! when it comes out the same. `<outbox>/.uploaded-<coop_id>` records the files known to be in
//! the bucket, so that a nightly run uploads only what is new.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::config::S3Location;
use crate::error::{Error, Result};
use crate::lake::object_log::object_path;
use crate::lake::remote::{remote_err, s3_store, StoreRuntime};

/// The largest shared file read back (a day of a cooperative's aggregates is kilobytes).
const MAX_SHARED_BYTES: u64 = 64 << 20;

/// The federation's bucket.
pub struct Outbox {
    rt: StoreRuntime,
    store: Arc<dyn ObjectStore>,
    at: S3Location,
}

/// What one upload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// Files the bucket did not have.
    pub new: usize,
    /// Files it already had, with the same bytes.
    pub kept: usize,
}

/// A day file's place: `coop=<id>/<quarter_hours|days>/date=YYYY-MM-DD/part-0.parquet`; the
/// table's order (quarter-hours first) and the date. Anything else is not a shared day.
fn day_file(rel: &str, coop: &str) -> Option<(u8, chrono::NaiveDate)> {
    match rel.split('/').collect::<Vec<_>>().as_slice() {
        [c, table, date, "part-0.parquet"] if *c == coop => {
            let order = match *table {
                "quarter_hours" => 0,
                "days" => 1,
                _ => return None,
            };
            let date = date.strip_prefix("date=")?.parse().ok()?;
            Some((order, date))
        }
        _ => None,
    }
}

fn month_of(d: chrono::NaiveDate) -> String {
    d.format("%Y-%m").to_string()
}

impl Outbox {
    pub fn connect(at: &S3Location) -> Result<Self> {
        Ok(Outbox {
            rt: StoreRuntime::new(&at.url)?,
            store: s3_store(at)?,
            at: at.clone(),
        })
    }

    fn key(&self, rel: &str) -> object_store::path::Path {
        if self.at.prefix.is_empty() {
            object_path(rel)
        } else {
            object_path(&format!("{}/{rel}", self.at.prefix))
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        remote_err(&self.at.url, e)
    }

    /// The objects under `coop=<coop_id>/`, by path relative to the prefix.
    fn list(&self, coop: &str) -> Result<Vec<(String, u64)>> {
        let (store, dir) = (self.store.clone(), self.key(coop));
        let listed = self
            .rt
            .block(async move { store.list(Some(&dir)).try_collect::<Vec<_>>().await })
            .map_err(|e| self.err(e))?;
        let prefix = match self.at.prefix.as_str() {
            "" => String::new(),
            p => format!("{p}/"),
        };
        Ok(listed
            .into_iter()
            .filter_map(|m| {
                let rel = m.location.as_ref().strip_prefix(&prefix)?.to_string();
                Some((rel, m.size))
            })
            .collect())
    }

    /// An object's bytes, at most `MAX_SHARED_BYTES`; `None` when it is not there.
    fn get(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        let (store, key) = (self.store.clone(), self.key(rel));
        let got = self.rt.block(async move {
            let mut stream = store.get(&key).await?.into_stream();
            let mut out = Vec::new();
            while let Some(chunk) = stream.try_next().await? {
                if (out.len() + chunk.len()) as u64 > MAX_SHARED_BYTES {
                    return Ok(None);
                }
                out.extend_from_slice(&chunk);
            }
            Ok(Some(out))
        });
        match got {
            Ok(Some(b)) => Ok(Some(b)),
            Ok(None) => Err(self.err(format!("{rel} is larger than a shared day can be"))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Downloads into `local` (the outbox) the days of the months the bucket marks complete for
    /// `coop_id` that the outbox lacks. Returns how many files it took.
    pub fn pull(&self, local: &Path, coop_id: &str) -> Result<usize> {
        let coop = format!("coop={coop_id}");
        let listed = self.list(&coop)?;
        let complete: BTreeSet<String> = listed
            .iter()
            .filter_map(|(rel, _)| rel.strip_prefix(&format!("{coop}/_complete/")))
            .filter(|m| chrono::NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").is_ok())
            .map(str::to_string)
            .collect();
        let mut record = Record::load(local, coop_id);
        let mut taken = 0;
        for (rel, size) in &listed {
            let Some((_, date)) = day_file(rel, &coop) else {
                continue;
            };
            let path = local.join(rel);
            if !complete.contains(&month_of(date)) || path.exists() {
                continue;
            }
            if *size > MAX_SHARED_BYTES {
                return Err(self.err(format!("{rel} is larger than a shared day can be")));
            }
            let Some(bytes) = self.get(rel)? else {
                continue;
            };
            let parent = path.parent().expect("a file has a folder");
            std::fs::create_dir_all(parent).map_err(|e| Error::lake(parent, e))?;
            let part = parent.join(".download");
            std::fs::write(&part, &bytes).map_err(|e| Error::lake(&part, e))?;
            std::fs::rename(&part, &path).map_err(|e| Error::lake(&path, e))?;
            record.add(rel);
            taken += 1;
        }
        record.save()?;
        Ok(taken)
    }

    /// Uploads the outbox's new days of `coop_id`, a month at a time, then its months file.
    pub fn push(&self, local: &Path, coop_id: &str) -> Result<Uploaded> {
        let coop = format!("coop={coop_id}");
        let mut record = Record::load(local, coop_id);
        let mut files = Vec::new();
        collect(local, &local.join(&coop), &mut files)?;
        // Month → its day files in upload order (per day: quarter-hours, then the day).
        let mut months: BTreeMap<String, Vec<(chrono::NaiveDate, u8, String)>> = BTreeMap::new();
        for rel in files.iter().filter(|r| !record.has(r)) {
            if let Some((order, date)) = day_file(rel, &coop) {
                months
                    .entry(month_of(date))
                    .or_default()
                    .push((date, order, rel.clone()));
            }
        }
        let mut done = Uploaded::default();
        for (month, mut days) in months {
            days.sort();
            for (_, _, rel) in &days {
                let bytes = std::fs::read(local.join(rel)).map_err(|e| Error::lake(rel, e))?;
                if self.create(rel, bytes.clone())? {
                    done.new += 1;
                } else if self.get(rel)?.as_deref() == Some(&bytes[..]) {
                    done.kept += 1;
                } else {
                    return Err(self.err(format!(
                        "the bucket holds another publication of {rel} (another machine's, or one from before the lake changed); nothing more of {month} was uploaded, and a month is never made of two"
                    )));
                }
                record.add(rel);
            }
            self.create(&format!("{coop}/_complete/{month}"), Vec::new())?;
            record.save()?;
        }
        let months_file = format!("{coop}/months/part-0.parquet");
        let path = local.join(&months_file);
        if path.exists() {
            let bytes = std::fs::read(&path).map_err(|e| Error::lake(&path, e))?;
            let (store, key) = (self.store.clone(), self.key(&months_file));
            self.rt
                .block(async move { store.put(&key, PutPayload::from(bytes)).await })
                .map_err(|e| self.err(e))?;
            done.new += 1;
        }
        Ok(done)
    }

    /// Creates `rel` unless it exists; false when it did.
    fn create(&self, rel: &str, bytes: Vec<u8>) -> Result<bool> {
        let (store, key) = (self.store.clone(), self.key(rel));
        let put = self.rt.block(async move {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            store.put_opts(&key, PutPayload::from(bytes), opts).await
        });
        match put {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }
}

/// The outbox's files known to be in the bucket (`.uploaded-<coop_id>`, a line each).
struct Record {
    path: PathBuf,
    files: BTreeSet<String>,
}

impl Record {
    fn load(local: &Path, coop_id: &str) -> Self {
        let path = local.join(format!(".uploaded-{coop_id}"));
        let files = std::fs::read_to_string(&path)
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default();
        Record { path, files }
    }

    fn has(&self, rel: &str) -> bool {
        self.files.contains(rel)
    }

    fn add(&mut self, rel: &str) {
        self.files.insert(rel.to_string());
    }

    fn save(&self) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::lake(dir, e))?;
        }
        let part = self.path.with_extension("new");
        let text: String = self.files.iter().map(|f| format!("{f}\n")).collect();
        std::fs::write(&part, text).map_err(|e| Error::lake(&part, e))?;
        std::fs::rename(&part, &self.path).map_err(|e| Error::lake(&self.path, e))
    }
}

/// Parquet files below `dir`, relative to `root` (none when it does not exist); hidden files
/// (a staged months file, a download in progress) are not part of the share.
fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::lake(dir, e)),
    };
    for entry in entries {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            let rel = path.strip_prefix(root).expect("below the outbox");
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}
