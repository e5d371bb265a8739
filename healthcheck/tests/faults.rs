//! The fault matrix: every row is a real server in a bad state, or a named fake peer for a fault a
//! real server will not produce on demand, with the verdict the probe must give.
//!
//! Two tables share one runner:
//! - `row::*` (the first matrix): for every row and every way of giving the canary secret (in the
//!   URL, in the environment, in a file named by an option, in a file named by a `*_FILE`
//!   variable) the probe exits 1, within `--timeout 1s` plus 100 ms, under 4096 bytes, saying the
//!   row's expected words, never printing the canary.
//! - the trust matrix of issue 11 (`secrets::*`, `never_exits::*`, `timeouts::*`, `memory::*`,
//!   `huge_inputs::*`, `reasons::*`, `control_chars::*`): argv, environment, files, how stdout
//!   and stderr are connected and the true verdict per row; see [`Case`] for what every row
//!   asserts (exact exit 0 or 1, deadline plus 100 ms from the child's start with its waits for a
//!   CPU not charged, under 4096 bytes, the canary absent case-insensitively, no raw control
//!   byte, no panic, no child process, the reason naming what and where, JSON kind and phase,
//!   peak RSS at most 12 MiB past the probe's start-up where marked).
//!
//! `cargo nextest run -p healthcheck --test faults --no-capture` prints one `FAULT` or `TRUST`
//! line per run; `HC_BIN=target/x86_64-unknown-linux-musl/release/healthcheck` runs the same
//! rows against the static binary that ships.

#![allow(clippy::unwrap_used)]

use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use harness::fake::FakePeer;
use harness::{NatsServer, RedisServer, free_port};
use tempfile::TempDir;

/// The secret that must never be printed: random per run, mixed case, so a leak is found
/// whatever case the probe prints it in (compared case-insensitively).
fn canary() -> &'static str {
    static CANARY: LazyLock<String> = LazyLock::new(|| {
        let random = RandomState::new().hash_one(std::process::id());
        format!("CaNaRy-{random:016x}")
    });
    &CANARY
}
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
        let canary = canary();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("canary");
        std::fs::write(&file, format!("{canary}\n")).unwrap();
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
    let canary = canary();
    let probe = match via {
        Via::Url => Probe::target(format!("{scheme}://:{canary}@{host_port}")),
        Via::Env => Probe::target(format!("{scheme}://{host_port}")).env("REDIS_PASSWORD", canary),
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
    let canary = canary();
    let probe = match via {
        Via::Url => Probe::target(format!("nats://{canary}@{host_port}")),
        Via::Env => Probe::target(format!("nats://{host_port}")).env("NATS_TOKEN", canary),
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
    let canary = canary();
    let probe = match via {
        Via::Url => Probe::target(format!("http://probe:{canary}@{host_port}{path_query}")),
        Via::Env => Probe::target(format!(
            "http://probe:${{HC_CANARY}}@{host_port}{path_query}"
        ))
        .env("HC_CANARY", canary),
        Via::File | Via::EnvFile => Probe::target(format!("http://{host_port}{path_query}")),
    };
    foreign_nats(foreign_redis(probe, secret), secret)
}

/// The canary in the NATS variables (token by value, password by file).
fn foreign_nats(probe: Probe, secret: &Secrets) -> Probe {
    let canary = canary();
    probe
        .env("NATS_TOKEN", canary)
        .env("NATS_USER", "probe")
        .env("NATS_PASSWORD_FILE", secret.path())
}

/// The canary in the Redis variables (when the target is not Redis).
fn foreign_redis(probe: Probe, secret: &Secrets) -> Probe {
    let canary = canary();
    if probe.env.iter().any(|(k, _)| k.starts_with("REDIS_")) {
        return probe;
    }
    probe
        .env("REDIS_PASSWORD", canary)
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
    let canary = canary();
    let server = RedisServer::builder().requirepass(canary).start();
    let client =
        redis::Client::open(format!("redis://:{canary}@127.0.0.1:{}", server.port())).unwrap();
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
    let canary = canary();
    let probe = Probe::target(format!("ready://{AGENT}?replica={REPLICA}"))
        .env("READY_SIGNAL_NAMESPACE", NS);
    let probe = match via {
        Via::Url | Via::Env => probe.env(
            "READY_SIGNAL_REDIS_URL",
            format!("redis://:{canary}@127.0.0.1:{port}"),
        ),
        Via::File | Via::EnvFile => probe
            .env(
                "READY_SIGNAL_REDIS_URL",
                format!("redis://127.0.0.1:{port}"),
            )
            .env("READY_SIGNAL_REDIS_PASSWORD_FILE", secret.path()),
    };
    foreign_nats(probe.env("REDIS_PASSWORD", canary), secret)
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
    redis_garbage_fake => "not Redis", redis_fake(FakePeer::replying(b"\x00\xff\x16garbage \xfe\r\n"));
    redis_tls_to_plain_port => "tls handshake", plain_redis_for_tls();
    nats_down_refused => "connection refused", nats_down();
    nats_authorization_violation => "Authorization Violation", nats_wrong_token();
    nats_silent_fake => "timed out after 1s", nats_fake(FakePeer::silent());
    nats_garbage_fake => "not NATS", nats_fake(FakePeer::greeting(b"\x00\xff\x16garbage \xfe\r\n"));
    http_500_fake => "status 500", http_fake(http_status("500 Internal Server Error"), "/health");
    http_503_fake => "status 503", http_fake(http_status("503 Service Unavailable"), "/health");
    http_trickling_body_fake => "timed out after 1s reading", http_fake(FakePeer::http_trickle(), "/health?body=never-there");
    http_redirect_loop_fake => "redirect", http_fake(FakePeer::http_redirect_loop(), "/loop");
    http_huge_body_fake => "in the first 1 MiB", http_fake(FakePeer::http_endless_body(), "/health?body=needle");
    // The reason, not the echoed target: the target holds the name but not "resolve NAME".
    dns_never_resolves => "resolving no-such-host.invalid", unresolvable();
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

/// The binary under test: `$HC_BIN` when set (to run the matrix against the static musl release
/// binary that ships), else the one cargo built for this test.
fn probe_binary() -> PathBuf {
    std::env::var_os("HC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_healthcheck")))
}

fn healthcheck() -> Command {
    // Only what a row gives: nothing from the developer's or CI's environment.
    harness::clean_command(probe_binary())
}

/// Spawns the probe and measures spawn to exit.
fn run_probe(probe: &Probe) -> RunResult {
    // The trust rows' runner: spawned under an address-space limit and a watchdog, timed from
    // the child's start, its waits for a CPU not charged to it.
    let mut case = self::probe(&format!("{}ms", DEADLINE.as_millis()), &probe.targets);
    case.env.clone_from(&probe.env);
    let r = case.spawn();
    RunResult {
        code: r.code,
        elapsed: r.elapsed.saturating_sub(r.run_delay),
        output: format!("{}{}", r.stdout, r.stderr),
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
    if leaks(&r.output) {
        bad.push(format!("output leaks the canary; {ctx}"));
    }
    bad
}

/// The checks themselves can fail: a healthy target, a slow exit, a leak and a long output are
/// each caught (a matrix whose assertions cannot fail would prove nothing).
#[test]
fn the_checks_catch_what_they_guard_against() {
    let canary = canary();
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
            output: format!("{} {canary}", ok.output),
            ..clone(&ok)
        },
        RunResult {
            output: format!("{} {}", ok.output, canary.to_uppercase()),
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

// ==================================================================== the trust matrix (issue 11)
//
// Rows an outside tester would try, one per fault, grouped by the classes of issue 11. Each row
// states its argv, environment, files, how stdout is connected and the true verdict; `Case::run`
// then asserts, for every row: the exit status is exactly the truth (0 or 1); the process ends
// within its deadline plus 100 ms (measured from the moment spawn returned, the child's own
// start, to its exit); stdout and stderr together are under 4096 bytes; the canary appears in
// neither, compared case-insensitively; no control character but newline and tab is printed; no
// panic; and the output names what it must (the target, the file, the address, the phase).
// Rows marked `rss` run the probe under GNU time (wait4's ru_maxrss) and assert that its peak RSS
// grows at most 12 MiB past the probe's own start-up (`healthcheck --version`, measured the same
// way): the claim is about what a peer or a file can make it hold, not about the size of the
// binary, which a debug build and its features change. `--no-capture` prints one `TRUST` line
// per row.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How far a row's peak RSS may grow past the probe's start-up, whatever a peer or a file sends.
const RSS_GROWTH_LIMIT_KB: u64 = 12 * 1024;

/// The probe's peak RSS when it does nothing but start (`--version`), under GNU time; measured
/// once per test binary.
fn startup_rss_kb() -> u64 {
    static STARTUP: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *STARTUP.get_or_init(|| {
        let out = Command::new(GNU_TIME)
            .args(["-f", "%M"])
            .arg(probe_binary())
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("{GNU_TIME}: {e} (apt-get install -y time)"));
        let text = String::from_utf8_lossy(&out.stderr);
        text.lines()
            .filter_map(|l| l.trim().parse::<u64>().ok())
            .next_back()
            .unwrap_or_else(|| panic!("{GNU_TIME} printed no peak RSS: {text}"))
    })
}
/// The probe's address space is limited to this (`ulimit -v`): far above anything it needs, far
/// below what would hurt a shared machine when a row finds an unbounded read.
const ADDRESS_SPACE_LIMIT_KB: u64 = 1024 * 1024;
/// A probe still running this long after its deadline is killed (the row fails).
const WATCHDOG: Duration = Duration::from_secs(4);
/// GNU time, for the peak RSS of one child (Debian package `time`).
const GNU_TIME: &str = "/usr/bin/time";

/// How the probe's stdout is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stdout {
    /// A pipe the test reads.
    Piped,
    /// A pipe already full that nobody reads.
    Full,
    /// Closed (`>&-`): writing to fd 1 fails with EBADF.
    Closed,
    /// A pipe whose reader is gone: writing fails with EPIPE.
    Broken,
}

/// One row: what the probe gets, and the truth.
struct Case {
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdout: Stdout,
    stderr: Stdout,
    deadline: Duration,
    want: i32,
    says: Vec<String>,
    json: bool,
    kind: Option<&'static str>,
    phase: Option<&'static str>,
    phase_not: Vec<&'static str>,
    json_targets: Option<usize>,
    one_line: bool,
    rss: bool,
    resume: Option<(Duration, u32)>,
    keep: Vec<Box<dyn std::any::Any>>,
    extra: Vec<Box<OutputCheck>>,
}

/// One more property of a row's output: `Some(message)` when it does not hold.
type OutputCheck = dyn Fn(&str) -> Option<String>;

/// A one-shot probe with `--timeout` and these targets; by default the truth is exit 1.
fn probe(timeout: &str, targets: &[String]) -> Case {
    let mut args = vec!["--timeout".to_string(), timeout.to_string()];
    args.extend(targets.iter().cloned());
    Case::new(args, timeout)
}

/// `healthcheck wait --timeout T TARGETS -- true`.
fn wait(timeout: &str, targets: &[String]) -> Case {
    let mut args = vec!["wait".to_string(), "--timeout".into(), timeout.to_string()];
    args.extend(targets.iter().cloned());
    args.extend(["--".to_string(), "true".to_string()]);
    Case::new(args, timeout)
}

impl Case {
    fn new(args: Vec<String>, deadline: &str) -> Case {
        Case {
            args,
            env: Vec::new(),
            stdout: Stdout::Piped,
            stderr: Stdout::Piped,
            deadline: humantime::parse_duration(deadline).unwrap(),
            want: 1,
            says: Vec::new(),
            json: false,
            kind: None,
            phase: None,
            phase_not: Vec::new(),
            json_targets: None,
            one_line: false,
            rss: false,
            resume: None,
            keep: Vec::new(),
            extra: Vec::new(),
        }
    }

    fn arg(mut self, a: impl Into<String>) -> Case {
        self.args.insert(0, a.into());
        self
    }
    fn env(mut self, k: &str, v: impl Into<String>) -> Case {
        self.env.push((k.to_string(), v.into()));
        self
    }
    fn healthy(mut self) -> Case {
        self.want = 0;
        self
    }
    /// The output must contain `word` (compared case-insensitively).
    fn says(mut self, word: impl Into<String>) -> Case {
        self.says.push(word.into());
        self
    }
    /// `--format json`: stdout must be one JSON object.
    /// The deadline the row holds the probe to, when `--timeout` is not it.
    fn deadline_of(mut self, d: &str) -> Case {
        self.deadline = humantime::parse_duration(d).unwrap();
        self
    }
    /// Drops `--timeout T` from the arguments (the timeout comes from elsewhere).
    fn no_timeout_flag(mut self) -> Case {
        if let Some(i) = self.args.iter().position(|a| a == "--timeout") {
            self.args.drain(i..i + 2);
        }
        self
    }
    fn json(mut self) -> Case {
        self.args.insert(0, "json".into());
        self.args.insert(0, "--format".into());
        self.json = true;
        self
    }
    /// Stdout is JSON without adding `--format json` (a config file asks for it).
    fn json_output(mut self) -> Case {
        self.json = true;
        self
    }
    fn kind(mut self, kind: &'static str) -> Case {
        self.kind = Some(kind);
        self
    }
    fn phase(mut self, phase: &'static str) -> Case {
        self.phase = Some(phase);
        self
    }
    /// The phase of the failure is known and is none of these (a paused server has accepted
    /// the TCP connection: the failure is not in resolving or connecting).
    fn phase_not(mut self, phases: &[&'static str]) -> Case {
        self.phase_not.extend(phases);
        self
    }
    fn json_targets(mut self, n: usize) -> Case {
        self.json_targets = Some(n);
        self
    }
    fn one_line(mut self) -> Case {
        self.one_line = true;
        self
    }
    fn rss(mut self) -> Case {
        self.rss = true;
        self
    }
    fn stdout(mut self, s: Stdout) -> Case {
        self.stdout = s;
        self
    }
    fn stderr(mut self, s: Stdout) -> Case {
        self.stderr = s;
        self
    }
    /// Sends SIGCONT to `pid` this long after the probe started (a paused server that answers late).
    fn resume_after(mut self, after: Duration, pid: u32) -> Case {
        self.resume = Some((after, pid));
        self
    }
    fn keep(mut self, x: impl std::any::Any) -> Case {
        self.keep.push(Box::new(x));
        self
    }
    /// One more property of the output; `Some(message)` when it does not hold.
    fn check(mut self, f: impl Fn(&str) -> Option<String> + 'static) -> Case {
        self.extra.push(Box::new(f));
        self
    }
    /// The reason, once the target as written is removed from the output, still names `word`:
    /// the reason itself says it, not only the echoed target.
    fn reason_names(self, target: String, word: impl Into<String>) -> Case {
        let word = word.into();
        self.check(move |out| {
            let rest = out.replace(&target, "");
            (!rest.to_lowercase().contains(&word.to_lowercase()))
                .then(|| format!("the reason (output minus the target) does not name `{word}`"))
        })
    }

    fn run(self) {
        let name = std::thread::current()
            .name()
            .unwrap_or("row")
            .rsplit("::")
            .next()
            .unwrap_or("row")
            .to_string();
        let r = self.spawn();
        println!(
            "TRUST {name} exit={} ms={} cpu_wait_ms={} bytes={} rss_kb={}: {}",
            r.code.map_or("signal".to_string(), |c| c.to_string()),
            r.elapsed.as_millis(),
            r.run_delay.as_millis(),
            r.stdout.len() + r.stderr.len(),
            r.rss_kb.map_or("-".to_string(), |k| k.to_string()),
            format!("{}{}", r.stdout, r.stderr).trim_end()
        );
        let bad = self.judge(&r);
        assert!(
            bad.is_empty(),
            "row {name}: args {:?}\n{}\nstdout: {:?}\nstderr: {:?}",
            self.args.iter().map(|a| cut(a, 200)).collect::<Vec<_>>(),
            bad.join("\n"),
            r.stdout,
            r.stderr
        );
    }

    fn spawn(&self) -> Ran {
        let bin = probe_binary();
        let rss_dir = tempfile::tempdir().unwrap();
        let rss_file = rss_dir.path().join("rss");
        // A probe that reads /dev/zero for ever would take the shared machine's memory with it:
        // an address-space limit turns that into an abort (and a failed row) instead.
        let mut script = format!("ulimit -v {ADDRESS_SPACE_LIMIT_KB}; exec \"$@\"");
        if self.stdout == Stdout::Closed {
            script.push_str(" >&-");
        }
        if self.stderr == Stdout::Closed {
            script.push_str(" 2>&-");
        }
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script).arg("sh");
        if self.rss {
            assert!(
                std::path::Path::new(GNU_TIME).exists(),
                "{GNU_TIME} is missing: apt-get install -y time"
            );
            cmd.arg(GNU_TIME)
                .arg("-f")
                .arg("%M")
                .arg("-o")
                .arg(&rss_file);
        }
        cmd.arg(&bin);
        // Its own process group, so the watchdog can end it and anything under it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        harness::clean_env(&mut cmd);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        let mut held = Vec::new();
        match self.stderr {
            Stdout::Piped => {
                cmd.stderr(Stdio::piped());
            }
            Stdout::Full => {
                let (reader, writer) = full_pipe();
                cmd.stderr(writer);
                held.push(reader);
            }
            Stdout::Broken => {
                let (reader, writer) = std::io::pipe().unwrap();
                drop(reader);
                cmd.stderr(writer);
            }
            Stdout::Closed => {
                cmd.stderr(Stdio::null());
            }
        }
        match self.stdout {
            Stdout::Piped => {
                cmd.stdout(Stdio::piped());
            }
            Stdout::Full => {
                let (reader, writer) = full_pipe();
                cmd.stdout(writer);
                held.push(reader);
            }
            Stdout::Broken => {
                let (reader, writer) = std::io::pipe().unwrap();
                drop(reader);
                cmd.stdout(writer);
            }
            Stdout::Closed => {
                cmd.stdout(Stdio::null());
            }
        }
        let child = cmd.spawn().unwrap();
        let started = Instant::now();
        // The parent's copies of the pipe ends must go, or EOF never comes.
        drop(cmd);
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watchdog = {
            let done = Arc::clone(&done);
            let group = child.id();
            let limit = self.deadline + WATCHDOG;
            std::thread::spawn(move || {
                while started.elapsed() < limit {
                    if done.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{group}")])
                    .status();
            })
        };
        if let Some((after, pid)) = self.resume {
            std::thread::spawn(move || {
                std::thread::sleep(after.saturating_sub(started.elapsed()));
                let _ = Command::new("kill")
                    .args(["-CONT", &pid.to_string()])
                    .status();
            });
        }
        let run_delay = {
            // How long the probe waited for a CPU (the machine's time, not the probe's), sampled
            // until it exits.
            let done = Arc::clone(&done);
            let pid = child.id();
            // Under GNU time the probe is time's child; otherwise it is `pid` itself.
            let wrapped = self.rss;
            std::thread::spawn(move || {
                // What it waited before spawn returned is not in `elapsed` either.
                let before = run_delay_ns(pid, 2);
                let mut most = before;
                let mut children = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    most = most.max(run_delay_ns(pid, 2));
                    if !wrapped {
                        children.extend(children_of(pid));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                (Duration::from_nanos(most - before), children)
            })
        };
        let out = child.wait_with_output().unwrap();
        let elapsed = started.elapsed();
        done.store(true, Ordering::Relaxed);
        let (run_delay, children) = run_delay.join().unwrap();
        let _ = watchdog.join();
        drop(held);
        let rss_kb = self.rss.then(|| {
            let text = std::fs::read_to_string(&rss_file).unwrap_or_default();
            text.lines()
                .rev()
                .find_map(|l| l.trim().parse::<u64>().ok())
                .unwrap_or(u64::MAX)
        });
        Ran {
            code: out.status.code(),
            elapsed,
            run_delay,
            children,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            raw: [out.stdout, out.stderr].concat(),
            rss_kb,
        }
    }

    /// Every property of the row that does not hold.
    fn judge(&self, r: &Ran) -> Vec<String> {
        let mut bad = Vec::new();
        let all = format!("{}{}", r.stdout, r.stderr);
        let lower = all.to_lowercase();
        if r.code != Some(self.want) {
            bad.push(format!("exit {:?}, want {}", r.code, self.want));
        }
        // The contract is the probe's: time it spent waiting for a CPU on a loaded machine is
        // not counted (and is printed), everything else is, sleeping and blocking included.
        if r.elapsed.saturating_sub(r.run_delay) > self.deadline + SLACK {
            bad.push(format!(
                "took {:?} ({:?} of it waiting for a CPU), more than the deadline {:?} + {SLACK:?}",
                r.elapsed, r.run_delay, self.deadline
            ));
        }
        if r.raw.len() >= DOCKER_OUTPUT_CAP {
            bad.push(format!("{} bytes of output", r.raw.len()));
        }
        // An unhealthy verdict says why, wherever its output can be read.
        if self.want != 0
            && self.stdout == Stdout::Piped
            && self.stderr == Stdout::Piped
            && all.trim().is_empty()
        {
            bad.push("an unhealthy verdict with no reason printed".into());
        }
        if !r.children.is_empty() {
            bad.push(format!("the probe started processes {:?}", r.children));
        }
        if leaks(&all) {
            bad.push("the output holds the canary".into());
        }
        if lower.contains("panicked") {
            bad.push("the output shows a panic".into());
        }
        if let Some(b) = r
            .raw
            .iter()
            .find(|&&b| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f)
        {
            bad.push(format!("the output holds control byte {b:#04x} unescaped"));
        }
        if self.one_line && all.trim_end_matches('\n').contains('\n') {
            bad.push("the output is more than one line".into());
        }
        for word in &self.says {
            if !lower.contains(&word.to_lowercase()) {
                bad.push(format!("the output does not say `{word}`"));
            }
        }
        if let Some(kb) = r.rss_kb
            && kb > startup_rss_kb() + RSS_GROWTH_LIMIT_KB
        {
            let start = startup_rss_kb();
            bad.push(format!(
                "peak RSS {kb} kB: {} kB past start-up ({start} kB), over {RSS_GROWTH_LIMIT_KB} kB",
                kb.saturating_sub(start)
            ));
        }
        if self.json {
            match serde_json::from_str::<serde_json::Value>(r.stdout.trim()) {
                Err(e) => bad.push(format!("stdout is not JSON: {e}")),
                Ok(v) => bad.extend(self.judge_json(&v)),
            }
        }
        for f in &self.extra {
            bad.extend(f(&all));
        }
        bad
    }

    fn judge_json(&self, v: &serde_json::Value) -> Vec<String> {
        let mut bad = Vec::new();
        if v.get("healthy") != Some(&serde_json::Value::Bool(self.want == 0)) {
            bad.push(format!("json `healthy` is not {}", self.want == 0));
        }
        let kinds = values_of(v, "kind");
        let phases = values_of(v, "phase");
        if let Some(k) = self.kind
            && !kinds.iter().any(|x| x == k)
        {
            bad.push(format!("json has no kind `{k}` (kinds: {kinds:?})"));
        }
        if let Some(p) = self.phase
            && !phases.iter().any(|x| x == p)
        {
            bad.push(format!("json has no phase `{p}` (phases: {phases:?})"));
        }
        if !self.phase_not.is_empty()
            && (phases.is_empty() || phases.iter().any(|p| self.phase_not.contains(&p.as_str())))
        {
            bad.push(format!(
                "json phase is {phases:?}: want one, and none of {:?}",
                self.phase_not
            ));
        }
        if let Some(n) = self.json_targets {
            let got = v
                .get("targets")
                .and_then(|t| t.as_array())
                .map_or(0, Vec::len);
            if got != n {
                bad.push(format!("json lists {got} targets, want {n}"));
            }
        }
        bad
    }
}

/// What one run of a row gave.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    /// From the moment spawn returned to the exit.
    elapsed: Duration,
    /// Of that, the time the probe was runnable but waited for a CPU (`run_delay` in
    /// `/proc/PID/schedstat`): on a loaded machine, time the machine lost, not the probe.
    run_delay: Duration,
    /// Processes the probe was seen to start (it must start none).
    children: Vec<u32>,
    stdout: String,
    stderr: String,
    raw: Vec<u8>,
    rss_kb: Option<u64>,
}

/// Every string value of key `key` anywhere in `v`.
fn values_of(v: &serde_json::Value, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if k == key
                    && let Some(s) = x.as_str()
                {
                    out.push(s.to_string());
                }
                out.extend(values_of(x, key));
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| out.extend(values_of(x, key))),
        _ => {}
    }
    out
}

/// Nanoseconds `pid`'s main thread has waited on a run queue, plus its children's (GNU time or
/// the shell in front of the probe), `depth` levels down; 0 once it is gone.
fn run_delay_ns(pid: u32, depth: u32) -> u64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|d| d.parse().ok()))
        .unwrap_or(0);
    if depth == 0 {
        return own;
    }
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    own + children
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .map(|c| run_delay_ns(c, depth - 1))
        .sum::<u64>()
}

/// The children of `pid`'s main thread (the probe must start no process).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect()
}

/// True when `output` holds the canary, in any case.
fn leaks(output: &str) -> bool {
    output.to_lowercase().contains(&canary().to_lowercase())
}

fn cut(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &s[..end], s.len())
}

/// A pipe already full: a thread writes until the write blocks, and stays blocked (nobody
/// reads) until the returned reader is dropped.
fn full_pipe() -> (std::io::PipeReader, std::io::PipeWriter) {
    let (reader, writer) = std::io::pipe().unwrap();
    let mut filler = writer.try_clone().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&written);
    std::thread::spawn(move || {
        let chunk = [b'.'; 4096];
        while filler.write_all(&chunk).is_ok() {
            count.fetch_add(chunk.len(), Ordering::Relaxed);
        }
    });
    // Full once the count has stopped growing for a while.
    let mut last = usize::MAX;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = written.load(Ordering::Relaxed);
        if now == last && now > 0 {
            return (reader, writer);
        }
        last = now;
    }
}

/// The secret as `openssl rand -base64` makes them, with `/`, `+` and `=`; every piece between
/// them holds the canary, so printing any piece is caught.
fn b64() -> String {
    let c = canary();
    format!("{c}/{c}+{c}=")
}

/// `127.0.0.1:PORT` where nothing listens.
fn dead() -> String {
    local(free_port())
}

/// Files a row points the probe at, in a fresh directory.
struct Files {
    dir: TempDir,
}

impl Files {
    fn new() -> Files {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
    /// A FIFO nobody ever opens for writing: a blocking open or read never returns.
    fn fifo(&self, name: &str) -> String {
        let path = self.path(name);
        if let Some(parent) = std::path::Path::new(&path).parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        let ok = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(ok.success(), "mkfifo {path}");
        path
    }
    fn dir(&self, name: &str) -> String {
        let path = self.path(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    }
    fn write(&self, name: &str, content: impl AsRef<[u8]>) -> String {
        let path = self.path(name);
        if let Some(parent) = std::path::Path::new(&path).parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, content).unwrap();
        path
    }
    /// A sparse file of `len` bytes (zeros), instant to make whatever its size.
    fn huge(&self, name: &str, len: u64) -> String {
        let path = self.path(name);
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(len).unwrap();
        path
    }
    /// A symbolic link to `to` (say `/dev/zero`).
    fn link(&self, name: &str, to: &str) -> String {
        let path = self.path(name);
        if let Some(parent) = std::path::Path::new(&path).parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::os::unix::fs::symlink(to, &path).unwrap();
        path
    }
}

/// The test rows of one class: one `#[test]` per row, and the list of their names.
macro_rules! rows {
    ($class:ident { $( $(#[doc = $doc:expr])+ $name:ident => $body:expr; )* }) => {
        mod $class {
            #[allow(clippy::wildcard_imports, unused_imports)]
            use super::*;
            $(
                $(#[doc = $doc])+
                #[test]
                fn $name() {
                    let case: Case = $body;
                    case.run();
                }
            )*
            /// This class's rows.
            pub(super) const ROWS: &[&str] = &[$(stringify!($name)),*];
        }
    };
}

/// A real Redis requiring `password`, with AUTH and HELLO disabled, so that its error quotes
/// the password the probe sends (`ERR unknown command 'AUTH', with args beginning with: ...`).
fn quoting_redis(password: &str) -> RedisServer {
    RedisServer::builder()
        .requirepass(password)
        .disable_command("AUTH")
        .disable_command("HELLO")
        .start()
}

fn nats_monitor() -> (NatsServer, String) {
    let nats = NatsServer::builder().monitor().start();
    let base = format!("127.0.0.1:{}", nats.monitor_port().unwrap());
    (nats, base)
}

rows!(secrets {
    /// A base64 password with `/`, `+`, `=` pasted unencoded in a redis URL: not a valid URL as
    /// written, so a config error that names the scheme and never the text.
    b64_password_unencoded_in_redis_url => {
        let redis = RedisServer::builder().requirepass(&b64()).start();
        probe("1s", &[format!("redis://:{}@{}", b64(), redis.addr())]).says("redis").keep(redis)
    };
    /// `+` and `=` are valid in userinfo: the password works as written and is not printed.
    b64_plus_equals_password_in_redis_url_is_healthy => {
        let c = canary();
        let pw = format!("{c}+{c}=");
        let redis = RedisServer::builder().requirepass(&pw).start();
        probe("2s", &[format!("redis://:{pw}@{}", redis.addr())]).healthy().keep(redis)
    };
    /// The same base64 password percent-encoded (the documented way): healthy, not printed.
    b64_password_encoded_in_redis_url_is_healthy => {
        let redis = RedisServer::builder().requirepass(&b64()).start();
        let encoded = b64().replace('/', "%2F").replace('+', "%2B").replace('=', "%3D");
        probe("2s", &[format!("redis://:{encoded}@{}", redis.addr())]).healthy().keep(redis)
    };
    /// A base64 password in REDIS_PASSWORD needs no encoding: healthy.
    b64_password_in_env_is_healthy => {
        let redis = RedisServer::builder().requirepass(&b64()).start();
        probe("2s", &[format!("redis://{}", redis.addr())]).env("REDIS_PASSWORD", b64()).healthy().keep(redis)
    };
    /// A base64 NATS token from NATS_TOKEN_FILE (with its trailing newline): healthy.
    b64_token_file_is_healthy => {
        let nats = NatsServer::builder().token(&b64()).start();
        let files = Files::new();
        let f = files.write("token", format!("{}\n", b64()));
        probe("2s", &[nats.url()]).env("NATS_TOKEN_FILE", f).healthy().keep(nats).keep(files)
    };
    /// A base64 NATS token percent-encoded in the URL: healthy.
    b64_token_encoded_in_nats_url_is_healthy => {
        let nats = NatsServer::builder().token(&b64()).start();
        let encoded = b64().replace('/', "%2F").replace('+', "%2B").replace('=', "%3D");
        probe("2s", &[format!("nats://{encoded}@{}", nats.addr())]).healthy().keep(nats)
    };
    /// A base64 NATS token with `/` unencoded: a config error, the token never printed.
    b64_token_unencoded_in_nats_url => {
        let nats = NatsServer::builder().token(&b64()).start();
        probe("1s", &[format!("nats://{}@{}", b64(), nats.addr())]).says("nats").keep(nats)
    };
    /// NATS user and a `+`/`=` password: healthy, password not printed.
    b64_plus_equals_nats_password_is_healthy => {
        let c = canary();
        let pw = format!("{c}+{c}=");
        let nats = NatsServer::builder().user("probe", &pw).start();
        probe("2s", &[format!("nats://probe:{pw}@{}", nats.addr())]).healthy().keep(nats)
    };
    /// `http://user:pw/with/slash@host/`: not host `user`, port `pw`; a config error, no secret.
    http_password_with_slash_is_not_host_and_port => {
        let (nats, base) = nats_monitor();
        probe("1s", &[format!("http://user:{}/with/slash@{base}/healthz", canary())])
            .says("http").keep(nats)
    };
    /// A base64 HTTP basic-auth password with `/` unencoded.
    b64_password_unencoded_in_http_url => {
        let (nats, base) = nats_monitor();
        probe("1s", &[format!("http://probe:{}@{base}/healthz", b64())]).says("http").keep(nats)
    };
    /// `NATS://` in capitals is NATS: healthy with the right token, and the token redacted.
    scheme_upper_nats_token_is_healthy => {
        let nats = NatsServer::builder().token(canary()).start();
        probe("2s", &[format!("NATS://{}@{}", canary(), nats.addr())]).healthy().keep(nats)
    };
    /// `Redis://` is Redis: healthy, password redacted.
    scheme_mixed_redis_password_is_healthy => {
        let redis = RedisServer::builder().requirepass(canary()).start();
        probe("2s", &[format!("Redis://:{}@{}", canary(), redis.addr())]).healthy().keep(redis)
    };
    /// `HTTP://` with basic auth against a real endpoint: healthy, password redacted.
    scheme_upper_http_basic_auth_is_healthy => {
        let (nats, base) = nats_monitor();
        probe("2s", &[format!("HTTP://probe:{}@{base}/healthz", canary())]).healthy().keep(nats)
    };
    /// `REDIS://` to a refused port: the reason prints the target, redacted.
    scheme_upper_redis_refused => probe("1s", &[format!("REDIS://:{}@{}", canary(), dead())]).says("refused");
    /// `NaTs://user:pw@` to a refused port.
    scheme_mixed_nats_user_password_refused => probe("1s", &[format!("NaTs://probe:{}@{}", canary(), dead())]).says("refused");
    /// `TLS://TOKEN@` to a refused port.
    scheme_upper_tls_token_refused => probe("1s", &[format!("TLS://{}@{}", canary(), dead())]).says("refused");
    /// `REDISS://` to a refused port.
    scheme_upper_rediss_refused => probe("1s", &[format!("REDISS://:{}@{}", canary(), dead())]).says("refused");
    /// `HTTPS://...?access_token=` to a refused port.
    scheme_upper_https_query_token_refused => probe("1s", &[format!("HTTPS://{}/h?access_token={}", dead(), canary())]).says("refused");
    /// An unknown option on an upper-case NATS URL with a token: config error naming the option.
    scheme_upper_nats_unknown_option => probe("1s", &[format!("NATS://{}@127.0.0.1:4222?colour=red", canary())]).says("colour");
    /// A real redis-server with AUTH disabled quotes the password from the URL in its error.
    real_redis_quotes_url_password => {
        let redis = quoting_redis(&b64());
        probe("1s", &[format!("redis://:{}@{}", canary(), redis.addr())]).says("unknown command").keep(redis)
    };
    /// ... the password from REDIS_PASSWORD (base64 shaped).
    real_redis_quotes_env_password => {
        let redis = quoting_redis("x");
        probe("1s", &[format!("redis://{}", redis.addr())]).env("REDIS_PASSWORD", b64())
            .says("unknown command").keep(redis)
    };
    /// ... an ACL user's password from `password_file=`.
    real_redis_quotes_file_password_with_user => {
        let redis = quoting_redis("x");
        let files = Files::new();
        let f = files.write("pw", format!("{}\n", b64()));
        probe("1s", &[format!("redis://probe@{}?password_file={f}", redis.addr())])
            .says("unknown command").keep(redis).keep(files)
    };
    /// ... a long password, of which redis-server quotes only the first 128 bytes.
    real_redis_quotes_prefix_of_long_password => {
        let redis = quoting_redis("x");
        let long = canary().repeat(12);
        probe("1s", &[format!("redis://{}", redis.addr())]).env("REDIS_PASSWORD", long)
            .says("unknown command").keep(redis)
    };
    /// ... the ready-signal store's password (READY_SIGNAL_REDIS_URL).
    real_redis_quotes_ready_store_password => {
        let redis = quoting_redis("x");
        probe("1s", &["ready://worker".to_string()])
            .env("READY_SIGNAL_REDIS_URL", format!("redis://:{}@{}", canary(), redis.addr()))
            .keep(redis)
    };
    /// FAKE NATS quoting the CONNECT line: the URL's token comes back in `-ERR`.
    nats_err_quotes_connect_token => {
        let fake = FakePeer::nats_quoting_connect();
        probe("1s", &[format!("nats://{}@{}", canary(), fake.addr())]).says(fake.addr().to_string()).keep(fake)
    };
    /// ... NATS_USER and NATS_PASSWORD (base64 shaped).
    nats_err_quotes_connect_user_password => {
        let fake = FakePeer::nats_quoting_connect();
        probe("1s", &[format!("nats://{}", fake.addr())]).env("NATS_USER", "probe")
            .env("NATS_PASSWORD", b64()).keep(fake)
    };
    /// ... a token from `token_file=`.
    nats_err_quotes_connect_token_file => {
        let fake = FakePeer::nats_quoting_connect();
        let files = Files::new();
        let f = files.write("token", canary());
        probe("1s", &[format!("nats://{}?token_file={f}", fake.addr())]).keep(fake).keep(files)
    };
    /// FAKE Redis quoting every byte it receives, the password included, without a length limit.
    redis_err_quotes_everything => {
        let fake = FakePeer::redis_quoting_everything();
        probe("1s", &[format!("redis://probe:{}@{}", b64(), fake.addr())]).keep(fake)
    };
    /// FAKE Redis quoting a password that came from a `${VAR}` expansion.
    redis_err_quotes_expanded_password => {
        let fake = FakePeer::redis_quoting_everything();
        probe("1s", &[format!("redis://:${{HC_PW}}@{}", fake.addr())]).env("HC_PW", canary()).keep(fake)
    };
    /// An `access_token=` query value on a 503: the status is said, the token is not.
    http_query_access_token_on_503 => {
        let fake = http_status("503 Service Unavailable");
        probe("1s", &[format!("http://{}/health?access_token={}", fake.addr(), canary())]).says("503").keep(fake)
    };
    /// An `api_key=` query value on a real 404.
    http_query_api_key_on_real_404 => {
        let (nats, base) = nats_monitor();
        probe("1s", &[format!("http://{base}/nope?api_key={}", canary())]).says("404").keep(nats)
    };
    /// A `sig=` query value on a healthy endpoint: the healthy line does not print it either.
    http_query_sig_on_healthy_endpoint => {
        let (nats, base) = nats_monitor();
        probe("2s", &[format!("http://{base}/healthz?sig={}&v=1", canary())]).healthy().keep(nats)
    };
    /// Any query value (here `session=`) is redacted: the probe cannot know it is harmless.
    http_query_arbitrary_value_refused => probe("1s", &[format!("http://{}/h?session={}", dead(), canary())]).says("refused");
    /// A path segment that came from `${VAR}` is not printed (real 404).
    http_path_segment_from_env_on_404 => {
        let (nats, base) = nats_monitor();
        probe("1s", &[format!("http://{base}/${{HC_SEG}}/healthz")]).env("HC_SEG", canary()).says("404").keep(nats)
    };
    /// ... nor when the connection is refused.
    http_path_segment_from_env_refused => probe("1s", &[format!("http://{}/v1/${{HC_SEG}}", dead())]).env("HC_SEG", canary()).says("refused");
    /// A redirect whose `Location` carries a code in its query: printed as scheme+host+path.
    http_redirect_location_query_secret => {
        let fake = FakePeer::replying(format!("HTTP/1.1 302 Found\r\nlocation: http://login.example/cb?code={}&state=1\r\ncontent-length: 0\r\n\r\n", canary()).as_bytes());
        probe("1s", &[format!("http://{}/", fake.addr())]).says("302").says("login.example").keep(fake)
    };
    /// A redirect whose `Location` carries userinfo.
    http_redirect_location_userinfo_secret => {
        let fake = FakePeer::replying(format!("HTTP/1.1 307 Temporary Redirect\r\nlocation: https://u:{}@elsewhere.example/next\r\ncontent-length: 0\r\n\r\n", canary()).as_bytes());
        probe("1s", &[format!("http://{}/", fake.addr())]).says("307").keep(fake)
    };
    /// `redis:/:pw@h` (one slash): not echoed.
    mistyped_redis_one_slash => probe("1s", &[format!("redis:/:{}@127.0.0.1:6379", canary())]).says("redis");
    /// `redis::pw@h` (no slashes).
    mistyped_redis_no_slashes => probe("1s", &[format!("redis::{}@127.0.0.1:6379", canary())]).says("redis");
    /// `nats//token@h` (no colon).
    mistyped_nats_no_colon => probe("1s", &[format!("nats//{}@127.0.0.1:4222", canary())]);
    /// `http:// user:pw@h` (a space after the scheme).
    mistyped_http_space => probe("1s", &[format!("http:// probe:{}@127.0.0.1/", canary())]).says("http");
    /// A config file whose target is a base64 password unencoded, scheme in capitals.
    config_file_b64_password_unencoded => {
        let files = Files::new();
        let f = files.write("hc.toml", format!("targets = [\"Redis://:{}@127.0.0.1:6379\"]\n", b64()));
        probe("1s", &[]).arg(f).arg("--config").keep(files)
    };
    /// HEALTHCHECK_TARGETS with a mistyped URL and an upper-case scheme.
    healthcheck_targets_env_mistyped => probe("1s", &[])
        .env("HEALTHCHECK_TARGETS", format!("redis:/:{c}@h:1 NATS://{c}@{}", dead(), c = canary()));
    /// `--format json` with a target that does not parse: JSON, kind config, no secret.
    json_config_error_with_secret => probe("1s", &[format!("redis://:{}@h:1", b64())]).json().kind("config");
    /// An `nkey_file=` holding something that is not a seed (the canary): not quoted.
    nats_nkey_file_not_a_seed => {
        let fake = FakePeer::nats_quoting_connect();
        let files = Files::new();
        let f = files.write("seed", format!("SUA{}\n", canary()));
        probe("1s", &[format!("nats://{}?nkey_file={f}", fake.addr())]).keep(fake).keep(files)
    };
    /// A `creds_file=` that is not a creds file (a JWT-looking canary): not quoted.
    nats_creds_file_not_creds => {
        let fake = FakePeer::nats_quoting_connect();
        let files = Files::new();
        let f = files.write("user.creds", format!("-----BEGIN NATS USER JWT-----\n{c}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\nSUA{c}\n------END USER NKEY SEED------\n", c = canary()));
        probe("1s", &[format!("nats://{}?creds_file={f}", fake.addr())]).keep(fake).keep(files)
    };
    /// A relative redirect (followed: same host) whose query carries a token, back to itself:
    /// the loop is reported, the token is not.
    http_relative_redirect_query_secret => {
        let fake = FakePeer::replying(format!("HTTP/1.1 302 Found\r\nlocation: /login?next=%2F&token={}\r\ncontent-length: 0\r\n\r\n", canary()).as_bytes());
        probe("1s", &[format!("http://{}/", fake.addr())]).says("redirect").keep(fake)
    };
    /// `wait` on ready:// with the store's password and the NATS token in their URLs (refused).
    wait_ready_store_and_nats_credentials => wait("1s", &["ready://worker".to_string()])
        .env("READY_SIGNAL_REDIS_URL", format!("redis://:{}@{}", b64().replace('/', "%2F"), dead()))
        .env("READY_SIGNAL_NATS_URL", format!("nats://{}@{}", canary(), dead()));
    /// A healthy Redis with a password, in JSON: the `target` field is redacted too.
    json_healthy_target_with_password => {
        let redis = RedisServer::builder().requirepass(canary()).start();
        probe("2s", &[format!("redis://:{}@{}", canary(), redis.addr())]).json().healthy().keep(redis)
    };
    /// An ACL user whose password (from REDIS_PASSWORD) is wrong: WRONGPASS, password not quoted.
    redis_acl_user_wrong_env_password => {
        let redis = RedisServer::builder().requirepass("x").acl_user("probe", "the-real-one", "~* +@all").start();
        probe("1s", &[format!("redis://probe@{}", redis.addr())]).env("REDIS_PASSWORD", b64()).says("WRONGPASS").keep(redis)
    };
    /// `wait` with a target that does not parse: stops at once, no secret.
    wait_config_error_with_secret => wait("1s", &[format!("redis:/:{}@127.0.0.1:6379", canary())]);
});

/// A ready-signal record directory `dir/faults/worker/r1.json` made by `make` (a FIFO, a link
/// to /dev/zero...), and the probe that reads it with the file backend.
fn record_file(make: impl FnOnce(&Files, &str) -> String) -> Case {
    let files = Files::new();
    let dir = files.dir("records");
    let record = make(&files, "records/faults/worker/r1.json");
    probe("1s", &["ready://worker?replica=r1".to_string()])
        .env("READY_SIGNAL_DIR", dir)
        .env("READY_SIGNAL_NAMESPACE", "faults")
        .says(record)
        .keep(files)
}

rows!(never_exits {
    /// `password_file=` is a FIFO with no writer: refused at once, naming the file.
    redis_password_file_fifo => {
        let files = Files::new();
        let f = files.fifo("pw");
        let target = format!("redis://{}?password_file={f}", dead());
        probe("1s", std::slice::from_ref(&target)).reason_names(target, &f).keep(files)
    };
    /// REDIS_PASSWORD_FILE is /dev/zero: not read until memory runs out.
    redis_password_file_env_dev_zero => probe("1s", &[format!("redis://{}", dead())])
        .env("REDIS_PASSWORD_FILE", "/dev/zero").says("/dev/zero").rss();
    /// `password_file=` is a 100 MB file: too big for a secret, a clear error, quickly.
    redis_password_file_huge => {
        let files = Files::new();
        let f = files.huge("pw", 100 << 20);
        let target = format!("redis://{}?password_file={f}", dead());
        probe("1s", std::slice::from_ref(&target)).reason_names(target, &f).rss().keep(files)
    };
    /// `token_file=` is a directory.
    nats_token_file_directory => {
        let files = Files::new();
        let d = files.dir("token.d");
        let target = format!("nats://{}?token_file={d}", dead());
        probe("1s", std::slice::from_ref(&target)).reason_names(target, &d).keep(files)
    };
    /// NATS_TOKEN_FILE is a FIFO.
    nats_token_file_env_fifo => {
        let files = Files::new();
        let f = files.fifo("token");
        probe("1s", &[format!("nats://{}", dead())]).env("NATS_TOKEN_FILE", &f).says(&f).keep(files)
    };
    /// NATS_PASSWORD_FILE is /dev/zero (with NATS_USER).
    nats_password_file_env_dev_zero => probe("1s", &[format!("nats://{}", dead())])
        .env("NATS_USER", "probe").env("NATS_PASSWORD_FILE", "/dev/zero").says("/dev/zero").rss();
    /// `creds_file=` is a FIFO.
    nats_creds_file_fifo => {
        let files = Files::new();
        let f = files.fifo("user.creds");
        let target = format!("nats://{}?creds_file={f}", dead());
        probe("1s", std::slice::from_ref(&target)).reason_names(target, &f).keep(files)
    };
    /// `nkey_file=` is /dev/zero.
    nats_nkey_file_dev_zero => {
        let target = format!("nats://{}?nkey_file=/dev/zero", dead());
        probe("1s", std::slice::from_ref(&target)).reason_names(target, "/dev/zero").rss()
    };
    /// `ca_file=` of a rediss target is a FIFO.
    rediss_ca_file_fifo => {
        let files = Files::new();
        let f = files.fifo("ca.pem");
        // A peer that accepts, so the CA file is needed (a refused port would never read it).
        let peer = FakePeer::silent();
        let target = format!("rediss://{}?ca_file={f}", peer.addr());
        probe("1s", std::slice::from_ref(&target)).reason_names(target, &f).keep(files).keep(peer)
    };
    /// `ca_file=` of an https target is /dev/zero.
    https_ca_file_dev_zero => {
        let peer = FakePeer::silent();
        let target = format!("https://{}/?ca_file=/dev/zero", peer.addr());
        probe("1s", std::slice::from_ref(&target)).reason_names(target, "/dev/zero").rss().keep(peer)
    };
    /// `ca_file=` of a tls:// NATS target is a 100 MB file.
    tls_ca_file_huge => {
        let files = Files::new();
        let f = files.huge("ca.pem", 100 << 20);
        // A NATS server that asks for TLS in its INFO, so the CA file is needed.
        let info = String::from_utf8_lossy(harness::fake::NATS_INFO)
            .replace("\"headers\"", "\"tls_required\":true,\"headers\"");
        let peer = FakePeer::greeting(info.as_bytes());
        let target = format!("tls://{}?ca_file={f}", peer.addr());
        probe("1s", std::slice::from_ref(&target)).reason_names(target, &f).rss().keep(files).keep(peer)
    };
    /// `--config` is a FIFO.
    config_fifo => {
        let files = Files::new();
        let f = files.fifo("hc.toml");
        probe("1s", &[]).arg(&f).arg("--config").says(&f).keep(files)
    };
    /// `--config /dev/zero`.
    config_dev_zero => probe("1s", &[]).arg("/dev/zero").arg("--config").says("/dev/zero").rss();
    /// HEALTHCHECK_CONFIG is a directory.
    config_env_directory => {
        let files = Files::new();
        let d = files.dir("conf.d");
        probe("1s", &[]).env("HEALTHCHECK_CONFIG", &d).says(&d).keep(files)
    };
    /// `wait --config FIFO`: the wait's deadline holds too.
    wait_config_fifo => {
        let files = Files::new();
        let f = files.fifo("hc.toml");
        let args = ["wait", "--timeout", "1s", "--config", &f, "--", "true"];
        Case::new(args.map(String::from).to_vec(), "1s").says(&f).keep(files)
    };
    /// `wait` with `password_file=/dev/zero`.
    wait_password_file_dev_zero => {
        let target = format!("redis://{}?password_file=/dev/zero", dead());
        wait("1s", std::slice::from_ref(&target)).reason_names(target, "/dev/zero").rss()
    };
    /// READY_SIGNAL_REDIS_PASSWORD_FILE is a FIFO.
    ready_store_password_file_fifo => {
        let files = Files::new();
        let f = files.fifo("store-pw");
        probe("1s", &["ready://worker".to_string()])
            .env("READY_SIGNAL_REDIS_URL", format!("redis://{}", dead()))
            .env("READY_SIGNAL_REDIS_PASSWORD_FILE", &f).says(&f).keep(files)
    };
    /// READY_SIGNAL_NATS_TOKEN_FILE is /dev/zero.
    ready_nats_token_file_dev_zero => probe("1s", &["ready://worker".to_string()])
        .env("READY_SIGNAL_REDIS_URL", format!("redis://{}", dead()))
        .env("READY_SIGNAL_NATS_URL", format!("nats://{}", dead()))
        .env("READY_SIGNAL_NATS_TOKEN_FILE", "/dev/zero").says("/dev/zero").rss();
    /// The agent's record file (file backend) is a FIFO.
    ready_record_file_fifo => record_file(|f, p| f.fifo(p));
    /// The agent's record file is a link to /dev/zero.
    ready_record_file_dev_zero => record_file(|f, p| f.link(p, "/dev/zero")).rss();
    /// The agent's record file is 100 MB.
    ready_record_file_huge => record_file(|f, p| {
        f.dir("records/faults/worker");
        f.huge(p, 100 << 20)
    }).rss();
    /// `password_file=` is a symbolic link to itself (ELOOP): an error at once, naming it.
    password_file_symlink_loop => {
        let files = Files::new();
        let f = files.path("loop");
        std::os::unix::fs::symlink(&f, &f).unwrap();
        let target = format!("redis://{}?password_file={f}", dead());
        probe("1s", std::slice::from_ref(&target)).reason_names(target, &f).keep(files)
    };
    /// READY_SIGNAL_REDIS_PASSWORD_FILE is /dev/urandom.
    ready_store_password_file_dev_urandom => probe("1s", &["ready://worker".to_string()])
        .env("READY_SIGNAL_REDIS_URL", format!("redis://{}", dead()))
        .env("READY_SIGNAL_REDIS_PASSWORD_FILE", "/dev/urandom").says("/dev/urandom").rss();
    /// Stdout is a full pipe nobody reads: a healthy verdict is still exit 0, on time.
    stdout_full_pipe_healthy => {
        let redis = RedisServer::start();
        probe("1s", &[redis.url()]).healthy().stdout(Stdout::Full).keep(redis)
    };
    /// Stdout is a full pipe nobody reads: an unhealthy verdict is still exit 1, on time.
    stdout_full_pipe_unhealthy_json => probe("1s", &[format!("redis://{}", dead())]).stdout(Stdout::Full).arg("json").arg("--format");
    /// Stdout is closed: a healthy verdict stays exit 0, with no panic.
    stdout_closed_healthy => {
        let redis = RedisServer::start();
        probe("1s", &[redis.url()]).healthy().stdout(Stdout::Closed).keep(redis)
    };
    /// Stdout's reader is gone (EPIPE): a healthy verdict stays exit 0.
    stdout_broken_pipe_healthy => {
        let redis = RedisServer::start();
        probe("1s", &[redis.url()]).healthy().stdout(Stdout::Broken).keep(redis)
    };
    /// `wait` with stderr closed: the command still runs, its status comes back (0).
    wait_stderr_closed_healthy => {
        let redis = RedisServer::start();
        wait("2s", &[redis.url()]).healthy().stderr(Stdout::Closed).keep(redis)
    };
    /// `wait` timing out with stderr a full pipe nobody reads: exit 1 on time.
    wait_stderr_full_pipe_timeout => wait("1s", &[format!("redis://{}", dead())]).stderr(Stdout::Full);
    /// `wait` with a broken stderr and a bad target: exit 1, at once.
    wait_stderr_broken_config_error => wait("1s", &["mysql://db".to_string()]).stderr(Stdout::Broken);
    /// Both stdout and stderr closed, unhealthy: exit 1.
    stdout_and_stderr_closed_unhealthy => probe("1s", &[format!("redis://{}", dead())])
        .stdout(Stdout::Closed).stderr(Stdout::Closed);
    /// Stdout is closed and the config is bad: still exit 1, no panic.
    stdout_closed_config_error => probe("1s", &["mysql://db".to_string()]).stdout(Stdout::Closed);
});

/// A ready record written with the crate's script into `conn` (interval 10 s, TTL 60 s: fresh).
fn fresh_ready_record(conn: &mut redis::Connection) {
    assert_eq!(
        write_record(conn, NEW_INSTANCE, "ready", "", 10_000, 60_000),
        1
    );
}

/// A listener whose accept backlog is full (the test's own connections fill it): the kernel
/// drops further SYNs, so a connect hangs. Returns the listener and the connections holding it.
fn full_backlog() -> (std::net::TcpListener, Vec<std::net::TcpStream>) {
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = hole.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..4096 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Ok(s) => held.push(s),
            Err(_) => return (hole, held),
        }
    }
    panic!("the backlog of {addr} never filled");
}

rows!(timeouts {
    /// A real nats-server paused until 5.5 s after the probe started, under `--timeout 8s`:
    /// healthy (no library timeout of 5 s ends the check first).
    nats_answering_at_5_5s_under_8s => {
        let nats = NatsServer::start();
        nats.pause();
        let pid = nats.pid();
        probe("8s", &[nats.url()]).healthy().resume_after(Duration::from_millis(5500), pid).keep(nats)
    };
    /// The ready-signal store (a real Redis) paused until 2.5 s, under `--timeout 5s`: healthy.
    ready_store_answering_at_2_5s_under_5s => {
        let (server, mut conn) = ready_store();
        fresh_ready_record(&mut conn);
        server.pause();
        let pid = server.pid();
        probe("5s", &[format!("ready://{AGENT}?replica={REPLICA}")])
            .env("READY_SIGNAL_NAMESPACE", NS)
            .env("READY_SIGNAL_REDIS_URL", format!("redis://:{}@{}", canary(), server.addr()))
            .healthy().resume_after(Duration::from_millis(2500), pid).keep(server)
    };
    /// A real Redis paused until 2.5 s, under `--timeout 5s`: healthy.
    redis_answering_at_2_5s_under_5s => {
        let redis = RedisServer::builder().requirepass(canary()).start();
        redis.pause();
        let pid = redis.pid();
        probe("5s", &[format!("redis://:{}@{}", canary(), redis.addr())])
            .healthy().resume_after(Duration::from_millis(2500), pid).keep(redis)
    };
    /// `wait --timeout 3s` on a peer that never answers: ends at 3 s, says 3s (not 60s, not 2s)
    /// and where it hung.
    wait_on_silent_peer_reports_true_timeout => {
        let fake = FakePeer::silent();
        wait("3s", &[format!("redis://{}", fake.addr())]).says("3s").says(fake.addr().to_string())
            .check(|out| out.contains("60s").then(|| "says 60s".to_string()))
            .check(|out| out.contains("after 2s").then(|| "blames a 2 s attempt cap".to_string()))
            .check(|out| out.contains("connecting").then(|| "blames connecting: TCP had connected".to_string()))
            .keep(fake)
    };
    /// `wait` against a real Redis with a wrong password gives up at once (auth will not fix
    /// itself), well before its 10 s timeout.
    wait_gives_up_at_once_on_auth => {
        let redis = RedisServer::builder().requirepass("the-real-password").start();
        let args = ["wait", "--timeout", "10s", &format!("redis://:{}@{}", canary(), redis.addr()), "--", "true"];
        Case::new(args.map(String::from).to_vec(), "1s").says("WRONGPASS").keep(redis)
    };
    /// `wait` against a real NATS refusing the token gives up at once.
    wait_gives_up_at_once_on_nats_auth => {
        let nats = NatsServer::builder().token("the-real-token").start();
        let args = ["wait", "--timeout", "10s", &format!("nats://{}@{}", canary(), nats.addr()), "--", "true"];
        Case::new(args.map(String::from).to_vec(), "1s").keep(nats)
    };
    /// `wait` with an unknown option gives up at once.
    wait_gives_up_at_once_on_config => {
        let args = ["wait", "--timeout", "10s", "redis://127.0.0.1:6379?colour=red", "--", "true"];
        Case::new(args.map(String::from).to_vec(), "1s").says("colour")
    };
    /// HTTPS to a peer that accepts and never answers: ends at the deadline, in the tls phase.
    https_silent_peer_phase_tls => {
        let fake = FakePeer::silent();
        probe("1s", &[format!("https://{}/", fake.addr())]).json().kind("timeout").phase("tls").keep(fake)
    };
    /// A listener whose backlog is full drops the SYN: the connect itself hangs; the probe ends
    /// at its deadline and says the phase was connect.
    connect_to_full_backlog_phase_connect => {
        let (hole, held) = full_backlog();
        probe("1s", &[format!("tcp://{}", hole.local_addr().unwrap())]).json().kind("timeout").phase("connect").keep(hole).keep(held)
    };
    /// The same for a Redis target.
    redis_connect_to_full_backlog_phase_connect => {
        let (hole, held) = full_backlog();
        probe("1s", &[format!("redis://{}", hole.local_addr().unwrap())]).json().kind("timeout").phase("connect").keep(hole).keep(held)
    };
    /// `--timeout` of 2^64-1 seconds: a config error or a probe that ends, never a panic.
    timeout_overflowing => probe("18446744073709551615s", &[format!("tcp://{}", dead())]).deadline_of("1s");
    /// `wait --timeout` of 2^64-1 seconds, against a peer refusing auth (gives up at once).
    wait_timeout_overflowing => {
        let redis = RedisServer::builder().requirepass("the-real-password").start();
        wait("18446744073709551615s", &[format!("redis://:{}@{}", canary(), redis.addr())]).deadline_of("1s").keep(redis)
    };
    /// `--timeout 1ns`: the probe ends at once, unhealthy, no panic.
    timeout_one_nanosecond => probe("1ns", &[format!("redis://{}", dead())]).deadline_of("1s");
    /// `--timeout -1`: a config error.
    timeout_negative => Case::new(["--timeout", "-1", "tcp://a:1"].map(String::from).to_vec(), "1s");
    /// HEALTHCHECK_TIMEOUT of 1e300 seconds: a config error, no panic.
    timeout_env_huge => probe("1s", &[format!("tcp://{}", dead())]).env("HEALTHCHECK_TIMEOUT", "1e300")
        .no_timeout_flag();
    /// `wait` on a name that does not resolve: the reason says resolving it.
    wait_dns_reason => wait("1s", &[format!("tcp://{NOWHERE}:80")]).says("resolving").says(NOWHERE);
    /// A Redis whose `+PONG` arrives one byte every 150 ms (about 1 s): healthy under 3 s.
    redis_trickled_pong_is_healthy => {
        let fake = FakePeer::trickling(b"+PONG\r\n", Duration::from_millis(150));
        probe("3s", &[format!("redis://{}", fake.addr())]).healthy().keep(fake)
    };
    /// An HTTP 200 arriving one byte every 20 ms (about 1 s): healthy under 3 s.
    http_trickled_response_is_healthy => {
        let fake = FakePeer::trickling(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", Duration::from_millis(20));
        probe("3s", &[format!("http://{}/health?body=ok", fake.addr())]).healthy().keep(fake)
    };
    /// A 200 with an endless body, status only: healthy (the body is not the check).
    http_200_endless_body_status_only_is_healthy => {
        let fake = FakePeer::http_endless_body();
        probe("2s", &[format!("http://{}/health", fake.addr())]).healthy().rss().keep(fake)
    };
    /// An 8 kB password in a file authenticates against a real Redis (which itself refuses
    /// bulk strings over 16 kB before authentication).
    large_password_file_is_healthy => {
        let pw = canary().repeat(8_000 / canary().len());
        let redis = RedisServer::builder().requirepass(&pw).start();
        let files = Files::new();
        let f = files.write("pw", format!("{pw}\n"));
        probe("2s", &[format!("redis://{}?password_file={f}", redis.addr())]).healthy().keep(redis).keep(files)
    };
    /// `wait --timeout 2s` on a paused real Redis: names the address.
    wait_on_paused_redis_names_address => {
        let redis = RedisServer::start();
        redis.pause();
        wait("2s", &[redis.url()]).says(redis.addr().to_string()).keep(redis)
    };
    /// A real NATS paused for good, `--timeout 3s`: ends at 3 s with our reason, not the library's.
    nats_paused_for_good_under_3s => {
        let nats = NatsServer::start();
        nats.pause();
        probe("3s", &[nats.url()]).json().kind("timeout").phase_not(&["resolve", "connect"])
            .says(nats.addr().to_string()).keep(nats)
    };
});

/// A Redis-shaped peer streaming `head` then `chunk` for ever, probed with a 2 s deadline.
fn endless_redis(head: &[u8], chunk: &[u8]) -> Case {
    let fake = FakePeer::streaming(head, chunk);
    probe("2s", &[format!("redis://{}", fake.addr())])
        .rss()
        .says(fake.addr().to_string())
        .keep(fake)
}

fn endless_http(head: &[u8], chunk: &[u8], path: &str) -> Case {
    let fake = FakePeer::streaming(head, chunk);
    probe("2s", &[format!("http://{}{path}", fake.addr())])
        .rss()
        .keep(fake)
}

rows!(memory {
    /// A Redis reply that is a 1 GB bulk string, streamed for ever.
    redis_endless_bulk_string => endless_redis(b"$1073741824\r\n", &[b'x'; 65536]);
    /// A Redis simple string with no end of line.
    redis_endless_simple_string => endless_redis(b"+", &[b'x'; 65536]);
    /// A Redis error line with no end of line.
    redis_endless_error_line => endless_redis(b"-ERR ", &[b'x'; 65536]);
    /// A Redis array of two billion integers.
    redis_endless_array => endless_redis(b"*2147483647\r\n", &b":1\r\n".repeat(16384));
    /// A Redis array nested for ever.
    redis_endless_nesting => endless_redis(b"*2\r\n", &b"*2\r\n".repeat(16384));
    /// A NATS INFO line that never ends.
    nats_endless_info => {
        let fake = FakePeer::streaming_at_accept(b"INFO {\"server_id\":\"", &[b'x'; 65536]);
        probe("2s", &[format!("nats://{}", fake.addr())]).rss().says(fake.addr().to_string()).keep(fake)
    };
    /// A NATS `-ERR` line after CONNECT that never ends.
    nats_endless_err => {
        let fake = FakePeer::nats_endless_error();
        probe("2s", &[format!("nats://{}", fake.addr())]).rss().says(fake.addr().to_string()).keep(fake)
    };
    /// An HTTP header line that never ends.
    http_endless_header_line => endless_http(b"HTTP/1.1 200 OK\r\nx-junk: ", &[b'x'; 65536], "/");
    /// HTTP headers that never end.
    http_endless_headers => endless_http(b"HTTP/1.1 200 OK\r\n", &b"x-a: b\r\n".repeat(8192), "/");
    /// An HTTP status line that never ends.
    http_endless_status_line => endless_http(b"HTTP/1.1 200 ", &[b'x'; 65536], "/");
    /// An endless chunked body searched for a text that is not there.
    http_endless_chunked_body_search => endless_http(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        &[b"10000\r\n".as_slice(), &[b'x'; 65536], b"\r\n"].concat(),
        "/health?body=needle",
    );
    /// A Redis array of 60 kB bulk strings, for ever (each element under any per-reply bound).
    redis_endless_array_of_large_strings => endless_redis(
        b"*2147483647\r\n",
        &[b"$60000\r\n".as_slice(), &[b'x'; 60000], b"\r\n"].concat(),
    );
    /// A NATS server that sends PING after PING, for ever, after its INFO.
    nats_endless_pings => {
        let info = harness::fake::NATS_INFO;
        let fake = FakePeer::streaming_at_accept(info, &b"PING\r\n".repeat(8192));
        probe("2s", &[format!("nats://{}", fake.addr())]).rss().keep(fake)
    };
    /// HTTP `100 Continue` answers, for ever.
    http_endless_informational_responses => endless_http(b"", &b"HTTP/1.1 100 Continue\r\n\r\n".repeat(2048), "/");
    /// A TLS handshake answered with endless garbage.
    rediss_endless_garbage_handshake => {
        let fake = FakePeer::streaming(b"", &[0x16; 65536]);
        probe("2s", &[format!("rediss://{}", fake.addr())]).rss().says(fake.addr().to_string()).keep(fake)
    };
    /// A RESP3 map of two billion entries.
    redis_endless_map => endless_redis(b"%2147483647\r\n", &b"+a\r\n+b\r\n".repeat(8192));
    /// An HTTP chunk announcing 2^64-1 bytes, then streaming.
    http_chunk_of_huge_size => endless_http(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffff\r\n",
        &[b'x'; 65536],
        "/health?body=needle",
    );
    /// The ready-signal store streams an endless reply.
    ready_store_endless_reply => {
        let fake = FakePeer::streaming(b"$1073741824\r\n", &[b'x'; 65536]);
        probe("2s", &["ready://worker".to_string()])
            .env("READY_SIGNAL_REDIS_URL", format!("redis://{}", fake.addr())).rss().keep(fake)
    };
    /// The ready-signal store on a Cluster whose seed answers CLUSTER SLOTS with an endless array.
    ready_cluster_seed_endless_reply => {
        let fake = FakePeer::streaming(b"*2147483647\r\n", &b":1\r\n".repeat(16384));
        probe("2s", &["ready://worker".to_string()])
            .env("READY_SIGNAL_REDIS_URL", format!("redis://{}?cluster=true", fake.addr()))
            .rss()
            .keep(fake)
    };
    /// The ready-signal store streams an endless array of tiny items (which redis-rs parses to
    /// about 20 times their size).
    ready_store_endless_array => {
        let fake = FakePeer::streaming(b"*2147483647\r\n", &b":1\r\n".repeat(16384));
        probe("2s", &["ready://worker".to_string()])
            .env("READY_SIGNAL_REDIS_URL", format!("redis://{}", fake.addr()))
            .rss()
            .keep(fake)
    };
    /// The ready-signal store under Sentinel, whose Sentinel answers with an endless string.
    ready_sentinel_endless_reply => {
        let fake = FakePeer::streaming(b"$1073741824\r\n", &[b'x'; 65536]);
        probe("2s", &["ready://worker".to_string()])
            .env("READY_SIGNAL_REDIS_URL", format!("redis+sentinel://{}/mymaster", fake.addr()))
            .rss()
            .keep(fake)
    };
});

/// `n` targets `tcp://127.0.0.1:PORT` where nothing listens.
fn many_targets(n: usize) -> Vec<String> {
    let port = free_port();
    (0..n).map(|_| format!("tcp://127.0.0.1:{port}")).collect()
}

/// A TOML config of about `bytes` bytes listing refused targets.
fn big_config(files: &Files, bytes: usize) -> String {
    let one = format!("\"tcp://127.0.0.1:{}\",\n", free_port());
    let mut text = String::with_capacity(bytes + 64);
    text.push_str("targets = [\n");
    while text.len() < bytes {
        text.push_str(&one);
    }
    text.push_str("]\n");
    files.write("big.toml", text)
}

rows!(huge_inputs {
    /// 20,000 targets on the command line: exit 1 within the deadline, output capped.
    twenty_thousand_targets_argv => probe("1s", &many_targets(20_000)).rss();
    /// 5,000 targets in HEALTHCHECK_TARGETS (about as many as fit in one environment variable).
    five_thousand_targets_env => {
        let list = many_targets(5_000).join(" ");
        probe("1s", &[]).env("HEALTHCHECK_TARGETS", list).rss()
    };
    /// 20,000 targets in a config file.
    twenty_thousand_targets_config => {
        let files = Files::new();
        let list: Vec<String> = many_targets(20_000).iter().map(|t| format!("{t:?}")).collect();
        let f = files.write("hc.toml", format!("targets = [{}]\n", list.join(",")));
        probe("1s", &[]).arg(f).arg("--config").rss().keep(files)
    };
    /// 900 Redis targets on a peer that never accepts (the kernel's backlog does the handshakes):
    /// below any cap, the deadline holds for all of them.
    nine_hundred_hanging_targets => {
        let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = hole.local_addr().unwrap();
        let targets: Vec<String> = (0..900).map(|_| format!("redis://{addr}")).collect();
        probe("1s", &targets).rss().keep(hole)
    };
    /// A 5 MB config file: a clear config error naming the file, quickly, in bounded memory.
    config_5_mb => {
        let files = Files::new();
        let f = big_config(&files, 5 << 20);
        probe("1s", &[]).arg(&f).arg("--config").says(f).rss().keep(files)
    };
    /// A 50 MB config file: the same, no abort.
    config_50_mb => {
        let files = Files::new();
        let f = big_config(&files, 50 << 20);
        probe("1s", &[]).arg(&f).arg("--config").says(f).rss().keep(files)
    };
    /// A 5 MB config named by HEALTHCHECK_CONFIG, with `--format json`: JSON, kind config.
    config_5_mb_json => {
        let files = Files::new();
        let f = big_config(&files, 5 << 20);
        probe("1s", &[]).env("HEALTHCHECK_CONFIG", &f).json().kind("config").rss().keep(files)
    };
    /// One 100 kB target argument.
    one_huge_target => probe("1s", &[format!("redis://{}:6379/0", "h".repeat(100_000))]).rss();
    /// A config file just under 1 MiB holding one huge target string.
    config_one_huge_target_under_limit => {
        let files = Files::new();
        let f = files.write("hc.toml", format!("targets = [\"redis://{}:6379\"]\n", "h".repeat(1_000_000)));
        probe("1s", &[]).arg(f).arg("--config").rss().keep(files)
    };
    /// 1,000 targets at a peer that never accepts: at the cap, the deadline holds.
    a_thousand_hanging_targets => {
        let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = hole.local_addr().unwrap();
        let targets: Vec<String> = (0..1000).map(|_| format!("tcp://{addr}")).collect();
        probe("1s", &targets).rss().keep(hole)
    };
    /// 999 HTTP targets at a peer that never accepts: an HTTP client each (about 30 KB) must not
    /// all be alive at once (outside matrix: 46 MB before checks took turns).
    a_thousand_hanging_http_targets => {
        let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = hole.local_addr().unwrap();
        let targets: Vec<String> = (0..999).map(|i| format!("http://{addr}/?n={i}")).collect();
        probe("1s", &targets).rss().keep(hole)
    };
    /// 999 HTTPS targets at a peer that accepts and stays silent (TLS buffers each; 46 MB before).
    a_thousand_silent_https_targets => {
        let fake = FakePeer::silent();
        let targets: Vec<String> = (0..999).map(|_| format!("https://{}/", fake.addr())).collect();
        probe("1s", &targets).rss().keep(fake)
    };
    /// 999 `rediss://` targets at a silent peer (33 MB before).
    a_thousand_silent_rediss_targets => {
        let fake = FakePeer::silent();
        let targets: Vec<String> = (0..999).map(|_| format!("rediss://{}", fake.addr())).collect();
        probe("1s", &targets).rss().keep(fake)
    };
    /// 999 `ready://` agents whose store accepts and stays silent (17.7 MB before).
    a_thousand_ready_targets_silent_store => {
        let fake = FakePeer::silent();
        let targets: Vec<String> = (0..999).map(|i| format!("ready://w{i}")).collect();
        probe("1s", &targets).env("READY_SIGNAL_REDIS_URL", format!("redis://{}", fake.addr())).rss().keep(fake)
    };
    /// A `${VAR}` expanding to a 100 kB host name: a config error at once.
    expanded_host_of_100_kb => probe("1s", &["redis://${HC_HOST}:6379".to_string()]).env("HC_HOST", "h".repeat(100_000)).rss();
    /// A 5 MB password file.
    password_file_5_mb => {
        let files = Files::new();
        let f = files.write("pw", canary().repeat((5 << 20) / canary().len()));
        let target = format!("redis://{}?password_file={f}", dead());
        probe("1s", std::slice::from_ref(&target)).reason_names(target, &f).rss().keep(files)
    };
});

/// A name no resolver knows (RFC 2606).
const NOWHERE: &str = "no-such-host.invalid";

/// A target on a name that does not resolve: the reason itself (not the echoed target) says
/// "resolving NAME"; JSON says kind `dns`, phase `resolve`.
fn unresolvable_target(target: String) -> Case {
    probe("2s", std::slice::from_ref(&target))
        .reason_names(target.clone(), "resolv")
        .reason_names(target, NOWHERE)
}

/// A Redis fake answering every command with `-ERR ` and a 3,600-byte message (under the
/// probe's bound on a reply line, over any sensible reason).
fn long_error_redis() -> FakePeer {
    FakePeer::redis_error(&format!("ERR {}", "long-reason ".repeat(300)))
}

rows!(reasons {
    /// `ready://` on a paused real Redis store: names the store's address and a phase past connect.
    paused_ready_store_names_address_and_phase => {
        let redis = RedisServer::start();
        redis.pause();
        probe("1s", &["ready://worker".to_string()])
            .env("READY_SIGNAL_REDIS_URL", redis.url()).json().kind("timeout")
            .phase_not(&["resolve", "connect"]).says(redis.addr().to_string()).keep(redis)
    };
    /// `ready://` on a paused store, in text: the address is in the reason.
    paused_ready_store_text_names_address => {
        let redis = RedisServer::start();
        redis.pause();
        probe("1s", &["ready://worker".to_string()])
            .env("READY_SIGNAL_REDIS_URL", redis.url()).says(redis.addr().to_string())
            .check(|out| out.contains("connecting to the ready-signal store").then(|| "blames connecting".into()))
            .keep(redis)
    };
    /// `redis://` on a paused real Redis: kind timeout, phase past connect, the address.
    paused_redis_names_address_and_phase => {
        let redis = RedisServer::start();
        redis.pause();
        probe("1s", &[redis.url()]).json().kind("timeout").phase_not(&["resolve", "connect"])
            .says(redis.addr().to_string()).keep(redis)
    };
    /// A paused real nats-server's monitoring port, probed over HTTP: kind timeout, a phase past
    /// connect, the address.
    paused_http_names_address_and_phase => {
        let (nats, base) = nats_monitor();
        nats.pause();
        probe("1s", &[format!("http://{base}/healthz")]).json().kind("timeout")
            .phase_not(&["resolve", "connect"]).says(base).keep(nats)
    };
    /// `wait` on a paused real nats-server: names the address, not connecting.
    wait_on_paused_nats_names_address => {
        let nats = NatsServer::start();
        nats.pause();
        wait("1s", &[nats.url()]).says(nats.addr().to_string())
            .check(|out| out.contains("connecting").then(|| "blames connecting: TCP had connected".to_string()))
            .keep(nats)
    };
    /// A redis name that does not resolve.
    dns_redis => unresolvable_target(format!("redis://{NOWHERE}:6379")).json().kind("dns").phase("resolve");
    /// A NATS name that does not resolve (text).
    dns_nats => unresolvable_target(format!("nats://{NOWHERE}:4222"));
    /// An HTTP name that does not resolve (text).
    dns_http => unresolvable_target(format!("http://{NOWHERE}/healthz"));
    /// A TCP name that does not resolve (text).
    dns_tcp => unresolvable_target(format!("tcp://{NOWHERE}:80"));
    /// The ready-signal store's name does not resolve.
    dns_ready_store => probe("2s", &["ready://worker".to_string()])
        .env("READY_SIGNAL_REDIS_URL", format!("redis://{NOWHERE}:6379"))
        .says("resolv").says(NOWHERE);
    /// `--format json` and a target that does not parse: JSON, kind config.
    json_config_error_bad_target => probe("1s", &["mysql://db".to_string()]).json().kind("config").says("mysql");
    /// `--format json` and a bad `--timeout`: JSON, kind config.
    json_config_error_bad_timeout => Case::new(["--timeout", "soon", "tcp://a:1"].map(String::from).to_vec(), "1s")
        .json().kind("config").says("--timeout: not a duration");
    /// `--format json` and an unknown flag: JSON, kind config.
    json_usage_error_unknown_flag => Case::new(["--format", "json", "--bogus", "tcp://a:1"].map(String::from).to_vec(), "1s")
        .json_output().kind("config").says("argument 3 is not a flag");
    /// `--format json` and a missing config file: JSON, kind config, naming the file.
    json_config_error_missing_file => probe("1s", &[]).arg("/nonexistent/hc.toml").arg("--config")
        .json().kind("config").says("/nonexistent/hc.toml");
    /// A config file asking for JSON whose target does not parse: JSON, kind config.
    json_from_config_file_with_bad_target => {
        let files = Files::new();
        let f = files.write("hc.toml", "format = \"json\"\ntargets = [\"tcp://nohost\"]\n");
        probe("1s", &[]).arg(f).arg("--config").json_output().kind("config").keep(files)
    };
    /// A 3,600-byte reason is truncated, not dropped: the target is still listed.
    json_long_reason_is_truncated_not_dropped => {
        let fake = long_error_redis();
        probe("1s", &[format!("redis://{}", fake.addr())]).json().json_targets(1).says("long-reason").keep(fake)
    };
    /// A long reason beside a healthy target: both listed.
    json_long_reason_beside_healthy_target => {
        let fake = long_error_redis();
        let redis = RedisServer::start();
        probe("1s", &[format!("redis://{}", fake.addr()), redis.url()]).json().json_targets(2)
            .says(redis.url()).keep(fake).keep(redis)
    };
    /// A long reason in text: the target's address is still printed.
    text_long_reason_keeps_target => {
        let fake = long_error_redis();
        probe("1s", &[format!("redis://{}", fake.addr())]).says(fake.addr().to_string()).says("long-reason").keep(fake)
    };
    /// An HTTP query value of one character (`?full=1`) does not hide every `1` of the address
    /// and the duration (outside matrix: `connecting to ***27.0.0.***:...`).
    short_query_value_keeps_the_address => {
        let addr = dead();
        let printed = format!("http://{addr}/health?full=***&v=***");
        probe("1s", &[format!("http://{addr}/health?full=1&v=80")])
            .reason_names(printed, format!("connecting to {addr}"))
    };
    /// Refused: kind refused, phase connect.
    json_refused_kind_and_phase => {
        let target = format!("redis://{}", dead());
        probe("1s", &[target]).json().kind("refused").phase("connect")
    };
    /// A wrong password on a real Redis: kind auth.
    json_wrong_password_kind_auth => {
        let redis = RedisServer::builder().requirepass("the-real-password").start();
        probe("1s", &[format!("redis://:{}@{}", canary(), redis.addr())]).json().kind("auth").says("WRONGPASS").keep(redis)
    };
    /// A NATS token refused by a real server: kind auth.
    json_nats_authorization_violation_kind_auth => {
        let nats = NatsServer::builder().token("the-real-token").start();
        probe("1s", &[format!("nats://{}@{}", canary(), nats.addr())]).json().kind("auth").keep(nats)
    };
    /// TLS to a plain Redis port: the phase is tls.
    json_tls_to_plain_port_phase_tls => {
        let redis = RedisServer::start();
        probe("1s", &[format!("rediss://{}", redis.addr())]).json().phase("tls").keep(redis)
    };
});

rows!(control_chars {
    /// A Redis error with escape sequences, BEL, BS and a lone CR: one line, all escaped.
    redis_error_with_escapes => {
        let fake = FakePeer::replying(b"-ERR bad\x1b[2J\x1b[31mred\rover\x07\x08tail\r\n");
        probe("1s", &[format!("redis://{}", fake.addr())]).one_line().says("tail").keep(fake)
    };
    /// The same in JSON: valid JSON, one line.
    redis_error_with_escapes_json => {
        let fake = FakePeer::replying(b"-ERR bad\x1b[2J\x1b]0;title\x07\x7f\r\n");
        probe("1s", &[format!("redis://{}", fake.addr())]).json().one_line().keep(fake)
    };
    /// A NATS `-ERR` with escape sequences.
    nats_error_with_escapes => {
        let fake = FakePeer::nats_error(b"'bad\x1b[31m\x1b[1Kthing\x0b\x0c'");
        probe("1s", &[format!("nats://{}", fake.addr())]).one_line().keep(fake)
    };
    /// An HTTP reason phrase with an escape sequence.
    http_reason_phrase_with_escape => {
        let fake = FakePeer::replying(b"HTTP/1.1 503 Down\x1b[31mRed\r\ncontent-length: 0\r\n\r\n");
        probe("1s", &[format!("http://{}/", fake.addr())]).one_line().keep(fake)
    };
    /// A target argument holding a newline and an escape sequence.
    target_with_newline_and_escape => probe("1s", &[format!("tcp://{}/\n\x1b[31mX", dead())]).one_line();
    /// A host from `${VAR}` holding a newline and an escape sequence.
    expanded_host_with_control_chars => probe("1s", &["tcp://${HC_HOST}:1".to_string()])
        .env("HC_HOST", "a\nb\x1b[2Jc").one_line();
    /// A ready record whose reason holds a newline and escape sequences (real Redis).
    ready_reason_with_control_chars => {
        let (server, mut conn) = ready_store();
        assert_eq!(write_record(&mut conn, NEW_INSTANCE, "not-ready", "warming\n\x1b[31mcache\r\x07", 10_000, 60_000), 1);
        probe("1s", &[format!("ready://{AGENT}?replica={REPLICA}")])
            .env("READY_SIGNAL_NAMESPACE", NS)
            .env("READY_SIGNAL_REDIS_URL", format!("redis://:{}@{}", canary(), server.addr()))
            .one_line().says("not-ready").keep(server)
    };
    /// In JSON, a target whose `${VAR}` holds escape sequences: valid JSON, no raw control byte.
    json_expanded_target_with_escapes => probe("1s", &["tcp://${HC_HOST}:1".to_string()])
        .env("HC_HOST", "a\x1b[2Jb\x07").json().one_line();
    /// A redirect `Location` holding an escaped escape sequence and a raw tab.
    http_location_with_escapes => {
        let fake = FakePeer::replying(b"HTTP/1.1 302 Found\r\nlocation: http://evil.example/%1B[2J\tx\r\ncontent-length: 0\r\n\r\n");
        probe("1s", &[format!("http://{}/", fake.addr())]).one_line().keep(fake)
    };
    /// A config path holding a newline and an escape sequence (missing file).
    config_path_with_control_chars => probe("1s", &[]).arg("/nonexistent/a\nb\x1b[31m.toml").arg("--config").one_line();
    /// `wait` on a Redis error with escape sequences: its stderr line is one line too.
    wait_redis_error_with_escapes => {
        let fake = FakePeer::replying(b"-ERR bad\x1b[2J\rover\r\n");
        wait("1s", &[format!("redis://{}", fake.addr())]).one_line().keep(fake)
    };
});

/// The trust matrix has at least the 60 rows issue 11 asks for, in every class.
#[test]
fn trust_matrix_covers_every_class() {
    let classes = [
        ("secrets", secrets::ROWS.len()),
        ("never_exits", never_exits::ROWS.len()),
        ("timeouts", timeouts::ROWS.len()),
        ("memory", memory::ROWS.len()),
        ("huge_inputs", huge_inputs::ROWS.len()),
        ("reasons", reasons::ROWS.len()),
        ("control_chars", control_chars::ROWS.len()),
    ];
    let total: usize = classes.iter().map(|(_, n)| n).sum();
    println!("TRUST rows per class: {classes:?}, total {total}");
    assert!(classes.iter().all(|(_, n)| *n >= 5), "{classes:?}");
    assert!(total >= 60, "{total}");
}

/// The trust rows' judge can fail: each broken promise in a run is caught, alone (a matrix whose
/// assertions cannot fail would prove nothing).
#[test]
fn trust_judge_catches_what_it_guards_against() {
    let case = || {
        Case::new(vec!["tcp://a:1".into()], "1s")
            .says("refused")
            .json_output()
            .kind("refused")
            .one_line()
    };
    let good = "{\"healthy\":false,\"targets\":[{\"kind\":\"refused\",\"phase\":\"connect\",\"reason\":\"connection refused\"}]}\n";
    let ran = |code: Option<i32>, ms: u64, stdout: &str, stderr: &str| Ran {
        code,
        elapsed: Duration::from_millis(ms),
        run_delay: Duration::ZERO,
        children: Vec::new(),
        stdout: stdout.to_string(),
        stderr: stderr.to_string(),
        raw: [stdout.as_bytes(), stderr.as_bytes()].concat(),
        rss_kb: Some(8000),
    };
    assert!(case().judge(&ran(Some(1), 10, good, "")).is_empty());
    let upper = canary().to_uppercase();
    let broken = [
        ran(Some(0), 10, good, ""),
        ran(Some(2), 10, good, ""),
        ran(None, 10, good, ""),
        ran(Some(1), 1101, good, ""),
        ran(Some(1), 10, good, &upper),
        ran(Some(1), 10, good, &"x".repeat(4096)),
        ran(Some(1), 10, good, "thread 'main' panicked at src/main.rs"),
        ran(Some(1), 10, good, "\x1b[31m"),
        ran(Some(1), 10, good, "second line\n"),
        ran(Some(1), 10, &good.replace("refused", "timeout"), ""),
        ran(Some(1), 10, "unhealthy: refused\n", ""),
        ran(Some(1), 10, "", ""),
    ];
    for r in &broken {
        assert!(!case().judge(r).is_empty(), "not caught: {r:?}");
    }
    // Time spent waiting for a CPU is the machine's: not counted.
    let mut starved = ran(Some(1), 1500, good, "");
    starved.run_delay = Duration::from_millis(500);
    assert!(case().judge(&starved).is_empty());
    let mut parent = ran(Some(1), 10, good, "");
    parent.children = vec![4242];
    assert!(!case().judge(&parent).is_empty());
    let mut fat = ran(Some(1), 10, good, "");
    fat.rss_kb = Some(startup_rss_kb() + RSS_GROWTH_LIMIT_KB + 1);
    assert!(!case().judge(&fat).is_empty());
}
