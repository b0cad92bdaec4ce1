//! [marble](https://docs.rs/marble): a garbage-collecting object store (sled's future
//! storage engine). Objects are keyed by a `u64` id; `write_batch` writes a batch of
//! objects to a new file (crash-atomic), `read` reads one object straight from disk with
//! its CRC checked.
//!
//! Object ids are sequence numbers from 1 (the README describes the ids as "non-zero
//! u64's"). The configuration is marble's default, where `fsync_each_batch` is off: data
//! is made durable by `Marble::sync_all`, which the docs offer for exactly that (it
//! fsyncs every file written since the last call, then the directory).
//!
//! The README asks its users to batch writes ("each call to `write_batch` creates at least
//! one new file and fsyncs multiple times, so you should batch calls appropriately") and
//! to serve a batch's objects from a cache of their own until `write_batch` returns. So a
//! bulk session keeps items in a write cache of ours and hands them to `write_batch` by
//! batches of marble's `target_file_size` (256 MiB, the size its GC keeps files to), then
//! at the end of the session, followed by one `sync_all`. When items must be readable at
//! once (seed), reads look in that cache first.
//!
//! - `add_durable`: `write_batch` of one object, then `sync_all`. marble has no group
//!   commit; concurrent `sync_all`s each fsync the files not yet synced.
//! - marble never runs its GC by itself (`maintenance`); nothing here overwrites or
//!   deletes, so none is needed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use aiodiskdb_bench::{Bytes, Engine, Source, Visibility};

/// A marble heap used as a blob store. A clone is another thread's handle: a clone of the
/// heap (marble wants one per thread).
pub(crate) struct Marble {
    /// This handle's clone of the heap. `marble::Marble` is not `Sync` (its epoch-based
    /// reclamation keeps per-handle state in a `RefCell`), and an [`Engine`] is shared by
    /// reference with its futures: the lock is never contended, as each worker has a
    /// clone of its own.
    heap: Mutex<marble::Marble>,
    /// Bytes of objects per `write_batch` in a bulk session.
    batch_bytes: usize,
    shared: Arc<Shared>,
}

/// What the threads share besides the heap.
struct Shared {
    /// The next object id.
    next: AtomicU64,
    /// Objects of the bulk session that are not yet in the heap, when they must be
    /// readable at once.
    cache: RwLock<HashMap<u64, Arc<[u8]>>>,
}

impl Clone for Marble {
    fn clone(&self) -> Self {
        Marble {
            heap: Mutex::new(self.heap().clone()),
            batch_bytes: self.batch_bytes,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Marble {
    /// This handle's heap.
    fn heap(&self) -> MutexGuard<'_, marble::Marble> {
        self.heap.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `batch` to the heap (not synced) and empties it.
    fn write_batch(&self, batch: &mut Vec<(u64, Arc<[u8]>)>, cached: bool) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.heap()
            .write_batch(batch.iter().map(|(id, data)| (*id, Some(&data[..]))))?;
        if cached {
            // `read` finds them in the heap from now on.
            let mut cache = self
                .shared
                .cache
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for (id, _) in batch.iter() {
                cache.remove(id);
            }
        }
        batch.clear();
        Ok(())
    }
}

impl Engine for Marble {
    type Loc = u64;
    type Config = ();

    async fn open(dir: &Path, (): &()) -> anyhow::Result<Self> {
        let config = marble::Config {
            path: dir.to_path_buf(),
            ..marble::Config::default()
        };
        let heap = config.open()?;
        // One more than the largest id stored (1 when empty).
        let (next, _) = heap.free_object_ids();
        Ok(Marble {
            heap: Mutex::new(heap),
            batch_bytes: config.target_file_size,
            shared: Arc::new(Shared {
                next: AtomicU64::new(next.max(1)),
                cache: RwLock::new(HashMap::new()),
            }),
        })
    }

    async fn bulk<S: Source<u64>>(
        &self,
        visibility: Visibility,
        items: &mut S,
    ) -> anyhow::Result<()> {
        let cached = visibility == Visibility::Immediate;
        let mut batch: Vec<(u64, Arc<[u8]>)> = Vec::new();
        let mut bytes = 0;
        while let Some(data) = items.next_item() {
            let id = self.shared.next.fetch_add(1, Ordering::Relaxed);
            let data: Arc<[u8]> = data[..].into();
            bytes += data.len();
            if cached {
                self.shared
                    .cache
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id, Arc::clone(&data));
            }
            batch.push((id, data));
            if bytes >= self.batch_bytes {
                self.write_batch(&mut batch, cached)?;
                bytes = 0;
            }
            items.added(id);
        }
        self.write_batch(&mut batch, cached)?;
        // Fsyncs every file written since the last call, then the directory.
        self.heap().sync_all()?;
        Ok(())
    }

    async fn read<R: Send>(
        &self,
        loc: u64,
        check: impl FnOnce(&[u8]) -> R + Send,
    ) -> anyhow::Result<Option<R>> {
        let cached = self
            .shared
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&loc)
            .cloned();
        if let Some(data) = cached {
            return Ok(Some(check(&data)));
        }
        let data = self.heap().read(loc)?;
        Ok(data.map(|data| check(&data)))
    }

    async fn add_durable(&self, data: Bytes) -> anyhow::Result<()> {
        let id = self.shared.next.fetch_add(1, Ordering::Relaxed);
        let heap = self.heap();
        heap.write_batch([(id, Some(&data[..]))])?;
        heap.sync_all()?;
        Ok(())
    }

    async fn close(self) -> anyhow::Result<()> {
        // Everything was synced by `bulk` and `add_durable`; dropping the last clone
        // unlocks the directory.
        drop(self);
        Ok(())
    }
}
