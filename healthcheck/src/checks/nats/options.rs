//! A `nats://` or `tls://` target's grammar: its options, and the one way it authenticates
//! (from the URL, a secret file or the `NATS_*` environment), checked before connecting.

use std::path::PathBuf;

use url::Url;

use crate::failure::Failure;
use crate::net::TlsOptions;
use crate::options::{Options, host_port, percent_decode, read_named_file};
use crate::secret::{self, Secret};
use crate::text::truncate;

/// A validated `nats://` or `tls://` target.
#[derive(Debug, Clone)]
pub(crate) struct NatsTarget {
    pub(super) host: String,
    pub(super) port: u16,
    /// Every host of a seed list (`nats://a,b,c`), the first one included; empty for one host.
    pub(super) seeds: Vec<(String, u16)>,
    pub(super) auth: Auth,
    pub(super) jetstream: bool,
    pub(super) tls: Option<TlsOptions>,
    /// `cluster=N`: at least N servers in the cluster (this one and N-1 routed peers).
    pub(super) cluster: Option<usize>,
    /// `monitor=http://host:8222`: the monitoring endpoint asked for routes and the meta leader.
    pub(super) monitor: Option<(String, u16)>,
}

/// How to authenticate; the nkey seed and creds are secrets like passwords.
#[derive(Debug, Clone)]
pub(super) enum Auth {
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

/// The JWT and the seed of a creds file (the first two non-delimiter lines).
pub(super) fn parse_creds(creds: &str) -> Result<(&str, &str), Failure> {
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
}
