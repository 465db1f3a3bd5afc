#![no_main]
//! `cargo fuzz run lock`: see `cairn_fuzz` (fuzz/src) for the input layout and checks.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cairn_fuzz::json::lock(data));
