//! Disk reads: an open-file cache keyed by index and catalog generation, so a read of a
//! file that was replaced (ltrim) or shrunk never uses a stale handle or trim offset.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::catalog::FileInfo;
use crate::datafile::{Access, DataFile};
use crate::error::{Error, IoContext, Result};
use crate::fs::Fs;
use crate::location::ItemLocation;

const MAX_OPEN_FILES: usize = 64;

#[derive(Debug)]
struct Cached {
    generation: u64,
    file: DataFile,
}

/// Read handles of data files.
#[derive(Debug, Default)]
pub(crate) struct ReadCache {
    files: Mutex<HashMap<u32, Arc<Cached>>>,
}

impl ReadCache {
    fn get(&self, index: u32, generation: u64) -> Option<Arc<Cached>> {
        let files = self.files.lock().expect("read cache lock");
        files
            .get(&index)
            .filter(|c| c.generation == generation)
            .cloned()
    }

    fn put(&self, index: u32, entry: Arc<Cached>) {
        let mut files = self.files.lock().expect("read cache lock");
        if files.len() >= MAX_OPEN_FILES && !files.contains_key(&index) {
            if let Some(&victim) = files.keys().next() {
                files.remove(&victim);
            }
        }
        match files.get(&index) {
            Some(c) if c.generation > entry.generation => {}
            _ => {
                files.insert(index, entry);
            }
        }
    }

    /// Forgets the handle of `index` (after it was replaced or removed).
    pub(crate) fn evict(&self, index: u32) {
        self.files.lock().expect("read cache lock").remove(&index);
    }

    /// Reads `loc` without blocking if its file is open here and the page cache holds all
    /// of its bytes. `None` when that is not so: the caller goes to [`ReadCache::read`]
    /// on a blocking thread.
    pub(crate) fn read_cached(
        &self,
        loc: ItemLocation,
        info: FileInfo,
    ) -> Option<io::Result<Option<Bytes>>> {
        let cached = self.get(loc.index, info.generation)?;
        if loc.position < cached.file.trim_offset() {
            return Some(Ok(None));
        }
        let mut buf = vec![0u8; loc.size as usize];
        match cached.file.read_cached(loc.position, &mut buf) {
            Ok(true) => Some(Ok(Some(Bytes::from(buf)))),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// Reads `loc` from its data file; blocking. `None` when the bytes are not stored
    /// (the file is gone, shorter, or trimmed past the position).
    pub(crate) fn read(
        &self,
        fs: &dyn Fs,
        path: &Path,
        genesis: [u8; 4],
        loc: ItemLocation,
        info: FileInfo,
    ) -> Result<Option<Bytes>> {
        let cached = if let Some(c) = self.get(loc.index, info.generation) {
            c
        } else {
            let file = match DataFile::open(fs, path, genesis, Access::Read) {
                Ok((f, _)) => f,
                Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            };
            let c = Arc::new(Cached {
                generation: info.generation,
                file,
            });
            self.put(loc.index, Arc::clone(&c));
            c
        };
        if loc.position < cached.file.trim_offset() {
            return Ok(None);
        }
        let mut buf = vec![0u8; loc.size as usize];
        match cached.file.read(loc.position, &mut buf) {
            Ok(()) => Ok(Some(Bytes::from(buf))),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e).ctx("read data file", path),
        }
    }
}
