//! The flusher: the one owner of the write side. A background task that persists the RAM
//! buffer when a trigger fires (bytes, items, interval, explicit flush), and runs commits,
//! trims and the stop, one at a time, each as one blocking call into the [`Store`].
//!
//! If the task is dropped without a stop (the runtime shut down, or every handle was
//! dropped while it could not run), [`FinalFlush`] persists the buffers synchronously.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::buffer::{Buffer, Segment};
use crate::db::Inner;
use crate::error::{Error, Result};
use crate::events::{Event, WriteEvent};
use crate::location::ItemLocation;
use crate::shared::Batch;
#[cfg(feature = "tiering")]
use crate::shared::Call;
use crate::store::{Fetched, Store};

/// A request to the flusher.
#[derive(Debug)]
pub(crate) enum Command {
    Commit {
        items: Vec<Bytes>,
        reply: oneshot::Sender<Result<Vec<ItemLocation>>>,
    },
    Trim {
        op: TrimOp,
        reply: oneshot::Sender<Result<u64>>,
    },
    Stop {
        reply: oneshot::Sender<Result<()>>,
    },
    /// Record a sealed file's copy at `to`, moving the file: a verified upload as remote
    /// (the local copy deleted), or a download as local (renamed into place). `false`:
    /// the file changed meanwhile, nothing recorded.
    #[cfg(feature = "tiering")]
    Place {
        copy: crate::store::FileCopy,
        to: crate::store::Place,
        reply: oneshot::Sender<Result<bool>>,
    },
}

#[derive(Debug)]
pub(crate) enum TrimOp {
    Right {
        index: u32,
        from: u32,
        check: Vec<u8>,
    },
    Left {
        index: u32,
        to: u32,
        check: Vec<u8>,
    },
    Drop {
        index: u32,
    },
}

impl TrimOp {
    /// The index the trim concerns.
    fn index(&self) -> u32 {
        match *self {
            TrimOp::Right { index, .. } | TrimOp::Left { index, .. } | TrimOp::Drop { index } => {
                index
            }
        }
    }

    /// The logical range its safety check compares with, if it has one and `info` stores
    /// that range wholly (else the store refuses the trim).
    #[cfg(feature = "tiering")]
    fn check_range(&self, info: crate::catalog::FileInfo) -> Option<std::ops::Range<u32>> {
        match self {
            TrimOp::Right { from, check, .. } if !check.is_empty() => {
                crate::store::rtrim_check_range(info, *from, check.len())
            }
            TrimOp::Left { to, check, .. } if !check.is_empty() => {
                crate::store::ltrim_check_range(info, *to, check.len())
            }
            _ => None,
        }
    }
}

type SharedStore = Arc<Mutex<Option<Store>>>;

fn lock_store(store: &Mutex<Option<Store>>) -> MutexGuard<'_, Option<Store>> {
    store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `f` on the store in a blocking thread.
async fn blocking<T: Send + 'static>(
    store: &SharedStore,
    f: impl FnOnce(&mut Store) -> Result<T> + Send + 'static,
) -> Result<T> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || match lock_store(&store).as_mut() {
        Some(s) => f(s),
        None => Err(Error::NotRunning),
    })
    .await
    .map_err(|e| Error::state(format!("storage task failed: {e}")))?
}

struct Flusher {
    inner: Arc<Inner>,
    store: SharedStore,
}

/// Persists what is left if the flusher task is dropped before a stop.
struct FinalFlush {
    inner: Arc<Inner>,
    store: SharedStore,
}

impl Drop for FinalFlush {
    fn drop(&mut self) {
        let Some((flushing, active)) = self.inner.lock().abandon() else {
            return;
        };
        // No flusher will make room any more: adds waiting for space fail at once.
        self.inner.space.notify_waiters();
        self.persist(flushing.as_deref(), &active);
        // `flush` and `wait_persisted` learn that nothing more will be persisted.
        self.inner.progress.send_modify(|p| p.stopped = true);
    }
}

impl FinalFlush {
    /// Writes the buffers (those of the in-flight flush only if it did not commit), marks
    /// the directory clean and releases the store, unless a stop already released it.
    fn persist(&self, flushing: Option<&Buffer>, active: &Buffer) {
        let mut guard = lock_store(&self.store);
        let Some(store) = guard.as_mut() else { return };
        let mut segs: Vec<&Segment> = Vec::new();
        if let Some(f) = flushing {
            // The flush may have committed before the task was dropped.
            if f.segments.first().is_some_and(|s| store.continues(s)) {
                segs.extend(f.segments.iter());
            }
        }
        segs.extend(active.segments.iter());
        let mut result = Ok(());
        if !segs.is_empty() {
            result = store.write_batch(&segs);
        }
        if result.is_ok() {
            result = store.close_clean();
        }
        if let Err(e) = result {
            tracing::error!(error = %e, "final flush on drop failed; the directory recovers on open");
        }
        *guard = None;
    }
}

/// The flusher task. [`FinalFlush`] is created before the future is returned, so that it
/// persists the buffers even if the task is dropped before its first poll (a runtime shut
/// down right after the last add).
pub(crate) fn run(
    inner: Arc<Inner>,
    store: Store,
    commands: mpsc::UnboundedReceiver<Command>,
) -> impl std::future::Future<Output = ()> {
    let store: SharedStore = Arc::new(Mutex::new(Some(store)));
    let final_flush = FinalFlush {
        inner: Arc::clone(&inner),
        store: Arc::clone(&store),
    };
    run_loop(Flusher { inner, store }, final_flush, commands)
}

async fn run_loop(
    f: Flusher,
    final_flush: FinalFlush,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let _final = final_flush;
    let interval = f.inner.cfg.flush_interval;
    loop {
        let deadline = f.inner.lock().next_deadline(interval);
        tokio::select! {
            biased;
            cmd = commands.recv() => match cmd {
                None => {
                    let _ = f.stop().await;
                    return;
                }
                Some(Command::Stop { reply }) => {
                    let _ = reply.send(f.stop().await);
                    return;
                }
                Some(Command::Commit { items, reply }) => {
                    let _ = reply.send(f.commit(items).await);
                }
                Some(Command::Trim { op, reply }) => {
                    let _ = reply.send(f.trim(op).await);
                }
                #[cfg(feature = "tiering")]
                Some(Command::Place { copy, to, reply }) => {
                    let _ = reply.send(f.record_place(copy, to).await);
                }
            },
            () = f.inner.flusher_wake.notified() => {}
            () = sleep_until(deadline) => {}
        }
        if f.inner.lock().flush_due(Instant::now(), interval) {
            f.gather().await;
            // Failures poison the handle; waiters learn it from the progress channel.
            let _ = f.flush().await;
        }
    }
}

/// Sleeps until `deadline`; for ever if there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Flusher {
    /// Takes the active buffer and persists it, with `tx` (a transaction's segments) after
    /// it, in one commit. On failure the handle is poisoned.
    async fn write(&self, tx: Option<Buffer>) -> Result<()> {
        let Some(Batch { buffer, seq }) =
            self.inner.lock().take_batch(Instant::now(), tx.is_some())?
        else {
            return Ok(());
        };
        self.inner.space.notify_waiters();
        let tx = tx.map(Arc::new);
        let result = {
            let (buffer, tx) = (Arc::clone(&buffer), tx.clone());
            blocking(&self.store, move |st| {
                let segs: Vec<&Segment> = buffer
                    .segments
                    .iter()
                    .chain(tx.iter().flat_map(|t| t.segments.iter()))
                    .collect();
                st.write_batch(&segs)?;
                Ok(st.catalog())
            })
            .await
        };
        match result {
            Ok(catalog) => {
                let head = catalog.head();
                let moved = {
                    let mut s = self.inner.lock();
                    let moved = s.catalog_head() != head;
                    s.finish_batch(catalog);
                    moved
                };
                #[cfg(feature = "tiering")]
                if moved {
                    self.sealed();
                }
                #[cfg(not(feature = "tiering"))]
                let _ = moved;
                let at = SystemTime::now();
                let tx_segs = tx.iter().flat_map(|t| t.segments.iter());
                for seg in buffer.segments.iter().chain(tx_segs) {
                    self.inner.emit(Event::Written {
                        at,
                        event: WriteEvent {
                            index: seg.index,
                            position: seg.start,
                            size: u32::try_from(seg.data.len()).expect("fits a file"),
                        },
                    });
                }
                // Events first: whoever wakes on the progress finds them already sent.
                self.inner
                    .progress
                    .send_modify(|p| p.persisted = p.persisted.max(seq));
                self.inner.space.notify_waiters();
                Ok(())
            }
            Err(e) => {
                self.inner.poison(&e);
                Err(e)
            }
        }
    }

    async fn flush(&self) -> Result<()> {
        self.write(None).await
    }

    /// Group commit: before taking the buffer, lets the tasks that are ready to run add
    /// their items, for as long as the buffer keeps growing (a few yields at most). The
    /// tasks that the last commit woke up typically add and ask for a flush again at once;
    /// without this, the first of them would start a commit of one item and leave the rest
    /// waiting for a whole sync.
    async fn gather(&self) {
        const MAX_YIELDS: usize = 8;
        let mut items = self.inner.lock().buffered_items();
        for _ in 0..MAX_YIELDS {
            tokio::task::yield_now().await;
            let now = self.inner.lock().buffered_items();
            if now == items {
                return;
            }
            items = now;
        }
    }

    /// Runs `op` with adds held off, clearing the hold however it ends.
    async fn exclusive<T, Fut: std::future::Future<Output = Result<T>>>(
        &self,
        op: impl FnOnce() -> Fut,
    ) -> Result<T> {
        self.inner.lock().enter_exclusive()?;
        let r = op().await;
        self.inner.lock().leave_exclusive();
        self.inner.space.notify_waiters();
        r
    }

    async fn commit(&self, items: Vec<Bytes>) -> Result<Vec<ItemLocation>> {
        self.exclusive(|| async {
            // Placed after everything buffered, in a buffer no reader sees.
            let mut tail = self.inner.lock().tail();
            let limits = self.inner.cfg.limits();
            let mut tx = Buffer::default();
            let mut locs = Vec::with_capacity(items.len());
            for item in &items {
                locs.push(tx.push(&mut tail, item, &limits)?);
            }
            self.write(Some(tx)).await?;
            Ok(locs)
        })
        .await
    }

    /// Runs `op` on the store, which cuts, replaces or removes files of `index`, and adopts
    /// the catalog it leaves when `adopt` says so of its outcome, forgetting the file's read
    /// handle. Counted as a trim from before `op` until the catalog is adopted
    /// (`Inner::trim_running`): a read that overlaps it
    /// is judged again after it (`AioDiskDb::read`), as the files change before the
    /// handle's catalog does.
    async fn changing_files<T: Send + 'static>(
        &self,
        index: u32,
        op: impl FnOnce(&mut Store) -> Result<T> + Send + 'static,
        adopt: impl FnOnce(&T) -> bool,
    ) -> Result<T> {
        let running = self.inner.trim_running();
        let outcome = blocking(&self.store, move |st| {
            let o = op(st)?;
            Ok((o, st.catalog()))
        })
        .await;
        let outcome = outcome.map(|(o, catalog)| {
            if adopt(&o) {
                self.inner.lock().adopt(catalog);
                // The file was replaced, shrunk or removed: no read keeps its handle.
                self.inner.read_cache.evict(index);
            }
            o
        });
        drop(running);
        outcome
    }

    async fn trim(&self, op: TrimOp) -> Result<u64> {
        self.exclusive(|| async {
            self.flush().await?;
            let index = op.index();
            #[cfg(feature = "tiering")]
            let fetched = self.fetch_check(&op).await?;
            #[cfg(not(feature = "tiering"))]
            let fetched: Option<Fetched> = None;
            let outcome = self
                .changing_files(
                    index,
                    move |st| {
                        let fetched = fetched.as_ref();
                        match op {
                            TrimOp::Right { index, from, check } => {
                                st.rtrim(index, from, &check, fetched)
                            }
                            TrimOp::Left { index, to, check } => {
                                st.ltrim(index, to, &check, fetched)
                            }
                            TrimOp::Drop { index } => st.drop_index(index),
                        }
                    },
                    |_| true,
                )
                .await;
            match outcome {
                Ok(o) => {
                    #[cfg(feature = "tiering")]
                    if o.remote {
                        self.delete_remote(index).await;
                    }
                    if let Some((index, size)) = o.dropped {
                        self.inner.emit(Event::IndexDropped {
                            at: SystemTime::now(),
                            index,
                            size,
                        });
                        // A drop of the head seals nothing, but moves it.
                        #[cfg(feature = "tiering")]
                        self.sealed();
                    }
                    Ok(o.trimmed)
                }
                Err(e) => {
                    if matches!(e, Error::Io { .. } | Error::FilesInconsistency { .. }) {
                        self.inner.poison(&e);
                    }
                    Err(e)
                }
            }
        })
        .await
    }

    /// For a trim of a remote index with a safety check: the stored bytes the check
    /// compares with, read from its object (checked against the item index) before the
    /// store runs the trim; `None` for any other trim. A failure (`Error::Remote`,
    /// `Error::Corrupted`) fails the trim with nothing changed.
    #[cfg(feature = "tiering")]
    async fn fetch_check(&self, op: &TrimOp) -> Result<Option<Fetched>> {
        let Some(remote) = &self.inner.remote else {
            return Ok(None);
        };
        let index = op.index();
        let info = self.inner.lock().catalog().get(index);
        let Some((info, range)) = info
            .filter(|i| i.remote)
            .and_then(|i| Some((i, op.check_range(i)?)))
        else {
            return Ok(None);
        };
        let files = self.inner.read_cache.files();
        let bytes = remote.read_range(files, index, info, range.clone()).await?;
        Ok(Some(Fetched {
            at: range.start,
            bytes,
        }))
    }

    /// A file may have been sealed: wakes the background uploader.
    #[cfg(feature = "tiering")]
    fn sealed(&self) {
        if let Some(r) = &self.inner.remote {
            r.wake.notify_one();
        }
    }

    /// Deletes the object of a dropped remote file (the drop is durable already: a failure
    /// is logged, and the object is left unnamed).
    #[cfg(feature = "tiering")]
    async fn delete_remote(&self, index: u32) {
        if let Some(r) = &self.inner.remote {
            let key = r.key(&self.inner.cfg.naming, index);
            if let Err(e) = crate::tiering::delete(r.cfg.store.as_ref(), &key).await {
                tracing::warn!(error = %e, "aiodiskdb: the object of a dropped index was not deleted");
            }
        }
    }

    /// Records a sealed file's copy at `to` (`store/tier.rs`), then serves the file from
    /// its new place; a file tiered fires `Tiered`. An I/O failure poisons the handle.
    #[cfg(feature = "tiering")]
    async fn record_place(
        &self,
        copy: crate::store::FileCopy,
        to: crate::store::Place,
    ) -> Result<bool> {
        let id = match &self.inner.remote {
            Some(r) => r.cfg.id(),
            None => return Ok(false),
        };
        self.inner.lock().admit(Call::Persist)?;
        // The store removes or replaces the local file before the handle adopts the move.
        let outcome = self
            .changing_files(
                copy.index,
                move |st| st.record_place(&copy, to, &id),
                |recorded| *recorded,
            )
            .await;
        match outcome {
            Ok(recorded) => {
                if recorded && to == crate::store::Place::Remote {
                    self.inner.emit(Event::Tiered {
                        at: SystemTime::now(),
                        index: copy.index,
                        size: copy.size,
                    });
                }
                Ok(recorded)
            }
            Err(e) => {
                if matches!(e, Error::Io { .. }) {
                    self.inner.poison(&e);
                }
                Err(e)
            }
        }
    }

    async fn stop(&self) -> Result<()> {
        let poisoned = self.inner.lock().stopping();
        let mut result = match poisoned {
            Some(e) => Err(e),
            None => self.flush().await,
        };
        if result.is_ok() {
            result = blocking(&self.store, Store::close_clean).await;
            if let Err(e) = &result {
                self.inner.poison(e);
            }
        }
        // Release the directory lock whatever happened.
        let store = Arc::clone(&self.store);
        let _ = tokio::task::spawn_blocking(move || lock_store(&store).take()).await;
        self.inner.lock().stopped();
        self.inner.progress.send_modify(|p| p.stopped = true);
        self.inner.space.notify_waiters();
        self.inner.emit(Event::Stopped {
            at: SystemTime::now(),
        });
        result
    }
}
