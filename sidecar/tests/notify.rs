//! Notifications end to end: the real governor (`heal::act::run`) decides on a scripted sequence
//! of snapshots, and real HTTP receivers (std `TcpListener` servers started here) get the
//! documents. Docker is a socket path where no engine listens (named as such): every restart is
//! attempted and fails with the client's own error, which is what `restart-failed` must carry.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ready_signal::Observed;
use serde_json::Value;
use sidecar::heal::policy::{Mode, Rules};
use sidecar::notify::{Notifier, Target};
use sidecar::state::{Container, Replica, Source, State};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// A real HTTP/1.1 server on a free port that records every JSON body it is sent. A `hang`ing one
/// reads the request and never answers (the connection is held open).
struct Receiver {
    port: u16,
    docs: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start(hang: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let docs = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&docs);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        let mut len = 0usize;
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            if let Some(v) =
                                line.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                len = v.trim().parse().unwrap();
                            }
                        }
                        let mut body = vec![0; len];
                        reader.read_exact(&mut body).unwrap();
                        seen.lock()
                            .unwrap()
                            .push(serde_json::from_slice(&body).unwrap());
                        if hang {
                            std::thread::sleep(Duration::from_secs(3600));
                        }
                        stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                            .unwrap();
                    }
                });
            }
        });
        Receiver { port, docs }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook?token=s3cret", self.port)
    }

    fn events(&self) -> Vec<String> {
        self.docs
            .lock()
            .unwrap()
            .iter()
            .map(|d| d["event"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Waits (up to 20 s) until the receiver holds `n` documents.
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..400 {
            if self.docs.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.docs.lock().unwrap().clone()
    }
}

fn container(id: &str, health: &str, since: Instant) -> Container {
    Container {
        id: format!("{id:0<64}"),
        name: format!("demo-{id}-1"),
        project: Some("demo".into()),
        service: Some(id.into()),
        hostname: id.into(),
        labels: [("healthcheck.heal".to_string(), "true".to_string())].into(),
        status: "running".into(),
        running: true,
        health: Some(health.into()),
        health_since: Some(since),
        failing_streak: if health == "unhealthy" { 4 } else { 0 },
        last_health_line: Some(format!("{id}: connection refused")),
        restart_count: 0,
        exit_code: None,
        started_at: Some("2026-01-01T00:00:00Z".into()),
        health_checked_at: None,
        instances: Vec::new(),
        earlier_instances: Vec::new(),
        stop_timeout: Some(1),
        network_mode: None,
        start_period: None,
        heal: None,
    }
}

/// A snapshot of `containers`, each with one agent replica publishing in it: ready when the
/// container is healthy, else stale (its last reason kept).
fn snapshot(containers: Vec<Container>) -> Arc<State> {
    let mut s = State::new(Instant::now(), Source::Ok, Source::Ok);
    s.built_wall = SystemTime::now();
    for c in &containers {
        let ready = c.health.as_deref() == Some("healthy");
        s.replicas.push(Arc::new(Replica {
            namespace: "demo".into(),
            agent: c.hostname.clone(),
            replica: c.hostname.clone(),
            observed: if ready {
                Observed::Ready
            } else {
                Observed::Stale
            },
            since: c.health_since.unwrap_or(s.built_at),
            beat_age: Some(Duration::ZERO),
            instance: Some("1764000000000-0a1b2c3d".into()),
            epoch: Some(1),
            reason: (!ready).then(|| format!("{}: waiting for redis", c.hostname)),
            container_id: Some(c.id.clone()),
            link: sidecar::state::Link::Id,
            record_container: None,
            instance_started: None,
            published: None,
            beat_at: Some(s.built_at),
            interval: Some(Duration::from_secs(1)),
            ttl: Some(Duration::from_secs(3)),
            host: None,
            indexed: false,
        }));
    }
    s.containers = containers;
    Arc::new(s)
}

/// Stands in for the writer: publishes a fresh snapshot of the scene every 100 ms (the governor
/// evaluates on new snapshots, as in the sidecar, where store reads bring one every interval).
fn writer(scene: Vec<Container>) -> (Arc<Mutex<Vec<Container>>>, watch::Receiver<Arc<State>>) {
    let scene = Arc::new(Mutex::new(scene));
    let (tx, rx) = watch::channel(snapshot(scene.lock().unwrap().clone()));
    let shared = Arc::clone(&scene);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let containers = shared.lock().unwrap().clone();
            if tx.send(snapshot(containers)).is_err() {
                return;
            }
        }
    });
    (scene, rx)
}

/// The governor's configuration for fast time, with the notifier hooked in.
fn config(notifier: Notifier) -> sidecar::heal::Config {
    let mut cfg = sidecar::heal::Config::new(Mode::On);
    cfg.self_id = None;
    // This test runs the governor in-process: it is no container of the stack it watches (the
    // build machine itself may be a container whose id cannot be found).
    cfg.refused = None;
    cfg.tick = Duration::from_millis(50);
    cfg.defaults = Rules {
        heal_after: Duration::from_millis(100),
        backoff: Duration::from_millis(200),
        backoff_max: Duration::from_millis(200),
        budget: 2,
        window: Duration::from_secs(600),
        release_after: Duration::from_millis(400),
        earn_back_after: Duration::from_secs(600),
        ..Rules::default()
    };
    cfg.hooks.notify = Some(notifier);
    cfg
}

/// A socket path where no engine listens: every Docker call fails at once with the client's
/// own error (the fault a real engine will not produce on demand).
fn no_engine(dir: &tempfile::TempDir) -> bollard::Docker {
    let sock = dir.path().join("docker.sock");
    std::fs::write(&sock, b"").unwrap();
    bollard::Docker::connect_with_unix(&sock.to_string_lossy(), 1, bollard::API_DEFAULT_VERSION)
        .unwrap()
}

/// A scripted night: a labelled container turns unhealthy, is restarted twice (both restarts
/// fail, with Docker's error), is quarantined when its budget is spent, comes back and is
/// released; then most of the stack fails at once (a shared outage begins, nothing restarts) and
/// recovers (it ends). The receiver gets exactly those documents, in order, each with the
/// container, service, project, rule, record and Docker's last health output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_gets_exactly_the_documents_of_a_scripted_sequence() {
    let rx = Receiver::start(false);
    let t0 = Instant::now();
    let (scene, snap_rx) = writer(vec![container(
        "agent-a",
        "unhealthy",
        t0 - Duration::from_secs(5),
    )]);
    let (notifier, deliveries) = Notifier::new(
        vec![Target::parse(&rx.url(), "test").unwrap()],
        snap_rx.clone(),
    );
    for d in deliveries {
        tokio::spawn(d.run(std::future::pending()));
    }
    let (changes, mut incoming) = mpsc::channel(64);
    tokio::spawn(async move { while incoming.recv().await.is_some() {} });
    let dir = tempfile::tempdir().unwrap();
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let governor = tokio::spawn(sidecar::heal::act::run(
        config(notifier),
        no_engine(&dir),
        snap_rx,
        changes,
        None,
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        },
    ));

    // restart, restart-failed, restart, restart-failed, quarantine.
    let docs = rx.wait_for(5).await;
    assert_eq!(
        rx.events()[..5],
        [
            "restart",
            "restart-failed",
            "restart",
            "restart-failed",
            "quarantine"
        ],
        "{docs:#?}"
    );
    for d in &docs[..5] {
        assert_eq!(d["v"], 1);
        assert_eq!(d["project"], "demo");
        assert_eq!(d["service"], "agent-a");
        assert_eq!(d["container"], "demo-agent-a-1");
        assert_eq!(d["health"]["status"], "unhealthy");
        assert_eq!(d["health"]["output"], "agent-a: connection refused");
        assert_eq!(d["health"]["failing_streak"], 4);
        assert!(d["at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(docs[0]["rule"], "stale");
    assert_eq!(docs[0]["restarts_in_window"], 1);
    // The outcome names the restart's rule, and Docker's error.
    assert_eq!(docs[1]["rule"], "stale");
    assert!(
        docs[1]["detail"]
            .as_str()
            .unwrap()
            .contains("client error (Connect)"),
        "docker's own error: {}",
        docs[1]
    );
    assert_eq!(docs[0]["record"]["replica"], "demo/agent-a/agent-a");
    assert_eq!(docs[0]["record"]["state"], "stale");
    assert_eq!(docs[0]["record"]["reason"], "agent-a: waiting for redis");
    assert_eq!(docs[4]["rule"], "budget-spent");

    // It comes back: released after release_after healthy.
    *scene.lock().unwrap() = vec![container("agent-a", "healthy", Instant::now())];
    let docs = rx.wait_for(6).await;
    assert_eq!(rx.events()[5], "release", "{docs:#?}");
    assert_eq!(docs[5]["health"]["status"], "healthy");

    // Three of four labelled containers fail at once: a shared outage, no restart; then over.
    let bad = Instant::now() - Duration::from_secs(5);
    *scene.lock().unwrap() = vec![
        container("agent-a", "healthy", bad),
        container("agent-b", "unhealthy", bad),
        container("agent-c", "unhealthy", bad),
        container("agent-d", "unhealthy", bad),
    ];
    let docs = rx.wait_for(7).await;
    assert_eq!(rx.events()[6], "outage-begin", "{docs:#?}");
    assert_eq!(docs[6]["rule"], "shared-outage");
    assert!(
        docs[6]["detail"]
            .as_str()
            .unwrap()
            .contains("every restart held")
    );
    let now = Instant::now();
    *scene.lock().unwrap() = vec![
        container("agent-a", "healthy", bad),
        container("agent-b", "healthy", now),
        container("agent-c", "healthy", now),
        container("agent-d", "healthy", now),
    ];
    rx.wait_for(8).await;
    // Nothing else arrives (no restart was made during the outage).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rx.events(),
        [
            "restart",
            "restart-failed",
            "restart",
            "restart-failed",
            "quarantine",
            "release",
            "outage-begin",
            "outage-end"
        ]
    );
    let _ = stop_tx.send(true);
    governor.await.unwrap();
}

/// A receiver that takes the request and never answers does not hold the governor back: while
/// it still holds the first document unanswered, the restart has been carried out (Docker was
/// called: its failure reached the other receiver), and the governor went on to its next
/// decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_delay_a_restart() {
    let hanging = Receiver::start(true);
    let live = Receiver::start(false);
    let (_scene, snap_rx) = writer(vec![container(
        "agent-a",
        "unhealthy",
        Instant::now() - Duration::from_secs(5),
    )]);
    let (notifier, deliveries) = Notifier::new(
        vec![
            Target::parse(&hanging.url(), "hanging").unwrap(),
            Target::parse(&live.url(), "live").unwrap(),
        ],
        snap_rx.clone(),
    );
    for d in deliveries {
        tokio::spawn(d.run(std::future::pending()));
    }
    let (changes, mut incoming) = mpsc::channel(64);
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&lines);
    tokio::spawn(async move {
        while let Some(c) = incoming.recv().await {
            if let sidecar::writer::Change::Heal(u) = c {
                for h in u.containers.values() {
                    seen.lock()
                        .unwrap()
                        .push(h.last_decision.clone().unwrap_or_default());
                }
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tokio::spawn(sidecar::heal::act::run(
        config(notifier),
        no_engine(&dir),
        snap_rx,
        mpsc::Sender::clone(&changes),
        None,
        std::future::pending(),
    ));
    drop(changes);
    let docs = live.wait_for(5).await;
    assert_eq!(
        live.events()[..5],
        [
            "restart",
            "restart-failed",
            "restart",
            "restart-failed",
            "quarantine"
        ],
        "{docs:#?}"
    );
    // The hanging receiver got the first document and is still sitting on it.
    assert_eq!(hanging.events(), ["restart"]);
    let lines = lines.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| l.starts_with("quarantined")),
        "the governor went on to quarantine: {lines:?}"
    );
}
