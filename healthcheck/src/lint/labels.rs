//! The sidecar's heal labels, as the linter knows them. The probe must not depend on the
//! sidecar, so the list is kept here, and the workspace test
//! `tests/tests/heal_labels_lint.rs` fails when it and `sidecar/src/heal/labels.rs` disagree.

/// Opts a container in to healing; only the value `true` does.
pub const OPT_IN: &str = "healthcheck.heal";
/// Every tuning label with what its value must be.
pub const TUNING: [(&str, Kind); 8] = [
    ("healthcheck.heal.after", Kind::Duration),
    ("healthcheck.heal.backoff", Kind::Duration),
    ("healthcheck.heal.backoff-max", Kind::Duration),
    ("healthcheck.heal.budget", Kind::Count),
    ("healthcheck.heal.window", Kind::Duration),
    ("healthcheck.heal.release-after", Kind::Duration),
    ("healthcheck.heal.earn-back-after", Kind::Duration),
    ("healthcheck.heal.start-grace", Kind::Duration),
];

/// Every heal label the sidecar reads.
pub fn all() -> Vec<&'static str> {
    std::iter::once(OPT_IN)
        .chain(TUNING.iter().map(|(k, _)| *k))
        .collect()
}

/// What a label's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A duration above zero (`10s`, `5m`), read as the sidecar reads it (humantime).
    Duration,
    /// A whole number of restarts.
    Count,
}

/// Other healers' opt-in labels: docker-autoheal and deunhealth restart on Docker's
/// `unhealthy`, with no brake for a shared outage.
pub const OTHER_HEALERS: [(&str, &str); 2] = [
    ("autoheal", "docker-autoheal"),
    ("deunhealth.restart.on.unhealthy", "deunhealth"),
];

/// Why a label value cannot be used, in the sidecar's words; None when it can.
pub fn problem(kind: Kind, value: &str) -> Option<String> {
    match kind {
        Kind::Duration => match humantime::parse_duration(value.trim()) {
            Err(e) => Some(format!("not a duration such as 10s or 5m ({e})")),
            Ok(d) if d.is_zero() => Some("must be more than zero".into()),
            // The sidecar's MAX_DURATION: a longer one would overflow an Instant.
            Ok(d) if d > std::time::Duration::from_secs(365 * 24 * 60 * 60) => {
                Some("longer than 365d".into())
            }
            Ok(_) => None,
        },
        Kind::Count => value
            .trim()
            .parse::<u32>()
            .err()
            .map(|e| format!("not a whole number of restarts ({e})")),
    }
}
