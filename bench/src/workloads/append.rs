//! `append` (100 B items) and `append-large` (1 MiB): many adds in one session, then a
//! durable close.

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;

use super::{fill, Bench};
use crate::data::rate;
use crate::engine::{Engine, Source};
use crate::limits::{mean_limit_secs, ratio, write_limit};
use crate::ours::Tuning;
use crate::report::{AppendReport, AppendRun, AppendRuns, Report, RunConfig};
use crate::ui::{Bar, Unit};

/// The same payload `left` more times, counted on a bar.
struct Repeat<'a> {
    payload: Bytes,
    left: u64,
    bar: &'a Bar,
}

impl<L> Source<L> for Repeat<'_> {
    fn next_item(&mut self) -> Option<Bytes> {
        self.left = self.left.checked_sub(1)?;
        Some(self.payload.clone())
    }

    fn added(&mut self, _: L) {
        self.bar.inc(1);
    }
}

/// aiodiskdb's configurations for items of `size` bytes: the default one, and (below
/// 1 MiB, where the item count would govern) `max_buffer_items` raised so that the byte
/// threshold governs flushes.
#[must_use]
pub(crate) fn append_configs(size: u64) -> Vec<(Option<RunConfig>, Tuning)> {
    let configs: &[(&'static str, usize)] = if size < 1 << 20 {
        &[("default", 1000), ("bytes-governed", 1 << 30)]
    } else {
        &[("default", 1000)]
    };
    configs
        .iter()
        .map(|&(config, max_buffer_items)| {
            let tuning = Tuning {
                max_buffer_items: Some(max_buffer_items),
                ..Tuning::default()
            };
            (
                Some(RunConfig {
                    config,
                    max_buffer_items,
                }),
                tuning,
            )
        })
        .collect()
}

/// Runs `items` adds of `size` bytes then a durable close, in the engine's default
/// configuration.
///
/// # Errors
/// The engine failed.
pub async fn append<E: Engine>(
    b: &Bench<'_>,
    workload: &'static str,
    dir: &Path,
    items: u64,
    size: u64,
) -> anyhow::Result<Report> {
    append_with::<E>(
        b,
        workload,
        dir,
        items,
        size,
        vec![(None, E::Config::default())],
    )
    .await
}

/// As [`append`], once per configuration of `configs` (in a subdirectory named after it,
/// when it has a name). Without limits, there must be one.
pub(crate) async fn append_with<E: Engine>(
    b: &Bench<'_>,
    workload: &'static str,
    dir: &Path,
    items: u64,
    size: u64,
    configs: Vec<(Option<RunConfig>, E::Config)>,
) -> anyhow::Result<Report> {
    let payload = Bytes::from(vec![0xab_u8; usize::try_from(size)?]);
    let bytes = items * size;
    let before = if b.limits {
        Some(write_limit(b.ui, E::EXEC, workload, dir, bytes).await?)
    } else {
        None
    };
    let mut runs = Vec::with_capacity(configs.len());
    for (config, tuning) in configs {
        let (sub, label) = match config {
            Some(c) => (dir.join(c.config), format!(" ({})", c.config)),
            None => (dir.to_path_buf(), String::new()),
        };
        let db = E::open(&sub, &tuning).await?;
        let bar = b.ui.phase(
            workload,
            &format!(
                "{items} adds of {size} B, then a durable {}{label}",
                E::CLOSE
            ),
            Some(items),
            Unit::Items,
        );
        let start = Instant::now();
        let mut source = Repeat {
            payload: payload.clone(),
            left: items,
            bar: &bar,
        };
        fill(db, &mut source).await?;
        let secs = start.elapsed().as_secs_f64();
        bar.finish();
        runs.push(AppendRun {
            config,
            secs,
            adds_per_s: rate(items, secs),
            ratio: None,
        });
    }
    let runs = if let Some(before) = before {
        let after = write_limit(b.ui, E::EXEC, workload, dir, bytes).await?;
        let limit_secs = mean_limit_secs(bytes, [(bytes, before), (bytes, after)]);
        for run in &mut runs {
            run.ratio = Some(ratio(limit_secs, run.secs));
        }
        AppendRuns::Compared {
            runs,
            limit_secs,
            limit_adds_per_s: rate(items, limit_secs),
        }
    } else {
        let [run] = <[AppendRun; 1]>::try_from(runs)
            .ok()
            .context("without limits, append runs one configuration")?;
        AppendRuns::One(run)
    };
    Ok(Report::Append(AppendReport {
        engine: b.engine,
        workload,
        items,
        item_bytes: size,
        runs,
        close: E::CLOSE,
    }))
}
