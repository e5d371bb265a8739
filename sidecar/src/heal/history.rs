//! What the governor remembers per container: its restarts, its quarantine, when it earned its
//! backoff back. A leaf of `heal` (it imports nothing of the crate) so the pure policy and the
//! executor share it; only the executor changes it, by applying the policy's decisions.
//!
//! It is rebuilt at start from Docker's own record of restarts (`restart` events), so a restarted
//! sidecar keeps each container's backoff and budget (see `heal::act::load_history`).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// Restarts kept per container, at most: far more than any budget needs.
const MAX_KEPT: usize = 64;

/// The governor's memory of every container it has acted on.
#[derive(Debug, Clone, Default)]
pub struct History {
    containers: BTreeMap<String, Memory>,
    /// Restarts under way: container id → its service.
    in_flight: BTreeMap<String, String>,
    /// The last instant a stack-wide hold (shared outage, store unknown) was in force.
    held: Option<Instant>,
}

/// One container's memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    /// When each restart was issued, oldest first.
    pub restarts: VecDeque<Instant>,
    /// Restarts before this instant no longer count for the backoff (earned back).
    pub backoff_reset: Option<Instant>,
    /// Restarts before this instant no longer count for the budget (released from quarantine).
    pub budget_reset: Option<Instant>,
    /// Quarantined since.
    pub quarantined: Option<Instant>,
}

impl Memory {
    /// Restarts that count for the backoff: those after the last earn-back.
    pub fn backoff_level(&self) -> u32 {
        self.restarts
            .iter()
            .filter(|t| self.backoff_reset.is_none_or(|r| **t >= r))
            .count() as u32
    }

    /// Restarts that count for the budget: within `window` before `now`, after the last release.
    pub fn in_window(&self, now: Instant, window: Duration) -> u32 {
        self.restarts
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < window)
            .filter(|t| self.budget_reset.is_none_or(|r| **t >= r))
            .count() as u32
    }

    /// The last restart, if any.
    pub fn last_restart(&self) -> Option<Instant> {
        self.restarts.back().copied()
    }
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// What is remembered of container `id` (empty when nothing).
    pub fn get(&self, id: &str) -> Option<&Memory> {
        self.containers.get(id)
    }

    /// Remembers a restart of `id` issued at `at` (kept in time order).
    pub fn record_restart(&mut self, id: &str, at: Instant) {
        let m = self.containers.entry(id.to_owned()).or_default();
        let pos = m.restarts.partition_point(|t| *t <= at);
        m.restarts.insert(pos, at);
        while m.restarts.len() > MAX_KEPT {
            m.restarts.pop_front();
        }
    }

    /// A restart of `id` (service `service`) is under way.
    pub fn begin(&mut self, id: &str, service: &str) {
        self.in_flight.insert(id.to_owned(), service.to_owned());
    }

    /// The restart of `id` is over (whatever its outcome).
    pub fn end(&mut self, id: &str) {
        self.in_flight.remove(id);
    }

    /// Whether a restart of `id` is under way.
    pub fn is_in_flight(&self, id: &str) -> bool {
        self.in_flight.contains_key(id)
    }

    /// Whether a restart of some container of `service` is under way.
    pub fn service_busy(&self, service: &str) -> bool {
        self.in_flight.values().any(|s| s == service)
    }

    /// How many restarts are under way.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// A stack-wide hold (shared outage, unknown store) is in force at `at`: a bad spell that
    /// outlasts it is timed from its end, so stragglers are not restarted the moment it lifts.
    pub fn hold(&mut self, at: Instant) {
        self.held = Some(self.held.map_or(at, |h| h.max(at)));
    }

    /// The last instant a stack-wide hold was in force.
    pub fn held(&self) -> Option<Instant> {
        self.held
    }

    /// `id` is quarantined from `at`.
    pub fn quarantine(&mut self, id: &str, at: Instant) {
        self.containers
            .entry(id.to_owned())
            .or_default()
            .quarantined = Some(at);
    }

    /// `id` leaves quarantine at `at`, with a fresh budget and backoff.
    pub fn release(&mut self, id: &str, at: Instant) {
        let m = self.containers.entry(id.to_owned()).or_default();
        m.quarantined = None;
        m.budget_reset = Some(at);
        m.backoff_reset = Some(at);
    }

    /// `id` earned its backoff back at `at`.
    pub fn earn_back(&mut self, id: &str, at: Instant) {
        self.containers
            .entry(id.to_owned())
            .or_default()
            .backoff_reset = Some(at);
    }

    /// Forgets containers not in `alive` (removed ones) and restarts older than `keep`.
    pub fn prune<'a>(
        &mut self,
        alive: impl IntoIterator<Item = &'a str>,
        now: Instant,
        keep: Duration,
    ) {
        let alive: std::collections::BTreeSet<&str> = alive.into_iter().collect();
        self.containers.retain(|id, _| alive.contains(id.as_str()));
        for m in self.containers.values_mut() {
            while m
                .restarts
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) > keep)
            {
                m.restarts.pop_front();
            }
        }
    }

    /// Every container remembered, with its memory.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Memory)> {
        self.containers.iter().map(|(k, v)| (k.as_str(), v))
    }
}
