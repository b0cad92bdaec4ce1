//! The manifest of sealed files, `.aiodiskdb.{prefix}.files.{gen}` (ours): what every data
//! file below the head held when it was sealed (or last trimmed), so that a file cut,
//! extended, zeroed, swapped or deleted since is reported instead of read as missing data.
//! Written whole under a new generation, synced, and named by the state that commits it;
//! older generations are deleted once a state names the new one.
//!
//! ```text
//! 0..8    magic "AIODBMAN"
//! 8..12   version u32 LE (1)
//! 12..20  generation u64 LE
//! 20..24  records u32 LE
//! 24..28  crc32c of the records u32 LE
//! 28..32  crc32c of bytes 0..28 u32 LE
//! 32..    records of RECORD_BYTES: index, trim offset, end, entries (committed entries
//!         of the item index, 0: none), entries crc (of their bytes), data crc (of the data
//!         bytes [trim offset, end)), flags (bit 0: the data crc is known), each u32 LE;
//!         the 8 bytes before the end; 4 bytes zero
//! ```

const MAGIC: &[u8; 8] = b"AIODBMAN";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 32;
/// Length of one record.
pub(crate) const RECORD_BYTES: usize = 40;
const FLAG_DATA_CRC: u32 = 1;

/// What a sealed file held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sealed {
    pub(crate) index: u32,
    pub(crate) trim_offset: u32,
    pub(crate) end: u32,
    /// Committed entries of its item index (0: none).
    pub(crate) entries: u32,
    /// CRC32C of those entries' bytes.
    pub(crate) entries_crc: u32,
    /// CRC32C of its data bytes, when known (a file we did not write whole may not have it).
    pub(crate) data_crc: Option<u32>,
    /// The 8 bytes before its end (the header's last bytes for a file that holds fewer).
    pub(crate) tail: [u8; 8],
}

/// A manifest: the sealed files of one generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) generation: u64,
    pub(crate) files: Vec<Sealed>,
}

fn word(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

impl Manifest {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut records = Vec::with_capacity(self.files.len() * RECORD_BYTES);
        for f in &self.files {
            for w in [
                f.index,
                f.trim_offset,
                f.end,
                f.entries,
                f.entries_crc,
                f.data_crc.unwrap_or(0),
                if f.data_crc.is_some() {
                    FLAG_DATA_CRC
                } else {
                    0
                },
            ] {
                records.extend_from_slice(&w.to_le_bytes());
            }
            records.extend_from_slice(&f.tail);
            records.extend_from_slice(&[0; 4]);
        }
        let mut out = Vec::with_capacity(HEADER_BYTES + records.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.generation.to_le_bytes());
        let count = u32::try_from(self.files.len()).expect("fewer files than u32");
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&records).to_le_bytes());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&records);
        out
    }

    /// Decodes a manifest; `None` when it is torn or not one.
    pub(crate) fn decode(b: &[u8]) -> Option<Manifest> {
        if b.len() < HEADER_BYTES
            || &b[0..8] != MAGIC
            || word(b, 8) != VERSION
            || word(b, 28) != crc32c::crc32c(&b[..28])
        {
            return None;
        }
        let count = word(b, 20) as usize;
        let records = b.get(HEADER_BYTES..HEADER_BYTES + count.checked_mul(RECORD_BYTES)?)?;
        if word(b, 24) != crc32c::crc32c(records) {
            return None;
        }
        let files = records
            .chunks_exact(RECORD_BYTES)
            .map(|r| Sealed {
                index: word(r, 0),
                trim_offset: word(r, 4),
                end: word(r, 8),
                entries: word(r, 12),
                entries_crc: word(r, 16),
                data_crc: (word(r, 24) & FLAG_DATA_CRC != 0).then(|| word(r, 20)),
                tail: r[28..36].try_into().expect("8 bytes"),
            })
            .collect();
        Some(Manifest {
            generation: u64::from_le_bytes(b[12..20].try_into().expect("8 bytes")),
            files,
        })
    }

    pub(crate) fn get(&self, index: u32) -> Option<&Sealed> {
        self.files.iter().find(|f| f.index == index)
    }

    /// The manifest of the next generation, with `index` recorded as `sealed` (or removed).
    pub(crate) fn with(&self, index: u32, sealed: Option<Sealed>) -> Manifest {
        let mut files: Vec<Sealed> = self
            .files
            .iter()
            .filter(|f| f.index != index)
            .copied()
            .collect();
        files.extend(sealed);
        files.sort_by_key(|f| f.index);
        Manifest {
            generation: self.generation + 1,
            files,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn() {
        let m = Manifest::default()
            .with(
                3,
                Some(Sealed {
                    index: 3,
                    trim_offset: 10,
                    end: 500,
                    entries: 7,
                    entries_crc: 9,
                    data_crc: Some(11),
                    tail: *b"abcdefgh",
                }),
            )
            .with(
                1,
                Some(Sealed {
                    index: 1,
                    trim_offset: 0,
                    end: 20,
                    entries: 0,
                    entries_crc: 0,
                    data_crc: None,
                    tail: [0; 8],
                }),
            );
        assert_eq!(m.generation, 2);
        assert_eq!(
            m.files.iter().map(|f| f.index).collect::<Vec<_>>(),
            vec![1, 3]
        );
        let enc = m.encode();
        assert_eq!(Manifest::decode(&enc), Some(m.clone()));
        for at in [0, 13, 21, 40, enc.len() - 1] {
            let mut torn = enc.clone();
            torn[at] ^= 1;
            assert_eq!(Manifest::decode(&torn), None, "flip at {at}");
        }
        assert_eq!(m.with(3, None).files.len(), 1);
    }
}
