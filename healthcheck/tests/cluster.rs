//! The `healthcheck` binary against real clustered servers on loopback (the harness's Redis under
//! Sentinel, Redis Cluster and NATS cluster): verdicts while healthy, during a failover or a node
//! loss, and after it; reasons naming the target and address; no secret printed.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use harness::cluster::{NatsCluster, RedisCluster, RedisSentinel};

const CANARY: &str = "canary-Pw-5e1b27";

fn healthcheck() -> Command {
    harness::clean_command(env!("CARGO_BIN_EXE_healthcheck"))
}

/// Runs the probe on `targets` with a 2 s deadline; returns (exit code, stdout + stderr).
fn probe(targets: &[&str]) -> (i32, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = healthcheck()
        .args(["--timeout", "2s"])
        .args(targets)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    (status.code().expect("exited with a code"), text)
}

/// Probes until `done` holds for a verdict, at most `limit`; returns the last verdict.
fn probe_until(
    targets: &[&str],
    limit: Duration,
    done: impl Fn(i32, &str) -> bool,
) -> (i32, String) {
    let start = Instant::now();
    loop {
        let (code, out) = probe(targets);
        if done(code, &out) || start.elapsed() > limit {
            return (code, out);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every Sentinel names the same live master: healthy, naming the master and the agreement.
#[test]
fn sentinel_healthy_names_master_and_agreement() {
    let s = RedisSentinel::start();
    let url = s.url();
    let master = s.data_addr(0).to_string();
    let all = format!("master {master} (3 of 3 sentinels agree)");
    // On a loaded machine a Sentinel may miss the 200 ms grace once: all three are awaited.
    let (code, out) = probe_until(&[&url], Duration::from_secs(10), |_, o| o.contains(&all));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&all), "{out}");
    let (code, out) = probe(&[&format!("{url}?quorum=true")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("quorum ok"), "{out}");
}

/// Sentinels that monitor no master of that name make the target unhealthy, naming a Sentinel.
#[test]
fn sentinel_unknown_master_name_is_unhealthy() {
    let s = RedisSentinel::start();
    let url = s
        .url()
        .replace(&format!("/{}", s.master_name()), "/nosuchmaster");
    let (code, out) = probe(&[&url]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("monitors no master named `nosuchmaster`"),
        "{out}"
    );
}

/// Two real Sentinel groups monitoring different masters under one name disagree: unhealthy,
/// naming what each Sentinel said.
#[test]
fn sentinels_that_disagree_are_unhealthy() {
    let a = RedisSentinel::start();
    let b = RedisSentinel::start();
    let url = format!(
        "redis+sentinel://{},{}/{}",
        a.sentinel_addr(0),
        b.sentinel_addr(0),
        a.master_name()
    );
    let (code, out) = probe(&[&url]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("sentinels disagree"), "{out}");
    assert!(out.contains(&a.data_addr(0).to_string()), "{out}");
    assert!(out.contains(&b.data_addr(0).to_string()), "{out}");
}

/// No Sentinel reachable: unhealthy, each Sentinel's address and reason in the line.
#[test]
fn sentinel_none_answering_is_unhealthy() {
    let mut s = RedisSentinel::start();
    for i in 0..3 {
        s.kill_sentinel(i);
    }
    let (code, out) = probe(&[&s.url()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no sentinel answered"), "{out}");
    for a in s.sentinel_addrs() {
        assert!(out.contains(&a.to_string()), "{out}");
    }
}

/// One Sentinel down: still healthy (the others agree), and the line names the silent one;
/// with two down, quorum=true fails on CKQUORUM.
#[test]
fn sentinel_lost_still_healthy_quorum_lost_unhealthy() {
    let mut s = RedisSentinel::start();
    s.kill_sentinel(2);
    let (code, out) = probe(&[&s.url()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 of 3 sentinels agree"), "{out}");
    assert!(
        out.contains(&format!("no answer from {}", s.sentinel_addr(2))),
        "{out}"
    );
    s.kill_sentinel(1);
    let quorum = format!("{}?quorum=true", s.url());
    let (code, out) = probe_until(&[&quorum], Duration::from_secs(15), |c, _| c == 1);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("CKQUORUM failed"), "{out}");
}

/// The master killed: unhealthy with the reason (the named master refuses) while the Sentinels
/// fail over, then healthy again naming the new master.
#[test]
fn sentinel_master_killed_unhealthy_then_new_master_healthy() {
    let mut s = RedisSentinel::start();
    let url = s.url();
    let old = s.data_addr(0);
    s.kill_data(0);
    let (code, out) = probe(&[&url]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("connecting to {old}")), "{out}");
    assert!(
        out.contains("master `mymaster` named by ") && out.contains(" of 3 sentinels"),
        "{out}"
    );
    let new = s.wait_failover(old, Duration::from_secs(30));
    let (code, out) = probe_until(&[&url], Duration::from_secs(10), |c, _| c == 0);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("master {new} ")), "{out}");
}

/// `wait` on a Sentinel store whose master hangs (SIGSTOP: connections open, no answer): an
/// attempt stuck on the hung master is cut, and a later one follows the failover, well before the
/// wait's own deadline. (With attempts uncapped, the first ran to the deadline.)
#[test]
fn wait_follows_a_failover_while_the_master_hangs() {
    let s = RedisSentinel::start();
    let url = s.url();
    let old = s.data_addr(0);
    s.pause_data(0);
    let began = std::time::Instant::now();
    let out = healthcheck()
        .args(["wait", "--timeout", "40s", &url, "--", "true"])
        .output()
        .unwrap();
    let took = began.elapsed();
    s.resume_data(0);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "after {took:?}: {text}");
    assert!(
        took < Duration::from_secs(25),
        "the wait took {took:?}: stuck on the hung master {old}? {text}"
    );
}

/// The master's password from the URL authenticates; a wrong one is an auth failure; the
/// password is printed nowhere.
#[test]
fn sentinel_master_password_never_printed() {
    let s = RedisSentinel::builder().requirepass(CANARY).start();
    let with = |pw: &str| s.url().replacen("://", &format!("://:{pw}@"), 1);
    let (code, out) = probe(&[&with(CANARY)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("redis+sentinel://:***@"), "{out}");
    assert!(!out.contains(CANARY), "{out}");
    let (code, out) = probe(&[&with(&format!("x{CANARY}"))]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("WRONGPASS"), "{out}");
    assert!(!out.contains(CANARY), "{out}");
    let (code, out) = probe(&[&s.url()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("NOAUTH"), "{out}");
}

/// Publishes `ready` once for each agent (replica `r1`, a 60 s TTL) to the ready-signal store
/// at `url`, namespace `e2e`, through the crate.
fn publish_ready(url: &str, agents: &[String]) {
    use ready_signal::{Name, State, StoreConfig};
    let files = tempfile::tempdir().unwrap();
    let store = StoreConfig::new()
        .redis(url)
        .unwrap()
        .dir(files.path())
        .namespace(Name::new("e2e").unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for agent in agents {
            ready_signal::publish_once(
                &store,
                &Name::new(agent).unwrap(),
                &Name::new("r1").unwrap(),
                &ready_signal::new_instance_id(),
                State::Ready,
                "",
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        }
    });
}

/// The probe on `target` with the ready-signal store at `url`, namespace `e2e`.
fn probe_ready(url: &str, target: &str) -> (i32, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = healthcheck()
        .env("READY_SIGNAL_REDIS_URL", url)
        .env("READY_SIGNAL_NAMESPACE", "e2e")
        .args(["--timeout", "3s", target])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    (status.code().expect("exited with a code"), text)
}

/// `ready://` with the store under Sentinel: agents published through the crate are healthy;
/// a master name no Sentinel monitors is unhealthy, naming it, with no password printed.
#[test]
fn ready_store_under_sentinel() {
    let s = RedisSentinel::builder().requirepass(CANARY).start();
    let url = s.url().replacen("://", &format!("://:{CANARY}@"), 1);
    publish_ready(&url, &["a1".into(), "a2".into()]);
    let (code, out) = probe_ready(&url, "ready://a1,a2");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("a1 ready") && out.contains("a2 ready"),
        "{out}"
    );
    assert!(!out.contains(CANARY), "{out}");
    let wrong = url.replace(&format!("/{}", s.master_name()), "/nosuchmaster");
    let (code, out) = probe_ready(&wrong, "ready://a1");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("no sentinel monitors a master named `nosuchmaster`"),
        "{out}"
    );
    assert!(!out.contains(CANARY), "{out}");
}

/// `ready://` with the store on a Redis Cluster (layout 2): agents published through the crate
/// are healthy from a seed list or a single seed; with the master of one agent's slot killed
/// the verdict is unhealthy saying unknown (never a crash), and healthy again once its replica
/// is promoted.
#[test]
fn ready_store_on_a_cluster() {
    let mut c = RedisCluster::start();
    let url = format!("{}?cluster=true", c.seed_url());
    let agents: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
    publish_ready(&url, &agents);
    let target = format!("ready://{}", agents.join(","));
    let (code, out) = probe_ready(&url, &target);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("c0 ready") && out.contains("c5 ready"),
        "{out}"
    );
    let one_seed = format!("redis://{}?cluster=true", c.addr(1));
    let (code, out) = probe_ready(&one_seed, &target);
    assert_eq!(code, 0, "{out}");

    let keys = ready_signal::StoreConfig::new()
        .redis(&url)
        .unwrap()
        .namespace(ready_signal::Name::new("e2e").unwrap())
        .keys();
    let record = keys.record(
        &ready_signal::Name::new("c0").unwrap(),
        &ready_signal::Name::new("r1").unwrap(),
    );
    let victim = c.wait_owner_of(&record, Duration::from_secs(10));
    let heir = c.wait_replica_of(victim, Duration::from_secs(10));
    // The record has reached the replica before its master goes.
    std::thread::sleep(Duration::from_millis(300));
    c.kill(victim);
    let (code, out) = probe_ready(&url, &target);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unknown"), "{out}");
    c.wait_master(heir, Duration::from_secs(30));
    let (code, out) = probe_until_ready(&url, &target, Duration::from_secs(10));
    assert_eq!(code, 0, "{out}");
}

/// [`probe_ready`] until healthy, at most `limit`.
fn probe_until_ready(url: &str, target: &str, limit: Duration) -> (i32, String) {
    let start = Instant::now();
    loop {
        let (code, out) = probe_ready(url, target);
        if code == 0 || start.elapsed() > limit {
            return (code, out);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A converged 3-master cluster: every node healthy with its own role; all_masters=true proves
/// every master answers; role=replica on a master is unhealthy.
#[test]
fn cluster_healthy_reports_role_and_all_masters() {
    let c = RedisCluster::start();
    // A loaded machine can delay the cluster bus past the 1 s node timeout (a flicker of
    // pfail, which the check rightly reports): healthy verdicts are awaited, not sampled once.
    let healthy =
        |targets: &[&str]| probe_until(targets, Duration::from_secs(15), |code, _| code == 0);
    let masters = c.masters();
    let master = masters[0];
    let replica = c.wait_replica_of(master, Duration::from_secs(10));
    let m = format!("redis://{}?cluster=true", c.addr(master));
    let (code, out) = healthy(&[&m, &format!("{m}&all_masters=true")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("cluster ok, 3 masters, role master"), "{out}");
    assert!(out.contains("every master answers"), "{out}");
    let r = format!("redis://{}?cluster=true&role=replica", c.addr(replica));
    let (code, out) = healthy(&[&r]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("role replica"), "{out}");
    let (code, out) = probe(&[&format!("{m}&role=replica")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("role is master, want replica"), "{out}");
}

/// A master killed: all_masters=true names it at once; then the other nodes report the slots in
/// fail (cluster_state:fail) with the node's address; after the replica's promotion, healthy.
#[test]
fn cluster_master_killed_unhealthy_then_healthy_after_failover() {
    let mut c = RedisCluster::start();
    let masters = c.masters();
    let (victim, watcher) = (masters[1], masters[0]);
    let promoted = c.wait_replica_of(victim, Duration::from_secs(10));
    let dead = c.addr(victim);
    let url = format!("redis://{}?cluster=true", c.addr(watcher));
    c.kill(victim);
    let (code, out) = probe(&[&format!("{url}&all_masters=true")]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("master {dead}: connecting to {dead}")),
        "{out}"
    );
    // First fail? (pfail) in this node's view, then fail: either names the dead master.
    let named = format!("master {dead} fail");
    let (code, out) = probe_until(&[&url], Duration::from_secs(20), |c, o| {
        c == 1 && o.contains(&named)
    });
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("slots ok") && out.contains(&named), "{out}");
    c.wait_master(promoted, Duration::from_secs(30));
    c.wait_converged(Duration::from_secs(30));
    let (code, out) = probe_until(&[&url], Duration::from_secs(10), |c, _| c == 0);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("cluster ok, 3 masters"), "{out}");
}

/// A 3-node NATS cluster given as a seed list: healthy, naming the server that answered;
/// cluster=3 holds from INFO and from /routez.
#[test]
fn nats_seed_list_healthy_with_cluster_size() {
    let n = NatsCluster::start();
    let seeds = n.seed_url();
    let (code, out) = probe(&[&seeds]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("via 127.0.0.1:"), "{out}");
    let monitor = format!("http://127.0.0.1:{}", n.monitor_port(1));
    let (code, out) = probe(&[
        &format!("{seeds}?cluster=3"),
        &format!("{seeds}?cluster=3&monitor={monitor}"),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("cluster of 3 servers"), "{out}");
}

/// A node killed: the seed list (the dead node first) stays healthy via a live one; cluster=3
/// turns unhealthy with the count, from INFO and from /routez.
#[test]
fn nats_node_killed_seed_list_healthy_cluster_three_unhealthy() {
    let mut n = NatsCluster::start();
    let seeds = n.seed_url();
    n.kill(0);
    let (code, out) = probe(&[&seeds]);
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains(&format!("via 127.0.0.1:{} ", n.port(0))),
        "{out}"
    );
    let by_info = format!("{seeds}?cluster=3");
    let (code, out) = probe_until(&[&by_info], Duration::from_secs(10), |c, _| c == 1);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("cluster of 2 servers, want 3 (connect_urls in INFO)"),
        "{out}"
    );
    let by_routes = format!(
        "{seeds}?cluster=3&monitor=http://127.0.0.1:{}",
        n.monitor_port(2)
    );
    let (code, out) = probe_until(&[&by_routes], Duration::from_secs(10), |c, _| c == 1);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("cluster of 2 servers, want 3 (routes in /routez)"),
        "{out}"
    );
    let (code, out) = probe(&[&format!("{seeds}?cluster=2")]);
    assert_eq!(code, 0, "{out}");
}

/// No seed reachable: unhealthy, every seed's address and reason in the line.
#[test]
fn nats_no_seed_answering_is_unhealthy() {
    let mut n = NatsCluster::start();
    for i in 0..n.len() {
        n.kill(i);
    }
    let (code, out) = probe(&[&n.seed_url()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no seed answered"), "{out}");
    for i in 0..n.len() {
        assert!(out.contains(&format!("127.0.0.1:{}", n.port(i))), "{out}");
    }
}

/// Clustered JetStream: jetstream=true with monitor= names the meta leader from /jsz; with two
/// of three nodes killed the meta group has no leader and the target is unhealthy saying so.
#[test]
fn nats_jetstream_meta_leader_from_jsz() {
    let mut n = NatsCluster::builder().jetstream().start();
    let leader = n.wait_jetstream_leader(Duration::from_secs(30));
    let url = format!(
        "{}?jetstream=true&monitor=http://127.0.0.1:{}",
        n.seed_url(),
        n.monitor_port(0)
    );
    let (code, out) = probe(&[&url]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("meta leader {}", n.server_name(leader))),
        "{out}"
    );
    n.kill(1);
    n.kill(2);
    let (code, out) = probe_until(&[&url], Duration::from_secs(30), |c, _| c == 1);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("jetstream meta leader unknown"), "{out}");
}

/// `wait` on a cluster whose JetStream meta leader was killed sees the new one well before its
/// deadline; and a JetStream request left unanswered (as during the election) is reported within
/// the probe's own 1 s bound, not as the deadline's bare "timed out".
#[test]
fn nats_jetstream_without_a_meta_leader_says_so_and_wait_sees_the_new_one() {
    let mut n = NatsCluster::builder().jetstream().start();
    let leader = n.wait_jetstream_leader(Duration::from_secs(30));
    let url = format!("{}?jetstream=true", n.seed_url());
    n.kill(leader);
    let began = std::time::Instant::now();
    let out = healthcheck()
        .args(["wait", "--timeout", "40s", &url])
        .output()
        .unwrap();
    let took = began.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "after {took:?}: {text}");
    assert!(took < Duration::from_secs(25), "took {took:?}: {text}");

    // The unanswered request itself, held open by a fake peer (named as such in the harness).
    let fake = harness::fake::FakePeer::nats_jetstream_silent();
    let began = std::time::Instant::now();
    let (code, out) = probe(&[&format!("nats://{}?jetstream=true", fake.addr())]);
    assert!(began.elapsed() < Duration::from_millis(1900), "{out}");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no answer to $JS.API.INFO within 1s"), "{out}");
    drop(fake);
}

/// A seed list with a user and password: the password is never printed, healthy or not.
#[test]
fn nats_seed_list_password_never_printed() {
    let n = NatsCluster::builder()
        .config("authorization { user: app, password: $NATS_PW }\n")
        .env("NATS_PW", CANARY)
        .start();
    let hosts = n.seed_url().replacen("nats://", "", 1);
    let (code, out) = probe(&[&format!("nats://app:{CANARY}@{hosts}")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nats://***:***@127.0.0.1:"), "{out}");
    assert!(!out.contains(CANARY), "{out}");
    let (code, out) = probe(&[&format!("nats://app:x{CANARY}@{hosts}")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Authorization Violation"), "{out}");
    assert!(!out.contains(CANARY), "{out}");
}

/// A FAKE Sentinel that accepts and never answers (a real one will not hang on demand) beside
/// two real ones: the verdict does not wait for the deadline, and names the silent one.
#[test]
fn sentinel_silent_one_does_not_hold_the_verdict() {
    let s = RedisSentinel::start();
    let silent = harness::fake::FakePeer::silent();
    let url = format!(
        "redis+sentinel://{},{},{}/{}",
        s.sentinel_addr(0),
        s.sentinel_addr(1),
        silent.addr(),
        s.master_name()
    );
    // Healthy at all proves it: waiting for the silent one would end at the deadline.
    let (code, out) = probe(&[&url]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 of 3 sentinels agree"), "{out}");
    assert!(
        out.contains(&format!("no answer from {}", silent.addr())),
        "{out}"
    );
}

/// A FAKE Sentinel announcing an array of 99,999,999 elements: refused by the bound, not
/// allocated, and the reason names it.
#[test]
fn sentinel_huge_array_is_refused_by_the_bound() {
    let fake = harness::fake::FakePeer::replying(b"*99999999\r\n");
    let (code, out) = probe(&[&format!("redis+sentinel://{}/mymaster", fake.addr())]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("over the 1024 bound"), "{out}");
    assert!(out.contains(&fake.addr().to_string()), "{out}");
}

/// A FAKE NATS seed that never answers beside a real server: healthy via the real one at once.
#[test]
fn nats_silent_seed_beside_a_real_one_is_healthy() {
    let n = NatsCluster::builder().size(1).start();
    let silent = harness::fake::FakePeer::silent();
    let url = format!("nats://{},127.0.0.1:{}", silent.addr(), n.port(0));
    let (code, out) = probe(&[&url]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("via 127.0.0.1:{}", n.port(0))),
        "{out}"
    );
}

/// Probing without pause across a Sentinel failover and the old master's return: no healthy
/// verdict ever names the dead (or the restarted, not yet demoted) old master, every unhealthy
/// one says why, and the verdict ends healthy on the new master.
#[test]
fn sentinel_verdicts_across_failover_never_name_the_old_master() {
    let mut s = RedisSentinel::start();
    let url = s.url();
    let old = s.data_addr(0);
    let (code, out) = probe(&[&url]);
    assert_eq!(code, 0, "{out}");
    s.kill_data(0);
    let mut verdicts = Vec::new();
    let start = Instant::now();
    let new = loop {
        verdicts.push(probe(&[&url]));
        let agreed = (0..3).map(|i| s.master_addr(i)).collect::<Vec<_>>();
        if let Some(Some(a)) = agreed.first()
            && *a != old
            && agreed.iter().all(|x| x == &Some(*a))
            && verdicts.last().is_some_and(|(c, _)| *c == 0)
        {
            break *a;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no failover: {verdicts:?}"
        );
    };
    // The old master back, empty, claiming role:master until the Sentinels demote it.
    s.restart_data(0);
    for _ in 0..10 {
        verdicts.push(probe(&[&url]));
    }
    let old_named = format!("master {old} ");
    for (code, out) in &verdicts {
        if *code == 0 {
            assert!(
                !out.contains(&old_named),
                "healthy on the old master: {out}"
            );
            assert!(out.contains(&format!("master {new} ")), "{out}");
        } else {
            assert!(
                out.contains("connecting to")
                    || out.contains("role is")
                    || out.contains("disagree"),
                "unhealthy without a reason: {out}"
            );
        }
    }
    assert!(verdicts.iter().any(|(c, _)| *c == 1), "{verdicts:?}");
    assert_eq!(verdicts.last().unwrap().0, 0, "{verdicts:?}");
}

/// A real Sentinel that monitors nothing (started with no `sentinel monitor` line) answers PING,
/// which is all `redis-cli ping` checks; the probe says it is unhealthy and why.
#[test]
fn sentinel_monitoring_nothing_is_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let port = harness::free_port();
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
    let mut sentinel = Command::new(bin)
        .arg(&conf)
        .arg("--sentinel")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("redis+sentinel://127.0.0.1:{port}/mymaster");
    // Until it listens the reason is `connection refused`; then it answers, monitoring nothing.
    let (code, out) = probe_until(&[&url], Duration::from_secs(10), |_, o| {
        !o.contains("refused")
    });
    let _ = sentinel.kill();
    let _ = sentinel.wait();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "sentinel 127.0.0.1:{port} monitors no master named `mymaster`"
        )),
        "{out}"
    );
}

/// A FAKE silent NATS seed beside a refused one: at the deadline the reason names the seed that
/// got furthest (connected, waiting for INFO), not only the list.
#[test]
fn nats_seed_list_deadline_names_the_furthest_seed() {
    let silent = harness::fake::FakePeer::silent();
    let refused = format!("127.0.0.1:{}", harness::free_port());
    let (code, out) = probe(&[&format!("nats://{refused},{}", silent.addr())]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("timed out after 2s talking to {}", silent.addr())),
        "{out}"
    );
}
