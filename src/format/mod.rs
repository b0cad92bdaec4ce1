//! Every on-disk byte: data file names and headers, the state file, the item indexes, the
//! manifest of sealed files, and the Python library's checkpoint files.
//!
//! ```text
//! data file  {prefix}{index:0padding}.dat          (aiodiskdb 0.2.x, byte for byte)
//!   0..4    genesis bytes
//!   4..8    trim offset, u32 LE (logical position of the first byte still stored)
//!   8..24   reserved, zero
//!   24..    items back to back; logical position p is at byte 24 + p - trim_offset
//!
//! item index {prefix}{index:0padding}.idx          (ours; layout in index.rs)
//! manifest   .aiodiskdb.{prefix}.files.{gen}       (ours; layout in manifest.rs)
//!
//! temp file  .tmp.{prefix}{index:0padding}.dat     (ltrim rewrite, then renamed over)
//! temp file  .aiodiskdb.{prefix}.checkpoint.tmp    (our guard checkpoint, then renamed)
//!
//! state file .aiodiskdb.{prefix}.state             (ours; Python ignores it)
//!   two slots of SLOT_LEN bytes at 0 and SLOT_LEN; a record goes to slot seq % 2, then
//!   (once synced) to the other slot too, so a torn write leaves one whole copy and a
//!   damaged slot leaves the other. A slot (version 3; version 2 ended its fields at 62+,
//!   version 1 at 44 with its crc at 44..48: both are still read):
//!   0..8    magic "AIODSKDB"
//!   8..12   version u32 LE (3)
//!   12..20  seq u64 LE (the slot with the highest valid seq wins)
//!   20..24  flags u32 LE (bit 0: clean stop)
//!   24..28  head index u32 LE (the current data file)
//!   28..32  head end u32 LE (the head's logical end as of this record)
//!   32..36  pending operation kind u32 LE (0 none, 1 ltrim, 2 drop, 3 rtrim)
//!   36..40  pending index u32 LE
//!   40..44  pending argument u32 LE (ltrim: the new trim offset)
//!   44..52  checkpoint id u64 LE: our session's guard `.checkpoint-{id}` (0: none)
//!   52..56  genesis bytes of the data files
//!   56..60  file padding u32 LE
//!   60..62  file prefix length u16 LE, then the prefix (UTF-8) from 62 (at most 200)
//!   400..404 head entries u32 LE (the head's item index entries as of this record)
//!   404..412 manifest generation u64 LE (0: none)
//!   508..512 crc32c of bytes 0..508, u32 LE
//!
//! python checkpoint  .checkpoint-{millis}   (written by aiodiskdb 0.2.x before each flush,
//!                                           and by us, as a guard, while a session of ours
//!                                           is open)
//!   52-byte entries: index u48 LE, file length u48 LE, the file's last 8 bytes, and 32
//!   bytes that aiodiskdb 0.2.3 fills with sha256(b"") and checks on start
//! ```

use crate::error::Error;

mod index;
mod manifest;
mod python;
mod state;

pub(crate) use index::{
    batch_entries, decode_entries, encode_entries, entry_offset, Commit, Entry, IndexHeader,
    COMMIT_BYTES, ENTRIES_AT, ENTRY_BYTES, INDEX_HEADER_AT, INDEX_HEADER_BYTES,
};
pub(crate) use manifest::{Manifest, ObjectSpan, RemoteId, Sealed};
#[cfg(test)]
pub(crate) use python::PY_CHECKPOINT_HASH;
pub(crate) use python::{
    decode_py_checkpoint, encode_py_checkpoint, py_checkpoint_name, PyCheckpointEntry,
    PY_CHECKPOINT_PREFIX,
};
pub(crate) use state::{Format, Pending, Slot, State, MAX_PREFIX_BYTES, SLOT_BYTES, SLOT_LEN};

/// Length of a data file header.
pub(crate) const HEADER_BYTES: usize = 24;
/// [`HEADER_BYTES`] as a file offset.
pub(crate) const HEADER_LEN: u64 = HEADER_BYTES as u64;
const GENESIS: std::ops::Range<usize> = 0..4;
const TRIM_OFFSET: std::ops::Range<usize> = 4..8;
const RESERVED: std::ops::Range<usize> = 8..24;

/// The file offset of logical position `position` in a data file whose first stored byte is
/// `trim_offset` (`position >= trim_offset`).
pub(crate) fn data_offset(position: u32, trim_offset: u32) -> u64 {
    HEADER_LEN + u64::from(position - trim_offset)
}

/// The default genesis bytes of aiodiskdb 0.2.x (`b'\r\xce\x8f7'`).
pub(crate) const DEFAULT_GENESIS: [u8; 4] = [0x0d, 0xce, 0x8f, 0x37];

/// A data file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) genesis: [u8; 4],
    pub(crate) trim_offset: u32,
}

impl Header {
    pub(crate) fn encode(self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        out[GENESIS].copy_from_slice(&self.genesis);
        out[TRIM_OFFSET].copy_from_slice(&self.trim_offset.to_le_bytes());
        out
    }

    /// Decodes and validates a header against the expected genesis bytes.
    ///
    /// On failure returns the reason, for the caller to wrap with the file's path.
    pub(crate) fn decode(bytes: &[u8], genesis: [u8; 4]) -> std::result::Result<Header, String> {
        if bytes.len() < HEADER_BYTES {
            return Err(format!(
                "{SHORT_HEADER}: {} bytes, expected {HEADER_LEN}",
                bytes.len()
            ));
        }
        let got = &bytes[GENESIS];
        if got != genesis {
            return Err(format!(
                "wrong genesis bytes {}, expected {}",
                hex(got),
                hex(&genesis)
            ));
        }
        if bytes[RESERVED].iter().any(|b| *b != 0) {
            return Err(format!(
                "reserved header bytes are not zero: {}",
                hex(&bytes[RESERVED])
            ));
        }
        let trim_offset = u32::from_le_bytes(bytes[TRIM_OFFSET].try_into().expect("4 bytes"));
        Ok(Header {
            genesis,
            trim_offset,
        })
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// How data files are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Naming {
    pub(crate) prefix: String,
    pub(crate) padding: usize,
}

impl Naming {
    /// `{prefix}{index:0padding}.dat`.
    pub(crate) fn data_file(&self, index: u32) -> String {
        format!("{}{:0width$}.dat", self.prefix, index, width = self.padding)
    }

    /// `.aiodiskdb.{prefix}.files.{generation}`, a manifest of sealed files.
    pub(crate) fn manifest_file(&self, generation: u64) -> String {
        format!(".aiodiskdb.{}.files.{generation}", self.prefix)
    }

    /// Parses a manifest file name of this naming.
    pub(crate) fn parse_manifest_file(&self, name: &str) -> Option<u64> {
        let gen = name
            .strip_prefix(".aiodiskdb.")?
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(".files.")?;
        if gen.is_empty() || !gen.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        gen.parse().ok()
    }

    /// `{prefix}{index:0padding}.idx`, the file's item index.
    pub(crate) fn index_file(&self, index: u32) -> String {
        format!("{}{:0width$}.idx", self.prefix, index, width = self.padding)
    }

    /// Parses an item index file name of this naming.
    pub(crate) fn parse_index_file(&self, name: &str) -> Option<u32> {
        let digits = name.strip_prefix(&self.prefix)?.strip_suffix(".idx")?;
        parse_digits(digits, self.padding)
    }

    /// `.tmp.{prefix}{index:0padding}.dat`, the ltrim rewrite target.
    pub(crate) fn temp_file(&self, index: u32) -> String {
        format!(".tmp.{}", self.data_file(index))
    }

    /// `.aiodiskdb.{prefix}.state`.
    pub(crate) fn state_file(&self) -> String {
        format!(".aiodiskdb.{}.state", self.prefix)
    }

    /// `.aiodiskdb.{prefix}.checkpoint.tmp`: our Python-format checkpoint before its
    /// rename into place (the Python library ignores the name).
    pub(crate) fn checkpoint_temp_file(&self) -> String {
        format!(".aiodiskdb.{}.checkpoint.tmp", self.prefix)
    }

    /// The largest index whose name has exactly `padding` digits.
    pub(crate) fn max_index(&self) -> u64 {
        10u64
            .checked_pow(u32::try_from(self.padding).unwrap_or(u32::MAX))
            .map_or(u64::MAX, |p| p - 1)
            .min(u64::from(u32::MAX))
    }

    /// Parses a data file name of this naming: exactly `padding` digits.
    pub(crate) fn parse_data_file(&self, name: &str) -> Option<u32> {
        let digits = name.strip_prefix(&self.prefix)?.strip_suffix(".dat")?;
        parse_digits(digits, self.padding)
    }

    /// Parses a temp file name of this naming.
    pub(crate) fn parse_temp_file(&self, name: &str) -> Option<u32> {
        self.parse_data_file(name.strip_prefix(".tmp.")?)
    }
}

fn parse_digits(digits: &str, padding: usize) -> Option<u32> {
    if digits.len() != padding || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// How the reason of a data file shorter than its header begins.
const SHORT_HEADER: &str = "header too short";

/// Whether `e` says a data file is shorter than its header (empty, or its header not
/// written whole yet), as [`Header::decode`] reports it.
pub(crate) fn is_short_header(e: &Error) -> bool {
    matches!(e, Error::InvalidDataFile { reason, .. } if reason.starts_with(SHORT_HEADER))
}

/// Returns the reason a data file header is invalid, wrapped with its path.
pub(crate) fn invalid_file(path: &std::path::Path, reason: impl Into<String>) -> Error {
    Error::InvalidDataFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_match_python() {
        // FileHeader(genesis_bytes=b'\r\xce\x8f7', trim_offset=300).serialize()
        let h = Header {
            genesis: DEFAULT_GENESIS,
            trim_offset: 300,
        };
        let mut expected = vec![0x0d, 0xce, 0x8f, 0x37, 0x2c, 0x01, 0, 0];
        expected.extend_from_slice(&[0; 16]);
        assert_eq!(h.encode().to_vec(), expected);
        assert_eq!(Header::decode(&expected, DEFAULT_GENESIS).unwrap(), h);
    }

    #[test]
    fn header_rejects_bad_input() {
        let good = Header {
            genesis: DEFAULT_GENESIS,
            trim_offset: 0,
        }
        .encode();
        assert!(Header::decode(&good[..23], DEFAULT_GENESIS)
            .unwrap_err()
            .contains("too short"));
        assert!(Header::decode(&good, *b"abcd")
            .unwrap_err()
            .contains("genesis"));
        let mut reserved = good;
        reserved[23] = 1;
        assert!(Header::decode(&reserved, DEFAULT_GENESIS)
            .unwrap_err()
            .contains("reserved"));
    }

    #[test]
    fn names_build_and_parse() {
        let n = Naming {
            prefix: "data".into(),
            padding: 5,
        };
        assert_eq!(n.data_file(7), "data00007.dat");
        assert_eq!(n.temp_file(7), ".tmp.data00007.dat");
        assert_eq!(n.parse_data_file("data00007.dat"), Some(7));
        assert_eq!(n.parse_temp_file(".tmp.data00007.dat"), Some(7));
        for other in [
            "data0007.dat",
            "data000007.dat",
            "data00007.da",
            "blk00007.dat",
            "data0000x.dat",
            ".checkpoint-1",
            ".aiodiskdb.data.state",
        ] {
            assert_eq!(n.parse_data_file(other), None, "{other}");
        }
        assert_eq!(n.max_index(), 99_999);
        let wide = Naming {
            prefix: "x".into(),
            padding: 10,
        };
        assert_eq!(wide.max_index(), u64::from(u32::MAX));
        assert_eq!(wide.data_file(u32::MAX), "x4294967295.dat");
    }
}
