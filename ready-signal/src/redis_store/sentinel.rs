//! The master that Redis Sentinel names, found as its client spec says: ask the Sentinels for the
//! master's address, connect, and check that the server says `ROLE` master itself.
//!
//! A writer calls this at every (re)connection, and the publisher drops its connection at any
//! error (a connection lost with a killed master, `READONLY` from a demoted one), so a writer
//! follows a failover at its next heartbeat. The Sentinels are asked all at once rather than in
//! turn, and the first address that answers as master wins: a Sentinel that hangs costs nothing,
//! and a Sentinel that still names a dead master (it has not seen the failover yet) is passed
//! over for the next answer. A restarted old master claims `role:master` for a few seconds before
//! the Sentinels demote it, which is why the Sentinels are asked first and only the master they
//! name is checked.

use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::RedisConnectionInfo;

use super::node::{Budget, NodeConn};
use super::redis_error;
use crate::Error;

/// Where to find a master through Sentinels.
#[derive(Clone)]
pub(crate) struct Sentinels {
    /// Every Sentinel's `host:port`, as listed.
    pub(crate) addrs: Vec<String>,
    /// The master's name in the Sentinels' configuration.
    pub(crate) master: String,
    /// The Sentinels' own password (`requirepass` of the Sentinels), when they have one.
    pub(crate) password: Option<String>,
}

/// Connects to the master the Sentinels name, checked with `ROLE`, within `timeout` in all.
/// `store` names the store in the error when no master is found.
pub(crate) async fn master(
    sentinels: &Sentinels,
    data: &RedisConnectionInfo,
    store: &str,
    timeout: Duration,
    budget: &Budget,
) -> Result<NodeConn, Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let name = &sentinels.master;
    let mut auth = RedisConnectionInfo::default().set_skip_set_lib_name();
    if let Some(p) = &sentinels.password {
        auth = auth.set_password(p);
    }
    let auth = &auth;
    let mut asking: FuturesUnordered<_> = sentinels
        .addrs
        .iter()
        .map(|s| async move { (s, ask(s, name, auth, timeout, budget).await) })
        .collect();
    let mut tried: Vec<String> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut knows_none = 0;
    loop {
        let (sentinel, answer) = match tokio::time::timeout_at(deadline, asking.next()).await {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(_) => {
                problems.push(format!(
                    "no answer within {}ms from the others",
                    timeout.as_millis()
                ));
                break;
            }
        };
        match answer {
            Ok(None) => {
                knows_none += 1;
                problems.push(format!(
                    "sentinel {sentinel} monitors no master named `{name}`"
                ));
            }
            Err(e) => problems.push(format!("sentinel {sentinel}: {}", short(&e))),
            Ok(Some(addr)) if tried.contains(&addr) => {}
            Ok(Some(addr)) => {
                tried.push(addr.clone());
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match checked_master(&addr, name, data, left, budget).await {
                    Ok(conn) => return Ok(conn),
                    Err(e) => problems.push(format!(
                        "master {addr} named by sentinel {sentinel}: {}",
                        short(&e)
                    )),
                }
            }
        }
    }
    let message = if knows_none == sentinels.addrs.len() {
        format!("no sentinel monitors a master named `{name}` (check the name after the hosts)")
    } else {
        let mut m = format!("no master `{name}` found: {}", problems.join("; "));
        if m.len() > 900 {
            let mut cut = 900;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
            m.push_str("...");
        }
        m
    };
    Err(Error::Redis {
        addr: store.to_string(),
        message,
    })
}

/// Asks one Sentinel for the master's `host:port`; `None` when it monitors no such master.
async fn ask(
    sentinel: &str,
    name: &str,
    auth: &RedisConnectionInfo,
    timeout: Duration,
    budget: &Budget,
) -> Result<Option<String>, Error> {
    let mut conn = NodeConn::open(sentinel, auth, timeout, budget).await?;
    let reply: redis::Value = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(name)
        .query_async(&mut conn.conn)
        .await
        .map_err(|e| redis_error(sentinel, &e))?;
    match reply {
        redis::Value::Nil => Ok(None),
        redis::Value::Array(items) if items.len() == 2 => {
            let (host, port): (String, u16) = redis::from_redis_value(redis::Value::Array(items))
                .map_err(|_| unexpected(sentinel))?;
            Ok(Some(if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }))
        }
        _ => Err(unexpected(sentinel)),
    }
}

/// Connects to `addr` and checks that it says it is a master.
async fn checked_master(
    addr: &str,
    name: &str,
    data: &RedisConnectionInfo,
    timeout: Duration,
    budget: &Budget,
) -> Result<NodeConn, Error> {
    let mut conn = NodeConn::open(addr, data, timeout, budget).await?;
    let role = conn.role().await?;
    if role != "master" {
        let role = if role == "slave" {
            "replica"
        } else {
            "not master"
        };
        return Err(Error::Redis {
            addr: addr.to_string(),
            message: format!("says it is a {role} (failover in progress?)"),
        });
    }
    conn.addr = format!("{addr} (master {name})");
    Ok(conn)
}

fn unexpected(sentinel: &str) -> Error {
    Error::Redis {
        addr: sentinel.to_string(),
        message: "unexpected reply to SENTINEL get-master-addr-by-name (not a Sentinel?)".into(),
    }
}

/// An error's message without the address (the caller names it).
fn short(e: &Error) -> String {
    match e {
        Error::Redis { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
