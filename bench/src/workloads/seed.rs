//! `seed-large`, `seed-small`: the seed's concurrency test. One writer adds random items
//! (slices of a random blob) while one reader reads random written items and checks their
//! bytes; then every item is re-read from a fresh instance.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use anyhow::{bail, ensure};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::Bench;
use crate::data::{self, as_f64, rate, SeedFigures};
use crate::engine::{Engine, Source, Visibility};
use crate::limits::{mean_limit_secs, ratio, write_limit};
use crate::raw;
use crate::report::{Report, SeedLimit, SeedReport};
use crate::ui::{Bar, Unit};

/// What a seed workload writes.
#[derive(Debug, Clone, Copy)]
pub struct SeedSpec {
    workload: &'static str,
    total_mb: u64,
    /// Smallest and largest item, bytes.
    min: usize,
    max: usize,
    seed: u64,
}

impl SeedSpec {
    /// `seed-large` (1 KiB..1 MiB items, 1000 MB by default) or `seed-small` (1..4096-byte
    /// items, 20 MB by default), with items picked by the random `seed`.
    #[must_use]
    pub fn new(large: bool, total_mb: Option<u64>, seed: u64) -> SeedSpec {
        let (workload, mb, min, max) = if large {
            ("seed-large", 1000, 1024, 1 << 20)
        } else {
            ("seed-small", 20, 1, 4096)
        };
        SeedSpec {
            workload,
            total_mb: total_mb.unwrap_or(mb),
            min,
            max,
            seed,
        }
    }
}

/// The written items: location, and where their bytes are in the blob.
type Written<L> = Arc<RwLock<Vec<(L, usize, usize)>>>;

/// The writer's items: random slices of the blob until `total` bytes, or until the reader
/// stops (it failed).
struct SeedItems<'a, L> {
    rng: StdRng,
    blob: &'a Bytes,
    spec: SeedSpec,
    total: u64,
    bytes: u64,
    /// Where the item last handed out is in the blob.
    last: (usize, usize),
    written: &'a Written<L>,
    done: &'a AtomicBool,
    bar: &'a Bar,
}

impl<L> Source<L> for SeedItems<'_, L> {
    fn next_item(&mut self) -> Option<Bytes> {
        if self.bytes >= self.total || self.done.load(Ordering::Relaxed) {
            return None;
        }
        let (at, size) =
            data::next_seed_item(&mut self.rng, self.blob.len(), self.spec.min, self.spec.max);
        self.last = (at, size);
        Some(self.blob.slice(at..at + size))
    }

    fn added(&mut self, loc: L) {
        let (at, size) = self.last;
        self.written
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push((loc, at, size));
        self.bytes += size as u64;
        self.bar.inc(size as u64);
    }
}

/// Runs a seed workload in `dir`.
///
/// # Errors
/// The engine failed, or read back wrong data.
pub async fn seed<E: Engine>(b: &Bench<'_>, spec: SeedSpec, dir: &Path) -> anyhow::Result<Report> {
    let (workload, total_mb) = (spec.workload, spec.total_mb);
    let total = total_mb * 1_000_000;
    let (blob, rng) = data::seed_blob(spec.seed, spec.max);
    let blob = Bytes::from(blob);
    let before = if b.limits {
        Some(write_limit(b.ui, E::EXEC, workload, dir, total).await?)
    } else {
        None
    };
    let rss_reset = b.limits && raw::reset_peak_rss();
    let db = E::open(dir, &E::Config::default()).await?;
    let written: Written<E::Loc> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let reader = E::EXEC.spawn(verifying_reader(
        db.clone(),
        Arc::clone(&written),
        blob.clone(),
        Arc::clone(&done),
        spec.seed ^ 0x5eed,
    ));
    let bar = b.ui.phase(
        workload,
        &format!("writing {total_mb} MB, reading concurrently"),
        Some(total),
        Unit::Bytes,
    );
    let mut items = SeedItems {
        rng,
        blob: &blob,
        spec,
        total,
        bytes: 0,
        last: (0, 0),
        written: &written,
        done: &done,
        bar: &bar,
    };
    let start = Instant::now();
    let wrote = db.bulk(Visibility::Immediate, &mut items).await;
    let elapsed = start.elapsed().as_secs_f64();
    bar.finish();
    done.store(true, Ordering::Relaxed);
    let reads = reader.join().await;
    let bytes = items.bytes;
    wrote?;
    let reads = reads?;
    ensure!(bytes >= total, "the writer stopped early");
    let peak_rss_mib = raw::peak_rss()
        .filter(|_| rss_reset)
        .map(|b| as_f64(b) / f64::from(1 << 20));
    db.close().await?;
    let items = std::mem::take(&mut *written.write().unwrap_or_else(PoisonError::into_inner));
    let writes = items.len() as u64;

    let bar = b.ui.phase(
        workload,
        "re-reading from a fresh instance",
        Some(writes),
        Unit::Items,
    );
    let start = Instant::now();
    let db = E::open(dir, &E::Config::default()).await?;
    for &(loc, at, size) in &items {
        let expected = &blob[at..at + size];
        if db.read(loc, |got| got == expected).await? != Some(true) {
            bail!("re-read of {loc} from a fresh instance returned wrong data");
        }
        bar.inc(1);
    }
    db.close().await?;
    let reread_secs = start.elapsed().as_secs_f64();
    bar.finish();

    let limit = match before {
        Some(before) => {
            let after = write_limit(b.ui, E::EXEC, workload, dir, bytes).await?;
            let limit_secs = mean_limit_secs(bytes, [(total, before), (bytes, after)]);
            Some(SeedLimit {
                limit_secs,
                limit_mb_per_s: rate(bytes, limit_secs) / 1e6,
                ratio: ratio(limit_secs, elapsed),
                peak_rss_mib,
                peak_rss_bound_mib: 2.0 * 16.0 + 64.0,
            })
        }
        None => None,
    };
    Ok(Report::Seed(SeedReport {
        engine: b.engine,
        workload,
        figures: SeedFigures::new(elapsed, reads, writes, bytes, reread_secs),
        limit,
    }))
}

/// The concurrent reader: reads random written items and checks their bytes until
/// `done`; returns how many it read. Sets `done` when it stops, so that a failed reader
/// stops the writer too.
async fn verifying_reader<E: Engine>(
    db: E,
    written: Written<E::Loc>,
    blob: Bytes,
    done: Arc<AtomicBool>,
    seed: u64,
) -> anyhow::Result<u64> {
    let result = async {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut reads = 0u64;
        while !done.load(Ordering::Relaxed) {
            let pick = {
                let w = written.read().unwrap_or_else(PoisonError::into_inner);
                (!w.is_empty()).then(|| w[rng.gen_range(0..w.len())])
            };
            let Some((loc, at, size)) = pick else {
                E::EXEC.yield_now().await;
                continue;
            };
            let expected = &blob[at..at + size];
            if db.read(loc, |got| got == expected).await? != Some(true) {
                bail!("read of {loc} returned wrong data");
            }
            reads += 1;
        }
        Ok(reads)
    }
    .await;
    done.store(true, Ordering::Relaxed);
    result
}
