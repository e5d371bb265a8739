//! The cost line: how many health-check execs the file asks for per second at steady state and
//! during start-up, what they cost the machine (BENCHMARKS.md: about 79 ms of CPU per Docker
//! exec, almost all of it in dockerd, containerd, the shim and runc), and the delay each
//! `service_healthy` chain adds to `up` with and without `start_interval` (Engine 25 / API 1.44).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::model::{Check, Platform, Project, Role, Unit};

/// Docker's `start_interval` default, used during `start_period` on Engine 25 and later.
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);

/// The cost of a file's checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cost {
    /// Machine CPU per exec, in milliseconds (the flag's value).
    pub exec_cost_ms: f64,
    /// Checks that exec in a container (Compose healthchecks, Kubernetes exec probes), counting
    /// replicas.
    pub exec_checks: u32,
    /// Kubernetes httpGet, tcpSocket and grpc probes (run by the kubelet, no exec).
    pub kubelet_probes: u32,
    /// Services whose check cannot be known (an image that may have its own HEALTHCHECK).
    pub unknown: Vec<String>,
    /// Execs per second at steady state.
    pub steady_execs_per_s: f64,
    /// Their CPU, in percent of one core.
    pub steady_cpu_percent: f64,
    /// Execs per second while every service is in its start period, Engine 25+ (start_interval).
    pub startup_execs_per_s: f64,
    /// Their CPU, in percent of one core.
    pub startup_cpu_percent: f64,
    /// Execs per second during start-up on older engines (start_interval ignored).
    pub startup_execs_per_s_before_25: f64,
    /// Gating chains, one per gated service: the longest `service_healthy` path ending there.
    pub chains: Vec<Chain>,
}

/// The longest `service_healthy` chain ending at a service, and what it adds to `up`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chain {
    /// The gated service.
    pub service: String,
    /// Its dependencies from the first started to the last, the service itself last.
    pub path: Vec<String>,
    /// Up to one interval per level (Engine before 25, or no start_period): seconds.
    pub delay_s_before_25: f64,
    /// With start_interval during start_period (Engine 25+): seconds.
    pub delay_s_with_start_interval: f64,
}

fn running_check(u: &Unit) -> Option<&Check> {
    u.checks
        .iter()
        .find(|c| c.role == Role::Docker && c.execs())
}

/// The first check's delay after a start: one interval, or start_interval within start_period.
fn first_check(c: &Check, engine_25: bool) -> Duration {
    let in_period = c.start_period.is_some_and(|p| !p.is_zero());
    if engine_25 && in_period {
        c.start_interval.unwrap_or(DEFAULT_START_INTERVAL)
    } else {
        c.interval_or_default()
    }
}

/// Computes the cost of the project's active units.
pub(crate) fn cost(project: &Project, exec_cost: Duration) -> Cost {
    let per = exec_cost.as_secs_f64();
    let mut c = Cost {
        exec_cost_ms: per * 1000.0,
        exec_checks: 0,
        kubelet_probes: 0,
        unknown: Vec::new(),
        steady_execs_per_s: 0.0,
        steady_cpu_percent: 0.0,
        startup_execs_per_s: 0.0,
        startup_cpu_percent: 0.0,
        startup_execs_per_s_before_25: 0.0,
        chains: Vec::new(),
    };
    for u in project.units.iter().filter(|u| u.active) {
        let n = f64::from(u.replicas);
        match u.platform {
            Platform::Compose => match running_check(u) {
                Some(check) => {
                    c.exec_checks += u.replicas;
                    let steady = n / check.interval_or_default().as_secs_f64().max(0.001);
                    c.steady_execs_per_s += steady;
                    c.startup_execs_per_s_before_25 += steady;
                    c.startup_execs_per_s += n / first_check(check, true).as_secs_f64().max(0.001);
                }
                None if u.docker_check().is_none()
                    && u.built_from.is_none()
                    && super::images::contents(u.image.as_deref(), None).is_none() =>
                {
                    c.unknown.push(u.name.clone());
                }
                None => {}
            },
            Platform::Kubernetes => {
                for check in &u.checks {
                    if check.execs() {
                        c.exec_checks += u.replicas;
                        let rate = n / check.interval_or_default().as_secs_f64().max(0.001);
                        c.steady_execs_per_s += rate;
                        c.startup_execs_per_s += rate;
                        c.startup_execs_per_s_before_25 += rate;
                    } else {
                        c.kubelet_probes += u.replicas;
                    }
                }
            }
        }
    }
    c.steady_cpu_percent = c.steady_execs_per_s * per * 100.0;
    c.startup_cpu_percent = c.startup_execs_per_s * per * 100.0;
    c.chains = chains(project);
    c
}

/// For every Compose service gated by `service_healthy`, its longest chain.
fn chains(project: &Project) -> Vec<Chain> {
    let mut memo: BTreeMap<String, (Vec<String>, f64, f64)> = BTreeMap::new();
    let mut out = Vec::new();
    for u in project
        .units
        .iter()
        .filter(|u| u.platform == Platform::Compose && u.active)
    {
        let (path, old, new) = longest(project, &u.service, &mut memo, &mut Vec::new());
        if path.len() > 1 {
            out.push(Chain {
                service: u.service.clone(),
                path,
                delay_s_before_25: old,
                delay_s_with_start_interval: new,
            });
        }
    }
    out
}

/// The longest chain ending at `name` (by the delay before Engine 25), cycles cut.
fn longest(
    project: &Project,
    name: &str,
    memo: &mut BTreeMap<String, (Vec<String>, f64, f64)>,
    stack: &mut Vec<String>,
) -> (Vec<String>, f64, f64) {
    if let Some(m) = memo.get(name) {
        return m.clone();
    }
    if stack.iter().any(|s| s == name) {
        return (vec![name.to_string()], 0.0, 0.0);
    }
    stack.push(name.to_string());
    let mut best = (Vec::new(), 0.0, 0.0);
    if let Some(u) = project.service(name) {
        for dep in u
            .depends_on
            .iter()
            .filter(|d| d.condition.as_deref() == Some("service_healthy"))
        {
            let Some(target) = project.service(&dep.service) else {
                continue;
            };
            let Some(check) = running_check(target) else {
                continue;
            };
            let (path, old, new) = longest(project, &dep.service, memo, stack);
            let old = old + first_check(check, false).as_secs_f64();
            let new = new + first_check(check, true).as_secs_f64();
            if old > best.1 || best.0.is_empty() {
                best = (path, old, new);
            }
        }
    }
    stack.pop();
    best.0.push(name.to_string());
    memo.insert(name.to_string(), best.clone());
    best
}
