//! Hostile directories: truncated, corrupt, oversized, special and unreadable files, and
//! state or checkpoint records that contradict the data files.
//!
//! Every case must end in a correct open or a typed error (the variant is matched), never
//! a panic or a hang (each open is bounded by a timeout), never a read of a whole giant or
//! endless file, and, where the directory is refused, with its files left as they were.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use aiodiskdb::{AioDiskDb, Builder, Error, ItemLocation};

use crate::common::{header, header_with, item, TestResult};

type BoxError = Box<dyn std::error::Error>;

/// Longest time any open may take here.
const LIMIT: Duration = Duration::from_secs(5);
/// Opens that must not read a large file whole finish well within this.
const FAST: Duration = Duration::from_secs(2);
const STATE: &str = ".aiodiskdb.data.state";
const SLOT_LEN: usize = 512;

fn tempdir() -> Result<tempfile::TempDir, BoxError> {
    Ok(tempfile::Builder::new()
        .prefix("aiodiskdb-hostile-")
        .tempdir()?)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> TestResult {
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

/// A data file: the 0.2.x header with `trim_offset`, then `body`.
fn data_file(trim_offset: u32, body: &[u8]) -> Vec<u8> {
    let mut f = header(trim_offset);
    f.extend_from_slice(body);
    f
}

/// A sparse file of `len` bytes starting with `head`.
fn sparse(dir: &Path, name: &str, head: &[u8], len: u64) -> TestResult {
    let f = std::fs::File::create(dir.join(name))?;
    std::io::Write::write_all(&mut &f, head)?;
    f.set_len(len)?;
    Ok(())
}

/// One state slot, encoded by hand from the layout documented in `src/format.rs`.
struct Slot {
    seq: u64,
    clean: bool,
    head: u32,
    end: u32,
    /// Kind (0 none, 1 ltrim, 2 drop), index, argument.
    pending: (u32, u32, u32),
}

impl Slot {
    fn dirty(seq: u64, head: u32, end: u32) -> Slot {
        Slot {
            seq,
            clean: false,
            head,
            end,
            pending: (0, 0, 0),
        }
    }

    fn encode(&self) -> [u8; SLOT_LEN] {
        let mut s = [0u8; SLOT_LEN];
        s[0..8].copy_from_slice(b"AIODSKDB");
        s[8..12].copy_from_slice(&1u32.to_le_bytes());
        s[12..20].copy_from_slice(&self.seq.to_le_bytes());
        s[20..24].copy_from_slice(&u32::from(self.clean).to_le_bytes());
        s[24..28].copy_from_slice(&self.head.to_le_bytes());
        s[28..32].copy_from_slice(&self.end.to_le_bytes());
        s[32..36].copy_from_slice(&self.pending.0.to_le_bytes());
        s[36..40].copy_from_slice(&self.pending.1.to_le_bytes());
        s[40..44].copy_from_slice(&self.pending.2.to_le_bytes());
        let crc = crc32c::crc32c(&s[..44]);
        s[44..48].copy_from_slice(&crc.to_le_bytes());
        s
    }
}

/// A state file of two slots; a slot goes to `seq % 2`, as the library writes it.
fn state_file(slots: &[[u8; SLOT_LEN]]) -> Vec<u8> {
    let mut f = vec![0u8; 2 * SLOT_LEN];
    for s in slots {
        let seq = u64::from_le_bytes(s[12..20].try_into().expect("8 bytes"));
        let at = usize::from(seq % 2 == 1) * SLOT_LEN;
        f[at..at + SLOT_LEN].copy_from_slice(s);
    }
    f
}

/// A Python checkpoint entry: index, file length, the file's last 8 bytes.
fn checkpoint_entry(index: u64, file_len: u64, last: &[u8]) -> Vec<u8> {
    let mut e = index.to_le_bytes()[..6].to_vec();
    e.extend_from_slice(&file_len.to_le_bytes()[..6]);
    e.extend_from_slice(last);
    e.extend_from_slice(&[0u8; 32]);
    e
}

/// What a directory entry is, and a regular file's bytes (or its length, if large).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Snap {
    Bytes(Vec<u8>),
    Len(u64),
    Other(String),
}

/// Every entry of `dir`, without following symlinks or reading large or special files.
fn snapshot(dir: &Path) -> Result<BTreeMap<String, Snap>, BoxError> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = std::fs::symlink_metadata(entry.path())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let snap = if !meta.is_file() {
            Snap::Other(format!("{:?}", meta.file_type()))
        } else if meta.len() > 1 << 20 {
            Snap::Len(meta.len())
        } else if meta.permissions().mode() & 0o444 == 0 {
            Snap::Other(format!("unreadable, {} bytes", meta.len()))
        } else {
            Snap::Bytes(std::fs::read(entry.path())?)
        };
        out.insert(name, snap);
    }
    Ok(out)
}

/// Every entry of `before` is unchanged; the only entry allowed to appear is the state
/// file (the directory lock), holding no valid slot.
fn assert_untouched(dir: &Path, before: &BTreeMap<String, Snap>) -> TestResult {
    let after = snapshot(dir)?;
    for (name, snap) in before {
        match after.get(name) {
            Some(now) if now == snap => {}
            Some(_) => return Err(format!("{name} was changed").into()),
            None => return Err(format!("{name} was removed").into()),
        }
    }
    for (name, snap) in &after {
        if before.contains_key(name) {
            continue;
        }
        let blank_state =
            name == STATE && matches!(snap, Snap::Bytes(b) if b.iter().all(|x| *x == 0));
        if !blank_state {
            return Err(format!("{name} appeared: {snap:?}").into());
        }
    }
    Ok(())
}

/// Opens with a timeout: a hang fails the test.
async fn open_with(b: Builder) -> Result<aiodiskdb::Result<AioDiskDb>, BoxError> {
    tokio::time::timeout(LIMIT, b.open())
        .await
        .map_err(|_| BoxError::from(format!("open hung for more than {LIMIT:?}")))
}

async fn open(dir: &Path) -> Result<aiodiskdb::Result<AioDiskDb>, BoxError> {
    open_with(AioDiskDb::builder(dir)).await
}

/// Opens a directory that must be refused; returns the error.
async fn refused(dir: &Path) -> Result<Error, BoxError> {
    match open(dir).await? {
        Ok(db) => {
            db.stop().await?;
            Err("the directory opened; an error was expected".into())
        }
        Err(e) => Ok(e),
    }
}

/// Opens a directory that must open.
async fn opens(dir: &Path) -> Result<AioDiskDb, BoxError> {
    Ok(open(dir).await??)
}

/// Checks that `db` works: an add reads back after a flush, a stop and a reopen.
async fn still_works(db: AioDiskDb, dir: &Path) -> TestResult {
    let data = item(77, 300);
    let loc = db.add(data.clone()).await?;
    db.flush().await?;
    db.stop().await?;
    let db = opens(dir).await?;
    if db.read(loc).await?.as_deref() != Some(&data[..]) {
        return Err(format!("{loc} did not read back after a reopen").into());
    }
    db.stop().await?;
    Ok(())
}

fn invalid_data_file(e: &Error, name: &str) -> TestResult {
    match e {
        Error::InvalidDataFile { path, .. } if path.ends_with(name) => Ok(()),
        other => Err(format!("expected InvalidDataFile for {name}, got {other:?}").into()),
    }
}

fn io_error(e: &Error, name: &str) -> TestResult {
    match e {
        Error::Io { path, .. } if path.ends_with(name) => Ok(()),
        other => Err(format!("expected Io for {name}, got {other:?}").into()),
    }
}

fn files_inconsistency(e: &Error, name: &str) -> TestResult {
    match e {
        Error::FilesInconsistency { path, .. } if path.ends_with(name) => Ok(()),
        other => Err(format!("expected FilesInconsistency for {name}, got {other:?}").into()),
    }
}

/// `data00000.dat` holds `bytes` (and `data00001.dat` is a good head): refused with
/// `InvalidDataFile` naming the bad file, nothing changed.
async fn bad_first_file(bytes: &[u8]) -> TestResult {
    let dir = tempdir()?;
    write(dir.path(), "data00000.dat", bytes)?;
    write(dir.path(), "data00001.dat", &data_file(0, b"head"))?;
    let before = snapshot(dir.path())?;
    let e = refused(dir.path()).await?;
    invalid_data_file(&e, "data00000.dat")?;
    assert_untouched(dir.path(), &before)
}

#[tokio::test]
async fn empty_data_file() -> TestResult {
    bad_first_file(b"").await
}

#[tokio::test]
async fn one_byte_data_file() -> TestResult {
    bad_first_file(&[0x0d]).await
}

#[tokio::test]
async fn data_file_of_23_bytes() -> TestResult {
    bad_first_file(&header(0)[..23]).await
}

#[tokio::test]
async fn wrong_genesis_bytes() -> TestResult {
    bad_first_file(&data_file_with(*b"\x0d\xce\x8f\x38", b"items")).await?;
    // The default genesis on disk, another configured: every file is refused.
    let dir = tempdir()?;
    write(dir.path(), "data00000.dat", &data_file(0, b"items"))?;
    let before = snapshot(dir.path())?;
    let e = open_with(AioDiskDb::builder(dir.path()).genesis_bytes(*b"blk!"))
        .await?
        .err()
        .ok_or("a foreign genesis opened")?;
    invalid_data_file(&e, "data00000.dat")?;
    assert_untouched(dir.path(), &before)
}

fn data_file_with(genesis: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut f = header_with(genesis, 0);
    f.extend_from_slice(body);
    f
}

#[tokio::test]
async fn non_zero_reserved_header_bytes() -> TestResult {
    for at in [8, 15, 23] {
        let mut f = data_file(0, b"items");
        f[at] = 0x01;
        bad_first_file(&f).await?;
    }
    Ok(())
}

#[tokio::test]
async fn trim_offset_making_the_end_overflow_u32() -> TestResult {
    bad_first_file(&data_file(u32::MAX - 5, &[7u8; 10])).await?;
    bad_first_file(&data_file(u32::MAX, b"x")).await
}

/// The largest end a position allows is accepted: the stored bytes read back, and the
/// next add starts a new file.
#[tokio::test]
async fn trim_offset_ending_exactly_at_u32_max_opens() -> TestResult {
    let dir = tempdir()?;
    let body = item(1, 10);
    write(
        dir.path(),
        "data00000.dat",
        &data_file(u32::MAX - 10, &body),
    )?;
    let db = opens(dir.path()).await?;
    let stored = ItemLocation {
        index: 0,
        position: u32::MAX - 10,
        size: 10,
    };
    assert_eq!(db.read(stored).await?.as_deref(), Some(&body[..]));
    let below = ItemLocation {
        position: u32::MAX - 11,
        ..stored
    };
    assert_eq!(db.read(below).await?, None, "below the trim offset");
    let loc = db.add(&b"next"[..]).await?;
    assert_eq!(
        (loc.index, loc.position),
        (1, 0),
        "a full position space rolls over"
    );
    still_works(db, dir.path()).await
}

/// A data file of several GiB, sparse: opening reads its header and length, not its
/// bytes, and a position near the end reads back.
#[tokio::test]
async fn huge_sparse_data_file_opens_fast() -> TestResult {
    let dir = tempdir()?;
    let len = 24 + u64::from(u32::MAX);
    sparse(dir.path(), "data00000.dat", &data_file(0, b"first"), len)?;
    let start = Instant::now();
    let db = opens(dir.path()).await?;
    let took = start.elapsed();
    if took > FAST {
        return Err(format!("opening a sparse 4 GiB file took {took:?}").into());
    }
    let near_end = ItemLocation {
        index: 0,
        position: u32::MAX - 16,
        size: 16,
    };
    assert_eq!(db.read(near_end).await?.as_deref(), Some(&[0u8; 16][..]));
    let first = ItemLocation {
        index: 0,
        position: 0,
        size: 5,
    };
    assert_eq!(db.read(first).await?.as_deref(), Some(&b"first"[..]));
    let loc = db.add(&b"next"[..]).await?;
    assert_eq!(loc.index, 1, "the full file is not appended to");
    still_works(db, dir.path()).await?;
    assert_eq!(
        std::fs::metadata(dir.path().join("data00000.dat"))?.len(),
        len
    );
    Ok(())
}

/// Past the u32 position space: refused at once, untouched.
#[tokio::test]
async fn huge_sparse_data_file_past_u32_positions_is_refused_fast() -> TestResult {
    let dir = tempdir()?;
    sparse(dir.path(), "data00000.dat", &data_file(0, b"x"), 6 << 30)?;
    let before = snapshot(dir.path())?;
    let start = Instant::now();
    let e = refused(dir.path()).await?;
    invalid_data_file(&e, "data00000.dat")?;
    if start.elapsed() > FAST {
        return Err(format!("refusing took {:?}", start.elapsed()).into());
    }
    assert_untouched(dir.path(), &before)
}

/// A dirty state over a 3 GiB sparse head: recovery truncates to the committed end
/// without reading the garbage.
#[tokio::test]
async fn dirty_state_over_a_huge_sparse_head_truncates_fast() -> TestResult {
    let dir = tempdir()?;
    let body = item(3, 100);
    sparse(dir.path(), "data00000.dat", &data_file(0, &body), 3 << 30)?;
    write(
        dir.path(),
        STATE,
        &state_file(&[Slot::dirty(9, 0, 100).encode()]),
    )?;
    let start = Instant::now();
    let db = opens(dir.path()).await?;
    if start.elapsed() > FAST {
        return Err(format!("recovery took {:?}", start.elapsed()).into());
    }
    assert_eq!(
        std::fs::metadata(dir.path().join("data00000.dat"))?.len(),
        124
    );
    let all = ItemLocation {
        index: 0,
        position: 0,
        size: 100,
    };
    assert_eq!(db.read(all).await?.as_deref(), Some(&body[..]));
    still_works(db, dir.path()).await
}

#[tokio::test]
async fn data_file_that_is_a_directory() -> TestResult {
    let dir = tempdir()?;
    write(dir.path(), "data00000.dat", &data_file(0, b"items"))?;
    std::fs::create_dir(dir.path().join("data00001.dat"))?;
    let before = snapshot(dir.path())?;
    let e = refused(dir.path()).await?;
    io_error(&e, "data00001.dat")?;
    assert_untouched(dir.path(), &before)
}

fn mkfifo(path: &Path) -> Result<bool, BoxError> {
    match std::process::Command::new("mkfifo").arg(path).status() {
        Ok(s) if s.success() => Ok(true),
        Ok(s) => Err(format!("mkfifo {} failed: {s}", path.display()).into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A FIFO under each name the library reads: opening it would block for ever, reading a
/// device would never end. Refused (data, state, checkpoint) or removed (stale temp).
#[tokio::test]
async fn fifos_never_hang_open() -> TestResult {
    for name in [
        "data00000.dat",
        STATE,
        ".checkpoint-1",
        ".tmp.data00000.dat",
        "other",
    ] {
        let dir = tempdir()?;
        write(dir.path(), "data00000.dat", &data_file(0, b"items"))?;
        std::fs::remove_file(dir.path().join(name)).ok();
        if !mkfifo(&dir.path().join(name))? {
            eprintln!("skipped: no mkfifo");
            return Ok(());
        }
        let before = snapshot(dir.path())?;
        let result = open(dir.path()).await?;
        match (name, result) {
            ("data00000.dat" | ".checkpoint-1", Err(e)) => {
                io_error(&e, name)?;
                assert_untouched(dir.path(), &before)?;
            }
            (STATE, Err(e)) => {
                io_error(&e, STATE)?;
                assert_untouched(dir.path(), &before)?;
            }
            (".tmp.data00000.dat", Ok(db)) => {
                db.stop().await?;
                if dir.path().join(name).exists() {
                    return Err("the stale temp FIFO was not removed".into());
                }
            }
            ("other", Ok(db)) => {
                still_works(db, dir.path()).await?;
                assert!(std::fs::symlink_metadata(dir.path().join(name))?
                    .file_type()
                    .is_fifo());
            }
            (name, result) => return Err(format!("FIFO {name}: unexpected {result:?}").into()),
        }
    }
    Ok(())
}

/// `/dev/zero` behind a data file, state file or checkpoint name: it would read for ever.
#[tokio::test]
async fn symlinks_to_dev_zero_are_refused() -> TestResult {
    if !Path::new("/dev/zero").exists() {
        eprintln!("skipped: no /dev/zero");
        return Ok(());
    }
    for name in ["data00001.dat", STATE, ".checkpoint-9"] {
        let dir = tempdir()?;
        write(dir.path(), "data00000.dat", &data_file(0, b"items"))?;
        std::os::unix::fs::symlink("/dev/zero", dir.path().join(name))?;
        let before = snapshot(dir.path())?;
        let start = Instant::now();
        let e = refused(dir.path()).await?;
        io_error(&e, name)?;
        if start.elapsed() > FAST {
            return Err(format!("{name}: refusing took {:?}", start.elapsed()).into());
        }
        assert_untouched(dir.path(), &before)?;
    }
    Ok(())
}

/// A state file that is a symlink to a data file: writing a state slot through it would
/// overwrite the data file's header (found by the `open_dir` fuzz target).
#[tokio::test]
async fn state_file_symlinked_to_a_data_file_is_refused() -> TestResult {
    let dir = tempdir()?;
    write(dir.path(), "data00000.dat", &data_file(0, &item(5, 2000)))?;
    std::os::unix::fs::symlink("data00000.dat", dir.path().join(STATE))?;
    let before = snapshot(dir.path())?;
    let e = refused(dir.path()).await?;
    io_error(&e, STATE)?;
    assert_untouched(dir.path(), &before)
}

#[tokio::test]
async fn state_file_that_is_a_directory() -> TestResult {
    let dir = tempdir()?;
    write(dir.path(), "data00000.dat", &data_file(0, b"items"))?;
    std::fs::create_dir(dir.path().join(STATE))?;
    let before = snapshot(dir.path())?;
    let e = refused(dir.path()).await?;
    io_error(&e, STATE)?;
    assert_untouched(dir.path(), &before)
}

/// A state file without a valid slot is no state: the data files are trusted as they are.
#[tokio::test]
async fn garbage_state_files_mean_no_state() -> TestResult {
    let body = item(8, 500);
    let garbage: Vec<u8> = item(9, 4096);
    let mut bad_version = Slot::dirty(3, 0, 10).encode();
    bad_version[8] = 2;
    let crc = crc32c::crc32c(&bad_version[..44]);
    bad_version[44..48].copy_from_slice(&crc.to_le_bytes());
    let cases: [(&str, Vec<u8>); 5] = [
        ("empty", Vec::new()),
        ("1 byte", vec![0x41]),
        ("garbage", garbage[..1024].to_vec()),
        ("long garbage", garbage),
        ("unknown version", state_file(&[bad_version])),
    ];
    for (what, state) in cases {
        let dir = tempdir()?;
        write(dir.path(), "data00000.dat", &data_file(0, &body))?;
        write(dir.path(), STATE, &state)?;
        let before = std::fs::read(dir.path().join("data00000.dat"))?;
        let db = open(dir.path())
            .await?
            .map_err(|e| format!("{what} state: {e:?}"))?;
        assert_eq!(
            std::fs::read(dir.path().join("data00000.dat"))?,
            before,
            "{what}: the data file is trusted as it is"
        );
        let all = ItemLocation {
            index: 0,
            position: 0,
            size: 500,
        };
        assert_eq!(db.read(all).await?.as_deref(), Some(&body[..]), "{what}");
        still_works(db, dir.path()).await?;
    }
    Ok(())
}

/// A dirty state whose head file does not exist: committed data is missing.
#[tokio::test]
async fn dirty_state_with_a_missing_head() -> TestResult {
    let dir = tempdir()?;
    write(dir.path(), "data00000.dat", &data_file(0, &item(1, 100)))?;
    write(dir.path(), "data00001.dat", &data_file(0, &item(2, 100)))?;
    write(
        dir.path(),
        STATE,
        &state_file(&[Slot::dirty(7, 2, 40).encode()]),
    )?;
    let before = snapshot(dir.path())?;
    let e = refused(dir.path()).await?;
    files_inconsistency(&e, "data00002.dat")?;
    assert_untouched(dir.path(), &before)
}

/// A forged dirty state recording a pending drop of the head itself: the library never
/// writes one (the head moves first), and recovery must not delete the head for it.
#[tokio::test]
async fn forged_pending_drop_of_the_head_deletes_nothing() -> TestResult {
    let dir = tempdir()?;
    write(dir.path(), "data00000.dat", &data_file(0, &item(1, 100)))?;
    write(dir.path(), "data00001.dat", &data_file(0, &item(2, 100)))?;
    let forged = Slot {
        pending: (2, 1, 0),
        ..Slot::dirty(7, 1, 100)
    };
    write(dir.path(), STATE, &state_file(&[forged.encode()]))?;
    let before = snapshot(dir.path())?;
    let e = refused(dir.path()).await?;
    files_inconsistency(&e, "data00001.dat")?;
    assert_untouched(dir.path(), &before)
}

/// A dirty state whose committed end is past the head file's end (or below its trim
/// offset): committed data is missing, reported, not dropped.
#[tokio::test]
async fn dirty_state_committing_more_than_the_file_holds() -> TestResult {
    for (trim, end) in [(0, 101), (0, u32::MAX), (50, 49)] {
        let dir = tempdir()?;
        write(dir.path(), "data00000.dat", &data_file(trim, &item(1, 100)))?;
        write(
            dir.path(),
            STATE,
            &state_file(&[Slot::dirty(7, 0, end).encode()]),
        )?;
        let before = snapshot(dir.path())?;
        let e = refused(dir.path()).await?;
        files_inconsistency(&e, "data00000.dat")?;
        assert_untouched(dir.path(), &before)?;
    }
    Ok(())
}

/// The newest slot is torn (bad CRC): the other slot is the state. Its committed end is
/// shorter, so recovery truncates to it.
#[tokio::test]
async fn torn_state_slot_falls_back_to_the_other() -> TestResult {
    for torn_seq in [5, 3] {
        let dir = tempdir()?;
        let body = item(4, 100);
        write(dir.path(), "data00000.dat", &data_file(0, &body))?;
        let valid = Slot::dirty(4, 0, 60).encode();
        let mut torn = Slot::dirty(torn_seq, 0, 100).encode();
        torn[30] ^= 0x40;
        write(dir.path(), STATE, &state_file(&[valid, torn]))?;
        let db = opens(dir.path()).await?;
        assert_eq!(
            std::fs::metadata(dir.path().join("data00000.dat"))?.len(),
            24 + 60,
            "the valid slot's end (seq 4) rules, torn seq {torn_seq}"
        );
        let kept = ItemLocation {
            index: 0,
            position: 50,
            size: 10,
        };
        assert_eq!(db.read(kept).await?.as_deref(), Some(&body[50..60]));
        let cut = ItemLocation {
            position: 60,
            ..kept
        };
        assert_eq!(db.read(cut).await?, None);
        let next = db.add(&b"next"[..]).await?;
        assert_eq!((next.index, next.position), (0, 60));
        still_works(db, dir.path()).await?;
    }
    Ok(())
}

/// A pending ltrim whose temp file's header disagrees with the record.
#[tokio::test]
async fn pending_ltrim_with_a_mismatched_temp_file() -> TestResult {
    let dir = tempdir()?;
    let body = item(6, 100);
    write(dir.path(), "data00000.dat", &data_file(0, &body))?;
    write(
        dir.path(),
        ".tmp.data00000.dat",
        &data_file(30, &body[30..]),
    )?;
    let slot = Slot {
        pending: (1, 0, 40),
        ..Slot::dirty(3, 0, 100)
    };
    write(dir.path(), STATE, &state_file(&[slot.encode()]))?;
    let before = snapshot(dir.path())?;
    let e = refused(dir.path()).await?;
    files_inconsistency(&e, ".tmp.data00000.dat")?;
    assert_untouched(dir.path(), &before)
}

#[tokio::test]
async fn two_python_checkpoints() -> TestResult {
    let dir = tempdir()?;
    let body = item(7, 100);
    write(dir.path(), "data00000.dat", &data_file(0, &body))?;
    write(
        dir.path(),
        ".checkpoint-1000",
        &checkpoint_entry(0, 24 + 90, &body[82..90]),
    )?;
    write(dir.path(), ".checkpoint-2000", &[])?;
    let before = snapshot(dir.path())?;
    match refused(dir.path()).await? {
        Error::InvalidDbState { .. } => {}
        other => return Err(format!("expected InvalidDbState, got {other:?}").into()),
    }
    assert_untouched(dir.path(), &before)
}

/// A checkpoint whose recorded last bytes differ from the file: refused, and nothing is
/// truncated, not even a file whose own entry matched.
#[tokio::test]
async fn python_checkpoint_with_wrong_last_bytes() -> TestResult {
    let a = item(10, 100);
    let b = item(11, 100);
    let good_b = checkpoint_entry(1, 24 + 80, &b[72..80]);
    let bad_a = checkpoint_entry(0, 24 + 90, &a[81..89]);
    for entries in [vec![bad_a.clone()], vec![good_b.clone(), bad_a.clone()]] {
        let dir = tempdir()?;
        write(dir.path(), "data00000.dat", &data_file(0, &a))?;
        write(dir.path(), "data00001.dat", &data_file(0, &b))?;
        write(dir.path(), ".checkpoint-1", &entries.concat())?;
        let before = snapshot(dir.path())?;
        let e = refused(dir.path()).await?;
        invalid_data_file(&e, "data00000.dat")?;
        assert_untouched(dir.path(), &before)?;
    }
    // Control: with matching entries the checkpoint is applied and removed.
    let dir = tempdir()?;
    write(dir.path(), "data00000.dat", &data_file(0, &a))?;
    write(dir.path(), "data00001.dat", &data_file(0, &b))?;
    let good_a = checkpoint_entry(0, 24 + 90, &a[82..90]);
    write(dir.path(), ".checkpoint-1", &[good_b, good_a].concat())?;
    let db = opens(dir.path()).await?;
    assert_eq!(
        std::fs::metadata(dir.path().join("data00000.dat"))?.len(),
        24 + 90
    );
    assert_eq!(
        std::fs::metadata(dir.path().join("data00001.dat"))?.len(),
        24 + 80
    );
    assert!(!dir.path().join(".checkpoint-1").exists());
    still_works(db, dir.path()).await
}

/// A checkpoint file of 1 GiB and of 64 GiB (sparse): only its head is read.
#[tokio::test]
async fn giant_python_checkpoint_is_not_read_whole() -> TestResult {
    for len in [1u64 << 30, 64 << 30] {
        let dir = tempdir()?;
        let b = item(12, 100);
        write(dir.path(), "data00001.dat", &data_file(0, &b))?;
        // One real entry; the zero entries after it name index 0, which does not exist.
        sparse(
            dir.path(),
            ".checkpoint-5",
            &checkpoint_entry(1, 24 + 70, &b[62..70]),
            len,
        )?;
        let start = Instant::now();
        let db = opens(dir.path()).await?;
        if start.elapsed() > FAST {
            return Err(format!("a {len}-byte checkpoint took {:?}", start.elapsed()).into());
        }
        assert_eq!(
            std::fs::metadata(dir.path().join("data00001.dat"))?.len(),
            24 + 70
        );
        assert!(!dir.path().join(".checkpoint-5").exists());
        still_works(db, dir.path()).await?;
    }
    Ok(())
}

fn running_as_root() -> Result<bool, BoxError> {
    let out = std::process::Command::new("id").arg("-u").output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Unreadable files: a typed I/O error naming the file. Root ignores permissions, so the
/// case is skipped there.
#[tokio::test]
async fn unreadable_files() -> TestResult {
    if running_as_root()? {
        eprintln!("skipped: running as root, permissions do not apply");
        return Ok(());
    }
    for name in ["data00000.dat", STATE] {
        let dir = tempdir()?;
        write(dir.path(), "data00000.dat", &data_file(0, b"items"))?;
        write(dir.path(), STATE, &state_file(&[]))?;
        let path = dir.path().join(name);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000))?;
        let before = snapshot(dir.path())?;
        let result = refused(dir.path()).await;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        io_error(&result?, name)?;
        let mut before = before;
        before.remove(name);
        assert_untouched(dir.path(), &before)?;
    }
    Ok(())
}

/// The directory path is a regular file.
#[tokio::test]
async fn path_that_is_a_file() -> TestResult {
    let dir = tempdir()?;
    let path = dir.path().join("not-a-dir");
    write(dir.path(), "not-a-dir", b"hello")?;
    match open(&path).await? {
        Err(Error::Io { .. }) => {}
        other => return Err(format!("expected Io, got {other:?}").into()),
    }
    assert_eq!(std::fs::read(&path)?, b"hello");
    Ok(())
}

/// 5,000 files that are not ours, some named almost like ours: ignored, untouched, and
/// the open stays fast.
#[tokio::test]
async fn five_thousand_unrelated_files() -> TestResult {
    let dir = tempdir()?;
    for i in 0..1000u32 {
        write(dir.path(), &format!("note{i}.txt"), b"n")?;
        write(
            dir.path(),
            &format!("data{i:04}.dat"),
            &data_file(0, b"wrong padding"),
        )?;
        write(
            dir.path(),
            &format!("data{i:06}.dat"),
            b"also wrong padding",
        )?;
        write(dir.path(), &format!("blk{i:05}.dat"), b"another prefix")?;
        write(
            dir.path(),
            &format!(".tmpx.data{i:05}.dat"),
            b"not a temp file",
        )?;
    }
    let body = item(13, 64);
    write(dir.path(), "data00000.dat", &data_file(0, &body))?;
    let mut before = snapshot(dir.path())?;
    before.remove("data00000.dat");
    let start = Instant::now();
    let db = opens(dir.path()).await?;
    if start.elapsed() > LIMIT / 2 {
        return Err(format!("open took {:?}", start.elapsed()).into());
    }
    let all = ItemLocation {
        index: 0,
        position: 0,
        size: 64,
    };
    assert_eq!(db.read(all).await?.as_deref(), Some(&body[..]));
    still_works(db, dir.path()).await?;
    let mut after = snapshot(dir.path())?;
    after.remove("data00000.dat");
    after.remove("data00000.idx");
    after.remove(STATE);
    if before != after {
        return Err("an unrelated file was changed, added or removed".into());
    }
    Ok(())
}

/// A stale temp file that is a directory cannot be removed: a typed error, no data file
/// changed.
#[tokio::test]
async fn stale_temp_that_is_a_directory() -> TestResult {
    let dir = tempdir()?;
    write(dir.path(), "data00000.dat", &data_file(0, b"items"))?;
    std::fs::create_dir(dir.path().join(".tmp.data00000.dat"))?;
    let before = snapshot(dir.path())?;
    let e = refused(dir.path()).await?;
    io_error(&e, ".tmp.data00000.dat")?;
    assert_untouched(dir.path(), &before)
}

/// Reads of absurd locations answer `None` at once, without allocating their size.
#[tokio::test]
async fn absurd_locations_read_as_none() -> TestResult {
    let dir = tempdir()?;
    write(dir.path(), "data00000.dat", &data_file(0, b"items"))?;
    let db = opens(dir.path()).await?;
    for loc in [
        ItemLocation {
            index: 0,
            position: 0,
            size: u32::MAX,
        },
        ItemLocation {
            index: 0,
            position: u32::MAX,
            size: u32::MAX,
        },
        ItemLocation {
            index: u32::MAX,
            position: 0,
            size: 1,
        },
        ItemLocation {
            index: 0,
            position: 3,
            size: 3,
        },
    ] {
        assert_eq!(db.read(loc).await?, None, "{loc}");
    }
    still_works(db, dir.path()).await
}

/// Two names for one file (a symlink or a hard link to another data file, or to the state
/// file): appending to the head or writing the state would overwrite the other's
/// committed bytes (found by the `open_dir` fuzz target). Refused, untouched.
#[tokio::test]
async fn data_files_aliasing_another_file_are_refused() -> TestResult {
    type Link = fn(&Path, &Path) -> std::io::Result<()>;
    let symlink: Link =
        |target, link| std::os::unix::fs::symlink(target.file_name().unwrap_or_default(), link);
    let hard_link: Link = |target, link| std::fs::hard_link(target, link);
    for (what, link, target) in [
        ("symlink to data00000.dat", symlink, "data00000.dat"),
        ("hard link to data00000.dat", hard_link, "data00000.dat"),
        ("symlink to the state file", symlink, STATE),
        ("hard link to the state file", hard_link, STATE),
    ] {
        let dir = tempdir()?;
        write(dir.path(), "data00000.dat", &data_file(0, &item(20, 100)))?;
        // A state file without a valid slot whose first bytes pass as a data file header.
        write(dir.path(), STATE, &data_file(0, &[0u8; 1000]))?;
        link(&dir.path().join(target), &dir.path().join("data00001.dat"))?;
        let before = snapshot(dir.path())?;
        let e = refused(dir.path())
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        invalid_data_file(&e, "data00001.dat").map_err(|e| format!("{what}: {e}"))?;
        assert_untouched(dir.path(), &before).map_err(|e| format!("{what}: {e}"))?;
    }
    Ok(())
}

/// A valid slot with the largest sequence number: the next commit cannot take a higher
/// one. A typed error, not an overflow (a panic in debug builds; in release a wrapped
/// sequence number would lose every later commit to the old slot).
#[tokio::test]
async fn state_sequence_number_at_u64_max() -> TestResult {
    for clean in [false, true] {
        let dir = tempdir()?;
        write(dir.path(), "data00000.dat", &data_file(0, &item(30, 100)))?;
        let slot = Slot {
            clean,
            ..Slot::dirty(u64::MAX, 0, 100)
        };
        write(dir.path(), STATE, &state_file(&[slot.encode()]))?;
        let before = snapshot(dir.path())?;
        match refused(dir.path()).await? {
            Error::InvalidDbState { reason, .. } if !reason.contains("task failed") => {}
            other => {
                return Err(format!("clean {clean}: expected InvalidDbState, got {other:?}").into())
            }
        }
        assert_untouched(dir.path(), &before)?;
    }
    Ok(())
}

/// Index numbers at the end of their range (`file_padding(10)` allows `u32::MAX`):
/// dropping the head, which moves appends to the next index, is a typed `DatabaseFull`,
/// not an overflow.
#[tokio::test]
async fn dropping_the_head_at_the_last_index() -> TestResult {
    let dir = tempdir()?;
    let name = format!("data{}.dat", u32::MAX);
    write(dir.path(), &name, &data_file(0, &item(31, 100)))?;
    let db = open_with(
        AioDiskDb::builder(dir.path())
            .file_padding(10)
            .overwrite(true),
    )
    .await??;
    match db.drop_index(u32::MAX).await {
        Err(Error::DatabaseFull { .. }) => {}
        other => return Err(format!("expected DatabaseFull, got {other:?}").into()),
    }
    let all = ItemLocation {
        index: u32::MAX,
        position: 0,
        size: 100,
    };
    assert_eq!(db.read(all).await?.as_deref(), Some(&item(31, 100)[..]));
    match db.add(&b"more"[..]).await {
        Ok(loc) => assert_eq!(loc.index, u32::MAX, "room is left in the last file"),
        Err(e) => return Err(e.into()),
    }
    db.stop().await?;
    Ok(())
}

/// A pending ltrim whose temp file cannot become a data file: longer than the u32
/// position space (found by the `open_dir` fuzz target: recovery renamed it over the data
/// file, then refused the result), or a link to the state file. Refused before the
/// rename, untouched.
#[tokio::test]
async fn pending_ltrim_with_an_unusable_temp_file() -> TestResult {
    for what in ["too long", "link to the state file"] {
        // For the link, a genesis that the state file's first bytes (slot 0 is blank) pass.
        let genesis = if what == "too long" {
            crate::common::GENESIS
        } else {
            [0; 4]
        };
        let dir = tempdir()?;
        let body = item(40, 100);
        write(dir.path(), "data00000.dat", &data_file_with(genesis, &body))?;
        // The link's header says trim offset 0: a record that agrees with it.
        let to = if what == "too long" { 40 } else { 0 };
        let slot = Slot {
            pending: (1, 0, to),
            ..Slot::dirty(3, 0, 100)
        };
        write(dir.path(), STATE, &state_file(&[slot.encode()]))?;
        let temp = ".tmp.data00000.dat";
        if what == "too long" {
            let mut head = header_with(genesis, 40);
            head.extend_from_slice(&body[40..]);
            sparse(dir.path(), temp, &head, 24 + (1 << 32))?;
        } else {
            std::os::unix::fs::symlink(STATE, dir.path().join(temp))?;
        }
        let before = snapshot(dir.path())?;
        let e = open_with(AioDiskDb::builder(dir.path()).genesis_bytes(genesis))
            .await?
            .err()
            .ok_or_else(|| format!("{what}: opened"))?;
        invalid_data_file(&e, temp).map_err(|e| format!("{what}: {e}"))?;
        assert_untouched(dir.path(), &before).map_err(|e| format!("{what}: {e}"))?;
    }
    Ok(())
}
