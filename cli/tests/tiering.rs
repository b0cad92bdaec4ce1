//! The CLI on tiered directories (feature `tiering`: `cargo test -p aiodiskdb-cli --features
//! tiering --test tiering`), against a real S3-compatible server on loopback:
//! `AIODISKDB_S3_ENDPOINT` (`.ci/run` starts moto's server and sets it); each run makes a
//! bucket of its own. Without it the test that needs it is skipped, except under `CI`,
//! where it fails. The built binary gets the endpoint and keys the way a user gives them:
//! the standard `AWS_*` variables.
//!
//! - [`tier_info_read_verify_scan_then_hydrate`]: a directory written by the library is
//!   tiered by `tier`; `info` shows where each index lives (without `--store`); `check`,
//!   `read`, `verify`, `scan` and `add` work with `--store`, and the reading ones fail on
//!   one line naming the `--store` to give without it; an object deleted behind its back
//!   is a problem for `check` and `verify`; `hydrate` brings every file back and deletes
//!   every object, after which the directory is read without `--store` (that the Python
//!   library opens a hydrated directory is `tests/tiering.rs`'s);
//! - [`store_usage_errors`]: a bad `--store`, `tier` and `hydrate` without it, `bench` with
//!   it (no server needed).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use aiodiskdb::{AioDiskDb, ItemLocation};
use anyhow::{ensure, Context, Result};
use serde_json::Value;

const PREFIX: &str = "node-1/blocks";

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn expect_code(self, code: i32) -> Result<Run> {
        ensure!(
            self.code == code,
            "expected exit {code}, got {}\nstdout: {}\nstderr: {}",
            self.code,
            self.stdout,
            self.stderr
        );
        Ok(self)
    }

    /// Exit 1 and one line `aiodiskdb: ...` on stderr with each of `needles`.
    fn expect_error(self, needles: &[&str]) -> Result<Run> {
        let run = self.expect_code(1)?;
        let lines: Vec<&str> = run.stderr.lines().collect();
        ensure!(
            lines.len() == 1
                && lines[0].starts_with("aiodiskdb: ")
                && needles.iter().all(|n| lines[0].contains(n)),
            "expected one error line with {needles:?}, got {:?}",
            run.stderr
        );
        Ok(run)
    }

    fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.stdout).with_context(|| format!("not JSON: {}", self.stdout))
    }
}

/// Runs the binary with the S3 variables of `endpoint` (none: no server).
fn cli(endpoint: Option<&str>, args: &[&str]) -> Result<Run> {
    cli_with(endpoint, args, b"")
}

/// [`cli`] with `stdin`.
fn cli_with(endpoint: Option<&str>, args: &[&str], stdin: &[u8]) -> Result<Run> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aiodiskdb"));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("AWS_ENDPOINT")
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");
    if let Some(e) = endpoint {
        cmd.env("AWS_ENDPOINT_URL", e);
    }
    let mut child = cmd.spawn()?;
    let mut input = child.stdin.take().context("piped stdin")?;
    // The command may not read stdin at all; a closed pipe is fine.
    let _ = input.write_all(stdin);
    drop(input);
    let out = child.wait_with_output()?;
    Ok(Run {
        code: out.status.code().context("killed by a signal")?,
        stdout: String::from_utf8(out.stdout)?,
        stderr: String::from_utf8(out.stderr)?,
    })
}

/// The value of `var`, or `None` to skip (outside CI); under CI a missing one fails.
fn required(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set: .ci/run starts moto_server and sets it")
        }
        _ => {
            eprintln!("skipped: {var} is not set (see cli/tests/tiering.rs)");
            None
        }
    }
}

/// One plain HTTP request to the server: status and body. moto checks no signature, but
/// answers an anonymous object request with 403: the request names a key, unsigned.
fn http(endpoint: &str, method: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/s3/aws4_request, \
         SignedHeaders=host, Signature=0\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("an HTTP answer")?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("an HTTP status")?;
    ensure!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "a chunked answer: {head}"
    );
    Ok((status, answer[split + 4..].to_vec()))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Writes items of 100..1200 bytes with the library until `files` data files are sealed.
fn write(dir: &Path, files: u32) -> Result<Vec<(ItemLocation, Vec<u8>)>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let db = AioDiskDb::builder(dir)
            .max_file_size(4096)
            .max_buffer_size(4096)
            .open()
            .await?;
        let mut items = Vec::new();
        let mut k = 0u32;
        while items
            .last()
            .is_none_or(|(l, _): &(ItemLocation, _)| l.index < files)
        {
            let len = 100 + (k * 397) % 1100;
            let data: Vec<u8> = (0..len)
                .map(|i| (i ^ k.wrapping_mul(31)).to_le_bytes()[0])
                .collect();
            items.push((db.add(data.clone()).await?, data));
            k += 1;
        }
        db.stop().await?;
        Ok(items)
    })
}

/// The server, the bucket of this run, its `--store` URL and the data directory.
struct Setup {
    endpoint: String,
    bucket: String,
    url: String,
    dir: String,
}

impl Setup {
    fn with_store(&self, args: &[&str]) -> Result<Run> {
        cli(
            Some(&self.endpoint),
            &[args, &["--store", &self.url, &self.dir]].concat(),
        )
    }

    fn without_store(&self, args: &[&str]) -> Result<Run> {
        cli(None, &[args, &[self.dir.as_str()]].concat())
    }
}

#[test]
fn tier_info_read_verify_scan_then_hydrate() -> Result<()> {
    let Some(endpoint) = required("AIODISKDB_S3_ENDPOINT") else {
        return Ok(());
    };
    let bucket = format!("aiodiskdb-cli-{}", std::process::id());
    let (status, _) = http(&endpoint, "PUT", &format!("/{bucket}"), b"")?;
    ensure!(status == 200, "create bucket: {status}");
    let temp = tempfile::tempdir()?;
    let dir = temp.path().join("db");
    let mut items = write(&dir, 5)?;
    let setup = Setup {
        url: format!("s3://{bucket}/{PREFIX}"),
        endpoint,
        bucket,
        dir: s(&dir).to_owned(),
    };
    tier_and_info(&setup)?;
    tiered_reads(&setup, &mut items)?;
    missing_object(&setup)?;
    hydrate(&setup, &items)
}

/// `tier` uploads all but the newest sealed file; `info` shows where each index lives,
/// without --store.
fn tier_and_info(setup: &Setup) -> Result<()> {
    let url = &setup.url;
    // Indexes 0..=4 sealed, 5 the head: keeping 1, four go.
    let r = setup
        .with_store(&["tier", "--keep-local", "1"])?
        .expect_code(0)?;
    for index in 0..4 {
        let line = format!("to {PREFIX}/data{index:05}.dat");
        ensure!(
            r.stdout.contains(&format!("tiered index {index} (")) && r.stdout.contains(&line),
            "{}",
            r.stdout
        );
    }
    ensure!(
        r.stdout.contains(&format!("4 files tiered to {url}")),
        "{}",
        r.stdout
    );
    let again = setup
        .with_store(&["tier", "--keep-local", "1", "--json"])?
        .expect_code(0)?
        .json()?;
    assert_eq!(again, serde_json::json!({"store": url, "tiered": []}));
    let info = setup
        .without_store(&["info", "--json"])?
        .expect_code(0)?
        .json()?;
    let remote: Vec<(u64, String)> = info["remote_files"]
        .as_array()
        .context("remote_files")?
        .iter()
        .map(|f| (f["index"].as_u64().unwrap_or(99), f["key"].to_string()))
        .collect();
    assert_eq!(
        remote,
        (0..4)
            .map(|i| (i, format!("\"{PREFIX}/data{i:05}.dat\"")))
            .collect::<Vec<_>>()
    );
    assert_eq!(info["remote"]["url"], url.as_str());
    assert_eq!(info["files"].as_array().map(Vec::len), Some(2), "{info}");
    let table = setup.without_store(&["info"])?.expect_code(0)?.stdout;
    for needle in [
        "where",
        &format!("{PREFIX}/data00000.dat"),
        "local",
        &format!("--store {url}"),
    ] {
        ensure!(table.contains(needle), "info lacks {needle:?}:\n{table}");
    }
    Ok(())
}

/// Without --store, `check` notes what it did not check and the others refuse on one line
/// naming the --store to give; with it, `check`, `read`, `verify`, `scan` and `add` work.
fn tiered_reads(setup: &Setup, items: &mut Vec<(ItemLocation, Vec<u8>)>) -> Result<()> {
    let url = &setup.url;
    let check = setup.without_store(&["check"])?.expect_code(0)?.stdout;
    ensure!(
        check.contains("not checked") && check.contains(url),
        "{check}"
    );
    let loc = items[0].0.to_string();
    for args in [vec!["read", loc.as_str()], vec!["verify"], vec!["scan"]] {
        setup
            .without_store(&args)?
            .expect_error(&["no --store given", "data00000.dat", url])?;
    }
    let check = setup.with_store(&["check"])?.expect_code(0)?.stdout;
    ensure!(check.contains("and 4 on object storage"), "{check}");
    for (loc, data) in [&items[0], &items[items.len() / 2], &items[items.len() - 1]] {
        let r = setup
            .with_store(&["read", "--hex", &loc.to_string()])?
            .expect_code(0)?;
        assert_eq!(r.stdout.trim(), hex(data), "{loc}");
    }
    let v = setup
        .with_store(&["verify", "--json"])?
        .expect_code(0)?
        .json()?;
    assert_eq!(
        (v["ok"].as_bool(), v["remote_files"].as_u64()),
        (Some(true), Some(4))
    );
    let listed = setup.with_store(&["scan"])?.expect_code(0)?.stdout;
    let want: Vec<String> = items.iter().map(|(l, _)| l.to_string()).collect();
    assert_eq!(listed.lines().collect::<Vec<_>>(), want);
    // Written to with --store (uploads happen only by `tier`).
    let data = b"added to a tiered directory".to_vec();
    let added = cli_with(
        Some(&setup.endpoint),
        &["add", "--max-file-size", "4096", "--store", url, &setup.dir],
        &data,
    )?
    .expect_code(0)?;
    items.push((added.stdout.trim().parse()?, data));
    Ok(())
}

/// An object deleted behind the directory's back: `check` and `verify` report it.
fn missing_object(setup: &Setup) -> Result<()> {
    let key = format!("/{}/{PREFIX}/data00001.dat", setup.bucket);
    let (status, object) = http(&setup.endpoint, "GET", &key, b"")?;
    ensure!(status == 200, "get object: {status}");
    let (status, _) = http(&setup.endpoint, "DELETE", &key, b"")?;
    ensure!(status == 204, "delete object: {status}");
    let check = setup.with_store(&["check"])?.expect_code(3)?.stdout;
    ensure!(
        check.contains("data00001.dat") && check.contains("is missing"),
        "{check}"
    );
    let verify = setup.with_store(&["verify"])?.expect_code(3)?.stdout;
    ensure!(verify.contains("index 1: missing"), "{verify}");
    let (status, _) = http(&setup.endpoint, "PUT", &key, &object)?;
    ensure!(status == 200, "put object back: {status}");
    Ok(())
}

/// `hydrate` brings every file back and deletes every object: a plain directory again,
/// read without --store.
fn hydrate(setup: &Setup, items: &[(ItemLocation, Vec<u8>)]) -> Result<()> {
    let r = setup.with_store(&["hydrate"])?.expect_code(0)?;
    for index in 0..4 {
        ensure!(
            r.stdout.contains(&format!("hydrated index {index} (")),
            "{}",
            r.stdout
        );
    }
    ensure!(
        r.stdout.contains("4 files back in") && r.stdout.contains("opens without --store"),
        "{}",
        r.stdout
    );
    let list = format!("/{}?list-type=2", setup.bucket);
    let (status, listing) = http(&setup.endpoint, "GET", &list, b"")?;
    ensure!(status == 200, "list: {status}");
    let listing = String::from_utf8_lossy(&listing);
    ensure!(!listing.contains("<Key>"), "objects left: {listing}");
    let info = setup
        .without_store(&["info", "--json"])?
        .expect_code(0)?
        .json()?;
    assert_eq!(info["remote_files"], serde_json::json!([]));
    assert_eq!(info["remote"], Value::Null);
    setup.without_store(&["check"])?.expect_code(0)?;
    let v = setup
        .without_store(&["verify", "--json"])?
        .expect_code(0)?
        .json()?;
    assert_eq!(
        (v["ok"].as_bool(), v["remote_files"].as_u64()),
        (Some(true), Some(0))
    );
    for (loc, data) in items {
        let r = setup
            .without_store(&["read", "--hex", &loc.to_string()])?
            .expect_code(0)?;
        assert_eq!(r.stdout.trim(), hex(data), "{loc}");
    }
    let r = setup.with_store(&["hydrate"])?.expect_code(0)?;
    ensure!(
        r.stdout.contains("nothing on object storage"),
        "{}",
        r.stdout
    );
    Ok(())
}

#[test]
fn store_usage_errors() -> Result<()> {
    let t = tempfile::tempdir()?;
    let dir = t.path().join("db");
    let d = s(&dir);
    write(&dir, 1)?;
    cli(None, &["info", "--store", "http://bucket/p", d])?
        .expect_error(&["--store http://bucket/p", "s3://bucket[/prefix]"])?;
    for command in ["tier", "hydrate"] {
        let r = cli(None, &[command, d])?.expect_code(2)?;
        ensure!(
            r.stderr.contains("needs the object store") && r.stderr.contains("--store"),
            "{}",
            r.stderr
        );
    }
    // The bench's --store belongs to its `tiered` workload, before or after the command.
    for args in [
        &["bench", "--store", "s3://b/p"][..],
        &["--store", "s3://b/p", "bench"][..],
    ] {
        let r = cli(None, args)?.expect_code(1)?;
        ensure!(
            r.stderr
                .contains("--store applies to --workload tiered only"),
            "{}",
            r.stderr
        );
    }
    cli(
        None,
        &["--store", "s3://b/p", "bench", "--store", "s3://b/q"],
    )?
    .expect_code(2)?;
    let help = cli(None, &["tier", "--help"])?.expect_code(0)?.stdout;
    for needle in ["--keep-local", "--store", "AWS_ENDPOINT_URL", "\"tiered\""] {
        ensure!(help.contains(needle), "tier --help lacks {needle:?}");
    }
    Ok(())
}
