//! The state a handle shares with the flusher, and its one owner. Every field is private;
//! each method is one step of the protocol (admit a call, place an item, take and finish a
//! batch, enter and leave an exclusive operation, poison, stop), taken under the handle's
//! short std mutex (`Inner::lock` in `db.rs`), never across an `.await`.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use crate::buffer::{Buffer, Limits, Tail};
use crate::catalog::{Catalog, FileInfo};
use crate::error::{Error, Result};
use crate::location::ItemLocation;

/// Lifecycle of a handle.
#[derive(Debug, Clone)]
enum Status {
    Running,
    /// `stop` was called: writes are refused, the flusher is persisting the rest.
    Stopping,
    Stopped,
    /// A write or sync failed: writes are refused until the directory is reopened.
    Poisoned(Error),
}

/// What a call needs of the handle's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// `add`, a commit, a trim: a running handle.
    Write,
    /// `flush`: running, or stopping (the stop persists what was added first).
    Flush,
    /// The flusher's own steps: anything but poisoned or stopped.
    Persist,
    /// `wait_persisted`: anything but poisoned (after a stop, what is committed is
    /// persisted, and what is not never will be).
    Wait,
    /// `read`: anything but stopped (a poisoned handle serves what is committed).
    Read,
}

/// Where `add` put an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placed {
    /// Added at `location`; `flush` says the buffer reached its size or item limit.
    Added { location: ItemLocation, flush: bool },
    /// The buffer has no room for it: a flush was requested; wait for space.
    NoRoom,
    /// A commit, a trim or the stop holds the buffer: wait.
    Held,
    /// Adds that waited for space before this one come first: wait in the queue.
    Queued,
}

/// Where the bytes of a location are.
#[derive(Debug, Clone)]
pub(crate) enum Found {
    /// In RAM (buffered, or being flushed): a copy.
    Ram(Bytes),
    /// In a committed file.
    Disk(FileInfo),
    /// Not wholly stored.
    Missing,
}

/// A batch the flusher took: the buffer (still served to readers until it is finished)
/// and the add sequence number it covers.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) buffer: Arc<Buffer>,
    pub(crate) seq: u64,
}

/// The handle's state: lifecycle, buffers, tail, committed catalog and sequence numbers.
#[derive(Debug)]
pub(crate) struct Shared {
    status: Status,
    /// Accepting adds.
    active: Buffer,
    /// Being written by the flusher; still served to readers.
    flushing: Option<Arc<Buffer>>,
    /// Where the next add goes.
    tail: Tail,
    /// The store's latest snapshot: what readers find on disk.
    catalog: Catalog,
    /// Sequence number of the last accepted add.
    added: u64,
    /// Sequence number covered by the flushing buffer.
    flushing_seq: u64,
    flush_requested: bool,
    /// A commit, trim or stop is in progress: adds wait.
    exclusive: bool,
    /// The adds waiting for buffer space, in the order they began to wait (their tickets):
    /// only the first is placed, and an add that has not waited queues behind them, so
    /// that adds are placed in the order they were made and a large item is not passed by
    /// small ones for ever.
    waiting_adds: VecDeque<u64>,
    next_ticket: u64,
    last_flush: Instant,
    limits: Limits,
    /// A read-only handle: every call but reads (and the stop) is refused.
    read_only: bool,
}

impl Shared {
    pub(crate) fn new(catalog: Catalog, limits: Limits, now: Instant) -> Shared {
        Shared {
            status: Status::Running,
            active: Buffer::default(),
            flushing: None,
            tail: catalog.tail(),
            catalog,
            added: 0,
            flushing_seq: 0,
            flush_requested: false,
            exclusive: false,
            waiting_adds: VecDeque::new(),
            next_ticket: 0,
            last_flush: now,
            limits,
            read_only: false,
        }
    }

    /// The state of a read-only handle: it serves `catalog` and refuses writes.
    pub(crate) fn new_read_only(catalog: Catalog, limits: Limits, now: Instant) -> Shared {
        Shared {
            read_only: true,
            ..Shared::new(catalog, limits, now)
        }
    }

    /// Whether a call of kind `call` may proceed now.
    ///
    /// # Errors
    /// [`Error::NotRunning`] once stopped (or stopping, for writes); the poisoned error
    /// (naming its cause) once a write failed, except for reads.
    #[inline]
    pub(crate) fn admit(&self, call: Call) -> Result<()> {
        if self.read_only && call != Call::Read {
            return Err(Error::ReadOnly);
        }
        match (&self.status, call) {
            (Status::Running, _)
            | (Status::Stopping, Call::Flush | Call::Persist | Call::Wait | Call::Read)
            | (Status::Stopped, Call::Wait)
            | (Status::Poisoned(_), Call::Read) => Ok(()),
            (Status::Poisoned(e), _) => Err(Error::poisoned(e)),
            (Status::Stopping | Status::Stopped, _) => Err(Error::NotRunning),
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        matches!(self.status, Status::Running)
    }

    /// Places `data` after the tail, in the active buffer, if there is room (the placement
    /// rule: `buffer.rs`).
    ///
    /// # Errors
    /// As [`Shared::admit`] for a write; [`Error::DatabaseFull`].
    #[inline]
    pub(crate) fn place(&mut self, data: &[u8], ticket: Option<u64>) -> Result<Placed> {
        self.admit(Call::Write)?;
        if self.exclusive {
            return Ok(Placed::Held);
        }
        if let Some(&first) = self.waiting_adds.front() {
            if ticket != Some(first) {
                return Ok(Placed::Queued);
            }
        }
        if !self.active.has_room(data.len() as u64, &self.limits) {
            // Full for this item: the flusher must take the buffer even below its limit.
            self.flush_requested = true;
            return Ok(Placed::NoRoom);
        }
        let location = self.active.push(&mut self.tail, data, &self.limits)?;
        self.added += 1;
        if ticket.is_some() {
            self.waiting_adds.pop_front();
        }
        Ok(Placed::Added {
            location,
            flush: self.active.reached_limit(&self.limits),
        })
    }

    /// A ticket for an add that waits for space, at the end of the queue.
    pub(crate) fn queue_add(&mut self) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.waiting_adds.push_back(ticket);
        ticket
    }

    /// An add stops waiting (placed, failed, timed out or dropped): its ticket leaves the
    /// queue. Whether adds behind it may be placed now (it was the first, or was placed).
    pub(crate) fn leave_queue(&mut self, ticket: u64) -> bool {
        match self.waiting_adds.iter().position(|&t| t == ticket) {
            Some(0) => {
                self.waiting_adds.pop_front();
                true
            }
            Some(n) => {
                self.waiting_adds.remove(n);
                false
            }
            // Placed: `place` took it off.
            None => true,
        }
    }

    /// Where the bytes of `loc` are.
    #[inline]
    pub(crate) fn locate(&self, loc: ItemLocation) -> Found {
        if loc.size == 0 {
            return Found::Missing;
        }
        let ram = self
            .active
            .get(loc)
            .or_else(|| self.flushing.as_ref().and_then(|f| f.get(loc)));
        if let Some(b) = ram {
            return Found::Ram(Bytes::copy_from_slice(b));
        }
        match self.catalog.get(loc.index) {
            Some(info) if info.holds(loc.position, loc.end()) => Found::Disk(info),
            _ => Found::Missing,
        }
    }

    /// What `locations(index)` lists: the committed file (if any) and the buffered items
    /// of `index` past its committed end, in order.
    pub(crate) fn listing(&self, index: u32) -> (Option<FileInfo>, Vec<ItemLocation>) {
        let info = self.catalog.get(index);
        let end = info.map_or(0, |i| i.end);
        let buffered = self
            .flushing
            .iter()
            .flat_map(|f| f.locations(index))
            .chain(self.active.locations(index))
            .filter(|l| l.position >= end)
            .collect();
        (info, buffered)
    }

    /// The head of the committed catalog.
    pub(crate) fn catalog_head(&self) -> u32 {
        self.catalog.head()
    }

    /// The committed catalog, as readers find it.
    pub(crate) fn catalog(&self) -> Catalog {
        self.catalog.clone()
    }

    /// Asks for a flush of everything added so far; returns the add sequence number to
    /// wait for, or `None` when all of it is persisted already.
    ///
    /// # Errors
    /// As [`Shared::admit`] for a flush.
    pub(crate) fn request_flush(&mut self, persisted: u64) -> Result<Option<u64>> {
        self.admit(Call::Flush)?;
        if persisted >= self.added {
            return Ok(None);
        }
        self.flush_requested = true;
        Ok(Some(self.added))
    }

    /// The add sequence number that makes `loc` persisted, or `None` when it is already.
    ///
    /// # Errors
    /// As [`Shared::admit`] to wait; [`Error::NotStored`] when `loc` is neither buffered
    /// nor committed.
    pub(crate) fn persisted_at(&self, loc: ItemLocation) -> Result<Option<u64>> {
        self.admit(Call::Wait)?;
        if self.active.covers(loc) {
            Ok(Some(self.added))
        } else if self.flushing.as_ref().is_some_and(|f| f.covers(loc)) {
            Ok(Some(self.flushing_seq))
        } else {
            match self.catalog.get(loc.index) {
                Some(info) if info.holds(loc.position, loc.end()) => Ok(None),
                _ => Err(Error::NotStored { location: loc }),
            }
        }
    }

    /// When the flush interval next expires.
    pub(crate) fn next_deadline(&self, interval: std::time::Duration) -> Option<Instant> {
        self.last_flush.checked_add(interval)
    }

    /// Whether the buffer is due for a flush now: by its size or item count, a request, or
    /// the interval since the last flush. An empty buffer is never due; its interval
    /// restarts when it expires.
    pub(crate) fn flush_due(&mut self, now: Instant, interval: std::time::Duration) -> bool {
        let expired = self.next_deadline(interval).is_some_and(|at| now >= at);
        if self.active.is_empty() {
            if expired {
                self.last_flush = now;
            }
            self.flush_requested = false;
            return false;
        }
        expired || self.flush_requested || self.active.reached_limit(&self.limits)
    }

    /// Items in the active buffer.
    pub(crate) fn buffered_items(&self) -> usize {
        self.active.items
    }

    /// Takes the active buffer for the flusher (`None` when it is empty), keeping it
    /// readable until [`Shared::finish_batch`].
    ///
    /// # Errors
    /// The poisoned error.
    pub(crate) fn take_batch(&mut self, now: Instant, even_empty: bool) -> Result<Option<Batch>> {
        if let Status::Poisoned(e) = &self.status {
            return Err(Error::poisoned(e));
        }
        self.last_flush = now;
        self.flush_requested = false;
        if self.active.is_empty() && !even_empty {
            return Ok(None);
        }
        let buffer = Arc::new(std::mem::take(&mut self.active));
        self.flushing = Some(Arc::clone(&buffer));
        self.flushing_seq = self.added;
        Ok(Some(Batch {
            buffer,
            seq: self.added,
        }))
    }

    /// The batch is committed: readers find it in `catalog` from now on, in the same step
    /// as its RAM copy goes.
    pub(crate) fn finish_batch(&mut self, catalog: Catalog) {
        self.flushing = None;
        self.adopt(catalog);
    }

    /// The store's latest snapshot. With nothing buffered, the next add goes at its head's
    /// end (after a commit or a trim in an exclusive operation, the tail is where the store
    /// left it).
    pub(crate) fn adopt(&mut self, catalog: Catalog) {
        if self.active.is_empty() {
            self.tail = catalog.tail();
        }
        self.catalog = catalog;
    }

    /// Where the next item goes.
    pub(crate) fn tail(&self) -> Tail {
        self.tail
    }

    /// Holds adds off (a commit, a trim).
    ///
    /// # Errors
    /// As [`Shared::admit`] for the flusher's steps.
    pub(crate) fn enter_exclusive(&mut self) -> Result<()> {
        self.admit(Call::Persist)?;
        self.exclusive = true;
        Ok(())
    }

    pub(crate) fn leave_exclusive(&mut self) {
        self.exclusive = false;
    }

    /// Refuses writes from now on and drops what was not persisted: the handle serves only
    /// what is committed, as the next open will. `false` if it was poisoned or stopped
    /// already.
    pub(crate) fn poison(&mut self, error: &Error) -> bool {
        if matches!(self.status, Status::Poisoned(_) | Status::Stopped) {
            return false;
        }
        self.status = Status::Poisoned(error.clone());
        self.active = Buffer::default();
        self.flushing = None;
        true
    }

    /// `stop` was called: a running handle stops taking writes.
    ///
    /// # Errors
    /// [`Error::NotRunning`] if it is stopping or stopped already.
    pub(crate) fn begin_stop(&mut self) -> Result<()> {
        match self.status {
            Status::Running => self.status = Status::Stopping,
            Status::Poisoned(_) => {}
            Status::Stopping | Status::Stopped => return Err(Error::NotRunning),
        }
        Ok(())
    }

    /// The flusher's stop begins: adds are held off for good. Returns the poisoned error
    /// if the handle is poisoned (nothing more is persisted).
    pub(crate) fn stopping(&mut self) -> Option<Error> {
        if matches!(self.status, Status::Running) {
            self.status = Status::Stopping;
        }
        self.exclusive = true;
        match &self.status {
            Status::Poisoned(e) => Some(Error::poisoned(e)),
            _ => None,
        }
    }

    pub(crate) fn stopped(&mut self) {
        self.status = Status::Stopped;
    }

    /// The flusher is gone without a stop: the handle is stopped, and the buffers it did not
    /// persist are handed over (the batch in flight, and the active buffer), unless it was
    /// stopped or poisoned already.
    pub(crate) fn abandon(&mut self) -> Option<(Option<Arc<Buffer>>, Buffer)> {
        if !matches!(self.status, Status::Running | Status::Stopping) {
            return None;
        }
        self.status = Status::Stopped;
        Some((self.flushing.take(), std::mem::take(&mut self.active)))
    }
}
