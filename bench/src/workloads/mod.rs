//! The workloads of SPEC section 6, one driver each, generic over [`Engine`]. With
//! [`Bench::limits`] (`aiodiskdb bench`), each also measures the limit it is compared with
//! in the same run and directory; without (`aiodiskdb-peers`), only the engine runs.

mod append;
mod durable;
mod open;
mod other_process;
mod read;
mod seed;
#[cfg(feature = "tiering")]
mod tiered;
mod verify;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

pub use append::append;
pub(crate) use append::{append_configs, append_with};
pub use durable::durable;
pub use open::open;
pub(crate) use open::open_dirs;
pub(crate) use other_process::{read_only_child, read_other_process};
pub use read::read;
pub(crate) use read::{read_configs, read_with};
pub use seed::{seed, SeedSpec};
#[cfg(feature = "tiering")]
pub(crate) use tiered::{tiered, TieredSpec};
pub(crate) use verify::verify;

use crate::data::read_item;
use crate::engine::{Engine, Source, Visibility};
use crate::ui::{Bar, Ui};

/// How a workload is run and reported.
#[derive(Debug)]
pub struct Bench<'a> {
    /// Progress on stderr.
    pub ui: &'a Ui,
    /// The engine's name in the reports (the peers); aiodiskdb's reports have none.
    pub engine: Option<&'static str>,
    /// Whether to measure the limits the workloads are compared with.
    pub limits: bool,
}

/// When `durable` stops.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this many adds in all.
    Items(u64),
    /// After this long.
    Time(Duration),
}

impl Until {
    /// After `items` adds if given, else after `seconds`.
    #[must_use]
    pub fn items_or_secs(items: Option<u64>, seconds: f64) -> Until {
        match items {
            Some(n) => Until::Items(n),
            None => Until::Time(Duration::from_secs_f64(seconds)),
        }
    }
}

/// Checks the options both binaries share.
///
/// # Errors
/// `tasks` is 0, or `seconds` is not a positive number.
pub fn check_options(tasks: usize, seconds: f64) -> anyhow::Result<()> {
    anyhow::ensure!(tasks > 0, "--tasks must be at least 1");
    anyhow::ensure!(
        seconds > 0.0 && seconds.is_finite(),
        "--seconds must be more than zero"
    );
    Ok(())
}

/// `count` items of [`read_item`], counted on a bar; keeps their locations.
struct ReadItems<'a, L> {
    count: u64,
    locs: Vec<L>,
    bar: &'a Bar,
}

impl<L> Source<L> for ReadItems<'_, L> {
    fn next_item(&mut self) -> Option<Bytes> {
        let i = self.locs.len() as u64;
        (i < self.count).then(|| Bytes::from(read_item(i)))
    }

    fn added(&mut self, loc: L) {
        self.locs.push(loc);
        self.bar.inc(1);
    }
}

/// Writes `count` items of [`read_item`] to a new store in `dir` (default
/// configuration) in one session, then closes it: their locations.
async fn write_read_items<E: Engine>(
    dir: &Path,
    count: u64,
    bar: &Bar,
) -> anyhow::Result<Vec<E::Loc>> {
    let db = E::open(dir, &E::Config::default()).await?;
    let mut items = ReadItems {
        count,
        locs: Vec::with_capacity(usize::try_from(count)?),
        bar,
    };
    fill(db, &mut items).await?;
    Ok(items.locs)
}

/// Adds every item of `items` in one [`Visibility::AtEnd`] session, then closes the store:
/// everything is durable on return.
async fn fill<E: Engine>(db: E, items: &mut impl Source<E::Loc>) -> anyhow::Result<()> {
    db.bulk(Visibility::AtEnd, items).await?;
    db.close().await
}
