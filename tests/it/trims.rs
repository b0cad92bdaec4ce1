//! `rtrim`, `ltrim` and `drop_index`: the overwrite switch, safety checks, what space is
//! given back, the header's trim offset, `IndexDropped`, and reopening after each.

use aiodiskdb::{AioDiskDb, Error, Event, ItemLocation};

use crate::common::{
    data_files, file_bytes, file_len, header, item, next_event, snapshot, TestResult, HEADER_LEN,
};

/// 100 item bytes per file.
const MAX_FILE: u64 = 124;

type Items = Vec<(ItemLocation, Vec<u8>)>;

async fn open(dir: &std::path::Path, overwrite: bool) -> aiodiskdb::Result<AioDiskDb> {
    AioDiskDb::builder(dir)
        .max_file_size(MAX_FILE)
        .max_buffer_size(100)
        .overwrite(overwrite)
        .open()
        .await
}

/// 25 items of 10 bytes, flushed: index 0 and 1 full (10 items each), index 2 (the
/// current file) holds 5.
async fn fill(db: &AioDiskDb) -> aiodiskdb::Result<Items> {
    let mut out = Vec::new();
    for tag in 0..25u32 {
        let data = item(tag, 10);
        out.push((db.add(data.clone()).await?, data));
    }
    db.flush().await?;
    for (k, (l, _)) in (0u32..).zip(&out) {
        assert_eq!(
            *l,
            ItemLocation {
                index: k / 10,
                position: (k % 10) * 10,
                size: 10
            }
        );
    }
    Ok(out)
}

fn name(index: u32) -> String {
    format!("data{index:05}.dat")
}

/// The expected bytes of a data file holding `items` (all of one index) after `trim_offset`.
fn image(items: &[(ItemLocation, Vec<u8>)], index: u32, trim_offset: u32, end: u32) -> Vec<u8> {
    let mut out = header(trim_offset);
    for (l, d) in items.iter().filter(|(l, _)| l.index == index) {
        for (p, b) in (l.position..).zip(d) {
            if p >= trim_offset && p < end {
                out.push(*b);
            }
        }
    }
    out
}

async fn assert_reads(
    db: &AioDiskDb,
    items: &Items,
    stored: impl Fn(ItemLocation) -> bool,
) -> TestResult {
    for (l, d) in items {
        let expected = stored(*l).then(|| d.clone());
        assert_eq!(db.read(*l).await?.map(|b| b.to_vec()), expected, "{l}");
    }
    Ok(())
}

fn is_trim_error(r: &aiodiskdb::Result<u64>, index: u32) -> bool {
    matches!(r, Err(Error::InvalidTrimCommand { index: i, .. }) if *i == index)
}

#[tokio::test]
async fn trims_are_refused_unless_overwrite_is_enabled() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path(), false).await?;
    let items = fill(&db).await?;
    let before = snapshot(dir.path());
    assert!(matches!(db.rtrim(2, 10, &[]).await, Err(Error::ReadOnly)));
    assert!(matches!(db.ltrim(0, 10, &[]).await, Err(Error::ReadOnly)));
    assert!(matches!(db.drop_index(0).await, Err(Error::ReadOnly)));
    assert!(
        matches!(db.drop_index(99).await, Err(Error::ReadOnly)),
        "checked before the index"
    );
    assert_eq!(snapshot(dir.path()), before, "nothing changed");

    db.enable_overwrite();
    assert_eq!(db.rtrim(2, 40, &[]).await?, 10);
    db.disable_overwrite();
    assert!(matches!(db.rtrim(2, 30, &[]).await, Err(Error::ReadOnly)));
    assert!(matches!(db.ltrim(1, 10, &[]).await, Err(Error::ReadOnly)));
    assert!(matches!(db.drop_index(1).await, Err(Error::ReadOnly)));
    assert_eq!(file_len(dir.path(), &name(2)), HEADER_LEN + 40);
    assert_reads(&db, &items, |l| l.index < 2 || l.position < 40).await?;
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn missing_index_is_reported_by_every_trim() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path(), true).await?;
    fill(&db).await?;
    let before = snapshot(dir.path());
    assert!(matches!(
        db.rtrim(99, 0, &[]).await,
        Err(Error::IndexDoesNotExist { index: 99 })
    ));
    assert!(matches!(
        db.ltrim(3, 1, &[]).await,
        Err(Error::IndexDoesNotExist { index: 3 })
    ));
    assert!(matches!(
        db.drop_index(7).await,
        Err(Error::IndexDoesNotExist { index: 7 })
    ));
    assert_eq!(snapshot(dir.path()), before);
    db.drop_index(0).await?;
    assert!(matches!(
        db.drop_index(0).await,
        Err(Error::IndexDoesNotExist { index: 0 })
    ));
    assert!(matches!(
        db.rtrim(0, 5, &[]).await,
        Err(Error::IndexDoesNotExist { index: 0 })
    ));
    assert!(matches!(
        db.ltrim(0, 5, &[]).await,
        Err(Error::IndexDoesNotExist { index: 0 })
    ));
    assert!(db.is_running(), "a refused trim does not poison");
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn rtrim_of_an_older_file_checks_and_never_gives_space_back() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path(), true).await?;
    let mut items = fill(&db).await?;
    let before = snapshot(dir.path());
    let item5 = items[5].1.clone();

    // Wrong check, check too long for the cut range, trim past the end: nothing changes.
    assert!(is_trim_error(&db.rtrim(0, 50, b"wrong").await, 0));
    assert!(is_trim_error(&db.rtrim(0, 95, &[item5[0]; 6]).await, 0));
    assert!(is_trim_error(&db.rtrim(0, 101, &[]).await, 0));
    assert_eq!(snapshot(dir.path()), before, "failed trims change nothing");

    assert_eq!(db.rtrim(0, 50, &item5[..3]).await?, 50);
    assert_eq!(file_bytes(dir.path(), &name(0)), image(&items, 0, 0, 50));
    // Without a safety check.
    assert_eq!(db.rtrim(1, 30, &[]).await?, 70);
    assert_eq!(file_bytes(dir.path(), &name(1)), image(&items, 1, 0, 30));
    let stored = |l: ItemLocation| match l.index {
        0 => l.position < 50,
        1 => l.position < 30,
        _ => true,
    };
    assert_reads(&db, &items, stored).await?;

    // Appends continue in the current file, not in the freed space.
    let data = item(100, 10);
    let l = db.add(data.clone()).await?;
    assert_eq!((l.index, l.position), (2, 50));
    items.push((l, data));
    db.stop().await?;

    let db = open(dir.path(), true).await?;
    assert_reads(&db, &items, stored).await?;
    assert!(
        is_trim_error(&db.rtrim(0, 51, &[]).await, 0),
        "the end moved to 50"
    );
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn rtrim_of_the_current_file_gives_the_space_back() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path(), true).await?;
    let items = fill(&db).await?;
    // From the Python suite: cut the second half of an item, then the rest of it.
    let item21 = items[21].1.clone();
    assert_eq!(db.rtrim(2, 15, &item21[5..7]).await?, 35);
    assert_eq!(db.rtrim(2, 10, &[]).await?, 5);
    assert_eq!(file_bytes(dir.path(), &name(2)), image(&items, 2, 0, 10));
    assert_eq!(db.read(items[21].0).await?, None);
    assert_eq!(db.rtrim(2, 10, &[]).await?, 0, "nothing left to cut");
    assert!(is_trim_error(&db.rtrim(2, 11, &[]).await, 2));

    let l = db.add(&b"test_3"[..]).await?;
    assert_eq!(
        l,
        ItemLocation {
            index: 2,
            position: 10,
            size: 6
        },
        "the next add reuses the trimmed position"
    );
    assert_eq!(db.read(l).await?.as_deref(), Some(&b"test_3"[..]));
    db.stop().await?;

    let mut expected = image(&items, 2, 0, 10);
    expected.extend_from_slice(b"test_3");
    assert_eq!(file_bytes(dir.path(), &name(2)), expected);
    let db = open(dir.path(), true).await?;
    assert_eq!(db.read(l).await?.as_deref(), Some(&b"test_3"[..]));
    assert_eq!(
        db.read(items[20].0).await?,
        Some(items[20].1.clone().into())
    );
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn rtrim_flushes_buffered_items_first() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(MAX_FILE)
        .max_buffer_size(100)
        .flush_interval(std::time::Duration::from_secs(3600))
        .overwrite(true)
        .open()
        .await?;
    let a = db.add(item(0, 10)).await?;
    let b = db.add(item(1, 10)).await?;
    let c = db.add(item(2, 10)).await?;
    assert_eq!(file_len(dir.path(), &name(0)), HEADER_LEN, "all buffered");
    assert_eq!(db.rtrim(0, 15, &item(1, 10)[5..]).await?, 15);
    assert_eq!(db.read(a).await?, Some(item(0, 10).into()));
    assert_eq!(db.read(b).await?, None);
    assert_eq!(db.read(c).await?, None);
    let mut expected = header(0);
    expected.extend_from_slice(&item(0, 10));
    expected.extend_from_slice(&item(1, 10)[..5]);
    assert_eq!(file_bytes(dir.path(), &name(0)), expected);
    assert_eq!(db.add(&b"x"[..]).await?.position, 15);
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn rtrim_to_zero_empties_the_current_file_and_drops_an_older_one() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path(), true).await?;
    let mut events = db.subscribe();
    let mut items = fill(&db).await?;

    // The current file stays, header only, and appends restart at 0 in the same index.
    assert_eq!(db.rtrim(2, 0, &items[20].1[..4]).await?, 50);
    assert_eq!(file_bytes(dir.path(), &name(2)), header(0));
    let data = item(200, 7);
    let l = db.add(data.clone()).await?;
    assert_eq!((l.index, l.position), (2, 0));
    items.retain(|(l, _)| l.index != 2);
    items.push((l, data));

    // An older file is deleted.
    assert_eq!(db.rtrim(0, 0, &items[0].1).await?, 100);
    let dropped = next_event(&mut events, |e| match e {
        Event::IndexDropped { index, size, .. } => Some((*index, *size)),
        _ => None,
    })
    .await?;
    assert_eq!(dropped, (0, 100));
    assert_eq!(data_files(dir.path()), vec![name(1), name(2)]);
    let stored = |l: ItemLocation| l.index != 0;
    assert_reads(&db, &items, stored).await?;
    db.stop().await?;

    let db = open(dir.path(), true).await?;
    assert_reads(&db, &items, stored).await?;
    assert!(matches!(
        db.rtrim(0, 0, &[]).await,
        Err(Error::IndexDoesNotExist { index: 0 })
    ));
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn ltrim_keeps_positions_and_records_the_trim_offset() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path(), true).await?;
    let items = fill(&db).await?;
    let before = snapshot(dir.path());

    // Bad commands change nothing.
    assert!(
        is_trim_error(&db.ltrim(0, 30, b"nope").await, 0),
        "wrong check"
    );
    assert!(
        is_trim_error(&db.ltrim(0, 3, b"four").await, 0),
        "check below 0"
    );
    assert!(
        is_trim_error(&db.ltrim(0, 101, &[]).await, 0),
        "past the end"
    );
    assert!(
        is_trim_error(&db.ltrim(0, 0, &[]).await, 0),
        "nothing to trim"
    );
    assert_eq!(snapshot(dir.path()), before);

    // The check is the last bytes before trim_to.
    assert_eq!(db.ltrim(0, 30, &items[2].1[7..]).await?, 30);
    let bytes = file_bytes(dir.path(), &name(0));
    assert_eq!(
        &bytes[4..8],
        &30u32.to_le_bytes(),
        "trim offset in the header"
    );
    assert_eq!(bytes, image(&items, 0, 30, 100));
    assert_eq!(bytes.len() as u64, HEADER_LEN + 70);
    let stored = |t: u32| move |l: ItemLocation| l.index != 0 || l.position >= t;
    assert_reads(&db, &items, stored(30)).await?;
    let straddling = ItemLocation {
        index: 0,
        position: 25,
        size: 10,
    };
    assert_eq!(db.read(straddling).await?, None);

    // trim_to must move forward; a check must not reach below the trim offset.
    let before = snapshot(dir.path());
    assert!(is_trim_error(&db.ltrim(0, 30, &[]).await, 0));
    assert!(is_trim_error(&db.ltrim(0, 20, &[]).await, 0));
    assert!(is_trim_error(&db.ltrim(0, 35, &items[3].1[1..6]).await, 0));
    assert!(is_trim_error(&db.ltrim(0, 35, &[0u8; 6]).await, 0));
    assert_eq!(snapshot(dir.path()), before);

    assert_eq!(db.ltrim(0, 45, &[]).await?, 15);
    assert_eq!(file_bytes(dir.path(), &name(0)), image(&items, 0, 45, 100));
    assert_reads(&db, &items, stored(45)).await?;
    // Appends are not affected by trimming an older file.
    assert_eq!(db.add(&b"z"[..]).await?.index, 2);
    db.stop().await?;

    let db = open(dir.path(), true).await?;
    assert_reads(&db, &items, stored(45)).await?;
    db.stop().await?;
    Ok(())
}

/// An ltrim of an older file that keeps fewer than 8 item bytes: its new file's last 8
/// bytes reach into the header, and the manifest must record those (a record of the old
/// file's last 8 bytes made the next open refuse the directory as altered). Every count
/// of kept bytes from 1 to 9, each reopened.
#[tokio::test]
async fn ltrim_of_an_older_file_keeping_a_few_bytes_survives_reopen() -> TestResult {
    for kept in 1..=9u32 {
        let dir = tempfile::tempdir()?;
        let db = open(dir.path(), true).await?;
        let items = fill(&db).await?;
        let to = 100 - kept;
        let check = &items[19].1[..(to - 90) as usize];
        assert_eq!(db.ltrim(1, to, check).await?, u64::from(to), "kept {kept}");
        db.stop().await?;
        assert_eq!(file_bytes(dir.path(), &name(1)), image(&items, 1, to, 100));
        let db = open(dir.path(), true).await?;
        let stored = |l: ItemLocation| l.index != 1 || l.position >= to;
        assert_reads(&db, &items, stored).await?;
        // Trimmed again after the reopen, then once more reopened.
        if kept > 1 {
            assert_eq!(db.ltrim(1, to + 1, &[]).await?, 1);
        }
        db.stop().await?;
        let db = open(dir.path(), false).await?;
        let to = if kept > 1 { to + 1 } else { to };
        assert_reads(&db, &items, |l| l.index != 1 || l.position >= to).await?;
        db.stop().await?;
    }
    Ok(())
}

#[tokio::test]
async fn ltrim_to_the_end_drops_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path(), true).await?;
    let mut events = db.subscribe();
    let items = fill(&db).await?;
    assert_eq!(db.ltrim(1, 40, &[]).await?, 40);
    let removed = db.ltrim(1, 100, &items[19].1).await?;
    assert_eq!(removed, 60, "the bytes left");
    let dropped = next_event(&mut events, |e| match e {
        Event::IndexDropped { index, size, .. } => Some((*index, *size)),
        _ => None,
    })
    .await?;
    assert_eq!(dropped, (1, 60));
    assert_eq!(data_files(dir.path()), vec![name(0), name(2)]);
    assert_reads(&db, &items, |l| l.index != 1).await?;
    db.stop().await?;
    let db = open(dir.path(), true).await?;
    assert_reads(&db, &items, |l| l.index != 1).await?;
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn ltrim_of_the_current_file_then_appends() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path(), true).await?;
    let mut items = fill(&db).await?;
    assert_eq!(db.ltrim(2, 20, &items[21].1[8..]).await?, 20);
    assert_eq!(file_bytes(dir.path(), &name(2)), image(&items, 2, 20, 50));
    let stored = |l: ItemLocation| l.index != 2 || l.position >= 20;
    assert_reads(&db, &items, stored).await?;

    // Positions continue after 50; the file holds 30 bytes, so 70 more fit before rolling.
    for tag in 100..108u32 {
        let data = item(tag, 10);
        let l = db.add(data.clone()).await?;
        items.push((l, data));
    }
    let new: Vec<_> = items[25..]
        .iter()
        .map(|(l, _)| (l.index, l.position))
        .collect();
    assert_eq!(
        new,
        vec![
            (2, 50),
            (2, 60),
            (2, 70),
            (2, 80),
            (2, 90),
            (2, 100),
            (2, 110),
            (3, 0)
        ]
    );
    assert_reads(&db, &items, stored).await?;
    db.flush().await?;
    assert_eq!(file_bytes(dir.path(), &name(2)), image(&items, 2, 20, 120));
    assert_eq!(file_len(dir.path(), &name(2)), MAX_FILE);
    assert_reads(&db, &items, stored).await?;
    db.stop().await?;

    let db = open(dir.path(), true).await?;
    assert_reads(&db, &items, stored).await?;
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn drop_index_of_an_older_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path(), true).await?;
    let mut events = db.subscribe();
    let items = fill(&db).await?;
    assert_eq!(db.drop_index(1).await?, 100);
    let dropped = next_event(&mut events, |e| match e {
        Event::IndexDropped { index, size, .. } => Some((*index, *size)),
        _ => None,
    })
    .await?;
    assert_eq!(dropped, (1, 100));
    assert_eq!(data_files(dir.path()), vec![name(0), name(2)]);
    assert_reads(&db, &items, |l| l.index != 1).await?;
    assert_eq!(
        db.add(&b"next"[..]).await?.index,
        2,
        "appends are unaffected"
    );
    db.stop().await?;
    let db = open(dir.path(), true).await?;
    assert_reads(&db, &items, |l| l.index != 1).await?;
    assert!(matches!(
        db.drop_index(1).await,
        Err(Error::IndexDoesNotExist { index: 1 })
    ));
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn drop_index_of_the_current_file_moves_appends_to_a_new_index() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path(), true).await?;
    let mut events = db.subscribe();
    let items = fill(&db).await?;
    let buffered = db.add(&b"buffered"[..]).await?;
    assert_eq!((buffered.index, buffered.position), (2, 50));
    assert_eq!(
        db.drop_index(2).await?,
        58,
        "buffered items were flushed first"
    );
    let dropped = next_event(&mut events, |e| match e {
        Event::IndexDropped { index, size, .. } => Some((*index, *size)),
        _ => None,
    })
    .await?;
    assert_eq!(dropped, (2, 58));
    assert_eq!(data_files(dir.path()), vec![name(0), name(1), name(3)]);
    assert_eq!(file_bytes(dir.path(), &name(3)), header(0));

    let l = db.add(&b"fresh"[..]).await?;
    assert_eq!(
        l,
        ItemLocation {
            index: 3,
            position: 0,
            size: 5
        }
    );
    let old = ItemLocation {
        index: 2,
        position: 0,
        size: 5,
    };
    assert_eq!(
        db.read(old).await?,
        None,
        "an old location never reads new data"
    );
    assert_eq!(db.read(buffered).await?, None);
    assert_reads(&db, &items, |l| l.index != 2).await?;
    db.stop().await?;

    let db = open(dir.path(), true).await?;
    assert_eq!(db.read(old).await?, None);
    assert_eq!(db.read(l).await?.as_deref(), Some(&b"fresh"[..]));
    assert_reads(&db, &items, |l| l.index != 2).await?;
    let next = db.add(&b"more"[..]).await?;
    assert_eq!((next.index, next.position), (3, 5));
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn dropping_every_file_then_reopening() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path(), true).await?;
    let items = fill(&db).await?;
    for index in [1, 0, 2] {
        db.drop_index(index).await?;
    }
    assert_eq!(data_files(dir.path()), vec![name(3)]);
    db.stop().await?;
    let db = open(dir.path(), true).await?;
    assert_reads(&db, &items, |_| false).await?;
    let l = db.add(&b"again"[..]).await?;
    assert_eq!((l.index, l.position), (3, 0));
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn every_trim_survives_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path(), true).await?;
    let items = fill(&db).await?;
    db.ltrim(0, 20, &[]).await?;
    db.rtrim(0, 80, &[]).await?;
    db.drop_index(1).await?;
    db.ltrim(2, 10, &[]).await?;
    db.rtrim(2, 40, &[]).await?;
    db.stop().await?;
    let expect_files = vec![name(0), name(2)];
    assert_eq!(data_files(dir.path()), expect_files);
    assert_eq!(file_bytes(dir.path(), &name(0)), image(&items, 0, 20, 80));
    assert_eq!(file_bytes(dir.path(), &name(2)), image(&items, 2, 10, 40));
    let stored = |l: ItemLocation| match l.index {
        0 => (20..80).contains(&l.position),
        2 => (10..40).contains(&l.position),
        _ => false,
    };

    let db = open(dir.path(), false).await?;
    assert_reads(&db, &items, stored).await?;
    let l = db.add(&b"after"[..]).await?;
    assert_eq!(
        (l.index, l.position),
        (2, 40),
        "the rtrim of the head gave space back"
    );
    db.stop().await?;
    let db = open(dir.path(), false).await?;
    assert_reads(&db, &items, stored).await?;
    assert_eq!(db.read(l).await?.as_deref(), Some(&b"after"[..]));
    db.stop().await?;
    Ok(())
}
