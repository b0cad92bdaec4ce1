//! The set of data files as committed: per index its trim offset, committed logical end and
//! generation.
//!
//! There is one catalog. The store owns it and changes it as it commits and trims; after
//! each change it hands the handle a snapshot (a cheap clone: the older files are shared
//! between snapshots, and copied only when one of them changes, at a rollover, a trim or a
//! drop), which readers and the placement of new items use.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::buffer::Tail;

/// One committed data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileInfo {
    /// Logical position of the first stored byte.
    pub(crate) trim_offset: u32,
    /// Committed logical end (one past the last stored byte).
    pub(crate) end: u32,
    /// Committed entries of the file's item index (batch markers included; 0: no index).
    pub(crate) entries: u32,
    /// A number no other version of any file had: bumped whenever the file is created,
    /// replaced or shrunk, so that read handles of an older version are not reused.
    pub(crate) generation: u64,
    /// The file is on object storage, not in the directory (its item index is).
    pub(crate) remote: bool,
    /// The trim offset of the header of the bytes it is read from: logical position `p` is
    /// at byte `24 + p - object_trim_offset`. For a local file its `trim_offset`; for a
    /// remote one, the trim offset its object was uploaded with, which an ltrim of the
    /// remote file does not change (the object is never rewritten).
    pub(crate) object_trim_offset: u32,
    /// One past the last logical position those bytes hold: for a local file its `end`;
    /// for a remote one, the end its object was uploaded with, which an rtrim of the
    /// remote file does not change.
    pub(crate) object_end: u32,
}

impl FileInfo {
    /// Item bytes stored in the file.
    pub(crate) fn data_len(&self) -> u64 {
        u64::from(self.end - self.trim_offset)
    }

    /// Whether `[position, end)` is wholly stored.
    pub(crate) fn holds(&self, position: u32, end: u64) -> bool {
        position >= self.trim_offset && end <= u64::from(self.end)
    }

    /// The size of what it is read from (the data file, or its object): the header and
    /// the data bytes `[object_trim_offset, object_end)`.
    #[cfg(feature = "tiering")]
    pub(crate) fn object_size(&self) -> u64 {
        crate::format::HEADER_LEN + u64::from(self.object_end - self.object_trim_offset)
    }
}

/// The committed data files and the current (head) one.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    /// The files below the head, shared between snapshots.
    older: Arc<BTreeMap<u32, FileInfo>>,
    head: u32,
    head_info: FileInfo,
    generations: u64,
}

impl Catalog {
    /// A catalog of `files` (index, trim offset, end, index entries) whose head is `head`
    /// (one of them).
    pub(crate) fn new(files: impl IntoIterator<Item = (u32, u32, u32, u32)>, head: u32) -> Catalog {
        let mut c = Catalog {
            older: Arc::default(),
            head,
            head_info: FileInfo {
                trim_offset: 0,
                end: 0,
                entries: 0,
                generation: 0,
                remote: false,
                object_trim_offset: 0,
                object_end: 0,
            },
            generations: 0,
        };
        for (index, trim_offset, end, entries) in files {
            c.set(index, trim_offset, end, entries);
        }
        c
    }

    fn next_generation(&mut self) -> u64 {
        self.generations += 1;
        self.generations
    }

    pub(crate) fn head(&self) -> u32 {
        self.head
    }

    pub(crate) fn head_info(&self) -> FileInfo {
        self.head_info
    }

    pub(crate) fn get(&self, index: u32) -> Option<FileInfo> {
        if index == self.head {
            Some(self.head_info)
        } else {
            self.older.get(&index).copied()
        }
    }

    /// Where the next item goes when nothing is buffered: the head's committed end.
    pub(crate) fn tail(&self) -> Tail {
        Tail {
            index: self.head,
            end: self.head_info.end,
            trim_offset: self.head_info.trim_offset,
        }
    }

    /// The head's committed end and index entries moved (an append, an rtrim of the head).
    pub(crate) fn set_head_end(&mut self, end: u32, entries: u32) {
        if end < self.head_info.end {
            self.head_info.generation = self.next_generation();
        }
        self.head_info.end = end;
        self.head_info.object_end = end;
        self.head_info.entries = entries;
    }

    /// `index` (above the head) is the new, empty head; the old head is sealed as it is.
    pub(crate) fn roll_to(&mut self, index: u32) {
        let sealed = self.head_info;
        Arc::make_mut(&mut self.older).insert(self.head, sealed);
        self.head = index;
        self.head_info = FileInfo {
            trim_offset: 0,
            end: 0,
            entries: 0,
            generation: self.next_generation(),
            remote: false,
            object_trim_offset: 0,
            object_end: 0,
        };
    }

    /// Records a file as it is now (recovery, ltrim, rtrim of an older file), as a new
    /// generation.
    pub(crate) fn set(&mut self, index: u32, trim_offset: u32, end: u32, entries: u32) {
        let info = FileInfo {
            trim_offset,
            end,
            entries,
            generation: self.next_generation(),
            remote: false,
            object_trim_offset: trim_offset,
            object_end: end,
        };
        if index == self.head {
            self.head_info = info;
        } else {
            Arc::make_mut(&mut self.older).insert(index, info);
        }
    }

    /// Records `index`, below the head, as on object storage (or back in the directory),
    /// as a new generation: no read handle or cached item of the other place is used. The
    /// object (or the file) holds it from its trim offset on.
    pub(crate) fn set_remote(&mut self, index: u32, remote: bool) {
        let generation = self.next_generation();
        if let Some(f) = Arc::make_mut(&mut self.older).get_mut(&index) {
            f.remote = remote;
            f.generation = generation;
            f.object_trim_offset = f.trim_offset;
            f.object_end = f.end;
        }
    }

    /// Records `index`, below the head, as on object storage holding the logical range
    /// `[trim_offset, end)` with `entries` committed index entries, its object uploaded
    /// with the range `object` (wider for a remote file trimmed since its upload, as
    /// recorded or recovered), as a new generation.
    pub(crate) fn set_remote_file(
        &mut self,
        index: u32,
        trim_offset: u32,
        end: u32,
        entries: u32,
        object: std::ops::Range<u32>,
    ) {
        let info = FileInfo {
            trim_offset,
            end,
            entries,
            generation: self.next_generation(),
            remote: true,
            object_trim_offset: object.start,
            object_end: object.end,
        };
        Arc::make_mut(&mut self.older).insert(index, info);
    }

    /// Every file, the head last, by index.
    pub(crate) fn files(&self) -> Vec<(u32, FileInfo)> {
        let mut v = self.older();
        v.push((self.head, self.head_info));
        v
    }

    /// The files below the head, by index.
    pub(crate) fn older(&self) -> Vec<(u32, FileInfo)> {
        self.older.iter().map(|(i, f)| (*i, *f)).collect()
    }

    /// `index`, below the head, is gone.
    pub(crate) fn remove(&mut self, index: u32) {
        Arc::make_mut(&mut self.older).remove(&index);
    }

    /// `fresh` (the files read afresh by a read-only handle) as the next version of this
    /// catalog: a file keeps its generation, and so its read handle and item table, when it
    /// has the same trim offset, an end no shorter and the same place (local or remote, and
    /// for a remote one the same object range: a hydrate and a new `tier` of a file trimmed
    /// while remote put an object of another layout under its key); the others, and every index in
    /// `changed` (whose bytes may differ although they look the same: a head that a writer
    /// may have cut and written again), are new generations.
    pub(crate) fn carry_over(&self, fresh: &Catalog, changed: &[u32]) -> Catalog {
        let mut next = Catalog::new([], fresh.head);
        next.generations = self.generations;
        for (index, info) in fresh.files() {
            let generation = match self.get(index) {
                Some(was)
                    if was.trim_offset == info.trim_offset
                        && was.end <= info.end
                        && was.remote == info.remote
                        && (!info.remote
                            || (was.object_trim_offset, was.object_end)
                                == (info.object_trim_offset, info.object_end))
                        && !changed.contains(&index) =>
                {
                    was.generation
                }
                _ => next.next_generation(),
            };
            let info = FileInfo { generation, ..info };
            if index == next.head {
                next.head_info = info;
            } else {
                Arc::make_mut(&mut next.older).insert(index, info);
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_share_the_older_files_and_every_version_is_new() {
        let mut c = Catalog::new([(0, 0, 100, 0), (1, 0, 40, 0)], 1);
        let before = c.clone();
        c.set_head_end(60, 3);
        assert!(
            Arc::ptr_eq(&c.older, &before.older),
            "an append copies nothing"
        );
        assert_eq!(
            c.get(1).unwrap().generation,
            before.get(1).unwrap().generation
        );
        c.roll_to(2);
        assert_eq!(c.get(1).unwrap().end, 60);
        assert_eq!(before.get(1).unwrap().end, 40, "a snapshot does not change");
        assert_eq!(
            c.tail(),
            Tail {
                index: 2,
                end: 0,
                trim_offset: 0
            }
        );
        let g = c.get(0).unwrap().generation;
        c.set(0, 10, 100, 0);
        assert!(c.get(0).unwrap().generation > g);
        c.set_head_end(5, 0);
        let g = c.head_info().generation;
        c.set_head_end(3, 0);
        assert!(c.head_info().generation > g, "a shrink is a new version");
        c.remove(0);
        assert_eq!(c.get(0), None);
        assert!(c.get(1).is_some() && c.get(2).is_some());
    }

    #[test]
    fn a_fresh_view_keeps_the_generations_of_files_that_only_grew() {
        let was = Catalog::new([(0, 0, 100, 4), (1, 0, 50, 2), (2, 0, 10, 1)], 2);
        // 0 unchanged, 1 ltrimmed, 2 grown and sealed, 3 the new head.
        let fresh = Catalog::new(
            [(0, 0, 100, 4), (1, 20, 50, 2), (2, 0, 30, 3), (3, 0, 5, 1)],
            3,
        );
        let next = was.carry_over(&fresh, &[3]);
        let g = |c: &Catalog, i| c.get(i).unwrap().generation;
        assert_eq!(g(&next, 0), g(&was, 0));
        assert!(g(&next, 1) > g(&was, 2), "a trimmed file is a new version");
        assert_eq!(g(&next, 2), g(&was, 2), "a file that grew keeps its handle");
        assert_eq!(next.get(2).unwrap().end, 30);
        assert_eq!(next.head(), 3);
        assert_ne!(g(&next, 3), g(&next, 1));
        let cut = was.carry_over(&fresh, &[2, 3]);
        assert!(
            g(&cut, 2) > g(&was, 2),
            "a file named changed is a new version"
        );
        let shrunk = Catalog::new([(0, 0, 90, 4)], 0);
        assert!(g(&was.carry_over(&shrunk, &[]), 0) > g(&was, 2));
    }
}
