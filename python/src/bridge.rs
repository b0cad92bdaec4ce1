//! The bridge between the engine's tokio runtime and asyncio: [`Call`], the awaitable that
//! every async method returns, and the runtime it runs on.
//!
//! A `Call` is a coroutine in all but type (it has `__await__`, `send`, `throw` and
//! `close`, so `asyncio.create_task` and `asyncio.gather` accept it). Like a coroutine it
//! does nothing until it is first resumed. Then it polls its Rust future once, on the
//! calling thread, with the runtime entered and, when the poll may do I/O, the
//! interpreter detached (the GIL released):
//! - ready (an add with room in the buffer, a read served from RAM or from the page
//!   cache): the result is returned at once, with no thread hop and no event-loop round;
//! - pending: the future moves to the runtime's workers, an asyncio future of the running
//!   loop is yielded to the task, and the worker resolves it with
//!   `loop.call_soon_threadsafe` when the Rust future completes.
//!
//! Lock order: a `Call`'s state mutex is never held while detached from the interpreter
//! or while calling Python code that could resume the same `Call`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pyo3::exceptions::{PyBaseException, PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;

/// What a finished Rust future leaves: the conversion of its output to Python, run where
/// the interpreter is attached.
pub(crate) type Outcome = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;
type BoxFut = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// The engine's runtime: shared by every database of the process, started on first use.
///
/// Two workers: the flusher, the hooks' dispatcher and the bridge's pending calls run on
/// them; file I/O runs on tokio's blocking pool.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("aiodiskdb-rs")
            .enable_all()
            .build()
            .expect("cannot start the aiodiskdb_rs runtime (threads)")
    })
}

enum State {
    /// Not resumed yet: the Rust future, not polled.
    Start(BoxFut),
    /// Known before any await: returned (or raised) on the first resume.
    Ready(PyResult<Py<PyAny>>),
    /// Pending on the runtime: the asyncio future it will resolve.
    Waiting(Py<PyAny>),
    /// Resumed to completion, closed, or being resumed by another thread.
    Done,
}

/// An awaitable call into the engine (see the module documentation).
#[pyclass(frozen, module = "aiodiskdb_rs._native", name = "Call")]
pub(crate) struct Call {
    state: Mutex<State>,
    /// Whether the first poll may do I/O, and so runs detached from the interpreter.
    io: bool,
}

impl Call {
    /// A call that runs `fut` when first awaited and converts its output with `convert`.
    /// Its first poll runs detached from the interpreter (it may read a file).
    pub(crate) fn new<F, T>(fut: F, convert: fn(Python<'_>, T) -> PyResult<Py<PyAny>>) -> Call
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        Call::with(fut, convert, true)
    }

    /// As [`Call::new`], for a future whose first poll does no I/O and never blocks (an
    /// add: a short lock and a copy into the buffer; waiting for space is `Pending`): it
    /// is polled without releasing the GIL, which would cost more than the poll.
    pub(crate) fn in_memory<F, T>(fut: F, convert: fn(Python<'_>, T) -> PyResult<Py<PyAny>>) -> Call
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        Call::with(fut, convert, false)
    }

    fn with<F, T>(fut: F, convert: fn(Python<'_>, T) -> PyResult<Py<PyAny>>, io: bool) -> Call
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let fut: BoxFut = Box::pin(async move {
            let out = fut.await;
            Box::new(move |py: Python<'_>| convert(py, out)) as Outcome
        });
        Call {
            state: Mutex::new(State::Start(fut)),
            io,
        }
    }

    /// A call whose result is already known (a value, or an error raised when awaited).
    pub(crate) fn ready(result: PyResult<Py<PyAny>>) -> Call {
        Call {
            state: Mutex::new(State::Ready(result)),
            io: false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take(&self) -> State {
        std::mem::replace(&mut *self.lock(), State::Done)
    }

    /// One resume: `Ok(future)` to yield, or `Err` (`StopIteration(value)` on completion).
    fn resume(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.take() {
            State::Start(fut) => self.first_poll(py, fut),
            State::Ready(r) => Err(stop_with(r?)),
            State::Waiting(fut) => {
                let f = fut.bind(py);
                if f.call_method0("done")?.is_truthy()? {
                    Err(stop_with(f.call_method0("result")?.unbind()))
                } else {
                    // Resumed before its future is done (not by an asyncio task): yield it again.
                    f.setattr("_asyncio_future_blocking", true)?;
                    *self.lock() = State::Waiting(fut.clone_ref(py));
                    Ok(fut)
                }
            }
            State::Done => Err(PyRuntimeError::new_err(
                "cannot reuse an already awaited aiodiskdb_rs call",
            )),
        }
    }

    fn first_poll(&self, py: Python<'_>, mut fut: BoxFut) -> PyResult<Py<PyAny>> {
        let poll = move || {
            let _rt = runtime().enter();
            let mut cx = Context::from_waker(Waker::noop());
            let polled = fut.as_mut().poll(&mut cx);
            (fut, polled)
        };
        let (fut, polled) = if self.io { py.detach(poll) } else { poll() };
        if let Poll::Ready(outcome) = polled {
            return Err(stop_with(outcome(py)?));
        }
        let event_loop = running_loop(py)?;
        let waiter = event_loop.call_method0("create_future")?;
        let (loop_ref, waiter_ref) = (event_loop.unbind(), waiter.clone().unbind());
        runtime().spawn(async move {
            let outcome = fut.await;
            attach(|py| deliver(py, &loop_ref, &waiter_ref, outcome(py)));
        });
        waiter.setattr("_asyncio_future_blocking", true)?;
        *self.lock() = State::Waiting(waiter.clone().unbind());
        Ok(waiter.unbind())
    }
}

/// `StopIteration(value)`: how an iterator returns a value to `await`.
fn stop_with(value: Py<PyAny>) -> PyErr {
    PyStopIteration::new_err((value,))
}

fn running_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static GET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let get = GET.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("asyncio")?.getattr("get_running_loop")?.unbind())
    })?;
    get.bind(py).call0()
}

/// Hands `result` to `waiter` on its loop's thread. A closed loop or a cancelled waiter
/// drops it: nobody is waiting any more.
fn deliver(
    py: Python<'_>,
    event_loop: &Py<PyAny>,
    waiter: &Py<PyAny>,
    result: PyResult<Py<PyAny>>,
) {
    let (ok, value) = match result {
        Ok(v) => (true, v),
        Err(e) => (false, e.into_value(py).into_any()),
    };
    let Some(resolve) = RESOLVE.get(py) else {
        return;
    };
    // Fails only when the loop is closed.
    let _ = event_loop.call_method1(
        py,
        "call_soon_threadsafe",
        (resolve.clone_ref(py), waiter.clone_ref(py), ok, value),
    );
}

/// `_resolve`, kept by the module's init for [`deliver`].
pub(crate) static RESOLVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Whether the interpreter is exiting (set by [`_exiting`]), and how many engine threads
/// are calling into Python or about to.
static EXITING: AtomicBool = AtomicBool::new(false);
static CALLING: Mutex<usize> = Mutex::new(0);
static CALLS_ENDED: Condvar = Condvar::new();

/// Runs `f` with the GIL on an engine thread, unless the interpreter is exiting (`None`).
///
/// A thread that is not Python's and asks for the GIL once the interpreter finalizes is
/// ended by `CPython` with `pthread_exit`, an unwind Rust cannot take: the process aborts
/// (it did, about one exit in 16, after a database's failure had left an event to deliver
/// at exit). So every call from an engine thread goes through here, and [`_exiting`]
/// waits for those under way before finalization goes on.
pub(crate) fn attach<R>(f: impl FnOnce(Python<'_>) -> R) -> Option<R> {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            let mut calling = CALLING
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *calling -= 1;
            CALLS_ENDED.notify_all();
        }
    }
    *CALLING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
    let _leave = Leave;
    if EXITING.load(Ordering::SeqCst) {
        return None;
    }
    Some(Python::attach(f))
}

/// Called at interpreter exit (`atexit`, after the databases still running were stopped):
/// from now on engine threads leave Python alone; waits (without the GIL, so that they can
/// finish) for the calls already under way, 10 s at most.
#[pyfunction]
pub(crate) fn _exiting(py: Python<'_>) {
    EXITING.store(true, Ordering::SeqCst);
    py.detach(|| {
        let calling = CALLING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = CALLS_ENDED
            .wait_timeout_while(calling, Duration::from_secs(10), |n| *n > 0)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    });
}

/// Sets `waiter`'s result (`ok`) or exception, unless it is already done (cancelled).
/// Runs on the loop's thread, scheduled by the engine's workers.
#[pyfunction]
pub(crate) fn _resolve(
    waiter: &Bound<'_, PyAny>,
    ok: bool,
    value: Bound<'_, PyAny>,
) -> PyResult<()> {
    if waiter.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    if ok {
        waiter.call_method1("set_result", (value,))?;
    } else {
        waiter.call_method1("set_exception", (value,))?;
    }
    Ok(())
}

#[pymethods]
impl Call {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.resume(py)
    }

    /// Resumes the call (the value sent is ignored, as for a coroutine that awaits).
    #[pyo3(signature = (_value=None))]
    fn send(&self, py: Python<'_>, _value: Option<Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        self.resume(py)
    }

    /// Raises `typ` (an exception type or instance) into the call: it ends, and an asyncio
    /// future it waits for is cancelled. The engine finishes what it already started (see
    /// each method's notes on cancellation).
    #[pyo3(signature = (typ, val=None, _tb=None))]
    fn throw(
        &self,
        py: Python<'_>,
        typ: Bound<'_, PyAny>,
        val: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.close(py)?;
        let exc = if typ.is_instance_of::<PyBaseException>() {
            typ
        } else {
            match val {
                Some(v) if v.is_instance_of::<PyBaseException>() => v,
                Some(v) if !v.is_none() => typ.call1((v,))?,
                _ => typ.call1(PyTuple::empty(py))?,
            }
        };
        Err(PyErr::from_value(exc))
    }

    /// Ends the call; a pending asyncio future is cancelled.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let State::Waiting(fut) = self.take() {
            fut.bind(py).call_method0("cancel")?;
        }
        Ok(())
    }

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        let state = match &*slf.get().lock() {
            State::Start(_) => "not awaited",
            State::Ready(_) => "ready",
            State::Waiting(_) => "waiting",
            State::Done => "done",
        };
        format!("<aiodiskdb_rs call ({state})>")
    }
}
