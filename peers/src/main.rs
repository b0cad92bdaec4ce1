//! `aiodiskdb-peers`: the workloads of `aiodiskdb bench` run against the Rust storage
//! crates a user might pick instead of aiodiskdb (redb, fjall, okaywal, commitlog,
//! marble), each used the way its own documentation recommends, with durability
//! equivalent to ours (data acknowledged only once fsynced). See [`engines`] for how each
//! engine is used and made durable.

mod engines;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aiodiskdb_bench::{block_on, Bench, Engine, Report, Root, SeedSpec, Ui, Until};
use anyhow::Context as _;
use clap::{Parser, ValueEnum};

const AFTER_HELP: &str = r#"Workloads (those of `aiodiskdb bench`; sizes scale with --total-mb, --items, --seconds):
  seed-large  random 1 KiB..1 MiB items up to 1000 MB with a concurrent verifying reader
              thread, then a re-read from a freshly opened instance
  seed-small  the same with 1..4096-byte items up to 20 MB
  append      1,000,000 adds of 100 B in one session, made durable, then close: adds/s
  append-large  256 adds of 1 MiB (--total-mb sets the count) in one session, made
              durable, then close: adds/s
  read        writes 100,000 items of 1 KiB, reopens, then random reads with 1 and with 32
              concurrent reader threads (as many reads as items): reads/s
  durable     64 threads each doing add (100 B) + make durable in a loop for 5 s (or --items
              adds in all): durable items/s, and commits/s when the engine tells
  open        writes 100,000 (--items) items of 1 KiB, closes, then times opening the store
              5 times: median and first open, ms
  all         every workload above, in this order

Each (engine, workload) runs in its own directory. Output: the lines of `aiodiskdb bench`
(`key=value` pairs, the JSON keys in their order) starting with engine=NAME, one per
result (per run for read); a workload that failed prints engine=NAME workload=W
error="message". With --json, one object per line with the fields of
`aiodiskdb bench --json` plus "engine":
  seed-*:  {"engine", "workload", "secs", "reads", "reads_per_s", "writes", "writes_per_s",
            "bytes", "mb_per_s", "avg_item_bytes", "reread_items", "reread_secs"}
  append, append-large:
           {"engine", "workload", "items", "item_bytes", "secs", "adds_per_s"}
  read:    {"engine", "workload", "items", "item_bytes",
            "runs": [{"readers", "reads", "secs", "reads_per_s"}]}
  durable: {"engine", "workload", "tasks", "item_bytes", "items", "flushes" (synced commits,
            null when the engine does not tell), "secs", "items_per_s", "flushes_per_s"}
  open:    {"engine", "workload", "items", "item_bytes", "files" (in the store), "create_secs",
            "opens", "open_ms" (median), "first_open_ms"}
  a workload that failed: {"engine", "workload", "error": message} (exit code 1)
MB is 10^6 bytes. An interrupted run (Ctrl-C) leaves its temporary directory behind."#;

/// Run the `aiodiskdb bench` workloads against redb, fjall, okaywal, commitlog and marble.
#[derive(Debug, Parser)]
#[command(name = "aiodiskdb-peers", version, after_help = AFTER_HELP)]
struct Args {
    /// Which workload to run.
    #[arg(long, value_enum, default_value = "seed-small")]
    workload: Workload,
    /// Which engine to run it against.
    #[arg(long, value_enum, default_value = "all")]
    engine: EngineName,
    /// Data directory (must be empty or missing; one subdirectory ENGINE/WORKLOAD per
    /// run, kept); a temporary directory, removed afterwards, by default.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Megabytes to write in the seed workloads [default: 20 for seed-small, 1000 for
    /// seed-large]; for `append-large`, the number of 1 MiB adds [default: 256].
    #[arg(long, value_name = "MB")]
    total_mb: Option<u64>,
    /// Items: adds for `append` [default: 1000000], items written (and reads per run) for
    /// `read` and `open` [default: 100000], durable adds in all for `durable` [default:
    /// run for --seconds].
    #[arg(long, value_name = "N")]
    items: Option<u64>,
    /// Concurrent threads for `durable`.
    #[arg(long, value_name = "N", default_value_t = 64)]
    tasks: usize,
    /// How long `durable` runs when --items is not given.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    seconds: f64,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object per (engine, workload) instead of text lines.
    #[arg(long)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// Random 1 KiB..1 MiB items up to 1000 MB, with a concurrent verifying reader.
    SeedLarge,
    /// Random 1..4096-byte items up to 20 MB, with a concurrent verifying reader.
    SeedSmall,
    /// 1,000,000 adds of 100 B, then a durable close.
    Append,
    /// 256 adds of 1 MiB, then a durable close.
    AppendLarge,
    /// Random reads of 1 KiB items after reopen, 1 and 32 reader threads.
    Read,
    /// 64 threads each doing add + make durable in a loop.
    Durable,
    /// Time to open a store of 100,000 items of 1 KiB.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EngineName {
    Redb,
    Fjall,
    Okaywal,
    Commitlog,
    Marble,
    /// Every engine, in the order above.
    All,
}

impl EngineName {
    const EACH: [EngineName; 5] = [
        EngineName::Redb,
        EngineName::Fjall,
        EngineName::Okaywal,
        EngineName::Commitlog,
        EngineName::Marble,
    ];

    fn name(self) -> &'static str {
        match self {
            EngineName::Redb => "redb",
            EngineName::Fjall => "fjall",
            EngineName::Okaywal => "okaywal",
            EngineName::Commitlog => "commitlog",
            EngineName::Marble => "marble",
            EngineName::All => "all",
        }
    }
}

fn main() -> ExitCode {
    // The peers' APIs block: the workloads run on this thread and worker threads.
    match block_on(run(&Args::parse())) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("aiodiskdb-peers: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every (workload, engine) asked for; `Ok(false)` when one of them failed.
async fn run(args: &Args) -> anyhow::Result<bool> {
    aiodiskdb_bench::check_options(args.tasks, args.seconds)?;
    let workloads: &[Workload] = if args.workload == Workload::All {
        &Workload::EACH
    } else {
        std::slice::from_ref(&args.workload)
    };
    let engines: &[EngineName] = if args.engine == EngineName::All {
        &EngineName::EACH
    } else {
        std::slice::from_ref(&args.engine)
    };
    let root = Root::new(args.dir.as_deref(), "it must be empty")?;
    let mut all_ok = true;
    for &w in workloads {
        for &e in engines {
            let dir = root.path().join(e.name()).join(w.name());
            let report = match run_one(args, e, w, &dir).await {
                Ok(r) => r,
                Err(err) => {
                    all_ok = false;
                    Report::Failed {
                        engine: e.name(),
                        workload: w.name(),
                        error: format!("{err:#}"),
                    }
                }
            };
            report.print(args.json)?;
            root.done(&dir)?;
        }
    }
    Ok(all_ok)
}

/// Runs one workload against one engine.
async fn run_one(
    args: &Args,
    engine: EngineName,
    workload: Workload,
    dir: &Path,
) -> anyhow::Result<Report> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    match engine {
        EngineName::Redb => run_workload::<engines::redb::Redb>(args, engine, workload, dir).await,
        EngineName::Fjall => {
            run_workload::<engines::fjall::Fjall>(args, engine, workload, dir).await
        }
        EngineName::Okaywal => {
            run_workload::<engines::okaywal::OkayWal>(args, engine, workload, dir).await
        }
        EngineName::Commitlog => {
            run_workload::<engines::commitlog::CommitLogEngine>(args, engine, workload, dir).await
        }
        EngineName::Marble => {
            run_workload::<engines::marble::Marble>(args, engine, workload, dir).await
        }
        EngineName::All => unreachable!("expanded by `run`"),
    }
}

async fn run_workload<E: Engine>(
    args: &Args,
    engine: EngineName,
    workload: Workload,
    dir: &Path,
) -> anyhow::Result<Report> {
    let ui = Ui::lines(format!("peers {}", engine.name()), args.quiet);
    let b = Bench {
        ui: &ui,
        engine: Some(engine.name()),
        limits: false,
    };
    let items = args.items.unwrap_or(100_000);
    match workload {
        Workload::SeedLarge | Workload::SeedSmall => {
            let spec = SeedSpec::new(workload == Workload::SeedLarge, args.total_mb, args.seed);
            aiodiskdb_bench::seed::<E>(&b, spec, dir).await
        }
        Workload::Append => {
            let adds = args.items.unwrap_or(1_000_000);
            aiodiskdb_bench::append::<E>(&b, workload.name(), dir, adds, 100).await
        }
        Workload::AppendLarge => {
            let adds = args.total_mb.unwrap_or(256);
            aiodiskdb_bench::append::<E>(&b, workload.name(), dir, adds, 1 << 20).await
        }
        Workload::Read => aiodiskdb_bench::read::<E>(&b, dir, items, args.seed).await,
        Workload::Durable => {
            let until = Until::items_or_secs(args.items, args.seconds);
            aiodiskdb_bench::durable::<E>(&b, dir, args.tasks, until).await
        }
        Workload::Open => aiodiskdb_bench::open::<E>(&b, dir, items).await,
        Workload::All => unreachable!("expanded by `run`"),
    }
}
