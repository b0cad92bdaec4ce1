//! `aiodiskdb bench`: the workloads of SPEC section 6.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aiodiskdb::{AioDiskDb, ItemLocation};
use anyhow::{bail, Context};
use bytes::Bytes;
use clap::ValueEnum;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Workload {
    /// Random 1..4096-byte items up to 20 MiB, with a concurrent verifying reader.
    SeedSmall,
    /// Random 1 KiB..1 MiB items up to 1000 MB, with a concurrent verifying reader.
    SeedLarge,
    /// 1,000,000 adds of 100 B, then a durable stop.
    Append,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Which workload to run.
    #[arg(long, value_enum, default_value = "seed-small")]
    workload: Workload,
    /// Data directory (must be empty or missing); a temporary directory by default.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Total megabytes to write for the seed workloads (default 20 for seed-small, 1000 for
    /// seed-large).
    #[arg(long)]
    total_mb: Option<u64>,
    /// Number of items for `append`.
    #[arg(long, default_value_t = 1_000_000)]
    items: u64,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let temp;
    let dir = if let Some(d) = &args.dir {
        if d.exists() && std::fs::read_dir(d)?.next().is_some() {
            bail!(
                "--dir {} is not empty; bench needs an empty directory",
                d.display()
            );
        }
        d.clone()
    } else {
        temp = tempfile::tempdir().context("create a temporary directory")?;
        temp.path().join("db")
    };
    match args.workload {
        Workload::SeedSmall => seed(&dir, args.total_mb.unwrap_or(20), 1, 4096, args.seed).await?,
        Workload::SeedLarge => {
            seed(
                &dir,
                args.total_mb.unwrap_or(1000),
                1024,
                1 << 20,
                args.seed,
            )
            .await?;
        }
        Workload::Append => append(&dir, args.items).await?,
    }
    Ok(ExitCode::SUCCESS)
}

type Written = Arc<RwLock<Vec<(ItemLocation, Bytes)>>>;

/// The seed's concurrency test: a writer adds random items while a reader reads random
/// written items and checks them; then everything is re-read from a fresh instance.
async fn seed(
    dir: &std::path::Path,
    total_mb: u64,
    min: usize,
    max: usize,
    seed: u64,
) -> anyhow::Result<()> {
    let total = total_mb * 1_000_000;
    let mut rng = StdRng::seed_from_u64(seed);
    let blob: Bytes = (0..max * 2)
        .map(|_| rng.gen::<u8>())
        .collect::<Vec<u8>>()
        .into();
    let db = AioDiskDb::open(dir).await?;
    let written: Written = Arc::new(RwLock::new(Vec::new()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (db, written, done) = (db.clone(), Arc::clone(&written), Arc::clone(&done));
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
            let mut reads = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let pick = {
                    let w = written.read().expect("lock");
                    (!w.is_empty()).then(|| w[rng.gen_range(0..w.len())].clone())
                };
                let Some((loc, expected)) = pick else {
                    tokio::task::yield_now().await;
                    continue;
                };
                let got = db.read(loc).await?;
                if got.as_deref() != Some(&expected[..]) {
                    bail!("read of {loc} returned wrong data");
                }
                reads += 1;
            }
            anyhow::Ok(reads)
        })
    };
    let start = Instant::now();
    let mut bytes = 0u64;
    while bytes < total {
        let size = rng.gen_range(min..=max);
        let at = rng.gen_range(0..=blob.len() - size);
        let item = blob.slice(at..at + size);
        let loc = db.add(item.clone()).await?;
        written.write().expect("lock").push((loc, item));
        bytes += size as u64;
        tokio::task::yield_now().await;
    }
    db.flush().await?;
    let elapsed = start.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.await??;
    db.stop().await?;
    let writes = written.read().expect("lock").len() as u64;
    print_seed_line(elapsed, reads, writes, bytes);

    let start = Instant::now();
    let db = AioDiskDb::open(dir).await?;
    let items = std::mem::take(&mut *written.write().expect("lock"));
    for (loc, expected) in &items {
        if db.read(*loc).await?.as_deref() != Some(&expected[..]) {
            bail!("re-read of {loc} from a fresh instance returned wrong data");
        }
    }
    db.stop().await?;
    let e = start.elapsed();
    println!(
        "Re-read from a fresh instance: {} items in {:.2}s (~{:.0}/s), all verified",
        items.len(),
        e.as_secs_f64(),
        items.len() as f64 / e.as_secs_f64()
    );
    Ok(())
}

fn print_seed_line(elapsed: Duration, reads: u64, writes: u64, bytes: u64) {
    let secs = elapsed.as_secs_f64();
    let mb = bytes as f64 / 1e6;
    println!(
        "Duration: {secs:.2}s, Reads: {reads} (~{:.0}/s), Writes: {writes} (~{:.0}/s), \
         Bandwidth: {mb:.0}MB ({:.2}MB/s), Avg item size: {:.1}kB",
        reads as f64 / secs,
        writes as f64 / secs,
        mb / secs,
        bytes as f64 / writes.max(1) as f64 / 1e3,
    );
}

/// `append`: many small adds, then a durable stop.
async fn append(dir: &std::path::Path, items: u64) -> anyhow::Result<()> {
    let payload = Bytes::from(vec![0xab_u8; 100]);
    let db = AioDiskDb::open(dir).await?;
    let start = Instant::now();
    for _ in 0..items {
        db.add(payload.clone()).await?;
    }
    db.stop().await?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "append items={items} size=100 secs={secs:.3} adds_per_s={:.0} (default config, durable stop included)",
        items as f64 / secs
    );
    Ok(())
}
