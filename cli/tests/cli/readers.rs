//! The reading commands (`read`, `scan`, `verify`, `info`, `check`) beside a writer that
//! holds the directory and changes it under them, on directories of another naming, and on
//! files they may not write (issue 13): they work, never write, never create anything.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aiodiskdb::{AioDiskDb, ItemLocation};

use super::*;

/// The bytes of item `i`: its number, then a pattern of it (each item differs).
fn item(i: u32) -> Vec<u8> {
    let len = 40 + (i % 7) as usize * 13;
    let mut v = i.to_le_bytes().to_vec();
    v.extend((0..len).map(|k| u8::try_from((i as usize * 31 + k) % 256).unwrap_or(0)));
    v
}

/// A writer in this process (it holds the directory's lock, as a service would) that adds
/// and flushes items in a loop, rolling over to a new file every few items, and with
/// `drops`, drops the oldest file now and then. It records each item once it is durable.
struct Writer {
    rt: tokio::runtime::Runtime,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Durable items: location and number, and whether their file was dropped since.
    durable: Arc<Mutex<Vec<(ItemLocation, u32, bool)>>>,
}

impl Writer {
    fn start(db: &Path, drops: bool) -> Result<Writer> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let handle = rt.block_on(
            AioDiskDb::builder(db)
                .max_file_size(600)
                .max_buffer_size(600)
                .overwrite(true)
                .open(),
        )?;
        let stop = Arc::new(AtomicBool::new(false));
        let durable = Arc::new(Mutex::new(Vec::new()));
        // A few items before any reader starts.
        rt.block_on(async {
            for i in 0..20 {
                let loc = handle.add(item(i)).await?;
                durable.lock().expect("lock").push((loc, i, false));
            }
            handle.flush().await
        })?;
        let task = rt.spawn(write_loop(
            handle,
            drops,
            Arc::clone(&stop),
            Arc::clone(&durable),
        ));
        Ok(Writer {
            rt,
            stop,
            task,
            durable,
        })
    }

    /// The durable items whose file was not dropped.
    fn stored(&self) -> Vec<(ItemLocation, u32)> {
        self.durable
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, _, dropped)| !dropped)
            .map(|&(l, i, _)| (l, i))
            .collect()
    }

    fn finish(self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        self.rt.block_on(self.task)??;
        Ok(())
    }
}

async fn write_loop(
    db: AioDiskDb,
    drops: bool,
    stop: Arc<AtomicBool>,
    durable: Arc<Mutex<Vec<(ItemLocation, u32, bool)>>>,
) -> anyhow::Result<()> {
    let mut i = 20u32;
    let mut dropped_below = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let loc = db.add(item(i)).await?;
        db.flush().await?;
        durable.lock().expect("lock").push((loc, i, false));
        i += 1;
        // Keep the three newest files: drop the oldest ones as the head moves on.
        if drops && loc.index >= dropped_below + 3 {
            // Not durable-read any more from here: mark before the file goes.
            for e in durable.lock().expect("lock").iter_mut() {
                if e.0.index == dropped_below {
                    e.2 = true;
                }
            }
            db.drop_index(dropped_below).await?;
            dropped_below += 1;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    db.stop().await?;
    Ok(())
}

/// `read`, `scan` and `verify` while a writer in another handle (this process) holds the
/// directory, appends, rolls over and drops files: `read` returns each durable item's
/// bytes, `scan` lists every item durable before it started (whose file is kept), `verify`
/// finds every item sound; none says the directory is locked.
#[test]
fn read_scan_and_verify_beside_a_writer_that_holds_the_directory() -> Result<()> {
    let (_t, db) = temp_db()?;
    let d = s(&db);
    let w = Writer::start(&db, true)?;
    for round in 0..12 {
        let stored = w.stored();
        // The newest item, and one from the middle of what is kept.
        for &(loc, i) in &[stored[stored.len() - 1], stored[stored.len() / 2]] {
            let r = run(&["read", &loc.to_string(), d])?;
            if r.code != 0 && w.stored().iter().all(|(l, _)| *l != loc) {
                // Dropped between the pick and the read: `None` is the right answer.
                r.expect_error("is not stored")?;
                continue;
            }
            assert_eq!(r.expect_code(0)?.stdout, item(i), "round {round}: {loc}");
        }
        let before: Vec<String> = w.stored().iter().map(|(l, _)| l.to_string()).collect();
        let listed = run(&["scan", d])?.expect_code(0)?.text();
        let after: Vec<String> = w.stored().iter().map(|(l, _)| l.to_string()).collect();
        let listed: Vec<&str> = listed.lines().collect();
        for loc in before.iter().filter(|l| after.contains(l)) {
            ensure!(
                listed.contains(&loc.as_str()),
                "round {round}: scan missed {loc}: {listed:?}"
            );
        }
        let r = run(&["verify", d, "--json"])?.expect_code(0)?.json()?;
        assert_eq!(r["ok"], true, "round {round}: {r}");
        ensure!(r["items_checked"].as_u64().is_some_and(|n| n > 0), "{r}");
    }
    w.finish()
}

/// `check` and `info` beside a writer that rolls over and drops files, many times: a file
/// gone between their listing and their reading is surveyed again, never reported (they
/// reported "cannot read: No such file or directory" in 4 of 200 runs).
#[test]
fn check_and_info_beside_a_writer_that_drops_files_report_no_false_problems() -> Result<()> {
    let (_t, db) = temp_db()?;
    let d = s(&db);
    let w = Writer::start(&db, true)?;
    for round in 0..100 {
        let j = run(&["check", d, "--json"])?.json()?;
        assert_eq!(j["sound"], true, "round {round}: check: {j}");
        assert_eq!(j["problems"], serde_json::json!([]), "round {round}: {j}");
        assert_eq!(j["locked"], true, "round {round}: {j}");
        let j = run(&["info", d, "--json"])?.expect_code(0)?.json()?;
        assert_eq!(
            j["problems"],
            serde_json::json!([]),
            "round {round}: info: {j}"
        );
        assert_eq!(j["pending_recovery"], serde_json::json!([]), "{j}");
    }
    w.finish()?;
    // And the directory the writer left is sound.
    run(&["check", d])?.expect_code(0)?;
    Ok(())
}

/// A directory of `blk` files read without `--prefix blk` (and a directory with nothing
/// in it): `read`, `scan` and `verify` answer, and create nothing (no state file, no empty
/// data file).
#[test]
fn reading_a_directory_of_another_prefix_creates_nothing() -> Result<()> {
    let (t, db) = temp_db()?;
    let d = s(&db);
    let loc = aiodiskdb(&["add", d, "--prefix", "blk"], b"block")?
        .expect_code(0)?
        .text();
    let loc = loc.trim();
    let before = snapshot_with_times(&db)?;
    run(&["read", loc, d])?.expect_error("is not stored")?;
    run(&["read", "0:0:1", "--hex", d])?.expect_error("is not stored")?;
    let listed = run(&["scan", d])?.expect_code(0)?;
    ensure!(listed.stdout.is_empty(), "{}", listed.text());
    let v = run(&["verify", d, "--json"])?.expect_code(0)?.json()?;
    // The view of a directory without data files of this naming has an empty head, as a
    // writer's open would create it: nothing to check, and nothing is created.
    assert_eq!(
        (v["items_checked"].as_u64(), v["bytes_checked"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
    assert_eq!(
        snapshot_with_times(&db)?,
        before,
        "a reading command changed the directory"
    );
    assert_eq!(
        run(&["read", loc, d, "--prefix", "blk"])?
            .expect_code(0)?
            .stdout,
        b"block"
    );

    let empty = t.path().join("empty");
    std::fs::create_dir(&empty)?;
    let e = s(&empty);
    run(&["read", "0:0:1", e])?.expect_error("is not stored")?;
    run(&["scan", e])?.expect_code(0)?;
    run(&["verify", e])?.expect_code(0)?;
    run(&["info", e])?.expect_code(0)?;
    run(&["check", e])?.expect_code(0)?;
    ensure!(
        snapshot(&empty)?.is_empty(),
        "created in an empty directory: {:?}",
        snapshot(&empty)?
    );
    assert_eq!(snapshot_with_times(&db)?, before);
    Ok(())
}

/// The reading commands on a directory whose files are mode 444 and which is mode 555:
/// they succeed and the directory is as it was (names, bytes, modification times). Run
/// as root (as CI does), the modes do not stop a write: the snapshot is what shows that
/// nothing was written or created; as another user the modes also refuse any write.
#[test]
fn reading_commands_need_no_write_permission_and_write_nothing() -> Result<()> {
    let (_t, db) = temp_db()?;
    let d = s(&db);
    let locs = add_three(&db)?;
    for e in std::fs::read_dir(&db)? {
        std::fs::set_permissions(e?.path(), std::fs::Permissions::from_mode(0o444))?;
    }
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o555))?;
    let before = snapshot_with_times(&db)?;
    // Whether the modes bite for this user (not for root).
    let probe = db.join("probe");
    let modes_bite = std::fs::File::create(&probe).is_err();
    if !modes_bite {
        std::fs::remove_file(&probe)?;
        eprintln!("running as root: the modes refuse nothing, the snapshot is the check");
    }
    let outcome = (|| -> Result<()> {
        for (loc, want) in locs.iter().zip([&b"hello"[..], b"world!", b"third item"]) {
            assert_eq!(run(&["read", loc, d])?.expect_code(0)?.stdout, want);
        }
        assert_eq!(
            run(&["scan", d])?.expect_code(0)?.text(),
            format!("{}\n", locs.join("\n"))
        );
        let v = run(&["verify", d, "--json"])?.expect_code(0)?.json()?;
        assert_eq!(v["items_checked"], 3);
        run(&["info", d])?.expect_code(0)?;
        run(&["check", d])?.expect_code(0)?;
        assert_eq!(
            snapshot_with_times(&db)?,
            before,
            "a reading command changed the directory"
        );
        Ok(())
    })();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o755))?;
    outcome
}

/// The files of a directory: names, bytes and modification times.
fn snapshot_with_times(dir: &Path) -> Result<Vec<(String, Vec<u8>, SystemTime)>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        files.push((
            e.file_name().to_string_lossy().into_owned(),
            std::fs::read(e.path())?,
            e.metadata()?.modified()?,
        ));
    }
    files.sort();
    Ok(files)
}
