//! Rows an outside tester found after issue 11's matrix: usage errors, `--timeout` values and
//! config files whose error messages quoted what was typed, so a secret in the wrong place
//! (arguments out of order, a target where a flag's value goes, a URL where the config expects
//! an array) was printed. Each row runs the binary (`$HC_BIN`, else cargo's) with a random,
//! mixed-case canary and checks: exit 1, within the deadline plus 100 ms, under 4096 bytes,
//! one line, no canary in stdout or stderr (compared case-insensitively), and the words that
//! say what is wrong.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// Random per run and mixed case, so a leak is found whatever case it is printed in.
static CANARY: LazyLock<String> = LazyLock::new(|| {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("CaNaRy{n:x}Qz")
});

/// The binary under test: `$HC_BIN` (the static musl build that ships), else cargo's.
fn probe_binary() -> PathBuf {
    std::env::var_os("HC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_healthcheck")))
}

/// A target holding the canary as its password, at a port where nothing listens.
fn secret_target() -> String {
    format!("redis://:{}@127.0.0.1:1", *CANARY)
}

/// One row: argv, an optional config file's content (its path is appended as `--config P`),
/// and words the output must hold.
struct Row {
    args: Vec<String>,
    config: Option<String>,
    expect: &'static str,
}

fn row(args: &[&str], expect: &'static str) -> Row {
    Row {
        args: args
            .iter()
            .map(|s| s.replace("SECRET", &secret_target()))
            .collect(),
        config: None,
        expect,
    }
}

fn config_row(toml: &str, expect: &'static str) -> Row {
    Row {
        args: vec![],
        config: Some(
            toml.replace("SECRET", &secret_target())
                .replace("CANARY", &CANARY),
        ),
        expect,
    }
}

/// Every property of one run that does not hold.
fn run(r: &Row) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(probe_binary());
    cmd.env_clear().args(&r.args);
    if let Some(toml) = &r.config {
        let path = dir.path().join("hc.toml");
        std::fs::write(&path, toml).unwrap();
        cmd.arg("--config").arg(path);
    }
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let elapsed = started.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut bad = vec![];
    if out.status.code() != Some(1) {
        bad.push(format!("exit {:?}, want 1", out.status.code()));
    }
    if elapsed > Duration::from_millis(900 + 100) {
        bad.push(format!("took {elapsed:?}"));
    }
    if out.stdout.len() + out.stderr.len() >= 4096 {
        bad.push("output over 4096 bytes".into());
    }
    if text.trim_end().contains('\n') {
        bad.push("more than one line".into());
    }
    if text.to_lowercase().contains(&CANARY.to_lowercase()) {
        bad.push("the canary is printed".into());
    }
    if !text.to_lowercase().contains(&r.expect.to_lowercase()) {
        bad.push(format!("does not say {:?}", r.expect));
    }
    bad.into_iter()
        .map(|b| format!("{b}: args {:?}: {text:?}", r.args))
        .collect()
}

fn check(rows: &[Row]) {
    let failures: Vec<String> = rows.iter().flat_map(run).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A usage error names the flag or the argument's position, never what was typed there.
#[test]
fn usage_errors_never_quote_what_was_typed() {
    let canary = CANARY.as_str();
    let dashed = format!("--{canary}");
    let eq = format!("--bogus={canary}");
    check(&[
        row(&["--format", "SECRET"], "invalid value for --format"),
        row(
            &["--format", "json", "--format", "SECRET"],
            "more than once",
        ),
        row(&["--format", "json", &dashed], "argument 3 is not a flag"),
        row(&["--SECRET"], "argument 1 is not a flag"),
        row(&[&eq, "SECRET"], "argument 1 is not a flag"),
        row(&["install", "/nonexistent-dir", "SECRET"], "argument 3"),
        row(&["wait", "--format", "SECRET"], "argument 2"),
        row(&["SECRET", "--timeout"], "--timeout"),
    ]);
}

/// A bad `--timeout` (here a target given where its value goes) is named, its value is not.
#[test]
fn a_bad_timeout_is_named_not_quoted() {
    check(&[
        row(
            &["--timeout", "SECRET", "tcp://127.0.0.1:1"],
            "--timeout: not a duration",
        ),
        row(&["--timeout=-1", "SECRET"], "--timeout: out of range"),
        config_row(
            "timeout = \"SECRET\"\ntargets = [\"tcp://127.0.0.1:1\"]\n",
            "timeout: not a duration",
        ),
    ]);
}

/// A config file of the wrong shape says which key is wrong and where, never the value (serde's
/// own messages quote it: `invalid type: string "redis://:pw@h"`, `unknown variant ...`).
#[test]
fn config_files_of_the_wrong_shape_are_described_not_quoted() {
    check(&[
        config_row(
            "targets = \"SECRET\"\n",
            "`targets` must be an array of strings",
        ),
        config_row(
            "targets = [[\"SECRET\"]]\n",
            "`targets` item 1 is not a string",
        ),
        config_row(
            "format = \"json\"\ntargets = \"SECRET\"\n",
            "line 2 column 11",
        ),
        config_row("format = \"SECRET\"\ntargets = []\n", "`format` must be"),
        config_row(
            "CANARY = 1\ntargets = [\"SECRET\"]\n",
            "a key the probe does not know",
        ),
        config_row("[CANARY]\ntargets = [\"SECRET\"]\n", "line 1 column 2"),
        config_row(
            "timeout = [\"SECRET\"]\ntargets = []\n",
            "`timeout` must be a string",
        ),
    ]);
}

/// Userinfo on schemes that give it no meaning (`tcp://`, `ready://`) is hidden whole: the user
/// part was printed (`tcp://CANARY:***@...`, and in ready's config error).
#[test]
fn userinfo_without_meaning_is_hidden() {
    let c = CANARY.as_str();
    let rows: Vec<Row> = [
        format!("tcp://{c}:pw@127.0.0.1:1"),
        format!("tcp://{c}@127.0.0.1:1"),
        format!("TCP://{c}@127.0.0.1:1"),
        format!("ready://{c}:pw@worker"),
        format!("ready://{c}@worker"),
    ]
    .into_iter()
    .map(|t| Row {
        args: vec![t],
        config: None,
        expect: "***@",
    })
    .collect();
    check(&rows);
}
