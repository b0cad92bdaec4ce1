//! Runs the built `aiodiskdb` binary on temporary directories: every subcommand, the
//! documented exit codes and JSON shapes, bad input, and directories written by the
//! Python library (`tests/fixtures/`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{ensure, Context, Result};
use serde_json::Value;

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.stdout).with_context(|| format!("not JSON: {}", self.text()))
    }

    /// Exits with `code`; on failure shows everything.
    fn expect_code(self, code: i32) -> Result<Run> {
        ensure!(
            self.code == code,
            "expected exit {code}, got {}\nstdout: {}\nstderr: {}",
            self.code,
            self.text(),
            self.stderr
        );
        Ok(self)
    }

    /// Failed with exit 1 and one line `aiodiskdb: ...` on stderr containing `needle`.
    fn expect_error(self, needle: &str) -> Result<Run> {
        let run = self.expect_code(1)?;
        let lines: Vec<&str> = run.stderr.lines().collect();
        ensure!(
            lines.len() == 1 && lines[0].starts_with("aiodiskdb: ") && lines[0].contains(needle),
            "expected one error line containing {needle:?}, got {:?}",
            run.stderr
        );
        Ok(run)
    }
}

fn aiodiskdb(args: &[&str], stdin: &[u8]) -> Result<Run> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aiodiskdb"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut input = child.stdin.take().expect("piped stdin");
    // The command may not read stdin at all; a closed pipe is fine.
    let _ = input.write_all(stdin);
    drop(input);
    let out = child.wait_with_output()?;
    Ok(Run {
        code: out.status.code().context("killed by a signal")?,
        stdout: out.stdout,
        stderr: String::from_utf8(out.stderr)?,
    })
}

fn run(args: &[&str]) -> Result<Run> {
    aiodiskdb(args, b"")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A temporary directory and the (not yet existing) data directory inside it.
fn temp_db() -> Result<(tempfile::TempDir, PathBuf)> {
    let t = tempfile::tempdir()?;
    let db = t.path().join("db");
    Ok((t, db))
}

/// Adds `item` and returns its printed location.
fn add(db: &Path, item: &[u8]) -> Result<String> {
    let r = aiodiskdb(&["add", "--dir", s(db)], item)?.expect_code(0)?;
    Ok(r.text().trim().to_owned())
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// Copies a fixture's `db/` (flat) into a temp dir; returns it with its expected.json.
fn fixture(name: &str) -> Result<(tempfile::TempDir, PathBuf, Value)> {
    let t = tempfile::tempdir()?;
    let dst = t.path().join(name);
    std::fs::create_dir(&dst)?;
    let src = fixtures().join(name);
    for entry in std::fs::read_dir(src.join("db"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), dst.join(entry.file_name()))?;
    }
    let expected = serde_json::from_slice(&std::fs::read(src.join("expected.json"))?)?;
    Ok((t, dst, expected))
}

/// The format options of a fixture, as command-line flags (those every command takes:
/// not `--max-file-size`, which only `add` takes).
fn format_flags(expected: &Value) -> Vec<String> {
    let c = &expected["config"];
    vec![
        "--prefix".into(),
        c["prefix"].as_str().expect("prefix").into(),
        "--padding".into(),
        c["padding"].to_string(),
        "--genesis".into(),
        c["genesis_hex"].as_str().expect("genesis").into(),
    ]
}

#[path = "cli/readers.rs"]
mod readers;

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[test]
fn help_documents_exit_codes_and_json() -> Result<()> {
    let top = run(&["--help"])?.expect_code(0)?.text();
    for needle in [
        "Exit codes",
        "usage error",
        "`check` or `verify` found problems",
        "info",
        "verify",
        "scan",
        "bench",
    ] {
        ensure!(top.contains(needle), "--help lacks {needle:?}:\n{top}");
    }
    let info = run(&["info", "--help"])?.expect_code(0)?.text();
    ensure!(info.contains("\"trim_offset\"") && info.contains("\"pending_recovery\""));
    let check = run(&["check", "--help"])?.expect_code(0)?.text();
    ensure!(check.contains("exits 3") && check.contains("\"sound\""));
    let verify = run(&["verify", "--help"])?.expect_code(0)?.text();
    ensure!(verify.contains("exits 3") && verify.contains("\"items_checked\""));
    let scan = run(&["scan", "--help"])?.expect_code(0)?.text();
    ensure!(scan.contains("--index") && scan.contains("\"position\""));
    let bench = run(&["bench", "--help"])?.expect_code(0)?.text();
    ensure!(bench.contains("\"adds_per_s\"") && bench.contains("seed-small"));
    run(&["frobnicate"])?.expect_code(2)?;
    run(&["info"])?.expect_code(2)?; // --dir is required
    Ok(())
}

/// Built without the feature `tiering`: `--store`, `tier` and `hydrate` fail on one line
/// that says how to build the CLI with it (nothing is created).
#[cfg(not(feature = "tiering"))]
#[test]
fn without_tiering_store_tier_and_hydrate_say_how_to_build_it() -> Result<()> {
    let (_t, db) = temp_db()?;
    let d = s(&db);
    add(&db, b"hello")?;
    for args in [
        vec!["info", "--store", "s3://bucket/prefix", d],
        vec!["--store", "s3://bucket/prefix", "read", "0:0:5", d],
        vec!["tier", "--store", "s3://bucket/prefix", d],
        vec!["tier", d],
        vec!["hydrate", d],
    ] {
        let r = run(&args)?.expect_error("built without it")?;
        ensure!(
            r.stderr
                .contains("cargo build -p aiodiskdb-cli --features tiering"),
            "{args:?}: {}",
            r.stderr
        );
    }
    // Without --store the other commands are as before.
    run(&["read", "0:0:5", d])?.expect_code(0)?;
    Ok(())
}

#[test]
fn add_then_read_round_trip() -> Result<()> {
    let (t, db) = temp_db()?;
    assert_eq!(add(&db, b"hello")?, "0:0:5", "add creates the directory");
    assert_eq!(add(&db, b"world!")?, "0:5:6");
    let file = t.path().join("item.bin");
    std::fs::write(&file, vec![7u8; 3000])?;
    let loc = run(&["add", "--dir", s(&db), "--file", s(&file)])?
        .expect_code(0)?
        .text();
    assert_eq!(loc.trim(), "0:11:3000");

    let r = run(&["read", "--dir", s(&db), "0:5:6"])?.expect_code(0)?;
    assert_eq!(r.stdout, b"world!");
    let r = run(&["read", "--dir", s(&db), "0:11:3000"])?.expect_code(0)?;
    assert_eq!(r.stdout, vec![7u8; 3000]);
    // A location is a byte range: one inside stored data reads as it is.
    let r = run(&["read", "--dir", s(&db), "0:1:3"])?.expect_code(0)?;
    assert_eq!(r.stdout, b"ell");

    // Durable and cleanly stopped: the state record says so.
    let info = run(&["info", "--dir", s(&db), "--json"])?
        .expect_code(0)?
        .json()?;
    assert_eq!(info["state"]["clean"], true);
    assert_eq!(info["total_item_bytes"], 3011);
    Ok(())
}

#[test]
fn add_rejects_empty_and_too_large_items() -> Result<()> {
    let (_t, db) = temp_db()?;
    aiodiskdb(&["add", "--dir", s(&db)], b"")?.expect_error("empty payload")?;
    ensure!(!db.exists(), "an empty add must not create the directory");
    aiodiskdb(
        &["add", "--dir", s(&db), "--max-file-size", "100"],
        &[1u8; 77],
    )?
    .expect_error("larger than the limit of 76 bytes")?;
    aiodiskdb(
        &["add", "--dir", s(&db), "--file", "/nonexistent/item"],
        b"",
    )?
    .expect_error("read /nonexistent/item")?;
    Ok(())
}

#[test]
fn read_of_a_location_not_stored_is_an_error() -> Result<()> {
    let (_t, db) = temp_db()?;
    add(&db, b"0123456789")?;
    let r = run(&["read", "--dir", s(&db), "3:80:10"])?
        .expect_error("location 3:80:10 is not stored")?;
    assert!(r.stdout.is_empty());
    // Past the end of a stored index.
    run(&["read", "--dir", s(&db), "0:5:6"])?.expect_error("location 0:5:6 is not stored")?;
    run(&["read", "--dir", s(&db), "0:10:1"])?.expect_error("is not stored")?;
    Ok(())
}

#[test]
fn bad_location_syntax_is_a_usage_error() -> Result<()> {
    let (_t, db) = temp_db()?;
    add(&db, b"x")?;
    for bad in ["0:0", "a:b:c", "0:0:1:2", "0:-1:1", "0:0:99999999999"] {
        let r = run(&["read", "--dir", s(&db), bad])?.expect_code(2)?;
        ensure!(
            r.stderr.contains("index:position:size"),
            "{bad}: {}",
            r.stderr
        );
    }
    for bad in ["zz", "123", "f9beb4d9aa"] {
        run(&["info", "--dir", s(&db), "--genesis", bad])?.expect_code(2)?;
    }
    Ok(())
}

#[test]
fn missing_directory_is_an_error_and_is_not_created() -> Result<()> {
    let (_t, db) = temp_db()?;
    run(&["info", "--dir", s(&db)])?.expect_error("directory does not exist")?;
    run(&["check", "--dir", s(&db)])?.expect_error("directory does not exist")?;
    run(&["check", "--dir", s(&db), "--json"])?.expect_error("directory does not exist")?;
    run(&["read", "--dir", s(&db), "0:0:1"])?.expect_error("directory does not exist")?;
    run(&["rtrim", "--dir", s(&db), "0", "0", "--yes"])?
        .expect_error("directory does not exist")?;
    run(&["ltrim", "--dir", s(&db), "0", "1", "--yes"])?
        .expect_error("directory does not exist")?;
    run(&["drop", "--dir", s(&db), "0", "--yes"])?.expect_error("directory does not exist")?;
    run(&["verify", "--dir", s(&db)])?.expect_error("directory does not exist")?;
    run(&["scan", "--dir", s(&db)])?.expect_error("directory does not exist")?;
    ensure!(!db.exists(), "nothing but add may create the directory");
    Ok(())
}

/// Bad values are errors that name the CLI's flags, as given, not the library's options.
#[test]
fn bad_options_are_errors() -> Result<()> {
    let (_t, db) = temp_db()?;
    add(&db, b"x")?;
    let r = run(&["info", "--dir", s(&db), "--prefix", "da7a"])?
        .expect_error("--prefix da7a: must be a non-empty string of letters")?;
    ensure!(!r.stderr.contains("file_prefix"), "{}", r.stderr);
    run(&["check", "--dir", s(&db), "--padding", "11"])?.expect_error("--padding 11: ")?;
    aiodiskdb(&["add", "--dir", s(&db), "--max-file-size", "24"], b"x")?
        .expect_error("--max-file-size 24: must be more than the 24-byte header")?;
    Ok(())
}

#[test]
fn corrupt_header_is_reported_by_check_and_refused_by_read() -> Result<()> {
    let (_t, db) = temp_db()?;
    add(&db, b"first")?;
    run(&["check", "--dir", s(&db)])?.expect_code(0)?;
    let file = db.join("data00000.dat");
    let mut bytes = std::fs::read(&file)?;
    bytes[0] ^= 0xff;
    std::fs::write(&file, &bytes)?;
    std::fs::write(db.join("data0001.dat"), b"")?; // wrong padding

    let r = run(&["check", "--dir", s(&db)])?.expect_code(3)?;
    let out = r.text();
    let lines: Vec<&str> = out.lines().collect();
    ensure!(lines.len() == 2, "one line per problem: {out}");
    ensure!(
        lines[0].contains("data00000.dat: wrong genesis bytes"),
        "{out}"
    );
    ensure!(
        lines[1].contains("data0001.dat: looks like a data file"),
        "{out}"
    );
    ensure!(r.stderr.contains("check found 2 problems"), "{}", r.stderr);

    let j = run(&["check", "--dir", s(&db), "--json"])?
        .expect_code(3)?
        .json()?;
    assert_eq!(j["sound"], false);
    assert_eq!(j["problems"].as_array().map(Vec::len), Some(2));
    ensure!(j["problems"][0]["path"]
        .as_str()
        .is_some_and(|p| p.ends_with("data00000.dat")));

    // info lists problems but exits 0.
    let i = run(&["info", "--dir", s(&db), "--json"])?
        .expect_code(0)?
        .json()?;
    assert_eq!(i["sound"], false);
    assert_eq!(i["files"].as_array().map(Vec::len), Some(0));

    run(&["read", "--dir", s(&db), "0:0:5"])?.expect_error("wrong genesis bytes")?;
    // Nothing was changed.
    assert_eq!(std::fs::read(&file)?, bytes);
    Ok(())
}

#[test]
fn trims_refuse_to_run_without_yes() -> Result<()> {
    let (_t, db) = temp_db()?;
    add(&db, b"0123456789")?;
    let before = run(&["info", "--dir", s(&db), "--json"])?.json()?;
    for args in [
        vec!["rtrim", "--dir", s(&db), "0", "5"],
        vec!["ltrim", "--dir", s(&db), "0", "5"],
        vec!["drop", "--dir", s(&db), "0"],
    ] {
        let r = run(&args)?.expect_code(2)?;
        ensure!(
            r.stderr.lines().count() == 1 && r.stderr.contains("without --yes"),
            "{}",
            r.stderr
        );
    }
    let after = run(&["info", "--dir", s(&db), "--json"])?.json()?;
    assert_eq!(before["files"], after["files"]);
    assert_eq!(before["state"], after["state"]);
    Ok(())
}

#[test]
fn rtrim_ltrim_and_drop() -> Result<()> {
    let (_t, db) = temp_db()?;
    let d = s(&db);
    // 40-byte files hold one 16-byte item each: index 0 and index 1.
    let small = ["--max-file-size", "40"];
    let a = aiodiskdb(
        &[&["add", "--dir", d][..], &small].concat(),
        b"aaaaaaaabbbbbbbb",
    )?
    .expect_code(0)?;
    assert_eq!(a.text().trim(), "0:0:16");
    let b = aiodiskdb(
        &[&["add", "--dir", d][..], &small].concat(),
        b"ccccccccdddddddd",
    )?
    .expect_code(0)?;
    assert_eq!(b.text().trim(), "1:0:16");

    // A failed safety check changes nothing.
    run(&["rtrim", "--dir", d, "1", "8", "--check", "6363", "--yes"])?
        .expect_error("safety check")?;
    run(&["rtrim", "--dir", d, "1", "8", "--check", "xyz", "--yes"])?.expect_code(2)?;
    let r = run(&[
        "rtrim",
        "--dir",
        d,
        "1",
        "8",
        "--check",
        "6464646464646464",
        "--yes",
    ])?
    .expect_code(0)?;
    assert_eq!(r.text().trim(), "removed 8 item bytes from index 1");
    run(&["read", "--dir", d, "1:0:16"])?.expect_error("not stored")?;
    assert_eq!(
        run(&["read", "--dir", d, "1:0:8"])?.expect_code(0)?.stdout,
        b"cccccccc"
    );

    let r = run(&["ltrim", "--dir", d, "0", "8", "--check", "61", "--yes"])?.expect_code(0)?;
    assert_eq!(r.text().trim(), "removed 8 item bytes from index 0");
    run(&["read", "--dir", d, "0:0:8"])?.expect_error("not stored")?;
    assert_eq!(
        run(&["read", "--dir", d, "0:8:8"])?.expect_code(0)?.stdout,
        b"bbbbbbbb",
        "positions do not move"
    );
    let info = run(&["info", "--dir", d, "--json"])?.json()?;
    assert_eq!(info["files"][0]["trim_offset"], 8);
    assert_eq!(info["files"][0]["end"], 16);

    let r = run(&["drop", "--dir", d, "0", "--yes"])?.expect_code(0)?;
    assert_eq!(r.text().trim(), "dropped index 0 (8 item bytes)");
    ensure!(!db.join("data00000.dat").exists());
    run(&["drop", "--dir", d, "0", "--yes"])?.expect_error("index 0 does not exist")?;
    run(&["rtrim", "--dir", d, "1", "99", "--yes"])?.expect_error("invalid trim command")?;
    run(&["check", "--dir", d])?.expect_code(0)?;
    Ok(())
}

#[test]
fn info_and_check_json_shapes() -> Result<()> {
    let (_t, db) = temp_db()?;
    add(&db, b"hello")?;
    let i = run(&["info", "--dir", s(&db), "--json"])?
        .expect_code(0)?
        .json()?;
    let keys = [
        "dir",
        "prefix",
        "padding",
        "genesis",
        "files",
        "total_files",
        "total_size",
        "total_item_bytes",
        "remote_files",
        "remote",
        "state",
        "locked",
        "pending_recovery",
        "problems",
        "other_dat_files",
        "sound",
    ];
    let obj = i.as_object().context("an object")?;
    assert_eq!(obj.len(), keys.len(), "{i}");
    for k in keys {
        ensure!(obj.contains_key(k), "info --json lacks {k}: {i}");
    }
    assert_eq!(i["genesis"], "0dce8f37");
    assert_eq!(
        i["files"][0],
        serde_json::json!({"index": 0, "name": "data00000.dat", "size": 29,
                           "trim_offset": 0, "end": 5, "item_bytes": 5})
    );
    let state = i["state"].as_object().context("state")?;
    for k in ["clean", "head", "head_end", "seq"] {
        ensure!(state.contains_key(k), "state lacks {k}");
    }
    assert_eq!(i["locked"], false);

    let c = run(&["check", "--dir", s(&db), "--json"])?
        .expect_code(0)?
        .json()?;
    assert_eq!(
        c,
        serde_json::json!({"dir": s(&db), "sound": true, "files": 1, "total_item_bytes": 5,
                           "remote_files": 0, "remote_checked": false,
                           "locked": false, "pending_recovery": [], "problems": [],
                           "other_dat_files": []})
    );
    Ok(())
}

#[test]
fn info_and_check_see_a_lock_held_by_another_handle() -> Result<()> {
    let (_t, db) = temp_db()?;
    add(&db, b"hello")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = rt.block_on(aiodiskdb::AioDiskDb::open(&db))?;
    let i = run(&["info", "--dir", s(&db), "--json"])?
        .expect_code(0)?
        .json()?;
    assert_eq!(i["locked"], true);
    assert_eq!(
        i["pending_recovery"],
        serde_json::json!([]),
        "a live session is not pending"
    );
    let c = run(&["check", "--dir", s(&db)])?.expect_code(0)?;
    ensure!(c.text().contains("note: another process"), "{}", c.text());
    // The reading commands open it read-only, beside the writer.
    assert_eq!(
        run(&["read", "--dir", s(&db), "0:0:5"])?
            .expect_code(0)?
            .stdout,
        b"hello"
    );
    run(&["verify", "--dir", s(&db)])?.expect_code(0)?;
    assert_eq!(
        run(&["scan", "--dir", s(&db)])?.expect_code(0)?.text(),
        "0:0:5\n"
    );
    rt.block_on(handle.stop())?;
    run(&["read", "--dir", s(&db), "0:0:5"])?.expect_code(0)?;
    Ok(())
}

#[test]
fn check_notes_data_files_of_another_naming() -> Result<()> {
    let (_t, dir, _) = fixture("custom")?;
    let r = run(&["check", "--dir", s(&dir)])?.expect_code(0)?;
    ensure!(
        r.text().contains("note: 3 .dat files not named dataNNNNN"),
        "{}",
        r.text()
    );
    Ok(())
}

#[test]
fn a_closed_stdout_pipe_is_not_an_error() -> Result<()> {
    let (_t, db) = temp_db()?;
    let loc = add(&db, &vec![9u8; 1 << 20])?;
    for args in [
        vec!["read", "--dir", s(&db), loc.as_str()],
        vec!["info", "--dir", s(&db)],
        vec!["check", "--dir", s(&db), "--json"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aiodiskdb"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // The reader goes away before the command writes anything.
        drop(child.stdout.take());
        let out = child.wait_with_output()?;
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(String::from_utf8(out.stderr)?, "", "{args:?}");
    }
    Ok(())
}

/// Every Python-written fixture: `info` sees the files Python left, `check` finds it
/// sound, `read` returns what Python wrote and refuses what it removed.
#[test]
fn python_fixtures() -> Result<()> {
    for name in ["basic", "multi_file", "trimmed", "custom", "crashed"] {
        let (_t, dir, expected) = fixture(name)?;
        let flags = format_flags(&expected);
        let with = |cmd: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = cmd.iter().map(|s| (*s).to_owned()).collect();
            v.extend(["--dir".to_owned(), s(&dir).to_owned()]);
            v.extend(flags.iter().cloned());
            v
        };
        let call = |args: Vec<String>| {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&refs)
        };

        let info = call(with(&["info", "--json"]))?.expect_code(0)?.json()?;
        let files = expected["files"].as_object().context("files")?;
        assert_eq!(info["total_files"], files.len(), "{name}");
        for f in info["files"].as_array().context("files")? {
            let e = &files[&f["index"].to_string()];
            assert_eq!(f["size"], e["len"], "{name} {f}");
            assert_eq!(f["trim_offset"], e["trim_offset"], "{name} {f}");
        }
        assert_eq!(
            info["state"],
            Value::Null,
            "{name}: no commit record of ours"
        );
        assert_eq!(info["sound"], true, "{name}");
        let pending = info["pending_recovery"].as_array().context("pending")?;
        assert_eq!(pending.is_empty(), name != "crashed", "{name}: {pending:?}");
        call(with(&["check"]))?.expect_code(0)?;

        let items = expected["items"].as_array().context("items")?;
        let present = items.iter().rfind(|i| i["present"] == true);
        let absent = items.iter().find(|i| i["present"] == false);
        for (item, stored) in [(present, true), (absent, false)] {
            let Some(item) = item else { continue };
            let loc = format!("{}:{}:{}", item["index"], item["position"], item["size"]);
            let r = call(with(&["read", loc.as_str()]))?;
            if stored {
                let r = r.expect_code(0)?;
                assert_eq!(
                    Some(hex(&r.stdout).as_str()),
                    item["hex"].as_str(),
                    "{name}"
                );
            } else {
                r.expect_error(&format!("location {loc} is not stored"))?;
            }
        }
        // `read` opens read-only: a crashed directory is read as recovery will keep it,
        // and left as it was.
        let after = call(with(&["info", "--json"]))?.json()?;
        assert_eq!(after, info, "{name}: read changed the directory");
    }
    Ok(())
}

#[test]
fn python_checkpoint_that_does_not_match_is_a_problem() -> Result<()> {
    let (_t, dir, _) = fixture("crashed")?;
    let file = dir.join("data00001.dat");
    let mut bytes = std::fs::read(&file)?;
    bytes[190] ^= 0xff; // within the last 8 bytes before the recorded length, 194
    std::fs::write(&file, &bytes)?;
    let r = run(&["check", "--dir", s(&dir)])?.expect_code(3)?;
    ensure!(
        r.text()
            .contains("data00001.dat: last bytes before 194 differ"),
        "{}",
        r.text()
    );
    Ok(())
}

#[test]
fn bench_runs_every_workload_tiny() -> Result<()> {
    let r = run(&[
        "bench",
        "--workload",
        "all",
        "--total-mb",
        "1",
        "--items",
        "200",
        "--files",
        "10",
        "--tasks",
        "8",
        "--json",
    ])?
    .expect_code(0)?;
    let text = r.text();
    let objects: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let names: Vec<&str> = objects
        .iter()
        .map(|o| o["workload"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names.join(" "),
        "seed-large seed-small append append-large read durable open verify read-other-process"
    );
    check_read_other_process(&objects[8])?;
    assert_eq!(objects[2]["items"], 200);
    assert_eq!(objects[3]["items"], 1);
    assert_eq!(objects[3]["item_bytes"], 1 << 20);
    check_read_and_verify(&objects[4], &objects[7])?;
    assert_eq!(objects[5]["items"], 200);
    ensure!(objects[5]["flushes"].as_u64().is_some_and(|f| f >= 1));
    assert_eq!(objects[6]["files"], 10);
    assert_eq!(objects[2]["runs"][1]["config"], "bytes-governed");
    // Every workload measured its limit in the same run, and the ratio to it.
    let positive = |v: &Value| v.as_f64().is_some_and(|x| x > 0.0);
    for (o, limit, ratio) in [
        (
            &objects[0],
            &objects[0]["limit_mb_per_s"],
            &objects[0]["ratio"],
        ),
        (
            &objects[1],
            &objects[1]["limit_mb_per_s"],
            &objects[1]["ratio"],
        ),
        (
            &objects[2],
            &objects[2]["limit_adds_per_s"],
            &objects[2]["runs"][0]["ratio"],
        ),
        (
            &objects[3],
            &objects[3]["limit_adds_per_s"],
            &objects[3]["runs"][0]["ratio"],
        ),
        (
            &objects[4],
            &objects[4]["runs"][2]["limit_reads_per_s"],
            &objects[4]["runs"][2]["vs_unverified"],
        ),
        (
            &objects[5],
            &objects[5]["limit_items_per_s"],
            &objects[5]["ratio"],
        ),
        (
            &objects[5],
            &objects[5]["items_per_flush"],
            &objects[5]["flush_ratio"],
        ),
        (
            &objects[7],
            &objects[7]["runs"][0]["limit_mb_per_s"],
            &objects[7]["runs"][0]["ratio"],
        ),
    ] {
        ensure!(positive(limit) && positive(ratio), "{o}");
    }
    ensure!(positive(&objects[6]["big_open_ms"]), "{}", objects[6]);
    for o in &objects {
        ensure!(o.as_object().is_some_and(|m| m.len() >= 4), "{o}");
    }
    // Not a terminal: plain progress lines on stderr.
    ensure!(
        r.stderr.contains("bench open: creating 10 data files"),
        "{}",
        r.stderr
    );
    Ok(())
}

/// `read-other-process` of 200 items: the writer's run then the reader's, with 1 then 32
/// readers, over 3 rounds; the writer appended meanwhile.
fn check_read_other_process(o: &Value) -> Result<()> {
    assert_eq!(o["items"], 200);
    ensure!(o["appends"].as_u64().is_some_and(|a| a >= 1), "{o}");
    let runs = o["runs"].as_array().context("runs")?;
    let shape: Vec<(u64, &str)> = runs
        .iter()
        .map(|r| {
            (
                r["readers"].as_u64().unwrap_or(0),
                r["process"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [(1, "writer"), (1, "reader"), (32, "writer"), (32, "reader")]
    );
    for r in runs {
        assert_eq!(r["reads"], 600, "{r}");
        ensure!(r["reads_per_s"].as_f64().is_some_and(|x| x > 0.0), "{r}");
        let reader = r["process"] == "reader";
        ensure!(
            r["vs_writer"].as_f64().is_some_and(|x| x > 0.0) == reader,
            "vs_writer only for the reader: {r}"
        );
    }
    Ok(())
}

/// `read` of 200 items: 1 then 32 readers, each with `verify_reads` on then off, over 3
/// rounds; `verify` of 1 MB: warm last (cold first when the page cache can be dropped).
fn check_read_and_verify(read: &Value, verify: &Value) -> Result<()> {
    let reads = &read["runs"];
    assert_eq!(reads[2]["readers"], 32);
    assert_eq!(reads[2]["verify_reads"], true);
    assert_eq!(reads[3]["verify_reads"], false);
    assert_eq!(reads[3]["reads"], 600);
    ensure!(
        verify["bytes"].as_u64().is_some_and(|b| b >= 1_000_000),
        "{verify}"
    );
    let runs = verify["runs"].as_array().context("verify runs")?;
    ensure!(
        runs.last().is_some_and(|r| r["cache"] == "warm"),
        "{verify}"
    );
    Ok(())
}

/// The seed workload prints the seed's figures (duration, reads, writes, bandwidth,
/// average item size), the re-read and the limit on one `key=value` line.
#[test]
fn bench_seed_prints_the_seed_figures() -> Result<()> {
    let (_t, db) = temp_db()?;
    let r = run(&["bench", "--total-mb", "1", "--dir", s(&db), "-q"])?.expect_code(0)?;
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    ensure!(lines.len() == 1, "{text}");
    let line = key_values(lines[0])?;
    assert_eq!(line[0], ("workload", "seed-small"));
    for key in [
        "secs",
        "reads",
        "reads_per_s",
        "writes",
        "writes_per_s",
        "bytes",
        "mb_per_s",
        "avg_item_bytes",
        "reread_items",
        "ratio",
    ] {
        ensure!(line.iter().any(|(k, _)| *k == key), "no {key}: {text}");
    }
    ensure!(r.stderr.is_empty(), "quiet: {}", r.stderr);
    // Not quiet: the seed's own line too, for people, on stderr.
    let (_t2, db2) = temp_db()?;
    let r = run(&["bench", "--total-mb", "1", "--dir", s(&db2)])?.expect_code(0)?;
    ensure!(
        r.stderr.contains("Duration: ") && r.stderr.contains("Avg item size: "),
        "{}",
        r.stderr
    );
    // The directory holds the data; it is not empty any more.
    run(&["bench", "--dir", s(&db)])?.expect_error("is not empty")?;
    run(&["check", "--dir", s(&db)])?.expect_code(0)?;
    // A durable run bounded by time.
    let r = run(&[
        "bench",
        "--workload",
        "durable",
        "--seconds",
        "0.2",
        "--tasks",
        "4",
    ])?
    .expect_code(0)?;
    ensure!(
        r.text().starts_with("workload=durable tasks=4 "),
        "{}",
        r.text()
    );
    Ok(())
}

/// A directory as a writer killed after a flush leaves it: a dirty commit record and our
/// Python-format checkpoint. Returns the directory and the location of the item flushed.
fn crashed_dir() -> Result<(tempfile::TempDir, PathBuf, String)> {
    let t = tempfile::tempdir()?;
    let live = t.path().join("live");
    let crashed = t.path().join("crashed");
    let rt = tokio::runtime::Runtime::new()?;
    let loc = rt.block_on(async {
        let db = aiodiskdb::AioDiskDb::open(&live).await?;
        let loc = db.add(&b"flushed"[..]).await?;
        db.flush().await?;
        // A copy now is what a kill -9 leaves: everything is in the page cache.
        std::fs::create_dir(&crashed)?;
        for e in std::fs::read_dir(&live)? {
            let e = e?;
            std::fs::copy(e.path(), crashed.join(e.file_name()))?;
        }
        db.stop().await?;
        anyhow::Ok(loc)
    })?;
    Ok((t, crashed, loc.to_string()))
}

#[test]
fn check_reports_pending_recovery_and_recover_finishes_it() -> Result<()> {
    let (_t, dir, loc) = crashed_dir()?;
    let d = s(&dir);
    let r = run(&["check", "--dir", d])?.expect_code(3)?;
    ensure!(r.text().contains("recovery pending"), "{}", r.text());
    ensure!(r.text().contains("aiodiskdb recover"), "{}", r.text());
    let j = run(&["check", "--dir", d, "--json"])?
        .expect_code(3)?
        .json()?;
    assert_eq!(j["sound"], false);
    let r = run(&["recover", "--dir", d])?.expect_code(0)?;
    ensure!(r.text().contains("recovered:"), "{}", r.text());
    let r = run(&["check", "--dir", d])?.expect_code(0)?;
    ensure!(r.text().contains("no problems"), "{}", r.text());
    // A clean stop leaves a plain directory: no checkpoint of ours.
    let names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    ensure!(
        !names.iter().any(|n| n.starts_with(".checkpoint-")),
        "{names:?}"
    );
    let r = run(&["read", "--dir", d, &loc])?.expect_code(0)?;
    assert_eq!(r.stdout, b"flushed");
    let r = run(&["recover", "--dir", d])?.expect_code(0)?;
    ensure!(r.text().contains("nothing to recover"), "{}", r.text());
    Ok(())
}

#[test]
fn an_empty_safety_check_is_refused() -> Result<()> {
    let (_t, db) = temp_db()?;
    let d = s(&db);
    add(&db, b"abc")?;
    for cmd in ["rtrim", "ltrim"] {
        let r = run(&[cmd, "--dir", d, "0", "1", "--check", "", "--yes"])?.expect_code(2)?;
        ensure!(r.stderr.contains("checks nothing"), "{}", r.stderr);
    }
    let r = run(&["read", "--dir", d, "0:0:3"])?.expect_code(0)?;
    assert_eq!(r.stdout, b"abc", "nothing was trimmed");
    Ok(())
}

#[test]
fn locations_with_signs_or_spaces_are_refused() -> Result<()> {
    let (_t, db) = temp_db()?;
    add(&db, b"abc")?;
    for bad in ["+0:0:3", "0:+0:3", " 0:0:3", "0:0:3 ", "0: 0:3"] {
        run(&["read", "--dir", s(&db), bad])?.expect_code(2)?;
    }
    Ok(())
}

#[test]
fn check_reports_names_that_are_not_utf8() -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let (_t, db) = temp_db()?;
    add(&db, b"abc")?;
    let name = std::ffi::OsStr::from_bytes(b"data\xff0001.dat");
    std::fs::write(db.join(name), b"x")?;
    let r = run(&["check", "--dir", s(&db)])?.expect_code(3)?;
    ensure!(r.text().contains("not UTF-8"), "{}", r.text());
    // Ignored by the engine: the directory still opens and reads.
    let r = run(&["read", "--dir", s(&db), "0:0:3"])?.expect_code(0)?;
    assert_eq!(r.stdout, b"abc");
    Ok(())
}

/// The `key=value` pairs of a text line of `bench`; an error unless every word is one
/// (a quoted value may hold spaces: only `error="..."` has one).
fn key_values(line: &str) -> Result<Vec<(&str, &str)>> {
    line.split(' ')
        .map(|pair| {
            pair.split_once('=')
                .filter(|(k, v)| {
                    !k.is_empty()
                        && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                        && !v.is_empty()
                        && !v.contains('=')
                })
                .with_context(|| format!("{pair:?} is not key=value in {line:?}"))
        })
        .collect()
}

/// The files of a directory and their bytes.
fn snapshot(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        files.push((
            e.file_name().to_string_lossy().into_owned(),
            std::fs::read(e.path())?,
        ));
    }
    files.sort();
    Ok(files)
}

/// `--dir` and the format options before the command, after it, or the directory as the
/// command's last argument: the same directory, the same results.
#[test]
fn dir_and_format_options_before_or_after_the_command_or_dir_last() -> Result<()> {
    let (_t, db) = temp_db()?;
    let d = s(&db);
    let fmt = ["--prefix", "blk", "--padding", "8", "--genesis", "f9beb4d9"];
    // Before the command, the directory last, and --dir after it.
    let with = |before: &[&str], cmd: &[&str], after: &[&str]| -> Vec<String> {
        [before, cmd, after]
            .concat()
            .iter()
            .map(|a| (*a).to_owned())
            .collect()
    };
    let call = |args: Vec<String>, stdin: &[u8]| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        aiodiskdb(&refs, stdin)
    };
    let first = call(
        with(&[&["--dir", d][..], &fmt].concat(), &["add"], &[]),
        b"one",
    )?
    .expect_code(0)?;
    assert_eq!(first.text().trim(), "0:0:3");
    let second = call(with(&fmt, &["add", d], &[]), b"two")?.expect_code(0)?;
    assert_eq!(second.text().trim(), "0:3:3");
    let third = call(with(&[], &["add", "--dir", d], &fmt), b"three")?.expect_code(0)?;
    assert_eq!(third.text().trim(), "0:6:5");
    ensure!(
        db.join("blk00000000.dat").exists(),
        "named by the format options"
    );

    let info = |before: &[&str], after: &[&str]| -> Result<Value> {
        call(with(before, &["info", "--json"], after), b"")?
            .expect_code(0)?
            .json()
    };
    let expected = info(&[], &[&["--dir", d][..], &fmt].concat())?;
    assert_eq!(expected["total_item_bytes"], 11);
    assert_eq!(expected["prefix"], "blk");
    for (before, after) in [
        ([&["--dir", d][..], &fmt].concat(), vec![]),
        (fmt.to_vec(), vec![d]),
        (vec!["--dir", d], fmt.to_vec()),
        (vec![], [&fmt[..], &[d]].concat()),
    ] {
        assert_eq!(info(&before, &after)?, expected, "{before:?} {after:?}");
    }
    for (before, cmd, after) in [
        (vec!["--dir", d], vec!["read", "0:3:3"], fmt.to_vec()),
        (fmt.to_vec(), vec!["read", "0:3:3", d], vec![]),
        (vec![], vec!["read", "0:3:3", d], fmt.to_vec()),
        (vec![], vec!["read", "--dir", d, "0:3:3"], fmt.to_vec()),
    ] {
        let r = call(with(&before, &cmd, &after), b"")?.expect_code(0)?;
        assert_eq!(r.stdout, b"two", "{before:?} {cmd:?} {after:?}");
    }
    call(with(&fmt, &["check", d], &[]), b"")?.expect_code(0)?;
    call(with(&["--dir", d], &["check"], &fmt), b"")?.expect_code(0)?;
    // The trims and drop: their own arguments first, the directory last.
    let r = call(with(&fmt, &["rtrim", "0", "6", d, "--yes"], &[]), b"")?.expect_code(0)?;
    assert_eq!(r.text().trim(), "removed 5 item bytes from index 0");
    let r = call(
        with(&["--dir", d], &["ltrim", "0", "3", "--yes"], &fmt),
        b"",
    )?
    .expect_code(0)?;
    assert_eq!(r.text().trim(), "removed 3 item bytes from index 0");
    let r = call(with(&[], &["drop", "0", d, "--yes"], &fmt), b"")?.expect_code(0)?;
    assert_eq!(r.text().trim(), "dropped index 0 (3 item bytes)");
    let r = call(with(&fmt, &["recover", d], &[]), b"")?.expect_code(0)?;
    ensure!(r.text().contains("nothing to recover"), "{}", r.text());
    Ok(())
}

/// Ambiguous or missing directories are usage errors (exit 2) that say what to do.
#[test]
fn the_directory_given_twice_or_not_at_all_is_a_usage_error() -> Result<()> {
    let (_t, db) = temp_db()?;
    let d = s(&db);
    add(&db, b"abc")?;
    for (args, needle) in [
        (
            vec!["--dir", d, "info", d],
            "--dir (or DIR) is given both before and after `info`",
        ),
        (
            vec!["--dir", d, "read", "--dir", d, "0:0:3"],
            "--dir is given both before and after `read`",
        ),
        (
            vec!["--padding", "5", "check", d, "--padding", "5"],
            "--padding is given both before and after `check`",
        ),
        (vec!["info"], "the data directory is missing"),
        (vec!["read", "0:0:3"], "the data directory is missing"),
        (vec!["--prefix", "data", "drop", "0", "--yes"], "DIR"),
        // The directory first, where the command's own arguments go.
        (vec!["read", d, "0:0:3"], "DIR comes last"),
        (vec!["rtrim", d, "0", "1", "--yes"], "DIR comes last"),
        (
            vec!["--max-file-size", "100", "read", "0:0:3", d],
            "--max-file-size does not apply to `read`",
        ),
        (
            vec!["read", "0:0:3", d, "--max-file-size", "100"],
            "--max-file-size",
        ),
        (
            vec!["--genesis", "0dce8f37", "bench"],
            "--genesis does not apply to `bench`",
        ),
    ] {
        let r = run(&args)?.expect_code(2)?;
        ensure!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
    let r = run(&["read", "0:0:3", d])?.expect_code(0)?;
    assert_eq!(r.stdout, b"abc", "nothing changed");
    Ok(())
}

/// Each command's help lists the options it takes: --max-file-size only matters to `add`,
/// and `bench` has no format option.
#[test]
fn help_lists_only_the_options_each_command_takes() -> Result<()> {
    for cmd in [
        "info", "check", "verify", "scan", "recover", "read", "rtrim", "ltrim", "drop", "add",
    ] {
        let help = run(&[cmd, "--help"])?.expect_code(0)?.text();
        ensure!(
            help.contains("--max-file-size") == (cmd == "add"),
            "{cmd} --help and --max-file-size:\n{help}"
        );
        for needle in ["--dir <DIR>", "--prefix", "--padding", "--genesis"] {
            ensure!(
                help.contains(needle),
                "{cmd} --help lacks {needle:?}:\n{help}"
            );
        }
    }
    let bench = run(&["bench", "--help"])?.expect_code(0)?.text();
    ensure!(!bench.contains("--prefix"), "{bench}");
    let (_t, db) = temp_db()?;
    add(&db, b"abc")?;
    let r = run(&["read", "--dir", s(&db), "0:0:3", "--max-file-size", "100"])?.expect_code(2)?;
    ensure!(r.stderr.contains("--max-file-size"), "{}", r.stderr);
    Ok(())
}

/// The help says where the directory and the format options go.
#[test]
fn help_says_where_the_directory_goes() -> Result<()> {
    let top = run(&["--help"])?.expect_code(0)?.text();
    for needle in ["--dir <DIR>", "--prefix", "before or after the command"] {
        ensure!(top.contains(needle), "--help lacks {needle:?}:\n{top}");
    }
    for (cmd, usage) in [
        ("info", "info [OPTIONS] [DIR]"),
        ("verify", "verify [OPTIONS] [DIR]"),
        ("scan", "scan [OPTIONS] [DIR]"),
        ("add", "add [OPTIONS] [DIR]"),
        ("read", "read [OPTIONS] <LOCATION> [DIR]"),
        ("rtrim", "rtrim [OPTIONS] <INDEX> <POSITION> [DIR]"),
        ("drop", "drop [OPTIONS] <INDEX> [DIR]"),
    ] {
        let help = run(&[cmd, "--help"])?.expect_code(0)?.text();
        ensure!(
            help.contains(usage),
            "{cmd} --help lacks {usage:?}:\n{help}"
        );
    }
    let bench = run(&["bench", "--help"])?.expect_code(0)?.text();
    ensure!(!bench.contains("[DIR]"), "{bench}");
    Ok(())
}

/// A directory written with another padding or genesis: the error and `check` name the
/// flags, with the value given and the value recorded.
#[test]
fn a_format_mismatch_names_the_flags() -> Result<()> {
    let (_t, db) = temp_db()?;
    let d = s(&db);
    add(&db, b"abc")?;
    let r = run(&["read", "--dir", d, "0:0:3", "--padding", "6"])?
        .expect_error("--padding 6: the directory was written with --padding 5")?;
    ensure!(!r.stderr.contains("file_padding"), "{}", r.stderr);
    let r = run(&[
        "rtrim",
        "--dir",
        d,
        "0",
        "1",
        "--genesis",
        "f9beb4d9",
        "--yes",
    ])?
    .expect_error("--genesis f9beb4d9: the directory was written with --genesis 0dce8f37")?;
    ensure!(!r.stderr.contains("genesis_bytes"), "{}", r.stderr);
    let r = run(&["check", "--dir", d, "--padding", "6"])?.expect_code(3)?;
    ensure!(
        r.text()
            .contains("--padding 6: the directory was written with --padding 5"),
        "{}",
        r.text()
    );
    ensure!(!r.text().contains("file_padding"), "{}", r.text());
    // A missing directory, without the library's option names.
    let missing = format!("{d}-missing");
    let r = run(&["read", "--dir", &missing, "0:0:1"])?.expect_error("directory does not exist")?;
    ensure!(!r.stderr.contains("create_if_missing"), "{}", r.stderr);
    Ok(())
}

/// An item too large for --max-file-size is refused before anything is created: no
/// directory, no state file, no data file.
#[test]
fn a_rejected_add_creates_nothing() -> Result<()> {
    let (_t, db) = temp_db()?;
    let d = s(&db);
    let small = ["--max-file-size", "100"];
    let r = aiodiskdb(&[&["add", "--dir", d][..], &small].concat(), &[1u8; 77])?;
    ensure!(!db.exists(), "the directory was created");
    let r = r.expect_error("larger than the limit of 76 bytes (--max-file-size 100 less the")?;
    ensure!(r.stdout.is_empty());
    // In an existing directory, under another naming too: nothing new.
    add(&db, b"x")?;
    let before = snapshot(&db)?;
    for prefix in ["data", "blk"] {
        let r = aiodiskdb(
            &[&["add", "--dir", d, "--prefix", prefix][..], &small].concat(),
            &[1u8; 77],
        )?;
        assert_eq!(snapshot(&db)?, before, "--prefix {prefix}");
        r.expect_error("--max-file-size 100")?;
    }
    // The largest item accepted: the file size less the 24-byte header.
    let r = aiodiskdb(&[&["add", "--dir", d][..], &small].concat(), &[2u8; 76])?.expect_code(0)?;
    assert_eq!(r.text().trim(), "1:0:76");
    Ok(())
}

/// `read --hex`, and locations as the 24 hex digits of Python's `serialize()`.
#[test]
fn read_hex_and_serialized_locations() -> Result<()> {
    let (_t, db) = temp_db()?;
    let d = s(&db);
    add(&db, &[0xaa; 300])?;
    assert_eq!(add(&db, b"hello world")?, "0:300:11");
    let r = run(&["read", "--dir", d, "0:300:11", "--hex"])?.expect_code(0)?;
    assert_eq!(r.text(), "68656c6c6f20776f726c64\n");
    // ItemLocation(0, 300, 11).serialize(): u32 little endian index, position, size.
    let serialized = "000000002c0100000b000000";
    let r = run(&["read", "--dir", d, serialized])?.expect_code(0)?;
    assert_eq!(r.stdout, b"hello world");
    let r = run(&["read", "--dir", d, &serialized.to_uppercase(), "--hex"])?.expect_code(0)?;
    assert_eq!(r.text(), "68656c6c6f20776f726c64\n");
    run(&["read", "--dir", d, "010000002c0100000b000000"])?
        .expect_error("location 1:300:11 is not stored")?;
    for bad in ["000000002c0100000b0000", "000000002c0100000b00000z"] {
        let r = run(&["read", "--dir", d, bad])?.expect_code(2)?;
        ensure!(r.stderr.contains("24 hex digits"), "{bad}: {}", r.stderr);
    }
    let help = run(&["read", "--help"])?.expect_code(0)?.text();
    ensure!(
        help.contains("--hex") && help.contains("ItemLocation.serialize()"),
        "{help}"
    );
    Ok(())
}

/// `--json` on add (the location as text, its fields, and serialized), the trims and drop
/// (what was removed).
#[test]
fn add_trims_and_drop_print_json() -> Result<()> {
    let (_t, db) = temp_db()?;
    let d = s(&db);
    let small = ["--max-file-size", "40"];
    let a = aiodiskdb(
        &[&["add", "--dir", d, "--json"][..], &small].concat(),
        b"aaaaaaaabbbbbbbb",
    )?
    .expect_code(0)?
    .json()?;
    assert_eq!(
        a,
        serde_json::json!({"location": "0:0:16", "index": 0, "position": 0, "size": 16,
                           "serialized": "000000000000000010000000"})
    );
    let b = aiodiskdb(
        &[&["add", "--dir", d, "--json"][..], &small].concat(),
        b"ccccccccdddddddd",
    )?
    .expect_code(0)?
    .json()?;
    assert_eq!(b["location"], "1:0:16");
    let serialized = b["serialized"].as_str().context("serialized")?;
    assert_eq!(
        run(&["read", "--dir", d, serialized])?
            .expect_code(0)?
            .stdout,
        b"ccccccccdddddddd"
    );

    let r = run(&["rtrim", "--dir", d, "1", "8", "--yes", "--json"])?
        .expect_code(0)?
        .json()?;
    assert_eq!(
        r,
        serde_json::json!({"index": 1, "position": 8, "removed_item_bytes": 8})
    );
    let r = run(&["ltrim", "--dir", d, "0", "8", "--yes", "--json"])?
        .expect_code(0)?
        .json()?;
    assert_eq!(
        r,
        serde_json::json!({"index": 0, "position": 8, "removed_item_bytes": 8})
    );
    let r = run(&["drop", "--dir", d, "0", "--yes", "--json"])?
        .expect_code(0)?
        .json()?;
    assert_eq!(
        r,
        serde_json::json!({"index": 0, "file": "data00000.dat", "removed_item_bytes": 8})
    );
    // Refused without --yes: no JSON, the usual usage error.
    let r = run(&["drop", "--dir", d, "1", "--json"])?.expect_code(2)?;
    ensure!(r.stdout.is_empty() && r.stderr.contains("without --yes"));
    Ok(())
}

/// `info -H`: sizes in KiB/MiB in the table, positions exact; JSON stays in bytes.
#[test]
fn info_human_readable_sizes() -> Result<()> {
    let (_t, db) = temp_db()?;
    let d = s(&db);
    add(&db, &vec![5u8; 3 << 20])?;
    add(&db, &[6u8; 1000])?;
    let plain = run(&["info", "--dir", d])?.expect_code(0)?.text();
    let human = run(&["info", "--dir", d, "-H"])?.expect_code(0)?.text();
    let row = |text: &str, first: &str| -> Result<Vec<String>> {
        text.lines()
            .find(|l| l.starts_with(first))
            .map(|l| l.split("  ").map(|c| c.trim().to_owned()).collect())
            .with_context(|| format!("no {first} row: {text}"))
    };
    let plain_row = row(&plain, "0 ")?;
    ensure!(plain_row.iter().any(|c| c == "3146752"), "{plain}");
    let human_row = row(&human, "0 ")?;
    let cells: Vec<&str> = human_row
        .iter()
        .map(String::as_str)
        .filter(|c| !c.is_empty())
        .collect();
    // index, file, size, trim_offset, end, item_bytes
    assert_eq!(
        cells,
        ["0", "data00000.dat", "3.0 MiB", "0", "3146728", "3.0 MiB"],
        "{human}"
    );
    let total = row(&human, "total")?;
    ensure!(total.iter().any(|c| c == "3.0 MiB"), "{human}");
    assert_eq!(
        run(&["info", "--dir", d, "-H", "--json"])?
            .expect_code(0)?
            .json()?,
        run(&["info", "--dir", d, "--json"])?
            .expect_code(0)?
            .json()?,
        "JSON stays in bytes"
    );
    let long = run(&["info", "--dir", d, "--human-readable"])?
        .expect_code(0)?
        .text();
    assert_eq!(long, human);
    Ok(())
}

/// Every stdout line of `bench` and its `--json` objects say the same: `key=value`
/// pairs with the JSON keys, `workload` first.
#[test]
fn bench_text_lines_are_key_value_pairs() -> Result<()> {
    let args = [
        "bench",
        "--workload",
        "all",
        "--total-mb",
        "1",
        "--items",
        "100",
        "--files",
        "3",
        "--tasks",
        "4",
        "-q",
    ];
    let text = run(&args)?.expect_code(0)?.text();
    let mut workloads = Vec::new();
    for line in text.lines() {
        let pairs = key_values(line)?;
        ensure!(pairs[0].0 == "workload", "{line}");
        if workloads.last() != Some(&pairs[0].1) {
            workloads.push(pairs[0].1);
        }
        // Figures are numbers (or n/a); config, close, cache and process are words,
        // verify_reads a bool.
        for (k, v) in &pairs[1..] {
            ensure!(
                v.parse::<f64>().is_ok()
                    || *v == "n/a"
                    || ["config", "close", "cache", "process"].contains(k)
                    || (*k == "verify_reads" && ["true", "false"].contains(v)),
                "{k}={v} in {line}"
            );
        }
    }
    assert_eq!(
        workloads,
        [
            "seed-large",
            "seed-small",
            "append",
            "append-large",
            "read",
            "durable",
            "open",
            "verify",
            "read-other-process"
        ]
    );
    let open = text
        .lines()
        .find(|l| l.starts_with("workload=open "))
        .context("open line")?;
    ensure!(open.contains(" opens=5 open_ms="), "{open}");
    ensure!(!text.contains('('), "{text}");
    Ok(())
}

/// `aiodiskdb --dir DIR bench` runs in DIR, as `bench --dir DIR` does.
#[test]
fn bench_takes_its_dir_before_the_command() -> Result<()> {
    let (_t, db) = temp_db()?;
    let d = s(&db);
    run(&["--dir", d, "bench", "--total-mb", "1", "-q"])?.expect_code(0)?;
    run(&["check", d])?.expect_code(0)?;
    run(&["--dir", d, "bench", "-q"])?.expect_error("is not empty")?;
    let r = run(&["--dir", d, "bench", "--dir", d])?.expect_code(2)?;
    ensure!(r.stderr.contains("--dir is given both"), "{}", r.stderr);
    Ok(())
}

/// `cargo doc` at the workspace root documents the library: no other documented target
/// is named `aiodiskdb` (the CLI binary's docs overwrote the library's).
#[test]
fn cargo_doc_documents_the_library() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .arg("--manifest-path")
        .arg(manifest)
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout)?;
    let mut documented = Vec::new();
    for package in meta["packages"].as_array().context("packages")? {
        for target in package["targets"].as_array().context("targets")? {
            if target["doc"] == true {
                documented.push((
                    target["name"].as_str().context("name")?.replace('-', "_"),
                    target["kind"].clone(),
                    package["name"].clone(),
                ));
            }
        }
    }
    let named: Vec<_> = documented
        .iter()
        .filter(|(name, _, _)| name == "aiodiskdb")
        .collect();
    ensure!(
        named.len() == 1 && named[0].1 == serde_json::json!(["lib"]),
        "documented targets named aiodiskdb: {named:?}"
    );
    Ok(())
}

/// Adds the three items the `verify` and `scan` tests use; their locations.
fn add_three(db: &Path) -> Result<Vec<String>> {
    [&b"hello"[..], b"world!", b"third item"]
        .into_iter()
        .map(|item| add(db, item))
        .collect()
}

/// Flips one bit of the stored byte at logical `position` of index 0 (its trim offset is
/// 0: the byte after the 24-byte header is position 0).
fn flip_byte(db: &Path, position: usize) -> Result<()> {
    let file = db.join("data00000.dat");
    let mut bytes = std::fs::read(&file)?;
    ensure!(bytes[4..8] == [0; 4], "trim offset is not 0");
    bytes[24 + position] ^= 0x01;
    std::fs::write(&file, &bytes)?;
    Ok(())
}

#[test]
fn verify_checks_every_item_of_a_healthy_directory() -> Result<()> {
    let (_t, db) = temp_db()?;
    let d = s(&db);
    add_three(&db)?;
    let before = snapshot(&db)?;
    let r = run(&["verify", d])?.expect_code(0)?;
    assert_eq!(
        r.text(),
        "ok: 1 data file, 3 items checked, 21 bytes checked, 0 unindexed bytes, no problems\n"
    );
    ensure!(
        r.stderr.is_empty(),
        "no progress bar off a terminal: {}",
        r.stderr
    );
    let j = run(&["--dir", d, "verify", "--json"])?
        .expect_code(0)?
        .json()?;
    assert_eq!(
        j,
        serde_json::json!({"dir": d, "ok": true, "files": 1, "items_checked": 3,
                           "bytes_checked": 21, "unindexed_bytes": 0, "remote_files": 0,
                           "problems": [], "refused": null})
    );
    run(&["verify", "-q", "--dir", d])?.expect_code(0)?;
    assert_eq!(snapshot(&db)?, before, "verify changed the directory");
    Ok(())
}

#[test]
fn verify_reports_a_flipped_byte_that_read_refuses() -> Result<()> {
    let (_t, db) = temp_db()?;
    let d = s(&db);
    let locs = add_three(&db)?;
    assert_eq!(locs[1], "0:5:6");
    flip_byte(&db, 5 + 2)?;
    let before = snapshot(&db)?;

    let r = run(&["verify", d])?.expect_code(3)?;
    let out = r.text();
    let lines: Vec<&str> = out.lines().collect();
    ensure!(lines.len() == 2, "one problem and the summary: {out}");
    ensure!(lines[0].starts_with("0:5:6: corrupt: "), "{out}");
    assert_eq!(
        lines[1],
        "damaged: 1 data file, 3 items checked, 21 bytes checked, 0 unindexed bytes, 1 problem"
    );
    ensure!(
        r.stderr.contains("verify found 1 problem in"),
        "{}",
        r.stderr
    );

    let j = run(&["verify", "--json", d])?.expect_code(3)?.json()?;
    assert_eq!(j["ok"], false);
    assert_eq!(j["items_checked"], 3);
    let problems = j["problems"].as_array().context("problems")?;
    ensure!(problems.len() == 1, "{j}");
    assert_eq!(problems[0]["index"], 0);
    assert_eq!(problems[0]["location"], "0:5:6");
    assert_eq!(problems[0]["kind"], "corrupt");
    ensure!(problems[0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("CRC32C")));

    let r = run(&["read", "0:5:6", d])?.expect_error("corrupted data at 0:5:6")?;
    ensure!(r.stdout.is_empty(), "altered bytes were printed");
    // The items around it read as they are.
    assert_eq!(run(&["read", "0:0:5", d])?.expect_code(0)?.stdout, b"hello");
    assert_eq!(
        run(&["read", "0:11:10", d])?.expect_code(0)?.stdout,
        b"third item"
    );
    assert_eq!(
        snapshot(&db)?,
        before,
        "verify or read changed the directory"
    );
    Ok(())
}

#[test]
fn scan_lists_the_locations_add_printed() -> Result<()> {
    let (_t, db) = temp_db()?;
    let d = s(&db);
    // 60-byte files take two 17-byte items each: indexes 0, 1 and 2.
    let mut locs = Vec::new();
    for i in 0..5 {
        let item = format!("item {i} of scan...");
        let r = aiodiskdb(&["add", d, "--max-file-size", "60"], item.as_bytes())?.expect_code(0)?;
        locs.push(r.text().trim().to_owned());
    }
    assert_eq!(locs[4], "2:0:17");
    let before = snapshot(&db)?;

    let all = run(&["scan", d])?.expect_code(0)?.text();
    assert_eq!(all.lines().collect::<Vec<_>>(), locs);
    let one = run(&["scan", "--index", "1", d])?.expect_code(0)?.text();
    assert_eq!(one.lines().collect::<Vec<_>>(), &locs[2..4]);
    let json = run(&["--dir", d, "scan", "--json"])?.expect_code(0)?.text();
    let mut from_json = Vec::new();
    for line in json.lines() {
        let j: Value = serde_json::from_str(line).with_context(|| line.to_owned())?;
        let loc = format!("{}:{}:{}", j["index"], j["position"], j["size"]);
        ensure!(j["location"] == loc, "{line}");
        from_json.push(loc);
    }
    assert_eq!(from_json, locs);
    // Each location reads back as `add` stored it.
    let r = run(&["read", &locs[3], d])?.expect_code(0)?;
    assert_eq!(r.stdout, b"item 3 of scan...");

    let r = run(&["scan", "--index", "7", d])?
        .expect_error("index 7 does not exist: there is no data file data00007.dat")?;
    ensure!(r.stdout.is_empty());
    run(&["scan", "--index", "x", d])?.expect_code(2)?;
    assert_eq!(snapshot(&db)?, before, "scan changed the directory");
    Ok(())
}

/// A crashed session is not recovered by `verify` or `scan`: they print its problem as
/// `check` does, exit 3 and change nothing; after `recover` they run.
#[test]
fn verify_and_scan_refuse_a_pending_recovery_and_change_nothing() -> Result<()> {
    let (_t, dir, loc) = crashed_dir()?;
    let d = s(&dir);
    let before = snapshot(&dir)?;

    let r = run(&["verify", d])?.expect_code(3)?;
    let out = r.text();
    ensure!(
        out.lines()
            .any(|l| l.contains(".aiodiskdb.data.state: recovery pending")),
        "{out}"
    );
    ensure!(out.contains("note: pending recovery"), "{out}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    ensure!(
        lines.len() == 1
            && lines[0].contains("recovery is pending in")
            && lines[0].contains("run `aiodiskdb recover`"),
        "{}",
        r.stderr
    );
    let j = run(&["verify", d, "--json"])?.expect_code(3)?.json()?;
    assert_eq!(j["ok"], false);
    assert_eq!(j["items_checked"], 0);
    let refused = &j["refused"];
    ensure!(
        refused["reason"]
            .as_str()
            .is_some_and(|r| r.contains("recovery is pending")),
        "{j}"
    );
    ensure!(
        refused["pending_recovery"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "{j}"
    );
    ensure!(
        refused["problems"][0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("recovery pending")),
        "{j}"
    );

    let r = run(&["scan", d])?.expect_code(3)?;
    ensure!(
        r.stdout.is_empty(),
        "scan's stdout is for locations: {}",
        r.text()
    );
    ensure!(r.stderr.contains("recovery pending"), "{}", r.stderr);
    run(&["scan", d, "--json"])?.expect_code(3)?;
    assert_eq!(
        snapshot(&dir)?,
        before,
        "verify or scan changed a crashed directory"
    );

    run(&["recover", d])?.expect_code(0)?;
    assert_eq!(
        run(&["scan", d])?.expect_code(0)?.text(),
        format!("{loc}\n")
    );
    let r = run(&["verify", d])?.expect_code(0)?;
    ensure!(
        r.text()
            .starts_with("ok: 1 data file, 1 item checked, 7 bytes checked"),
        "{}",
        r.text()
    );
    Ok(())
}

/// A directory without our commit record (the Python library's, or an empty one): `verify`
/// and `scan` read it read-only and write nothing (they refused it before read-only opens,
/// as the open wrote a commit record).
#[test]
fn verify_and_scan_read_a_directory_without_our_commit_record_unchanged() -> Result<()> {
    let (t, dir, expected) = fixture("basic")?;
    let d = s(&dir);
    let before = snapshot(&dir)?;
    let j = run(&["verify", d, "--json"])?.expect_code(0)?.json()?;
    let stored: u64 = expected["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter(|i| i["present"] == true)
        .map(|i| i["size"].as_u64().unwrap_or(0))
        .sum();
    // The Python library wrote no item index: every byte is read, none can be checked.
    assert_eq!(j["items_checked"], 0);
    assert_eq!(j["unindexed_bytes"], j["bytes_checked"]);
    assert_eq!(j["bytes_checked"], stored);
    // A range no item index covers is one location spanning it.
    assert_eq!(
        run(&["scan", d])?.expect_code(0)?.text(),
        format!("0:0:{stored}\n")
    );
    assert_eq!(
        snapshot(&dir)?,
        before,
        "verify or scan changed the directory"
    );
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty)?;
    run(&["verify", s(&empty)])?.expect_code(0)?;
    run(&["scan", s(&empty)])?.expect_code(0)?;
    ensure!(snapshot(&empty)?.is_empty());
    Ok(())
}

/// A directory the open refuses (a data file's header altered): `verify` prints the
/// problems as `check` does and exits 3.
#[test]
fn verify_reports_a_directory_the_open_refuses() -> Result<()> {
    let (_t, db) = temp_db()?;
    let d = s(&db);
    add_three(&db)?;
    let file = db.join("data00000.dat");
    let mut bytes = std::fs::read(&file)?;
    bytes[0] ^= 0xff;
    std::fs::write(&file, &bytes)?;
    let r = run(&["verify", d])?.expect_code(3)?;
    ensure!(
        r.text().contains("data00000.dat: wrong genesis bytes"),
        "{}",
        r.text()
    );
    ensure!(r.stderr.contains("verify cannot open"), "{}", r.stderr);
    let j = run(&["verify", d, "--json"])?.expect_code(3)?.json()?;
    ensure!(
        j["refused"]["problems"][0]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("data00000.dat")),
        "{j}"
    );
    run(&["scan", d])?.expect_code(3)?;
    Ok(())
}
