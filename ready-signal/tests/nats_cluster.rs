//! ready-signal's events on a real 3-node NATS cluster (`nats-server` processes joined by
//! routes) with one node killed: any seed works, a publisher moves to another node without
//! losing a transition, and subscriptions outlive their node.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::{Duration, Instant};

use harness::cluster::NatsCluster;
use harness::fake::FakePeer;
use ready_signal::{Delivery, Event, Events, Handle, ReadySignal, State, StoreConfig};

mod common;
use common::name;

/// `nats://127.0.0.1:P,...` of the given ports, in that order.
fn seeds(ports: &[u16]) -> String {
    let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    format!("nats://{}", hosts.join(","))
}

fn nats_store(url: &str, ns: &str) -> (StoreConfig, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreConfig::new()
        .nats(url)
        .unwrap()
        .dir(dir.path())
        .namespace(name(ns));
    (store, dir)
}

fn start(store: &StoreConfig, agent: &str) -> Handle {
    ReadySignal::builder(agent)
        .store(store.clone())
        .replica("r1")
        .interval(Duration::from_millis(100))
        .start()
        .unwrap()
}

/// How many clients named `ready-signal` node `i` has (`/connz`); 0 for a dead node.
fn clients(cluster: &NatsCluster, i: usize) -> usize {
    if !cluster.is_alive(i) {
        return 0;
    }
    cluster
        .monitor(i, "/connz")
        .and_then(|c| c.get("connections")?.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|c| c.get("name").and_then(|n| n.as_str()) == Some("ready-signal"))
        .count()
}

/// Waits until the ready-signal clients on the live nodes number `total`; returns the nodes
/// holding one.
async fn clients_settle(cluster: &NatsCluster, total: usize) -> Vec<usize> {
    let began = Instant::now();
    loop {
        let on: Vec<usize> = (0..cluster.len()).map(|i| clients(cluster, i)).collect();
        if on.iter().sum::<usize>() == total {
            return (0..on.len()).filter(|&i| on[i] > 0).collect();
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "ready-signal clients per node {on:?}, want {total} in all\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next event within `limit`, or None.
async fn next_event(events: &mut Events, limit: Duration) -> Option<Event> {
    tokio::time::timeout(limit, events.next())
        .await
        .ok()
        .flatten()
}

/// Changes the agent's reason until the subscriber sees it: once it does, the route from the
/// publisher's node knows of the subscription (interest crosses a cluster asynchronously).
async fn until_routed(handle: &Handle, events: &mut Events) {
    let began = Instant::now();
    for i in 0.. {
        let reason = format!("warming up {i}");
        handle.not_ready(&reason);
        let until = Instant::now() + Duration::from_millis(300);
        while let Some(e) =
            next_event(events, until.saturating_duration_since(Instant::now())).await
        {
            if e.reason == reason {
                return;
            }
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "no event crossed the cluster within 10 s"
        );
    }
}

/// The publisher is connected to node X with all three as seeds, a subscriber to another node.
/// X is killed between heartbeats and the agent says ready right after: the subscriber gets
/// `ready`, and the state republished once the publisher is on a live node (two events at
/// least, the last `ready`: the transition alone would be one), all within 10 s.
#[tokio::test(flavor = "multi_thread")]
async fn a_transition_as_the_publishers_node_dies_reaches_a_subscriber_on_another_node() {
    let mut cluster = NatsCluster::start();
    let (store, _dir) = nats_store(&cluster.seed_url(), "failover");
    let handle = start(&store, "worker");
    let x = clients_settle(&cluster, 1).await[0];
    let y = (x + 1) % cluster.len();
    let (sub_store, _sub_dir) = nats_store(&cluster.url(y), "failover");
    let mut events = ready_signal::subscribe(&sub_store, &[name("worker")])
        .await
        .unwrap();
    until_routed(&handle, &mut events).await;
    // A few heartbeats, then X dies and the transition follows at once.
    tokio::time::sleep(Duration::from_millis(250)).await;
    handle.tick();

    cluster.kill(x);
    let killed = Instant::now();
    handle.ready();

    let mut after = Vec::new();
    while killed.elapsed() < Duration::from_secs(10) {
        let left = Duration::from_secs(10).saturating_sub(killed.elapsed());
        match next_event(&mut events, left.min(Duration::from_millis(500))).await {
            Some(e) => {
                assert_eq!(e.instance, handle.instance());
                after.push((e.state, killed.elapsed()));
            }
            None if after.len() >= 2 && after.last().map(|a| a.0) == Some(State::Ready) => break,
            None => {}
        }
    }
    println!("events after killing node {x}: {after:?}");
    assert!(
        after.iter().any(|(s, _)| *s == State::Ready),
        "the ready transition was lost: {after:?}\n{}",
        cluster.logs()
    );
    assert!(
        after.len() >= 2 && after.last().map(|a| a.0) == Some(State::Ready),
        "no republish after the reconnect: {after:?}"
    );
    // The publisher now sits on a live node beside the subscriber.
    let on = clients_settle(&cluster, 2).await;
    assert!(!on.contains(&x), "{on:?}");
    handle.close().await;
}

/// A namespace subscription whose node dies says so (`Delivery::Resubscribed`, the cue to read
/// the store again) and goes on receiving the events of a publisher on another node.
#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_subscription_survives_the_death_of_its_node() {
    let mut cluster = NatsCluster::start();
    let (store, _dir) = nats_store(&cluster.seed_url(), "survive");
    let mut events = ready_signal::subscribe_namespace(&store).await.unwrap();
    let s = clients_settle(&cluster, 1).await[0];
    let others: Vec<u16> = (0..cluster.len())
        .filter(|&i| i != s)
        .map(|i| cluster.port(i))
        .collect();
    let (pub_store, _pub_dir) = nats_store(&seeds(&others), "survive");
    let handle = start(&pub_store, "worker");
    until_routed(&handle, &mut events).await;

    cluster.kill(s);
    let killed = Instant::now();
    loop {
        let left = Duration::from_secs(10).saturating_sub(killed.elapsed());
        match tokio::time::timeout(left, events.next_delivery()).await {
            Ok(Some(Delivery::Resubscribed)) => break,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the subscription ended with its node"),
            Err(_) => panic!("no resubscription within 10 s of the node's death"),
        }
    }
    println!("resubscribed {:?} after the kill", killed.elapsed());
    until_routed(&handle, &mut events).await;
    handle.close().await;
}

/// With a hung seed (FAKE: accepts and never answers) and a refused one listed first, both a
/// publisher and a subscriber connect through the live nodes within the 2 s connect timeout,
/// whatever order async-nats tries the seeds in, and events flow between them.
#[tokio::test(flavor = "multi_thread")]
async fn seeds_that_are_down_or_hung_are_skipped() {
    let cluster = NatsCluster::start();
    let hung = FakePeer::silent();
    let refused = harness::free_port();
    let mut ports = vec![hung.port(), refused];
    ports.extend((0..cluster.len()).map(|i| cluster.port(i)));
    let url = seeds(&ports);
    let (store, _dir) = nats_store(&url, "seeds");
    for _ in 0..8 {
        let began = Instant::now();
        let events = ready_signal::subscribe(&store, &[name("worker")]).await;
        assert!(events.is_ok(), "{:?}", events.err());
        assert!(began.elapsed() < ready_signal::CONNECT_TIMEOUT);
    }
    let mut events = ready_signal::subscribe(&store, &[name("worker")])
        .await
        .unwrap();
    let handle = start(&store, "worker");
    until_routed(&handle, &mut events).await;
    handle.close().await;
}

/// What the publisher relies on, checked rather than assumed: a message published through
/// async-nats right after its node was killed waits in the client and reaches a subscriber on
/// another node once the client has reconnected to a live seed.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_published_as_its_node_dies_is_sent_after_the_reconnect() {
    let mut cluster = NatsCluster::start();
    let (store, _dir) = nats_store(&cluster.seed_url(), "raw");
    let client = store
        .nats_client(Duration::from_secs(2))
        .await
        .unwrap()
        .unwrap();
    let x = clients_settle(&cluster, 1).await[0];
    let y = (x + 1) % cluster.len();
    let sub = async_nats::connect(cluster.url(y)).await.unwrap();
    let mut messages = sub.subscribe("raw.test").await.unwrap();
    sub.flush().await.unwrap();
    // Until a message crosses from X to Y, the route does not know of the subscription yet.
    let began = Instant::now();
    loop {
        client.publish("raw.test", "hello".into()).await.unwrap();
        client.flush().await.unwrap();
        let got = tokio::time::timeout(
            Duration::from_millis(200),
            futures_util::StreamExt::next(&mut messages),
        )
        .await;
        if matches!(got, Ok(Some(m)) if &m.payload[..] == b"hello") {
            break;
        }
        assert!(began.elapsed() < Duration::from_secs(10), "no route to Y");
    }

    cluster.kill(x);
    client
        .publish("raw.test", "after the kill".into())
        .await
        .unwrap();
    // The flush completes once the client is on a live node (or not: the message stays queued).
    let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let m = futures_util::StreamExt::next(&mut messages).await.unwrap();
            if &m.payload[..] == b"after the kill" {
                return;
            }
        }
    })
    .await;
    assert!(
        got.is_ok(),
        "the message published after the kill was lost\n{}",
        cluster.logs()
    );
}
