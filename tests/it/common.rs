//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use aiodiskdb::Event;
use tokio::sync::broadcast;

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The default genesis bytes of aiodiskdb 0.2.x.
pub(crate) const GENESIS: [u8; 4] = [0x0d, 0xce, 0x8f, 0x37];

/// Length of a data file header.
pub(crate) const HEADER_LEN: u64 = 24;

/// Reads a whole data file.
pub(crate) fn file_bytes(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

/// Length of a file in bytes.
pub(crate) fn file_len(dir: &Path, name: &str) -> u64 {
    std::fs::metadata(dir.join(name))
        .unwrap_or_else(|e| panic!("stat {name}: {e}"))
        .len()
}

/// The 24-byte header aiodiskdb 0.2.x writes, with the default genesis bytes.
pub(crate) fn header(trim_offset: u32) -> Vec<u8> {
    header_with(GENESIS, trim_offset)
}

/// The 24-byte header with the given genesis bytes.
pub(crate) fn header_with(genesis: [u8; 4], trim_offset: u32) -> Vec<u8> {
    let mut h = genesis.to_vec();
    h.extend_from_slice(&trim_offset.to_le_bytes());
    h.extend_from_slice(&[0u8; 16]);
    h
}

/// Names of the `.dat` files in `dir`, sorted.
pub(crate) fn data_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| Path::new(n).extension() == Some("dat".as_ref()) && !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

/// Every regular file in `dir` with its bytes.
pub(crate) fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            let name = e.file_name().into_string().unwrap();
            let bytes = std::fs::read(e.path()).unwrap();
            (name, bytes)
        })
        .collect()
}

/// Every non-hidden file in `dir` with its bytes (the data files and foreign files, not our
/// state file).
pub(crate) fn visible_snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut s = snapshot(dir);
    s.retain(|name, _| !name.starts_with('.'));
    s
}

/// A deterministic item of `len` bytes, different for each `tag`.
pub(crate) fn item(tag: u32, len: usize) -> Vec<u8> {
    let mut x = tag.wrapping_mul(0x9e37_79b9) ^ 0x5bd1_e995;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// Receives events until one matches `pick`, skipping the others; fails after 5 s.
pub(crate) async fn next_event<T>(
    rx: &mut broadcast::Receiver<Event>,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> Result<T, Box<dyn std::error::Error>> {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await??;
        if let Some(t) = pick(&ev) {
            return Ok(t);
        }
    }
}

/// Polls `cond` every few milliseconds of real time until it holds; fails after 5 s.
/// Not for tests on a paused clock.
pub(crate) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) -> TestResult {
    let start = std::time::Instant::now();
    while !cond() {
        if start.elapsed() > Duration::from_secs(5) {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// Deterministic item bytes for item number `id`: a splitmix64 stream, so that different
/// ids never share content and a process can regenerate another's items from `(id, len)`
/// alone. `content(id, a)` is a prefix of `content(id, b)` for `a < b`.
pub(crate) fn content(id: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    splitmix_fill(
        id.wrapping_mul(0xd6e8_feb8_6659_fd93) ^ 0x9e37_79b9_7f4a_7c15,
        len,
        &mut out,
    );
    out
}

/// Replaces `out` with `len` bytes of the splitmix64 stream that starts at `state`.
pub(crate) fn splitmix_fill(state: u64, len: usize, out: &mut Vec<u8>) {
    out.clear();
    let mut x = state;
    while out.len() < len {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let n = (len - out.len()).min(8);
        out.extend_from_slice(&z.to_le_bytes()[..n]);
    }
}

/// The arguments that make this test binary (`std::env::current_exe()`) run exactly one
/// test, `name` (e.g. `"kill::child_workload"`), uncaptured: the re-exec trick for running
/// a workload in a real child process. The child test must be a no-op unless an
/// environment variable the parent sets tells it to work.
pub(crate) fn reexec_args(name: &str) -> [&str; 4] {
    [name, "--exact", "--nocapture", "--test-threads=1"]
}

/// Parses an environment variable, or returns `default` when it is unset.
pub(crate) fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v:?} does not parse")),
        Err(_) => Ok(default),
    }
}
