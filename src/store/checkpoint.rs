//! Our Python-format checkpoint, a guard: from the first change of a session until its
//! clean stop, a `.checkpoint-{id}` in the format of aiodiskdb 0.2.x makes the Python
//! library refuse to start on the directory, changing nothing, until our recovery has run
//! (our `open`, or `aiodiskdb recover`).
//!
//! Its one entry names the head file cut to its header, with last bytes that a header
//! never holds (bytes 16..24 of a header are reserved, zero; the entry says `0xff` × 8).
//! aiodiskdb 0.2.3 applies a pending checkpoint on start, on a copy of each file: the bytes
//! differ, so it raises ("File corrupted") and leaves the file and the checkpoint as they
//! were; a missing head file makes its copy raise as well. So after a crash of ours the
//! Python library never appends behind our uncommitted tail, and never serves it.
//!
//! Why not a checkpoint of our committed lengths, which the Python library would apply
//! itself: it trusts those lengths with no checksum of the data, so every commit would
//! have to sync it after the data, a second sync in series, which checksummed commits
//! exist to avoid.
//!
//! Our own recovery never reads the entries. It asks only whether the checkpoint a dirty
//! state names is still there: a checkpoint of ours is gone only if someone removed it
//! (a directory of an older version of ours, whose checkpoint the Python library applied;
//! or by hand), and then another writer may have appended since, so the files are taken as
//! authoritative.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::Options;
use crate::error::{IoContext, Result};
use crate::format::{encode_py_checkpoint, py_checkpoint_name, PyCheckpointEntry};
use crate::fs::{remove_if_exists, Fs};

/// The live checkpoint of a session.
#[derive(Debug)]
pub(crate) struct PyCheckpoint {
    id: u64,
    path: PathBuf,
}

impl PyCheckpoint {
    /// Its id, recorded in the state.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Publishes a guard naming `head`, whole (written under a temp name, synced, renamed,
    /// the directory synced), with an id no other checkpoint has.
    pub(crate) fn create(fs: &dyn Fs, opts: &Options, head: u32) -> Result<PyCheckpoint> {
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
        publish(fs, opts, &path, head)?;
        Ok(PyCheckpoint { id, path })
    }

    /// Takes over the checkpoint `id` that a dirty state names, rewritten as a guard of
    /// `head` unless it is one already (a directory of an older version of ours holds a
    /// checkpoint of committed lengths, which must not outlive its session).
    pub(crate) fn adopt(fs: &dyn Fs, opts: &Options, id: u64, head: u32) -> Result<PyCheckpoint> {
        let path = opts.dir.join(py_checkpoint_name(id));
        let file = fs.open_ro(&path).ctx("open python checkpoint", &path)?;
        let want = encode_py_checkpoint(&[PyCheckpointEntry::guard(head)]);
        let mut raw = vec![0u8; want.len() + 1];
        let n = file
            .read_up_to(&mut raw, 0)
            .ctx("read python checkpoint", &path)?;
        if raw[..n] != want[..] {
            publish(fs, opts, &path, head)?;
        }
        Ok(PyCheckpoint { id, path })
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

/// Writes the guard of `head` to the temp file, syncs it, and renames it to `path`.
fn publish(fs: &dyn Fs, opts: &Options, path: &Path, head: u32) -> Result<()> {
    let temp = opts.dir.join(opts.format.naming.checkpoint_temp_file());
    remove_if_exists(fs, &temp).ctx("remove temp file", &temp)?;
    let file = fs
        .create_new(&temp)
        .ctx("create python checkpoint", &temp)?;
    file.write_all_at(&encode_py_checkpoint(&[PyCheckpointEntry::guard(head)]), 0)
        .ctx("write python checkpoint", &temp)?;
    if opts.sync {
        file.sync_data().ctx("sync python checkpoint", &temp)?;
    }
    fs.rename(&temp, path)
        .ctx("rename python checkpoint", &temp)?;
    if opts.sync {
        fs.sync_dir(&opts.dir).ctx("sync directory", &opts.dir)?;
    }
    Ok(())
}
