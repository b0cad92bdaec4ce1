//! The builder, its defaults, and the validation `open` performs.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::buffer::Limits;
use crate::error::{Error, Result};
use crate::events::{Hooks, WriteEvent};
use crate::format::{Format, Naming, DEFAULT_GENESIS, HEADER_LEN, MAX_PREFIX_BYTES};
use crate::store::Options;

/// When an item counts as persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Persisted means synced to the device (`fdatasync` of the data, then of the commit
    /// record; the directory after creating, renaming or removing a file). Survives power
    /// loss and OS crashes. The default.
    #[default]
    Sync,
    /// Persisted means handed to the operating system (written, not synced), as in the
    /// Python library. Survives a crash of the process only. Atomicity still holds.
    Os,
}

/// Largest accepted `max_file_size`: positions and sizes are `u32`.
pub(crate) const MAX_FILE_SIZE_LIMIT: u64 = u32::MAX as u64;

/// A validated configuration.
#[derive(Debug, Clone)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent yes/no options of the builder"
)]
pub(crate) struct Config {
    pub(crate) path: PathBuf,
    pub(crate) create_if_missing: bool,
    pub(crate) max_file_size: u64,
    pub(crate) max_buffer_size: u64,
    pub(crate) max_buffer_items: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) concurrency: usize,
    pub(crate) naming: Naming,
    pub(crate) genesis: [u8; 4],
    pub(crate) overwrite: bool,
    pub(crate) clean_stale_data: bool,
    pub(crate) durability: Durability,
    pub(crate) verify_reads: bool,
    #[cfg(feature = "tiering")]
    pub(crate) tiering: Option<crate::tiering::Tiering>,
    pub(crate) read_only: bool,
}

impl Config {
    /// The largest item `add` accepts: it must fit the buffer and a fresh file.
    pub(crate) fn max_item_size(&self) -> u64 {
        self.max_buffer_size.min(self.max_file_size - HEADER_LEN)
    }

    /// The largest item a transaction accepts: it must fit a fresh file.
    pub(crate) fn max_tx_item_size(&self) -> u64 {
        self.max_file_size - HEADER_LEN
    }

    pub(crate) fn sync(&self) -> bool {
        self.durability == Durability::Sync
    }

    /// The naming and genesis bytes, as the state file records them.
    pub(crate) fn format(&self) -> Format {
        Format {
            naming: self.naming.clone(),
            genesis: self.genesis,
        }
    }

    /// What the storage core needs of the configuration.
    pub(crate) fn store_options(&self) -> Options {
        Options {
            dir: self.path.clone(),
            format: self.format(),
            sync: self.sync(),
            create_if_missing: self.create_if_missing,
            clean_stale_data: self.clean_stale_data,
            lock_wait: self.timeout,
            #[cfg(feature = "tiering")]
            remote: self.tiering.as_ref().map(crate::tiering::Tiering::id),
            #[cfg(not(feature = "tiering"))]
            remote: None,
        }
    }

    /// The placement rule's and the buffer's limits.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_file_size: self.max_file_size,
            max_index: self.naming.max_index(),
            padding: self.naming.padding,
            reserve: usize::try_from(self.max_buffer_size.min(1 << 20)).unwrap_or(1 << 20),
            max_bytes: self.max_buffer_size,
            max_items: self.max_buffer_items,
        }
    }
}

/// Configures and opens an [`AioDiskDb`](crate::AioDiskDb). Every option is checked by [`Builder::open`].
///
/// ```no_run
/// # async fn demo() -> aiodiskdb::Result<()> {
/// use std::time::Duration;
/// use aiodiskdb::{AioDiskDb, Durability};
///
/// let db = AioDiskDb::builder("/tmp/blocks")
///     .max_file_size(16 << 20)
///     .max_buffer_size(1 << 20)
///     .max_buffer_items(100)
///     .flush_interval(Duration::from_secs(60))
///     .durability(Durability::Sync)
///     .open()
///     .await?;
/// # db.stop().await }
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `open` is awaited"]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent yes/no options of the builder"
)]
pub struct Builder {
    path: PathBuf,
    create_if_missing: bool,
    max_file_size: u64,
    max_buffer_size: u64,
    max_buffer_items: usize,
    flush_interval: Duration,
    timeout: Duration,
    concurrency: usize,
    file_prefix: String,
    file_padding: usize,
    genesis: [u8; 4],
    overwrite: bool,
    clean_stale_data: bool,
    durability: Durability,
    verify_reads: bool,
    #[cfg(feature = "tiering")]
    tiering: Option<crate::tiering::Tiering>,
    read_only: bool,
    hooks: Hooks,
}

impl Builder {
    pub(crate) fn new(path: impl AsRef<Path>) -> Self {
        Builder {
            path: path.as_ref().to_path_buf(),
            create_if_missing: true,
            max_file_size: 128 << 20,
            max_buffer_size: 16 << 20,
            max_buffer_items: 1000,
            flush_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            concurrency: 32,
            file_prefix: "data".to_owned(),
            file_padding: 5,
            genesis: DEFAULT_GENESIS,
            overwrite: false,
            clean_stale_data: true,
            durability: Durability::Sync,
            verify_reads: true,
            #[cfg(feature = "tiering")]
            tiering: None,
            read_only: false,
            hooks: Hooks::default(),
        }
    }

    /// Create the directory (and parents) if it does not exist. Default `true`.
    pub fn create_if_missing(mut self, yes: bool) -> Self {
        self.create_if_missing = yes;
        self
    }

    /// Bytes per data file, its 24-byte header included. Default 128 MiB; must be more than
    /// 24 and less than 4 GiB.
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.max_file_size = bytes;
        self
    }

    /// Bytes of items held in RAM before a flush. Default 16 MiB; at least 1, at most
    /// `max_file_size`. Also the largest item `add` accepts.
    pub fn max_buffer_size(mut self, bytes: u64) -> Self {
        self.max_buffer_size = bytes;
        self
    }

    /// Items held in RAM before a flush. Default 1000; at least 1.
    pub fn max_buffer_items(mut self, items: usize) -> Self {
        self.max_buffer_items = items;
        self
    }

    /// Longest time buffered items wait before a flush. Default 30 s; more than zero. An
    /// interval too long for the clock (`Duration::MAX`) means never: only size, item
    /// count, `flush` and the other triggers flush.
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// Longest wait for buffer space in `add`, for `stop`, and in `open` for a handle of
    /// this process that is still closing the directory (persisting its buffer after its
    /// last clone was dropped). Default 30 s; more than zero. A timeout too long for the
    /// clock (`Duration::MAX`) means wait for ever.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Most disk reads in flight at once. Default 32; at least 1.
    pub fn concurrency(mut self, reads: usize) -> Self {
        self.concurrency = reads;
        self
    }

    /// Data file name prefix: letters only, at most 200 bytes. Default `"data"`.
    pub fn file_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.file_prefix = prefix.into();
        self
    }

    /// Digits of the zero-padded index in file names, 1 to 10. Default 5
    /// (`data00000.dat`, at most 100,000 files).
    pub fn file_padding(mut self, digits: usize) -> Self {
        self.file_padding = digits;
        self
    }

    /// The 4 magic bytes at the start of every data file. Default `0d ce 8f 37`.
    pub fn genesis_bytes(mut self, genesis: [u8; 4]) -> Self {
        self.genesis = genesis;
        self
    }

    /// Allow `rtrim`, `ltrim` and `drop_index`. Default `false`.
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }

    /// On open, finish or undo an interrupted flush or trim and delete temp files. Default
    /// `true`; with `false`, `open` fails with [`Error::InvalidDbState`] if anything is
    /// pending.
    pub fn clean_stale_data(mut self, yes: bool) -> Self {
        self.clean_stale_data = yes;
        self
    }

    /// What "persisted" means. Default [`Durability::Sync`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Whether `read` checks an item's CRC32C (from the item index written with it) before
    /// returning it, failing with [`Error::Corrupted`](crate::Error::Corrupted) on a
    /// mismatch. Default `true`. Only a location that is exactly one indexed item is
    /// checked: a sub-range of an item, or bytes another writer (the Python library)
    /// appended, are served as they are.
    pub fn verify_reads(mut self, yes: bool) -> Self {
        self.verify_reads = yes;
        self
    }

    /// Tiered storage (feature `tiering`): sealed data files beyond the newest
    /// [`keep_local`](crate::tiering::Tiering::keep_local) go to an object store and are
    /// read back by ranged GETs. Default: none. A directory whose files are on object
    /// storage cannot be opened without it ([`Error::InvalidConfiguration`](crate::Error)
    /// names the store, the prefix and the indexes).
    #[cfg(feature = "tiering")]
    pub fn tiering(mut self, tiering: crate::tiering::Tiering) -> Self {
        self.tiering = Some(tiering);
        self
    }

    /// Open without a lock, writing nothing and recovering nothing, so that this process
    /// reads while another one writes (an API server serving blocks while the indexer
    /// appends). Default `false`.
    ///
    /// The handle serves what the writer has committed: as of the newest commit record when
    /// it opens, and of newer ones as reads ask for locations past what it knows (a read of
    /// a newer item re-reads the commit record; the directory is not polled). It never
    /// serves a byte past a committed end, nor bytes a trim removed once the trim is
    /// recorded (a read checks the record at least every 50 ms; before that it may
    /// still return the item as it was), and never needs or carries out recovery: in a
    /// directory a crash left, it serves what the recovery will keep. Every write method
    /// fails with [`Error::ReadOnly`](crate::Error::ReadOnly); `create_if_missing`,
    /// `clean_stale_data` and the write options do not apply.
    ///
    /// A reader sees a batch as soon as the writer has written its commit record, which
    /// the writer syncs together with the batch: after a power loss, the writer's recovery
    /// may drop a batch that a reader served (the writer never acknowledged it).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> aiodiskdb::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let writer = aiodiskdb::AioDiskDb::open(dir.path()).await?;
    /// let loc = writer.add(&b"block"[..]).await?;
    /// writer.flush().await?;
    /// let reader = aiodiskdb::AioDiskDb::builder(dir.path()).read_only().open().await?;
    /// assert_eq!(reader.read(loc).await?.as_deref(), Some(&b"block"[..]));
    /// let later = writer.add(&b"next"[..]).await?;
    /// writer.flush().await?;
    /// assert_eq!(reader.read(later).await?.as_deref(), Some(&b"next"[..]));
    /// assert!(matches!(reader.add(&b"x"[..]).await, Err(aiodiskdb::Error::ReadOnly)));
    /// # reader.stop().await?;
    /// # writer.stop().await
    /// # }
    /// ```
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Called after each range is persisted, with the time and the range.
    ///
    /// Hooks never slow or block the database, and they miss nothing: every event is
    /// queued for them (apart from the [`subscribe`](crate::AioDiskDb::subscribe) channel, which
    /// lets a slow receiver lag), and one task calls the hooks one event at a time, in
    /// event order, awaiting each call. That task ends after `on_stop` returns, or once
    /// every handle is dropped and the queue is empty.
    ///
    /// Memory when a hook cannot keep up: the queue holds up to 65,536 events as they come (80
    /// bytes each: 5 MiB, in an allocation of up to twice that, given back once the hook has
    /// caught up). Past that, a `Written` range that continues the last queued one (same index,
    /// next position) is merged into it, and the hook gets one call for the combined range with
    /// the later time; every other event is still queued. So from then on the queue grows by
    /// one entry per data file started, trim, drop or failure while the hook is behind, not per
    /// flush. Nothing is ever dropped.
    pub fn on_write<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(SystemTime, WriteEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks.on_write = Some(Arc::new(move |at, ev| Box::pin(hook(at, ev))));
        self
    }

    /// Called once the database has opened. Runs on the hooks' task, in event order, and
    /// never misses an event: see [`Builder::on_write`] for the queue and its memory.
    pub fn on_start<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(SystemTime) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks.on_start = Some(Arc::new(move |at| Box::pin(hook(at))));
        self
    }

    /// Called once the database has stopped. Runs on the hooks' task, in event order, and
    /// never misses an event: see [`Builder::on_write`] for the queue and its memory.
    pub fn on_stop<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(SystemTime) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks.on_stop = Some(Arc::new(move |at| Box::pin(hook(at))));
        self
    }

    /// Called when a write or sync fails (the handle then refuses writes). Runs on the
    /// hooks' task, in event order, and never misses an event: see [`Builder::on_write`]
    /// for the queue and its memory.
    pub fn on_failure<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(SystemTime, Error) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks.on_failure = Some(Arc::new(move |at, e| Box::pin(hook(at, e))));
        self
    }

    /// Called when a data file is deleted, with its index and item bytes. Runs on the
    /// hooks' task, in event order, and never misses an event: see [`Builder::on_write`]
    /// for the queue and its memory.
    pub fn on_index_drop<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(SystemTime, u32, u64) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks.on_index_drop = Some(Arc::new(move |at, i, s| Box::pin(hook(at, i, s))));
        self
    }

    /// Checks every option as [`Builder::open`] does, without touching the disk: for a
    /// binding that reports bad options when they are given rather than at `open`.
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] for the first bad option.
    pub fn check(&self) -> Result<()> {
        let b = self;
        if b.max_file_size <= HEADER_LEN {
            return Err(Error::config(
                "max_file_size",
                &b.max_file_size,
                "must be more than the 24-byte header",
            ));
        }
        if b.max_file_size > MAX_FILE_SIZE_LIMIT {
            return Err(Error::config(
                "max_file_size",
                &b.max_file_size,
                "must be less than 4 GiB (positions are u32)",
            ));
        }
        if b.max_buffer_size == 0 {
            return Err(Error::config("max_buffer_size", &0, "must be at least 1"));
        }
        if b.max_buffer_size > b.max_file_size {
            return Err(Error::config(
                "max_buffer_size",
                &b.max_buffer_size,
                "must not exceed max_file_size",
            ));
        }
        if b.max_buffer_items == 0 {
            return Err(Error::config("max_buffer_items", &0, "must be at least 1"));
        }
        if b.flush_interval.is_zero() {
            return Err(Error::config(
                "flush_interval",
                &"0s",
                "must be more than zero",
            ));
        }
        if b.timeout.is_zero() {
            return Err(Error::config("timeout", &"0s", "must be more than zero"));
        }
        if b.concurrency == 0 {
            return Err(Error::config("concurrency", &0, "must be at least 1"));
        }
        if b.file_prefix.is_empty() || !b.file_prefix.chars().all(char::is_alphabetic) {
            return Err(Error::config(
                "file_prefix",
                &format!("{:?}", b.file_prefix),
                "must be a non-empty string of letters",
            ));
        }
        if b.file_prefix.len() > MAX_PREFIX_BYTES {
            return Err(Error::config(
                "file_prefix",
                &format!("of {} bytes", b.file_prefix.len()),
                format!("must be at most {MAX_PREFIX_BYTES} bytes (file names are limited to 255)"),
            ));
        }
        if !(1..=10).contains(&b.file_padding) {
            return Err(Error::config(
                "file_padding",
                &b.file_padding,
                "must be from 1 to 10 digits",
            ));
        }
        if b.path.as_os_str().is_empty() {
            return Err(Error::config("path", &"\"\"", "must not be empty"));
        }
        #[cfg(feature = "tiering")]
        if let Some(t) = &b.tiering {
            t.validate()?;
        }
        Ok(())
    }

    pub(crate) fn validate(self) -> Result<(Config, Hooks)> {
        self.check()?;
        let b = self;
        Ok((
            Config {
                path: b.path,
                create_if_missing: b.create_if_missing,
                max_file_size: b.max_file_size,
                max_buffer_size: b.max_buffer_size,
                max_buffer_items: b.max_buffer_items,
                flush_interval: b.flush_interval,
                timeout: b.timeout,
                concurrency: b.concurrency,
                naming: Naming {
                    prefix: b.file_prefix,
                    padding: b.file_padding,
                },
                genesis: b.genesis,
                overwrite: b.overwrite,
                clean_stale_data: b.clean_stale_data,
                durability: b.durability,
                verify_reads: b.verify_reads,
                #[cfg(feature = "tiering")]
                tiering: b.tiering,
                read_only: b.read_only,
            },
            b.hooks,
        ))
    }
}
