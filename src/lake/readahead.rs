//! Telling the kernel which files a scan reads next, so that the disk can work on several at
//! once.
//!
//! A query over a year of `intervals` opens 14,640 small files (a cable's day each, tens of
//! KB) on two threads, each reading one file at a time. Read from the disk rather than the page
//! cache, each file waits for its footer and then its column chunks, with at most two reads in
//! flight: a year's daily sums took 2.36–2.75 s cold against 1.38–1.49 s warm, where DuckDB's
//! cold runs were 0.3 s slower than its warm ones (`docs/benchmarks.md`, "Fifteenth session:
//! the files asked for ahead of their readers"). A third thread therefore walks the files a
//! little ahead of the readers and asks for each with `posix_fadvise(POSIX_FADV_WILLNEED)`,
//! which starts the reads and returns, so that the kernel can keep many in flight and the
//! readers find their files cached (cold: 1.64–1.77 s).
//!
//! Only a hint: a file that cannot be opened is passed over (its reader reports it), at most
//! one byte of a file is read into this process (to learn whether it is cached), and it stays
//! a bounded number of files, and of bytes, ahead so that a scan of more than fits in memory
//! does not push its own next files out of the cache. Elsewhere than on Linux it does nothing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// How many files the hints run ahead of the readers: many reads in flight, and at most 64 MiB
/// (64 files of at most `WHOLE_FILE_AT_MOST`) asked for and not yet read.
pub const LEAD: usize = 64;

/// A file up to this size is asked for whole (a day of a cable's `intervals` is tens of KB);
/// of a larger one only its last [`FOOTER`] bytes, the rest read as usual (a reader of a few
/// columns would otherwise pull in all of them).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const WHOLE_FILE_AT_MOST: u64 = 1 << 20;

/// The bytes at a file's end asked for as its footer: the lake's footers are a few KB.
pub const FOOTER: u64 = 16 << 10;

/// After this many files in a row found in the page cache already, the rest are taken to be
/// cached too and the hints end: a hint costs an open and a few system calls, which with
/// everything cached made a year's daily sums 8–10 % slower (14,640 files). Looking on at a
/// sample of the files instead, to resume at the first that is not cached, kept the thread
/// waking every 200 µs for the whole scan: 5 % slower warm. So a scan whose first files are
/// cached and later ones not (a month just queried, then the year) reads the later ones as it
/// did without hints.
const CACHED_IN_A_ROW: usize = 32;

/// Sets its flag when dropped, however the holder's scope ends (an error, a panic).
pub struct StopOnDrop<'a>(pub &'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What of each file the hints ask for.
#[derive(Clone, Copy)]
pub enum Ask {
    /// Small files whole, larger ones' footers: for readers of the files' columns.
    Files,
    /// The last [`FOOTER`] bytes: for readers of footers.
    Footers,
}

/// Runs `read`, the readers of `paths` (`taken`: the index of the next file they take), with
/// the hints on a thread beside it (see [`read_ahead`]), stopped and joined when `read`
/// returns or panics: nothing waits for ever on readers that gave up, and a panic among the
/// hints is no answer's concern.
pub fn beside<T>(paths: &[PathBuf], taken: &AtomicUsize, ask: Ask, read: impl FnOnce() -> T) -> T {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let stop = StopOnDrop(&done);
        let hints = std::thread::Builder::new().spawn_scoped(scope, || match ask {
            Ask::Files => read_ahead(paths, taken, &done, LEAD),
            Ask::Footers => read_ahead_footers(paths, taken, &done, LEAD),
        });
        let answer = read();
        drop(stop);
        if let Ok(hints) = hints {
            let _ = hints.join();
        }
        answer
    })
}

/// Asks for `paths` in order (small files whole, larger ones' footers), at most `lead` files
/// past `taken` (the index of the next file the readers take) and none the readers have
/// taken, until all are passed, `stop` is set or a run of files were cached already (see
/// [`CACHED_IN_A_ROW`]). It notices `stop` between files: a request already made is finished
/// first.
fn read_ahead(paths: &[PathBuf], taken: &AtomicUsize, stop: &AtomicBool, lead: usize) {
    if cfg!(target_os = "linux") {
        pace(paths, taken, stop, lead, |p| {
            will_need(p, None) == Some(true)
        });
    }
}

/// As [`read_ahead`], asking for each file's last [`FOOTER`] bytes only.
fn read_ahead_footers(paths: &[PathBuf], taken: &AtomicUsize, stop: &AtomicBool, lead: usize) {
    if cfg!(target_os = "linux") {
        pace(paths, taken, stop, lead, |p| {
            will_need(p, Some(FOOTER)) == Some(true)
        });
    }
}

/// Calls `ask` on each of `paths` in order, never more than `lead` past `taken`, and not on a
/// file the readers have already taken; `ask` tells whether the file was cached already, and
/// after [`CACHED_IN_A_ROW`] in a row that were, it ends.
fn pace(
    paths: &[PathBuf],
    taken: &AtomicUsize,
    stop: &AtomicBool,
    lead: usize,
    mut ask: impl FnMut(&Path) -> bool,
) {
    let mut cached = 0;
    for (i, path) in paths.iter().enumerate() {
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let next = taken.load(Ordering::Relaxed);
            if i < next.saturating_add(lead) {
                break;
            }
            // The readers take a small cached file in well under a millisecond.
            std::thread::sleep(Duration::from_micros(200));
        }
        if i >= taken.load(Ordering::Relaxed) {
            cached = if ask(path) { cached + 1 } else { 0 };
            if cached >= CACHED_IN_A_ROW {
                return;
            }
        }
    }
}

/// `POSIX_FADV_WILLNEED` for the file at `path`: its last `tail` bytes, or a small file whole
/// and a larger one's last [`FOOTER`] bytes, unless that range is in the page cache already
/// (`Some(true)`: its first byte, or the file's last for a footer, could be read without
/// waiting). `Some(false)` when it was asked for (not cached, or no telling); `None` when the
/// file was passed over. Opened without blocking: a file swapped for a pipe since it was
/// listed would otherwise wait for a writer.
#[cfg(target_os = "linux")]
fn will_need(path: &Path, tail: Option<u64>) -> Option<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    else {
        return None;
    };
    let about = file.metadata().ok()?;
    let len = about.len();
    if !about.is_file() || len == 0 {
        return None;
    }
    let want = match tail {
        Some(tail) => tail.min(len),
        None if len <= WHOLE_FILE_AT_MOST => len,
        None => FOOTER.min(len),
    };
    // A footer's reader starts at the file's last bytes; a whole file's at its first.
    let probe = if tail.is_some() { len - 1 } else { len - want };
    if is_cached(&file, probe) == Some(true) {
        return Some(true);
    }
    let offset = libc::off_t::try_from(len - want).ok()?;
    let want = libc::off_t::try_from(want).ok()?;
    // SAFETY: a plain system call on a descriptor this function owns; it reads no memory of
    // ours. Its result is a hint's: nothing to do when it fails.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), offset, want, libc::POSIX_FADV_WILLNEED);
    }
    Some(false)
}

/// Whether the byte at `at` of `file` is in the page cache: read without waiting
/// (`preadv2(RWF_NOWAIT)`, which says `EAGAIN` when it would have to). `None` where that cannot
/// tell: another error (a filesystem or kernel without it), or a C library without `preadv2`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn is_cached(file: &std::fs::File, at: u64) -> Option<bool> {
    use std::os::unix::io::AsRawFd;
    let at = libc::off_t::try_from(at).ok()?;
    let mut byte = [0u8; 1];
    let to = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: `to` points at one byte of ours that lives across the call; the descriptor is
    // the caller's, open across it.
    let read = unsafe { libc::preadv2(file.as_raw_fd(), &to, 1, at, libc::RWF_NOWAIT) };
    match read {
        1 => Some(true),
        _ if std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) => Some(false),
        _ => None,
    }
}

/// See the GNU version: without it, it cannot tell.
#[cfg(all(target_os = "linux", not(target_env = "gnu")))]
fn is_cached(_file: &std::fs::File, _at: u64) -> Option<bool> {
    None
}

/// Elsewhere no hint: the readers read as before.
#[cfg(not(target_os = "linux"))]
fn will_need(_path: &Path, _tail: Option<u64>) -> Option<bool> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn paths(n: usize) -> Vec<PathBuf> {
        (0..n).map(|i| PathBuf::from(format!("f{i}"))).collect()
    }

    /// Waits (a minute at most: CI's machine may be busy) until `asked` holds `n` paths, and
    /// gives them.
    fn after(asked: &Mutex<Vec<PathBuf>>, n: usize) -> Vec<PathBuf> {
        for _ in 0..60_000 {
            let got = asked.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        asked.lock().unwrap().clone()
    }

    #[test]
    fn hints_stay_within_the_lead_of_the_readers_and_stop_when_told() {
        let all = paths(10);
        let taken = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let asked = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            // A failed assertion below ends the scope: the hints must stop then too.
            let _stop = StopOnDrop(&stop);
            scope.spawn(|| {
                pace(&all, &taken, &stop, 3, |p| {
                    asked.lock().unwrap().push(p.into());
                    false
                })
            });
            // Nothing taken yet: the first three, and no more however long it waits.
            assert_eq!(after(&asked, 3), all[..3]);
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(asked.lock().unwrap().len(), 3);
            // The readers began five files: hints up to the eighth (index 7), none for the
            // fourth and fifth, which the readers took unhinted.
            taken.store(5, Ordering::Relaxed);
            let hinted = [&all[..3], &all[5..8]].concat();
            assert_eq!(after(&asked, 6), hinted);
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(asked.lock().unwrap().len(), 6);
            // Stopped while waiting (the guard, dropped here): no hint for the last two.
        });
        assert_eq!(
            asked.into_inner().unwrap(),
            [&all[..3], &all[5..8]].concat()
        );
    }

    #[test]
    fn beside_ends_its_hints_however_the_readers_end() {
        // More files than the lead, none there (never found cached): the hints wait for
        // readers that take nothing, until `beside` stops them.
        let missing: Vec<PathBuf> = (0..LEAD + 10)
            .map(|i| PathBuf::from(format!("/nonexistent-vaten-test/{i}.parquet")))
            .collect();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let taken = AtomicUsize::new(0);
            let answer = beside(&missing, &taken, Ask::Files, || 42);
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                beside(&missing, &taken, Ask::Footers, || {
                    panic!("a reader's panic")
                })
            }));
            done.send((answer, panicked.is_err())).unwrap();
        });
        let got = finished
            .recv_timeout(Duration::from_secs(60))
            .expect("the hints outlived their readers");
        assert_eq!(got, (42, true));
    }

    #[test]
    fn no_hint_for_a_file_the_readers_have_taken() {
        let all = paths(6);
        let asked = Mutex::new(Vec::new());
        // The readers are at the fourth file (index 3): hints for it and the two after it.
        pace(
            &all,
            &AtomicUsize::new(3),
            &AtomicBool::new(false),
            3,
            |p| {
                asked.lock().unwrap().push(p.to_path_buf());
                false
            },
        );
        assert_eq!(asked.into_inner().unwrap(), all[3..]);
    }

    /// The indices of the files of 100 asked for when `cached(i)` tells whether file i was
    /// cached, the readers far behind.
    fn asked_of_100(cached: impl Fn(usize) -> bool) -> Vec<usize> {
        let all = paths(100);
        let mut asked = Vec::new();
        pace(
            &all,
            &AtomicUsize::new(0),
            &AtomicBool::new(false),
            1_000,
            |p| {
                let i: usize = p.to_str().unwrap()[1..].parse().unwrap();
                asked.push(i);
                cached(i)
            },
        );
        asked
    }

    #[test]
    fn hints_end_after_a_run_of_files_found_cached() {
        // Every file cached: the first 32, then none.
        assert_eq!(asked_of_100(|_| true), (0..32).collect::<Vec<_>>());
        // One in 31 not cached: the run never reaches 32, every file asked for.
        assert_eq!(asked_of_100(|i| i % 31 != 30), (0..100).collect::<Vec<_>>());
        // The first 40 not cached: then 40 to 71, and no more.
        assert_eq!(asked_of_100(|i| i >= 40), (0..72).collect::<Vec<_>>());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_pipe_a_folder_or_a_missing_file_is_passed_over_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let pipe = dir.path().join("pipe.parquet");
        let name = std::ffi::CString::new(pipe.to_str().unwrap()).unwrap();
        // SAFETY: a C string that lives across the call.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        let small = dir.path().join("small.parquet");
        std::fs::write(&small, vec![7u8; 100_000]).unwrap();
        let large = dir.path().join("large.parquet");
        std::fs::write(&large, vec![7u8; 2 << 20]).unwrap();
        let empty = dir.path().join("empty.parquet");
        std::fs::write(&empty, b"").unwrap();
        let all = vec![
            pipe,
            dir.path().to_path_buf(),
            dir.path().join("gone.parquet"),
            small,
            large,
            empty,
        ];
        // What cannot be hinted is passed over; a file is hinted or found cached.
        let (done, finished) = std::sync::mpsc::channel();
        let each = all.clone();
        std::thread::spawn(move || {
            let got: Vec<bool> = each.iter().map(|p| will_need(p, None).is_some()).collect();
            done.send(got).unwrap();
        });
        let got = finished
            .recv_timeout(Duration::from_secs(60))
            .expect("waited on the pipe");
        assert_eq!(got, [false, false, false, true, true, false]);
        // Opened for reading the usual way, the pipe would wait for a writer for ever.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            read_ahead(&all, &AtomicUsize::new(0), &AtomicBool::new(false), LEAD);
            read_ahead_footers(&all, &AtomicUsize::new(0), &AtomicBool::new(false), LEAD);
            done.send(()).unwrap();
        });
        assert!(
            finished.recv_timeout(Duration::from_secs(60)).is_ok(),
            "the hints waited on the pipe"
        );
    }
}
