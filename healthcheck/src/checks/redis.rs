//! `redis://` and `rediss://`: AUTH, then `PING` must answer `PONG`.
//!
//! `redis-cli ping` exits 0 on NOAUTH and LOADING; here every error reply is unhealthy and the
//! server's own words are the reason. The TCP (and TLS) stream is ours, so every resolved address
//! is tried and the CA file and server name are under the target's control; redis-rs speaks RESP.

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisConnectionInfo, RedisError};
use url::Url;

use super::{Progress, percent_decode, truncate};
use crate::net::{self, TlsOptions};
use crate::secret::{self, Secret};
use crate::target::{Options, host_port};

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
    ) -> Result<RedisTarget, String> {
        let (host, port) = host_port(url, 6379)?;
        let username = Some(percent_decode(url.username())).filter(|u| !u.is_empty());
        let mut password = url.password().map(|p| Secret::new(percent_decode(p)));
        if let Some(p) = opts.take_secret_file("password_file")? {
            if password.is_some() {
                return Err("password given both in the URL and as password_file".into());
            }
            password = Some(p);
        }
        // The URL wins; the environment is the fallback for images that bake a bare target.
        if password.is_none() {
            password = secret::from_env("REDIS_PASSWORD", env)?;
        }
        let username = username.or_else(|| env("REDIS_USERNAME").filter(|u| !u.is_empty()));
        let path_db = url.path().trim_start_matches('/');
        let db = match (path_db, opts.take("db")?) {
            ("", None) => 0,
            (p, None) => p
                .parse()
                .map_err(|_| format!("database `{p}` in the path is not a number"))?,
            ("", Some(d)) => d
                .parse()
                .map_err(|_| format!("option `db` must be a number, not `{d}`"))?,
            (_, Some(_)) => return Err("database given both in the path and as option `db`".into()),
        };
        let role = match opts.take("role")?.as_deref() {
            None => None,
            Some("master") | Some("primary") => Some(Role::Master),
            Some("replica") | Some("slave") => Some(Role::Replica),
            Some(other) => {
                return Err(format!(
                    "option `role` must be master or replica, not `{other}`"
                ));
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
            return Err("tls options need the rediss:// scheme".into());
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

pub(crate) async fn check(t: &RedisTarget, progress: &Progress) -> Result<Option<String>, String> {
    let tcp = net::connect(&t.host, t.port, progress).await?;
    // AUTH and SELECT are sent by us, not by redis-rs's connection setup, so that a refusal
    // comes back in the server's own words (`WRONGPASS ...`) rather than a generic auth error.
    let info = RedisConnectionInfo::default().set_skip_set_lib_name();
    // No timeouts of redis-rs's own: the probe's one deadline covers everything. Its default
    // 500 ms response timeout judged a Redis answering in 600 ms unhealthy under `--timeout 2s`,
    // with a bare "timed out" that did not say what was awaited.
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(None)
        .set_response_timeout(None);
    let mut conn = match &t.tls {
        Some(tls) => {
            let stream = net::tls(tcp, &t.host, tls, progress).await?;
            start(&info, stream, config).await?
        }
        None => start(&info, tcp, config).await?,
    };
    if let Some(password) = &t.password {
        progress.set("authenticating");
        let mut auth = redis::cmd("AUTH");
        if let Some(user) = &t.username {
            auth.arg(user);
        }
        auth.arg(password.expose());
        let () = auth.query_async(&mut conn).await.map_err(reason)?;
    }
    if t.db != 0 {
        progress.set("selecting the database");
        let () = redis::cmd("SELECT")
            .arg(t.db)
            .query_async(&mut conn)
            .await
            .map_err(reason)?;
    }

    progress.set("waiting for PONG");
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(reason)?;
    if pong != "PONG" {
        return Err(format!("PING answered `{}`, not PONG", truncate(&pong, 80)));
    }
    let Some(want) = t.role else { return Ok(None) };

    progress.set("reading INFO replication");
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut conn)
        .await
        .map_err(reason)?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .map(str::trim)
    };
    let role = field("role").unwrap_or("unknown");
    match (want, role) {
        (Role::Master, "master") => Ok(Some("role master".into())),
        (Role::Replica, "slave") => match field("master_link_status") {
            Some("up") => Ok(Some("role replica, link up".into())),
            status => Err(format!(
                "replica with master_link_status {}",
                status.unwrap_or("unknown")
            )),
        },
        (Role::Master, _) => Err(format!("role is {}, want master", display_role(role))),
        (Role::Replica, _) => Err(format!("role is {}, want replica", display_role(role))),
    }
}

async fn start<C>(
    info: &RedisConnectionInfo,
    stream: C,
    config: AsyncConnectionConfig,
) -> Result<MultiplexedConnection, String>
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (conn, driver) = MultiplexedConnection::new_with_config(info, stream, config)
        .await
        .map_err(reason)?;
    tokio::spawn(driver);
    Ok(conn)
}

fn display_role(role: &str) -> &str {
    if role == "slave" { "replica" } else { role }
}

/// The server's own words: `LOADING Redis is loading the dataset in memory`.
fn reason(e: RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => truncate(&format!("{code} {detail}"), 300),
        _ if e.is_connection_dropped() || e.is_unrecoverable_error() && e.is_io_error() => {
            "connection closed by peer".into()
        }
        _ => truncate(&e.to_string(), 300),
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
