//! The verdict: one line of text or one JSON object, never more than [`OUTPUT_LIMIT`] bytes.
//!
//! Docker keeps only the first 4096 bytes of a probe's output, so the report is cut to fit,
//! unhealthy targets first, and says how many it left out.

use std::fmt;
use std::time::Duration;

use crate::failure::Failure;
use crate::text::{one_line, truncate};

/// The most a report prints, newline included; below Docker's 4096-byte cap.
pub const OUTPUT_LIMIT: usize = 4000;

/// The result of checking one target.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The target, redacted.
    pub target: String,
    /// The kind of check (`redis`, `nats`, ...).
    pub check: &'static str,
    /// How long the check took (up to the deadline).
    pub elapsed: Duration,
    /// `Ok(detail)` when healthy, `Err(failure)` when not.
    pub result: Result<Option<String>, Failure>,
}

impl Outcome {
    /// True when the target is healthy.
    pub fn healthy(&self) -> bool {
        self.result.is_ok()
    }

    /// True when the deadline ended the check.
    pub fn timed_out(&self) -> bool {
        self.result.as_ref().is_err_and(Failure::is_timeout)
    }

    /// The failure, when unhealthy.
    pub fn failure(&self) -> Option<&Failure> {
        self.result.as_ref().err()
    }

    /// `TARGET ok 0.4ms`, or `TARGET REASON`, on one line.
    pub fn text(&self) -> String {
        let target = one_line(&self.target);
        match &self.result {
            Ok(None) => format!("{target} ok {}", ms(self.elapsed)),
            Ok(Some(detail)) => format!("{target} ok {} ({})", ms(self.elapsed), one_line(detail)),
            Err(failure) => format!("{target} {}", one_line(&failure.to_string())),
        }
    }

    /// One JSON object; the reason is cut to `reason_max` bytes.
    fn json(&self, reason_max: usize) -> serde_json::Value {
        let mut v = serde_json::json!({
            "target": one_line(&self.target),
            "check": self.check,
            "healthy": self.healthy(),
            "ms": (self.elapsed.as_secs_f64() * 1e4).round() / 10.0,
        });
        match &self.result {
            Ok(Some(detail)) => v["detail"] = truncate(&one_line(detail), reason_max).into(),
            Ok(None) => {}
            Err(f) => {
                v["reason"] = truncate(&one_line(&f.to_string()), reason_max).into();
                v["kind"] = f.kind().as_str().into();
                v["phase"] = f.phase().map(|p| p.as_str()).into();
                v["address"] = f.address().map(one_line).into();
            }
        }
        if self.timed_out() {
            v["timed_out"] = true.into();
        }
        v
    }
}

/// The outcomes of one probe.
#[derive(Debug, Clone)]
pub struct Report {
    /// One outcome per target, in the order given.
    pub outcomes: Vec<Outcome>,
    /// Wall time of the whole probe.
    pub elapsed: Duration,
}

impl Report {
    /// True if and only if every target is healthy (and there is at least one).
    pub fn healthy(&self) -> bool {
        !self.outcomes.is_empty() && self.outcomes.iter().all(Outcome::healthy)
    }

    /// The outcomes that are not healthy.
    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| !o.healthy())
    }

    /// One compact JSON object, cut to fit [`OUTPUT_LIMIT`].
    pub fn to_json(&self) -> String {
        let mut ordered: Vec<&Outcome> = self.failures().collect();
        ordered.extend(self.outcomes.iter().filter(|o| o.healthy()));
        let head = serde_json::json!({
            "healthy": self.healthy(),
            "ms": (self.elapsed.as_secs_f64() * 1e4).round() / 10.0,
            "unhealthy": self.failures().count(),
            "total": self.outcomes.len(),
        });
        let mut targets = Vec::new();
        let mut used = head.to_string().len() + 40;
        for o in &ordered {
            // A long reason is cut to fit rather than the target dropped.
            let mut item = o.json(400);
            let mut len = item.to_string().len() + 1;
            if used + len > OUTPUT_LIMIT {
                item = o.json(60);
                len = item.to_string().len() + 1;
                if used + len > OUTPUT_LIMIT {
                    break;
                }
            }
            used += len;
            targets.push(item);
        }
        let mut out = head;
        let omitted = ordered.len() - targets.len();
        out["targets"] = targets.into();
        if omitted > 0 {
            out["omitted"] = omitted.into();
        }
        out.to_string()
    }
}

impl fmt::Display for Report {
    /// `healthy: redis://cache:6379 ok 0.4ms; nats://nats:4222 ok 0.6ms`, cut to fit the limit.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.healthy() {
            "healthy"
        } else {
            "unhealthy"
        };
        let parts: Vec<String> = self.outcomes.iter().map(Outcome::text).collect();
        let line = format!("{verdict}: {}", parts.join("; "));
        if line.len() < OUTPUT_LIMIT {
            return f.write_str(&line);
        }
        // Too long: failures first, each cut short, then a count of what did not fit.
        let mut ordered: Vec<&Outcome> = self.failures().collect();
        ordered.extend(self.outcomes.iter().filter(|o| o.healthy()));
        let unhealthy = self.failures().count();
        let mut out = if unhealthy == 0 {
            // "healthy (0 of 999 targets)" would read as none of them healthy.
            format!("{verdict} (all {} targets):", self.outcomes.len())
        } else {
            format!(
                "{verdict} ({unhealthy} of {} targets):",
                self.outcomes.len()
            )
        };
        let reserve = 60;
        let mut shown = 0;
        for o in &ordered {
            let mut text = o.text();
            if text.len() > 400 {
                text = truncate(&text, 400);
            }
            if out.len() + text.len() + 2 + reserve > OUTPUT_LIMIT {
                break;
            }
            out.push_str(if shown == 0 { " " } else { "; " });
            out.push_str(&text);
            shown += 1;
        }
        let rest = ordered.len() - shown;
        if rest > 0 {
            let rest_unhealthy = unhealthy.saturating_sub(shown);
            out.push_str(&format!(
                "; … {rest} more not shown ({rest_unhealthy} of them unhealthy)"
            ));
        }
        f.write_str(&out)
    }
}

/// Milliseconds with one decimal: `0.4ms`, `12.0ms`.
fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1e3)
}

/// The JSON printed when the configuration is wrong: the same shape as a report, with no
/// targets, `kind` `config` and the reason.
pub fn config_error_json(reason: &str) -> String {
    failure_json("config", reason)
}

/// A report with no targets, only a kind and a reason: for failures of the whole probe
/// (configuration, or the watchdog that ends a probe whose checks could not report in time).
pub fn failure_json(kind: &str, reason: &str) -> String {
    let v = serde_json::json!({
        "healthy": false,
        "kind": kind,
        "phase": null,
        "reason": truncate(&one_line(reason), OUTPUT_LIMIT - 200),
        "unhealthy": 0,
        "total": 0,
        "targets": [],
    });
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(i: usize, ok: bool) -> Outcome {
        Outcome {
            target: format!("tcp://host-{i}:1"),
            check: "tcp",
            elapsed: Duration::from_micros(1500),
            result: if ok {
                Ok(None)
            } else {
                Err(Failure::new(
                    crate::FailureKind::Refused,
                    format!("connection refused {}", "x".repeat(50)),
                )
                .at(crate::Phase::Connect, Some(format!("host-{i}:1"))))
            },
        }
    }

    #[test]
    fn short_report_is_one_line_verdict_first() {
        let r = Report {
            outcomes: vec![outcome(1, true), outcome(2, false)],
            elapsed: Duration::from_millis(2),
        };
        let s = r.to_string();
        assert!(
            s.starts_with(
                "unhealthy: tcp://host-1:1 ok 1.5ms; tcp://host-2:1 connecting to host-2:1"
            ),
            "{s}"
        );
        assert!(!s.contains('\n'));
    }

    /// A long healthy verdict says all targets are healthy, not "0 of N".
    #[test]
    fn a_long_healthy_line_says_all() {
        let r = Report {
            outcomes: (0..999).map(|i| outcome(i, true)).collect(),
            elapsed: Duration::from_millis(2),
        };
        let text = r.to_string();
        assert!(
            text.starts_with("healthy (all 999 targets):"),
            "{}",
            &text[..60]
        );
    }

    #[test]
    fn hundreds_of_failures_fit_the_limit_and_are_counted() {
        let mut outcomes: Vec<Outcome> = (0..500).map(|i| outcome(i, i % 7 == 0)).collect();
        outcomes[3].result = Err(Failure::new(
            crate::FailureKind::Protocol,
            "\u{1b}[31mevil\nnewline".repeat(200),
        ));
        let r = Report {
            outcomes,
            elapsed: Duration::from_millis(2),
        };
        let text = r.to_string();
        assert!(text.len() < OUTPUT_LIMIT, "{}", text.len());
        assert!(
            text.starts_with("unhealthy (428 of 500 targets):"),
            "{}",
            &text[..60]
        );
        assert!(text.contains("more not shown"));
        assert!(!text.contains('\n'));
        let json = r.to_json();
        assert!(json.len() < OUTPUT_LIMIT, "{}", json.len());
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["healthy"], false);
        assert!(v["omitted"].as_u64().unwrap() > 0);
        assert!(
            !json.contains("\\u001b") && json.contains("\\\\x1b"),
            "{json}"
        );
        assert_eq!(v["targets"][0]["kind"], "refused");
        assert_eq!(v["targets"][0]["phase"], "connect");
    }

    #[test]
    fn no_targets_is_not_healthy() {
        assert!(
            !Report {
                outcomes: vec![],
                elapsed: Duration::ZERO
            }
            .healthy()
        );
    }
}
