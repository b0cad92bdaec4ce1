//! Hydrate: every remote file brought back into the directory, for good (the end of
//! tiering). For each remote file, oldest first: the object's length is checked (a HEAD),
//! its bytes are downloaded by ranged GETs of [`PART`] bytes (up to `concurrency` at once)
//! into a temp file (`.tmp.{file name}`: neither a `{prefix}*.dat` name that the Python
//! library would list, nor a `.checkpoint-*` one), its header checked and the CRC32C of its
//! data bytes computed as they come; the temp file is synced; the flusher checks that
//! CRC32C against the one the manifest records, renames the temp file into place, syncs
//! the directory and records the file as local (`Store::record_place`); only then is the
//! object deleted. At the end, objects under the prefix that name a data file of ours
//! below the head that is not remote (left by an interrupted hydrate, an upload never
//! recorded, or a drop whose delete failed) are deleted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;

use super::upload::{crc_of_part, PART};
use super::{delete, get_range, object_size, record, remote_error, Remote};
use crate::catalog::FileInfo;
use crate::db::Inner;
use crate::error::{Error, IoContext, Result};
use crate::flusher::Command;
use crate::format::{Header, HEADER_LEN};
use crate::fs::{seeded, FsFile};
use crate::reader::Files;
use crate::store::{FileCopy, Place};

/// One file brought back from object storage by
/// [`AioDiskDb::hydrate`](crate::AioDiskDb::hydrate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hydrated {
    /// Its index.
    pub index: u32,
    /// The data file's size in bytes (header included), as the object's.
    pub size: u64,
}

/// Runs `f` on a blocking thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::state(format!("file task failed: {e}")))?
}

/// The temp file a download of `index` goes to.
fn temp_path(files: &Files, index: u32) -> PathBuf {
    files.dir.join(files.naming.temp_file(index))
}

/// Removes the temp file of `index`, best effort (else the next open's recovery does).
async fn remove_temp(files: &Files, index: u32) {
    let (fs, path) = (Arc::clone(&files.fs), temp_path(files, index));
    let removed = blocking(move || {
        crate::fs::remove_if_exists(fs.as_ref(), &path).ctx("remove temp file", &path)
    })
    .await;
    if let Err(e) = removed {
        tracing::warn!(error = %e, "aiodiskdb: a hydrate temp file was not removed");
    }
}

/// Brings every remote file back, oldest first, then deletes the objects left under the
/// prefix; returns what was brought back. `commands` reaches the flusher. The first
/// failure ends it: what was brought back stays local, the rest stays remote.
pub(crate) async fn hydrate(
    inner: &Arc<Inner>,
    remote: &Remote,
    commands: &mpsc::UnboundedSender<Command>,
) -> Result<Vec<Hydrated>> {
    // No upload runs meanwhile (the background uploader is off: `AioDiskDb::hydrate`).
    let (_turn, catalog) = super::turn(inner, remote).await?;
    let files = inner.read_cache.files();
    let store = remote.cfg.store.as_ref();
    let commands = move || Some(commands.clone());
    let mut done = Vec::new();
    for (index, info) in catalog.older().into_iter().filter(|(_, f)| f.remote) {
        let key = remote.key(&files.naming, index);
        let copy = match download(remote, files, index, info).await {
            Ok(copy) => copy,
            Err(e) => {
                remove_temp(files, index).await;
                // Dropped meanwhile (its object with it): not a failure.
                if inner.lock().catalog().get(index) != Some(info) {
                    continue;
                }
                return Err(e);
            }
        };
        if seeded!(files.fs, DeleteObjectBeforeRecord) {
            delete(store, &key).await?;
        }
        match record(&commands, copy, Place::Local).await {
            Ok(true) => {}
            // Dropped meanwhile: nothing recorded.
            Ok(false) => {
                remove_temp(files, index).await;
                continue;
            }
            // The object differs from what the manifest records: it stays remote.
            Err(Error::FilesInconsistency { reason, .. }) => {
                remove_temp(files, index).await;
                return Err(remote_error(&key, &reason));
            }
            // An I/O failure poisoned the handle; recovery removes the temp file.
            Err(e) => return Err(e),
        }
        // Recorded local: the object is named by nothing any more.
        delete(store, &key).await?;
        done.push(Hydrated {
            index,
            size: copy.size,
        });
    }
    sweep(inner, remote, files).await?;
    Ok(done)
}

/// Downloads the object of remote file `index` (as the catalog has it at `info`) into its
/// temp file, synced, checking its length and header; the copy, with the CRC32C of its
/// data bytes (checked against the manifest by the record).
///
/// # Errors
/// [`Error::Remote`] when the object store fails or the object is not the file;
/// [`Error::Io`] writing the temp file.
async fn download(remote: &Remote, files: &Files, index: u32, info: FileInfo) -> Result<FileCopy> {
    let store = remote.cfg.store.as_ref();
    let key = remote.key(&files.naming, index);
    let size = HEADER_LEN + info.data_len();
    let got_size = {
        let _permit = remote
            .requests
            .acquire()
            .await
            .map_err(|_| Error::NotRunning)?;
        object_size(store, &key).await?
    };
    if got_size != size {
        return Err(remote_error(
            &key,
            &format!(
                "the object is {got_size} bytes long, the manifest records {size}: not hydrated"
            ),
        ));
    }
    let path = temp_path(files, index);
    let file = {
        let (fs, path) = (Arc::clone(&files.fs), path.clone());
        blocking(move || {
            crate::fs::remove_if_exists(fs.as_ref(), &path).ctx("remove temp file", &path)?;
            fs.create_new(&path).ctx("create temp file", &path)
        })
        .await?
    };
    let ranges = (0..size)
        .step_by(usize::try_from(PART).expect("8 MiB"))
        .map(|at| at..(at + PART).min(size));
    // Each part is written where it goes as soon as it arrives; the checksum is taken in
    // order.
    let mut parts = futures_util::stream::iter(ranges)
        .map(|range| {
            let (key, file, path) = (&key, Arc::clone(&file), &path);
            async move {
                let at = range.start;
                let bytes = {
                    let _permit = remote
                        .requests
                        .acquire()
                        .await
                        .map_err(|_| Error::NotRunning)?;
                    get_range(store, key, range).await?
                };
                write_part(file, path, at, bytes.clone()).await?;
                Ok::<_, Error>((at, bytes))
            }
        })
        .buffered(remote.cfg.concurrency);
    let mut crc = 0;
    while let Some((at, bytes)) = parts.try_next().await? {
        if at == 0 {
            let header = Header::decode(&bytes, files.genesis).map_err(|reason| {
                remote_error(
                    &key,
                    &format!("the object's header: {reason}: not hydrated"),
                )
            })?;
            if header.trim_offset != info.trim_offset {
                return Err(remote_error(
                    &key,
                    &format!(
                        "the object's header says trim offset {}, the manifest records {}: not \
                         hydrated",
                        header.trim_offset, info.trim_offset
                    ),
                ));
            }
        }
        crc = crc_of_part(crc, &bytes, at);
    }
    drop(parts);
    if !seeded!(files.fs, HydrateUnsynced) {
        blocking(move || file.sync_data().ctx("sync temp file", &path)).await?;
    }
    Ok(FileCopy {
        index,
        trim_offset: info.trim_offset,
        end: info.end,
        data_crc: crc,
        size,
    })
}

/// Writes `bytes` at `at` of `file` on a blocking thread.
async fn write_part(file: Arc<dyn FsFile>, path: &Path, at: u64, bytes: Bytes) -> Result<()> {
    let path = path.to_path_buf();
    blocking(move || file.write_all_at(&bytes, at).ctx("write temp file", &path)).await
}

/// Deletes the objects under the prefix named as a data file of ours below the head that
/// the catalog does not have as remote: nothing names them (an interrupted hydrate's, an
/// upload never recorded, a drop whose delete failed). Indexes are never reused, and no
/// upload runs meanwhile, so none of them is read again.
async fn sweep(inner: &Inner, remote: &Remote, files: &Files) -> Result<()> {
    let store = remote.cfg.store.as_ref();
    let listed: Vec<object_store::ObjectMeta> = store
        .list(Some(&remote.prefix))
        .try_collect()
        .await
        .map_err(|e| remote_error(&remote.prefix, &e))?;
    let catalog = inner.lock().catalog();
    for meta in listed {
        let Some(index) = meta
            .location
            .filename()
            .and_then(|name| files.naming.parse_data_file(name))
        else {
            continue;
        };
        let ours = meta.location == remote.key(&files.naming, index);
        let named = catalog.get(index).is_some_and(|f| f.remote);
        if ours && index < catalog.head() && !named {
            tracing::info!(key = %meta.location, "aiodiskdb: deleting an object nothing names");
            delete(store, &meta.location).await?;
        }
    }
    Ok(())
}
