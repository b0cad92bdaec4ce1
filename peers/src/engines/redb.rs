//! [redb](https://docs.rs/redb): copy-on-write B+trees in one file, with ACID write
//! transactions (one writer at a time) and MVCC readers.
//!
//! Items go in one table, `u64 -> &[u8]`, keyed by a sequence number. redb's `u64` key
//! type compares numerically, so the keys are ordered exactly as big-endian bytes would be
//! and every insert goes to the right edge of the tree.
//!
//! Durability: a write transaction committed with [`Durability::Immediate`] (redb's
//! default) is fsynced before `commit` returns (redb's default 1-phase commit: data pages
//! and a checksummed commit slot, then one `fsync`). A commit with [`Durability::None`] is
//! visible to readers at once but becomes durable only with the next `Immediate` commit,
//! which persists all earlier ones (redb's documented use of the two levels).
//!
//! - Bulk, items read only afterwards: one write transaction for the whole session,
//!   committed `Immediate` at its end (redb's recommended batching).
//! - Bulk, items read while written (seed): a reader sees only committed data, so each
//!   add is its own transaction committed with `Durability::None`, and the session ends
//!   with an empty `Immediate` commit that makes them all durable.
//! - `add_durable`: one transaction per item committed `Immediate`. redb has no group
//!   commit: write transactions are serialized, each with its own fsync.
//! - Reads: one read transaction per read, as a service answering independent requests
//!   would do.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aiodiskdb_bench::{Bytes, Engine, Source, Visibility};
use anyhow::Context as _;
use redb::{
    Database, Durability, ReadableDatabase as _, ReadableTable as _, TableDefinition, TableError,
};

/// The table of items.
const ITEMS: TableDefinition<u64, &[u8]> = TableDefinition::new("items");

/// A redb database file used as a blob store; clones share it.
#[derive(Clone)]
pub(crate) struct Redb(Arc<Inner>);

struct Inner {
    db: Database,
    /// The next key.
    next: AtomicU64,
    /// `Immediate` commits made by `add_durable`.
    commits: Arc<AtomicU64>,
}

impl Engine for Redb {
    type Loc = u64;
    type Config = ();

    async fn open(dir: &Path, (): &()) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let db = Database::create(dir.join("items.redb"))?;
        let next = {
            let txn = db.begin_read()?;
            match txn.open_table(ITEMS) {
                Ok(table) => table.last()?.map_or(0, |(k, _)| k.value() + 1),
                Err(TableError::TableDoesNotExist(_)) => 0,
                Err(e) => return Err(e.into()),
            }
        };
        Ok(Redb(Arc::new(Inner {
            db,
            next: AtomicU64::new(next),
            commits: Arc::default(),
        })))
    }

    async fn bulk<S: Source<u64>>(
        &self,
        visibility: Visibility,
        items: &mut S,
    ) -> anyhow::Result<()> {
        let Inner { db, next, .. } = &*self.0;
        match visibility {
            Visibility::AtEnd => {
                let txn = db.begin_write()?;
                {
                    let mut table = txn.open_table(ITEMS)?;
                    while let Some(data) = items.next_item() {
                        let key = next.fetch_add(1, Ordering::Relaxed);
                        table.insert(key, &*data)?;
                        items.added(key);
                    }
                }
                // Durability::Immediate (the default): fsynced on return.
                txn.commit()?;
            }
            Visibility::Immediate => {
                while let Some(data) = items.next_item() {
                    let mut txn = db.begin_write()?;
                    txn.set_durability(Durability::None)?;
                    let key = next.fetch_add(1, Ordering::Relaxed);
                    txn.open_table(ITEMS)?.insert(key, &*data)?;
                    txn.commit()?;
                    items.added(key);
                }
                // An Immediate commit persists every earlier non-durable one.
                db.begin_write()?.commit()?;
            }
        }
        Ok(())
    }

    async fn read<R: Send>(
        &self,
        loc: u64,
        check: impl FnOnce(&[u8]) -> R + Send,
    ) -> anyhow::Result<Option<R>> {
        let txn = self.0.db.begin_read()?;
        let table = txn.open_table(ITEMS)?;
        let value = table.get(loc)?;
        Ok(value.map(|v| check(v.value())))
    }

    async fn add_durable(&self, data: Bytes) -> anyhow::Result<()> {
        let txn = self.0.db.begin_write()?;
        let key = self.0.next.fetch_add(1, Ordering::Relaxed);
        txn.open_table(ITEMS)?.insert(key, &*data)?;
        // Durability::Immediate: fsynced on return.
        txn.commit()?;
        self.0.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn count_commits(
        &self,
    ) -> impl std::future::Future<Output = anyhow::Result<Option<u64>>> + Send + 'static {
        let commits = Arc::clone(&self.0.commits);
        async move { Ok(Some(commits.load(Ordering::Relaxed))) }
    }

    async fn close(self) -> anyhow::Result<()> {
        // Every commit above ended Immediate, so nothing is left to persist.
        drop(self);
        Ok(())
    }
}
