//! The governor's thin I/O: reads snapshots, asks the pure policy, carries out its decisions
//! through the Docker API, and says every one of them four ways (a tracing line, a NATS event,
//! a metric counted in the snapshot, and a line on the status page).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::query_parameters::{EventsOptions, RestartContainerOptions};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::history::History;
use super::policy::{self, Action, Decision, Mode, Why};
use super::{Config, observe, subject};
use crate::state::{ContainerHeal, HealCount, HealMode, HealSummary, State};
use crate::writer::{Change, Changes, HealUpdate};

/// Docker's stop timeout when a container sets none (the engine's own default).
pub const DEFAULT_STOP_TIMEOUT: i64 = 10;

/// Longer than any restart may take beyond its stop timeout (start-up included).
const RESTART_SLACK: Duration = Duration::from_secs(60);

/// The JSON published on `healthcheck.heal.{project}.{service}` for every decision said.
#[derive(Debug, Clone, Serialize)]
pub struct HealEvent {
    /// Format version.
    pub v: u32,
    /// Unix milliseconds on the sidecar's clock.
    pub at_ms: u64,
    /// Compose project (empty outside Compose).
    pub project: String,
    /// Compose service (the container name outside Compose).
    pub service: String,
    /// Container name.
    pub container: String,
    /// Container id.
    pub id: String,
    /// `restart`, `skip`, `quarantine`, `release`, `earn-back`, `restarted`, `restart-failed`.
    pub decision: String,
    /// A fixed word (the metric's `why` label).
    pub why: String,
    /// The same, in words.
    pub detail: String,
    /// Dry run: nothing was done.
    pub dry_run: bool,
    /// Restarts within the budget window, this one included.
    pub restarts_in_window: u32,
}

/// What a finished restart reports back to the loop.
#[derive(Debug)]
struct Done {
    id: String,
    result: Result<Duration, String>,
}

/// The governor's mutable side: history, what it said last, its counts.
struct Governor {
    cfg: Config,
    docker: Docker,
    nats: Option<async_nats::Client>,
    changes: Changes,
    history: History,
    /// Per container: the last (action, why) said, so a standing skip is said once.
    said: HashMap<String, (&'static str, &'static str)>,
    /// Per container: the line shown on the page.
    lines: HashMap<String, String>,
    /// Per container: when its current bad spell began (stale, dead, unhealthy in any order).
    bad_since: HashMap<String, Instant>,
    /// Per container: the start after which it was last seen healthy.
    ready_after_start: HashMap<String, Instant>,
    counts: BTreeMap<(String, String, String), u64>,
    outage: Option<String>,
    last_update: Option<HealUpdate>,
    done_tx: mpsc::Sender<Done>,
    /// The history changed since it was last saved.
    dirty: bool,
    /// Saving failed last time (said once, not at every change).
    save_failed: bool,
}

/// How a page line for a skip begins: a skip explains a moment, and is cleared once it passes.
const SKIP_PREFIX: &str = "left alone: ";

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs the governor until `shutdown` resolves: evaluates every new snapshot and, while a
/// container is in a bad spell or a restart is under way, at least every `cfg.tick` (a backoff
/// ends without anything changing); one restart task per restart.
pub async fn run(
    cfg: Config,
    docker: Docker,
    mut snapshots: watch::Receiver<Arc<State>>,
    changes: Changes,
    nats: Option<async_nats::Client>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    if let Some(id) = cfg.self_id.clone() {
        let _ = changes.send(Change::SelfContainer(id)).await;
    }
    let (done_tx, mut done_rx) = mpsc::channel(16);
    let mut g = Governor::new(cfg, docker, nats, changes, done_tx);
    // Before any decision: what was saved, and what Docker remembers of recent restarts.
    let (now, wall) = (Instant::now(), SystemTime::now());
    if let Some(path) = &g.cfg.state_file {
        match read_state(path) {
            Ok(Some(saved)) => g.history = History::restore(&saved, now, wall),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(target: "heal", path = %path.display(), error = %e, "saved heal history not read")
            }
        }
    }
    let saved: usize = g.history.iter().map(|(_, m)| m.restarts.len()).sum();
    let window = g.cfg.defaults.window;
    match load_restarts(&g.docker, window, now, wall).await {
        Ok(seen) => {
            for (id, at) in &seen {
                g.history.merge_restart(id, *at);
            }
            let total: usize = g.history.iter().map(|(_, m)| m.restarts.len()).sum();
            tracing::info!(target: "heal", saved, from_events = seen.len(), restarts = total, window_s = window.as_secs(), "history rebuilt from the saved file and docker restart events");
        }
        Err(e) => {
            tracing::warn!(target: "heal", saved, error = %e, "docker restart events could not be read: history from the saved file only")
        }
    }
    let mut tick = tokio::time::interval(g.cfg.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // The clock matters only while some container is in a bad spell (heal_after, backoff)
        // or a restart is under way; otherwise every decision waits for a new snapshot, and a
        // stack at rest costs the governor nothing between them.
        let clocked = !g.bad_since.is_empty() || g.history.in_flight() > 0;
        tokio::select! {
            _ = &mut shutdown => return,
            changed = snapshots.changed() => if changed.is_err() { return },
            _ = tick.tick(), if clocked => {}
            Some(done) = done_rx.recv() => {
                // Cloned out first: a watch guard must not be held across an await.
                let state = snapshots.borrow().clone();
                g.finished(done, &state).await;
            }
        }
        let state = snapshots.borrow_and_update().clone();
        g.round(&state, Instant::now(), SystemTime::now()).await;
    }
}

impl Governor {
    /// A governor with an empty history (the caller restores what was saved).
    fn new(
        cfg: Config,
        docker: Docker,
        nats: Option<async_nats::Client>,
        changes: Changes,
        done_tx: mpsc::Sender<Done>,
    ) -> Governor {
        Governor {
            history: History::new(),
            cfg,
            docker,
            nats,
            changes,
            said: HashMap::new(),
            lines: HashMap::new(),
            bad_since: HashMap::new(),
            ready_after_start: HashMap::new(),
            counts: BTreeMap::new(),
            outage: None,
            last_update: None,
            done_tx,
            dirty: false,
            save_failed: false,
        }
    }

    async fn round(&mut self, state: &State, now: Instant, wall: SystemTime) {
        // Docker unreadable (or not read yet): the container list is not known to be current, and
        // pruning the history against it would forget what was rebuilt at start. Do nothing.
        if !state.docker.is_ok() {
            return;
        }
        let (mut input, bad_labels) = observe(state, &self.cfg, now, wall);
        // Stale, then dead, then unhealthy is one bad spell: its clock starts at the first.
        // And a container seen healthy since it (re)started is no longer "starting".
        for c in &mut input.containers {
            if c.condition == policy::Condition::Healthy {
                self.ready_after_start.insert(c.id.clone(), c.started_at);
            }
            c.ready_since_start = self.ready_after_start.get(&c.id).is_some_and(|s| {
                // The same start, give or take the clock conversion of Docker's StartedAt.
                s.max(&c.started_at)
                    .saturating_duration_since(*s.min(&c.started_at))
                    < Duration::from_secs(1)
            });
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
        let hold = policy::brake(&self.cfg.policy, &input);
        if hold.is_some() {
            self.history.hold(now);
        }
        let decisions = policy::decide(&self.cfg.policy, &input, &self.history, now);
        let outage = match hold {
            Some(w @ Why::SharedOutage { .. }) => Some(w.to_string()),
            _ => None,
        };
        if outage.is_some() != self.outage.is_some() {
            match &outage {
                Some(o) => tracing::warn!(target: "heal", "{o}: every restart held"),
                None => {
                    tracing::info!(target: "heal", "shared outage over: restarts allowed again")
                }
            }
        }
        self.outage = outage;
        let mut spoken: Vec<&str> = Vec::new();
        for d in &decisions {
            spoken.push(&d.id);
            let window = input
                .containers
                .iter()
                .find(|c| c.id == d.id)
                .map_or(self.cfg.defaults.window, |c| c.rules.window);
            self.carry_out(d, state, window, now, wall).await;
        }
        for (id, e) in &bad_labels {
            let line = format!("not healed: {e}");
            if self.lines.get(id) != Some(&line) {
                tracing::warn!(target: "heal", container = %id, error = %e, "bad heal label");
                self.lines.insert(id.clone(), line);
            }
            spoken.push(id);
        }
        // A container gone quiet (healthy, nothing to say): its next skip is said again; its
        // page line keeps the last thing done to it (a restart, a quarantine), but not a reason
        // it was left alone, which no longer holds.
        for c in &input.containers {
            if !spoken.contains(&c.id.as_str()) && !self.history.is_in_flight(&c.id) {
                self.said.remove(&c.id);
                if c.opted_in {
                    let line = self.lines.entry(c.id.clone()).or_default();
                    if line.is_empty() || line.starts_with(SKIP_PREFIX) {
                        *line = "watching".into();
                    }
                } else {
                    self.lines.remove(&c.id);
                }
            }
        }
        self.bad_since
            .retain(|id, _| input.containers.iter().any(|c| &c.id == id));
        self.ready_after_start
            .retain(|id, _| input.containers.iter().any(|c| &c.id == id));
        self.history.prune(
            state.containers.iter().map(|c| c.id.as_str()),
            now,
            self.cfg.defaults.window.max(Duration::from_secs(3600)),
        );
        self.publish(state, &input, now).await;
        if self.dirty {
            self.dirty = false;
            self.save(now, wall);
        }
    }

    /// Writes the history to the state file, if there is one (a new file renamed over the old).
    fn save(&mut self, now: Instant, wall: SystemTime) {
        let Some(path) = &self.cfg.state_file else {
            return;
        };
        let saved = self.history.save(now, wall);
        let result = serde_json::to_vec(&saved)
            .map_err(std::io::Error::other)
            .and_then(|body| {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, body)?;
                std::fs::rename(&tmp, path)
            });
        match result {
            Ok(()) => self.save_failed = false,
            Err(e) if !self.save_failed => {
                self.save_failed = true;
                tracing::warn!(target: "heal", path = %path.display(), error = %e, "heal history not saved: a restarted sidecar will rely on docker's events");
            }
            Err(_) => {}
        }
    }

    async fn carry_out(
        &mut self,
        d: &Decision,
        state: &State,
        window: Duration,
        now: Instant,
        wall: SystemTime,
    ) {
        let key = (d.action.as_str(), d.why.as_str());
        let repeat = self.said.get(&d.id) == Some(&key) && d.action == Action::Skip;
        let c = state.containers.iter().find(|c| c.id == d.id);
        let project = c.and_then(|c| c.project.clone()).unwrap_or_default();
        if let Action::Restart { dry_run: false, .. } = d.action {
            let t = c
                .and_then(|c| c.stop_timeout)
                .unwrap_or(DEFAULT_STOP_TIMEOUT);
            self.history.begin(&d.id, &d.service);
            let docker = self.docker.clone();
            let id = d.id.clone();
            let tx = self.done_tx.clone();
            tokio::spawn(async move {
                let began = Instant::now();
                let opts = RestartContainerOptions {
                    t: Some(t.clamp(0, i64::from(i32::MAX)) as i32),
                    signal: None,
                };
                let limit = Duration::from_secs(t.max(0) as u64) + RESTART_SLACK;
                let result =
                    match tokio::time::timeout(limit, docker.restart_container(&id, Some(opts)))
                        .await
                    {
                        Ok(Ok(())) => Ok(began.elapsed()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("no answer within {}s", limit.as_secs())),
                    };
                let _ = tx.send(Done { id, result }).await;
            });
        }
        policy::apply(&mut self.history, d, now);
        self.dirty |= d.action != Action::Skip;
        let restarts = self
            .history
            .get(&d.id)
            .map(|m| m.in_window(now, window))
            .unwrap_or(0);
        let line = match d.action {
            Action::Restart {
                dry_run: true,
                attempt,
            } => format!("dry run: would restart ({}; attempt {attempt})", d.why),
            Action::Restart { attempt, .. } => format!("restarting ({}; attempt {attempt})", d.why),
            Action::Skip => format!("{SKIP_PREFIX}{}", d.why),
            Action::Quarantine => format!("quarantined: {}", d.why),
            Action::Release => format!("released from quarantine: {}", d.why),
            Action::EarnBack => format!("backoff earned back: {}", d.why),
        };
        self.lines.insert(d.id.clone(), line);
        if repeat {
            return;
        }
        self.said.insert(d.id.clone(), key);
        let dry_run = matches!(d.action, Action::Restart { dry_run: true, .. });
        tracing::info!(
            target: "heal",
            container = %d.name,
            id = %short(&d.id),
            service = %d.service,
            decision = d.action.as_str(),
            why = d.why.as_str(),
            dry_run,
            restarts_in_window = restarts,
            "{}",
            d.why
        );
        *self
            .counts
            .entry((
                d.service.clone(),
                d.action.as_str().to_owned(),
                d.why.as_str().to_owned(),
            ))
            .or_default() += 1;
        let event = HealEvent {
            v: 1,
            at_ms: unix_ms(wall),
            project,
            service: d.service.clone(),
            container: d.name.clone(),
            id: d.id.clone(),
            decision: d.action.as_str().to_owned(),
            why: d.why.as_str().to_owned(),
            detail: d.why.to_string(),
            dry_run,
            restarts_in_window: restarts,
        };
        self.emit(event).await;
    }

    async fn finished(&mut self, done: Done, state: &State) {
        self.history.end(&done.id);
        let c = state.containers.iter().find(|c| c.id == done.id);
        let name = c
            .map(|c| c.name.clone())
            .unwrap_or_else(|| short(&done.id).to_owned());
        let service = c
            .and_then(|c| c.service.clone())
            .unwrap_or_else(|| name.clone());
        let (decision, detail) = match &done.result {
            Ok(took) => {
                tracing::info!(target: "heal", container = %name, service = %service, took_ms = took.as_millis() as u64, decision = "restarted", "restart done");
                self.lines.insert(
                    done.id.clone(),
                    format!("restarted in {:.1}s", took.as_secs_f64()),
                );
                (
                    "restarted",
                    format!("docker restart took {:.1}s", took.as_secs_f64()),
                )
            }
            Err(e) => {
                tracing::warn!(target: "heal", container = %name, service = %service, error = %e, decision = "restart-failed", "restart failed");
                self.lines
                    .insert(done.id.clone(), format!("restart failed: {e}"));
                ("restart-failed", e.clone())
            }
        };
        *self
            .counts
            .entry((service.clone(), decision.to_owned(), "done".to_owned()))
            .or_default() += 1;
        self.said.remove(&done.id);
        let event = HealEvent {
            v: 1,
            at_ms: unix_ms(SystemTime::now()),
            project: c.and_then(|c| c.project.clone()).unwrap_or_default(),
            service,
            container: name,
            id: done.id.clone(),
            decision: decision.to_owned(),
            why: "done".to_owned(),
            detail,
            dry_run: false,
            restarts_in_window: 0,
        };
        self.emit(event).await;
    }

    async fn emit(&self, event: HealEvent) {
        let Some(nats) = &self.nats else { return };
        let subject = subject(&event.project, &event.service);
        match serde_json::to_vec(&event) {
            Ok(body) => {
                if let Err(e) = nats.publish(subject.clone(), body.into()).await {
                    tracing::warn!(target: "heal", subject, error = %e, "heal event not published");
                }
            }
            Err(e) => tracing::warn!(target: "heal", error = %e, "heal event not encoded"),
        }
    }

    /// Sends the page's view to the writer when it changed (latest wins there).
    async fn publish(&mut self, state: &State, input: &policy::Input, now: Instant) {
        let mut containers = BTreeMap::new();
        for c in &input.containers {
            let Some(line) = self.lines.get(&c.id) else {
                continue;
            };
            let m = self.history.get(&c.id);
            let restarts_in_window = m.map(|m| m.in_window(now, c.rules.window)).unwrap_or(0);
            let next = m
                .and_then(|m| policy::next_allowed(&c.rules, &c.id, m))
                .filter(|t| *t > now);
            let status = if self.history.is_in_flight(&c.id) {
                "restarting"
            } else if input.is_self(&c.id) {
                "self (never restarted)"
            } else if m.is_some_and(|m| m.quarantined.is_some()) {
                "quarantined"
            } else if !c.opted_in {
                "not healed"
            } else if next.is_some() {
                "backoff"
            } else {
                "watching"
            };
            containers.insert(
                c.id.clone(),
                ContainerHeal {
                    status: status.to_owned(),
                    restarts_in_window,
                    next_allowed_in: next.map(|t| t - now),
                    last_decision: Some(line.clone()),
                },
            );
        }
        let summary = HealSummary {
            mode: match self.cfg.policy.mode {
                Mode::DryRun => HealMode::DryRun,
                Mode::On => HealMode::On,
            },
            shared_outage: self.outage.clone(),
            decisions: self
                .counts
                .iter()
                .map(|((service, decision, why), count)| HealCount {
                    service: service.clone(),
                    decision: decision.clone(),
                    why: why.clone(),
                    count: *count,
                })
                .collect(),
        };
        let _ = state;
        let update = HealUpdate {
            summary,
            containers,
        };
        // Only a change is sent (the countdown alone is not a change worth a snapshot).
        let same = self.last_update.as_ref().is_some_and(|u| {
            u.summary == update.summary
                && u.containers.len() == update.containers.len()
                && u.containers
                    .iter()
                    .zip(&update.containers)
                    .all(|((ka, a), (kb, b))| {
                        ka == kb
                            && a.status == b.status
                            && a.restarts_in_window == b.restarts_in_window
                            && a.last_decision == b.last_decision
                    })
        });
        if !same {
            self.last_update = Some(update.clone());
            let _ = self.changes.send(Change::Heal(update)).await;
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The saved history in `path`: `None` when there is no file yet; an error names what is wrong.
pub fn read_state(path: &std::path::Path) -> Result<Option<super::history::Saved>, String> {
    match std::fs::read(path) {
        Ok(body) => serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| format!("not a heal history: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// The `restart` events of labelled containers in the last `window`, as (container id, when):
/// every restart through the API counts (ours, or a person's `docker restart`: that can only make
/// the governor more careful). The engine keeps only its last few hundred events for `since`
/// queries, and every healthcheck exec is three events, so on a busy engine the oldest restarts
/// are missing: that is why the history is also saved to a file.
pub async fn load_restarts(
    docker: &Docker,
    window: Duration,
    now: Instant,
    wall: SystemTime,
) -> Result<Vec<(String, Instant)>, bollard::errors::Error> {
    let wall_s = wall
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let since = wall_s.saturating_sub(window.as_secs());
    let mut filters = HashMap::new();
    filters.insert("type".to_owned(), vec!["container".to_owned()]);
    filters.insert("event".to_owned(), vec!["restart".to_owned()]);
    filters.insert(
        "label".to_owned(),
        vec![format!("{}=true", super::labels::OPT_IN)],
    );
    let opts = EventsOptions {
        since: Some(since.to_string()),
        until: Some((wall_s + 1).to_string()),
        filters: Some(filters),
    };
    let mut seen = Vec::new();
    let mut events = docker.events(Some(opts));
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    loop {
        let next = tokio::select! {
            e = events.next() => e,
            _ = &mut deadline => break,
        };
        let Some(event) = next else { break };
        let event = event?;
        let Some(id) = event.actor.and_then(|a| a.id) else {
            continue;
        };
        let at_ns = event
            .time_nano
            .unwrap_or(event.time.unwrap_or(0) * 1_000_000_000);
        let at_wall = UNIX_EPOCH + Duration::from_nanos(at_ns.max(0) as u64);
        let ago = wall.duration_since(at_wall).unwrap_or_default();
        seen.push((id, now.checked_sub(ago).unwrap_or(now)));
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Container, Source};

    fn placeholder_docker(dir: &tempfile::TempDir) -> Docker {
        // A path that exists but where no engine listens: every call fails, nothing is restarted.
        let sock = dir.path().join("docker.sock");
        std::fs::write(&sock, b"").expect("placeholder");
        Docker::connect_with_unix(&sock.to_string_lossy(), 1, bollard::API_DEFAULT_VERSION)
            .expect("a client is built without connecting")
    }

    /// A decision is published as JSON on healthcheck.heal.{project}.{service}, even when NATS was
    /// not up yet when the sidecar started (the client connects late and sends what it buffered).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn decisions_reach_nats_even_when_it_comes_late() {
        let mut server = harness::NatsServer::start();
        let store = ready_signal::StoreConfig::new()
            .nats(&server.url())
            .expect("url");
        server.stop();
        let client = tokio::time::timeout(
            Duration::from_secs(5),
            store.nats_client(Duration::from_secs(2)),
        )
        .await
        .expect("returns at once without a server")
        .expect("a lazy client")
        .expect("nats configured");
        server.restart();
        let watcher = async_nats::connect(server.url())
            .await
            .expect("watcher connects");
        let mut sub = watcher
            .subscribe("healthcheck.heal.>")
            .await
            .expect("subscribe");
        watcher.flush().await.expect("flush");

        let dir = tempfile::tempdir().expect("temp dir");
        let (mut g, _incoming, _done) = governor(Mode::On, &dir, Some(client));
        let now = Instant::now();
        let state = one_container(now);
        let d = Decision {
            id: state.containers[0].id.clone(),
            name: "demo-agent-a-1".into(),
            service: "agent-a".into(),
            action: Action::Quarantine,
            why: Why::BudgetSpent { restarts: 5 },
        };
        // Published until the late client has connected and the watcher sees one.
        let msg = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                g.said.clear();
                g.carry_out(
                    &d,
                    &state,
                    Duration::from_secs(1800),
                    now,
                    SystemTime::now(),
                )
                .await;
                if let Ok(Some(m)) =
                    tokio::time::timeout(Duration::from_millis(500), sub.next()).await
                {
                    return m;
                }
            }
        })
        .await
        .expect("a heal event on NATS");
        assert_eq!(msg.subject.as_str(), "healthcheck.heal.demo.agent-a");
        let v: serde_json::Value = serde_json::from_slice(&msg.payload).expect("json");
        assert_eq!(v["decision"], "quarantine");
        assert_eq!(v["why"], "budget-spent");
        assert_eq!(v["container"], "demo-agent-a-1");
        assert_eq!(v["project"], "demo");
        assert!(v["detail"].as_str().unwrap_or("").contains("budget spent"));
        assert!(
            g.history
                .get(&d.id)
                .is_some_and(|m| m.quarantined.is_some())
        );
    }

    /// In dry run a restart decision is said and remembered (its backoff is shown) but no restart
    /// is started: nothing in flight, no restart task reporting back.
    #[tokio::test]
    async fn dry_run_restarts_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut g, _incoming, mut done) = governor(Mode::DryRun, &dir, None);
        let now = Instant::now();
        let state = one_container(now);
        let d = Decision {
            id: state.containers[0].id.clone(),
            name: "demo-agent-a-1".into(),
            service: "agent-a".into(),
            action: Action::Restart {
                attempt: 1,
                dry_run: true,
            },
            why: Why::Unhealthy(Duration::from_secs(12)),
        };
        g.carry_out(
            &d,
            &state,
            Duration::from_secs(1800),
            now,
            SystemTime::now(),
        )
        .await;
        assert!(!g.history.is_in_flight(&d.id));
        assert_eq!(g.history.get(&d.id).map(|m| m.restarts.len()), Some(1));
        assert!(g.lines[&d.id].starts_with("dry run: would restart"));
        let waited = tokio::time::timeout(Duration::from_millis(300), done.recv()).await;
        assert!(waited.is_err(), "a restart task ran: {waited:?}");
    }

    fn governor(
        mode: Mode,
        dir: &tempfile::TempDir,
        nats: Option<async_nats::Client>,
    ) -> (Governor, mpsc::Receiver<Change>, mpsc::Receiver<Done>) {
        let (changes, incoming) = mpsc::channel(8);
        let (done_tx, done_rx) = mpsc::channel(1);
        let cfg = Config {
            self_id: None,
            ..Config::new(mode)
        };
        let g = Governor::new(cfg, placeholder_docker(dir), nats, changes, done_tx);
        (g, incoming, done_rx)
    }

    fn one_container(now: Instant) -> State {
        let mut state = State::new(now, Source::Ok, Source::Ok);
        state.containers.push(Container {
            id: "c0ffee".repeat(10) + "c0ff",
            name: "demo-agent-a-1".into(),
            project: Some("demo".into()),
            service: Some("agent-a".into()),
            hostname: "c0ffeec0ffee".into(),
            labels: Default::default(),
            status: "running".into(),
            running: true,
            health: Some("unhealthy".into()),
            health_since: Some(now),
            failing_streak: 3,
            last_health_line: None,
            restart_count: 0,
            exit_code: None,
            started_at: None,
            health_checked_at: None,
            instances: Vec::new(),
            earlier_instances: Vec::new(),
            stop_timeout: None,
            start_period: None,
            heal: None,
        });
        state
    }

    /// The governor's future can be spawned on the multi-threaded runtime: it holds no snapshot
    /// guard across an await (this fails to compile otherwise).
    #[tokio::test]
    async fn run_is_send() {
        fn spawnable<T: Send + 'static>(_: &T) {}
        let state = Arc::new(State::new(Instant::now(), Source::Ok, Source::Ok));
        let (_tx, rx) = watch::channel(state);
        let (changes, _incoming) = mpsc::channel(1);
        let dir = tempfile::tempdir().expect("temp dir");
        let docker = placeholder_docker(&dir);
        let cfg = Config {
            self_id: None,
            ..Config::new(Mode::On)
        };
        let fut = run(cfg, docker, rx, changes, None, std::future::ready(()));
        spawnable(&fut);
        // With shutdown already resolved it returns after its start-up, having restarted nothing.
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("run returns on shutdown");
    }
}
