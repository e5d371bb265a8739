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
//! name is checked; and because a demoted master that stays up does the same for up to ten
//! seconds, the Sentinel is asked again alongside every later command ([`Followed`]).

use std::sync::Mutex;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::RedisConnectionInfo;

use super::node::{Budget, NodeConn, redis_error};
use crate::error::Error;
use crate::stores::Sentinels;

/// A master found through the Sentinels, and a connection to the Sentinel that named it, kept
/// to ask at every use whether it still does.
///
/// A master demoted while it stays up (`SENTINEL FAILOVER`, or a partition that heals) keeps
/// saying `role:master` and accepting writes until the Sentinels reconfigure it, up to about ten
/// seconds later (their `INFO` period); writes meanwhile land where no reader looks. Asking the
/// Sentinel alongside each command (at once, so it costs no latency) turns that window into
/// one call.
pub(crate) struct Followed {
    pub(crate) master: NodeConn,
    /// The master's `host:port` as the Sentinels name it.
    named: String,
    sentinel: Mutex<Option<NodeConn>>,
    sentinels: Sentinels,
    timeout: Duration,
    budget: Budget,
}

impl std::fmt::Debug for Followed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Followed")
            .field("master", &self.master.addr)
            .finish()
    }
}

impl Followed {
    /// Ok when the Sentinel still names this master, or cannot be asked (it is asked again
    /// next time; the master's own errors still tell); an error when it names another one.
    pub(crate) async fn still_master(&self) -> Result<(), Error> {
        let kept = self.lock().clone();
        let sentinel = match kept {
            Some(conn) => Some(conn),
            None => self.any_sentinel().await,
        };
        let Some(mut conn) = sentinel else {
            return Ok(());
        };
        // Half the time the command has: a Sentinel that hangs must not make a write that
        // succeeded look timed out.
        let within = self.timeout / 2;
        match tokio::time::timeout(within, get_master(&mut conn, &self.sentinels.master)).await {
            Ok(Ok(Some(addr))) if addr != self.named => {
                *self.lock() = Some(conn);
                Err(Error::Redis {
                    addr: self.master.addr.clone(),
                    message: format!("the sentinels now name {addr} as the master"),
                    source: None,
                })
            }
            Ok(Ok(_)) => {
                *self.lock() = Some(conn);
                Ok(())
            }
            _ => {
                *self.lock() = None;
                Ok(())
            }
        }
    }

    /// A connection to the first Sentinel that accepts one.
    async fn any_sentinel(&self) -> Option<NodeConn> {
        let auth = sentinel_auth(&self.sentinels);
        let auth = &auth;
        let mut opening: FuturesUnordered<_> = self
            .sentinels
            .addrs
            .iter()
            .map(|s| NodeConn::open(s, auth, self.timeout, &self.budget))
            .collect();
        let first = async {
            while let Some(opened) = opening.next().await {
                if let Ok(conn) = opened {
                    return Some(conn);
                }
            }
            None
        };
        tokio::time::timeout(self.timeout / 2, first)
            .await
            .ok()
            .flatten()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<NodeConn>> {
        self.sentinel.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn sentinel_auth(sentinels: &Sentinels) -> RedisConnectionInfo {
    let auth = RedisConnectionInfo::default().set_skip_set_lib_name();
    match &sentinels.password {
        Some(p) => auth.set_password(p),
        None => auth,
    }
}

/// Connects to the master the Sentinels name, checked with `ROLE`, within `timeout` in all.
/// `store` names the store in the error when no master is found.
pub(crate) async fn master(
    sentinels: &Sentinels,
    data: &RedisConnectionInfo,
    store: &str,
    timeout: Duration,
    budget: &Budget,
) -> Result<Followed, Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let name = &sentinels.master;
    let auth = sentinel_auth(sentinels);
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
            Ok(Some((addr, _))) if tried.contains(&addr) => {}
            Ok(Some((addr, sentinel_conn))) => {
                tried.push(addr.clone());
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match checked_master(&addr, name, data, left, budget).await {
                    Ok(master) => {
                        return Ok(Followed {
                            master,
                            named: addr,
                            sentinel: Mutex::new(Some(sentinel_conn)),
                            sentinels: sentinels.clone(),
                            timeout,
                            budget: budget.clone(),
                        });
                    }
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
        source: None,
    })
}

/// Asks one Sentinel for the master's `host:port`, with the connection to that Sentinel;
/// `None` when it monitors no such master.
async fn ask(
    sentinel: &str,
    name: &str,
    auth: &RedisConnectionInfo,
    timeout: Duration,
    budget: &Budget,
) -> Result<Option<(String, NodeConn)>, Error> {
    let mut conn = NodeConn::open(sentinel, auth, timeout, budget).await?;
    Ok(get_master(&mut conn, name).await?.map(|addr| (addr, conn)))
}

/// `SENTINEL get-master-addr-by-name`: the master's `host:port`, `None` when the Sentinel
/// monitors no such master.
async fn get_master(conn: &mut NodeConn, name: &str) -> Result<Option<String>, Error> {
    let sentinel = conn.addr.clone();
    let reply: redis::Value = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(name)
        .query_async(&mut conn.conn)
        .await
        .map_err(|e| redis_error(&sentinel, &e))?;
    match reply {
        redis::Value::Nil => Ok(None),
        redis::Value::Array(items) if items.len() == 2 => {
            let (host, port): (String, u16) = redis::from_redis_value(redis::Value::Array(items))
                .map_err(|_| unexpected(&sentinel))?;
            Ok(Some(if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }))
        }
        _ => Err(unexpected(&sentinel)),
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
            source: None,
        });
    }
    conn.addr = format!("{addr} (master {name})");
    Ok(conn)
}

fn unexpected(sentinel: &str) -> Error {
    Error::Redis {
        addr: sentinel.to_string(),
        message: "unexpected reply to SENTINEL get-master-addr-by-name (not a Sentinel?)".into(),
        source: None,
    }
}

/// An error's message without the address (the caller names it).
fn short(e: &Error) -> String {
    match e {
        Error::Redis { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
