//! `vaten publish` straight into the federation's bucket (`[federation] out = "s3://…"`).
//!
//! The aggregates are written as for a folder, into a local outbox
//! (`<cache>/federation/<bucket>/<prefix>/`), and then uploaded. Before publishing, the days the
//! bucket already holds for this cooperative and the outbox lacks (a fresh machine) are
//! downloaded, so that they count as published and are not computed again. A day's files are
//! uploaded with a create that never overwrites: what the federation once received stays as it
//! was. Only `months/part-0.parquet`, a sum over the published days, is replaced. An upload
//! that was interrupted is completed by the next run (the outbox still has the files).

use std::path::Path;
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::config::S3Location;
use crate::error::{Error, Result};
use crate::lake::object_log::object_path;
use crate::lake::remote::{remote_err, s3_store, StoreRuntime};

/// Folders of a cooperative's share whose files are never replaced once uploaded.
const WRITE_ONCE: [&str; 2] = ["days", "quarter_hours"];
/// The largest shared file downloaded (a day of a cooperative's aggregates is kilobytes).
const MAX_SHARED_BYTES: u64 = 1 << 30;

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
    /// Files it already had (kept as they were).
    pub kept: usize,
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

    /// Downloads into `local` (the outbox) the days the bucket holds under `coop=<coop_id>/`
    /// that the outbox lacks. Returns how many files it took.
    pub fn pull(&self, local: &Path, coop_id: &str) -> Result<usize> {
        let coop = format!("coop={coop_id}");
        let (store, dir) = (self.store.clone(), self.key(&coop));
        let listed = self
            .rt
            .block(async move { store.list(Some(&dir)).try_collect::<Vec<_>>().await })
            .map_err(|e| remote_err(&self.at.url, e))?;
        let mut taken = 0;
        for meta in listed {
            let key = meta.location.as_ref();
            let rel = match self.at.prefix.as_str() {
                "" => key,
                p => key
                    .strip_prefix(p)
                    .and_then(|k| k.strip_prefix('/'))
                    .unwrap_or_default(),
            };
            let parts: Vec<&str> = rel.split('/').collect();
            // coop=<id>/<days|quarter_hours>/date=YYYY-MM-DD/<file>.parquet, nothing else.
            let wanted = matches!(
                parts.as_slice(),
                [c, table, date, file]
                    if *c == coop
                        && WRITE_ONCE.contains(table)
                        && date.strip_prefix("date=").is_some_and(|d| d.parse::<chrono::NaiveDate>().is_ok())
                        && file.ends_with(".parquet")
                        && !file.starts_with('.')
                        && !file.contains(['\\', '\0'])
            );
            let path = local.join(rel);
            if !wanted || path.exists() {
                continue;
            }
            if meta.size > MAX_SHARED_BYTES {
                return Err(remote_err(
                    &self.at.url,
                    format!(
                        "{rel} is {} bytes, larger than a shared day can be",
                        meta.size
                    ),
                ));
            }
            let (store, location) = (self.store.clone(), meta.location.clone());
            let bytes = self
                .rt
                .block(async move { store.get(&location).await?.bytes().await })
                .map_err(|e| remote_err(&self.at.url, e))?;
            let parent = path.parent().expect("a file has a folder");
            std::fs::create_dir_all(parent).map_err(|e| Error::lake(parent, e))?;
            let part = parent.join(".download");
            std::fs::write(&part, &bytes).map_err(|e| Error::lake(&part, e))?;
            std::fs::rename(&part, &path).map_err(|e| Error::lake(&path, e))?;
            taken += 1;
        }
        Ok(taken)
    }

    /// Uploads the outbox's share of `coop_id`: days created (never replacing one the bucket
    /// has), the months file replaced.
    pub fn push(&self, local: &Path, coop_id: &str) -> Result<Uploaded> {
        let coop = format!("coop={coop_id}");
        let mut files = Vec::new();
        collect(&local.join(&coop), &mut files)?;
        files.sort();
        let mut done = Uploaded::default();
        for file in files {
            let rel = file
                .strip_prefix(local)
                .expect("below the outbox")
                .to_string_lossy()
                .into_owned();
            let write_once = rel
                .split('/')
                .nth(1)
                .is_some_and(|t| WRITE_ONCE.contains(&t));
            let bytes = std::fs::read(&file).map_err(|e| Error::lake(&file, e))?;
            let mode = if write_once {
                PutMode::Create
            } else {
                PutMode::Overwrite
            };
            let (store, key) = (self.store.clone(), self.key(&rel));
            let put = self.rt.block(async move {
                let opts = PutOptions {
                    mode,
                    ..Default::default()
                };
                store.put_opts(&key, PutPayload::from(bytes), opts).await
            });
            match put {
                Ok(_) => done.new += 1,
                Err(object_store::Error::AlreadyExists { .. }) => done.kept += 1,
                Err(e) => return Err(remote_err(&self.at.url, e)),
            }
        }
        Ok(done)
    }
}

/// Parquet files below `dir` (none when it does not exist); hidden files (a staged months
/// file, a download in progress) are not part of the share.
fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
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
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    Ok(())
}
