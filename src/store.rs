//! The synchronous storage core: opening and recovering a directory, committing a batch
//! of appends, and the trims. Plain blocking Rust over the [`Fs`] seam; it knows nothing
//! about tokio. Every fsync of the engine is issued here.
//!
//! Commit protocol (see `docs/design.md`): new files are created with their header, and
//! listed in our Python-format checkpoint, before any data goes into them; data is written
//! at the committed end of the head file, the touched files are synced, and only then are
//! the checkpoint (the head at its new length) and the state record (head index, committed
//! end) written and synced. The state record is the commit point: recovery truncates the
//! head file back to it and deletes newer files. The checkpoint lets the Python library do
//! the same rollback if it opens the directory first (`checkpoint.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalog::{Catalog, Delta, FileInfo};
use crate::error::{Error, Result};
use crate::format::{Format, Header, Naming, Pending, PyCheckpointEntry, State, HEADER_LEN};
use crate::fs::{seeded, Fs, FsFile};

use checkpoint::{empty_file_entry, PyCheckpoint};

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
    /// The naming and genesis bytes, recorded in every state slot written.
    format: Format,
    /// Whether the state on disk is a dirty record of this session. Until the first
    /// change, the directory is left as it was found (a read-only session writes nothing);
    /// every change first makes sure of a dirty record, so that from then on the state
    /// file is the commit point.
    marked_dirty: bool,
    /// The session's Python-format checkpoint, from the first change to the clean stop.
    py_checkpoint: Option<PyCheckpoint>,
    head_file: Arc<dyn FsFile>,
    /// The last 8 bytes of the head file at its committed length (what a checkpoint entry
    /// records), once known: read when first needed, then kept up to date.
    head_tail: Option<[u8; 8]>,
    catalog: Catalog,
}

mod checkpoint;
mod recovery;

fn io<T>(op: &'static str, path: &Path, r: std::io::Result<T>) -> Result<T> {
    r.map_err(|e| Error::io(op, path, e))
}

/// The last 8 bytes of `tail` followed by `data`.
fn roll_tail(tail: [u8; 8], data: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    if data.len() >= 8 {
        out.copy_from_slice(&data[data.len() - 8..]);
    } else {
        let keep = 8 - data.len();
        out[..keep].copy_from_slice(&tail[8 - keep..]);
        out[keep..].copy_from_slice(data);
    }
    out
}

/// What recovery found and did, for `info` and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent facts of one report"
)]
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
    /// The last session of ours did not stop cleanly, but its checkpoint is gone: another
    /// writer (the Python library) applied it and took over; the files were kept as found.
    pub(crate) taken_over: bool,
    /// Stale temp files deleted.
    pub(crate) removed_temp_files: usize,
}

impl Store {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn data_path(&self, index: u32) -> PathBuf {
        self.dir.join(self.naming.data_file(index))
    }

    fn io<T>(op: &'static str, path: &Path, r: std::io::Result<T>) -> Result<T> {
        io(op, path, r)
    }

    /// The committed catalog.
    pub(crate) fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Writes the next state record to the other slot and syncs it: the commit point.
    fn write_state(
        &mut self,
        clean: bool,
        head: u32,
        head_end: u32,
        pending: Pending,
    ) -> Result<()> {
        self.write_state_with(clean, head, head_end, pending, None)
    }

    /// [`Store::write_state`], syncing `checkpoint` (written already) at the same time: two
    /// syncs of independent files, issued together rather than one after the other.
    fn write_state_with(
        &mut self,
        clean: bool,
        head: u32,
        head_end: u32,
        pending: Pending,
        checkpoint: Option<checkpoint::Unsynced>,
    ) -> Result<()> {
        // Only a forged state file gets here: 2^64 commits do not happen.
        let seq = self
            .state
            .seq
            .checked_add(1)
            .ok_or_else(|| Error::InvalidDbState {
                reason: format!(
                    "{}: the commit sequence number is exhausted",
                    self.state_path.display()
                ),
            })?;
        let next = State {
            seq,
            clean,
            head,
            head_end,
            pending,
            checkpoint: match &self.py_checkpoint {
                Some(c) if !clean => c.id(),
                _ => 0,
            },
        };
        Self::io(
            "write state file",
            &self.state_path,
            self.state_file
                .write_all_at(&next.encode(&self.format), next.slot_offset()),
        )?;
        if self.sync {
            let state = || {
                Self::io(
                    "sync state file",
                    &self.state_path,
                    self.state_file.sync_data(),
                )
            };
            match checkpoint {
                None => state()?,
                Some(c) => std::thread::scope(|s| {
                    let other = c.clone();
                    match std::thread::Builder::new().spawn_scoped(s, move || other.sync()) {
                        Ok(h) => {
                            let r = state();
                            let o = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                            r.and(o)
                        }
                        // No thread to spare: one after the other.
                        Err(_) => state().and_then(|()| c.sync()),
                    }
                })?,
            }
        }
        self.state = next;
        self.marked_dirty = !clean;
        Ok(())
    }

    /// The last 8 bytes of the head file at its committed length.
    fn head_tail(&mut self) -> Result<[u8; 8]> {
        if let Some(t) = self.head_tail {
            return Ok(t);
        }
        let info = self.head_info()?;
        let path = self.data_path(self.catalog.head);
        let len = HEADER_LEN + info.data_len();
        let mut tail = [0u8; 8];
        Self::io(
            "read data file",
            &path,
            self.head_file.read_exact_at(&mut tail, len - 8),
        )?;
        self.head_tail = Some(tail);
        Ok(tail)
    }

    fn head_info(&self) -> Result<FileInfo> {
        self.catalog
            .head_info()
            .copied()
            .ok_or_else(|| Error::InvalidDbState {
                reason: "the head file is missing from the catalog".into(),
            })
    }

    /// The checkpoint entry of the head file at its committed length.
    fn head_entry(&mut self) -> Result<PyCheckpointEntry> {
        let info = self.head_info()?;
        Ok(PyCheckpointEntry {
            index: u64::from(self.catalog.head),
            file_len: HEADER_LEN + info.data_len(),
            last_bytes: self.head_tail()?,
        })
    }

    /// Points the checkpoint at the head file's first `len` bytes (a trim's new length),
    /// reading the bytes it records from the file as it is now.
    fn checkpoint_head_at(&mut self, len: u64) -> Result<()> {
        let mut tail = [0u8; 8];
        let path = self.data_path(self.catalog.head);
        Self::io(
            "read data file",
            &path,
            self.head_file.read_exact_at(&mut tail, len - 8),
        )?;
        self.set_checkpoint(vec![PyCheckpointEntry {
            index: u64::from(self.catalog.head),
            file_len: len,
            last_bytes: tail,
        }])?;
        self.head_tail = Some(tail);
        Ok(())
    }

    /// Makes our Python-format checkpoint hold `entries` (if this session has one).
    fn set_checkpoint(&mut self, entries: Vec<PyCheckpointEntry>) -> Result<()> {
        match &mut self.py_checkpoint {
            Some(c) => c.set(
                self.fs.as_ref(),
                &self.dir,
                &self.naming,
                entries,
                self.sync,
            ),
            None => Ok(()),
        }
    }

    /// Before the first change of the session: publishes the Python-format checkpoint of
    /// the committed state, then writes a dirty state record naming it. From then on,
    /// recovery (ours, or the Python library's through the checkpoint) cuts whatever a
    /// crash leaves past the committed end.
    fn mark_dirty(&mut self) -> Result<()> {
        if self.marked_dirty || seeded!(self.fs, NoDirtyMarkBeforeFirstWrite) {
            return Ok(());
        }
        if self.py_checkpoint.is_none() {
            let entry = self.head_entry()?;
            self.py_checkpoint = Some(PyCheckpoint::create(
                self.fs.as_ref(),
                &self.dir,
                &self.naming,
                vec![entry],
                self.sync,
            )?);
        }
        let head = self.catalog.head;
        let end = self.head_info()?.end;
        self.write_state(false, head, end, Pending::None)
    }

    /// Checks that the segments continue the committed head, each after the previous one;
    /// returns the indexes they create.
    fn check_continues(&self, segments: &[&Segment]) -> Result<Vec<u32>> {
        let mut created = Vec::new();
        let mut head = self.catalog.head;
        let mut end = self.head_info()?.end;
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
                created.push(seg.index);
                head = seg.index;
            } else if seg.index != head || seg.start != end {
                return Err(internal(format!(
                    "segment {}@{} does not continue head {head} at {end}",
                    seg.index, seg.start
                )));
            }
            end = seg.end();
        }
        Ok(created)
    }

    /// Lists the files `created` in the checkpoint (at their header's length) before they
    /// exist, so that no crash leaves a file of ours that the Python library's rollback
    /// does not cover; then creates them with their header.
    fn create_files(&mut self, created: &[u32]) -> Result<Vec<Arc<dyn FsFile>>> {
        let mut files = Vec::with_capacity(created.len());
        if created.is_empty() {
            return Ok(files);
        }
        let mut entries = vec![self.head_entry()?];
        entries.extend(created.iter().map(|&i| empty_file_entry(i)));
        self.set_checkpoint(entries)?;
        for &index in created {
            let path = self.data_path(index);
            files.push(create_data_file(
                self.fs.as_ref(),
                &path,
                self.genesis,
                0,
                self.sync,
            )?);
        }
        if self.sync {
            Self::io("sync directory", &self.dir, self.fs.sync_dir(&self.dir))?;
        }
        Ok(files)
    }

    /// Appends the segments and commits them as one batch. On return the data is persisted
    /// (synced with `Durability::Sync`) and the deltas describe the new catalog.
    ///
    /// Segments must continue the committed head: the first starts at the head's committed
    /// end (or creates the next index), each next one likewise.
    pub(crate) fn write_batch(&mut self, segments: &[&Segment]) -> Result<Vec<Delta>> {
        self.mark_dirty()?;
        let committed = self.head_info()?;
        let created = self.check_continues(segments)?;
        let new_files = self.create_files(&created)?;
        let mut new_files = new_files.into_iter();
        let (head, end) = segments
            .last()
            .map_or((self.catalog.head, committed.end), |s| (s.index, s.end()));
        let mut files: Vec<(Arc<dyn FsFile>, u32)> = Vec::with_capacity(segments.len());
        for seg in segments {
            let file = if seg.new_file {
                (new_files.next().expect("one per new segment"), 0)
            } else {
                match files.last() {
                    Some((f, trim)) => (Arc::clone(f), *trim),
                    None => (Arc::clone(&self.head_file), committed.trim_offset),
                }
            };
            files.push(file);
        }
        // Write the data at the committed end (never O_APPEND), and sync it.
        let mut deltas = Vec::with_capacity(segments.len() + 1);
        let mut tail = if segments.first().is_some_and(|s| s.new_file) {
            [0; 8]
        } else {
            self.head_tail()?
        };
        let mut touched: Vec<(Arc<dyn FsFile>, u32)> = Vec::new();
        for (seg, (f, trim)) in segments.iter().zip(&files) {
            let path = self.data_path(seg.index);
            let offset = HEADER_LEN + u64::from(seg.start - trim);
            Self::io(
                "write data file",
                &path,
                write_with_writeback(f.as_ref(), &seg.data, offset),
            )?;
            if seg.new_file {
                tail = [0; 8];
            }
            tail = roll_tail(tail, &seg.data);
            if !touched.iter().any(|(_, i)| *i == seg.index) {
                touched.push((Arc::clone(f), seg.index));
            }
            deltas.push(Delta::SetEnd {
                index: seg.index,
                trim_offset: *trim,
                end: seg.end(),
            });
        }
        if self.sync && !seeded!(self.fs, AckBeforeSync) {
            for (f, i) in &touched {
                let path = self.data_path(*i);
                let mut r = f.sync_data();
                if r.is_err() && seeded!(self.fs, RetryFailedSync) {
                    r = f.sync_data();
                }
                Self::io("sync data file", &path, r)?;
            }
        }
        // The commit: the checkpoint and the state record name the new end.
        let head_trim = files.last().map_or(committed.trim_offset, |(_, t)| *t);
        let entry = PyCheckpointEntry {
            index: u64::from(head),
            file_len: HEADER_LEN + u64::from(end - head_trim),
            last_bytes: tail,
        };
        let unsynced = match &mut self.py_checkpoint {
            Some(c) => c.write(
                self.fs.as_ref(),
                &self.dir,
                &self.naming,
                vec![entry],
                self.sync,
            )?,
            None => None,
        };
        self.write_state_with(false, head, end, Pending::None, unsynced)?;
        deltas.push(Delta::Head { index: head });
        for d in &deltas {
            self.catalog.apply(d);
        }
        if let Some((f, _)) = files.last() {
            self.head_file = Arc::clone(f);
        }
        self.head_tail = Some(tail);
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
    /// authoritative as they are. Removes the session's checkpoint: from here on the
    /// directory is a plain aiodiskdb 0.2.x directory.
    pub(crate) fn close_clean(&mut self) -> Result<()> {
        // Nothing changed since a clean state was found: leave it as it is.
        if !self.marked_dirty && self.state.clean && self.py_checkpoint.is_none() {
            return Ok(());
        }
        let head = self.catalog.head;
        let end = self.catalog.head_info().map_or(0, |f| f.end);
        self.write_state(true, head, end, Pending::None)?;
        match self.py_checkpoint.take() {
            Some(c) => c.remove(self.fs.as_ref(), &self.dir, self.sync),
            None => Ok(()),
        }
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
        // Validated: from here on the directory changes.
        self.mark_dirty()?;
        let path = self.data_path(index);
        let new_len = HEADER_LEN + u64::from(new_end - info.trim_offset);
        if is_head {
            // The new end must be committed before the bytes go, or recovery would find
            // committed data missing; the checkpoint likewise, or the Python library would
            // find the file shorter than it says and refuse to start.
            if seeded!(self.fs, TruncateBeforeCommit) {
                Self::io("truncate data file", &path, self.head_file.set_len(new_len))?;
            }
            self.checkpoint_head_at(new_len)?;
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
        // Validated: from here on the directory changes.
        self.mark_dirty()?;
        let is_head = index == self.catalog.head;
        let path = self.data_path(index);
        let temp = self.path(&self.naming.temp_file(index));
        match self.fs.remove(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove temp file", &temp, e)),
        }
        let dst = self.copy_to_temp(index, info, to, &temp)?;
        if self.sync && !seeded!(self.fs, RenameBeforeTempSynced) {
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
            // The head file is shorter now: until the checkpoint says so too, the Python
            // library would refuse to start (never cut anything).
            self.checkpoint_head_at(HEADER_LEN + u64::from(info.end - to))?;
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

    /// Writes a new file at `temp` holding the bytes of `index` from logical `to` on, with
    /// `to` as its trim offset.
    fn copy_to_temp(
        &self,
        index: u32,
        info: FileInfo,
        to: u32,
        temp: &Path,
    ) -> Result<Arc<dyn FsFile>> {
        let path = self.data_path(index);
        let src = if index == self.catalog.head {
            Arc::clone(&self.head_file)
        } else {
            Self::io("open data file", &path, self.fs.open_ro(&path))?
        };
        let dst = create_data_file(self.fs.as_ref(), temp, self.genesis, to, false)?;
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
            Self::io("write temp file", temp, dst.write_all_at(&chunk[..n], out))?;
            pos += n as u64;
            out += n as u64;
        }
        Ok(dst)
    }

    /// Deletes the data file of `index`. Dropping the head moves appends to a new index.
    pub(crate) fn drop_index(&mut self, index: u32) -> Result<TrimOutcome> {
        let info = self.file_info(index)?;
        let path = self.data_path(index);
        let mut deltas = Vec::new();
        if index == self.catalog.head {
            let next = u64::from(index) + 1;
            let Some(next) = u32::try_from(next).ok().filter(|_| next <= self.max_index) else {
                return Err(Error::DatabaseFull {
                    index: next,
                    padding: self.naming.padding,
                });
            };
            self.mark_dirty()?;
            // The new head is listed in the checkpoint before it exists (see write_batch),
            // and the file about to go is left out once the new head is in place: the
            // Python library appends to the highest index and must find it empty.
            let entry = self.head_entry()?;
            self.set_checkpoint(vec![entry, empty_file_entry(next)])?;
            let next_path = self.data_path(next);
            let f = create_data_file(self.fs.as_ref(), &next_path, self.genesis, 0, self.sync)?;
            if self.sync {
                Self::io("sync directory", &self.dir, self.fs.sync_dir(&self.dir))?;
            }
            self.set_checkpoint(vec![empty_file_entry(next)])?;
            self.write_state(false, next, 0, Pending::Drop { index })?;
            self.head_file = f;
            self.head_tail = Some([0; 8]);
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
            self.mark_dirty()?;
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

/// Data of a batch is written in pieces of this size, each handed to writeback at once.
const WRITEBACK_CHUNK: usize = 1 << 20;

/// Writes `data` at `offset`; a large write goes in 1 MiB pieces, each followed by a
/// writeback hint, so that the disk writes while the rest is copied (without it, a 16 MiB
/// batch was copied whole, then synced whole: about 0.6 of the speed on the development
/// VM). Small batches are one write, with no hint.
fn write_with_writeback(file: &dyn FsFile, data: &[u8], offset: u64) -> std::io::Result<()> {
    if data.len() <= WRITEBACK_CHUNK {
        return file.write_all_at(data, offset);
    }
    let mut at = offset;
    for piece in data.chunks(WRITEBACK_CHUNK) {
        file.write_all_at(piece, at)?;
        file.start_writeback(at, piece.len() as u64);
        at += piece.len() as u64;
    }
    Ok(())
}

pub(crate) fn read_up_to(f: &dyn FsFile, buf: &mut [u8]) -> std::io::Result<usize> {
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
pub(crate) fn create_data_file(
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
