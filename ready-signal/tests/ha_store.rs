//! ready-signal on highly available Redis: real Sentinels and a real Redis Cluster on loopback,
//! a master killed while agents heartbeat, and what readers see before, during and after.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use harness::cluster::{RedisCluster, RedisSentinel, Reply, redis_command};
use ready_signal::{Error, Handle, Layout, Observed, Observer, ReadySignal, StoreConfig};

mod common;
use common::name;

/// `n` agents (one replica each) heartbeating every `interval`, never stalling.
fn agents(store: &StoreConfig, n: usize, interval: Duration) -> Vec<Handle> {
    (0..n)
        .map(|i| {
            let h = ReadySignal::builder(&format!("agent-{i:02}"))
                .store(store.clone())
                .replica("r1")
                .interval(interval)
                .stall_after(Duration::from_secs(600))
                .start()
                .unwrap();
            h.ready();
            h
        })
        .collect()
}

/// What one fresh observer (as a probe makes) reads of the namespace: the agents whose record
/// is ready and was written less than `since` ago, or the store error.
async fn fresh_agents(store: &StoreConfig, since: Duration) -> Result<BTreeSet<String>, Error> {
    let observer = Observer::connect_within(store, Duration::from_secs(2)).await?;
    let all = observer.all().await?;
    Ok(all
        .iter()
        .filter(|s| s.state == Observed::Ready && s.age.is_some_and(|a| a < since))
        .map(|s| s.agent.to_string())
        .collect())
}

/// Polls until every agent of `want` is ready and written less than `since()` ago; returns
/// how long that took. Every read error on the way must be a store error (unknown), never
/// anything else.
async fn until_all_fresh(
    store: &StoreConfig,
    want: &BTreeSet<String>,
    since: impl Fn() -> Duration,
    within: Duration,
) -> Duration {
    let began = Instant::now();
    let mut last = None;
    while began.elapsed() < within {
        match fresh_agents(store, since()).await {
            Ok(fresh) if fresh.is_superset(want) => return began.elapsed(),
            Ok(fresh) => last = Some(format!("{} of {} fresh", fresh.len(), want.len())),
            Err(e) => {
                assert!(e.is_store_unavailable(), "not a store error: {e}");
                last = Some(e.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("not every agent fresh within {within:?}; last read: {last:?}");
}

/// Sentinel: agents follow a failover. After the master is killed mid-heartbeat, every record
/// is back on the new master, ready and rewritten, within one interval (plus slack for the
/// machine) of the Sentinels naming it, and none is missing from the namespace.
#[tokio::test(flavor = "multi_thread")]
async fn sentinel_failover_every_record_is_rewritten_within_an_interval() {
    let mut s = RedisSentinel::start();
    let store = StoreConfig::new()
        .redis(&s.url())
        .unwrap()
        .namespace(name("ha"));
    let interval = Duration::from_millis(1000);
    let n = 20;
    let handles = agents(&store, n, interval);
    let want: BTreeSet<String> = (0..n).map(|i| format!("agent-{i:02}")).collect();
    until_all_fresh(&store, &want, || interval * 2, Duration::from_secs(10)).await;

    let old = s.data_addr(0);
    s.kill_data(0);
    let killed = Instant::now();
    // Readers during the failover: store errors (unknown) or records, never anything else.
    let during = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut errors = 0;
            while killed.elapsed() < Duration::from_secs(2) {
                if let Err(e) = fresh_agents(&store, Duration::from_secs(60)).await {
                    assert!(e.is_store_unavailable(), "not a store error: {e}");
                    errors += 1;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            errors
        })
    };
    let new = tokio::task::spawn_blocking(move || {
        let new = s.wait_failover(old, Duration::from_secs(30));
        (s, new)
    });
    let (s, new) = new.await.unwrap();
    let promoted = Instant::now();
    assert_ne!(new, old);
    let took = until_all_fresh(
        &store,
        &want,
        || promoted.elapsed(),
        Duration::from_secs(10),
    )
    .await;
    eprintln!(
        "sentinel: master killed, new master {new} known after {:?}; every record rewritten \
         {took:?} after that",
        promoted - killed
    );
    assert!(
        took <= interval + Duration::from_millis(1500),
        "records took {took:?} after the new master was known (interval {interval:?})"
    );
    let errors = during.await.unwrap();
    eprintln!("sentinel: {errors} reads during the failover reported the store unavailable");
    drop(handles);
    drop(s);
}

/// Sentinel: a manual failover (`SENTINEL FAILOVER`) demotes a master that stays up, so writers
/// connected to it meet `READONLY` or a killed connection rather than a dead host; they ask the
/// Sentinels again and every record is rewritten on the new master within one interval (plus
/// slack) of its promotion.
#[tokio::test(flavor = "multi_thread")]
async fn sentinel_manual_failover_writers_follow_the_demotion() {
    let s = RedisSentinel::start();
    let store = StoreConfig::new()
        .redis(&s.url())
        .unwrap()
        .namespace(name("ha"));
    let interval = Duration::from_millis(1000);
    let n = 10;
    let handles = agents(&store, n, interval);
    let want: BTreeSet<String> = (0..n).map(|i| format!("agent-{i:02}")).collect();
    until_all_fresh(&store, &want, || interval * 2, Duration::from_secs(10)).await;
    let old = s.data_addr(0);
    let reply = redis_command(
        s.sentinel_addr(0),
        &["SENTINEL", "FAILOVER", s.master_name()],
    )
    .unwrap();
    assert!(reply.error().is_none(), "{reply:?}");
    let (s, new) = tokio::task::spawn_blocking(move || {
        let new = s.wait_failover(old, Duration::from_secs(30));
        (s, new)
    })
    .await
    .unwrap();
    let promoted = Instant::now();
    let took = until_all_fresh(
        &store,
        &want,
        || promoted.elapsed(),
        Duration::from_secs(10),
    )
    .await;
    eprintln!("sentinel: manual failover to {new}; every record rewritten {took:?} after it");
    assert!(
        took <= interval + Duration::from_millis(1500),
        "records took {took:?} after the new master was known (interval {interval:?})"
    );
    drop(handles);
    drop(s);
}

/// Sentinel: with every Sentinel gone and the master up, writers connected to the master keep
/// their records alive (the Sentinels are asked alongside each write, not before it); readers,
/// which cannot find the master, say unknown.
#[tokio::test(flavor = "multi_thread")]
async fn sentinel_all_sentinels_down_writers_keep_writing() {
    let mut s = RedisSentinel::start();
    let store = StoreConfig::new()
        .redis(&s.url())
        .unwrap()
        .namespace(name("ha"));
    let interval = Duration::from_millis(500);
    let n = 5;
    let handles = agents(&store, n, interval);
    let want: BTreeSet<String> = (0..n).map(|i| format!("agent-{i:02}")).collect();
    until_all_fresh(&store, &want, || interval * 2, Duration::from_secs(10)).await;
    for i in 0..3 {
        s.kill_sentinel(i);
    }
    // Past the records' TTL (3 intervals): only refreshed records are still there.
    tokio::time::sleep(interval * 5).await;
    let keys = store.keys();
    for agent in &want {
        let key = keys.record(&name(agent), &name("r1"));
        let pttl = redis_command(s.data_addr(0), &["PTTL", &key]).unwrap();
        assert!(matches!(pttl, Reply::Int(ms) if ms > 0), "{key}: {pttl:?}");
    }
    let e = fresh_agents(&store, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(e.is_store_unavailable(), "{e}");
    drop(handles);
}

/// Sentinels with a password of their own and data nodes with another, both given by file
/// (`READY_SIGNAL_REDIS_SENTINEL_PASSWORD_FILE`, `READY_SIGNAL_REDIS_PASSWORD_FILE`): agents
/// publish and readers read; without the Sentinels' password readers get a store error that
/// says so, and no password appears in any error.
#[tokio::test(flavor = "multi_thread")]
async fn sentinel_passwords_come_from_their_files() {
    const DATA: &str = "canary-data-5e1b";
    const SENTINEL: &str = "canary-sentinel-77a0";
    let s = RedisSentinel::builder()
        .requirepass(DATA)
        .sentinel_password(SENTINEL)
        .start();
    let files = tempfile::tempdir().unwrap();
    let data_file = files.path().join("data");
    let sentinel_file = files.path().join("sentinel");
    std::fs::write(&data_file, format!("{DATA}\n")).unwrap();
    std::fs::write(&sentinel_file, SENTINEL).unwrap();
    let env = |with_sentinel: bool| {
        let vars = [
            ("READY_SIGNAL_REDIS_URL", s.url()),
            (
                "READY_SIGNAL_REDIS_PASSWORD_FILE",
                data_file.display().to_string(),
            ),
            (
                "READY_SIGNAL_REDIS_SENTINEL_PASSWORD_FILE",
                if with_sentinel {
                    sentinel_file.display().to_string()
                } else {
                    String::new()
                },
            ),
            ("READY_SIGNAL_NAMESPACE", "ha".to_string()),
        ];
        StoreConfig::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
            .unwrap()
    };
    let store = env(true);
    assert!(!format!("{store:?} {}", store.describe()).contains("canary"));
    let handles = agents(&store, 3, Duration::from_millis(500));
    let want: BTreeSet<String> = (0..3).map(|i| format!("agent-{i:02}")).collect();
    until_all_fresh(
        &store,
        &want,
        || Duration::from_secs(1),
        Duration::from_secs(10),
    )
    .await;
    let e = fresh_agents(&env(false), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(e.is_store_unavailable(), "{e}");
    assert!(e.to_string().contains("NOAUTH"), "{e}");
    assert!(!e.to_string().contains("canary"), "{e}");
    drop(handles);
}

/// A Sentinel URL naming a master no Sentinel monitors: readers and writers get a store error
/// that names the master, not a hang or a crash.
#[tokio::test(flavor = "multi_thread")]
async fn sentinel_wrong_master_name_is_a_clear_store_error() {
    let s = RedisSentinel::start();
    let url = s
        .url()
        .replace(&format!("/{}", s.master_name()), "/nosuchmaster");
    let dir = tempfile::tempdir().unwrap();
    let store = StoreConfig::new().redis(&url).unwrap().dir(dir.path());
    let observer = Observer::connect(&store).await.unwrap();
    let e = observer
        .replica(&name("worker"), &name("r1"))
        .await
        .unwrap_err();
    assert!(e.is_store_unavailable(), "{e}");
    assert!(
        e.to_string()
            .contains("no sentinel monitors a master named `nosuchmaster`"),
        "{e}"
    );
    let e = ready_signal::publish_once(
        &store,
        &name("worker"),
        &name("r1"),
        &ready_signal::new_instance_id(),
        ready_signal::State::Ready,
        "",
        Duration::from_secs(3),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("`nosuchmaster`"), "{e}");
}

/// Redis Cluster (3 masters, a replica each): 30 agents spread over every master publish
/// through the crate with layout-2 keys (one slot per agent, as Redis's own `CLUSTER KEYSLOT`
/// says), and every record reads back listed, per agent and per replica. Then a master is
/// killed mid-heartbeat: reads meanwhile are store errors (unknown) or records, and within one
/// interval (plus slack) of its replica's promotion every agent is listed, ready and rewritten,
/// by a fresh reader and by a long-lived one (the sidecar's) that never reconnects.
#[tokio::test(flavor = "multi_thread")]
async fn cluster_records_spread_over_masters_survive_a_master_failover() {
    let c = RedisCluster::start();
    let url = format!("{}?cluster=true", c.seed_url());
    let store = StoreConfig::new()
        .redis(&url)
        .unwrap()
        .namespace(name("ha"));
    let keys = store.keys();
    assert_eq!(keys.layout(), Layout::Cluster);
    let interval = Duration::from_millis(1000);
    let n = 30;
    let handles = agents(&store, n, interval);
    let want: BTreeSet<String> = (0..n).map(|i| format!("agent-{i:02}")).collect();
    until_all_fresh(&store, &want, || interval * 2, Duration::from_secs(15)).await;

    // One agent's four keys share one slot, by the cluster's own reckoning.
    let a0 = name("agent-00");
    let slots: Vec<i64> = [
        keys.record(&a0, &name("r1")),
        keys.replicas(&a0),
        keys.agents(&a0),
        keys.epoch(&a0),
    ]
    .iter()
    .map(
        |k| match redis_command(c.addr(0), &["CLUSTER", "KEYSLOT", k]).unwrap() {
            Reply::Int(slot) => {
                assert_eq!(slot, i64::from(ready_signal::keyslot(k.as_bytes())), "{k}");
                slot
            }
            other => panic!("CLUSTER KEYSLOT {k}: {other:?}"),
        },
    )
    .collect();
    assert!(slots.windows(2).all(|w| w[0] == w[1]), "{slots:?}");
    // The agents are spread over every master.
    let masters = c.masters();
    let owners: BTreeSet<usize> = want
        .iter()
        .map(|a| c.wait_owner_of(&keys.record(&name(a), &name("r1")), Duration::from_secs(10)))
        .collect();
    assert_eq!(
        owners,
        masters.iter().copied().collect(),
        "owners of the records"
    );
    // Every record reads back: listed, per agent, per replica (the sidecar's long-lived reader).
    let sidecar = Observer::connect(&store).await.unwrap();
    assert_eq!(sidecar.all().await.unwrap().len(), n);
    for agent in &want {
        let replicas = sidecar.replicas(&name(agent)).await.unwrap();
        assert_eq!(replicas.len(), 1, "{agent}");
        assert_eq!(replicas[0].state, Observed::Ready, "{agent}");
        let one = sidecar.replica(&name(agent), &name("r1")).await.unwrap();
        assert_eq!(one.state, Observed::Ready, "{agent}");
    }

    // Kill the master of agent-00's slot, mid-heartbeat.
    let victim = c.wait_owner_of(&keys.record(&a0, &name("r1")), Duration::from_secs(10));
    let heir = c.wait_replica_of(victim, Duration::from_secs(10));
    let mut c = c;
    c.kill(victim);
    let killed = Instant::now();
    let during = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut errors = 0;
            while killed.elapsed() < Duration::from_secs(2) {
                if let Err(e) = fresh_agents(&store, Duration::from_secs(60)).await {
                    assert!(e.is_store_unavailable(), "not a store error: {e}");
                    errors += 1;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            errors
        })
    };
    let c = tokio::task::spawn_blocking(move || {
        c.wait_master(heir, Duration::from_secs(30));
        c
    })
    .await
    .unwrap();
    let promoted = Instant::now();
    let took = until_all_fresh(
        &store,
        &want,
        || promoted.elapsed(),
        Duration::from_secs(10),
    )
    .await;
    eprintln!(
        "cluster: master {victim} killed, replica {heir} promoted after {:?}; every record \
         rewritten {took:?} after that",
        promoted - killed
    );
    assert!(
        took <= interval + Duration::from_millis(1500),
        "records took {took:?} after the promotion (interval {interval:?})"
    );
    let errors = during.await.unwrap();
    eprintln!("cluster: {errors} reads during the failover reported the store unavailable");
    // The long-lived reader follows the new slot map by itself.
    let began = Instant::now();
    loop {
        match sidecar.all().await {
            Ok(all) if all.iter().filter(|s| s.state == Observed::Ready).count() == n => break,
            Ok(_) => {}
            Err(e) => assert!(e.is_store_unavailable(), "{e}"),
        }
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "the long-lived observer did not recover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(handles);
    drop(c);
}

/// Redis Cluster: a manual failover (`CLUSTER FAILOVER` on a replica) demotes a live master;
/// writers follow the `MOVED` replies and every record is rewritten on the new master within
/// one interval (plus slack) of the switch.
#[tokio::test(flavor = "multi_thread")]
async fn cluster_manual_failover_writers_follow_moved() {
    let c = RedisCluster::start();
    let url = format!("{}?cluster=true", c.seed_url());
    let store = StoreConfig::new()
        .redis(&url)
        .unwrap()
        .namespace(name("ha"));
    let interval = Duration::from_millis(1000);
    let n = 12;
    let handles = agents(&store, n, interval);
    let want: BTreeSet<String> = (0..n).map(|i| format!("agent-{i:02}")).collect();
    until_all_fresh(&store, &want, || interval * 2, Duration::from_secs(15)).await;
    let record = store.keys().record(&name("agent-00"), &name("r1"));
    let old = c.wait_owner_of(&record, Duration::from_secs(10));
    let heir = c.wait_replica_of(old, Duration::from_secs(10));
    let reply = redis_command(c.addr(heir), &["CLUSTER", "FAILOVER"]).unwrap();
    assert!(reply.error().is_none(), "{reply:?}");
    let c = tokio::task::spawn_blocking(move || {
        c.wait_master(heir, Duration::from_secs(30));
        c
    })
    .await
    .unwrap();
    let promoted = Instant::now();
    let took = until_all_fresh(
        &store,
        &want,
        || promoted.elapsed(),
        Duration::from_secs(10),
    )
    .await;
    eprintln!("cluster: manual failover {old} -> {heir}; every record rewritten {took:?} after it");
    assert!(
        took <= interval + Duration::from_millis(1500),
        "records took {took:?} after the switch (interval {interval:?})"
    );
    drop(handles);
    drop(c);
}

/// Redis Cluster readers follow `ASK` and `MOVED` (a real slot migration, driven by hand): with
/// an agent's slot migrating and its record already moved, the record is read from the target
/// node after `ASKING`; once the slot belongs to the target, a reader whose slot map still names
/// the old owner follows `MOVED`. Listing the namespace works at every step.
#[tokio::test(flavor = "multi_thread")]
async fn cluster_readers_follow_ask_and_moved_during_a_slot_migration() {
    let c = RedisCluster::start();
    let url = format!("{}?cluster=true", c.seed_url());
    let files = tempfile::tempdir().unwrap();
    let store = StoreConfig::new()
        .redis(&url)
        .unwrap()
        .dir(files.path())
        .namespace(name("mig"));
    let (agent, replica) = (name("m1"), name("r1"));
    ready_signal::publish_once(
        &store,
        &agent,
        &replica,
        &ready_signal::new_instance_id(),
        ready_signal::State::Ready,
        "",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let keys = store.keys();
    let record = keys.record(&agent, &replica);
    let slot = ready_signal::keyslot(record.as_bytes()).to_string();
    let from = c.wait_owner_of(&record, Duration::from_secs(10));
    let to = *c.masters().iter().find(|&&m| m != from).unwrap();
    let id = |i: usize| {
        c.nodes_seen_by(i)
            .unwrap()
            .into_iter()
            .find(|v| v.flags.iter().any(|f| f == "myself"))
            .unwrap()
            .id
    };
    let ok = |i: usize, args: &[&str]| {
        let reply = redis_command(c.addr(i), args).unwrap();
        assert!(reply.error().is_none(), "{args:?}: {reply:?}");
    };
    let port = c.addr(to).port().to_string();
    let migrate = |key: &str| ok(from, &["MIGRATE", "127.0.0.1", &port, key, "0", "5000"]);
    let (id_from, id_to) = (id(from), id(to));
    ok(to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &id_from]);
    ok(from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &id_to]);
    migrate(&record);

    // The record is on `to`, the indexes still on `from`: ASK for the record.
    let observer = Observer::connect_within(&store, Duration::from_secs(2))
        .await
        .unwrap();
    let status = observer.replica(&agent, &replica).await.unwrap();
    assert_eq!(status.state, Observed::Ready, "{status:?}");
    let all = observer.all().await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].state, Observed::Ready);

    // The rest of the slot moves and the slot is handed over: MOVED for a stale slot map.
    for key in [
        keys.replicas(&agent),
        keys.agents(&agent),
        keys.epoch(&agent),
    ] {
        migrate(&key);
    }
    ok(to, &["CLUSTER", "SETSLOT", &slot, "NODE", &id_to]);
    ok(from, &["CLUSTER", "SETSLOT", &slot, "NODE", &id_to]);
    let status = observer.replica(&agent, &replica).await.unwrap();
    assert_eq!(status.state, Observed::Ready, "{status:?}");
    let all = observer.all().await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].state, Observed::Ready);
}

/// Waits until `heir` is a master with slots in the eyes of every node but `hung` (which
/// answers nothing), or panics.
fn wait_promoted_despite(c: &RedisCluster, heir: usize, hung: usize, timeout: Duration) {
    let addr = c.addr(heir);
    let began = Instant::now();
    loop {
        let promoted = c.role(heir).as_deref() == Some("master")
            && (0..c.len()).filter(|&j| j != hung).all(|j| {
                c.nodes_seen_by(j).is_some_and(|views| {
                    views.iter().any(|v| {
                        v.addr == addr && v.has_slots && v.flags.iter().any(|f| f == "master")
                    })
                })
            });
        if promoted {
            return;
        }
        assert!(
            began.elapsed() < timeout,
            "node {heir} not promoted within {timeout:?}\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Cluster: a master that hangs (SIGSTOP: its port still accepts connections, nothing answers)
/// is a seed of every writer. Once its replica is promoted, every agent's record is rewritten
/// within two intervals (plus slack), both the agents that were heartbeating when it hung and
/// agents that start while it hangs (whose first connection must not wait on it): a writer
/// asks its seeds at once and gives redis-rs per-node timeouts, so a hung node costs a
/// fraction of a write instead of every write until it resumes.
#[tokio::test(flavor = "multi_thread")]
async fn cluster_writers_recover_while_a_master_hangs() {
    let c = RedisCluster::builder()
        .masters(3)
        .replicas(1)
        .node_timeout_ms(1000)
        .start();
    let url = format!("{}?cluster=true", c.seed_url());
    let store = StoreConfig::new()
        .redis(&url)
        .unwrap()
        .namespace(name("hang"));
    let keys = store.keys();
    let interval = Duration::from_millis(400);
    let n = 12;
    let mut handles = agents(&store, n, interval);
    let mut want: BTreeSet<String> = (0..n).map(|i| format!("agent-{i:02}")).collect();
    until_all_fresh(&store, &want, || interval * 2, Duration::from_secs(15)).await;

    // Hang a master that holds some agent's record, and is not the node the harness asks
    // first.
    let victim = want
        .iter()
        .map(|a| c.wait_owner_of(&keys.record(&name(a), &name("r1")), Duration::from_secs(10)))
        .find(|&m| m != 0)
        .expect("an agent on a master other than node 0");
    let heir = c.wait_replica_of(victim, Duration::from_secs(10));
    c.pause(victim);
    let paused = Instant::now();
    // Agents that start while the node hangs: their first connection meets it.
    let late = 4;
    for i in n..n + late {
        let h = ReadySignal::builder(&format!("agent-{i:02}"))
            .store(store.clone())
            .replica("r1")
            .interval(interval)
            .stall_after(Duration::from_secs(600))
            .start()
            .unwrap();
        h.ready();
        handles.push(h);
        want.insert(format!("agent-{i:02}"));
    }
    let c = tokio::task::spawn_blocking(move || {
        wait_promoted_despite(&c, heir, victim, Duration::from_secs(20));
        c
    })
    .await
    .unwrap();
    let promoted = Instant::now();
    let took = until_all_fresh(
        &store,
        &want,
        || promoted.elapsed(),
        Duration::from_secs(10),
    )
    .await;
    eprintln!(
        "cluster: master {victim} hung, replica {heir} promoted after {:?}; every record \
         rewritten {took:?} after that",
        promoted - paused
    );
    assert!(
        took <= interval * 2 + Duration::from_millis(2000),
        "records took {took:?} after the promotion (interval {interval:?})"
    );
    c.resume(victim);
    drop(handles);
    drop(c);
}
