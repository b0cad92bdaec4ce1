//! Countdown fault injection (`RELIABILITY.md`): the seeded workloads of [`super::crash`]
//! run with the n-th storage operation failing, for every n, every error kind, once or for
//! ever; each run must end in a typed error, poison the handle (no `Written` for the failed
//! batch, no write accepted after it, durable data still served), and reopen consistent
//! with the model once the device works again.

use super::crash::{check, check_append, workload, workload_outcome, St};
use super::sim::{Bug, Fault, FaultKind, SimFs};
use crate::error::Error;
use crate::events::Event;

pub(crate) const KINDS: [FaultKind; 4] = [
    FaultKind::Eio,
    FaultKind::Enospc,
    FaultKind::ShortWrite,
    FaultKind::FailedSync,
];

/// Whether an error is one a caller can act on (not a panic surfacing as a failed task).
fn typed(e: &Error) -> Result<(), String> {
    let text = e.to_string();
    if text.contains("task failed") {
        return Err(format!("a task panicked: {text}"));
    }
    match e {
        Error::Io { .. }
        | Error::InvalidDbState { .. }
        | Error::NotRunning
        | Error::FilesInconsistency { .. } => Ok(()),
        other => Err(format!("unexpected error type: {other:?}")),
    }
}

/// Runs the workload with `fault`; checks the contract; returns whether it fired.
pub(crate) fn run_one(
    seed: u64,
    steps: usize,
    fault: Fault,
    bug: Option<Bug>,
) -> Result<bool, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fs = SimFs::new();
    fs.set_bug(bug);
    fs.set_fault(Some(fault));
    let out = rt.block_on(workload_outcome(fs.clone(), seed, steps));
    if fs.faults_fired() == 0 {
        return Ok(false);
    }
    let ctx = |e: String| format!("seed {seed} {fault:?}: {e}");
    let Some(error) = &out.error else {
        return Err(ctx("an injected fault was not reported".into()));
    };
    typed(error).map_err(ctx)?;
    let m = &out.model;
    // No `Written` for data of a failed batch.
    if let Some(ev) = out.events[out.events_before_failure..]
        .iter()
        .find(|e| matches!(e, Event::Written { .. }))
    {
        return Err(ctx(format!("{ev:?} for a batch that failed")));
    }
    if let Some(db) = &out.db {
        rt.block_on(async {
            // Poisoned (or stopped): writes refused, durable data still readable.
            if db.is_running() {
                return Err(ctx("still running after a failed write".into()));
            }
            if db.add(&b"after"[..]).await.is_ok() {
                return Err(ctx("a write was accepted after a failure".into()));
            }
            if !out.events.iter().any(|e| matches!(e, Event::Failed { .. }))
                && !matches!(error, Error::NotRunning)
            {
                return Err(ctx("no Failed event".into()));
            }
            let device_dead = fault.persistent && fault.kind == FaultKind::Eio;
            for it in m
                .items
                .iter()
                .filter(|i| i.st == St::Durable && !device_dead)
                .take(20)
            {
                match db.read(it.loc).await {
                    Ok(Some(b)) if b[..] == it.data[..] => {}
                    Err(Error::NotRunning) => break,
                    other => {
                        return Err(ctx(format!("durable {} not served: {other:?}", it.loc)));
                    }
                }
            }
            Ok(())
        })?;
    }
    drop(out.db);
    drop(rt);
    // The device works again: reopen must be consistent with the model.
    fs.set_fault(None);
    check(&fs, m).map_err(|e| ctx(format!("reopen: {e}")))?;
    check_append(&fs, m).map_err(|e| ctx(format!("append after reopen: {e}")))?;
    Ok(true)
}

/// Every operation of the workload, every kind, transient and persistent.
pub(crate) fn countdown(seed: u64, steps: usize, bug: Option<Bug>) -> Result<u64, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let full = SimFs::new();
    rt.block_on(workload(full.clone(), seed, steps));
    drop(rt);
    let mut fired = 0;
    for at in 0..full.ops() {
        for kind in KINDS {
            for persistent in [false, true] {
                if run_one(
                    seed,
                    steps,
                    Fault {
                        at,
                        kind,
                        persistent,
                    },
                    bug,
                )? {
                    fired += 1;
                }
            }
        }
    }
    Ok(fired)
}

fn countdown_range(first: u64) {
    let n = std::env::var("AIODISKDB_FAULT_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6u64);
    let mut fired = 0;
    for seed in first * 1000..first * 1000 + n {
        fired += countdown(seed, 60, None).unwrap();
    }
    eprintln!("fault injection [{first}]: {n} workloads, {fired} faults injected, all typed, 0 violations");
    assert!(fired > 1000, "{fired}");
}

#[test]
fn every_fault_is_typed_poisons_and_reopens_consistently_a() {
    countdown_range(1);
}

#[test]
fn every_fault_is_typed_poisons_and_reopens_consistently_b() {
    countdown_range(2);
}

#[test]
fn fault_harness_catches_retry_after_failed_fsync() {
    let caught = (0..4).find_map(|seed| countdown(seed, 60, Some(Bug::RetryFailedSync)).err());
    eprintln!("RetryFailedSync: {caught:?}");
    assert!(caught.is_some(), "retrying a failed fsync was not caught");
}
