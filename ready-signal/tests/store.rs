//! ready-signal against real redis-server and nats-server: the documented keys and payloads,
//! every transition, stalls, fencing, reconnects and the file backend.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use harness::{NatsServer, RedisServer};
use ready_signal::{Handle, Observed, Observer, ReadySignal, ReplicaStatus, State, StoreConfig};

mod common;
use common::{name, raw, store};

fn start(store: &StoreConfig, agent: &str, replica: &str, interval_ms: u64) -> Handle {
    ReadySignal::builder(agent)
        .store(store.clone())
        .replica(replica)
        .interval(Duration::from_millis(interval_ms))
        .start()
        .unwrap()
}

/// Polls `replica` until `want` holds or `within` passes; returns the last status and when.
async fn until(
    observer: &Observer,
    agent: &str,
    replica: &str,
    within: Duration,
    want: impl Fn(&ReplicaStatus) -> bool,
) -> (ReplicaStatus, Duration) {
    let began = Instant::now();
    loop {
        let status = observer
            .replica(&name(agent), &name(replica))
            .await
            .unwrap();
        if want(&status) || began.elapsed() > within {
            return (status, began.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The record lives under the documented keys with exactly the documented fields and a TTL.
#[tokio::test(flavor = "multi_thread")]
async fn records_follow_the_documented_keys_and_fields() {
    let redis = RedisServer::start();
    let store = store(&redis, "proto");
    let handle = start(&store, "worker", "r1", 1000);
    handle.not_ready("warming cache");
    let observer = Observer::connect(&store).await.unwrap();
    until(&observer, "worker", "r1", Duration::from_secs(5), |s| {
        s.state == Observed::NotReady
    })
    .await;

    let mut conn = raw(&redis).await;
    let key = "ready-signal:proto:worker:r:r1";
    let fields: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "agent",
            "beat_ms",
            "container",
            "epoch",
            "host",
            "instance",
            "interval_ms",
            "pid",
            "reason",
            "replica",
            "seq",
            "since_ms",
            "started_epoch",
            "started_ms",
            "state",
            "ttl_ms",
            "v"
        ]
    );
    assert_eq!(fields["v"], "1");
    assert_eq!(fields["state"], "not-ready");
    assert_eq!(fields["reason"], "warming cache");
    assert_eq!(fields["instance"], handle.instance());
    assert_eq!(fields["pid"], std::process::id().to_string());
    assert_eq!(fields["interval_ms"], "1000");
    assert_eq!(fields["ttl_ms"], "3000");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 3000, "PTTL {pttl}");
    let replicas: Vec<String> = redis::cmd("ZRANGE")
        .arg("ready-signal:proto:worker:replicas")
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(replicas, ["r1"]);
    let agents: Vec<String> = redis::cmd("ZRANGE")
        .arg("ready-signal:proto:agents")
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(agents, ["worker"]);

    handle.close().await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0, "shutdown removes the record");
}

/// Each transition is readable in Redis and published on the documented NATS subject, in order.
#[tokio::test(flavor = "multi_thread")]
async fn every_transition_is_stored_and_published_on_nats() {
    let redis = RedisServer::start();
    let nats = NatsServer::start();
    let store = store(&redis, "trans").nats(&nats.url()).unwrap();

    // A plain NATS client on the documented subject sees the documented payloads.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut raw_events = client
        .subscribe("ready-signal.trans.worker.r1")
        .await
        .unwrap();
    client.flush().await.unwrap();
    let observer = Observer::connect(&store).await.unwrap();
    let mut events = observer.subscribe(&[name("worker")]).await.unwrap();

    let handle = start(&store, "worker", "r1", 200);
    let (s, _) = until(&observer, "worker", "r1", Duration::from_secs(5), |s| {
        s.state == Observed::Starting
    })
    .await;
    assert_eq!(s.state, Observed::Starting);
    handle.ready();
    let (s, _) = until(&observer, "worker", "r1", Duration::from_secs(5), |s| {
        s.state == Observed::Ready
    })
    .await;
    assert_eq!(s.instance.as_deref(), Some(handle.instance()));
    handle.not_ready("queue unreachable");
    let (s, _) = until(&observer, "worker", "r1", Duration::from_secs(5), |s| {
        s.state == Observed::NotReady
    })
    .await;
    assert_eq!(s.reason.as_deref(), Some("queue unreachable"));
    handle.stopping();
    let (s, _) = until(&observer, "worker", "r1", Duration::from_secs(5), |s| {
        s.state == Observed::Stopping
    })
    .await;
    assert_eq!(s.state, Observed::Stopping);
    handle.close().await;
    let (s, _) = until(&observer, "worker", "r1", Duration::from_secs(5), |s| {
        s.state == Observed::Dead
    })
    .await;
    assert_eq!(s.state, Observed::Dead, "the record is removed");

    let mut seen = Vec::new();
    while seen.last() != Some(&State::Stopping) {
        let e = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((e.agent.as_str(), e.replica.as_str()), ("worker", "r1"));
        if seen.last() != Some(&e.state) {
            seen.push(e.state);
        }
    }
    assert_eq!(
        seen,
        [
            State::Starting,
            State::Ready,
            State::NotReady,
            State::Stopping
        ]
    );

    let first = tokio::time::timeout(Duration::from_secs(5), raw_events.next())
        .await
        .unwrap()
        .unwrap();
    let payload: serde_json::Value = serde_json::from_slice(&first.payload).unwrap();
    let mut keys: Vec<&str> = payload
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "agent", "instance", "reason", "replica", "state", "ts_ms", "v"
        ]
    );
    assert_eq!(payload["state"], "starting");
}

/// Without ticks the record goes stale, then dead within stall_after + interval + TTL; ticks bring it back.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_work_loop_goes_stale_then_dead_while_the_process_lives() {
    let redis = RedisServer::start();
    let store = store(&redis, "stall");
    let (interval, stall_after) = (Duration::from_millis(100), Duration::from_millis(300));
    let ttl = interval * 3;
    let handle = ReadySignal::builder("worker")
        .store(store.clone())
        .replica("r1")
        .interval(interval)
        .stall_after(stall_after)
        .start()
        .unwrap();
    handle.ready();
    let observer = Observer::connect(&store).await.unwrap();
    until(&observer, "worker", "r1", Duration::from_secs(5), |s| {
        s.state == Observed::Ready
    })
    .await;
    // Ticking: stays ready across many TTLs.
    let ticking = Instant::now();
    while ticking.elapsed() < ttl * 4 {
        handle.tick();
        let s = observer
            .replica(&name("worker"), &name("r1"))
            .await
            .unwrap();
        assert_eq!(s.state, Observed::Ready, "{s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // No more ticks: the loop is "deadlocked", the publisher thread is alive.
    let last_tick = Instant::now();
    let (stale, _) = until(&observer, "worker", "r1", Duration::from_secs(10), |s| {
        s.state != Observed::Ready
    })
    .await;
    assert_eq!(stale.state, Observed::Stale, "{stale:?}");
    let (dead, _) = until(&observer, "worker", "r1", Duration::from_secs(10), |s| {
        s.state == Observed::Dead
    })
    .await;
    assert_eq!(dead.state, Observed::Dead);
    let to_dead = last_tick.elapsed();
    // Refreshes stop once a tick is overdue by stall_after; the record then lives one TTL.
    let bound = stall_after + interval + ttl + Duration::from_millis(500);
    assert!(to_dead <= bound, "dead after {to_dead:?}, bound {bound:?}");

    // The loop moves again: the same process publishes again, same instance.
    handle.tick();
    let (back, _) = until(&observer, "worker", "r1", Duration::from_secs(5), |s| {
        s.state == Observed::Ready
    })
    .await;
    assert_eq!(back.instance.as_deref(), Some(handle.instance()));
    handle.close().await;
}

/// The fence: a predecessor's late heartbeats, not-ready, stopping and removal change nothing,
/// even when its instance id (its clock) claims it started later.
#[tokio::test(flavor = "multi_thread")]
async fn an_older_instance_never_overwrites_a_newer_one() {
    let redis = RedisServer::start();
    let store = store(&redis, "fence");
    let old = ReadySignal::builder("worker")
        .store(store.clone())
        .replica("r1")
        .instance("9999999999999-ffffffff")
        .interval(Duration::from_millis(50))
        .start()
        .unwrap();
    old.ready();
    let observer = Observer::connect(&store).await.unwrap();
    until(&observer, "worker", "r1", Duration::from_secs(5), |s| {
        s.state == Observed::Ready
    })
    .await;

    // The restarted process: a newer instance takes the replica over.
    let new = start(&store, "worker", "r1", 50);
    new.ready();
    let (s, _) = until(&observer, "worker", "r1", Duration::from_secs(5), |s| {
        s.instance.as_deref() == Some(new.instance())
    })
    .await;
    assert_eq!(s.instance.as_deref(), Some(new.instance()));

    // The predecessor's late heartbeats, not-ready, stopping and removal change nothing.
    old.not_ready("old and confused");
    old.stopping();
    let racing = Instant::now();
    while racing.elapsed() < Duration::from_millis(500) {
        old.tick();
        new.tick();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    old.close().await;
    // A late one-shot `stopping` from the old instance is refused: it cannot remove the record.
    let refused = ready_signal::remove_once(
        &store,
        &name("worker"),
        &name("r1"),
        "9999999999999-ffffffff",
    )
    .await
    .unwrap_err();
    assert!(refused.is_fenced_off(), "{refused}");
    assert!(
        refused
            .to_string()
            .contains("a newer instance owns the record of worker/r1")
    );
    let s = observer
        .replica(&name("worker"), &name("r1"))
        .await
        .unwrap();
    assert_eq!(s.instance.as_deref(), Some(new.instance()));
    assert_eq!(s.state, Observed::Ready, "{s:?}");
    new.close().await;
}

/// An empty restarted Redis holds the record again within about one interval; the agent never blocks.
#[tokio::test(flavor = "multi_thread")]
async fn the_record_is_republished_within_an_interval_of_redis_coming_back() {
    let mut redis = RedisServer::start();
    let store = store(&redis, "restart");
    let interval = Duration::from_millis(300);
    let handle = start(&store, "worker", "r1", interval.as_millis() as u64);
    handle.ready();
    let observer = Observer::connect(&store).await.unwrap();
    until(&observer, "worker", "r1", Duration::from_secs(5), |s| {
        s.state == Observed::Ready
    })
    .await;

    redis.stop();
    // The agent keeps working through the outage: its calls never block.
    let during = Instant::now();
    for _ in 0..50 {
        handle.tick();
        handle.not_ready("redis away");
        handle.ready();
    }
    assert!(
        during.elapsed() < Duration::from_millis(100),
        "handle calls blocked: {:?}",
        during.elapsed()
    );
    tokio::time::sleep(interval * 2).await;
    redis.restart();
    let back = Instant::now();
    let observer = Observer::connect(&store).await.unwrap();
    let (s, took) = until(&observer, "worker", "r1", Duration::from_secs(10), |s| {
        s.state == Observed::Ready
    })
    .await;
    assert_eq!(s.state, Observed::Ready, "{s:?}");
    // One interval, plus the reconnect's own round trips on a loaded machine.
    assert!(
        took <= interval + Duration::from_millis(700),
        "republished after {took:?} ({:?} since restart)",
        back.elapsed()
    );
    handle.close().await;
}

/// With no Redis or NATS, records are files, read back the same way and removed on shutdown.
#[tokio::test(flavor = "multi_thread")]
async fn the_file_backend_works_without_any_network_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreConfig::new().dir(dir.path()).namespace(name("files"));
    let handle = start(&store, "solo", "r1", 100);
    handle.not_ready("loading model");
    let observer = Observer::connect(&store).await.unwrap();
    let (s, _) = until(&observer, "solo", "r1", Duration::from_secs(5), |s| {
        s.state == Observed::NotReady
    })
    .await;
    assert_eq!(s.reason.as_deref(), Some("loading model"));
    let path = dir.path().join("files/solo/r1.json");
    let record = ready_signal::Record::from_json(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(record.instance, handle.instance());
    handle.ready();
    until(&observer, "solo", "r1", Duration::from_secs(5), |s| {
        s.state == Observed::Ready
    })
    .await;
    assert_eq!(observer.replicas(&name("solo")).await.unwrap().len(), 1);
    handle.close().await;
    assert!(!path.exists(), "shutdown removes the file");
    let s = observer.replica(&name("solo"), &name("r1")).await.unwrap();
    assert_eq!(s.state, Observed::Dead);
}

/// A Redis outage is reported as such, naming redis, with what the agent's fallback file says.
#[tokio::test(flavor = "multi_thread")]
async fn while_redis_is_down_the_agent_writes_its_file_and_observers_say_so() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let redis_only = store(&redis, "fallback");
    let with_dir = redis_only.clone().dir(dir.path());
    let handle = start(&with_dir, "worker", "r1", 100);
    handle.ready();
    let observer = Observer::connect(&redis_only.clone().dir(dir.path()))
        .await
        .unwrap();
    until(&observer, "worker", "r1", Duration::from_secs(5), |s| {
        s.state == Observed::Ready
    })
    .await;
    redis.stop();
    let began = Instant::now();
    let err = loop {
        handle.tick();
        match observer.replica(&name("worker"), &name("r1")).await {
            Err(e) => break e.to_string(),
            Ok(_) if began.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Ok(s) => panic!("still readable after redis stopped: {s:?}"),
        }
    };
    assert!(
        err.starts_with(&format!("redis at 127.0.0.1:{}", redis.port())),
        "{err}"
    );
    assert!(err.contains("local record file says ready"), "{err}");
    handle.close().await;
}

/// Replica listing for quorums, and one call reading every agent of a namespace.
#[tokio::test(flavor = "multi_thread")]
async fn quorum_reads_list_every_replica_and_all_reads_everything() {
    let redis = RedisServer::start();
    let store = store(&redis, "quorum");
    let a = start(&store, "worker", "a", 200);
    let b = start(&store, "worker", "b", 200);
    let c = start(&store, "other", "c", 200);
    a.ready();
    b.not_ready("draining");
    c.ready();
    let observer = Observer::connect(&store).await.unwrap();
    let began = Instant::now();
    let replicas = loop {
        let r = observer.replicas(&name("worker")).await.unwrap();
        let states: Vec<Observed> = r.iter().map(|s| s.state).collect();
        if states == [Observed::Ready, Observed::NotReady]
            || began.elapsed() > Duration::from_secs(5)
        {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let names: Vec<&str> = replicas.iter().map(|s| s.replica.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    // `c` publishes on its own thread: under load its first write may come after the loop above.
    let began = Instant::now();
    let all = loop {
        let all = observer.all().await.unwrap();
        if all.len() == 3 || began.elapsed() > Duration::from_secs(5) {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(all.len(), 3);
    for h in [a, b, c] {
        h.close().await;
    }
}

/// Invalid names, TTLs and instance ids are refused with errors that say what is wrong.
#[test]
fn bad_names_and_settings_are_clear_errors() {
    let err = ReadySignal::builder("a:b").start().unwrap_err();
    assert!(err.is_invalid_name());
    let err = err.to_string();
    assert!(err.contains("invalid name `a:b`"), "{err}");
    let err = ReadySignal::builder("ok")
        .replica("x y")
        .start()
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid name `x y`"), "{err}");
    let err = ReadySignal::builder("ok")
        .store(StoreConfig::new())
        .replica("r")
        .interval(Duration::from_secs(2))
        .ttl(Duration::from_secs(3))
        .start()
        .unwrap_err()
        .to_string();
    assert!(err.contains("shorter than two intervals"), "{err}");
    let err = ReadySignal::builder("ok")
        .replica("r")
        .instance("yesterday")
        .start()
        .unwrap_err()
        .to_string();
    assert!(err.contains("field `instance`"), "{err}");
}

/// After NATS restarts, the agent publishes its current state again, so a waiter that
/// subscribed while NATS was away still learns it without waiting for a transition.
#[tokio::test(flavor = "multi_thread")]
async fn the_current_state_is_republished_after_nats_comes_back() {
    let redis = RedisServer::start();
    let mut nats = NatsServer::start();
    let store = store(&redis, "natsback").nats(&nats.url()).unwrap();
    let handle = start(&store, "worker", "r1", 200);
    handle.ready();
    let observer = Observer::connect(&store).await.unwrap();
    until(&observer, "worker", "r1", Duration::from_secs(5), |s| {
        s.state == Observed::Ready
    })
    .await;

    nats.restart();
    let mut events = observer.subscribe(&[name("worker")]).await.unwrap();
    let began = Instant::now();
    let event = loop {
        handle.tick();
        match tokio::time::timeout(Duration::from_millis(100), events.next()).await {
            Ok(Some(e)) => break e,
            Ok(None) => panic!("the subscription ended"),
            Err(_) if began.elapsed() < Duration::from_secs(10) => continue,
            Err(_) => panic!("no event within 10 s of NATS coming back"),
        }
    };
    assert_eq!(
        (event.agent.as_str(), event.state),
        ("worker", State::Ready)
    );
    assert_eq!(event.instance, handle.instance());
    handle.close().await;
}

/// The instance id of a process whose clock is `skew` away from this one's, started now: the
/// only place a writer's clock enters a write, so this is how a skewed host is injected.
fn skewed_instance(skew_ms: i64, tag: u32) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    ready_signal::instance_id((now + skew_ms) as u64, tag)
}

/// Two publishers of one replica on hosts whose clocks differ by ten minutes either way: the one
/// started later wins whichever clock is ahead; the loser stays silent, resumes once the
/// winner's record expires, and the winner, back, is then fenced in its turn.
#[tokio::test(flavor = "multi_thread")]
async fn the_later_started_instance_wins_whatever_the_clocks_and_the_loser_resumes() {
    let redis = RedisServer::start();
    let ten_minutes: i64 = 600_000;
    for (round, (first, second)) in [(ten_minutes, -ten_minutes), (-ten_minutes, ten_minutes)]
        .into_iter()
        .enumerate()
    {
        let store = store(&redis, &format!("skew{round}"));
        let observer = Observer::connect(&store).await.unwrap();
        let publisher = |skew: i64, tag: u32| {
            ReadySignal::builder("worker")
                .store(store.clone())
                .replica("r1")
                .instance(&skewed_instance(skew, tag))
                .interval(Duration::from_millis(100))
                .stall_after(Duration::from_millis(300))
                .start()
                .unwrap()
        };
        let owner = |s: &ReplicaStatus| s.instance.clone().unwrap_or_default();
        let a = publisher(first, 1);
        a.ready();
        let (s, _) = until(&observer, "worker", "r1", Duration::from_secs(5), |s| {
            owner(s) == a.instance() && s.state == Observed::Ready
        })
        .await;
        assert_eq!(owner(&s), a.instance());

        // B starts later: it takes over at its first write, whichever clock is ahead.
        let b = publisher(second, 2);
        b.ready();
        let (s, _) = until(&observer, "worker", "r1", Duration::from_secs(5), |s| {
            owner(s) == b.instance() && s.state == Observed::Ready
        })
        .await;
        assert_eq!(
            owner(&s),
            b.instance(),
            "round {round}: the later start wins"
        );
        // Both keep working: A, fenced, never writes over B.
        let racing = Instant::now();
        while racing.elapsed() < Duration::from_millis(600) {
            a.tick();
            b.tick();
            let s = observer
                .replica(&name("worker"), &name("r1"))
                .await
                .unwrap();
            assert_eq!(owner(&s), b.instance(), "round {round}: {s:?}");
            // Ready, or stale for a moment if this loaded machine starves B's thread.
            assert!(
                matches!(s.state, Observed::Ready | Observed::Stale),
                "round {round}: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // B's work loop stalls: its record expires and A, still watching, takes the replica back.
        let (s, took) = until(&observer, "worker", "r1", Duration::from_secs(5), |s| {
            a.tick();
            owner(s) == a.instance() && s.state == Observed::Ready
        })
        .await;
        assert_eq!(owner(&s), a.instance(), "round {round}: the loser resumes");
        // stall_after + TTL + one interval (700 ms), with room for a loaded machine.
        assert!(took < Duration::from_millis(2500), "resumed after {took:?}");

        // B moves again: A's new epoch is newer now, so B is the one fenced.
        let back = Instant::now();
        while back.elapsed() < Duration::from_millis(500) {
            a.tick();
            b.tick();
            let s = observer
                .replica(&name("worker"), &name("r1"))
                .await
                .unwrap();
            assert_eq!(owner(&s), a.instance(), "round {round}: {s:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        b.close().await;
        a.close().await;
        let s = observer
            .replica(&name("worker"), &name("r1"))
            .await
            .unwrap();
        assert_eq!(s.state, Observed::Dead, "A removed its record on close");
    }
}

/// The indexes clean themselves: an agent whose replicas all went silent leaves `all()` and
/// `replicas()` within one TTL of their last write, its keys expire, and the agents score is the
/// latest expiry of its live records, never lowered by a short-TTL sibling.
#[tokio::test(flavor = "multi_thread")]
async fn the_sets_shrink_and_the_agents_score_is_the_latest_live_expiry() {
    let redis = RedisServer::start();
    let store = store(&redis, "shrink");
    let observer = Observer::connect(&store).await.unwrap();
    let mut conn = raw(&redis).await;
    let quick = |agent: &str, replica: &str| {
        ReadySignal::builder(agent)
            .store(store.clone())
            .replica(replica)
            .interval(Duration::from_millis(50))
            .stall_after(Duration::from_millis(100))
            .start()
            .unwrap()
    };
    let gone = [quick("gone", "a"), quick("gone", "b")];
    let stays = ReadySignal::builder("stays")
        .store(store.clone())
        .replica("long")
        .interval(Duration::from_secs(5))
        .start()
        .unwrap();
    let short = quick("stays", "short");
    for h in gone.iter().chain([&stays, &short]) {
        h.ready();
    }
    let began = Instant::now();
    while observer.all().await.unwrap().len() < 4 && began.elapsed() < Duration::from_secs(5) {
        gone.iter().for_each(Handle::tick);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(observer.all().await.unwrap().len(), 4);

    // The short-TTL replica writes after the long one: the agent keeps the long expiry.
    let score_and_time = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut conn = conn.clone();
        async move {
            let (score, (secs, micros)): (f64, (u64, u64)) = redis::pipe()
                .cmd("ZSCORE")
                .arg("ready-signal:shrink:agents")
                .arg("stays")
                .cmd("TIME")
                .query_async(&mut conn)
                .await
                .unwrap();
            score - (secs * 1000 + micros / 1000) as f64
        }
    };
    for _ in 0..10 {
        short.tick();
        gone.iter().for_each(Handle::tick);
        tokio::time::sleep(Duration::from_millis(60)).await;
        let ahead = score_and_time(&mut conn).await;
        assert!(ahead > 10_000.0, "agents score only {ahead} ms ahead");
    }

    // Every replica of `gone` stalls (no close: they just go silent).
    let silent = Instant::now();
    let (listed, left_after) = loop {
        short.tick();
        let all = observer.all().await.unwrap();
        let left = all.iter().all(|s| s.agent.as_str() != "gone");
        if left || silent.elapsed() > Duration::from_secs(5) {
            break (all, silent.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        listed.iter().all(|s| s.agent.as_str() != "gone"),
        "still listed after {left_after:?}: {listed:?}"
    );
    // stall_after + TTL + one interval, with room for a loaded machine.
    assert!(
        left_after < Duration::from_millis(1500),
        "left after {left_after:?}"
    );
    assert!(observer.replicas(&name("gone")).await.unwrap().is_empty());
    // The writes of other agents trimmed the agents set; the replicas set expired on its own.
    tokio::time::sleep(Duration::from_millis(100)).await;
    short.tick();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let agents: Vec<String> = redis::cmd("ZRANGE")
        .arg("ready-signal:shrink:agents")
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(agents, ["stays"]);
    let exists: i64 = redis::cmd("EXISTS")
        .arg("ready-signal:shrink:gone:replicas")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0, "the replicas set of a departed agent expires");
    for h in gone {
        h.close().await;
    }
    stays.close().await;
    short.close().await;
}

/// Against a Redis that accepts and never answers (FAKE: a hung server), dropping the last
/// handle returns at once and `close()` returns within its bound, so neither can hold an async
/// runtime's worker past Docker's stop grace period.
#[tokio::test(flavor = "current_thread")]
async fn drop_never_blocks_and_close_is_bounded_when_the_store_hangs() {
    let hung = harness::fake::FakePeer::silent();
    let store = StoreConfig::new()
        .redis(&format!("redis://{}", hung.addr()))
        .unwrap()
        .namespace(name("hung"));
    let handle = start(&store, "worker", "r1", 2000);
    handle.ready();
    let clone = handle.clone();
    let dropping = Instant::now();
    drop(handle);
    drop(clone);
    assert!(
        dropping.elapsed() < Duration::from_millis(100),
        "drop took {:?}",
        dropping.elapsed()
    );
    let other = start(&store, "worker", "r2", 2000);
    let closing = Instant::now();
    other.close().await;
    let took = closing.elapsed();
    assert!(
        took <= ready_signal::CLOSE_TIMEOUT + Duration::from_millis(500),
        "close took {took:?}"
    );
    other.close().await; // a second close (any clone) returns too
}
