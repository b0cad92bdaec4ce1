//! The trims: `rtrim`, `ltrim` and `drop_index`, each validated before anything changes,
//! then carried out in the order that keeps every crash recoverable (`docs/design.md`,
//! Trims). A file below the head changes only after a new manifest recording what it will
//! hold is committed by a state record with the operation pending, so that recovery
//! finishes it; the head's new end is committed by the state record itself.

use std::ops::Range;

use bytes::Bytes;

use super::Store;
use crate::catalog::FileInfo;
use crate::datafile::{Access, DataFile};
use crate::error::{Error, IoContext, Result};
use crate::format::{Entry, IndexHeader, Pending, Sealed};
use crate::fs::{remove_if_exists, seeded};
use crate::index::IndexFile;

/// What a trim or drop did.
#[derive(Debug, Default)]
pub(crate) struct TrimOutcome {
    /// Item bytes removed.
    pub(crate) trimmed: u64,
    /// `(index, item bytes)` of a deleted file.
    pub(crate) dropped: Option<(u32, u64)>,
    /// The deleted file was on object storage: its object is to be deleted (it is named
    /// by nothing any more).
    #[cfg_attr(
        not(feature = "tiering"),
        expect(dead_code, reason = "only tiering has remote files to delete")
    )]
    pub(crate) remote: bool,
}

/// The stored bytes a safety check of a remote index is compared with, read from its
/// object (a ranged GET, checked against the item index) before the trim runs in the
/// store, which does no network I/O: `bytes` at logical position `at`.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub(crate) at: u32,
    pub(crate) bytes: Bytes,
}

/// The logical range a safety check of `len` bytes compares with in an rtrim from `from`
/// (the first bytes cut), if `info` stores it wholly.
pub(crate) fn rtrim_check_range(info: FileInfo, from: u32, len: usize) -> Option<Range<u32>> {
    let end = u32::try_from(u64::from(from) + len as u64).ok()?;
    info.holds(from, u64::from(end)).then_some(from..end)
}

/// The logical range a safety check of `len` bytes compares with in an ltrim to `to` (the
/// last bytes removed), if `info` stores it wholly.
pub(crate) fn ltrim_check_range(info: FileInfo, to: u32, len: usize) -> Option<Range<u32>> {
    let start = u32::try_from(u64::from(to).checked_sub(len as u64)?).ok()?;
    info.holds(start, u64::from(to)).then_some(start..to)
}

impl Store {
    /// The data file of `index`, open for writing (the head's handle, or a fresh one).
    fn data_file(&self, index: u32) -> Result<DataFile> {
        if index == self.catalog.head() {
            return Ok(self.head.file.clone());
        }
        let path = self.data_path(index);
        Ok(DataFile::open(
            self.fs.as_ref(),
            &path,
            self.opts.format.genesis,
            Access::Write,
        )?
        .0)
    }

    /// Whether the `check.len()` bytes at logical `at` of `index` (as `info`) equal
    /// `check`: read from its data file, or, for a remote index, `fetched` from its object.
    fn stored_equals(
        &self,
        index: u32,
        info: FileInfo,
        at: u32,
        check: &[u8],
        fetched: Option<&Fetched>,
    ) -> Result<bool> {
        if info.remote {
            return match fetched {
                Some(f) if f.at == at && f.bytes.len() == check.len() => Ok(f.bytes == check),
                _ => Err(Error::state(format!(
                    "the safety check of remote index {index} was not read from its object"
                ))),
            };
        }
        let f = self.data_file(index)?;
        let mut got = vec![0u8; check.len()];
        f.read(at, &mut got).ctx("read data file", f.path())?;
        Ok(got == check)
    }

    /// How many of the first `entries` index entries of `index` end at or before `end`.
    fn entries_within(&self, index: u32, entries: u32, end: u32) -> Result<u32> {
        let Some(idx) = IndexFile::open(self.fs.as_ref(), &self.opts.index_path(index))? else {
            return Ok(0);
        };
        let all: Vec<Entry> = idx.entries(0, Some(entries))?;
        let kept = all.iter().take_while(|e| e.end <= end).count();
        Ok(u32::try_from(kept).expect("fewer entries than u32"))
    }

    /// Commits, for `index` below the head, what it will hold after a trim (`record`;
    /// `None`: nothing, a drop): a new manifest, named by a state record with `pending` so
    /// that recovery finishes the trim.
    fn commit_older(&mut self, index: u32, record: Option<Sealed>, pending: Pending) -> Result<()> {
        let mut next = self.manifest.with(index, record);
        next.generation = self.manifest.generation + 1;
        self.publish_manifest(next)?;
        self.write_head_state(false, pending)?;
        self.forget_old_manifest()
    }

    /// [`Store::seal_record`] of a file whose data may not be trimmed yet: its checksum is
    /// of the range `info` names, read from the file as it is.
    fn seal_record_of(&self, index: u32, info: FileInfo) -> Result<Sealed> {
        self.seal_record(index, info, None)
    }

    /// Trims `index`, on object storage, to the logical range `[trim_offset, end)`. The
    /// object is never rewritten: the trim is a manifest recording the new range, the
    /// entries its item index keeps (those that end by `end`; the index file is not cut,
    /// as for a local older file) and, unchanged, what the object holds, committed by a
    /// state record with the trim `pending` (nothing is left to finish: recovery takes the
    /// manifest's record), then `pending = none`. From the commit on, reads of the range
    /// trimmed are `None`, though the object still holds the bytes.
    fn trim_remote(
        &mut self,
        index: u32,
        trim_offset: u32,
        end: u32,
        pending: Pending,
    ) -> Result<()> {
        let info = self.file_info(index)?;
        let Some(rec) = self.manifest.get(index).copied().filter(|r| r.remote) else {
            return Err(Error::state(format!(
                "remote index {index} is not recorded remote in the manifest"
            )));
        };
        let Some(object) = rec.object_span() else {
            return Err(Error::state(format!(
                "remote index {index} is recorded without its object's checksum"
            )));
        };
        let entries = self.entries_within(index, info.entries, end)?;
        let mut record = Sealed {
            index,
            trim_offset,
            end,
            entries,
            entries_crc: self.entries_crc(index, entries)?,
            // Of the kept bytes, not local: not known (hydrate computes both).
            data_crc: None,
            tail: [0; 8],
            remote: true,
            object: Some(object),
        };
        if seeded!(self.fs, RemoteTrimObjectForgotten) {
            // Recorded as if the object held just the new range.
            record.object = None;
            record.data_crc = Some(object.data_crc);
        }
        if seeded!(self.fs, RemoteTrimBeforeCommit) {
            // Served as trimmed and acknowledged before a state names the manifest.
            let mut next = self.manifest.with(index, Some(record));
            next.generation = self.manifest.generation + 1;
            self.publish_manifest(next)?;
        } else {
            self.commit_older(index, Some(record), pending)?;
        }
        self.catalog
            .set_remote_file(index, trim_offset, end, entries, object.range());
        if seeded!(self.fs, RemoteTrimBeforeCommit) {
            return Ok(());
        }
        self.write_head_state(false, Pending::None)
    }

    /// Cuts `index` from logical position `from` to its end. See `AioDiskDb::rtrim`.
    /// `fetched`: for a remote index with a safety check, the bytes it compares with.
    pub(crate) fn rtrim(
        &mut self,
        index: u32,
        from: u32,
        check: &[u8],
        fetched: Option<&Fetched>,
    ) -> Result<TrimOutcome> {
        let info = self.file_info(index)?;
        let is_head = index == self.catalog.head();
        if from > info.end {
            return Err(Error::trim(
                index,
                format!(
                    "trim_from {from} is past the end of the index ({})",
                    info.end
                ),
            ));
        }
        if !check.is_empty() {
            if rtrim_check_range(info, from, check.len()).is_none() {
                return Err(Error::trim(
                    index,
                    format!(
                        "safety check of {} bytes at {from} is outside the stored range {}..{}",
                        check.len(),
                        info.trim_offset,
                        info.end
                    ),
                ));
            }
            if !self.stored_equals(index, info, from, check, fetched)? {
                return Err(Error::trim(
                    index,
                    "safety check failed: the bytes at trim_from differ",
                ));
            }
        }
        if from == 0 && !is_head {
            return self.drop_index(index);
        }
        let new_end = from.max(info.trim_offset);
        let trimmed = u64::from(info.end - new_end);
        if trimmed == 0 {
            return Ok(TrimOutcome::default());
        }
        // Validated: from here on the directory changes.
        self.mark_dirty()?;
        let info = self.file_info(index)?;
        if info.remote {
            self.trim_remote(index, info.trim_offset, new_end, Pending::Rtrim { index })?;
            return Ok(TrimOutcome {
                trimmed,
                dropped: None,
                remote: false,
            });
        }
        let file = self.data_file(index)?;
        let entries = if is_head {
            0
        } else {
            self.entries_within(index, info.entries, new_end)?
        };
        let cut = FileInfo {
            end: new_end,
            entries,
            ..info
        };
        if is_head {
            self.rtrim_head(index, info, &file, new_end)?;
        } else {
            let record = self.seal_record_of(index, cut)?;
            self.commit_older(index, Some(record), Pending::Rtrim { index })?;
            file.truncate(new_end)
                .ctx("truncate data file", file.path())?;
            if self.opts.sync {
                file.sync().ctx("sync data file", file.path())?;
            }
            self.catalog.set(index, info.trim_offset, new_end, entries);
            self.write_head_state(false, Pending::None)?;
        }
        Ok(TrimOutcome {
            trimmed,
            dropped: None,
            remote: false,
        })
    }

    /// The rtrim of the head to `new_end` (validated; the session marked dirty).
    fn rtrim_head(
        &mut self,
        index: u32,
        info: FileInfo,
        file: &DataFile,
        new_end: u32,
    ) -> Result<()> {
        // The new end is committed, with the trim pending (so that recovery finishes
        // it rather than checking the head's commits, which name bytes about to go),
        // before the bytes go; then the item index is cut to match.
        if seeded!(self.fs, TruncateBeforeCommit) {
            file.truncate(new_end)
                .ctx("truncate data file", file.path())?;
        }
        let idx = self
            .head
            .idx
            .clone()
            .expect("marked dirty: the head is indexed");
        let kept = crate::index::cut_len(&idx, file, Some(info.entries), new_end)?;
        let pending = Pending::Rtrim { index };
        self.write_state(false, index, new_end, kept.unwrap_or(0), pending)?;
        file.truncate(new_end)
            .ctx("truncate data file", file.path())?;
        if self.opts.sync {
            file.sync().ctx("sync data file", file.path())?;
        }
        self.head_sums = None;
        if kept.is_some() {
            let n = crate::index::cut(&idx, file, Some(info.entries), new_end)?;
            if self.opts.sync {
                idx.sync().ctx("sync index file", idx.path())?;
            }
            self.catalog.set_head_end(new_end, n);
            self.write_head_state(false, Pending::None)?;
        } else {
            // The fresh index starts at the new end.
            self.catalog.set_head_end(new_end, 0);
            self.restart_head_index()?;
            self.write_head_state(false, Pending::None)?;
        }
        Ok(())
    }

    /// Removes the bytes of `index` before logical position `to`. See `AioDiskDb::ltrim`.
    /// `fetched`: for a remote index with a safety check, the bytes it compares with.
    pub(crate) fn ltrim(
        &mut self,
        index: u32,
        to: u32,
        check: &[u8],
        fetched: Option<&Fetched>,
    ) -> Result<TrimOutcome> {
        let info = self.file_info(index)?;
        if to <= info.trim_offset {
            return Err(Error::trim(
                index,
                format!(
                    "trim_to {to} must be above the current trim offset {}",
                    info.trim_offset
                ),
            ));
        }
        if to > info.end {
            return Err(Error::trim(
                index,
                format!("trim_to {to} is past the end of the index ({})", info.end),
            ));
        }
        if !check.is_empty() {
            let Some(range) = ltrim_check_range(info, to, check.len()) else {
                return Err(Error::trim(
                    index,
                    format!(
                        "safety check of {} bytes before {to} reaches below the trim offset {}",
                        check.len(),
                        info.trim_offset
                    ),
                ));
            };
            if !self.stored_equals(index, info, range.start, check, fetched)? {
                return Err(Error::trim(
                    index,
                    "safety check failed: the bytes before trim_to differ",
                ));
            }
        }
        if to == info.end {
            return self.drop_index(index);
        }
        // Validated: from here on the directory changes.
        self.mark_dirty()?;
        let info = self.file_info(index)?;
        let trimmed = u64::from(to - info.trim_offset);
        if info.remote {
            let pending = Pending::Ltrim {
                index,
                trim_offset: to,
            };
            self.trim_remote(index, to, info.end, pending)?;
            return Ok(TrimOutcome {
                trimmed,
                dropped: None,
                remote: false,
            });
        }
        let is_head = index == self.catalog.head();
        let naming = &self.opts.format.naming;
        let temp = self.opts.dir.join(naming.temp_file(index));
        remove_if_exists(self.fs.as_ref(), &temp).ctx("remove temp file", &temp)?;
        let src = self.data_file(index)?;
        let dst = DataFile::create(self.fs.as_ref(), &temp, self.opts.format.genesis, to, false)?;
        let kept_crc = src.copy_to(&dst, to, info.end)?;
        if self.opts.sync {
            dst.sync().ctx("sync temp file", &temp)?;
        }
        // The item index stays as it is: positions do not move, and the items before `to`
        // are simply no longer stored.
        let pending = Pending::Ltrim {
            index,
            trim_offset: to,
        };
        if is_head {
            self.write_head_state(false, pending)?;
        } else {
            let mut record = match self.manifest.get(index) {
                Some(r) => *r,
                None => self.seal_record_of(index, info)?,
            };
            record.trim_offset = to;
            record.data_crc = Some(kept_crc);
            // The new file's last 8 bytes: the same item bytes unless fewer than 8 are
            // kept, when they start in its header.
            record.tail = dst.tail(info.end).ctx("read temp file", &temp)?;
            self.commit_older(index, Some(record), pending)?;
        }
        let path = self.data_path(index);
        self.fs
            .rename(&temp, &path)
            .ctx("rename temp file", &temp)?;
        self.sync_dir()?;
        if is_head {
            let genesis = self.opts.format.genesis;
            self.head.file = DataFile::open(self.fs.as_ref(), &path, genesis, Access::Write)?.0;
            self.head_sums = None;
        }
        self.catalog.set(index, to, info.end, info.entries);
        self.write_head_state(false, Pending::None)?;
        Ok(TrimOutcome {
            trimmed,
            dropped: None,
            remote: false,
        })
    }

    /// Deletes the data file of `index` (and its item index). Dropping the head moves
    /// appends to a new index.
    pub(crate) fn drop_index(&mut self, index: u32) -> Result<TrimOutcome> {
        let info: FileInfo = self.file_info(index)?;
        let path = self.data_path(index);
        let idx_path = self.opts.index_path(index);
        if index == self.catalog.head() {
            let next = u64::from(index) + 1;
            let Some(next) = u32::try_from(next)
                .ok()
                .filter(|_| next <= self.opts.max_index())
            else {
                return Err(Error::DatabaseFull {
                    index: next,
                    padding: self.opts.format.naming.padding,
                });
            };
            self.mark_dirty()?;
            let genesis = self.opts.format.genesis;
            let f = DataFile::create(
                self.fs.as_ref(),
                &self.data_path(next),
                genesis,
                0,
                self.opts.sync,
            )?;
            let next_idx_path = self.opts.index_path(next);
            remove_if_exists(self.fs.as_ref(), &next_idx_path)
                .ctx("remove index file", &next_idx_path)?;
            let header = IndexHeader {
                index: next,
                first: 0,
                genesis,
            };
            let idx = IndexFile::create(self.fs.as_ref(), &next_idx_path, header, self.opts.sync)?;
            self.sync_dir()?;
            self.write_state(false, next, 0, 0, Pending::Drop { index })?;
            self.head.file = f;
            self.head.idx = Some(idx);
            self.head.seq = 0;
            self.head_sums = Some(super::Sums {
                data: 0,
                entries: 0,
            });
            self.catalog.roll_to(next);
            self.fs.remove(&path).ctx("remove data file", &path)?;
            remove_if_exists(self.fs.as_ref(), &idx_path).ctx("remove index file", &idx_path)?;
            self.sync_dir()?;
            self.write_state(false, next, 0, 0, Pending::None)?;
        } else {
            self.mark_dirty()?;
            self.commit_older(index, None, Pending::Drop { index })?;
            if info.remote {
                // Only a local copy a crash left behind (recovery deletes it too).
                remove_if_exists(self.fs.as_ref(), &path).ctx("remove data file", &path)?;
            } else {
                self.fs.remove(&path).ctx("remove data file", &path)?;
            }
            remove_if_exists(self.fs.as_ref(), &idx_path).ctx("remove index file", &idx_path)?;
            self.sync_dir()?;
            self.write_head_state(false, Pending::None)?;
        }
        self.catalog.remove(index);
        Ok(TrimOutcome {
            trimmed: info.data_len(),
            dropped: Some((index, info.data_len())),
            remote: info.remote,
        })
    }
}
