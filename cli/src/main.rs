//! `aiodiskdb`: the command-line tool for aiodiskdb data directories.
//!
//! `main` only maps the outcome of [`run`] to an exit code: errors print one line (the
//! error chain joined with ": ", the library's option names turned into the CLI's flags)
//! and exit 1; usage errors are clap's and exit 2; a closed stdout pipe is not an error.

mod args;
mod flags;
mod inspect;
mod ops;
mod out;
mod tier;
mod verify;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

/// Exit codes, as documented in `--help` and the README.
mod exit {
    /// An error: one line on stderr.
    pub(crate) const ERROR: u8 = 1;
    /// A usage error: bad arguments (clap's own code), or a trim without `--yes`.
    pub(crate) const USAGE: u8 = 2;
    /// `check` or `verify` found problems, or `verify` or `scan` found a recovery pending.
    pub(crate) const PROBLEMS: u8 = 3;
}

const TOP_HELP: &str = "\
Exit codes:
  0  success
  1  error: one line on stderr, `aiodiskdb: <error>: <cause>...` (missing directory,
     location not stored, corrupted item, failed trim, I/O error, ...)
  2  usage error (clap's message): bad arguments or location syntax, an option the command
     does not take, an option or the directory given both before and after the command,
     no directory; or rtrim/ltrim/drop without --yes
  3  `check` or `verify` found problems, or recovery is pending (`check`, `verify`, `scan`:
     none of them recovers): one line per problem on stdout (on stderr for `scan`), naming
     the file or the item's location; `aiodiskdb recover` finishes a pending recovery
A closed stdout pipe (`aiodiskdb read ... | head -c1`) is not an error.

The data directory and its format options (--dir, --prefix, --padding, --genesis,
--max-file-size) go before or after the command, once; the directory may also be the
command's last argument, after its own. These are the same:
  aiodiskdb --dir /srv/blocks --prefix blk read 0:11:12
  aiodiskdb read --dir /srv/blocks --prefix blk 0:11:12
  aiodiskdb read 0:11:12 /srv/blocks --prefix blk
Each command's --help lists the options it takes (--max-file-size: `add` only).
A tiered directory (some files on S3-compatible object storage: `tier`, `hydrate`) needs
--store s3://BUCKET/PREFIX, placed as --dir is, with the endpoint and keys in the standard
AWS_* variables (`aiodiskdb tier --help`); `info` shows where each index lives without
it. --store, `tier` and `hydrate` need a CLI built with the feature `tiering`
(`cargo build -p aiodiskdb-cli --features tiering`).
A location is INDEX:POSITION:SIZE, or the 24 hex digits of the 12 bytes of the Python
library's ItemLocation.serialize() (index, position, size: u32 little endian).";

/// Inspect, check, verify, read, write, trim and benchmark aiodiskdb data directories
/// (the file format of the Python library aiodiskdb 0.2.x).
#[derive(Debug, Parser)]
#[command(name = "aiodiskdb", version, after_help = TOP_HELP)]
struct Cli {
    #[command(flatten)]
    top: args::TopArgs,
    #[command(subcommand)]
    command: Command,
}

/// A usage error of the subcommand `name` (exit 2), with its usage line, as clap prints
/// its own.
pub(crate) fn usage_error(
    name: &str,
    kind: clap::error::ErrorKind,
    message: impl std::fmt::Display,
) -> clap::Error {
    let mut cli = Cli::command();
    cli.build();
    match cli.find_subcommand_mut(name) {
        Some(sub) => sub.error(kind, message),
        None => cli.error(kind, message),
    }
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
    /// Read every stored byte and check each item against its CRC32C, without changing
    /// anything (read-only, also beside a writer); exit 3 with one line per corrupt,
    /// missing or inconsistent location.
    #[command(after_help = verify::VERIFY_HELP)]
    Verify(verify::VerifyArgs),
    /// List the location of every item, in order, as INDEX:POSITION:SIZE (read-only, also
    /// beside a writer).
    #[command(after_help = verify::SCAN_HELP)]
    Scan(verify::ScanArgs),
    /// Recover a directory a crashed writer left (finish or undo its interrupted flush or
    /// trim), mark it cleanly stopped, and print what was done.
    Recover(ops::RecoverArgs),
    /// Store one item read from stdin (or --file), make it durable, print its location
    /// as INDEX:POSITION:SIZE.
    #[command(after_help = ops::ADD_HELP)]
    Add(ops::AddArgs),
    /// Write the bytes of the item at LOCATION to stdout (or their hex, with --hex);
    /// read-only: beside a writer that holds the directory, creating nothing.
    Read(ops::ReadArgs),
    /// Cut index INDEX from logical position POSITION to its end (needs --yes).
    #[command(after_help = ops::TRIM_HELP)]
    Rtrim(ops::TrimArgs),
    /// Remove the bytes of index INDEX before logical position POSITION; the positions of
    /// the items kept do not change (needs --yes).
    #[command(after_help = ops::TRIM_HELP)]
    Ltrim(ops::TrimArgs),
    /// Delete the data file of index INDEX (needs --yes).
    #[command(after_help = ops::DROP_HELP)]
    Drop(ops::DropArgs),
    /// Upload the sealed files beyond the newest --keep-local to the object store of --store
    /// now, each verified, recorded as remote and deleted locally; print what was tiered
    /// (feature `tiering`).
    #[command(after_help = tier::TIER_HELP)]
    Tier(tier::TierArgs),
    /// Bring every file on object storage back into the directory, then delete their
    /// objects: afterwards it opens without --store (feature `tiering`).
    #[command(after_help = tier::HYDRATE_HELP)]
    Hydrate(tier::HydrateArgs),
    /// Run benchmark workloads (on a temporary directory unless --dir is given).
    #[command(after_help = aiodiskdb_bench::BENCH_HELP)]
    Bench(aiodiskdb_bench::BenchArgs),
}

/// A value clap refused that names an existing directory was most likely meant as DIR,
/// given before the command's own arguments (`read DIR LOCATION`): say where DIR goes.
fn with_dir_tip(mut e: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::ValueValidation {
        return e;
    }
    if let Some(ContextValue::String(value)) = e.get(ContextKind::InvalidValue) {
        if std::path::Path::new(value).is_dir() {
            let tip = format!(
                "'{value}' is a directory: the data directory DIR comes last, after the \
                 command's own arguments (or give it with --dir)"
            );
            e.insert(
                ContextKind::Suggested,
                ContextValue::StyledStrs(vec![tip.into()]),
            );
        }
    }
    e
}

fn main() -> ExitCode {
    let cli = Cli::try_parse().unwrap_or_else(|e| with_dir_tip(e).exit());
    match run(cli) {
        Ok(code) => code,
        Err(e) if out::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => match e.downcast::<clap::Error>() {
            Ok(usage) => {
                // Printing to a closed stderr has nowhere to report.
                let _ = usage.print();
                ExitCode::from(exit::USAGE)
            }
            Err(e) => {
                eprintln!("aiodiskdb: {}", flags::error_line(&e));
                ExitCode::from(exit::ERROR)
            }
        },
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let top = &cli.top;
    let code = rt.block_on(async {
        match cli.command {
            Command::Info(a) => inspect::info(top.db("info", &a.db)?, a).await,
            Command::Check(a) => inspect::check(top.db("check", &a.db)?, a).await,
            Command::Verify(a) => verify::verify(top.db("verify", &a.db)?, a).await,
            Command::Scan(a) => verify::scan(top.db("scan", &a.db)?, a).await,
            Command::Recover(a) => ops::recover(top.db("recover", &a.db)?).await,
            Command::Add(a) => {
                let (db, max_file_size) = top.db_for_add(&a.db, a.max_file_size)?;
                ops::add(db, max_file_size, a).await
            }
            Command::Read(a) => ops::read(top.db("read", &a.db)?, a).await,
            Command::Rtrim(a) => ops::trim(top.db("rtrim", &a.db)?, ops::Trim::Right, a).await,
            Command::Ltrim(a) => ops::trim(top.db("ltrim", &a.db)?, ops::Trim::Left, a).await,
            Command::Drop(a) => ops::drop_index(top.db("drop", &a.db)?, a).await,
            Command::Tier(a) => tier::tier(top.db("tier", &a.db)?, a).await,
            Command::Hydrate(a) => tier::hydrate(top.db("hydrate", &a.db)?, a).await,
            Command::Bench(mut a) => {
                let dir = top.bench_dir(a.dir())?;
                a.set_dir(dir);
                let store = top.bench_store(a.store())?;
                a.set_store(store);
                aiodiskdb_bench::run_bench(a).await
            }
        }
    })?;
    out::flush()?;
    Ok(code)
}
