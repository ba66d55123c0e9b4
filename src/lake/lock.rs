//! One writer at a time: an OS file lock on `<lake>/_lock`. The kernel releases it when the
//! holder dies, even by SIGKILL, so a crashed writer never blocks the lake.

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
