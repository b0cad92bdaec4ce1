//! Committing a batch of appends (`docs/design.md`, Flush / commit protocol).
//!
//! Within the head: the data is written at the committed end, its item entries (each
//! item's end and CRC32C, then the batch's marker) and a commit slot naming the batch's
//! checksums go into the head's index; then the data file, the index and our checkpoint are
//! synced together, in one round. Recovery accepts the newest commit whose batch matches its
//! checksums, so the order in which the three reach the disk does not matter.
//!
//! A batch that starts new files also seals the files it leaves: the new files are listed in
//! our checkpoint before they exist and created with their header and index; after the round
//! of syncs, a new manifest records the sealed files and a state record names the new head
//! and that manifest: that record is the commit point of a rollover.

use std::path::Path;
use std::sync::Arc;

use super::{internal, Store, Sums};
use crate::buffer::Segment;
use crate::datafile::DataFile;
use crate::error::{Error, IoContext, Result};
use crate::format::{batch_entries, encode_entries, Commit, Entry, IndexHeader, Manifest, Pending};
use crate::fs::{seeded, FsFile};
use crate::index::IndexFile;

/// What a batch writes into one file.
struct Part {
    data: DataFile,
    idx: IndexFile,
    index: u32,
    /// Where the batch starts in it: logical position and index entries.
    start: u32,
    start_entries: u32,
    end: u32,
    items: Vec<Entry>,
    data_crc: u32,
    /// The sequence number of its newest commit slot.
    seq: u64,
    /// The running sums of the file before the batch (`None`: unknown).
    sums: Option<Sums>,
}

impl Store {
    /// Checks that the segments continue the committed head, each after the previous one;
    /// returns the indexes they create.
    fn check_continues(&self, segments: &[&Segment]) -> Result<Vec<u32>> {
        let mut created = Vec::new();
        let mut head = self.catalog.head();
        let mut end = self.catalog.head_info().end;
        for seg in segments {
            if seg.new_file {
                if seg.index != head + 1 || seg.start != 0 {
                    return Err(internal(format!(
                        "new file segment {}@{} does not follow head {head}",
                        seg.index, seg.start
                    )));
                }
                if u64::from(seg.index) > self.opts.max_index() {
                    return Err(Error::DatabaseFull {
                        index: u64::from(seg.index),
                        padding: self.opts.format.naming.padding,
                    });
                }
                created.push(seg.index);
                head = seg.index;
            } else if seg.index != head || seg.start != end {
                return Err(internal(format!(
                    "segment {}@{} does not continue head {head} at {end}",
                    seg.index, seg.start
                )));
            }
            end = seg.end();
        }
        Ok(created)
    }

    /// The head's files are still as this session left them: named (not deleted behind
    /// its back, which would make the batch land in a file no one can open again), and the
    /// data file not shorter than its committed end (cut behind its back: what the session
    /// acknowledged is gone, and the batch would land after a hole). Longer is left alone:
    /// bytes past the end that a crash left are written over. One `fstat` per file per
    /// batch.
    fn check_head_in_place(&self) -> Result<()> {
        let changed = |path: &Path, reason: String| Error::FilesInconsistency {
            path: path.to_path_buf(),
            reason,
        };
        let deleted = "deleted while the database was running";
        let file = &self.head.file;
        let stat = file.file().stat().ctx("stat data file", file.path())?;
        let needed = file.len_at(self.catalog.head_info().end);
        if !stat.linked {
            return Err(changed(file.path(), deleted.to_owned()));
        }
        if stat.len < needed {
            return Err(changed(
                file.path(),
                format!(
                    "cut to {} bytes while the database was running; its committed end needs {needed}",
                    stat.len
                ),
            ));
        }
        if let Some(idx) = &self.head.idx {
            if !idx.file().stat().ctx("stat index file", idx.path())?.linked {
                return Err(changed(idx.path(), deleted.to_owned()));
            }
        }
        Ok(())
    }

    /// Creates the files `created` with their header, and their index.
    fn create_files(&mut self, created: &[u32]) -> Result<Vec<(DataFile, IndexFile)>> {
        let mut files = Vec::with_capacity(created.len());
        if created.is_empty() {
            return Ok(files);
        }
        let genesis = self.opts.format.genesis;
        for &index in created {
            let data = DataFile::create(
                self.fs.as_ref(),
                &self.data_path(index),
                genesis,
                0,
                self.opts.sync,
            )?;
            let idx_path = self.opts.index_path(index);
            crate::fs::remove_if_exists(self.fs.as_ref(), &idx_path)
                .ctx("remove index file", &idx_path)?;
            let header = IndexHeader {
                index,
                first: 0,
                genesis,
            };
            let idx = IndexFile::create(self.fs.as_ref(), &idx_path, header, self.opts.sync)?;
            files.push((data, idx));
        }
        self.sync_dir()?;
        Ok(files)
    }

    /// Appends the segments and commits them as one batch. On return the data is persisted
    /// (synced with `Durability::Sync`) and [`Store::catalog`] includes it.
    ///
    /// Segments must continue the committed head: the first starts at the head's committed
    /// end (or creates the next index), each next one likewise.
    pub(crate) fn write_batch(&mut self, segments: &[&Segment]) -> Result<()> {
        if seeded!(self.fs, SplitTransaction) && segments.len() > 1 {
            let (first, rest) = segments.split_at(segments.len() / 2);
            self.commit(first)?;
            return self.commit(rest);
        }
        self.commit(segments)
    }

    /// Writes the segments into their files (data, then item entries): one part per file.
    fn write_parts(
        &mut self,
        segments: &[&Segment],
        new_files: Vec<(DataFile, IndexFile)>,
    ) -> Result<Vec<Part>> {
        let head_info = self.catalog.head_info();
        let mut new_files = new_files.into_iter();
        let mut parts: Vec<Part> = Vec::new();
        for seg in segments {
            if seg.new_file || parts.is_empty() {
                let part = if seg.new_file {
                    let (data, idx) = new_files.next().expect("one file per new segment");
                    Part {
                        data,
                        idx,
                        index: seg.index,
                        start: 0,
                        start_entries: 0,
                        end: 0,
                        items: Vec::new(),
                        data_crc: 0,
                        seq: 0,
                        sums: Some(Sums {
                            data: 0,
                            entries: 0,
                        }),
                    }
                } else {
                    Part {
                        data: self.head.file.clone(),
                        idx: self
                            .head
                            .idx
                            .clone()
                            .expect("marked dirty: the head is indexed"),
                        index: seg.index,
                        start: head_info.end,
                        start_entries: head_info.entries,
                        end: head_info.end,
                        items: Vec::new(),
                        data_crc: 0,
                        seq: self.head.seq,
                        sums: self.head_sums,
                    }
                };
                parts.push(part);
            }
            let part = parts.last_mut().expect("pushed above");
            part.data
                .write(seg.start, &seg.data)
                .ctx("write data file", part.data.path())?;
            for (position, bytes) in seg.items() {
                part.items.push(Entry {
                    end: position + u32::try_from(bytes.len()).expect("an item fits a file"),
                    crc: crate::crc::crc32c(bytes),
                });
            }
            part.data_crc = crate::crc::crc32c_append(part.data_crc, &seg.data);
            part.sums = part.sums.map(|s| Sums {
                data: crate::crc::crc32c_append(s.data, &seg.data),
                ..s
            });
            part.end = seg.end();
        }
        Ok(parts)
    }

    fn commit(&mut self, segments: &[&Segment]) -> Result<()> {
        self.mark_dirty()?;
        let created = self.check_continues(segments)?;
        self.check_head_in_place()?;
        let new_files = self.create_files(&created)?;
        let mut parts = self.write_parts(segments, new_files)?;
        // Index entries. Only the last file (the head after the batch) gets a batch marker
        // and a commit slot: the files a rollover leaves are sealed by the manifest, and
        // their entries count only once a state record commits it.
        let last = parts.len() - 1;
        let mut head_commit = None;
        let late = seeded!(self.fs, IndexEntryAfterCommit);
        let mut late_entries = Vec::new();
        for (n, p) in parts.iter_mut().enumerate() {
            let entries = if n == last {
                batch_entries(p.start, p.items.iter().copied())
            } else {
                std::mem::take(&mut p.items)
            };
            if late {
                late_entries.push((p.idx.clone(), p.start_entries, entries.clone()));
            } else {
                p.idx
                    .write_entries(p.start_entries, &entries)
                    .ctx("write index file", p.idx.path())?;
            }
            let bytes = encode_entries(&entries);
            p.sums = p.sums.map(|s| Sums {
                entries: crate::crc::crc32c_append(s.entries, &bytes),
                ..s
            });
            p.start_entries += u32::try_from(entries.len()).expect("entries fit u32");
            if n == last {
                let commit = Commit {
                    seq: p.seq + 1,
                    entries: p.start_entries,
                    end: p.end,
                    prev_entries: p.start_entries
                        - u32::try_from(entries.len()).expect("entries fit u32"),
                    prev_end: p.start,
                    data_crc: p.data_crc,
                    entries_crc: crate::crc::crc32c(&bytes),
                };
                p.idx
                    .write_commit(&commit)
                    .ctx("write index file", p.idx.path())?;
                head_commit = Some(commit);
            }
        }
        let commit = head_commit.expect("a batch has a last part");
        self.sync_round(&parts)?;
        for (idx, at, entries) in late_entries {
            idx.write_entries(at, &entries)
                .ctx("write index file", idx.path())?;
        }
        if created.is_empty() {
            self.catalog.set_head_end(commit.end, commit.entries);
        } else {
            self.commit_rollover(&parts)?;
        }
        let head_part = parts.pop().expect("a last part");
        self.head_sums = head_part.sums;
        self.head.file = head_part.data;
        self.head.idx = Some(head_part.idx);
        self.head.seq = commit.seq;
        Ok(())
    }

    /// Syncs every data file and index the batch wrote, in one round (with
    /// `Durability::Sync`).
    fn sync_round(&self, parts: &[Part]) -> Result<()> {
        if !self.opts.sync {
            return Ok(());
        }
        let mut files: Vec<(&Arc<dyn FsFile>, &std::path::Path)> = Vec::new();
        for p in parts {
            files.push((p.data.file(), p.data.path()));
            files.push((p.idx.file(), p.idx.path()));
        }
        if seeded!(self.fs, RetryFailedSync) {
            for (f, path) in &files {
                let mut r = f.sync_data();
                if r.is_err() {
                    r = f.sync_data();
                }
                r.ctx("sync file", path)?;
            }
            return Ok(());
        }
        self.syncer.sync_together(&files)
    }

    /// The commit point of a batch that started new files: the manifest records the files
    /// it sealed, then a state record names the new head and that manifest.
    fn commit_rollover(&mut self, parts: &[Part]) -> Result<()> {
        let mut catalog = self.catalog.clone();
        let mut next: Manifest = self.manifest.clone();
        let sealed_whole = parts.first().is_some_and(|p| p.index != catalog.head());
        if sealed_whole && !seeded!(self.fs, SealedEndNotRecorded) {
            // The batch starts a new file right away: the head it leaves is sealed as the
            // previous commits left it.
            let (index, info) = (catalog.head(), catalog.head_info());
            let record = self.seal_record(index, info, self.head_sums)?;
            next = next.with(index, Some(record));
        }
        for (n, p) in parts.iter().enumerate() {
            if p.index != catalog.head() {
                catalog.roll_to(p.index);
            }
            catalog.set_head_end(p.end, p.start_entries);
            if n + 1 < parts.len() && !seeded!(self.fs, SealedEndNotRecorded) {
                let info = catalog.head_info();
                let record = self.seal_record(p.index, info, p.sums)?;
                next = next.with(p.index, Some(record));
            }
        }
        next.generation = self.manifest.generation + 1;
        self.publish_manifest(next)?;
        let (head, info) = (catalog.head(), catalog.head_info());
        self.catalog = catalog;
        self.write_state(false, head, info.end, info.entries, Pending::None)?;
        self.forget_old_manifest()
    }
}
