//! The due index (PROTOCOL.md revision 5) against real servers: the write script keeps it in
//! the same call as the record, a reader learns from it exactly which replicas turned late,
//! records of older writers are still read, and on a Cluster a stopped master costs only the
//! shards it holds.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::time::Duration;

use harness::RedisServer;
use harness::cluster::RedisCluster;
use ready_signal::{Name, Observed, Observer, ReadySignal, StoreConfig};

mod common;
use common::{name, raw, store};

/// This checkout's write script, as every writer of the crate sends it.
const WRITE: &str = include_str!("../src/write.lua");
/// The script of a revision-3 writer (four keys, no due index).
const REVISION_3: &str = include_str!("data/write-revision-3.lua");

/// One heartbeat of `agent/replica` (instance fixed per replica) through the revision-5 script,
/// as a writer of the crate sends it, with a 3-interval TTL.
async fn beat(
    conn: &mut redis::aio::MultiplexedConnection,
    ns: &str,
    agent: &str,
    replica: &str,
    interval_ms: u64,
) {
    let instance = format!("1732540000000-{:08x}", replica.len() * 7 + agent.len());
    let epoch: i64 = redis::cmd("EVAL")
        .arg(WRITE)
        .arg(5)
        .arg(format!("ready-signal:{ns}:{agent}:r:{replica}"))
        .arg(format!("ready-signal:{ns}:{agent}:replicas"))
        .arg(format!("ready-signal:{ns}:agents"))
        .arg(format!("ready-signal:{ns}:epoch"))
        .arg(format!("ready-signal:{ns}:due"))
        .arg("put")
        .arg(&instance)
        .arg(0)
        .arg("ready")
        .arg("")
        .arg(1)
        .arg("h")
        .arg(interval_ms)
        .arg(interval_ms * 3)
        .arg(agent)
        .arg(replica)
        .arg("")
        .query_async(conn)
        .await
        .unwrap();
    assert!(epoch > 0);
}

async fn redis_ms(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let (s, us): (u64, u64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    s * 1000 + us / 1000
}

/// Each write sets the replica's entry to its beat plus two intervals, in the same call as the
/// record; a removal takes it out; entries more than 60 s past their deadline are swept by any
/// write, and the index lives at least 60 s past the deadline just written.
#[tokio::test(flavor = "multi_thread")]
async fn the_write_script_keeps_the_due_index() {
    let redis = RedisServer::start();
    let mut conn = raw(&redis).await;
    let before = redis_ms(&mut conn).await;
    beat(&mut conn, "dx", "worker", "r1", 1000).await;
    let after = redis_ms(&mut conn).await;
    let due: f64 = redis::cmd("ZSCORE")
        .arg("ready-signal:dx:due")
        .arg("worker:r1")
        .query_async(&mut conn)
        .await
        .unwrap();
    let beat_ms: u64 = redis::cmd("HGET")
        .arg("ready-signal:dx:worker:r:r1")
        .arg("beat_ms")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((before..=after).contains(&beat_ms));
    assert_eq!(due as u64, beat_ms + 2000);
    let pttl: i64 = redis::cmd("PTTL")
        .arg("ready-signal:dx:due")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((60_000..=62_000).contains(&pttl), "index pttl {pttl}");

    // An entry whose record expired long ago (expiry runs no script) is swept by the next write.
    let _: () = redis::cmd("ZADD")
        .arg("ready-signal:dx:due")
        .arg(after - 61_000)
        .arg("gone:r9")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg("ready-signal:dx:due")
        .arg(after - 30_000)
        .arg("late:r8")
        .query_async(&mut conn)
        .await
        .unwrap();
    beat(&mut conn, "dx", "worker", "r2", 1000).await;
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg("ready-signal:dx:due")
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(members, ["late:r8", "worker:r1", "worker:r2"]);

    // A crate writer that shuts down removes its record and its entry.
    let s = store(&redis, "dx");
    let handle = ReadySignal::builder("svc")
        .store(s.clone())
        .replica("a1")
        .interval(Duration::from_millis(100))
        .start()
        .unwrap();
    handle.ready();
    let observer = Observer::connect(&s).await.unwrap();
    let mut cursor = observer.due_cursor();
    let began = std::time::Instant::now();
    loop {
        let read = observer.read_parts(&mut cursor, &[0]).await.unwrap();
        if read.replicas.iter().any(|w| {
            w.status.agent.as_str() == "svc" && w.status.state == Observed::Ready && w.indexed
        }) {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "svc/a1 never read ready and indexed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle.close().await;
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg("ready-signal:dx:due")
        .arg("svc:a1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(score, None, "a removed record leaves the due index");
}

/// A full read marks every replica on time as indexed; a late read then names exactly the
/// replica whose beats stopped (read stale, no longer indexed), not those that go on beating;
/// a record gone while its entry stays reads dead; and a revision-3 writer's record, which has
/// no entry, is read in full and not indexed (so a reader polls it).
#[tokio::test(flavor = "multi_thread")]
async fn late_reads_name_only_the_replicas_that_turned_late() {
    let redis = RedisServer::start();
    let mut conn = raw(&redis).await;
    let s = store(&redis, "late");
    for r in ["r1", "r2", "r3", "r4"] {
        beat(&mut conn, "late", "worker", r, 500).await;
    }
    let _: i64 = redis::cmd("EVAL")
        .arg(REVISION_3)
        .arg(4)
        .arg("ready-signal:late:old:r:r1")
        .arg("ready-signal:late:old:replicas")
        .arg("ready-signal:late:agents")
        .arg("ready-signal:late:epoch")
        .arg(&[
            "put",
            "1732540000000-0000aaaa",
            "0",
            "ready",
            "",
            "42",
            "h",
            "60000",
            "180000",
            "old",
            "r1",
        ])
        .query_async(&mut conn)
        .await
        .unwrap();
    let observer = Observer::connect(&s).await.unwrap();
    let mut cursor = observer.due_cursor();
    assert_eq!(cursor.unread(), [0]);
    let full = observer.read_parts(&mut cursor, &[0]).await.unwrap();
    assert_eq!(full.complete, [0]);
    assert!(full.failed.is_empty());
    let indexed: BTreeSet<(String, bool)> = full
        .replicas
        .iter()
        .map(|w| {
            (
                format!("{}/{}", w.status.agent, w.status.replica),
                w.indexed,
            )
        })
        .collect();
    let want: BTreeSet<(String, bool)> = [
        ("old/r1", false),
        ("worker/r1", true),
        ("worker/r2", true),
        ("worker/r3", true),
        ("worker/r4", true),
    ]
    .iter()
    .map(|(n, i)| (n.to_string(), *i))
    .collect();
    assert_eq!(indexed, want);
    assert!(cursor.unread().is_empty());

    // r1 and r2 go on beating; r3 stops; r4's record disappears (as if expired) with its entry
    // left behind.
    let _: () = redis::cmd("DEL")
        .arg("ready-signal:late:worker:r:r4")
        .query_async(&mut conn)
        .await
        .unwrap();
    // Past r3's deadline (two intervals, 1 s), beating r1 and r2 every 50 ms.
    let began = std::time::Instant::now();
    while began.elapsed() < Duration::from_millis(1200) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        beat(&mut conn, "late", "worker", "r1", 500).await;
        beat(&mut conn, "late", "worker", "r2", 500).await;
    }
    let late = observer.read_late(&mut cursor, &[]).await.unwrap();
    let mut named: Vec<(String, Observed, bool)> = late
        .replicas
        .iter()
        .map(|w| (w.status.replica.to_string(), w.status.state, w.indexed))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        named,
        [
            ("r3".to_string(), Observed::Stale, false),
            ("r4".to_string(), Observed::Dead, false)
        ]
    );
    // The next deadline ahead is r1's or r2's, within two intervals.
    let next = late.next_in.expect("r1 and r2 have deadlines ahead");
    assert!(next <= Duration::from_millis(1000), "{next:?}");
    // Asked again at once, nothing new has turned late; a replica asked for is read anyway.
    let again = observer
        .read_late(&mut cursor, &[(name("old"), name("r1"))])
        .await
        .unwrap();
    let names: Vec<String> = again
        .replicas
        .iter()
        .map(|w| format!("{}/{}", w.status.agent, w.status.replica))
        .collect();
    assert_eq!(names, ["old/r1"]);
    assert_eq!(again.replicas[0].status.state, Observed::Ready);
    assert!(!again.replicas[0].indexed);
}

/// On a Cluster, a full read and a late read with one master stopped (SIGSTOP) fail exactly
/// the shards whose slots that master holds: the replicas of every other shard are read, ready.
/// A full read asks in chunks of a thousand records (what it holds at once is one chunk's
/// replies): across chunk boundaries every record is read once, with its due entry, and a
/// replica named again as late comes back once more, not lost or doubled by the chunking.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_read_in_chunks_reads_every_record_once() {
    let redis = RedisServer::start();
    let mut conn = raw(&redis).await;
    let s = store(&redis, "many");
    // 2,500 replicas over 25 agents: three chunks, the last one partial.
    for a in 0..25 {
        for r in 0..100 {
            beat(
                &mut conn,
                "many",
                &format!("worker-{a:02}"),
                &format!("r{r:03}"),
                60_000,
            )
            .await;
        }
    }
    let observer = Observer::connect(&s).await.unwrap();
    let mut cursor = observer.due_cursor();
    let full = observer.read_parts(&mut cursor, &[0]).await.unwrap();
    assert!(full.failed.is_empty());
    assert_eq!(full.replicas.len(), 2_500);
    let distinct: BTreeSet<(String, String)> = full
        .replicas
        .iter()
        .map(|w| (w.status.agent.to_string(), w.status.replica.to_string()))
        .collect();
    assert_eq!(distinct.len(), 2_500);
    assert!(
        full.replicas
            .iter()
            .all(|w| w.indexed && w.status.state == Observed::Ready && w.due_in.is_some())
    );
    let again = observer
        .read_late(&mut cursor, &[(name("worker-24"), name("r099"))])
        .await
        .unwrap();
    assert_eq!(again.replicas.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_cluster_master_costs_only_its_shards() {
    // Redis's default node timeout: the stopped master is not failed over (and the cluster not
    // declared down) during the reads.
    let c = RedisCluster::builder().node_timeout_ms(15_000).start();
    let url = format!("{}?cluster=true", c.seed_url());
    let s = StoreConfig::new()
        .redis(&url)
        .unwrap()
        .namespace(name("part"));
    let keys = s.keys();
    let n = 24;
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let h = ReadySignal::builder(&format!("agent-{i:02}"))
                .store(s.clone())
                .replica("r1")
                .interval(Duration::from_millis(500))
                .start()
                .unwrap();
            h.ready();
            h
        })
        .collect();
    let observer = Observer::connect(&s).await.unwrap();
    assert_eq!(observer.parts(), 64);
    let mut cursor = observer.due_cursor();
    let all: Vec<usize> = (0..64).collect();
    let began = std::time::Instant::now();
    loop {
        cursor.reset();
        let read = observer.read_parts(&mut cursor, &all).await.unwrap();
        let ready = read
            .replicas
            .iter()
            .filter(|w| w.status.state == Observed::Ready && w.indexed)
            .count();
        if ready == n && read.failed.is_empty() {
            assert_eq!(read.complete.len(), 64);
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{ready} of {n} ready and indexed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The master holding agent-00's shard stops.
    let a0 = name("agent-00");
    let stopped = c.owner_of(&keys.due(&a0)).unwrap();
    let on_stopped = |agent: &Name| c.owner_of(&keys.due(agent)) == Some(stopped);
    let lost: BTreeSet<usize> = (0..64u16)
        .filter(|p| c.owner_of(&keys.due_indexes()[usize::from(*p)]) == Some(stopped))
        .map(usize::from)
        .collect();
    c.pause(stopped);
    cursor.reset();
    let read = observer.read_parts(&mut cursor, &all).await.unwrap();
    let late = observer.read_late(&mut cursor, &[]).await.unwrap();
    c.resume(stopped);
    drop(handles);
    let failed: BTreeSet<usize> = read.failed.iter().map(|f| f.part).collect();
    assert_eq!(failed, lost, "exactly the stopped master's shards fail");
    assert!(
        late.failed.is_empty(),
        "the late read asks only the parts still read"
    );
    let read_agents: BTreeSet<String> = read
        .replicas
        .iter()
        .filter(|w| w.status.state == Observed::Ready)
        .map(|w| w.status.agent.to_string())
        .collect();
    let want: BTreeSet<String> = (0..n)
        .map(|i| format!("agent-{i:02}"))
        .filter(|a| !on_stopped(&name(a)))
        .collect();
    assert!(!want.is_empty() && want.len() < n);
    assert_eq!(read_agents, want);
    assert!(read.complete.iter().all(|p| !lost.contains(p)));
}

/// Under Sentinel (layout 1 on the master the Sentinels name), writers keep the index and a
/// full read finds every replica indexed.
#[tokio::test(flavor = "multi_thread")]
async fn the_due_index_under_sentinel() {
    let sentinel = harness::cluster::RedisSentinel::start();
    let s = StoreConfig::new()
        .redis(&sentinel.url())
        .unwrap()
        .namespace(name("sent"));
    let handles: Vec<_> = ["r1", "r2"]
        .iter()
        .map(|r| {
            let h = ReadySignal::builder("worker")
                .store(s.clone())
                .replica(r)
                .interval(Duration::from_millis(1000))
                .start()
                .unwrap();
            h.ready();
            h
        })
        .collect();
    let observer = Observer::connect(&s).await.unwrap();
    let mut cursor = observer.due_cursor();
    let began = std::time::Instant::now();
    loop {
        cursor.reset();
        let read = observer.read_parts(&mut cursor, &[0]).await.unwrap();
        let indexed = read
            .replicas
            .iter()
            .filter(|w| w.indexed && w.status.state == Observed::Ready)
            .count();
        if indexed == 2 {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{indexed} of 2 indexed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let late = observer.read_late(&mut cursor, &[]).await.unwrap();
    assert!(late.replicas.is_empty() && late.failed.is_empty());
    drop(handles);
}
