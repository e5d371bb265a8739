//! `GET /`: the status page a person reads at a glance. Server-rendered from the same view as
//! the JSON; it works without JavaScript (a `<noscript>` refresh) and, where scripts run,
//! follows `/api/events` and swaps in the new rows, keeping open rows open.

use std::fmt::Write as _;

use super::api::{AgentView, ContainerView, SourceView, Status};

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
h1{font-size:1.3rem;margin:1rem 0 .2rem}h2{font-size:1.05rem;margin:1.4rem 0 .4rem}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #e4e4e4;vertical-align:top}
th{font-weight:600;color:#555;font-size:.85rem}
.badge{display:inline-block;min-width:5.5em;padding:.05rem .45rem;border-radius:.6rem;font-weight:600;text-align:center;color:#fff}
.s-ready .badge,.v-ok .badge{background:#1f883d}.s-starting .badge,.s-stopping .badge,.v-warn .badge{background:#9a6700}
.s-not-ready .badge{background:#bc4c00}.s-stale .badge{background:#cf222e}.s-dead .badge,.v-bad .badge{background:#82071e}
.s-unknown .badge{background:#6e7781}
tr.s-stale,tr.s-dead,tr.v-bad{background:#fff0f0}tr.s-unknown{background:#f3f3f3}
.blind{border:2px solid #9a6700;background:#fff8c5;padding:.5rem .8rem;margin:.6rem 0}
.sources span{margin-right:1.2rem}.muted{color:#666}.unlinked{color:#a60}.line{font-family:ui-monospace,monospace;font-size:.85rem}
details summary{cursor:pointer}table.replicas{margin:.3rem 0;font-size:.9rem}
footer{margin-top:1.5rem;color:#666;font-size:.85rem}
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

fn agent_row(out: &mut String, a: &AgentView) {
    let key = format!("{}/{}", a.namespace, a.agent);
    let worst = a.replicas.first();
    let reason = worst.and_then(|r| r.reason).unwrap_or("");
    let beat = worst.and_then(|r| r.beat_age_s);
    let restarts: u64 = a.replicas.iter().filter_map(|r| r.restarts).sum();
    let linked = a.replicas.iter().any(|r| r.container_id.is_some());
    let health = worst
        .and_then(|r| r.health_line.or(r.container_health))
        .unwrap_or("");
    let _ = write!(
        out,
        "<tr class=\"agent s-{st}\" data-agent=\"{k}\" data-state=\"{st}\">\
         <td><span class=\"badge\">{st}</span></td><td><b>{agent}</b>{ns}</td>",
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
            beat = age(r.beat_age_s),
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
    let _ = write!(
        out,
        "<td class=\"reason\">{}</td><td class=\"beat\">{}</td><td class=\"restarts\">{}</td><td class=\"line\">{}</td></tr>",
        esc(reason),
        age(beat),
        if linked {
            restarts.to_string()
        } else {
            "–".into()
        },
        esc(health)
    );
}

fn container_row(out: &mut String, c: &ContainerView) {
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
        restarts = c.restart_count,
        started = esc(c.started_at.unwrap_or("–")),
        replicas = esc(&c.replicas.join(", ")),
        line = esc(c.last_health_line.unwrap_or("")),
        heal = c
            .heal
            .as_ref()
            .map(|h| {
                let mut s = esc(h.status);
                if let Some(n) = h.next_allowed_in_s {
                    let _ = write!(s, " (next in {})", age(Some(n)));
                }
                if let Some(d) = &h.last_decision {
                    let _ = write!(s, "<br><span class=\"muted\">{}</span>", esc(d));
                }
                s
            })
            .unwrap_or_default(),
    );
}

/// The whole page.
pub fn render(st: &Status) -> String {
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
    out.push_str("<h2>Agents</h2>");
    if st.agents.is_empty() {
        out.push_str("<p class=\"muted\" id=\"no-agents\">No agent has published in the watched namespaces.</p>");
    } else {
        out.push_str(
            "<table id=\"agents\"><thead><tr><th>state</th><th>agent</th><th>replicas</th><th>reason</th>\
             <th>beat age</th><th>restarts</th><th>container health</th></tr></thead><tbody>",
        );
        for a in &st.agents {
            agent_row(&mut out, a);
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
            container_row(&mut out, c);
        }
        out.push_str("</tbody></table>");
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
