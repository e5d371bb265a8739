//! The watcher watched, against a real redis-server and the real probe: the sidecar's own ready
//! signal stays fresh while its parts progress, and turns stale in the store, and fails the
//! HEALTHCHECK Docker would run (`ready://healthcheck-sidecar?replica=self&store=file&state=any`),
//! once its governor stops taking snapshots (the test hook: a governor mark that stops moving
//! while the writer keeps publishing).

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use harness::RedisServer;
use ready_signal::{Name, Observed, Observer, ReadySignal, StoreConfig};
use sidecar::selfwatch::{self, Limits, Mark, SELF_AGENT};
use sidecar::state::{Source, State};
use tokio::sync::watch;
use tokio::time::Instant;

const REPLICA: &str = "sidecar-under-test";

/// Runs the probe as Docker would run the sidecar's HEALTHCHECK: exit code and output.
fn healthcheck(dir: &std::path::Path) -> (i32, String) {
    let out = Command::new(harness::bin("healthcheck"))
        .arg(format!(
            "ready://{SELF_AGENT}?replica={REPLICA}&store=file&state=any"
        ))
        .env_clear()
        .env("READY_SIGNAL_DIR", dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn observed(store: &StoreConfig) -> Observed {
    let obs = Observer::connect(store).await.unwrap();
    obs.replica(
        &Name::new(SELF_AGENT).unwrap(),
        &Name::new(REPLICA).unwrap(),
    )
    .await
    .unwrap()
    .state
}

/// Progressing: ready and fresh, the HEALTHCHECK passes. The governor stalls while snapshots
/// keep coming: the record turns stale in Redis, the HEALTHCHECK fails, `/metrics`' stalled
/// gauge reads 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_governor_turns_the_sidecar_stale() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let store = StoreConfig::new()
        .redis(&redis.url())
        .unwrap()
        .dir(dir.path());

    // The writer: a snapshot every 100 ms, the store's reads counted.
    let (tx, rx) = watch::channel(Arc::new(State::new(
        Instant::now(),
        Source::Ok,
        Source::Off,
    )));
    tokio::spawn(async move {
        for reads in 1.. {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut s = State::new(Instant::now(), Source::Ok, Source::Off);
            s.counters.store_reads = reads;
            if tx.send(Arc::new(s)).is_err() {
                return;
            }
        }
    });
    // The governor: takes every snapshot until told to stall.
    let mark = Mark::new();
    let stalled = Arc::new(AtomicBool::new(false));
    {
        let (mark, stalled, mut rx) = (mark.clone(), Arc::clone(&stalled), rx.clone());
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                if !stalled.load(Ordering::Relaxed) {
                    mark.saw(rx.borrow_and_update().built_at);
                }
            }
        });
    }
    let interval = Duration::from_millis(200);
    let handle = ReadySignal::builder(SELF_AGENT)
        .store(store.clone())
        .replica(REPLICA)
        .interval(interval)
        .stall_after(interval * 2)
        .start()
        .unwrap();
    let limits = Limits {
        writer: Some(Duration::from_secs(1)),
        store: Some(Duration::from_secs(1)),
        docker: None,
        governor: Some(Duration::from_secs(1)),
    };
    let status = Arc::new(selfwatch::Status::default());
    tokio::spawn(selfwatch::run(
        handle,
        rx,
        Some(mark),
        limits,
        interval,
        Arc::clone(&status),
        std::future::pending(),
    ));

    // Well past the limits, still progressing: ready, fresh, healthy.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(observed(&store).await, Observed::Ready);
    let (code, out) = healthcheck(dir.path());
    assert_eq!(code, 0, "{out}");
    assert_eq!(status.stalled.load(Ordering::Relaxed), 0);

    stalled.store(true, Ordering::Relaxed);
    let mut state = Observed::Ready;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        state = observed(&store).await;
        if state != Observed::Ready {
            break;
        }
    }
    assert!(
        matches!(state, Observed::Stale | Observed::Dead),
        "the stalled sidecar's record is {state:?}"
    );
    assert_eq!(status.stalled.load(Ordering::Relaxed), 1);
    let (code, out) = healthcheck(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("stale") || out.contains("dead"),
        "the HEALTHCHECK says why: {out}"
    );
}

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out.split_once("\r\n\r\n")?.1.to_string())
}

/// The built binary with `--self-signal`: its own record is ready in the store it watches, it
/// shows itself as an agent, `/metrics` says it is not stalled, and `/api/history` answers;
/// `--notify` without `--heal` is refused, naming the flag.
#[test]
fn the_binary_publishes_its_own_signal() {
    let redis = RedisServer::start();
    let port = harness::free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sidecar.log");
    let mut child = Command::new(harness::bin("healthcheck-sidecar"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--docker", "none"])
        .args(["--read-interval", "200ms", "--self-signal"])
        .env_clear()
        .env("READY_SIGNAL_REDIS_URL", redis.url())
        .env("READY_SIGNAL_NAMESPACE", "it")
        .env("READY_SIGNAL_REPLICA", REPLICA)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut seen = None;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        let Some(body) = http_get(port, "/api/status") else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["agent"] == SELF_AGENT && a["state"] == "ready")
        {
            seen = Some(v);
            break;
        }
    }
    let metrics = http_get(port, "/metrics").unwrap_or_default();
    let history = http_get(port, "/api/history").unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.is_some(),
        "the sidecar's own agent never read ready; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        metrics.contains("healthcheck_sidecar_stalled 0"),
        "{metrics}"
    );
    let h: serde_json::Value = serde_json::from_str(&history).unwrap();
    assert!(
        h["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["key"] == format!("it/{SELF_AGENT}/{REPLICA}")),
        "{h}"
    );

    let out = Command::new(harness::bin("healthcheck-sidecar"))
        .args([
            "--docker",
            "none",
            "--notify",
            "http://127.0.0.1:9/hook?token=s3cret",
        ])
        .env_clear()
        .env("READY_SIGNAL_REDIS_URL", redis.url())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--notify posts heal decisions: it needs --heal"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
}
