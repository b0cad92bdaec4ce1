//! Disk reads: an open-file cache keyed by index and catalog generation, so a read of a
//! file that was replaced (ltrim) or shrunk never uses a stale handle or trim offset; and
//! with each file, its item table (`index.rs`), loaded as far as the catalog says the item
//! index is committed, so that a read of exactly one indexed item checks its CRC32C.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytes::Bytes;

use crate::catalog::FileInfo;
use crate::datafile::{Access, DataFile};
use crate::error::{Error, IoContext, Result};
use crate::format::Naming;
use crate::fs::Fs;
use crate::index::{IndexFile, ItemTable};
use crate::location::ItemLocation;

const MAX_OPEN_FILES: usize = 64;

#[derive(Debug)]
struct Cached {
    generation: u64,
    file: DataFile,
    /// The item index, opened when first needed (`None`: missing or not valid: the items
    /// are served unchecked, and `verify` reports it).
    idx: OnceLock<Option<IndexFile>>,
    /// The items loaded so far (a head's grows with its commits).
    table: RwLock<ItemTable>,
}

/// Where a reader finds the files of a directory.
#[derive(Debug, Clone)]
pub(crate) struct Files {
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) dir: PathBuf,
    pub(crate) naming: Naming,
    pub(crate) genesis: [u8; 4],
}

impl Files {
    pub(crate) fn data_path(&self, index: u32) -> PathBuf {
        self.dir.join(self.naming.data_file(index))
    }

    pub(crate) fn index_path(&self, index: u32) -> PathBuf {
        self.dir.join(self.naming.index_file(index))
    }

    /// The item table of `index` as committed at `info`, from its item index alone (a file
    /// on object storage; blocking). Without a valid index: an empty table (its items are
    /// served unchecked).
    pub(crate) fn table_of(&self, index: u32, info: FileInfo) -> Result<ItemTable> {
        let Some(idx) = self.open_index(index)? else {
            return Ok(ItemTable::new(0));
        };
        let entries = idx.entries(0, Some(info.entries))?;
        let mut t = ItemTable::new(idx.header().first);
        t.extend(&entries);
        Ok(t)
    }

    /// The item index of `index`, if it is there and valid for it.
    pub(crate) fn open_index(&self, index: u32) -> Result<Option<IndexFile>> {
        Ok(
            IndexFile::open_ro(self.fs.as_ref(), &self.index_path(index))?
                .filter(|i| i.header().index == index && i.header().genesis == self.genesis),
        )
    }
}

/// Read handles of data files, and their item tables.
#[derive(Debug)]
pub(crate) struct ReadCache {
    files: Files,
    verify: bool,
    cache: Mutex<HashMap<u32, Arc<Cached>>>,
}

/// Bytes read, and whether a CRC32C vouched for them.
pub(crate) type Got = Option<(Bytes, bool)>;

/// Whether `bytes`, read at `loc`, are what the table recorded: `Ok(true)` when `loc` is
/// exactly one indexed item and they match, `Ok(false)` when no CRC covers `loc`.
#[cfg(feature = "tiering")]
pub(crate) fn check(table: &ItemTable, loc: ItemLocation, bytes: &[u8]) -> Result<bool> {
    table
        .crc_of(loc.position, loc.size)
        .map_or(Ok(false), |want| {
            verdict(want, crate::crc::crc32c(bytes), loc)
        })
}

/// `Ok(true)` when the CRC32C `got` of the bytes read at `loc` is the recorded `want`.
fn verdict(want: u32, got: u32, loc: ItemLocation) -> Result<bool> {
    if got == want {
        Ok(true)
    } else {
        Err(Error::Corrupted {
            location: loc,
            reason: format!("its CRC32C is {got:08x}, the item index recorded {want:08x}"),
        })
    }
}

impl ReadCache {
    pub(crate) fn new(files: Files, verify: bool) -> ReadCache {
        ReadCache {
            files,
            verify,
            cache: Mutex::default(),
        }
    }

    /// Where the files are.
    pub(crate) fn files(&self) -> &Files {
        &self.files
    }

    fn get(&self, index: u32, generation: u64) -> Option<Arc<Cached>> {
        let files = self.cache.lock().expect("read cache lock");
        files
            .get(&index)
            .filter(|c| c.generation == generation)
            .cloned()
    }

    fn put(&self, index: u32, entry: Arc<Cached>) {
        let mut files = self.cache.lock().expect("read cache lock");
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
        self.cache.lock().expect("read cache lock").remove(&index);
    }

    /// `buf`, read at `loc` in `info`, checked against its item's CRC32C: the bytes, and
    /// whether a CRC32C vouched for them (not when reads are not verified, or no indexed
    /// item is exactly `loc`). `None` when it must be checked and the table is not loaded
    /// that far.
    ///
    /// The entry is looked up and the bytes summed under one hold of the table's lock,
    /// after the read: the look-up's load of the entry (a cache miss in a large table) and
    /// the summing overlap, where summing after the release would wait for the load (the
    /// release is a locked instruction) and looking up before the read would wait for it
    /// at the system call.
    fn checked(
        &self,
        cached: &Cached,
        loc: ItemLocation,
        info: FileInfo,
        buf: Vec<u8>,
    ) -> Option<Result<Got>> {
        if !self.verify || info.entries == 0 {
            return Some(Ok(Some((Bytes::from(buf), false))));
        }
        let table = cached.table.read().expect("table lock");
        if table.raw() < info.entries {
            return None;
        }
        let sums = table
            .crc_of(loc.position, loc.size)
            .map(|want| (want, crate::crc::crc32c(&buf)));
        drop(table);
        let vouched = match sums {
            None => Ok(false),
            Some((want, got)) => verdict(want, got, loc),
        };
        Some(vouched.map(|v| Some((Bytes::from(buf), v))))
    }

    /// Loads the entries of `cached`'s item index up to `info.entries` (blocking).
    fn load_table(&self, index: u32, cached: &Cached, info: FileInfo) -> Result<()> {
        let idx = if let Some(idx) = cached.idx.get() {
            idx
        } else {
            let opened = self.files.open_index(index)?;
            cached.idx.get_or_init(|| opened)
        };
        let have = cached.table.read().expect("table lock").raw();
        if have >= info.entries {
            return Ok(());
        }
        let entries = match idx {
            Some(idx) => idx.entries(have, Some(info.entries))?,
            None => Vec::new(),
        };
        let mut table = cached.table.write().expect("table lock");
        if table.raw() == 0 && table.len() == 0 {
            if let Some(idx) = idx {
                *table = ItemTable::new(idx.header().first);
            }
        }
        table.extend_from(have, &entries);
        // Entries the index does not hold (cut, or gone) are not waited for again.
        table.mark_loaded(info.entries);
        Ok(())
    }

    /// Reads `loc` without blocking if its file is open here, its table is loaded and the
    /// page cache holds all of its bytes. `None` when that is not so: the caller goes to
    /// [`ReadCache::read`] on a blocking thread.
    pub(crate) fn read_cached(&self, loc: ItemLocation, info: FileInfo) -> Option<Result<Got>> {
        let cached = self.get(loc.index, info.generation)?;
        if loc.position < cached.file.trim_offset() {
            return Some(Ok(None));
        }
        let mut buf = vec![0u8; loc.size as usize];
        match cached.file.read_cached(loc.position, &mut buf) {
            // A table not loaded that far (the first read of a file, or of a commit's
            // items) sends the read to the blocking path, which loads it and reads again.
            Ok(true) => self.checked(&cached, loc, info, buf),
            Ok(false) => None,
            Err(e) => Some(Err(Error::io(
                "read data file",
                self.files.data_path(loc.index),
                e,
            ))),
        }
    }

    /// The handle (and table) of `index` at `info`'s generation; `None` when the file is
    /// gone. Blocking.
    fn cached(&self, index: u32, info: FileInfo) -> Result<Option<Arc<Cached>>> {
        if let Some(c) = self.get(index, info.generation) {
            return Ok(Some(c));
        }
        let path = self.files.data_path(index);
        let file = match DataFile::open(
            self.files.fs.as_ref(),
            &path,
            self.files.genesis,
            Access::Read,
        ) {
            Ok((f, _)) => f,
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let c = Arc::new(Cached {
            generation: info.generation,
            file,
            idx: OnceLock::new(),
            table: RwLock::new(ItemTable::new(0)),
        });
        self.put(index, Arc::clone(&c));
        Ok(Some(c))
    }

    /// Reads `loc` from its data file, checking it against its item index; blocking.
    /// `None` when the bytes are not stored (the file is gone, shorter, or trimmed past
    /// the position).
    pub(crate) fn read(&self, loc: ItemLocation, info: FileInfo) -> Result<Got> {
        let Some(cached) = self.cached(loc.index, info)? else {
            return Ok(None);
        };
        if loc.position < cached.file.trim_offset() {
            return Ok(None);
        }
        if self.verify && cached.table.read().expect("table lock").raw() < info.entries {
            self.load_table(loc.index, &cached, info)?;
        }
        let mut buf = vec![0u8; loc.size as usize];
        match cached.file.read(loc.position, &mut buf) {
            Ok(()) => self
                .checked(&cached, loc, info, buf)
                .expect("the table is loaded up to the entries"),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e).ctx("read data file", &self.files.data_path(loc.index)),
        }
    }

    /// The item table of `index` as committed at `info` (blocking): what `locations` and
    /// `verify` walk.
    pub(crate) fn table(&self, index: u32, info: FileInfo) -> Result<Option<ItemTable>> {
        if info.remote {
            return self.files.table_of(index, info).map(Some);
        }
        let Some(cached) = self.cached(index, info)? else {
            return Ok(None);
        };
        if cached.table.read().expect("table lock").raw() < info.entries {
            self.load_table(index, &cached, info)?;
        }
        let t = cached.table.read().expect("table lock").clone();
        Ok(Some(t))
    }
}
