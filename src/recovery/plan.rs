//! The recovery plan: from what a directory holds ([`Survey`]) to what opening it must do
//! ([`Action`]s, in order) and what forbids it (errors), and the data files as they will be
//! afterwards. Pure: no I/O, so every case is a unit test. `open` carries the plan out;
//! `inspect` (`aiodiskdb info`, `check`) shows it, so the two never disagree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::survey::{Foreign, Survey};
use crate::catalog::Catalog;
use crate::error::Error;
use crate::format::{
    hex, invalid_file, is_short_header, py_checkpoint_name, Manifest, Pending, State, HEADER_LEN,
};
use crate::store::Options;

/// The last session, as the state record tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Session {
    /// No state record: a new directory, or one only the Python library wrote.
    None,
    /// Stopped cleanly: the files are authoritative as they are.
    Clean(State),
    /// Did not stop cleanly, and its checkpoint is gone: another writer (the Python
    /// library) applied it, took over, and may have appended since. The files are
    /// authoritative, as after a clean stop.
    TakenOver(State),
    /// Did not stop cleanly: recover it.
    Dirty(State),
    /// Another process holds the directory now (`inspect` only): nothing is pending.
    Live(State),
}

/// One step of a recovery, each idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Rename the pending ltrim's temp file over the data file.
    FinishLtrim { index: u32, temp: String },
    /// Delete the data file whose drop was recorded.
    FinishDrop { index: u32 },
    /// Delete a data file created after the last commit.
    RemoveUncommitted { index: u32 },
    /// Delete a Python checkpoint that a dirty state of ours supersedes.
    RemoveCheckpoint { name: String },
    /// Cut each `(index, length)` file back, then delete the Python checkpoint `name`.
    ApplyCheckpoint { name: String, cuts: Vec<(u32, u64)> },
    /// Delete a temp file nothing will finish.
    RemoveTemp { name: String },
    /// Cut the head file back from logical `from` to its committed end `to`.
    TruncateHead { index: u32, from: u32, to: u32 },
    /// Cut the file below the head whose rtrim was recorded back to `to`.
    FinishRtrim { index: u32, to: u32 },
    /// Cut an item index back to its committed `entries`.
    TruncateIndex { index: u32, entries: u32 },
    /// Finish cutting the head's item index at logical `end` (a pending rtrim of the head).
    CutIndex { index: u32, end: u32 },
    /// Delete an item index: of a file that is gone, or one that is not valid.
    RemoveIndex { index: u32 },
    /// Delete a manifest no state names.
    RemoveManifest { generation: u64 },
    /// Delete the local copy of a file the manifest records as on object storage (the
    /// crash came after the record, before the deletion).
    RemoveLocalCopy { index: u32 },
    /// Create the head file, empty.
    CreateHead { index: u32 },
}

/// What opening a directory must do, and what forbids it.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) session: Session,
    pub(crate) actions: Vec<Action>,
    /// Each makes `open` fail (with the first); `inspect` reports them all.
    pub(crate) errors: Vec<Error>,
    /// Damage that `open` accepts (`inspect` reports it): an item index lost, so that its
    /// file's items are served unchecked.
    pub(crate) warnings: Vec<Error>,
    /// Names the Python library would take for its own but we ignore (`inspect` reports
    /// them).
    pub(crate) foreign: Vec<Foreign>,
    /// The data files after the actions: `(trim offset, end)` by index.
    pub(crate) files: BTreeMap<u32, (u32, u32)>,
    /// The committed entries of each file's item index (a file without is unindexed).
    pub(crate) entries: BTreeMap<u32, u32>,
    pub(crate) head: u32,
    /// Whether the head's item index is valid and reaches its end (else the first change of
    /// the session starts a new one at the end).
    pub(crate) head_indexed: bool,
    /// The interrupted session's checkpoint, kept and pointed at the recovered head.
    pub(crate) keep_checkpoint: Option<u64>,
    /// The manifest of sealed files the state names.
    pub(crate) manifest: Manifest,
    /// The files of `files` that are on object storage, not in the directory.
    pub(crate) remote: std::collections::BTreeSet<u32>,
}

impl Plan {
    /// Whether carrying it out adds, renames or removes a name (the directory must be
    /// synced).
    pub(crate) fn changes_names(&self) -> bool {
        self.actions.iter().any(|a| {
            !matches!(
                a,
                Action::TruncateHead { .. }
                    | Action::TruncateIndex { .. }
                    | Action::CutIndex { .. }
                    | Action::FinishRtrim { .. }
            )
        })
    }

    /// The catalog of the files as they will be after the actions: remote files with the
    /// trim offset their object was uploaded with (the manifest's objects section, for a
    /// remote file trimmed since), which reads of them map positions through.
    pub(crate) fn catalog(&self) -> Catalog {
        let entries = |i: &u32| self.entries.get(i).copied().unwrap_or(0);
        let mut catalog = Catalog::new(
            self.files
                .iter()
                .map(|(i, &(trim, end))| (*i, trim, end, entries(i))),
            self.head,
        );
        for index in &self.remote {
            let Some(&(trim, end)) = self.files.get(index) else {
                continue;
            };
            let object = self
                .manifest
                .get(*index)
                .and_then(|r| r.object)
                .map_or(trim..end, |o| o.range());
            catalog.set_remote_file(*index, trim, end, entries(index), object);
        }
        catalog
    }

    /// The recovery a buggy engine would do (the seeded bug `TrustFileLength`): keep the
    /// head file as long as it is.
    #[cfg(test)]
    pub(crate) fn trusting_file_length(mut self, survey: &Survey) -> Plan {
        self.actions
            .retain(|a| !matches!(a, Action::TruncateHead { .. }));
        if let Some(Ok(e)) = survey.data.get(&self.head) {
            self.files.insert(self.head, (e.trim_offset, e.end));
        }
        self
    }
}

/// The last session, from the state and whether its checkpoint is still there.
fn session(s: &Survey, live: bool) -> Session {
    let Some(state) = s.state() else {
        return Session::None;
    };
    if state.clean {
        Session::Clean(state)
    } else if live {
        Session::Live(state)
    } else if state.checkpoint != 0
        && !s
            .checkpoints
            .iter()
            .any(|c| c.name == py_checkpoint_name(state.checkpoint))
    {
        Session::TakenOver(state)
    } else {
        Session::Dirty(state)
    }
}

/// Plans the opening of a surveyed directory; `live` when another process holds it.
pub(crate) fn plan(opts: &Options, s: &Survey, live: bool) -> Plan {
    let mut p = Plan {
        session: session(s, live),
        actions: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        foreign: s.foreign.clone(),
        files: BTreeMap::new(),
        entries: BTreeMap::new(),
        head: 0,
        head_indexed: false,
        keep_checkpoint: None,
        manifest: Manifest::default(),
        remote: std::collections::BTreeSet::new(),
    };
    let state_path = opts.state_path();
    if let Some(recorded) = s.slot.as_ref().and_then(|slot| slot.format.as_ref()) {
        if let Some(e) = format_mismatch(opts, recorded, &state_path) {
            p.errors.push(e);
        }
    }
    let dirty = match p.session {
        Session::Dirty(st) => Some(st),
        _ => None,
    };
    let live_head = match p.session {
        Session::Live(st) => Some(st.head),
        _ => None,
    };
    // Every data file is validated before anything changes, except those an interrupted
    // flush created after the commit point: they may be torn, and are deleted.
    for (&index, extent) in &s.data {
        match (extent, dirty) {
            (_, Some(st)) if index > st.head => {
                p.actions.push(Action::RemoveUncommitted { index });
            }
            // A live writer's rollover in progress: the file is created, then its header
            // written, then its first batch committed; until then it holds no committed
            // byte and may be shorter than its header. Not a problem, and not the head.
            // (Any other fault of such a file is still reported.)
            (Err(e), None) if live_head.is_some_and(|h| index > h) && is_short_header(e) => {}
            (Ok(e), _) => {
                p.files.insert(index, (e.trim_offset, e.end));
            }
            (Err(e), _) => p.errors.push(e.clone()),
        }
    }
    for (path, other) in &s.aliases {
        p.errors.push(invalid_file(
            path,
            format!("it is the same file as {} (a link)", other.display()),
        ));
    }
    let pending_temp = match dirty.map(|st| st.pending) {
        Some(Pending::Ltrim { index, .. }) => Some(index),
        _ => None,
    };
    if !opts.clean_stale_data && !live {
        let stale_temps = s.temps.keys().filter(|i| Some(**i) != pending_temp).count()
            + usize::from(s.checkpoint_temp.is_some());
        if dirty.is_some() || !s.checkpoints.is_empty() || stale_temps > 0 {
            p.errors.push(Error::state(format!(
                "{} needs recovery (interrupted session, checkpoint or temp files); open \
                 with clean_stale_data(true)",
                opts.dir.display()
            )));
        }
    }
    match p.session {
        Session::Dirty(st) => plan_dirty(opts, s, st, &mut p),
        Session::Live(st) => {
            let newest_valid = p.files.keys().last().copied().unwrap_or(0);
            p.head = st.head.max(newest_valid);
        }
        Session::None | Session::Clean(_) | Session::TakenOver(_) => plan_clean(opts, s, &mut p),
    }
    if !live {
        for (index, (name, _)) in &s.temps {
            let finished = p
                .actions
                .iter()
                .any(|a| matches!(a, Action::FinishLtrim { index: i, .. } if i == index));
            if !finished {
                p.actions.push(Action::RemoveTemp { name: name.clone() });
            }
        }
        if let Some(name) = &s.checkpoint_temp {
            p.actions.push(Action::RemoveTemp { name: name.clone() });
        }
    }
    plan_head(opts, s, dirty, &mut p);
    if !live {
        super::checks::plan_sealed(opts, s, &mut p);
        super::checks::plan_indexes(opts, s, &mut p);
    }
    p
}

fn newest(s: &Survey) -> u32 {
    s.data.keys().last().copied().unwrap_or(0)
}

/// An open with another naming or other genesis bytes than the state records: data files
/// of another naming are invisible to it, so it would create a second head file beside
/// the real one, and a crash there would make the next correct open cut the real head back.
fn format_mismatch(
    opts: &Options,
    recorded: &crate::format::Format,
    state_path: &Path,
) -> Option<Error> {
    let mismatch = |option: &'static str, ours: &dyn std::fmt::Display, theirs: String| {
        Error::config(
            option,
            ours,
            format!(
                "the directory was written with {option} = {theirs} (recorded in {}); open it \
                 with the same value",
                state_path.display()
            ),
        )
    };
    let (want, have) = (&recorded.naming, &opts.format.naming);
    if want.prefix != have.prefix {
        return Some(mismatch(
            "file_prefix",
            &format!("{:?}", have.prefix),
            format!("{:?}", want.prefix),
        ));
    }
    if want.padding != have.padding {
        return Some(mismatch(
            "file_padding",
            &have.padding,
            want.padding.to_string(),
        ));
    }
    if recorded.genesis != opts.format.genesis {
        return Some(mismatch(
            "genesis_bytes",
            &hex(&opts.format.genesis),
            hex(&recorded.genesis),
        ));
    }
    None
}

/// A dirty state: finish the operation it recorded, delete what came after its commit
/// (done above) and every checkpoint but its own.
fn plan_dirty(opts: &Options, s: &Survey, st: State, p: &mut Plan) {
    p.head = st.head;
    match st.pending {
        // Finished against the manifest (`checks.rs`).
        Pending::None | Pending::Rtrim { .. } => {}
        Pending::Ltrim { index, trim_offset } => {
            // An ltrim of a remote index writes no temp file: one there is a download of a
            // hydrate, stale (removed below), never renamed into place.
            let remote = s
                .manifest()
                .and_then(|m| m.get(index))
                .is_some_and(|r| r.remote);
            // No temp file: the rename happened.
            if let Some((name, extent)) = s.temps.get(&index).filter(|_| !remote) {
                let temp = opts.dir.join(name);
                match extent {
                    Err(e) => p.errors.push(e.clone()),
                    Ok(e) if e.trim_offset != trim_offset => {
                        p.errors.push(Error::FilesInconsistency {
                            path: temp,
                            reason: format!(
                                "pending ltrim to {trim_offset}, temp file header says {}",
                                e.trim_offset
                            ),
                        });
                    }
                    Ok(e) => {
                        p.actions.push(Action::FinishLtrim {
                            index,
                            temp: name.clone(),
                        });
                        p.files.insert(index, (e.trim_offset, e.end));
                    }
                }
            }
        }
        Pending::Drop { index } => {
            // Only an older file is ever recorded for dropping (the head moves first).
            if index >= st.head {
                p.errors.push(Error::FilesInconsistency {
                    path: opts.data_path(index),
                    reason: format!(
                        "a pending drop of index {index} at or above the head {}",
                        st.head
                    ),
                });
            } else if s.data.contains_key(&index) {
                p.actions.push(Action::FinishDrop { index });
                p.files.remove(&index);
            }
        }
    }
    let ours = (st.checkpoint != 0).then(|| py_checkpoint_name(st.checkpoint));
    for c in &s.checkpoints {
        if Some(&c.name) == ours.as_ref() {
            p.keep_checkpoint = Some(st.checkpoint);
        } else {
            p.actions.push(Action::RemoveCheckpoint {
                name: c.name.clone(),
            });
        }
    }
}

/// A clean state, none, or one another writer took over: trust the files, and apply a
/// pending Python checkpoint (cut each listed file back to its recorded length, after
/// checking its recorded last 8 bytes), as aiodiskdb 0.2.x does on start.
fn plan_clean(opts: &Options, s: &Survey, p: &mut Plan) {
    p.head = s.state().map_or(newest(s), |st| st.head.max(newest(s)));
    if s.checkpoints.len() > 1 {
        p.errors.push(Error::state(format!(
            "{} holds {} python checkpoint files; at most one can be pending",
            opts.dir.display(),
            s.checkpoints.len()
        )));
        return;
    }
    let Some(c) = s.checkpoints.first() else {
        return;
    };
    if !c.entries.is_empty() && c.entries.iter().all(|e| e.entry.is_guard()) {
        // Our guard, from a session that stopped before its first dirty record: nothing
        // changed under it.
        p.actions.push(Action::RemoveCheckpoint {
            name: c.name.clone(),
        });
        return;
    }
    let mut cuts = Vec::new();
    let mut ok = true;
    for check in &c.entries {
        let Some((len, last)) = check.found else {
            continue;
        };
        let e = &check.entry;
        let index = u32::try_from(e.index).expect("found files have u32 indexes");
        let path = opts.data_path(index);
        if len < e.file_len || e.file_len < HEADER_LEN {
            p.errors.push(invalid_file(
                &path,
                format!(
                    "python checkpoint {} expects at least {} bytes, the file has {len}",
                    c.name, e.file_len
                ),
            ));
            ok = false;
        } else if last != Some(e.last_bytes) {
            p.errors.push(invalid_file(
                &path,
                format!(
                    "last bytes before {} differ from python checkpoint {}",
                    e.file_len, c.name
                ),
            ));
            ok = false;
        } else if len > e.file_len {
            cuts.push((index, e.file_len));
        }
    }
    if ok {
        for &(index, len) in &cuts {
            if let Some((trim, end)) = p.files.get_mut(&index) {
                let stored = u32::try_from(len - HEADER_LEN).unwrap_or(u32::MAX);
                *end = (*end).min(trim.saturating_add(stored));
            }
        }
        p.actions.push(Action::ApplyCheckpoint {
            name: c.name.clone(),
            cuts,
        });
    }
}

/// The head file: created when missing (outside a dirty state), cut back to its committed
/// end in a dirty state.
fn plan_head(opts: &Options, s: &Survey, dirty: Option<State>, p: &mut Plan) {
    let head = p.head;
    let Some(&(trim, end)) = p.files.get(&head) else {
        if dirty.is_some() {
            p.errors.push(Error::FilesInconsistency {
                path: opts.data_path(head),
                reason: "the committed head file is missing".into(),
            });
        } else if u64::from(head) > opts.max_index() {
            p.errors.push(Error::DatabaseFull {
                index: u64::from(head),
                padding: opts.format.naming.padding,
            });
        } else if !matches!(p.session, Session::Live(_)) {
            p.actions.push(Action::CreateHead { index: head });
            p.files.insert(head, (0, 0));
        }
        return;
    };
    let Some(st) = dirty else { return };
    // The head's commits that check out, else the state's record.
    let committed = s.head_commit.map_or(st.head_end, |c| c.end);
    if committed < trim || committed > end || st.head_end > end {
        p.errors.push(Error::FilesInconsistency {
            path: opts.data_path(head),
            reason: format!(
                "committed data is missing: {committed} was committed, the file holds \
                 positions {trim}..{end}"
            ),
        });
    } else if committed < end {
        p.actions.push(Action::TruncateHead {
            index: head,
            from: end,
            to: committed,
        });
        p.files.insert(head, (trim, committed));
    }
}

/// What a problem found by the plan is about: the file it names, and what is wrong.
pub(crate) fn describe(e: &Error, state_path: &Path) -> (PathBuf, String) {
    match e {
        Error::InvalidDataFile { path, reason } | Error::FilesInconsistency { path, reason } => {
            (path.clone(), reason.clone())
        }
        Error::InvalidConfiguration {
            option,
            value,
            reason,
        } => (
            state_path.to_path_buf(),
            format!("{option} = {value}: {reason}"),
        ),
        Error::Io { path, .. } => (path.clone(), e.to_string()),
        other => (state_path.to_path_buf(), other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::survey::{Checkpoint, EntryCheck};
    use super::*;
    use crate::datafile::Extent;
    use crate::format::{Format, Naming, PyCheckpointEntry, Slot};

    fn opts() -> Options {
        Options {
            dir: "/db".into(),
            format: Format {
                naming: Naming {
                    prefix: "data".into(),
                    padding: 5,
                },
                genesis: crate::format::DEFAULT_GENESIS,
            },
            sync: true,
            create_if_missing: true,
            clean_stale_data: true,
            lock_wait: Duration::from_secs(1),
            remote: None,
        }
    }

    #[expect(clippy::unnecessary_wraps, reason = "a survey holds results")]
    fn extent(trim_offset: u32, end: u32) -> std::result::Result<Extent, Error> {
        Ok(Extent {
            trim_offset,
            end,
            len: HEADER_LEN + u64::from(end - trim_offset),
        })
    }

    fn state(clean: bool, head: u32, head_end: u32, pending: Pending, checkpoint: u64) -> Slot {
        Slot {
            state: State {
                seq: 7,
                clean,
                head,
                head_end,
                pending,
                checkpoint,
                head_entries: 0,
                manifest: 0,
            },
            format: Some(opts().format),
        }
    }

    fn files(s: &Survey) -> Vec<(u32, (u32, u32))> {
        plan(&opts(), s, false).files.into_iter().collect()
    }

    #[test]
    fn a_new_directory_creates_its_head() {
        let p = plan(&opts(), &Survey::default(), false);
        assert_eq!(p.session, Session::None);
        assert_eq!(p.actions, vec![Action::CreateHead { index: 0 }]);
        assert!(p.errors.is_empty());
    }

    #[test]
    fn a_dirty_state_cuts_back_to_its_commit_and_keeps_its_checkpoint() {
        let mut s = Survey {
            slot: Some(state(false, 1, 50, Pending::None, 99)),
            ..Survey::default()
        };
        s.data.insert(0, extent(0, 100));
        s.data.insert(1, extent(0, 80));
        s.data
            .insert(2, Err(invalid_file(Path::new("/db/data00002.dat"), "torn")));
        s.checkpoints.push(Checkpoint {
            name: ".checkpoint-99".into(),
            entries: Vec::new(),
        });
        s.checkpoints.push(Checkpoint {
            name: ".checkpoint-5".into(),
            entries: Vec::new(),
        });
        let p = plan(&opts(), &s, false);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(
            p.actions,
            vec![
                Action::RemoveUncommitted { index: 2 },
                Action::RemoveCheckpoint {
                    name: ".checkpoint-5".into()
                },
                Action::TruncateHead {
                    index: 1,
                    from: 80,
                    to: 50
                },
            ]
        );
        assert_eq!(p.keep_checkpoint, Some(99));
        assert_eq!(files(&s), vec![(0, (0, 100)), (1, (0, 50))]);
    }

    #[test]
    fn a_dirty_state_whose_checkpoint_is_gone_was_taken_over() {
        let mut s = Survey {
            slot: Some(state(false, 1, 50, Pending::None, 99)),
            ..Survey::default()
        };
        s.data.insert(1, extent(0, 80));
        s.data.insert(2, extent(0, 10));
        let p = plan(&opts(), &s, false);
        assert!(matches!(p.session, Session::TakenOver(_)));
        assert!(p.actions.is_empty() && p.errors.is_empty());
        assert_eq!(p.head, 2, "the files are authoritative");
    }

    #[test]
    fn committed_data_missing_is_an_error_not_a_cut() {
        let mut s = Survey {
            slot: Some(state(false, 0, 90, Pending::None, 0)),
            ..Survey::default()
        };
        s.data.insert(0, extent(0, 80));
        let p = plan(&opts(), &s, false);
        assert!(matches!(p.errors[..], [Error::FilesInconsistency { .. }]));
        let s = Survey {
            slot: Some(state(false, 3, 0, Pending::None, 0)),
            ..Survey::default()
        };
        let p = plan(&opts(), &s, false);
        assert!(
            matches!(&p.errors[..], [Error::FilesInconsistency { reason, .. }] if reason.contains("missing")),
            "{:?}",
            p.errors
        );
    }

    #[test]
    fn pending_operations_are_finished() {
        let mut s = Survey {
            slot: Some(state(
                false,
                2,
                10,
                Pending::Ltrim {
                    index: 0,
                    trim_offset: 40,
                },
                0,
            )),
            ..Survey::default()
        };
        s.data.insert(0, extent(0, 100));
        s.data.insert(2, extent(0, 10));
        s.temps
            .insert(0, (".tmp.data00000.dat".into(), extent(40, 100)));
        s.temps
            .insert(1, (".tmp.data00001.dat".into(), extent(0, 3)));
        let p = plan(&opts(), &s, false);
        assert_eq!(
            p.actions,
            vec![
                Action::FinishLtrim {
                    index: 0,
                    temp: ".tmp.data00000.dat".into()
                },
                Action::RemoveTemp {
                    name: ".tmp.data00001.dat".into()
                },
            ]
        );
        assert_eq!(p.files[&0], (40, 100));
        s.slot = Some(state(false, 2, 10, Pending::Drop { index: 0 }, 0));
        let p = plan(&opts(), &s, false);
        assert_eq!(p.actions[0], Action::FinishDrop { index: 0 });
        assert!(!p.files.contains_key(&0));
        s.slot = Some(state(false, 2, 10, Pending::Drop { index: 2 }, 0));
        assert!(
            !plan(&opts(), &s, false).errors.is_empty(),
            "never the head"
        );
    }

    #[test]
    fn a_hydrate_download_is_not_taken_for_a_remote_ltrim() {
        // A remote ltrim of index 0 to 40 pending (its manifest records the file remote),
        // and a hydrate's download of index 0 left with that very trim offset.
        let rec = crate::format::Sealed {
            index: 0,
            trim_offset: 40,
            end: 100,
            entries: 0,
            entries_crc: 0,
            data_crc: None,
            tail: [0; 8],
            remote: true,
            object: Some(crate::format::ObjectSpan {
                trim_offset: 0,
                end: 100,
                data_crc: 1,
            }),
        };
        let mut m = crate::format::Manifest::default().with(0, Some(rec));
        m.generation = 1;
        let mut slot = state(
            false,
            2,
            10,
            Pending::Ltrim {
                index: 0,
                trim_offset: 40,
            },
            0,
        );
        slot.state.manifest = 1;
        let mut s = Survey {
            slot: Some(slot),
            ..Survey::default()
        };
        s.manifests.insert(1, Some(m));
        s.data.insert(2, extent(0, 10));
        s.temps
            .insert(0, (".tmp.data00000.dat".into(), extent(40, 100)));
        let p = plan(&opts(), &s, false);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(
            p.actions,
            vec![Action::RemoveTemp {
                name: ".tmp.data00000.dat".into()
            }]
        );
        assert!(p.remote.contains(&0));
        assert_eq!(p.files[&0], (40, 100));
        // Another trim offset in the download: not an error either.
        s.temps
            .insert(0, (".tmp.data00000.dat".into(), extent(0, 100)));
        assert!(plan(&opts(), &s, false).errors.is_empty());
    }

    #[test]
    fn a_python_checkpoint_is_checked_then_applied() {
        let entry = |file_len| PyCheckpointEntry {
            index: 0,
            file_len,
            last_bytes: *b"abcdefgh",
        };
        let mut s = Survey::default();
        s.data.insert(0, extent(0, 100));
        s.checkpoints.push(Checkpoint {
            name: ".checkpoint-1".into(),
            entries: vec![EntryCheck {
                entry: entry(84),
                found: Some((124, Some(*b"abcdefgh"))),
            }],
        });
        let p = plan(&opts(), &s, false);
        assert_eq!(
            p.actions,
            vec![Action::ApplyCheckpoint {
                name: ".checkpoint-1".into(),
                cuts: vec![(0, 84)]
            }]
        );
        assert_eq!(p.files[&0], (0, 60));
        s.checkpoints[0].entries[0].found = Some((124, Some(*b"abcdefgX")));
        let p = plan(&opts(), &s, false);
        assert!(matches!(p.errors[..], [Error::InvalidDataFile { .. }]));
        assert!(
            p.actions.is_empty(),
            "a checkpoint that does not match cuts nothing"
        );
        s.checkpoints.push(s.checkpoints[0].clone());
        assert!(matches!(
            plan(&opts(), &s, false).errors[..],
            [Error::InvalidDbState { .. }]
        ));
    }

    #[test]
    fn another_format_bad_headers_and_refused_recovery_are_errors() {
        let mut s = Survey {
            slot: Some(state(true, 0, 0, Pending::None, 0)),
            ..Survey::default()
        };
        s.slot
            .as_mut()
            .unwrap()
            .format
            .as_mut()
            .unwrap()
            .naming
            .padding = 6;
        s.data
            .insert(0, Err(invalid_file(Path::new("/db/data00000.dat"), "bad")));
        let p = plan(&opts(), &s, false);
        assert!(matches!(
            p.errors[..],
            [
                Error::InvalidConfiguration {
                    option: "file_padding",
                    ..
                },
                Error::InvalidDataFile { .. }
            ]
        ));
        let mut o = opts();
        o.clean_stale_data = false;
        let s = Survey {
            slot: Some(state(false, 0, 0, Pending::None, 0)),
            ..Survey::default()
        };
        assert!(matches!(
            plan(&o, &s, false).errors[..],
            [Error::InvalidDbState { .. }, ..]
        ));
    }

    #[test]
    fn a_live_session_plans_nothing() {
        let mut s = Survey {
            slot: Some(state(false, 0, 10, Pending::None, 5)),
            ..Survey::default()
        };
        s.data.insert(0, extent(0, 50));
        let p = plan(&opts(), &s, true);
        assert!(matches!(p.session, Session::Live(_)));
        assert!(p.actions.is_empty() && p.errors.is_empty());
    }

    /// A live writer rolling over creates the next file and then writes its header: a
    /// survey between the two sees a file shorter than its header beyond the recorded
    /// head (`check` beside a writer reported "header too short: 0 bytes" for it).
    #[test]
    fn a_live_writers_file_without_its_header_yet_is_no_problem() {
        let mut s = Survey {
            slot: Some(state(false, 1, 10, Pending::None, 5)),
            ..Survey::default()
        };
        s.data.insert(0, extent(0, 50));
        s.data.insert(1, extent(0, 10));
        let short = || {
            let reason = crate::format::Header::decode(&[], [0; 4]).unwrap_err();
            Err(invalid_file(Path::new("/db/data00002.dat"), reason))
        };
        s.data.insert(2, short());
        let p = plan(&opts(), &s, true);
        assert!(
            p.actions.is_empty() && p.errors.is_empty(),
            "{:?}",
            p.errors
        );
        assert_eq!(p.head, 1);
        assert_eq!(p.files.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
        // Once its header is there it is the head, as the files are ahead of the state.
        s.data.insert(2, extent(0, 0));
        assert_eq!(plan(&opts(), &s, true).head, 2);
        // A bad file at or below the recorded head is still reported, and so is one
        // beyond it when no writer holds the directory, or that is bad otherwise.
        s.data.insert(1, short());
        assert_eq!(plan(&opts(), &s, true).errors.len(), 1);
        s.data.insert(1, extent(0, 10));
        s.data.insert(
            2,
            Err(invalid_file(
                Path::new("/db/data00002.dat"),
                "wrong genesis bytes 00000000, expected f9beb4d9",
            )),
        );
        assert_eq!(plan(&opts(), &s, true).errors.len(), 1);
        s.data.insert(2, short());
        s.slot = Some(state(true, 1, 10, Pending::None, 5));
        assert_eq!(plan(&opts(), &s, false).errors.len(), 1);
    }
}
