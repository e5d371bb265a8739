//! The heal governor (issue 14): restarts frozen containers with backoff, a budget and
//! quarantine; never itself, never one-shot jobs, never on a shared outage. Off unless the
//! sidecar runs with `--heal` (`--heal=dry-run` decides and reports, and does nothing).
//!
//! Layout, a pure policy and thin I/O:
//! - [`policy`]: `decide(&Policy, &Input, &History, now) -> Vec<Decision>`, a pure function;
//!   every rule of the issue is one of its unit tests.
//! - [`history`]: restarts, quarantine and earn-back per container (a leaf).
//! - [`labels`]: the `healthcheck.heal*` labels, parsed once.
//! - [`selfid`]: finding the sidecar's own container.
//! - [`act`]: the loop that reads snapshots, decides, restarts, and reports.
//!
//! This module turns a [`State`] snapshot into the policy's [`policy::Input`] ([`observe`]).

pub mod act;
pub mod history;
pub mod labels;
pub mod policy;
pub mod selfid;

use std::time::{Duration, SystemTime};

use ready_signal::Observed;
use tokio::time::Instant;

use crate::state::{State, severity};
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
    /// Where the history is saved at every change and read at start (on a volume, so that it
    /// survives the sidecar's container being recreated); `None`: Docker's events only.
    pub state_file: Option<std::path::PathBuf>,
}

impl Config {
    /// A configuration with the defaults, in `mode`, finding its own container.
    pub fn new(mode: policy::Mode) -> Config {
        Config {
            policy: Policy {
                mode,
                ..Policy::default()
            },
            defaults: Rules::default(),
            tick: Duration::from_millis(500),
            self_id: selfid::find(),
            state_file: None,
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
        if r.backoff_max < r.backoff {
            return bad("heal-backoff-max", "shorter than --heal-backoff");
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

/// The policy's view of a snapshot at `now` (`wall` is the same instant on the wall clock, for
/// Docker's start times), and the containers whose heal labels cannot be used.
pub fn observe(
    state: &State,
    cfg: &Config,
    now: Instant,
    wall: SystemTime,
) -> (Input, Vec<(String, labels::LabelError)>) {
    let mut bad_labels = Vec::new();
    let mut containers = Vec::with_capacity(state.containers.len());
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
        let started_at = c
            .started_at
            .as_deref()
            .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
            .and_then(|t| wall.duration_since(t).ok())
            .and_then(|ago| now.checked_sub(ago))
            .unwrap_or(state.built_at);
        // The agent's word first (worst replica), Docker's health next.
        let worst = state
            .replicas_in(&c.id)
            .min_by_key(|r| severity(r.observed));
        let (mut condition, mut since) = match worst {
            Some(r) => (
                match r.observed {
                    Observed::Ready => Condition::Healthy,
                    Observed::Starting => Condition::Starting,
                    Observed::NotReady => Condition::NotReady,
                    Observed::Stopping => Condition::Stopping,
                    Observed::Stale => Condition::Stale,
                    Observed::Dead => Condition::Dead,
                    _ => Condition::Unknown,
                },
                r.since,
            ),
            None => (Condition::Healthy, started_at),
        };
        let health_since = c.health_since.unwrap_or(started_at);
        match (condition, c.health.as_deref()) {
            // Starting is honest only within the start period (the policy checks that); an agent
            // still "starting" while Docker has given up on it is unhealthy.
            (Condition::Healthy | Condition::Starting, Some("unhealthy")) => {
                condition = Condition::Unhealthy;
                since = health_since;
            }
            (Condition::Healthy, Some("starting")) if worst.is_none() => {
                condition = Condition::Starting;
                since = health_since;
            }
            _ => {}
        }
        containers.push(Observation {
            id: c.id.clone(),
            name: c.name.clone(),
            service: c.service.clone().unwrap_or_else(|| c.name.clone()),
            opted_in,
            running: c.running,
            condition,
            condition_since: since,
            started_at,
            start_period: c.start_period.unwrap_or(Duration::ZERO),
            // Filled by the executor, which remembers what it saw since the container started.
            ready_since_start: false,
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

    /// Settings that cannot work are refused, naming the flag; the defaults are valid.
    #[test]
    fn config_validation() {
        let ok = Config {
            self_id: None,
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
        let mut c = ok;
        c.defaults.heal_after = Duration::ZERO;
        assert_eq!(c.validate().unwrap_err().flag, "heal-after");
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
            stop_timeout: None,
            start_period: Some(Duration::from_secs(30)),
            heal: None,
        }
    }

    fn replica(container: &str, observed: Observed, since: Instant) -> Replica {
        Replica {
            namespace: "demo".into(),
            agent: container.into(),
            replica: container.into(),
            observed,
            since,
            beat_age: None,
            instance: None,
            epoch: None,
            reason: None,
            container_id: Some(container.into()),
            published: None,
            beat_at: None,
            interval: None,
            ttl: None,
            host: None,
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
        ];
        let wall = humantime::parse_rfc3339("2026-11-25T10:01:00.5Z").unwrap();
        let cfg = Config {
            self_id: None,
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
}
