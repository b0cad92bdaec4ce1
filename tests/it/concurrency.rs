//! Readers and writers at once, on a multi-threaded runtime: every read returns exactly
//! what was written, from RAM, from a flushing batch or from disk, and again after reopen.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use aiodiskdb::{AioDiskDb, ItemLocation};
use bytes::Bytes;
use rand::{Rng, SeedableRng};

use crate::common::{data_files, file_len, item, TestResult, HEADER_LEN};

const MAX_FILE: u64 = 256 << 10;

type Written = Arc<RwLock<Vec<(ItemLocation, Bytes)>>>;

async fn open(dir: &std::path::Path) -> aiodiskdb::Result<AioDiskDb> {
    AioDiskDb::builder(dir)
        .max_file_size(MAX_FILE)
        .max_buffer_size(64 << 10)
        .max_buffer_items(50)
        .open()
        .await
}

/// Reads random written items until `done`; returns how many reads were checked.
fn spawn_reader(
    db: AioDiskDb,
    written: Written,
    done: Arc<AtomicBool>,
    seed: u64,
) -> tokio::task::JoinHandle<Result<usize, String>> {
    tokio::spawn(async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut reads = 0;
        while !done.load(Ordering::SeqCst) {
            let pick = {
                let w = written.read().unwrap();
                if w.is_empty() {
                    None
                } else {
                    Some(w[rng.gen_range(0..w.len())].clone())
                }
            };
            let Some((l, data)) = pick else {
                tokio::task::yield_now().await;
                continue;
            };
            let got = db.read(l).await.map_err(|e| format!("read {l}: {e}"))?;
            if got.as_ref() != Some(&data) {
                return Err(format!("read {l}: wrong bytes"));
            }
            reads += 1;
            if reads % 16 == 0 {
                tokio::task::yield_now().await;
            }
        }
        Ok(reads)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_always_see_what_the_writer_wrote() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path()).await?;
    let written: Written = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|k| spawn_reader(db.clone(), written.clone(), done.clone(), k))
        .collect();

    let transactions = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (db, written, transactions) = (db.clone(), written.clone(), transactions.clone());
        tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(42);
            let mut tag = 0u32;
            for step in 0..600u32 {
                if step % 40 == 39 {
                    let mut tx = db.transaction();
                    let mut items = Vec::new();
                    for _ in 0..rng.gen_range(1..=6) {
                        tag += 1;
                        // Up to 100 KiB: above max_buffer_size, within a file.
                        let data = Bytes::from(item(tag, rng.gen_range(1..=100 << 10)));
                        tx.add(data.clone())?;
                        items.push(data);
                    }
                    let locs = tx.commit().await?;
                    transactions.fetch_add(1, Ordering::SeqCst);
                    written.write().unwrap().extend(locs.into_iter().zip(items));
                } else {
                    tag += 1;
                    let data = Bytes::from(item(tag, rng.gen_range(1..=8 << 10)));
                    let l = db.add(data.clone()).await?;
                    written.write().unwrap().push((l, data));
                }
                if step % 8 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            Ok::<_, aiodiskdb::Error>(())
        })
    };
    writer.await??;
    done.store(true, Ordering::SeqCst);
    let mut reads = 0;
    for r in readers {
        reads += r.await??;
    }
    assert!(reads > 0, "the readers ran");
    assert_eq!(transactions.load(Ordering::SeqCst), 15);

    let all = written.read().unwrap().clone();
    // Locations are unique and never overlap; files stay within max_file_size.
    let mut sorted: Vec<ItemLocation> = all.iter().map(|(l, _)| *l).collect();
    sorted.sort();
    for w in sorted.windows(2) {
        assert!(
            w[0].index < w[1].index || w[0].end() <= u64::from(w[1].position),
            "{} overlaps {}",
            w[0],
            w[1]
        );
    }
    for (l, d) in &all {
        assert_eq!(db.read(*l).await?.as_ref(), Some(d), "{l}");
    }
    db.stop().await?;
    for name in data_files(dir.path()) {
        assert!(file_len(dir.path(), &name) <= MAX_FILE, "{name}");
    }
    let stored: u64 = data_files(dir.path())
        .iter()
        .map(|n| file_len(dir.path(), n) - HEADER_LEN)
        .sum();
    let added: u64 = all.iter().map(|(_, d)| d.len() as u64).sum();
    assert_eq!(stored, added, "no gaps, no extra bytes");

    // A fresh instance, nothing cached: concurrent readers again.
    let db = open(dir.path()).await?;
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|k| spawn_reader(db.clone(), written.clone(), done.clone(), 100 + k))
        .collect();
    for (l, d) in &all {
        assert_eq!(db.read(*l).await?.as_ref(), Some(d), "after reopen {l}");
    }
    done.store(true, Ordering::SeqCst);
    for r in readers {
        r.await??;
    }
    db.stop().await?;
    Ok(())
}
