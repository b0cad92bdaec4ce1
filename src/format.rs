//! Every on-disk byte: data file names and headers, the state file, and the Python
//! library's checkpoint files.
//!
//! ```text
//! data file  {prefix}{index:0padding}.dat          (aiodiskdb 0.2.x, byte for byte)
//!   0..4    genesis bytes
//!   4..8    trim offset, u32 LE (logical position of the first byte still stored)
//!   8..24   reserved, zero
//!   24..    items back to back; logical position p is at byte 24 + p - trim_offset
//!
//! temp file  .tmp.{prefix}{index:0padding}.dat     (ltrim rewrite, then renamed over)
//! temp file  .aiodiskdb.{prefix}.checkpoint.tmp    (our python checkpoint, then renamed)
//!
//! state file .aiodiskdb.{prefix}.state             (ours; Python ignores it)
//!   two slots of SLOT_LEN bytes at 0 and SLOT_LEN; a write goes to slot seq % 2, so a torn
//!   write leaves the other slot intact. A slot (version 2; version 1 ended at 44 with its
//!   crc at 44..48 and is still read):
//!   0..8    magic "AIODSKDB"
//!   8..12   version u32 LE (2)
//!   12..20  seq u64 LE (the slot with the highest valid seq wins)
//!   20..24  flags u32 LE (bit 0: clean stop)
//!   24..28  head index u32 LE (the current data file)
//!   28..32  head end u32 LE (committed logical end of the head file)
//!   32..36  pending operation kind u32 LE (0 none, 1 ltrim, 2 drop)
//!   36..40  pending index u32 LE
//!   40..44  pending argument u32 LE (ltrim: the new trim offset)
//!   44..52  checkpoint id u64 LE: our session's `.checkpoint-{id}` (0: none)
//!   52..56  genesis bytes of the data files
//!   56..60  file padding u32 LE
//!   60..62  file prefix length u16 LE, then the prefix (UTF-8) from 62
//!   508..512 crc32c of bytes 0..508, u32 LE
//!
//! python checkpoint  .checkpoint-{millis}   (written by aiodiskdb 0.2.x before each flush,
//!                                           and by us while a session of ours is open)
//!   52-byte entries: index u48 LE, file length u48 LE, the file's last 8 bytes, and 32
//!   bytes that aiodiskdb 0.2.3 fills with sha256(b"") and checks on start
//! ```

use crate::error::Error;

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
                "header too short: {} bytes, expected {HEADER_LEN}",
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

/// Name prefix of the Python library's checkpoint files.
pub(crate) const PY_CHECKPOINT_PREFIX: &str = ".checkpoint-";
const PY_CHECKPOINT_ENTRY: usize = 52;

/// One entry of a Python checkpoint: the file's length and last bytes before the flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PyCheckpointEntry {
    pub(crate) index: u64,
    pub(crate) file_len: u64,
    pub(crate) last_bytes: [u8; 8],
}

/// Decodes a Python checkpoint. A trailing partial entry (a torn checkpoint write) is
/// ignored: the library writes the checkpoint before touching any data file.
pub(crate) fn decode_py_checkpoint(bytes: &[u8]) -> Vec<PyCheckpointEntry> {
    bytes
        .chunks_exact(PY_CHECKPOINT_ENTRY)
        .map(|e| {
            let mut w = [0u8; 8];
            w[..6].copy_from_slice(&e[0..6]);
            let index = u64::from_le_bytes(w);
            w[..6].copy_from_slice(&e[6..12]);
            let file_len = u64::from_le_bytes(w);
            PyCheckpointEntry {
                index,
                file_len,
                last_bytes: e[12..20].try_into().expect("8 bytes"),
            }
        })
        .collect()
}

/// What aiodiskdb 0.2.3 writes into the last 32 bytes of a checkpoint entry and requires
/// there when it applies one: its `_hash_file` returns `sha256(b"")` for any non-empty
/// file. An entry with other bytes makes the Python library refuse to start.
pub(crate) const PY_CHECKPOINT_HASH: [u8; 32] = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Encodes checkpoint entries as aiodiskdb 0.2.3 writes them.
pub(crate) fn encode_py_checkpoint(entries: &[PyCheckpointEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * PY_CHECKPOINT_ENTRY);
    for e in entries {
        out.extend_from_slice(&e.index.to_le_bytes()[..6]);
        out.extend_from_slice(&e.file_len.to_le_bytes()[..6]);
        out.extend_from_slice(&e.last_bytes);
        out.extend_from_slice(&PY_CHECKPOINT_HASH);
    }
    out
}

/// `.checkpoint-{id}`, the name the Python library looks for.
pub(crate) fn py_checkpoint_name(id: u64) -> String {
    format!("{PY_CHECKPOINT_PREFIX}{id}")
}

/// Length of one state slot; the state file is two slots.
pub(crate) const SLOT_BYTES: usize = 512;
/// [`SLOT_BYTES`] as a file offset.
pub(crate) const SLOT_LEN: u64 = SLOT_BYTES as u64;
const STATE_MAGIC: &[u8; 8] = b"AIODSKDB";
const STATE_VERSION: u32 = 2;
/// Version 1 slots (before the checkpoint id and the recorded format) end at 44.
const STATE_V1_CRC_AT: usize = 44;
const STATE_CRC_AT: usize = SLOT_BYTES - 4;
const STATE_PREFIX_AT: usize = 62;
/// The longest file prefix a state slot records.
pub(crate) const MAX_PREFIX_BYTES: usize = 200;
const FLAG_CLEAN: u32 = 1;

/// An operation recorded before it is carried out, so that recovery can finish it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pending {
    None,
    /// Rename `.tmp.` file of `index` over the data file; its header holds `trim_offset`.
    Ltrim {
        index: u32,
        trim_offset: u32,
    },
    /// Remove the data file of `index`.
    Drop {
        index: u32,
    },
}

/// What the state file records: the commit point of every flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) seq: u64,
    /// Set by a clean stop: the data files are authoritative as they are (another writer,
    /// such as the Python library, may have appended since).
    pub(crate) clean: bool,
    pub(crate) head: u32,
    /// Committed logical end of the head file.
    pub(crate) head_end: u32,
    pub(crate) pending: Pending,
    /// The id of the Python-format `.checkpoint-{id}` that describes this session's
    /// committed state to the Python library (0: none). A dirty state whose checkpoint is
    /// gone was recovered by another writer, which may have appended since.
    pub(crate) checkpoint: u64,
}

/// How the data files of a directory are named and marked: recorded in every state slot
/// (since version 2), so that an open with other values is refused before it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Format {
    pub(crate) naming: Naming,
    pub(crate) genesis: [u8; 4],
}

/// One decoded state slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) state: State,
    /// The format the slot was written with; `None` for a version 1 slot.
    pub(crate) format: Option<Format>,
}

impl State {
    /// Encodes the state for a directory of `format`.
    pub(crate) fn encode(&self, format: &Format) -> [u8; SLOT_BYTES] {
        let mut s = [0u8; SLOT_BYTES];
        s[0..8].copy_from_slice(STATE_MAGIC);
        s[8..12].copy_from_slice(&STATE_VERSION.to_le_bytes());
        s[12..20].copy_from_slice(&self.seq.to_le_bytes());
        let flags = if self.clean { FLAG_CLEAN } else { 0 };
        s[20..24].copy_from_slice(&flags.to_le_bytes());
        s[24..28].copy_from_slice(&self.head.to_le_bytes());
        s[28..32].copy_from_slice(&self.head_end.to_le_bytes());
        let (kind, index, arg) = match self.pending {
            Pending::None => (0u32, 0u32, 0u32),
            Pending::Ltrim { index, trim_offset } => (1, index, trim_offset),
            Pending::Drop { index } => (2, index, 0),
        };
        s[32..36].copy_from_slice(&kind.to_le_bytes());
        s[36..40].copy_from_slice(&index.to_le_bytes());
        s[40..44].copy_from_slice(&arg.to_le_bytes());
        s[44..52].copy_from_slice(&self.checkpoint.to_le_bytes());
        s[52..56].copy_from_slice(&format.genesis);
        let padding = u32::try_from(format.naming.padding).unwrap_or(u32::MAX);
        s[56..60].copy_from_slice(&padding.to_le_bytes());
        // The configuration limits prefixes to MAX_PREFIX_BYTES.
        let prefix = format.naming.prefix.as_bytes();
        let prefix = &prefix[..prefix.len().min(MAX_PREFIX_BYTES)];
        let len = u16::try_from(prefix.len()).expect("at most MAX_PREFIX_BYTES");
        s[60..62].copy_from_slice(&len.to_le_bytes());
        s[STATE_PREFIX_AT..STATE_PREFIX_AT + prefix.len()].copy_from_slice(prefix);
        let crc = crc32c::crc32c(&s[..STATE_CRC_AT]);
        s[STATE_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        s
    }

    /// Decodes one slot; `None` when it is blank, torn or of an unknown version.
    pub(crate) fn decode(slot: &[u8]) -> Option<Slot> {
        if slot.len() < STATE_V1_CRC_AT + 4 || &slot[0..8] != STATE_MAGIC {
            return None;
        }
        let word = |i: usize| u32::from_le_bytes(slot[i..i + 4].try_into().expect("4 bytes"));
        let version = word(8);
        let crc_at = match version {
            1 => STATE_V1_CRC_AT,
            STATE_VERSION if slot.len() >= SLOT_BYTES => STATE_CRC_AT,
            _ => return None,
        };
        if word(crc_at) != crc32c::crc32c(&slot[..crc_at]) {
            return None;
        }
        let pending = match word(32) {
            0 => Pending::None,
            1 => Pending::Ltrim {
                index: word(36),
                trim_offset: word(40),
            },
            2 => Pending::Drop { index: word(36) },
            _ => return None,
        };
        let (checkpoint, format) = if version == 1 {
            (0, None)
        } else {
            let len = usize::from(u16::from_le_bytes([slot[60], slot[61]]));
            let prefix = slot.get(STATE_PREFIX_AT..STATE_PREFIX_AT + len)?;
            let format = Format {
                naming: Naming {
                    prefix: String::from_utf8(prefix.to_vec()).ok()?,
                    padding: usize::try_from(word(56)).ok()?,
                },
                genesis: slot[52..56].try_into().expect("4 bytes"),
            };
            (
                u64::from_le_bytes(slot[44..52].try_into().expect("8 bytes")),
                Some(format),
            )
        };
        Some(Slot {
            state: State {
                seq: u64::from_le_bytes(slot[12..20].try_into().expect("8 bytes")),
                clean: word(20) & FLAG_CLEAN != 0,
                head: word(24),
                head_end: word(28),
                pending,
                checkpoint,
            },
            format,
        })
    }

    /// Byte offset of the slot this state is written to.
    pub(crate) fn slot_offset(&self) -> u64 {
        (self.seq % 2) * SLOT_LEN
    }

    /// Picks the newest valid slot of a state file's contents.
    pub(crate) fn newest(file: &[u8]) -> Option<Slot> {
        file.chunks(SLOT_BYTES)
            .take(2)
            .filter_map(State::decode)
            .max_by_key(|s| s.state.seq)
    }
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

    #[test]
    fn state_round_trip_and_torn_slots() {
        let s = State {
            seq: 9,
            clean: true,
            head: 4,
            head_end: 1234,
            pending: Pending::Ltrim {
                index: 2,
                trim_offset: 77,
            },
            checkpoint: 1_700_000_000_123,
        };
        let format = Format {
            naming: Naming {
                prefix: "blk".into(),
                padding: 6,
            },
            genesis: *b"\xf9\xbe\xb4\xd9",
        };
        let slot = |state: State| Slot {
            state,
            format: Some(format.clone()),
        };
        let enc = s.encode(&format);
        assert_eq!(State::decode(&enc), Some(slot(s)));
        for i in [0, 13, 30, 45, 53, 57, 63, 300, 510] {
            let mut torn = enc;
            torn[i] ^= 0xff;
            assert_eq!(State::decode(&torn), None, "flip at {i}");
        }
        let older = State { seq: 8, ..s }.encode(&format);
        let mut file = vec![0u8; 2 * SLOT_BYTES];
        file[..SLOT_BYTES].copy_from_slice(&older);
        file[SLOT_BYTES..].copy_from_slice(&enc);
        assert_eq!(State::newest(&file), Some(slot(s)));
        file[SLOT_BYTES + 20] ^= 1;
        assert_eq!(State::newest(&file).unwrap().state.seq, 8);
        assert_eq!(State::newest(&[]), None);
    }

    #[test]
    fn version_1_slots_are_still_read() {
        // The layout of version 1, as the previous release wrote it.
        let mut v1 = [0u8; SLOT_BYTES];
        v1[0..8].copy_from_slice(b"AIODSKDB");
        v1[8..12].copy_from_slice(&1u32.to_le_bytes());
        v1[12..20].copy_from_slice(&5u64.to_le_bytes());
        v1[24..28].copy_from_slice(&3u32.to_le_bytes());
        v1[28..32].copy_from_slice(&99u32.to_le_bytes());
        v1[32..36].copy_from_slice(&2u32.to_le_bytes());
        v1[36..40].copy_from_slice(&1u32.to_le_bytes());
        let crc = crc32c::crc32c(&v1[..44]);
        v1[44..48].copy_from_slice(&crc.to_le_bytes());
        let slot = State::decode(&v1).expect("a valid version 1 slot");
        assert_eq!(
            slot.state,
            State {
                seq: 5,
                clean: false,
                head: 3,
                head_end: 99,
                pending: Pending::Drop { index: 1 },
                checkpoint: 0,
            }
        );
        assert_eq!(slot.format, None, "version 1 recorded no format");
    }

    #[test]
    fn py_checkpoint_round_trip_ignores_partial_entry() {
        let e = PyCheckpointEntry {
            index: 3,
            file_len: 1000,
            last_bytes: *b"abcdefgh",
        };
        let mut enc = encode_py_checkpoint(&[e.clone(), e.clone()]);
        assert_eq!(enc.len(), 104);
        assert_eq!(
            &enc[20..52],
            &PY_CHECKPOINT_HASH,
            "what aiodiskdb 0.2.3 checks"
        );
        assert_eq!(py_checkpoint_name(17), ".checkpoint-17");
        enc.truncate(80);
        assert_eq!(decode_py_checkpoint(&enc), vec![e]);
    }
}
