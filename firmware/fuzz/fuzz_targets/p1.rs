#![no_main]
//! Any bytes into the P1 parser: a telegram or an error, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vaten_firmware::p1::parse(data);
});
