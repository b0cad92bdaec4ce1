//! The on-disk format: file names, the 24-byte header, items back to back, and what `open`
//! does with broken data files and with files that are not ours.

use std::path::Path;

use aiodiskdb::{AioDiskDb, Error};

use crate::common::{
    data_files, file_bytes, header, header_with, item, snapshot, visible_snapshot, TestResult,
};

#[tokio::test]
async fn a_fresh_database_writes_the_python_header() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::open(dir.path()).await?;
    assert_eq!(data_files(dir.path()), vec!["data00000.dat"]);
    assert_eq!(
        file_bytes(dir.path(), "data00000.dat"),
        [0x0d, 0xce, 0x8f, 0x37, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    db.stop().await?;
    assert_eq!(file_bytes(dir.path(), "data00000.dat"), header(0));
    Ok(())
}

#[tokio::test]
async fn items_follow_the_header_back_to_back() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(24 + 64)
        .max_buffer_size(64)
        .open()
        .await?;
    let sizes = [1usize, 63, 64, 30, 30, 4];
    for (tag, size) in (0u32..).zip(sizes) {
        db.add(item(tag, size)).await?;
    }
    db.stop().await?;
    let files: [&[u32]; 3] = [&[0, 1], &[2], &[3, 4, 5]];
    assert_eq!(
        data_files(dir.path()),
        vec!["data00000.dat", "data00001.dat", "data00002.dat"]
    );
    for (index, tags) in files.iter().enumerate() {
        let mut expected = header(0);
        for &t in *tags {
            expected.extend_from_slice(&item(t, sizes[t as usize]));
        }
        assert_eq!(
            file_bytes(dir.path(), &format!("data{index:05}.dat")),
            expected,
            "index {index}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn custom_prefix_padding_and_genesis() -> TestResult {
    const BTC: [u8; 4] = [0xf9, 0xbe, 0xb4, 0xd9];
    let dir = tempfile::tempdir()?;
    let open = || {
        AioDiskDb::builder(dir.path())
            .file_prefix("blk")
            .file_padding(8)
            .genesis_bytes(BTC)
            .max_file_size(24 + 10)
            .max_buffer_size(10)
    };
    let db = open().open().await?;
    let a = db.add(vec![1u8; 10]).await?;
    let b = db.add(vec![2u8; 4]).await?;
    assert_eq!((a.index, b.index), (0, 1));
    db.stop().await?;
    assert_eq!(
        data_files(dir.path()),
        vec!["blk00000000.dat", "blk00000001.dat"]
    );
    let mut first = header_with(BTC, 0);
    first.extend_from_slice(&[1u8; 10]);
    assert_eq!(&first[..4], &[0xf9, 0xbe, 0xb4, 0xd9]);
    assert_eq!(file_bytes(dir.path(), "blk00000000.dat"), first);
    let mut second = header_with(BTC, 0);
    second.extend_from_slice(&[2u8; 4]);
    assert_eq!(file_bytes(dir.path(), "blk00000001.dat"), second);

    // The same files with another genesis are not ours: the state records the genesis
    // bytes, and the open is refused before anything is written.
    let before = snapshot(dir.path());
    let other_genesis = || {
        AioDiskDb::builder(dir.path())
            .file_prefix("blk")
            .file_padding(8)
            .max_file_size(24 + 10)
            .max_buffer_size(10)
    };
    match other_genesis().open().await {
        Err(Error::InvalidConfiguration {
            option: "genesis_bytes",
            value,
            reason,
        }) => {
            assert_eq!(value, "0dce8f37");
            assert!(reason.contains("f9beb4d9"), "{reason}");
        }
        other => panic!("expected InvalidConfiguration, got {other:?}"),
    }
    assert_eq!(snapshot(dir.path()), before);
    // Without our state (as the Python library leaves a directory), each header says so.
    std::fs::remove_file(dir.path().join(".aiodiskdb.blk.state"))?;
    let before = visible_snapshot(dir.path());
    match other_genesis().open().await {
        Err(Error::InvalidDataFile { path, .. }) => {
            assert_eq!(path, dir.path().join("blk00000000.dat"));
        }
        other => panic!("expected InvalidDataFile, got {other:?}"),
    }
    assert_eq!(visible_snapshot(dir.path()), before);

    let db = open().open().await?;
    assert_eq!(db.read(a).await?.as_deref(), Some(&[1u8; 10][..]));
    assert_eq!(db.read(b).await?.as_deref(), Some(&[2u8; 4][..]));
    db.stop().await?;
    Ok(())
}

/// Writes a database of two files (index 0 full, index 1 current), stopped cleanly.
async fn two_files(dir: &Path) -> aiodiskdb::Result<()> {
    let db = AioDiskDb::builder(dir)
        .max_file_size(24 + 10)
        .max_buffer_size(10)
        .open()
        .await?;
    db.add(vec![1u8; 10]).await?;
    db.add(vec![2u8; 5]).await?;
    db.stop().await
}

#[tokio::test]
async fn broken_headers_fail_open_and_change_nothing() -> TestResult {
    let mut bad_reserved = header(0);
    bad_reserved[23] = 1;
    bad_reserved.extend_from_slice(&[2u8; 5]);
    let mut bad_genesis = header_with(*b"\x0d\xce\x8f\x38", 0);
    bad_genesis.extend_from_slice(&[2u8; 5]);
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "10 bytes",
            "data00001.dat",
            vec![0x0d, 0xce, 0x8f, 0x37, 0, 0, 0, 0, 0, 0],
        ),
        ("empty", "data00001.dat", Vec::new()),
        ("python test file", "data00000.dat", b"aa".repeat(8)),
        ("wrong genesis", "data00001.dat", bad_genesis),
        ("reserved byte", "data00001.dat", bad_reserved),
        ("older file broken", "data00000.dat", header_with([0; 4], 0)),
    ];
    for (what, broken, bytes) in cases {
        let dir = tempfile::tempdir()?;
        two_files(dir.path()).await?;
        std::fs::write(dir.path().join(broken), &bytes)?;
        let before = visible_snapshot(dir.path());
        let r = AioDiskDb::builder(dir.path())
            .max_file_size(24 + 10)
            .max_buffer_size(10)
            .open()
            .await;
        match r {
            Err(Error::InvalidDataFile { path, reason }) => {
                assert_eq!(path, dir.path().join(broken), "{what}");
                assert!(!reason.is_empty());
            }
            other => panic!("{what}: expected InvalidDataFile, got {other:?}"),
        }
        assert_eq!(visible_snapshot(dir.path()), before, "{what}: untouched");
        assert_eq!(file_bytes(dir.path(), broken), bytes, "{what}");
    }
    Ok(())
}

#[tokio::test]
async fn a_broken_file_in_an_empty_directory_is_not_replaced() -> TestResult {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("data00000.dat"), b"aa".repeat(8))?;
    let r = AioDiskDb::open(dir.path()).await;
    assert!(matches!(r, Err(Error::InvalidDataFile { .. })), "{r:?}");
    assert_eq!(data_files(dir.path()), vec!["data00000.dat"]);
    assert_eq!(file_bytes(dir.path(), "data00000.dat"), b"aa".repeat(8));
    Ok(())
}

#[tokio::test]
async fn unrelated_files_are_ignored_and_untouched() -> TestResult {
    let dir = tempfile::tempdir()?;
    let foreign: [(&str, &[u8]); 8] = [
        ("notes.txt", b"my notes"),
        ("data.txt", b"not data"),
        ("other00001.dat", b"another prefix"),
        ("data001.dat", b"wrong padding"),
        ("data000001.dat", b"wrong padding too"),
        ("data0000x.dat", b"not a number"),
        ("data00001.dat.bak", b"a backup"),
        ("DATA00001.dat", b"other case"),
    ];
    for (name, bytes) in foreign {
        std::fs::write(dir.path().join(name), bytes)?;
    }
    std::fs::create_dir(dir.path().join("data00009.d"))?;
    let db = AioDiskDb::open(dir.path()).await?;
    let l = db.add(&b"mine"[..]).await?;
    assert_eq!(
        (l.index, l.position),
        (0, 0),
        "no foreign file counts as an index"
    );
    assert!(matches!(
        db.read(aiodiskdb::ItemLocation {
            index: 1,
            position: 0,
            size: 1
        })
        .await,
        Ok(None)
    ));
    db.stop().await?;
    for (name, bytes) in foreign {
        assert_eq!(std::fs::read(dir.path().join(name))?, bytes, "{name}");
    }
    let mut expected = header(0);
    expected.extend_from_slice(b"mine");
    assert_eq!(file_bytes(dir.path(), "data00000.dat"), expected);
    let db = AioDiskDb::open(dir.path()).await?;
    assert_eq!(db.read(l).await?.as_deref(), Some(&b"mine"[..]));
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn two_prefixes_share_a_directory() -> TestResult {
    let dir = tempfile::tempdir()?;
    let blocks = AioDiskDb::builder(dir.path())
        .file_prefix("blk")
        .open()
        .await?;
    let undo = AioDiskDb::builder(dir.path())
        .file_prefix("rev")
        .open()
        .await?;
    let a = blocks.add(&b"block"[..]).await?;
    let b = undo.add(&b"undo"[..]).await?;
    assert_eq!((a.index, a.position, b.index, b.position), (0, 0, 0, 0));
    blocks.stop().await?;
    undo.stop().await?;
    assert_eq!(data_files(dir.path()), vec!["blk00000.dat", "rev00000.dat"]);
    let mut expected = header(0);
    expected.extend_from_slice(b"block");
    assert_eq!(file_bytes(dir.path(), "blk00000.dat"), expected);
    Ok(())
}

/// Copies every file of `from` into a new directory `to` (a crash image of a writer that is
/// idle: everything it wrote is in the page cache).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        std::fs::copy(e.path(), to.join(e.file_name()))?;
    }
    Ok(())
}

/// The state records the naming and the genesis bytes: an open with another padding (or
/// prefix, or genesis) is refused before anything is written, naming both values. Before,
/// padding 6 on a padding-5 directory created `data000011.dat` beside `data00011.dat` and
/// recorded it as the head; after a crash there, the next correct open cut the real head
/// back to its header.
#[tokio::test]
async fn an_open_with_another_naming_is_refused_before_anything_is_written() -> TestResult {
    let t = tempfile::tempdir()?;
    let clean = t.path().join("clean");
    let crashed = t.path().join("crashed");
    let with_padding = |dir: &Path, padding: usize| {
        AioDiskDb::builder(dir)
            .file_padding(padding)
            .max_file_size(24 + 100)
            .max_buffer_size(100)
    };
    let db = with_padding(&clean, 5).open().await?;
    let mut locs = Vec::new();
    for k in 0..30u32 {
        locs.push((db.add(item(k, 40)).await?, item(k, 40)));
    }
    db.flush().await?;
    assert!(locs.last().unwrap().0.index >= 11, "several files");
    copy_dir(&clean, &crashed)?; // a dirty state, as a kill -9 leaves it
    db.stop().await?;

    for dir in [&clean, &crashed] {
        let before = snapshot(dir);
        match with_padding(dir, 6).open().await {
            Err(Error::InvalidConfiguration {
                option: "file_padding",
                value,
                reason,
            }) => {
                assert_eq!(value, "6");
                assert!(reason.contains("file_padding = 5"), "{reason}");
            }
            other => panic!(
                "{}: expected InvalidConfiguration, got {other:?}",
                dir.display()
            ),
        }
        assert_eq!(snapshot(dir), before, "{}: nothing written", dir.display());
        let ins = with_padding(dir, 6).inspect().await?;
        assert!(
            ins.problems
                .iter()
                .any(|p| p.message.contains("written with file_padding = 5")),
            "{:?}",
            ins.problems
        );
        let db = with_padding(dir, 5).open().await?;
        for (loc, data) in &locs {
            assert_eq!(db.read(*loc).await?.as_deref(), Some(&data[..]), "{loc}");
        }
        db.stop().await?;
    }
    Ok(())
}
