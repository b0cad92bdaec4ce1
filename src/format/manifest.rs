//! The manifest of sealed files, `.aiodiskdb.{prefix}.files.{gen}` (ours): what every data
//! file below the head held when it was sealed (or last trimmed), so that a file cut,
//! extended, zeroed, swapped or deleted since is reported instead of read as missing data.
//! Written whole under a new generation, synced, and named by the state that commits it;
//! older generations are deleted once a state names the new one.
//!
//! ```text
//! 0..8    magic "AIODBMAN"
//! 8..12   version u32 LE (1; 2 when a file is on object storage; 3 when a file on object
//!         storage was trimmed since its upload)
//! 12..20  generation u64 LE
//! 20..24  records u32 LE
//! 24..28  crc32c of the records (versions 2 and 3: and of the sections after them) u32 LE
//! 28..32  crc32c of bytes 0..28 u32 LE
//! 32..    records of RECORD_BYTES: index, trim offset, end, entries (committed entries
//!         of the item index, 0: none), entries crc (of their bytes), data crc (of the data
//!         bytes [trim offset, end)), flags (bit 0: the data crc is known; bit 1, version
//!         2 only: the file is on object storage, not in the directory), each u32 LE;
//!         the 8 bytes before the end; 4 bytes zero
//! versions 2 and 3, after the records, the remote section: the object key prefix and the
//!         object store's description (what `Display` shows of it), each as a u32 LE
//!         length and its UTF-8 bytes
//! version 3 only, after the remote section, the objects section: a u32 LE count, then
//!         for each remote file trimmed since its upload (an rtrim or ltrim of a remote
//!         index), what its object holds: index, the trim offset and end it was uploaded
//!         with, and the crc32c of its data bytes [that trim offset, that end), each u32 LE
//! ```
//!
//! A record's trim offset and end are the file's logical ones, what the database holds:
//! for a remote file trimmed since its upload they lie within its object's (the objects
//! section), whose bytes outside them are never served; its data crc and last 8 bytes are
//! then not known (flag bit 0 clear, zeros), since its kept bytes are not local.
//!
//! A directory with no file on object storage keeps writing version 1, byte for byte what
//! the previous release wrote and reads; remote files untrimmed keep version 2. Versions 1
//! and 2 are read as ever (every remote file's object holds exactly its record's range).
//! A release that knows only lower versions refuses a higher one (a damaged manifest: it
//! never reads a remote file as missing data, nor a trimmed range as stored).

const MAGIC: &[u8; 8] = b"AIODBMAN";
const VERSION: u32 = 1;
/// The version with files on object storage (flag `FLAG_REMOTE`, the remote section).
const VERSION_REMOTE: u32 = 2;
/// The version with remote files trimmed since their upload (the objects section).
const VERSION_OBJECTS: u32 = 3;
/// Length of one entry of the objects section.
const OBJECT_BYTES: usize = 16;
const HEADER_BYTES: usize = 32;
/// Length of one record.
pub(crate) const RECORD_BYTES: usize = 40;
const FLAG_DATA_CRC: u32 = 1;
const FLAG_REMOTE: u32 = 2;

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
    /// The file is on object storage (its whole data file, header included, under the key
    /// of [`Manifest::remote`]'s prefix), and no longer in the directory; its item index
    /// stays in the directory.
    pub(crate) remote: bool,
    /// For a remote file trimmed since its upload: what its object holds (its logical
    /// range, `trim_offset..end`, lies within). `None`: the object holds exactly the
    /// record's range, with `data_crc` (or the file is local).
    pub(crate) object: Option<ObjectSpan>,
}

/// What the object of a remote file holds: the data file as it was uploaded, header
/// included. Logical position `p` is byte `24 + p - trim_offset` of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ObjectSpan {
    /// The trim offset of the object's header.
    pub(crate) trim_offset: u32,
    /// One past the last logical position the object holds.
    pub(crate) end: u32,
    /// CRC32C of the object's data bytes `[trim_offset, end)` (what its upload was
    /// verified against).
    pub(crate) data_crc: u32,
}

impl ObjectSpan {
    /// The logical range the object holds.
    pub(crate) fn range(&self) -> std::ops::Range<u32> {
        self.trim_offset..self.end
    }
}

impl Sealed {
    /// What the object of this remote file holds (`None` for a local file, or a remote
    /// one recorded without its data checksum, which no version writes).
    pub(crate) fn object_span(&self) -> Option<ObjectSpan> {
        if !self.remote {
            return None;
        }
        self.object.or_else(|| {
            self.data_crc.map(|data_crc| ObjectSpan {
                trim_offset: self.trim_offset,
                end: self.end,
                data_crc,
            })
        })
    }
}

/// Where the remote files of a manifest are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RemoteId {
    /// The object key prefix.
    pub(crate) prefix: String,
    /// The object store, as its `Display` shows it (for messages only).
    pub(crate) store: String,
}

/// A manifest: the sealed files of one generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) generation: u64,
    pub(crate) files: Vec<Sealed>,
    /// Where the remote files are (kept while any file is remote).
    pub(crate) remote: Option<RemoteId>,
}

fn word(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u32::try_from(s.len()).expect("a short string");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A length-prefixed string at the front of `b`, and what follows it.
fn take_str(b: &[u8]) -> Option<(String, &[u8])> {
    let len = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let s = b.get(4..4usize.checked_add(len)?)?;
    Some((String::from_utf8(s.to_vec()).ok()?, &b[4 + len..]))
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
                } | if f.remote { FLAG_REMOTE } else { 0 },
            ] {
                records.extend_from_slice(&w.to_le_bytes());
            }
            records.extend_from_slice(&f.tail);
            records.extend_from_slice(&[0; 4]);
        }
        let objects: Vec<(u32, ObjectSpan)> = self
            .files
            .iter()
            .filter(|f| f.remote)
            .filter_map(|f| Some((f.index, f.object?)))
            .collect();
        let version = if self.files.iter().any(|f| f.remote) {
            // Written only while a file is remote: the section goes with the records.
            let id = self.remote.clone().unwrap_or_default();
            put_str(&mut records, &id.prefix);
            put_str(&mut records, &id.store);
            if objects.is_empty() {
                VERSION_REMOTE
            } else {
                let count = u32::try_from(objects.len()).expect("fewer files than u32");
                records.extend_from_slice(&count.to_le_bytes());
                for (index, o) in &objects {
                    for w in [*index, o.trim_offset, o.end, o.data_crc] {
                        records.extend_from_slice(&w.to_le_bytes());
                    }
                }
                VERSION_OBJECTS
            }
        } else {
            VERSION
        };
        let mut out = Vec::with_capacity(HEADER_BYTES + records.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&self.generation.to_le_bytes());
        let count = u32::try_from(self.files.len()).expect("fewer files than u32");
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&crate::crc::crc32c(&records).to_le_bytes());
        let crc = crate::crc::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&records);
        out
    }

    /// Decodes a manifest; `None` when it is torn or not one.
    pub(crate) fn decode(b: &[u8]) -> Option<Manifest> {
        if b.len() < HEADER_BYTES
            || &b[0..8] != MAGIC
            || word(b, 28) != crate::crc::crc32c(&b[..28])
        {
            return None;
        }
        let version = word(b, 8);
        let count = word(b, 20) as usize;
        let records_end = HEADER_BYTES.checked_add(count.checked_mul(RECORD_BYTES)?)?;
        let records = b.get(HEADER_BYTES..records_end)?;
        let mut objects = Vec::new();
        let remote = match version {
            VERSION if word(b, 24) == crate::crc::crc32c(records) => None,
            VERSION_REMOTE | VERSION_OBJECTS
                if word(b, 24) == crate::crc::crc32c(&b[HEADER_BYTES..]) =>
            {
                let (prefix, rest) = take_str(&b[records_end..])?;
                let (store, mut rest) = take_str(rest)?;
                if version == VERSION_OBJECTS {
                    let n = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
                    let section = rest.get(4..4 + n.checked_mul(OBJECT_BYTES)?)?;
                    objects = section
                        .chunks_exact(OBJECT_BYTES)
                        .map(|o| {
                            let span = ObjectSpan {
                                trim_offset: word(o, 4),
                                end: word(o, 8),
                                data_crc: word(o, 12),
                            };
                            (word(o, 0), span)
                        })
                        .collect();
                    rest = &rest[4 + section.len()..];
                    if objects.is_empty() {
                        return None;
                    }
                }
                if !rest.is_empty() {
                    return None;
                }
                Some(RemoteId { prefix, store })
            }
            _ => return None,
        };
        let mut files: Vec<Sealed> = records
            .chunks_exact(RECORD_BYTES)
            .map(|r| Sealed {
                index: word(r, 0),
                trim_offset: word(r, 4),
                end: word(r, 8),
                entries: word(r, 12),
                entries_crc: word(r, 16),
                data_crc: (word(r, 24) & FLAG_DATA_CRC != 0).then(|| word(r, 20)),
                tail: r[28..36].try_into().expect("8 bytes"),
                remote: word(r, 24) & FLAG_REMOTE != 0,
                object: None,
            })
            .collect();
        if remote.is_none() && files.iter().any(|f| f.remote) {
            return None;
        }
        for (index, span) in objects {
            // Each names a remote file once, whose logical range its object holds.
            let f = files.iter_mut().find(|f| f.index == index)?;
            if !f.remote
                || f.object.is_some()
                || span.trim_offset > f.trim_offset
                || f.trim_offset > f.end
                || f.end > span.end
            {
                return None;
            }
            f.object = Some(span);
        }
        Some(Manifest {
            generation: u64::from_le_bytes(b[12..20].try_into().expect("8 bytes")),
            files,
            remote,
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
        let remote = self
            .remote
            .clone()
            .filter(|_| files.iter().any(|f| f.remote));
        Manifest {
            generation: self.generation + 1,
            files,
            remote,
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
                    remote: false,
                    object: None,
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
                    remote: false,
                    object: None,
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
        assert_eq!(u32::from_le_bytes(enc[8..12].try_into().unwrap()), 1);
    }

    #[test]
    fn remote_files_make_version_2_and_back() {
        let local = Sealed {
            index: 4,
            trim_offset: 0,
            end: 900,
            entries: 3,
            entries_crc: 5,
            data_crc: Some(6),
            tail: *b"12345678",
            remote: false,
            object: None,
        };
        let mut m = Manifest::default().with(4, Some(local));
        m.remote = Some(RemoteId {
            prefix: "node-1/blocks".into(),
            store: "AmazonS3(bucket)".into(),
        });
        let tiered = m.with(
            4,
            Some(Sealed {
                remote: true,
                ..local
            }),
        );
        let enc = tiered.encode();
        assert_eq!(u32::from_le_bytes(enc[8..12].try_into().unwrap()), 2);
        assert_eq!(Manifest::decode(&enc), Some(tiered.clone()));
        assert!(tiered.get(4).unwrap().remote);
        for at in [8, 24, 40, enc.len() - 1] {
            let mut torn = enc.clone();
            torn[at] ^= 1;
            assert_eq!(Manifest::decode(&torn), None, "flip at {at}");
        }
        // Cut short: the remote section is part of what the checksum covers.
        assert_eq!(Manifest::decode(&enc[..enc.len() - 3]), None);
        // Hydrated again: version 1, no remote section, as the previous release wrote.
        let back = tiered.with(4, Some(local));
        assert_eq!(back.remote, None);
        let enc = back.encode();
        assert_eq!(u32::from_le_bytes(enc[8..12].try_into().unwrap()), 1);
        assert_eq!(enc.len(), 32 + RECORD_BYTES);
    }

    #[test]
    fn remote_trims_make_version_3_and_the_object_is_kept() {
        let uploaded = Sealed {
            index: 4,
            trim_offset: 100,
            end: 900,
            entries: 3,
            entries_crc: 5,
            data_crc: Some(6),
            tail: *b"12345678",
            remote: true,
            object: None,
        };
        let mut m = Manifest::default().with(4, Some(uploaded));
        m.remote = Some(RemoteId {
            prefix: "p".into(),
            store: "S".into(),
        });
        let m = m.with(
            2,
            Some(Sealed {
                index: 2,
                ..uploaded
            }),
        );
        let v2 = m.encode();
        assert_eq!(u32::from_le_bytes(v2[8..12].try_into().unwrap()), 2);
        assert_eq!(
            m.get(4).unwrap().object_span(),
            Some(ObjectSpan {
                trim_offset: 100,
                end: 900,
                data_crc: 6
            })
        );
        // An ltrim and an rtrim of the remote file: its logical range narrows, the object
        // stays what was uploaded.
        let object = uploaded.object_span();
        let trimmed = m.with(
            4,
            Some(Sealed {
                trim_offset: 300,
                end: 700,
                entries: 2,
                data_crc: None,
                tail: [0; 8],
                object,
                ..uploaded
            }),
        );
        let enc = trimmed.encode();
        assert_eq!(u32::from_le_bytes(enc[8..12].try_into().unwrap()), 3);
        assert_eq!(enc.len(), v2.len() + 4 + OBJECT_BYTES);
        let back = Manifest::decode(&enc).unwrap();
        assert_eq!(back, trimmed);
        assert_eq!(back.get(4).unwrap().object_span(), object);
        assert_eq!(back.get(2).unwrap().object, None);
        for at in [8, 24, enc.len() - 5, enc.len() - 1] {
            let mut torn = enc.clone();
            torn[at] ^= 1;
            assert_eq!(Manifest::decode(&torn), None, "flip at {at}");
        }
        assert_eq!(Manifest::decode(&enc[..enc.len() - 4]), None);
        // An objects section that names a local file, or a range the object does not
        // hold, is not a manifest we write.
        let bad = |f: &dyn Fn(&mut Sealed)| {
            let mut rec = *trimmed.get(4).unwrap();
            f(&mut rec);
            let mut t = trimmed.clone();
            t.files.retain(|r| r.index != 4);
            t.files.push(rec);
            Manifest::decode(&t.encode())
        };
        assert_eq!(bad(&|r| r.end = 901), None);
        assert_eq!(bad(&|r| r.trim_offset = 99), None);
        assert!(bad(&|r| r.end = 900).is_some());
        // Dropped: back to version 2, byte for byte.
        let dropped = Manifest {
            generation: 9,
            ..trimmed.with(4, None)
        };
        let v2 = Manifest {
            generation: 9,
            ..m.with(4, None)
        };
        assert_eq!(dropped.encode(), v2.encode());
    }
}
