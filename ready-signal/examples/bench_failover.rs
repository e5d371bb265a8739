//! Benchmark (bench/ha-store.sh): the time from a Sentinel failover to every agent's record being
//! fresh again, through the crate's own publishers and observer.
//!
//! Starts N publishers (the crate's `ReadySignal`, one replica each, work loops ticking) on the
//! Sentinel store, waits until an observer sees all N ready, then kills the master process
//! (`--master-pid`, SIGKILL) at a random phase of the heartbeat. It then polls the Sentinel every
//! 10 ms for the promoted master, and a fresh observer every 50 ms until every record was written
//! after the promotion (its beat is younger than the time since the promotion). Reports, in ms:
//! kill -> promotion, promotion -> all fresh, kill -> all fresh; and how many records were missing
//! at the first read after the promotion and at worst (records lost by the failover that the next
//! beat had not yet restored).
//!
//! ```text
//! bench_failover --redis redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster \
//!     --sentinel 127.0.0.1:26379 --master mymaster --master-pid PID \
//!     [--agents 200] [--interval-ms 1000] [--json FILE]
//! ```

use std::error::Error;
use std::time::{Duration, Instant};

use ready_signal::{Handle, Name, Observed, Observer, ReadySignal, StoreConfig};

#[derive(Debug)]
struct Args {
    redis: String,
    sentinel: String,
    master: String,
    master_pid: u32,
    agents: usize,
    interval: Duration,
    json: Option<String>,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut a = Args {
        redis: String::new(),
        sentinel: String::new(),
        master: "mymaster".into(),
        master_pid: 0,
        agents: 200,
        interval: Duration::from_secs(1),
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--redis" => a.redis = val()?,
            "--sentinel" => a.sentinel = val()?,
            "--master" => a.master = val()?,
            "--master-pid" => a.master_pid = val()?.parse()?,
            "--agents" => a.agents = val()?.parse()?,
            "--interval-ms" => a.interval = Duration::from_millis(val()?.parse()?),
            "--json" => a.json = Some(val()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if a.redis.is_empty() || a.sentinel.is_empty() || a.master_pid == 0 {
        return Err("--redis, --sentinel and --master-pid are required".into());
    }
    Ok(a)
}

/// The master's address as the Sentinel at `sentinel` reports it now.
async fn master_addr(sentinel: &str, master: &str) -> Option<String> {
    let client = redis::Client::open(format!("redis://{sentinel}")).ok()?;
    let mut conn = tokio::time::timeout(
        Duration::from_millis(200),
        client.get_multiplexed_async_connection(),
    )
    .await
    .ok()?
    .ok()?;
    let (host, port): (String, String) = tokio::time::timeout(
        Duration::from_millis(200),
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(master)
            .query_async(&mut conn),
    )
    .await
    .ok()?
    .ok()?;
    Some(format!("{host}:{port}"))
}

/// (present, fresh) among the agents: present is any record, fresh one written within `within`.
async fn census(store: &StoreConfig, agents: usize, within: Duration) -> Option<(usize, usize)> {
    let observer = Observer::connect_within(store, Duration::from_millis(500))
        .await
        .ok()?;
    let all = tokio::time::timeout(Duration::from_secs(2), observer.all())
        .await
        .ok()?
        .ok()?;
    let present = all
        .iter()
        .filter(|s| !matches!(s.state, Observed::Dead | Observed::Unknown))
        .count();
    let fresh = all
        .iter()
        .filter(|s| s.state == Observed::Ready && s.age.is_some_and(|a| a < within))
        .count();
    Some((present.min(agents), fresh.min(agents)))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let ns = format!("fo{}", std::process::id());
    let store = StoreConfig::new()
        .redis(&args.redis)?
        .namespace(Name::new(&ns)?);

    let handles: Vec<Handle> = (0..args.agents)
        .map(|i| {
            let h = ReadySignal::builder(&format!("agent-{i:04}"))
                .store(store.clone())
                .replica("r0")
                .interval(args.interval)
                .start()?;
            h.ready();
            Ok(h)
        })
        .collect::<Result<_, ready_signal::Error>>()?;
    let ticking = handles.clone();
    tokio::spawn(async move {
        loop {
            for h in &ticking {
                h.tick();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    let steady = Instant::now();
    loop {
        if let Some((_, fresh)) = census(&store, args.agents, args.interval * 2).await
            && fresh == args.agents
        {
            break;
        }
        if steady.elapsed() > Duration::from_secs(60) {
            return Err("the agents were not all ready within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let old = master_addr(&args.sentinel, &args.master)
        .await
        .ok_or("the Sentinel does not answer")?;
    // A random phase of the heartbeat, so the kill does not always land just after a beat.
    let phase = u64::from(std::process::id()) % args.interval.as_millis().max(1) as u64;
    tokio::time::sleep(Duration::from_millis(phase)).await;

    let killed = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-9", &args.master_pid.to_string()])
        .status()?;
    if !status.success() {
        return Err(format!("kill -9 {} failed", args.master_pid).into());
    }
    let promoted = loop {
        if let Some(addr) = master_addr(&args.sentinel, &args.master).await
            && addr != old
        {
            break Instant::now();
        }
        if killed.elapsed() > Duration::from_secs(60) {
            return Err("no promotion within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    let mut first_missing = None;
    let mut worst_missing = 0;
    let fresh_at = loop {
        if let Some((present, fresh)) = census(&store, args.agents, promoted.elapsed()).await {
            let missing = args.agents - present;
            first_missing.get_or_insert(missing);
            worst_missing = worst_missing.max(missing);
            if fresh == args.agents {
                break Instant::now();
            }
        }
        if promoted.elapsed() > Duration::from_secs(60) {
            return Err("records not all fresh within 60 s of the promotion".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let result = serde_json::json!({
        "agents": args.agents,
        "interval_ms": args.interval.as_millis() as u64,
        "kill_to_promotion_ms": ms(promoted - killed),
        "promotion_to_all_fresh_ms": ms(fresh_at - promoted),
        "kill_to_all_fresh_ms": ms(fresh_at - killed),
        "missing_at_first_read": first_missing.unwrap_or(0),
        "missing_at_worst": worst_missing,
    });
    println!("{result}");
    if let Some(path) = &args.json {
        std::fs::write(path, result.to_string())?;
    }
    for h in &handles {
        h.shutdown();
    }
    Ok(())
}
