//! `open`: how long opening a store takes. A peer's store holds 1 KiB items; aiodiskdb's
//! `open` times three directories: many data files of one 100 B item, the same with
//! 100 KiB per file (the time should not grow with the amount of data), and a directory
//! of 1 KiB items (what the peers' `open` stores).

use std::path::Path;
use std::time::Instant;

use aiodiskdb::{AioDiskDb, Durability, ItemLocation};
use anyhow::{ensure, Context as _};
use bytes::Bytes;

use super::{fill, write_read_items, Bench};
use crate::engine::{Engine, Source};
use crate::ours::Tuning;
use crate::report::{MoreOpens, OpenReport, Report, Stored};
use crate::ui::{Bar, Unit};

/// How many times a directory is opened.
const OPENS: usize = 5;

/// Open times of one directory.
struct OpenTimes {
    create_secs: f64,
    /// In the order taken, in milliseconds.
    times: Vec<f64>,
}

impl OpenTimes {
    fn median_ms(&self) -> f64 {
        let mut t = self.times.clone();
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    }
}

/// A peer's `open`: writes `items` items of 1 KiB and closes the store, then times opening
/// it.
///
/// # Errors
/// The engine failed.
pub async fn open<E: Engine>(b: &Bench<'_>, dir: &Path, items: u64) -> anyhow::Result<Report> {
    let t = open_items::<E>(b, dir, items, true).await?;
    Ok(Report::Open(OpenReport {
        engine: b.engine,
        workload: "open",
        stored: Some(Stored {
            items,
            item_bytes: 1024,
        }),
        files: count_files(dir)?,
        create_secs: t.create_secs,
        opens: OPENS,
        open_ms: t.median_ms(),
        first_open_ms: t.times[0],
        more: None,
    }))
}

/// aiodiskdb's `open`: a directory of `files` data files of one 100 B item each, the same
/// with 100 KiB per file, and one of 100,000 items of 1 KiB.
///
/// # Errors
/// aiodiskdb failed, or did not start a file per item.
pub(crate) async fn open_dirs(b: &Bench<'_>, dir: &Path, files: u32) -> anyhow::Result<Report> {
    const BIG: u64 = 100 << 10;
    let small = open_files(b, &dir.join("small"), files, 100).await?;
    let big = open_files(b, &dir.join("big"), files, BIG).await?;
    let items = open_items::<AioDiskDb>(b, &dir.join("items"), 100_000, false).await?;
    Ok(Report::Open(OpenReport {
        engine: b.engine,
        workload: "open",
        stored: None,
        files: u64::from(files),
        create_secs: small.create_secs,
        opens: small.times.len(),
        open_ms: small.median_ms(),
        first_open_ms: small.times[0],
        more: Some(MoreOpens {
            big_file_bytes: BIG + 24,
            big_open_ms: big.median_ms(),
            items_open_ms: items.median_ms(),
        }),
    }))
}

/// Writes `items` items of 1 KiB to `dir` (default configuration), then opens the store
/// [`OPENS`] times (a phase of its own if `announce`).
async fn open_items<E: Engine>(
    b: &Bench<'_>,
    dir: &Path,
    items: u64,
    announce: bool,
) -> anyhow::Result<OpenTimes> {
    let bar = b.ui.phase(
        "open",
        &format!("writing {items} items of 1 KiB"),
        Some(items),
        Unit::Items,
    );
    let start = Instant::now();
    write_read_items::<E>(dir, items, &bar).await?;
    let create_secs = start.elapsed().as_secs_f64();
    bar.finish();
    let what = announce.then(|| format!("opening {OPENS} times"));
    let times = time_opens::<E>(b, dir, &E::Config::default(), what).await?;
    Ok(OpenTimes { create_secs, times })
}

/// Opens the store in `dir` [`OPENS`] times, in milliseconds each; a phase `what`, with a
/// bar, if given.
async fn time_opens<E: Engine>(
    b: &Bench<'_>,
    dir: &Path,
    config: &E::Config,
    what: Option<String>,
) -> anyhow::Result<Vec<f64>> {
    let bar = what.map(|w| b.ui.phase("open", &w, Some(OPENS as u64), Unit::Items));
    let mut times = Vec::with_capacity(OPENS);
    for _ in 0..OPENS {
        let t = Instant::now();
        let db = E::open(dir, config).await?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        db.close().await?;
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    if let Some(bar) = &bar {
        bar.finish();
    }
    Ok(times)
}

/// The same item again and again, counted on a bar; keeps the last location.
struct Fill<'a> {
    payload: Bytes,
    left: u32,
    last: Option<ItemLocation>,
    bar: &'a Bar,
}

impl Source<ItemLocation> for Fill<'_> {
    fn next_item(&mut self) -> Option<Bytes> {
        self.left = self.left.checked_sub(1)?;
        Some(self.payload.clone())
    }

    fn added(&mut self, loc: ItemLocation) {
        self.last = Some(loc);
        self.bar.inc(1);
    }
}

/// Creates `files` data files in `dir` of one `item`-byte item each, then opens the
/// directory [`OPENS`] times.
async fn open_files(b: &Bench<'_>, dir: &Path, files: u32, item: u64) -> anyhow::Result<OpenTimes> {
    let one_per_file = |durability| Tuning {
        file_size: Some(24 + item),
        durability,
        ..Tuning::default()
    };
    let bar = b.ui.phase(
        "open",
        &format!("creating {files} data files of {item} B"),
        Some(u64::from(files)),
        Unit::Items,
    );
    let start = Instant::now();
    // Creating the files is not what is measured: no fsync.
    let db = <AioDiskDb as Engine>::open(dir, &one_per_file(Some(Durability::Os))).await?;
    let mut items = Fill {
        payload: Bytes::from(vec![0xef_u8; usize::try_from(item)?]),
        left: files,
        last: None,
        bar: &bar,
    };
    fill(db, &mut items).await?;
    let create_secs = start.elapsed().as_secs_f64();
    bar.finish();
    let created = items.last.map_or(0, |l| u64::from(l.index) + 1);
    ensure!(
        created == u64::from(files),
        "expected {files} data files, the last item went to index {}",
        created.saturating_sub(1)
    );
    let what = format!("opening {files} data files of {item} B {OPENS} times");
    let times = time_opens::<AioDiskDb>(b, dir, &one_per_file(None), Some(what)).await?;
    Ok(OpenTimes { create_secs, times })
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
