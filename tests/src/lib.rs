//! Test harness shared by every crate's integration tests.
//!
//! It starts *real* `redis-server` and `nats-server` processes, each on a free loopback port
//! with its own temporary directory and log file, waits until the server accepts connections
//! and kills it on `Drop` (the pattern of nats.rs's `nats-server` crate and redis-rs's
//! `redis-test`). Server binaries come from `PATH`, or from `REDIS_SERVER_BIN` /
//! `NATS_SERVER_BIN`; a missing binary is a panic that names the Debian package to install.
//!
//! Layout:
//! - [`RedisServer`] / [`RedisBuilder`]: a real Redis, optionally with `requirepass` and ACL users.
//! - [`NatsServer`] / [`NatsBuilder`]: a real NATS, optionally with a token, a user and JetStream.
//! - `Node`: one server process across its lives (stop, restart, signal, log), which both servers
//!   and every node of the [`cluster`] servers are.
//! - [`fake`]: named fakes for faults a real server will not produce on demand.
//! - [`bin`]: the path of a workspace binary built beside the running test, and
//!   [`clean_command`]: the one launcher for it, free of the caller's probe and store variables.

#![allow(clippy::unwrap_used)] // test support: a failure here should panic loudly

pub mod cluster;
pub mod fake;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to accept its first connection before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A free TCP port on 127.0.0.1, found by binding port 0 and letting the kernel pick.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// The prefixes of every variable a probe, an agent or a client library reads: a command from
/// [`clean_command`] starts with none of them, so a developer's or CI's environment never
/// changes what a test sees.
pub const ENV_PREFIXES: &[&str] = &[
    "HEALTHCHECK_",
    "REDIS_",
    "NATS_",
    "READY_SIGNAL_",
    "NO_COLOR",
];

/// A command for `program` (a workspace binary: the probe, the CLI, the sidecar) without any
/// variable of [`ENV_PREFIXES`] nor a proxy setting (`http_proxy`, `HTTPS_PROXY`, ...), so it
/// sees only what the test gives it; the test's own `.env(...)` calls come after and win. The one
/// launcher every integration test uses.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    clean_env(&mut cmd);
    cmd
}

/// Removes from `cmd` what [`clean_command`] leaves out, for a command built another way (a
/// binary run under `/usr/bin/time`).
pub fn clean_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if ENV_PREFIXES.iter().any(|p| name.starts_with(p))
            || name.ends_with("_proxy")
            || name.ends_with("_PROXY")
        {
            cmd.env_remove(&*name);
        }
    }
    cmd
}

/// The path of a binary of this workspace, built into the same target directory as the test.
///
/// Cargo puts test executables in `target/<profile>/deps/` and binaries in `target/<profile>/`.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe
        .parent()
        .expect("test binary has a directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace` (or `cargo nextest run --workspace`) first",
        path.display()
    );
    path
}

/// Finds a server binary: the environment variable `env` if set, else `name` on `PATH`.
fn server_binary(name: &str, env: &str, package: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in
        std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
    {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "{name} not found on PATH: install the Debian package `{package}` (apt-get install -y {package}) or set {env}"
    )
}

/// A running server process; killed when dropped.
#[derive(Debug)]
struct Process {
    child: Option<Child>,
    log: PathBuf,
    what: String,
}

impl Process {
    fn spawn(mut cmd: Command, log: PathBuf, what: String) -> Process {
        let out = fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Process {
            child: Some(child),
            log,
            what,
        }
    }

    /// Waits until `addr` accepts a TCP connection, or panics showing the server log.
    fn wait_accepting(&mut self, addr: SocketAddr) {
        let start = Instant::now();
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "{} exited with {status} before accepting on {addr}; log:\n{}",
                    self.what,
                    self.log_text()
                );
            }
            if start.elapsed() > START_TIMEOUT {
                panic!(
                    "{} did not accept on {addr} within {START_TIMEOUT:?}; log:\n{}",
                    self.what,
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends `signal` (`STOP`, `CONT`) with kill(1): a paused server keeps its listening socket,
    /// so the kernel still completes TCP handshakes, but nothing answers.
    fn signal(&self, signal: &str) {
        let pid = self.pid();
        assert!(pid != 0, "{} is not running", self.what);
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `127.0.0.1:port`.
pub(crate) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The last `max` bytes of a log file, so a panic stays readable with many nodes.
pub(crate) fn log_tail(path: &Path, max: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    let start = (start..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// One server process across its lives (started, killed, started again): its name, port,
/// directory, log and (while alive) process. [`RedisServer`], [`NatsServer`] and every node of
/// the clusters in [`cluster`] are one each, so stopping, restarting, signalling and reading the
/// log are written once.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) port: u16,
    pub(crate) dir: PathBuf,
    log: PathBuf,
    process: Option<Process>,
}

impl Node {
    /// A node not started yet, its directory `root/name` created and its log inside it.
    pub(crate) fn new(root: &Path, name: String, port: u16) -> Node {
        let dir = root.join(&name);
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("server.log");
        Node {
            name,
            port,
            dir,
            log,
            process: None,
        }
    }

    /// Starts `cmd` as this node's process and waits until its port and `extra_ports` accept.
    pub(crate) fn spawn(&mut self, cmd: Command, extra_ports: &[u16]) {
        // A restarted node's previous log is kept beside the new one: a failed convergence
        // after a restart needs both lives.
        if self.log.exists() {
            let _ = fs::rename(&self.log, self.log.with_extension("log.previous"));
        }
        let mut process = Process::spawn(cmd, self.log.clone(), self.name.clone());
        process.wait_accepting(loopback(self.port));
        for p in extra_ports {
            process.wait_accepting(loopback(*p));
        }
        self.process = Some(process);
    }

    /// Whether the process is running (started and not killed).
    pub(crate) fn alive(&self) -> bool {
        self.process.is_some()
    }

    /// Kills the process (SIGKILL) and reaps it; nothing when stopped.
    pub(crate) fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the live process: `STOP` makes a node that hangs with
    /// its connections open, as a frozen or black-holed host does, rather than one that refuses.
    pub(crate) fn signal(&self, signal: &str) {
        match &self.process {
            Some(p) => p.signal(signal),
            None => panic!("{} is not running", self.name),
        }
    }

    /// The current life's log ("" while stopped).
    pub(crate) fn log(&self) -> String {
        self.process
            .as_ref()
            .map(Process::log_text)
            .unwrap_or_default()
    }

    /// The process id (0 while stopped).
    pub(crate) fn pid(&self) -> u32 {
        self.process.as_ref().map_or(0, Process::pid)
    }

    /// The tails of its current and previous lives' logs, headed with its name, for a panic.
    pub(crate) fn log_tail(&self) -> String {
        let previous = self.log.with_extension("log.previous");
        let before = if previous.exists() {
            format!(
                "(previous life)\n{}\n(restarted)\n",
                log_tail(&previous, 1500)
            )
        } else {
            String::new()
        };
        format!(
            "--- {} ({}):\n{before}{}",
            self.name,
            self.log.display(),
            log_tail(&self.log, 3000)
        )
    }
}

/// Options for a real `redis-server`.
#[derive(Debug, Default, Clone)]
pub struct RedisBuilder {
    password: Option<String>,
    users: Vec<String>,
    args: Vec<String>,
}

impl RedisBuilder {
    /// Require this password for the default user (`requirepass`).
    pub fn requirepass(mut self, password: &str) -> Self {
        self.password = Some(password.to_string());
        self
    }

    /// Add an ACL user, e.g. `acl_user("probe", "secret", "~* +@all")`.
    pub fn acl_user(mut self, name: &str, password: &str, rules: &str) -> Self {
        self.users.push(format!("{name} on >{password} {rules}"));
        self
    }

    /// Pass a raw `--name value` option to redis-server.
    pub fn arg(mut self, name: &str, value: &str) -> Self {
        self.args.push(format!("--{name}"));
        self.args.push(value.to_string());
        self
    }

    /// Disables `command` (`rename-command COMMAND ""`): a client sending it gets redis-server's
    /// own `ERR unknown command 'COMMAND', with args beginning with: ...`, quoting its arguments.
    pub fn disable_command(mut self, command: &str) -> Self {
        self.args.push("--rename-command".into());
        self.args.push(command.to_string());
        self.args.push(String::new());
        self
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(self) -> RedisServer {
        let dir = tempfile::Builder::new().prefix("redis-").tempdir().unwrap();
        let port = free_port();
        let mut node = Node::new(dir.path(), "redis".into(), port);
        node.name = format!("redis-server on port {port}");
        let mut server = RedisServer {
            opts: self,
            port,
            dir,
            node,
        };
        server.spawn();
        server
    }
}

/// A real `redis-server` on a free loopback port, in its own temporary directory.
#[derive(Debug)]
pub struct RedisServer {
    opts: RedisBuilder,
    port: u16,
    dir: TempDir,
    node: Node,
}

impl RedisServer {
    /// A server with no authentication.
    pub fn start() -> RedisServer {
        RedisBuilder::default().start()
    }

    /// Options for a server with authentication or extra settings.
    pub fn builder() -> RedisBuilder {
        RedisBuilder::default()
    }

    fn spawn(&mut self) {
        let bin = server_binary("redis-server", "REDIS_SERVER_BIN", "redis-server");
        let mut cmd = Command::new(bin);
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(self.dir.path())
        .args(["--daemonize", "no", "--protected-mode", "no"]);
        if let Some(p) = &self.opts.password {
            cmd.args(["--requirepass", p]);
        }
        for user in &self.opts.users {
            // redis-server joins the words after `--user` into one config line; one argument
            // holding spaces would be quoted and read as a user name with spaces.
            cmd.arg("--user").args(user.split_whitespace());
        }
        cmd.args(&self.opts.args);
        self.node.spawn(cmd, &[]);
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT` (no credentials).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL); it keeps nothing on disk.
    pub fn stop(&mut self) {
        self.node.kill();
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.node.log()
    }

    /// The temporary directory the server runs in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts recording every command the server executes (`MONITOR`), with the server's own
    /// timestamps, for tests that must tell who read what, and when.
    pub fn monitor(&self) -> Monitor {
        Monitor::start(self.addr())
    }

    /// Pauses the server (SIGSTOP): connections are still accepted by the kernel, never answered.
    pub fn pause(&self) {
        // A stopped server has nothing to signal.
        if self.node.alive() {
            self.node.signal("STOP");
        }
    }

    /// Resumes a paused server (SIGCONT).
    pub fn resume(&self) {
        // A stopped server has nothing to signal.
        if self.node.alive() {
            self.node.signal("CONT");
        }
    }

    /// The server's process id (0 when stopped).
    pub fn pid(&self) -> u32 {
        self.node.pid()
    }
}

/// Options for a real `nats-server`.
#[derive(Debug, Default, Clone)]
pub struct NatsBuilder {
    token: Option<String>,
    user: Option<(String, String)>,
    jetstream: bool,
    monitor: bool,
}

impl NatsBuilder {
    /// Require this token (`--auth`).
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    /// Require this user and password (`--user`, `--pass`).
    pub fn user(mut self, user: &str, password: &str) -> Self {
        self.user = Some((user.to_string(), password.to_string()));
        self
    }

    /// Enable JetStream, stored in the server's temporary directory.
    pub fn jetstream(mut self) -> Self {
        self.jetstream = true;
        self
    }

    /// Enable the HTTP monitoring port (`/healthz`, `/varz`).
    pub fn monitor(mut self) -> Self {
        self.monitor = true;
        self
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(self) -> NatsServer {
        let dir = tempfile::Builder::new().prefix("nats-").tempdir().unwrap();
        let port = free_port();
        let monitor_port = self.monitor.then(free_port);
        let mut node = Node::new(dir.path(), "nats".into(), port);
        node.name = format!("nats-server on port {port}");
        let mut server = NatsServer {
            opts: self,
            port,
            monitor_port,
            dir,
            node,
        };
        server.spawn();
        server
    }
}

/// A real `nats-server` on a free loopback port, in its own temporary directory.
#[derive(Debug)]
pub struct NatsServer {
    opts: NatsBuilder,
    port: u16,
    monitor_port: Option<u16>,
    dir: TempDir,
    node: Node,
}

impl NatsServer {
    /// A server with no authentication.
    pub fn start() -> NatsServer {
        NatsBuilder::default().start()
    }

    /// Options for a server with authentication or JetStream.
    pub fn builder() -> NatsBuilder {
        NatsBuilder::default()
    }

    fn spawn(&mut self) {
        let bin = server_binary("nats-server", "NATS_SERVER_BIN", "nats-server");
        let mut cmd = Command::new(bin);
        cmd.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(t) = &self.opts.token {
            cmd.args(["--auth", t]);
        }
        if let Some((u, p)) = &self.opts.user {
            cmd.args(["--user", u, "--pass", p]);
        }
        if self.opts.jetstream {
            cmd.arg("-js").arg("-sd").arg(self.dir.path().join("js"));
        }
        if let Some(m) = self.monitor_port {
            cmd.args(["-m", &m.to_string()]);
        }
        let monitor: Vec<u16> = self.monitor_port.into_iter().collect();
        self.node.spawn(cmd, &monitor);
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The number of subscriptions the server holds, from its monitoring endpoint (`/subsz`);
    /// `None` without [`NatsBuilder::monitor`] or when the endpoint does not answer.
    pub fn subscriptions(&self) -> Option<u64> {
        let port = self.monitor_port?;
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"GET /subsz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        let at = body.find("\"num_subscriptions\":")? + "\"num_subscriptions\":".len();
        let digits: String = body[at..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The monitoring port, when enabled with [`NatsBuilder::monitor`].
    pub fn monitor_port(&self) -> Option<u16> {
        self.monitor_port
    }

    /// `nats://127.0.0.1:PORT` (no credentials).
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Pauses the server (SIGSTOP): connections are still accepted by the kernel, never answered.
    pub fn pause(&self) {
        // A stopped server has nothing to signal.
        if self.node.alive() {
            self.node.signal("STOP");
        }
    }

    /// Resumes a paused server (SIGCONT).
    pub fn resume(&self) {
        // A stopped server has nothing to signal.
        if self.node.alive() {
            self.node.signal("CONT");
        }
    }

    /// The server's process id (0 when stopped).
    pub fn pid(&self) -> u32 {
        self.node.pid()
    }

    /// Kills the server.
    pub fn stop(&mut self) {
        self.node.kill();
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.node.log()
    }
}

/// One command seen by `MONITOR`.
#[derive(Debug, Clone)]
pub struct MonitoredCommand {
    /// The server's clock when it ran the command, in seconds since the epoch.
    pub at: f64,
    /// The client's address (`127.0.0.1:PORT`), or `lua` for commands a script ran.
    pub client: String,
    /// The command and its arguments as MONITOR quotes them (`"HGETALL" "key"`).
    pub line: String,
}

/// Records what a real redis-server executes (`MONITOR`) on a thread of its own, until dropped.
#[derive(Debug)]
pub struct Monitor {
    seen: Arc<Mutex<Vec<MonitoredCommand>>>,
    stream: TcpStream,
}

impl Monitor {
    fn start(addr: SocketAddr) -> Monitor {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(b"MONITOR\r\n").unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut ok = String::new();
        reader.read_line(&mut ok).unwrap();
        assert!(ok.starts_with("+OK"), "MONITOR refused: {ok}");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { return };
                // +1764100000.123456 [0 127.0.0.1:5555] "HGETALL" "key"
                let Some(rest) = line.strip_prefix('+') else {
                    continue;
                };
                let Some((at, rest)) = rest.split_once(' ') else {
                    continue;
                };
                let Some((client, command)) = rest.split_once("] ") else {
                    continue;
                };
                let client = client.rsplit(' ').next().unwrap_or_default().to_string();
                let Ok(at) = at.parse::<f64>() else { continue };
                sink.lock().unwrap().push(MonitoredCommand {
                    at,
                    client,
                    line: command.to_string(),
                });
            }
        });
        Monitor { seen, stream }
    }

    /// Every command seen so far.
    pub fn commands(&self) -> Vec<MonitoredCommand> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}
