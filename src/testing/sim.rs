//! Test doubles of the storage seam (compiled only for tests).
//!
//! [`SimFs`] is an in-memory file system that keeps, for every file, the durable image
//! (as of its last `sync_data`) and the live image, plus the durable and the live
//! directory. [`SimFs::crash_image`] returns what a power loss could leave: the durable
//! state plus a seeded subset of the unsynced changes. It can also inject faults: fail the
//! n-th operation, once or for ever, with an error kind of the caller's choice, or a short
//! write.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::fs::{Fs, FsFile};

/// One unsynced change to a file.
#[derive(Debug, Clone)]
enum Change {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

/// A file's bytes are shared (copy on write) between a file system and the crash images
/// taken of it: an image copies only the files it changes, which is most of the crash
/// enumeration's cost otherwise.
#[derive(Debug, Clone, Default)]
struct Inode {
    durable: Arc<Vec<u8>>,
    live: Arc<Vec<u8>>,
    /// Changes since the last sync, in order.
    pending: Vec<Change>,
    locked: bool,
}

/// Bugs a storage engine really has, switched on one at a time per file system to prove
/// that the harnesses catch them. Those that are about I/O (a sync left out, a rename
/// before a sync) are modes of this file system: the sync does nothing. The others are
/// `seeded!` checks at the one place in the engine they concern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bug {
    /// Commit (and acknowledge) without syncing the data files: syncs of data files do
    /// nothing.
    AckBeforeSync,
    /// Directory syncs do nothing: created, renamed and removed names reach the device
    /// only by chance (a mode of the simulated file system, not a switch in the engine).
    NoDirSync,
    /// Retry a failed data sync and believe the retry.
    RetryFailedSync,
    /// Recovery trusts the head file's length instead of the committed end.
    TrustFileLength,
    /// rtrim of the head truncates before committing the new end.
    TruncateBeforeCommit,
    /// ltrim renames the temp file over the data file without syncing it first: syncs of
    /// `.tmp.` files do nothing.
    RenameBeforeTempSynced,
    /// A transaction is committed in two batches.
    SplitTransaction,
    /// The first change of a session writes data before the dirty state record.
    NoDirtyMarkBeforeFirstWrite,
    /// Recovery accepts the head's newest commit slot without checking that the batch it
    /// names matches its checksums.
    CommitChecksumNotChecked,
    /// A commit writes its item index entries after the round of syncs that acknowledges it.
    IndexEntryAfterCommit,
    /// A rollover does not record the end (and checksums) of the file it seals.
    SealedEndNotRecorded,
    /// A state record is written to one slot only: a byte flipped in it later leaves the
    /// previous record, older than what was committed.
    SingleStateCopy,
    /// Tiering deletes the local copy of a file before the record that makes it remote is
    /// durable.
    DeleteLocalBeforeRecord,
    /// Tiering records an upload as remote without reading the object back (its length
    /// and checksum unchecked).
    #[cfg(feature = "tiering")]
    TrustUnverifiedUpload,
    /// Hydrate deletes the object before the record that makes the file local again is
    /// durable.
    #[cfg(feature = "tiering")]
    DeleteObjectBeforeRecord,
    /// Hydrate renames its downloaded copy into place (and records it) without syncing it.
    #[cfg(feature = "tiering")]
    HydrateUnsynced,
    /// Hydrate records a file trimmed while remote with the remote record's data checksum
    /// and tail (unknown, zeros) instead of those of the bytes it kept.
    HydrateStaleRecord,
    /// A trim of a remote index serves the range as trimmed and is acknowledged before a
    /// state record names the manifest that records it.
    RemoteTrimBeforeCommit,
    /// A trim of a remote index records its new logical range but not what its object
    /// holds: after a reopen, positions are mapped through the new trim offset instead of
    /// the object's.
    RemoteTrimObjectForgotten,
}

impl Bug {
    pub(crate) const ALL: [Bug; 12] = [
        Bug::AckBeforeSync,
        Bug::NoDirSync,
        Bug::RetryFailedSync,
        Bug::TrustFileLength,
        Bug::TruncateBeforeCommit,
        Bug::RenameBeforeTempSynced,
        Bug::SplitTransaction,
        Bug::NoDirtyMarkBeforeFirstWrite,
        Bug::CommitChecksumNotChecked,
        Bug::IndexEntryAfterCommit,
        Bug::SealedEndNotRecorded,
        Bug::SingleStateCopy,
    ];

    /// The bugs of tiering, caught by its own crash enumeration (`testing/tiering.rs`).
    #[cfg(feature = "tiering")]
    pub(crate) const TIERING: [Bug; 4] = [
        Bug::DeleteLocalBeforeRecord,
        Bug::TrustUnverifiedUpload,
        Bug::RemoteTrimBeforeCommit,
        Bug::RemoteTrimObjectForgotten,
    ];

    /// The bugs of hydrate, caught by the crash enumeration of its workload.
    #[cfg(feature = "tiering")]
    pub(crate) const HYDRATE: [Bug; 3] = [
        Bug::DeleteObjectBeforeRecord,
        Bug::HydrateUnsynced,
        Bug::HydrateStaleRecord,
    ];
}

/// What a crash keeps of the unsynced changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Damage {
    /// Only what was synced.
    SyncedOnly,
    /// Everything (as a process crash would).
    All,
    /// A seeded prefix of each file's unsynced changes, and of the directory's.
    Prefix,
    /// Unsynced files keep their live length, but unsynced bytes read as zeros.
    Zeros,
    /// Unsynced files keep their live length, but unsynced bytes read as garbage.
    Garbage,
    /// Live file contents, but the directory as of its last sync (lost creations and
    /// renames, resurrected unlinks).
    LostDir,
}

impl Damage {
    pub(crate) const ALL: [Damage; 6] = [
        Damage::SyncedOnly,
        Damage::All,
        Damage::Prefix,
        Damage::Zeros,
        Damage::Garbage,
        Damage::LostDir,
    ];
}

/// What to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    Eio,
    Enospc,
    /// A write that writes only part of its buffer, then fails.
    ShortWrite,
    /// `sync_data` or `sync_dir` fails (other operations succeed).
    FailedSync,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Fault {
    /// Fail the operation with this number (counted from 0), and with `persistent` every
    /// later one of the same class too.
    pub(crate) at: u64,
    pub(crate) kind: FaultKind,
    pub(crate) persistent: bool,
}

#[derive(Debug, Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    live_dir: BTreeMap<String, u64>,
    durable_dir: BTreeMap<String, u64>,
    /// Directory changes since the last `sync_dir`: (name, inode or None for an unlink).
    dir_pending: Vec<(String, Option<u64>)>,
    dirs: Vec<String>,
    ops: u64,
    /// After this many operations every operation fails (a crash froze the device).
    freeze_at: Option<u64>,
    fault: Option<Fault>,
    faults_fired: u64,
    bug: Option<Bug>,
}

/// The in-memory, crash-simulating, fault-injecting file system.
#[derive(Clone, Default)]
pub(crate) struct SimFs {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SimFs")
    }
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: the device is gone")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpClass {
    Sync,
    Write,
    Other,
}

impl SimFs {
    pub(crate) fn new() -> Self {
        SimFs::default()
    }

    /// Operations performed so far.
    pub(crate) fn ops(&self) -> u64 {
        self.state.lock().unwrap().ops
    }

    /// Every operation from number `n` on fails, as if power was lost just before it.
    pub(crate) fn freeze_at(&self, n: u64) {
        self.state.lock().unwrap().freeze_at = Some(n);
    }

    pub(crate) fn set_fault(&self, fault: Option<Fault>) {
        self.state.lock().unwrap().fault = fault;
    }

    /// Switches a seeded bug on (or all off) for this file system and its crash images.
    pub(crate) fn set_bug(&self, bug: Option<Bug>) {
        self.state.lock().unwrap().bug = bug;
    }

    pub(crate) fn faults_fired(&self) -> u64 {
        self.state.lock().unwrap().faults_fired
    }

    /// Counts an operation and decides whether it fails.
    fn enter(&self, class: OpClass) -> io::Result<(u64, Option<FaultKind>)> {
        let mut s = self.state.lock().unwrap();
        let n = s.ops;
        s.ops += 1;
        if s.freeze_at.is_some_and(|f| n >= f) {
            return Err(crashed());
        }
        if let Some(f) = s.fault {
            let hit = if f.persistent { n >= f.at } else { n == f.at };
            let applies = match f.kind {
                FaultKind::FailedSync => class == OpClass::Sync,
                FaultKind::ShortWrite | FaultKind::Enospc => class == OpClass::Write,
                FaultKind::Eio => true,
            };
            if hit && applies {
                s.faults_fired += 1;
                return Ok((n, Some(f.kind)));
            }
        }
        Ok((n, None))
    }

    fn fail(kind: FaultKind) -> io::Error {
        match kind {
            FaultKind::Enospc => io::Error::from_raw_os_error(28),
            _ => io::Error::from_raw_os_error(5),
        }
    }

    /// A request to another device that a crash of this one ends too (the simulated object
    /// store's), counted among this device's operations so that a crash falls between any
    /// two of either: `Ok(false)` before the crash, `Ok(true)` for the request the crash
    /// interrupts (it may or may not have reached the other device; the caller never
    /// learns), an error after.
    #[cfg(feature = "tiering")]
    pub(crate) fn external_op(&self) -> io::Result<bool> {
        let mut s = self.state.lock().unwrap();
        let n = s.ops;
        s.ops += 1;
        match s.freeze_at {
            Some(f) if n == f => Ok(true),
            Some(f) if n > f => Err(crashed()),
            _ => Ok(false),
        }
    }

    fn simple(&self, class: OpClass) -> io::Result<()> {
        match self.enter(class)? {
            (_, None) => Ok(()),
            (_, Some(k)) => Err(Self::fail(k)),
        }
    }

    /// What a power loss right now could leave, for `damage` and `seed`.
    pub(crate) fn crash_image(&self, damage: Damage, seed: u64) -> SimFs {
        let s = self.state.lock().unwrap();
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let dir = match damage {
            Damage::SyncedOnly | Damage::LostDir => s.durable_dir.clone(),
            Damage::All | Damage::Zeros | Damage::Garbage => s.live_dir.clone(),
            Damage::Prefix => {
                let keep = usize::try_from(next() % (s.dir_pending.len() as u64 + 1)).unwrap();
                let mut d = s.durable_dir.clone();
                for (name, ino) in &s.dir_pending[..keep] {
                    match ino {
                        Some(i) => d.insert(name.clone(), *i),
                        None => d.remove(name),
                    };
                }
                d
            }
        };
        let mut inodes = HashMap::new();
        for ino in dir.values() {
            let Some(node) = s.inodes.get(ino) else {
                continue;
            };
            let data = match damage {
                Damage::SyncedOnly => Arc::clone(&node.durable),
                Damage::All | Damage::LostDir => Arc::clone(&node.live),
                Damage::Prefix => {
                    let keep = usize::try_from(next() % (node.pending.len() as u64 + 1)).unwrap();
                    let mut d = Arc::clone(&node.durable);
                    for c in &node.pending[..keep] {
                        apply(Arc::make_mut(&mut d), c);
                    }
                    d
                }
                Damage::Zeros | Damage::Garbage => {
                    let mut d = (*node.live).clone();
                    // Bytes not known to be synced are lost.
                    let mut fresh = vec![false; d.len()];
                    for c in &node.pending {
                        if let Change::Write { offset, data } = c {
                            let from = usize::try_from(*offset).unwrap().min(d.len());
                            let to = (from + data.len()).min(d.len());
                            fresh[from..to].iter_mut().for_each(|b| *b = true);
                        }
                    }
                    for (i, b) in d.iter_mut().enumerate() {
                        if fresh[i] || i >= node.durable.len() {
                            *b = if damage == Damage::Zeros {
                                0
                            } else {
                                u8::try_from(next() & 0xff).unwrap()
                            };
                        }
                    }
                    Arc::new(d)
                }
            };
            inodes.insert(
                *ino,
                Inode {
                    durable: Arc::clone(&data),
                    live: data,
                    pending: Vec::new(),
                    locked: false,
                },
            );
        }
        SimFs {
            state: Arc::new(Mutex::new(State {
                inodes,
                next_inode: s.next_inode,
                live_dir: dir.clone(),
                durable_dir: dir,
                dir_pending: Vec::new(),
                dirs: s.dirs.clone(),
                ops: 0,
                freeze_at: None,
                fault: None,
                faults_fired: 0,
                bug: s.bug,
            })),
        }
    }

    /// Names in the live directory.
    pub(crate) fn names(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .live_dir
            .keys()
            .cloned()
            .collect()
    }
}

fn apply(data: &mut Vec<u8>, change: &Change) {
    match change {
        Change::Write {
            offset,
            data: bytes,
        } => {
            let at = usize::try_from(*offset).unwrap();
            if data.len() < at + bytes.len() {
                data.resize(at + bytes.len(), 0);
            }
            data[at..at + bytes.len()].copy_from_slice(bytes);
        }
        Change::SetLen(len) => data.resize(usize::try_from(*len).unwrap(), 0),
    }
}

#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    ino: u64,
    holds_lock: std::sync::atomic::AtomicBool,
}

impl SimFile {
    fn handle(fs: &SimFs, ino: u64) -> Arc<dyn FsFile> {
        Arc::new(SimFile {
            fs: fs.clone(),
            ino,
            holds_lock: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        // Closing the last descriptor releases an flock.
        if self.holds_lock.load(std::sync::atomic::Ordering::SeqCst) {
            if let Ok(mut s) = self.fs.state.lock() {
                if let Some(n) = s.inodes.get_mut(&self.ino) {
                    n.locked = false;
                }
            }
        }
    }
}

impl SimFs {
    fn create_inode(&self, name: String) -> u64 {
        let mut s = self.state.lock().unwrap();
        let ino = s.next_inode;
        s.next_inode += 1;
        s.inodes.insert(ino, Inode::default());
        s.live_dir.insert(name.clone(), ino);
        s.dir_pending.push((name, Some(ino)));
        ino
    }
}

impl Fs for SimFs {
    fn seeded_bug(&self, bug: Bug) -> bool {
        self.state.lock().unwrap().bug == Some(bug)
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        self.simple(OpClass::Other)?;
        let name = name_of(path);
        if self.state.lock().unwrap().live_dir.contains_key(&name) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let ino = self.create_inode(name);
        Ok(SimFile::handle(self, ino))
    }

    fn open_rw(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        self.open_ro(path)
    }

    fn open_ro(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        self.simple(OpClass::Other)?;
        let s = self.state.lock().unwrap();
        let ino = *s
            .live_dir
            .get(&name_of(path))
            .ok_or(io::ErrorKind::NotFound)?;
        Ok(SimFile::handle(self, ino))
    }

    fn open_or_create(&self, path: &Path) -> io::Result<(Arc<dyn FsFile>, bool)> {
        self.simple(OpClass::Other)?;
        let name = name_of(path);
        let existing = self.state.lock().unwrap().live_dir.get(&name).copied();
        let (ino, created) = match existing {
            Some(i) => (i, false),
            None => (self.create_inode(name), true),
        };
        Ok((SimFile::handle(self, ino), created))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.simple(OpClass::Other)?;
        let mut s = self.state.lock().unwrap();
        let (from, to) = (name_of(from), name_of(to));
        let ino = s.live_dir.remove(&from).ok_or(io::ErrorKind::NotFound)?;
        s.live_dir.insert(to.clone(), ino);
        s.dir_pending.push((from, None));
        s.dir_pending.push((to, Some(ino)));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.simple(OpClass::Other)?;
        let mut s = self.state.lock().unwrap();
        let name = name_of(path);
        s.live_dir.remove(&name).ok_or(io::ErrorKind::NotFound)?;
        s.dir_pending.push((name, None));
        Ok(())
    }

    fn list(&self, _dir: &Path) -> io::Result<Vec<std::ffi::OsString>> {
        self.simple(OpClass::Other)?;
        Ok(self.names().into_iter().map(Into::into).collect())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        self.simple(OpClass::Sync)?;
        let mut s = self.state.lock().unwrap();
        if s.bug == Some(Bug::NoDirSync) {
            return Ok(());
        }
        s.durable_dir = s.live_dir.clone();
        s.dir_pending.clear();
        Ok(())
    }

    fn dir_exists(&self, dir: &Path) -> io::Result<bool> {
        self.simple(OpClass::Other)?;
        let s = self.state.lock().unwrap();
        Ok(s.dirs.iter().any(|d| Path::new(d) == dir))
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.simple(OpClass::Other)?;
        self.state
            .lock()
            .unwrap()
            .dirs
            .push(dir.to_string_lossy().into_owned());
        Ok(())
    }
}

impl FsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.fs.simple(OpClass::Other)?;
        let s = self.fs.state.lock().unwrap();
        let data = &s.inodes[&self.ino].live;
        let at = usize::try_from(offset).unwrap();
        if at >= data.len() {
            return Ok(0);
        }
        let n = buf.len().min(data.len() - at);
        buf[..n].copy_from_slice(&data[at..at + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let (_, fault) = self.fs.enter(OpClass::Write)?;
        let buf = match fault {
            None => buf,
            Some(FaultKind::ShortWrite) => {
                // Part of the buffer lands, then the device reports an error.
                let part = &buf[..buf.len() / 2];
                let mut s = self.fs.state.lock().unwrap();
                let node = s.inodes.get_mut(&self.ino).unwrap();
                let c = Change::Write {
                    offset,
                    data: part.to_vec(),
                };
                apply(Arc::make_mut(&mut node.live), &c);
                node.pending.push(c);
                return Err(io::Error::from_raw_os_error(5));
            }
            Some(k) => return Err(SimFs::fail(k)),
        };
        let mut s = self.fs.state.lock().unwrap();
        let node = s.inodes.get_mut(&self.ino).unwrap();
        let c = Change::Write {
            offset,
            data: buf.to_vec(),
        };
        apply(Arc::make_mut(&mut node.live), &c);
        node.pending.push(c);
        Ok(buf.len())
    }

    fn len(&self) -> io::Result<u64> {
        self.fs.simple(OpClass::Other)?;
        Ok(self.fs.state.lock().unwrap().inodes[&self.ino].live.len() as u64)
    }

    /// Not counted as an operation: it changes nothing, so a crash "at" it is the crash
    /// after the operation before, and the crash enumeration need not try it.
    fn stat(&self) -> io::Result<crate::fs::FileStat> {
        let s = self.fs.state.lock().unwrap();
        Ok(crate::fs::FileStat {
            len: s.inodes[&self.ino].live.len() as u64,
            linked: s.live_dir.values().any(|i| *i == self.ino),
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.fs.simple(OpClass::Other)?;
        let mut s = self.fs.state.lock().unwrap();
        let node = s.inodes.get_mut(&self.ino).unwrap();
        let c = Change::SetLen(len);
        apply(Arc::make_mut(&mut node.live), &c);
        node.pending.push(c);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        match self.fs.enter(OpClass::Sync)? {
            (_, None | Some(FaultKind::ShortWrite)) => {}
            (_, Some(k)) => {
                // After a failed sync the kernel marks the pages clean ("fsyncgate"): the
                // pending changes stay visible in the live image but never reach the
                // device, not even with a later successful sync.
                let mut s = self.fs.state.lock().unwrap();
                s.inodes.get_mut(&self.ino).unwrap().pending.clear();
                return Err(SimFs::fail(k));
            }
        }
        let mut s = self.fs.state.lock().unwrap();
        let skipped = |name: &String| match s.bug {
            Some(Bug::AckBeforeSync) => {
                !name.starts_with('.') && name.as_bytes().ends_with(b".dat")
            }
            Some(Bug::RenameBeforeTempSynced) => name.starts_with(".tmp."),
            _ => false,
        };
        if s.live_dir
            .iter()
            .any(|(name, ino)| *ino == self.ino && skipped(name))
        {
            return Ok(());
        }
        let node = s.inodes.get_mut(&self.ino).unwrap();
        for c in std::mem::take(&mut node.pending) {
            apply(Arc::make_mut(&mut node.durable), &c);
        }
        Ok(())
    }

    fn try_lock(&self) -> io::Result<bool> {
        self.fs.simple(OpClass::Other)?;
        let mut s = self.fs.state.lock().unwrap();
        let node = s.inodes.get_mut(&self.ino).unwrap();
        if node.locked {
            return Ok(false);
        }
        node.locked = true;
        self.holds_lock
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(true)
    }
}
