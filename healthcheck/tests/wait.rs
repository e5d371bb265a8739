//! `healthcheck wait` against real servers: late starters, timeouts with reasons, exec of the
//! command with its exit status, and SIGTERM while waiting.

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use harness::cluster::NatsCluster;
use harness::{Monitor, MonitoredCommand, NatsServer, RedisServer, free_port};
use ready_signal::{ReadySignal, StoreConfig};

/// Waits until process `pid` has a SIGTERM handler installed (`SigCgt` in `/proc/PID/status`):
/// `wait` installs it once its configuration is parsed, right before its first attempt. A
/// condition, not a guess at how long starting takes.
fn wait_until_catching_sigterm(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .unwrap_or(0);
        if caught & (1 << (15 - 1)) != 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} never installed a SIGTERM handler:\n{status}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until `cond` holds, or panics with `what` after `limit`.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what} (waited {limit:?})");
        thread::sleep(Duration::from_millis(5));
    }
}

fn wait_cmd() -> Command {
    let mut cmd = harness::clean_command(env!("CARGO_BIN_EXE_healthcheck"));
    cmd.arg("wait");
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
    // The wait has begun (and found nothing listening) before the server starts.
    wait_until_catching_sigterm(child.id());
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
    assert!(out.contains("resolving not-yet-started.invalid"), "{out}");
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
    wait_until_catching_sigterm(child.id());
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

/// A ready event on NATS ends a wait on `ready://` sooner than polling can: once the waiter's
/// polling has slowed to gaps of 400 ms or more (its backoff only grows), the agent says ready
/// right after one poll, and the store read that sees it comes less than 400 ms after that
/// poll. Times are the Redis server's own (`MONITOR`), so a loaded machine does not skew them.
#[test]
fn ready_event_ends_the_wait() {
    let nats = NatsServer::builder().monitor().start();
    event_ends_the_wait(
        "waittest",
        nats.url(),
        nats.url(),
        &|| nats.subscriptions().unwrap_or(0),
        &mut |agent| agent.ready(),
    );
}

/// The same through a 3-node NATS cluster, every seed list starting with a dead seed: the
/// agent publishes through node 0, the waiter listens through node 1 or 2, and the ready event
/// still ends the wait sooner than polling can.
#[test]
fn ready_event_ends_the_wait_through_a_cluster_with_a_dead_first_seed() {
    let cluster = NatsCluster::start();
    let dead = free_port();
    let seeds = |nodes: &[usize]| {
        let mut hosts = vec![format!("127.0.0.1:{dead}")];
        hosts.extend(
            nodes
                .iter()
                .map(|&i| format!("127.0.0.1:{}", cluster.port(i))),
        );
        format!("nats://{}", hosts.join(","))
    };
    // Interest crosses routes: node 0 counts the waiter's subscription made on node 1 or 2.
    let subscriptions = || {
        cluster
            .monitor(0, "/subsz")
            .and_then(|s| s.get("num_subscriptions")?.as_u64())
            .unwrap_or(0)
    };
    event_ends_the_wait(
        "waitcluster",
        seeds(&[0]),
        seeds(&[1, 2]),
        &subscriptions,
        &mut |agent| agent.ready(),
    );
}

/// A ready event lost while the waiter's only NATS node was down does not leave the wait to
/// polling: the node is killed right after one of the waiter's slowed-down polls, the agent
/// (on another node) says ready, the node is restarted, and the waiter, reconnected, reads the
/// store at once: sooner than its next poll could.
#[test]
fn the_wait_reads_again_when_its_nats_node_comes_back() {
    let cluster = std::cell::RefCell::new(NatsCluster::start());
    let (agent_nats, waiter_nats) = {
        let c = cluster.borrow();
        (c.url(0), c.url(1))
    };
    let subscriptions = || {
        cluster
            .borrow()
            .monitor(0, "/subsz")
            .and_then(|s| s.get("num_subscriptions")?.as_u64())
            .unwrap_or(0)
    };
    event_ends_the_wait(
        "waitback",
        agent_nats,
        waiter_nats,
        &subscriptions,
        &mut |agent| {
            let mut c = cluster.borrow_mut();
            c.kill(1);
            // No node holds the waiter's subscription: this event reaches nobody.
            agent.ready();
            c.restart(1);
        },
    );
}

/// Runs a waiter on `ready://late-agent` whose agent says ready right after one of the waiter's
/// slowed-down polls, and asserts that the read ending the wait came sooner than polling would
/// have. The agent uses `agent_nats`, the waiter `waiter_nats`; `subscriptions` counts the
/// subscriptions the agent's NATS server knows of (a server counts its own internal ones too, so
/// only a rise above the count before the waiter started means the waiter's interest arrived);
/// `say_ready` makes the agent ready.
///
/// The evidence is a time (the read came less than [`SLOW_POLL`] after the previous poll), and
/// on a machine loaded by the whole workspace's tests one run can miss it for reasons that are
/// not the waiter's: this test noticing the poll late through `MONITOR`, or the event crossing a
/// busy cluster late. So the experiment runs up to [`TRIALS`] times, each with its own Redis and
/// namespace, and passes when one run shows the early read. A waiter that only polls fails every
/// run: its read after the write can only come at its next poll, [`SLOW_POLL`] or more after
/// the previous one.
fn event_ends_the_wait(
    namespace: &str,
    agent_nats: String,
    waiter_nats: String,
    subscriptions: &dyn Fn() -> u64,
    say_ready: &mut dyn FnMut(&ready_signal::Handle),
) {
    let idle = subscriptions();
    let mut missed = Vec::new();
    for trial in 1..=TRIALS {
        match event_trial(
            &format!("{namespace}{trial}"),
            &agent_nats,
            &waiter_nats,
            &|| subscriptions() <= idle,
            subscriptions,
            say_ready,
        ) {
            Ok(()) => return,
            Err(why) => {
                println!("trial {trial}: {why}");
                missed.push(why);
            }
        }
    }
    panic!(
        "in {TRIALS} runs the read that ended the wait never came sooner than polling could explain:\n{}",
        missed.join("\n")
    );
}

/// Runs of [`event_ends_the_wait`]'s experiment before it is called failed.
const TRIALS: usize = 3;

/// One run of [`event_ends_the_wait`]: `Err` says why the run does not show the early read.
fn event_trial(
    namespace: &str,
    agent_nats: &str,
    waiter_nats: &str,
    idle: &dyn Fn() -> bool,
    subscriptions: &dyn Fn() -> u64,
    say_ready: &mut dyn FnMut(&ready_signal::Handle),
) -> Result<(), String> {
    // What an earlier trial subscribed has gone (interest takes a moment to leave a cluster).
    wait_for(
        "an earlier trial's subscriptions never went away",
        Duration::from_secs(10),
        idle,
    );
    let redis = RedisServer::start();
    let monitor = redis.monitor();
    let vars = [
        ("READY_SIGNAL_REDIS_URL", redis.url()),
        ("READY_SIGNAL_NATS_URL", agent_nats.to_string()),
        ("READY_SIGNAL_NAMESPACE", namespace.to_string()),
    ];
    let store = StoreConfig::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    // The agent, started first so that its own connection is known before the waiter's reads.
    let agent = ReadySignal::builder("late-agent")
        .store(store)
        .replica("r1")
        .ttl(Duration::from_secs(30))
        .start()
        .unwrap();
    wait_for(
        "the agent never wrote its record",
        Duration::from_secs(10),
        || {
            monitor
                .commands()
                .iter()
                .any(|c| c.line.starts_with("\"EVAL"))
        },
    );

    let before = subscriptions();
    let mut waiter = wait_cmd();
    waiter
        .envs(vars.clone())
        .env("READY_SIGNAL_NATS_URL", waiter_nats)
        .args([
            "--timeout",
            "30s",
            "ready://late-agent",
            "--",
            "sh",
            "-c",
            "exit 3",
        ]);
    let child = waiter.stderr(Stdio::piped()).spawn().unwrap();

    // 1. The waiter listens for the agent's events.
    wait_for(
        "the waiter never subscribed on NATS",
        Duration::from_secs(10),
        || subscriptions() > before,
    );
    // 2. Its polling has slowed: two reads at least 400 ms apart. 3. Right after its next read,
    // the agent says ready.
    wait_for(
        "the waiter's polling never slowed to 400 ms",
        Duration::from_secs(20),
        || polls(&monitor).windows(2).any(|w| w[1] - w[0] >= SLOW_POLL),
    );
    let seen = polls(&monitor).len();
    wait_for("the waiter stopped polling", Duration::from_secs(5), || {
        polls(&monitor).len() > seen
    });
    say_ready(&agent);

    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("ready://late-agent ok"), "{err}");

    // MONITOR lines arrive a little after the commands ran.
    let written =
        |c: &MonitoredCommand| c.line.starts_with("\"EVAL") && c.line.contains("\"ready\"");
    wait_for(
        "MONITOR never showed the ready write and a read after it",
        Duration::from_secs(5),
        || {
            let published = monitor.commands().iter().find(|c| written(c)).map(|c| c.at);
            published.is_some_and(|p| polls(&monitor).iter().any(|&t| t >= p))
        },
    );
    let commands = monitor.commands();
    let published = commands
        .iter()
        .find(|c| written(c))
        .expect("the agent's ready write")
        .at;
    let reads = polls(&monitor);
    let before = reads
        .iter()
        .rev()
        .find(|&&t| t < published)
        .copied()
        .unwrap();
    let after = reads.iter().find(|&&t| t >= published).copied().unwrap();
    println!(
        "EVENT ready written {:.0} ms after the waiter's last poll; the read that saw it came {:.0} ms after that poll ({:.0} ms after the write)",
        (published - before) * 1e3,
        (after - before) * 1e3,
        (after - published) * 1e3
    );
    if after - before < SLOW_POLL {
        Ok(())
    } else {
        Err(format!(
            "the read that ended the wait came {:.0} ms after the previous poll: polling could explain it \
             (the agent wrote {:.0} ms after that poll)",
            (after - before) * 1e3,
            (published - before) * 1e3
        ))
    }
}

/// A gap between polls that only a slowed-down poller leaves (its backoff at 800 ms or more).
const SLOW_POLL: f64 = 0.4;

/// When the waiter read the store: commands from any client but the agent's (those that ran the
/// write script) and not run by a script; a read starts with a client's first command, or with
/// one coming more than 50 ms after that client's previous command.
fn polls(monitor: &Monitor) -> Vec<f64> {
    let commands = monitor.commands();
    let agent: Vec<&str> = commands
        .iter()
        .filter(|c| c.line.starts_with("\"EVAL") || c.line.starts_with("\"SCRIPT"))
        .map(|c| c.client.as_str())
        .collect();
    let mut last: std::collections::HashMap<&str, f64> = std::collections::HashMap::new();
    let mut reads: Vec<f64> = Vec::new();
    for c in &commands {
        if c.client == "lua" || agent.contains(&c.client.as_str()) {
            continue;
        }
        if last.get(c.client.as_str()).is_none_or(|&t| c.at - t > 0.05) {
            reads.push(c.at);
        }
        last.insert(c.client.as_str(), c.at);
    }
    reads
}
