//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Reads a whole data file.
pub fn file_bytes(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

/// The 24-byte header aiodiskdb 0.2.x writes, with the default genesis bytes.
pub fn header(trim_offset: u32) -> Vec<u8> {
    let mut h = vec![0x0d, 0xce, 0x8f, 0x37];
    h.extend_from_slice(&trim_offset.to_le_bytes());
    h.extend_from_slice(&[0u8; 16]);
    h
}

/// Names of the `.dat` files in `dir`, sorted.
pub fn data_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".dat") && !n.starts_with('.'))
        .collect();
    v.sort();
    v
}
