//! The sidecar's validated configuration, apart from the raw flags that `main.rs` parses
//! (ripgrep's lowargs/hiargs split), so every rule is unit-tested here without clap.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ready_signal::{Name, StoreConfig};

/// Where the Docker Engine API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerEndpoint {
    /// Not watched.
    None,
    /// A unix socket path.
    Unix(String),
    /// A TCP address (`tcp://host:port`, as `DOCKER_HOST` spells it), e.g. a socket proxy.
    Tcp(String),
}

impl DockerEndpoint {
    /// Parses `--docker`: `none`, `unix:///path`, a bare `/path`, or `tcp://host:port`.
    pub fn parse(s: &str) -> Result<DockerEndpoint, String> {
        if s == "none" {
            return Ok(DockerEndpoint::None);
        }
        if let Some(path) = s.strip_prefix("unix://") {
            return Ok(DockerEndpoint::Unix(path.to_string()));
        }
        if s.starts_with('/') {
            return Ok(DockerEndpoint::Unix(s.to_string()));
        }
        if let Some(addr) = s.strip_prefix("tcp://") {
            if addr.is_empty() || !addr.contains(':') {
                return Err(format!("`{s}`: a TCP endpoint needs host:port"));
            }
            return Ok(DockerEndpoint::Tcp(addr.to_string()));
        }
        Err(format!(
            "`{s}` is not `none`, `unix:///path/to/docker.sock` or `tcp://host:port`"
        ))
    }

    /// The default: `DOCKER_HOST` when set, else the standard socket when it exists, else none.
    pub fn default_from(
        docker_host: Option<&str>,
        socket_exists: bool,
    ) -> Result<DockerEndpoint, String> {
        match docker_host.filter(|h| !h.is_empty()) {
            Some(h) => DockerEndpoint::parse(h).map_err(|e| format!("DOCKER_HOST: {e}")),
            None if socket_exists => Ok(DockerEndpoint::Unix(DEFAULT_SOCKET.into())),
            None => Ok(DockerEndpoint::None),
        }
    }

    /// Says where, for messages.
    pub fn describe(&self) -> String {
        match self {
            DockerEndpoint::None => "none".into(),
            DockerEndpoint::Unix(p) => format!("unix://{p}"),
            DockerEndpoint::Tcp(a) => format!("tcp://{a}"),
        }
    }
}

/// The standard Docker socket.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Everything the sidecar needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where HTTP listens.
    pub listen: SocketAddr,
    /// One store configuration per watched namespace; empty when no store is configured.
    pub stores: Vec<StoreConfig>,
    /// Docker.
    pub docker: DockerEndpoint,
    /// Compose projects to watch (empty: the sidecar's own, else all).
    pub projects: Vec<String>,
    /// Time between bulk reads of the store.
    pub read_interval: Duration,
    /// Timeout of each external call.
    pub timeout: Duration,
    /// Time between full Docker listings.
    pub resync: Duration,
    /// Notifications, history and the self signal ([`crate::outlets`]).
    pub outlets: Outlets,
}

/// The outlets' settings.
#[derive(Debug, Clone)]
pub struct Outlets {
    /// Where each heal decision is posted (`--notify`, `--notify-file`).
    pub notify: Vec<crate::notify::Target>,
    /// The history's window and file; `None`: no history (`--no-history`), and so no advice.
    pub history: Option<crate::timeline::Settings>,
    /// Publish the sidecar's own ready signal ([`crate::selfwatch::SELF_AGENT`]) to the agents' store,
    /// refreshed only while its parts progress (`--self-signal`).
    pub self_signal: bool,
    /// The self signal's heartbeat interval (its record turns stale two intervals after the
    /// last refresh).
    pub self_interval: Duration,
    /// Machine CPU of one Docker health check, for the advice's cost (`--check-cost`).
    pub check_cost: Duration,
}

impl Default for Outlets {
    fn default() -> Outlets {
        Outlets {
            notify: Vec::new(),
            history: Some(crate::timeline::Settings {
                window: crate::timeline::DEFAULT_WINDOW,
                file: None,
            }),
            self_signal: false,
            self_interval: Duration::from_secs(2),
            check_cost: crate::advice::DEFAULT_CHECK_COST,
        }
    }
}

/// Whether any store variable is set: without one the sidecar watches Docker only (the file
/// backend's default directory is this container's own `/tmp`, where no agent writes).
pub fn store_configured(env: impl Fn(&str) -> Option<String>) -> bool {
    [
        "READY_SIGNAL_REDIS_URL",
        "READY_SIGNAL_NATS_URL",
        "READY_SIGNAL_DIR",
    ]
    .iter()
    .any(|v| env(v).is_some_and(|s| !s.is_empty()))
}

/// One store per namespace: `namespaces` from `--namespace`, else the store's own
/// (`READY_SIGNAL_NAMESPACE` or `default`).
pub fn stores_for(base: &StoreConfig, namespaces: &[String]) -> Result<Vec<StoreConfig>, String> {
    if namespaces.is_empty() {
        return Ok(vec![base.clone()]);
    }
    let mut out: Vec<StoreConfig> = Vec::new();
    for ns in namespaces {
        let name = Name::new(ns).map_err(|e| format!("--namespace {ns}: {e}"))?;
        if out.iter().any(|s| s.namespace_name() == &name) {
            continue;
        }
        out.push(base.clone().namespace(name));
    }
    Ok(out)
}

/// Whether the default socket exists.
pub fn default_socket_exists() -> bool {
    Path::new(DEFAULT_SOCKET).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--docker` accepts none, unix paths and tcp addresses, and names what it cannot read.
    #[test]
    fn parses_docker_endpoints() {
        assert_eq!(DockerEndpoint::parse("none"), Ok(DockerEndpoint::None));
        assert_eq!(
            DockerEndpoint::parse("unix:///run/docker.sock"),
            Ok(DockerEndpoint::Unix("/run/docker.sock".into()))
        );
        assert_eq!(
            DockerEndpoint::parse("/var/run/docker.sock"),
            Ok(DockerEndpoint::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            DockerEndpoint::parse("tcp://proxy:2375"),
            Ok(DockerEndpoint::Tcp("proxy:2375".into()))
        );
        assert!(
            DockerEndpoint::parse("tcp://proxy")
                .unwrap_err()
                .contains("host:port")
        );
        assert!(
            DockerEndpoint::parse("http://x")
                .unwrap_err()
                .contains("`http://x`")
        );
        assert!(
            DockerEndpoint::default_from(Some("ssh://x"), true)
                .unwrap_err()
                .starts_with("DOCKER_HOST:")
        );
        assert_eq!(
            DockerEndpoint::default_from(None, false),
            Ok(DockerEndpoint::None)
        );
    }

    /// Without any READY_SIGNAL_* store variable the sidecar runs Docker-only.
    #[test]
    fn store_needs_a_variable() {
        assert!(!store_configured(|_| None));
        assert!(!store_configured(|_| Some(String::new())));
        assert!(store_configured(
            |v| (v == "READY_SIGNAL_REDIS_URL").then(|| "redis://r".into())
        ));
    }

    /// Each --namespace becomes its own store configuration; a bad name is named.
    #[test]
    fn one_store_per_namespace() {
        let base = StoreConfig::new();
        let stores = stores_for(&base, &["a".into(), "b".into(), "a".into()]).unwrap();
        let names: Vec<String> = stores
            .iter()
            .map(|s| s.namespace_name().to_string())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert!(
            stores_for(&base, &["a b".into()])
                .unwrap_err()
                .starts_with("--namespace a b:")
        );
        assert_eq!(stores_for(&base, &[]).unwrap().len(), 1);
    }
}
