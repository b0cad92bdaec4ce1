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
    /// `verify`.
    Verify(VerifyReport),
    /// `read-other-process`.
    OtherProcess(OtherProcessReport),
    /// `tiered`.
    #[cfg(feature = "tiering")]
    Tiered(Box<TieredReport>),
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
    #[serde(flatten)]
    pub(crate) config: Option<ReadConfig>,
    pub(crate) reads: u64,
    pub(crate) secs: f64,
    pub(crate) reads_per_s: f64,
    /// The same reads with plain pread from as many threads.
    #[serde(flatten)]
    pub(crate) limit: Option<ReadLimit>,
    /// For verified reads: their rate divided by that of unverified reads with as many
    /// readers, in the same rounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) vs_unverified: Option<f64>,
}

/// An aiodiskdb configuration of `read`: reads of one indexed item checked against its
/// CRC32C (the default) or not.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct ReadConfig {
    pub(crate) verify_reads: bool,
}

impl std::fmt::Display for ReadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "verify_reads={}", self.verify_reads)
    }
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
    /// Our items/s over the limit's (batches of `tasks` items: the most a commit can hold).
    pub(crate) ratio: f64,
    /// Items per synced commit, on average (`null` when the engine does not tell).
    pub(crate) items_per_flush: Option<f64>,
    /// Our commits/s over the limit's batches/s: the ratio against one fdatasync per batch
    /// of our own batches' size (the sync of 6.4 KB costs what one of 5 KB does).
    pub(crate) flush_ratio: Option<f64>,
    /// The same workload once more with the engine's syncs off (`Engine::unsynced_config`):
    /// items/s, and their ratio to the limit's. Everything but the syncs; `None` when the
    /// engine has no such configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) unsynced_items_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) unsynced_ratio: Option<f64>,
}

impl DurableLimit {
    fn unsynced_rate(&self) -> Option<(&'static str, String)> {
        self.unsynced_items_per_s
            .map(|u| ("unsynced_items_per_s", format!("{u:.0}")))
    }

    fn unsynced_ratio(&self) -> Option<(&'static str, String)> {
        self.unsynced_ratio
            .map(|u| ("unsynced_ratio", format!("{u:.2}")))
    }
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

/// The figures of `verify` (aiodiskdb only).
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub(crate) workload: &'static str,
    pub(crate) items: u64,
    /// Item bytes stored (and checked).
    pub(crate) bytes: u64,
    /// Data files.
    pub(crate) files: u64,
    pub(crate) runs: Vec<VerifyRun>,
}

/// `AioDiskDb::verify` with the page cache dropped before each pass (`cold`) or holding
/// every file (`warm`), against plain sequential reads of the same files.
#[derive(Debug, Serialize)]
pub(crate) struct VerifyRun {
    pub(crate) cache: &'static str,
    pub(crate) secs: f64,
    pub(crate) mb_per_s: f64,
    pub(crate) limit_secs: f64,
    pub(crate) limit_mb_per_s: f64,
    pub(crate) ratio: f64,
}

/// The figures of `read-other-process` (aiodiskdb only).
#[derive(Debug, Serialize)]
pub struct OtherProcessReport {
    pub(crate) workload: &'static str,
    pub(crate) items: u64,
    pub(crate) item_bytes: u64,
    /// Durable appends (add + flush) of the writer while the reads ran.
    pub(crate) appends: u64,
    pub(crate) appends_per_s: f64,
    pub(crate) runs: Vec<OtherProcessRun>,
}

/// Random reads in the writer's process (`writer`) or from a read-only handle in another
/// process (`reader`).
#[derive(Debug, Serialize)]
pub(crate) struct OtherProcessRun {
    pub(crate) readers: usize,
    pub(crate) process: &'static str,
    pub(crate) reads: u64,
    pub(crate) secs: f64,
    pub(crate) reads_per_s: f64,
    /// For the reader: its reads/s divided by the writer's with as many readers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) vs_writer: Option<f64>,
}

/// The figures of `tiered` (aiodiskdb with the `tiering` feature).
#[cfg(feature = "tiering")]
#[derive(Debug, Serialize)]
pub struct TieredReport {
    pub(crate) workload: &'static str,
    /// The `--store` URL (the run's objects go under a prefix of their own below it).
    pub(crate) store: String,
    /// Requests in flight on both sides.
    pub(crate) concurrency: usize,
    /// The upload part size of both sides.
    pub(crate) part_bytes: u64,
    /// Bytes per data file.
    pub(crate) file_size: u64,
    /// Sealed files uploaded, and their bytes (headers included).
    pub(crate) files: u64,
    pub(crate) bytes: u64,
    /// Items written (1 KiB each).
    pub(crate) items: u64,
    pub(crate) upload: TieredTransfer,
    pub(crate) cold: TieredReads,
    pub(crate) warm: TieredReads,
    pub(crate) rounds: Vec<TieredRound>,
    pub(crate) disk: TieredDisk,
}

/// `AioDiskDb::tier` against plain `object_store` puts of the same files, before and
/// after ours.
#[cfg(feature = "tiering")]
#[derive(Debug, Serialize)]
pub(crate) struct TieredTransfer {
    pub(crate) secs: f64,
    pub(crate) mb_per_s: f64,
    pub(crate) plain_secs: [f64; 2],
    /// The mean of the two plain rates.
    pub(crate) plain_mb_per_s: f64,
    pub(crate) ratio: f64,
}

/// Reads of ours against a baseline, summed over the rounds.
#[cfg(feature = "tiering")]
#[derive(Debug, Serialize)]
pub(crate) struct TieredReads {
    pub(crate) reads: u64,
    pub(crate) secs: f64,
    pub(crate) reads_per_s: f64,
    /// What the reads are compared with.
    pub(crate) baseline: &'static str,
    pub(crate) baseline_secs: f64,
    pub(crate) baseline_reads_per_s: f64,
    pub(crate) ratio: f64,
}

#[cfg(feature = "tiering")]
impl TieredReads {
    pub(crate) fn new(reads: u64, secs: f64, baseline: &'static str, baseline_secs: f64) -> Self {
        let reads_per_s = crate::data::rate(reads, secs);
        let baseline_reads_per_s = crate::data::rate(reads, baseline_secs);
        TieredReads {
            reads,
            secs,
            reads_per_s,
            baseline,
            baseline_secs,
            baseline_reads_per_s,
            ratio: crate::limits::ratio(reads_per_s, baseline_reads_per_s),
        }
    }
}

/// The seconds of one round of the read comparisons.
#[cfg(feature = "tiering")]
#[derive(Debug, Default, Serialize)]
pub(crate) struct TieredRound {
    /// Cold reads, ours, and the plain ranged GETs of the same ranges.
    pub(crate) cold: f64,
    pub(crate) plain: f64,
    /// Warm reads, ours, and our reads of the same items from the local copy.
    pub(crate) warm: f64,
    pub(crate) local: f64,
}

/// The tiered directory's disk usage, sampled from before the upload to the end.
#[cfg(feature = "tiering")]
#[derive(Debug, Serialize)]
pub(crate) struct TieredDisk {
    pub(crate) samples: u64,
    /// `Event::Tiered` seen.
    pub(crate) tiered_events: u64,
    /// Every file, at the first sample (before the upload: everything local).
    pub(crate) start_bytes: u64,
    /// Every file, the most of any sample.
    pub(crate) max_bytes: u64,
    /// Data files that should be gone (tiered before the sample) and files that are not
    /// the database's: must be 0.
    pub(crate) max_unexpected_bytes: u64,
    /// After `tier` returned: every file, and the data files alone.
    pub(crate) after_tier_max_bytes: u64,
    pub(crate) after_tier_max_data_bytes: u64,
    /// Item indexes (they stay local: 8 bytes per item) and the state and manifest files.
    pub(crate) max_index_bytes: u64,
    pub(crate) max_meta_bytes: u64,
    /// The names of the unexpected files (10 at most).
    pub(crate) unexpected_files: Vec<String>,
    /// What the data files may hold once tiered: `keep_local` (0) sealed files and the
    /// head, plus the cache on disk (none: it is in RAM).
    pub(crate) bound_bytes: u64,
    /// The sealed files' bytes (local before the upload).
    pub(crate) sealed_bytes: u64,
    /// Where the cache of remote items is.
    pub(crate) cache: &'static str,
}

/// One text line of `key=value` pairs separated by single spaces: the keys are those of
/// the JSON object, in its order; figures are rounded; a value that could hold a space or
/// a quote is quoted as a Rust string literal (`error="..."`).
struct Line(String);

impl Line {
    /// `engine=E workload=W` for a peer's report, `workload=W` for ours.
    fn new(engine: Option<&str>, workload: &str) -> Line {
        let line = Line(String::new());
        match engine {
            Some(e) => line.kv("engine", e),
            None => line,
        }
        .kv("workload", workload)
    }

    fn kv(mut self, key: &str, value: impl std::fmt::Display) -> Line {
        use std::fmt::Write as _;
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(self.0, "{key}={value}");
        self
    }

    /// Adds `key=value` when there is a value.
    fn kv_opt(self, pair: Option<(&str, String)>) -> Line {
        match pair {
            Some((key, value)) => self.kv(key, value),
            None => self,
        }
    }

    fn write(self, out: &mut impl io::Write) -> io::Result<()> {
        writeln!(out, "{}", self.0)
    }
}

/// `n/a` for a figure the engine does not tell (`null` in JSON).
fn or_na(value: Option<String>) -> String {
    value.unwrap_or_else(|| "n/a".to_owned())
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

    /// For a seed workload, the seed's own lines (`Duration: ..., Reads: ...`, then the
    /// re-read), for people: the `key=value` line carries the same figures.
    #[must_use]
    pub fn seed_lines(&self) -> Option<String> {
        match self {
            Report::Seed(r) => Some(r.figures.seed_lines()),
            _ => None,
        }
    }

    /// The text lines: one per JSON object, or per run for the workloads with `runs`
    /// (each line repeating what the runs share), each a `key=value ...` [`Line`].
    fn write_text(&self, out: &mut impl io::Write) -> io::Result<()> {
        match self {
            Report::Seed(r) => r.line().write(out),
            Report::Append(r) => r.write_text(out),
            Report::Read(r) => {
                for run in &r.runs {
                    let limit = run.limit.as_ref();
                    Line::new(r.engine, r.workload)
                        .kv("items", r.items)
                        .kv("item_bytes", r.item_bytes)
                        .kv("readers", run.readers)
                        .kv_opt(
                            run.config
                                .map(|c| ("verify_reads", c.verify_reads.to_string())),
                        )
                        .kv("reads", run.reads)
                        .kv("secs", format_args!("{:.3}", run.secs))
                        .kv("reads_per_s", format_args!("{:.0}", run.reads_per_s))
                        .kv_opt(limit.map(|l| ("limit_secs", format!("{:.3}", l.limit_secs))))
                        .kv_opt(
                            limit.map(|l| {
                                ("limit_reads_per_s", format!("{:.0}", l.limit_reads_per_s))
                            }),
                        )
                        .kv_opt(limit.map(|l| ("ratio", format!("{:.2}", l.ratio))))
                        .kv_opt(
                            run.vs_unverified
                                .map(|v| ("vs_unverified", format!("{v:.3}"))),
                        )
                        .write(out)?;
                }
                Ok(())
            }
            Report::Durable(r) => {
                let limit = r.limit.as_ref();
                Line::new(r.engine, r.workload)
                    .kv("tasks", r.tasks)
                    .kv("item_bytes", r.item_bytes)
                    .kv("items", r.items)
                    .kv("flushes", or_na(r.flushes.map(|f| f.to_string())))
                    .kv("secs", format_args!("{:.3}", r.secs))
                    .kv("items_per_s", format_args!("{:.0}", r.items_per_s))
                    .kv(
                        "flushes_per_s",
                        or_na(r.flushes_per_s.map(|f| format!("{f:.0}"))),
                    )
                    .kv_opt(limit.map(|l| ("limit_batches", l.limit_batches.to_string())))
                    .kv_opt(limit.map(|l| ("limit_secs", format!("{:.3}", l.limit_secs))))
                    .kv_opt(
                        limit.map(|l| ("limit_items_per_s", format!("{:.0}", l.limit_items_per_s))),
                    )
                    .kv_opt(limit.map(|l| ("ratio", format!("{:.2}", l.ratio))))
                    .kv_opt(limit.map(|l| {
                        let items = l.items_per_flush.map(|i| format!("{i:.1}"));
                        ("items_per_flush", or_na(items))
                    }))
                    .kv_opt(limit.map(|l| {
                        (
                            "flush_ratio",
                            or_na(l.flush_ratio.map(|r| format!("{r:.2}"))),
                        )
                    }))
                    .kv_opt(limit.and_then(DurableLimit::unsynced_rate))
                    .kv_opt(limit.and_then(DurableLimit::unsynced_ratio))
                    .write(out)
            }
            Report::Open(r) => r.line().write(out),
            Report::Verify(r) => {
                for run in &r.runs {
                    Line::new(None, r.workload)
                        .kv("items", r.items)
                        .kv("bytes", r.bytes)
                        .kv("files", r.files)
                        .kv("cache", run.cache)
                        .kv("secs", format_args!("{:.3}", run.secs))
                        .kv("mb_per_s", format_args!("{:.1}", run.mb_per_s))
                        .kv("limit_secs", format_args!("{:.3}", run.limit_secs))
                        .kv("limit_mb_per_s", format_args!("{:.1}", run.limit_mb_per_s))
                        .kv("ratio", format_args!("{:.2}", run.ratio))
                        .write(out)?;
                }
                Ok(())
            }
            Report::OtherProcess(r) => r.write_text(out),
            #[cfg(feature = "tiering")]
            Report::Tiered(r) => r.write_text(out),
            Report::Failed {
                engine,
                workload,
                error,
            } => Line::new(Some(engine), workload)
                .kv("error", format_args!("{error:?}"))
                .write(out),
        }
    }
}

impl SeedReport {
    fn line(&self) -> Line {
        let f = &self.figures;
        let limit = self.limit.as_ref();
        Line::new(self.engine, self.workload)
            .kv("secs", format_args!("{:.3}", f.secs))
            .kv("reads", f.reads)
            .kv("reads_per_s", format_args!("{:.0}", f.reads_per_s))
            .kv("writes", f.writes)
            .kv("writes_per_s", format_args!("{:.0}", f.writes_per_s))
            .kv("bytes", f.bytes)
            .kv("mb_per_s", format_args!("{:.2}", f.mb_per_s))
            .kv("avg_item_bytes", format_args!("{:.0}", f.avg_item_bytes))
            .kv("reread_items", f.reread_items)
            .kv("reread_secs", format_args!("{:.3}", f.reread_secs))
            .kv_opt(limit.map(|l| ("limit_secs", format!("{:.3}", l.limit_secs))))
            .kv_opt(limit.map(|l| ("limit_mb_per_s", format!("{:.2}", l.limit_mb_per_s))))
            .kv_opt(limit.map(|l| ("ratio", format!("{:.2}", l.ratio))))
            .kv_opt(limit.map(|l| {
                let rss = l.peak_rss_mib.map(|m| format!("{m:.1}"));
                ("peak_rss_mib", or_na(rss))
            }))
            .kv_opt(limit.map(|l| ("peak_rss_bound_mib", format!("{:.0}", l.peak_rss_bound_mib))))
    }
}

impl AppendReport {
    fn write_text(&self, out: &mut impl io::Write) -> io::Result<()> {
        let (runs, limit) = match &self.runs {
            AppendRuns::One(run) => (std::slice::from_ref(run), None),
            AppendRuns::Compared {
                runs,
                limit_secs,
                limit_adds_per_s,
            } => (runs.as_slice(), Some((limit_secs, limit_adds_per_s))),
        };
        for run in runs {
            Line::new(self.engine, self.workload)
                .kv("items", self.items)
                .kv("item_bytes", self.item_bytes)
                .kv_opt(run.config.map(|c| ("config", c.config.to_owned())))
                .kv_opt(
                    run.config
                        .map(|c| ("max_buffer_items", c.max_buffer_items.to_string())),
                )
                .kv("secs", format_args!("{:.3}", run.secs))
                .kv("adds_per_s", format_args!("{:.0}", run.adds_per_s))
                .kv_opt(run.ratio.map(|r| ("ratio", format!("{r:.2}"))))
                .kv_opt(limit.map(|(secs, _)| ("limit_secs", format!("{secs:.3}"))))
                .kv_opt(limit.map(|(_, rate)| ("limit_adds_per_s", format!("{rate:.0}"))))
                .kv("close", self.close)
                .write(out)?;
        }
        Ok(())
    }
}

impl OtherProcessReport {
    fn write_text(&self, out: &mut impl io::Write) -> io::Result<()> {
        for run in &self.runs {
            Line::new(None, self.workload)
                .kv("items", self.items)
                .kv("item_bytes", self.item_bytes)
                .kv("appends", self.appends)
                .kv("appends_per_s", format_args!("{:.1}", self.appends_per_s))
                .kv("readers", run.readers)
                .kv("process", run.process)
                .kv("reads", run.reads)
                .kv("secs", format_args!("{:.3}", run.secs))
                .kv("reads_per_s", format_args!("{:.0}", run.reads_per_s))
                .kv_opt(run.vs_writer.map(|v| ("vs_writer", format!("{v:.3}"))))
                .write(out)?;
        }
        Ok(())
    }
}

#[cfg(feature = "tiering")]
impl TieredReport {
    /// Four lines: `part=upload`, `part=cold`, `part=warm` and `part=disk`, each after
    /// what they share.
    fn write_text(&self, out: &mut impl io::Write) -> io::Result<()> {
        let line = |part: &str| {
            Line::new(None, self.workload)
                .kv("files", self.files)
                .kv("bytes", self.bytes)
                .kv("concurrency", self.concurrency)
                .kv("part", part)
        };
        let u = &self.upload;
        line("upload")
            .kv("secs", format_args!("{:.3}", u.secs))
            .kv("mb_per_s", format_args!("{:.1}", u.mb_per_s))
            .kv(
                "plain_secs",
                format_args!("{:.3},{:.3}", u.plain_secs[0], u.plain_secs[1]),
            )
            .kv("plain_mb_per_s", format_args!("{:.1}", u.plain_mb_per_s))
            .kv("ratio", format_args!("{:.2}", u.ratio))
            .write(out)?;
        for (part, r) in [("cold", &self.cold), ("warm", &self.warm)] {
            line(part)
                .kv("reads", r.reads)
                .kv("secs", format_args!("{:.3}", r.secs))
                .kv("reads_per_s", format_args!("{:.0}", r.reads_per_s))
                .kv("baseline", format_args!("{:?}", r.baseline))
                .kv("baseline_secs", format_args!("{:.3}", r.baseline_secs))
                .kv(
                    "baseline_reads_per_s",
                    format_args!("{:.0}", r.baseline_reads_per_s),
                )
                .kv("ratio", format_args!("{:.2}", r.ratio))
                .write(out)?;
        }
        let d = &self.disk;
        line("disk")
            .kv("samples", d.samples)
            .kv("tiered_events", d.tiered_events)
            .kv("start_bytes", d.start_bytes)
            .kv("max_bytes", d.max_bytes)
            .kv("max_unexpected_bytes", d.max_unexpected_bytes)
            .kv("after_tier_max_bytes", d.after_tier_max_bytes)
            .kv("after_tier_max_data_bytes", d.after_tier_max_data_bytes)
            .kv("max_index_bytes", d.max_index_bytes)
            .kv("max_meta_bytes", d.max_meta_bytes)
            .kv("bound_bytes", d.bound_bytes)
            .kv("cache", d.cache)
            .kv_opt((!d.unexpected_files.is_empty()).then(|| {
                (
                    "unexpected_files",
                    format!("{:?}", d.unexpected_files.join(",")),
                )
            }))
            .write(out)
    }
}

impl OpenReport {
    fn line(&self) -> Line {
        let stored = self.stored.as_ref();
        let more = self.more.as_ref();
        Line::new(self.engine, self.workload)
            .kv_opt(stored.map(|s| ("items", s.items.to_string())))
            .kv_opt(stored.map(|s| ("item_bytes", s.item_bytes.to_string())))
            .kv("files", self.files)
            .kv("create_secs", format_args!("{:.3}", self.create_secs))
            .kv("opens", self.opens)
            .kv("open_ms", format_args!("{:.2}", self.open_ms))
            .kv("first_open_ms", format_args!("{:.2}", self.first_open_ms))
            .kv_opt(more.map(|m| ("big_file_bytes", m.big_file_bytes.to_string())))
            .kv_opt(more.map(|m| ("big_open_ms", format!("{:.2}", m.big_open_ms))))
            .kv_opt(more.map(|m| ("items_open_ms", format!("{:.2}", m.items_open_ms))))
    }
}

#[cfg(test)]
mod tests;
