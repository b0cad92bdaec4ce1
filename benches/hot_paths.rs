//! Micro-benchmarks of aiodiskdb's hot paths, with `divan`, through the public API only.
//!
//! `cargo bench --bench hot_paths`: a few seconds on an idle machine; each bench's `max_time`
//! keeps the whole run under a minute on a slow one. Every bench builds its tokio runtime
//! and its database once, outside the measurement, and enters the runtime with `block_on`
//! per iteration. Where one operation is too short to be timed alone next to a `block_on`
//! (adds and reads), an iteration is a batch of operations inside one `block_on`, and the
//! item and byte counters give the throughput per operation.
//!
//! Overhead left in the measured loops:
//! - batched benches: one `block_on` per batch (runtime context enter/exit and a waker:
//!   0.1 to 0.2 µs, measured by `block_on_overhead`), 1 to 2% of a batch of adds or RAM
//!   reads; plus the loop and a slice index;
//! - flush and commit benches: one `block_on` per operation, which also parks the calling
//!   thread while the blocking write runs: waking it is part of what a caller pays anyway
//!   (on a 2-core VM, the cross-core wake-ups are most of an `Os` flush or commit; compare
//!   a run under `taskset -c 0`);
//! - everything: divan's own per-iteration bookkeeping (a few ns, which divan subtracts).
//!
//! Every database is opened with a 1 GiB RAM buffer, no item limit and a one-hour flush
//! interval, so the background flusher only runs when a bench asks for it.

use std::time::Duration;

use aiodiskdb::{AioDiskDb, Durability, ItemLocation};
use bytes::Bytes;
use divan::counter::{BytesCount, ItemsCount};
use divan::{black_box, Bencher};
use rand::{Rng, SeedableRng};
use tempfile::TempDir;
use tokio::runtime::Runtime;

fn main() {
    divan::main();
}

/// Items added or read per `block_on` in the batched benches. Below tokio's cooperative
/// budget (128), so a batch of reads never yields to the scheduler: the forced yield that
/// `read` makes every 128 reads in a long-running task is not measured.
const BATCH: usize = 100;

static SMALL: [u8; 100] = [0xab; 100];
static KIB: [u8; 1024] = [0xcd; 1024];

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current-thread runtime")
}

fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("multi-thread runtime")
}

/// A database in a fresh temporary directory, with flush triggers that never fire by
/// themselves during a bench (1 GiB buffer, no item limit, one hour interval).
fn open(rt: &Runtime, durability: Durability) -> (TempDir, AioDiskDb) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = reopen(rt, &dir, durability);
    (dir, db)
}

fn reopen(rt: &Runtime, dir: &TempDir, durability: Durability) -> AioDiskDb {
    rt.block_on(
        AioDiskDb::builder(dir.path())
            .max_file_size(2 << 30)
            .max_buffer_size(1 << 30)
            .max_buffer_items(usize::MAX)
            .flush_interval(Duration::from_secs(3600))
            .durability(durability)
            .overwrite(true)
            .open(),
    )
    .expect("open")
}

/// Adds `count` copies of `item` and returns their locations.
fn fill(rt: &Runtime, db: &AioDiskDb, item: &'static [u8], count: usize) -> Vec<ItemLocation> {
    rt.block_on(async {
        let mut locs = Vec::with_capacity(count);
        for _ in 0..count {
            locs.push(db.add(Bytes::from_static(item)).await.expect("add"));
        }
        locs
    })
}

/// `picks` random locations out of `locs`, for reads in an order the caches cannot learn.
fn random_picks(locs: &[ItemLocation], picks: usize) -> Vec<ItemLocation> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    (0..picks)
        .map(|_| locs[rng.gen_range(0..locs.len())])
        .collect()
}

/// Reads random `picks`, `BATCH` per iteration.
fn bench_reads(bencher: Bencher, rt: &Runtime, db: &AioDiskDb, picks: &[ItemLocation], size: u64) {
    assert_eq!(picks.len() % BATCH, 0);
    let mut cursor = 0;
    bencher
        .counter(ItemsCount::new(BATCH))
        .counter(BytesCount::new(BATCH as u64 * size))
        .bench_local(|| {
            let batch = &picks[cursor..cursor + BATCH];
            cursor = (cursor + BATCH) % picks.len();
            rt.block_on(async {
                for &loc in batch {
                    black_box(db.read(loc).await.expect("read"));
                }
            });
        });
}

fn stop(rt: &Runtime, db: &AioDiskDb) {
    rt.block_on(db.stop()).expect("stop");
}

/// `add` of a 100-byte item into the RAM buffer: lock, placement, copy, no I/O, no flush.
///
/// Between samples (untimed), once about 25 MB are buffered, the buffer is flushed and the
/// file emptied (`rtrim` to 0), so memory and disk stay bounded and no flush ever runs
/// inside a sample. The buffer's amortized growth (doubling reallocations) is measured,
/// as in real use.
#[divan::bench(sample_count = 10_000, max_time = 5)]
fn add_buffered(bencher: Bencher) {
    const RESET_ITEMS: usize = 250_000;
    let rt = current_thread();
    let (_dir, db) = open(&rt, Durability::Os);
    let mut since_reset = 0;
    bencher
        .counter(ItemsCount::new(BATCH))
        .counter(BytesCount::new(BATCH * SMALL.len()))
        .with_inputs(|| {
            if since_reset + BATCH > RESET_ITEMS {
                rt.block_on(async {
                    let tail = db.add(Bytes::from_static(&SMALL)).await.expect("add");
                    db.rtrim(tail.index, 0, b"").await.expect("rtrim");
                });
                since_reset = 0;
            }
            since_reset += BATCH;
        })
        .bench_local_values(|()| {
            rt.block_on(async {
                for _ in 0..BATCH {
                    black_box(db.add(Bytes::from_static(&SMALL)).await.expect("add"));
                }
            });
        });
    stop(&rt, &db);
}

/// `read` of a 100-byte item that is still in the RAM buffer (1 MB buffered, random
/// order): lock, buffer lookup, copy out.
mod read_buffered {
    use super::{bench_reads, current_thread, fill, multi_thread, open, random_picks, stop};
    use super::{Bencher, Durability, Runtime, BATCH, SMALL};

    fn run(bencher: Bencher, rt: &Runtime) {
        let (_dir, db) = open(rt, Durability::Os);
        let locs = fill(rt, &db, &SMALL, 10_000);
        let picks = random_picks(&locs, 640 * BATCH);
        bench_reads(bencher, rt, &db, &picks, SMALL.len() as u64);
        stop(rt, &db);
    }

    /// On a current-thread runtime.
    #[divan::bench(sample_count = 5000, max_time = 5)]
    fn current_thread_rt(bencher: Bencher) {
        run(bencher, &current_thread());
    }

    /// On a multi-thread runtime with 2 workers (`block_on` runs on the bench thread).
    #[divan::bench(sample_count = 5000, max_time = 5)]
    fn multi_thread_2_rt(bencher: Bencher) {
        run(bencher, &multi_thread());
    }
}

/// `read` of a 1 KiB item from a data file that the page cache holds (16 MiB written,
/// stopped, reopened, every item read once): the `preadv2(RWF_NOWAIT)` path with no hop to
/// a blocking thread.
mod read_disk_cached {
    use super::{bench_reads, current_thread, fill, multi_thread, random_picks, reopen, stop};
    use super::{Bencher, Durability, Runtime, BATCH, KIB};

    fn run(bencher: Bencher, rt: &Runtime) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = reopen(rt, &dir, Durability::Os);
        let locs = fill(rt, &db, &KIB, 16 * 1024);
        stop(rt, &db);
        let db = reopen(rt, &dir, Durability::Os);
        // Opens the file (once, on a blocking thread) and makes sure every page is cached.
        rt.block_on(async {
            for &loc in &locs {
                let data = db.read(loc).await.expect("read").expect("stored");
                assert_eq!(data.len(), KIB.len());
            }
        });
        let picks = random_picks(&locs, 640 * BATCH);
        bench_reads(bencher, rt, &db, &picks, KIB.len() as u64);
        stop(rt, &db);
    }

    /// On a current-thread runtime.
    #[divan::bench(sample_count = 2000, max_time = 5)]
    fn current_thread_rt(bencher: Bencher) {
        run(bencher, &current_thread());
    }

    /// On a multi-thread runtime with 2 workers (`block_on` runs on the bench thread).
    #[divan::bench(sample_count = 2000, max_time = 5)]
    fn multi_thread_2_rt(bencher: Bencher) {
        run(bencher, &multi_thread());
    }
}

/// `ItemLocation` encodings: the 12-byte form and the `index:position:size` text form.
mod location {
    use super::{black_box, ItemLocation};

    const LOC: ItemLocation = ItemLocation {
        index: 12_345,
        position: 123_456_789,
        size: 1_048_576,
    };
    const TEXT: &str = "12345:123456789:1048576";

    /// `to_bytes`: three little-endian `u32` stores.
    #[divan::bench(sample_count = 1000, sample_size = 1000, max_time = 1)]
    fn to_bytes() -> [u8; 12] {
        black_box(LOC).to_bytes()
    }

    /// `from_bytes`: length check and three loads.
    #[divan::bench(sample_count = 1000, sample_size = 1000, max_time = 1)]
    fn from_bytes(bencher: divan::Bencher) {
        let bytes = LOC.to_bytes();
        bencher.bench_local(|| ItemLocation::from_bytes(black_box(&bytes[..])).expect("decode"));
    }

    /// `Display` into a new `String`.
    #[divan::bench(sample_count = 1000, sample_size = 1000, max_time = 1)]
    fn to_text() -> String {
        black_box(LOC).to_string()
    }

    /// `FromStr`: split on `:` and three decimal parses.
    #[divan::bench(sample_count = 1000, sample_size = 1000, max_time = 1)]
    fn from_text() -> ItemLocation {
        black_box(TEXT).parse().expect("parse")
    }
}

/// A full flush cycle of 1,000 buffered 100-byte items: request, wake the flusher, one
/// `spawn_blocking` write of the batch and the commit record, catalog update, `Written`
/// events, progress wake-up. The 1,000 adds happen untimed before each sample, so a
/// sample is exactly one iteration.
mod flush_1000 {
    use super::{current_thread, fill, open, stop};
    use super::{Bencher, BytesCount, Durability, ItemsCount, SMALL};

    const ITEMS: usize = 1000;

    fn run(bencher: Bencher, durability: Durability) {
        let rt = current_thread();
        let (_dir, db) = open(&rt, durability);
        bencher
            .counter(ItemsCount::new(ITEMS))
            .counter(BytesCount::new(ITEMS * SMALL.len()))
            .with_inputs(|| {
                fill(&rt, &db, &SMALL, ITEMS);
            })
            .bench_local_values(|()| rt.block_on(db.flush()).expect("flush"));
        stop(&rt, &db);
    }

    /// `Durability::Os` (no fsync): the engine's own cost per batch.
    #[divan::bench(sample_count = 1000, sample_size = 1, max_time = 5)]
    fn os(bencher: Bencher) {
        run(bencher, Durability::Os);
    }

    /// `Durability::Sync`: adds the `fdatasync` of the data file and of the commit record
    /// (disk-bound).
    #[divan::bench(sample_count = 100, sample_size = 1, max_time = 10)]
    fn sync(bencher: Bencher) {
        run(bencher, Durability::Sync);
    }
}

/// A transaction commit of 10 100-byte items with `Durability::Os`: command to the
/// flusher, exclusive section, placement, one `spawn_blocking` write and commit record,
/// reply. The transaction is staged untimed.
#[divan::bench(sample_count = 2000, sample_size = 1, max_time = 5)]
fn commit_10_os(bencher: Bencher) {
    const ITEMS: usize = 10;
    let rt = current_thread();
    let (_dir, db) = open(&rt, Durability::Os);
    bencher
        .counter(ItemsCount::new(ITEMS))
        .counter(BytesCount::new(ITEMS * SMALL.len()))
        .with_inputs(|| {
            let mut tx = db.transaction();
            for _ in 0..ITEMS {
                tx.add(Bytes::from_static(&SMALL)).expect("stage");
            }
            tx
        })
        .bench_local_values(|tx| rt.block_on(tx.commit()).expect("commit"));
    stop(&rt, &db);
}

/// The overhead the other benches carry per `block_on`: entering the runtime and polling
/// a future that is ready at once. Subtract it from a batch, or from a flush or commit.
mod block_on_overhead {
    use super::{current_thread, multi_thread, Bencher};

    /// On a current-thread runtime.
    #[divan::bench(sample_count = 1000, max_time = 1)]
    fn current_thread_rt(bencher: Bencher) {
        let rt = current_thread();
        bencher.bench_local(|| rt.block_on(async {}));
    }

    /// On a multi-thread runtime with 2 workers.
    #[divan::bench(sample_count = 1000, max_time = 1)]
    fn multi_thread_2_rt(bencher: Bencher) {
        let rt = multi_thread();
        bencher.bench_local(|| rt.block_on(async {}));
    }
}
