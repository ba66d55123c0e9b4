//! Making the lake's files durable: an fsync per file or folder, or, for a change of thousands
//! of files, one `syncfs` of their file system where that is as safe.
//!
//! One fsync per staged file cost a year's full recompute about a sixth of its time (each
//! waits for the disk's cache flush). `syncfs` flushes a whole file system at once, but it is
//! as good as an fsync of each file only where it reports the errors an fsync would: from
//! Linux 5.8 write-back errors met since the descriptor was opened (before, only the block
//! device's), from 5.17 also the file system's own failure to commit; and only on file systems
//! that make their data durable by it (a FUSE mount, for one, is not asked to). Everywhere
//! else each file is fsynced as before.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};

/// The first kernel whose `syncfs` reports both write-back errors (5.8) and the file system's
/// own failure to commit (5.17), as fsyncs would.
const SINCE: (u32, u32) = (5, 17);

/// Fsyncs a folder: its entries (files renamed or created in it) survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::lake(dir, e))
}

/// Whether one [`sync_file_system`] through `handle` may stand in for an fsync of each file
/// or folder written on its file system since `handle` was opened: Linux 5.17 or later, and
/// ext2/3/4, XFS, Btrfs or tmpfs (where nothing outlives the machine anyway) under it.
#[cfg(target_os = "linux")]
pub(crate) fn can_sync_at_once(handle: &File) -> bool {
    use std::os::fd::AsRawFd;
    const EXT4: u32 = 0xEF53;
    const XFS: u32 = 0x5846_5342;
    const BTRFS: u32 = 0x9123_683E;
    const TMPFS: u32 = 0x0102_1994;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|r| release(&r));
    if kernel.is_none_or(|k| k < SINCE) {
        return false;
    }
    // SAFETY: `stats` is written by the call; `handle` is an open descriptor throughout.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(handle.as_raw_fd(), &mut stats) } != 0 {
        return false;
    }
    // The field's type differs between C libraries and word sizes (a signed 32-bit one would
    // turn Btrfs' number negative): its low 32 bits are the magic number.
    #[allow(clippy::unnecessary_cast)]
    let kind = stats.f_type as u32;
    [EXT4, XFS, BTRFS, TMPFS].contains(&kind)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn can_sync_at_once(_handle: &File) -> bool {
    false
}

/// A kernel release's major and minor number (`6.18.44-fc` is 6.18).
#[cfg(any(target_os = "linux", test))]
fn release(text: &str) -> Option<(u32, u32)> {
    let mut numbers = text.trim().split(|c: char| !c.is_ascii_digit());
    let major = numbers.next()?.parse().ok()?;
    let minor = numbers.next()?.parse().ok()?;
    Some((major, minor))
}

/// Makes everything written on the file system of `handle` durable, in one `syncfs` (only
/// where [`can_sync_at_once`] said so). It also waits for whatever else the machine wrote
/// there: small changes keep their fsyncs.
#[cfg(target_os = "linux")]
pub(crate) fn sync_file_system(handle: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    #[cfg(test)]
    tests::SYNCED_AT_ONCE.with(|n| n.set(n.get() + 1));
    // SAFETY: `handle` is an open descriptor for the whole call.
    if unsafe { libc::syncfs(handle.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Not redundant: the kernel writes some metadata blocks after the file system's own sync
    // (ext4 without a journal: after its only cache flush), and a file system shut down
    // answers `syncfs` with success; an fsync of the handle flushes the disk's cache again and
    // fails there.
    handle.sync_all()
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn sync_file_system(_handle: &File) -> std::io::Result<()> {
    Err(std::io::Error::other("syncfs is Linux's")) // never called: can_sync_at_once is false
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    thread_local! {
        /// How many times this thread synced a file system at once.
        pub(crate) static SYNCED_AT_ONCE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[test]
    fn kernel_releases_read_as_major_and_minor() {
        assert_eq!(release("6.18.44-fc-v669\n"), Some((6, 18)));
        assert_eq!(release("5.4.0-150-generic"), Some((5, 4)));
        assert_eq!(release("4.18.0-553.el8_10.x86_64"), Some((4, 18)));
        assert_eq!(release("Linux"), None);
        assert_eq!(release(""), None);
        // Compared as numbers, not text: 5.10 is later than 5.8.
        assert!(release("5.17.0").unwrap() >= SINCE);
        assert!(release("6.1.0-rc3").unwrap() >= SINCE);
        assert!(release("5.16.1").unwrap() < SINCE);
        assert!(release("5.8.0").unwrap() < SINCE);
    }
}
