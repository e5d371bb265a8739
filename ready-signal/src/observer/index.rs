//! Watching a namespace by its due index (PROTOCOL.md revision 5, "The due index"): one full
//! read per part at start and on resync, then only the replicas whose deadline passed since the
//! last query, and those the caller asks for (replicas the index does not cover). Work follows
//! what changes, not how many replicas there are.
//!
//! A namespace has one part in layout 1 and one per shard (64) in layout 2. Every read answers
//! part by part: a Cluster master that fails costs only the parts whose slots it holds.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Observer, ReplicaStatus};
use crate::redis_store::RedisReader;
use crate::redis_store::keys::Keys;
use crate::{Error, Layout, Name, Observed};

/// Records read per pipeline in a full read (see `read_into`).
const READ_CHUNK: usize = 1_000;

/// Where each part's index was last queried: the clock of its node, in Unix ms. A part with no
/// cursor needs a full read before its index can be trusted.
#[derive(Debug, Clone)]
pub struct DueCursor {
    at: Vec<Option<u64>>,
}

impl DueCursor {
    /// The parts that need a full read (every part of a new cursor).
    pub fn unread(&self) -> Vec<usize> {
        (0..self.at.len())
            .filter(|&p| self.at[p].is_none())
            .collect()
    }

    /// Forgets every part: the next read must be a full one (a resync).
    pub fn reset(&mut self) {
        self.at.iter_mut().for_each(|a| *a = None);
    }
}

/// One replica as an index watch read it.
#[derive(Debug, Clone)]
pub struct WatchedReplica {
    /// What its record says now.
    pub status: ReplicaStatus,
    /// Whether its entry in the due index is ahead of the store's clock: the index will name
    /// it when its beat is late, so it need not be read until then. False for a record of a
    /// writer before revision 5, for a replica that is already late, and for one that is
    /// stopping (its removal leaves the index): read those again.
    pub indexed: bool,
    /// When its entry's deadline comes, from the read, when it is indexed: the reader need not
    /// ask the index before then on its account.
    pub due_in: Option<Duration>,
}

/// A part of the namespace that could not be read, and why.
#[derive(Debug)]
pub struct PartFailure {
    /// The part (0 in layout 1; the shard in layout 2).
    pub part: usize,
    /// Why.
    pub error: Error,
}

/// What one read of an index watch found.
#[derive(Debug, Default)]
pub struct IndexRead {
    /// The replicas read.
    pub replicas: Vec<WatchedReplica>,
    /// The parts read in full (their replicas not listed are gone); empty for a late read.
    pub complete: Vec<usize>,
    /// The parts that failed; their cursors are forgotten, so they are read in full next time.
    pub failed: Vec<PartFailure>,
    /// Time until the earliest deadline still ahead in the indexes queried, if any.
    pub next_in: Option<Duration>,
}

impl IndexRead {
    fn fail(&mut self, cursor: &mut DueCursor, part: usize, error: Error) {
        cursor.at[part] = None;
        if !self.failed.iter().any(|f| f.part == part) {
            self.failed.push(PartFailure { part, error });
        }
    }
}

impl Observer {
    /// How many parts the namespace is watched in: 1 in layout 1, 64 in layout 2.
    pub fn parts(&self) -> usize {
        self.store.keys().due_indexes().len()
    }

    /// The part that holds `agent`'s replicas.
    pub fn part_of(&self, agent: &Name) -> usize {
        match self.store.keys().layout() {
            Layout::Cluster => usize::from(crate::shard(agent)),
            _ => 0,
        }
    }

    /// A cursor with every part unread.
    pub fn due_cursor(&self) -> DueCursor {
        DueCursor {
            at: vec![None; self.parts()],
        }
    }

    fn indexed_reader(&self) -> Result<&RedisReader, Error> {
        match &self.redis {
            Some(Ok(conn)) => Ok(conn),
            Some(Err(e)) => Err(e.copy()),
            None => Err(Error::Config(
                "the due index needs a redis store (READY_SIGNAL_REDIS_URL)".into(),
            )),
        }
    }

    /// A full read of `parts`: every live replica they list. Each part's cursor is set first,
    /// so a deadline that passes during the read is named by the next [`Observer::read_late`].
    /// Fails as a whole only when Redis is not configured or was never reached.
    pub async fn read_parts(
        &self,
        cursor: &mut DueCursor,
        parts: &[usize],
    ) -> Result<IndexRead, Error> {
        self.budget.refill();
        let conn = self.indexed_reader()?;
        let keys = self.store.keys();
        let dues = keys.due_indexes();
        let lists = keys.agent_indexes();
        let mut out = IndexRead::default();
        let parts: Vec<usize> = parts.iter().copied().filter(|&p| p < dues.len()).collect();
        let clock_keys: Vec<String> = parts.iter().map(|&p| dues[p].clone()).collect();
        let mut ok_parts = Vec::new();
        for (&p, clock) in parts.iter().zip(conn.clocks(&clock_keys).await) {
            match clock {
                Ok(now) => {
                    cursor.at[p] = Some(now);
                    ok_parts.push(p);
                }
                Err(e) => out.fail(cursor, p, e),
            }
        }
        let list_keys: Vec<String> = ok_parts.iter().map(|&p| lists[p].clone()).collect();
        let mut agents = Vec::new();
        for (&p, listed) in ok_parts.iter().zip(conn.members_each(&list_keys).await) {
            match listed {
                Ok(names) => agents.extend(names.iter().filter_map(|a| Name::new(a).ok())),
                Err(e) => out.fail(cursor, p, e),
            }
        }
        let replica_keys: Vec<String> = agents.iter().map(|a| keys.replicas(a)).collect();
        let mut pairs = Vec::new();
        for (agent, listed) in agents.iter().zip(conn.members_each(&replica_keys).await) {
            match listed {
                Ok(names) => pairs.extend(
                    names
                        .iter()
                        .filter_map(|n| Name::new(n).ok())
                        .map(|r| (agent.clone(), r)),
                ),
                Err(e) => out.fail(cursor, self.part_of(agent), e),
            }
        }
        self.read_into(conn, cursor, pairs, &mut out).await;
        out.complete = ok_parts
            .into_iter()
            .filter(|p| !out.failed.iter().any(|f| f.part == *p))
            .collect();
        let failed: Vec<usize> = out.failed.iter().map(|f| f.part).collect();
        out.replicas
            .retain(|r| !failed.contains(&self.part_of(&r.status.agent)));
        Ok(out)
    }

    /// The replicas whose deadline passed since the last query of their part's index, and
    /// `also` (replicas the index does not cover, or that are late already), read. Parts
    /// without a cursor are skipped (read them with [`Observer::read_parts`]).
    pub async fn read_late(
        &self,
        cursor: &mut DueCursor,
        also: &[(Name, Name)],
    ) -> Result<IndexRead, Error> {
        self.budget.refill();
        let conn = self.indexed_reader()?;
        let dues = self.store.keys().due_indexes();
        let mut out = IndexRead::default();
        let parts: Vec<usize> = (0..dues.len())
            .filter(|&p| cursor.at[p].is_some())
            .collect();
        let keys: Vec<String> = parts.iter().map(|&p| dues[p].clone()).collect();
        let after: Vec<u64> = parts.iter().map(|&p| cursor.at[p].unwrap_or(0)).collect();
        let mut wanted: BTreeMap<(Name, Name), ()> = BTreeMap::new();
        for (&p, passed) in parts.iter().zip(conn.passed(&keys, &after).await) {
            match passed {
                Ok(found) => {
                    cursor.at[p] = Some(found.now_ms);
                    for member in found.members {
                        if let Some(pair) = split_member(&member) {
                            wanted.insert(pair, ());
                        }
                    }
                    if let Some(next) = found.next_ms {
                        let next_in = Duration::from_millis(next.saturating_sub(found.now_ms));
                        out.next_in = Some(out.next_in.map_or(next_in, |n| n.min(next_in)));
                    }
                }
                Err(e) => out.fail(cursor, p, e),
            }
        }
        for pair in also {
            if cursor.at[self.part_of(&pair.0)].is_some() {
                wanted.insert(pair.clone(), ());
            }
        }
        self.read_into(conn, cursor, wanted.into_keys().collect(), &mut out)
            .await;
        let failed: Vec<usize> = out.failed.iter().map(|f| f.part).collect();
        out.replicas
            .retain(|r| !failed.contains(&self.part_of(&r.status.agent)));
        Ok(out)
    }

    /// Reads the records of `pairs` with their due entries into `out`.
    async fn read_into(
        &self,
        conn: &RedisReader,
        cursor: &mut DueCursor,
        pairs: Vec<(Name, Name)>,
        out: &mut IndexRead,
    ) {
        let keys = self.store.keys();
        // A chunk at a time, each turned into statuses before the next is asked: what a full
        // read holds at once is one chunk's raw replies, not every record's (at 10,000 agents
        // the whole pipeline's replies were most of the sidecar's peak memory).
        for chunk in pairs.chunks(READ_CHUNK) {
            self.read_chunk(conn, cursor, &keys, chunk, out).await;
        }
    }

    async fn read_chunk(
        &self,
        conn: &RedisReader,
        cursor: &mut DueCursor,
        keys: &Keys,
        pairs: &[(Name, Name)],
        out: &mut IndexRead,
    ) {
        let wanted: Vec<(String, String, String)> = pairs
            .iter()
            .map(|(a, r)| (keys.record(a, r), keys.due(a), format!("{a}:{r}")))
            .collect();
        for ((agent, replica), read) in pairs.iter().zip(conn.read_with_due(&wanted).await) {
            match read {
                Ok((snap, due)) => {
                    let now = snap.now_ms;
                    let status = ReplicaStatus::from_snapshot(agent, replica, snap);
                    let indexed = due.is_some_and(|d| d > now)
                        && !matches!(
                            status.state,
                            Observed::Dead | Observed::Unknown | Observed::Stopping
                        );
                    let due_in = due
                        .filter(|_| indexed)
                        .map(|d| Duration::from_millis(d.saturating_sub(now)));
                    out.replicas.push(WatchedReplica {
                        status,
                        indexed,
                        due_in,
                    });
                }
                Err(e) => {
                    let e = self.over_bound(e, "the records of the due index");
                    out.fail(cursor, self.part_of(agent), e);
                }
            }
        }
    }
}

/// `agent:replica`, the member of a due index, as names; `None` for anything else (a foreign
/// writer's member is skipped, never fatal).
fn split_member(member: &[u8]) -> Option<(Name, Name)> {
    let text = std::str::from_utf8(member).ok()?;
    let (agent, replica) = text.split_once(':')?;
    Some((Name::new(agent).ok()?, Name::new(replica).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member names its agent and replica; anything else is skipped.
    #[test]
    fn members_split_into_names() {
        let (a, r) = split_member(b"worker:w-1").unwrap_or_else(|| panic!("valid member"));
        assert_eq!((a.as_str(), r.as_str()), ("worker", "w-1"));
        assert!(split_member(b"worker").is_none());
        assert!(split_member(b"wor ker:w1").is_none());
        assert!(split_member(b"w:x:y").is_none());
        assert!(split_member(b"\xff:w1").is_none());
    }
}
