//! The snapshot every reader sees: what the sidecar knows about the stack at one instant.
//!
//! This is the shared vocabulary of the crate (a leaf: it imports nothing of it but the error
//! kinds). One writer task
//! ([`crate::writer`]) owns the working copy and publishes immutable `Arc<State>` snapshots
//! through a `tokio::sync::watch`; the page, the API, the metrics, the event stream and the heal
//! governor are views of a snapshot, so they cannot disagree.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use ready_signal::Observed;
use serde::Serialize;
use tokio::time::Instant;

use crate::error::ErrorKind;

/// Everything known at `built_at`.
#[derive(Debug, Clone)]
pub struct State {
    /// When this snapshot was built (monotonic; for ages and deadlines).
    pub built_at: Instant,
    /// The same moment on the wall clock (for display only).
    pub built_wall: SystemTime,
    /// Bumped whenever something a person would notice changed (a state, a source, a container's
    /// health); not on a mere beat-age refresh. Event streams send on a new generation.
    pub generation: u64,
    /// The agents' store (Redis, NATS and the file backend).
    pub store: Source,
    /// The Docker Engine API.
    pub docker: Source,
    /// Namespaces watched.
    pub namespaces: Vec<String>,
    /// Every known replica of every agent, sorted by namespace, agent, replica.
    pub replicas: Vec<Replica>,
    /// Every container of the watched Compose project(s), sorted by service then name.
    pub containers: Vec<Container>,
    /// What the heal governor is doing (filled by `heal`, through [`crate::writer::Change::Heal`]).
    pub heal: HealSummary,
    /// The sidecar's own container, when it runs in one it can find (never to be healed).
    pub self_container: Option<String>,
    /// Counters of the sidecar's own work, for `/metrics`.
    pub counters: Counters,
}

impl State {
    /// An empty snapshot at `now`: nothing seen yet, both sources as given.
    pub fn new(now: Instant, store: Source, docker: Source) -> State {
        State {
            built_at: now,
            built_wall: SystemTime::now(),
            generation: 0,
            store,
            docker,
            namespaces: Vec::new(),
            replicas: Vec::new(),
            containers: Vec::new(),
            heal: HealSummary::default(),
            self_container: None,
            counters: Counters::default(),
        }
    }

    /// The container a replica runs in, when linked.
    pub fn container_of(&self, replica: &Replica) -> Option<&Container> {
        let id = replica.container_id.as_deref()?;
        self.containers.iter().find(|c| c.id == id)
    }

    /// The replicas that run in container `id`.
    pub fn replicas_in<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Replica> + 'a {
        self.replicas
            .iter()
            .filter(move |r| r.container_id.as_deref() == Some(id))
    }
}

/// Whether a source of truth can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Not configured: the sidecar was told not to look (or there is nothing to look at).
    Off,
    /// Read successfully at the last attempt.
    Ok,
    /// The last attempt failed; what it holds is not known. Never "dead".
    Unknown {
        /// Why, one line.
        reason: String,
        /// What kind of failure, when one was seen (none before the first attempt).
        kind: Option<ErrorKind>,
        /// Since when it has been failing.
        since: Instant,
    },
}

impl Source {
    /// `off`, `ok` or `unknown`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Off => "off",
            Source::Ok => "ok",
            Source::Unknown { .. } => "unknown",
        }
    }

    /// The kind of the last failure, when unknown after one.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Source::Unknown { kind, .. } => *kind,
            _ => None,
        }
    }

    /// The failure reason, when unknown.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Source::Unknown { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// True when the source was read at the last attempt.
    pub fn is_ok(&self) -> bool {
        matches!(self, Source::Ok)
    }
}

/// One replica of one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    /// The namespace.
    pub namespace: String,
    /// The agent.
    pub agent: String,
    /// The replica (by default the container's hostname).
    pub replica: String,
    /// What it is now (published state, or stale / dead / unknown).
    pub observed: Observed,
    /// When `observed` last changed.
    pub since: Instant,
    /// Age of the last heartbeat at `State::built_at`, when there is a record.
    pub beat_age: Option<Duration>,
    /// The publishing process's instance id.
    pub instance: Option<String>,
    /// The instance's epoch as the store last gave it (a higher epoch is a newer instance).
    pub epoch: Option<u64>,
    /// The published reason (not-ready), or why the state is unknown.
    pub reason: Option<String>,
    /// The container it runs in, when one is linked.
    pub container_id: Option<String>,
    /// What the agent published last (kept to re-judge freshness between reads).
    pub published: Option<ready_signal::State>,
    /// When the last heartbeat was written, on this process's clock.
    pub beat_at: Option<Instant>,
    /// Heartbeat interval the publisher promised.
    pub interval: Option<Duration>,
    /// Time to live of its record.
    pub ttl: Option<Duration>,
    /// Host name in the record (the container's hostname under Docker).
    pub host: Option<String>,
}

/// One container of a watched Compose project.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    /// Full container id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// `com.docker.compose.project`.
    pub project: Option<String>,
    /// `com.docker.compose.service`.
    pub service: Option<String>,
    /// `Config.Hostname` (what a replica defaults to).
    pub hostname: String,
    /// All labels.
    pub labels: BTreeMap<String, String>,
    /// `State.Status`: created, running, paused, restarting, removing, exited, dead.
    pub status: String,
    /// `State.Running`.
    pub running: bool,
    /// `State.Health.Status` when the container has a healthcheck: starting, healthy, unhealthy.
    pub health: Option<String>,
    /// When `health` was last seen to change (first seen, at worst).
    pub health_since: Option<Instant>,
    /// `State.Health.FailingStreak`.
    pub failing_streak: u64,
    /// The last line of the last health log entry.
    pub last_health_line: Option<String>,
    /// `RestartCount`.
    pub restart_count: u64,
    /// `State.ExitCode`, when not running.
    pub exit_code: Option<i64>,
    /// `State.StartedAt`, RFC 3339 as Docker reports it.
    pub started_at: Option<String>,
    /// `Config.StopTimeout`, seconds, when set.
    pub stop_timeout: Option<i64>,
    /// `Config.Healthcheck.StartPeriod`, when set.
    pub start_period: Option<Duration>,
    /// What the heal governor says about it, when it watches it.
    pub heal: Option<ContainerHeal>,
}

/// Whether and how the governor acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealMode {
    /// Never restarts anything (the default).
    #[default]
    Off,
    /// Decides and reports, does nothing.
    DryRun,
    /// Restarts.
    On,
}

impl HealMode {
    /// `off`, `dry-run` or `on`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealMode::Off => "off",
            HealMode::DryRun => "dry-run",
            HealMode::On => "on",
        }
    }
}

/// The governor's stack-wide status.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HealSummary {
    /// Off, dry-run or on.
    pub mode: HealMode,
    /// When the shared-outage brake holds every restart: why, one line.
    pub shared_outage: Option<String>,
    /// Decisions taken since the sidecar started, by service, decision and why (fixed words).
    pub decisions: Vec<HealCount>,
}

/// A count of one kind of decision, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealCount {
    /// Compose service (or container name when none).
    pub service: String,
    /// `restart`, `skip`, `quarantine`, `release`.
    pub decision: String,
    /// A fixed word saying why (never free text: it is a label).
    pub why: String,
    /// How many times.
    pub count: u64,
}

/// What the governor says about one container.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerHeal {
    /// watching, backoff, restarting, quarantined, ...
    pub status: String,
    /// Restarts within the budget window.
    pub restarts_in_window: u32,
    /// Time until the next restart is allowed, during a backoff.
    pub next_allowed_in: Option<Duration>,
    /// The last decision, one line.
    pub last_decision: Option<String>,
}

/// The sidecar's own work, counted since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Bulk reads of the store attempted.
    pub store_reads: u64,
    /// Of which failed.
    pub store_errors: u64,
    /// Agent events received from NATS.
    pub store_events: u64,
    /// Docker API calls (list, inspect) attempted.
    pub docker_calls: u64,
    /// Of which failed.
    pub docker_errors: u64,
    /// Docker events received.
    pub docker_events: u64,
}

/// How bad a replica's state is, worst first (the page sorts by it).
pub fn severity(o: Observed) -> u8 {
    match o {
        Observed::Dead => 0,
        Observed::Stale => 1,
        Observed::Unknown => 2,
        Observed::NotReady => 3,
        Observed::Stopping => 4,
        Observed::Starting => 5,
        Observed::Ready => 6,
        _ => 2,
    }
}
