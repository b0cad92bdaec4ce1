//! Our writer is killed, then the real Python library (aiodiskdb 0.2.3, from
//! `AIODISKDB_PYTHON`, as in `compat.rs`) tries to open the directory with its default
//! options: our guard checkpoint makes it refuse, changing nothing. After our recovery it
//! opens, appends and stops; then our open must keep everything both writers acknowledged.
//!
//! The test binary re-executes itself ([`crashed_writer_child`], a no-op unless
//! `AIODISKDB_CRASH_WRITER` names a directory): the child adds items and flushes now and
//! then, logging every item a flush acknowledged (synced) to an ack file, until the parent
//! kills it with SIGKILL. Files are small, so that kills also land in rollovers.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aiodiskdb::{AioDiskDb, Builder, ItemLocation};
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::common::{content, reexec_args, TestResult};

type Res<T> = Result<T, Box<dyn std::error::Error>>;
/// An item our writer acknowledged: its id, its length, its location.
type Ack = (u64, usize, ItemLocation);
use crate::compat::{python, roundtrip_script, run_python};

const ENV_DIR: &str = "AIODISKDB_CRASH_WRITER";
const ENV_ACK: &str = "AIODISKDB_CRASH_ACKS";
const ENV_FIRST_ID: &str = "AIODISKDB_CRASH_FIRST_ID";
const CHILD_TEST: &str = "compat_crash::crashed_writer_child";
const MAX_FILE: u64 = 64 << 10;
const MAX_BUFFER: u64 = 32 << 10;

fn builder(dir: &Path) -> Builder {
    AioDiskDb::builder(dir)
        .max_file_size(MAX_FILE)
        .max_buffer_size(MAX_BUFFER)
        .flush_interval(Duration::from_millis(5))
}

/// The child: adds items (ids from `AIODISKDB_CRASH_FIRST_ID`), flushes every few adds,
/// and logs `id len location` for every item a flush acknowledged, synced, until killed.
#[test]
fn crashed_writer_child() -> TestResult {
    let Some(dir) = std::env::var_os(ENV_DIR) else {
        return Ok(()); // not a child: nothing to do
    };
    let ack_path = PathBuf::from(std::env::var_os(ENV_ACK).ok_or("no ack file")?);
    let mut id: u64 = std::env::var(ENV_FIRST_ID)?.parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let db = builder(Path::new(&dir)).open().await?;
        let mut ack = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&ack_path)?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(id);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut unacked = Vec::new();
        while Instant::now() < deadline {
            let len = rng.gen_range(1..=3000);
            let loc = db.add(content(id, len)).await?;
            unacked.push((id, len, loc));
            id += 1;
            if unacked.len() >= 7 {
                db.flush().await?;
                let mut lines = Vec::new();
                for (i, l, loc) in unacked.drain(..) {
                    writeln!(lines, "{i} {l} {loc}")?;
                }
                ack.write_all(&lines)?;
                ack.sync_data()?;
            }
        }
        Err::<(), Box<dyn std::error::Error>>("nobody killed the child".into())
    })
}

/// The acknowledged items: `(id, len, location)`.
fn read_acks(path: &Path) -> Res<Vec<Ack>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split(' ').collect();
        if w.len() != 3 {
            return Err(format!("bad ack line {line:?}").into());
        }
        out.push((w[0].parse()?, w[1].parse()?, w[2].parse()?));
    }
    Ok(out)
}

/// Starts a writer on `dir`, kills it with SIGKILL once it logged `at_least` acks and a
/// random moment more has passed.
fn write_then_kill(
    dir: &Path,
    ack: &Path,
    first_id: u64,
    at_least: usize,
    rng: &mut impl Rng,
) -> TestResult {
    let mut child = Command::new(std::env::current_exe()?)
        .args(reexec_args(CHILD_TEST))
        .env(ENV_DIR, dir)
        .env(ENV_ACK, ack)
        .env(ENV_FIRST_ID, first_id.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let start = Instant::now();
    while read_acks(ack)?.len() < at_least {
        if let Some(status) = child.try_wait()? {
            return Err(format!("the writer exited by itself ({status})").into());
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            return Err("the writer acknowledged nothing for 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_micros(rng.gen_range(0..20_000)));
    child.kill()?; // SIGKILL
    child.wait()?;
    Ok(())
}

/// Opens `dir` with the Python library's default options (sizes matching ours), appends
/// `n` items, stops; prints them as one JSON line.
const PY_APPEND: &str = r"
import asyncio, json, random, sys
sys.path.insert(0, sys.argv[1])
import roundtrip as rt

async def main(d, n, seed):
    db = rt.AioDiskDB(d, max_file_size=64 / 1024, max_buffer_size=32 / 1024)
    task = await rt.start(db)
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        loc, data = await rt.safe_add(db, rt.rand_bytes(rng, 1, 2000))
        items.append(rt.item(loc, data))
    await rt.stop(db, task)
    print(json.dumps(items))

asyncio.run(main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
";

/// Every file but temp files, by name: its bytes.
fn snapshot(dir: &Path) -> Res<std::collections::BTreeMap<String, Vec<u8>>> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name().into_string().map_err(|_| "not UTF-8")?;
        if !name.starts_with(".tmp.") {
            out.insert(name.clone(), std::fs::read(dir.join(&name))?);
        }
    }
    Ok(out)
}

fn python_append(py: &Path, dir: &Path, n: usize, seed: u64) -> Res<Vec<(ItemLocation, Vec<u8>)>> {
    let compat_dir = roundtrip_script().parent().ok_or("no dir")?.to_path_buf();
    let stdout = run_python(
        py,
        &[
            "-c".as_ref(),
            PY_APPEND.as_ref(),
            compat_dir.as_os_str(),
            dir.as_os_str(),
            n.to_string().as_ref(),
            seed.to_string().as_ref(),
        ],
    )?;
    let line = stdout.lines().last().ok_or("no output")?;
    let mut out = Vec::new();
    for it in serde_json::from_str::<Value>(line)?
        .as_array()
        .ok_or("not a list")?
    {
        let num =
            |k: &str| -> Res<u32> { Ok(u32::try_from(it[k].as_u64().ok_or("not a number")?)?) };
        let hex = it["hex"].as_str().ok_or("no hex")?;
        let data = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()?;
        let loc = ItemLocation {
            index: num("index")?,
            position: num("position")?,
            size: num("size")?,
        };
        out.push((loc, data));
    }
    Ok(out)
}

/// The issue's reproduction, three times over on one directory: our writer is killed
/// (dirty state, maybe a torn flush past the committed end); the Python library refuses to
/// start, leaving every file as it was; after our recovery it appends 100 items and stops
/// cleanly; our next open must serve every item Python acknowledged and every item our
/// writer acknowledged. Before issue 9, Python appended behind our torn tail and our
/// recovery then cut the head back and deleted Python's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_appends_after_our_crash_are_kept() -> TestResult {
    let Some(py) = python("python_appends_after_our_crash_are_kept") else {
        return Ok(());
    };
    let work = tempfile::tempdir()?;
    let dir = work.path().join("db");
    let ack = work.path().join("acks");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut python_items: Vec<(ItemLocation, Vec<u8>)> = Vec::new();
    for round in 0..3u64 {
        let first_id = round << 32;
        let acked_before = read_acks(&ack)?.len();
        write_then_kill(
            &dir,
            &ack,
            first_id,
            acked_before + 30 + 40 * usize::try_from(round)?,
            &mut rng,
        )?;

        // What an operator sees before handing the directory to another writer.
        let ins = builder(&dir).inspect().await?;
        assert!(
            ins.problems
                .iter()
                .any(|p| p.message.contains("recovery pending")),
            "round {round}: check must report the interrupted session: {:?}",
            ins.problems
        );
        let names: Vec<String> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        assert!(
            names.iter().any(|n| n.starts_with(".checkpoint-")),
            "round {round}: a session of ours keeps a python checkpoint: {names:?}"
        );

        // Our guard checkpoint makes the Python library refuse to start, changing nothing
        // that matters (it checks on a copy, and deletes only temp files).
        let before = snapshot(&dir)?;
        let refused = tokio::task::block_in_place(|| python_append(&py, &dir, 100, round));
        let why = refused.expect_err("python must refuse a directory with a crashed session");
        assert!(
            why.to_string().contains("File corrupted"),
            "round {round}: {why}"
        );
        assert_eq!(
            snapshot(&dir)?,
            before,
            "round {round}: python changed the files"
        );

        // What the docs tell an operator to run first (`aiodiskdb recover` is this).
        builder(&dir).open().await?.stop().await?;
        let appended = tokio::task::block_in_place(|| python_append(&py, &dir, 100, round))?;
        assert_eq!(appended.len(), 100);
        python_items.extend(appended);

        let db = builder(&dir).open().await?;
        for (loc, data) in &python_items {
            let got = db.read(*loc).await?;
            assert_eq!(
                got.as_deref(),
                Some(&data[..]),
                "round {round}: python's item {loc} must survive our recovery"
            );
        }
        let acks = read_acks(&ack)?;
        for (id, len, loc) in &acks {
            assert_eq!(
                db.read(*loc).await?.as_deref(),
                Some(&content(*id, *len)[..]),
                "round {round}: our acknowledged item {id} at {loc}"
            );
        }
        db.stop().await?;
        println!(
            "compat_crash: round {round}: {} of our items and {} of python's read back",
            acks.len(),
            python_items.len()
        );
    }
    Ok(())
}
