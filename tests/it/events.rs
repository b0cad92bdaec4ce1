//! Events on the broadcast channel and the builder's hooks: what fires, when, with what.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aiodiskdb::{AioDiskDb, Error, Event, WriteEvent};
use rand::{Rng, SeedableRng};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::common::{eventually, file_len, header, item, next_event, TestResult, HEADER_LEN};

const HOUR: Duration = Duration::from_secs(3600);

fn written(index: u32, position: u32, size: u32) -> WriteEvent {
    WriteEvent {
        index,
        position,
        size,
    }
}

/// Events as comparable text.
fn describe(e: &Event) -> String {
    match e {
        Event::Started { .. } => "started".into(),
        Event::Stopped { .. } => "stopped".into(),
        Event::Failed { error, .. } => format!("failed: {error}"),
        Event::Written { event: w, .. } => {
            format!("written {}:{}:{}", w.index, w.position, w.size)
        }
        Event::IndexDropped { index, size, .. } => format!("dropped {index} ({size} bytes)"),
        other => format!("{other:?}"),
    }
}

fn drain(rx: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e) => out.push(describe(&e)),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return out,
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn subscribers_see_writes_drops_and_the_stop() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(24 + 10)
        .max_buffer_size(10)
        .flush_interval(HOUR)
        .overwrite(true)
        .open()
        .await?;
    let mut rx = db.subscribe();
    db.add(&b"test_1"[..]).await?;
    db.add(&b"test"[..]).await?;
    db.add(&b"test_2"[..]).await?;
    db.flush().await?;
    let mut tx = db.transaction();
    tx.add(&b"tx"[..])?;
    tx.add(&b"tx"[..])?;
    tx.commit().await?;
    db.drop_index(0).await?;
    db.stop().await?;
    assert_eq!(
        drain(&mut rx),
        vec![
            "written 0:0:10",
            "written 1:0:6",
            "written 1:6:4",
            "dropped 0 (10 bytes)",
            "stopped",
        ]
    );
    Ok(())
}

#[tokio::test]
async fn buffered_items_are_reported_before_the_transaction() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .flush_interval(HOUR)
        .open()
        .await?;
    let mut rx = db.subscribe();
    db.add(&b"data1"[..]).await?;
    let mut tx = db.transaction();
    tx.add(&b"data2"[..])?;
    tx.add(&b"data3"[..])?;
    tx.commit().await?;
    let first = next_event(&mut rx, |e| match e {
        Event::Written { event, .. } => Some(*event),
        _ => None,
    })
    .await?;
    let second = next_event(&mut rx, |e| match e {
        Event::Written { event, .. } => Some(*event),
        _ => None,
    })
    .await?;
    assert_eq!((first, second), (written(0, 0, 5), written(0, 5, 10)));
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn builder_hooks_are_called() -> TestResult {
    let dir = tempfile::tempdir()?;
    let log: Arc<Mutex<Vec<(SystemTime, String)>>> = Arc::default();
    let push = |log: &Arc<Mutex<Vec<(SystemTime, String)>>>, at, what: String| {
        log.lock().unwrap().push((at, what));
    };
    let (l1, l2, l3, l4) = (log.clone(), log.clone(), log.clone(), log.clone());
    let before = SystemTime::now();
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(24 + 10)
        .max_buffer_size(10)
        .flush_interval(HOUR)
        .overwrite(true)
        .on_start(move |at| {
            push(&l1, at, "start".into());
            async {}
        })
        .on_write(move |at, w| {
            push(
                &l2,
                at,
                format!("write {}:{}:{}", w.index, w.position, w.size),
            );
            async {}
        })
        .on_index_drop(move |at, index, size| {
            let log = l3.clone();
            // Hooks are async: the dispatcher awaits them.
            async move {
                tokio::task::yield_now().await;
                log.lock()
                    .unwrap()
                    .push((at, format!("drop {index} {size}")));
            }
        })
        .on_stop(move |at| {
            push(&l4, at, "stop".into());
            async {}
        })
        .on_failure(|_, e| async move { panic!("unexpected failure: {e}") })
        .open()
        .await?;
    db.add(vec![1u8; 10]).await?;
    db.add(vec![2u8; 4]).await?;
    db.flush().await?;
    assert_eq!(db.drop_index(0).await?, 10);
    db.stop().await?;
    eventually("the stop hook", || {
        log.lock().unwrap().iter().any(|(_, w)| w == "stop")
    })
    .await?;
    let after = SystemTime::now();
    let log = log.lock().unwrap().clone();
    let names: Vec<&str> = log.iter().map(|(_, w)| w.as_str()).collect();
    assert_eq!(
        names,
        vec!["start", "write 0:0:10", "write 1:0:4", "drop 0 10", "stop"]
    );
    for (at, what) in &log {
        assert!(*at >= before && *at <= after, "{what} at {at:?}");
    }
    assert!(log.windows(2).all(|w| w[0].0 <= w[1].0), "in time order");
    Ok(())
}

#[tokio::test]
async fn the_failure_hook_and_event_report_a_failed_write() -> TestResult {
    let dir = tempfile::tempdir()?;
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = failures.clone();
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(24 + 10)
        .max_buffer_size(10)
        .flush_interval(HOUR)
        .on_failure(move |_, e| {
            seen.lock().unwrap().push(e.to_string());
            async {}
        })
        .open()
        .await?;
    let mut rx = db.subscribe();
    db.add(vec![1u8; 10]).await?;
    db.flush().await?;
    std::fs::write(dir.path().join("data00001.dat"), header(0))?;
    db.add(vec![2u8; 1]).await?;
    assert!(db.flush().await.is_err());
    let failed = next_event(&mut rx, |e| match e {
        Event::Failed { error, .. } => Some(error.clone()),
        Event::Written { event, .. } if event.index == 1 => {
            panic!("written {event:?}: the failed write was reported")
        }
        _ => None,
    })
    .await?;
    assert!(
        matches!(failed, Error::FilesInconsistency { .. }),
        "{failed}"
    );
    eventually("the failure hook", || failures.lock().unwrap().len() == 1).await?;
    assert!(failures.lock().unwrap()[0].contains("data00001.dat"));
    let _ = db.stop().await;
    Ok(())
}

#[tokio::test]
async fn written_events_cover_exactly_the_added_bytes_in_order() -> TestResult {
    const MAX_FILE: u64 = 24 + 500;
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(MAX_FILE)
        .max_buffer_size(200)
        .max_buffer_items(7)
        .durability(aiodiskdb::Durability::Os)
        .open()
        .await?;
    let mut rx = db.subscribe();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut ranges = Vec::new();
    for tag in 0..300u32 {
        if tag % 50 == 49 {
            let mut tx = db.transaction();
            for k in 0..4 {
                tx.add(item(tag * 10 + k, rng.gen_range(1..=400)))?;
            }
            ranges.extend(tx.commit().await?);
        } else {
            ranges.push(db.add(item(tag, rng.gen_range(1..=200))).await?);
        }
    }
    db.stop().await?;

    let mut events = Vec::new();
    loop {
        match rx.recv().await? {
            Event::Written { event, .. } => {
                let len = file_len(dir.path(), &format!("data{:05}.dat", event.index));
                assert!(len >= HEADER_LEN + u64::from(event.position) + u64::from(event.size));
                events.push(event);
            }
            Event::Stopped { .. } => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    // In order, without gaps or overlaps, and covering the items exactly.
    let mut at = (0u32, 0u32);
    for e in &events {
        assert!(e.size > 0);
        if e.index == at.0 {
            assert_eq!(e.position, at.1, "{e:?} continues {at:?}");
        } else {
            assert_eq!((e.index, e.position), (at.0 + 1, 0), "{e:?} after {at:?}");
        }
        at = (e.index, e.position + e.size);
    }
    let last = ranges.last().expect("items");
    assert_eq!(at, (last.index, last.position + last.size));
    let event_bytes: u64 = events.iter().map(|e| u64::from(e.size)).sum();
    let item_bytes: u64 = ranges.iter().map(|l| u64::from(l.size)).sum();
    assert_eq!(event_bytes, item_bytes);
    assert!(
        events.len() < ranges.len(),
        "ranges, not items, are reported"
    );
    Ok(())
}

#[tokio::test]
async fn a_lagging_subscriber_never_slows_the_database() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .flush_interval(HOUR)
        .durability(aiodiskdb::Durability::Os)
        .open()
        .await?;
    let mut idle = db.subscribe();
    // Each flush of one item is one Written event: more than the channel holds.
    let mut last = None;
    for tag in 0..4200u32 {
        last = Some(db.add(item(tag, 3)).await?);
        db.flush().await?;
    }
    let last = last.expect("added");
    assert_eq!((last.index, last.position), (0, 4199 * 3));
    match idle.recv().await {
        Err(RecvError::Lagged(n)) => assert!(n > 0),
        other => panic!("expected Lagged, got {other:?}"),
    }
    // The receiver resumes with the newest events.
    let mut newest = None;
    while let Ok(e) = idle.try_recv() {
        if let Event::Written { event, .. } = e {
            newest = Some(event);
        }
    }
    assert_eq!(newest, Some(written(0, last.position, 3)));
    assert_eq!(db.read(last).await?, Some(item(4199, 3).into()));
    db.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_hook_sees_every_persisted_byte_once_in_order() -> TestResult {
    // More flushes than the broadcast channel holds, each one Written event.
    const FLUSHES: u32 = 5000;
    let dir = tempfile::tempdir()?;
    let log: Arc<Mutex<Vec<Option<WriteEvent>>>> = Arc::default();
    // Holds the hook until every flush is done: the database must not wait for it.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (writes, stops, held) = (log.clone(), log.clone(), gate.clone());
    let db = AioDiskDb::builder(dir.path())
        .flush_interval(HOUR)
        .durability(aiodiskdb::Durability::Os)
        .on_write(move |_, w| {
            let (log, gate) = (writes.clone(), held.clone());
            async move {
                // Fails at once when the gate is closed.
                let _ = gate.acquire().await;
                tokio::time::sleep(Duration::from_millis(1)).await;
                log.lock().unwrap().push(Some(w));
            }
        })
        .on_stop(move |_| {
            stops.lock().unwrap().push(None);
            async {}
        })
        .open()
        .await?;
    let mut locs = Vec::new();
    for tag in 0..FLUSHES {
        locs.push(db.add(item(tag, 1 + tag as usize % 40)).await?);
        db.flush().await?;
    }
    assert!(log.lock().unwrap().is_empty(), "the hook is still held");
    gate.close();
    db.stop().await?;
    let start = std::time::Instant::now();
    while log.lock().unwrap().last() != Some(&None) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "on_stop did not run; {} writes seen",
            log.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = log.lock().unwrap().clone();
    let (stop, seen) = log.split_last().expect("on_stop ran");
    assert_eq!(*stop, None);
    let seen: Vec<WriteEvent> = seen
        .iter()
        .map(|w| w.expect("writes before the stop"))
        .collect();
    // One call per flush (nothing merged below the queue's threshold), in order.
    let expected: Vec<WriteEvent> = locs
        .iter()
        .map(|l| written(l.index, l.position, l.size))
        .collect();
    assert_eq!(seen.len(), expected.len(), "every write, once");
    assert_eq!(seen, expected);
    let seen_bytes: u64 = seen.iter().map(|w| u64::from(w.size)).sum();
    let added: u64 = locs.iter().map(|l| u64::from(l.size)).sum();
    assert_eq!(seen_bytes, added);
    assert!(seen
        .windows(2)
        .all(|p| p[1].index != p[0].index || p[1].position == p[0].position + p[0].size));
    Ok(())
}
