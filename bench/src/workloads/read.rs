//! `read`: writes 1 KiB items, reopens, and reads random ones back with 1 and with 32
//! concurrent readers, checking each. aiodiskdb runs it twice per round, with
//! `verify_reads` on and off, beside the pread limit.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Context as _};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::{write_read_items, Bench};
use crate::data::rate;
use crate::engine::{Engine, Layout};
use crate::exec::join_all;
use crate::limits::{limit, ratio};
use crate::ours::Tuning;
use crate::raw;
use crate::report::{ReadConfig, ReadLimit, ReadReport, ReadRun, Report};
use crate::ui::{Bar, Unit};

/// The reader counts of each run.
pub(crate) const READERS: [usize; 2] = [1, 32];

/// Rounds with limits: the configurations and the limit take turns, each in every position
/// once, so that a machine whose speed drifts weighs on all alike; the figures are sums.
const ROUNDS: usize = 3;

/// aiodiskdb's configurations of `read`: reads verified (the default) and not.
#[must_use]
pub(crate) fn read_configs() -> Vec<(Option<ReadConfig>, Tuning)> {
    [true, false]
        .into_iter()
        .map(|verify_reads| {
            let tuning = Tuning {
                verify_reads: Some(verify_reads),
                ..Tuning::default()
            };
            (Some(ReadConfig { verify_reads }), tuning)
        })
        .collect()
}

/// Runs `read` in `dir` with `items` items (and as many reads per run), in the engine's
/// default configuration.
///
/// # Errors
/// `items` is 0, the engine failed, or it read back wrong data.
pub async fn read<E: Engine>(
    b: &Bench<'_>,
    dir: &Path,
    items: u64,
    seed: u64,
) -> anyhow::Result<Report> {
    read_with::<E>(b, dir, items, seed, vec![(None, E::Config::default())]).await
}

/// What one turn of a round does.
#[derive(Debug, Clone, Copy)]
enum Turn {
    /// Opens the store in the configuration of this index, reads, closes.
    Config(usize),
    /// The pread limit.
    Limit,
}

/// As [`read`], with each configuration of `configs` on the same items. With limits, in
/// [`ROUNDS`] rounds (each configuration, then the limit, in turns).
pub(crate) async fn read_with<E: Engine>(
    b: &Bench<'_>,
    dir: &Path,
    items: u64,
    seed: u64,
    configs: Vec<(Option<ReadConfig>, E::Config)>,
) -> anyhow::Result<Report> {
    ensure!(items > 0, "--items must be at least 1");
    let bar = b.ui.phase(
        "read",
        &format!("writing {items} items of 1 KiB"),
        Some(items),
        Unit::Items,
    );
    let locs = write_read_items::<E>(dir, items, &bar).await?;
    bar.finish();
    let layout = if b.limits {
        let layout = E::layout(dir, &locs)
            .await?
            .context("the engine does not tell where its items are")?;
        Some(Arc::new(layout))
    } else {
        None
    };
    let locs = Arc::new(locs);
    let mut turns: Vec<Turn> = (0..configs.len()).map(Turn::Config).collect();
    if layout.is_some() {
        turns.push(Turn::Limit);
    }
    let rounds = if b.limits { ROUNDS } else { 1 };
    // Seconds per configuration and reader count, and of the limit per reader count.
    let mut secs = vec![[0.0; READERS.len()]; configs.len()];
    let mut limit_secs = [0.0; READERS.len()];
    for round in 0..rounds {
        // The same random items in every turn of a round, other ones in the next round.
        let round_seed = seed.wrapping_add((round as u64) << 32);
        let what = if rounds > 1 {
            format!(", round {}/{rounds}", round + 1)
        } else {
            String::new()
        };
        for &turn in &turns {
            match turn {
                Turn::Config(c) => {
                    let (label, config) = &configs[c];
                    let label = label.map_or(String::new(), |l| format!(", {l}"));
                    let db = E::open(dir, config).await?;
                    for (r, readers) in READERS.into_iter().enumerate() {
                        let phase = format!(
                            "{items} random reads, {readers} concurrent reader{}{label}{what}",
                            if readers == 1 { "" } else { "s" }
                        );
                        let bar = b.ui.phase("read", &phase, Some(items), Unit::Items);
                        secs[c][r] +=
                            read_run(&db, &locs, items, readers, round_seed, &bar).await?;
                        bar.finish();
                    }
                    db.close().await?;
                }
                Turn::Limit => {
                    let layout = layout.as_ref().expect("a limit turn has a layout");
                    for (r, readers) in READERS.into_iter().enumerate() {
                        limit_secs[r] +=
                            pread_limit::<E>(b, layout, items, readers, round_seed, &what).await?;
                    }
                }
            }
        }
        turns.rotate_left(1);
    }
    let labels: Vec<_> = configs.iter().map(|(l, _)| *l).collect();
    let limit_secs = layout.is_some().then_some(limit_secs);
    let runs = read_runs(&labels, items * rounds as u64, &secs, limit_secs);
    Ok(Report::Read(ReadReport {
        engine: b.engine,
        workload: "read",
        items,
        item_bytes: 1024,
        runs,
    }))
}

/// The runs of a report, per reader count then configuration, from the seconds each
/// configuration (`secs`, by the index of its label) and the limit took for `reads`.
fn read_runs(
    labels: &[Option<ReadConfig>],
    reads: u64,
    secs: &[[f64; READERS.len()]],
    limit_secs: Option<[f64; READERS.len()]>,
) -> Vec<ReadRun> {
    let mut runs = Vec::with_capacity(READERS.len() * labels.len());
    for (r, readers) in READERS.into_iter().enumerate() {
        let unverified = labels
            .iter()
            .position(|l| l.is_some_and(|l| !l.verify_reads))
            .map(|c| rate(reads, secs[c][r]));
        for (c, config) in labels.iter().enumerate() {
            let reads_per_s = rate(reads, secs[c][r]);
            let limit = limit_secs.map(|l| {
                let limit_reads_per_s = rate(reads, l[r]);
                ReadLimit {
                    limit_secs: l[r],
                    limit_reads_per_s,
                    ratio: ratio(reads_per_s, limit_reads_per_s),
                }
            });
            let vs_unverified = match (config, unverified) {
                (Some(l), Some(off)) if l.verify_reads => Some(ratio(reads_per_s, off)),
                _ => None,
            };
            runs.push(ReadRun {
                readers,
                config: *config,
                reads,
                secs: secs[c][r],
                reads_per_s,
                limit,
                vs_unverified,
            });
        }
    }
    runs
}

/// `items` random reads of `locs` from `readers` concurrent workers: seconds.
pub(crate) async fn read_run<E: Engine>(
    db: &E,
    locs: &Arc<Vec<E::Loc>>,
    items: u64,
    readers: usize,
    seed: u64,
    bar: &Bar,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let workers = (0..readers as u64)
        .map(|r| {
            let share = items / readers as u64 + u64::from(r < items % readers as u64);
            let rng = StdRng::seed_from_u64(seed.wrapping_add(r));
            E::EXEC.spawn(random_reads(
                db.clone(),
                Arc::clone(locs),
                share,
                rng,
                bar.clone(),
            ))
        })
        .collect();
    join_all(workers).await?;
    Ok(start.elapsed().as_secs_f64())
}

/// The limit of one run: the same number of random reads with plain pread from as many
/// threads; seconds.
async fn pread_limit<E: Engine>(
    b: &Bench<'_>,
    layout: &Arc<Layout>,
    items: u64,
    readers: usize,
    seed: u64,
    what: &str,
) -> anyhow::Result<f64> {
    let bar = b.ui.phase(
        "read",
        &format!("limit: the same reads with pread from {readers} thread(s){what}"),
        None,
        Unit::Items,
    );
    let layout = Arc::clone(layout);
    let secs = limit(E::EXEC, move || {
        raw::pread_random(&layout.files, &layout.targets, 1024, readers, items, seed)
    })
    .await?;
    bar.finish();
    Ok(secs)
}

/// One reader: `reads` random items of `locs`, each checked.
async fn random_reads<E: Engine>(
    db: E,
    locs: Arc<Vec<E::Loc>>,
    reads: u64,
    mut rng: StdRng,
    bar: Bar,
) -> anyhow::Result<()> {
    for _ in 0..reads {
        let i = rng.gen_range(0..locs.len());
        let loc = locs[i];
        let ok = db
            .read(loc, |got| {
                got.len() == 1024 && got[..8] == (i as u64).to_le_bytes()
            })
            .await?;
        if ok != Some(true) {
            bail!("read of {loc} returned wrong data");
        }
        bar.inc(1);
    }
    Ok(())
}
