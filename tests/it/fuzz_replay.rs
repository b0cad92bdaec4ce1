//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) and the kept regression
//! inputs (`fuzz/regressions/<target>/`) through the fuzz targets' own code: the target
//! logic lives in `fuzz/common/` and is included here unchanged.
//!
//! A panic anywhere in the library while a case runs (including in its blocking-pool
//! threads, where tokio would otherwise turn it into an error) fails the test: cases run
//! on threads named `aiodiskdb-fuzz-*`, and a panic hook counts panics on those threads.

#[path = "../../fuzz/common/location.rs"]
mod location;
#[path = "../../fuzz/common/open_dir.rs"]
mod open_dir;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

use crate::common::TestResult;

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts panics on the fuzz-replay threads, then defers to the previous hook.
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("aiodiskdb-fuzz"));
            if ours {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

/// The corpus and regression files of `target`, sorted.
fn inputs(target: &str) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in [
        root.join("corpus").join(target),
        root.join("regressions").join(target),
    ] {
        if !dir.exists() {
            continue;
        }
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_file() {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Runs `check` on every input of `target` on a named thread; returns the violations and
/// the per-input results.
fn replay<T: Send + 'static>(
    target: &str,
    check: fn(&[u8]) -> Result<T, String>,
) -> Result<(Vec<T>, Vec<String>), Box<dyn std::error::Error>> {
    count_panics();
    let files = inputs(target)?;
    let panics_before = PANICS.load(Ordering::SeqCst);
    let worker = std::thread::Builder::new()
        .name(format!("aiodiskdb-fuzz-replay-{target}"))
        .spawn(move || {
            let mut results = Vec::new();
            let mut violations = Vec::new();
            for file in &files {
                let data = match std::fs::read(file) {
                    Ok(d) => d,
                    Err(e) => {
                        violations.push(format!("{}: {e}", file.display()));
                        continue;
                    }
                };
                match std::panic::catch_unwind(|| check(&data)) {
                    Ok(Ok(r)) => results.push(r),
                    Ok(Err(v)) => violations.push(format!("{}: {v}", file.display())),
                    Err(_) => violations.push(format!("{}: panicked", file.display())),
                }
            }
            (results, violations)
        })?;
    let (results, mut violations) = worker
        .join()
        .map_err(|_| format!("the {target} replay thread panicked"))?;
    let panics = PANICS.load(Ordering::SeqCst) - panics_before;
    if panics > 0 {
        violations.push(format!(
            "{panics} panic(s) in the library while replaying {target}"
        ));
    }
    Ok((results, violations))
}

#[test]
fn open_dir_corpus_replays() -> TestResult {
    let (outcomes, violations) = replay("open_dir", open_dir::run)?;
    let mut tally: BTreeMap<open_dir::Outcome, usize> = BTreeMap::new();
    for o in &outcomes {
        *tally.entry(*o).or_default() += 1;
    }
    eprintln!("open_dir corpus: {tally:?}");
    if !violations.is_empty() {
        return Err(format!("open_dir violations:\n{}", violations.join("\n")).into());
    }
    // The corpus must reach both sides: directories that open and ones refused by type.
    if !tally.contains_key(&open_dir::Outcome::Opened) || tally.len() < 4 {
        return Err(format!("the open_dir corpus is too shallow: {tally:?}").into());
    }
    Ok(())
}

#[test]
fn location_corpus_replays() -> TestResult {
    let (results, violations) = replay("location", location::run)?;
    if !violations.is_empty() {
        return Err(format!("location violations:\n{}", violations.join("\n")).into());
    }
    if results.len() < 5 {
        return Err(format!("the location corpus has only {} inputs", results.len()).into());
    }
    Ok(())
}

/// Generated inputs beyond the corpus: every prefix of a rich seed decodes to some
/// directory, and none may break a property.
#[test]
fn open_dir_prefixes_of_a_seed() -> TestResult {
    let files = inputs("open_dir")?;
    let Some(longest) = files
        .iter()
        .filter_map(|f| std::fs::read(f).ok())
        .max_by_key(Vec::len)
    else {
        return Err("empty open_dir corpus".into());
    };
    let step = (longest.len() / 40).max(1);
    let prefixes: Vec<Vec<u8>> = (0..longest.len())
        .step_by(step)
        .map(|n| longest[..n].to_vec())
        .collect();
    count_panics();
    let before = PANICS.load(Ordering::SeqCst);
    let worker = std::thread::Builder::new()
        .name("aiodiskdb-fuzz-prefixes".into())
        .spawn(move || {
            prefixes
                .iter()
                .filter_map(|p| open_dir::run(p).err().map(|v| format!("{p:02x?}: {v}")))
                .collect::<Vec<_>>()
        })?;
    let violations = worker.join().map_err(|_| "prefix replay panicked")?;
    if PANICS.load(Ordering::SeqCst) != before {
        return Err("the library panicked on a prefix input".into());
    }
    if !violations.is_empty() {
        return Err(violations.join("\n").into());
    }
    Ok(())
}

#[test]
fn harness_crc_is_crc32c() {
    for data in [&b""[..], b"a", b"123456789", &[0xffu8; 44]] {
        assert_eq!(open_dir::crc32c(data), crc32c::crc32c(data));
    }
}

/// Debugging aid: `FUZZ_INPUT=path cargo test --test it fuzz_replay::describe_input --
/// --ignored --nocapture` prints what an `open_dir` input decodes to and runs it.
#[test]
#[ignore = "debugging aid; needs FUZZ_INPUT"]
fn describe_input() -> TestResult {
    let path = std::env::var("FUZZ_INPUT").map_err(|_| "set FUZZ_INPUT to an input file")?;
    let data = std::fs::read(path)?;
    eprintln!("{}", open_dir::describe(&data));
    eprintln!("result: {:?}", open_dir::run(&data));
    Ok(())
}
