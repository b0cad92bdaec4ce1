//! The synchronous storage core: the write side of a directory. The session record, the
//! head and the sealed files (here), committing a batch of appends (`commit.rs`), the trims
//! (`trim.rs`), our Python-format checkpoint (`checkpoint.rs`). Plain blocking Rust over the
//! [`Fs`] seam; it knows nothing about tokio. Every fsync of the engine is issued in this
//! module and in recovery.
//!
//! Records (see `docs/design.md`): the state file says whose session it is, which file is
//! the head and which manifest lists the sealed files; it is written when a session starts
//! or stops, when the head changes, and around trims. A commit of the head is a slot in the
//! head's item index naming the batch's end and checksums: the data, the index and our
//! checkpoint are synced in one round, and recovery accepts the newest commit whose batch
//! matches its checksums.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use crate::catalog::{Catalog, FileInfo};
use crate::datafile::DataFile;
use crate::error::{Error, IoContext, Result};
use crate::format::{Format, IndexHeader, Manifest, Pending, RemoteId, Sealed, State};
use crate::fs::{seeded, Fs, FsFile};
use crate::index::IndexFile;

pub(crate) use checkpoint::PyCheckpoint;

mod checkpoint;
mod commit;
mod tier;
mod trim;

#[cfg(feature = "tiering")]
pub(crate) use tier::{FileCopy, Place};
pub(crate) use trim::Fetched;
#[cfg(feature = "tiering")]
pub(crate) use trim::{ltrim_check_range, rtrim_check_range};

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
    /// Where remote files go, when tiering is configured (`None`: a directory whose
    /// manifest records remote files is refused).
    pub(crate) remote: Option<RemoteId>,
}

impl Options {
    pub(crate) fn data_path(&self, index: u32) -> PathBuf {
        self.dir.join(self.format.naming.data_file(index))
    }

    pub(crate) fn state_path(&self) -> PathBuf {
        self.dir.join(self.format.naming.state_file())
    }

    pub(crate) fn index_path(&self, index: u32) -> PathBuf {
        self.dir.join(self.format.naming.index_file(index))
    }

    pub(crate) fn manifest_path(&self, generation: u64) -> PathBuf {
        self.dir.join(self.format.naming.manifest_file(generation))
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

/// The head as recovery leaves it to the store.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) file: DataFile,
    /// Its item index; `None` for a head we did not create (another writer's, or one
    /// written before item indexes), until the first change of the session indexes it from
    /// its end on.
    pub(crate) idx: Option<IndexFile>,
    /// The sequence number of its newest commit slot.
    pub(crate) seq: u64,
}

/// Running checksums of the head, for its manifest record when it is sealed: of its data
/// bytes from its trim offset, and of its index entries. Unknown for a head found at open
/// (computed from the files when it is sealed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sums {
    data: u32,
    entries: u32,
}

/// The writer's side of a directory: the locked state file, the head file and its item
/// index, the committed catalog and manifest, and the session's checkpoint. Owned by the
/// flusher; every method blocks.
#[derive(Debug)]
pub(crate) struct Store {
    fs: Arc<dyn Fs>,
    opts: Options,
    state_file: StateFile,
    /// Whether the state on disk is a dirty record of this session. Until the first
    /// change, the directory is left as it was found (a read-only session writes nothing);
    /// every change first makes sure of a dirty record, so that from then on recovery
    /// checks the head's commits.
    marked_dirty: bool,
    /// The session's Python-format checkpoint, from the first change to the clean stop.
    py_checkpoint: Option<PyCheckpoint>,
    head: Head,
    head_sums: Option<Sums>,
    catalog: Catalog,
    /// The sealed files, as the state on disk names them (generation 0: none written).
    manifest: Manifest,
    /// The generation before `manifest`, deleted once a state names `manifest`.
    old_manifest: Option<u64>,
    syncer: Syncer,
}

fn internal(reason: String) -> Error {
    Error::state(reason)
}

/// A thread that syncs files for the store, so that a commit's syncs are issued at once
/// (the data file on the store's thread, the index here) without starting a thread per
/// commit. Started by the first commit that syncs two files (a store opened only to
/// recover, check or read starts none); it ends when the store is dropped.
#[derive(Debug, Default)]
struct Syncer {
    /// `None` inside: no thread could be started (every sync then runs on the store's
    /// thread, one after the other).
    tx: OnceLock<Option<mpsc::Sender<SyncJob>>>,
}

/// A file to sync, and where to send the outcome.
type SyncJob = (Arc<dyn FsFile>, mpsc::SyncSender<std::io::Result<()>>);

impl Syncer {
    /// The sync thread's channel, starting the thread on first use.
    fn sender(&self) -> Option<&mpsc::Sender<SyncJob>> {
        self.tx
            .get_or_init(|| {
                let (tx, rx) = mpsc::channel::<SyncJob>();
                std::thread::Builder::new()
                    .name("aiodiskdb-sync".into())
                    .spawn(move || {
                        for (file, reply) in rx {
                            let _ = reply.send(file.sync_data());
                        }
                    })
                    .ok()
                    .map(|_| tx)
            })
            .as_ref()
    }

    /// Syncs the files together: the first on this thread, the others on the sync thread
    /// meanwhile (the commit's data and index do not depend on each other's order:
    /// recovery checks the checksums). The first error is returned, after every sync ended.
    fn sync_together(&self, files: &[(&Arc<dyn FsFile>, &Path)]) -> Result<()> {
        let Some(((first, first_path), rest)) = files.split_first() else {
            return Ok(());
        };
        let mut pending = Vec::with_capacity(rest.len());
        let mut inline = Vec::new();
        for &(f, path) in rest {
            let (reply, outcome) = mpsc::sync_channel(1);
            match self.sender() {
                Some(tx) if tx.send((Arc::clone(f), reply)).is_ok() => {
                    pending.push((outcome, path));
                }
                _ => inline.push((f, path)),
            }
        }
        let mut result = first.sync_data().ctx("sync file", first_path);
        for (outcome, path) in pending {
            let r = outcome
                .recv()
                .unwrap_or_else(|_| Err(std::io::Error::other("the sync thread ended")));
            result = result.and(r.ctx("sync file", path));
        }
        for (f, path) in inline {
            result = result.and(f.sync_data().ctx("sync file", path));
        }
        result
    }
}

impl Store {
    /// The store of a recovered directory: recovery hands over the locked state file, the
    /// head, the catalog, the manifest and the interrupted session's checkpoint, if any.
    /// When there is one, it is pointed at the recovered head (written only if it differs).
    ///
    /// # Errors
    /// [`Error::InvalidDbState`] if the state's sequence number is exhausted (a forged
    /// state file: the first change would need the next one); [`Error::Io`].
    pub(crate) fn new(
        fs: Arc<dyn Fs>,
        opts: Options,
        state_file: StateFile,
        head: Head,
        catalog: Catalog,
        manifest: Manifest,
        py_checkpoint: Option<PyCheckpoint>,
    ) -> Result<Store> {
        let store = Store {
            fs,
            opts,
            state_file,
            marked_dirty: false,
            py_checkpoint,
            head,
            head_sums: None,
            catalog,
            manifest,
            old_manifest: None,
            syncer: Syncer::default(),
        };
        // Refuse now, with the directory untouched, rather than at the first flush.
        if store.state_file.state.seq == u64::MAX {
            return Err(store.seq_exhausted());
        }
        Ok(store)
    }

    /// Whether the sync thread was started.
    #[cfg(test)]
    pub(crate) fn sync_thread_started(&self) -> bool {
        self.syncer.tx.get().is_some()
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

    /// Writes the next state record to the other slot and syncs it: the head `head` ends
    /// at `end` with `entries` index entries, the manifest is `self.manifest`.
    fn write_state(
        &mut self,
        clean: bool,
        head: u32,
        end: u32,
        entries: u32,
        pending: Pending,
    ) -> Result<()> {
        // Only a forged state file gets here: 2^64 records do not happen.
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
            head_end: end,
            pending,
            checkpoint: match &self.py_checkpoint {
                Some(c) if !clean => c.id(),
                _ => 0,
            },
            head_entries: entries,
            manifest: self.manifest.generation,
        };
        let path = &self.state_file.path;
        let file = &self.state_file.file;
        let record = next.encode(&self.opts.format);
        // The record goes to the slot the previous one is not in, and once that is synced,
        // into the other slot too: a crash while writing either leaves one whole copy (the
        // previous record, or this one), and a byte flipped later in either slot leaves the
        // other. Never an older record that would make recovery delete what this one
        // committed.
        let other = crate::format::SLOT_LEN - next.slot_offset();
        file.write_all_at(&record, next.slot_offset())
            .ctx("write state file", path)?;
        if self.opts.sync {
            file.sync_data().ctx("sync state file", path)?;
        }
        if !seeded!(self.fs, SingleStateCopy) {
            file.write_all_at(&record, other)
                .ctx("write state file", path)?;
            if self.opts.sync {
                file.sync_data().ctx("sync state file", path)?;
            }
        }
        self.state_file.state = next;
        self.marked_dirty = !clean;
        Ok(())
    }

    /// [`Store::write_state`] for the head as the catalog has it.
    fn write_head_state(&mut self, clean: bool, pending: Pending) -> Result<()> {
        let (head, info) = (self.catalog.head(), self.catalog.head_info());
        self.write_state(clean, head, info.end, info.entries, pending)
    }

    /// Gives the head a fresh, empty item index from its committed end on (a head without
    /// one, or whose items an rtrim all cut): nothing before that end is indexed. The
    /// caller records it in a state.
    fn restart_head_index(&mut self) -> Result<()> {
        let (index, info) = (self.catalog.head(), self.catalog.head_info());
        let header = IndexHeader {
            index,
            first: info.end,
            genesis: self.opts.format.genesis,
        };
        let path = self.opts.index_path(index);
        crate::fs::remove_if_exists(self.fs.as_ref(), &path).ctx("remove index file", &path)?;
        self.head.idx = Some(IndexFile::create(
            self.fs.as_ref(),
            &path,
            header,
            self.opts.sync,
        )?);
        self.head.seq = 0;
        self.sync_dir()?;
        self.catalog.set_head_end(info.end, 0);
        self.head_sums = None;
        Ok(())
    }

    /// Before the first change of the session: gives the head an item index if it has
    /// none (from its committed end on), brings the manifest in line with the files below
    /// the head (a directory of an older version, or one another writer added files to),
    /// publishes the Python-format guard (`checkpoint.rs`), then writes a dirty state record
    /// naming it. From then on, our recovery checks the head's commits, and the Python
    /// library refuses to start until it has run.
    fn mark_dirty(&mut self) -> Result<()> {
        if self.marked_dirty {
            return Ok(());
        }
        if self.head.idx.is_none() {
            self.restart_head_index()?;
        }
        if seeded!(self.fs, NoDirtyMarkBeforeFirstWrite) {
            return Ok(());
        }
        self.reconcile_manifest()?;
        if self.py_checkpoint.is_none() {
            self.py_checkpoint = Some(PyCheckpoint::create(
                self.fs.as_ref(),
                &self.opts,
                self.catalog.head(),
            )?);
        }
        self.write_head_state(false, Pending::None)
    }

    /// Records every file below the head that the manifest does not list as it is (files
    /// of an older version, or files another writer added or grew), with what is known of
    /// them, under a new generation. Writes nothing when the manifest is in line.
    fn reconcile_manifest(&mut self) -> Result<()> {
        let mut next = self.manifest.clone();
        let mut changed = false;
        for (index, info) in self.catalog.older() {
            let listed = next
                .get(index)
                .is_some_and(|m| m.end == info.end && m.trim_offset == info.trim_offset);
            if listed {
                continue;
            }
            let record = self.seal_record(index, info, None)?;
            next = Manifest {
                generation: next.generation,
                ..next.with(index, Some(record))
            };
            changed = true;
        }
        let stale: Vec<u32> = next
            .files
            .iter()
            .map(|f| f.index)
            .filter(|i| self.catalog.get(*i).is_none() || *i >= self.catalog.head())
            .collect();
        for index in stale {
            next = Manifest {
                generation: next.generation,
                ..next.with(index, None)
            };
            changed = true;
        }
        if changed {
            next.generation = self.manifest.generation + 1;
            self.publish_manifest(next)?;
        }
        Ok(())
    }

    /// What a file below the head holds, for the manifest: `sums` when they are known,
    /// else computed from the files.
    fn seal_record(&self, index: u32, info: FileInfo, sums: Option<Sums>) -> Result<Sealed> {
        let (data, _) = DataFile::open(
            self.fs.as_ref(),
            &self.data_path(index),
            self.opts.format.genesis,
            crate::datafile::Access::Read,
        )?;
        let tail = data.tail(info.end).ctx("read data file", data.path())?;
        let sums = if let Some(s) = sums {
            s
        } else {
            Sums {
                data: crate::index::data_crc(&data, info.trim_offset, info.end)?,
                entries: self.entries_crc(index, info.entries)?,
            }
        };
        Ok(Sealed {
            index,
            trim_offset: info.trim_offset,
            end: info.end,
            entries: info.entries,
            entries_crc: sums.entries,
            data_crc: Some(sums.data),
            tail,
            remote: false,
            object: None,
        })
    }

    /// The CRC32C of the first `entries` entries of the item index of `index` (0: none).
    fn entries_crc(&self, index: u32, entries: u32) -> Result<u32> {
        let idx = IndexFile::open(self.fs.as_ref(), &self.opts.index_path(index))?;
        Ok(match idx {
            Some(idx) if entries > 0 => crate::crc::crc32c(&crate::format::encode_entries(
                &idx.entries(0, Some(entries))?,
            )),
            _ => 0,
        })
    }

    /// Writes `next` as a new manifest file and syncs it: the next state record names it.
    /// The previous generation's file stays until then (recovery deletes the one no state
    /// names).
    fn publish_manifest(&mut self, next: Manifest) -> Result<()> {
        let path = self.opts.manifest_path(next.generation);
        crate::fs::remove_if_exists(self.fs.as_ref(), &path).ctx("remove manifest", &path)?;
        let f = self.fs.create_new(&path).ctx("create manifest", &path)?;
        f.write_all_at(&next.encode(), 0)
            .ctx("write manifest", &path)?;
        if self.opts.sync {
            f.sync_data().ctx("sync manifest", &path)?;
        }
        self.sync_dir()?;
        let old = std::mem::replace(&mut self.manifest, next);
        self.old_manifest = Some(old.generation).filter(|g| *g != 0);
        Ok(())
    }

    /// Whether `seg` continues the committed head (it has not been written yet).
    pub(crate) fn continues(&self, seg: &crate::buffer::Segment) -> bool {
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
        self.write_head_state(true, Pending::None)?;
        self.forget_old_manifest()?;
        match self.py_checkpoint.take() {
            Some(c) => c.remove(self.fs.as_ref(), &self.opts),
            None => Ok(()),
        }
    }

    /// After a state names the current manifest: deletes the previous one (a crash before
    /// leaves it to recovery).
    fn forget_old_manifest(&mut self) -> Result<()> {
        if let Some(g) = self.old_manifest.take() {
            let path = self.opts.manifest_path(g);
            crate::fs::remove_if_exists(self.fs.as_ref(), &path).ctx("remove manifest", &path)?;
        }
        Ok(())
    }

    fn file_info(&self, index: u32) -> Result<FileInfo> {
        self.catalog
            .get(index)
            .ok_or(Error::IndexDoesNotExist { index })
    }
}
