//! `healthcheck wait` against real servers: late starters, timeouts with reasons, exec of the
//! command with its exit status, and SIGTERM while waiting.

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use harness::{RedisServer, free_port};

fn wait_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_healthcheck"));
    cmd.arg("wait");
    for var in [
        "HEALTHCHECK_TARGETS",
        "HEALTHCHECK_CONFIG",
        "HEALTHCHECK_TIMEOUT",
        "READY_SIGNAL_NATS_URL",
        "READY_SIGNAL_REDIS_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn output(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), text)
}

/// A Redis that starts a second after the wait began ends the wait, and the command's exit
/// status comes back unchanged (the command replaced the waiter).
#[test]
fn waits_for_a_late_server_then_execs_with_its_status() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    redis.stop();
    let child = wait_cmd()
        .args(["--timeout", "30s", &url, "--", "sh", "-c", "exit 7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(800));
    redis.restart();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(err.contains("healthcheck wait: ready after"), "{err}");
}

/// exec, not spawn: the command runs with the waiter's PID.
#[test]
fn command_gets_the_waiters_pid() {
    let redis = RedisServer::start();
    let child = wait_cmd()
        .args([&redis.url(), "--", "sh", "-c", "echo $$"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pid.to_string());
}

/// Without a command, a healthy wait exits 0.
#[test]
fn without_command_exits_zero() {
    let redis = RedisServer::start();
    let (code, out) = output(wait_cmd().arg(redis.url()));
    assert_eq!(code, 0, "{out}");
}

/// Timing out exits 1 (never 2) and names each target still not ready with its reason.
#[test]
fn timeout_names_targets_and_reasons() {
    let redis = RedisServer::start();
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let (code, out) =
        output(wait_cmd().args(["--timeout", "700ms", &redis.url(), &dead, "--", "true"]));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("timed out after 700ms; still not healthy"),
        "{out}"
    );
    assert!(
        out.contains(&format!("{dead} connect")) && out.contains("connection refused"),
        "{out}"
    );
    let still = &out[out.find("still not healthy").unwrap()..];
    assert!(
        !still.contains(&format!("{} ", redis.url())),
        "healthy target listed as waiting: {out}"
    );
}

/// A name that does not resolve yet is retried, not fatal: the wait runs to its timeout.
#[test]
fn unresolvable_names_are_retried_until_timeout() {
    let started = Instant::now();
    let (code, out) =
        output(wait_cmd().args(["--timeout", "1s", "tcp://not-yet-started.invalid:80"]));
    assert_eq!(code, 1, "{out}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "gave up early: {out}"
    );
    assert!(
        out.contains("resolving not-yet-started.invalid"),
        "{out}"
    );
}

/// SIGTERM while waiting ends the wait promptly with a clear message and exit 1.
#[test]
fn sigterm_while_waiting() {
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let mut child = wait_cmd()
        .args(["--timeout", "60s", &dead, "--", "true"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("interrupted by SIGTERM while waiting for"),
        "{err}"
    );
    assert!(sent.elapsed() < Duration::from_secs(5));
}

/// A ready event published by the `ready-signal` CLI ends a wait on `ready://` (NATS configured),
/// and the agent's record is what the wait checked.
#[test]
fn ready_event_ends_the_wait() {
    let redis = RedisServer::start();
    let nats = harness::NatsServer::start();
    let store = [
        ("READY_SIGNAL_REDIS_URL", redis.url()),
        ("READY_SIGNAL_NATS_URL", nats.url()),
        ("READY_SIGNAL_NAMESPACE", "waittest".to_string()),
    ];
    let mut waiter = wait_cmd();
    waiter.envs(store.clone()).args([
        "--timeout",
        "30s",
        "ready://late-agent",
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    let child = waiter.stderr(Stdio::piped()).spawn().unwrap();
    thread::sleep(Duration::from_millis(1500));
    let published = Command::new(harness::bin("ready-signal"))
        .envs(store)
        .env_remove("READY_SIGNAL_DIR")
        .args(["ready", "late-agent", "--ttl", "30s"])
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("ready://late-agent ok"), "{err}");
}
