//! `vaten publish` straight into the federation's bucket (`[federation] out = "s3://…"`).
//!
//! The aggregates are written as for a folder, into a local outbox
//! (`<cache>/federation/<server>/<bucket>/<prefix>/`), where `src/publish.rs` marks each month
//! complete (`coop=<id>/_complete/<YYYY-MM>`) once all its days are written. Then the complete
//! months the bucket does not mark complete yet are uploaded, one at a time:
//! - each day's `quarter_hours` then `days` file, created, never overwriting. A file the bucket
//!   already has must hold the same rows (an upload cut short, completed now); other rows
//!   refuse that month (the others go on), because a month made of two computations would
//!   break the month-level rule of `src/publish.rs`;
//! - then the month's marker: the month is whole in the bucket;
//! - last, when no month was refused, `months/part-0.parquet`, the sums of the days (every
//!   complete month's days are now the same in the outbox and the bucket).
//!
//! Before publishing, the months the bucket marks complete and the outbox does not are
//! downloaded whole (a new machine, or an outbox whose run was cut short), replacing what the
//! outbox had of them, so that they count as published and are never computed again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::config::S3Location;
use crate::error::{Error, Result};
use crate::lake::object_log::object_path;
use crate::lake::remote::{remote_err, s3_store, StoreRuntime};
use crate::publish::{month_key, COMPLETE};

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
    /// Files (days and months' markers) the bucket did not have; the months file aside.
    pub new: usize,
    /// Files it already had, with the same rows.
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
            let text = date.strip_prefix("date=")?;
            let date: chrono::NaiveDate = text.parse().ok()?;
            // Exactly as publish names it: one folder per day, no two spellings of one day.
            (date.format("%Y-%m-%d").to_string() == text).then_some((order, date))
        }
        _ => None,
    }
}

const TABLES: [&str; 2] = ["quarter_hours", "days"];

fn is_month(m: &str) -> bool {
    chrono::NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d")
        .is_ok_and(|d| month_key(d) == m)
}

/// The months the outbox marks complete.
fn local_months(local: &Path, coop: &str) -> Result<BTreeSet<String>> {
    let dir = local.join(coop).join(COMPLETE);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(Error::lake(&dir, e)),
    };
    Ok(entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|m| is_month(m))
        .collect())
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

    /// The bucket's files of `coop` and the months it marks complete.
    fn bucket(&self, coop: &str) -> Result<(BTreeMap<String, u64>, BTreeSet<String>)> {
        let listed = self.list(coop)?;
        let marker_dir = format!("{coop}/{COMPLETE}/");
        let complete = listed
            .iter()
            .filter_map(|(rel, _)| rel.strip_prefix(&marker_dir))
            .filter(|m| is_month(m))
            .map(str::to_string)
            .collect();
        Ok((listed.into_iter().collect(), complete))
    }

    /// Downloads into `local` (the outbox) the months the bucket marks complete for `coop_id`
    /// and the outbox does not, whole. Returns how many files it took.
    pub fn pull(&self, local: &Path, coop_id: &str) -> Result<usize> {
        let coop = format!("coop={coop_id}");
        let (files, complete) = self.bucket(&coop)?;
        let here = local_months(local, &coop)?;
        let mut taken = 0;
        for month in complete.difference(&here) {
            // What the outbox has of that month is an unfinished computation: replaced, its
            // staged days too (they would complete into it).
            let staging = local.join(format!(".staging-{coop_id}"));
            for entry in std::fs::read_dir(&staging).into_iter().flatten().flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&format!("date={month}-"))
                {
                    let path = entry.path();
                    std::fs::remove_dir_all(&path).map_err(|e| Error::lake(&path, e))?;
                }
            }
            for table in TABLES {
                let dir = local.join(&coop).join(table);
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with(&format!("date={month}-")) {
                        let path = entry.path();
                        std::fs::remove_dir_all(&path).map_err(|e| Error::lake(&path, e))?;
                    }
                }
            }
            for (rel, size) in &files {
                let Some((_, date)) = day_file(rel, &coop) else {
                    continue;
                };
                if month_key(date) != *month {
                    continue;
                }
                if *size > MAX_SHARED_BYTES {
                    return Err(self.err(format!("{rel} is larger than a shared day can be")));
                }
                let Some(bytes) = self.get(rel)? else {
                    return Err(self.err(format!(
                        "the bucket marks {month} complete, but {rel} went while it was read"
                    )));
                };
                let path = local.join(rel);
                let parent = path.parent().expect("a file has a folder");
                std::fs::create_dir_all(parent).map_err(|e| Error::lake(parent, e))?;
                let part = parent.join(".download");
                write_durably(&part, &bytes)?;
                std::fs::rename(&part, &path).map_err(|e| Error::lake(&path, e))?;
                taken += 1;
            }
            let dir = local.join(&coop).join(COMPLETE);
            std::fs::create_dir_all(&dir).map_err(|e| Error::lake(&dir, e))?;
            write_durably(&dir.join(month), b"")?;
        }
        Ok(taken)
    }

    /// Uploads the outbox's complete months of `coop_id` that the bucket does not mark complete,
    /// then (when none was refused) its months file.
    pub fn push(&self, local: &Path, coop_id: &str) -> Result<Uploaded> {
        let coop = format!("coop={coop_id}");
        let (listed, complete) = self.bucket(&coop)?;
        let mut files = Vec::new();
        collect(local, &local.join(&coop), &mut files)?;
        // Month → its day files in upload order (per day: quarter-hours, then the day).
        let mut months: BTreeMap<String, Vec<(chrono::NaiveDate, u8, String)>> = BTreeMap::new();
        for rel in &files {
            if let Some((order, date)) = day_file(rel, &coop) {
                months
                    .entry(month_key(date))
                    .or_default()
                    .push((date, order, rel.clone()));
            }
        }
        let ready = local_months(local, &coop)?;
        let mut done = Uploaded::default();
        let mut refused = Vec::new();
        'months: for (month, mut days) in months {
            if !ready.contains(&month) {
                continue;
            }
            if complete.contains(&month) {
                // Whole in both: the same files, by name and size (a cheap look at what another
                // machine may have published meanwhile; the rows are compared only where a
                // month is being uploaded).
                let differs = days.iter().any(|(_, _, rel)| {
                    let size = std::fs::metadata(local.join(rel)).map(|m| m.len()).ok();
                    listed.get(rel).copied() != size
                }) || listed.keys().any(|rel| {
                    day_file(rel, &coop).is_some_and(|(_, d)| month_key(d) == month)
                        && !days.iter().any(|(_, _, r)| r == rel)
                });
                if differs {
                    refused.push(format!("{month} (its files differ from the outbox's)"));
                }
                continue;
            }
            days.sort();
            for (_, _, rel) in &days {
                let path = local.join(rel);
                let bytes = std::fs::read(&path).map_err(|e| Error::lake(&path, e))?;
                let there = listed.contains_key(rel) || !self.create(rel, bytes.clone())?;
                if !there {
                    done.new += 1;
                } else if self
                    .get(rel)?
                    .is_some_and(|b| crate::lake::parquet_io::same_rows(b, bytes.clone()))
                {
                    done.kept += 1;
                } else {
                    refused.push(format!("{month} ({rel} differs)"));
                    continue 'months;
                }
            }
            self.create(&format!("{coop}/{COMPLETE}/{month}"), Vec::new())?;
            done.new += 1;
        }
        if !refused.is_empty() {
            return Err(self.err(format!(
                "the bucket holds another publication of {} (another machine's, or one computed before the lake or the registry changed): not uploaded, for a month is never made of two, and the months file was not replaced; the other months were uploaded. The federation decides: remove that month's files and its `_complete` marker from the bucket to have it published anew, or remove the outbox ({}) to take the bucket's",
                refused.join(", "),
                local.display()
            )));
        }
        let months_file = format!("{coop}/months/part-0.parquet");
        let path = local.join(&months_file);
        if path.exists() {
            let bytes = std::fs::read(&path).map_err(|e| Error::lake(&path, e))?;
            let (store, key) = (self.store.clone(), self.key(&months_file));
            self.rt
                .block(async move { store.put(&key, PutPayload::from(bytes)).await })
                .map_err(|e| self.err(e))?;
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

fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(|e| Error::lake(path, e))?;
    f.write_all(bytes).map_err(|e| Error::lake(path, e))?;
    f.sync_all().map_err(|e| Error::lake(path, e))
}

/// Parquet files below `dir`, relative to `root` (none when it does not exist); hidden files
/// and folders (a staged months file, a download in progress) are not part of the share.
fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for path in crate::lake::files_under(dir)? {
        let rel = path.strip_prefix(root).expect("below the outbox");
        let hidden = rel
            .components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
        if !hidden && path.extension().is_some_and(|e| e == "parquet") {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}
