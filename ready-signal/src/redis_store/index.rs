//! Reads for the due index (PROTOCOL.md revision 5, "The due index"), one result per key so
//! that a Cluster node that fails costs only the keys it holds: the clock of each index's node
//! (a cursor), the entries of an index whose deadline passed after a cursor, the live members
//! of listings, and records with their due entry.

use redis::Value;

use super::cluster::Answer;
use super::{RedisReader, Snapshot};
use crate::Error;

/// How many entries one query of a due index returns at most; a page full of passed deadlines
/// is followed by the next page.
const PAGE: usize = 256;

/// What one query of a due index found: the entries (`agent:replica`) whose deadline passed
/// after the cursor, oldest first, the node's clock (the next cursor), and the earliest
/// deadline still ahead, if any (Unix ms by that node's clock).
#[derive(Debug, Default)]
pub(crate) struct Passed {
    pub(crate) members: Vec<Vec<u8>>,
    pub(crate) now_ms: u64,
    pub(crate) next_ms: Option<u64>,
}

impl RedisReader {
    /// Runs `cmds(key)` for every key with the `TIME` of the server that holds it; one result
    /// per key (on one server, its failure is every key's).
    pub(crate) async fn batch_each(
        &self,
        keys: &[String],
        cmds: &(dyn Fn(&str) -> Vec<redis::Cmd> + Sync),
    ) -> Vec<Result<Answer, Error>> {
        match self {
            RedisReader::Cluster(c) => c.batch_each(keys, cmds).await,
            _ => match self.batch(keys, cmds).await {
                Ok(answers) => answers.into_iter().map(Ok).collect(),
                Err(e) => keys.iter().map(|_| Err(e.copy())).collect(),
            },
        }
    }

    /// The clock (`TIME`, Unix ms) of the server that holds each key.
    pub(crate) async fn clocks(&self, keys: &[String]) -> Vec<Result<u64, Error>> {
        self.batch_each(keys, &|_| Vec::new())
            .await
            .into_iter()
            .map(|a| a.map(|(_, now_ms)| now_ms))
            .collect()
    }

    /// For each due index `keys[i]`, the entries whose deadline is after `after[i]` and not
    /// after the node's clock: those that turned late since the cursor. Pages through a burst.
    pub(crate) async fn passed(
        &self,
        keys: &[String],
        after: &[u64],
    ) -> Vec<Result<Passed, Error>> {
        let mut out: Vec<Result<Passed, Error>> =
            keys.iter().map(|_| Ok(Passed::default())).collect();
        let mut offsets = vec![0usize; keys.len()];
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        while !pending.is_empty() {
            let ask: Vec<String> = pending.iter().map(|&i| keys[i].clone()).collect();
            let answers = {
                let lows: Vec<(u64, usize)> =
                    pending.iter().map(|&i| (after[i], offsets[i])).collect();
                let position = |key: &str| ask.iter().position(|k| k == key).unwrap_or(0);
                self.batch_each(&ask, &|key| {
                    let (low, offset) = lows[position(key)];
                    let mut cmd = redis::cmd("ZRANGEBYSCORE");
                    cmd.arg(key)
                        .arg(format!("({low}"))
                        .arg("+inf")
                        .arg("WITHSCORES")
                        .arg("LIMIT")
                        .arg(offset)
                        .arg(PAGE);
                    vec![cmd]
                })
                .await
            };
            let mut again = Vec::new();
            for (&i, answer) in pending.iter().zip(answers) {
                let (values, now_ms) = match answer {
                    Ok(a) => a,
                    Err(e) => {
                        out[i] = Err(e);
                        continue;
                    }
                };
                let scored: Vec<(Vec<u8>, f64)> = match values.first() {
                    Some(v) => match redis::from_redis_value_ref(v) {
                        Ok(s) => s,
                        Err(e) => {
                            out[i] = Err(unexpected(self.addr(), &keys[i], &e));
                            continue;
                        }
                    },
                    None => Vec::new(),
                };
                let full = scored.len() == PAGE;
                let Ok(found) = &mut out[i] else { continue };
                found.now_ms = now_ms;
                let mut ahead = false;
                for (member, score) in scored {
                    if score <= now_ms as f64 {
                        found.members.push(member);
                    } else {
                        found.next_ms = Some(score as u64);
                        ahead = true;
                        break;
                    }
                }
                if full && !ahead {
                    offsets[i] += PAGE;
                    again.push(i);
                }
            }
            pending = again;
        }
        out
    }

    /// The live members of several sorted sets (see [`RedisReader::members`]), one result
    /// per set.
    pub(crate) async fn members_each(&self, keys: &[String]) -> Vec<Result<Vec<String>, Error>> {
        let answers = self
            .batch_each(keys, &|key| {
                let mut zrange = redis::cmd("ZRANGE");
                zrange.arg(key).arg(0).arg(-1).arg("WITHSCORES");
                vec![zrange]
            })
            .await;
        keys.iter()
            .zip(answers)
            .map(|(key, answer)| {
                let (values, now_ms) = answer?;
                let scored: Vec<(Vec<u8>, f64)> = match values.first() {
                    Some(v) => redis::from_redis_value_ref(v)
                        .map_err(|e| unexpected(self.addr(), key, &e))?,
                    None => Vec::new(),
                };
                let now = now_ms as f64;
                Ok(scored
                    .into_iter()
                    .filter(|(_, expiry)| *expiry > now)
                    .map(|(name, _)| String::from_utf8_lossy(&name).into_owned())
                    .collect())
            })
            .collect()
    }

    /// Reads records (`HGETALL`, `PTTL`) with their entry in a due index (`ZSCORE`): for each,
    /// `(record key, due index key, member)`. One result per record.
    pub(crate) async fn read_with_due(
        &self,
        wanted: &[(String, String, String)],
    ) -> Vec<Result<(Snapshot, Option<u64>), Error>> {
        let keys: Vec<String> = wanted.iter().map(|(k, _, _)| k.clone()).collect();
        let by_key: std::collections::HashMap<&str, (&str, &str)> = wanted
            .iter()
            .map(|(k, due, member)| (k.as_str(), (due.as_str(), member.as_str())))
            .collect();
        let due_of = |key: &str| by_key.get(key).copied().unwrap_or_default();
        let answers = self
            .batch_each(&keys, &|key| {
                let mut hgetall = redis::cmd("HGETALL");
                hgetall.arg(key);
                let mut pttl = redis::cmd("PTTL");
                pttl.arg(key);
                let (due, member) = due_of(key);
                let mut zscore = redis::cmd("ZSCORE");
                zscore.arg(due).arg(member);
                vec![hgetall, pttl, zscore]
            })
            .await;
        keys.iter()
            .zip(answers)
            .map(|(key, answer)| {
                let (values, now_ms) = answer?;
                let bad = |why: String| unexpected(self.addr(), key, &why);
                let [fields, pttl, score] = values.as_slice() else {
                    return Err(bad("short pipeline reply".into()));
                };
                let fields: Vec<(Vec<u8>, Vec<u8>)> =
                    redis::from_redis_value_ref(fields).map_err(|e| bad(e.to_string()))?;
                let pttl: i64 =
                    redis::from_redis_value_ref(pttl).map_err(|e| bad(e.to_string()))?;
                let due = match score {
                    Value::Nil => None,
                    v => {
                        let s: f64 =
                            redis::from_redis_value_ref(v).map_err(|e| bad(e.to_string()))?;
                        Some(s as u64)
                    }
                };
                Ok((Snapshot::new(key, fields, pttl, now_ms), due))
            })
            .collect()
    }
}

/// A reply of the wrong shape, named by the key it was for.
fn unexpected(addr: &str, key: &str, e: &dyn std::fmt::Display) -> Error {
    Error::Redis {
        addr: addr.to_string(),
        message: format!("unexpected reply for {key}: {e}"),
        source: None,
    }
}
