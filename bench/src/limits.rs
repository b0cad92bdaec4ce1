//! The limits a workload is compared with, measured in the same run and directory with
//! the plain loops of `raw.rs`, and the arithmetic of the comparison.

use std::path::Path;

use anyhow::Context as _;

use crate::data::{as_f64, rate};
use crate::exec::Exec;
use crate::raw;
use crate::ui::{Ui, Unit};

/// `a / b`, 0 when `b` is not positive.
pub(crate) fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// Runs a blocking limit measurement off the runtime's worker threads.
pub(crate) async fn limit<T: Send + 'static>(
    exec: Exec,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    exec.blocking(f).await?.context("measure the disk's limit")
}

/// Largest write for which the write limit also tries one fdatasync at the end.
const ONE_SYNC_MAX: u64 = 256 << 20;

/// The write limit: seconds to write `bytes` the faster of two plain ways (writes of
/// 16 MiB, the default buffer size, each followed by one fdatasync; up to
/// [`ONE_SYNC_MAX`], also writes of 64 MiB and one fdatasync at the end), with its
/// progress phase.
pub(crate) async fn write_limit(
    ui: &Ui,
    exec: Exec,
    workload: &'static str,
    dir: &Path,
    bytes: u64,
) -> anyhow::Result<f64> {
    let bar = ui.phase(
        workload,
        "limit: the same bytes with plain writes + fdatasync",
        None,
        Unit::Items,
    );
    let dir = dir.to_path_buf();
    let secs = limit(exec, move || {
        let synced_chunks = raw::write_then_sync(&dir, bytes, 16 << 20, true)?;
        // Past a few hundred MB of dirty pages the kernel throttles the writer: one sync
        // at the end is then never the faster (three times slower for 1 GB here), and
        // measuring it would only wear down a virtual disk's burst budget.
        if bytes > ONE_SYNC_MAX {
            return Ok(synced_chunks);
        }
        let one_sync = raw::write_then_sync(&dir, bytes, 64 << 20, false)?;
        Ok(one_sync.min(synced_chunks))
    })
    .await?;
    bar.finish();
    Ok(secs)
}

/// Seconds the write limit takes for `bytes`, from two measurements (before and after the
/// workload) of `(bytes, secs)` each: the mean of their rates, so that a disk whose speed
/// drifts weighs on both sides alike.
pub(crate) fn mean_limit_secs(bytes: u64, runs: [(u64, f64); 2]) -> f64 {
    let rates = runs.map(|(b, s)| rate(b, s));
    let mean = f64::midpoint(rates[0], rates[1]);
    ratio(as_f64(bytes), mean)
}
