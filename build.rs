//! Link settings only. On Linux the zstd compression contexts that Parquet writers make and
//! drop by the hundred thousand are routed through a small pool (`src/zstd_contexts.rs`):
//! `--wrap` sends zstd-sys's `ZSTD_createCCtx` / `ZSTD_freeCCtx` callers to the pool, and `-u`
//! makes the linker take the pool's functions from vaten's library before it needs them.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        for symbol in ["ZSTD_createCCtx", "ZSTD_freeCCtx"] {
            println!("cargo:rustc-link-arg=-Wl,--wrap={symbol}");
            println!("cargo:rustc-link-arg=-Wl,-u,__wrap_{symbol}");
        }
    }
}
