//! # aiodiskdb
//!
//! An embeddable, append-only, asynchronous (tokio) on-disk database, for services that
//! store large amounts of immutable blobs and keep the returned locations in their own
//! index: raw blocks of a blockchain indexer, an event archive, a content store. It is
//! the Rust implementation of the Python library `aiodiskdb` 0.2.x and reads and writes its
//! file format.
//!
//! - [`AioDiskDb`]: the handle. [`add`](AioDiskDb::add) buffers an item in RAM and returns
//!   its [`ItemLocation`] at once; [`read`](AioDiskDb::read) serves it from RAM or disk;
//!   a background flusher persists the buffer by size, item count or interval;
//!   [`flush`](AioDiskDb::flush) and [`wait_persisted`](AioDiskDb::wait_persisted) wait for
//!   durability.
//! - [`Transaction`]: all-or-nothing batches, durable when `commit` returns.
//! - [`rtrim`](AioDiskDb::rtrim), [`ltrim`](AioDiskDb::ltrim),
//!   [`drop_index`](AioDiskDb::drop_index): pruning, behind
//!   [`enable_overwrite`](AioDiskDb::enable_overwrite).
//! - [`Event`]s on a broadcast channel ([`subscribe`](AioDiskDb::subscribe)) and the seed's
//!   async hooks on the [`Builder`].
//! - [`Durability::Sync`] (default): persisted means fsynced and survives power loss;
//!   [`Durability::Os`]: the Python library's page-cache semantics.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> aiodiskdb::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! use aiodiskdb::AioDiskDb;
//!
//! let db = AioDiskDb::builder(dir.path()).max_file_size(16 << 20).open().await?;
//! let loc = db.add(&b"block"[..]).await?;
//! assert_eq!(db.read(loc).await?.as_deref(), Some(&b"block"[..]));
//! db.flush().await?; // durable from here on
//! db.stop().await?;
//! # Ok(()) }
//! ```
//!
//! What it is not: a key-value store (there are no keys, only locations), a database that
//! deletes single items, or a replicated log. One process writes a directory at a time;
//! any number of processes read it beside the writer with
//! [`open_read_only`](AioDiskDb::open_read_only).
//!
//! ## Adding it
//!
//! ```toml
//! [dependencies]
//! aiodiskdb = "0.1"
//! tokio = { version = "1", features = ["rt-multi-thread", "macros"] }
//! ```
//!
//! ## Runtime
//!
//! Every `async` method needs a tokio runtime, of either flavor: `open` spawns the
//! flusher task and runs disk I/O on tokio's blocking threads (`spawn_blocking`). Called
//! outside a runtime they panic, as tokio's `spawn` and `spawn_blocking` do ("must be
//! called from the context of a Tokio 1.x runtime"). A handle belongs to the runtime that opened it: once that runtime shuts
//! down, its flusher persists the buffer synchronously and the handle fails every call
//! with [`Error::NotRunning`].
//!
//! ## Platforms
//!
//! Unix only (the files are read and written with positioned I/O and locked with
//! `flock`); tested on Linux, where page-cache reads skip the thread hop
//! (`preadv2(RWF_NOWAIT)`). Windows is not supported.

mod buffer;
mod catalog;
mod config;
mod crc;
mod datafile;
mod db;
mod error;
mod events;
mod flusher;
mod format;
mod fs;
mod index;
mod inspect;
mod location;
mod reader;
mod readonly;
mod recovery;
mod registry;
mod shared;
mod store;
#[cfg(feature = "tiering")]
pub mod tiering;
mod transaction;
mod verify;

pub use config::{Builder, Durability};
pub use db::AioDiskDb;
pub use error::{Error, Result};
pub use events::{Event, WriteEvent};
pub use inspect::{CommitState, DataFileInfo, Inspection, Problem, RemoteFileInfo, RemoteStore};
pub use location::ItemLocation;
pub use transaction::Transaction;
pub use verify::{Damage, DamageKind, Verification};
#[cfg(test)]
mod testing;
