//! The `ready-signal` command against real servers, as shell and Python agents use it, read back
//! by the real `healthcheck` binary.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use harness::RedisServer;

/// The store environment of one test: its own Redis and namespace.
fn env(redis: &RedisServer, ns: &str) -> Vec<(&'static str, String)> {
    vec![
        ("READY_SIGNAL_REDIS_URL", redis.url()),
        ("READY_SIGNAL_NAMESPACE", ns.to_string()),
        ("READY_SIGNAL_REPLICA", "r1".to_string()),
    ]
}

fn cli(env: &[(&str, String)], args: &[&str]) -> Output {
    Command::new(harness::bin("ready-signal"))
        .envs(env.iter().cloned())
        .env_remove("READY_SIGNAL_DIR")
        .env_remove("READY_SIGNAL_NATS_URL")
        .args(args)
        .output()
        .unwrap()
}

fn probe(env: &[(&str, String)], target: &str) -> (i32, String) {
    let out = Command::new(harness::bin("healthcheck"))
        .envs(env.iter().cloned())
        .args(["--timeout", "2s", target])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Probes until the exit code is `want` or `within` passes; returns the last result.
fn probe_until(env: &[(&str, String)], target: &str, want: i32, within: Duration) -> (i32, String) {
    let began = Instant::now();
    loop {
        let got = probe(env, target);
        if got.0 == want || began.elapsed() > within {
            return got;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// ready, not-ready, starting and stopping from the shell are what `healthcheck ready://` reports.
#[test]
fn one_shot_states_are_what_the_probe_reads() {
    let redis = RedisServer::start();
    let env = env(&redis, "oneshot");
    let ok = |o: &Output| assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    ok(&cli(&env, &["starting", "worker"]));
    let (code, out) = probe(&env, "ready://worker");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("worker: starting"), "{out}");

    ok(&cli(&env, &["ready", "worker", "--ttl", "30s"]));
    let (code, out) = probe(&env, "ready://worker");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("worker ready"), "{out}");

    ok(&cli(
        &env,
        &["not-ready", "worker", "--reason", "vector index rebuilding"],
    ));
    let (code, out) = probe(&env, "ready://worker?replica=r1");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not-ready (vector index rebuilding)"), "{out}");

    ok(&cli(&env, &["stopping", "worker"]));
    let (code, out) = probe(&env, "ready://worker?replica=r1");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("dead (no record)"), "{out}");
}

/// A one-shot record not written again turns stale or dead after its TTL.
#[test]
fn a_one_shot_record_expires_after_its_ttl() {
    let redis = RedisServer::start();
    let env = env(&redis, "ttl");
    assert!(
        cli(&env, &["ready", "brief", "--ttl", "300ms"])
            .status
            .success()
    );
    assert_eq!(probe(&env, "ready://brief").0, 0);
    let (code, out) = probe_until(&env, "ready://brief?replica=r1", 1, Duration::from_secs(5));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("stale") || out.contains("dead"), "{out}");
}

/// Usage errors exit 1 (never 2) with a message naming the problem; help and version exit 0.
#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let redis = RedisServer::start();
    let env = env(&redis, "usage");
    for args in [
        &["bogus"][..],
        &["ready"],
        &["ready", "a:b"],
        &["not-ready", "x"],
        &["ready", "x", "--ttl", "soon"],
    ] {
        let out = cli(&env, args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = cli(&env, &["ready", "a:b"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid name `a:b`"));
    assert_eq!(cli(&env, &["--help"]).status.code(), Some(0));
    assert_eq!(cli(&env, &["--version"]).status.code(), Some(0));
    let bad = [("READY_SIGNAL_REDIS_URL", "http://x".to_string())];
    let out = cli(&bad, &["ready", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("READY_SIGNAL_REDIS_URL"));
}

fn spawn_run(env: &[(&str, String)], args: &[&str]) -> Child {
    Command::new(harness::bin("ready-signal"))
        .envs(env.iter().cloned())
        .env_remove("READY_SIGNAL_DIR")
        .env_remove("READY_SIGNAL_NATS_URL")
        .arg("run")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `run` stays starting until its ready-when target passes, then ready; it exits with the command's status.
#[test]
fn run_marks_ready_when_targets_pass_and_passes_the_exit_status_through() {
    let redis = RedisServer::start();
    let env = env(&redis, "run");
    let gate = harness::free_port();
    // The child opens the port its ready-when target checks only after a while.
    let script = format!(
        "sleep 1; python3 -c 'import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\", {gate})); s.listen(); time.sleep(2)'; exit 7"
    );
    let target = format!("tcp://127.0.0.1:{gate}");
    let mut child = spawn_run(
        &env,
        &[
            "wrapped",
            "--ready-when",
            &target,
            "--interval",
            "200ms",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let began = Instant::now();
    let (code, out) = loop {
        let (code, out) = probe(&env, "ready://wrapped");
        if out.contains("starting") || began.elapsed() > Duration::from_secs(5) {
            break (code, out);
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, 1, "not ready before its port opens: {out}");
    assert!(out.contains("wrapped: starting"), "{out}");
    let (code, out) = probe_until(&env, "ready://wrapped", 0, Duration::from_secs(10));
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        child.wait().unwrap().code(),
        Some(7),
        "the command's status is passed through"
    );
    let out = cli(&env, &["run", "failing", "--", "sh", "-c", "exit 7"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, out) = probe(&env, "ready://failing");
    assert_eq!(
        code, 1,
        "the record is removed when the command ends: {out}"
    );
}

/// `run` stops heartbeating when the progress file goes stale while the child lives, and forwards SIGTERM.
#[test]
fn run_stops_the_heartbeat_when_the_child_stops_touching_its_progress_file() {
    let redis = RedisServer::start();
    let env = env(&redis, "progress");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("progress");
    let file_s = file.display().to_string();
    // The field's status file: touched every 100 ms for 1.5 s, then the "loop" hangs.
    let script = format!(
        "i=0; while [ $i -lt 15 ]; do touch {file_s}; sleep 0.1; i=$((i+1)); done; sleep 30"
    );
    let mut child = spawn_run(
        &env,
        &[
            "legacy",
            "--progress-file",
            &file_s,
            "--interval",
            "100ms",
            "--stall-after",
            "400ms",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let (code, out) = probe_until(&env, "ready://legacy", 0, Duration::from_secs(5));
    assert_eq!(code, 0, "ready while the file is fresh: {out}");
    let (code, out) = probe_until(&env, "ready://legacy", 1, Duration::from_secs(10));
    assert_eq!(code, 1, "unhealthy once the file goes stale: {out}");
    assert!(out.contains("stale") || out.contains("dead"), "{out}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the wrapped process is still alive"
    );
    // SIGTERM is forwarded: sh dies of it and the wrapper reports 128 + 15.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
}

/// The redis-py agent printed in PROTOCOL.md is read as ready by the probe, and dead after it stops.
#[test]
fn a_python_agent_written_from_protocol_md_is_read_as_ready() {
    let redis = RedisServer::start();
    let env = env(&redis, "python");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let agent = root.join("examples/python_agent.py");
    // The agent in the test is the one printed in PROTOCOL.md, and it uses the crate's script.
    let protocol = std::fs::read_to_string(root.join("PROTOCOL.md")).unwrap();
    let source = std::fs::read_to_string(&agent).unwrap();
    assert!(
        protocol.contains(&source),
        "PROTOCOL.md must print examples/python_agent.py verbatim"
    );
    let script = std::fs::read_to_string(root.join("src/write.lua")).unwrap();
    assert!(
        protocol.contains(&script) && source.contains(&script),
        "write.lua must appear verbatim"
    );

    let mut py = Command::new("python3")
        .arg(&agent)
        .arg("py-worker")
        .envs(env.iter().cloned())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, out) = probe_until(
        &env,
        "ready://py-worker?replica=r1",
        0,
        Duration::from_secs(10),
    );
    if code != 0 {
        let _ = py.kill();
        let out = py.wait_with_output().unwrap();
        panic!(
            "python agent not ready: {out:?}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(out.contains("py-worker ready"), "{out}");
    // Its heartbeat keeps it ready past its TTL (3 s).
    thread::sleep(Duration::from_millis(3500));
    let (code, out) = probe(&env, "ready://py-worker");
    assert_eq!(code, 0, "{out}");
    Command::new("kill")
        .args(["-TERM", &py.id().to_string()])
        .status()
        .unwrap();
    assert!(py.wait().unwrap().success());
    let (code, out) = probe(&env, "ready://py-worker");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("dead (no record)"), "{out}");
}

/// With NATS alone (events, no state), records go to the local files, where the probe finds them.
#[test]
fn nats_without_redis_keeps_records_in_files() {
    let nats = harness::NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let env = [
        ("READY_SIGNAL_NATS_URL", nats.url()),
        ("READY_SIGNAL_NAMESPACE", "natsonly".to_string()),
        ("READY_SIGNAL_REPLICA", "r1".to_string()),
        ("TMPDIR", tmp.path().display().to_string()),
    ];
    let out = Command::new(harness::bin("ready-signal"))
        .envs(env.iter().cloned())
        .env_remove("READY_SIGNAL_REDIS_URL")
        .env_remove("READY_SIGNAL_DIR")
        .args(["ready", "solo"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        tmp.path()
            .join("ready-signal/natsonly/solo/r1.json")
            .exists()
    );
    let (code, text) = probe(&env, "ready://solo?replica=r1");
    assert_eq!(code, 0, "{text}");
}
