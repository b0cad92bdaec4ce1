//! [`AioDiskDb`]: the cheap, cloneable handle, and the state it shares with the flusher.
//!
//! Lock order: `Inner::shared` is a short std mutex never held across `.await` and never
//! held while taking another lock, except the store mutex inside the flusher's blocking
//! closures, which never takes `shared`. The hooks' queue has a mutex of its own, taken
//! alone (events are emitted after `shared` is released).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot, watch, Notify, Semaphore};
use tokio::time::Instant;

use crate::buffer::{Buffer, Limits, Tail};
use crate::catalog::{Catalog, FileInfo};
use crate::config::{Builder, Config};
use crate::error::{Error, Result};
use crate::events::{Event, HookQueue, HookSender, Hooks, HOOK_MERGE_AFTER};
use crate::flusher::{self, Command, TrimOp};
use crate::fs::{Fs, RealFs};
use crate::location::ItemLocation;
use crate::reader::ReadCache;
use crate::registry::{self, Session};
use crate::store::Store;
use crate::transaction::Transaction;

const EVENT_CAPACITY: usize = 4096;

/// Lifecycle of a handle.
#[derive(Debug, Clone)]
pub(crate) enum Status {
    Running,
    /// `stop` was called: writes are refused, the flusher is persisting the rest.
    Stopping,
    Stopped,
    /// A write or sync failed: writes are refused until the directory is reopened.
    Poisoned(Error),
}

/// Persistence progress, published by the flusher.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    /// Every item whose add sequence number is at most this is persisted.
    pub(crate) persisted: u64,
    /// Set when the handle is poisoned.
    pub(crate) error: Option<Error>,
    pub(crate) stopped: bool,
}

/// State shared by the handles and the flusher, behind `Inner::shared`.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) status: Status,
    /// Accepting adds.
    pub(crate) active: Buffer,
    /// Being written by the flusher; still served to readers.
    pub(crate) flushing: Option<Arc<Buffer>>,
    /// Where the next add goes.
    pub(crate) tail: Tail,
    /// Committed files, for readers.
    pub(crate) catalog: Catalog,
    /// Sequence number of the last accepted add.
    pub(crate) added: u64,
    /// Sequence number covered by the flushing buffer.
    pub(crate) flushing_seq: u64,
    pub(crate) flush_requested: bool,
    /// A commit, trim or stop is in progress: adds wait.
    pub(crate) exclusive: bool,
    pub(crate) last_flush: Instant,
}

impl Shared {
    pub(crate) fn tail_from_catalog(&mut self) {
        let head = self.catalog.head;
        let info = self.catalog.head_info().copied().unwrap_or(FileInfo {
            trim_offset: 0,
            end: 0,
            generation: 0,
        });
        self.tail = Tail {
            index: head,
            end: info.end,
            trim_offset: info.trim_offset,
        };
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) cfg: Config,
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) limits: Limits,
    pub(crate) shared: Mutex<Shared>,
    /// Wakes the flusher (buffer full, flush requested).
    pub(crate) flusher_wake: Notify,
    /// Wakes adds waiting for buffer space or for an exclusive operation to end.
    pub(crate) space: Notify,
    pub(crate) progress: watch::Sender<Progress>,
    pub(crate) events: broadcast::Sender<Event>,
    /// The hooks' own queue, when any hook is set: hooks see every event.
    pub(crate) hooks: Option<HookSender>,
    pub(crate) overwrite: AtomicBool,
    pub(crate) reads: Semaphore,
    pub(crate) read_cache: ReadCache,
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding this lock leaves plain data behind; keep serving.
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends `event` to the subscribers and queues it for the hooks. Never waits: a slow
    /// subscriber lags, a slow hook lets its queue grow (see [`HookQueue`]).
    pub(crate) fn emit(&self, event: Event) {
        if let Some(hooks) = &self.hooks {
            hooks.0.push(event.clone());
        }
        // No receiver is not an error.
        let _ = self.events.send(event);
    }

    /// Refuses writes from now on, drops what was not persisted, and tells everyone why.
    pub(crate) fn poison(&self, error: &Error) {
        {
            let mut s = self.lock();
            if matches!(s.status, Status::Poisoned(_) | Status::Stopped) {
                return;
            }
            s.status = Status::Poisoned(error.clone());
            // Whatever was not persisted is gone with this handle: serve only what is
            // committed, as the next open will.
            s.active = Buffer::default();
            s.flushing = None;
        }
        tracing::error!(%error, "aiodiskdb write failed; refusing writes until reopened");
        self.progress
            .send_modify(|p| p.error = Some(poisoned_error(error)));
        self.space.notify_waiters();
        self.emit(Event::Failed {
            at: SystemTime::now(),
            error: error.clone(),
        });
    }
}

pub(crate) fn poisoned_error(cause: &Error) -> Error {
    // Name the root cause ("File too large (os error 27)", "No space left on device"): a
    // caller of `flush` gets this error, not the `Error::Io` itself.
    let mut why = cause.to_string();
    let mut source = std::error::Error::source(cause);
    while let Some(s) = source {
        why.push_str(": ");
        why.push_str(&s.to_string());
        source = s.source();
    }
    Error::InvalidDbState {
        reason: format!("a previous write failed ({why}); reopen the database to recover"),
    }
}

/// `start + wait`, or `None` when that instant is past what the clock can represent: a
/// deadline that never comes (`Duration::MAX` means "wait for ever", not an overflow).
pub(crate) fn after(start: Instant, wait: Duration) -> Option<Instant> {
    start.checked_add(wait)
}

/// Waits for `fut` until `deadline` (for ever if `None`); whether it completed in time.
async fn notified_before(deadline: Option<Instant>, fut: impl std::future::Future) -> bool {
    if let Some(at) = deadline {
        tokio::time::timeout_at(at, fut).await.is_ok()
    } else {
        fut.await;
        true
    }
}

/// The part every clone shares; dropping the last one lets the flusher stop.
#[derive(Debug)]
struct Handle {
    inner: Arc<Inner>,
    commands: mpsc::UnboundedSender<Command>,
    /// This database in the process's registry of open directories.
    session: Option<Session>,
}

impl Handle {
    /// From now on the flusher releases the directory by itself: an `open` of it in this
    /// process waits for that instead of failing with `Locked`.
    fn closing(&self) {
        if let Some(session) = self.session {
            registry::closing(session);
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // `commands` closes right after this: the flusher stops and releases the store.
        self.closing();
    }
}

/// An open database: a cheap `Clone` handle, usable from many tasks at once.
///
/// See the [crate documentation](crate) for an overview.
#[derive(Debug, Clone)]
pub struct AioDiskDb {
    handle: Arc<Handle>,
}

impl AioDiskDb {
    /// A builder with every option at its default, for the directory at `path`.
    pub fn builder(path: impl AsRef<Path>) -> Builder {
        Builder::new(path)
    }

    /// Opens (creating if missing) the database at `path` with default options.
    ///
    /// # Errors
    /// As [`Builder::open`].
    ///
    /// # Cancel safety
    /// As [`Builder::open`].
    pub async fn open(path: impl AsRef<Path>) -> Result<AioDiskDb> {
        Builder::new(path).open().await
    }

    pub(crate) async fn start(cfg: Config, hooks: Hooks) -> Result<AioDiskDb> {
        Self::start_with(Arc::new(RealFs), cfg, hooks).await
    }

    pub(crate) async fn start_with(
        fs: Arc<dyn Fs>,
        cfg: Config,
        hooks: Hooks,
    ) -> Result<AioDiskDb> {
        let (store, session) = {
            let fs = Arc::clone(&fs);
            let cfg = cfg.clone();
            tokio::task::spawn_blocking(move || {
                let (store, _report) = Store::open(Arc::clone(&fs), &cfg)?;
                let state = cfg.path.join(cfg.naming.state_file());
                Ok::<_, Error>((store, registry::session_of(fs.as_ref(), &state)))
            })
            .await
            .map_err(|e| Error::InvalidDbState {
                reason: format!("open task failed: {e}"),
            })??
        };
        let catalog = store.catalog().clone();
        let limits = Limits {
            max_file_size: cfg.max_file_size,
            max_index: cfg.naming.max_index(),
            padding: cfg.naming.padding,
            reserve: usize::try_from(cfg.max_buffer_size.min(1 << 20)).unwrap_or(1 << 20),
        };
        let mut shared = Shared {
            status: Status::Running,
            active: Buffer::default(),
            flushing: None,
            tail: Tail {
                index: 0,
                end: 0,
                trim_offset: 0,
            },
            catalog,
            added: 0,
            flushing_seq: 0,
            flush_requested: false,
            exclusive: false,
            last_flush: Instant::now(),
        };
        shared.tail_from_catalog();
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let hook_queue = (!hooks.is_empty()).then(|| Arc::new(HookQueue::new(HOOK_MERGE_AFTER)));
        let inner = Arc::new(Inner {
            overwrite: AtomicBool::new(cfg.overwrite),
            reads: Semaphore::new(cfg.concurrency),
            cfg,
            fs,
            limits,
            shared: Mutex::new(shared),
            flusher_wake: Notify::new(),
            space: Notify::new(),
            progress: watch::Sender::new(Progress::default()),
            events,
            hooks: hook_queue.as_ref().map(|q| HookSender(Arc::clone(q))),
            read_cache: ReadCache::default(),
        });
        if let Some(queue) = hook_queue {
            tokio::spawn(hooks.dispatch(queue));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(flusher::run(Arc::clone(&inner), store, rx));
        inner.emit(Event::Started {
            at: SystemTime::now(),
        });
        Ok(AioDiskDb {
            handle: Arc::new(Handle {
                inner,
                commands: tx,
                session,
            }),
        })
    }

    fn inner(&self) -> &Inner {
        &self.handle.inner
    }

    /// Adds an item and returns its location at once; the item is readable immediately and
    /// persisted by a later flush (see [`AioDiskDb::flush`], [`AioDiskDb::wait_persisted`]).
    ///
    /// Waits for buffer space (back pressure) when the RAM buffer is full, and while a
    /// transaction commit or a trim runs.
    ///
    /// # Errors
    /// [`Error::EmptyPayload`]; [`Error::ItemTooLarge`] above `max_buffer_size` (or what
    /// fits a fresh file); [`Error::Timeout`] after waiting `timeout` for space;
    /// [`Error::NotRunning`] after `stop`; [`Error::InvalidDbState`] after a failed write;
    /// [`Error::DatabaseFull`] when no file index is left.
    ///
    /// # Cancel safety
    /// The item is added in one synchronous step after the last `.await`: if the future is
    /// dropped, the item either was added (its location is lost to the caller) or was not.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> aiodiskdb::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = aiodiskdb::AioDiskDb::open(dir.path()).await?;
    /// let loc = db.add(&b"data"[..]).await?;
    /// assert_eq!(db.read(loc).await?.as_deref(), Some(&b"data"[..]));
    /// db.stop().await
    /// # }
    /// ```
    pub async fn add(&self, data: impl Into<Bytes>) -> Result<ItemLocation> {
        let data: Bytes = data.into();
        let inner = self.inner();
        if data.is_empty() {
            return Err(Error::EmptyPayload);
        }
        let limit = inner.cfg.max_item_size();
        if data.len() as u64 > limit {
            return Err(Error::ItemTooLarge {
                size: data.len() as u64,
                limit,
            });
        }
        // The common case: room in the buffer. No waiter is registered.
        if let Some(loc) = self.try_add(&data)? {
            return Ok(loc);
        }
        let mut deadline = None;
        loop {
            let notified = inner.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(loc) = self.try_add(&data)? {
                return Ok(loc);
            }
            let until = *deadline.get_or_insert_with(|| after(Instant::now(), inner.cfg.timeout));
            if !notified_before(until, notified).await {
                return Err(Error::Timeout {
                    what: "buffer space",
                    waited_ms: u64::try_from(inner.cfg.timeout.as_millis()).unwrap_or(u64::MAX),
                });
            }
        }
    }

    fn try_add(&self, data: &[u8]) -> Result<Option<ItemLocation>> {
        let inner = self.inner();
        let mut s = inner.lock();
        match &s.status {
            Status::Running => {}
            Status::Poisoned(e) => return Err(poisoned_error(e)),
            Status::Stopping | Status::Stopped => return Err(Error::NotRunning),
        }
        if s.exclusive {
            return Ok(None);
        }
        let size = data.len() as u64;
        if !s.active.is_empty() && s.active.bytes + size > inner.cfg.max_buffer_size {
            // Full for this item: the flusher must take the buffer even below the threshold.
            s.flush_requested = true;
            drop(s);
            inner.flusher_wake.notify_one();
            return Ok(None);
        }
        let s = &mut *s;
        let loc = s.active.push(&mut s.tail, data, &inner.limits)?;
        s.added += 1;
        if s.active.bytes >= inner.cfg.max_buffer_size
            || s.active.items >= inner.cfg.max_buffer_items
        {
            inner.flusher_wake.notify_one();
        }
        Ok(Some(loc))
    }

    /// Reads the item at `loc`: from RAM if it is not on disk yet, else from its file.
    ///
    /// Returns `None` when the range is not wholly stored: the index does not exist, the
    /// position was trimmed, or the range passes the end. Never partial data. A location
    /// is a byte range: the file format has no item boundaries, so a range that lies inside
    /// stored data is returned as it is.
    ///
    /// # Errors
    /// [`Error::NotRunning`] after `stop`; [`Error::Io`] when the disk read fails.
    ///
    /// # Cancel safety
    /// Reading has no effect; dropping the future is harmless.
    pub async fn read(&self, loc: ItemLocation) -> Result<Option<Bytes>> {
        // A read served from RAM awaits nothing: take part in tokio's cooperative
        // scheduling, or a task reading buffered items in a loop starves the flusher.
        tokio::task::consume_budget().await;
        let inner = self.inner();
        let info = {
            let s = inner.lock();
            if matches!(s.status, Status::Stopped) {
                return Err(Error::NotRunning);
            }
            if loc.size == 0 {
                return Ok(None);
            }
            if let Some(b) = s.active.get(loc) {
                return Ok(Some(Bytes::copy_from_slice(b)));
            }
            if let Some(b) = s.flushing.as_ref().and_then(|f| f.get(loc)) {
                return Ok(Some(Bytes::copy_from_slice(b)));
            }
            match s.catalog.get(loc.index) {
                Some(info)
                    if loc.position >= info.trim_offset && loc.end() <= u64::from(info.end) =>
                {
                    *info
                }
                _ => return Ok(None),
            }
        };
        // A page-cache hit of an open file: no thread hop.
        if let Some(r) = inner.read_cache.read_cached(loc, info) {
            return r.map_err(|e| {
                let path = inner.cfg.path.join(inner.cfg.naming.data_file(loc.index));
                Error::io("read data file", path, e)
            });
        }
        let _permit = inner.reads.acquire().await.map_err(|_| Error::NotRunning)?;
        let this = Arc::clone(&self.handle.inner);
        tokio::task::spawn_blocking(move || {
            let path = this.cfg.path.join(this.cfg.naming.data_file(loc.index));
            this.read_cache
                .read(this.fs.as_ref(), &path, this.cfg.genesis, loc, info)
                .map_err(|e| Error::io("read data file", path, e))
        })
        .await
        .map_err(|e| Error::InvalidDbState {
            reason: format!("read task failed: {e}"),
        })?
    }

    /// Persists everything added before this call; returns once it is durable. Concurrent
    /// calls share one sync (group commit).
    ///
    /// # Errors
    /// [`Error::NotRunning`] after `stop`; [`Error::InvalidDbState`] if the write or sync
    /// failed (the handle is then poisoned).
    ///
    /// # Cancel safety
    /// Dropping the future does not cancel the flush it requested.
    pub async fn flush(&self) -> Result<()> {
        let inner = self.inner();
        let target = {
            let mut s = inner.lock();
            match &s.status {
                Status::Running | Status::Stopping => {}
                Status::Poisoned(e) => return Err(poisoned_error(e)),
                Status::Stopped => return Err(Error::NotRunning),
            }
            if inner.progress.borrow().persisted >= s.added {
                return Ok(());
            }
            s.flush_requested = true;
            s.added
        };
        inner.flusher_wake.notify_one();
        self.wait_for(target).await
    }

    /// Returns once `loc` is persisted, without forcing a flush (the flush triggers of the
    /// configuration apply).
    ///
    /// # Errors
    /// [`Error::NotStored`] if `loc` is neither persisted nor buffered;
    /// [`Error::NotRunning`] if the database stops first; [`Error::InvalidDbState`] if
    /// the flush fails.
    ///
    /// # Cancel safety
    /// Waiting has no effect; dropping the future is harmless.
    pub async fn wait_persisted(&self, loc: ItemLocation) -> Result<()> {
        let inner = self.inner();
        let target = {
            let s = inner.lock();
            if let Status::Poisoned(e) = &s.status {
                return Err(poisoned_error(e));
            }
            if s.active.covers(loc) {
                s.added
            } else if s.flushing.as_ref().is_some_and(|f| f.covers(loc)) {
                s.flushing_seq
            } else {
                match s.catalog.get(loc.index) {
                    Some(info)
                        if loc.position >= info.trim_offset && loc.end() <= u64::from(info.end) =>
                    {
                        return Ok(())
                    }
                    _ => return Err(Error::NotStored { location: loc }),
                }
            }
        };
        self.wait_for(target).await
    }

    async fn wait_for(&self, target: u64) -> Result<()> {
        let mut rx = self.inner().progress.subscribe();
        let p = rx
            .wait_for(|p| p.persisted >= target || p.error.is_some() || p.stopped)
            .await
            .map_err(|_| Error::NotRunning)?;
        if p.persisted >= target {
            Ok(())
        } else if let Some(e) = &p.error {
            Err(e.clone())
        } else {
            Err(Error::NotRunning)
        }
    }

    /// Starts a transaction: items staged in it are invisible until
    /// [`Transaction::commit`], then written contiguously, atomically and durably.
    pub fn transaction(&self) -> Transaction {
        Transaction::new(self.clone())
    }

    pub(crate) fn max_tx_item_size(&self) -> u64 {
        self.inner().cfg.max_tx_item_size()
    }

    pub(crate) async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> Result<T> {
        {
            let s = self.inner().lock();
            match &s.status {
                Status::Running => {}
                Status::Poisoned(e) => return Err(poisoned_error(e)),
                Status::Stopping | Status::Stopped => return Err(Error::NotRunning),
            }
        }
        let (tx, rx) = oneshot::channel();
        self.handle
            .commands
            .send(make(tx))
            .map_err(|_| Error::NotRunning)?;
        rx.await.map_err(|_| Error::NotRunning)?
    }

    /// Allows `rtrim`, `ltrim` and `drop_index`.
    pub fn enable_overwrite(&self) {
        self.inner().overwrite.store(true, Ordering::SeqCst);
    }

    /// Forbids `rtrim`, `ltrim` and `drop_index` (the default).
    pub fn disable_overwrite(&self) {
        self.inner().overwrite.store(false, Ordering::SeqCst);
    }

    fn check_overwrite(&self) -> Result<()> {
        if self.inner().overwrite.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(Error::ReadOnly)
        }
    }

    /// Cuts index `index` from logical position `trim_from` to its end and returns how many
    /// item bytes were removed. Buffered items are flushed first.
    ///
    /// `trim_from = 0` deletes an older file (firing `IndexDropped`) and empties the current
    /// one. Trimming the current file gives the space back to the next appends; trimming an
    /// older file never does. `safety_check`, when not empty, must equal the first bytes of
    /// the cut range.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] unless overwrite is enabled; [`Error::IndexDoesNotExist`];
    /// [`Error::InvalidTrimCommand`] for a position past the end or a failed safety check
    /// (nothing changes); [`Error::Io`] (the handle is then poisoned).
    ///
    /// # Cancel safety
    /// Dropping the future does not cancel the trim once requested.
    pub async fn rtrim(&self, index: u32, trim_from: u32, safety_check: &[u8]) -> Result<u64> {
        self.check_overwrite()?;
        let check = safety_check.to_vec();
        self.send(|reply| Command::Trim {
            op: TrimOp::Right {
                index,
                from: trim_from,
                check,
            },
            reply,
        })
        .await
    }

    /// Removes the bytes of index `index` before logical position `trim_to` and returns how
    /// many were removed. The positions of the items kept do not change (the file header
    /// records the new trim offset); the file is rewritten through a temp file and a rename.
    /// `trim_to` equal to the index's end deletes the file. The space is never reused.
    /// `safety_check`, when not empty, must equal the last bytes before `trim_to`.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; [`Error::IndexDoesNotExist`]; [`Error::InvalidTrimCommand`] when
    /// `trim_to` is not above the current trim offset, is past the end, or the safety check
    /// fails; [`Error::Io`] (the handle is then poisoned).
    ///
    /// # Cancel safety
    /// Dropping the future does not cancel the trim once requested.
    pub async fn ltrim(&self, index: u32, trim_to: u32, safety_check: &[u8]) -> Result<u64> {
        self.check_overwrite()?;
        let check = safety_check.to_vec();
        self.send(|reply| Command::Trim {
            op: TrimOp::Left {
                index,
                to: trim_to,
                check,
            },
            reply,
        })
        .await
    }

    /// Deletes the data file of `index`, fires `IndexDropped` and returns its item bytes.
    /// Index numbers are never reused: dropping the current file moves appends to the next
    /// index, so an old location never reads new data.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; [`Error::IndexDoesNotExist`]; [`Error::Io`] (the handle is then
    /// poisoned).
    ///
    /// # Cancel safety
    /// Dropping the future does not cancel the drop once requested.
    pub async fn drop_index(&self, index: u32) -> Result<u64> {
        self.check_overwrite()?;
        self.send(|reply| Command::Trim {
            op: TrimOp::Drop { index },
            reply,
        })
        .await
    }

    /// A receiver of every [`Event`] from now on. A slow receiver lags (it gets
    /// `RecvError::Lagged`); it never slows the database.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner().events.subscribe()
    }

    /// Persists everything, marks the directory cleanly stopped, releases its lock and fires
    /// `Stopped`. Every later call on any clone fails with [`Error::NotRunning`].
    ///
    /// # Errors
    /// [`Error::NotRunning`] if already stopped; [`Error::Timeout`] after `timeout`;
    /// [`Error::InvalidDbState`] if the handle was poisoned (the directory is released
    /// dirty and recovers on the next open).
    ///
    /// # Cancel safety
    /// Dropping the future does not cancel the stop once requested.
    pub async fn stop(&self) -> Result<()> {
        let inner = self.inner();
        {
            let mut s = inner.lock();
            match s.status {
                Status::Running | Status::Poisoned(_) => {}
                Status::Stopping | Status::Stopped => return Err(Error::NotRunning),
            }
            if matches!(s.status, Status::Running) {
                s.status = Status::Stopping;
            }
        }
        self.handle.closing();
        inner.space.notify_waiters();
        let (tx, rx) = oneshot::channel();
        self.handle
            .commands
            .send(Command::Stop { reply: tx })
            .map_err(|_| Error::NotRunning)?;
        match tokio::time::timeout(inner.cfg.timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::NotRunning),
            Err(_) => Err(Error::Timeout {
                what: "stop",
                waited_ms: u64::try_from(inner.cfg.timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    /// Whether the database accepts calls (not stopped, stopping or poisoned).
    #[must_use]
    pub fn is_running(&self) -> bool {
        matches!(self.inner().lock().status, Status::Running)
    }

    /// Spawns a task that stops the database gracefully on SIGINT or SIGTERM (SIGKILL cannot
    /// be caught; crash recovery covers it). The task holds no strong reference: it does
    /// not keep the database open.
    ///
    /// # Errors
    /// The task's result is that of [`AioDiskDb::stop`], or [`Error::Io`] if the signal
    /// handlers cannot be installed.
    #[must_use = "the task stops the database on a signal; keep or detach its handle"]
    pub fn stop_on_signals(&self) -> tokio::task::JoinHandle<Result<()>> {
        let weak: Weak<Handle> = Arc::downgrade(&self.handle);
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .map_err(|e| Error::io("install SIGTERM handler", "", e))?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r.map_err(|e| Error::io("install SIGINT handler", "", e))?,
                _ = term.recv() => {}
            }
            match weak.upgrade() {
                Some(handle) => match (AioDiskDb { handle }).stop().await {
                    Err(Error::NotRunning) | Ok(()) => Ok(()),
                    Err(e) => Err(e),
                },
                None => Ok(()),
            }
        })
    }

    /// The directory this database lives in.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner().cfg.path
    }
}
