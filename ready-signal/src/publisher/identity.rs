//! Who publishes: the agent, the replica, the instance id naming this process, and the host.

use std::time::Duration;

use crate::record::check_instance;
use crate::{Error, Name};

use super::DEFAULT_TTL_INTERVALS;

/// Who is publishing, and the promises its records carry.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) agent: Name,
    pub(crate) replica: Name,
    pub(crate) instance: String,
    pub(crate) pid: u32,
    pub(crate) host: String,
    pub(crate) interval: Duration,
    pub(crate) ttl: Duration,
}

impl Identity {
    /// The identity of a single write without a heartbeat (the CLI): the interval is a third of
    /// the TTL, the TTL's default ratio.
    pub(crate) fn one_shot(
        agent: &Name,
        replica: &Name,
        instance: &str,
        ttl: Duration,
    ) -> Result<Identity, Error> {
        check_instance(instance).map_err(Error::Config)?;
        Ok(Identity {
            agent: agent.clone(),
            replica: replica.clone(),
            instance: instance.to_string(),
            pid: std::process::id(),
            host: hostname().unwrap_or_default(),
            interval: (ttl / DEFAULT_TTL_INTERVALS).max(Duration::from_millis(10)),
            ttl,
        })
    }
}

/// The replica name from `READY_SIGNAL_REPLICA`, else the host name.
pub fn default_replica() -> Result<Name, Error> {
    default_replica_from(|name| std::env::var(name).ok())
}

/// As [`default_replica`], with `READY_SIGNAL_REPLICA` looked up by `env`: the one rule that
/// publishers and observers (`replica=self`) share.
pub fn default_replica_from(env: impl Fn(&str) -> Option<String>) -> Result<Name, Error> {
    match env("READY_SIGNAL_REPLICA").filter(|r| !r.is_empty()) {
        Some(r) => Name::new(&r).map_err(|e| Error::Config(format!("READY_SIGNAL_REPLICA: {e}"))),
        None => {
            let host = hostname()
                .ok_or_else(|| Error::Config("no replica name: set READY_SIGNAL_REPLICA".into()))?;
            Name::new(&host).map_err(|e| {
                Error::Config(format!(
                    "the host name cannot be a replica name ({e}); set READY_SIGNAL_REPLICA"
                ))
            })
        }
    }
}

pub(crate) fn hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A fresh instance id: this moment in Unix milliseconds (13 digits) and 8 random lowercase hex
/// digits. The id names a process start; it orders nothing (the store's epoch does), so a
/// wrong clock on this host does no harm.
pub fn new_instance_id() -> String {
    let mut random = [0u8; 4];
    // Without randomness the start time alone still tells most starts apart.
    let _ = getrandom::fill(&mut random);
    instance_id(super::unix_ms(), u32::from_be_bytes(random))
}

/// The instance id for a process started at `start_ms` with discriminator `tag`.
pub fn instance_id(start_ms: u64, tag: u32) -> String {
    format!("{:013}-{tag:08x}", start_ms % 10_000_000_000_000)
}

pub(crate) fn unix_ms() -> u64 {
    crate::record::unix_ms()
}

/// This process and its ancestors, nearest first (from `/proc`; empty elsewhere).
pub(crate) fn ancestry() -> Vec<u32> {
    let mut chain = vec![std::process::id()];
    while chain.len() < 64 {
        let Some(&pid) = chain.last() else { break };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            break;
        };
        // Field 4 is the parent; the command name before it may hold spaces and parentheses.
        let parent = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        match parent {
            Some(parent) if parent > 0 && !chain.contains(&parent) => chain.push(parent),
            _ => break,
        }
    }
    chain
}
