//! The small interface every peer implements, shaped after what the workloads of
//! `aiodiskdb bench` need: a single bulk writer, random reads from any thread, and many
//! threads each appending one item and waiting for it to be durable.
//!
//! Durability is the contract of our library (`Durability::Sync`: data acknowledged only
//! after `fdatasync`): [`Engine::bulk`] returns only once everything it added is durable,
//! and [`Engine::add_durable`] only once its item is. Each engine module says how it gets
//! there with its own API.

use std::path::Path;

/// When the items of a bulk session must be readable by other threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visibility {
    /// As soon as `add` returns: a concurrent reader picks among the items added so far
    /// (the seed workloads). Our library serves such items from its RAM buffer.
    Immediate,
    /// Only after the session: nobody reads before it ends (append, and the data written
    /// for the read and open workloads).
    AtEnd,
}

/// The `add` function a bulk session hands to its body: appends one item and returns
/// where it went.
pub(crate) type Add<'a, L> = dyn FnMut(&[u8]) -> anyhow::Result<L> + 'a;

/// A storage engine used as an append-only blob store.
///
/// The store itself serves the single writer of [`Engine::bulk`]; other threads each get
/// a [`Handle`] (marble, for one, wants a clone of its handle per thread).
pub(crate) trait Engine: Sized + Send {
    /// What the caller keeps to read an item back: a key for the key-value stores, the
    /// position the engine returned for the logs.
    type Loc: Copy + Send + Sync;

    /// The handle a thread reads and appends through.
    type Handle<'a>: Handle<Loc = Self::Loc> + Send
    where
        Self: 'a;

    /// Opens (creating if needed) the store in `dir`, which may not exist yet.
    fn open(dir: &Path) -> anyhow::Result<Self>;

    /// A handle for one thread.
    fn handle(&self) -> Self::Handle<'_>;

    /// A session of one writer: `body` adds items with the function it is given, with the
    /// visibility asked for; when `bulk` returns, everything added is durable. Handles
    /// may read meanwhile.
    fn bulk<R>(
        &self,
        visibility: Visibility,
        body: impl FnOnce(&mut Add<'_, Self::Loc>) -> anyhow::Result<R>,
    ) -> anyhow::Result<R>;

    /// Commits (each one synced) made by [`Handle::add_durable`] so far, when the engine
    /// tells; `None` when it does not (a group commit inside the engine is not counted).
    fn commits(&self) -> Option<u64> {
        None
    }

    /// Releases the store (its lock, files and threads). Everything was already made
    /// durable by `bulk` and `add_durable`.
    fn close(self) -> anyhow::Result<()>;
}

/// What a thread does with a store.
pub(crate) trait Handle {
    /// As [`Engine::Loc`].
    type Loc;

    /// Reads the item at `loc` and passes its bytes to `check`; `None` if it is not stored.
    fn read<R>(&self, loc: Self::Loc, check: impl FnOnce(&[u8]) -> R) -> anyhow::Result<Option<R>>;

    /// Appends one item and returns once it is durable. Called from many threads at once:
    /// an engine with group commit shares one sync among concurrent callers.
    fn add_durable(&self, data: &[u8]) -> anyhow::Result<()>;
}
