//! `aiodiskdb`: the command-line tool for aiodiskdb data directories.
//!
//! `main` only maps the outcome of [`run`] to an exit code: errors print one line (the
//! error chain joined with ": ") and exit 1; a closed stdout pipe is not an error.

mod args;
mod inspect;
mod ops;
mod out;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes, as documented in `--help` and the README.
mod exit {
    /// An error: one line on stderr.
    pub(crate) const ERROR: u8 = 1;
    /// A usage error: bad arguments (clap's own code), or a trim without `--yes`.
    pub(crate) const USAGE: u8 = 2;
    /// `check` found problems.
    pub(crate) const PROBLEMS: u8 = 3;
}

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  error: one line on stderr, `aiodiskdb: <error>: <cause>...` (missing directory,
     location not stored, failed trim, I/O error, ...)
  2  usage error: bad arguments or location syntax (clap), or rtrim/ltrim/drop without --yes
  3  `check` found problems, or recovery is pending (one line per problem on stdout, naming
     the file; `aiodiskdb recover` finishes a pending recovery)
A closed stdout pipe (`aiodiskdb read ... | head -c1`) is not an error.";

/// Inspect, check, read, write, trim and benchmark aiodiskdb data directories
/// (the file format of the Python library aiodiskdb 0.2.x).
#[derive(Debug, Parser)]
#[command(name = "aiodiskdb", version, after_help = EXIT_CODES_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the data files, their sizes and trim offsets, the commit state, pending
    /// recovery and the lock (read-only).
    #[command(after_help = inspect::INFO_HELP)]
    Info(inspect::InfoArgs),
    /// Validate headers, names, sizes and any pending recovery without changing anything;
    /// exit 3 with one line per problem when the directory is not sound.
    #[command(after_help = inspect::CHECK_HELP)]
    Check(inspect::CheckArgs),
    /// Recover a directory a crashed writer left (finish or undo its interrupted flush or
    /// trim), mark it cleanly stopped, and print what was done.
    Recover(ops::RecoverArgs),
    /// Store one item read from stdin (or --file), make it durable, print its location
    /// as INDEX:POSITION:SIZE.
    Add(ops::AddArgs),
    /// Write the bytes of the item at LOCATION (INDEX:POSITION:SIZE) to stdout.
    Read(ops::ReadArgs),
    /// Cut index INDEX from logical position POSITION to its end (needs --yes).
    Rtrim(ops::TrimArgs),
    /// Remove the bytes of index INDEX before logical position POSITION; the positions of
    /// the items kept do not change (needs --yes).
    Ltrim(ops::TrimArgs),
    /// Delete the data file of index INDEX (needs --yes).
    Drop(ops::DropArgs),
    /// Run benchmark workloads (on a temporary directory unless --dir is given).
    #[command(after_help = aiodiskdb_bench::BENCH_HELP)]
    Bench(aiodiskdb_bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) if out::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aiodiskdb: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let code = rt.block_on(async {
        match cli.command {
            Command::Info(args) => inspect::info(args).await,
            Command::Check(args) => inspect::check(args).await,
            Command::Recover(args) => ops::recover(args).await,
            Command::Add(args) => ops::add(args).await,
            Command::Read(args) => ops::read(args).await,
            Command::Rtrim(args) => ops::trim(ops::Trim::Right, args).await,
            Command::Ltrim(args) => ops::trim(ops::Trim::Left, args).await,
            Command::Drop(args) => ops::drop_index(args).await,
            Command::Bench(args) => aiodiskdb_bench::run_bench(args).await,
        }
    })?;
    out::flush()?;
    Ok(code)
}
