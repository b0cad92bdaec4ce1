//! One data file: created with its header, opened and validated, logical positions mapped
//! to file offsets, ranges read, appended, truncated, synced. Every access to the bytes of
//! a data file goes through [`DataFile`] (the store, recovery, the reader, inspection);
//! `format.rs` owns the layout it follows.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::format::{data_offset, invalid_file, Header, HEADER_BYTES, HEADER_LEN};
use crate::fs::{Fs, FsFile};

/// Data is written in pieces of this size, each handed to writeback at once.
const WRITEBACK_CHUNK: usize = 1 << 20;

/// What a data file holds, from its header and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    /// Logical position of the first stored byte (the header's trim offset).
    pub(crate) trim_offset: u32,
    /// Logical end: one past the last stored byte.
    pub(crate) end: u32,
    /// The file's length, header included.
    pub(crate) len: u64,
}

/// How a data file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// An open data file whose header was checked.
#[derive(Debug, Clone)]
pub(crate) struct DataFile {
    file: Arc<dyn FsFile>,
    path: PathBuf,
    trim_offset: u32,
}

impl DataFile {
    /// Creates `path` exclusively with a header holding `trim_offset` (synced with `sync`).
    ///
    /// # Errors
    /// [`Error::FilesInconsistency`] if the file exists; [`Error::Io`].
    pub(crate) fn create(
        fs: &dyn Fs,
        path: &Path,
        genesis: [u8; 4],
        trim_offset: u32,
        sync: bool,
    ) -> Result<DataFile> {
        let file = fs.create_new(path).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Error::FilesInconsistency {
                    path: path.to_path_buf(),
                    reason: "file should not exist yet".into(),
                }
            } else {
                Error::io("create data file", path, e)
            }
        })?;
        let header = Header {
            genesis,
            trim_offset,
        };
        file.write_all_at(&header.encode(), 0)
            .ctx("write header", path)?;
        if sync {
            file.sync_data().ctx("sync data file", path)?;
        }
        Ok(DataFile {
            file,
            path: path.to_path_buf(),
            trim_offset,
        })
    }

    /// Opens `path` and checks its header against `genesis` and its length against the
    /// `u32` positions.
    ///
    /// # Errors
    /// [`Error::InvalidDataFile`] naming what is wrong; [`Error::Io`] (`NotFound` when the
    /// file does not exist).
    pub(crate) fn open(
        fs: &dyn Fs,
        path: &Path,
        genesis: [u8; 4],
        access: Access,
    ) -> Result<(DataFile, Extent)> {
        let file = match access {
            Access::Read => fs.open_ro(path),
            Access::Write => fs.open_rw(path),
        }
        .ctx("open data file", path)?;
        let mut h = [0u8; HEADER_BYTES];
        let n = file.read_up_to(&mut h, 0).ctx("read header", path)?;
        let header = Header::decode(&h[..n], genesis).map_err(|r| invalid_file(path, r))?;
        let f = DataFile {
            file,
            path: path.to_path_buf(),
            trim_offset: header.trim_offset,
        };
        let extent = f.extent()?;
        Ok((f, extent))
    }

    /// Opens for writing the data file at `path` that recovery has just checked (its
    /// header holds `trim_offset`), without reading the header again.
    pub(crate) fn open_checked(fs: &dyn Fs, path: &Path, trim_offset: u32) -> Result<DataFile> {
        Ok(DataFile {
            file: fs.open_rw(path).ctx("open head file", path)?,
            path: path.to_path_buf(),
            trim_offset,
        })
    }

    /// The header and the length as they are now.
    ///
    /// # Errors
    /// [`Error::InvalidDataFile`] when the stored bytes pass the `u32` position limit.
    pub(crate) fn extent(&self) -> Result<Extent> {
        let len = self.file.len().ctx("stat data file", &self.path)?;
        let stored = len.saturating_sub(HEADER_LEN);
        let end = u32::try_from(u64::from(self.trim_offset) + stored).map_err(|_| {
            invalid_file(
                &self.path,
                format!(
                    "trim offset {} plus {stored} item bytes passes the u32 position limit",
                    self.trim_offset
                ),
            )
        })?;
        Ok(Extent {
            trim_offset: self.trim_offset,
            end,
            len,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file, for a sync issued beside others.
    pub(crate) fn file(&self) -> &Arc<dyn FsFile> {
        &self.file
    }

    /// Logical position of the first stored byte.
    pub(crate) fn trim_offset(&self) -> u32 {
        self.trim_offset
    }

    /// The file's length when it ends at logical `end`.
    pub(crate) fn len_at(&self, end: u32) -> u64 {
        data_offset(end, self.trim_offset)
    }

    /// Reads the bytes at logical `position` into `buf` (`UnexpectedEof` past the end).
    pub(crate) fn read(&self, position: u32, buf: &mut [u8]) -> io::Result<()> {
        self.file
            .read_exact_at(buf, data_offset(position, self.trim_offset))
    }

    /// [`DataFile::read`] if the page cache holds every byte, without blocking; `false`
    /// when it does not (see [`FsFile::read_cached_at`]).
    pub(crate) fn read_cached(&self, position: u32, buf: &mut [u8]) -> io::Result<bool> {
        self.file
            .read_cached_at(buf, data_offset(position, self.trim_offset))
    }

    /// The 8 bytes before logical `end` (they reach into the header for a nearly empty
    /// file): what a Python checkpoint entry records.
    pub(crate) fn tail(&self, end: u32) -> io::Result<[u8; 8]> {
        let mut tail = [0u8; 8];
        self.file.read_exact_at(&mut tail, self.len_at(end) - 8)?;
        Ok(tail)
    }

    /// The last 8 bytes this file would have if the bytes before logical `trim_offset`
    /// (at or above the file's own) were removed, as an ltrim's new file holds them, and it
    /// ended at logical `end`: with fewer than 8 item bytes kept they start in the header of
    /// that file (`genesis`, `trim_offset`). With the file's own trim offset, [`DataFile::tail`].
    pub(crate) fn tail_trimmed(
        &self,
        genesis: [u8; 4],
        trim_offset: u32,
        end: u32,
    ) -> io::Result<[u8; 8]> {
        debug_assert!(self.trim_offset <= trim_offset && trim_offset <= end);
        let kept_u32 = (end - trim_offset).min(8);
        let kept = kept_u32 as usize;
        let mut tail = [0u8; 8];
        let header = Header {
            genesis,
            trim_offset,
        }
        .encode();
        tail[..8 - kept].copy_from_slice(&header[HEADER_BYTES - (8 - kept)..]);
        self.read(end - kept_u32, &mut tail[8 - kept..])?;
        Ok(tail)
    }

    /// Writes `data` at logical `position`. A large write goes in 1 MiB pieces, each
    /// followed by a writeback hint, so that the disk writes while the rest is copied
    /// (without it, a 16 MiB batch was copied whole, then synced whole: about 0.6 of the
    /// speed on the development VM). Small writes are one write, with no hint.
    pub(crate) fn write(&self, position: u32, data: &[u8]) -> io::Result<()> {
        let offset = data_offset(position, self.trim_offset);
        if data.len() <= WRITEBACK_CHUNK {
            return self.file.write_all_at(data, offset);
        }
        let mut at = offset;
        for piece in data.chunks(WRITEBACK_CHUNK) {
            self.file.write_all_at(piece, at)?;
            self.file.start_writeback(at, piece.len() as u64);
            at += piece.len() as u64;
        }
        Ok(())
    }

    /// Cuts the file at logical `end`.
    pub(crate) fn truncate(&self, end: u32) -> io::Result<()> {
        self.file.set_len(self.len_at(end))
    }

    /// Makes the file's data durable.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Copies the bytes from logical `from` to `end` into `dst` (a fresh file whose trim
    /// offset is `from`), in 1 MiB pieces; returns their CRC32C.
    pub(crate) fn copy_to(&self, dst: &DataFile, from: u32, end: u32) -> Result<u32> {
        let mut crc = 0;
        let mut chunk = vec![0u8; WRITEBACK_CHUNK];
        let mut pos = from;
        while pos < end {
            let n = usize::try_from(end - pos)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            self.read(pos, &mut chunk[..n])
                .ctx("read data file", &self.path)?;
            dst.write(pos, &chunk[..n])
                .ctx("write temp file", &dst.path)?;
            crc = crate::crc::crc32c_append(crc, &chunk[..n]);
            pos += u32::try_from(n).expect("a chunk fits u32");
        }
        Ok(crc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sim::SimFs;

    #[test]
    fn positions_map_past_the_header_and_the_trim_offset() {
        let fs = SimFs::new();
        let path = Path::new("/d/data00000.dat");
        let f = DataFile::create(&fs, path, *b"abcd", 100, true).unwrap();
        f.write(100, b"hello world").unwrap();
        let mut buf = [0u8; 5];
        f.read(106, &mut buf).unwrap();
        assert_eq!(&buf, b"world");
        assert_eq!(f.len_at(111), 24 + 11);
        assert_eq!(&f.tail(111).unwrap(), b"lo world");
        let (g, extent) = DataFile::open(&fs, path, *b"abcd", Access::Read).unwrap();
        assert_eq!(
            extent,
            Extent {
                trim_offset: 100,
                end: 111,
                len: 35
            }
        );
        assert_eq!(g.trim_offset(), 100);
        f.truncate(105).unwrap();
        assert_eq!(g.extent().unwrap().end, 105);
        assert!(matches!(
            DataFile::open(&fs, path, *b"abce", Access::Read),
            Err(Error::InvalidDataFile { .. })
        ));
    }

    /// The tail an ltrim's new file will have, read from the file before the ltrim, is the
    /// new file's last 8 bytes, for every trim offset (those keeping fewer than 8 item
    /// bytes end in header bytes).
    #[test]
    fn tail_trimmed_is_the_tail_of_the_ltrimmed_file() {
        let fs = SimFs::new();
        let f = DataFile::create(&fs, Path::new("/d/a"), *b"abcd", 3, true).unwrap();
        f.write(3, b"0123456789abc").unwrap();
        let end = 16;
        assert_eq!(
            f.tail_trimmed(*b"abcd", 3, end).unwrap(),
            f.tail(end).unwrap()
        );
        for to in 3..=end {
            let path = PathBuf::from(format!("/d/b{to}"));
            let g = DataFile::create(&fs, &path, *b"abcd", to, true).unwrap();
            f.copy_to(&g, to, end).unwrap();
            assert_eq!(
                f.tail_trimmed(*b"abcd", to, end).unwrap(),
                g.tail(end).unwrap(),
                "trim offset {to}"
            );
        }
    }
}
