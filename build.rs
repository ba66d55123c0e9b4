//! Link settings only. On Linux the zstd compression contexts that Parquet writers make and
//! drop by the hundred thousand are routed through a small pool (`src/zstd_contexts.rs`):
//! `--wrap` sends zstd-sys's `ZSTD_createCCtx` / `ZSTD_freeCCtx` callers to the pool, and `-u`
//! makes the linker take the pool's functions from vaten's library before it needs them.
//! Both go through the C compiler driver (`-Wl,`), as Rust links on Linux by default.
//! `VATEN_NO_ZSTD_POOL` set at build time leaves zstd as it is (a linker that is called
//! directly, or for comparison).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=VATEN_NO_ZSTD_POOL");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if linux && std::env::var_os("VATEN_NO_ZSTD_POOL").is_none() {
        println!("cargo:rustc-cfg=zstd_pool");
        for symbol in ["ZSTD_createCCtx", "ZSTD_freeCCtx"] {
            println!("cargo:rustc-link-arg=-Wl,--wrap={symbol}");
            println!("cargo:rustc-link-arg=-Wl,-u,__wrap_{symbol}");
        }
    }
    println!("cargo:rustc-check-cfg=cfg(zstd_pool)");
}
