//! Redaction as a property (issue 11, item 2): whatever string a user puts in a credential
//! position (user, password, token, query value, path variable, file content), through whichever
//! channel (the URL, the environment, a `${VAR}` expansion, a `*_FILE` variable, an option file
//! such as `password_file=`, a `--config` TOML file), with the scheme in any case, the output of
//! the real binary never contains it, compared case-insensitively. That holds whether the target
//! parses or not, and when the peer quotes back what the probe sent (named fakes that echo).
//!
//! Each case spawns the binary, so the case count is modest: 64 per property by default,
//! `PROPTEST_CASES=1000` for a long run.

#![allow(clippy::unwrap_used)]

use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::LazyLock;

use harness::fake::FakePeer;
use harness::free_port;
use proptest::prelude::*;

/// Random per run; it sits between every piece of a secret, so printing any piece that is
/// longer than a few characters prints it too.
fn mark() -> &'static str {
    static MARK: LazyLock<String> = LazyLock::new(|| {
        let random = RandomState::new().hash_one(std::process::id());
        format!("Mk{:010x}", random & 0xff_ffff_ffff)
    });
    &MARK
}

/// A refused port: the probe fails fast and prints its target and reason.
static REFUSED: LazyLock<String> = LazyLock::new(|| format!("127.0.0.1:{}", free_port()));
/// FAKE Redis quoting everything it receives (AUTH arguments included) in its error reply.
static ECHO_REDIS: LazyLock<FakePeer> = LazyLock::new(FakePeer::redis_quoting_everything);
/// FAKE NATS quoting the CONNECT line (token, user, password) in its `-ERR`.
static ECHO_NATS: LazyLock<FakePeer> = LazyLock::new(FakePeer::nats_quoting_connect);
/// FAKE HTTP server answering 503 to everything.
static HTTP_503: LazyLock<FakePeer> = LazyLock::new(|| {
    FakePeer::replying(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
});

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A secret: arbitrary short pieces (URL delimiters, `%`, `$`, braces, quotes, spaces, any
/// printable Unicode) with the mark before, between and after them.
fn secret() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        r#"[/+=:@?#%&$ {}\[\]"'\\;,.~*!^|`<>-]{0,4}"#,
        "\\PC{0,4}",
        "[A-Za-z0-9]{0,4}",
    ];
    prop::collection::vec(piece, 1..4).prop_map(|pieces| {
        let mut s = mark().to_string();
        for p in pieces {
            s.push_str(&p);
            s.push_str(mark());
        }
        s
    })
}

/// `scheme` with each letter's case drawn at random.
fn any_case(scheme: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), scheme.len()).prop_map(move |upper| {
        scheme
            .chars()
            .zip(upper)
            .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

/// Written as is, or percent-encoded (the form that parses).
fn written(secret: &str, encode: bool) -> String {
    if encode {
        percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
            .to_string()
    } else {
        secret.to_string()
    }
}

/// What one run gets.
#[derive(Debug, Default)]
struct Run {
    args: Vec<String>,
    env: Vec<(String, String)>,
    files: Vec<(String, Vec<u8>)>,
}

impl Run {
    fn target(t: String) -> Run {
        Run {
            args: vec![t],
            ..Run::default()
        }
    }
    fn env(mut self, k: &str, v: &str) -> Run {
        self.env.push((k.into(), v.into()));
        self
    }
    /// A file named `name` in the run's directory holding `content`; `{FILE:name}` in args and
    /// env values is replaced by its path.
    fn file(mut self, name: &str, content: impl Into<Vec<u8>>) -> Run {
        self.files.push((name.into(), content.into()));
        self
    }

    /// Runs the binary; fails the case when the output holds the mark or the exit is not 1.
    fn check(self) -> Result<(), TestCaseError> {
        let dir = tempfile::tempdir().unwrap();
        let place = |s: &str| {
            let mut s = s.to_string();
            for (name, _) in &self.files {
                s = s.replace(
                    &format!("{{FILE:{name}}}"),
                    &dir.path().join(name).display().to_string(),
                );
            }
            s
        };
        for (name, content) in &self.files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let mut cmd = harness::clean_command(probe_binary());
        cmd.args(["--timeout", "2s"])
            .args(self.args.iter().map(|a| place(a)))
            .envs(self.env.iter().map(|(k, v)| (k.clone(), place(v))))
            .stdin(Stdio::null());
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        prop_assert!(
            !text.to_lowercase().contains(&mark().to_lowercase()),
            "the output holds (part of) the secret\nargs {:?}\nenv {:?}\noutput {text}",
            self.args,
            self.env
        );
        prop_assert_eq!(out.status.code(), Some(1), "{}", text);
        Ok(())
    }
}

fn probe_binary() -> PathBuf {
    std::env::var_os("HC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_healthcheck")))
}

/// Where the target points: a refused port, or a fake that quotes back what it was sent.
fn peer(echo: bool, fake: &LazyLock<FakePeer>) -> String {
    if echo {
        fake.addr().to_string()
    } else {
        REFUSED.clone()
    }
}

/// Secrets are text in argv and the environment, which cannot hold NUL.
fn no_nul(s: &str) -> bool {
    !s.contains('\0')
}

proptest! {
    #![proptest_config(config())]

    /// Redis password (and ACL user's password) in the URL, as written or encoded, any scheme case.
    #[test]
    fn redis_password_in_url(s in secret(), scheme in any_case("redis"), user in any::<bool>(),
                             encode in any::<bool>(), echo in any::<bool>()) {
        let user = if user { "probe" } else { "" };
        let host = peer(echo, &ECHO_REDIS);
        Run::target(format!("{scheme}://{user}:{}@{host}", written(&s, encode))).check()?;
    }

    /// Redis password from REDIS_PASSWORD, REDIS_PASSWORD_FILE, `password_file=` or `${VAR}`.
    #[test]
    fn redis_password_by_env_file_and_expansion(s in secret().prop_filter("argv", |s| no_nul(s)),
                                                channel in 0u8..4, scheme in any_case("redis"),
                                                echo in any::<bool>()) {
        let host = peer(echo, &ECHO_REDIS);
        let url = format!("{scheme}://{host}");
        let run = match channel {
            0 => Run::target(url).env("REDIS_PASSWORD", &s),
            1 => Run::target(url).env("REDIS_PASSWORD_FILE", "{FILE:pw}").file("pw", s.as_bytes()),
            2 => Run::target(format!("{url}?password_file={{FILE:pw}}")).file("pw", s.as_bytes()),
            _ => Run::target(format!("{scheme}://:${{HC_SECRET}}@{host}")).env("HC_SECRET", &s),
        };
        run.check()?;
    }

    /// NATS token or user/password in the URL, any scheme case (`nats`, `tls`).
    #[test]
    fn nats_credentials_in_url(s in secret(), tls in any::<bool>(), user in any::<bool>(),
                               encode in any::<bool>(), echo in any::<bool>(),
                               nats in any_case("nats"), tls_case in any_case("tls")) {
        let scheme = if tls { tls_case } else { nats };
        let host = peer(echo && !tls, &ECHO_NATS);
        // A lone token holding `:` is `user:password` by URL rules, and a user name is shown.
        let token = if user || encode { s.clone() } else { s.replace(':', "") };
        let auth = if user { format!("probe:{}", written(&s, encode)) } else { written(&token, encode) };
        Run::target(format!("{scheme}://{auth}@{host}")).check()?;
    }

    /// NATS token and password from NATS_TOKEN(_FILE), NATS_PASSWORD(_FILE), `token_file=`,
    /// `password_file=`, `${VAR}`.
    #[test]
    fn nats_credentials_by_env_file_and_expansion(s in secret().prop_filter("argv", |s| no_nul(s)),
                                                  channel in 0u8..7, scheme in any_case("nats"),
                                                  echo in any::<bool>()) {
        let host = peer(echo, &ECHO_NATS);
        let url = format!("{scheme}://{host}");
        let run = match channel {
            0 => Run::target(url).env("NATS_TOKEN", &s),
            1 => Run::target(url).env("NATS_TOKEN_FILE", "{FILE:t}").file("t", s.as_bytes()),
            2 => Run::target(format!("{url}?token_file={{FILE:t}}")).file("t", s.as_bytes()),
            3 => Run::target(url).env("NATS_USER", "probe").env("NATS_PASSWORD", &s),
            4 => Run::target(url).env("NATS_USER", "probe").env("NATS_PASSWORD_FILE", "{FILE:p}")
                .file("p", s.as_bytes()),
            5 => Run::target(format!("{scheme}://probe@{host}?password_file={{FILE:p}}"))
                .file("p", s.as_bytes()),
            _ => Run::target(format!("{scheme}://${{HC_SECRET}}@{host}")).env("HC_SECRET", &s),
        };
        run.check()?;
    }

    /// HTTP user, password, query value and `${VAR}` path segment, any scheme case.
    #[test]
    fn http_user_password_query_and_path(s in secret().prop_filter("argv", |s| no_nul(s)),
                                         position in 0u8..5, scheme in any_case("http"),
                                         encode in any::<bool>(), answered in any::<bool>(),
                                         key in prop::sample::select(vec!["access_token", "api_key", "sig", "code", "x"])) {
        let host = if answered { HTTP_503.addr().to_string() } else { REFUSED.clone() };
        let w = written(&s, encode);
        let run = match position {
            0 => Run::target(format!("{scheme}://{w}:pw@{host}/health")),
            1 => Run::target(format!("{scheme}://probe:{w}@{host}/health")),
            // An unencoded `&` ends the value by the grammar of a query: not this position.
            2 => Run::target(format!("{scheme}://{host}/health?{key}={}", if encode { w } else { w.replace('&', "") })),
            3 => Run::target(format!("{scheme}://{host}/v1/${{HC_SECRET}}/health")).env("HC_SECRET", &s),
            _ => Run::target(format!("{scheme}://probe:${{HC_SECRET}}@{host}/health")).env("HC_SECRET", &s),
        };
        run.check()?;
    }

    /// Every position through a `--config` TOML file, and through HEALTHCHECK_TARGETS.
    #[test]
    fn secrets_in_config_file_and_targets_variable(s in secret().prop_filter("argv", |s| no_nul(s)),
                                                   position in 0u8..4, by_env in any::<bool>(),
                                                   redis in any_case("redis"), nats in any_case("nats"),
                                                   http in any_case("http")) {
        let target = match position {
            0 => format!("{redis}://:{s}@{}", *REFUSED),
            // (A token holding `:` is `user:password` by URL rules, and a user name is shown.)
            1 => format!("{nats}://{}@{}", s.replace(':', ""), *REFUSED),
            2 => format!("{http}://probe:{s}@{}/h", HTTP_503.addr()),
            _ => format!("{http}://{}/h?access_token={}", *REFUSED, s.replace('&', "")),
        };
        let run = if by_env {
            Run::default().env("HEALTHCHECK_TARGETS", &target)
        } else {
            let quoted = serde_json::to_string(&target).unwrap().replace('\u{7f}', "\\u007F");
            let mut run = Run::default().file("hc.toml", format!("targets = [{quoted}]\n"));
            run.args = vec!["--config".into(), "{FILE:hc.toml}".into()];
            run
        };
        run.check()?;
    }

    /// Sentinel and Cluster targets (issue 16): the master's password in the URL or
    /// REDIS_PASSWORD, the Sentinels' own in `sentinel_password_file=`, a cluster node's in the
    /// URL; seed lists of the echoing fake and a refused port.
    #[test]
    fn redis_sentinel_and_cluster_passwords(s in secret().prop_filter("argv", |s| no_nul(s)),
                                            channel in 0u8..4, sentinel in any_case("redis+sentinel"),
                                            redis in any_case("redis"), encode in any::<bool>(),
                                            echo in any::<bool>()) {
        let hosts = format!("{},{}", peer(echo, &ECHO_REDIS), *REFUSED);
        let w = written(&s, encode);
        let run = match channel {
            0 => Run::target(format!("{sentinel}://:{w}@{hosts}/mymaster?quorum=true")),
            1 => Run::target(format!("{sentinel}://{hosts}/mymaster")).env("REDIS_PASSWORD", &s),
            2 => Run::target(format!("{sentinel}://{hosts}/mymaster?sentinel_password_file={{FILE:pw}}"))
                .file("pw", s.as_bytes()),
            _ => Run::target(format!("{redis}://:{w}@{}?cluster=true&all_masters=true",
                                     peer(echo, &ECHO_REDIS))),
        };
        run.check()?;
    }

    /// NATS seed lists (issue 16) carry the same credentials as one host.
    #[test]
    fn nats_seed_list_credentials(s in secret(), user in any::<bool>(), encode in any::<bool>(),
                                  echo in any::<bool>(), nats in any_case("nats")) {
        let hosts = format!("{},{}", *REFUSED, peer(echo, &ECHO_NATS));
        let token = if user || encode { s.clone() } else { s.replace(':', "") };
        let auth = if user { format!("probe:{}", written(&s, encode)) } else { written(&token, encode) };
        Run::target(format!("{nats}://{auth}@{hosts}?cluster=3")).check()?;
    }

    /// The ready-signal store's password, in READY_SIGNAL_REDIS_URL or its password file.
    #[test]
    fn ready_store_password(s in secret().prop_filter("argv", |s| no_nul(s)), by_file in any::<bool>(),
                            encode in any::<bool>(), echo in any::<bool>()) {
        let host = peer(echo, &ECHO_REDIS);
        let run = Run::target("ready://worker".into());
        let run = if by_file {
            run.env("READY_SIGNAL_REDIS_URL", &format!("redis://{host}"))
                .env("READY_SIGNAL_REDIS_PASSWORD_FILE", "{FILE:pw}")
                .file("pw", s.as_bytes())
        } else {
            run.env("READY_SIGNAL_REDIS_URL", &format!("redis://:{}@{host}", written(&s, encode)))
        };
        run.check()?;
    }
}

/// The property can fail: a run whose output holds the mark is caught (here, a target whose
/// path, not a credential position, holds it; paths are printed).
#[test]
fn the_property_catches_a_printed_mark() {
    let run = Run::target(format!("http://{}/{}", *REFUSED, mark()));
    assert!(run.check().is_err());
}
