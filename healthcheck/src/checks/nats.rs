//! `nats://` and `tls://`: the full client handshake, INFO, CONNECT, PING and PONG.
//!
//! The official NATS image is FROM scratch, so this is often the only way to probe it. async-nats
//! does the handshake and reports `-ERR 'Authorization Violation'` as its own error kind; with
//! `jetstream=true` the JetStream API must also answer an account-info request.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions};
use url::Url;

use crate::failure::{Failure, FailureKind, Phase};
use crate::net::TlsOptions;
use crate::options::{Options, host_port, percent_decode, read_named_file};
use crate::progress::Progress;
use crate::secret::{self, Secret};
use crate::text::truncate;

/// Longer than any deadline a probe is given: async-nats's own connect timeout (5 s by default)
/// must never be the one that ends a check; the caller's deadline is.
const NO_LIBRARY_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// A validated `nats://` or `tls://` target.
#[derive(Debug, Clone)]
pub(crate) struct NatsTarget {
    /// `nats://host:port` or `tls://host:port`, without credentials.
    server: String,
    /// `host:port`, for messages.
    address: String,
    auth: Auth,
    jetstream: bool,
    tls: Option<TlsOptions>,
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
        let host_in_url = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let server = format!("{}://{host_in_url}:{port}", url.scheme());
        let address = format!("{host_in_url}:{port}");

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
        Ok(NatsTarget {
            server,
            address,
            auth,
            jetstream,
            tls,
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
    let bytes = read_named_file("creds_file", path, crate::files::SECRET_LIMIT)?;
    String::from_utf8(bytes)
        .map(Secret::new)
        .map_err(|_| Failure::config(format!("creds_file {}: not a creds file", path.display())))
}

impl NatsTarget {
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
    let mut options = match &t.auth {
        Auth::None => ConnectOptions::new(),
        Auth::UserPassword(user, password) => {
            ConnectOptions::with_user_and_password(user.clone(), password.expose().to_string())
        }
        Auth::Token(token) => ConnectOptions::with_token(token.expose().to_string()),
        Auth::NkeySeed(seed) => ConnectOptions::with_nkey(seed.expose().trim().to_string()),
        Auth::Creds(creds) => ConnectOptions::with_credentials(creds.expose())
            .map_err(|_| Failure::config("creds_file: not a creds file"))?,
    };
    // One attempt: the caller owns the deadline, and a probe must not reconnect in the background.
    // Choosing the server ourselves with a zero delay skips async-nats's `sleep(0)` before the
    // first attempt, which costs a timer tick (1-2 ms, measured) on a fresh runtime.
    options = options
        .ignore_discovered_servers()
        .max_reconnects(1)
        .reconnect_to_server_callback(|servers, _info| async move {
            servers.first().map(|s| async_nats::ReconnectToServer {
                addr: s.addr.clone(),
                delay: Some(Duration::ZERO),
            })
        })
        .name("healthcheck")
        // Our deadline, not the library's: only `--timeout` ends a check.
        .connection_timeout(NO_LIBRARY_TIMEOUT)
        .request_timeout(None);
    if let Some(tls) = &t.tls {
        options = options
            .require_tls(true)
            .tls_client_config(tls.client_config()?);
    }
    progress.step(Phase::Protocol, "in the nats handshake with");
    progress.talking_to(t.address.clone());
    let client = options
        .connect(t.server.as_str())
        .await
        .map_err(|e| connect_failure(&e, progress))?;
    if !t.jetstream {
        return Ok(None);
    }
    // A raw `$JS.API.INFO` request rather than async-nats's typed account query: the typed
    // response tracks the newest server and fails to decode older servers' answers.
    progress.step(Phase::Read, "waiting for jetstream account info from");
    let reply = client
        .request("$JS.API.INFO", bytes::Bytes::new())
        .await
        .map_err(|e| {
            progress.fail(
                FailureKind::Unhealthy,
                format!(
                    "jetstream: {}",
                    truncate(&e.to_string().to_lowercase(), 300)
                ),
            )
        })?;
    let info: serde_json::Value = serde_json::from_slice(&reply.payload)
        .map_err(|_| progress.fail(FailureKind::Protocol, "jetstream: account info is not JSON"))?;
    if let Some(error) = info.get("error") {
        let text = error
            .get("description")
            .and_then(|d| d.as_str())
            .unwrap_or("error");
        return Err(progress.fail(
            FailureKind::Unhealthy,
            format!("jetstream: {}", truncate(text, 200)),
        ));
    }
    let streams = info.get("streams").and_then(|s| s.as_u64()).unwrap_or(0);
    Ok(Some(format!("jetstream {streams} streams")))
}

/// async-nats's connect error, typed by its kind (never by its text).
fn connect_failure(e: &async_nats::ConnectError, progress: &Progress) -> Failure {
    let text = truncate(&e.to_string().to_lowercase(), 300);
    let (kind, phase) = match e.kind() {
        ConnectErrorKind::AuthorizationViolation => {
            return Failure::new(FailureKind::Auth, "-ERR 'Authorization Violation'")
                .at(Phase::Auth, progress.address());
        }
        ConnectErrorKind::Authentication => (FailureKind::Auth, Phase::Auth),
        ConnectErrorKind::Dns => (FailureKind::Dns, Phase::Resolve),
        ConnectErrorKind::TimedOut => (FailureKind::Timeout, Phase::Connect),
        ConnectErrorKind::Tls => (FailureKind::Tls, Phase::Tls),
        ConnectErrorKind::ServerParse => (FailureKind::Config, Phase::Protocol),
        ConnectErrorKind::Io | ConnectErrorKind::MaxReconnects => {
            let io = std::error::Error::source(e)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .map(std::io::Error::kind);
            match io {
                Some(std::io::ErrorKind::ConnectionRefused) => {
                    (FailureKind::Refused, Phase::Connect)
                }
                _ => (FailureKind::Io, Phase::Protocol),
            }
        }
    };
    Failure::new(kind, text).at(phase, progress.address())
}
