//! One result per workload run: text lines, or one JSON object (the shapes are listed in
//! `aiodiskdb bench --help` and `aiodiskdb-peers --help`). aiodiskdb's results carry the
//! limit each workload was measured against and the ratio to it; a peer's carry the
//! engine's name first, and no limit. Optional parts are left out of the object, so each
//! binary's objects keep their keys, in their order.

use std::io::{self, Write as _};

use serde::Serialize;

use crate::data::SeedFigures;

/// The result of one workload run.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Report {
    /// `seed-large`, `seed-small`.
    Seed(SeedReport),
    /// `append`, `append-large`.
    Append(AppendReport),
    /// `read`.
    Read(ReadReport),
    /// `durable`.
    Durable(DurableReport),
    /// `open`.
    Open(OpenReport),
    /// The workload failed: no figure.
    Failed {
        /// The engine it ran against.
        engine: &'static str,
        /// The workload.
        workload: &'static str,
        /// The error, its causes joined with ": ".
        error: String,
    },
}

/// The figures of a seed workload.
#[derive(Debug, Serialize)]
pub struct SeedReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) engine: Option<&'static str>,
    pub(crate) workload: &'static str,
    #[serde(flatten)]
    pub(crate) figures: SeedFigures,
    #[serde(flatten)]
    pub(crate) limit: Option<SeedLimit>,
}

/// What a seed workload is compared with.
#[derive(Debug, Serialize)]
pub(crate) struct SeedLimit {
    /// The same bytes with plain writes + fdatasync (see `limits::write_limit`).
    pub(crate) limit_secs: f64,
    pub(crate) limit_mb_per_s: f64,
    pub(crate) ratio: f64,
    /// Peak resident memory of the whole process during the write phase.
    pub(crate) peak_rss_mib: Option<f64>,
    /// What the peak may reach: twice the buffer size plus 64 MiB.
    pub(crate) peak_rss_bound_mib: f64,
}

/// The figures of `append` and `append-large`.
#[derive(Debug, Serialize)]
pub struct AppendReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) engine: Option<&'static str>,
    pub(crate) workload: &'static str,
    pub(crate) items: u64,
    pub(crate) item_bytes: u64,
    #[serde(flatten)]
    pub(crate) runs: AppendRuns,
    /// What the engine calls its close, for the text line.
    #[serde(skip)]
    pub(crate) close: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum AppendRuns {
    /// One run in the engine's default configuration, no limit.
    One(AppendRun),
    /// A run per configuration, compared with the same bytes written with plain writes +
    /// fdatasync (see `limits::write_limit`).
    Compared {
        runs: Vec<AppendRun>,
        limit_secs: f64,
        limit_adds_per_s: f64,
    },
}

#[derive(Debug, Serialize)]
pub(crate) struct AppendRun {
    #[serde(flatten)]
    pub(crate) config: Option<RunConfig>,
    pub(crate) secs: f64,
    pub(crate) adds_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ratio: Option<f64>,
}

/// An aiodiskdb configuration of `append`: the default one, or `max_buffer_items` raised
/// so that the byte threshold governs flushes.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct RunConfig {
    pub(crate) config: &'static str,
    pub(crate) max_buffer_items: usize,
}

/// The figures of `read`.
#[derive(Debug, Serialize)]
pub struct ReadReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) engine: Option<&'static str>,
    pub(crate) workload: &'static str,
    pub(crate) items: u64,
    pub(crate) item_bytes: u64,
    pub(crate) runs: Vec<ReadRun>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ReadRun {
    pub(crate) readers: usize,
    pub(crate) reads: u64,
    pub(crate) secs: f64,
    pub(crate) reads_per_s: f64,
    /// The same reads with plain pread from as many threads.
    #[serde(flatten)]
    pub(crate) limit: Option<ReadLimit>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ReadLimit {
    pub(crate) limit_secs: f64,
    pub(crate) limit_reads_per_s: f64,
    pub(crate) ratio: f64,
}

/// The figures of `durable`.
#[derive(Debug, Serialize)]
pub struct DurableReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) engine: Option<&'static str>,
    pub(crate) workload: &'static str,
    pub(crate) tasks: usize,
    pub(crate) item_bytes: u64,
    pub(crate) items: u64,
    /// Synced commits, when the engine tells (`null` otherwise).
    pub(crate) flushes: Option<u64>,
    pub(crate) secs: f64,
    pub(crate) items_per_s: f64,
    pub(crate) flushes_per_s: Option<f64>,
    #[serde(flatten)]
    pub(crate) limit: Option<DurableLimit>,
}

/// One append of `tasks` items plus one fdatasync, in a loop on one thread.
#[derive(Debug, Serialize)]
pub(crate) struct DurableLimit {
    pub(crate) limit_batches: u64,
    pub(crate) limit_secs: f64,
    pub(crate) limit_items_per_s: f64,
    pub(crate) ratio: f64,
}

/// The figures of `open`.
#[derive(Debug, Serialize)]
pub struct OpenReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) engine: Option<&'static str>,
    pub(crate) workload: &'static str,
    /// What the store holds, when it was written with items (a peer's `open`).
    #[serde(flatten)]
    pub(crate) stored: Option<Stored>,
    /// Files in the directory: aiodiskdb's data files of one 100 B item each, or the
    /// files of a peer's store.
    pub(crate) files: u64,
    pub(crate) create_secs: f64,
    pub(crate) opens: usize,
    /// Median.
    pub(crate) open_ms: f64,
    pub(crate) first_open_ms: f64,
    #[serde(flatten)]
    pub(crate) more: Option<MoreOpens>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Stored {
    pub(crate) items: u64,
    pub(crate) item_bytes: u64,
}

/// aiodiskdb's other directories.
#[derive(Debug, Serialize)]
pub(crate) struct MoreOpens {
    /// The same number of files holding `big_file_bytes` each.
    pub(crate) big_file_bytes: u64,
    pub(crate) big_open_ms: f64,
    /// A directory of 100,000 items of 1 KiB in the default configuration, as the peers'
    /// `open` workload stores.
    pub(crate) items_open_ms: f64,
}

/// `ENGINE ` before a text line of a peer's report, nothing for ours.
fn lead(engine: Option<&str>) -> String {
    engine.map(|e| format!("{e} ")).unwrap_or_default()
}

impl Report {
    /// Prints one JSON line (`json`) or the text lines.
    ///
    /// # Errors
    /// Writing to stdout failed (a closed pipe is an `io::ErrorKind::BrokenPipe`).
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        let mut out = io::stdout().lock();
        if json {
            serde_json::to_writer(&mut out, self)?;
            out.write_all(b"\n")?;
        } else {
            self.write_text(&mut out)?;
        }
        out.flush()?;
        Ok(())
    }

    fn write_text(&self, out: &mut impl io::Write) -> io::Result<()> {
        match self {
            Report::Seed(r) => {
                let prefix = r
                    .engine
                    .map(|e| format!("{e} {}: ", r.workload))
                    .unwrap_or_default();
                writeln!(out, "{prefix}{}", r.figures.seed_line())?;
                writeln!(out, "{prefix}{}", r.figures.reread_line())?;
                if let Some(l) = &r.limit {
                    writeln!(
                        out,
                        "Limit: the same bytes with plain writes + fdatasync: {:.2}s \
                         ({:.2}MB/s), ratio {:.2}; peak RSS {} (bound {:.0} MiB)",
                        l.limit_secs,
                        l.limit_mb_per_s,
                        l.ratio,
                        l.peak_rss_mib
                            .map_or_else(|| "unknown".to_owned(), |m| format!("{m:.1} MiB")),
                        l.peak_rss_bound_mib
                    )?;
                }
            }
            Report::Append(r) => r.write_text(out)?,
            Report::Read(r) => {
                for run in &r.runs {
                    let limit = run.limit.as_ref().map_or_else(String::new, |l| {
                        format!(
                            " limit_reads_per_s={:.0} ratio={:.2}",
                            l.limit_reads_per_s, l.ratio
                        )
                    });
                    writeln!(
                        out,
                        "{}read items={} size={} readers={} reads={} secs={:.3} \
                         reads_per_s={:.0}{limit}",
                        lead(r.engine),
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
                let limit = r.limit.as_ref().map_or_else(String::new, |l| {
                    format!(
                        " limit_items_per_s={:.0} ratio={:.2}",
                        l.limit_items_per_s, l.ratio
                    )
                });
                writeln!(
                    out,
                    "{}durable tasks={} size={} items={} flushes={flushes} secs={:.3} \
                     items_per_s={:.0} flushes_per_s={flushes_per_s}{limit}",
                    lead(r.engine),
                    r.tasks,
                    r.item_bytes,
                    r.items,
                    r.secs,
                    r.items_per_s
                )?;
            }
            Report::Open(r) => r.write_text(out)?,
            Report::Failed {
                engine,
                workload,
                error,
            } => writeln!(out, "{engine} {workload} FAILED: {error}")?,
        }
        Ok(())
    }
}

impl AppendReport {
    fn write_text(&self, out: &mut impl io::Write) -> io::Result<()> {
        let lead = lead(self.engine);
        let runs = match &self.runs {
            AppendRuns::One(run) => std::slice::from_ref(run),
            AppendRuns::Compared { runs, .. } => runs,
        };
        for run in runs {
            let config = run.config.map_or_else(String::new, |c| {
                format!(
                    " config={} max_buffer_items={}",
                    c.config, c.max_buffer_items
                )
            });
            let ratio = run
                .ratio
                .map_or_else(String::new, |r| format!(" ratio={r:.2}"));
            writeln!(
                out,
                "{lead}{} items={} size={}{config} secs={:.3} adds_per_s={:.0}{ratio} \
                 (durable {} included)",
                self.workload, self.items, self.item_bytes, run.secs, run.adds_per_s, self.close
            )?;
        }
        if let AppendRuns::Compared {
            limit_secs,
            limit_adds_per_s,
            ..
        } = &self.runs
        {
            writeln!(
                out,
                "{lead}{} limit: the same bytes with plain writes + fdatasync: \
                 secs={limit_secs:.3} adds_per_s={limit_adds_per_s:.0}",
                self.workload
            )?;
        }
        Ok(())
    }
}

impl OpenReport {
    fn write_text(&self, out: &mut impl io::Write) -> io::Result<()> {
        let stored = self.stored.as_ref().map_or_else(String::new, |s| {
            format!(" items={} size={}", s.items, s.item_bytes)
        });
        let more = self.more.as_ref().map_or_else(String::new, |m| {
            format!(
                " big_file_bytes={} big_open_ms={:.2} items_open_ms={:.2}",
                m.big_file_bytes, m.big_open_ms, m.items_open_ms
            )
        });
        writeln!(
            out,
            "{}open{stored} files={} open_ms={:.2} (median of {}) first_open_ms={:.2}{more} \
             create_secs={:.3}",
            lead(self.engine),
            self.files,
            self.open_ms,
            self.opens,
            self.first_open_ms,
            self.create_secs
        )
    }
}

#[cfg(test)]
mod tests;
