//! HC012: a service responsible for its own restart or its own readiness.

use super::super::finding::Finding;
use super::super::labels::{OPT_IN, OTHER_HEALERS};
use super::super::model::{Project, commands, program};
use super::common::{check_key, finding, healer_kind, parse_url};

pub(super) fn check(project: &Project, out: &mut Vec<Finding>) {
    for unit in &project.units {
        // A healer opted in to healing: it would restart itself (the sidecar refuses to, so
        // the label is a mistake either way).
        if let Some(kind) = healer_kind(unit) {
            let label = std::iter::once(OPT_IN)
                .chain(OTHER_HEALERS.iter().map(|(l, _)| *l))
                .find_map(|l| unit.label(l).filter(|x| x.value.trim() == "true"));
            if let Some(l) = label {
                out.push(finding(
                    "HC012",
                    unit,
                    &format!("labels.{}", l.key),
                    &l.at,
                    format!(
                        "{}: labels.{}: the healer ({kind}) is labelled to be healed: nothing may be responsible for its own restart",
                        unit.name, l.key
                    ),
                ));
            }
        }
        // A check that kills or restarts its own container.
        for c in &unit.checks {
            for cmd in commands(&c.words()) {
                let Some((prog, args)) = program(&cmd) else {
                    continue;
                };
                let kills_self = match prog {
                    "kill" => args.last().is_some_and(|a| a == "1"),
                    "pkill" | "killall" | "reboot" | "shutdown" => true,
                    "docker" | "docker-compose" => args
                        .iter()
                        .any(|a| matches!(a.as_str(), "restart" | "kill" | "stop")),
                    _ => false,
                };
                if kills_self {
                    let key = format!("{}.test", check_key(c));
                    out.push(finding(
                        "HC012",
                        unit,
                        &key,
                        &c.at,
                        format!(
                            "{}: {key}: the check restarts or kills its own container ({prog})",
                            unit.name
                        ),
                    ));
                }
            }
        }
        // Waiting for its own ready signal before starting what publishes it.
        for cmd in commands(&unit.argv) {
            let Some((prog, args)) = program(&cmd) else {
                continue;
            };
            if prog != "healthcheck" || args.first().map(String::as_str) != Some("wait") {
                continue;
            }
            let own = unit
                .env_var("AGENT_NAME")
                .and_then(|e| e.value.clone())
                .unwrap_or_else(|| unit.service.clone());
            let waits_self = args
                .iter()
                .filter_map(|a| parse_url(a))
                .any(|u| u.scheme == "ready" && u.host.split(',').any(|agent| agent == own));
            if waits_self {
                out.push(finding(
                    "HC012",
                    unit,
                    "entrypoint",
                    &unit.at,
                    format!(
                        "{}: entrypoint: healthcheck wait for ready://{own}, its own signal: it waits for itself and never starts",
                        unit.name
                    ),
                ));
            }
        }
        for dep in unit.depends_on.iter().filter(|d| d.service == unit.service) {
            out.push(finding(
                "HC012",
                unit,
                &format!("depends_on.{}", dep.service),
                &dep.at,
                format!(
                    "{}: depends_on.{}: depends on itself",
                    unit.name, dep.service
                ),
            ));
        }
    }
}
