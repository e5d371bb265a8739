//! `nats://` and `tls://`: the full client handshake, INFO, CONNECT, PING and PONG.
//!
//! The official NATS image is FROM scratch, so this is often the only way to probe it. async-nats
//! does the handshake and reports `-ERR 'Authorization Violation'` as its own error kind; with
//! `jetstream=true` the JetStream API must also answer an account-info request.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions};
use url::Url;

use super::Progress;
use super::{percent_decode, truncate};
use crate::net::TlsOptions;
use crate::secret::{self, Secret};
use crate::target::{Options, host_port};

/// A validated `nats://` or `tls://` target.
#[derive(Debug, Clone)]
pub(crate) struct NatsTarget {
    /// `nats://host:port` or `tls://host:port`, without credentials.
    server: String,
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
    CredsFile(PathBuf),
}

impl NatsTarget {
    pub(crate) fn from_url(
        url: &Url,
        opts: &mut Options,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<NatsTarget, String> {
        let (host, port) = host_port(url, 4222)?;
        if !matches!(url.path(), "" | "/") {
            return Err(format!("nats targets take no path (got `{}`)", url.path()));
        }
        let host_in_url = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let server = format!("{}://{host_in_url}:{port}", url.scheme());

        let user = percent_decode(url.username());
        let url_password = url.password().map(|p| Secret::new(percent_decode(p)));
        let password_file = opts.take_secret_file("password_file")?;
        let token_file = opts.take_secret_file("token_file")?;
        let nkey_file = opts.take_secret_file("nkey_file")?;
        let creds_file = opts.take_path("creds_file")?;

        if url_password.is_some() && password_file.is_some() {
            return Err("password given both in the URL and as password_file".into());
        }
        let mut given = Vec::new();
        match (user.is_empty(), url_password.or(password_file)) {
            (false, Some(password)) => given.push(Auth::UserPassword(user, password)),
            // `nats://TOKEN@host`, the nats CLI's convention.
            (false, None) => given.push(Auth::Token(Secret::new(user))),
            (true, Some(password)) => {
                let user = env("NATS_USER").filter(|u| !u.is_empty());
                let user =
                    user.ok_or("password_file needs a user: nats://USER@host or NATS_USER")?;
                given.push(Auth::UserPassword(user, password));
            }
            (true, None) => {}
        }
        given.extend(token_file.map(Auth::Token));
        given.extend(nkey_file.map(Auth::NkeySeed));
        given.extend(creds_file.map(Auth::CredsFile));
        if given.len() > 1 {
            return Err("give one of user:password, token, nkey_file or creds_file".into());
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
            return Err("tls options need the tls:// scheme".into());
        } else {
            None
        };
        Ok(NatsTarget {
            server,
            auth,
            jetstream,
            tls,
        })
    }
}

/// Credentials from the environment, for targets whose URL carries none.
fn auth_from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Auth, String> {
    if let Some(token) = secret::from_env("NATS_TOKEN", env)? {
        return Ok(Auth::Token(token));
    }
    if let Some(password) = secret::from_env("NATS_PASSWORD", env)? {
        let user = env("NATS_USER")
            .filter(|u| !u.is_empty())
            .ok_or("NATS_PASSWORD is set but NATS_USER is not")?;
        return Ok(Auth::UserPassword(user, password));
    }
    if let Some(seed) = secret::from_env("NATS_NKEY", env)? {
        return Ok(Auth::NkeySeed(seed));
    }
    if let Some(path) = env("NATS_CREDS_FILE").filter(|p| !p.is_empty()) {
        return Ok(Auth::CredsFile(PathBuf::from(path)));
    }
    Ok(Auth::None)
}

pub(crate) async fn check(t: &NatsTarget, progress: &Progress) -> Result<Option<String>, String> {
    let mut options = match &t.auth {
        Auth::None => ConnectOptions::new(),
        Auth::UserPassword(user, password) => {
            ConnectOptions::with_user_and_password(user.clone(), password.expose().to_string())
        }
        Auth::Token(token) => ConnectOptions::with_token(token.expose().to_string()),
        Auth::NkeySeed(seed) => ConnectOptions::with_nkey(seed.expose().trim().to_string()),
        Auth::CredsFile(path) => {
            let creds = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "cannot read creds_file {}: {}",
                    path.display(),
                    secret::io_reason(&e)
                )
            })?;
            ConnectOptions::with_credentials(&creds)
                .map_err(|_| format!("creds_file {}: not a creds file", path.display()))?
        }
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
        .name("healthcheck");
    if let Some(tls) = &t.tls {
        options = options
            .require_tls(true)
            .tls_client_config(tls.client_config()?);
    }
    progress.set("nats handshake");
    let client = options
        .connect(t.server.as_str())
        .await
        .map_err(|e| match e.kind() {
            ConnectErrorKind::AuthorizationViolation => {
                "-ERR 'Authorization Violation'".to_string()
            }
            ConnectErrorKind::Dns => format!("cannot resolve: {}", source_text(&e)),
            _ => truncate(&source_text(&e), 300),
        })?;
    if !t.jetstream {
        return Ok(None);
    }
    // A raw `$JS.API.INFO` request rather than async-nats's typed account query: the typed
    // response tracks the newest server and fails to decode older servers' answers.
    progress.set("jetstream account info");
    let reply = client
        .request("$JS.API.INFO", bytes::Bytes::new())
        .await
        .map_err(|e| {
            format!(
                "jetstream: {}",
                truncate(&e.to_string().to_lowercase(), 300)
            )
        })?;
    let info: serde_json::Value = serde_json::from_slice(&reply.payload)
        .map_err(|_| "jetstream: account info is not JSON".to_string())?;
    if let Some(error) = info.get("error") {
        let text = error
            .get("description")
            .and_then(|d| d.as_str())
            .unwrap_or("error");
        return Err(format!("jetstream: {}", truncate(text, 200)));
    }
    let streams = info.get("streams").and_then(|s| s.as_u64()).unwrap_or(0);
    Ok(Some(format!("jetstream {streams} streams")))
}

/// async-nats errors say `kind: source`; the source is what a human needs.
fn source_text(e: &async_nats::ConnectError) -> String {
    let s = e.to_string();
    s.to_lowercase()
}
