//! The history on the page, looked at in headless Chromium: a night replayed in fast time through
//! the timeline (snapshots in, as the sidecar's own task feeds it), served by the sidecar's real
//! HTTP stack, and read back from Chromium's DOM, from `/api/history` and as a screenshot kept
//! under target/ as an artefact.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ready_signal::Observed;
use sidecar::state::{Container, ContainerHeal, Link, Replica, Source, State};
use sidecar::timeline::{DEFAULT_WINDOW, Timeline};
use tokio::time::Instant;

fn container(service: &str) -> Container {
    Container {
        id: format!("{service:0<64}"),
        name: format!("demo-{service}-1"),
        project: Some("demo".into()),
        service: Some(service.into()),
        hostname: service.into(),
        labels: [("healthcheck.heal".to_string(), "true".to_string())].into(),
        status: "running".into(),
        running: true,
        health: Some("healthy".into()),
        health_since: None,
        failing_streak: 0,
        last_health_line: Some("ok".into()),
        restart_count: 0,
        exit_code: None,
        started_at: Some("2026-01-01T00:00:00Z".into()),
        health_checked_at: None,
        instances: Vec::new(),
        earlier_instances: Vec::new(),
        stop_timeout: None,
        network_mode: None,
        start_period: None,
        heal: None,
    }
}

fn replica(agent: &str, since: Instant) -> Replica {
    Replica {
        namespace: "demo".into(),
        agent: agent.into(),
        replica: agent.into(),
        observed: Observed::Ready,
        since,
        beat_age: Some(Duration::from_millis(300)),
        instance: Some("1764000000000-0a1b2c3d".into()),
        epoch: Some(1),
        reason: None,
        container_id: Some(format!("{agent:0<64}")),
        link: Link::Id,
        record_container: None,
        instance_started: None,
        published: None,
        beat_at: None,
        interval: None,
        ttl: None,
        host: None,
        indexed: false,
    }
}

/// The stack at minute `m` of an 8-hour night: `collector` freezes at 02:00 (stale, then the
/// governor restarts it), `indexer` is restarted by Docker's restart policy at 05:00, and
/// `summarizer` is ready throughout.
fn at_minute(start: SystemTime, t0: Instant, m: u64) -> State {
    let now = t0 + Duration::from_secs(m * 60);
    let mut s = State::new(now, Source::Ok, Source::Ok);
    s.built_wall = start + Duration::from_secs(m * 60);
    s.generation = m;
    let mut col = container("collector");
    let mut idx = container("indexer");
    let sum = container("summarizer");
    let mut r_col = replica("collector", t0);
    let mut r_idx = replica("indexer", t0);
    let r_sum = replica("summarizer", t0);
    if (120..135).contains(&m) {
        r_col.observed = Observed::Stale;
        r_col.since = t0 + Duration::from_secs(120 * 60);
        col.health = Some("unhealthy".into());
    }
    if m >= 400 {
        col.heal = Some(ContainerHeal {
            status: "quarantined".into(),
            next_allowed_in: Some(Duration::from_secs(113)),
            last_decision: Some("quarantined: restart budget spent (5 in 30m)".into()),
            ..ContainerHeal::default()
        });
    } else if m >= 130 {
        col.heal = Some(ContainerHeal {
            status: "restarting".into(),
            last_decision: Some("restarting (stale for 10m; attempt 1)".into()),
            // The governor's key of its restart: the start it produced (known once it is seen).
            restart_starts: if m >= 135 {
                vec![ns("2026-01-01T02:15:00Z")]
            } else {
                Vec::new()
            },
            ..ContainerHeal::default()
        });
    }
    if m >= 135 {
        col.started_at = Some("2026-01-01T02:15:00Z".into());
        r_col.since = t0 + Duration::from_secs(135 * 60);
    }
    if (300..310).contains(&m) {
        r_idx.observed = Observed::Dead;
        r_idx.since = t0 + Duration::from_secs(300 * 60);
        idx.running = false;
        idx.status = "exited".into();
    }
    if m >= 310 {
        idx.restart_count = 1;
        idx.started_at = Some("2026-01-01T05:10:00Z".into());
        r_idx.since = t0 + Duration::from_secs(310 * 60);
    }
    // planner: two replicas in one unlabelled container, one of them dead since 06:00.
    let mut plan = container("planner");
    plan.labels.clear();
    let r_plan1 = replica("planner", t0);
    let mut r_plan2 = replica("planner", t0);
    r_plan2.replica = "planner-2".into();
    if m >= 360 {
        r_plan2.observed = Observed::Dead;
        r_plan2.since = t0 + Duration::from_secs(360 * 60);
    }
    // router: the governor restarts it at 03:20; its line then says "left alone" a while,
    // then "watching": the page keeps the restart as its last decision.
    let mut rou = container("router");
    let mut r_rou = replica("router", t0);
    let line = |status: &str, line: &str| {
        Some(ContainerHeal {
            status: status.into(),
            last_decision: Some(line.into()),
            restart_starts: if m >= 201 {
                vec![ns("2026-01-01T03:21:00Z")]
            } else {
                Vec::new()
            },
            ..ContainerHeal::default()
        })
    };
    rou.heal = match m {
        0..200 => line("watching", "watching"),
        200 => line("restarting", "restarting (unhealthy for 10.0s; attempt 1)"),
        201..205 => line("watching", "left alone: within its start period"),
        _ => line("watching", "watching"),
    };
    if m >= 201 {
        rou.started_at = Some("2026-01-01T03:21:00Z".into());
        r_rou.since = t0 + Duration::from_secs(201 * 60);
    }
    s.containers = vec![col, idx, plan, rou, sum];
    s.replicas = [r_col, r_idx, r_plan1, r_plan2, r_rou, r_sum]
        .into_iter()
        .map(std::sync::Arc::new)
        .collect();
    s.heal.mode = sidecar::state::HealMode::On;
    // Reads and Docker answers keep coming; the last agent event was at 06:00.
    s.counters.store_reads = m * 60;
    s.counters.docker_calls = m;
    s.counters.store_events = m.min(360);
    s
}

/// Unix nanoseconds of an RFC 3339 time (a governor's restart key).
fn ns(t: &str) -> u64 {
    humantime::parse_rfc3339(t)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// A night of freezes, seen the next morning: each agent's row has an uptime bar with its
/// restarts marked (who made each, and why, in its tooltip), the steady agent reads 100 % up
/// with none, and `/api/history` serves the same runs and restarts.
#[test]
fn timeline_on_the_page_in_headless_chromium() {
    let t0 = Instant::now();
    let start = SystemTime::now() - Duration::from_secs(8 * 3600);
    let mut tl = Timeline::new(DEFAULT_WINDOW);
    let mut last: Option<State> = None;
    for m in 0..=480 {
        let s = at_minute(start, t0, m);
        tl.observe(&s);
        last = Some(s);
    }
    let last = Arc::new(last.unwrap());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_tx, rx) = tokio::sync::watch::channel(Arc::clone(&last));
    let checks: sidecar::advice::Checks = Arc::default();
    for c in &last.containers {
        checks.lock().unwrap().insert(
            c.id.clone(),
            sidecar::advice::CheckConfig {
                has_check: true,
                interval: Duration::from_secs(2),
                start_period: Duration::from_secs(30),
                start_interval: None,
            },
        );
    }
    let extras = sidecar::http::Extras {
        history: Some(Arc::new(Mutex::new(tl))),
        advice: Some((checks, sidecar::advice::DEFAULT_CHECK_COST)),
        ..Default::default()
    };
    runtime.spawn(sidecar::http::serve_with(
        listener,
        rx,
        extras,
        std::future::pending(),
    ));

    let history: serde_json::Value = serde_json::from_str(&get(port, "/api/history")).unwrap();
    assert_eq!(history["window_s"], 86_400);
    let col = history["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "demo/collector/collector")
        .unwrap();
    let states: Vec<&str> = col["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["ready", "stale", "ready"]);
    assert_eq!(col["restarts"], 1);
    assert_eq!(col["events"][0]["by"], "governor");

    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let profile = tempfile::tempdir().unwrap();
    let common = [
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--no-first-run".into(),
        format!("--user-data-dir={}", profile.path().display()),
    ];
    let url = format!("http://127.0.0.1:{port}/");
    let out = Command::new(&chromium)
        .args(&common)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap_or_else(|e| panic!("{chromium}: {e} (install the `chromium` package)"));
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    let row = |agent: &str| {
        let at = dom
            .find(&format!("data-agent=\"demo/{agent}\""))
            .unwrap_or_else(|| panic!("no row for {agent}:\n{dom}"));
        let end = dom[at..]
            .find("<h2>Containers")
            .map_or(dom.len(), |e| at + e);
        let next = dom[at + 10..]
            .find("<tr class=\"agent ")
            .map_or(end, |n| at + 10 + n);
        dom[at..next.min(end)].to_string()
    };
    let collector = row("collector");
    assert!(
        collector.contains("data-restarts=\"1\""),
        "collector: {collector}"
    );
    assert!(collector.contains("class=\"restart\" data-by=\"governor\""));
    assert!(collector.contains("restarting (stale for 10m; attempt 1)"));
    assert!(
        collector.contains("class=\"t-down\""),
        "its frozen spell is red"
    );
    let indexer = row("indexer");
    assert!(indexer.contains("data-by=\"restart-policy\""), "{indexer}");
    let summarizer = row("summarizer");
    assert!(summarizer.contains("data-restarts=\"0\""), "{summarizer}");
    assert!(summarizer.contains("100.0 % up"), "{summarizer}");
    assert!(!summarizer.contains("t-down"));

    // The page tells the truth: "some replicas down" is not "down"; restarts are the sidecar's
    // count with Docker's beside; a quarantine says what releases it, never a countdown; an
    // unlabelled container says it is not eligible; the governor's last decision is kept.
    let planner = row("planner");
    assert!(
        planner.contains("data-headline=\"partly down\""),
        "{planner}"
    );
    assert!(planner.contains("1 of 2 down"), "{planner}");
    assert!(
        collector.contains("1 <span class=\"muted\">(docker 0)</span>"),
        "{collector}"
    );
    let containers = &dom[dom.find("<h2>Containers").unwrap()..];
    let crow = |name: &str| {
        let at = containers
            .find(&format!("data-container=\"{name}\""))
            .unwrap();
        let end = containers[at..].find("</tr>").unwrap();
        containers[at..at + end].to_string()
    };
    let col_c = crow("demo-collector-1");
    assert!(
        col_c.contains(
            "released once healthy for --heal-release-after (10m by default) without a break"
        ),
        "{col_c}"
    );
    assert!(
        !col_c.contains("next restart allowed in"),
        "a quarantine has no countdown: {col_c}"
    );
    let rou_c = crow("demo-router-1");
    assert!(
        rou_c.contains("last decision")
            && rou_c.contains("restarting (unhealthy for 10.0s; attempt 1)"),
        "the restart outlives the lines after it: {rou_c}"
    );
    assert!(
        dom.contains("data-source-age=\"store\">last store read: 0.0 s ago"),
        "sources with their age"
    );
    assert!(dom.contains("data-source-age=\"events\">last agent event: 2.0 h ago"));
    let plan_c = crow("demo-planner-1");
    assert!(
        plan_c.contains("not eligible for healing: no healthcheck.heal=true label"),
        "{plan_c}"
    );

    // The advice: five containers checked every 2 s cost 2.5 checks/s, 19.8 % of one core.
    assert!(
        dom.contains("Health checks: 2.50 per second, 19.8 % of one core"),
        "{}",
        &dom[dom.find("<h2>Advice").unwrap_or(0)..]
    );
    assert!(dom.contains("<tr class=\"advice"), "one row per service");
    let advice: serde_json::Value = serde_json::from_str(&get(port, "/api/advice")).unwrap();
    assert_eq!(advice["services"].as_array().unwrap().len(), 5, "{advice}");

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sidecar-history.png");
    let _ = std::fs::remove_file(&shot);
    let out = Command::new(&chromium)
        .args(&common)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1400,1100")
        .arg("--hide-scrollbars")
        .arg(&url)
        .output()
        .unwrap();
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "no screenshot at {} ({size} bytes): {}",
        shot.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}
