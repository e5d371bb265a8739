//! The record an agent publishes, its states, and its encoding (see PROTOCOL.md).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Name};

/// The version of the record and event formats this crate writes and reads.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest reason kept, in bytes; longer reasons are cut at a character boundary.
pub const MAX_REASON_LEN: usize = 200;

/// A state an agent publishes about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Started, not ready yet.
    Starting,
    /// Ready to do its work.
    Ready,
    /// Running but not ready, with a reason.
    NotReady,
    /// Shutting down.
    Stopping,
}

impl State {
    /// The wire spelling: `starting`, `ready`, `not-ready`, `stopping`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Ready => "ready",
            State::NotReady => "not-ready",
            State::Stopping => "stopping",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;

    fn from_str(s: &str) -> Result<State, String> {
        match s {
            "starting" => Ok(State::Starting),
            "ready" => Ok(State::Ready),
            "not-ready" => Ok(State::NotReady),
            "stopping" => Ok(State::Stopping),
            other => Err(format!("unknown state `{}`", shown(other, 40))),
        }
    }
}

/// What an observer concludes about one replica: the published state, or what its absence means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Observed {
    /// Published `starting`, heartbeat fresh.
    Starting,
    /// Published `ready`, heartbeat fresh.
    Ready,
    /// Published `not-ready`, heartbeat fresh.
    NotReady,
    /// Published `stopping`.
    Stopping,
    /// The record exists but its heartbeat is late (the work loop may be stuck).
    Stale,
    /// No record: it expired or was never written.
    Dead,
    /// The store could not be read or the record is malformed; not the same as dead.
    Unknown,
}

impl Observed {
    /// The wire spelling of the state (`not-ready`, `stale`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Observed::Starting => "starting",
            Observed::Ready => "ready",
            Observed::NotReady => "not-ready",
            Observed::Stopping => "stopping",
            Observed::Stale => "stale",
            Observed::Dead => "dead",
            Observed::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<State> for Observed {
    fn from(s: State) -> Observed {
        match s {
            State::Starting => Observed::Starting,
            State::Ready => Observed::Ready,
            State::NotReady => Observed::NotReady,
            State::Stopping => Observed::Stopping,
        }
    }
}

/// One replica's record, as stored in a Redis hash or a JSON file (PROTOCOL.md, "The record").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Format version, [`PROTOCOL_VERSION`].
    pub v: u32,
    /// The agent.
    pub agent: String,
    /// The replica of the agent.
    pub replica: String,
    /// Instance id of the writing process: `{13 digits}-{8 lowercase hex}`. It names the
    /// process; it does not order processes (the epoch does).
    pub instance: String,
    /// The order of the writing instance: handed out by the store when the instance first wrote
    /// (Redis's epoch counter, or the file backend's rule); a higher epoch is a newer instance.
    /// 0 in records of writers that predate epochs.
    #[serde(default)]
    pub epoch: u64,
    /// The published state.
    pub state: State,
    /// Why (for `not-ready`); may be empty.
    pub reason: String,
    /// Process id of the instance's first writer, in its own PID namespace (kept while the
    /// instance holds the record, so a script of the instance's process tree does not change it).
    pub pid: u32,
    /// Host name of the instance's first writer (the container id under Docker).
    pub host: String,
    /// Heartbeat interval the writer promised, in milliseconds.
    pub interval_ms: u64,
    /// Time to live of the record, in milliseconds.
    pub ttl_ms: u64,
    /// When the current state was entered, in the store's clock (Unix milliseconds).
    pub since_ms: u64,
    /// When the last heartbeat was written, in the store's clock (Unix milliseconds).
    pub beat_ms: u64,
    /// Writes by this instance, starting at 1.
    pub seq: u64,
    /// The id of the container the instance's first writer runs in (64 lowercase hex digits),
    /// kept while the instance holds the record; empty outside a container, when it cannot be
    /// found, and in records of writers that predate the field (PROTOCOL.md revision 4).
    #[serde(default)]
    pub container: String,
    /// When the instance took the record, in the store's clock (Unix milliseconds): Redis's
    /// `TIME` at its first write, kept across its writes. 0 when unknown (writers that predate
    /// the field).
    #[serde(default)]
    pub started_ms: u64,
}

/// Decodes a record from the fields of a Redis hash (as returned by `HGETALL`).
///
/// Every field of PROTOCOL.md must be present and well formed; unknown fields are ignored so that
/// later minor versions can add some. A record of a newer major version is refused.
///
/// ```
/// let fields = [
///     ("v", "1"), ("agent", "worker"), ("replica", "w1"), ("instance", "1732540000000-0a1b2c3d"),
///     ("state", "ready"), ("reason", ""), ("pid", "7"), ("host", "w1"), ("interval_ms", "2000"),
///     ("ttl_ms", "6000"), ("since_ms", "1732540000100"), ("beat_ms", "1732540004100"), ("seq", "3"),
/// ];
/// let record = ready_signal::decode_record(fields).unwrap();
/// assert_eq!(record.state, ready_signal::State::Ready);
/// ```
pub fn decode_record<K, V>(fields: impl IntoIterator<Item = (K, V)>) -> Result<Record, String>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let map: HashMap<String, String> = fields
        .into_iter()
        .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string()))
        .collect();
    decode_map(&map, Guard::Epoch)
}

/// Whether the revision-4 fields of a record must prove they belong to its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// A Redis hash, which writers of older revisions update field by field: `container` and
    /// `started_ms` count only when `started_epoch` equals `epoch`.
    Epoch,
    /// A record file, always written whole.
    None,
}

fn decode_map(map: &HashMap<String, String>, guard: Guard) -> Result<Record, String> {
    let get = |k: &str| {
        map.get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("field `{k}` is missing"))
    };
    let num = |k: &str| -> Result<u64, String> {
        let raw = get(k)?;
        // Decimal digits only: `parse` alone would also take a leading `+`.
        raw.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| raw.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| format!("field `{k}` is not a whole number: `{}`", shown(raw, 40)))
    };
    let v = num("v")?;
    if v != u64::from(PROTOCOL_VERSION) {
        return Err(format!(
            "format version {v} is not {PROTOCOL_VERSION}, the one this reader knows"
        ));
    }
    // Optional: writers before revision 2 of the protocol wrote no epoch.
    let epoch = match map.get("epoch") {
        Some(_) => num("epoch")?,
        None => 0,
    };
    let agent = get("agent")?;
    let replica = get("replica")?;
    Name::new(agent).map_err(|e| format!("field `agent`: {e}"))?;
    Name::new(replica).map_err(|e| format!("field `replica`: {e}"))?;
    let instance = get("instance")?;
    check_instance(instance)?;
    let state = get("state")?
        .parse::<State>()
        .map_err(|e| format!("field `state`: {e}"))?;
    let record = Record {
        v: PROTOCOL_VERSION,
        agent: agent.to_string(),
        replica: replica.to_string(),
        instance: instance.to_string(),
        epoch,
        state,
        reason: one_line(get("reason")?, MAX_REASON_LEN),
        pid: u32::try_from(num("pid")?).map_err(|_| "field `pid` is out of range".to_string())?,
        host: one_line(get("host")?, 255),
        interval_ms: num("interval_ms")?,
        ttl_ms: num("ttl_ms")?,
        since_ms: num("since_ms")?,
        beat_ms: num("beat_ms")?,
        seq: num("seq")?,
        container: String::new(),
        started_ms: 0,
    };
    // Optional (revision 4): the instance's container and start. In a Redis hash they are the
    // record's instance's only when written under its epoch: a writer of an older revision that
    // takes the record over rewrites the fields it knows and leaves these behind.
    let started_ms = match map.get("started_ms") {
        Some(_) => num("started_ms")?,
        None => 0,
    };
    let container = map.get("container").map_or("", String::as_str);
    if !(container.is_empty() || crate::container::is_id(container)) {
        return Err(format!(
            "field `container` is not 64 lowercase hex digits: `{}`",
            shown(container, 80)
        ));
    }
    let own = match (guard, map.get("started_epoch")) {
        (Guard::None, _) => true,
        (Guard::Epoch, Some(_)) => num("started_epoch")? == record.epoch,
        (Guard::Epoch, None) => false,
    };
    let mut record = record;
    if own {
        record.container = container.to_string();
        record.started_ms = started_ms;
    }
    if record.interval_ms == 0 {
        return Err("field `interval_ms` must be positive".into());
    }
    if record.ttl_ms / 2 < record.interval_ms {
        return Err(format!(
            "field `ttl_ms` ({}) is less than 2 x `interval_ms` ({})",
            record.ttl_ms, record.interval_ms
        ));
    }
    Ok(record)
}

/// Checks the instance id format `{13 digits}-{8 lowercase hex digits}`.
pub(crate) fn check_instance(instance: &str) -> Result<(), String> {
    let bytes = instance.as_bytes();
    let ok = bytes.len() == 22
        && bytes[13] == b'-'
        && bytes[..13].iter().all(u8::is_ascii_digit)
        && bytes[14..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "field `instance` is not `{{13 digits}}-{{8 lowercase hex}}`: `{}`",
            shown(instance, 40)
        ))
    }
}

/// A reason or host as stored: control characters escaped (`\n` as the two characters `\`
/// and `n`), so a record's text stays one line in every probe verdict and log, then cut to `max`
/// bytes at a character boundary.
pub(crate) fn one_line(s: &str, max: usize) -> String {
    if !s.chars().any(char::is_control) {
        return clip(s, max);
    }
    clip(&shown(s, s.len()), max)
}

impl Record {
    /// Decodes a record file of the local-file backend (a JSON object with the same fields).
    pub fn from_json(bytes: &[u8]) -> Result<Record, String> {
        let value: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(bytes).map_err(|e| format!("not a JSON object: {e}"))?;
        let fields = value.into_iter().map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        });
        decode_map(&fields.collect(), Guard::None)
    }
}

/// Untrusted text quoted in an error: cut to `max` bytes, control characters escaped, so an
/// error stays one short line (a record or an event can hold anything; found by fuzzing).
pub(crate) fn shown(s: &str, max: usize) -> String {
    clip(s, max)
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Cuts `s` to at most `max` bytes at a character boundary.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// An event published on NATS at every transition (PROTOCOL.md, "Events").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPayload {
    /// Format version.
    pub v: u32,
    /// The agent.
    pub agent: String,
    /// The replica.
    pub replica: String,
    /// Instance id of the publisher.
    pub instance: String,
    /// The new state.
    pub state: State,
    /// Why, for `not-ready`.
    #[serde(default)]
    pub reason: String,
    /// Publisher's wall clock, Unix milliseconds (informational only).
    pub ts_ms: u64,
    /// The container the publisher runs in (64 lowercase hex digits); empty (and left out of
    /// the payload) when none, and in events of publishers that predate the field.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container: String,
}

/// The system clock in Unix milliseconds (0 before 1970).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Ready-signal errors from decoding are reported with where the record came from.
pub(crate) fn malformed(location: impl Into<String>, reason: String) -> Error {
    Error::Malformed {
        location: location.into(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Vec<(&'static str, String)> {
        [
            ("v", "1"),
            ("agent", "worker"),
            ("replica", "w1"),
            ("instance", "1732540000000-0a1b2c3d"),
            ("state", "not-ready"),
            ("reason", "warming cache"),
            ("pid", "7"),
            ("host", "w1"),
            ("interval_ms", "2000"),
            ("ttl_ms", "6000"),
            ("since_ms", "1732540000100"),
            ("beat_ms", "1732540004100"),
            ("seq", "3"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect()
    }

    #[test]
    fn decodes_the_documented_fields() {
        let r = decode_record(good()).unwrap();
        assert_eq!(r.state, State::NotReady);
        assert_eq!(r.reason, "warming cache");
        assert_eq!(r.seq, 3);
    }

    #[test]
    fn names_the_bad_field() {
        for (field, value, expect) in [
            ("v", "2", "format version 2"),
            ("state", "sleeping", "unknown state `sleeping`"),
            ("ttl_ms", "-1", "`ttl_ms` is not a whole number"),
            ("instance", "x", "field `instance`"),
            ("instance", "1732540000000-0A1B2C3D", "lowercase hex"),
            ("interval_ms", "0", "`interval_ms` must be positive"),
            ("ttl_ms", "3999", "less than 2 x `interval_ms`"),
            ("epoch", "x", "field `epoch` is not a whole number"),
            ("seq", "+3", "field `seq` is not a whole number"),
            ("agent", "a:b", "field `agent`"),
        ] {
            let mut f = good();
            f.retain(|(k, _)| *k != field);
            f.push((field, value.to_string()));
            let err = decode_record(f).unwrap_err();
            assert!(err.contains(expect), "{field}={value}: {err}");
        }
        let mut f = good();
        f.retain(|(k, _)| *k != "beat_ms");
        assert_eq!(decode_record(f).unwrap_err(), "field `beat_ms` is missing");
    }

    #[test]
    fn json_files_round_trip() {
        let r = decode_record(good()).unwrap();
        let json = serde_json::to_vec(&r).unwrap();
        assert_eq!(Record::from_json(&json).unwrap(), r);
        assert!(
            Record::from_json(b"[1]")
                .unwrap_err()
                .contains("not a JSON object")
        );
    }

    #[test]
    fn reasons_and_hosts_are_one_line() {
        let mut f = good();
        f.retain(|(k, _)| *k != "reason");
        f.push(("reason", "line one\nline\ttwo\r".to_string()));
        let r = decode_record(f).unwrap();
        assert_eq!(r.reason, "line one\\nline\\ttwo\\r");
        assert_eq!(r.epoch, 0, "a record without an epoch reads as epoch 0");
        assert_eq!(one_line("plain", 3), "pla");
    }

    /// Revision 4: `container` and `started_ms` are read when written under the record's epoch
    /// (`started_epoch`), ignored when left behind by an earlier instance or without it, and a
    /// container that is not a full id makes the record malformed.
    #[test]
    fn identity_fields_belong_to_the_records_epoch() {
        let id = "ab".repeat(32);
        let with = |extra: &[(&'static str, &str)]| {
            let mut f = good();
            f.push(("epoch", "41".into()));
            f.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
            decode_record(f)
        };
        let own = with(&[
            ("container", &id),
            ("started_ms", "1732540000000"),
            ("started_epoch", "41"),
        ])
        .unwrap();
        assert_eq!(
            (own.container.as_str(), own.started_ms),
            (id.as_str(), 1_732_540_000_000)
        );
        for left_behind in [
            with(&[
                ("container", &id),
                ("started_ms", "1732540000000"),
                ("started_epoch", "40"),
            ]),
            with(&[("container", &id), ("started_ms", "1732540000000")]),
        ] {
            let r = left_behind.unwrap();
            assert_eq!((r.container.as_str(), r.started_ms), ("", 0));
        }
        let old = with(&[]).unwrap();
        assert_eq!((old.container.as_str(), old.started_ms), ("", 0));
        for bad in ["3f4e8a1b2c3d", &id.to_uppercase(), "x"] {
            let err = with(&[("container", bad), ("started_epoch", "41")]).unwrap_err();
            assert!(err.contains("field `container`"), "{bad}: {err}");
        }
        let err = with(&[("started_ms", "-1"), ("started_epoch", "41")]).unwrap_err();
        assert!(err.contains("field `started_ms`"), "{err}");
        // A record file is written whole: its fields need no epoch to be its own.
        let json = format!(
            r#"{{"v":1,"agent":"a","replica":"r","instance":"1732540000000-0a1b2c3d","state":"ready",
            "reason":"","pid":7,"host":"h","interval_ms":100,"ttl_ms":300,"since_ms":5,"beat_ms":9,
            "seq":1,"container":"{id}","started_ms":4}}"#
        );
        let file = Record::from_json(json.as_bytes()).unwrap();
        assert_eq!((file.container.as_str(), file.started_ms), (id.as_str(), 4));
    }

    #[test]
    fn clips_at_char_boundaries() {
        assert_eq!(clip("ééé", 3), "é");
        assert_eq!(clip("abc", 10), "abc");
    }
}
