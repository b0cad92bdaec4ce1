//! The workloads' data, the same for every engine so that all run on the same bytes: the
//! seed's blob and item picks, the 1 KiB items of `read` and `open`, and the rate
//! arithmetic.

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

/// The seed workloads' random blob (twice the largest item: items are slices of it) and
/// the generator that then picks the items with [`next_seed_item`].
pub(crate) fn seed_blob(seed: u64, max: usize) -> (Vec<u8>, StdRng) {
    let mut rng = StdRng::seed_from_u64(seed);
    let blob = (0..max * 2).map(|_| rng.gen::<u8>()).collect();
    (blob, rng)
}

/// The next seed item: where it starts in the blob, and its size (`min..=max`).
pub(crate) fn next_seed_item(
    rng: &mut StdRng,
    blob_len: usize,
    min: usize,
    max: usize,
) -> (usize, usize) {
    let size = rng.gen_range(min..=max);
    let at = rng.gen_range(0..=blob_len - size);
    (at, size)
}

/// The 1 KiB item number `i` of `read` and `open`: `i` (u64 LE), then its low byte
/// repeated.
pub(crate) fn read_item(i: u64) -> Vec<u8> {
    let mut v = vec![i.to_le_bytes()[0]; 1024];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v
}

/// `count / secs`, 0 for no time at all.
pub(crate) fn rate(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        as_f64(count) / secs
    } else {
        0.0
    }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "counts far below 2^52; the figures are approximate"
)]
pub(crate) fn as_f64(n: u64) -> f64 {
    n as f64
}

/// The figures of a seed workload (`seed-large`, `seed-small`): those of the seed's line
/// (duration, reads, writes, bandwidth, average item size), plus the re-read from a
/// fresh instance, flattened into the seed report.
#[derive(Debug, serde::Serialize)]
pub(crate) struct SeedFigures {
    pub(crate) secs: f64,
    pub(crate) reads: u64,
    pub(crate) reads_per_s: f64,
    pub(crate) writes: u64,
    pub(crate) writes_per_s: f64,
    pub(crate) bytes: u64,
    pub(crate) mb_per_s: f64,
    pub(crate) avg_item_bytes: f64,
    pub(crate) reread_items: u64,
    pub(crate) reread_secs: f64,
}

impl SeedFigures {
    /// `writes` items of `bytes` in all written in `secs` while `reads` concurrent reads
    /// were checked; every item then re-read in `reread_secs`.
    pub(crate) fn new(secs: f64, reads: u64, writes: u64, bytes: u64, reread_secs: f64) -> Self {
        SeedFigures {
            secs,
            reads,
            reads_per_s: rate(reads, secs),
            writes,
            writes_per_s: rate(writes, secs),
            bytes,
            mb_per_s: rate(bytes, secs) / 1e6,
            avg_item_bytes: rate(bytes, as_f64(writes.max(1))),
            reread_items: writes,
            reread_secs,
        }
    }

    /// The seed's own line (the Python seed prints it): `Duration: ..., Reads: N (~r/s),
    /// Writes: N (~w/s), Bandwidth: XMB (Y MB/s), Avg item size: Z kB`, then the re-read
    /// line. For people: the `key=value` line carries the same figures.
    pub(crate) fn seed_lines(&self) -> String {
        format!(
            "Duration: {:.2}s, Reads: {} (~{:.0}/s), Writes: {} (~{:.0}/s), \
             Bandwidth: {:.0}MB ({:.2}MB/s), Avg item size: {:.1}kB\n\
             Re-read from a fresh instance: {} items in {:.2}s (~{:.0}/s), all verified",
            self.secs,
            self.reads,
            self.reads_per_s,
            self.writes,
            self.writes_per_s,
            rate(self.bytes, 1e6),
            self.mb_per_s,
            self.avg_item_bytes / 1e3,
            self.reread_items,
            self.reread_secs,
            rate(self.reread_items, self.reread_secs)
        )
    }
}
