//! Where the workers of a workload run: tokio tasks for aiodiskdb (as its users run it), or
//! threads for the engines with a blocking API, whose futures are ready at their first
//! poll. The drivers are written once, as async code, and spawn and yield through
//! [`Exec`]; [`block_on`] runs a future to completion on the current thread.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use anyhow::{anyhow, Context as _};

/// How an engine's workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exec {
    /// Tokio tasks, on the current runtime.
    Tasks,
    /// One thread each, running the future with [`block_on`].
    Threads,
}

impl Exec {
    /// What the progress lines call the workers.
    pub(crate) fn workers(self) -> &'static str {
        match self {
            Exec::Tasks => "tasks",
            Exec::Threads => "threads",
        }
    }

    /// Starts a worker.
    pub(crate) fn spawn<T: Send + 'static>(
        self,
        work: impl Future<Output = anyhow::Result<T>> + Send + 'static,
    ) -> Worker<T> {
        Worker(match self {
            Exec::Tasks => Spawned::Task(tokio::spawn(work)),
            Exec::Threads => Spawned::Thread(thread::spawn(move || block_on(work))),
        })
    }

    /// Lets the other workers run.
    pub(crate) async fn yield_now(self) {
        match self {
            Exec::Tasks => tokio::task::yield_now().await,
            Exec::Threads => thread::yield_now(),
        }
    }

    /// Runs blocking work (a limit measurement) off the runtime's worker threads.
    pub(crate) async fn blocking<T: Send + 'static>(
        self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        match self {
            Exec::Tasks => tokio::task::spawn_blocking(work)
                .await
                .context("limit measurement panicked"),
            Exec::Threads => Ok(work()),
        }
    }
}

/// A running worker.
pub(crate) struct Worker<T>(Spawned<T>);

enum Spawned<T> {
    Task(tokio::task::JoinHandle<anyhow::Result<T>>),
    Thread(thread::JoinHandle<anyhow::Result<T>>),
}

impl<T> Worker<T> {
    /// Waits for the worker (a thread: blocks) and returns its result.
    pub(crate) async fn join(self) -> anyhow::Result<T> {
        match self.0 {
            Spawned::Task(task) => task.await?,
            Spawned::Thread(thread) => thread
                .join()
                .map_err(|_| anyhow!("a worker thread panicked"))?,
        }
    }
}

/// Waits for every worker, then returns their results, or the first error: no worker is
/// left running when a workload fails.
pub(crate) async fn join_all<T>(workers: Vec<Worker<T>>) -> anyhow::Result<Vec<T>> {
    let mut results = Vec::with_capacity(workers.len());
    for w in workers {
        results.push(w.join().await);
    }
    results.into_iter().collect()
}

/// Runs `future` to completion on the current thread, parking it while the future waits.
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => thread::park(),
        }
    }
}
