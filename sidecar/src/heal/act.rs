//! The governor's thin I/O: reads snapshots, asks the pure policy, carries out its decisions
//! through the Docker API, and says every one of them four ways (a tracing line, a NATS event,
//! a metric counted in the snapshot, and a line on the status page).
//!
//! Every map here keyed by container id says when its entries leave: when the container is no
//! longer in the snapshot (removed), at the end of each round.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::query_parameters::{EventsOptions, InspectContainerOptions, RestartContainerOptions};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::dependents::{self, Leave, Next, Wait};
use super::history::{EngineAction, EngineEvent, History, Saved};
use super::policy::{self, Action, Decision, Mode, Why};
use super::{Config, observe, statefile, subject};
use crate::error::Error as DockerError;
use crate::state::{ContainerHeal, HealCount, HealMode, HealSummary, State};
use crate::writer::{Change, Changes, HealUpdate};

/// Docker's stop timeout when a container sets none (the engine's own default).
pub const DEFAULT_STOP_TIMEOUT: i64 = 10;

/// Longer than any restart may take beyond its stop timeout (start-up included).
const RESTART_SLACK: Duration = Duration::from_secs(60);

/// How long the inspect after a restart (for the start it produced) may take.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one heal event may wait to be handed to the NATS client: in an outage its buffer
/// fills, and the governor's loop must not wait on it (the event is logged and dropped).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// `dependents-restarted` only: the containers restarted after this one, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dependents: Vec<String>,
}

/// A provider's restart whose dependents are due: said once all of them are settled.
#[derive(Debug, Clone)]
struct Cascade {
    /// The provider's container id.
    provider: String,
    /// The dependents still due after it.
    members: std::collections::BTreeSet<String>,
    /// The names of those the governor restarted after it, in order.
    restarted: Vec<String>,
}

/// Cascades kept at most (a provider restarted in a loop must not grow the list without end:
/// the oldest is dropped, its dependents stay due).
const MAX_CASCADES: usize = 64;

/// What a finished restart reports back to the loop.
#[derive(Debug)]
struct Done {
    id: String,
    result: Result<Restarted, DockerError>,
}

/// A restart Docker carried out.
#[derive(Debug)]
struct Restarted {
    /// How long the call took (stop, grace, start).
    took: Duration,
    /// The start it produced (`State.StartedAt` read right after), Unix nanoseconds, when read.
    started_ns: Option<u64>,
}

/// Decision counts, by Compose project, service, decision and why (fixed words).
type Counts = BTreeMap<(String, String, String, String), u64>;

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
    /// Per container restarted by us: the start the restart produced (Unix nanoseconds), until a
    /// snapshot shows it (or a later one). Until then the snapshot shows the old process.
    awaiting_start: HashMap<String, u64>,
    counts: Counts,
    outage: Option<String>,
    last_update: Option<HealUpdate>,
    done_tx: mpsc::Sender<Done>,
    /// Every container's start as last seen (Unix nanoseconds): a start that moved is a restart,
    /// whoever made it. Replaced every round (removed containers leave it).
    starts_seen: HashMap<String, Option<u64>>,
    /// Dependents due for a restart after a provider's restart: container id → the line that
    /// names the provider. An entry leaves once the dependent started after its providers, is
    /// given up (said why), or is removed.
    due: BTreeMap<String, String>,
    /// Dependents the governor is restarting after a provider: id → the line naming it.
    after_provider: HashMap<String, String>,
    /// Providers' restarts whose dependents are still due (for the `dependents-restarted`
    /// notification); bounded by [`MAX_CASCADES`].
    cascades: Vec<Cascade>,
    /// Couplings refused, as last said (each is logged once while it stands).
    couplings_refused: Vec<String>,
    /// The history changed since it was last saved.
    dirty: bool,
    /// Saving failed last time (said once, not at every change).
    save_failed: bool,
}

/// The governor's restarts per container whose starts the snapshot carries (the history's
/// restart attribution needs only the latest).
const RESTART_KEYS: usize = 8;

/// How a page line for a skip begins: a skip explains a moment, and is cleared once it passes.
const SKIP_PREFIX: &str = "left alone: ";

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Docker's RFC 3339 `StartedAt` in Unix nanoseconds.
fn rfc3339_ns(s: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    u64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_nanos()).ok()
}

/// Runs the governor until `shutdown` resolves: evaluates every new snapshot and, while a
/// container is in a bad spell or a restart is under way, at least every `cfg.tick` (a backoff
/// ends without anything changing); one restart task per restart.
///
/// When `cfg.refused` says why it must not heal (its own container cannot be found), it
/// restarts nothing, ever: it says why once in the log and keeps it on the page and in the
/// metrics until shutdown, and marks every snapshot done (deciding nothing on it).
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
    // A short id (the host name's hint) is trusted only once the engine confirms it.
    if g.cfg.refused.is_none()
        && let Some(id) = g.cfg.self_id.clone()
        && id.len() < 64
    {
        let found = match tokio::time::timeout(
            INSPECT_TIMEOUT,
            g.docker
                .inspect_container(&id, None::<InspectContainerOptions>),
        )
        .await
        {
            Ok(Ok(r)) => Ok(r.id),
            Ok(Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            })) => Ok(None),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {}s", INSPECT_TIMEOUT.as_secs())),
        };
        g.cfg.refused = super::selfid::confirm(&id, found).err();
    }
    if let Some(why) = g.cfg.refused.clone() {
        tracing::error!(target: "heal", reason = %why, "the governor heals nothing: {why}");
        g.publish_refusal().await;
        // Refusing is not being stuck: every snapshot is still marked done (nothing decided), so
        // the self-watch (`--self-signal`) does not call the sidecar frozen.
        loop {
            let built_at = snapshots.borrow_and_update().built_at;
            g.cfg.hooks.round_done(built_at);
            tokio::select! {
                _ = &mut shutdown => return,
                changed = snapshots.changed() => if changed.is_err() { return },
            }
        }
    }
    g.rebuild_history().await;
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
        g.cfg.hooks.round_done(state.built_at);
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
            awaiting_start: HashMap::new(),
            starts_seen: HashMap::new(),
            due: BTreeMap::new(),
            after_provider: HashMap::new(),
            cascades: Vec::new(),
            couplings_refused: Vec::new(),
            counts: BTreeMap::new(),
            outage: None,
            last_update: None,
            done_tx,
            dirty: false,
            save_failed: false,
        }
    }

    /// Before any decision: what was saved, merged with what Docker remembers of recent
    /// restarts (each restart once, see [`Saved::merge_events`]).
    async fn rebuild_history(&mut self) {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut saved = Saved::default();
        if let Some(path) = &self.cfg.state_file {
            match statefile::read(path) {
                Ok(Some(s)) => saved = s,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(target: "heal", path = %path.display(), error = %e, "saved heal history not read")
                }
            }
        }
        let from_file: usize = saved
            .containers
            .values()
            .map(|m| m.restarts.len() + m.restarts_ms.len())
            .sum();
        let window = self.cfg.defaults.window;
        let from_events = match load_events(&self.docker, window, wall).await {
            Ok(events) => saved.merge_events(&events),
            Err(e) => {
                tracing::warn!(target: "heal", error = %e, "docker's restart events could not be read: history from the saved file only");
                0
            }
        };
        let (history, dropped) = History::restore(&saved, now, wall);
        self.history = history;
        if !dropped.is_empty() {
            tracing::warn!(target: "heal", later_than_now = dropped.future, before_clock_origin = dropped.unrepresentable, "saved heal times dropped: they cannot be placed on this clock (never moved to now)");
        }
        // The merge may have learnt starts the file did not know: keep them.
        self.dirty = from_events > 0;
        tracing::info!(target: "heal", from_file, from_events, restarts = self.history.restart_count(), window_s = window.as_secs(), state_file = %self.cfg.state_file.as_deref().map_or("none".into(), |p| p.display().to_string()), "history rebuilt from the saved file and docker's events");
    }

    async fn round(&mut self, state: &State, now: Instant, wall: SystemTime) {
        // Docker unreadable (or not read yet): the container list is not known to be current, and
        // pruning the history against it would forget what was rebuilt at start. Do nothing.
        if !state.docker.is_ok() {
            return;
        }
        let (mut input, bad_labels) = observe(state, &self.cfg, now, wall);
        // A restart's own start seen (or a later one): decided on again from here.
        for c in &state.containers {
            let seen = c.started_at.as_deref().and_then(rfc3339_ns);
            if let Some(want) = self.awaiting_start.get(&c.id)
                && seen.is_some_and(|seen| seen >= *want)
            {
                self.awaiting_start.remove(&c.id);
            }
        }
        // Stale, then dead, then unhealthy is one bad spell: its clock starts at the first.
        // And a container seen healthy since it (re)started is no longer "starting".
        for c in &mut input.containers {
            c.awaiting_start = self.awaiting_start.contains_key(&c.id);
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
            self.cfg.hooks.outage(outage.as_deref());
            match &outage {
                Some(o) => tracing::warn!(target: "heal", "{o}: every restart held"),
                None => {
                    tracing::info!(target: "heal", "shared outage over: restarts allowed again")
                }
            }
        }
        self.outage = outage;
        let mut spoken: Vec<String> = Vec::new();
        for d in &decisions {
            spoken.push(d.id.clone());
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
            spoken.push(id.clone());
        }
        spoken.extend(self.dependents(state, &input, now, wall).await);
        // A container gone quiet (healthy, nothing to say): its next skip is said again; its
        // page line keeps the last thing done to it (a restart, a quarantine), but not a reason
        // it was left alone, which no longer holds.
        for c in &input.containers {
            if !spoken.contains(&c.id) && !self.history.is_in_flight(&c.id) {
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
        self.forget_gone(state);
        self.history.prune(
            state.containers.iter().map(|c| c.id.as_str()),
            now,
            self.cfg.defaults.window.max(Duration::from_secs(3600)),
        );
        self.publish(&input, now).await;
        if self.dirty {
            self.dirty = false;
            self.save(now, wall);
        }
    }

    /// Forgets what is kept per container for containers no longer in the snapshot (removed):
    /// without it a long-running sidecar of a stack that is recreated often grows without end.
    /// A restart under way keeps its entries until it reports back.
    fn forget_gone(&mut self, state: &State) {
        let history = &self.history;
        let alive =
            |id: &String| state.containers.iter().any(|c| &c.id == id) || history.is_in_flight(id);
        self.said.retain(|id, _| alive(id));
        self.lines.retain(|id, _| alive(id));
        self.bad_since.retain(|id, _| alive(id));
        self.ready_after_start.retain(|id, _| alive(id));
        self.awaiting_start.retain(|id, _| alive(id));
        self.due.retain(|id, _| alive(id));
        self.after_provider.retain(|id, _| alive(id));
        for c in &mut self.cascades {
            c.members.retain(|id| alive(id));
        }
    }

    /// Dependents restarted after their providers (see [`dependents`]): reads the couplings
    /// (refused ones said once, kept for the page), marks the opted-in dependents of every
    /// container whose start moved since the last round as due, and takes each due dependent's
    /// next step. Returns the containers it said something about.
    async fn dependents(
        &mut self,
        state: &State,
        input: &policy::Input,
        now: Instant,
        wall: SystemTime,
    ) -> Vec<String> {
        let obs: HashMap<&str, &policy::Observation> = input
            .containers
            .iter()
            .map(|o| (o.id.as_str(), o))
            .collect();
        let nodes: Vec<dependents::Node> = state
            .containers
            .iter()
            .map(|c| dependents::Node {
                id: c.id.clone(),
                name: c.name.clone(),
                project: c.project.clone().unwrap_or_default(),
                service: c.service.clone().unwrap_or_else(|| c.name.clone()),
                network_mode: c.network_mode.clone(),
                with: c.labels.get(super::labels::WITH).cloned(),
                // Opted in with labels that can be read (a bad label heals nothing).
                opted_in: obs.get(c.id.as_str()).is_some_and(|o| o.opted_in),
            })
            .collect();
        let (edges, refused) = dependents::couplings(&nodes);
        let messages: Vec<String> = refused.into_iter().map(|r| r.message).collect();
        for m in &messages {
            if !self.couplings_refused.contains(m) {
                tracing::warn!(target: "heal", "coupling refused: {m}");
            }
        }
        self.couplings_refused = messages;

        let start_of = |c: &crate::state::Container| c.started_at.as_deref().and_then(rfc3339_ns);
        let by_id: HashMap<&str, &crate::state::Container> = state
            .containers
            .iter()
            .map(|c| (c.id.as_str(), c))
            .collect();
        // Providers whose start moved since the last round (exactly: the same container id, a
        // new start), whoever restarted them.
        for c in &state.containers {
            let now_start = start_of(c);
            let moved = matches!(self.starts_seen.get(&c.id), Some(Some(before)) if now_start.is_some_and(|n| n != *before));
            if !moved || !c.running {
                continue;
            }
            let chain = dependents::order(&c.id, &edges, &nodes);
            if chain.is_empty() {
                continue;
            }
            let names: Vec<&str> = chain
                .iter()
                .filter_map(|d| by_id.get(d.as_str()).map(|d| d.name.as_str()))
                .collect();
            tracing::info!(target: "heal", provider = %c.name, id = %short(&c.id), dependents = %names.join(","), "{} started again: its dependents are due after it, in order: {}", c.name, names.join(", "));
            for d in &chain {
                let how = edges
                    .iter()
                    .filter(|e| &e.dependent == d)
                    .map(|e| {
                        let p = by_id
                            .get(e.provider.as_str())
                            .map_or("?", |p| p.name.as_str());
                        match e.coupling {
                            dependents::Coupling::Namespace => {
                                format!("{p}, whose network namespace it shares")
                            }
                            dependents::Coupling::Declared => {
                                format!("{p}, by {}", super::labels::WITH)
                            }
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                self.due
                    .insert(d.clone(), format!("after {} restarted: {how}", c.name));
            }
            if self.cascades.len() >= MAX_CASCADES {
                self.cascades.remove(0);
            }
            self.cascades.push(Cascade {
                provider: c.id.clone(),
                members: chain.into_iter().collect(),
                restarted: Vec::new(),
            });
        }
        self.starts_seen = state
            .containers
            .iter()
            .map(|c| (c.id.clone(), start_of(c)))
            .collect();

        let mut spoken = Vec::new();
        let ids: Vec<String> = self.due.keys().cloned().collect();
        for id in ids {
            let Some(c) = by_id.get(id.as_str()).copied() else {
                self.due.remove(&id);
                self.settle(&id, false, state).await;
                continue;
            };
            let context = self.due.get(&id).cloned().unwrap_or_default();
            let rules = obs.get(id.as_str()).map_or(self.cfg.defaults, |o| o.rules);
            let m = self.history.get(&id);
            let providers: Vec<dependents::Provider> = edges
                .iter()
                .filter(|e| e.dependent == id)
                .filter_map(|e| by_id.get(e.provider.as_str()))
                .map(|p| dependents::Provider {
                    name: p.name.clone(),
                    running: p.running,
                    started_ns: start_of(p),
                    pending: self.due.contains_key(&p.id)
                        || self.history.is_in_flight(&p.id)
                        || self.awaiting_start.contains_key(&p.id),
                })
                .collect();
            let due = dependents::Due {
                is_self: input.is_self(&id),
                running: c.running,
                started_ns: start_of(c),
                busy: self.history.is_in_flight(&id) || self.awaiting_start.contains_key(&id),
                quarantined: m.is_some_and(|m| m.quarantined.is_some()),
                restarts_in_window: m.map_or(0, |m| m.in_window(now, rules.window)),
                budget: rules.budget,
                backoff_left: m
                    .and_then(|m| policy::next_allowed(&rules, &id, m))
                    .filter(|t| *t > now)
                    .map(|t| t - now),
                in_flight: (self.history.in_flight(), self.cfg.policy.max_in_flight),
            };
            let say = |action, why| Decision {
                id: id.clone(),
                name: c.name.clone(),
                service: c.service.clone().unwrap_or_else(|| c.name.clone()),
                action,
                why,
            };
            match dependents::next(&due, &providers) {
                Next::Restart { attempt } => {
                    let dry_run = self.cfg.policy.mode == Mode::DryRun;
                    let d = say(Action::Restart { attempt, dry_run }, Why::ProviderRestarted);
                    self.carry_out_with(&d, Some(&context), state, rules.window, now, wall)
                        .await;
                    spoken.push(id.clone());
                    if dry_run {
                        self.due.remove(&id);
                        self.settle(&id, false, state).await;
                    } else {
                        self.after_provider.insert(id.clone(), context);
                    }
                }
                Next::Wait(Wait::Busy) => {}
                Next::Wait(w) => {
                    let why = match w {
                        Wait::Backoff(left) => Why::Backoff(left),
                        Wait::TooManyInFlight => Why::TooManyInFlight,
                        _ => Why::WaitingForProvider,
                    };
                    let d = say(Action::Skip, why);
                    let text = format!("{w}, then restarted {context}");
                    self.carry_out_with(&d, Some(&text), state, rules.window, now, wall)
                        .await;
                    spoken.push(id.clone());
                }
                Next::Quarantine { restarts } => {
                    let d = say(Action::Quarantine, Why::BudgetSpent { restarts });
                    let text = format!("{}, due {context}", d.why);
                    self.carry_out_with(&d, Some(&text), state, rules.window, now, wall)
                        .await;
                    spoken.push(id.clone());
                    self.due.remove(&id);
                    self.settle(&id, false, state).await;
                }
                Next::Leave(why) => {
                    self.due.remove(&id);
                    let ours = self.after_provider.remove(&id).is_some();
                    if why != Leave::Fresh {
                        tracing::info!(target: "heal", container = %c.name, id = %short(&id), "not restarted {context}: {why}");
                        self.lines
                            .insert(id.clone(), format!("not restarted {context}: {why}"));
                        spoken.push(id.clone());
                    }
                    self.settle(&id, ours && why == Leave::Fresh, state).await;
                }
            }
        }
        spoken
    }

    /// Dependent `id` is no longer due (`restarted`: the governor restarted it after its
    /// providers). A provider's restart whose dependents are all settled is said once, as
    /// `dependents-restarted`, when the governor restarted any of them.
    async fn settle(&mut self, id: &str, restarted: bool, state: &State) {
        let name = state
            .containers
            .iter()
            .find(|c| c.id == id)
            .map_or_else(|| short(id).to_owned(), |c| c.name.clone());
        for c in &mut self.cascades {
            if c.members.remove(id) && restarted {
                c.restarted.push(name.clone());
            }
        }
        let (done, open): (Vec<Cascade>, Vec<Cascade>) = std::mem::take(&mut self.cascades)
            .into_iter()
            .partition(|c| c.members.is_empty());
        self.cascades = open;
        for c in done.into_iter().filter(|c| !c.restarted.is_empty()) {
            let p = state.containers.iter().find(|p| p.id == c.provider);
            let name = p.map_or_else(|| short(&c.provider).to_owned(), |p| p.name.clone());
            let service = p
                .and_then(|p| p.service.clone())
                .unwrap_or_else(|| name.clone());
            let project = p.and_then(|p| p.project.clone()).unwrap_or_default();
            let detail = format!(
                "restarted after {name} started again: {}",
                c.restarted.join(", ")
            );
            tracing::info!(target: "heal", container = %name, project = %project, service = %service, decision = "dependents-restarted", dependents = %c.restarted.join(","), "{detail}");
            *self
                .counts
                .entry((
                    project.clone(),
                    service.clone(),
                    "dependents-restarted".to_owned(),
                    "provider-restarted".to_owned(),
                ))
                .or_default() += 1;
            let event = HealEvent {
                v: 1,
                at_ms: unix_ms(SystemTime::now()),
                project,
                service,
                container: name,
                id: c.provider.clone(),
                decision: "dependents-restarted".to_owned(),
                why: Why::ProviderRestarted.as_str().to_owned(),
                detail,
                dry_run: false,
                restarts_in_window: 0,
                dependents: c.restarted,
            };
            self.emit(event).await;
        }
    }

    /// Writes the history to the state file, if there is one (durably: see [`statefile::write`]).
    fn save(&mut self, now: Instant, wall: SystemTime) {
        let Some(path) = &self.cfg.state_file else {
            return;
        };
        let saved = self.history.save(now, wall);
        match statefile::write(path, &saved) {
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
        self.carry_out_with(d, None, state, window, now, wall).await;
    }

    /// [`Governor::carry_out`], with `context` said in place of the decision's why (a
    /// dependent's restart names its provider).
    async fn carry_out_with(
        &mut self,
        d: &Decision,
        context: Option<&str>,
        state: &State,
        window: Duration,
        now: Instant,
        wall: SystemTime,
    ) {
        let text = context.map_or_else(|| d.why.to_string(), str::to_owned);
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
                let result = restart(&docker, &id, t).await;
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
            } => format!("dry run: would restart ({text}; attempt {attempt})"),
            Action::Restart { attempt, .. } => format!("restarting ({text}; attempt {attempt})"),
            Action::Skip => format!("{SKIP_PREFIX}{text}"),
            Action::Quarantine => format!("quarantined: {text}"),
            Action::Release => format!("released from quarantine: {text}"),
            Action::EarnBack => format!("backoff earned back: {text}"),
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
            project = %project,
            service = %d.service,
            decision = d.action.as_str(),
            why = d.why.as_str(),
            dry_run,
            restarts_in_window = restarts,
            "{text}"
        );
        *self
            .counts
            .entry((
                project.clone(),
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
            detail: text,
            dry_run,
            restarts_in_window: restarts,
            dependents: Vec::new(),
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
        let project = c.and_then(|c| c.project.clone()).unwrap_or_default();
        let (decision, detail) = match &done.result {
            Ok(r) => {
                // The restart's identity: the start it produced. Saved at once, so a sidecar
                // restarted right after counts this restart once.
                if let Some(ns) = r.started_ns {
                    if self.history.started(&done.id, ns) {
                        self.dirty = true;
                    }
                    // Nothing decided on it until a snapshot shows this start.
                    self.awaiting_start.insert(done.id.clone(), ns);
                }
                let took = r.took;
                tracing::info!(target: "heal", container = %name, project = %project, service = %service, took_ms = took.as_millis() as u64, decision = "restarted", "restart done");
                let after = self
                    .after_provider
                    .get(&done.id)
                    .map_or(String::new(), |a| format!(" ({a})"));
                self.lines.insert(
                    done.id.clone(),
                    format!("restarted in {:.1}s{after}", took.as_secs_f64()),
                );
                (
                    "restarted",
                    format!("docker restart took {:.1}s", took.as_secs_f64()),
                )
            }
            Err(e) => {
                tracing::warn!(target: "heal", container = %name, project = %project, service = %service, error = %e, kind = e.kind().as_str(), decision = "restart-failed", "restart failed");
                self.lines.insert(
                    done.id.clone(),
                    format!("restart failed ({}): {e}", e.kind().as_str()),
                );
                ("restart-failed", e.to_string())
            }
        };
        *self
            .counts
            .entry((
                project.clone(),
                service.clone(),
                decision.to_owned(),
                "done".to_owned(),
            ))
            .or_default() += 1;
        self.said.remove(&done.id);
        let event = HealEvent {
            v: 1,
            at_ms: unix_ms(SystemTime::now()),
            project,
            service,
            container: name,
            id: done.id.clone(),
            decision: decision.to_owned(),
            why: "done".to_owned(),
            detail,
            dry_run: false,
            restarts_in_window: 0,
            dependents: Vec::new(),
        };
        self.emit(event).await;
        if self.dirty {
            self.dirty = false;
            self.save(Instant::now(), SystemTime::now());
        }
    }

    async fn emit(&self, event: HealEvent) {
        self.cfg.hooks.decided(&event);
        let Some(nats) = &self.nats else { return };
        let subject = subject(&event.project, &event.service);
        match serde_json::to_vec(&event) {
            Ok(body) => {
                match tokio::time::timeout(
                    PUBLISH_TIMEOUT,
                    nats.publish(subject.clone(), body.into()),
                )
                .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(target: "heal", subject, error = %e, "heal event not published")
                    }
                    Err(_) => {
                        tracing::warn!(target: "heal", subject, timeout_ms = PUBLISH_TIMEOUT.as_millis() as u64, "heal event not published: the nats client did not take it in time (nats down?)")
                    }
                }
            }
            Err(e) => tracing::warn!(target: "heal", error = %e, "heal event not encoded"),
        }
    }

    fn summary(&self) -> HealSummary {
        HealSummary {
            mode: match self.cfg.policy.mode {
                Mode::DryRun => HealMode::DryRun,
                Mode::On => HealMode::On,
            },
            shared_outage: self.outage.clone(),
            refused: self.cfg.refused.clone(),
            couplings_refused: self.couplings_refused.clone(),
            decisions: self
                .counts
                .iter()
                .map(|((project, service, decision, why), count)| HealCount {
                    project: project.clone(),
                    service: service.clone(),
                    decision: decision.clone(),
                    why: why.clone(),
                    count: *count,
                })
                .collect(),
        }
    }

    /// Says on the page and in the metrics that the governor heals nothing, and why.
    async fn publish_refusal(&mut self) {
        let update = HealUpdate {
            summary: self.summary(),
            containers: BTreeMap::new(),
        };
        let _ = self.changes.send(Change::Heal(update)).await;
    }

    /// Sends the page's view to the writer when it changed (latest wins there).
    async fn publish(&mut self, input: &policy::Input, now: Instant) {
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
            } else if self.due.contains_key(&c.id) {
                "due after its provider"
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
                    restart_starts: m.map_or_else(Vec::new, |m| {
                        let keys: Vec<u64> =
                            m.restarts.iter().filter_map(|r| r.started_ns).collect();
                        keys[keys.len().saturating_sub(RESTART_KEYS)..].to_vec()
                    }),
                },
            );
        }
        let update = HealUpdate {
            summary: self.summary(),
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
                            && a.restart_starts == b.restart_starts
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

/// Restarts `id` with stop timeout `t` seconds, then reads the start it produced. A failure is
/// told by Docker's status code (404 gone, 409 conflict, 5xx engine), never by its text.
async fn restart(docker: &Docker, id: &str, t: i64) -> Result<Restarted, DockerError> {
    let began = Instant::now();
    let opts = RestartContainerOptions {
        t: Some(t.clamp(0, i64::from(i32::MAX)) as i32),
        signal: None,
    };
    let limit = Duration::from_secs(t.max(0) as u64) + RESTART_SLACK;
    match tokio::time::timeout(limit, docker.restart_container(id, Some(opts))).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(DockerError::docker(
                format_args!("docker: restarting {}", short(id)),
                e,
            ));
        }
        Err(_) => {
            return Err(DockerError::timeout(
                format_args!("docker: restarting {}", short(id)),
                limit,
            ));
        }
    }
    let took = began.elapsed();
    // The start it produced. Not read (an engine slow to answer): the restart still happened,
    // and a restarted sidecar pairs it with Docker's events by order instead.
    let started_ns = tokio::time::timeout(
        INSPECT_TIMEOUT,
        docker.inspect_container(id, None::<InspectContainerOptions>),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .and_then(|r| r.state?.started_at)
    .and_then(|s| rfc3339_ns(&s));
    Ok(Restarted { took, started_ns })
}

/// Docker's `die`, `start` and `restart` events of labelled containers in the last `window`:
/// every restart through the API counts (ours, or a person's `docker restart`: that can only make
/// the governor more careful). The engine keeps only its last few hundred events for `since`
/// queries, and every healthcheck exec is three events, so on a busy engine the oldest restarts
/// are missing: that is why the history is also saved to a file.
pub async fn load_events(
    docker: &Docker,
    window: Duration,
    wall: SystemTime,
) -> Result<Vec<EngineEvent>, bollard::errors::Error> {
    let wall_s = wall
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let since = wall_s.saturating_sub(window.as_secs());
    let mut filters = HashMap::new();
    filters.insert("type".to_owned(), vec!["container".to_owned()]);
    filters.insert(
        "event".to_owned(),
        ["die", "start", "restart"].map(String::from).to_vec(),
    );
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
        let action = match event.action.as_deref() {
            Some("die") => EngineAction::Die,
            Some("start") => EngineAction::Start,
            Some("restart") => EngineAction::Restart,
            _ => continue,
        };
        let Some(id) = event.actor.and_then(|a| a.id) else {
            continue;
        };
        let at_ns = event
            .time_nano
            .unwrap_or(event.time.unwrap_or(0).saturating_mul(1_000_000_000));
        seen.push(EngineEvent {
            id,
            action,
            at_ns: u64::try_from(at_ns).unwrap_or(0),
        });
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
        let d = quarantine_of_the_one_container(&state);
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

    /// What the governor keeps per container leaves with the container: a removed container's
    /// last words, page line, bad spell and start are forgotten, while one being restarted keeps
    /// them until its restart reports back.
    #[tokio::test]
    async fn per_container_maps_shrink_when_containers_go() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut g, _incoming, _done) = governor(Mode::On, &dir, None);
        let now = Instant::now();
        let state = one_container(now);
        let here = state.containers[0].id.clone();
        for id in [here.as_str(), "gone", "restarting"] {
            g.said.insert(id.to_owned(), ("skip", "backoff"));
            g.lines
                .insert(id.to_owned(), "left alone: backing off".into());
            g.bad_since.insert(id.to_owned(), now);
            g.ready_after_start.insert(id.to_owned(), now);
        }
        g.history.begin("restarting", "agent-b");
        g.forget_gone(&state);
        let mut kept: Vec<&String> = g.said.keys().collect();
        kept.sort();
        assert_eq!(kept, [&here, &"restarting".to_owned()]);
        assert_eq!(g.lines.len(), 2);
        assert_eq!(g.bad_since.len(), 2);
        assert_eq!(g.ready_after_start.len(), 2);
        g.history.end("restarting");
        g.forget_gone(&state);
        assert_eq!(g.said.keys().collect::<Vec<_>>(), [&here]);
        assert_eq!(g.lines.len(), 1);
    }

    /// After a restart reports back, a round can run on a snapshot that still shows the old
    /// start (the engine's watcher has not inspected the new one yet) and Docker's old verdict:
    /// nothing is decided on it (a second restart would hit the new process) until a snapshot
    /// shows the start the restart produced; from then on it is judged as ever.
    #[tokio::test(start_paused = true)]
    async fn no_decision_until_the_restarts_start_is_seen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut g, _incoming, _done) = governor(Mode::On, &dir, None);
        let now = Instant::now() + Duration::from_secs(3600);
        let wall = humantime::parse_rfc3339("2026-11-25T11:00:00Z").expect("time");
        let mut state = one_container(now - Duration::from_secs(600));
        let c = &mut state.containers[0];
        c.labels.insert("healthcheck.heal".into(), "true".into());
        c.started_at = Some("2026-11-25T10:00:00.5Z".into());
        let id = c.id.clone();
        let new_start = "2026-11-25T10:59:50Z";
        g.finished(
            Done {
                id: id.clone(),
                result: Ok(Restarted {
                    took: Duration::from_secs(10),
                    started_ns: rfc3339_ns(new_start),
                }),
            },
            &state,
        )
        .await;
        // The old start, still unhealthy: no restart, and it says why.
        g.round(&state, now, wall).await;
        assert!(!g.history.is_in_flight(&id), "restarted again");
        assert_eq!(
            g.lines.get(&id).map(String::as_str),
            Some("left alone: waiting to see the restarted container's new start")
        );
        // The new start seen (and Docker still says unhealthy): judged again.
        state.containers[0].started_at = Some(new_start.into());
        g.round(&state, now, wall).await;
        assert!(g.awaiting_start.is_empty());
        assert!(g.history.is_in_flight(&id), "{:?}", g.lines.get(&id));
        // Forgotten when the container goes.
        g.awaiting_start.insert("gone".into(), 1);
        g.forget_gone(&state);
        assert!(g.awaiting_start.is_empty());
    }

    /// A governor that refuses to heal (its own container unknown) still marks every snapshot
    /// done, deciding nothing: with `--self-signal` the sidecar is not called frozen for it.
    #[tokio::test(start_paused = true)]
    async fn a_refusing_governor_marks_its_rounds_done() {
        let t0 = Instant::now();
        let (tx, rx) = watch::channel(Arc::new(State::new(t0, Source::Ok, Source::Ok)));
        let (changes, mut incoming) = mpsc::channel(8);
        let dir = tempfile::tempdir().expect("temp dir");
        let mark = crate::selfwatch::Mark::new();
        let mut cfg = Config {
            self_id: None,
            refused: Some("its own container cannot be found".into()),
            ..Config::new(Mode::On)
        };
        cfg.hooks.progress = Some(mark.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(
            cfg,
            placeholder_docker(&dir),
            rx,
            changes,
            None,
            async move {
                let _ = stop_rx.await;
            },
        ));
        // Said on the page once.
        let said = incoming.recv().await.expect("the refusal is published");
        assert!(matches!(said, Change::Heal(u) if u.summary.refused.is_some()));
        for n in 1..=3u64 {
            tokio::time::sleep(Duration::from_secs(30)).await;
            let built_at = t0 + Duration::from_secs(30 * n);
            let mut state = one_container(built_at);
            state.built_at = built_at;
            tx.send(Arc::new(state)).expect("the governor reads");
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert_eq!(mark.seen(), Some(built_at), "round {n}");
        }
        let _ = stop_tx.send(());
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("returns on shutdown")
            .expect("no panic");
    }

    /// NATS down and the client's buffer full: each heal event gives up after its timeout (2 s
    /// each, on the paused clock) instead of stalling the governor's loop.
    #[tokio::test(start_paused = true)]
    async fn a_nats_outage_does_not_stall_the_governor() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // No server there: the client keeps retrying, and its one-message buffer fills.
        let client = async_nats::ConnectOptions::new()
            .client_capacity(1)
            .retry_on_initial_connect()
            .connect(format!("nats://127.0.0.1:{port}"))
            .await
            .expect("a lazy client");
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut g, _incoming, _done) = governor(Mode::On, &dir, Some(client));
        let now = Instant::now();
        let state = one_container(now);
        let d = quarantine_of_the_one_container(&state);
        let began = Instant::now();
        for _ in 0..4 {
            g.said.clear();
            g.carry_out(
                &d,
                &state,
                Duration::from_secs(1800),
                now,
                SystemTime::now(),
            )
            .await;
        }
        assert!(
            began.elapsed() <= Duration::from_secs(4 * 2) + Duration::from_millis(100),
            "{:?}",
            began.elapsed()
        );
    }

    /// A short self id the engine does not confirm (here it cannot be asked) is not knowing
    /// itself: the governor refuses to heal, saying so and naming --heal-self.
    #[tokio::test(start_paused = true)]
    async fn an_unconfirmed_short_self_id_refuses_healing() {
        let (_tx, rx) =
            watch::channel(Arc::new(State::new(Instant::now(), Source::Ok, Source::Ok)));
        let (changes, mut incoming) = mpsc::channel(8);
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = Config {
            self_id: Some("c0ffeec0ffee".into()),
            refused: None,
            ..Config::new(Mode::On)
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(
            cfg,
            placeholder_docker(&dir),
            rx,
            changes,
            None,
            async move {
                let _ = stop_rx.await;
            },
        ));
        let refused = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                match incoming.recv().await.expect("the governor says something") {
                    Change::Heal(u) => break u.summary.refused,
                    _ => continue,
                }
            }
        })
        .await
        .expect("the refusal is said at start");
        let why = refused.expect("healing refused");
        assert!(
            why.contains("c0ffeec0ffee") && why.contains("--heal-self"),
            "{why}"
        );
        let _ = stop_tx.send(());
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("returns on shutdown")
            .expect("no panic");
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
            refused: None,
            ..Config::new(mode)
        };
        let g = Governor::new(cfg, placeholder_docker(dir), nats, changes, done_tx);
        (g, incoming, done_rx)
    }

    /// The quarantine of [`one_container`]'s container (its budget spent), as the governor
    /// decides it.
    fn quarantine_of_the_one_container(state: &State) -> Decision {
        Decision {
            id: state.containers[0].id.clone(),
            name: "demo-agent-a-1".into(),
            service: "agent-a".into(),
            action: Action::Quarantine,
            why: Why::BudgetSpent { restarts: 5 },
        }
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
            network_mode: None,
            start_period: None,
            heal: None,
        });
        state
    }

    /// A provider restarted by anyone (its start moved, same id): its opted-in dependent in its
    /// network namespace is restarted after it once it runs, the line naming the provider; while
    /// the provider does not run, the dependent waits, saying so. A `healthcheck.heal.with`
    /// cycle is refused, said in the summary the page and the API show.
    #[tokio::test(start_paused = true)]
    async fn a_provider_restart_restarts_its_dependents_after_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut g, _incoming, _done) = governor(Mode::On, &dir, None);
        let now = Instant::now() + Duration::from_secs(3600);
        let wall = humantime::parse_rfc3339("2026-11-25T11:00:00Z").expect("time");
        let mut state = one_container(now - Duration::from_secs(600));
        let vpn = state.containers[0].clone();
        let mut vpn = Container {
            id: "a1".repeat(32),
            name: "demo-vpn-1".into(),
            service: Some("vpn".into()),
            health: Some("healthy".into()),
            started_at: Some("2026-11-25T10:00:00Z".into()),
            ..vpn
        };
        vpn.labels.insert("healthcheck.heal".into(), "true".into());
        let mut app = Container {
            id: "b2".repeat(32),
            name: "demo-app-1".into(),
            service: Some("app".into()),
            started_at: Some("2026-11-25T10:00:01Z".into()),
            network_mode: Some(format!("container:{}", vpn.id)),
            ..vpn.clone()
        };
        app.labels.insert("healthcheck.heal".into(), "true".into());
        let mut left = Container {
            id: "c3".repeat(32),
            name: "demo-left-1".into(),
            service: Some("left".into()),
            ..vpn.clone()
        };
        left.labels
            .insert("healthcheck.heal.with".into(), "right".into());
        let mut right = Container {
            id: "d4".repeat(32),
            name: "demo-right-1".into(),
            service: Some("right".into()),
            ..vpn.clone()
        };
        right
            .labels
            .insert("healthcheck.heal.with".into(), "left".into());
        state.containers = vec![vpn, app, left, right];
        let (vpn_id, app_id) = (
            state.containers[0].id.clone(),
            state.containers[1].id.clone(),
        );
        g.round(&state, now, wall).await;
        assert!(g.due.is_empty());
        let refused = g.summary().couplings_refused;
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(refused.iter().all(|m| m.contains("a cycle")), "{refused:?}");
        // The provider restarted (by a person, say), seen stopped first: nothing yet.
        state.containers[0].running = false;
        g.round(&state, now, wall).await;
        assert!(g.due.is_empty(), "a stop is not a restart");
        // Running with a new start, then stopped again before the dependent's turn: it waits.
        state.containers[0].running = true;
        state.containers[0].started_at = Some("2026-11-25T10:59:00Z".into());
        g.round(&state, now, wall).await;
        assert!(
            g.history.is_in_flight(&app_id),
            "{:?}",
            g.lines.get(&app_id)
        );
        let line = g.lines.get(&app_id).cloned().unwrap_or_default();
        assert!(
            line.starts_with("restarting (after demo-vpn-1 restarted: demo-vpn-1, whose network namespace it shares; attempt 1"),
            "{line}"
        );
        assert!(!g.history.is_in_flight(&vpn_id));
        // Its restart failed (no engine here): due still, in its backoff; the provider stopped:
        // it waits for the provider to be running, saying so.
        g.history.end(&app_id);
        g.after_provider.remove(&app_id);
        state.containers[0].running = false;
        let later = now + Duration::from_secs(60);
        g.round(&state, later, wall).await;
        assert!(g.due.contains_key(&app_id));
        let line = g.lines.get(&app_id).cloned().unwrap_or_default();
        assert!(
            line.starts_with("left alone: waiting for its provider demo-vpn-1 to be running"),
            "{line}"
        );
        // Once it started after its provider (restarted by anyone), it is no longer due.
        state.containers[0].running = true;
        state.containers[1].started_at = Some("2026-11-25T10:59:30Z".into());
        g.round(&state, later, wall).await;
        assert!(g.due.is_empty(), "{:?}", g.due);
        assert!(g.cascades.is_empty());
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
            refused: None,
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
