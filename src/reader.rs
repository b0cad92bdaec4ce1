//! Disk reads: an open-file cache keyed by index and catalog generation, so a read of a
//! file that was replaced (ltrim) or shrunk never uses a stale handle or trim offset.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::catalog::FileInfo;
use crate::format::{Header, HEADER_BYTES, HEADER_LEN};
use crate::fs::{Fs, FsFile};
use crate::location::ItemLocation;

const MAX_OPEN_FILES: usize = 64;

#[derive(Debug)]
struct Cached {
    generation: u64,
    trim_offset: u32,
    file: Arc<dyn FsFile>,
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
        if loc.position < cached.trim_offset {
            return Some(Ok(None));
        }
        let mut buf = vec![0u8; loc.size as usize];
        let offset = HEADER_LEN + u64::from(loc.position - cached.trim_offset);
        match cached.file.read_cached_at(&mut buf, offset) {
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
    ) -> io::Result<Option<Bytes>> {
        let cached = if let Some(c) = self.get(loc.index, info.generation) {
            c
        } else {
            let file = match fs.open_ro(path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut h = [0u8; HEADER_BYTES];
            match file.read_exact_at(&mut h, 0) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
            let header = Header::decode(&h, genesis)
                .map_err(|r| io::Error::new(io::ErrorKind::InvalidData, r))?;
            let c = Arc::new(Cached {
                generation: info.generation,
                trim_offset: header.trim_offset,
                file,
            });
            self.put(loc.index, Arc::clone(&c));
            c
        };
        if loc.position < cached.trim_offset {
            return Ok(None);
        }
        let mut buf = vec![0u8; loc.size as usize];
        let offset = HEADER_LEN + u64::from(loc.position - cached.trim_offset);
        match cached.file.read_exact_at(&mut buf, offset) {
            Ok(()) => Ok(Some(Bytes::from(buf))),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }
}
