//! What a directory holds, read without changing anything: the state record, the names
//! that concern one configuration, each data file's header and length, the temp files, the
//! Python checkpoints and what their entries would check, and which of our files are one
//! another under two names. Recovery plans from it (`plan.rs`); `open` and `inspect`
//! survey the same way.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::datafile::{Access, DataFile, Extent};
use crate::error::{Error, IoContext, Result};
use crate::format::{
    decode_py_checkpoint, Format, Manifest, Pending, PyCheckpointEntry, Slot, State,
    PY_CHECKPOINT_PREFIX, SLOT_BYTES,
};
use crate::fs::Fs;
use crate::index::{verify_head, HeadCommit, IndexFile};
use crate::store::Options;

use super::plan::{self, Plan};

/// Names that are not ours but that the Python library would take for its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Foreign {
    /// `{prefix}*.dat`, but not of this padding.
    OtherNaming(String),
    /// A name that is not UTF-8, which the Python library would take for a data file.
    NonUtf8Data(PathBuf),
    /// A name that is not UTF-8, which the Python library would take for a checkpoint.
    NonUtf8Checkpoint(PathBuf),
}

/// One entry of a Python checkpoint, with what its file holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryCheck {
    pub(crate) entry: PyCheckpointEntry,
    /// The file's length and the 8 bytes before the entry's length (when the file is that
    /// long); `None` when the index is not a `u32` or the file does not exist.
    pub(crate) found: Option<(u64, Option<[u8; 8]>)>,
}

/// A Python `.checkpoint-*` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub(crate) name: String,
    pub(crate) entries: Vec<EntryCheck>,
}

/// What a directory holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Survey {
    /// The newest valid state slot.
    pub(crate) slot: Option<Slot>,
    /// The state file holds bytes, but no valid slot.
    pub(crate) state_unreadable: bool,
    /// Every data file of this naming: its extent, or why it is not a valid data file.
    pub(crate) data: BTreeMap<u32, std::result::Result<Extent, Error>>,
    /// ltrim temp files by index: name and extent (or why not).
    pub(crate) temps: BTreeMap<u32, (String, std::result::Result<Extent, Error>)>,
    /// The Python checkpoints; their entries are read only when they would be applied (not
    /// when a dirty state of ours supersedes them).
    pub(crate) checkpoints: Vec<Checkpoint>,
    /// Our checkpoint's temp file, left by a crash before its rename.
    pub(crate) checkpoint_temp: Option<String>,
    pub(crate) foreign: Vec<Foreign>,
    /// Pairs of our files that are one file under two names (a link).
    pub(crate) aliases: Vec<(PathBuf, PathBuf)>,
    /// Item index files by index: whether each holds a valid header for its file.
    pub(crate) indexes: BTreeMap<u32, bool>,
    /// Manifest files by generation (`None`: torn).
    pub(crate) manifests: BTreeMap<u64, Option<Manifest>>,
    /// For each file the named manifest records: the 8 bytes before the recorded end, if
    /// the file is that long.
    pub(crate) sealed_tails: BTreeMap<u32, [u8; 8]>,
    /// A dirty session's head: how far its commits check out (`None` when it has no
    /// valid index, or the state predates item indexes).
    pub(crate) head_commit: Option<HeadCommit>,
}

impl Survey {
    /// The state recorded, if any.
    pub(crate) fn state(&self) -> Option<State> {
        self.slot.as_ref().map(|s| s.state)
    }

    /// The manifest the state names (`None`: it names none, or it is missing or torn).
    pub(crate) fn manifest(&self) -> Option<&Manifest> {
        let generation = self.state()?.manifest;
        self.manifests.get(&generation)?.as_ref()
    }
}

/// Surveys `dir` for `format`; `state` is the content of the state file (empty if there is
/// none).
///
/// # Errors
/// [`Error::Io`] when the directory cannot be listed or a file cannot be read (a file that
/// is not a valid data file is recorded, not an error).
pub(crate) fn survey(fs: &dyn Fs, dir: &Path, format: &Format, state: &[u8]) -> Result<Survey> {
    let naming = &format.naming;
    let slot = State::newest(state);
    let mut s = Survey {
        state_unreadable: slot.is_none() && state.iter().any(|b| *b != 0),
        slot,
        ..Survey::default()
    };
    let mut checkpoint_names = Vec::new();
    let mut names = fs.list(dir).ctx("list directory", dir)?;
    names.sort();
    for raw in names {
        let name = match raw.into_string() {
            Ok(n) => n,
            Err(raw) => {
                let bytes = raw.as_bytes();
                if bytes.starts_with(naming.prefix.as_bytes()) && bytes.ends_with(b".dat") {
                    s.foreign.push(Foreign::NonUtf8Data(dir.join(&raw)));
                } else if bytes.starts_with(PY_CHECKPOINT_PREFIX.as_bytes()) {
                    s.foreign.push(Foreign::NonUtf8Checkpoint(dir.join(&raw)));
                }
                continue;
            }
        };
        if let Some(i) = naming.parse_data_file(&name) {
            let extent =
                DataFile::open(fs, &dir.join(&name), format.genesis, Access::Read).map(|(_, e)| e);
            s.data.insert(i, extent);
        } else if let Some(i) = naming.parse_temp_file(&name) {
            let extent =
                DataFile::open(fs, &dir.join(&name), format.genesis, Access::Read).map(|(_, e)| e);
            s.temps.insert(i, (name, extent));
        } else if name.starts_with(PY_CHECKPOINT_PREFIX) {
            checkpoint_names.push(name);
        } else if name == naming.checkpoint_temp_file() {
            s.checkpoint_temp = Some(name);
        } else if let Some(i) = naming.parse_index_file(&name) {
            let valid = IndexFile::open_ro(fs, &dir.join(&name))?
                .is_some_and(|f| f.header().index == i && f.header().genesis == format.genesis);
            s.indexes.insert(i, valid);
        } else if let Some(generation) = naming.parse_manifest_file(&name) {
            let path = dir.join(&name);
            let raw = read_whole(fs, &path)?;
            s.manifests.insert(
                generation,
                Manifest::decode(&raw).filter(|m| m.generation == generation),
            );
        } else if name.starts_with(naming.prefix.as_str()) && name.as_bytes().ends_with(b".dat") {
            s.foreign.push(Foreign::OtherNaming(name));
        }
    }
    // A dirty state of ours that still has its checkpoint (or names none) supersedes every
    // checkpoint: their entries would not be applied, so they are not read.
    let superseded = s.state().is_some_and(|st| {
        !st.clean
            && (st.checkpoint == 0
                || checkpoint_names.contains(&crate::format::py_checkpoint_name(st.checkpoint)))
    });
    for name in checkpoint_names {
        let checkpoint = if superseded {
            Checkpoint {
                name,
                entries: Vec::new(),
            }
        } else {
            read_checkpoint(fs, dir, format, &s, name)?
        };
        s.checkpoints.push(checkpoint);
    }
    s.aliases = aliases(fs, dir, format, &s)?;
    s.sealed_tails = sealed_tails(fs, dir, format, &s)?;
    s.head_commit = head_commit(fs, dir, format, &s)?;
    Ok(s)
}

/// Reads a whole (small) file of ours.
fn read_whole(fs: &dyn Fs, path: &Path) -> Result<Vec<u8>> {
    let f = fs.open_ro(path).ctx("open file", path)?;
    let len = f.len().ctx("stat file", path)?;
    let mut raw = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX).min(64 << 20)];
    let n = f.read_up_to(&mut raw, 0).ctx("read file", path)?;
    raw.truncate(n);
    Ok(raw)
}

/// The 8 bytes before each sealed file's recorded end, as the file holds them now.
fn sealed_tails(
    fs: &dyn Fs,
    dir: &Path,
    format: &Format,
    s: &Survey,
) -> Result<BTreeMap<u32, [u8; 8]>> {
    let mut tails = BTreeMap::new();
    let Some(m) = s.manifest() else {
        return Ok(tails);
    };
    for rec in &m.files {
        let Some(Ok(extent)) = s.data.get(&rec.index) else {
            continue;
        };
        if extent.end < rec.end || rec.end < extent.trim_offset {
            continue;
        }
        let path = dir.join(format.naming.data_file(rec.index));
        let (file, _) = DataFile::open(fs, &path, format.genesis, Access::Read)?;
        // A file whose ltrim was recorded but not renamed into place still holds the bytes
        // below the recorded trim offset: its tail as the ltrim's new file has it (the
        // record's; they differ when fewer than 8 item bytes are kept). A header with a
        // higher trim offset than recorded is reported by the checks.
        let tail = if rec.trim_offset > extent.trim_offset && rec.trim_offset <= rec.end {
            file.tail_trimmed(format.genesis, rec.trim_offset, rec.end)
        } else {
            file.tail(rec.end)
        };
        tails.insert(rec.index, tail.ctx("read data file", &path)?);
    }
    Ok(tails)
}

/// How far a dirty session's head commits check out: the newest commit slot whose batch
/// matches its checksums, and whole batches after it (`index::verify_head`).
fn head_commit(fs: &dyn Fs, dir: &Path, format: &Format, s: &Survey) -> Result<Option<HeadCommit>> {
    let Some(st) = s.state().filter(|st| !st.clean) else {
        return Ok(None);
    };
    if s.indexes.get(&st.head) != Some(&true) {
        return Ok(None);
    }
    let Some(Ok(extent)) = s.data.get(&st.head) else {
        return Ok(None);
    };
    let naming = &format.naming;
    let (data, _) = DataFile::open(
        fs,
        &dir.join(naming.data_file(st.head)),
        format.genesis,
        Access::Read,
    )?;
    let Some(idx) = IndexFile::open_ro(fs, &dir.join(naming.index_file(st.head)))? else {
        return Ok(None);
    };
    let baseline = HeadCommit {
        end: st.head_end,
        entries: st.head_entries,
    };
    if st.pending == (Pending::Rtrim { index: st.head }) {
        // An rtrim of the head: its commits name bytes it cut; the state's record rules.
        return Ok(Some(baseline));
    }
    if baseline.end > extent.end || baseline.end < idx.header().first.max(extent.trim_offset) {
        // Committed data is missing (the plan reports it), or the index starts after the
        // record: nothing to check.
        return Ok(Some(baseline));
    }
    let check_sums = !crate::fs::seeded!(fs, CommitChecksumNotChecked);
    Ok(Some(verify_head(
        &data, extent.end, &idx, baseline, check_sums,
    )?))
}

/// Reads a Python checkpoint and what each entry would find.
fn read_checkpoint(
    fs: &dyn Fs,
    dir: &Path,
    format: &Format,
    survey: &Survey,
    name: String,
) -> Result<Checkpoint> {
    let path = dir.join(&name);
    let file = fs.open_ro(&path).ctx("open python checkpoint", &path)?;
    let mut raw = vec![0u8; 1 << 16];
    let n = file
        .read_up_to(&mut raw, 0)
        .ctx("read python checkpoint", &path)?;
    let mut entries = Vec::new();
    for entry in decode_py_checkpoint(&raw[..n]) {
        let index = u32::try_from(entry.index).ok();
        let found = match index.filter(|i| survey.data.contains_key(i)) {
            None => None,
            Some(i) => {
                let data = dir.join(format.naming.data_file(i));
                let df = match fs.open_ro(&data) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        entries.push(EntryCheck { entry, found: None });
                        continue;
                    }
                    Err(e) => return Err(Error::io("open data file", &data, e)),
                };
                let len = df.len().ctx("stat data file", &data)?;
                let last = if entry.file_len >= 8 && entry.file_len <= len {
                    let mut last = [0u8; 8];
                    df.read_exact_at(&mut last, entry.file_len - 8)
                        .ctx("read data file", &data)?;
                    Some(last)
                } else {
                    None
                };
                Some((len, last))
            }
        };
        entries.push(EntryCheck { entry, found });
    }
    Ok(Checkpoint { name, entries })
}

/// Which of our files are one another under two names (a symlink or a hard link): the
/// state file, the data files up to the recorded head (in a dirty state; all of them
/// otherwise) and a pending ltrim's temp file. Writing the state or appending to the head
/// would overwrite another file's committed bytes, and renaming the temp file would put a
/// link in place of a data file.
fn aliases(
    fs: &dyn Fs,
    dir: &Path,
    format: &Format,
    s: &Survey,
) -> Result<Vec<(PathBuf, PathBuf)>> {
    let naming = &format.naming;
    let dirty = s.state().filter(|st| !st.clean);
    let mut own = vec![dir.join(naming.state_file())];
    own.extend(
        s.data
            .keys()
            .filter(|i| dirty.is_none_or(|st| **i <= st.head))
            .map(|i| dir.join(naming.data_file(*i))),
    );
    if let Some(Pending::Ltrim { index, .. }) = dirty.map(|st| st.pending) {
        if let Some((name, _)) = s.temps.get(&index) {
            own.push(dir.join(name));
        }
    }
    let mut seen: Vec<((u64, u64), PathBuf)> = Vec::with_capacity(own.len());
    let mut pairs = Vec::new();
    for path in own {
        let id = match fs.file_id(&path) {
            Ok(Some(id)) => id,
            // No identities (the simulator), or no state file yet.
            Ok(None) => return Ok(pairs),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("stat file", &path, e)),
        };
        if let Some((_, other)) = seen.iter().find(|(i, _)| *i == id) {
            pairs.push((path, other.clone()));
        } else {
            seen.push((id, path));
        }
    }
    Ok(pairs)
}

/// How many times [`settled`] surveys again when a writer moved under the survey.
const SETTLE_ATTEMPTS: u32 = 20;

/// Surveys and plans the directory of `opts` beside a writer that may be changing it (for
/// a read-only handle and for `inspect`), until the writer held still across the survey:
/// `read_state` (the state file's bytes, and whether a writer holds the directory: the
/// plan's `live`) reads the same before and after, and no file vanished between the
/// listing and its reading (a rename or removal of the writer's in progress, recorded in
/// the state just before or after it). After the last attempt, what that one found.
///
/// # Errors
/// Those of `read_state` and of [`survey`] (the last attempt's).
pub(crate) fn settled(
    fs: &dyn Fs,
    opts: &Options,
    mut read_state: impl FnMut() -> Result<(Vec<u8>, bool)>,
) -> Result<(Survey, Plan)> {
    // A file removed, or cut short, between the listing and its reading.
    let gone = |e: &Error| {
        matches!(e, Error::Io { source, .. }
            if matches!(source.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::UnexpectedEof))
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let before = read_state()?;
        let outcome = survey(fs, &opts.dir, &opts.format, &before.0)
            .map(|s| (plan::plan(opts, &s, before.1), s));
        let after = read_state()?;
        let vanished = match &outcome {
            Err(e) => gone(e),
            Ok((plan, _)) => plan.errors.iter().chain(&plan.warnings).any(gone),
        };
        if (before != after || vanished) && attempt < SETTLE_ATTEMPTS {
            // The writer moved on while the directory was read: read it again.
            std::thread::sleep(std::time::Duration::from_millis(u64::from(attempt)));
            continue;
        }
        return outcome.map(|(plan, s)| (s, plan));
    }
}

/// The content of a state file: the two slots, or fewer bytes.
pub(crate) fn read_state(file: &dyn crate::fs::FsFile, path: &Path) -> Result<Vec<u8>> {
    let mut raw = vec![0u8; 2 * SLOT_BYTES];
    let n = file.read_up_to(&mut raw, 0).ctx("read state file", path)?;
    raw.truncate(n);
    Ok(raw)
}
