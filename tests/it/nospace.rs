//! Real out-of-space errors, in a child process, then recovery in the parent.
//!
//! - `RLIMIT_FSIZE`: the child writes until a write fails with `EFBIG` ("File too large"),
//!   the error the kernel gives when a file would pass the limit. Our crate forbids
//!   `unsafe`, so the shell that starts the child sets the limit:
//!   `bash -c 'trap "" XFSZ; ulimit -f <KiB>; exec "$0" "$@"'` (the ignored `SIGXFSZ`
//!   makes the write fail instead of killing the process; an ignored signal stays ignored
//!   across `exec`).
//! - A full disk: a 256 KiB tmpfs mounted in a private user and mount namespace
//!   (`unshare -rm`), so the write fails with `ENOSPC`; 64 KiB files, so that the disk
//!   fills during rollovers too. After the child, the shell copies the directory out for
//!   the parent. Skipped, loudly, where unprivileged namespaces are not available.
//!
//! Either way the child is this test binary re-executed for [`child`] alone. It reports on
//! its stdout, a pipe that neither limit applies to: `@nospace ack <id> <loc>` for every
//! acknowledged item, `@nospace <fact>` for what it saw after the failure. It checks the
//! failure contract itself (the failing `flush` or `commit` names the cause, a `Failed`
//! event carries the `Error::Io`, writes are refused, acknowledged data still reads,
//! `stop` returns) and exits on its own. The parent, with space back, reopens the
//! directory, checks every acknowledged item and that the files hold nothing else, and
//! writes past the old limit.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use aiodiskdb::{AioDiskDb, Builder, Durability, Error, Event, ItemLocation};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::{
    content, data_files, file_len, next_event, reexec_args, TestResult, HEADER_LEN,
};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

const ENV_DIR: &str = "AIODISKDB_NOSPACE_CHILD";
const ENV_MODE: &str = "AIODISKDB_NOSPACE_MODE";
const ENV_LIMIT: &str = "AIODISKDB_NOSPACE_LIMIT";
const ENV_OUT: &str = "AIODISKDB_NOSPACE_OUT";
const CHILD_TEST: &str = "nospace::child";
const TAG: &str = "@nospace ";

/// The child's file-size limit or disk size, in KiB. Well above the state file (1 KiB).
const LIMIT_KIB: u64 = 256;

/// Items past this many mean the limit never bit: the child gives up.
const MAX_ITEMS: u64 = 10_000;

/// What runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    /// `RLIMIT_FSIZE`: `EFBIG`.
    FileSize,
    /// A full tmpfs: `ENOSPC`.
    Disk,
}

impl Limit {
    fn name(self) -> &'static str {
        match self {
            Limit::FileSize => "efbig",
            Limit::Disk => "enospc",
        }
    }

    fn parse(name: &str) -> Option<Limit> {
        [Limit::FileSize, Limit::Disk]
            .into_iter()
            .find(|l| l.name() == name)
    }

    /// The error the kernel reports (the same numbers on Linux and the BSDs).
    fn os_error(self) -> std::io::Error {
        std::io::Error::from_raw_os_error(match self {
            Limit::FileSize => 27,
            Limit::Disk => 28,
        })
    }

    fn kind(self) -> ErrorKind {
        match self {
            Limit::FileSize => ErrorKind::FileTooLarge,
            Limit::Disk => ErrorKind::StorageFull,
        }
    }

    /// Under the file-size limit one file above it is enough; on the small disk, 64 KiB
    /// files make it fill during rollovers too.
    fn max_file_size(self) -> u64 {
        match self {
            Limit::FileSize => 1 << 20,
            Limit::Disk => 64 << 10,
        }
    }
}

fn builder(dir: &Path, limit: Limit) -> Builder {
    AioDiskDb::builder(dir)
        .max_file_size(limit.max_file_size())
        .max_buffer_size(64 << 10)
        .max_buffer_items(1000)
        .flush_interval(Duration::from_secs(3600))
        .durability(Durability::Sync)
}

/// How the child writes, and so which call must report the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Batches of adds, each acknowledged by `flush`.
    Flush,
    /// Transactions, each acknowledged by `commit`.
    Commit,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Flush => "flush",
            Mode::Commit => "commit",
        }
    }

    fn parse(name: &str) -> Option<Mode> {
        [Mode::Flush, Mode::Commit]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

/// Whether `e` is an I/O error caused by `limit`.
fn is_out_of_space(e: &Error, limit: Limit) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == limit.kind())
}

/// `e` with its chain of sources, on one line.
fn chain(e: &Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn report(fact: &str) {
    println!("{TAG}{fact}");
}

/// Runs in the child process only, under the limit.
#[test]
fn child() -> TestResult {
    let Some(dir) = std::env::var_os(ENV_DIR) else {
        return Ok(());
    };
    let mode = Mode::parse(&std::env::var(ENV_MODE)?).ok_or("bad mode")?;
    let limit = Limit::parse(&std::env::var(ENV_LIMIT)?).ok_or("bad limit")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(fill_until_failure(Path::new(&dir), mode, limit))
}

/// The acknowledged items, the failing call and its error.
type Filled = (Vec<(u64, ItemLocation)>, &'static str, Error);

/// Writes until a write fails.
async fn fill(db: &AioDiskDb, mode: Mode) -> BoxResult<Filled> {
    let mut rng = StdRng::seed_from_u64(0x6e6f_7370);
    let mut acked = Vec::new();
    let mut id = 0;
    while id < MAX_ITEMS {
        let mut batch = Vec::new();
        let done = match mode {
            Mode::Flush => {
                for _ in 0..8 {
                    id += 1;
                    let loc = match db.add(content(id, rng.gen_range(1..=6000))).await {
                        Ok(loc) => loc,
                        Err(e) => return Ok((acked, "add", e)),
                    };
                    batch.push((id, loc));
                }
                db.flush().await.map_err(|e| ("flush", e))
            }
            Mode::Commit => {
                let mut tx = db.transaction();
                let mut ids = Vec::new();
                for _ in 0..3 {
                    id += 1;
                    tx.add(content(id, rng.gen_range(1000..=20_000)))?;
                    ids.push(id);
                }
                tx.commit()
                    .await
                    .map(|locs| batch.extend(ids.into_iter().zip(locs)))
                    .map_err(|e| ("commit", e))
            }
        };
        if let Err((op, e)) = done {
            return Ok((acked, op, e));
        }
        for (id, loc) in &batch {
            report(&format!("ack {id} {loc}"));
        }
        acked.extend(batch);
    }
    Err(format!("no error after {MAX_ITEMS} items: is the limit set?").into())
}

/// The child: fill, then check the failure contract on the still-open handle.
async fn fill_until_failure(dir: &Path, mode: Mode, limit: Limit) -> TestResult {
    let db = builder(dir, limit).open().await?;
    let mut events = db.subscribe();
    let (acked, op, error) = fill(&db, mode).await?;
    report(&format!("error {op}: {} [{error:?}]", chain(&error)));
    if op != mode.name() {
        return Err(format!("the failure surfaced in {op}, not {}", mode.name()).into());
    }
    // The call itself: a commit returns the I/O error; a flush returns the handle's
    // poisoned state, which must name the cause.
    let clear = match mode {
        Mode::Commit => is_out_of_space(&error, limit),
        Mode::Flush => {
            matches!(error, Error::InvalidDbState { .. })
                && chain(&error).contains(&limit.os_error().to_string())
        }
    };
    if !clear {
        return Err(format!("{op} did not report {} clearly: {error:?}", limit.name()).into());
    }
    let failed = next_event(&mut events, |e| match e {
        Event::Failed { error, .. } => Some(error.clone()),
        _ => None,
    })
    .await?;
    report(&format!("failed-event {}", chain(&failed)));
    if !is_out_of_space(&failed, limit) {
        return Err(format!("the Failed event is not {}: {failed:?}", limit.name()).into());
    }

    // Poisoned: every write is refused, naming the cause.
    if db.is_running() {
        return Err("the handle still runs after a failed write".into());
    }
    let add = db.add(&b"after"[..]).await;
    let flush = db.flush().await;
    let mut tx = db.transaction();
    tx.add(&b"after"[..])?;
    let commit = tx.commit().await;
    for (call, r) in [
        ("add", add.map(drop)),
        ("flush", flush),
        ("commit", commit.map(drop)),
    ] {
        match r {
            Err(Error::InvalidDbState { reason, .. }) => {
                report(&format!("refused {call}: {reason}"));
            }
            other => return Err(format!("{call} after the failure: {other:?}").into()),
        }
    }

    // Acknowledged data still reads, byte for byte.
    for &(id, loc) in &acked {
        if db.read(loc).await?.as_deref() != Some(&content(id, loc.size as usize)[..]) {
            return Err(format!("acknowledged item {id} at {loc} does not read back").into());
        }
    }
    report(&format!("reads {} acknowledged items ok", acked.len()));

    // `stop` reports the failure, and returns: the directory is released.
    match db.stop().await {
        Err(e) => report(&format!("stop: {}", chain(&e))),
        Ok(()) => return Err("stop succeeded on a poisoned handle".into()),
    }
    report("done");
    Ok(())
}

/// What the child reported.
#[derive(Debug, Default)]
struct Report {
    acked: Vec<(u64, ItemLocation)>,
    facts: Vec<String>,
}

/// The command that runs the child on `dir` under `limit`; for [`Limit::Disk`], `dir` is
/// the mount point and the directory is copied to `out` afterwards.
fn child_command(dir: &Path, out: &Path, mode: Mode, limit: Limit) -> BoxResult<Command> {
    let mut cmd = match limit {
        Limit::FileSize => {
            let mut c = Command::new("bash");
            c.arg("-c").arg(format!(
                r#"trap "" XFSZ; ulimit -f {LIMIT_KIB}; exec "$0" "$@""#
            ));
            c
        }
        Limit::Disk => {
            let mut c = Command::new("unshare");
            c.args(["-rm", "bash", "-c"]).arg(format!(
                r#"set -e
mount -t tmpfs -o size={LIMIT_KIB}k aiodiskdb-nospace "${ENV_DIR}"
status=0
"$0" "$@" || status=$?
cp -a "${ENV_DIR}/." "${ENV_OUT}/"
exit $status"#
            ));
            c
        }
    };
    cmd.arg(std::env::current_exe()?)
        .args(reexec_args(CHILD_TEST))
        .env(ENV_DIR, dir)
        .env(ENV_OUT, out)
        .env(ENV_MODE, mode.name())
        .env(ENV_LIMIT, limit.name())
        .stdin(Stdio::null());
    Ok(cmd)
}

/// Runs the child and parses its report; fails unless it exited successfully on its own.
fn run_child(mut cmd: Command) -> BoxResult<Report> {
    let out = cmd.output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "the child failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let mut report = Report::default();
    // libtest's "test nospace::child ... " may start the first line: find the tag anywhere.
    for line in stdout.lines().filter_map(|l| Some(l.split_once(TAG)?.1)) {
        match line.strip_prefix("ack ").and_then(|a| a.split_once(' ')) {
            Some((id, loc)) => report.acked.push((id.parse()?, loc.parse()?)),
            None => report.facts.push(line.to_owned()),
        }
    }
    if report.facts.last().map(String::as_str) != Some("done") {
        return Err(format!("the child did not finish its checks:\n{stdout}").into());
    }
    Ok(report)
}

/// Whether this system lets us mount a tmpfs in a private user and mount namespace.
fn namespaces_available(probe: &Path) -> bool {
    Command::new("unshare")
        .args([
            "-rm",
            "sh",
            "-c",
            r#"mount -t tmpfs -o size=64k probe "$0""#,
        ])
        .arg(probe)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The parent: the child fails under the limit; with space back, the directory reopens
/// with every acknowledged item, holds nothing else, and takes writes past the old limit.
async fn fails_cleanly_and_recovers(mode: Mode, limit: Limit) -> TestResult {
    let what = format!("{} on {}", limit.name(), mode.name());
    let tmp = tempfile::tempdir()?;
    let (dir, out) = (tmp.path().join("db"), tmp.path().join("out"));
    std::fs::create_dir(&dir)?;
    std::fs::create_dir(&out)?;
    if limit == Limit::Disk && !namespaces_available(&dir) {
        eprintln!("nospace ({what}): SKIPPED: cannot mount a tmpfs in a user namespace here");
        return Ok(());
    }
    let report = run_child(child_command(&dir, &out, mode, limit)?)?;
    for fact in &report.facts {
        eprintln!("nospace ({what}): child: {fact}");
    }
    let dir = if limit == Limit::Disk { out } else { dir };
    let acked = report.acked;
    assert!(
        acked.len() >= 10,
        "only {} items before the limit",
        acked.len()
    );

    let db = builder(&dir, limit).open().await?;
    for &(id, loc) in &acked {
        assert_eq!(
            db.read(loc).await?.as_deref(),
            Some(&content(id, loc.size as usize)[..]),
            "acknowledged item {id} at {loc}"
        );
    }
    // Recovery removed what the failed batch left: each file ends at its last
    // acknowledged item, and no file holds none.
    let mut ends: BTreeMap<String, u64> = BTreeMap::new();
    for (_, loc) in &acked {
        let end = ends.entry(format!("data{:05}.dat", loc.index)).or_default();
        *end = (*end).max(loc.end());
    }
    assert_eq!(data_files(&dir), ends.keys().cloned().collect::<Vec<_>>());
    for (name, end) in &ends {
        assert_eq!(file_len(&dir, name), HEADER_LEN + end, "{name}");
    }

    // Space is back: write well past the old limit, then reopen and read everything.
    let mut fresh = Vec::new();
    for id in 1_000_000..1_000_040 {
        fresh.push((id, db.add(content(id, 8 << 10)).await?));
    }
    db.flush().await?;
    db.stop().await?;
    let total: u64 = data_files(&dir).iter().map(|n| file_len(&dir, n)).sum();
    assert!(total > LIMIT_KIB * 1024, "{total} bytes");
    let db = builder(&dir, limit).open().await?;
    for &(id, loc) in acked.iter().chain(&fresh) {
        assert_eq!(
            db.read(loc).await?.as_deref(),
            Some(&content(id, loc.size as usize)[..]),
            "item {id} at {loc} after writing again"
        );
    }
    db.stop().await?;
    eprintln!(
        "nospace ({what}): reported and poisoned, {} acknowledged items verified after \
         reopen in {} files, {} written past the old limit",
        acked.len(),
        ends.len(),
        fresh.len()
    );
    Ok(())
}

#[tokio::test]
async fn efbig_fails_the_flush_poisons_the_handle_and_recovers() -> TestResult {
    fails_cleanly_and_recovers(Mode::Flush, Limit::FileSize).await
}

#[tokio::test]
async fn efbig_fails_the_commit_poisons_the_handle_and_recovers() -> TestResult {
    fails_cleanly_and_recovers(Mode::Commit, Limit::FileSize).await
}

#[tokio::test]
async fn enospc_fails_the_flush_poisons_the_handle_and_recovers() -> TestResult {
    fails_cleanly_and_recovers(Mode::Flush, Limit::Disk).await
}

#[tokio::test]
async fn enospc_fails_the_commit_poisons_the_handle_and_recovers() -> TestResult {
    fails_cleanly_and_recovers(Mode::Commit, Limit::Disk).await
}
