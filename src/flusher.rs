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

use crate::buffer::Buffer;
use crate::catalog::Delta;
use crate::db::{after, poisoned_error, Inner, Status};
use crate::error::{Error, Result};
use crate::events::{Event, WriteEvent};
#[cfg(test)]
use crate::fs::seeded;
use crate::location::ItemLocation;
use crate::store::{Segment, Store, TrimOutcome};

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
    .map_err(|e| Error::InvalidDbState {
        reason: format!("storage task failed: {e}"),
    })?
}

/// The seeded bug `SplitTransaction`: the first half of the transaction's first segment is
/// committed with the buffer, the rest in a second commit.
#[cfg(test)]
fn write_split(st: &mut Store, segs: Vec<&Segment>, tx: &Buffer) -> Result<Vec<Delta>> {
    let first = &tx.segments[0];
    let half = first.data.len() / 2;
    let a = Segment {
        index: first.index,
        start: first.start,
        new_file: first.new_file,
        data: first.data[..half].to_vec(),
    };
    let b = Segment {
        index: first.index,
        start: a.end(),
        new_file: false,
        data: first.data[half..].to_vec(),
    };
    let mut first_batch: Vec<&Segment> = segs.into_iter().collect();
    first_batch.push(&a);
    let mut deltas = st.write_batch(&first_batch)?;
    let mut rest = vec![&b];
    rest.extend(tx.segments[1..].iter());
    deltas.extend(st.write_batch(&rest)?);
    Ok(deltas)
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
        let (flushing, active) = {
            let mut s = self.inner.lock();
            if !matches!(s.status, Status::Running | Status::Stopping) {
                return;
            }
            s.status = Status::Stopped;
            (s.flushing.take(), std::mem::take(&mut s.active))
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
            result = store.write_batch(&segs).map(drop);
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
        let deadline = after(f.inner.lock().last_flush, interval);
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
            },
            () = f.inner.flusher_wake.notified() => {}
            () = sleep_until(deadline) => {}
        }
        let due = {
            let mut s = f.inner.lock();
            let now = Instant::now();
            let expired = after(s.last_flush, interval).is_some_and(|at| now >= at);
            if s.active.is_empty() {
                if expired {
                    s.last_flush = now;
                }
                s.flush_requested = false;
                false
            } else {
                expired
                    || s.flush_requested
                    || s.active.bytes >= f.inner.cfg.max_buffer_size
                    || s.active.items >= f.inner.cfg.max_buffer_items
            }
        };
        if due {
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
    fn check_writable(&self) -> Result<()> {
        match &self.inner.lock().status {
            Status::Poisoned(e) => Err(poisoned_error(e)),
            Status::Stopped => Err(Error::NotRunning),
            Status::Running | Status::Stopping => Ok(()),
        }
    }

    /// Takes the active buffer and persists it, with `extra` (a transaction) after it.
    /// Returns the deltas on success; on failure the handle is poisoned.
    async fn write(&self, extra: Option<(Buffer, crate::buffer::Tail)>) -> Result<()> {
        let (batch, seq) = {
            let mut s = self.inner.lock();
            if let Status::Poisoned(e) = &s.status {
                return Err(poisoned_error(e));
            }
            s.last_flush = Instant::now();
            s.flush_requested = false;
            if s.active.is_empty() && extra.is_none() {
                return Ok(());
            }
            let batch = Arc::new(std::mem::take(&mut s.active));
            s.flushing = Some(Arc::clone(&batch));
            s.flushing_seq = s.added;
            (batch, s.added)
        };
        self.inner.space.notify_waiters();
        let extra = extra.map(|(b, t)| (Arc::new(b), t));
        let result = {
            let batch = Arc::clone(&batch);
            let tx = extra.as_ref().map(|(b, _)| Arc::clone(b));
            #[cfg(test)]
            let split = seeded!(self.inner.fs, SplitTransaction);
            blocking(&self.store, move |st| {
                let mut segs: Vec<&Segment> = batch.segments.iter().collect();
                if let Some(tx) = &tx {
                    #[cfg(test)]
                    if split {
                        return write_split(st, segs, tx);
                    }
                    segs.extend(tx.segments.iter());
                }
                st.write_batch(&segs)
            })
            .await
        };
        match result {
            Ok(deltas) => {
                {
                    let mut s = self.inner.lock();
                    for d in &deltas {
                        s.catalog.apply(d);
                    }
                    s.flushing = None;
                    if let Some((_, tail)) = &extra {
                        s.tail = *tail;
                    }
                }
                let at = SystemTime::now();
                let tx_segs = extra.iter().flat_map(|(b, _)| b.segments.iter());
                for seg in batch.segments.iter().chain(tx_segs) {
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
        let mut items = self.inner.lock().active.items;
        for _ in 0..MAX_YIELDS {
            tokio::task::yield_now().await;
            let now = self.inner.lock().active.items;
            if now == items {
                return;
            }
            items = now;
        }
    }

    /// Runs `op` with adds held off, clearing the flag however it ends.
    async fn exclusive<T, Fut: std::future::Future<Output = Result<T>>>(
        &self,
        op: impl FnOnce() -> Fut,
    ) -> Result<T> {
        self.check_writable()?;
        self.inner.lock().exclusive = true;
        let r = op().await;
        self.inner.lock().exclusive = false;
        self.inner.space.notify_waiters();
        r
    }

    async fn commit(&self, items: Vec<Bytes>) -> Result<Vec<ItemLocation>> {
        self.exclusive(|| async {
            let (tx, tail, locs) = {
                let s = self.inner.lock();
                let mut tail = s.tail;
                let mut tx = Buffer::default();
                let mut locs = Vec::with_capacity(items.len());
                for item in &items {
                    locs.push(tx.push(&mut tail, item, &self.inner.limits)?);
                }
                (tx, tail, locs)
            };
            self.write(Some((tx, tail))).await?;
            Ok(locs)
        })
        .await
    }

    async fn trim(&self, op: TrimOp) -> Result<u64> {
        self.exclusive(|| async {
            self.flush().await?;
            let outcome: Result<TrimOutcome> = blocking(&self.store, move |st| match op {
                TrimOp::Right { index, from, check } => st.rtrim(index, from, &check),
                TrimOp::Left { index, to, check } => st.ltrim(index, to, &check),
                TrimOp::Drop { index } => st.drop_index(index),
            })
            .await;
            match outcome {
                Ok(o) => {
                    {
                        let mut s = self.inner.lock();
                        for d in &o.deltas {
                            s.catalog.apply(d);
                            if let Delta::Replaced { index, .. } | Delta::Removed { index } = d {
                                self.inner.read_cache.evict(*index);
                            }
                        }
                        s.tail_from_catalog();
                    }
                    if let Some((index, size)) = o.dropped {
                        self.inner.emit(Event::IndexDropped {
                            at: SystemTime::now(),
                            index,
                            size,
                        });
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

    async fn stop(&self) -> Result<()> {
        {
            let mut s = self.inner.lock();
            if matches!(s.status, Status::Running) {
                s.status = Status::Stopping;
            }
            s.exclusive = true;
        }
        let poisoned = matches!(self.inner.lock().status, Status::Poisoned(_));
        let mut result = if poisoned {
            Err(self.check_writable().unwrap_err())
        } else {
            self.flush().await
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
        self.inner.lock().status = Status::Stopped;
        self.inner.progress.send_modify(|p| p.stopped = true);
        self.inner.space.notify_waiters();
        self.inner.emit(Event::Stopped {
            at: SystemTime::now(),
        });
        result
    }
}
