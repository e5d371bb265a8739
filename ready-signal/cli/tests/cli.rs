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
/// The CLI writes and the probe reads the same records when the store is a Redis Cluster (a seed
/// list, layout 2) or the master Sentinels name: the URL forms reach every reader and writer.
#[test]
fn one_shot_states_on_a_cluster_and_under_sentinel() {
    let cluster = harness::cluster::RedisCluster::start();
    let sentinel = harness::cluster::RedisSentinel::start();
    for url in [
        format!("{}?cluster=true", cluster.seed_url()),
        sentinel.url(),
    ] {
        let env = vec![
            ("READY_SIGNAL_REDIS_URL", url.clone()),
            ("READY_SIGNAL_NAMESPACE", "ha".to_string()),
            ("READY_SIGNAL_REPLICA", "r1".to_string()),
        ];
        let ok = |o: &Output| {
            assert!(
                o.status.success(),
                "{url}: {}",
                String::from_utf8_lossy(&o.stderr)
            )
        };
        ok(&cli(&env, &["ready", "worker", "--ttl", "30s"]));
        let (code, out) = probe(&env, "ready://worker");
        assert_eq!(code, 0, "{url}: {out}");
        ok(&cli(
            &env,
            &["not-ready", "worker", "--reason", "reindexing"],
        ));
        let (code, out) = probe(&env, "ready://worker?replica=r1");
        assert_eq!(code, 1, "{url}: {out}");
        assert!(out.contains("not-ready (reindexing)"), "{url}: {out}");
    }
}

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

/// `run --progress-file` dates progress by the file's modification time: the probe reads the
/// wrapped command stale within stall-after + the stale threshold (2 intervals) + one interval
/// of its last touch (plus slack for this loaded machine), not after a second stall-after.
#[test]
fn run_is_read_stale_within_stall_after_plus_the_stale_threshold_of_the_last_touch() {
    let redis = RedisServer::start();
    let env = env(&redis, "stalltime");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("progress");
    let file_s = file.display().to_string();
    let script = format!(
        "i=0; while [ $i -lt 20 ]; do touch {file_s}; sleep 0.1; i=$((i+1)); done; exec sleep 30"
    );
    let (interval, stall_after) = (Duration::from_millis(100), Duration::from_secs(2));
    let mut child = spawn_run(
        &env,
        &[
            "late",
            "--progress-file",
            &file_s,
            "--interval",
            "100ms",
            "--stall-after",
            "2s",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let (code, out) = probe_until(&env, "ready://late", 0, Duration::from_secs(5));
    assert_eq!(code, 0, "ready while the file is fresh: {out}");
    let stale_at = loop {
        let before = std::time::SystemTime::now();
        let (code, out) = probe(&env, "ready://late");
        if code == 1 {
            assert!(out.contains("stale") || out.contains("dead"), "{out}");
            break before;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let touched = std::fs::metadata(&file).unwrap().modified().unwrap();
    let took = stale_at.duration_since(touched).unwrap_or_default();
    // Promised: stall_after + 2 intervals + 1 interval. Counting the stall from when the wrapper
    // noticed the touch instead would take at least another stall_after (4.2 s here).
    let bound = stall_after + interval * 3 + Duration::from_millis(1000);
    assert!(
        took <= bound,
        "read stale {took:?} after the last touch (bound {bound:?})"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// `HGET` of one field of a record, through `redis-cli` (the password, if any, from a file
/// via `REDISCLI_AUTH`, never argv).
fn hget(redis: &RedisServer, password: Option<&str>, key: &str, field: &str) -> String {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-p", &redis.port().to_string(), "--raw", "HGET", key, field]);
    if let Some(p) = password {
        cmd.env("REDISCLI_AUTH", p);
    }
    let out = cmd
        .output()
        .expect("redis-cli (Debian package redis-tools)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Polls `f` every 20 ms until it returns true or `within` passes.
fn wait_for(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let began = Instant::now();
    loop {
        if f() {
            return true;
        }
        if began.elapsed() > within {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The redis-py agent printed in PROTOCOL.md, given a password-protected Redis only through the
/// documented variables, is read as ready by the probe; when a newer instance takes the replica
/// over it stops writing, resumes once that record is removed, and is dead after it stops.
#[test]
fn a_python_agent_written_from_protocol_md_interoperates_and_honours_the_fence() {
    let password = "py+secret/=";
    let redis = RedisServer::builder().requirepass(password).start();
    let tmp = tempfile::tempdir().unwrap();
    let password_file = tmp.path().join("redis_password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let mut env = env(&redis, "python");
    env.push((
        "READY_SIGNAL_REDIS_PASSWORD_FILE",
        password_file.display().to_string(),
    ));
    // The CLI's epoch memory lives under $TMPDIR: this test's own.
    env.push(("TMPDIR", tmp.path().display().to_string()));
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
    let key = "ready-signal:python:py-worker:r:r1";
    let py_instance = hget(&redis, Some(password), key, "instance");
    assert_eq!(py_instance.len(), 22, "{py_instance}");
    assert!(
        hget(&redis, Some(password), key, "epoch")
            .parse::<u64>()
            .unwrap()
            > 0
    );

    // A newer instance (a restart elsewhere) takes the replica over: the Python agent, fenced,
    // leaves its record alone across several of its intervals.
    let newer = "0000000000001-00000001"; // an id that would sort first: ids order nothing
    let mut newer_env = env.clone();
    newer_env.push(("READY_SIGNAL_INSTANCE", newer.to_string()));
    let out = cli(&newer_env, &["not-ready", "py-worker", "--reason", "newer"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    thread::sleep(Duration::from_millis(2500));
    assert_eq!(hget(&redis, Some(password), key, "instance"), newer);
    assert_eq!(hget(&redis, Some(password), key, "reason"), "newer");

    // The newer record is removed: the Python agent retakes the replica within an interval.
    let out = cli(&newer_env, &["stopping", "py-worker"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_for(Duration::from_secs(5), || hget(
            &redis,
            Some(password),
            key,
            "instance"
        ) == py_instance),
        "the python agent did not resume"
    );
    let (code, out) = probe(&env, "ready://py-worker");
    assert_eq!(code, 0, "{out}");

    Command::new("kill")
        .args(["-TERM", &py.id().to_string()])
        .status()
        .unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("a newer instance owns this record"),
        "{stderr}"
    );
    assert!(stderr.contains("publishing again"), "{stderr}");
    let (code, out) = probe(&env, "ready://py-worker");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("dead (no record)"), "{out}");
}

/// A script run inside a publisher's process tree writes as the publisher's instance, through
/// `READY_SIGNAL_INSTANCE` (set by `ready-signal run`) or, without it, by finding the publisher
/// among its ancestors: it never fences the publisher, which keeps refreshing the record.
#[test]
fn the_cli_inside_a_publishers_process_tree_does_not_fence_it() {
    let redis = RedisServer::start();
    let env = env(&redis, "tree");
    let bin = harness::bin("ready-signal").display().to_string();
    let dir = tempfile::tempdir().unwrap();
    for (agent, unset) in [
        ("tree-env", ""),
        ("tree-ancestor", "unset READY_SIGNAL_INSTANCE;"),
    ] {
        let marker = dir.path().join(agent);
        let script = format!(
            "sleep 0.5; {unset} {bin} not-ready {agent} --reason from-script; echo $? > {}; exec sleep 30",
            marker.display()
        );
        let child = spawn_run(
            &env,
            &[agent, "--interval", "200ms", "--", "sh", "-c", &script],
        );
        let key = format!("ready-signal:tree:{agent}:r:r1");
        assert!(
            wait_for(Duration::from_secs(5), || !hget(
                &redis, None, &key, "instance"
            )
            .is_empty()),
            "no record from the wrapper"
        );
        let instance = hget(&redis, None, &key, "instance");
        assert!(
            wait_for(Duration::from_secs(10), || marker.exists()),
            "the script did not run"
        );
        let status = std::fs::read_to_string(&marker).unwrap();
        assert_eq!(status.trim(), "0", "{agent}: the CLI failed");
        let seq = |r: &RedisServer| hget(r, None, &key, "seq").parse::<u64>().unwrap_or(0);
        let before = seq(&redis);
        thread::sleep(Duration::from_millis(800));
        assert_eq!(hget(&redis, None, &key, "instance"), instance, "{agent}");
        assert!(
            seq(&redis) > before,
            "{agent}: the wrapper stopped refreshing"
        );
        let (code, out) = probe(&env, &format!("ready://{agent}"));
        assert_eq!(code, 0, "{agent}: {out}");
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("newer instance"), "{agent}: {stderr}");
    }
}

/// One-shot writers remember their epoch on the host: once a newer instance took the replica, a
/// later call of the older script is refused (exit 1, saying why) instead of taking it back,
/// whatever their instance ids say.
#[test]
fn a_late_call_of_an_older_script_is_refused() {
    let redis = RedisServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut base = env(&redis, "late");
    base.push(("TMPDIR", tmp.path().display().to_string()));
    let as_instance = |id: &str| {
        let mut e = base.clone();
        e.push(("READY_SIGNAL_INSTANCE", id.to_string()));
        e
    };
    // The old script's id sorts after the new one's: ids order nothing.
    let (old, new) = (
        as_instance("0000000000009-0000000a"),
        as_instance("0000000000001-0000000b"),
    );
    let ok = |o: &Output| assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    ok(&cli(&old, &["ready", "late"]));
    ok(&cli(
        &old,
        &["not-ready", "late", "--reason", "old, second call"],
    ));
    ok(&cli(&new, &["ready", "late"]));
    let out = cli(&old, &["not-ready", "late", "--reason", "old comes back"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("a newer instance owns the record of late/r1"),
        "{stderr}"
    );
    assert_eq!(
        hget(&redis, None, "ready-signal:late:late:r:r1", "instance"),
        "0000000000001-0000000b"
    );
    let (code, out) = probe(&base, "ready://late");
    assert_eq!(code, 0, "{out}");
}

/// PROTOCOL.md stands alone: it names every `READY_SIGNAL_*` variable the crate and the CLI read.
#[test]
fn protocol_md_documents_every_environment_variable() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let protocol = std::fs::read_to_string(root.join("PROTOCOL.md")).unwrap();
    let mut files = Vec::new();
    let mut dirs = vec![root.join("src"), root.join("cli/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices("READY_SIGNAL_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            if name.len() > "READY_SIGNAL_".len() {
                seen.insert(name);
            }
        }
    }
    assert!(seen.len() >= 9, "found only {seen:?}");
    let missing: Vec<&String> = seen
        .iter()
        .filter(|v| !protocol.contains(&format!("`{v}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "PROTOCOL.md does not document {missing:?}"
    );
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

/// `store=file` reads only the agent's own record file: with Redis gone the shared-store read is
/// unknown (unhealthy) while the liveness read stays healthy, and still sees the record go stale.
#[test]
fn store_file_reads_the_local_record_without_the_shared_store() {
    let mut redis = RedisServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut env = env(&redis, "liveness");
    env.push(("READY_SIGNAL_DIR", tmp.path().display().to_string()));
    let publish = |args: &[&str]| {
        let out = Command::new(harness::bin("ready-signal"))
            .envs(env.iter().cloned())
            .env_remove("READY_SIGNAL_NATS_URL")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    publish(&["ready", "worker", "--ttl", "30s"]);
    publish(&["ready", "brief", "--ttl", "600ms"]);
    publish(&[
        "not-ready",
        "busy",
        "--ttl",
        "30s",
        "--reason",
        "reindexing",
    ]);
    assert_eq!(probe(&env, "ready://worker?replica=self").0, 0);

    redis.stop();
    let (code, out) = probe(&env, "ready://worker?replica=self");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unknown"), "{out}");
    let (code, out) = probe(&env, "ready://worker?replica=self&store=file");
    assert_eq!(code, 0, "{out}");
    // The options are printed as written: nothing secret in them.
    assert!(
        out.contains("ready://worker?replica=self&store=file ok"),
        "{out}"
    );

    // `state=any`: a not-ready agent whose record is fresh is alive; `ready` still needs ready.
    let (code, out) = probe(&env, "ready://busy?replica=self&store=file&state=any");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("busy alive (not-ready)"), "{out}");
    let (code, out) = probe(&env, "ready://busy?store=file&state=any&min=1");
    assert_eq!(code, 0, "{out}");
    let (code, out) = probe(&env, "ready://busy?replica=self&store=file");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not-ready (reindexing)"), "{out}");

    // The file record is judged like any other: a one-shot write with a short TTL goes stale,
    // and stale is not alive.
    let (code, out) = probe_until(
        &env,
        "ready://brief?replica=r1&store=file&state=any",
        1,
        Duration::from_secs(5),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("stale") || out.contains("dead"), "{out}");

    // With Redis and no READY_SIGNAL_DIR there is no record file to read: a config error.
    let no_dir: Vec<(&str, String)> = env
        .iter()
        .filter(|(k, _)| *k != "READY_SIGNAL_DIR")
        .cloned()
        .collect();
    let (code, out) = probe(&no_dir, "ready://worker?replica=self&store=file");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("store=file reads the record file"), "{out}");

    let (code, out) = probe(&env, "ready://worker?store=redis");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("option `store` must be `file`"), "{out}");
}

/// A writer in a container records the container's id, and readers get it back: the CLI runs in
/// its own mount namespace where `/etc/hostname` is bind-mounted from
/// `.../containers/<id>/hostname`, the layout Docker gives every container (a real mount that
/// the kernel's mountinfo shows, made with `unshare` and `mount`; not a Docker container). Needs
/// root for the mount namespace.
#[test]
fn a_writer_in_a_container_records_its_id() {
    let redis = RedisServer::start();
    let env = env(&redis, "incontainer");
    let id = "3f4e8a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7";
    let dir = tempfile::tempdir().unwrap();
    let engine_dir = dir.path().join("docker/containers").join(id);
    std::fs::create_dir_all(&engine_dir).unwrap();
    std::fs::write(engine_dir.join("hostname"), "3f4e8a1b2c3d\n").unwrap();
    let script = format!(
        "mount --bind {}/hostname /etc/hostname && exec {} ready worker",
        engine_dir.display(),
        harness::bin("ready-signal").display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .envs(env.iter().cloned())
        .env_remove("READY_SIGNAL_DIR")
        .env_remove("READY_SIGNAL_NATS_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "unshare --mount (needs root) or the CLI failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        hget(
            &redis,
            None,
            "ready-signal:incontainer:worker:r:r1",
            "container"
        ),
        id
    );
    // The same CLI outside the namespace (this host: no container) records none.
    let out = cli(&env, &["ready", "worker"]);
    assert!(out.status.success());
    assert_eq!(
        hget(
            &redis,
            None,
            "ready-signal:incontainer:worker:r:r1",
            "container"
        ),
        id,
        "a later write of the same instance keeps its first writer's container"
    );
}
