//! Property tests (proptest) of the parsers a HEALTHCHECK line and a config file go through:
//! [`healthcheck::Target::parse_with`] (and `parse`) and the TOML config file read by
//! `--config` ([`healthcheck::Config::from_probe_args`]).
//!
//! Properties: no input panics; an error is non-empty, one line when its input is, bounded, and
//! never carries a password; generated valid inputs parse, and print without their password.
//!
//! 256 cases per property by default; `PROPTEST_CASES=100000` for a long run (RELIABILITY.md).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use healthcheck::config::ProbeArgs;
use healthcheck::{Config, Target};
use proptest::prelude::*;

/// Every password starts with this, so a leak is found by searching for the whole password.
const PW_MARK: &str = "Zq9x";

fn config() -> ProptestConfig {
    ProptestConfig {
        // Regressions are turned into named tests below, not files in the source tree.
        failure_persistence: None,
        ..ProptestConfig::default() // 256 cases, or PROPTEST_CASES
    }
}

/// A password as people write them, including characters that need percent-encoding in a URL
/// and are often not encoded (`/ ? # @ :`).
fn password() -> impl Strategy<Value = String> {
    "[A-Za-z0-9/?#@:%!*+~_.-]{3,16}".prop_map(|s| format!("{PW_MARK}{s}"))
}

/// A password that needs no encoding (the valid-input generators use it).
fn plain_password() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{3,16}".prop_map(|s| format!("{PW_MARK}{s}"))
}

fn env_with(pw: &str) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| match name {
        "PW" => Some(pw.to_string()),
        "HOST" => Some("cache".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// Checks the properties every error must have; `input` is what was parsed, `pw` the password.
fn check_error(message: &str, input: &str, pw: Option<&str>) -> Result<(), TestCaseError> {
    prop_assert!(!message.trim().is_empty(), "empty error for {input:?}");
    if !input.contains(['\n', '\r']) {
        prop_assert!(
            !message.contains(['\n', '\r']),
            "multi-line error {message:?} for {input:?}"
        );
    }
    // Bounded: the input (at most a few hundred bytes here) plus a sentence.
    prop_assert!(
        message.len() <= 2 * input.len() + 400,
        "{} bytes of error for {} bytes of input",
        message.len(),
        input.len()
    );
    if let Some(pw) = pw {
        prop_assert!(
            !message.contains(pw),
            "error {message:?} echoes password {pw:?}"
        );
    }
    Ok(())
}

/// A structured target: a scheme, maybe credentials, a host, port, path and options, each
/// drawn from valid and invalid pieces.
fn structured_target() -> impl Strategy<Value = (String, String)> {
    let scheme = prop::sample::select(vec![
        "redis",
        "rediss",
        "nats",
        "tls",
        "http",
        "https",
        "tcp",
        "ready",
        "mysql",
        "REDIS",
        "",
        "redis+sentinel",
        "Redis+Sentinel",
    ]);
    let host = prop::sample::select(vec![
        "cache",
        "127.0.0.1",
        "[::1]",
        "::1",
        "",
        "a,b",
        "a:1,b:2,[::1]:3",
        "a,,b",
        "a:1,b:x",
        ",",
        "host.invalid",
        "${HOST}",
        "${MISSING}",
        "${MISSING:-dflt}",
        "${",
        "${a b}",
        "$$",
        "h%20x",
        "worker_1",
    ]);
    let port = prop::option::of(prop::sample::select(vec![
        "6379", "0", "65535", "65536", "-1", "x", "", "4222",
    ]));
    let path = prop::sample::select(vec!["", "/", "/0", "/15", "/x", "/a/b", "/health"]);
    let key = prop::sample::select(vec![
        "role",
        "db",
        "password",
        "token",
        "status",
        "body",
        "insecure",
        "ca_file",
        "server_name",
        "jetstream",
        "min",
        "replica",
        "namespace",
        "cluster",
        "all_masters",
        "quorum",
        "monitor",
        "sentinel_password_file",
        "colour",
        "",
    ]);
    let value = prop::sample::select(vec![
        "",
        "master",
        "replica",
        "self",
        "1",
        "0",
        "true",
        "maybe",
        "200-299",
        "299-200",
        "200,204",
        "700",
        "ok",
        "x.y",
        "/nonexistent/ca.pem",
        "3",
        "http://h:8222",
    ]);
    let query = prop::collection::vec((key, value), 0..4);
    let creds = prop::sample::select(vec![0u8, 1, 2, 3, 4, 5]);
    (scheme, creds, password(), host, port, path, query).prop_map(
        |(scheme, creds, pw, host, port, path, query)| {
            // A token holding `:` is a user and a password by URL rules (the user is not secret).
            let pw = if creds == 3 { pw.replace(':', "") } else { pw };
            let userinfo = match creds {
                0 => String::new(),
                1 => format!(":{pw}@"),
                2 => format!("user:{pw}@"),
                // A lone userinfo is a token for NATS only; elsewhere it is a user name.
                3 if matches!(scheme, "nats" | "tls") => format!("{pw}@"),
                4 => ":${PW}@".to_string(),
                _ => "user@".to_string(),
            };
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let mut q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if creds == 5 {
                q.push(format!("password={pw}"));
            }
            let query = if q.is_empty() {
                String::new()
            } else {
                format!("?{}", q.join("&"))
            };
            (
                format!("{scheme}://{userinfo}{host}{port}{path}{query}"),
                pw,
            )
        },
    )
}

/// A target that must parse, with the password it carries (if any).
fn valid_target() -> impl Strategy<Value = (String, Option<String>)> {
    let name = "[a-z][a-z0-9]{0,20}"; // `xn--` would be (bad) punycode
    let port = 1u16..=65535;
    prop_oneof![
        (
            name,
            port.clone(),
            prop::option::of(plain_password()),
            0u8..16,
            any::<bool>()
        )
            .prop_map(|(host, port, pw, db, role)| {
                let auth = pw.as_ref().map(|p| format!(":{p}@")).unwrap_or_default();
                let role = if role { "?role=master" } else { "" };
                (format!("redis://{auth}{host}:{port}/{db}{role}"), pw)
            }),
        (
            name,
            port.clone(),
            prop::option::of(plain_password()),
            any::<bool>()
        )
            .prop_map(|(host, port, pw, js)| {
                let auth = pw.as_ref().map(|p| format!("{p}@")).unwrap_or_default();
                let js = if js { "?jetstream=true" } else { "" };
                (format!("nats://{auth}{host}:{port}{js}"), pw)
            }),
        (name, port.clone(), "[a-z0-9/]{0,20}", 100u16..=599).prop_map(|(host, port, path, s)| {
            (
                format!("http://{host}:{port}/{path}?status={s}&body=ok"),
                None,
            )
        }),
        (name, port).prop_map(|(host, port)| (format!("tcp://{host}:{port}"), None)),
        (
            prop::collection::vec("[A-Za-z0-9_-]{1,64}", 1..4),
            1usize..5
        )
            .prop_map(|(agents, min)| {
                (format!("ready://{}?min={min}", agents.join(",")), None)
            }),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Any string: no panic, and a well-formed error when it fails.
    #[test]
    fn any_string_never_panics(raw in any::<String>()) {
        let env = env_with("Zq9xunused");
        if let Err(e) = Target::parse_with(&raw, &env) {
            check_error(&e.to_string(), &raw, None)?;
        }
    }

    /// URL-shaped strings with random bytes around `://`.
    #[test]
    fn url_shaped_strings_never_panic(
        scheme in "[a-z]{0,6}",
        rest in "[ -~]{0,60}",
    ) {
        let raw = format!("{scheme}://{rest}");
        let env = env_with("Zq9xunused");
        if let Err(e) = Target::parse_with(&raw, &env) {
            check_error(&e.to_string(), &raw, None)?;
        }
    }

    /// Structured targets with passwords: errors and printed targets never carry the password.
    #[test]
    fn structured_targets_never_echo_the_password((raw, pw) in structured_target()) {
        let env = env_with(&pw);
        match Target::parse_with(&raw, &env) {
            Ok(t) => prop_assert!(!t.to_string().contains(&pw), "{t} shows {pw:?}"),
            Err(e) => check_error(&e.to_string(), &raw, Some(&pw))?,
        }
    }

    /// Valid generated targets parse, and their printed form hides the password.
    #[test]
    fn valid_targets_parse((raw, pw) in valid_target()) {
        let t = Target::parse_with(&raw, &|_| None);
        prop_assert!(t.is_ok(), "{raw}: {}", t.unwrap_err());
        let shown = t.unwrap().to_string();
        if let Some(pw) = pw {
            prop_assert!(!shown.contains(&pw), "{shown}");
            prop_assert!(shown.contains(":***@") || shown.contains("//***@"), "{shown}");
        }
    }

    /// `Target::parse` (the real environment) agrees with `parse_with` on variable-free input.
    #[test]
    fn parse_agrees_with_parse_with((raw, _) in valid_target()) {
        prop_assert_eq!(
            Target::parse(&raw).map(|t| t.to_string()).ok(),
            Target::parse_with(&raw, &|_| None).map(|t| t.to_string()).ok()
        );
    }

    /// Any bytes as a config file: no panic; a one-line, bounded error naming the file.
    #[test]
    fn any_config_file_never_panics(text in any::<String>()) {
        let (_dir, path) = config_file(&text);
        if let Err(e) = load(&path) {
            check_error(&e, &format!("{}{text}", path.display()), None)?;
            prop_assert!(!e.contains(['\n', '\r']), "multi-line error {e:?}");
        }
    }

    /// TOML-shaped config files built from the real keys and bad values.
    #[test]
    fn toml_shaped_config_files(
        lines in prop::collection::vec(config_line(), 0..6),
        pw in password(),
    ) {
        // A NATS token holding `:` would be a user and a password by URL rules.
        let token = pw.replace(':', "");
        let text = lines.join("\n").replace("PASSWORD", &pw).replace("TOKEN", &token);
        let (_dir, path) = config_file(&text);
        match load(&path) {
            Ok(c) => prop_assert!(!c.targets.is_empty()),
            Err(e) => {
                check_error(&e, &format!("{}{text}", path.display()), Some(&pw))?;
                check_error(&e, &format!("{}{text}", path.display()), Some(&token))?;
                prop_assert!(!e.contains(['\n', '\r']), "multi-line error {e:?}");
            }
        }
    }

    /// Valid generated config files load with every target, timeout and format.
    #[test]
    fn valid_config_files_load(
        targets in prop::collection::vec(valid_target(), 1..5),
        ms in 1u64..100_000,
        json in any::<bool>(),
    ) {
        let list: Vec<String> = targets.iter().map(|(t, _)| format!("{t:?}")).collect();
        let text = format!(
            "timeout = \"{ms}ms\"\nformat = \"{}\"\ntargets = [{}]\n",
            if json { "json" } else { "text" },
            list.join(", ")
        );
        let (_dir, path) = config_file(&text);
        let c = load(&path);
        prop_assert!(c.is_ok(), "{text}: {}", c.unwrap_err());
        let c = c.unwrap();
        prop_assert_eq!(c.targets.len(), targets.len());
        prop_assert_eq!(c.timeout.as_millis(), u128::from(ms));
    }
}

fn config_line() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "timeout = \"2s\"",
            "timeout = \"0s\"",
            "timeout = \"soon\"",
            "timeout = 5",
            "timeout = -1",
            "timeout = \"1e400\"",
            "format = \"json\"",
            "format = \"xml\"",
            "targets = []",
            "targets = \"redis://a\"",
            "targets = [\"redis://:PASSWORD@cache:6379\"]",
            "targets = [\"redis://:PASSWORD@cache:6379?bogus=1\"]",
            "targets = [\"nats://TOKEN@nats:4222?colour=red\"]",
            "targets = [\"redis://:PASSWORD@cache:x\"]",
            "targets = [\"http://u:PASSWORD@h/p?status=999\"]",
            "targets = [\"tcp://h\", 7]",
            "timout = \"1s\"",
            "[section]",
            "targets = [",
            "\"unterminated",
            "= 1",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,40}",
    ]
}

/// The config file in a fresh directory; the directory lives as long as the returned guard.
fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("healthcheck.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Loads a config file the way `healthcheck --config FILE` does.
fn load(path: &std::path::Path) -> Result<Config, String> {
    for var in ["HEALTHCHECK_TARGETS", "HEALTHCHECK_TIMEOUT"] {
        assert!(
            std::env::var_os(var).is_none(),
            "{var} is set in the test environment; unset it"
        );
    }
    Config::from_probe_args(&ProbeArgs {
        timeout: None,
        format: None,
        config: Some(path.to_path_buf()),
        targets: Vec::new(),
    })
    .map_err(|e| e.to_string())
}

/// Cases the fuzzer found: a password with an unencoded `#`, `?` or `/` made the URL invalid,
/// and the error message printed the target with the password in it.
#[test]
fn regression_unencoded_password_characters_are_not_echoed() {
    for raw in [
        "redis://:Zq9x~_#@cache",
        "redis://:Zq9x#aA@cache:6379",
        "redis://user:Zq9x?ab@cache:6379",
        "nats://user:Zq9x/ab@nats:4222",
        "redis://:Zq9x/a#b?c@cache:6379/0",
    ] {
        let e = Target::parse_with(raw, &|_| None).unwrap_err().to_string();
        assert!(!e.contains("Zq9x"), "{raw}: {e}");
    }
}

/// Cases the fuzzer found next: a `#` or `?` in a NATS token made a valid URL whose host (or
/// option name) was the secret's first part, printed in the output.
#[test]
fn regression_secret_parsed_as_host_or_option() {
    for raw in [
        "nats://Zq9xa#~@cache",
        "nats://Zq9xa?A@nats:4222?colour=red",
        "redis://user:Zq9x/ab@cache",
    ] {
        let e = Target::parse_with(raw, &|_| None).unwrap_err().to_string();
        assert!(!e.contains("Zq9x"), "{raw}: {e}");
        assert!(e.contains("percent-encode"), "{raw}: {e}");
    }
    // An `@` anywhere after an HTTP host is refused (write %40): it may end a userinfo whose
    // password holds an unencoded `/`, `?` or `\`, and nothing of the text is echoed.
    let e = Target::parse_with("http://h:8080/p?email=a@b", &|_| None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("%40") && !e.contains("email=a"), "{e}");
    // An `@` inside a probe option's value is not userinfo.
    let e = Target::parse_with("redis://h:6379?password_file=/nonexistent/a@b", &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot read secret file /nonexistent/a@b"),
        "{e}"
    );
}

/// Found third: `nats://TOKEN:@host` (empty password) is used as a token, so it is a secret.
#[test]
fn regression_nats_user_with_empty_password_is_a_token() {
    let t = Target::parse_with("nats://Zq9x_A:@cache", &|_| None).unwrap();
    assert_eq!(t.to_string(), "nats://***@cache");
}

// ------------------------------------------------------------ whatever a peer answers

/// What a peer sends, for the peer properties: arbitrary bytes, or protocol-shaped lines with
/// arbitrary bytes inside (control characters, escape sequences, invalid UTF-8 included).
fn peer_bytes(prefixes: Vec<&'static str>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (
            prop::sample::select(prefixes),
            prop::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(head, body)| {
                let mut v = head.as_bytes().to_vec();
                v.extend(body);
                v.extend_from_slice(b"\r\n\r\n");
                v
            }),
    ]
}

/// Runs the real probe against `target` with a 300 ms deadline (many cases wait for more); the output must be one line, under
/// 4096 bytes, with every control character escaped, and the exit status 0 or 1.
fn probe_peer(target: &str) -> Result<(), TestCaseError> {
    // `$HC_BIN` runs these against another build (the static musl release binary).
    let bin = std::env::var_os("HC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_healthcheck")));
    let out = harness::clean_command(bin)
        .args(["--timeout", "300ms", target])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let raw = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
    let text = String::from_utf8_lossy(&raw);
    prop_assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{:?}: {text}",
        out.status
    );
    prop_assert!(raw.len() < 4096, "{} bytes", raw.len());
    prop_assert!(
        !raw.iter().any(|&b| (b < 0x20 && b != b'\n') || b == 0x7f),
        "a raw control byte in {text:?}"
    );
    prop_assert!(
        !text.trim_end_matches('\n').contains('\n'),
        "more than one line: {text:?}"
    );
    Ok(())
}

fn peer_config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(32),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(peer_config())]

    /// Whatever a "Redis" answers, the verdict is one clean line (FAKE peer, one per case).
    #[test]
    fn any_redis_reply_prints_one_clean_line(reply in peer_bytes(vec!["-ERR ", "-", "+", "$5\r\n", "*1\r\n-", ":"])) {
        let fake = harness::fake::FakePeer::replying(&reply);
        probe_peer(&format!("redis://{}", fake.addr()))?;
    }

    /// Whatever a "NATS server" says first, the verdict is one clean line (FAKE peer).
    #[test]
    fn any_nats_greeting_prints_one_clean_line(greeting in peer_bytes(vec!["INFO ", "-ERR '", "INFO {\"server_id\":\""])) {
        let fake = harness::fake::FakePeer::greeting(&greeting);
        probe_peer(&format!("nats://{}", fake.addr()))?;
    }

    /// Whatever an "HTTP server" answers (status line, headers, a Location), the verdict is one
    /// clean line (FAKE peer).
    #[test]
    fn any_http_response_prints_one_clean_line(reply in peer_bytes(vec![
        "HTTP/1.1 ", "HTTP/1.1 503 ", "HTTP/1.1 302 Found\r\nlocation: ", "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n",
    ])) {
        let fake = harness::fake::FakePeer::replying(&reply);
        probe_peer(&format!("http://{}/?body=needle", fake.addr()))?;
    }
}
