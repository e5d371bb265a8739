//! `healthcheck wait`: retry every target until all are healthy, then hand over to the command.
//!
//! While Compose is starting, names that do not resolve yet and refused connections are normal,
//! so every failure is retried with capped exponential backoff and jitter. `ready://` targets
//! also listen to the agents' NATS events (when NATS is configured): a ready event triggers an
//! immediate re-check, so the wait ends milliseconds after the agent says so. Polling remains,
//! for when NATS is absent or an event is lost.

use std::hash::{BuildHasher, RandomState};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use ready_signal::{Name, Observer};
use tokio::sync::Notify;

use crate::report::{Outcome, Report};
use crate::target::{Kind, Target};

/// First pause between attempts; doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(25);
/// Longest pause between attempts of one target.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Longest single attempt, so a silent peer is retried rather than waited on forever.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits until every target is healthy or `timeout` passes.
///
/// `Ok` carries the report of the final, healthy round; `Err` the last outcome of every target,
/// so the caller can say which are still not ready and why.
pub async fn wait_until_healthy(targets: &[Target], timeout: Duration) -> Result<Report, Report> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let wakers: Vec<Rc<Notify>> = targets.iter().map(|_| Rc::new(Notify::new())).collect();
    let listener = listen_for_ready_events(targets, &wakers, deadline).await;
    let waits = targets
        .iter()
        .zip(&wakers)
        .map(|(t, w)| until_healthy(t, w, deadline, timeout));
    let outcomes = match listener {
        Some(listener) => {
            tokio::select! {
                outcomes = join_all(waits) => outcomes,
                () = listener => unreachable_listener_end(),
            }
        }
        None => join_all(waits).await,
    };
    let report = Report {
        outcomes,
        elapsed: started.elapsed(),
    };
    if report.healthy() {
        Ok(report)
    } else {
        Err(report)
    }
}

/// The event listener never finishes on its own (it parks when events end); this keeps the
/// `select!` total without an `unreachable!` panic path.
fn unreachable_listener_end() -> Vec<Outcome> {
    Vec::new()
}

/// Retries one target until it is healthy or the deadline passes; returns its last outcome.
async fn until_healthy(
    target: &Target,
    waker: &Notify,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Outcome {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let attempt_deadline = deadline.min(tokio::time::Instant::now() + ATTEMPT_TIMEOUT);
        let outcome = crate::check_until(target, attempt_deadline, timeout).await;
        if outcome.healthy() {
            return outcome;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Outcome {
                timed_out: true,
                ..outcome
            };
        }
        let pause = jitter(backoff).min(deadline - now);
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = waker.notified() => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if tokio::time::Instant::now() >= deadline {
            return Outcome {
                timed_out: true,
                ..outcome
            };
        }
    }
}

/// A pause between half and all of `backoff`, so many waiters do not retry in lockstep.
fn jitter(backoff: Duration) -> Duration {
    let random = RandomState::new().hash_one(Instant::now());
    let fraction = 0.5 + (random % 1000) as f64 / 2000.0;
    backoff.mul_f64(fraction)
}

/// Subscribes to the NATS events of every agent named by a `ready://` target and returns a future
/// that wakes those targets' retry loops on each event. `None` when there is nothing to listen to
/// (no ready targets, NATS not configured or not reachable): polling alone then does the work.
async fn listen_for_ready_events(
    targets: &[Target],
    wakers: &[Rc<Notify>],
    deadline: tokio::time::Instant,
) -> Option<impl std::future::Future<Output = ()>> {
    let mut interested: Vec<(Vec<Name>, Rc<Notify>)> = Vec::new();
    let mut store = None;
    for (t, w) in targets.iter().zip(wakers) {
        if let Kind::Ready(r) = &t.kind {
            store.get_or_insert(r.store().ok()?);
            interested.push((r.agents.clone(), Rc::clone(w)));
        }
    }
    let store = store?;
    let agents: Vec<Name> = interested
        .iter()
        .flat_map(|(a, _)| a.iter().cloned())
        .collect();
    // Subscribing must not eat the budget: give it a short slice, then fall back to polling.
    let setup = deadline.min(tokio::time::Instant::now() + Duration::from_secs(1));
    let (observer, events) = tokio::time::timeout_at(setup, async {
        let observer = Observer::connect(&store).await.ok()?;
        let events = observer.subscribe(&agents).await.ok()?;
        Some((observer, events))
    })
    .await
    .ok()
    .flatten()?;
    Some(async move {
        let _observer = observer;
        let mut events = events;
        while let Some(event) = events.next().await {
            for (names, waker) in &interested {
                if names.contains(&event.agent) {
                    waker.notify_one();
                }
            }
        }
        // NATS went away: polling carries on; this future just never completes.
        std::future::pending::<()>().await;
    })
}
