//! What the plan checks of the files below the head (against the manifest the state names)
//! and of the item indexes: a sealed file cut, extended, zeroed, swapped, renamed or
//! deleted is an error naming the file and what is wrong, never data read as missing; an
//! index is kept only for a file that is there, and only as far as it was committed.

use super::plan::{Action, Plan, Session};
use super::survey::Survey;
use crate::error::Error;
use crate::format::Pending;
use crate::store::Options;

fn inconsistent(opts: &Options, index: u32, reason: String) -> Error {
    Error::FilesInconsistency {
        path: opts.data_path(index),
        reason,
    }
}

/// The sealed files against the manifest the state names, and the state's head against
/// the record of a clean (or taken-over) state.
pub(crate) fn plan_sealed(opts: &Options, s: &Survey, p: &mut Plan) {
    let state = s.state();
    let named = state.map_or(0, |st| st.manifest);
    for &generation in s.manifests.keys() {
        if generation != named {
            p.actions.push(Action::RemoveManifest { generation });
        }
    }
    if let Some(st) = state {
        plan_recorded_head(opts, s, st, p);
    }
    if named == 0 {
        return;
    }
    let Some(m) = s.manifest() else {
        p.errors.push(Error::FilesInconsistency {
            path: opts.manifest_path(named),
            reason: "the manifest of sealed files that the state names is missing or damaged"
                .into(),
        });
        return;
    };
    p.manifest = m.clone();
    let pending = match p.session {
        Session::Dirty(st) => st.pending,
        _ => Pending::None,
    };
    for rec in &m.files {
        if rec.index >= p.head {
            continue;
        }
        if rec.remote {
            // On object storage: a local copy is what a crash left between the record
            // and the deletion. Its checksums were verified before the record.
            if s.data.contains_key(&rec.index) {
                p.actions.push(Action::RemoveLocalCopy { index: rec.index });
                p.errors
                    .retain(|e| !names_file(e, &opts.data_path(rec.index)));
            }
            p.files.insert(rec.index, (rec.trim_offset, rec.end));
            p.entries.insert(rec.index, rec.entries);
            p.remote.insert(rec.index);
            continue;
        }
        let Some(found) = s.data.get(&rec.index) else {
            if pending != (Pending::Drop { index: rec.index }) {
                p.errors.push(inconsistent(
                    opts,
                    rec.index,
                    format!(
                        "the file is missing: the manifest records positions {}..{} in it",
                        rec.trim_offset, rec.end
                    ),
                ));
            }
            continue;
        };
        if let Ok(e) = found {
            check_record(opts, s, rec, e, pending, p);
        }
        p.entries.insert(rec.index, rec.entries);
    }
}

/// Whether `e` is about the file at `path` (a local copy's header, going anyway).
fn names_file(e: &Error, path: &std::path::Path) -> bool {
    matches!(e, Error::InvalidDataFile { path: p, .. } if p == path)
}

/// One sealed file against its manifest record (a bad header is reported already).
fn check_record(
    opts: &Options,
    s: &Survey,
    rec: &crate::format::Sealed,
    e: &crate::datafile::Extent,
    pending: Pending,
    p: &mut Plan,
) {
    // An ltrim recorded but not renamed into place (or whose temp file is gone: the
    // Python library deletes them): the file still holds the bytes below the new trim
    // offset, and the rest as recorded.
    let ltrim_pending = matches!(
        pending,
        Pending::Ltrim { index, trim_offset } if index == rec.index && trim_offset == rec.trim_offset
    ) && e.trim_offset < rec.trim_offset;
    if e.trim_offset != rec.trim_offset && !ltrim_pending {
        p.errors.push(inconsistent(
            opts,
            rec.index,
            format!(
                "its header says trim offset {}, the manifest records {} (another file \
                 under this name, or an altered header)",
                e.trim_offset, rec.trim_offset
            ),
        ));
    } else if e.end < rec.end {
        p.errors.push(inconsistent(
            opts,
            rec.index,
            format!(
                "the file was cut: it ends at position {}, the manifest records {} ({} \
                 bytes missing)",
                e.end,
                rec.end,
                rec.end - e.end
            ),
        ));
    } else if e.end > rec.end {
        if pending == (Pending::Rtrim { index: rec.index }) {
            p.actions.push(Action::FinishRtrim {
                index: rec.index,
                to: rec.end,
            });
            p.files.insert(rec.index, (rec.trim_offset, rec.end));
        } else {
            p.errors.push(inconsistent(
                opts,
                rec.index,
                format!(
                    "the file was extended: it ends at position {}, past the end {} the \
                     manifest records",
                    e.end, rec.end
                ),
            ));
        }
    } else if s.sealed_tails.get(&rec.index) != Some(&rec.tail) {
        p.errors.push(inconsistent(
            opts,
            rec.index,
            "the bytes before its end differ from the manifest's record (zeroed or \
             altered)"
                .into(),
        ));
    }
}

/// In a clean or taken-over state, the head the state records still holds what it
/// records: a head file deleted or cut below its recorded end is reported, never
/// recreated or reused (an old location would read new data).
fn plan_recorded_head(opts: &Options, s: &Survey, st: crate::format::State, p: &mut Plan) {
    if !matches!(p.session, Session::Clean(_) | Session::TakenOver(_)) || st.head_end == 0 {
        return;
    }
    match s.data.get(&st.head) {
        None => p.errors.push(inconsistent(
            opts,
            st.head,
            format!(
                "the head file is missing: the state records positions up to {} in it",
                st.head_end
            ),
        )),
        Some(Ok(e)) if e.end < st.head_end => p.errors.push(inconsistent(
            opts,
            st.head,
            format!(
                "the head file was cut: it ends at position {}, the state records {}",
                e.end, st.head_end
            ),
        )),
        _ => {}
    }
}

/// The item indexes: removed for a file that is gone and when not valid; the head's kept
/// (and cut back to what was committed) only if it reaches the head's end.
pub(crate) fn plan_indexes(opts: &Options, s: &Survey, p: &mut Plan) {
    for (&index, &valid) in &s.indexes {
        if !valid || !p.files.contains_key(&index) {
            p.actions.push(Action::RemoveIndex { index });
        }
    }
    // A file whose committed entries have no valid index any more: its items are served
    // unchecked from now on (the readers find no index), which is reported, by `verify`
    // too (not an error: nothing is lost but the checking).
    let lost: Vec<(u32, u32)> = p
        .entries
        .iter()
        .filter(|&(i, &n)| n > 0 && s.indexes.get(i) != Some(&true) && p.files.contains_key(i))
        .map(|(&i, &n)| (i, n))
        .collect();
    for (index, n) in lost {
        p.warnings.push(Error::FilesInconsistency {
            path: opts.index_path(index),
            reason: format!(
                "the item index is missing or not valid: the {n} entries committed for {} \
                 are lost, and its items are served unchecked",
                opts.format.naming.data_file(index)
            ),
        });
    }
    p.entries.retain(|i, _| p.files.contains_key(i));
    let Some(st) = s.state() else { return };
    let valid = |i: u32| s.indexes.get(&i) == Some(&true);
    let committed = match p.session {
        Session::Dirty(_) | Session::TakenOver(_) => s.head_commit,
        Session::Clean(_) => Some(crate::index::HeadCommit {
            end: st.head_end,
            entries: st.head_entries,
        }),
        Session::None | Session::Live(_) => None,
    };
    if let Some(c) = committed.filter(|c| c.entries > 0 && !valid(st.head)) {
        if p.files.contains_key(&st.head) {
            // Recorded, so that `verify` reports it too; the first change of the session
            // gives the head a new index from its end.
            p.entries.insert(st.head, c.entries);
            p.warnings.push(Error::FilesInconsistency {
                path: opts.index_path(st.head),
                reason: format!(
                    "the item index is missing or not valid: the {} entries committed for {} \
                     are lost, and its items are served unchecked",
                    c.entries,
                    opts.format.naming.data_file(st.head)
                ),
            });
        }
    }
    let Some(c) = committed.filter(|_| valid(st.head) && p.files.contains_key(&st.head)) else {
        return;
    };
    if matches!(p.session, Session::Dirty(_)) && st.pending == (Pending::Rtrim { index: st.head }) {
        // Finish the head's rtrim: its index is cut where the state says, or, when the
        // rtrim recorded none left, replaced at the next change.
        if st.head_entries == 0 {
            p.actions.push(Action::RemoveIndex { index: st.head });
        } else {
            p.entries.insert(st.head, st.head_entries);
            p.actions.push(Action::CutIndex {
                index: st.head,
                end: st.head_end,
            });
            p.head_indexed = st.head == p.head;
        }
        return;
    }
    p.entries.insert(st.head, c.entries);
    if !matches!(p.session, Session::Clean(_)) {
        p.actions.push(Action::TruncateIndex {
            index: st.head,
            entries: c.entries,
        });
    }
    let end = p.files.get(&st.head).map_or(0, |f| f.1);
    p.head_indexed = st.head == p.head && end == c.end;
}
