//! The one interface the workloads drive: aiodiskdb implements it (`ours.rs`), and so does
//! each peer (the `aiodiskdb-peers` crate). It is shaped after what the workloads need: a
//! single writer adding a stream of items, random reads from any worker, and many workers
//! each appending one item and waiting for it to be durable.
//!
//! Durability is the contract of our library (`Durability::Sync`: data acknowledged only
//! after `fdatasync`): what [`Engine::bulk`] added is durable once [`Engine::close`]
//! returns (or `bulk` itself, for [`Visibility::Immediate`]), and [`Engine::add_durable`]
//! returns only once its item is. Each engine says how it gets there with its own API.
//!
//! The methods return futures so that aiodiskdb is driven exactly as its users drive it
//! (tokio tasks); an engine with a blocking API does its work inside the future, which is
//! ready at its first poll, and runs its workers on threads ([`Exec::Threads`]).

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::path::Path;

use bytes::Bytes;

use crate::exec::Exec;
use crate::raw::Target;

/// When the items of a bulk session must be readable by other workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// As soon as they are added: a concurrent reader picks among the items added so far
    /// (the seed workloads); everything added is durable when `bulk` returns.
    Immediate,
    /// Only after the session: nobody reads before it ends (append, and the data written
    /// for the read and open workloads); everything added is durable once `close`
    /// returns.
    AtEnd,
}

/// The items of a bulk session, which the engine takes one at a time.
pub trait Source<L> {
    /// The next item to add; `None` ends the session.
    fn next_item(&mut self) -> Option<Bytes>;

    /// Where the item that `next_item` returned last went.
    fn added(&mut self, loc: L);
}

/// Where the items of a store lie in its files, for the read limit: the files, opened for
/// plain reads, and one target per item.
#[derive(Debug)]
pub struct Layout {
    /// The store's data files.
    pub files: Vec<File>,
    /// One target per item, in the order of the locations asked about.
    pub targets: Vec<Target>,
}

/// A storage engine used as an append-only blob store.
///
/// A clone is a handle for another worker, to the same store (aiodiskdb's handle is a
/// clone; marble wants a clone of its heap per thread).
pub trait Engine: Clone + Send + Sync + 'static {
    /// What the caller keeps to read an item back: a key for the key-value stores, the
    /// position the engine returned for the logs.
    type Loc: Copy + fmt::Display + Send + Sync + 'static;

    /// The options a workload may open the store with; `Default` is the engine's default
    /// configuration.
    type Config: Default + Send + Sync;

    /// How the workers of a workload run.
    const EXEC: Exec = Exec::Threads;

    /// What the progress lines and the text results call [`Engine::close`].
    const CLOSE: &'static str = "close";

    /// What the progress lines call [`Engine::add_durable`]: after "doing", and after a
    /// count.
    const DURABLE_ADD: [&'static str; 2] = ["durable adds", "durable adds"];

    /// Opens (creating if needed) the store in `dir`, which may not exist yet.
    fn open(dir: &Path, config: &Self::Config)
        -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// A session of one writer: adds every item of `items`, telling it where each went,
    /// with the visibility asked for (and its durability, see [`Visibility`]). Other
    /// workers may read meanwhile.
    fn bulk<S: Source<Self::Loc>>(
        &self,
        visibility: Visibility,
        items: &mut S,
    ) -> impl Future<Output = anyhow::Result<()>>;

    /// Reads the item at `loc` and passes its bytes to `check`; `None` if it is not stored.
    fn read<R: Send>(
        &self,
        loc: Self::Loc,
        check: impl FnOnce(&[u8]) -> R + Send,
    ) -> impl Future<Output = anyhow::Result<Option<R>>> + Send;

    /// Appends one item and returns once it is durable. Called from many workers at once:
    /// an engine with group commit shares one sync among concurrent callers.
    fn add_durable(&self, data: Bytes) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// The configuration in which [`Engine::add_durable`] syncs nothing (`None`: the engine
    /// has none): `durable` runs it once more so, for the engine's own ceiling, everything
    /// but the syncs (its adds, its commits, its wake-ups).
    #[must_use]
    fn unsynced_config() -> Option<Self::Config> {
        None
    }

    /// Starts counting the commits (each one synced) that [`Engine::add_durable`] makes;
    /// the future, awaited after [`Engine::close`], gives how many were made. `None` when
    /// the engine does not tell (a group commit inside the engine is not counted).
    fn count_commits(&self) -> impl Future<Output = anyhow::Result<Option<u64>>> + Send + 'static {
        async { Ok(None) }
    }

    /// Releases the store (its lock, files and threads), after making durable what a
    /// [`Visibility::AtEnd`] session left.
    fn close(self) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Where the items at `locs` lie in the files of the (closed) store in `dir`, for the
    /// read limit; `None` when the engine does not tell.
    fn layout(
        dir: &Path,
        locs: &[Self::Loc],
    ) -> impl Future<Output = anyhow::Result<Option<Layout>>> + Send {
        let _ = (dir, locs);
        async { Ok(None) }
    }
}
