//! Dependents restarted with their provider (issue 21, deliverable 1), the pure part.
//!
//! A container that joins another's network namespace (Docker: `HostConfig.NetworkMode:
//! container:<id>`, Compose: `network_mode: service:vpn`) keeps a dead namespace when that
//! container is restarted, whoever restarted it, until it is restarted itself (docker-autoheal#49,
//! deunhealth#11). The label `healthcheck.heal.with=SERVICE[,SERVICE]` declares other couplings
//! the same way: restart me after SERVICE restarts.
//!
//! Here, with no I/O and no clock: [`couplings`] builds the graph (refusing self-references,
//! unknown services and cycles with a message naming them), [`restarted`] tells which providers
//! started again between two observations, and [`order`] lists the dependents to restart after a
//! provider, in order (a dependent's own dependents after it), only those opted in with
//! `healthcheck.heal=true`. Restarting them, within each one's own backoff and budget, is the
//! governor's part.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

/// How a dependent is tied to its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Coupling {
    /// It runs in the provider's network namespace (`NetworkMode: container:<id>`).
    Namespace,
    /// It says so (`healthcheck.heal.with`).
    Declared,
}

/// What the graph needs of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Full container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// Compose project.
    pub project: String,
    /// Compose service (the name outside Compose).
    pub service: String,
    /// `HostConfig.NetworkMode` (`container:<id or name>` for a joined namespace).
    pub network_mode: Option<String>,
    /// The value of `healthcheck.heal.with`, when set.
    pub with: Option<String>,
    /// `healthcheck.heal=true`.
    pub opted_in: bool,
}

/// One coupling: `dependent` is restarted after `provider`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// The provider's container id.
    pub provider: String,
    /// The dependent's container id.
    pub dependent: String,
    /// Why.
    pub coupling: Coupling,
}

/// A coupling refused, and why (shown on the page, said once in the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The container whose coupling is refused.
    pub id: String,
    /// One line naming the label or network mode and what is wrong.
    pub message: String,
}

/// The couplings among `nodes`, and the ones refused. A declared coupling names services of the
/// dependent's own Compose project; one naming its own service, a service that does not exist,
/// or closing a cycle is refused, naming the services involved. A namespace coupling is Docker's
/// fact and is kept as long as it closes no cycle (Docker forbids that anyway).
pub fn couplings(nodes: &[Node]) -> (Vec<Edge>, Vec<Refused>) {
    let mut edges = BTreeSet::new();
    let mut refused = Vec::new();
    let by_id: HashMap<&str, &Node> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let by_name: HashMap<&str, &Node> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    for n in nodes {
        if let Some(target) = n
            .network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("container:"))
        {
            // Docker stores the id; a name is accepted too (docker run --network container:NAME).
            let provider = by_id
                .get(target)
                .or_else(|| by_name.get(target))
                .copied()
                .or_else(|| {
                    // A short id prefix, when it names exactly one container.
                    let mut hits = nodes.iter().filter(|c| c.id.starts_with(target));
                    match (hits.next(), hits.next()) {
                        (Some(one), None) if target.len() >= 12 => Some(one),
                        _ => None,
                    }
                });
            if let Some(p) = provider
                && p.id != n.id
            {
                edges.insert(Edge {
                    provider: p.id.clone(),
                    dependent: n.id.clone(),
                    coupling: Coupling::Namespace,
                });
            }
        }
        let Some(with) = n.with.as_deref() else {
            continue;
        };
        for service in with.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if service == n.service {
                refused.push(Refused {
                    id: n.id.clone(),
                    message: format!(
                        "label {}={with:?} on {}: names its own service {service}: a container \
                         is never restarted after itself",
                        super::labels::WITH,
                        n.name
                    ),
                });
                continue;
            }
            let providers: Vec<&Node> = nodes
                .iter()
                .filter(|p| p.project == n.project && p.service == service)
                .collect();
            if providers.is_empty() {
                refused.push(Refused {
                    id: n.id.clone(),
                    message: format!(
                        "label {}={with:?} on {}: no service {service} in project {}",
                        super::labels::WITH,
                        n.name,
                        n.project
                    ),
                });
            }
            for p in providers {
                edges.insert(Edge {
                    provider: p.id.clone(),
                    dependent: n.id.clone(),
                    coupling: Coupling::Declared,
                });
            }
        }
    }
    // Cycles, by service: every declared edge on a cycle is refused (the namespace edges are
    // Docker's and cannot form one). Repeated until none is left, so nested cycles all go.
    while let Some(cycle) = find_cycle(&edges) {
        let names: Vec<&str> = cycle
            .iter()
            .map(|id| {
                by_id
                    .get(id.as_str())
                    .map_or(id.as_str(), |n| n.service.as_str())
            })
            .collect();
        let path = names.join(" → ");
        let on_cycle: Vec<Edge> = edges
            .iter()
            .filter(|e| {
                e.coupling == Coupling::Declared
                    && cycle
                        .windows(2)
                        .any(|w| w[0] == e.provider && w[1] == e.dependent)
            })
            .cloned()
            .collect();
        if on_cycle.is_empty() {
            break;
        }
        for e in on_cycle {
            if let Some(n) = by_id.get(e.dependent.as_str()) {
                refused.push(Refused {
                    id: e.dependent.clone(),
                    message: format!(
                        "label {} on {}: a cycle ({path}): refused, none of it is restarted \
                         after the others",
                        super::labels::WITH,
                        n.name
                    ),
                });
            }
            edges.remove(&e);
        }
    }
    refused.sort_by(|a, b| (&a.id, &a.message).cmp(&(&b.id, &b.message)));
    refused.dedup();
    (edges.into_iter().collect(), refused)
}

/// A cycle among `edges` as the list of ids along it (first = last), if there is one.
fn find_cycle(edges: &BTreeSet<Edge>) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for e in edges {
        next.entry(e.provider.as_str())
            .or_default()
            .push(e.dependent.as_str());
    }
    // 0 unvisited, 1 on the path, 2 done.
    let mut mark: HashMap<&str, u8> = HashMap::new();
    fn visit<'a>(
        at: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        mark: &mut HashMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        mark.insert(at, 1);
        path.push(at);
        for &n in next.get(at).map_or(&[][..], Vec::as_slice) {
            match mark.get(n).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|p| *p == n).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[start..].iter().map(|s| (*s).to_owned()).collect();
                    cycle.push(n.to_owned());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(n, next, mark, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        mark.insert(at, 2);
        None
    }
    let starts: Vec<&str> = next.keys().copied().collect();
    for s in starts {
        if mark.get(s).copied().unwrap_or(0) == 0
            && let Some(c) = visit(s, &next, &mut mark, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

/// The dependents to restart after `provider` started again, in order: every opted-in
/// container that hangs from it (directly, or through opted-in dependents), each after all of its
/// own providers among them (a dependent's own dependents after it, also when it depends on the
/// provider directly as well), ties by service then name; each once. A dependent that is not
/// opted in is left alone, and so are the ones that depend only through it.
pub fn order(provider: &str, edges: &[Edge], nodes: &[Node]) -> Vec<String> {
    let by_id: HashMap<&str, &Node> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    // Reachable through opted-in dependents only.
    let mut reach: BTreeSet<&str> = BTreeSet::new();
    let mut frontier = vec![provider];
    while let Some(at) = frontier.pop() {
        for e in edges.iter().filter(|e| e.provider == at) {
            let d = e.dependent.as_str();
            if d != provider && by_id.get(d).is_some_and(|n| n.opted_in) && reach.insert(d) {
                frontier.push(d);
            }
        }
    }
    // Kahn's order over the reachable part: a dependent is ready once none of its providers
    // among the reachable ones is still waiting.
    let mut out: Vec<String> = Vec::new();
    let mut left: BTreeSet<&str> = reach.clone();
    while !left.is_empty() {
        let mut ready: Vec<&Node> = left
            .iter()
            .filter(|d| {
                !edges
                    .iter()
                    .any(|e| e.dependent == **d && left.contains(e.provider.as_str()))
            })
            .filter_map(|d| by_id.get(d).copied())
            .collect();
        if ready.is_empty() {
            // A cycle (refused couplings never reach here; Docker forbids namespace cycles).
            break;
        }
        ready.sort_by(|a, b| (&a.service, &a.name, &a.id).cmp(&(&b.service, &b.name, &b.id)));
        for n in ready {
            left.remove(n.id.as_str());
            out.push(n.id.clone());
        }
    }
    out
}

/// The providers that started again between two observations of the containers' start times
/// (`id → StartedAt`) and run now: each is restarted (by the governor, Docker's restart policy
/// or a person), and its dependents are due once it runs.
pub fn restarted<'a>(
    before: &HashMap<String, String>,
    now: impl IntoIterator<Item = (&'a str, &'a str, bool)>,
) -> Vec<String> {
    now.into_iter()
        .filter(|(id, started, running)| {
            *running && before.get(*id).is_some_and(|b| b.as_str() != *started)
        })
        .map(|(id, _, _)| id.to_owned())
        .collect()
}

/// What is known of a dependent due for a restart, when its next step is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// It is the sidecar's own container.
    pub is_self: bool,
    /// It runs.
    pub running: bool,
    /// Its current start (Docker's `StartedAt`, Unix nanoseconds), when known.
    pub started_ns: Option<u64>,
    /// A restart of it is under way, or its restart's new start is not seen yet.
    pub busy: bool,
    /// It is quarantined.
    pub quarantined: bool,
    /// Its restarts within its budget window.
    pub restarts_in_window: u32,
    /// Its budget.
    pub budget: u32,
    /// Its backoff's wait left, when it is backing off.
    pub backoff_left: Option<Duration>,
    /// Restarts under way in the stack, and how many may be at once.
    pub in_flight: (usize, usize),
}

/// What is known of one of a due dependent's providers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// Its name.
    pub name: String,
    /// It runs.
    pub running: bool,
    /// Its current start, Unix nanoseconds, when known.
    pub started_ns: Option<u64>,
    /// It is itself due for a restart, being restarted, or its new start is not seen yet: its
    /// dependents wait for it.
    pub pending: bool,
}

/// A due dependent's next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Restart it now (its restart number within its window, from 1).
    Restart {
        /// Within its window, from 1.
        attempt: u32,
    },
    /// Not now: it stays due.
    Wait(Wait),
    /// It is no longer due: done, or given up, and why.
    Leave(Leave),
    /// Its budget is spent: quarantined (with its restarts in the window), no longer due.
    Quarantine {
        /// Restarts within the window.
        restarts: u32,
    },
}

/// Why a due dependent waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// Its own restart is under way, or its new start is not seen yet.
    Busy,
    /// A provider of it is restarted first (or its new start is not seen yet).
    ProviderFirst(String),
    /// A provider of it does not run: Docker cannot join a stopped container's namespace.
    ProviderNotRunning(String),
    /// Its own backoff, this much longer.
    Backoff(Duration),
    /// Too many restarts under way in the stack.
    TooManyInFlight,
}

/// Why a dependent is no longer due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leave {
    /// It started after every provider's current start: nothing to do (already restarted, by
    /// the governor or anyone).
    Fresh,
    /// It does not run: when it starts, it joins its providers as they are.
    NotRunning,
    /// It is quarantined.
    Quarantined,
    /// It is the sidecar's own container.
    IsSelf,
    /// None of its providers is known any more (removed, or recreated under a new id).
    ProviderGone,
    /// A start time is not known: the order cannot be told, so nothing is done.
    StartUnknown,
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wait::Busy => f.write_str("its own restart is under way"),
            Wait::ProviderFirst(p) => {
                write!(f, "waiting for its provider {p} to be restarted first")
            }
            Wait::ProviderNotRunning(p) => {
                write!(f, "waiting for its provider {p} to be running")
            }
            Wait::Backoff(d) => write!(f, "backing off, {:.1}s to go", d.as_secs_f64()),
            Wait::TooManyInFlight => f.write_str("too many restarts under way"),
        }
    }
}

impl fmt::Display for Leave {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Leave::Fresh => "it started after its providers: nothing to do",
            Leave::NotRunning => "not running: it joins its providers when it starts",
            Leave::Quarantined => "quarantined",
            Leave::IsSelf => "the sidecar never restarts its own container",
            Leave::ProviderGone => {
                "its provider is gone (removed, or recreated under a new id): not restarted; a \
                 recreated provider needs its dependents recreated too"
            }
            Leave::StartUnknown => "a start time is not known: the order cannot be told",
        })
    }
}

/// The next step for a dependent due after its providers (`providers`: those it depends on, as
/// they are now). A pure function; the governor carries it out.
///
/// It is done once it started after every provider's current start (whoever restarted it); it
/// waits while a provider is itself restarted first or does not run (Docker refuses to start a
/// container in a stopped one's namespace); then its own rules hold as for any restart: the
/// budget (spent: quarantine), the backoff, restarts under way at once.
pub fn next(due: &Due, providers: &[Provider]) -> Next {
    if due.is_self {
        return Next::Leave(Leave::IsSelf);
    }
    if providers.is_empty() {
        return Next::Leave(Leave::ProviderGone);
    }
    if due.busy {
        return Next::Wait(Wait::Busy);
    }
    let Some(started) = due.started_ns else {
        return Next::Leave(Leave::StartUnknown);
    };
    let mut latest = 0;
    for p in providers {
        match p.started_ns {
            Some(s) => latest = latest.max(s),
            None => return Next::Leave(Leave::StartUnknown),
        }
    }
    if let Some(p) = providers.iter().find(|p| p.pending) {
        return Next::Wait(Wait::ProviderFirst(p.name.clone()));
    }
    if started > latest {
        return Next::Leave(Leave::Fresh);
    }
    if !due.running {
        return Next::Leave(Leave::NotRunning);
    }
    if due.quarantined {
        return Next::Leave(Leave::Quarantined);
    }
    if let Some(p) = providers.iter().find(|p| !p.running) {
        return Next::Wait(Wait::ProviderNotRunning(p.name.clone()));
    }
    if due.restarts_in_window >= due.budget {
        return Next::Quarantine {
            restarts: due.restarts_in_window,
        };
    }
    if let Some(left) = due.backoff_left {
        return Next::Wait(Wait::Backoff(left));
    }
    if due.in_flight.0 >= due.in_flight.1 {
        return Next::Wait(Wait::TooManyInFlight);
    }
    Next::Restart {
        attempt: due.restarts_in_window + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(
        id: &str,
        service: &str,
        mode: Option<&str>,
        with: Option<&str>,
        opted_in: bool,
    ) -> Node {
        Node {
            id: format!("{id:0<64}"),
            name: format!("demo-{service}-1"),
            project: "demo".into(),
            service: service.into(),
            network_mode: mode.map(str::to_owned),
            with: with.map(str::to_owned),
            opted_in,
        }
    }

    fn id(s: &str) -> String {
        format!("{s:0<64}")
    }

    /// The VPN pattern: two containers in the provider's namespace (one named by id, one by
    /// name), one declared coupling, and a dependent of a dependent: restarted in that order;
    /// one not opted in is left alone, with what hangs only from it.
    #[test]
    fn namespace_and_declared_couplings_in_order() {
        let vpn = id("a1");
        let nodes = vec![
            node("a1", "vpn", None, None, true),
            node(
                "b2",
                "torrent",
                Some(&format!("container:{vpn}")),
                None,
                true,
            ),
            node("c3", "browser", Some("container:demo-vpn-1"), None, true),
            node("d4", "indexer", None, Some("torrent"), true),
            node(
                "e5",
                "proxy",
                Some(&format!("container:{vpn}")),
                None,
                false,
            ),
            node("f6", "stats", None, Some("proxy"), true),
            node("g7", "other", None, None, true),
        ];
        let (edges, refused) = couplings(&nodes);
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(
            order(&vpn, &edges, &nodes),
            [id("c3"), id("b2"), id("d4")],
            "browser and torrent (by service), then indexer after torrent; proxy not opted in"
        );
        assert_eq!(order(&id("b2"), &edges, &nodes), [id("d4")]);
        assert!(order(&id("g7"), &edges, &nodes).is_empty());
    }

    /// A label naming its own service, a service that does not exist, and a cycle are refused,
    /// each with a message naming the label, the container and the services; the cycle's
    /// members are then restarted after no one.
    #[test]
    fn self_unknown_and_cycles_refused() {
        let nodes = vec![
            node("a1", "api", None, Some("api"), true),
            node("b2", "worker", None, Some("ghost"), true),
            node("c3", "left", None, Some("right"), true),
            node("d4", "right", None, Some("left"), true),
        ];
        let (edges, refused) = couplings(&nodes);
        let msgs: Vec<&str> = refused.iter().map(|r| r.message.as_str()).collect();
        assert!(
            msgs.iter()
                .any(|m| m.contains("demo-api-1") && m.contains("names its own service api")),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("no service ghost in project demo"))
        );
        assert!(
            msgs.iter().any(
                |m| m.contains("a cycle (") && m.contains("left → right → left")
                    || m.contains("right → left → right")
            ),
            "{msgs:#?}"
        );
        assert!(edges.is_empty(), "{edges:?}");
        assert!(order(&id("c3"), &edges, &nodes).is_empty());
    }

    /// A provider counts as restarted when its start time moved and it runs: whoever restarted
    /// it; one that stopped, or did not move, does not.
    #[test]
    fn restarts_seen_from_start_times() {
        let before: HashMap<String, String> = [
            ("a".to_string(), "t1".to_string()),
            ("b".to_string(), "t1".to_string()),
            ("c".to_string(), "t1".to_string()),
        ]
        .into();
        let now = [
            ("a", "t2", true),
            ("b", "t1", true),
            ("c", "t2", false),
            ("d", "t2", true),
        ];
        assert_eq!(restarted(&before, now), ["a"]);
    }

    fn due() -> Due {
        Due {
            is_self: false,
            running: true,
            started_ns: Some(100),
            busy: false,
            quarantined: false,
            restarts_in_window: 0,
            budget: 3,
            backoff_left: None,
            in_flight: (0, 1),
        }
    }

    fn provider(started: u64) -> Provider {
        Provider {
            name: "demo-vpn-1".into(),
            running: true,
            started_ns: Some(started),
            pending: false,
        }
    }

    /// A dependent older than its provider's current start is restarted; one that started after
    /// it (restarted already, by anyone) is left, and so is one whose provider is gone or whose
    /// start is unknown (the order cannot be told: nothing is done).
    #[test]
    fn restarted_only_when_older_than_its_provider() {
        assert_eq!(next(&due(), &[provider(200)]), Next::Restart { attempt: 1 });
        assert_eq!(next(&due(), &[provider(50)]), Next::Leave(Leave::Fresh));
        assert_eq!(next(&due(), &[]), Next::Leave(Leave::ProviderGone));
        let mut p = provider(200);
        p.started_ns = None;
        assert_eq!(next(&due(), &[p]), Next::Leave(Leave::StartUnknown));
        let d = Due {
            started_ns: None,
            ..due()
        };
        assert_eq!(next(&d, &[provider(200)]), Next::Leave(Leave::StartUnknown));
        let d = Due {
            is_self: true,
            ..due()
        };
        assert_eq!(next(&d, &[provider(200)]), Next::Leave(Leave::IsSelf));
    }

    /// Docker refuses to restart a container in a stopped provider's namespace: it waits for the
    /// provider to run, and for a provider that is itself restarted first; it waits out its own
    /// restart, its backoff and the stack's restarts under way, and a spent budget quarantines.
    #[test]
    fn waits_and_budget() {
        let mut stopped = provider(200);
        stopped.running = false;
        assert_eq!(
            next(&due(), &[stopped]),
            Next::Wait(Wait::ProviderNotRunning("demo-vpn-1".into()))
        );
        let mut first = provider(200);
        first.pending = true;
        assert_eq!(
            next(&due(), &[provider(200), first]),
            Next::Wait(Wait::ProviderFirst("demo-vpn-1".into()))
        );
        let busy = Due {
            busy: true,
            ..due()
        };
        assert_eq!(next(&busy, &[provider(200)]), Next::Wait(Wait::Busy));
        let backoff = Due {
            backoff_left: Some(Duration::from_secs(4)),
            restarts_in_window: 1,
            ..due()
        };
        assert_eq!(
            next(&backoff, &[provider(200)]),
            Next::Wait(Wait::Backoff(Duration::from_secs(4)))
        );
        let spent = Due {
            restarts_in_window: 3,
            backoff_left: Some(Duration::from_secs(4)),
            ..due()
        };
        assert_eq!(
            next(&spent, &[provider(200)]),
            Next::Quarantine { restarts: 3 }
        );
        let crowded = Due {
            in_flight: (1, 1),
            ..due()
        };
        assert_eq!(
            next(&crowded, &[provider(200)]),
            Next::Wait(Wait::TooManyInFlight)
        );
        let quarantined = Due {
            quarantined: true,
            ..due()
        };
        assert_eq!(
            next(&quarantined, &[provider(200)]),
            Next::Leave(Leave::Quarantined)
        );
        let stopped_dep = Due {
            running: false,
            ..due()
        };
        assert_eq!(
            next(&stopped_dep, &[provider(200)]),
            Next::Leave(Leave::NotRunning)
        );
    }

    /// A diamond (vpn → app, vpn → proxy, app → proxy): proxy comes after app although it also
    /// hangs from vpn directly, so one restart of each follows vpn's.
    #[test]
    fn diamond_in_topological_order() {
        let vpn = id("a1");
        let nodes = vec![
            node("a1", "vpn", None, None, true),
            node("b2", "zapp", Some(&format!("container:{vpn}")), None, true),
            node(
                "c3",
                "proxy",
                Some(&format!("container:{vpn}")),
                Some("zapp"),
                true,
            ),
        ];
        let (edges, refused) = couplings(&nodes);
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(order(&vpn, &edges, &nodes), [id("b2"), id("c3")]);
    }
}
