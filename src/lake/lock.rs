//! One writer at a time: an OS file lock on `<lake>/_lock`. The kernel releases it when the
//! holder dies, even by SIGKILL, so a crashed writer never blocks the lake.
//!
//! Readers and publication: `<lake>/_commit.lock`. A change's files move into place under an
//! exclusive lock held only for that (milliseconds, not the writing command's whole run); a
//! reader (`vaten query`, `vaten status`) holds a shared lock while it lists and reads files,
//! so it sees the lake as it was before a change or after it, never in between. A lake on
//! object storage keeps the same two roles with a lease object and a manifest (see
//! `docs/architecture.md`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Held while a command writes the lake; dropping it releases the lock.
pub struct WriteLock {
    _file: File,
}

impl WriteLock {
    /// Takes the lock, waiting up to `wait` for another writer to finish.
    pub fn acquire(lake: &Path, what: &str, wait: Duration) -> Result<Self> {
        let path = lake.join("_lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::lake(&path, e))?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if start.elapsed() >= wait {
                        let mut holder = String::new();
                        let _ = file.seek(SeekFrom::Start(0));
                        let _ = file.read_to_string(&mut holder);
                        let holder = holder.trim();
                        return Err(Error::Locked {
                            holder: if holder.is_empty() {
                                "unknown process".into()
                            } else {
                                holder.to_string()
                            },
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::lake(&path, e)),
            }
        }
        // Say who holds it, for the next writer's message.
        file.set_len(0).map_err(|e| Error::lake(&path, e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::lake(&path, e))?;
        let note = format!(
            "pid {} running `vaten {what}` since {}",
            std::process::id(),
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        );
        file.write_all(note.as_bytes())
            .map_err(|e| Error::lake(&path, e))?;
        Ok(WriteLock { _file: file })
    }
}

/// Readers' and publication's lock on `<lake>/_commit.lock`; released when dropped.
pub struct CommitGuard {
    _file: File,
}

impl CommitGuard {
    fn open(lake: &Path, create: bool) -> Result<Option<File>> {
        let path = lake.join("_commit.lock");
        match OpenOptions::new()
            .read(true)
            .write(create)
            .create(create)
            .truncate(false)
            .open(&path)
        {
            Ok(f) => Ok(Some(f)),
            // A lake never written (or not writable by this reader): nothing to wait for.
            Err(_) if !create => Ok(None),
            Err(e) => Err(Error::lake(&path, e)),
        }
    }

    /// For a reader: waits while a change is being published, then keeps changes from being
    /// published until dropped. `None` when the lake has no commit lock yet.
    pub fn shared(lake: &Path) -> Result<Option<Self>> {
        let Some(file) = Self::open(lake, false)? else {
            return Ok(None);
        };
        file.lock_shared()
            .map_err(|e| Error::lake(lake.join("_commit.lock"), e))?;
        // A writer killed while it moved a change's files leaves its journal: the lake is
        // between two states until the next writer completes it. Not read like that.
        let journal = lake.join("_journal");
        let interrupted = std::fs::read_dir(&journal)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".json"))
            })
            .unwrap_or(false);
        if interrupted {
            return Err(Error::lake(
                journal,
                "a change was interrupted (its writer stopped) and is not complete yet; any writing command (e.g. `vaten transform`) completes it first",
            ));
        }
        Ok(Some(CommitGuard { _file: file }))
    }

    /// For publishing a change: waits for the readers in progress, at most a minute (a reader
    /// that never finishes must not stall every writer).
    pub fn exclusive(lake: &Path) -> Result<Self> {
        let path = lake.join("_commit.lock");
        let file = Self::open(lake, true)?.ok_or_else(|| Error::lake(&path, "cannot open"))?;
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(CommitGuard { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::lake(
                        &path,
                        "readers kept the lake for over a minute; the change was not published (it is completed by the next writer)",
                    ))
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::lake(&path, e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_waits_for_the_readers_and_readers_wait_for_a_change() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            CommitGuard::shared(dir.path()).unwrap().is_none(),
            "no lock file yet"
        );
        drop(CommitGuard::exclusive(dir.path()).unwrap());
        let reader = CommitGuard::shared(dir.path())
            .unwrap()
            .expect("lock file now");
        let (tx, rx) = std::sync::mpsc::channel();
        let lake = dir.path().to_path_buf();
        let publisher = std::thread::spawn(move || {
            let _g = CommitGuard::exclusive(&lake).unwrap();
            tx.send(()).unwrap();
        });
        // Held off while the reader reads.
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        drop(reader);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("published once the reader is done");
        publisher.join().unwrap();
    }
}
