//! The clustered servers of `harness::cluster` really are clusters, and really fail over.
//!
//! These are the foundation the Sentinel, Cluster and NATS-cluster probe targets and store are
//! built on, so each test asserts what the servers themselves report (cluster state, slot
//! owners, MOVED and CROSSSLOT replies, Sentinel's master address, NATS routes and JetStream
//! leaders), before and after a node is killed.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;

use harness::cluster::{
    NatsCluster, RedisCluster, RedisSentinel, Reply, redis_command, redis_command_as, redis_session,
};

/// A failover with a 1 s node timeout / down-after takes a few seconds; this bounds it with
/// room for a loaded machine.
const FAILOVER: Duration = Duration::from_secs(30);

/// Writes `key` and waits, on the same connection, until one replica acknowledged it.
fn set_acked(addr: SocketAddr, auth: Option<&str>, key: &str) {
    let deadline = Instant::now() + FAILOVER;
    loop {
        // WAIT counts acknowledgements of this connection's writes only: SET and WAIT share it.
        let (auth_cmd, set, wait) = (
            ["AUTH", auth.unwrap_or("")],
            ["SET", key, "v"],
            ["WAIT", "1", "1000"],
        );
        let mut session: Vec<&[&str]> = Vec::new();
        if auth.is_some() {
            session.push(&auth_cmd);
        }
        session.push(&set);
        session.push(&wait);
        let replies = redis_session(addr, &session).unwrap();
        match &replies[..] {
            [.., Reply::Status(ok), Reply::Int(n)] if ok == "OK" && *n >= 1 => return,
            other => assert!(
                Instant::now() < deadline,
                "no replica acknowledged SET {key}: {other:?}"
            ),
        }
    }
}

/// Three masters with a replica each own all slots, redirect with MOVED, and refuse CROSSSLOT.
#[test]
fn redis_cluster_is_three_masters_with_replicas_and_enforces_slots() {
    let c = RedisCluster::start();
    assert_eq!(c.len(), 6);
    let masters = c.masters();
    assert_eq!(masters.len(), 3, "masters: {masters:?}\n{}", c.logs());
    for &m in &masters {
        let r = c
            .replica_of(m)
            .unwrap_or_else(|| panic!("master {m} has no replica\n{}", c.logs()));
        assert_eq!(c.role(r).as_deref(), Some("slave"));
        assert_eq!(c.role(m).as_deref(), Some("master"));
    }

    // The owner accepts the key; another master redirects with MOVED to the owner.
    let key = "ready-signal:demo:worker:r1";
    let owner = c.owner_of(key).unwrap();
    let other = *masters.iter().find(|&&m| m != owner).unwrap();
    let ok = redis_command(c.addr(owner), &["SET", key, "1"]).unwrap();
    assert_eq!(ok, Reply::Status("OK".into()));
    let moved = redis_command(c.addr(other), &["SET", key, "1"]).unwrap();
    let moved = moved.error().unwrap_or_else(|| panic!("{moved:?}"));
    assert!(
        moved.starts_with("MOVED ") && moved.ends_with(&c.addr(owner).to_string()),
        "{moved}"
    );

    // Today's key layout (three keys of one agent without a hash tag) spans slots: a script or
    // MSET over them fails with CROSSSLOT. With a hash tag they share one slot.
    let untagged = [
        "ready-signal:demo:worker:r1",
        "ready-signal:demo:worker:r2",
        "ready-signal:demo:agents",
    ];
    let at = c.addr(c.owner_of(untagged[0]).unwrap());
    let reply = redis_command(
        at,
        &["MSET", untagged[0], "a", untagged[1], "b", untagged[2], "c"],
    )
    .unwrap();
    assert!(
        reply.error().is_some_and(|e| e.starts_with("CROSSSLOT")),
        "{reply:?}"
    );
    let tagged = [
        "ready-signal:{demo:worker}:r1",
        "ready-signal:{demo:worker}:r2",
        "ready-signal:{demo:worker}:replicas",
    ];
    let at = c.addr(c.owner_of(tagged[0]).unwrap());
    let reply = redis_command(
        at,
        &["MSET", tagged[0], "a", tagged[1], "b", tagged[2], "c"],
    )
    .unwrap();
    assert_eq!(reply, Reply::Status("OK".into()));
}

/// A killed master's replica takes over its slots with the data; the old master rejoins as replica.
#[test]
fn redis_cluster_promotes_the_replica_of_a_killed_master() {
    let mut c = RedisCluster::start();
    let master = c.masters()[0];
    // Slots are covered once the cluster has started, but a replica attaches a moment later:
    // a fresh-clone CI run once found none yet (`replica_of` gave `None`).
    let replica = c.wait_replica_of(master, FAILOVER);
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| c.owner_of(k) == Some(master))
        .unwrap();
    // The write reaches the replica before the kill (the replica may still be finishing its
    // first sync right after the cluster formed).
    set_acked(c.addr(master), None, &key);

    c.kill(master);
    let start = Instant::now();
    c.wait_master(replica, FAILOVER);
    c.wait_converged(FAILOVER);
    eprintln!(
        "replica promoted and cluster ok after {:?}",
        start.elapsed()
    );
    assert_eq!(c.owner_of(&key), Some(replica));
    let got = redis_command(c.addr(replica), &["GET", &key]).unwrap();
    assert_eq!(
        got,
        Reply::Bulk(Some("v".into())),
        "master {master} replica {replica} key {key}\n{:?}\n{}",
        c.nodes_seen_by(replica),
        c.logs()
    );

    c.restart(master);
    c.wait_converged(FAILOVER);
    let deadline = Instant::now() + FAILOVER;
    while c.role(master).as_deref() != Some("slave") {
        assert!(
            Instant::now() < deadline,
            "old master did not rejoin as a replica\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.masters().len(), 3);
}

/// Three Sentinels agree on the master, know its replica and each other, and CKQUORUM passes.
#[test]
fn sentinels_agree_on_the_master_and_have_quorum() {
    let s = RedisSentinel::start();
    for i in 0..3 {
        assert_eq!(s.master_addr(i), Some(s.data_addr(0)));
        let ok = s.ckquorum(i).unwrap();
        assert!(ok.starts_with("OK"), "{ok}");
    }
    assert_eq!(s.role(0).as_deref(), Some("master"));
    assert_eq!(s.role(1).as_deref(), Some("slave"));
    assert!(s.url().starts_with("redis+sentinel://127.0.0.1:"));
}

/// Sentinels fail over to the replica with its data, and later demote the restarted old master.
#[test]
fn sentinels_fail_over_to_the_replica_when_the_master_is_killed() {
    let start = Instant::now();
    // Three seconds before a Sentinel calls a master down, not the harness's one: under load a
    // Sentinel's fresh link to the new master once went a second without an answer, the others
    // agreed, and they failed back over to the restarted, empty old master (a fresh-clone CI run).
    let mut s = RedisSentinel::builder()
        .requirepass("s3cret")
        .timing(3000, 6000)
        .start();
    eprintln!("sentinels up after {:?}", start.elapsed());
    let old = s.data_addr(0);
    set_acked(old, Some("s3cret"), "k");

    s.kill_data(0);
    let start = Instant::now();
    let new = s.wait_failover(old, FAILOVER);
    eprintln!("sentinels named {new} after {:?}", start.elapsed());
    assert_eq!(new, s.data_addr(1));
    let got = redis_command_as(new, None, "s3cret", &["GET", "k"]).unwrap();
    assert_eq!(got, Reply::Bulk(Some("v".into())));

    // Let the Sentinels settle on the new master before the old one comes back, empty. Seen
    // here under load: a Sentinel flagged the new master down a second after the switch (its
    // fresh link had not answered within down-after-milliseconds), the others agreed, and they
    // failed over again to the restarted, empty old master: the acknowledged write was gone.
    s.wait_monitoring(new, FAILOVER);
    s.restart_data(0);
    let start = Instant::now();
    // Until the Sentinels reconfigure it, the old master is back answering `role:master` while
    // every Sentinel names the new one: a probe or a store that trusts a node's own role, not
    // the Sentinels, would use the stale master. How long that lasts is the Sentinels' timing
    // (they wait for the role to stay wrong for a few seconds): on a loaded machine the restart
    // itself can take longer, and the node is already a replica when first asked. Either is
    // right; what must hold is that no Sentinel names the old master again.
    let role = s.role(0);
    eprintln!("old master back, answering role {role:?}");
    assert!(
        matches!(role.as_deref(), Some("master" | "slave")),
        "{role:?}"
    );
    assert!((0..3).all(|i| s.master_addr(i) == Some(new)));
    s.wait_replica_of(0, new, FAILOVER);
    eprintln!(
        "old master replicating from {new} after {:?}",
        start.elapsed()
    );
    s.wait_monitoring(new, FAILOVER);
    eprintln!(
        "sentinels monitoring {new} with quorum after {:?}",
        start.elapsed()
    );
}

/// CKQUORUM passes with one Sentinel of three down and fails with NOQUORUM with two down.
#[test]
fn sentinel_quorum_holds_with_one_sentinel_lost_and_fails_with_two() {
    let mut s = RedisSentinel::start();
    s.kill_sentinel(0);
    // CKQUORUM counts the Sentinels this one still sees as reachable: a killed peer counts
    // until it is flagged s_down, after down-after-milliseconds, so wait for the flag first.
    let deadline = Instant::now() + FAILOVER;
    while !s.peer_flags(1, 0).is_some_and(|f| f.contains("s_down")) {
        assert!(
            Instant::now() < deadline,
            "sentinel 0 never flagged down\n{}",
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(s.ckquorum(1).is_ok(), "{:?}", s.ckquorum(1));
    s.kill_sentinel(1);
    let deadline = Instant::now() + FAILOVER;
    loop {
        match s.ckquorum(2) {
            Err(e) if e.starts_with("NOQUORUM") => break,
            other => assert!(
                Instant::now() < deadline,
                "last sentinel still says {other:?}\n{}",
                s.logs()
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Each of three NATS nodes routes to both others, and messages cross the routes.
#[tokio::test(flavor = "current_thread")]
async fn nats_cluster_routes_every_node_to_every_other() {
    let c = NatsCluster::start();
    for i in 0..3 {
        assert_eq!(c.num_routes(i), Some(2), "{}", c.logs());
    }
    let sub_client = async_nats::connect(c.url(0)).await.unwrap();
    let mut sub = sub_client.subscribe("ready-signal.demo.x").await.unwrap();
    sub_client.flush().await.unwrap();
    let pub_client = async_nats::connect(c.url(2)).await.unwrap();
    // Interest crosses routes asynchronously: publish until one arrives, bounded.
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            pub_client
                .publish("ready-signal.demo.x", "hello".into())
                .await
                .unwrap();
            pub_client.flush().await.unwrap();
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), sub.next()).await
            {
                return m;
            }
        }
    })
    .await
    .expect("no message crossed the route");
    assert_eq!(&got.payload[..], b"hello");
}

/// A seed-list client reconnects to a survivor when its node dies; its subscription works again.
#[tokio::test(flavor = "current_thread")]
async fn nats_client_on_the_seed_list_survives_losing_its_node() {
    let mut c = NatsCluster::start();
    let client = async_nats::ConnectOptions::new()
        .connect(c.urls())
        .await
        .unwrap();
    let connected = c.index_of_port(client.server_info().port).unwrap();
    let mut sub = client.subscribe("ready-signal.demo.y").await.unwrap();
    client.flush().await.unwrap();

    c.kill(connected);
    c.wait_routes(FAILOVER);
    let survivor = (0..3).find(|&i| i != connected).unwrap();
    let other = async_nats::connect(c.url(survivor)).await.unwrap();

    let start = Instant::now();
    let got = tokio::time::timeout(FAILOVER, async {
        loop {
            // The reconnected client publishes too: its own message comes back through the
            // cluster to its restored subscription, or the other client's does.
            let _ = client.publish("ready-signal.demo.y", "mine".into()).await;
            other
                .publish("ready-signal.demo.y", "theirs".into())
                .await
                .unwrap();
            let _ = other.flush().await;
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await
            {
                return m;
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "subscription not restored after losing n{connected}\n{}",
            c.logs()
        )
    });
    eprintln!(
        "message received {:?} after killing n{connected}",
        start.elapsed()
    );
    assert!(&got.payload[..] == b"mine" || &got.payload[..] == b"theirs");
    let now = c.index_of_port(client.server_info().port).unwrap();
    assert_ne!(now, connected, "client still claims the killed node");
    assert!(c.is_alive(now));
}

/// With clustered JetStream, killing the meta leader elects a new one among the survivors.
#[test]
fn nats_jetstream_meta_leader_is_reelected_when_the_leader_is_killed() {
    let mut c = NatsCluster::builder().jetstream().start();
    let leader = c.wait_jetstream_leader(FAILOVER);
    c.kill(leader);
    c.wait_routes(FAILOVER);
    let start = Instant::now();
    let deadline = start + FAILOVER;
    let new = loop {
        let l = c.wait_jetstream_leader(FAILOVER);
        if l != leader {
            break l;
        }
        assert!(Instant::now() < deadline, "no new leader\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("new meta leader n{new} after {:?}", start.elapsed());
    assert!(c.is_alive(new));
}
