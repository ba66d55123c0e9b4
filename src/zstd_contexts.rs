//! zstd compression contexts kept for reuse.
//!
//! The `parquet` crate makes a zstd compression context for every column chunk it writes and
//! drops it with the chunk: a full recompute of a year writes some 15,000 files, hundreds of
//! thousands of contexts. Making one asks the CPU for its features (`cpuid`, twice), and in a
//! virtual machine each `cpuid` traps to the hypervisor (12–14 µs measured here): 3–4 % of a
//! full recompute's and of a nightly run's CPU went to `ZSTD_createCCtx` (`perf`). The linker
//! routes zstd-sys's `ZSTD_createCCtx` / `ZSTD_freeCCtx` here (`--wrap`, see `build.rs`): a
//! freed context is reset to its just-made state (`ZSTD_reset_session_and_parameters`: default
//! parameters, no dictionary) and kept, up to [`KEPT`], for the next one asked for. What is
//! compressed does not change; only where a context's memory comes from.

use std::ffi::c_void;
use std::sync::Mutex;

/// Contexts kept: about the column chunks written at once (a file's columns, on each writer
/// thread), few enough that their memory (a few hundred KiB each at the lake's level 3) does
/// not matter.
const KEPT: usize = 16;

/// `ZSTD_reset_session_and_parameters` (zstd.h).
const RESET_SESSION_AND_PARAMETERS: i32 = 3;

extern "C" {
    fn __real_ZSTD_createCCtx() -> *mut c_void;
    fn __real_ZSTD_freeCCtx(cctx: *mut c_void) -> usize;
    fn ZSTD_CCtx_reset(cctx: *mut c_void, reset: i32) -> usize;
    fn ZSTD_isError(code: usize) -> u32;
}

/// Reset contexts, by address (a raw pointer is not `Send`).
struct Pool(Mutex<Vec<usize>>);

static POOL: Pool = Pool(Mutex::new(Vec::new()));

impl Pool {
    /// A kept context, or a new one.
    fn take(&self) -> *mut c_void {
        let kept = self.0.lock().ok().and_then(|mut pool| pool.pop());
        match kept {
            Some(cctx) => cctx as *mut c_void,
            // SAFETY: zstd's own constructor, no arguments.
            None => unsafe { __real_ZSTD_createCCtx() },
        }
    }

    /// Keeps `cctx` once reset; `false` (the caller frees it) when enough are kept or it
    /// cannot be reset.
    ///
    /// # Safety
    /// `cctx` is a live compression context its owner gives up.
    unsafe fn keep(&self, cctx: *mut c_void) -> bool {
        let reset = ZSTD_CCtx_reset(cctx, RESET_SESSION_AND_PARAMETERS);
        if ZSTD_isError(reset) != 0 {
            return false;
        }
        match self.0.lock() {
            Ok(mut pool) if pool.len() < KEPT => {
                pool.push(cctx as usize);
                true
            }
            _ => false,
        }
    }
}

#[no_mangle]
pub extern "C" fn __wrap_ZSTD_createCCtx() -> *mut c_void {
    POOL.take()
}

/// 0, zstd's "no error", for a context kept or freed.
#[no_mangle]
pub extern "C" fn __wrap_ZSTD_freeCCtx(cctx: *mut c_void) -> usize {
    if cctx.is_null() {
        return 0;
    }
    #[cfg(test)]
    tests::FREED_HERE.with(|n| n.set(n.get() + 1));
    // SAFETY: ZSTD_freeCCtx's caller hands over a live context and never uses it again.
    if unsafe { POOL.keep(cctx) } {
        return 0;
    }
    // SAFETY: as above; not kept, so freed exactly once.
    unsafe { __real_ZSTD_freeCCtx(cctx) }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        fn ZSTD_createCCtx() -> *mut c_void;
        fn ZSTD_freeCCtx(cctx: *mut c_void) -> usize;
        fn ZSTD_CCtx_setParameter(cctx: *mut c_void, param: i32, value: i32) -> usize;
        fn ZSTD_compress2(
            cctx: *mut c_void,
            dst: *mut c_void,
            dst_capacity: usize,
            src: *const c_void,
            src_size: usize,
        ) -> usize;
        fn ZSTD_compressBound(src_size: usize) -> usize;
    }

    /// `ZSTD_c_compressionLevel` and `ZSTD_c_checksumFlag` (zstd.h).
    const LEVEL: i32 = 100;
    const CHECKSUM: i32 = 201;

    fn compress(cctx: *mut c_void, data: &[u8]) -> Vec<u8> {
        // SAFETY: a live context, buffers of the sizes given.
        unsafe {
            let mut out = vec![0u8; ZSTD_compressBound(data.len())];
            let n = ZSTD_compress2(
                cctx,
                out.as_mut_ptr().cast(),
                out.len(),
                data.as_ptr().cast(),
                data.len(),
            );
            assert_eq!(ZSTD_isError(n), 0);
            out.truncate(n);
            out
        }
    }

    fn data() -> Vec<u8> {
        (0..65_536u32)
            .flat_map(|i| format!("871687120000{:06},{},", i % 97, i * 7 % 1000).into_bytes())
            .collect()
    }

    #[test]
    fn a_kept_context_compresses_as_a_new_one_does() {
        let data = data();
        // SAFETY: contexts made and freed by zstd itself, used while live.
        let fresh = unsafe {
            let cctx = __real_ZSTD_createCCtx();
            let out = compress(cctx, &data);
            __real_ZSTD_freeCCtx(cctx);
            out
        };
        let pool = Pool(Mutex::new(Vec::new()));
        let cctx = pool.take();
        // Another level and a checksum: a kept context must forget both.
        // SAFETY: a live context.
        unsafe {
            assert_eq!(ZSTD_isError(ZSTD_CCtx_setParameter(cctx, LEVEL, 19)), 0);
            assert_eq!(ZSTD_isError(ZSTD_CCtx_setParameter(cctx, CHECKSUM, 1)), 0);
        }
        let tuned = compress(cctx, &data);
        assert_ne!(tuned, fresh, "the parameters changed the output");
        // SAFETY: given up here, taken back below.
        assert!(unsafe { pool.keep(cctx) });
        let again = pool.take();
        assert_eq!(again, cctx, "the kept context was handed out again");
        assert_eq!(compress(again, &data), fresh);
        // SAFETY: given up for good.
        unsafe { __real_ZSTD_freeCCtx(again) };
    }

    #[test]
    fn past_the_kept_number_contexts_are_freed() {
        let pool = Pool(Mutex::new(Vec::new()));
        let made: Vec<*mut c_void> = (0..=KEPT).map(|_| pool.take()).collect();
        // SAFETY: each given up once; the one not kept is freed here.
        let kept: Vec<bool> = made.iter().map(|&c| unsafe { pool.keep(c) }).collect();
        assert_eq!(kept.iter().filter(|k| **k).count(), KEPT);
        assert!(!kept[KEPT]);
        unsafe { __real_ZSTD_freeCCtx(made[KEPT]) };
        let left: Vec<usize> = std::mem::take(&mut *pool.0.lock().unwrap());
        for cctx in left {
            // SAFETY: kept contexts, freed once.
            unsafe { __real_ZSTD_freeCCtx(cctx as *mut c_void) };
        }
    }

    thread_local! {
        /// Contexts this thread freed through the pool.
        pub static FREED_HERE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[test]
    fn the_linker_sends_zstd_s_own_calls_to_the_pool() {
        // Through the names zstd-sys's callers use (`build.rs` wraps them): without the wrap
        // zstd frees the context itself and this thread's count stays.
        let before = FREED_HERE.with(|n| n.get());
        // SAFETY: a context from zstd's constructor, freed once.
        unsafe {
            let cctx = ZSTD_createCCtx();
            assert!(!cctx.is_null());
            assert_eq!(ZSTD_freeCCtx(cctx), 0);
        }
        assert_eq!(FREED_HERE.with(|n| n.get()), before + 1);
    }
}
