//! `tier` and `hydrate` (feature `tiering`): open the directory (writer) with `--store`'s
//! tiering and no background uploads, upload now or bring every file back, stop. Built
//! without the feature, they say how to build the CLI with it.

use crate::args::DbArgs;

pub(crate) const TIER_HELP: &str = r#"Each file is uploaded whole as the object PREFIX/FILE NAME, read back and checked (its
length and the CRC32C of its bytes) before it is recorded as remote, and only then deleted
from the directory; its item index stays. Oldest first; a failure stops there (the file
stays local, what was tiered before stays tiered). The other commands then need the same
--store (`info` lists where each index lives without it).
The endpoint, region and keys come from the standard variables, as the AWS tools and the
object_store crate read them: AWS_ENDPOINT_URL (or AWS_ENDPOINT), AWS_ALLOW_HTTP=true for
a plain-HTTP endpoint, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and
AWS_SESSION_TOKEN). Example, against a local S3 server:
  AWS_ENDPOINT_URL=http://127.0.0.1:9000 AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
  aiodiskdb tier --keep-local 2 --store s3://archive/node-1/blocks /srv/blocks
With --json, prints one object:
  {"store": "s3://BUCKET/PREFIX",
   "tiered": [{"index": int, "file": str, "key": str, "size": int}]}
Needs a CLI built with the feature `tiering`."#;

pub(crate) const HYDRATE_HELP: &str = r#"Each remote file is downloaded (ranged GETs) to a temp file, checked (its length, header
and the CRC32C the directory recorded for it), synced, renamed into place and recorded as
local; only then is its object deleted. At the end, objects under the prefix that name a
data file of the directory and that nothing records any more (left by an interrupted
hydrate or upload) are deleted. Afterwards the directory opens without --store, and the
Python library opens it. Interrupted, it leaves every file either remote or local (run it
again to finish). Credentials as for `tier`.
With --json, prints one object:
  {"store": "s3://BUCKET/PREFIX",
   "hydrated": [{"index": int, "file": str, "key": str, "size": int}]}
Needs a CLI built with the feature `tiering`."#;

#[derive(Debug, clap::Args)]
pub(crate) struct TierArgs {
    /// How many of the newest sealed files stay in the directory (the head always does);
    /// 0 uploads every sealed file.
    #[arg(long, value_name = "N", default_value_t = 4)]
    keep_local: usize,
    /// Print one JSON object (shape below) instead of lines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub(crate) db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct HydrateArgs {
    /// Print one JSON object (shape below) instead of lines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub(crate) db: DbArgs,
}

#[cfg(feature = "tiering")]
mod with_tiering {
    use std::process::ExitCode;

    use clap::error::ErrorKind;
    use serde::Serialize;

    use super::{HydrateArgs, TierArgs};
    use crate::args::Db;
    use crate::inspect::plural;
    use crate::ops::with_db;
    use crate::out::{self, outln};

    /// One file moved, as the JSON shows it.
    #[derive(Serialize)]
    struct MovedJson {
        index: u32,
        file: String,
        key: String,
        size: u64,
    }

    #[derive(Serialize)]
    struct TierJson {
        store: String,
        tiered: Vec<MovedJson>,
    }

    #[derive(Serialize)]
    struct HydrateJson {
        store: String,
        hydrated: Vec<MovedJson>,
    }

    /// `--store`, which `command` needs: without it a usage error, naming the store the
    /// directory records, if any.
    async fn required_store(db: &Db, command: &str) -> anyhow::Result<String> {
        if let Some(url) = &db.store {
            return Ok(url.clone());
        }
        let recorded = db
            .local_builder()
            .inspect()
            .await
            .ok()
            .and_then(|ins| ins.remote_store)
            .map(|r| format!(" (its files are on {}: --store {})", r.store, r.url))
            .unwrap_or_default();
        Err(crate::usage_error(
            command,
            ErrorKind::MissingRequiredArgument,
            format!(
                "`{command}` needs the object store: give --store s3://BUCKET/PREFIX{recorded}"
            ),
        )
        .into())
    }

    fn moved(db: &Db, prefix: &str, index: u32, size: u64) -> MovedJson {
        let file = db.data_file_name(index);
        let key = if prefix.is_empty() {
            file.clone()
        } else {
            format!("{prefix}/{file}")
        };
        MovedJson {
            index,
            file,
            key,
            size,
        }
    }

    pub(crate) async fn tier(db: Db, args: TierArgs) -> anyhow::Result<ExitCode> {
        let url = required_store(&db, "tier").await?;
        let tiering = db.tiering()?.keep_local(args.keep_local);
        let prefix = tiering.prefix().to_owned();
        let handle = db
            .local_builder()
            .create_if_missing(false)
            .tiering(tiering)
            .open()
            .await?;
        let tiered = with_db(handle.clone(), handle.tier()).await?;
        let tiered: Vec<MovedJson> = tiered
            .iter()
            .map(|t| moved(&db, &prefix, t.index, t.size))
            .collect();
        if args.json {
            out::json_line(&TierJson { store: url, tiered })?;
            return Ok(ExitCode::SUCCESS);
        }
        for m in &tiered {
            outln!("tiered index {} ({} bytes) to {}", m.index, m.size, m.key)?;
        }
        let kept = args.keep_local;
        if tiered.is_empty() {
            outln!(
                "nothing to tier: no sealed file beyond the newest {kept} is in {}",
                db.dir.display()
            )?;
        } else {
            outln!(
                "{} file{} tiered to {url}; the newest {kept} sealed file{} and the head stay \
                 local",
                tiered.len(),
                plural(tiered.len()),
                plural(kept)
            )?;
        }
        Ok(ExitCode::SUCCESS)
    }

    pub(crate) async fn hydrate(db: Db, args: HydrateArgs) -> anyhow::Result<ExitCode> {
        let url = required_store(&db, "hydrate").await?;
        let prefix = db.tiering()?.prefix().to_owned();
        let handle = db.builder()?.create_if_missing(false).open().await?;
        let hydrated = with_db(handle.clone(), handle.hydrate()).await?;
        let hydrated: Vec<MovedJson> = hydrated
            .iter()
            .map(|h| moved(&db, &prefix, h.index, h.size))
            .collect();
        if args.json {
            out::json_line(&HydrateJson {
                store: url,
                hydrated,
            })?;
            return Ok(ExitCode::SUCCESS);
        }
        for m in &hydrated {
            outln!(
                "hydrated index {} ({} bytes) from {}",
                m.index,
                m.size,
                m.key
            )?;
        }
        let dir = db.dir.display();
        if hydrated.is_empty() {
            outln!("nothing on object storage: {dir} opens without --store")?;
        } else {
            outln!(
                "{} file{} back in {dir}: it opens without --store",
                hydrated.len(),
                plural(hydrated.len())
            )?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(feature = "tiering")]
pub(crate) use with_tiering::{hydrate, tier};

#[cfg(not(feature = "tiering"))]
#[expect(clippy::unused_async, reason = "the same call as with tiering")]
pub(crate) async fn tier(
    _: crate::args::Db,
    _: TierArgs,
) -> anyhow::Result<std::process::ExitCode> {
    Err(crate::args::without_tiering("`tier`"))
}

#[cfg(not(feature = "tiering"))]
#[expect(clippy::unused_async, reason = "the same call as with tiering")]
pub(crate) async fn hydrate(
    _: crate::args::Db,
    _: HydrateArgs,
) -> anyhow::Result<std::process::ExitCode> {
    Err(crate::args::without_tiering("`hydrate`"))
}
