//! What the agent holds: cheap calls that mark progress and ask for states, and a close that
//! never blocks an async runtime for longer than it promises.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::record::State;
use crate::{Error, Name};

use super::CLOSE_TIMEOUT;
use super::clock::Progress;
use super::heartbeat::Desired;

/// The agent's side of its ready signal. Cheap to use, and to clone, from any thread.
///
/// Dropping the last clone asks the publisher to publish `stopping` and remove the record, and
/// returns at once (it never waits, so it never blocks an async runtime); the publisher thread
/// finishes on its own within [`super::CLOSE_TIMEOUT`], unless the process exits first. To be sure
/// the record is gone before exiting, call [`Handle::close`] (async) or [`Handle::shutdown`].
#[derive(Debug, Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    progress: Arc<Progress>,
    desired: watch::Sender<Desired>,
    finished: Arc<Finished>,
    instance: String,
    agent: Name,
    replica: Name,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.desired.send_modify(|d| d.stop = true);
    }
}

/// Set once the publisher thread has ended, for blocking and async waiters alike.
#[derive(Debug, Default)]
pub(crate) struct Finished {
    done: Mutex<bool>,
    cv: Condvar,
    notify: Notify,
}

impl Finished {
    pub(crate) fn set(&self) {
        if let Ok(mut done) = self.done.lock() {
            *done = true;
        }
        self.cv.notify_all();
        self.notify.notify_waiters();
    }

    fn is_set(&self) -> bool {
        self.done.lock().map_or(true, |d| *d)
    }

    fn wait_blocking(&self, bound: Duration) -> bool {
        let Ok(done) = self.done.lock() else {
            return true;
        };
        self.cv
            .wait_timeout_while(done, bound, |d| !*d)
            .map_or(true, |(done, _)| *done)
    }

    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

impl Handle {
    pub(crate) fn new(
        progress: Arc<Progress>,
        desired: watch::Sender<Desired>,
        finished: Arc<Finished>,
        instance: String,
        agent: Name,
        replica: Name,
    ) -> Handle {
        Handle {
            inner: Arc::new(Inner {
                progress,
                desired,
                finished,
                instance,
                agent,
                replica,
            }),
        }
    }

    /// Publishes `ready`.
    pub fn ready(&self) {
        self.set(State::Ready, "");
    }

    /// Publishes `not-ready` with a reason, stored on one line: control characters are escaped
    /// (a newline reads `\n`) and it is cut to 200 bytes.
    pub fn not_ready(&self, reason: impl Into<String>) {
        let reason: String = reason.into();
        self.set(State::NotReady, &reason);
    }

    /// Publishes `starting` again (for example while reconnecting to a dependency).
    pub fn starting(&self) {
        self.set(State::Starting, "");
    }

    /// Publishes `stopping`; the record stays until [`Handle::close`], [`Handle::shutdown`] or
    /// the last clone is dropped.
    pub fn stopping(&self) {
        self.set(State::Stopping, "");
    }

    /// Marks progress of the work loop. Call it once per iteration; it is an atomic store.
    pub fn tick(&self) {
        self.inner.progress.tick();
    }

    /// Marks progress that happened `ago` (for example a progress file's modification time): the
    /// stall is measured from when the work moved, not from when it was reported. A mark never
    /// moves back.
    pub fn progressed_ago(&self, ago: Duration) {
        self.inner.progress.progressed_ago(ago);
    }

    /// Declares that the current work item may take up to `budget` without ticks.
    ///
    /// **What it hides**: for the whole budget the record is refreshed whatever happens, so a
    /// work loop that freezes inside the item (a deadlock, a blocked executor) is caught only
    /// when the budget runs out, `budget` + `stall_after` after the freeze instead of
    /// `stall_after`. Use it for work that cannot tick, such as one long blocking call; to wait
    /// for input, use [`Handle::waiting`], which keeps catching a frozen executor.
    pub fn busy(&self, budget: Duration) {
        self.inner.progress.busy(budget);
    }

    /// Awaits `input` ("waiting for work") while proving the executor is still responsive, so
    /// an idle agent stays fresh and a frozen one is still caught within `stall_after`.
    ///
    /// Without it, an agent that waits for work longer than `stall_after` stops ticking and
    /// reads stale, as if frozen. Inside it, the publisher thread pings four times per
    /// `stall_after` and every poll of this future that follows a ping is a tick: while the
    /// executor keeps polling the task, the record stays fresh however long the wait; once it
    /// stops (a blocking call on a current-thread runtime, a frozen runtime), the ticks stop and
    /// the record goes stale as for any stall. It proves that the executor polls this task, not
    /// that `input` will ever complete: wait for input here, do the work outside it and
    /// [`Handle::tick`] from the work. Works on any executor (no timer of the caller's).
    ///
    /// ```no_run
    /// # async fn agent(mut jobs: tokio::sync::mpsc::Receiver<String>) -> Result<(), ready_signal::Error> {
    /// let signal = ready_signal::ReadySignal::builder("worker").start()?;
    /// signal.ready();
    /// while let Some(job) = signal.waiting(jobs.recv()).await {   // idle: fresh while polled
    ///     println!("{job}");                                     // the work itself
    ///     signal.tick();                                         // progress
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn waiting<F: std::future::Future>(&self, input: F) -> F::Output {
        self.inner.progress.waiting(input).await
    }

    /// This process's instance id.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// The agent name.
    pub fn agent(&self) -> &Name {
        &self.inner.agent
    }

    /// The replica name.
    pub fn replica(&self) -> &Name {
        &self.inner.replica
    }

    /// Whether the publisher has ended (closed, or its thread gone).
    pub fn is_closed(&self) -> bool {
        self.inner.finished.is_set()
    }

    /// Publishes `stopping`, removes the record and waits for the publisher to finish, at most
    /// [`CLOSE_TIMEOUT`]. Blocks the calling thread: from async code use [`Handle::close`].
    /// Later calls on any clone do nothing.
    pub fn shutdown(&self) {
        self.request_stop();
        if !self.inner.finished.wait_blocking(CLOSE_TIMEOUT) {
            tracing::warn!(agent = %self.inner.agent, bound = ?CLOSE_TIMEOUT,
                "the ready-signal publisher did not finish in time; leaving it");
        }
    }

    /// As [`Handle::shutdown`], without blocking an async executor.
    pub async fn close(&self) {
        self.request_stop();
        if tokio::time::timeout(CLOSE_TIMEOUT, self.inner.finished.wait())
            .await
            .is_err()
        {
            tracing::warn!(agent = %self.inner.agent, bound = ?CLOSE_TIMEOUT,
                "the ready-signal publisher did not finish in time; leaving it");
        }
    }

    fn request_stop(&self) {
        self.inner.desired.send_modify(|d| d.stop = true);
    }

    fn set(&self, state: State, reason: &str) {
        // Asking for a state is progress: the agent's own thread is alive enough to ask.
        self.tick();
        self.inner.desired.send_if_modified(|d| {
            let changed = d.state != state || d.reason != reason;
            if changed {
                d.state = state;
                d.reason = reason.to_string();
            }
            changed
        });
    }
}

/// Waits for SIGTERM or SIGINT, then publishes `stopping` and removes the record. Returns the
/// name of the signal. The crate never restarts or kills anything: what to do next is the
/// caller's choice.
///
/// ```no_run
/// # async fn agent() -> Result<(), ready_signal::Error> {
/// let signal = ready_signal::ReadySignal::builder("worker").start()?;
/// signal.ready();
/// let name = ready_signal::shutdown_on_signal(signal).await?;
/// eprintln!("stopped by {name}");
/// # Ok(()) }
/// ```
pub async fn shutdown_on_signal(handle: Handle) -> Result<&'static str, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let err = |e: std::io::Error| Error::Publisher(format!("cannot listen for signals: {e}"));
    let mut term = signal(SignalKind::terminate()).map_err(err)?;
    let mut int = signal(SignalKind::interrupt()).map_err(err)?;
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, agent = %handle.agent(), "stopping");
    handle.close().await;
    Ok(name)
}

#[cfg(test)]
mod tests {
    /// A handle can be cloned into and shared between threads (PyO3 and worker pools need it).
    #[test]
    fn handles_are_clone_send_and_sync() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<super::Handle>();
    }
}
