//! [commitlog](https://docs.rs/commitlog): a Kafka-style log of messages in segment files
//! (`{base offset}.log`, rolled at 1 GB) with memory-mapped offset indexes
//! (`{base offset}.index`). `append_msg` returns the message's offset; `read(offset,
//! ReadLimit)` returns the messages from that offset, up to a byte limit, with their CRCs
//! checked.
//!
//! An item's location is the offset commitlog returned plus the payload size, which the
//! caller knows: the read limit is then one message (header + payload, plus one byte, see
//! `read`), so a read fetches that message and no more. `message_max_bytes` is raised from its default
//! (1,000,000 bytes, header included) to fit the largest seed-large item (1 MiB); the rest
//! is commitlog's default configuration.
//!
//! `CommitLog` appends through `&mut self` and reads through `&self`: it sits behind a
//! `RwLock`, so readers wait while an append is in progress.
//!
//! Durability: commitlog 0.2's `flush()` does not make data durable. It calls
//! `File::flush` on the segment, which for a `std::fs::File` does nothing (no fsync), and
//! `msync`s only the whole pages of the index written since the last flush, leaving the
//! latest index entries in memory; a message whose index entry is lost is lost on reopen
//! (the index is not rebuilt from the segment). So after `flush()` we `fdatasync` the
//! segment and index files ourselves (through our own descriptors: this also writes back
//! the index pages dirtied through commitlog's mapping), from the segment that holds the
//! first unsynced item to the newest one (a roll may have created new ones), and `fsync`
//! the directory the first time a segment is synced, for its new files' entries. This is
//! what a user of commitlog must add to get our durability.
//!
//! - Bulk: `append_msg` per item (readable at once), then `flush()` and the syncs above.
//! - `add_durable`: `append_msg` and `flush()` under the lock, then the syncs outside it,
//!   so concurrent callers' syncs may overlap. commitlog has no group commit.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use aiodiskdb_bench::{Bytes, Engine, Source, Visibility};
use anyhow::{ensure, Context as _};
use commitlog::message::{MessageSet as _, HEADER_SIZE};
use commitlog::{AppendError, CommitLog, LogOptions, Offset, ReadError, ReadLimit};

/// The largest payload a workload writes (seed-large: 1 MiB).
const MAX_ITEM: usize = 1 << 20;

/// A commitlog used as a blob store; clones share it.
#[derive(Clone)]
pub(crate) struct CommitLogEngine(Arc<Inner>);

struct Inner {
    log: RwLock<CommitLog>,
    syncer: Syncer,
}

/// Where an item is: the offset commitlog returned, and the payload size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loc {
    offset: Offset,
    size: u32,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "offset {} ({} B)", self.offset, self.size)
    }
}

impl CommitLogEngine {
    /// Appends one message.
    fn append(log: &mut CommitLog, data: &[u8]) -> anyhow::Result<Loc> {
        let offset = log.append_msg(data).map_err(append_error)?;
        Ok(Loc {
            offset,
            size: u32::try_from(data.len())?,
        })
    }

    /// Makes durable everything appended from `offset` on.
    fn make_durable(&self, offset: Offset) -> anyhow::Result<()> {
        self.0
            .log
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()?;
        self.0.syncer.sync_from(offset)?;
        Ok(())
    }
}

impl Engine for CommitLogEngine {
    type Loc = Loc;
    type Config = ();

    async fn open(dir: &Path, (): &()) -> anyhow::Result<Self> {
        let mut options = LogOptions::new(dir);
        options.message_max_bytes(HEADER_SIZE + MAX_ITEM);
        Ok(CommitLogEngine(Arc::new(Inner {
            log: RwLock::new(CommitLog::new(options)?),
            syncer: Syncer::new(dir),
        })))
    }

    async fn bulk<S: Source<Loc>>(&self, _: Visibility, items: &mut S) -> anyhow::Result<()> {
        // A message is readable as soon as it is appended: both visibilities are the same.
        let mut first = None;
        while let Some(data) = items.next_item() {
            let loc = {
                let mut log = self.0.log.write().unwrap_or_else(PoisonError::into_inner);
                Self::append(&mut log, &data)?
            };
            first.get_or_insert(loc.offset);
            items.added(loc);
        }
        if let Some(first) = first {
            self.make_durable(first)?;
        }
        Ok(())
    }

    async fn read<R: Send>(
        &self,
        loc: Loc,
        check: impl FnOnce(&[u8]) -> R + Send,
    ) -> anyhow::Result<Option<R>> {
        // One byte more than the message: commitlog 0.2 fails to read the last message of
        // a segment with a limit of exactly its size (`Index::find_segment_range` takes
        // the rest of the segment only when it is strictly shorter than the limit), and
        // the byte more cannot fit a next message (a header alone is 20 bytes).
        let limit = ReadLimit::max_bytes(HEADER_SIZE + usize::try_from(loc.size)? + 1);
        let messages = self
            .0
            .log
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .read(loc.offset, limit)
            .map_err(read_error)?;
        let Some(message) = messages.iter().next() else {
            return Ok(None);
        };
        ensure!(
            message.offset() == loc.offset,
            "commitlog returned offset {} for {}",
            message.offset(),
            loc.offset
        );
        Ok(Some(check(message.payload())))
    }

    async fn add_durable(&self, data: Bytes) -> anyhow::Result<()> {
        let offset = {
            let mut log = self.0.log.write().unwrap_or_else(PoisonError::into_inner);
            let loc = CommitLogEngine::append(&mut log, &data)?;
            log.flush()?;
            loc.offset
        };
        self.0.syncer.sync_from(offset)?;
        Ok(())
    }

    async fn close(self) -> anyhow::Result<()> {
        // Everything was synced by `bulk` and `add_durable`; dropping unmaps the indexes.
        drop(self);
        Ok(())
    }
}

/// commitlog's errors do not expose their cause (`std::error::Error::source`): keep it.
fn append_error(e: AppendError) -> anyhow::Error {
    match e {
        AppendError::Io(io) => anyhow::Error::new(io).context("commitlog append"),
        e => anyhow::anyhow!("commitlog append: {e}"),
    }
}

/// As [`append_error`].
fn read_error(e: ReadError) -> anyhow::Error {
    match e {
        ReadError::Io(io) => anyhow::Error::new(io).context("commitlog read"),
        e => anyhow::anyhow!("commitlog read: {e}"),
    }
}

/// Syncs commitlog's files, which commitlog itself never does.
struct Syncer {
    dir: PathBuf,
    /// Open descriptors of the segments seen so far, by base offset.
    segments: Mutex<BTreeMap<Offset, Arc<Segment>>>,
}

/// One segment's two files.
struct Segment {
    log: File,
    index: File,
    /// Whether the directory was synced since these files appeared.
    dir_synced: AtomicBool,
}

impl Syncer {
    fn new(dir: &Path) -> Syncer {
        Syncer {
            dir: dir.to_path_buf(),
            segments: Mutex::new(BTreeMap::new()),
        }
    }

    /// `fdatasync`s the segment holding `offset` and every later one, and the directory
    /// when one of them is new.
    fn sync_from(&self, offset: Offset) -> anyhow::Result<()> {
        let bases = self.bases()?;
        // The segment holding `offset` starts at the last base at or before it.
        let first = bases.iter().rposition(|&b| b <= offset).unwrap_or(0);
        let segments = {
            let mut open = self.segments.lock().unwrap_or_else(PoisonError::into_inner);
            let mut segments = Vec::with_capacity(bases.len() - first);
            for &base in &bases[first..] {
                let segment = if let Some(s) = open.get(&base) {
                    Arc::clone(s)
                } else {
                    let s = Arc::new(self.open_segment(base)?);
                    open.insert(base, Arc::clone(&s));
                    s
                };
                segments.push(segment);
            }
            segments
        };
        for s in &segments {
            s.log.sync_data().context("fdatasync a commitlog segment")?;
            s.index.sync_data().context("fdatasync a commitlog index")?;
        }
        if segments
            .iter()
            .any(|s| !s.dir_synced.load(Ordering::Acquire))
        {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .context("fsync the commitlog directory")?;
            for s in &segments {
                s.dir_synced.store(true, Ordering::Release);
            }
        }
        Ok(())
    }

    /// The base offsets of the segments on disk, in order.
    fn bases(&self) -> io::Result<Vec<Offset>> {
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(base) = name.strip_suffix(".log") {
                if let Ok(base) = base.parse() {
                    bases.push(base);
                }
            }
        }
        bases.sort_unstable();
        Ok(bases)
    }

    fn open_segment(&self, base: Offset) -> anyhow::Result<Segment> {
        let open = |ext: &str| {
            let path = self.dir.join(format!("{base:020}.{ext}"));
            File::open(&path).with_context(|| format!("open {}", path.display()))
        };
        Ok(Segment {
            log: open("log")?,
            index: open("index")?,
            dir_synced: AtomicBool::new(false),
        })
    }
}
