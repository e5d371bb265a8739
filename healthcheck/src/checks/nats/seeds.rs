//! A seed list (`nats://a,b,c`): every host tried at once, the first server to complete the
//! handshake answers for the target; when none does, every seed's reason. While they run, the
//! seed that got furthest speaks for the target should the deadline end the wait.

use super::handshake::handshake;
use super::options::NatsTarget;
use crate::failure::{Failure, FailureKind, Phase};
use crate::progress::Progress;
use crate::text::truncate;

/// Every seed at once: the first to complete the handshake answers (its name, its detail and
/// its INFO); when none does, every seed's reason.
pub(super) async fn any_seed(
    t: &NatsTarget,
    progress: &Progress,
) -> Result<(String, Option<String>, serde_json::Value), Failure> {
    let listed: Vec<String> = t.seeds.iter().map(|(h, p)| seed_name(h, *p)).collect();
    progress.step(Phase::Connect, "waiting for a handshake with any of");
    progress.talking_to(listed.join(","));
    let own: Vec<Progress> = t.seeds.iter().map(|_| Progress::new()).collect();
    let mut trying: futures_util::stream::FuturesUnordered<_> = t
        .seeds
        .iter()
        .zip(&listed)
        .zip(&own)
        .enumerate()
        .map(|(i, (((host, port), name), own))| async move {
            (i, name, handshake(t, host, *port, own).await)
        })
        .collect();
    let mut done = vec![false; own.len()];
    let mut failures = Vec::new();
    // Should the deadline end the wait, the seed that got furthest (past connecting) speaks for
    // the target: its phase and address are copied to the target's progress as they move.
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    loop {
        tokio::select! {
            next = futures_util::StreamExt::next(&mut trying) => match next {
                Some((_, name, Ok((detail, info)))) => return Ok((name.clone(), detail, info)),
                Some((i, _, Err(f))) => {
                    done[i] = true;
                    failures.push(f);
                }
                None => break,
            },
            _ = tick.tick() => {
                let furthest = own
                    .iter()
                    .zip(&done)
                    .filter(|(p, d)| !**d && rank(p.phase()) > rank(Phase::Connect))
                    .max_by_key(|(p, _)| rank(p.phase()));
                if let Some((p, _)) = furthest {
                    progress.set(p.phase());
                    if let Some(a) = p.address() {
                        progress.talking_to(a);
                    }
                }
            }
        }
    }
    let kind = match failures.first() {
        Some(f) if failures.iter().all(|g| g.kind() == f.kind()) => f.kind(),
        _ => FailureKind::Unhealthy,
    };
    let each: Vec<String> = failures.iter().map(ToString::to_string).collect();
    Err(Failure::new(
        kind,
        truncate(&format!("no seed answered: {}", each.join("; ")), 900),
    ))
}

/// How far along a check a phase is.
fn rank(phase: Phase) -> u8 {
    match phase {
        Phase::Resolve => 0,
        Phase::Connect => 1,
        Phase::Tls => 2,
        Phase::Auth => 3,
        Phase::Protocol => 4,
        Phase::Read => 5,
    }
}

fn seed_name(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
