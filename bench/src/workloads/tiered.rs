//! `tiered` (feature `tiering`; aiodiskdb only; issue 12): tiered storage against an
//! S3-compatible server, each figure against what plain `object_store` calls, or our own
//! local reads, get in the same run.
//!
//! 1. Writes about `total_mb` MB of 1 KiB items (one durable session) into `tiered/`, then
//!    copies the stopped directory to `local/` (the same data, never tiered).
//! 2. Upload: [`AioDiskDb::tier`] with `keep_local(0)` (every sealed file uploaded,
//!    verified, recorded, deleted locally) against the same files put with plain
//!    `object_store` calls: one PUT per file up to [`PART`], else a multipart upload of
//!    `PART`-sized parts with at most [`CONCURRENCY`] in flight (`WriteMultipart`), one
//!    file after the other, each part read from the file on a blocking thread; before and
//!    after ours (the mean of the two rates, as the disk limits are measured).
//! 3. In [`ROUNDS`] rounds, each side first in every other round: cold reads (a fresh
//!    handle, so an empty cache, of items never read before) of remote 1 KiB items from
//!    [`CONCURRENCY`] tasks, against plain ranged GETs of the same byte ranges of the same
//!    objects from as many tasks; then warm reads (random picks among the items the cold
//!    reads cached) against the same reads on `local/` with our default configuration.
//! 4. The disk: `tiered/` listed every [`SAMPLE_EVERY`] from before the upload to the end,
//!    each sample checked against what may be there at that moment (see [`Disk`]).
//!
//! Objects go under `{prefix}/bench-tiered-{time}-{pid}/{ours,plain}/` of the `--store`
//! URL's bucket, and are deleted at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aiodiskdb::tiering::Tiering;
use aiodiskdb::{AioDiskDb, Event, ItemLocation};
use anyhow::{bail, ensure, Context as _};
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload, WriteMultipart};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::sync::broadcast::error::RecvError;

use super::{fill, Bench, ReadItems};
use crate::data::{as_f64, rate};
use crate::exec::{join_all, Exec};
use crate::limits::ratio;
use crate::report::{Report, TieredDisk, TieredReads, TieredReport, TieredRound, TieredTransfer};
use crate::ui::{Bar, Unit};

const NAME: &str = "tiered";

/// Requests in flight on both sides: the library's default `Tiering::concurrency`, the
/// parts of one upload in flight, and the reading tasks.
pub(crate) const CONCURRENCY: usize = 8;

/// The part size of both uploads: the library's (a single PUT up to this size, a
/// multipart upload of parts of this size above).
pub(crate) const PART: u64 = 8 << 20;

/// Bytes per data file (the library's default `max_file_size`), less for small runs so
/// that there are several files.
const MAX_FILE_SIZE: u64 = 128 << 20;

/// The library's default `max_buffer_size`.
const DEFAULT_BUFFER: u64 = 16 << 20;

/// Size of a data file's header.
const HEADER: u64 = 24;

/// The items' size.
const ITEM: u64 = 1024;

/// Rounds of the read comparisons.
const ROUNDS: usize = 3;

/// Warm reads per round (and as many local ones): 1,000 per cold read, up to this many.
const WARM_READS: u64 = 200_000;

/// How often the disk is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// What `tiered` is asked to do.
#[derive(Debug, Clone)]
pub(crate) struct TieredSpec {
    /// `s3://bucket[/prefix]`; the endpoint and keys from the `AWS_*` variables.
    pub(crate) store: String,
    /// Megabytes of sealed files at least (10^6 bytes).
    pub(crate) total_mb: u64,
    /// Cold reads per round (each side); warm reads, see [`warm_reads`].
    pub(crate) cold_reads: u64,
    pub(crate) seed: u64,
}

/// Where the run's objects go: a client for the plain side, and our tiering (its own
/// client, to the same bucket).
struct Bucket {
    store: Arc<dyn ObjectStore>,
    /// Ours, under `{base}/ours`.
    tiering: Tiering,
    /// The run's key prefix: ours under `ours/`, the plain copies under `plain/`.
    base: ObjectPath,
}

impl Bucket {
    /// The bucket of `url`, checked to exist, and a key prefix for this run under its
    /// prefix.
    async fn new(url: &str) -> anyhow::Result<Bucket> {
        let rest = url
            .strip_prefix("s3://")
            .with_context(|| format!("--store {url}: not s3://bucket[/prefix]"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        ensure!(!bucket.is_empty(), "--store {url}: no bucket");
        let store: Arc<dyn ObjectStore> = Arc::new(
            AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .with_context(|| format!("--store {url}"))?,
        );
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let run = format!("bench-tiered-{stamp}-{}", std::process::id());
        let prefix = prefix.trim_matches('/');
        let base = if prefix.is_empty() {
            run
        } else {
            format!("{prefix}/{run}")
        };
        store
            .list_with_delimiter(Some(&ObjectPath::from(base.as_str())))
            .await
            .with_context(|| {
                format!(
                    "--store {url}: cannot list the bucket {bucket:?} (does it exist? the \
                     bench does not create it: with moto, `curl -X PUT \
                     $AWS_ENDPOINT_URL/{bucket}`; the endpoint and keys come from AWS_*)"
                )
            })?;
        Ok(Bucket {
            store,
            tiering: Tiering::from_s3_url(&format!("s3://{bucket}/{base}/ours"))?,
            base: ObjectPath::from(base.as_str()),
        })
    }

    fn side(&self, side: &str) -> ObjectPath {
        self.base.clone().join(side)
    }

    /// Deletes every object under `prefix`, best effort.
    async fn delete_all(&self, prefix: &ObjectPath) -> anyhow::Result<()> {
        use futures_util::{StreamExt as _, TryStreamExt as _};
        let keys = self.store.list(Some(prefix)).map_ok(|m| m.location).boxed();
        let mut deleted = self.store.delete_stream(keys);
        while let Some(r) = deleted.next().await {
            r.with_context(|| format!("delete the bench's objects under {prefix}"))?;
        }
        Ok(())
    }
}

/// A data file of `tiered/`.
#[derive(Debug, Clone)]
struct DataFile {
    index: u32,
    path: PathBuf,
    size: u64,
}

/// Runs `tiered` in `dir`.
///
/// # Errors
/// A bad spec, the store unreachable or its bucket missing, aiodiskdb failed, or a read
/// returned wrong data.
pub(crate) async fn tiered(b: &Bench<'_>, dir: &Path, spec: &TieredSpec) -> anyhow::Result<Report> {
    ensure!(spec.total_mb > 0, "--total-mb must be at least 1");
    ensure!(spec.cold_reads > 0, "--items must be at least 1");
    let bucket = Bucket::new(&spec.store).await?;
    let run = run(b, dir, spec, &bucket).await;
    let cleanup = bucket.delete_all(&bucket.base).await;
    let report = run?;
    if let Err(e) = cleanup {
        b.ui.say(&format!("bench tiered: {e:#}"));
    }
    Ok(report)
}

async fn run(
    b: &Bench<'_>,
    dir: &Path,
    spec: &TieredSpec,
    bucket: &Bucket,
) -> anyhow::Result<Report> {
    let setup = Setup::write(b, dir, spec.total_mb).await?;
    let (upload, disk) = upload(b, bucket, &setup).await?;
    let rounds = read_rounds(b, bucket, spec, &setup).await?;
    let disk = disk.finish(&setup.head, &setup.sealed).await?;
    let cold_reads = spec.cold_reads * ROUNDS as u64;
    let warm_reads = warm_reads(spec.cold_reads) * ROUNDS as u64;
    let sum = |f: fn(&TieredRound) -> f64| rounds.iter().map(f).sum::<f64>();
    let cold = TieredReads::new(
        cold_reads,
        sum(|r| r.cold),
        "plain ranged GETs",
        sum(|r| r.plain),
    );
    let warm = TieredReads::new(
        warm_reads,
        sum(|r| r.warm),
        "our local reads",
        sum(|r| r.local),
    );
    Ok(Report::Tiered(Box::new(TieredReport {
        workload: NAME,
        store: spec.store.clone(),
        concurrency: CONCURRENCY,
        part_bytes: PART,
        file_size: setup.file_size,
        files: setup.sealed.len() as u64,
        bytes: setup.sealed_bytes(),
        items: setup.locs.len() as u64,
        upload,
        cold,
        warm,
        rounds,
        disk,
    })))
}

/// What the run works on: `tiered/` written, and its copy `local/`.
struct Setup {
    tiered: PathBuf,
    local: PathBuf,
    file_size: u64,
    /// Item `i` is at `locs[i]`.
    locs: Arc<Vec<ItemLocation>>,
    sealed: Vec<DataFile>,
    head: DataFile,
}

impl Setup {
    /// Writes the items into `dir/tiered` and copies it to `dir/local`.
    async fn write(b: &Bench<'_>, dir: &Path, total_mb: u64) -> anyhow::Result<Setup> {
        let (tiered, local) = (dir.join("tiered"), dir.join("local"));
        let file_size = file_size(total_mb);
        let (locs, mut sealed) = write_items(b, &tiered, total_mb, file_size).await?;
        let head = sealed.pop().context("no data file written")?;
        copy_dir(b, &tiered, &local).await?;
        Ok(Setup {
            tiered,
            local,
            file_size,
            locs: Arc::new(locs),
            sealed,
            head,
        })
    }

    fn sealed_bytes(&self) -> u64 {
        self.sealed.iter().map(|f| f.size).sum()
    }

    /// The sealed files' copies in `local/`.
    fn copies(&self) -> Vec<DataFile> {
        self.sealed
            .iter()
            .map(|f| DataFile {
                path: self.local.join(f.path.file_name().unwrap_or_default()),
                ..f.clone()
            })
            .collect()
    }

    /// A handle on `tiered/` with tiering (`keep_local(0)`, uploads by `tier` only).
    async fn open_tiered(&self, bucket: &Bucket) -> anyhow::Result<AioDiskDb> {
        let tiering = bucket
            .tiering
            .clone()
            .keep_local(0)
            .concurrency(CONCURRENCY)
            .upload_in_background(false);
        Ok(builder(&self.tiered, self.file_size)
            .tiering(tiering)
            .open()
            .await?)
    }
}

/// The upload comparison: plain, ours, plain; the plain ones from the copy (ours deletes
/// the files it uploads). The disk sampler starts before ours and goes on.
async fn upload(
    b: &Bench<'_>,
    bucket: &Bucket,
    setup: &Setup,
) -> anyhow::Result<(TieredTransfer, Disk)> {
    let (sealed, bytes) = (&setup.sealed, setup.sealed_bytes());
    let plain_prefix = bucket.side("plain");
    let copies = setup.copies();
    let before = plain_upload(b, bucket, &plain_prefix, &copies, "before ours").await?;
    let db = setup.open_tiered(bucket).await?;
    let disk = Disk::start(&setup.tiered, &db, sealed, setup.head.index);
    let bar = b.ui.phase(
        NAME,
        &format!(
            "AioDiskDb::tier: {} sealed files, {:.0} MB (keep_local 0)",
            sealed.len(),
            as_f64(bytes) / 1e6
        ),
        None,
        Unit::Items,
    );
    let start = Instant::now();
    let tiered = db.tier().await?;
    let secs = start.elapsed().as_secs_f64();
    bar.finish();
    disk.tiered();
    db.stop().await?;
    ensure!(
        tiered.len() == sealed.len(),
        "tier() tiered {} files of {}",
        tiered.len(),
        sealed.len()
    );
    let after = plain_upload(b, bucket, &plain_prefix, &copies, "after ours").await?;
    let plain_mb_per_s = f64::midpoint(rate(bytes, before), rate(bytes, after)) / 1e6;
    let mb_per_s = rate(bytes, secs) / 1e6;
    let transfer = TieredTransfer {
        secs,
        mb_per_s,
        plain_secs: [before, after],
        plain_mb_per_s,
        ratio: ratio(mb_per_s, plain_mb_per_s),
    };
    Ok((transfer, disk))
}

/// The read comparisons, in [`ROUNDS`] rounds: the seconds of each.
async fn read_rounds(
    b: &Bench<'_>,
    bucket: &Bucket,
    spec: &TieredSpec,
    setup: &Setup,
) -> anyhow::Result<Vec<TieredRound>> {
    let locs = &setup.locs;
    let remote: Vec<usize> = (0..locs.len())
        .filter(|&i| locs[i].index != setup.head.index)
        .collect();
    let per_round = usize::try_from(spec.cold_reads)?;
    ensure!(
        per_round * ROUNDS <= remote.len(),
        "--items {}: more cold reads than the {} remote items allow ({ROUNDS} rounds of \
         distinct items); raise --total-mb",
        spec.cold_reads,
        remote.len(),
    );
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let picks: Vec<usize> = rand::seq::index::sample(&mut rng, remote.len(), per_round * ROUNDS)
        .into_iter()
        .map(|p| remote[p])
        .collect();
    let keys: Arc<BTreeMap<u32, ObjectPath>> = Arc::new(
        setup
            .sealed
            .iter()
            .map(|f| {
                let name = f
                    .path
                    .file_name()
                    .and_then(OsStr::to_str)
                    .unwrap_or_default();
                (f.index, bucket.side("ours").join(name))
            })
            .collect(),
    );
    let local = builder(&setup.local, setup.file_size).open().await?;
    let mut rounds = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let what = format!("round {}/{ROUNDS}", round + 1);
        let cold: Arc<Vec<usize>> = Arc::new(picks[round * per_round..][..per_round].to_vec());
        let warm: Arc<Vec<usize>> = {
            let mut rng = StdRng::seed_from_u64(spec.seed.wrapping_add(round as u64 + 1));
            let n = warm_reads(spec.cold_reads);
            Arc::new((0..n).map(|_| cold[rng.gen_range(0..cold.len())]).collect())
        };
        // A fresh handle: an empty cache, no item table loaded.
        let db = setup.open_tiered(bucket).await?;
        let mut r = TieredRound::default();
        // Ours first in even rounds, the other side first in odd ones.
        let turns = [round % 2 == 0, round % 2 == 1];
        for ours in turns {
            if ours {
                let bar = b.ui.phase(
                    NAME,
                    &format!("cold reads, ours ({what})"),
                    None,
                    Unit::Items,
                );
                r.cold = reads(&db, locs, &cold, &bar).await?;
                bar.finish();
            } else {
                let what = format!("cold reads, plain ranged GETs ({what})");
                let bar = b.ui.phase(NAME, &what, None, Unit::Items);
                r.plain = plain_gets(bucket, &keys, locs, &cold, &bar).await?;
                bar.finish();
            }
        }
        for ours in turns {
            let (name, on) = if ours {
                ("warm reads, ours (in the cache)", &db)
            } else {
                ("local reads, ours (the copy never tiered)", &local)
            };
            let bar =
                b.ui.phase(NAME, &format!("{name} ({what})"), None, Unit::Items);
            let secs = reads(on, locs, &warm, &bar).await?;
            bar.finish();
            if ours {
                r.warm = secs;
            } else {
                r.local = secs;
            }
        }
        db.stop().await?;
        rounds.push(r);
    }
    local.stop().await?;
    Ok(rounds)
}

/// Warm reads per round for `cold_reads` cold ones.
fn warm_reads(cold_reads: u64) -> u64 {
    cold_reads.saturating_mul(1000).min(WARM_READS)
}

/// The default configuration but for files of `file_size` bytes.
fn builder(dir: &Path, file_size: u64) -> aiodiskdb::Builder {
    AioDiskDb::builder(dir)
        .max_file_size(file_size)
        .max_buffer_size(file_size.min(DEFAULT_BUFFER))
}

/// Bytes per data file for `total_mb`: the library's default, or less so that a small
/// run still has 4 files; a whole number of items plus the header.
fn file_size(total_mb: u64) -> u64 {
    let quarter = (total_mb * 1_000_000 / 4).clamp(64 << 10, MAX_FILE_SIZE);
    (quarter - HEADER) / ITEM * ITEM + HEADER
}

/// Writes at least `total_mb` MB of sealed files of 1 KiB items (item `i` is
/// `read_item(i)`), one more item in the head, then stops (durable): the locations, and
/// the data files, the head last.
async fn write_items(
    b: &Bench<'_>,
    dir: &Path,
    total_mb: u64,
    file_size: u64,
) -> anyhow::Result<(Vec<ItemLocation>, Vec<DataFile>)> {
    let per_file = (file_size - HEADER) / ITEM;
    let sealed = (total_mb * 1_000_000).div_ceil(per_file * ITEM);
    let count = sealed * per_file + 1;
    let bar = b.ui.phase(
        NAME,
        &format!("writing {count} items of 1 KiB ({sealed} sealed files of {file_size} B)"),
        Some(count),
        Unit::Items,
    );
    let db = builder(dir, file_size).open().await?;
    let mut items = ReadItems {
        count,
        locs: Vec::with_capacity(usize::try_from(count)?),
        bar: &bar,
    };
    fill(db, &mut items).await?;
    bar.finish();
    let found = AioDiskDb::builder(dir).inspect().await?;
    let files: Vec<DataFile> = found
        .files
        .into_iter()
        .map(|f| DataFile {
            index: f.index,
            path: f.path,
            size: f.size,
        })
        .collect();
    ensure!(
        files.len() as u64 == sealed + 1,
        "{} data files written, {} expected",
        files.len(),
        sealed + 1
    );
    Ok((items.locs, files))
}

/// Copies every file of the stopped directory `from` to `to`.
async fn copy_dir(b: &Bench<'_>, from: &Path, to: &Path) -> anyhow::Result<()> {
    let bar = b.ui.phase(
        NAME,
        "copying the directory (local reads)",
        None,
        Unit::Items,
    );
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        std::fs::create_dir_all(&to)?;
        for e in std::fs::read_dir(&from)? {
            let e = e?;
            if e.file_type()?.is_file() {
                std::fs::copy(e.path(), to.join(e.file_name()))
                    .with_context(|| format!("copy {}", e.path().display()))?;
            }
        }
        Ok(())
    })
    .await??;
    bar.finish();
    Ok(())
}

/// Reads `len` bytes of `path` at `at` on a blocking thread.
async fn read_part(file: &Arc<std::fs::File>, at: u64, len: u64) -> anyhow::Result<Bytes> {
    let file = Arc::clone(file);
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt as _;
        let mut buf = vec![0u8; usize::try_from(len)?];
        file.read_exact_at(&mut buf, at)?;
        anyhow::Ok(Bytes::from(buf))
    })
    .await?
}

/// The plain upload: `files` put under `prefix` with plain `object_store` calls, one
/// after the other (see the module's docs); seconds. The objects are deleted afterwards
/// (not timed).
async fn plain_upload(
    b: &Bench<'_>,
    bucket: &Bucket,
    prefix: &ObjectPath,
    files: &[DataFile],
    when: &str,
) -> anyhow::Result<f64> {
    let bar = b.ui.phase(
        NAME,
        &format!("plain object_store upload of the same files ({when})"),
        None,
        Unit::Items,
    );
    let store = bucket.store.as_ref();
    let start = Instant::now();
    for f in files {
        let name = f
            .path
            .file_name()
            .and_then(OsStr::to_str)
            .unwrap_or_default();
        let key = prefix.clone().join(name);
        let file = Arc::new(std::fs::File::open(&f.path)?);
        if f.size <= PART {
            let bytes = read_part(&file, 0, f.size).await?;
            store.put(&key, PutPayload::from(bytes)).await?;
        } else {
            let upload = store.put_multipart(&key).await?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, usize::try_from(PART)?);
            let mut at = 0;
            while at < f.size {
                let part = read_part(&file, at, (f.size - at).min(PART)).await?;
                at += part.len() as u64;
                w.wait_for_capacity(CONCURRENCY).await?;
                w.put(part);
            }
            w.finish().await?;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    bar.finish();
    bucket.delete_all(prefix).await?;
    Ok(secs)
}

/// Reads item `i` of `locs` for each `i` of `which` from [`CONCURRENCY`] tasks with `db`,
/// each checked: seconds.
async fn reads(
    db: &AioDiskDb,
    locs: &Arc<Vec<ItemLocation>>,
    which: &Arc<Vec<usize>>,
    bar: &Bar,
) -> anyhow::Result<f64> {
    let db = db.clone();
    timed_reads(locs, which, bar, move |loc| {
        let db = db.clone();
        async move { Ok(db.read(loc).await?) }
    })
    .await
}

/// The same reads as [`reads`] as plain ranged GETs of the objects: seconds.
async fn plain_gets(
    bucket: &Bucket,
    keys: &Arc<BTreeMap<u32, ObjectPath>>,
    locs: &Arc<Vec<ItemLocation>>,
    which: &Arc<Vec<usize>>,
    bar: &Bar,
) -> anyhow::Result<f64> {
    let (store, keys) = (Arc::clone(&bucket.store), Arc::clone(keys));
    timed_reads(locs, which, bar, move |loc| {
        let (store, keys) = (Arc::clone(&store), Arc::clone(&keys));
        async move {
            let key = keys.get(&loc.index).context("no object for the item")?;
            // No trims here: the item is at byte 24 + position of its object.
            let at = HEADER + u64::from(loc.position);
            Ok(Some(
                store.get_range(key, at..at + u64::from(loc.size)).await?,
            ))
        }
    })
    .await
}

/// Runs `read` of item `i` of `locs` for each `i` of `which` from [`CONCURRENCY`] tasks
/// (task `t` takes every [`CONCURRENCY`]th from `t`), each result checked: seconds. Both
/// sides of a comparison go through it, so that they differ only in `read`.
async fn timed_reads<F, Fut>(
    locs: &Arc<Vec<ItemLocation>>,
    which: &Arc<Vec<usize>>,
    bar: &Bar,
    read: F,
) -> anyhow::Result<f64>
where
    F: Fn(ItemLocation) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Option<Bytes>>> + Send,
{
    let start = Instant::now();
    let workers = (0..CONCURRENCY)
        .map(|t| {
            let (locs, which, bar, read) = (
                Arc::clone(locs),
                Arc::clone(which),
                bar.clone(),
                read.clone(),
            );
            Exec::Tasks.spawn(async move {
                for &i in which.iter().skip(t).step_by(CONCURRENCY) {
                    let got = read(locs[i]).await?;
                    check(got.as_deref(), i, &locs[i])?;
                    bar.inc(1);
                }
                Ok(())
            })
        })
        .collect();
    join_all(workers).await?;
    Ok(start.elapsed().as_secs_f64())
}

/// Item `i` is 1 KiB starting with `i` (u64 LE).
fn check(got: Option<&[u8]>, i: usize, loc: &ItemLocation) -> anyhow::Result<()> {
    match got {
        Some(b) if b.len() as u64 == ITEM && b[..8] == (i as u64).to_le_bytes() => Ok(()),
        _ => bail!("read of {loc} returned wrong data"),
    }
}

/// One listing of the directory.
#[derive(Debug, Clone, Default)]
struct Sample {
    /// Taken after `tier` returned.
    after: bool,
    /// Every file.
    total: u64,
    /// Data files (`.dat`) that may be there: the head, and sealed files not yet tiered
    /// (none are kept: `keep_local(0)`).
    data: u64,
    /// Data files that should be gone (tiered), and files that are none of ours.
    unexpected: u64,
    /// Item indexes (`.idx`: they stay local, 8 bytes per item).
    index: u64,
    /// The state record and manifests (`.aiodiskdb.*`), and the Python-format
    /// checkpoint (`.checkpoint-*`).
    meta: u64,
    /// The names of the unexpected files.
    unexpected_names: Vec<String>,
}

/// The disk sampler of `tiered/`: a blocking thread listing it every [`SAMPLE_EVERY`],
/// and a task following the `Tiered` events (a file's local copy is deleted before its
/// event: a file is expected until its event, never after).
struct Disk {
    stop: Arc<AtomicBool>,
    after: Arc<AtomicBool>,
    sampler: tokio::task::JoinHandle<anyhow::Result<Vec<Sample>>>,
    events: tokio::task::JoinHandle<u64>,
}

impl Disk {
    fn start(dir: &Path, db: &AioDiskDb, sealed: &[DataFile], head: u32) -> Disk {
        let pending: Arc<Mutex<BTreeSet<u32>>> =
            Arc::new(Mutex::new(sealed.iter().map(|f| f.index).collect()));
        let (stop, after) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let mut rx = db.subscribe();
        let events = {
            let pending = Arc::clone(&pending);
            tokio::spawn(async move {
                let mut n = 0;
                loop {
                    match rx.recv().await {
                        Ok(Event::Tiered { index, .. }) => {
                            n += 1;
                            pending.lock().expect("pending").remove(&index);
                        }
                        Ok(Event::Stopped { .. }) | Err(RecvError::Closed) => return n,
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                    }
                }
            })
        };
        let sampler = {
            let (dir, stop, after) = (dir.to_path_buf(), Arc::clone(&stop), Arc::clone(&after));
            tokio::task::spawn_blocking(move || {
                let mut samples = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    // Read the flag and the pending set before listing: a file tiered
                    // meanwhile is then still expected (lenient by one deletion at most).
                    let after = after.load(Ordering::SeqCst);
                    let expected: BTreeSet<u32> = {
                        let mut p = pending.lock().expect("pending").clone();
                        p.insert(head);
                        p
                    };
                    samples.push(sample(&dir, after, &expected)?);
                    std::thread::sleep(SAMPLE_EVERY);
                }
                Ok(samples)
            })
        };
        Disk {
            stop,
            after,
            sampler,
            events,
        }
    }

    /// `tier` returned.
    fn tiered(&self) {
        self.after.store(true, Ordering::SeqCst);
    }

    async fn finish(self, head: &DataFile, sealed: &[DataFile]) -> anyhow::Result<TieredDisk> {
        self.stop.store(true, Ordering::SeqCst);
        let samples = self.sampler.await??;
        let tiered_events = self.events.await?;
        let max = |f: &dyn Fn(&Sample) -> u64, after: Option<bool>| {
            samples
                .iter()
                .filter(|s| after.is_none_or(|a| s.after == a))
                .map(f)
                .max()
                .unwrap_or(0)
        };
        Ok(TieredDisk {
            samples: samples.len() as u64,
            tiered_events,
            start_bytes: samples.first().map_or(0, |s| s.total),
            max_bytes: max(&|s| s.total, None),
            max_unexpected_bytes: max(&|s| s.unexpected, None),
            after_tier_max_bytes: max(&|s| s.total, Some(true)),
            after_tier_max_data_bytes: max(&|s| s.data + s.unexpected, Some(true)),
            max_index_bytes: max(&|s| s.index, None),
            max_meta_bytes: max(&|s| s.meta, None),
            unexpected_files: samples
                .iter()
                .flat_map(|s| s.unexpected_names.iter().cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .take(10)
                .collect(),
            bound_bytes: head.size,
            sealed_bytes: sealed.iter().map(|f| f.size).sum(),
            cache: "ram",
        })
    }
}

/// Lists `dir`: sizes by kind.
fn sample(dir: &Path, after: bool, expected: &BTreeSet<u32>) -> anyhow::Result<Sample> {
    let mut s = Sample {
        after,
        ..Sample::default()
    };
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        // A file deleted between the listing and its metadata: gone, counts nothing.
        let Ok(meta) = e.metadata() else { continue };
        let size = meta.len();
        let name = e.file_name();
        let name = name.to_string_lossy();
        s.total += size;
        let index = name
            .strip_prefix("data")
            .and_then(|n| n.split_once('.'))
            .and_then(|(n, ext)| Some((n.parse::<u32>().ok()?, ext)));
        match index {
            Some((i, "dat")) if expected.contains(&i) => s.data += size,
            Some((_, "idx")) => s.index += size,
            _ if name.starts_with(".aiodiskdb.") || name.starts_with(".checkpoint-") => {
                s.meta += size;
            }
            _ => {
                s.unexpected += size;
                s.unexpected_names.push(name.into_owned());
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::Ui;
    use object_store::memory::InMemory;

    /// The whole workload at a tiny size against an in-memory object store (the real S3
    /// client is the library's tests' business): every figure filled in, the disk within
    /// its bound, ours tiered and the plain copies and the run's objects deleted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tiering_workload_at_a_tiny_size_in_memory() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let bucket = Bucket {
            store: Arc::clone(&store),
            tiering: Tiering::new(Arc::clone(&store), "run/ours"),
            base: ObjectPath::from("run"),
        };
        let dir = tempfile::tempdir().unwrap();
        let ui = Ui::lines("test".into(), true);
        let b = Bench {
            ui: &ui,
            engine: None,
            limits: true,
        };
        let spec = TieredSpec {
            store: "memory".into(),
            total_mb: 1,
            cold_reads: 5,
            seed: 7,
        };
        let Report::Tiered(r) = run(&b, dir.path(), &spec, &bucket).await.unwrap() else {
            panic!("not a tiered report");
        };
        // 1 MB in files of a quarter of it (whole items): 5 sealed files and the head.
        assert_eq!(r.file_size, 249_880);
        assert_eq!((r.files, r.bytes), (5, 5 * 249_880));
        assert_eq!(r.items, 5 * 244 + 1);
        assert!(r.upload.secs > 0.0 && r.upload.plain_secs.iter().all(|&s| s > 0.0));
        assert!(r.upload.ratio > 0.0);
        assert_eq!((r.cold.reads, r.warm.reads), (15, 15_000));
        assert!(r.cold.ratio > 0.0 && r.warm.ratio > 0.0);
        assert_eq!(r.rounds.len(), ROUNDS);
        let d = &r.disk;
        assert_eq!(d.tiered_events, 5);
        assert_eq!(d.sealed_bytes, r.bytes);
        assert!(d.samples > 0 && d.start_bytes >= r.bytes, "{d:?}");
        assert_eq!(d.max_unexpected_bytes, 0, "{d:?}");
        assert!(d.unexpected_files.is_empty(), "{d:?}");
        assert_eq!(d.bound_bytes, 24 + 1024, "the head, one item");
        assert!(d.after_tier_max_data_bytes <= d.bound_bytes, "{d:?}");
        // Ours are up (the plain copies were deleted after their upload).
        let keys = |p: &str| {
            let store = Arc::clone(&store);
            let p = ObjectPath::from(p);
            async move {
                use futures_util::TryStreamExt as _;
                let metas: Vec<_> = store.list(Some(&p)).try_collect().await.unwrap();
                metas.len()
            }
        };
        assert_eq!(keys("run/ours").await, 5);
        assert_eq!(keys("run/plain").await, 0);
        bucket.delete_all(&bucket.base).await.unwrap();
        assert_eq!(keys("run").await, 0);
        // The report prints (both forms).
        let r = Report::Tiered(r);
        r.print(true).unwrap();
        r.print(false).unwrap();
    }

    #[test]
    fn file_sizes() {
        assert_eq!(file_size(1000), MAX_FILE_SIZE / 1024 * 1024 - 1024 + 24);
        assert_eq!(file_size(1), 249_880);
        assert_eq!(file_size(0), (64 << 10) - 1024 + 24);
        assert_eq!(warm_reads(5), 5_000);
        assert_eq!(warm_reads(200), WARM_READS);
    }
}
