//! [`Transaction`]: items staged in RAM, committed all or nothing.

use bytes::Bytes;

use crate::db::AioDiskDb;
use crate::error::{Error, Result};
use crate::flusher::Command;
use crate::location::ItemLocation;

/// A batch of items written contiguously and atomically on [`Transaction::commit`].
///
/// Staged items are invisible to reads until the commit. Dropping the transaction
/// discards them. Only `max_file_size` limits an item (not the buffer size); the commit
/// rolls over to new files as needed.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> aiodiskdb::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let db = aiodiskdb::AioDiskDb::open(dir.path()).await?;
/// let mut tx = db.transaction();
/// tx.add(&b"cafe"[..])?;
/// tx.add(&b"babe"[..])?;
/// let locations = tx.commit().await?; // durable on return
/// assert_eq!(db.read(locations[1]).await?.as_deref(), Some(&b"babe"[..]));
/// # db.stop().await }
/// ```
#[derive(Debug)]
#[must_use = "a transaction does nothing until committed"]
pub struct Transaction {
    db: AioDiskDb,
    items: Vec<Bytes>,
    bytes: u64,
}

impl Transaction {
    pub(crate) fn new(db: AioDiskDb) -> Self {
        Transaction {
            db,
            items: Vec::new(),
            bytes: 0,
        }
    }

    /// Stages an item.
    ///
    /// # Errors
    /// [`Error::EmptyPayload`]; [`Error::ItemTooLarge`] if it cannot fit a fresh data file.
    pub fn add(&mut self, data: impl Into<Bytes>) -> Result<()> {
        let data: Bytes = data.into();
        if data.is_empty() {
            return Err(Error::EmptyPayload);
        }
        let limit = self.db.max_tx_item_size();
        if data.len() as u64 > limit {
            return Err(Error::ItemTooLarge {
                size: data.len() as u64,
                limit,
            });
        }
        self.bytes += data.len() as u64;
        self.items.push(data);
        Ok(())
    }

    /// Items staged so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is staged.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Item bytes staged so far.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.bytes
    }

    /// Writes the items after everything added before, contiguously (rolling over to new
    /// files as needed), persists them in one commit together with the buffered items, and
    /// returns their locations in order. Other writers wait during the commit; readers do
    /// not.
    ///
    /// # Errors
    /// [`Error::EmptyTransaction`]; [`Error::NotRunning`]; [`Error::DatabaseFull`];
    /// [`Error::InvalidDbState`] or [`Error::Io`] if the write failed: then none of the
    /// items is visible, now or after a crash, and the handle is poisoned.
    ///
    /// # Cancel safety
    /// Once the commit was handed to the flusher, dropping the future does not cancel it:
    /// it completes (or fails) as a whole, and the locations are lost to the caller.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> aiodiskdb::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = aiodiskdb::AioDiskDb::open(dir.path()).await?;
    /// let mut tx = db.transaction();
    /// for block in [&b"a"[..], &b"b"[..], &b"c"[..]] {
    ///     tx.add(block)?;
    /// }
    /// let locs = tx.commit().await?;
    /// assert_eq!(locs.len(), 3);
    /// assert_eq!(locs[2].position, 2); // contiguous
    /// db.stop().await
    /// # }
    /// ```
    pub async fn commit(self) -> Result<Vec<ItemLocation>> {
        if self.items.is_empty() {
            return Err(Error::EmptyTransaction);
        }
        let items = self.items;
        self.db.send(|reply| Command::Commit { items, reply }).await
    }
}
