//! The engine behind the socket, and the API version to speak with it.
//!
//! Engines disagree on the versions they accept: Docker Engine 20.10 (Debian 12) speaks up to
//! API 1.41, Podman 4's Docker-compatible service reports 1.41, and Docker Engine 29 refuses
//! every client below 1.44 (HTTP 400, "client version 1.41 is too old"). bollard's own
//! negotiation only lowers its default version (1.49, the version of its models) to the
//! engine's, and never raises it. So the version is chosen here, as the docker CLI does, from
//! the `Api-Version` header of the unversioned `/_ping` every engine answers (Podman answers
//! `/version` in seconds on a busy machine, `/_ping` in milliseconds): the engine's newest,
//! capped at [`NEWEST`], refused below [`OLDEST`]. bollard is given it, capped at its models' version
//! (bollard 0.19.4 in fact sends its requests without the version prefix, which every engine
//! answers at its own newest version: tests/engine.rs shows it on the fake Engine 29).
//!
//! From API 1.52 the container list carries each container's health, so a resync inspects
//! only the containers whose state, health or failing streak changed since their last
//! inspect ([`still_current`]); bollard's 1.49 models drop that field, so the listing is read
//! here with one plain GET ([`list`]).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use bollard::{ClientVersion, Docker};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::HeaderMap;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::DockerEndpoint;
use crate::error::{Error, ErrorKind};
use crate::state::Container;

/// An Engine API version, as `/version` spells it ("1.41").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    /// Always 1 so far.
    pub major: u16,
    /// The number that moves.
    pub minor: u16,
}

impl ApiVersion {
    /// `major.minor`.
    pub const fn new(major: u16, minor: u16) -> ApiVersion {
        ApiVersion { major, minor }
    }

    /// Parses "1.41"; None for anything else.
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let (major, minor) = s.trim().split_once('.')?;
        Some(ApiVersion::new(major.parse().ok()?, minor.parse().ok()?))
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The oldest API the sidecar speaks: Docker Engine 20.10 and Podman 4, its tested engines.
pub const OLDEST: ApiVersion = ApiVersion::new(1, 41);
/// The newest API whose responses the sidecar reads (Docker Engine 29).
pub const NEWEST: ApiVersion = ApiVersion::new(1, 52);
/// The first API whose container list carries each container's health.
pub const LIST_HEALTH: ApiVersion = ApiVersion::new(1, 52);
/// The version of bollard's models: bollard never asks for more.
const BOLLARD_MODELS: ApiVersion = ApiVersion::new(1, 49);

/// Why no API version suits both sides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiateError {
    /// The engine's newest API is older than [`OLDEST`].
    #[error("the engine speaks API {engine} at most; the sidecar needs {OLDEST} or newer")]
    EngineTooOld {
        /// The engine's newest.
        engine: ApiVersion,
    },
    /// The engine refuses every version up to [`NEWEST`].
    #[error("the engine refuses API versions below {minimum}; the sidecar speaks up to {NEWEST}")]
    EngineTooNew {
        /// The engine's oldest.
        minimum: ApiVersion,
    },
}

/// The version to speak with an engine whose newest is `max` and oldest `min` (when it says).
pub fn choose(max: ApiVersion, min: Option<ApiVersion>) -> Result<ApiVersion, NegotiateError> {
    let api = max.min(NEWEST);
    if api < OLDEST {
        return Err(NegotiateError::EngineTooOld { engine: max });
    }
    match min {
        Some(minimum) if api < minimum => Err(NegotiateError::EngineTooNew { minimum }),
        _ => Ok(api),
    }
}

/// What the sidecar knows of the engine it talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    /// Product and version, for messages and the log ("Docker/20.10.24", "Libpod/4.3.1").
    pub product: String,
    /// The version spoken.
    pub api: ApiVersion,
    /// The engine's newest.
    pub max: ApiVersion,
    /// The engine's oldest, when it says (`/_ping` does not).
    pub min: Option<ApiVersion>,
}

impl Engine {
    /// Whether the container list carries health (API 1.52), so unchanged containers need
    /// no inspect.
    pub fn lists_health(&self) -> bool {
        self.api >= LIST_HEALTH
    }

    /// The version bollard speaks: the chosen one, capped at its models'.
    fn bollard_version(&self) -> ClientVersion {
        let v = self.api.min(BOLLARD_MODELS);
        ClientVersion {
            major_version: v.major.into(),
            minor_version: v.minor.into(),
        }
    }
}

/// Reads the engine's newest API version from `/_ping` and connects bollard at the chosen one.
pub async fn connect(
    endpoint: &DockerEndpoint,
    timeout: Duration,
) -> Result<(Docker, Engine), Error> {
    let socket = endpoint.describe();
    let (headers, _) = get(endpoint, "/_ping", timeout).await?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let api_version = header("api-version");
    let max = ApiVersion::parse(&api_version).ok_or_else(|| {
        Error::new(
            ErrorKind::Protocol,
            format!("docker at {socket}: /_ping: Api-Version `{api_version}` is not major.minor"),
        )
    })?;
    // `/_ping` does not say the engine's oldest; an engine whose oldest is above NEWEST
    // refuses the first request with its own message, which is then the error shown.
    let api = choose(max, None).map_err(|e| {
        Error::new(ErrorKind::Protocol, format!("docker at {socket}")).with_source(e)
    })?;
    // "Docker/20.10.24 (linux)", "Libpod/4.3.1 (linux)".
    let server = header("server");
    let engine = Engine {
        product: server
            .split_whitespace()
            .next()
            .unwrap_or("unknown")
            .to_string(),
        api,
        max,
        min: None,
    };
    let secs = timeout.as_secs().max(1);
    let docker = match endpoint {
        DockerEndpoint::None => return Err(not_configured()),
        DockerEndpoint::Unix(path) => {
            Docker::connect_with_unix(path, secs, &engine.bollard_version())
        }
        DockerEndpoint::Tcp(addr) => {
            Docker::connect_with_http(&format!("tcp://{addr}"), secs, &engine.bollard_version())
        }
    }
    .map_err(|e| Error::docker(format_args!("docker at {socket}"), e))?;
    tracing::debug!(engine = %engine.product, api = %engine.api, "docker engine");
    Ok((docker, engine))
}

fn not_configured() -> Error {
    Error::new(
        ErrorKind::Config,
        "docker is not configured (--docker none)",
    )
}

/// One container as the API 1.52 list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Listed {
    /// The full id.
    #[serde(rename = "Id")]
    pub id: String,
    /// "running", "exited", ...
    #[serde(rename = "State", default)]
    pub state: String,
    /// Health; "none" without a healthcheck (and absent before API 1.52).
    #[serde(rename = "Health", default)]
    pub health: Option<ListedHealth>,
}

/// The health part of a [`Listed`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListedHealth {
    /// "none", "starting", "healthy" or "unhealthy".
    #[serde(rename = "Status", default)]
    pub status: String,
    /// Consecutive failed checks.
    #[serde(rename = "FailingStreak", default)]
    pub failing_streak: i64,
}

/// Lists the containers matching `filters` (all states) with their health, at `engine.api`.
pub async fn list(
    endpoint: &DockerEndpoint,
    engine: &Engine,
    filters: &HashMap<String, Vec<String>>,
    timeout: Duration,
) -> Result<Vec<Listed>, Error> {
    let filters = serde_json::to_string(filters).map_err(|e| {
        Error::new(ErrorKind::Protocol, "docker: encoding the list filters").with_source(e)
    })?;
    let path = format!(
        "/v{}/containers/json?all=1&filters={}",
        engine.api,
        percent_encoding::utf8_percent_encode(&filters, percent_encoding::NON_ALPHANUMERIC)
    );
    let (_, body) = get(endpoint, &path, timeout).await?;
    serde_json::from_slice(&body).map_err(|e| {
        Error::new(
            ErrorKind::Protocol,
            format!(
                "docker at {}: reading the container list",
                endpoint.describe()
            ),
        )
        .with_source(e)
    })
}

/// Whether `known` (the container's last inspect) still describes the container `listed`
/// shows: same state, same health, same failing streak. The health log's last line is the
/// one thing that may have moved, and only within the same verdict.
pub fn still_current(known: &Container, listed: &Listed) -> bool {
    let health = listed
        .health
        .as_ref()
        .map(|h| h.status.as_str())
        .filter(|s| !s.is_empty() && *s != "none");
    let streak = listed
        .health
        .as_ref()
        .map_or(0, |h| h.failing_streak.max(0) as u64);
    known.id == listed.id
        && known.status == listed.state
        && known.health.as_deref() == health
        && known.failing_streak == streak
}

/// A GET outside bollard, under `timeout`: the headers and body of a 2xx answer, else an error
/// whose kind comes from the status (404 not found, ...) and whose message is the engine's own.
async fn get(
    endpoint: &DockerEndpoint,
    path: &str,
    timeout: Duration,
) -> Result<(HeaderMap, Bytes), Error> {
    let socket = endpoint.describe();
    let unreachable = |e: std::io::Error| {
        Error::new(
            ErrorKind::Unreachable,
            format!("docker at {socket}: connecting"),
        )
        .with_source(e)
    };
    let exchange = async {
        match endpoint {
            DockerEndpoint::None => Err(not_configured()),
            DockerEndpoint::Unix(p) => {
                let io = tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(unreachable)?;
                exchange(io, path).await
            }
            DockerEndpoint::Tcp(a) => {
                let io = tokio::net::TcpStream::connect(a.as_str())
                    .await
                    .map_err(unreachable)?;
                exchange(io, path).await
            }
        }
    };
    let (status, headers, body) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| Error::timeout(format_args!("docker at {socket}: GET {path}"), timeout))?
        .map_err(|e| match e.kind() {
            ErrorKind::Config | ErrorKind::Unreachable => e,
            kind => Error::new(kind, format!("docker at {socket}: GET {path}")).with_source(e),
        })?;
    if (200..300).contains(&status) {
        return Ok((headers, body));
    }
    // Docker and Podman both answer errors as {"message": "..."}; the kind is the status's.
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
    let kind = match status {
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        401 | 403 => ErrorKind::Auth,
        status => ErrorKind::Engine { status },
    };
    Err(Error::new(
        kind,
        format!("docker at {socket}: GET {path}: status {status}: {message}"),
    ))
}

/// One HTTP/1.1 request on a fresh connection: the status, the headers and the whole body.
async fn exchange<S>(io: S, path: &str) -> Result<(u16, HeaderMap, Bytes), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let broken = |what: &str, e: hyper::Error| {
        Error::new(ErrorKind::Unreachable, what.to_string()).with_source(e)
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| broken("http handshake", e))?;
    let driver = tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, "docker")
        .body(Empty::<Bytes>::new())
        .map_err(|e| Error::new(ErrorKind::Protocol, "building the request").with_source(e))?;
    let outcome = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| broken("sending the request", e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| broken("reading the body", e))?
            .to_bytes();
        Ok((status, headers, body))
    }
    .await;
    driver.abort();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> ApiVersion {
        ApiVersion::parse(s).expect("a version")
    }

    /// Each engine the sidecar meets gets the version it serves best.
    #[test]
    fn choose_speaks_each_engines_newest_within_the_sidecars_range() {
        // Docker Engine 20.10 (this machine) and Podman 4.
        assert_eq!(choose(v("1.41"), Some(v("1.12"))), Ok(v("1.41")));
        assert_eq!(choose(v("1.41"), Some(v("1.24"))), Ok(v("1.41")));
        // Engine 25 and 27.
        assert_eq!(choose(v("1.44"), Some(v("1.24"))), Ok(v("1.44")));
        assert_eq!(choose(v("1.47"), None), Ok(v("1.47")));
        // Engine 29: refuses below 1.44.
        assert_eq!(choose(v("1.52"), Some(v("1.44"))), Ok(v("1.52")));
        // A later engine: the newest the sidecar reads, as long as the engine still takes it.
        assert_eq!(choose(v("1.60"), Some(v("1.44"))), Ok(v("1.52")));
        assert_eq!(
            choose(v("1.60"), Some(v("1.53"))),
            Err(NegotiateError::EngineTooNew { minimum: v("1.53") })
        );
        assert_eq!(
            choose(v("1.40"), Some(v("1.12"))),
            Err(NegotiateError::EngineTooOld { engine: v("1.40") })
        );
    }

    /// bollard never asks for more than its models describe, and the list's health is used
    /// only where the engine serves it.
    #[test]
    fn bollard_is_capped_and_health_listing_starts_at_1_52() {
        let engine = |api: &str| Engine {
            product: "test".into(),
            api: v(api),
            max: v(api),
            min: None,
        };
        assert_eq!(engine("1.52").bollard_version().to_string(), "1.49");
        assert_eq!(engine("1.41").bollard_version().to_string(), "1.41");
        assert!(engine("1.52").lists_health());
        assert!(!engine("1.51").lists_health());
        assert!(!engine("1.41").lists_health());
    }

    /// Versions parse as major.minor and order numerically (1.9 < 1.41).
    #[test]
    fn versions_parse_and_order_numerically() {
        assert!(v("1.9") < v("1.41"));
        assert_eq!(v(" 1.52 ").to_string(), "1.52");
        assert_eq!(ApiVersion::parse("1"), None);
        assert_eq!(ApiVersion::parse("1.x"), None);
        assert_eq!(ApiVersion::parse("4.3.1"), None);
    }
}
