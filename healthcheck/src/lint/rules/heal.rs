//! HC013, HC014 and HC015: the sidecar's heal labels (and docker-autoheal's): unknown keys,
//! values it cannot read, labels nothing will act on.

use super::super::finding::{Finding, Severity};
use super::super::labels::{self, Kind, OPT_IN, OTHER_HEALERS, TUNING};
use super::super::model::{Platform, Project};
use super::common::{finding, healers, with_severity};

pub(super) fn check(project: &Project, out: &mut Vec<Finding>) {
    let healers = healers(project);
    let has_healer = |kind: &str| healers.iter().any(|(_, k)| *k == kind);
    for unit in project
        .units
        .iter()
        .filter(|u| u.platform == Platform::Compose)
    {
        let known = labels::all();
        let mut opted = false;
        let mut tuned = false;
        for l in &unit.labels {
            let key = format!("{}labels.{}", if l.deploy { "deploy." } else { "" }, l.key);
            let ours = l.key == OPT_IN || l.key.starts_with("healthcheck.heal.");
            let looks_like = !ours
                && [
                    "healthcheck-heal",
                    "healthcheck_heal",
                    "healtcheck.heal",
                    "heathcheck.heal",
                    "healthchek.heal",
                ]
                .iter()
                .any(|p| l.key.starts_with(p));
            if l.deploy && (ours || OTHER_HEALERS.iter().any(|(k, _)| *k == l.key)) {
                out.push(finding(
                    "HC015",
                    unit,
                    &key,
                    &l.at,
                    format!(
                        "{}: {key}: deploy.labels belong to the Swarm service, not the container: no healer sees them",
                        unit.name
                    ),
                ));
                continue;
            }
            if l.deploy {
                continue;
            }
            if (ours && !known.contains(&l.key.as_str())) || looks_like {
                let near = closest(&l.key, &known);
                out.push(finding(
                    "HC013",
                    unit,
                    &key,
                    &l.at,
                    format!(
                        "{}: {key}: not a heal label the sidecar reads{}",
                        unit.name,
                        near.map(|n| format!(" (did you mean {n}?)"))
                            .unwrap_or_default()
                    ),
                ));
                continue;
            }
            if l.key == OPT_IN {
                if l.value.trim() == "true" {
                    opted = true;
                } else {
                    out.push(finding(
                        "HC014",
                        unit,
                        &key,
                        &l.at,
                        format!(
                            "{}: {key}: {:?} is not \"true\": the container is not opted in",
                            unit.name, l.value
                        ),
                    ));
                }
                continue;
            }
            if let Some((_, kind)) = TUNING.iter().find(|(k, _)| *k == l.key) {
                tuned = true;
                if let Some(problem) = labels::problem(*kind, &l.value) {
                    out.push(finding(
                        "HC014",
                        unit,
                        &key,
                        &l.at,
                        format!(
                            "{}: {key}: {problem}: the sidecar leaves this container alone",
                            unit.name
                        ),
                    ));
                }
            }
        }
        // backoff-max below backoff (both readable).
        let dur = |k: &str| {
            unit.label(k)
                .filter(|l| labels::problem(Kind::Duration, &l.value).is_none())
                .and_then(|l| humantime::parse_duration(l.value.trim()).ok())
        };
        if let (Some(b), Some(m)) = (
            dur("healthcheck.heal.backoff"),
            dur("healthcheck.heal.backoff-max"),
        ) && m < b
            && let Some(l) = unit.label("healthcheck.heal.backoff-max")
        {
            out.push(finding(
                "HC014",
                unit,
                "labels.healthcheck.heal.backoff-max",
                &l.at,
                format!(
                    "{}: labels.healthcheck.heal.backoff-max: shorter than healthcheck.heal.backoff: the sidecar leaves this container alone",
                    unit.name
                ),
            ));
        }
        if tuned && !opted && unit.label(OPT_IN).is_none() {
            let l = unit
                .labels
                .iter()
                .find(|l| l.key.starts_with("healthcheck.heal."));
            if let Some(l) = l {
                out.push(finding(
                    "HC015",
                    unit,
                    &format!("labels.{}", l.key),
                    &l.at,
                    format!(
                        "{}: labels.{}: heal settings without healthcheck.heal: \"true\": they do nothing",
                        unit.name, l.key
                    ),
                ));
            }
        }
        if opted {
            let l = unit.label(OPT_IN).map(|l| l.at.clone()).unwrap_or_default();
            if !unit.has_docker_check() && !unit.publishes_ready_signal() {
                out.push(finding(
                    "HC015",
                    unit,
                    "labels.healthcheck.heal",
                    &l,
                    format!(
                        "{}: labels.healthcheck.heal: no healthcheck and no ready signal: the sidecar never sees it bad",
                        unit.name
                    ),
                ));
            } else if !has_healer("healthcheck-sidecar") {
                out.push(with_severity(
                    finding(
                        "HC015",
                        unit,
                        "labels.healthcheck.heal",
                        &l,
                        format!(
                            "{}: labels.healthcheck.heal: no service in these files runs healthcheck-sidecar --heal",
                            unit.name
                        ),
                    ),
                    Severity::Note,
                ));
            }
        }
        for (label, healer) in OTHER_HEALERS {
            let Some(l) = unit.label(label).filter(|l| l.value.trim() == "true") else {
                continue;
            };
            if !unit.has_docker_check() {
                out.push(finding(
                    "HC015",
                    unit,
                    &format!("labels.{label}"),
                    &l.at,
                    format!(
                        "{}: labels.{label}: no healthcheck: {healer} never sees it unhealthy",
                        unit.name
                    ),
                ));
            }
        }
    }
}

/// The known label closest to a typo (edit distance at most 3).
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (distance(key, k), *k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
