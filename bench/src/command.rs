//! `aiodiskdb bench`: the workloads of SPEC section 6 run against aiodiskdb, each with the
//! limit it is compared with, with progress bars on a terminal (plain phase lines on stderr
//! otherwise) and one result per workload on stdout: text lines, or one JSON object with
//! `--json`. The `aiodiskdb` binary's subcommand is this module.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aiodiskdb::AioDiskDb;
use anyhow::{bail, ensure, Context as _};
use clap::ValueEnum;

use crate::root::Root;
use crate::ui::Ui;
use crate::workloads::{self, Bench, SeedSpec, Until};

/// The text of `aiodiskdb bench --help` after the options: the workloads, their limits and
/// their output.
pub const BENCH_HELP: &str = r#"Workloads (sizes scale with --total-mb, --items, --files, --seconds):
  seed-large  random 1 KiB..1 MiB items up to 1000 MB with a concurrent verifying reader,
              then a re-read from a fresh instance
  seed-small  the same with 1..4096-byte items up to 20 MB (the default workload)
  append      1,000,000 adds of 100 B, then a durable stop: adds/s; with the default
              configuration, then with max_buffer_items raised (the byte threshold governs)
  append-large  256 adds of 1 MiB (--total-mb sets the count), then a durable stop:
              adds/s (default configuration)
  read        writes 100,000 items of 1 KiB, reopens, then random reads with 1 and with 32
              concurrent readers (as many reads as items), with verify_reads on and off,
              in 3 rounds (each configuration and the limit in turn): reads/s
  durable     64 tasks each doing add (100 B) + flush in a loop for 5 s (or --items adds
              in all): durable items/s and flushes/s (group commit)
  open        creates 1,000 data files of one 100 B item, times `open` of the directory;
              then the same with 100 KiB per file; then a directory of 100,000 items of
              1 KiB (what the peers' `open` stores)
  verify      writes 1000 MB (--total-mb) of random 1..64 KiB items, then a durable stop;
              times `verify` of a fresh instance: cold (the page cache dropped before
              each pass; needs root, skipped otherwise), then warm: MB/s
  read-other-process
              writes 100,000 items of 1 KiB (--items) durably, then keeps appending (add +
              flush of 1 KiB, then 10 ms pause) while random reads of those items run in
              turns in this process (the writer's) and from a read-only handle in another
              process (this binary again), with 1 and with 32 concurrent readers (as many
              reads as items), in 3 rounds: reads/s of each, vs_writer = the other
              process's reads/s / the writer's
  all         every workload above, in this order
  tiered      (feature `tiering`, not part of `all`) tiered storage against the S3 server of
              --store s3://BUCKET/PREFIX (endpoint and keys from the AWS_* variables;
              the bucket must exist): writes 1000 MB (--total-mb) of sealed files of
              1 KiB items; uploads them with AioDiskDb::tier (keep_local 0) against
              plain object_store puts of the same files (8 MiB parts, 8 in flight)
              before and after; then 3 rounds of cold reads of remote items (a fresh
              handle; 200 distinct items per round, --items) against plain ranged GETs
              of the same ranges, and of warm reads (1000 per cold one, at most 200,000,
              among the items cached) against our reads of a local copy never tiered,
              8 tasks each; the directory's disk usage sampled every 10 ms throughout.
              Objects go under a prefix of their own and are deleted at the end.

Each workload also measures, in the same run and directory, the limit it is compared with:
  seed-*, append  the same bytes written the faster of two plain ways: writes of 16 MiB
                  each followed by an fdatasync, or (up to 256 MiB) writes of 64 MiB and
                  one fdatasync at the end; before and after the workload (the mean of
                  the two rates)
  read            the same random reads with plain pread, from 1 and from 32 threads,
                  once per round
  durable         one append of (tasks x 100 B) plus one fdatasync, in a loop on one thread,
                  after each of 4 rounds of the workload, for as long as the round
  verify          the same data files read whole, one after the other, with sequential
                  4 MiB preads (cold or warm as the pass); before and after `verify`
  tiered          plain object_store calls to the same server (puts, ranged GETs), and
                  our own reads of a local copy (warm reads)
and prints ratio = our rate / the limit's rate (above 1: faster than the limit). durable
also prints items_per_flush (items per synced commit) and flush_ratio = our commits/s /
the limit's batches/s (the ratio to one fdatasync per batch of our batches' size), and
unsynced_ratio: the same workload with Durability::Os over the same limit (the engine's
adds, commits and wake-ups alone, the ceiling of ratio); read
prints, for verified reads, vs_unverified = their reads/s / those of unverified reads.

Output: one line per workload (per run for append, append-large, read and verify,
repeating what the runs share), of `key=value` pairs separated by spaces: the keys of
the JSON objects below, in their order, with figures rounded, e.g.
  workload=open files=1000 create_secs=0.412 opens=5 open_ms=0.87 first_open_ms=1.02 ...
The seed workloads' line holds the seed's figures (duration secs, reads, writes,
bandwidth bytes and mb_per_s, avg_item_bytes), the re-read and the limit, with the peak
RSS of the write phase; append lines end with close=stop (the durable stop is timed in
secs); a figure not known is n/a (null in JSON). With --json, one object per workload:
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
            "runs": [{"readers": int, "verify_reads": bool, "reads": int (all rounds),
                      "secs": f64, "reads_per_s": f64, "limit_secs": f64,
                      "limit_reads_per_s": f64, "ratio": f64,
                      "vs_unverified": f64 (verify_reads runs only)}]}
  durable: {"workload": "durable", "tasks": int, "item_bytes": 100, "items": int,
            "flushes": int, "secs": f64, "items_per_s": f64, "flushes_per_s": f64,
            "limit_batches": int, "limit_secs": f64, "limit_items_per_s": f64,
            "ratio": f64, "items_per_flush": f64, "flush_ratio": f64,
            "unsynced_items_per_s": f64, "unsynced_ratio": f64 (ours: one more round
            with Durability::Os, everything but the syncs, against the same limit)}
  open:    {"workload": "open", "files": int, "create_secs": f64, "opens": int,
            "open_ms": f64 (median), "first_open_ms": f64, "big_file_bytes": int,
            "big_open_ms": f64 (median), "items_open_ms": f64 (median)}
  verify:  {"workload": "verify", "items": int, "bytes": int, "files": int,
            "runs": [{"cache": "cold"|"warm", "secs": f64, "mb_per_s": f64,
                      "limit_secs": f64, "limit_mb_per_s": f64, "ratio": f64}]}
  read-other-process:
           {"workload": "read-other-process", "items": int, "item_bytes": 1024,
            "appends": int, "appends_per_s": f64,
            "runs": [{"readers": int, "process": "writer"|"reader", "reads": int (all
                      rounds), "secs": f64, "reads_per_s": f64,
                      "vs_writer": f64 (reader runs only)}]}
  tiered:  {"workload": "tiered", "store": str, "concurrency": int, "part_bytes": int,
            "file_size": int, "files": int (sealed), "bytes": int (sealed), "items": int,
            "upload": {"secs": f64, "mb_per_s": f64, "plain_secs": [f64, f64],
                       "plain_mb_per_s": f64 (mean), "ratio": f64},
            "cold"|"warm": {"reads": int (all rounds), "secs": f64, "reads_per_s": f64,
                       "baseline": str, "baseline_secs": f64,
                       "baseline_reads_per_s": f64, "ratio": f64},
            "rounds": [{"cold", "plain", "warm", "local": f64 (seconds)}],
            "disk": {"samples": int, "tiered_events": int, "start_bytes": int,
                     "max_bytes": int, "max_unexpected_bytes": int (must be 0),
                     "after_tier_max_bytes": int, "after_tier_max_data_bytes": int,
                     "max_index_bytes": int, "max_meta_bytes": int,
                     "unexpected_files": [str] (names, 10 at most),
                     "bound_bytes": int (keep_local sealed files + the head),
                     "sealed_bytes": int, "cache": "ram"}}
    (text: four lines, part=upload|cold|warm|disk)
MB is 10^6 bytes. Every workload uses the default configuration (durable: fsync) unless
said above."#;

/// Items written (and reads per run) of `read` and `read-other-process`.
const READ_ITEMS: u64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// Random 1 KiB..1 MiB items up to 1000 MB, with a concurrent verifying reader.
    SeedLarge,
    /// Random 1..4096-byte items up to 20 MB, with a concurrent verifying reader.
    SeedSmall,
    /// 1,000,000 adds of 100 B, then a durable stop.
    Append,
    /// 256 adds of 1 MiB, then a durable stop.
    AppendLarge,
    /// Random reads of 1 KiB items from disk after reopen, 1 and 32 readers.
    Read,
    /// 64 tasks each doing add + flush in a loop.
    Durable,
    /// Time to open a directory of 1,000 data files.
    Open,
    /// `verify` of 1000 MB of 1..64 KiB items, cold and warm.
    Verify,
    /// Random 1 KiB reads from a read-only handle in another process while the writer
    /// appends, against the same reads in the writer's process.
    ReadOtherProcess,
    /// Every workload, in the order above (not `tiered`).
    All,
    /// Tiered storage against an S3 server (`--store`; feature `tiering`).
    Tiered,
}

impl Workload {
    const EACH: [Workload; 9] = [
        Workload::SeedLarge,
        Workload::SeedSmall,
        Workload::Append,
        Workload::AppendLarge,
        Workload::Read,
        Workload::Durable,
        Workload::Open,
        Workload::Verify,
        Workload::ReadOtherProcess,
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
            Workload::Verify => "verify",
            Workload::ReadOtherProcess => "read-other-process",
            Workload::All => "all",
            Workload::Tiered => "tiered",
        }
    }
}

/// The options of `aiodiskdb bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Which workload to run.
    #[arg(long, value_enum, default_value = "seed-small")]
    workload: Workload,
    /// Data directory (must be empty or missing; `all` uses one subdirectory per
    /// workload); a temporary directory, removed afterwards, by default.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Megabytes to write in the seed workloads [default: 20 for seed-small, 1000 for
    /// seed-large], in `verify` [default: 1000] and of sealed files in `tiered` [default:
    /// 1000]; for `append-large`, the number of 1 MiB adds [default: 256].
    #[arg(long, value_name = "MB")]
    total_mb: Option<u64>,
    /// Items: adds for `append` [default: 1000000], items written and reads per run for
    /// `read` and `read-other-process` [default: 100000], durable adds in all for
    /// `durable` [default: run for --seconds], cold reads per round for `tiered`
    /// [default: 200].
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
    /// The object store of `tiered`: `s3://BUCKET[/PREFIX]`, the endpoint, region and keys
    /// from the `AWS_*` variables (`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP=true` for plain
    /// HTTP, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`)
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object per workload (shapes below) instead of text lines.
    #[arg(long)]
    json: bool,
    /// No progress output on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// The reader process of `read-other-process`, started by the bench itself: opens DIR
    /// read-only and runs the reads asked for on stdin.
    #[arg(long, value_name = "DIR", hide = true)]
    read_only_child: Option<PathBuf>,
}

impl BenchArgs {
    /// The directory given with `--dir`, if any.
    #[must_use]
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Sets the directory (`aiodiskdb --dir DIR bench` gives it before the command);
    /// `None` for a temporary one.
    pub fn set_dir(&mut self, dir: Option<PathBuf>) {
        self.dir = dir;
    }

    /// The `--store` of `tiered`, if given.
    #[must_use]
    pub fn store(&self) -> Option<&str> {
        self.store.as_deref()
    }

    /// Sets the `--store` (the CLI's, given before the command, merged into the bench's).
    pub fn set_store(&mut self, store: Option<String>) {
        self.store = store;
    }
}

/// Runs `aiodiskdb bench`: the workloads asked for, each in a directory of its own under
/// `--dir` or a temporary directory (removed afterwards, also on Ctrl-C).
///
/// # Errors
/// A bad option, a `--dir` that is not empty, a workload that failed, or stdout closed.
pub async fn run_bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.read_only_child {
        let items = args.items.unwrap_or(READ_ITEMS);
        workloads::read_only_child(dir, items).await?;
        return Ok(ExitCode::SUCCESS);
    }
    workloads::check_options(args.tasks, args.seconds)?;
    ensure!(args.files > 0, "--files must be at least 1");
    ensure!(
        args.store.is_none() || args.workload == Workload::Tiered,
        "--store applies to --workload tiered only"
    );
    let workloads: &[Workload] = if args.workload == Workload::All {
        &Workload::EACH
    } else {
        std::slice::from_ref(&args.workload)
    };
    let root = Root::new(args.dir.as_deref(), "bench needs an empty directory")?;
    let ui = Ui::terminal("bench", args.quiet);
    // On Ctrl-C, return (an error) so that the temporary directory is removed.
    tokio::select! {
        r = run_workloads(&args, workloads, &root, &ui) => r?,
        r = tokio::signal::ctrl_c() => {
            r.context("listen for Ctrl-C")?;
            bail!("interrupted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_workloads(
    args: &BenchArgs,
    workloads: &[Workload],
    root: &Root,
    ui: &Ui,
) -> anyhow::Result<()> {
    let b = Bench {
        ui,
        engine: None,
        limits: true,
    };
    for &w in workloads {
        // `all` gives each workload its own subdirectory.
        let dir = if root.is_temp() || workloads.len() > 1 {
            root.path().join(w.name())
        } else {
            root.path().to_path_buf()
        };
        let report = run_one(&b, args, w, &dir).await?;
        if let (false, Some(lines)) = (args.json, report.seed_lines()) {
            ui.say(&lines);
        }
        report.print(args.json)?;
        root.done(&dir)?;
    }
    Ok(())
}

async fn run_one(
    b: &Bench<'_>,
    args: &BenchArgs,
    w: Workload,
    dir: &Path,
) -> anyhow::Result<crate::Report> {
    type Db = AioDiskDb;
    let name = w.name();
    match w {
        Workload::SeedLarge | Workload::SeedSmall => {
            let spec = SeedSpec::new(w == Workload::SeedLarge, args.total_mb, args.seed);
            workloads::seed::<Db>(b, spec, dir).await
        }
        Workload::Append => {
            let items = args.items.unwrap_or(1_000_000);
            workloads::append_with::<Db>(b, name, dir, items, 100, workloads::append_configs(100))
                .await
        }
        Workload::AppendLarge => {
            let (items, size) = (args.total_mb.unwrap_or(256), 1 << 20);
            workloads::append_with::<Db>(b, name, dir, items, size, workloads::append_configs(size))
                .await
        }
        Workload::Read => {
            let items = args.items.unwrap_or(READ_ITEMS);
            workloads::read_with::<Db>(b, dir, items, args.seed, workloads::read_configs()).await
        }
        Workload::Durable => {
            let until = Until::items_or_secs(args.items, args.seconds);
            workloads::durable::<Db>(b, dir, args.tasks, until).await
        }
        Workload::Open => workloads::open_dirs(b, dir, args.files).await,
        Workload::Verify => {
            workloads::verify(b, dir, args.total_mb.unwrap_or(1000), args.seed).await
        }
        Workload::ReadOtherProcess => {
            let items = args.items.unwrap_or(READ_ITEMS);
            workloads::read_other_process(b, dir, items, args.seed).await
        }
        Workload::Tiered => tiered(b, args, dir).await,
        Workload::All => unreachable!("expanded by `run_bench`"),
    }
}

/// The command that builds and runs `tiered`.
const TIERED_COMMAND: &str = "cargo run --release -p aiodiskdb-cli --features tiering -- \
bench --workload tiered --store s3://BUCKET/PREFIX";

#[cfg(feature = "tiering")]
async fn tiered(b: &Bench<'_>, args: &BenchArgs, dir: &Path) -> anyhow::Result<crate::Report> {
    let Some(store) = args.store.clone() else {
        bail!(
            "--workload tiered needs --store s3://BUCKET[/PREFIX] (the endpoint and keys from \
             the AWS_* variables): {TIERED_COMMAND}"
        );
    };
    let spec = workloads::TieredSpec {
        store,
        total_mb: args.total_mb.unwrap_or(1000),
        cold_reads: args.items.unwrap_or(200),
        seed: args.seed,
    };
    workloads::tiered(b, dir, &spec).await
}

#[cfg(not(feature = "tiering"))]
#[expect(clippy::unused_async, reason = "the same call as with the feature")]
async fn tiered(_: &Bench<'_>, _: &BenchArgs, _: &Path) -> anyhow::Result<crate::Report> {
    bail!(
        "--workload tiered needs the `tiering` feature, which this build does not have; build \
         and run it with: {TIERED_COMMAND}"
    )
}
