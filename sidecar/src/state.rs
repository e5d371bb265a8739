//! The snapshot every reader sees: what the sidecar knows about the stack at one instant.
//!
//! This is the shared vocabulary of the crate (a leaf: it imports nothing of it but the error
//! kinds). One writer task
//! ([`crate::writer`]) owns the working copy and publishes immutable `Arc<State>` snapshots
//! through a `tokio::sync::watch`; the page, the API, the metrics, the event stream and the heal
//! governor are views of a snapshot, so they cannot disagree.

use std::collections::BTreeMap;
use std::sync::Arc;
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
    /// When the store last came back after failing to be read (`None` if it never failed since
    /// the sidecar started). Evidence observed before it, such as a Docker health check that
    /// failed during the store's outage, says nothing of a container's own health.
    pub store_back_at: Option<Instant>,
    /// Namespaces watched.
    pub namespaces: Vec<String>,
    /// Every known replica of every agent, sorted by namespace, agent, replica. Shared with the
    /// snapshots taken before: a snapshot copies pointers, and the writer copies a replica only
    /// when it changes one (`Arc::make_mut`), so a round that changes nothing allocates nothing
    /// per replica.
    pub replicas: Vec<Arc<Replica>>,
    /// When each part of each namespace's due index last answered a query (see
    /// [`State::beat_bound`]).
    pub index_marks: BTreeMap<String, IndexMarks>,
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
            store_back_at: None,
            namespaces: Vec::new(),
            replicas: Vec::new(),
            index_marks: BTreeMap::new(),
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
            .map(|r| &**r)
    }

    /// The moment `r`'s last beat is known to be at or after: the beat read, or, for a replica
    /// the due index follows, two intervals before the index's last answered query of its part
    /// (a query that did not name it late: its entry is due two intervals after its latest
    /// beat, PROTOCOL.md "The due index"), whichever is later. The governor proves by it that
    /// a restarted container's process writes the record ([`crate::heal::whose`]); the query's
    /// moment is the round's start, so the bound stays on the safe side.
    pub fn beat_bound(&self, r: &Replica) -> Option<Instant> {
        let floor = r
            .indexed
            .then(|| self.index_marks.get(&r.namespace))
            .flatten()
            .and_then(|m| {
                m.answered
                    .get(crate::writer::part_of(m.parts, &r.agent))
                    .copied()
                    .flatten()
            })
            .zip(r.interval)
            .and_then(|(q, i)| q.checked_sub(i * ready_signal::STALE_INTERVALS));
        match (r.beat_at, floor) {
            (Some(b), Some(f)) => Some(b.max(f)),
            (b, f) => b.or(f),
        }
    }
}

/// When each part of a namespace's due index last answered a query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexMarks {
    /// How many parts the namespace has (1 on one server, 64 shards on a Cluster).
    pub parts: usize,
    /// By part: the start of the last round whose query that part answered.
    pub answered: Vec<Option<Instant>>,
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
    /// The container it runs in, when linked (see [`Link`]: never a guess).
    pub container_id: Option<String>,
    /// How it is linked to its container, or why it is not.
    pub link: Link,
    /// The container id its record names (the exact link), when the writer records one.
    pub record_container: Option<String>,
    /// When its publishing instance started, by the store's clock converted to this process's
    /// clock at the read (`None` when the record does not say).
    pub instance_started: Option<Instant>,
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
    /// Followed by the due index: its beats are not read while they come on time, its state
    /// is what it published until the index names it late (`beat_age` is then unknown; see
    /// [`State::beat_bound`]).
    pub indexed: bool,
}

#[cfg(test)]
impl Replica {
    /// A replica of `agent` in namespace `demo`, `observed` since `since`, with nothing else
    /// known (no record fields, not linked yet): each test sets what it is about.
    pub(crate) fn bare(agent: &str, replica: &str, observed: Observed, since: Instant) -> Replica {
        Replica {
            namespace: "demo".into(),
            agent: agent.into(),
            replica: replica.into(),
            observed,
            since,
            beat_age: None,
            instance: None,
            epoch: None,
            reason: None,
            container_id: None,
            link: Link::Pending,
            record_container: None,
            instance_started: None,
            published: None,
            beat_at: None,
            interval: None,
            ttl: None,
            host: None,
            indexed: false,
        }
    }
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
    /// When its last health check ended (`State.Health.Log`'s last `End`, RFC 3339): how old
    /// `health` is.
    pub health_checked_at: Option<String>,
    /// Instance ids of agents seen linked to it since its current start (bounded).
    pub instances: Vec<String>,
    /// Instance ids seen linked to it before its current start: its predecessors' records, which
    /// never count against the process that runs now (bounded).
    pub earlier_instances: Vec<String>,
    /// `Config.StopTimeout`, seconds, when set.
    pub stop_timeout: Option<i64>,
    /// `Config.Healthcheck.StartPeriod`, when set.
    pub start_period: Option<Duration>,
    /// `HostConfig.NetworkMode` (`container:<id>` when it joins another's network namespace, as
    /// Compose's `network_mode: service:NAME` does).
    pub network_mode: Option<String>,
    /// What the heal governor says about it, when it watches it.
    pub heal: Option<ContainerHeal>,
}

/// How a replica is tied to the container it runs in. Decisions act on exact links only; the
/// rule is in `writer/link.rs`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Link {
    /// By the container id its record names.
    Id,
    /// By its record's host name, which exactly one watched container has (a writer that
    /// records no container id).
    Host,
    /// Not linked, and why.
    None(Unlinked),
    /// Not judged yet (a replica the writer has not linked since it appeared).
    #[default]
    Pending,
}

/// Why a replica is not linked to a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unlinked {
    /// The sidecar does not watch Docker.
    NoDocker,
    /// Its record names a container that is not among the watched ones (its short id).
    NotWatched(String),
    /// No container id in its record, and its host name is shared by several watched
    /// containers (their names, a few at most, and how many there are).
    Ambiguous {
        /// The record's host name.
        host: String,
        /// Names of the containers that have it (at most [`Unlinked::MAX_NAMED`]).
        containers: Vec<String>,
        /// How many watched containers have it.
        count: usize,
    },
    /// No container id in its record, and no watched container has its host name.
    NoMatch(String),
    /// Its record names neither a container nor a host (or no record has been read yet).
    NoIdentity,
}

impl Unlinked {
    /// Containers named in an ambiguity, at most.
    pub const MAX_NAMED: usize = 4;
}

impl Link {
    /// Whether the link is exact (by container id, or by a host name only one watched container
    /// has): only such a link lets a replica's state count for its container.
    pub fn is_exact(&self) -> bool {
        matches!(self, Link::Id | Link::Host)
    }

    /// A fixed word: `id`, `host`, `docker-off`, `not-watched`, `ambiguous`, `no-match`,
    /// `no-identity`, `pending`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Link::Id => "id",
            Link::Host => "host",
            Link::Pending => "pending",
            Link::None(u) => match u {
                Unlinked::NoDocker => "docker-off",
                Unlinked::NotWatched(_) => "not-watched",
                Unlinked::Ambiguous { .. } => "ambiguous",
                Unlinked::NoMatch(_) => "no-match",
                Unlinked::NoIdentity => "no-identity",
            },
        }
    }

    /// Why it is not linked, one line (`None` when linked, pending or without Docker).
    pub fn cause(&self) -> Option<String> {
        let Link::None(u) = self else { return None };
        Some(match u {
            Unlinked::NoDocker => return None,
            Unlinked::NotWatched(id) => {
                format!("its record names container {id}, which is not watched")
            }
            Unlinked::Ambiguous {
                host,
                containers,
                count,
            } => {
                let more = count.saturating_sub(containers.len());
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                format!(
                    "ambiguous: host name {host} is shared by {count} watched containers ({}{more}), and its record names no container id",
                    containers.join(", ")
                )
            }
            Unlinked::NoMatch(host) => {
                format!("no watched container has host name {host}")
            }
            Unlinked::NoIdentity => "its record names no container and no host".to_owned(),
        })
    }
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
    /// When the governor heals nothing at all (its own container cannot be found): why.
    pub refused: Option<String>,
    /// Decisions taken since the sidecar started, by service, decision and why (fixed words).
    pub decisions: Vec<HealCount>,
    /// Couplings between containers refused (a `healthcheck.heal.with` naming its own service,
    /// an unknown service, or closing a cycle), one line each.
    pub couplings_refused: Vec<String>,
}

/// A count of one kind of decision, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealCount {
    /// Compose project (empty outside Compose).
    pub project: String,
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
    /// The starts its recent restarts by the governor produced (Docker's `StartedAt`, Unix
    /// nanoseconds), oldest first: the key that tells a governor's restart from another's.
    pub restart_starts: Vec<u64>,
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
