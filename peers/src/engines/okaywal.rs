//! [okaywal](https://docs.rs/okaywal): a write-ahead log. An *entry* is its unit of
//! atomicity and durability: `EntryWriter::commit` returns once the entry is fsynced, and
//! concurrent commits share one `fdatasync` (group commit, okaywal's design goal). An entry
//! holds chunks, each individually readable afterwards through the `LogPosition` returned
//! when it was written (`WriteAheadLog::read_at`, the README's "random access for
//! previously written data").
//!
//! okaywal is meant to sit in front of a storage layer: once a segment has been
//! checkpointed (after `checkpoint_after_bytes`, 768 KiB by default), its entries are
//! handed to the `LogManager` and can no longer be read from the log. Used alone as a blob
//! store, as here, checkpointing is disabled (`checkpoint_after_bytes = u64::MAX`): the
//! log keeps every entry, in one segment file that grows past its preallocation, and the
//! `LogManager` never receives anything. The rest is okaywal's default configuration.
//!
//! - Bulk, items read only afterwards: one entry for the whole session, one chunk per
//!   item, committed at the end (one fsync): the entry plays the part of everything added
//!   between two flushes in our library. It holds okaywal's single active file, so no
//!   other writer can write meanwhile.
//! - Bulk, items read while written (seed): one entry per item, each committed (an fsync
//!   per item). okaywal reads back committed data: a chunk of an entry still being
//!   written cannot be read reliably, as `read_at` flushes and syncs the log only through
//!   the *start* of the chunk it reads, so a chunk written just after the last sync is
//!   read from the file before it was flushed there (wrong bytes; seen with 0.3.1).
//! - `add_durable`: one entry of one chunk per item, committed (group commit).
//! - Reads: `read_at` (opens the segment file, reads the chunk header and the data), then
//!   the chunk's CRC is checked (`crc_is_valid`).
//! - Open: okaywal recovers every entry of the segment through the `LogManager`, which
//!   reads each chunk and checks its CRC (see [`KeepInLog::recover`] for why it must),
//!   then keeps nothing: the entries stay in the log.

use std::fmt;
use std::io::{self, Read as _};
use std::path::Path;

use aiodiskdb_bench::{Bytes, Engine, Source, Visibility};
use anyhow::ensure;
use okaywal::{
    Configuration, Entry, EntryId, LogManager, LogPosition, ReadChunkResult, SegmentReader,
    WriteAheadLog,
};

/// The `LogManager` of a log that is the store itself: recovery checks the entries and
/// leaves them where they are, and checkpointing (disabled) would have nothing to move.
#[derive(Debug)]
struct KeepInLog;

impl LogManager for KeepInLog {
    /// Reads every chunk of the entry and checks its CRC, as okaywal's example does
    /// (`read_all_chunks`), without keeping the data.
    ///
    /// The chunks must be read here: okaywal 0.3.1 cannot skip them itself. When its
    /// recovery skips a chunk left unread (`EntryChunk::skip_remaining_bytes`), it skips
    /// the 4-byte CRC a second time when the chunk is dropped, lands inside the next
    /// record, and takes the log to end there: the chunks after the first would be
    /// overwritten by the next writes, and every read past it would sync the file first.
    fn recover(&mut self, entry: &mut Entry<'_>) -> io::Result<()> {
        loop {
            match entry.read_chunk()? {
                ReadChunkResult::Chunk(mut chunk) => {
                    io::copy(&mut chunk, &mut io::sink())?;
                    if !chunk.check_crc()? {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("okaywal chunk at {:?}: bad CRC", chunk.log_position()),
                        ));
                    }
                }
                // A torn entry (a crash while it was written) is ignored by okaywal.
                ReadChunkResult::EndOfEntry | ReadChunkResult::AbortedEntry => return Ok(()),
            }
        }
    }

    fn checkpoint_to(
        &mut self,
        _last_checkpointed_id: EntryId,
        _checkpointed_entries: &mut SegmentReader,
        _wal: &WriteAheadLog,
    ) -> io::Result<()> {
        Err(io::Error::other(
            "checkpointing is disabled: the log is the store",
        ))
    }
}

/// An okaywal log used as a blob store; clones share it.
#[derive(Clone)]
pub(crate) struct OkayWal {
    log: WriteAheadLog,
}

/// Where a chunk is: the `LogPosition` okaywal returned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Position(LogPosition);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl OkayWal {
    /// Appends one item as an entry of its own and commits it (fsynced on return,
    /// together with the entries committed concurrently).
    fn commit_one(&self, data: &[u8]) -> anyhow::Result<Position> {
        let mut entry = self.log.begin_entry()?;
        let position = entry.write_chunk(data)?.position;
        entry.commit()?;
        Ok(Position(position))
    }
}

impl Engine for OkayWal {
    type Loc = Position;
    type Config = ();

    async fn open(dir: &Path, (): &()) -> anyhow::Result<Self> {
        let log = Configuration::default_for(dir)
            .checkpoint_after_bytes(u64::MAX)
            .open(KeepInLog)?;
        Ok(OkayWal { log })
    }

    async fn bulk<S: Source<Position>>(
        &self,
        visibility: Visibility,
        items: &mut S,
    ) -> anyhow::Result<()> {
        match visibility {
            Visibility::AtEnd => {
                let mut entry = self.log.begin_entry()?;
                while let Some(data) = items.next_item() {
                    items.added(Position(entry.write_chunk(&data)?.position));
                }
                // Fsynced on return.
                entry.commit()?;
            }
            Visibility::Immediate => {
                while let Some(data) = items.next_item() {
                    // Readable (and durable) once committed.
                    items.added(self.commit_one(&data)?);
                }
            }
        }
        Ok(())
    }

    async fn read<R: Send>(
        &self,
        loc: Position,
        check: impl FnOnce(&[u8]) -> R + Send,
    ) -> anyhow::Result<Option<R>> {
        let mut reader = self.log.read_at(loc.0)?;
        let mut data = vec![0; usize::try_from(reader.chunk_length())?];
        reader.read_exact(&mut data)?;
        ensure!(reader.crc_is_valid()?, "okaywal chunk at {loc}: bad CRC");
        Ok(Some(check(&data)))
    }

    async fn add_durable(&self, data: Bytes) -> anyhow::Result<()> {
        self.commit_one(&data)?;
        Ok(())
    }

    async fn close(self) -> anyhow::Result<()> {
        // Stops the checkpointing thread; every entry was committed (fsynced) already.
        self.log.shutdown()?;
        Ok(())
    }
}
