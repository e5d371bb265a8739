//! `redis://host:6379?cluster=true`: one Redis Cluster node, judged as a member of a cluster
//! that can serve every key.
//!
//! A cluster node answers PING while half the key space has no live owner, so the node is asked
//! `CLUSTER INFO`: `cluster_state:ok`, all 16384 slots assigned and ok, none in `pfail` or `fail`.
//! That last part makes the check a readiness check: during a failover (a master lost, its replica
//! not yet promoted) the node is unhealthy, which is the truth about the keys it routes to, but
//! no reason to restart it (never use it for liveness). The node's own role comes from its
//! `myself` line in `CLUSTER NODES`; with `all_masters=true` every master listed there must also
//! answer PING itself, with the target's credentials.
//!
//! An option on `redis://` rather than a scheme of its own: the node is a Redis server reached,
//! authenticated and TLS-wrapped exactly like any other, so every `redis://`/`rediss://` option
//! keeps working, and a HEALTHCHECK checks the container it runs in (one node), not a seed list.

use futures_util::future::join_all;

use crate::checks::redis::{self, RedisTarget, Session};
use crate::failure::{Failure, FailureKind, Phase};
use crate::progress::Progress;
use crate::text::truncate;

/// Every slot of a Redis Cluster.
const SLOTS: u64 = 16384;

/// A validated `redis://...?cluster=true` target.
#[derive(Debug, Clone)]
pub(crate) struct ClusterTarget {
    pub(crate) node: RedisTarget,
    pub(crate) all_masters: bool,
}

impl ClusterTarget {
    /// The secrets this target holds, for scrubbing what a server says back.
    pub(crate) fn secrets(&self, out: &mut Vec<String>) {
        self.node.secrets(out);
    }
}

/// One line of `CLUSTER NODES`, as far as the check needs it.
#[derive(Debug, PartialEq, Eq)]
struct NodeLine {
    addr: String,
    flags: Vec<String>,
    has_slots: bool,
}

impl NodeLine {
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

pub(crate) async fn check(
    t: &ClusterTarget,
    progress: &Progress,
) -> Result<Option<String>, Failure> {
    let mut conn = t.node.open(progress).await?;
    redis::ping(&mut conn, progress).await?;
    progress.step(Phase::Read, "reading CLUSTER INFO from");
    let info = conn
        .call(&[b"CLUSTER", b"INFO"], progress)
        .await?
        .text(progress)?;
    let nodes = read_nodes(&mut conn, progress).await?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .map(str::trim)
    };
    let number = |name: &str| field(name).and_then(|v| v.parse::<u64>().ok());
    let state = field("cluster_state").unwrap_or("unknown");
    let assigned = number("cluster_slots_assigned").unwrap_or(0);
    let ok = number("cluster_slots_ok").unwrap_or(0);
    let pfail = number("cluster_slots_pfail").unwrap_or(0);
    let fail = number("cluster_slots_fail").unwrap_or(0);
    let myself = nodes.iter().find(|n| n.has("myself"));
    let role = match myself {
        Some(n) if n.has("master") => "master",
        Some(n) if n.has("slave") => "replica",
        _ => "unknown",
    };
    if state != "ok" || assigned != SLOTS || ok != SLOTS || pfail != 0 || fail != 0 {
        let mut why = format!(
            "cluster_state:{}, {ok} of {SLOTS} slots ok",
            truncate(state, 20)
        );
        if assigned != SLOTS {
            why.push_str(&format!(", {} unassigned", SLOTS.saturating_sub(assigned)));
        }
        if pfail != 0 || fail != 0 {
            why.push_str(&format!(", {pfail} pfail, {fail} fail"));
        }
        let down: Vec<String> = nodes
            .iter()
            .filter(|n| n.has("fail") || n.has("fail?"))
            .map(|n| {
                let kind = if n.has("master") { "master" } else { "replica" };
                let flag = if n.has("fail") { "fail" } else { "fail?" };
                format!("{kind} {} {flag}", n.addr)
            })
            .collect();
        if !down.is_empty() {
            why.push_str(&format!(" ({})", down.join(", ")));
        }
        return Err(progress.fail(FailureKind::Unhealthy, truncate(&why, 600)));
    }
    match (t.node.wants_master(), role) {
        (Some(true), "replica") | (Some(false), "master") | (Some(_), "unknown") => {
            let want = if t.node.wants_master() == Some(true) {
                "master"
            } else {
                "replica"
            };
            return Err(progress.fail(
                FailureKind::Unhealthy,
                format!("role is {role}, want {want}"),
            ));
        }
        _ => {}
    }
    let masters: Vec<&NodeLine> = nodes
        .iter()
        .filter(|n| n.has("master") && n.has_slots)
        .collect();
    let mut detail = format!("cluster ok, {} masters, role {role}", masters.len());
    if t.all_masters {
        let others: Vec<&&NodeLine> = masters.iter().filter(|n| !n.has("myself")).collect();
        let answers = join_all(others.iter().map(|n| async move {
            let own = Progress::new();
            (n.addr.as_str(), ping(&t.node, &n.addr, &own).await)
        }))
        .await;
        let failed: Vec<String> = answers
            .iter()
            .filter_map(|(a, r)| r.as_ref().err().map(|f| format!("master {a}: {f}")))
            .collect();
        if !failed.is_empty() {
            return Err(
                Failure::new(FailureKind::Unhealthy, truncate(&failed.join("; "), 900))
                    .at(Phase::Protocol, None),
            );
        }
        detail.push_str(", every master answers");
    }
    Ok(Some(detail))
}

/// `CLUSTER NODES`, parsed (bounded like every reply).
async fn read_nodes(conn: &mut Session, progress: &Progress) -> Result<Vec<NodeLine>, Failure> {
    progress.step(Phase::Read, "reading CLUSTER NODES from");
    let text = conn
        .call(&[b"CLUSTER", b"NODES"], progress)
        .await?
        .text(progress)?;
    Ok(text.lines().filter_map(parse_node_line).collect())
}

/// `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> [slots...]`.
fn parse_node_line(line: &str) -> Option<NodeLine> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let addr = fields.get(1)?.split(['@', ',']).next()?.to_string();
    let flags = fields.get(2)?.split(',').map(str::to_string).collect();
    Some(NodeLine {
        addr,
        flags,
        has_slots: fields.len() > 8,
    })
}

/// Connects to another master with the target's credentials and expects PONG.
async fn ping(node: &RedisTarget, addr: &str, progress: &Progress) -> Result<(), Failure> {
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse().ok()?)))
        .ok_or_else(|| Failure::new(FailureKind::Protocol, "not host:port"))?;
    let mut conn = node.at(host, port).open(progress).await?;
    redis::ping(&mut conn, progress).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `CLUSTER NODES` line yields the client address, the flags and whether it owns slots.
    #[test]
    fn parses_cluster_nodes_lines() {
        let l = "07c3 127.0.0.1:30004@31004,host myself,master - 0 0 1 connected 0-5460";
        let n = parse_node_line(l).unwrap();
        assert_eq!(n.addr, "127.0.0.1:30004");
        assert!(n.has("myself") && n.has("master") && n.has_slots);
        let r = parse_node_line("e7d1 127.0.0.1:30005@31005 slave,fail 07c3 0 0 1 disconnected")
            .unwrap();
        assert!(r.has("fail") && !r.has_slots);
    }

    /// `cluster=true` and `all_masters=true` parse on redis:// and rediss://; all_masters alone
    /// is an error naming cluster=true.
    #[test]
    fn cluster_options_parse() {
        let p = |s: &str| crate::Target::parse_with(s, &|_| None).map_err(|e| e.to_string());
        assert_eq!(
            p("redis://:pw@h:7000?cluster=true&all_masters=true")
                .unwrap()
                .to_string(),
            "redis://:***@h:7000?cluster=true&all_masters=true"
        );
        assert!(p("rediss://h?cluster=true").is_ok());
        assert!(
            p("redis://h?all_masters=true")
                .unwrap_err()
                .contains("cluster=true")
        );
    }
}
