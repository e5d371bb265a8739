//! The watcher watched: the sidecar publishes its own ready-signal record (agent
//! [`SELF_AGENT`]), and its heartbeat follows the progress of the sidecar's parts, not a timer.
//!
//! Auto-heal containers that silently stop healing after days are the field's complaint: a loop
//! stuck on a call looks quiet, not broken. Here the record is refreshed (`Handle::tick`) only
//! while every part shows progress in the snapshots: the writer keeps publishing, each source
//! keeps reading (its counters move, a failed read counts: it is the reading that must go on,
//! not the store that must be up), and the governor takes every snapshot it is given. A part
//! that stops turns the record stale, then dead, in the store and in the record file beside it,
//! which the sidecar's own HEALTHCHECK reads (`ready://healthcheck-sidecar?replica=self&
//! store=file&state=any`), so Docker sees a stuck sidecar as unhealthy.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::time::Instant;

use crate::state::{Source, State};

/// The agent name the sidecar publishes under (its replica: the host name, the container id
/// under Docker, as for any agent).
pub const SELF_AGENT: &str = "healthcheck-sidecar";

/// Where a part records the last snapshot it finished with (the governor, after each round).
/// Cheap to clone; written with one atomic store.
#[derive(Debug, Clone)]
pub struct Mark {
    base: Instant,
    /// Milliseconds after `base` of the last snapshot's `built_at`, plus one (0: none yet).
    seen: Arc<AtomicU64>,
}

impl Default for Mark {
    fn default() -> Mark {
        Mark::new()
    }
}

impl Mark {
    /// A mark that has seen nothing.
    pub fn new() -> Mark {
        Mark {
            base: Instant::now(),
            seen: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The part finished with the snapshot built at `built_at`.
    pub fn saw(&self, built_at: Instant) {
        let ms = built_at.saturating_duration_since(self.base).as_millis() as u64;
        self.seen.fetch_max(ms + 1, Ordering::Relaxed);
    }

    /// The `built_at` of the last snapshot it finished with (to the millisecond).
    pub fn seen(&self) -> Option<Instant> {
        match self.seen.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.base + Duration::from_millis(ms - 1)),
        }
    }
}

/// How long each part may show no progress before the sidecar counts as stuck; `None`: the part
/// is not running (a source not configured, no governor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The writer publishes a snapshot at least at every store read (or Docker listing).
    pub writer: Option<Duration>,
    /// The store's bulk reads and events.
    pub store: Option<Duration>,
    /// Docker's listings, inspections and events.
    pub docker: Option<Duration>,
    /// The governor, from a snapshot newer than its last to its taking one.
    pub governor: Option<Duration>,
}

impl Limits {
    /// Limits for a sidecar reading the store every `read_interval` (when `store`), listing
    /// Docker every `resync` (when `docker`), with calls timing out after `timeout`: a few of
    /// each period, so a slow call or a backoff is not mistaken for a stuck loop.
    pub fn for_periods(
        store: bool,
        docker: bool,
        governor: bool,
        read_interval: Duration,
        resync: Duration,
        timeout: Duration,
    ) -> Limits {
        let floor = Duration::from_secs(30);
        // A failing store read backs off up to 5 s (watch/store.rs): at worst one read per
        // backoff plus its timeout.
        let store_limit = (read_interval.max(Duration::from_secs(5)) + timeout) * 3;
        let docker_limit = (resync + timeout) * 2;
        Limits {
            writer: match (store, docker) {
                (true, _) => Some(store_limit.max(floor)),
                (false, true) => Some(docker_limit.max(floor)),
                (false, false) => None,
            },
            store: store.then(|| store_limit.max(floor)),
            docker: docker.then(|| docker_limit.max(floor)),
            governor: governor.then_some(floor),
        }
    }
}

/// The judge of progress: remembers when each part's counters last moved.
#[derive(Debug)]
pub struct Watcher {
    limits: Limits,
    store: (u64, Instant),
    docker: (u64, Instant),
    governor: (Option<Instant>, Instant),
}

impl Watcher {
    /// A watcher starting at `now` (every part gets its full limit from there).
    pub fn new(limits: Limits, now: Instant) -> Watcher {
        Watcher {
            limits,
            store: (0, now),
            docker: (0, now),
            governor: (None, now),
        }
    }

    /// Whether every part progressed within its limit at `now`, given the latest snapshot and
    /// the governor's mark; the error names the first part that did not, and for how long.
    pub fn judge(
        &mut self,
        latest: &State,
        governor: Option<&Mark>,
        now: Instant,
    ) -> Result<(), String> {
        let c = &latest.counters;
        let moved = |last: &mut (u64, Instant), count: u64| {
            if count != last.0 {
                *last = (count, now);
            }
            now.saturating_duration_since(last.1)
        };
        let store_quiet = moved(&mut self.store, c.store_reads + c.store_events);
        let docker_quiet = moved(&mut self.docker, c.docker_calls + c.docker_events);
        let seen = governor.and_then(Mark::seen);
        if seen != self.governor.0 {
            self.governor = (seen, now);
        }
        let writer_quiet = now.saturating_duration_since(latest.built_at);
        let over = |limit: Option<Duration>, quiet: Duration| limit.is_some_and(|l| quiet > l);
        if over(self.limits.writer, writer_quiet) {
            return Err(format!(
                "the writer has published no snapshot for {}s",
                writer_quiet.as_secs()
            ));
        }
        if latest.store != Source::Off && over(self.limits.store, store_quiet) {
            return Err(format!(
                "the store has not been read for {}s",
                store_quiet.as_secs()
            ));
        }
        if latest.docker != Source::Off && over(self.limits.docker, docker_quiet) {
            return Err(format!(
                "docker has not been read for {}s",
                docker_quiet.as_secs()
            ));
        }
        // The governor is stuck when a snapshot newer than its last one waits, and it has taken
        // none for longer than its limit (at rest, with no new snapshot, it is merely idle).
        if governor.is_some() {
            let behind = seen.is_none_or(|s| s + Duration::from_millis(1) < latest.built_at);
            let quiet = now.saturating_duration_since(self.governor.1);
            if behind && over(self.limits.governor, quiet) {
                return Err(format!(
                    "the heal governor has taken no snapshot for {}s",
                    quiet.as_secs()
                ));
            }
        }
        Ok(())
    }
}

/// What `/metrics` and the page read: the last verdict and when progress was last seen whole.
#[derive(Debug, Default)]
pub struct Status {
    /// Unix milliseconds of the last check that found every part progressing (0: none yet).
    pub progress_ms: AtomicU64,
    /// 1 while a part is stuck.
    pub stalled: AtomicU64,
}

/// Runs the watcher: every `interval`, judges the latest snapshot and ticks `handle` only when
/// every part progressed. Says once when a part stops and once when it resumes. Closes the record
/// (`stopping`, then removed) on shutdown.
pub async fn run(
    handle: ready_signal::Handle,
    snapshots: watch::Receiver<Arc<State>>,
    governor: Option<Mark>,
    limits: Limits,
    interval: Duration,
    status: Arc<Status>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut watcher = Watcher::new(limits, Instant::now());
    let mut stuck: Option<String> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    handle.ready();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = ticker.tick() => {}
        }
        let latest = snapshots.borrow().clone();
        match watcher.judge(&latest, governor.as_ref(), Instant::now()) {
            Ok(()) => {
                if let Some(was) = stuck.take() {
                    tracing::info!(was = %was, "sidecar progressing again: its ready signal is refreshed");
                }
                status.stalled.store(0, Ordering::Relaxed);
                let ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                status.progress_ms.store(ms, Ordering::Relaxed);
                handle.tick();
            }
            Err(why) => {
                if stuck.is_none() {
                    tracing::error!(why = %why, agent = SELF_AGENT, "sidecar stuck: its ready signal is no longer refreshed and will turn stale");
                }
                status.stalled.store(1, Ordering::Relaxed);
                stuck = Some(why);
            }
        }
    }
    handle.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::for_periods(
            true,
            true,
            true,
            Duration::from_secs(1),
            Duration::from_secs(30),
            Duration::from_secs(2),
        )
    }

    /// A healthy sidecar (snapshots every second, counters moving, the governor taking each)
    /// passes for an hour; at rest (no new snapshot, governor idle) the governor is not blamed.
    #[tokio::test(start_paused = true)]
    async fn progress_passes_and_idle_is_not_stuck() {
        let t0 = Instant::now();
        let mut w = Watcher::new(limits(), t0);
        let gov = Mark::new();
        let mut s = State::new(t0, Source::Ok, Source::Ok);
        for i in 0..3600u64 {
            tokio::time::advance(Duration::from_secs(1)).await;
            s.built_at = Instant::now();
            s.counters.store_reads = i;
            if i % 30 == 0 {
                s.counters.docker_calls += 1;
            }
            gov.saw(s.built_at);
            assert_eq!(w.judge(&s, Some(&gov), Instant::now()), Ok(()), "at {i}s");
        }
    }

    /// A governor that stops taking snapshots while they keep coming is named once past its
    /// limit; so is a store whose reads stopped, and a writer that stopped publishing.
    #[tokio::test(start_paused = true)]
    async fn each_stuck_part_is_named() {
        let t0 = Instant::now();
        let mut w = Watcher::new(limits(), t0);
        let gov = Mark::new();
        let mut s = State::new(t0, Source::Ok, Source::Ok);
        gov.saw(t0);
        let mut first_err = None;
        for i in 1..=40u64 {
            tokio::time::advance(Duration::from_secs(1)).await;
            s.built_at = Instant::now();
            s.counters.store_reads = i;
            s.counters.docker_calls = i;
            if let Err(e) = w.judge(&s, Some(&gov), Instant::now()) {
                first_err.get_or_insert((i, e));
            }
        }
        let (at, why) = first_err.expect("a stuck governor is seen");
        // The watcher first sees the mark at 1 s: stuck once 30 s have passed since.
        assert_eq!(at, 32, "{why}");
        assert!(
            why.starts_with("the heal governor has taken no snapshot"),
            "{why}"
        );

        // Store reads stop (the writer still publishes: Docker events keep coming).
        let mut w = Watcher::new(limits(), Instant::now());
        let reads = s.counters.store_reads;
        let mut why = Ok(());
        for _ in 0..46 {
            tokio::time::advance(Duration::from_secs(1)).await;
            s.built_at = Instant::now();
            s.counters.docker_events += 1;
            gov.saw(s.built_at);
            why = w.judge(&s, Some(&gov), Instant::now());
        }
        assert_eq!(s.counters.store_reads, reads);
        assert!(why.unwrap_err().starts_with("the store has not been read"));

        // The writer stops: no new snapshot at all.
        let mut w = Watcher::new(limits(), Instant::now());
        tokio::time::advance(Duration::from_secs(50)).await;
        let why = w.judge(&s, Some(&gov), Instant::now()).unwrap_err();
        assert!(
            why.starts_with("the writer has published no snapshot for 50s"),
            "{why}"
        );
    }
}
