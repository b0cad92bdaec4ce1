//! Open, stop, reopen: `NotRunning` after stop, the directory lock, persisting on drop,
//! `clean_stale_data`, the signal helper, and refusing writes after a failed write.

use std::path::Path;
use std::time::Duration;

use aiodiskdb::{AioDiskDb, Error, Event, ItemLocation};

use crate::common::{
    data_files, eventually, file_bytes, file_len, header, item, next_event, snapshot, TestResult,
    HEADER_LEN,
};

const HOUR: Duration = Duration::from_secs(3600);

/// Opens `dir` with defaults, retrying while the previous handle still holds the lock.
async fn reopen(dir: &Path) -> Result<AioDiskDb, Box<dyn std::error::Error>> {
    let start = std::time::Instant::now();
    loop {
        match AioDiskDb::open(dir).await {
            Ok(db) => return Ok(db),
            Err(Error::Locked { .. }) if start.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[tokio::test]
async fn every_call_after_stop_is_not_running() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .overwrite(true)
        .open()
        .await?;
    let other = db.clone();
    let l = db.add(&b"data"[..]).await?;
    let mut tx = db.transaction();
    tx.add(&b"staged"[..])?;
    assert!(db.is_running() && other.is_running());
    db.stop().await?;
    assert!(!db.is_running() && !other.is_running());
    for handle in [&db, &other] {
        assert!(matches!(
            handle.add(&b"x"[..]).await,
            Err(Error::NotRunning)
        ));
        assert!(matches!(handle.read(l).await, Err(Error::NotRunning)));
        assert!(matches!(handle.flush().await, Err(Error::NotRunning)));
        assert!(matches!(
            handle.rtrim(0, 1, &[]).await,
            Err(Error::NotRunning)
        ));
        assert!(matches!(
            handle.ltrim(0, 1, &[]).await,
            Err(Error::NotRunning)
        ));
        assert!(matches!(handle.drop_index(0).await, Err(Error::NotRunning)));
        assert!(matches!(handle.stop().await, Err(Error::NotRunning)));
        let mut late = handle.transaction();
        late.add(&b"late"[..])?;
        assert!(matches!(late.commit().await, Err(Error::NotRunning)));
    }
    assert!(matches!(tx.commit().await, Err(Error::NotRunning)));
    // The add before stop was persisted, the rest was not.
    let mut expected = header(0);
    expected.extend_from_slice(b"data");
    assert_eq!(file_bytes(dir.path(), "data00000.dat"), expected);
    Ok(())
}

#[tokio::test]
async fn reopen_after_stop_reads_everything() -> TestResult {
    let dir = tempfile::tempdir()?;
    let open = || {
        AioDiskDb::builder(dir.path())
            .max_file_size(1024)
            .max_buffer_size(256)
            .open()
    };
    let db = open().await?;
    let mut written = Vec::new();
    for tag in 0..100u32 {
        let data = item(tag, 1 + (tag as usize * 37) % 256);
        written.push((db.add(data.clone()).await?, data));
    }
    db.stop().await?;
    assert!(data_files(dir.path()).len() > 5, "several files");
    let db = open().await?;
    for (l, d) in &written {
        assert_eq!(db.read(*l).await?.as_deref(), Some(&d[..]), "{l}");
    }
    let next = db.add(&b"next"[..]).await?;
    let last = written.last().expect("written").0;
    assert!(next > last, "{next} after {last}");
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_second_open_is_locked_until_stop() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::open(dir.path()).await?;
    let l = db.add(&b"mine"[..]).await?;
    match AioDiskDb::open(dir.path()).await {
        Err(Error::Locked { path }) => {
            assert_eq!(path.parent(), Some(dir.path()), "{}", path.display());
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(db.is_running(), "the holder is unaffected");
    assert_eq!(db.read(l).await?.as_deref(), Some(&b"mine"[..]));
    db.stop().await?;
    let again = AioDiskDb::open(dir.path()).await?;
    assert_eq!(again.read(l).await?.as_deref(), Some(&b"mine"[..]));
    again.stop().await?;
    Ok(())
}

#[tokio::test]
async fn dropping_the_last_handle_persists_the_buffer() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .flush_interval(HOUR)
        .open()
        .await?;
    let a = db.add(&b"dropped"[..]).await?;
    let clone = db.clone();
    drop(db);
    let b = clone.add(&b" handle"[..]).await?;
    drop(clone);
    let db = reopen(dir.path()).await?;
    assert_eq!(db.read(a).await?.as_deref(), Some(&b"dropped"[..]));
    assert_eq!(db.read(b).await?.as_deref(), Some(&b" handle"[..]));
    db.stop().await?;
    Ok(())
}

#[test]
fn shutting_down_the_runtime_persists_the_buffer() -> TestResult {
    let dir = tempfile::tempdir()?;
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    // The handle outlives its runtime: the flusher task is dropped, not stopped.
    let first = rt()?;
    let (kept, a) = first.block_on(async {
        let db = AioDiskDb::builder(dir.path())
            .flush_interval(HOUR)
            .open()
            .await?;
        let a = db.add(&b"first"[..]).await?;
        Ok::<_, Error>((db, a))
    })?;
    drop(first);
    assert!(!kept.is_running());
    drop(kept);

    // The handle is dropped and the runtime shut down at once, before the flusher runs.
    let second = rt()?;
    let b = second.block_on(async {
        let db = AioDiskDb::builder(dir.path())
            .flush_interval(HOUR)
            .open()
            .await?;
        let b = db.add(&b"second"[..]).await?;
        drop(db);
        Ok::<_, Error>(b)
    })?;
    drop(second);

    let mut expected = header(0);
    expected.extend_from_slice(b"firstsecond");
    assert_eq!(file_bytes(dir.path(), "data00000.dat"), expected);
    rt()?.block_on(async {
        let db = AioDiskDb::open(dir.path()).await?;
        assert_eq!(db.read(a).await?.as_deref(), Some(&b"first"[..]));
        assert_eq!(db.read(b).await?.as_deref(), Some(&b"second"[..]));
        db.stop().await
    })?;
    Ok(())
}

#[tokio::test]
async fn clean_stale_data_false_refuses_a_directory_needing_recovery() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::open(dir.path()).await?;
    let l = db.add(&b"kept"[..]).await?;
    db.stop().await?;
    // A clean directory opens either way.
    let db = AioDiskDb::builder(dir.path())
        .clean_stale_data(false)
        .open()
        .await?;
    db.stop().await?;

    for stale in [".tmp.data00000.dat", ".checkpoint-1700000000000"] {
        let path = dir.path().join(stale);
        std::fs::write(&path, b"")?;
        let before = snapshot(dir.path());
        let r = AioDiskDb::builder(dir.path())
            .clean_stale_data(false)
            .open()
            .await;
        assert!(
            matches!(r, Err(Error::InvalidDbState { .. })),
            "{stale}: {r:?}"
        );
        assert_eq!(snapshot(dir.path()), before, "{stale}: nothing changed");
        let db = AioDiskDb::builder(dir.path())
            .clean_stale_data(true)
            .open()
            .await?;
        assert!(!path.exists(), "{stale} removed");
        assert_eq!(db.read(l).await?.as_deref(), Some(&b"kept"[..]));
        db.stop().await?;
    }
    Ok(())
}

#[tokio::test]
async fn failed_write_refuses_writes_until_reopened() -> TestResult {
    // From the Python suite: a data file appears that the next rollover must create.
    let dir = tempfile::tempdir()?;
    let open = || {
        AioDiskDb::builder(dir.path())
            .max_file_size(124)
            .max_buffer_size(100)
            .flush_interval(HOUR)
            .open()
    };
    let db = open().await?;
    let mut events = db.subscribe();
    let durable = db.add(item(0, 100)).await?;
    db.flush().await?;
    let mut foreign = header(0);
    foreign.extend_from_slice(b"foreign!");
    std::fs::write(dir.path().join("data00001.dat"), &foreign)?;

    let lost = db.add(item(1, 10)).await?;
    assert_eq!((lost.index, lost.position), (1, 0));
    let r = db.flush().await;
    assert!(matches!(r, Err(Error::InvalidDbState { .. })), "{r:?}");
    let failure = next_event(&mut events, |e| match e {
        Event::Failed { error, .. } => Some(error.clone()),
        _ => None,
    })
    .await?;
    assert!(
        matches!(&failure, Error::FilesInconsistency { path, .. } if path.ends_with("data00001.dat")),
        "{failure:?}"
    );
    assert!(!db.is_running());
    assert!(matches!(
        db.add(&b"more"[..]).await,
        Err(Error::InvalidDbState { .. })
    ));
    assert!(matches!(
        db.flush().await,
        Err(Error::InvalidDbState { .. })
    ));
    let mut tx = db.transaction();
    tx.add(&b"tx"[..])?;
    assert!(matches!(
        tx.commit().await,
        Err(Error::InvalidDbState { .. })
    ));
    // Durable data still reads; the foreign file was not touched.
    assert_eq!(db.read(durable).await?, Some(item(0, 100).into()));
    assert_eq!(file_bytes(dir.path(), "data00001.dat"), foreign);
    assert!(db.stop().await.is_err(), "stop reports the failure");

    // Reopening recovers to the last commit; appends take index 1 again.
    let db = open().await?;
    assert_eq!(db.read(durable).await?, Some(item(0, 100).into()));
    assert_eq!(db.read(lost).await?, None, "never persisted");
    let again = db.add(&b"again"[..]).await?;
    assert_eq!(
        again,
        ItemLocation {
            index: 1,
            position: 0,
            size: 5
        }
    );
    db.stop().await?;
    let mut expected = header(0);
    expected.extend_from_slice(b"again");
    assert_eq!(file_bytes(dir.path(), "data00001.dat"), expected);
    Ok(())
}

#[tokio::test]
async fn sigterm_stops_the_database_gracefully() -> TestResult {
    use tokio::signal::unix::{signal, SignalKind};
    // Listening ourselves first replaces SIGTERM's default action (exit) for the whole
    // process, so sending it to ourselves is harmless.
    let mut own = signal(SignalKind::terminate())?;
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .flush_interval(HOUR)
        .open()
        .await?;
    let l = db.add(&b"persist me"[..]).await?;
    let task = db.stop_on_signals();
    // The helper installs its handler asynchronously: signal until it has stopped the db.
    let start = std::time::Instant::now();
    while db.is_running() {
        assert!(start.elapsed() < Duration::from_secs(5), "not stopped");
        let pid = std::process::id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-s", "TERM", &pid])
            .status()?;
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(5), own.recv()).await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::timeout(Duration::from_secs(5), task).await???;
    assert!(matches!(db.add(&b"x"[..]).await, Err(Error::NotRunning)));
    let mut expected = header(0);
    expected.extend_from_slice(b"persist me");
    assert_eq!(file_bytes(dir.path(), "data00000.dat"), expected);
    let db = AioDiskDb::open(dir.path()).await?;
    assert_eq!(db.read(l).await?.as_deref(), Some(&b"persist me"[..]));
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn the_signal_helper_does_not_keep_the_database_open() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .flush_interval(HOUR)
        .open()
        .await?;
    let l = db.add(&b"bye"[..]).await?;
    let task = db.stop_on_signals();
    drop(db);
    let db = reopen(dir.path()).await?;
    assert_eq!(db.read(l).await?.as_deref(), Some(&b"bye"[..]));
    db.stop().await?;
    assert!(!task.is_finished(), "still waiting for a signal");
    task.abort();
    Ok(())
}

#[tokio::test]
async fn is_running_follows_the_lifecycle() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::open(dir.path()).await?;
    assert!(db.is_running());
    assert_eq!(db.path(), dir.path());
    let stopper = {
        let db = db.clone();
        tokio::spawn(async move { db.stop().await })
    };
    stopper.await??;
    eventually("stopped", || !db.is_running()).await?;
    assert!(matches!(db.stop().await, Err(Error::NotRunning)));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_concurrent_adds_keeps_every_acknowledged_item() -> TestResult {
    let dir = tempfile::tempdir()?;
    let open = || {
        AioDiskDb::builder(dir.path())
            .max_file_size(4096)
            .max_buffer_size(256)
            .flush_interval(HOUR)
            .open()
    };
    let db = open().await?;
    let adders: Vec<_> = (0..4u32)
        .map(|t| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for k in 0..100_000u32 {
                    let data = item(t * 100_000 + k, 1 + (k as usize % 100));
                    match db.add(data.clone()).await {
                        Ok(l) => acked.push((l, data)),
                        Err(Error::NotRunning) => return Ok(acked),
                        Err(e) => return Err(e.to_string()),
                    }
                }
                Err("never stopped".to_string())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    db.stop().await?;
    let mut acked = Vec::new();
    for a in adders {
        acked.extend(a.await??);
    }
    assert!(!acked.is_empty());
    let stored: u64 = data_files(dir.path())
        .iter()
        .map(|n| file_len(dir.path(), n) - HEADER_LEN)
        .sum();
    let acked_bytes: u64 = acked.iter().map(|(_, d)| d.len() as u64).sum();
    assert_eq!(
        stored, acked_bytes,
        "exactly the acknowledged items were persisted"
    );
    let db = open().await?;
    for (l, d) in &acked {
        assert_eq!(db.read(*l).await?.as_deref(), Some(&d[..]), "{l}");
    }
    db.stop().await?;
    Ok(())
}

/// A session that changes nothing leaves the directory exactly as it found it, state file
/// included: opening writes no state record (the first change does), and the stop writes
/// none either when the state it found was clean. A session that writes marks the state
/// dirty first and clean at the stop.
#[tokio::test]
async fn a_read_only_session_leaves_the_directory_untouched() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::open(dir.path()).await?;
    let loc = db.add(item(1, 500)).await?;
    db.stop().await?;
    let before = snapshot(dir.path());
    assert!(
        before.contains_key(".aiodiskdb.data.state"),
        "{:?}",
        before.keys()
    );

    // Trims allowed, so that the rejected ones below reach the storage layer.
    let db = AioDiskDb::builder(dir.path())
        .overwrite(true)
        .open()
        .await?;
    assert_eq!(db.read(loc).await?.as_deref(), Some(&item(1, 500)[..]));
    assert_eq!(
        snapshot(dir.path()),
        before,
        "open or read changed the directory"
    );
    // Trims that the storage layer rejects (a safety check that does not match, a range
    // past the end) change nothing either.
    for rejected in [
        db.rtrim(0, 10, b"wrong").await,
        db.ltrim(0, 10, b"wrong").await,
        db.rtrim(0, 501, b"").await,
        db.ltrim(0, 501, b"").await,
    ] {
        match rejected {
            Err(Error::InvalidTrimCommand { .. }) => {}
            other => return Err(format!("expected InvalidTrimCommand, got {other:?}").into()),
        }
    }
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a rejected trim changed the directory"
    );
    db.stop().await?;
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a read-only stop changed the directory"
    );

    // A write changes the state record (and the data file).
    let db = AioDiskDb::open(dir.path()).await?;
    db.add(item(2, 10)).await?;
    db.flush().await?;
    let during = snapshot(dir.path());
    assert_ne!(
        during[".aiodiskdb.data.state"], before[".aiodiskdb.data.state"],
        "the first flush marks the state dirty"
    );
    db.stop().await?;
    let after = snapshot(dir.path());
    assert_ne!(
        after[".aiodiskdb.data.state"],
        during[".aiodiskdb.data.state"]
    );
    Ok(())
}

#[test]
fn a_dead_flusher_fails_every_waiter_at_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    // The flusher lives on `home`, which is left idle after the open: it cannot run, and
    // dropping `home` kills it (its drop-time final flush runs instead).
    let home = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let db = home.block_on(
        AioDiskDb::builder(dir.path())
            .max_buffer_size(10)
            .flush_interval(HOUR)
            .timeout(Duration::from_secs(60))
            .open(),
    )?;
    let waiters = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let first = waiters.block_on(db.add(vec![1u8; 10]))?;
    // Each of these waits for the flusher: the buffer is full.
    let add = waiters.spawn({
        let db = db.clone();
        async move { db.add(vec![2u8; 10]).await.map(drop) }
    });
    let flush = waiters.spawn({
        let db = db.clone();
        async move { db.flush().await }
    });
    let persisted = waiters.spawn({
        let db = db.clone();
        async move { db.wait_persisted(first).await }
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !add.is_finished() && !flush.is_finished() && !persisted.is_finished(),
        "the waiters wait for the flusher"
    );
    drop(home);
    let started = std::time::Instant::now();
    waiters.block_on(async {
        for (what, waiter) in [
            ("add", add),
            ("flush", flush),
            ("wait_persisted", persisted),
        ] {
            let outcome = tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .unwrap_or_else(|_| panic!("{what} still waits 5 s after the flusher died"));
            assert!(
                matches!(outcome, Ok(Err(Error::NotRunning))),
                "{what}: expected NotRunning, got {outcome:?}"
            );
        }
        assert!(matches!(db.stop().await, Err(Error::NotRunning)));
        assert!(matches!(db.add(&b"late"[..]).await, Err(Error::NotRunning)));
    });
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(db);
    // The item added before the death was persisted by the final flush.
    waiters.block_on(async {
        let db = reopen(dir.path()).await?;
        assert_eq!(db.read(first).await?, Some(vec![1u8; 10].into()));
        db.stop().await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}

#[tokio::test]
async fn reopening_at_once_after_dropping_the_last_handle_waits_for_its_final_flush() -> TestResult
{
    const ITEM: usize = 64 << 10;
    // 200 MiB, persisted only by the drop-time stop: a final flush of well over the 100 ms
    // that `open` used to retry the lock for (about 70 ms per 50 MiB here).
    const ITEMS: u32 = 3200;
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(256 << 20)
        .max_buffer_size(256 << 20)
        .max_buffer_items(100_000)
        .flush_interval(HOUR)
        .open()
        .await?;
    let mut locs = Vec::new();
    for tag in 0..ITEMS {
        locs.push(db.add(item(tag, ITEM)).await?);
    }
    drop(db);
    // No retry: the open must wait for the closing handle, not report `Locked`.
    let db = AioDiskDb::open(dir.path()).await?;
    for (tag, l) in (0..ITEMS).zip(&locs) {
        assert_eq!(db.read(*l).await?, Some(item(tag, ITEM).into()), "{l}");
    }
    db.stop().await?;
    Ok(())
}
