//! Read-only handles in other processes (SPEC 9), with real processes: one writer
//! appending, rolling over, trimming and dropping for a while, and several reader processes
//! checking every item they read; and readers started on a directory a killed writer left,
//! that keep reading while a new writer recovers it.
//!
//! The test binary re-executes itself ([`child`] does nothing unless `AIODISKDB_RO_ROLE`
//! says `writer` or `reader`). Items describe themselves (their id, their length, then
//! [`content`] of the id), so that a reader checks every byte it gets without knowing what
//! the writer did: a read returns a whole, valid item of the location's size, or `None`
//! (trimmed or dropped meanwhile), never other bytes and never an error.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aiodiskdb::{AioDiskDb, Builder, Durability, Error, ItemLocation};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::{content, reexec_args, TestResult};

const ENV_ROLE: &str = "AIODISKDB_RO_ROLE";
const ENV_DIR: &str = "AIODISKDB_RO_DIR";
const ENV_MILLIS: &str = "AIODISKDB_RO_MILLIS";
const ENV_SEED: &str = "AIODISKDB_RO_SEED";
const CHILD_TEST: &str = "readers::child";

const MAX_FILE: u64 = 64 << 10;
/// The writer drops its oldest file when it has more.
const MAX_FILES: usize = 6;

fn writer_builder(dir: &Path) -> Builder {
    AioDiskDb::builder(dir)
        .max_file_size(MAX_FILE)
        .max_buffer_size(16 << 10)
        .max_buffer_items(64)
        .flush_interval(Duration::from_millis(5))
        .durability(Durability::Sync)
        .overwrite(true)
}

/// Item `id` of `len` bytes (at least 12): the id, the length, then `content(id)`.
fn make_item(id: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&u32::try_from(len).unwrap().to_le_bytes());
    out.extend_from_slice(&content(id, len - 12));
    out
}

/// Whether `bytes` are a whole item as [`make_item`] writes them.
fn is_item(bytes: &[u8]) -> bool {
    if bytes.len() < 12 {
        return false;
    }
    let id = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    len == bytes.len() && bytes[12..] == content(id, len - 12)[..]
}

fn spawn(role: &str, dir: &Path, millis: u64, seed: u64) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(reexec_args(CHILD_TEST))
        .env(ENV_ROLE, role)
        .env(ENV_DIR, dir)
        .env(ENV_MILLIS, millis.to_string())
        .env(ENV_SEED, seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
}

/// Waits for `child` and returns what it printed; fails if it failed.
fn finish(child: Child, what: &str) -> Result<String, Box<dyn std::error::Error>> {
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!("{what} failed ({}):\n{text}", out.status).into());
    }
    Ok(text)
}

/// Waits for every reader; each must have succeeded and read more than 100 whole items.
fn finish_readers(readers: Vec<Child>) -> TestResult {
    for (k, r) in readers.into_iter().enumerate() {
        let report = finish(r, &format!("reader {k}"))?;
        eprintln!("reader {k}: {}", report.trim());
        assert!(
            count(&report, "items") > 100,
            "reader {k} read too little: {report}"
        );
    }
    Ok(())
}

/// The reader's count line: `reads=N items=N missing=N`.
fn count(report: &str, key: &str) -> u64 {
    report
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The child side: a writer or a reader, for `AIODISKDB_RO_MILLIS`.
#[test]
fn child() -> TestResult {
    let Ok(role) = std::env::var(ENV_ROLE) else {
        return Ok(());
    };
    let dir = std::path::PathBuf::from(std::env::var(ENV_DIR)?);
    let millis: u64 = std::env::var(ENV_MILLIS)?.parse()?;
    let seed: u64 = std::env::var(ENV_SEED)?.parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let until = Instant::now() + Duration::from_millis(millis);
    match role.as_str() {
        "writer" => rt.block_on(write_for(&dir, until, seed)),
        "reader" => rt.block_on(read_for(&dir, until, seed)),
        other => Err(format!("unknown role {other}").into()),
    }
}

/// Appends items (rolling over often), cuts files back now and then, ltrims and drops the
/// oldest files, until `until`; then stops.
///
/// Positions are reused only by an rtrim of the head: the next adds go where the cut items
/// were. A reader may then read a location it listed before and get what is stored there
/// now, which is not "wrong" but is no item of that size unless the new items have the
/// same boundaries. So a writer with an odd `seed` adds items of one size (1000 bytes) and
/// cuts its head; one with an even `seed` adds items of random sizes and cuts only older
/// files (whose space is never reused). Either way every location a reader ever listed
/// holds a whole item of its size, or nothing.
async fn write_for(dir: &Path, until: Instant, seed: u64) -> TestResult {
    let mut rng = StdRng::seed_from_u64(seed);
    let aligned = seed % 2 == 1;
    let db = writer_builder(dir).open().await?;
    let mut id = seed << 32;
    let mut head: Vec<ItemLocation> = Vec::new();
    let (mut adds, mut cuts) = (0u64, 0u64);
    while Instant::now() < until {
        id += 1;
        let len = if aligned {
            1000
        } else {
            rng.gen_range(12..3000)
        };
        let loc = db.add(make_item(id, len)).await?;
        adds += 1;
        if head.last().is_some_and(|l| l.index != loc.index) {
            head.clear();
        }
        head.push(loc);
        match rng.gen_range(0..100) {
            0..=9 => db.flush().await?,
            10 if aligned && head.len() > 4 => {
                // Cut the head back by a few items; the next adds reuse the range.
                db.flush().await?;
                let keep = head.len() - rng.gen_range(1..4);
                db.rtrim(loc.index, head[keep].position, b"").await?;
                head.truncate(keep);
                cuts += 1;
            }
            10 => {
                // Cut the newest older file back to one of its items.
                let files = db_files(dir);
                if let [.., older, _] = files[..] {
                    let locs = db.locations(older).await?;
                    if let Some(cut) = locs.get(locs.len() * 3 / 4) {
                        db.rtrim(older, cut.position, b"").await?;
                        cuts += 1;
                    }
                }
            }
            11 => {
                let files = db_files(dir);
                if files.len() > 2 {
                    let oldest = files[0];
                    let locs = db.locations(oldest).await?;
                    if let Some(cut) = locs.get(locs.len() / 2) {
                        db.ltrim(oldest, cut.position, b"").await?;
                        cuts += 1;
                    }
                }
            }
            _ => {}
        }
        let files = db_files(dir);
        if files.len() > MAX_FILES {
            db.drop_index(files[0]).await?;
        }
        if adds % 64 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    db.stop().await?;
    println!("adds={adds} cuts={cuts}");
    Ok(())
}

/// The indexes of the data files in `dir`, sorted.
fn db_files(dir: &Path) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_prefix("data")?
                    .strip_suffix(".dat")?
                    .parse()
                    .ok()
            })
            .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// Opens the directory read-only and, until `until`, lists each index and reads every item
/// listed, and re-reads locations seen before; every read must be a whole valid item of
/// the location's size, or `None`.
async fn read_for(dir: &Path, until: Instant, seed: u64) -> TestResult {
    let mut rng = StdRng::seed_from_u64(seed);
    let db = AioDiskDb::open_read_only(dir).await?;
    let (mut reads, mut items, mut missing) = (0u64, 0u64, 0u64);
    let mut listed: Vec<ItemLocation> = Vec::new();
    let mut hi = 0u32;
    let mut check = |loc: ItemLocation, got: Option<bytes::Bytes>| -> TestResult {
        reads += 1;
        match got {
            Some(b) if b.len() == loc.size as usize && is_item(&b) => items += 1,
            Some(b) => return Err(format!("{loc}: {} bytes that are not the item", b.len()).into()),
            None => missing += 1,
        }
        Ok(())
    };
    while Instant::now() < until {
        // The indexes there are now (the test lists the directory; the handle does not).
        hi = hi.max(db_files(dir).last().copied().unwrap_or(0));
        for index in 0..=hi + 1 {
            let locs = match db.locations(index).await {
                Ok(l) => l,
                Err(Error::IndexDoesNotExist { .. } | Error::FilesInconsistency { .. }) => continue,
                Err(e) => return Err(format!("locations({index}): {e}").into()),
            };
            hi = hi.max(index);
            for loc in locs {
                let got = db.read(loc).await.map_err(|e| format!("{loc}: {e}"))?;
                check(loc, got)?;
                if listed.len() < 100_000 {
                    listed.push(loc);
                }
            }
        }
        for _ in 0..200 {
            if listed.is_empty() {
                break;
            }
            let loc = listed[rng.gen_range(0..listed.len())];
            let got = db.read(loc).await.map_err(|e| format!("{loc}: {e}"))?;
            check(loc, got)?;
        }
    }
    db.stop().await?;
    println!("reads={reads} items={items} missing={missing} indexes={hi}");
    Ok(())
}

#[test]
fn reader_processes_beside_a_writer_process_never_read_wrong_bytes() -> TestResult {
    let dir = tempfile::tempdir()?;
    // Items of random sizes, then (after a clean stop) a second writer that cuts its head.
    let writer = spawn("writer", dir.path(), 1500, 2)?;
    std::thread::sleep(Duration::from_millis(200));
    let readers: Vec<Child> = (0..3)
        .map(|k| spawn("reader", dir.path(), 2800, 10 + k))
        .collect::<std::io::Result<_>>()?;
    let report = finish(writer, "first writer")?;
    eprintln!("first writer: {}", report.trim());
    let writer = spawn("writer", dir.path(), 1500, 1)?;
    finish_readers(readers)?;
    let report = finish(writer, "writer")?;
    eprintln!("writer: {}", report.trim());
    // The directory the readers watched is sound.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let db = writer_builder(dir.path()).open().await?;
        let v = db.verify().await?;
        assert!(v.is_ok(), "{v:?}");
        db.stop().await
    })?;
    Ok(())
}

#[test]
fn readers_of_a_killed_writers_directory_keep_reading_while_it_recovers() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut writer = spawn("writer", dir.path(), 10_000, 2)?;
    std::thread::sleep(Duration::from_millis(700));
    writer.kill()?;
    writer.wait()?;
    let readers: Vec<Child> = (0..2)
        .map(|k| spawn("reader", dir.path(), 2000, 20 + k))
        .collect::<std::io::Result<_>>()?;
    std::thread::sleep(Duration::from_millis(500));
    // A new writer recovers the directory and goes on under the readers.
    let writer = spawn("writer", dir.path(), 1000, 3)?;
    finish_readers(readers)?;
    finish(writer, "writer")?;
    Ok(())
}
