//! The `open_dir` fuzz target: a directory's contents decoded from the fuzz input, written
//! to a fresh temporary directory and opened through the public API.
//!
//! This file is shared, unchanged, by `fuzz/fuzz_targets/open_dir.rs` (libFuzzer) and by
//! `tests/it/fuzz_replay.rs`, which replays the committed corpus under `cargo test`.
//!
//! What must hold for every input:
//! - `inspect` returns (`Ok`, or `Io`) and changes nothing.
//! - `open` returns `Ok` or a typed [`Error`], never panics or hangs; it never reports
//!   `Locked`, `NotRunning`, `Timeout` or `InvalidConfiguration` (the directory is fresh
//!   and the configuration valid), nor a panicked task ("task failed").
//! - `InvalidDataFile` leaves every data file as it was.
//! - Once open: a read returns `None`, an I/O error, or exactly the bytes on disk at
//!   `24 + position - trim offset`; an added item reads back before and after `flush`;
//!   `stop` succeeds; the directory reopens; the item and everything read before reads
//!   back the same. The one typed error allowed on this path is `InvalidDbState` for a
//!   commit sequence number exhausted by a forged state slot near `u64::MAX`.
//!
//! Input layout (a read past the end of the input yields zeros, so every input decodes):
//!
//! ```text
//! config   u8: bits 0-1 both set = Durability::Sync (else Os); bit 2 = clean_stale_data(false);
//!              bits 3-4 both set = custom genesis (4 bytes follow);
//!              bits 5-6 = max_file_size 64 | 4096 | 1 MiB | u32::MAX
//! entries  u8 % 9 entries, each: name u8 (index into NAMES), kind u8, then by kind:
//!   kind % 8 == 5  a directory
//!   kind % 8 == 6  a symlink to /dev/zero
//!   kind % 8 == 7  a symlink to NAMES[u8]
//!   otherwise a regular file, by kind % 5 (rotated by kind / 8):
//!     0 raw bytes         len u16 % 4096, bytes
//!     1 data file         header (genesis, trim offset, maybe corrupted), body u16 % 4096
//!     2 state file        two slots (zero | valid | torn | garbage), maybe truncated; a
//!                         slot's seq and head are small, or near u64::MAX / u32::MAX
//!     3 python checkpoint u8 % 4 entries, relative to a data file or raw, torn tail
//!     4 sparse data file  valid header, set_len to 3 GiB .. 5 GiB
//! reads    u8 % 5 locations (index, position, size <= 64 KiB), then each data file's first
//!          stored bytes
//! item     len u16, bytes (padded): the item added, flushed and read back after a reopen
//! ```
//!
//! Later entries with the same name replace earlier ones. Entries are resolved after all
//! are decoded, so a state slot's committed end, a pending ltrim's trim offset and a
//! checkpoint's length and last bytes can be drawn from the data files actually written:
//! this is how the fuzzer reaches the deep recovery paths.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use aiodiskdb::{AioDiskDb, Durability, Error, ItemLocation};

/// The default genesis bytes of aiodiskdb 0.2.x.
pub(crate) const GENESIS: [u8; 4] = [0x0d, 0xce, 0x8f, 0x37];
const HEADER_LEN: usize = 24;
const SLOT_LEN: usize = 512;
const CASE_TIMEOUT: Duration = Duration::from_secs(20);
/// Files up to this length are compared byte for byte; longer (sparse) ones by length.
const SMALL_FILE: u64 = 1 << 20;

/// The names that matter to a directory of the default configuration, and a few that
/// must be ignored.
pub(crate) const NAMES: [&str; 12] = [
    "data00000.dat",
    "data00001.dat",
    "data00002.dat",
    "data00003.dat",
    ".aiodiskdb.data.state",
    ".tmp.data00001.dat",
    ".checkpoint-123",
    "other.txt",
    ".checkpoint-456",
    ".tmp.data00003.dat",
    "data00007.dat",
    "data0001.dat",
];

/// How a run ended when nothing was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Outcome {
    /// `open` refused the directory with this typed error (the variant's name).
    Refused(&'static str),
    /// Opened, read, appended, stopped, reopened and read everything back.
    Opened,
    /// Opened, then a commit was refused because a forged state's sequence number reached
    /// `u64::MAX` (a typed `InvalidDbState`).
    SeqExhausted,
}

/// Runs one input. `Err` describes a violated property (the fuzz target panics with it).
///
/// # Errors
/// A description of what went wrong: a violated property, a hang, or a set-up failure.
pub(crate) fn run(data: &[u8]) -> Result<Outcome, String> {
    let case = Case::decode(data);
    let dir = tempfile::Builder::new()
        .prefix("aiodiskdb-fuzz-")
        .tempdir()
        .map_err(|e| format!("set-up: temp dir: {e}"))?;
    case.write(dir.path())
        .map_err(|e| format!("set-up: writing the directory: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .thread_name("aiodiskdb-fuzz-blocking")
        .build()
        .map_err(|e| format!("set-up: runtime: {e}"))?;
    let result = rt.block_on(async {
        match tokio::time::timeout(CASE_TIMEOUT, case.check(dir.path())).await {
            Ok(r) => r,
            Err(_) => Err(format!("hang: no result after {CASE_TIMEOUT:?}")),
        }
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}

/// What an input decodes to: the configuration, the directory entries, the reads and the
/// item (for debugging a failing input; used by `tests/it/fuzz_replay.rs`).
#[allow(dead_code)]
pub(crate) fn describe(data: &[u8]) -> String {
    format!("{:?}", Case::decode(data))
}

/// The name of an error's variant.
pub(crate) fn variant(e: &Error) -> &'static str {
    match e {
        Error::InvalidConfiguration { .. } => "InvalidConfiguration",
        Error::NotRunning => "NotRunning",
        Error::Timeout { .. } => "Timeout",
        Error::InvalidDataFile { .. } => "InvalidDataFile",
        Error::ReadOnly => "ReadOnly",
        Error::FilesInconsistency { .. } => "FilesInconsistency",
        Error::ItemTooLarge { .. } => "ItemTooLarge",
        Error::EmptyPayload => "EmptyPayload",
        Error::EmptyTransaction => "EmptyTransaction",
        Error::InvalidDbState { .. } => "InvalidDbState",
        Error::IndexDoesNotExist { .. } => "IndexDoesNotExist",
        Error::InvalidTrimCommand { .. } => "InvalidTrimCommand",
        Error::Locked { .. } => "Locked",
        Error::NotStored { .. } => "NotStored",
        Error::DatabaseFull { .. } => "DatabaseFull",
        Error::InvalidLocation { .. } => "InvalidLocation",
        Error::Io { .. } => "Io",
        _ => "unknown",
    }
}

/// A typed error is fine; a panicked blocking task hides behind "task failed".
fn typed(what: &str, e: &Error) -> Result<(), String> {
    let text = e.to_string();
    if text.contains("task failed") {
        return Err(format!("{what}: a task panicked: {text}"));
    }
    Ok(())
}

/// Reads the input front to back; past the end every read yields zeros.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }

    fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | (u16::from(self.u8()) << 8)
    }

    fn u32(&mut self) -> u32 {
        let mut w = [0u8; 4];
        let b = self.bytes(4);
        w[..b.len()].copy_from_slice(b);
        u32::from_le_bytes(w)
    }

    fn flag(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    fn trim_offset(&mut self) -> u32 {
        match self.u8() % 4 {
            0 => 0,
            1 => u32::from(self.u8()),
            2 => self.u32(),
            _ => u32::MAX - u32::from(self.u8()),
        }
    }
}

#[derive(Debug, Clone)]
struct Config {
    sync: bool,
    clean_stale_data: bool,
    genesis: [u8; 4],
    max_file_size: u64,
}

impl Config {
    fn max_buffer_size(&self) -> u64 {
        self.max_file_size.min(1 << 16)
    }

    fn builder(&self, dir: &Path) -> aiodiskdb::Builder {
        AioDiskDb::builder(dir)
            .create_if_missing(false)
            .durability(if self.sync {
                Durability::Sync
            } else {
                Durability::Os
            })
            .clean_stale_data(self.clean_stale_data)
            .genesis_bytes(self.genesis)
            .max_file_size(self.max_file_size)
            .max_buffer_size(self.max_buffer_size())
            .timeout(Duration::from_secs(5))
    }
}

/// A committed end: relative to the logical end of a data file as written, or absolute.
#[derive(Debug, Clone)]
enum End {
    Rel { index: u32, delta: i8 },
    Abs(u32),
}

#[derive(Debug, Clone)]
enum Slot {
    Zero,
    Valid(SlotFields),
    /// Valid, then one byte flipped.
    Torn(SlotFields, usize),
    Garbage(Vec<u8>),
}

#[derive(Debug, Clone)]
struct SlotFields {
    seq: u64,
    clean: bool,
    head: u32,
    end: End,
    kind: u32,
    pending_index: u32,
    /// `None`: the trim offset in the header of the pending index's temp file.
    arg: Option<u32>,
}

#[derive(Debug, Clone)]
enum CpEntry {
    /// Entry for `data0000{index}.dat`: its length minus `cut`, its bytes there (flipped).
    Rel {
        index: u32,
        cut: u64,
        flip: bool,
    },
    Raw {
        index: u64,
        len: u64,
        last: [u8; 8],
    },
}

#[derive(Debug, Clone)]
enum Content {
    Raw(Vec<u8>),
    Data {
        header: Vec<u8>,
        body: Vec<u8>,
        sparse_len: Option<u64>,
    },
    State {
        slots: [Slot; 2],
        len: usize,
    },
    Checkpoint {
        entries: Vec<CpEntry>,
        tail: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
enum Entry {
    File(Content),
    Dir,
    DevZero,
    Link(&'static str),
}

#[derive(Debug, Clone)]
struct Case {
    cfg: Config,
    entries: BTreeMap<&'static str, Entry>,
    reads: Vec<ItemLocation>,
    item: Vec<u8>,
}

fn decode_header(inp: &mut Input<'_>, genesis: [u8; 4]) -> Vec<u8> {
    let trim = inp.trim_offset();
    let mut h = genesis.to_vec();
    h.extend_from_slice(&trim.to_le_bytes());
    h.extend_from_slice(&[0u8; 16]);
    let damage = inp.u8();
    let at = usize::from(damage >> 3);
    match damage % 8 {
        5 => h[at % 4] ^= 0x5a,
        6 => h[8 + at % 16] = 1 | damage,
        7 => h.truncate(at % HEADER_LEN),
        _ => {}
    }
    h
}

fn decode_slot(inp: &mut Input<'_>) -> Slot {
    let mode = inp.u8() % 4;
    match mode {
        0 => return Slot::Zero,
        3 => return Slot::Garbage(inp.bytes(SLOT_LEN).to_vec()),
        _ => {}
    }
    // Mostly small; the top of the byte range maps to the top of the type's range.
    let seq = match inp.u8() {
        b @ 0xf0.. => u64::MAX - u64::from(0xff - b),
        b => u64::from(b),
    };
    let clean = inp.flag();
    let head = match inp.u8() {
        b @ 0xf8.. => u32::MAX - u32::from(0xff - b),
        b => u32::from(b % 8),
    };
    let end = if inp.u8() % 4 == 3 {
        End::Abs(inp.u32())
    } else {
        End::Rel {
            index: head,
            delta: i8::from_le_bytes([inp.u8()]),
        }
    };
    let kind = match inp.u8() % 4 {
        3 => u32::from(inp.u8()),
        k => u32::from(k),
    };
    let pending_index = u32::from(inp.u8() % 8);
    let arg = if inp.flag() { Some(inp.u32()) } else { None };
    let fields = SlotFields {
        seq,
        clean,
        head,
        end,
        kind,
        pending_index,
        arg,
    };
    if mode == 2 {
        Slot::Torn(fields, usize::from(inp.u8() % 48))
    } else {
        Slot::Valid(fields)
    }
}

fn decode_content(inp: &mut Input<'_>, kind: u8, genesis: [u8; 4]) -> Content {
    match (kind % 5 + kind / 8) % 5 {
        0 => {
            let len = usize::from(inp.u16() % 4096);
            Content::Raw(inp.bytes(len).to_vec())
        }
        1 => {
            let header = decode_header(inp, genesis);
            let len = usize::from(inp.u16() % 4096);
            Content::Data {
                header,
                body: inp.bytes(len).to_vec(),
                sparse_len: None,
            }
        }
        2 => {
            let slots = [decode_slot(inp), decode_slot(inp)];
            let len = match inp.u8() % 4 {
                0 => usize::from(inp.u16() % 1024),
                1 => 2 * SLOT_LEN + usize::from(inp.u8()),
                _ => 2 * SLOT_LEN,
            };
            Content::State { slots, len }
        }
        3 => {
            let n = inp.u8() % 4;
            let entries = (0..n)
                .map(|_| {
                    let r = inp.u8();
                    if r % 4 == 3 {
                        let mut last = [0u8; 8];
                        let b = inp.bytes(8);
                        last[..b.len()].copy_from_slice(b);
                        CpEntry::Raw {
                            index: u64::from(inp.u32()) | (u64::from(inp.u8() % 2) << 40),
                            len: u64::from(inp.u32()),
                            last,
                        }
                    } else {
                        CpEntry::Rel {
                            index: u32::from(inp.u8() % 4),
                            cut: u64::from(inp.u8()),
                            flip: r & 4 != 0,
                        }
                    }
                })
                .collect();
            let tail = usize::from(inp.u8() % 52);
            Content::Checkpoint {
                entries,
                tail: inp.bytes(tail).to_vec(),
            }
        }
        _ => {
            let mut header = genesis.to_vec();
            header.extend_from_slice(&inp.trim_offset().to_le_bytes());
            header.extend_from_slice(&[0u8; 16]);
            let sparse_len = match inp.u8() % 4 {
                0 => 3 << 30,
                1 => (1 << 32) + 23,
                2 => (1 << 32) + 24,
                _ => 5 << 30,
            };
            let len = usize::from(inp.u8());
            Content::Data {
                header,
                body: inp.bytes(len).to_vec(),
                sparse_len: Some(sparse_len),
            }
        }
    }
}

/// A regular file as it will be written: its first bytes and its length.
struct Written {
    bytes: Vec<u8>,
    len: u64,
}

impl Written {
    fn byte(&self, at: u64) -> u8 {
        usize::try_from(at)
            .ok()
            .and_then(|i| self.bytes.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// The trim offset in its header, or 0.
    fn trim_offset(&self) -> u32 {
        match self.bytes.get(4..8) {
            Some(b) => u32::from_le_bytes(b.try_into().unwrap_or([0; 4])),
            None => 0,
        }
    }

    /// `trim offset + length - 24`, as recovery computes it (wrapping here).
    fn logical_end(&self) -> u32 {
        let stored = self.len.saturating_sub(HEADER_LEN as u64) % (1 << 32);
        self.trim_offset()
            .wrapping_add(u32::try_from(stored).unwrap_or(0))
    }
}

impl SlotFields {
    fn encode(&self, files: &BTreeMap<&str, Written>) -> [u8; SLOT_LEN] {
        let end = match self.end {
            End::Abs(e) => e,
            End::Rel { index, delta } => files
                .get(NAMES[index as usize % 4])
                .map_or(0, Written::logical_end)
                .wrapping_add_signed(i32::from(delta)),
        };
        let arg = self.arg.unwrap_or_else(|| {
            let temp = format!(".tmp.data{:05}.dat", self.pending_index);
            files.get(temp.as_str()).map_or(0, Written::trim_offset)
        });
        let mut s = [0u8; SLOT_LEN];
        s[0..8].copy_from_slice(b"AIODSKDB");
        s[8..12].copy_from_slice(&1u32.to_le_bytes());
        s[12..20].copy_from_slice(&self.seq.to_le_bytes());
        s[20..24].copy_from_slice(&u32::from(self.clean).to_le_bytes());
        s[24..28].copy_from_slice(&self.head.to_le_bytes());
        s[28..32].copy_from_slice(&end.to_le_bytes());
        s[32..36].copy_from_slice(&self.kind.to_le_bytes());
        s[36..40].copy_from_slice(&self.pending_index.to_le_bytes());
        s[40..44].copy_from_slice(&arg.to_le_bytes());
        let crc = crc32c(&s[..44]);
        s[44..48].copy_from_slice(&crc.to_le_bytes());
        s
    }
}

/// CRC-32C (Castagnoli), bitwise: the state slots' checksum.
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

impl Case {
    fn decode(data: &[u8]) -> Case {
        let mut inp = Input(data);
        let c = inp.u8();
        let mut genesis = GENESIS;
        if c & 0b1_1000 == 0b1_1000 {
            let b = inp.bytes(4);
            genesis[..b.len()].copy_from_slice(b);
        }
        let cfg = Config {
            sync: c & 0b11 == 0b11,
            clean_stale_data: c & 0b100 == 0,
            genesis,
            max_file_size: [64, 4096, 1 << 20, u64::from(u32::MAX)][usize::from((c >> 5) % 4)],
        };
        let mut entries = BTreeMap::new();
        for _ in 0..inp.u8() % 9 {
            let name = NAMES[usize::from(inp.u8()) % NAMES.len()];
            let kind = inp.u8();
            let entry = match kind % 8 {
                5 => Entry::Dir,
                6 => Entry::DevZero,
                7 => Entry::Link(NAMES[usize::from(inp.u8()) % NAMES.len()]),
                _ => Entry::File(decode_content(&mut inp, kind, GENESIS)),
            };
            entries.insert(name, entry);
        }
        let reads = (0..inp.u8() % 5)
            .map(|_| {
                let index = u32::from(inp.u8() % 8);
                let position = match inp.u8() % 4 {
                    0 => 0,
                    1 => u32::from(inp.u8()),
                    2 => u32::from(inp.u16()),
                    _ => inp.u32(),
                };
                ItemLocation {
                    index,
                    position,
                    size: u32::from(inp.u16()),
                }
            })
            .collect();
        let max_item = cfg
            .max_buffer_size()
            .min(cfg.max_file_size - HEADER_LEN as u64)
            .min(4096);
        let len = 1 + u64::from(inp.u16()) % max_item;
        let len = usize::try_from(len).unwrap_or(1);
        let mut item = inp.bytes(len).to_vec();
        item.resize(len, 0xa5);
        Case {
            cfg,
            entries,
            reads,
            item,
        }
    }

    /// Writes the entries into `dir`: regular files first, so that state slots and
    /// checkpoints can refer to the data files' lengths and bytes.
    fn write(&self, dir: &Path) -> std::io::Result<()> {
        let mut files: BTreeMap<&str, Written> = BTreeMap::new();
        for (name, entry) in &self.entries {
            match entry {
                Entry::File(Content::Raw(bytes)) => {
                    files.insert(
                        name,
                        Written {
                            bytes: bytes.clone(),
                            len: bytes.len() as u64,
                        },
                    );
                }
                Entry::File(Content::Data {
                    header,
                    body,
                    sparse_len,
                }) => {
                    let mut bytes = header.clone();
                    bytes.extend_from_slice(body);
                    let len = sparse_len.unwrap_or(bytes.len() as u64);
                    files.insert(name, Written { bytes, len });
                }
                _ => {}
            }
        }
        for (name, entry) in &self.entries {
            let path = dir.join(name);
            match entry {
                Entry::Dir => std::fs::create_dir(&path)?,
                Entry::DevZero => std::os::unix::fs::symlink("/dev/zero", &path)?,
                Entry::Link(target) => std::os::unix::fs::symlink(target, &path)?,
                Entry::File(Content::Raw(_) | Content::Data { .. }) => {
                    let w = &files[name];
                    let f = std::fs::File::create(&path)?;
                    std::io::Write::write_all(&mut &f, &w.bytes)?;
                    if w.len != w.bytes.len() as u64 {
                        f.set_len(w.len)?;
                    }
                }
                Entry::File(Content::State { slots, len }) => {
                    let mut bytes = Vec::with_capacity(2 * SLOT_LEN);
                    for slot in slots {
                        let mut raw = match slot {
                            Slot::Zero => vec![0u8; SLOT_LEN],
                            Slot::Valid(f) => f.encode(&files).to_vec(),
                            Slot::Torn(f, at) => {
                                let mut s = f.encode(&files);
                                s[*at] ^= 0x10;
                                s.to_vec()
                            }
                            Slot::Garbage(g) => g.clone(),
                        };
                        raw.resize(SLOT_LEN, 0);
                        bytes.extend_from_slice(&raw);
                    }
                    bytes.resize(*len, 0);
                    std::fs::write(&path, &bytes)?;
                }
                Entry::File(Content::Checkpoint { entries, tail }) => {
                    let mut bytes = Vec::new();
                    for e in entries {
                        let (index, len, last) = match e {
                            CpEntry::Raw { index, len, last } => (*index, *len, *last),
                            CpEntry::Rel { index, cut, flip } => {
                                let w = files.get(NAMES[*index as usize]);
                                let len = w.map_or(0, |w| w.len).saturating_sub(*cut);
                                let mut last = [0u8; 8];
                                for (i, b) in last.iter_mut().enumerate() {
                                    let at = (len + i as u64).checked_sub(8);
                                    *b = match (w, at) {
                                        (Some(w), Some(at)) => w.byte(at),
                                        _ => 0,
                                    };
                                }
                                if *flip {
                                    last[7] ^= 0xff;
                                }
                                (u64::from(*index), len, last)
                            }
                        };
                        bytes.extend_from_slice(&index.to_le_bytes()[..6]);
                        bytes.extend_from_slice(&len.to_le_bytes()[..6]);
                        bytes.extend_from_slice(&last);
                        bytes.extend_from_slice(&[0u8; 32]);
                    }
                    bytes.extend_from_slice(tail);
                    std::fs::write(&path, &bytes)?;
                }
            }
        }
        Ok(())
    }

    async fn check(&self, dir: &Path) -> Result<Outcome, String> {
        let before = snapshot(dir);
        // Inspection is read-only whatever the directory holds.
        match self.cfg.builder(dir).inspect().await {
            Ok(_) => {}
            Err(e @ Error::Io { .. }) => typed("inspect", &e)?,
            Err(e) => return Err(format!("inspect failed with {e:?}")),
        }
        if snapshot(dir) != before {
            return Err("inspect changed the directory".into());
        }
        let db = match self.cfg.builder(dir).open().await {
            Ok(db) => db,
            Err(e) => return refused(dir, &before, &e),
        };
        // Reads of what recovery kept: never another item's bytes, never partial.
        let mut reads = self.reads.clone();
        for index in 0..8 {
            if let Some(file) = small_file(dir, index) {
                if file.len() >= HEADER_LEN {
                    let stored = file.len() - HEADER_LEN;
                    reads.push(ItemLocation {
                        index,
                        position: header_trim(&file),
                        size: u32::try_from(stored.min(4096)).unwrap_or(0),
                    });
                }
            }
        }
        let mut seen = Vec::new();
        for loc in reads {
            match db.read(loc).await {
                Ok(Some(got)) => {
                    let differs = match on_disk(dir, loc) {
                        Disk::Bytes(want) => want[..] != got[..],
                        Disk::Missing => true,
                        Disk::Unknown => got.len() != loc.size as usize,
                    };
                    if differs {
                        return Err(format!(
                            "read {loc} returned {} bytes that differ from the file",
                            got.len()
                        ));
                    }
                    seen.push((loc, got.to_vec()));
                }
                Ok(None) => {}
                Err(e) => typed(&format!("read {loc}"), &e)?,
            }
        }
        match self.session(dir, db, seen).await {
            Ok(()) => Ok(Outcome::Opened),
            Err(Halt::Exhausted) => Ok(Outcome::SeqExhausted),
            Err(Halt::Violation(v)) => Err(v),
        }
    }

    /// Adds, flushes, stops, reopens, and reads the item and `seen` back.
    async fn session(
        &self,
        dir: &Path,
        db: AioDiskDb,
        seen: Vec<(ItemLocation, Vec<u8>)>,
    ) -> Result<(), Halt> {
        let loc = step("add", db.add(self.item.clone()).await)?;
        expect_item(&db, loc, &self.item, "after add").await?;
        step("flush", db.flush().await)?;
        expect_item(&db, loc, &self.item, "after flush").await?;
        step("stop", db.stop().await)?;
        drop(db);
        let db = step(
            "reopen after a clean stop",
            self.cfg.builder(dir).open().await,
        )?;
        expect_item(&db, loc, &self.item, "after reopen").await?;
        for (loc, want) in seen {
            expect_item(&db, loc, &want, "read before, after reopen").await?;
        }
        step("second stop", db.stop().await)
    }
}

/// Why a session ended early.
enum Halt {
    Violation(String),
    /// A forged state slot's sequence number reached `u64::MAX`: commits are refused with
    /// a typed error, by design.
    Exhausted,
}

impl From<String> for Halt {
    fn from(v: String) -> Halt {
        Halt::Violation(v)
    }
}

fn step<T>(what: &str, r: aiodiskdb::Result<T>) -> Result<T, Halt> {
    r.map_err(|e| {
        // The flush that needed the next sequence number poisoned the handle: later calls
        // name it as their cause.
        let exhausted = |e: &Error| {
            matches!(e, Error::InvalidDbState { reason, .. } if reason.contains("sequence number is exhausted"))
        };
        match &e {
            Error::InvalidDbState { cause, .. } if exhausted(&e) || cause.as_deref().is_some_and(exhausted) => {
                Halt::Exhausted
            }
            _ => Halt::Violation(format!("{what} failed: {e:?}")),
        }
    })
}

/// Checks a refusal of `open`.
fn refused(dir: &Path, before: &BTreeMap<String, Snap>, e: &Error) -> Result<Outcome, String> {
    typed("open", e)?;
    let v = variant(e);
    if matches!(
        e,
        Error::Locked { .. }
            | Error::NotRunning
            | Error::Timeout { .. }
            | Error::InvalidConfiguration { .. }
    ) {
        return Err(format!("open of a fresh directory failed with {v}: {e}"));
    }
    if matches!(e, Error::InvalidDataFile { .. }) {
        let after = snapshot(dir);
        let data = |s: &BTreeMap<String, Snap>| {
            s.iter()
                .filter(|(n, _)| n.starts_with("data"))
                .map(|(n, s)| (n.clone(), s.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        if data(before) != data(&after) {
            return Err(format!("open failed with {e} after changing data files"));
        }
    }
    Ok(Outcome::Refused(v))
}

async fn expect_item(
    db: &AioDiskDb,
    loc: ItemLocation,
    want: &[u8],
    when: &str,
) -> Result<(), String> {
    match db.read(loc).await {
        Ok(Some(got)) if got[..] == *want => Ok(()),
        Ok(Some(got)) => Err(format!(
            "{when}: read {loc} returned {} different bytes",
            got.len()
        )),
        Ok(None) => Err(format!("{when}: read {loc} returned None")),
        Err(e) => Err(format!("{when}: read {loc} failed: {e:?}")),
    }
}

/// A regular file's bytes, or its length if it is long.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Snap {
    Bytes(Vec<u8>),
    Len(u64),
}

/// The regular files (not following symlinks) of `dir`.
fn snapshot(dir: &Path) -> BTreeMap<String, Snap> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let snap = if meta.len() <= SMALL_FILE {
            std::fs::read(entry.path()).map_or(Snap::Len(meta.len()), Snap::Bytes)
        } else {
            Snap::Len(meta.len())
        };
        out.insert(name, snap);
    }
    out
}

/// The bytes of `data{index}.dat` (following symlinks) if it is a small regular file.
fn small_file(dir: &Path, index: u32) -> Option<Vec<u8>> {
    let path = dir.join(format!("data{index:05}.dat"));
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > SMALL_FILE {
        return None;
    }
    std::fs::read(path).ok()
}

fn header_trim(file: &[u8]) -> u32 {
    file.get(4..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// What a file holds at a location.
enum Disk {
    /// The file is not a small regular file: not checked.
    Unknown,
    /// The file does not hold the whole range.
    Missing,
    Bytes(Vec<u8>),
}

/// The bytes of `loc` as its file holds them now.
fn on_disk(dir: &Path, loc: ItemLocation) -> Disk {
    let Some(file) = small_file(dir, loc.index) else {
        return Disk::Unknown;
    };
    let Some(at) = u64::from(loc.position).checked_sub(u64::from(header_trim(&file))) else {
        return Disk::Missing;
    };
    let start = usize::try_from(at)
        .unwrap_or(usize::MAX)
        .saturating_add(HEADER_LEN);
    let end = start.saturating_add(loc.size as usize);
    file.get(start..end)
        .map_or(Disk::Missing, |b| Disk::Bytes(b.to_vec()))
}
