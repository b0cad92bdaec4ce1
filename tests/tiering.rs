//! Tiering against a real S3-compatible server on loopback, through `object_store`'s real
//! S3 client over HTTP (feature `tiering`; `cargo test --features tiering --test tiering`).
//!
//! The server: `AIODISKDB_S3_ENDPOINT` (e.g. `http://127.0.0.1:9321`), which `.ci/run`
//! starts (moto's standalone server) and stops; each test makes a bucket of its own. The
//! test that stops the server mid-run starts a private one from `AIODISKDB_MOTO_SERVER`
//! (the `moto_server` command), so that stopping it disturbs no other test. Without
//! them the tests are skipped, except under `CI`, where they fail.
//!
//! - [`tiers_many_files_and_reads_every_item_back`]: a directory of ~40 files tiered in
//!   the background, every item read back from the server, the local disk down to
//!   `keep_local` sealed files and the head, a reopen reading everything again;
//! - [`a_large_file_goes_up_in_parts`]: a 20 MiB file through a multipart upload;
//! - [`trims_of_remote_indexes`]: rtrims and ltrims of remote indexes with right and
//!   wrong safety checks and without, read back as trimmed (before and after a reopen,
//!   and by a read-only handle) while the objects stay as uploaded, and trims that drop;
//! - [`kill_9_during_uploads_and_remote_drops`]: a writer process killed with SIGKILL while
//!   it uploads, drops and trims remote indexes, each time reopened and checked against
//!   what it acknowledged;
//! - [`server_stopped_mid_run_then_back`]: the server stopped (SIGSTOP) while files are
//!   uploaded and read: typed errors, appends and local reads going on, the local copies
//!   kept; once it is back (SIGCONT), everything is tiered and reads back;
//! - [`hydrate_makes_a_plain_directory`]: a tiered directory hydrated: every file back, no
//!   object left, every item read without tiering, and (with `AIODISKDB_PYTHON`, a Python
//!   with aiodiskdb 0.2.3; required under `CI`) by the Python library, which then writes
//!   on and reads everything again (`tests/compat/roundtrip.py verify`).

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiodiskdb::tiering::Tiering;
use aiodiskdb::{AioDiskDb, Builder, Error, Event, ItemLocation};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, GetOptions, ObjectStore, RetryConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ENDPOINT: &str = "AIODISKDB_S3_ENDPOINT";
const MOTO: &str = "AIODISKDB_MOTO_SERVER";
const PREFIX: &str = "node-1/blocks";

/// The value of `var`, or `None` to skip (outside CI); under CI a missing one fails.
fn required(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set: .ci/run starts moto_server and sets it")
        }
        _ => {
            eprintln!("skipped: {var} is not set (see tests/tiering.rs)");
            None
        }
    }
}

/// `host:port` of an `http://host:port` endpoint.
fn authority(endpoint: &str) -> &str {
    endpoint.trim_start_matches("http://").trim_end_matches('/')
}

/// Creates `bucket` with a plain HTTP request (the S3 API's `CreateBucket`; the server
/// checks no signature).
fn create_bucket(endpoint: &str, bucket: &str) -> TestResult {
    let host = authority(endpoint);
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let status = answer.lines().next().unwrap_or_default();
    if !status.contains(" 200") {
        return Err(format!("create bucket {bucket}: {status}").into());
    }
    Ok(())
}

/// The real S3 client, with short timeouts and few retries (so that a stopped server
/// shows within seconds).
fn s3(endpoint: &str, bucket: &str) -> Arc<dyn ObjectStore> {
    let store = AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(500),
                base: 2.0,
            },
            max_retries: 1,
            retry_timeout: Duration::from_secs(4),
        })
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(true)
                .with_timeout(Duration::from_secs(3))
                .with_connect_timeout(Duration::from_secs(2)),
        )
        .build()
        .expect("S3 client");
    Arc::new(store)
}

/// A bucket of its own for each test.
fn bucket(name: &str) -> String {
    format!("aiodiskdb-{name}-{}", std::process::id())
}

fn builder(dir: &Path, tiering: Tiering) -> Builder {
    AioDiskDb::builder(dir)
        .max_file_size(64 << 10)
        .max_buffer_size(16 << 10)
        .flush_interval(Duration::from_millis(50))
        .tiering(tiering)
}

fn data_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| Path::new(n).extension().is_some_and(|e| e == "dat") && !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

/// Item bytes derived from a number.
fn content(id: u64, len: usize) -> Vec<u8> {
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// Calls `tier` until the directory holds `keep` sealed files and the head (the
/// background uploader may hold a file meanwhile).
async fn tier_until(db: &AioDiskDb, dir: &Path, keep: usize) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(60);
    while data_files(dir).len() > keep + 1 {
        db.tier().await?;
        if Instant::now() > deadline {
            return Err(format!("not tiered in time: {:?}", data_files(dir)).into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_many_files_and_reads_every_item_back() -> TestResult {
    let Some(endpoint) = required(ENDPOINT) else {
        return Ok(());
    };
    let bucket = bucket("many");
    create_bucket(&endpoint, &bucket)?;
    let store = s3(&endpoint, &bucket);
    let dir = tempfile::tempdir()?;
    let tiering = Tiering::new(Arc::clone(&store), PREFIX).keep_local(2);
    let db = builder(dir.path(), tiering.clone()).open().await?;
    let mut events = db.subscribe();
    let mut rng = StdRng::seed_from_u64(12);
    let mut items: Vec<(ItemLocation, u64, usize)> = Vec::new();
    let mut most_local = 0;
    for id in 0..900u64 {
        let len = rng.gen_range(100..5000);
        let loc = db.add(content(id, len)).await?;
        items.push((loc, id, len));
        if id % 50 == 0 {
            db.flush().await?;
            most_local = most_local.max(data_files(dir.path()).len());
        }
    }
    db.flush().await?;
    let files = items.last().unwrap().0.index + 1;
    assert!(files >= 30, "{files} files");
    tier_until(&db, dir.path(), 2).await?;
    // The local copy goes just before its event: wait for the last one.
    let mut tiered = 0;
    while tiered < files - 3 {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Ok(Event::Tiered { .. })) => tiered += 1,
            Ok(Ok(_)) => {}
            other => panic!("{tiered} Tiered events of {}: {other:?}", files - 3),
        }
    }
    assert!(
        events.try_recv().is_err(),
        "no more Tiered events than files"
    );
    // Every object is there, whole.
    for index in 0..files - 3 {
        let key = ObjectPath::from(format!("{PREFIX}/data{index:05}.dat"));
        let meta = store
            .get_opts(
                &key,
                GetOptions {
                    head: true,
                    ..GetOptions::default()
                },
            )
            .await?
            .meta;
        assert!(meta.size > 24, "{key}: {}", meta.size);
    }
    for (loc, id, len) in &items {
        let got = db.read(*loc).await?;
        assert_eq!(got.as_deref(), Some(&content(*id, *len)[..]), "{loc}");
    }
    let v = db.verify().await?;
    assert!(v.is_ok(), "{v:?}");
    assert_eq!(v.remote_files, u64::from(files - 3));
    db.stop().await?;
    eprintln!(
        "tiered {} of {files} files; at most {most_local} data files local while writing",
        files - 3
    );
    // Reopened: every item again, the remote ones from the server.
    let db = builder(dir.path(), tiering).open().await?;
    for (loc, id, len) in items.iter().rev() {
        let got = db.read(*loc).await?;
        assert_eq!(got.as_deref(), Some(&content(*id, *len)[..]), "{loc}");
    }
    db.stop().await?;
    // Without tiering, the directory is refused, naming the store, prefix and indexes.
    let e = AioDiskDb::builder(dir.path()).open().await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::InvalidConfiguration { .. }), "{e}");
    assert!(
        msg.contains(&bucket) && msg.contains(PREFIX) && msg.contains("data00000.dat"),
        "{msg}"
    );
    // With the same prefix in another bucket, too (it was opened, its reads failing or,
    // unverified, returning whatever that bucket held under these keys), read-only as well.
    let other = format!("{bucket}-other");
    create_bucket(&endpoint, &other)?;
    let elsewhere = Tiering::new(s3(&endpoint, &other), PREFIX);
    for read_only in [false, true] {
        let mut b = builder(dir.path(), elsewhere.clone());
        if read_only {
            b = b.read_only();
        }
        let e = b.open().await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::InvalidConfiguration { .. }), "{e}");
        assert!(msg.contains(&bucket) && msg.contains(&other), "{msg}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_goes_up_in_parts() -> TestResult {
    let Some(endpoint) = required(ENDPOINT) else {
        return Ok(());
    };
    let bucket = bucket("large");
    create_bucket(&endpoint, &bucket)?;
    let store = s3(&endpoint, &bucket);
    let dir = tempfile::tempdir()?;
    let db = AioDiskDb::builder(dir.path())
        .max_file_size(24 << 20)
        .max_buffer_size(4 << 20)
        .tiering(
            Tiering::new(Arc::clone(&store), PREFIX)
                .keep_local(0)
                .upload_in_background(false),
        )
        .open()
        .await?;
    let mut items = Vec::new();
    for id in 0..5u64 {
        let loc = db.add(content(id, 4 << 20)).await?;
        items.push((loc, id));
    }
    db.flush().await?;
    // A new file: the first one, 20 MiB, is sealed.
    let last = db.add(content(99, 4 << 20)).await?;
    db.flush().await?;
    assert_eq!(last.index, 1);
    let tiered = db.tier().await?;
    assert_eq!(tiered.len(), 1);
    assert_eq!(tiered[0].size, 24 + 5 * (4 << 20));
    for (loc, id) in &items {
        assert_eq!(
            db.read(*loc).await?.as_deref(),
            Some(&content(*id, 4 << 20)[..])
        );
    }
    db.stop().await?;
    Ok(())
}

/// A tiered directory, some of whose remote indexes are trimmed (an rtrim, an ltrim, and
/// both, with and without safety checks), hydrated: the trimmed files come back as their
/// logical range only (sizes), every object is deleted, and the directory opens without
/// tiering: every kept item reads back, every trimmed one is `None`, `verify` is clean;
/// then the Python library reads it, writes on and reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::too_many_lines, reason = "one scenario, step by step")]
async fn hydrate_makes_a_plain_directory() -> TestResult {
    let Some(endpoint) = required(ENDPOINT) else {
        return Ok(());
    };
    let bucket = bucket("hydrate");
    create_bucket(&endpoint, &bucket)?;
    let store = s3(&endpoint, &bucket);
    let root = tempfile::tempdir()?;
    let dir = root.path().join("db");
    let tiering = Tiering::new(Arc::clone(&store), PREFIX)
        .keep_local(1)
        .upload_in_background(false);
    let db = builder(&dir, tiering.clone()).open().await?;
    let mut rng = StdRng::seed_from_u64(7);
    let mut items: Vec<(ItemLocation, Vec<u8>)> = Vec::new();
    for id in 0..250u64 {
        let data = content(id, rng.gen_range(100..3000));
        items.push((db.add(data.clone()).await?, data));
    }
    db.flush().await?;
    let tiered = db.tier().await?;
    assert!(tiered.len() >= 4, "{tiered:?}");
    db.stop().await?;
    assert_eq!(count_objects(&store).await?, tiered.len());
    // A new session trims three remote indexes, then hydrates (the CLI's `hydrate`).
    let db = builder(&dir, tiering).overwrite(true).open().await?;
    let of = |index: u32| -> Vec<(ItemLocation, Vec<u8>)> {
        items
            .iter()
            .filter(|i| i.0.index == index)
            .cloned()
            .collect()
    };
    let end_of = |loc: ItemLocation| u32::try_from(loc.end()).unwrap();
    let (a, b, c) = (tiered[0].index, tiered[1].index, tiered[2].index);
    // a: rtrim from its middle item on, checked with that item's first bytes.
    let (ia, ib, ic) = (of(a), of(b), of(c));
    let (from_a, check) = (ia[ia.len() / 2].0.position, &ia[ia.len() / 2].1[..16]);
    db.rtrim(a, from_a, check).await?;
    // b: ltrim to the end of its middle item, checked with that item's last bytes.
    let mid = &ib[ib.len() / 2];
    db.ltrim(b, end_of(mid.0), &mid.1[mid.1.len() - 16..])
        .await?;
    let to_b = end_of(mid.0);
    // c: both, without checks, keeping its middle third.
    let (to_c, from_c) = (end_of(ic[ic.len() / 3].0), ic[2 * ic.len() / 3].0.position);
    db.ltrim(c, to_c, &[]).await?;
    db.rtrim(c, from_c, &[]).await?;
    let gone = move |loc: ItemLocation| {
        (loc.index == a && loc.position >= from_a)
            || (loc.index == b && loc.end() <= u64::from(to_b))
            || (loc.index == c && (loc.end() <= u64::from(to_c) || loc.position >= from_c))
    };
    let hydrated = db.hydrate().await?;
    let kept_size = |index: u32, size: u64| match index {
        i if i == a => 24 + u64::from(from_a),
        i if i == b => size - u64::from(to_b),
        i if i == c => 24 + u64::from(from_c - to_c),
        _ => size,
    };
    assert_eq!(
        hydrated
            .iter()
            .map(|h| (h.index, h.size))
            .collect::<Vec<_>>(),
        tiered
            .iter()
            .map(|t| (t.index, kept_size(t.index, t.size)))
            .collect::<Vec<_>>()
    );
    for h in &hydrated {
        let len = std::fs::metadata(dir.join(format!("data{:05}.dat", h.index)))?.len();
        assert_eq!(len, h.size, "index {}: only its logical range", h.index);
    }
    let reads = |db: AioDiskDb| {
        let items = items.clone();
        async move {
            for (loc, data) in &items {
                let want = (!gone(*loc)).then_some(&data[..]);
                assert_eq!(db.read(*loc).await?.as_deref(), want, "{loc}");
            }
            let v = db.verify().await?;
            assert!(v.is_ok(), "{v:?}");
            assert_eq!(v.remote_files, 0);
            Ok::<_, Box<dyn std::error::Error>>(db)
        }
    };
    let db = reads(db).await?;
    db.stop().await?;
    assert_eq!(count_objects(&store).await?, 0, "every object deleted");
    // A plain directory: it opens without tiering.
    let db = AioDiskDb::builder(&dir)
        .max_file_size(64 << 10)
        .max_buffer_size(16 << 10)
        .open()
        .await?;
    let db = reads(db).await?;
    db.stop().await?;
    // And the Python library opens it, reads every item, writes on and reads again.
    if let Some(py) = python() {
        let expected = serde_json::json!({
            "config": {
                "prefix": "data", "padding": 5, "genesis_hex": "0dce8f37",
                "max_file_size": 64 << 10, "max_buffer_size": 16 << 10,
            },
            "items": items.iter().map(|(loc, data)| serde_json::json!({
                "index": loc.index, "position": loc.position, "size": loc.size,
                "hex": hex(data),
                "present": !gone(*loc),
            })).collect::<Vec<_>>(),
            "files": {},
        });
        std::fs::write(root.path().join("expected.json"), expected.to_string())?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/roundtrip.py");
        let out = Command::new(py)
            .arg(script)
            .arg("verify")
            .arg(root.path())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .output()?;
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.contains("roundtrip ok"),
            "the Python library on the hydrated directory: {said}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("python: {}", said.trim());
    }
    Ok(())
}

/// The object's size, or `None` when there is none.
async fn object_size(
    store: &Arc<dyn ObjectStore>,
    index: u32,
) -> Result<Option<u64>, Box<dyn std::error::Error>> {
    let key = ObjectPath::from(format!("{PREFIX}/data{index:05}.dat"));
    let head = GetOptions {
        head: true,
        ..GetOptions::default()
    };
    match store.get_opts(&key, head).await {
        Ok(got) => Ok(Some(got.meta.size)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Every item of `items` reads back exactly when `kept(loc)`, else `None`.
async fn reads_as(
    db: &AioDiskDb,
    items: &[(ItemLocation, u64, usize)],
    kept: &dyn Fn(ItemLocation) -> bool,
) -> TestResult {
    for (loc, id, len) in items {
        let want = kept(*loc).then(|| content(*id, *len));
        assert_eq!(db.read(*loc).await?.map(|b| b.to_vec()), want, "{loc}");
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The Python with aiodiskdb 0.2.3 (`AIODISKDB_PYTHON`); `None` to skip, outside CI.
fn python() -> Option<String> {
    match std::env::var("AIODISKDB_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("CI").is_some() => {
            panic!("AIODISKDB_PYTHON is not set: .ci/run sets up a Python with aiodiskdb 0.2.3")
        }
        _ => {
            eprintln!("the Python check skipped: AIODISKDB_PYTHON is not set");
            None
        }
    }
}

/// rtrim and ltrim of remote indexes through the real S3 client: wrong safety checks
/// (compared with bytes read from the server) change nothing; right ones, and trims
/// without a check, make the ranges read `None` while the objects stay as uploaded;
/// `locations` and `verify` agree, before and after a reopen and for a read-only handle;
/// trims that reach every byte drop the index and delete its object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::too_many_lines, reason = "one scenario, step by step")]
async fn trims_of_remote_indexes() -> TestResult {
    let Some(endpoint) = required(ENDPOINT) else {
        return Ok(());
    };
    let bucket = bucket("trims");
    create_bucket(&endpoint, &bucket)?;
    let store = s3(&endpoint, &bucket);
    let dir = tempfile::tempdir()?;
    let tiering = Tiering::new(Arc::clone(&store), PREFIX)
        .keep_local(0)
        .upload_in_background(false);
    let db = builder(dir.path(), tiering.clone())
        .overwrite(true)
        .open()
        .await?;
    let mut rng = StdRng::seed_from_u64(3);
    let mut items: Vec<(ItemLocation, u64, usize)> = Vec::new();
    for id in 0..150u64 {
        let len = rng.gen_range(1000..3000);
        items.push((db.add(content(id, len)).await?, id, len));
    }
    db.flush().await?;
    let head = items.last().unwrap().0.index;
    assert!(head >= 3, "{head}");
    assert_eq!(db.tier().await?.len(), head as usize);
    let of = |index: u32| -> Vec<(ItemLocation, u64, usize)> {
        items
            .iter()
            .filter(|i| i.0.index == index)
            .copied()
            .collect()
    };
    let sizes = [object_size(&store, 0).await?, object_size(&store, 1).await?];
    let (zero, one) = (of(0), of(1));
    let bytes = |i: &(ItemLocation, u64, usize)| content(i.1, i.2);
    let refused = |r: Result<u64, Error>| match r {
        Err(Error::InvalidTrimCommand { reason, .. }) => reason,
        other => panic!("expected InvalidTrimCommand, got {other:?}"),
    };
    // Wrong safety checks: refused, nothing changed.
    let last = zero[zero.len() - 2];
    let why = refused(db.rtrim(0, last.0.position, b"not the bytes").await);
    assert!(why.contains("safety check failed"), "{why}");
    let end_of = |i: &(ItemLocation, u64, usize)| u32::try_from(i.0.end()).unwrap();
    let why = refused(db.ltrim(0, end_of(&zero[1]), b"nor these").await);
    assert!(why.contains("safety check failed"), "{why}");
    reads_as(&db, &items, &|_| true).await?;
    // Right checks: index 0 keeps items 2.. up to the one before `last`.
    let cut = db.rtrim(0, last.0.position, &bytes(&last)[..16]).await?;
    assert_eq!(
        cut,
        u64::from(end_of(zero.last().unwrap()) - last.0.position)
    );
    let b1 = bytes(&zero[1]);
    let cut = db.ltrim(0, end_of(&zero[1]), &b1[b1.len() - 16..]).await?;
    assert_eq!(cut, u64::from(end_of(&zero[1])));
    // No checks: index 1 keeps all but its first and last items.
    db.ltrim(1, one[1].0.position, &[]).await?;
    db.rtrim(1, one[one.len() - 1].0.position, &[]).await?;
    let (kept_from, kept_to) = (zero[2].0.position, last.0.position);
    let (one_first, one_last) = (one[0].0, one[one.len() - 1].0);
    let gone = move |loc: ItemLocation| {
        (loc.index == 0 && (loc.position < kept_from || loc.position >= kept_to))
            || (loc.index == 1 && (loc == one_first || loc == one_last))
    };
    let check = |db: AioDiskDb| {
        let items = items.clone();
        async move {
            reads_as(&db, &items, &|l| !gone(l)).await?;
            for index in [0, 1] {
                let want: Vec<ItemLocation> = items
                    .iter()
                    .map(|i| i.0)
                    .filter(|l| l.index == index && !gone(*l))
                    .collect();
                assert_eq!(db.locations(index).await?, want, "index {index}");
            }
            let v = db.verify().await?;
            assert!(v.is_ok(), "{v:?}");
            assert_eq!(v.remote_files, u64::from(head));
            Ok::<_, Box<dyn std::error::Error>>(db)
        }
    };
    let db = check(db).await?;
    // The objects are as uploaded.
    assert_eq!(
        [object_size(&store, 0).await?, object_size(&store, 1).await?],
        sizes
    );
    db.stop().await?;
    let db = check(
        builder(dir.path(), tiering.clone())
            .overwrite(true)
            .open()
            .await?,
    )
    .await?;
    let reader = check(
        builder(dir.path(), tiering.clone())
            .read_only()
            .open()
            .await?,
    )
    .await?;
    reader.stop().await?;
    // Trims that reach every byte drop the indexes and their objects.
    let mut events = db.subscribe();
    // (A check at 0 is below the trim offset: refused, as for a local file.)
    let why = refused(db.rtrim(0, 0, &bytes(&zero[0])[..8]).await);
    assert!(why.contains("outside the stored range"), "{why}");
    db.rtrim(0, 0, &[]).await?;
    db.ltrim(1, end_of(&one[one.len() - 2]), &[]).await?;
    for want in [0, 1] {
        match events.recv().await? {
            Event::IndexDropped { index, .. } => assert_eq!(index, want),
            other => panic!("{other:?}"),
        }
        assert_eq!(object_size(&store, want).await?, None);
    }
    reads_as(&db, &items, &|l| l.index > 1).await?;
    db.stop().await?;
    Ok(())
}

/// A server of this test's own, from `AIODISKDB_MOTO_SERVER`, killed on drop.
struct Server {
    child: Child,
    endpoint: String,
}

impl Server {
    fn start(command: &str) -> Result<Server, Box<dyn std::error::Error>> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(command)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(authority(&server.endpoint)).is_err() {
            if Instant::now() > deadline {
                return Err("moto_server did not start".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }

    fn signal(&self, sig: &str) -> TestResult {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()?
            .success();
        if !ok {
            return Err(format!("kill {sig} failed").into());
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stopped_mid_run_then_back() -> TestResult {
    let Some(moto) = required(MOTO) else {
        return Ok(());
    };
    let server = Server::start(&moto)?;
    let bucket = bucket("stopped");
    create_bucket(&server.endpoint, &bucket)?;
    let store = s3(&server.endpoint, &bucket);
    let dir = tempfile::tempdir()?;
    let tiering = Tiering::new(Arc::clone(&store), PREFIX)
        .keep_local(1)
        .retry_backoff(Duration::from_millis(200));
    let db = builder(dir.path(), tiering.clone()).open().await?;
    let mut items = Vec::new();
    for id in 0..120u64 {
        let loc = db.add(content(id, 2000)).await?;
        items.push((loc, id));
    }
    db.flush().await?;
    tier_until(&db, dir.path(), 1).await?;
    let remote_item = items[0];
    let head_before = items.last().unwrap().0.index;
    // The server stops answering.
    server.signal("-STOP")?;
    let t0 = Instant::now();
    match db.read(remote_item.0).await {
        Err(Error::Remote { key, cause }) => {
            assert!(key.ends_with("data00000.dat"), "{key}");
            eprintln!("remote read with the server stopped: {cause}");
        }
        other => panic!("expected Error::Remote, got {other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    // Appends, flushes and local reads go on; new sealed files stay local.
    let mut more = Vec::new();
    let t1 = Instant::now();
    for id in 1000..1100u64 {
        let loc = db.add(content(id, 2000)).await?;
        more.push((loc, id));
    }
    db.flush().await?;
    assert!(
        t1.elapsed() < Duration::from_secs(10),
        "appends waited: {:?}",
        t1.elapsed()
    );
    for (loc, id) in &more {
        assert_eq!(
            db.read(*loc).await?.as_deref(),
            Some(&content(*id, 2000)[..])
        );
    }
    assert!(more.last().unwrap().0.index > head_before + 1);
    match db.tier().await {
        Err(Error::Remote { .. }) => {}
        other => panic!("expected Error::Remote from tier, got {other:?}"),
    }
    assert!(data_files(dir.path()).len() > 2, "the local copies stay");
    // Back: the uploader catches up, and everything reads back.
    server.signal("-CONT")?;
    tier_until(&db, dir.path(), 1).await?;
    for (loc, id) in items.iter().chain(&more) {
        assert_eq!(
            db.read(*loc).await?.as_deref(),
            Some(&content(*id, 2000)[..]),
            "{loc}"
        );
    }
    db.stop().await?;
    let db = builder(dir.path(), tiering).open().await?;
    for (loc, id) in items.iter().chain(&more) {
        assert_eq!(
            db.read(*loc).await?.as_deref(),
            Some(&content(*id, 2000)[..]),
            "{loc}"
        );
    }
    db.stop().await?;
    drop(server);
    Ok(())
}

const CHILD_DIR: &str = "AIODISKDB_TIER_CHILD";
const CHILD_ACK: &str = "AIODISKDB_TIER_ACK";
const CHILD_BUCKET: &str = "AIODISKDB_TIER_BUCKET";

/// The writer that [`kill_9_during_uploads_and_remote_drops`] kills: nothing unless
/// `AIODISKDB_TIER_CHILD` names a directory. It adds, flushes (logging `f <id> <loc>`
/// lines for the items each flush made durable, synced), tiers in the background, drops
/// its oldest index now and then (`d <index>` before, `D <index>` after), and now and
/// then trims a sealed index it wrote, tiered first (`x <index>` when it has no local copy
/// then): an ltrim to the end of its first item (`l <index> <to>`, `L ..` after) and an
/// rtrim from the start of its last one (`r <index> <from>`, `R ..`), each with a safety
/// check, until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_writer() -> TestResult {
    let (Ok(dir), Ok(ack), Ok(bucket), Ok(endpoint)) = (
        std::env::var(CHILD_DIR),
        std::env::var(CHILD_ACK),
        std::env::var(CHILD_BUCKET),
        std::env::var(ENDPOINT),
    ) else {
        return Ok(());
    };
    let store = s3(&endpoint, &bucket);
    let db = builder(
        Path::new(&dir),
        Tiering::new(store, PREFIX)
            .keep_local(0)
            .retry_backoff(Duration::from_millis(20)),
    )
    .overwrite(true)
    .open()
    .await?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&ack)?;
    let seed: u64 = std::env::var("AIODISKDB_TIER_SEED")?.parse()?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut id = seed << 32;
    let mut oldest = 0u32;
    // The items this child wrote, by index, and the indexes it trimmed.
    let mut mine: BTreeMap<u32, Vec<(ItemLocation, u64, usize)>> = BTreeMap::new();
    let mut trimmed = std::collections::BTreeSet::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let mut batch = Vec::new();
        for _ in 0..rng.gen_range(1..20) {
            let len = rng.gen_range(100..6000);
            let loc = db.add(content(id, len)).await?;
            batch.push(format!(
                "f {id} {} {} {}\n",
                loc.index, loc.position, loc.size
            ));
            mine.entry(loc.index).or_default().push((loc, id, len));
            id += 1;
        }
        db.flush().await?;
        log.write_all(batch.concat().as_bytes())?;
        log.sync_data()?;
        if rng.gen_range(0..10) == 0 {
            let head = batch
                .last()
                .map_or(0, |l| l.split(' ').nth(2).unwrap().parse::<u32>().unwrap());
            if oldest + 3 < head {
                writeln!(log, "d {oldest}")?;
                log.sync_data()?;
                match db.drop_index(oldest).await {
                    // Gone already: an earlier child dropped it.
                    Ok(_) | Err(Error::IndexDoesNotExist { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                writeln!(log, "D {oldest}")?;
                log.sync_data()?;
                oldest += 1;
            }
        }
        let head = mine.keys().next_back().copied().unwrap_or(0);
        let target = mine
            .iter()
            .find(|(i, v)| **i > oldest && **i + 2 < head && v.len() >= 3 && !trimmed.contains(*i));
        if let (Some((&index, v)), 0) = (target, rng.gen_range(0..2)) {
            trimmed.insert(index);
            let (first, last) = (v[0], v[v.len() - 1]);
            // Remote, unless its upload failed (`x <index>`: no local copy, remote).
            let _ = db.tier().await;
            if !Path::new(&dir).join(format!("data{index:05}.dat")).exists() {
                writeln!(log, "x {index}")?;
            }
            let to = u32::try_from(first.0.end())?;
            let tail = content(first.1, first.2)[first.2 - 8..].to_vec();
            writeln!(log, "l {index} {to}")?;
            log.sync_data()?;
            match db.ltrim(index, to, &tail).await {
                Ok(_) | Err(Error::IndexDoesNotExist { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            writeln!(log, "L {index} {to}")?;
            let from = last.0.position;
            writeln!(log, "r {index} {from}")?;
            log.sync_data()?;
            match db.rtrim(index, from, &content(last.1, last.2)[..8]).await {
                Ok(_) | Err(Error::IndexDoesNotExist { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            writeln!(log, "R {index} {from}")?;
            log.sync_data()?;
        }
    }
    Err("the child was not killed".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_uploads_and_remote_drops() -> TestResult {
    let Some(endpoint) = required(ENDPOINT) else {
        return Ok(());
    };
    let bucket = bucket("kill");
    create_bucket(&endpoint, &bucket)?;
    let store = s3(&endpoint, &bucket);
    let dir = tempfile::tempdir()?;
    let logs = tempfile::tempdir()?;
    let rounds: u64 = std::env::var("AIODISKDB_TIER_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let mut rng = StdRng::seed_from_u64(7);
    let mut acks = Acks::default();
    let mut tiered_objects = 0;
    for round in 0..rounds {
        let ack = logs.path().join(format!("ack{round}"));
        let mut child = Command::new(std::env::current_exe()?)
            .args(["child_writer", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_ACK, &ack)
            .env(CHILD_BUCKET, &bucket)
            .env("AIODISKDB_TIER_SEED", (round + 1).to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // Kill it once it has uploaded something this round, at a random moment after.
        let objects_before = count_objects(&store).await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while count_objects(&store).await? <= objects_before && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..400))).await;
        child.kill()?;
        child.wait()?;
        acks.read(&ack)?;
        // Recovery, then every acknowledged item reads back exactly, from the directory or
        // the server; dropped ones never.
        let db = builder(
            dir.path(),
            Tiering::new(Arc::clone(&store), PREFIX).keep_local(0),
        )
        .open()
        .await?;
        for (loc, (id, len)) in &acks.acked {
            let got = db.read(*loc).await?;
            if acks.dropped.contains(&loc.index) || cut(&acks.trims, loc) {
                assert_eq!(got, None, "round {round}: {loc} was dropped or trimmed");
            } else if acks.maybe_dropped.contains(&loc.index) || cut(&acks.maybe_trims, loc) {
                assert!(got.is_none() || got.as_deref() == Some(&content(*id, *len)[..]));
            } else {
                assert_eq!(
                    got.as_deref(),
                    Some(&content(*id, *len)[..]),
                    "round {round}: {loc}"
                );
            }
        }
        tiered_objects = count_objects(&store).await?;
        db.stop().await?;
    }
    let remote_trims = acks
        .trims
        .iter()
        .filter(|t| acks.remote.contains(&t.0))
        .count();
    eprintln!(
        "{rounds} kills survived: {} acknowledged items read back, {} indexes dropped, {} \
         trims ({remote_trims} of remote indexes), {tiered_objects} objects",
        acks.acked.len(),
        acks.dropped.len(),
        acks.trims.len(),
    );
    assert!(tiered_objects > 0);
    Ok(())
}

/// What the killed writers' logs say was acknowledged.
#[derive(Default)]
struct Acks {
    /// Every item, its id and length by location.
    acked: BTreeMap<ItemLocation, (u64, usize)>,
    /// Indexes dropped for sure, or maybe.
    dropped: std::collections::BTreeSet<u32>,
    maybe_dropped: std::collections::BTreeSet<u32>,
    /// Trims, `(index, position, ltrim)`: the items before (ltrim) or from (rtrim) the
    /// position are gone, for sure or maybe.
    trims: Vec<(u32, u32, bool)>,
    maybe_trims: Vec<(u32, u32, bool)>,
    /// Indexes that were remote when trimmed.
    remote: std::collections::BTreeSet<u32>,
}

impl Acks {
    /// Adds what the log at `path` says (a line torn by the kill: not acknowledged).
    fn read(&mut self, path: &Path) -> TestResult {
        let log = std::fs::File::open(path).map(std::io::BufReader::new);
        for line in log.into_iter().flat_map(BufRead::lines) {
            let line = line?;
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["f", id, index, position, size] => {
                    let loc = ItemLocation {
                        index: index.parse()?,
                        position: position.parse()?,
                        size: size.parse()?,
                    };
                    self.acked.insert(loc, (id.parse()?, loc.size as usize));
                }
                ["d", index] => {
                    self.maybe_dropped.insert(index.parse()?);
                }
                ["D", index] => {
                    self.dropped.insert(index.parse()?);
                }
                ["x", index] => {
                    self.remote.insert(index.parse()?);
                }
                [kind @ ("l" | "L" | "r" | "R"), index, at] => {
                    let t = (index.parse()?, at.parse()?, kind.eq_ignore_ascii_case("l"));
                    if kind.chars().all(char::is_uppercase) {
                        self.trims.push(t);
                    } else {
                        self.maybe_trims.push(t);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Whether one of `trims` removed `loc`.
fn cut(trims: &[(u32, u32, bool)], loc: &ItemLocation) -> bool {
    trims.iter().any(|&(index, at, ltrim)| {
        index == loc.index
            && if ltrim {
                loc.end() <= u64::from(at)
            } else {
                loc.position >= at
            }
    })
}

async fn count_objects(store: &Arc<dyn ObjectStore>) -> Result<usize, Box<dyn std::error::Error>> {
    Ok(store
        .list_with_delimiter(Some(&ObjectPath::from(PREFIX)))
        .await?
        .objects
        .len())
}
