//! The crate's one error type.
//!
//! Every fallible public call returns [`Error`]. Variants mirror the Python library's
//! exceptions and carry the value or path that was wrong. `Error` is `Clone` (I/O errors are
//! shared behind an `Arc`) so that one failure can be handed to every waiter of a batch and
//! kept as the reason a handle is poisoned.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::location::ItemLocation;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `aiodiskdb`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A builder option has a value the database cannot work with.
    #[error("invalid configuration: {option} = {value}: {reason}")]
    InvalidConfiguration {
        /// The option, as named on the builder.
        option: &'static str,
        /// The rejected value.
        value: String,
        /// What the value must be.
        reason: String,
    },
    /// The database was stopped (or never finished opening); reopen it to continue.
    #[error("the database is not running")]
    NotRunning,
    /// Waited longer than the configured `timeout`.
    #[error("timed out after {waited_ms} ms waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// How long, in milliseconds.
        waited_ms: u64,
    },
    /// A data file is not an aiodiskdb data file of this configuration.
    #[error("invalid data file {path}: {reason}")]
    InvalidDataFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A write on a handle opened with [`read_only`](crate::Builder::read_only), or a trim
    /// or drop without `overwrite` enabled.
    #[error("the database is read-only: it was opened read-only, or trims and drops need overwrite enabled")]
    ReadOnly,
    /// The files on disk disagree with what the database committed.
    #[error("files inconsistency in {path}: {reason}")]
    FilesInconsistency {
        /// The file or directory concerned.
        path: PathBuf,
        /// What disagrees.
        reason: String,
    },
    /// The item is larger than the configured limit.
    #[error("item of {size} bytes is larger than the limit of {limit} bytes")]
    ItemTooLarge {
        /// The item's size.
        size: u64,
        /// The largest size accepted here.
        limit: u64,
    },
    /// Empty items cannot be stored.
    #[error("empty payload: items must hold at least one byte")]
    EmptyPayload,
    /// A transaction with no items cannot be committed.
    #[error("empty transaction: add at least one item before commit")]
    EmptyTransaction,
    /// The database refuses writes after a failed write or sync, or found a state it cannot
    /// continue from.
    #[error("invalid database state: {reason}")]
    InvalidDbState {
        /// Why.
        reason: String,
        /// The failure that made the handle refuse writes, when that is the reason (its
        /// `source()`).
        #[source]
        cause: Option<Arc<Error>>,
    },
    /// The data file of this index does not exist.
    #[error("index {index} does not exist")]
    IndexDoesNotExist {
        /// The index asked for.
        index: u32,
    },
    /// A trim command does not fit the index (range or safety check).
    #[error("invalid trim command on index {index}: {reason}")]
    InvalidTrimCommand {
        /// The index.
        index: u32,
        /// What is wrong.
        reason: String,
    },
    /// Another process (or another open handle) holds the directory.
    #[error("the database at {path} is locked by another process or handle")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A location is not stored and has nothing pending to persist.
    #[error("location {location} is not stored")]
    NotStored {
        /// The location.
        location: ItemLocation,
    },
    /// The bytes stored at an indexed item's location do not match the CRC32C its item
    /// index recorded: they were altered on disk (or the index was). Nothing is returned.
    #[error("corrupted data at {location}: {reason}")]
    Corrupted {
        /// The item.
        location: ItemLocation,
        /// What does not match.
        reason: String,
    },
    /// The object store failed, or answered something other than what was stored, for the
    /// object `key` (feature `tiering`): a read of a remote item, an upload or its
    /// verification, a deletion. The local copy of a file being uploaded stays; appends and
    /// local reads go on.
    #[error("object store error on {key}: {cause}")]
    Remote {
        /// The object key.
        key: String,
        /// What failed, as the object store said it.
        cause: String,
    },
    /// No more index numbers fit in `file_padding` digits.
    #[error("database full: index {index} does not fit in {padding} digits")]
    DatabaseFull {
        /// The index that would be needed.
        index: u64,
        /// The configured padding.
        padding: usize,
    },
    /// A malformed 12-byte location.
    #[error("invalid location encoding: {reason}")]
    InvalidLocation {
        /// What is wrong.
        reason: String,
    },
    /// An operating-system I/O error, with the operation and path.
    #[error("i/o error: {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
}

/// Names the operation and the path of an I/O error: `file.sync_data().ctx("sync data
/// file", &path)?`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}

impl Error {
    /// [`Error::InvalidDbState`] for `reason`.
    pub(crate) fn state(reason: impl Into<String>) -> Self {
        Error::InvalidDbState {
            reason: reason.into(),
            cause: None,
        }
    }

    /// What every call that needs to write gets once the handle is poisoned by `cause`.
    pub(crate) fn poisoned(cause: &Error) -> Self {
        Error::InvalidDbState {
            reason: "a previous write failed; reopen the database to recover".to_owned(),
            cause: Some(Arc::new(cause.clone())),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn config(
        option: &'static str,
        value: &dyn std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidConfiguration {
            option,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn trim(index: u32, reason: impl Into<String>) -> Self {
        Error::InvalidTrimCommand {
            index,
            reason: reason.into(),
        }
    }
}
