//! Progress marks and the clocks the publisher reads, injected so that stall transitions are
//! tested with tokio's paused time in milliseconds rather than seconds of real time.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The wall clock that stamps records of the file backend and events' `ts_ms` (Redis records are
/// stamped by Redis's own clock).
#[derive(Debug, Clone)]
pub(crate) enum WallClock {
    /// The system clock.
    System,
    /// `unix_at` when tokio's clock read `at`, advancing with tokio's (paused) clock: tests.
    #[cfg_attr(not(test), allow(dead_code))]
    Tokio { unix_at: u64, at: Instant },
}

impl WallClock {
    /// Unix milliseconds now.
    pub(crate) fn unix_ms(&self) -> u64 {
        match self {
            WallClock::System => super::unix_ms(),
            WallClock::Tokio { unix_at, at } => unix_at + at.elapsed().as_millis() as u64,
        }
    }
}

/// Progress marks written by the agent's threads and read by the publisher: two atomics, so
/// `tick()` costs a clock read and a store. Times are milliseconds since `base` on tokio's clock,
/// which is the monotonic system clock outside tests and the paused clock inside them.
///
/// `pings` carries the publisher's questions to futures in a [`Progress::waiting`] scope: the
/// publisher asks ("are you still polled?") and the agent's executor answers by polling the
/// waiting future, which ticks. An executor that no longer polls answers nothing.
#[derive(Debug)]
pub(crate) struct Progress {
    base: Instant,
    last_ms: AtomicU64,
    busy_until_ms: AtomicU64,
    pings: Notify,
}

impl Progress {
    /// Marks start as progress: a new work loop gets `stall_after` before its first tick.
    pub(crate) fn new() -> Progress {
        Progress {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            busy_until_ms: AtomicU64::new(0),
            pings: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// Progress now.
    pub(crate) fn tick(&self) {
        self.last_ms.fetch_max(self.now_ms(), Ordering::Relaxed);
    }

    /// Progress that happened `ago` (a progress file's modification time): stalls are measured
    /// from when the work moved, not from when the publisher learnt of it. Never moves the mark
    /// back.
    pub(crate) fn progressed_ago(&self, ago: Duration) {
        let at = self.now_ms().saturating_sub(ago.as_millis() as u64);
        self.last_ms.fetch_max(at, Ordering::Relaxed);
    }

    /// The current work item may take up to `budget` without ticks.
    pub(crate) fn busy(&self, budget: Duration) {
        let until = self.now_ms().saturating_add(budget.as_millis() as u64);
        self.busy_until_ms.store(until, Ordering::Relaxed);
        self.tick();
    }

    /// Whether the last progress is within `stall_after` (or a busy budget runs).
    pub(crate) fn progressing(&self, stall_after: Duration) -> bool {
        let now = self.now_ms();
        let last = self.last_ms.load(Ordering::Relaxed);
        now.saturating_sub(last) <= stall_after.as_millis() as u64
            || now <= self.busy_until_ms.load(Ordering::Relaxed)
    }

    /// Asks every future in a `waiting` scope to prove that its executor still polls it. Sent by
    /// the publisher more often than `stall_after`; costs nothing when nobody waits.
    pub(crate) fn ping(&self) {
        self.pings.notify_waiters();
    }

    /// Awaits `work` and ticks whenever the publisher pings and the executor polls this future:
    /// an idle agent stays fresh while its executor is responsive, and goes stale `stall_after`
    /// after its executor stops polling (a blocked thread, a frozen runtime), exactly as if it
    /// had stopped ticking. Runtime-agnostic: the pings are a `Notify`, no timer of the caller's.
    pub(crate) async fn waiting<F: Future>(&self, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        loop {
            self.tick();
            tokio::select! {
                biased;
                out = &mut work => {
                    self.tick();
                    return out;
                }
                () = self.pings.notified() => {}
            }
        }
    }
}
