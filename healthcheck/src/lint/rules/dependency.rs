//! HC009, HC010 and HC011: what depends on what. Restarts tied to a shared dependency, and
//! Compose gating that does not wait or cannot start.

use super::super::finding::{Finding, Severity};
use super::super::images;
use super::super::labels::{OPT_IN, OTHER_HEALERS};
use super::super::model::{Platform, Project, Role, Test, Unit};
use super::common::{Contact, check_key, contacts, finding, healers, with_severity};

pub(super) fn check(project: &Project, out: &mut Vec<Finding>) {
    shared(project, out);
    gating(project, out);
}

/// Whether something outside the orchestrator restarts this Compose unit on a failing check:
/// which healer, if any.
fn healed_by(project: &Project, unit: &Unit) -> Option<&'static str> {
    if unit.label(OPT_IN).is_some_and(|l| l.value.trim() == "true") {
        return Some("healthcheck-sidecar");
    }
    for (label, healer) in OTHER_HEALERS {
        if unit.label(label).is_some_and(|l| l.value.trim() == "true") {
            return Some(healer);
        }
    }
    // docker-autoheal with AUTOHEAL_CONTAINER_LABEL=all heals every container.
    healers(project).into_iter().find_map(|(h, kind)| {
        (kind == "docker-autoheal"
            && h.env_var("AUTOHEAL_CONTAINER_LABEL")
                .and_then(|e| e.value.as_deref())
                == Some("all"))
        .then_some("docker-autoheal")
    })
}

/// Why a contact is a shared dependency, when it is.
fn shared_dependency(c: &Contact, unit: &Unit, sidecar_heals: bool) -> Option<String> {
    if c.scheme == "ready" {
        let store_file = c.query.split('&').any(|kv| kv == "store=file");
        // The sidecar reads the same store and heals nothing while it is unknown, nor during
        // a shared outage: its own agents' ready:// checks do not storm.
        if store_file || sidecar_heals {
            return None;
        }
        return Some(format!(
            "ready://{} reads the agents' store (Redis or NATS)",
            c.host
        ));
    }
    if c.is_local() || unit.names().any(|n| n == c.host) {
        return None;
    }
    Some(match c.scheme.as_str() {
        "redis" | "rediss" | "redis+sentinel" => format!("Redis at {}", c.host),
        "nats" | "tls" => format!("NATS at {}", c.host),
        "postgres" => format!("the database at {}", c.host),
        _ => format!("another service's endpoint ({})", c.host),
    })
}

/// HC009.
fn shared(project: &Project, out: &mut Vec<Finding>) {
    for unit in &project.units {
        let healer = match unit.platform {
            Platform::Compose => healed_by(project, unit),
            Platform::Kubernetes => None,
        };
        for c in &unit.checks {
            let restarts = match (unit.platform, c.role) {
                (Platform::Kubernetes, Role::Liveness | Role::Startup) => {
                    format!(
                        "Kubernetes restarts the container when its {} fails",
                        c.role.key()
                    )
                }
                (Platform::Compose, Role::Docker) => match healer {
                    Some(h) => format!("{h} restarts it when this check fails"),
                    None => continue,
                },
                _ => continue,
            };
            let sidecar = healer == Some("healthcheck-sidecar");
            let Some(why) = contacts(c)
                .iter()
                .find_map(|x| shared_dependency(x, unit, sidecar))
            else {
                continue;
            };
            let key = check_key(c);
            out.push(finding(
                "HC009",
                unit,
                &key,
                &c.at,
                format!(
                    "{}: {key}: depends on {why}, and {restarts}: a restart storm when it blips",
                    unit.name
                ),
            ));
        }
    }
}

/// True when the service has a check Compose can wait on, None when unknowable (an image that
/// may have its own HEALTHCHECK).
fn has_check(unit: &Unit) -> Option<bool> {
    match unit.docker_check() {
        Some(c) => Some(!matches!(c.test, Test::Disabled)),
        // A Dockerfile we read, or an image whose contents we know (none of which has one).
        None if unit.built_from.is_some() => Some(false),
        None if images::contents(unit.image.as_deref(), None).is_some() => Some(false),
        None => None,
    }
}

/// HC010 and HC011.
fn gating(project: &Project, out: &mut Vec<Finding>) {
    for unit in project
        .units
        .iter()
        .filter(|u| u.platform == Platform::Compose)
    {
        for dep in &unit.depends_on {
            let Some(target) = project.service(&dep.service) else {
                continue;
            };
            let key = format!("depends_on.{}", dep.service);
            match dep.condition.as_deref() {
                None if has_check(target) == Some(true) => out.push(finding(
                    "HC010",
                    unit,
                    &key,
                    &dep.at,
                    format!(
                        "{}: {key}: no condition, so it starts as soon as {} starts, not when its healthcheck passes",
                        unit.name, dep.service
                    ),
                )),
                Some("service_healthy") => match has_check(target) {
                    Some(true) => {}
                    Some(false) => {
                        let what = if target.docker_check().is_some() {
                            "its healthcheck is disabled"
                        } else {
                            "it has no healthcheck"
                        };
                        out.push(finding(
                            "HC011",
                            unit,
                            &key,
                            &dep.at,
                            format!("{}: {key}: service_healthy, but {what}", unit.name),
                        ));
                    }
                    None => out.push(with_severity(
                        finding(
                            "HC011",
                            unit,
                            &key,
                            &dep.at,
                            format!(
                                "{}: {key}: service_healthy, but {} has no healthcheck here (fine only if its image has one)",
                                unit.name, dep.service
                            ),
                        ),
                        Severity::Warning,
                    )),
                },
                _ => {}
            }
        }
    }
}
