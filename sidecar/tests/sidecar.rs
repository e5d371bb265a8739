//! End-to-end tests of `healthcheck-sidecar` against real redis-server and nats-server: agents
//! publish with the ready-signal crate, the built binary watches them, and the tests read what
//! its JSON API, event stream, `/metrics` (through `promtool`) and page (in headless Chromium)
//! show. Docker is left out here (`--docker none`); docker/e2e.sh covers it on the real engine.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use harness::cluster::NatsCluster;
use harness::{NatsServer, RedisServer};
use ready_signal::{Handle, ReadySignal, StoreConfig};
use serde_json::Value;

const NS: &str = "it";

/// The sidecar binary, running until dropped.
struct Sidecar {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sidecar {
    fn start(redis: &RedisServer, nats: &NatsServer) -> Sidecar {
        Sidecar::start_with(
            &[
                ("READY_SIGNAL_REDIS_URL", redis.url()),
                ("READY_SIGNAL_NATS_URL", nats.url()),
            ],
            "200ms",
        )
    }

    /// The sidecar watching by the due index (the default with NATS), said explicitly.
    fn start_indexed(redis: &RedisServer, nats: &NatsServer) -> Sidecar {
        Sidecar::start_with(
            &[
                ("READY_SIGNAL_REDIS_URL", redis.url()),
                ("READY_SIGNAL_NATS_URL", nats.url()),
                ("HEALTHCHECK_SIDECAR_INDEX", "1".to_string()),
            ],
            "200ms",
        )
    }

    /// The sidecar with these store variables (and the namespace), reading the store every
    /// `read_interval`.
    fn start_with(env: &[(&str, String)], read_interval: &str) -> Sidecar {
        Sidecar::start_args(&["--docker", "none", "--read-interval", read_interval], env)
    }

    /// The sidecar with these flags (besides `--listen` and `--timeout`) and variables.
    fn start_args(args: &[&str], env: &[(&str, String)]) -> Sidecar {
        let port = harness::free_port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sidecar.log");
        let child = Command::new(harness::bin("healthcheck-sidecar"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--timeout", "1s"])
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("READY_SIGNAL_NAMESPACE", NS)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let s = Sidecar {
            child,
            port,
            log,
            _dir: dir,
        };
        s.wait_for("the sidecar to answer", Duration::from_secs(10), |_| true);
        s
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path`: status code and body (HTTP/1.1, one request per connection).
    fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok((code, body.to_string()))
    }

    fn status(&self) -> Option<Value> {
        let (code, body) = self.get("/api/status").ok()?;
        (code == 200).then(|| serde_json::from_str(&body).ok())?
    }

    /// Polls `/api/status` every 20 ms until `pred` holds; panics with the last view and the log.
    fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(v) = self.status() {
                if pred(&v) {
                    return v;
                }
                last = Some(v);
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{what}: not shown within {timeout:?}; last status: {}\nsidecar log:\n{}",
            last.map(|v| v.to_string()).unwrap_or_default(),
            self.log()
        );
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An agent publishing through the ready-signal crate, its loop ticking until frozen.
struct Agent {
    handle: Option<Arc<Handle>>,
    ticking: Arc<AtomicBool>,
}

impl Agent {
    fn start(store: &StoreConfig, name: &str, replica: &str) -> Agent {
        let handle = Arc::new(
            ReadySignal::builder(name)
                .store(store.clone())
                .replica(replica)
                .interval(Duration::from_millis(200))
                .ttl(Duration::from_millis(800))
                .stall_after(Duration::from_millis(300))
                .start()
                .unwrap(),
        );
        let ticking = Arc::new(AtomicBool::new(true));
        let (h, t) = (Arc::clone(&handle), Arc::clone(&ticking));
        thread::spawn(move || {
            while Arc::strong_count(&h) > 1 {
                if t.load(Ordering::Relaxed) {
                    h.tick();
                }
                thread::sleep(Duration::from_millis(50));
            }
        });
        Agent {
            handle: Some(handle),
            ticking,
        }
    }

    fn h(&self) -> &Handle {
        self.handle.as_ref().unwrap()
    }

    fn freeze(&self) {
        self.ticking.store(false, Ordering::Relaxed);
    }

    fn thaw(&self) {
        self.ticking.store(true, Ordering::Relaxed);
    }
}

fn store(redis: &RedisServer, nats: &NatsServer) -> StoreConfig {
    StoreConfig::new()
        .redis(&redis.url())
        .unwrap()
        .nats(&nats.url())
        .unwrap()
        .namespace(ready_signal::Name::new(NS).unwrap())
}

fn replica<'a>(v: &'a Value, agent: &str) -> Option<&'a Value> {
    v["agents"]
        .as_array()?
        .iter()
        .find(|a| a["agent"] == agent)
        .map(|a| &a["replicas"][0])
}

fn state_of(v: &Value, agent: &str) -> String {
    replica(v, agent)
        .and_then(|r| r["state"].as_str())
        .unwrap_or("absent")
        .to_string()
}

/// `/api/status` follows one agent through starting, ready, not-ready with its reason, stale
/// while its loop is frozen, dead once the record expires, and a new instance; and a stopped
/// Redis shows as `unknown` with the reason, never `dead`.
#[test]
fn api_follows_every_state_transition() {
    let mut redis = RedisServer::start();
    let nats = NatsServer::start();
    let sidecar = Sidecar::start(&redis, &nats);
    let store = store(&redis, &nats);

    let v = sidecar.wait_for("an empty, readable store", Duration::from_secs(5), |v| {
        v["sources"]["store"]["status"] == "ok"
    });
    assert_eq!(v["sources"]["docker"]["status"], "off");
    assert_eq!(v["schema"], 1);

    let worker = Agent::start(&store, "worker", "w1");
    sidecar.wait_for("worker starting", Duration::from_secs(5), |v| {
        state_of(v, "worker") == "starting"
    });
    worker.h().ready();
    let v = sidecar.wait_for("worker ready", Duration::from_secs(5), |v| {
        state_of(v, "worker") == "ready"
    });
    let first_instance = replica(&v, "worker").unwrap()["instance"].clone();
    // Just written (or followed by the due index, whose beats are not read: null).
    let age = &replica(&v, "worker").unwrap()["beat_age_s"];
    assert!(age.is_null() || age.as_f64().unwrap() < 0.5, "{age}");

    worker.h().not_ready("warming cache");
    let v = sidecar.wait_for("worker not-ready", Duration::from_secs(5), |v| {
        state_of(v, "worker") == "not-ready"
    });
    assert_eq!(replica(&v, "worker").unwrap()["reason"], "warming cache");
    worker.h().ready();
    sidecar.wait_for("worker ready again", Duration::from_secs(5), |v| {
        state_of(v, "worker") == "ready"
    });

    // Frozen: ticks stop, the publisher stops refreshing after stall_after (300 ms), the record
    // is stale past 2 intervals (400 ms) and expires past its TTL (800 ms).
    worker.freeze();
    let frozen = Instant::now();
    sidecar.wait_for("worker stale", Duration::from_secs(5), |v| {
        state_of(v, "worker") == "stale"
    });
    let stale_after = frozen.elapsed();
    let v = sidecar.wait_for("worker dead", Duration::from_secs(5), |v| {
        state_of(v, "worker") == "dead"
    });
    assert!(
        stale_after >= Duration::from_millis(500),
        "stale too early: {stale_after:?}"
    );
    assert_eq!(v["summary"]["replicas_by_state"]["dead"], 1);
    assert_eq!(v["agents"][0]["agent"], "worker", "worst first");

    // The process comes back as a new instance.
    drop(worker);
    let again = Agent::start(&store, "worker", "w1");
    again.h().ready();
    let v = sidecar.wait_for("a new instance ready", Duration::from_secs(5), |v| {
        state_of(v, "worker") == "ready"
    });
    let second_instance = replica(&v, "worker").unwrap()["instance"].clone();
    assert_ne!(first_instance, second_instance);
    assert!(second_instance.as_str().unwrap() > first_instance.as_str().unwrap());

    // Redis stops: unknown with the reason, for longer than the TTL, never dead.
    redis.stop();
    let v = sidecar.wait_for("store unknown", Duration::from_secs(5), |v| {
        v["sources"]["store"]["status"] == "unknown"
    });
    assert!(
        v["sources"]["store"]["reason"]
            .as_str()
            .unwrap()
            .contains("redis"),
        "{v}"
    );
    thread::sleep(Duration::from_millis(1200));
    let v = sidecar.status().unwrap();
    assert_eq!(state_of(&v, "worker"), "unknown", "{v}");
    assert_eq!(v["summary"]["replicas_by_state"]["dead"], 0);
    redis.restart();
    sidecar.wait_for("ready after redis returns", Duration::from_secs(10), |v| {
        v["sources"]["store"]["status"] == "ok" && state_of(v, "worker") == "ready"
    });
    assert!(sidecar.log().contains("store read failed"));
}

/// `/api/events` streams a `change` for a published transition, and `/healthz` answers.
#[test]
fn events_stream_state_changes() {
    let redis = RedisServer::start();
    let nats = NatsServer::start();
    let sidecar = Sidecar::start(&redis, &nats);
    let store = store(&redis, &nats);
    let agent = Agent::start(&store, "streamer", "s1");
    agent.h().ready();
    sidecar.wait_for("streamer ready", Duration::from_secs(5), |v| {
        state_of(v, "streamer") == "ready"
    });
    assert_eq!(sidecar.get("/healthz").unwrap().0, 200);

    let mut s = TcpStream::connect(("127.0.0.1", sidecar.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /api/events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut lines = BufReader::new(s).lines();
    // Wait for the hello before publishing, so the change cannot be missed.
    for line in lines.by_ref() {
        if line.unwrap().starts_with("event: hello") {
            break;
        }
    }
    agent.h().not_ready("upstream down");
    let mut data = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(d) = line.strip_prefix("data: ")
            && d.contains("streamer")
        {
            data = Some(d.to_string());
            break;
        }
    }
    let change: Value = serde_json::from_str(&data.expect("no change event")).unwrap();
    assert_eq!(change["kind"], "replica");
    assert_eq!(change["key"], "it/streamer/s1");
    assert_eq!(change["from"], "ready");
    assert_eq!(change["to"], "not-ready");
    assert_eq!(change["reason"], "upstream down");
}

/// The sidecar's event subscription outlives its NATS node. Its reads are 30 s apart and the
/// agent beats every 10 s (no threshold crossing pokes a read either), so a state shown within
/// 5 s came by event: ready before the node holding the sidecar's connections is killed, and
/// not-ready published after the sidecar has resubscribed through another seed.
#[test]
fn events_survive_the_death_of_the_sidecars_nats_node() {
    let redis = RedisServer::start();
    let mut cluster = NatsCluster::start();
    let sidecar = Sidecar::start_with(
        &[
            ("READY_SIGNAL_REDIS_URL", redis.url()),
            ("READY_SIGNAL_NATS_URL", cluster.seed_url()),
        ],
        "30s",
    );
    sidecar.wait_for("a readable store", Duration::from_secs(5), |v| {
        v["sources"]["store"]["status"] == "ok"
    });
    let store = StoreConfig::new()
        .redis(&redis.url())
        .unwrap()
        .nats(&cluster.seed_url())
        .unwrap()
        .namespace(ready_signal::Name::new(NS).unwrap());
    let agent = ReadySignal::builder("clustered")
        .store(store)
        .replica("c1")
        .interval(Duration::from_secs(10))
        .ttl(Duration::from_secs(60))
        .stall_after(Duration::from_secs(60))
        .start()
        .unwrap();
    agent.ready();
    sidecar.wait_for("ready, by event", Duration::from_secs(5), |v| {
        state_of(v, "clustered") == "ready"
    });

    // The nodes holding the sidecar's NATS connections (the agent's is told apart by the
    // subscription it lacks); one node at least is left alive.
    let sidecar_nodes: Vec<usize> = (0..cluster.len())
        .filter(|&i| {
            cluster
                .monitor(i, "/connz?subs=1")
                .and_then(|c| c.get("connections")?.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .any(|c| {
                    c["subscriptions_list"]
                        .as_array()
                        .is_some_and(|l| !l.is_empty())
                })
        })
        .collect();
    assert!(
        !sidecar_nodes.is_empty() && sidecar_nodes.len() < cluster.len(),
        "{sidecar_nodes:?}"
    );
    println!("killing nodes {sidecar_nodes:?}, where the sidecar subscribed");
    for &i in &sidecar_nodes {
        cluster.kill(i);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sidecar.log().contains("resubscribed") {
        assert!(
            Instant::now() < deadline,
            "the sidecar never resubscribed after its node died:\n{}",
            sidecar.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
    agent.not_ready("after the node died");
    let v = sidecar.wait_for("not-ready, by event", Duration::from_secs(5), |v| {
        state_of(v, "clustered") == "not-ready"
    });
    assert_eq!(
        replica(&v, "clustered").unwrap()["reason"],
        "after the node died"
    );
}

/// A program from a Debian package the test needs; a clear panic when it is missing.
/// The sidecar watching a store on a Redis Cluster (3 masters with a replica each): every agent
/// listed ready through the JSON API, and after one master is killed, the store read and every
/// agent ready again once its replica is promoted (the long-running Observer path).
#[test]
fn api_lists_the_agents_of_a_redis_cluster_across_a_failover() {
    let mut c = harness::cluster::RedisCluster::start();
    let url = format!("{}?cluster=true", c.seed_url());
    let sidecar = Sidecar::start_with(&[("READY_SIGNAL_REDIS_URL", url.clone())], "200ms");
    let store = StoreConfig::new()
        .redis(&url)
        .unwrap()
        .namespace(ready_signal::Name::new(NS).unwrap());
    let names: Vec<String> = (0..12).map(|i| format!("c{i:02}")).collect();
    let agents: Vec<Agent> = names
        .iter()
        .map(|n| Agent::start(&store, n, "r1"))
        .collect();
    for a in &agents {
        a.h().ready();
    }
    let all_ready = |v: &Value| names.iter().all(|n| state_of(v, n) == "ready");
    sidecar.wait_for("every agent ready", Duration::from_secs(10), all_ready);
    let record = store.keys().record(
        &ready_signal::Name::new("c00").unwrap(),
        &ready_signal::Name::new("r1").unwrap(),
    );
    let victim = c.wait_owner_of(&record, Duration::from_secs(10));
    let heir = c.wait_replica_of(victim, Duration::from_secs(10));
    c.kill(victim);
    c.wait_master(heir, Duration::from_secs(30));
    sidecar.wait_for(
        "every agent ready after the failover",
        Duration::from_secs(10),
        |v| v["sources"]["store"]["status"] == "ok" && all_ready(v),
    );
    drop(agents);
}

fn tool(name: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} not found: apt-get install -y {package}")
}

/// `/metrics` with agents in several states passes `promtool check metrics`, and says what the
/// API says.
#[test]
fn metrics_pass_promtool() {
    let redis = RedisServer::start();
    let nats = NatsServer::start();
    let sidecar = Sidecar::start(&redis, &nats);
    let store = store(&redis, &nats);
    let a = Agent::start(&store, "alpha", "a1");
    a.h().ready();
    let b = Agent::start(&store, "beta", "b1");
    b.h().not_ready("no \"quotes\" or\nnewlines in labels");
    sidecar.wait_for("alpha ready, beta not-ready", Duration::from_secs(5), |v| {
        state_of(v, "alpha") == "ready" && state_of(v, "beta") == "not-ready"
    });
    let (code, text) = sidecar.get("/metrics").unwrap();
    assert_eq!(code, 200);
    let mut promtool = Command::new(tool("promtool", "prometheus"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        r#"healthcheck_agent_replica_state{namespace="it",agent="alpha",replica="a1",state="ready"} 1"#,
        r#"healthcheck_agent_replica_state{namespace="it",agent="beta",replica="b1",state="not-ready"} 1"#,
        r#"healthcheck_sidecar_source_up{source="store"} 1"#,
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    assert!(!text.contains("quotes"), "a reason leaked into a label");
    assert_eq!(
        text.matches(r#"healthcheck_agent_replica_state{namespace="it",agent="beta""#)
            .count(),
        1,
        "one state series per replica"
    );
    assert!(
        !text.contains(r#"source="docker""#),
        "docker is off, not down"
    );
}

/// The page, loaded in headless Chromium, shows one row per agent worst first with state as
/// words, the reason, the folded replicas, and says Docker is not watched; a screenshot is kept
/// under target/ as a test artefact.
#[test]
fn page_in_headless_chromium() {
    let redis = RedisServer::start();
    let nats = NatsServer::start();
    let sidecar = Sidecar::start(&redis, &nats);
    let store = store(&redis, &nats);
    let ok = Agent::start(&store, "summarizer", "s1");
    ok.h().ready();
    let ok2 = Agent::start(&store, "summarizer", "s2");
    ok2.h().ready();
    let slow = Agent::start(&store, "indexer", "i1");
    slow.h().not_ready("waiting for <redis> & co");
    let frozen = Agent::start(&store, "collector", "c1");
    frozen.h().ready();
    sidecar.wait_for("collector ready", Duration::from_secs(5), |v| {
        state_of(v, "collector") == "ready"
    });
    frozen.freeze();
    sidecar.wait_for("collector stale", Duration::from_secs(5), |v| {
        state_of(v, "collector") == "stale"
    });

    let chromium = tool("chromium", "chromium");
    let profile = tempfile::tempdir().unwrap();
    let common = [
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--no-first-run".into(),
        format!("--user-data-dir={}", profile.path().display()),
    ];
    let out = Command::new(&chromium)
        .args(&common)
        .arg("--dump-dom")
        .arg(sidecar.url("/"))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        dom.contains("<table id=\"agents\""),
        "no agents table in chromium's DOM:\n{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Rows in order, worst first: the frozen collector (stale or already dead), then the
    // not-ready indexer, then the ready summarizer with its two replicas folded.
    let rows: Vec<(&str, &str)> = dom
        .match_indices("<tr class=\"agent ")
        .map(|(i, _)| {
            let row = &dom[i..];
            let attr = |name: &str| {
                let start = row.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                &row[start..start + row[start..].find('"').unwrap()]
            };
            (attr("data-agent"), attr("data-state"))
        })
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0].0, "it/collector");
    assert!(matches!(rows[0].1, "stale" | "dead"), "{rows:?}");
    assert_eq!(rows[1], ("it/indexer", "not-ready"));
    assert_eq!(rows[2], ("it/summarizer", "ready"));
    assert!(
        dom.contains("2 of 2 ready"),
        "replicas are folded with a count"
    );
    assert!(dom.contains("<details"), "replicas expand with <details>");
    assert!(
        dom.contains("waiting for &lt;redis&gt; &amp; co"),
        "reason shown, escaped"
    );
    assert!(
        dom.contains("Docker is not watched"),
        "says what it cannot see"
    );

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sidecar-page.png");
    let _ = std::fs::remove_file(&shot);
    let out = Command::new(&chromium)
        .args(&common)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,800")
        .arg("--hide-scrollbars")
        .arg(sidecar.url("/"))
        .output()
        .unwrap();
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "no screenshot at {} ({size} bytes): {}",
        shot.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// With `--heal`, a sidecar that runs in a container whose own id it cannot find heals nothing
/// and says why: in its log, in `/api/status` (`heal.refused`) and in `/metrics`; given
/// `--heal-self none` it heals. (This machine must be such a container, as the build machines
/// are: `/.dockerenv` and no id; elsewhere only the second half can be checked, and it says so.)
#[test]
fn heal_refuses_when_its_own_id_is_unknown() {
    let sock = std::path::Path::new("/var/run/docker.sock");
    assert!(
        sock.exists(),
        "--heal needs a docker engine at {}",
        sock.display()
    );
    let me = sidecar::heal::identity::detect();
    let unknown = me.refusal().is_some();
    if !unknown {
        eprintln!(
            "this machine is not a container with an unknown id ({me:?}): refusal not checked"
        );
    }
    let project = format!("h1b-nothing-{}", std::process::id());
    let base = [
        "--docker",
        "unix:///var/run/docker.sock",
        "--project",
        &project,
        "--heal",
        "--heal-state",
        "none",
    ];
    let s = Sidecar::start_args(&base, &[]);
    let v = s.wait_for("the heal mode", Duration::from_secs(10), |v| {
        v["heal"]["mode"] == "on"
    });
    if unknown {
        let why = s.wait_for("the refusal", Duration::from_secs(10), |v| {
            v["heal"]["refused"].is_string()
        })["heal"]["refused"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(why.contains("whose id it cannot find"), "{why}");
        let (_, metrics) = s.get("/metrics").unwrap();
        assert!(
            metrics.lines().any(|l| l == "healthcheck_heal_refused 1"),
            "{metrics}"
        );
        let log = s.log();
        assert!(log.contains("the governor heals nothing"), "{log}");
        assert!(!log.contains("history rebuilt"), "{log}");
    } else {
        assert!(v["heal"]["refused"].is_null(), "{v}");
    }
    drop(s);
    let mut args = base.to_vec();
    args.extend(["--heal-self", "none"]);
    let s = Sidecar::start_args(&args, &[]);
    s.wait_for("a governor that heals", Duration::from_secs(10), |v| {
        v["heal"]["mode"] == "on" && v["heal"]["refused"].is_null()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.log().contains("history rebuilt") && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let log = s.log();
    assert!(log.contains("history rebuilt"), "{log}");
    assert!(!log.contains("the governor heals nothing"), "{log}");
}

/// With NATS, the sidecar watches the namespace by its due index: once it has read everything,
/// agents that beat on time cost it no record reads at all (Redis's MONITOR sees no `HGETALL`
/// of theirs), while a revision-3 writer's record, which the index does not cover, is read at
/// every poll and shows stale when its beats stop; a frozen indexed agent is named by the index
/// and shows stale too.
#[test]
fn the_index_spares_reads_of_agents_that_beat_on_time() {
    const REVISION_3: &str = include_str!("../../ready-signal/tests/data/write-revision-3.lua");
    let redis = RedisServer::start();
    let nats = NatsServer::start();
    let store = store(&redis, &nats);
    let agents: Vec<Agent> = (0..5)
        .map(|i| {
            let a = Agent::start(&store, &format!("svc-{i}"), "r1");
            a.h().ready();
            a
        })
        .collect();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let old_write = |conn: &mut redis::Connection| {
        let epoch: i64 = redis::cmd("EVAL")
            .arg(REVISION_3)
            .arg(4)
            .arg(format!("ready-signal:{NS}:old:r:r1"))
            .arg(format!("ready-signal:{NS}:old:replicas"))
            .arg(format!("ready-signal:{NS}:agents"))
            .arg(format!("ready-signal:{NS}:epoch"))
            .arg(&[
                "put",
                "1732540000000-0000aaaa",
                "0",
                "ready",
                "",
                "42",
                "h",
                "300",
                "3000",
                "old",
                "r1",
            ])
            .query(conn)
            .unwrap();
        assert!(epoch > 0);
    };
    old_write(&mut conn);
    let sidecar = Sidecar::start_indexed(&redis, &nats);
    sidecar.wait_for("every agent ready", Duration::from_secs(10), |v| {
        v["summary"]["replicas_by_state"]["ready"] == 6
    });
    // Subscribed to events, the sidecar reads everything once more (what happened before the
    // subscription is known only from a read): after that, only what changes.
    let subscribed = Instant::now();
    while !sidecar.log().contains("subscribed to agent events") {
        assert!(
            subscribed.elapsed() < Duration::from_secs(5),
            "{}",
            sidecar.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(500));
    let monitor = redis.monitor();
    let began = Instant::now();
    while began.elapsed() < Duration::from_millis(1500) {
        old_write(&mut conn);
        thread::sleep(Duration::from_millis(100));
    }
    let reads: Vec<String> = monitor
        .commands()
        .into_iter()
        .filter(|c| c.line.starts_with("\"HGETALL\""))
        .map(|c| c.line)
        .collect();
    assert!(
        reads.iter().any(|l| l.contains(":old:r:r1")),
        "the revision-3 record is polled: {reads:?}"
    );
    assert!(
        !reads.iter().any(|l| l.contains(":svc-")),
        "records of agents beating on time are not read: {reads:?}"
    );
    // Their beats are not read, so no age is shown, but the index proves a bound: a beat
    // within two intervals (2 x 200 ms) before its last query, which is at most a read
    // interval (200 ms) old, with slack for a loaded machine.
    let v = sidecar.status().unwrap();
    let svc = replica(&v, "svc-1").unwrap();
    assert!(svc["beat_age_s"].is_null(), "{svc}");
    let within = svc["beat_within_s"].as_f64().unwrap_or(f64::MAX);
    assert!((0.0..1.5).contains(&within), "{svc}");
    // The old writer stops: polled, it shows stale; a frozen indexed agent shows stale too.
    agents[0].freeze();
    let v = sidecar.wait_for("both stale", Duration::from_secs(5), |v| {
        state_of(v, "old") == "stale" && state_of(v, "svc-0") == "stale"
    });
    assert_eq!(v["summary"]["replicas_by_state"]["ready"], 4);
}

/// Watched by the due index, an agent frozen until its record expires shows dead; thawed, it
/// writes its record again, a revival that neither the index (its new deadline is ahead) nor an
/// event (its own state never changed) announces: the sidecar reads a vanished replica again at
/// every poll, so it shows ready within a poll, not at the next full read. Seen on the real
/// engine (docker/e2e.sh): a thawed agent shown dead for as long as it ran.
#[test]
fn a_replica_whose_record_came_back_is_read_again() {
    let redis = RedisServer::start();
    let nats = NatsServer::start();
    let store = store(&redis, &nats);
    let agent = Agent::start(&store, "revived", "r1");
    agent.h().ready();
    let sidecar = Sidecar::start_indexed(&redis, &nats);
    sidecar.wait_for("the agent ready", Duration::from_secs(10), |v| {
        state_of(v, "revived") == "ready"
    });
    agent.freeze();
    sidecar.wait_for("the frozen agent dead", Duration::from_secs(10), |v| {
        state_of(v, "revived") == "dead"
    });
    // Its record has expired; a little later, it comes back.
    thread::sleep(Duration::from_millis(1500));
    agent.thaw();
    sidecar.wait_for(
        "the thawed agent ready again",
        Duration::from_secs(4),
        |v| state_of(v, "revived") == "ready",
    );
}

/// Redis restarted empty: the sidecar's full read after reconnecting no longer finds a
/// replica's record, and when its writer puts it back (a heartbeat of the crate's own write
/// script, sent here by the test so that no event announces it, as none does when a writer's
/// state never changed) the sidecar, which polls replicas a full read lost, shows it ready
/// within a poll. Seen on the real engine (docker/e2e.sh's Redis outage): agents shown dead
/// after Redis came back, while their own probes read them ready.
#[test]
fn a_replica_lost_with_an_emptied_store_is_read_again() {
    const WRITE: &str = include_str!("../../ready-signal/src/write.lua");
    let mut redis = RedisServer::start();
    let nats = NatsServer::start();
    let beat = |redis: &RedisServer| {
        let client = redis::Client::open(redis.url()).unwrap();
        let mut conn = client.get_connection().unwrap();
        let epoch: i64 = redis::cmd("EVAL")
            .arg(WRITE)
            .arg(5)
            .arg(format!("ready-signal:{NS}:survivor:r:r1"))
            .arg(format!("ready-signal:{NS}:survivor:replicas"))
            .arg(format!("ready-signal:{NS}:agents"))
            .arg(format!("ready-signal:{NS}:epoch"))
            .arg(format!("ready-signal:{NS}:due"))
            .arg(&[
                "put",
                "1732540000000-0000bbbb",
                "0",
                "ready",
                "",
                "1",
                "h",
                "60000",
                "180000",
                "survivor",
                "r1",
                "",
            ])
            .query(&mut conn)
            .unwrap();
        assert!(epoch > 0);
    };
    beat(&redis);
    let sidecar = Sidecar::start_indexed(&redis, &nats);
    sidecar.wait_for("the replica ready", Duration::from_secs(10), |v| {
        state_of(v, "survivor") == "ready"
    });
    redis.restart();
    sidecar.wait_for(
        "the store read again, the record gone",
        Duration::from_secs(15),
        |v| v["sources"]["store"]["status"] == "ok" && state_of(v, "survivor") == "dead",
    );
    beat(&redis);
    sidecar.wait_for("the replica ready again", Duration::from_secs(5), |v| {
        state_of(v, "survivor") == "ready"
    });
}
