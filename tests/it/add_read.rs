//! `add` and `read`: locations, where reads are served from, what reads `None`, the item
//! limits and the rollover to new files.

use std::time::Duration;

use aiodiskdb::{AioDiskDb, Error, ItemLocation};
use rand::{Rng, SeedableRng};

use crate::common::{data_files, file_bytes, file_len, header, item, TestResult, HEADER_LEN};

fn loc(index: u32, position: u32, size: u32) -> ItemLocation {
    ItemLocation {
        index,
        position,
        size,
    }
}

#[tokio::test]
async fn add_returns_contiguous_locations_in_one_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::open(dir.path()).await?;
    let a = db.add(&b"test_1"[..]).await?;
    let b = db.add(&b"test_22"[..]).await?;
    let c = db.add(vec![7u8; 3]).await?;
    assert_eq!(a, loc(0, 0, 6));
    assert_eq!(b, loc(0, 6, 7));
    assert_eq!(c, loc(0, 13, 3));
    db.flush().await?;
    let mut expected = header(0);
    expected.extend_from_slice(b"test_1test_22\x07\x07\x07");
    assert_eq!(file_bytes(dir.path(), "data00000.dat"), expected);
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn reads_come_from_ram_before_the_flush() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .flush_interval(Duration::from_secs(3600))
        .open()
        .await?;
    let a = db.add(&b"test_1"[..]).await?;
    let b = db.add(&b"test_2"[..]).await?;
    assert_eq!(
        file_len(dir.path(), "data00000.dat"),
        HEADER_LEN,
        "nothing on disk yet"
    );
    assert_eq!(db.read(a).await?.as_deref(), Some(&b"test_1"[..]));
    assert_eq!(db.read(b).await?.as_deref(), Some(&b"test_2"[..]));
    // A range over two buffered items is stored bytes too.
    assert_eq!(
        db.read(loc(0, 3, 6)).await?.as_deref(),
        Some(&b"t_1tes"[..])
    );
    assert_eq!(file_len(dir.path(), "data00000.dat"), HEADER_LEN);
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn reads_come_from_disk_after_flush_and_after_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::open(dir.path()).await?;
    let a = db.add(&b"test_1"[..]).await?;
    let b = db.add(&b"test_2"[..]).await?;
    db.flush().await?;
    assert_eq!(file_len(dir.path(), "data00000.dat"), HEADER_LEN + 12);
    assert_eq!(db.read(a).await?.as_deref(), Some(&b"test_1"[..]));
    assert_eq!(db.read(b).await?.as_deref(), Some(&b"test_2"[..]));
    // The transaction test of the Python suite: a location grown to cover the next items
    // reads them back contiguously.
    assert_eq!(
        db.read(loc(0, 0, 12)).await?.as_deref(),
        Some(&b"test_1test_2"[..])
    );
    db.stop().await?;

    let db = AioDiskDb::open(dir.path()).await?;
    assert_eq!(db.read(b).await?.as_deref(), Some(&b"test_2"[..]));
    assert_eq!(db.read(b).await?.as_deref(), Some(&b"test_2"[..]), "cached");
    assert_eq!(db.read(a).await?.as_deref(), Some(&b"test_1"[..]));
    let c = db.add(&b"test_3"[..]).await?;
    assert_eq!(c, loc(0, 12, 6), "appends continue after the stored items");
    db.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_during_flushes_always_see_the_item() -> TestResult {
    // Items move from the active buffer to the flushing batch to the file while readers
    // look: every read must return the item, whichever of the three serves it.
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_buffer_size(64 << 10)
        .durability(aiodiskdb::Durability::Os)
        .open()
        .await?;
    for round in 0..20u32 {
        let mut written = Vec::new();
        for k in 0..20u32 {
            let data = item(round * 100 + k, 1000 + k as usize);
            written.push((db.add(data.clone()).await?, data));
        }
        let flusher = {
            let db = db.clone();
            tokio::spawn(async move { db.flush().await })
        };
        for (l, d) in &written {
            assert_eq!(db.read(*l).await?.as_deref(), Some(&d[..]), "{l}");
        }
        flusher.await??;
        for (l, d) in &written {
            assert_eq!(db.read(*l).await?.as_deref(), Some(&d[..]), "{l}");
        }
    }
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn locations_not_stored_read_none() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .flush_interval(Duration::from_secs(3600))
        .open()
        .await?;
    let a = db.add(vec![1u8; 10]).await?;
    assert_eq!(a, loc(0, 0, 10));
    let probes = [
        ("missing index", loc(99, 0, 10)),
        ("next index", loc(1, 0, 1)),
        ("position past the end", loc(0, 10, 1)),
        ("far past the end", loc(0, 1000, 5)),
        ("straddles the end", loc(0, 5, 6)),
        ("size zero", loc(0, 0, 0)),
        ("size zero at the end", loc(0, 10, 0)),
        ("overflowing range", loc(0, u32::MAX, u32::MAX)),
    ];
    for (what, l) in probes {
        assert_eq!(db.read(l).await?, None, "in RAM: {what}");
    }
    db.flush().await?;
    for (what, l) in probes {
        assert_eq!(db.read(l).await?, None, "on disk: {what}");
    }
    assert_eq!(db.read(loc(0, 5, 5)).await?.as_deref(), Some(&[1u8; 5][..]));
    db.stop().await?;
    let db = AioDiskDb::open(dir.path()).await?;
    for (what, l) in probes {
        assert_eq!(db.read(l).await?, None, "after reopen: {what}");
    }
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn empty_payload_is_rejected() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::open(dir.path()).await?;
    assert!(matches!(db.add(Vec::new()).await, Err(Error::EmptyPayload)));
    assert!(matches!(db.add(&b""[..]).await, Err(Error::EmptyPayload)));
    let a = db.add(&b"x"[..]).await?;
    assert_eq!(a, loc(0, 0, 1), "the rejected items took no space");
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn item_larger_than_the_buffer_is_rejected() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(1000)
        .max_buffer_size(100)
        .open()
        .await?;
    match db.add(vec![0u8; 101]).await {
        Err(Error::ItemTooLarge { size, limit }) => assert_eq!((size, limit), (101, 100)),
        other => panic!("expected ItemTooLarge, got {other:?}"),
    }
    let a = db.add(vec![5u8; 100]).await?;
    assert_eq!(a, loc(0, 0, 100), "exactly max_buffer_size is accepted");
    db.flush().await?;
    assert_eq!(file_len(dir.path(), "data00000.dat"), HEADER_LEN + 100);
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn item_must_fit_a_fresh_file() -> TestResult {
    // max_buffer_size may equal max_file_size, but a file also holds its header.
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(100)
        .max_buffer_size(100)
        .open()
        .await?;
    match db.add(vec![0u8; 77]).await {
        Err(Error::ItemTooLarge { size, limit }) => assert_eq!((size, limit), (77, 76)),
        other => panic!("expected ItemTooLarge, got {other:?}"),
    }
    assert_eq!(db.add(vec![1u8; 76]).await?, loc(0, 0, 76));
    db.flush().await?;
    assert_eq!(file_len(dir.path(), "data00000.dat"), 100);
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn rollover_never_exceeds_max_file_size() -> TestResult {
    const MAX_FILE: u64 = 124; // 100 item bytes per file
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(MAX_FILE)
        .max_buffer_size(60)
        .open()
        .await?;
    // Exactly filling a file keeps the item in it; one byte more starts the next index.
    let a = db.add(item(1, 60)).await?;
    let b = db.add(item(2, 40)).await?;
    let c = db.add(item(3, 1)).await?;
    assert_eq!((a, b, c), (loc(0, 0, 60), loc(0, 60, 40), loc(1, 0, 1)));

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut written = vec![(a, item(1, 60)), (b, item(2, 40)), (c, item(3, 1))];
    for tag in 4..300u32 {
        let data = item(tag, rng.gen_range(1..=60));
        let l = db.add(data.clone()).await?;
        let prev = written.last().expect("not empty").0;
        if l.index == prev.index {
            assert_eq!(u64::from(l.position), prev.end(), "contiguous in a file");
        } else {
            assert_eq!((l.index, l.position), (prev.index + 1, 0), "next file");
            assert!(
                HEADER_LEN + prev.end() + u64::from(l.size) > MAX_FILE,
                "{l} would have fitted after {prev}"
            );
        }
        assert!(HEADER_LEN + l.end() <= MAX_FILE, "{l} straddles files");
        written.push((l, data));
    }
    db.flush().await?;

    let last = written.last().expect("not empty").0.index;
    let names = data_files(dir.path());
    assert_eq!(names.len(), last as usize + 1);
    for index in 0..=last {
        let name = format!("data{index:05}.dat");
        let mut expected = header(0);
        for (_, d) in written.iter().filter(|(l, _)| l.index == index) {
            expected.extend_from_slice(d);
        }
        let got = file_bytes(dir.path(), &name);
        assert!(
            got.len() as u64 <= MAX_FILE,
            "{name} is {} bytes",
            got.len()
        );
        assert_eq!(got, expected, "{name}");
    }
    for (l, d) in &written {
        assert_eq!(db.read(*l).await?.as_deref(), Some(&d[..]), "{l}");
    }
    db.stop().await?;

    let db = AioDiskDb::builder(dir.path())
        .max_file_size(MAX_FILE)
        .max_buffer_size(60)
        .open()
        .await?;
    for (l, d) in &written {
        assert_eq!(
            db.read(*l).await?.as_deref(),
            Some(&d[..]),
            "after reopen {l}"
        );
    }
    db.stop().await?;
    Ok(())
}

#[test]
fn item_location_encodings() -> TestResult {
    let l = loc(3, 0x0102_0304, 1024);
    let bytes = l.to_bytes();
    assert_eq!(
        bytes,
        [3, 0, 0, 0, 0x04, 0x03, 0x02, 0x01, 0x00, 0x04, 0, 0],
        "index, position, size as u32 little endian"
    );
    assert_eq!(ItemLocation::from_bytes(&bytes)?, l);
    for bad in [&bytes[..11], &[0u8; 13][..], &[][..]] {
        assert!(
            matches!(
                ItemLocation::from_bytes(bad),
                Err(Error::InvalidLocation { .. })
            ),
            "{} bytes",
            bad.len()
        );
    }
    assert_eq!(l.to_string(), "3:16909060:1024");
    assert_eq!("3:16909060:1024".parse::<ItemLocation>()?, l);
    assert_eq!(
        "4294967295:0:1".parse::<ItemLocation>()?,
        loc(u32::MAX, 0, 1)
    );
    for bad in [
        "",
        "3:4",
        "3:4:5:6",
        "a:4:5",
        "3:-4:5",
        "3:4:4294967296",
        "3;4;5",
    ] {
        assert!(bad.parse::<ItemLocation>().is_err(), "{bad:?}");
    }
    assert_eq!(l.end(), 0x0102_0304 + 1024);
    assert!(loc(0, 9, 1) < loc(1, 0, 1), "ordered by index first");
    assert!(loc(1, 0, 5) < loc(1, 5, 1), "then by position");
    Ok(())
}

/// A read of an item that the page cache holds, from a file already open for reads, does
/// not hop to a blocking thread: with the runtime's only blocking thread held, 1,000 such
/// reads still complete (they would wait forever for the thread otherwise).
#[test]
fn cached_reads_do_not_need_a_blocking_thread() -> TestResult {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let db = AioDiskDb::open(dir.path()).await?;
        let mut locs = Vec::new();
        for i in 0..1000 {
            locs.push(db.add(item(i, 100)).await?);
        }
        db.stop().await?;
        // Just written: the page cache holds every byte.
        let db = AioDiskDb::open(dir.path()).await?;
        // The first read opens the file for reading, on a blocking thread.
        assert_eq!(db.read(locs[0]).await?.as_deref(), Some(&item(0, 100)[..]));

        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, has_started) = tokio::sync::oneshot::channel();
        let blocker = tokio::task::spawn_blocking(move || {
            let _ = started.send(());
            let _ = held.recv();
        });
        has_started.await?;
        let reads = async {
            for (i, loc) in (0u32..).zip(&locs) {
                if db.read(*loc).await?.as_deref() != Some(&item(i, 100)[..]) {
                    return Err(format!("read {i} returned the wrong bytes").into());
                }
            }
            TestResult::Ok(())
        };
        let outcome = tokio::time::timeout(Duration::from_secs(20), reads).await;
        drop(release);
        blocker.await?;
        outcome.map_err(|_| "cached reads waited for the held blocking thread")??;
        db.stop().await?;
        Ok(())
    })
}

/// A batch larger than the 1 MiB writeback piece is written in pieces whose boundaries fall
/// inside items: every byte reads back, from RAM, from the page cache and after reopen.
#[tokio::test]
async fn batches_larger_than_a_writeback_piece_read_back_whole() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::open(dir.path()).await?;
    let mut locs = Vec::new();
    for i in 0..7 {
        locs.push(db.add(item(i, 700 * 1024 + 13 * i as usize)).await?);
    }
    db.flush().await?;
    for (i, loc) in (0..).zip(&locs) {
        assert_eq!(
            db.read(*loc).await?.as_deref(),
            Some(&item(i, 700 * 1024 + 13 * i as usize)[..])
        );
    }
    db.stop().await?;
    let expected: u64 = (0..7u64).map(|i| 700 * 1024 + 13 * i).sum();
    assert_eq!(file_len(dir.path(), "data00000.dat"), HEADER_LEN + expected);
    let db = AioDiskDb::open(dir.path()).await?;
    for (i, loc) in (0..).zip(&locs) {
        assert_eq!(
            db.read(*loc).await?.as_deref(),
            Some(&item(i, 700 * 1024 + 13 * i as usize)[..])
        );
    }
    db.stop().await?;
    Ok(())
}

/// Under back pressure, adds are placed in the order they were made: those waiting for
/// buffer space in the order they began to wait, and an add made while others wait queues
/// behind them, so a large item is not passed by smaller ones made after it. (The Python
/// library kept call order; before, small adds made later took the room a flush freed
/// ahead of a large one waiting.)
#[tokio::test]
async fn adds_under_back_pressure_are_placed_in_the_order_they_were_made() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(1 << 20)
        .max_buffer_size(16 << 10)
        .max_buffer_items(1000)
        .open()
        .await?;
    let sizes: Vec<usize> = (0..400)
        .map(|i| if i % 10 == 0 { 12 << 10 } else { 1 + i % 700 })
        .collect();
    let data = |i: usize| vec![u8::try_from(i % 251).expect("small"); sizes[i]];
    // Made in order (the futures are first polled in order), all at once.
    let adds = (0..sizes.len()).map(|i| {
        let db = db.clone();
        let item = data(i);
        async move { db.add(item).await }
    });
    let locs = futures_util::future::try_join_all(adds).await?;
    if let Some(i) = locs
        .windows(2)
        .position(|w| (w[0].index, w[0].position) > (w[1].index, w[1].position))
    {
        panic!(
            "add {} was placed at {}, after add {} at {}",
            i,
            locs[i],
            i + 1,
            locs[i + 1]
        );
    }
    for (i, l) in locs.iter().enumerate() {
        assert_eq!(db.read(*l).await?.as_deref(), Some(&data(i)[..]), "{l}");
    }
    db.stop().await?;
    Ok(())
}
