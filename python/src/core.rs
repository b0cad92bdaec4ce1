//! `Core`: one database's engine handle as Python sees it (the `AioDiskDB` class of
//! `aiodiskdb_rs/aiodiskdb.py` wraps it), and `AioDiskDBTransaction`.
//!
//! Every async method returns a [`Call`]; errors known before any await (not running, a
//! bad argument's value) are raised when the call is awaited, as a coroutine would.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use aiodiskdb::{AioDiskDb, Builder, Durability, Error, ItemLocation, Transaction, WriteEvent};
use bytes::Bytes;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyMemoryView};
use tokio::sync::watch;

use crate::bridge::{runtime, Call};
use crate::errors::{exc, to_py};
use crate::types::{PyItemLocation, PyWriteEvent};

/// Items at least this large are handed to the engine without a copy (the buffer keeps a
/// reference to the Python `bytes`); smaller ones are copied, which is cheaper.
const ZERO_COPY_FROM: usize = 64 * 1024;

/// How long `stop` waits for the hooks' dispatcher to hand `on_stop` to the event loop.
const STOP_EVENT_WAIT: Duration = Duration::from_secs(2);

/// The options of the constructor, in the engine's units.
#[derive(Debug, Clone)]
struct Options {
    path: PathBuf,
    create_if_missing: bool,
    clean_stale_data: bool,
    file_padding: usize,
    file_prefix: String,
    max_file_size: u64,
    max_buffer_items: usize,
    max_buffer_size: u64,
    flush_interval: Duration,
    genesis: [u8; 4],
    timeout: Duration,
    concurrency: usize,
    durability: Durability,
    verify_reads: bool,
}

impl Options {
    fn builder(&self, overwrite: bool) -> Builder {
        AioDiskDb::builder(&self.path)
            .create_if_missing(self.create_if_missing)
            .clean_stale_data(self.clean_stale_data)
            .file_padding(self.file_padding)
            .file_prefix(self.file_prefix.clone())
            .max_file_size(self.max_file_size)
            .max_buffer_items(self.max_buffer_items)
            .max_buffer_size(self.max_buffer_size)
            .flush_interval(self.flush_interval)
            .genesis_bytes(self.genesis)
            .timeout(self.timeout)
            .concurrency(self.concurrency)
            .durability(self.durability)
            .verify_reads(self.verify_reads)
            .overwrite(overwrite)
    }
}

/// Seconds as a `Duration`; infinity means for ever. `None` for a negative or NaN value.
fn seconds(value: f64) -> Option<Duration> {
    if value == f64::INFINITY {
        return Some(Duration::MAX);
    }
    Duration::try_from_secs_f64(value).ok()
}

fn epoch_secs(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// An engine event, as `dispatch(kind, timestamp, a, b)` receives it.
enum PyEvent {
    Start,
    Stop,
    Failure(Error),
    Write(WriteEvent),
    IndexDrop(u32, u64),
}

/// Calls the Python dispatcher for `event`, on a blocking thread (it waits for the
/// interpreter), and returns once it was called.
async fn forward(dispatch: Arc<Py<PyAny>>, at: SystemTime, event: PyEvent) {
    let ts = epoch_secs(at);
    let call = move || {
        crate::bridge::attach(|py| {
            let d = dispatch.bind(py);
            let r = match event {
                PyEvent::Start => d.call1(("start", ts, py.None(), py.None())),
                PyEvent::Stop => d.call1(("stop", ts, py.None(), py.None())),
                PyEvent::Failure(e) => {
                    let err = to_py(py, &e).into_value(py);
                    d.call1(("failure", ts, err, py.None()))
                }
                PyEvent::Write(w) => Py::new(
                    py,
                    PyWriteEvent {
                        index: w.index,
                        position: w.position,
                        size: w.size,
                    },
                )
                .and_then(|w| d.call1(("write", ts, w, py.None()))),
                PyEvent::IndexDrop(index, size) => d.call1(("index_drop", ts, index, size)),
            };
            if let Err(e) = r {
                // The dispatcher only schedules; it fails when the loop is gone.
                e.print(py);
            }
        });
    };
    // A failed join means the call panicked; there is nobody to tell but stderr.
    let _ = tokio::task::spawn_blocking(call).await;
}

/// One database, as the Python `AioDiskDB` drives it.
#[pyclass(frozen, module = "aiodiskdb_rs._native", name = "Core")]
pub(crate) struct Core {
    opts: Options,
    overwrite: AtomicBool,
    /// Set once `open` succeeded; a database runs once.
    db: OnceLock<AioDiskDb>,
    /// `open` was called (and has not failed).
    started: AtomicBool,
    /// Set once the hooks' dispatcher handed the `stop` event over.
    stop_seen: watch::Sender<bool>,
    /// Set once an `open` finished, opened or not: what a stop during the open waits for.
    opened: watch::Sender<bool>,
}

impl Core {
    fn db(&self) -> Option<&AioDiskDb> {
        self.db.get()
    }

    /// The database once opened; else the `NotRunningException` to raise. A stopped or
    /// failed database is returned too: the engine refuses what it must (every call
    /// after `stop`, writes after a failed write) with its own error, and still serves
    /// reads after a failed write.
    fn running_db(&self, py: Python<'_>) -> PyResult<AioDiskDb> {
        self.db().cloned().ok_or_else(|| {
            exc(
                py,
                "NotRunningException",
                "the database is not running: await db.start() (or run()) first",
            )
        })
    }

    /// Stops the database and waits (boundedly) for `on_stop` to be handed to the loop.
    async fn stop_and_drain(db: AioDiskDb, seen: watch::Receiver<bool>) -> aiodiskdb::Result<()> {
        let r = db.stop().await;
        let mut seen = seen;
        if r.is_ok() {
            let _ = tokio::time::timeout(STOP_EVENT_WAIT, seen.wait_for(|s| *s)).await;
        }
        r
    }
}

fn none(py: Python<'_>, r: aiodiskdb::Result<()>) -> PyResult<Py<PyAny>> {
    r.map(|()| py.None()).map_err(|e| to_py(py, &e))
}

fn location(py: Python<'_>, r: aiodiskdb::Result<ItemLocation>) -> PyResult<Py<PyAny>> {
    match r {
        Ok(l) => Ok(Py::new(py, PyItemLocation::from(l))?.into_any()),
        Err(e) => Err(to_py(py, &e)),
    }
}

fn data(py: Python<'_>, r: aiodiskdb::Result<Option<Bytes>>) -> PyResult<Py<PyAny>> {
    match r {
        Ok(Some(b)) => Ok(PyBytes::new(py, &b).into_any().unbind()),
        Ok(None) => Ok(py.None()),
        Err(e) => Err(to_py(py, &e)),
    }
}

fn count(py: Python<'_>, r: aiodiskdb::Result<u64>) -> PyResult<Py<PyAny>> {
    match r {
        Ok(n) => Ok(n.into_pyobject(py)?.into_any().unbind()),
        Err(e) => Err(to_py(py, &e)),
    }
}

/// An item's bytes: `bytes` (shared, not copied, when large), `bytearray` (copied), or any
/// other bytes-like object (`memoryview`, `array.array`, ...: what `memoryview()` takes, as
/// the original writes whatever its file takes; copied once).
pub(crate) fn item_bytes(data: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    if let Ok(b) = data.cast::<PyByteArray>() {
        return Ok(Bytes::from(b.to_vec()));
    }
    let b = bytes_of(data, "data")?;
    let s = b.as_bytes();
    if s.len() >= ZERO_COPY_FROM {
        return Ok(Bytes::from_owner(PyBackedBytes::from(b)));
    }
    Ok(Bytes::copy_from_slice(s))
}

/// `obj` as `bytes`: itself, or for another bytes-like object a copy through
/// `memoryview` (the buffer protocol is not in the limited API of Python 3.9). `TypeError`
/// naming `what` for anything else (a `str`, an `int`, `None`).
pub(crate) fn bytes_of<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Bound<'py, PyBytes>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(b.clone());
    }
    let view = PyMemoryView::from(obj).map_err(|_| {
        let name = obj
            .get_type()
            .name()
            .map_or_else(|_| "?".to_owned(), |n| n.to_string());
        PyTypeError::new_err(format!(
            "{what} must be a bytes-like object (bytes, bytearray, memoryview), not {name}"
        ))
    })?;
    Ok(view.call_method0("tobytes")?.cast_into::<PyBytes>()?)
}

/// A Python int as a `u32` index: out of range, no such index exists.
fn index_arg(py: Python<'_>, index: i128) -> PyResult<u32> {
    u32::try_from(index).map_err(|_| {
        exc(
            py,
            "IndexDoesNotExist",
            format!("index {index} does not exist (indexes are 0 to 4294967295)"),
        )
    })
}

/// A Python int as a `u32` trim position.
fn position_arg(py: Python<'_>, what: &str, position: i128) -> PyResult<u32> {
    u32::try_from(position).map_err(|_| {
        exc(
            py,
            "InvalidTrimCommandException",
            format!("{what} = {position} is out of range (0 to 4294967295)"),
        )
    })
}

/// Unwraps a `PyResult`: an error becomes the call returned, raised when it is awaited.
macro_rules! or_call {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Call::ready(Err(e))),
        }
    };
}

#[pymethods]
impl Core {
    /// Checks the options (raising `InvalidConfigurationException`); opens nothing.
    #[new]
    #[pyo3(signature = (
        path, *, create_if_missing, overwrite, clean_stale_data, file_padding, file_prefix,
        max_file_size, max_buffer_items, max_buffer_size, flush_interval, genesis_bytes,
        timeout, concurrency, durability, verify_reads
    ))]
    #[expect(
        clippy::too_many_arguments,
        reason = "the original constructor's arguments"
    )]
    #[expect(
        clippy::fn_params_excessive_bools,
        reason = "the original constructor's arguments"
    )]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        create_if_missing: bool,
        overwrite: bool,
        clean_stale_data: bool,
        file_padding: usize,
        file_prefix: String,
        max_file_size: u64,
        max_buffer_items: usize,
        max_buffer_size: u64,
        flush_interval: f64,
        genesis_bytes: &[u8],
        timeout: f64,
        concurrency: usize,
        durability: &str,
        verify_reads: bool,
    ) -> PyResult<Core> {
        let bad = |option: &str, value: String, reason: &str| {
            exc(
                py,
                "InvalidConfigurationException",
                format!("invalid configuration: {option} = {value}: {reason}"),
            )
        };
        let genesis: [u8; 4] = genesis_bytes.try_into().map_err(|_| {
            bad(
                "genesis_bytes",
                format!("{genesis_bytes:?}"),
                "must be 4 bytes",
            )
        })?;
        let flush_interval = seconds(flush_interval).ok_or_else(|| {
            bad(
                "flush_interval",
                flush_interval.to_string(),
                "must be a number of seconds >= 0",
            )
        })?;
        let timeout = seconds(timeout).ok_or_else(|| {
            bad(
                "timeout",
                timeout.to_string(),
                "must be a number of seconds >= 0",
            )
        })?;
        let durability = match durability {
            "sync" => Durability::Sync,
            "os" => Durability::Os,
            other => {
                return Err(bad(
                    "durability",
                    format!("{other:?}"),
                    "must be 'sync' or 'os'",
                ))
            }
        };
        let opts = Options {
            path,
            create_if_missing,
            clean_stale_data,
            file_padding,
            file_prefix,
            max_file_size,
            max_buffer_items,
            max_buffer_size,
            flush_interval,
            genesis,
            timeout,
            concurrency,
            durability,
            verify_reads,
        };
        opts.builder(overwrite).check().map_err(|e| to_py(py, &e))?;
        Ok(Core {
            opts,
            overwrite: AtomicBool::new(overwrite),
            db: OnceLock::new(),
            started: AtomicBool::new(false),
            stop_seen: watch::Sender::new(false),
            opened: watch::Sender::new(false),
        })
    }

    /// Opens the database; `dispatch(kind, timestamp, a, b)` is called (from an engine
    /// thread) for every event until the database stops.
    fn open(slf: Py<Self>, py: Python<'_>, dispatch: Py<PyAny>) -> Call {
        let this = slf.get();
        if this.db().is_some() || this.started.swap(true, Ordering::SeqCst) {
            return Call::ready(Err(exc(
                py,
                "NotRunningException",
                "the database was already started: create a new AioDiskDB to reopen it",
            )));
        }
        let d = Arc::new(dispatch);
        let (d1, d2, d3, d4, d5) = (d.clone(), d.clone(), d.clone(), d.clone(), d);
        let seen = this.stop_seen.clone();
        let builder = this
            .opts
            .builder(this.overwrite.load(Ordering::SeqCst))
            .on_start(move |at| forward(d1.clone(), at, PyEvent::Start))
            .on_stop(move |at| {
                let (d, seen) = (d2.clone(), seen.clone());
                async move {
                    forward(d, at, PyEvent::Stop).await;
                    seen.send_replace(true);
                }
            })
            .on_failure(move |at, e| forward(d3.clone(), at, PyEvent::Failure(e)))
            .on_write(move |at, w| forward(d4.clone(), at, PyEvent::Write(w)))
            .on_index_drop(move |at, i, s| forward(d5.clone(), at, PyEvent::IndexDrop(i, s)));
        Call::new(
            async move {
                let this = slf.get();
                let r = match builder.open().await {
                    Ok(db) => {
                        // `overwrite` may have changed while opening.
                        if this.overwrite.load(Ordering::SeqCst) {
                            db.enable_overwrite();
                        } else {
                            db.disable_overwrite();
                        }
                        let _ = this.db.set(db);
                        Ok(())
                    }
                    Err(e) => {
                        this.started.store(false, Ordering::SeqCst);
                        Err(e)
                    }
                };
                this.opened.send_replace(true);
                r
            },
            none,
        )
    }

    /// Whether the database accepts calls.
    #[getter]
    fn running(&self) -> bool {
        self.db().is_some_and(AioDiskDb::is_running)
    }

    /// Whether trims and drops are allowed.
    #[getter]
    fn overwrite(&self) -> bool {
        self.overwrite.load(Ordering::SeqCst)
    }

    /// Allows trims and drops (and `destroy_db`).
    fn enable_overwrite(&self) {
        self.overwrite.store(true, Ordering::SeqCst);
        if let Some(db) = self.db() {
            db.enable_overwrite();
        }
    }

    /// Forbids trims and drops again.
    fn disable_overwrite(&self) {
        self.overwrite.store(false, Ordering::SeqCst);
        if let Some(db) = self.db() {
            db.disable_overwrite();
        }
    }

    /// Appends an item: a `Call` giving its `ItemLocation`.
    fn add(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Call> {
        let bytes = item_bytes(data)?;
        let db = or_call!(self.running_db(py));
        Ok(Call::in_memory(
            async move { db.add(bytes).await },
            location,
        ))
    }

    /// Reads an item: a `Call` giving its bytes, or `None` when not wholly stored.
    fn read(&self, py: Python<'_>, location: &Bound<'_, PyAny>) -> PyResult<Call> {
        let loc = PyItemLocation::from_object(location)?;
        let db = or_call!(self.running_db(py));
        let Some(loc) = loc else {
            return Ok(Call::ready(Ok(py.None())));
        };
        Ok(Call::new(async move { db.read(loc).await }, data))
    }

    /// Persists everything added so far: a `Call` that returns once it is durable.
    fn flush(&self, py: Python<'_>) -> PyResult<Call> {
        let db = or_call!(self.running_db(py));
        Ok(Call::new(async move { db.flush().await }, none))
    }

    /// Waits, without forcing a flush, until the item at `location` is durable.
    fn wait_persisted(&self, py: Python<'_>, location: &Bound<'_, PyAny>) -> PyResult<Call> {
        let loc = PyItemLocation::from_object(location)?;
        let db = or_call!(self.running_db(py));
        let Some(loc) = loc else {
            return Ok(Call::ready(Err(exc(
                py,
                "NotStoredException",
                "location is out of range: not stored",
            ))));
        };
        Ok(Call::new(async move { db.wait_persisted(loc).await }, none))
    }

    /// Cuts `index` from `trim_from` to its end: a `Call` giving the bytes removed.
    fn rtrim(
        &self,
        py: Python<'_>,
        index: i128,
        trim_from: i128,
        safety_check: Vec<u8>,
    ) -> PyResult<Call> {
        let db = or_call!(self.running_db(py));
        let index = or_call!(index_arg(py, index));
        let from = or_call!(position_arg(py, "trim_from", trim_from));
        Ok(Call::new(
            async move { db.rtrim(index, from, &safety_check).await },
            count,
        ))
    }

    /// Removes the bytes of `index` before `trim_to`: a `Call` giving how many.
    fn ltrim(
        &self,
        py: Python<'_>,
        index: i128,
        trim_to: i128,
        safety_check: Vec<u8>,
    ) -> PyResult<Call> {
        let db = or_call!(self.running_db(py));
        let index = or_call!(index_arg(py, index));
        let to = or_call!(position_arg(py, "trim_to", trim_to));
        Ok(Call::new(
            async move { db.ltrim(index, to, &safety_check).await },
            count,
        ))
    }

    /// Deletes the data file of `index`: a `Call` giving its size.
    fn drop_index(&self, py: Python<'_>, index: i128) -> PyResult<Call> {
        let db = or_call!(self.running_db(py));
        let index = or_call!(index_arg(py, index));
        Ok(Call::new(async move { db.drop_index(index).await }, count))
    }

    /// Stops the database (everything persisted, the directory released).
    fn stop(&self, py: Python<'_>) -> PyResult<Call> {
        // A database that refuses writes after a failure still stops (releasing its
        // directory).
        let db = or_call!(self.running_db(py));
        let seen = self.stop_seen.subscribe();
        Ok(Call::new(Core::stop_and_drain(db, seen), none))
    }

    /// Stops the database from synchronous code (a signal handler, interpreter exit),
    /// blocking with the interpreter detached. Returns whether this call stopped it.
    fn stop_blocking(&self, py: Python<'_>) -> PyResult<bool> {
        if self.db().is_none() && self.started.load(Ordering::SeqCst) {
            // Opening (its awaiting task may have been cancelled): the open goes on in
            // the engine; wait for it, then stop what it opened.
            let mut opened = self.opened.subscribe();
            py.detach(move || {
                runtime().block_on(async move {
                    let _ = opened.wait_for(|o| *o).await;
                });
            });
        }
        let Some(db) = self.db().cloned() else {
            return Ok(false);
        };
        let seen = self.stop_seen.subscribe();
        let r = py.detach(move || runtime().block_on(Core::stop_and_drain(db, seen)));
        match r {
            Ok(()) => Ok(true),
            Err(Error::NotRunning) => Ok(false),
            Err(e) => Err(to_py(py, &e)),
        }
    }

    /// A new transaction.
    fn transaction(&self, py: Python<'_>) -> PyResult<Tx> {
        let db = self.running_db(py)?;
        Ok(Tx {
            state: Arc::new(Mutex::new(TxState::Open(db.transaction()))),
        })
    }
}

enum TxState {
    Open(Transaction),
    Committing,
    Done,
}

fn lock(state: &Mutex<TxState>) -> MutexGuard<'_, TxState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why a commit did not happen.
enum CommitError {
    Engine(Error),
    OnGoing,
    Done,
}

fn committed(py: Python<'_>, r: Result<Vec<ItemLocation>, CommitError>) -> PyResult<Py<PyAny>> {
    match r {
        Ok(locs) => {
            let items = locs
                .into_iter()
                .map(|l| Py::new(py, PyItemLocation::from(l)))
                .collect::<PyResult<Vec<_>>>()?;
            Ok(PyList::new(py, items)?.into_any().unbind())
        }
        Err(CommitError::Engine(e)) => Err(to_py(py, &e)),
        Err(CommitError::OnGoing) => Err(exc(
            py,
            "TransactionCommitOnGoingException",
            "this transaction's commit is running",
        )),
        Err(CommitError::Done) => Err(exc(
            py,
            "TransactionAlreadyCommittedException",
            "this transaction was already committed",
        )),
    }
}

/// A transaction: items staged with ``add`` are invisible to reads until ``await
/// commit()`` writes them all, contiguously, atomically and durably. ``await
/// db.transaction()`` (the original's form) and ``db.transaction()`` both give it.
#[pyclass(frozen, module = "aiodiskdb_rs", name = "AioDiskDBTransaction")]
pub(crate) struct Tx {
    state: Arc<Mutex<TxState>>,
}

#[pymethods]
impl Tx {
    /// Stages an item. Raises ``EmptyPayloadException``, ``ItemTooLargeException`` (larger
    /// than a data file), or, once committed, ``TransactionAlreadyCommittedException``.
    fn add(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = item_bytes(data)?;
        match &mut *lock(&self.state) {
            TxState::Open(tx) => tx.add(bytes).map_err(|e| to_py(py, &e)),
            TxState::Committing => Err(exc(
                py,
                "TransactionCommitOnGoingException",
                "this transaction's commit is running",
            )),
            TxState::Done => Err(exc(
                py,
                "TransactionAlreadyCommittedException",
                "this transaction was already committed",
            )),
        }
    }

    /// Writes the staged items after everything added before and returns their
    /// locations, in order, once they are durable. Raises ``EmptyTransactionException``
    /// (the transaction stays open) when nothing is staged.
    fn commit(&self) -> Call {
        let state = Arc::clone(&self.state);
        Call::new(
            async move {
                let tx = {
                    let mut s = lock(&state);
                    match std::mem::replace(&mut *s, TxState::Committing) {
                        TxState::Open(tx) if tx.is_empty() => {
                            *s = TxState::Open(tx);
                            return Err(CommitError::Engine(Error::EmptyTransaction));
                        }
                        TxState::Open(tx) => tx,
                        TxState::Committing => return Err(CommitError::OnGoing),
                        TxState::Done => {
                            *s = TxState::Done;
                            return Err(CommitError::Done);
                        }
                    }
                };
                let r = tx.commit().await;
                *lock(&state) = TxState::Done;
                r.map_err(CommitError::Engine)
            },
            committed,
        )
    }

    /// Items staged and not committed yet.
    fn __len__(&self) -> usize {
        match &*lock(&self.state) {
            TxState::Open(tx) => tx.len(),
            _ => 0,
        }
    }

    fn __await__(slf: Py<Self>) -> Call {
        Call::ready(Ok(slf.into_any()))
    }
}
