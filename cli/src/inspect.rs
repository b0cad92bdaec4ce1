//! `aiodiskdb info` and `aiodiskdb check`: read-only, through `Builder::inspect` (no
//! directory is created, no lock is kept, no recovery runs).

use std::process::ExitCode;

use aiodiskdb::{Inspection, Problem};
use serde::Serialize;

use crate::args::{hex, Db, DbArgs};
use crate::exit;
use crate::flags;
use crate::out::{self, outln};

pub(crate) const INFO_HELP: &str = r#"With --json, prints one object:
  {"dir": str, "prefix": str, "padding": int, "genesis": "8 hex digits",
   "files": [{"index": int, "name": str, "size": int, "trim_offset": int, "end": int,
              "item_bytes": int}],
   "total_files": int, "total_size": int, "total_item_bytes": int,
   "remote_files": [{"index": int, "key": str, "size": int, "trim_offset": int, "end": int,
                     "item_bytes": int}],
   "remote": {"store": str, "prefix": str, "url": str} | null,
   "state": {"clean": bool, "head": int, "head_end": int, "seq": int} | null,
   "locked": bool, "pending_recovery": [str], "problems": [{"path": str, "message": str}],
   "other_dat_files": [str], "sound": bool}
`files` are the data files in the directory (`total_*` are theirs); `remote_files` those
on object storage (tiered: `aiodiskdb tier`), each with its object's key, and `remote`
where they are: the store as the manifest names it, the key prefix, and the --store URL
(BUCKET when the store is not an S3 bucket). In the table, a tiered directory has a
`where` column, `local` or the object's key, and its total row counts both. info reads the directory only: it needs no
--store; with --store, each remote file's object is also checked (a HEAD: there, and of
the file's length), a problem otherwise.
Sizes are bytes (also with -H); positions are logical (`end` = trim_offset + item_bytes).
With -H, the table shows sizes (size, item_bytes, totals) in B, KiB, MiB, GiB; positions
(trim_offset, end, the head's end) stay exact, as locations and trims take them. `state` is null
for a directory without our commit record (one written only by the Python library).
`other_dat_files` lists `.dat` files of another naming (a wrong --prefix or --padding?).
info exits 0 even when it lists problems; use `check` for a verdict."#;

pub(crate) const CHECK_HELP: &str = r#"Prints one line per problem, `PATH: MESSAGE`, and exits 3; prints `ok: ...` and exits 0
when the directory is sound. A session of ours that did not stop cleanly is a problem
("recovery pending"): `aiodiskdb recover` finishes it, and another writer (the Python
library) must not be handed the directory before. The steps of a pending recovery, a
Python checkpoint (the Python library applies it itself), a lock held by another process
and `.dat` files of another naming are `note:` lines.
A tiered directory: with --store, each remote file's object is checked too (a HEAD: there,
and of the file's length; a problem otherwise); without it, its remote files are a note
(not checked).
With --json, prints one object:
  {"dir": str, "sound": bool, "files": int, "total_item_bytes": int, "remote_files": int,
   "remote_checked": bool, "locked": bool, "pending_recovery": [str],
   "problems": [{"path": str, "message": str}], "other_dat_files": [str]}
`files` and `total_item_bytes` are those of the directory; `remote_checked` says whether
the remote files' objects were checked (--store)."#;

#[derive(Debug, clap::Args)]
pub(crate) struct InfoArgs {
    /// Print one JSON object (shape below) instead of a table.
    #[arg(long)]
    json: bool,
    /// Sizes in the table as B, KiB, MiB, GiB (JSON stays in bytes).
    #[arg(short = 'H', long)]
    human_readable: bool,
    #[command(flatten)]
    pub(crate) db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// Print one JSON object (shape below) instead of lines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub(crate) db: DbArgs,
}

#[derive(Serialize)]
struct FileJson {
    index: u32,
    name: String,
    size: u64,
    trim_offset: u32,
    end: u64,
    item_bytes: u64,
}

#[derive(Serialize)]
struct RemoteFileJson {
    index: u32,
    key: String,
    size: u64,
    trim_offset: u32,
    end: u64,
    item_bytes: u64,
}

#[derive(Serialize)]
struct RemoteJson {
    store: String,
    prefix: String,
    url: String,
}

#[derive(Serialize)]
struct StateJson {
    clean: bool,
    head: u32,
    head_end: u32,
    seq: u64,
}

#[derive(Serialize)]
pub(crate) struct ProblemJson {
    path: String,
    message: String,
}

#[derive(Serialize)]
struct InfoJson {
    dir: String,
    prefix: String,
    padding: usize,
    genesis: String,
    files: Vec<FileJson>,
    total_files: usize,
    total_size: u64,
    total_item_bytes: u64,
    remote_files: Vec<RemoteFileJson>,
    remote: Option<RemoteJson>,
    state: Option<StateJson>,
    locked: bool,
    pending_recovery: Vec<String>,
    problems: Vec<ProblemJson>,
    other_dat_files: Vec<String>,
    sound: bool,
}

#[derive(Serialize)]
struct CheckJson {
    dir: String,
    sound: bool,
    files: usize,
    total_item_bytes: u64,
    remote_files: usize,
    remote_checked: bool,
    locked: bool,
    pending_recovery: Vec<String>,
    problems: Vec<ProblemJson>,
    other_dat_files: Vec<String>,
}

pub(crate) fn problems_json(problems: &[Problem]) -> Vec<ProblemJson> {
    problems
        .iter()
        .map(|p| ProblemJson {
            path: p.path.display().to_string(),
            message: flags::in_flags(&p.message),
        })
        .collect()
}

/// A problem as `check` prints it: `PATH: MESSAGE`, the library's option names turned into
/// the CLI's flags.
pub(crate) fn problem_line(p: &Problem) -> String {
    format!("{}: {}", p.path.display(), flags::in_flags(&p.message))
}

/// `.dat` files in the directory that are not data files of this naming (and were not
/// reported as problems): a hint that `--prefix` or `--padding` is wrong.
#[expect(
    clippy::case_sensitive_file_extension_comparisons,
    reason = "the Python library matches `.dat` case-sensitively"
)]
fn other_dat_files(db: &Db, ins: &Inspection) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(&db.dir) else {
        return Vec::new();
    };
    let reported: Vec<String> = ins.problems.iter().map(|p| file_name(&p.path)).collect();
    let mut other: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.ends_with(".dat")
                && !n.starts_with('.')
                && !db.is_data_file_name(n)
                && !reported.contains(n)
        })
        .collect();
    other.sort();
    other
}

fn other_note(db: &Db, other: &[String]) -> String {
    format!(
        "{} .dat file{} not named {}{} (e.g. {}): is --prefix or --padding wrong?",
        other.len(),
        plural(other.len()),
        db.prefix,
        "N".repeat(db.padding),
        other[0]
    )
}

pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}

pub(crate) async fn info(db: Db, args: InfoArgs) -> anyhow::Result<ExitCode> {
    let ins = db.builder()?.inspect().await?;
    let other = other_dat_files(&db, &ins);
    if args.json {
        out::json_line(&InfoJson {
            dir: db.dir.display().to_string(),
            prefix: db.prefix.clone(),
            padding: db.padding,
            genesis: hex(&db.genesis),
            files: ins
                .files
                .iter()
                .map(|f| FileJson {
                    index: f.index,
                    name: file_name(&f.path),
                    size: f.size,
                    trim_offset: f.trim_offset,
                    end: f.end,
                    item_bytes: f.item_bytes,
                })
                .collect(),
            total_files: ins.files.len(),
            total_size: ins.total_size(),
            total_item_bytes: ins.total_item_bytes(),
            remote_files: ins
                .remote_files
                .iter()
                .map(|f| RemoteFileJson {
                    index: f.index,
                    key: f.key.clone(),
                    size: f.size,
                    trim_offset: f.trim_offset,
                    end: f.end,
                    item_bytes: f.item_bytes,
                })
                .collect(),
            remote: ins.remote_store.as_ref().map(|r| RemoteJson {
                store: r.store.clone(),
                prefix: r.prefix.clone(),
                url: r.url.clone(),
            }),
            state: ins.state.map(|s| StateJson {
                clean: s.clean,
                head: s.head,
                head_end: s.head_end,
                seq: s.seq,
            }),
            locked: ins.locked,
            pending_recovery: ins.pending_recovery.clone(),
            problems: problems_json(&ins.problems),
            other_dat_files: other,
            sound: ins.is_sound(),
        })?;
    } else {
        let size: fn(u64) -> String = if args.human_readable {
            human_size
        } else {
            |n| n.to_string()
        };
        print_info(&db, &ins, &other, size)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `bytes` in B, KiB, MiB or GiB: `812 B`, `4.4 KiB`, `128.0 MiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[expect(
        clippy::cast_precision_loss,
        reason = "one decimal is shown: 53 bits of precision are plenty"
    )]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Prints the text of `info`, with sizes (not positions) formatted by `size`.
fn print_info(
    db: &Db,
    ins: &Inspection,
    other: &[String],
    size: fn(u64) -> String,
) -> std::io::Result<()> {
    outln!("directory  {}", db.dir.display())?;
    outln!(
        "format     prefix {:?}, {} digits, genesis {}",
        db.prefix,
        db.padding,
        hex(&db.genesis)
    )?;
    let lock = if ins.locked {
        "held by another process (or handle)"
    } else {
        "free"
    };
    outln!("lock       {lock}")?;
    let state = match ins.state {
        None => "none (no commit record: written by the Python library, or empty)".to_owned(),
        Some(s) => format!(
            "{}, head index {} ending at {}, commit seq {}",
            if s.clean {
                "stopped cleanly"
            } else if ins.locked {
                "open"
            } else {
                "not stopped cleanly"
            },
            s.head,
            s.head_end,
            s.seq
        ),
    };
    outln!("state      {state}")?;
    if let Some(r) = &ins.remote_store {
        let n = ins.remote_files.len();
        let bytes: u64 = ins.remote_files.iter().map(|f| f.size).sum();
        outln!(
            "tiering    {n} file{}, size {}, on object storage {}, key prefix {:?} (--store {})",
            plural(n),
            size(bytes),
            r.store,
            r.prefix,
            r.url
        )?;
    }
    outln!()?;
    if ins.remote_files.is_empty() {
        print_table(&local_rows(ins, size), 2)?;
    } else {
        print_table(&tiered_rows(ins, size), 3)?;
    }
    outln!()?;
    if ins.pending_recovery.is_empty() {
        outln!("pending recovery: none")?;
    } else {
        outln!("pending recovery (the next open does it):")?;
        for line in &ins.pending_recovery {
            outln!("  {line}")?;
        }
    }
    if ins.problems.is_empty() {
        outln!("problems: none")?;
    } else {
        outln!("problems ({}):", ins.problems.len())?;
        for p in &ins.problems {
            outln!("  {}", problem_line(p))?;
        }
    }
    if !other.is_empty() {
        outln!("note: {}", other_note(db, other))?;
    }
    Ok(())
}

/// The table of a directory without remote files: `index`, `file`, `size`,
/// `trim_offset`, `end`, `item_bytes`, and the totals.
fn local_rows(ins: &Inspection, size: fn(u64) -> String) -> Vec<[String; 6]> {
    let mut rows = vec![[
        "index".to_owned(),
        "file".to_owned(),
        "size".to_owned(),
        "trim_offset".to_owned(),
        "end".to_owned(),
        "item_bytes".to_owned(),
    ]];
    for f in &ins.files {
        rows.push([
            f.index.to_string(),
            file_name(&f.path),
            size(f.size),
            f.trim_offset.to_string(),
            f.end.to_string(),
            size(f.item_bytes),
        ]);
    }
    rows.push([
        "total".to_owned(),
        format!("{} file{}", ins.files.len(), plural(ins.files.len())),
        size(ins.total_size()),
        String::new(),
        String::new(),
        size(ins.total_item_bytes()),
    ]);
    rows
}

/// The table of a tiered directory: a `where` column after the file (`local`, or the
/// object's key), the files in index order, the totals of both places.
fn tiered_rows(ins: &Inspection, size: fn(u64) -> String) -> Vec<[String; 7]> {
    let mut files: Vec<[String; 7]> = ins
        .files
        .iter()
        .map(|f| {
            [
                f.index.to_string(),
                file_name(&f.path),
                "local".to_owned(),
                size(f.size),
                f.trim_offset.to_string(),
                f.end.to_string(),
                size(f.item_bytes),
            ]
        })
        .chain(ins.remote_files.iter().map(|f| {
            [
                f.index.to_string(),
                f.key.rsplit('/').next().unwrap_or(&f.key).to_owned(),
                f.key.clone(),
                size(f.size),
                f.trim_offset.to_string(),
                f.end.to_string(),
                size(f.item_bytes),
            ]
        }))
        .collect();
    files.sort_by_key(|r| r[0].parse::<u32>().unwrap_or(u32::MAX));
    let n = files.len();
    let all_size = ins.total_size() + ins.remote_files.iter().map(|f| f.size).sum::<u64>();
    let all_items =
        ins.total_item_bytes() + ins.remote_files.iter().map(|f| f.item_bytes).sum::<u64>();
    let mut rows = vec![[
        "index".to_owned(),
        "file".to_owned(),
        "where".to_owned(),
        "size".to_owned(),
        "trim_offset".to_owned(),
        "end".to_owned(),
        "item_bytes".to_owned(),
    ]];
    rows.extend(files);
    rows.push([
        "total".to_owned(),
        format!("{n} file{}", plural(n)),
        format!("{} remote", ins.remote_files.len()),
        size(all_size),
        String::new(),
        String::new(),
        size(all_items),
    ]);
    rows
}

/// Prints rows with the first `left` columns left-aligned and the others right-aligned.
fn print_table<const N: usize>(rows: &[[String; N]], left: usize) -> std::io::Result<()> {
    use std::fmt::Write as _;
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            // Writing to a String cannot fail.
            let _ = if i < left {
                write!(line, "{cell:<w$}")
            } else {
                write!(line, "{cell:>w$}")
            };
        }
        outln!("{}", line.trim_end())?;
    }
    Ok(())
}

pub(crate) async fn check(db: Db, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let ins = db.builder()?.inspect().await?;
    let remote_checked = db.store.is_some() && !ins.remote_files.is_empty();
    let other = other_dat_files(&db, &ins);
    let code = if ins.is_sound() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::PROBLEMS)
    };
    if args.json {
        out::json_line(&CheckJson {
            dir: db.dir.display().to_string(),
            sound: ins.is_sound(),
            files: ins.files.len(),
            total_item_bytes: ins.total_item_bytes(),
            remote_files: ins.remote_files.len(),
            remote_checked,
            locked: ins.locked,
            pending_recovery: ins.pending_recovery.clone(),
            problems: problems_json(&ins.problems),
            other_dat_files: other,
        })?;
        return Ok(code);
    }
    for p in &ins.problems {
        outln!("{}", problem_line(p))?;
    }
    for line in &ins.pending_recovery {
        outln!("note: pending recovery (the next open does it): {line}")?;
    }
    if ins.locked {
        outln!("note: another process (or handle) holds the directory")?;
    }
    if !other.is_empty() {
        outln!("note: {}", other_note(&db, &other))?;
    }
    let remote = ins.remote_files.len();
    if let Some(r) = ins.remote_store.as_ref().filter(|_| !remote_checked) {
        outln!(
            "note: {remote} file{} on object storage {} (key prefix {:?}) not checked: give \
             --store {} to check their objects",
            plural(remote),
            r.store,
            r.prefix,
            r.url
        )?;
    }
    if ins.is_sound() {
        let tiered = match remote {
            0 => String::new(),
            n if remote_checked => format!(" and {n} on object storage"),
            n => format!(" ({n} more on object storage, not checked)"),
        };
        outln!(
            "ok: {} data file{}{tiered}, {} item bytes, no problems",
            ins.files.len(),
            plural(ins.files.len()),
            ins.total_item_bytes()
        )?;
    } else {
        eprintln!(
            "aiodiskdb: check found {} problem{} in {}",
            ins.problems.len(),
            plural(ins.problems.len()),
            db.dir.display()
        );
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(4463), "4.4 KiB");
        assert_eq!(human_size(128 << 20), "128.0 MiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
        assert_eq!(human_size(u64::MAX), "16777216.0 TiB");
    }
}
