//! Events: what the database reports after the fact, on a broadcast channel, and the
//! seed's five async hooks that a dispatcher task runs for them.
//!
//! User code never runs inside the flusher: the flusher only emits [`Event`]s. Subscribers
//! read the broadcast channel (and lag if they are slow). Hooks have a queue of their own,
//! [`HookQueue`], so that they miss nothing: the emitter appends to it under a short lock and
//! never waits, and one dispatcher task calls the hooks one event at a time, in order.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::Notify;

use crate::error::Error;

/// Queued hook events past which a `Written` event that continues the last queued one
/// (same index, next position) is merged into it instead of being queued.
pub(crate) const HOOK_MERGE_AFTER: usize = 65_536;

/// Queue capacity kept once a backlog is worked off.
const SHRINK_ABOVE: usize = 1024;

/// One contiguous range of an index that just became persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriteEvent {
    /// The data file's index.
    pub index: u32,
    /// Logical position of the range's first byte.
    pub position: u32,
    /// Length of the range in bytes.
    pub size: u32,
}

/// What happened, and when. One variant per hook of the Python library.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The database opened and is accepting calls.
    Started {
        /// When.
        at: SystemTime,
    },
    /// The database stopped; every buffered item was persisted first.
    Stopped {
        /// When.
        at: SystemTime,
    },
    /// A write or sync failed; the handle refuses writes until reopened.
    Failed {
        /// When.
        at: SystemTime,
        /// What failed.
        error: Error,
    },
    /// A range became persisted (after its data and commit record were synced).
    Written {
        /// When.
        at: SystemTime,
        /// The range.
        event: WriteEvent,
    },
    /// A data file was deleted by `drop_index` or a trim that emptied it.
    IndexDropped {
        /// When.
        at: SystemTime,
        /// The dropped index.
        index: u32,
        /// How many item bytes the file held.
        size: u64,
    },
    /// A sealed data file was uploaded to object storage, verified, recorded as remote,
    /// and its local copy deleted (feature `tiering`). No seed hook gets it.
    Tiered {
        /// When.
        at: SystemTime,
        /// The file's index.
        index: u32,
        /// The object's size in bytes (the data file, header included).
        size: u64,
    },
}

type BoxFut = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
pub(crate) type Hook0 = Arc<dyn Fn(SystemTime) -> BoxFut + Send + Sync>;
pub(crate) type HookWrite = Arc<dyn Fn(SystemTime, WriteEvent) -> BoxFut + Send + Sync>;
pub(crate) type HookFail = Arc<dyn Fn(SystemTime, Error) -> BoxFut + Send + Sync>;
pub(crate) type HookDrop = Arc<dyn Fn(SystemTime, u32, u64) -> BoxFut + Send + Sync>;

/// The seed's callbacks, set on the builder.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) on_start: Option<Hook0>,
    pub(crate) on_stop: Option<Hook0>,
    pub(crate) on_failure: Option<HookFail>,
    pub(crate) on_write: Option<HookWrite>,
    pub(crate) on_index_drop: Option<HookDrop>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("on_start", &self.on_start.is_some())
            .field("on_stop", &self.on_stop.is_some())
            .field("on_failure", &self.on_failure.is_some())
            .field("on_write", &self.on_write.is_some())
            .field("on_index_drop", &self.on_index_drop.is_some())
            .finish()
    }
}

impl Hooks {
    pub(crate) fn is_empty(&self) -> bool {
        self.on_start.is_none()
            && self.on_stop.is_none()
            && self.on_failure.is_none()
            && self.on_write.is_none()
            && self.on_index_drop.is_none()
    }

    /// Calls the hooks for every event of `queue`, one at a time and in order, until
    /// `Stopped` was handled or the queue is closed and empty (every handle and the flusher
    /// are gone).
    pub(crate) async fn dispatch(self, queue: Arc<HookQueue>) {
        // However this task ends (done, a hook panicked, the runtime shut down), nothing
        // will read the queue again: stop holding events for it.
        let _closed = CloseOnDrop(Arc::clone(&queue));
        while let Some(event) = queue.next().await {
            let stopped = matches!(event, Event::Stopped { .. });
            self.call(event).await;
            if stopped {
                return;
            }
        }
    }

    async fn call(&self, event: Event) {
        match event {
            Event::Started { at } => {
                if let Some(h) = &self.on_start {
                    h(at).await;
                }
            }
            Event::Stopped { at } => {
                if let Some(h) = &self.on_stop {
                    h(at).await;
                }
            }
            Event::Failed { at, error } => {
                if let Some(h) = &self.on_failure {
                    h(at, error).await;
                }
            }
            Event::Written { at, event } => {
                if let Some(h) = &self.on_write {
                    h(at, event).await;
                }
            }
            Event::IndexDropped { at, index, size } => {
                if let Some(h) = &self.on_index_drop {
                    h(at, index, size).await;
                }
            }
            Event::Tiered { .. } => {}
        }
    }
}

/// The hooks' queue: unbounded in count of events, bounded in practice by merging.
///
/// Up to `merge_after` events are queued as they come. Past that, a `Written` event that
/// continues the last queued event, a `Written` range of the same index ending where it
/// starts, extends that range instead (the hook then gets one call for the combined range,
/// with the later time); any other event is queued. So while a hook is behind, the queue
/// grows past the threshold by one entry per data file started, per trim or drop and per
/// failure, not per flush. No event is ever dropped while the dispatcher runs. Once the
/// queue is empty again, its allocation shrinks back to 1,024 events.
#[derive(Debug)]
pub(crate) struct HookQueue {
    state: Mutex<QueueState>,
    /// Wakes the dispatcher (single consumer: `notify_one` keeps a permit for it).
    ready: Notify,
    merge_after: usize,
}

#[derive(Debug, Default)]
struct QueueState {
    events: VecDeque<Event>,
    /// No more events will be pushed (the sender is gone), or none will be read (the
    /// dispatcher is gone).
    closed: bool,
}

impl HookQueue {
    pub(crate) fn new(merge_after: usize) -> Self {
        HookQueue {
            state: Mutex::new(QueueState::default()),
            ready: Notify::new(),
            merge_after,
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Plain data: a panic elsewhere leaves it usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `event` for the hooks. Never waits beyond a short lock.
    pub(crate) fn push(&self, event: Event) {
        let mut q = self.lock();
        if q.closed {
            return;
        }
        if q.events.len() >= self.merge_after && merge(q.events.back_mut(), &event) {
            // The dispatcher was woken when the merged-into event was queued.
            return;
        }
        q.events.push_back(event);
        drop(q);
        self.ready.notify_one();
    }

    fn close(&self) {
        let mut q = self.lock();
        q.closed = true;
        drop(q);
        self.ready.notify_one();
    }

    /// The next event; `None` once the queue is closed and empty.
    async fn next(&self) -> Option<Event> {
        loop {
            {
                let mut q = self.lock();
                if let Some(e) = q.events.pop_front() {
                    if q.events.is_empty() && q.events.capacity() > SHRINK_ABOVE {
                        // The hook caught up: give back what a backlog made the queue grow to.
                        q.events.shrink_to(SHRINK_ABOVE);
                    }
                    return Some(e);
                }
                if q.closed {
                    return None;
                }
            }
            self.ready.notified().await;
        }
    }

    #[cfg(test)]
    fn queued(&self) -> Vec<Event> {
        self.lock().events.iter().cloned().collect()
    }
}

/// Extends `last` with `next` if both are `Written` and `next` continues `last`'s range.
fn merge(last: Option<&mut Event>, next: &Event) -> bool {
    let (
        Some(Event::Written {
            at: last_at,
            event: last,
        }),
        Event::Written { at, event },
    ) = (last, next)
    else {
        return false;
    };
    if last.index != event.index || last.position.checked_add(last.size) != Some(event.position) {
        return false;
    }
    // The combined range lies in one file, so it fits a u32; refuse rather than wrap.
    let Some(size) = last.size.checked_add(event.size) else {
        return false;
    };
    last.size = size;
    *last_at = *at;
    true
}

/// The emitting side of a [`HookQueue`], held by the database: dropping it (the last handle
/// and the flusher are gone) lets the dispatcher finish the queue and end.
#[derive(Debug)]
pub(crate) struct HookSender(pub(crate) Arc<HookQueue>);

impl Drop for HookSender {
    fn drop(&mut self) {
        self.0.close();
    }
}

struct CloseOnDrop(Arc<HookQueue>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let mut q = self.0.lock();
        q.closed = true;
        q.events.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use tokio::sync::Semaphore;

    use super::*;

    fn written(index: u32, position: u32, size: u32, at: u64) -> Event {
        Event::Written {
            at: UNIX_EPOCH + Duration::from_secs(at),
            event: WriteEvent {
                index,
                position,
                size,
            },
        }
    }

    fn dropped(index: u32) -> Event {
        Event::IndexDropped {
            at: UNIX_EPOCH,
            index,
            size: 1,
        }
    }

    fn describe(e: &Event) -> String {
        match e {
            Event::Written { at, event: w } => format!(
                "written {}:{}:{} at {}",
                w.index,
                w.position,
                w.size,
                at.duration_since(UNIX_EPOCH).unwrap().as_secs()
            ),
            Event::IndexDropped { index, .. } => format!("dropped {index}"),
            Event::Stopped { .. } => "stopped".into(),
            other => format!("{other:?}"),
        }
    }

    fn describe_all(q: &HookQueue) -> Vec<String> {
        q.queued().iter().map(describe).collect()
    }

    #[test]
    fn events_are_as_small_as_the_docs_say() {
        // The hooks' memory figures (builder docs, README, docs/design.md) use this size.
        assert!(std::mem::size_of::<Event>() <= 80);
    }

    #[test]
    fn the_hook_queue_merges_only_past_its_threshold() {
        let q = HookQueue::new(HOOK_MERGE_AFTER);
        let n = u32::try_from(HOOK_MERGE_AFTER).unwrap();
        // Up to the threshold, contiguous ranges are queued one by one.
        for i in 0..n {
            q.push(written(0, i, 1, u64::from(i)));
        }
        let queued = describe_all(&q);
        assert_eq!(queued.len(), HOOK_MERGE_AFTER);
        assert_eq!(queued[0], "written 0:0:1 at 0");
        assert_eq!(
            queued[HOOK_MERGE_AFTER - 2],
            format!("written 0:{}:1 at {}", n - 2, n - 2)
        );
        // Past it, a range continuing the last queued one extends it, with its time.
        q.push(written(0, n, 5, 100_000));
        q.push(written(0, n + 5, 2, 100_001));
        let queued = describe_all(&q);
        assert_eq!(queued.len(), HOOK_MERGE_AFTER);
        assert_eq!(
            queued[HOOK_MERGE_AFTER - 1],
            format!("written 0:{}:8 at 100001", n - 1)
        );
        // Everything else is queued: a gap, another index, other events, and a range that
        // continues an earlier one but not the last queued event.
        q.push(written(0, n + 10, 1, 100_002));
        q.push(written(1, 0, 3, 100_003));
        q.push(dropped(0));
        q.push(written(1, 3, 1, 100_004));
        q.push(Event::Stopped { at: UNIX_EPOCH });
        let queued = describe_all(&q);
        assert_eq!(
            queued[HOOK_MERGE_AFTER..],
            [
                format!("written 0:{}:1 at 100002", n + 10),
                "written 1:0:3 at 100003".into(),
                "dropped 0".into(),
                "written 1:3:1 at 100004".into(),
                "stopped".into(),
            ]
        );
    }

    /// Hooks that log their calls; `on_write` first waits for `gate` (closed: no wait).
    fn logging_hooks(
        log: &Arc<Mutex<Vec<String>>>,
        gate: &Arc<Semaphore>,
        entered: &Arc<Notify>,
    ) -> Hooks {
        let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
        let (gate, entered) = (gate.clone(), entered.clone());
        Hooks {
            on_write: Some(Arc::new(move |at, w| {
                let (log, gate, entered) = (l1.clone(), gate.clone(), entered.clone());
                Box::pin(async move {
                    entered.notify_one();
                    let _ = gate.acquire().await;
                    let e = Event::Written { at, event: w };
                    log.lock().unwrap().push(describe(&e));
                })
            })),
            on_index_drop: Some(Arc::new(move |_, index, _| {
                l2.lock().unwrap().push(format!("dropped {index}"));
                Box::pin(async {})
            })),
            on_stop: Some(Arc::new(move |_| {
                l3.lock().unwrap().push("stopped".into());
                Box::pin(async {})
            })),
            ..Hooks::default()
        }
    }

    #[tokio::test]
    async fn a_held_hook_gets_every_event_in_order_then_the_dispatcher_ends() {
        let queue = Arc::new(HookQueue::new(3));
        let sender = HookSender(Arc::clone(&queue));
        let (log, gate, entered) = (Arc::default(), Arc::new(Semaphore::new(0)), Arc::default());
        let task = tokio::spawn(logging_hooks(&log, &gate, &entered).dispatch(Arc::clone(&queue)));
        sender.0.push(written(0, 0, 1, 0));
        // The dispatcher took the first event and is held in its hook.
        entered.notified().await;
        for i in 1..7 {
            sender.0.push(written(0, i, 1, u64::from(i)));
        }
        sender.0.push(written(1, 0, 2, 7));
        sender.0.push(dropped(0));
        sender.0.push(written(1, 2, 2, 8));
        sender.0.push(Event::Stopped { at: UNIX_EPOCH });
        assert_eq!(
            queue.queued().len(),
            7,
            "three queued, three merged, four queued"
        );
        gate.close();
        task.await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            [
                "written 0:0:1 at 0",
                "written 0:1:1 at 1",
                "written 0:2:1 at 2",
                "written 0:3:4 at 6",
                "written 1:0:2 at 7",
                "dropped 0",
                "written 1:2:2 at 8",
                "stopped",
            ]
        );
        // Nothing is held for a dispatcher that is gone.
        sender.0.push(written(1, 4, 1, 9));
        assert!(queue.queued().is_empty());
    }

    #[tokio::test]
    async fn the_dispatcher_delivers_the_rest_and_ends_when_the_sender_is_dropped() {
        let queue = Arc::new(HookQueue::new(HOOK_MERGE_AFTER));
        let sender = HookSender(Arc::clone(&queue));
        let (log, gate, entered) = (Arc::default(), Arc::new(Semaphore::new(0)), Arc::default());
        gate.close();
        let task = tokio::spawn(logging_hooks(&log, &gate, &entered).dispatch(queue));
        sender.0.push(written(0, 0, 1, 0));
        sender.0.push(written(0, 1, 1, 1));
        drop(sender);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the dispatcher ends")
            .unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            ["written 0:0:1 at 0", "written 0:1:1 at 1"]
        );
    }
}
