//! `redis://` and `rediss://`: AUTH, then `PING` must answer `PONG`.
//!
//! `redis-cli ping` exits 0 on NOAUTH and LOADING; here every error reply is unhealthy and the
//! server's own words are the reason. The TCP (and TLS) stream is ours, so every resolved address
//! is tried and the CA file and server name are under the target's control.
//!
//! The four commands the probe sends (AUTH, SELECT, PING, INFO) are spoken here over a bounded
//! reader rather than through redis-rs: redis-rs's parser buffers a reply of whatever length the
//! peer announces, so a peer streaming an endless bulk reply drove the probe past 1 GB. Here a
//! line is at most [`LINE_LIMIT`] bytes and a bulk reply at most [`BULK_LIMIT`].

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use url::Url;

use crate::failure::{Failure, FailureKind, Phase};
use crate::net::{self, TlsOptions};
use crate::options::{Options, host_port, percent_decode};
use crate::progress::Progress;
use crate::secret::{self, Secret};
use crate::text::truncate;

/// The longest status or error line read from a peer.
const LINE_LIMIT: usize = 4096;
/// The largest bulk reply (INFO replication is well under 1 KiB).
const BULK_LIMIT: usize = 64 * 1024;

/// A validated `redis://` or `rediss://` target.
#[derive(Debug, Clone)]
pub(crate) struct RedisTarget {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<Secret>,
    db: i64,
    role: Option<Role>,
    tls: Option<TlsOptions>,
}

/// The replication role a target may require.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Master,
    Replica,
}

impl RedisTarget {
    pub(crate) fn from_url(
        url: &Url,
        opts: &mut Options,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RedisTarget, Failure> {
        let (host, port) = host_port(url, 6379)?;
        let (username, password) = credentials(url, opts, env)?;
        let path_db = url.path().trim_start_matches('/');
        let db = match (path_db, opts.take("db")?) {
            ("", None) => 0,
            (p, None) => p
                .parse()
                .map_err(|_| Failure::config("the database in the path is not a number"))?,
            ("", Some(d)) => d.parse().map_err(|_| {
                Failure::config(format!(
                    "option `db` must be a number, not `{}`",
                    truncate(&d, 20)
                ))
            })?,
            (_, Some(_)) => {
                return Err(Failure::config(
                    "database given both in the path and as option `db`",
                ));
            }
        };
        let role = match opts.take("role")?.as_deref() {
            None => None,
            Some("master") | Some("primary") => Some(Role::Master),
            Some("replica") | Some("slave") => Some(Role::Replica),
            Some(_) => {
                return Err(Failure::config("option `role` must be master or replica"));
            }
        };
        let tls_opts = TlsOptions {
            ca_file: opts.take_path("ca_file")?,
            server_name: opts.take("server_name")?,
            insecure: opts.take_bool("insecure")?,
        };
        let tls = if url.scheme() == "rediss" {
            Some(tls_opts)
        } else if tls_opts.ca_file.is_some() || tls_opts.server_name.is_some() || tls_opts.insecure
        {
            return Err(Failure::config("tls options need the rediss:// scheme"));
        } else {
            None
        };
        Ok(RedisTarget {
            host,
            port,
            username,
            password,
            db,
            role,
            tls,
        })
    }
}

/// A Redis connection after TLS and AUTH, whatever the transport.
pub(crate) type Session = Conn<Box<dyn Stream>>;

/// A plain or TLS stream.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin {}
impl<S: AsyncRead + AsyncWrite + Unpin> Stream for S {}

impl RedisTarget {
    /// The same credentials and TLS options, for another node of the same deployment (a Redis
    /// Cluster's other masters).
    pub(crate) fn at(&self, host: &str, port: u16) -> RedisTarget {
        RedisTarget {
            host: host.to_string(),
            port,
            ..self.clone()
        }
    }

    /// The role the target requires: Some(true) for master, Some(false) for replica.
    pub(crate) fn wants_master(&self) -> Option<bool> {
        self.role.map(|r| r == Role::Master)
    }

    /// Connects (TLS when `rediss://`) and authenticates: for checks that say more than PING.
    pub(crate) async fn open(&self, progress: &Progress) -> Result<Session, Failure> {
        let tcp = net::connect(&self.host, self.port, progress).await?;
        let stream: Box<dyn Stream> = match &self.tls {
            Some(tls) => Box::new(net::tls(tcp, &self.host, tls, progress).await?),
            None => Box::new(tcp),
        };
        let mut conn = Conn::new(stream);
        if let Some(password) = &self.password {
            progress.set(Phase::Auth);
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &self.username {
                args.push(user.as_bytes());
            }
            args.push(password.expose().as_bytes());
            conn.call(&args, progress).await?.ok(progress)?;
        }
        Ok(conn)
    }

    /// The secrets this target holds, for scrubbing what a server says back.
    pub(crate) fn secrets(&self, out: &mut Vec<String>) {
        out.extend(self.password.iter().map(|p| p.expose().to_string()));
        // The ACL user (from the URL or REDIS_USERNAME) is a credential too.
        out.extend(self.username.iter().cloned());
    }
}

pub(crate) async fn check(t: &RedisTarget, progress: &Progress) -> Result<Option<String>, Failure> {
    let tcp = net::connect(&t.host, t.port, progress).await?;
    match &t.tls {
        Some(tls) => {
            let stream = net::tls(tcp, &t.host, tls, progress).await?;
            converse(t, Conn::new(stream), progress).await
        }
        None => converse(t, Conn::new(tcp), progress).await,
    }
}

/// The user and password of a Redis (or Sentinel-named master) URL: the userinfo, then
/// `password_file=`, then `REDIS_USERNAME` and `REDIS_PASSWORD(_FILE)` from the environment, the
/// fallback for images that bake a bare target. The URL wins.
pub(crate) fn credentials(
    url: &Url,
    opts: &mut Options,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Option<String>, Option<Secret>), Failure> {
    let username = Some(percent_decode(url.username())).filter(|u| !u.is_empty());
    let mut password = url.password().map(|p| Secret::new(percent_decode(p)));
    if let Some(p) = opts.take_secret_file("password_file")? {
        if password.is_some() {
            return Err(Failure::config(
                "password given both in the URL and as password_file",
            ));
        }
        password = Some(p);
    }
    if password.is_none() {
        password = secret::from_env("REDIS_PASSWORD", env)?;
    }
    let username = username.or_else(|| env("REDIS_USERNAME").filter(|u| !u.is_empty()));
    Ok((username, password))
}

/// PING, answered by PONG: anything else is a protocol failure.
pub(crate) async fn ping<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    progress: &Progress,
) -> Result<(), Failure> {
    progress.step(Phase::Protocol, "waiting for PONG from");
    let pong = conn.call(&[b"PING"], progress).await?.text(progress)?;
    if pong != "PONG" {
        return Err(progress.fail(
            FailureKind::Protocol,
            format!("PING answered `{}`, not PONG", truncate(&pong, 80)),
        ));
    }
    Ok(())
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    t: &RedisTarget,
    mut conn: Conn<S>,
    progress: &Progress,
) -> Result<Option<String>, Failure> {
    if let Some(password) = &t.password {
        progress.set(Phase::Auth);
        let mut args: Vec<&[u8]> = vec![b"AUTH"];
        if let Some(user) = &t.username {
            args.push(user.as_bytes());
        }
        args.push(password.expose().as_bytes());
        conn.call(&args, progress).await?.ok(progress)?;
    }
    if t.db != 0 {
        progress.set(Phase::Protocol);
        let db = t.db.to_string();
        conn.call(&[b"SELECT", db.as_bytes()], progress)
            .await?
            .ok(progress)?;
    }

    ping(&mut conn, progress).await?;
    let Some(want) = t.role else { return Ok(None) };

    progress.step(Phase::Read, "reading INFO replication from");
    let info = conn
        .call(&[b"INFO", b"replication"], progress)
        .await?
        .text(progress)?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .map(str::trim)
    };
    let role = field("role").unwrap_or("unknown");
    let unhealthy = |m: String| progress.fail(FailureKind::Unhealthy, m);
    match (want, role) {
        (Role::Master, "master") => Ok(Some("role master".into())),
        (Role::Replica, "slave") => match field("master_link_status") {
            Some("up") => Ok(Some("role replica, link up".into())),
            status => Err(unhealthy(format!(
                "replica with master_link_status {}",
                truncate(status.unwrap_or("unknown"), 40)
            ))),
        },
        (Role::Master, _) => Err(unhealthy(format!(
            "role is {}, want master",
            truncate(display_role(role), 40)
        ))),
        (Role::Replica, _) => Err(unhealthy(format!(
            "role is {}, want replica",
            truncate(display_role(role), 40)
        ))),
    }
}

fn display_role(role: &str) -> &str {
    if role == "slave" { "replica" } else { role }
}

/// The most elements an array reply may have (`SENTINEL get-master-addr-by-name` has 2, `ROLE`
/// a few per replica): a peer announcing more is not the Redis the probe asked.
const ARRAY_LIMIT: usize = 1024;

/// One RESP2 reply, as far as the probe needs it.
#[derive(Debug)]
pub(crate) enum Reply {
    Simple(String),
    Error(String),
    Bulk(Option<Vec<u8>>),
    Integer,
    /// An array of simple, bulk, integer or error replies (one level: nested arrays are refused).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// `+OK` (or any non-error reply); an error reply is the reason, in the server's words.
    pub(crate) fn ok(self, progress: &Progress) -> Result<(), Failure> {
        self.text(progress).map(drop)
    }

    /// The reply as text; an error reply is the reason.
    pub(crate) fn text(self, progress: &Progress) -> Result<String, Failure> {
        match self {
            Reply::Simple(s) => Ok(s),
            Reply::Bulk(Some(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Reply::Bulk(None) | Reply::Integer | Reply::Array(_) => Ok(String::new()),
            Reply::Error(e) => {
                // NOAUTH and WRONGPASS are the credentials; an error to AUTH itself too.
                let code = e.split_whitespace().next().unwrap_or_default();
                let kind = if progress.phase() == Phase::Auth
                    || matches!(code, "NOAUTH" | "WRONGPASS" | "NOPERM")
                {
                    FailureKind::Auth
                } else {
                    FailureKind::Unhealthy
                };
                Err(progress.fail(kind, truncate(&e, 300)))
            }
        }
    }
}

/// A RESP connection whose every read is bounded.
pub(crate) struct Conn<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub(crate) fn new(stream: S) -> Conn<S> {
        Conn {
            io: BufReader::with_capacity(1024, stream),
        }
    }

    pub(crate) async fn call(
        &mut self,
        args: &[&[u8]],
        progress: &Progress,
    ) -> Result<Reply, Failure> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        let io_fail = |e: std::io::Error| progress.fail(io_kind(&e), io_text(&e));
        self.io.get_mut().write_all(&out).await.map_err(io_fail)?;
        self.io.get_mut().flush().await.map_err(io_fail)?;
        self.read_reply(progress).await
    }

    async fn read_reply(&mut self, progress: &Progress) -> Result<Reply, Failure> {
        self.read_reply_at(progress, true).await
    }

    /// One reply; an array only when `array` (its elements may not be arrays themselves).
    async fn read_reply_at(&mut self, progress: &Progress, array: bool) -> Result<Reply, Failure> {
        let io_fail = |e: std::io::Error| progress.fail(io_kind(&e), io_text(&e));
        let protocol = |m: String| progress.fail(FailureKind::Protocol, m);
        let mut line = Vec::new();
        (&mut self.io)
            .take(LINE_LIMIT as u64 + 2)
            .read_until(b'\n', &mut line)
            .await
            .map_err(io_fail)?;
        if line.is_empty() {
            return Err(progress.fail(FailureKind::Io, "connection closed by peer"));
        }
        if !line.ends_with(b"\r\n") {
            return Err(protocol(if line.len() > LINE_LIMIT {
                format!(
                    "reply line longer than {LINE_LIMIT} bytes: `{}`",
                    truncate(&String::from_utf8_lossy(&line[..200]), 200)
                )
            } else {
                "reply cut short: connection closed by peer".into()
            }));
        }
        let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
        match line[0] {
            b'+' => Ok(Reply::Simple(body)),
            b'-' => Ok(Reply::Error(body)),
            b':' => Ok(Reply::Integer),
            b'$' => {
                let len: i64 = body
                    .parse()
                    .map_err(|_| protocol("bad bulk length: not Redis?".into()))?;
                if len < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let len = len as usize;
                if len > BULK_LIMIT {
                    return Err(protocol(format!(
                        "reply of {len} bytes is over the {} KiB bound",
                        BULK_LIMIT / 1024
                    )));
                }
                let mut data = vec![0; len + 2];
                self.io.read_exact(&mut data).await.map_err(io_fail)?;
                data.truncate(len);
                Ok(Reply::Bulk(Some(data)))
            }
            b'*' if array => {
                let len: i64 = body
                    .parse()
                    .map_err(|_| protocol("bad array length: not Redis?".into()))?;
                if len < 0 {
                    return Ok(Reply::Array(None));
                }
                if len as usize > ARRAY_LIMIT {
                    return Err(protocol(format!(
                        "array of {len} elements is over the {ARRAY_LIMIT} bound"
                    )));
                }
                let mut items = Vec::with_capacity(len as usize);
                // The elements together stay under the bound one bulk reply has.
                let mut total = 0;
                for _ in 0..len {
                    let item = Box::pin(self.read_reply_at(progress, false)).await?;
                    total += match &item {
                        Reply::Bulk(Some(b)) => b.len(),
                        Reply::Simple(s) | Reply::Error(s) => s.len(),
                        _ => 0,
                    };
                    if total > BULK_LIMIT {
                        return Err(protocol(format!(
                            "array reply over the {} KiB bound",
                            BULK_LIMIT / 1024
                        )));
                    }
                    items.push(item);
                }
                Ok(Reply::Array(Some(items)))
            }
            _ => Err(protocol(format!(
                "unexpected reply `{}`: not Redis?",
                truncate(&body, 40)
            ))),
        }
    }
}

fn io_kind(e: &std::io::Error) -> FailureKind {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => FailureKind::Protocol,
        _ => FailureKind::Io,
    }
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "reply cut short: connection closed by peer".into(),
        _ => ready_signal::files::io_reason(e),
    }
}

#[cfg(test)]
mod tests {
    use crate::Target;

    fn parse(s: &str) -> Result<Target, String> {
        Target::parse_with(s, &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn db_from_path_or_option_but_not_both() {
        assert!(parse("redis://h/3").is_ok());
        assert!(parse("redis://h?db=3").is_ok());
        assert!(parse("redis://h/3?db=3").unwrap_err().contains("both"));
        assert!(parse("redis://h/x").unwrap_err().contains("not a number"));
    }

    #[test]
    fn role_and_tls_options_are_validated() {
        assert!(parse("redis://h?role=replica").is_ok());
        assert!(
            parse("redis://h?role=leader")
                .unwrap_err()
                .contains("master or replica")
        );
        assert!(
            parse("redis://h?ca_file=/x")
                .unwrap_err()
                .contains("rediss://")
        );
        assert!(parse("rediss://h?insecure=true&server_name=x").is_ok());
    }

    #[test]
    fn missing_password_file_is_named() {
        let e = parse("redis://h?password_file=/nonexistent/secret").unwrap_err();
        assert!(e.contains("/nonexistent/secret"), "{e}");
    }
}
