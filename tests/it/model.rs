//! A property test: random sequences of adds, flushes, transactions, trims, drops, reads,
//! overwrite switches and reopens on a real directory, checked after every operation
//! against an in-memory model derived from SPEC section 2.
//!
//! The configuration is tiny (files of 600 bytes, a buffer of 300 bytes or 8 items), so
//! rollovers, flush triggers and back pressure happen all the time.
//!
//! The model keeps, per index, the trim offset and the bytes of every logical position up
//! to the end (a location is a byte range: a stale location over space that an `rtrim` of
//! the current file gave back reads the new bytes), which index is current, and the
//! overwrite flag. Every operation's result or error kind is compared with the model, every
//! location ever returned is read back after every operation, and at each reopen the data
//! files on disk are compared byte for byte with the model.
//!
//! `PROPTEST_CASES` sets the number of cases (default 512: about 3 s; 64 missed an ltrim that
//! left fewer than 8 bytes, found in one CI run in several), `AIODISKDB_MODEL_OPS` the most
//! operations per case (default 60), `PROPTEST_RNG_SEED` replays a run. A failure prints
//! the shrunk case.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use aiodiskdb::{AioDiskDb, Durability, Error, ItemLocation};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::common::{data_files, file_bytes, header, item, TestResult, HEADER_LEN};

const MAX_FILE: u64 = 600;
/// Also the largest item `add` accepts.
const MAX_BUFFER: usize = 300;
const BUFFER_ITEMS: usize = 8;
/// The largest transaction item: what fits a fresh file.
const MAX_TX_ITEM: usize = 576;
/// Longest a single operation may take before the case fails as hung.
const OP_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------

/// Which index an operation targets, resolved against the model when it runs (so that
/// shrinking keeps every operation meaningful).
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The current (highest) index.
    Current,
    /// The k-th existing index, modulo how many exist.
    Existing(usize),
    /// An index that does not exist: a deleted one if any (k-th), else one past the head.
    Missing(usize),
    /// `u32::MAX`.
    Max,
}

/// A logical position in the target index, resolved against the model.
#[derive(Debug, Clone, Copy)]
enum Pos {
    Zero,
    TrimOffset,
    End,
    /// Past the end by 1 + k % 8.
    PastEnd(u32),
    /// Where the k-th known location of the index starts.
    ItemStart(usize),
    /// Somewhere between the trim offset and the end.
    Between(u32),
}

/// The safety check of a trim.
#[derive(Debug, Clone, Copy)]
enum Check {
    None,
    /// The right bytes, up to this many (fewer when the stored range is shorter).
    Correct(usize),
    /// The right bytes with one flipped, or bytes that cannot match.
    Wrong(usize),
}

/// Which location a `Read` asks for.
#[derive(Debug, Clone, Copy)]
enum ReadPick {
    /// The k-th location ever returned.
    Known(usize),
    /// A sub-range of the k-th location ever returned.
    Inside(usize, u16, u16),
    /// A range of an existing index that passes its end.
    PastEnd(usize, u16),
    /// An index that never existed, with any position and size.
    Bogus(u32, u32, u32),
}

#[derive(Debug, Clone)]
enum Op {
    /// Add an item of this many bytes (0 and more than `MAX_BUFFER` are refused).
    Add(usize),
    Flush,
    /// Commit a transaction of items of these sizes (none: `EmptyTransaction`).
    Commit(Vec<usize>),
    Rtrim(Target, Pos, Check),
    Ltrim(Target, Pos, Check),
    DropIndex(Target),
    /// Stop, check the files on disk, open again with this overwrite option.
    Reopen(bool),
    Read(ReadPick),
    EnableOverwrite,
    DisableOverwrite,
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        4 => Just(Target::Current),
        5 => (0..16usize).prop_map(Target::Existing),
        2 => (0..16usize).prop_map(Target::Missing),
        1 => Just(Target::Max),
    ]
}

fn pos() -> impl Strategy<Value = Pos> {
    prop_oneof![
        2 => Just(Pos::Zero),
        1 => Just(Pos::TrimOffset),
        1 => Just(Pos::End),
        1 => (0..8u32).prop_map(Pos::PastEnd),
        4 => (0..32usize).prop_map(Pos::ItemStart),
        3 => any::<u32>().prop_map(Pos::Between),
    ]
}

fn check() -> impl Strategy<Value = Check> {
    prop_oneof![
        3 => Just(Check::None),
        4 => (1..=8usize).prop_map(Check::Correct),
        2 => (1..=8usize).prop_map(Check::Wrong),
    ]
}

fn read_pick() -> impl Strategy<Value = ReadPick> {
    prop_oneof![
        4 => (0..64usize).prop_map(ReadPick::Known),
        2 => (0..64usize, any::<u16>(), any::<u16>())
            .prop_map(|(k, a, b)| ReadPick::Inside(k, a, b)),
        1 => (0..16usize, any::<u16>()).prop_map(|(k, d)| ReadPick::PastEnd(k, d)),
        1 => (any::<u32>(), any::<u32>(), any::<u32>())
            .prop_map(|(i, p, s)| ReadPick::Bogus(i, p, s)),
    ]
}

fn item_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        30 => 1..=MAX_BUFFER,
        1 => Just(0usize),
        1 => (MAX_BUFFER + 1)..=(MAX_BUFFER + 40),
    ]
}

fn tx_item_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 1..=MAX_BUFFER,
        2 => (MAX_BUFFER + 1)..=MAX_TX_ITEM,
        1 => (MAX_TX_ITEM + 1)..=(MAX_TX_ITEM + 30),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => item_size().prop_map(Op::Add),
        4 => Just(Op::Flush),
        5 => prop::collection::vec(tx_item_size(), 0..=4).prop_map(Op::Commit),
        7 => (target(), pos(), check()).prop_map(|(t, p, c)| Op::Rtrim(t, p, c)),
        7 => (target(), pos(), check()).prop_map(|(t, p, c)| Op::Ltrim(t, p, c)),
        3 => target().prop_map(Op::DropIndex),
        3 => prop_oneof![5 => Just(true), 1 => Just(false)].prop_map(Op::Reopen),
        8 => read_pick().prop_map(Op::Read),
        3 => Just(Op::EnableOverwrite),
        1 => Just(Op::DisableOverwrite),
    ]
}

/// One case: the durability mode, the initial overwrite option and the operations.
#[derive(Debug, Clone)]
struct Case {
    sync: bool,
    overwrite: bool,
    ops: Vec<Op>,
}

fn case(max_ops: usize) -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        prop_oneof![3 => Just(true), 1 => Just(false)],
        prop::collection::vec(op(), 1..=max_ops),
    )
        .prop_map(|(sync, overwrite, ops)| Case {
            sync,
            overwrite,
            ops,
        })
}

// ---------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------

/// Error kinds the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ReadOnly,
    IndexDoesNotExist(u32),
    InvalidTrimCommand(u32),
    EmptyPayload,
    ItemTooLarge,
    EmptyTransaction,
}

fn kind_of(e: &Error) -> Option<Kind> {
    Some(match e {
        Error::ReadOnly => Kind::ReadOnly,
        Error::IndexDoesNotExist { index } => Kind::IndexDoesNotExist(*index),
        Error::InvalidTrimCommand { index, .. } => Kind::InvalidTrimCommand(*index),
        Error::EmptyPayload => Kind::EmptyPayload,
        Error::ItemTooLarge { .. } => Kind::ItemTooLarge,
        Error::EmptyTransaction => Kind::EmptyTransaction,
        _ => return None,
    })
}

/// Compares a result with the model's prediction.
fn same<T: PartialEq + std::fmt::Debug>(
    got: &aiodiskdb::Result<T>,
    want: &Result<T, Kind>,
) -> Result<(), String> {
    let ok = match (got, want) {
        (Ok(g), Ok(w)) => g == w,
        (Err(e), Err(k)) => kind_of(e) == Some(*k),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("library returned {got:?}, model expects {want:?}"))
    }
}

#[derive(Debug, Clone, Default)]
struct FileModel {
    /// Logical position of the first stored byte.
    trim: u32,
    /// The bytes of logical positions `0..end` (those below `trim` are gone).
    data: Vec<u8>,
    /// Which write (item tag) put each byte there.
    writer: Vec<u32>,
}

impl FileModel {
    fn end(&self) -> u32 {
        u32::try_from(self.data.len()).expect("tiny files")
    }

    fn stored(&self) -> u64 {
        u64::from(self.end() - self.trim)
    }

    fn truncate(&mut self, end: u32) {
        self.data.truncate(end as usize);
        self.writer.truncate(end as usize);
    }

    /// The stored bytes of `[from, from + len)`, if all of them are stored.
    fn slice(&self, from: u64, len: u64) -> Option<&[u8]> {
        let to = from.checked_add(len)?;
        if from < u64::from(self.trim) || to > u64::from(self.end()) {
            return None;
        }
        self.data
            .get(usize::try_from(from).ok()?..usize::try_from(to).ok()?)
    }
}

#[derive(Debug)]
struct Model {
    files: BTreeMap<u32, FileModel>,
    /// The current index: where appends go.
    head: u32,
    overwrite: bool,
    /// Every location ever returned.
    known: Vec<ItemLocation>,
    /// Per index, the lowest position written since everything was last persisted: bytes
    /// from there on may still be in RAM.
    unflushed: BTreeMap<u32, u32>,
    next_tag: u32,
}

impl Model {
    fn new(overwrite: bool) -> Self {
        Model {
            files: BTreeMap::from([(0, FileModel::default())]),
            head: 0,
            overwrite,
            known: Vec::new(),
            unflushed: BTreeMap::new(),
            next_tag: 0,
        }
    }

    fn tag(&mut self) -> u32 {
        self.next_tag += 1;
        self.next_tag
    }

    /// The placement rule: at the end of the current index, unless the file (header
    /// included) would pass `MAX_FILE`; then at 0 of the next index.
    fn place(&mut self, data: &[u8], tag: u32) -> ItemLocation {
        let size = u32::try_from(data.len()).expect("small item");
        let head = &self.files[&self.head];
        if HEADER_LEN + head.stored() + u64::from(size) > MAX_FILE {
            self.head += 1;
            self.files.insert(self.head, FileModel::default());
        }
        let f = self.files.get_mut(&self.head).expect("head exists");
        let loc = ItemLocation {
            index: self.head,
            position: f.end(),
            size,
        };
        f.data.extend_from_slice(data);
        f.writer.extend(std::iter::repeat_n(tag, data.len()));
        let low = self.unflushed.entry(loc.index).or_insert(loc.position);
        *low = (*low).min(loc.position);
        self.known.push(loc);
        loc
    }

    fn persisted(&mut self) {
        self.unflushed.clear();
    }

    fn expect(&self, loc: ItemLocation) -> Option<&[u8]> {
        if loc.size == 0 {
            return None;
        }
        self.files
            .get(&loc.index)?
            .slice(u64::from(loc.position), u64::from(loc.size))
    }

    /// Whether the library may also answer `None` for a range the model holds: a range made
    /// of several writes can straddle the boundary between RAM and disk (only a stale or
    /// made-up location can), which the library reports as not wholly stored.
    fn ambiguous(&self, loc: ItemLocation) -> bool {
        let Some(f) = self.files.get(&loc.index) else {
            return false;
        };
        let Some(&low) = self.unflushed.get(&loc.index) else {
            return false;
        };
        let from = loc.position as usize;
        let to = from + loc.size as usize;
        let writers = &f.writer[from..to];
        to > low as usize && writers.iter().any(|w| *w != writers[0])
    }

    fn resolve_index(&self, t: Target) -> u32 {
        match t {
            Target::Current => self.head,
            Target::Existing(k) => *self
                .files
                .keys()
                .nth(k % self.files.len())
                .expect("at least the head"),
            Target::Missing(k) => {
                let gone: Vec<u32> = (0..self.head)
                    .filter(|i| !self.files.contains_key(i))
                    .collect();
                if gone.is_empty() {
                    self.head + 1 + u32::try_from(k % 3).expect("small")
                } else {
                    gone[k % gone.len()]
                }
            }
            Target::Max => u32::MAX,
        }
    }

    fn resolve_pos(&self, index: u32, p: Pos) -> u32 {
        let Some(f) = self.files.get(&index) else {
            return match p {
                Pos::Between(x) => x % 1000,
                Pos::PastEnd(x) => 1 + x,
                _ => 0,
            };
        };
        match p {
            Pos::Zero => 0,
            Pos::TrimOffset => f.trim,
            Pos::End => f.end(),
            Pos::PastEnd(k) => f.end() + 1 + k % 8,
            Pos::ItemStart(k) => {
                let starts: Vec<u32> = self
                    .known
                    .iter()
                    .filter(|l| l.index == index)
                    .map(|l| l.position)
                    .collect();
                if starts.is_empty() {
                    f.trim
                } else {
                    starts[k % starts.len()]
                }
            }
            Pos::Between(x) => f.trim + x % (f.end() - f.trim + 1),
        }
    }

    /// The safety check to send: `at..at + len` for `rtrim` (`before` false), or
    /// `at - len..at` for `ltrim`.
    fn resolve_check(&self, index: u32, at: u32, c: Check, before: bool) -> Vec<u8> {
        let (want, wrong) = match c {
            Check::None => return Vec::new(),
            Check::Correct(n) => (n, false),
            Check::Wrong(n) => (n, true),
        };
        let f = self.files.get(&index);
        // How many bytes are stored on the checked side of `at`.
        let avail = f.map_or(0, |f| {
            if before && at <= f.end() {
                at.saturating_sub(f.trim) as usize
            } else if !before && at >= f.trim {
                f.end().saturating_sub(at) as usize
            } else {
                0
            }
        });
        let mut bytes = match f {
            Some(f) if avail > 0 => {
                let n = want.min(avail);
                let from = if before { at as usize - n } else { at as usize };
                f.data[from..from + n].to_vec()
            }
            // Nothing stored to check against: any bytes, which cannot match.
            _ => vec![0xA5; want],
        };
        if wrong && !bytes.is_empty() {
            let k = want % bytes.len();
            bytes[k] ^= 0xFF;
        }
        bytes
    }

    fn drop_file(&mut self, index: u32) -> u64 {
        let f = self.files.remove(&index).expect("exists");
        if index == self.head {
            self.head += 1;
            self.files.insert(self.head, FileModel::default());
        }
        f.stored()
    }

    fn rtrim(&mut self, index: u32, from: u32, check: &[u8]) -> Result<u64, Kind> {
        if !self.overwrite {
            return Err(Kind::ReadOnly);
        }
        self.persisted(); // every trim flushes the buffer first
        let head = self.head;
        let f = self
            .files
            .get_mut(&index)
            .ok_or(Kind::IndexDoesNotExist(index))?;
        let bad = Kind::InvalidTrimCommand(index);
        if from > f.end() {
            return Err(bad);
        }
        if !check.is_empty() && f.slice(u64::from(from), check.len() as u64) != Some(check) {
            return Err(bad);
        }
        let new_end = from.max(f.trim);
        let cut = u64::from(f.end() - new_end);
        if from == 0 && index != head {
            return Ok(self.drop_file(index));
        }
        f.truncate(new_end);
        Ok(cut)
    }

    fn ltrim(&mut self, index: u32, to: u32, check: &[u8]) -> Result<u64, Kind> {
        if !self.overwrite {
            return Err(Kind::ReadOnly);
        }
        self.persisted();
        let f = self
            .files
            .get_mut(&index)
            .ok_or(Kind::IndexDoesNotExist(index))?;
        let bad = Kind::InvalidTrimCommand(index);
        if to <= f.trim || to > f.end() {
            return Err(bad);
        }
        if !check.is_empty() {
            let Some(start) = u64::from(to).checked_sub(check.len() as u64) else {
                return Err(bad);
            };
            if f.slice(start, check.len() as u64) != Some(check) {
                return Err(bad);
            }
        }
        if to == f.end() {
            return Ok(self.drop_file(index));
        }
        let cut = u64::from(to - f.trim);
        f.trim = to;
        Ok(cut)
    }

    fn drop_index(&mut self, index: u32) -> Result<u64, Kind> {
        if !self.overwrite {
            return Err(Kind::ReadOnly);
        }
        self.persisted();
        if !self.files.contains_key(&index) {
            return Err(Kind::IndexDoesNotExist(index));
        }
        Ok(self.drop_file(index))
    }

    fn resolve_read(&self, pick: ReadPick) -> ItemLocation {
        let known = |k: usize| self.known.get(k % self.known.len().max(1)).copied();
        let fallback = ItemLocation {
            index: 0,
            position: 0,
            size: 1,
        };
        match pick {
            ReadPick::Known(k) => known(k).unwrap_or(fallback),
            ReadPick::Inside(k, a, b) => known(k).map_or(fallback, |l| {
                let start = u32::from(a) % l.size;
                ItemLocation {
                    index: l.index,
                    position: l.position + start,
                    size: 1 + u32::from(b) % (l.size - start),
                }
            }),
            ReadPick::PastEnd(k, d) => {
                let (&index, f) = self
                    .files
                    .iter()
                    .nth(k % self.files.len())
                    .expect("at least the head");
                let back = u32::from(d % 8).min(f.end());
                ItemLocation {
                    index,
                    position: f.end() - back,
                    size: back + 1 + u32::from(d >> 8),
                }
            }
            ReadPick::Bogus(i, position, size) => ItemLocation {
                index: self.head.saturating_add(1).saturating_add(i % 1000).max(i),
                position,
                size,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------
// Running a case
// ---------------------------------------------------------------------------------------

/// What the cases exercised, for the summary line.
#[derive(Debug, Default)]
struct Stats {
    ops: u64,
    /// Operations whose result was `Ok`, by name.
    ok: BTreeMap<&'static str, u64>,
    /// Expected errors seen, by kind.
    errors: BTreeMap<String, u64>,
    reads: u64,
    some_reads: u64,
    /// Reads the model allowed to be `None` (a range straddling RAM and disk).
    ambiguous: u64,
    highest_index: u32,
}

impl Stats {
    fn result<T>(&mut self, name: &'static str, r: &aiodiskdb::Result<T>) {
        match r {
            Ok(_) => *self.ok.entry(name).or_default() += 1,
            Err(e) => {
                let k = kind_of(e).map_or_else(|| e.to_string(), |k| format!("{k:?}"));
                let k = k.split('(').next().unwrap_or_default().to_owned();
                *self.errors.entry(k).or_default() += 1;
            }
        }
    }
}

struct Run<'s> {
    stats: &'s std::cell::RefCell<Stats>,
    dir: tempfile::TempDir,
    db: AioDiskDb,
    model: Model,
    sync: bool,
}

async fn open(dir: &Path, overwrite: bool, sync: bool) -> aiodiskdb::Result<AioDiskDb> {
    AioDiskDb::builder(dir)
        .max_file_size(MAX_FILE)
        .max_buffer_size(MAX_BUFFER as u64)
        .max_buffer_items(BUFFER_ITEMS)
        .overwrite(overwrite)
        .durability(if sync {
            Durability::Sync
        } else {
            Durability::Os
        })
        .open()
        .await
}

fn brief(b: Option<&[u8]>) -> String {
    match b {
        None => "None".to_owned(),
        Some(b) => format!("{} bytes {:02x?}..", b.len(), &b[..b.len().min(6)]),
    }
}

impl Run<'_> {
    async fn check_read(&self, loc: ItemLocation) -> Result<(), String> {
        let got = self
            .db
            .read(loc)
            .await
            .map_err(|e| format!("read {loc}: {e}"))?;
        let want = self.model.expect(loc);
        let mut stats = self.stats.borrow_mut();
        stats.reads += 1;
        match (got.as_deref(), want) {
            (None, None) => Ok(()),
            (Some(g), Some(w)) if g == w => {
                stats.some_reads += 1;
                Ok(())
            }
            (None, Some(_)) if self.model.ambiguous(loc) => {
                stats.ambiguous += 1;
                Ok(())
            }
            (g, w) => Err(format!(
                "read {loc}: library returned {}, model expects {}",
                brief(g),
                brief(w)
            )),
        }
    }

    async fn check_all(&self) -> Result<(), String> {
        for loc in &self.model.known {
            self.check_read(*loc).await?;
        }
        Ok(())
    }

    /// After a clean stop, the data files are exactly the model's, byte for byte.
    fn check_files(&self) -> Result<(), String> {
        let names: Vec<String> = self
            .model
            .files
            .keys()
            .map(|i| format!("data{i:05}.dat"))
            .collect();
        let on_disk = data_files(self.dir.path());
        if on_disk != names {
            return Err(format!("data files {on_disk:?}, model expects {names:?}"));
        }
        for (i, f) in &self.model.files {
            let name = format!("data{i:05}.dat");
            let mut want = header(f.trim);
            want.extend_from_slice(&f.data[f.trim as usize..]);
            let got = file_bytes(self.dir.path(), &name);
            if got != want {
                return Err(format!(
                    "{name}: {} bytes on disk (trim offset {:?}), model expects {} (trim offset {})",
                    got.len(),
                    got.get(4..8),
                    want.len(),
                    f.trim
                ));
            }
        }
        Ok(())
    }

    async fn add(&mut self, size: usize) -> Result<(), String> {
        let tag = self.model.tag();
        let data = item(tag, size);
        let got = self.db.add(data.clone()).await;
        self.stats.borrow_mut().result("add", &got);
        let want = if size == 0 {
            Err(Kind::EmptyPayload)
        } else if size > MAX_BUFFER {
            Err(Kind::ItemTooLarge)
        } else {
            Ok(self.model.place(&data, tag))
        };
        same(&got, &want)
    }

    async fn commit(&mut self, sizes: &[usize]) -> Result<(), String> {
        let mut tx = self.db.transaction();
        let mut staged = Vec::new();
        for &size in sizes {
            let tag = self.model.tag();
            let data = item(tag, size);
            let got = tx.add(data.clone());
            if size > MAX_TX_ITEM {
                same(&got, &Err(Kind::ItemTooLarge))?;
            } else {
                same(&got, &Ok(()))?;
                staged.push((data, tag));
            }
        }
        let got = tx.commit().await;
        self.stats.borrow_mut().result("commit", &got);
        let want = if staged.is_empty() {
            Err(Kind::EmptyTransaction)
        } else {
            let locs = staged
                .iter()
                .map(|(data, tag)| self.model.place(data, *tag))
                .collect();
            self.model.persisted();
            Ok(locs)
        };
        same(&got, &want)
    }

    async fn reopen(&mut self, overwrite: bool) -> Result<(), String> {
        self.db.stop().await.map_err(|e| format!("stop: {e}"))?;
        if !matches!(self.db.add(&b"late"[..]).await, Err(Error::NotRunning))
            || !matches!(
                self.db
                    .read(ItemLocation::from_bytes(&[0; 12]).expect("12 bytes"))
                    .await,
                Err(Error::NotRunning)
            )
        {
            return Err("a stopped handle still accepts calls".to_owned());
        }
        self.model.persisted();
        self.check_files()?;
        self.db = open(self.dir.path(), overwrite, self.sync)
            .await
            .map_err(|e| format!("reopen: {e}"))?;
        self.model.overwrite = overwrite;
        Ok(())
    }

    async fn step(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Add(size) => self.add(*size).await?,
            Op::Flush => {
                self.db.flush().await.map_err(|e| format!("flush: {e}"))?;
                self.model.persisted();
            }
            Op::Commit(sizes) => self.commit(sizes).await?,
            Op::Rtrim(t, p, c) => {
                let index = self.model.resolve_index(*t);
                let from = self.model.resolve_pos(index, *p);
                let check = self.model.resolve_check(index, from, *c, false);
                let got = self.db.rtrim(index, from, &check).await;
                self.stats.borrow_mut().result("rtrim", &got);
                let want = self.model.rtrim(index, from, &check);
                same(&got, &want)
                    .map_err(|e| format!("rtrim({index}, {from}, {check:02x?}): {e}"))?;
            }
            Op::Ltrim(t, p, c) => {
                let index = self.model.resolve_index(*t);
                let to = self.model.resolve_pos(index, *p);
                let check = self.model.resolve_check(index, to, *c, true);
                let got = self.db.ltrim(index, to, &check).await;
                self.stats.borrow_mut().result("ltrim", &got);
                let want = self.model.ltrim(index, to, &check);
                same(&got, &want)
                    .map_err(|e| format!("ltrim({index}, {to}, {check:02x?}): {e}"))?;
            }
            Op::DropIndex(t) => {
                let index = self.model.resolve_index(*t);
                let got = self.db.drop_index(index).await;
                self.stats.borrow_mut().result("drop_index", &got);
                let want = self.model.drop_index(index);
                same(&got, &want).map_err(|e| format!("drop_index({index}): {e}"))?;
            }
            Op::Reopen(overwrite) => {
                self.reopen(*overwrite).await?;
                *self.stats.borrow_mut().ok.entry("reopen").or_default() += 1;
            }
            Op::Read(pick) => self.check_read(self.model.resolve_read(*pick)).await?,
            Op::EnableOverwrite => {
                self.db.enable_overwrite();
                self.model.overwrite = true;
            }
            Op::DisableOverwrite => {
                self.db.disable_overwrite();
                self.model.overwrite = false;
            }
        }
        {
            let mut stats = self.stats.borrow_mut();
            stats.ops += 1;
            stats.highest_index = stats.highest_index.max(self.model.head);
        }
        self.check_all().await
    }
}

async fn run_case(case: &Case, stats: &std::cell::RefCell<Stats>) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db = open(dir.path(), case.overwrite, case.sync)
        .await
        .map_err(|e| format!("open: {e}"))?;
    let mut run = Run {
        stats,
        dir,
        db,
        model: Model::new(case.overwrite),
        sync: case.sync,
    };
    for (n, op) in case.ops.iter().enumerate() {
        match tokio::time::timeout(OP_TIMEOUT, run.step(op)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("op #{n} {op:?}: {e}")),
            Err(_) => return Err(format!("op #{n} {op:?}: hung for {OP_TIMEOUT:?}")),
        }
    }
    // A last reopen checks the files and every location once more.
    run.reopen(true)
        .await
        .map_err(|e| format!("final reopen: {e}"))?;
    run.check_all()
        .await
        .map_err(|e| format!("after the final reopen: {e}"))?;
    run.db.stop().await.map_err(|e| format!("final stop: {e}"))
}

#[test]
fn random_operations_match_the_model() -> TestResult {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 512;
    }
    // Failures print the shrunk case; nothing is written next to the sources.
    config.failure_persistence = None;
    let max_ops = std::env::var("AIODISKDB_MODEL_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let mut runner = TestRunner::new(config);
    let started = std::time::Instant::now();
    let stats = std::cell::RefCell::new(Stats::default());
    runner
        .run(&case(max_ops), |case| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            rt.block_on(run_case(&case, &stats))
                .map_err(TestCaseError::fail)
        })
        .map_err(|e| e.to_string())?;
    let s = stats.into_inner();
    eprintln!(
        "model: {} cases, {} ops in {:.1?}; ok {:?}; expected errors {:?}; reads {} ({} with data, {} RAM/disk straddles); highest index {}",
        runner.config().cases,
        s.ops,
        started.elapsed(),
        s.ok,
        s.errors,
        s.reads,
        s.some_reads,
        s.ambiguous,
        s.highest_index
    );
    Ok(())
}
