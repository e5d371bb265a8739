//! The `READY_SIGNAL_*` environment: which variable sets what, and secrets read from files
//! (bounded, never blocking), with every error naming its variable.

use std::path::Path;

use super::StoreConfig;
use crate::error::Error;
use crate::files::{SECRET_LIMIT, read_bounded};
use crate::name::Name;
use crate::stores::NatsAuth;

impl StoreConfig {
    /// Reads `READY_SIGNAL_REDIS_URL`, `READY_SIGNAL_REDIS_PASSWORD_FILE`,
    /// `READY_SIGNAL_REDIS_SENTINEL_PASSWORD_FILE`, `READY_SIGNAL_NATS_URL`,
    /// `READY_SIGNAL_NATS_PASSWORD_FILE`, `READY_SIGNAL_NATS_TOKEN_FILE`, `READY_SIGNAL_DIR` and
    /// `READY_SIGNAL_NAMESPACE`. Empty variables count as unset.
    pub fn from_env() -> Result<StoreConfig, Error> {
        StoreConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`StoreConfig::from_env`], with variables looked up by `env`.
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<StoreConfig, Error> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let mut store = StoreConfig::new();
        if let Some(url) = var("READY_SIGNAL_REDIS_URL") {
            store = store
                .redis(&url)
                .map_err(|e| in_var("READY_SIGNAL_REDIS_URL", e))?;
        }
        if let Some(file) = var("READY_SIGNAL_REDIS_PASSWORD_FILE") {
            store =
                store.redis_password(read_secret("READY_SIGNAL_REDIS_PASSWORD_FILE", &file)?)?;
        }
        if let Some(file) = var("READY_SIGNAL_REDIS_SENTINEL_PASSWORD_FILE") {
            let password = read_secret("READY_SIGNAL_REDIS_SENTINEL_PASSWORD_FILE", &file)?;
            store = store
                .redis_sentinel_password(password)
                .map_err(|e| in_var("READY_SIGNAL_REDIS_SENTINEL_PASSWORD_FILE", e))?;
        }
        if let Some(url) = var("READY_SIGNAL_NATS_URL") {
            store = store
                .nats(&url)
                .map_err(|e| in_var("READY_SIGNAL_NATS_URL", e))?;
        }
        if let Some(file) = var("READY_SIGNAL_NATS_PASSWORD_FILE") {
            let password = read_secret("READY_SIGNAL_NATS_PASSWORD_FILE", &file)?;
            store = store.nats_auth(|user| match user {
                Some(user) => Ok(NatsAuth::UserPassword(user.to_string(), password)),
                None => Err(Error::Config(
                    "READY_SIGNAL_NATS_PASSWORD_FILE needs a user in READY_SIGNAL_NATS_URL (nats://USER@host)".into(),
                )),
            })?;
        }
        if let Some(file) = var("READY_SIGNAL_NATS_TOKEN_FILE") {
            let token = read_secret("READY_SIGNAL_NATS_TOKEN_FILE", &file)?;
            store = store.nats_auth(|_| Ok(NatsAuth::Token(token)))?;
        }
        if let Some(dir) = var("READY_SIGNAL_DIR") {
            store = store.dir(dir);
        }
        if let Some(ns) = var("READY_SIGNAL_NAMESPACE") {
            store =
                store.namespace(Name::new(&ns).map_err(|e| in_var("READY_SIGNAL_NAMESPACE", e))?);
        }
        Ok(store)
    }
}

fn in_var(var: &str, e: Error) -> Error {
    Error::Config(format!("{var}: {e}"))
}

fn read_secret(var: &str, path: &str) -> Result<String, Error> {
    let bytes = read_bounded(Path::new(path), SECRET_LIMIT)
        .map_err(|source| Error::Config(format!("{var}: cannot read {path}: {source}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Config(format!("{var}: {path} is not UTF-8 text")))?;
    let secret = text.trim_end_matches(['\r', '\n']).to_string();
    if secret.is_empty() {
        return Err(Error::Config(format!("{var}: {path} is empty")));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn nothing_configured_means_files() {
        let s = StoreConfig::from_lookup(lookup(&[])).unwrap();
        assert!(!s.has_redis() && !s.has_nats() && s.files_always());
        assert!(s.describe().starts_with("files in "));
    }

    #[test]
    fn reads_every_variable_and_redacts() {
        let s = StoreConfig::from_lookup(lookup(&[
            ("READY_SIGNAL_REDIS_URL", "redis://u:canary-pw@redis:6380/2"),
            ("READY_SIGNAL_NATS_URL", "nats://tok-canary@nats"),
            ("READY_SIGNAL_NAMESPACE", "prod"),
        ]))
        .unwrap();
        assert_eq!(
            s.describe(),
            "redis at redis:6380, nats at nats:4222, namespace prod"
        );
        assert!(!format!("{s:?}").contains("canary"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = StoreConfig::from_lookup(lookup(&[("READY_SIGNAL_REDIS_URL", "http://x")]))
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("READY_SIGNAL_REDIS_URL: scheme `http`"),
            "{e}"
        );
        let e = StoreConfig::from_lookup(lookup(&[("READY_SIGNAL_NAMESPACE", "a.b")])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("READY_SIGNAL_NAMESPACE: invalid name `a.b`"),
            "{e}"
        );
        let e = StoreConfig::from_lookup(lookup(&[(
            "READY_SIGNAL_REDIS_PASSWORD_FILE",
            "/nonexistent",
        )]))
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent"), "{e}");
    }
}
