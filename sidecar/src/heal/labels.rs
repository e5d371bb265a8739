//! The labels a container opts in and tunes its healing with, and the flags that set their
//! defaults: defined once here ([`SETTINGS`]), parsed here, and the table in `sidecar/HEAL.md`
//! is tested against this definition (a test fails, with the rows that differ, when they part).

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

/// The longest duration a label or flag may give: a year. Every duration is added to an
/// `Instant` (a restart time plus its backoff, a start plus its window); one of centuries would
/// overflow it, and with `panic = "abort"` that would end the sidecar.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// [`MAX_DURATION`] as a message says it.
pub const MAX_DURATION_TEXT: &str = "365d";

/// One heal setting as the docs list it: the flags that set it for every container, the label
/// that overrides it for one, and the default.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The flag spellings (`--heal-after`; `--heal` and `--heal=dry-run` for the switch).
    pub flags: &'static [&'static str],
    /// The label, when a container can set it for itself.
    pub label: Option<&'static str>,
    /// The one value the label takes, when it is a switch (`true` for [`OPT_IN`]).
    pub label_value: Option<&'static str>,
    /// The default, as the flag is written.
    pub default: &'static str,
}

/// Every heal setting, in the order of HEAL.md's table.
pub const SETTINGS: &[Setting] = &[
    Setting {
        flags: &["--heal", "--heal=dry-run"],
        label: Some(OPT_IN),
        label_value: Some("true"),
        default: "off",
    },
    Setting {
        flags: &["--heal-after"],
        label: Some(AFTER),
        label_value: None,
        default: "10s",
    },
    Setting {
        flags: &["--heal-backoff"],
        label: Some(BACKOFF),
        label_value: None,
        default: "10s",
    },
    Setting {
        flags: &["--heal-backoff-max"],
        label: Some(BACKOFF_MAX),
        label_value: None,
        default: "5m",
    },
    Setting {
        flags: &["--heal-budget"],
        label: Some(BUDGET),
        label_value: None,
        default: "5",
    },
    Setting {
        flags: &["--heal-window"],
        label: Some(WINDOW),
        label_value: None,
        default: "30m",
    },
    Setting {
        flags: &["--heal-release-after"],
        label: Some(RELEASE),
        label_value: None,
        default: "10m",
    },
    Setting {
        flags: &["--heal-earn-back-after"],
        label: Some(EARN_BACK),
        label_value: None,
        default: "10m",
    },
    Setting {
        flags: &["--heal-start-grace"],
        label: Some(START_GRACE),
        label_value: None,
        default: "the record's TTL + `heal_after`",
    },
    Setting {
        flags: &["--heal-outage-share"],
        label: None,
        label_value: None,
        default: "0.5",
    },
    Setting {
        flags: &["--heal-max-in-flight"],
        label: None,
        label_value: None,
        default: "1",
    },
    Setting {
        flags: &["--heal-state PATH"],
        label: None,
        label_value: None,
        default: "none (Docker's events only)",
    },
];

/// The Markdown table of [`SETTINGS`], as HEAL.md shows it.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| flag (default for every container) | label (overrides it for one container) | default |\n\
         | --- | --- | --- |\n",
    );
    for s in SETTINGS {
        let flags: Vec<String> = s.flags.iter().map(|f| format!("`{f}`")).collect();
        let label = match (s.label, s.label_value) {
            (Some(l), Some(v)) => format!("`{l}={v}` (opt in)"),
            (Some(l), None) => format!("`{l}`"),
            (None, _) => String::new(),
        };
        let label = if label.is_empty() {
            " ".into()
        } else {
            format!(" {label} ")
        };
        out.push_str(&format!(
            "| {} |{label}| {} |\n",
            flags.join(" / "),
            s.default
        ));
    }
    out
}

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
                if d > MAX_DURATION {
                    return Err(LabelError {
                        label,
                        value: v.clone(),
                        problem: format!("must be at most {MAX_DURATION_TEXT}"),
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

    /// The defaults of [`SETTINGS`] are the ones the governor uses.
    #[test]
    fn settings_defaults_are_the_rules_defaults() {
        let d = Rules::default();
        let of = |label: &str| {
            SETTINGS
                .iter()
                .find(|s| s.label == Some(label))
                .unwrap()
                .default
        };
        let dur = |label: &str| humantime::parse_duration(of(label)).unwrap();
        assert_eq!(dur(AFTER), d.heal_after);
        assert_eq!(dur(BACKOFF), d.backoff);
        assert_eq!(dur(BACKOFF_MAX), d.backoff_max);
        assert_eq!(dur(WINDOW), d.window);
        assert_eq!(dur(RELEASE), d.release_after);
        assert_eq!(dur(EARN_BACK), d.earn_back_after);
        assert_eq!(of(BUDGET).parse::<u32>().unwrap(), d.budget);
        let p = super::super::policy::Policy::default();
        let flag = |f: &str| SETTINGS.iter().find(|s| s.flags[0] == f).unwrap().default;
        assert_eq!(
            flag("--heal-outage-share").parse::<f64>().unwrap(),
            p.outage_share
        );
        assert_eq!(
            flag("--heal-max-in-flight").parse::<usize>().unwrap(),
            p.max_in_flight
        );
    }

    /// HEAL.md's table of flags and labels is the one [`SETTINGS`] defines, row for row.
    #[test]
    fn heal_md_table_matches_the_settings() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/HEAL.md")).unwrap();
        let want = markdown_table();
        let header = want.lines().next().unwrap();
        let start = doc
            .find(header)
            .unwrap_or_else(|| panic!("HEAL.md has no table starting `{header}`"));
        let got: Vec<&str> = doc[start..]
            .lines()
            .take_while(|l| l.starts_with('|'))
            .collect();
        let want: Vec<&str> = want.lines().collect();
        let diff = diff_lines(&want, &got);
        assert!(
            diff.is_empty(),
            "HEAL.md's table differs from heal::labels::SETTINGS (- definition, + HEAL.md):\n{diff}"
        );
    }

    /// Rows of `want` missing from `got` (`-`) and rows of `got` not in `want` (`+`), in order.
    fn diff_lines(want: &[&str], got: &[&str]) -> String {
        let mut out = String::new();
        for (i, w) in want.iter().enumerate() {
            if got.get(i) != Some(w) {
                out.push_str(&format!("- {w}\n"));
                if let Some(g) = got.get(i) {
                    out.push_str(&format!("+ {g}\n"));
                }
            }
        }
        for g in got.iter().skip(want.len()) {
            out.push_str(&format!("+ {g}\n"));
        }
        out
    }
}
