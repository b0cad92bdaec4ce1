//! Transactions: staged invisibly, committed contiguously and durably, all or nothing.

use std::time::Duration;

use aiodiskdb::{AioDiskDb, Error, ItemLocation};

use crate::common::{data_files, file_bytes, file_len, header, item, TestResult, HEADER_LEN};

const HOUR: Duration = Duration::from_secs(3600);
const DATA0: &str = "data00000.dat";

fn loc(index: u32, position: u32, size: u32) -> ItemLocation {
    ItemLocation {
        index,
        position,
        size,
    }
}

#[tokio::test]
async fn staged_items_are_invisible_until_commit() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .flush_interval(HOUR)
        .open()
        .await?;
    let first = db.add(&b"data1"[..]).await?;
    let mut tx = db.transaction();
    tx.add(&b"data2"[..])?;
    tx.add(&b"data33"[..])?;
    assert_eq!((tx.len(), tx.size(), tx.is_empty()), (2, 11, false));
    // Where the items will go, guessed from the current end.
    for guess in [loc(0, 5, 5), loc(0, 10, 6), loc(0, 5, 11)] {
        assert_eq!(db.read(guess).await?, None, "{guess} before commit");
    }
    assert_eq!(file_len(dir.path(), DATA0), HEADER_LEN);
    let locs = tx.commit().await?;
    assert_eq!(locs, vec![loc(0, 5, 5), loc(0, 10, 6)]);
    assert_eq!(db.read(locs[0]).await?.as_deref(), Some(&b"data2"[..]));
    assert_eq!(db.read(locs[1]).await?.as_deref(), Some(&b"data33"[..]));
    // The Python suite reads the buffered item and the transaction as one range.
    let all = ItemLocation { size: 16, ..first };
    assert_eq!(
        db.read(all).await?.as_deref(),
        Some(&b"data1data2data33"[..])
    );
    let mut expected = header(0);
    expected.extend_from_slice(b"data1data2data33");
    assert_eq!(file_bytes(dir.path(), DATA0), expected);
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn commit_is_durable_on_return() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .flush_interval(HOUR)
        .open()
        .await?;
    let buffered = db.add(item(0, 30)).await?;
    let mut tx = db.transaction();
    tx.add(item(1, 40))?;
    tx.add(item(2, 50))?;
    let locs = tx.commit().await?;
    assert_eq!(locs, vec![loc(0, 30, 40), loc(0, 70, 50)]);
    // No flush, no stop: the buffered item and the transaction are on disk already.
    let mut expected = header(0);
    for tag in 0..3 {
        expected.extend_from_slice(&item(tag, [30, 40, 50][tag as usize]));
    }
    assert_eq!(file_bytes(dir.path(), DATA0), expected);
    let next = db.add(item(3, 5)).await?;
    assert_eq!(
        next,
        loc(0, 120, 5),
        "appends continue after the transaction"
    );
    db.stop().await?;

    let db = AioDiskDb::open(dir.path()).await?;
    assert_eq!(db.read(buffered).await?, Some(item(0, 30).into()));
    assert_eq!(db.read(locs[0]).await?, Some(item(1, 40).into()));
    assert_eq!(db.read(locs[1]).await?, Some(item(2, 50).into()));
    assert_eq!(db.read(next).await?, Some(item(3, 5).into()));
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn commit_rolls_over_files_and_accepts_items_above_the_buffer_size() -> TestResult {
    const MAX_FILE: u64 = 124; // 100 item bytes per file
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(MAX_FILE)
        .max_buffer_size(50)
        .flush_interval(HOUR)
        .open()
        .await?;
    let a = db.add(item(0, 30)).await?;
    assert!(matches!(
        db.add(item(1, 60)).await,
        Err(Error::ItemTooLarge {
            size: 60,
            limit: 50
        })
    ));
    let mut tx = db.transaction();
    for tag in 1..=4 {
        tx.add(item(tag, 60))?; // above max_buffer_size, within a file
    }
    tx.add(item(5, 100))?; // a whole file
    tx.add(item(6, 1))?;
    let locs = tx.commit().await?;
    assert_eq!(a, loc(0, 0, 30));
    assert_eq!(
        locs,
        vec![
            loc(0, 30, 60),
            loc(1, 0, 60),
            loc(2, 0, 60),
            loc(3, 0, 60),
            loc(4, 0, 100),
            loc(5, 0, 1),
        ]
    );
    assert_eq!(
        data_files(dir.path()),
        (0..=5)
            .map(|i| format!("data{i:05}.dat"))
            .collect::<Vec<_>>()
    );
    let contents: [&[u32]; 6] = [&[0, 1], &[2], &[3], &[4], &[5], &[6]];
    let sizes = [30, 60, 60, 60, 60, 100, 1];
    for (index, tags) in contents.iter().enumerate() {
        let mut expected = header(0);
        for &t in *tags {
            expected.extend_from_slice(&item(t, sizes[t as usize]));
        }
        let name = format!("data{index:05}.dat");
        let got = file_bytes(dir.path(), &name);
        assert!(got.len() as u64 <= MAX_FILE);
        assert_eq!(got, expected, "{name}");
    }
    for (tag, l) in (1..=6).zip(&locs) {
        assert_eq!(
            db.read(*l).await?,
            Some(item(tag, sizes[tag as usize]).into())
        );
    }
    assert_eq!(db.add(item(7, 2)).await?, loc(5, 1, 2));
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn bad_transactions_are_rejected() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(124)
        .max_buffer_size(50)
        .open()
        .await?;
    assert!(matches!(
        db.transaction().commit().await,
        Err(Error::EmptyTransaction)
    ));
    let mut tx = db.transaction();
    assert!(matches!(tx.add(Vec::new()), Err(Error::EmptyPayload)));
    match tx.add(vec![0u8; 101]) {
        Err(Error::ItemTooLarge { size, limit }) => assert_eq!((size, limit), (101, 100)),
        other => panic!("expected ItemTooLarge, got {other:?}"),
    }
    assert!(tx.is_empty(), "rejected items are not staged");
    assert!(matches!(tx.commit().await, Err(Error::EmptyTransaction)));
    let mut tx = db.transaction();
    tx.add(vec![9u8; 100])?;
    assert_eq!(tx.commit().await?, vec![loc(0, 0, 100)]);
    assert_eq!(file_len(dir.path(), DATA0), 124);
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn dropping_a_transaction_discards_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .flush_interval(HOUR)
        .open()
        .await?;
    {
        let mut tx = db.transaction();
        tx.add(&b"never"[..])?;
        tx.add(&b"written"[..])?;
    }
    db.flush().await?;
    assert_eq!(file_len(dir.path(), DATA0), HEADER_LEN);
    let a = db.add(&b"kept"[..]).await?;
    assert_eq!(a, loc(0, 0, 4), "the dropped items took no space");
    db.stop().await?;
    let mut expected = header(0);
    expected.extend_from_slice(b"kept");
    assert_eq!(file_bytes(dir.path(), DATA0), expected);
    Ok(())
}

#[tokio::test]
async fn adds_during_a_commit_land_after_the_transaction() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .flush_interval(HOUR)
        .open()
        .await?;
    let before = db.add(&b"before"[..]).await?;
    let mut tx = db.transaction();
    for tag in 0..8 {
        tx.add(item(tag, 1000))?;
    }
    let commit = tokio::spawn(tx.commit());
    // Let the commit reach the flusher and start (this runtime has one thread).
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let during = db.add(&b"during"[..]).await?;
    let locs = commit.await??;
    let after = db.add(&b"after"[..]).await?;
    assert_eq!(before, loc(0, 0, 6));
    let tx_start = 6;
    for (k, l) in (0u32..).zip(&locs) {
        assert_eq!(*l, loc(0, tx_start + 1000 * k, 1000), "item {k}");
    }
    assert_eq!(during, loc(0, 8006, 6), "waited for the commit");
    assert_eq!(after, loc(0, 8012, 5));
    db.flush().await?;
    let mut expected = header(0);
    expected.extend_from_slice(b"before");
    for tag in 0..8 {
        expected.extend_from_slice(&item(tag, 1000));
    }
    expected.extend_from_slice(b"duringafter");
    assert_eq!(file_bytes(dir.path(), DATA0), expected);
    db.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_and_commits_never_interleave() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(4096)
        .max_buffer_size(512)
        .durability(aiodiskdb::Durability::Os)
        .open()
        .await?;
    let adder = {
        let db = db.clone();
        tokio::spawn(async move {
            let mut out = Vec::new();
            for tag in 0..300u32 {
                let data = item(tag, 1 + (tag as usize * 7) % 64);
                out.push((db.add(data.clone()).await?, data));
            }
            Ok::<_, Error>(out)
        })
    };
    let mut txs = Vec::new();
    for t in 0..20u32 {
        let mut tx = db.transaction();
        let items: Vec<Vec<u8>> = (0..5).map(|k| item(10_000 + t * 10 + k, 100)).collect();
        for i in &items {
            tx.add(i.clone())?;
        }
        let locs = tx.commit().await?;
        txs.push(locs.into_iter().zip(items).collect::<Vec<_>>());
    }
    let adds = adder.await??;
    for tx in &txs {
        // One transaction is one contiguous run (file changes aside).
        for w in tx.windows(2) {
            let (a, b) = (w[0].0, w[1].0);
            assert!(
                (b.index == a.index && u64::from(b.position) == a.end())
                    || (b.index == a.index + 1 && b.position == 0),
                "{a} then {b}"
            );
        }
        for (l, _) in &adds {
            for (t, _) in tx {
                let overlap = l.index == t.index
                    && l.position < t.position + t.size
                    && t.position < l.position + l.size;
                assert!(!overlap, "add {l} overlaps transaction item {t}");
            }
        }
    }
    for (l, d) in adds.iter().chain(txs.iter().flatten()) {
        assert_eq!(db.read(*l).await?.as_deref(), Some(&d[..]), "{l}");
    }
    db.stop().await?;
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(4096)
        .max_buffer_size(512)
        .open()
        .await?;
    for (l, d) in adds.iter().chain(txs.iter().flatten()) {
        assert_eq!(db.read(*l).await?.as_deref(), Some(&d[..]), "reopened {l}");
    }
    db.stop().await?;
    Ok(())
}
