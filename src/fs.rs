//! The storage seam: every file operation of the engine goes through [`Fs`] and [`FsFile`],
//! so that tests can substitute a crash-simulating or fault-injecting implementation.
//! [`RealFs`] is the only implementation compiled into the library.
//!
//! The seam is deliberately narrow and synchronous: the callers run it on blocking threads.

use std::ffi::OsString;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A directory-level storage backend.
pub(crate) trait Fs: Send + Sync + Debug + 'static {
    /// Creates a new file exclusively (fails if it exists), open for reading and writing.
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn FsFile>>;
    /// Opens an existing file for reading and writing.
    fn open_rw(&self, path: &Path) -> io::Result<Arc<dyn FsFile>>;
    /// Opens an existing file for reading.
    fn open_ro(&self, path: &Path) -> io::Result<Arc<dyn FsFile>>;
    /// Opens a file for reading and writing, creating it if missing; returns whether it was
    /// created.
    fn open_or_create(&self, path: &Path) -> io::Result<(Arc<dyn FsFile>, bool)>;
    /// Renames `from` over `to`, atomically replacing it.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Names of the directory's entries (files only matter to the caller), including names
    /// that are not UTF-8.
    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Whether the directory exists.
    fn dir_exists(&self, dir: &Path) -> io::Result<bool>;
    /// Creates the directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Identifies the file at `path`, following symlinks: two paths with the same id are
    /// one file. `None` when the backend has no such notion.
    fn file_id(&self, _path: &Path) -> io::Result<Option<(u64, u64)>> {
        Ok(None)
    }

    /// Whether a seeded bug is switched on for this file system (sensitivity tests).
    #[cfg(test)]
    fn seeded_bug(&self, _bug: crate::testing::sim::Bug) -> bool {
        false
    }
}

/// `seeded!(fs, Bug)`: whether the test-only seeded bug is on; `false` outside tests.
macro_rules! seeded {
    ($fs:expr, $bug:ident) => {{
        #[cfg(test)]
        let on = $fs.seeded_bug(crate::testing::sim::Bug::$bug);
        #[cfg(not(test))]
        let on = false;
        on
    }};
}
pub(crate) use seeded;

/// What [`FsFile::stat`] tells of an open file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStat {
    /// Its length.
    pub(crate) len: u64,
    /// Whether a directory entry still names it.
    pub(crate) linked: bool,
}

/// An open file.
pub(crate) trait FsFile: Send + Sync + Debug {
    /// Reads at `offset`; returns how many bytes were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes at `offset`; returns how many bytes were written.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
    /// The file's length, and whether a directory entry still names it (`false`: deleted
    /// while open). Platforms that cannot tell say it is named.
    fn stat(&self) -> io::Result<FileStat> {
        Ok(FileStat {
            len: self.len()?,
            linked: true,
        })
    }
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data (and the length) durable.
    fn sync_data(&self) -> io::Result<()>;
    /// Takes an exclusive advisory lock without waiting; `false` if someone else holds it.
    fn try_lock(&self) -> io::Result<bool>;

    /// Reads exactly `buf.len()` bytes at `offset` if the page cache holds all of them,
    /// without blocking the calling thread: `Ok(false)` when it does not, or when the
    /// platform cannot tell, and the caller falls back to [`FsFile::read_exact_at`] on a
    /// blocking thread. What `buf` holds after `Ok(false)` is unspecified.
    fn read_cached_at(&self, _buf: &mut [u8], _offset: u64) -> io::Result<bool> {
        Ok(false)
    }

    /// Asks the kernel to start writing back `len` bytes at `offset`, just written, without
    /// waiting: the sync that follows then has less left to do, and the disk works while
    /// the rest of a large batch is being copied. A hint only: durability still comes from
    /// [`FsFile::sync_data`], which also reports any writeback error.
    fn start_writeback(&self, _offset: u64, _len: u64) {}

    /// Reads up to `buf.len()` bytes at `offset`; returns how many (fewer only at the end of
    /// the file).
    fn read_up_to(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.read_at(&mut buf[n..], offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Reads exactly `buf.len()` bytes at `offset`, failing with `UnexpectedEof` if the file
    /// is shorter.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Removes `path`; `Ok(false)` if it did not exist.
pub(crate) fn remove_if_exists(fs: &dyn Fs, path: &Path) -> io::Result<bool> {
    match fs.remove(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RealFs;

#[derive(Debug)]
struct RealFile {
    file: File,
    /// Whether non-blocking cached reads are still worth trying on this file (the
    /// filesystem has not refused them).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    nowait: AtomicBool,
}

impl RealFile {
    fn shared(file: File) -> Arc<dyn FsFile> {
        Arc::new(RealFile {
            file,
            nowait: AtomicBool::new(true),
        })
    }
}

impl Fs for RealFs {
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(RealFile::shared(f))
    }

    fn open_rw(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        regular_file(path)?;
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(RealFile::shared(f))
    }

    fn open_ro(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        regular_file(path)?;
        Ok(RealFile::shared(File::open(path)?))
    }

    fn open_or_create(&self, path: &Path) -> io::Result<(Arc<dyn FsFile>, bool)> {
        match self.create_new(path) {
            Ok(f) => Ok((f, true)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // The state file is written in place: through a symlink it could land on a
                // data file (or anything else) and destroy it.
                if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "the state file is a symbolic link",
                    ));
                }
                Ok((self.open_rw(path)?, false))
            }
            Err(e) => Err(e),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?
            .map(|entry| Ok(entry?.file_name()))
            .collect()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn dir_exists(&self, dir: &Path) -> io::Result<bool> {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => Ok(true),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn file_id(&self, path: &Path) -> io::Result<Option<(u64, u64)>> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(Some((m.dev(), m.ino())))
    }
}

/// Refuses anything but a regular file: opening a FIFO would block, a device would read
/// for ever.
fn regular_file(path: &Path) -> io::Result<()> {
    let kind = std::fs::metadata(path)?.file_type();
    if kind.is_file() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}

impl FsFile for RealFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.file.write_at(buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn stat(&self) -> io::Result<FileStat> {
        let m = self.file.metadata()?;
        #[cfg(unix)]
        let linked = std::os::unix::fs::MetadataExt::nlink(&m) > 0;
        #[cfg(not(unix))]
        let linked = true;
        Ok(FileStat {
            len: m.len(),
            linked,
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn try_lock(&self) -> io::Result<bool> {
        match self.file.try_lock() {
            Ok(()) => Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// `posix_fadvise(POSIX_FADV_DONTNEED)` of dirty pages starts their writeback
    /// (`WB_SYNC_NONE`) and evicts nothing that is still dirty, so the bytes just written
    /// stay cached for readers. (`sync_file_range` would say it more directly, but no
    /// safe binding of it is at hand.) Errors are ignored: the sync reports them.
    #[cfg(target_os = "linux")]
    fn start_writeback(&self, offset: u64, len: u64) {
        if let Some(len) = std::num::NonZeroU64::new(len) {
            let _ =
                rustix::fs::fadvise(&self.file, offset, Some(len), rustix::fs::Advice::DontNeed);
        }
    }

    /// `preadv2` with `RWF_NOWAIT` (Linux 4.14+): the kernel copies from the page cache and
    /// returns `EAGAIN` instead of waiting for the disk. A short count means only part of
    /// the range was cached.
    #[cfg(target_os = "linux")]
    fn read_cached_at(&self, buf: &mut [u8], offset: u64) -> io::Result<bool> {
        use rustix::io::{preadv2, Errno, ReadWriteFlags};
        if !self.nowait.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let want = buf.len();
        match preadv2(
            &self.file,
            &mut [io::IoSliceMut::new(buf)],
            offset,
            ReadWriteFlags::NOWAIT,
        ) {
            Ok(n) => Ok(n == want),
            Err(Errno::AGAIN | Errno::INTR) => Ok(false),
            // The filesystem or kernel does not do non-blocking reads: stop asking.
            Err(Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => {
                self.nowait.store(false, Ordering::Relaxed);
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}
