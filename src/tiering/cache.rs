//! The cache of remote items: their bytes in RAM, bounded in bytes, least recently used
//! out first. Keyed by index, catalog generation, position and size, so that a file
//! replaced or recorded anew is never served from an older version.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bytes::Bytes;

/// `(index, generation, position, size)`.
pub(crate) type Key = (u32, u64, u32, u32);

#[derive(Debug, Default)]
struct Entries {
    /// Each item's bytes and when it was last used.
    items: HashMap<Key, (Bytes, u64)>,
    /// The items by last use, oldest first.
    order: BTreeMap<u64, Key>,
    clock: u64,
    bytes: u64,
}

/// A least-recently-used cache of at most `capacity` bytes. Its mutex is taken alone, for
/// a map operation or two.
#[derive(Debug)]
pub(crate) struct Lru {
    capacity: u64,
    entries: Mutex<Entries>,
}

impl Lru {
    pub(crate) fn new(capacity: u64) -> Lru {
        Lru {
            capacity,
            entries: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // Plain data behind it: a panic elsewhere leaves it usable.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn get(&self, key: &Key) -> Option<Bytes> {
        let mut e = self.lock();
        e.clock += 1;
        let now = e.clock;
        let (bytes, used) = e.items.get_mut(key)?;
        let (bytes, before) = (bytes.clone(), std::mem::replace(used, now));
        e.order.remove(&before);
        e.order.insert(now, *key);
        Some(bytes)
    }

    /// Caches `bytes` (nothing when larger than the whole cache), evicting the least
    /// recently used items past the capacity.
    pub(crate) fn insert(&self, key: Key, bytes: Bytes) {
        let len = bytes.len() as u64;
        if len > self.capacity {
            return;
        }
        let mut e = self.lock();
        e.clock += 1;
        let now = e.clock;
        if let Some((old, used)) = e.items.insert(key, (bytes, now)) {
            e.order.remove(&used);
            e.bytes -= old.len() as u64;
        }
        e.order.insert(now, key);
        e.bytes += len;
        while e.bytes > self.capacity {
            let Some((_, victim)) = e.order.pop_first() else {
                break;
            };
            if let Some((b, _)) = e.items.remove(&victim) {
                e.bytes -= b.len() as u64;
            }
        }
    }

    /// Bytes cached now.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_goes_first_and_the_bound_holds() {
        let c = Lru::new(10);
        let item = |n: usize| Bytes::from(vec![7u8; n]);
        c.insert((0, 1, 0, 4), item(4));
        c.insert((0, 1, 4, 4), item(4));
        assert!(c.get(&(0, 1, 0, 4)).is_some(), "touch the first");
        c.insert((0, 1, 8, 4), item(4));
        assert_eq!(c.bytes(), 8);
        assert!(
            c.get(&(0, 1, 4, 4)).is_none(),
            "the least recently used went"
        );
        assert!(c.get(&(0, 1, 0, 4)).is_some());
        assert!(c.get(&(0, 1, 8, 4)).is_some());
        c.insert((1, 1, 0, 11), item(11));
        assert!(c.get(&(1, 1, 0, 11)).is_none(), "larger than the cache");
        c.insert((0, 1, 0, 4), item(4));
        assert_eq!(c.bytes(), 8, "a re-insert replaces");
        assert!(c.get(&(0, 2, 0, 4)).is_none(), "another generation");
        let none = Lru::new(0);
        none.insert((0, 1, 0, 1), item(1));
        assert!(none.get(&(0, 1, 0, 1)).is_none());
    }
}
