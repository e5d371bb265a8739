//! What the governor remembers per container: its restarts, its quarantine, when it earned its
//! backoff back. A leaf of `heal` (it imports nothing of the crate) so the pure policy and the
//! executor share it; only the executor changes it, by applying the policy's decisions.
//!
//! It survives the sidecar's own restart two ways (see `heal::act`): saved to a small JSON file
//! (`--heal-state`, on a volume) at every change, and merged at start with Docker's own record of
//! restarts (`restart` events), which the engine keeps only for its last few hundred events.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Two restarts of one container closer than this are one (the same restart seen twice: in the
/// saved file and in Docker's events).
const SAME_RESTART: Duration = Duration::from_secs(2);

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

    /// Remembers a restart of `id` seen at `at` in Docker's events, unless it is one already
    /// remembered (within two seconds).
    pub fn merge_restart(&mut self, id: &str, at: Instant) {
        let known = self.containers.get(id).is_some_and(|m| {
            m.restarts
                .iter()
                .any(|t| t.max(&at).saturating_duration_since(*t.min(&at)) < SAME_RESTART)
        });
        if !known {
            self.record_restart(id, at);
        }
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

/// The history as saved to a file: wall-clock Unix milliseconds, since `Instant`s do not survive
/// the process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// Format version (1).
    pub v: u32,
    /// Per container id.
    pub containers: BTreeMap<String, SavedMemory>,
}

/// One container's memory, in Unix milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedMemory {
    /// Restarts, oldest first.
    pub restarts_ms: Vec<u64>,
    /// See [`Memory::backoff_reset`].
    pub backoff_reset_ms: Option<u64>,
    /// See [`Memory::budget_reset`].
    pub budget_reset_ms: Option<u64>,
    /// See [`Memory::quarantined`].
    pub quarantined_ms: Option<u64>,
}

fn to_ms(t: Instant, now: Instant, wall: SystemTime) -> u64 {
    let ago = now.saturating_duration_since(t);
    wall.checked_sub(ago)
        .and_then(|w| w.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

fn from_ms(ms: u64, now: Instant, wall: SystemTime) -> Instant {
    let at = UNIX_EPOCH + Duration::from_millis(ms);
    let ago = wall.duration_since(at).unwrap_or_default();
    now.checked_sub(ago).unwrap_or(now)
}

impl History {
    /// The history as saved, `now` being `wall` on the wall clock.
    pub fn save(&self, now: Instant, wall: SystemTime) -> Saved {
        let ms = |t: Instant| to_ms(t, now, wall);
        Saved {
            v: 1,
            containers: self
                .containers
                .iter()
                .map(|(id, m)| {
                    let saved = SavedMemory {
                        restarts_ms: m.restarts.iter().map(|t| ms(*t)).collect(),
                        backoff_reset_ms: m.backoff_reset.map(ms),
                        budget_reset_ms: m.budget_reset.map(ms),
                        quarantined_ms: m.quarantined.map(ms),
                    };
                    (id.clone(), saved)
                })
                .collect(),
        }
    }

    /// A history from what was saved, `now` being `wall` on the wall clock (nothing is in flight).
    pub fn restore(saved: &Saved, now: Instant, wall: SystemTime) -> History {
        let at = |ms: u64| from_ms(ms, now, wall);
        let mut h = History::new();
        for (id, s) in &saved.containers {
            let m = Memory {
                restarts: s.restarts_ms.iter().map(|ms| at(*ms)).collect(),
                backoff_reset: s.backoff_reset_ms.map(at),
                budget_reset: s.budget_reset_ms.map(at),
                quarantined: s.quarantined_ms.map(at),
            };
            h.containers.insert(id.clone(), m);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Saved and restored by a later process (another clock origin), a history keeps its restarts,
    /// resets and quarantine to the millisecond.
    #[test]
    fn save_restore_round_trip() {
        let now = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut h = History::new();
        h.record_restart("a", now - Duration::from_secs(100));
        h.record_restart("a", now - Duration::from_secs(40));
        h.earn_back("a", now - Duration::from_secs(50));
        h.quarantine("a", now - Duration::from_secs(10));
        let saved = h.save(now, wall);
        assert_eq!(
            saved.containers["a"].restarts_ms,
            [1_799_999_900_000, 1_799_999_960_000]
        );
        let json = serde_json::to_string(&saved).unwrap();
        // Ten seconds later, in a new process.
        let later = Instant::now() + Duration::from_secs(3600);
        let back = History::restore(
            &serde_json::from_str(&json).unwrap(),
            later,
            wall + Duration::from_secs(10),
        );
        let m = back.get("a").unwrap();
        assert_eq!(
            m.restarts.iter().map(|t| later - *t).collect::<Vec<_>>(),
            [Duration::from_secs(110), Duration::from_secs(50)]
        );
        assert_eq!(m.backoff_level(), 1);
        assert_eq!(later - m.quarantined.unwrap(), Duration::from_secs(20));
    }

    /// A restart seen in Docker's events and already in the saved file is counted once.
    #[test]
    fn merge_counts_a_restart_once() {
        let now = Instant::now();
        let mut h = History::new();
        h.record_restart("a", now);
        h.merge_restart("a", now + Duration::from_millis(800));
        h.merge_restart("a", now + Duration::from_secs(30));
        assert_eq!(h.get("a").unwrap().restarts.len(), 2);
    }
}
