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
use std::sync::{Arc, PoisonError, RwLock};

use crate::engine::{Add, Engine, Handle, Visibility};

/// A marble heap used as a blob store.
pub(crate) struct Marble {
    /// This thread's handle (marble wants one clone per thread).
    heap: marble::Marble,
    /// Bytes of objects per `write_batch` in a bulk session.
    batch_bytes: usize,
    shared: Shared,
}

/// What the threads share besides the heap.
struct Shared {
    /// The next object id.
    next: AtomicU64,
    /// Objects of the bulk session that are not yet in the heap, when they must be
    /// readable at once.
    cache: RwLock<HashMap<u64, Arc<[u8]>>>,
}

/// Another thread's handle: a clone of the heap.
pub(crate) struct MarbleHandle<'a> {
    heap: marble::Marble,
    shared: &'a Shared,
}

impl Marble {
    /// Writes `batch` to the heap (not synced) and empties it.
    fn write_batch(&self, batch: &mut Vec<(u64, Arc<[u8]>)>, cached: bool) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.heap
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
    type Handle<'a> = MarbleHandle<'a>;

    fn open(dir: &Path) -> anyhow::Result<Self> {
        let config = marble::Config {
            path: dir.to_path_buf(),
            ..marble::Config::default()
        };
        let heap = config.open()?;
        // One more than the largest id stored (1 when empty).
        let (next, _) = heap.free_object_ids();
        Ok(Marble {
            heap,
            batch_bytes: config.target_file_size,
            shared: Shared {
                next: AtomicU64::new(next.max(1)),
                cache: RwLock::new(HashMap::new()),
            },
        })
    }

    fn handle(&self) -> MarbleHandle<'_> {
        MarbleHandle {
            heap: self.heap.clone(),
            shared: &self.shared,
        }
    }

    fn bulk<R>(
        &self,
        visibility: Visibility,
        body: impl FnOnce(&mut Add<'_, u64>) -> anyhow::Result<R>,
    ) -> anyhow::Result<R> {
        let cached = visibility == Visibility::Immediate;
        let mut batch: Vec<(u64, Arc<[u8]>)> = Vec::new();
        let mut bytes = 0;
        let result = body(&mut |data| {
            let id = self.shared.next.fetch_add(1, Ordering::Relaxed);
            let data: Arc<[u8]> = data.into();
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
            Ok(id)
        })?;
        self.write_batch(&mut batch, cached)?;
        // Fsyncs every file written since the last call, then the directory.
        self.heap.sync_all()?;
        Ok(result)
    }

    fn close(self) -> anyhow::Result<()> {
        // Everything was synced by `bulk` and `add_durable`; dropping the last clone
        // unlocks the directory.
        drop(self.heap);
        Ok(())
    }
}

impl Handle for MarbleHandle<'_> {
    type Loc = u64;

    fn read<R>(&self, loc: u64, check: impl FnOnce(&[u8]) -> R) -> anyhow::Result<Option<R>> {
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
        Ok(self.heap.read(loc)?.map(|data| check(&data)))
    }

    fn add_durable(&self, data: &[u8]) -> anyhow::Result<()> {
        let id = self.shared.next.fetch_add(1, Ordering::Relaxed);
        self.heap.write_batch([(id, Some(data))])?;
        self.heap.sync_all()?;
        Ok(())
    }
}
