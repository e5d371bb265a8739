//! Property tests (proptest) of the ready-record decoders observers run on what they read:
//! [`ready_signal::decode_record`] (Redis hash fields), [`ready_signal::Record::from_json`]
//! (record files) and [`ready_signal::decode_event`] (NATS payloads).
//!
//! Properties: no input panics; an error is non-empty, one line and bounded whatever the input's
//! size (a record is untrusted input and must not flood a probe's output); valid generated records
//! decode to what was written, in both encodings.
//!
//! 256 cases per property by default; `PROPTEST_CASES=100000` for a long run (RELIABILITY.md).

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use ready_signal::{Record, State, decode_event, decode_record};

fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default() // 256 cases, or PROPTEST_CASES
    }
}

/// An error must be short and on one line: it ends up in a probe's one-line verdict.
fn check_error(e: &str) -> Result<(), TestCaseError> {
    prop_assert!(!e.trim().is_empty(), "empty error");
    prop_assert!(!e.contains(['\n', '\r']), "multi-line error {e:?}");
    prop_assert!(e.len() <= 400, "{} bytes of error: {e:?}", e.len());
    Ok(())
}

const FIELDS: [&str; 17] = [
    "container",
    "started_ms",
    "started_epoch",
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
];

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,64}"
}

fn state() -> impl Strategy<Value = State> {
    prop::sample::select(vec![
        State::Starting,
        State::Ready,
        State::NotReady,
        State::Stopping,
    ])
}

/// A record as a conforming writer would produce it.
fn valid_record() -> impl Strategy<Value = Record> {
    (
        (
            name(),
            name(),
            0u64..=9_999_999_999_999,
            any::<u32>(),
            any::<u64>(),
        ),
        (state(), "[ -~]{0,200}", any::<u32>(), "[a-z0-9.-]{0,64}"),
        (
            // ttl_ms >= 2 x interval_ms > 0, as the protocol requires.
            1u64..=u64::MAX / 4,
            0u64..=u64::MAX / 2,
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        ),
        (
            prop_oneof![Just(String::new()), "[0-9a-f]{64}"],
            any::<u64>(),
        ),
    )
        .prop_map(
            |(
                (agent, replica, start, tag, epoch),
                (state, reason, pid, host),
                (i, extra, since, beat, seq),
                (container, started_ms),
            )| {
                Record {
                    v: 1,
                    agent,
                    replica,
                    instance: format!("{start:013}-{tag:08x}"),
                    epoch,
                    state,
                    reason,
                    pid,
                    host,
                    interval_ms: i,
                    ttl_ms: i * 2 + extra,
                    since_ms: since,
                    beat_ms: beat,
                    seq,
                    container,
                    started_ms,
                }
            },
        )
}

fn fields_of(r: &Record) -> Vec<(String, String)> {
    vec![
        ("v".into(), r.v.to_string()),
        ("agent".into(), r.agent.clone()),
        ("replica".into(), r.replica.clone()),
        ("instance".into(), r.instance.clone()),
        ("epoch".into(), r.epoch.to_string()),
        ("state".into(), r.state.as_str().into()),
        ("reason".into(), r.reason.clone()),
        ("pid".into(), r.pid.to_string()),
        ("host".into(), r.host.clone()),
        ("interval_ms".into(), r.interval_ms.to_string()),
        ("ttl_ms".into(), r.ttl_ms.to_string()),
        ("since_ms".into(), r.since_ms.to_string()),
        ("beat_ms".into(), r.beat_ms.to_string()),
        ("seq".into(), r.seq.to_string()),
        ("container".into(), r.container.clone()),
        ("started_ms".into(), r.started_ms.to_string()),
        ("started_epoch".into(), r.epoch.to_string()),
    ]
}

/// A field value: sometimes plausible, sometimes hostile (huge, multi-line, non-ASCII, numbers
/// out of range).
fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9]{1,30}",
        "-?[0-9]{1,5}",
        prop::sample::select(vec![
            "",
            "1",
            "2",
            "0",
            "ready",
            "sleeping",
            "not-ready",
            "a:b",
            "a.b",
            "18446744073709551616",
            "4294967296",
            "1732540000000-0a1b2c3d",
            "1732540000000_0a1b2c3d",
            "1732540000000-0A1B2C3é",
        ])
        .prop_map(str::to_string),
        "[\\n\\r\\t a-z]{0,20}",
        (0usize..5000).prop_map(|n| "x".repeat(n)),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary field maps: no panic, short one-line errors.
    #[test]
    fn decode_record_any_fields(
        fields in prop::collection::vec(
            (prop_oneof![prop::sample::select(FIELDS.to_vec()).prop_map(str::to_string), any::<String>()],
             hostile_value()),
            0..20),
    ) {
        if let Err(e) = decode_record(fields) {
            check_error(&e)?;
        }
    }

    /// A valid record with one field replaced by a hostile value, or removed.
    #[test]
    fn decode_record_one_bad_field(
        record in valid_record(),
        which in 0usize..17,
        value in prop::option::of(hostile_value()),
    ) {
        let mut fields = fields_of(&record);
        match value {
            Some(v) => fields[which].1 = v,
            None => { fields.remove(which); }
        }
        if let Err(e) = decode_record(fields) {
            check_error(&e)?;
        }
    }

    /// Valid records decode to what was written, from hash fields and from JSON.
    #[test]
    fn valid_records_round_trip(record in valid_record(), extra in "[a-z_]{1,10}") {
        let mut fields = fields_of(&record);
        // Readers ignore fields they do not know (a later minor revision may add some).
        if !FIELDS.contains(&extra.as_str()) {
            fields.push((extra, "anything".into()));
        }
        let decoded = decode_record(fields);
        prop_assert_eq!(decoded.as_ref(), Ok(&record));
        let json = serde_json::to_vec(&record).unwrap();
        prop_assert_eq!(Record::from_json(&json), Ok(record));
    }

    /// Arbitrary bytes as a record file: no panic, short one-line errors.
    #[test]
    fn record_from_json_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = Record::from_json(&bytes) {
            check_error(&e)?;
        }
    }

    /// JSON objects with the record's keys and values of any JSON type.
    #[test]
    fn record_from_json_any_object(
        entries in prop::collection::vec(
            (prop::sample::select(FIELDS.to_vec()), json_value()), 0..16),
    ) {
        let object: serde_json::Map<String, serde_json::Value> =
            entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let bytes = serde_json::to_vec(&object).unwrap();
        if let Err(e) = Record::from_json(&bytes) {
            check_error(&e)?;
        }
    }

    /// Arbitrary bytes as a NATS event: no panic, short one-line errors.
    #[test]
    fn decode_event_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = decode_event(&bytes) {
            check_error(&e)?;
        }
    }

    /// Event-shaped JSON with hostile values; valid events decode.
    #[test]
    fn decode_event_shaped(
        v in prop_oneof![Just(json!(1)), json_value()],
        agent in prop_oneof![name().prop_map(|n| json!(n)), json_value()],
        replica in prop_oneof![name().prop_map(|n| json!(n)), json_value()],
        st in prop_oneof![state().prop_map(|s| json!(s.as_str())), json_value()],
        reason in prop::option::of("[ -~]{0,200}"),
        ts in prop_oneof![any::<u64>().prop_map(|t| json!(t)), json_value()],
    ) {
        let mut event = json!({
            "v": v, "agent": agent, "replica": replica, "instance": "1732540000000-0a1b2c3d",
            "state": st, "ts_ms": ts,
        });
        if let Some(r) = &reason {
            event["reason"] = json!(r);
        }
        let valid = event["v"] == json!(1)
            && event["agent"].as_str().is_some_and(is_name)
            && event["replica"].as_str().is_some_and(is_name)
            && event["state"].as_str().is_some_and(|s| s.parse::<State>().is_ok())
            && event["ts_ms"].is_u64();
        match decode_event(&serde_json::to_vec(&event).unwrap()) {
            Ok(e) => {
                prop_assert!(valid, "accepted {event}");
                prop_assert_eq!(e.reason, reason.unwrap_or_default());
            }
            Err(e) => {
                prop_assert!(!valid, "refused valid {event}: {e}");
                check_error(&e)?;
            }
        }
    }
}

use serde_json::json;

fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number)),
        any::<String>().prop_map(serde_json::Value::from),
        (0usize..3000).prop_map(|n| serde_json::Value::from("y".repeat(n))),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z]{1,5}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
