//! The synchronous storage core: opening and recovering a directory, committing a batch
//! of appends, and the trims. Plain blocking Rust over the [`Fs`] seam; it knows nothing
//! about tokio. Every fsync of the engine is issued here.
//!
//! Commit protocol (see `docs/design.md`): data is written at the committed end of the head
//! file (and into new files created exclusively), the touched files are synced, the
//! directory is synced if a file was created, and only then is the state record (head
//! index, committed end) written to the state file and synced. That record is the commit
//! point: recovery truncates the head file back to it and deletes newer files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalog::{Catalog, Delta, FileInfo};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::format::{
    decode_py_checkpoint, invalid_file, Header, Naming, Pending, State, HEADER_LEN,
    PY_CHECKPOINT_PREFIX, SLOT_LEN,
};
use crate::fs::{Fs, FsFile};

/// A run of bytes to append to one data file, starting at logical position `start`.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub(crate) index: u32,
    pub(crate) start: u32,
    /// The file does not exist yet: create it (exclusively) with a fresh header.
    pub(crate) new_file: bool,
    pub(crate) data: Vec<u8>,
}

impl Segment {
    pub(crate) fn end(&self) -> u32 {
        self.start + u32::try_from(self.data.len()).expect("segments fit a file")
    }
}

/// What a trim or drop did.
#[derive(Debug, Default)]
pub(crate) struct TrimOutcome {
    /// Item bytes removed.
    pub(crate) trimmed: u64,
    pub(crate) deltas: Vec<Delta>,
    /// `(index, item bytes)` of a deleted file.
    pub(crate) dropped: Option<(u32, u64)>,
}

/// The writer's side of a directory: the locked state file, the head file and the
/// committed catalog. Owned by the flusher; every method blocks.
#[derive(Debug)]
pub(crate) struct Store {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    naming: Naming,
    genesis: [u8; 4],
    sync: bool,
    max_index: u64,
    state_path: PathBuf,
    state_file: Arc<dyn FsFile>,
    state: State,
    head_file: Arc<dyn FsFile>,
    catalog: Catalog,
}

/// What recovery found and did, for `info` and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RecoveryReport {
    /// The previous session did not stop cleanly.
    pub(crate) was_dirty: bool,
    /// Bytes cut from the head file's uncommitted tail.
    pub(crate) truncated_bytes: u64,
    /// Uncommitted data files deleted.
    pub(crate) removed_files: Vec<u32>,
    /// A pending ltrim or drop was finished.
    pub(crate) finished_pending: bool,
    /// A Python `.checkpoint-*` was applied.
    pub(crate) applied_py_checkpoint: bool,
    /// Stale temp files deleted.
    pub(crate) removed_temp_files: usize,
}

struct Listing {
    data: Vec<u32>,
    temps: Vec<(u32, String)>,
    checkpoints: Vec<String>,
}

impl Store {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn data_path(&self, index: u32) -> PathBuf {
        self.dir.join(self.naming.data_file(index))
    }

    fn io<T>(op: &'static str, path: &Path, r: std::io::Result<T>) -> Result<T> {
        r.map_err(|e| Error::io(op, path, e))
    }

    /// The committed catalog.
    pub(crate) fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Opens (creating if allowed), locks and recovers a directory.
    pub(crate) fn open(fs: Arc<dyn Fs>, cfg: &Config) -> Result<(Store, RecoveryReport)> {
        let dir = cfg.path.clone();
        match fs.dir_exists(&dir) {
            Ok(true) => {}
            Ok(false) if cfg.create_if_missing => {
                Self::io("create directory", &dir, fs.create_dir_all(&dir))?;
            }
            Ok(false) => {
                return Err(Error::io(
                    "open directory",
                    &dir,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "directory does not exist (create_if_missing is false)",
                    ),
                ))
            }
            Err(e) => return Err(Error::io("open directory", &dir, e)),
        }
        let naming = cfg.naming.clone();
        let state_path = dir.join(naming.state_file());
        let (state_file, created) = Self::io(
            "open state file",
            &state_path,
            fs.open_or_create(&state_path),
        )?;
        if !Self::io("lock state file", &state_path, state_file.try_lock())? {
            return Err(Error::Locked { path: state_path });
        }
        let sync = cfg.sync();
        if created {
            Self::io(
                "size state file",
                &state_path,
                state_file.set_len(2 * SLOT_LEN),
            )?;
            if sync {
                Self::io("sync state file", &state_path, state_file.sync_data())?;
                Self::io("sync directory", &dir, fs.sync_dir(&dir))?;
            }
        }
        let mut raw = vec![0u8; 2 * SLOT_LEN as usize];
        let n = read_up_to(state_file.as_ref(), &mut raw)
            .map_err(|e| Error::io("read state file", &state_path, e))?;
        let prev = State::newest(&raw[..n]);

        let listing = Self::list(fs.as_ref(), &dir, &naming)?;
        // Validate every data file before changing anything.
        let mut scanned = scan(fs.as_ref(), &dir, &naming, cfg.genesis, &listing.data)?;

        let dirty = prev.is_some_and(|s| !s.clean);
        let pending_ltrim_temp = match prev.map(|s| s.pending) {
            Some(Pending::Ltrim { index, .. }) if dirty => Some(index),
            _ => None,
        };
        let stale_temps = listing
            .temps
            .iter()
            .filter(|(i, _)| Some(*i) != pending_ltrim_temp)
            .count();
        if !cfg.clean_stale_data && (dirty || !listing.checkpoints.is_empty() || stale_temps > 0) {
            return Err(Error::InvalidDbState {
                reason: format!(
                    "{} needs recovery (interrupted session, checkpoint or temp files); \
                     open with clean_stale_data(true)",
                    dir.display()
                ),
            });
        }

        let mut report = RecoveryReport {
            was_dirty: dirty,
            ..RecoveryReport::default()
        };
        let mut dir_changed = false;
        let head;
        if let (true, Some(s)) = (dirty, prev) {
            // Finish what was recorded before it was carried out.
            match s.pending {
                Pending::None => {}
                Pending::Ltrim { index, trim_offset } => {
                    let temp = dir.join(naming.temp_file(index));
                    if listing.temps.iter().any(|(i, _)| *i == index) {
                        let f = Self::io("open temp file", &temp, fs.open_ro(&temp))?;
                        let mut h = [0u8; HEADER_LEN as usize];
                        Self::io("read temp header", &temp, f.read_exact_at(&mut h, 0))?;
                        let hdr =
                            Header::decode(&h, cfg.genesis).map_err(|r| invalid_file(&temp, r))?;
                        if hdr.trim_offset != trim_offset {
                            return Err(Error::FilesInconsistency {
                                path: temp,
                                reason: format!(
                                    "pending ltrim to {trim_offset}, temp file header says {}",
                                    hdr.trim_offset
                                ),
                            });
                        }
                        let data = dir.join(naming.data_file(index));
                        Self::io("rename temp file", &temp, fs.rename(&temp, &data))?;
                        dir_changed = true;
                        report.finished_pending = true;
                    }
                }
                Pending::Drop { index } => {
                    if listing.data.contains(&index) {
                        let p = dir.join(naming.data_file(index));
                        Self::io("remove data file", &p, fs.remove(&p))?;
                        dir_changed = true;
                        report.finished_pending = true;
                    }
                }
            }
            for &i in listing.data.iter().filter(|i| **i > s.head) {
                let p = dir.join(naming.data_file(i));
                Self::io("remove uncommitted file", &p, fs.remove(&p))?;
                report.removed_files.push(i);
                dir_changed = true;
            }
            head = s.head;
        } else {
            if listing.checkpoints.len() > 1 {
                return Err(Error::InvalidDbState {
                    reason: format!(
                        "{} holds {} python checkpoint files; at most one can be pending",
                        dir.display(),
                        listing.checkpoints.len()
                    ),
                });
            }
            if let Some(name) = listing.checkpoints.first() {
                apply_py_checkpoint(fs.as_ref(), &dir, &naming, name, sync)?;
                report.applied_py_checkpoint = true;
                dir_changed = true;
            }
            let newest_file = listing.data.last().copied().unwrap_or(0);
            head = prev.map_or(newest_file, |s| s.head.max(newest_file));
        }
        for (i, name) in &listing.temps {
            if Some(*i) == pending_ltrim_temp && report.finished_pending {
                continue;
            }
            let p = dir.join(name);
            Self::io("remove temp file", &p, fs.remove(&p))?;
            report.removed_temp_files += 1;
            dir_changed = true;
        }
        if dir_changed {
            let again = Self::list(fs.as_ref(), &dir, &naming)?;
            scanned = scan(fs.as_ref(), &dir, &naming, cfg.genesis, &again.data)?;
        }

        let mut catalog = Catalog::default();
        for f in &scanned {
            catalog.insert(f.index, f.trim_offset, f.end);
        }
        catalog.head = head;

        let head_path = dir.join(naming.data_file(head));
        let head_file = if let Some(info) = catalog.get(head).copied() {
            let f = Self::io("open head file", &head_path, fs.open_rw(&head_path))?;
            if let (true, Some(s)) = (dirty, prev) {
                let committed = s.head_end;
                if committed < info.trim_offset {
                    return Err(Error::FilesInconsistency {
                        path: head_path,
                        reason: format!(
                            "committed end {committed} is below the trim offset {}",
                            info.trim_offset
                        ),
                    });
                }
                if committed > info.end {
                    return Err(Error::FilesInconsistency {
                        path: head_path,
                        reason: format!(
                            "committed data is missing: the file ends at position {}, \
                             {committed} was committed",
                            info.end
                        ),
                    });
                }
                if committed < info.end {
                    let len = HEADER_LEN + u64::from(committed - info.trim_offset);
                    Self::io("truncate head file", &head_path, f.set_len(len))?;
                    if sync {
                        Self::io("sync head file", &head_path, f.sync_data())?;
                    }
                    report.truncated_bytes = u64::from(info.end - committed);
                    catalog.insert(head, info.trim_offset, committed);
                }
            }
            f
        } else {
            if dirty {
                return Err(Error::FilesInconsistency {
                    path: head_path,
                    reason: "the committed head file is missing".into(),
                });
            }
            if u64::from(head) > naming.max_index() {
                return Err(Error::DatabaseFull {
                    index: u64::from(head),
                    padding: naming.padding,
                });
            }
            let f = create_data_file(fs.as_ref(), &head_path, cfg.genesis, 0, sync)?;
            if sync {
                Self::io("sync directory", &dir, fs.sync_dir(&dir))?;
            }
            catalog.insert(head, 0, 0);
            f
        };
        if dir_changed && sync {
            Self::io("sync directory", &dir, fs.sync_dir(&dir))?;
        }
        let head_end = catalog.head_info().map_or(0, |f| f.end);
        let mut store = Store {
            fs,
            dir,
            naming,
            genesis: cfg.genesis,
            sync,
            max_index: cfg.naming.max_index(),
            state_path,
            state_file,
            state: prev.unwrap_or(State {
                seq: 0,
                clean: false,
                head,
                head_end,
                pending: Pending::None,
            }),
            head_file,
            catalog,
        };
        store.write_state(false, head, head_end, Pending::None)?;
        Ok((store, report))
    }

    fn list(fs: &dyn Fs, dir: &Path, naming: &Naming) -> Result<Listing> {
        let names = Self::io("list directory", dir, fs.list(dir))?;
        let mut listing = Listing {
            data: Vec::new(),
            temps: Vec::new(),
            checkpoints: Vec::new(),
        };
        for name in names {
            if let Some(i) = naming.parse_data_file(&name) {
                listing.data.push(i);
            } else if let Some(i) = naming.parse_temp_file(&name) {
                listing.temps.push((i, name));
            } else if name.starts_with(PY_CHECKPOINT_PREFIX) {
                listing.checkpoints.push(name);
            }
        }
        listing.data.sort_unstable();
        Ok(listing)
    }

    /// Writes the next state record to the other slot and syncs it: the commit point.
    fn write_state(
        &mut self,
        clean: bool,
        head: u32,
        head_end: u32,
        pending: Pending,
    ) -> Result<()> {
        let next = State {
            seq: self.state.seq + 1,
            clean,
            head,
            head_end,
            pending,
        };
        Self::io(
            "write state file",
            &self.state_path,
            self.state_file
                .write_all_at(&next.encode(), next.slot_offset()),
        )?;
        if self.sync {
            Self::io(
                "sync state file",
                &self.state_path,
                self.state_file.sync_data(),
            )?;
        }
        self.state = next;
        Ok(())
    }

    /// Appends the segments and commits them as one batch. On return the data is persisted
    /// (synced with `Durability::Sync`) and the deltas describe the new catalog.
    ///
    /// Segments must continue the committed head: the first starts at the head's committed
    /// end (or creates the next index), each next one likewise.
    pub(crate) fn write_batch(&mut self, segments: &[&Segment]) -> Result<Vec<Delta>> {
        let mut touched: Vec<(Arc<dyn FsFile>, u32)> = Vec::new();
        let mut created = false;
        let mut deltas = Vec::with_capacity(segments.len() + 1);
        let mut head = self.catalog.head;
        let mut head_info = *self
            .catalog
            .head_info()
            .ok_or_else(|| Error::InvalidDbState {
                reason: "the head file is missing from the catalog".into(),
            })?;
        for seg in segments {
            if seg.new_file {
                if seg.index != head + 1 || seg.start != 0 {
                    return Err(internal(format!(
                        "new file segment {}@{} does not follow head {head}",
                        seg.index, seg.start
                    )));
                }
                if u64::from(seg.index) > self.max_index {
                    return Err(Error::DatabaseFull {
                        index: u64::from(seg.index),
                        padding: self.naming.padding,
                    });
                }
                let path = self.data_path(seg.index);
                let f = create_data_file(self.fs.as_ref(), &path, self.genesis, 0, false)?;
                Self::io(
                    "write data file",
                    &path,
                    f.write_all_at(&seg.data, HEADER_LEN),
                )?;
                self.head_file = Arc::clone(&f);
                touched.push((f, seg.index));
                created = true;
                head = seg.index;
                head_info = FileInfo {
                    trim_offset: 0,
                    end: 0,
                    generation: 0,
                };
            } else {
                if seg.index != head || seg.start != head_info.end {
                    return Err(internal(format!(
                        "segment {}@{} does not continue head {head} at {}",
                        seg.index, seg.start, head_info.end
                    )));
                }
                let offset = HEADER_LEN + u64::from(seg.start - head_info.trim_offset);
                let path = self.data_path(seg.index);
                Self::io(
                    "write data file",
                    &path,
                    self.head_file.write_all_at(&seg.data, offset),
                )?;
                if !touched.iter().any(|(_, i)| *i == seg.index) {
                    touched.push((Arc::clone(&self.head_file), seg.index));
                }
            }
            head_info.end = seg.end();
            deltas.push(Delta::SetEnd {
                index: seg.index,
                trim_offset: head_info.trim_offset,
                end: head_info.end,
            });
        }
        if self.sync {
            for (f, i) in &touched {
                let path = self.data_path(*i);
                Self::io("sync data file", &path, f.sync_data())?;
            }
            if created {
                Self::io("sync directory", &self.dir, self.fs.sync_dir(&self.dir))?;
            }
        }
        self.write_state(false, head, head_info.end, Pending::None)?;
        deltas.push(Delta::Head { index: head });
        for d in &deltas {
            self.catalog.apply(d);
        }
        Ok(deltas)
    }

    /// Whether `seg` continues the committed head (it has not been written yet).
    pub(crate) fn continues(&self, seg: &Segment) -> bool {
        let head = self.catalog.head;
        let end = self.catalog.head_info().map_or(0, |f| f.end);
        if seg.new_file {
            seg.index == head + 1
        } else {
            seg.index == head && seg.start == end
        }
    }

    /// Marks the directory cleanly stopped: everything is synced and the data files are
    /// authoritative as they are.
    pub(crate) fn close_clean(&mut self) -> Result<()> {
        let head = self.catalog.head;
        let end = self.catalog.head_info().map_or(0, |f| f.end);
        self.write_state(true, head, end, Pending::None)
    }

    fn file_info(&self, index: u32) -> Result<FileInfo> {
        self.catalog
            .get(index)
            .copied()
            .ok_or(Error::IndexDoesNotExist { index })
    }

    /// Reads `len` item bytes at logical `position` of a committed file.
    fn read_logical(
        &self,
        index: u32,
        info: FileInfo,
        position: u32,
        len: usize,
    ) -> Result<Vec<u8>> {
        let path = self.data_path(index);
        let f = if index == self.catalog.head {
            Arc::clone(&self.head_file)
        } else {
            Self::io("open data file", &path, self.fs.open_ro(&path))?
        };
        let mut buf = vec![0u8; len];
        let offset = HEADER_LEN + u64::from(position - info.trim_offset);
        Self::io("read data file", &path, f.read_exact_at(&mut buf, offset))?;
        Ok(buf)
    }

    /// Cuts `index` from logical position `from` to its end. See `AioDiskDb::rtrim`.
    pub(crate) fn rtrim(&mut self, index: u32, from: u32, check: &[u8]) -> Result<TrimOutcome> {
        let info = self.file_info(index)?;
        let is_head = index == self.catalog.head;
        if from > info.end {
            return Err(Error::trim(
                index,
                format!(
                    "trim_from {from} is past the end of the index ({})",
                    info.end
                ),
            ));
        }
        if !check.is_empty() {
            let fits = from >= info.trim_offset
                && u64::from(from) + check.len() as u64 <= u64::from(info.end);
            if !fits {
                return Err(Error::trim(
                    index,
                    format!(
                        "safety check of {} bytes at {from} is outside the stored range {}..{}",
                        check.len(),
                        info.trim_offset,
                        info.end
                    ),
                ));
            }
            let got = self.read_logical(index, info, from, check.len())?;
            if got != check {
                return Err(Error::trim(
                    index,
                    "safety check failed: the bytes at trim_from differ",
                ));
            }
        }
        if from == 0 && !is_head {
            return self.drop_index(index);
        }
        let new_end = from.max(info.trim_offset);
        let trimmed = u64::from(info.end - new_end);
        if trimmed == 0 {
            return Ok(TrimOutcome::default());
        }
        let path = self.data_path(index);
        let new_len = HEADER_LEN + u64::from(new_end - info.trim_offset);
        if is_head {
            // The new end must be committed before the bytes go, or recovery would find
            // committed data missing.
            self.write_state(false, index, new_end, Pending::None)?;
            Self::io("truncate data file", &path, self.head_file.set_len(new_len))?;
            if self.sync {
                Self::io("sync data file", &path, self.head_file.sync_data())?;
            }
        } else {
            let f = Self::io("open data file", &path, self.fs.open_rw(&path))?;
            Self::io("truncate data file", &path, f.set_len(new_len))?;
            if self.sync {
                Self::io("sync data file", &path, f.sync_data())?;
            }
        }
        let delta = Delta::Replaced {
            index,
            info: FileInfo {
                end: new_end,
                ..info
            },
        };
        self.catalog.apply(&delta);
        Ok(TrimOutcome {
            trimmed,
            deltas: vec![delta],
            dropped: None,
        })
    }

    /// Removes the bytes of `index` before logical position `to`. See `AioDiskDb::ltrim`.
    pub(crate) fn ltrim(&mut self, index: u32, to: u32, check: &[u8]) -> Result<TrimOutcome> {
        let info = self.file_info(index)?;
        if to <= info.trim_offset {
            return Err(Error::trim(
                index,
                format!(
                    "trim_to {to} must be above the current trim offset {}",
                    info.trim_offset
                ),
            ));
        }
        if to > info.end {
            return Err(Error::trim(
                index,
                format!("trim_to {to} is past the end of the index ({})", info.end),
            ));
        }
        if !check.is_empty() {
            let start = u64::from(to).checked_sub(check.len() as u64);
            match start {
                Some(s) if s >= u64::from(info.trim_offset) => {
                    let s = u32::try_from(s).expect("below a u32");
                    if self.read_logical(index, info, s, check.len())? != check {
                        return Err(Error::trim(
                            index,
                            "safety check failed: the bytes before trim_to differ",
                        ));
                    }
                }
                _ => {
                    return Err(Error::trim(
                        index,
                        format!(
                            "safety check of {} bytes before {to} reaches below the trim offset {}",
                            check.len(),
                            info.trim_offset
                        ),
                    ))
                }
            }
        }
        if to == info.end {
            return self.drop_index(index);
        }
        let is_head = index == self.catalog.head;
        let path = self.data_path(index);
        let temp = self.path(&self.naming.temp_file(index));
        match self.fs.remove(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove temp file", &temp, e)),
        }
        let src = if is_head {
            Arc::clone(&self.head_file)
        } else {
            Self::io("open data file", &path, self.fs.open_ro(&path))?
        };
        let dst = create_data_file(self.fs.as_ref(), &temp, self.genesis, to, false)?;
        let mut chunk = vec![0u8; 1 << 20];
        let mut pos = u64::from(to - info.trim_offset);
        let stop = u64::from(info.end - info.trim_offset);
        let mut out = HEADER_LEN;
        while pos < stop {
            let n = usize::try_from((stop - pos).min(chunk.len() as u64)).expect("chunk");
            Self::io(
                "read data file",
                &path,
                src.read_exact_at(&mut chunk[..n], HEADER_LEN + pos),
            )?;
            Self::io("write temp file", &temp, dst.write_all_at(&chunk[..n], out))?;
            pos += n as u64;
            out += n as u64;
        }
        if self.sync {
            Self::io("sync temp file", &temp, dst.sync_data())?;
        }
        let head = self.catalog.head;
        let head_end = self.catalog.head_info().map_or(0, |f| f.end);
        self.write_state(
            false,
            head,
            head_end,
            Pending::Ltrim {
                index,
                trim_offset: to,
            },
        )?;
        Self::io("rename temp file", &temp, self.fs.rename(&temp, &path))?;
        if self.sync {
            Self::io("sync directory", &self.dir, self.fs.sync_dir(&self.dir))?;
        }
        if is_head {
            self.head_file = Self::io("open head file", &path, self.fs.open_rw(&path))?;
        }
        self.write_state(false, head, head_end, Pending::None)?;
        let delta = Delta::Replaced {
            index,
            info: FileInfo {
                trim_offset: to,
                ..info
            },
        };
        self.catalog.apply(&delta);
        Ok(TrimOutcome {
            trimmed: u64::from(to - info.trim_offset),
            deltas: vec![delta],
            dropped: None,
        })
    }

    /// Deletes the data file of `index`. Dropping the head moves appends to a new index.
    pub(crate) fn drop_index(&mut self, index: u32) -> Result<TrimOutcome> {
        let info = self.file_info(index)?;
        let path = self.data_path(index);
        let mut deltas = Vec::new();
        if index == self.catalog.head {
            let next = index + 1;
            if u64::from(next) > self.max_index {
                return Err(Error::DatabaseFull {
                    index: u64::from(next),
                    padding: self.naming.padding,
                });
            }
            let next_path = self.data_path(next);
            let f = create_data_file(self.fs.as_ref(), &next_path, self.genesis, 0, self.sync)?;
            if self.sync {
                Self::io("sync directory", &self.dir, self.fs.sync_dir(&self.dir))?;
            }
            self.write_state(false, next, 0, Pending::Drop { index })?;
            self.head_file = f;
            deltas.push(Delta::SetEnd {
                index: next,
                trim_offset: 0,
                end: 0,
            });
            deltas.push(Delta::Head { index: next });
            Self::io("remove data file", &path, self.fs.remove(&path))?;
            if self.sync {
                Self::io("sync directory", &self.dir, self.fs.sync_dir(&self.dir))?;
            }
            self.write_state(false, next, 0, Pending::None)?;
        } else {
            Self::io("remove data file", &path, self.fs.remove(&path))?;
            if self.sync {
                Self::io("sync directory", &self.dir, self.fs.sync_dir(&self.dir))?;
            }
        }
        deltas.push(Delta::Removed { index });
        for d in &deltas {
            self.catalog.apply(d);
        }
        Ok(TrimOutcome {
            trimmed: info.data_len(),
            deltas,
            dropped: Some((index, info.data_len())),
        })
    }
}

fn internal(reason: String) -> Error {
    Error::InvalidDbState { reason }
}

fn read_up_to(f: &dyn FsFile, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Creates a data file exclusively and writes its header (synced when `sync`).
fn create_data_file(
    fs: &dyn Fs,
    path: &Path,
    genesis: [u8; 4],
    trim_offset: u32,
    sync: bool,
) -> Result<Arc<dyn FsFile>> {
    let f = fs.create_new(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::FilesInconsistency {
                path: path.to_path_buf(),
                reason: "file should not exist yet".into(),
            }
        } else {
            Error::io("create data file", path, e)
        }
    })?;
    let header = Header {
        genesis,
        trim_offset,
    };
    f.write_all_at(&header.encode(), 0)
        .map_err(|e| Error::io("write header", path, e))?;
    if sync {
        f.sync_data()
            .map_err(|e| Error::io("sync data file", path, e))?;
    }
    Ok(f)
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
        let f = fs
            .open_ro(&path)
            .map_err(|e| Error::io("open data file", &path, e))?;
        let mut h = [0u8; HEADER_LEN as usize];
        let n = read_up_to(f.as_ref(), &mut h).map_err(|e| Error::io("read header", &path, e))?;
        let header = Header::decode(&h[..n], genesis).map_err(|r| invalid_file(&path, r))?;
        let len = f.len().map_err(|e| Error::io("stat data file", &path, e))?;
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
    let f = fs
        .open_ro(&path)
        .map_err(|e| Error::io("open python checkpoint", &path, e))?;
    let len = f
        .len()
        .map_err(|e| Error::io("stat python checkpoint", &path, e))?;
    let len = usize::try_from(len.min(1 << 20)).expect("bounded");
    let mut raw = vec![0u8; len];
    let n = read_up_to(f.as_ref(), &mut raw)
        .map_err(|e| Error::io("read python checkpoint", &path, e))?;
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
        let cur = df
            .len()
            .map_err(|e| Error::io("stat data file", &data, e))?;
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
        let tail = entry.file_len.saturating_sub(8);
        let k = usize::try_from(entry.file_len - tail).expect("at most 8");
        df.read_exact_at(&mut last[..k], tail)
            .map_err(|e| Error::io("read data file", &data, e))?;
        if last[..k] != entry.last_bytes[..k] {
            return Err(invalid_file(
                &data,
                format!(
                    "last bytes before {} differ from python checkpoint {name}",
                    entry.file_len
                ),
            ));
        }
        if cur > entry.file_len {
            df.set_len(entry.file_len)
                .map_err(|e| Error::io("truncate data file", &data, e))?;
            if sync {
                df.sync_data()
                    .map_err(|e| Error::io("sync data file", &data, e))?;
            }
        }
    }
    fs.remove(&path)
        .map_err(|e| Error::io("remove python checkpoint", &path, e))?;
    Ok(())
}
