//! The store users of `deploy/kubernetes/store-access/` do on real servers what the manifests'
//! README promises: the sidecar reads every ready-signal record and event and can write or
//! publish nothing; an agent writes only its own record and publishes only its own events.
//!
//! The rules are read from the shipped files, so a change there is tested here.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use harness::RedisServer;
use harness::cluster::{NatsCluster, Reply, redis_command, redis_command_as};

fn store_access(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/kubernetes/store-access")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The ACL rules of `user NAME on #@HASH:NAME@ RULES...` in the shipped file.
fn acl_rules(user: &str) -> String {
    let text = store_access("redis-users.acl");
    let prefix = format!("user {user} on #@HASH:{user}@ ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no `{prefix}...` line in redis-users.acl"))
        .to_string()
}

fn is_noperm(r: &Reply) -> bool {
    r.error().is_some_and(|e| e.starts_with("NOPERM"))
}

/// The sidecar's Redis user reads ready-signal keys; writes, scripts, other keys get NOPERM.
#[test]
fn redis_sidecar_user_reads_ready_signal_keys_and_writes_nothing() {
    let redis = RedisServer::builder()
        .acl_user(
            "healthcheck-sidecar",
            "sidecar-pw",
            &acl_rules("healthcheck-sidecar"),
        )
        .start();
    let a = redis.addr();
    let record = "ready-signal:stack:worker:r:w1";
    for cmd in [
        &["HSET", record, "v", "1", "state", "ready"][..],
        &["PEXPIRE", record, "60000"],
        &["ZADD", "ready-signal:stack:worker:replicas", "1", "w1"],
        &["ZADD", "ready-signal:stack:agents", "1", "worker"],
        &["SET", "app:secret-data", "x"],
    ] {
        assert!(redis_command(a, cmd).unwrap().error().is_none(), "{cmd:?}");
    }
    let as_sidecar = |args: &[&str]| {
        redis_command_as(a, Some("healthcheck-sidecar"), "sidecar-pw", args).unwrap()
    };

    let Reply::Array(Some(fields)) = as_sidecar(&["HGETALL", record]) else {
        panic!("HGETALL refused")
    };
    assert_eq!(fields.len(), 4);
    assert!(matches!(as_sidecar(&["PTTL", record]), Reply::Int(n) if n > 0));
    assert_eq!(
        as_sidecar(&["ZRANGE", "ready-signal:stack:agents", "0", "-1"]),
        Reply::Array(Some(vec![Reply::Bulk(Some("worker".into()))]))
    );
    assert!(matches!(as_sidecar(&["TIME"]), Reply::Array(Some(t)) if t.len() == 2));
    assert!(matches!(
        as_sidecar(&["SCAN", "0", "MATCH", "ready-signal:*"]),
        Reply::Array(_)
    ));
    assert_eq!(as_sidecar(&["PING"]), Reply::Status("PONG".into()));

    for cmd in [
        &["HSET", record, "state", "not-ready"][..],
        &["DEL", record],
        &["PEXPIRE", record, "1"],
        &["ZADD", "ready-signal:stack:agents", "9", "intruder"],
        &["EVAL", "return 1", "0"],
        &["GET", "app:secret-data"],
        &["PUBLISH", "ready-signal.stack.worker.w1", "x"],
        &["FLUSHALL"],
    ] {
        let r = as_sidecar(cmd);
        assert!(is_noperm(&r), "{cmd:?} answered {r:?}");
    }
    assert_eq!(
        redis_command(a, &["HGET", record, "state"]).unwrap(),
        Reply::Bulk(Some("ready".into()))
    );
}

/// An agent's Redis user writes its own record and the index, and nothing of another agent's.
#[test]
fn redis_agent_user_writes_only_its_own_record() {
    let redis = RedisServer::builder()
        .acl_user("worker", "worker-pw", &acl_rules("worker"))
        .start();
    let as_worker =
        |args: &[&str]| redis_command_as(redis.addr(), Some("worker"), "worker-pw", args).unwrap();
    let own = as_worker(&["HSET", "ready-signal:stack:worker:r:w1", "state", "ready"]);
    assert_eq!(own, Reply::Int(1));
    let index = as_worker(&["ZADD", "ready-signal:stack:agents", "1", "worker"]);
    assert_eq!(index, Reply::Int(1));
    for cmd in [
        &["HSET", "ready-signal:stack:planner:r:p1", "state", "dead"][..],
        &["DEL", "ready-signal:stack:planner:r:p1"],
        &["SET", "app:key", "x"],
        &["FLUSHALL"],
    ] {
        let r = as_worker(cmd);
        assert!(is_noperm(&r), "{cmd:?} answered {r:?}");
    }
}

/// The shipped users do their real work through the real programs: the agent user publishes its
/// record with the `ready-signal` command (the fenced write script, epoch counter included), the
/// sidecar user reads it with the probe. A rule the script needs and the file lacks fails here.
#[test]
fn redis_shipped_users_run_the_write_script_and_the_reads() {
    let redis = with_shipped_users();
    let dir = tempfile_dir();
    let url = |user: &str, pw: &str| format!("redis://{user}:{pw}@{}", redis.addr());
    let run = |program: &str, url: String, args: &[&str]| {
        std::process::Command::new(harness::bin(program))
            .env_clear()
            .env("READY_SIGNAL_REDIS_URL", url)
            .env("READY_SIGNAL_NAMESPACE", "stack")
            .env("READY_SIGNAL_REPLICA", "w1")
            .env("READY_SIGNAL_DIR", &dir)
            .args(args)
            .output()
            .unwrap()
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    for args in [
        &["ready", "worker", "--ttl", "30s"][..],
        &["ready", "worker"],
    ] {
        let out = run("ready-signal", url("worker", "worker-pw"), args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }
    let out = run(
        "healthcheck",
        url("healthcheck-sidecar", "sidecar-pw"),
        &["--timeout", "2s", "ready://worker?replica=w1"],
    );
    assert!(out.status.success(), "{}", text(&out));
    // The agent user may not publish for another agent, even through the script.
    let out = run(
        "ready-signal",
        url("worker", "worker-pw"),
        &["ready", "planner"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("NOPERM"), "{}", text(&out));
}

/// Both users may run what finding the data nodes takes (ROLE under Sentinel, CLUSTER SLOTS and
/// ASKING in a Cluster: on a plain server these fail for lack of a cluster, not for lack of
/// permission), and the agent's user writes its own layout-2 keys (a Cluster store's) but no
/// other agent's.
#[test]
fn redis_shipped_users_may_route_and_the_agent_writes_layout_2_keys() {
    let redis = with_shipped_users();
    for (user, pw) in [
        ("worker", "worker-pw"),
        ("healthcheck-sidecar", "sidecar-pw"),
    ] {
        for cmd in [&["ROLE"][..], &["CLUSTER", "SLOTS"], &["ASKING"]] {
            let r = redis_command_as(redis.addr(), Some(user), pw, cmd).unwrap();
            assert!(!is_noperm(&r), "{user}: {cmd:?} answered {r:?}");
        }
    }
    let as_worker =
        |args: &[&str]| redis_command_as(redis.addr(), Some("worker"), "worker-pw", args).unwrap();
    let worker = ready_signal_shard_key("worker");
    for key in [
        format!("ready-signal:{{stack:{worker}}}:worker:r:w1"),
        format!("ready-signal:{{stack:{worker}}}:agents"),
    ] {
        let r = as_worker(&["ZADD", &key, "1", "x"]);
        assert!(!is_noperm(&r), "{key}: {r:?}");
    }
    let planner = ready_signal_shard_key("planner");
    let r = as_worker(&[
        "HSET",
        &format!("ready-signal:{{stack:{planner}}}:planner:r:p1"),
        "state",
        "dead",
    ]);
    assert!(is_noperm(&r), "{r:?}");
}

/// The agent's shard in layout 2, two digits (PROTOCOL.md: CLUSTER KEYSLOT of the name % 64).
fn ready_signal_shard_key(agent: &str) -> String {
    format!("{:02}", ready_signal::keyslot(agent.as_bytes()) % 64)
}

/// A redis-server with the shipped agent user (`worker`, password `worker-pw`) and sidecar user
/// (`healthcheck-sidecar`, `sidecar-pw`).
fn with_shipped_users() -> RedisServer {
    RedisServer::builder()
        .acl_user("worker", "worker-pw", &acl_rules("worker"))
        .acl_user(
            "healthcheck-sidecar",
            "sidecar-pw",
            &acl_rules("healthcheck-sidecar"),
        )
        .start()
}

/// A directory for the record files the CLI also writes (removed with the test process's tmp).
fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("k8s-store-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn nats_with_shipped_authorization() -> NatsCluster {
    NatsCluster::builder()
        .size(1)
        .config(&store_access("nats-authorization.conf"))
        .env("HEALTHCHECK_SIDECAR_NATS_PASSWORD", "sidecar-pw")
        .env("WORKER_NATS_PASSWORD", "worker-pw")
        .start()
}

/// A client of `user`, and the server errors it has been sent so far.
async fn connect(
    nats: &NatsCluster,
    user: &str,
    password: &str,
) -> (async_nats::Client, Arc<Mutex<Vec<String>>>) {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let client = async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    seen.lock().unwrap().push(e.to_string());
                }
            }
        })
        .connect(nats.url(0))
        .await
        .unwrap();
    (client, errors)
}

/// Waits until the server has sent a permissions violation to this client: the server has
/// then processed (and refused) what the client sent before. async-nats' `flush` only empties
/// the socket buffer, so it proves nothing about the server.
async fn violation(errors: &Mutex<Vec<String>>) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(e) = errors
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.to_lowercase().contains("permissions violation"))
        {
            return e.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no permissions violation: {:?}",
            errors.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const SYNC: &str = "ready-signal.stack.worker.sync";

/// Publishes on [`SYNC`] from `worker` until `sub` receives it: the subscription is then
/// active on the server (a subscribe and flush alone do not prove it).
async fn sync(worker: &async_nats::Client, sub: &mut async_nats::Subscriber) {
    let synced = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            worker.publish(SYNC, "sync".into()).await.unwrap();
            if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), sub.next()).await {
                return;
            }
        }
    })
    .await;
    synced.expect("subscription not active within 5 s");
}

/// The next message that is not a [`SYNC`] leftover, within 5 s.
async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let m = sub.next().await.unwrap();
            if m.subject.as_str() != SYNC {
                return m;
            }
        }
    })
    .await
    .expect("no message within 5 s")
}

/// The sidecar's NATS user receives agents' events, and the server drops what it publishes.
#[tokio::test(flavor = "current_thread")]
async fn nats_sidecar_user_subscribes_to_events_and_publishes_nothing() {
    let nats = nats_with_shipped_authorization();
    let (sidecar, sidecar_errors) = connect(&nats, "healthcheck-sidecar", "sidecar-pw").await;
    let (worker, _) = connect(&nats, "worker", "worker-pw").await;
    let mut events = sidecar.subscribe("ready-signal.>").await.unwrap();
    let mut worker_events = worker.subscribe("ready-signal.>").await.unwrap();
    sync(&worker, &mut events).await;
    sync(&worker, &mut worker_events).await;

    sidecar
        .publish("ready-signal.stack.worker.w1", "forged".into())
        .await
        .unwrap();
    let refused = violation(&sidecar_errors).await;
    assert!(
        refused.contains("ready-signal.stack.worker.w1"),
        "{refused}"
    );
    worker
        .publish("ready-signal.stack.worker.w1", "real".into())
        .await
        .unwrap();

    assert_eq!(&next(&mut events).await.payload[..], b"real");
    assert_eq!(&next(&mut worker_events).await.payload[..], b"real");
}

/// The sidecar's NATS user may not subscribe outside `ready-signal.>` (permissions violation).
#[tokio::test(flavor = "current_thread")]
async fn nats_sidecar_user_cannot_subscribe_elsewhere() {
    let nats = nats_with_shipped_authorization();
    let (sidecar, errors) = connect(&nats, "healthcheck-sidecar", "sidecar-pw").await;
    let _sub = sidecar.subscribe("app.jobs").await.unwrap();
    let refused = violation(&errors).await;
    assert!(refused.contains("app.jobs"), "{refused}");
}

/// An agent's NATS user cannot publish another agent's events; its own reach the sidecar.
#[tokio::test(flavor = "current_thread")]
async fn nats_agent_user_publishes_only_its_own_events() {
    let nats = nats_with_shipped_authorization();
    let (sidecar, _) = connect(&nats, "healthcheck-sidecar", "sidecar-pw").await;
    let (worker, worker_errors) = connect(&nats, "worker", "worker-pw").await;
    let mut events = sidecar.subscribe("ready-signal.>").await.unwrap();
    sync(&worker, &mut events).await;
    worker
        .publish("ready-signal.stack.planner.p1", "impersonated".into())
        .await
        .unwrap();
    let refused = violation(&worker_errors).await;
    assert!(
        refused.contains("ready-signal.stack.planner.p1"),
        "{refused}"
    );
    worker
        .publish("ready-signal.stack.worker.w1", "own".into())
        .await
        .unwrap();
    let m = next(&mut events).await;
    assert_eq!(m.subject.as_str(), "ready-signal.stack.worker.w1");
    assert_eq!(&m.payload[..], b"own");
}
