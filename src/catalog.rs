//! The set of data files as committed: per index its trim offset and committed logical end.
//!
//! The writer (the store) keeps one copy; the handle keeps another for readers, and both
//! apply the same [`Delta`]s after each committed operation.

use std::collections::BTreeMap;

/// One committed data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileInfo {
    /// Logical position of the first stored byte.
    pub(crate) trim_offset: u32,
    /// Committed logical end (one past the last stored byte).
    pub(crate) end: u32,
    /// Bumped whenever the file is replaced or shrunk, so that cached read handles and
    /// headers of an older generation are not reused.
    pub(crate) generation: u64,
}

impl FileInfo {
    /// Item bytes stored in the file.
    pub(crate) fn data_len(&self) -> u64 {
        u64::from(self.end - self.trim_offset)
    }
}

/// A change to the catalog made by a committed operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Delta {
    /// The file's committed end moved (append or rtrim), or it was created.
    SetEnd {
        index: u32,
        trim_offset: u32,
        end: u32,
    },
    /// The file was rewritten with a new trim offset (ltrim) or truncated (rtrim).
    Replaced { index: u32, info: FileInfo },
    /// The file was deleted.
    Removed { index: u32 },
    /// The current (head) file changed.
    Head { index: u32 },
}

/// Committed data files and the current one.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    pub(crate) files: BTreeMap<u32, FileInfo>,
    pub(crate) head: u32,
    next_generation: u64,
}

impl Catalog {
    pub(crate) fn insert(&mut self, index: u32, trim_offset: u32, end: u32) {
        self.next_generation += 1;
        self.files.insert(
            index,
            FileInfo {
                trim_offset,
                end,
                generation: self.next_generation,
            },
        );
    }

    pub(crate) fn get(&self, index: u32) -> Option<&FileInfo> {
        self.files.get(&index)
    }

    pub(crate) fn head_info(&self) -> Option<&FileInfo> {
        self.files.get(&self.head)
    }

    pub(crate) fn apply(&mut self, delta: &Delta) {
        match *delta {
            Delta::SetEnd {
                index,
                trim_offset,
                end,
            } => match self.files.get_mut(&index) {
                Some(f) if f.end <= end => f.end = end,
                _ => self.insert(index, trim_offset, end),
            },
            Delta::Replaced { index, info } => {
                self.next_generation += 1;
                self.files.insert(
                    index,
                    FileInfo {
                        generation: self.next_generation,
                        ..info
                    },
                );
            }
            Delta::Removed { index } => {
                self.files.remove(&index);
            }
            Delta::Head { index } => self.head = index,
        }
    }
}
