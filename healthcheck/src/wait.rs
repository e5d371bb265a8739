//! `healthcheck wait`: retry every target until all are healthy, then hand over to the command.
//!
//! While Compose is starting, names that do not resolve yet and refused connections are normal,
//! so every failure is retried with capped exponential backoff and jitter. `ready://` targets
//! also listen to the agents' NATS events (when NATS is configured): a ready event triggers an
//! immediate re-check, so the wait ends milliseconds after the agent says so. Polling remains,
//! for when NATS is absent or an event is lost.
//!
//! Configuration and authentication failures will not fix themselves: the first one ends the
//! wait at once. An attempt that hangs (a node stopped or black-holed, a JetStream request during
//! a leader election) is cut at [`FIRST_ATTEMPT_CAP`], doubled at every attempt so a check that
//! is slow but progressing still gets the time it needs, and never past the one deadline: a
//! failover that happens meanwhile is then seen by the next attempt instead of never.

use std::hash::{BuildHasher, RandomState};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use ready_signal::{Name, StoreConfig};
use tokio::sync::Notify;

use crate::report::{Outcome, Report};
use crate::target::Target;

/// First pause between attempts; doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(25);
/// Longest pause between attempts of one target.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Longest first attempt of a target; each later attempt may take twice as long as the one before.
const FIRST_ATTEMPT_CAP: Duration = Duration::from_secs(2);
/// Longest wait for NATS to take a subscription before trying again (only the event listener,
/// which is an optimisation; the checks themselves run to the one deadline).
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits until every target is healthy or `timeout` passes.
///
/// `Ok` carries the report of the final, healthy round; `Err` the last outcome of every target,
/// so the caller can say which are still not ready and why ([`gave_up`] says whether a
/// permanent failure ended it early).
pub async fn wait_until_healthy(targets: &[Target], timeout: Duration) -> Result<Report, Report> {
    wait_until(targets, Instant::now() + timeout, timeout).await
}

/// Like [`wait_until_healthy`], with a deadline fixed earlier (when the process started).
pub async fn wait_until(
    targets: &[Target],
    deadline: Instant,
    timeout: Duration,
) -> Result<Report, Report> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(deadline);
    let wakers: Vec<Rc<Notify>> = targets.iter().map(|_| Rc::new(Notify::new())).collect();
    // Set by the first target whose failure is permanent; every other retry loop then stops.
    let stop = Stop::default();
    let waits = targets
        .iter()
        .zip(&wakers)
        .map(|(t, w)| until_healthy(t, w, &stop, deadline, timeout));
    let listeners = event_listeners(targets, &wakers);
    // The listeners run beside the retries and never finish; the retries decide the outcome.
    let outcomes = if listeners.is_empty() {
        join_all(waits).await
    } else {
        tokio::select! {
            outcomes = join_all(waits) => outcomes,
            _ = join_all(listeners) => Vec::new(),
        }
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

/// True when the wait ended early on a failure that retrying cannot fix (config, auth).
pub fn gave_up(report: &Report) -> bool {
    report
        .failures()
        .any(|o| o.failure().is_some_and(crate::Failure::is_permanent))
}

/// Retries one target until it is healthy, the deadline passes, or a target fails for good;
/// returns its last outcome.
async fn until_healthy(
    target: &Target,
    waker: &Notify,
    stop: &Stop,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Outcome {
    let mut backoff = FIRST_BACKOFF;
    let mut cap = FIRST_ATTEMPT_CAP;
    let mut last: Option<Outcome> = None;
    loop {
        // The attempt's own deadline; the last attempt ends with the wait's, and says so.
        let capped = tokio::time::Instant::now() + cap;
        let attempt = if capped < deadline {
            crate::check_until(target, capped, cap)
        } else {
            crate::check_until(target, deadline, timeout)
        };
        cap = cap.saturating_mul(2);
        let outcome = tokio::select! {
            o = attempt => o,
            () = stop.wait() => return last.unwrap_or_else(|| not_checked(target)),
        };
        if outcome.healthy() {
            return outcome;
        }
        if outcome.failure().is_some_and(crate::Failure::is_permanent) {
            stop.stop();
            return outcome;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return outcome;
        }
        let pause = jitter(backoff).min(deadline - now);
        last = Some(outcome);
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = waker.notified() => {}
            () = stop.wait() => return last.unwrap_or_else(|| not_checked(target)),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if tokio::time::Instant::now() >= deadline {
            return last.unwrap_or_else(|| not_checked(target));
        }
    }
}

/// Ends every retry loop once one target has failed for good.
#[derive(Debug, Default)]
struct Stop {
    stopped: std::cell::Cell<bool>,
    notify: Notify,
}

impl Stop {
    fn stop(&self) {
        self.stopped.set(true);
        self.notify.notify_waiters();
    }

    async fn wait(&self) {
        if !self.stopped.get() {
            self.notify.notified().await;
        }
    }
}

/// The outcome of a target whose first attempt was cut short because another failed for good.
fn not_checked(target: &Target) -> Outcome {
    Outcome {
        target: target.to_string(),
        check: target.check(),
        elapsed: Duration::ZERO,
        result: Err(crate::Failure::new(
            crate::FailureKind::Unhealthy,
            "not checked to the end: another target failed for good",
        )),
    }
}

/// A pause between half and all of `backoff`, so many waiters do not retry in lockstep.
fn jitter(backoff: Duration) -> Duration {
    let random = RandomState::new().hash_one(Instant::now());
    let fraction = 0.5 + (random % 1000) as f64 / 2000.0;
    backoff.mul_f64(fraction)
}

/// Agents of `ready://` targets sharing one store (one namespace), and whom to wake.
struct Interest {
    store: StoreConfig,
    agents: Vec<Name>,
    wakers: Vec<(Vec<Name>, Rc<Notify>)>,
}

/// One listener per store that `ready://` targets read (when NATS is configured): each wakes the
/// retry loops of the targets whose agents publish an event. Polling does the work meanwhile.
fn event_listeners(targets: &[Target], wakers: &[Rc<Notify>]) -> Vec<impl Future<Output = ()>> {
    let mut interests: Vec<Interest> = Vec::new();
    for (t, w) in targets.iter().zip(wakers) {
        let Some((store, agents)) = t.ready_events() else {
            continue;
        };
        let i = match interests
            .iter()
            .position(|i| i.store.namespace_name() == store.namespace_name())
        {
            Some(i) => i,
            None => {
                interests.push(Interest {
                    store,
                    agents: Vec::new(),
                    wakers: Vec::new(),
                });
                interests.len() - 1
            }
        };
        let interest = &mut interests[i];
        for agent in &agents {
            if !interest.agents.contains(agent) {
                interest.agents.push(agent.clone());
            }
        }
        interest.wakers.push((agents, Rc::clone(w)));
    }
    interests.into_iter().map(listen).collect()
}

/// Subscribes (trying again with backoff while NATS is not there yet, as is normal while Compose
/// starts) and turns events into wake-ups, for ever. Right after each subscription, and after
/// each reconnection of the client (to any seed of a cluster), every target is woken once, so a
/// ready event published while no subscription existed is not waited for.
async fn listen(interest: Interest) {
    let first = FIRST_BACKOFF * 4;
    let mut backoff = first;
    loop {
        let subscribed = tokio::time::timeout(
            SUBSCRIBE_TIMEOUT,
            ready_signal::subscribe(&interest.store, &interest.agents),
        )
        .await;
        if let Ok(Ok(mut events)) = subscribed {
            backoff = first;
            for (_, waker) in &interest.wakers {
                waker.notify_one();
            }
            while let Some(delivery) = events.next_delivery().await {
                let agent = match delivery {
                    ready_signal::Delivery::Event(event) => Some(event.agent),
                    _ => None,
                };
                for (names, waker) in &interest.wakers {
                    if agent.as_ref().is_none_or(|a| names.contains(a)) {
                        waker.notify_one();
                    }
                }
            }
        }
        tokio::time::sleep(jitter(backoff)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF * 2);
    }
}
