//! Uploading one sealed data file and verifying the object: the file is read in parts on
//! blocking threads (its CRC32C computed as it goes), put whole (one PUT up to
//! [`PART`] bytes, a multipart upload of `PART`-sized parts above), then the object's
//! length is checked and its bytes are read back and checked against the same CRC32C and
//! the file's header. Only a verified upload is handed to the store to be recorded.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{
    GetOptions, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, WriteMultipart,
};

use super::{remote_error, Remote};
use crate::catalog::FileInfo;
use crate::error::{Error, IoContext, Result};
use crate::format::{Header, HEADER_BYTES, HEADER_LEN};
use crate::fs::{seeded, FsFile};
use crate::reader::Files;
use crate::store::FileCopy;

/// The size of a single PUT at most, and of each part of a multipart upload (S3 wants
/// parts of at least 5 MiB, but the last).
pub(crate) const PART: u64 = 8 << 20;

/// Reads `len` bytes of `file` at `at` on a blocking thread.
async fn read_part(
    file: &Arc<dyn FsFile>,
    path: &std::path::Path,
    at: u64,
    len: u64,
) -> Result<Bytes> {
    let (file, path) = (Arc::clone(file), path.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; usize::try_from(len).expect("a part fits in memory")];
        file.read_exact_at(&mut buf, at)
            .ctx("read data file", &path)?;
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(|e| Error::state(format!("read task failed: {e}")))?
}

/// The running CRC32C of the data bytes of `part`, which starts at byte `at` of the file.
pub(super) fn crc_of_part(crc: u32, part: &[u8], at: u64) -> u32 {
    let skip = usize::try_from(HEADER_LEN.saturating_sub(at)).unwrap_or(usize::MAX);
    crate::crc::crc32c_append(crc, part.get(skip..).unwrap_or_default())
}

/// Uploads data file `index`, as the catalog has it at `info`, and verifies the object.
///
/// # Errors
/// [`Error::Remote`] when the object store fails or the object read back differs;
/// [`Error::Io`] reading the local file; [`Error::FilesInconsistency`] when the file's
/// header no longer says what the catalog does (it was replaced meanwhile).
pub(crate) async fn upload(
    remote: &Remote,
    files: &Files,
    index: u32,
    info: FileInfo,
) -> Result<FileCopy> {
    let store = remote.cfg.store.as_ref();
    let key = remote.key(&files.naming, index);
    let path = files.data_path(index);
    let size = HEADER_LEN + u64::from(info.end - info.trim_offset);
    let file = {
        let (fs, path) = (Arc::clone(&files.fs), path.clone());
        tokio::task::spawn_blocking(move || fs.open_ro(&path).ctx("open data file", &path))
            .await
            .map_err(|e| Error::state(format!("open task failed: {e}")))??
    };
    let first = read_part(&file, &path, 0, size.min(PART)).await?;
    let header =
        Header::decode(&first, files.genesis).map_err(|reason| Error::FilesInconsistency {
            path: path.clone(),
            reason,
        })?;
    if header.trim_offset != info.trim_offset {
        return Err(Error::FilesInconsistency {
            path,
            reason: format!(
                "its header says trim offset {}, the catalog {} (replaced while uploaded)",
                header.trim_offset, info.trim_offset
            ),
        });
    }
    let local_header = first.slice(..HEADER_BYTES);
    let mut crc = crc_of_part(0, &first, 0);
    if size <= PART {
        let _permit = remote
            .requests
            .acquire()
            .await
            .map_err(|_| Error::NotRunning)?;
        store
            .put_opts(&key, PutPayload::from(first), PutOptions::default())
            .await
            .map_err(|e| remote_error(&key, &e))?;
    } else {
        let up = store
            .put_multipart_opts(&key, PutMultipartOptions::default())
            .await
            .map_err(|e| remote_error(&key, &e))?;
        let mut w = WriteMultipart::new_with_chunk_size(up, usize::try_from(PART).expect("8 MiB"));
        w.put(first);
        let mut at = PART;
        let parts = remote.cfg.concurrency;
        let written: Result<()> = async {
            while at < size {
                let part = read_part(&file, &path, at, (size - at).min(PART)).await?;
                crc = crc_of_part(crc, &part, at);
                at += part.len() as u64;
                w.wait_for_capacity(parts)
                    .await
                    .map_err(|e| remote_error(&key, &e))?;
                w.put(part);
            }
            Ok(())
        }
        .await;
        if let Err(e) = written {
            let _ = w.abort().await;
            return Err(e);
        }
        w.finish().await.map_err(|e| remote_error(&key, &e))?;
    }
    if !seeded!(files.fs, TrustUnverifiedUpload) {
        verify(remote, &key, size, &local_header, crc).await?;
    }
    Ok(FileCopy {
        index,
        trim_offset: info.trim_offset,
        end: info.end,
        data_crc: crc,
        size,
    })
}

/// Checks that the object at `key` is `size` bytes long, starts with `header` and that its
/// data bytes have CRC32C `crc`: one GET of the whole object, its body checked as it
/// streams in (one request per file, whatever its size; ranged GETs of parts would cost a
/// request each, and servers such as moto read the whole object for each).
async fn verify(
    remote: &Remote,
    key: &ObjectPath,
    size: u64,
    header: &[u8],
    crc: u32,
) -> Result<()> {
    use futures_util::StreamExt as _;
    let store: &dyn ObjectStore = remote.cfg.store.as_ref();
    let _permit = remote
        .requests
        .acquire()
        .await
        .map_err(|_| Error::NotRunning)?;
    let got = store
        .get_opts(key, GetOptions::default())
        .await
        .map_err(|e| remote_error(key, &e))?;
    let long = |n: u64| {
        remote_error(
            key,
            &format!("the uploaded object is {n} bytes long, the file {size}: not recorded"),
        )
    };
    if got.meta.size != size {
        return Err(long(got.meta.size));
    }
    let mut body = got.into_stream();
    let (mut sum, mut at) = (0u32, 0u64);
    let mut start = Vec::with_capacity(HEADER_BYTES);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| remote_error(key, &e))?;
        if at + chunk.len() as u64 > size {
            return Err(long(at + chunk.len() as u64));
        }
        let want = HEADER_BYTES - start.len();
        start.extend_from_slice(&chunk[..want.min(chunk.len())]);
        sum = crc_of_part(sum, &chunk, at);
        at += chunk.len() as u64;
    }
    if at != size {
        return Err(remote_error(
            key,
            &format!("the uploaded object's body ended after {at} bytes of {size}: not recorded"),
        ));
    }
    if start != header {
        return Err(remote_error(
            key,
            &"the uploaded object's header differs from the file's: not recorded",
        ));
    }
    if sum != crc {
        return Err(remote_error(
            key,
            &format!(
                "the uploaded object's data have CRC32C {sum:08x}, the file's {crc:08x}: not \
                 recorded"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crc_of_parts_skips_the_header_once() {
        let file: Vec<u8> = (0..100u8).collect();
        let whole = crate::crc::crc32c(&file[24..]);
        let mut crc = 0;
        for (n, part) in file.chunks(10).enumerate() {
            crc = crc_of_part(crc, part, n as u64 * 10);
        }
        assert_eq!(crc, whole);
        assert_eq!(crc_of_part(0, &file, 0), whole);
    }
}
