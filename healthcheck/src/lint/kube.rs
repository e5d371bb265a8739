//! Kubernetes manifests: every container of Deployments, StatefulSets, DaemonSets, ReplicaSets,
//! Jobs, CronJobs and Pods (also inside a `List`), in multi-document files, as units with their
//! liveness, readiness and startup probes.

use std::path::Path;
use std::time::Duration;

use super::compose::ignore_list;
use super::error::LintError;
use super::model::{Check, EnvVar, Location, Platform, Role, Test, Unit};
use super::silence;
use super::yaml::{Node, Value, parse_documents};

/// The annotation that silences rules on a workload, as `x-healthcheck-lint` does in Compose.
pub(crate) const IGNORE_ANNOTATION: &str = "healthcheck-lint/ignore";

/// True when the documents look like Kubernetes objects (`apiVersion` and `kind`).
pub(crate) fn is_manifest(docs: &[Node]) -> bool {
    docs.iter()
        .any(|d| d.get("apiVersion").is_some() && d.get("kind").is_some())
}

/// The units of one manifest file.
pub(crate) fn load(path: &Path, text: &str) -> Result<Vec<Unit>, LintError> {
    let docs = parse_documents(text).map_err(|e| super::error::yaml_error(path, &e))?;
    let mut units = Vec::new();
    let mut starts = Vec::new();
    for doc in &docs {
        let mut objects = vec![doc];
        if doc.get("kind").and_then(Node::str) == Some("List") {
            objects = doc
                .get("items")
                .map(|i| i.items().iter().collect())
                .unwrap_or_default();
        }
        for obj in objects {
            let before = units.len();
            workload(path, obj, &mut units);
            if units.len() > before {
                starts.push((first_line(obj), units[before].name.clone()));
            }
        }
    }
    // A comment silences the containers of the document it is in or directly above.
    starts.sort();
    let ends: Vec<u32> = Vec::new();
    let by_doc = silence::attribute(text, &starts, &ends);
    for (first, ids) in by_doc {
        let prefix = workload_prefix(&first);
        for u in units
            .iter_mut()
            .filter(|u| workload_prefix(&u.name) == prefix)
        {
            u.ignored.extend(ids.iter().cloned());
        }
    }
    Ok(units)
}

/// `Deployment/worker` of `Deployment/worker/container`.
fn workload_prefix(name: &str) -> String {
    name.split('/').take(2).collect::<Vec<_>>().join("/")
}

/// The first line of a document (its first key).
fn first_line(node: &Node) -> u32 {
    node.entries().first().map_or(node.line, |(k, _)| k.line)
}

fn workload(path: &Path, obj: &Node, units: &mut Vec<Unit>) {
    let kind = obj.get("kind").and_then(Node::str).unwrap_or_default();
    let pod_path: &[&str] = match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            &["spec", "template", "spec"]
        }
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        "Pod" => &["spec"],
        _ => return,
    };
    let Some(pod) = obj.at(pod_path) else {
        return;
    };
    let name = obj
        .at(&["metadata", "name"])
        .and_then(Node::scalar)
        .unwrap_or_else(|| "unnamed".into());
    let replicas = match kind {
        "Deployment" | "StatefulSet" | "ReplicaSet" => obj
            .at(&["spec", "replicas"])
            .and_then(Node::scalar)
            .and_then(|s| s.parse().ok())
            .unwrap_or(1),
        _ => 1,
    };
    let mut ignored: Vec<String> = obj
        .at(&["metadata", "annotations", IGNORE_ANNOTATION])
        .and_then(Node::scalar)
        .map(|s| {
            s.split([',', ' '])
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    ignored.extend(ignore_list(obj.get("x-healthcheck-lint")));
    let containers = pod.get("containers").map(Node::items).unwrap_or_default();
    let several = containers.len() > 1;
    for c in containers {
        let cname = c.get("name").and_then(Node::scalar).unwrap_or_default();
        let full = if several {
            format!("{kind}/{name}/{cname}")
        } else {
            format!("{kind}/{name}")
        };
        let loc = |line: u32| Location {
            file: path.to_path_buf(),
            line,
        };
        let mut checks = Vec::new();
        for (key, role) in [
            ("livenessProbe", Role::Liveness),
            ("readinessProbe", Role::Readiness),
            ("startupProbe", Role::Startup),
        ] {
            let Some((k, probe)) = c.entries().iter().find(|(k, _)| k.name == key) else {
                continue;
            };
            if let Some(check) = probe_check(probe, role, loc(k.line)) {
                checks.push(check);
            }
        }
        let env = c
            .get("env")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .map(|e| {
                let value = e.get("value").and_then(Node::scalar);
                EnvVar {
                    name: e.get("name").and_then(Node::scalar).unwrap_or_default(),
                    raw: value.clone(),
                    value,
                    at: loc(e.line),
                }
            })
            .collect();
        let mut argv: Vec<String> = c
            .get("command")
            .map(|n| n.items().iter().filter_map(Node::scalar).collect())
            .unwrap_or_default();
        argv.extend(
            c.get("args")
                .map(|n| {
                    n.items()
                        .iter()
                        .filter_map(Node::scalar)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        );
        units.push(Unit {
            name: full,
            service: cname,
            platform: Platform::Kubernetes,
            at: loc(c.line),
            image: c.get("image").and_then(Node::scalar),
            built_from: None,
            checks,
            env,
            labels: Vec::new(),
            depends_on: Vec::new(),
            argv,
            publishes_ports: false,
            replicas,
            active: true,
            ignored: ignored.iter().cloned().collect(),
            aliases: Vec::new(),
            mounts: c
                .get("volumeMounts")
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .filter_map(|m| m.get("mountPath").and_then(Node::scalar))
                .collect(),
        });
    }
}

/// Seconds as Kubernetes writes them.
fn seconds(probe: &Node, key: &str) -> Option<Duration> {
    probe
        .get(key)
        .and_then(Node::scalar)
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
}

fn probe_check(probe: &Node, role: Role, at: Location) -> Option<Check> {
    let test = if let Some(exec) = probe.get("exec") {
        Test::Exec(
            exec.get("command")
                .map(|c| c.items().iter().filter_map(Node::scalar).collect())
                .unwrap_or_default(),
        )
    } else if let Some(http) = probe.get("httpGet") {
        Test::Http {
            host: http.get("host").and_then(Node::scalar),
            port: http.get("port").and_then(Node::scalar).unwrap_or_default(),
            path: http
                .get("path")
                .and_then(Node::scalar)
                .unwrap_or_else(|| "/".into()),
        }
    } else if let Some(tcp) = probe.get("tcpSocket") {
        Test::Tcp {
            host: tcp.get("host").and_then(Node::scalar),
            port: tcp.get("port").and_then(Node::scalar).unwrap_or_default(),
        }
    } else if let Some(grpc) = probe.get("grpc") {
        Test::Grpc {
            port: grpc.get("port").and_then(Node::scalar).unwrap_or_default(),
        }
    } else {
        return None;
    };
    if probe.value == Value::Null {
        return None;
    }
    Some(Check {
        role,
        test,
        interval: seconds(probe, "periodSeconds"),
        timeout: seconds(probe, "timeoutSeconds"),
        retries: probe
            .get("failureThreshold")
            .and_then(Node::scalar)
            .and_then(|s| s.parse().ok()),
        start_period: seconds(probe, "initialDelaySeconds"),
        start_interval: None,
        at,
        from_image: false,
    })
}
