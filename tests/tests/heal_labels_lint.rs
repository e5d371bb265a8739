//! `healthcheck lint` keeps its own list of the sidecar's heal labels (the probe must not depend
//! on the sidecar); this test fails when the two disagree, on names or on which values are bad.

use std::collections::{BTreeMap, BTreeSet};

use healthcheck::lint::labels as lint;
use sidecar::heal::labels as heal;
use sidecar::heal::policy::Rules;

/// The same label names on both sides.
#[test]
fn same_names() {
    let sidecar: BTreeSet<&str> = [
        heal::OPT_IN,
        heal::AFTER,
        heal::BACKOFF,
        heal::BACKOFF_MAX,
        heal::BUDGET,
        heal::WINDOW,
        heal::RELEASE,
        heal::EARN_BACK,
        heal::START_GRACE,
    ]
    .into_iter()
    .collect();
    let ours: BTreeSet<&str> = lint::all().into_iter().collect();
    assert_eq!(
        ours, sidecar,
        "healthcheck/src/lint/labels.rs is out of date"
    );
}

/// A value the lint calls unreadable is one the sidecar refuses, and the other way round.
#[test]
fn same_verdicts() {
    for (label, kind) in lint::TUNING {
        for value in ["30s", "0s", "soon", "-1", "5", " 2m ", "400d"] {
            let labels: BTreeMap<String, String> = [(label.to_string(), value.to_string())]
                .into_iter()
                .collect();
            let sidecar_refuses = heal::rules(&labels, Rules::default()).is_err();
            let lint_refuses = lint::problem(kind, value).is_some();
            assert_eq!(
                lint_refuses, sidecar_refuses,
                "{label}={value:?}: lint says {lint_refuses}, sidecar says {sidecar_refuses}"
            );
        }
    }
    let opted = |v: &str| {
        heal::opted_in(
            &[(heal::OPT_IN.to_string(), v.to_string())]
                .into_iter()
                .collect(),
        )
    };
    assert!(opted("true") && !opted("yes") && !opted("True"));
}
