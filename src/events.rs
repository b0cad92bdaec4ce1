//! Events: what the database reports after the fact, on a broadcast channel, and the
//! seed's five async hooks that a dispatcher task runs for them.
//!
//! User code never runs inside the flusher: the flusher only sends [`Event`]s; hooks are
//! called by a separate task that subscribes like any other receiver.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::broadcast;

use crate::error::Error;

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

    /// Runs the hooks for every event until the channel closes or `Stopped` was handled.
    /// Hooks run one after another, in event order; a lagging dispatcher skips events.
    pub(crate) async fn dispatch(self, mut rx: broadcast::Receiver<Event>) {
        loop {
            let event = match rx.recv().await {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "event hooks lagged behind");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let stopped = matches!(event, Event::Stopped { .. });
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
            }
            if stopped {
                return;
            }
        }
    }
}
