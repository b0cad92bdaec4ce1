//! `aiodiskdb`: the command-line tool for aiodiskdb data directories.

mod bench;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Inspect, check and benchmark aiodiskdb data directories.
#[derive(Debug, Parser)]
#[command(name = "aiodiskdb", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a benchmark workload (on a temporary directory unless --dir is given).
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("aiodiskdb: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Bench(args) => rt.block_on(bench::run(args)),
    }
}
