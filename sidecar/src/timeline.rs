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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
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

/// What an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The container's start time moved.
    Restart,
    /// The governor's decision (its page line).
    Decision,
    /// The governor quarantined the container.
    Quarantine,
    /// The governor released it.
    Release,
}

impl EventKind {
    /// The kebab-case word.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Restart => "restart",
            EventKind::Decision => "decision",
            EventKind::Quarantine => "quarantine",
            EventKind::Release => "release",
        }
    }
}

/// Who made a restart; [`By::Nobody`] (the empty word) for the other events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum By {
    /// Not a restart.
    #[default]
    #[serde(rename = "")]
    Nobody,
    /// The governor (its restart record holds the start).
    Governor,
    /// Docker's restart policy (its restart count moved).
    RestartPolicy,
    /// Through the API: a person's `docker restart`, or another tool.
    Api,
}

impl By {
    /// The word (`governor`, `restart-policy`, `api`, or empty).
    pub fn as_str(self) -> &'static str {
        match self {
            By::Nobody => "",
            By::Governor => "governor",
            By::RestartPolicy => "restart-policy",
            By::Api => "api",
        }
    }
}

/// Something that happened at an instant (saved and streamed as
/// `{"at_ms", "kind", "by", "text"}`, words as in [`EventKind::as_str`] and [`By::as_str`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// Restart, decision, quarantine or release.
    pub kind: EventKind,
    /// For a restart: who made it; [`By::Nobody`] otherwise.
    #[serde(default)]
    pub by: By,
    /// One line: the governor's decision and why, or what was seen.
    pub text: Box<str>,
}

/// One subject's history. A subject that never changed holds one run and nothing else: its
/// names, events and starts live in [`More`], allocated only once there is something to keep.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Track {
    /// Run-length states: (unix ms it began, state), oldest first.
    pub segments: VecDeque<(u64, Level)>,
    more: Option<Box<More>>,
    /// The [`Timeline::observe`] pass that last saw the subject in a snapshot (0: never).
    seen: u32,
}

/// What a track keeps beyond its runs.
#[derive(Debug, Clone, Default, PartialEq)]
struct More {
    /// The container's name (containers), or the linked container's id (replicas).
    label: Box<str>,
    /// Compose service (containers).
    service: Box<str>,
    /// Restarts and decisions, oldest first.
    events: VecDeque<Event>,
    /// Containers: each start seen, with the time to its first ready record (or healthy check).
    starts: VecDeque<(u64, Option<u64>)>,
    /// Containers: the longest failing streak seen in the window.
    worst_streak: u64,
    /// Containers: what the last snapshot said, to diff the next against (not saved).
    last: Option<Seen>,
}

static NO_EVENTS: VecDeque<Event> = VecDeque::new();
static NO_STARTS: VecDeque<(u64, Option<u64>)> = VecDeque::new();

impl Track {
    fn more_mut(&mut self) -> &mut More {
        self.more.get_or_insert_with(Box::default)
    }

    /// The state now.
    pub fn level(&self) -> Option<Level> {
        self.segments.back().map(|s| s.1)
    }

    /// The container's name (containers), or the linked container's id (replicas, once a
    /// restart was seen); empty when not known.
    pub fn label(&self) -> &str {
        self.more.as_ref().map_or("", |m| &m.label)
    }

    /// Compose service (containers); empty when not known.
    pub fn service(&self) -> &str {
        self.more.as_ref().map_or("", |m| &m.service)
    }

    /// Restarts and decisions, oldest first.
    pub fn events(&self) -> &VecDeque<Event> {
        self.more.as_ref().map_or(&NO_EVENTS, |m| &m.events)
    }

    /// Containers: each start seen, with how long it took to the first ready record (or
    /// healthy check) after it, in milliseconds.
    pub fn starts(&self) -> &VecDeque<(u64, Option<u64>)> {
        self.more.as_ref().map_or(&NO_STARTS, |m| &m.starts)
    }

    /// Containers: the longest failing streak seen in the window.
    pub fn worst_streak(&self) -> u64 {
        self.more.as_ref().map_or(0, |m| m.worst_streak)
    }

    /// Restarts within the window.
    pub fn restarts(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| e.kind == EventKind::Restart)
            .count()
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

    /// Bytes this track holds on the heap beyond its map entry (its runs, names, events and
    /// starts, by capacity), for the bound on memory.
    pub fn heap_bytes(&self) -> usize {
        let mut n = self.segments.capacity() * std::mem::size_of::<(u64, Level)>();
        if let Some(m) = &self.more {
            n += std::mem::size_of::<More>()
                + m.label.len()
                + m.service.len()
                + m.events.capacity() * std::mem::size_of::<Event>()
                + m.events.iter().map(|e| e.text.len()).sum::<usize>()
                + m.starts.capacity() * std::mem::size_of::<(u64, Option<u64>)>()
                + m.last.as_ref().map_or(0, Seen::heap_bytes);
        }
        n
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
    start_ns_of(c.started_at.as_deref()?)
}

fn start_ns_of(started_at: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(started_at).ok()?;
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

/// What the governor's page line says, when it is a decision worth keeping (not "watching" nor
/// a passing "left alone").
fn decision_of(c: &Container) -> Option<&str> {
    let line = c.heal.as_ref()?.last_decision.as_deref()?;
    (!line.is_empty() && line != "watching" && !line.starts_with("left alone")).then_some(line)
}

/// What a diff needs of a container's previous snapshot: taken from that snapshot
/// ([`changes`]) or kept on its track ([`Timeline::observe`], which holds no snapshot).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    level: Level,
    started_at: Option<Box<str>>,
    restart_count: u64,
    /// The governor's restart of it was under way.
    restarting: bool,
    quarantined: bool,
    decision: Option<Box<str>>,
    /// The governor's restart records held its start.
    keyed: bool,
}

impl Seen {
    fn of(c: &Container) -> Seen {
        Seen {
            level: Level::of_container(c),
            started_at: c.started_at.as_deref().map(Into::into),
            restart_count: c.restart_count,
            restarting: governor_restarting(c),
            quarantined: c.heal.as_ref().is_some_and(|h| h.status == "quarantined"),
            decision: decision_of(c).map(Into::into),
            keyed: start_ns(c).is_some_and(|ns| governor_started(c, ns)),
        }
    }

    fn heap_bytes(&self) -> usize {
        self.started_at.as_ref().map_or(0, |s| s.len())
            + self.decision.as_ref().map_or(0, |s| s.len())
    }
}

/// Who restarted container `c` (whose start time moved since `old`): the governor when its
/// record of its restarts holds this start, Docker's restart policy when its restart count
/// moved, `None` while a restart by the governor is under way and its record does not hold
/// the start yet (decided when it does: see [`changes`]), else the API.
fn restarted_by(old: &Seen, c: &Container) -> Option<By> {
    if start_ns(c).is_some_and(|ns| governor_started(c, ns)) {
        Some(By::Governor)
    } else if c.restart_count > old.restart_count {
        Some(By::RestartPolicy)
    } else if old.restarting || governor_restarting(c) {
        None
    } else {
        Some(By::Api)
    }
}

fn replica_key(out: &mut String, r: &crate::state::Replica) {
    use std::fmt::Write as _;
    out.clear();
    let _ = write!(out, "{}/{}/{}", r.namespace, r.agent, r.replica);
}

/// What changed for container `c` since `prev` (`None`: first seen), into `out`.
fn container_changes(new: &State, c: &Container, prev: Option<&Seen>, out: &mut Vec<Entry>) {
    let now = unix_ms(new.built_wall);
    let level = Level::of_container(c);
    let entry = |state, event| Entry {
        kind: Kind::Container,
        key: c.id.clone(),
        at_ms: now,
        state,
        event,
    };
    let event = |kind, by, text: &str| Event {
        at_ms: now,
        kind,
        by,
        text: text.into(),
    };
    let Some(p) = prev else {
        out.push(Entry {
            at_ms: c.health_since.map_or(now, |t| ms_at(new, t)),
            ..entry(Some(level), None)
        });
        return;
    };
    if p.level != level {
        out.push(entry(Some(level), None));
    }
    let same_start = p.started_at.as_deref() == c.started_at.as_deref();
    // The governor's record of a restart arrived after its start was seen (the engine's watcher
    // was first): the restart is told now, by that key.
    let late_key = same_start
        && c.running
        && !p.keyed
        && start_ns(c).is_some_and(|ns| governor_started(c, ns));
    let moved = p.started_at.is_some() && !same_start && c.running;
    let by = if late_key {
        Some(By::Governor)
    } else if moved {
        restarted_by(p, c)
    } else {
        None
    };
    if let Some(by) = by {
        let text = match by {
            By::Governor => p
                .decision
                .as_deref()
                .or(decision_of(c))
                .unwrap_or("restarted by the governor")
                .to_owned(),
            By::RestartPolicy => format!(
                "restarted by docker's restart policy (restart count {})",
                c.restart_count
            ),
            _ => "restarted through the API (a person or another tool)".to_owned(),
        };
        out.push(entry(None, Some(event(EventKind::Restart, by, &text))));
    }
    let quarantined = c.heal.as_ref().is_some_and(|h| h.status == "quarantined");
    if quarantined && !p.quarantined {
        let text = decision_of(c).unwrap_or("quarantined");
        out.push(entry(
            None,
            Some(event(EventKind::Quarantine, By::Nobody, text)),
        ));
    } else if p.quarantined && !quarantined {
        let text = decision_of(c).unwrap_or("released from quarantine");
        out.push(entry(
            None,
            Some(event(EventKind::Release, By::Nobody, text)),
        ));
    } else if let Some(line) = decision_of(c)
        && p.decision.as_deref() != Some(line)
    {
        out.push(entry(
            None,
            Some(event(EventKind::Decision, By::Nobody, line)),
        ));
    }
}

/// Everything that changed from `old` to `new` (pure: both snapshots carry their own times).
/// With `old` `None`, every subject's current state (dated from when it entered it).
/// [`Timeline::observe`] finds the same changes against its tracks, without `old`.
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
    let old_containers: HashMap<&str, Seen> = old
        .map(|o| {
            o.containers
                .iter()
                .map(|c| (c.id.as_str(), Seen::of(c)))
                .collect()
        })
        .unwrap_or_default();
    let mut key = String::new();
    for r in &new.replicas {
        let level = Level::of_replica(r.observed);
        let k = (r.namespace.as_str(), r.agent.as_str(), r.replica.as_str());
        if old_replicas.get(&k) != Some(&level) {
            replica_key(&mut key, r);
            out.push(Entry {
                kind: Kind::Replica,
                key: key.clone(),
                at_ms: ms_at(new, r.since),
                state: Some(level),
                event: None,
            });
        }
    }
    if let Some(o) = old {
        let now_replicas: HashSet<(&str, &str, &str)> = new
            .replicas
            .iter()
            .map(|r| (r.namespace.as_str(), r.agent.as_str(), r.replica.as_str()))
            .collect();
        for r in &o.replicas {
            let k = (r.namespace.as_str(), r.agent.as_str(), r.replica.as_str());
            if !now_replicas.contains(&k) {
                replica_key(&mut key, r);
                out.push(gone(Kind::Replica, &key, now));
            }
        }
    }
    for c in &new.containers {
        container_changes(new, c, old_containers.get(c.id.as_str()), &mut out);
    }
    if let Some(o) = old {
        let now_containers: HashSet<&str> = new.containers.iter().map(|c| c.id.as_str()).collect();
        for c in &o.containers {
            if !now_containers.contains(c.id.as_str()) {
                out.push(gone(Kind::Container, &c.id, now));
            }
        }
    }
    out
}

fn gone(kind: Kind, key: &str, at_ms: u64) -> Entry {
    Entry {
        kind,
        key: key.to_owned(),
        at_ms,
        state: Some(Level::Gone),
        event: None,
    }
}

/// Every subject's history, bounded by the window and the caps.
#[derive(Debug, Clone)]
pub struct Timeline {
    window: Duration,
    /// By `namespace/agent/replica` (the key is kept once, here).
    replicas: BTreeMap<Box<str>, Track>,
    /// By container id.
    containers: BTreeMap<Box<str>, Track>,
    dirty: bool,
    /// Per source (`store` reads, `events` from NATS, `docker`): its counter and when it last
    /// moved (unix ms), so the page says how old each source's latest word is.
    sources: [(u64, Option<u64>); 3],
    /// Snapshots observed (a subject's `seen` is the last that held it).
    pass: u32,
}

/// The sources whose age [`Timeline::source_ages`] gives, in its order.
pub const SOURCES: [&str; 3] = ["store", "events", "docker"];

/// A track as saved (the file's shape since version 1).
#[derive(Serialize)]
struct SavedTrackRef<'a> {
    kind: Kind,
    key: &'a str,
    label: &'a str,
    service: &'a str,
    segments: &'a VecDeque<(u64, Level)>,
    events: &'a VecDeque<Event>,
    starts: &'a VecDeque<(u64, Option<u64>)>,
    worst_streak: u64,
}

/// A track read back.
#[derive(Deserialize)]
struct SavedTrack {
    kind: Kind,
    key: Box<str>,
    #[serde(default)]
    label: Box<str>,
    #[serde(default)]
    service: Box<str>,
    segments: VecDeque<(u64, Level)>,
    #[serde(default)]
    events: VecDeque<Event>,
    #[serde(default)]
    starts: VecDeque<(u64, Option<u64>)>,
    #[serde(default)]
    worst_streak: u64,
}

/// Every track, serialised as it is iterated (no copy of the history).
struct SavedTracks<'a>(&'a Timeline);

impl Serialize for SavedTracks<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.tracks().map(|(kind, key, t)| SavedTrackRef {
            kind,
            key,
            label: t.label(),
            service: t.service(),
            segments: &t.segments,
            events: t.events(),
            starts: t.starts(),
            worst_streak: t.worst_streak(),
        }))
    }
}

#[derive(Serialize)]
struct SavedRef<'a> {
    schema: u32,
    saved_ms: u64,
    tracks: SavedTracks<'a>,
}

#[derive(Deserialize)]
struct Saved {
    schema: u32,
    saved_ms: u64,
    tracks: Vec<SavedTrack>,
}

impl Timeline {
    /// An empty history over `window`.
    pub fn new(window: Duration) -> Timeline {
        Timeline {
            window,
            replicas: BTreeMap::new(),
            containers: BTreeMap::new(),
            dirty: false,
            sources: [(0, None); 3],
            pass: 0,
        }
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    fn map(&self, kind: Kind) -> &BTreeMap<Box<str>, Track> {
        match kind {
            Kind::Replica => &self.replicas,
            Kind::Container => &self.containers,
        }
    }

    fn map_mut(&mut self, kind: Kind) -> &mut BTreeMap<Box<str>, Track> {
        match kind {
            Kind::Replica => &mut self.replicas,
            Kind::Container => &mut self.containers,
        }
    }

    /// Every track with its kind and key: replicas, then containers, each by key.
    pub fn tracks(&self) -> impl Iterator<Item = (Kind, &str, &Track)> {
        self.tracks_of(Kind::Replica)
            .chain(self.tracks_of(Kind::Container))
    }

    /// The tracks of one kind, by key.
    pub fn tracks_of(&self, kind: Kind) -> impl Iterator<Item = (Kind, &str, &Track)> {
        self.map(kind).iter().map(move |(k, t)| (kind, &**k, t))
    }

    /// How many subjects are kept.
    pub fn len(&self) -> usize {
        self.replicas.len() + self.containers.len()
    }

    /// Whether no subject is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
            let mut t = Track::default();
            let m = t.more_mut();
            m.service = (*service).into();
            m.label = id.as_str().into();
            for (i, ms) in samples.iter().enumerate() {
                m.starts.push_back((i as u64 * 600_000, Some(*ms)));
            }
            self.containers.insert(id.as_str().into(), t);
        }
    }

    /// The replicas' tracks of agent `namespace/agent`.
    pub fn replicas_of<'a>(&'a self, agent: &str) -> impl Iterator<Item = &'a Track> + 'a {
        use std::ops::Bound;
        let from = format!("{agent}/");
        let to = format!("{agent}0"); // '0' follows '/'
        self.replicas
            .range::<str, _>((Bound::Included(from.as_str()), Bound::Excluded(to.as_str())))
            .map(|(_, t)| t)
    }

    /// One track.
    pub fn track(&self, kind: Kind, key: &str) -> Option<&Track> {
        self.map(kind).get(key)
    }

    /// Takes in what changed since the last snapshot observed (found against the tracks
    /// themselves: no snapshot is held), and what only `new` tells (names, starts, streaks,
    /// time to first ready); prunes what left the window at `new`'s time. Returns the changes,
    /// as [`changes`] gives them for the previous snapshot and `new`.
    pub fn observe(&mut self, new: &State) -> Vec<Entry> {
        self.pass = self.pass.wrapping_add(1).max(1);
        let pass = self.pass;
        let now = unix_ms(new.built_wall);
        let mut entries = Vec::new();
        let mut key = String::new();
        for r in &new.replicas {
            replica_key(&mut key, r);
            let level = Level::of_replica(r.observed);
            let before = self.replicas.get_mut(key.as_str()).and_then(|t| {
                t.seen = pass;
                t.level()
            });
            if before != Some(level) {
                let e = Entry {
                    kind: Kind::Replica,
                    key: key.clone(),
                    at_ms: ms_at(new, r.since),
                    state: Some(level),
                    event: None,
                };
                self.apply(&e);
                if let Some(t) = self.replicas.get_mut(key.as_str()) {
                    t.seen = pass;
                }
                entries.push(e);
            }
        }
        // Each container's replicas, in one pass over them (not one per container): whether it
        // has any, and when the first of them was ready.
        let mut in_container: HashMap<&str, (bool, Option<u64>)> = HashMap::new();
        if !new.containers.is_empty() {
            for r in &new.replicas {
                if let Some(id) = r.container_id.as_deref() {
                    let slot = in_container.entry(id).or_default();
                    slot.0 = true;
                    if r.observed == Observed::Ready {
                        let at = ms_at(new, r.since);
                        slot.1 = Some(slot.1.map_or(at, |b| b.min(at)));
                    }
                }
            }
        }
        let mut restarted: Vec<(&str, Event)> = Vec::new();
        for c in &new.containers {
            let prev = self.containers.get_mut(c.id.as_str()).and_then(|t| {
                t.seen = pass;
                t.more.as_mut().and_then(|m| m.last.take())
            });
            let from = entries.len();
            container_changes(new, c, prev.as_ref(), &mut entries);
            for e in &entries[from..] {
                self.apply(e);
                if let Some(ev) = e.event.as_ref().filter(|ev| ev.kind == EventKind::Restart) {
                    restarted.push((c.id.as_str(), ev.clone()));
                }
            }
            let Some(t) = self.containers.get_mut(c.id.as_str()) else {
                continue;
            };
            t.seen = pass;
            let (has_replicas, first_ready) =
                in_container.get(c.id.as_str()).copied().unwrap_or_default();
            let ready_at = first_ready.or_else(|| {
                (c.health.as_deref() == Some("healthy") && !has_replicas)
                    .then(|| c.health_since.map_or(now, |t| ms_at(new, t)))
            });
            let started = c
                .started_at
                .as_deref()
                .and_then(start_ns_of)
                .map(|ns| ns / 1_000_000);
            let m = t.more_mut();
            m.last = Some(Seen::of(c));
            if *m.label != *c.name {
                m.label = c.name.as_str().into();
                m.service = c.service.as_deref().unwrap_or("").into();
            }
            m.worst_streak = m.worst_streak.max(c.failing_streak);
            if let Some(s) = started
                && c.running
                && m.starts.back().is_none_or(|b| b.0 != s)
            {
                push_capped(&mut m.starts, (s, None), MAX_SEGMENTS);
                self.dirty = true;
            }
            if let (Some(last), Some(r)) = (m.starts.back_mut(), ready_at)
                && last.1.is_none()
                && r >= last.0
            {
                last.1 = Some(r - last.0);
                self.dirty = true;
            }
        }
        // Subjects the previous snapshot held and this one does not: gone.
        // A container's last snapshot is forgotten: back, it is first seen again.
        let mut left = Vec::new();
        for kind in [Kind::Replica, Kind::Container] {
            for (k, t) in self.map_mut(kind).iter_mut() {
                if t.seen != 0 && t.seen == pass.wrapping_sub(1) {
                    if let Some(m) = t.more.as_mut() {
                        m.last = None;
                    }
                    left.push(gone(kind, k, now));
                }
            }
        }
        for e in &left {
            self.apply(e);
        }
        entries.extend(left);
        // Replicas inherit their container's restarts (the agent's bar shows them).
        if !restarted.is_empty() {
            for r in &new.replicas {
                let Some(id) = r.container_id.as_deref() else {
                    continue;
                };
                for (_, ev) in restarted.iter().filter(|(c, _)| *c == id) {
                    replica_key(&mut key, r);
                    if let Some(t) = self.replicas.get_mut(key.as_str()) {
                        let m = t.more_mut();
                        m.label = id.into();
                        push_capped(&mut m.events, ev.clone(), MAX_EVENTS);
                    }
                }
            }
        }
        self.note_sources(new);
        self.prune(now);
        entries
    }

    /// Takes in when each of [`SOURCES`] last brought something, from `s`'s counters. Cheap,
    /// and called for every snapshot: a snapshot without a visible change is not observed
    /// otherwise, and the page said "last store read: 17 s ago" while the store was read every
    /// second.
    pub fn note_sources(&mut self, s: &State) {
        let now = unix_ms(s.built_wall);
        let c = &s.counters;
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
    }

    /// Takes in one change (a new track for a subject not kept yet, within
    /// [`MAX_SUBJECTS`]).
    pub fn apply(&mut self, e: &Entry) {
        let full = self.len() >= MAX_SUBJECTS;
        let map = self.map_mut(e.kind);
        if !map.contains_key(e.key.as_str()) {
            if full {
                return;
            }
            map.insert(e.key.as_str().into(), Track::default());
        }
        let Some(t) = map.get_mut(e.key.as_str()) else {
            return;
        };
        if let Some(level) = e.state
            && t.level() != Some(level)
        {
            // A state dated before the last one (a replica first seen, entered earlier) starts
            // where the last one started, never before it.
            let at = t.segments.back().map_or(e.at_ms, |b| e.at_ms.max(b.0));
            push_capped(&mut t.segments, (at, level), MAX_SEGMENTS);
        }
        if let Some(ev) = &e.event {
            push_capped(&mut t.more_mut().events, ev.clone(), MAX_EVENTS);
        }
        self.dirty = true;
    }

    /// Drops what ended before the window began (giving back the room it took); a subject gone
    /// for the whole window goes.
    pub fn prune(&mut self, now_ms: u64) {
        let from = now_ms.saturating_sub(self.window.as_millis() as u64);
        let keep = |t: &mut Track| {
            if t.segments.len() > 1 && t.segments[1].0 <= from {
                while t.segments.len() > 1 && t.segments[1].0 <= from {
                    t.segments.pop_front();
                }
                trim(&mut t.segments);
            }
            if let Some(m) = t.more.as_mut() {
                if m.events.front().is_some_and(|e| e.at_ms < from) {
                    while m.events.front().is_some_and(|e| e.at_ms < from) {
                        m.events.pop_front();
                    }
                    trim(&mut m.events);
                }
                if m.starts.front().is_some_and(|s| s.0 < from) {
                    while m.starts.front().is_some_and(|s| s.0 < from) {
                        m.starts.pop_front();
                    }
                    trim(&mut m.starts);
                }
            }
            !(t.level() == Some(Level::Gone) && t.segments.back().is_some_and(|s| s.0 < from))
        };
        self.replicas.retain(|_, t| keep(t));
        self.containers.retain(|_, t| keep(t));
    }

    /// Whether something changed since the last [`Timeline::take_dirty`].
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The history as saved (JSON).
    pub fn to_json(&self, now_ms: u64) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&SavedRef {
            schema: SCHEMA_VERSION,
            saved_ms: now_ms,
            tracks: SavedTracks(self),
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
        for s in saved.tracks.into_iter().take(MAX_SUBJECTS) {
            let mut track = Track {
                segments: s.segments,
                more: None,
                seen: 0,
            };
            if !s.label.is_empty()
                || !s.service.is_empty()
                || !s.events.is_empty()
                || !s.starts.is_empty()
                || s.worst_streak > 0
            {
                track.more = Some(Box::new(More {
                    label: s.label,
                    service: s.service,
                    events: s.events,
                    starts: s.starts,
                    worst_streak: s.worst_streak,
                    last: None,
                }));
            }
            if track.level().is_some_and(|l| l != Level::Gone) {
                push_capped(
                    &mut track.segments,
                    (saved.saved_ms, Level::Unknown),
                    MAX_SEGMENTS,
                );
            }
            t.map_mut(s.kind).insert(s.key, track);
        }
        t.prune(now_ms);
        Ok(t)
    }
}

/// Appends `item`, dropping the oldest at `cap`; a queue's first item takes room for one only
/// (most subjects never change: one run is all they hold).
fn push_capped<T>(q: &mut VecDeque<T>, item: T, cap: usize) {
    if q.len() >= cap {
        q.pop_front();
    }
    if q.capacity() == 0 {
        q.reserve_exact(1);
    }
    q.push_back(item);
}

/// Gives back a queue's room once pruning left it mostly empty.
fn trim<T>(q: &mut VecDeque<T>) {
    if q.capacity() > 4 && q.capacity() > 2 * q.len() {
        q.shrink_to(q.len().max(1));
    }
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
    // Only the last generation seen: the diff is against the tracks, no snapshot is held.
    let mut last: Option<u64> = None;
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
        if last == Some(next.generation) {
            if let Ok(mut t) = shared.lock() {
                t.note_sources(&next);
            }
            continue;
        }
        if let Ok(mut t) = shared.lock() {
            t.observe(&next);
        }
        last = Some(next.generation);
    }
    if let Some(path) = &file {
        save(&shared, path, &mut failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ContainerHeal, Replica, Source};
    use std::sync::Arc;
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
            container_id: Some(container.into()),
            link: crate::state::Link::Id,
            ..Replica::bare(agent, container, observed, since)
        }
    }

    fn at(base: &State, secs: u64) -> State {
        let mut s = base.clone();
        s.built_at = base.built_at + Duration::from_secs(secs);
        s.built_wall = base.built_wall + Duration::from_secs(secs);
        s.generation = base.generation + secs;
        s
    }

    /// A snapshot with no visible change (same generation) still moves the sources' ages: the
    /// store was read, so "last store read" is now, not the last visible change's time.
    #[test]
    fn a_quiet_snapshot_moves_the_source_ages() {
        let t0 = Instant::now();
        let mut s0 = State::new(t0, Source::Ok, Source::Ok);
        s0.counters.store_reads = 5;
        let mut tl = Timeline::new(DEFAULT_WINDOW);
        tl.observe(&s0);
        let mut quiet = at(&s0, 17);
        quiet.generation = s0.generation;
        quiet.counters.store_reads = 22;
        tl.note_sources(&quiet);
        let now = unix_ms(quiet.built_wall);
        assert_eq!(tl.source_ages(now)[0], Some(0));
        assert_eq!(tl.source_ages(now)[1], None, "no agent event yet");
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
        s0.replicas = vec![replica("worker", "c1", Observed::Ready, t0)]
            .into_iter()
            .map(Arc::new)
            .collect();
        let mut tl = Timeline::new(DEFAULT_WINDOW);
        tl.observe(&s0);
        // 60 s: stale; 70 s: the governor says it restarts; 75 s: started again, 78 s ready.
        let mut s1 = at(&s0, 60);
        Arc::make_mut(&mut s1.replicas[0]).observed = Observed::Stale;
        Arc::make_mut(&mut s1.replicas[0]).since = s1.built_at;
        tl.observe(&s1);
        let mut s2 = at(&s0, 70);
        s2.replicas[0] = s1.replicas[0].clone();
        s2.containers[0].heal = Some(ContainerHeal {
            status: "restarting".into(),
            last_decision: Some("restarting (stale for 10.0s; attempt 1)".into()),
            ..ContainerHeal::default()
        });
        tl.observe(&s2);
        let mut s3 = at(&s0, 75);
        s3.containers[0].started_at = Some("2026-12-07T00:01:15Z".into());
        s3.containers[0].heal = Some(ContainerHeal {
            status: "watching".into(),
            last_decision: Some("restarted in 5.0s".into()),
            restart_starts: vec![start_ns(&s3.containers[0]).unwrap()],
            ..ContainerHeal::default()
        });
        Arc::make_mut(&mut s3.replicas[0]).observed = Observed::Starting;
        Arc::make_mut(&mut s3.replicas[0]).since = s3.built_at;
        tl.observe(&s3);
        let mut s4 = at(&s0, 78);
        s4.containers[0] = s3.containers[0].clone();
        Arc::make_mut(&mut s4.replicas[0]).observed = Observed::Ready;
        Arc::make_mut(&mut s4.replicas[0]).since = s4.built_at;
        tl.observe(&s4);
        // 3600 s: Docker's restart policy (its count moves); 7200 s: a person.
        let mut s5 = at(&s0, 3600);
        s5.containers[0] = container("c1", "2026-12-07T01:00:00Z", 1, "healthy");
        s5.replicas = s4.replicas.clone();
        tl.observe(&s5);
        let mut s6 = at(&s0, 7200);
        s6.containers[0] = container("c1", "2026-12-07T02:00:00Z", 1, "healthy");
        s6.replicas = s4.replicas.clone();
        let entries = tl.observe(&s6);
        assert_eq!(entries.len(), 1, "{entries:?}");

        let c = tl.track(Kind::Container, "c1").unwrap();
        let by: Vec<&str> = c
            .events()
            .iter()
            .filter(|e| e.kind == EventKind::Restart)
            .map(|e| e.by.as_str())
            .collect();
        assert_eq!(by, ["governor", "restart-policy", "api"]);
        assert!(
            c.events()
                .iter()
                .any(|e| e.kind == EventKind::Decision && e.text.starts_with("restarting (stale"))
        );
        let r = tl.track(Kind::Replica, "demo/worker/c1").unwrap();
        let states: Vec<&str> = r.segments.iter().map(|s| s.1.as_str()).collect();
        assert_eq!(states, ["ready", "stale", "starting", "ready"]);
        assert_eq!(
            r.restarts(),
            3,
            "the agent's bar shows its container's restarts"
        );
        assert_eq!(c.starts()[1], (unix_ms(wall0) + 75_000, Some(3_000)));
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
        s.replicas = vec![replica("worker", "c1", Observed::Ready, t0)]
            .into_iter()
            .map(Arc::new)
            .collect();
        let mut tl = Timeline::new(Duration::from_secs(3600));
        tl.observe(&s);
        let wall0 = s.built_wall;
        for i in 1..=2000u64 {
            let mut n = at(&s, 0);
            n.built_at = t0 + Duration::from_secs(i);
            n.built_wall = wall0 + Duration::from_secs(i);
            n.generation = i;
            Arc::make_mut(&mut n.replicas[0]).observed = if i % 2 == 0 {
                Observed::Ready
            } else {
                Observed::Stale
            };
            Arc::make_mut(&mut n.replicas[0]).since = n.built_at;
            tl.observe(&n);
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
        tl.observe(&s0);
        // The governor is restarting it; the engine's watcher shows the new start first.
        let mut s1 = at(&s0, 10);
        s1.containers[0].heal = Some(ContainerHeal {
            status: "restarting".into(),
            last_decision: Some("restarting (stale for 3.0s; attempt 1)".into()),
            ..ContainerHeal::default()
        });
        tl.observe(&s1);
        let mut s2 = at(&s0, 11);
        s2.containers[0].heal = s1.containers[0].heal.clone();
        s2.containers[0].started_at = Some("2026-12-07T00:00:11Z".into());
        let e = tl.observe(&s2);
        assert!(
            e.iter().all(|e| e
                .event
                .as_ref()
                .is_none_or(|ev| ev.kind != EventKind::Restart)),
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
        tl.observe(&s3);
        // Later, a person restarts it; the governor's line still says "restarted".
        let mut s4 = at(&s0, 100);
        s4.containers[0] = s3.containers[0].clone();
        s4.containers[0].started_at = Some("2026-12-07T00:01:40Z".into());
        tl.observe(&s4);
        let mut s5 = at(&s0, 101);
        s5.containers[0] = s4.containers[0].clone();
        tl.observe(&s5);
        let by: Vec<&str> = tl
            .track(Kind::Container, "c1")
            .unwrap()
            .events()
            .iter()
            .filter(|e| e.kind == EventKind::Restart)
            .map(|e| e.by.as_str())
            .collect();
        assert_eq!(by, ["governor", "api"]);
    }

    /// The history diffs each snapshot against its own tracks (it holds no snapshot): what it
    /// finds is what [`changes`] finds between the previous snapshot and the new one, through
    /// state changes, every kind of restart, a decision, a quarantine and its release, and a
    /// replica and a container that leave and come back.
    #[test]
    fn observing_finds_what_the_snapshot_diff_finds() {
        let t0 = Instant::now();
        let mut s0 = State::new(t0, Source::Ok, Source::Ok);
        s0.built_wall = humantime::parse_rfc3339("2026-12-07T00:00:00Z").unwrap();
        s0.containers = vec![
            container("c1", "2026-12-06T23:59:50Z", 0, "healthy"),
            container("c2", "2026-12-06T23:59:50Z", 0, "healthy"),
        ];
        s0.replicas = vec![
            replica("worker", "c1", Observed::Ready, t0),
            replica("other", "c2", Observed::Ready, t0),
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let heal = |status: &str, line: &str, starts: Vec<u64>| {
            Some(ContainerHeal {
                status: status.into(),
                last_decision: Some(line.into()),
                restart_starts: starts,
                ..ContainerHeal::default()
            })
        };
        let mut states = vec![s0.clone()];
        let mut s = at(&s0, 10);
        Arc::make_mut(&mut s.replicas[0]).observed = Observed::Stale;
        Arc::make_mut(&mut s.replicas[0]).since = s.built_at;
        s.containers[0].heal = heal(
            "restarting",
            "restarting (stale for 10.0s; attempt 1)",
            vec![],
        );
        states.push(s.clone());
        let mut s = at(&s, 5);
        s.containers[0].started_at = Some("2026-12-07T00:00:15Z".into());
        states.push(s.clone());
        let mut s = at(&s, 1);
        let ns = start_ns(&s.containers[0]).unwrap();
        s.containers[0].heal = heal("watching", "restarted in 1.0s", vec![ns]);
        Arc::make_mut(&mut s.replicas[0]).observed = Observed::Ready;
        Arc::make_mut(&mut s.replicas[0]).since = s.built_at;
        states.push(s.clone());
        let mut s = at(&s, 60);
        s.containers[1] = container("c2", "2026-12-07T00:01:16Z", 1, "unhealthy");
        s.replicas.pop();
        states.push(s.clone());
        let mut s = at(&s, 60);
        s.containers[0].heal = heal("quarantined", "quarantined: 5 restarts in 1h", vec![ns]);
        s.containers.pop();
        states.push(s.clone());
        let mut s = at(&s, 60);
        s.containers[0].heal = heal("watching", "released after 10m healthy", vec![ns]);
        s.containers[0].started_at = Some("2026-12-07T00:03:16Z".into());
        s.containers
            .push(container("c2", "2026-12-07T00:03:00Z", 1, "healthy"));
        s.replicas.push(Arc::new(replica(
            "other",
            "c2",
            Observed::Starting,
            s.built_at,
        )));
        states.push(s.clone());

        let key = |e: &Entry| format!("{e:?}");
        let mut tl = Timeline::new(DEFAULT_WINDOW);
        let mut last: Option<&State> = None;
        let mut told = 0;
        for s in &states {
            let mut got: Vec<String> = tl.observe(s).iter().map(key).collect();
            let mut want: Vec<String> = changes(last, s).iter().map(key).collect();
            got.sort();
            want.sort();
            assert_eq!(got, want);
            told += got.len();
            last = Some(s);
        }
        assert!(
            told >= 14,
            "the sequence exercises the diff: {told} entries"
        );
        let kinds: Vec<(EventKind, By)> = tl
            .track(Kind::Container, "c1")
            .unwrap()
            .events()
            .iter()
            .map(|e| (e.kind, e.by))
            .collect();
        assert!(
            kinds.contains(&(EventKind::Restart, By::Governor)),
            "{kinds:?}"
        );
        assert!(kinds.contains(&(EventKind::Restart, By::Api)), "{kinds:?}");
        assert!(
            kinds.contains(&(EventKind::Quarantine, By::Nobody)),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&(EventKind::Release, By::Nobody)),
            "{kinds:?}"
        );
        let c2: Vec<Level> = tl
            .track(Kind::Container, "c2")
            .unwrap()
            .segments
            .iter()
            .map(|s| s.1)
            .collect();
        assert_eq!(
            c2,
            [
                Level::Healthy,
                Level::Unhealthy,
                Level::Gone,
                Level::Healthy
            ]
        );
    }

    /// Memory per subject is bounded and given back: a subject that never changes holds one
    /// run (room for one, nothing else on the heap); one that flapped past its cap holds at most
    /// MAX_SEGMENTS runs, and once its flapping left the window, the room it took is returned.
    #[test]
    fn memory_per_subject_is_bounded_and_given_back() {
        let t0 = Instant::now();
        let mut s = State::new(t0, Source::Ok, Source::Ok);
        s.replicas = (0..1000)
            .map(|i| Arc::new(replica(&format!("agent-{i:04}"), "r1", Observed::Ready, t0)))
            .collect();
        let mut tl = Timeline::new(Duration::from_secs(3600));
        tl.observe(&s);
        for i in 1..=30u64 {
            let mut n = at(&s, 0);
            n.built_at = t0 + Duration::from_secs(i);
            n.built_wall = s.built_wall + Duration::from_secs(1);
            n.generation = i;
            tl.observe(&n);
            s = n;
        }
        assert_eq!(tl.len(), 1000);
        for (_, key, t) in tl.tracks() {
            assert_eq!(t.segments.len(), 1, "{key}");
            assert_eq!(
                t.heap_bytes(),
                std::mem::size_of::<(u64, Level)>(),
                "{key}: one run, nothing else"
            );
        }
        // One replica flaps every second for an hour and a half, then stays ready.
        s.replicas.truncate(1);
        let mut tl = Timeline::new(Duration::from_secs(3600));
        tl.observe(&s);
        let flapper = "demo/agent-0000/r1";
        for i in 1..=5400u64 {
            let mut n = at(&s, 0);
            n.built_at = s.built_at + Duration::from_secs(1);
            n.built_wall = s.built_wall + Duration::from_secs(1);
            n.generation = s.generation + 1;
            Arc::make_mut(&mut n.replicas[0]).observed = if i % 2 == 0 {
                Observed::Ready
            } else {
                Observed::Stale
            };
            Arc::make_mut(&mut n.replicas[0]).since = n.built_at;
            tl.observe(&n);
            s = n;
        }
        let t = tl.track(Kind::Replica, flapper).unwrap();
        assert_eq!(t.segments.len(), MAX_SEGMENTS);
        let at_cap = t.heap_bytes();
        assert!(
            at_cap <= MAX_SEGMENTS.next_power_of_two() * std::mem::size_of::<(u64, Level)>(),
            "{at_cap} bytes at the cap"
        );
        // An hour later, steady: the flapping left the window, its room is given back.
        let mut n = at(&s, 0);
        n.built_at = s.built_at + Duration::from_secs(3700);
        n.built_wall = s.built_wall + Duration::from_secs(3700);
        n.generation = s.generation + 1;
        tl.observe(&n);
        let t = tl.track(Kind::Replica, flapper).unwrap();
        assert_eq!(t.segments.len(), 1);
        assert!(t.segments.capacity() <= 4, "{}", t.segments.capacity());
        assert!(t.heap_bytes() <= 4 * std::mem::size_of::<(u64, Level)>());
    }

    /// A history saved before events' words became enums (every field a string, `by` empty
    /// for non-restarts) reads back, and is saved again in the same shape.
    #[test]
    fn a_saved_history_of_the_first_shape_reads_back() {
        let body = br#"{"schema":1,"saved_ms":1796601600000,"tracks":[{"kind":"replica","key":"demo/steady/r1","label":"","service":"","segments":[[1796601000000,"ready"]],"events":[],"starts":[],"worst_streak":0},{"kind":"replica","key":"demo/worker/c1","label":"c1","service":"","segments":[[1796601000000,"ready"],[1796601060000,"stale"],[1796601075000,"ready"]],"events":[{"at_ms":1796601075000,"kind":"restart","by":"governor","text":"restarting (stale for 10.0s; attempt 1)"}],"starts":[],"worst_streak":0},{"kind":"container","key":"c1","label":"demo-c1-1","service":"c1","segments":[[1796601000000,"healthy"]],"events":[{"at_ms":1796601070000,"kind":"decision","by":"","text":"restarting (stale for 10.0s; attempt 1)"},{"at_ms":1796601075000,"kind":"restart","by":"governor","text":"restarting (stale for 10.0s; attempt 1)"}],"starts":[[1796601075000,3000]],"worst_streak":2}]}"#;
        let tl = Timeline::from_json(body, DEFAULT_WINDOW, 1_796_601_600_000).unwrap();
        assert_eq!(tl.len(), 3);
        let c = tl.track(Kind::Container, "c1").unwrap();
        assert_eq!(
            (c.label(), c.service(), c.worst_streak()),
            ("demo-c1-1", "c1", 2)
        );
        assert_eq!(c.events()[0].kind, EventKind::Decision);
        assert_eq!(c.events()[0].by, By::Nobody);
        assert_eq!(c.events()[1].by, By::Governor);
        assert_eq!(c.starts()[0], (1_796_601_075_000, Some(3000)));
        let r = tl.track(Kind::Replica, "demo/worker/c1").unwrap();
        assert_eq!((r.label(), r.restarts()), ("c1", 1));
        assert!(
            tl.track(Kind::Replica, "demo/steady/r1")
                .unwrap()
                .more
                .is_none()
        );
        // Saved again (in key order, as saved): the same shape, the sidecar's downtime marked
        // unknown at the save.
        let again: serde_json::Value =
            serde_json::from_slice(&tl.to_json(1_796_601_600_000).unwrap()).unwrap();
        let mut first: serde_json::Value = serde_json::from_slice(body).unwrap();
        for t in first["tracks"].as_array_mut().unwrap() {
            t["segments"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!([1_796_601_600_000u64, "unknown"]));
        }
        assert_eq!(again, first);
    }
}
