//! The heal policy: a pure function from what is observed, what was done, and the time, to
//! decisions. No I/O and no clock here, so every rule of issue 14 is a unit test that drives
//! hours of policy in microseconds (see the tests at the bottom).

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::history::{History, Memory};

/// Whether the governor acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Decides and reports, restarts nothing.
    DryRun,
    /// Restarts.
    On,
}

/// Per-container rules (defaults from flags, each overridable by a label; see `heal::labels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// How long a container must be bad, continuously, before it is restarted.
    pub heal_after: Duration,
    /// The wait after the first restart before a second; doubles after each restart.
    pub backoff: Duration,
    /// The longest wait between restarts.
    pub backoff_max: Duration,
    /// Restarts allowed within `window`; one more quarantines the container.
    pub budget: u32,
    /// The budget's window.
    pub window: Duration,
    /// Healthy this long, a quarantined container is released.
    pub release_after: Duration,
    /// Healthy this long, a container's backoff starts again from the first step.
    pub earn_back_after: Duration,
    /// How long a (re)started container's agent may take to publish its first record: until
    /// then it is starting, whatever its predecessor's record says. `None`: the record's TTL plus
    /// `heal_after` (a new process as slow as a record that died TTL ago and stayed dead
    /// `heal_after`).
    pub start_grace: Option<Duration>,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            heal_after: Duration::from_secs(10),
            backoff: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            budget: 5,
            window: Duration::from_secs(30 * 60),
            release_after: Duration::from_secs(10 * 60),
            earn_back_after: Duration::from_secs(10 * 60),
            start_grace: None,
        }
    }
}

/// Stack-wide settings of the policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Dry run or on (off means no governor at all).
    pub mode: Mode,
    /// More than this share of the watched containers bad at once is a shared outage.
    pub outage_share: f64,
    /// ... provided at least this many are bad (one bad container of one is no outage).
    pub outage_min: usize,
    /// Restarts under way at once across the stack, at most (a restarted sidecar never bursts).
    pub max_in_flight: usize,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            mode: Mode::On,
            outage_share: 0.5,
            outage_min: 2,
            max_in_flight: 1,
        }
    }
}

/// What the governor sees of one container's health, the agent's record and Docker's together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Nothing wrong is known (ready agent, healthy or no healthcheck).
    Healthy,
    /// The agent's record is late: its work loop may be stuck.
    Stale,
    /// The agent's record expired while the container runs.
    Dead,
    /// Docker's healthcheck says unhealthy (and no honest agent state says otherwise).
    Unhealthy,
    /// The agent says it is not ready: it is alive and honest.
    NotReady,
    /// The agent says it is stopping.
    Stopping,
    /// The agent (or Docker's healthcheck) says it is starting.
    Starting,
    /// The agent's store cannot be read: nothing is known.
    Unknown,
    /// The container (re)started and its agent has written no record of its own within its
    /// start grace (only its predecessor's record is there).
    Silent,
}

impl Condition {
    /// Whether this condition, lasting long enough, warrants a restart.
    pub fn is_bad(self) -> bool {
        matches!(
            self,
            Condition::Stale | Condition::Dead | Condition::Unhealthy | Condition::Silent
        )
    }
}

/// One container, as the policy needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// Compose project (empty outside Compose): a service is known by its project and name.
    pub project: String,
    /// Compose service (or the name): at most one restart per service at a time.
    pub service: String,
    /// Labelled `healthcheck.heal=true`.
    pub opted_in: bool,
    /// `State.Running`.
    pub running: bool,
    /// Its health, agent and Docker together.
    pub condition: Condition,
    /// Since when `condition` has held (as far as the sidecar knows).
    pub condition_since: Instant,
    /// When the container (re)started; a condition older than the container does not count.
    pub started_at: Instant,
    /// Its healthcheck's start period.
    pub start_period: Duration,
    /// The agent (or Docker's check) has said ready since the container last started: the start
    /// period protects it no longer (a frozen worker is not a slow starter).
    pub ready_since_start: bool,
    /// A record that may be this container's (its host name is this container's and another's)
    /// is stale or dead, but is not linked to it exactly: never a reason to restart, and said.
    pub unlinked_bad: bool,
    /// It has no record linked to it, but a record of its host name is another container's or
    /// ambiguous: its health check (`replica=self`) reads that record, so Docker's verdict on it
    /// says nothing about its own process. Never a reason to restart, and said.
    pub foreign_record: bool,
    /// Restarted by us, and the snapshot does not show the start the restart produced yet (the
    /// engine's watcher lags): what it shows is the old process's, so nothing is decided on it.
    /// Filled by the executor.
    pub awaiting_start: bool,
    /// Its rules.
    pub rules: Rules,
}

/// Everything the policy looks at besides its history.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// The containers.
    pub containers: Vec<Observation>,
    /// The sidecar's own container id, when found (full or the 12-character short id).
    pub self_id: Option<String>,
    /// The agents' store cannot be read at all.
    pub store_unknown: bool,
}

impl Input {
    /// Whether `id` is the sidecar's own container.
    pub fn is_self(&self, id: &str) -> bool {
        self.self_id
            .as_deref()
            .is_some_and(|me| me.len() >= 12 && (id.starts_with(me) || me.starts_with(id)))
    }
}

/// What to do with one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Restart it (`attempt` is its restart number within the budget window, from 1).
    Restart {
        /// Its restart number within the window, from 1.
        attempt: u32,
        /// Say so and do nothing.
        dry_run: bool,
    },
    /// Leave it alone this time, for `why`.
    Skip,
    /// Spent its budget: left alone until healthy for a while or unlabelled.
    Quarantine,
    /// Leaves quarantine.
    Release,
    /// Healthy for a while: its backoff starts again from the first step.
    EarnBack,
}

impl Action {
    /// `restart`, `skip`, `quarantine`, `release`, `earn-back` (a metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Restart { .. } => "restart",
            Action::Skip => "skip",
            Action::Quarantine => "quarantine",
            Action::Release => "release",
            Action::EarnBack => "earn-back",
        }
    }
}

/// Why a decision was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Why {
    /// The agent's record has been stale this long.
    Stale(Duration),
    /// The agent's record has been gone this long.
    Dead(Duration),
    /// Docker has said unhealthy this long.
    Unhealthy(Duration),
    /// The container started this long ago and its agent has written no record of its own.
    Silent(Duration),
    /// Bad, but not for `heal_after` yet.
    NotYet(Duration),
    /// It is the sidecar's own container.
    IsSelf,
    /// The container is not running (Docker's restart policy's business).
    NotRunning,
    /// The agent says not-ready.
    NotReady,
    /// The agent says stopping.
    Stopping,
    /// Starting, within its start period.
    Starting,
    /// The store cannot be read.
    StoreUnknown,
    /// Too many containers bad at once: `bad` of `of`.
    SharedOutage {
        /// Bad containers.
        bad: usize,
        /// Watched containers.
        of: usize,
    },
    /// Waiting out its backoff, this much longer.
    Backoff(Duration),
    /// `restarts` restarts within the window: the budget is spent.
    BudgetSpent {
        /// Restarts within the window.
        restarts: u32,
    },
    /// Quarantined.
    Quarantined,
    /// Another container of its service is being restarted.
    ServiceBusy,
    /// Too many restarts under way in the stack.
    TooManyInFlight,
    /// Healthy this long.
    HealthyFor(Duration),
    /// The `healthcheck.heal` label is gone.
    LabelRemoved,
    /// A stale or dead record may be this container's, but cannot be tied to it exactly.
    Unlinked,
    /// Docker says unhealthy, but its check reads a record of another container (a host name
    /// shared by replicas): not evidence about its own process.
    ForeignRecord,
    /// Restarted, and the snapshot does not show the start the restart produced yet.
    AwaitingStart,
    /// A container it depends on (its network namespace, or `healthcheck.heal.with`) started
    /// again after it: restarted after it (see `heal::dependents`).
    ProviderRestarted,
    /// Due for a restart after its provider, and waiting (for the provider first, or for it to
    /// run).
    WaitingForProvider,
}

impl Why {
    /// A fixed word for a metric label (never free text).
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Stale(_) => "stale",
            Why::Dead(_) => "dead",
            Why::Unhealthy(_) => "unhealthy",
            Why::Silent(_) => "silent",
            Why::NotYet(_) => "not-yet",
            Why::IsSelf => "self",
            Why::NotRunning => "not-running",
            Why::NotReady => "not-ready",
            Why::Stopping => "stopping",
            Why::Starting => "starting",
            Why::StoreUnknown => "store-unknown",
            Why::SharedOutage { .. } => "shared-outage",
            Why::Backoff(_) => "backoff",
            Why::BudgetSpent { .. } => "budget-spent",
            Why::Quarantined => "quarantined",
            Why::ServiceBusy => "service-busy",
            Why::TooManyInFlight => "too-many-in-flight",
            Why::HealthyFor(_) => "healthy",
            Why::LabelRemoved => "label-removed",
            Why::Unlinked => "unlinked",
            Why::ForeignRecord => "foreign-record",
            Why::AwaitingStart => "awaiting-start",
            Why::ProviderRestarted => "provider-restarted",
            Why::WaitingForProvider => "waiting-for-provider",
        }
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |d: &Duration| format!("{:.1}s", d.as_secs_f64());
        match self {
            Why::Stale(d) => write!(f, "agent record stale for {}", secs(d)),
            Why::Dead(d) => write!(f, "agent record gone for {}", secs(d)),
            Why::Unhealthy(d) => write!(f, "docker reports unhealthy for {}", secs(d)),
            Why::Silent(d) => write!(
                f,
                "no record of its own since it started {} ago, past its start grace",
                secs(d)
            ),
            Why::NotYet(d) => write!(f, "bad for {} only", secs(d)),
            Why::IsSelf => f.write_str("the sidecar never restarts its own container"),
            Why::NotRunning => f.write_str("not running (exits are the restart policy's business)"),
            Why::NotReady => f.write_str("the agent says not-ready: alive and honest"),
            Why::Stopping => f.write_str("the agent says stopping"),
            Why::Starting => f.write_str("starting, within its start period"),
            Why::StoreUnknown => f.write_str("the agents' store cannot be read"),
            Why::SharedOutage { bad, of } => {
                write!(
                    f,
                    "shared outage: {bad} of {of} watched containers bad at once"
                )
            }
            Why::Backoff(d) => write!(f, "backing off, {} to go", secs(d)),
            Why::BudgetSpent { restarts } => {
                write!(
                    f,
                    "restart budget spent ({restarts} restarts within the window)"
                )
            }
            Why::Quarantined => f.write_str("quarantined"),
            Why::ServiceBusy => f.write_str("another container of its service is restarting"),
            Why::TooManyInFlight => f.write_str("too many restarts under way"),
            Why::HealthyFor(d) => write!(f, "healthy for {}", secs(d)),
            Why::LabelRemoved => f.write_str("the healthcheck.heal label was removed"),
            Why::Unlinked => f.write_str(
                "a stale or dead agent record may be this container's, but its host name is \
                 shared and it names no container id: not restarted for it",
            ),
            Why::ForeignRecord => f.write_str(
                "docker says unhealthy, but its check reads a record of another container \
                 (shared host name): not restarted for it",
            ),
            Why::AwaitingStart => f.write_str("waiting to see the restarted container's new start"),
            Why::ProviderRestarted => {
                f.write_str("a container it depends on started again after it")
            }
            Why::WaitingForProvider => {
                f.write_str("due for a restart after its provider, waiting for the provider")
            }
        }
    }
}

/// One decision about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// Its service.
    pub service: String,
    /// What to do.
    pub action: Action,
    /// Why.
    pub why: Why,
}

/// The wait before the restart that follows `level` counted restarts, before jitter:
/// none for the first, then `backoff`, doubling, at most `backoff_max`.
pub fn backoff_for(rules: &Rules, level: u32) -> Duration {
    if level == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(level - 1).unwrap_or(u32::MAX);
    rules.backoff.saturating_mul(factor).min(rules.backoff_max)
}

/// The jitter: the wait shortened by up to a fifth, by a hash of the container and its restart
/// count, so containers frozen together do not come back together, and the same inputs always
/// give the same wait (the policy stays a pure function).
pub fn jittered(wait: Duration, id: &str, level: u32) -> Duration {
    // FNV-1a: small, stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes().chain(level.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let fifth = wait / 5;
    let cut = fifth.mul_f64((h % 1000) as f64 / 1000.0);
    wait - cut
}

/// When `m`'s next restart is allowed (its last restart plus the jittered backoff).
pub fn next_allowed(rules: &Rules, id: &str, m: &Memory) -> Option<Instant> {
    let level = m.backoff_level();
    let last = m.last_restart()?;
    if level == 0 {
        return None;
    }
    Some(last + jittered(backoff_for(rules, level), id, level))
}

/// The stack-wide hold in force, if any: the store cannot be read, or more than the set share of
/// the labelled running containers (other than the sidecar) are bad at once.
pub fn brake(policy: &Policy, input: &Input) -> Option<Why> {
    if input.store_unknown {
        return Some(Why::StoreUnknown);
    }
    let watched: Vec<&Observation> = input
        .containers
        .iter()
        .filter(|c| c.opted_in && c.running && !input.is_self(&c.id))
        .collect();
    let bad = watched.iter().filter(|c| c.condition.is_bad()).count();
    (bad >= policy.outage_min.max(1) && (bad as f64) > policy.outage_share * watched.len() as f64)
        .then_some(Why::SharedOutage {
            bad,
            of: watched.len(),
        })
}

/// Decides, for every watched container, what to do now. Healthy containers with nothing to say
/// get no decision; every other labelled one gets exactly one.
pub fn decide(policy: &Policy, input: &Input, history: &History, now: Instant) -> Vec<Decision> {
    let empty = Memory::default();
    let mut out = Vec::new();

    let hold = brake(policy, input);

    let mut busy_services: Vec<(&str, &str)> = Vec::new();
    let mut in_flight = history.in_flight();

    for c in &input.containers {
        let m = history.get(&c.id).unwrap_or(&empty);
        let say = |action, why| Decision {
            id: c.id.clone(),
            name: c.name.clone(),
            service: c.service.clone(),
            action,
            why,
        };
        if !c.opted_in {
            if m.quarantined.is_some() {
                out.push(say(Action::Release, Why::LabelRemoved));
            }
            continue;
        }
        // A bad spell counts from the latest of: its start, the container's start, the end of
        // the last stack-wide hold.
        let mut spell_start = c.condition_since.max(c.started_at);
        if let Some(held) = history.held() {
            spell_start = spell_start.max(held);
        }
        let bad_for = now.saturating_duration_since(spell_start);
        if input.is_self(&c.id) {
            if c.condition.is_bad() {
                out.push(say(Action::Skip, Why::IsSelf));
            }
            continue;
        }
        // Being restarted by us (briefly not running, too): nothing to say.
        if history.is_in_flight(&c.id) {
            continue;
        }
        // Just restarted, seen as it was before: its old start and its old process's record.
        if c.awaiting_start {
            if c.condition.is_bad() {
                out.push(say(Action::Skip, Why::AwaitingStart));
            }
            continue;
        }
        if !c.running {
            out.push(say(Action::Skip, Why::NotRunning));
            continue;
        }
        if m.quarantined.is_some() {
            let healthy_for = now.saturating_duration_since(c.condition_since);
            if c.condition == Condition::Healthy && healthy_for >= c.rules.release_after {
                out.push(say(Action::Release, Why::HealthyFor(healthy_for)));
            } else {
                out.push(say(Action::Skip, Why::Quarantined));
            }
            continue;
        }
        if input.store_unknown || c.condition == Condition::Unknown {
            out.push(say(Action::Skip, Why::StoreUnknown));
            continue;
        }
        match c.condition {
            Condition::NotReady => {
                out.push(say(Action::Skip, Why::NotReady));
                continue;
            }
            Condition::Stopping => {
                out.push(say(Action::Skip, Why::Stopping));
                continue;
            }
            Condition::Healthy | Condition::Starting if c.unlinked_bad => {
                out.push(say(Action::Skip, Why::Unlinked));
                continue;
            }
            Condition::Healthy | Condition::Starting if c.foreign_record => {
                out.push(say(Action::Skip, Why::ForeignRecord));
                continue;
            }
            Condition::Healthy | Condition::Starting => {
                let healthy_for = now.saturating_duration_since(c.condition_since);
                if c.condition == Condition::Healthy
                    && m.backoff_level() > 0
                    && healthy_for >= c.rules.earn_back_after
                {
                    out.push(say(Action::EarnBack, Why::HealthyFor(healthy_for)));
                }
                continue;
            }
            _ => {}
        }
        // Bad from here on.
        let up_for = now.saturating_duration_since(c.started_at);
        if up_for < c.start_period && !c.ready_since_start {
            out.push(say(Action::Skip, Why::Starting));
            continue;
        }
        if let Some(why) = hold {
            out.push(say(Action::Skip, why));
            continue;
        }
        if bad_for < c.rules.heal_after {
            out.push(say(Action::Skip, Why::NotYet(bad_for)));
            continue;
        }
        let restarts = m.in_window(now, c.rules.window);
        if restarts >= c.rules.budget {
            out.push(say(Action::Quarantine, Why::BudgetSpent { restarts }));
            continue;
        }
        if let Some(at) = next_allowed(&c.rules, &c.id, m)
            && now < at
        {
            out.push(say(Action::Skip, Why::Backoff(at - now)));
            continue;
        }
        // A service is its project and its name: `worker` in two projects is two services.
        let service_in_flight = input.containers.iter().any(|o| {
            o.id != c.id
                && o.project == c.project
                && o.service == c.service
                && history.is_in_flight(&o.id)
        });
        if service_in_flight || busy_services.contains(&(c.project.as_str(), c.service.as_str())) {
            out.push(say(Action::Skip, Why::ServiceBusy));
            continue;
        }
        if in_flight >= policy.max_in_flight {
            out.push(say(Action::Skip, Why::TooManyInFlight));
            continue;
        }
        busy_services.push((&c.project, &c.service));
        in_flight += 1;
        let why = match c.condition {
            Condition::Stale => Why::Stale(bad_for),
            Condition::Dead => Why::Dead(bad_for),
            Condition::Silent => Why::Silent(bad_for),
            _ => Why::Unhealthy(bad_for),
        };
        out.push(say(
            Action::Restart {
                attempt: restarts + 1,
                dry_run: policy.mode == Mode::DryRun,
            },
            why,
        ));
    }
    out
}

/// Applies a decision's effect on the history, as the executor does once it is carried out (a
/// restart is recorded when issued, dry run or not, so a dry run shows the backoff it would keep).
pub fn apply(history: &mut History, d: &Decision, now: Instant) {
    match d.action {
        Action::Restart { .. } => history.record_restart(&d.id, now),
        Action::Quarantine => history.quarantine(&d.id, now),
        Action::Release => history.release(&d.id, now),
        Action::EarnBack => history.earn_back(&d.id, now),
        Action::Skip => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn obs(id: &str, service: &str, t0: Instant) -> Observation {
        Observation {
            id: id.to_owned(),
            name: format!("stack-{service}-1"),
            project: "stack".to_owned(),
            service: service.to_owned(),
            opted_in: true,
            running: true,
            condition: Condition::Healthy,
            condition_since: t0,
            started_at: t0,
            start_period: Duration::ZERO,
            ready_since_start: false,
            unlinked_bad: false,
            foreign_record: false,
            awaiting_start: false,
            rules: Rules::default(),
        }
    }

    fn input(containers: Vec<Observation>) -> Input {
        Input {
            containers,
            self_id: Some("5e1f5e1f5e1f".repeat(5) + "abcd"),
            store_unknown: false,
        }
    }

    fn stale_since(mut o: Observation, at: Instant) -> Observation {
        o.condition = Condition::Stale;
        o.condition_since = at;
        o
    }

    fn only(ds: &[Decision]) -> (Action, Why) {
        assert_eq!(ds.len(), 1, "{ds:?}");
        (ds[0].action, ds[0].why)
    }

    /// Runs the policy as the executor does: decide, apply, and a restarted container comes back
    /// (started again, condition healthy) right away.
    fn step(policy: &Policy, inp: &mut Input, h: &mut History, now: Instant) -> Vec<Decision> {
        let ds = decide(policy, inp, h, now);
        for d in &ds {
            apply(h, d, now);
            if matches!(d.action, Action::Restart { .. }) {
                let c = inp.containers.iter_mut().find(|c| c.id == d.id).unwrap();
                c.started_at = now;
                c.condition = Condition::Healthy;
                c.condition_since = now;
            }
        }
        ds
    }

    /// A container stale for longer than heal_after is restarted; one stale for less is not yet.
    #[test]
    fn restarts_after_heal_after_not_before() {
        let t0 = Instant::now();
        let inp = input(vec![stale_since(obs("aaaa", "a", t0), t0 + 5 * S)]);
        let h = History::new();
        let p = Policy::default();
        assert_eq!(
            only(&decide(&p, &inp, &h, t0 + 14 * S)),
            (Action::Skip, Why::NotYet(9 * S))
        );
        assert_eq!(
            only(&decide(&p, &inp, &h, t0 + 15 * S)),
            (
                Action::Restart {
                    attempt: 1,
                    dry_run: false
                },
                Why::Stale(10 * S)
            )
        );
    }

    /// A dead record and a Docker unhealthy status both count, each with its own reason.
    #[test]
    fn dead_and_unhealthy_count_too() {
        let t0 = Instant::now();
        let mut a = obs("aaaa", "a", t0);
        a.condition = Condition::Dead;
        let mut b = obs("bbbb", "b", t0);
        b.condition = Condition::Unhealthy;
        let c = obs("cccc", "c", t0);
        let d = obs("dddd", "d", t0);
        let p = Policy {
            max_in_flight: 2,
            ..Policy::default()
        };
        let ds = decide(&p, &input(vec![a, b, c, d]), &History::new(), t0 + 10 * S);
        assert_eq!(ds.len(), 2);
        assert_eq!(ds[0].why, Why::Dead(10 * S));
        assert_eq!(ds[1].why, Why::Unhealthy(10 * S));
    }

    /// The sidecar's own container is never restarted, whatever its labels and state.
    #[test]
    fn never_self() {
        let t0 = Instant::now();
        let me = "5e1f5e1f5e1f".repeat(5) + "abcd";
        let inp = input(vec![stale_since(obs(&me, "sidecar", t0), t0)]);
        for hours in [1, 10, 100] {
            let ds = decide(
                &Policy::default(),
                &inp,
                &History::new(),
                t0 + hours * 3600 * S,
            );
            assert_eq!(only(&ds), (Action::Skip, Why::IsSelf));
        }
        // The short id (the hostname) matches as well.
        let mut inp = inp;
        inp.self_id = Some(me[..12].to_owned());
        assert_eq!(
            only(&decide(
                &Policy::default(),
                &inp,
                &History::new(),
                t0 + 60 * S
            ))
            .1,
            Why::IsSelf
        );
    }

    /// A container that is not running (an exit 0 job, a crash) is never restarted.
    #[test]
    fn never_exited() {
        let t0 = Instant::now();
        let mut o = stale_since(obs("aaaa", "job", t0), t0);
        o.running = false;
        let ds = decide(
            &Policy::default(),
            &input(vec![o]),
            &History::new(),
            t0 + 3600 * S,
        );
        assert_eq!(only(&ds), (Action::Skip, Why::NotRunning));
    }

    /// Nothing is restarted while the store cannot be read, nor for an agent whose state is unknown.
    #[test]
    fn never_on_unknown() {
        let t0 = Instant::now();
        let mut inp = input(vec![stale_since(obs("aaaa", "a", t0), t0)]);
        inp.store_unknown = true;
        assert_eq!(
            only(&decide(
                &Policy::default(),
                &inp,
                &History::new(),
                t0 + 600 * S
            ))
            .1,
            Why::StoreUnknown
        );
        let mut o = obs("aaaa", "a", t0);
        o.condition = Condition::Unknown;
        let ds = decide(
            &Policy::default(),
            &input(vec![o]),
            &History::new(),
            t0 + 600 * S,
        );
        assert_eq!(only(&ds), (Action::Skip, Why::StoreUnknown));
    }

    /// An honest agent (not-ready, stopping) is left alone, and so is one starting within its
    /// start period; past the start period a stale one is restarted.
    #[test]
    fn never_honest_or_starting() {
        let t0 = Instant::now();
        let mut nr = obs("aaaa", "a", t0);
        nr.condition = Condition::NotReady;
        let mut st = obs("bbbb", "b", t0);
        st.condition = Condition::Stopping;
        let ds = decide(
            &Policy::default(),
            &input(vec![nr, st]),
            &History::new(),
            t0 + 600 * S,
        );
        assert_eq!(
            ds.iter().map(|d| d.why).collect::<Vec<_>>(),
            [Why::NotReady, Why::Stopping]
        );

        let mut young = stale_since(obs("cccc", "c", t0), t0);
        young.start_period = 30 * S;
        let inp = input(vec![young]);
        assert_eq!(
            only(&decide(
                &Policy::default(),
                &inp,
                &History::new(),
                t0 + 29 * S
            ))
            .1,
            Why::Starting
        );
        assert!(matches!(
            only(&decide(
                &Policy::default(),
                &inp,
                &History::new(),
                t0 + 30 * S
            ))
            .0,
            Action::Restart { .. }
        ));
    }

    /// Within its start period, a container that has been ready since it started and then froze
    /// is restarted after heal_after (a frozen worker is not a slow starter); one never ready yet
    /// is left to start.
    #[test]
    fn start_period_protects_only_starters() {
        let t0 = Instant::now();
        let mut o = stale_since(obs("aaaa", "a", t0), t0 + 5 * S);
        o.start_period = 60 * S;
        let mut inp = input(vec![o]);
        let h = History::new();
        let p = Policy::default();
        assert_eq!(only(&decide(&p, &inp, &h, t0 + 20 * S)).1, Why::Starting);
        inp.containers[0].ready_since_start = true;
        assert!(matches!(
            only(&decide(&p, &inp, &h, t0 + 20 * S)).0,
            Action::Restart { .. }
        ));
    }

    /// More than half the labelled containers bad together is a shared outage: nothing restarts;
    /// exactly half is not; one bad container of one is not an outage.
    #[test]
    fn shared_outage_brake() {
        let t0 = Instant::now();
        let now = t0 + 60 * S;
        let p = Policy {
            max_in_flight: 10,
            ..Policy::default()
        };
        let stack = |bad: usize, of: usize| {
            input(
                (0..of)
                    .map(|i| {
                        let o = obs(&format!("c{i:04}"), &format!("s{i}"), t0);
                        if i < bad { stale_since(o, t0) } else { o }
                    })
                    .collect(),
            )
        };
        let ds = decide(&p, &stack(3, 4), &History::new(), now);
        assert!(
            ds.iter()
                .all(|d| d.why == Why::SharedOutage { bad: 3, of: 4 }),
            "{ds:?}"
        );
        let ds = decide(&p, &stack(2, 4), &History::new(), now);
        assert_eq!(
            ds.iter()
                .filter(|d| matches!(d.action, Action::Restart { .. }))
                .count(),
            2
        );
        assert!(matches!(
            only(&decide(&p, &stack(1, 1), &History::new(), now)).0,
            Action::Restart { .. }
        ));
    }

    /// When a shared outage lifts, a container still bad is timed from the end of the outage:
    /// the last straggler is not restarted the moment the others recover.
    #[test]
    fn straggler_after_outage_waits_heal_after() {
        let t0 = Instant::now();
        let p = Policy::default();
        let mut inp = input(
            (0..3)
                .map(|i| stale_since(obs(&format!("c{i:04}"), &format!("s{i}"), t0), t0))
                .collect(),
        );
        let mut h = History::new();
        let during = t0 + 60 * S;
        assert!(brake(&p, &inp).is_some());
        h.hold(during);
        let ds = decide(&p, &inp, &h, during);
        assert!(
            ds.iter()
                .all(|d| matches!(d.why, Why::SharedOutage { bad: 3, of: 3 })),
            "{ds:?}"
        );
        // Two recover; one is left, bad for a minute, but only 1 s past the outage.
        for c in &mut inp.containers[..2] {
            c.condition = Condition::Healthy;
        }
        assert!(brake(&p, &inp).is_none());
        assert_eq!(only(&decide(&p, &inp, &h, during + S)).1, Why::NotYet(S));
        assert!(matches!(
            only(&decide(&p, &inp, &h, during + Rules::default().heal_after)).0,
            Action::Restart { .. }
        ));
    }

    /// Backoff doubles from the first step to its ceiling, shortened by at most a fifth of jitter.
    #[test]
    fn backoff_growth() {
        let r = Rules::default();
        let waits: Vec<u64> = (0..8).map(|l| backoff_for(&r, l).as_secs()).collect();
        assert_eq!(waits, [0, 10, 20, 40, 80, 160, 300, 300]);
        for l in 1..8 {
            let j = jittered(backoff_for(&r, l), "abc", l);
            assert!(
                j <= backoff_for(&r, l) && j >= backoff_for(&r, l) * 4 / 5,
                "{l}: {j:?}"
            );
        }
        assert_ne!(
            jittered(100 * S, "a", 1),
            jittered(100 * S, "b", 1),
            "jitter depends on the container"
        );
    }

    /// A container frozen again right after each restart waits longer each time; the policy
    /// restarts it exactly when its backoff ends, never before.
    #[test]
    fn backoff_enforced_between_restarts() {
        let t0 = Instant::now();
        let rules = Rules {
            budget: 100,
            ..Rules::default()
        };
        let mut o = obs("aaaa", "a", t0);
        o.rules = rules;
        let mut inp = input(vec![o]);
        let mut h = History::new();
        let p = Policy::default();
        let mut restarts = Vec::new();
        let mut now = t0;
        while now < t0 + 3600 * S {
            // Frozen the moment it comes back.
            let c = &mut inp.containers[0];
            if c.condition == Condition::Healthy {
                c.condition = Condition::Stale;
                c.condition_since = now;
            }
            if step(&p, &mut inp, &mut h, now)
                .iter()
                .any(|d| matches!(d.action, Action::Restart { .. }))
            {
                restarts.push(now);
            }
            now += Duration::from_millis(100);
        }
        let gaps: Vec<Duration> = restarts.windows(2).map(|w| w[1] - w[0]).collect();
        for (i, gap) in gaps.iter().enumerate() {
            let level = i as u32 + 1;
            let want = (jittered(backoff_for(&rules, level), "aaaa", level)).max(rules.heal_after);
            assert!(
                *gap >= want && *gap < want + Duration::from_millis(200),
                "gap {i}: {gap:?} want {want:?}"
            );
        }
        assert!(gaps[3] > gaps[0] * 4, "grows: {gaps:?}");
        assert!(gaps.last().unwrap() <= &rules.backoff_max.max(rules.heal_after));
    }

    /// Past its budget (5 in 30 min) a container is quarantined, left alone while it stays bad,
    /// and released once healthy for the release time, with a fresh budget.
    #[test]
    fn budget_then_quarantine_then_release() {
        let t0 = Instant::now();
        let mut inp = input(vec![obs("aaaa", "a", t0)]);
        let mut h = History::new();
        let p = Policy::default();
        let mut now = t0;
        let mut log = Vec::new();
        while now < t0 + 3600 * S {
            let c = &mut inp.containers[0];
            if c.condition == Condition::Healthy
                && h.get("aaaa").is_none_or(|m| m.quarantined.is_none())
            {
                c.condition = Condition::Stale;
                c.condition_since = now;
            }
            for d in step(&p, &mut inp, &mut h, now) {
                if d.action != Action::Skip || d.why == Why::Quarantined {
                    log.push((now - t0, d.action, d.why));
                }
            }
            now += Duration::from_millis(250);
        }
        let restarts = log
            .iter()
            .filter(|l| matches!(l.1, Action::Restart { .. }))
            .count();
        assert_eq!(restarts, 5, "{log:?}");
        let q = log
            .iter()
            .position(|l| l.1 == Action::Quarantine)
            .expect("quarantined");
        assert_eq!(log[q].2, Why::BudgetSpent { restarts: 5 });
        assert!(
            log[q + 1..]
                .iter()
                .all(|l| l.1 == Action::Skip && l.2 == Why::Quarantined)
        );

        // Healthy again: still quarantined until release_after has passed, then released.
        let qt = t0 + log[q].0;
        let c = &mut inp.containers[0];
        c.condition = Condition::Healthy;
        c.condition_since = now;
        let later = now + Rules::default().release_after - S;
        assert_eq!(only(&decide(&p, &inp, &h, later)).1, Why::Quarantined);
        let ds = step(&p, &mut inp, &mut h, later + S);
        assert_eq!(
            only(&ds),
            (
                Action::Release,
                Why::HealthyFor(Rules::default().release_after)
            )
        );
        assert!(h.get("aaaa").unwrap().quarantined.is_none());
        assert_eq!(
            h.get("aaaa")
                .unwrap()
                .in_window(later + S, Rules::default().window),
            0
        );
        assert!(qt < later);
    }

    /// Removing the label releases a quarantined container (and nothing else is said of it).
    #[test]
    fn label_removed_releases() {
        let t0 = Instant::now();
        let mut h = History::new();
        h.quarantine("aaaa", t0);
        let mut o = stale_since(obs("aaaa", "a", t0), t0);
        o.opted_in = false;
        assert_eq!(
            only(&decide(
                &Policy::default(),
                &input(vec![o.clone()]),
                &h,
                t0 + S
            )),
            (Action::Release, Why::LabelRemoved)
        );
        assert!(
            decide(
                &Policy::default(),
                &input(vec![o]),
                &History::new(),
                t0 + 3600 * S
            )
            .is_empty()
        );
    }

    /// Healthy for earn_back_after, a container's backoff starts again from the first step.
    #[test]
    fn earn_back() {
        let t0 = Instant::now();
        let mut h = History::new();
        for i in 0..3 {
            h.record_restart("aaaa", t0 + i * 60 * S);
        }
        let last = t0 + 120 * S;
        let rules = Rules::default();
        let mut inp = input(vec![obs("aaaa", "a", last)]);
        let p = Policy::default();
        // Healthy, but not long enough yet: nothing said.
        assert!(decide(&p, &inp, &h, last + rules.earn_back_after - S).is_empty());
        let now = last + rules.earn_back_after;
        assert_eq!(only(&step(&p, &mut inp, &mut h, now)).0, Action::EarnBack);
        assert_eq!(h.get("aaaa").unwrap().backoff_level(), 0);
        // Frozen again: restarted after heal_after alone, with no backoff wait.
        let c = &mut inp.containers[0];
        c.condition = Condition::Stale;
        c.condition_since = now;
        assert!(matches!(
            only(&decide(&p, &inp, &h, now + rules.heal_after)).0,
            Action::Restart { attempt: 4, .. }
        ));
    }

    /// One container at a time per service: of two frozen replicas, one is restarted, the other
    /// waits while that restart is under way, then goes.
    #[test]
    fn one_per_service() {
        let t0 = Instant::now();
        let a1 = stale_since(obs("aaa1", "a", t0), t0);
        let a2 = stale_since(obs("aaa2", "a", t0), t0);
        let b = obs("bbbb", "b", t0);
        let c = obs("cccc", "c", t0);
        let p = Policy {
            max_in_flight: 5,
            ..Policy::default()
        };
        let inp = input(vec![a1, a2, b, c]);
        let ds = decide(&p, &inp, &History::new(), t0 + 60 * S);
        assert!(matches!(ds[0].action, Action::Restart { .. }));
        assert_eq!((ds[1].action, ds[1].why), (Action::Skip, Why::ServiceBusy));
        let mut h = History::new();
        h.begin("aaa1", "a");
        let ds = decide(&p, &inp, &h, t0 + 61 * S);
        assert_eq!(only(&ds), (Action::Skip, Why::ServiceBusy));
        h.end("aaa1");
        assert!(matches!(
            decide(&p, &inp, &h, t0 + 62 * S)[0].action,
            Action::Restart { .. }
        ));
    }

    /// At most max_in_flight restarts at once across the stack: a sidecar that comes back to many
    /// frozen containers restarts them one after another, not in a burst.
    #[test]
    fn no_burst() {
        let t0 = Instant::now();
        let cs: Vec<Observation> = (0..6)
            .map(|i| {
                let o = stale_since(obs(&format!("c{i:04}"), &format!("s{i}"), t0), t0);
                if i < 2 {
                    o
                } else {
                    obs(&format!("c{i:04}"), &format!("s{i}"), t0)
                }
            })
            .collect();
        let ds = decide(&Policy::default(), &input(cs), &History::new(), t0 + 60 * S);
        assert_eq!(
            ds.iter()
                .filter(|d| matches!(d.action, Action::Restart { .. }))
                .count(),
            1
        );
        assert_eq!(ds[1].why, Why::TooManyInFlight);
    }

    /// In dry-run the same restart is decided, marked dry, and its backoff is kept as if done.
    #[test]
    fn dry_run() {
        let t0 = Instant::now();
        let inp = input(vec![stale_since(obs("aaaa", "a", t0), t0)]);
        let p = Policy {
            mode: Mode::DryRun,
            ..Policy::default()
        };
        let mut h = History::new();
        let ds = decide(&p, &inp, &h, t0 + 10 * S);
        assert_eq!(
            ds[0].action,
            Action::Restart {
                attempt: 1,
                dry_run: true
            }
        );
        apply(&mut h, &ds[0], t0 + 10 * S);
        // Nothing restarted the container: still stale, and the next one waits out the backoff.
        assert!(matches!(
            only(&decide(&p, &inp, &h, t0 + 11 * S)).1,
            Why::Backoff(_)
        ));
    }

    /// A condition older than the container's last start does not count: right after a restart the
    /// old instance's stale record must not trigger another restart before heal_after.
    #[test]
    fn condition_counts_from_container_start() {
        let t0 = Instant::now();
        let mut o = stale_since(obs("aaaa", "a", t0), t0);
        o.started_at = t0 + 100 * S;
        let ds = decide(
            &Policy::default(),
            &input(vec![o]),
            &History::new(),
            t0 + 105 * S,
        );
        assert_eq!(only(&ds).1, Why::NotYet(5 * S));
    }

    /// A service is its project and its name: `worker` frozen in two projects is restarted in
    /// both, and a restart under way in one project does not hold the other's.
    #[test]
    fn services_are_keyed_by_project() {
        let t0 = Instant::now();
        let mut a = stale_since(obs("aaaa", "worker", t0), t0);
        a.project = "one".into();
        let mut b = stale_since(obs("bbbb", "worker", t0), t0);
        b.project = "two".into();
        let inp = input(vec![a, b, obs("cccc", "x", t0), obs("dddd", "y", t0)]);
        let p = Policy {
            max_in_flight: 5,
            ..Policy::default()
        };
        let ds = decide(&p, &inp, &History::new(), t0 + 60 * S);
        assert_eq!(
            ds.iter()
                .filter(|d| matches!(d.action, Action::Restart { .. }))
                .count(),
            2,
            "{ds:?}"
        );
        let mut h = History::new();
        h.begin("aaaa", "worker");
        let ds = decide(&p, &inp, &h, t0 + 61 * S);
        assert_eq!(ds.len(), 1, "{ds:?}");
        assert_eq!(ds[0].id, "bbbb");
        assert!(matches!(ds[0].action, Action::Restart { .. }), "{ds:?}");
    }
}
