//! Benchmark (bench/nats-cluster.sh): what the death of a NATS node costs a running agent's
//! events (issue 16), on a real 3-node cluster (the test harness's `NatsCluster`).
//!
//! Per run: the agent (a `ReadySignal` with all three nodes as seeds) is on node X, a plain
//! subscriber on another node Y. X is killed (SIGKILL) and the agent changes state at once. Two
//! times from the kill: until the subscriber has an event with the new state (the transition,
//! sent once the client is on a live node), and until it has a second one (the state
//! republished after the reconnection). A new state not received within 5 s counts as lost. X
//! is then restarted and the routes awaited before the next run.
//!
//! ```text
//! bench_nats_failover [--runs 50] [--json FILE]
//! ```

use std::error::Error;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use harness::cluster::NatsCluster;
use ready_signal::{Name, ReadySignal, State, StoreConfig, decode_event};

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The node holding the agent's connection (`/connz`, name `ready-signal`), once there is one.
fn agent_node(cluster: &NatsCluster) -> Option<usize> {
    (0..cluster.len()).find(|&i| {
        cluster.is_alive(i)
            && cluster
                .monitor(i, "/connz")
                .and_then(|c| c.get("connections")?.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .any(|c| c.get("name").and_then(|n| n.as_str()) == Some("ready-signal"))
    })
}

fn summary(name: &str, ms: &[f64]) -> (String, serde_json::Value) {
    let mut s = ms.to_vec();
    s.sort_by(f64::total_cmp);
    let line = format!(
        "{name}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(&s, 0.5),
        pct(&s, 0.9),
        pct(&s, 0.99),
        s.last().copied().unwrap_or(f64::NAN)
    );
    let json = serde_json::json!({"p50": pct(&s, 0.5), "p90": pct(&s, 0.9), "p99": pct(&s, 0.99),
        "max": s.last(), "samples_ms": ms});
    (line, json)
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut runs = 50usize;
    let mut json: Option<String> = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => runs = val()?.parse()?,
            "--json" => json = Some(val()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut cluster = NatsCluster::start();
    let dir = tempfile::tempdir()?;
    let store = StoreConfig::new()
        .nats(&cluster.seed_url())?
        .dir(dir.path())
        .namespace(Name::new("failover")?);
    let subject = "ready-signal.failover.worker.r1";
    let agent = ReadySignal::builder("worker")
        .store(store)
        .replica("r1")
        .interval(Duration::from_millis(500))
        .start()?;

    let mut transition_ms = Vec::new();
    let mut republish_ms = Vec::new();
    let mut lost = 0usize;
    for run in 0..runs {
        let began = Instant::now();
        let x = loop {
            if let Some(x) = agent_node(&cluster) {
                break x;
            }
            if began.elapsed() > Duration::from_secs(10) {
                return Err("the agent is connected to no node".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let y = (x + 1) % cluster.len();
        let (transition, republish) = rt.block_on(async {
            let sub = async_nats::connect(cluster.url(y)).await?;
            let mut messages = sub.subscribe(subject).await?;
            sub.flush().await?;
            // Until an event crosses from X to Y, the route does not know of the subscription.
            'routed: for i in 0.. {
                let reason = format!("route check {run}.{i}");
                agent.not_ready(&reason);
                let until = tokio::time::Instant::now() + Duration::from_millis(300);
                while let Ok(Some(m)) = tokio::time::timeout_at(until, messages.next()).await {
                    if decode_event(&m.payload).is_ok_and(|e| e.reason == reason) {
                        break 'routed;
                    }
                }
                if i > 30 {
                    return Err::<_, Box<dyn Error>>("no event crossed the cluster".into());
                }
            }
            cluster.kill(x);
            let killed = Instant::now();
            let (state, reason) = if run % 2 == 0 {
                (State::Ready, String::new())
            } else {
                (State::NotReady, format!("failover {run}"))
            };
            match state {
                State::Ready => agent.ready(),
                _ => agent.not_ready(&reason),
            }
            let mut transition = None;
            let mut republish = None;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while republish.is_none() {
                let Ok(Some(m)) = tokio::time::timeout_at(deadline, messages.next()).await else {
                    break;
                };
                let Ok(e) = decode_event(&m.payload) else {
                    continue;
                };
                if e.state == state && e.reason == reason {
                    let at = killed.elapsed().as_secs_f64() * 1e3;
                    match transition {
                        None => transition = Some(at),
                        Some(_) => republish = Some(at),
                    }
                }
            }
            Ok((transition, republish))
        })?;
        match transition {
            Some(t) => transition_ms.push(t),
            None => lost += 1,
        }
        republish_ms.extend(republish);
        cluster.restart(x);
        cluster.wait_routes(Duration::from_secs(30));
    }
    agent.shutdown();

    let (t_line, t_json) = summary("first event with the new state", &transition_ms);
    let (r_line, r_json) = summary("second (the republish)", &republish_ms);
    println!(
        "the agent's NATS node killed, state changed at once, {runs} runs: {lost} new states lost; from the kill, {t_line}; {r_line} ({} runs)",
        republish_ms.len()
    );
    if let Some(path) = json {
        let j = serde_json::json!({"runs": runs, "lost": lost, "transition_ms": t_json,
            "republish_ms": r_json});
        std::fs::write(path, serde_json::to_string_pretty(&j)?)?;
    }
    Ok(())
}
