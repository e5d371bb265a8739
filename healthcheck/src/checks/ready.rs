//! `ready://AGENT[,AGENT...]`: agents' own ready signals, read through the `ready-signal` crate.
//!
//! A port that accepts says nothing about whether an agent is ready or whether its work loop still
//! moves; the agent's record does. The wire format lives only in `ready-signal`; this module
//! decides what the records mean for a verdict:
//! - `replica=NAME` (or `self`, this container's replica name): that replica must be ready and fresh;
//! - otherwise at least `min` (default 1) replicas of each agent must be ready and fresh.

use futures_util::future::join_all;
use ready_signal::{Name, Observed, Observer, ReplicaStatus, StoreConfig};
use url::Url;

use crate::failure::{Failure, FailureKind, Phase};
use crate::net;
use crate::options::Options;
use crate::progress::Progress;
use crate::text::truncate;

/// Longer than any deadline: the probe's deadline, not the observer's, ends a read.
const NO_LIBRARY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The variables naming files ready-signal reads; checked here first, so a FIFO or a device
/// named in one is refused at once instead of blocking the probe.
const FILE_VARIABLES: [&str; 4] = [
    "READY_SIGNAL_REDIS_PASSWORD_FILE",
    "READY_SIGNAL_REDIS_SENTINEL_PASSWORD_FILE",
    "READY_SIGNAL_NATS_PASSWORD_FILE",
    "READY_SIGNAL_NATS_TOKEN_FILE",
];

/// A validated `ready://` target.
#[derive(Debug, Clone)]
pub(crate) struct ReadyTarget {
    pub(crate) agents: Vec<Name>,
    which: Which,
    namespace: Option<Name>,
    /// `store=file`: read only the local-file backend (a liveness probe's own record), never the
    /// shared Redis.
    files_only: bool,
    /// `state=any`: a fresh record in any published state passes (liveness: the loop ticks,
    /// whether or not the agent is ready).
    any_state: bool,
    /// The store's credentials, as far as the environment shows them: scrubbed from whatever the
    /// store (or the library reading it) says back.
    secrets: Vec<crate::secret::Secret>,
}

/// Which replicas of each agent must be ready.
#[derive(Debug, Clone)]
enum Which {
    /// At least this many of the agent's replicas.
    AtLeast(usize),
    /// This one replica.
    Replica(Name),
}

impl ReadyTarget {
    pub(crate) fn from_url(
        url: &Url,
        opts: &mut Options,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ReadyTarget, Failure> {
        if url.port().is_some() || !url.username().is_empty() || !matches!(url.path(), "" | "/") {
            return Err(Failure::config(
                "write ready://AGENT[,AGENT...]?options (no port, user or path)",
            ));
        }
        let list = url.host_str().unwrap_or_default();
        if list.is_empty() {
            return Err(Failure::config("no agent name: write ready://AGENT"));
        }
        let mut agents = Vec::new();
        for raw in list.split(',') {
            let name = Name::new(raw).map_err(|e| Failure::config(format!("agent: {e}")))?;
            if !agents.contains(&name) {
                agents.push(name);
            }
        }
        let min = opts.take("min")?;
        let replica = opts.take("replica")?;
        let which = match (min, replica) {
            (Some(_), Some(_)) => {
                return Err(Failure::config("give either `min` or `replica`, not both"));
            }
            (Some(m), None) => match m.parse::<usize>() {
                Ok(n) if n >= 1 => Which::AtLeast(n),
                _ => {
                    return Err(Failure::config(format!(
                        "option `min` must be a whole number of at least 1, not `{}`",
                        truncate(&m, 20)
                    )));
                }
            },
            (None, Some(r)) if r == "self" => Which::Replica(
                ready_signal::default_replica_from(env)
                    .map_err(|e| Failure::config(format!("replica=self: {e}")))?,
            ),
            (None, Some(r)) => {
                Which::Replica(Name::new(&r).map_err(|e| Failure::config(format!("replica: {e}")))?)
            }
            (None, None) => Which::AtLeast(1),
        };
        let namespace = match opts.take("namespace")? {
            Some(ns) => {
                Some(Name::new(&ns).map_err(|e| Failure::config(format!("namespace: {e}")))?)
            }
            None => None,
        };
        let files_only = match opts.take("store")?.as_deref() {
            None | Some("env") => false,
            Some("file") => true,
            Some(other) => {
                return Err(Failure::config(format!(
                    "option `store` must be `file` (the local record files only) or `env`, not `{}`",
                    truncate(other, 20)
                )));
            }
        };
        let any_state = match opts.take("state")?.as_deref() {
            None | Some("ready") => false,
            Some("any") => true,
            Some(other) => {
                return Err(Failure::config(format!(
                    "option `state` must be `ready` or `any` (any published state, fresh), not `{}`",
                    truncate(other, 20)
                )));
            }
        };
        Ok(ReadyTarget {
            agents,
            which,
            namespace,
            files_only,
            any_state,
            secrets: store_secrets(env),
        })
    }

    /// The store these agents publish to: the environment, with this target's namespace.
    pub(crate) fn store(&self) -> Result<StoreConfig, Failure> {
        for var in FILE_VARIABLES {
            if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
                ready_signal::files::read_bounded(path.as_ref(), ready_signal::files::SECRET_LIMIT)
                    .map_err(|e| {
                        Failure::config(format!(
                            "{var}: {}: {e}",
                            std::path::Path::new(&path).display()
                        ))
                    })?;
            }
        }
        let store = StoreConfig::from_env().map_err(|e| Failure::config(e.to_string()))?;
        let store = if self.files_only {
            // With Redis and no directory, agents write no record file: every read would say
            // dead, and a liveness probe would restart a healthy agent.
            if !store.keeps_files() {
                return Err(Failure::config(
                    "store=file reads the record file agents write when READY_SIGNAL_DIR is set; \
                     set READY_SIGNAL_DIR (here and in the agent) or drop store=file",
                ));
            }
            store.files_only()
        } else {
            store
        };
        Ok(match &self.namespace {
            Some(ns) => store.namespace(ns.clone()),
            None => store,
        })
    }
}

pub(crate) async fn check(t: &ReadyTarget, progress: &Progress) -> Result<Option<String>, Failure> {
    let store = t.store()?;
    // Resolve the store's name here: a name that does not resolve is then a DNS failure saying
    // "resolving HOST", and the address talked to is known.
    if let Some((host, port)) = store
        .redis_addr()
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
    {
        net::resolve(host, port, progress).await?;
    }
    progress.step(
        Phase::Connect,
        "opening (connect, auth) the ready-signal store,",
    );
    progress.talking_to(store.describe());
    let observer = Observer::connect_within(&store, NO_LIBRARY_TIMEOUT)
        .await
        .map_err(|e| progress.fail(error_kind(&e), format!("unknown: {e}")))?;
    progress.step(Phase::Read, "reading ready records from");
    // All agents at once: their reads share the multiplexed connection, one round trip in all.
    let observer = &observer;
    let verdicts = join_all(t.agents.iter().map(|agent| async move {
        match &t.which {
            Which::Replica(replica) => match observer.replica(agent, replica).await {
                Ok(status) if t.any_state => {
                    judge_alive(&status).map_err(|n| (FailureKind::Unhealthy, n.0))
                }
                Ok(status) => judge_one(&status).map_err(|n| (FailureKind::Unhealthy, n.0)),
                Err(e) => Err((error_kind(&e), format!("{agent}: unknown: {e}"))),
            },
            Which::AtLeast(min) => match observer.replicas(agent).await {
                Ok(all) => judge_quorum(agent, &all, *min, t.any_state)
                    .map_err(|n| (FailureKind::Unhealthy, n.0)),
                Err(e) => Err((error_kind(&e), format!("{agent}: unknown: {e}"))),
            },
        }
    }))
    .await;
    let (details, problems): (Vec<_>, Vec<_>) = verdicts.into_iter().partition(Result::is_ok);
    let details: Vec<String> = details.into_iter().flatten().collect();
    let problems: Vec<(FailureKind, String)> =
        problems.into_iter().filter_map(Result::err).collect();
    match problems.first() {
        None => Ok(Some(details.join(", "))),
        Some((kind, _)) => {
            let texts: Vec<&str> = problems.iter().map(|(_, m)| m.as_str()).collect();
            Err(progress.fail(*kind, texts.join(", ")))
        }
    }
}

/// The store's passwords and tokens from the environment: URL userinfo and secret files (read
/// bounded; one that cannot be read is reported when the store is opened, not here).
fn store_secrets(env: &dyn Fn(&str) -> Option<String>) -> Vec<crate::secret::Secret> {
    let mut out = Vec::new();
    for var in ["READY_SIGNAL_REDIS_URL", "READY_SIGNAL_NATS_URL"] {
        // A host list (`redis+sentinel://u:p@a:1,b:2/m`) is not URL syntax: the credentials are
        // read from the URL with its first host only.
        if let Some(url) = env(var).and_then(|u| Url::parse(&first_host_only(&u)).ok()) {
            if let Some(p) = url.password() {
                out.push(p.to_string());
                out.push(crate::options::percent_decode(p));
            }
            if url.scheme() != "redis" && !url.username().is_empty() {
                out.push(crate::options::percent_decode(url.username()));
            }
        }
    }
    for var in FILE_VARIABLES {
        if let Some(path) = env(var).filter(|p| !p.is_empty())
            && let Ok(bytes) = ready_signal::files::read_bounded(
                std::path::Path::new(&path),
                ready_signal::files::SECRET_LIMIT,
            )
        {
            out.push(String::from_utf8_lossy(&bytes).trim_end().to_string());
        }
    }
    out.retain(|s| !s.is_empty());
    out.into_iter().map(crate::secret::Secret::new).collect()
}

/// `url` with only the first host of a comma-separated host list.
fn first_host_only(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let hosts = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
    match url[hosts..end].find(',') {
        Some(comma) => format!("{}{}", &url[..hosts + comma], &url[end..]),
        None => url.to_string(),
    }
}

impl ReadyTarget {
    /// The secrets this target holds, for scrubbing what a store says back.
    pub(crate) fn secrets(&self, out: &mut Vec<String>) {
        out.extend(self.secrets.iter().map(|s| s.expose().to_string()));
    }
}

/// The store's error, typed by its variant.
fn error_kind(e: &ready_signal::Error) -> FailureKind {
    match e {
        ready_signal::Error::Config(_) => FailureKind::Config,
        ready_signal::Error::Timeout { .. } => FailureKind::Timeout,
        _ => FailureKind::Io,
    }
}

/// One replica: ready and fresh, or the state, reason and age that say why not.
/// Why an agent's replicas do not make the verdict: their states, described.
#[derive(Debug)]
struct NotReady(String);

fn judge_one(s: &ReplicaStatus) -> Result<String, NotReady> {
    if s.state == Observed::Ready {
        Ok(format!("{} ready{}", s.agent, beat(s)))
    } else {
        Err(NotReady(describe(s)))
    }
}

/// `state=any`: the replica's record is fresh, whatever it says (its work loop ticks).
fn judge_alive(s: &ReplicaStatus) -> Result<String, NotReady> {
    if is_alive(s.state) {
        Ok(format!(
            "{} alive ({}){}",
            s.agent,
            s.state.as_str(),
            beat(s)
        ))
    } else {
        Err(NotReady(describe(s)))
    }
}

/// A published state with a fresh heartbeat: the writer's loop ticks.
fn is_alive(state: Observed) -> bool {
    matches!(
        state,
        Observed::Starting | Observed::Ready | Observed::NotReady | Observed::Stopping
    )
}

/// At least `min` replicas of `agent` ready (with `state=any`: alive, in any published state and
/// fresh); the others are described.
fn judge_quorum(
    agent: &Name,
    all: &[ReplicaStatus],
    min: usize,
    any_state: bool,
) -> Result<String, NotReady> {
    let passes = |s: &ReplicaStatus| {
        if any_state {
            is_alive(s.state)
        } else {
            s.state == Observed::Ready
        }
    };
    let word = if any_state { "alive" } else { "ready" };
    let ready = all.iter().filter(|s| passes(s)).count();
    if ready >= min {
        return Ok(match all {
            [one] if any_state => format!("{agent} alive ({}){}", one.state.as_str(), beat(one)),
            [one] => format!("{agent} ready{}", beat(one)),
            _ => format!("{agent} {ready}/{} replicas {word}", all.len()),
        });
    }
    if all.is_empty() {
        return Err(NotReady(format!("{agent}: dead (no record)")));
    }
    if let ([one], 1) = (all, min) {
        return Err(NotReady(describe(one)));
    }
    let others: Vec<String> = all
        .iter()
        .filter(|s| !passes(s))
        .map(describe_replica)
        .collect();
    let others = if others.is_empty() {
        String::new()
    } else {
        format!(" ({})", others.join("; "))
    };
    Err(NotReady(format!(
        "{agent}: {ready} of {} replicas {word}, need {min}{others}",
        all.len(),
    )))
}

fn beat(s: &ReplicaStatus) -> String {
    s.age
        .map(|a| format!(", beat {} ago", secs(a)))
        .unwrap_or_default()
}

fn describe(s: &ReplicaStatus) -> String {
    format!("{}: {}", s.agent, state_text(s))
}

fn describe_replica(s: &ReplicaStatus) -> String {
    format!("{} {}", s.replica, state_text(s))
}

/// `not-ready (warming cache) for 3.2s`, `stale, last beat 7.1s ago`, `dead (no record)`.
fn state_text(s: &ReplicaStatus) -> String {
    let reason = s
        .reason
        .as_deref()
        .filter(|r| !r.is_empty())
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    match s.state {
        Observed::Ready => format!("ready{}", beat(s)),
        Observed::Stale => match s.age {
            Some(a) => format!("stale, last beat {} ago", secs(a)),
            None => "stale".into(),
        },
        Observed::Dead => "dead (no record)".into(),
        Observed::Unknown => format!("unknown{reason}"),
        other => {
            let since = s
                .since
                .map(|d| format!(" for {}", secs(d)))
                .unwrap_or_default();
            format!("{other}{reason}{since}")
        }
    }
}

fn secs(d: std::time::Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use crate::Target;

    fn parse(s: &str) -> Result<Target, String> {
        let env = |n: &str| (n == "READY_SIGNAL_REPLICA").then(|| "worker-7".to_string());
        Target::parse_with(s, &env).map_err(|e| e.to_string())
    }

    #[test]
    fn grammar_accepts_lists_quorum_and_self() {
        assert!(parse("ready://worker").is_ok());
        assert!(parse("ready://a,b?min=2").is_ok());
        assert!(parse("ready://a?replica=self").is_ok());
        assert!(parse("ready://a?namespace=prod").is_ok());
    }

    /// The store's password is found in a Sentinel or Cluster host-list URL too, so it is
    /// scrubbed from whatever the store says back.
    #[test]
    fn secrets_are_read_from_host_list_urls() {
        let env = |n: &str| {
            (n == "READY_SIGNAL_REDIS_URL")
                .then(|| "redis+sentinel://u:canary%2Fpw@a:1,b:2/m?db=1".to_string())
        };
        let secrets = super::store_secrets(&env);
        assert!(secrets.iter().any(|s| s.expose() == "canary/pw"));
        assert_eq!(
            super::first_host_only("redis://u:p@a:1,b:2?cluster=true"),
            "redis://u:p@a:1?cluster=true"
        );
    }

    #[test]
    fn grammar_rejects_bad_names_and_options() {
        assert!(parse("ready://a?min=0").unwrap_err().contains("at least 1"));
        assert!(
            parse("ready://a?min=2&replica=x")
                .unwrap_err()
                .contains("not both")
        );
        assert!(parse("ready://a:4222").unwrap_err().contains("no port"));
        assert!(
            parse("ready://a?namespace=x.y")
                .unwrap_err()
                .contains("namespace: invalid name `x.y`")
        );
        assert!(parse("ready://").is_err());
    }
}
