//! The fault matrix: every row is a real server in a bad state, or a named fake peer for a fault a
//! real server will not produce on demand, with the verdict the probe must give.
//!
//! For every row and every way of giving the canary secret (in the URL, in the environment, in a
//! file named by an option, in a file named by a `*_FILE` variable) the probe must:
//! - exit with status 1 (never 2, never a signal);
//! - exit by itself within the deadline (`--timeout 1s`) plus 100 ms, measured from spawn to exit;
//! - print less than 4096 bytes (stdout and stderr together), containing the row's expected words;
//! - never print the canary.
//!
//! Each row prints one line per canary channel (`FAULT row via exit ms bytes: output`), which
//! `cargo nextest run -p healthcheck --test faults --no-capture` shows and RELIABILITY.md quotes.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::fake::FakePeer;
use harness::{NatsServer, RedisServer, free_port};
use tempfile::TempDir;

/// The secret that must never be printed.
const CANARY: &str = "canary-Pw-5e1d77c0";
/// The probe's deadline in every row.
const DEADLINE: Duration = Duration::from_secs(1);
/// How long after its deadline the process may still be running (spawn to exit).
const SLACK: Duration = Duration::from_millis(100);
/// Docker keeps this many bytes of a probe's output.
const DOCKER_OUTPUT_CAP: usize = 4096;

/// How the canary secret reaches the probe in one run of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// In the target URL (`redis://:CANARY@host`), or the ready store's URL.
    Url,
    /// In the environment (`REDIS_PASSWORD`, `NATS_TOKEN`, `${VAR}` expansion).
    Env,
    /// In a file named by a target option (`password_file=`, `token_file=`).
    File,
    /// In a file named by a `*_FILE` environment variable.
    EnvFile,
}

const ALL_VIAS: [Via; 4] = [Via::Url, Via::Env, Via::File, Via::EnvFile];

/// What one run of the probe gets: its targets and its environment.
#[derive(Debug, Default)]
struct Probe {
    targets: Vec<String>,
    env: Vec<(String, String)>,
}

impl Probe {
    fn target(target: String) -> Probe {
        Probe {
            targets: vec![target],
            env: Vec::new(),
        }
    }

    fn env(mut self, name: &str, value: impl AsRef<str>) -> Probe {
        self.env
            .push((name.to_string(), value.as_ref().to_string()));
        self
    }
}

/// The canary in a file, shared by every run of a row.
#[derive(Debug)]
struct Secrets {
    _dir: TempDir,
    file: PathBuf,
}

impl Secrets {
    fn new() -> Secrets {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("canary");
        std::fs::write(&file, format!("{CANARY}\n")).unwrap();
        Secrets { _dir: dir, file }
    }

    fn path(&self) -> String {
        self.file.display().to_string()
    }
}

/// Builds a row's probe for one canary channel.
type ProbeFn = dyn Fn(Via, &Secrets) -> Probe;

/// Everything a row needs alive while it runs (servers, fakes), and how to build each probe.
struct Fixture {
    _keep: Vec<Box<dyn std::any::Any>>,
    probe: Box<ProbeFn>,
    /// The channels this row runs with (rows whose point is "no credential" use fewer).
    vias: Vec<Via>,
}

impl Fixture {
    fn new(
        keep: Vec<Box<dyn std::any::Any>>,
        probe: impl Fn(Via, &Secrets) -> Probe + 'static,
    ) -> Fixture {
        Fixture {
            _keep: keep,
            probe: Box::new(probe),
            vias: ALL_VIAS.to_vec(),
        }
    }
}

// ---------------------------------------------------------------- targets carrying the canary

/// A Redis target at `host_port` authenticating with `secret` through `via`. The canary also sits
/// in the NATS variables, which a Redis target must ignore (and never print).
fn redis_with(scheme: &str, host_port: &str, via: Via, secret: &Secrets) -> Probe {
    let probe = match via {
        Via::Url => Probe::target(format!("{scheme}://:{CANARY}@{host_port}")),
        Via::Env => Probe::target(format!("{scheme}://{host_port}")).env("REDIS_PASSWORD", CANARY),
        Via::File => Probe::target(format!(
            "{scheme}://{host_port}?password_file={}",
            secret.path()
        )),
        Via::EnvFile => Probe::target(format!("{scheme}://{host_port}"))
            .env("REDIS_PASSWORD_FILE", secret.path()),
    };
    foreign_nats(probe, secret)
}

/// A NATS target at `host_port` whose token is the canary, given through `via`.
fn nats_with(host_port: &str, via: Via, secret: &Secrets) -> Probe {
    let probe = match via {
        Via::Url => Probe::target(format!("nats://{CANARY}@{host_port}")),
        Via::Env => Probe::target(format!("nats://{host_port}")).env("NATS_TOKEN", CANARY),
        Via::File => Probe::target(format!("nats://{host_port}?token_file={}", secret.path())),
        Via::EnvFile => {
            Probe::target(format!("nats://{host_port}")).env("NATS_TOKEN_FILE", secret.path())
        }
    };
    foreign_redis(probe, secret)
}

/// An HTTP target with basic-auth credentials holding the canary. HTTP has no file channel of
/// its own: with `File`/`EnvFile` the canary sits in the Redis and NATS secret-file variables.
fn http_with(host_port: &str, path_query: &str, via: Via, secret: &Secrets) -> Probe {
    let probe = match via {
        Via::Url => Probe::target(format!("http://probe:{CANARY}@{host_port}{path_query}")),
        Via::Env => Probe::target(format!(
            "http://probe:${{HC_CANARY}}@{host_port}{path_query}"
        ))
        .env("HC_CANARY", CANARY),
        Via::File | Via::EnvFile => Probe::target(format!("http://{host_port}{path_query}")),
    };
    foreign_nats(foreign_redis(probe, secret), secret)
}

/// The canary in the NATS variables (token by value, password by file).
fn foreign_nats(probe: Probe, secret: &Secrets) -> Probe {
    probe
        .env("NATS_TOKEN", CANARY)
        .env("NATS_USER", "probe")
        .env("NATS_PASSWORD_FILE", secret.path())
}

/// The canary in the Redis variables (when the target is not Redis).
fn foreign_redis(probe: Probe, secret: &Secrets) -> Probe {
    if probe.env.iter().any(|(k, _)| k.starts_with("REDIS_")) {
        return probe;
    }
    probe
        .env("REDIS_PASSWORD", CANARY)
        .env("REDIS_PASSWORD_FILE", secret.path())
}

fn local(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

// ---------------------------------------------------------------- ready records in a real Redis

/// The write script of PROTOCOL.md, as the crate ships it.
const WRITE_LUA: &str = include_str!("../../ready-signal/src/write.lua");
const NS: &str = "faults";
const AGENT: &str = "worker";
const REPLICA: &str = "r1";
const OLD_INSTANCE: &str = "1700000000000-0000000a";
const NEW_INSTANCE: &str = "1700000005000-0000000b";

/// A real Redis whose password is the canary, as the agents' ready-signal store.
fn ready_store() -> (RedisServer, redis::Connection) {
    let server = RedisServer::builder().requirepass(CANARY).start();
    let client =
        redis::Client::open(format!("redis://:{CANARY}@127.0.0.1:{}", server.port())).unwrap();
    let conn = client.get_connection().unwrap();
    (server, conn)
}

fn record_key() -> String {
    format!("ready-signal:{NS}:{AGENT}:r:{REPLICA}")
}

/// An instance's first write through the fenced script; returns 1 when applied, 0 when fenced off.
fn write_record(
    conn: &mut redis::Connection,
    instance: &str,
    state: &str,
    reason: &str,
    interval_ms: u64,
    ttl_ms: u64,
) -> i64 {
    let epoch = write_record_as(conn, instance, 0, state, reason, interval_ms, ttl_ms);
    i64::from(epoch > 0)
}

/// One call of the fenced write script with the instance's `epoch` (0: its first write); returns
/// the epoch the write was applied with, 0 when fenced off.
fn write_record_as(
    conn: &mut redis::Connection,
    instance: &str,
    epoch: i64,
    state: &str,
    reason: &str,
    interval_ms: u64,
    ttl_ms: u64,
) -> i64 {
    redis::Script::new(WRITE_LUA)
        .key(record_key())
        .key(format!("ready-signal:{NS}:{AGENT}:replicas"))
        .key(format!("ready-signal:{NS}:agents"))
        .key(format!("ready-signal:{NS}:epoch"))
        .arg("put")
        .arg(instance)
        .arg(epoch)
        .arg(state)
        .arg(reason)
        .arg(4242)
        .arg("faults-host")
        .arg(interval_ms)
        .arg(ttl_ms)
        .arg(AGENT)
        .arg(REPLICA)
        .invoke(conn)
        .unwrap()
}

fn hget(conn: &mut redis::Connection, field: &str) -> Option<String> {
    redis::cmd("HGET")
        .arg(record_key())
        .arg(field)
        .query(conn)
        .unwrap()
}

/// `ready://worker?replica=r1` read from the store at `port`, whose password (the canary) comes
/// through `via`: in `READY_SIGNAL_REDIS_URL` or in `READY_SIGNAL_REDIS_PASSWORD_FILE`.
fn ready_probe(port: u16, via: Via, secret: &Secrets) -> Probe {
    let probe = Probe::target(format!("ready://{AGENT}?replica={REPLICA}"))
        .env("READY_SIGNAL_NAMESPACE", NS);
    let probe = match via {
        Via::Url | Via::Env => probe.env(
            "READY_SIGNAL_REDIS_URL",
            format!("redis://:{CANARY}@127.0.0.1:{port}"),
        ),
        Via::File | Via::EnvFile => probe
            .env(
                "READY_SIGNAL_REDIS_URL",
                format!("redis://127.0.0.1:{port}"),
            )
            .env("READY_SIGNAL_REDIS_PASSWORD_FILE", secret.path()),
    };
    foreign_nats(probe.env("REDIS_PASSWORD", CANARY), secret)
}

fn ready_row(setup: impl FnOnce(&mut redis::Connection)) -> Fixture {
    let (server, mut conn) = ready_store();
    setup(&mut conn);
    let port = server.port();
    Fixture::new(vec![Box::new(server)], move |via, s| {
        ready_probe(port, via, s)
    })
}

// ---------------------------------------------------------------- the rows

fn redis_down() -> Fixture {
    let port = free_port();
    Fixture::new(vec![], move |via, s| {
        redis_with("redis", &local(port), via, s)
    })
}

/// requirepass, and no password given: NOAUTH. The canary is only in the NATS variables here
/// (giving it to Redis would turn the row into "wrong password").
fn noauth_server() -> Fixture {
    let server = RedisServer::builder()
        .requirepass("the-real-password")
        .start();
    let port = server.port();
    let mut f = Fixture::new(vec![Box::new(server)], move |_, s| {
        foreign_nats(Probe::target(format!("redis://{}", local(port))), s)
    });
    f.vias = vec![Via::Env];
    f
}

fn wrong_password_server() -> Fixture {
    let server = RedisServer::builder()
        .requirepass("the-real-password")
        .start();
    let port = server.port();
    Fixture::new(vec![Box::new(server)], move |via, s| {
        redis_with("redis", &local(port), via, s)
    })
}

fn redis_fake(fake: FakePeer) -> Fixture {
    let port = fake.port();
    Fixture::new(vec![Box::new(fake)], move |via, s| {
        redis_with("redis", &local(port), via, s)
    })
}

fn plain_redis_for_tls() -> Fixture {
    let server = RedisServer::start();
    let port = server.port();
    Fixture::new(vec![Box::new(server)], move |via, s| {
        redis_with("rediss", &local(port), via, s)
    })
}

fn nats_down() -> Fixture {
    let port = free_port();
    Fixture::new(vec![], move |via, s| nats_with(&local(port), via, s))
}

fn nats_wrong_token() -> Fixture {
    let server = NatsServer::builder().token("the-real-token").start();
    let port = server.port();
    Fixture::new(vec![Box::new(server)], move |via, s| {
        nats_with(&local(port), via, s)
    })
}

fn nats_fake(fake: FakePeer) -> Fixture {
    let port = fake.port();
    Fixture::new(vec![Box::new(fake)], move |via, s| {
        nats_with(&local(port), via, s)
    })
}

fn http_fake(fake: FakePeer, path_query: &'static str) -> Fixture {
    let port = fake.port();
    Fixture::new(vec![Box::new(fake)], move |via, s| {
        http_with(&local(port), path_query, via, s)
    })
}

fn http_status(line: &str) -> FakePeer {
    FakePeer::replying(format!("HTTP/1.1 {line}\r\ncontent-length: 0\r\n\r\n").as_bytes())
}

fn unresolvable() -> Fixture {
    Fixture::new(vec![], |via, s| {
        redis_with("redis", "no-such-host.invalid:6379", via, s)
    })
}

fn ready_missing() -> Fixture {
    ready_row(|_| {})
}

/// interval 100 ms, TTL 60 s, then 300 ms without a heartbeat: stale (age > 2 intervals).
fn ready_stale() -> Fixture {
    ready_row(|conn| {
        assert_eq!(
            write_record(conn, NEW_INSTANCE, "ready", "", 100, 60_000),
            1
        );
        std::thread::sleep(Duration::from_millis(300));
    })
}

/// A record whose state is not one of the four: unknown, not guessed at.
fn ready_malformed() -> Fixture {
    ready_row(|conn| {
        assert_eq!(
            write_record(conn, NEW_INSTANCE, "ready", "", 1000, 60_000),
            1
        );
        let () = redis::cmd("HSET")
            .arg(record_key())
            .arg("state")
            .arg("sleeping")
            .query(conn)
            .unwrap();
    })
}

/// The new instance says not-ready; the old one's late `ready` is fenced off, and the probe
/// judges the new one (a probe that believed the old one would say healthy).
fn ready_older_instance() -> Fixture {
    ready_row(|conn| {
        let new = "new instance warming up";
        let old = write_record_as(conn, OLD_INSTANCE, 0, "ready", "", 1000, 60_000);
        assert!(old > 0);
        assert_eq!(
            write_record(conn, NEW_INSTANCE, "not-ready", new, 1000, 60_000),
            1
        );
        assert_eq!(
            write_record_as(conn, OLD_INSTANCE, old, "ready", "", 1000, 60_000),
            0,
            "the fence let an older instance overwrite a newer one"
        );
        assert_eq!(hget(conn, "instance").as_deref(), Some(NEW_INSTANCE));
        assert_eq!(hget(conn, "state").as_deref(), Some("not-ready"));
    })
}

fn ready_not_ready() -> Fixture {
    ready_row(|conn| {
        assert_eq!(
            write_record(
                conn,
                NEW_INSTANCE,
                "not-ready",
                "warming cache",
                1000,
                60_000
            ),
            1
        );
    })
}

/// The matrix: `row name => expected words in the output, fixture`. One test per row.
macro_rules! matrix {
    ($($name:ident => $expect:expr, $fixture:expr;)*) => {
        /// One test per row, so each row is named in the test list and runs on its own.
        mod row {
            #[allow(clippy::wildcard_imports)]
            use super::*;
            $(
                #[test]
                fn $name() {
                    run_row(stringify!($name), $expect, $fixture);
                }
            )*
        }
        /// Every row's name, for the table test below.
        const ROWS: &[&str] = &[$(stringify!($name)),*];
    };
}

matrix! {
    redis_down_refused => "connection refused", redis_down();
    redis_noauth => "NOAUTH", noauth_server();
    redis_wrong_password => "WRONGPASS", wrong_password_server();
    redis_loading_fake => "LOADING Redis is loading the dataset in memory", redis_fake(FakePeer::redis_loading());
    redis_busy_fake => "BUSY Redis is busy running a script", redis_fake(FakePeer::redis_error(
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."));
    redis_silent_fake => "timed out after 1s", redis_fake(FakePeer::silent());
    redis_garbage_fake => "Parse error", redis_fake(FakePeer::replying(b"\x00\xff\x16garbage \xfe\r\n"));
    redis_tls_to_plain_port => "timed out after 1s tls handshake", plain_redis_for_tls();
    nats_down_refused => "connection refused", nats_down();
    nats_authorization_violation => "Authorization Violation", nats_wrong_token();
    nats_silent_fake => "timed out after 1s", nats_fake(FakePeer::silent());
    nats_garbage_fake => "unable to parse", nats_fake(FakePeer::greeting(b"\x00\xff\x16garbage \xfe\r\n"));
    http_500_fake => "status 500", http_fake(http_status("500 Internal Server Error"), "/health");
    http_503_fake => "status 503", http_fake(http_status("503 Service Unavailable"), "/health");
    http_trickling_body_fake => "timed out after 1s reading body", http_fake(FakePeer::http_trickle(), "/health?body=never-there");
    http_redirect_loop_fake => "redirect", http_fake(FakePeer::http_redirect_loop(), "/loop");
    http_huge_body_fake => "in the first 1 MiB", http_fake(FakePeer::http_endless_body(), "/health?body=needle");
    dns_never_resolves => "no-such-host.invalid", unresolvable();
    ready_record_missing => "worker: dead (no record)", ready_missing();
    ready_record_stale => "worker: stale, last beat", ready_stale();
    ready_record_malformed => "worker: unknown", ready_malformed();
    ready_record_older_instance => "worker: not-ready (new instance warming up)", ready_older_instance();
    ready_record_not_ready => "worker: not-ready (warming cache)", ready_not_ready();
}

/// The matrix is the size the issue asks for (a row silently dropped would be a hole).
#[test]
fn matrix_has_every_row() {
    assert_eq!(ROWS.len(), 23, "{ROWS:?}");
}

// ---------------------------------------------------------------- the runner

/// The result of one run, as printed for RELIABILITY.md.
#[derive(Debug)]
struct RunResult {
    code: Option<i32>,
    elapsed: Duration,
    output: String,
}

fn healthcheck() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_healthcheck"));
    // Only what a row gives: nothing from the developer's or CI's environment.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("HEALTHCHECK_")
            || name.starts_with("REDIS_")
            || name.starts_with("NATS_")
            || name.starts_with("READY_SIGNAL_")
            || name.ends_with("_proxy")
            || name.ends_with("_PROXY")
        {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// Spawns the probe and measures spawn to exit.
fn run_probe(probe: &Probe) -> RunResult {
    let mut cmd = healthcheck();
    cmd.arg("--timeout")
        .arg(format!("{}ms", DEADLINE.as_millis()))
        .args(&probe.targets)
        .envs(probe.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let child = cmd.spawn().unwrap();
    let out = child.wait_with_output().unwrap();
    let elapsed = started.elapsed();
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    RunResult {
        code: out.status.code(),
        elapsed,
        output,
    }
}

fn run_row(name: &str, expect: &str, fixture: Fixture) {
    let secrets = Secrets::new();
    let mut failures = Vec::new();
    for via in &fixture.vias {
        let probe = (fixture.probe)(*via, &secrets);
        let r = run_probe(&probe);
        println!(
            "FAULT {name} via={via:?} exit={} ms={} bytes={}: {}",
            r.code.map_or("signal".to_string(), |c| c.to_string()),
            r.elapsed.as_millis(),
            r.output.len(),
            r.output.trim_end()
        );
        failures.extend(check(&r, expect, *via));
    }
    assert!(failures.is_empty(), "row {name}:\n{}", failures.join("\n"));
}

/// Every property of a run that does not hold, as messages.
fn check(r: &RunResult, expect: &str, via: Via) -> Vec<String> {
    let mut bad = Vec::new();
    let ctx = format!("via {via:?}: {:?}", r.output);
    if r.code != Some(1) {
        bad.push(format!("exit {:?}, want 1; {ctx}", r.code));
    }
    if r.elapsed > DEADLINE + SLACK {
        bad.push(format!(
            "took {:?}, more than {:?} + {:?}; {ctx}",
            r.elapsed, DEADLINE, SLACK
        ));
    }
    if r.output.len() >= DOCKER_OUTPUT_CAP {
        bad.push(format!("{} bytes of output; {ctx}", r.output.len()));
    }
    if !r.output.contains(expect) {
        bad.push(format!("output lacks `{expect}`; {ctx}"));
    }
    if r.output.contains(CANARY) || r.output.contains(&CANARY[7..]) {
        bad.push(format!("output leaks the canary; {ctx}"));
    }
    bad
}

/// The checks themselves can fail: a healthy target, a slow exit, a leak and a long output are
/// each caught (a matrix whose assertions cannot fail would prove nothing).
#[test]
fn the_checks_catch_what_they_guard_against() {
    let ok = RunResult {
        code: Some(1),
        elapsed: Duration::from_millis(5),
        output: "unhealthy: redis://:***@h NOAUTH Authentication required.".into(),
    };
    assert!(check(&ok, "NOAUTH", Via::Url).is_empty());
    let cases = [
        RunResult {
            code: Some(0),
            ..clone(&ok)
        },
        RunResult {
            code: Some(2),
            ..clone(&ok)
        },
        RunResult {
            code: None,
            ..clone(&ok)
        },
        RunResult {
            elapsed: DEADLINE + SLACK + Duration::from_millis(1),
            ..clone(&ok)
        },
        RunResult {
            output: format!("{} {CANARY}", ok.output),
            ..clone(&ok)
        },
        RunResult {
            output: format!("NOAUTH {}", "x".repeat(4096)),
            ..clone(&ok)
        },
        RunResult {
            output: "unhealthy: something else".into(),
            ..clone(&ok)
        },
    ];
    for case in cases {
        assert_eq!(check(&case, "NOAUTH", Via::Env).len(), 1, "{case:?}");
    }

    // And against the real binary: a healthy Redis is exit 0, which a row would reject.
    let redis = RedisServer::start();
    let secrets = Secrets::new();
    let r = run_probe(
        &redis_with("redis", &local(redis.port()), Via::Env, &secrets).env("REDIS_PASSWORD", ""),
    );
    assert_eq!(r.code, Some(0), "{}", r.output);
    assert!(!check(&r, "ok", Via::Env).is_empty());
}

/// Only the probe's deadline applies: a Redis that answers in 700 ms is healthy under
/// `--timeout 2s` (redis-rs's own 500 ms response timeout once judged it unhealthy).
#[test]
fn slow_redis_within_the_deadline_is_healthy() {
    let slow = FakePeer::replying_after(b"+PONG\r\n", Duration::from_millis(700));
    let out = healthcheck()
        .args([
            "--timeout",
            "2s",
            &format!("redis://{}", local(slow.port())),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!(
        "SLOW redis answering in 700ms, --timeout 2s: {}",
        text.trim_end()
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
}

fn clone(r: &RunResult) -> RunResult {
    RunResult {
        code: r.code,
        elapsed: r.elapsed,
        output: r.output.clone(),
    }
}
