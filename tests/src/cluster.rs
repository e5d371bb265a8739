//! Real clustered servers on loopback: a Redis Cluster, Redis under Sentinel, a NATS cluster.
//!
//! The probe targets and the ready-signal store for clustered deployments are judged by what
//! real servers do during a failover or a node loss, so the harness starts the real thing and
//! lets a test kill one node and wait, with a bound, until the survivors have converged. Every
//! node gets free loopback ports, its own temporary directory and log file, and is killed on
//! `Drop`; a node that does not come up, or a cluster that does not converge in time, is a
//! panic that shows the logs. Timings are tuned down (node timeout and Sentinel's
//! `down-after-milliseconds` of one second) so a failover takes seconds, not half a minute.
//!
//! - [`RedisCluster`]: `redis-server --cluster-enabled yes` nodes joined by
//!   `redis-cli --cluster create` (3 masters with one replica each by default).
//! - [`RedisSentinel`]: a master, a replica and 3 `redis-server --sentinel` processes.
//! - [`NatsCluster`]: `nats-server` nodes joined by routes, optionally with clustered JetStream.
//! - [`redis_command`]: a minimal, bounded RESP client to ask any of them a question.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{Node, log_tail, loopback, server_binary};

/// How long a single question to a server may take (connect, write, read).
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// How often convergence is polled.
const POLL: Duration = Duration::from_millis(50);

/// A free loopback port *below* the kernel's ephemeral range (32768 and up on Linux),
/// reserved for the rest of this process.
///
/// A cluster's ports are chosen before its servers start, and its servers open many outgoing
/// connections (routes, the cluster bus, replication), each from an ephemeral port: a port
/// chosen from that range (as [`crate::free_port`] does) can be taken by one of those
/// connections before its own server binds it. Below the range only another listener competes.
///
/// The reservation matters as much: a test kills a node and its port is free again. If another
/// test's server took it, this cluster's replicas, still retrying their dead master's address,
/// would connect to that stranger and full-sync its dataset. So each port handed out is locked
/// (`flock`) in a file under the temp dir until this process exits, and every process skips
/// locked ports.
pub fn cluster_port() -> u16 {
    use std::sync::Mutex;
    static RESERVED: Mutex<Vec<fs::File>> = Mutex::new(Vec::new());
    let locks = std::env::temp_dir().join("harness-cluster-ports");
    let _ = fs::create_dir_all(&locks);
    let reserve = |port: u16| -> bool {
        let Ok(file) = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(locks.join(format!("{port}.lock")))
        else {
            return false;
        };
        if file.try_lock().is_err() {
            return false;
        }
        RESERVED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(file);
        true
    };
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
        ^ (u64::from(std::process::id()) << 32);
    // The ephemeral range's start (Linux); 12000 ports below it, or 20000..32000 if unknown.
    let low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|&low| low > 13024)
        .unwrap_or(32000);
    let (base, span) = (low - 12000, 12000u16);
    for attempt in 0..1000u64 {
        // A cheap spread (splitmix64) of seed, call and attempt over the range.
        let mut x = seed
            .wrapping_add(
                SEQ.fetch_add(1, Ordering::Relaxed)
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15),
            )
            .wrapping_add(attempt);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        let port = base + (x % u64::from(span)) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() && reserve(port) {
            return port;
        }
    }
    panic!("no free loopback port in {base}..{low}")
}
/// A reply of the Redis protocol (RESP2), as far as the harness needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR ...`, `-MOVED ...`, `-CROSSSLOT ...`: the whole line after the `-`.
    Error(String),
    /// `:42`
    Int(i64),
    /// `$n` (None for the null bulk string).
    Bulk(Option<String>),
    /// `*n` (None for the null array).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The text of a status or bulk reply, or None.
    pub fn text(&self) -> Option<&str> {
        match self {
            Reply::Status(s) | Reply::Bulk(Some(s)) => Some(s),
            _ => None,
        }
    }

    /// The error line, when the reply is an error.
    pub fn error(&self) -> Option<&str> {
        match self {
            Reply::Error(e) => Some(e),
            _ => None,
        }
    }
}

/// Sends one command to a Redis (or Sentinel) at `addr` and reads its reply, every step bounded
/// by a 2 s timeout. An error *reply* is `Ok(Reply::Error)`; only I/O and protocol failures
/// are `Err`.
pub fn redis_command(addr: SocketAddr, args: &[&str]) -> io::Result<Reply> {
    let mut replies = redis_session(addr, &[args])?;
    Ok(replies.remove(0))
}

/// Sends `commands` one after another on **one** connection and returns their replies.
///
/// Some commands mean something only on the connection that wrote: `WAIT n ms` counts the
/// replicas that acknowledged *this connection's* writes (on a fresh connection it counts
/// every connected replica and proves nothing), and `AUTH` authenticates only its connection.
pub fn redis_session(addr: SocketAddr, commands: &[&[&str]]) -> io::Result<Vec<Reply>> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut replies = Vec::with_capacity(commands.len());
    for args in commands {
        let mut req = format!("*{}\r\n", args.len());
        for a in *args {
            let _ = write!(req, "${}\r\n{a}\r\n", a.len());
        }
        (&stream).write_all(req.as_bytes())?;
        replies.push(read_reply(&mut reader)?);
    }
    Ok(replies)
}

fn read_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad RESP line {line:?}"),
        )
    };
    let (kind, rest) = line.split_at_checked(1).ok_or_else(bad)?;
    Ok(match kind {
        "+" => Reply::Status(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Int(rest.parse().map_err(|_| bad())?),
        "$" => {
            let n: i64 = rest.parse().map_err(|_| bad())?;
            if n < 0 {
                Reply::Bulk(None)
            } else {
                let mut buf = vec![0; n as usize + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(n as usize);
                Reply::Bulk(Some(String::from_utf8_lossy(&buf).into_owned()))
            }
        }
        "*" => {
            let n: i64 = rest.parse().map_err(|_| bad())?;
            if n < 0 {
                Reply::Array(None)
            } else {
                let items = (0..n).map(|_| read_reply(r)).collect::<io::Result<_>>()?;
                Reply::Array(Some(items))
            }
        }
        _ => return Err(bad()),
    })
}

/// The `field:value` lines of an `INFO` or `CLUSTER INFO` reply at `addr`, or None when the
/// server does not answer.
pub fn redis_info(addr: SocketAddr, args: &[&str]) -> Option<Vec<(String, String)>> {
    let reply = redis_command(addr, args).ok()?;
    let text = reply.text()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect(),
    )
}

fn info_field(addr: SocketAddr, args: &[&str], field: &str) -> Option<String> {
    redis_info(addr, args)?
        .into_iter()
        .find(|(k, _)| k == field)
        .map(|(_, v)| v)
}

/// Polls `f` until it returns Some, or panics after `timeout` with `what` and `logs()`.
fn wait_for<T>(
    timeout: Duration,
    what: &str,
    logs: impl Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("{what}: not within {timeout:?}; logs:\n{}", logs());
        }
        thread::sleep(POLL);
    }
}

fn all_logs(nodes: &[Node]) -> String {
    nodes
        .iter()
        .map(Node::log_tail)
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// Redis Cluster

/// Options for a [`RedisCluster`].
#[derive(Debug, Clone)]
pub struct RedisClusterBuilder {
    masters: usize,
    replicas: usize,
    node_timeout_ms: u64,
}

impl Default for RedisClusterBuilder {
    fn default() -> Self {
        RedisClusterBuilder {
            masters: 3,
            replicas: 1,
            node_timeout_ms: 1000,
        }
    }
}

impl RedisClusterBuilder {
    /// Number of masters (at least 3, Redis Cluster's minimum).
    pub fn masters(mut self, n: usize) -> Self {
        self.masters = n;
        self
    }

    /// Replicas per master (`--cluster-replicas`).
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    /// `cluster-node-timeout` in milliseconds: how long before a silent node is failed over.
    pub fn node_timeout_ms(mut self, ms: u64) -> Self {
        self.node_timeout_ms = ms;
        self
    }

    /// Starts every node, joins them with `redis-cli --cluster create` and waits until every
    /// node reports `cluster_state:ok` with all 16384 slots covered.
    pub fn start(self) -> RedisCluster {
        assert!(
            self.masters >= 3,
            "a Redis Cluster needs at least 3 masters"
        );
        let dir = tempfile::Builder::new()
            .prefix("redis-cluster-")
            .tempdir()
            .unwrap();
        let count = self.masters * (1 + self.replicas);
        let nodes = (0..count)
            .map(|i| {
                let port = cluster_port();
                let mut node = Node::new(dir.path(), format!("redis-cluster-{i}"), port);
                node.name = format!("redis-server (cluster node {i}) on port {port}");
                ClusterNode {
                    node,
                    bus_port: cluster_port(),
                }
            })
            .collect();
        let mut cluster = RedisCluster {
            opts: self,
            nodes,
            dir,
        };
        for i in 0..count {
            cluster.spawn(i);
        }
        cluster.create();
        cluster.wait_converged(Duration::from_secs(30));
        cluster
    }
}

#[derive(Debug)]
struct ClusterNode {
    node: Node,
    // The cluster bus port, chosen free too: the default (port + 10000) may be taken or
    // beyond 65535 for a high ephemeral port.
    bus_port: u16,
}

/// A real Redis Cluster on loopback: `masters × (1 + replicas)` `redis-server` processes.
///
/// Node indices are stable across [`kill`](RedisCluster::kill) and
/// [`restart`](RedisCluster::restart); which index is a master changes with failovers, so ask
/// [`masters`](RedisCluster::masters) and [`replica_of`](RedisCluster::replica_of).
#[derive(Debug)]
pub struct RedisCluster {
    opts: RedisClusterBuilder,
    nodes: Vec<ClusterNode>,
    dir: TempDir,
}

/// A node as one member of the cluster sees it in `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNodeView {
    /// The node's 40-character id.
    pub id: String,
    /// Its client address.
    pub addr: SocketAddr,
    /// `master` or `slave`/`replica` flags, `fail`, `fail?`, `myself`, ...
    pub flags: Vec<String>,
    /// The master's id for a replica.
    pub master_id: Option<String>,
    /// Whether it owns any slots.
    pub has_slots: bool,
}

impl RedisCluster {
    /// 3 masters with one replica each, node timeout 1 s.
    pub fn start() -> RedisCluster {
        RedisClusterBuilder::default().start()
    }

    /// Options.
    pub fn builder() -> RedisClusterBuilder {
        RedisClusterBuilder::default()
    }

    fn spawn(&mut self, i: usize) {
        let bin = server_binary("redis-server", "REDIS_SERVER_BIN", "redis-server");
        let n = &mut self.nodes[i];
        let mut cmd = Command::new(bin);
        cmd.args(["--port", &n.node.port.to_string()])
            .args(["--cluster-port", &n.bus_port.to_string()])
            .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
            .args(["--cluster-enabled", "yes"])
            // nodes.conf lives in the node's directory and survives a kill, so a restarted
            // node rejoins with its old identity, as it would on a real host.
            .args(["--cluster-config-file", "nodes.conf"])
            .args([
                "--cluster-node-timeout",
                &self.opts.node_timeout_ms.to_string(),
            ])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(&n.node.dir);
        n.node.spawn(cmd, &[]);
    }

    fn create(&self) {
        let cli = server_binary("redis-cli", "REDIS_CLI_BIN", "redis-tools");
        let log = self.dir.path().join("cluster-create.log");
        let out = fs::File::create(&log).unwrap();
        let status = Command::new(cli)
            .arg("--cluster")
            .arg("create")
            .args(self.nodes.iter().map(|n| loopback(n.node.port).to_string()))
            .args(["--cluster-replicas", &self.opts.replicas.to_string()])
            .arg("--cluster-yes")
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .status()
            .unwrap_or_else(|e| panic!("cannot run redis-cli --cluster create: {e}"));
        if !status.success() {
            panic!(
                "redis-cli --cluster create exited with {status}:\n{}\n{}",
                log_tail(&log, 4000),
                self.logs()
            );
        }
    }

    /// Number of nodes, alive or not.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The client address of node `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        loopback(self.nodes[i].node.port)
    }

    /// Every node's client address (a seed list), in index order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        (0..self.nodes.len()).map(|i| self.addr(i)).collect()
    }

    /// `redis://127.0.0.1:P1,127.0.0.1:P2,...`: every node as one seed-list URL.
    pub fn seed_url(&self) -> String {
        let hosts: Vec<String> = self.addrs().iter().map(ToString::to_string).collect();
        format!("redis://{}", hosts.join(","))
    }

    /// Whether node `i` is running.
    pub fn is_alive(&self, i: usize) -> bool {
        self.nodes[i].node.alive()
    }

    /// Node index of a client address.
    pub fn index_of(&self, addr: SocketAddr) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| loopback(n.node.port) == addr)
    }

    /// `CLUSTER NODES` as seen by node `i`, or None when it does not answer.
    pub fn nodes_seen_by(&self, i: usize) -> Option<Vec<ClusterNodeView>> {
        let reply = redis_command(self.addr(i), &["CLUSTER", "NODES"]).ok()?;
        let text = reply.text()?.to_string();
        let mut views = Vec::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                continue;
            }
            // "127.0.0.1:7000@17000" (an optional ",hostname" follows in Redis 7).
            let addr = f[1].split(['@', ',']).next().unwrap_or_default();
            let Ok(addr) = addr.parse() else { continue };
            views.push(ClusterNodeView {
                id: f[0].to_string(),
                addr,
                flags: f[2].split(',').map(str::to_string).collect(),
                master_id: (f[3] != "-").then(|| f[3].to_string()),
                has_slots: f.len() > 8,
            });
        }
        Some(views)
    }

    fn first_alive(&self) -> usize {
        (0..self.nodes.len())
            .find(|&i| self.is_alive(i))
            .expect("every cluster node is dead")
    }

    /// Indices of the live masters that own slots, as the first live node sees them.
    pub fn masters(&self) -> Vec<usize> {
        let views = self.nodes_seen_by(self.first_alive()).unwrap_or_default();
        let mut m: Vec<usize> = views
            .iter()
            .filter(|v| {
                v.has_slots
                    && v.flags.iter().any(|f| f == "master")
                    && !v.flags.iter().any(|f| f == "fail")
            })
            .filter_map(|v| self.index_of(v.addr))
            .collect();
        m.sort_unstable();
        m
    }

    /// The index of a replica of master `i`, as the first live node sees it.
    pub fn replica_of(&self, i: usize) -> Option<usize> {
        let views = self.nodes_seen_by(self.first_alive())?;
        let id = &views.iter().find(|v| v.addr == self.addr(i))?.id;
        views
            .iter()
            .find(|v| v.master_id.as_ref() == Some(id))
            .and_then(|v| self.index_of(v.addr))
    }

    /// [`replica_of`](RedisCluster::replica_of), asked until it answers (a node's view can lack
    /// the replica for a moment on a loaded machine), or panics with the logs.
    pub fn wait_replica_of(&self, i: usize, timeout: Duration) -> usize {
        wait_for(
            timeout,
            &format!("a replica of node {i}"),
            || self.logs(),
            || self.replica_of(i),
        )
    }

    /// [`owner_of`](RedisCluster::owner_of), asked until it answers, or panics with the logs.
    pub fn wait_owner_of(&self, key: &str, timeout: Duration) -> usize {
        wait_for(
            timeout,
            &format!("the owner of {key}"),
            || self.logs(),
            || self.owner_of(key),
        )
    }

    /// The `role` of node `i` from `INFO replication` (`master` or `slave`).
    pub fn role(&self, i: usize) -> Option<String> {
        info_field(self.addr(i), &["INFO", "replication"], "role")
    }

    /// The `CLUSTER INFO` fields of node `i`.
    pub fn cluster_info(&self, i: usize) -> Option<Vec<(String, String)>> {
        redis_info(self.addr(i), &["CLUSTER", "INFO"])
    }

    /// Kills node `i` with SIGKILL (no goodbye to the cluster bus).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].node.kill();
    }

    /// Stops node `i` with SIGSTOP: its port still accepts connections (the kernel does), but
    /// it answers nothing, as a hung or black-holed node. [`RedisCluster::resume`] it before the
    /// end (a stopped node is still killed at drop).
    pub fn pause(&self, i: usize) {
        self.nodes[i].node.signal("STOP");
    }

    /// Resumes node `i` stopped by [`RedisCluster::pause`] (SIGCONT).
    pub fn resume(&self, i: usize) {
        self.nodes[i].node.signal("CONT");
    }

    /// Starts node `i` again on the same ports with its `nodes.conf`: it rejoins the cluster
    /// (as a replica, if it was a master that has been failed over).
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    /// Waits until every live node reports `cluster_state:ok`, all 16384 slots ok and none in
    /// pfail/fail, or panics with the logs.
    pub fn wait_converged(&self, timeout: Duration) {
        wait_for(
            timeout,
            "redis cluster converged (cluster_state:ok, 16384 slots ok on every live node)",
            || self.logs(),
            || {
                (0..self.nodes.len())
                    .filter(|&i| self.is_alive(i))
                    .all(|i| {
                        let Some(info) = self.cluster_info(i) else {
                            return false;
                        };
                        let get = |k: &str| info.iter().find(|(f, _)| f == k).map(|(_, v)| v);
                        get("cluster_state").is_some_and(|v| v == "ok")
                            && get("cluster_slots_ok").is_some_and(|v| v == "16384")
                            && get("cluster_slots_pfail").is_some_and(|v| v == "0")
                            && get("cluster_slots_fail").is_some_and(|v| v == "0")
                    })
                    .then_some(())
            },
        )
    }

    /// Waits until node `i` reports `role:master` and owns slots in the view of every other
    /// live node (a replica promoted by a failover), or panics with the logs.
    pub fn wait_master(&self, i: usize, timeout: Duration) {
        let addr = self.addr(i);
        wait_for(
            timeout,
            &format!("node {i} ({addr}) promoted to master"),
            || self.logs(),
            || {
                (self.role(i).as_deref() == Some("master")
                    && (0..self.nodes.len())
                        .filter(|&j| self.is_alive(j))
                        .all(|j| {
                            self.nodes_seen_by(j).is_some_and(|views| {
                                views.iter().any(|v| {
                                    v.addr == addr
                                        && v.has_slots
                                        && v.flags.iter().any(|f| f == "master")
                                })
                            })
                        }))
                .then_some(())
            },
        )
    }

    /// The node index that owns the slot of `key`, from `CLUSTER KEYSLOT` and `CLUSTER SLOTS`
    /// asked of the first live node.
    pub fn owner_of(&self, key: &str) -> Option<usize> {
        let at = self.addr(self.first_alive());
        let Reply::Int(slot) = redis_command(at, &["CLUSTER", "KEYSLOT", key]).ok()? else {
            return None;
        };
        let Reply::Array(Some(ranges)) = redis_command(at, &["CLUSTER", "SLOTS"]).ok()? else {
            return None;
        };
        for range in ranges {
            let Reply::Array(Some(r)) = range else {
                continue;
            };
            let (Some(Reply::Int(lo)), Some(Reply::Int(hi)), Some(Reply::Array(Some(master)))) =
                (r.first(), r.get(1), r.get(2))
            else {
                continue;
            };
            if (*lo..=*hi).contains(&slot)
                && let Some(Reply::Int(port)) = master.get(1)
            {
                return self.index_of(loopback(u16::try_from(*port).ok()?));
            }
        }
        None
    }

    /// The tail of every node's log.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.node.log_tail())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

// ---------------------------------------------------------------------------------------------
// Redis Sentinel

/// Options for a [`RedisSentinel`].
#[derive(Debug, Clone)]
pub struct RedisSentinelBuilder {
    master_name: String,
    sentinels: usize,
    quorum: usize,
    down_after_ms: u64,
    failover_timeout_ms: u64,
    password: Option<String>,
    sentinel_password: Option<String>,
}

impl Default for RedisSentinelBuilder {
    fn default() -> Self {
        RedisSentinelBuilder {
            master_name: "mymaster".into(),
            sentinels: 3,
            quorum: 2,
            down_after_ms: 1000,
            failover_timeout_ms: 3000,
            password: None,
            sentinel_password: None,
        }
    }
}

impl RedisSentinelBuilder {
    /// The monitored master's name (default `mymaster`).
    pub fn master_name(mut self, name: &str) -> Self {
        self.master_name = name.to_string();
        self
    }

    /// Number of Sentinels (default 3) and the quorum (default 2).
    pub fn sentinels(mut self, n: usize, quorum: usize) -> Self {
        self.sentinels = n;
        self.quorum = quorum;
        self
    }

    /// `down-after-milliseconds` (default 1000) and `failover-timeout` (default 3000).
    pub fn timing(mut self, down_after_ms: u64, failover_timeout_ms: u64) -> Self {
        self.down_after_ms = down_after_ms;
        self.failover_timeout_ms = failover_timeout_ms;
        self
    }

    /// The data nodes require this password (`requirepass`, `masterauth`), and the Sentinels
    /// use it (`sentinel auth-pass`). The Sentinels themselves stay open.
    pub fn requirepass(mut self, password: &str) -> Self {
        self.password = Some(password.to_string());
        self
    }

    /// The Sentinels themselves require this password (`requirepass`, and `sentinel
    /// sentinel-pass` so they still talk to each other); this helper's own questions to them
    /// authenticate with it.
    pub fn sentinel_password(mut self, password: &str) -> Self {
        self.sentinel_password = Some(password.to_string());
        self
    }

    /// Starts a master and a replica, waits for the replication link, starts the Sentinels
    /// and waits until each knows the master, the replica and every other Sentinel.
    pub fn start(self) -> RedisSentinel {
        let dir = tempfile::Builder::new()
            .prefix("redis-sentinel-")
            .tempdir()
            .unwrap();
        let data = (0..2)
            .map(|i| {
                let port = cluster_port();
                let mut n = Node::new(dir.path(), format!("data-{i}"), port);
                n.name = format!("redis-server (sentinel data node {i}) on port {port}");
                n
            })
            .collect();
        let sentinels = (0..self.sentinels)
            .map(|i| {
                let port = cluster_port();
                let mut n = Node::new(dir.path(), format!("sentinel-{i}"), port);
                n.name = format!("redis-server --sentinel {i} on port {port}");
                n
            })
            .collect();
        let mut s = RedisSentinel {
            opts: self,
            data,
            sentinels,
            _dir: dir,
        };
        s.spawn_data(0, None);
        let master = s.data_addr(0);
        s.spawn_data(1, Some(master));
        s.wait_replica_linked(1, Duration::from_secs(15));
        for i in 0..s.sentinels.len() {
            s.write_sentinel_conf(i, master);
            s.spawn_sentinel(i);
        }
        s.wait_monitoring(master, Duration::from_secs(30));
        s
    }
}

/// A real Redis master and replica monitored by real Sentinels, on loopback.
///
/// Data nodes are indexed 0 (the first master) and 1 (its replica); which one is master
/// changes with failovers: ask [`master_addr`](RedisSentinel::master_addr).
///
/// With `down-after-milliseconds` at 1 s on a loaded machine, a Sentinel can flag a freshly
/// promoted master down within a second of the switch and fail over again, to whatever replica
/// it knows, even an old master just restarted empty (seen here: the dataset was lost).
/// After [`wait_failover`](RedisSentinel::wait_failover), call
/// [`wait_monitoring`](RedisSentinel::wait_monitoring) before restarting the old master.
#[derive(Debug)]
pub struct RedisSentinel {
    opts: RedisSentinelBuilder,
    data: Vec<Node>,
    sentinels: Vec<Node>,
    _dir: TempDir,
}

impl RedisSentinel {
    /// A master, one replica and 3 Sentinels with quorum 2, `down-after-milliseconds` 1000.
    pub fn start() -> RedisSentinel {
        RedisSentinelBuilder::default().start()
    }

    /// Options.
    pub fn builder() -> RedisSentinelBuilder {
        RedisSentinelBuilder::default()
    }

    fn spawn_data(&mut self, i: usize, replica_of: Option<SocketAddr>) {
        let bin = server_binary("redis-server", "REDIS_SERVER_BIN", "redis-server");
        let n = &mut self.data[i];
        let mut cmd = Command::new(bin);
        cmd.args(["--port", &n.port.to_string()])
            .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            // A replica's full sync starts at once instead of after the default 5 s wait for
            // more replicas to batch with.
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(&n.dir);
        if let Some(p) = &self.opts.password {
            // masterauth too: a master that comes back is turned into a replica by Sentinel.
            cmd.args(["--requirepass", p, "--masterauth", p]);
        }
        if let Some(m) = replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &m.port().to_string()]);
        }
        n.spawn(cmd, &[]);
    }

    fn write_sentinel_conf(&self, i: usize, master: SocketAddr) {
        let o = &self.opts;
        let n = &self.sentinels[i];
        let name = &o.master_name;
        let mut conf = format!(
            "port {port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\ndir {dir}\n\
             sentinel monitor {name} 127.0.0.1 {mport} {quorum}\n\
             sentinel down-after-milliseconds {name} {down}\n\
             sentinel failover-timeout {name} {fo}\n\
             sentinel parallel-syncs {name} 1\n",
            port = n.port,
            dir = n.dir.display(),
            mport = master.port(),
            quorum = o.quorum,
            down = o.down_after_ms,
            fo = o.failover_timeout_ms,
        );
        if let Some(p) = &o.password {
            let _ = writeln!(conf, "sentinel auth-pass {name} {p}");
        }
        if let Some(p) = &o.sentinel_password {
            let _ = writeln!(conf, "requirepass {p}\nsentinel sentinel-pass {p}");
        }
        // Sentinel rewrites its config file (it records what it learns), so it must be a
        // writable file of its own.
        fs::write(n.dir.join("sentinel.conf"), conf).unwrap();
    }

    fn spawn_sentinel(&mut self, i: usize) {
        let bin = server_binary("redis-server", "REDIS_SERVER_BIN", "redis-server");
        let n = &mut self.sentinels[i];
        let mut cmd = Command::new(bin);
        cmd.arg(n.dir.join("sentinel.conf")).arg("--sentinel");
        n.spawn(cmd, &[]);
    }

    fn data_cmd(&self, i: usize, args: &[&str]) -> Option<Reply> {
        let addr = self.data_addr(i);
        match &self.opts.password {
            // One connection: AUTH then the command, over the same stream.
            Some(p) => redis_command_as(addr, None, p, args).ok(),
            None => redis_command(addr, args).ok(),
        }
    }

    /// The address of data node `i` (0: the first master, 1: the first replica).
    pub fn data_addr(&self, i: usize) -> SocketAddr {
        loopback(self.data[i].port)
    }

    /// A question to Sentinel `i`, authenticated when the Sentinels have a password.
    fn sentinel_cmd(&self, i: usize, args: &[&str]) -> io::Result<Reply> {
        let addr = self.sentinel_addr(i);
        match &self.opts.sentinel_password {
            Some(p) => redis_command_as(addr, None, p, args),
            None => redis_command(addr, args),
        }
    }

    /// The address of Sentinel `i`.
    pub fn sentinel_addr(&self, i: usize) -> SocketAddr {
        loopback(self.sentinels[i].port)
    }

    /// Every Sentinel's address, in index order.
    pub fn sentinel_addrs(&self) -> Vec<SocketAddr> {
        (0..self.sentinels.len())
            .map(|i| self.sentinel_addr(i))
            .collect()
    }

    /// `redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,.../MASTER_NAME`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinel_addrs()
            .iter()
            .map(ToString::to_string)
            .collect();
        format!(
            "redis+sentinel://{}/{}",
            hosts.join(","),
            self.opts.master_name
        )
    }

    /// The monitored master's name.
    pub fn master_name(&self) -> &str {
        &self.opts.master_name
    }

    /// The index of the data node at `addr`.
    pub fn data_index_of(&self, addr: SocketAddr) -> Option<usize> {
        self.data.iter().position(|n| loopback(n.port) == addr)
    }

    /// `SENTINEL GET-MASTER-ADDR-BY-NAME` asked of Sentinel `i`, or None when it does not
    /// answer or knows no master.
    pub fn master_addr(&self, sentinel: usize) -> Option<SocketAddr> {
        let reply = self
            .sentinel_cmd(
                sentinel,
                &[
                    "SENTINEL",
                    "GET-MASTER-ADDR-BY-NAME",
                    &self.opts.master_name,
                ],
            )
            .ok()?;
        let Reply::Array(Some(hp)) = reply else {
            return None;
        };
        let host = hp.first()?.text()?;
        let port = hp.get(1)?.text()?;
        format!("{host}:{port}").parse().ok()
    }

    /// `SENTINEL CKQUORUM` asked of Sentinel `i`: `Ok(text)` when it passes, `Err(error
    /// line)` otherwise.
    pub fn ckquorum(&self, sentinel: usize) -> Result<String, String> {
        match self.sentinel_cmd(sentinel, &["SENTINEL", "CKQUORUM", &self.opts.master_name]) {
            Ok(Reply::Error(e)) => Err(e),
            Ok(r) => r.text().map(str::to_string).ok_or(format!("{r:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The `role` of data node `i` (`master` or `slave`).
    pub fn role(&self, i: usize) -> Option<String> {
        let reply = self.data_cmd(i, &["INFO", "replication"])?;
        reply
            .text()?
            .lines()
            .find_map(|l| l.strip_prefix("role:"))
            .map(|r| r.trim().to_string())
    }

    /// Whether data node `i` is a replica whose link to its master is up.
    pub fn replica_linked(&self, i: usize) -> bool {
        self.data_cmd(i, &["INFO", "replication"])
            .and_then(|r| r.text().map(|t| t.contains("master_link_status:up")))
            .unwrap_or(false)
    }

    fn wait_replica_linked(&self, i: usize, timeout: Duration) {
        wait_for(
            timeout,
            &format!("data node {i} replicating (master_link_status:up)"),
            || self.logs(),
            || self.replica_linked(i).then_some(()),
        )
    }

    /// Waits until every live Sentinel names `master`, knows at least one replica and every
    /// other live Sentinel, and `CKQUORUM` passes; panics with the logs otherwise.
    pub fn wait_monitoring(&self, master: SocketAddr, timeout: Duration) {
        let live: Vec<usize> = (0..self.sentinels.len())
            .filter(|&i| self.sentinels[i].alive())
            .collect();
        wait_for(
            timeout,
            &format!("every live sentinel monitoring {master} with its replica and peers"),
            || self.logs(),
            || {
                live.iter()
                    .all(|&i| {
                        let fields = self.sentinel_master_fields(i);
                        let get = |k: &str| {
                            fields
                                .iter()
                                .find(|(f, _)| f == k)
                                .and_then(|(_, v)| v.parse::<usize>().ok())
                        };
                        self.master_addr(i) == Some(master)
                            && get("num-slaves").is_some_and(|n| n >= 1)
                            && get("num-other-sentinels").is_some_and(|n| n + 1 >= live.len())
                            && self.ckquorum(i).is_ok()
                    })
                    .then_some(())
            },
        )
    }

    /// The flat field/value pairs of `SENTINEL MASTER NAME` asked of Sentinel `i`.
    pub fn sentinel_master_fields(&self, sentinel: usize) -> Vec<(String, String)> {
        let Ok(Reply::Array(Some(items))) =
            self.sentinel_cmd(sentinel, &["SENTINEL", "MASTER", &self.opts.master_name])
        else {
            return Vec::new();
        };
        items
            .chunks(2)
            .filter_map(|kv| Some((kv.first()?.text()?.into(), kv.get(1)?.text()?.into())))
            .collect()
    }

    /// The flags (`sentinel`, `s_down`, ...) Sentinel `i` holds for its peer Sentinel `peer`,
    /// from `SENTINEL SENTINELS NAME`; None when `i` does not answer or does not know `peer`.
    pub fn peer_flags(&self, sentinel: usize, peer: usize) -> Option<String> {
        let Ok(Reply::Array(Some(peers))) =
            self.sentinel_cmd(sentinel, &["SENTINEL", "SENTINELS", &self.opts.master_name])
        else {
            return None;
        };
        let port = self.sentinels[peer].port.to_string();
        peers.iter().find_map(|p| {
            let Reply::Array(Some(kv)) = p else {
                return None;
            };
            let fields: Vec<&str> = kv.iter().filter_map(Reply::text).collect();
            let get = |k: &str| {
                fields
                    .chunks(2)
                    .find(|c| c.first() == Some(&k))
                    .and_then(|c| c.get(1).copied())
            };
            (get("port") == Some(port.as_str())).then(|| get("flags").unwrap_or("").to_string())
        })
    }

    /// Waits until every live Sentinel names the same master, not `old`, and that node
    /// answers `role:master`; returns its address or panics with the logs.
    pub fn wait_failover(&self, old: SocketAddr, timeout: Duration) -> SocketAddr {
        wait_for(
            timeout,
            &format!("sentinels agreeing on a new master instead of {old}"),
            || self.logs(),
            || {
                let mut seen = (0..self.sentinels.len())
                    .filter(|&i| self.sentinels[i].alive())
                    .map(|i| self.master_addr(i));
                let first = seen.next()??;
                if first == old || !seen.all(|a| a == Some(first)) {
                    return None;
                }
                let i = self.data_index_of(first)?;
                (self.role(i).as_deref() == Some("master")).then_some(first)
            },
        )
    }

    /// Waits until data node `i` is a replica of `master` with its link up (a killed master
    /// that came back is reconfigured by the Sentinels).
    pub fn wait_replica_of(&self, i: usize, master: SocketAddr, timeout: Duration) {
        let port = format!("master_port:{}", master.port());
        wait_for(
            timeout,
            &format!("data node {i} replicating from {master}"),
            || self.logs(),
            || {
                self.data_cmd(i, &["INFO", "replication"])
                    .and_then(|r| {
                        r.text().map(|t| {
                            t.contains("role:slave")
                                && t.contains(&port)
                                && t.contains("master_link_status:up")
                        })
                    })
                    .unwrap_or(false)
                    .then_some(())
            },
        )
    }

    /// Kills data node `i` (SIGKILL).
    pub fn kill_data(&mut self, i: usize) {
        self.data[i].kill();
    }

    /// Starts data node `i` again on its port, as a master with an empty dataset: the
    /// Sentinels turn it into a replica of the current master.
    pub fn restart_data(&mut self, i: usize) {
        self.data[i].kill();
        self.spawn_data(i, None);
    }

    /// Stops data node `i` (SIGSTOP): it hangs with its connections open until
    /// [`RedisSentinel::resume_data`]; the Sentinels see it down and fail over.
    pub fn pause_data(&self, i: usize) {
        self.data[i].signal("STOP");
    }

    /// Lets a stopped data node `i` run again (SIGCONT).
    pub fn resume_data(&self, i: usize) {
        self.data[i].signal("CONT");
    }

    /// Kills Sentinel `i` (SIGKILL).
    pub fn kill_sentinel(&mut self, i: usize) {
        self.sentinels[i].kill();
    }

    /// Starts Sentinel `i` again with the config it rewrote (it remembers the current master).
    pub fn restart_sentinel(&mut self, i: usize) {
        self.sentinels[i].kill();
        self.spawn_sentinel(i);
    }

    /// The tail of every data node's and Sentinel's log.
    pub fn logs(&self) -> String {
        format!("{}\n{}", all_logs(&self.data), all_logs(&self.sentinels))
    }
}

/// [`redis_command`] after `AUTH [user] password` on the same connection; a refused `AUTH`
/// is returned as its error reply.
pub fn redis_command_as(
    addr: SocketAddr,
    user: Option<&str>,
    password: &str,
    args: &[&str],
) -> io::Result<Reply> {
    let auth: Vec<&str> = ["AUTH"].into_iter().chain(user).chain([password]).collect();
    let mut replies = redis_session(addr, &[&auth, args])?;
    let reply = replies.pop().unwrap_or(Reply::Array(None));
    match replies.pop() {
        Some(refused @ Reply::Error(_)) => Ok(refused),
        _ => Ok(reply),
    }
}

// ---------------------------------------------------------------------------------------------
// NATS cluster

/// Options for a [`NatsCluster`].
#[derive(Debug, Clone)]
pub struct NatsClusterBuilder {
    size: usize,
    jetstream: bool,
    config: String,
    env: Vec<(String, String)>,
}

impl Default for NatsClusterBuilder {
    fn default() -> Self {
        NatsClusterBuilder {
            size: 3,
            jetstream: false,
            config: String::new(),
            env: Vec::new(),
        }
    }
}

impl NatsClusterBuilder {
    /// Number of servers (default 3).
    pub fn size(mut self, n: usize) -> Self {
        self.size = n;
        self
    }

    /// Clustered JetStream on every node, stored in the node's directory.
    pub fn jetstream(mut self) -> Self {
        self.jetstream = true;
        self
    }

    /// Appends raw configuration to every node's file (an `authorization { ... }` block,
    /// limits). Client authorization applies to clients only; routes stay open on loopback.
    pub fn config(mut self, text: &str) -> Self {
        self.config.push_str(text);
        self.config.push('\n');
        self
    }

    /// Sets an environment variable of every node: nats-server resolves `$NAME` in its
    /// configuration from the environment, so a password can stay out of the file.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Starts every node, each with routes to all the others and a monitoring port, and waits
    /// until every node has a route to every other (and, with JetStream, a meta leader).
    pub fn start(self) -> NatsCluster {
        let dir = tempfile::Builder::new()
            .prefix("nats-cluster-")
            .tempdir()
            .unwrap();
        let nodes = (0..self.size)
            .map(|i| {
                let port = cluster_port();
                let mut node = Node::new(dir.path(), format!("n{i}"), port);
                node.name = format!("nats-server n{i} on port {port}");
                NatsNode {
                    node,
                    route_port: cluster_port(),
                    monitor_port: cluster_port(),
                }
            })
            .collect();
        let mut c = NatsCluster {
            opts: self,
            nodes,
            _dir: dir,
        };
        for i in 0..c.nodes.len() {
            c.write_conf(i);
        }
        for i in 0..c.nodes.len() {
            c.spawn(i);
        }
        c.wait_routes(Duration::from_secs(30));
        if c.opts.jetstream {
            c.wait_jetstream_leader(Duration::from_secs(30));
        }
        c
    }
}

#[derive(Debug)]
struct NatsNode {
    node: Node,
    route_port: u16,
    monitor_port: u16,
}

/// Real `nats-server` processes joined into one cluster by routes, on loopback.
#[derive(Debug)]
pub struct NatsCluster {
    opts: NatsClusterBuilder,
    nodes: Vec<NatsNode>,
    _dir: TempDir,
}

impl NatsCluster {
    /// 3 nodes, no JetStream.
    pub fn start() -> NatsCluster {
        NatsClusterBuilder::default().start()
    }

    /// Options.
    pub fn builder() -> NatsClusterBuilder {
        NatsClusterBuilder::default()
    }

    fn write_conf(&self, i: usize) {
        let n = &self.nodes[i];
        let routes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, o)| format!("nats-route://127.0.0.1:{}", o.route_port))
            .collect();
        let mut conf = format!(
            "server_name: n{i}\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{mon}\n\
             cluster {{\n  name: harness\n  listen: 127.0.0.1:{route}\n  routes: [{routes}]\n}}\n",
            port = n.node.port,
            mon = n.monitor_port,
            route = n.route_port,
            routes = routes.join(", "),
        );
        if self.opts.jetstream {
            let _ = write!(
                conf,
                "jetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 64MB\n  max_file_store: 256MB\n}}\n",
                n.node.dir.join("js").display()
            );
        }
        conf.push_str(&self.opts.config);
        fs::write(n.node.dir.join("nats.conf"), conf).unwrap();
    }

    fn spawn(&mut self, i: usize) {
        let bin = server_binary("nats-server", "NATS_SERVER_BIN", "nats-server");
        let n = &mut self.nodes[i];
        let mut cmd = Command::new(bin);
        cmd.arg("-c").arg(n.node.dir.join("nats.conf"));
        cmd.envs(self.opts.env.iter().map(|(k, v)| (k, v)));
        n.node.spawn(cmd, &[n.monitor_port]);
    }

    /// Number of nodes, alive or not.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// `nats://127.0.0.1:PORT` of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].node.port)
    }

    /// Every node's URL: the seed list a client is given.
    pub fn urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.url(i)).collect()
    }

    /// `nats://127.0.0.1:P1,127.0.0.1:P2,...`: the seed list as one URL.
    pub fn seed_url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| loopback(n.node.port).to_string())
            .collect();
        format!("nats://{}", hosts.join(","))
    }

    /// The client port of node `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].node.port
    }

    /// The monitoring port of node `i` (`/healthz`, `/routez`, `/jsz`).
    pub fn monitor_port(&self, i: usize) -> u16 {
        self.nodes[i].monitor_port
    }

    /// The `server_name` of node `i` (`n0`, `n1`, ...).
    pub fn server_name(&self, i: usize) -> String {
        format!("n{i}")
    }

    /// The node index with this client port.
    pub fn index_of_port(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.node.port == port)
    }

    /// Whether node `i` is running.
    pub fn is_alive(&self, i: usize) -> bool {
        self.nodes[i].node.alive()
    }

    /// GET `path` on node `i`'s monitoring port, parsed as JSON; None when it does not answer.
    pub fn monitor(&self, i: usize, path: &str) -> Option<serde_json::Value> {
        let body = http_get(loopback(self.nodes[i].monitor_port), path).ok()?;
        serde_json::from_str(&body).ok()
    }

    /// `num_routes` from node `i`'s `/routez`.
    pub fn num_routes(&self, i: usize) -> Option<u64> {
        self.monitor(i, "/routez")?.get("num_routes")?.as_u64()
    }

    /// The JetStream meta leader's server name as node `i` sees it (`/jsz`).
    pub fn jetstream_leader(&self, i: usize) -> Option<String> {
        let jsz = self.monitor(i, "/jsz")?;
        let leader = jsz.get("meta_cluster")?.get("leader")?.as_str()?;
        (!leader.is_empty()).then(|| leader.to_string())
    }

    /// Kills node `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].node.kill();
    }

    /// Starts node `i` again on the same ports (and JetStream store).
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    /// Waits until every live node has a route to every other live node (`/routez`), or
    /// panics with the logs.
    pub fn wait_routes(&self, timeout: Duration) {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.is_alive(i))
            .collect();
        let want = live.len() as u64 - 1;
        wait_for(
            timeout,
            &format!("every live nats node with {want} routes"),
            || self.logs(),
            || {
                live.iter()
                    .all(|&i| self.num_routes(i) == Some(want))
                    .then_some(())
            },
        )
    }

    /// Waits until every live node names the same live JetStream meta leader; returns its
    /// node index or panics with the logs.
    pub fn wait_jetstream_leader(&self, timeout: Duration) -> usize {
        wait_for(
            timeout,
            "a JetStream meta leader every live node agrees on",
            || self.logs(),
            || {
                let mut seen = (0..self.nodes.len())
                    .filter(|&i| self.is_alive(i))
                    .map(|i| self.jetstream_leader(i));
                let first = seen.next()??;
                if !seen.all(|l| l.as_deref() == Some(&first)) {
                    return None;
                }
                let i = (0..self.nodes.len()).find(|&i| self.server_name(i) == first)?;
                self.is_alive(i).then_some(i)
            },
        )
    }

    /// The tail of every node's log.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.node.log_tail())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A bounded HTTP/1.0 GET on loopback: the body when the status is 200.
fn http_get(addr: SocketAddr, path: &str) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    // HTTP/1.0: the server closes the connection after the body. Bounded at 4 MiB.
    stream.take(4 << 20).read_to_string(&mut text)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP header end"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(io::Error::other(format!(
            "GET {path}: {}",
            head.lines().next().unwrap_or_default()
        )));
    }
    Ok(body.to_string())
}
