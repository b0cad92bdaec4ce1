//! kill -9 of a real child process, many times over, some kills during open and recovery.
//!
//! The test binary re-executes itself: [`child_workload`] does nothing unless
//! `AIODISKDB_KILL_CHILD` names a directory. Then it runs a seeded mixed workload there,
//! with `Durability::Sync`, until it is killed: adds of random sizes, flushes,
//! transactions large enough to roll over the 64 KiB files, `rtrim`, `ltrim` and
//! `drop_index` of older files, and stop + reopen. It reports on its own channel, an ack
//! log (one file per run, never stdout):
//!
//! - hints, written as they happen: `o` / `O` before and after an open, `a <id> <loc>`
//!   after each add, `tb <id>:<size>..` before a commit, `rb <trim>` before a trim;
//! - acknowledgements, each synced (`sync_data`) before the child goes on: `f` (flush),
//!   `s` (stop), `to <id>=<loc>..` (commit), `rk <trim>` (trim). Each one also covers
//!   every add logged before it: a commit, a trim and a stop persist the buffer first.
//!
//! Item bytes derive from the item's id ([`content`]; the run number is in the high 32
//! bits), so the log carries no data.
//!
//! The parent kills the child with SIGKILL after a seeded delay (during process start,
//! just after an open began, or 50..400 ms into the workload), copies the directory,
//! opens the copy (recovery) and checks it against everything the logs said. The next
//! child then continues on the crashed original, so later kills land on a directory with
//! history, some of them in its recovery. `AIODISKDB_KILL_ROUNDS` (default 20) and
//! `AIODISKDB_KILL_SEED` scale and vary the test.
//!
//! Checks: every acknowledged item reads back exactly; every item an acknowledged trim or
//! drop covered reads `None`, for ever; an unacknowledged add is whole or absent, and the
//! ones that survived are a prefix (flushes commit in order); an unacknowledged commit is
//! all or none (found by scanning the recovered files for its items); an unacknowledged
//! trim left the old or the new state, never a mix. Whatever was found whole is durable
//! from then on and is checked again after every later kill.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aiodiskdb::{AioDiskDb, Builder, Durability, ItemLocation};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::common::{content, env_or, reexec_args, TestResult, HEADER_LEN};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

const ENV_DIR: &str = "AIODISKDB_KILL_CHILD";
const ENV_ACK: &str = "AIODISKDB_KILL_ACK";
const ENV_CHILD_SEED: &str = "AIODISKDB_KILL_CHILD_SEED";
const ENV_RUN: &str = "AIODISKDB_KILL_RUN";
const CHILD_TEST: &str = "kill::child_workload";

/// Small files, so that transactions and flushes roll over often.
const MAX_FILE: u64 = 64 << 10;
const MAX_BUFFER: u64 = 16 << 10;
/// Largest plain add (it must fit the buffer).
const MAX_ADD: usize = 12 << 10;
/// Largest transaction item: two of them do not fit one file.
const MAX_TX_ITEM: usize = 40_000;
/// The smallest transaction item, long enough to be found by scanning the files.
const MIN_TX_ITEM: usize = 64;
/// The child drops its oldest file when there are more than this many.
const MAX_FILES: usize = 8;
/// A child nobody killed gives up after this long (the parent then fails).
const CHILD_LIFETIME: Duration = Duration::from_secs(20);

/// The configuration of the child and of every check.
fn builder(dir: &Path) -> Builder {
    AioDiskDb::builder(dir)
        .max_file_size(MAX_FILE)
        .max_buffer_size(MAX_BUFFER)
        .max_buffer_items(64)
        .flush_interval(Duration::from_millis(20))
        .durability(Durability::Sync)
        .overwrite(true)
}

/// A trim or drop of an older file, as logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trim {
    Right { index: u32, from: u32 },
    Left { index: u32, to: u32 },
    Drop { index: u32 },
}

impl Trim {
    /// Whether `loc` loses at least one byte to this trim (it then reads `None`).
    fn covers(self, loc: ItemLocation) -> bool {
        match self {
            Trim::Right { index, from } => loc.index == index && loc.end() > u64::from(from),
            Trim::Left { index, to } => loc.index == index && loc.position < to,
            Trim::Drop { index } => loc.index == index,
        }
    }

    fn parse(words: &[&str]) -> Option<Trim> {
        let num = |i: usize| words.get(i)?.parse::<u32>().ok();
        match (words.first()?, words.len()) {
            (&"r", 3) => Some(Trim::Right {
                index: num(1)?,
                from: num(2)?,
            }),
            (&"l", 3) => Some(Trim::Left {
                index: num(1)?,
                to: num(2)?,
            }),
            (&"d", 2) => Some(Trim::Drop { index: num(1)? }),
            _ => None,
        }
    }
}

impl fmt::Display for Trim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trim::Right { index, from } => write!(f, "r {index} {from}"),
            Trim::Left { index, to } => write!(f, "l {index} {to}"),
            Trim::Drop { index } => write!(f, "d {index}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The child.
// ---------------------------------------------------------------------------------------

/// The child's report channel: an append-only file of lines.
struct AckLog(File);

impl AckLog {
    fn open(path: &Path) -> std::io::Result<AckLog> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(AckLog)
    }

    /// A hint: written at once, not synced.
    fn hint(&mut self, line: &str) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.0.write_all(&bytes)
    }

    /// An acknowledgement: durable before the child does anything else.
    fn ack(&mut self, line: &str) -> std::io::Result<()> {
        self.hint(line)?;
        self.0.sync_data()
    }
}

/// Runs in the child process only (see the module documentation).
#[test]
fn child_workload() -> TestResult {
    let Some(dir) = std::env::var_os(ENV_DIR) else {
        return Ok(());
    };
    let ack = PathBuf::from(std::env::var_os(ENV_ACK).ok_or("no ack log path")?);
    let seed: u64 = env_or(ENV_CHILD_SEED, 0)?;
    let run: u64 = env_or(ENV_RUN, 0)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let mut child = Child::start(PathBuf::from(dir), &ack, seed, run).await?;
        child.run().await
    });
    if let Err(e) = &result {
        let line = format!("e {e}").replace('\n', " ");
        AckLog::open(&ack)?.ack(&line)?;
    }
    result
}

/// The child's workload and what it knows about the directory.
struct Child {
    db: AioDiskDb,
    dir: PathBuf,
    log: AckLog,
    rng: StdRng,
    next_id: u64,
    /// Adds not yet covered by an acknowledgement.
    pending: Vec<(u64, ItemLocation)>,
    /// Acknowledged items of this run, per index: what a trim may cut.
    known: BTreeMap<u32, Vec<(u64, ItemLocation)>>,
    /// Data files that exist: listed at start, plus the ones written since.
    files: BTreeSet<u32>,
    /// The index of the latest location handed out: the head is at or above it, so every
    /// index below it is an older file.
    tail: Option<u32>,
}

impl Child {
    async fn start(dir: PathBuf, ack: &Path, seed: u64, run: u64) -> BoxResult<Child> {
        let mut log = AckLog::open(ack)?;
        let db = Self::open_db(&dir, &mut log).await?;
        let files = fs::read_dir(&dir)?
            .filter_map(|e| data_index(&e.ok()?.file_name().into_string().ok()?))
            .collect();
        Ok(Child {
            db,
            dir,
            log,
            rng: StdRng::seed_from_u64(seed),
            next_id: run << 32,
            pending: Vec::new(),
            known: BTreeMap::new(),
            files,
            tail: None,
        })
    }

    async fn open_db(dir: &Path, log: &mut AckLog) -> BoxResult<AioDiskDb> {
        log.hint("o")?;
        let db = builder(dir).open().await?;
        log.hint("O")?;
        Ok(db)
    }

    async fn run(&mut self) -> TestResult {
        let started = Instant::now();
        while started.elapsed() < CHILD_LIFETIME {
            match self.rng.gen_range(0..100) {
                0..=54 => self.add_some().await?,
                55..=69 => self.flush().await?,
                70..=84 => self.commit().await?,
                85..=96 => self.trim().await?,
                _ => self.restart().await?,
            }
        }
        Err("nobody killed the child".into())
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn handed_out(&mut self, loc: ItemLocation) {
        self.files.insert(loc.index);
        self.tail = Some(loc.index);
    }

    /// An acknowledgement covered every pending add.
    fn acked(&mut self) {
        for (id, loc) in std::mem::take(&mut self.pending) {
            self.known.entry(loc.index).or_default().push((id, loc));
        }
    }

    async fn add_some(&mut self) -> TestResult {
        for _ in 0..self.rng.gen_range(1..=4) {
            let size = if self.rng.gen_ratio(4, 5) {
                self.rng.gen_range(1..=2048)
            } else {
                self.rng.gen_range(2048..=MAX_ADD)
            };
            let id = self.new_id();
            let loc = self.db.add(content(id, size)).await?;
            self.log.hint(&format!("a {id} {loc}"))?;
            self.pending.push((id, loc));
            self.handed_out(loc);
        }
        Ok(())
    }

    async fn flush(&mut self) -> TestResult {
        self.db.flush().await?;
        self.log.ack("f")?;
        self.acked();
        Ok(())
    }

    async fn commit(&mut self) -> TestResult {
        let n = self.rng.gen_range(2..=5);
        let items: Vec<(u64, usize)> = (0..n)
            .map(|_| {
                let size = if self.rng.gen_bool(0.5) {
                    self.rng.gen_range(MIN_TX_ITEM..4096)
                } else {
                    self.rng.gen_range(4096..=MAX_TX_ITEM)
                };
                (self.new_id(), size)
            })
            .collect();
        let begin: Vec<String> = items.iter().map(|(id, s)| format!("{id}:{s}")).collect();
        self.log.hint(&format!("tb {}", begin.join(" ")))?;
        let mut tx = self.db.transaction();
        for &(id, size) in &items {
            tx.add(content(id, size))?;
        }
        let locs = tx.commit().await?;
        let done: Vec<String> = items
            .iter()
            .zip(&locs)
            .map(|((id, _), loc)| format!("{id}={loc}"))
            .collect();
        self.log.ack(&format!("to {}", done.join(" ")))?;
        self.acked();
        for (&(id, _), &loc) in items.iter().zip(&locs) {
            self.known.entry(loc.index).or_default().push((id, loc));
            self.handed_out(loc);
        }
        Ok(())
    }

    /// A trim of an older file, with the bytes it needs for its safety check.
    fn pick_trim(&mut self) -> Option<(Trim, Vec<u8>)> {
        let tail = self.tail?;
        let oldest = *self.files.range(..tail).next()?;
        if self.files.len() > MAX_FILES || self.rng.gen_ratio(1, 4) {
            return Some((Trim::Drop { index: oldest }, Vec::new()));
        }
        let candidates: Vec<u32> = self
            .known
            .range(..tail)
            .filter(|(_, items)| items.len() >= 2)
            .map(|(i, _)| *i)
            .collect();
        let index = *candidates.choose(&mut self.rng)?;
        let items = &self.known[&index];
        let k = self.rng.gen_range(1..items.len());
        let (id, loc) = items[k];
        let (prev_id, prev) = items[k - 1];
        if self.rng.gen_bool(0.5) {
            // The safety check is the first bytes of the cut range.
            let check = content(id, loc.size.min(4) as usize);
            Some((
                Trim::Right {
                    index,
                    from: loc.position,
                },
                check,
            ))
        } else {
            // The last bytes kept out: the end of the item just before, if it is adjacent.
            let check = if prev.end() == u64::from(loc.position) {
                let bytes = content(prev_id, prev.size as usize);
                bytes[bytes.len().saturating_sub(4)..].to_vec()
            } else {
                Vec::new()
            };
            Some((
                Trim::Left {
                    index,
                    to: loc.position,
                },
                check,
            ))
        }
    }

    async fn trim(&mut self) -> TestResult {
        let Some((trim, check)) = self.pick_trim() else {
            return Ok(());
        };
        self.log.hint(&format!("rb {trim}"))?;
        match trim {
            Trim::Right { index, from } => self.db.rtrim(index, from, &check).await?,
            Trim::Left { index, to } => self.db.ltrim(index, to, &check).await?,
            Trim::Drop { index } => self.db.drop_index(index).await?,
        };
        self.log.ack(&format!("rk {trim}"))?;
        self.acked();
        match trim {
            Trim::Drop { index } => {
                self.files.remove(&index);
                self.known.remove(&index);
            }
            Trim::Right { index, .. } | Trim::Left { index, .. } => {
                if let Some(items) = self.known.get_mut(&index) {
                    items.retain(|(_, loc)| !trim.covers(*loc));
                }
            }
        }
        Ok(())
    }

    async fn restart(&mut self) -> TestResult {
        self.db.stop().await?;
        self.log.ack("s")?;
        self.acked();
        self.db = Self::open_db(&self.dir, &mut self.log).await?;
        Ok(())
    }
}

/// The index of a data file name (`data00012.dat` is 12).
fn data_index(name: &str) -> Option<u32> {
    name.strip_prefix("data")?
        .strip_suffix(".dat")?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------
// The parent.
// ---------------------------------------------------------------------------------------

/// One line of an ack log.
#[derive(Debug, Clone)]
enum Line {
    Open,
    Opened,
    Add(u64, ItemLocation),
    Flushed,
    Stopped,
    TxBegin(Vec<(u64, usize)>),
    TxOk(Vec<(u64, ItemLocation)>),
    TrimBegin(Trim),
    TrimOk(Trim),
    ChildError(String),
}

impl Line {
    fn parse(line: &str) -> Option<Line> {
        let words: Vec<&str> = line.split(' ').collect();
        let pair = |w: &str, sep: char| -> Option<(u64, String)> {
            let (id, rest) = w.split_once(sep)?;
            Some((id.parse().ok()?, rest.to_owned()))
        };
        Some(match *words.first()? {
            "o" => Line::Open,
            "O" => Line::Opened,
            "f" => Line::Flushed,
            "s" => Line::Stopped,
            "a" if words.len() == 3 => Line::Add(words[1].parse().ok()?, words[2].parse().ok()?),
            "tb" => Line::TxBegin(
                words[1..]
                    .iter()
                    .map(|w| pair(w, ':').and_then(|(id, s)| Some((id, s.parse().ok()?))))
                    .collect::<Option<_>>()?,
            ),
            "to" => Line::TxOk(
                words[1..]
                    .iter()
                    .map(|w| pair(w, '=').and_then(|(id, l)| Some((id, l.parse().ok()?))))
                    .collect::<Option<_>>()?,
            ),
            "rb" => Line::TrimBegin(Trim::parse(&words[1..])?),
            "rk" => Line::TrimOk(Trim::parse(&words[1..])?),
            "e" => Line::ChildError(line[1..].trim().to_owned()),
            _ => return None,
        })
    }
}

/// Reads an ack log. A last line without its `\n` was torn by the kill and is ignored;
/// every complete line must parse.
fn read_log(path: &Path) -> BoxResult<Vec<Line>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    std::str::from_utf8(&bytes[..complete])?
        .lines()
        .map(|l| Line::parse(l).ok_or_else(|| format!("{}: bad line {l:?}", path.display()).into()))
        .collect()
}

/// Where a kill is aimed.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// 0..5 ms after the spawn: process start-up, or the very first open.
    Start,
    /// 0..3 ms after the child logged that its open began: mostly during recovery.
    Open,
    /// 50..400 ms after the spawn: mid-workload.
    Work,
}

#[derive(Debug, Default)]
struct Stats {
    kills: u32,
    /// Kills after the child logged `o` and before `O`: during open or recovery.
    in_open: u32,
    /// Kills before the child logged anything.
    at_start: u32,
    acked_items: u64,
    reads: u64,
    trims_acked: u32,
    /// Unacknowledged trims found done / not done after the kill.
    trims_done: u32,
    trims_not_done: u32,
    unacked_whole: u64,
    unacked_absent: u64,
    tx_whole: u32,
    tx_absent: u32,
}

/// What the directory must hold, built from the ack logs and the checks.
#[derive(Debug, Default)]
struct Model {
    /// Must read back exactly: acknowledged, or found whole after a kill.
    durable: BTreeMap<u64, ItemLocation>,
    /// Covered by an acknowledged (or completed) trim: must read `None` for ever.
    gone: BTreeMap<u64, ItemLocation>,
    violations: Vec<String>,
    stats: Stats,
}

impl Model {
    fn violation(&mut self, v: String) {
        eprintln!("kill -9 violation: {v}");
        self.violations.push(v);
    }

    fn ack(&mut self, id: u64, loc: ItemLocation) {
        self.stats.acked_items += 1;
        self.durable.insert(id, loc);
    }

    fn ack_pending(&mut self, pending: &mut Vec<(u64, ItemLocation)>) {
        for (id, loc) in pending.drain(..) {
            self.ack(id, loc);
        }
    }

    fn apply_trim(&mut self, trim: Trim) {
        let cut: Vec<u64> = self
            .durable
            .iter()
            .filter(|(_, loc)| trim.covers(**loc))
            .map(|(id, _)| *id)
            .collect();
        for id in cut {
            let loc = self.durable.remove(&id).expect("listed");
            self.gone.insert(id, loc);
        }
    }

    /// Reads `loc` and compares it with item `id`: `Some(true)` whole, `None` absent,
    /// `Some(false)` anything else (partial or altered).
    async fn probe(
        &mut self,
        db: &AioDiskDb,
        id: u64,
        loc: ItemLocation,
    ) -> BoxResult<Option<bool>> {
        self.stats.reads += 1;
        Ok(db
            .read(loc)
            .await?
            .map(|b| b[..] == content(id, loc.size as usize)[..]))
    }

    /// Replays one run's log, then recovers a copy of the directory and checks it.
    async fn check_run(&mut self, copy: &Path, run: u32, lines: &[Line]) -> TestResult {
        let mut pending = Vec::new();
        let mut tx = None;
        let mut trim = None;
        for line in lines {
            match line {
                Line::Add(id, loc) => pending.push((*id, *loc)),
                Line::Flushed | Line::Stopped => self.ack_pending(&mut pending),
                Line::TxBegin(items) => tx = Some(items.clone()),
                Line::TxOk(items) => {
                    self.ack_pending(&mut pending);
                    for &(id, loc) in items {
                        self.ack(id, loc);
                    }
                    tx = None;
                }
                Line::TrimBegin(t) => trim = Some(*t),
                Line::TrimOk(t) => {
                    self.ack_pending(&mut pending);
                    self.apply_trim(*t);
                    self.stats.trims_acked += 1;
                    trim = None;
                }
                Line::ChildError(e) => self.violation(format!("run {run}: the child failed: {e}")),
                Line::Open | Line::Opened => {}
            }
        }
        let db = match builder(copy).open().await {
            Ok(db) => db,
            Err(e) => {
                self.violation(format!("run {run}: recovery failed: {e:?}"));
                return Ok(());
            }
        };
        if let Some(t) = trim {
            self.settle_trim(&db, run, t).await?;
        }
        self.check_stored(&db, copy, &format!("run {run}")).await?;
        let adds_whole = self.settle_adds(&db, run, &pending, trim).await?;
        if let Some(items) = tx {
            self.settle_tx(&db, copy, run, &items, adds_whole).await?;
        }
        db.stop().await?;
        Ok(())
    }

    /// Every durable item reads back exactly; every trimmed one reads `None`.
    async fn check_stored(&mut self, db: &AioDiskDb, dir: &Path, when: &str) -> TestResult {
        let durable: Vec<(u64, ItemLocation)> =
            self.durable.iter().map(|(i, l)| (*i, *l)).collect();
        for (id, loc) in durable {
            match self.probe(db, id, loc).await? {
                Some(true) => {}
                Some(false) => self.violation(format!("{when}: item {id} at {loc} altered")),
                None => self.violation(format!("{when}: item {id} at {loc} lost")),
            }
        }
        // A trimmed item can only come back with its file: read those of the files on disk
        // (the others read `None` without I/O; checking them all would be quadratic).
        let on_disk: BTreeSet<u32> = fs::read_dir(dir)?
            .filter_map(|e| data_index(e.ok()?.file_name().to_str()?))
            .collect();
        let gone: Vec<(u64, ItemLocation)> = self
            .gone
            .iter()
            .filter(|(_, l)| on_disk.contains(&l.index))
            .map(|(i, l)| (*i, *l))
            .collect();
        for (id, loc) in gone {
            if self.probe(db, id, loc).await?.is_some() {
                self.violation(format!("{when}: trimmed item {id} at {loc} came back"));
            }
        }
        Ok(())
    }

    /// An unacknowledged trim: the items it covers are all there or all gone.
    async fn settle_trim(&mut self, db: &AioDiskDb, run: u32, trim: Trim) -> TestResult {
        let covered: Vec<(u64, ItemLocation)> = self
            .durable
            .iter()
            .filter(|(_, l)| trim.covers(**l))
            .map(|(i, l)| (*i, *l))
            .collect();
        if covered.is_empty() {
            return Ok(()); // nothing known to tell whether it happened
        }
        let mut whole = 0;
        for &(id, loc) in &covered {
            match self.probe(db, id, loc).await? {
                Some(true) => whole += 1,
                Some(false) => self.violation(format!(
                    "run {run}: item {id} at {loc} altered by the interrupted trim {trim}"
                )),
                None => {}
            }
        }
        if whole == covered.len() {
            self.stats.trims_not_done += 1;
        } else if whole == 0 {
            self.stats.trims_done += 1;
            self.apply_trim(trim);
        } else {
            self.violation(format!(
                "run {run}: the interrupted trim {trim} left {whole} of {} items",
                covered.len()
            ));
        }
        Ok(())
    }

    /// Unacknowledged adds: each whole or absent, the whole ones a prefix. The whole ones
    /// are durable from now on. Returns whether all of them (but those an interrupted trim
    /// covers) are whole.
    async fn settle_adds(
        &mut self,
        db: &AioDiskDb,
        run: u32,
        pending: &[(u64, ItemLocation)],
        trim: Option<Trim>,
    ) -> BoxResult<bool> {
        let mut lost_one: Option<u64> = None;
        for &(id, loc) in pending {
            let exempt = trim.is_some_and(|t| t.covers(loc));
            match self.probe(db, id, loc).await? {
                Some(true) => {
                    self.stats.unacked_whole += 1;
                    if let (Some(earlier), false) = (lost_one, exempt) {
                        self.violation(format!(
                            "run {run}: add {id} survived but the earlier add {earlier} did not"
                        ));
                    }
                    self.durable.insert(id, loc);
                }
                Some(false) => self.violation(format!(
                    "run {run}: unacknowledged add {id} at {loc} is partial or altered"
                )),
                None => {
                    self.stats.unacked_absent += 1;
                    if !exempt {
                        lost_one = lost_one.or(Some(id));
                    }
                }
            }
        }
        Ok(lost_one.is_none())
    }

    /// An unacknowledged commit: its locations are unknown, so scan the recovered files
    /// for its items. All or none must be there; if all are, so are the adds before it.
    async fn settle_tx(
        &mut self,
        db: &AioDiskDb,
        dir: &Path,
        run: u32,
        items: &[(u64, usize)],
        adds_whole: bool,
    ) -> TestResult {
        let files = read_data_files(dir)?;
        let mut found = Vec::new();
        for &(id, size) in items {
            let needle = content(id, size);
            let hit = files.iter().find_map(|(index, trim_offset, bytes)| {
                let at = bytes.windows(size).position(|w| w == needle)?;
                let position = trim_offset + u32::try_from(at).ok()?;
                Some(ItemLocation {
                    index: *index,
                    position,
                    size: u32::try_from(size).ok()?,
                })
            });
            if let Some(loc) = hit {
                found.push((id, loc));
            }
        }
        if found.is_empty() {
            self.stats.tx_absent += 1;
        } else if found.len() == items.len() {
            self.stats.tx_whole += 1;
            if !adds_whole {
                self.violation(format!(
                    "run {run}: the interrupted commit survived but adds before it did not"
                ));
            }
            for (id, loc) in found {
                if self.probe(db, id, loc).await? != Some(true) {
                    self.violation(format!(
                        "run {run}: committed item {id} at {loc} unreadable"
                    ));
                }
                self.durable.insert(id, loc);
            }
        } else {
            self.violation(format!(
                "run {run}: partial transaction: {} of {} items on disk",
                found.len(),
                items.len()
            ));
        }
        Ok(())
    }
}

/// `(index, trim offset, item bytes)` of every data file in `dir`.
fn read_data_files(dir: &Path) -> BoxResult<Vec<(u32, u32, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(index) = entry.file_name().to_str().and_then(data_index) else {
            continue;
        };
        let mut bytes = fs::read(entry.path())?;
        let header_len = usize::try_from(HEADER_LEN)?;
        if bytes.len() < header_len {
            return Err(format!("{}: shorter than a header", entry.path().display()).into());
        }
        let trim_offset = u32::from_le_bytes(bytes[4..8].try_into()?);
        bytes.drain(..header_len);
        out.push((index, trim_offset, bytes));
    }
    Ok(out)
}

/// Copies the regular files of `from` (if it exists) into a new directory `to`.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    let entries = match fs::read_dir(from) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Polls until the ack log holds an `o` line (an open began).
fn wait_for_open(ack: &Path) -> BoxResult<()> {
    let start = Instant::now();
    loop {
        if read_log(ack)?.iter().any(|l| matches!(l, Line::Open)) {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err("the child never began to open".into());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Starts run `run` on `dir`, kills it at a seeded moment and returns its log.
fn kill_one(
    dir: &Path,
    work: &Path,
    run: u32,
    rng: &mut StdRng,
    stats: &mut Stats,
) -> BoxResult<Vec<Line>> {
    let ack = work.join(format!("ack-{run:04}.log"));
    let stderr = work.join(format!("child-{run:04}.stderr"));
    let moment = match rng.gen_range(0..20) {
        0..=2 => Moment::Start,
        3..=7 => Moment::Open,
        _ => Moment::Work,
    };
    let delay = match moment {
        Moment::Start => Duration::from_micros(rng.gen_range(0..5_000)),
        Moment::Open => Duration::from_micros(rng.gen_range(0..3_000)),
        Moment::Work => Duration::from_millis(rng.gen_range(50..400)),
    };
    let mut child = Command::new(std::env::current_exe()?)
        .args(reexec_args(CHILD_TEST))
        .env(ENV_DIR, dir)
        .env(ENV_ACK, &ack)
        .env(ENV_CHILD_SEED, rng.gen::<u64>().to_string())
        .env(ENV_RUN, run.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr)?)
        .spawn()?;
    if matches!(moment, Moment::Open) {
        if let Err(e) = wait_for_open(&ack) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    }
    std::thread::sleep(delay);
    if let Some(status) = child.try_wait()? {
        let err = fs::read_to_string(&stderr).unwrap_or_default();
        return Err(format!("run {run}: the child exited by itself ({status}):\n{err}").into());
    }
    child.kill()?; // SIGKILL
    child.wait()?;
    let lines = read_log(&ack)?;
    stats.kills += 1;
    match lines.last() {
        None => stats.at_start += 1,
        Some(Line::Open) => stats.in_open += 1,
        Some(_) => {}
    }
    Ok(lines)
}

/// The parent: many kills, a check after each, a final check on the original directory.
#[test]
fn kill_nine_at_random_moments_loses_nothing_acknowledged() -> TestResult {
    if std::env::var_os(ENV_DIR).is_some() {
        return Ok(()); // inside a child: never recurse
    }
    let runs: u32 = env_or("AIODISKDB_KILL_ROUNDS", 20)?;
    let seed: u64 = env_or("AIODISKDB_KILL_SEED", 0x6b69_6c6c)?;
    let started = Instant::now();
    let work = tempfile::tempdir()?;
    let dir = work.path().join("db");
    let check = work.path().join("check");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = Model::default();
    for run in 0..runs {
        let lines = kill_one(&dir, work.path(), run, &mut rng, &mut model.stats)?;
        copy_dir(&dir, &check)?;
        rt.block_on(model.check_run(&check, run, &lines))?;
        fs::remove_dir_all(&check)?;
    }
    rt.block_on(async {
        // The original itself recovers like its copy did, and takes writes again.
        let db = builder(&dir).open().await?;
        model.check_stored(&db, &dir, "final open").await?;
        let id = u64::from(runs + 1) << 32;
        let loc = db.add(content(id, 1000)).await?;
        db.flush().await?;
        db.stop().await?;
        let db = builder(&dir).open().await?;
        model.ack(id, loc);
        model.check_stored(&db, &dir, "final reopen").await?;
        db.stop().await?;
        TestResult::Ok(())
    })?;
    let s = &model.stats;
    eprintln!(
        "kill -9: {} kills survived, {} acknowledged items verified, {} trims verified, {} lost \
         (seed {seed:#x}; {} kills during open/recovery, {} during start-up; {} reads checked; \
         unacknowledged: {} adds whole, {} absent, {} commits whole, {} absent, {} trims done, \
         {} not done; {:.1} s)",
        s.kills,
        s.acked_items,
        s.trims_acked + s.trims_done + s.trims_not_done,
        model.violations.len(),
        s.in_open,
        s.at_start,
        s.reads,
        s.unacked_whole,
        s.unacked_absent,
        s.tx_whole,
        s.tx_absent,
        s.trims_done,
        s.trims_not_done,
        started.elapsed().as_secs_f64(),
    );
    if model.violations.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} violations: {:#?}",
            model.violations.len(),
            model.violations
        )
        .into())
    }
}
