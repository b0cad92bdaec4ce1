//! `read`: writes 1 KiB items, reopens, and reads random ones back with 1 and with 32
//! concurrent readers, checking each.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Context as _};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::{write_read_items, Bench};
use crate::data::rate;
use crate::engine::Engine;
use crate::exec::join_all;
use crate::limits::{limit, ratio};
use crate::raw;
use crate::report::{ReadLimit, ReadReport, ReadRun, Report};
use crate::ui::{Bar, Unit};

/// Runs `read` in `dir` with `items` items (and as many reads per run).
///
/// # Errors
/// `items` is 0, the engine failed, or it read back wrong data.
pub async fn read<E: Engine>(
    b: &Bench<'_>,
    dir: &Path,
    items: u64,
    seed: u64,
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
    let db = E::open(dir, &E::Config::default()).await?;
    let mut runs = Vec::new();
    for readers in [1usize, 32] {
        let bar = b.ui.phase(
            "read",
            &format!(
                "{items} random reads, {readers} concurrent reader{}",
                if readers == 1 { "" } else { "s" }
            ),
            Some(items),
            Unit::Items,
        );
        let start = Instant::now();
        let workers = (0..readers as u64)
            .map(|r| {
                let share = items / readers as u64 + u64::from(r < items % readers as u64);
                let rng = StdRng::seed_from_u64(seed.wrapping_add(r));
                E::EXEC.spawn(random_reads(
                    db.clone(),
                    Arc::clone(&locs),
                    share,
                    rng,
                    bar.clone(),
                ))
            })
            .collect();
        join_all(workers).await?;
        let secs = start.elapsed().as_secs_f64();
        bar.finish();
        let limit = match &layout {
            Some(layout) => {
                let bar = b.ui.phase(
                    "read",
                    &format!("limit: the same reads with pread from {readers} thread(s)"),
                    None,
                    Unit::Items,
                );
                let layout = Arc::clone(layout);
                let limit_secs = limit(E::EXEC, move || {
                    raw::pread_random(&layout.files, &layout.targets, 1024, readers, items, seed)
                })
                .await?;
                bar.finish();
                Some(ReadLimit {
                    limit_secs,
                    limit_reads_per_s: rate(items, limit_secs),
                    ratio: ratio(limit_secs, secs),
                })
            }
            None => None,
        };
        runs.push(ReadRun {
            readers,
            reads: items,
            secs,
            reads_per_s: rate(items, secs),
            limit,
        });
    }
    db.close().await?;
    Ok(Report::Read(ReadReport {
        engine: b.engine,
        workload: "read",
        items,
        item_bytes: 1024,
        runs,
    }))
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
