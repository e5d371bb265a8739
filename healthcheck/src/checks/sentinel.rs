//! `redis+sentinel://[user:password@]s1:26379,s2:26379/MASTER_NAME`: the master that Redis
//! Sentinel names, and proof that it really is that master.
//!
//! A Sentinel answers PING while monitoring nothing, and one Sentinel cut off from the others may
//! name a master that is gone, so every listed Sentinel is asked at once; those that answer must
//! agree, then the named master must answer PING and say `role:master` itself (a restarted old
//! master claims `role:master` for a few seconds until the Sentinels demote it, which is why the
//! Sentinels are asked first and only their master is checked). With `quorum=true` every answering
//! Sentinel's `SENTINEL CKQUORUM` must pass: enough Sentinels are reachable to authorise a failover.
//!
//! Credentials: the URL's userinfo (or `password_file`, or `REDIS_PASSWORD`) is the master's, as
//! for `redis://`; the Sentinels' own `requirepass`, when they have one, is `sentinel_password_file`
//! (the Sentinels and the data nodes usually have different passwords).

use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use url::Url;

use crate::checks::redis::{self, Conn, Reply};
use crate::failure::{Failure, FailureKind, Phase};
use crate::net;
use crate::options::{Options, percent_decode};
use crate::progress::Progress;
use crate::secret::Secret;
use crate::text::truncate;

/// Once more than half of the listed Sentinels have answered, how long the others still get: a
/// Sentinel whose host drops packets must not hold the verdict until the deadline when a majority
/// has already spoken.
const STRAGGLER_GRACE: Duration = Duration::from_millis(200);

/// A validated `redis+sentinel://` target.
#[derive(Debug, Clone)]
pub(crate) struct SentinelTarget {
    sentinels: Vec<(String, u16)>,
    master_name: String,
    username: Option<String>,
    password: Option<Secret>,
    sentinel_password: Option<Secret>,
    quorum: bool,
}

impl SentinelTarget {
    /// `seeds` are the Sentinels' hosts and ports, in the order written.
    pub(crate) fn from_url(
        url: &Url,
        seeds: Vec<(String, u16)>,
        opts: &mut Options,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SentinelTarget, Failure> {
        if seeds.is_empty() {
            return Err(Failure::config("no host"));
        }
        let master_name = percent_decode(url.path().trim_start_matches('/'));
        if master_name.is_empty() || master_name.contains('/') {
            return Err(Failure::config(
                "name the master in the path: redis+sentinel://host:26379,host:26379/MASTER_NAME",
            ));
        }
        let (username, password) = redis::credentials(url, opts, env)?;
        let sentinel_password = opts.take_secret_file("sentinel_password_file")?;
        let quorum = opts.take_bool("quorum")?;
        Ok(SentinelTarget {
            sentinels: seeds,
            master_name,
            username,
            password,
            sentinel_password,
            quorum,
        })
    }

    /// The secrets this target holds, for scrubbing what a server says back.
    pub(crate) fn secrets(&self, out: &mut Vec<String>) {
        out.extend(self.password.iter().map(|p| p.expose().to_string()));
        out.extend(
            self.sentinel_password
                .iter()
                .map(|p| p.expose().to_string()),
        );
    }
}

/// What one Sentinel said.
#[derive(Debug)]
struct Answer {
    /// The master's `host:port`, or None when it monitors no master of that name.
    master: Option<String>,
    /// With `quorum=true`: the CKQUORUM failure, when it did not pass.
    no_quorum: Option<Failure>,
}

pub(crate) async fn check(
    t: &SentinelTarget,
    progress: &Progress,
) -> Result<Option<String>, Failure> {
    let listed: Vec<String> = t.sentinels.iter().map(|(h, p)| net_addr(h, *p)).collect();
    // Until one answers, a deadline names every Sentinel still asked.
    progress.step(Phase::Protocol, "waiting for the sentinels");
    progress.talking_to(listed.join(","));
    let mut asking: FuturesUnordered<_> = t
        .sentinels
        .iter()
        .zip(&listed)
        .map(|((host, port), addr)| async move {
            let own = Progress::new();
            (addr.clone(), ask(t, host, *port, &own).await)
        })
        .collect();
    let mut answers: Vec<(String, Answer)> = Vec::new();
    let mut failures: Vec<(String, Failure)> = Vec::new();
    loop {
        let next = if answers.len() * 2 > listed.len() {
            match tokio::time::timeout(STRAGGLER_GRACE, asking.next()).await {
                Ok(next) => next,
                Err(_) => break,
            }
        } else {
            asking.next().await
        };
        match next {
            Some((addr, Ok(a))) => answers.push((addr, a)),
            Some((addr, Err(f))) => failures.push((addr, f)),
            None => break,
        }
    }
    let silent: Vec<&str> = listed
        .iter()
        .filter(|a| !answers.iter().any(|(x, _)| x == *a) && !failures.iter().any(|(x, _)| x == *a))
        .map(String::as_str)
        .collect();
    let unhealthy = |m: String| Failure::new(FailureKind::Unhealthy, m).at(Phase::Protocol, None);

    if answers.is_empty() {
        let kind = match failures.first() {
            Some((_, f)) if failures.iter().all(|(_, g)| g.kind() == f.kind()) => f.kind(),
            _ => FailureKind::Unhealthy,
        };
        let each: Vec<String> = failures.iter().map(|(_, f)| f.to_string()).collect();
        return Err(Failure::new(
            kind,
            truncate(&format!("no sentinel answered: {}", each.join("; ")), 900),
        )
        .at(Phase::Protocol, None));
    }
    if let Some((addr, _)) = answers.iter().find(|(_, a)| a.master.is_none()) {
        return Err(unhealthy(format!(
            "sentinel {addr} monitors no master named `{}`",
            truncate(&t.master_name, 60)
        )));
    }
    let named = answers[0].1.master.clone().unwrap_or_default();
    if answers
        .iter()
        .any(|(_, a)| a.master.as_deref() != Some(&named))
    {
        let each: Vec<String> = answers
            .iter()
            .map(|(s, a)| format!("{s} says {}", a.master.as_deref().unwrap_or("none")))
            .collect();
        return Err(unhealthy(truncate(
            &format!(
                "sentinels disagree on master `{}`: {}",
                truncate(&t.master_name, 60),
                each.join(", ")
            ),
            900,
        )));
    }
    if let Some((addr, f)) = answers
        .iter()
        .find_map(|(s, a)| a.no_quorum.as_ref().map(|f| (s, f)))
    {
        return Err(unhealthy(format!(
            "sentinel {addr}: CKQUORUM failed: {}",
            f.message()
        )));
    }

    // The master the Sentinels agree on must answer and be a master itself.
    let (host, port) = split_addr(&named).ok_or_else(|| {
        Failure::new(
            FailureKind::Protocol,
            format!(
                "sentinels name master `{}`: not host:port",
                truncate(&named, 80)
            ),
        )
        .at(Phase::Protocol, None)
    })?;
    let agreed = format!("{} of {} sentinels", answers.len(), listed.len());
    let context = |f: Failure| {
        let (kind, phase, address) = (f.kind(), f.phase(), f.address().map(str::to_string));
        let message = format!(
            "master `{}` named by {agreed}: {}",
            truncate(&t.master_name, 60),
            f.message()
        );
        let f = Failure::new(kind, message);
        match phase {
            Some(p) => f.at(p, address),
            None => f,
        }
    };
    let tcp = net::connect(&host, port, progress).await.map_err(context)?;
    master(t, Conn::new(tcp), progress).await.map_err(context)?;
    let mut detail = format!("master {named} ({agreed} agree");
    if t.quorum {
        detail.push_str(", quorum ok");
    }
    detail.push(')');
    if !silent.is_empty() || !failures.is_empty() {
        let mut quiet: Vec<&str> = failures.iter().map(|(a, _)| a.as_str()).collect();
        quiet.extend(&silent);
        detail.push_str(&format!("; no answer from {}", quiet.join(", ")));
    }
    Ok(Some(truncate(&detail, 600)))
}

/// Asks one Sentinel for the master's address (and, with `quorum=true`, CKQUORUM).
async fn ask(
    t: &SentinelTarget,
    host: &str,
    port: u16,
    progress: &Progress,
) -> Result<Answer, Failure> {
    let tcp = net::connect(host, port, progress).await?;
    let mut conn = Conn::new(tcp);
    if let Some(password) = &t.sentinel_password {
        progress.set(Phase::Auth);
        conn.call(&[b"AUTH", password.expose().as_bytes()], progress)
            .await?
            .ok(progress)?;
    }
    progress.step(Phase::Protocol, "waiting for the master's address from");
    let name = t.master_name.as_bytes();
    let reply = conn
        .call(&[b"SENTINEL", b"get-master-addr-by-name", name], progress)
        .await?;
    let master = match reply {
        Reply::Array(None) | Reply::Bulk(None) => None,
        Reply::Array(Some(items)) if items.len() == 2 => {
            let mut parts = items.into_iter().map(|i| i.text(progress));
            let host = parts.next().transpose()?.unwrap_or_default();
            let port = parts.next().transpose()?.unwrap_or_default();
            Some(net_addr(&host, port.parse().unwrap_or(0)))
        }
        error @ Reply::Error(_) => {
            error.ok(progress)?;
            None
        }
        other => {
            return Err(progress.fail(
                FailureKind::Protocol,
                format!(
                    "get-master-addr-by-name answered {}: not a Sentinel?",
                    describe(&other)
                ),
            ));
        }
    };
    let mut no_quorum = None;
    if t.quorum && master.is_some() {
        progress.step(Phase::Protocol, "waiting for CKQUORUM from");
        if let Err(f) = conn
            .call(&[b"SENTINEL", b"CKQUORUM", name], progress)
            .await?
            .ok(progress)
        {
            no_quorum = Some(f);
        }
    }
    Ok(Answer { master, no_quorum })
}

/// AUTH, PING, and `role:master` from the master itself.
async fn master<S: AsyncRead + AsyncWrite + Unpin>(
    t: &SentinelTarget,
    mut conn: Conn<S>,
    progress: &Progress,
) -> Result<(), Failure> {
    if let Some(password) = &t.password {
        progress.set(Phase::Auth);
        let mut args: Vec<&[u8]> = vec![b"AUTH"];
        if let Some(user) = &t.username {
            args.push(user.as_bytes());
        }
        args.push(password.expose().as_bytes());
        conn.call(&args, progress).await?.ok(progress)?;
    }
    redis::ping(&mut conn, progress).await?;
    progress.step(Phase::Read, "reading INFO replication from");
    let info = conn
        .call(&[b"INFO", b"replication"], progress)
        .await?
        .text(progress)?;
    let role = info
        .lines()
        .find_map(|l| l.strip_prefix("role:"))
        .map(str::trim)
        .unwrap_or("unknown");
    if role != "master" {
        let role = if role == "slave" { "replica" } else { role };
        return Err(progress.fail(
            FailureKind::Unhealthy,
            format!(
                "role is {}, not master (failover in progress?)",
                truncate(role, 40)
            ),
        ));
    }
    Ok(())
}

fn describe(r: &Reply) -> &'static str {
    match r {
        Reply::Simple(_) => "a status",
        Reply::Error(_) => "an error",
        Reply::Bulk(_) => "a string",
        Reply::Integer => "a number",
        Reply::Array(_) => "an array",
    }
}

/// `host:port`, with brackets around an IPv6 host.
fn net_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The inverse of [`net_addr`].
fn split_addr(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok().filter(|p| *p != 0)?))
}

#[cfg(test)]
mod tests {
    use crate::Target;

    fn parse(s: &str) -> Result<Target, String> {
        Target::parse_with(s, &|_| None).map_err(|e| e.to_string())
    }

    /// A sentinel list parses and prints every host; the master name is required.
    #[test]
    fn parses_sentinel_list_and_master_name() {
        let t = parse("redis+sentinel://:pw@a:26379,b:26380,b/mymaster?quorum=true").unwrap();
        assert_eq!(
            t.to_string(),
            "redis+sentinel://:***@a:26379,b:26380,b/mymaster?quorum=true"
        );
        assert!(
            parse("redis+sentinel://a:26379")
                .unwrap_err()
                .contains("name the master")
        );
        assert!(
            parse("redis+sentinel://a,,b/m")
                .unwrap_err()
                .contains("empty host")
        );
        assert!(
            parse("redis+sentinel://a/m?role=master")
                .unwrap_err()
                .contains("unknown option")
        );
        assert!(
            parse("redis://a:1,b:2?cluster=true")
                .unwrap_err()
                .contains("checked alone")
        );
    }
}
