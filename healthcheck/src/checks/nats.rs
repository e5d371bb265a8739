//! `nats://` and `tls://`: the full client handshake, INFO, CONNECT, PING and PONG.
//!
//! The official NATS image is FROM scratch, so this is often the only way to probe it. With
//! `jetstream=true` the JetStream API must also answer an account-info request.
//!
//! The handshake is spoken here over a bounded reader rather than through async-nats: its parser
//! buffers a protocol line until a CRLF arrives, so a peer streaming an INFO line without end
//! grows the probe's memory without bound, and its own connect timeout (5 s) ended checks given
//! a longer deadline. Lines are at most [`LINE_LIMIT`] bytes, payloads at most [`PAYLOAD_LIMIT`].

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use url::Url;

use crate::failure::{Failure, FailureKind, Phase};
use crate::net::{self, TlsOptions};
use crate::options::{Options, host_port, percent_decode, read_named_file};
use crate::progress::Progress;
use crate::secret::{self, Secret};
use crate::text::truncate;

/// How long a JetStream API request may go unanswered: a healthy meta leader answers in
/// milliseconds, and none answers at all during an election.
const JETSTREAM_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// The longest protocol line read (INFO lists cluster URLs; a few KiB in practice).
const LINE_LIMIT: usize = 64 * 1024;
/// The largest message payload read (the JetStream account info is well under 1 KiB).
const PAYLOAD_LIMIT: usize = 64 * 1024;

/// The most a monitoring endpoint's answer may be (`/routez` of a large cluster is tens of KiB).
const MONITOR_LIMIT: usize = 256 * 1024;

/// A validated `nats://` or `tls://` target.
#[derive(Debug, Clone)]
pub(crate) struct NatsTarget {
    host: String,
    port: u16,
    /// Every host of a seed list (`nats://a,b,c`), the first one included; empty for one host.
    seeds: Vec<(String, u16)>,
    auth: Auth,
    jetstream: bool,
    tls: Option<TlsOptions>,
    /// `cluster=N`: at least N servers in the cluster (this one and N-1 routed peers).
    cluster: Option<usize>,
    /// `monitor=http://host:8222`: the monitoring endpoint asked for routes and the meta leader.
    monitor: Option<(String, u16)>,
}

/// How to authenticate; the nkey seed and creds are secrets like passwords.
#[derive(Debug, Clone)]
enum Auth {
    None,
    UserPassword(String, Secret),
    Token(Secret),
    NkeySeed(Secret),
    /// The creds file's contents (a JWT and a seed), read when the target is parsed.
    Creds(Secret),
}

impl NatsTarget {
    pub(crate) fn from_url(
        url: &Url,
        opts: &mut Options,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<NatsTarget, Failure> {
        let (host, port) = host_port(url, 4222)?;
        if !matches!(url.path(), "" | "/") {
            return Err(Failure::config("nats targets take no path"));
        }

        let user = percent_decode(url.username());
        let url_password = url.password().map(|p| Secret::new(percent_decode(p)));
        let password_file = opts.take_secret_file("password_file")?;
        let token_file = opts.take_secret_file("token_file")?;
        let nkey_file = opts.take_secret_file("nkey_file")?;
        let creds_file = match opts.take_path("creds_file")? {
            Some(path) => Some(read_creds(&path)?),
            None => None,
        };

        if url_password.is_some() && password_file.is_some() {
            return Err(Failure::config(
                "password given both in the URL and as password_file",
            ));
        }
        let mut given = Vec::new();
        match (user.is_empty(), url_password.or(password_file)) {
            (false, Some(password)) => given.push(Auth::UserPassword(user, password)),
            // `nats://TOKEN@host`, the nats CLI's convention.
            (false, None) => given.push(Auth::Token(Secret::new(user))),
            (true, Some(password)) => {
                let user = env("NATS_USER").filter(|u| !u.is_empty());
                let user = user.ok_or_else(|| {
                    Failure::config("password_file needs a user: nats://USER@host or NATS_USER")
                })?;
                given.push(Auth::UserPassword(user, password));
            }
            (true, None) => {}
        }
        given.extend(token_file.map(Auth::Token));
        given.extend(nkey_file.map(Auth::NkeySeed));
        given.extend(creds_file.map(Auth::Creds));
        if given.len() > 1 {
            return Err(Failure::config(
                "give one of user:password, token, nkey_file or creds_file",
            ));
        }
        let auth = match given.pop() {
            Some(a) => a,
            None => auth_from_env(env)?,
        };

        let jetstream = opts.take_bool("jetstream")?;
        let cluster = match opts.take("cluster")? {
            None => None,
            Some(n) => match n.parse::<usize>() {
                Ok(n) if (1..=1024).contains(&n) => Some(n),
                _ => {
                    return Err(Failure::config(format!(
                        "option `cluster` must be the number of servers (1 to 1024), not `{}`",
                        truncate(&n, 20)
                    )));
                }
            },
        };
        let monitor = match opts.take("monitor")? {
            None => None,
            Some(m) => {
                let bad = || {
                    Failure::config(
                        "option `monitor` must be http://host:port (the monitoring port)",
                    )
                };
                let u = Url::parse(&m).map_err(|_| bad())?;
                if u.scheme() != "http" || !u.username().is_empty() || u.password().is_some() {
                    return Err(bad());
                }
                Some(host_port(&u, 8222).map_err(|_| bad())?)
            }
        };
        let tls_opts = TlsOptions {
            ca_file: opts.take_path("ca_file")?,
            server_name: None,
            insecure: opts.take_bool("insecure")?,
        };
        let tls = if url.scheme() == "tls" {
            Some(tls_opts)
        } else if tls_opts.ca_file.is_some() || tls_opts.insecure {
            return Err(Failure::config("tls options need the tls:// scheme"));
        } else {
            None
        };
        // A seed or creds file that cannot sign is a configuration error, found before connecting.
        match &auth {
            Auth::NkeySeed(seed) => {
                nkeys::KeyPair::from_seed(seed.expose().trim())
                    .map_err(|_| Failure::config("nkey_file: not an nkey seed"))?;
            }
            Auth::Creds(creds) => {
                parse_creds(creds.expose())?;
            }
            _ => {}
        }
        Ok(NatsTarget {
            host,
            port,
            seeds: Vec::new(),
            auth,
            jetstream,
            tls,
            cluster,
            monitor,
        })
    }
}

/// Credentials from the environment, for targets whose URL carries none.
fn auth_from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Auth, Failure> {
    if let Some(token) = secret::from_env("NATS_TOKEN", env)? {
        return Ok(Auth::Token(token));
    }
    if let Some(password) = secret::from_env("NATS_PASSWORD", env)? {
        let user = env("NATS_USER")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Failure::config("NATS_PASSWORD is set but NATS_USER is not"))?;
        return Ok(Auth::UserPassword(user, password));
    }
    if let Some(seed) = secret::from_env("NATS_NKEY", env)? {
        return Ok(Auth::NkeySeed(seed));
    }
    if let Some(path) = env("NATS_CREDS_FILE").filter(|p| !p.is_empty()) {
        return Ok(Auth::Creds(read_creds(&PathBuf::from(path))?));
    }
    Ok(Auth::None)
}

/// A creds file, bounded and never blocking like every secret file.
fn read_creds(path: &std::path::Path) -> Result<Secret, Failure> {
    let bytes = read_named_file("creds_file", path, ready_signal::files::SECRET_LIMIT)?;
    String::from_utf8(bytes)
        .map(Secret::new)
        .map_err(|_| Failure::config(format!("creds_file {}: not a creds file", path.display())))
}

impl NatsTarget {
    /// The hosts of a seed list (`nats://a,b,c`), tried concurrently: the first server to
    /// complete the handshake answers for the target.
    pub(crate) fn with_seeds(mut self, seeds: Vec<(String, u16)>) -> NatsTarget {
        if seeds.len() > 1 {
            self.seeds = seeds;
        }
        self
    }

    /// The secrets this target holds, for scrubbing what a server says back.
    pub(crate) fn secrets(&self, out: &mut Vec<String>) {
        match &self.auth {
            Auth::None => {}
            Auth::UserPassword(_, s) | Auth::Token(s) | Auth::NkeySeed(s) => {
                out.push(s.expose().trim().to_string())
            }
            Auth::Creds(s) => out.extend(
                s.expose()
                    .lines()
                    .map(str::trim)
                    .filter(|l| l.len() >= 16 && !l.starts_with("---") && !l.starts_with('*'))
                    .map(str::to_string),
            ),
        }
    }
}

pub(crate) async fn check(t: &NatsTarget, progress: &Progress) -> Result<Option<String>, Failure> {
    let (mut detail, info) = if t.seeds.is_empty() {
        handshake(t, &t.host, t.port, progress).await?
    } else {
        let (name, detail, info) = any_seed(t, progress).await?;
        // What follows (the server count) is that server's word.
        progress.step(Phase::Protocol, "counting servers as seen by");
        progress.talking_to(name);
        (detail, info)
    };
    if let Some(want) = t.cluster {
        let servers = match &t.monitor {
            Some((host, port)) => {
                progress.step(Phase::Read, "reading /routez from");
                let routez = monitor_get(host, *port, "/routez", progress).await?;
                let mut peers: Vec<&str> = routez
                    .get("routes")
                    .and_then(|r| r.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.get("remote_id").and_then(|i| i.as_str()))
                    .collect();
                peers.sort_unstable();
                peers.dedup();
                peers.len() + 1
            }
            None => {
                let mut urls: Vec<&str> = info
                    .get("connect_urls")
                    .and_then(|u| u.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|u| u.as_str())
                    .collect();
                urls.sort_unstable();
                urls.dedup();
                // A server alone advertises nothing; in a cluster it lists itself too.
                urls.len().max(1)
            }
        };
        let how = if t.monitor.is_some() {
            "routes in /routez"
        } else {
            "connect_urls in INFO"
        };
        if servers < want {
            return Err(progress.fail(
                FailureKind::Unhealthy,
                format!("cluster of {servers} servers, want {want} ({how})"),
            ));
        }
        push_detail(&mut detail, format!("cluster of {servers} servers"));
    }
    if t.jetstream
        && let Some((host, port)) = &t.monitor
    {
        progress.step(Phase::Read, "reading /jsz from");
        let jsz = monitor_get(host, *port, "/jsz", progress).await?;
        if jsz.get("disabled").and_then(|d| d.as_bool()) == Some(true) {
            return Err(progress.fail(FailureKind::Unhealthy, "jetstream disabled (/jsz)"));
        }
        if let Some(meta) = jsz.get("meta_cluster") {
            match meta.get("leader").and_then(|l| l.as_str()) {
                Some(leader) if !leader.is_empty() => {
                    push_detail(&mut detail, format!("meta leader {}", truncate(leader, 60)))
                }
                _ => {
                    return Err(progress.fail(
                        FailureKind::Unhealthy,
                        "jetstream meta leader unknown (/jsz meta_cluster has no leader)",
                    ));
                }
            }
        }
    }
    Ok(detail)
}

fn push_detail(detail: &mut Option<String>, more: String) {
    *detail = Some(match detail.take() {
        Some(d) => format!("{d}, {more}"),
        None => more,
    });
}

/// Every seed at once: the first to complete the handshake answers; when none does, every
/// seed's reason.
async fn any_seed(
    t: &NatsTarget,
    progress: &Progress,
) -> Result<(String, Option<String>, serde_json::Value), Failure> {
    let listed: Vec<String> = t.seeds.iter().map(|(h, p)| seed_name(h, *p)).collect();
    progress.step(Phase::Connect, "waiting for a handshake with any of");
    progress.talking_to(listed.join(","));
    let own: Vec<Progress> = t.seeds.iter().map(|_| Progress::new()).collect();
    let mut trying: futures_util::stream::FuturesUnordered<_> = t
        .seeds
        .iter()
        .zip(&listed)
        .zip(&own)
        .enumerate()
        .map(|(i, (((host, port), name), own))| async move {
            (i, name, handshake(t, host, *port, own).await)
        })
        .collect();
    let mut done = vec![false; own.len()];
    let mut failures = Vec::new();
    // Should the deadline end the wait, the seed that got furthest (past connecting) speaks for
    // the target: its phase and address are copied to the target's progress as they move.
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    loop {
        tokio::select! {
            next = futures_util::StreamExt::next(&mut trying) => match next {
                Some((_, name, Ok((detail, info)))) => {
                    let mut via = Some(format!("via {name}"));
                    if let Some(d) = detail {
                        push_detail(&mut via, d);
                    }
                    return Ok((name.clone(), via, info));
                }
                Some((i, _, Err(f))) => {
                    done[i] = true;
                    failures.push(f);
                }
                None => break,
            },
            _ = tick.tick() => {
                let furthest = own
                    .iter()
                    .zip(&done)
                    .filter(|(p, d)| !**d && rank(p.phase()) > rank(Phase::Connect))
                    .max_by_key(|(p, _)| rank(p.phase()));
                if let Some((p, _)) = furthest {
                    progress.set(p.phase());
                    if let Some(a) = p.address() {
                        progress.talking_to(a);
                    }
                }
            }
        }
    }
    let kind = match failures.first() {
        Some(f) if failures.iter().all(|g| g.kind() == f.kind()) => f.kind(),
        _ => FailureKind::Unhealthy,
    };
    let each: Vec<String> = failures.iter().map(ToString::to_string).collect();
    Err(Failure::new(
        kind,
        truncate(&format!("no seed answered: {}", each.join("; ")), 900),
    ))
}

/// How far along a check a phase is.
fn rank(phase: Phase) -> u8 {
    match phase {
        Phase::Resolve => 0,
        Phase::Connect => 1,
        Phase::Tls => 2,
        Phase::Auth => 3,
        Phase::Protocol => 4,
        Phase::Read => 5,
    }
}

fn seed_name(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A bounded HTTP/1.0 GET of a monitoring endpoint's JSON.
async fn monitor_get(
    host: &str,
    port: u16,
    path: &str,
    progress: &Progress,
) -> Result<serde_json::Value, Failure> {
    let mut tcp = net::connect(host, port, progress).await?;
    progress.set(Phase::Read);
    let io_fail =
        |e: std::io::Error| progress.fail(FailureKind::Io, ready_signal::files::io_reason(&e));
    tcp.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .map_err(io_fail)?;
    let mut raw = Vec::new();
    (&mut tcp)
        .take(MONITOR_LIMIT as u64 + 1)
        .read_to_end(&mut raw)
        .await
        .map_err(io_fail)?;
    if raw.len() > MONITOR_LIMIT {
        return Err(progress.fail(
            FailureKind::Protocol,
            format!("{path}: answer over the {} KiB bound", MONITOR_LIMIT / 1024),
        ));
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("none");
    if status != "200" {
        return Err(progress.fail(
            FailureKind::Unhealthy,
            format!("{path}: status {}", truncate(status, 10)),
        ));
    }
    serde_json::from_str(body)
        .map_err(|_| progress.fail(FailureKind::Protocol, format!("{path}: not JSON")))
}

/// The handshake with one server: its detail and its INFO.
async fn handshake(
    t: &NatsTarget,
    host: &str,
    port: u16,
    progress: &Progress,
) -> Result<(Option<String>, serde_json::Value), Failure> {
    let tcp = net::connect(host, port, progress).await?;
    let mut plain = Conn::new(tcp);
    progress.step(Phase::Protocol, "waiting for INFO from");
    let info = plain.read_info(progress).await?;
    let server_wants_tls = info.get("tls_required").and_then(|v| v.as_bool()) == Some(true);
    let detail = match &t.tls {
        Some(tls) => {
            let stream = net::tls(plain.into_inner()?, host, tls, progress).await?;
            converse(t, Conn::new(stream), &info, true, progress).await?
        }
        None if server_wants_tls => {
            return Err(progress.fail(FailureKind::Config, "the server requires TLS: use tls://"));
        }
        None => converse(t, plain, &info, false, progress).await?,
    };
    Ok((detail, info))
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    t: &NatsTarget,
    mut conn: Conn<S>,
    info: &serde_json::Value,
    tls: bool,
    progress: &Progress,
) -> Result<Option<String>, Failure> {
    let nonce = info
        .get("nonce")
        .and_then(|n| n.as_str())
        .unwrap_or_default();
    let mut connect = serde_json::json!({
        "verbose": false,
        "pedantic": false,
        "tls_required": tls,
        "name": "healthcheck",
        "lang": "rust",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": 1,
        "echo": false,
        "headers": true,
        "no_responders": true,
    });
    let sign = |seed: &str| -> Result<(String, String), Failure> {
        let key = nkeys::KeyPair::from_seed(seed.trim())
            .map_err(|_| Failure::config("not an nkey seed"))?;
        let sig = key
            .sign(nonce.as_bytes())
            .map_err(|_| Failure::config("cannot sign the server's nonce with the nkey"))?;
        Ok((key.public_key(), URL_SAFE_NO_PAD.encode(sig)))
    };
    match &t.auth {
        Auth::None => {}
        Auth::UserPassword(user, password) => {
            connect["user"] = user.as_str().into();
            connect["pass"] = password.expose().into();
        }
        Auth::Token(token) => connect["auth_token"] = token.expose().into(),
        Auth::NkeySeed(seed) => {
            let (public, sig) = sign(seed.expose())?;
            connect["nkey"] = public.into();
            connect["sig"] = sig.into();
        }
        Auth::Creds(creds) => {
            let (jwt, seed) = parse_creds(creds.expose())?;
            let (_, sig) = sign(seed)?;
            connect["jwt"] = jwt.into();
            connect["sig"] = sig.into();
        }
    }
    progress.step(Phase::Auth, "waiting for PONG (after CONNECT) from");
    conn.send(
        format!("CONNECT {connect}\r\nPING\r\n").as_bytes(),
        progress,
    )
    .await?;
    loop {
        match conn.read_op(progress).await? {
            Op::Pong => break,
            Op::Ping => conn.send(b"PONG\r\n", progress).await?,
            Op::Other => {}
            Op::Msg { .. } => {}
        }
    }
    // With a monitoring URL, JetStream is judged by /jsz (the meta leader) instead.
    if !t.jetstream || t.monitor.is_some() {
        return Ok(None);
    }

    // A raw `$JS.API.INFO` request rather than a typed account query: the typed response tracks
    // the newest server and fails to decode older servers' answers.
    progress.step(Phase::Read, "waiting for jetstream account info from");
    let inbox = format!("_INBOX.healthcheck.{}", std::process::id());
    conn.send(
        format!("SUB {inbox} 1\r\nPUB $JS.API.INFO {inbox} 0\r\n\r\n").as_bytes(),
        progress,
    )
    .await?;
    // Without a meta leader (an election after a node's loss) the request gets no answer at all:
    // a bounded wait says so, instead of running into the deadline as a bare "timed out".
    let answer = tokio::time::timeout(JETSTREAM_ANSWER_WAIT, async {
        loop {
            match conn.read_op(progress).await? {
                Op::Msg { status, payload } => return Ok((status, payload)),
                Op::Ping => conn.send(b"PONG\r\n", progress).await?,
                Op::Pong | Op::Other => {}
            }
        }
    })
    .await;
    let unhealthy = |m: String| progress.fail(FailureKind::Unhealthy, m);
    let (status, payload) = match answer {
        Ok(answer) => answer?,
        Err(_) => {
            return Err(unhealthy(format!(
                "jetstream: no answer to $JS.API.INFO within {} (no meta leader: an election?)",
                crate::format_duration(JETSTREAM_ANSWER_WAIT)
            )));
        }
    };
    match status {
        Some(503) => {
            return Err(unhealthy(
                "jetstream: no responders (is JetStream enabled?)".into(),
            ));
        }
        Some(code) if code >= 400 => return Err(unhealthy(format!("jetstream: status {code}"))),
        _ => {}
    }
    let info: serde_json::Value = serde_json::from_slice(&payload)
        .map_err(|_| progress.fail(FailureKind::Protocol, "jetstream: account info is not JSON"))?;
    if let Some(error) = info.get("error") {
        let text = error
            .get("description")
            .and_then(|d| d.as_str())
            .unwrap_or("error");
        return Err(unhealthy(format!("jetstream: {}", truncate(text, 200))));
    }
    let streams = info.get("streams").and_then(|s| s.as_u64()).unwrap_or(0);
    Ok(Some(format!("jetstream {streams} streams")))
}

/// The JWT and the seed of a creds file (the first two non-delimiter lines).
fn parse_creds(creds: &str) -> Result<(&str, &str), Failure> {
    let mut blocks = creds
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("---") && !l.starts_with('*'))
        .filter(|l| !l.contains(' '));
    match (blocks.next(), blocks.next()) {
        (Some(jwt), Some(seed)) => Ok((jwt, seed)),
        _ => Err(Failure::config(
            "creds_file: not a creds file (a JWT and a seed)",
        )),
    }
}

/// A server operation, as far as the probe needs it.
#[derive(Debug)]
enum Op {
    Ping,
    Pong,
    /// A message; `status` from its headers (`NATS/1.0 503`), when it has any.
    Msg {
        status: Option<u16>,
        payload: Vec<u8>,
    },
    /// `+OK`, a later INFO: nothing to act on.
    Other,
}

/// A NATS connection whose every read is bounded.
struct Conn<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(stream: S) -> Conn<S> {
        Conn {
            io: BufReader::with_capacity(1024, stream),
        }
    }

    /// The stream, for the TLS upgrade; bytes already buffered would be lost, so there must be none.
    fn into_inner(self) -> Result<S, Failure> {
        if !self.io.buffer().is_empty() {
            return Err(Failure::new(
                FailureKind::Protocol,
                "data after INFO before the TLS handshake: not NATS?",
            ));
        }
        Ok(self.io.into_inner())
    }

    async fn send(&mut self, bytes: &[u8], progress: &Progress) -> Result<(), Failure> {
        let io_fail =
            |e: std::io::Error| progress.fail(FailureKind::Io, ready_signal::files::io_reason(&e));
        self.io.get_mut().write_all(bytes).await.map_err(io_fail)?;
        self.io.get_mut().flush().await.map_err(io_fail)
    }

    /// One line without its CRLF, at most [`LINE_LIMIT`] bytes.
    async fn read_line(&mut self, progress: &Progress) -> Result<String, Failure> {
        let mut line = Vec::new();
        (&mut self.io)
            .take(LINE_LIMIT as u64 + 2)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| progress.fail(FailureKind::Io, ready_signal::files::io_reason(&e)))?;
        if line.is_empty() {
            return Err(progress.fail(FailureKind::Io, "connection closed by peer"));
        }
        if !line.ends_with(b"\n") {
            return Err(progress.fail(
                FailureKind::Protocol,
                if line.len() > LINE_LIMIT {
                    format!(
                        "protocol line longer than {} KiB: `{}`",
                        LINE_LIMIT / 1024,
                        truncate(&String::from_utf8_lossy(&line[..200]), 200)
                    )
                } else {
                    "line cut short: connection closed by peer".into()
                },
            ));
        }
        let text = String::from_utf8_lossy(&line);
        Ok(text.trim_end_matches(['\r', '\n']).to_string())
    }

    /// The server's first line, which must be INFO with a JSON object.
    async fn read_info(&mut self, progress: &Progress) -> Result<serde_json::Value, Failure> {
        let line = self.read_line(progress).await?;
        let Some(json) = strip_op(&line, "INFO") else {
            return Err(progress.fail(
                FailureKind::Protocol,
                format!(
                    "the server's first line is `{}`, not INFO: not NATS?",
                    truncate(&line, 60)
                ),
            ));
        };
        serde_json::from_str(json)
            .map_err(|_| progress.fail(FailureKind::Protocol, "INFO is not JSON: not NATS?"))
    }

    async fn read_op(&mut self, progress: &Progress) -> Result<Op, Failure> {
        let line = self.read_line(progress).await?;
        let upper = line.to_ascii_uppercase();
        if upper == "PING" {
            return Ok(Op::Ping);
        }
        if upper == "PONG" {
            return Ok(Op::Pong);
        }
        if upper == "+OK" || strip_op(&line, "INFO").is_some() {
            return Ok(Op::Other);
        }
        if let Some(err) = strip_op(&line, "-ERR") {
            let text = err.trim().trim_matches('\'').to_string();
            // The protocol's only signal of a refused login is the -ERR text (nats-server's
            // fixed strings), so it is read here as the protocol, not as our own messages.
            let lower = text.to_ascii_lowercase();
            let kind = if lower.starts_with("authorization violation")
                || lower.contains("authentication")
                || lower.starts_with("permissions violation")
            {
                FailureKind::Auth
            } else {
                FailureKind::Unhealthy
            };
            return Err(progress.fail(kind, format!("-ERR '{}'", truncate(&text, 300))));
        }
        let (headers, args) = if let Some(a) = strip_op(&line, "HMSG") {
            (true, a)
        } else if let Some(a) = strip_op(&line, "MSG") {
            (false, a)
        } else {
            return Err(progress.fail(
                FailureKind::Protocol,
                format!("unexpected `{}`: not NATS?", truncate(&line, 60)),
            ));
        };
        // MSG subject sid [reply] size / HMSG subject sid [reply] header-size total-size
        let fields: Vec<&str> = args.split_whitespace().collect();
        let bad = || progress.fail(FailureKind::Protocol, "malformed MSG line: not NATS?");
        let total: usize = fields.last().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
        let header_len: usize = if headers {
            fields
                .len()
                .checked_sub(2)
                .and_then(|i| fields[i].parse().ok())
                .ok_or_else(bad)?
        } else {
            0
        };
        if total > PAYLOAD_LIMIT || header_len > total {
            return Err(progress.fail(
                FailureKind::Protocol,
                format!(
                    "message of {total} bytes is over the {} KiB bound",
                    PAYLOAD_LIMIT / 1024
                ),
            ));
        }
        let mut data = vec![0; total + 2];
        self.io
            .read_exact(&mut data)
            .await
            .map_err(|e| progress.fail(FailureKind::Io, ready_signal::files::io_reason(&e)))?;
        data.truncate(total);
        let status = headers
            .then(|| {
                let head = String::from_utf8_lossy(&data[..header_len]);
                head.lines()
                    .next()
                    .and_then(|l| l.strip_prefix("NATS/1.0"))
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|c| c.parse().ok())
            })
            .flatten();
        let payload = data.split_off(header_len);
        Ok(Op::Msg { status, payload })
    }
}

/// `line` without the operation name `op` (case-insensitive) and the space after it.
fn strip_op<'a>(line: &'a str, op: &str) -> Option<&'a str> {
    let head = line.get(..op.len())?;
    if !head.eq_ignore_ascii_case(op) {
        return None;
    }
    let rest = &line[op.len()..];
    if rest.is_empty() {
        Some(rest)
    } else if rest.starts_with([' ', '\t']) {
        Some(rest.trim_start())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A creds file yields its JWT and seed; anything else is a config error.
    #[test]
    fn creds_file_parses_jwt_and_seed() {
        let creds = "-----BEGIN NATS USER JWT-----\neyJ0eXAi.x.y\n------END NATS USER JWT------\n\n\
            ************************* IMPORTANT *************************\nNKEY Seed printed below.\n\n\
            -----BEGIN USER NKEY SEED-----\nSUAIO3FHUX\n------END USER NKEY SEED------\n";
        assert_eq!(parse_creds(creds).unwrap(), ("eyJ0eXAi.x.y", "SUAIO3FHUX"));
        assert!(parse_creds("hello").unwrap_err().is_config());
    }

    /// Operation names compare case-insensitively and need a separator.
    #[test]
    fn strip_op_needs_a_separator() {
        assert_eq!(strip_op("info {}", "INFO"), Some("{}"));
        assert_eq!(strip_op("INFOX", "INFO"), None);
        assert_eq!(strip_op("-ERR 'x'", "-ERR"), Some("'x'"));
    }

    /// Login with an nkey against a real nats-server configured for it.
    #[test]
    fn nkey_login_against_real_server() {
        let user = nkeys::KeyPair::new_user();
        let seed = user.seed().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let port = harness::free_port();
        let conf = dir.path().join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "port: {port}\nauthorization {{ users = [ {{ nkey: {} }} ] }}\n",
                user.public_key()
            ),
        )
        .unwrap();
        let mut server = std::process::Command::new(
            std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into()),
        )
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
        let seed_file = dir.path().join("seed");
        std::fs::write(&seed_file, &seed).unwrap();
        let wrong = dir.path().join("wrong");
        std::fs::write(&wrong, nkeys::KeyPair::new_user().seed().unwrap()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let run = |file: &std::path::Path| {
            let t = crate::Target::parse_with(
                &format!("nats://127.0.0.1:{port}?nkey_file={}", file.display()),
                &|_| None,
            )
            .unwrap();
            rt.block_on(async {
                // The server may still be starting: retry until it answers or 5 s pass.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                loop {
                    let r =
                        crate::probe(std::slice::from_ref(&t), std::time::Duration::from_secs(1))
                            .await;
                    let refused = r.outcomes[0]
                        .failure()
                        .is_some_and(|f| f.kind() == FailureKind::Refused);
                    if !refused || std::time::Instant::now() > deadline {
                        return r;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            })
        };
        let ok = run(&seed_file);
        let bad = run(&wrong);
        let _ = server.kill();
        let _ = server.wait();
        assert!(ok.healthy(), "{ok}");
        let f = bad.outcomes[0].failure().unwrap();
        assert!(f.is_auth(), "{bad}");
        assert!(!bad.to_string().contains(&seed), "{bad}");
    }
}
