//! The data directory and the format options, wherever they are given: before the command
//! (`aiodiskdb --dir D info`), after it (`aiodiskdb info --dir D`), or the directory as the
//! command's last argument (`aiodiskdb info D`); and the parsers of the values they take.
//!
//! The directory is the *last* positional argument so that it never competes with a
//! command's own (`read LOCATION [DIR]`, `rtrim INDEX POSITION [DIR]`): clap assigns
//! positionals in order, and an optional one after the required ones is unambiguous.

use std::path::PathBuf;

use aiodiskdb::{AioDiskDb, Builder, ItemLocation};
use clap::error::ErrorKind;

/// What `--store` takes, in the help of every command.
const STORE_HELP: &str =
    "The object store of a tiered directory, s3://BUCKET/PREFIX (endpoint, region and \
     keys from AWS_ENDPOINT_URL, AWS_ALLOW_HTTP, AWS_REGION, AWS_ACCESS_KEY_ID, \
     AWS_SECRET_ACCESS_KEY); needs a CLI built with the feature `tiering`";

/// The default `--max-file-size` (the library's): 128 MiB.
pub(crate) const DEFAULT_MAX_FILE_SIZE: u64 = 128 << 20;

/// The header of a data file: genesis bytes, trim offset, 16 reserved bytes.
pub(crate) const HEADER_LEN: u64 = 24;

/// The default `--genesis` (the library's and the Python library's).
const DEFAULT_GENESIS: [u8; 4] = [0x0d, 0xce, 0x8f, 0x37];

/// How the data files are named and checked; the same options before and after a command.
#[derive(Debug, clap::Args)]
pub(crate) struct FormatArgs {
    /// Data file name prefix, letters only: PREFIX00000.dat [default: data]
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// Digits of the zero-padded index in data file names, 1 to 10 [default: 5]
    #[arg(long, value_name = "DIGITS")]
    padding: Option<usize>,
    /// The 4 magic bytes at the start of every data file, as 8 hex digits [default:
    /// 0dce8f37]
    #[arg(long, value_name = "HEX", value_parser = parse_genesis)]
    genesis: Option<[u8; 4]>,
}

/// The options given before the command. Each applies to the commands that take it
/// after them too; given at both places, it is a usage error.
#[derive(Debug, clap::Args)]
pub(crate) struct TopArgs {
    /// The data directory (the same as after the command, or as its last argument DIR);
    /// for `bench`, its --dir
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    format: FormatArgs,
    /// Bytes per data file, its 24-byte header included: where `add` starts a new file,
    /// and what bounds the item it takes (`add` only) [default: 134217728]
    #[arg(long, value_name = "BYTES")]
    max_file_size: Option<u64>,
    #[arg(long, value_name = "URL", help = STORE_HELP)]
    store: Option<String>,
}

/// The data directory and the format options of a command that opens one.
#[derive(Debug, clap::Args)]
pub(crate) struct DbArgs {
    /// The data directory, instead of --dir
    #[arg(value_name = "DIR", conflicts_with = "dir")]
    dir_arg: Option<PathBuf>,
    /// The data directory (also before the command, or as the last argument DIR)
    #[arg(long, value_name = "DIR", help_heading = "Data directory")]
    dir: Option<PathBuf>,
    #[command(flatten, next_help_heading = "Data directory")]
    format: FormatArgs,
    #[arg(long, value_name = "URL", help = STORE_HELP, help_heading = "Data directory")]
    store: Option<String>,
}

/// The data directory and format a command works on, once the options before and after
/// the command are combined, the defaults filled in.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pub(crate) dir: PathBuf,
    pub(crate) prefix: String,
    pub(crate) padding: usize,
    pub(crate) genesis: [u8; 4],
    /// `--store`: the object store of a tiered directory, `s3://bucket/prefix`.
    pub(crate) store: Option<String>,
}

/// The error of `what` (`--store`, `tier`, `hydrate`) in a CLI built without tiering.
#[cfg_attr(feature = "tiering", expect(dead_code, reason = "built with tiering"))]
pub(crate) fn without_tiering(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} needs tiered storage, and this aiodiskdb was built without it: build it with \
         the feature `tiering` (`cargo build -p aiodiskdb-cli --features tiering`, or \
         `cargo install --path cli --features tiering` in the repository)"
    )
}

impl Db {
    /// A builder for the directory with these format options (and `--store`'s tiering,
    /// with no background uploads: the CLI uploads only when told, by `tier`).
    ///
    /// # Errors
    /// `--store` in a CLI built without tiering; a `--store` URL or `AWS_*` variables
    /// that make no S3 configuration.
    pub(crate) fn builder(&self) -> anyhow::Result<Builder> {
        let local = self.local_builder();
        match &self.store {
            None => Ok(local),
            #[cfg(feature = "tiering")]
            Some(_) => Ok(local.tiering(self.tiering()?.upload_in_background(false))),
            #[cfg(not(feature = "tiering"))]
            Some(_) => Err(without_tiering("--store")),
        }
    }

    /// A builder for the directory with these format options, without `--store`.
    pub(crate) fn local_builder(&self) -> Builder {
        AioDiskDb::builder(&self.dir)
            .file_prefix(self.prefix.clone())
            .file_padding(self.padding)
            .genesis_bytes(self.genesis)
    }

    /// The tiering `--store` names (the library's defaults but the background uploads).
    ///
    /// # Errors
    /// No `--store`; a URL or `AWS_*` variables that make no S3 configuration.
    #[cfg(feature = "tiering")]
    pub(crate) fn tiering(&self) -> anyhow::Result<aiodiskdb::tiering::Tiering> {
        let url = self
            .store
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("--store is missing"))?;
        Ok(aiodiskdb::tiering::Tiering::from_s3_url(url)?.upload_in_background(false))
    }

    /// Whether `name` is a data file name of this naming: `{prefix}{padding digits}.dat`.
    pub(crate) fn is_data_file_name(&self, name: &str) -> bool {
        name.strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_suffix(".dat"))
            .is_some_and(|digits| {
                digits.len() == self.padding && digits.bytes().all(|b| b.is_ascii_digit())
            })
    }

    /// The name of the data file of `index`.
    pub(crate) fn data_file_name(&self, index: u32) -> String {
        format!("{}{index:0width$}.dat", self.prefix, width = self.padding)
    }
}

/// A usage error (exit 2) of `command`, formatted by clap with the command's usage.
fn usage(command: &str, kind: ErrorKind, message: String) -> clap::Error {
    crate::usage_error(command, kind, message)
}

/// The one value of an option given before or after `command`; both is a usage error.
fn one_of<T: Clone>(
    command: &str,
    flag: &str,
    before: Option<&T>,
    after: Option<&T>,
) -> Result<Option<T>, clap::Error> {
    match (before, after) {
        (Some(_), Some(_)) => Err(usage(
            command,
            ErrorKind::ArgumentConflict,
            format!("{flag} is given both before and after `{command}`; give it once"),
        )),
        (b, a) => Ok(a.or(b).cloned()),
    }
}

impl TopArgs {
    /// The directory and format of `command` (which does not take --max-file-size).
    ///
    /// # Errors
    /// A usage error when an option is given both before and after the command, when
    /// --max-file-size is given before it, or when no directory is given.
    pub(crate) fn db(&self, command: &str, own: &DbArgs) -> Result<Db, clap::Error> {
        if self.max_file_size.is_some() {
            return Err(usage(
                command,
                ErrorKind::UnknownArgument,
                format!("--max-file-size does not apply to `{command}` (only `add` takes it)"),
            ));
        }
        self.dir_and_format(command, own)
    }

    /// The directory and format options of `command`, given before or after it.
    fn dir_and_format(&self, command: &str, own: &DbArgs) -> Result<Db, clap::Error> {
        let before_dir = self.dir.as_ref();
        let after_dir = own.dir.as_ref().or(own.dir_arg.as_ref());
        let flag = if own.dir.is_some() || after_dir.is_none() {
            "--dir"
        } else {
            "--dir (or DIR)"
        };
        let dir = one_of(command, flag, before_dir, after_dir)?.ok_or_else(|| {
            usage(
                command,
                ErrorKind::MissingRequiredArgument,
                format!(
                    "the data directory is missing: give it as the last argument DIR or \
                     with --dir DIR (before or after `{command}`)"
                ),
            )
        })?;
        let (b, a) = (&self.format, &own.format);
        Ok(Db {
            dir,
            prefix: one_of(command, "--prefix", b.prefix.as_ref(), a.prefix.as_ref())?
                .unwrap_or_else(|| "data".to_owned()),
            padding: one_of(command, "--padding", b.padding.as_ref(), a.padding.as_ref())?
                .unwrap_or(5),
            genesis: one_of(command, "--genesis", b.genesis.as_ref(), a.genesis.as_ref())?
                .unwrap_or(DEFAULT_GENESIS),
            store: one_of(command, "--store", self.store.as_ref(), own.store.as_ref())?,
        })
    }

    /// The directory, format and file size of `add`, whose own --max-file-size is `own_max`.
    ///
    /// # Errors
    /// As [`TopArgs::db`], except that --max-file-size may be given (once).
    pub(crate) fn db_for_add(
        &self,
        own: &DbArgs,
        own_max: Option<u64>,
    ) -> Result<(Db, u64), clap::Error> {
        let max = one_of(
            "add",
            "--max-file-size",
            self.max_file_size.as_ref(),
            own_max.as_ref(),
        )?
        .unwrap_or(DEFAULT_MAX_FILE_SIZE);
        Ok((self.dir_and_format("add", own)?, max))
    }

    /// The `--store` of `bench` (its `tiered` workload) given before the command, merged
    /// into its own.
    ///
    /// # Errors
    /// A usage error for a --store given twice.
    pub(crate) fn bench_store(&self, own: Option<&str>) -> Result<Option<String>, clap::Error> {
        let own = own.map(str::to_string);
        one_of("bench", "--store", self.store.as_ref(), own.as_ref())
    }

    /// The `--dir` of `bench` given before the command, merged into its own.
    ///
    /// # Errors
    /// A usage error for a format option (bench has none) or a --dir given twice.
    pub(crate) fn bench_dir(
        &self,
        own: Option<&std::path::Path>,
    ) -> Result<Option<PathBuf>, clap::Error> {
        let f = &self.format;
        for (flag, given) in [
            ("--prefix", f.prefix.is_some()),
            ("--padding", f.padding.is_some()),
            ("--genesis", f.genesis.is_some()),
            ("--max-file-size", self.max_file_size.is_some()),
        ] {
            if given {
                return Err(usage(
                    "bench",
                    ErrorKind::UnknownArgument,
                    format!("{flag} does not apply to `bench` (it benchmarks a fresh directory)"),
                ));
            }
        }
        let own = own.map(std::path::Path::to_path_buf);
        one_of("bench", "--dir", self.dir.as_ref(), own.as_ref())
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

/// Hex digits of a serialized location: 12 bytes.
const SERIALIZED_HEX_LEN: usize = 2 * ItemLocation::ENCODED_LEN;

/// Parses a location: `INDEX:POSITION:SIZE`, or the 24 hex digits of the 12 bytes the
/// Python library's `ItemLocation.serialize()` returns (index, position, size, each a
/// little-endian u32).
pub(crate) fn parse_location(s: &str) -> Result<ItemLocation, String> {
    if s.len() == SERIALIZED_HEX_LEN && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        let bytes = parse_hex(s)?;
        return ItemLocation::from_bytes(&bytes).map_err(|e| e.to_string());
    }
    s.parse::<ItemLocation>().map_err(|e| match e {
        aiodiskdb::Error::InvalidLocation { reason } => format!(
            "{reason}, or the {SERIALIZED_HEX_LEN} hex digits of a serialized location \
             (Python's ItemLocation.serialize().hex())"
        ),
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
        let err = parse_location("3:80").unwrap_err();
        assert!(err.contains("index:position:size"), "{err}");
        assert!(err.contains("24 hex digits"), "{err}");
        // Python: ItemLocation(3, 80, 10).serialize().hex()
        let loc = parse_location("03000000500000000a000000").unwrap();
        assert_eq!(loc.to_string(), "3:80:10");
        assert_eq!(
            parse_location("03000000500000000A000000").unwrap(),
            loc,
            "either case"
        );
        for bad in ["03000000500000000a0000", "03000000500000000a00000g"] {
            assert!(parse_location(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn data_file_names() {
        let db = Db {
            dir: PathBuf::from("d"),
            prefix: "blk".to_owned(),
            padding: 8,
            genesis: [0; 4],
            store: None,
        };
        assert_eq!(db.data_file_name(3), "blk00000003.dat");
        assert!(db.is_data_file_name("blk00000003.dat"));
        assert!(!db.is_data_file_name("blk00003.dat"));
    }
}
