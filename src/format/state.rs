//! The state file, `.aiodiskdb.{prefix}.state`: two slots, the session's record (see the
//! layout in `mod.rs`).

use super::Naming;

/// Length of one state slot; the state file is two slots.
pub(crate) const SLOT_BYTES: usize = 512;
/// [`SLOT_BYTES`] as a file offset.
pub(crate) const SLOT_LEN: u64 = SLOT_BYTES as u64;
const STATE_MAGIC: &[u8; 8] = b"AIODSKDB";
const STATE_VERSION: u32 = 3;
/// Where version 3 records the head's committed item index entries, and the manifest.
const STATE_HEAD_ENTRIES_AT: usize = 400;
const STATE_MANIFEST_AT: usize = 404;
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
    /// Cut the data file of `index` (below the head) back to the end the manifest records.
    Rtrim {
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
    /// Entries of the head's item index as of this record (0 before version 3): with
    /// `head_end`, where recovery starts checking the head's later commits from.
    pub(crate) head_entries: u32,
    /// The generation of the manifest of sealed files this record commits (0: none, as
    /// before version 3).
    pub(crate) manifest: u64,
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
            Pending::Rtrim { index } => (3, index, 0),
        };
        s[32..36].copy_from_slice(&kind.to_le_bytes());
        s[36..40].copy_from_slice(&index.to_le_bytes());
        s[40..44].copy_from_slice(&arg.to_le_bytes());
        s[44..52].copy_from_slice(&self.checkpoint.to_le_bytes());
        s[STATE_HEAD_ENTRIES_AT..STATE_HEAD_ENTRIES_AT + 4]
            .copy_from_slice(&self.head_entries.to_le_bytes());
        s[STATE_MANIFEST_AT..STATE_MANIFEST_AT + 8].copy_from_slice(&self.manifest.to_le_bytes());
        s[52..56].copy_from_slice(&format.genesis);
        let padding = u32::try_from(format.naming.padding).unwrap_or(u32::MAX);
        s[56..60].copy_from_slice(&padding.to_le_bytes());
        // The configuration limits prefixes to MAX_PREFIX_BYTES.
        let prefix = format.naming.prefix.as_bytes();
        let prefix = &prefix[..prefix.len().min(MAX_PREFIX_BYTES)];
        let len = u16::try_from(prefix.len()).expect("at most MAX_PREFIX_BYTES");
        s[60..62].copy_from_slice(&len.to_le_bytes());
        s[STATE_PREFIX_AT..STATE_PREFIX_AT + prefix.len()].copy_from_slice(prefix);
        let crc = crate::crc::crc32c(&s[..STATE_CRC_AT]);
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
            2 | STATE_VERSION if slot.len() >= SLOT_BYTES => STATE_CRC_AT,
            _ => return None,
        };
        if word(crc_at) != crate::crc::crc32c(&slot[..crc_at]) {
            return None;
        }
        let pending = match word(32) {
            0 => Pending::None,
            1 => Pending::Ltrim {
                index: word(36),
                trim_offset: word(40),
            },
            2 => Pending::Drop { index: word(36) },
            3 if version == STATE_VERSION => Pending::Rtrim { index: word(36) },
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
                head_entries: if version == STATE_VERSION {
                    word(STATE_HEAD_ENTRIES_AT)
                } else {
                    0
                },
                manifest: if version == STATE_VERSION {
                    u64::from_le_bytes(
                        slot[STATE_MANIFEST_AT..STATE_MANIFEST_AT + 8]
                            .try_into()
                            .expect("8 bytes"),
                    )
                } else {
                    0
                },
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

#[cfg(test)]
mod tests {
    use super::*;

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
            head_entries: 42,
            manifest: 3,
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
        let crc = crate::crc::crc32c(&v1[..44]);
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
                head_entries: 0,
                manifest: 0,
            }
        );
        assert_eq!(slot.format, None, "version 1 recorded no format");
    }
}
