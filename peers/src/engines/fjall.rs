//! [fjall](https://docs.rs/fjall): an LSM-tree key-value store (journal, memtables,
//! sorted tables flushed and compacted by background threads).
//!
//! Items go in one keyspace, keyed by a sequence number in big-endian bytes (the README's
//! advice for integer keys). The keyspace uses key-value separation with its default
//! options (fjall's feature "for large blob use cases": values of 1 KiB or more go to blob
//! files, smaller ones stay inline); everything else is fjall's default configuration,
//! including its LZ4 compression.
//!
//! Durability: a write is in the journal (handed to the OS) when `insert` returns, and
//! becomes durable with `Database::persist`. We use [`PersistMode::SyncData`]
//! (`fdatasync` of the journal), the same sync our library acknowledges with; data flushed
//! out of the journal into tables is synced by fjall itself before the journal is dropped.
//!
//! - Bulk: inserts (readable at once, from the memtable), then one `persist`.
//! - `add_durable`: `insert` then `persist`. fjall has no group commit: `persist` syncs
//!   the journal under its writer lock, so concurrent callers sync one after the other
//!   (each sync covers every write made before it).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aiodiskdb_bench::{Bytes, Engine, Source, Visibility};
use anyhow::Context as _;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions, PersistMode};

/// A fjall database with one keyspace of items; clones share it.
#[derive(Clone)]
pub(crate) struct Fjall(Arc<Inner>);

struct Inner {
    items: Keyspace,
    db: Database,
    /// The next key.
    next: AtomicU64,
}

/// The key of item number `n`.
fn key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

impl Fjall {
    /// Inserts one item (readable at once): its number.
    fn insert(&self, data: &[u8]) -> anyhow::Result<u64> {
        let n = self.0.next.fetch_add(1, Ordering::Relaxed);
        self.0.items.insert(key(n), data)?;
        Ok(n)
    }

    /// Makes every write so far durable.
    fn persist(&self) -> anyhow::Result<()> {
        self.0.db.persist(PersistMode::SyncData)?;
        Ok(())
    }
}

impl Engine for Fjall {
    type Loc = u64;
    type Config = ();

    async fn open(dir: &Path, (): &()) -> anyhow::Result<Self> {
        let db = Database::builder(dir).open()?;
        let items = db.keyspace("items", || {
            KeyspaceCreateOptions::default()
                .with_kv_separation(Some(KvSeparationOptions::default()))
        })?;
        let next = match items.last_key_value() {
            Some(last) => {
                let k = last.key()?;
                u64::from_be_bytes(k[..].try_into().context("a key is not 8 bytes")?) + 1
            }
            None => 0,
        };
        Ok(Fjall(Arc::new(Inner {
            items,
            db,
            next: AtomicU64::new(next),
        })))
    }

    async fn bulk<S: Source<u64>>(&self, _: Visibility, items: &mut S) -> anyhow::Result<()> {
        // An insert is readable as soon as it returns: both visibilities are the same.
        while let Some(data) = items.next_item() {
            items.added(self.insert(&data)?);
        }
        self.persist()
    }

    async fn read<R: Send>(
        &self,
        loc: u64,
        check: impl FnOnce(&[u8]) -> R + Send,
    ) -> anyhow::Result<Option<R>> {
        Ok(self.0.items.get(key(loc))?.map(|v| check(&v)))
    }

    async fn add_durable(&self, data: Bytes) -> anyhow::Result<()> {
        self.insert(&data)?;
        self.persist()
    }

    async fn close(self) -> anyhow::Result<()> {
        self.persist()?;
        // Dropping the last handle stops fjall's background threads and unlocks the
        // directory.
        drop(self);
        Ok(())
    }
}
