//! Item index files, `{prefix}{index:0padding}.idx`, one beside each data file we write
//! (ours: the Python library only lists `{prefix}*.dat`).
//!
//! ```text
//! 0..512, 512..1024  two commit slots: the head's commits (a commit writes slot seq % 2)
//! 1024..1056         header: magic "AIODBIDX" (8), version u32 LE (1), index u32 LE,
//!                    first u32 LE (logical position where the first entry's item starts),
//!                    genesis (4), reserved (4), crc32c of 1024..1052 u32 LE
//! 1056..             entries, 8 bytes each: end u32 LE, crc32c u32 LE
//! ```
//!
//! An item entry's item spans `[previous end, end)` (the first one from `first`), and its
//! crc is the CRC32C of those bytes. The entries a batch adds to a file end with a marker:
//! an entry whose end equals the previous end (items are never empty) and whose crc is the
//! CRC32C of the batch's item entries (their 8-byte encodings), so that whole batches can
//! be told from torn ones without the commit slots.
//!
//! A commit slot (`COMMIT_BYTES`): magic "AIODBCMT" (8), version u32 LE (1), seq u64 LE,
//! entries u32 LE (committed entries, markers included), end u32 LE (committed logical
//! end), previous entries u32 LE, previous end u32 LE (the commit before: this batch is
//! `[previous end, end)`), data crc u32 LE (CRC32C of the batch's data bytes), entries crc
//! u32 LE (CRC32C of the batch's entry bytes), crc32c of the slot's first 48 bytes u32 LE;
//! zero to 512. Recovery accepts the newest valid slot whose batch matches both checksums,
//! else the other one.

/// Two commit slots, then the header, then the entries.
pub(crate) const COMMIT_BYTES: usize = 512;
/// Where the header starts.
pub(crate) const INDEX_HEADER_AT: u64 = 2 * COMMIT_BYTES as u64;
/// Length of the header.
pub(crate) const INDEX_HEADER_BYTES: usize = 32;
/// Where the first entry starts.
pub(crate) const ENTRIES_AT: u64 = INDEX_HEADER_AT + INDEX_HEADER_BYTES as u64;
/// Length of an entry.
pub(crate) const ENTRY_BYTES: usize = 8;

const INDEX_MAGIC: &[u8; 8] = b"AIODBIDX";
const COMMIT_MAGIC: &[u8; 8] = b"AIODBCMT";
const VERSION: u32 = 1;

fn word(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// The header of an index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexHeader {
    pub(crate) index: u32,
    /// Logical position where the first entry's item starts.
    pub(crate) first: u32,
    pub(crate) genesis: [u8; 4],
}

impl IndexHeader {
    pub(crate) fn encode(self) -> [u8; INDEX_HEADER_BYTES] {
        let mut h = [0u8; INDEX_HEADER_BYTES];
        h[0..8].copy_from_slice(INDEX_MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&self.index.to_le_bytes());
        h[16..20].copy_from_slice(&self.first.to_le_bytes());
        h[20..24].copy_from_slice(&self.genesis);
        let crc = crate::crc::crc32c(&h[..28]);
        h[28..32].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes a header; `None` when it is not one (torn, another version).
    pub(crate) fn decode(b: &[u8]) -> Option<IndexHeader> {
        if b.len() < INDEX_HEADER_BYTES
            || &b[0..8] != INDEX_MAGIC
            || word(b, 8) != VERSION
            || word(b, 28) != crate::crc::crc32c(&b[..28])
        {
            return None;
        }
        Some(IndexHeader {
            index: word(b, 12),
            first: word(b, 16),
            genesis: b[20..24].try_into().expect("4 bytes"),
        })
    }
}

/// One entry: an item's end and CRC32C, or a batch marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) end: u32,
    pub(crate) crc: u32,
}

impl Entry {
    pub(crate) fn encode(self) -> [u8; ENTRY_BYTES] {
        let mut e = [0u8; ENTRY_BYTES];
        e[0..4].copy_from_slice(&self.end.to_le_bytes());
        e[4..8].copy_from_slice(&self.crc.to_le_bytes());
        e
    }

    pub(crate) fn decode(b: &[u8]) -> Entry {
        Entry {
            end: word(b, 0),
            crc: word(b, 4),
        }
    }
}

/// Encodes entries back to back.
pub(crate) fn encode_entries(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    for e in entries {
        out.extend_from_slice(&e.encode());
    }
    out
}

/// Decodes entries back to back (a trailing partial entry is ignored).
pub(crate) fn decode_entries(bytes: &[u8]) -> Vec<Entry> {
    bytes.chunks_exact(ENTRY_BYTES).map(Entry::decode).collect()
}

/// The file offset of entry number `n`.
pub(crate) fn entry_offset(n: u32) -> u64 {
    ENTRIES_AT + u64::from(n) * ENTRY_BYTES as u64
}

/// A commit of the head: its end and entries, and the checksums of the batch that got it
/// there from the commit before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Commit {
    pub(crate) seq: u64,
    pub(crate) entries: u32,
    pub(crate) end: u32,
    pub(crate) prev_entries: u32,
    pub(crate) prev_end: u32,
    pub(crate) data_crc: u32,
    pub(crate) entries_crc: u32,
}

impl Commit {
    pub(crate) fn encode(&self) -> [u8; COMMIT_BYTES] {
        let mut s = [0u8; COMMIT_BYTES];
        s[0..8].copy_from_slice(COMMIT_MAGIC);
        s[8..12].copy_from_slice(&VERSION.to_le_bytes());
        s[12..20].copy_from_slice(&self.seq.to_le_bytes());
        s[20..24].copy_from_slice(&self.entries.to_le_bytes());
        s[24..28].copy_from_slice(&self.end.to_le_bytes());
        s[28..32].copy_from_slice(&self.prev_entries.to_le_bytes());
        s[32..36].copy_from_slice(&self.prev_end.to_le_bytes());
        s[36..40].copy_from_slice(&self.data_crc.to_le_bytes());
        s[40..44].copy_from_slice(&self.entries_crc.to_le_bytes());
        let crc = crate::crc::crc32c(&s[..48]);
        s[48..52].copy_from_slice(&crc.to_le_bytes());
        s
    }

    /// Decodes one slot; `None` when it is blank or torn.
    pub(crate) fn decode(b: &[u8]) -> Option<Commit> {
        if b.len() < 52
            || &b[0..8] != COMMIT_MAGIC
            || word(b, 8) != VERSION
            || word(b, 48) != crate::crc::crc32c(&b[..48])
        {
            return None;
        }
        Some(Commit {
            seq: u64::from_le_bytes(b[12..20].try_into().expect("8 bytes")),
            entries: word(b, 20),
            end: word(b, 24),
            prev_entries: word(b, 28),
            prev_end: word(b, 32),
            data_crc: word(b, 36),
            entries_crc: word(b, 40),
        })
    }

    /// Byte offset of the slot this commit is written to.
    pub(crate) fn slot_offset(&self) -> u64 {
        (self.seq % 2) * COMMIT_BYTES as u64
    }

    /// The valid slots of an index file's first 1024 bytes, the newest first.
    pub(crate) fn slots(bytes: &[u8]) -> Vec<Commit> {
        let mut v: Vec<Commit> = bytes
            .chunks(COMMIT_BYTES)
            .take(2)
            .filter_map(Commit::decode)
            .collect();
        v.sort_by_key(|c| std::cmp::Reverse(c.seq));
        v
    }
}

/// The entries of one batch added to a file: each item's end and CRC32C, then the marker.
pub(crate) fn batch_entries(prev_end: u32, items: impl IntoIterator<Item = Entry>) -> Vec<Entry> {
    let mut v: Vec<Entry> = items.into_iter().collect();
    let end = v.last().map_or(prev_end, |e| e.end);
    let crc = crate::crc::crc32c(&encode_entries(&v));
    v.push(Entry { end, crc });
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_entries_and_slots_round_trip() {
        let h = IndexHeader {
            index: 7,
            first: 100,
            genesis: *b"abcd",
        };
        let enc = h.encode();
        assert_eq!(IndexHeader::decode(&enc), Some(h));
        let mut torn = enc;
        torn[13] ^= 1;
        assert_eq!(IndexHeader::decode(&torn), None);

        let batch = batch_entries(
            100,
            [Entry { end: 110, crc: 1 }, Entry { end: 130, crc: 2 }],
        );
        assert_eq!(batch.len(), 3);
        assert_eq!(batch[2].end, 130, "a marker is an empty entry");
        assert_eq!(
            batch[2].crc,
            crate::crc::crc32c(&encode_entries(&batch[..2]))
        );
        assert_eq!(decode_entries(&encode_entries(&batch)), batch);
        assert_eq!(entry_offset(2), 1024 + 32 + 16);

        let c = Commit {
            seq: 5,
            entries: 3,
            end: 130,
            prev_entries: 0,
            prev_end: 100,
            data_crc: 9,
            entries_crc: 10,
        };
        let older = Commit { seq: 4, ..c };
        let mut file = vec![0u8; 2 * COMMIT_BYTES];
        file[..COMMIT_BYTES].copy_from_slice(&older.encode());
        file[COMMIT_BYTES..].copy_from_slice(&c.encode());
        assert_eq!(c.slot_offset(), COMMIT_BYTES as u64);
        assert_eq!(Commit::slots(&file), vec![c, older]);
        file[COMMIT_BYTES + 21] ^= 1;
        assert_eq!(Commit::slots(&file), vec![older], "a torn slot is skipped");
    }
}
