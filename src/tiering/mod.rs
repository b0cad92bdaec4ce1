//! Tiered storage (feature `tiering`): sealed data files on S3-compatible object storage,
//! read back by ranged GETs.
//!
//! This module owns everything that talks to the object store: the configuration
//! ([`Tiering`]), the upload and its verification (`upload.rs`), the background uploader
//! task, remote reads through a RAM cache of items (`cache.rs`) within a bound on
//! concurrent requests, and hydrate, which brings every file back (`hydrate.rs`).
//! Recording a file as remote or local again (a new manifest generation, named by a state
//! record; the local copy deleted after it, or the downloaded one renamed into place
//! before it) is the store's, run by the flusher (`store/tier.rs`); recovery resolves what
//! a crash left (`recovery/checks.rs`).
//!
//! An object is the whole data file, header included, under `{prefix}/{file name}`, so
//! the item at logical position `p` is at byte `24 + p - trim offset` of the object, as in
//! the file, with the trim offset the object was uploaded with (`object_trim_offset`): a
//! trim of a remote file only narrows the logical range the catalog serves, and the object
//! is never rewritten. The item index (`.idx`) of a remote file stays in the directory: it is small
//! (8 bytes per item), and every remote read is checked against it without a second
//! request.

mod cache;
mod hydrate;
mod upload;

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

use crate::catalog::{Catalog, FileInfo};
use crate::db::Inner;
use crate::error::{Error, Result};
use crate::flusher::Command;
use crate::format::{data_offset, Naming, RemoteId};
use crate::index::ItemTable;
use crate::location::ItemLocation;
use crate::reader::Files;
use crate::shared::Call;
use crate::store::{FileCopy, Place};

pub(crate) use hydrate::hydrate;
pub use hydrate::Hydrated;
pub(crate) use upload::upload;

/// How many item tables of remote files are kept in memory.
const MAX_TABLES: usize = 1024;

/// Tiered storage on an object store: where the sealed data files go, how many stay on
/// the local disk, and how remote reads are cached. Given to
/// [`Builder::tiering`](crate::Builder::tiering).
///
/// Sealed files (every index below the head) beyond the newest `keep_local` are uploaded
/// in the background, verified (the object's length, and the CRC32C of its bytes read
/// back against the checksum the manifest records), recorded durably as remote, and only
/// then deleted locally. Reads of a remote item are one ranged GET each, through a cache,
/// and are checked against the item's CRC32C like local ones.
///
/// ```no_run
/// # async fn f() -> aiodiskdb::Result<()> {
/// use std::sync::Arc;
/// use aiodiskdb::{tiering::Tiering, AioDiskDb};
/// use object_store::aws::AmazonS3Builder;
///
/// let s3 = AmazonS3Builder::from_env()
///     .with_bucket_name("archive")
///     .build()
///     .expect("S3 configuration");
/// let db = AioDiskDb::builder("./blocks")
///     .tiering(
///         Tiering::new(Arc::new(s3), "node-1/blocks")
///             .keep_local(4)
///             .cache_size(256 << 20),
///     )
///     .open()
///     .await?;
/// # db.stop().await }
/// ```
#[derive(Clone)]
pub struct Tiering {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) prefix: String,
    pub(crate) keep_local: usize,
    pub(crate) cache_size: u64,
    pub(crate) concurrency: usize,
    pub(crate) background: bool,
    pub(crate) retry_backoff: Duration,
}

impl fmt::Debug for Tiering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tiering")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix)
            .field("keep_local", &self.keep_local)
            .field("cache_size", &self.cache_size)
            .field("concurrency", &self.concurrency)
            .field("background", &self.background)
            .field("retry_backoff", &self.retry_backoff)
            .finish()
    }
}

impl Tiering {
    /// Tiering to `store`, every object key under `prefix` (`""`: the store's root; a
    /// prefix such as `"node-1/blocks"` lets several databases share a bucket).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: impl Into<String>) -> Tiering {
        Tiering {
            store,
            prefix: prefix.into(),
            keep_local: 4,
            cache_size: 256 << 20,
            concurrency: 8,
            background: true,
            retry_backoff: Duration::from_secs(1),
        }
    }

    /// Tiering to the S3 (or S3-compatible) bucket and key prefix of `url`,
    /// `s3://bucket/prefix`, with the endpoint, region and credentials from the standard
    /// variables, as `object_store` reads them: `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`),
    /// `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint, `AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`). This is what
    /// the CLI's `--store` does.
    ///
    /// ```
    /// # fn main() -> aiodiskdb::Result<()> {
    /// let tiering = aiodiskdb::tiering::Tiering::from_s3_url("s3://archive/node-1/blocks")?;
    /// assert_eq!(tiering.prefix(), "node-1/blocks");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] if `url` is not `s3://bucket[/prefix]` or the
    /// variables do not make a valid S3 configuration.
    pub fn from_s3_url(url: &str) -> Result<Tiering> {
        let bad = |why: String| Error::InvalidConfiguration {
            option: "store",
            value: url.to_string(),
            reason: why,
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("the store must be s3://bucket[/prefix]".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("the URL names no bucket".into()));
        }
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Tiering::new(Arc::new(s3), prefix.trim_matches('/')))
    }

    /// The key prefix of every object.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How many of the newest sealed files stay on the local disk (the head always does).
    /// Default 4; 0 uploads every sealed file.
    #[must_use]
    pub fn keep_local(mut self, files: usize) -> Tiering {
        self.keep_local = files;
        self
    }

    /// Bytes of remote items kept in RAM (least recently used first out). Default
    /// 256 MiB; 0 caches nothing.
    #[must_use]
    pub fn cache_size(mut self, bytes: u64) -> Tiering {
        self.cache_size = bytes;
        self
    }

    /// How many requests to the object store run at once: remote reads, and the parts of
    /// one upload. Default 8; at least 1.
    #[must_use]
    pub fn concurrency(mut self, requests: usize) -> Tiering {
        self.concurrency = requests;
        self
    }

    /// Whether a background task uploads sealed files as they appear. Default `true`;
    /// with `false`, files are uploaded only by [`AioDiskDb::tier`](crate::AioDiskDb::tier).
    #[must_use]
    pub fn upload_in_background(mut self, yes: bool) -> Tiering {
        self.background = yes;
        self
    }

    /// How long the background uploader waits after a failed upload before it tries
    /// again; the wait doubles with each failure in a row, up to 64 times this. Default
    /// 1 s. The local copy stays meanwhile.
    #[must_use]
    pub fn retry_backoff(mut self, first: Duration) -> Tiering {
        self.retry_backoff = first;
        self
    }

    /// Checks the options.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.concurrency == 0 {
            return Err(Error::config(
                "tiering concurrency",
                &0,
                "must be at least 1",
            ));
        }
        if !self.prefix.is_empty() {
            if let Err(e) = ObjectPath::parse(&self.prefix) {
                return Err(Error::config(
                    "tiering prefix",
                    &format!("{:?}", self.prefix),
                    format!("not a valid object key prefix: {e}"),
                ));
            }
        }
        if self.retry_backoff.is_zero() {
            return Err(Error::config(
                "tiering retry_backoff",
                &"0s",
                "must be more than zero",
            ));
        }
        Ok(())
    }

    /// What the manifest records of it.
    pub(crate) fn id(&self) -> RemoteId {
        RemoteId {
            prefix: self.prefix.clone(),
            store: self.store.to_string(),
        }
    }
}

/// An object store error as ours, naming the key.
pub(crate) fn remote_error(key: &ObjectPath, cause: &dyn fmt::Display) -> Error {
    Error::Remote {
        key: key.to_string(),
        cause: cause.to_string(),
    }
}

/// The size of the object at `key` (a HEAD).
async fn object_size(store: &dyn ObjectStore, key: &ObjectPath) -> Result<u64> {
    let opts = GetOptions {
        head: true,
        ..GetOptions::default()
    };
    let got = store
        .get_opts(key, opts)
        .await
        .map_err(|e| remote_error(key, &e))?;
    Ok(got.meta.size)
}

/// A ranged GET.
async fn get_range(store: &dyn ObjectStore, key: &ObjectPath, range: Range<u64>) -> Result<Bytes> {
    let want = range.end - range.start;
    let opts = GetOptions {
        range: Some(GetRange::Bounded(range)),
        ..GetOptions::default()
    };
    let got = store
        .get_opts(key, opts)
        .await
        .map_err(|e| remote_error(key, &e))?;
    let bytes = got.bytes().await.map_err(|e| remote_error(key, &e))?;
    if bytes.len() as u64 != want {
        return Err(remote_error(
            key,
            &format!("a ranged GET returned {} bytes of {want}", bytes.len()),
        ));
    }
    Ok(bytes)
}

/// The running side of tiering, shared by the handle, the uploader and the flusher.
#[derive(Debug)]
pub(crate) struct Remote {
    pub(crate) cfg: Tiering,
    prefix: ObjectPath,
    cache: cache::Lru,
    /// Bounds the requests to the object store that run at once.
    requests: Semaphore,
    /// Item tables of remote files, by index: `(catalog generation, table)`. Taken alone.
    tables: Mutex<HashMap<u32, (u64, Arc<ItemTable>)>>,
    /// Held by a pass (of the background task or `tier`) and by `hydrate`: one at a time,
    /// so that no file is uploaded twice at once, nor uploaded while it is brought back.
    passes: tokio::sync::Mutex<()>,
    /// Wakes the background uploader: the head moved, so a file may have been sealed.
    pub(crate) wake: Notify,
}

impl Remote {
    pub(crate) fn new(cfg: Tiering) -> Remote {
        let prefix = ObjectPath::from(cfg.prefix.as_str());
        Remote {
            cache: cache::Lru::new(cfg.cache_size),
            requests: Semaphore::new(cfg.concurrency),
            prefix,
            cfg,
            tables: Mutex::default(),
            passes: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
        }
    }

    /// The object key of data file `index`.
    pub(crate) fn key(&self, naming: &Naming, index: u32) -> ObjectPath {
        self.prefix.clone().join(naming.data_file(index))
    }

    /// The item table of remote file `index` as committed at `info` (its index file is
    /// local).
    async fn table(&self, files: &Files, index: u32, info: FileInfo) -> Result<Arc<ItemTable>> {
        {
            let tables = self.tables.lock().expect("tables lock");
            if let Some((_, t)) = tables.get(&index).filter(|(g, _)| *g == info.generation) {
                return Ok(Arc::clone(t));
            }
        }
        let files = files.clone();
        // A missing index: the items are served unchecked, as local ones are.
        let table = tokio::task::spawn_blocking(move || files.table_of(index, info))
            .await
            .map_err(|e| Error::state(format!("index load task failed: {e}")))??;
        let table = Arc::new(table);
        let mut tables = self.tables.lock().expect("tables lock");
        if tables.len() >= MAX_TABLES {
            tables.clear();
        }
        tables.insert(index, (info.generation, Arc::clone(&table)));
        Ok(table)
    }

    /// One ranged GET of the `len` bytes at logical position `from` of the remote file
    /// whose object is `key` (as `info`: its object's trim offset maps positions), within
    /// the requests in flight.
    async fn get_logical(
        &self,
        key: &ObjectPath,
        info: FileInfo,
        from: u32,
        len: u32,
    ) -> Result<Bytes> {
        let first = data_offset(from, info.object_trim_offset);
        let _permit = self
            .requests
            .acquire()
            .await
            .map_err(|_| Error::NotRunning)?;
        get_range(self.cfg.store.as_ref(), key, first..first + u64::from(len)).await
    }

    /// Reads `loc` of remote file `info`: from the cache, else one ranged GET, checked
    /// against the item's CRC32C when `verify` (a mismatch is [`Error::Corrupted`], and
    /// nothing is cached).
    pub(crate) async fn read(
        &self,
        files: &Files,
        verify: bool,
        loc: ItemLocation,
        info: FileInfo,
    ) -> Result<Option<Bytes>> {
        let cache_key = (loc.index, info.generation, loc.position, loc.size);
        if let Some(b) = self.cache.get(&cache_key) {
            return Ok(Some(b));
        }
        let table = if verify && info.entries > 0 {
            Some(self.table(files, loc.index, info).await?)
        } else {
            None
        };
        let key = self.key(&files.naming, loc.index);
        let bytes = self.get_logical(&key, info, loc.position, loc.size).await?;
        if let Some(t) = table {
            crate::reader::check(&t, loc, &bytes).map_err(|e| match e {
                Error::Corrupted { location, reason } => Error::Corrupted {
                    location,
                    reason: format!("remote copy {key}: {reason}"),
                },
                e => e,
            })?;
        }
        self.cache.insert(cache_key, bytes.clone());
        Ok(Some(bytes))
    }

    /// What is wrong with the object of remote file `index` as committed at `info` (a
    /// HEAD, within `concurrency`), for `verify`.
    ///
    /// # Errors
    /// [`Error::Remote`] when the store fails.
    pub(crate) async fn damage(
        &self,
        naming: &Naming,
        index: u32,
        info: FileInfo,
    ) -> Result<Option<crate::Damage>> {
        let key = self.key(naming, index);
        let _permit = self
            .requests
            .acquire()
            .await
            .map_err(|_| Error::NotRunning)?;
        Ok(
            check_object(self.cfg.store.as_ref(), &key, info.object_size())
                .await?
                .map(|(kind, message)| crate::Damage {
                    index,
                    location: None,
                    kind,
                    message,
                }),
        )
    }

    /// The bytes at logical `range` of remote file `index` (as `info`), for a trim's safety
    /// check: one ranged GET of the object, widened to whole items where indexed items
    /// overlap the range's ends, each indexed item it covers checked against its CRC32C
    /// (a mismatch is [`Error::Corrupted`] naming the remote copy). The object holds every
    /// item of the item index, also those a trim of the remote file cut.
    pub(crate) async fn read_range(
        &self,
        files: &Files,
        index: u32,
        info: FileInfo,
        range: Range<u32>,
    ) -> Result<Bytes> {
        let pieces = if info.entries > 0 {
            let table = self.table(files, index, info).await?;
            // Indexed items wholly inside what the object holds of the logical range.
            table
                .pieces(info.object_trim_offset, info.end)
                .into_iter()
                .filter_map(|(p, size, crc)| Some((p, p + size, crc?)))
                .filter(|&(p, end, _)| p < range.end && end > range.start)
                .collect()
        } else {
            Vec::new()
        };
        let start = pieces.iter().map(|p| p.0).fold(range.start, u32::min);
        let end = pieces.iter().map(|p| p.1).fold(range.end, u32::max);
        let key = self.key(&files.naming, index);
        let bytes = self.get_logical(&key, info, start, end - start).await?;
        for (p, item_end, crc) in pieces {
            let item = &bytes[(p - start) as usize..(item_end - start) as usize];
            if crate::crc::crc32c(item) != crc {
                return Err(Error::Corrupted {
                    location: ItemLocation {
                        index,
                        position: p,
                        size: item_end - p,
                    },
                    reason: format!(
                        "remote copy {key}: its CRC32C is {:08x}, the item index recorded \
                         {crc:08x}",
                        crate::crc::crc32c(item)
                    ),
                });
            }
        }
        Ok(bytes.slice((range.start - start) as usize..(range.end - start) as usize))
    }

    /// Deletes the object of `index`, best effort (an upload that was not recorded).
    async fn forget(&self, naming: &Naming, index: u32) {
        let key = self.key(naming, index);
        if let Err(e) = delete(self.cfg.store.as_ref(), &key).await {
            tracing::warn!(error = %e, "aiodiskdb: could not delete an unrecorded upload");
        }
    }
}

/// Deletes `key` (a missing object is not an error).
pub(crate) async fn delete(store: &dyn ObjectStore, key: &ObjectPath) -> Result<()> {
    use futures_util::StreamExt;
    let one = futures_util::stream::iter([Ok(key.clone())]).boxed();
    match store.delete_stream(one).next().await {
        Some(Err(object_store::Error::NotFound { .. }) | Ok(_)) | None => Ok(()),
        Some(Err(e)) => Err(remote_error(key, &e)),
    }
}

/// What is wrong with the object at `key`, which should be `size` bytes long (one HEAD):
/// `None` when nothing is; a missing object, or one of another length, as a kind of
/// damage and a message naming the key.
///
/// # Errors
/// [`Error::Remote`] when the store fails otherwise.
pub(crate) async fn check_object(
    store: &dyn ObjectStore,
    key: &ObjectPath,
    size: u64,
) -> Result<Option<(crate::DamageKind, String)>> {
    let head = GetOptions {
        head: true,
        ..GetOptions::default()
    };
    match store.get_opts(key, head).await {
        Ok(got) if got.meta.size == size => Ok(None),
        Ok(got) => Ok(Some((
            crate::DamageKind::Inconsistent,
            format!(
                "on object storage: the object {key} is {} bytes long, the file {size}",
                got.meta.size
            ),
        ))),
        Err(object_store::Error::NotFound { .. }) => Ok(Some((
            crate::DamageKind::Missing,
            format!("on object storage: the object {key} is missing"),
        ))),
        Err(e) => Err(remote_error(key, &e)),
    }
}

/// `ins` with a problem for each remote file whose object is missing, of another length
/// than the manifest records, or that the store fails to describe (one HEAD each, at most
/// `concurrency` at once).
pub(crate) async fn check_objects(
    mut ins: crate::Inspection,
    cfg: &Tiering,
    opts: &crate::store::Options,
) -> crate::Inspection {
    use futures_util::StreamExt;
    let prefix = ObjectPath::from(cfg.prefix.as_str());
    // Owned values: a closure over references would make the future not `Send`.
    let wanted: Vec<(u32, u64, ObjectPath)> = ins
        .remote_files
        .iter()
        .map(|f| {
            let key = prefix.clone().join(opts.format.naming.data_file(f.index));
            (f.index, f.size, key)
        })
        .collect();
    let found: Vec<_> = futures_util::stream::iter(wanted)
        .map(|(index, size, key)| {
            let store = Arc::clone(&cfg.store);
            async move { (index, check_object(store.as_ref(), &key, size).await) }
        })
        .buffer_unordered(cfg.concurrency.max(1))
        .collect()
        .await;
    for (index, got) in found {
        let message = match got {
            Ok(None) => continue,
            Ok(Some((_, message))) => message,
            Err(e) => format!("on object storage: could not check the object: {e}"),
        };
        ins.problems
            .push(crate::inspect::problem(&opts.data_path(index), message));
    }
    ins.problems.sort_by(|a, b| a.path.cmp(&b.path));
    ins
}

/// The sealed files still local beyond the newest `keep_local`, oldest first.
pub(crate) fn candidates(catalog: &Catalog, keep_local: usize) -> Vec<(u32, FileInfo)> {
    let local: Vec<(u32, FileInfo)> = catalog
        .older()
        .into_iter()
        .filter(|(_, f)| !f.remote)
        .collect();
    let n = local.len().saturating_sub(keep_local);
    local[..n].to_vec()
}

/// One file tiered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiered {
    /// Its index.
    pub index: u32,
    /// The object's size in bytes (the data file, header included).
    pub size: u64,
}

/// Asks the flusher (through `commands`) to record `copy` at `to`; whether it did.
async fn record(
    commands: &(dyn Fn() -> Option<mpsc::UnboundedSender<Command>> + Sync),
    copy: FileCopy,
    to: Place,
) -> Result<bool> {
    let (reply, recorded) = oneshot::channel();
    commands()
        .ok_or(Error::NotRunning)?
        .send(Command::Place { copy, to, reply })
        .map_err(|_| Error::NotRunning)?;
    recorded.await.map_err(|_| Error::NotRunning)?
}

/// The handle's turn to move files between the disk and the store (one pass or hydrate
/// at a time), and the catalog as of its start; refused when the handle takes no writes.
pub(super) async fn turn<'r>(
    inner: &Inner,
    remote: &'r Remote,
) -> Result<(tokio::sync::MutexGuard<'r, ()>, Catalog)> {
    inner.lock().admit(Call::Write)?;
    let turn = remote.passes.lock().await;
    let catalog = {
        let s = inner.lock();
        s.admit(Call::Write)?;
        s.catalog()
    };
    Ok((turn, catalog))
}

/// Uploads, verifies and records every candidate file, one at a time, oldest first.
/// `commands` reaches the flusher, which records each upload. Returns what was tiered;
/// the first failure ends the pass (the file stays local).
pub(crate) async fn pass(
    inner: &Arc<Inner>,
    remote: &Remote,
    commands: &(dyn Fn() -> Option<mpsc::UnboundedSender<Command>> + Sync),
) -> Result<Vec<Tiered>> {
    let (_turn, catalog) = turn(inner, remote).await?;
    let files = inner.read_cache.files();
    let mut done = Vec::new();
    for (index, info) in candidates(&catalog, remote.cfg.keep_local) {
        let up = match upload(remote, files, index, info).await {
            Ok(up) => up,
            // Trimmed, dropped or replaced while it was read: not a failure; a later pass
            // takes the file as it is now, if it is still there.
            Err(_) if inner.lock().catalog().get(index) != Some(info) => continue,
            Err(e) => return Err(e),
        };
        if record(commands, up, Place::Remote).await? {
            done.push(Tiered {
                index,
                size: up.size,
            });
        } else {
            // The file changed (trimmed, dropped) while it was uploaded: the object is
            // not what the manifest will say, and nothing names it.
            remote.forget(&files.naming, index).await;
        }
    }
    Ok(done)
}

/// The background uploader: a pass at start and whenever the head moves, retried with
/// backoff after a failure. It ends when the handle stops or is poisoned; an upload in
/// flight then is dropped, unrecorded, and redone by a later session.
pub(crate) async fn run(
    inner: Arc<Inner>,
    remote: Arc<Remote>,
    commands: mpsc::WeakUnboundedSender<Command>,
) {
    let mut progress = inner.progress.subscribe();
    let ended = async move {
        let _ = progress.wait_for(|p| p.stopped || p.error.is_some()).await;
    };
    tokio::pin!(ended);
    let mut backoff = remote.cfg.retry_backoff;
    let commands = move || commands.upgrade();
    loop {
        let outcome = tokio::select! {
            () = &mut ended => return,
            r = pass(&inner, &remote, &commands) => r,
        };
        let wait = match outcome {
            Ok(tiered) => {
                backoff = remote.cfg.retry_backoff;
                for t in tiered {
                    tracing::debug!(index = t.index, size = t.size, "aiodiskdb: tiered");
                }
                None
            }
            Err(Error::NotRunning) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "aiodiskdb: upload failed; the file stays local");
                let wait = backoff;
                backoff = (backoff * 2).min(remote.cfg.retry_backoff * 64);
                Some(wait)
            }
        };
        tokio::select! {
            () = &mut ended => return,
            () = remote.wake.notified(), if wait.is_none() => {}
            () = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_key_is_the_prefix_and_the_file_name() {
        let remote = Remote::new(Tiering::new(
            Arc::new(object_store::memory::InMemory::new()),
            "p",
        ));
        assert_eq!(
            remote
                .key(
                    &Naming {
                        prefix: "data".into(),
                        padding: 5
                    },
                    7
                )
                .to_string(),
            "p/data00007.dat"
        );
    }
}
