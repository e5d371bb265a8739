//! Scenario tests of issue 20, pure and with injected time: a small model of the store and the
//! engine feeds the writer's [`Book`], whose snapshots go through [`observe`] and [`decide`] as
//! the executor (`heal::act`) runs them, restarts included. Hours of healing run in milliseconds,
//! and every restart the model records is checked against the rules.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use ready_signal::{Name, Observed, ReplicaStatus};
use tokio::time::Instant;

use super::policy::{self, Action, Condition, Decision, Mode};
use super::{Config, history::History, observe};
use crate::error::Error;
use crate::state::{Container, Link, Unlinked};
use crate::writer::{Book, Change, DockerChange};

const S: Duration = Duration::from_secs(1);
const TTL: Duration = Duration::from_secs(3);
const INTERVAL: Duration = Duration::from_secs(1);
const STEP: Duration = Duration::from_millis(500);

/// One record as the store holds it.
#[derive(Debug, Clone)]
struct Record {
    namespace: String,
    replica: String,
    instance: String,
    /// The container id the writer recorded (`None`: an older writer).
    container: Option<String>,
    host: String,
    first_write: Instant,
    last_beat: Instant,
    epoch: u64,
}

/// An agent process: when it writes its first record, and until when it beats.
#[derive(Debug, Clone)]
struct Process {
    container: String,
    namespace: String,
    replica: String,
    instance: String,
    /// Records its container id (a writer of the new record revision).
    records_id: bool,
    first_write: Instant,
    /// Beats stop here (frozen).
    frozen_at: Option<Instant>,
}

/// One engine container in the model.
#[derive(Debug, Clone)]
struct Engine {
    c: Container,
    /// How long its agent takes from the container's start to its first record.
    first_record_after: Duration,
}

struct Sim {
    t0: Instant,
    wall0: SystemTime,
    book: Book,
    cfg: Config,
    history: History,
    /// As the executor keeps it: a bad spell's first instant across stale, dead, unhealthy.
    bad_since: HashMap<String, Instant>,
    engine: Vec<Engine>,
    processes: Vec<Process>,
    store: BTreeMap<(String, String), Record>,
    store_down: bool,
    restarts: Vec<(Duration, String, String)>,
    serial: u32,
    /// Records its container id: the writers of the new revision.
    ids: bool,
}

impl Sim {
    fn new(namespaces: &[&str], ids: bool) -> Sim {
        let t0 = Instant::now();
        let mut cfg = Config {
            self_id: None,
            ..Config::new(Mode::On)
        };
        cfg.policy.max_in_flight = 4;
        Sim {
            t0,
            wall0: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            book: Book::new(
                t0,
                namespaces.iter().map(|s| s.to_string()).collect(),
                true,
                true,
            ),
            cfg,
            history: History::new(),
            bad_since: HashMap::new(),
            engine: Vec::new(),
            processes: Vec::new(),
            store: BTreeMap::new(),
            store_down: false,
            restarts: Vec::new(),
            serial: 0,
            ids,
        }
    }

    /// `t` on the model's wall clock, as Docker spells it.
    fn rfc(&self, t: Instant) -> String {
        let wall = match t.checked_duration_since(self.t0) {
            Some(after) => self.wall0 + after,
            None => self.wall0 - (self.t0 - t),
        };
        humantime::format_rfc3339_nanos(wall).to_string()
    }

    /// A labelled, running container started at `started`, whose agent publishes `replica` in
    /// `namespace`, first `first_record_after` its start.
    #[allow(clippy::too_many_arguments)]
    fn container(
        &mut self,
        id: &str,
        project: &str,
        service: &str,
        hostname: &str,
        namespace: &str,
        replica: &str,
        started: Instant,
        first_record_after: Duration,
    ) {
        let c = Container {
            id: id.repeat(64 / id.len()),
            name: format!("{project}-{service}-{id}"),
            project: Some(project.into()),
            service: Some(service.into()),
            hostname: hostname.into(),
            labels: [("healthcheck.heal".to_string(), "true".to_string())].into(),
            status: "running".into(),
            running: true,
            health: None,
            health_since: None,
            failing_streak: 0,
            last_health_line: None,
            restart_count: 0,
            exit_code: None,
            started_at: Some(self.rfc(started)),
            health_checked_at: None,
            instances: Vec::new(),
            earlier_instances: Vec::new(),
            stop_timeout: None,
            network_mode: None,
            start_period: None,
            heal: None,
        };
        let full = c.id.clone();
        self.engine.push(Engine {
            c,
            first_record_after,
        });
        self.spawn(&full, namespace, replica, started + first_record_after);
    }

    fn spawn(&mut self, container: &str, namespace: &str, replica: &str, first_write: Instant) {
        self.serial += 1;
        self.processes.push(Process {
            container: container.into(),
            namespace: namespace.into(),
            replica: replica.into(),
            instance: format!("{:013}-{:08x}", self.serial, self.serial),
            records_id: self.ids,
            first_write,
            frozen_at: None,
        });
    }

    fn id(&self, short: &str) -> String {
        short.repeat(64 / short.len())
    }

    fn freeze(&mut self, short: &str, at: Instant) {
        let id = self.id(short);
        for p in &mut self.processes {
            if p.container == id {
                p.frozen_at = Some(at);
            }
        }
    }

    fn set_health(&mut self, short: &str, health: &str, checked: Instant, now: Instant) {
        let checked = self.rfc(checked);
        let e = self
            .engine
            .iter_mut()
            .find(|e| e.c.id.starts_with(short))
            .unwrap();
        e.c.health = Some(health.into());
        e.c.health_checked_at = Some(checked);
        let c = e.c.clone();
        self.book
            .apply(Change::Docker(DockerChange::One(Box::new(c))), now);
    }

    /// What the processes write up to `now` (nothing while the store is down).
    fn write(&mut self, now: Instant) {
        if self.store_down {
            return;
        }
        let host_of: HashMap<String, String> = self
            .engine
            .iter()
            .map(|e| (e.c.id.clone(), e.c.hostname.clone()))
            .collect();
        for p in &self.processes {
            if now < p.first_write {
                continue;
            }
            let last = match p.frozen_at {
                Some(f) if f < now => f,
                _ => now,
            };
            if last < p.first_write {
                continue;
            }
            // A frozen process writes nothing more: its record is what it left (and expires).
            let key = (p.namespace.clone(), p.replica.clone());
            let prev = self.store.get(&key);
            if prev.is_some_and(|r| r.instance != p.instance && r.last_beat > last) {
                continue;
            }
            let epoch = match prev {
                Some(r) if r.instance == p.instance => r.epoch,
                Some(r) => r.epoch + 1,
                None => 1,
            };
            let record = Record {
                namespace: p.namespace.clone(),
                replica: p.replica.clone(),
                instance: p.instance.clone(),
                container: p.records_id.then(|| p.container.clone()),
                host: host_of[&p.container].clone(),
                first_write: match prev {
                    Some(r) if r.instance == p.instance => r.first_write,
                    _ => p.first_write,
                },
                last_beat: last,
                epoch,
            };
            self.store.insert(key, record);
        }
        // Redis expires a record one TTL after its last write.
        self.store
            .retain(|_, r| now.saturating_duration_since(r.last_beat) <= TTL);
    }

    fn read(&mut self, now: Instant) {
        let namespaces = self.book.state().namespaces.clone();
        for ns in namespaces {
            let result = if self.store_down {
                Err(Error::store(ready_signal::Error::Redis {
                    addr: "redis:6379".into(),
                    message: "connection refused".into(),
                    source: None,
                }))
            } else {
                Ok(self
                    .store
                    .values()
                    .filter(|r| r.namespace == ns)
                    .map(|r| status(r, now))
                    .collect())
            };
            self.book.apply(
                Change::StoreRead {
                    namespace: ns,
                    at: now,
                    result,
                },
                now,
            );
        }
    }

    /// One round of the governor at `now`, as `heal::act` runs it; a restart is carried out at
    /// once (the container starts again one second later, its agent a while after that).
    fn round(&mut self, now: Instant) -> Vec<Decision> {
        self.write(now);
        self.read(now);
        let all: Vec<Container> = self.engine.iter().map(|e| e.c.clone()).collect();
        self.book.apply(Change::Docker(DockerChange::All(all)), now);
        self.book.judge(now);
        let wall = self.wall0 + (now - self.t0);
        let (mut input, _) = observe(self.book.state(), &self.cfg, now, wall);
        for c in &mut input.containers {
            if c.condition.is_bad() {
                let first = self
                    .bad_since
                    .entry(c.id.clone())
                    .or_insert(c.condition_since);
                *first = (*first).min(c.condition_since);
                c.condition_since = *first;
            } else {
                self.bad_since.remove(&c.id);
            }
        }
        if policy::brake(&self.cfg.policy, &input).is_some() {
            self.history.hold(now);
        }
        let ds = policy::decide(&self.cfg.policy, &input, &self.history, now);
        for d in &ds {
            policy::apply(&mut self.history, d, now);
            if let Action::Restart { .. } = d.action {
                self.restarts
                    .push((now - self.t0, d.name.clone(), d.why.to_string()));
                self.restart(&d.id, now + S);
            }
        }
        ds
    }

    fn restart(&mut self, id: &str, started: Instant) {
        let started_at = self.rfc(started);
        let e = self.engine.iter_mut().find(|e| e.c.id == id).unwrap();
        e.c.started_at = Some(started_at);
        e.c.restart_count += 1;
        let first = started + e.first_record_after;
        let old: Vec<Process> = self
            .processes
            .iter()
            .filter(|p| p.container == id)
            .cloned()
            .collect();
        self.processes.retain(|p| p.container != id);
        for p in old {
            self.spawn(id, &p.namespace, &p.replica, first);
        }
    }

    fn run(&mut self, until: Duration) {
        let mut now = self.t0;
        while now < self.t0 + until {
            self.round(now);
            now += STEP;
        }
    }

    fn restarted(&self) -> Vec<&str> {
        self.restarts.iter().map(|r| r.1.as_str()).collect()
    }
}

fn status(r: &Record, now: Instant) -> ReplicaStatus {
    let age = now.saturating_duration_since(r.last_beat);
    let state = if age > INTERVAL * ready_signal::STALE_INTERVALS {
        Observed::Stale
    } else {
        Observed::Ready
    };
    ReplicaStatus {
        agent: Name::new("worker").unwrap(),
        replica: Name::new(&r.replica).unwrap(),
        state,
        instance: Some(r.instance.clone()),
        reason: None,
        age: Some(age),
        since: Some(now.saturating_duration_since(r.first_write)),
        pid: Some(1),
        host: Some(r.host.clone()),
        published: Some(ready_signal::State::Ready),
        interval: Some(INTERVAL),
        ttl: Some(TTL),
        epoch: Some(r.epoch),
        container: r.container.clone(),
        started: r
            .container
            .as_ref()
            .map(|_| now.saturating_duration_since(r.first_write)),
    }
}

/// Two containers with the same `hostname:` in two watched projects, one frozen: with records
/// that name their container, only the frozen one is restarted, once; with records that do not,
/// both replicas are ambiguous, shown so, and nothing is restarted for them.
#[test]
fn same_host_name_in_two_projects() {
    for ids in [true, false] {
        let mut sim = Sim::new(&["one", "two"], ids);
        let t0 = sim.t0;
        sim.container("a", "one", "worker", "w", "one", "w", t0 - 100 * S, S);
        sim.container("b", "two", "worker", "w", "two", "w", t0 - 100 * S, S);
        sim.freeze("a", t0 + 10 * S);
        sim.run(300 * S);
        if ids {
            assert_eq!(sim.restarted(), ["one-worker-a"], "{:?}", sim.restarts);
        } else {
            assert!(sim.restarts.is_empty(), "{:?}", sim.restarts);
            // Said: the frozen record may be either's, so neither is restarted for it.
            let ds = sim.round(sim.t0 + 300 * S);
            assert_eq!(ds.len(), 2, "{ds:?}");
            assert!(
                ds.iter()
                    .all(|d| d.action == Action::Skip && d.why == policy::Why::Unlinked),
                "{ds:?}"
            );
            let r = &sim.book.state().replicas;
            assert!(
                r.iter()
                    .all(|r| matches!(r.link, Link::None(Unlinked::Ambiguous { count: 2, .. }))),
                "{r:?}"
            );
        }
    }
}

/// Two containers of one scaled service with one fixed host name, one frozen: only that one is
/// restarted, once.
#[test]
fn same_host_name_in_one_scaled_service() {
    let mut sim = Sim::new(&["one"], true);
    let t0 = sim.t0;
    sim.container("a", "one", "worker", "w", "one", "w-1", t0 - 100 * S, S);
    sim.container("b", "one", "worker", "w", "one", "w-2", t0 - 100 * S, S);
    sim.freeze("a", t0 + 10 * S);
    sim.run(300 * S);
    assert_eq!(sim.restarted(), ["one-worker-a"], "{:?}", sim.restarts);
}

/// A replica named like another container's host name (an older writer, no container id): the
/// frozen container its record comes from is restarted, never its namesake.
#[test]
fn replica_named_like_another_host() {
    let mut sim = Sim::new(&["one"], false);
    let t0 = sim.t0;
    sim.container(
        "a",
        "one",
        "agent-a",
        "a-host",
        "one",
        "agent-b",
        t0 - 100 * S,
        S,
    );
    sim.container(
        "b",
        "one",
        "agent-b",
        "agent-b",
        "one",
        "other",
        t0 - 100 * S,
        S,
    );
    sim.freeze("a", t0 + 10 * S);
    sim.run(300 * S);
    assert_eq!(sim.restarted(), ["one-agent-a-a"], "{:?}", sim.restarts);
}

/// An agent that publishes its first record 25 s after each start, no Docker start_period, its
/// previous process's stale record left behind: after the restart that its freeze warranted,
/// no restart until it is ready (a start grace of 60 s); with the default grace (TTL +
/// heal_after = 13 s) no restart before the grace runs out.
#[test]
fn a_slow_starter_is_judged_on_its_own_record() {
    let mut sim = Sim::new(&["one"], true);
    let t0 = sim.t0;
    sim.cfg.defaults.start_grace = Some(60 * S);
    sim.container("a", "one", "worker", "w", "one", "w", t0 - 100 * S, 25 * S);
    sim.freeze("a", t0 + 10 * S);
    sim.run(600 * S);
    assert_eq!(sim.restarts.len(), 1, "{:?}", sim.restarts);
    // Ready, from its own record.
    let r = &sim.book.state().replicas[0];
    assert_eq!(r.observed, Observed::Ready);

    // The same with the default grace, and a process that never gets there in time: each
    // restart comes when the grace runs out, never before.
    for ids in [true, false] {
        let mut sim = Sim::new(&["one"], ids);
        sim.cfg.defaults.budget = 100;
        let t0 = sim.t0;
        sim.container("a", "one", "worker", "w", "one", "w", t0 - 100 * S, 25 * S);
        sim.freeze("a", t0 + 10 * S);
        sim.run(200 * S);
        let grace = TTL + sim.cfg.defaults.heal_after;
        let times: Vec<Duration> = sim.restarts.iter().map(|r| r.0).collect();
        assert!(times.len() >= 2, "{:?}", sim.restarts);
        for w in times.windows(2) {
            // Restarted at w[0], started one second later.
            assert!(w[1] >= w[0] + S + grace, "ids {ids}: {:?}", sim.restarts);
        }
        assert!(
            sim.restarts[1..]
                .iter()
                .all(|r| r.2.starts_with("no record of its own")),
            "{:?}",
            sim.restarts
        );
    }
}

/// A Redis outage long enough for Docker to mark an agent unhealthy, the agent ready again
/// right after Redis is back, Docker's next check 30 s later: zero restarts.
#[test]
fn docker_unhealthy_from_a_store_outage_does_not_count() {
    let mut sim = Sim::new(&["one"], true);
    let t0 = sim.t0;
    sim.container("a", "one", "worker", "w", "one", "w", t0 - 100 * S, S);
    sim.container("b", "one", "other", "o", "one", "o", t0 - 100 * S, S);
    sim.container("c", "one", "third", "t", "one", "t", t0 - 100 * S, S);
    let mut now = t0;
    sim.set_health("a", "healthy", t0 - 5 * S, now);
    let down = t0 + 10 * S;
    let back = down + 36 * S;
    while now < t0 + 200 * S {
        sim.store_down = now >= down && now < back;
        // The agent cannot write while Redis is down, and is ready 3 s after it is back.
        if now == down {
            sim.freeze("a", down);
        }
        if now == back + 3 * S {
            let id = sim.id("a");
            for p in sim.processes.iter_mut().filter(|p| p.container == id) {
                p.frozen_at = None;
            }
        }
        // Docker's check (every 30 s) fails during the outage, passes at the next one.
        if now == down + 20 * S {
            sim.set_health("a", "unhealthy", now, now);
        }
        if now == down + 50 * S {
            sim.set_health("a", "healthy", now, now);
        }
        sim.round(now);
        now += STEP;
    }
    assert!(sim.restarts.is_empty(), "{:?}", sim.restarts);
}

/// A fresh `ready` from the agent's own record outweighs an older `unhealthy` from Docker, but
/// a Docker check that fails after the agent said ready still counts.
#[test]
fn newer_evidence_wins() {
    let mut sim = Sim::new(&["one"], true);
    let t0 = sim.t0;
    sim.container("a", "one", "worker", "w", "one", "w", t0 - 100 * S, S);
    let mut now = t0;
    while now < t0 + 5 * S {
        sim.round(now);
        now += STEP;
    }
    // Docker's last check ended before the agent's record turned ready (99 s ago): the agent's
    // word wins.
    sim.set_health("a", "unhealthy", t0 - 100 * S, now);
    sim.book.judge(now);
    let wall = sim.wall0 + (now - t0);
    let cond = |sim: &Sim| observe(sim.book.state(), &sim.cfg, now, wall).0.containers[0].condition;
    assert_eq!(cond(&sim), Condition::Healthy);
    // A check that ended after it: unhealthy.
    sim.set_health("a", "unhealthy", now - S, now);
    sim.book.judge(now);
    assert_eq!(cond(&sim), Condition::Unhealthy);
}
