//! Benchmark (bench/run.sh): gating latency of `healthcheck wait`, from an agent's ready
//! publish to the exec of the waiting command (issue 5).
//!
//! Per run: spawn `healthcheck wait --timeout 30s ready://AGENT -- STAMP` (a fresh agent name
//! each run; READY_SIGNAL_NATS_URL only in `--mode nats`), let it subscribe / start polling
//! (`--settle`, 300 ms), take a CLOCK_REALTIME timestamp, publish `ready`, and read what STAMP
//! prints: its own CLOCK_REALTIME in ns at exec. Latency = stamp - publish timestamp.
//!
//! Publishers (`--publisher`):
//! - `once`: `ready_signal::publish_once` (what the `ready-signal ready` CLI does: it connects
//!   to Redis, writes, connects to NATS and publishes the event; the connects are in the latency);
//! - `handle`: a long-lived agent (`ReadySignal::builder(..).start()`, then `Handle::ready()`),
//!   whose connections are already open: the latency of a running agent.
//!
//! The waiter may use another NATS URL than the publisher (`--waiter-nats`: other nodes of a
//! cluster, bench/nats-cluster.sh), and the records a namespace of their own (`--namespace`,
//! default `gate-MODE-PUBLISHER`), so runs against one Redis do not see each other's records.
//!
//! ```text
//! bench_gate --healthcheck PATH --stamp PATH --redis URL --nats URL --mode nats|polling \
//!     [--waiter-nats URL] [--namespace NS] [--publisher once|handle] [--runs 120] \
//!     [--settle-ms 300] [--json FILE]
//! ```

use std::error::Error;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ready_signal::{Name, ReadySignal, State, StoreConfig};

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut hc = String::new();
    let mut stamp = String::new();
    let mut redis = "redis://127.0.0.1:6379".to_string();
    let mut nats = "nats://127.0.0.1:4222".to_string();
    let mut mode = "nats".to_string();
    let mut publisher = "once".to_string();
    let mut runs = 120usize;
    let mut settle_ms = 300u64;
    let mut json: Option<String> = None;
    let mut waiter_nats: Option<String> = None;
    let mut namespace: Option<String> = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--healthcheck" => hc = val()?,
            "--stamp" => stamp = val()?,
            "--redis" => redis = val()?,
            "--nats" => nats = val()?,
            "--mode" => mode = val()?,
            "--publisher" => publisher = val()?,
            "--runs" => runs = val()?.parse()?,
            "--settle-ms" => settle_ms = val()?.parse()?,
            "--json" => json = Some(val()?),
            "--waiter-nats" => waiter_nats = Some(val()?),
            "--namespace" => namespace = Some(val()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let use_nats = match mode.as_str() {
        "nats" => true,
        "polling" => false,
        m => return Err(format!("--mode {m}: nats or polling").into()),
    };
    let ns_name = namespace.unwrap_or_else(|| format!("gate-{mode}-{publisher}"));
    let waiter_nats = waiter_nats.unwrap_or_else(|| nats.clone());
    let ns = Name::new(&ns_name)?;
    let mut store = StoreConfig::new().redis(&redis)?.namespace(ns);
    if use_nats {
        store = store.nats(&nats)?;
    }
    let replica = Name::new("r0")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let mut lat_ms = Vec::with_capacity(runs);
    let mut publish_ms = Vec::with_capacity(runs);
    let mut failures = 0usize;
    for i in 0..runs {
        let agent_s = format!("gate-{}", i);
        let agent = Name::new(&agent_s)?;
        let mut cmd = Command::new(&hc);
        cmd.args([
            "wait",
            "--timeout",
            "30s",
            &format!("ready://{agent_s}"),
            "--",
            &stamp,
        ])
        .env("READY_SIGNAL_REDIS_URL", &redis)
        .env("READY_SIGNAL_NAMESPACE", &ns_name)
        .env_remove("READY_SIGNAL_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if use_nats {
            cmd.env("READY_SIGNAL_NATS_URL", &waiter_nats);
        } else {
            cmd.env_remove("READY_SIGNAL_NATS_URL");
        }
        let mut child = cmd.spawn()?;
        // A long-lived agent connects (and publishes `starting`) before the waiter's settle time.
        let handle = if publisher == "handle" {
            Some(
                ReadySignal::builder(&agent_s)
                    .store(store.clone())
                    .replica("r0")
                    .ttl(Duration::from_secs(60))
                    .start()?,
            )
        } else {
            None
        };
        std::thread::sleep(Duration::from_millis(settle_ms));
        let t0 = now_ns();
        match &handle {
            Some(h) => h.ready(),
            None => rt.block_on(ready_signal::publish_once(
                &store,
                &agent,
                &replica,
                &ready_signal::new_instance_id(),
                State::Ready,
                "",
                Duration::from_secs(60),
            ))?,
        }
        let t1 = now_ns();
        let mut out = String::new();
        if let Some(mut so) = child.stdout.take() {
            so.read_to_string(&mut out)?;
        }
        let status = child.wait()?;
        if let Some(h) = handle {
            h.shutdown();
        }
        match out.trim().parse::<i128>() {
            Ok(stamp_ns) if status.success() => {
                lat_ms.push((stamp_ns - t0) as f64 / 1e6);
                publish_ms.push((t1 - t0) as f64 / 1e6);
            }
            _ => {
                let mut err = String::new();
                if let Some(mut se) = child.stderr.take() {
                    let _ = se.read_to_string(&mut err);
                }
                eprintln!("run {i}: {status}, stdout {out:?}, stderr {err:?}");
                failures += 1;
            }
        }
    }
    let mut sorted = lat_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let mut pub_sorted = publish_ms.clone();
    pub_sorted.sort_by(f64::total_cmp);
    println!(
        "gating latency, {mode} (publisher: {publisher}), {} runs ({failures} failed): \
         p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, min {:.2} ms, max {:.2} ms; \
         the publish call itself: p50 {:.2} ms, p99 {:.2} ms",
        sorted.len(),
        pct(&sorted, 0.5),
        pct(&sorted, 0.9),
        pct(&sorted, 0.99),
        sorted.first().copied().unwrap_or(f64::NAN),
        sorted.last().copied().unwrap_or(f64::NAN),
        pct(&pub_sorted, 0.5),
        pct(&pub_sorted, 0.99),
    );
    if let Some(path) = json {
        let j = serde_json::json!({
            "mode": mode, "publisher": publisher, "runs": sorted.len(), "failures": failures,
            "nats": nats, "waiter_nats": waiter_nats, "namespace": ns_name,
            "settle_ms": settle_ms,
            "latency_ms": {"p50": pct(&sorted, 0.5), "p90": pct(&sorted, 0.9), "p99": pct(&sorted, 0.99),
                           "min": sorted.first(), "max": sorted.last()},
            "publish_call_ms": {"p50": pct(&pub_sorted, 0.5), "p99": pct(&pub_sorted, 0.99)},
            "samples_ms": lat_ms,
        });
        std::fs::write(path, serde_json::to_string_pretty(&j)?)?;
    }
    Ok(())
}
