//! History: what every replica and container went through over a bounded window (default
//! 24 h), so that after a night a person can tell which agent froze, when, and how often.
//!
//! It is fed from snapshots only ([`changes`] diffs two of them; the writer needs no hook), kept
//! as run-length segments (one entry per state change, not per sample) with per-subject caps, and
//! saved to its own file beside the heal state so it survives the sidecar's restart. The page
//! draws it as an uptime bar per agent, `/api/history` serves it (schema in `sidecar/HEAL.md`),
//! and `/api/events` carries each new entry as a `history` event.
//!
//! Restarts are read from Docker's start time moving (whoever restarted: the governor, Docker's
//! restart policy, a person), attributed by key: the governor's restart records (the container
//! and the start each restart produced, carried in the snapshot) name its own, Docker's restart
//! count moves only for its restart policy, and the rest are `api`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ready_signal::Observed;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::state::{Container, State};

/// How far back the history reaches by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// State segments kept per subject (the oldest go first): a replica flapping every minute for a
/// day still shows its last several hours.
pub const MAX_SEGMENTS: usize = 512;
/// Events (restarts, decisions) kept per subject.
pub const MAX_EVENTS: usize = 128;
/// Subjects kept at most (10,000 agents and their containers fit).
pub const MAX_SUBJECTS: usize = 30_000;
/// Version of the saved file's and `/api/history`'s shape.
pub const SCHEMA_VERSION: u32 = 1;

/// A state on the timeline: a replica's observed state, or a container's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Replica published `ready`, heartbeat fresh.
    Ready,
    /// Replica starting.
    Starting,
    /// Replica not ready (a dependency, its own reason).
    NotReady,
    /// Replica stopping.
    Stopping,
    /// Replica's heartbeat late.
    Stale,
    /// Replica's record gone.
    Dead,
    /// Not known (the store could not be read).
    Unknown,
    /// Container running, healthcheck passing.
    Healthy,
    /// Container running, healthcheck in its start period.
    HealthStarting,
    /// Container running, healthcheck failing.
    Unhealthy,
    /// Container running, no healthcheck.
    Running,
    /// Container not running (exited, restarting, created, paused, dead).
    Down,
    /// No longer in the snapshot (removed, or the agent left).
    Gone,
}

impl Level {
    /// The kebab-case word.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ready => "ready",
            Level::Starting => "starting",
            Level::NotReady => "not-ready",
            Level::Stopping => "stopping",
            Level::Stale => "stale",
            Level::Dead => "dead",
            Level::Unknown => "unknown",
            Level::Healthy => "healthy",
            Level::HealthStarting => "health-starting",
            Level::Unhealthy => "unhealthy",
            Level::Running => "running",
            Level::Down => "down",
            Level::Gone => "gone",
        }
    }

    /// `up`, `degraded`, `down` or `none`: how the uptime bar colours it.
    pub fn tone(self) -> &'static str {
        match self {
            Level::Ready | Level::Healthy | Level::Running => "up",
            Level::Starting | Level::Stopping | Level::HealthStarting | Level::NotReady => {
                "degraded"
            }
            Level::Stale | Level::Dead | Level::Unhealthy | Level::Down => "down",
            Level::Unknown | Level::Gone => "none",
        }
    }

    fn of_replica(o: Observed) -> Level {
        match o {
            Observed::Ready => Level::Ready,
            Observed::Starting => Level::Starting,
            Observed::NotReady => Level::NotReady,
            Observed::Stopping => Level::Stopping,
            Observed::Stale => Level::Stale,
            Observed::Dead => Level::Dead,
            _ => Level::Unknown,
        }
    }

    fn of_container(c: &Container) -> Level {
        if !c.running {
            return Level::Down;
        }
        match c.health.as_deref() {
            Some("healthy") => Level::Healthy,
            Some("unhealthy") => Level::Unhealthy,
            Some(_) => Level::HealthStarting,
            None => Level::Running,
        }
    }
}

/// What kind of subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `namespace/agent/replica`.
    Replica,
    /// A container, by id.
    Container,
}

/// Something that happened at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// `restart`, `decision`, `quarantine` or `release`.
    pub kind: String,
    /// For a restart: `governor`, `restart-policy` or `api` (a person's `docker restart`, or
    /// another tool); empty otherwise.
    pub by: String,
    /// One line: the governor's decision and why, or what was seen.
    pub text: String,
}

/// One subject's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    /// Replica or container.
    pub kind: Kind,
    /// `namespace/agent/replica`, or the container id.
    pub key: String,
    /// The container's name (containers), or the linked container's id (replicas).
    pub label: String,
    /// Compose service (containers).
    pub service: String,
    /// Run-length states: (unix ms it began, state), oldest first.
    pub segments: VecDeque<(u64, Level)>,
    /// Restarts and decisions, oldest first.
    pub events: VecDeque<Event>,
    /// Containers: each start seen, with how long it took to the first ready record (or healthy
    /// check) after it, in milliseconds.
    pub starts: VecDeque<(u64, Option<u64>)>,
    /// Containers: the longest failing streak seen in the window.
    pub worst_streak: u64,
}

impl Track {
    fn new(kind: Kind, key: String) -> Track {
        Track {
            kind,
            key,
            label: String::new(),
            service: String::new(),
            segments: VecDeque::new(),
            events: VecDeque::new(),
            starts: VecDeque::new(),
            worst_streak: 0,
        }
    }

    /// The state now.
    pub fn level(&self) -> Option<Level> {
        self.segments.back().map(|s| s.1)
    }

    /// Restarts within the window.
    pub fn restarts(&self) -> usize {
        self.events.iter().filter(|e| e.kind == "restart").count()
    }

    /// Share of `[from, to]` spent `up` (ready, healthy, running), over the time known.
    pub fn uptime(&self, from: u64, to: u64) -> Option<f64> {
        let (mut up, mut known) = (0u64, 0u64);
        for (i, (start, level)) in self.segments.iter().enumerate() {
            let end = self.segments.get(i + 1).map_or(to, |n| n.0).min(to);
            let start = (*start).max(from);
            if end <= start || level.tone() == "none" {
                continue;
            }
            known += end - start;
            if level.tone() == "up" {
                up += end - start;
            }
        }
        (known > 0).then(|| up as f64 / known as f64)
    }
}

/// One change, as the event stream carries it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// Replica or container.
    pub kind: Kind,
    /// Its key.
    pub key: String,
    /// Unix milliseconds.
    pub at_ms: u64,
    /// The new state, when the state changed.
    pub state: Option<Level>,
    /// What happened, when something did.
    pub event: Option<Event>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ms_at(s: &State, at: tokio::time::Instant) -> u64 {
    let ago = s.built_at.saturating_duration_since(at);
    unix_ms(s.built_wall).saturating_sub(ago.as_millis() as u64)
}

/// Docker's `StartedAt` in Unix nanoseconds.
fn start_ns(c: &Container) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(c.started_at.as_deref()?).ok()?;
    u64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_nanos()).ok()
}

/// Whether the governor says its restart of `c` produced the start `ns` (its keyed record: the
/// container and the start the restart produced).
fn governor_started(c: &Container, ns: u64) -> bool {
    c.heal
        .as_ref()
        .is_some_and(|h| h.restart_starts.contains(&ns))
}

/// Whether a restart of `c` by the governor is under way (its start not known to it yet).
fn governor_restarting(c: &Container) -> bool {
    c.heal.as_ref().is_some_and(|h| h.status == "restarting")
}

/// Who restarted container `new` (whose start time moved since `old`): `Some("governor")` when
/// the governor's record of its restarts holds this start, `Some("restart-policy")` when
/// Docker's restart count moved, `None` while a restart by the governor is under way and its
/// record does not hold the start yet (decided when it does: see [`changes`]), else `api`.
fn restarted_by(old: &Container, new: &Container) -> Option<&'static str> {
    if start_ns(new).is_some_and(|ns| governor_started(new, ns)) {
        Some("governor")
    } else if new.restart_count > old.restart_count {
        Some("restart-policy")
    } else if governor_restarting(old) || governor_restarting(new) {
        None
    } else {
        Some("api")
    }
}

/// What the governor's page line says, when it is a decision worth keeping (not "watching" nor
/// a passing "left alone").
fn decision_of(c: &Container) -> Option<&str> {
    let line = c.heal.as_ref()?.last_decision.as_deref()?;
    (!line.is_empty() && line != "watching" && !line.starts_with("left alone")).then_some(line)
}

/// Everything that changed from `old` to `new` (pure: both snapshots carry their own times).
/// With `old` `None`, every subject's current state (dated from when it entered it).
pub fn changes(old: Option<&State>, new: &State) -> Vec<Entry> {
    let now = unix_ms(new.built_wall);
    let mut out = Vec::new();
    let old_replicas: HashMap<(&str, &str, &str), Level> = old
        .map(|o| {
            o.replicas
                .iter()
                .map(|r| {
                    (
                        (r.namespace.as_str(), r.agent.as_str(), r.replica.as_str()),
                        Level::of_replica(r.observed),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let old_containers: HashMap<&str, &Container> = old
        .map(|o| o.containers.iter().map(|c| (c.id.as_str(), c)).collect())
        .unwrap_or_default();
    for r in &new.replicas {
        let level = Level::of_replica(r.observed);
        let key = (r.namespace.as_str(), r.agent.as_str(), r.replica.as_str());
        if old_replicas.get(&key) != Some(&level) {
            out.push(Entry {
                kind: Kind::Replica,
                key: format!("{}/{}/{}", r.namespace, r.agent, r.replica),
                at_ms: ms_at(new, r.since),
                state: Some(level),
                event: None,
            });
        }
    }
    if let Some(o) = old {
        let now_replicas: std::collections::HashSet<(&str, &str, &str)> = new
            .replicas
            .iter()
            .map(|r| (r.namespace.as_str(), r.agent.as_str(), r.replica.as_str()))
            .collect();
        for r in &o.replicas {
            let key = (r.namespace.as_str(), r.agent.as_str(), r.replica.as_str());
            if !now_replicas.contains(&key) {
                out.push(Entry {
                    kind: Kind::Replica,
                    key: format!("{}/{}/{}", r.namespace, r.agent, r.replica),
                    at_ms: now,
                    state: Some(Level::Gone),
                    event: None,
                });
            }
        }
    }
    for c in &new.containers {
        let prev = old_containers.get(c.id.as_str()).copied();
        let level = Level::of_container(c);
        let entry = |state, event| Entry {
            kind: Kind::Container,
            key: c.id.clone(),
            at_ms: now,
            state,
            event,
        };
        match prev {
            None => out.push(Entry {
                at_ms: c.health_since.map_or(now, |t| ms_at(new, t)),
                ..entry(Some(level), None)
            }),
            Some(p) => {
                if Level::of_container(p) != level {
                    out.push(entry(Some(level), None));
                }
                // The governor's record of a restart arrived after its start was seen (the
                // engine's watcher was first): the restart is told now, by that key.
                let late_key = p.started_at == c.started_at
                    && c.running
                    && start_ns(c)
                        .is_some_and(|ns| governor_started(c, ns) && !governor_started(p, ns));
                let moved = p.started_at.is_some() && p.started_at != c.started_at && c.running;
                let by = if late_key {
                    Some("governor")
                } else if moved {
                    restarted_by(p, c)
                } else {
                    None
                };
                if let Some(by) = by {
                    out.push(entry(
                        None,
                        Some(Event {
                            at_ms: now,
                            kind: "restart".into(),
                            by: by.into(),
                            text: match by {
                                "governor" => decision_of(p)
                                    .or(decision_of(c))
                                    .unwrap_or("restarted by the governor")
                                    .to_owned(),
                                "restart-policy" => format!(
                                    "restarted by docker's restart policy (restart count {})",
                                    c.restart_count
                                ),
                                _ => "restarted through the API (a person or another tool)"
                                    .to_owned(),
                            },
                        }),
                    ));
                }
                let was = p.heal.as_ref().map(|h| h.status.as_str());
                let is = c.heal.as_ref().map(|h| h.status.as_str());
                if is == Some("quarantined") && was != Some("quarantined") {
                    out.push(entry(
                        None,
                        Some(Event {
                            at_ms: now,
                            kind: "quarantine".into(),
                            by: String::new(),
                            text: decision_of(c).unwrap_or("quarantined").to_owned(),
                        }),
                    ));
                } else if was == Some("quarantined") && is != Some("quarantined") {
                    out.push(entry(
                        None,
                        Some(Event {
                            at_ms: now,
                            kind: "release".into(),
                            by: String::new(),
                            text: decision_of(c)
                                .unwrap_or("released from quarantine")
                                .to_owned(),
                        }),
                    ));
                } else if let Some(line) = decision_of(c)
                    && decision_of(p) != Some(line)
                {
                    out.push(entry(
                        None,
                        Some(Event {
                            at_ms: now,
                            kind: "decision".into(),
                            by: String::new(),
                            text: line.to_owned(),
                        }),
                    ));
                }
            }
        }
    }
    if let Some(o) = old {
        for c in &o.containers {
            if !new.containers.iter().any(|n| n.id == c.id) {
                out.push(Entry {
                    kind: Kind::Container,
                    key: c.id.clone(),
                    at_ms: now,
                    state: Some(Level::Gone),
                    event: None,
                });
            }
        }
    }
    out
}

/// Every subject's history, bounded by the window and the caps.
#[derive(Debug, Clone)]
pub struct Timeline {
    window: Duration,
    tracks: BTreeMap<(Kind, String), Track>,
    dirty: bool,
    /// Per source (`store` reads, `events` from NATS, `docker`): its counter and when it last
    /// moved (unix ms), so the page says how old each source's latest word is.
    sources: [(u64, Option<u64>); 3],
}

/// The sources whose age [`Timeline::source_ages`] gives, in its order.
pub const SOURCES: [&str; 3] = ["store", "events", "docker"];

/// The saved file.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    schema: u32,
    saved_ms: u64,
    tracks: Vec<Track>,
}

impl Timeline {
    /// An empty history over `window`.
    pub fn new(window: Duration) -> Timeline {
        Timeline {
            window,
            tracks: BTreeMap::new(),
            dirty: false,
            sources: [(0, None); 3],
        }
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Every track, by kind and key.
    pub fn tracks(&self) -> impl Iterator<Item = &Track> {
        self.tracks.values()
    }

    /// How long ago (ms, at `now_ms`) each of [`SOURCES`] last brought something: a successful
    /// store read, an agent event, a successful Docker call; `None` when never seen.
    pub fn source_ages(&self, now_ms: u64) -> [Option<u64>; 3] {
        self.sources
            .map(|(_, at)| at.map(|at| now_ms.saturating_sub(at)))
    }

    /// Container tracks with measured starts (id, service, start-to-ready ms each), for tests.
    #[cfg(test)]
    pub(crate) fn seed_starts(&mut self, tracks: &[(String, &str, Vec<u64>)]) {
        for (id, service, samples) in tracks {
            let mut t = Track::new(Kind::Container, id.clone());
            t.service = (*service).to_owned();
            t.label = id.clone();
            for (i, ms) in samples.iter().enumerate() {
                t.starts.push_back((i as u64 * 600_000, Some(*ms)));
            }
            self.tracks.insert((Kind::Container, id.clone()), t);
        }
    }

    /// The replicas' tracks of agent `namespace/agent`.
    pub fn replicas_of<'a>(&'a self, agent: &str) -> impl Iterator<Item = &'a Track> + 'a {
        let from = (Kind::Replica, format!("{agent}/"));
        let to = (Kind::Replica, format!("{agent}0")); // '0' follows '/'
        self.tracks.range(from..to).map(|(_, t)| t)
    }

    /// One track.
    pub fn track(&self, kind: Kind, key: &str) -> Option<&Track> {
        self.tracks.get(&(kind, key.to_owned()))
    }

    /// Takes in what changed from `old` to `new`, and what only `new` tells (names, starts,
    /// streaks, time to first ready); prunes what left the window at `new`'s time.
    pub fn observe(&mut self, old: Option<&State>, new: &State) -> Vec<Entry> {
        let entries = changes(old, new);
        for e in &entries {
            self.apply(e);
        }
        let now = unix_ms(new.built_wall);
        let c = &new.counters;
        let counts = [
            c.store_reads - c.store_errors.min(c.store_reads),
            c.store_events,
            c.docker_calls - c.docker_errors.min(c.docker_calls),
        ];
        for (seen, count) in self.sources.iter_mut().zip(counts) {
            if count != seen.0 {
                *seen = (count, Some(now));
            }
        }
        // Replicas inherit their container's restarts (the agent's bar shows them), and each
        // container start waits for its first ready record or passing check.
        let restarts: Vec<(String, Event)> = entries
            .iter()
            .filter_map(|e| {
                e.event
                    .as_ref()
                    .filter(|ev| ev.kind == "restart")
                    .map(|ev| (e.key.clone(), ev.clone()))
            })
            .collect();
        for c in &new.containers {
            let started = c
                .started_at
                .as_deref()
                .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
                .map(unix_ms);
            let ready_at = new
                .replicas_in(&c.id)
                .filter(|r| r.observed == Observed::Ready)
                .map(|r| ms_at(new, r.since))
                .min()
                .or_else(|| {
                    (c.health.as_deref() == Some("healthy")
                        && new.replicas_in(&c.id).next().is_none())
                    .then(|| c.health_since.map_or(now, |t| ms_at(new, t)))
                });
            let Some(t) = self.tracks.get_mut(&(Kind::Container, c.id.clone())) else {
                continue;
            };
            if t.label != c.name {
                t.label = c.name.clone();
                t.service = c.service.clone().unwrap_or_default();
            }
            t.worst_streak = t.worst_streak.max(c.failing_streak);
            if let Some(s) = started
                && c.running
                && t.starts.back().is_none_or(|b| b.0 != s)
            {
                t.starts.push_back((s, None));
                self.dirty = true;
            }
            if let (Some(last), Some(r)) = (t.starts.back_mut(), ready_at)
                && last.1.is_none()
                && r >= last.0
            {
                last.1 = Some(r - last.0);
                self.dirty = true;
            }
        }
        for (id, ev) in restarts {
            for r in new.replicas_in(&id) {
                let key = format!("{}/{}/{}", r.namespace, r.agent, r.replica);
                if let Some(t) = self.tracks.get_mut(&(Kind::Replica, key)) {
                    t.label = id.clone();
                    push_capped(&mut t.events, ev.clone(), MAX_EVENTS);
                }
            }
        }
        self.prune(now);
        entries
    }

    fn apply(&mut self, e: &Entry) {
        let key = (e.kind, e.key.clone());
        if !self.tracks.contains_key(&key) && self.tracks.len() >= MAX_SUBJECTS {
            return;
        }
        let t = self
            .tracks
            .entry(key)
            .or_insert_with(|| Track::new(e.kind, e.key.clone()));
        if let Some(level) = e.state
            && t.level() != Some(level)
        {
            // A state dated before the last one (a replica first seen, entered earlier) starts
            // where the last one started, never before it.
            let at = t.segments.back().map_or(e.at_ms, |b| e.at_ms.max(b.0));
            push_capped(&mut t.segments, (at, level), MAX_SEGMENTS);
        }
        if let Some(ev) = &e.event {
            push_capped(&mut t.events, ev.clone(), MAX_EVENTS);
        }
        self.dirty = true;
    }

    /// Drops what ended before the window began; a subject gone for the whole window goes.
    pub fn prune(&mut self, now_ms: u64) {
        let from = now_ms.saturating_sub(self.window.as_millis() as u64);
        self.tracks.retain(|_, t| {
            while t.segments.len() > 1 && t.segments[1].0 <= from {
                t.segments.pop_front();
            }
            while t.events.front().is_some_and(|e| e.at_ms < from) {
                t.events.pop_front();
            }
            while t.starts.front().is_some_and(|s| s.0 < from) {
                t.starts.pop_front();
            }
            !(t.level() == Some(Level::Gone) && t.segments.back().is_some_and(|s| s.0 < from))
        });
    }

    /// Whether something changed since the last [`Timeline::take_dirty`].
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The history as saved (JSON).
    pub fn to_json(&self, now_ms: u64) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&Saved {
            schema: SCHEMA_VERSION,
            saved_ms: now_ms,
            tracks: self.tracks.values().cloned().collect(),
        })
    }

    /// A history read back from [`Timeline::to_json`]'s output; what was not known while the
    /// sidecar was down is marked `unknown` from the save to `now_ms`.
    pub fn from_json(body: &[u8], window: Duration, now_ms: u64) -> Result<Timeline, String> {
        let saved: Saved =
            serde_json::from_slice(body).map_err(|e| format!("not a sidecar history: {e}"))?;
        if saved.schema != SCHEMA_VERSION {
            return Err(format!(
                "history schema {} (this sidecar reads {SCHEMA_VERSION})",
                saved.schema
            ));
        }
        let mut t = Timeline::new(window);
        for mut track in saved.tracks.into_iter().take(MAX_SUBJECTS) {
            if track.level().is_some_and(|l| l != Level::Gone) {
                push_capped(
                    &mut track.segments,
                    (saved.saved_ms, Level::Unknown),
                    MAX_SEGMENTS,
                );
            }
            t.tracks.insert((track.kind, track.key.clone()), track);
        }
        t.prune(now_ms);
        Ok(t)
    }
}

fn push_capped<T>(q: &mut VecDeque<T>, item: T, cap: usize) {
    if q.len() >= cap {
        q.pop_front();
    }
    q.push_back(item);
}

/// Where the history lives and how far back it reaches.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How far back.
    pub window: Duration,
    /// Its file (saved every [`SAVE_EVERY`] when something changed, and at shutdown).
    pub file: Option<std::path::PathBuf>,
}

/// How often a changed history is written to its file.
pub const SAVE_EVERY: Duration = Duration::from_secs(30);

/// The shared history: one task writes it, the HTTP handlers read it under a short lock.
pub type Shared = Arc<Mutex<Timeline>>;

/// Reads the saved history, or starts an empty one (saying why when the file cannot be used).
pub fn load(settings: &Settings) -> Timeline {
    let now = unix_ms(SystemTime::now());
    let Some(path) = &settings.file else {
        return Timeline::new(settings.window);
    };
    match std::fs::read(path) {
        Ok(body) => match Timeline::from_json(&body, settings.window, now) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "saved history not read: starting an empty one");
                Timeline::new(settings.window)
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Timeline::new(settings.window),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "saved history not read: starting an empty one");
            Timeline::new(settings.window)
        }
    }
}

fn save(shared: &Shared, path: &std::path::Path, failed: &mut bool) {
    let body = match shared.lock() {
        Ok(mut t) => {
            if !t.take_dirty() {
                return;
            }
            t.to_json(unix_ms(SystemTime::now()))
        }
        Err(_) => return,
    };
    let result = body.map_err(std::io::Error::other).and_then(|body| {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, path)
    });
    match result {
        Ok(()) => *failed = false,
        Err(e) if !*failed => {
            *failed = true;
            tracing::warn!(path = %path.display(), error = %e, "history not saved: a restarted sidecar starts without it");
        }
        Err(_) => {}
    }
}

/// Follows the snapshots into `shared` until `shutdown`, saving to the file when set.
pub async fn run(
    shared: Shared,
    mut snapshots: watch::Receiver<Arc<State>>,
    file: Option<std::path::PathBuf>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut last: Option<Arc<State>> = None;
    let mut failed = false;
    let mut save_tick = tokio::time::interval(SAVE_EVERY);
    save_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            changed = snapshots.changed() => if changed.is_err() { break },
            _ = save_tick.tick() => {
                if let Some(path) = &file {
                    save(&shared, path, &mut failed);
                }
                continue;
            }
        }
        let next = snapshots.borrow_and_update().clone();
        if last
            .as_ref()
            .is_some_and(|l| l.generation == next.generation)
        {
            continue;
        }
        if let Ok(mut t) = shared.lock() {
            t.observe(last.as_deref(), &next);
        }
        last = Some(next);
    }
    if let Some(path) = &file {
        save(&shared, path, &mut failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ContainerHeal, Replica, Source};
    use tokio::time::Instant;

    fn container(id: &str, started: &str, restarts: u64, health: &str) -> Container {
        Container {
            id: id.into(),
            name: format!("demo-{id}-1"),
            project: Some("demo".into()),
            service: Some(id.into()),
            hostname: id.into(),
            labels: Default::default(),
            status: "running".into(),
            running: true,
            health: Some(health.into()),
            health_since: None,
            failing_streak: 0,
            last_health_line: None,
            restart_count: restarts,
            exit_code: None,
            started_at: Some(started.into()),
            health_checked_at: None,
            instances: Vec::new(),
            earlier_instances: Vec::new(),
            stop_timeout: None,
            network_mode: None,
            start_period: None,
            heal: None,
        }
    }

    fn replica(agent: &str, container: &str, observed: Observed, since: Instant) -> Replica {
        Replica {
            namespace: "demo".into(),
            agent: agent.into(),
            replica: container.into(),
            observed,
            since,
            beat_age: None,
            instance: None,
            epoch: None,
            reason: None,
            container_id: Some(container.into()),
            link: crate::state::Link::Id,
            record_container: None,
            instance_started: None,
            published: None,
            beat_at: None,
            interval: None,
            ttl: None,
            host: None,
        }
    }

    fn at(base: &State, secs: u64) -> State {
        let mut s = base.clone();
        s.built_at = base.built_at + Duration::from_secs(secs);
        s.built_wall = base.built_wall + Duration::from_secs(secs);
        s.generation = base.generation + secs;
        s
    }

    /// A night replayed: a replica freezes, the governor restarts its container, Docker's
    /// restart policy restarts it later, and a person restarts it with `docker restart`; every
    /// state is a run-length segment, every restart is marked with who did it, on the container
    /// and on the agent's replica; the time to first ready is measured from each start.
    #[test]
    fn restarts_are_marked_with_who_did_them() {
        let t0 = Instant::now();
        let wall0 = humantime::parse_rfc3339("2026-12-07T00:00:00Z").unwrap();
        let mut s0 = State::new(t0, Source::Ok, Source::Ok);
        s0.built_wall = wall0;
        s0.containers = vec![container("c1", "2026-12-06T23:59:50Z", 0, "healthy")];
        s0.replicas = vec![replica("worker", "c1", Observed::Ready, t0)];
        let mut tl = Timeline::new(DEFAULT_WINDOW);
        tl.observe(None, &s0);
        // 60 s: stale; 70 s: the governor says it restarts; 75 s: started again, 78 s ready.
        let mut s1 = at(&s0, 60);
        s1.replicas[0].observed = Observed::Stale;
        s1.replicas[0].since = s1.built_at;
        tl.observe(Some(&s0), &s1);
        let mut s2 = at(&s0, 70);
        s2.replicas[0] = s1.replicas[0].clone();
        s2.containers[0].heal = Some(ContainerHeal {
            status: "restarting".into(),
            last_decision: Some("restarting (stale for 10.0s; attempt 1)".into()),
            ..ContainerHeal::default()
        });
        tl.observe(Some(&s1), &s2);
        let mut s3 = at(&s0, 75);
        s3.containers[0].started_at = Some("2026-12-07T00:01:15Z".into());
        s3.containers[0].heal = Some(ContainerHeal {
            status: "watching".into(),
            last_decision: Some("restarted in 5.0s".into()),
            restart_starts: vec![start_ns(&s3.containers[0]).unwrap()],
            ..ContainerHeal::default()
        });
        s3.replicas[0].observed = Observed::Starting;
        s3.replicas[0].since = s3.built_at;
        tl.observe(Some(&s2), &s3);
        let mut s4 = at(&s0, 78);
        s4.containers[0] = s3.containers[0].clone();
        s4.replicas[0].observed = Observed::Ready;
        s4.replicas[0].since = s4.built_at;
        tl.observe(Some(&s3), &s4);
        // 3600 s: Docker's restart policy (its count moves); 7200 s: a person.
        let mut s5 = at(&s0, 3600);
        s5.containers[0] = container("c1", "2026-12-07T01:00:00Z", 1, "healthy");
        s5.replicas = s4.replicas.clone();
        tl.observe(Some(&s4), &s5);
        let mut s6 = at(&s0, 7200);
        s6.containers[0] = container("c1", "2026-12-07T02:00:00Z", 1, "healthy");
        s6.replicas = s4.replicas.clone();
        let entries = tl.observe(Some(&s5), &s6);
        assert_eq!(entries.len(), 1, "{entries:?}");

        let c = tl.track(Kind::Container, "c1").unwrap();
        let by: Vec<&str> = c
            .events
            .iter()
            .filter(|e| e.kind == "restart")
            .map(|e| e.by.as_str())
            .collect();
        assert_eq!(by, ["governor", "restart-policy", "api"]);
        assert!(
            c.events
                .iter()
                .any(|e| e.kind == "decision" && e.text.starts_with("restarting (stale"))
        );
        let r = tl.track(Kind::Replica, "demo/worker/c1").unwrap();
        let states: Vec<&str> = r.segments.iter().map(|s| s.1.as_str()).collect();
        assert_eq!(states, ["ready", "stale", "starting", "ready"]);
        assert_eq!(
            r.restarts(),
            3,
            "the agent's bar shows its container's restarts"
        );
        assert_eq!(c.starts[1], (unix_ms(wall0) + 75_000, Some(3_000)));
        let up = r
            .uptime(unix_ms(wall0), unix_ms(wall0) + 7_200_000)
            .unwrap();
        assert!((up - (7200.0 - 18.0) / 7200.0).abs() < 1e-9, "{up}");
    }

    /// Memory stays bounded: a replica flapping for days keeps at most MAX_SEGMENTS entries, and
    /// what left the window goes; the file round-trips, marking the sidecar's own downtime as
    /// unknown.
    #[test]
    fn bounded_and_saved() {
        let t0 = Instant::now();
        let mut s = State::new(t0, Source::Ok, Source::Ok);
        s.replicas = vec![replica("worker", "c1", Observed::Ready, t0)];
        let mut tl = Timeline::new(Duration::from_secs(3600));
        tl.observe(None, &s);
        let wall0 = s.built_wall;
        for i in 1..=2000u64 {
            let mut n = at(&s, 0);
            n.built_at = t0 + Duration::from_secs(i);
            n.built_wall = wall0 + Duration::from_secs(i);
            n.generation = i;
            n.replicas[0].observed = if i % 2 == 0 {
                Observed::Ready
            } else {
                Observed::Stale
            };
            n.replicas[0].since = n.built_at;
            tl.observe(Some(&s), &n);
            s = n;
        }
        let r = tl.track(Kind::Replica, "demo/worker/c1").unwrap();
        assert_eq!(r.segments.len(), MAX_SEGMENTS);
        let now = unix_ms(s.built_wall);
        let body = tl.to_json(now).unwrap();
        let back = Timeline::from_json(&body, Duration::from_secs(3600), now + 60_000).unwrap();
        let r2 = back.track(Kind::Replica, "demo/worker/c1").unwrap();
        assert_eq!(r2.level(), Some(Level::Unknown));
        assert_eq!(r2.segments.len(), MAX_SEGMENTS);
        // Two hours later, with the replica gone for more than the window, it is dropped.
        let mut back = back;
        back.apply(&Entry {
            kind: Kind::Replica,
            key: "demo/worker/c1".into(),
            at_ms: now + 60_000,
            state: Some(Level::Gone),
            event: None,
        });
        back.prune(now + 60_000 + 3_700_000);
        assert_eq!(back.tracks().count(), 0);
        assert!(Timeline::from_json(b"{}", DEFAULT_WINDOW, now).is_err());
    }

    /// A restart is the governor's by its key (the container and the start its restart
    /// produced), never by its page line: a start seen while its restart is under way waits for
    /// the key and is then the governor's, once; a person's `docker restart` while the line
    /// still says "restarted" is `api`.
    #[test]
    fn restart_attribution_is_keyed() {
        let t0 = Instant::now();
        let mut s0 = State::new(t0, Source::Ok, Source::Ok);
        s0.built_wall = humantime::parse_rfc3339("2026-12-07T00:00:00Z").unwrap();
        s0.containers = vec![container("c1", "2026-12-06T23:59:50Z", 0, "healthy")];
        let mut tl = Timeline::new(DEFAULT_WINDOW);
        tl.observe(None, &s0);
        // The governor is restarting it; the engine's watcher shows the new start first.
        let mut s1 = at(&s0, 10);
        s1.containers[0].heal = Some(ContainerHeal {
            status: "restarting".into(),
            last_decision: Some("restarting (stale for 3.0s; attempt 1)".into()),
            ..ContainerHeal::default()
        });
        tl.observe(Some(&s0), &s1);
        let mut s2 = at(&s0, 11);
        s2.containers[0].heal = s1.containers[0].heal.clone();
        s2.containers[0].started_at = Some("2026-12-07T00:00:11Z".into());
        let e = tl.observe(Some(&s1), &s2);
        assert!(
            e.iter()
                .all(|e| e.event.as_ref().is_none_or(|ev| ev.kind != "restart")),
            "told before its key: {e:?}"
        );
        // The governor's key arrives: told now, as the governor's.
        let mut s3 = at(&s0, 12);
        s3.containers[0] = s2.containers[0].clone();
        s3.containers[0].heal = Some(ContainerHeal {
            status: "watching".into(),
            last_decision: Some("restarted in 1.0s".into()),
            restart_starts: vec![start_ns(&s2.containers[0]).unwrap()],
            ..ContainerHeal::default()
        });
        tl.observe(Some(&s2), &s3);
        // Later, a person restarts it; the governor's line still says "restarted".
        let mut s4 = at(&s0, 100);
        s4.containers[0] = s3.containers[0].clone();
        s4.containers[0].started_at = Some("2026-12-07T00:01:40Z".into());
        tl.observe(Some(&s3), &s4);
        let mut s5 = at(&s0, 101);
        s5.containers[0] = s4.containers[0].clone();
        tl.observe(Some(&s4), &s5);
        let by: Vec<&str> = tl
            .track(Kind::Container, "c1")
            .unwrap()
            .events
            .iter()
            .filter(|e| e.kind == "restart")
            .map(|e| e.by.as_str())
            .collect();
        assert_eq!(by, ["governor", "api"]);
    }
}
