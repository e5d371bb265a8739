//! ready-signal on highly available Redis: real Sentinels and a real Redis Cluster on loopback,
//! a master killed while agents heartbeat, and what readers see before, during and after.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use harness::cluster::RedisSentinel;
use ready_signal::{Error, Handle, Name, Observed, Observer, ReadySignal, StoreConfig};

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

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
