//! One result per (engine, workload): a text line prefixed by the engine's name, or one
//! JSON object with the field names of `aiodiskdb bench --json` plus `"engine"`.

use std::io::{self, Write as _};

use serde::Serialize;

use crate::data::SeedFigures;

/// One (engine, workload) result.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Report {
    Seed(SeedReport),
    Append(AppendReport),
    Read(ReadReport),
    Durable(DurableReport),
    Open(OpenReport),
    /// The workload failed: no figure.
    Failed {
        engine: &'static str,
        workload: &'static str,
        error: String,
    },
}

#[derive(Debug, Serialize)]
pub(crate) struct SeedReport {
    pub(crate) engine: &'static str,
    pub(crate) workload: &'static str,
    #[serde(flatten)]
    pub(crate) figures: SeedFigures,
}

#[derive(Debug, Serialize)]
pub(crate) struct AppendReport {
    pub(crate) engine: &'static str,
    pub(crate) workload: &'static str,
    pub(crate) items: u64,
    pub(crate) item_bytes: u64,
    pub(crate) secs: f64,
    pub(crate) adds_per_s: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct ReadRun {
    pub(crate) readers: usize,
    pub(crate) reads: u64,
    pub(crate) secs: f64,
    pub(crate) reads_per_s: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct ReadReport {
    pub(crate) engine: &'static str,
    pub(crate) workload: &'static str,
    pub(crate) items: u64,
    pub(crate) item_bytes: u64,
    pub(crate) runs: Vec<ReadRun>,
}

#[derive(Debug, Serialize)]
pub(crate) struct DurableReport {
    pub(crate) engine: &'static str,
    pub(crate) workload: &'static str,
    pub(crate) tasks: usize,
    pub(crate) item_bytes: u64,
    pub(crate) items: u64,
    /// Synced commits, when the engine tells (`null` otherwise).
    pub(crate) flushes: Option<u64>,
    pub(crate) secs: f64,
    pub(crate) items_per_s: f64,
    pub(crate) flushes_per_s: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct OpenReport {
    pub(crate) engine: &'static str,
    pub(crate) workload: &'static str,
    /// Items of `item_bytes` written before the opens.
    pub(crate) items: u64,
    pub(crate) item_bytes: u64,
    /// Files in the store's directory after the writes.
    pub(crate) files: u64,
    pub(crate) create_secs: f64,
    pub(crate) opens: usize,
    /// Median.
    pub(crate) open_ms: f64,
    pub(crate) first_open_ms: f64,
}

impl Report {
    /// Prints one JSON line.
    pub(crate) fn print_json(&self) -> anyhow::Result<()> {
        let mut out = io::stdout().lock();
        serde_json::to_writer(&mut out, self)?;
        out.write_all(b"\n")?;
        out.flush()?;
        Ok(())
    }

    /// Prints text lines, each prefixed by the engine's name.
    pub(crate) fn print_text(&self) -> io::Result<()> {
        let mut out = io::stdout().lock();
        match self {
            Report::Seed(r) => {
                let prefix = format!("{} {}:", r.engine, r.workload);
                writeln!(out, "{prefix} {}", r.figures.seed_line())?;
                writeln!(out, "{prefix} {}", r.figures.reread_line())?;
            }
            Report::Append(r) => writeln!(
                out,
                "{} append items={} size={} secs={:.3} adds_per_s={:.0} (durable close included)",
                r.engine, r.items, r.item_bytes, r.secs, r.adds_per_s
            )?,
            Report::Read(r) => {
                for run in &r.runs {
                    writeln!(
                        out,
                        "{} read items={} size={} readers={} reads={} secs={:.3} reads_per_s={:.0}",
                        r.engine,
                        r.items,
                        r.item_bytes,
                        run.readers,
                        run.reads,
                        run.secs,
                        run.reads_per_s
                    )?;
                }
            }
            Report::Durable(r) => {
                let flushes = r
                    .flushes
                    .map_or_else(|| "n/a".to_owned(), |f| f.to_string());
                let flushes_per_s = r
                    .flushes_per_s
                    .map_or_else(|| "n/a".to_owned(), |f| format!("{f:.0}"));
                writeln!(
                    out,
                    "{} durable tasks={} size={} items={} flushes={flushes} secs={:.3} \
                     items_per_s={:.0} flushes_per_s={flushes_per_s}",
                    r.engine, r.tasks, r.item_bytes, r.items, r.secs, r.items_per_s
                )?;
            }
            Report::Open(r) => writeln!(
                out,
                "{} open items={} size={} files={} open_ms={:.2} (median of {}) \
                 first_open_ms={:.2} create_secs={:.3}",
                r.engine,
                r.items,
                r.item_bytes,
                r.files,
                r.open_ms,
                r.opens,
                r.first_open_ms,
                r.create_secs
            )?,
            Report::Failed {
                engine,
                workload,
                error,
            } => writeln!(out, "{engine} {workload} FAILED: {error}")?,
        }
        out.flush()
    }
}
