//! The handshake with one NATS server: INFO, then CONNECT with the target's credentials (an
//! nkey or creds file signs the server's nonce), PING and PONG; and with `jetstream=true` (and
//! no monitoring port to ask instead), JetStream's answer to an account-info request.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::io::{AsyncRead, AsyncWrite};

use super::options::{Auth, NatsTarget, parse_creds};
use super::wire::{Conn, Op};
use crate::failure::{Failure, FailureKind, Phase};
use crate::net;
use crate::progress::Progress;
use crate::text::truncate;

/// How long a JetStream API request may go unanswered: a healthy meta leader answers in
/// milliseconds, and none answers at all during an election.
const JETSTREAM_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The handshake with one server: its detail and its INFO.
pub(super) async fn handshake(
    t: &NatsTarget,
    host: &str,
    port: u16,
    progress: &Progress,
) -> Result<(Option<String>, serde_json::Value), Failure> {
    let tcp = net::connect(host, port, progress).await?;
    let mut plain = Conn::new(tcp);
    progress.step(Phase::Protocol, "waiting for INFO from");
    let info = plain.read_info(progress).await?;
    let server_wants_tls = info.get("tls_required").and_then(|v| v.as_bool()) == Some(true);
    let detail = match &t.tls {
        Some(tls) => {
            let stream = net::tls(plain.into_inner()?, host, tls, progress).await?;
            converse(t, Conn::new(stream), &info, true, progress).await?
        }
        None if server_wants_tls => {
            return Err(progress.fail(FailureKind::Config, "the server requires TLS: use tls://"));
        }
        None => converse(t, plain, &info, false, progress).await?,
    };
    Ok((detail, info))
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    t: &NatsTarget,
    mut conn: Conn<S>,
    info: &serde_json::Value,
    tls: bool,
    progress: &Progress,
) -> Result<Option<String>, Failure> {
    let nonce = info
        .get("nonce")
        .and_then(|n| n.as_str())
        .unwrap_or_default();
    let mut connect = serde_json::json!({
        "verbose": false,
        "pedantic": false,
        "tls_required": tls,
        "name": "healthcheck",
        "lang": "rust",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": 1,
        "echo": false,
        "headers": true,
        "no_responders": true,
    });
    let sign = |seed: &str| -> Result<(String, String), Failure> {
        let key = nkeys::KeyPair::from_seed(seed.trim())
            .map_err(|_| Failure::config("not an nkey seed"))?;
        let sig = key
            .sign(nonce.as_bytes())
            .map_err(|_| Failure::config("cannot sign the server's nonce with the nkey"))?;
        Ok((key.public_key(), URL_SAFE_NO_PAD.encode(sig)))
    };
    match &t.auth {
        Auth::None => {}
        Auth::UserPassword(user, password) => {
            connect["user"] = user.as_str().into();
            connect["pass"] = password.expose().into();
        }
        Auth::Token(token) => connect["auth_token"] = token.expose().into(),
        Auth::NkeySeed(seed) => {
            let (public, sig) = sign(seed.expose())?;
            connect["nkey"] = public.into();
            connect["sig"] = sig.into();
        }
        Auth::Creds(creds) => {
            let (jwt, seed) = parse_creds(creds.expose())?;
            let (_, sig) = sign(seed)?;
            connect["jwt"] = jwt.into();
            connect["sig"] = sig.into();
        }
    }
    progress.step(Phase::Auth, "waiting for PONG (after CONNECT) from");
    conn.send(
        format!("CONNECT {connect}\r\nPING\r\n").as_bytes(),
        progress,
    )
    .await?;
    loop {
        match conn.read_op(progress).await? {
            Op::Pong => break,
            Op::Ping => conn.send(b"PONG\r\n", progress).await?,
            Op::Other => {}
            Op::Msg { .. } => {}
        }
    }
    // With a monitoring URL, JetStream is judged by /jsz (the meta leader) instead.
    if !t.jetstream || t.monitor.is_some() {
        return Ok(None);
    }

    // A raw `$JS.API.INFO` request rather than a typed account query: the typed response tracks
    // the newest server and fails to decode older servers' answers.
    progress.step(Phase::Read, "waiting for jetstream account info from");
    let inbox = format!("_INBOX.healthcheck.{}", std::process::id());
    conn.send(
        format!("SUB {inbox} 1\r\nPUB $JS.API.INFO {inbox} 0\r\n\r\n").as_bytes(),
        progress,
    )
    .await?;
    // Without a meta leader (an election after a node's loss) the request gets no answer at all:
    // a bounded wait says so, instead of running into the deadline as a bare "timed out".
    let answer = tokio::time::timeout(JETSTREAM_ANSWER_WAIT, async {
        loop {
            match conn.read_op(progress).await? {
                Op::Msg { status, payload } => return Ok((status, payload)),
                Op::Ping => conn.send(b"PONG\r\n", progress).await?,
                Op::Pong | Op::Other => {}
            }
        }
    })
    .await;
    let unhealthy = |m: String| progress.fail(FailureKind::Unhealthy, m);
    let (status, payload) = match answer {
        Ok(answer) => answer?,
        Err(_) => {
            return Err(unhealthy(format!(
                "jetstream: no answer to $JS.API.INFO within {} (no meta leader: an election?)",
                crate::format_duration(JETSTREAM_ANSWER_WAIT)
            )));
        }
    };
    match status {
        Some(503) => {
            return Err(unhealthy(
                "jetstream: no responders (is JetStream enabled?)".into(),
            ));
        }
        Some(code) if code >= 400 => return Err(unhealthy(format!("jetstream: status {code}"))),
        _ => {}
    }
    let info: serde_json::Value = serde_json::from_slice(&payload)
        .map_err(|_| progress.fail(FailureKind::Protocol, "jetstream: account info is not JSON"))?;
    if let Some(error) = info.get("error") {
        let text = error
            .get("description")
            .and_then(|d| d.as_str())
            .unwrap_or("error");
        return Err(unhealthy(format!("jetstream: {}", truncate(text, 200))));
    }
    let streams = info.get("streams").and_then(|s| s.as_u64()).unwrap_or(0);
    Ok(Some(format!("jetstream {streams} streams")))
}

#[cfg(test)]
mod tests {
    use crate::failure::FailureKind;

    /// Login with an nkey against a real nats-server configured for it.
    #[test]
    fn nkey_login_against_real_server() {
        let user = nkeys::KeyPair::new_user();
        let seed = user.seed().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let port = harness::free_port();
        let conf = dir.path().join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "port: {port}\nauthorization {{ users = [ {{ nkey: {} }} ] }}\n",
                user.public_key()
            ),
        )
        .unwrap();
        let mut server = std::process::Command::new(
            std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into()),
        )
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
        let seed_file = dir.path().join("seed");
        std::fs::write(&seed_file, &seed).unwrap();
        let wrong = dir.path().join("wrong");
        std::fs::write(&wrong, nkeys::KeyPair::new_user().seed().unwrap()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let run = |file: &std::path::Path| {
            let t = crate::Target::parse_with(
                &format!("nats://127.0.0.1:{port}?nkey_file={}", file.display()),
                &|_| None,
            )
            .unwrap();
            rt.block_on(async {
                // The server may still be starting: retry until it answers or 5 s pass.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                loop {
                    let r =
                        crate::probe(std::slice::from_ref(&t), std::time::Duration::from_secs(1))
                            .await;
                    let refused = r.outcomes[0]
                        .failure()
                        .is_some_and(|f| f.kind() == FailureKind::Refused);
                    if !refused || std::time::Instant::now() > deadline {
                        return r;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            })
        };
        let ok = run(&seed_file);
        let bad = run(&wrong);
        let _ = server.kill();
        let _ = server.wait();
        assert!(ok.healthy(), "{ok}");
        let f = bad.outcomes[0].failure().unwrap();
        assert!(f.is_auth(), "{bad}");
        assert!(!bad.to_string().contains(&seed), "{bad}");
    }
}
