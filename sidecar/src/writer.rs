//! The one task that owns the state: sources send [`Change`]s, it publishes snapshots.
//!
//! The judging is here, and it is pure: [`Book::apply`] and [`Book::judge`] take `now` as an
//! argument, so tests drive a record from ready to stale to dead with paused time. Between two
//! bulk reads of the store the book re-judges every replica from its last beat and the interval
//! and TTL its publisher promised, and [`run`] wakes at the next instant a replica crosses a
//! threshold: a stale agent shows within milliseconds of crossing, not at the next read.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ready_signal::{Observed, ReplicaStatus, STALE_INTERVALS};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::state::{Container, ContainerHeal, HealSummary, Replica, Source, State};

/// How many changes may wait for the writer before sources wait (bounded, never a backlog).
pub const CHANGES_CAPACITY: usize = 1024;

/// How long a replica whose record is gone stays listed as dead (the store lists live replicas
/// only; the sidecar remembers the ones it saw, so a vanished agent shows as dead, not absent).
pub const DEAD_RETENTION: Duration = Duration::from_secs(600);

/// What a source tells the writer.
#[derive(Debug)]
#[non_exhaustive]
pub enum Change {
    /// A bulk read of one namespace finished at `at` (the read's replies, or why it failed).
    StoreRead {
        /// The namespace read.
        namespace: String,
        /// When the reply arrived.
        at: Instant,
        /// Every replica, or the failure, one line.
        result: Result<Vec<ReplicaStatus>, String>,
    },
    /// A transition published on NATS.
    StoreEvent {
        /// The namespace it came from.
        namespace: String,
        /// When it arrived.
        at: Instant,
        /// The event.
        event: ready_signal::Event,
    },
    /// What Docker says now.
    Docker(DockerChange),
    /// The governor's latest word (latest wins: it replaces the previous one).
    Heal(HealUpdate),
    /// The sidecar found its own container.
    SelfContainer(String),
}

/// A change seen on the Docker side.
#[derive(Debug)]
#[non_exhaustive]
pub enum DockerChange {
    /// A full listing: every watched container (replaces what was known).
    All(Vec<Container>),
    /// One container inspected after an event.
    One(Box<Container>),
    /// A container was removed.
    Gone(String),
    /// The Docker API could not be reached or answered an error: why, one line.
    Failed(String),
}

/// The governor's view, sent whole each time it changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealUpdate {
    /// The stack-wide summary.
    pub summary: HealSummary,
    /// Per container id.
    pub containers: BTreeMap<String, ContainerHeal>,
}

/// Where sources send changes.
pub type Changes = mpsc::Sender<Change>;

/// The working copy of the state and the rules that judge it.
#[derive(Debug)]
pub struct Book {
    state: State,
    store_on: bool,
    docker_on: bool,
    store_failures: BTreeMap<String, (String, Instant)>,
    docker_failure: Option<(String, Instant)>,
    heal: BTreeMap<String, ContainerHeal>,
    fingerprint: u64,
}

impl Book {
    /// An empty book: `store_on` / `docker_on` say which sources are configured.
    pub fn new(now: Instant, namespaces: Vec<String>, store_on: bool, docker_on: bool) -> Book {
        // A configured source is unknown until its first answer: nothing is claimed about it.
        let pending = |on: bool| {
            if on {
                Source::Unknown {
                    reason: "not read yet".into(),
                    since: now,
                }
            } else {
                Source::Off
            }
        };
        let mut state = State::new(now, pending(store_on), pending(docker_on));
        state.namespaces = namespaces;
        Book {
            state,
            store_on,
            docker_on,
            store_failures: BTreeMap::new(),
            docker_failure: None,
            heal: BTreeMap::new(),
            fingerprint: 0,
        }
    }

    /// The current state (for tests and the run loop).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Takes in one change that happened at or before `now`.
    pub fn apply(&mut self, change: Change, now: Instant) {
        match change {
            Change::StoreRead {
                namespace,
                at,
                result,
            } => {
                self.state.counters.store_reads += 1;
                match result {
                    Ok(list) => {
                        self.store_failures.remove(&namespace);
                        self.merge_read(&namespace, at, list);
                    }
                    Err(reason) => {
                        self.state.counters.store_errors += 1;
                        let since = match self.store_failures.get(&namespace) {
                            Some((_, since)) => *since,
                            None => now,
                        };
                        self.store_failures.insert(namespace, (reason, since));
                    }
                }
                self.state.store = if !self.store_on {
                    Source::Off
                } else {
                    match self.store_failures.iter().next() {
                        None => Source::Ok,
                        Some((ns, (reason, since))) => Source::Unknown {
                            reason: if self.state.namespaces.len() > 1 {
                                format!("namespace {ns}: {reason}")
                            } else {
                                reason.clone()
                            },
                            since: *since,
                        },
                    }
                };
            }
            Change::StoreEvent {
                namespace,
                at,
                event,
            } => {
                self.state.counters.store_events += 1;
                self.merge_event(&namespace, at, event);
            }
            Change::Docker(change) => self.apply_docker(change, now),
            Change::Heal(update) => {
                self.state.heal = update.summary;
                self.heal = update.containers;
                for c in &mut self.state.containers {
                    c.heal = self.heal.get(&c.id).cloned();
                }
            }
            Change::SelfContainer(id) => self.state.self_container = Some(id),
        }
    }

    fn merge_read(&mut self, namespace: &str, at: Instant, list: Vec<ReplicaStatus>) {
        let mut old: HashMap<(String, String), Replica> = HashMap::new();
        let mut kept = Vec::with_capacity(self.state.replicas.len());
        for r in self.state.replicas.drain(..) {
            if r.namespace == namespace {
                old.insert((r.agent.clone(), r.replica.clone()), r);
            } else {
                kept.push(r);
            }
        }
        for s in list {
            let key = (s.agent.to_string(), s.replica.to_string());
            let beat_at = s.age.map(|a| at.checked_sub(a).unwrap_or(at));
            let entered = s.since.and_then(|d| at.checked_sub(d)).unwrap_or(at);
            // The read is authoritative: the store fences its writes by epoch.
            let prev = old.remove(&key);
            let since = match &prev {
                Some(p) if p.observed == s.state => p.since,
                Some(_) => at,
                None => entered,
            };
            kept.push(Replica {
                namespace: namespace.to_string(),
                agent: key.0,
                replica: key.1,
                observed: s.state,
                since,
                beat_age: s.age,
                instance: s.instance,
                epoch: s.epoch,
                reason: s.reason,
                container_id: prev.as_ref().and_then(|p| p.container_id.clone()),
                published: s.published,
                beat_at,
                interval: s.interval,
                ttl: s.ttl,
                host: s.host,
            });
        }
        // Replicas the store no longer lists: their record expired or was removed. One that said
        // `stopping` left cleanly and goes; any other is dead, and kept a while to show it.
        for (_, mut r) in old {
            if r.published == Some(ready_signal::State::Stopping) {
                continue;
            }
            if r.observed != Observed::Dead {
                r.observed = Observed::Dead;
                r.since = at;
            }
            r.published = None;
            if at.saturating_duration_since(r.since) < DEAD_RETENTION {
                kept.push(r);
            }
        }
        kept.sort_by(|a, b| {
            (&a.namespace, &a.agent, &a.replica).cmp(&(&b.namespace, &b.agent, &b.replica))
        });
        self.state.replicas = kept;
    }

    fn merge_event(&mut self, namespace: &str, at: Instant, e: ready_signal::Event) {
        let (agent, replica) = (e.agent.to_string(), e.replica.to_string());
        let found = self
            .state
            .replicas
            .iter_mut()
            .find(|r| r.namespace == namespace && r.agent == agent && r.replica == replica);
        let reason = Some(e.reason).filter(|r| !r.is_empty());
        match found {
            Some(r) => {
                // Fenced by instance id: an old process's late event never overrides a new one.
                if newer(r.instance.as_deref(), Some(&e.instance)) {
                    return;
                }
                if r.instance.as_deref() != Some(e.instance.as_str()) {
                    r.epoch = None;
                }
                r.published = Some(e.state);
                r.instance = Some(e.instance);
                r.reason = reason;
                // A transition is written with a fresh beat: the publisher is alive right now.
                r.beat_at = Some(at);
            }
            None => {
                self.state.replicas.push(Replica {
                    namespace: namespace.to_string(),
                    agent,
                    replica,
                    observed: e.state.into(),
                    since: at,
                    beat_age: Some(Duration::ZERO),
                    instance: Some(e.instance),
                    epoch: None,
                    reason,
                    container_id: None,
                    published: Some(e.state),
                    beat_at: Some(at),
                    interval: None,
                    ttl: None,
                    host: None,
                });
                self.state.replicas.sort_by(|a, b| {
                    (&a.namespace, &a.agent, &a.replica).cmp(&(&b.namespace, &b.agent, &b.replica))
                });
            }
        }
    }

    fn apply_docker(&mut self, change: DockerChange, now: Instant) {
        self.state.counters.docker_calls += 1;
        match change {
            DockerChange::Failed(reason) => {
                self.state.counters.docker_errors += 1;
                let since = self.docker_failure.as_ref().map_or(now, |(_, s)| *s);
                self.docker_failure = Some((reason, since));
            }
            DockerChange::All(list) => {
                self.docker_failure = None;
                let mut old: HashMap<String, Container> = self
                    .state
                    .containers
                    .drain(..)
                    .map(|c| (c.id.clone(), c))
                    .collect();
                let mut next = Vec::with_capacity(list.len());
                for c in list {
                    let prev = old.remove(&c.id);
                    next.push(self.carry(c, prev.as_ref(), now));
                }
                self.state.containers = next;
            }
            DockerChange::One(c) => {
                self.docker_failure = None;
                let pos = self.state.containers.iter().position(|x| x.id == c.id);
                let prev = pos.map(|i| self.state.containers[i].clone());
                let c = self.carry(*c, prev.as_ref(), now);
                match pos {
                    Some(i) => self.state.containers[i] = c,
                    None => self.state.containers.push(c),
                }
            }
            DockerChange::Gone(id) => self.state.containers.retain(|c| c.id != id),
        }
        self.state.containers.sort_by(|a, b| {
            (a.service.as_deref().unwrap_or(""), &a.name)
                .cmp(&(b.service.as_deref().unwrap_or(""), &b.name))
        });
        self.state.docker = match (&self.docker_failure, self.docker_on) {
            (_, false) => Source::Off,
            (None, true) => Source::Ok,
            (Some((reason, since)), true) => Source::Unknown {
                reason: reason.clone(),
                since: *since,
            },
        };
    }

    /// Keeps what only the book knows about a container across re-inspections.
    fn carry(&self, mut c: Container, prev: Option<&Container>, now: Instant) -> Container {
        c.health_since = match prev {
            Some(p) if p.health == c.health => p.health_since.or(Some(now)),
            _ => c.health.as_ref().map(|_| now),
        };
        c.heal = self.heal.get(&c.id).cloned();
        c
    }

    /// Re-judges every replica's freshness at `now`, links replicas to containers and stamps
    /// the snapshot time. Returns true when something a person would notice changed.
    pub fn judge(&mut self, now: Instant) -> bool {
        let store_ok = self.state.store.is_ok();
        let failing: Vec<String> = self.store_failures.keys().cloned().collect();
        let links: HashMap<&str, &str> = link_index(&self.state.containers);
        let mut link_of = Vec::with_capacity(self.state.replicas.len());
        for r in &self.state.replicas {
            let by_replica = links.get(r.replica.as_str());
            let by_host = r.host.as_deref().and_then(|h| links.get(h));
            link_of.push(by_replica.or(by_host).map(|id| id.to_string()));
        }
        for (r, link) in self.state.replicas.iter_mut().zip(link_of) {
            r.container_id = link;
            let ns_ok = store_ok || !failing.contains(&r.namespace);
            let next = if !ns_ok {
                Observed::Unknown
            } else {
                judged(r, now)
            };
            if next == Observed::Unknown && !ns_ok {
                r.reason = self
                    .store_failures
                    .get(&r.namespace)
                    .map(|(m, _)| m.clone());
            }
            if next != r.observed {
                r.observed = next;
                r.since = now;
            }
            r.beat_age = r.beat_at.map(|b| now.saturating_duration_since(b));
        }
        self.state.built_at = now;
        self.state.built_wall = SystemTime::now();
        let fp = fingerprint(&self.state);
        let changed = fp != self.fingerprint;
        if changed {
            self.fingerprint = fp;
            self.state.generation += 1;
        }
        changed
    }

    /// The next instant at which some replica crosses its stale or dead threshold.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for r in &self.state.replicas {
            let (Some(beat), Some(interval), Some(ttl), Some(p)) =
                (r.beat_at, r.interval, r.ttl, r.published)
            else {
                continue;
            };
            let stale = beat + interval * STALE_INTERVALS + Duration::from_millis(1);
            let dead = beat + ttl + Duration::from_millis(1);
            for t in [
                (p != ready_signal::State::Stopping).then_some(stale),
                Some(dead),
            ]
            .into_iter()
            .flatten()
            {
                if t > now && next.is_none_or(|n| t < n) {
                    next = Some(t);
                }
            }
        }
        next
    }

    /// An immutable copy for readers.
    pub fn snapshot(&self) -> Arc<State> {
        Arc::new(self.state.clone())
    }
}

/// What a replica is at `now`, from its last beat and the thresholds its publisher promised
/// (the same rule as `ready_signal::Observer`: dead past the TTL, stale past two intervals).
fn judged(r: &Replica, now: Instant) -> Observed {
    match (r.published, r.beat_at) {
        (Some(p), Some(beat)) => {
            let age = now.saturating_duration_since(beat);
            match (r.interval, r.ttl) {
                (Some(_), Some(ttl)) if age > ttl => Observed::Dead,
                _ if p == ready_signal::State::Stopping => Observed::Stopping,
                (Some(interval), _) if age > interval * STALE_INTERVALS => Observed::Stale,
                _ => p.into(),
            }
        }
        // No record (dead) or an unreadable one (unknown): as the last read said.
        _ => match r.observed {
            Observed::Unknown => Observed::Unknown,
            _ if r.instance.is_none() => Observed::Dead,
            other => other,
        },
    }
}

/// Whether instance `a` is strictly newer than `b`. Events carry no epoch, so a late event is
/// told apart by the instance id, which starts with its process's start time; the next read
/// (fenced by epoch in the store) corrects any misjudgement within a read interval.
fn newer(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a > b,
        _ => false,
    }
}

/// Hostnames (and short ids) of running containers first, so a replica links to the live one.
fn link_index(containers: &[Container]) -> HashMap<&str, &str> {
    let mut index = HashMap::new();
    for c in containers.iter().filter(|c| !c.running) {
        index.insert(c.hostname.as_str(), c.id.as_str());
    }
    for c in containers.iter().filter(|c| c.running) {
        index.insert(c.hostname.as_str(), c.id.as_str());
    }
    index
}

fn fingerprint(s: &State) -> u64 {
    let mut h = DefaultHasher::new();
    s.store.as_str().hash(&mut h);
    s.store.reason().hash(&mut h);
    s.docker.as_str().hash(&mut h);
    s.docker.reason().hash(&mut h);
    for r in &s.replicas {
        (&r.namespace, &r.agent, &r.replica, r.observed.as_str()).hash(&mut h);
        (&r.instance, &r.reason, &r.container_id).hash(&mut h);
    }
    for c in &s.containers {
        (&c.id, &c.status, &c.health, c.restart_count, &c.exit_code).hash(&mut h);
        (&c.last_health_line, &c.started_at).hash(&mut h);
        if let Some(heal) = &c.heal {
            (&heal.status, heal.restarts_in_window, &heal.last_decision).hash(&mut h);
        }
    }
    (
        s.heal.mode.as_str(),
        &s.heal.shared_outage,
        &s.self_container,
    )
        .hash(&mut h);
    h.finish()
}

/// Runs the writer until `shutdown` resolves or every source is gone: applies changes as they
/// come (in batches), wakes at the next threshold crossing, and publishes every new snapshot.
/// At a crossing it also notifies `poke` (the store watchers), so a fresh read confirms the
/// new state within a round trip.
pub async fn run(
    mut book: Book,
    mut changes: mpsc::Receiver<Change>,
    snapshots: watch::Sender<Arc<State>>,
    poke: Option<Arc<tokio::sync::Notify>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let deadline = book.next_deadline(Instant::now());
        tokio::select! {
            _ = &mut shutdown => return,
            change = changes.recv() => match change {
                Some(c) => book.apply(c, Instant::now()),
                None => return,
            },
            _ = sleep_until(deadline), if deadline.is_some() => {
                if let Some(p) = &poke {
                    p.notify_waiters();
                }
            }
        }
        while let Ok(c) = changes.try_recv() {
            book.apply(c, Instant::now());
        }
        book.judge(Instant::now());
        snapshots.send_replace(book.snapshot());
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use ready_signal::Name;

    const NS: &str = "demo";

    fn status(
        agent: &str,
        replica: &str,
        published: ready_signal::State,
        age_ms: u64,
    ) -> ReplicaStatus {
        ReplicaStatus {
            agent: Name::new(agent).unwrap(),
            replica: Name::new(replica).unwrap(),
            state: published.into(),
            instance: Some("1764000000000-0a1b2c3d".into()),
            reason: None,
            age: Some(Duration::from_millis(age_ms)),
            since: Some(Duration::from_secs(5)),
            pid: Some(7),
            host: Some(replica.into()),
            published: Some(published),
            interval: Some(Duration::from_secs(1)),
            ttl: Some(Duration::from_secs(3)),
            epoch: Some(1),
            container: None,
            started: None,
        }
    }

    fn read(list: Vec<ReplicaStatus>) -> Change {
        Change::StoreRead {
            namespace: NS.into(),
            at: Instant::now(),
            result: Ok(list),
        }
    }

    fn book() -> Book {
        Book::new(Instant::now(), vec![NS.into()], true, true)
    }

    fn observed(b: &Book) -> Vec<(&str, Observed)> {
        b.state()
            .replicas
            .iter()
            .map(|r| (r.replica.as_str(), r.observed))
            .collect()
    }

    fn event(replica: &str, instance: &str, state: ready_signal::State, reason: &str) -> Change {
        Change::StoreEvent {
            namespace: NS.into(),
            at: Instant::now(),
            event: ready_signal::Event {
                agent: Name::new("worker").unwrap(),
                replica: Name::new(replica).unwrap(),
                instance: instance.into(),
                state,
                reason: reason.into(),
                container: None,
            },
        }
    }

    /// A replica whose beats stop turns stale past two intervals and dead past its TTL, by time
    /// alone, and the book names the exact instants it crosses.
    #[tokio::test(start_paused = true)]
    async fn ready_turns_stale_then_dead_with_time() {
        let mut b = book();
        b.apply(
            read(vec![status(
                "worker",
                "w1",
                ready_signal::State::Ready,
                500,
            )]),
            Instant::now(),
        );
        let t0 = Instant::now();
        b.judge(t0);
        assert_eq!(observed(&b), [("w1", Observed::Ready)]);
        // Beat 500 ms ago, interval 1 s: stale after 2 s of age, dead after 3 s.
        let stale_at = b.next_deadline(t0).unwrap();
        assert_eq!(stale_at - t0, Duration::from_millis(1501));
        tokio::time::advance(Duration::from_millis(1500)).await;
        b.judge(Instant::now());
        assert_eq!(observed(&b), [("w1", Observed::Ready)]);
        tokio::time::advance(Duration::from_millis(1)).await;
        b.judge(Instant::now());
        assert_eq!(observed(&b), [("w1", Observed::Stale)]);
        assert_eq!(b.state().replicas[0].since, Instant::now());
        let dead_at = b.next_deadline(Instant::now()).unwrap();
        assert_eq!(dead_at - t0, Duration::from_millis(2501));
        tokio::time::advance(Duration::from_millis(1000)).await;
        b.judge(Instant::now());
        assert_eq!(observed(&b), [("w1", Observed::Dead)]);
        assert_eq!(b.next_deadline(Instant::now()), None);
    }

    /// A published transition shows at once; a late event of an older instance is ignored.
    #[tokio::test(start_paused = true)]
    async fn events_apply_at_once_fenced_by_instance() {
        let mut b = book();
        b.apply(
            read(vec![status("worker", "w1", ready_signal::State::Ready, 0)]),
            Instant::now(),
        );
        b.judge(Instant::now());
        b.apply(
            event(
                "w1",
                "1764000000000-0a1b2c3d",
                ready_signal::State::NotReady,
                "redis down",
            ),
            Instant::now(),
        );
        b.judge(Instant::now());
        assert_eq!(observed(&b), [("w1", Observed::NotReady)]);
        assert_eq!(b.state().replicas[0].reason.as_deref(), Some("redis down"));
        // A new instance takes over, then the old one's late `stopping` arrives.
        b.apply(
            event(
                "w1",
                "1764000099999-00000001",
                ready_signal::State::Ready,
                "",
            ),
            Instant::now(),
        );
        b.apply(
            event(
                "w1",
                "1764000000000-0a1b2c3d",
                ready_signal::State::Stopping,
                "",
            ),
            Instant::now(),
        );
        b.judge(Instant::now());
        assert_eq!(observed(&b), [("w1", Observed::Ready)]);
        assert_eq!(
            b.state().replicas[0].instance.as_deref(),
            Some("1764000099999-00000001")
        );
    }

    /// A replica the store stops listing (its record expired) stays, as dead, for a while; one
    /// that said `stopping` first leaves at once.
    #[tokio::test(start_paused = true)]
    async fn vanished_replicas_show_dead_then_go() {
        let mut b = book();
        b.apply(
            read(vec![
                status("worker", "w1", ready_signal::State::Ready, 0),
                status("worker", "w2", ready_signal::State::Stopping, 0),
            ]),
            Instant::now(),
        );
        b.judge(Instant::now());
        b.apply(read(vec![]), Instant::now());
        b.judge(Instant::now());
        assert_eq!(observed(&b), [("w1", Observed::Dead)]);
        tokio::time::advance(DEAD_RETENTION).await;
        b.apply(read(vec![]), Instant::now());
        b.judge(Instant::now());
        assert_eq!(observed(&b), []);
    }

    /// An unreachable store makes every replica unknown with the reason, never dead, however
    /// long it lasts; the next good read restores the truth.
    #[tokio::test(start_paused = true)]
    async fn unreachable_store_is_unknown_not_dead() {
        let mut b = book();
        b.apply(
            read(vec![status("worker", "w1", ready_signal::State::Ready, 0)]),
            Instant::now(),
        );
        b.judge(Instant::now());
        let failed = Change::StoreRead {
            namespace: NS.into(),
            at: Instant::now(),
            result: Err("redis at redis:6379: connection refused".into()),
        };
        b.apply(failed, Instant::now());
        tokio::time::advance(Duration::from_secs(60)).await;
        b.judge(Instant::now());
        assert_eq!(observed(&b), [("w1", Observed::Unknown)]);
        assert_eq!(b.state().store.as_str(), "unknown");
        assert!(
            b.state().replicas[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("connection refused")
        );
        assert_eq!(b.state().counters.store_errors, 1);
        b.apply(
            read(vec![status("worker", "w1", ready_signal::State::Ready, 0)]),
            Instant::now(),
        );
        b.judge(Instant::now());
        assert_eq!(observed(&b), [("w1", Observed::Ready)]);
        assert!(b.state().store.is_ok());
    }

    fn container(id: &str, hostname: &str, running: bool) -> Container {
        Container {
            id: id.into(),
            name: format!("demo-{hostname}-1"),
            project: Some("demo".into()),
            service: Some(hostname.into()),
            hostname: hostname.into(),
            labels: BTreeMap::new(),
            status: if running { "running" } else { "exited" }.into(),
            running,
            health: Some("healthy".into()),
            health_since: None,
            failing_streak: 0,
            last_health_line: Some("ok".into()),
            restart_count: 0,
            exit_code: None,
            started_at: None,
            stop_timeout: None,
            start_period: None,
            heal: None,
        }
    }

    /// A replica links to the running container whose hostname it carries; heal updates land
    /// on their container by id.
    #[tokio::test(start_paused = true)]
    async fn links_replicas_to_containers_and_heal_lines() {
        let mut b = book();
        b.apply(
            read(vec![status(
                "worker",
                "abc123",
                ready_signal::State::Ready,
                0,
            )]),
            Instant::now(),
        );
        b.apply(
            Change::Docker(DockerChange::All(vec![
                container("old", "abc123", false),
                container("new", "abc123", true),
            ])),
            Instant::now(),
        );
        let mut heal = HealUpdate::default();
        heal.containers.insert(
            "new".into(),
            ContainerHeal {
                status: "backoff".into(),
                ..ContainerHeal::default()
            },
        );
        b.apply(Change::Heal(heal), Instant::now());
        b.judge(Instant::now());
        let s = b.state();
        assert_eq!(s.replicas[0].container_id.as_deref(), Some("new"));
        assert_eq!(
            s.container_of(&s.replicas[0])
                .unwrap()
                .heal
                .as_ref()
                .unwrap()
                .status,
            "backoff"
        );
        assert!(s.docker.is_ok());
    }

    /// The generation moves on a visible change only, not on a refresh of beat ages.
    #[tokio::test(start_paused = true)]
    async fn generation_counts_visible_changes() {
        let mut b = book();
        b.apply(
            read(vec![status("worker", "w1", ready_signal::State::Ready, 0)]),
            Instant::now(),
        );
        assert!(b.judge(Instant::now()));
        let g = b.state().generation;
        tokio::time::advance(Duration::from_millis(300)).await;
        b.apply(
            read(vec![status(
                "worker",
                "w1",
                ready_signal::State::Ready,
                100,
            )]),
            Instant::now(),
        );
        assert!(!b.judge(Instant::now()));
        assert_eq!(b.state().generation, g);
        b.apply(
            Change::Docker(DockerChange::Failed("docker: timed out".into())),
            Instant::now(),
        );
        assert!(b.judge(Instant::now()));
        assert_eq!(b.state().generation, g + 1);
    }

    /// The running writer publishes `stale` at the instant of crossing, without waiting for the
    /// next read.
    #[tokio::test(start_paused = true)]
    async fn writer_wakes_at_the_crossing() {
        let b = book();
        let (tx, mut rx) = watch::channel(b.snapshot());
        let (changes, incoming) = mpsc::channel(8);
        tokio::spawn(run(b, incoming, tx, None, std::future::pending()));
        changes
            .send(read(vec![status(
                "worker",
                "w1",
                ready_signal::State::Ready,
                0,
            )]))
            .await
            .unwrap();
        let t0 = Instant::now();
        let stale = rx
            .wait_for(|s| {
                s.replicas
                    .first()
                    .is_some_and(|r| r.observed == Observed::Stale)
            })
            .await
            .unwrap()
            .clone();
        let after = stale.built_at - t0;
        assert!(
            after >= Duration::from_millis(2000) && after <= Duration::from_millis(2002),
            "stale after {after:?}"
        );
    }
}
