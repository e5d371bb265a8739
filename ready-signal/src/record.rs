//! The record an agent publishes, its states, and its encoding (see PROTOCOL.md).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::escape::{escape_bytes, one_line, shown};
use crate::{DecodeError, DecodeErrorKind, Error, Name};

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
    type Err = DecodeError;

    fn from_str(s: &str) -> Result<State, DecodeError> {
        match s {
            "starting" => Ok(State::Starting),
            "ready" => Ok(State::Ready),
            "not-ready" => Ok(State::NotReady),
            "stopping" => Ok(State::Stopping),
            other => Err(DecodeError::invalid(
                "state",
                format!("field `state`: unknown state `{}`", shown(other, 40)),
            )),
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

/// The fields a record's numbers are in (a file must give them as JSON numbers).
const NUMBER_FIELDS: [&str; 10] = [
    "v",
    "epoch",
    "pid",
    "interval_ms",
    "ttl_ms",
    "since_ms",
    "beat_ms",
    "seq",
    "started_ms",
    "started_epoch",
];

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
pub fn decode_record<K, V>(fields: impl IntoIterator<Item = (K, V)>) -> Result<Record, DecodeError>
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

/// Decodes a record from the raw fields of a Redis hash, whose values may be any bytes: text
/// that is not UTF-8 is escaped (PROTOCOL.md, "States"), never a reason to refuse the record.
pub(crate) fn decode_raw(fields: &[(Vec<u8>, Vec<u8>)]) -> Result<Record, DecodeError> {
    let map: HashMap<String, String> = fields
        .iter()
        .map(|(k, v)| (escape_bytes(k, usize::MAX), escape_bytes(v, usize::MAX)))
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

fn decode_map(map: &HashMap<String, String>, guard: Guard) -> Result<Record, DecodeError> {
    let get = |k: &str| {
        map.get(k).map(String::as_str).ok_or_else(|| {
            DecodeError::new(
                DecodeErrorKind::Missing,
                Some(k),
                format!("field `{k}` is missing"),
            )
        })
    };
    let num = |k: &str| -> Result<u64, DecodeError> {
        let raw = get(k)?;
        let bad = || {
            DecodeError::invalid(
                k,
                format!("field `{k}` is not a whole number: `{}`", shown(raw, 40)),
            )
        };
        // Decimal digits only: `parse` alone would also take a leading `+`.
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        raw.parse::<u64>().map_err(|e| bad().with_source(e))
    };
    let v = num("v")?;
    if v != u64::from(PROTOCOL_VERSION) {
        return Err(DecodeError::new(
            DecodeErrorKind::Version,
            Some("v"),
            format!("format version {v} is not {PROTOCOL_VERSION}, the one this reader knows"),
        ));
    }
    // Optional: writers before revision 2 of the protocol wrote no epoch.
    let epoch = match map.get("epoch") {
        Some(_) => num("epoch")?,
        None => 0,
    };
    let agent = get("agent")?;
    let replica = get("replica")?;
    for (field, value) in [("agent", agent), ("replica", replica)] {
        Name::new(value).map_err(|e| {
            DecodeError::invalid(field, format!("field `{field}`: {e}")).with_source(e)
        })?;
    }
    let instance = get("instance")?;
    check_instance(instance).map_err(|m| DecodeError::invalid("instance", m))?;
    let state = get("state")?.parse::<State>()?;
    let pid = num("pid")?;
    let pid = u32::try_from(pid).map_err(|e| {
        DecodeError::invalid("pid", format!("field `pid` is out of range: {pid}")).with_source(e)
    })?;
    let mut record = Record {
        v: PROTOCOL_VERSION,
        agent: agent.to_string(),
        replica: replica.to_string(),
        instance: instance.to_string(),
        epoch,
        state,
        reason: one_line(get("reason")?, MAX_REASON_LEN),
        pid,
        host: one_line(get("host")?, 255),
        interval_ms: num("interval_ms")?,
        ttl_ms: num("ttl_ms")?,
        since_ms: num("since_ms")?,
        beat_ms: num("beat_ms")?,
        seq: num("seq")?,
        container: String::new(),
        started_ms: 0,
    };
    if record.interval_ms == 0 {
        return Err(DecodeError::invalid(
            "interval_ms",
            "field `interval_ms` must be positive".into(),
        ));
    }
    if record.ttl_ms / 2 < record.interval_ms {
        return Err(DecodeError::invalid(
            "ttl_ms",
            format!(
                "field `ttl_ms` ({}) is less than 2 x `interval_ms` ({})",
                record.ttl_ms, record.interval_ms
            ),
        ));
    }
    // Optional (revision 4): the instance's container and start. In a Redis hash they are the
    // record's instance's only when written under its epoch: a writer of an older revision that
    // takes the record over rewrites the fields it knows and leaves these behind.
    let started_ms = match map.get("started_ms") {
        Some(_) => num("started_ms")?,
        None => 0,
    };
    let container = map.get("container").map_or("", String::as_str);
    if !(container.is_empty() || crate::container::is_id(container)) {
        return Err(DecodeError::invalid(
            "container",
            format!(
                "field `container` is not 64 lowercase hex digits: `{}`",
                shown(container, 80)
            ),
        ));
    }
    let own = match (guard, map.get("started_epoch")) {
        (Guard::None, _) => true,
        (Guard::Epoch, Some(_)) => num("started_epoch")? == record.epoch,
        (Guard::Epoch, None) => false,
    };
    if own {
        record.container = container.to_string();
        record.started_ms = started_ms;
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

impl Record {
    /// Decodes a record file of the local-file backend: a JSON object with the same fields,
    /// numbers as JSON numbers and text as JSON strings.
    pub fn from_json(bytes: &[u8]) -> Result<Record, DecodeError> {
        let value: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes)
            .map_err(|e| {
                DecodeError::new(
                    DecodeErrorKind::NotJson,
                    None,
                    format!("not a JSON object: {}", shown(&e.to_string(), 200)),
                )
                .with_source(e)
            })?;
        let mut fields = HashMap::with_capacity(value.len());
        for (k, v) in value {
            let number = NUMBER_FIELDS.contains(&k.as_str());
            let text = match v {
                serde_json::Value::String(s) if !number => s,
                serde_json::Value::Number(n) if number => n.to_string(),
                other if FIELDS.contains(&k.as_str()) => {
                    let want = if number {
                        "a JSON number"
                    } else {
                        "a JSON string"
                    };
                    return Err(DecodeError::new(
                        DecodeErrorKind::WrongType,
                        Some(&k),
                        format!(
                            "field `{k}` must be {want}, not `{}`",
                            shown(&other.to_string(), 40)
                        ),
                    ));
                }
                // Fields this reader does not know are ignored, whatever their type.
                _ => continue,
            };
            fields.insert(k, text);
        }
        decode_map(&fields, Guard::None)
    }
}

/// Every field of a record this reader knows.
const FIELDS: [&str; 17] = [
    "v",
    "agent",
    "replica",
    "instance",
    "epoch",
    "state",
    "reason",
    "pid",
    "host",
    "interval_ms",
    "ttl_ms",
    "since_ms",
    "beat_ms",
    "seq",
    "container",
    "started_ms",
    "started_epoch",
];

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
pub(crate) fn malformed(location: impl Into<String>, source: DecodeError) -> Error {
    Error::Malformed {
        location: location.into(),
        source,
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
            let err = decode_record(f).unwrap_err().to_string();
            assert!(err.contains(expect), "{field}={value}: {err}");
        }
        let mut f = good();
        f.retain(|(k, _)| *k != "beat_ms");
        let err = decode_record(f).unwrap_err();
        assert_eq!(err.to_string(), "field `beat_ms` is missing");
        assert_eq!(
            (err.kind(), err.field()),
            (DecodeErrorKind::Missing, Some("beat_ms"))
        );
    }

    #[test]
    fn json_files_round_trip() {
        let r = decode_record(good()).unwrap();
        let json = serde_json::to_vec(&r).unwrap();
        assert_eq!(Record::from_json(&json).unwrap(), r);
        assert!(
            Record::from_json(b"[1]")
                .unwrap_err()
                .to_string()
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
            assert_eq!(err.field(), Some("container"), "{bad}: {err}");
        }
        let err = with(&[("started_ms", "-1"), ("started_epoch", "41")]).unwrap_err();
        assert_eq!(err.field(), Some("started_ms"), "{err}");
        // A record file is written whole: its fields need no epoch to be its own.
        let json = format!(
            r#"{{"v":1,"agent":"a","replica":"r","instance":"1732540000000-0a1b2c3d","state":"ready",
            "reason":"","pid":7,"host":"h","interval_ms":100,"ttl_ms":300,"since_ms":5,"beat_ms":9,
            "seq":1,"container":"{id}","started_ms":4}}"#
        );
        let file = Record::from_json(json.as_bytes()).unwrap();
        assert_eq!((file.container.as_str(), file.started_ms), (id.as_str(), 4));
    }

    /// A record whose reason or host is not UTF-8 is read, with the bytes escaped.
    #[test]
    fn non_utf8_fields_are_escaped_not_refused() {
        let mut raw: Vec<(Vec<u8>, Vec<u8>)> = good()
            .into_iter()
            .filter(|(k, _)| *k != "reason")
            .map(|(k, v)| (k.as_bytes().to_vec(), v.into_bytes()))
            .collect();
        raw.push((b"reason".to_vec(), b"disk \xff full".to_vec()));
        assert_eq!(decode_raw(&raw).unwrap().reason, "disk \\xff full");
        raw.retain(|(k, _)| k != b"agent");
        raw.push((b"agent".to_vec(), b"w\xffr".to_vec()));
        let err = decode_raw(&raw).unwrap_err();
        assert_eq!(
            (err.kind(), err.field()),
            (DecodeErrorKind::Invalid, Some("agent"))
        );
        assert!(err.to_string().contains("w\\xffr"), "{err}");
    }

    /// Numbers in a record file are JSON numbers and text is JSON strings: `"v":"1"` and
    /// `"pid":"1"` are refused, naming the field.
    #[test]
    fn file_records_need_json_numbers_where_numbers_are_required() {
        let r = decode_record(good()).unwrap();
        let json = serde_json::to_value(&r).unwrap();
        for (field, value) in [
            ("v", serde_json::json!("1")),
            ("pid", serde_json::json!("1")),
            ("beat_ms", serde_json::json!("1732540004100")),
            ("agent", serde_json::json!(7)),
        ] {
            let mut bad = json.clone();
            bad[field] = value;
            let err = Record::from_json(&serde_json::to_vec(&bad).unwrap()).unwrap_err();
            assert_eq!(
                (err.kind(), err.field()),
                (DecodeErrorKind::WrongType, Some(field)),
                "{err}"
            );
            assert!(
                err.to_string()
                    .starts_with(&format!("field `{field}` must be a JSON")),
                "{err}"
            );
        }
    }
}
