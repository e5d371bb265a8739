//! The `healthcheck` binary against real redis-server and nats-server processes: exit codes,
//! output and redaction, as Docker and Kubernetes see them. Named fakes stand in only for faults a
//! real server will not produce on demand.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use harness::fake::FakePeer;
use harness::{NatsServer, RedisServer, free_port};

const CANARY: &str = "canary-Pw-7f3a91";

fn healthcheck() -> Command {
    // Tests must not pick up the developer's environment.
    harness::clean_command(env!("CARGO_BIN_EXE_healthcheck"))
}

/// Runs the probe; returns (exit code, stdout + stderr).
fn run(cmd: &mut Command) -> (i32, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    (
        status.code().expect("exited with a code, not a signal"),
        text,
    )
}

fn probe(targets: &[&str]) -> (i32, String) {
    run(healthcheck().args(targets))
}

/// A plain redis-server is healthy, with one line that starts with the verdict.
#[test]
fn redis_without_auth_is_healthy() {
    let redis = RedisServer::start();
    let (code, out) = probe(&[&redis.url()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(&format!("healthy: {} ok ", redis.url())),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1, "{out}");
}

/// A `+` in a URL password is a plus sign (only `%XX` is decoded in userinfo), not a space.
#[test]
fn redis_url_password_keeps_plus_signs() {
    let redis = RedisServer::builder().requirepass("p+w!").start();
    let (code, out) = probe(&[&format!("redis://:p+w%21@127.0.0.1:{}", redis.port())]);
    assert_eq!(code, 0, "{out}");
}

/// requirepass: no password is NOAUTH, a wrong one WRONGPASS; the right one from URL, env or
/// file is healthy, and the password is never printed.
#[test]
fn redis_requirepass_truth_and_redaction() {
    let redis = RedisServer::builder().requirepass(CANARY).start();
    let port = redis.port();

    let (code, out) = probe(&[&redis.url()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("NOAUTH"), "{out}");

    let (code, out) = probe(&[&format!("redis://:wrong-{CANARY}@127.0.0.1:{port}")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("WRONGPASS"), "{out}");
    assert!(!out.contains(CANARY), "{out}");

    let (code, out) = probe(&[&format!("redis://:{CANARY}@127.0.0.1:{port}")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("redis://:***@127.0.0.1"), "{out}");
    assert!(!out.contains(CANARY), "{out}");

    let (code, out) = run(healthcheck().arg(redis.url()).env("REDIS_PASSWORD", CANARY));
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains(CANARY), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis-password");
    std::fs::write(&file, format!("{CANARY}\n")).unwrap();
    let (code, out) = probe(&[&format!("{}?password_file={}", redis.url(), file.display())]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(healthcheck()
        .arg(redis.url())
        .env("REDIS_PASSWORD_FILE", &file));
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains(CANARY), "{out}");

    // ${VAR} expansion: the command line holds only the variable's name.
    let (code, out) = run(healthcheck()
        .arg(format!("redis://:${{PW}}@127.0.0.1:{port}"))
        .env("PW", CANARY));
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains(CANARY), "{out}");
}

/// An ACL user authenticates with user and password; a wrong password is WRONGPASS.
#[test]
fn redis_acl_user() {
    let redis = RedisServer::builder()
        .requirepass("default-pw")
        .acl_user("probe", CANARY, "~* +ping +info")
        .start();
    let port = redis.port();
    let (code, out) = probe(&[&format!("redis://probe:{CANARY}@127.0.0.1:{port}")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("redis://***:***@"), "{out}");
    assert!(
        !out.contains("probe:"),
        "the ACL user name is a credential too: {out}"
    );
    let (code, out) = probe(&[&format!("redis://probe:nope@127.0.0.1:{port}")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("WRONGPASS"), "{out}");
}

/// role=master holds on a standalone server; role=replica holds only on a replica whose link is up.
#[test]
fn redis_roles() {
    let master = RedisServer::start();
    let (code, out) = probe(&[&format!("{}?role=master", master.url())]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = probe(&[&format!("{}?role=replica", master.url())]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("role is master, want replica"), "{out}");

    let replica = RedisServer::builder()
        .arg("replicaof", &format!("127.0.0.1 {}", master.port()))
        .start();
    let target = format!("{}?role=replica", replica.url());
    let deadline = Instant::now() + Duration::from_secs(10);
    let (code, out) = loop {
        let (code, out) = probe(&[&target]);
        if code == 0 || Instant::now() > deadline {
            break (code, out);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, 0, "{out}\n{}", replica.log());
    assert!(out.contains("link up"), "{out}");

    let (_, out) = probe(&[&format!("redis://127.0.0.1:{}?role=replica", free_port())]);
    assert!(out.contains("refused"), "{out}");
}

/// FAKE peer: a Redis answering -LOADING is unhealthy with the server's words (redis-cli exits 0).
#[test]
fn redis_loading_is_unhealthy() {
    let fake = FakePeer::redis_loading();
    let (code, out) = probe(&[&format!("redis://127.0.0.1:{}", fake.port())]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("LOADING Redis is loading the dataset in memory"),
        "{out}"
    );
}

/// A stopped server is refused, and `localhost` finds a server listening on 127.0.0.1 only.
#[test]
fn redis_down_and_localhost() {
    let mut redis = RedisServer::start();
    let (code, out) = probe(&[&format!("redis://localhost:{}", redis.port())]);
    assert_eq!(code, 0, "{out}");
    redis.stop();
    let (code, out) = probe(&[&redis.url()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("connection refused"), "{out}");
}

/// NATS: plain, token, user/password and JetStream, each proven by the full handshake.
#[test]
fn nats_handshake_auth_and_jetstream() {
    let plain = NatsServer::start();
    let (code, out) = probe(&[&plain.url()]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = probe(&[&format!("{}?jetstream=true", plain.url())]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("jetstream"), "{out}");

    let token = NatsServer::builder().token(CANARY).start();
    let port = token.port();
    let (code, out) = probe(&[&format!("nats://127.0.0.1:{port}")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Authorization Violation"), "{out}");
    let (code, out) = probe(&[&format!("nats://{CANARY}@127.0.0.1:{port}")]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains(CANARY), "{out}");
    let (code, out) = run(healthcheck()
        .arg(format!("nats://127.0.0.1:{port}"))
        .env("NATS_TOKEN", CANARY));
    assert_eq!(code, 0, "{out}");

    let user = NatsServer::builder()
        .user("agent", CANARY)
        .jetstream()
        .start();
    let (code, out) = probe(&[&format!(
        "nats://agent:{CANARY}@127.0.0.1:{}?jetstream=true",
        user.port()
    )]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("jetstream") && !out.contains(CANARY), "{out}");
    let (code, out) = probe(&[&format!("nats://agent:bad@127.0.0.1:{}", user.port())]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Authorization Violation"), "{out}");
}

/// HTTP against NATS's real monitoring endpoint: /healthz is 200, a body match works, a missing
/// page is a 404 outside the accepted set unless the set includes it.
#[test]
fn http_status_and_body() {
    let nats = NatsServer::builder().monitor().start();
    let base = format!("http://127.0.0.1:{}", nats.monitor_port().unwrap());
    let (code, out) = probe(&[&format!("{base}/healthz")]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = probe(&[&format!("{base}/healthz?body=ok")]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = probe(&[&format!("{base}/healthz?body=definitely-not-there")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("body does not contain"), "{out}");
    let (code, out) = probe(&[&format!("{base}/no-such-page")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("status 404"), "{out}");
    let (code, out) = probe(&[&format!("{base}/no-such-page?status=200-299,404")]);
    assert_eq!(code, 0, "{out}");
}

/// FAKE peers: canned HTTP responses for a 503 and a redirect to another host.
#[test]
fn http_503_and_foreign_redirect() {
    let unavailable =
        FakePeer::replying(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
    let (code, out) = probe(&[&format!("http://127.0.0.1:{}/", unavailable.port())]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("status 503"), "{out}");
    let elsewhere = FakePeer::replying(
        b"HTTP/1.1 302 Found\r\nlocation: http://login.example/\r\ncontent-length: 0\r\n\r\n",
    );
    let (code, out) = probe(&[&format!("http://127.0.0.1:{}/", elsewhere.port())]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("status 302 redirect to http://login.example/ not followed"),
        "{out}"
    );
}

/// tcp:// passes when a port accepts and fails when it refuses.
#[test]
fn tcp_accepts_or_refuses() {
    let redis = RedisServer::start();
    assert_eq!(probe(&[&format!("tcp://127.0.0.1:{}", redis.port())]).0, 0);
    let (code, out) = probe(&[&format!("tcp://127.0.0.1:{}", free_port())]);
    assert_eq!(code, 1, "{out}");
}

/// FAKE silent peer: the probe exits on its own at its deadline and names what timed out.
#[test]
fn silent_peer_times_out_on_our_deadline() {
    let silent = FakePeer::silent();
    let redis = RedisServer::start();
    let started = Instant::now();
    let (code, out) = run(healthcheck().args([
        "--timeout",
        "300ms",
        &format!("redis://127.0.0.1:{}", silent.port()),
        &redis.url(),
    ]));
    let took = started.elapsed();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("timed out after 300ms waiting for PONG"),
        "{out}"
    );
    assert!(out.contains(&format!("{} ok", redis.url())), "{out}");
    // Generous bound: this test proves the probe ends by itself; BENCHMARKS/RELIABILITY measure how close.
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// Usage errors and unknown schemes exit 1, never 2; --help and --version exit 0.
#[test]
fn exit_codes_are_zero_or_one_only() {
    for args in [
        &["--bogus"][..],
        &["mysql://db"],
        &["--timeout", "soon", "tcp://a:1"],
        &[],
        &["--format", "xml", "tcp://a:1"],
    ] {
        let (code, out) = run(healthcheck().args(args));
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(out.len() < 4096);
    }
    assert_eq!(run(healthcheck().arg("--help")).0, 0);
    let (code, out) = run(healthcheck().arg("--version"));
    assert_eq!(code, 0);
    assert!(out.starts_with("healthcheck "), "{out}");
}

/// Hundreds of failing targets still print under 4096 bytes, counting what was left out.
#[test]
fn output_is_capped_with_many_failures() {
    let port = free_port();
    let targets: Vec<String> = (0..300)
        .map(|i| format!("tcp://127.0.{}.{}:{port}", i / 250, 1 + i % 250))
        .collect();
    let (code, out) = run(healthcheck().arg("--timeout").arg("2s").args(&targets));
    assert_eq!(code, 1);
    assert!(out.len() < 4096, "{} bytes", out.len());
    assert!(out.contains("more not shown"), "{out}");
    let (code, out) = run(healthcheck()
        .args(["--timeout", "2s", "--format", "json"])
        .args(&targets));
    assert_eq!(code, 1);
    assert!(out.len() < 4096, "{} bytes", out.len());
    assert!(out.contains("\"omitted\":"), "{out}");
}

/// Targets from HEALTHCHECK_TARGETS and from a TOML file, for images that bake a bare HEALTHCHECK.
#[test]
fn targets_from_environment_and_config_file() {
    let redis = RedisServer::start();
    let nats = NatsServer::start();
    let (code, out) = run(healthcheck().env(
        "HEALTHCHECK_TARGETS",
        format!("{} {}", redis.url(), nats.url()),
    ));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&nats.url()), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("healthcheck.toml");
    std::fs::write(
        &config,
        format!(
            "timeout = \"2s\"\nformat = \"json\"\ntargets = [\"{}\"]\n",
            redis.url()
        ),
    )
    .unwrap();
    let (code, out) = run(healthcheck().env("HEALTHCHECK_CONFIG", &config));
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["healthy"], true);
    assert_eq!(v["targets"][0]["check"], "redis");
}

/// A name that does not resolve is unhealthy with a DNS reason, not a hang.
#[test]
fn unresolvable_name_is_reported() {
    let (code, out) = probe(&["redis://no-such-host.invalid:6379"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("resolving no-such-host.invalid"), "{out}");
}

/// `install DIR` copies every binary that sits beside the probe (the ready-signal CLI and the
/// sidecar, as in the project's image) into DIR, executable and byte for byte. The two companions
/// here are stand-in files (install copies bytes; it never runs them), beside a copy of the real
/// probe.
#[test]
fn install_copies_the_cli_and_the_sidecar_beside_the_probe() {
    let image = tempfile::tempdir().unwrap();
    let probe = image.path().join("healthcheck");
    std::fs::copy(env!("CARGO_BIN_EXE_healthcheck"), &probe).unwrap();
    for name in ["ready-signal", "healthcheck-sidecar"] {
        std::fs::write(image.path().join(name), format!("stand-in for {name}\n")).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("hc");
    let (code, out) = run(Command::new(&probe).arg("install").arg(&target));
    assert_eq!(code, 0, "{out}");
    for name in ["healthcheck", "ready-signal", "healthcheck-sidecar"] {
        let installed = target.join(name);
        assert!(
            out.contains(&installed.display().to_string()),
            "{name}: {out}"
        );
        assert_eq!(
            std::fs::read(&installed).unwrap(),
            std::fs::read(image.path().join(name)).unwrap(),
            "{name} differs from its source"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&installed).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o755, "{name}: mode {mode:o}");
    }
}

/// `install DIR` copies the probe (and the ready-signal CLI when it sits beside it) into DIR,
/// executable, for an init container filling a shared volume.
#[test]
fn install_copies_executables() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("hc");
    let (code, out) = run(healthcheck().arg("install").arg(&target));
    assert_eq!(code, 0, "{out}");
    let installed = target.join("healthcheck");
    assert!(out.contains(&installed.display().to_string()), "{out}");
    let (code, out) = run(Command::new(&installed).arg("--version"));
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(healthcheck().arg("install").arg("/proc/no-such-dir/hc"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("install into /proc/no-such-dir/hc"), "{out}");
}
