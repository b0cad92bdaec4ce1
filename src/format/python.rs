//! The Python library's checkpoint files, `.checkpoint-{millis}`: 52-byte entries, each a
//! data file's index (u48 LE), its length (u48 LE), its last 8 bytes, and 32 bytes that
//! aiodiskdb 0.2.3 fills with `sha256(b"")` and checks on start.

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

/// What a guard entry records as the last 8 bytes of a header: they are reserved, zero.
const GUARD_BYTES: [u8; 8] = [0xff; 8];

impl PyCheckpointEntry {
    /// The entry of our guard checkpoint (`store/checkpoint.rs`): `index` cut to its header,
    /// whose last 8 bytes never equal the ones recorded, so that aiodiskdb 0.2.x refuses
    /// to apply it (and to start).
    pub(crate) fn guard(index: u32) -> PyCheckpointEntry {
        PyCheckpointEntry {
            index: u64::from(index),
            file_len: super::HEADER_LEN,
            last_bytes: GUARD_BYTES,
        }
    }

    /// Whether this is a guard entry (the Python library never writes one).
    pub(crate) fn is_guard(&self) -> bool {
        self.file_len == super::HEADER_LEN && self.last_bytes == GUARD_BYTES
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
