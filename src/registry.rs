//! The directories this process has open, so that an `open` can wait for a handle of this
//! process that is closing instead of failing with `Locked`.
//!
//! The directory lock (an advisory lock on the state file) only tells that someone holds
//! the directory. Within the process we know more: whether the holder is a running database
//! (then `open` fails with `Locked` at once, as for another process) or one that is closing
//! (its last handle was dropped or `stop` was called: the flusher is persisting the buffer
//! and will release the store without anyone's help), which is worth waiting for.
//!
//! Each session registers its state file here, keyed by the file's identity (device and
//! inode, so that every path to the directory meets the same entry), from the moment `open`
//! claims the file until the file is closed: the claimed file is wrapped, and dropping the
//! wrapper closes the file (releasing the lock) and then removes the entry and wakes the
//! waiters. Waiting happens on `open`'s blocking thread (a std `Condvar`), bounded by the
//! configured `timeout`. Storage backends without file identities (the test simulator) are
//! not registered: their lock alone decides.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::fs::{Fs, FsFile};

/// A state file's identity: `(device, inode)`.
type Key = (u64, u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A running database holds the directory.
    Open,
    /// The holder is persisting its buffer and will release the directory by itself.
    Closing,
}

#[derive(Debug)]
struct Entry {
    session: u64,
    phase: Phase,
}

/// Every registered state file of the process. The mutex is taken alone, for short,
/// non-blocking sections (and by `Condvar` waits, which release it).
static ENTRIES: Mutex<BTreeMap<Key, Entry>> = Mutex::new(BTreeMap::new());
/// Notified whenever an entry is removed.
static RELEASED: Condvar = Condvar::new();
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

fn entries() -> MutexGuard<'static, BTreeMap<Key, Entry>> {
    // Plain data: a panic elsewhere leaves it usable.
    ENTRIES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One session's registration: what [`closing`] marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Session {
    key: Key,
    id: u64,
}

/// Registers the state file `file`, just opened at `path`, for a new session, and returns
/// it wrapped: the registration ends when the returned file is dropped, right after the
/// file itself is closed.
///
/// If a session of this process holds the file: when it is running, fails at once; when
/// it is closing, waits up to `wait` for it to release the file (`Duration::MAX`: for
/// ever). The caller then takes the file lock as usual: other processes are its business.
///
/// # Errors
/// [`Error::Locked`] if a running session of this process holds the directory, or a
/// closing one still holds it after `wait`; [`Error::Io`] if the file cannot be identified.
pub(crate) fn claim(
    fs: &dyn Fs,
    path: &Path,
    file: Arc<dyn FsFile>,
    wait: Duration,
) -> Result<Arc<dyn FsFile>> {
    let Some(key) = fs
        .file_id(path)
        .map_err(|e| Error::io("identify state file", path, e))?
    else {
        return Ok(file);
    };
    let deadline = Instant::now().checked_add(wait);
    let locked = || Error::Locked {
        path: path.to_path_buf(),
    };
    let mut map = entries();
    while let Some(entry) = map.get(&key) {
        if entry.phase == Phase::Open {
            return Err(locked());
        }
        map = match deadline {
            None => RELEASED.wait(map).unwrap_or_else(PoisonError::into_inner),
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(locked());
                }
                RELEASED
                    .wait_timeout(map, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
    }
    let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
    map.insert(
        key,
        Entry {
            session: id,
            phase: Phase::Open,
        },
    );
    Ok(Arc::new(Registered {
        file: Some(file),
        session: Session { key, id },
    }))
}

/// The session that holds the state file at `path`, if any. Called by the session itself
/// right after its open (while it holds the file, nobody else can register it).
pub(crate) fn session_of(fs: &dyn Fs, path: &Path) -> Option<Session> {
    let key = fs.file_id(path).ok()??;
    entries().get(&key).map(|e| Session { key, id: e.session })
}

/// Marks `session` as closing: it releases its directory without anyone's help, so an
/// `open` of the same directory waits for it. No effect once the session has ended.
pub(crate) fn closing(session: Session) {
    if let Some(e) = entries().get_mut(&session.key) {
        if e.session == session.id {
            e.phase = Phase::Closing;
        }
    }
}

/// A registered state file.
#[derive(Debug)]
struct Registered {
    /// `None` only while being dropped.
    file: Option<Arc<dyn FsFile>>,
    session: Session,
}

impl Registered {
    fn file(&self) -> &dyn FsFile {
        self.file.as_deref().expect("present until dropped")
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        // Close the file (and so release its lock) first: a waiter woken below takes it.
        drop(self.file.take());
        let mut map = entries();
        if map
            .get(&self.session.key)
            .is_some_and(|e| e.session == self.session.id)
        {
            map.remove(&self.session.key);
        }
        drop(map);
        RELEASED.notify_all();
    }
}

impl FsFile for Registered {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file().read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.file().write_at(buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        self.file().len()
    }

    fn stat(&self) -> io::Result<crate::fs::FileStat> {
        self.file().stat()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file().set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file().sync_data()
    }

    fn try_lock(&self) -> io::Result<bool> {
        self.file().try_lock()
    }

    fn read_cached_at(&self, buf: &mut [u8], offset: u64) -> io::Result<bool> {
        self.file().read_cached_at(buf, offset)
    }

    fn start_writeback(&self, offset: u64, len: u64) {
        self.file().start_writeback(offset, len);
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file().read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file().write_all_at(buf, offset)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fs::RealFs;

    /// Opens the state file at `path` and claims it as `open` does (without the lock).
    fn claim_at(path: &Path, wait: Duration) -> Result<Arc<dyn FsFile>> {
        let (file, _) = RealFs.open_or_create(path).expect("open");
        claim(&RealFs, path, file, wait)
    }

    #[test]
    fn a_running_session_is_locked_at_once_and_released_when_its_file_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".state");
        let held = claim_at(&path, Duration::MAX).unwrap();
        let start = Instant::now();
        // Even with an unbounded wait: a running session is not waited for.
        let again = claim_at(&path, Duration::MAX);
        assert!(matches!(again, Err(Error::Locked { .. })), "{again:?}");
        assert!(start.elapsed() < Duration::from_secs(5));
        drop(held);
        assert!(session_of(&RealFs, &path).is_none());
        drop(claim_at(&path, Duration::ZERO).unwrap());
    }

    #[test]
    fn a_closing_session_is_waited_for_until_it_releases_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".state");
        let held = claim_at(&path, Duration::MAX).unwrap();
        closing(session_of(&RealFs, &path).unwrap());
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        let start = Instant::now();
        let next = claim_at(&path, Duration::from_secs(60)).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(250));
        release.join().unwrap();
        // The new session is running: the next claim fails at once.
        assert!(matches!(
            claim_at(&path, Duration::from_secs(60)),
            Err(Error::Locked { .. })
        ));
        drop(next);
    }

    #[test]
    fn a_closing_session_is_waited_for_no_longer_than_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".state");
        let held = claim_at(&path, Duration::MAX).unwrap();
        closing(session_of(&RealFs, &path).unwrap());
        let start = Instant::now();
        let again = claim_at(&path, Duration::from_millis(100));
        assert!(matches!(again, Err(Error::Locked { .. })), "{again:?}");
        assert!(start.elapsed() >= Duration::from_millis(100));
        drop(held);
    }

    #[test]
    fn marking_an_ended_session_closing_leaves_the_next_one_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".state");
        let first = claim_at(&path, Duration::MAX).unwrap();
        let ended = session_of(&RealFs, &path).unwrap();
        drop(first);
        let second = claim_at(&path, Duration::MAX).unwrap();
        closing(ended);
        assert!(matches!(
            claim_at(&path, Duration::MAX),
            Err(Error::Locked { .. })
        ));
        drop(second);
    }
}
