//! The workloads of `aiodiskdb bench` (SPEC section 6), generic over [`Engine`], on
//! threads instead of tasks (every peer has a blocking API). The data, sizes and random
//! sequences are those of `cli/src/bench.rs`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use crate::data::{next_seed_item, rate, read_item, seed_blob, SeedFigures};
use crate::engine::{Engine, Handle as _, Visibility};
use crate::report::{
    AppendReport, DurableReport, OpenReport, ReadReport, ReadRun, Report, SeedReport,
};

/// Progress lines on stderr, unless quiet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ui {
    pub(crate) quiet: bool,
}

impl Ui {
    /// Announces a phase of a workload.
    fn phase(self, engine: &str, workload: &str, what: &str) {
        if !self.quiet {
            eprintln!("peers {engine} {workload}: {what}");
        }
    }
}

/// What the seed workloads write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeedSpec {
    pub(crate) workload: &'static str,
    pub(crate) total_mb: u64,
    /// Smallest and largest item, bytes.
    pub(crate) min: usize,
    pub(crate) max: usize,
    pub(crate) seed: u64,
}

/// The seed's concurrency test: one writer adds random items (slices of a random blob)
/// while one reader thread reads random written items and checks their bytes; then every
/// item is re-read from a freshly opened instance.
pub(crate) fn seed<E: Engine>(
    ui: Ui,
    engine: &'static str,
    dir: &Path,
    spec: SeedSpec,
) -> anyhow::Result<Report> {
    let SeedSpec {
        workload,
        total_mb,
        min,
        max,
        seed,
    } = spec;
    let total = total_mb * 1_000_000;
    let (blob, mut rng) = seed_blob(seed, max);
    let db = E::open(dir)?;
    // Written items: location, and where their bytes are in `blob`.
    let written: RwLock<Vec<(E::Loc, usize, usize)>> = RwLock::new(Vec::new());
    let done = AtomicBool::new(false);
    ui.phase(
        engine,
        workload,
        &format!("writing {total_mb} MB, reading concurrently"),
    );
    let (bytes, elapsed, reads) = thread::scope(|s| {
        let handle = db.handle();
        let (written, blob, done) = (&written, &blob, &done);
        let reader = s.spawn(move || {
            let result = seed_reader::<E>(&handle, written, blob, done, seed);
            // A failed reader stops the writer too.
            done.store(true, Ordering::Relaxed);
            result
        });
        let start = Instant::now();
        let bytes = db.bulk(Visibility::Immediate, |add| {
            let mut bytes = 0u64;
            while bytes < total && !done.load(Ordering::Relaxed) {
                let (at, size) = next_seed_item(&mut rng, blob.len(), min, max);
                let loc = add(&blob[at..at + size])?;
                written
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((loc, at, size));
                bytes += size as u64;
            }
            Ok(bytes)
        });
        let elapsed = start.elapsed().as_secs_f64();
        done.store(true, Ordering::Relaxed);
        let reads = reader.join().expect("the reader thread panicked");
        anyhow::Ok((bytes?, elapsed, reads?))
    })?;
    ensure!(bytes >= total, "the writer stopped early");
    db.close()?;
    let items = written.into_inner().unwrap_or_else(PoisonError::into_inner);
    let writes = items.len() as u64;

    ui.phase(engine, workload, "re-reading from a fresh instance");
    let start = Instant::now();
    let db = E::open(dir)?;
    {
        let handle = db.handle();
        for &(loc, at, size) in &items {
            let expected = &blob[at..at + size];
            if handle.read(loc, |got| got == expected)? != Some(true) {
                bail!("re-read from a fresh instance returned wrong data");
            }
        }
    }
    db.close()?;
    let reread_secs = start.elapsed().as_secs_f64();
    Ok(Report::Seed(SeedReport {
        engine,
        workload,
        figures: SeedFigures::new(elapsed, reads, writes, bytes, reread_secs),
    }))
}

/// The reader of [`seed`]: reads random written items until `done`, checking each.
fn seed_reader<E: Engine>(
    handle: &E::Handle<'_>,
    written: &RwLock<Vec<(E::Loc, usize, usize)>>,
    blob: &[u8],
    done: &AtomicBool,
    seed: u64,
) -> anyhow::Result<u64> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut reads = 0u64;
    while !done.load(Ordering::Relaxed) {
        let pick = {
            let w = written.read().unwrap_or_else(PoisonError::into_inner);
            (!w.is_empty()).then(|| w[rng.gen_range(0..w.len())])
        };
        let Some((loc, at, size)) = pick else {
            thread::yield_now();
            continue;
        };
        let expected = &blob[at..at + size];
        if handle.read(loc, |got| got == expected)? != Some(true) {
            bail!("a concurrent read returned wrong data");
        }
        reads += 1;
    }
    Ok(reads)
}

/// `append`: many small adds in one session, made durable, then the store is closed.
pub(crate) fn append<E: Engine>(
    ui: Ui,
    engine: &'static str,
    dir: &Path,
    items: u64,
) -> anyhow::Result<Report> {
    const SIZE: u64 = 100;
    let payload = [0xab_u8; 100];
    let db = E::open(dir)?;
    ui.phase(
        engine,
        "append",
        &format!("{items} adds of {SIZE} B, then a durable close"),
    );
    let start = Instant::now();
    db.bulk(Visibility::AtEnd, |add| {
        for _ in 0..items {
            add(&payload)?;
        }
        Ok(())
    })?;
    db.close()?;
    let secs = start.elapsed().as_secs_f64();
    Ok(Report::Append(AppendReport {
        engine,
        workload: "append",
        items,
        item_bytes: SIZE,
        secs,
        adds_per_s: rate(items, secs),
    }))
}

/// Writes `items` items of `read_item` in one session and closes the store.
fn write_read_items<E: Engine>(dir: &Path, items: u64) -> anyhow::Result<Vec<E::Loc>> {
    let db = E::open(dir)?;
    let locs = db.bulk(Visibility::AtEnd, |add| {
        let mut locs = Vec::with_capacity(usize::try_from(items)?);
        for i in 0..items {
            locs.push(add(&read_item(i))?);
        }
        Ok(locs)
    })?;
    db.close()?;
    Ok(locs)
}

/// `read`: writes 1 KiB items, reopens, and reads random ones back with 1 and with 32
/// concurrent reader threads, checking each.
pub(crate) fn read<E: Engine>(
    ui: Ui,
    engine: &'static str,
    dir: &Path,
    items: u64,
    seed: u64,
) -> anyhow::Result<Report> {
    ensure!(items > 0, "--items must be at least 1");
    ui.phase(engine, "read", &format!("writing {items} items of 1 KiB"));
    let locs = write_read_items::<E>(dir, items)?;
    let db = E::open(dir)?;
    let mut runs = Vec::new();
    for readers in [1usize, 32] {
        ui.phase(
            engine,
            "read",
            &format!("{items} random reads, {readers} concurrent readers"),
        );
        let start = Instant::now();
        thread::scope(|s| {
            let threads: Vec<_> = (0..readers as u64)
                .map(|r| {
                    let share = items / readers as u64 + u64::from(r < items % readers as u64);
                    let (handle, locs) = (db.handle(), &locs);
                    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(r));
                    s.spawn(move || {
                        for _ in 0..share {
                            let i = rng.gen_range(0..locs.len());
                            let ok = handle.read(locs[i], |b| {
                                b.len() == 1024 && b[..8] == (i as u64).to_le_bytes()
                            })?;
                            ensure!(ok == Some(true), "read of item {i} returned wrong data");
                        }
                        anyhow::Ok(())
                    })
                })
                .collect();
            threads
                .into_iter()
                .try_for_each(|t| t.join().expect("a reader thread panicked"))
        })?;
        let secs = start.elapsed().as_secs_f64();
        runs.push(ReadRun {
            readers,
            reads: items,
            secs,
            reads_per_s: rate(items, secs),
        });
    }
    db.close()?;
    Ok(Report::Read(ReadReport {
        engine,
        workload: "read",
        items,
        item_bytes: 1024,
        runs,
    }))
}

/// When `durable` stops.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Until {
    /// After this many adds in all.
    Items(u64),
    /// After this long.
    Time(Duration),
}

/// `durable`: many threads each appending one item and waiting for it to be durable, in
/// a loop.
pub(crate) fn durable<E: Engine>(
    ui: Ui,
    engine: &'static str,
    dir: &Path,
    tasks: usize,
    until: Until,
) -> anyhow::Result<Report> {
    const SIZE: u64 = 100;
    let payload = [0xcd_u8; 100];
    let db = E::open(dir)?;
    let what = match until {
        Until::Items(n) => format!("{tasks} threads, {n} durable adds in all"),
        Until::Time(d) => format!(
            "{tasks} threads doing durable adds for {:.1}s",
            d.as_secs_f64()
        ),
    };
    ui.phase(engine, "durable", &what);
    let issued = AtomicU64::new(0);
    let start = Instant::now();
    let items = thread::scope(|s| {
        let threads: Vec<_> = (0..tasks)
            .map(|_| {
                let (handle, issued) = (db.handle(), &issued);
                s.spawn(move || {
                    let mut done = 0u64;
                    loop {
                        let more = match until {
                            Until::Items(n) => issued.fetch_add(1, Ordering::Relaxed) < n,
                            Until::Time(d) => start.elapsed() < d,
                        };
                        if !more {
                            return anyhow::Ok(done);
                        }
                        handle.add_durable(&payload)?;
                        done += 1;
                    }
                })
            })
            .collect();
        threads.into_iter().try_fold(0u64, |sum, t| {
            anyhow::Ok(sum + t.join().expect("a writer thread panicked")?)
        })
    })?;
    let secs = start.elapsed().as_secs_f64();
    let flushes = db.commits();
    db.close()?;
    Ok(Report::Durable(DurableReport {
        engine,
        workload: "durable",
        tasks,
        item_bytes: SIZE,
        items,
        flushes,
        secs,
        items_per_s: rate(items, secs),
        flushes_per_s: flushes.map(|f| rate(f, secs)),
    }))
}

/// `open`: writes 1 KiB items and closes the store, then times opening it.
pub(crate) fn open<E: Engine>(
    ui: Ui,
    engine: &'static str,
    dir: &Path,
    items: u64,
) -> anyhow::Result<Report> {
    const OPENS: usize = 5;
    ui.phase(engine, "open", &format!("writing {items} items of 1 KiB"));
    let start = Instant::now();
    write_read_items::<E>(dir, items)?;
    let create_secs = start.elapsed().as_secs_f64();
    let files = count_files(dir)?;
    ui.phase(engine, "open", &format!("opening {OPENS} times"));
    let mut times = Vec::with_capacity(OPENS);
    for _ in 0..OPENS {
        let t = Instant::now();
        let db = E::open(dir)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        db.close()?;
    }
    let first_open_ms = times[0];
    times.sort_by(f64::total_cmp);
    Ok(Report::Open(OpenReport {
        engine,
        workload: "open",
        items,
        item_bytes: 1024,
        files,
        create_secs,
        opens: OPENS,
        open_ms: times[OPENS / 2],
        first_open_ms,
    }))
}

/// Regular files under `dir`, recursively.
fn count_files(dir: &Path) -> anyhow::Result<u64> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            n += count_files(&entry.path())?;
        } else if kind.is_file() {
            n += 1;
        }
    }
    Ok(n)
}
