//! Hydrate: every remote file brought back into the directory, for good (the end of
//! tiering). For each remote file, oldest first: the object's length is checked (a HEAD)
//! against the range it was uploaded with, its bytes are downloaded by ranged GETs of
//! [`PART`] bytes (up to `concurrency` at once), its header checked and the CRC32C of its
//! data bytes computed as they come, and the bytes of the file's logical range are written
//! into a temp file (`.tmp.{file name}`: neither a `{prefix}*.dat` name that the Python
//! library would list, nor a `.checkpoint-*` one) with a header of the logical trim offset,
//! as a local ltrim writes its new file (a remote file trimmed since its upload comes back
//! as what the database holds, not as the object); the temp file is synced; the flusher
//! checks the object's range and CRC32C against what the manifest records it holds,
//! renames the temp file into place, syncs the directory and records the file as local
//! with the checksum and tail of the bytes kept (`Store::record_place`); only then is the
//! object deleted. A file trimmed during its download is downloaded again; one dropped
//! meanwhile is skipped. At the end, objects under the prefix that name a data file of ours
//! below the head that is not remote (left by an interrupted hydrate, an upload never
//! recorded, or a drop whose delete failed) are deleted.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use tokio::sync::mpsc;

use super::upload::{crc_of_part, PART};
use super::{delete, get_range, object_size, record, remote_error, Remote};
use crate::catalog::FileInfo;
use crate::datafile::DataFile;
use crate::db::Inner;
use crate::error::{Error, IoContext, Result};
use crate::flusher::Command;
use crate::format::{Header, ObjectSpan, HEADER_LEN};
use crate::fs::seeded;
use crate::reader::Files;
use crate::store::{FileCopy, Place};

/// One file brought back from object storage by
/// [`AioDiskDb::hydrate`](crate::AioDiskDb::hydrate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hydrated {
    /// Its index.
    pub index: u32,
    /// The data file's size in bytes (header included): its object's, or less for a file
    /// trimmed while remote (only its logical range comes back).
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
        let mut info = info;
        // Again while the file changes under the download (trimmed meanwhile: its new
        // range comes back); skipped once it is gone (dropped meanwhile: not a failure).
        let size = loop {
            let (copy, to) = match download(remote, files, index, info).await {
                Ok(got) => got,
                Err(e) => {
                    remove_temp(files, index).await;
                    match inner.lock().catalog().get(index) {
                        Some(now) if now == info => return Err(e),
                        Some(now) if now.remote => {
                            info = now;
                            continue;
                        }
                        _ => break None,
                    }
                }
            };
            if seeded!(files.fs, DeleteObjectBeforeRecord) {
                delete(store, &key).await?;
            }
            match record(&commands, copy, to).await {
                Ok(true) => break Some(copy.size),
                // Changed meanwhile: nothing recorded.
                Ok(false) => remove_temp(files, index).await,
                // The object differs from what the manifest records: it stays remote.
                Err(Error::FilesInconsistency { reason, .. }) => {
                    remove_temp(files, index).await;
                    return Err(remote_error(&key, &reason));
                }
                // The handle stopped before the flusher recorded the file (had it been
                // dropped while recording, the rename is done and there is nothing to
                // remove): the stop marks the directory clean, so no recovery would
                // remove the temp file, and an open that keeps stale files refuses it.
                Err(Error::NotRunning) => {
                    remove_temp(files, index).await;
                    return Err(Error::NotRunning);
                }
                // An I/O failure poisoned the handle; recovery removes the temp file.
                Err(e) => return Err(e),
            }
            match inner.lock().catalog().get(index) {
                Some(now) if now.remote => info = now,
                _ => break None,
            }
        };
        let Some(size) = size else {
            continue;
        };
        // Recorded local: the object is named by nothing any more.
        delete(store, &key).await?;
        done.push(Hydrated { index, size });
    }
    sweep(inner, remote, files).await?;
    Ok(done)
}

/// Downloads the object of remote file `index` (as the catalog has it at `info`) into its
/// temp file, synced: the object's length and header are checked against the range it was
/// uploaded with (`info.object_trim_offset..info.object_end`), and the CRC32C of its data
/// bytes taken; the temp file is written as a local ltrim writes its new file (a fresh
/// header with the logical trim offset, then the object's bytes of the logical range at
/// their positions), so a file trimmed while remote comes back as its logical range only.
/// Returns the copy (the CRC32C of the bytes kept) and where to record it (the object as
/// downloaded, checked against the manifest by the record, and the kept bytes' tail).
///
/// # Errors
/// [`Error::Remote`] when the object store fails or the object is not the file;
/// [`Error::Io`] writing the temp file.
async fn download(
    remote: &Remote,
    files: &Files,
    index: u32,
    info: FileInfo,
) -> Result<(FileCopy, Place)> {
    let store = remote.cfg.store.as_ref();
    let key = remote.key(&files.naming, index);
    let size = info.object_size();
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
        let (fs, path, genesis) = (Arc::clone(&files.fs), path.clone(), files.genesis);
        blocking(move || {
            crate::fs::remove_if_exists(fs.as_ref(), &path).ctx("remove temp file", &path)?;
            DataFile::create(fs.as_ref(), &path, genesis, info.trim_offset, false)
        })
        .await?
    };
    let ranges = (0..size)
        .step_by(usize::try_from(PART).expect("8 MiB"))
        .map(|at| at..(at + PART).min(size));
    // Each part's kept bytes are written where they go as soon as it arrives; the
    // checksums are taken in order.
    let mut parts = futures_util::stream::iter(ranges)
        .map(|range| {
            let (key, file) = (&key, file.clone());
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
                let kept = kept_part(info, at, &bytes);
                if let Some((position, kept)) = kept.clone() {
                    write_part(file, position, kept).await?;
                }
                Ok::<_, Error>((at, bytes, kept))
            }
        })
        .buffered(remote.cfg.concurrency);
    let (mut object_crc, mut kept_crc) = (0, 0);
    while let Some((at, bytes, kept)) = parts.try_next().await? {
        if at == 0 {
            check_header(&key, &bytes, files.genesis, info.object_trim_offset)?;
        }
        object_crc = crc_of_part(object_crc, &bytes, at);
        if let Some((_, kept)) = kept {
            kept_crc = crate::crc::crc32c_append(kept_crc, &kept);
        }
    }
    drop(parts);
    let sync = !seeded!(files.fs, HydrateUnsynced);
    let tail = blocking(move || {
        if sync {
            file.sync().ctx("sync temp file", file.path())?;
        }
        file.tail(info.end).ctx("read temp file", file.path())
    })
    .await?;
    let copy = FileCopy {
        index,
        trim_offset: info.trim_offset,
        end: info.end,
        data_crc: kept_crc,
        size: info.data_len() + HEADER_LEN,
    };
    let object = ObjectSpan {
        trim_offset: info.object_trim_offset,
        end: info.object_end,
        data_crc: object_crc,
    };
    Ok((copy, Place::Local { object, tail }))
}

/// Checks the header at the start of the object at `key`: `genesis`, and the trim offset
/// the object was uploaded with.
fn check_header(key: &ObjectPath, first: &[u8], genesis: [u8; 4], trim_offset: u32) -> Result<()> {
    let header = Header::decode(first, genesis).map_err(|reason| {
        remote_error(key, &format!("the object's header: {reason}: not hydrated"))
    })?;
    if header.trim_offset != trim_offset {
        return Err(remote_error(
            key,
            &format!(
                "the object's header says trim offset {}, the manifest records {trim_offset}: \
                 not hydrated",
                header.trim_offset
            ),
        ));
    }
    Ok(())
}

/// The bytes of the part at object offset `at` that the file keeps (its logical range,
/// within what the object holds), with the logical position of the first; `None` when it
/// keeps none of them.
fn kept_part(info: FileInfo, at: u64, part: &Bytes) -> Option<(u32, Bytes)> {
    // Object offset of logical position p: 24 + p - object trim offset.
    let offset = |p: u32| HEADER_LEN + u64::from(p - info.object_trim_offset);
    let (from, to) = (offset(info.trim_offset), offset(info.end));
    let (start, end) = (at.max(from), (at + part.len() as u64).min(to));
    if start >= end {
        return None;
    }
    let position = info.trim_offset + u32::try_from(start - from).expect("within a file");
    let within = |o: u64| usize::try_from(o - at).expect("within a part");
    Some((position, part.slice(within(start)..within(end))))
}

/// Writes `bytes` at logical `position` of `file` on a blocking thread.
async fn write_part(file: DataFile, position: u32, bytes: Bytes) -> Result<()> {
    blocking(move || {
        file.write(position, &bytes)
            .ctx("write temp file", file.path())
    })
    .await
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
