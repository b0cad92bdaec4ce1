//! Read-only handles (`Builder::read_only`, SPEC 9) beside a writer of this process: what
//! they serve, how they follow commits, rollovers, trims and drops, that they refuse every
//! write, and that they never change a directory (a crashed one included). The same with
//! real processes: `readers.rs`.

use std::time::Duration;

use aiodiskdb::{AioDiskDb, Builder, Error, ItemLocation};

use crate::common::{item, snapshot, TestResult};

/// 100 item bytes per file.
const MAX_FILE: u64 = 124;

fn writer(dir: &std::path::Path) -> Builder {
    AioDiskDb::builder(dir)
        .max_file_size(MAX_FILE)
        .max_buffer_size(100)
        .overwrite(true)
}

fn reader(dir: &std::path::Path) -> Builder {
    AioDiskDb::builder(dir).read_only()
}

/// Longer than a read-only view lives without checking the state record.
const PAST_REFRESH: Duration = Duration::from_millis(120);

async fn add_all(
    db: &AioDiskDb,
    tags: std::ops::Range<u32>,
) -> aiodiskdb::Result<Vec<(ItemLocation, Vec<u8>)>> {
    let mut out = Vec::new();
    for tag in tags {
        let data = item(tag, 10);
        out.push((db.add(data.clone()).await?, data));
    }
    db.flush().await?;
    Ok(out)
}

#[tokio::test]
async fn a_reader_serves_what_the_writer_committed_and_follows_new_commits() -> TestResult {
    let dir = tempfile::tempdir()?;
    let w = writer(dir.path()).open().await?;
    let first = add_all(&w, 0..5).await?;
    let buffered = w.add(item(99, 10)).await?;
    let r = reader(dir.path()).open().await?;
    for (loc, data) in &first {
        assert_eq!(r.read(*loc).await?.as_deref(), Some(&data[..]));
    }
    assert_eq!(
        r.read(buffered).await?,
        None,
        "a buffered item is not committed"
    );
    w.flush().await?;
    assert_eq!(
        r.read(buffered).await?.as_deref(),
        Some(&item(99, 10)[..]),
        "a read past the view re-reads the commit record"
    );
    // Rollovers: the writer moves to indexes the reader never saw.
    let more = add_all(&w, 5..40).await?;
    assert!(more.last().unwrap().0.index >= 3);
    for (loc, data) in first.iter().chain(&more) {
        assert_eq!(r.read(*loc).await?.as_deref(), Some(&data[..]), "{loc}");
    }
    assert_eq!(r.locations(3).await?, w.locations(3).await?);
    let v = r.verify().await?;
    assert!(v.is_ok(), "{v:?}");
    assert_eq!(v.items_checked, 41);
    // A range past every commit stays missing.
    let past = ItemLocation {
        index: 9,
        position: 0,
        size: 10,
    };
    assert_eq!(r.read(past).await?, None);
    r.stop().await?;
    assert!(matches!(r.read(first[0].0).await, Err(Error::NotRunning)));
    w.stop().await?;
    Ok(())
}

#[tokio::test]
async fn every_write_of_a_reader_fails_with_read_only_and_changes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let w = writer(dir.path()).open().await?;
    let items = add_all(&w, 0..12).await?;
    w.stop().await?;
    let before = snapshot(dir.path());
    let r = AioDiskDb::open_read_only(dir.path()).await?;
    r.enable_overwrite();
    assert!(matches!(r.add(item(1, 5)).await, Err(Error::ReadOnly)));
    assert!(matches!(r.flush().await, Err(Error::ReadOnly)));
    assert!(matches!(
        r.wait_persisted(items[0].0).await,
        Err(Error::ReadOnly)
    ));
    let mut tx = r.transaction();
    tx.add(item(2, 5))?;
    assert!(matches!(tx.commit().await, Err(Error::ReadOnly)));
    assert!(matches!(r.rtrim(0, 0, b"").await, Err(Error::ReadOnly)));
    assert!(matches!(r.ltrim(0, 10, b"").await, Err(Error::ReadOnly)));
    assert!(matches!(r.drop_index(0).await, Err(Error::ReadOnly)));
    assert!(r.is_running());
    for (loc, data) in &items {
        assert_eq!(r.read(*loc).await?.as_deref(), Some(&data[..]));
    }
    // A writer opens beside it: no lock is held.
    let w = writer(dir.path()).open().await?;
    w.stop().await?;
    r.stop().await?;
    let after = snapshot(dir.path());
    assert_eq!(
        before
            .keys()
            .filter(|n| !n.starts_with('.'))
            .collect::<Vec<_>>(),
        after
            .keys()
            .filter(|n| !n.starts_with('.'))
            .collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test]
async fn a_reader_never_creates_anything() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("missing");
    match AioDiskDb::open_read_only(&missing).await {
        Err(Error::Io { source, .. }) => assert_eq!(source.kind(), std::io::ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
    assert!(!missing.exists());
    let r = AioDiskDb::open_read_only(dir.path()).await?;
    assert_eq!(
        r.read(ItemLocation {
            index: 0,
            position: 0,
            size: 1
        })
        .await?,
        None
    );
    r.stop().await?;
    assert!(
        snapshot(dir.path()).is_empty(),
        "{:?}",
        snapshot(dir.path()).keys()
    );
    Ok(())
}

#[tokio::test]
async fn trims_and_drops_by_the_writer_read_as_missing_never_as_other_bytes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let w = writer(dir.path()).open().await?;
    // Index 0 and 1 full, index 2 holds 5 items.
    let items = add_all(&w, 0..25).await?;
    let r = reader(dir.path()).open().await?;
    for (loc, data) in &items {
        assert_eq!(r.read(*loc).await?.as_deref(), Some(&data[..]));
    }
    w.drop_index(0).await?;
    w.ltrim(1, 50, b"").await?;
    w.rtrim(2, 20, b"").await?;
    // The head's cut range holds other items now, of other sizes too.
    let again = w.add(item(500, 10)).await?;
    let odd = w.add(item(501, 7)).await?;
    w.flush().await?;
    assert_eq!(again.position, 20);
    tokio::time::sleep(PAST_REFRESH).await;
    for (loc, data) in &items {
        let got = r.read(*loc).await?;
        let want = w.read(*loc).await?;
        assert_eq!(got, want, "{loc}: the reader and the writer disagree");
        if let Some(got) = got {
            assert!(got == data[..] || *loc == again, "{loc}");
        }
    }
    assert_eq!(r.read(again).await?.as_deref(), Some(&item(500, 10)[..]));
    assert_eq!(r.read(odd).await?.as_deref(), Some(&item(501, 7)[..]));
    assert_eq!(r.locations(2).await?, w.locations(2).await?);
    assert!(matches!(
        r.locations(0).await,
        Err(Error::IndexDoesNotExist { index: 0 })
    ));
    let v = r.verify().await?;
    assert!(v.is_ok(), "{v:?}");
    w.stop().await?;
    r.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_read_that_finds_the_head_cut_and_rewritten_gets_the_new_item() -> TestResult {
    // Within the reader's refresh interval: its CRC check finds other bytes at a location
    // it knew, and it reads the newest commit instead of reporting corruption.
    let dir = tempfile::tempdir()?;
    let w = writer(dir.path()).open().await?;
    let items = add_all(&w, 0..5).await?;
    let r = reader(dir.path()).open().await?;
    assert_eq!(r.read(items[3].0).await?.as_deref(), Some(&items[3].1[..]));
    w.rtrim(0, 20, b"").await?;
    let mut rewritten = Vec::new();
    for tag in 100..103 {
        rewritten.push((w.add(item(tag, 10)).await?, item(tag, 10)));
    }
    w.flush().await?;
    assert_eq!(rewritten[1].0, items[3].0);
    assert_eq!(
        r.read(items[3].0).await?.as_deref(),
        Some(&rewritten[1].1[..])
    );
    w.stop().await?;
    r.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_sub_range_read_after_a_trim_never_returns_bytes_past_the_commit() -> TestResult {
    // Sub-ranges have no CRC: the reader keeps them only if no trim was recorded while
    // it read. Here the writer has cut the file and bytes it has not committed lie where
    // the reader's view still has committed data (a flush in flight after an rtrim).
    let dir = tempfile::tempdir()?;
    let w = writer(dir.path()).open().await?;
    let items = add_all(&w, 0..5).await?;
    let r = reader(dir.path()).open().await?;
    let sub = ItemLocation {
        index: 0,
        position: 12,
        size: 15,
    };
    let mut want = items[1].1[2..].to_vec();
    want.extend_from_slice(&items[2].1[..7]);
    assert_eq!(r.read(sub).await?.as_deref(), Some(&want[..]));
    w.rtrim(0, 10, b"").await?;
    let data = dir.path().join("data00000.dat");
    let mut f = std::fs::OpenOptions::new().append(true).open(&data)?;
    std::io::Write::write_all(&mut f, &[0xEE; 40])?;
    assert_eq!(r.read(sub).await?, None, "uncommitted bytes were served");
    // Once committed, the new bytes are what both serve.
    f.set_len(24 + 10)?;
    for tag in 200..204 {
        w.add(item(tag, 10)).await?;
    }
    w.flush().await?;
    let now = w.read(sub).await?;
    assert!(now.is_some());
    assert_eq!(r.read(sub).await?, now);
    w.stop().await?;
    r.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_reader_of_a_crashed_directory_serves_what_recovery_keeps_and_changes_nothing(
) -> TestResult {
    let dir = tempfile::tempdir()?;
    let crashed = tempfile::tempdir()?;
    let w = writer(dir.path()).open().await?;
    let items = add_all(&w, 0..23).await?;
    // Not flushed: written to RAM only.
    let lost = w.add(item(77, 10)).await?;
    // The directory as a crash would leave it: copied while the writer holds it.
    for (name, bytes) in snapshot(dir.path()) {
        std::fs::write(crashed.path().join(&name), bytes)?;
    }
    // Bytes past the head's commit that recovery will cut: an append that never committed.
    let head = crashed.path().join("data00002.dat");
    let mut torn = std::fs::read(&head)?;
    torn.extend_from_slice(&[0xAB; 10]);
    std::fs::write(&head, torn)?;
    let before = snapshot(crashed.path());
    let r = reader(crashed.path()).open().await?;
    for (loc, data) in &items {
        assert_eq!(r.read(*loc).await?.as_deref(), Some(&data[..]));
    }
    assert_eq!(lost.position, 30);
    assert_eq!(
        r.read(lost).await?,
        None,
        "bytes past the commit are never served"
    );
    assert!(r.verify().await?.is_ok());
    assert_eq!(
        before,
        snapshot(crashed.path()),
        "a reader changed the directory"
    );
    // The writer recovers beside the reader, which follows.
    let w2 = writer(crashed.path()).open().await?;
    let next = w2.add(item(88, 10)).await?;
    w2.flush().await?;
    assert_eq!(next, lost, "the torn bytes were cut and their range reused");
    assert_eq!(r.read(next).await?.as_deref(), Some(&item(88, 10)[..]));
    r.stop().await?;
    w2.stop().await?;
    w.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_reader_refuses_a_directory_that_recovery_would_refuse() -> TestResult {
    let dir = tempfile::tempdir()?;
    let w = writer(dir.path()).open().await?;
    add_all(&w, 0..25).await?;
    w.stop().await?;
    // An older file cut short: committed data is missing.
    let older = dir.path().join("data00000.dat");
    let f = std::fs::OpenOptions::new().write(true).open(&older)?;
    f.set_len(30)?;
    match reader(dir.path()).open().await {
        Err(Error::FilesInconsistency { path, .. }) => assert_eq!(path, older),
        other => panic!("{other:?}"),
    }
    // Other genesis bytes than the directory records.
    match reader(dir.path()).genesis_bytes([1, 2, 3, 4]).open().await {
        Err(Error::InvalidConfiguration { .. }) => {}
        other => panic!("{other:?}"),
    }
    Ok(())
}

/// A writer rolling over creates its next file and then writes the file's header: `check`,
/// `info` and a read-only open that look in between see a file beyond the recorded head
/// that is shorter than its header. That is the writer at work, not a problem
/// (`aiodiskdb check` beside a writer reported "header too short: 0 bytes" for it).
#[tokio::test]
async fn a_rollover_file_without_its_header_yet_is_not_a_problem_beside_its_writer() -> TestResult {
    let dir = tempfile::tempdir()?;
    let w = writer(dir.path()).open().await?;
    let stored = add_all(&w, 0..25).await?;
    let head = stored.last().unwrap().0.index;
    let next = dir.path().join(format!("data{:05}.dat", head + 1));
    for len in [0, 10] {
        std::fs::write(&next, vec![0u8; len])?;
        let ins = writer(dir.path()).inspect().await?;
        assert!(ins.locked);
        assert!(ins.problems.is_empty(), "{len} bytes: {:?}", ins.problems);
        assert!(ins.files.iter().all(|f| f.index <= head), "{:?}", ins.files);
        let r = reader(dir.path()).open().await?;
        for (loc, data) in &stored {
            assert_eq!(r.read(*loc).await?.as_deref(), Some(&data[..]), "{loc}");
        }
        assert!(r.verify().await?.is_ok());
        r.stop().await?;
    }
    // Without a writer, the same file is reported.
    w.stop().await?;
    let ins = writer(dir.path()).inspect().await?;
    assert!(
        ins.problems.iter().any(|p| p.path == next),
        "{:?}",
        ins.problems
    );
    Ok(())
}
