//! Revision 4 of PROTOCOL.md against a real redis-server: a record names the container its
//! instance runs in and when the instance took the record by the store's clock, keeps both
//! across the instance's writes, and never lends them to a writer of an older revision.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::time::{Duration, Instant};

use harness::RedisServer;
use ready_signal::{Handle, Observed, Observer, ReadySignal, ReplicaStatus, StoreConfig};

mod common;
use common::{name, raw};

/// The write script of revision 3, as writers of that revision still run it.
const REVISION_3: &str = include_str!("data/write-revision-3.lua");

fn start(store: &StoreConfig, replica: &str, interval_ms: u64) -> Handle {
    ReadySignal::builder("worker")
        .store(store.clone())
        .replica(replica)
        .interval(Duration::from_millis(interval_ms))
        .start()
        .unwrap()
}

async fn hgetall(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> HashMap<String, String> {
    redis::cmd("HGETALL")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

async fn redis_ms(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let (s, us): (u64, u64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    s * 1000 + us / 1000
}

/// Polls until `want` holds (or 5 s pass) and returns the last status.
async fn until(
    observer: &Observer,
    replica: &str,
    want: impl Fn(&ReplicaStatus) -> bool,
) -> ReplicaStatus {
    let began = Instant::now();
    loop {
        let s = observer
            .replica(&name("worker"), &name(replica))
            .await
            .unwrap();
        if want(&s) || began.elapsed() > Duration::from_secs(5) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A writer of revision 3 (its own script, 11 arguments) writes `state` as `instance`.
async fn write_revision_3(conn: &mut redis::aio::MultiplexedConnection, ns: &str, instance: &str) {
    let epoch: i64 = redis::cmd("EVAL")
        .arg(REVISION_3)
        .arg(4)
        .arg(format!("ready-signal:{ns}:worker:r:r1"))
        .arg(format!("ready-signal:{ns}:worker:replicas"))
        .arg(format!("ready-signal:{ns}:agents"))
        .arg(format!("ready-signal:{ns}:epoch"))
        .arg(&[
            "put", instance, "0", "ready", "", "42", "old-host", "1000", "3000", "worker", "r1",
        ])
        .query_async(conn)
        .await
        .unwrap();
    assert!(epoch > 0, "the revision-3 write was refused");
}

/// The record names its container (this process's, or none) and the instance's start by
/// Redis's clock, keeps both across heartbeats, and a new instance starts anew; the reader's
/// `started` is the store's now less that start.
#[tokio::test(flavor = "multi_thread")]
async fn the_record_carries_the_container_and_the_instances_start() {
    let redis = RedisServer::start();
    let store = StoreConfig::new()
        .redis(&redis.url())
        .unwrap()
        .namespace(name("ident"));
    let mut conn = raw(&redis).await;
    let key = "ready-signal:ident:worker:r:r1";
    let before = redis_ms(&mut conn).await;
    let first = start(&store, "r1", 100);
    first.ready();
    let observer = Observer::connect(&store).await.unwrap();
    until(&observer, "r1", |s| s.state == Observed::Ready).await;
    let taken = hgetall(&mut conn, key).await;
    let expect_container = ready_signal::container::current().unwrap_or_default();
    assert_eq!(taken["container"], expect_container);
    assert_eq!(taken["started_epoch"], taken["epoch"]);
    let started_ms: u64 = taken["started_ms"].parse().unwrap();
    assert!(
        started_ms >= before,
        "started {started_ms} before the test began ({before})"
    );
    assert!(started_ms <= taken["beat_ms"].parse::<u64>().unwrap());

    tokio::time::sleep(Duration::from_millis(350)).await;
    let later = hgetall(&mut conn, key).await;
    assert!(later["seq"].parse::<u64>().unwrap() > taken["seq"].parse::<u64>().unwrap());
    assert_eq!(
        later["started_ms"], taken["started_ms"],
        "kept across the instance's writes"
    );
    let s = observer
        .replica(&name("worker"), &name("r1"))
        .await
        .unwrap();
    let now = redis_ms(&mut conn).await;
    let started = s
        .started
        .expect("a revision-4 record says when its instance started");
    assert!(started >= Duration::from_millis(350), "{started:?}");
    assert!(
        started <= Duration::from_millis(now - started_ms),
        "{started:?}"
    );
    assert_eq!(s.container.as_deref(), ready_signal::container::current());

    // A new instance of the same replica takes the record: a new start, under its own epoch.
    let second = start(&store, "r1", 100);
    second.ready();
    until(&observer, "r1", |s| {
        s.instance.as_deref() == Some(second.instance())
    })
    .await;
    let retaken = hgetall(&mut conn, key).await;
    assert!(retaken["started_ms"].parse::<u64>().unwrap() > started_ms);
    assert_eq!(retaken["started_epoch"], retaken["epoch"]);
    assert_ne!(retaken["epoch"], taken["epoch"]);
    let s = observer
        .replica(&name("worker"), &name("r1"))
        .await
        .unwrap();
    assert!(
        s.started.unwrap() < started,
        "{:?} >= {started:?}",
        s.started
    );
    second.close().await;
    drop(first);
}

/// A record of a revision-3 writer reads as before, with no container and no start; and when a
/// revision-3 writer takes over a revision-4 record (its script rewrites only the fields it
/// knows), the start left behind is not lent to it.
#[tokio::test(flavor = "multi_thread")]
async fn older_writers_records_read_without_a_borrowed_identity() {
    let redis = RedisServer::start();
    let store = StoreConfig::new()
        .redis(&redis.url())
        .unwrap()
        .namespace(name("older"));
    let mut conn = raw(&redis).await;
    let observer = Observer::connect(&store).await.unwrap();

    write_revision_3(&mut conn, "older", "1732540000000-0000000a").await;
    let s = observer
        .replica(&name("worker"), &name("r1"))
        .await
        .unwrap();
    assert_eq!(s.state, Observed::Ready, "{s:?}");
    assert_eq!((s.container.clone(), s.started), (None, None));

    let new = start(&store, "r1", 100);
    new.ready();
    let s = until(&observer, "r1", |s| {
        s.instance.as_deref() == Some(new.instance())
    })
    .await;
    assert!(s.started.is_some(), "{s:?}");
    // The revision-3 writer's first write takes the record (and fences `new`).
    write_revision_3(&mut conn, "older", "1732540000000-0000000b").await;
    let fields = hgetall(&mut conn, "ready-signal:older:worker:r:r1").await;
    assert!(
        fields.contains_key("started_ms"),
        "the older script leaves the field: {fields:?}"
    );
    let s = observer
        .replica(&name("worker"), &name("r1"))
        .await
        .unwrap();
    assert_eq!(s.instance.as_deref(), Some("1732540000000-0000000b"));
    assert_eq!(s.state, Observed::Ready, "{s:?}");
    assert_eq!(
        (s.container, s.started),
        (None, None),
        "the fields left behind are not its own"
    );
    drop(new);
}

/// The file backend records the same two fields by this host's clock, kept across writes.
#[tokio::test(flavor = "multi_thread")]
async fn file_records_carry_the_container_and_the_instances_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreConfig::new().dir(dir.path()).namespace(name("files"));
    let handle = start(&store, "r1", 100);
    handle.ready();
    let observer = Observer::connect(&store).await.unwrap();
    let s = until(&observer, "r1", |s| s.state == Observed::Ready).await;
    let path = dir.path().join("files/worker/r1.json");
    let first = ready_signal::Record::from_json(&std::fs::read(&path).unwrap()).unwrap();
    assert!(first.started_ms > 0);
    assert_eq!(
        first.container,
        ready_signal::container::current().unwrap_or_default()
    );
    assert_eq!(s.container.as_deref(), ready_signal::container::current());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = ready_signal::Record::from_json(&std::fs::read(&path).unwrap()).unwrap();
    assert!(later.seq > first.seq);
    assert_eq!(
        later.started_ms, first.started_ms,
        "kept across the instance's writes"
    );
    let s = observer
        .replica(&name("worker"), &name("r1"))
        .await
        .unwrap();
    assert!(
        s.started.unwrap() >= Duration::from_millis(300),
        "{:?}",
        s.started
    );
    handle.close().await;
}
