//! The synchronous storage core: the write side of a directory. Committing a batch of
//! appends (here), the trims (`trim.rs`), our Python-format checkpoint (`checkpoint.rs`).
//! Plain blocking Rust over the [`Fs`] seam; it knows nothing about tokio. Every fsync of
//! the engine is issued in this module and in recovery.
//!
//! Commit protocol (see `docs/design.md`): new files are listed in our Python-format
//! checkpoint, then created with their header, before any data goes into them; data is
//! written at the committed end of the head file, the touched files are synced, and only
//! then are the checkpoint (the head at its new length) and the state record (head index,
//! committed end) written and synced. The state record is the commit point: recovery cuts
//! the head file back to it and deletes newer files. The checkpoint lets the Python library
//! do the same rollback if it opens the directory first.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::buffer::Segment;
use crate::catalog::{Catalog, FileInfo};
use crate::datafile::DataFile;
use crate::error::{Error, IoContext, Result};
use crate::format::{Format, Pending, PyCheckpointEntry, State};
use crate::fs::{seeded, Fs, FsFile};

pub(crate) use checkpoint::PyCheckpoint;
use checkpoint::{empty_file_entry, Unsynced};

mod checkpoint;
mod trim;

pub(crate) use trim::TrimOutcome;

/// What the storage core needs to know of the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) dir: PathBuf,
    /// The naming and genesis bytes of the data files.
    pub(crate) format: Format,
    /// `Durability::Sync`: every acknowledgement waits for the syncs.
    pub(crate) sync: bool,
    pub(crate) create_if_missing: bool,
    /// Recover what is pending on open (`false`: refuse instead).
    pub(crate) clean_stale_data: bool,
    /// How long `open` waits for a closing handle of this process to release the directory.
    pub(crate) lock_wait: Duration,
}

impl Options {
    pub(crate) fn data_path(&self, index: u32) -> PathBuf {
        self.dir.join(self.format.naming.data_file(index))
    }

    pub(crate) fn state_path(&self) -> PathBuf {
        self.dir.join(self.format.naming.state_file())
    }

    /// The largest index whose file name fits the padding.
    pub(crate) fn max_index(&self) -> u64 {
        self.format.naming.max_index()
    }
}

/// The locked state file and the state it holds, as recovery leaves them to the store.
#[derive(Debug)]
pub(crate) struct StateFile {
    pub(crate) path: PathBuf,
    pub(crate) file: Arc<dyn FsFile>,
    /// The newest state on disk (a fresh one, never written, for a new directory).
    pub(crate) state: State,
}

/// The writer's side of a directory: the locked state file, the head file, the committed
/// catalog and the session's checkpoint. Owned by the flusher; every method blocks.
#[derive(Debug)]
pub(crate) struct Store {
    fs: Arc<dyn Fs>,
    opts: Options,
    state_file: StateFile,
    /// Whether the state on disk is a dirty record of this session. Until the first
    /// change, the directory is left as it was found (a read-only session writes nothing);
    /// every change first makes sure of a dirty record, so that from then on the state
    /// file is the commit point.
    marked_dirty: bool,
    /// The session's Python-format checkpoint, from the first change to the clean stop.
    py_checkpoint: Option<PyCheckpoint>,
    head_file: DataFile,
    /// The last 8 bytes of the head file at its committed length (what a checkpoint entry
    /// records), once known: read when first needed, then kept up to date.
    head_tail: Option<[u8; 8]>,
    catalog: Catalog,
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

fn internal(reason: String) -> Error {
    Error::state(reason)
}

impl Store {
    /// The store of a recovered directory: recovery hands over the locked state file, the
    /// open head file, the catalog and the interrupted session's checkpoint, if any. When
    /// there is one, it is pointed at the recovered head (written only if it differs).
    ///
    /// # Errors
    /// [`Error::InvalidDbState`] if the state's sequence number is exhausted (a forged
    /// state file: the first change would need the next one); [`Error::Io`].
    pub(crate) fn new(
        fs: Arc<dyn Fs>,
        opts: Options,
        state_file: StateFile,
        head_file: DataFile,
        catalog: Catalog,
        py_checkpoint: Option<PyCheckpoint>,
    ) -> Result<Store> {
        let mut store = Store {
            fs,
            opts,
            state_file,
            marked_dirty: false,
            py_checkpoint,
            head_file,
            head_tail: None,
            catalog,
        };
        // Refuse now, with the directory untouched, rather than at the first flush.
        if store.state_file.state.seq == u64::MAX {
            return Err(store.seq_exhausted());
        }
        if store.py_checkpoint.is_some() {
            let entry = store.head_entry()?;
            store.set_checkpoint(vec![entry])?;
        }
        Ok(store)
    }

    fn seq_exhausted(&self) -> Error {
        Error::state(format!(
            "{}: the commit sequence number is exhausted",
            self.state_file.path.display()
        ))
    }

    fn data_path(&self, index: u32) -> PathBuf {
        self.opts.data_path(index)
    }

    fn dir(&self) -> &Path {
        &self.opts.dir
    }

    /// A snapshot of the committed catalog.
    pub(crate) fn catalog(&self) -> Catalog {
        self.catalog.clone()
    }

    fn sync_dir(&self) -> Result<()> {
        if self.opts.sync {
            self.fs
                .sync_dir(self.dir())
                .ctx("sync directory", self.dir())?;
        }
        Ok(())
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
        checkpoint: Option<Unsynced>,
    ) -> Result<()> {
        // Only a forged state file gets here: 2^64 commits do not happen.
        let seq = self
            .state_file
            .state
            .seq
            .checked_add(1)
            .ok_or_else(|| self.seq_exhausted())?;
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
        let path = &self.state_file.path;
        self.state_file
            .file
            .write_all_at(&next.encode(&self.opts.format), next.slot_offset())
            .ctx("write state file", path)?;
        if self.opts.sync {
            let state = || {
                self.state_file
                    .file
                    .sync_data()
                    .ctx("sync state file", path)
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
        self.state_file.state = next;
        self.marked_dirty = !clean;
        Ok(())
    }

    /// The last 8 bytes of the head file at its committed length.
    fn head_tail(&mut self) -> Result<[u8; 8]> {
        if let Some(t) = self.head_tail {
            return Ok(t);
        }
        let end = self.catalog.head_info().end;
        let tail = self
            .head_file
            .tail(end)
            .ctx("read data file", self.head_file.path())?;
        self.head_tail = Some(tail);
        Ok(tail)
    }

    /// The checkpoint entry of the head file at its committed length.
    fn head_entry(&mut self) -> Result<PyCheckpointEntry> {
        Ok(PyCheckpointEntry {
            index: u64::from(self.catalog.head()),
            file_len: self.head_file.len_at(self.catalog.head_info().end),
            last_bytes: self.head_tail()?,
        })
    }

    /// Points the checkpoint at the head file ending at logical `end` (a trim's new end),
    /// reading the bytes it records from the file as it is now.
    fn checkpoint_head_at(&mut self, end: u32) -> Result<()> {
        let tail = self
            .head_file
            .tail(end)
            .ctx("read data file", self.head_file.path())?;
        self.set_checkpoint(vec![PyCheckpointEntry {
            index: u64::from(self.catalog.head()),
            file_len: self.head_file.len_at(end),
            last_bytes: tail,
        }])?;
        self.head_tail = Some(tail);
        Ok(())
    }

    /// Makes our Python-format checkpoint hold `entries` (if this session has one).
    fn set_checkpoint(&mut self, entries: Vec<PyCheckpointEntry>) -> Result<()> {
        match &mut self.py_checkpoint {
            Some(c) => c.set(self.fs.as_ref(), &self.opts, entries),
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
                &self.opts,
                vec![entry],
            )?);
        }
        let (head, end) = (self.catalog.head(), self.catalog.head_info().end);
        self.write_state(false, head, end, Pending::None)
    }

    /// Checks that the segments continue the committed head, each after the previous one;
    /// returns the indexes they create.
    fn check_continues(&self, segments: &[&Segment]) -> Result<Vec<u32>> {
        let mut created = Vec::new();
        let mut head = self.catalog.head();
        let mut end = self.catalog.head_info().end;
        for seg in segments {
            if seg.new_file {
                if seg.index != head + 1 || seg.start != 0 {
                    return Err(internal(format!(
                        "new file segment {}@{} does not follow head {head}",
                        seg.index, seg.start
                    )));
                }
                if u64::from(seg.index) > self.opts.max_index() {
                    return Err(Error::DatabaseFull {
                        index: u64::from(seg.index),
                        padding: self.opts.format.naming.padding,
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
    fn create_files(&mut self, created: &[u32]) -> Result<Vec<DataFile>> {
        let mut files = Vec::with_capacity(created.len());
        if created.is_empty() {
            return Ok(files);
        }
        let mut entries = vec![self.head_entry()?];
        entries.extend(created.iter().map(|&i| empty_file_entry(i)));
        self.set_checkpoint(entries)?;
        for &index in created {
            files.push(DataFile::create(
                self.fs.as_ref(),
                &self.data_path(index),
                self.opts.format.genesis,
                0,
                self.opts.sync,
            )?);
        }
        self.sync_dir()?;
        Ok(files)
    }

    /// Appends the segments and commits them as one batch. On return the data is persisted
    /// (synced with `Durability::Sync`) and [`Store::catalog`] includes it.
    ///
    /// Segments must continue the committed head: the first starts at the head's committed
    /// end (or creates the next index), each next one likewise.
    pub(crate) fn write_batch(&mut self, segments: &[&Segment]) -> Result<()> {
        if seeded!(self.fs, SplitTransaction) && segments.len() > 1 {
            let (first, rest) = segments.split_at(segments.len() / 2);
            self.commit(first)?;
            return self.commit(rest);
        }
        self.commit(segments)
    }

    fn commit(&mut self, segments: &[&Segment]) -> Result<()> {
        self.mark_dirty()?;
        let created = self.check_continues(segments)?;
        let mut new_files = self.create_files(&created)?.into_iter();
        let mut file = self.head_file.clone();
        let mut tail = if segments.first().is_some_and(|s| s.new_file) {
            [0; 8]
        } else {
            self.head_tail()?
        };
        // Write the data at the committed end (never O_APPEND).
        let mut touched: Vec<DataFile> = Vec::new();
        for seg in segments {
            if seg.new_file {
                file = new_files.next().expect("one file per new segment");
                tail = [0; 8];
            }
            file.write(seg.start, &seg.data)
                .ctx("write data file", file.path())?;
            tail = roll_tail(tail, &seg.data);
            if touched.last().is_none_or(|t| t.path() != file.path()) {
                touched.push(file.clone());
            }
        }
        if self.opts.sync {
            for f in &touched {
                let mut r = f.sync();
                if r.is_err() && seeded!(self.fs, RetryFailedSync) {
                    r = f.sync();
                }
                r.ctx("sync data file", f.path())?;
            }
        }
        // The commit: the checkpoint and the state record name the new end.
        let (head, end) = segments
            .last()
            .map_or((self.catalog.head(), self.catalog.head_info().end), |s| {
                (s.index, s.end())
            });
        let entry = PyCheckpointEntry {
            index: u64::from(head),
            file_len: file.len_at(end),
            last_bytes: tail,
        };
        let unsynced = match &mut self.py_checkpoint {
            Some(c) => c.write(self.fs.as_ref(), &self.opts, vec![entry])?,
            None => None,
        };
        self.write_state_with(false, head, end, Pending::None, unsynced)?;
        for seg in segments {
            if seg.new_file {
                self.catalog.roll_to(seg.index);
            }
            self.catalog.set_head_end(seg.end());
        }
        self.head_file = file;
        self.head_tail = Some(tail);
        Ok(())
    }

    /// Whether `seg` continues the committed head (it has not been written yet).
    pub(crate) fn continues(&self, seg: &Segment) -> bool {
        let head = self.catalog.head();
        if seg.new_file {
            seg.index == head + 1
        } else {
            seg.index == head && seg.start == self.catalog.head_info().end
        }
    }

    /// Marks the directory cleanly stopped: everything is synced and the data files are
    /// authoritative as they are. Removes the session's checkpoint: from here on the
    /// directory is a plain aiodiskdb 0.2.x directory.
    pub(crate) fn close_clean(&mut self) -> Result<()> {
        // Nothing changed since a clean state was found: leave it as it is.
        if !self.marked_dirty && self.state_file.state.clean && self.py_checkpoint.is_none() {
            return Ok(());
        }
        let (head, end) = (self.catalog.head(), self.catalog.head_info().end);
        self.write_state(true, head, end, Pending::None)?;
        match self.py_checkpoint.take() {
            Some(c) => c.remove(self.fs.as_ref(), &self.opts),
            None => Ok(()),
        }
    }

    fn file_info(&self, index: u32) -> Result<FileInfo> {
        self.catalog
            .get(index)
            .ok_or(Error::IndexDoesNotExist { index })
    }
}
