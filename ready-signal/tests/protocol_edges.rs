//! The protocol edge cases an outside implementation found (issue 22), against a real
//! redis-server and nats-server: each test failed before its fix.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use harness::{NatsServer, RedisServer};
use ready_signal::{Observed, Observer, ReadySignal};

mod common;
use common::{name, raw, store};

async fn redis_ms(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let (s, us): (u64, u64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    s * 1000 + us / 1000
}

/// Writes a record hash directly (a foreign writer), `extra` fields added or replacing.
async fn put_raw(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    beat_ms: u64,
    extra: &[(&str, &[u8])],
) {
    let beat = beat_ms.to_string();
    let mut fields: Vec<(&str, Vec<u8>)> = [
        ("v", &b"1"[..]),
        ("agent", b"worker"),
        ("replica", b"r1"),
        ("instance", b"1732540000000-0a1b2c3d"),
        ("epoch", b"1"),
        ("state", b"ready"),
        ("reason", b""),
        ("pid", b"7"),
        ("host", b"h"),
        ("interval_ms", b"1000"),
        ("ttl_ms", b"3000"),
        ("since_ms", beat.as_bytes()),
        ("beat_ms", beat.as_bytes()),
        ("seq", b"1"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_vec()))
    .collect();
    for (k, v) in extra {
        fields.retain(|(f, _)| f != k);
        fields.push((k, v.to_vec()));
    }
    let mut cmd = redis::cmd("HSET");
    cmd.arg(key);
    for (k, v) in &fields {
        cmd.arg(*k).arg(v.as_slice());
    }
    let _: i64 = cmd.query_async(conn).await.unwrap();
}

/// A reason or host that is not UTF-8 is escaped (`\xff`), not a library error that makes the
/// whole read unknown; a replicas set member that is not UTF-8 is skipped, not a failed listing.
#[tokio::test(flavor = "multi_thread")]
async fn non_utf8_text_is_escaped_not_a_read_error() {
    let redis = RedisServer::start();
    let mut conn = raw(&redis).await;
    let now = redis_ms(&mut conn).await;
    let key = "ready-signal:utf:worker:r:r1";
    put_raw(
        &mut conn,
        key,
        now,
        &[("reason", b"disk \xff full"), ("host", b"h\xfe")],
    )
    .await;
    let _: i64 = redis::cmd("PEXPIRE")
        .arg(key)
        .arg(3000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let zset = "ready-signal:utf:worker:replicas";
    let _: i64 = redis::cmd("ZADD")
        .arg(zset)
        .arg(now + 60_000)
        .arg("r1")
        .arg(now + 60_000)
        .arg(&b"r\xff2"[..])
        .query_async(&mut conn)
        .await
        .unwrap();
    let observer = Observer::connect(&store(&redis, "utf")).await.unwrap();
    let s = observer
        .replica(&name("worker"), &name("r1"))
        .await
        .unwrap();
    assert_eq!(s.state, Observed::Ready, "{s:?}");
    assert_eq!(s.reason.as_deref(), Some("disk \\xff full"));
    assert_eq!(s.host.as_deref(), Some("h\\xfe"));
    let all = observer.replicas(&name("worker")).await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    // The same record whose agent field is not UTF-8: malformed, naming the field.
    put_raw(&mut conn, key, now, &[("agent", b"w\xffr")]).await;
    let s = observer
        .replica(&name("worker"), &name("r1"))
        .await
        .unwrap();
    assert_eq!(s.state, Observed::Unknown);
    let why = s.reason.unwrap();
    assert!(
        why.contains("field `agent`") && why.contains("w\\xffr"),
        "{why}"
    );
}

/// A record over the probe's read bound says so, not `broken pipe`.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_over_the_read_bound_says_so() {
    let redis = RedisServer::start();
    let mut conn = raw(&redis).await;
    let now = redis_ms(&mut conn).await;
    let key = "ready-signal:big:worker:r:r1";
    let padding = vec![b'x'; 300 << 10];
    put_raw(&mut conn, key, now, &[("padding", &padding)]).await;
    let observer = Observer::connect_within(&store(&redis, "big"), Duration::from_secs(2))
        .await
        .unwrap();
    let err = observer
        .replica(&name("worker"), &name("r1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "record {key}: the reply is larger than the read bound of 262144 bytes"
        )),
        "{err}"
    );
}

/// Ages are bounded by the record's own TTL: an expiry longer than `ttl_ms` (not the
/// script's) does not keep a record fresh after its last beat, a record past its TTL that no
/// expiry removed says so precisely, and a beat far in the future with no expiry is not read
/// as ready forever.
#[tokio::test(flavor = "multi_thread")]
async fn ages_are_bounded_by_the_records_own_ttl() {
    let redis = RedisServer::start();
    let mut conn = raw(&redis).await;
    let observer = Observer::connect(&store(&redis, "ttl")).await.unwrap();
    let key = "ready-signal:ttl:worker:r:r1";
    let now = redis_ms(&mut conn).await;

    // Last beat 5 s ago, TTL 3 s, but an expiry of an hour: dead, with why.
    put_raw(&mut conn, key, now - 5000, &[]).await;
    let _: i64 = redis::cmd("PEXPIRE")
        .arg(key)
        .arg(3_600_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let s = observer
        .replica(&name("worker"), &name("r1"))
        .await
        .unwrap();
    assert_eq!(s.state, Observed::Dead, "{s:?}");
    let why = s.reason.unwrap();
    assert!(
        why.starts_with("record not refreshed for 5.") && why.ends_with("past its ttl of 3.0s"),
        "{why}"
    );

    // Last beat 2.5 s ago, same long expiry: stale, not fresh.
    put_raw(&mut conn, key, now - 2500, &[]).await;
    let s = observer
        .replica(&name("worker"), &name("r1"))
        .await
        .unwrap();
    assert_eq!(s.state, Observed::Stale, "{s:?}");

    // No expiry, beat an hour ahead: its age cannot be told.
    let _: i64 = redis::cmd("PERSIST")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    put_raw(&mut conn, key, now + 3_600_000, &[]).await;
    let s = observer
        .replica(&name("worker"), &name("r1"))
        .await
        .unwrap();
    assert_eq!(s.state, Observed::Unknown, "{s:?}");
    assert!(s.reason.unwrap().contains("ahead of the clock"));
}

/// A record whose agent or replica is not the one its key names reads as unknown, saying so.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_must_match_its_key() {
    let redis = RedisServer::start();
    let mut conn = raw(&redis).await;
    let now = redis_ms(&mut conn).await;
    let key = "ready-signal:keys:worker:r:r1";
    put_raw(&mut conn, key, now, &[("replica", b"r2")]).await;
    let _: i64 = redis::cmd("PEXPIRE")
        .arg(key)
        .arg(3000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let observer = Observer::connect(&store(&redis, "keys")).await.unwrap();
    let s = observer
        .replica(&name("worker"), &name("r1"))
        .await
        .unwrap();
    assert_eq!(s.state, Observed::Unknown, "{s:?}");
    assert!(
        s.reason
            .unwrap()
            .contains("names worker/r2, not the worker/r1 of its key")
    );
}

/// A change of reason alone is a transition: an event is published for it, and the time in
/// state (`since_ms`) is kept, since the state did not change.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_of_reason_alone_is_a_transition() {
    let redis = RedisServer::start();
    let nats = NatsServer::start();
    let store = store(&redis, "reason").nats(&nats.url()).unwrap();
    let mut events = Observer::connect(&store)
        .await
        .unwrap()
        .subscribe(&[name("worker")])
        .await
        .unwrap();
    let handle = ReadySignal::builder("worker")
        .store(store.clone())
        .replica("r1")
        .interval(Duration::from_millis(100))
        .start()
        .unwrap();
    handle.not_ready("warming cache");
    let next = async |events: &mut ready_signal::Events, want: &str| loop {
        let e = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
            .unwrap();
        if e.reason == want {
            return e;
        }
    };
    next(&mut events, "warming cache").await;
    let mut conn = raw(&redis).await;
    let key = "ready-signal:reason:worker:r:r1";
    let since: String = redis::cmd("HGET")
        .arg(key)
        .arg("since_ms")
        .query_async(&mut conn)
        .await
        .unwrap();
    handle.not_ready("loading model");
    let e = next(&mut events, "loading model").await;
    assert_eq!(e.state, ready_signal::State::NotReady);
    let after: String = redis::cmd("HGET")
        .arg(key)
        .arg("since_ms")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        since, after,
        "the state did not change, so neither does since_ms"
    );
    handle.close().await;
}
