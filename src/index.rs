//! Item indexes: for a data file, where each item starts and ends, and its CRC32C.
//!
//! [`IndexFile`] is one `.idx` file (its layout: `format/index.rs`): created with its data
//! file, appended to with every commit, its commit slots written by the head's commits.
//! [`ItemTable`] is an index in memory, for reads that verify what they return and for
//! `locations`. [`verify_head`] is recovery's part: which of the head's commits the data
//! matches.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::datafile::DataFile;
use crate::error::{Error, IoContext, Result};
use crate::format::{
    decode_entries, encode_entries, entry_offset, Commit, Entry, IndexHeader, COMMIT_BYTES,
    ENTRIES_AT, ENTRY_BYTES, INDEX_HEADER_AT, INDEX_HEADER_BYTES,
};
use crate::fs::{Fs, FsFile};

/// An index in memory: the items of one data file from `first`, each as its end and CRC32C.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ItemTable {
    first: u32,
    /// Item entries only (no batch markers), in order.
    items: Vec<Entry>,
    /// How many entries of the index file (markers included) it was loaded from.
    raw: u32,
}

impl ItemTable {
    pub(crate) fn new(first: u32) -> ItemTable {
        ItemTable {
            first,
            items: Vec::new(),
            raw: 0,
        }
    }

    /// How many entries of the index file it holds, markers included.
    pub(crate) fn raw(&self) -> u32 {
        self.raw
    }

    /// Adds `entries`, entries number `from..` of the index file, skipping those it holds
    /// already (another reader loaded them first).
    pub(crate) fn extend_from(&mut self, from: u32, entries: &[Entry]) {
        let skip = self.raw.saturating_sub(from) as usize;
        if let Some(rest) = entries.get(skip..) {
            self.extend(rest);
        }
    }

    /// Counts the index as loaded up to `raw` entries (those it does not hold are not
    /// looked for again).
    pub(crate) fn mark_loaded(&mut self, raw: u32) {
        self.raw = self.raw.max(raw);
    }

    /// The table of `entries` (batch markers are dropped).
    #[cfg(test)]
    pub(crate) fn from_entries(first: u32, entries: &[Entry]) -> ItemTable {
        let mut t = ItemTable::new(first);
        t.extend(entries);
        t
    }

    /// Adds `entries` (batch markers are dropped).
    pub(crate) fn extend(&mut self, entries: &[Entry]) {
        for e in entries {
            if e.end > self.end() {
                self.items.push(*e);
            }
        }
        self.raw += u32::try_from(entries.len()).expect("fewer entries than u32");
    }

    /// One past the last indexed byte (`first` when empty).
    pub(crate) fn end(&self) -> u32 {
        self.items.last().map_or(self.first, |e| e.end)
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// The CRC32C of the item at exactly `[position, position + size)`, if that is one
    /// indexed item.
    pub(crate) fn crc_of(&self, position: u32, size: u32) -> Option<u32> {
        let end = u64::from(position) + u64::from(size);
        let i = self.first_ending_at(end);
        let e = self.items.get(i).filter(|e| u64::from(e.end) == end)?;
        let start = if i == 0 {
            self.first
        } else {
            self.items[i - 1].end
        };
        (start == position).then_some(e.crc)
    }

    /// The first item that ends at or after `end` (`len` when none does). Items are
    /// laid end to end, so a few interpolation steps narrow the search (with items of
    /// similar sizes the first probe lands on the item) and a binary search finishes it
    /// within a few cache lines, not the ~17 scattered probes of a binary search over
    /// 100,000 items, which a verified read paid on every call.
    fn first_ending_at(&self, end: u64) -> usize {
        let items = &self.items;
        // Every item before `lo` ends before `end`; every item from `hi` on, at or after.
        let (mut lo, mut hi) = (0usize, items.len());
        for _ in 0..4 {
            let n = hi - lo;
            if n <= 16 {
                break;
            }
            let start = if lo == 0 {
                u64::from(self.first)
            } else {
                u64::from(items[lo - 1].end)
            };
            let last = u64::from(items[hi - 1].end);
            if end <= start + 1 {
                return lo;
            }
            if end > last {
                return hi;
            }
            // Were the n items of equal size, item k of them would cover
            // (start + k * size, start + (k + 1) * size].
            let k = u128::from(end - start - 1) * n as u128 / u128::from(last - start);
            let g = lo + usize::try_from(k).map_or(n - 1, |k| k.min(n - 1));
            if u64::from(items[g].end) < end {
                lo = g + 1;
            } else {
                hi = g;
                // The answer is `g` when the item before it ends before `end`.
                if g == lo || u64::from(items[g - 1].end) < end {
                    return g;
                }
            }
        }
        lo + items[lo..hi].partition_point(|e| u64::from(e.end) < end)
    }

    /// Every item as `(position, size, crc)`, in order.
    #[cfg(test)]
    pub(crate) fn items(&self) -> impl Iterator<Item = (u32, u32, u32)> + '_ {
        let mut start = self.first;
        self.items.iter().map(move |e| {
            let item = (start, e.end - start, e.crc);
            start = e.end;
            item
        })
    }

    /// The stored range `[from, to)` of its file as pieces `(position, size, crc)`, in
    /// order: each indexed item wholly inside with its CRC32C, and each stretch no item
    /// covers (bytes another writer appended, the stored part of an item cut by an ltrim,
    /// bytes before the index starts) as one piece without.
    pub(crate) fn pieces(&self, from: u32, to: u32) -> Vec<(u32, u32, Option<u32>)> {
        let mut out = Vec::with_capacity(self.items.len() + 2);
        let mut at = from;
        let start = self.items.partition_point(|e| e.end <= from);
        let mut p = if start == 0 {
            self.first
        } else {
            self.items[start - 1].end
        };
        for e in &self.items[start..] {
            if e.end > to {
                break;
            }
            if p >= at {
                if p > at {
                    out.push((at, p - at, None));
                }
                out.push((p, e.end - p, Some(e.crc)));
            } else {
                // Cut by the trim offset: what is stored of it is unindexed.
                out.push((at, e.end - at, None));
            }
            at = e.end;
            p = e.end;
        }
        if at < to {
            out.push((at, to - at, None));
        }
        out
    }
}

/// How far ahead an index file is grown (zeros, 8,192 entries): so that most commits write
/// entries into bytes the file already has, and its sync need not record a new length.
const GROW: u64 = 64 << 10;

/// One `.idx` file. Its length runs ahead of its entries (zeros: an all-zero entry is
/// never a valid one, since items are not empty); the commits say how many there are.
#[derive(Debug, Clone)]
pub(crate) struct IndexFile {
    file: Arc<dyn FsFile>,
    path: PathBuf,
    header: IndexHeader,
    /// The file's length, as far as this handle knows (shared by its clones).
    len: Arc<AtomicU64>,
}

impl IndexFile {
    /// Creates `path` exclusively with its header (synced with `sync`).
    pub(crate) fn create(
        fs: &dyn Fs,
        path: &Path,
        header: IndexHeader,
        sync: bool,
    ) -> Result<IndexFile> {
        let file = fs.create_new(path).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Error::FilesInconsistency {
                    path: path.to_path_buf(),
                    reason: "index file should not exist yet".into(),
                }
            } else {
                Error::io("create index file", path, e)
            }
        })?;
        file.write_all_at(&header.encode(), INDEX_HEADER_AT)
            .ctx("write index header", path)?;
        if sync {
            file.sync_data().ctx("sync index file", path)?;
        }
        Ok(IndexFile {
            file,
            path: path.to_path_buf(),
            header,
            len: Arc::new(AtomicU64::new(ENTRIES_AT)),
        })
    }

    /// Opens `path` for writing and checks its header (`None` when the file does not
    /// exist, or holds no valid header).
    pub(crate) fn open(fs: &dyn Fs, path: &Path) -> Result<Option<IndexFile>> {
        Self::open_with(fs, path, true)
    }

    /// [`IndexFile::open`] for reading only.
    pub(crate) fn open_ro(fs: &dyn Fs, path: &Path) -> Result<Option<IndexFile>> {
        Self::open_with(fs, path, false)
    }

    fn open_with(fs: &dyn Fs, path: &Path, write: bool) -> Result<Option<IndexFile>> {
        let opened = if write {
            fs.open_rw(path)
        } else {
            fs.open_ro(path)
        };
        let file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open index file", path, e)),
        };
        let mut h = [0u8; INDEX_HEADER_BYTES];
        let n = file
            .read_up_to(&mut h, INDEX_HEADER_AT)
            .ctx("read index header", path)?;
        let len = file.len().ctx("stat index file", path)?;
        Ok(IndexHeader::decode(&h[..n]).map(|header| IndexFile {
            file,
            path: path.to_path_buf(),
            header,
            len: Arc::new(AtomicU64::new(len)),
        }))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn header(&self) -> IndexHeader {
        self.header
    }

    /// The valid commit slots, the newest first.
    pub(crate) fn commits(&self) -> Result<Vec<Commit>> {
        let mut raw = vec![0u8; 2 * COMMIT_BYTES];
        let n = self
            .file
            .read_up_to(&mut raw, 0)
            .ctx("read index commits", &self.path)?;
        Ok(Commit::slots(&raw[..n]))
    }

    /// The entries from number `from` to `to`, or (`None`) to the first all-zero one (the
    /// end of what was written).
    pub(crate) fn entries(&self, from: u32, to: Option<u32>) -> Result<Vec<Entry>> {
        let mut v = self.stored_entries(from, to)?;
        if to.is_none() {
            if let Some(z) = v.iter().position(|e| *e == Entry { end: 0, crc: 0 }) {
                v.truncate(z);
            }
        }
        Ok(v)
    }

    fn stored_entries(&self, from: u32, to: Option<u32>) -> Result<Vec<Entry>> {
        let len = self.file.len().ctx("stat index file", &self.path)?;
        let stored = len.saturating_sub(ENTRIES_AT) / ENTRY_BYTES as u64;
        let stored = u32::try_from(stored).unwrap_or(u32::MAX);
        let to = to.map_or(stored, |t| t.min(stored));
        if to <= from {
            return Ok(Vec::new());
        }
        let mut raw = vec![0u8; (to - from) as usize * ENTRY_BYTES];
        let n = self
            .file
            .read_up_to(&mut raw, entry_offset(from))
            .ctx("read index entries", &self.path)?;
        Ok(decode_entries(&raw[..n]))
    }

    /// Writes `entries` as entries number `at..`, growing the file ahead first when they
    /// would pass its end.
    pub(crate) fn write_entries(&self, at: u32, entries: &[Entry]) -> io::Result<()> {
        let end = entry_offset(at) + (entries.len() * ENTRY_BYTES) as u64;
        if end > self.len.load(Ordering::Relaxed) {
            let grown = end + GROW;
            self.file.set_len(grown)?;
            self.len.store(grown, Ordering::Relaxed);
        }
        self.file
            .write_all_at(&encode_entries(entries), entry_offset(at))
    }

    /// Writes a commit slot.
    pub(crate) fn write_commit(&self, commit: &Commit) -> io::Result<()> {
        self.file
            .write_all_at(&commit.encode(), commit.slot_offset())
    }

    /// Cuts the entries after the first `entries` (and the zeros ahead of them).
    pub(crate) fn truncate(&self, entries: u32) -> io::Result<()> {
        self.file.set_len(entry_offset(entries))?;
        self.len.store(entry_offset(entries), Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// The file, for a sync issued beside others.
    pub(crate) fn file(&self) -> &Arc<dyn FsFile> {
        &self.file
    }
}

/// The CRC32C of the data bytes `[from, to)` of `data`.
pub(crate) fn data_crc(data: &DataFile, from: u32, to: u32) -> Result<u32> {
    if from < data.trim_offset() || to < from {
        return Err(Error::state(format!(
            "{}: checksum of positions {from}..{to} below the trim offset {}",
            data.path().display(),
            data.trim_offset()
        )));
    }
    let mut crc = 0u32;
    let mut buf = vec![0u8; (1 << 20).min((to - from) as usize)];
    let mut pos = from;
    while pos < to {
        let n = ((to - pos) as usize).min(buf.len());
        data.read(pos, &mut buf[..n])
            .ctx("read data file", data.path())?;
        crc = crate::crc::crc32c_append(crc, &buf[..n]);
        pos += u32::try_from(n).expect("a buffer fits u32");
    }
    Ok(crc)
}

/// Cuts the index of `data` at logical `end` (an rtrim of the head): keeps the entries of
/// the first `entries` that end at or before it, and when an item is cut in two, indexes
/// its remaining bytes as an item of their own (with a batch marker), so that the index
/// still reaches `end` and the next batch's items start where their entries say. Returns
/// the entries after the cut. Idempotent: cutting a cut index again changes nothing.
///
/// # Errors
/// [`Error::Io`]; [`Error::InvalidDbState`] when the remaining bytes are not stored (an
/// ltrim past them): then nothing is written.
pub(crate) fn cut(idx: &IndexFile, data: &DataFile, entries: Option<u32>, end: u32) -> Result<u32> {
    let (mut n, last) = kept(idx, entries, end)?;
    if last < end {
        let crc = data_crc(data, last, end)?;
        let added = crate::format::batch_entries(last, [Entry { end, crc }]);
        idx.write_entries(n, &added)
            .ctx("write index file", idx.path())?;
        n += u32::try_from(added.len()).expect("two entries");
    }
    idx.truncate(n).ctx("truncate index file", idx.path())?;
    Ok(n)
}

/// The entries [`cut`] leaves, without writing anything; `None` when the index cannot be
/// cut there (it starts after `end`, or the bytes of the item cut in two are no longer
/// stored): the file needs a new index from `end`.
pub(crate) fn cut_len(
    idx: &IndexFile,
    data: &DataFile,
    entries: Option<u32>,
    end: u32,
) -> Result<Option<u32>> {
    if idx.header().first > end {
        return Ok(None);
    }
    let (n, last) = kept(idx, entries, end)?;
    Ok(if last == end {
        Some(n)
    } else if last < data.trim_offset() {
        None
    } else {
        Some(n + 2)
    })
}

/// How many of the first `entries` (all: `None`) end at or before `end`, and where the
/// last of them ends.
fn kept(idx: &IndexFile, entries: Option<u32>, end: u32) -> Result<(u32, u32)> {
    let all = idx.entries(0, entries)?;
    let kept = all.iter().take_while(|e| e.end <= end).count();
    let last = all[..kept].last().map_or(idx.header().first, |e| e.end);
    Ok((u32::try_from(kept).expect("fewer entries than u32"), last))
}

/// Where the head's committed data ends, as far as the checksums tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadCommit {
    pub(crate) end: u32,
    pub(crate) entries: u32,
}

/// Which commit of the head the files match: the newest commit slot whose batch matches
/// both of its checksums (else the other slot, else `baseline`, the state's record), then
/// every whole batch after it whose marker and items match (a batch written whole whose
/// slot was lost or damaged). `data_end` is where the data file ends now.
pub(crate) fn verify_head(
    data: &DataFile,
    data_end: u32,
    idx: &IndexFile,
    baseline: HeadCommit,
    check_sums: bool,
) -> Result<HeadCommit> {
    let mut committed = baseline;
    for c in idx.commits()? {
        // A commit no newer than the baseline tells nothing more (and a read-only handle,
        // whose baseline is the commit it knows, does not read its batch again).
        if c.entries < baseline.entries
            || c.end < baseline.end
            || (c.entries == baseline.entries && c.end == baseline.end)
            || c.end > data_end
            || c.prev_end < data.trim_offset()
        {
            continue;
        }
        if !check_sums {
            // The seeded bug `CommitChecksumNotChecked`.
            committed = HeadCommit {
                end: c.end,
                entries: c.entries,
            };
            break;
        }
        let entries = idx.entries(c.prev_entries, Some(c.entries))?;
        if entries.len() != (c.entries - c.prev_entries) as usize
            || crate::crc::crc32c(&encode_entries(&entries)) != c.entries_crc
            || c.prev_end > c.end
            || data_crc(data, c.prev_end, c.end)? != c.data_crc
        {
            continue;
        }
        committed = HeadCommit {
            end: c.end,
            entries: c.entries,
        };
        break;
    }
    // Whole batches after it.
    let rest = idx.entries(committed.entries, None)?;
    let mut at = 0;
    let mut end = committed.end;
    'batches: while at < rest.len() {
        let mut items = Vec::new();
        let mut e = end;
        while let Some(entry) = rest.get(at + items.len()) {
            if entry.end == e {
                // The marker.
                if entry.crc != crate::crc::crc32c(&encode_entries(&items)) || items.is_empty() {
                    break 'batches;
                }
                break;
            }
            if entry.end < e || entry.end > data_end {
                break 'batches;
            }
            e = entry.end;
            items.push(*entry);
        }
        if at + items.len() >= rest.len() {
            break; // no marker
        }
        let mut start = end;
        for item in &items {
            if data_crc(data, start, item.end)? != item.crc {
                break 'batches;
            }
            start = item.end;
        }
        at += items.len() + 1;
        end = e;
        committed = HeadCommit {
            end,
            entries: committed.entries + u32::try_from(items.len() + 1).expect("small"),
        };
    }
    Ok(committed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_look_up_finds_what_a_scan_finds() {
        // Tables of every length around the block size, items of sizes 1 to 3, every
        // range over and around them asked for.
        for len in [0u32, 1, 2, 15, 16, 17, 31, 32, 33, 100] {
            let first = 7;
            let mut entries = Vec::new();
            let mut end = first;
            for k in 0..len {
                end += 1 + (k * 7) % 3;
                entries.push(Entry { end, crc: k });
            }
            let t = ItemTable::from_entries(first, &entries);
            let items: Vec<_> = t.items().collect();
            for position in 0..end + 3 {
                for size in 0..8 {
                    let want = items
                        .iter()
                        .find(|&&(p, s, _)| p == position && s == size)
                        .map(|&(_, _, crc)| crc);
                    assert_eq!(t.crc_of(position, size), want, "{len} {position} {size}");
                }
            }
        }
    }

    proptest::proptest! {
        // Failures print the shrunk case; nothing is written next to the sources.
        #![proptest_config(proptest::test_runner::Config {
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        /// The interpolating look-up agrees with a binary search over the whole table, for
        /// tables of mixed, skewed and equal item sizes and ends near `u32::MAX`.
        #[test]
        fn the_look_up_agrees_with_a_binary_search(
            first in proptest::prop_oneof![0u32..1000, (u32::MAX - 400_000_000)..(u32::MAX - 300_000_000)],
            sizes in proptest::collection::vec(
                proptest::prop_oneof![4 => 1u32..3, 4 => 1000u32..1001, 1 => 1u32..100_000],
                0..3000,
            ),
            asks in proptest::collection::vec((0u64..1_000, 0u32..2_000_000), 50),
        ) {
            let mut entries = Vec::new();
            let mut end = first;
            for (k, size) in (0u32..).zip(&sizes) {
                end += size;
                entries.push(Entry { end, crc: k });
            }
            let t = ItemTable::from_entries(first, &entries);
            let last = u64::from(end);
            for &(a, b) in &asks {
                // Ends before, at and inside the table, and past it.
                for want_end in [a, u64::from(first) + a, last.saturating_sub(a), last + a, u64::from(first) + u64::from(b)] {
                    let want = t.items.partition_point(|e| u64::from(e.end) < want_end);
                    proptest::prop_assert_eq!(t.first_ending_at(want_end), want, "end {}", want_end);
                }
            }
        }
    }

    #[test]
    fn an_item_is_found_only_by_its_exact_range() {
        let t = ItemTable::from_entries(
            100,
            &[
                Entry { end: 110, crc: 1 },
                Entry { end: 130, crc: 2 },
                Entry { end: 130, crc: 99 }, // a batch marker
                Entry { end: 131, crc: 3 },
            ],
        );
        assert_eq!(t.len(), 3);
        assert_eq!(t.crc_of(100, 10), Some(1));
        assert_eq!(t.crc_of(110, 20), Some(2));
        assert_eq!(t.crc_of(130, 1), Some(3));
        assert_eq!(t.crc_of(100, 30), None, "two items");
        assert_eq!(t.crc_of(105, 5), None, "a sub-range");
        assert_eq!(t.crc_of(90, 20), None, "before the index");
        assert_eq!(t.crc_of(131, 5), None, "after it");
        assert_eq!(
            t.items().collect::<Vec<_>>(),
            vec![(100, 10, 1), (110, 20, 2), (130, 1, 3)]
        );
        assert_eq!(
            t.pieces(0, 140),
            vec![
                (0, 100, None),
                (100, 10, Some(1)),
                (110, 20, Some(2)),
                (130, 1, Some(3)),
                (131, 9, None)
            ],
            "unindexed stretches before and after"
        );
        assert_eq!(
            t.pieces(105, 130),
            vec![(105, 5, None), (110, 20, Some(2))],
            "an item cut by the trim offset is unindexed; one past the end is left out"
        );
        assert_eq!(t.pieces(100, 100), vec![]);
    }
}
