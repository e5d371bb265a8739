//! `GET /api/status`: the snapshot as JSON, with stable field names (the schema is documented
//! in the README). The page renders from the same view, so the two cannot disagree.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use ready_signal::Observed;
use serde::Serialize;

use crate::state::{self, Container, Source, State};

/// Version of this JSON's shape; bumped only on an incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole status, borrowing its text from the snapshot (a view of 10,000 agents allocates
/// little beyond its own vectors).
#[derive(Debug, Serialize)]
pub struct Status<'a> {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// When the snapshot was built, RFC 3339 UTC.
    pub generated_at: String,
    /// Bumped at every visible change.
    pub generation: u64,
    /// Whether the store and Docker can be read.
    pub sources: Sources<'a>,
    /// Namespaces watched.
    pub namespaces: &'a [String],
    /// Counts at a glance.
    pub summary: Summary,
    /// One entry per agent, worst first.
    pub agents: Vec<AgentView<'a>>,
    /// One entry per container, worst first.
    pub containers: Vec<ContainerView<'a>>,
    /// The heal governor.
    pub heal: HealView<'a>,
    /// The sidecar's own container id, when it runs in one.
    pub self_container: Option<&'a str>,
}

/// The sources.
#[derive(Debug, Serialize)]
pub struct Sources<'a> {
    /// The agents' store.
    pub store: SourceView<'a>,
    /// The Docker Engine API.
    pub docker: SourceView<'a>,
}

/// One source.
#[derive(Debug, Serialize)]
pub struct SourceView<'a> {
    /// `ok`, `unknown` or `off`.
    pub status: &'static str,
    /// Why it is unknown.
    pub reason: Option<&'a str>,
    /// What kind of failure made it unknown (`timeout`, `unreachable`, `auth`, `not-found`,
    /// `conflict`, `engine`, `protocol`, `io`, `config`), when one was seen.
    pub error: Option<&'static str>,
    /// For how long it has been unknown, in seconds.
    pub unknown_for_s: Option<f64>,
}

/// Counts.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Agents known.
    pub agents: usize,
    /// Replicas known.
    pub replicas: usize,
    /// Replicas per state (every state present, zero or not).
    pub replicas_by_state: BTreeMap<&'static str, usize>,
    /// Containers watched.
    pub containers: usize,
    /// Containers whose healthcheck says unhealthy.
    pub containers_unhealthy: usize,
}

/// One agent: its replicas folded.
#[derive(Debug, Serialize)]
pub struct AgentView<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// The agent.
    pub agent: &'a str,
    /// The worst state of its replicas.
    pub state: &'static str,
    /// How many replicas are ready.
    pub ready: usize,
    /// How a person should read the agent as a whole: `ready` (every replica ready), `down`
    /// (none ready), `partly down` (some ready, some not), or its one state otherwise
    /// (`starting`, `not-ready`, `unknown` ...). `state` stays the worst replica's.
    pub headline: &'static str,
    /// Its replicas, worst first.
    pub replicas: Vec<ReplicaView<'a>>,
}

/// One replica.
#[derive(Debug, Serialize)]
pub struct ReplicaView<'a> {
    /// The replica.
    pub replica: &'a str,
    /// starting, ready, not-ready, stopping, stale, dead or unknown.
    pub state: &'static str,
    /// Seconds in this state (as seen by the sidecar, or as published when first seen).
    pub state_for_s: f64,
    /// Age of the last heartbeat, seconds, when the sidecar read it (`null` for a replica it
    /// follows by the due index, whose beats are not read while they come on time).
    pub beat_age_s: Option<f64>,
    /// At most this many seconds since the last heartbeat: the age read, or, for a replica
    /// followed by the due index, what the index proves (its last query did not name it late,
    /// so it beat within two intervals before it).
    pub beat_within_s: Option<f64>,
    /// The publishing instance.
    pub instance: Option<&'a str>,
    /// Its epoch (a higher epoch is a newer instance), once the store has been read.
    pub epoch: Option<u64>,
    /// The published reason, or why the state is unknown.
    pub reason: Option<&'a str>,
    /// The linked container's id (set only for an exact link: see `link`).
    pub container_id: Option<&'a str>,
    /// How it is linked to its container: `id` (its record names the container), `host` (the
    /// only watched container with its record's host name), or why not: `ambiguous`,
    /// `not-watched`, `no-match`, `no-identity`, `docker-off`, `pending`.
    pub link: &'static str,
    /// Why it is not linked, one line (null when linked or without Docker). A replica that is not
    /// linked never counts for a container: the heal governor ignores it.
    pub link_cause: Option<String>,
    /// The linked container's name.
    pub container: Option<&'a str>,
    /// The linked container's restart count.
    pub restarts: Option<u64>,
    /// The linked container's health status.
    pub container_health: Option<&'a str>,
    /// The linked container's last health log line.
    pub health_line: Option<&'a str>,
    /// Seconds since that health check ended (Docker's health is up to one interval old).
    pub health_checked_s: Option<f64>,
}

/// One container.
#[derive(Debug, Serialize)]
pub struct ContainerView<'a> {
    /// Full id.
    pub id: &'a str,
    /// Name.
    pub name: &'a str,
    /// Compose project.
    pub project: Option<&'a str>,
    /// Compose service.
    pub service: Option<&'a str>,
    /// Hostname (what replicas link by).
    pub hostname: &'a str,
    /// created, running, restarting, exited, ...
    pub status: &'a str,
    /// Whether it runs.
    pub running: bool,
    /// starting, healthy, unhealthy; null without a healthcheck.
    pub health: Option<&'a str>,
    /// Seconds since the health status was seen to change.
    pub health_for_s: Option<f64>,
    /// Consecutive failed health checks.
    pub failing_streak: u64,
    /// The last line of the last health check's output.
    pub last_health_line: Option<&'a str>,
    /// Docker's restart count.
    pub restart_count: u64,
    /// Exit code, when not running.
    pub exit_code: Option<i64>,
    /// Start time, RFC 3339.
    pub started_at: Option<&'a str>,
    /// Replicas running in it (`agent/replica`).
    pub replicas: Vec<String>,
    /// `ok`, `warn` or `bad`: how a person should read it.
    pub verdict: &'static str,
    /// What the governor says, when it watches it.
    pub heal: Option<ContainerHealView<'a>>,
    /// Whether the governor may restart it, and if not why: `eligible`, or a sentence
    /// (`not eligible: no healthcheck.heal=true label`, `never: the sidecar's own container`,
    /// `healing is off`).
    pub eligibility: String,
    /// Seconds since Docker's last health check ended (how old `health` is), when known.
    pub health_checked_s: Option<f64>,
    /// While quarantined: what releases it, in words (a quarantine has no countdown: it ends
    /// after the container stays healthy long enough).
    pub release_condition: Option<String>,
}

/// The governor on one container.
#[derive(Debug, Serialize)]
pub struct ContainerHealView<'a> {
    /// watching, backoff, restarting, quarantined, ...
    pub status: &'a str,
    /// Restarts in the budget window.
    pub restarts_in_window: u32,
    /// Seconds until a restart is allowed again.
    pub next_allowed_in_s: Option<f64>,
    /// The last decision.
    pub last_decision: Option<&'a str>,
}

/// The governor, stack-wide.
#[derive(Debug, Serialize)]
pub struct HealView<'a> {
    /// off, dry-run or on.
    pub mode: &'static str,
    /// Why every restart is held, when it is.
    pub shared_outage: Option<&'a str>,
    /// Why the governor heals nothing at all, when it refuses (its own container is unknown).
    pub refused: Option<&'a str>,
    /// Couplings between containers refused (`healthcheck.heal.with` naming its own service, an
    /// unknown service, or closing a cycle), one line each.
    pub couplings_refused: &'a [String],
}

/// Every observable state, in the order the summary lists them.
pub const STATES: [Observed; 7] = [
    Observed::Dead,
    Observed::Stale,
    Observed::Unknown,
    Observed::NotReady,
    Observed::Stopping,
    Observed::Starting,
    Observed::Ready,
];

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// RFC 3339 UTC, to the millisecond.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn source_view(s: &Source, now: tokio::time::Instant) -> SourceView<'_> {
    SourceView {
        status: s.as_str(),
        reason: s.reason(),
        error: s.kind().map(|k| k.as_str()),
        unknown_for_s: match s {
            Source::Unknown { since, .. } => Some(secs(now.saturating_duration_since(*since))),
            _ => None,
        },
    }
}

/// How a person should read a container: `bad` (unhealthy, crash-looping or exited with an
/// error), `warn` (starting, paused, restarting, created) or `ok` (healthy, running, or a job that
/// finished with 0).
pub fn container_verdict(c: &Container) -> &'static str {
    if c.health.as_deref() == Some("unhealthy") || c.status == "dead" {
        return "bad";
    }
    if !c.running {
        return match (c.status.as_str(), c.exit_code) {
            ("restarting", _) => "bad",
            ("exited", Some(0)) => "ok",
            ("exited", _) => "bad",
            _ => "warn",
        };
    }
    match (c.health.as_deref(), c.status.as_str()) {
        (Some("starting"), _) | (_, "paused") => "warn",
        _ => "ok",
    }
}

/// An agent's headline: whether it is down, partly down, or what its replicas say.
pub fn headline(worst: &'static str, ready: usize, replicas: usize) -> &'static str {
    if replicas > 0 && ready == replicas {
        "ready"
    } else if ready > 0 {
        "partly down"
    } else if matches!(worst, "stale" | "dead") {
        "down"
    } else {
        worst
    }
}

/// Seconds since container `c`'s last health check ended, at the snapshot's time.
fn checked_ago(s: &State, c: &Container) -> Option<f64> {
    let t = humantime::parse_rfc3339_weak(c.health_checked_at.as_deref()?).ok()?;
    Some(secs(s.built_wall.duration_since(t).unwrap_or_default()))
}

/// What ends container `c`'s quarantine, when it is quarantined.
fn release_condition(s: &State, c: &Container) -> Option<String> {
    if c.heal.as_ref()?.status != "quarantined" {
        return None;
    }
    let after = c
        .labels
        .get(crate::heal::labels::RELEASE)
        .map_or("--heal-release-after (10m by default)", String::as_str);
    let healthy = c.health.as_deref() == Some("healthy")
        || s.replicas_in(&c.id).next().is_some()
            && s.replicas_in(&c.id).all(|r| r.observed == Observed::Ready);
    let now = match (healthy, c.health_since) {
        (true, Some(t)) => format!(
            "healthy for {:.0} s",
            s.built_at.saturating_duration_since(t).as_secs_f64()
        ),
        (true, None) => "healthy now".to_owned(),
        (false, _) => "not healthy now".to_owned(),
    };
    Some(format!(
        "released once healthy for {after} without a break; {now}"
    ))
}

/// Whether the governor may restart container `c`, and if not why.
fn eligibility(s: &State, c: &Container) -> String {
    if s.self_container.as_deref() == Some(c.id.as_str()) {
        return "never: the sidecar's own container".into();
    }
    if s.heal.mode == state::HealMode::Off {
        return "not healed: healing is off (--heal)".into();
    }
    if !crate::heal::labels::opted_in(&c.labels) {
        return format!(
            "not eligible for healing: no {}=true label",
            crate::heal::labels::OPT_IN
        );
    }
    if c.heal
        .as_ref()
        .and_then(|h| h.last_decision.as_deref())
        .is_some_and(|l| l.starts_with("not healed"))
    {
        return "not eligible: its heal labels cannot be read".into();
    }
    "eligible".into()
}

fn verdict_rank(v: &str) -> u8 {
    match v {
        "bad" => 0,
        "warn" => 1,
        _ => 2,
    }
}

impl<'a> Status<'a> {
    /// The view of one snapshot.
    pub fn of(s: &'a State) -> Status<'a> {
        let now = s.built_at;
        let mut by_state: BTreeMap<&'static str, usize> =
            STATES.iter().map(|o| (o.as_str(), 0)).collect();
        let by_id: std::collections::HashMap<&str, &Container> =
            s.containers.iter().map(|c| (c.id.as_str(), c)).collect();
        let mut agents: Vec<AgentView<'a>> = Vec::new();
        for r in &s.replicas {
            *by_state.entry(r.observed.as_str()).or_default() += 1;
            let container = r
                .container_id
                .as_deref()
                .and_then(|id| by_id.get(id).copied());
            let view = ReplicaView {
                replica: &r.replica,
                state: r.observed.as_str(),
                state_for_s: secs(now.saturating_duration_since(r.since)),
                beat_age_s: r.beat_age.map(secs),
                beat_within_s: r
                    .beat_age
                    .or_else(|| s.beat_bound(r).map(|b| now.saturating_duration_since(b)))
                    .map(secs),
                instance: r.instance.as_deref(),
                epoch: r.epoch,
                reason: r.reason.as_deref(),
                container_id: r.container_id.as_deref(),
                link: r.link.as_str(),
                link_cause: r.link.cause(),
                container: container.map(|c| c.name.as_str()),
                restarts: container.map(|c| c.restart_count),
                container_health: container.and_then(|c| c.health.as_deref()),
                health_line: container.and_then(|c| c.last_health_line.as_deref()),
                health_checked_s: container.and_then(|c| checked_ago(s, c)),
            };
            match agents.last_mut() {
                Some(a) if a.namespace == r.namespace && a.agent == r.agent => {
                    a.replicas.push(view)
                }
                _ => agents.push(AgentView {
                    namespace: &r.namespace,
                    agent: &r.agent,
                    state: "",
                    ready: 0,
                    headline: "",
                    replicas: vec![view],
                }),
            }
        }
        let rank = |name: &str| {
            STATES
                .iter()
                .find(|o| o.as_str() == name)
                .map_or(2, |o| state::severity(*o))
        };
        for a in &mut agents {
            a.replicas.sort_by_key(|r| rank(r.state));
            a.state = a.replicas.first().map_or("dead", |r| r.state);
            a.ready = a.replicas.iter().filter(|r| r.state == "ready").count();
            a.headline = headline(a.state, a.ready, a.replicas.len());
        }
        // Sorted by name already (the writer keeps replicas sorted): a stable sort by rank
        // keeps names in order within a rank.
        agents.sort_by_key(|a| rank(a.state));
        let mut containers: Vec<ContainerView<'a>> = s
            .containers
            .iter()
            .map(|c| ContainerView {
                id: &c.id,
                name: &c.name,
                project: c.project.as_deref(),
                service: c.service.as_deref(),
                hostname: &c.hostname,
                status: &c.status,
                running: c.running,
                health: c.health.as_deref(),
                health_for_s: c
                    .health_since
                    .map(|t| secs(now.saturating_duration_since(t))),
                failing_streak: c.failing_streak,
                last_health_line: c.last_health_line.as_deref(),
                restart_count: c.restart_count,
                exit_code: c.exit_code,
                started_at: c.started_at.as_deref(),
                replicas: s
                    .replicas_in(&c.id)
                    .map(|r| format!("{}/{}", r.agent, r.replica))
                    .collect(),
                verdict: container_verdict(c),
                heal: c.heal.as_ref().map(|h| ContainerHealView {
                    status: &h.status,
                    restarts_in_window: h.restarts_in_window,
                    next_allowed_in_s: h.next_allowed_in.map(secs),
                    last_decision: h.last_decision.as_deref(),
                }),
                eligibility: eligibility(s, c),
                release_condition: release_condition(s, c),
                health_checked_s: checked_ago(s, c),
            })
            .collect();
        containers.sort_by_key(|c| (verdict_rank(c.verdict), c.service, c.name));
        Status {
            schema: SCHEMA_VERSION,
            generated_at: rfc3339(s.built_wall),
            generation: s.generation,
            sources: Sources {
                store: source_view(&s.store, now),
                docker: source_view(&s.docker, now),
            },
            namespaces: &s.namespaces,
            summary: Summary {
                agents: agents.len(),
                replicas: s.replicas.len(),
                replicas_by_state: by_state,
                containers: s.containers.len(),
                containers_unhealthy: s
                    .containers
                    .iter()
                    .filter(|c| c.health.as_deref() == Some("unhealthy"))
                    .count(),
            },
            agents,
            containers,
            heal: HealView {
                mode: s.heal.mode.as_str(),
                shared_outage: s.heal.shared_outage.as_deref(),
                refused: s.heal.refused.as_deref(),
                couplings_refused: &s.heal.couplings_refused,
            },
            self_container: s.self_container.as_deref(),
        }
    }
}

/// RFC 3339 UTC of unix milliseconds.
pub fn rfc3339_ms(ms: u64) -> String {
    rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

/// `GET /api/history`: every replica's and container's timeline over the window (schema in
/// `sidecar/HEAL.md`, "History").
#[derive(Debug, Serialize)]
pub struct History<'a> {
    /// [`crate::timeline::SCHEMA_VERSION`].
    pub schema: u32,
    /// The window's length, seconds.
    pub window_s: u64,
    /// The window's start and end (now), RFC 3339 UTC.
    pub from: String,
    /// Now.
    pub to: String,
    /// One per replica, sorted by key (`namespace/agent/replica`).
    pub replicas: Vec<Track<'a>>,
    /// One per container, sorted by id.
    pub containers: Vec<Track<'a>>,
}

/// One subject's timeline.
#[derive(Debug, Serialize)]
pub struct Track<'a> {
    /// `namespace/agent/replica`, or the container id.
    pub key: &'a str,
    /// The agent (`namespace/agent`), for replicas.
    pub agent: Option<&'a str>,
    /// The container's name (containers), or the linked container's id (replicas, once a
    /// restart was seen).
    pub label: &'a str,
    /// Compose service (containers).
    pub service: &'a str,
    /// Share of the window's known time spent up (ready, healthy, running); null when nothing
    /// is known.
    pub uptime: Option<f64>,
    /// Restarts within the window (counted by the sidecar, whoever restarted).
    pub restarts: usize,
    /// States, oldest first: each from its start until the next one's (or now).
    pub segments: Vec<Segment>,
    /// Restarts and the governor's decisions, oldest first.
    pub events: Vec<EventView<'a>>,
}

/// One run of a state.
#[derive(Debug, Serialize)]
pub struct Segment {
    /// When it began, RFC 3339 UTC (clamped to the window's start).
    pub from: String,
    /// The state (`ready`, `stale`, `healthy`, `down`, `gone`, ...).
    pub state: &'static str,
    /// `up`, `degraded`, `down` or `none` (unknown, gone).
    pub tone: &'static str,
}

/// One event.
#[derive(Debug, Serialize)]
pub struct EventView<'a> {
    /// RFC 3339 UTC.
    pub at: String,
    /// `restart`, `decision`, `quarantine` or `release`.
    pub kind: &'a str,
    /// Restarts: `governor`, `restart-policy` or `api`.
    pub by: &'a str,
    /// One line.
    pub text: &'a str,
}

impl<'a> History<'a> {
    /// The view of `t` at the time of snapshot `s`.
    pub fn of(t: &'a crate::timeline::Timeline, s: &State) -> History<'a> {
        use crate::timeline::Kind;
        let to = s
            .built_wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let from = to.saturating_sub(t.window().as_millis() as u64);
        let mut replicas = Vec::new();
        let mut containers = Vec::new();
        for (kind, key, tr) in t.tracks() {
            let view = Track {
                key,
                agent: match kind {
                    Kind::Replica => key.rsplit_once('/').map(|(a, _)| a),
                    Kind::Container => None,
                },
                label: tr.label(),
                service: tr.service(),
                uptime: tr
                    .uptime(from, to)
                    .map(|u| (u * 10_000.0).round() / 10_000.0),
                restarts: tr.restarts(),
                segments: tr
                    .segments
                    .iter()
                    .map(|(at, level)| Segment {
                        from: rfc3339_ms((*at).max(from)),
                        state: level.as_str(),
                        tone: level.tone(),
                    })
                    .collect(),
                events: tr
                    .events()
                    .iter()
                    .map(|e| EventView {
                        at: rfc3339_ms(e.at_ms),
                        kind: e.kind.as_str(),
                        by: e.by.as_str(),
                        text: &e.text,
                    })
                    .collect(),
            };
            match kind {
                Kind::Replica => replicas.push(view),
                Kind::Container => containers.push(view),
            }
        }
        History {
            schema: crate::timeline::SCHEMA_VERSION,
            window_s: t.window().as_secs(),
            from: rfc3339_ms(from),
            to: rfc3339_ms(to),
            replicas,
            containers,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::state::{Link, Replica, Unlinked};
    use std::sync::Arc;
    use tokio::time::Instant;

    /// A replica that is not linked says so in the JSON, with its cause; a linked one says how.
    #[test]
    fn link_and_its_cause_are_in_the_json() {
        let now = Instant::now();
        let mut s = State::new(now, Source::Ok, Source::Ok);
        let replica = |name: &str, link: Link, container: Option<&str>| Replica {
            container_id: container.map(str::to_owned),
            link,
            host: Some("w".into()),
            ..Replica::bare("worker", name, Observed::Stale, now)
        };
        s.replicas = vec![
            replica(
                "w1",
                Link::None(Unlinked::Ambiguous {
                    host: "w".into(),
                    containers: vec!["one-worker-1".into(), "two-worker-1".into()],
                    count: 2,
                }),
                None,
            ),
            replica("w2", Link::Id, Some("abc")),
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let v = serde_json::to_value(Status::of(&s)).unwrap();
        let reps = v["agents"][0]["replicas"].as_array().unwrap();
        assert_eq!(reps[0]["link"], "ambiguous");
        assert_eq!(
            reps[0]["link_cause"],
            "ambiguous: host name w is shared by 2 watched containers (one-worker-1, \
             two-worker-1), and its record names no container id"
        );
        assert_eq!(reps[0]["container_id"], serde_json::Value::Null);
        assert_eq!(reps[1]["link"], "id");
        assert_eq!(reps[1]["link_cause"], serde_json::Value::Null);
        let page = crate::http::page::render(&Status::of(&s));
        assert!(
            page.contains("not linked: ambiguous: host name w is shared"),
            "{page}"
        );
    }
}
