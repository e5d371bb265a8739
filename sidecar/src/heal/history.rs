//! What the governor remembers per container: its restarts, its quarantine, when it earned its
//! backoff back. A leaf of `heal` (it imports nothing of the crate) so the pure policy and the
//! executor share it; only the executor changes it, by applying the policy's decisions.
//!
//! A restart has one identity, whichever source reports it: the container and the start it
//! produced (Docker's `State.StartedAt`, or the `start` event the engine logs right after setting
//! it). The governor learns it when its own restart returns; after the sidecar's own restart it
//! pairs what it saved with Docker's `die`, `start` and `restart` events by their order (a
//! restart is the first start after its stop), never by a time window: a restart whose stop took
//! the whole stop timeout is still one restart (see [`Saved::merge_events`]).
//!
//! It survives the sidecar's own restart in a small JSON file of wall-clock times (see
//! `heal::statefile`), merged at start with Docker's events, which the engine keeps only for its
//! last few hundred events.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Restarts kept per container, at most: far more than any budget needs.
const MAX_KEPT: usize = 64;

/// The governor's memory of every container it has acted on.
#[derive(Debug, Clone, Default)]
pub struct History {
    containers: BTreeMap<String, Memory>,
    /// Restarts under way: container id → its service. Which service is busy is asked of the
    /// policy's input, where a service is known by its project and its name.
    in_flight: BTreeMap<String, String>,
    /// The last instant a stack-wide hold (shared outage, store unknown) was in force.
    held: Option<Instant>,
}

/// One restart of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    /// When it was issued (the governor's own) or when Docker started the container again
    /// (another's): backoff and budget count from here.
    pub at: Instant,
    /// The start it produced, in Unix nanoseconds (Docker's `State.StartedAt`, or its `start`
    /// event), once known: what makes two reports of it one restart.
    pub started_ns: Option<u64>,
}

/// One container's memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    /// Its restarts, oldest first.
    pub restarts: VecDeque<Restart>,
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
            .filter(|r| self.backoff_reset.is_none_or(|t| r.at >= t))
            .count() as u32
    }

    /// Restarts that count for the budget: within `window` before `now`, after the last release.
    pub fn in_window(&self, now: Instant, window: Duration) -> u32 {
        self.restarts
            .iter()
            .filter(|r| now.saturating_duration_since(r.at) < window)
            .filter(|r| self.budget_reset.is_none_or(|t| r.at >= t))
            .count() as u32
    }

    /// The last restart, if any.
    pub fn last_restart(&self) -> Option<Instant> {
        self.restarts.back().map(|r| r.at)
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

    /// Remembers a restart of `id` issued at `at`, its start not known yet (kept in time order).
    pub fn record_restart(&mut self, id: &str, at: Instant) {
        let m = self.containers.entry(id.to_owned()).or_default();
        let pos = m.restarts.partition_point(|r| r.at <= at);
        m.restarts.insert(
            pos,
            Restart {
                at,
                started_ns: None,
            },
        );
        while m.restarts.len() > MAX_KEPT {
            m.restarts.pop_front();
        }
    }

    /// The restart of `id` issued last produced the start `started_ns` (Docker's `StartedAt`
    /// after it returned). False when no restart of `id` waits for its start.
    pub fn started(&mut self, id: &str, started_ns: u64) -> bool {
        let Some(r) = self
            .containers
            .get_mut(id)
            .and_then(|m| m.restarts.iter_mut().rev().find(|r| r.started_ns.is_none()))
        else {
            return false;
        };
        r.started_ns = Some(started_ns);
        true
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
        let alive: BTreeSet<&str> = alive.into_iter().collect();
        self.containers.retain(|id, _| alive.contains(id.as_str()));
        for m in self.containers.values_mut() {
            while m
                .restarts
                .front()
                .is_some_and(|r| now.saturating_duration_since(r.at) > keep)
            {
                m.restarts.pop_front();
            }
        }
    }

    /// Every container remembered, with its memory.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Memory)> {
        self.containers.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Restarts remembered, all containers together.
    pub fn restart_count(&self) -> usize {
        self.containers.values().map(|m| m.restarts.len()).sum()
    }
}

/// The history as saved to a file: wall-clock Unix times, since `Instant`s do not survive the
/// process (nor a host reboot).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// Format version: 2 (1 had bare restart times, still read).
    pub v: u32,
    /// Per container id.
    pub containers: BTreeMap<String, SavedMemory>,
}

/// One container's memory, in Unix milliseconds (starts in nanoseconds, as Docker gives them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedMemory {
    /// Version 1's restarts (issue times only), oldest first; read, never written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restarts_ms: Vec<u64>,
    /// Restarts, oldest first.
    #[serde(default)]
    pub restarts: Vec<SavedRestart>,
    /// See [`Memory::backoff_reset`].
    pub backoff_reset_ms: Option<u64>,
    /// See [`Memory::budget_reset`].
    pub budget_reset_ms: Option<u64>,
    /// See [`Memory::quarantined`].
    pub quarantined_ms: Option<u64>,
}

/// One restart as saved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedRestart {
    /// See [`Restart::at`].
    pub at_ms: u64,
    /// See [`Restart::started_ns`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ns: Option<u64>,
}

/// What one of Docker's container events says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EngineAction {
    /// The container's process ended (`die`).
    Die,
    /// The container started (`start`), right after Docker set its `StartedAt`.
    Start,
    /// A restart through the API finished (`restart`, logged after its `start`).
    Restart,
}

/// One of Docker's container events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineEvent {
    /// The container id.
    pub id: String,
    /// What happened.
    pub action: EngineAction,
    /// When, Unix nanoseconds (the event's `timeNano`).
    pub at_ns: u64,
}

/// What [`History::restore`] could not keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Times later than now on the wall clock (the clock was set back): they cannot have
    /// happened yet, and moving them to now would invent a restart.
    pub future: usize,
    /// Times this process's monotonic clock cannot express (before its origin, as after a host
    /// reboot on some platforms).
    pub unrepresentable: usize,
}

impl Dropped {
    /// Nothing was dropped.
    pub fn is_empty(&self) -> bool {
        self.future == 0 && self.unrepresentable == 0
    }
}

fn to_ms(t: Instant, now: Instant, wall: SystemTime) -> u64 {
    let ago = now.saturating_duration_since(t);
    wall.checked_sub(ago)
        .and_then(|w| w.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

/// The instant of Unix millisecond `ms`, `now` being `wall`: never moved. `Err` says why it has
/// none (later than now, or before the monotonic clock's origin).
fn from_ms(ms: u64, now: Instant, wall: SystemTime) -> Result<Instant, DropReason> {
    let at = UNIX_EPOCH + Duration::from_millis(ms);
    let ago = wall.duration_since(at).map_err(|_| DropReason::Future)?;
    now.checked_sub(ago).ok_or(DropReason::Unrepresentable)
}

enum DropReason {
    Future,
    Unrepresentable,
}

impl History {
    /// The history as saved, `now` being `wall` on the wall clock.
    pub fn save(&self, now: Instant, wall: SystemTime) -> Saved {
        let ms = |t: Instant| to_ms(t, now, wall);
        Saved {
            v: 2,
            containers: self
                .containers
                .iter()
                .map(|(id, m)| {
                    let saved = SavedMemory {
                        restarts_ms: Vec::new(),
                        restarts: m
                            .restarts
                            .iter()
                            .map(|r| SavedRestart {
                                at_ms: ms(r.at),
                                started_ns: r.started_ns,
                            })
                            .collect(),
                        backoff_reset_ms: m.backoff_reset.map(ms),
                        budget_reset_ms: m.budget_reset.map(ms),
                        quarantined_ms: m.quarantined.map(ms),
                    };
                    (id.clone(), saved)
                })
                .collect(),
        }
    }

    /// A history from what was saved, `now` being `wall` on the wall clock (nothing is in
    /// flight). Every time keeps its wall-clock time; one that cannot (see [`Dropped`]) is
    /// dropped and counted, never moved to now.
    pub fn restore(saved: &Saved, now: Instant, wall: SystemTime) -> (History, Dropped) {
        let mut dropped = Dropped::default();
        let mut at = |ms: u64| match from_ms(ms, now, wall) {
            Ok(t) => Some(t),
            Err(DropReason::Future) => {
                dropped.future += 1;
                None
            }
            Err(DropReason::Unrepresentable) => {
                dropped.unrepresentable += 1;
                None
            }
        };
        let mut h = History::new();
        for (id, s) in &saved.containers {
            let v1 = s.restarts_ms.iter().map(|ms| SavedRestart {
                at_ms: *ms,
                started_ns: None,
            });
            let mut restarts: Vec<Restart> = s
                .restarts
                .iter()
                .copied()
                .chain(v1)
                .filter_map(|r| {
                    Some(Restart {
                        at: at(r.at_ms)?,
                        started_ns: r.started_ns,
                    })
                })
                .collect();
            restarts.sort_by_key(|r| r.at);
            let m = Memory {
                restarts: restarts.into(),
                backoff_reset: s.backoff_reset_ms.and_then(&mut at),
                budget_reset: s.budget_reset_ms.and_then(&mut at),
                quarantined: s.quarantined_ms.and_then(&mut at),
            };
            h.containers.insert(id.clone(), m);
        }
        (h, dropped)
    }
}

impl Saved {
    /// Merges Docker's container events (any order, any containers) into what was saved, and
    /// returns how many restarts they added.
    ///
    /// Each saved restart is paired with the start it produced, by order: one with a known start
    /// (`StartedAt`) is the first `start` event at or after it with no `die` between; one saved
    /// before its start was known (the sidecar stopped during the restart) is the first `start`
    /// after the first `die` at or after its issue. Each `restart` event is the latest `start`
    /// before it. A `restart` event whose start no saved restart claims is a restart the file
    /// does not know (a person's `docker restart`, or one the file missed), added once.
    pub fn merge_events(&mut self, events: &[EngineEvent]) -> usize {
        let mut by_id: BTreeMap<&str, Vec<(u64, EngineAction)>> = BTreeMap::new();
        for e in events {
            by_id.entry(&e.id).or_default().push((e.at_ns, e.action));
        }
        let mut added = 0;
        for (id, mut evs) in by_id {
            evs.sort();
            let m = self.containers.entry(id.to_owned()).or_default();
            let first_after = |from: u64, action: EngineAction| {
                evs.iter()
                    .find(|(t, a)| *t >= from && *a == action)
                    .map(|(t, _)| *t)
            };
            let no_die_between = |a: u64, b: u64| {
                !evs.iter()
                    .any(|(t, act)| *act == EngineAction::Die && *t >= a && *t < b)
            };
            // The start each saved restart produced, when the events show it.
            let mut claimed = BTreeSet::new();
            for r in m.restarts.iter_mut() {
                let start = match r.started_ns {
                    Some(s) => {
                        first_after(s, EngineAction::Start).filter(|t| no_die_between(s, *t))
                    }
                    None => first_after(r.at_ms.saturating_mul(1_000_000), EngineAction::Die)
                        .and_then(|die| {
                            first_after(die, EngineAction::Start)
                                .filter(|t| no_die_between(die.saturating_add(1), *t))
                        }),
                };
                if let Some(t) = start {
                    claimed.insert(t);
                    r.started_ns.get_or_insert(t);
                }
            }
            for (t, a) in &evs {
                if *a != EngineAction::Restart {
                    continue;
                }
                let start = evs
                    .iter()
                    .rev()
                    .find(|(s, act)| *act == EngineAction::Start && s <= t)
                    .map_or(*t, |(s, _)| *s);
                if claimed.insert(start) {
                    m.restarts.push(SavedRestart {
                        at_ms: start / 1_000_000,
                        started_ns: Some(start),
                    });
                    added += 1;
                }
            }
            m.restarts.sort_by_key(|r| r.at_ms);
            if m == &SavedMemory::default() {
                self.containers.remove(id);
            }
        }
        self.v = 2;
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn ev(action: EngineAction, at_ms: u64) -> EngineEvent {
        EngineEvent {
            id: "a".into(),
            action,
            at_ns: at_ms * MS + 123,
        }
    }

    /// Saved and restored by a later process (another clock origin), a history keeps its restarts,
    /// their starts, resets and quarantine to the millisecond.
    #[test]
    fn save_restore_round_trip() {
        let now = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut h = History::new();
        h.record_restart("a", now - Duration::from_secs(100));
        h.record_restart("a", now - Duration::from_secs(40));
        assert!(h.started("a", 1_799_999_960_500 * MS));
        h.earn_back("a", now - Duration::from_secs(50));
        h.quarantine("a", now - Duration::from_secs(10));
        let saved = h.save(now, wall);
        assert_eq!(
            saved.containers["a"].restarts,
            [
                SavedRestart {
                    at_ms: 1_799_999_900_000,
                    started_ns: None
                },
                SavedRestart {
                    at_ms: 1_799_999_960_000,
                    started_ns: Some(1_799_999_960_500 * MS)
                }
            ]
        );
        let json = serde_json::to_string(&saved).unwrap();
        // Ten seconds later, in a new process.
        let later = Instant::now() + Duration::from_secs(3600);
        let (back, dropped) = History::restore(
            &serde_json::from_str(&json).unwrap(),
            later,
            wall + Duration::from_secs(10),
        );
        assert!(dropped.is_empty());
        let m = back.get("a").unwrap();
        assert_eq!(
            m.restarts.iter().map(|r| later - r.at).collect::<Vec<_>>(),
            [Duration::from_secs(110), Duration::from_secs(50)]
        );
        assert_eq!(m.backoff_level(), 1);
        assert_eq!(later - m.quarantined.unwrap(), Duration::from_secs(20));
    }

    /// A version 1 file (bare restart times) is still read.
    #[test]
    fn reads_version_1() {
        let wall = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let now = Instant::now();
        let v1 = r#"{"v":1,"containers":{"a":{"restarts_ms":[1799999990000],
            "backoff_reset_ms":null,"budget_reset_ms":null,"quarantined_ms":null}}}"#;
        let (h, _) = History::restore(&serde_json::from_str(v1).unwrap(), now, wall);
        assert_eq!(
            h.get("a").unwrap().last_restart(),
            Some(now - Duration::from_secs(10))
        );
    }

    /// Restored times keep their wall-clock time or are dropped, never moved to now: a restart
    /// "later than now" (the host's clock set back across a reboot) would otherwise count as a
    /// restart just made, start a backoff and spend budget.
    #[test]
    fn restore_never_moves_a_time_to_now() {
        let now = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let window = Duration::from_secs(1800);
        let mut saved = Saved {
            v: 2,
            ..Saved::default()
        };
        let m = saved.containers.entry("a".into()).or_default();
        // An hour in the future, and one 50 years old.
        m.restarts.push(SavedRestart {
            at_ms: 1_800_003_600_000,
            started_ns: None,
        });
        m.restarts.push(SavedRestart {
            at_ms: 200_000_000_000,
            started_ns: None,
        });
        m.quarantined_ms = Some(1_800_003_600_000);
        let (h, dropped) = History::restore(&saved, now, wall);
        let m = h.get("a").unwrap();
        assert_eq!(m.in_window(now, window), 0, "{m:?}");
        assert_eq!(m.quarantined, None);
        assert_eq!(dropped.future, 2);
        for r in &m.restarts {
            assert!(now - r.at > Duration::from_secs(365 * 86400), "{r:?}");
        }
    }

    /// A restart whose stop took the whole stop timeout (a SIGTERM-deaf container, 10 s) is one
    /// restart, whichever sources report it: the governor's saved issue time and start, and
    /// Docker's kill, die, start and restart events 10 s later.
    #[test]
    fn a_slow_restart_is_one_restart() {
        let issued = 1_800_000_000_000;
        let events = [
            ev(EngineAction::Die, issued + 10_050),
            ev(EngineAction::Start, issued + 10_300),
            ev(EngineAction::Restart, issued + 10_302),
        ];
        // The file knew the start (the restart returned before the sidecar stopped) ...
        let mut saved = Saved::default();
        saved.containers.entry("a".into()).or_default().restarts = vec![SavedRestart {
            at_ms: issued,
            started_ns: Some((issued + 10_299) * MS + 999),
        }];
        assert_eq!(saved.merge_events(&events), 0);
        assert_eq!(saved.containers["a"].restarts.len(), 1);
        // ... or not (the sidecar stopped during the 10 s stop).
        let mut saved = Saved::default();
        saved.containers.entry("a".into()).or_default().restarts = vec![SavedRestart {
            at_ms: issued,
            started_ns: None,
        }];
        assert_eq!(saved.merge_events(&events), 0);
        let r = saved.containers["a"].restarts[0];
        assert_eq!(r.at_ms, issued, "the issue time is kept for the backoff");
        assert_eq!(r.started_ns, Some((issued + 10_300) * MS + 123));
        // Merged twice (the sidecar restarted again): still one.
        assert_eq!(saved.merge_events(&events), 0);
        assert_eq!(saved.containers["a"].restarts.len(), 1);
        // And restored, then counted: one restart in the window.
        let wall = UNIX_EPOCH + Duration::from_millis(issued + 20_000);
        let (h, _) = History::restore(&saved, Instant::now(), wall);
        assert_eq!(
            h.get("a")
                .unwrap()
                .in_window(Instant::now(), Duration::from_secs(600)),
            1
        );
    }

    /// Restarts the file does not know (a person's `docker restart`) are added once each, however
    /// close to a known one; with no file at all, each `restart` event is one restart.
    #[test]
    fn unknown_restarts_are_added_once() {
        let t = 1_800_000_000_000;
        let events = [
            ev(EngineAction::Die, t + 100),
            ev(EngineAction::Start, t + 400),
            ev(EngineAction::Restart, t + 401),
            // A person's restart 1.5 s later: a restart of its own.
            ev(EngineAction::Die, t + 1_500),
            ev(EngineAction::Start, t + 1_900),
            ev(EngineAction::Restart, t + 1_901),
            // A crash restarted by the restart policy: no restart event, not counted.
            ev(EngineAction::Die, t + 5_000),
            ev(EngineAction::Start, t + 5_100),
        ];
        let mut saved = Saved::default();
        saved.containers.entry("a".into()).or_default().restarts = vec![SavedRestart {
            at_ms: t,
            started_ns: None,
        }];
        assert_eq!(saved.merge_events(&events), 1);
        assert_eq!(saved.containers["a"].restarts.len(), 2);
        let mut empty = Saved::default();
        assert_eq!(empty.merge_events(&events), 2);
        assert_eq!(empty.merge_events(&events), 0);
    }

    /// Restart history is per container: the same times on another container are its own.
    #[test]
    fn restarts_are_per_container() {
        let t = 1_800_000_000_000;
        let mut events = vec![
            ev(EngineAction::Start, t + 400),
            ev(EngineAction::Restart, t + 401),
        ];
        events.extend(events.clone().into_iter().map(|mut e| {
            e.id = "b".into();
            e
        }));
        let mut saved = Saved::default();
        saved.containers.entry("a".into()).or_default().restarts = vec![SavedRestart {
            at_ms: t + 400,
            started_ns: Some((t + 400) * MS),
        }];
        assert_eq!(saved.merge_events(&events), 1);
        assert_eq!(saved.containers["b"].restarts.len(), 1);
    }
}
