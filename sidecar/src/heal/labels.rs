//! The labels a container opts in and tunes its healing with. The grammar is here once; the
//! README's "Healing" section lists the same names.

use std::collections::BTreeMap;
use std::time::Duration;

use super::policy::Rules;

/// `healthcheck.heal=true` opts a container in (any other value, or none, leaves it alone).
pub const OPT_IN: &str = "healthcheck.heal";
/// How long bad before a restart (`heal_after`), a duration such as `10s`.
pub const AFTER: &str = "healthcheck.heal.after";
/// The first backoff step.
pub const BACKOFF: &str = "healthcheck.heal.backoff";
/// The longest backoff.
pub const BACKOFF_MAX: &str = "healthcheck.heal.backoff-max";
/// Restarts allowed within the window.
pub const BUDGET: &str = "healthcheck.heal.budget";
/// The budget's window.
pub const WINDOW: &str = "healthcheck.heal.window";
/// Healthy this long, a quarantined container is released.
pub const RELEASE: &str = "healthcheck.heal.release-after";
/// Healthy this long, a container's backoff starts over.
pub const EARN_BACK: &str = "healthcheck.heal.earn-back-after";
/// How long a (re)started container's agent may take to write its first record.
pub const START_GRACE: &str = "healthcheck.heal.start-grace";

/// A label whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label {label}={value:?}: {problem}")]
pub struct LabelError {
    /// The label.
    pub label: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Whether the labels opt the container in.
pub fn opted_in(labels: &BTreeMap<String, String>) -> bool {
    labels.get(OPT_IN).is_some_and(|v| v.trim() == "true")
}

/// The rules for a container: `defaults`, with every label present applied.
pub fn rules(labels: &BTreeMap<String, String>, defaults: Rules) -> Result<Rules, LabelError> {
    let dur = |label: &'static str, default: Duration| -> Result<Duration, LabelError> {
        match labels.get(label) {
            None => Ok(default),
            Some(v) => {
                let d = humantime::parse_duration(v.trim()).map_err(|e| LabelError {
                    label,
                    value: v.clone(),
                    problem: format!("not a duration such as 10s or 5m ({e})"),
                })?;
                if d.is_zero() {
                    return Err(LabelError {
                        label,
                        value: v.clone(),
                        problem: "must be more than zero".into(),
                    });
                }
                Ok(d)
            }
        }
    };
    let budget = match labels.get(BUDGET) {
        None => defaults.budget,
        Some(v) => v.trim().parse::<u32>().map_err(|e| LabelError {
            label: BUDGET,
            value: v.clone(),
            problem: format!("not a whole number of restarts ({e})"),
        })?,
    };
    let r = Rules {
        heal_after: dur(AFTER, defaults.heal_after)?,
        backoff: dur(BACKOFF, defaults.backoff)?,
        backoff_max: dur(BACKOFF_MAX, defaults.backoff_max)?,
        budget,
        window: dur(WINDOW, defaults.window)?,
        release_after: dur(RELEASE, defaults.release_after)?,
        earn_back_after: dur(EARN_BACK, defaults.earn_back_after)?,
        start_grace: match labels.get(START_GRACE) {
            None => defaults.start_grace,
            Some(_) => Some(dur(START_GRACE, Duration::ZERO)?),
        },
    };
    if r.backoff_max < r.backoff {
        return Err(LabelError {
            label: BACKOFF_MAX,
            value: labels.get(BACKOFF_MAX).cloned().unwrap_or_default(),
            problem: format!("shorter than the first backoff step ({:?})", r.backoff),
        });
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Labels override the defaults one by one; absent ones keep them.
    #[test]
    fn labels_override_defaults() {
        let l = labels(&[
            (OPT_IN, "true"),
            (AFTER, "3s"),
            (BACKOFF, "3s"),
            (BUDGET, "3"),
        ]);
        assert!(opted_in(&l));
        let r = rules(&l, Rules::default()).unwrap();
        assert_eq!(
            (r.heal_after, r.backoff, r.budget),
            (Duration::from_secs(3), Duration::from_secs(3), 3)
        );
        assert_eq!(r.backoff_max, Rules::default().backoff_max);
        assert_eq!(r.start_grace, None);
        let r = rules(&labels(&[(START_GRACE, "90s")]), Rules::default()).unwrap();
        assert_eq!(r.start_grace, Some(Duration::from_secs(90)));
        assert!(!opted_in(&labels(&[(OPT_IN, "false")])));
    }

    /// A bad value is an error naming the label and the value, never a silent default.
    #[test]
    fn bad_label_is_named() {
        let e = rules(&labels(&[(AFTER, "soon")]), Rules::default()).unwrap_err();
        assert_eq!((e.label, e.value.as_str()), (AFTER, "soon"));
        let e = rules(&labels(&[(BUDGET, "-1")]), Rules::default()).unwrap_err();
        assert_eq!(e.label, BUDGET);
        let e = rules(
            &labels(&[(BACKOFF, "1m"), (BACKOFF_MAX, "10s")]),
            Rules::default(),
        )
        .unwrap_err();
        assert_eq!(e.label, BACKOFF_MAX);
    }
}
