//! Detection latency of a running `healthcheck-sidecar`, read from its event stream
//! (`/api/events`), for BENCHMARKS.md (driven by bench/sidecar.sh).
//!
//! - ready → not-ready: from the agent's publish call to the `change` event on the stream.
//! - stale: from the instant the record crosses the stale threshold (its `beat_ms` plus two
//!   intervals, by Redis's clock, which is this host's clock) to the `change` event.
//!
//! Usage: `bench_detect SIDECAR_PORT REDIS_URL NATS_URL NAMESPACE ROUNDS` (REDIS_URL in any form
//! `READY_SIGNAL_REDIS_URL` takes, a Cluster's seed list included).

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ready_signal::{Name, ReadySignal, StoreConfig};

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// Every `change` event's JSON with its arrival time (Unix ms, this host's clock).
fn follow(port: u16) -> mpsc::Receiver<(f64, serde_json::Value)> {
    let (tx, rx) = mpsc::channel();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /api/events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    thread::spawn(move || {
        for line in BufReader::new(s).lines() {
            let Ok(line) = line else { return };
            if let Some(d) = line.strip_prefix("data: ")
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(d)
                && v.get("kind").is_some()
                && tx.send((unix_ms(), v)).is_err()
            {
                return;
            }
        }
    });
    rx
}

fn wait_change(
    rx: &mpsc::Receiver<(f64, serde_json::Value)>,
    key: &str,
    to: &str,
) -> Option<(f64, serde_json::Value)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let (at, v) = rx.recv_timeout(left).ok()?;
        if v["key"] == key && v["to"] == to {
            return Some((at, v));
        }
    }
    None
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn summary(name: &str, mut v: Vec<f64>) {
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    println!(
        "{name}: n={n} mean={mean:.1} ms p50={:.1} ms p99={:.1} ms max={:.1} ms",
        pct(&mut v, 0.5),
        pct(&mut v, 0.99),
        pct(&mut v, 1.0)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args[1].parse().unwrap();
    let (redis_url, nats_url, ns) = (&args[2], &args[3], &args[4]);
    let rounds: usize = args[5].parse().unwrap();
    let store = StoreConfig::new()
        .redis(redis_url)
        .unwrap()
        .nats(nats_url)
        .unwrap()
        .namespace(Name::new(ns).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let events = follow(port);
    thread::sleep(Duration::from_millis(300));

    let interval = Duration::from_millis(500);
    let mut flip = Vec::new();
    let mut stale = Vec::new();
    for round in 0..rounds {
        let replica = format!("r{round}");
        let key = format!("{ns}/bench/{replica}");
        let handle = Arc::new(
            ReadySignal::builder("bench")
                .store(store.clone())
                .replica(&replica)
                .interval(interval)
                .ttl(interval * 6)
                .stall_after(Duration::from_millis(200))
                .start()
                .unwrap(),
        );
        let ticking = Arc::new(AtomicBool::new(true));
        let (h, t) = (Arc::clone(&handle), Arc::clone(&ticking));
        let ticker = thread::spawn(move || {
            while t.load(Ordering::Relaxed) {
                h.tick();
                thread::sleep(Duration::from_millis(20));
            }
        });
        handle.ready();
        wait_change(&events, &key, "ready").expect("ready not seen");
        thread::sleep(Duration::from_millis(300));
        // ready -> not-ready: publish call to event.
        let t0 = unix_ms();
        handle.not_ready("bench");
        let (at, _) = wait_change(&events, &key, "not-ready").expect("not-ready not seen");
        flip.push(at - t0);
        handle.ready();
        wait_change(&events, &key, "ready").expect("ready again not seen");
        // Freeze; the stale threshold is crossed two intervals after the last beat.
        ticking.store(false, Ordering::Relaxed);
        ticker.join().unwrap();
        let (at, _) = wait_change(&events, &key, "stale").expect("stale not seen");
        // The last beat by Redis's clock (this host's), read through the crate in any store
        // layout: the record's age (ttl - PTTL) at the time of reading.
        let status = rt.block_on(async {
            let observer = ready_signal::Observer::connect(&store).await.unwrap();
            observer
                .replica(&Name::new("bench").unwrap(), &Name::new(&replica).unwrap())
                .await
                .unwrap()
        });
        let beat = unix_ms() - status.age.unwrap().as_secs_f64() * 1000.0;
        let crossed = beat + 2.0 * interval.as_millis() as f64;
        stale.push(at - crossed);
        drop(handle);
    }
    summary("ready->not-ready (publish to SSE event)", flip);
    summary("stale (threshold crossing to SSE event)", stale);
}
