//! The RAM buffer: items appended since the last flush, grouped into one [`Segment`] per
//! data file, and the placement rule that decides each item's location.
//!
//! Placement: an item goes at the tail's logical end unless the file (header included)
//! would pass `max_file_size` or the position would pass `u32::MAX`; then it starts the
//! next index. An item never straddles two files.

use crate::error::{Error, Result};
use crate::format::data_offset;
#[cfg(test)]
use crate::format::HEADER_LEN;
use crate::location::ItemLocation;

/// A run of items for one data file, starting at logical position `start`: the unit of the
/// buffer, and of a batch the store commits.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub(crate) index: u32,
    pub(crate) start: u32,
    /// The file does not exist yet: create it (exclusively) with a fresh header.
    pub(crate) new_file: bool,
    pub(crate) data: Vec<u8>,
    /// Where each item of `data` ends (logical positions), in order: the item index.
    pub(crate) ends: Vec<u32>,
}

impl Segment {
    pub(crate) fn end(&self) -> u32 {
        self.start + u32::try_from(self.data.len()).expect("segments fit a file")
    }

    /// A segment of one item.
    #[cfg(test)]
    pub(crate) fn one(index: u32, start: u32, new_file: bool, data: Vec<u8>) -> Segment {
        let end = start + u32::try_from(data.len()).expect("small");
        Segment {
            index,
            start,
            new_file,
            data,
            ends: vec![end],
        }
    }

    /// Each item as `(position, bytes)`, in order.
    pub(crate) fn items(&self) -> impl Iterator<Item = (u32, &[u8])> + '_ {
        let mut start = self.start;
        self.ends.iter().map(move |&end| {
            let at = (start - self.start) as usize;
            let item = (start, &self.data[at..at + (end - start) as usize]);
            start = end;
            item
        })
    }
}

/// Where the next item goes: the last data file and its logical end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Tail {
    pub(crate) index: u32,
    pub(crate) end: u32,
    pub(crate) trim_offset: u32,
}

impl Tail {
    fn file_len(&self) -> u64 {
        data_offset(self.end, self.trim_offset)
    }
}

/// Limits of the placement rule and of the buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_file_size: u64,
    pub(crate) max_index: u64,
    pub(crate) padding: usize,
    /// Bytes to reserve up front for a new segment.
    pub(crate) reserve: usize,
    /// `max_buffer_size`: a buffer this full is flushed, and an item that would pass it
    /// waits for the next buffer.
    pub(crate) max_bytes: u64,
    /// `max_buffer_items`: a buffer of this many items is flushed.
    pub(crate) max_items: usize,
}

/// Items not yet persisted.
#[derive(Debug, Default)]
pub(crate) struct Buffer {
    pub(crate) segments: Vec<Segment>,
    pub(crate) bytes: u64,
    pub(crate) items: usize,
}

impl Buffer {
    pub(crate) fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// Whether an item of `size` bytes may join: an empty buffer takes any item (`add`
    /// checks it against the limit), a full one none.
    #[inline]
    pub(crate) fn has_room(&self, size: u64, limits: &Limits) -> bool {
        self.is_empty() || self.bytes + size <= limits.max_bytes
    }

    /// Whether the buffer is due for a flush by its size: `max_buffer_size` bytes or
    /// `max_buffer_items` items.
    #[inline]
    pub(crate) fn reached_limit(&self, limits: &Limits) -> bool {
        self.bytes >= limits.max_bytes || self.items >= limits.max_items
    }

    /// Appends `data` after `tail`, moving the tail; returns the item's location.
    ///
    /// # Errors
    /// [`Error::DatabaseFull`] when a new file is needed and no index number is left.
    pub(crate) fn push(
        &mut self,
        tail: &mut Tail,
        data: &[u8],
        limits: &Limits,
    ) -> Result<ItemLocation> {
        let size = u32::try_from(data.len()).map_err(|_| Error::ItemTooLarge {
            size: data.len() as u64,
            limit: u64::from(u32::MAX),
        })?;
        let fits_file = tail.file_len() + u64::from(size) <= limits.max_file_size;
        let fits_positions = tail.end.checked_add(size).is_some();
        let mut new_file = false;
        if !(fits_file && fits_positions) {
            let next = u64::from(tail.index) + 1;
            if next > limits.max_index {
                return Err(Error::DatabaseFull {
                    index: next,
                    padding: limits.padding,
                });
            }
            *tail = Tail {
                index: u32::try_from(next).expect("max_index fits u32"),
                end: 0,
                trim_offset: 0,
            };
            new_file = true;
        }
        let loc = ItemLocation {
            index: tail.index,
            position: tail.end,
            size,
        };
        match self.segments.last_mut() {
            Some(seg) if seg.index == tail.index && !new_file => {
                seg.data.extend_from_slice(data);
                seg.ends.push(tail.end + size);
            }
            _ => {
                let mut buf = Vec::with_capacity(limits.reserve.max(data.len()));
                buf.extend_from_slice(data);
                self.segments.push(Segment {
                    index: tail.index,
                    start: tail.end,
                    new_file,
                    data: buf,
                    ends: vec![tail.end + size],
                });
            }
        }
        tail.end += size;
        self.bytes += u64::from(size);
        self.items += 1;
        Ok(loc)
    }

    /// The bytes of `loc` if they lie wholly inside one buffered segment.
    pub(crate) fn get(&self, loc: ItemLocation) -> Option<&[u8]> {
        self.segments.iter().find_map(|seg| {
            if seg.index != loc.index || loc.position < seg.start {
                return None;
            }
            let from = (loc.position - seg.start) as usize;
            let to = from.checked_add(loc.size as usize)?;
            seg.data.get(from..to)
        })
    }

    /// The locations of the buffered items of `index`, in order.
    pub(crate) fn locations(&self, index: u32) -> impl Iterator<Item = ItemLocation> + '_ {
        self.segments
            .iter()
            .filter(move |s| s.index == index)
            .flat_map(move |seg| {
                seg.items().map(move |(position, bytes)| ItemLocation {
                    index,
                    position,
                    size: u32::try_from(bytes.len()).expect("an item fits a file"),
                })
            })
    }

    /// Whether `loc` starts inside a buffered segment (it is not on disk yet).
    pub(crate) fn covers(&self, loc: ItemLocation) -> bool {
        self.segments
            .iter()
            .any(|s| s.index == loc.index && loc.position >= s.start && loc.position < s.end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_file_size: u64) -> Limits {
        Limits {
            max_file_size,
            max_index: 99_999,
            padding: 5,
            reserve: 0,
            max_bytes: max_file_size,
            max_items: 1000,
        }
    }

    #[test]
    fn items_fill_a_file_then_roll_over() {
        let mut tail = Tail {
            index: 0,
            end: 0,
            trim_offset: 0,
        };
        let mut buf = Buffer::default();
        let lim = limits(HEADER_LEN + 10);
        let first = buf.push(&mut tail, &[1; 6], &lim).unwrap();
        let second = buf.push(&mut tail, &[2; 4], &lim).unwrap();
        let third = buf.push(&mut tail, &[3; 5], &lim).unwrap();
        assert_eq!((first.index, first.position), (0, 0));
        assert_eq!(
            (second.index, second.position),
            (0, 6),
            "exactly fills the file"
        );
        assert_eq!(
            (third.index, third.position),
            (1, 0),
            "does not fit: next index"
        );
        assert_eq!(buf.segments.len(), 2);
        assert!(!buf.segments[0].new_file);
        assert!(buf.segments[1].new_file);
        assert_eq!(buf.get(second), Some(&[2u8; 4][..]));
        assert_eq!(buf.get(third), Some(&[3u8; 5][..]));
        assert_eq!(
            buf.get(ItemLocation {
                index: 0,
                position: 8,
                size: 3
            }),
            None,
            "past the segment end"
        );
        assert_eq!((buf.items, buf.bytes), (3, 15));
    }

    #[test]
    fn trimmed_tail_counts_physical_bytes_and_u32_positions() {
        let mut tail = Tail {
            index: 2,
            end: 1000,
            trim_offset: 995,
        };
        let mut b = Buffer::default();
        let loc = b
            .push(&mut tail, &[0; 5], &limits(HEADER_LEN + 10))
            .unwrap();
        assert_eq!(
            (loc.index, loc.position),
            (2, 1000),
            "5 physical bytes used"
        );
        let mut high = Tail {
            index: 0,
            end: u32::MAX - 2,
            trim_offset: u32::MAX - 2,
        };
        let loc = b.push(&mut high, &[0; 5], &limits(1 << 20)).unwrap();
        assert_eq!((loc.index, loc.position), (1, 0), "positions must stay u32");
    }

    #[test]
    fn database_full_when_no_index_is_left() {
        let mut tail = Tail {
            index: 9,
            end: 10,
            trim_offset: 0,
        };
        let l = Limits {
            max_index: 9,
            padding: 1,
            ..limits(HEADER_LEN + 10)
        };
        let err = Buffer::default().push(&mut tail, &[0; 1], &l).unwrap_err();
        assert!(matches!(
            err,
            Error::DatabaseFull {
                index: 10,
                padding: 1
            }
        ));
        assert_eq!(tail.index, 9, "tail unchanged on error");
    }
}
