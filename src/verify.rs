//! `verify`: every stored byte read once, in order, each indexed item's CRC32C checked
//! against its item index; what cannot be checked (bytes another writer appended) is
//! counted, and every item that is altered or gone is reported by location. It changes
//! nothing.
//!
//! One file at a time, read sequentially in large pieces (no syscall per item): the CRC of
//! each item is carried across piece boundaries.

use std::io;

use crate::catalog::FileInfo;
use crate::datafile::{Access, DataFile};
use crate::error::{Error, Result};
use crate::index::ItemTable;
use crate::location::ItemLocation;
use crate::reader::Files;

/// How much of a file is read at once.
const PIECE: usize = 4 << 20;

/// What [`AioDiskDb::verify`](crate::AioDiskDb::verify) found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verification {
    /// Data files read.
    pub files: u64,
    /// Indexed items whose bytes were checked against their CRC32C (matching or not).
    pub items_checked: u64,
    /// Stored bytes read, indexed or not.
    pub bytes_checked: u64,
    /// Stored bytes no item index covers (written by the Python library, or by a version
    /// of ours from before item indexes): read, but not checkable.
    pub unindexed_bytes: u64,
    /// Data files on object storage (feature `tiering`), not downloaded (each was checked
    /// against its recorded checksum when it was uploaded, and every remote read checks
    /// its item's CRC32C): each object's presence and length are checked (one HEAD), a
    /// missing object or one of another length being a problem of the file.
    pub remote_files: u64,
    /// Everything wrong, in file and position order.
    pub problems: Vec<Damage>,
}

impl Verification {
    /// Whether nothing is corrupt, missing or inconsistent.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One thing [`AioDiskDb::verify`](crate::AioDiskDb::verify) found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Damage {
    /// The data file concerned.
    pub index: u32,
    /// The item (or unindexed range) concerned; `None` for a file-level problem.
    pub location: Option<ItemLocation>,
    /// What kind of problem.
    pub kind: DamageKind,
    /// What is wrong, for a person.
    pub message: String,
}

/// The kinds of [`Damage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DamageKind {
    /// The bytes differ from the CRC32C recorded for them (or their index entry was
    /// altered): a read of the item fails with [`Error::Corrupted`].
    Corrupt,
    /// Committed bytes that are no longer stored (the file was cut or deleted).
    Missing,
    /// The files disagree with what was committed (an item index missing or cut, a
    /// header altered, bytes past a sealed file's end).
    Inconsistent,
}

impl DamageKind {
    /// Its name in reports: `corrupt`, `missing` or `inconsistent`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DamageKind::Corrupt => "corrupt",
            DamageKind::Missing => "missing",
            DamageKind::Inconsistent => "inconsistent",
        }
    }
}

fn damage(index: u32, location: Option<ItemLocation>, kind: DamageKind, message: String) -> Damage {
    Damage {
        index,
        location,
        kind,
        message,
    }
}

fn loc(index: u32, position: u32, size: u32) -> ItemLocation {
    ItemLocation {
        index,
        position,
        size,
    }
}

/// The item table of `index` as committed (`info.entries` entries), with any problem of
/// the index itself.
fn committed_table(
    files: &Files,
    index: u32,
    info: FileInfo,
    out: &mut Verification,
) -> Result<ItemTable> {
    if info.entries == 0 {
        return Ok(ItemTable::new(info.end));
    }
    let Some(idx) = files.open_index(index)? else {
        out.problems.push(damage(
            index,
            None,
            DamageKind::Inconsistent,
            format!(
                "the item index {} is missing or damaged: its items cannot be checked",
                files.index_path(index).display()
            ),
        ));
        return Ok(ItemTable::new(info.end));
    };
    let entries = idx.entries(0, Some(info.entries))?;
    if entries.len() < info.entries as usize {
        out.problems.push(damage(
            index,
            None,
            DamageKind::Inconsistent,
            format!(
                "the item index {} was cut: it holds {} of {} committed entries",
                idx.path().display(),
                entries.len(),
                info.entries
            ),
        ));
    }
    let mut table = ItemTable::new(idx.header().first);
    table.extend(&entries);
    Ok(table)
}

/// Verifies one data file as committed at `info` (blocking); `head` when it is the head
/// (bytes past its committed end are a crash's leftovers, not a problem). `progress` is
/// called with the bytes read since its last call.
pub(crate) fn verify_file(
    files: &Files,
    index: u32,
    info: FileInfo,
    head: bool,
    out: &mut Verification,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    out.files += 1;
    let table = committed_table(files, index, info, out)?;
    let pieces = table.pieces(info.trim_offset, info.end);
    let path = files.data_path(index);
    let missing = |out: &mut Verification, from: u32, why: &str| {
        for &(p, s, crc) in pieces.iter().filter(|p| p.0 + p.1 > from) {
            let (p, s) = if p < from {
                (from, p + s - from)
            } else {
                (p, s)
            };
            let what = if crc.is_some() {
                "item"
            } else {
                "unindexed range"
            };
            out.problems.push(damage(
                index,
                Some(loc(index, p, s)),
                DamageKind::Missing,
                format!("{what} {}: {why}", loc(index, p, s)),
            ));
        }
    };
    let (file, extent) = match DataFile::open(files.fs.as_ref(), &path, files.genesis, Access::Read)
    {
        Ok(f) => f,
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            missing(out, info.trim_offset, "the data file is gone");
            return Ok(());
        }
        Err(Error::InvalidDataFile { reason, .. }) => {
            out.problems
                .push(damage(index, None, DamageKind::Inconsistent, reason));
            missing(out, info.trim_offset, "the data file's header is not valid");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if extent.trim_offset != info.trim_offset {
        out.problems.push(damage(
            index,
            None,
            DamageKind::Inconsistent,
            format!(
                "its header says trim offset {}, {} was committed (another file under this \
                 name, or an altered header): positions would read shifted",
                extent.trim_offset, info.trim_offset
            ),
        ));
        missing(
            out,
            info.trim_offset,
            "the file under this name is another one",
        );
        return Ok(());
    }
    if !head && extent.end > info.end {
        out.problems.push(damage(
            index,
            None,
            DamageKind::Inconsistent,
            format!(
                "the file was extended: it ends at position {}, past its committed end {}",
                extent.end, info.end
            ),
        ));
    }
    let stored_end = extent.end.min(info.end);
    if stored_end < info.end {
        missing(
            out,
            stored_end,
            &format!("the file was cut: it ends at position {stored_end}"),
        );
    }
    read_pieces(
        &file,
        index,
        info.trim_offset,
        stored_end,
        &pieces,
        out,
        progress,
    )
    .map_err(|e| Error::io("read data file", &path, e))
}

/// Reads `[from, to)` of `file` sequentially in large pieces, checking each piece against
/// its CRC32C (counting unindexed ones).
fn read_pieces(
    file: &DataFile,
    index: u32,
    from: u32,
    to: u32,
    pieces: &[(u32, u32, Option<u32>)],
    out: &mut Verification,
    progress: &mut dyn FnMut(u64),
) -> io::Result<()> {
    let stored_end = to;
    let mut buf = vec![0u8; PIECE.min((to - from) as usize)];
    let mut pos = from;
    let mut pieces = pieces.iter().peekable();
    let mut crc = 0u32;
    while pos < stored_end {
        let n = ((stored_end - pos) as usize).min(buf.len());
        let chunk = &mut buf[..n];
        file.read(pos, chunk)?;
        let chunk_end = pos + u32::try_from(n).expect("a piece fits u32");
        let mut at = pos;
        while let Some(&&(p, s, want)) = pieces.peek() {
            let end = p + s;
            if end > stored_end {
                break; // reported missing above
            }
            let from = (at.max(p) - pos) as usize;
            let to = (end.min(chunk_end) - pos) as usize;
            crc = crate::crc::crc32c_append(crc, &chunk[from..to]);
            if end > chunk_end {
                break; // continues in the next piece of the file
            }
            match want {
                Some(want) => {
                    out.items_checked += 1;
                    if crc != want {
                        let l = loc(index, p, s);
                        out.problems.push(damage(
                            index,
                            Some(l),
                            DamageKind::Corrupt,
                            format!(
                                "item {l}: its CRC32C is {crc:08x}, the item index recorded \
                                 {want:08x}"
                            ),
                        ));
                    }
                }
                None => out.unindexed_bytes += u64::from(s),
            }
            crc = 0;
            at = end;
            pieces.next();
        }
        out.bytes_checked += n as u64;
        progress(n as u64);
        pos = chunk_end;
    }
    Ok(())
}
