//! Load: writer tasks (adds of random sizes, transactions, flushes), reader tasks that
//! verify every read, and a pruner that drops the oldest file whenever the directory passes
//! a disk budget, on a 2-worker multi-thread runtime for `AIODISKDB_LOAD_SECS` seconds
//! (default 5; the long run is a minute). Then stop, reopen and verify every location.
//!
//! Memory and open file descriptors must stay bounded: the peak RSS may grow by at most
//! `2 x max_buffer_size + 64 MiB` over the baseline, the descriptor count by at most 80 (the
//! read cache keeps at most 64 handles), and every descriptor is closed after the stop.
//! The test keeps only `(location, seed)` per item and regenerates the bytes from the seed,
//! and dropped files take their entries with them, so its own memory stays flat.
//!
//! RSS and descriptors are process-wide, so the workload runs in a child process (this test
//! binary, re-executed for this one test) where no other test shares the numbers.

use std::collections::VecDeque;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aiodiskdb::{AioDiskDb, ItemLocation};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::{splitmix_fill, TestResult};

/// Set in the child process that runs the workload.
const CHILD_ENV: &str = "AIODISKDB_LOAD_CHILD";
const SECS_ENV: &str = "AIODISKDB_LOAD_SECS";

const MAX_FILE: u64 = 1 << 20;
const MAX_BUFFER: u64 = 256 << 10;
const BUFFER_ITEMS: usize = 64;
const MAX_ITEM: usize = 8 << 10;
/// The pruner drops the oldest file while the data files hold more than this.
const DISK_BUDGET: u64 = 24 << 20;
const WRITERS: u64 = 3;
const READERS: u64 = 4;
/// Dropped locations kept to check that they read `None`.
const GONE_SAMPLES: usize = 512;

const RSS_BOUND: u64 = 2 * MAX_BUFFER + (64 << 20);
const FD_BOUND: u64 = 80;

#[test]
fn writers_and_readers_under_load_stay_bounded() -> TestResult {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child();
    }
    let name = concat!(
        module_path!(),
        "::writers_and_readers_under_load_stay_bounded"
    );
    let name = name.split_once("::").map_or(name, |(_, rest)| rest);
    let secs = load_secs();
    // Output goes to a file: a pipe nobody reads while waiting could fill up.
    let out = tempfile::NamedTempFile::new()?;
    let mut child = Command::new(std::env::current_exe()?)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(out.as_file().try_clone()?)
        .stderr(out.as_file().try_clone()?)
        .spawn()?;
    let limit = Duration::from_secs_f64(secs * 3.0 + 120.0);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > limit {
            child.kill()?;
            child.wait()?;
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(out.path())?;
    // The summary shares its line with libtest's "test ... " prefix.
    let summary: Vec<&str> = output
        .lines()
        .filter_map(|l| l.find("load: ").map(|at| &l[at..]))
        .collect();
    for line in &summary {
        eprintln!("{line}");
    }
    match status {
        Some(s) if s.success() && !summary.is_empty() => Ok(()),
        Some(s) => Err(format!("load child failed ({s}):\n{output}").into()),
        None => Err(format!("load child did not finish within {limit:?}:\n{output}").into()),
    }
}

fn load_secs() -> f64 {
    std::env::var(SECS_ENV)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(5.0)
}

// ---------------------------------------------------------------------------------------
// The workload (in the child)
// ---------------------------------------------------------------------------------------

/// One written item: its location and the seed its bytes are generated from.
#[derive(Debug, Clone, Copy)]
struct Entry {
    loc: ItemLocation,
    seed: u64,
}

/// The bytes of an item: a splitmix64 stream from `seed`.
fn fill(seed: u64, len: usize, out: &mut Vec<u8>) {
    splitmix_fill(seed, len, out);
}

/// What was written and what was dropped, shared by every task.
#[derive(Default)]
struct Ledger {
    /// Items of indexes not dropped (and, briefly, of one being dropped).
    live: RwLock<Vec<Entry>>,
    /// A sample of items of dropped indexes.
    gone: Mutex<VecDeque<Entry>>,
    /// Indexes below this may be dropped (or being dropped).
    dropping: AtomicU32,
    /// Indexes below this are dropped.
    dropped: AtomicU32,
    done: AtomicBool,
    writes: AtomicU64,
    transactions: AtomicU64,
    tx_items: AtomicU64,
    flushes: AtomicU64,
    bytes: AtomicU64,
    reads: AtomicU64,
    gone_reads: AtomicU64,
    drops: AtomicU64,
}

impl Ledger {
    fn record(&self, entries: &[Entry]) {
        self.live
            .write()
            .expect("ledger")
            .extend_from_slice(entries);
        self.writes
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        let bytes: u64 = entries.iter().map(|e| u64::from(e.loc.size)).sum();
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn pick(&self, rng: &mut StdRng) -> Option<Entry> {
        if rng.gen_ratio(1, 16) {
            let gone = self.gone.lock().expect("gone");
            if !gone.is_empty() {
                return Some(gone[rng.gen_range(0..gone.len())]);
            }
        }
        let live = self.live.read().expect("ledger");
        (!live.is_empty()).then(|| live[rng.gen_range(0..live.len())])
    }

    /// Reads `e` and checks it: exact bytes, or `None` for a dropped index (either while
    /// its drop runs).
    async fn verify(&self, db: &AioDiskDb, e: Entry, buf: &mut Vec<u8>) -> Result<(), String> {
        let dropped = self.dropped.load(Ordering::SeqCst);
        let got = db
            .read(e.loc)
            .await
            .map_err(|err| format!("read {}: {err}", e.loc))?;
        let dropping = self.dropping.load(Ordering::SeqCst);
        fill(e.seed, e.loc.size as usize, buf);
        let ok = match &got {
            None => e.loc.index < dropping,
            Some(b) => e.loc.index >= dropped && b[..] == buf[..],
        };
        if !ok {
            return Err(format!(
                "read {}: got {}, wrote {} bytes (dropped below {dropped}, dropping below {dropping})",
                e.loc,
                got.map_or_else(|| "None".to_owned(), |b| format!("{} other bytes", b.len())),
                buf.len()
            ));
        }
        if got.is_none() {
            self.gone_reads.fetch_add(1, Ordering::Relaxed);
        }
        self.reads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

async fn open(dir: &Path) -> aiodiskdb::Result<AioDiskDb> {
    AioDiskDb::builder(dir)
        .max_file_size(MAX_FILE)
        .max_buffer_size(MAX_BUFFER)
        .max_buffer_items(BUFFER_ITEMS)
        .flush_interval(Duration::from_millis(100))
        .overwrite(true)
        .open()
        .await
}

async fn writer(db: AioDiskDb, ledger: Arc<Ledger>, id: u64) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(id);
    let mut next = id << 40;
    let mut buf = Vec::new();
    while !ledger.done.load(Ordering::Relaxed) {
        let roll = rng.gen_range(0..100);
        if roll < 90 {
            next += 1;
            fill(next, rng.gen_range(1..=MAX_ITEM), &mut buf);
            let loc = db.add(buf.clone()).await.map_err(|e| format!("add: {e}"))?;
            ledger.record(&[Entry { loc, seed: next }]);
        } else if roll < 97 {
            let mut tx = db.transaction();
            let mut seeds = Vec::new();
            for _ in 0..rng.gen_range(1..=6) {
                next += 1;
                fill(next, rng.gen_range(1..=4 * MAX_ITEM), &mut buf);
                tx.add(buf.clone()).map_err(|e| format!("tx add: {e}"))?;
                seeds.push(next);
            }
            let locs = tx.commit().await.map_err(|e| format!("commit: {e}"))?;
            let entries: Vec<Entry> = locs
                .into_iter()
                .zip(seeds)
                .map(|(loc, seed)| Entry { loc, seed })
                .collect();
            ledger.record(&entries);
            ledger.transactions.fetch_add(1, Ordering::Relaxed);
            ledger
                .tx_items
                .fetch_add(entries.len() as u64, Ordering::Relaxed);
        } else {
            db.flush().await.map_err(|e| format!("flush: {e}"))?;
            ledger.flushes.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

async fn reader(db: AioDiskDb, ledger: Arc<Ledger>, seed: u64) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buf = Vec::new();
    while !ledger.done.load(Ordering::Relaxed) {
        match ledger.pick(&mut rng) {
            Some(e) => ledger.verify(&db, e, &mut buf).await?,
            None => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
    Ok(())
}

/// Indexes and sizes of the data files in `dir`.
fn data_files(dir: &Path) -> std::io::Result<Vec<(u32, u64)>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(index) = name
            .strip_prefix("data")
            .and_then(|n| n.strip_suffix(".dat"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A file dropped since the listing has no size: skip it.
        if let Ok(m) = e.metadata() {
            files.push((index, m.len()));
        }
    }
    files.sort_unstable();
    Ok(files)
}

/// Drops the oldest files while the directory holds more than `DISK_BUDGET`.
async fn pruner(db: AioDiskDb, ledger: Arc<Ledger>) -> Result<(), String> {
    let dir = db.path().to_path_buf();
    while !ledger.done.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let files = data_files(&dir).map_err(|e| format!("list: {e}"))?;
        let mut total: u64 = files.iter().map(|(_, len)| len).sum();
        // Never the last listed file: it may be the current one.
        for &(oldest, len) in &files[..files.len().saturating_sub(1)] {
            if total <= DISK_BUDGET {
                break;
            }
            drop_oldest(&db, &ledger, oldest).await?;
            total -= len;
        }
    }
    Ok(())
}

async fn drop_oldest(db: &AioDiskDb, ledger: &Ledger, index: u32) -> Result<(), String> {
    ledger.dropping.store(index + 1, Ordering::SeqCst);
    db.drop_index(index)
        .await
        .map_err(|e| format!("drop_index({index}): {e}"))?;
    ledger.dropped.store(index + 1, Ordering::SeqCst);
    ledger.drops.fetch_add(1, Ordering::Relaxed);
    let mut moved = Vec::new();
    ledger.live.write().expect("ledger").retain(|e| {
        let keep = e.loc.index > index;
        if !keep {
            moved.push(*e);
        }
        keep
    });
    let mut gone = ledger.gone.lock().expect("gone");
    for e in moved.into_iter().step_by(7) {
        if gone.len() == GONE_SAMPLES {
            gone.pop_front();
        }
        gone.push_back(e);
    }
    Ok(())
}

/// Resident set size of this process, in bytes, and its high-water mark.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Open file descriptors of this process.
fn fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

#[derive(Debug, Default)]
struct Peaks {
    rss: AtomicU64,
    fds: AtomicU64,
}

impl Peaks {
    fn sample(&self) {
        self.rss.fetch_max(rss().0, Ordering::Relaxed);
        self.fds.fetch_max(fds(), Ordering::Relaxed);
    }
}

fn mib(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let m = bytes as f64 / f64::from(1 << 20);
    format!("{m:.1} MiB")
}

fn child() -> TestResult {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(workload())
}

async fn workload() -> TestResult {
    let secs = load_secs();
    let dir = tempfile::tempdir()?;
    let (base_rss, _) = rss();
    let base_fds = fds();
    let peaks = Arc::new(Peaks::default());
    let ledger = Arc::new(Ledger::default());
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peaks, sampling) = (Arc::clone(&peaks), Arc::clone(&sampling));
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peaks.sample();
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };

    let started = Instant::now();
    let db = open(dir.path()).await?;
    let mut tasks = Vec::new();
    for id in 1..=WRITERS {
        tasks.push(tokio::spawn(writer(db.clone(), Arc::clone(&ledger), id)));
    }
    for k in 0..READERS {
        tasks.push(tokio::spawn(reader(
            db.clone(),
            Arc::clone(&ledger),
            100 + k,
        )));
    }
    tasks.push(tokio::spawn(pruner(db.clone(), Arc::clone(&ledger))));
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    ledger.done.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    let load_time = started.elapsed();
    let reads_under_load = ledger.reads.load(Ordering::Relaxed);

    db.stop().await?;
    drop(db);
    let db = open(dir.path()).await?;
    let live = ledger.live.read().expect("ledger").clone();
    let gone: Vec<Entry> = ledger.gone.lock().expect("gone").iter().copied().collect();
    // Every task has finished, so `dropping == dropped`: verify now demands the exact
    // bytes of every kept item and `None` for every dropped one.
    let mut buf = Vec::new();
    for e in live.iter().chain(&gone) {
        ledger.verify(&db, *e, &mut buf).await?;
    }
    db.stop().await?;
    drop(db);
    sampling.store(false, Ordering::Relaxed);
    sampler.await?;
    peaks.sample();
    let (_, hwm) = rss();
    let end_fds = fds();

    let peak_rss = peaks.rss.load(Ordering::Relaxed).max(hwm);
    let peak_fds = peaks.fds.load(Ordering::Relaxed);
    let reads = ledger.reads.load(Ordering::Relaxed);
    eprintln!(
        "load: {load_time:.1?} with {WRITERS} writers, {READERS} readers: {} writes ({} in {} transactions, {}), {} flushes, {} files dropped; {reads_under_load} reads verified under load ({} read None from dropped files), {} after reopen; peak RSS {} (+{} over {}, bound +{}); peak FDs {peak_fds} (+{} over {base_fds}, bound +{FD_BOUND}), {end_fds} after stop",
        ledger.writes.load(Ordering::Relaxed),
        ledger.tx_items.load(Ordering::Relaxed),
        ledger.transactions.load(Ordering::Relaxed),
        mib(ledger.bytes.load(Ordering::Relaxed)),
        ledger.flushes.load(Ordering::Relaxed),
        ledger.drops.load(Ordering::Relaxed),
        ledger.gone_reads.load(Ordering::Relaxed),
        reads - reads_under_load,
        mib(peak_rss),
        mib(peak_rss.saturating_sub(base_rss)),
        mib(base_rss),
        mib(RSS_BOUND),
        peak_fds.saturating_sub(base_fds),
    );
    assert!(reads_under_load > 0 && ledger.writes.load(Ordering::Relaxed) > 0);
    assert!(
        peak_rss.saturating_sub(base_rss) <= RSS_BOUND,
        "RSS grew by {} (bound {})",
        mib(peak_rss - base_rss),
        mib(RSS_BOUND)
    );
    assert!(
        peak_fds <= base_fds + FD_BOUND,
        "{peak_fds} descriptors open at the peak, baseline {base_fds}"
    );
    assert!(
        end_fds <= base_fds,
        "{end_fds} descriptors open after the stop, {base_fds} before the open"
    );
    Ok(())
}

/// A task that reads buffered items in a loop must let the rest of the runtime run: a read
/// served from RAM completes without awaiting anything, so unless `read` takes part in
/// tokio's cooperative scheduling such a loop never yields and starves the flusher (here on
/// a current-thread runtime, where `flush` then never returns). Runs on its own thread so a
/// hang is reported instead of hanging the test binary.
#[test]
fn a_loop_of_buffered_reads_does_not_starve_the_flusher() -> TestResult {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let run = || -> TestResult {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let dir = tempfile::tempdir()?;
                let dir: &Path = dir.path();
                let db = AioDiskDb::open(dir).await?;
                let loc = db.add(&b"hot"[..]).await?;
                let done = Arc::new(AtomicBool::new(false));
                let reader = {
                    let (db, done) = (db.clone(), Arc::clone(&done));
                    tokio::spawn(async move {
                        let mut reads = 0u64;
                        while !done.load(Ordering::Relaxed) {
                            db.read(loc).await?;
                            reads += 1;
                        }
                        Ok::<u64, aiodiskdb::Error>(reads)
                    })
                };
                db.flush().await?;
                done.store(true, Ordering::Relaxed);
                assert!(reader.await?? > 0);
                db.stop().await?;
                TestResult::Ok(())
            })
        };
        let _ = tx.send(run().map_err(|e| e.to_string()));
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(
            "flush() did not return within 30 s while another task read a \
                       buffered item in a loop: read() never yields, the flusher starves"
                .into(),
        ),
    }
}
