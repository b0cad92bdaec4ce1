//! The Python library (aiodiskdb 0.2.3), as far as a crash image of ours is concerned: what
//! its constructor with default options does to a directory (drop `.tmp.{prefix}*.dat`,
//! apply a pending `.checkpoint-*` entry by entry with its checks), then a session that
//! appends items to the last data file and stops cleanly. Modelled on the library's code
//! (`AioDiskDB.__init__`, `_apply_checkpoint`, `_recover_files_from_checkpoint`,
//! `_setup_current_buffer`, `_save_buffer_to_disk`); the live tests in `tests/it/compat.rs`
//! run the real one.

use std::path::Path;

use super::sim::SimFs;
use crate::config::Config;
use crate::format::{Header, HEADER_BYTES, HEADER_LEN, PY_CHECKPOINT_HASH, PY_CHECKPOINT_PREFIX};
use crate::fs::Fs;
use crate::location::ItemLocation;

/// The Python library's default `max_file_size` (128 MB): its header check requires the
/// trim offset to be below it, less the header.
const PY_MAX_FILE_SIZE: u64 = 128 << 20;

/// What a Python session did to the directory.
#[derive(Debug)]
pub(crate) enum PyOutcome {
    /// Its constructor or start raised: it appended nothing.
    Refused(String),
    /// It appended these items (at their logical locations) and stopped cleanly.
    Appended(Vec<(ItemLocation, Vec<u8>)>),
}

fn read_all(fs: &SimFs, path: &Path) -> std::io::Result<Vec<u8>> {
    let f = fs.open_ro(path)?;
    let mut out = vec![0u8; usize::try_from(f.len()?).expect("small")];
    f.read_exact_at(&mut out, 0)?;
    Ok(out)
}

fn write_all(fs: &SimFs, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let f = fs.open_rw(path)?;
    f.set_len(0)?;
    f.write_all_at(bytes, 0)
}

/// Python's `name.endswith('.dat')`, case-sensitive.
fn is_dat(name: &str) -> bool {
    name.as_bytes().ends_with(b".dat")
}

/// `_is_file_header`.
fn is_file_header(bytes: &[u8], genesis: [u8; 4]) -> bool {
    bytes.len() == HEADER_BYTES
        && Header::decode(bytes, genesis)
            .is_ok_and(|h| u64::from(h.trim_offset) < PY_MAX_FILE_SIZE - HEADER_LEN)
}

/// Little-endian integer of up to 8 bytes (Python's `int.from_bytes(.., 'little')`).
fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// `_get_filename_by_idx`: the prefix, then the index zero-filled to at least `padding`.
fn py_name(cfg: &Config, index: u64) -> String {
    format!(
        "{}{:0width$}.dat",
        cfg.naming.prefix,
        index,
        width = cfg.naming.padding
    )
}

/// `_recover_files_from_checkpoint` for one entry (the slices of a trailing partial entry
/// are shorter, as in Python).
fn apply_entry(fs: &SimFs, cfg: &Config, e: &[u8]) -> Result<(), String> {
    let field = |from: usize, to: usize| &e[from.min(e.len())..to.min(e.len())];
    let (index, size) = (le(field(0, 6)), le(field(6, 12)));
    let (last, hash) = (field(12, 20), field(20, 52));
    let path = cfg.path.join(py_name(cfg, index));
    let mut data = read_all(fs, &path).map_err(|e| format!("copy {}: {e}", path.display()))?;
    if !is_file_header(&data[..HEADER_BYTES.min(data.len())], cfg.genesis) {
        return Err(format!("{}: invalid file header", path.display()));
    }
    let at = size
        .checked_sub(last.len() as u64)
        .ok_or_else(|| "negative seek position".to_owned())?;
    let at = usize::try_from(at).expect("small");
    // Python truncates its copy first, then compares; on a mismatch it keeps the file.
    if data.get(at.min(data.len())..(at + last.len()).min(data.len())) != Some(last) {
        return Err(format!("{}: file corrupted", path.display()));
    }
    data.truncate(usize::try_from(size).expect("within the file"));
    if hash != PY_CHECKPOINT_HASH {
        return Err(format!("{}: invalid file hash recovered", path.display()));
    }
    write_all(fs, &path, &data).map_err(|e| e.to_string())
}

/// The constructor (`clean_stale_data=True`) and `_setup_current_buffer`: returns the
/// current file's index, its item bytes (Python's next position) and its trim offset.
fn start(fs: &SimFs, cfg: &Config) -> Result<Option<(u64, u64, u32)>, String> {
    let prefix = &cfg.naming.prefix;
    for name in fs.names() {
        if name.starts_with(&format!(".tmp.{prefix}")) && is_dat(&name) {
            fs.remove(&cfg.path.join(&name))
                .map_err(|e| e.to_string())?;
        }
    }
    let checkpoints: Vec<String> = fs
        .names()
        .into_iter()
        .filter(|n| n.starts_with(PY_CHECKPOINT_PREFIX))
        .collect();
    if checkpoints.len() > 1 {
        return Err("multiple checkpoints, unrecoverable error".into());
    }
    if let Some(name) = checkpoints.first() {
        let path = cfg.path.join(name);
        let raw = read_all(fs, &path).map_err(|e| e.to_string())?;
        if raw.is_empty() {
            return Err("assert checkpoint: empty checkpoint file".into());
        }
        for entry in raw.chunks(52) {
            apply_entry(fs, cfg, entry)?;
        }
        fs.remove(&path).map_err(|e| e.to_string())?;
    }
    let mut names = fs.names();
    names.sort();
    if names.is_empty() {
        return Ok(None);
    }
    let Some(last) = names
        .iter()
        .rfind(|n| n.starts_with(prefix.as_str()) && is_dat(n))
    else {
        return Err("IndexError: no data file among the directory's files".into());
    };
    let digits = &last[prefix.len()..last.len() - 4];
    let index: u64 = digits
        .parse()
        .map_err(|_| format!("ValueError: int({digits:?})"))?;
    let data = read_all(fs, &cfg.path.join(last)).map_err(|e| e.to_string())?;
    let size = (data.len() as u64)
        .checked_sub(HEADER_LEN)
        .ok_or("invalid file size")?;
    if !is_file_header(&data[..HEADER_BYTES], cfg.genesis) {
        return Err(format!("{last}: invalid data file"));
    }
    let trim = Header::decode(&data[..HEADER_BYTES], cfg.genesis)
        .expect("checked")
        .trim_offset;
    Ok(Some((index, size, trim)))
}

/// A Python session on the directory: start, append `items` (one flush), stop.
pub(crate) fn python_session(fs: &SimFs, cfg: &Config, items: &[Vec<u8>]) -> PyOutcome {
    let current = match start(fs, cfg) {
        Ok(c) => c,
        Err(why) => return PyOutcome::Refused(why),
    };
    let (index, mut size, trim) = current.unwrap_or((0, 0, 0));
    let path = cfg.path.join(py_name(cfg, index));
    let file = if current.is_some() {
        fs.open_rw(&path)
    } else {
        fs.create_new(&path).and_then(|f| {
            f.write_all_at(
                &Header {
                    genesis: cfg.genesis,
                    trim_offset: 0,
                }
                .encode(),
                0,
            )?;
            Ok(f)
        })
    };
    let file = file.expect("the simulated file system works");
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        file.write_all_at(item, HEADER_LEN + size)
            .expect("the simulated file system works");
        // Python hands out `size` as the position, which is right only for a file that
        // was never ltrimmed: the bytes are at logical position `trim + size`.
        let loc = ItemLocation {
            index: u32::try_from(index).expect("an index of ours"),
            position: u32::try_from(u64::from(trim) + size).expect("small"),
            size: u32::try_from(item.len()).expect("small"),
        };
        out.push((loc, item.clone()));
        size += item.len() as u64;
    }
    PyOutcome::Appended(out)
}
