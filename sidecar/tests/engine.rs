//! The sidecar against engines of every API version it meets: a named fake of Docker Engine 29
//! (API 1.52, refuses clients below 1.44, as no engine on the test machines can), and the real
//! engine of the machine (Docker Engine 20.10, API 1.41, where it runs).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use sidecar::config::DockerEndpoint;
use sidecar::state::Container;
use sidecar::watch::docker::DockerWatch;
use sidecar::watch::engine::{self, ApiVersion};
use sidecar::writer::{Change, DockerChange};
use tokio::sync::{mpsc, watch};

/// FAKE: Docker Engine 29 as seen through its API, for what no engine here produces: API 1.52
/// (the container list's `Health`), and the refusal of clients below 1.44 with Docker's own
/// status and error body. It serves `/_ping`, `/version`, `/containers/json`,
/// `/containers/{id}/json` and `/events` (which stays open, quiet), and records every request.
struct FakeEngine29 {
    /// id -> (health status, failing streak) of each running container of project `demo`.
    containers: Mutex<Vec<(String, String, i64)>>,
    /// Every request: the path with its version prefix, and the query.
    requests: Mutex<Vec<(String, String)>>,
}

const MIN: ApiVersion = ApiVersion::new(1, 44);
const MAX: ApiVersion = ApiVersion::new(1, 52);

impl FakeEngine29 {
    fn start(dir: &tempfile::TempDir, ids: &[&str]) -> (Arc<FakeEngine29>, DockerEndpoint) {
        let fake = Arc::new(FakeEngine29 {
            containers: Mutex::new(
                ids.iter()
                    .map(|id| (id.to_string(), "healthy".to_string(), 0))
                    .collect(),
            ),
            requests: Mutex::new(Vec::new()),
        });
        let path = dir.path().join("engine29.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("bind the fake's socket");
        let app = axum::Router::new()
            .fallback(FakeEngine29::serve)
            .with_state(Arc::clone(&fake));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (
            fake,
            DockerEndpoint::Unix(path.to_string_lossy().into_owned()),
        )
    }

    fn set_health(&self, id: &str, status: &str, streak: i64) {
        let mut all = self.containers.lock().expect("lock");
        for c in all.iter_mut().filter(|c| c.0 == id) {
            c.1 = status.to_string();
            c.2 = streak;
        }
    }

    fn requests(&self) -> Vec<(String, String)> {
        self.requests.lock().expect("lock").clone()
    }

    fn inspects(&self) -> usize {
        self.requests()
            .iter()
            .filter(|(p, _)| {
                p.contains("/containers/")
                    && p.ends_with("/json")
                    && !p.ends_with("/containers/json")
            })
            .count()
    }

    async fn serve(State(fake): State<Arc<FakeEngine29>>, uri: Uri) -> Response {
        let path = uri.path().to_string();
        fake.requests
            .lock()
            .expect("lock")
            .push((path.clone(), uri.query().unwrap_or("").to_string()));
        // Docker's version middleware: /vX.Y/... is checked, an unversioned path is not.
        let rest = match path.strip_prefix("/v").and_then(|p| p.split_once('/')) {
            Some((version, rest)) => {
                let Some(v) = ApiVersion::parse(version) else {
                    return (StatusCode::NOT_FOUND, "page not found").into_response();
                };
                if v < MIN {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "client version {v} is too old. Minimum supported API version is {MIN}, please upgrade your client to a newer version"
                        ),
                    );
                }
                if v > MAX {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "client version {v} is too new. Maximum supported API version is {MAX}"
                        ),
                    );
                }
                format!("/{rest}")
            }
            None => path.clone(),
        };
        match rest.as_str() {
            "/_ping" => (
                [("Api-Version", "1.52"), ("Server", "Docker/29.0.0 (linux)")],
                "OK",
            )
                .into_response(),
            "/version" => axum::Json(json!({
                "Platform": {"Name": "Docker Engine - Community"},
                "Components": [{"Name": "Engine", "Version": "29.0.0",
                                "Details": {"ApiVersion": "1.52", "MinAPIVersion": "1.44"}}],
                "Version": "29.0.0", "ApiVersion": "1.52", "MinAPIVersion": "1.44",
                "Os": "linux", "Arch": "amd64"
            }))
            .into_response(),
            "/containers/json" => {
                let all = fake.containers.lock().expect("lock").clone();
                axum::Json(
                    all.iter()
                        .map(|(id, health, streak)| {
                            json!({
                                "Id": id, "Names": [format!("/demo-{}-1", &id[..4])],
                                "State": "running", "Status": "Up 2 minutes",
                                "Labels": labels(id),
                                "Health": {"Status": health, "FailingStreak": streak}
                            })
                        })
                        .collect::<Vec<_>>(),
                )
                .into_response()
            }
            "/events" => {
                Body::from_stream(futures_util::stream::pending::<Result<Bytes, Infallible>>())
                    .into_response()
            }
            other => {
                let id = other
                    .strip_prefix("/containers/")
                    .and_then(|p| p.strip_suffix("/json"))
                    .unwrap_or("");
                let all = fake.containers.lock().expect("lock").clone();
                match all.iter().find(|c| c.0 == id) {
                    Some((id, health, streak)) => axum::Json(json!({
                        "Id": id, "Name": format!("/demo-{}-1", &id[..4]), "RestartCount": 0,
                        "Config": {"Hostname": &id[..12], "Labels": labels(id)},
                        "State": {"Status": "running", "Running": true, "ExitCode": 0,
                                  "StartedAt": "2026-12-07T06:00:00.000000000Z",
                                  "Health": {"Status": health, "FailingStreak": streak,
                                             "Log": [{"ExitCode": 0, "Output": format!("{health} check\n")}]}}
                    }))
                    .into_response(),
                    None if id.is_empty() => error(StatusCode::NOT_FOUND, "page not found"),
                    None => error(StatusCode::NOT_FOUND, &format!("No such container: {id}")),
                }
            }
        }
    }
}

fn labels(id: &str) -> Value {
    json!({"com.docker.compose.project": "demo", "com.docker.compose.service": &id[..4]})
}

/// Docker's error shape: a status and `{"message": ...}`.
fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "message": message }))).into_response()
}

const A: &str = "aaaa111111111111111111111111111111111111111111111111111111111111";
const B: &str = "bbbb222222222222222222222222222222222222222222222222222222222222";

/// The next full listing the watcher sends.
async fn next_listing(rx: &mut mpsc::Receiver<Change>) -> Vec<Container> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(Change::Docker(DockerChange::All(all)))) => return all,
            Ok(Some(Change::Docker(DockerChange::Failed(why)))) => {
                panic!("docker watch failed: {why}")
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("the watcher stopped"),
            Err(_) => panic!("no listing within 10 s"),
        }
    }
}

/// The fake refuses a client pinned to API 1.41 with Docker's status and message (so what
/// follows is tested against an engine that really would refuse the old client), and the
/// sidecar agrees on 1.52 with it and never sends a request below 1.44.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_29_refuses_api_1_41_and_the_sidecar_speaks_1_52() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (fake, endpoint) = FakeEngine29::start(&dir, &[A, B]);
    let DockerEndpoint::Unix(path) = &endpoint else {
        unreachable!()
    };

    let (status, body) = raw_get(path, "/v1.41/containers/json").await;
    assert_eq!(status, 400, "{body}");
    let message: Value = serde_json::from_str(&body).expect("docker's error body is json");
    assert_eq!(
        message["message"],
        "client version 1.41 is too old. Minimum supported API version is 1.44, please upgrade your client to a newer version"
    );

    let (docker, engine) = engine::connect(&endpoint, Duration::from_secs(5))
        .await
        .expect("the sidecar connects to Engine 29");
    assert_eq!(engine.api, ApiVersion::new(1, 52));
    assert_eq!(engine.max, ApiVersion::new(1, 52));
    assert_eq!(engine.product, "Docker/29.0.0");
    assert!(engine.lists_health());
    // bollard itself (inspect, events, restart) speaks 1.49, which Engine 29 takes.
    let inspected = docker
        .inspect_container(
            A,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .expect("inspect through bollard");
    assert_eq!(inspected.id.as_deref(), Some(A));
    let versions: Vec<ApiVersion> = fake
        .requests()
        .iter()
        .filter_map(|(p, _)| ApiVersion::parse(p.strip_prefix("/v")?.split('/').next()?))
        .collect();
    assert_eq!(
        versions[0],
        ApiVersion::new(1, 41),
        "the refused request was seen"
    );
    // bollard 0.19.4 sends its requests without the version prefix (its URL join drops it),
    // which an engine answers at its own newest version: the sidecar's versioned requests
    // are its own, and none is below 1.44.
    let from_sidecar = &versions[1..];
    assert!(from_sidecar.iter().all(|v| *v >= MIN), "{versions:?}");
    let list = engine::list(&endpoint, &engine, &HashMap::new(), Duration::from_secs(5))
        .await
        .expect("the 1.52 listing");
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[0].health.as_ref().map(|h| h.status.as_str()),
        Some("healthy")
    );
    assert!(
        fake.requests()
            .iter()
            .any(|(p, _)| p == "/v1.52/containers/json")
    );
}

/// One HTTP/1.0 GET on a unix socket (the connection closes after the answer): status and body.
async fn raw_get(socket: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.expect("read");
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// On API 1.52 a resync reads health from the container list: the first listing inspects each
/// container once, later ones inspect none while nothing changed, and exactly the container
/// whose health moved (its new state is what the sidecar then shows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_29_resync_inspects_only_containers_whose_health_moved() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (fake, endpoint) = FakeEngine29::start(&dir, &[A, B]);
    let (tx, mut rx) = mpsc::channel(64);
    let (_stop_tx, stop_rx) = watch::channel(false);
    let w = DockerWatch {
        endpoint,
        projects: vec!["demo".into()],
        timeout: Duration::from_secs(5),
        resync: Duration::from_millis(50),
        max_backoff: Duration::from_secs(1),
    };
    tokio::spawn(w.run(tx, None, stop_rx));

    let first = next_listing(&mut rx).await;
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|c| c.health.as_deref() == Some("healthy")));
    assert_eq!(fake.inspects(), 2, "one inspect per container at first");
    for _ in 0..3 {
        assert_eq!(next_listing(&mut rx).await.len(), 2);
    }
    assert_eq!(fake.inspects(), 2, "no inspect while nothing changed");

    fake.set_health(B, "unhealthy", 3);
    let changed = loop {
        let all = next_listing(&mut rx).await;
        if all
            .iter()
            .any(|c| c.id == B && c.health.as_deref() == Some("unhealthy"))
        {
            break all;
        }
    };
    let b = changed.iter().find(|c| c.id == B).expect("b listed");
    assert_eq!(b.failing_streak, 3);
    assert_eq!(b.last_health_line.as_deref(), Some("unhealthy check"));
    assert_eq!(
        fake.inspects(),
        3,
        "only the container whose health moved is inspected"
    );
    // The listing asked for this project only, through Docker's filter syntax.
    let (_, query) = fake
        .requests()
        .into_iter()
        .find(|(p, _)| p == "/v1.52/containers/json")
        .expect("a 1.52 listing");
    let filters: String = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("filters="))
        .map(|f| {
            percent_encoding::percent_decode_str(f)
                .decode_utf8_lossy()
                .into_owned()
        })
        .expect("filters");
    let filters: HashMap<String, Vec<String>> = serde_json::from_str(&filters).expect("json");
    assert_eq!(filters["label"], ["com.docker.compose.project=demo"]);
}

/// The real engine of this machine (Docker Engine 20.10 speaks API 1.41): the sidecar speaks
/// the engine's newest within its range and lists through bollard, inspecting each container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_engine_is_spoken_to_at_its_own_version() {
    let socket = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_owned))
        .unwrap_or_else(|| "/var/run/docker.sock".into());
    if !std::path::Path::new(&socket).exists() {
        eprintln!("SKIPPED: no Docker engine at {socket} (tests/run.sh --no-docker machines)");
        return;
    }
    let endpoint = DockerEndpoint::Unix(socket);
    let (docker, engine) = engine::connect(&endpoint, Duration::from_secs(10))
        .await
        .expect("the sidecar connects to the real engine");
    assert!(
        engine.api >= engine::OLDEST && engine.api <= engine::NEWEST,
        "{engine:?}"
    );
    assert_eq!(engine.api, engine.max.min(engine::NEWEST));
    docker
        .list_containers(None::<bollard::query_parameters::ListContainersOptions>)
        .await
        .expect("the engine takes the negotiated version");
    eprintln!(
        "real engine: {} (API {}, oldest {:?})",
        engine.product, engine.api, engine.min
    );
}
