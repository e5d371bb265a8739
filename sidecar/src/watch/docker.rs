//! The containers' side: Docker events (filtered to the watched Compose projects) and an
//! inspect of the container each event names; a full listing at start, after a reconnect and
//! every `resync` (which also refreshes each container's last health log line).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{EventsOptions, InspectContainerOptions, ListContainersOptions};
use futures_util::StreamExt as _;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Backoff, engine, pause};
use crate::config::DockerEndpoint;
use crate::error::{Error, ErrorKind};
use crate::state::Container;
use crate::writer::{Change, Changes, DockerChange};

/// The Compose label naming a container's project.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The Compose label naming a container's service.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";

/// Longest kept health log line, in bytes (Docker keeps up to 4096 bytes of output).
const MAX_HEALTH_LINE: usize = 300;

/// How Docker is watched.
#[derive(Debug, Clone)]
pub struct DockerWatch {
    /// Where the API is.
    pub endpoint: DockerEndpoint,
    /// Compose projects to watch; empty means the sidecar's own project if it runs in one,
    /// else every container that belongs to some Compose project.
    pub projects: Vec<String>,
    /// Timeout of each API call.
    pub timeout: Duration,
    /// Time between two full listings.
    pub resync: Duration,
    /// Ceiling of the retry backoff.
    pub max_backoff: Duration,
}

/// Connects at an API version both sides speak (see [`super::engine`]).
pub async fn connect(endpoint: &DockerEndpoint, timeout: Duration) -> Result<Docker, Error> {
    engine::connect(endpoint, timeout)
        .await
        .map(|(docker, _)| docker)
}

impl DockerWatch {
    /// Watches until `shutdown` turns true; every failure is reported and retried with backoff.
    pub async fn run(
        mut self,
        changes: Changes,
        self_id: Option<String>,
        shutdown: watch::Receiver<bool>,
    ) {
        let mut backoff = Backoff::new(Duration::from_millis(500), self.max_backoff);
        loop {
            let started = Instant::now();
            let outcome = self.session(&changes, self_id.as_deref(), &shutdown).await;
            match outcome {
                Ok(()) => return,
                Err(reason) => {
                    tracing::warn!(%reason, "docker watch failed");
                    if changes
                        .send(Change::Docker(DockerChange::Failed(reason)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            // A session that ran a while was a success: the next failure retries quickly.
            if started.elapsed() > self.resync {
                backoff.reset();
            }
            if !pause(backoff.next_wait(), &shutdown).await {
                return;
            }
        }
    }

    /// One connection: list, then follow events and resync until an error (or shutdown: Ok).
    async fn session(
        &mut self,
        changes: &Changes,
        self_id: Option<&str>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), Error> {
        let (docker, engine) = engine::connect(&self.endpoint, self.timeout).await?;
        tracing::info!(engine = %engine.product, api = %engine.api, "watching docker");
        // Each container's last inspect, so an API 1.52 resync inspects only what changed;
        // replaced by every resync, so removed containers leave it.
        let mut known: HashMap<String, Container> = HashMap::new();
        if self.projects.is_empty()
            && let Some(id) = self_id
            && let Ok(me) = self.inspect(&docker, id).await
            && let Some(project) = me.labels.get(PROJECT_LABEL)
        {
            tracing::info!(%project, "watching the sidecar's own compose project");
            self.projects = vec![project.clone()];
        }
        let filters = self.filters();
        // Events first, so nothing that happens during the listing is missed.
        let mut events = docker.events(Some(EventsOptions {
            filters: Some(filters.clone()),
            ..Default::default()
        }));
        self.resync(&docker, &engine, &mut known, changes).await?;
        let mut next_resync = Instant::now() + self.resync;
        let mut stop = shutdown.clone();
        loop {
            tokio::select! {
                _ = super::stopped(&mut stop) => return Ok(()),
                _ = tokio::time::sleep_until(next_resync) => {
                    self.resync(&docker, &engine, &mut known, changes).await?;
                    next_resync = Instant::now() + self.resync;
                }
                event = events.next() => {
                    let event = match event {
                        None => return Err(Error::new(ErrorKind::Unreachable, "docker event stream ended")),
                        Some(Err(e)) => return Err(Error::docker("docker events", e)),
                        Some(Ok(e)) => e,
                    };
                    let Some(actor) = event.actor else { continue };
                    let attributes = actor.attributes.unwrap_or_default();
                    let ours = self.projects.is_empty()
                        || attributes.get(PROJECT_LABEL).is_some_and(|p| self.projects.contains(p));
                    let Some(id) = actor.id.filter(|_| ours) else { continue };
                    let action = event.action.unwrap_or_default();
                    let change = if action == "destroy" {
                        known.remove(&id);
                        DockerChange::Gone(id)
                    } else {
                        match self.inspect(&docker, &id).await {
                            Ok(c) => {
                                known.insert(id, c.clone());
                                DockerChange::One(Box::new(c))
                            }
                            Err(e) if e.is_not_found() => DockerChange::Gone(id),
                            Err(e) => return Err(e),
                        }
                    };
                    if changes.send(Change::Docker(change)).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// The event filter. Docker ANDs label filters, so several projects are matched here by
    /// the label's presence and told apart from each event's attributes.
    fn filters(&self) -> HashMap<String, Vec<String>> {
        let label = match self.projects.as_slice() {
            [one] => vec![format!("{PROJECT_LABEL}={one}")],
            _ => vec![PROJECT_LABEL.to_string()],
        };
        let mut f = HashMap::new();
        f.insert("label".to_string(), label);
        f.insert("type".to_string(), vec!["container".to_string()]);
        // Not exec_create / exec_start: every HEALTHCHECK run would wake the sidecar.
        f.insert(
            "event".to_string(),
            [
                "create",
                "start",
                "restart",
                "stop",
                "die",
                "kill",
                "oom",
                "pause",
                "unpause",
                "destroy",
                "rename",
                "update",
                "health_status",
            ]
            .map(String::from)
            .to_vec(),
        );
        f
    }

    /// Lists the watched containers and inspects each (on API 1.52, only those whose state or
    /// health moved since `known` was taken); sends the whole set.
    async fn resync(
        &self,
        docker: &Docker,
        engine: &engine::Engine,
        known: &mut HashMap<String, Container>,
        changes: &Changes,
    ) -> Result<(), Error> {
        // Label filters are ANDed: one listing per project.
        let groups: Vec<String> = if self.projects.is_empty() {
            vec![PROJECT_LABEL.to_string()]
        } else {
            self.projects
                .iter()
                .map(|p| format!("{PROJECT_LABEL}={p}"))
                .collect()
        };
        let mut listed = Vec::new();
        for label in groups {
            let mut f = HashMap::new();
            f.insert("label".to_string(), vec![label]);
            if engine.lists_health() {
                listed.extend(engine::list(&self.endpoint, engine, &f, self.timeout).await?);
                continue;
            }
            let list = tokio::time::timeout(
                self.timeout,
                docker.list_containers(Some(ListContainersOptions {
                    all: true,
                    filters: Some(f),
                    ..Default::default()
                })),
            )
            .await
            .map_err(|_| self.timed_out("listing containers"))?
            .map_err(|e| Error::docker("docker: listing containers", e))?;
            listed.extend(list.into_iter().filter_map(|c| {
                Some(engine::Listed {
                    id: c.id?,
                    state: String::new(),
                    health: None,
                })
            }));
        }
        let mut all = Vec::with_capacity(listed.len());
        for l in listed {
            if let Some(c) = known
                .get(&l.id)
                .filter(|c| engine.lists_health() && engine::still_current(c, &l))
            {
                all.push(c.clone());
                continue;
            }
            match self.inspect(docker, &l.id).await {
                Ok(c) => all.push(c),
                // Removed between the listing and the inspect.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        *known = all.iter().map(|c| (c.id.clone(), c.clone())).collect();
        changes
            .send(Change::Docker(DockerChange::All(all)))
            .await
            .map_err(|_| Error::new(ErrorKind::Unreachable, "the writer is gone: shutting down"))
    }

    async fn inspect(&self, docker: &Docker, id: &str) -> Result<Container, Error> {
        let r = tokio::time::timeout(
            self.timeout,
            docker.inspect_container(id, None::<InspectContainerOptions>),
        )
        .await
        .map_err(|_| self.timed_out("inspecting a container"))?
        .map_err(|e| Error::docker(format_args!("docker: inspecting {}", short(id)), e))?;
        Ok(container_from(r))
    }

    fn timed_out(&self, what: &str) -> Error {
        Error::timeout(
            format_args!("docker at {}: {what}", self.endpoint.describe()),
            self.timeout,
        )
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// What the sidecar keeps of an inspect.
pub fn container_from(r: ContainerInspectResponse) -> Container {
    let config = r.config.unwrap_or_default();
    let labels: BTreeMap<String, String> = config.labels.unwrap_or_default().into_iter().collect();
    let state = r.state.unwrap_or_default();
    let health = state.health.unwrap_or_default();
    let running = state.running.unwrap_or(false);
    let last_health_line = health
        .log
        .as_ref()
        .and_then(|log| log.last())
        .and_then(|entry| entry.output.as_deref())
        .and_then(|out| out.lines().rev().find(|l| !l.trim().is_empty()))
        .map(|l| clip(l.trim(), MAX_HEALTH_LINE));
    let health_status = health
        .status
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty() && s != "none");
    Container {
        id: r.id.unwrap_or_default(),
        name: r
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        project: labels.get(PROJECT_LABEL).cloned(),
        service: labels.get(SERVICE_LABEL).cloned(),
        hostname: config.hostname.unwrap_or_default(),
        labels,
        status: state.status.map(|s| s.to_string()).unwrap_or_default(),
        running,
        health: health_status,
        health_since: None,
        failing_streak: health.failing_streak.unwrap_or(0).max(0) as u64,
        last_health_line,
        restart_count: r.restart_count.unwrap_or(0).max(0) as u64,
        exit_code: if running { None } else { state.exit_code },
        started_at: state.started_at.filter(|s| !s.starts_with("0001-")),
        health_checked_at: health.log.as_ref().and_then(|log| log.last()?.end.clone()),
        instances: Vec::new(),
        earlier_instances: Vec::new(),
        stop_timeout: config.stop_timeout,
        network_mode: r
            .host_config
            .and_then(|h| h.network_mode)
            .filter(|m| !m.is_empty()),
        start_period: config
            .healthcheck
            .and_then(|h| h.start_period)
            .filter(|ns| *ns > 0)
            .map(|ns| Duration::from_nanos(ns as u64)),
        heal: None,
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On the real engine (when this machine has one): inspecting a container that does not exist
    /// is `NotFound`, told by the 404 the engine answers (not by its words).
    #[tokio::test]
    async fn the_engine_says_not_found_by_status() {
        let sock = std::path::Path::new("/var/run/docker.sock");
        if !sock.exists() {
            eprintln!("skipped: no docker engine at {}", sock.display());
            return;
        }
        let docker = connect(
            &DockerEndpoint::Unix(sock.to_string_lossy().into_owned()),
            Duration::from_secs(5),
        )
        .await
        .expect("docker answers");
        let err = docker
            .inspect_container(&"0".repeat(64), None::<InspectContainerOptions>)
            .await
            .expect_err("no container has this id");
        assert!(Error::docker("inspecting", err).is_not_found());
    }
}
