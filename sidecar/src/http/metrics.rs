//! `GET /metrics`: Prometheus exposition written by `prometheus-client`, from a collector that
//! reads the latest snapshot at scrape time (so metrics, page and JSON agree).
//!
//! Cardinality is bounded by the number of replicas and containers: labels hold names and
//! fixed words only, never reasons or health output.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::state::{Container, Replica, Source, State};

/// Container health values exposed as a state set.
const HEALTH: [&str; 4] = ["starting", "healthy", "unhealthy", "none"];

/// Reads the snapshot at each scrape.
#[derive(Debug)]
pub struct SnapshotCollector {
    snapshots: watch::Receiver<Arc<State>>,
}

/// A registry holding the snapshot collector.
pub fn registry(snapshots: watch::Receiver<Arc<State>>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector { snapshots }));
    registry
}

/// A registry holding the snapshot collector and the outlets' counts (notifications, the
/// self-watch).
pub fn registry_with(
    snapshots: watch::Receiver<Arc<State>>,
    notify: Option<Arc<crate::notify::Stats>>,
    selfwatch: Option<Arc<crate::selfwatch::Status>>,
) -> Registry {
    let mut registry = registry(snapshots);
    registry.register_collector(Box::new(OutletsCollector { notify, selfwatch }));
    registry
}

/// Reads the notifiers' counts and the self-watch's verdict at each scrape.
#[derive(Debug)]
struct OutletsCollector {
    notify: Option<Arc<crate::notify::Stats>>,
    selfwatch: Option<Arc<crate::selfwatch::Status>>,
}

impl Collector for OutletsCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let e = &mut e;
        if let Some(n) = &self.notify {
            for (name, help, pick) in [
                (
                    "healthcheck_sidecar_notifications_sent",
                    "Notifications delivered (a 2xx answer), per target (scheme://host:port).",
                    0,
                ),
                (
                    "healthcheck_sidecar_notifications_dropped",
                    "Notifications dropped because the target's queue was full.",
                    1,
                ),
                (
                    "healthcheck_sidecar_notifications_failed",
                    "Notifications given up after every retry failed.",
                    2,
                ),
            ] {
                family(
                    e,
                    name,
                    help,
                    MetricType::Counter,
                    n.targets.iter().map(|(t, st)| {
                        let v = match pick {
                            0 => st.sent.load(Relaxed),
                            1 => st.dropped.load(Relaxed),
                            _ => st.failed.load(Relaxed),
                        };
                        ([("target", t.as_str())], ConstCounter::new(v))
                    }),
                )?;
            }
        }
        if let Some(w) = &self.selfwatch {
            single(
                e,
                "healthcheck_sidecar_progress_timestamp_seconds",
                "When the sidecar last saw every part of itself progress (its writer, sources and governor), unix seconds.",
                MetricType::Gauge,
                ConstGauge::new(w.progress_ms.load(Relaxed) as f64 / 1000.0),
            )?;
            single(
                e,
                "healthcheck_sidecar_stalled",
                "1 while a part of the sidecar (writer, a source, the governor) shows no progress: its own ready signal is not refreshed.",
                MetricType::Gauge,
                ConstGauge::new(w.stalled.load(Relaxed) as i64),
            )?;
        }
        Ok(())
    }
}

/// The OpenMetrics content type `prometheus-client` writes.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format's content type.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Encodes the registry as OpenMetrics text (what Prometheus asks for first).
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

/// The same exposition in the classic text format, for clients that do not ask for
/// OpenMetrics (`curl`, `promtool check metrics`): OpenMetrics names a counter family without
/// its `_total` suffix in `# HELP` / `# TYPE` and ends with `# EOF`; the classic format names the
/// family as its samples are named, and has no end marker. Samples are unchanged.
pub fn to_classic_text(openmetrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some(name) = rest.strip_suffix(" counter")
        {
            counters.insert(name.to_string());
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// One metric family: its descriptor, then a sample for each `(labels, value)`. A family with no
/// samples still states its name and help, so dashboards find it before the first sample.
fn family<'s, const N: usize, M: EncodeMetric>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = ([(&'s str, &'s str); N], M)>,
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        value.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A family of one unlabelled sample.
fn single(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    value: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    value.encode(e.encode_descriptor(name, help, None, kind)?)
}

fn replica_labels(r: &Replica) -> [(&'static str, &str); 3] {
    [
        ("namespace", r.namespace.as_str()),
        ("agent", r.agent.as_str()),
        ("replica", r.replica.as_str()),
    ]
}

fn container_labels(c: &Container) -> [(&'static str, &str); 2] {
    [
        ("service", c.service.as_deref().unwrap_or("")),
        ("container", c.name.as_str()),
    ]
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let s = self.snapshots.borrow().clone();
        let now = s.built_at;
        let e = &mut e;

        // One series per replica, labelled with its current state (value 1): the other six
        // states as zeros would multiply a 10,000-agent scrape by seven for no query's gain
        // (`== 1` on the state label is how every rule reads it).
        family(
            e,
            "healthcheck_agent_replica_state",
            "Observed state of each agent replica, as the state label of a series valued 1",
            Gauge,
            s.replicas.iter().map(|r| {
                let [ns, agent, replica] = replica_labels(r);
                (
                    [ns, agent, replica, ("state", r.observed.as_str())],
                    ConstGauge::new(1),
                )
            }),
        )?;
        family(
            e,
            "healthcheck_agent_replica_beat_age_seconds",
            "Age of each replica's last heartbeat, by the store's clock",
            Gauge,
            s.replicas.iter().filter_map(|r| {
                let age = r.beat_age?;
                Some((replica_labels(r), ConstGauge::new(age.as_secs_f64())))
            }),
        )?;
        family(
            e,
            "healthcheck_agent_replica_state_seconds",
            "Time each replica has been in its current observed state",
            Gauge,
            s.replicas.iter().map(|r| {
                let since = now.saturating_duration_since(r.since).as_secs_f64();
                (replica_labels(r), ConstGauge::new(since))
            }),
        )?;
        family(
            e,
            "healthcheck_container_health",
            "Docker health status of each watched container: 1 for the current one (none: no healthcheck)",
            Gauge,
            s.containers.iter().flat_map(|c| {
                let current = c.health.as_deref().unwrap_or("none");
                HEALTH.map(|h| {
                    let [service, container] = container_labels(c);
                    (
                        [service, container, ("health", h)],
                        ConstGauge::new(i64::from(current == h)),
                    )
                })
            }),
        )?;
        family(
            e,
            "healthcheck_container_running",
            "Whether each watched container is running",
            Gauge,
            s.containers
                .iter()
                .map(|c| (container_labels(c), ConstGauge::new(i64::from(c.running)))),
        )?;
        family(
            e,
            "healthcheck_container_exit_code",
            "Exit code of each watched container that is not running",
            Gauge,
            s.containers
                .iter()
                .filter_map(|c| Some((container_labels(c), ConstGauge::new(c.exit_code?)))),
        )?;
        family(
            e,
            "healthcheck_container_restarts",
            "Restarts of each watched container, as counted by Docker",
            Counter,
            s.containers
                .iter()
                .map(|c| (container_labels(c), ConstCounter::new(c.restart_count))),
        )?;
        family(
            e,
            "healthcheck_sidecar_source_up",
            "Whether the sidecar could read each configured source at its last attempt (absent when off)",
            Gauge,
            [("store", &s.store), ("docker", &s.docker)]
                .into_iter()
                .filter(|(_, src)| **src != Source::Off)
                .map(|(name, src)| ([("source", name)], ConstGauge::new(i64::from(src.is_ok())))),
        )?;
        let c = s.counters;
        for (name, help, value) in [
            (
                "healthcheck_sidecar_store_reads",
                "Bulk reads of the agents' store",
                c.store_reads,
            ),
            (
                "healthcheck_sidecar_store_errors",
                "Bulk reads of the agents' store that failed",
                c.store_errors,
            ),
            (
                "healthcheck_sidecar_store_events",
                "Agent events received from NATS",
                c.store_events,
            ),
            (
                "healthcheck_sidecar_docker_calls",
                "Docker API results (listings, inspects, failures)",
                c.docker_calls,
            ),
            (
                "healthcheck_sidecar_docker_errors",
                "Docker API calls or event streams that failed",
                c.docker_errors,
            ),
        ] {
            single(e, name, help, Counter, ConstCounter::new(value))?;
        }
        family(
            e,
            "healthcheck_heal_mode",
            "Heal governor mode: 1 for the current one",
            Gauge,
            ["off", "dry-run", "on"].map(|mode| {
                (
                    [("mode", mode)],
                    ConstGauge::new(i64::from(s.heal.mode.as_str() == mode)),
                )
            }),
        )?;
        single(
            e,
            "healthcheck_heal_shared_outage",
            "1 while the shared-outage brake holds every restart",
            Gauge,
            ConstGauge::new(i64::from(s.heal.shared_outage.is_some())),
        )?;
        single(
            e,
            "healthcheck_heal_refused",
            "1 while the governor heals nothing because it cannot find its own container (see the log or /api/status for why)",
            Gauge,
            ConstGauge::new(i64::from(s.heal.refused.is_some())),
        )?;
        family(
            e,
            "healthcheck_heal_quarantined",
            "1 for each container the governor has quarantined",
            Gauge,
            s.containers.iter().filter_map(|c| {
                let h = c.heal.as_ref()?;
                Some((
                    container_labels(c),
                    ConstGauge::new(i64::from(h.status == "quarantined")),
                ))
            }),
        )?;
        family(
            e,
            "healthcheck_heal_decisions",
            "Heal decisions since the sidecar started, by project, service, decision and why",
            Counter,
            s.heal.decisions.iter().map(|d| {
                (
                    [
                        ("project", d.project.as_str()),
                        ("service", d.service.as_str()),
                        ("decision", d.decision.as_str()),
                        ("why", d.why.as_str()),
                    ],
                    ConstCounter::new(d.count),
                )
            }),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counter families take their samples' `_total` name in the classic format; the rest is
    /// untouched and the end marker goes.
    #[test]
    fn classic_text_names_counters_as_their_samples() {
        let om = "# HELP a_reads Reads.\n# TYPE a_reads counter\na_reads_total 3\n\
                  # HELP b Gauge.\n# TYPE b gauge\nb{x=\"counter\"} 1\n# EOF\n";
        assert_eq!(
            to_classic_text(om),
            "# HELP a_reads_total Reads.\n# TYPE a_reads_total counter\na_reads_total 3\n\
             # HELP b Gauge.\n# TYPE b gauge\nb{x=\"counter\"} 1\n"
        );
    }
}
