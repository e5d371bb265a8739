//! Load: 200 `healthcheck` processes started at once against one real redis-server and one real
//! nats-server, as a host full of containers probing the same dependencies at the same moment.
//!
//! Every process must give the right verdict (healthy sets exit 0, the failing set exits 1 and
//! names the refused target) and exit before its deadline plus 100 ms, measured from its own
//! spawn. The deadline is a generous 5 s because the test machine has 2 shared cores.
//! `cargo nextest run -p healthcheck --test load --no-capture` prints the distribution.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use harness::{NatsServer, RedisServer, free_port};

const PROBES: usize = 200;
const DEADLINE: Duration = Duration::from_secs(5);
const SLACK: Duration = Duration::from_millis(100);

/// One probe's result.
#[derive(Debug)]
struct Run {
    set: &'static str,
    want: i32,
    code: Option<i32>,
    elapsed: Duration,
    output: String,
}

/// 200 probes started at once against one redis and one nats all give the right verdict in time.
#[test]
fn two_hundred_probes_at_once() {
    let redis = RedisServer::start();
    let nats = NatsServer::start();
    let dead = format!("tcp://127.0.0.1:{}", free_port());
    let sets: [(&str, Vec<String>, i32); 4] = [
        ("redis", vec![redis.url()], 0),
        ("nats", vec![nats.url()], 0),
        ("redis+nats", vec![redis.url(), nats.url()], 0),
        (
            "redis+nats+refused",
            vec![redis.url(), nats.url(), dead.clone()],
            1,
        ),
    ];

    // Spawn all first (as fast as fork allows), then wait for each on its own thread, so each
    // exit time is measured from that process's own spawn.
    let mut waiting = Vec::with_capacity(PROBES);
    let first_spawn = Instant::now();
    for i in 0..PROBES {
        let (set, targets, want) = &sets[i % sets.len()];
        let started = Instant::now();
        let child = harness::clean_command(env!("CARGO_BIN_EXE_healthcheck"))
            .arg("--timeout")
            .arg("5s")
            .args(targets)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (set, want) = (*set, *want);
        waiting.push(thread::spawn(move || {
            let out = child.wait_with_output().unwrap();
            let elapsed = started.elapsed();
            Run {
                set,
                want,
                code: out.status.code(),
                elapsed,
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            }
        }));
    }
    let spawn_spread = first_spawn.elapsed();
    let runs: Vec<Run> = waiting.into_iter().map(|h| h.join().unwrap()).collect();

    let mut times: Vec<Duration> = runs.iter().map(|r| r.elapsed).collect();
    times.sort();
    let pct = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
    println!(
        "LOAD {PROBES} probes spawned within {spawn_spread:?}, --timeout 5s: median {:?}, p90 {:?}, p99 {:?}, max {:?}; \
         exit 0: {}, exit 1: {}",
        pct(50),
        pct(90),
        pct(99),
        times[times.len() - 1],
        runs.iter().filter(|r| r.code == Some(0)).count(),
        runs.iter().filter(|r| r.code == Some(1)).count(),
    );

    let mut bad = Vec::new();
    for r in &runs {
        if r.code != Some(r.want) {
            bad.push(format!(
                "{}: exit {:?}, want {}: {}",
                r.set, r.code, r.want, r.output
            ));
        }
        if r.elapsed > DEADLINE + SLACK {
            bad.push(format!("{}: took {:?}: {}", r.set, r.elapsed, r.output));
        }
        if r.want == 1 && !(r.output.contains(&dead) && r.output.contains("refused")) {
            bad.push(format!(
                "{}: does not name the refused target: {}",
                r.set, r.output
            ));
        }
        if r.want == 0 && !r.output.starts_with("healthy: ") {
            bad.push(format!("{}: {}", r.set, r.output));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {PROBES} probes wrong:\n{}",
        bad.len(),
        bad.join("\n")
    );
}
