//! Measured advice from the running stack (issue 23, deliverable 5): per service, how long its
//! containers really take from start to their first ready record (p50/p95 over the history's
//! window), whether the configured `start_period` is too short or longer than needed, its failing
//! streaks, and what its health checks cost the machine. "Is 120 s enough?", answered with data.
//!
//! Start times and first-ready times come from the history ([`crate::timeline`]); each
//! container's healthcheck settings from one inspect per container id (a container's
//! configuration never changes for its id, so the cache is exact and is pruned when the container
//! goes). The cost is the checks per second the settings imply times the measured cost of one
//! check (79 ms of machine CPU, BENCHMARKS.md, overridable with `--check-cost`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::state::State;
use crate::timeline::{Kind, Timeline};

/// Machine CPU per Docker HEALTHCHECK exec, measured on this project's machines
/// (BENCHMARKS.md: dockerd, containerd, the shim, runc and the exec, about 79 ms).
pub const DEFAULT_CHECK_COST: Duration = Duration::from_millis(79);

/// Docker's default check interval when a healthcheck sets none.
pub const DOCKER_DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// A `start_period` is called longer than needed when it is more than this many times the
/// slowest measured start (p95) and at least [`SLACK`] longer.
pub const TOO_LONG_FACTOR: f64 = 3.0;
/// The least waste worth a word.
pub const SLACK: Duration = Duration::from_secs(30);

/// One container's healthcheck settings, as Docker has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckConfig {
    /// Whether it has a healthcheck at all (`NONE` or none: no).
    pub has_check: bool,
    /// Time between checks.
    pub interval: Duration,
    /// The start period (zero when unset).
    pub start_period: Duration,
    /// Time between checks during the start period (Engine 25+), when set.
    pub start_interval: Option<Duration>,
}

/// The cache of settings per container id, filled by [`run`].
pub type Checks = Arc<Mutex<HashMap<String, CheckConfig>>>;

/// The advice for one service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceAdvice {
    /// Compose service (the container name outside Compose).
    pub service: String,
    /// Containers of it now.
    pub containers: usize,
    /// Starts seen in the window that reached ready.
    pub starts_measured: usize,
    /// Starts seen in the window that have not (yet) reached ready.
    pub starts_pending: usize,
    /// Median time from container start to the first ready record (or passing check, for a
    /// container without an agent), seconds.
    pub first_ready_p50_s: Option<f64>,
    /// 95th percentile of the same, seconds.
    pub first_ready_p95_s: Option<f64>,
    /// The slowest, seconds.
    pub first_ready_max_s: Option<f64>,
    /// The configured `start_period`, seconds (the largest among its containers).
    pub start_period_s: Option<f64>,
    /// `ok`, `too-short`, `longer-than-needed`, `no-healthcheck` or `not-measured`.
    pub start_period_verdict: &'static str,
    /// The advice, one sentence.
    pub advice: String,
    /// The longest failing streak of its checks now, across its containers.
    pub failing_streak_now: u64,
    /// The longest failing streak seen in the window.
    pub failing_streak_worst: u64,
    /// Health checks per second at steady state, across its containers.
    pub checks_per_s: f64,
    /// Their machine CPU, as a share of one core (checks per second × the cost of one).
    pub check_cpu_share: f64,
}

/// The whole stack's advice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advice {
    /// The per-check cost used, milliseconds.
    pub check_cost_ms: f64,
    /// Health checks per second across the stack.
    pub checks_per_s: f64,
    /// Their machine CPU, as a share of one core.
    pub check_cpu_share: f64,
    /// One per service, by name.
    pub services: Vec<ServiceAdvice>,
}

/// The `q` quantile (0..=1) of sorted `v`, nearest rank.
fn quantile(v: &[u64], q: f64) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

fn secs(ms: u64) -> f64 {
    (ms as f64 / 100.0).round() / 10.0
}

/// The advice for the stack in `state`, from the history `t` and the settings in `checks`
/// (pure: everything it needs is passed in).
pub fn advise(
    state: &State,
    t: &Timeline,
    checks: &HashMap<String, CheckConfig>,
    check_cost: Duration,
) -> Advice {
    #[derive(Default)]
    struct Acc {
        containers: usize,
        samples: Vec<u64>,
        pending: usize,
        start_period: Option<Duration>,
        has_check: bool,
        streak_now: u64,
        streak_worst: u64,
        checks_per_s: f64,
    }
    let mut by: BTreeMap<String, Acc> = BTreeMap::new();
    // Measured starts: every container track in the window, by its service (a container that
    // went keeps its starts until they leave the window).
    for (_, _, tr) in t.tracks_of(Kind::Container) {
        let service = if tr.service().is_empty() {
            tr.label().to_owned()
        } else {
            tr.service().to_owned()
        };
        let a = by.entry(service).or_default();
        for (_, ready_after) in tr.starts() {
            match ready_after {
                Some(ms) => a.samples.push(*ms),
                None => a.pending += 1,
            }
        }
        a.streak_worst = a.streak_worst.max(tr.worst_streak());
    }
    for c in &state.containers {
        let service = c.service.clone().unwrap_or_else(|| c.name.clone());
        let a = by.entry(service).or_default();
        a.containers += 1;
        a.streak_now = a.streak_now.max(c.failing_streak);
        a.streak_worst = a.streak_worst.max(c.failing_streak);
        let cfg = checks.get(&c.id).copied();
        let has_check = cfg.map_or(c.health.is_some(), |k| k.has_check);
        if has_check {
            a.has_check = true;
            let interval = cfg.map_or(DOCKER_DEFAULT_INTERVAL, |k| k.interval);
            if c.running && !interval.is_zero() {
                a.checks_per_s += 1.0 / interval.as_secs_f64();
            }
        }
        let sp = cfg.map(|k| k.start_period).or(c.start_period);
        a.start_period = a.start_period.max(sp);
    }
    let cost = check_cost.as_secs_f64();
    let mut services = Vec::with_capacity(by.len());
    let (mut total_rate, mut total_share) = (0.0, 0.0);
    for (service, mut a) in by {
        if a.containers == 0 && a.samples.is_empty() && a.pending == 0 {
            continue;
        }
        a.samples.sort_unstable();
        let p50 = quantile(&a.samples, 0.5);
        let p95 = quantile(&a.samples, 0.95);
        let max = a.samples.last().copied();
        let sp = a.start_period.unwrap_or_default();
        let (verdict, advice) = match (a.has_check, p95) {
            (false, _) => (
                "no-healthcheck",
                "no Docker healthcheck: nothing to tune (the sidecar watches its ready signal)"
                    .to_owned(),
            ),
            (true, None) => (
                "not-measured",
                "no start reached ready in the window yet: nothing measured".to_owned(),
            ),
            (true, Some(p95)) => {
                let p95d = Duration::from_millis(p95);
                // Room for a slower start than any seen: half again the p95, in whole 5 s.
                let suggest = ((p95 as f64 * 1.5 / 5000.0).ceil() * 5.0) as u64;
                if p95d > sp {
                    (
                        "too-short",
                        format!(
                            "start_period {}s is shorter than the measured p95 of {:.1}s to ready: \
                             a slow start is counted as failing; set start_period: {suggest}s",
                            sp.as_secs(),
                            secs(p95)
                        ),
                    )
                } else if sp.as_secs_f64() > p95d.as_secs_f64() * TOO_LONG_FACTOR
                    && sp.saturating_sub(p95d) >= SLACK
                {
                    (
                        "longer-than-needed",
                        format!(
                            "start_period {}s is over {TOO_LONG_FACTOR}x the measured p95 of {:.1}s: \
                             a start that fails is declared unhealthy only after it; \
                             start_period: {suggest}s is enough",
                            sp.as_secs(),
                            secs(p95)
                        ),
                    )
                } else {
                    (
                        "ok",
                        format!(
                            "start_period {}s covers the measured p95 of {:.1}s to ready",
                            sp.as_secs(),
                            secs(p95)
                        ),
                    )
                }
            }
        };
        let share = a.checks_per_s * cost;
        total_rate += a.checks_per_s;
        total_share += share;
        services.push(ServiceAdvice {
            service,
            containers: a.containers,
            starts_measured: a.samples.len(),
            starts_pending: a.pending,
            first_ready_p50_s: p50.map(secs),
            first_ready_p95_s: p95.map(secs),
            first_ready_max_s: max.map(secs),
            start_period_s: a.start_period.map(|d| d.as_secs_f64()),
            start_period_verdict: verdict,
            advice,
            failing_streak_now: a.streak_now,
            failing_streak_worst: a.streak_worst,
            checks_per_s: (a.checks_per_s * 1000.0).round() / 1000.0,
            check_cpu_share: (share * 10_000.0).round() / 10_000.0,
        });
    }
    Advice {
        check_cost_ms: check_cost.as_secs_f64() * 1000.0,
        checks_per_s: (total_rate * 1000.0).round() / 1000.0,
        check_cpu_share: (total_share * 10_000.0).round() / 10_000.0,
        services,
    }
}

/// Fills `checks` with each watched container's healthcheck settings, inspecting each container
/// id once, and forgets the containers that left; until `shutdown`.
pub async fn run(
    docker: bollard::Docker,
    checks: Checks,
    mut snapshots: watch::Receiver<Arc<State>>,
    timeout: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let ids: Vec<String> = snapshots
            .borrow_and_update()
            .containers
            .iter()
            .map(|c| c.id.clone())
            .collect();
        let missing: Vec<String> = match checks.lock() {
            Ok(mut known) => {
                known.retain(|id, _| ids.contains(id));
                ids.into_iter()
                    .filter(|id| !known.contains_key(id))
                    .collect()
            }
            Err(_) => return,
        };
        for id in missing {
            let inspected = tokio::time::timeout(
                timeout,
                docker.inspect_container(
                    &id,
                    None::<bollard::query_parameters::InspectContainerOptions>,
                ),
            )
            .await;
            let Ok(Ok(r)) = inspected else { continue };
            let hc = r.config.and_then(|c| c.healthcheck);
            let ns = |v: Option<i64>| v.filter(|n| *n > 0).map(|n| Duration::from_nanos(n as u64));
            let cfg = match hc {
                Some(h) => CheckConfig {
                    has_check: h
                        .test
                        .as_ref()
                        .is_some_and(|t| t.first().is_some_and(|w| w != "NONE")),
                    interval: ns(h.interval).unwrap_or(DOCKER_DEFAULT_INTERVAL),
                    start_period: ns(h.start_period).unwrap_or_default(),
                    start_interval: ns(h.start_interval),
                },
                None => CheckConfig {
                    has_check: false,
                    interval: DOCKER_DEFAULT_INTERVAL,
                    start_period: Duration::ZERO,
                    start_interval: None,
                },
            };
            if let Ok(mut known) = checks.lock() {
                known.insert(id, cfg);
            }
        }
        tokio::select! {
            _ = &mut shutdown => return,
            changed = snapshots.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Container, Source};
    use tokio::time::Instant;

    fn container(id: &str, service: &str) -> Container {
        Container {
            id: id.into(),
            name: format!("demo-{service}-{id}"),
            project: Some("demo".into()),
            service: Some(service.into()),
            hostname: id.into(),
            labels: Default::default(),
            status: "running".into(),
            running: true,
            health: Some("healthy".into()),
            health_since: None,
            failing_streak: 0,
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
        }
    }

    /// Starts measured from the history give p50/p95; a start period under the p95 is too
    /// short, one far above it longer than needed, one just above it fine; the cost is the
    /// interval's rate times the per-check cost (24 containers at 2 s: 0.95 of a core).
    #[test]
    fn verdicts_and_cost() {
        let mut state = State::new(Instant::now(), Source::Ok, Source::Ok);
        let mut t = Timeline::new(crate::timeline::DEFAULT_WINDOW);
        let mut checks = HashMap::new();
        let mut tracks = Vec::new();
        for (svc, period, samples) in [
            ("slow", 60, vec![70_000u64, 80_000, 95_000, 90_000]),
            ("fast", 300, vec![2_000, 3_000, 4_000]),
            ("fine", 30, vec![12_000, 20_000]),
        ] {
            let id = format!("{svc}-1");
            state.containers.push(container(&id, svc));
            checks.insert(
                id.clone(),
                CheckConfig {
                    has_check: true,
                    interval: Duration::from_secs(2),
                    start_period: Duration::from_secs(period),
                    start_interval: None,
                },
            );
            tracks.push((id, svc, samples));
        }
        state.containers[0].failing_streak = 3;
        t.seed_starts(&tracks);
        let a = advise(&state, &t, &checks, DEFAULT_CHECK_COST);
        let by = |s: &str| a.services.iter().find(|x| x.service == s).unwrap();
        assert_eq!(by("slow").start_period_verdict, "too-short");
        assert_eq!(by("slow").first_ready_p50_s, Some(80.0));
        assert_eq!(by("slow").first_ready_p95_s, Some(95.0));
        assert!(
            by("slow").advice.contains("set start_period: 145s"),
            "{}",
            by("slow").advice
        );
        assert_eq!(by("slow").failing_streak_now, 3);
        assert_eq!(by("fast").start_period_verdict, "longer-than-needed");
        assert_eq!(by("fine").start_period_verdict, "ok");
        assert_eq!(a.checks_per_s, 1.5);
        assert!(
            (a.check_cpu_share - 0.1185).abs() < 1e-9,
            "{}",
            a.check_cpu_share
        );
        // The field's 24 containers checked every 2 s: 12 checks/s, 0.95 of a core.
        let mut s24 = State::new(Instant::now(), Source::Ok, Source::Ok);
        let mut c24 = HashMap::new();
        for i in 0..24 {
            let id = format!("agent-{i}");
            s24.containers.push(container(&id, &id));
            c24.insert(id, checks["fine-1"]);
        }
        let a = advise(
            &s24,
            &Timeline::new(Duration::from_secs(60)),
            &c24,
            DEFAULT_CHECK_COST,
        );
        assert_eq!(a.checks_per_s, 12.0);
        assert!((a.check_cpu_share - 0.948).abs() < 1e-9);
        assert_eq!(a.services[0].start_period_verdict, "not-measured");
    }
}
