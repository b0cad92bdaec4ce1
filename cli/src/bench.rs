//! `aiodiskdb bench`: the workloads of SPEC section 6, with progress bars on a terminal
//! (plain phase lines on stderr otherwise) and one result per workload on stdout: a text
//! line, or one JSON object with `--json`.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aiodiskdb::{AioDiskDb, Durability, Event, ItemLocation};
use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use crate::out::{self, outln};

mod data;
mod raw;

use data::{as_f64, rate, read_item, SeedFigures};

pub(crate) const HELP: &str = r#"Workloads (sizes scale with --total-mb, --items, --files, --seconds):
  seed-large  random 1 KiB..1 MiB items up to 1000 MB with a concurrent verifying reader,
              then a re-read from a fresh instance
  seed-small  the same with 1..4096-byte items up to 20 MB (the default workload)
  append      1,000,000 adds of 100 B, then a durable stop: adds/s; with the default
              configuration, then with max_buffer_items raised (the byte threshold governs)
  append-large  1,000 adds of 1 MiB (--total-mb sets the count), then a durable stop:
              adds/s (default configuration)
  read        writes 100,000 items of 1 KiB, reopens, then random reads with 1 and with 32
              concurrent readers (as many reads as items): reads/s
  durable     64 tasks each doing add (100 B) + flush in a loop for 5 s (or --items adds
              in all): durable items/s and flushes/s (group commit)
  open        creates 1,000 data files of one 100 B item, times `open` of the directory;
              then the same with 100 KiB per file; then a directory of 100,000 items of
              1 KiB (what the peers' `open` stores)
  all         every workload above, in this order

Each workload also measures, in the same run and directory, the limit it is compared with:
  seed-*, append  the same bytes written the faster of two plain ways: writes of 16 MiB
                  each followed by an fdatasync, or (up to 256 MiB) writes of 64 MiB and
                  one fdatasync at the end; before and after the workload (the mean of
                  the two rates)
  read            the same random reads with plain pread, from 1 and from 32 threads
  durable         one append of (tasks x 100 B) plus one fdatasync, in a loop on one thread,
                  after each of 4 rounds of the workload, for as long as the round
and prints ratio = our rate / the limit's rate (above 1: faster than the limit).

Output: the seed workloads print the seed's line
  Duration: ..., Reads: N (~r/s), Writes: N (~w/s), Bandwidth: XMB (Y MB/s), Avg item size: Z kB
then a re-read line and a limit line (with the peak RSS of the write phase); the others
print `WORKLOAD key=value ...` lines. With --json, one object per workload:
  seed-*:  {"workload": str, "secs": f64, "reads": int, "reads_per_s": f64, "writes": int,
            "writes_per_s": f64, "bytes": int, "mb_per_s": f64, "avg_item_bytes": f64,
            "reread_items": int, "reread_secs": f64, "limit_secs": f64,
            "limit_mb_per_s": f64, "ratio": f64, "peak_rss_mib": f64|null,
            "peak_rss_bound_mib": f64}
  append, append-large:
           {"workload": "append"|"append-large", "items": int, "item_bytes": int,
            "runs": [{"config": "default"|"bytes-governed", "max_buffer_items": int,
                      "secs": f64, "adds_per_s": f64, "ratio": f64}],
            "limit_secs": f64, "limit_adds_per_s": f64}
  read:    {"workload": "read", "items": int, "item_bytes": 1024,
            "runs": [{"readers": int, "reads": int, "secs": f64, "reads_per_s": f64,
                      "limit_secs": f64, "limit_reads_per_s": f64, "ratio": f64}]}
  durable: {"workload": "durable", "tasks": int, "item_bytes": 100, "items": int,
            "flushes": int, "secs": f64, "items_per_s": f64, "flushes_per_s": f64,
            "limit_batches": int, "limit_secs": f64, "limit_items_per_s": f64,
            "ratio": f64}
  open:    {"workload": "open", "files": int, "create_secs": f64, "opens": int,
            "open_ms": f64 (median), "first_open_ms": f64, "big_file_bytes": int,
            "big_open_ms": f64 (median), "items_open_ms": f64 (median)}
MB is 10^6 bytes. Every workload uses the default configuration (durable: fsync) unless
said above."#;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Workload {
    /// Random 1 KiB..1 MiB items up to 1000 MB, with a concurrent verifying reader.
    SeedLarge,
    /// Random 1..4096-byte items up to 20 MB, with a concurrent verifying reader.
    SeedSmall,
    /// 1,000,000 adds of 100 B, then a durable stop.
    Append,
    /// 1,000 adds of 1 MiB, then a durable stop.
    AppendLarge,
    /// Random reads of 1 KiB items from disk after reopen, 1 and 32 readers.
    Read,
    /// 64 tasks each doing add + flush in a loop.
    Durable,
    /// Time to open a directory of 1,000 data files.
    Open,
    /// Every workload, in the order above.
    All,
}

impl Workload {
    const EACH: [Workload; 7] = [
        Workload::SeedLarge,
        Workload::SeedSmall,
        Workload::Append,
        Workload::AppendLarge,
        Workload::Read,
        Workload::Durable,
        Workload::Open,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::SeedLarge => "seed-large",
            Workload::SeedSmall => "seed-small",
            Workload::Append => "append",
            Workload::AppendLarge => "append-large",
            Workload::Read => "read",
            Workload::Durable => "durable",
            Workload::Open => "open",
            Workload::All => "all",
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Which workload to run.
    #[arg(long, value_enum, default_value = "seed-small")]
    workload: Workload,
    /// Data directory (must be empty or missing; `all` uses one subdirectory per
    /// workload); a temporary directory, removed afterwards, by default.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Megabytes to write in the seed workloads [default: 20 for seed-small, 1000 for
    /// seed-large]; for `append-large`, the number of 1 MiB adds [default: 1000].
    #[arg(long, value_name = "MB")]
    total_mb: Option<u64>,
    /// Items: adds for `append` [default: 1000000], items written and reads per run for
    /// `read` [default: 100000], durable adds in all for `durable` [default: run for
    /// --seconds].
    #[arg(long, value_name = "N")]
    items: Option<u64>,
    /// Concurrent tasks for `durable`.
    #[arg(long, value_name = "N", default_value_t = 64)]
    tasks: usize,
    /// How long `durable` runs when --items is not given.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    seconds: f64,
    /// Data files for `open`.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    files: u32,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object per workload (shapes below) instead of text lines.
    #[arg(long)]
    json: bool,
    /// No progress output on stderr.
    #[arg(long, short)]
    quiet: bool,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    ensure!(args.tasks > 0, "--tasks must be at least 1");
    ensure!(
        args.seconds > 0.0 && args.seconds.is_finite(),
        "--seconds must be more than zero"
    );
    ensure!(args.files > 0, "--files must be at least 1");
    let workloads: &[Workload] = if args.workload == Workload::All {
        &Workload::EACH
    } else {
        std::slice::from_ref(&args.workload)
    };
    let temp;
    let (root, is_temp) = if let Some(d) = &args.dir {
        if d.exists()
            && std::fs::read_dir(d)
                .with_context(|| format!("list {}", d.display()))?
                .next()
                .is_some()
        {
            bail!(
                "--dir {} is not empty; bench needs an empty directory",
                d.display()
            );
        }
        (d.clone(), false)
    } else {
        temp = tempfile::tempdir().context("create a temporary directory")?;
        (temp.path().to_path_buf(), true)
    };
    let ui = Ui::new(args.quiet);
    // On Ctrl-C, return (an error) so that the temporary directory is removed.
    tokio::select! {
        r = run_workloads(&args, workloads, &root, is_temp, &ui) => r?,
        r = tokio::signal::ctrl_c() => {
            r.context("listen for Ctrl-C")?;
            bail!("interrupted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_workloads(
    args: &Args,
    workloads: &[Workload],
    root: &Path,
    is_temp: bool,
    ui: &Ui,
) -> anyhow::Result<()> {
    for &w in workloads {
        // `all` gives each workload its own subdirectory.
        let dir = if args.dir.is_some() && workloads.len() == 1 {
            root.to_path_buf()
        } else {
            root.join(w.name())
        };
        let result = match w {
            Workload::SeedSmall => {
                let mb = args.total_mb.unwrap_or(20);
                seed(ui, w, &dir, mb, 1, 4096, args.seed).await?
            }
            Workload::SeedLarge => {
                let mb = args.total_mb.unwrap_or(1000);
                seed(ui, w, &dir, mb, 1024, 1 << 20, args.seed).await?
            }
            Workload::Append => append(ui, w, &dir, args.items.unwrap_or(1_000_000), 100).await?,
            Workload::AppendLarge => {
                append(ui, w, &dir, args.total_mb.unwrap_or(1000), 1 << 20).await?
            }
            Workload::Read => read(ui, &dir, args.items.unwrap_or(100_000), args.seed).await?,
            Workload::Durable => {
                let stop = match args.items {
                    Some(n) => Until::Items(n),
                    None => Until::Time(Duration::from_secs_f64(args.seconds)),
                };
                durable(ui, &dir, args.tasks, stop).await?
            }
            Workload::Open => open(ui, &dir, args.files).await?,
            Workload::All => unreachable!("expanded above"),
        };
        if args.json {
            out::json_line(&result)?;
        } else {
            result.print()?;
        }
        if is_temp {
            // Room for the next workload.
            std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
        }
    }
    Ok(())
}

/// Progress reporting on stderr.
struct Ui {
    /// Progress bars: stderr is a terminal.
    bars: bool,
    /// Plain phase lines: stderr is not a terminal.
    lines: bool,
}

impl Ui {
    fn new(quiet: bool) -> Ui {
        let tty = std::io::stderr().is_terminal();
        Ui {
            bars: tty && !quiet,
            lines: !tty && !quiet,
        }
    }

    /// Announces a phase: a plain line, or a progress bar of `len` units (a spinner
    /// without a length).
    fn phase(&self, workload: Workload, what: &str, len: Option<u64>, unit: Unit) -> Bar {
        if self.lines {
            eprintln!("bench {}: {what}", workload.name());
        }
        if !self.bars {
            return Bar(None);
        }
        let counts = match unit {
            Unit::Bytes => "{bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
            Unit::Items => "{human_pos}/{human_len} ({per_sec:0}, eta {eta})",
        };
        let template = match (len, unit) {
            (Some(_), _) => format!("{{prefix}} {{msg}} [{{bar:30}}] {counts}"),
            (None, Unit::Bytes) => "{spinner} {prefix} {msg} {bytes} ({bytes_per_sec})".into(),
            (None, Unit::Items) => "{spinner} {prefix} {msg} {human_pos} ({per_sec:0})".into(),
        };
        let style = ProgressStyle::with_template(&template)
            .expect("valid progress template")
            .progress_chars("=> ");
        let bar = match len {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::no_length(),
        }
        .with_style(style)
        .with_prefix(workload.name())
        .with_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar(Some(bar))
    }
}

#[derive(Debug, Clone, Copy)]
enum Unit {
    Bytes,
    Items,
}

/// A progress bar, or nothing when not on a terminal. Clones share one bar.
#[derive(Clone)]
struct Bar(Option<ProgressBar>);

impl Bar {
    fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    /// Removes the bar from the terminal.
    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// One workload's result, printed as a text line or a JSON object.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Report {
    Seed(SeedReport),
    Append(AppendReport),
    Read(ReadReport),
    Durable(DurableReport),
    Open(OpenReport),
}

#[derive(Debug, Serialize)]
struct SeedReport {
    workload: &'static str,
    #[serde(flatten)]
    figures: SeedFigures,
    /// The same bytes with plain writes + fdatasync (see `write_limit`).
    limit_secs: f64,
    limit_mb_per_s: f64,
    ratio: f64,
    /// Peak resident memory of the whole process during the write phase.
    peak_rss_mib: Option<f64>,
    /// What the peak may reach: twice the buffer size plus 64 MiB.
    peak_rss_bound_mib: f64,
}

#[derive(Debug, Serialize)]
struct AppendReport {
    workload: &'static str,
    items: u64,
    item_bytes: u64,
    /// The default configuration, then `max_buffer_items` raised so that the byte
    /// threshold governs flushes.
    runs: Vec<AppendRun>,
    /// The same bytes with plain writes + fdatasync (see `write_limit`).
    limit_secs: f64,
    limit_adds_per_s: f64,
}

#[derive(Debug, Serialize)]
struct AppendRun {
    config: &'static str,
    max_buffer_items: usize,
    secs: f64,
    adds_per_s: f64,
    ratio: f64,
}

#[derive(Debug, Serialize)]
struct ReadRun {
    readers: usize,
    reads: u64,
    secs: f64,
    reads_per_s: f64,
    /// The same reads with plain pread from as many threads.
    limit_secs: f64,
    limit_reads_per_s: f64,
    ratio: f64,
}

#[derive(Debug, Serialize)]
struct ReadReport {
    workload: &'static str,
    items: u64,
    item_bytes: u64,
    runs: Vec<ReadRun>,
}

#[derive(Debug, Serialize)]
struct DurableReport {
    workload: &'static str,
    tasks: usize,
    item_bytes: u64,
    items: u64,
    flushes: u64,
    secs: f64,
    items_per_s: f64,
    flushes_per_s: f64,
    /// One append of `tasks` items plus one fdatasync, in a loop on one thread.
    limit_batches: u64,
    limit_secs: f64,
    limit_items_per_s: f64,
    ratio: f64,
}

#[derive(Debug, Serialize)]
struct OpenReport {
    workload: &'static str,
    files: u64,
    create_secs: f64,
    opens: usize,
    /// One 100 B item per file.
    open_ms: f64,
    first_open_ms: f64,
    /// The same number of files holding `big_file_bytes` each.
    big_file_bytes: u64,
    big_open_ms: f64,
    /// A directory of 100,000 items of 1 KiB in the default configuration, as the peers'
    /// `open` workload stores.
    items_open_ms: f64,
}

impl Report {
    fn print(&self) -> std::io::Result<()> {
        match self {
            Report::Seed(r) => {
                outln!("{}", r.figures.seed_line())?;
                outln!("{}", r.figures.reread_line())?;
                outln!(
                    "Limit: the same bytes with plain writes + fdatasync: {:.2}s \
                     ({:.2}MB/s), ratio {:.2}; peak RSS {} (bound {:.0} MiB)",
                    r.limit_secs,
                    r.limit_mb_per_s,
                    r.ratio,
                    r.peak_rss_mib
                        .map_or_else(|| "unknown".to_owned(), |m| format!("{m:.1} MiB")),
                    r.peak_rss_bound_mib
                )
            }
            Report::Append(r) => {
                for run in &r.runs {
                    outln!(
                        "{} items={} size={} config={} max_buffer_items={} secs={:.3} \
                         adds_per_s={:.0} ratio={:.2} (durable stop included)",
                        r.workload,
                        r.items,
                        r.item_bytes,
                        run.config,
                        run.max_buffer_items,
                        run.secs,
                        run.adds_per_s,
                        run.ratio
                    )?;
                }
                outln!(
                    "{} limit: the same bytes with plain writes + fdatasync: \
                     secs={:.3} adds_per_s={:.0}",
                    r.workload,
                    r.limit_secs,
                    r.limit_adds_per_s
                )
            }
            Report::Read(r) => {
                for run in &r.runs {
                    outln!(
                        "read items={} size={} readers={} reads={} secs={:.3} reads_per_s={:.0} \
                         limit_reads_per_s={:.0} ratio={:.2}",
                        r.items,
                        r.item_bytes,
                        run.readers,
                        run.reads,
                        run.secs,
                        run.reads_per_s,
                        run.limit_reads_per_s,
                        run.ratio
                    )?;
                }
                Ok(())
            }
            Report::Durable(r) => outln!(
                "durable tasks={} size={} items={} flushes={} secs={:.3} items_per_s={:.0} \
                 flushes_per_s={:.0} limit_items_per_s={:.0} ratio={:.2}",
                r.tasks,
                r.item_bytes,
                r.items,
                r.flushes,
                r.secs,
                r.items_per_s,
                r.flushes_per_s,
                r.limit_items_per_s,
                r.ratio
            ),
            Report::Open(r) => outln!(
                "open files={} open_ms={:.2} (median of {}) first_open_ms={:.2} \
                 big_file_bytes={} big_open_ms={:.2} items_open_ms={:.2} create_secs={:.3}",
                r.files,
                r.open_ms,
                r.opens,
                r.first_open_ms,
                r.big_file_bytes,
                r.big_open_ms,
                r.items_open_ms,
                r.create_secs
            ),
        }
    }
}

/// `a / b`, 0 when `b` is not positive.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// Runs a blocking limit measurement off the runtime's worker threads.
async fn limit<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("limit measurement panicked")?
        .context("measure the disk's limit")
}

/// Largest write for which the write limit also tries one fdatasync at the end.
const ONE_SYNC_MAX: u64 = 256 << 20;

/// The write limit: seconds to write `bytes` the faster of two plain ways (writes of
/// 16 MiB, the default buffer size, each followed by one fdatasync; up to
/// [`ONE_SYNC_MAX`], also writes of 64 MiB and one fdatasync at the end), with its
/// progress phase.
async fn write_limit(ui: &Ui, workload: Workload, dir: &Path, bytes: u64) -> anyhow::Result<f64> {
    let bar = ui.phase(
        workload,
        "limit: the same bytes with plain writes + fdatasync",
        None,
        Unit::Items,
    );
    let dir = dir.to_path_buf();
    let secs = limit(move || {
        let synced_chunks = raw::write_then_sync(&dir, bytes, 16 << 20, true)?;
        // Past a few hundred MB of dirty pages the kernel throttles the writer: one sync
        // at the end is then never the faster (three times slower for 1 GB here), and
        // measuring it would only wear down a virtual disk's burst budget.
        if bytes > ONE_SYNC_MAX {
            return Ok(synced_chunks);
        }
        let one_sync = raw::write_then_sync(&dir, bytes, 64 << 20, false)?;
        Ok(one_sync.min(synced_chunks))
    })
    .await?;
    bar.finish();
    Ok(secs)
}

/// Seconds the write limit takes for `bytes`, from two measurements (before and after the
/// workload) of `(bytes, secs)` each: the mean of their rates, so that a disk whose speed
/// drifts weighs on both sides alike.
fn mean_limit_secs(bytes: u64, runs: [(u64, f64); 2]) -> f64 {
    let rates = runs.map(|(b, s)| rate(b, s));
    let mean = f64::midpoint(rates[0], rates[1]);
    ratio(as_f64(bytes), mean)
}

type Written = Arc<RwLock<Vec<(ItemLocation, Bytes)>>>;

/// The seed's concurrent reader: reads random written items and checks their bytes until
/// `done`; returns how many it read.
async fn verifying_reader(
    db: AioDiskDb,
    written: Written,
    done: Arc<AtomicBool>,
    seed: u64,
) -> anyhow::Result<u64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut reads = 0u64;
    while !done.load(Ordering::Relaxed) {
        let pick = {
            let w = written.read().expect("lock");
            (!w.is_empty()).then(|| w[rng.gen_range(0..w.len())].clone())
        };
        let Some((loc, expected)) = pick else {
            tokio::task::yield_now().await;
            continue;
        };
        let got = db.read(loc).await?;
        if got.as_deref() != Some(&expected[..]) {
            bail!("read of {loc} returned wrong data");
        }
        reads += 1;
    }
    Ok(reads)
}

/// The seed's concurrency test: a writer adds random items while a reader reads random
/// written items and checks them; then everything is re-read from a fresh instance.
async fn seed(
    ui: &Ui,
    workload: Workload,
    dir: &Path,
    total_mb: u64,
    min: usize,
    max: usize,
    seed: u64,
) -> anyhow::Result<Report> {
    let total = total_mb * 1_000_000;
    let (blob, mut rng) = data::seed_blob(seed, max);
    let blob = Bytes::from(blob);
    let before = write_limit(ui, workload, dir, total).await?;
    let rss_reset = raw::reset_peak_rss();
    let db = AioDiskDb::open(dir).await?;
    let written: Written = Arc::new(RwLock::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(verifying_reader(
        db.clone(),
        Arc::clone(&written),
        Arc::clone(&done),
        seed ^ 0x5eed,
    ));
    let bar = ui.phase(
        workload,
        &format!("writing {total_mb} MB, reading concurrently"),
        Some(total),
        Unit::Bytes,
    );
    let start = Instant::now();
    let mut bytes = 0u64;
    while bytes < total {
        let (at, size) = data::next_seed_item(&mut rng, blob.len(), min, max);
        let item = blob.slice(at..at + size);
        let loc = db.add(item.clone()).await?;
        written.write().expect("lock").push((loc, item));
        bytes += size as u64;
        bar.inc(size as u64);
        tokio::task::yield_now().await;
    }
    db.flush().await?;
    let elapsed = start.elapsed().as_secs_f64();
    bar.finish();
    done.store(true, Ordering::Relaxed);
    let reads = reader.await??;
    let peak_rss_mib = raw::peak_rss()
        .filter(|_| rss_reset)
        .map(|b| as_f64(b) / f64::from(1 << 20));
    db.stop().await?;
    let items = std::mem::take(&mut *written.write().expect("lock"));
    let writes = items.len() as u64;

    let bar = ui.phase(
        workload,
        "re-reading from a fresh instance",
        Some(writes),
        Unit::Items,
    );
    let start = Instant::now();
    let db = AioDiskDb::open(dir).await?;
    for (loc, expected) in &items {
        if db.read(*loc).await?.as_deref() != Some(&expected[..]) {
            bail!("re-read of {loc} from a fresh instance returned wrong data");
        }
        bar.inc(1);
    }
    db.stop().await?;
    let reread_secs = start.elapsed().as_secs_f64();
    bar.finish();

    let after = write_limit(ui, workload, dir, bytes).await?;
    let limit_secs = mean_limit_secs(bytes, [(total, before), (bytes, after)]);
    Ok(Report::Seed(SeedReport {
        workload: workload.name(),
        figures: SeedFigures::new(elapsed, reads, writes, bytes, reread_secs),
        limit_secs,
        limit_mb_per_s: rate(bytes, limit_secs) / 1e6,
        ratio: ratio(limit_secs, elapsed),
        peak_rss_mib,
        peak_rss_bound_mib: 2.0 * 16.0 + 64.0,
    }))
}

/// `append` (`size` = 100 B): many small adds, then a durable stop; with the default
/// configuration, and with `max_buffer_items` raised so that the byte threshold governs
/// flushes. `append-large` (`size` = 1 MiB): the default configuration only (the byte
/// threshold governs already).
async fn append(
    ui: &Ui,
    workload: Workload,
    dir: &Path,
    items: u64,
    size: u64,
) -> anyhow::Result<Report> {
    let payload = Bytes::from(vec![0xab_u8; usize::try_from(size)?]);
    let bytes = items * size;
    let configs: &[(&'static str, usize)] = if size < 1 << 20 {
        &[("default", 1000), ("bytes-governed", 1 << 30)]
    } else {
        &[("default", 1000)]
    };
    let before = write_limit(ui, workload, dir, bytes).await?;
    let mut runs = Vec::with_capacity(2);
    for &(config, max_items) in configs {
        let sub = dir.join(config);
        let db = AioDiskDb::builder(&sub)
            .max_buffer_items(max_items)
            .open()
            .await?;
        let bar = ui.phase(
            workload,
            &format!("{items} adds of {size} B, then a durable stop ({config})"),
            Some(items),
            Unit::Items,
        );
        let start = Instant::now();
        for _ in 0..items {
            db.add(payload.clone()).await?;
            bar.inc(1);
        }
        db.stop().await?;
        let secs = start.elapsed().as_secs_f64();
        bar.finish();
        runs.push(AppendRun {
            config,
            max_buffer_items: max_items,
            secs,
            adds_per_s: rate(items, secs),
            ratio: 0.0,
        });
    }
    let after = write_limit(ui, workload, dir, bytes).await?;
    let limit_secs = mean_limit_secs(bytes, [(bytes, before), (bytes, after)]);
    for run in &mut runs {
        run.ratio = ratio(limit_secs, run.secs);
    }
    Ok(Report::Append(AppendReport {
        workload: workload.name(),
        items,
        item_bytes: size,
        runs,
        limit_secs,
        limit_adds_per_s: rate(items, limit_secs),
    }))
}

/// `read`: writes 1 KiB items, reopens, and reads random ones back from disk with 1 and
/// with 32 concurrent readers.
async fn read(ui: &Ui, dir: &Path, items: u64, seed: u64) -> anyhow::Result<Report> {
    ensure!(items > 0, "--items must be at least 1");
    let db = AioDiskDb::open(dir).await?;
    let bar = ui.phase(
        Workload::Read,
        &format!("writing {items} items of 1 KiB"),
        Some(items),
        Unit::Items,
    );
    let mut locs = Vec::with_capacity(usize::try_from(items)?);
    for i in 0..items {
        locs.push(db.add(Bytes::from(read_item(i))).await?);
        bar.inc(1);
    }
    db.stop().await?;
    bar.finish();
    let (files, targets) = raw_targets(dir, &locs).await?;
    let (files, targets) = (Arc::new(files), Arc::new(targets));
    let locs = Arc::new(locs);
    let db = AioDiskDb::open(dir).await?;
    let mut runs = Vec::new();
    for readers in [1usize, 32] {
        let bar = ui.phase(
            Workload::Read,
            &format!(
                "{items} random reads, {readers} concurrent reader{}",
                crate::inspect::plural(readers)
            ),
            Some(items),
            Unit::Items,
        );
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(readers);
        for r in 0..readers as u64 {
            let share = items / readers as u64 + u64::from(r < items % readers as u64);
            let (db, locs, bar) = (db.clone(), Arc::clone(&locs), bar.clone());
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(r));
            tasks.push(tokio::spawn(async move {
                for _ in 0..share {
                    let i = rng.gen_range(0..locs.len());
                    let loc = locs[i];
                    let got = db.read(loc).await?;
                    match got {
                        Some(b) if b.len() == 1024 && b[..8] == (i as u64).to_le_bytes() => {}
                        _ => bail!("read of {loc} returned wrong data"),
                    }
                    bar.inc(1);
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let secs = start.elapsed().as_secs_f64();
        bar.finish();
        let bar = ui.phase(
            Workload::Read,
            &format!("limit: the same reads with pread from {readers} thread(s)"),
            None,
            Unit::Items,
        );
        let limit_secs = {
            let (files, targets) = (Arc::clone(&files), Arc::clone(&targets));
            limit(move || raw::pread_random(&files, &targets, 1024, readers, items, seed)).await?
        };
        bar.finish();
        runs.push(ReadRun {
            readers,
            reads: items,
            secs,
            reads_per_s: rate(items, secs),
            limit_secs,
            limit_reads_per_s: rate(items, limit_secs),
            ratio: ratio(limit_secs, secs),
        });
    }
    db.stop().await?;
    Ok(Report::Read(ReadReport {
        workload: "read",
        items,
        item_bytes: 1024,
        runs,
    }))
}

/// The data files of `dir` (opened for plain reads) and where each item of `locs` lies in
/// them, as the read limit needs them.
async fn raw_targets(
    dir: &Path,
    locs: &[ItemLocation],
) -> anyhow::Result<(Vec<std::fs::File>, Vec<raw::Target>)> {
    let found = AioDiskDb::builder(dir).inspect().await?;
    let mut files = Vec::with_capacity(found.files.len());
    let mut by_index = std::collections::HashMap::new();
    for f in &found.files {
        // Header bytes: the file's size less the item bytes it holds.
        let header = f.size - (f.end - u64::from(f.trim_offset));
        by_index.insert(f.index, (files.len(), header, f.trim_offset));
        files.push(
            std::fs::File::open(&f.path).with_context(|| format!("open {}", f.path.display()))?,
        );
    }
    let targets = locs
        .iter()
        .enumerate()
        .map(|(i, loc)| {
            let &(file, header, trim) = by_index
                .get(&loc.index)
                .with_context(|| format!("no data file for {loc}"))?;
            Ok(raw::Target {
                file,
                offset: header + u64::from(loc.position - trim),
                tag: (i as u64).to_le_bytes(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((files, targets))
}

/// When `durable` stops.
#[derive(Debug, Clone, Copy)]
enum Until {
    /// After this many adds in all.
    Items(u64),
    /// After this long.
    Time(Duration),
}

/// `durable`: many tasks each doing add + flush in a loop; concurrent flushes share one
/// sync (group commit). The run is cut into rounds, each followed by as long a run of the
/// limit, so that a disk whose speed drifts (a shared virtual disk) weighs on both alike.
async fn durable(ui: &Ui, dir: &Path, tasks: usize, until: Until) -> anyhow::Result<Report> {
    const SIZE: u64 = 100;
    const ROUNDS: u32 = 4;
    let db = AioDiskDb::open(dir).await?;
    let mut events = db.subscribe();
    let flushes = tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            match events.recv().await {
                Ok(Event::Written { .. }) => n += 1,
                Ok(Event::Stopped { .. }) | Err(RecvError::Closed) => return n,
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => n += missed,
            }
        }
    });
    let (what, len, round) = match until {
        Until::Items(n) => (
            format!("{tasks} tasks, {n} adds + flushes in all"),
            Some(n),
            Until::Items(n.div_ceil(u64::from(ROUNDS))),
        ),
        Until::Time(d) => (
            format!(
                "{tasks} tasks doing add + flush for {:.1}s, in {ROUNDS} rounds, each followed \
                 by the limit",
                d.as_secs_f64()
            ),
            None,
            Until::Time(d / ROUNDS),
        ),
    };
    let bar = ui.phase(Workload::Durable, &what, len, Unit::Items);
    let payload = Bytes::from(vec![0xcd_u8; 100]);
    let batch = tasks * usize::try_from(SIZE)?;
    let (mut items, mut secs) = (0, 0.0);
    let (mut limit_batches, mut limit_secs) = (0, 0.0);
    for _ in 0..ROUNDS {
        let (n, t) = durable_round(&db, tasks, &payload, round, &bar).await?;
        items += n;
        secs += t;
        // The limit: as long as the round took, or as many items.
        let (dir, batches) = (dir.to_path_buf(), n.div_ceil(tasks as u64));
        let duration = Duration::from_secs_f64(t);
        let (b, t) = limit(move || raw::sync_batches(&dir, batch, duration, batches)).await?;
        limit_batches += b;
        limit_secs += t;
    }
    bar.finish();
    db.stop().await?;
    let flushes = flushes.await?;
    let limit_items_per_s = rate(limit_batches * tasks as u64, limit_secs);
    Ok(Report::Durable(DurableReport {
        workload: "durable",
        tasks,
        item_bytes: SIZE,
        items,
        flushes,
        secs,
        items_per_s: rate(items, secs),
        flushes_per_s: rate(flushes, secs),
        limit_batches,
        limit_secs,
        limit_items_per_s,
        ratio: ratio(rate(items, secs), limit_items_per_s),
    }))
}

/// One round of `durable`: (items made durable, seconds).
async fn durable_round(
    db: &AioDiskDb,
    tasks: usize,
    payload: &Bytes,
    until: Until,
    bar: &Bar,
) -> anyhow::Result<(u64, f64)> {
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (db, payload, issued, bar) = (
            db.clone(),
            payload.clone(),
            Arc::clone(&issued),
            bar.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut done = 0u64;
            loop {
                let more = match until {
                    Until::Items(n) => issued.fetch_add(1, Ordering::Relaxed) < n,
                    Until::Time(d) => start.elapsed() < d,
                };
                if !more {
                    return anyhow::Ok(done);
                }
                db.add(payload.clone()).await?;
                db.flush().await?;
                done += 1;
                bar.inc(1);
            }
        }));
    }
    let mut items = 0;
    for h in handles {
        items += h.await??;
    }
    Ok((items, start.elapsed().as_secs_f64()))
}

/// `open`: creates a directory of `files` data files (one 100-byte item fills each), then
/// times opening it; then the same with 100 KiB per file, to show that the time does not
/// grow with the amount of data.
async fn open(ui: &Ui, dir: &Path, files: u32) -> anyhow::Result<Report> {
    const BIG: u64 = 100 << 10;
    let small = open_files(ui, &dir.join("small"), files, 100).await?;
    let big = open_files(ui, &dir.join("big"), files, BIG).await?;
    let items = open_items(ui, &dir.join("items"), 100_000).await?;
    Ok(Report::Open(OpenReport {
        workload: "open",
        files: u64::from(files),
        create_secs: small.create_secs,
        opens: small.times.len(),
        open_ms: small.median_ms(),
        first_open_ms: small.times[0],
        big_file_bytes: BIG + 24,
        big_open_ms: big.median_ms(),
        items_open_ms: items.median_ms(),
    }))
}

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

/// Writes `items` items of 1 KiB to `dir` (default configuration), then opens the
/// directory 5 times.
async fn open_items(ui: &Ui, dir: &Path, items: u64) -> anyhow::Result<OpenTimes> {
    const OPENS: usize = 5;
    let bar = ui.phase(
        Workload::Open,
        &format!("writing {items} items of 1 KiB"),
        Some(items),
        Unit::Items,
    );
    let start = Instant::now();
    let db = AioDiskDb::open(dir).await?;
    for i in 0..items {
        db.add(Bytes::from(read_item(i))).await?;
        bar.inc(1);
    }
    db.stop().await?;
    let create_secs = start.elapsed().as_secs_f64();
    bar.finish();
    let mut times = Vec::with_capacity(OPENS);
    for _ in 0..OPENS {
        let t = Instant::now();
        let db = AioDiskDb::open(dir).await?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        db.stop().await?;
    }
    Ok(OpenTimes { create_secs, times })
}

/// Creates `files` data files in `dir` of one `item`-byte item each, then opens the
/// directory 5 times.
async fn open_files(ui: &Ui, dir: &Path, files: u32, item: u64) -> anyhow::Result<OpenTimes> {
    const OPENS: usize = 5;
    let builder = || {
        AioDiskDb::builder(dir)
            .max_file_size(24 + item)
            .max_buffer_size(24 + item)
    };
    let bar = ui.phase(
        Workload::Open,
        &format!("creating {files} data files of {item} B"),
        Some(u64::from(files)),
        Unit::Items,
    );
    let start = Instant::now();
    // Creating the files is not what is measured: no fsync.
    let db = builder().durability(Durability::Os).open().await?;
    let payload = Bytes::from(vec![0xef_u8; usize::try_from(item)?]);
    let mut last = None;
    for _ in 0..files {
        last = Some(db.add(payload.clone()).await?);
        bar.inc(1);
    }
    db.stop().await?;
    let create_secs = start.elapsed().as_secs_f64();
    bar.finish();
    let created = last.map_or(0, |l| u64::from(l.index) + 1);
    ensure!(
        created == u64::from(files),
        "expected {files} data files, the last item went to index {}",
        created.saturating_sub(1)
    );

    let bar = ui.phase(
        Workload::Open,
        &format!("opening {files} data files of {item} B {OPENS} times"),
        Some(OPENS as u64),
        Unit::Items,
    );
    let mut times = Vec::with_capacity(OPENS);
    for _ in 0..OPENS {
        let t = Instant::now();
        let db = builder().open().await?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        db.stop().await?;
        bar.inc(1);
    }
    bar.finish();
    Ok(OpenTimes { create_secs, times })
}
