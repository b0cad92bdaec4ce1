//! Compatibility with the Python library aiodiskdb 0.2.3 (SPEC section 3, RELIABILITY
//! clause 7): the directories it wrote (`tests/fixtures/`), a live round trip through it
//! (`tests/compat/roundtrip.py`), and data another writer appends after our clean stop.
//!
//! The live tests need a Python with `aiodiskdb==0.2.3` importable, named by the
//! `AIODISKDB_PYTHON` environment variable (`.ci/run` sets it up). Without it they print
//! that they were skipped, except under `CI=true`, where they fail instead.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use aiodiskdb::{AioDiskDb, Builder, ItemLocation};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

type BoxError = Box<dyn std::error::Error>;
type Res<T> = Result<T, BoxError>;

const HEADER_LEN: u64 = 24;
const CHECKPOINT_PREFIX: &str = ".checkpoint-";

// ------------------------------------------------------------------ expected.json model

/// The `config` object of an `expected.json`.
#[derive(Debug, Clone)]
struct PyConfig {
    prefix: String,
    padding: usize,
    genesis: [u8; 4],
    max_file_size: u64,
    max_buffer_size: u64,
    /// As read, with the informative extras, to write back unchanged.
    raw: Value,
}

/// One item of `expected.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    loc: ItemLocation,
    data: Vec<u8>,
    present: bool,
}

/// A data file as found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileState {
    len: u64,
    trim_offset: u32,
}

impl FileState {
    /// Logical end position of the file.
    fn end(self) -> u64 {
        u64::from(self.trim_offset) + self.len - HEADER_LEN
    }
}

type Files = BTreeMap<u32, FileState>;

/// A parsed `expected.json`.
#[derive(Debug, Clone)]
struct Expected {
    config: PyConfig,
    items: Vec<Item>,
    files: Files,
    raw: Value,
}

fn err(msg: impl Into<String>) -> BoxError {
    msg.into().into()
}

fn field<'a>(v: &'a Value, key: &str) -> Res<&'a Value> {
    v.get(key)
        .ok_or_else(|| err(format!("expected.json: missing {key:?}")))
}

fn uint(v: &Value, key: &str) -> Res<u64> {
    field(v, key)?
        .as_u64()
        .ok_or_else(|| err(format!("expected.json: {key:?} is not an unsigned integer")))
}

fn u32_field(v: &Value, key: &str) -> Res<u32> {
    Ok(u32::try_from(uint(v, key)?)?)
}

fn text<'a>(v: &'a Value, key: &str) -> Res<&'a str> {
    field(v, key)?
        .as_str()
        .ok_or_else(|| err(format!("expected.json: {key:?} is not a string")))
}

fn from_hex(s: &str) -> Res<Vec<u8>> {
    let pairs = s.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return Err(err(format!("odd hex length {}", s.len())));
    }
    pairs
        .map(|p| Ok(u8::from_str_radix(std::str::from_utf8(p)?, 16)?))
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn parse_config(v: &Value) -> Res<PyConfig> {
    let genesis = from_hex(text(v, "genesis_hex")?)?;
    Ok(PyConfig {
        prefix: text(v, "prefix")?.to_owned(),
        padding: usize::try_from(uint(v, "padding")?)?,
        genesis: genesis
            .try_into()
            .map_err(|_| err("genesis_hex must be 4 bytes"))?,
        max_file_size: uint(v, "max_file_size")?,
        max_buffer_size: uint(v, "max_buffer_size")?,
        raw: v.clone(),
    })
}

fn parse_item(v: &Value) -> Res<Item> {
    let data = from_hex(text(v, "hex")?)?;
    let loc = ItemLocation {
        index: u32_field(v, "index")?,
        position: u32_field(v, "position")?,
        size: u32_field(v, "size")?,
    };
    if data.len() != loc.size as usize {
        return Err(err(format!("{loc:?}: hex holds {} bytes", data.len())));
    }
    let present = field(v, "present")?
        .as_bool()
        .ok_or_else(|| err("\"present\" is not a bool"))?;
    Ok(Item { loc, data, present })
}

fn parse_files(v: &Value) -> Res<Files> {
    let obj = v
        .as_object()
        .ok_or_else(|| err("\"files\" is not an object"))?;
    obj.iter()
        .map(|(k, f)| {
            Ok((
                k.parse()?,
                FileState {
                    len: uint(f, "len")?,
                    trim_offset: u32_field(f, "trim_offset")?,
                },
            ))
        })
        .collect()
}

fn load_expected(path: &Path) -> Res<Expected> {
    let raw: Value = serde_json::from_slice(&std::fs::read(path)?)?;
    let items = field(&raw, "items")?
        .as_array()
        .ok_or_else(|| err("\"items\" is not an array"))?
        .iter()
        .map(parse_item)
        .collect::<Res<Vec<_>>>()?;
    Ok(Expected {
        config: parse_config(field(&raw, "config")?)?,
        items,
        files: parse_files(field(&raw, "files")?)?,
        raw,
    })
}

fn item_json(it: &Item) -> Value {
    json!({
        "index": it.loc.index,
        "position": it.loc.position,
        "size": it.loc.size,
        "hex": to_hex(&it.data),
        "present": it.present,
    })
}

fn files_json(files: &Files) -> Value {
    files
        .iter()
        .map(|(i, f)| {
            (
                i.to_string(),
                json!({"len": f.len, "trim_offset": f.trim_offset}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Writes `dir/expected.json` in the shape `roundtrip.py verify` reads, with the files as
/// they are on disk now.
fn save_expected(dir: &Path, cfg: &PyConfig, items: &[Item], notes: &str) -> Res<()> {
    let files = scan_files(&dir.join("db"), cfg)?;
    let doc = json!({
        "config": cfg.raw,
        "items": items.iter().map(item_json).collect::<Vec<_>>(),
        "files": files_json(&files),
        "notes": notes,
    });
    let mut text = serde_json::to_string_pretty(&doc)?;
    text.push('\n');
    std::fs::write(dir.join("expected.json"), text)?;
    Ok(())
}

// ------------------------------------------------------------------ files on disk

/// The data files of `dir` (`{prefix}{digits}.dat`), with their lengths and the trim offset
/// of their header. Fails if a header is not an aiodiskdb 0.2.x header of this config.
fn scan_files(dir: &Path, cfg: &PyConfig) -> Res<Files> {
    let mut out = Files::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?
            .file_name()
            .into_string()
            .map_err(|_| err("bad name"))?;
        let Some(digits) = name
            .strip_prefix(cfg.prefix.as_str())
            .and_then(|n| n.strip_suffix(".dat"))
        else {
            continue;
        };
        if digits.len() != cfg.padding || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(format!("{name}: not {} digits", cfg.padding)));
        }
        let bytes = std::fs::read(dir.join(&name))?;
        if bytes.len() < 24 {
            return Err(err(format!(
                "{name}: {} bytes, shorter than a header",
                bytes.len()
            )));
        }
        if bytes[0..4] != cfg.genesis || bytes[8..24].iter().any(|b| *b != 0) {
            return Err(err(format!("{name}: bad header {}", to_hex(&bytes[..24]))));
        }
        out.insert(
            digits.parse()?,
            FileState {
                len: bytes.len() as u64,
                trim_offset: u32::from_le_bytes(bytes[4..8].try_into()?),
            },
        );
    }
    Ok(out)
}

fn checkpoints(dir: &Path) -> Res<Vec<String>> {
    let mut v = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with(CHECKPOINT_PREFIX) {
            v.push(name);
        }
    }
    Ok(v)
}

fn copy_dir(src: &Path, dst: &Path) -> Res<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), dst.join(entry.file_name()))?;
        }
    }
    Ok(())
}

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub(crate) fn roundtrip_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/roundtrip.py")
}

// ------------------------------------------------------------------ our side

fn builder(dir: &Path, cfg: &PyConfig) -> Builder {
    AioDiskDb::builder(dir)
        .file_prefix(cfg.prefix.clone())
        .file_padding(cfg.padding)
        .genesis_bytes(cfg.genesis)
        .max_file_size(cfg.max_file_size)
        .max_buffer_size(cfg.max_buffer_size.min(cfg.max_file_size))
}

/// Whether `loc` overlaps the range of a present item of `items` (for an absent item: its
/// range was trimmed away and then legitimately reused by a later write).
fn reused(loc: ItemLocation, items: &[Item]) -> bool {
    items.iter().any(|o| {
        o.present
            && o.loc.index == loc.index
            && u64::from(o.loc.position) < loc.end()
            && u64::from(loc.position) < o.loc.end()
    })
}

/// Reads every item: present ones must match byte for byte, absent ones must read `None`
/// (unless their range was reused by a present item). Returns `(present, absent)` counts.
async fn check_items(db: &AioDiskDb, items: &[Item], label: &str) -> Res<(usize, usize)> {
    let (mut present, mut absent) = (0, 0);
    for it in items {
        let got = db.read(it.loc).await?;
        if it.present {
            assert!(
                got.as_deref() == Some(&it.data[..]),
                "{label}: {:?}: want {} bytes, got {:?}",
                it.loc,
                it.data.len(),
                got.map(|b| b.len())
            );
            present += 1;
        } else if !reused(it.loc, items) {
            assert!(
                got.is_none(),
                "{label}: {:?} must be absent, read {} bytes",
                it.loc,
                got.map_or(0, |b| b.len())
            );
            absent += 1;
        }
    }
    Ok((present, absent))
}

/// Where the next add of `size` bytes must go (SPEC section 2): at the end of the last
/// file if the file, header included, stays within `max_file_size`, else at position 0 of
/// the next index.
fn next_location(files: &Files, cfg: &PyConfig, size: u32) -> ItemLocation {
    let (&index, head) = files.last_key_value().expect("at least one data file");
    if head.len + u64::from(size) <= cfg.max_file_size {
        ItemLocation {
            index,
            position: u32::try_from(head.end()).expect("u32 position"),
            size,
        }
    } else {
        ItemLocation {
            index: index + 1,
            position: 0,
            size,
        }
    }
}

fn random_bytes(rng: &mut StdRng, max: u64) -> Vec<u8> {
    let max = usize::try_from(max.min(3000)).expect("small");
    let mut v = vec![0u8; rng.gen_range(1..=max)];
    rng.fill(&mut v[..]);
    v
}

/// Asserts that transaction locations are contiguous: each item follows the previous one
/// in the same file, or starts the next index at position 0.
fn assert_contiguous(locs: &[ItemLocation]) {
    for w in locs.windows(2) {
        let same = w[1].index == w[0].index && u64::from(w[1].position) == w[0].end();
        let next = w[1].index == w[0].index + 1 && w[1].position == 0;
        assert!(
            same || next,
            "transaction not contiguous: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
}

/// Adds `adds` random items, then a 3-item transaction, then two more adds, reading each
/// back at once; flushes. Returns the new items in write order.
async fn append_ours(
    db: &AioDiskDb,
    cfg: &PyConfig,
    rng: &mut StdRng,
    adds: usize,
) -> Res<Vec<Item>> {
    let add_max = cfg.max_buffer_size.min(cfg.max_file_size - HEADER_LEN);
    let tx_max = cfg.max_file_size - HEADER_LEN;
    let mut out = Vec::new();
    for n in 0..adds + 2 {
        if n == adds {
            let datas: Vec<Vec<u8>> = (0..3).map(|_| random_bytes(rng, tx_max)).collect();
            let mut tx = db.transaction();
            for d in &datas {
                tx.add(d.clone())?;
            }
            let locs = tx.commit().await?;
            assert_eq!(locs.len(), datas.len());
            assert_contiguous(&locs);
            for (loc, data) in locs.into_iter().zip(datas) {
                assert_eq!(db.read(loc).await?.as_deref(), Some(&data[..]));
                out.push(Item {
                    loc,
                    data,
                    present: true,
                });
            }
        }
        let data = random_bytes(rng, add_max);
        let loc = db.add(data.clone()).await?;
        assert_eq!(db.read(loc).await?.as_deref(), Some(&data[..]), "{loc:?}");
        out.push(Item {
            loc,
            data,
            present: true,
        });
    }
    db.flush().await?;
    Ok(out)
}

/// Adds one 100-byte item and checks it lands where SPEC section 2 says, given the files.
async fn first_add(db: &AioDiskDb, cfg: &PyConfig, files: &Files) -> Res<Item> {
    let data: Vec<u8> = (0..100u8).map(|b| b ^ 0x5a).collect();
    let want = next_location(files, cfg, 100);
    let loc = db.add(data.clone()).await?;
    assert_eq!(loc, want, "first add after open");
    Ok(Item {
        loc,
        data,
        present: true,
    })
}

/// Positions in `items` of the present items of `index`, by position.
fn present_in(items: &[Item], index: u32) -> Vec<usize> {
    let mut v: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].present && items[i].loc.index == index)
        .collect();
    v.sort_by_key(|&i| items[i].loc.position);
    v
}

/// The trims `trim_older` did, to check on disk.
#[derive(Debug, Clone, Copy)]
struct Trims {
    /// `(index, trim_to)`.
    ltrim: (u32, u32),
    /// `(index, trim_from)`.
    rtrim: (u32, u32),
    dropped: u32,
}

/// With overwrite enabled, ltrims, rtrims and drops three indexes below `head` (their
/// files as in `files`), with safety checks, and marks the items they remove absent.
/// The ltrim prefers an index that already has a trim offset.
async fn trim_older(db: &AioDiskDb, items: &mut [Item], files: &Files, head: u32) -> Res<Trims> {
    let older: Vec<u32> = files.keys().copied().filter(|&i| i < head).collect();
    let two = |i: &u32| present_in(items, *i).len() >= 2;
    let l_index = older
        .iter()
        .copied()
        .filter(two)
        .find(|i| files[i].trim_offset > 0)
        .or_else(|| older.iter().copied().find(two))
        .ok_or_else(|| err("no older index to ltrim"))?;
    let r_index = older
        .iter()
        .copied()
        .filter(two)
        .find(|&i| i != l_index)
        .ok_or_else(|| err("no older index to rtrim"))?;
    let d_index = older
        .iter()
        .copied()
        .find(|&i| i != l_index && i != r_index && !present_in(items, i).is_empty())
        .ok_or_else(|| err("no older index to drop"))?;

    let first = &items[present_in(items, l_index)[0]];
    let to = u32::try_from(first.loc.end())?;
    let check = &first.data[first.data.len().saturating_sub(8)..];
    let trimmed = db.ltrim(l_index, to, check).await?;
    assert_eq!(
        trimmed,
        u64::from(to - files[&l_index].trim_offset),
        "ltrim"
    );

    let last = &items[*present_in(items, r_index).last().expect("two items")];
    let from = last.loc.position;
    let check = &last.data[..last.data.len().min(8)];
    let trimmed = db.rtrim(r_index, from, check).await?;
    assert_eq!(trimmed, files[&r_index].end() - u64::from(from), "rtrim");

    let size = db.drop_index(d_index).await?;
    assert_eq!(size, files[&d_index].len - HEADER_LEN, "drop_index");

    for it in items.iter_mut() {
        let gone = (it.loc.index == l_index && it.loc.position < to)
            || (it.loc.index == r_index && it.loc.end() > u64::from(from))
            || it.loc.index == d_index;
        if gone {
            it.present = false;
        }
    }
    Ok(Trims {
        ltrim: (l_index, to),
        rtrim: (r_index, from),
        dropped: d_index,
    })
}

/// The files after `trim_older`, as aiodiskdb 0.2.x lays them out.
fn assert_trims_on_disk(now: &Files, before: &Files, t: Trims) {
    let (li, to) = t.ltrim;
    let end = before[&li].end();
    assert_eq!(
        now.get(&li),
        Some(&FileState {
            len: HEADER_LEN + end - u64::from(to),
            trim_offset: to,
        }),
        "ltrimmed file {li}"
    );
    let (ri, from) = t.rtrim;
    let r = before[&ri];
    assert_eq!(
        now.get(&ri),
        Some(&FileState {
            len: HEADER_LEN + u64::from(from - r.trim_offset),
            trim_offset: r.trim_offset,
        }),
        "rtrimmed file {ri}"
    );
    assert!(!now.contains_key(&t.dropped), "dropped file {}", t.dropped);
}

/// Files we created never exceed `max_file_size`; files Python left larger are kept as
/// they were (appends rolled over).
fn assert_file_sizes(now: &Files, python: &Files, cfg: &PyConfig) {
    for (i, f) in now {
        let limit = python
            .get(i)
            .map_or(cfg.max_file_size, |p| p.len.max(cfg.max_file_size));
        assert!(f.len <= limit, "file {i}: {} bytes, limit {limit}", f.len);
    }
}

// ------------------------------------------------------------------ the Python side

/// The Python with aiodiskdb 0.2.3, from `AIODISKDB_PYTHON`. Without it: `None` and a
/// printed "skipped" line, or a failure under `CI=true` (CI must never skip silently).
pub(crate) fn python(test: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AIODISKDB_PYTHON").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    assert!(
        !ci,
        "{test}: CI is set but AIODISKDB_PYTHON is not; the Python interop tests must not be \
         skipped in CI (run `bash .ci/run`, or export AIODISKDB_PYTHON=/path/to/python with \
         aiodiskdb==0.2.3)"
    );
    println!(
        "compat: {test} SKIPPED: set AIODISKDB_PYTHON to a python with aiodiskdb==0.2.3 \
         (bash .ci/run does)"
    );
    None
}

/// Runs `py args...` without stdin, prints its output, fails unless it exits 0; returns
/// its stdout.
pub(crate) fn run_python(py: &Path, args: &[&std::ffi::OsStr]) -> Res<String> {
    let out = Command::new(py)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| err(format!("run {}: {e}", py.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stdout.lines() {
        if line.len() > 300 {
            println!("python: ({} characters of JSON)", line.len());
        } else {
            println!("python: {line}");
        }
    }
    for line in stderr.lines() {
        println!("python (stderr): {line}");
    }
    if !out.status.success() {
        return Err(err(format!(
            "python {:?} exited with {}: {}{}",
            args.get(1),
            out.status,
            stdout,
            stderr
        )));
    }
    Ok(stdout)
}

/// `roundtrip.py verify dir`: Python reads every item of `dir/expected.json`, appends,
/// reopens and re-reads; then we re-read its `expected.final.json` (RELIABILITY clause 7:
/// what Python appended after our clean stop is kept).
async fn python_verify_then_reread(py: &Path, dir: &Path, cfg: &PyConfig) -> Res<String> {
    let stdout = run_python(
        py,
        &[
            roundtrip_script().as_os_str(),
            "verify".as_ref(),
            dir.as_os_str(),
        ],
    )?;
    let line = stdout
        .lines()
        .find(|l| l.starts_with("roundtrip ok"))
        .ok_or_else(|| err("verify printed no \"roundtrip ok\" line"))?
        .to_owned();
    let fin = load_expected(&dir.join("expected.final.json"))?;
    let dbdir = dir.join("db");
    let before = scan_files(&dbdir, cfg)?;
    assert_eq!(before, fin.files, "expected.final.json files");
    let db = builder(&dbdir, cfg).open().await?;
    assert_eq!(
        scan_files(&dbdir, cfg)?,
        before,
        "our open must not cut Python's appends"
    );
    let (p, a) = check_items(&db, &fin.items, "after python verify").await?;
    db.stop().await?;
    println!("compat: re-read after python: {p} present, {a} absent");
    Ok(line)
}

/// A Python script run with `roundtrip.py`'s helpers: it opens `DIR/db` with the config of
/// `DIR/expected.json`, reads every item of it (as `roundtrip.py verify` does), then adds
/// items (at least 5; with `roll`, until it has started a new index), stops, and prints
/// the added items as one JSON line. Unlike `verify`, item sizes follow the config.
const PY_READ_AND_APPEND: &str = r"
import asyncio, json, random, sys
sys.path.insert(0, sys.argv[1])
import roundtrip as rt

async def main(d, roll):
    with open(d + '/expected.json') as f:
        exp = json.load(f)
    cfg = exp['config']
    db = rt.open_db(d + '/db', cfg)
    task = await rt.start(db)
    errors = []
    n = await rt.check_items(db, exp['items'], errors, 'python read')
    if errors:
        await rt.stop(db, task)
        rt.fail(errors)
    rng = random.Random(99)
    hi = min(2000, cfg['max_buffer_size'] - 1)
    items, first = [], None
    while len(items) < 200:
        loc, data = await rt.safe_add(db, rt.rand_bytes(rng, 1, hi))
        items.append(rt.item(loc, data))
        first = loc.index if first is None else first
        if len(items) >= 5 and (not roll or loc.index > first):
            break
    await rt.stop(db, task)
    print('python read %d items, then appended %d' % (n, len(items)))
    print(json.dumps(items))

asyncio.run(main(sys.argv[2], sys.argv[3] == 'roll'))
";

/// Runs [`PY_READ_AND_APPEND`] on `dir`; returns the items Python appended.
fn python_read_and_append(py: &Path, dir: &Path, roll: bool) -> Res<Vec<Item>> {
    let compat_dir = roundtrip_script()
        .parent()
        .ok_or_else(|| err("no dir"))?
        .to_path_buf();
    let stdout = run_python(
        py,
        &[
            "-c".as_ref(),
            PY_READ_AND_APPEND.as_ref(),
            compat_dir.as_os_str(),
            dir.as_os_str(),
            if roll { "roll" } else { "count" }.as_ref(),
        ],
    )?;
    let line = stdout.lines().last().ok_or_else(|| err("no output"))?;
    serde_json::from_str::<Value>(line)?
        .as_array()
        .ok_or_else(|| err("not a list"))?
        .iter()
        .map(parse_item)
        .collect()
}

/// Items to hand to Python: absent items whose range a present item reused are left out
/// (Python would read the new bytes there).
fn for_python(items: &[Item]) -> Vec<Item> {
    items
        .iter()
        .filter(|it| it.present || !reused(it.loc, items))
        .cloned()
        .collect()
}

// ------------------------------------------------------------------ fixtures

fn seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Checks the committed fixture as it is (files, checkpoint) without opening it.
fn check_fixture_files(name: &str, exp: &Expected, src: &Path) -> Res<()> {
    assert_eq!(
        scan_files(src, &exp.config)?,
        exp.files,
        "{name}: the files on disk as we read them vs expected.json"
    );
    let cps = checkpoints(src)?;
    if let Some(cp) = exp.raw.get("checkpoint") {
        let cp_name = text(cp, "name")?;
        assert_eq!(cps, [cp_name], "{name}: checkpoint files");
        let bytes = std::fs::read(src.join(cp_name))?;
        assert_eq!(bytes.len() as u64, uint(cp, "len")?);
        assert_eq!(to_hex(&bytes), text(cp, "hex")?);
    } else {
        assert!(cps.is_empty(), "{name}: unexpected checkpoint {cps:?}");
    }
    Ok(())
}

/// The files after our open: unchanged, or for `crashed` cut back to
/// `recovered_file_len` with the checkpoint gone. Returns them.
fn check_after_open(name: &str, exp: &Expected, work: &Path) -> Res<Files> {
    let now = scan_files(work, &exp.config)?;
    let mut want = exp.files.clone();
    if let Some(rec) = exp.raw.get("recovered_file_len") {
        let rec = rec
            .as_object()
            .ok_or_else(|| err("recovered_file_len is not an object"))?;
        for (k, v) in rec {
            let f = want
                .get_mut(&k.parse()?)
                .ok_or_else(|| err("unknown index"))?;
            f.len = v.as_u64().ok_or_else(|| err("bad recovered_file_len"))?;
        }
        assert!(
            checkpoints(work)?.is_empty(),
            "{name}: the .checkpoint-* file must be gone after open"
        );
    }
    assert_eq!(now, want, "{name}: the files after our open");
    Ok(now)
}

/// Copies fixture `name`, opens it with its config, reads every item, appends adds and a
/// transaction (and with `trim`, trims older indexes), stops, reopens, re-reads; then,
/// if a Python is available, lets Python verify the result and re-reads what it added.
async fn fixture_round_trip(name: &str, trim: bool) -> Res<()> {
    let fdir = fixture_dir(name);
    let exp = load_expected(&fdir.join("expected.json"))?;
    let cfg = &exp.config;
    let src = fdir.join("db");
    check_fixture_files(name, &exp, &src)?;

    // Never open the committed fixture in place: opening writes our state file.
    let tmp = tempfile::tempdir()?;
    let work = tmp.path().join("db");
    copy_dir(&src, &work)?;
    let db = builder(&work, cfg).open().await?;
    let files = check_after_open(name, &exp, &work)?;
    let mut items = exp.items.clone();
    let (p, a) = check_items(&db, &items, "after open").await?;
    assert_eq!(p + a, items.len(), "{name}: every item checked");

    let mut rng = StdRng::seed_from_u64(seed(name));
    items.push(first_add(&db, cfg, &files).await?);
    items.extend(append_ours(&db, cfg, &mut rng, 12).await?);
    check_items(&db, &items, "after our appends").await?;
    let mut note = String::new();
    if trim {
        let head = *files.keys().last().expect("files");
        db.enable_overwrite();
        let t = trim_older(&db, &mut items, &files, head).await?;
        check_items(&db, &items, "after our trims").await?;
        assert_trims_on_disk(&scan_files(&work, cfg)?, &files, t);
        items.extend(append_ours(&db, cfg, &mut rng, 3).await?);
        note = format!(" Trims by Rust: {t:?}.");
    }
    db.stop().await?;
    assert_file_sizes(&scan_files(&work, cfg)?, &exp.files, cfg);

    let db = builder(&work, cfg).open().await?;
    let (p, a) = check_items(&db, &items, "after reopen").await?;
    db.stop().await?;
    println!(
        "compat: fixture {name}: {} python items, {} ours; {p} present and {a} absent read back",
        exp.items.len(),
        items.len() - exp.items.len()
    );

    if let Some(py) = python(&format!("fixture {name}: python continues")) {
        let notes = format!("fixture {name} + items added by Rust.{note}");
        save_expected(tmp.path(), &exp.config, &for_python(&items), &notes)?;
        let added = python_read_and_append(&py, tmp.path(), false)?;
        println!(
            "compat: fixture {name}: python read it all and appended {} items",
            added.len()
        );
        items.extend(added);
        reopen_and_check(&work, cfg, items).await?;
    }
    Ok(())
}

#[tokio::test]
async fn fixture_basic() -> Res<()> {
    fixture_round_trip("basic", false).await
}

#[tokio::test]
async fn fixture_multi_file() -> Res<()> {
    // The last file is full (data >= max_file_size): our first add opens index 5.
    fixture_round_trip("multi_file", false).await
}

#[tokio::test]
async fn fixture_trimmed() -> Res<()> {
    fixture_round_trip("trimmed", false).await
}

#[tokio::test]
async fn fixture_trimmed_then_trimmed_again_by_us() -> Res<()> {
    fixture_round_trip("trimmed", true).await
}

#[tokio::test]
async fn fixture_custom() -> Res<()> {
    fixture_round_trip("custom", false).await
}

#[tokio::test]
async fn fixture_crashed() -> Res<()> {
    // Recovery cuts data00001.dat back to the checkpoint and deletes it; the crashed
    // flush's items are absent (until our appends reuse their range).
    fixture_round_trip("crashed", false).await
}

#[test]
fn fixture_multi_file_ends_full_and_crashed_has_a_torn_flush() -> Res<()> {
    // Guards the premises the tests above rely on.
    let m = load_expected(&fixture_dir("multi_file").join("expected.json"))?;
    let (_, last) = m.files.last_key_value().expect("files");
    assert!(last.len - HEADER_LEN >= m.config.max_file_size);
    let c = load_expected(&fixture_dir("crashed").join("expected.json"))?;
    assert_eq!(c.items.iter().filter(|i| !i.present).count(), 4);
    assert_eq!(c.files[&1].len, 466);
    Ok(())
}

// ------------------------------------------------------------------ live round trip

/// Python writes (`roundtrip.py write`), we read, append, trim older indexes and stop,
/// then Python verifies and continues (`roundtrip.py verify`), and we re-read it all.
async fn live_round_trip(last_file_room: bool) -> Res<()> {
    let variant = if last_file_room {
        "--last-file-room"
    } else {
        "last file full"
    };
    let Some(py) = python(&format!("live round trip ({variant})")) else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let script = roundtrip_script();
    let mut args = vec![script.as_os_str(), "write".as_ref(), dir.as_os_str()];
    if last_file_room {
        args.push("--last-file-room".as_ref());
    }
    run_python(&py, &args)?;

    let exp = load_expected(&dir.join("expected.json"))?;
    let cfg = &exp.config;
    let dbdir = dir.join("db");
    assert_eq!(
        scan_files(&dbdir, cfg)?,
        exp.files,
        "python's files as we read them"
    );
    let (&head, last) = exp.files.last_key_value().expect("files");
    assert_eq!(last.len - HEADER_LEN >= cfg.max_file_size, !last_file_room);

    let db = builder(&dbdir, cfg).open().await?;
    assert_eq!(
        scan_files(&dbdir, cfg)?,
        exp.files,
        "our open changed no data file"
    );
    let mut items = exp.items.clone();
    check_items(&db, &items, "python items").await?;
    let first = first_add(&db, cfg, &exp.files).await?;
    if !last_file_room {
        assert_eq!((first.loc.index, first.loc.position), (head + 1, 0));
    }
    items.push(first);
    let mut rng = StdRng::seed_from_u64(seed(variant));
    items.extend(append_ours(&db, cfg, &mut rng, 20).await?);
    db.enable_overwrite();
    let trims = trim_older(&db, &mut items, &exp.files, head).await?;
    db.disable_overwrite();
    items.extend(append_ours(&db, cfg, &mut rng, 5).await?);
    check_items(&db, &items, "python + ours").await?;
    db.stop().await?;
    let now = scan_files(&dbdir, cfg)?;
    assert_trims_on_disk(&now, &exp.files, trims);
    assert_file_sizes(&now, &exp.files, cfg);

    let db = builder(&dbdir, cfg).open().await?;
    let (p, a) = check_items(&db, &items, "after our reopen").await?;
    db.stop().await?;

    let notes = format!(
        "{} | Rust read them, added {} items (adds + transactions) and trimmed older indexes: {trims:?}",
        text(&exp.raw, "notes").unwrap_or(""),
        items.len() - exp.items.len()
    );
    save_expected(dir, cfg, &items, &notes)?;
    let line = python_verify_then_reread(&py, dir, cfg).await?;
    println!("compat: live round trip ({variant}): {p} present, {a} absent; python: {line}");
    Ok(())
}

#[tokio::test]
async fn python_round_trip_last_file_full() -> Res<()> {
    live_round_trip(false).await
}

#[tokio::test]
async fn python_round_trip_last_file_room() -> Res<()> {
    live_round_trip(true).await
}

// ------------------------------------------------------------------ clause 7

/// The config `roundtrip.py` uses: 0.01 MiB files, 0.004 MiB buffer.
fn small_config() -> PyConfig {
    let raw = json!({
        "prefix": "data", "padding": 5, "genesis_hex": "0dce8f37",
        "max_file_size": 10485, "max_buffer_size": 4194,
        "max_file_size_mib": 0.01, "max_buffer_size_mib": 0.004,
    });
    parse_config(&raw).expect("valid config")
}

/// Our library writes a few files and stops cleanly; returns the items.
async fn write_ours_and_stop(dbdir: &Path, cfg: &PyConfig) -> Res<Vec<Item>> {
    let db = builder(dbdir, cfg).open().await?;
    let mut rng = StdRng::seed_from_u64(7);
    let items = append_ours(&db, cfg, &mut rng, 12).await?;
    db.stop().await?;
    Ok(items)
}

fn append_to_file(path: &Path, bytes: &[u8]) -> Res<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from(i % 251).expect("< 251") ^ salt)
        .collect()
}

/// After our clean stop, another writer appends, as the Python library does: it extends the
/// last file and starts the next one. Our next open must keep all of it (RELIABILITY 7).
fn foreign_append(dbdir: &Path, cfg: &PyConfig) -> Res<Vec<Item>> {
    let files = scan_files(dbdir, cfg)?;
    let (&head, st) = files.last_key_value().expect("files");
    let name = |i: u32| format!("{}{:0w$}.dat", cfg.prefix, i, w = cfg.padding);
    let a = pattern(300, 0x11);
    append_to_file(&dbdir.join(name(head)), &a)?;
    let b = pattern(700, 0x22);
    let c = pattern(50, 0x33);
    let mut file = cfg.genesis.to_vec();
    file.extend_from_slice(&[0u8; 20]);
    file.extend_from_slice(&b);
    file.extend_from_slice(&c);
    std::fs::write(dbdir.join(name(head + 1)), file)?;
    let at = |index, position: u64, data: Vec<u8>| -> Res<Item> {
        Ok(Item {
            loc: ItemLocation {
                index,
                position: u32::try_from(position)?,
                size: u32::try_from(data.len())?,
            },
            data,
            present: true,
        })
    };
    Ok(vec![
        at(head, st.end(), a)?,
        at(head + 1, 0, b)?,
        at(head + 1, 700, c)?,
    ])
}

/// Opens, checks that the open changed no data file and that every item reads back, adds
/// one item that must land after the foreign data, stops, reopens and re-reads.
/// Returns the `(present, absent)` counts of the last read.
async fn reopen_and_check(
    dbdir: &Path,
    cfg: &PyConfig,
    mut items: Vec<Item>,
) -> Res<(usize, usize)> {
    let before = scan_files(dbdir, cfg)?;
    let db = builder(dbdir, cfg).open().await?;
    assert_eq!(
        scan_files(dbdir, cfg)?,
        before,
        "open must not truncate foreign appends"
    );
    check_items(&db, &items, "after foreign appends").await?;
    items.push(first_add(&db, cfg, &before).await?);
    db.stop().await?;
    let db = builder(dbdir, cfg).open().await?;
    let counts = check_items(&db, &items, "after reopen").await?;
    db.stop().await?;
    Ok(counts)
}

#[tokio::test]
async fn foreign_appends_after_our_clean_stop_are_kept() -> Res<()> {
    let tmp = tempfile::tempdir()?;
    let dbdir = tmp.path().join("db");
    let cfg = small_config();
    let mut items = write_ours_and_stop(&dbdir, &cfg).await?;
    items.extend(foreign_append(&dbdir, &cfg)?);
    let (p, _) = reopen_and_check(&dbdir, &cfg, items.clone()).await?;
    assert_eq!(p, items.len() + 1);
    Ok(())
}

#[tokio::test]
async fn python_checkpoint_after_our_clean_stop_is_applied() -> Res<()> {
    // Python appended after our clean stop and died mid-flush: its checkpoint names the
    // length before its flush; we recover as Python would (truncate, delete checkpoint).
    let tmp = tempfile::tempdir()?;
    let dbdir = tmp.path().join("db");
    let cfg = small_config();
    let items = write_ours_and_stop(&dbdir, &cfg).await?;
    let files = scan_files(&dbdir, &cfg)?;
    let (&head, st) = files.last_key_value().expect("files");
    let path = dbdir.join(format!("data{head:05}.dat"));
    let bytes = std::fs::read(&path)?;
    let mut cp = u64::from(head).to_le_bytes()[..6].to_vec();
    cp.extend_from_slice(&st.len.to_le_bytes()[..6]);
    cp.extend_from_slice(&bytes[bytes.len() - 8..]);
    cp.extend_from_slice(&[0u8; 32]);
    std::fs::write(dbdir.join(".checkpoint-1700000000001"), cp)?;
    append_to_file(&path, &pattern(333, 0x44))?;

    let db = builder(&dbdir, &cfg).open().await?;
    assert_eq!(
        scan_files(&dbdir, &cfg)?,
        files,
        "cut back to the checkpoint"
    );
    assert!(checkpoints(&dbdir)?.is_empty());
    let (p, _) = check_items(&db, &items, "after checkpoint").await?;
    assert_eq!(p, items.len());
    db.stop().await?;
    Ok(())
}

#[tokio::test]
async fn python_appends_after_our_clean_stop_are_kept() -> Res<()> {
    let Some(py) = python("python appends after our clean stop") else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let dbdir = tmp.path().join("db");
    let cfg = small_config();
    let mut items = write_ours_and_stop(&dbdir, &cfg).await?;
    let head = *scan_files(&dbdir, &cfg)?.keys().last().expect("files");
    save_expected(tmp.path(), &cfg, &items, "written by Rust")?;
    let added = python_read_and_append(&py, tmp.path(), true)?;
    assert!(
        added.iter().any(|i| i.loc.index == head),
        "python extended our head file"
    );
    assert!(
        added.iter().any(|i| i.loc.index > head),
        "python rolled over to a new file"
    );
    println!(
        "compat: python appended {} items after our clean stop",
        added.len()
    );
    let python_bytes: u64 = added.iter().map(|i| u64::from(i.loc.size)).sum();
    items.extend(added);
    let (p, _) = reopen_and_check(&dbdir, &cfg, items.clone()).await?;
    assert_eq!(p, items.len() + 1);
    // Python's range has no item index: verify reads it, and counts it as unindexed, not
    // as corrupt; every item of ours is checked.
    let db = builder(&dbdir, &cfg).open().await?;
    let v = db.verify().await?;
    db.stop().await?;
    assert!(v.is_ok(), "{:?}", v.problems);
    assert_eq!(v.unindexed_bytes, python_bytes, "{v:?}");
    assert_eq!(
        v.items_checked,
        (items.len() + 1 - python_items(&items, python_bytes)) as u64,
        "{v:?}"
    );
    Ok(())
}

/// How many of `items` are Python's (the last ones, `bytes` of them in all).
fn python_items(items: &[Item], bytes: u64) -> usize {
    let mut sum = 0;
    items
        .iter()
        .rev()
        .take_while(|i| {
            let take = sum < bytes;
            sum += u64::from(i.loc.size);
            take
        })
        .count()
}
