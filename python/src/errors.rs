//! The engine's [`Error`] as the exceptions of `aiodiskdb_rs.exceptions` (Python classes,
//! looked up by name when raised).

use aiodiskdb::Error;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;

fn module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    MODULE
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("aiodiskdb_rs.exceptions")?.unbind())
        })
        .map(|m| m.bind(py))
}

/// An instance of `aiodiskdb_rs.exceptions.<class>` built with `args`, as a `PyErr`.
fn raise<'py, A>(py: Python<'py>, class: &str, args: A) -> PyErr
where
    A: pyo3::call::PyCallArgs<'py>,
{
    let made = module(py)
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.call1(args));
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

/// `aiodiskdb_rs.exceptions.<class>(message)`.
pub(crate) fn exc(py: Python<'_>, class: &str, message: impl Into<String>) -> PyErr {
    raise(py, class, (message.into(),))
}

/// The exception for an engine error. Its message is the error's, with its causes.
pub(crate) fn to_py(py: Python<'_>, err: &Error) -> PyErr {
    let class = match err {
        Error::InvalidConfiguration { .. } => "InvalidConfigurationException",
        Error::NotRunning => "NotRunningException",
        Error::Timeout { .. } => "TimeoutException",
        Error::InvalidDataFile { .. } => "InvalidDataFileException",
        Error::ReadOnly => "ReadOnlyDatabaseException",
        Error::FilesInconsistency { .. } => "FilesInconsistencyException",
        Error::ItemTooLarge { .. } => "ItemTooLargeException",
        Error::EmptyPayload => "EmptyPayloadException",
        Error::EmptyTransaction => "EmptyTransactionException",
        // A handle that refuses writes because its files changed behind its back (a data
        // file deleted or cut while running): the class the original raises at its flush.
        Error::InvalidDbState {
            cause: Some(cause), ..
        } if matches!(**cause, Error::FilesInconsistency { .. }) => "FilesInconsistencyException",
        Error::InvalidDbState { .. } => "InvalidDBStateException",
        Error::IndexDoesNotExist { .. } => "IndexDoesNotExist",
        Error::InvalidTrimCommand { .. } => "InvalidTrimCommandException",
        Error::Locked { .. } => "DatabaseLockedException",
        Error::NotStored { .. } => "NotStoredException",
        Error::Corrupted { .. } => "CorruptedDataException",
        Error::DatabaseFull { .. } => "DatabaseFullException",
        Error::InvalidLocation { .. } => "InvalidLocationException",
        Error::Io { path, source, .. } => {
            // OSError(errno, strerror, filename): `errno` and `filename` as users expect.
            let errno = source.raw_os_error().unwrap_or(0);
            return raise(
                py,
                "DiskIOException",
                (errno, message(err), path.display().to_string()),
            );
        }
        _ => "AioDiskDBException",
    };
    exc(py, class, message(err))
}

/// The error's message followed by its causes: "a: b: c".
fn message(err: &Error) -> String {
    let mut out = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
