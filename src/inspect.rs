//! A read-only look at a data directory, for operators (`aiodiskdb info` and `check`):
//! the data files, the commit state, whether recovery is pending and whether another
//! process holds the directory. Nothing on disk is changed.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::format::{
    decode_py_checkpoint, hex, py_checkpoint_name, Header, Pending, PyCheckpointEntry, State,
    HEADER_BYTES, HEADER_LEN, PY_CHECKPOINT_PREFIX, SLOT_BYTES,
};
use crate::fs::{Fs, RealFs};

/// One data file as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DataFileInfo {
    /// The file's index.
    pub index: u32,
    /// The file.
    pub path: PathBuf,
    /// Length in bytes, header included.
    pub size: u64,
    /// Logical position of the first stored byte (from the header).
    pub trim_offset: u32,
    /// Logical end: one past the last stored position.
    pub end: u64,
    /// Item bytes stored (`size - 24`).
    pub item_bytes: u64,
}

/// The commit record of the state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommitState {
    /// The previous session stopped cleanly.
    pub clean: bool,
    /// The current data file.
    pub head: u32,
    /// Committed logical end of the current data file.
    pub head_end: u32,
    /// Commit sequence number.
    pub seq: u64,
}

/// Something wrong with the directory, naming the file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The file concerned.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

/// What [`Builder::inspect`](crate::Builder::inspect) found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Inspection {
    /// Valid data files, by index.
    pub files: Vec<DataFileInfo>,
    /// Our commit record, if the directory has one (a Python directory has none).
    pub state: Option<CommitState>,
    /// Another process (or handle) holds the directory.
    pub locked: bool,
    /// What the next open will recover, one line each; empty when nothing is pending.
    pub pending_recovery: Vec<String>,
    /// Problems that make the directory unusable until fixed; empty when sound.
    pub problems: Vec<Problem>,
}

impl Inspection {
    /// Sum of the data files' sizes.
    #[must_use]
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Sum of the item bytes stored.
    #[must_use]
    pub fn total_item_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.item_bytes).sum()
    }

    /// No problems found.
    #[must_use]
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What the Python library takes for a data file: `{prefix}*.dat`, case-sensitive.
#[expect(
    clippy::case_sensitive_file_extension_comparisons,
    reason = "the Python library matches `.dat` case-sensitively"
)]
fn looks_like_data_file(name: &str, prefix: &str) -> bool {
    name.starts_with(prefix) && name.ends_with(".dat")
}

fn problem(path: &Path, message: impl Into<String>) -> Problem {
    Problem {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read_prefix(fs: &dyn Fs, path: &Path, len: usize) -> std::io::Result<Vec<u8>> {
    let f = fs.open_ro(path)?;
    let mut buf = vec![0u8; len];
    let mut n = 0;
    while n < len {
        match f.read_at(&mut buf[n..], n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    buf.truncate(n);
    Ok(buf)
}

/// Inspects the directory of `cfg` without changing it.
pub(crate) fn inspect(cfg: &Config) -> Result<Inspection> {
    inspect_with(&RealFs, cfg)
}

pub(crate) fn inspect_with(fs: &dyn Fs, cfg: &Config) -> Result<Inspection> {
    let dir = &cfg.path;
    if !fs
        .dir_exists(dir)
        .map_err(|e| Error::io("open directory", dir, e))?
    {
        return Err(Error::io(
            "open directory",
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "directory does not exist"),
        ));
    }
    let naming = &cfg.naming;
    let mut out = Inspection::default();
    let mut names = Vec::new();
    for name in fs
        .list(dir)
        .map_err(|e| Error::io("list directory", dir, e))?
    {
        match name.into_string() {
            Ok(n) => names.push(n),
            Err(raw) => inspect_non_utf8_name(dir, naming, &raw, &mut out),
        }
    }
    names.sort();

    let state = inspect_state(fs, cfg, &names, &mut out)?;
    let (dirty, ours) = inspect_session(dir, naming, state, &names, &mut out);
    for name in &names {
        let path = dir.join(name);
        if let Some(index) = naming.parse_data_file(name) {
            if let Some(s) = dirty.filter(|s| index > s.head) {
                out.pending_recovery.push(format!(
                    "delete {name}: created after the last commit (head is {})",
                    s.head
                ));
                continue;
            }
            inspect_data_file(fs, cfg, index, &path, &mut out);
        } else if naming.parse_temp_file(name).is_some() {
            out.pending_recovery
                .push(format!("delete or finish the temp file {name}"));
        } else if name.starts_with(PY_CHECKPOINT_PREFIX) {
            if dirty.is_some() {
                if Some(name) != ours.as_ref() {
                    out.pending_recovery.push(format!(
                        "delete the python checkpoint {name} (the commit record rules)"
                    ));
                }
                continue;
            }
            let entries = read_prefix(fs, &path, 1 << 16)
                .map(|raw| decode_py_checkpoint(&raw))
                .unwrap_or_default();
            out.pending_recovery.push(format!(
                "apply the python checkpoint {name} ({} file(s) to truncate)",
                entries.len()
            ));
            check_py_checkpoint(fs, cfg, name, &entries, &mut out);
        } else if *name == naming.checkpoint_temp_file() {
            out.pending_recovery
                .push(format!("delete the temp file {name}"));
        } else if looks_like_data_file(name, &naming.prefix) && !name.starts_with('.') {
            out.problems.push(problem(
                &path,
                format!(
                    "looks like a data file but does not match {}-digit padding; \
                     it is ignored, but the Python library would read it",
                    naming.padding
                ),
            ));
        }
    }

    if let Some(s) = dirty {
        inspect_dirty_head(dir, naming, s, &mut out);
    }
    let checkpoints = names
        .iter()
        .filter(|n| n.starts_with(PY_CHECKPOINT_PREFIX))
        .count();
    // A dirty state's recovery deletes every checkpoint but its own.
    if checkpoints > 1 && dirty.is_none() {
        out.problems.push(problem(
            dir,
            format!("{checkpoints} python checkpoint files; at most one can be pending"),
        ));
    }
    Ok(out)
}

/// Reports what applying a Python checkpoint on open would refuse (as recovery does: the
/// file must be at least as long as recorded and end with the recorded bytes there).
fn check_py_checkpoint(
    fs: &dyn Fs,
    cfg: &Config,
    name: &str,
    entries: &[PyCheckpointEntry],
    out: &mut Inspection,
) {
    for entry in entries {
        let Ok(index) = u32::try_from(entry.index) else {
            continue;
        };
        let path = cfg.path.join(cfg.naming.data_file(index));
        let f = match fs.open_ro(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.problems
                    .push(problem(&path, format!("cannot open: {e}")));
                continue;
            }
        };
        let len = f.len();
        let short = |cur: &dyn std::fmt::Display| {
            problem(
                &path,
                format!(
                    "python checkpoint {name} expects at least {} bytes, the file has {cur}",
                    entry.file_len
                ),
            )
        };
        match len {
            Err(e) => out
                .problems
                .push(problem(&path, format!("cannot stat: {e}"))),
            Ok(cur) if cur < entry.file_len || entry.file_len < HEADER_LEN => {
                out.problems.push(short(&cur));
            }
            Ok(_) => {
                let mut last = [0u8; 8];
                match f.read_exact_at(&mut last, entry.file_len - 8) {
                    Err(e) => out
                        .problems
                        .push(problem(&path, format!("cannot read: {e}"))),
                    Ok(()) if last != entry.last_bytes => out.problems.push(problem(
                        &path,
                        format!(
                            "last bytes before {} differ from python checkpoint {name}",
                            entry.file_len
                        ),
                    )),
                    Ok(()) => {}
                }
            }
        }
    }
}

/// What recovering a dirty state does to its head file.
fn inspect_dirty_head(dir: &Path, naming: &crate::format::Naming, s: State, out: &mut Inspection) {
    let head_path = dir.join(naming.data_file(s.head));
    match out.files.iter().find(|f| f.index == s.head) {
        None => out
            .problems
            .push(problem(&head_path, "the committed head file is missing")),
        Some(f) if u64::from(s.head_end) > f.end || s.head_end < f.trim_offset => {
            out.problems.push(problem(
                &head_path,
                format!(
                    "committed data is missing: position {} was committed, the file ends at {}",
                    s.head_end, f.end
                ),
            ));
        }
        Some(f) if u64::from(s.head_end) < f.end => out.pending_recovery.push(format!(
            "truncate {} from position {} back to the committed {}",
            naming.data_file(s.head),
            f.end,
            s.head_end
        )),
        Some(_) => out
            .pending_recovery
            .push("mark the interrupted session recovered".to_owned()),
    }
}

/// What the next open does about the last session: nothing (clean), take the files as
/// they are (its checkpoint is gone: another writer took over), or recover it (a problem
/// until done). Returns the state to recover, and the name of its checkpoint.
fn inspect_session(
    dir: &Path,
    naming: &crate::format::Naming,
    state: Option<State>,
    names: &[String],
    out: &mut Inspection,
) -> (Option<State>, Option<String>) {
    let ours = state
        .filter(|s| !s.clean && s.checkpoint != 0)
        .map(|s| py_checkpoint_name(s.checkpoint));
    let taken_over = ours.as_ref().is_some_and(|n| !names.contains(n)) && !out.locked;
    let dirty = state.filter(|s| !s.clean && !out.locked && !taken_over);
    if taken_over {
        out.pending_recovery.push(format!(
            "mark the interrupted session recovered: its checkpoint {} is gone, so another \
             writer (the Python library) rolled it back and took over; the files are kept as \
             they are",
            ours.as_deref().unwrap_or_default()
        ));
    } else if let Some(s) = dirty {
        match s.pending {
            Pending::None => {}
            Pending::Ltrim { index, trim_offset } => out.pending_recovery.push(format!(
                "finish the ltrim of index {index} to position {trim_offset}"
            )),
            Pending::Drop { index } => out
                .pending_recovery
                .push(format!("finish dropping index {index}")),
        }
        out.problems.push(problem(
            &dir.join(naming.state_file()),
            "recovery pending: the last session did not stop cleanly; run `aiodiskdb \
             recover` (or open the directory with this library) to finish it",
        ));
    }
    (dirty, ours)
}

/// A name that is not UTF-8 is never one of ours, but the Python library lists it too:
/// report those it would take for a data file or a pending checkpoint.
fn inspect_non_utf8_name(
    dir: &Path,
    naming: &crate::format::Naming,
    raw: &std::ffi::OsStr,
    out: &mut Inspection,
) {
    use std::os::unix::ffi::OsStrExt;
    let bytes = raw.as_bytes();
    let what = if bytes.starts_with(naming.prefix.as_bytes()) && bytes.ends_with(b".dat") {
        "a data file (and fail on its index)"
    } else if bytes.starts_with(PY_CHECKPOINT_PREFIX.as_bytes()) {
        "a pending checkpoint"
    } else {
        return;
    };
    out.problems.push(problem(
        &dir.join(raw),
        format!(
            "the file name is not UTF-8: it is ignored, but the Python library would take it \
             for {what}"
        ),
    ));
}

/// Reads the commit record and tests the lock; returns the state as recorded.
fn inspect_state(
    fs: &dyn Fs,
    cfg: &Config,
    names: &[String],
    out: &mut Inspection,
) -> Result<Option<State>> {
    let dir = &cfg.path;
    let naming = &cfg.naming;
    let state_path = dir.join(naming.state_file());
    if !names.iter().any(|n| *n == naming.state_file()) {
        return Ok(None);
    }
    let f = match fs.open_ro(&state_path) {
        Ok(f) => f,
        Err(e) => {
            out.problems.push(problem(
                &state_path,
                format!("cannot open the state file: {e}"),
            ));
            return Ok(None);
        }
    };
    out.locked = !f
        .try_lock()
        .map_err(|e| Error::io("lock state file", &state_path, e))?;
    drop(f);
    let raw = read_prefix(fs, &state_path, 2 * SLOT_BYTES)
        .map_err(|e| Error::io("read state file", &state_path, e))?;
    let slot = State::newest(&raw);
    if slot.is_none() && raw.iter().any(|b| *b != 0) {
        out.problems.push(problem(
            &state_path,
            "no valid commit record in the state file",
        ));
    }
    if let Some(recorded) = slot.as_ref().and_then(|s| s.format.as_ref()) {
        let theirs = &recorded.naming;
        let mismatch = if theirs.padding != naming.padding {
            Some(format!(
                "file_padding {} (not {})",
                theirs.padding, naming.padding
            ))
        } else if recorded.genesis != cfg.genesis {
            Some(format!(
                "genesis bytes {} (not {})",
                hex(&recorded.genesis),
                hex(&cfg.genesis)
            ))
        } else if theirs.prefix != naming.prefix {
            Some(format!(
                "file_prefix {:?} (not {:?})",
                theirs.prefix, naming.prefix
            ))
        } else {
            None
        };
        if let Some(m) = mismatch {
            out.problems.push(problem(
                &state_path,
                format!(
                    "the directory was written with {m}; open and inspect it with the same value"
                ),
            ));
        }
    }
    let state = slot.map(|s| s.state);
    out.state = state.map(|s| CommitState {
        clean: s.clean,
        head: s.head,
        head_end: s.head_end,
        seq: s.seq,
    });
    Ok(state)
}

fn inspect_data_file(fs: &dyn Fs, cfg: &Config, index: u32, path: &Path, out: &mut Inspection) {
    let raw = match read_prefix(fs, path, HEADER_BYTES) {
        Ok(raw) => raw,
        Err(e) => {
            out.problems
                .push(problem(path, format!("cannot read: {e}")));
            return;
        }
    };
    let header = match Header::decode(&raw, cfg.genesis) {
        Ok(h) => h,
        Err(reason) => {
            out.problems.push(problem(path, reason));
            return;
        }
    };
    let size = match fs.open_ro(path).and_then(|f| f.len()) {
        Ok(n) => n,
        Err(e) => {
            out.problems
                .push(problem(path, format!("cannot stat: {e}")));
            return;
        }
    };
    let item_bytes = size - HEADER_LEN;
    let end = u64::from(header.trim_offset) + item_bytes;
    if end > u64::from(u32::MAX) {
        out.problems.push(problem(
            path,
            format!("logical end {end} passes the u32 position limit"),
        ));
    }
    out.files.push(DataFileInfo {
        index,
        path: path.to_path_buf(),
        size,
        trim_offset: header.trim_offset,
        end,
        item_bytes,
    });
}
