//! Opening a directory: lock it, validate every data file, then recover.
//!
//! Recovery is idempotent and every step is safe to repeat after a crash during it:
//! 1. A dirty state (the last session did not stop cleanly): finish the pending ltrim
//!    rename or drop recorded before it was carried out, delete data files newer than the
//!    committed head (created by an uncommitted flush), truncate the head file back to its
//!    committed end.
//! 2. A clean or absent state (our clean stop, or a Python directory): trust the files as
//!    they are (another writer may have appended), and apply a Python `.checkpoint-*` left
//!    by a crashed Python flush.
//! 3. Delete stale `.tmp.` files and create the head file if missing. The first change of
//!    the session (a flush, a trim) writes a fresh dirty state before anything else: from
//!    then on, the state file is the commit point. A session that changes nothing leaves
//!    the state as it found it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::checkpoint::PyCheckpoint;
use super::{create_data_file, io, read_up_to, RecoveryReport, Store};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::format::{
    decode_py_checkpoint, hex, invalid_file, py_checkpoint_name, Format, Header, Naming, Pending,
    Slot, State, HEADER_BYTES, HEADER_LEN, PY_CHECKPOINT_PREFIX, SLOT_BYTES, SLOT_LEN,
};
use crate::fs::{seeded, Fs, FsFile};

/// How often and how far apart `open` tries the directory lock.
const LOCK_ATTEMPTS: u32 = 20;
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(5);

/// The names in a directory that concern one configuration.
#[derive(Debug, Default)]
struct Listing {
    data: Vec<u32>,
    temps: Vec<(u32, String)>,
    checkpoints: Vec<String>,
    /// Our Python-format checkpoint's temp file, left by a crash before its rename.
    checkpoint_temp: Option<String>,
}

fn list(fs: &dyn Fs, dir: &Path, naming: &Naming) -> Result<Listing> {
    let names = io("list directory", dir, fs.list(dir))?;
    let mut listing = Listing::default();
    // A name that is not UTF-8 is never one of ours (`check` reports those that look like
    // data files or checkpoints to the Python library).
    for name in names.into_iter().filter_map(|n| n.into_string().ok()) {
        if let Some(i) = naming.parse_data_file(&name) {
            listing.data.push(i);
        } else if let Some(i) = naming.parse_temp_file(&name) {
            listing.temps.push((i, name));
        } else if name.starts_with(PY_CHECKPOINT_PREFIX) {
            listing.checkpoints.push(name);
        } else if name == naming.checkpoint_temp_file() {
            listing.checkpoint_temp = Some(name);
        }
    }
    listing.data.sort_unstable();
    Ok(listing)
}

/// One data file as found on disk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scanned {
    pub(crate) index: u32,
    pub(crate) trim_offset: u32,
    pub(crate) end: u32,
}

/// Reads and validates the header and length of each data file.
pub(crate) fn scan(
    fs: &dyn Fs,
    dir: &Path,
    naming: &Naming,
    genesis: [u8; 4],
    indexes: &[u32],
) -> Result<Vec<Scanned>> {
    let mut out = Vec::with_capacity(indexes.len());
    for &index in indexes {
        let path = dir.join(naming.data_file(index));
        let f = io("open data file", &path, fs.open_ro(&path))?;
        let mut h = [0u8; HEADER_BYTES];
        let n = io("read header", &path, read_up_to(f.as_ref(), &mut h))?;
        let header = Header::decode(&h[..n], genesis).map_err(|r| invalid_file(&path, r))?;
        let len = io("stat data file", &path, f.len())?;
        let end = u64::from(header.trim_offset) + len - HEADER_LEN;
        let end = u32::try_from(end).map_err(|_| {
            invalid_file(
                &path,
                format!(
                    "trim offset {} plus {} item bytes passes the u32 position limit",
                    header.trim_offset,
                    len - HEADER_LEN
                ),
            )
        })?;
        out.push(Scanned {
            index,
            trim_offset: header.trim_offset,
            end,
        });
    }
    Ok(out)
}

/// Refuses files that are one another under two names (a symlink or a hard link): the
/// state file, the data files and a pending ltrim's temp file. Writing the state or
/// appending to the head would overwrite another file's committed bytes, and renaming the
/// temp file would put a link in place of a data file.
fn refuse_aliases(fs: &dyn Fs, paths: &[PathBuf]) -> Result<()> {
    let mut seen: Vec<((u64, u64), &Path)> = Vec::with_capacity(paths.len());
    for path in paths {
        let Some(id) = io("stat file", path, fs.file_id(path))? else {
            return Ok(());
        };
        if let Some((_, other)) = seen.iter().find(|(i, _)| *i == id) {
            return Err(invalid_file(
                path,
                format!("it is the same file as {} (a link)", other.display()),
            ));
        }
        seen.push((id, path));
    }
    Ok(())
}

/// The state file and the data files scanned, for [`refuse_aliases`].
fn own_files(cfg: &Config, state_path: &Path, scanned: &[Scanned]) -> Vec<PathBuf> {
    std::iter::once(state_path.to_path_buf())
        .chain(
            scanned
                .iter()
                .map(|f| cfg.path.join(cfg.naming.data_file(f.index))),
        )
        .collect()
}

fn ensure_dir(fs: &dyn Fs, cfg: &Config) -> Result<()> {
    let dir = &cfg.path;
    match fs.dir_exists(dir) {
        Ok(true) => Ok(()),
        Ok(false) if cfg.create_if_missing => io("create directory", dir, fs.create_dir_all(dir)),
        Ok(false) => Err(Error::io(
            "open directory",
            dir,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "directory does not exist (create_if_missing is false)",
            ),
        )),
        Err(e) => Err(Error::io("open directory", dir, e)),
    }
}

/// Refuses to open a directory with another naming or other genesis bytes than its state
/// records: data files of another naming are invisible to this one, so an open would
/// create a second head file beside the real one, and a crash there would make the next
/// correct open cut the real head back to its header.
fn check_format(cfg: &Config, recorded: &Format, state_path: &Path) -> Result<()> {
    let mismatch = |option: &'static str, ours: &dyn std::fmt::Display, theirs: String| {
        Error::config(
            option,
            ours,
            format!(
                "the directory was written with {option} = {theirs} (recorded in {}); open it \
                 with the same value",
                state_path.display()
            ),
        )
    };
    let want = &recorded.naming;
    if want.prefix != cfg.naming.prefix {
        return Err(mismatch(
            "file_prefix",
            &format!("{:?}", cfg.naming.prefix),
            format!("{:?}", want.prefix),
        ));
    }
    if want.padding != cfg.naming.padding {
        return Err(mismatch(
            "file_padding",
            &cfg.naming.padding,
            want.padding.to_string(),
        ));
    }
    if recorded.genesis != cfg.genesis {
        return Err(mismatch(
            "genesis_bytes",
            &hex(&cfg.genesis),
            hex(&recorded.genesis),
        ));
    }
    Ok(())
}

/// Opens and locks the state file; returns it and the newest valid slot in it.
fn lock_state(fs: &dyn Fs, cfg: &Config) -> Result<(PathBuf, Arc<dyn FsFile>, Option<Slot>)> {
    let dir = &cfg.path;
    let path = dir.join(cfg.naming.state_file());
    let (file, created) = io("open state file", &path, fs.open_or_create(&path))?;
    // A handle of this process: `Locked` at once if running, waited for if closing.
    let file = crate::registry::claim(fs, &path, file, cfg.timeout)?;
    // A lock held for a moment by someone else's fork (a child process inherits our
    // descriptor until it execs) is not a competing writer: retry briefly before
    // reporting `Locked`.
    let mut attempts = 0;
    while !io("lock state file", &path, file.try_lock())? {
        attempts += 1;
        if attempts >= LOCK_ATTEMPTS {
            return Err(Error::Locked { path });
        }
        std::thread::sleep(LOCK_RETRY);
    }
    if created {
        io("size state file", &path, file.set_len(2 * SLOT_LEN))?;
        if cfg.sync() {
            io("sync state file", &path, file.sync_data())?;
            io("sync directory", dir, fs.sync_dir(dir))?;
        }
    }
    let mut raw = [0u8; 2 * SLOT_BYTES];
    let n = io(
        "read state file",
        &path,
        read_up_to(file.as_ref(), &mut raw),
    )?;
    Ok((path, file, State::newest(&raw[..n])))
}

/// A dirty state whose checkpoint is gone: another writer (the Python library) applied our
/// checkpoint, rolling back what we had not committed, took over, and may have appended
/// since. The files are authoritative, as after a clean stop.
fn taken_over(s: State, listing: &Listing) -> bool {
    !s.clean
        && s.checkpoint != 0
        && !listing
            .checkpoints
            .contains(&py_checkpoint_name(s.checkpoint))
}

/// With `clean_stale_data(false)`, anything to recover is an error.
fn refuse_pending_unless_cleaning(
    cfg: &Config,
    dirty: bool,
    pending_temp: Option<u32>,
    listing: &Listing,
) -> Result<()> {
    let stale_temps = listing
        .temps
        .iter()
        .filter(|(i, _)| Some(*i) != pending_temp)
        .count()
        + usize::from(listing.checkpoint_temp.is_some());
    if !cfg.clean_stale_data && (dirty || !listing.checkpoints.is_empty() || stale_temps > 0) {
        return Err(Error::InvalidDbState {
            reason: format!(
                "{} needs recovery (interrupted session, checkpoint or temp files); \
                 open with clean_stale_data(true)",
                cfg.path.display()
            ),
        });
    }
    Ok(())
}

/// Finishes the operation a dirty state recorded before carrying it out.
fn finish_pending(
    fs: &dyn Fs,
    cfg: &Config,
    pending: Pending,
    head: u32,
    listing: &Listing,
) -> Result<bool> {
    let dir = &cfg.path;
    let naming = &cfg.naming;
    match pending {
        Pending::None => Ok(false),
        Pending::Ltrim { index, trim_offset } => {
            if !listing.temps.iter().any(|(i, _)| *i == index) {
                return Ok(false); // the rename happened
            }
            let temp = dir.join(naming.temp_file(index));
            let f = io("open temp file", &temp, fs.open_ro(&temp))?;
            let mut h = [0u8; HEADER_BYTES];
            io("read temp header", &temp, f.read_exact_at(&mut h, 0))?;
            let hdr = Header::decode(&h, cfg.genesis).map_err(|r| invalid_file(&temp, r))?;
            if hdr.trim_offset != trim_offset {
                return Err(Error::FilesInconsistency {
                    path: temp,
                    reason: format!(
                        "pending ltrim to {trim_offset}, temp file header says {}",
                        hdr.trim_offset
                    ),
                });
            }
            // Everything the rescan after the rename checks, checked before it.
            let len = io("stat temp file", &temp, f.len())?;
            let stored = len.saturating_sub(HEADER_LEN);
            if u64::from(trim_offset) + stored > u64::from(u32::MAX) {
                return Err(invalid_file(
                    &temp,
                    format!(
                        "trim offset {trim_offset} plus {stored} item bytes passes the u32 \
                         position limit"
                    ),
                ));
            }
            let data = dir.join(naming.data_file(index));
            io("rename temp file", &temp, fs.rename(&temp, &data))?;
            Ok(true)
        }
        Pending::Drop { index } => {
            // Only an older file is ever recorded for dropping (the head moves first).
            if index >= head {
                return Err(Error::FilesInconsistency {
                    path: dir.join(naming.data_file(index)),
                    reason: format!("a pending drop of index {index} at or above the head {head}"),
                });
            }
            if !listing.data.contains(&index) {
                return Ok(false);
            }
            let p = dir.join(naming.data_file(index));
            io("remove data file", &p, fs.remove(&p))?;
            Ok(true)
        }
    }
}

/// Truncates files back to a Python `.checkpoint-*` left by a crashed flush, then removes
/// it, as aiodiskdb 0.2.x does on start.
fn apply_py_checkpoint(
    fs: &dyn Fs,
    dir: &Path,
    naming: &Naming,
    name: &str,
    sync: bool,
) -> Result<()> {
    let path = dir.join(name);
    let f = io("open python checkpoint", &path, fs.open_ro(&path))?;
    let mut raw = vec![0u8; 1 << 16];
    let n = io(
        "read python checkpoint",
        &path,
        read_up_to(f.as_ref(), &mut raw),
    )?;
    // Check every entry before truncating anything: a checkpoint that does not match the
    // files must leave them untouched.
    let mut cuts = Vec::new();
    for entry in decode_py_checkpoint(&raw[..n]) {
        let Ok(index) = u32::try_from(entry.index) else {
            continue;
        };
        let data = dir.join(naming.data_file(index));
        let df = match fs.open_rw(&data) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("open data file", &data, e)),
        };
        let cur = io("stat data file", &data, df.len())?;
        if cur < entry.file_len || entry.file_len < HEADER_LEN {
            return Err(invalid_file(
                &data,
                format!(
                    "python checkpoint {name} expects at least {} bytes, the file has {cur}",
                    entry.file_len
                ),
            ));
        }
        let mut last = [0u8; 8];
        io(
            "read data file",
            &data,
            df.read_exact_at(&mut last, entry.file_len - 8),
        )?;
        if last != entry.last_bytes {
            return Err(invalid_file(
                &data,
                format!(
                    "last bytes before {} differ from python checkpoint {name}",
                    entry.file_len
                ),
            ));
        }
        cuts.push((data, df, entry.file_len));
    }
    for (data, df, file_len) in cuts {
        let cur = io("stat data file", &data, df.len())?;
        if cur > file_len {
            io("truncate data file", &data, df.set_len(file_len))?;
            if sync {
                io("sync data file", &data, df.sync_data())?;
            }
        }
    }
    io("remove python checkpoint", &path, fs.remove(&path))
}

/// Opens the head file, truncating it to the committed end of a dirty state, or creates
/// it when the directory has none.
fn open_head(
    fs: &dyn Fs,
    cfg: &Config,
    catalog: &mut Catalog,
    dirty: Option<State>,
    report: &mut RecoveryReport,
) -> Result<Arc<dyn FsFile>> {
    let head = catalog.head;
    let path = cfg.path.join(cfg.naming.data_file(head));
    let Some(info) = catalog.get(head).copied() else {
        if dirty.is_some() {
            return Err(Error::FilesInconsistency {
                path,
                reason: "the committed head file is missing".into(),
            });
        }
        if u64::from(head) > cfg.naming.max_index() {
            return Err(Error::DatabaseFull {
                index: u64::from(head),
                padding: cfg.naming.padding,
            });
        }
        // Outside a dirty state nothing would remove a torn file, so the header is
        // written to a temp file, synced, and renamed into place.
        let temp = cfg.path.join(cfg.naming.temp_file(head));
        match fs.remove(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove temp file", &temp, e)),
        }
        let f = create_data_file(fs, &temp, cfg.genesis, 0, cfg.sync())?;
        io("rename temp file", &temp, fs.rename(&temp, &path))?;
        if cfg.sync() {
            io("sync directory", &cfg.path, fs.sync_dir(&cfg.path))?;
        }
        catalog.insert(head, 0, 0);
        return Ok(f);
    };
    let f = io("open head file", &path, fs.open_rw(&path))?;
    let Some(state) = dirty else { return Ok(f) };
    if seeded!(fs, TrustFileLength) {
        return Ok(f);
    }
    let committed = state.head_end;
    if committed < info.trim_offset || committed > info.end {
        return Err(Error::FilesInconsistency {
            path,
            reason: format!(
                "committed data is missing: {committed} was committed, the file holds \
                 positions {}..{}",
                info.trim_offset, info.end
            ),
        });
    }
    if committed < info.end {
        let len = HEADER_LEN + u64::from(committed - info.trim_offset);
        io("truncate head file", &path, f.set_len(len))?;
        if cfg.sync() {
            io("sync head file", &path, f.sync_data())?;
        }
        report.truncated_bytes = u64::from(info.end - committed);
        catalog.insert(head, info.trim_offset, committed);
    }
    Ok(f)
}

/// Step 1 of recovery: finish the pending operation, delete uncommitted files.
/// Returns the head index.
fn recover_dirty(
    fs: &dyn Fs,
    cfg: &Config,
    s: State,
    listing: &Listing,
    report: &mut RecoveryReport,
) -> Result<u32> {
    report.finished_pending = finish_pending(fs, cfg, s.pending, s.head, listing)?;
    for &i in listing.data.iter().filter(|i| **i > s.head) {
        let p = cfg.path.join(cfg.naming.data_file(i));
        io("remove uncommitted file", &p, fs.remove(&p))?;
        report.removed_files.push(i);
    }
    // Our own commit state rules; a Python checkpoint here cannot be newer than it and
    // must not be applied later against our data. Ours, which the state names, is kept:
    // it is brought in line with the recovered files once the head is truncated.
    let ours = (s.checkpoint != 0).then(|| py_checkpoint_name(s.checkpoint));
    for name in &listing.checkpoints {
        if Some(name) == ours.as_ref() {
            continue;
        }
        let p = cfg.path.join(name);
        io("remove python checkpoint", &p, fs.remove(&p))?;
        report.removed_temp_files += 1;
    }
    Ok(s.head)
}

/// Step 2 of recovery: trust the files, apply a Python checkpoint. Returns the head index.
fn recover_clean(
    fs: &dyn Fs,
    cfg: &Config,
    prev: Option<State>,
    listing: &Listing,
    report: &mut RecoveryReport,
) -> Result<u32> {
    if listing.checkpoints.len() > 1 {
        return Err(Error::InvalidDbState {
            reason: format!(
                "{} holds {} python checkpoint files; at most one can be pending",
                cfg.path.display(),
                listing.checkpoints.len()
            ),
        });
    }
    if let Some(name) = listing.checkpoints.first() {
        apply_py_checkpoint(fs, &cfg.path, &cfg.naming, name, cfg.sync())?;
        report.applied_py_checkpoint = true;
    }
    let newest = listing.data.last().copied().unwrap_or(0);
    Ok(prev.map_or(newest, |s| s.head.max(newest)))
}

impl Store {
    /// Opens (creating if allowed), locks and recovers a directory.
    pub(crate) fn open(fs: Arc<dyn Fs>, cfg: &Config) -> Result<(Store, RecoveryReport)> {
        let dir = &cfg.path;
        let naming = &cfg.naming;
        ensure_dir(fs.as_ref(), cfg)?;
        let (state_path, state_file, slot) = lock_state(fs.as_ref(), cfg)?;
        if let Some(recorded) = slot.as_ref().and_then(|s| s.format.as_ref()) {
            check_format(cfg, recorded, &state_path)?;
        }
        let prev = slot.map(|s| s.state);
        let listing = list(fs.as_ref(), dir, naming)?;
        let taken_over = prev.is_some_and(|s| taken_over(s, &listing));
        let dirty = prev.filter(|s| !s.clean && !taken_over);
        // Validate every data file before changing anything, except those an interrupted
        // flush created after the commit point: they may be torn, and are deleted below.
        let committed: Vec<u32> = match dirty {
            Some(s) => listing
                .data
                .iter()
                .copied()
                .filter(|i| *i <= s.head)
                .collect(),
            None => listing.data.clone(),
        };
        let mut scanned = scan(fs.as_ref(), dir, naming, cfg.genesis, &committed)?;
        let pending_temp = match dirty.map(|s| s.pending) {
            Some(Pending::Ltrim { index, .. }) => Some(index),
            _ => None,
        };
        let mut own = own_files(cfg, &state_path, &scanned);
        own.extend(
            listing
                .temps
                .iter()
                .filter(|(i, _)| Some(*i) == pending_temp)
                .map(|(_, name)| dir.join(name)),
        );
        refuse_aliases(fs.as_ref(), &own)?;
        refuse_pending_unless_cleaning(cfg, dirty.is_some(), pending_temp, &listing)?;
        let mut report = RecoveryReport {
            was_dirty: prev.is_some_and(|s| !s.clean),
            taken_over,
            ..RecoveryReport::default()
        };
        let head = match dirty {
            Some(s) => recover_dirty(fs.as_ref(), cfg, s, &listing, &mut report)?,
            None => recover_clean(fs.as_ref(), cfg, prev, &listing, &mut report)?,
        };
        remove_stale_temps(fs.as_ref(), dir, &listing, pending_temp, &mut report)?;
        let dir_changed = report.finished_pending
            || report.applied_py_checkpoint
            || report.removed_temp_files > 0
            || !report.removed_files.is_empty();
        if dir_changed {
            let again = list(fs.as_ref(), dir, naming)?;
            scanned = scan(fs.as_ref(), dir, naming, cfg.genesis, &again.data)?;
            refuse_aliases(fs.as_ref(), &own_files(cfg, &state_path, &scanned))?;
        }

        let mut catalog = Catalog::default();
        for f in &scanned {
            catalog.insert(f.index, f.trim_offset, f.end);
        }
        catalog.head = head;
        let head_file = open_head(fs.as_ref(), cfg, &mut catalog, dirty, &mut report)?;
        if dir_changed && cfg.sync() {
            io("sync directory", dir, fs.sync_dir(dir))?;
        }
        let head_end = catalog.head_info().map_or(0, |f| f.end);
        let py_checkpoint = match dirty {
            Some(s) if s.checkpoint != 0 => {
                Some(PyCheckpoint::open(fs.as_ref(), dir, s.checkpoint)?)
            }
            _ => None,
        };
        let store = Store {
            fs,
            dir: dir.clone(),
            naming: naming.clone(),
            genesis: cfg.genesis,
            sync: cfg.sync(),
            max_index: naming.max_index(),
            state_path,
            state_file,
            state: prev.unwrap_or(State {
                seq: 0,
                clean: false,
                head,
                head_end,
                pending: Pending::None,
                checkpoint: 0,
            }),
            format: cfg.format(),
            marked_dirty: false,
            py_checkpoint,
            head_file,
            head_tail: None,
            catalog,
        };
        Ok((store.finish_open()?, report))
    }

    /// The last steps of `open`, on the recovered store.
    fn finish_open(mut self) -> Result<Store> {
        // The first change would need the next sequence number: refuse now, with the
        // directory untouched, rather than at the first flush. Only a forged state file
        // gets here.
        if self.state.seq == u64::MAX {
            return Err(Error::InvalidDbState {
                reason: format!(
                    "{}: the commit sequence number is exhausted",
                    self.state_path.display()
                ),
            });
        }
        // The checkpoint of the interrupted session now describes the recovered files (the
        // head at its committed length), so that the Python library, should it open the
        // directory before our next clean stop, finds nothing to cut and no file missing.
        if self.py_checkpoint.is_some() {
            let entry = self.head_entry()?;
            self.set_checkpoint(vec![entry])?;
        }
        Ok(self)
    }
}

/// Deletes the temp files nothing will finish: ltrim rewrites without a pending record
/// (or whose rename recovery just did) and our checkpoint's temp file.
fn remove_stale_temps(
    fs: &dyn Fs,
    dir: &Path,
    listing: &Listing,
    pending_temp: Option<u32>,
    report: &mut RecoveryReport,
) -> Result<()> {
    let pending = |i: u32| Some(i) == pending_temp && report.finished_pending;
    let stale = listing
        .temps
        .iter()
        .filter(|(i, _)| !pending(*i))
        .map(|(_, name)| name)
        .chain(&listing.checkpoint_temp)
        .collect::<Vec<_>>();
    for name in stale {
        let p = dir.join(name);
        io("remove temp file", &p, fs.remove(&p))?;
        report.removed_temp_files += 1;
    }
    Ok(())
}
