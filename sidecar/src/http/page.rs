//! `GET /`: the status page a person reads at a glance. Server-rendered from the same view as
//! the JSON; it works without JavaScript (a `<noscript>` refresh) and, where scripts run,
//! follows `/api/events` and swaps in the new rows, keeping open rows open.

use std::fmt::Write as _;

use super::api::{AgentView, ContainerView, SourceView, Status};
use crate::timeline::{Timeline, Track};

/// Escapes text for HTML element content and quoted attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A beat's age as read, or "≤ …" when only an upper bound is known (the due index).
fn beat(read: Option<f64>, within: Option<f64>) -> String {
    match (read, within) {
        (Some(_), _) | (None, None) => age(read),
        (None, Some(w)) => format!("≤ {}", age(Some(w))),
    }
}

fn age(s: Option<f64>) -> String {
    match s {
        None => "–".into(),
        Some(s) if s < 10.0 => format!("{s:.1} s"),
        Some(s) if s < 120.0 => format!("{s:.0} s"),
        Some(s) if s < 7200.0 => format!("{:.0} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:0 1.5rem 2rem;color:#1b1f24;background:#fafafa}
td.beat{white-space:nowrap}
h1{font-size:1.3rem;margin:1rem 0 .2rem}h2{font-size:1.05rem;margin:1.4rem 0 .4rem}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #e4e4e4;vertical-align:top}
th{font-weight:600;color:#555;font-size:.85rem}
.badge{display:inline-block;min-width:5.5em;padding:.05rem .45rem;border-radius:.6rem;font-weight:600;text-align:center;color:#fff}
.s-ready .badge,.v-ok .badge{background:#1f883d}.s-starting .badge,.s-stopping .badge,.v-warn .badge{background:#9a6700}
.s-not-ready .badge{background:#bc4c00}.s-stale .badge{background:#cf222e}.s-dead .badge,.v-bad .badge{background:#82071e}
.s-unknown .badge{background:#6e7781}.h-partly-down .badge{background:#bc4c00}.h-down .badge{background:#82071e}
tr.s-stale,tr.s-dead,tr.v-bad{background:#fff0f0}tr.s-unknown{background:#f3f3f3}tr.h-partly-down{background:#fff8e6}
.blind{border:2px solid #9a6700;background:#fff8c5;padding:.5rem .8rem;margin:.6rem 0}
.sources span{margin-right:1.2rem}.muted{color:#666}.unlinked{color:#a60}.line{font-family:ui-monospace,monospace;font-size:.85rem}
details summary{cursor:pointer}table.replicas{margin:.3rem 0;font-size:.9rem}
footer{margin-top:1.5rem;color:#666;font-size:.85rem}
svg.bar{display:block}svg.bar .t-up{fill:#1f883d}svg.bar .t-degraded{fill:#d4a72c}svg.bar .t-down{fill:#cf222e}
svg.bar .t-none{fill:#d0d7de}svg.bar .restart line{stroke:#1b1f24;stroke-width:2}svg.bar .restart path{fill:#1b1f24}
.uptime{font-size:.8rem;color:#555;white-space:nowrap}
"#;

/// Polls only while live updates are unavailable; the event stream drives refreshes otherwise.
const SCRIPT: &str = r#"
(function(){
  var busy=false, again=false;
  function refresh(){
    if(busy){again=true;return}
    busy=true;
    fetch('/',{cache:'no-store'}).then(function(r){return r.text()}).then(function(html){
      var doc=new DOMParser().parseFromString(html,'text/html');
      var open={};
      document.querySelectorAll('details[data-key]').forEach(function(d){if(d.open)open[d.dataset.key]=1});
      ['live','sources','blind','stamp'].forEach(function(id){
        var now=document.getElementById(id),next=doc.getElementById(id);
        if(now&&next)now.replaceWith(next);
      });
      document.querySelectorAll('details[data-key]').forEach(function(d){if(open[d.dataset.key])d.open=true});
    }).catch(function(){}).then(function(){busy=false;if(again){again=false;refresh()}});
  }
  if(window.EventSource){
    var es=new EventSource('/api/events');
    es.addEventListener('change',refresh);
    es.addEventListener('open',function(){document.documentElement.dataset.live='1'});
  }
  setInterval(refresh,5000);
})();
"#;

fn source(out: &mut String, name: &str, s: &SourceView) {
    let class = match s.status {
        "ok" => "v-ok",
        "off" => "s-unknown",
        _ => "s-unknown",
    };
    let _ = write!(
        out,
        "<span class=\"{class}\" data-source=\"{name}\">{name}: <span class=\"badge\">{}</span>",
        s.status
    );
    if let Some(r) = &s.reason {
        let _ = write!(out, " <span class=\"muted\">{}</span>", esc(r));
    }
    out.push_str("</span>");
}

/// Says plainly what the sidecar cannot see.
fn blind(out: &mut String, st: &Status) {
    let mut lines = Vec::new();
    match st.sources.store.status {
        "off" => lines.push(
            "No agent store is configured (READY_SIGNAL_REDIS_URL / READY_SIGNAL_NATS_URL / \
             READY_SIGNAL_DIR): agents' ready signals and heartbeats are not shown."
                .to_string(),
        ),
        "unknown" => lines.push(format!(
            "The agent store cannot be read ({}): agent states are unknown, not dead.",
            esc(st.sources.store.reason.unwrap_or("no answer"))
        )),
        _ => {}
    }
    match st.sources.docker.status {
        "off" => lines.push(
            "Docker is not watched (no socket): containers, their health and restarts are not shown."
                .to_string(),
        ),
        "unknown" => lines.push(format!(
            "Docker cannot be read ({}): container states are as last seen.",
            esc(st.sources.docker.reason.unwrap_or("no answer"))
        )),
        _ => {}
    }
    out.push_str("<div id=\"blind\">");
    for l in lines {
        let _ = write!(out, "<p class=\"blind\">{l}</p>");
    }
    out.push_str("</div>");
}

/// Width of the uptime bar in SVG units, and how many slices it is cut into.
const BAR_W: u64 = 240;
const SLICES: u64 = 120;

fn tone_rank(t: &str) -> u8 {
    match t {
        "down" => 3,
        "degraded" => 2,
        "up" => 1,
        _ => 0,
    }
}

/// The uptime bar of an agent: each slice of `[from, to]` coloured by its replicas' worst state
/// then, restarts marked (a tick with a tooltip saying when, who and why).
fn uptime_bar(out: &mut String, tracks: &[&Track], from: u64, to: u64) {
    let first = tracks
        .iter()
        .filter_map(|t| t.segments.front().map(|s| s.0))
        .min()
        .unwrap_or(to);
    let from = from.max(first);
    let span = to.saturating_sub(from).max(1);
    let mut tones: Vec<&'static str> = Vec::with_capacity(SLICES as usize);
    for i in 0..SLICES {
        let (a, b) = (from + span * i / SLICES, from + span * (i + 1) / SLICES);
        let mut worst = "none";
        for t in tracks {
            for (j, (start, level)) in t.segments.iter().enumerate() {
                let end = t.segments.get(j + 1).map_or(to, |n| n.0);
                if *start < b.max(a + 1) && end > a && tone_rank(level.tone()) > tone_rank(worst) {
                    worst = level.tone();
                }
            }
        }
        tones.push(worst);
    }
    let restarts: Vec<&crate::timeline::Event> = {
        let mut v: Vec<_> = tracks
            .iter()
            .flat_map(|t| t.events().iter())
            .filter(|e| e.kind == crate::timeline::EventKind::Restart && e.at_ms >= from)
            .collect();
        v.sort_by_key(|e| e.at_ms);
        v.dedup_by_key(|e| e.at_ms);
        v
    };
    let up = {
        let (mut u, mut k) = (0u64, 0u64);
        for t in tracks {
            if let Some(x) = t.uptime(from, to) {
                u += (x * 10_000.0) as u64;
                k += 1;
            }
        }
        (k > 0).then(|| u as f64 / k as f64 / 100.0)
    };
    let _ = write!(
        out,
        "<svg class=\"bar\" data-restarts=\"{n}\" data-from=\"{f}\" viewBox=\"0 0 {BAR_W} 18\" width=\"{BAR_W}\" height=\"18\" role=\"img\" aria-label=\"uptime since {f}: {n} restarts\">",
        n = restarts.len(),
        f = esc(&super::api::rfc3339_ms(from)),
    );
    let mut i = 0;
    while i < tones.len() {
        let mut j = i + 1;
        while j < tones.len() && tones[j] == tones[i] {
            j += 1;
        }
        let _ = write!(
            out,
            "<rect class=\"t-{t}\" x=\"{x}\" y=\"4\" width=\"{w}\" height=\"12\"/>",
            t = tones[i],
            x = i as u64 * BAR_W / SLICES,
            w = (j - i) as u64 * BAR_W / SLICES,
        );
        i = j;
    }
    for e in &restarts {
        let x = ((e.at_ms - from) * BAR_W / span).min(BAR_W - 1);
        let _ = write!(
            out,
            "<g class=\"restart\" data-by=\"{by}\"><title>restart {at} by {by}: {text}</title>\
             <path d=\"M{a} 0 L{b} 0 L{x} 4 Z\"/><line x1=\"{x}\" x2=\"{x}\" y1=\"3\" y2=\"18\"/></g>",
            by = esc(e.by.as_str()),
            at = esc(&super::api::rfc3339_ms(e.at_ms)),
            text = esc(&e.text),
            a = x.saturating_sub(3),
            b = x + 3,
        );
    }
    out.push_str("</svg>");
    let _ = write!(
        out,
        "<span class=\"uptime\">{} · {} restart{} · since {}</span>",
        up.map_or("–".into(), |u| format!("{u:.1} % up")),
        restarts.len(),
        if restarts.len() == 1 { "" } else { "s" },
        esc(&super::api::rfc3339_ms(from)[11..16]),
    );
}

fn agent_row(out: &mut String, a: &AgentView, history: Option<(&Timeline, u64)>) {
    let key = format!("{}/{}", a.namespace, a.agent);
    let worst = a.replicas.first();
    let reason = worst.and_then(|r| r.reason).unwrap_or("");
    let beat_read = worst.and_then(|r| r.beat_age_s);
    let beat_within = worst.and_then(|r| r.beat_within_s);
    let restarts: u64 = a.replicas.iter().filter_map(|r| r.restarts).sum();
    let linked = a.replicas.iter().any(|r| r.container_id.is_some());
    // Docker's health is up to one interval old: said with its age, so a "ready" check line
    // beside a dead agent reads as what it is, an old result.
    let health = match worst.and_then(|r| r.health_line.or(r.container_health)) {
        Some(line) => match worst.and_then(|r| r.health_checked_s) {
            Some(ago) => format!("{line} (checked {} ago)", age(Some(ago))),
            None => line.to_owned(),
        },
        None => String::new(),
    };
    let sidecar_restarts = history.map(|(t, _)| {
        t.replicas_of(&key)
            .map(crate::timeline::Track::restarts)
            .sum::<usize>()
    });
    // The headline tells "some replicas down" from "down": the badge says how many are down.
    let badge = match a.headline {
        "partly down" => format!(
            "{} of {} down",
            a.replicas.len() - a.ready,
            a.replicas.len()
        ),
        h => h.to_owned(),
    };
    let _ = write!(
        out,
        "<tr class=\"agent s-{st} h-{hl}\" data-agent=\"{k}\" data-state=\"{st}\" data-headline=\"{headline}\">\
         <td><span class=\"badge\">{badge}</span></td><td><b>{agent}</b>{ns}</td>",
        hl = a.headline.replace(' ', "-"),
        headline = a.headline,
        badge = esc(&badge),
        st = a.state,
        k = esc(&key),
        agent = esc(a.agent),
        ns = if a.namespace.is_empty() {
            String::new()
        } else {
            format!(" <span class=\"muted\">{}</span>", esc(a.namespace))
        },
    );
    let _ = write!(
        out,
        "<td><details data-key=\"{k}\"><summary>{} of {} ready</summary><table class=\"replicas\">\
         <tr><th>replica</th><th>state</th><th>for</th><th>beat</th><th>instance</th><th>reason</th><th>container</th></tr>",
        a.ready,
        a.replicas.len(),
        k = esc(&key),
    );
    for r in &a.replicas {
        let _ = write!(
            out,
            "<tr class=\"replica s-{st}\" data-replica=\"{rep}\" data-state=\"{st}\"><td>{rep}</td>\
             <td><span class=\"badge\">{st}</span></td><td>{for_}</td><td>{beat}</td>\
             <td class=\"line\">{inst}</td><td>{reason}</td><td>{cont}</td></tr>",
            st = r.state,
            rep = esc(r.replica),
            for_ = age(Some(r.state_for_s)),
            beat = esc(&beat(r.beat_age_s, r.beat_within_s)),
            inst = esc(r.instance.unwrap_or("–")),
            reason = esc(r.reason.unwrap_or("")),
            cont = match (&r.container, &r.container_health, &r.link_cause) {
                (Some(c), Some(h), _) => format!("{} ({})", esc(c), esc(h)),
                (Some(c), None, _) => esc(c),
                (None, _, Some(cause)) => format!(
                    "<span class=\"unlinked\" data-link=\"{}\">not linked: {}</span>",
                    r.link,
                    esc(cause)
                ),
                _ => "–".into(),
            },
        );
    }
    out.push_str("</table></details></td>");
    if let Some((t, now)) = history {
        let tracks: Vec<&Track> = t.replicas_of(&key).collect();
        let from = now.saturating_sub(t.window().as_millis() as u64);
        out.push_str("<td class=\"timeline\">");
        uptime_bar(out, &tracks, from, now);
        out.push_str("</td>");
    }
    let _ = write!(
        out,
        "<td class=\"reason\">{}</td><td class=\"beat\">{}</td><td class=\"restarts\">{}</td><td class=\"line\">{}</td></tr>",
        esc(reason),
        esc(&beat(beat_read, beat_within)),
        match (sidecar_restarts, linked) {
            (Some(n), true) => format!("{n} <span class=\"muted\">(docker {restarts})</span>"),
            (Some(n), false) => n.to_string(),
            (None, true) => restarts.to_string(),
            (None, false) => "–".into(),
        },
        esc(&health)
    );
}

fn container_row(out: &mut String, c: &ContainerView, history: Option<(&Timeline, u64)>) {
    let track = history.and_then(|(t, _)| t.track(crate::timeline::Kind::Container, c.id));
    let state = match (&c.health, c.running) {
        (Some(h), true) => format!("{} · {}", c.status, h),
        _ => match c.exit_code {
            Some(code) if !c.running => format!("{} ({code})", c.status),
            _ => c.status.to_string(),
        },
    };
    let _ = write!(
        out,
        "<tr class=\"container v-{v}\" data-container=\"{name}\" data-verdict=\"{v}\"><td><span class=\"badge\">{state}</span></td>\
         <td><b>{svc}</b> <span class=\"muted\">{name}</span></td><td>{restarts}</td><td>{started}</td>\
         <td>{replicas}</td><td class=\"line\">{line}</td><td>{heal}</td></tr>",
        v = c.verdict,
        state = esc(&state),
        svc = esc(c.service.unwrap_or("")),
        name = esc(c.name),
        restarts = match track {
            Some(t) => format!(
                "{} <span class=\"muted\">(docker {})</span>",
                t.restarts(),
                c.restart_count
            ),
            None => c.restart_count.to_string(),
        },
        started = esc(c.started_at.unwrap_or("–")),
        replicas = esc(&c.replicas.join(", ")),
        line = match (c.last_health_line, c.health_checked_s) {
            (Some(l), Some(ago)) => format!(
                "{} <span class=\"muted\">(checked {} ago)</span>",
                esc(l),
                age(Some(ago))
            ),
            (Some(l), None) => esc(l),
            (None, _) => String::new(),
        },
        heal = heal_cell(c, track),
    );
}

/// What the governor says of a container: its status, what ends a quarantine (never a
/// countdown), its eligibility, the line of the moment and the last decision (kept from the
/// history, so a passing skip or "watching" does not erase a restart).
fn heal_cell(c: &ContainerView, track: Option<&Track>) -> String {
    let mut s = String::new();
    if let Some(h) = &c.heal {
        let _ = write!(s, "<span class=\"heal-status\">{}</span>", esc(h.status));
        match (&c.release_condition, h.next_allowed_in_s) {
            (Some(r), _) => {
                let _ = write!(s, "<br><span class=\"release\">{}</span>", esc(r));
            }
            (None, Some(n)) => {
                let _ = write!(s, " (next restart allowed in {})", age(Some(n)));
            }
            (None, None) => {}
        }
        if let Some(d) = &h.last_decision {
            let _ = write!(s, "<br><span class=\"muted\">{}</span>", esc(d));
        }
    }
    let last = track.and_then(|t| {
        t.events().iter().rev().find(|e| {
            e.kind != crate::timeline::EventKind::Restart || e.by == crate::timeline::By::Governor
        })
    });
    if let Some(e) = last
        && c.heal.as_ref().and_then(|h| h.last_decision) != Some(&*e.text)
    {
        let _ = write!(
            s,
            "<br><span class=\"last-decision\">last decision {}: {}</span>",
            esc(&super::api::rfc3339_ms(e.at_ms)[11..19]),
            esc(&e.text)
        );
    }
    if c.eligibility != "eligible" {
        let _ = write!(
            s,
            "{}<span class=\"eligibility muted\">{}</span>",
            if s.is_empty() { "" } else { "<br>" },
            esc(&c.eligibility)
        );
    }
    s
}

fn opt_s(v: Option<f64>) -> String {
    v.map_or("–".into(), |s| age(Some(s)))
}

/// Measured advice per service: time to first ready against the start period, failing
/// streaks, and the health checks' share of the machine.
fn advice_table(out: &mut String, a: &crate::advice::Advice) {
    let _ = write!(
        out,
        "<h2>Advice</h2><p id=\"check-cost\">Health checks: {:.2} per second, {:.1} % of one core \
         <span class=\"muted\">({:.0} ms of machine CPU each, measured: BENCHMARKS.md)</span></p>",
        a.checks_per_s,
        a.check_cpu_share * 100.0,
        a.check_cost_ms
    );
    out.push_str(
        "<table id=\"advice\"><thead><tr><th>service</th><th>start to ready p50 / p95 (max)</th>\
         <th>start_period</th><th>advice</th><th>failing streak now / worst</th><th>checks/s · CPU</th></tr></thead><tbody>",
    );
    for s in &a.services {
        let class = match s.start_period_verdict {
            "too-short" => "v-bad",
            "longer-than-needed" => "v-warn",
            "ok" => "v-ok",
            _ => "",
        };
        let _ = write!(
            out,
            "<tr class=\"advice {class}\" data-service=\"{svc}\" data-verdict=\"{v}\"><td><b>{svc}</b> \
             <span class=\"muted\">{n} measured</span></td><td>{p50} / {p95} ({max})</td><td>{sp}</td>\
             <td>{advice}</td><td>{now} / {worst}</td><td>{rate:.3} · {cpu:.2} %</td></tr>",
            svc = esc(&s.service),
            v = s.start_period_verdict,
            n = s.starts_measured,
            p50 = opt_s(s.first_ready_p50_s),
            p95 = opt_s(s.first_ready_p95_s),
            max = opt_s(s.first_ready_max_s),
            sp = opt_s(s.start_period_s),
            advice = esc(&s.advice),
            now = s.failing_streak_now,
            worst = s.failing_streak_worst,
            rate = s.checks_per_s,
            cpu = s.check_cpu_share * 100.0,
        );
    }
    out.push_str("</tbody></table>");
}

/// The whole page.
pub fn render(st: &Status) -> String {
    render_with(st, None, None)
}

/// The whole page, with each agent's timeline when a history is kept.
pub fn render_with(
    st: &Status,
    history: Option<&Timeline>,
    advice: Option<&crate::advice::Advice>,
) -> String {
    let now = humantime::parse_rfc3339_weak(&st.generated_at)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64);
    let history = history.map(|h| (h, now));
    let mut out =
        String::with_capacity(8192 + 600 * st.summary.replicas + 400 * st.containers.len());
    let bad = st
        .summary
        .replicas_by_state
        .iter()
        .filter(|(k, _)| **k != "ready" && **k != "starting")
        .map(|(_, v)| v)
        .sum::<usize>()
        + st.containers.iter().filter(|c| c.verdict == "bad").count();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}stack health</title><noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>\
         <style>{STYLE}</style></head><body><h1>Stack health</h1>",
        title = if bad > 0 {
            format!("({bad}) ")
        } else {
            String::new()
        },
    );
    out.push_str("<p id=\"sources\" class=\"sources\">");
    source(&mut out, "store", &st.sources.store);
    source(&mut out, "docker", &st.sources.docker);
    // How old each source's latest word is (from the history's view of the counters): a source
    // that is "ok" but silent for long reads as what it is.
    if let Some((h, now)) = history {
        for (name, ago) in crate::timeline::SOURCES.iter().zip(h.source_ages(now)) {
            let what = match *name {
                "store" => "last store read",
                "events" => "last agent event",
                _ => "last docker answer",
            };
            let _ = write!(
                out,
                "<span class=\"muted source-age\" data-source-age=\"{name}\">{what}: {}</span>",
                ago.map_or("never".to_owned(), |ms| format!(
                    "{} ago",
                    age(Some(ms as f64 / 1000.0))
                ))
            );
        }
    }
    if st.heal.mode != "off" {
        let _ = write!(
            out,
            "<span data-source=\"heal\">heal: <b>{}</b></span>",
            st.heal.mode
        );
    }
    out.push_str("</p>");
    blind(&mut out, st);
    out.push_str("<main id=\"live\">");
    let by = &st.summary.replicas_by_state;
    let _ = write!(
        out,
        "<p id=\"summary\">{} agents, {} replicas: ",
        st.summary.agents, st.summary.replicas
    );
    let parts: Vec<String> = super::api::STATES
        .iter()
        .filter_map(|o| {
            let n = by.get(o.as_str()).copied().unwrap_or(0);
            (n > 0).then(|| format!("<span class=\"s-{0}\">{n} {0}</span>", o.as_str()))
        })
        .collect();
    out.push_str(&parts.join(", "));
    let _ = write!(
        out,
        "; {} containers, {} unhealthy.</p>",
        st.summary.containers, st.summary.containers_unhealthy
    );
    if let Some(why) = &st.heal.shared_outage {
        let _ = write!(
            out,
            "<p class=\"blind\" id=\"outage\">Shared outage: restarts held ({})</p>",
            esc(why)
        );
    }
    if let Some(why) = &st.heal.refused {
        let _ = write!(
            out,
            "<p class=\"blind\" id=\"heal-refused\">Healing refused: the sidecar {}</p>",
            esc(why)
        );
    }
    if !st.heal.couplings_refused.is_empty() {
        out.push_str("<div class=\"blind\" id=\"couplings-refused\"><p>Couplings refused (not restarted after each other):</p><ul>");
        for m in st.heal.couplings_refused {
            let _ = write!(out, "<li>{}</li>", esc(m));
        }
        out.push_str("</ul></div>");
    }
    out.push_str("<h2>Agents</h2>");
    if st.agents.is_empty() {
        out.push_str("<p class=\"muted\" id=\"no-agents\">No agent has published in the watched namespaces.</p>");
    } else {
        out.push_str(
            "<table id=\"agents\"><thead><tr><th>state</th><th>agent</th><th>replicas</th>",
        );
        if let Some((h, _)) = history {
            let w = h.window().as_secs();
            let _ = if w % 3600 == 0 {
                write!(out, "<th>last {} h</th>", w / 3600)
            } else {
                write!(out, "<th>last {} min</th>", w.div_ceil(60))
            };
        }
        out.push_str(
            "<th>reason</th><th>beat age</th><th>restarts</th><th>container health</th></tr></thead><tbody>",
        );
        for a in &st.agents {
            agent_row(&mut out, a, history);
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("<h2>Containers</h2>");
    if st.containers.is_empty() {
        out.push_str("<p class=\"muted\" id=\"no-containers\">No container is watched.</p>");
    } else {
        out.push_str(
            "<table id=\"containers\"><thead><tr><th>state</th><th>service</th><th>restarts</th><th>started</th>\
             <th>replicas</th><th>last health check</th><th>heal</th></tr></thead><tbody>",
        );
        for c in &st.containers {
            container_row(&mut out, c, history);
        }
        out.push_str("</tbody></table>");
    }
    if let Some(a) = advice {
        advice_table(&mut out, a);
    }
    out.push_str("</main>");
    let _ = write!(
        out,
        "<footer id=\"stamp\">Updated <time datetime=\"{t}\">{t}</time> · generation {g} · \
         <a href=\"/api/status\">JSON</a> · <a href=\"/metrics\">metrics</a> · read-only</footer>\
         <script>{SCRIPT}</script></body></html>",
        t = esc(&st.generated_at),
        g = st.generation,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text from records and Docker cannot inject markup into the page.
    #[test]
    fn escapes_untrusted_text() {
        assert_eq!(esc("<b a=\"x\">&'"), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;");
    }
}
