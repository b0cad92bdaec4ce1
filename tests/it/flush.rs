//! When the buffer reaches the disk: explicit flush, the byte, item-count and interval
//! triggers, `wait_persisted`, back pressure and group commit.

use std::time::Duration;

use aiodiskdb::{AioDiskDb, Error, ItemLocation};
use rand::{Rng, SeedableRng};
use tokio::time::{timeout, Instant};

use crate::common::{data_files, file_bytes, file_len, header, item, TestResult, HEADER_LEN};

const HOUR: Duration = Duration::from_secs(3600);
const DATA0: &str = "data00000.dat";

#[tokio::test]
async fn explicit_flush_writes_the_buffer() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .flush_interval(HOUR)
        .open()
        .await?;
    db.flush().await?;
    assert_eq!(file_len(dir.path(), DATA0), HEADER_LEN, "nothing to flush");
    db.add(&b"data1"[..]).await?;
    db.add(&b"data22"[..]).await?;
    assert_eq!(file_len(dir.path(), DATA0), HEADER_LEN);
    db.flush().await?;
    let mut expected = header(0);
    expected.extend_from_slice(b"data1data22");
    assert_eq!(file_bytes(dir.path(), DATA0), expected);
    db.add(&b"3"[..]).await?;
    db.flush().await?;
    expected.push(b'3');
    assert_eq!(file_bytes(dir.path(), DATA0), expected);
    db.stop().await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn byte_trigger_flushes_without_explicit_flush() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_buffer_size(100)
        .max_buffer_items(1000)
        .flush_interval(HOUR)
        .open()
        .await?;
    let mut locs = Vec::new();
    for tag in 0..3 {
        locs.push(db.add(item(tag, 25)).await?);
    }
    assert!(
        timeout(Duration::from_secs(10), db.wait_persisted(locs[2]))
            .await
            .is_err(),
        "75 of 100 bytes: no flush yet"
    );
    assert_eq!(file_len(dir.path(), DATA0), HEADER_LEN);
    locs.push(db.add(item(3, 25)).await?);
    timeout(Duration::from_secs(10), db.wait_persisted(locs[3])).await??;
    let mut expected = header(0);
    for tag in 0..4 {
        expected.extend_from_slice(&item(tag, 25));
    }
    assert_eq!(file_bytes(dir.path(), DATA0), expected);
    db.stop().await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn item_count_trigger_flushes_without_explicit_flush() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_buffer_items(3)
        .flush_interval(HOUR)
        .open()
        .await?;
    let a = db.add(&b"a"[..]).await?;
    let b = db.add(&b"b"[..]).await?;
    assert!(timeout(Duration::from_secs(10), db.wait_persisted(b))
        .await
        .is_err());
    assert_eq!(file_len(dir.path(), DATA0), HEADER_LEN);
    let c = db.add(&b"c"[..]).await?;
    timeout(Duration::from_secs(10), db.wait_persisted(c)).await??;
    timeout(Duration::from_secs(10), db.wait_persisted(a)).await??;
    let mut expected = header(0);
    expected.extend_from_slice(b"abc");
    assert_eq!(file_bytes(dir.path(), DATA0), expected);
    db.stop().await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn interval_trigger_flushes_after_flush_interval() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .flush_interval(Duration::from_secs(10))
        .open()
        .await?;
    let start = Instant::now();
    let a = db.add(&b"tick"[..]).await?;
    assert!(timeout(Duration::from_secs(9), db.wait_persisted(a))
        .await
        .is_err());
    assert_eq!(file_len(dir.path(), DATA0), HEADER_LEN, "9 s: not yet");
    db.wait_persisted(a).await?;
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
        "flushed after {waited:?}"
    );
    assert_eq!(file_len(dir.path(), DATA0), HEADER_LEN + 4);

    // The next interval counts from the last flush.
    tokio::time::advance(Duration::from_secs(3)).await;
    let b = db.add(&b"tock"[..]).await?;
    db.wait_persisted(b).await?;
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(20) && waited < Duration::from_secs(21),
        "second flush after {waited:?}"
    );
    let mut expected = header(0);
    expected.extend_from_slice(b"ticktock");
    assert_eq!(file_bytes(dir.path(), DATA0), expected);
    db.stop().await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn wait_persisted_waits_for_a_flush_without_forcing_one() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .flush_interval(Duration::from_secs(60))
        .open()
        .await?;
    let a = db.add(&b"pending"[..]).await?;
    assert!(
        timeout(Duration::from_secs(5), db.wait_persisted(a))
            .await
            .is_err(),
        "wait_persisted must not flush by itself"
    );
    assert_eq!(file_len(dir.path(), DATA0), HEADER_LEN);
    assert_eq!(
        db.read(a).await?.as_deref(),
        Some(&b"pending"[..]),
        "still readable"
    );

    // Another caller's flush releases the waiter.
    let waiter = {
        let db = db.clone();
        tokio::spawn(async move { db.wait_persisted(a).await })
    };
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    db.flush().await?;
    timeout(Duration::from_secs(1), waiter).await???;
    assert_eq!(file_len(dir.path(), DATA0), HEADER_LEN + 7);

    // Already persisted: returns at once. Never stored: an error, not a hang.
    timeout(Duration::from_millis(1), db.wait_persisted(a)).await??;
    let never = ItemLocation {
        index: 0,
        position: 100,
        size: 1,
    };
    assert!(matches!(
        db.wait_persisted(never).await,
        Err(Error::NotStored { location }) if location == never
    ));
    db.stop().await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn stop_releases_waiters_after_persisting() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .flush_interval(HOUR)
        .open()
        .await?;
    let a = db.add(&b"last words"[..]).await?;
    let waiter = {
        let db = db.clone();
        tokio::spawn(async move { db.wait_persisted(a).await })
    };
    tokio::task::yield_now().await;
    db.stop().await?;
    timeout(Duration::from_secs(1), waiter).await???;
    let mut expected = header(0);
    expected.extend_from_slice(b"last words");
    assert_eq!(file_bytes(dir.path(), DATA0), expected);
    Ok(())
}

#[tokio::test]
async fn back_pressure_with_a_tiny_buffer() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(1000)
        .max_buffer_size(64)
        .max_buffer_items(1000)
        .flush_interval(HOUR)
        .timeout(Duration::from_secs(10))
        .durability(aiodiskdb::Durability::Os)
        .open()
        .await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut written = Vec::new();
    let mut total = 0u64;
    for tag in 0..400u32 {
        let data = item(tag, rng.gen_range(1..=64));
        total += data.len() as u64;
        written.push((db.add(data.clone()).await?, data));
    }
    // RAM holds at most 64 bytes buffered plus 64 being flushed: the rest is on disk.
    let on_disk: u64 = data_files(dir.path())
        .iter()
        .map(|n| file_len(dir.path(), n) - HEADER_LEN)
        .sum();
    assert!(on_disk + 128 >= total, "{on_disk} of {total} bytes on disk");
    for (l, d) in &written {
        assert_eq!(db.read(*l).await?.as_deref(), Some(&d[..]), "{l}");
    }
    db.flush().await?;
    for name in data_files(dir.path()) {
        let index: u32 = name[4..9].parse()?;
        let mut expected = header(0);
        for (_, d) in written.iter().filter(|(l, _)| l.index == index) {
            expected.extend_from_slice(d);
        }
        assert_eq!(file_bytes(dir.path(), &name), expected, "{name}");
    }
    db.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_flushes_share_a_commit_and_are_durable() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .flush_interval(HOUR)
        .open()
        .await?;
    let mut tasks = Vec::new();
    for tag in 0..32u32 {
        let db = db.clone();
        let path = dir.path().to_path_buf();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for round in 0..4u32 {
                let data = item(tag * 10 + round, 100 + tag as usize);
                let l = db.add(data.clone()).await?;
                db.flush().await?;
                // Durable on return: the bytes are in the file now.
                let file = std::fs::read(path.join(DATA0))?;
                let at = usize::try_from(HEADER_LEN + u64::from(l.position))?;
                assert_eq!(&file[at..at + data.len()], &data[..], "{l}");
                mine.push((l, data));
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(mine)
        }));
    }
    let mut written = Vec::new();
    for t in tasks {
        written.extend(t.await?.map_err(|e| e.to_string())?);
    }
    written.sort_by_key(|(l, _)| *l);
    let mut expected = header(0);
    for (l, d) in &written {
        assert_eq!(
            u64::from(l.position),
            expected.len() as u64 - HEADER_LEN,
            "no gaps"
        );
        expected.extend_from_slice(d);
    }
    assert_eq!(file_bytes(dir.path(), DATA0), expected);
    db.stop().await?;
    Ok(())
}
