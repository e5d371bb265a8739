//! The three renderings of an outcome: text (one line per finding, grouped by service, then the
//! cost lines), JSON, and SARIF 2.1.0 for code-scanning tools.

use serde_json::{Value, json};

use super::finding::{Finding, Format, Outcome, Severity};
use super::rules::RULES;

/// `file:line` of a finding.
fn place(f: &Finding) -> String {
    if f.at.line > 0 {
        format!("{}:{}", f.at.file.display(), f.at.line)
    } else {
        f.at.file.display().to_string()
    }
}

fn count(o: &Outcome, s: Severity) -> usize {
    o.findings.iter().filter(|f| f.severity == s).count()
}

fn pct(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.1} %")
    } else {
        format!("{x:.0} %")
    }
}

/// The cost lines (text).
fn cost_lines(o: &Outcome) -> Vec<String> {
    let c = &o.cost;
    let mut lines = vec![format!(
        "cost: {} exec checks, {:.2} execs/s at steady state = {} of one core ({} ms of machine CPU per exec){}",
        c.exec_checks,
        c.steady_execs_per_s,
        pct(c.steady_cpu_percent),
        c.exec_cost_ms.round(),
        if c.kubelet_probes > 0 {
            format!(
                "; {} kubelet probes (http/tcp/grpc, no exec)",
                c.kubelet_probes
            )
        } else {
            String::new()
        }
    )];
    if (c.startup_execs_per_s - c.startup_execs_per_s_before_25).abs() > 1e-9 {
        lines.push(format!(
            "cost: during start_period {:.2} execs/s = {} with start_interval (Engine 25+), {:.2} execs/s without",
            c.startup_execs_per_s,
            pct(c.startup_cpu_percent),
            c.startup_execs_per_s_before_25
        ));
    }
    if !c.unknown.is_empty() {
        lines.push(format!(
            "cost: not counted (no healthcheck here; their images may have one): {}",
            c.unknown.join(", ")
        ));
    }
    // Each maximal chain once: a chain that continues into a longer one is part of it.
    let continued = |service: &str| {
        c.chains.iter().any(|other| {
            other.path[..other.path.len() - 1]
                .iter()
                .any(|p| p == service)
        })
    };
    for ch in c.chains.iter().filter(|ch| !continued(&ch.service)) {
        lines.push(format!(
            "gating: {} ({} level{}): up to {:.0}s before Engine 25 (one interval per level), {:.0}s with start_interval",
            ch.path.join(" -> "),
            ch.path.len() - 1,
            if ch.path.len() == 2 { "" } else { "s" },
            ch.delay_s_before_25,
            ch.delay_s_with_start_interval
        ));
    }
    lines
}

/// Text: findings grouped by service, one line each, then cost and a summary.
pub(crate) fn text(o: &Outcome) -> String {
    let mut out = String::new();
    let mut current: Option<&str> = None;
    for f in &o.findings {
        if current != Some(f.unit.as_str()) {
            out.push_str(&format!("{}:\n", f.unit));
            current = Some(&f.unit);
        }
        out.push_str(&format!(
            "  {} {}[{}] {}\n",
            place(f),
            f.severity,
            f.rule.id,
            f.message
        ));
    }
    for l in cost_lines(o) {
        out.push_str(&l);
        out.push('\n');
    }
    out.push_str(&format!(
        "{} error{}, {} warning{}, {} note{} in {} service{} and container{} of {} file{}{}; `healthcheck lint --explain ID` says why and how to fix\n",
        count(o, Severity::Error),
        plural(count(o, Severity::Error)),
        count(o, Severity::Warning),
        plural(count(o, Severity::Warning)),
        count(o, Severity::Note),
        plural(count(o, Severity::Note)),
        o.units,
        plural(o.units),
        plural(o.units),
        o.files.len(),
        plural(o.files.len()),
        if o.silenced > 0 {
            format!(" ({} silenced)", o.silenced)
        } else {
            String::new()
        }
    ));
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// JSON: findings with their rule's why and fix, the cost, a summary.
pub(crate) fn json(o: &Outcome) -> String {
    let findings: Vec<Value> = o
        .findings
        .iter()
        .map(|f| {
            json!({
                "rule": f.rule.id,
                "name": f.rule.name,
                "severity": f.severity.as_str(),
                "service": f.unit,
                "key": f.key,
                "message": f.message,
                "file": f.at.file.display().to_string(),
                "line": f.at.line,
                "why": f.rule.why,
                "fix": f.fix,
            })
        })
        .collect();
    let v = json!({
        "findings": findings,
        "cost": o.cost,
        "summary": {
            "errors": count(o, Severity::Error),
            "warnings": count(o, Severity::Warning),
            "notes": count(o, Severity::Note),
            "silenced": o.silenced,
            "units": o.units,
            "files": o.files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        },
    });
    format!("{v}\n")
}

/// A path as a SARIF artifact URI (relative, `/`-separated, spaces and `%` escaped).
fn uri(path: &std::path::Path) -> String {
    let s = path.display().to_string().replace('\\', "/");
    let s = s.strip_prefix("./").unwrap_or(&s).to_string();
    s.replace('%', "%25").replace(' ', "%20")
}

/// SARIF 2.1.0: one run, every rule described, one result per finding.
pub(crate) fn sarif(o: &Outcome) -> String {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "shortDescription": { "text": r.what },
                "fullDescription": { "text": r.why },
                "help": { "text": format!("{}\nFix: {}", r.why, r.fix) },
                "defaultConfiguration": { "level": r.severity.as_str() },
            })
        })
        .collect();
    let results: Vec<Value> = o
        .findings
        .iter()
        .map(|f| {
            let index = RULES.iter().position(|r| r.id == f.rule.id).unwrap_or(0);
            let mut physical = json!({ "artifactLocation": { "uri": uri(&f.at.file) } });
            if f.at.line > 0 {
                physical["region"] = json!({ "startLine": f.at.line });
            }
            json!({
                "ruleId": f.rule.id,
                "ruleIndex": index,
                "level": f.severity.as_str(),
                "message": { "text": format!("{} Fix: {}", f.message, f.fix) },
                "locations": [{
                    "physicalLocation": physical,
                    "logicalLocations": [{ "name": f.unit, "kind": "module" }],
                }],
            })
        })
        .collect();
    let v = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "healthcheck lint",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
            "properties": { "cost": o.cost },
        }],
    });
    format!("{v}\n")
}

impl Outcome {
    /// The report in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => text(self),
            Format::Json => json(self),
            Format::Sarif => sarif(self),
        }
    }
}
