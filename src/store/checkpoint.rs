//! Our Python-format checkpoint: from the first change of a session until its clean stop,
//! a `.checkpoint-{id}` in the format of aiodiskdb 0.2.x describes what this session has
//! committed, so that the Python library, opening the directory after a crash of ours,
//! rolls our uncommitted tail back itself before it appends (it applies a pending
//! checkpoint on start, with its default options). Our own recovery never reads the
//! entries: the state file is our commit record. It only asks whether the checkpoint its
//! dirty state names is still there; when it is gone, another writer applied it, took
//! over, and may have appended since, so the files are authoritative.
//!
//! The entries always describe committed data, durably before anything depends on them:
//! - the head file at its committed length, updated with every commit and trim;
//! - before a batch writes into new files, those files at their header's length too, so
//!   that a rollback cuts them to empty data files instead of leaving our torn bytes in
//!   the file the Python library appends to.
//!
//! One entry replaced by one is written in place (aiodiskdb 0.2.3 refuses an entry torn
//! between two versions, since its length and last bytes no longer match); every other
//! change goes through a temp file and a rename, so that the Python library never applies
//! part of a multi-file rollback.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Options;
use crate::error::{IoContext, Result};
use crate::format::{
    decode_py_checkpoint, encode_py_checkpoint, py_checkpoint_name, PyCheckpointEntry, HEADER_LEN,
};
use crate::fs::{remove_if_exists, Fs, FsFile};

/// The entry of a data file that holds only its header: a rollback empties it.
pub(crate) fn empty_file_entry(index: u32) -> PyCheckpointEntry {
    PyCheckpointEntry {
        index: u64::from(index),
        file_len: HEADER_LEN,
        // Header bytes 16..24: reserved, zero.
        last_bytes: [0; 8],
    }
}

/// The live checkpoint of a session.
#[derive(Debug)]
pub(crate) struct PyCheckpoint {
    id: u64,
    path: PathBuf,
    file: Arc<dyn FsFile>,
    entries: Vec<PyCheckpointEntry>,
}

impl PyCheckpoint {
    /// Its id, recorded in the state.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Publishes a new checkpoint holding `entries`, whole (written under a temp name,
    /// synced, renamed, the directory synced), with an id no other checkpoint has.
    pub(crate) fn create(
        fs: &dyn Fs,
        opts: &Options,
        entries: Vec<PyCheckpointEntry>,
    ) -> Result<PyCheckpoint> {
        let existing = fs.list(&opts.dir).ctx("list directory", &opts.dir)?;
        // Milliseconds since the epoch, as the Python library names its own; never 0.
        let mut id = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .max(1);
        while existing.iter().any(|n| *n == *py_checkpoint_name(id)) {
            id += 1;
        }
        let path = opts.dir.join(py_checkpoint_name(id));
        let file = publish(fs, opts, &path, &entries)?;
        Ok(PyCheckpoint {
            id,
            path,
            file,
            entries,
        })
    }

    /// Opens the checkpoint `id` that a dirty state names, for recovery to bring it in
    /// line with the recovered files.
    pub(crate) fn open(fs: &dyn Fs, dir: &Path, id: u64) -> Result<PyCheckpoint> {
        let path = dir.join(py_checkpoint_name(id));
        let file = fs.open_rw(&path).ctx("open python checkpoint", &path)?;
        let mut raw = vec![0u8; 1 << 16];
        let n = file
            .read_up_to(&mut raw, 0)
            .ctx("read python checkpoint", &path)?;
        // A torn or foreign tail reads as entries that differ from any we want, so that
        // the next `set` rewrites the file whole.
        let mut entries = decode_py_checkpoint(&raw[..n]);
        if n % 52 != 0 || encode_py_checkpoint(&entries) != raw[..n] {
            entries.clear();
        }
        Ok(PyCheckpoint {
            id,
            path,
            file,
            entries,
        })
    }

    /// Makes the checkpoint hold `entries` (durably with `sync`). Nothing is written when it
    /// already does.
    pub(crate) fn set(
        &mut self,
        fs: &dyn Fs,
        opts: &Options,
        entries: Vec<PyCheckpointEntry>,
    ) -> Result<()> {
        match self.write(fs, opts, entries)? {
            Some(unsynced) => unsynced.sync(),
            None => Ok(()),
        }
    }

    /// As [`PyCheckpoint::set`], but an entry replaced in place is left for the caller to
    /// sync (so that it can be synced together with the state record).
    pub(crate) fn write(
        &mut self,
        fs: &dyn Fs,
        opts: &Options,
        entries: Vec<PyCheckpointEntry>,
    ) -> Result<Option<Unsynced>> {
        if entries == self.entries {
            return Ok(None);
        }
        let mut unsynced = None;
        if entries.len() == 1 && self.entries.len() == 1 {
            let bytes = encode_py_checkpoint(&entries);
            self.file
                .write_all_at(&bytes, 0)
                .ctx("write python checkpoint", &self.path)?;
            if opts.sync {
                unsynced = Some(Unsynced {
                    file: Arc::clone(&self.file),
                    path: self.path.clone(),
                });
            }
        } else {
            // Forget the old contents first: if publishing fails half way, the next `set`
            // must not take the file for up to date.
            self.entries.clear();
            self.file = publish(fs, opts, &self.path, &entries)?;
        }
        self.entries = entries;
        Ok(unsynced)
    }

    /// Removes the checkpoint (a clean stop): the directory is a plain 0.2.x directory.
    pub(crate) fn remove(self, fs: &dyn Fs, opts: &Options) -> Result<()> {
        remove_if_exists(fs, &self.path).ctx("remove python checkpoint", &self.path)?;
        if opts.sync {
            fs.sync_dir(&opts.dir).ctx("sync directory", &opts.dir)?;
        }
        Ok(())
    }
}

/// A checkpoint written in place and not synced yet.
#[derive(Debug, Clone)]
pub(crate) struct Unsynced {
    file: Arc<dyn FsFile>,
    path: PathBuf,
}

impl Unsynced {
    pub(crate) fn sync(self) -> Result<()> {
        self.file
            .sync_data()
            .ctx("sync python checkpoint", &self.path)
    }
}

/// Writes `entries` to the temp file, syncs it, and renames it to `path`.
fn publish(
    fs: &dyn Fs,
    opts: &Options,
    path: &Path,
    entries: &[PyCheckpointEntry],
) -> Result<Arc<dyn FsFile>> {
    let temp = opts.dir.join(opts.format.naming.checkpoint_temp_file());
    remove_if_exists(fs, &temp).ctx("remove temp file", &temp)?;
    let file = fs
        .create_new(&temp)
        .ctx("create python checkpoint", &temp)?;
    file.write_all_at(&encode_py_checkpoint(entries), 0)
        .ctx("write python checkpoint", &temp)?;
    if opts.sync {
        file.sync_data().ctx("sync python checkpoint", &temp)?;
    }
    fs.rename(&temp, path)
        .ctx("rename python checkpoint", &temp)?;
    if opts.sync {
        fs.sync_dir(&opts.dir).ctx("sync directory", &opts.dir)?;
    }
    Ok(file)
}
