//! Fuzz target: recovery over arbitrary directory contents. See `common/open_dir.rs`.
#![no_main]

#[path = "../common/open_dir.rs"]
mod open_dir;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(violation) = open_dir::run(data) {
        panic!("open_dir: {violation}");
    }
});
