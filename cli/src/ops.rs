//! `add`, `rtrim`, `ltrim`, `drop`: open the database, do one operation, stop it
//! (everything durable, the directory marked cleanly stopped). `read`: a read-only handle,
//! beside any writer.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use aiodiskdb::{AioDiskDb, ItemLocation};
use anyhow::{anyhow, bail, Context};
use serde::Serialize;

use crate::args::{hex, parse_hex_bytes, parse_location, Db, DbArgs, HexBytes, HEADER_LEN};
use crate::exit;
use crate::out::{self, outln};

pub(crate) const ADD_HELP: &str = r#"The largest item is --max-file-size less the 24-byte header; a larger one is refused
before anything is created. With --json, prints one object:
  {"location": "INDEX:POSITION:SIZE", "index": int, "position": int, "size": int,
   "serialized": "24 hex digits: the Python library's ItemLocation.serialize()"}"#;

pub(crate) const TRIM_HELP: &str = r#"With --json, prints one object:
  {"index": int, "position": int, "removed_item_bytes": int}"#;

pub(crate) const DROP_HELP: &str = r#"With --json, prints one object:
  {"index": int, "file": str, "removed_item_bytes": int}"#;

#[derive(Debug, clap::Args)]
pub(crate) struct AddArgs {
    /// Read the item from this file instead of stdin.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Print the location as one JSON object (shape below) instead of INDEX:POSITION:SIZE.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub(crate) db: DbArgs,
    /// Bytes per data file, its 24-byte header included: where `add` starts a new file
    /// (also before the command) [default: 134217728]
    #[arg(long, value_name = "BYTES", help_heading = "Data directory")]
    pub(crate) max_file_size: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RecoverArgs {
    #[command(flatten)]
    pub(crate) db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ReadArgs {
    /// The item's location: INDEX:POSITION:SIZE (as `add` prints it), or the 24 hex digits
    /// of the Python library's `ItemLocation.serialize()`
    #[arg(value_name = "LOCATION", value_parser = parse_location)]
    location: ItemLocation,
    /// Print the bytes as lowercase hex and a newline instead of raw.
    #[arg(long)]
    hex: bool,
    #[command(flatten)]
    pub(crate) db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TrimArgs {
    /// The data file's index.
    #[arg(value_name = "INDEX")]
    index: u32,
    /// Logical position: rtrim cuts from here to the end; ltrim removes what is before it.
    #[arg(value_name = "POSITION")]
    position: u32,
    /// Safety check, in hex: rtrim requires the first bytes cut to equal it, ltrim the last
    /// bytes removed; otherwise nothing changes.
    #[arg(long, value_name = "HEX", value_parser = parse_hex_bytes)]
    check: Option<HexBytes>,
    /// Confirm: the bytes removed cannot be recovered.
    #[arg(long)]
    yes: bool,
    /// Print what was removed as one JSON object (shape below).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub(crate) db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DropArgs {
    /// The data file's index.
    #[arg(value_name = "INDEX")]
    index: u32,
    /// Confirm: the file is deleted.
    #[arg(long)]
    yes: bool,
    /// Print what was removed as one JSON object (shape below).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub(crate) db: DbArgs,
}

#[derive(Serialize)]
struct AddJson {
    location: String,
    index: u32,
    position: u32,
    size: u32,
    serialized: String,
}

#[derive(Serialize)]
struct TrimJson {
    index: u32,
    position: u32,
    removed_item_bytes: u64,
}

#[derive(Serialize)]
struct DropJson {
    index: u32,
    file: String,
    removed_item_bytes: u64,
}

/// Which end a trim cuts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Trim {
    Right,
    Left,
}

/// Opens an existing database with trimming allowed.
async fn open_for_trim(db: &Db) -> anyhow::Result<AioDiskDb> {
    Ok(db
        .builder()?
        .create_if_missing(false)
        .overwrite(true)
        .open()
        .await?)
}

/// Runs `op` on an open database, then stops it; the first error wins.
pub(crate) async fn with_db<T>(
    db: AioDiskDb,
    op: impl std::future::Future<Output = aiodiskdb::Result<T>>,
) -> anyhow::Result<T> {
    let result = op.await;
    let stopped = db.stop().await;
    let value = result?;
    stopped.context("stop the database")?;
    Ok(value)
}

pub(crate) async fn add(db: Db, max_file_size: u64, args: AddArgs) -> anyhow::Result<ExitCode> {
    let data = if let Some(path) = &args.file {
        std::fs::read(path).with_context(|| format!("read {}", path.display()))?
    } else {
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .context("read stdin")?;
        buf
    };
    // Both before opening, so that nothing is created for nothing. The buffer is as large
    // as a data file: an item must fit a data file after its header. (A --max-file-size
    // the library refuses is refused by the open, before anything is created.)
    if data.is_empty() {
        return Err(aiodiskdb::Error::EmptyPayload.into());
    }
    let size = data.len() as u64;
    if max_file_size > HEADER_LEN && size > max_file_size - HEADER_LEN {
        bail!(
            "item of {size} bytes is larger than the limit of {} bytes (--max-file-size \
             {max_file_size} less the {HEADER_LEN}-byte header)",
            max_file_size - HEADER_LEN
        );
    }
    let handle = db
        .builder()?
        .max_file_size(max_file_size)
        .max_buffer_size(max_file_size)
        .open()
        .await?;
    let loc = with_db(handle.clone(), handle.add(data)).await?;
    // Printed only once `stop` has made the item durable.
    if args.json {
        out::json_line(&AddJson {
            location: loc.to_string(),
            index: loc.index,
            position: loc.position,
            size: loc.size,
            serialized: hex(&loc.to_bytes()),
        })?;
    } else {
        outln!("{loc}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the directory (which recovers it) and stops it cleanly; prints what the open
/// recovered, as `inspect` planned it just before.
pub(crate) async fn recover(db: Db) -> anyhow::Result<ExitCode> {
    let builder = db.builder()?;
    let plan = db.local_builder().inspect().await?;
    let handle = builder.create_if_missing(false).open().await?;
    handle.stop().await.context("stop the database")?;
    let dir = db.dir.display();
    if plan.pending_recovery.is_empty() {
        outln!("nothing to recover in {dir}; it is stopped cleanly")?;
    } else {
        for line in &plan.pending_recovery {
            outln!("recovered: {line}")?;
        }
        outln!("{dir} is recovered and stopped cleanly")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads through a read-only handle: no lock (a service may hold the directory), nothing
/// written or created, no write permission needed; a directory that needs recovery is
/// read as recovery will keep it.
pub(crate) async fn read(db: Db, args: ReadArgs) -> anyhow::Result<ExitCode> {
    let handle = db.builder()?.read_only().open().await?;
    let loc = args.location;
    let bytes = with_db(handle.clone(), handle.read(loc))
        .await?
        .ok_or_else(|| anyhow!("location {loc} is not stored"))?;
    if args.hex {
        out::write_bytes(format!("{}\n", hex(&bytes)).as_bytes())?;
    } else {
        out::write_bytes(&bytes)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses a destructive command without `--yes`, on one line, with the usage exit code.
fn refuse(what: &str) -> ExitCode {
    eprintln!("aiodiskdb: refusing to {what} without --yes (it cannot be undone)");
    ExitCode::from(exit::USAGE)
}

pub(crate) async fn trim(db: Db, which: Trim, args: TrimArgs) -> anyhow::Result<ExitCode> {
    let (index, position) = (args.index, args.position);
    let what = match which {
        Trim::Right => format!("rtrim index {index} from position {position} to its end"),
        Trim::Left => format!("ltrim index {index} before position {position}"),
    };
    if !args.yes {
        return Ok(refuse(&what));
    }
    let check = args.check.unwrap_or_default().0;
    let handle = open_for_trim(&db).await?;
    let removed = match which {
        Trim::Right => with_db(handle.clone(), handle.rtrim(index, position, &check)).await?,
        Trim::Left => with_db(handle.clone(), handle.ltrim(index, position, &check)).await?,
    };
    if args.json {
        out::json_line(&TrimJson {
            index,
            position,
            removed_item_bytes: removed,
        })?;
    } else {
        outln!("removed {removed} item bytes from index {index}")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn drop_index(db: Db, args: DropArgs) -> anyhow::Result<ExitCode> {
    let index = args.index;
    if !args.yes {
        return Ok(refuse(&format!("drop index {index}")));
    }
    let handle = open_for_trim(&db).await?;
    let removed = with_db(handle.clone(), handle.drop_index(index)).await?;
    if args.json {
        out::json_line(&DropJson {
            index,
            file: db.data_file_name(index),
            removed_item_bytes: removed,
        })?;
    } else {
        outln!("dropped index {index} ({removed} item bytes)")?;
    }
    Ok(ExitCode::SUCCESS)
}
