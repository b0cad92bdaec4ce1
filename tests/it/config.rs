//! Builder validation: every bad option is an `InvalidConfiguration` naming it, returned by
//! `open` before anything touches the disk; the defaults work.

use std::time::Duration;

use aiodiskdb::{AioDiskDb, Builder, Error};

use crate::common::{data_files, file_bytes, header, TestResult};

/// Opens `builder` and returns the option an `InvalidConfiguration` names; `check`, which
/// touches nothing, names the same option.
async fn rejected_option(builder: Builder) -> Result<&'static str, String> {
    let checked = match builder.check() {
        Err(Error::InvalidConfiguration { option, .. }) => option,
        other => {
            return Err(format!(
                "check: expected InvalidConfiguration, got {other:?}"
            ))
        }
    };
    match builder.open().await {
        Err(Error::InvalidConfiguration {
            option,
            value,
            reason,
        }) => {
            assert!(!reason.is_empty() && !value.is_empty());
            assert_eq!(checked, option, "check and open disagree");
            Ok(option)
        }
        Err(e) => Err(format!("expected InvalidConfiguration, got {e}")),
        Ok(db) => {
            let _ = db.stop().await;
            Err("expected InvalidConfiguration, the database opened".into())
        }
    }
}

#[tokio::test]
async fn every_bad_option_is_named() -> TestResult {
    let root = tempfile::tempdir()?;
    let path = root.path().join("never-created");
    let b = || AioDiskDb::builder(&path);
    let cases: Vec<(&str, Builder, &str)> = vec![
        ("zero max_file_size", b().max_file_size(0), "max_file_size"),
        ("header-only file", b().max_file_size(24), "max_file_size"),
        ("4 GiB file", b().max_file_size(4 << 30), "max_file_size"),
        ("huge file", b().max_file_size(u64::MAX), "max_file_size"),
        (
            "zero buffer",
            b().max_file_size(1000).max_buffer_size(0),
            "max_buffer_size",
        ),
        (
            "buffer larger than a file",
            b().max_file_size(1000).max_buffer_size(1001),
            "max_buffer_size",
        ),
        (
            "default buffer larger than a small file",
            b().max_file_size(1 << 20),
            "max_buffer_size",
        ),
        ("zero items", b().max_buffer_items(0), "max_buffer_items"),
        (
            "zero interval",
            b().flush_interval(Duration::ZERO),
            "flush_interval",
        ),
        ("zero timeout", b().timeout(Duration::ZERO), "timeout"),
        ("zero concurrency", b().concurrency(0), "concurrency"),
        ("empty prefix", b().file_prefix(""), "file_prefix"),
        ("digit in prefix", b().file_prefix("data1"), "file_prefix"),
        ("dash in prefix", b().file_prefix("da-ta"), "file_prefix"),
        ("dot in prefix", b().file_prefix("da.ta"), "file_prefix"),
        ("path in prefix", b().file_prefix("../data"), "file_prefix"),
        ("space in prefix", b().file_prefix("da ta"), "file_prefix"),
        (
            "prefix of 201 bytes",
            b().file_prefix("d".repeat(201)),
            "file_prefix",
        ),
        ("zero padding", b().file_padding(0), "file_padding"),
        ("padding 11", b().file_padding(11), "file_padding"),
    ];
    for (what, builder, option) in cases {
        assert_eq!(rejected_option(builder).await?, option, "{what}");
    }
    assert!(!path.exists(), "a rejected configuration touches nothing");
    Ok(())
}

#[tokio::test]
async fn boundary_values_are_accepted() -> TestResult {
    let root = tempfile::tempdir()?;
    let cases = [
        (
            "smallest file",
            AioDiskDb::builder(root.path().join("a"))
                .max_file_size(25)
                .max_buffer_size(1),
        ),
        (
            "buffer equal to the file",
            AioDiskDb::builder(root.path().join("b"))
                .max_file_size(1000)
                .max_buffer_size(1000),
        ),
        (
            "just under 4 GiB",
            AioDiskDb::builder(root.path().join("c")).max_file_size((4 << 30) - 1),
        ),
        (
            "one item, tiny interval, one reader",
            AioDiskDb::builder(root.path().join("d"))
                .max_buffer_items(1)
                .flush_interval(Duration::from_nanos(1))
                .timeout(Duration::from_millis(500))
                .concurrency(1),
        ),
        (
            "padding 1",
            AioDiskDb::builder(root.path().join("e")).file_padding(1),
        ),
        (
            "padding 10",
            AioDiskDb::builder(root.path().join("f")).file_padding(10),
        ),
    ];
    for (what, builder) in cases {
        builder.check().map_err(|e| format!("{what}: check: {e}"))?;
        let db = builder.open().await.map_err(|e| format!("{what}: {e}"))?;
        let l = db.add(&b"x"[..]).await?;
        db.flush().await?;
        assert_eq!(db.read(l).await?.as_deref(), Some(&b"x"[..]), "{what}");
        db.stop().await?;
    }
    assert_eq!(data_files(&root.path().join("e")), vec!["data0.dat"]);
    assert_eq!(
        data_files(&root.path().join("f")),
        vec!["data0000000000.dat"]
    );
    Ok(())
}

#[tokio::test]
async fn smallest_file_holds_one_byte() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(25)
        .max_buffer_size(25)
        .open()
        .await?;
    assert!(matches!(
        db.add(&b"ab"[..]).await,
        Err(Error::ItemTooLarge { size: 2, limit: 1 })
    ));
    for (k, byte) in (0u32..).zip(b"abc") {
        let l = db.add(vec![*byte]).await?;
        assert_eq!((l.index, l.position), (k, 0));
    }
    db.stop().await?;
    for (k, byte) in b"abc".iter().enumerate() {
        let mut expected = header(0);
        expected.push(*byte);
        assert_eq!(file_bytes(dir.path(), &format!("data{k:05}.dat")), expected);
    }
    Ok(())
}

#[tokio::test]
async fn create_if_missing() -> TestResult {
    let root = tempfile::tempdir()?;
    let missing = root.path().join("missing");
    let r = AioDiskDb::builder(&missing)
        .create_if_missing(false)
        .open()
        .await;
    assert!(matches!(r, Err(Error::Io { .. })), "{r:?}");
    assert!(!missing.exists(), "not created");

    let nested = root.path().join("a").join("b").join("c");
    let db = AioDiskDb::open(&nested).await?;
    assert!(nested.is_dir());
    db.stop().await?;
    // An existing directory opens without create_if_missing.
    let db = AioDiskDb::builder(&nested)
        .create_if_missing(false)
        .open()
        .await?;
    db.stop().await?;

    // A file where the directory should be is an error, not a directory.
    let file = root.path().join("file");
    std::fs::write(&file, b"not a dir")?;
    assert!(AioDiskDb::open(&file).await.is_err());
    assert_eq!(std::fs::read(&file)?, b"not a dir");
    Ok(())
}

#[tokio::test]
async fn defaults_work() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::open(dir.path()).await?;
    let big = vec![0xabu8; 16 << 20]; // the default max_buffer_size
    let l = db.add(big.clone()).await?;
    assert!(matches!(
        db.add(vec![0u8; (16 << 20) + 1]).await,
        Err(Error::ItemTooLarge { limit, .. }) if limit == 16 << 20
    ));
    let small = db.add(&b"small"[..]).await?;
    assert_eq!((small.index, small.position), (0, 16 << 20));
    db.stop().await?;
    assert_eq!(data_files(dir.path()), vec!["data00000.dat"]);
    let bytes = file_bytes(dir.path(), "data00000.dat");
    assert_eq!(&bytes[..24], &header(0)[..]);
    assert_eq!(bytes.len(), 24 + (16 << 20) + 5);
    let db = AioDiskDb::open(dir.path()).await?;
    assert_eq!(db.read(l).await?.as_deref(), Some(&big[..]));
    assert!(
        matches!(db.rtrim(0, 0, &[]).await, Err(Error::ReadOnly)),
        "overwrite is off by default"
    );
    db.stop().await?;
    Ok(())
}

/// Runs `fut`, failing instead of hanging past `secs` seconds.
async fn within<T>(
    secs: u64,
    what: &str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, String> {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .map_err(|_| format!("{what} still waiting after {secs} s"))
}

#[tokio::test]
async fn a_flush_interval_of_duration_max_never_fires_and_never_panics() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_buffer_size(10)
        .flush_interval(Duration::MAX)
        .open()
        .await?;
    let mut locs = Vec::new();
    // The third item waits for space: the flusher must be alive to make it.
    for tag in 0..3u8 {
        locs.push(within(10, "add", db.add(vec![tag; 8])).await??);
    }
    within(10, "flush", db.flush()).await??;
    for (tag, l) in (0..3u8).zip(&locs) {
        assert_eq!(db.read(*l).await?, Some(vec![tag; 8].into()));
    }
    within(10, "stop", db.stop()).await??;
    assert_eq!(
        file_bytes(dir.path(), "data00000.dat").len(),
        24 + 3 * 8,
        "every item persisted"
    );
    Ok(())
}

#[tokio::test]
async fn a_timeout_of_duration_max_waits_for_space_without_panicking() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_buffer_size(10)
        .flush_interval(Duration::from_secs(3600))
        .timeout(Duration::MAX)
        .open()
        .await?;
    let mut locs = Vec::new();
    for tag in 0..4u8 {
        // From the second on, each add waits for the flusher to take the full buffer.
        locs.push(within(10, "add", db.add(vec![tag; 8])).await??);
    }
    within(10, "flush", db.flush()).await??;
    for (tag, l) in (0..4u8).zip(&locs) {
        assert_eq!(db.read(*l).await?, Some(vec![tag; 8].into()));
    }
    within(10, "stop", db.stop()).await??;
    Ok(())
}
