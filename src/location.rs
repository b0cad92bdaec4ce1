//! [`ItemLocation`]: where an item lives, and its 12-byte encoding.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Where an item is stored: data file `index`, logical byte `position` in it, `size` bytes.
///
/// Positions are logical: they do not move when the front of a file is trimmed (`ltrim`).
/// Locations order by index, then position, then size, which is the order of appends
/// within one index.
///
/// ```
/// use aiodiskdb::ItemLocation;
/// let loc = ItemLocation { index: 3, position: 80, size: 1024 };
/// assert_eq!(ItemLocation::from_bytes(&loc.to_bytes())?, loc);
/// assert_eq!(loc.to_string(), "3:80:1024");
/// assert_eq!("3:80:1024".parse::<ItemLocation>()?, loc);
/// # Ok::<(), aiodiskdb::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemLocation {
    /// The data file's index (`data00003.dat` is index 3).
    pub index: u32,
    /// The logical position of the item's first byte in that file's item space.
    pub position: u32,
    /// The item's length in bytes.
    pub size: u32,
}

impl ItemLocation {
    /// Length of [`ItemLocation::to_bytes`].
    pub const ENCODED_LEN: usize = 12;

    /// Encodes as 12 bytes: index, position, size, each `u32` little endian (the Python
    /// library's `ItemLocation.serialize`).
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[0..4].copy_from_slice(&self.index.to_le_bytes());
        out[4..8].copy_from_slice(&self.position.to_le_bytes());
        out[8..12].copy_from_slice(&self.size.to_le_bytes());
        out
    }

    /// Decodes [`ItemLocation::to_bytes`].
    ///
    /// # Errors
    /// [`Error::InvalidLocation`] unless `bytes` is exactly 12 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let b: &[u8; 12] = bytes.try_into().map_err(|_| Error::InvalidLocation {
            reason: format!("expected 12 bytes, got {}", bytes.len()),
        })?;
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(ItemLocation {
            index: word(0),
            position: word(4),
            size: word(8),
        })
    }

    /// The logical position one past the item's last byte.
    #[must_use]
    pub fn end(&self) -> u64 {
        u64::from(self.position) + u64::from(self.size)
    }
}

impl fmt::Display for ItemLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.index, self.position, self.size)
    }
}

impl FromStr for ItemLocation {
    type Err = Error;

    /// Parses `index:position:size`: three decimal `u32`s of digits only (no sign, no
    /// spaces), as [`Display`](fmt::Display) prints them.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidLocation {
            reason: format!("expected index:position:size as decimal u32s, got {s:?}"),
        };
        let mut parts = s.split(':');
        let mut next = || -> Result<u32> {
            parts
                .next()
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse::<u32>().ok())
                .ok_or_else(bad)
        };
        let loc = ItemLocation {
            index: next()?,
            position: next()?,
            size: next()?,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(loc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_little_endian() {
        let loc = ItemLocation {
            index: 0x0102_0304,
            position: 0x0a0b_0c0d,
            size: 7,
        };
        let b = loc.to_bytes();
        assert_eq!(
            b,
            [4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a, 7, 0, 0, 0],
            "python serialize() is index|position|size, u32 le"
        );
        assert_eq!(ItemLocation::from_bytes(&b).unwrap(), loc);
    }

    #[test]
    fn from_bytes_rejects_wrong_length() {
        assert!(matches!(
            ItemLocation::from_bytes(&[0; 11]),
            Err(Error::InvalidLocation { .. })
        ));
        assert!(ItemLocation::from_bytes(&[0; 13]).is_err());
    }

    #[test]
    fn parse_text() {
        assert_eq!(
            "1:2:3".parse::<ItemLocation>().unwrap(),
            ItemLocation {
                index: 1,
                position: 2,
                size: 3
            }
        );
        for bad in [
            "",
            "1:2",
            "1:2:3:4",
            "a:b:c",
            "-1:2:3",
            "1:2:99999999999",
            "+0:1:2",
            "1:+2:3",
            " 1:2:3",
            "1:2:3 ",
            "1: 2:3",
            "1::3",
            "1:2:3\n",
        ] {
            assert!(bad.parse::<ItemLocation>().is_err(), "{bad}");
        }
    }
}
