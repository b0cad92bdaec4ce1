//! `read-other-process` (aiodiskdb only; SPEC 9, issue 13): random reads of 1 KiB items
//! from a read-only handle in another process while the writer appends, against the same
//! reads in the writer's own process.
//!
//! The bench process is the writer: it writes the items in one durable session, opens the
//! directory again and keeps appending (an add and a flush, then a pause) for the whole
//! run. It starts a reader: the same binary again (`aiodiskdb bench --read-only-child DIR`),
//! which opens the directory read-only, lists the first items with `locations` (the same
//! locations as the writer's, in the same order: every item is written in order) and then
//! runs the reads it is asked for, on its stdin, one run at a time. Each run is the
//! `read` workload's: as many random reads as items, from 1 and from 32 concurrent tasks,
//! each read checked; the writer's run and the reader's take turns, on the same random
//! items, in [`ROUNDS`] rounds (in each round the other one goes first).

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiodiskdb::{AioDiskDb, ItemLocation};
use anyhow::{bail, ensure, Context as _};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};

use super::read::{read_run, READERS};
use super::{write_read_items, Bench};
use crate::data::{rate, read_item};
use crate::limits::ratio;
use crate::report::{OtherProcessReport, OtherProcessRun, Report};
use crate::ui::{Ui, Unit};

/// Rounds: the writer's run and the reader's take turns, each first in every other round.
const ROUNDS: usize = 3;

/// The writer's pause after each durable append: a modest, steady rate of commits (about
/// 100 per second), each of which the reader follows.
const APPEND_PAUSE: Duration = Duration::from_millis(10);

/// Runs `read-other-process` in `dir` with `items` items (and as many reads per run).
///
/// # Errors
/// `items` is 0, the store failed, a read returned wrong data, or the reader process
/// failed.
pub(crate) async fn read_other_process(
    b: &Bench<'_>,
    dir: &Path,
    items: u64,
    seed: u64,
) -> anyhow::Result<Report> {
    const NAME: &str = "read-other-process";
    ensure!(items > 0, "--items must be at least 1");
    let bar = b.ui.phase(
        NAME,
        &format!("writing {items} items of 1 KiB"),
        Some(items),
        Unit::Items,
    );
    let locs = Arc::new(write_read_items::<AioDiskDb>(dir, items, &bar).await?);
    bar.finish();

    let writer = AioDiskDb::builder(dir).open().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let appended = Arc::new(AtomicU64::new(0));
    let appends_task = tokio::spawn(append_loop(
        writer.clone(),
        items,
        Arc::clone(&stop),
        Arc::clone(&appended),
    ));
    let started = Instant::now();
    let measured = async {
        let mut reader = Reader::start(dir, items).await?;
        let mut secs = [[0.0; READERS.len()]; 2];
        for round in 0..ROUNDS {
            let round_seed = seed.wrapping_add((round as u64) << 32);
            for (r, readers) in READERS.into_iter().enumerate() {
                for turn in 0..2 {
                    // 0: the writer's process, 1: the reader's; the writer first in even rounds.
                    let who = (turn + round) % 2;
                    let phase = format!(
                        "{items} random reads, {readers} concurrent reader{} in the {} \
                         process, round {}/{ROUNDS}",
                        if readers == 1 { "" } else { "s" },
                        if who == 0 { "writer's" } else { "read-only" },
                        round + 1
                    );
                    let bar = b.ui.phase(NAME, &phase, Some(items), Unit::Items);
                    secs[who][r] += if who == 0 {
                        read_run(&writer, &locs, items, readers, round_seed, &bar).await?
                    } else {
                        reader.run(readers, round_seed).await?
                    };
                    bar.finish();
                }
            }
        }
        reader.finish().await?;
        anyhow::Ok(secs)
    }
    .await;
    stop.store(true, Ordering::SeqCst);
    let appending = appends_task.await.context("append task")?;
    let run_secs = started.elapsed().as_secs_f64();
    let stopped = writer.stop().await;
    let secs = measured?;
    appending?;
    stopped?;

    let reads = items * ROUNDS as u64;
    let appends = appended.load(Ordering::SeqCst);
    let mut runs = Vec::with_capacity(2 * READERS.len());
    for (r, readers) in READERS.into_iter().enumerate() {
        let writer_rate = rate(reads, secs[0][r]);
        for (who, process) in ["writer", "reader"].into_iter().enumerate() {
            let reads_per_s = rate(reads, secs[who][r]);
            runs.push(OtherProcessRun {
                readers,
                process,
                reads,
                secs: secs[who][r],
                reads_per_s,
                vs_writer: (who == 1).then(|| ratio(reads_per_s, writer_rate)),
            });
        }
    }
    Ok(Report::OtherProcess(OtherProcessReport {
        workload: NAME,
        items,
        item_bytes: 1024,
        appends,
        appends_per_s: rate(appends, run_secs),
        runs,
    }))
}

/// The writer's appends while the reads run: one item of [`read_item`] (numbered on from
/// the items read) made durable, then a pause, until `stop`.
async fn append_loop(
    db: AioDiskDb,
    first: u64,
    stop: Arc<AtomicBool>,
    appended: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut next = first;
    while !stop.load(Ordering::SeqCst) {
        db.add(read_item(next)).await?;
        db.flush().await?;
        next += 1;
        appended.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(APPEND_PAUSE).await;
    }
    Ok(())
}

/// The reader process, as the writer drives it: a line on its stdin asks for a run, a
/// line on its stdout answers it.
struct Reader {
    child: tokio::process::Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Reader {
    /// Starts the reader on `dir` and waits until it has opened it and listed `items`
    /// locations.
    async fn start(dir: &Path, items: u64) -> anyhow::Result<Reader> {
        let exe = std::env::current_exe().context("find the aiodiskdb binary")?;
        let mut child = tokio::process::Command::new(exe)
            .arg("bench")
            .arg("--read-only-child")
            .arg(dir)
            .arg("--items")
            .arg(items.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("start the reader process")?;
        let stdin = child.stdin.take().context("the reader's stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("the reader's stdout")?).lines();
        let mut reader = Reader {
            child,
            stdin,
            stdout,
        };
        let line = reader.answer().await?;
        ensure!(line == "ready", "the reader process said {line:?}");
        Ok(reader)
    }

    async fn answer(&mut self) -> anyhow::Result<String> {
        if let Some(line) = self.stdout.next_line().await? {
            return Ok(line);
        }
        let status = self.child.wait().await?;
        bail!("the reader process ended ({status})")
    }

    /// One run in the reader: seconds.
    async fn run(&mut self, readers: usize, seed: u64) -> anyhow::Result<f64> {
        self.stdin
            .write_all(format!("{readers} {seed}\n").as_bytes())
            .await?;
        self.stdin.flush().await?;
        let line = self.answer().await?;
        line.parse()
            .with_context(|| format!("the reader process said {line:?}"))
    }

    /// Closes its stdin: it stops its handle and exits.
    async fn finish(mut self) -> anyhow::Result<()> {
        drop(self.stdin);
        let status = self.child.wait().await?;
        ensure!(status.success(), "the reader process failed ({status})");
        Ok(())
    }
}

/// The reader process (`aiodiskdb bench --read-only-child DIR --items N`): opens `dir`
/// read-only, lists its first `items` locations and says `ready`; then for each line
/// `READERS SEED` on stdin, runs the random reads and prints their seconds; stops at the
/// end of stdin.
///
/// # Errors
/// The open failed, fewer than `items` items are stored, a read failed or returned wrong
/// data, or a request was malformed.
pub(crate) async fn read_only_child(dir: &Path, items: u64) -> anyhow::Result<()> {
    let db = AioDiskDb::builder(dir).read_only().open().await?;
    let served = async {
        let locs = Arc::new(first_locations(&db, items).await?);
        let mut out = tokio::io::stdout();
        out.write_all(b"ready\n").await?;
        out.flush().await?;
        let ui = Ui::terminal("read-only-child", true);
        let mut requests = BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = requests.next_line().await? {
            let (readers, seed) = line
                .split_once(' ')
                .and_then(|(r, s)| Some((r.parse().ok()?, s.parse().ok()?)))
                .with_context(|| format!("bad request {line:?}"))?;
            let bar = ui.phase("read-only-child", "reads", None, Unit::Items);
            let secs = read_run(&db, &locs, items, readers, seed, &bar).await?;
            out.write_all(format!("{secs}\n").as_bytes()).await?;
            out.flush().await?;
        }
        anyhow::Ok(())
    }
    .await;
    let stopped = db.stop().await;
    served?;
    stopped?;
    Ok(())
}

/// The first `count` locations of the directory, in order (index, then position).
async fn first_locations(db: &AioDiskDb, count: u64) -> anyhow::Result<Vec<ItemLocation>> {
    let count = usize::try_from(count)?;
    let mut locs = Vec::with_capacity(count);
    let mut index = 0;
    while locs.len() < count {
        let more = db
            .locations(index)
            .await
            .with_context(|| format!("list the items of index {index}"))?;
        locs.extend(more.into_iter().take(count - locs.len()));
        index += 1;
    }
    Ok(locs)
}
