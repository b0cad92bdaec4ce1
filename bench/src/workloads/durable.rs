//! `durable`: many workers each appending one item and waiting for it to be durable, in a
//! loop; concurrent adds may share one sync (group commit).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Bench, Until};
use crate::data::{as_f64, rate};
use crate::engine::Engine;
use crate::exec::join_all;
use crate::limits::{limit, ratio};
use crate::raw;
use crate::report::{DurableLimit, DurableReport, Report};
use crate::ui::{Bar, Unit};

/// Runs `durable` in `dir` with `tasks` workers until `until`.
///
/// With limits, the run is cut into rounds, each followed by as long a run of the limit,
/// so that a disk whose speed drifts (a shared virtual disk) weighs on both alike.
///
/// # Errors
/// The engine failed.
pub async fn durable<E: Engine>(
    b: &Bench<'_>,
    dir: &Path,
    tasks: usize,
    until: Until,
) -> anyhow::Result<Report> {
    const SIZE: u64 = 100;
    let rounds: u32 = if b.limits { 4 } else { 1 };
    let db = E::open(dir, &E::Config::default()).await?;
    let commits = db.count_commits();
    let (workers, [add, adds]) = (E::EXEC.workers(), E::DURABLE_ADD);
    let (what, len, round) = match until {
        Until::Items(n) => (
            format!("{tasks} {workers}, {n} {adds} in all"),
            Some(n),
            Until::Items(n.div_ceil(u64::from(rounds))),
        ),
        Until::Time(d) => (
            format!(
                "{tasks} {workers} doing {add} for {:.1}s{}",
                d.as_secs_f64(),
                if b.limits {
                    format!(", in {rounds} rounds, each followed by the limit")
                } else {
                    String::new()
                }
            ),
            None,
            Until::Time(d / rounds),
        ),
    };
    let bar = b.ui.phase("durable", &what, len, Unit::Items);
    let payload = Bytes::from(vec![0xcd_u8; 100]);
    let batch = tasks * usize::try_from(SIZE)?;
    let (mut items, mut secs) = (0, 0.0);
    let (mut limit_batches, mut limit_secs) = (0, 0.0);
    for _ in 0..rounds {
        let (n, t) = durable_round(&db, tasks, &payload, round, &bar).await?;
        items += n;
        secs += t;
        if b.limits {
            // The limit: as long as the round took, or as many items.
            let (dir, batches) = (dir.to_path_buf(), n.div_ceil(tasks as u64));
            let duration = Duration::from_secs_f64(t);
            let (lb, lt) = limit(E::EXEC, move || {
                raw::sync_batches(&dir, batch, duration, batches)
            })
            .await?;
            limit_batches += lb;
            limit_secs += lt;
        }
    }
    bar.finish();
    db.close().await?;
    let flushes = commits.await?;
    // The engine's own ceiling: one more round with its syncs off, in a store of its own.
    let unsynced = match E::unsynced_config().filter(|_| b.limits) {
        Some(config) => {
            let db = E::open(&dir.join("unsynced"), &config).await?;
            let (n, t) = durable_round(&db, tasks, &payload, round, &bar).await?;
            db.close().await?;
            Some(rate(n, t))
        }
        None => None,
    };
    let limit = b.limits.then(|| {
        let limit_items_per_s = rate(limit_batches * tasks as u64, limit_secs);
        DurableLimit {
            limit_batches,
            limit_secs,
            limit_items_per_s,
            ratio: ratio(rate(items, secs), limit_items_per_s),
            items_per_flush: flushes.map(|f| ratio(as_f64(items), as_f64(f))),
            flush_ratio: flushes.map(|f| ratio(rate(f, secs), rate(limit_batches, limit_secs))),
            unsynced_items_per_s: unsynced,
            unsynced_ratio: unsynced.map(|u| ratio(u, limit_items_per_s)),
        }
    });
    Ok(Report::Durable(DurableReport {
        engine: b.engine,
        workload: "durable",
        tasks,
        item_bytes: SIZE,
        items,
        flushes,
        secs,
        items_per_s: rate(items, secs),
        flushes_per_s: flushes.map(|f| rate(f, secs)),
        limit,
    }))
}

/// One round of `durable`: (items made durable, seconds).
async fn durable_round<E: Engine>(
    db: &E,
    tasks: usize,
    payload: &Bytes,
    until: Until,
    bar: &Bar,
) -> anyhow::Result<(u64, f64)> {
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers = (0..tasks)
        .map(|_| {
            let (db, payload, issued, bar) = (
                db.clone(),
                payload.clone(),
                Arc::clone(&issued),
                bar.clone(),
            );
            E::EXEC.spawn(async move {
                let mut done = 0u64;
                loop {
                    let more = match until {
                        Until::Items(n) => issued.fetch_add(1, Ordering::Relaxed) < n,
                        Until::Time(d) => start.elapsed() < d,
                    };
                    if !more {
                        return anyhow::Ok(done);
                    }
                    db.add_durable(payload.clone()).await?;
                    done += 1;
                    bar.inc(1);
                }
            })
        })
        .collect();
    let items = join_all(workers).await?.into_iter().sum();
    Ok((items, start.elapsed().as_secs_f64()))
}
