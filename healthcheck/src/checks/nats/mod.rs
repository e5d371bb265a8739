//! `nats://` and `tls://`: the full client handshake, INFO, CONNECT, PING and PONG, then what
//! the target asks beyond it (the cluster's size, JetStream's meta leader).
//!
//! The official NATS image is FROM scratch, so this is often the only way to probe it. With
//! `jetstream=true` the JetStream API must also answer an account-info request.
//!
//! One job per file: `options` (the target's grammar and credentials), `wire` (the protocol's
//! bounded framing), `handshake` (one server: login, and JetStream's account info), `seeds`
//! (every host of a seed list at once), `monitor` (the monitoring port's JSON). This file runs
//! them in order for one target.

use crate::failure::{Failure, FailureKind, Phase};
use crate::progress::Progress;
use crate::text::truncate;

mod handshake;
mod monitor;
mod options;
mod seeds;
mod wire;

pub(crate) use options::NatsTarget;

/// Checks one target: a handshake with its server (or the first of its seeds to answer), then
/// the cluster size and JetStream's meta leader when asked.
pub(crate) async fn check(t: &NatsTarget, progress: &Progress) -> Result<Option<String>, Failure> {
    let (mut detail, info) = if t.seeds.is_empty() {
        handshake::handshake(t, &t.host, t.port, progress).await?
    } else {
        let (name, detail, info) = seeds::any_seed(t, progress).await?;
        let mut via = Some(format!("via {name}"));
        if let Some(d) = detail {
            push_detail(&mut via, d);
        }
        // What follows (the server count) is that server's word.
        progress.step(Phase::Protocol, "counting servers as seen by");
        progress.talking_to(name);
        (via, info)
    };
    if let Some(want) = t.cluster {
        let servers = match &t.monitor {
            Some((host, port)) => {
                progress.step(Phase::Read, "reading /routez from");
                let routez = monitor::get(host, *port, "/routez", progress).await?;
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
        let jsz = monitor::get(host, *port, "/jsz", progress).await?;
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
