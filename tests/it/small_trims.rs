//! Trims that keep a few bytes (an 8-byte tail reaching into the header), 1-byte items,
//! read-only handles following them, and a writer's read racing an rtrim of the head
//! and a rewrite of the cut range (from a review that tried to break them).

use aiodiskdb::{AioDiskDb, ItemLocation};

use crate::common::{item, TestResult};

type Items = Vec<(ItemLocation, Vec<u8>)>;

async fn open(dir: &std::path::Path, max_file: u64) -> aiodiskdb::Result<AioDiskDb> {
    AioDiskDb::builder(dir)
        .max_file_size(max_file)
        .max_buffer_size(100)
        .overwrite(true)
        .open()
        .await
}

/// `n` items of `size` bytes, flushed.
async fn fill(db: &AioDiskDb, n: u32, size: usize, tag0: u32) -> aiodiskdb::Result<Items> {
    let mut out = Vec::new();
    for tag in tag0..tag0 + n {
        let data = item(tag, size);
        out.push((db.add(data.clone()).await?, data));
    }
    db.flush().await?;
    Ok(out)
}

/// The bytes a read of `loc` should give: `Some` when `[position, end)` lies in `[lo, hi)`
/// of its index (per `range`).
fn expect(
    items: &Items,
    loc: ItemLocation,
    range: impl Fn(u32) -> Option<(u32, u32)>,
) -> Option<Vec<u8>> {
    let (lo, hi) = range(loc.index)?;
    if loc.position < lo || loc.position + loc.size > hi {
        return None;
    }
    let mut out = Vec::new();
    for p in loc.position..loc.position + loc.size {
        let (l, d) = items
            .iter()
            .rev()
            .find(|(l, _)| l.index == loc.index && l.position <= p && p < l.position + l.size)?;
        out.push(d[(p - l.position) as usize]);
    }
    Some(out)
}

async fn check_all(
    db: &AioDiskDb,
    items: &Items,
    range: &impl Fn(u32) -> Option<(u32, u32)>,
    what: &str,
) -> TestResult {
    for (l, _) in items {
        let want = expect(items, *l, range);
        let got = db.read(*l).await;
        let got = match got {
            Ok(g) => g.map(|b| b.to_vec()),
            Err(e) => panic!("{what}: read {l}: {e:?}"),
        };
        assert_eq!(got, want, "{what}: {l}");
        // Sub-ranges and ranges spanning two items.
        for (dp, ds) in [
            (0u32, 1u32),
            (1, 1),
            (0, 0),
            (l.size - 1, 1),
            (1, l.size),
            (l.size / 2, l.size),
        ] {
            let size = if ds == 0 { l.size } else { ds };
            let sub = ItemLocation {
                index: l.index,
                position: l.position + dp,
                size,
            };
            if dp == 0 && ds == 0 {
                continue;
            }
            let want = expect(items, sub, range);
            let got = db.read(sub).await.map(|g| g.map(|b| b.to_vec()));
            match got {
                Ok(g) => assert_eq!(g, want, "{what}: sub {sub}"),
                Err(e) => panic!("{what}: read sub {sub}: {e:?}"),
            }
        }
    }
    let v = db.verify().await?;
    assert!(v.is_ok(), "{what}: {v:?}");
    Ok(())
}

/// ltrim of an older file keeping 0..=9 bytes, then an rtrim of it at each interesting
/// place, then a reopen.
#[tokio::test]
async fn ltrim_few_bytes_then_rtrim_then_reopen() -> TestResult {
    for kept in 1..=9u32 {
        for rt in 0..6u32 {
            let what = format!("kept {kept} rtrim case {rt}");
            let dir = tempfile::tempdir()?;
            let db = open(dir.path(), 124).await?;
            let items = fill(&db, 25, 10, 0).await?;
            let to = 100 - kept;
            db.ltrim(1, to, &[]).await?;
            let from = match rt {
                0 => to,
                1 => to + 1,
                2 => 99,
                3 => 50,
                4 => 100,
                _ => to + kept / 2,
            };
            let from = from.min(100);
            let r = db.rtrim(1, from, &[]).await;
            let end1 = if r.is_ok() { from.max(to) } else { 100 };
            let range = move |i: u32| match i {
                1 => Some((to, end1)),
                _ => Some((0, 100)),
            };
            check_all(&db, &items, &range, &what).await?;
            db.stop().await?;
            let db = match open(dir.path(), 124).await {
                Ok(d) => d,
                Err(e) => panic!("{what}: reopen: {e:?}"),
            };
            check_all(&db, &items, &range, &format!("{what} reopened")).await?;
            // And a second ltrim, rtrim after the reopen, then a reopen.
            if end1 > to + 1 {
                db.ltrim(1, to + 1, &[]).await?;
            }
            db.stop().await?;
            let db = match open(dir.path(), 124).await {
                Ok(d) => d,
                Err(e) => panic!("{what}: reopen 2: {e:?}"),
            };
            db.stop().await?;
        }
    }
    Ok(())
}

/// ltrim of the head keeping 1..=9 bytes, appends, a rollover, a reopen.
#[tokio::test]
async fn ltrim_head_few_bytes_appends_rollover_reopen() -> TestResult {
    for kept in 1..=9u32 {
        for cut_inside in [false, true] {
            let what = format!("kept {kept} inside {cut_inside}");
            let dir = tempfile::tempdir()?;
            let db = open(dir.path(), 124).await?;
            let mut items = fill(&db, 25, 10, 0).await?;
            // The head (2) ends at 50.
            let to = 50 - kept;
            db.ltrim(2, to, &[]).await?;
            if cut_inside {
                db.rtrim(2, 50 - kept / 2, &[]).await.ok();
            }
            let head_end = if cut_inside { 50 - kept / 2 } else { 50 };
            let more = fill(&db, 15, 10, 100).await?;
            items.extend(more);
            let range = move |i: u32| match i {
                2 => Some((to.min(head_end), u32::MAX)),
                _ => Some((0, u32::MAX)),
            };
            check_all(&db, &items, &range, &what).await?;
            db.stop().await?;
            let db = match open(dir.path(), 124).await {
                Ok(d) => d,
                Err(e) => panic!("{what}: reopen: {e:?}"),
            };
            check_all(&db, &items, &range, &format!("{what} reopened")).await?;
            db.stop().await?;
        }
    }
    Ok(())
}

/// Items of 1 byte, ltrims cutting between them, verified reads of each.
#[tokio::test]
async fn one_byte_items() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path(), 124).await?;
    let mut items = fill(&db, 250, 1, 0).await?;
    let range = |_: u32| Some((0, u32::MAX));
    check_all(&db, &items, &range, "1-byte").await?;
    let head = items.last().unwrap().0.index;
    db.ltrim(0, 95, &[]).await?;
    db.ltrim(head, items.last().unwrap().0.position, &[])
        .await?;
    let more = fill(&db, 30, 1, 1000).await?;
    items.extend(more);
    let last_head_pos = items[249].0.position;
    let range = move |i: u32| match i {
        0 => Some((95, u32::MAX)),
        i if i == head => Some((last_head_pos, u32::MAX)),
        _ => Some((0, u32::MAX)),
    };
    check_all(&db, &items, &range, "1-byte trimmed").await?;
    db.stop().await?;
    let db = open(dir.path(), 124).await?;
    check_all(&db, &items, &range, "1-byte reopened").await?;
    db.stop().await?;
    Ok(())
}

/// A writer's read racing an rtrim of the head and appends of other items over the cut
/// range: the read must give the old bytes, the new ones or `None`, never `Corrupted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_read_racing_an_rtrim_and_rewrite_of_the_head_is_not_corrupted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(1 << 20)
        .max_buffer_size(1 << 16)
        .overwrite(true)
        .concurrency(1)
        .durability(aiodiskdb::Durability::Os)
        .open()
        .await?;
    let mut corrupted = 0;
    let mut odd = 0;
    let (mut nones, mut olds, mut news) = (0, 0, 0);
    for round in 0..400u32 {
        let start = db.add(item(round * 1000 + 999, 10)).await?;
        db.flush().await?;
        let mut locs = Vec::new();
        for k in 0..50u32 {
            let data = item(round * 1000 + k, 10);
            locs.push((db.add(data.clone()).await?, data));
        }
        db.flush().await?;
        let mut tasks = Vec::new();
        for (l, d) in locs.iter().cloned() {
            let db = db.clone();
            tasks.push(tokio::spawn(async move { (l, d, db.read(l).await) }));
        }
        let cut = start.position + 10;
        db.rtrim(start.index, cut, &[]).await?;
        let mut new = Vec::new();
        for k in 0..50u32 {
            let data = item(round * 1000 + 500 + k, 10);
            new.push((db.add(data.clone()).await?, data));
        }
        db.flush().await?;
        for (i, t) in tasks.into_iter().enumerate() {
            let (l, d, got) = t.await?;
            match got {
                Ok(None) => nones += 1,
                Ok(Some(b)) if b[..] == d[..] => olds += 1,
                Ok(Some(b)) if b[..] == new[i].1[..] => news += 1,
                Ok(Some(_)) => odd += 1,
                Err(e @ aiodiskdb::Error::Corrupted { .. }) => {
                    eprintln!("{l}: {e}");
                    corrupted += 1;
                }
                Err(e) => panic!("{l}: {e:?}"),
            }
        }
    }
    db.stop().await?;
    eprintln!("none {nones} old {olds} new {news} corrupted {corrupted} odd {odd}");
    assert_eq!(
        (corrupted, odd),
        (0, 0),
        "reads failed with Corrupted / other bytes"
    );
    Ok(())
}

/// A read-only handle (one kept open, one opened afresh) against a writer doing few-byte
/// ltrims of older files and of the head, rtrims after them, appends and rollovers: after
/// each operation (and past the refresh interval) both agree with the writer on every
/// location, sub-ranges included.
#[tokio::test]
async fn readers_follow_few_byte_ltrims_and_rollovers() -> TestResult {
    let dir = tempfile::tempdir()?;
    let w = open(dir.path(), 124).await?;
    let mut items = fill(&w, 25, 10, 0).await?;
    let r = AioDiskDb::builder(dir.path()).read_only().open().await?;
    let mut tag = 100;
    for step in 0..12u32 {
        let res = match step % 6 {
            0 => w.ltrim(0, 97 - step / 6, &[]).await,
            1 => w.rtrim(0, 98 - step / 6, &[]).await,
            2 => {
                let head = items.last().unwrap().0;
                w.ltrim(head.index, head.position + head.size - 3, &[])
                    .await
            }
            3 => w.ltrim(1, 99, &[]).await,
            4 => {
                let head = items.last().unwrap().0;
                w.rtrim(head.index, head.position + head.size - 1, &[])
                    .await
            }
            _ => Ok(0),
        };
        let _ = res;
        let more = fill(&w, 7, 10, tag).await?;
        tag += 7;
        items.extend(more);
        tokio::time::sleep(std::time::Duration::from_millis(120)).await;
        let fresh = match AioDiskDb::builder(dir.path()).read_only().open().await {
            Ok(f) => f,
            Err(e) => panic!("step {step}: read-only open: {e:?}"),
        };
        for (l, _) in &items {
            for sub in [
                *l,
                ItemLocation { size: 1, ..*l },
                ItemLocation {
                    position: l.position + l.size - 1,
                    size: 1,
                    ..*l
                },
                ItemLocation {
                    position: l.position + 5,
                    size: 10,
                    ..*l
                },
            ] {
                let want = w.read(sub).await;
                let got = r.read(sub).await;
                let got2 = fresh.read(sub).await;
                let s = |x: &aiodiskdb::Result<Option<bytes::Bytes>>| format!("{x:?}");
                assert_eq!(s(&got), s(&want), "step {step}: kept reader at {sub}");
                assert_eq!(s(&got2), s(&want), "step {step}: fresh reader at {sub}");
            }
        }
        let v = fresh.verify().await?;
        assert!(v.is_ok(), "step {step}: {v:?}");
        fresh.stop().await?;
    }
    r.stop().await?;
    w.stop().await?;
    let w = open(dir.path(), 124).await?;
    w.stop().await?;
    Ok(())
}

/// ltrim of the head keeping 1..=9 bytes, a reopen before any append, appends with a
/// rollover, a reopen; then the sealed file ltrimmed once more to keep 1 byte, and reopened.
#[tokio::test]
async fn ltrim_head_few_bytes_reopen_then_rollover() -> TestResult {
    for kept in 1..=9u32 {
        let what = format!("kept {kept}");
        let dir = tempfile::tempdir()?;
        let db = open(dir.path(), 124).await?;
        let mut items = fill(&db, 25, 10, 0).await?;
        let to = 50 - kept;
        db.ltrim(2, to, &[]).await?;
        db.stop().await?;
        let db = open(dir.path(), 124).await?;
        items.extend(fill(&db, 15, 10, 100).await?);
        let range = move |i: u32| match i {
            2 => Some((to, u32::MAX)),
            _ => Some((0, u32::MAX)),
        };
        check_all(&db, &items, &range, &what).await?;
        db.stop().await?;
        let db = open(dir.path(), 124)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        check_all(&db, &items, &range, &format!("{what} reopened")).await?;
        let end2 = items
            .iter()
            .filter(|(l, _)| l.index == 2)
            .map(|(l, _)| l.position + l.size)
            .max()
            .unwrap();
        db.ltrim(2, end2 - 1, &[]).await?;
        db.stop().await?;
        let db = open(dir.path(), 124)
            .await
            .unwrap_or_else(|e| panic!("{what}: 2: {e:?}"));
        let range = move |i: u32| match i {
            2 => Some((end2 - 1, u32::MAX)),
            _ => Some((0, u32::MAX)),
        };
        check_all(&db, &items, &range, &format!("{what} reopened 2")).await?;
        db.stop().await?;
    }
    Ok(())
}
