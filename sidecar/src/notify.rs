//! Notifications: one JSON document per heal decision, posted to every `--notify` URL.
//!
//! The governor must never wait for a webhook: it hands each document to [`Notifier::offer`], a
//! plain function that only tries to queue it (one bounded queue per target) and counts a drop
//! when the queue is full. One delivery task per target posts the documents in order, each
//! attempt under a timeout, with retries and doubling backoff; a target that hangs delays only
//! its own queue. The document's schema is in `sidecar/HEAL.md` ("Notifications").

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::state::{State, severity};

/// Version of the document's shape; bumped only on an incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Documents that may wait per target before new ones are dropped (and counted).
pub const QUEUE: usize = 256;

/// Attempts per document and target (the first included) before it is given up (and counted).
pub const ATTEMPTS: u32 = 5;

/// Each attempt's time limit: connecting, sending and reading the answer's status.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// The first wait before a retry; it doubles after each failed attempt.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Where documents go: an `http://` or `https://` URL that may carry a token, so its `Debug`
/// and [`Target::describe`] show the scheme, host and port only.
#[derive(Clone)]
pub struct Target {
    url: reqwest::Url,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Target").field(&self.describe()).finish()
    }
}

/// A notification target that cannot be used, naming where it came from (never the URL itself:
/// it may hold a token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {problem}")]
pub struct TargetError {
    /// `--notify` (with its position) or the file it was read from.
    pub origin: String,
    /// What is wrong.
    pub problem: String,
}

impl Target {
    /// Parses one URL; `origin` names where it came from, for the error.
    pub fn parse(url: &str, origin: &str) -> Result<Target, TargetError> {
        let bad = |problem: &str| TargetError {
            origin: origin.to_owned(),
            problem: problem.to_owned(),
        };
        let url = reqwest::Url::parse(url.trim()).map_err(|e| bad(&format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("only http:// and https:// URLs can be notified"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("the URL has no host"));
        }
        Ok(Target { url })
    }

    /// Every URL in a file (`--notify-file`, or a `*_FILE` variable): one per line; blank lines
    /// and lines starting with `#` are skipped. Errors name the file and line, never the URL.
    pub fn read_file(path: &std::path::Path) -> Result<Vec<Target>, TargetError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TargetError {
            origin: origin.clone(),
            problem: e.to_string(),
        })?;
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            out.push(Target::parse(line, &format!("{origin} line {}", n + 1))?);
        }
        if out.is_empty() {
            return Err(TargetError {
                origin,
                problem: "no URL in the file".into(),
            });
        }
        Ok(out)
    }

    /// `scheme://host:port`: what logs and metrics may show.
    pub fn describe(&self) -> String {
        match self.url.port_or_known_default() {
            Some(p) => format!(
                "{}://{}:{p}",
                self.url.scheme(),
                self.url.host_str().unwrap_or("")
            ),
            None => format!(
                "{}://{}",
                self.url.scheme(),
                self.url.host_str().unwrap_or("")
            ),
        }
    }
}

/// What a record said about the container when the decision was taken (its worst replica).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordView {
    /// `namespace/agent/replica`.
    pub replica: String,
    /// starting, ready, not-ready, stopping, stale, dead or unknown.
    pub state: String,
    /// The published reason, or why the state is unknown.
    pub reason: Option<String>,
}

/// What Docker's healthcheck said last.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthView {
    /// starting, healthy or unhealthy.
    pub status: Option<String>,
    /// Consecutive failed checks.
    pub failing_streak: u64,
    /// The last line of the last check's output.
    pub output: Option<String>,
}

/// One notification (schema in `sidecar/HEAL.md`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    /// [`SCHEMA_VERSION`].
    pub v: u32,
    /// `restart`, `restart-failed`, `quarantine`, `release`, `outage-begin`, `outage-end` or
    /// `dependents-restarted`.
    pub event: String,
    /// When it was decided, RFC 3339 UTC.
    pub at: String,
    /// Compose project (empty when none, and for stack-wide events).
    pub project: String,
    /// Compose service (empty for stack-wide events).
    pub service: String,
    /// Container name (empty for stack-wide events).
    pub container: String,
    /// Container id (empty for stack-wide events).
    pub id: String,
    /// The rule that fired, a fixed word (the metric's `why` label).
    pub rule: String,
    /// The same in words; for `restart-failed`, Docker's error.
    pub detail: String,
    /// Dry run: decided, nothing done.
    pub dry_run: bool,
    /// Restarts within the budget window, this one included.
    pub restarts_in_window: u32,
    /// The container's worst record, when an agent publishes in it.
    pub record: Option<RecordView>,
    /// Docker's last health result, when the container has a healthcheck.
    pub health: Option<HealthView>,
    /// The dependents restarted after it (`dependents-restarted` only).
    pub dependents: Vec<String>,
}

impl Document {
    /// A document about container `id` as `state` shows it (record and health filled from it).
    pub fn about(event: &str, rule: &str, detail: String, id: &str, state: &State) -> Document {
        let c = state.containers.iter().find(|c| c.id == id);
        let record = state
            .replicas_in(id)
            .min_by_key(|r| severity(r.observed))
            .map(|r| RecordView {
                replica: format!("{}/{}/{}", r.namespace, r.agent, r.replica),
                state: r.observed.as_str().to_owned(),
                reason: r.reason.clone(),
            });
        let health = c.filter(|c| c.health.is_some()).map(|c| HealthView {
            status: c.health.clone(),
            failing_streak: c.failing_streak,
            output: c.last_health_line.clone(),
        });
        Document {
            v: SCHEMA_VERSION,
            event: event.to_owned(),
            at: crate::http::api::rfc3339(SystemTime::now()),
            project: c.and_then(|c| c.project.clone()).unwrap_or_default(),
            service: c
                .map(|c| c.service.clone().unwrap_or_else(|| c.name.clone()))
                .unwrap_or_default(),
            container: c.map(|c| c.name.clone()).unwrap_or_default(),
            id: id.to_owned(),
            rule: rule.to_owned(),
            detail,
            dry_run: false,
            restarts_in_window: 0,
            record,
            health,
            dependents: Vec::new(),
        }
    }

    /// The document for a governor's event (the JSON it publishes on
    /// `healthcheck.heal.{project}.{service}`, read by its documented field names), or `None`
    /// for what is not notified (skips, earn-backs, the confirmation of a restart that worked).
    pub fn of_heal_event(e: &serde_json::Value, state: &State) -> Option<Document> {
        let text = |k: &str| e.get(k).and_then(serde_json::Value::as_str).unwrap_or("");
        let event = match text("decision") {
            d @ ("restart"
            | "restart-failed"
            | "quarantine"
            | "release"
            | "dependents-restarted") => d,
            _ => return None,
        };
        let mut d = Document::about(
            event,
            text("why"),
            text("detail").to_owned(),
            text("id"),
            state,
        );
        d.project = text("project").to_owned();
        d.service = text("service").to_owned();
        d.container = text("container").to_owned();
        d.dry_run = e
            .get("dry_run")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        d.restarts_in_window = e
            .get("restarts_in_window")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0) as u32;
        d.dependents = e
            .get("dependents")
            .and_then(serde_json::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Some(d)
    }

    /// A stack-wide shared outage began (`Some(why)`) or ended (`None`).
    pub fn outage(why: Option<&str>) -> Document {
        Document {
            v: SCHEMA_VERSION,
            event: if why.is_some() {
                "outage-begin"
            } else {
                "outage-end"
            }
            .to_owned(),
            at: crate::http::api::rfc3339(SystemTime::now()),
            project: String::new(),
            service: String::new(),
            container: String::new(),
            id: String::new(),
            rule: "shared-outage".to_owned(),
            detail: why.map_or_else(
                || "shared outage over: restarts allowed again".to_owned(),
                |w| format!("{w}: every restart held"),
            ),
            dry_run: false,
            restarts_in_window: 0,
            record: None,
            health: None,
            dependents: Vec::new(),
        }
    }
}

/// Counts per target, read by `/metrics`.
#[derive(Debug, Default)]
pub struct TargetStats {
    /// Delivered (a 2xx answer).
    pub sent: AtomicU64,
    /// Dropped because the target's queue was full.
    pub dropped: AtomicU64,
    /// Given up after [`ATTEMPTS`] failed attempts.
    pub failed: AtomicU64,
}

/// What `/metrics` reads: each target's description and counts.
#[derive(Debug, Default)]
pub struct Stats {
    /// One per target, in `--notify` order.
    pub targets: Vec<(String, TargetStats)>,
}

/// The governor's side: cheap to clone, never waits.
#[derive(Debug, Clone)]
pub struct Notifier {
    queues: Arc<Vec<mpsc::Sender<Arc<Document>>>>,
    stats: Arc<Stats>,
    snapshots: watch::Receiver<Arc<State>>,
    /// Per container under restart: the rule that fired, so the restart's outcome names it.
    /// An entry leaves when the outcome arrives (at most one restart per container is under way).
    rules: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
}

impl Notifier {
    /// A notifier for `targets` and their delivery tasks (spawn each), reading container details
    /// from the latest of `snapshots`.
    pub fn new(
        targets: Vec<Target>,
        snapshots: watch::Receiver<Arc<State>>,
    ) -> (Notifier, Vec<Delivery>) {
        let mut queues = Vec::with_capacity(targets.len());
        let mut receivers = Vec::with_capacity(targets.len());
        let mut stats = Stats::default();
        for t in &targets {
            let (tx, rx) = mpsc::channel(QUEUE);
            queues.push(tx);
            receivers.push(rx);
            stats.targets.push((t.describe(), TargetStats::default()));
        }
        let stats = Arc::new(stats);
        let deliveries = targets
            .into_iter()
            .zip(receivers)
            .enumerate()
            .map(|(index, (target, queue))| Delivery {
                target,
                queue,
                stats: Arc::clone(&stats),
                index,
                attempt_timeout: ATTEMPT_TIMEOUT,
                first_backoff: FIRST_BACKOFF,
            })
            .collect();
        (
            Notifier {
                queues: Arc::new(queues),
                stats,
                snapshots,
                rules: Arc::default(),
            },
            deliveries,
        )
    }

    /// The counts, for `/metrics`.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Queues `doc` for every target; a full queue drops it there and counts the drop. Never
    /// waits.
    pub fn offer(&self, doc: Document) {
        let doc = Arc::new(doc);
        for (i, q) in self.queues.iter().enumerate() {
            if q.try_send(Arc::clone(&doc)).is_err()
                && let Some((target, s)) = self.stats.targets.get(i)
            {
                s.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "heal", notify = %target, event = %doc.event, "notification dropped: the target's queue is full");
            }
        }
    }

    /// The governor's hook: notifies `event` (the governor's published JSON) when it is one
    /// that is notified.
    pub fn heal_event(&self, event: &serde_json::Value) {
        let state = self.snapshots.borrow().clone();
        let text = |k: &str| {
            event
                .get(k)
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
        };
        let (id, decision) = (text("id"), text("decision"));
        let Some(mut doc) = Document::of_heal_event(event, &state) else {
            if decision == "restarted" {
                self.rule_of(id, None);
            }
            return;
        };
        match decision {
            "restart" if !doc.dry_run => {
                self.rule_of(id, Some(text("why")));
            }
            "restart-failed" => {
                if let Some(rule) = self.rule_of(id, None) {
                    doc.rule = rule;
                }
            }
            _ => {}
        }
        self.offer(doc);
    }

    /// Remembers (`Some`) or takes (`None`) the rule of container `id`'s restart under way.
    fn rule_of(&self, id: &str, rule: Option<&str>) -> Option<String> {
        let mut rules = self.rules.lock().ok()?;
        match rule {
            Some(r) => rules.insert(id.to_owned(), r.to_owned()),
            None => rules.remove(id),
        }
    }

    /// The governor's hook for the shared-outage brake: `Some(why)` when it begins, `None`
    /// when it ends.
    pub fn outage(&self, why: Option<&str>) {
        self.offer(Document::outage(why));
    }
}

/// One target's delivery task: posts its queue in order until the notifier is dropped.
#[derive(Debug)]
pub struct Delivery {
    target: Target,
    queue: mpsc::Receiver<Arc<Document>>,
    stats: Arc<Stats>,
    index: usize,
    /// Each attempt's time limit ([`ATTEMPT_TIMEOUT`]).
    pub attempt_timeout: Duration,
    /// The first retry's wait ([`FIRST_BACKOFF`]).
    pub first_backoff: Duration,
}

impl Delivery {
    /// Runs until every notifier is dropped and the queue is empty, or `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let client = match reqwest::Client::builder()
            .timeout(self.attempt_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(notify = %self.target.describe(), error = %e, "notifications off: no HTTP client");
                return;
            }
        };
        loop {
            let doc = tokio::select! {
                _ = &mut shutdown => return,
                d = self.queue.recv() => match d { Some(d) => d, None => return },
            };
            tokio::select! {
                _ = &mut shutdown => return,
                () = self.deliver(&client, &doc) => {}
            }
        }
    }

    async fn deliver(&self, client: &reqwest::Client, doc: &Document) {
        let Some((target, stats)) = self.stats.targets.get(self.index) else {
            return;
        };
        let body = match serde_json::to_vec(doc) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(notify = %target, error = %e, "notification not encoded");
                return;
            }
        };
        let mut wait = self.first_backoff;
        for attempt in 1..=ATTEMPTS {
            let sent = client
                .post(self.target.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let problem = match sent {
                Ok(r) if r.status().is_success() => {
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(r) => format!("answered {}", r.status()),
                // Without the URL: reqwest's error text would print it, token and all.
                Err(e) => describe_error(&e),
            };
            if attempt == ATTEMPTS {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(notify = %target, event = %doc.event, attempts = ATTEMPTS, problem, "notification given up");
                return;
            }
            tracing::debug!(notify = %target, attempt, problem, "notification failed, retrying");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(60));
        }
    }
}

fn describe_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else if e.is_request() {
        "the request failed".into()
    } else {
        "no answer".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// URLs other than http(s) are refused, and errors never print the URL (it may hold a token).
    #[test]
    fn targets_parse_and_hide_tokens() {
        let t = Target::parse("https://hooks.example:8443/x?token=s3cret", "--notify 1").unwrap();
        assert_eq!(t.describe(), "https://hooks.example:8443");
        assert!(!format!("{t:?}").contains("s3cret"));
        let e = Target::parse("ftp://x/s3cret", "--notify 2").unwrap_err();
        assert_eq!(e.origin, "--notify 2");
        assert!(!e.to_string().contains("s3cret"));
        assert!(
            Target::parse("not a url s3cret", "--notify 3")
                .unwrap_err()
                .to_string()
                .starts_with("--notify 3: not a URL")
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hooks");
        std::fs::write(&f, "# team\n\nhttp://a:1/t?k=1\nhttps://b/t\n").unwrap();
        assert_eq!(Target::read_file(&f).unwrap().len(), 2);
        std::fs::write(&f, "http://a:1/\nmailto:s3cret\n").unwrap();
        let e = Target::read_file(&f).unwrap_err();
        assert!(e.origin.ends_with("hooks line 2"), "{e}");
        assert!(!e.to_string().contains("s3cret"));
    }

    /// A full queue drops (and counts) instead of waiting.
    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let state = Arc::new(State::new(
            tokio::time::Instant::now(),
            crate::state::Source::Ok,
            crate::state::Source::Ok,
        ));
        let (_tx, rx) = watch::channel(state);
        let t = Target::parse("http://127.0.0.1:9/", "test").unwrap();
        let (n, deliveries) = Notifier::new(vec![t], rx);
        for _ in 0..QUEUE + 3 {
            n.offer(Document::outage(Some("3 of 4 bad")));
        }
        let s = n.stats();
        assert_eq!(s.targets[0].1.dropped.load(Ordering::Relaxed), 3);
        drop(deliveries);
    }
}
