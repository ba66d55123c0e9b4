//! zstd compression contexts kept for reuse.
//!
//! The `parquet` crate makes a zstd compression context for every column chunk it writes and
//! drops it with the chunk: a full recompute of a year writes some 15,000 files, hundreds of
//! thousands of contexts. Making one asks the CPU for its features (`cpuid`, twice), and in a
//! virtual machine each `cpuid` traps to the hypervisor (12–14 µs measured here): 3–4 % of a
//! full recompute's and of a nightly run's CPU went to `ZSTD_createCCtx` (`perf`). The linker
//! routes zstd-sys's `ZSTD_createCCtx` / `ZSTD_freeCCtx` here (`--wrap`, see `build.rs`): a
//! freed context that this pool made is reset (`ZSTD_reset_session_and_parameters`: default
//! parameters, no dictionary, no frame in progress; its workspace stays allocated) and kept,
//! up to [`KEPT`], for the next one asked for. What is compressed does not change; only where
//! a context's memory comes from. Contexts made otherwise (a custom allocator, a static
//! workspace) are left to zstd, and so is everything when zstd was built multithreaded (a
//! reset keeps a context's worker threads).

use std::ffi::c_void;
use std::sync::Mutex;

/// Contexts kept: about the column chunks written at once (a file's columns, on each writer
/// thread), few enough that their memory (under a MiB each at the lake's level 3; 16 of them
/// raised a nightly run's peak by 7–10 MiB) does not matter.
const KEPT: usize = 16;

/// `ZSTD_c_nbWorkers` (zstd.h): its upper bound is 0 unless zstd was built multithreaded.
const NB_WORKERS: i32 = 400;

/// `ZSTD_bounds` (zstd.h).
#[repr(C)]
struct Bounds {
    error: usize,
    lower: i32,
    upper: i32,
}

/// `ZSTD_reset_session_and_parameters` (zstd.h).
const RESET_SESSION_AND_PARAMETERS: i32 = 3;

extern "C" {
    fn __real_ZSTD_createCCtx() -> *mut c_void;
    fn __real_ZSTD_freeCCtx(cctx: *mut c_void) -> usize;
    fn ZSTD_CCtx_reset(cctx: *mut c_void, reset: i32) -> usize;
    fn ZSTD_isError(code: usize) -> u32;
    fn ZSTD_cParam_getBounds(param: i32) -> Bounds;
}

/// Whether contexts may be kept: not when zstd was built multithreaded.
fn pooling() -> bool {
    static POOLING: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *POOLING.get_or_init(|| {
        // SAFETY: asks zstd for a parameter's bounds; no state.
        let bounds = unsafe { ZSTD_cParam_getBounds(NB_WORKERS) };
        // SAFETY: ZSTD_isError only reads the code.
        unsafe { ZSTD_isError(bounds.error) == 0 && bounds.lower == 0 && bounds.upper == 0 }
    })
}

/// Addresses (a raw pointer is not `Send`) of the contexts this pool made and has not freed,
/// and of those among them that are reset and kept.
#[derive(Default)]
struct Contexts {
    made: std::collections::HashSet<usize>,
    kept: Vec<usize>,
}

struct Pool(Mutex<Option<Contexts>>);

static POOL: Pool = Pool::new();

impl Pool {
    const fn new() -> Self {
        Pool(Mutex::new(None))
    }

    /// A kept context, or a new one.
    fn take(&self) -> *mut c_void {
        let Ok(mut guard) = self.0.lock() else {
            // SAFETY: zstd's own constructor, no arguments.
            return unsafe { __real_ZSTD_createCCtx() };
        };
        let contexts = guard.get_or_insert_with(Contexts::default);
        if let Some(cctx) = contexts.kept.pop() {
            return cctx as *mut c_void;
        }
        // SAFETY: as above.
        let cctx = unsafe { __real_ZSTD_createCCtx() };
        if !cctx.is_null() {
            contexts.made.insert(cctx as usize);
        }
        cctx
    }

    /// Keeps `cctx` once reset; `false` (the caller frees it) for a context the pool did not
    /// make, when enough are kept, or when it cannot be reset.
    ///
    /// # Safety
    /// `cctx` is a live compression context its owner gives up.
    unsafe fn keep(&self, cctx: *mut c_void) -> bool {
        let Ok(mut guard) = self.0.lock() else {
            return false;
        };
        let Some(contexts) = guard.as_mut() else {
            return false;
        };
        if !contexts.made.contains(&(cctx as usize)) {
            return false;
        }
        let reset = ZSTD_CCtx_reset(cctx, RESET_SESSION_AND_PARAMETERS);
        if ZSTD_isError(reset) == 0 && contexts.kept.len() < KEPT {
            contexts.kept.push(cctx as usize);
            return true;
        }
        // Freed by the caller: no longer one of ours (the address may come back for another).
        contexts.made.remove(&(cctx as usize));
        false
    }
}

#[no_mangle]
pub extern "C" fn __wrap_ZSTD_createCCtx() -> *mut c_void {
    if !pooling() {
        // SAFETY: zstd's own constructor, no arguments.
        return unsafe { __real_ZSTD_createCCtx() };
    }
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
        let pool = Pool::new();
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
        let pool = Pool::new();
        let made: Vec<*mut c_void> = (0..=KEPT).map(|_| pool.take()).collect();
        // SAFETY: each given up once; the one not kept is freed here.
        let kept: Vec<bool> = made.iter().map(|&c| unsafe { pool.keep(c) }).collect();
        assert_eq!(kept.iter().filter(|k| **k).count(), KEPT);
        assert!(!kept[KEPT]);
        unsafe { __real_ZSTD_freeCCtx(made[KEPT]) };
        let left = pool.0.lock().unwrap().take().unwrap();
        assert_eq!(left.made.len(), KEPT, "the freed one is forgotten");
        for cctx in left.kept {
            // SAFETY: kept contexts, freed once.
            unsafe { __real_ZSTD_freeCCtx(cctx as *mut c_void) };
        }
    }

    #[test]
    fn a_context_the_pool_did_not_make_is_not_kept() {
        let pool = Pool::new();
        let ours = pool.take();
        // SAFETY: a context from zstd's constructor directly, given up once and freed here.
        unsafe {
            let other = __real_ZSTD_createCCtx();
            assert!(!pool.keep(other));
            __real_ZSTD_freeCCtx(other);
            assert!(pool.keep(ours));
        }
        let left = pool.0.lock().unwrap().take().unwrap();
        for cctx in left.kept {
            // SAFETY: kept contexts, freed once.
            unsafe { __real_ZSTD_freeCCtx(cctx as *mut c_void) };
        }
    }

    #[test]
    fn this_zstd_is_single_threaded_so_contexts_are_kept() {
        assert!(pooling());
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
