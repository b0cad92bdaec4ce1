//! The trims: `rtrim`, `ltrim` and `drop_index`, each validated before anything changes,
//! then carried out in the order that keeps every crash recoverable (`docs/design.md`,
//! Trims).

use super::{empty_file_entry, Store};
use crate::catalog::FileInfo;
use crate::datafile::{Access, DataFile};
use crate::error::{Error, IoContext, Result};
use crate::format::Pending;
use crate::fs::{remove_if_exists, seeded};

/// What a trim or drop did.
#[derive(Debug, Default)]
pub(crate) struct TrimOutcome {
    /// Item bytes removed.
    pub(crate) trimmed: u64,
    /// `(index, item bytes)` of a deleted file.
    pub(crate) dropped: Option<(u32, u64)>,
}

impl Store {
    /// The data file of `index`, open for writing (the head's handle, or a fresh one).
    fn data_file(&self, index: u32) -> Result<DataFile> {
        if index == self.catalog.head() {
            return Ok(self.head_file.clone());
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

    /// Whether the `check.len()` bytes at logical `at` of `index` equal `check`.
    fn stored_equals(&self, index: u32, at: u32, check: &[u8]) -> Result<bool> {
        let f = self.data_file(index)?;
        let mut got = vec![0u8; check.len()];
        f.read(at, &mut got).ctx("read data file", f.path())?;
        Ok(got == check)
    }

    /// Cuts `index` from logical position `from` to its end. See `AioDiskDb::rtrim`.
    pub(crate) fn rtrim(&mut self, index: u32, from: u32, check: &[u8]) -> Result<TrimOutcome> {
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
            if !info.holds(from, u64::from(from) + check.len() as u64) {
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
            if !self.stored_equals(index, from, check)? {
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
        let file = self.data_file(index)?;
        if is_head {
            // The new end must be committed before the bytes go, or recovery would find
            // committed data missing; the checkpoint likewise, or the Python library would
            // find the file shorter than it says and refuse to start.
            if seeded!(self.fs, TruncateBeforeCommit) {
                file.truncate(new_end)
                    .ctx("truncate data file", file.path())?;
            }
            self.checkpoint_head_at(new_end)?;
            self.write_state(false, index, new_end, Pending::None)?;
        }
        file.truncate(new_end)
            .ctx("truncate data file", file.path())?;
        if self.opts.sync {
            file.sync().ctx("sync data file", file.path())?;
        }
        self.catalog.set(index, info.trim_offset, new_end);
        Ok(TrimOutcome {
            trimmed,
            dropped: None,
        })
    }

    /// Removes the bytes of `index` before logical position `to`. See `AioDiskDb::ltrim`.
    pub(crate) fn ltrim(&mut self, index: u32, to: u32, check: &[u8]) -> Result<TrimOutcome> {
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
            let start = u64::from(to).checked_sub(check.len() as u64);
            match start.and_then(|s| u32::try_from(s).ok()) {
                Some(s) if s >= info.trim_offset => {
                    if !self.stored_equals(index, s, check)? {
                        return Err(Error::trim(
                            index,
                            "safety check failed: the bytes before trim_to differ",
                        ));
                    }
                }
                _ => {
                    return Err(Error::trim(
                        index,
                        format!(
                            "safety check of {} bytes before {to} reaches below the trim offset {}",
                            check.len(),
                            info.trim_offset
                        ),
                    ))
                }
            }
        }
        if to == info.end {
            return self.drop_index(index);
        }
        // Validated: from here on the directory changes.
        self.mark_dirty()?;
        let is_head = index == self.catalog.head();
        let naming = &self.opts.format.naming;
        let temp = self.opts.dir.join(naming.temp_file(index));
        remove_if_exists(self.fs.as_ref(), &temp).ctx("remove temp file", &temp)?;
        let src = self.data_file(index)?;
        let dst = DataFile::create(self.fs.as_ref(), &temp, self.opts.format.genesis, to, false)?;
        src.copy_to(&dst, to, info.end)?;
        if self.opts.sync {
            dst.sync().ctx("sync temp file", &temp)?;
        }
        let (head, head_end) = (self.catalog.head(), self.catalog.head_info().end);
        self.write_state(
            false,
            head,
            head_end,
            Pending::Ltrim {
                index,
                trim_offset: to,
            },
        )?;
        let path = self.data_path(index);
        self.fs
            .rename(&temp, &path)
            .ctx("rename temp file", &temp)?;
        self.sync_dir()?;
        if is_head {
            let genesis = self.opts.format.genesis;
            self.head_file = DataFile::open(self.fs.as_ref(), &path, genesis, Access::Write)?.0;
            // The head file is shorter now: until the checkpoint says so too, the Python
            // library would refuse to start (never cut anything).
            self.checkpoint_head_at(info.end)?;
        }
        self.write_state(false, head, head_end, Pending::None)?;
        self.catalog.set(index, to, info.end);
        Ok(TrimOutcome {
            trimmed: u64::from(to - info.trim_offset),
            dropped: None,
        })
    }

    /// Deletes the data file of `index`. Dropping the head moves appends to a new index.
    pub(crate) fn drop_index(&mut self, index: u32) -> Result<TrimOutcome> {
        let info: FileInfo = self.file_info(index)?;
        let path = self.data_path(index);
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
            // The new head is listed in the checkpoint before it exists (see write_batch),
            // and the file about to go is left out once the new head is in place: the
            // Python library appends to the highest index and must find it empty.
            let entry = self.head_entry()?;
            self.set_checkpoint(vec![entry, empty_file_entry(next)])?;
            let f = DataFile::create(
                self.fs.as_ref(),
                &self.data_path(next),
                self.opts.format.genesis,
                0,
                self.opts.sync,
            )?;
            self.sync_dir()?;
            self.set_checkpoint(vec![empty_file_entry(next)])?;
            self.write_state(false, next, 0, Pending::Drop { index })?;
            self.head_file = f;
            self.head_tail = Some([0; 8]);
            self.catalog.roll_to(next);
            self.fs.remove(&path).ctx("remove data file", &path)?;
            self.sync_dir()?;
            self.write_state(false, next, 0, Pending::None)?;
        } else {
            self.mark_dirty()?;
            self.fs.remove(&path).ctx("remove data file", &path)?;
            self.sync_dir()?;
        }
        self.catalog.remove(index);
        Ok(TrimOutcome {
            trimmed: info.data_len(),
            dropped: Some((index, info.data_len())),
        })
    }
}
