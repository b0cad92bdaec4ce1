//! `verify` (aiodiskdb only): writes about 1 GB of random 1..64 KiB items with a durable
//! stop, then times `AioDiskDb::verify` (every stored byte read once, each item checked
//! against its CRC32C) against plain sequential reads of the same data files. Cold, with
//! the page cache dropped before each pass, when the process may drop it (root); then
//! warm, with every file cached.

use std::path::{Path, PathBuf};
use std::time::Instant;

use aiodiskdb::AioDiskDb;
use anyhow::{ensure, Context as _};
use bytes::Bytes;
use rand::rngs::StdRng;

use super::{fill, Bench};
use crate::data::{self, rate};
use crate::engine::{Engine, Source};
use crate::exec::Exec;
use crate::limits::{limit, mean_limit_secs, ratio};
use crate::ours::Tuning;
use crate::raw;
use crate::report::{Report, VerifyReport, VerifyRun};
use crate::ui::{Bar, Unit};

/// Smallest and largest item, bytes.
const MIN_ITEM: usize = 1 << 10;
const MAX_ITEM: usize = 64 << 10;

/// The limit's read size: that of `verify` itself.
const PIECE: usize = 4 << 20;

/// Random slices of the blob until `total` bytes.
struct VerifyItems<'a> {
    rng: StdRng,
    blob: &'a Bytes,
    total: u64,
    bytes: u64,
    items: u64,
    bar: &'a Bar,
}

impl<L> Source<L> for VerifyItems<'_> {
    fn next_item(&mut self) -> Option<Bytes> {
        if self.bytes >= self.total {
            return None;
        }
        let (at, size) = data::next_seed_item(&mut self.rng, self.blob.len(), MIN_ITEM, MAX_ITEM);
        self.bytes += size as u64;
        self.items += 1;
        self.bar.inc(size as u64);
        Some(self.blob.slice(at..at + size))
    }

    fn added(&mut self, _: L) {}
}

/// What was written: items, their bytes, and the data files holding them.
struct Stored {
    items: u64,
    bytes: u64,
    files: Vec<PathBuf>,
}

/// Runs `verify` in `dir` with `total_mb` megabytes of items.
///
/// # Errors
/// `total_mb` is 0, aiodiskdb failed, or `verify` did not find every item intact.
pub(crate) async fn verify(
    b: &Bench<'_>,
    dir: &Path,
    total_mb: u64,
    seed: u64,
) -> anyhow::Result<Report> {
    ensure!(total_mb > 0, "--total-mb must be at least 1");
    let stored = write_items(b, dir, total_mb, seed).await?;
    let caches: &[&'static str] = if drop_cache().await.is_ok() {
        &["cold", "warm"]
    } else {
        b.ui.say("bench verify: the page cache cannot be dropped (not root): warm runs only");
        &["warm"]
    };
    let mut runs = Vec::with_capacity(caches.len());
    for &cache in caches {
        let cold = cache == "cold";
        if !cold {
            // Every file into the page cache (the cold passes may have done it already).
            limit_pass(b, &stored.files, false, "warming the page cache").await?;
        }
        let before = limit_pass(b, &stored.files, cold, cache).await?;
        let secs = verify_pass(b, dir, &stored, cold, cache).await?;
        let after = limit_pass(b, &stored.files, cold, cache).await?;
        let file_bytes = before.0;
        let limit_secs = mean_limit_secs(file_bytes, [before, after]);
        let mb_per_s = rate(stored.bytes, secs) / 1e6;
        let limit_mb_per_s = rate(file_bytes, limit_secs) / 1e6;
        runs.push(VerifyRun {
            cache,
            secs,
            mb_per_s,
            limit_secs,
            limit_mb_per_s,
            ratio: ratio(mb_per_s, limit_mb_per_s),
        });
    }
    Ok(Report::Verify(VerifyReport {
        workload: "verify",
        items: stored.items,
        bytes: stored.bytes,
        files: stored.files.len() as u64,
        runs,
    }))
}

/// Writes `total_mb` MB of random 1..64 KiB items in one session and stops (durable).
async fn write_items(
    b: &Bench<'_>,
    dir: &Path,
    total_mb: u64,
    seed: u64,
) -> anyhow::Result<Stored> {
    let total = total_mb * 1_000_000;
    let (blob, rng) = data::seed_blob(seed, MAX_ITEM);
    let blob = Bytes::from(blob);
    let bar = b.ui.phase(
        "verify",
        &format!("writing {total_mb} MB of 1..64 KiB items, then a durable stop"),
        Some(total),
        Unit::Bytes,
    );
    let mut items = VerifyItems {
        rng,
        blob: &blob,
        total,
        bytes: 0,
        items: 0,
        bar: &bar,
    };
    let db = <AioDiskDb as Engine>::open(dir, &Tuning::default()).await?;
    fill(db, &mut items).await?;
    bar.finish();
    let found = AioDiskDb::builder(dir).inspect().await?;
    ensure!(
        found.files.iter().map(|f| f.item_bytes).sum::<u64>() == items.bytes,
        "the data files do not hold the {} bytes written",
        items.bytes
    );
    Ok(Stored {
        items: items.items,
        bytes: items.bytes,
        files: found.files.into_iter().map(|f| f.path).collect(),
    })
}

/// Drops the page cache, off the runtime's threads.
async fn drop_cache() -> anyhow::Result<()> {
    tokio::task::spawn_blocking(raw::drop_page_cache)
        .await
        .context("drop the page cache")?
        .context("drop the page cache")
}

/// One pass of the limit: every data file read in sequence with plain preads, after
/// dropping the page cache if `cold`; (bytes, seconds).
async fn limit_pass(
    b: &Bench<'_>,
    files: &[PathBuf],
    cold: bool,
    what: &str,
) -> anyhow::Result<(u64, f64)> {
    let bar = b.ui.phase(
        "verify",
        &format!("limit: the data files read with 4 MiB preads ({what})"),
        None,
        Unit::Items,
    );
    let files = files.to_vec();
    let pass = limit(Exec::Tasks, move || {
        if cold {
            raw::drop_page_cache()?;
        }
        raw::read_sequential(&files, PIECE)
    })
    .await?;
    bar.finish();
    Ok(pass)
}

/// One timed `verify` of a freshly opened instance (the open is not timed; the page cache
/// is dropped after it if `cold`), which must find every item intact: seconds.
async fn verify_pass(
    b: &Bench<'_>,
    dir: &Path,
    stored: &Stored,
    cold: bool,
    what: &str,
) -> anyhow::Result<f64> {
    let bar =
        b.ui.phase("verify", &format!("verify ({what})"), None, Unit::Items);
    let db = AioDiskDb::builder(dir).open().await?;
    if cold {
        drop_cache().await?;
    }
    let start = Instant::now();
    let v = db.verify().await?;
    let secs = start.elapsed().as_secs_f64();
    db.stop().await?;
    bar.finish();
    ensure!(
        v.is_ok()
            && v.items_checked == stored.items
            && v.bytes_checked == stored.bytes
            && v.unindexed_bytes == 0,
        "verify found {} problem(s) and checked {} items, {} bytes ({} unindexed); \
         {} items, {} bytes were written",
        v.problems.len(),
        v.items_checked,
        v.bytes_checked,
        v.unindexed_bytes,
        stored.items,
        stored.bytes
    );
    Ok(secs)
}
