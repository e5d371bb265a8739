//! Benchmark (bench/run.sh): N agents heartbeating once an interval (a second unless
//! `--interval` says otherwise) against a Redis store: one
//! redis-server, a master under Sentinel, or a Redis Cluster.
//!
//! Every heartbeat is exactly the protocol's write (PROTOCOL.md, "Writing"), through the path a
//! publisher uses: `ready_signal::RecordWriter` (the fenced Lua script `src/write.lua` by
//! EVALSHA, keys in the store's layout, redis-rs's cluster client in a Cluster), over a few
//! connections. The N agents' beats are spread evenly over each second. Reports the achieved
//! rate against the target, the heartbeat latency (send to reply) p50/p99/max, how late beats
//! were sent, Redis's CPU over the run (`INFO cpu` of a single server; `/proc` of every
//! `--redis-pid`), and then the time `Observer::all()` takes to read the state of every agent in
//! one call.
//!
//! ```text
//! bench_heartbeats --redis redis://127.0.0.1:6379 --agents 10000 --seconds 20 \
//!     [--connections 4] [--namespace hb] [--redis-pid PID[,PID...]] [--read-all 5] [--json FILE]
//!     [--interval 1]   (seconds between two beats of an agent; the beats spread over it)
//! bench_heartbeats --redis 'redis://127.0.0.1:7000,127.0.0.1:7001?cluster=true' ...
//! ```

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ready_signal::{Name, Observed, Observer, RecordWriter, State, StoreConfig};
use tokio::sync::mpsc;

#[derive(Debug)]
struct Args {
    redis: String,
    agents: u64,
    seconds: u64,
    connections: usize,
    namespace: String,
    redis_pids: Vec<u32>,
    read_all: usize,
    json: Option<String>,
    interval_s: u64,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut a = Args {
        redis: "redis://127.0.0.1:6379".into(),
        agents: 1000,
        seconds: 20,
        connections: 4,
        namespace: "hb".into(),
        redis_pids: Vec::new(),
        read_all: 5,
        json: None,
        interval_s: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--redis" => a.redis = val()?,
            "--agents" => a.agents = val()?.parse()?,
            "--seconds" => a.seconds = val()?.parse()?,
            "--connections" => a.connections = val()?.parse()?,
            "--namespace" => a.namespace = val()?,
            "--redis-pid" => {
                for pid in val()?.split(',') {
                    a.redis_pids.push(pid.parse()?);
                }
            }
            "--read-all" => a.read_all = val()?.parse()?,
            "--json" => a.json = Some(val()?),
            "--interval" => a.interval_s = val()?.parse::<u64>()?.max(1),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

/// utime + stime of a process in seconds (proc(5): fields 14 and 15, in USER_HZ = 100 ticks).
fn proc_cpu_s(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field n is f[n - 3].
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// used_cpu_user + used_cpu_sys from INFO cpu, in seconds.
async fn info_cpu_s(conn: &mut redis::aio::MultiplexedConnection) -> Result<f64, Box<dyn Error>> {
    let info: String = redis::cmd("INFO").arg("cpu").query_async(conn).await?;
    let mut total = 0.0;
    for line in info.lines() {
        if let Some(v) = line
            .strip_prefix("used_cpu_user:")
            .or_else(|| line.strip_prefix("used_cpu_sys:"))
        {
            total += v.trim().parse::<f64>()?;
        }
    }
    Ok(total)
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Beat {
    latency_us: u64,
    lag_us: u64,
    ok: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let ns = Name::new(&args.namespace)?;
    let store = StoreConfig::new().redis(&args.redis)?.namespace(ns.clone());
    let mut writers = Vec::new();
    for _ in 0..args.connections.max(1) {
        writers.push(RecordWriter::connect(&store, Duration::from_secs(2)).await?);
    }
    // INFO cpu only means Redis's CPU for a single server.
    let mut info_conn = match store.redis_addr() {
        Some(_) if !args.redis.contains("cluster=true") && args.redis.starts_with("redis://") => {
            Some(
                redis::Client::open(args.redis.as_str())?
                    .get_multiplexed_async_connection()
                    .await?,
            )
        }
        _ => None,
    };
    let replica = Name::new("r0")?;
    struct Agent {
        name: Name,
        instance: String,
    }
    let agents: Arc<Vec<Agent>> = Arc::new(
        (0..args.agents)
            .map(|i| {
                Ok(Agent {
                    name: Name::new(&format!("agent-{i:05}")).map_err(|e| e.to_string())?,
                    instance: ready_signal::new_instance_id(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?,
    );

    let redis_pids: Vec<String> = args.redis_pids.iter().map(u32::to_string).collect();
    let procs_cpu = |pids: &[String]| -> Option<f64> {
        if pids.is_empty() {
            return None;
        }
        pids.iter().map(|p| proc_cpu_s(p)).sum()
    };
    let cpu_redis_proc0 = procs_cpu(&redis_pids);
    let cpu_redis_info0 = match info_conn.as_mut() {
        Some(c) => Some(info_cpu_s(c).await?),
        None => None,
    };
    let cpu_self0 = proc_cpu_s("self");

    let total = args.agents * args.seconds / args.interval_s;
    let step_ns = args.interval_s * 1_000_000_000u64 / args.agents.max(1);
    let (tx, mut rx) = mpsc::unbounded_channel::<Beat>();
    let t0 = Instant::now();
    let mut k = 0u64;
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let interval = Duration::from_secs(args.interval_s);
    let replica = Arc::new(replica);
    while k < total {
        ticker.tick().await;
        let now = Instant::now();
        while k < total {
            let scheduled = t0 + Duration::from_nanos(k * step_ns);
            if scheduled > now {
                break;
            }
            let idx = (k % args.agents) as usize;
            let mut writer = writers[(k as usize) % writers.len()].clone();
            let agents = Arc::clone(&agents);
            let replica = Arc::clone(&replica);
            let tx = tx.clone();
            tokio::spawn(async move {
                let a = &agents[idx];
                let start = Instant::now();
                // Each agent's first beat takes an epoch; later ones continue it, the same work
                // as a publisher's kept epoch.
                let r = writer
                    .put(
                        &a.name,
                        &replica,
                        &a.instance,
                        State::Ready,
                        interval,
                        interval * 3,
                    )
                    .await;
                let _ = tx.send(Beat {
                    latency_us: start.elapsed().as_micros() as u64,
                    lag_us: start.saturating_duration_since(scheduled).as_micros() as u64,
                    ok: r.is_ok(),
                });
            });
            k += 1;
        }
    }
    drop(tx);
    let mut lat = Vec::with_capacity(total as usize);
    let mut lag = Vec::with_capacity(total as usize);
    let mut failed = 0u64;
    while let Some(b) = rx.recv().await {
        lat.push(b.latency_us);
        lag.push(b.lag_us);
        if !b.ok {
            failed += 1;
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu_redis_info = match (info_conn.as_mut(), cpu_redis_info0) {
        (Some(c), Some(before)) => Some(info_cpu_s(c).await? - before),
        _ => None,
    };
    let cpu_redis_proc = match (cpu_redis_proc0, procs_cpu(&redis_pids)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let cpu_redis = cpu_redis_info.or(cpu_redis_proc);
    let cpu_self = match (cpu_self0, proc_cpu_s("self")) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    lat.sort_unstable();
    lag.sort_unstable();
    let done = lat.len() as u64;
    let achieved = done as f64 / elapsed;
    let late_100ms = lag.iter().filter(|&&l| l > 100_000).count();

    // Reading the state of every agent in one call, as a status view would.
    let observer = Observer::connect(&store).await?;
    let mut reads_ms = Vec::new();
    let mut seen = 0usize;
    let mut ready = 0usize;
    for _ in 0..args.read_all {
        let t = Instant::now();
        let all = observer.all().await?;
        reads_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        seen = all.len();
        ready = all.iter().filter(|r| r.state == Observed::Ready).count();
    }
    let mut sorted_reads = reads_ms.clone();
    sorted_reads.sort_by(f64::total_cmp);
    let read_median = sorted_reads.get(sorted_reads.len() / 2).copied();

    let redis_cpu_pct = cpu_redis.map(|c| c / elapsed * 100.0);
    println!(
        "agents {n} beating every {i}s for {s}s over {c} connections: target {rate}/s, achieved {achieved:.0}/s \
         ({done} of {total} beats in {elapsed:.2}s, {failed} failed)",
        n = args.agents,
        i = args.interval_s,
        rate = args.agents / args.interval_s,
        s = args.seconds,
        c = writers.len()
    );
    println!(
        "  heartbeat latency (RecordWriter::put: EVALSHA write.lua, send to reply): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(&lat, 0.5) as f64 / 1000.0,
        pct(&lat, 0.99) as f64 / 1000.0,
        lat.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    println!(
        "  send lag behind schedule: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {late_100ms} beats more than 100 ms late",
        pct(&lag, 0.5) as f64 / 1000.0,
        pct(&lag, 0.99) as f64 / 1000.0,
        lag.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    println!(
        "  redis-server CPU: {} (INFO cpu: {}{}); load generator {}",
        redis_cpu_pct
            .map(|p| format!("{p:.1}% of one core"))
            .unwrap_or_else(|| "? (give --redis-pid)".into()),
        cpu_redis_info
            .map(|c| format!("{c:.2}s"))
            .unwrap_or_else(|| "n/a".into()),
        cpu_redis_proc
            .map(|c| format!(", /proc stat of {} processes: {:.2}s", redis_pids.len(), c))
            .unwrap_or_default(),
        cpu_self
            .map(|c| format!("{:.1}% of one core", c / elapsed * 100.0))
            .unwrap_or_else(|| "?".into())
    );
    println!(
        "  Observer::all(): {seen} replicas ({ready} ready) in median {:.1} ms over {} reads {:?}",
        read_median.unwrap_or(f64::NAN),
        reads_ms.len(),
        reads_ms
            .iter()
            .map(|m| (m * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    if let Some(path) = &args.json {
        let j = serde_json::json!({
            "agents": args.agents,
            "seconds": args.seconds,
            "connections": writers.len(),
            "target_per_s": args.agents / args.interval_s,
            "achieved_per_s": achieved,
            "beats": done,
            "failed": failed,
            "elapsed_s": elapsed,
            "latency_ms": {"p50": pct(&lat, 0.5) as f64 / 1000.0, "p99": pct(&lat, 0.99) as f64 / 1000.0,
                           "max": lat.last().copied().unwrap_or(0) as f64 / 1000.0},
            "lag_ms": {"p50": pct(&lag, 0.5) as f64 / 1000.0, "p99": pct(&lag, 0.99) as f64 / 1000.0,
                       "max": lag.last().copied().unwrap_or(0) as f64 / 1000.0},
            "late_over_100ms": late_100ms,
            "redis_cpu_s": cpu_redis,
            "redis_cpu_info_s": cpu_redis_info,
            "redis_cpu_pct": redis_cpu_pct,
            "redis_cpu_proc_s": cpu_redis_proc,
            "generator_cpu_s": cpu_self,
            "read_all": {"replicas": seen, "ready": ready, "ms": reads_ms, "median_ms": read_median},
        });
        std::fs::write(path, serde_json::to_string_pretty(&j)?)?;
    }
    Ok(())
}
