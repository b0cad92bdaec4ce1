//! A read-only look at a data directory, for operators (`aiodiskdb info` and `check`):
//! the data files, the commit state, whether another process holds the directory, and the
//! recovery plan an open would carry out (`recovery/plan.rs`), rendered: the same survey
//! and the same plan, so that `info` never disagrees with what `open` will do. Nothing on
//! disk is changed.

use std::path::{Path, PathBuf};

use crate::config::{Builder, Config};
use crate::error::{Error, IoContext, Result};
use crate::fs::{Fs, RealFs};
use crate::recovery::plan::{describe, Action, Plan, Session};
use crate::recovery::survey::{self, Foreign, Survey};
use crate::store::Options;

/// One data file as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DataFileInfo {
    /// The file's index.
    pub index: u32,
    /// The file.
    pub path: PathBuf,
    /// Length in bytes, header included.
    pub size: u64,
    /// Logical position of the first stored byte (from the header).
    pub trim_offset: u32,
    /// Logical end: one past the last stored position.
    pub end: u64,
    /// Item bytes stored (`size - 24`).
    pub item_bytes: u64,
}

/// A data file on object storage (tiering), as the manifest records it; its item index
/// is in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteFileInfo {
    /// The file's index.
    pub index: u32,
    /// Its object's key: the key prefix, `/`, the data file's name.
    pub key: String,
    /// The object's size in bytes, header included.
    pub size: u64,
    /// Logical position of the first stored byte.
    pub trim_offset: u32,
    /// Logical end: one past the last stored position.
    pub end: u64,
    /// Item bytes it holds (`end - trim_offset`; `size - 24` unless it was trimmed since
    /// its upload, which leaves the object as it was).
    pub item_bytes: u64,
}

/// Where the remote files of a directory are, as its manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteStore {
    /// The object store, as it names itself (`AmazonS3(bucket)` for S3).
    pub store: String,
    /// The key prefix of every object.
    pub prefix: String,
    /// The store as the CLI's `--store` takes it, `s3://bucket/prefix` (`BUCKET` when the
    /// store is not named as an S3 bucket).
    pub url: String,
}

/// The commit record of the state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommitState {
    /// The previous session stopped cleanly.
    pub clean: bool,
    /// The current data file.
    pub head: u32,
    /// Committed logical end of the current data file.
    pub head_end: u32,
    /// Commit sequence number.
    pub seq: u64,
}

/// Something wrong with the directory, naming the file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The file concerned.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

/// What [`Builder::inspect`](crate::Builder::inspect) found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Inspection {
    /// Valid data files in the directory, by index.
    pub files: Vec<DataFileInfo>,
    /// Data files on object storage (tiering), by index; empty without any.
    pub remote_files: Vec<RemoteFileInfo>,
    /// Where the remote files are; `None` without any.
    pub remote_store: Option<RemoteStore>,
    /// Our commit record, if the directory has one (a Python directory has none).
    pub state: Option<CommitState>,
    /// Another process (or handle) holds the directory.
    pub locked: bool,
    /// What the next open will recover, one line each; empty when nothing is pending.
    pub pending_recovery: Vec<String>,
    /// Problems that make the directory unusable until fixed; empty when sound.
    pub problems: Vec<Problem>,
}

impl Inspection {
    /// Sum of the sizes of the data files in the directory.
    #[must_use]
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Sum of the item bytes stored in the directory.
    #[must_use]
    pub fn total_item_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.item_bytes).sum()
    }

    /// No problems found.
    #[must_use]
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

pub(crate) fn problem(path: &Path, message: impl Into<String>) -> Problem {
    Problem {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl Builder {
    /// Looks at the directory without opening it: its data files (in the directory and on
    /// object storage), commit state, pending recovery, problems, and whether another
    /// process holds it. Changes nothing (no lock is kept, no recovery runs, no file is
    /// created). With `Builder::tiering` (feature `tiering`), each remote file's object is
    /// also checked: one HEAD each, within the tiering's `concurrency`; an object missing,
    /// of another length than the file's, or that the store fails to describe is a
    /// problem. Without it, remote files are listed as the manifest records them.
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] for a bad option; [`Error::Io`] if the directory
    /// cannot be listed. Problems with individual files are reported in the result.
    ///
    /// # Cancel safety
    /// Inspecting has no effect; dropping the future is harmless.
    pub async fn inspect(self) -> Result<Inspection> {
        let (config, _) = self.validate()?;
        #[cfg(feature = "tiering")]
        let objects = config.tiering.clone().map(|t| (t, config.store_options()));
        let out = tokio::task::spawn_blocking(move || inspect(&config))
            .await
            .map_err(|e| Error::state(format!("inspect task failed: {e}")))??;
        #[cfg(feature = "tiering")]
        let out = match objects {
            Some((tiering, opts)) => crate::tiering::check_objects(out, &tiering, &opts).await,
            None => out,
        };
        Ok(out)
    }
}

/// Inspects the directory of `cfg` without changing it.
pub(crate) fn inspect(cfg: &Config) -> Result<Inspection> {
    inspect_with(&RealFs, &cfg.store_options())
}

pub(crate) fn inspect_with(fs: &dyn Fs, opts: &Options) -> Result<Inspection> {
    let dir = &opts.dir;
    if !fs.dir_exists(dir).ctx("open directory", dir)? {
        return Err(Error::io(
            "open directory",
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "directory does not exist"),
        ));
    }
    let mut out = Inspection::default();
    let state_path = opts.state_path();
    // A writer holding the directory may roll over, trim or drop under the survey: it is
    // taken again until the writer held still across it, as a read-only handle's is (a
    // file gone between the listing and its reading is not a problem of the directory).
    let mut state_problem = None;
    let (survey, plan) = survey::settled(fs, opts, || {
        let (raw, locked, problem) = read_state(fs, &state_path)?;
        state_problem = problem;
        out.locked = locked;
        Ok((raw, locked))
    })?;
    out.problems.extend(state_problem);
    if survey.state_unreadable {
        out.problems.push(problem(
            &state_path,
            "no valid commit record in the state file",
        ));
    }
    out.state = survey.state().map(|s| CommitState {
        clean: s.clean,
        head: s.head,
        head_end: s.head_end,
        seq: s.seq,
    });
    render_files(opts, &survey, &plan, &mut out);
    render_remote(opts, &plan, &mut out);
    render_session(opts, &plan, &mut out);
    for e in plan.errors.iter().chain(&plan.warnings) {
        let (path, message) = describe(e, &state_path);
        out.problems.push(problem(&path, message));
    }
    render_foreign(opts, &plan, &mut out);
    out.problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Reads the state file and tests the lock (taking it and releasing it at once): its
/// bytes (empty when there is none), whether another process holds it, and why it could
/// not be opened.
fn read_state(fs: &dyn Fs, path: &Path) -> Result<(Vec<u8>, bool, Option<Problem>)> {
    let f = match fs.open_ro(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), false, None)),
        Err(e) => {
            let p = problem(path, format!("cannot open the state file: {e}"));
            return Ok((Vec::new(), false, Some(p)));
        }
    };
    let locked = !f.try_lock().ctx("lock state file", path)?;
    let raw = survey::read_state(f.as_ref(), path)?;
    drop(f);
    Ok((raw, locked, None))
}

/// The valid data files, as they are now (those an interrupted flush created after its
/// commit are listed as pending deletions instead).
fn render_files(opts: &Options, survey: &Survey, plan: &Plan, out: &mut Inspection) {
    let naming = &opts.format.naming;
    for (&index, extent) in &survey.data {
        let uncommitted = plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::RemoveUncommitted { index: i } if *i == index));
        // A leftover local copy of a remote file is listed as a pending deletion.
        let remote = plan.remote.contains(&index);
        if let (Ok(e), false, false) = (extent, uncommitted, remote) {
            out.files.push(DataFileInfo {
                index,
                path: opts.dir.join(naming.data_file(index)),
                size: e.len,
                trim_offset: e.trim_offset,
                end: u64::from(e.end),
                item_bytes: e.len.saturating_sub(crate::format::HEADER_LEN),
            });
        }
    }
}

/// The files on object storage, as the manifest records them.
fn render_remote(opts: &Options, plan: &Plan, out: &mut Inspection) {
    if plan.remote.is_empty() {
        return;
    }
    let id = plan.manifest.remote.clone().unwrap_or_default();
    for &index in &plan.remote {
        let (trim_offset, end) = plan.files.get(&index).copied().unwrap_or_default();
        let name = opts.format.naming.data_file(index);
        let item_bytes = u64::from(end.saturating_sub(trim_offset));
        // A remote file trimmed since its upload: its object holds more.
        let object = plan
            .manifest
            .get(index)
            .and_then(|r| r.object)
            .map_or(item_bytes, |o| {
                u64::from(o.end.saturating_sub(o.trim_offset))
            });
        out.remote_files.push(RemoteFileInfo {
            index,
            key: if id.prefix.is_empty() {
                name
            } else {
                format!("{}/{name}", id.prefix)
            },
            size: crate::format::HEADER_LEN + object,
            trim_offset,
            end: u64::from(end),
            item_bytes,
        });
    }
    out.remote_store = Some(RemoteStore {
        url: crate::recovery::store_url(&id),
        store: id.store,
        prefix: id.prefix,
    });
}

/// The recovery an open would carry out, one line a step, and the interrupted session as
/// a problem until it is recovered.
fn render_session(opts: &Options, plan: &Plan, out: &mut Inspection) {
    let naming = &opts.format.naming;
    let pending = &mut out.pending_recovery;
    match plan.session {
        Session::TakenOver(s) => pending.push(format!(
            "mark the interrupted session recovered: its checkpoint {} is gone, so another \
             writer (the Python library) rolled it back and took over; the files are kept as \
             they are",
            crate::format::py_checkpoint_name(s.checkpoint)
        )),
        Session::Dirty(s) => {
            match s.pending {
                crate::format::Pending::None => {}
                crate::format::Pending::Ltrim { index, trim_offset } => pending.push(format!(
                    "finish the ltrim of index {index} to position {trim_offset}"
                )),
                crate::format::Pending::Drop { index } => {
                    pending.push(format!("finish dropping index {index}"));
                }
                crate::format::Pending::Rtrim { index } => {
                    pending.push(format!("finish the rtrim of index {index}"));
                }
            }
            out.problems.push(problem(
                &opts.state_path(),
                "recovery pending: the last session did not stop cleanly; run `aiodiskdb \
                 recover` (or open the directory with this library) to finish it",
            ));
        }
        Session::None | Session::Clean(_) | Session::Live(_) => {}
    }
    for action in &plan.actions {
        let line = match action {
            Action::RemoveUncommitted { index } => format!(
                "delete {}: created after the last commit (head is {})",
                naming.data_file(*index),
                plan.head
            ),
            Action::RemoveCheckpoint { name } => {
                format!("delete the python checkpoint {name} (the commit record rules)")
            }
            Action::ApplyCheckpoint { name, cuts } => format!(
                "apply the python checkpoint {name} ({} file(s) to truncate)",
                cuts.len()
            ),
            Action::RemoveTemp { name } => format!("delete the temp file {name}"),
            Action::TruncateHead { index, from, to } => format!(
                "truncate {} from position {from} back to the committed {to}",
                naming.data_file(*index)
            ),
            Action::RemoveIndex { index } => format!(
                "delete the item index {} (its data file is gone, or it is not valid)",
                naming.index_file(*index)
            ),
            Action::RemoveManifest { generation } => format!(
                "delete the manifest {}, which no state names",
                naming.manifest_file(*generation)
            ),
            Action::RemoveLocalCopy { index } => format!(
                "delete {}, a local copy of a file recorded on object storage",
                naming.data_file(*index)
            ),
            // Shown as the state's pending operation, or not recovery at all.
            Action::FinishLtrim { .. }
            | Action::FinishDrop { .. }
            | Action::FinishRtrim { .. }
            | Action::TruncateIndex { .. }
            | Action::CutIndex { .. }
            | Action::CreateHead { .. } => continue,
        };
        pending.push(line);
    }
    if matches!(plan.session, Session::Dirty(_)) && pending.is_empty() {
        pending.push("mark the interrupted session recovered".to_owned());
    }
}

fn not_utf8(what: &str) -> String {
    format!("the file name is not UTF-8: it is ignored, but the Python library would take it for {what}")
}

/// Names the open ignores, but the Python library would take for its own.
fn render_foreign(opts: &Options, plan: &Plan, out: &mut Inspection) {
    for f in &plan.foreign {
        let (path, message) = match f {
            Foreign::OtherNaming(name) => (
                opts.dir.join(name),
                format!(
                    "looks like a data file but does not match {}-digit padding; it is \
                     ignored, but the Python library would read it",
                    opts.format.naming.padding
                ),
            ),
            Foreign::NonUtf8Data(path) => (
                path.clone(),
                not_utf8("a data file (and fail on its index)"),
            ),
            Foreign::NonUtf8Checkpoint(path) => (path.clone(), not_utf8("a pending checkpoint")),
        };
        out.problems.push(problem(&path, message));
    }
}
