//! Builders shared by the writer's tests: records as a store read returns them, containers as
//! an inspect returns them, and a book watching one namespace.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use ready_signal::{Name, Observed, ReplicaStatus};
use tokio::time::Instant;

use super::{Book, Change};
use crate::state::Container;

pub(super) const NS: &str = "demo";

pub(super) fn status(
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

pub(super) fn read(list: Vec<ReplicaStatus>) -> Change {
    Change::StoreRead {
        namespace: NS.into(),
        at: Instant::now(),
        result: Ok(list),
    }
}

pub(super) fn book() -> Book {
    Book::new(Instant::now(), vec![NS.into()], true, true)
}

pub(super) fn observed(b: &Book) -> Vec<(&str, Observed)> {
    b.state()
        .replicas
        .iter()
        .map(|r| (r.replica.as_str(), r.observed))
        .collect()
}

pub(super) fn event(
    replica: &str,
    instance: &str,
    state: ready_signal::State,
    reason: &str,
) -> Change {
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

pub(super) fn container(id: &str, hostname: &str, running: bool) -> Container {
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
        health_checked_at: None,
        instances: Vec::new(),
        earlier_instances: Vec::new(),
        stop_timeout: None,
        network_mode: None,
        start_period: None,
        heal: None,
    }
}
