//! The heal governor (issue 14): restarts frozen containers with backoff, a budget and
//! quarantine; never itself, never one-shot jobs, never on a shared outage. Off unless the
//! sidecar runs with `--heal` (`--heal=dry-run` decides and reports, and does nothing).
//!
//! Layout, a pure policy and thin I/O:
//! - [`policy`]: `decide(&Policy, &Input, &History, now) -> Vec<Decision>`, a pure function;
//!   every rule of the issue is one of its unit tests.
//! - [`history`]: restarts, quarantine and earn-back per container (a leaf).
//! - [`labels`]: the `healthcheck.heal*` labels, parsed once.
//! - [`selfid`]: finding the sidecar's own container; [`identity`]: refusing to heal when it
//!   runs in one whose id it cannot find.
//! - [`statefile`]: the history on disk (default place, durable writes).
//! - [`act`]: the loop that reads snapshots, decides, restarts, and reports.
//!
//! This module turns a [`State`] snapshot into the policy's [`policy::Input`] ([`observe`]).

pub mod act;
pub mod dependents;
pub mod history;
pub mod hooks;
pub mod identity;
pub mod labels;
pub mod policy;
#[cfg(test)]
mod scenarios;
pub mod selfid;
pub mod statefile;

use std::time::{Duration, SystemTime};

use ready_signal::Observed;
use tokio::time::Instant;

use crate::state::{Replica, State, severity};
use policy::{Condition, Input, Observation, Policy, Rules};

/// The governor's configuration (from the sidecar's flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// Stack-wide policy (mode, shared-outage brake, restarts under way at once).
    pub policy: Policy,
    /// Rules for containers whose labels do not say otherwise.
    pub defaults: Rules,
    /// How often decisions are re-evaluated when nothing changes (a backoff ends on its own).
    pub tick: Duration,
    /// The sidecar's own container id (see [`selfid::find`]).
    pub self_id: Option<String>,
    /// Why the governor must heal nothing: it runs in a container whose id it cannot find (see
    /// [`identity`]). Said in the log, on the page and in a metric.
    pub refused: Option<String>,
    /// Where the history is saved at every change and read at start (by default a place of the
    /// sidecar's own, see [`statefile::default_path`]; on a volume, it survives the sidecar's
    /// container being recreated); `None`: Docker's events only.
    pub state_file: Option<std::path::PathBuf>,
    /// Notifications and the self-watch's progress mark (issue 21); empty by default.
    pub hooks: hooks::Hooks,
}

impl Config {
    /// A configuration with the defaults, in `mode`, finding its own container.
    pub fn new(mode: policy::Mode) -> Config {
        let me = identity::detect();
        Config {
            policy: Policy {
                mode,
                ..Policy::default()
            },
            defaults: Rules::default(),
            tick: Duration::from_millis(500),
            self_id: me.id().map(str::to_owned),
            refused: me.refusal(),
            state_file: None,
            hooks: hooks::Hooks::default(),
        }
    }
}

/// A configuration that cannot work, naming the flag.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--{flag}: {problem}")]
pub struct ConfigError {
    /// The flag, without its dashes.
    pub flag: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl Config {
    /// Checks the settings against each other: every wait more than zero, a budget of at least one,
    /// a share within (0, 1], at least one restart under way at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |flag, problem: &str| {
            Err(ConfigError {
                flag,
                problem: problem.to_owned(),
            })
        };
        let r = &self.defaults;
        for (flag, d) in [
            ("heal-after", r.heal_after),
            ("heal-backoff", r.backoff),
            ("heal-window", r.window),
            ("heal-release-after", r.release_after),
            ("heal-earn-back-after", r.earn_back_after),
        ] {
            if d.is_zero() {
                return bad(flag, "must be more than zero");
            }
        }
        for (flag, d) in [
            ("heal-after", r.heal_after),
            ("heal-backoff", r.backoff),
            ("heal-backoff-max", r.backoff_max),
            ("heal-window", r.window),
            ("heal-release-after", r.release_after),
            ("heal-earn-back-after", r.earn_back_after),
        ] {
            if d > labels::MAX_DURATION {
                return bad(
                    flag,
                    &format!("must be at most {}", labels::MAX_DURATION_TEXT),
                );
            }
        }
        if r.backoff_max < r.backoff {
            return bad("heal-backoff-max", "shorter than --heal-backoff");
        }
        if r.start_grace.is_some_and(|g| g.is_zero()) {
            return bad("heal-start-grace", "must be more than zero");
        }
        if r.budget == 0 {
            return bad(
                "heal-budget",
                "must be at least 1 (a budget of 0 quarantines at once)",
            );
        }
        let share = self.policy.outage_share;
        if !(share > 0.0 && share <= 1.0) {
            return bad("heal-outage-share", "must be more than 0 and at most 1");
        }
        if self.policy.max_in_flight == 0 {
            return bad("heal-max-in-flight", "must be at least 1");
        }
        Ok(())
    }
}

/// The NATS subject of heal events: `healthcheck.heal.{project}.{service}` (`_` for an empty
/// project; characters NATS does not allow in a token become `_`).
pub fn subject(project: &str, service: &str) -> String {
    let token = |s: &str| {
        let t: String = s
            .chars()
            .map(|c| {
                if c.is_whitespace() || matches!(c, '.' | '*' | '>') {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        if t.is_empty() { "_".to_owned() } else { t }
    };
    format!("healthcheck.heal.{}.{}", token(project), token(service))
}

/// Where two clocks meet (the store's, converted at the read, and Docker's `StartedAt`, converted
/// through this host's wall clock), events closer than this cannot be ordered: the sidecar then
/// does not count a record against the process that runs now.
pub const CLOCK_MARGIN: Duration = Duration::from_secs(1);

/// The TTL assumed for a start grace when no linked record states one (the ready-signal
/// default: three one-second beats).
const FALLBACK_TTL: Duration = Duration::from_secs(3);

/// Whose record a linked replica holds, relative to its container's current start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// Written by the process that runs now (or no start is known: as before issue 20).
    Own,
    /// Written by a process that ran before the container's current start.
    Predecessor,
    /// Cannot tell (within the clock margin): not counted against the process that runs now.
    Unsure,
}

/// Whose record `r` is, for a container that started at `start` and whose earlier starts ran
/// `earlier` instances; `beat` is the moment its last beat is known to be at or after
/// ([`State::beat_bound`]: the beat read, or what the due index proves). Proof of the current
/// process first: a beat, or an instance start, after the start (a process that ran before a
/// restart cannot write after it). Then the clock-free rule: an instance seen in this container
/// before its current start. Then the clocks: an instance started, or a record last written,
/// before the start.
pub fn whose(
    r: &Replica,
    beat: Option<Instant>,
    earlier: &[String],
    start: Option<Instant>,
) -> Whose {
    let Some(start) = start else {
        return Whose::Own;
    };
    let after = |t: Option<Instant>| t.is_some_and(|t| t > start + CLOCK_MARGIN);
    let before = |t: Option<Instant>| t.is_some_and(|t| t + CLOCK_MARGIN < start);
    if after(beat) || after(r.instance_started) {
        Whose::Own
    } else if r.instance.as_ref().is_some_and(|i| earlier.contains(i))
        || before(r.instance_started)
        || before(beat)
    {
        Whose::Predecessor
    } else {
        Whose::Unsure
    }
}

/// An RFC 3339 time Docker reported, on this process's monotonic clock (`wall` is `now` on the
/// wall clock; the engine runs on this host, so their clocks agree).
fn docker_time(t: Option<&str>, now: Instant, wall: SystemTime) -> Option<Instant> {
    let t = humantime::parse_rfc3339_weak(t?).ok()?;
    match wall.duration_since(t) {
        Ok(ago) => now.checked_sub(ago),
        // Slightly in the future (clock granularity): now.
        Err(_) => Some(now),
    }
}

fn condition_of(o: Observed) -> Condition {
    match o {
        Observed::Ready => Condition::Healthy,
        Observed::Starting => Condition::Starting,
        Observed::NotReady => Condition::NotReady,
        Observed::Stopping => Condition::Stopping,
        Observed::Stale => Condition::Stale,
        Observed::Dead => Condition::Dead,
        _ => Condition::Unknown,
    }
}

/// The policy's view of a snapshot at `now` (`wall` is the same instant on the wall clock, for
/// Docker's times), and the containers whose heal labels cannot be used.
///
/// Each container's condition is judged on evidence by its age:
/// - only replicas linked exactly count (an ambiguous or missing link counts for nothing);
/// - only records of the process that runs now count ([`whose`]); a container whose agent has
///   written nothing since it (re)started is `starting` for its start grace, then `silent`;
/// - Docker's `unhealthy` is as old as its last check: one that ended before the store came back
///   from an outage says nothing, and one older than the moment the agent's own record turned
///   `ready` is outweighed by it.
pub fn observe(
    state: &State,
    cfg: &Config,
    now: Instant,
    wall: SystemTime,
) -> (Input, Vec<(String, labels::LabelError)>) {
    let mut bad_labels = Vec::new();
    let mut containers = Vec::with_capacity(state.containers.len());
    // Replicas by the container they are linked to exactly (one pass, not one per container).
    let mut linked_to: std::collections::HashMap<&str, Vec<&Replica>> =
        std::collections::HashMap::new();
    for r in &state.replicas {
        if let Some(id) = r.container_id.as_deref()
            && r.link.is_exact()
        {
            linked_to.entry(id).or_default().push(r);
        }
    }
    // Host names of stale or dead records that could not be linked for being shared: each
    // container with such a host name is told why it is not restarted for them.
    let ambiguous_bad: std::collections::HashSet<&str> = state
        .replicas
        .iter()
        .filter(|r| matches!(r.observed, Observed::Stale | Observed::Dead))
        .filter_map(|r| match &r.link {
            crate::state::Link::None(crate::state::Unlinked::Ambiguous { host, .. }) => {
                Some(host.as_str())
            }
            _ => None,
        })
        .collect();
    for c in &state.containers {
        let mut opted_in = labels::opted_in(&c.labels);
        let rules = match labels::rules(&c.labels, cfg.defaults) {
            Ok(r) => r,
            Err(e) => {
                if opted_in {
                    bad_labels.push((c.id.clone(), e));
                }
                opted_in = false;
                cfg.defaults
            }
        };
        let start = docker_time(c.started_at.as_deref(), now, wall);
        let started_at = start.unwrap_or(state.built_at);
        let linked: &[&Replica] = linked_to.get(c.id.as_str()).map_or(&[], Vec::as_slice);
        // The agent's word first (worst record of the process that runs now).
        let worst = linked
            .iter()
            .filter(|r| whose(r, state.beat_bound(r), &c.earlier_instances, start) == Whose::Own)
            .min_by_key(|r| severity(r.observed));
        let (mut condition, mut since) = match (worst, start) {
            (Some(r), _) => (condition_of(r.observed), r.since),
            // Records, none its own: the new process has not written yet.
            (None, Some(start)) if !linked.is_empty() => {
                let ttl = linked.iter().filter_map(|r| r.ttl).max();
                let grace = rules
                    .start_grace
                    .unwrap_or(ttl.unwrap_or(FALLBACK_TTL) + rules.heal_after);
                if now < start + grace {
                    (Condition::Starting, start)
                } else {
                    (Condition::Silent, start)
                }
            }
            _ => (Condition::Healthy, started_at),
        };
        let health_since = c.health_since.unwrap_or(started_at);
        let checked = docker_time(c.health_checked_at.as_deref(), now, wall);
        // Docker's verdict dates from its last check; one taken before the store came back from
        // an outage judged the outage, not the container.
        let before_store_back = state
            .store_back_at
            .is_some_and(|back| checked.is_some_and(|t| t < back));
        let own_starting_or_ready = worst.is_some() || linked.is_empty();
        // No record of its own, but one of its host name is another container's or ambiguous:
        // its check (`replica=self`) reads that record, so Docker's verdict is about another
        // process (replicas of a scaled service with a fixed `hostname:` share one record key).
        let foreign = linked.is_empty()
            && state.replicas.iter().any(|r| {
                (r.replica == c.hostname || r.host.as_deref() == Some(c.hostname.as_str()))
                    && match &r.link {
                        crate::state::Link::None(crate::state::Unlinked::Ambiguous { .. }) => true,
                        l if l.is_exact() => r.container_id.as_deref() != Some(c.id.as_str()),
                        _ => false,
                    }
            });
        let mut foreign_record = false;
        match (condition, c.health.as_deref()) {
            (Condition::Healthy | Condition::Starting, Some("unhealthy")) if foreign => {
                foreign_record = true;
            }
            (Condition::Healthy | Condition::Starting, Some("unhealthy"))
                if own_starting_or_ready && !before_store_back =>
            {
                match worst {
                    // Ready since after Docker's last check: the newer word wins.
                    Some(r)
                        if r.observed == Observed::Ready
                            && checked.is_some_and(|t| t < r.since) => {}
                    // Starting is honest only within the start period (the policy checks
                    // that); an agent still "starting" while Docker has given up on it, or ready
                    // while Docker's later checks fail, is unhealthy.
                    Some(r) => {
                        condition = Condition::Unhealthy;
                        since = health_since.max(r.since.min(now));
                    }
                    None => {
                        condition = Condition::Unhealthy;
                        since = health_since;
                    }
                }
            }
            (Condition::Healthy, Some("starting")) if worst.is_none() && linked.is_empty() => {
                condition = Condition::Starting;
                since = health_since;
            }
            _ => {}
        }
        containers.push(Observation {
            id: c.id.clone(),
            name: c.name.clone(),
            project: c.project.clone().unwrap_or_default(),
            service: c.service.clone().unwrap_or_else(|| c.name.clone()),
            opted_in,
            running: c.running,
            condition,
            condition_since: since,
            started_at,
            start_period: c.start_period.unwrap_or(Duration::ZERO),
            // Filled by the executor, which remembers what it saw since the container started.
            ready_since_start: false,
            unlinked_bad: ambiguous_bad.contains(c.hostname.as_str()),
            foreign_record,
            // Filled by the executor, which knows the start its restart produced.
            awaiting_start: false,
            rules,
        });
    }
    let self_id = state.self_container.clone().or_else(|| cfg.self_id.clone());
    let input = Input {
        containers,
        self_id,
        store_unknown: matches!(state.store, crate::state::Source::Unknown { .. }),
    };
    (input, bad_labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::state::{Container, Replica, Source};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    /// Settings that cannot work are refused, naming the flag; the defaults are valid.
    #[test]
    fn config_validation() {
        let ok = Config {
            self_id: None,
            refused: None,
            ..Config::new(policy::Mode::On)
        };
        assert_eq!(ok.validate(), Ok(()));
        let mut c = ok.clone();
        c.defaults.budget = 0;
        assert_eq!(c.validate().unwrap_err().flag, "heal-budget");
        let mut c = ok.clone();
        c.defaults.backoff_max = Duration::from_secs(1);
        assert_eq!(c.validate().unwrap_err().flag, "heal-backoff-max");
        let mut c = ok.clone();
        c.policy.outage_share = 1.5;
        assert_eq!(c.validate().unwrap_err().flag, "heal-outage-share");
        let mut c = ok.clone();
        c.defaults.start_grace = Some(Duration::ZERO);
        assert_eq!(c.validate().unwrap_err().flag, "heal-start-grace");
        let mut c = ok.clone();
        c.defaults.heal_after = Duration::ZERO;
        assert_eq!(c.validate().unwrap_err().flag, "heal-after");
        let mut c = ok;
        c.defaults.backoff_max = humantime::parse_duration("300000000000y").unwrap();
        assert_eq!(c.validate().unwrap_err().flag, "heal-backoff-max");
    }

    /// Subjects are built from the project and service, never broken by a dot or a wildcard.
    #[test]
    fn subject_tokens() {
        assert_eq!(subject("demo", "agent-a"), "healthcheck.heal.demo.agent-a");
        assert_eq!(subject("", "a.b*"), "healthcheck.heal._.a_b_");
    }

    fn container(
        id: &str,
        labels: &[(&str, &str)],
        health: Option<&str>,
        since: Instant,
    ) -> Container {
        Container {
            id: id.into(),
            name: format!("demo-{id}-1"),
            project: Some("demo".into()),
            service: Some(id.into()),
            hostname: id.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            status: "running".into(),
            running: true,
            health: health.map(str::to_owned),
            health_since: Some(since),
            failing_streak: 0,
            last_health_line: None,
            restart_count: 0,
            exit_code: None,
            started_at: Some("2026-11-25T10:00:00.5Z".into()),
            health_checked_at: None,
            instances: Vec::new(),
            earlier_instances: Vec::new(),
            stop_timeout: None,
            network_mode: None,
            start_period: Some(Duration::from_secs(30)),
            heal: None,
        }
    }

    fn replica(container: &str, observed: Observed, since: Instant) -> Replica {
        Replica {
            container_id: Some(container.into()),
            link: crate::state::Link::Id,
            record_container: Some(container.into()),
            beat_at: Some(since),
            ..Replica::bare(container, container, observed, since)
        }
    }

    /// The agent's word wins over Docker's health (a not-ready agent is honest even when Docker
    /// says unhealthy); Docker's unhealthy counts where the agent says ready or there is no agent;
    /// labels are read; a bad label leaves the container out and is reported; start times come
    /// from Docker's RFC 3339 on the wall clock.
    #[test]
    fn observe_joins_agent_and_docker() {
        let now = Instant::now();
        let t = now - Duration::from_secs(20);
        let mut s = State::new(now, Source::Ok, Source::Ok);
        s.containers = vec![
            container(
                "a",
                &[
                    ("healthcheck.heal", "true"),
                    ("healthcheck.heal.after", "3s"),
                ],
                Some("healthy"),
                t,
            ),
            container("b", &[("healthcheck.heal", "true")], Some("unhealthy"), t),
            container("c", &[("healthcheck.heal", "true")], Some("unhealthy"), t),
            container("d", &[], Some("unhealthy"), t),
            container(
                "e",
                &[
                    ("healthcheck.heal", "true"),
                    ("healthcheck.heal.budget", "many"),
                ],
                None,
                t,
            ),
            container("f", &[("healthcheck.heal", "true")], Some("unhealthy"), t),
        ];
        s.replicas = vec![
            replica("a", Observed::Stale, t),
            replica("b", Observed::NotReady, t),
            replica("c", Observed::Ready, t),
            replica("f", Observed::Starting, t),
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let wall = humantime::parse_rfc3339("2026-11-25T10:01:00.5Z").unwrap();
        let cfg = Config {
            self_id: None,
            refused: None,
            ..Config::new(policy::Mode::On)
        };
        let (input, bad) = observe(&s, &cfg, now, wall);
        let by = |id: &str| input.containers.iter().find(|c| c.id == id).unwrap();
        assert_eq!(
            (by("a").condition, by("a").rules.heal_after),
            (Condition::Stale, Duration::from_secs(3))
        );
        assert_eq!(by("b").condition, Condition::NotReady);
        assert_eq!(by("c").condition, Condition::Unhealthy);
        assert_eq!(
            (by("d").condition, by("d").opted_in),
            (Condition::Unhealthy, false)
        );
        assert!(!by("e").opted_in);
        assert_eq!(
            by("f").condition,
            Condition::Unhealthy,
            "starting, but Docker gave up on it"
        );
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].1.label, labels::BUDGET);
        assert_eq!(by("a").started_at, now - Duration::from_secs(60));
        assert_eq!(by("a").start_period, Duration::from_secs(30));
        assert!(!input.store_unknown);
        s.store = Source::Unknown {
            reason: "redis down".into(),
            kind: None,
            since: now,
        };
        assert!(observe(&s, &cfg, now, wall).0.store_unknown);
    }

    /// Whose record a replica holds: a beat or an instance start after the container's start is
    /// its own process's; an instance seen in it before the start, or one started or last
    /// written before the start, is a predecessor's; within the clock margin nobody can tell.
    #[test]
    fn whose_record() {
        let now = Instant::now();
        let start = now - Duration::from_secs(30);
        let s = |n: u64| Duration::from_secs(n);
        let mut r = replica("a", Observed::Stale, now);
        r.instance = Some("1764000000000-0a1b2c3d".into());
        r.beat_at = Some(start + s(2));
        assert_eq!(whose(&r, r.beat_at, &[], Some(start)), Whose::Own);
        r.beat_at = Some(start - s(5));
        assert_eq!(whose(&r, r.beat_at, &[], Some(start)), Whose::Predecessor);
        r.beat_at = Some(start);
        assert_eq!(whose(&r, r.beat_at, &[], Some(start)), Whose::Unsure);
        r.instance_started = Some(start - s(10));
        assert_eq!(whose(&r, r.beat_at, &[], Some(start)), Whose::Predecessor);
        r.instance_started = Some(start + s(3));
        assert_eq!(whose(&r, r.beat_at, &[], Some(start)), Whose::Own);
        r.instance_started = None;
        let earlier = vec!["1764000000000-0a1b2c3d".to_owned()];
        assert_eq!(
            whose(&r, r.beat_at, &earlier, Some(start)),
            Whose::Predecessor
        );
        assert_eq!(
            whose(&r, r.beat_at, &earlier, None),
            Whose::Own,
            "no start known"
        );
    }

    /// A label duration past the bound (`healthcheck.heal.backoff=300000000000y`, which overflows
    /// `Instant` when added to the last restart, and with `panic = "abort"` would kill the
    /// sidecar) leaves that container out with an error naming the label, its value and the
    /// bound, reported against the container's id; the others are still decided on.
    #[test]
    fn huge_label_duration_is_refused_and_the_rest_is_decided() {
        let now = Instant::now() + Duration::from_secs(3600);
        let t = now - Duration::from_secs(600);
        let mut s = State::new(now, Source::Ok, Source::Ok);
        let on = ("healthcheck.heal", "true");
        s.containers = vec![
            container(
                "a",
                &[
                    on,
                    ("healthcheck.heal.backoff", "300000000000y"),
                    ("healthcheck.heal.backoff-max", "300000000000y"),
                ],
                Some("healthy"),
                t,
            ),
            container("b", &[on], Some("healthy"), t),
            container("c", &[on], Some("healthy"), t),
            container("d", &[on], Some("healthy"), t),
            container("e", &[on], Some("healthy"), t),
        ];
        s.replicas = vec![
            replica("a", Observed::Stale, t),
            replica("b", Observed::Stale, t),
            // Beating now, well after their containers started: their own processes' records.
            replica("c", Observed::Ready, now - Duration::from_secs(1)),
            replica("d", Observed::Ready, now - Duration::from_secs(1)),
            replica("e", Observed::Ready, now - Duration::from_secs(1)),
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let wall = humantime::parse_rfc3339("2026-11-25T10:01:00.5Z").unwrap();
        let cfg = Config {
            self_id: None,
            ..Config::new(policy::Mode::On)
        };
        let (input, bad) = observe(&s, &cfg, now, wall);
        assert_eq!(bad.len(), 1, "{bad:?}");
        let (id, e) = &bad[0];
        assert_eq!((id.as_str(), e.label), ("a", labels::BACKOFF));
        let text = e.to_string();
        assert!(
            text.contains("300000000000y") && text.contains("at most 365d"),
            "{text}"
        );
        // Its last restart is remembered: a backoff added to it is where the overflow was.
        let mut history = history::History::new();
        history.record_restart("a", t);
        history.record_restart("b", t);
        let decisions = policy::decide(&cfg.policy, &input, &history, now);
        assert!(decisions.iter().all(|d| d.id != "a"), "{decisions:?}");
        assert!(
            decisions
                .iter()
                .any(|d| d.id == "b" && matches!(d.action, policy::Action::Restart { .. })),
            "{decisions:?}"
        );
    }

    /// One Cluster master down: the store stays readable, only the replicas on its shards are
    /// unknown. The governor holds back exactly those (never restarting what it cannot see), and
    /// still restarts a stale agent whose shard answers: the store-unknown hold is per replica.
    #[test]
    fn a_store_part_unknown_holds_only_its_replicas() {
        let now = Instant::now() + Duration::from_secs(3600);
        let t = now - Duration::from_secs(600);
        let mut s = State::new(now, Source::Ok, Source::Ok);
        let on = ("healthcheck.heal", "true");
        s.containers = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|id| container(id, &[on], Some("healthy"), t))
            .collect();
        // Its last read (before the outage) was of its own process.
        let mut lost = replica("a", Observed::Unknown, now - Duration::from_secs(5));
        lost.reason = Some("shard 07 of the store: redis at 10.0.0.3:6379: timed out".into());
        s.replicas = vec![
            lost,
            replica("b", Observed::Stale, t),
            replica("c", Observed::Ready, now - Duration::from_secs(1)),
            replica("d", Observed::Ready, now - Duration::from_secs(1)),
            replica("e", Observed::Ready, now - Duration::from_secs(1)),
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let wall = humantime::parse_rfc3339("2026-11-25T10:01:00.5Z").unwrap();
        let cfg = Config {
            self_id: None,
            ..Config::new(policy::Mode::On)
        };
        let (input, _) = observe(&s, &cfg, now, wall);
        assert!(!input.store_unknown);
        let decisions = policy::decide(&cfg.policy, &input, &history::History::new(), now);
        let of = |id: &str| decisions.iter().find(|d| d.id == id);
        assert!(
            of("a").is_some_and(
                |d| d.action == policy::Action::Skip && d.why == policy::Why::StoreUnknown
            ),
            "{decisions:?}"
        );
        assert!(
            of("b").is_some_and(|d| matches!(d.action, policy::Action::Restart { .. })),
            "{decisions:?}"
        );
    }

    /// A scaled service with a fixed `hostname: w`: both replicas write `agent/w`, linked by id
    /// to `a`, which froze. `b`'s check (`replica=self`) reads that record, so Docker calls `b`
    /// unhealthy too; that says nothing about `b`'s process: only `a` may be restarted, and `b`
    /// is skipped, saying why.
    #[test]
    fn shared_host_name_does_not_condemn_the_sibling() {
        let now = Instant::now() + Duration::from_secs(3600);
        let t = now - Duration::from_secs(600);
        let on = ("healthcheck.heal", "true");
        let mut s = State::new(now, Source::Ok, Source::Ok);
        let mut b = container("b", &[on], Some("unhealthy"), t);
        let mut a = container("a", &[on], Some("unhealthy"), t);
        for c in [&mut a, &mut b] {
            c.hostname = "w".into();
            c.service = Some("worker".into());
        }
        // `b` first: decided first, it would take the service's one restart.
        s.containers = vec![b, a];
        // Written by `a`'s process (after its start, a minute ago), stale for 30 s.
        let mut r = replica("a", Observed::Stale, now - Duration::from_secs(30));
        r.replica = "w".into();
        r.host = Some("w".into());
        s.replicas = vec![r].into_iter().map(Arc::new).collect();
        let wall = humantime::parse_rfc3339("2026-11-25T10:01:00.5Z").unwrap();
        let cfg = Config {
            self_id: None,
            ..Config::new(policy::Mode::On)
        };
        let (input, bad) = observe(&s, &cfg, now, wall);
        assert!(bad.is_empty(), "{bad:?}");
        let decisions = policy::decide(&cfg.policy, &input, &history::History::new(), now);
        let of = |id: &str| {
            decisions
                .iter()
                .find(|d| d.id == id)
                .map(|d| (d.action, d.why))
        };
        assert!(
            matches!(
                of("a"),
                Some((policy::Action::Restart { .. }, policy::Why::Stale(_)))
            ),
            "{decisions:?}"
        );
        assert_eq!(
            of("b"),
            Some((policy::Action::Skip, policy::Why::ForeignRecord)),
            "{decisions:?}"
        );
        // The same when the record cannot be linked at all (its host name is both's).
        Arc::make_mut(&mut s.replicas[0]).container_id = None;
        Arc::make_mut(&mut s.replicas[0]).link =
            crate::state::Link::None(crate::state::Unlinked::Ambiguous {
                host: "w".into(),
                containers: vec!["demo-a-1".into(), "demo-b-1".into()],
                count: 2,
            });
        let (input, _) = observe(&s, &cfg, now, wall);
        let decisions = policy::decide(&cfg.policy, &input, &history::History::new(), now);
        assert!(
            decisions.iter().all(|d| d.action == policy::Action::Skip),
            "{decisions:?}"
        );
    }
}
