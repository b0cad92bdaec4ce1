//! Checksummed commits (SPEC section 7): each kind of damage to a directory, done after a
//! clean stop as a disk, a tool or a person would, gives the documented error or report,
//! and no acknowledged byte is ever returned altered.
//!
//! The directory: three data files of small items (the first two sealed by rollovers, the
//! third the head), written in a few flushes.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use aiodiskdb::{AioDiskDb, Builder, DamageKind, Error, ItemLocation};

use crate::common::{content, TestResult, HEADER_LEN};

fn builder(dir: &Path) -> Builder {
    AioDiskDb::builder(dir)
        .max_file_size(4096)
        .max_buffer_size(2048)
}

/// Writes the directory; returns every item with its bytes.
async fn populate(dir: &Path) -> Result<Vec<(ItemLocation, Vec<u8>)>, Error> {
    let db = builder(dir).open().await?;
    let mut items = Vec::new();
    for id in 0..100u64 {
        let data = content(id, 40 + usize::try_from(id % 7).expect("small") * 30);
        items.push((db.add(data.clone()).await?, data));
        if id % 9 == 0 {
            db.flush().await?;
        }
    }
    db.stop().await?;
    assert!(
        items.iter().any(|(l, _)| l.index == 2),
        "three data files: {:?}",
        items.last()
    );
    Ok(items)
}

fn name(index: u32) -> String {
    format!("data{index:05}.dat")
}

/// Flips one byte at file offset `at`.
fn flip(path: &Path, at: u64) -> std::io::Result<()> {
    let f = OpenOptions::new().read(true).write(true).open(path)?;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at)?;
    f.write_all_at(&[b[0] ^ 0x40], at)
}

/// The file offset of the middle byte of `loc` (trim offset 0).
fn middle(loc: ItemLocation) -> u64 {
    HEADER_LEN + u64::from(loc.position) + u64::from(loc.size / 2)
}

/// Every item other than `except` reads back exactly.
async fn all_others_read(
    db: &AioDiskDb,
    items: &[(ItemLocation, Vec<u8>)],
    except: &[ItemLocation],
) -> TestResult {
    for (loc, data) in items {
        if !except.contains(loc) {
            assert_eq!(db.read(*loc).await?.as_deref(), Some(&data[..]), "{loc}");
        }
    }
    Ok(())
}

async fn flipped_item(index: u32) -> TestResult {
    let dir = tempfile::tempdir()?;
    let items = populate(dir.path()).await?;
    let (victim, _) = items
        .iter()
        .filter(|(l, _)| l.index == index)
        .nth(2)
        .ok_or("an item in the file")?
        .clone();
    flip(&dir.path().join(name(index)), middle(victim))?;

    let db = builder(dir.path()).open().await?;
    match db.read(victim).await {
        Err(Error::Corrupted { location, .. }) => assert_eq!(location, victim),
        other => panic!("read of the altered item {victim}: {other:?}"),
    }
    all_others_read(&db, &items, &[victim]).await?;
    // Again, now that the file is open and its table loaded: the read that does not leave
    // the task (a page-cache hit) checks it as well.
    assert!(
        matches!(db.read(victim).await, Err(Error::Corrupted { .. })),
        "second read of {victim}"
    );
    let v = db.verify().await?;
    assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
    assert_eq!(v.problems[0].location, Some(victim));
    assert_eq!(v.problems[0].kind, DamageKind::Corrupt);
    assert_eq!(v.items_checked, items.len() as u64);
    assert_eq!(v.unindexed_bytes, 0);
    // A sub-range is not one indexed item: served as it is.
    let sub = ItemLocation {
        size: victim.size - 1,
        ..victim
    };
    assert!(db.read(sub).await?.is_some());
    db.stop().await?;

    // With checking off, the bytes are served as they are.
    let db = builder(dir.path()).verify_reads(false).open().await?;
    assert!(db.read(victim).await?.is_some());
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_flipped_byte_in_an_older_file_fails_its_read_and_is_reported() -> TestResult {
    flipped_item(0).await
}

#[tokio::test]
async fn a_flipped_byte_in_the_head_within_its_committed_end_fails_its_read() -> TestResult {
    flipped_item(2).await
}

#[tokio::test]
async fn a_flipped_byte_in_the_item_index_fails_that_items_read() -> TestResult {
    let dir = tempfile::tempdir()?;
    let items = populate(dir.path()).await?;
    let (victim, _) = items
        .iter()
        .find(|(l, _)| l.index == 1)
        .ok_or("an item in file 1")?
        .clone();
    // The first entry's CRC: entries start at 1056, 8 bytes each (end, crc).
    flip(&dir.path().join("data00001.idx"), 1056 + 5)?;
    let db = builder(dir.path()).open().await?;
    assert!(
        matches!(db.read(victim).await, Err(Error::Corrupted { .. })),
        "the bytes can no longer be confirmed"
    );
    all_others_read(&db, &items, &[victim]).await?;
    let v = db.verify().await?;
    assert!(
        v.problems
            .iter()
            .any(|p| p.location == Some(victim) && p.kind == DamageKind::Corrupt),
        "{:?}",
        v.problems
    );
    db.stop().await?;
    Ok(())
}

/// Opening fails with `FilesInconsistency` naming `file` with `what`, and `inspect` (what
/// `aiodiskdb check` prints) reports the same.
async fn refused(dir: &Path, file: &str, what: &str) -> TestResult {
    match builder(dir).open().await {
        Err(Error::FilesInconsistency { path, reason }) => {
            assert!(path.ends_with(file), "{}: {reason}", path.display());
            assert!(reason.contains(what), "{reason}");
        }
        Err(e) => panic!("expected FilesInconsistency for {file}, got {e}"),
        Ok(_) => panic!("the damaged {file} was accepted"),
    }
    let ins = builder(dir).inspect().await?;
    assert!(
        ins.problems
            .iter()
            .any(|p| p.path.ends_with(file) && p.message.contains(what)),
        "{:?}",
        ins.problems
    );
    Ok(())
}

#[tokio::test]
async fn an_older_file_cut_extended_or_deleted_is_reported_at_open() -> TestResult {
    for (damage, what) in [
        ("cut", "cut"),
        ("zeros", "extended"),
        ("delete", "missing"),
        ("zero-tail", "altered"),
    ] {
        let dir = tempfile::tempdir()?;
        populate(dir.path()).await?;
        let path = dir.path().join(name(0));
        let len = std::fs::metadata(&path)?.len();
        match damage {
            "cut" => OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(len - 30)?,
            "zeros" => OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(len + 100)?,
            "delete" => std::fs::remove_file(&path)?,
            _ => OpenOptions::new()
                .write(true)
                .open(&path)?
                .write_all_at(&[0; 8], len - 8)?,
        }
        refused(dir.path(), &name(0), what).await?;
    }
    Ok(())
}

#[tokio::test]
async fn the_head_deleted_or_cut_to_its_header_is_reported_not_reused() -> TestResult {
    for cut in [false, true] {
        let dir = tempfile::tempdir()?;
        populate(dir.path()).await?;
        let path = dir.path().join(name(2));
        if cut {
            OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(HEADER_LEN)?;
        } else {
            std::fs::remove_file(&path)?;
        }
        refused(dir.path(), &name(2), if cut { "cut" } else { "missing" }).await?;
    }
    Ok(())
}

/// The head's data file deleted or cut, or its item index deleted, while the database
/// runs (by a person, a tool, a clean-up script): the next flush fails with
/// `FilesInconsistency` naming the file, rather than acknowledging items written into a
/// file no one can open again, or after a hole where acknowledged items were; the handle
/// then refuses writes. (Before: the flush succeeded, and the items were gone at the next
/// open.)
#[tokio::test]
async fn the_head_deleted_or_cut_while_running_fails_the_next_flush() -> TestResult {
    for damage in ["data deleted", "data cut", "index deleted"] {
        let dir = tempfile::tempdir()?;
        let db = builder(dir.path()).open().await?;
        let first = db.add(&b"first item"[..]).await?;
        db.flush().await?;
        let path = if damage.starts_with("index") {
            dir.path().join("data00000.idx")
        } else {
            dir.path().join(name(0))
        };
        if damage == "data cut" {
            OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(HEADER_LEN + u64::from(first.size) - 1)?;
        } else {
            std::fs::remove_file(&path)?;
        }
        db.add(&b"second item"[..]).await?;
        // The batch failed, the handle refuses writes: `InvalidDbState`, whose cause is the
        // inconsistency.
        let flushed = db.flush().await;
        let cause = match &flushed {
            Err(Error::InvalidDbState { cause: Some(c), .. }) => c.as_ref(),
            r => panic!("{damage}: the flush gave {r:?}"),
        };
        match cause {
            Error::FilesInconsistency { path: p, reason } => {
                assert_eq!(p, &path, "{damage}");
                let said = if damage.ends_with("cut") {
                    "cut to"
                } else {
                    "deleted"
                };
                assert!(reason.contains(said), "{damage}: {reason}");
            }
            e => panic!("{damage}: the flush failed with {e:?}"),
        }
        let refused = db.add(&b"third item"[..]).await;
        assert!(refused.is_err(), "{damage}: a write after it: {refused:?}");
        let _ = db.stop().await;
    }
    Ok(())
}

/// An older (sealed) data file deleted or cut while the database runs: a read of an item
/// it held fails with `FilesInconsistency` naming the file, never "not stored"; items of
/// other files still read. (Before: `read` returned `None`, as for a location never
/// written.)
#[tokio::test]
async fn an_older_file_deleted_or_cut_while_running_fails_its_reads() -> TestResult {
    for cut in [false, true] {
        let dir = tempfile::tempdir()?;
        let items = populate(dir.path()).await?;
        let db = builder(dir.path()).open().await?;
        let path = dir.path().join(name(0));
        if cut {
            OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(HEADER_LEN + 10)?;
        } else {
            std::fs::remove_file(&path)?;
        }
        let (gone, _) = items
            .iter()
            .find(|(l, _)| l.index == 0 && l.position > 10)
            .expect("items in index 0");
        match db.read(*gone).await {
            Err(Error::FilesInconsistency { path: p, reason }) => {
                assert_eq!(p, path, "cut {cut}");
                assert!(reason.contains("missing or shorter"), "{reason}");
            }
            r => panic!("cut {cut}: the read gave {r:?}"),
        }
        for (loc, data) in items.iter().filter(|(l, _)| l.index != 0) {
            assert_eq!(db.read(*loc).await?.as_deref(), Some(&data[..]), "{loc}");
        }
        db.stop().await?;
    }
    Ok(())
}

#[tokio::test]
async fn two_files_swapped_or_a_header_altered_are_reported() -> TestResult {
    let dir = tempfile::tempdir()?;
    populate(dir.path()).await?;
    let (a, b) = (dir.path().join(name(0)), dir.path().join(name(1)));
    let tmp = dir.path().join("swap");
    std::fs::rename(&a, &tmp)?;
    std::fs::rename(&b, &a)?;
    std::fs::rename(&tmp, &b)?;
    assert!(
        matches!(
            builder(dir.path()).open().await,
            Err(Error::FilesInconsistency { .. })
        ),
        "swapped files"
    );

    let dir = tempfile::tempdir()?;
    populate(dir.path()).await?;
    // The trim offset field of the header (bytes 4..8).
    OpenOptions::new()
        .write(true)
        .open(dir.path().join(name(0)))?
        .write_all_at(&7u32.to_le_bytes(), 4)?;
    refused(dir.path(), &name(0), "trim offset").await
}

#[tokio::test]
async fn a_deleted_item_index_is_reported_and_its_items_are_served_unchecked() -> TestResult {
    let dir = tempfile::tempdir()?;
    let items = populate(dir.path()).await?;
    std::fs::remove_file(dir.path().join("data00000.idx"))?;
    let ins = builder(dir.path()).inspect().await?;
    assert!(
        ins.problems
            .iter()
            .any(|p| p.path.ends_with("data00000.idx") && p.message.contains("missing")),
        "{:?} {}",
        ins.problems,
        ins.locked
    );
    let db = builder(dir.path()).open().await?;
    all_others_read(&db, &items, &[]).await?;
    let v = db.verify().await?;
    assert!(
        v.problems
            .iter()
            .any(|p| p.index == 0 && p.kind == DamageKind::Inconsistent),
        "{:?}",
        v.problems
    );
    assert!(v.unindexed_bytes > 0, "file 0 is no longer checkable");
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn locations_list_every_item_in_order_buffered_ones_included() -> TestResult {
    let dir = tempfile::tempdir()?;
    let items = populate(dir.path()).await?;
    let db = builder(dir.path()).open().await?;
    let extra = db.add(&b"buffered"[..]).await?;
    for index in 0..=2 {
        let mut want: Vec<ItemLocation> = items
            .iter()
            .map(|(l, _)| *l)
            .filter(|l| l.index == index)
            .collect();
        if extra.index == index {
            want.push(extra);
        }
        assert_eq!(db.locations(index).await?, want, "index {index}");
    }
    assert!(matches!(
        db.locations(9).await,
        Err(Error::IndexDoesNotExist { index: 9 })
    ));
    db.stop().await?;
    Ok(())
}

/// The items of `tests/fixtures/ours_v2` (see its README).
fn v2_items() -> Vec<(ItemLocation, Vec<u8>)> {
    let mut out = Vec::new();
    let (mut index, mut end) = (0u32, 0u32);
    for i in 1..=12u32 {
        let size = 40 + 7 * i;
        if HEADER_LEN + u64::from(end + size) > 300 {
            index += 1;
            end = 0;
        }
        let loc = ItemLocation {
            index,
            position: end,
            size,
        };
        out.push((
            loc,
            vec![64 + u8::try_from(i).expect("small"); size as usize],
        ));
        end += size;
    }
    out
}

/// A copy of the fixture written before checksummed commits.
fn v2_copy() -> std::io::Result<tempfile::TempDir> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ours_v2/db");
    let dir = tempfile::tempdir()?;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        std::fs::copy(e.path(), dir.path().join(e.file_name()))?;
    }
    Ok(dir)
}

async fn v2_upgrades(dir: &Path) -> TestResult {
    let items = v2_items();
    let b = || {
        AioDiskDb::builder(dir)
            .max_file_size(300)
            .max_buffer_size(200)
    };
    let db = b().open().await?;
    all_others_read(&db, &items, &[]).await?;
    let v = db.verify().await?;
    assert!(v.is_ok(), "{:?}", v.problems);
    let total: u64 = items.iter().map(|(l, _)| u64::from(l.size)).sum();
    assert_eq!(
        (v.items_checked, v.unindexed_bytes),
        (0, total),
        "the old data is counted as unindexed"
    );
    // The first change upgrades the state record; what it adds is indexed.
    let new = db.add(&b"after the upgrade"[..]).await?;
    db.stop().await?;
    let state = std::fs::read(dir.join(".aiodiskdb.data.state"))?;
    assert!(
        state.chunks(512).any(|s| s[8..12] == 3u32.to_le_bytes()),
        "a version 3 record"
    );
    let db = b().open().await?;
    all_others_read(&db, &items, &[]).await?;
    assert_eq!(
        db.read(new).await?.as_deref(),
        Some(&b"after the upgrade"[..])
    );
    let v = db.verify().await?;
    assert!(v.is_ok(), "{:?}", v.problems);
    assert_eq!((v.items_checked, v.unindexed_bytes), (1, total));
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_clean_directory_of_the_previous_version_upgrades_itself() -> TestResult {
    let dir = v2_copy()?;
    v2_upgrades(dir.path()).await
}

#[tokio::test]
async fn a_crashed_directory_of_the_previous_version_recovers_and_upgrades() -> TestResult {
    let dir = v2_copy()?;
    // Make the newest record a dirty one (the flags word, then the slot's CRC32C), and
    // leave a torn tail past the committed end, as a crash of that version would.
    let state = dir.path().join(".aiodiskdb.data.state");
    let mut raw = std::fs::read(&state)?;
    let newest = (0..2)
        .max_by_key(|s| u64::from_le_bytes(raw[s * 512 + 12..s * 512 + 20].try_into().unwrap()))
        .unwrap();
    let slot = &mut raw[newest * 512..newest * 512 + 512];
    assert_eq!(slot[8..12], 2u32.to_le_bytes(), "a version 2 record");
    slot[20..24].copy_from_slice(&0u32.to_le_bytes());
    let crc = crc32c::crc32c(&slot[..508]);
    slot[508..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&state, raw)?;
    let head = dir.path().join("data00004.dat");
    let committed = std::fs::metadata(&head)?.len();
    OpenOptions::new()
        .write(true)
        .open(&head)?
        .write_all_at(&[0xee; 10], committed)?;
    let ins = AioDiskDb::builder(dir.path())
        .max_file_size(300)
        .max_buffer_size(200)
        .inspect()
        .await?;
    assert!(
        ins.problems
            .iter()
            .any(|p| p.message.contains("recovery pending")),
        "{:?}",
        ins.problems
    );
    v2_upgrades(dir.path()).await?;
    assert_eq!(
        std::fs::metadata(&head)?.len(),
        committed + b"after the upgrade".len() as u64,
        "the torn tail was cut before the new item"
    );
    Ok(())
}
