//! Fuzz target: `ItemLocation` decoding and parsing. See `common/location.rs`.
#![no_main]

#[path = "../common/location.rs"]
mod location;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(violation) = location::run(data) {
        panic!("location: {violation}");
    }
});
