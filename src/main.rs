fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    vaten::cli::main()
}

/// glibc gives threads that allocate at the same time arenas of their own (up to eight per
/// core), and memory freed in one arena is not reused by another. The transform computes two
/// cables side by side among Polars' threads and the lake's writer threads: with glibc's
/// default a full recompute of a year peaked at 1,678 MiB instead of 1,206 MiB with two arenas,
/// for the same time (`docs/benchmarks.md`). `MALLOC_ARENA_MAX`, or `glibc.malloc.arena_max`
/// in `GLIBC_TUNABLES`, in the environment still decides.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    let tuned = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("arena_max"));
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() && !tuned {
        // SAFETY: mallopt only sets a parameter of the allocator; this runs first thing in
        // main, before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
