//! `verify` and `scan`: open the directory read-only (no lock, no recovery, nothing
//! written: they run beside a writer in another process), read, stop. A directory that
//! needs recovery and that no writer holds is refused (exit 3, its problems as `check`
//! prints them).

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use aiodiskdb::{AioDiskDb, Damage, Inspection, ItemLocation, Verification};
use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::args::{Db, DbArgs};
use crate::exit;
use crate::flags;
use crate::inspect::{plural, problem_line, problems_json, ProblemJson};
use crate::ops::with_db;
use crate::out::{self, outln};

pub(crate) const VERIFY_HELP: &str = r#"Reads every stored byte once and checks each item against the CRC32C its item index
recorded; changes nothing. Prints one line per problem, `LOCATION: KIND: MESSAGE` (for a
whole file, `index INDEX: KIND: MESSAGE`), KIND being corrupt (the bytes differ from their
checksum: `read` refuses them), missing (committed bytes no longer stored) or inconsistent
(the files disagree with what was committed); then a summary line, `ok: ...` or
`damaged: ...`, and exits 3 when anything is wrong. Bytes no item index covers (written by
the Python library) are read and counted as unindexed: they cannot be checked.
A progress bar on stderr when it is a terminal (not with -q).
verify opens the directory read-only: it takes no lock, writes nothing and needs no write
permission, so it runs while a service writes to the directory (it checks what was
committed when it started; a file the writer trims or drops meanwhile is not judged by its
old record). With a recovery pending and no writer holding the directory (or a directory
the open refuses, as `check` reports it) it prints the problems as `check` does and exits
3: `aiodiskdb recover` finishes a pending recovery.
With --json, prints one object:
  {"dir": str, "ok": bool, "files": int, "items_checked": int, "bytes_checked": int,
   "unindexed_bytes": int, "remote_files": int,
   "problems": [{"index": int, "location": "INDEX:POSITION:SIZE" | null,
                 "kind": "corrupt" | "missing" | "inconsistent", "message": str}],
   "refused": null | {"reason": str, "pending_recovery": [str],
                      "problems": [{"path": str, "message": str}]}}
`location` is null for a problem of a whole file; `refused` says why the directory was not
opened (then nothing was verified, and the counts are 0).
A tiered directory needs --store: the files on object storage (`remote_files`) are not
downloaded (each was checked when it was tiered, and every read checks its item), but each
object is checked to be there, of the file's length (a HEAD): `missing` or `inconsistent`
otherwise."#;

pub(crate) const SCAN_HELP: &str = r#"Prints the location of every item, in order (by index, then position), one per line as
INDEX:POSITION:SIZE, as `read` takes it. The items are those of the item indexes; a range
no item index covers (written by the Python library) is one location spanning it. With
--index, only the items of that index (an index without a data file is an error). The
items of a file on object storage are listed from its item index, which stays in the
directory (a tiered directory needs --store).
scan opens the directory read-only, as `verify` does: it runs beside a writer (an index
the writer drops meanwhile is skipped) and changes nothing. With a recovery pending and no
writer holding the directory (or a directory the open refuses) it prints the problems as
`check` does, on stderr, and exits 3: `aiodiskdb recover` finishes a pending recovery.
With --json, prints one object per location, one per line:
  {"location": "INDEX:POSITION:SIZE", "index": int, "position": int, "size": int}"#;

#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// Print one JSON object (shape below) instead of lines.
    #[arg(long)]
    json: bool,
    /// No progress bar on stderr.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    pub(crate) db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ScanArgs {
    /// Only the items of this index.
    #[arg(long, value_name = "N")]
    index: Option<u32>,
    /// Print one JSON object per location and line (shape below) instead of
    /// INDEX:POSITION:SIZE.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub(crate) db: DbArgs,
}

#[derive(Serialize)]
struct DamageJson {
    index: u32,
    location: Option<String>,
    kind: &'static str,
    message: String,
}

#[derive(Serialize)]
struct RefusedJson {
    reason: String,
    pending_recovery: Vec<String>,
    problems: Vec<ProblemJson>,
}

#[derive(Serialize)]
struct VerifyJson {
    dir: String,
    ok: bool,
    files: u64,
    items_checked: u64,
    bytes_checked: u64,
    unindexed_bytes: u64,
    remote_files: u64,
    problems: Vec<DamageJson>,
    refused: Option<RefusedJson>,
}

#[derive(Serialize)]
struct LocationJson {
    location: String,
    index: u32,
    position: u32,
    size: u32,
}

/// Why a command that changes nothing did not open the directory (exit 3), with what
/// `inspect` found there.
struct Refusal {
    /// One line, after `aiodiskdb: `.
    reason: String,
    ins: Inspection,
}

impl Refusal {
    /// What is wrong, as `check` prints it: one line per problem, then the steps of the
    /// pending recovery as notes.
    fn lines(&self) -> impl Iterator<Item = String> + '_ {
        let problems = self.ins.problems.iter().map(problem_line);
        let pending =
            self.ins.pending_recovery.iter().map(|line| {
                format!("note: pending recovery (`aiodiskdb recover` does it): {line}")
            });
        problems.chain(pending)
    }
}

/// Opens the directory for `command`, which changes nothing, through a read-only handle:
/// no lock (a service may hold the directory and keep writing: the handle follows its
/// commits), nothing written or created, no write permission needed. A directory whose
/// last writer crashed, that no writer holds, is refused: its pending recovery is a
/// problem as `check` reports it. Returns the handle and what `inspect` found just before,
/// or why the directory was not opened.
///
/// # Errors
/// The directory cannot be inspected, or the open failed for another reason than the
/// problems `inspect` reports.
async fn open_unchanged(
    db: &Db,
    command: &str,
) -> anyhow::Result<Result<(AioDiskDb, Inspection), Refusal>> {
    // The objects of remote files are checked by `verify` itself, not here.
    let builder = db.builder()?;
    let ins = db.local_builder().inspect().await?;
    let dir = db.dir.display();
    // Held by another process: a live session, nothing is pending.
    if !ins.locked && !ins.pending_recovery.is_empty() {
        return Ok(Err(Refusal {
            reason: format!(
                "recovery is pending in {dir}: run `aiodiskdb recover`, then {command} \
                 again ({command} changes nothing, so it does not recover)"
            ),
            ins,
        }));
    }
    match builder.read_only().open().await {
        Ok(handle) => Ok(Ok((handle, ins))),
        // What the open refuses is what `inspect` reports as problems (the same plan).
        Err(
            e @ (aiodiskdb::Error::FilesInconsistency { .. }
            | aiodiskdb::Error::InvalidDataFile { .. }
            | aiodiskdb::Error::InvalidDbState { .. }),
        ) if !ins.is_sound() => Ok(Err(Refusal {
            reason: format!(
                "{command} cannot open {dir}: {}",
                flags::error_line(&e.into())
            ),
            ins,
        })),
        Err(e) => Err(e.into()),
    }
}

/// `s` for a count other than one.
fn s(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A progress bar of `len` bytes on stderr, when it is a terminal and not `quiet`.
fn progress_bar(quiet: bool, len: u64) -> Option<ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let style = ProgressStyle::with_template(
        "verify [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
    )
    .expect("valid progress template")
    .progress_chars("=> ");
    let bar = ProgressBar::new(len).with_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

/// A problem `verify` found, on one line: where, what kind, what.
fn damage_line(d: &Damage) -> String {
    let at = d
        .location
        .map_or_else(|| format!("index {}", d.index), |l| l.to_string());
    format!("{at}: {}: {}", d.kind.as_str(), d.message)
}

pub(crate) async fn verify(db: Db, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let (handle, ins) = match open_unchanged(&db, "verify").await? {
        Ok(opened) => opened,
        Err(refusal) => return verify_refused(&db, args.json, &refusal),
    };
    // The stored bytes as found; the first report of `verify_with` says how many it reads.
    let bar = progress_bar(args.quiet, ins.total_item_bytes());
    let shown = bar.clone();
    let verified = with_db(
        handle.clone(),
        handle.verify_with(move |done, total| {
            if let Some(bar) = &shown {
                bar.set_length(total);
                bar.set_position(done);
            }
        }),
    )
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let v = verified?;
    let code = if v.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::PROBLEMS)
    };
    if args.json {
        out::json_line(&verify_json(&db, &v))?;
        return Ok(code);
    }
    for d in &v.problems {
        outln!("{}", damage_line(d))?;
    }
    let mut counts = format!(
        "{} data file{}, {} item{} checked, {} byte{} checked, {} unindexed byte{}",
        v.files,
        s(v.files),
        v.items_checked,
        s(v.items_checked),
        v.bytes_checked,
        s(v.bytes_checked),
        v.unindexed_bytes,
        s(v.unindexed_bytes),
    );
    if v.remote_files > 0 {
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = write!(
            counts,
            ", {} file{} on object storage (objects checked, not downloaded)",
            v.remote_files,
            s(v.remote_files)
        );
    }
    let n = v.problems.len();
    if v.is_ok() {
        outln!("ok: {counts}, no problems")?;
    } else {
        outln!("damaged: {counts}, {n} problem{}", plural(n))?;
        eprintln!(
            "aiodiskdb: verify found {n} problem{} in {}",
            plural(n),
            db.dir.display()
        );
    }
    Ok(code)
}

fn verify_json(db: &Db, v: &Verification) -> VerifyJson {
    VerifyJson {
        dir: db.dir.display().to_string(),
        ok: v.is_ok(),
        files: v.files,
        items_checked: v.items_checked,
        bytes_checked: v.bytes_checked,
        unindexed_bytes: v.unindexed_bytes,
        remote_files: v.remote_files,
        problems: v
            .problems
            .iter()
            .map(|d| DamageJson {
                index: d.index,
                location: d.location.map(|l| l.to_string()),
                kind: d.kind.as_str(),
                message: d.message.clone(),
            })
            .collect(),
        refused: None,
    }
}

/// Says why `verify` did not open the directory: the problems on stdout as `check` prints
/// them and the reason on stderr, or one JSON object.
fn verify_refused(db: &Db, json: bool, refusal: &Refusal) -> anyhow::Result<ExitCode> {
    if json {
        let mut j = verify_json(db, &Verification::default());
        j.ok = false;
        j.refused = Some(RefusedJson {
            reason: refusal.reason.clone(),
            pending_recovery: refusal.ins.pending_recovery.clone(),
            problems: problems_json(&refusal.ins.problems),
        });
        out::json_line(&j)?;
    } else {
        for line in refusal.lines() {
            outln!("{line}")?;
        }
        eprintln!("aiodiskdb: {}", refusal.reason);
    }
    Ok(ExitCode::from(exit::PROBLEMS))
}

pub(crate) async fn scan(db: Db, args: ScanArgs) -> anyhow::Result<ExitCode> {
    let (handle, ins) = match open_unchanged(&db, "scan").await? {
        Ok(opened) => opened,
        Err(refusal) => {
            // stdout is for locations only.
            for line in refusal.lines() {
                eprintln!("{line}");
            }
            eprintln!("aiodiskdb: {}", refusal.reason);
            return Ok(ExitCode::from(exit::PROBLEMS));
        }
    };
    let listed = async {
        let indexes: Vec<u32> = match args.index {
            Some(n) if !indexes_of(&ins).contains(&n) => bail!(
                "index {n} does not exist: there is no data file {} in {}",
                db.data_file_name(n),
                db.dir.display()
            ),
            Some(n) => vec![n],
            None => indexes_of(&ins),
        };
        for index in indexes {
            let locations = match handle.locations(index).await {
                Ok(l) => l,
                // Dropped by the writer since `inspect` listed it.
                Err(
                    aiodiskdb::Error::IndexDoesNotExist { .. }
                    | aiodiskdb::Error::FilesInconsistency { .. },
                ) if ins.locked && args.index.is_none() => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("list the items of index {index}"))
                }
            };
            print_locations(&locations, args.json)?;
        }
        Ok(())
    }
    .await;
    let stopped = handle.stop().await;
    listed?;
    stopped.context("stop the database")?;
    Ok(ExitCode::SUCCESS)
}

/// Every index of the directory, in the directory or on object storage, in order.
fn indexes_of(ins: &Inspection) -> Vec<u32> {
    let mut v: Vec<u32> = ins
        .files
        .iter()
        .map(|f| f.index)
        .chain(ins.remote_files.iter().map(|f| f.index))
        .collect();
    v.sort_unstable();
    v
}

/// Prints locations, one per line, as `INDEX:POSITION:SIZE` or JSON.
fn print_locations(locations: &[ItemLocation], json: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut w = out::buffered();
    for l in locations {
        if json {
            serde_json::to_writer(
                &mut w,
                &LocationJson {
                    location: l.to_string(),
                    index: l.index,
                    position: l.position,
                    size: l.size,
                },
            )?;
            w.write_all(b"\n")?;
        } else {
            writeln!(w, "{l}")?;
        }
    }
    w.flush()?;
    Ok(())
}
