//! Options shared by the subcommands: the data directory and the format options, and the
//! parsers of the values they take.

use std::path::PathBuf;

use aiodiskdb::{AioDiskDb, Builder, ItemLocation};

/// The data directory and the options that decide how its files are named and checked.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DbArgs {
    /// The data directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: PathBuf,
    /// Data file name prefix (letters only): PREFIX00000.dat.
    #[arg(long, value_name = "PREFIX", default_value = "data")]
    pub(crate) prefix: String,
    /// Digits of the zero-padded index in data file names (1 to 10).
    #[arg(long, value_name = "DIGITS", default_value_t = 5)]
    pub(crate) padding: usize,
    /// The 4 magic bytes at the start of every data file, as 8 hex digits.
    #[arg(long, value_name = "HEX", default_value = "0dce8f37", value_parser = parse_genesis)]
    pub(crate) genesis: [u8; 4],
    /// Bytes per data file, its 24-byte header included: where `add` starts a new file.
    #[arg(long, value_name = "BYTES", default_value_t = 128 << 20)]
    pub(crate) max_file_size: u64,
}

impl DbArgs {
    /// A builder for the directory with these format options. The RAM buffer may hold an
    /// item as large as a data file.
    pub(crate) fn builder(&self) -> Builder {
        AioDiskDb::builder(&self.dir)
            .file_prefix(self.prefix.clone())
            .file_padding(self.padding)
            .genesis_bytes(self.genesis)
            .max_file_size(self.max_file_size)
            .max_buffer_size(self.max_file_size)
    }

    /// Whether `name` is a data file name of this naming: `{prefix}{padding digits}.dat`.
    pub(crate) fn is_data_file_name(&self, name: &str) -> bool {
        name.strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_suffix(".dat"))
            .is_some_and(|digits| {
                digits.len() == self.padding && digits.bytes().all(|b| b.is_ascii_digit())
            })
    }
}

/// Parses `n` hex digits pairs into bytes.
pub(crate) fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return Err(format!("{s:?} has an odd number of hex digits"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("{s:?} is not hexadecimal"))
        })
        .collect()
}

/// Bytes given in hex, as one value (a bare `Vec<u8>` would make clap take many values).
#[derive(Debug, Clone, Default)]
pub(crate) struct HexBytes(pub(crate) Vec<u8>);

/// A non-empty hex value: an empty one (`--check ''`) would check nothing, silently.
pub(crate) fn parse_hex_bytes(s: &str) -> Result<HexBytes, String> {
    if s.trim().is_empty() {
        return Err("an empty value checks nothing; leave the option out instead".to_owned());
    }
    parse_hex(s).map(HexBytes)
}

/// Parses 8 hex digits into the 4 genesis bytes.
pub(crate) fn parse_genesis(s: &str) -> Result<[u8; 4], String> {
    let bytes = parse_hex(s)?;
    bytes
        .try_into()
        .map_err(|_| format!("{s:?} is not 8 hex digits (4 bytes)"))
}

/// Parses `INDEX:POSITION:SIZE`.
pub(crate) fn parse_location(s: &str) -> Result<ItemLocation, String> {
    s.parse::<ItemLocation>().map_err(|e| match e {
        aiodiskdb::Error::InvalidLocation { reason } => reason,
        e => e.to_string(),
    })
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        assert_eq!(parse_hex("f9beb4d9").unwrap(), [0xf9, 0xbe, 0xb4, 0xd9]);
        assert_eq!(hex(&[0x0d, 0xce, 0x8f, 0x37]), "0dce8f37");
        assert_eq!(parse_hex("").unwrap(), Vec::<u8>::new());
        for bad in ["f", "zz", "0x12", "é1"] {
            assert!(parse_hex(bad).is_err(), "{bad}");
        }
        assert!(parse_genesis("f9beb4").is_err());
        assert!(parse_genesis("f9beb4d9").is_ok());
    }

    #[test]
    fn location_syntax() {
        assert_eq!(parse_location("3:80:10").unwrap().to_string(), "3:80:10");
        assert!(parse_location("3:80")
            .unwrap_err()
            .contains("index:position:size"));
    }
}
