//! The disk's own limits, measured in the same run as each workload, on the same
//! filesystem: the same bytes written with large buffered writes and one `fdatasync`, read
//! with plain `pread` (random items, or whole files in sequence), or synced with one
//! `fdatasync` per batch. Plus the process's peak memory, read from `/proc`, and dropping
//! the page cache for cold reads.
//!
//! These loops are what a program could do with no database at all, so a workload's ratio
//! to them says how much of the disk (or the page cache) the database leaves on the table.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

/// The scratch file of the limits, inside the workload's directory (the database ignores
/// files that are not its own); removed afterwards.
const SCRATCH: &str = "raw-limit.tmp";

/// Largest single `write` the write limit issues.
const CHUNK: usize = 64 << 20;

/// Seconds to write `bytes` to a new file with writes of up to `chunk` bytes (at most
/// 64 MiB), with one `fdatasync` after every `chunk` bytes when `sync_each` and only one at
/// the end otherwise.
///
/// Both patterns are measured because either can be the faster: one sync at the end lets
/// gigabytes of dirty pages pile up, and the kernel throttles the writer (on the
/// development VM, 1 GB that way took three times as long as 1 GB in synced 16 MiB chunks).
pub(crate) fn write_then_sync(
    dir: &Path,
    bytes: u64,
    chunk: usize,
    sync_each: bool,
) -> io::Result<f64> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(SCRATCH);
    let chunk = chunk.min(CHUNK);
    let data = vec![0xa5_u8; usize::try_from(bytes).unwrap_or(chunk).min(chunk)];
    let mut f = File::create(&path)?;
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(chunk).min(data.len());
        f.write_all(&data[..n])?;
        left -= n as u64;
        if sync_each {
            f.sync_data()?;
        }
    }
    if !sync_each {
        f.sync_data()?;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(secs)
}

/// One item to read back: which file, where, and the 8 bytes it starts with.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Index of its file in [`crate::Layout::files`].
    pub file: usize,
    /// Byte offset of the item in the file.
    pub offset: u64,
    /// The first 8 bytes of the item.
    pub tag: [u8; 8],
}

/// Seconds for `readers` threads to do `reads` random `pread`s in all of `size` bytes
/// each, each checking the first 8 bytes, into a buffer reused per thread.
pub(crate) fn pread_random(
    files: &[File],
    targets: &[Target],
    size: usize,
    readers: usize,
    reads: u64,
    seed: u64,
) -> io::Result<f64> {
    let start = Instant::now();
    std::thread::scope(|scope| {
        let mut threads = Vec::with_capacity(readers);
        for r in 0..readers as u64 {
            let share = reads / readers as u64 + u64::from(r < reads % readers as u64);
            threads.push(scope.spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(r));
                let mut buf = vec![0u8; size];
                for _ in 0..share {
                    let t = targets[rng.gen_range(0..targets.len())];
                    files[t.file].read_exact_at(&mut buf, t.offset)?;
                    if buf[..8] != t.tag {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "raw pread returned unexpected bytes",
                        ));
                    }
                }
                Ok(())
            }));
        }
        threads
            .into_iter()
            .try_for_each(|t| t.join().expect("pread thread panicked"))
    })?;
    Ok(start.elapsed().as_secs_f64())
}

/// Appends `batch` bytes with one `write` and makes them durable with one `fdatasync`, in a
/// loop for `duration` or `batches` times, whichever comes first: (batches, seconds).
pub(crate) fn sync_batches(
    dir: &Path,
    batch: usize,
    duration: Duration,
    batches: u64,
) -> io::Result<(u64, f64)> {
    let path = dir.join(SCRATCH);
    let data = vec![0x5a_u8; batch];
    let mut f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)?;
    let start = Instant::now();
    let mut done = 0;
    while done < batches && start.elapsed() < duration {
        f.write_all(&data)?;
        f.sync_data()?;
        done += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok((done, secs))
}

/// Reads each file of `paths` whole, one after the other, with sequential `pread`s of
/// `piece` bytes into one reused buffer: (bytes read, seconds). Opening the files is
/// timed too, as a reader of a cold directory pays for it.
pub(crate) fn read_sequential(paths: &[PathBuf], piece: usize) -> io::Result<(u64, f64)> {
    let mut buf = vec![0u8; piece];
    let mut bytes = 0u64;
    let start = Instant::now();
    for path in paths {
        let f = File::open(path)?;
        let mut at = 0u64;
        loop {
            let n = f.read_at(&mut buf, at)?;
            if n == 0 {
                break;
            }
            at += n as u64;
        }
        bytes += at;
    }
    Ok((bytes, start.elapsed().as_secs_f64()))
}

/// Drops the clean pages of the page cache, and the cached dentries and inodes, of the
/// whole machine (`3` into `/proc/sys/vm/drop_caches`; needs root): the next read of any
/// file comes from the disk. Dirty pages stay: a file must be synced first to be dropped.
pub(crate) fn drop_page_cache() -> io::Result<()> {
    std::fs::write("/proc/sys/vm/drop_caches", b"3")
}

/// Resets the process's peak resident set size to its current one (Linux: `5` into
/// `/proc/self/clear_refs`). Returns false where that is not possible.
pub(crate) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

/// The process's peak resident set size since the last reset, in bytes (Linux `VmHWM`).
pub(crate) fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
