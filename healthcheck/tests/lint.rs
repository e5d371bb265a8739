//! `healthcheck lint` against its corpus (healthcheck/tests/lint/: one directory per case, its
//! files, an optional `args` file naming them in order, and `expected`: one `ID severity unit`
//! line per finding), and the built binary's exit codes and formats.

// Helpers outside #[test] functions fail the test the same way.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use healthcheck::lint::{self, Args, Options};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lint")
}

/// The arguments of a case: its `args` file, one per line (none: discovery in its directory).
fn case_args(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("args"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

/// Lints a case with the library, in a fixed environment (nothing from the machine's).
fn lint_case(name: &str) -> lint::Outcome {
    let dir = corpus().join(name);
    let args = case_args(&dir);
    let options = Options::from_args(Args {
        paths: args.iter().map(|a| dir.join(a)).collect(),
        dir: dir.clone(),
        env: BTreeMap::new(),
        ..Default::default()
    })
    .unwrap();
    lint::run(&options).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Compares a case's findings with its `expected` file (as multisets).
fn check_case(name: &str) {
    let outcome = lint_case(name);
    let mut got: Vec<String> = outcome
        .findings
        .iter()
        .map(|f| format!("{} {} {}", f.rule.id, f.severity, f.unit))
        .collect();
    let expected_text = std::fs::read_to_string(corpus().join(name).join("expected")).unwrap();
    let mut expected: Vec<String> = expected_text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(
        got,
        expected,
        "{name}: findings differ from tests/lint/{name}/expected; the report:\n{}",
        outcome.render(lint::Format::Text)
    );
    for f in &outcome.findings {
        assert!(
            f.message.contains(&f.unit) && !f.key.is_empty() && f.at.line > 0,
            "{name}: a finding must name its service, key and line: {f:?}"
        );
    }
}

macro_rules! cases {
    ($($test:ident => $dir:literal: $doc:literal;)*) => {$(
        #[doc = $doc]
        #[test]
        fn $test() {
            check_case($dir);
        }
    )*};
}

cases! {
    port_only => "port-only": "Port-only checks are found; an error where the service publishes a ready signal or gates a dependent.";
    port_only_fixed => "port-only-fixed": "The fixed forms of the port-only checks produce no finding.";
    no_shell => "no-shell": "Shell-form tests in shell-less images (also a Dockerfile FROM scratch) and tools images lack.";
    no_shell_fixed => "no-shell-fixed": "Exec form with an injected probe, and busybox's wget in alpine, produce no finding.";
    timeouts => "timeouts": "Probe deadlines at or above Docker's and Kubernetes' (default 1 s) timeouts, by flag and environment.";
    secrets => "secrets": "Secrets in check argv and in plain environment values; valueFrom and *_FILE are fine.";
    timing => "timing": "start_interval without start_period, and a start_period that covers no check.";
    shared_dependency => "shared-dependency": "Liveness, startup and healed checks on shared dependencies; readiness and store=file are fine.";
    depends => "depends": "depends_on without a condition on a checked service, and service_healthy on unchecked ones.";
    self_target => "self": "The self-restart paradox in its forms: a labelled healer, a check that kills, a wait for itself.";
    heal_labels => "heal-labels": "Unknown, unreadable and never-watched heal labels.";
    real_world => "real-world": "Anchors, merge keys, extends (same and other file), two files merged, .env and defaults, profiles.";
    discovery => "discovery": "Without arguments, compose.yaml and its override are found and merged as Compose does.";
    silenced => "silenced": "Comments, x-healthcheck-lint keys and the Kubernetes annotation silence rules.";
    project => "project": "The project's own docker/compose.yml and deploy/kubernetes/ produce no finding.";
}

/// The silenced case counts what it silenced (so the silences are real, not absent findings).
#[test]
fn silences_are_counted() {
    assert_eq!(lint_case("silenced").silenced, 6);
}

/// No finding, in any format, prints a secret's value.
#[test]
fn secrets_are_never_printed() {
    let outcome = lint_case("secrets");
    for format in [lint::Format::Text, lint::Format::Json, lint::Format::Sarif] {
        let out = outcome.render(format);
        assert!(
            !out.contains("hunter2"),
            "{format:?} output leaks a secret:\n{out}"
        );
    }
}

/// The cost line of the project's own stack: 10 checks at 30 s (the socket proxy's among them),
/// 79 ms each.
#[test]
fn cost_of_the_project_stack() {
    let cost = lint_case("project").cost;
    assert_eq!(cost.exec_checks, 16);
    let compose = lint::run(
        &Options::from_args(Args {
            paths: vec![corpus().join("../../../docker/compose.yml")],
            ..Default::default()
        })
        .unwrap(),
    )
    .unwrap()
    .cost;
    assert_eq!(compose.exec_checks, 10);
    assert!((compose.steady_execs_per_s - 10.0 / 30.0).abs() < 1e-9);
    assert!((compose.steady_cpu_percent - 10.0 / 30.0 * 0.079 * 100.0).abs() < 1e-9);
    // Engine 25+: the default start_interval (5 s) during the 30 s start_period.
    assert!((compose.startup_execs_per_s - 10.0 / 5.0).abs() < 1e-9);
    let chain = compose
        .chains
        .iter()
        .find(|c| c.service == "consumer")
        .unwrap();
    assert_eq!(
        (chain.delay_s_before_25, chain.delay_s_with_start_interval),
        (30.0, 5.0)
    );
}

/// A two-level chain adds one interval per level before Engine 25.
#[test]
fn gating_chain_levels() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        "services:\n  a: {image: x, healthcheck: {test: [CMD, /a], interval: 20s}}\n  b:\n    image: x\n    healthcheck: {test: [CMD, /b], interval: 10s, start_period: 60s, start_interval: 1s}\n    depends_on: {a: {condition: service_healthy}}\n  c:\n    image: x\n    depends_on: {b: {condition: service_healthy}}\n",
    )
    .unwrap();
    let cost = lint::run(
        &Options::from_args(Args {
            paths: vec![file],
            ..Default::default()
        })
        .unwrap(),
    )
    .unwrap()
    .cost;
    let c = cost.chains.iter().find(|c| c.service == "c").unwrap();
    assert_eq!(c.path, ["a", "b", "c"]);
    // Before 25: 20 s (a) + 10 s (b). With start_interval: 20 s (a has no start_period) + 1 s.
    assert_eq!(
        (c.delay_s_before_25, c.delay_s_with_start_interval),
        (30.0, 21.0)
    );
}

fn bin() -> Command {
    Command::cargo_bin("healthcheck").unwrap()
}

/// Exit 1 on an error finding (default --fail-on), 0 when nothing fails, 1 with --fail-on warning.
#[test]
fn exit_codes() {
    let case = |name: &str| corpus().join(name);
    bin()
        .arg("lint")
        .arg(case("timing/compose.yaml"))
        .assert()
        .code(0);
    bin()
        .args(["lint", "--fail-on", "warning"])
        .arg(case("timing/compose.yaml"))
        .assert()
        .code(1);
    bin()
        .arg("lint")
        .arg(case("depends/compose.yaml"))
        .assert()
        .code(1);
    bin()
        .args(["lint", "--fail-on", "never"])
        .arg(case("depends/compose.yaml"))
        .assert()
        .code(0);
    bin()
        .args(["lint", "--ignore", "HC011"])
        .arg(case("depends/compose.yaml"))
        .assert()
        .code(0);
    // Discovery from the working directory.
    bin()
        .arg("lint")
        .current_dir(case("discovery"))
        .assert()
        .code(0)
        .stdout(
            predicates::str::contains("compose.yaml:4 warning[HC007] web")
                .and(predicates::str::contains("of 2 files")),
        );
}

use predicates::prelude::PredicateBooleanExt;

/// Usage errors, missing files and bad YAML exit 1 (never 2) and say what and where.
#[test]
fn bad_input_is_named() {
    bin()
        .args(["lint", "--format", "xml"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("--format xml"));
    bin().args(["lint", "--no-such-flag"]).assert().code(1);
    bin()
        .args(["lint", "/nonexistent/compose.yaml"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "/nonexistent/compose.yaml: cannot read",
        ));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("compose.yaml");
    std::fs::write(&bad, "services:\n  web:\n    image: [unclosed\n").unwrap();
    bin().arg("lint").arg(&bad).assert().code(1).stderr(
        predicates::str::contains(format!("{}:3", bad.display()))
            .and(predicates::str::contains("not valid YAML")),
    );
    let empty = tempfile::tempdir().unwrap();
    bin()
        .arg("lint")
        .current_dir(empty.path())
        .env_remove("COMPOSE_FILE")
        .assert()
        .code(1)
        .stderr(predicates::str::contains("no compose.yaml"));
}

/// Text groups findings by service, one line each; JSON parses and carries why and fix.
#[test]
fn text_and_json() {
    let out = bin()
        .args(["lint", "--fail-on", "never"])
        .arg(corpus().join("depends/compose.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("worker:\n"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("error[HC011] worker: depends_on.cache")),
        "{text}"
    );
    assert!(text.contains("cost: "), "{text}");
    let out = bin()
        .args(["lint", "--format", "json", "--fail-on", "never"])
        .arg(corpus().join("depends/compose.yaml"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["errors"], 2);
    let f = &v["findings"][0];
    assert!(f["why"].as_str().is_some_and(|s| !s.is_empty()) && f["fix"].is_string());
    assert!(v["cost"]["steady_execs_per_s"].is_number());
}

/// SARIF output validates against the official SARIF 2.1.0 schema (vendored beside the corpus).
#[test]
fn sarif_validates_against_the_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(corpus().join("sarif-schema-2.1.0.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft4::new(&schema).unwrap();
    for case in ["secrets", "real-world", "project"] {
        let dir = corpus().join(case);
        let out = bin()
            .args(["lint", "--format", "sarif", "--fail-on", "never"])
            .args(case_args(&dir).iter().map(|a| dir.join(a)))
            .output()
            .unwrap();
        let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&sarif)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{case}: SARIF invalid: {errors:#?}");
        assert_eq!(sarif["version"], "2.1.0");
        let results = sarif["runs"][0]["results"].as_array().unwrap();
        assert_eq!(results.len(), lint_case(case).findings.len());
    }
    // A document the schema must reject, so the validation is not vacuous.
    assert!(
        !validator.is_valid(&serde_json::json!({"version": "2.1.0", "runs": [{"results": []}]}))
    );
}

/// `--explain` prints a rule's why and fix; LINT.md documents every rule of the table.
#[test]
fn explain_and_docs() {
    bin()
        .args(["lint", "--explain", "HC009"])
        .assert()
        .code(0)
        .stdout(predicates::str::contains("restart storm"));
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("LINT.md")).unwrap();
    for r in &lint::RULES {
        assert!(
            doc.contains(&format!("| {} |", r.id)),
            "LINT.md lacks {}",
            r.id
        );
    }
}

/// The README's Compose snippets pass the linter (warnings included).
#[test]
fn readme_snippets_pass() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut linted = 0;
    for (i, block) in readme.split("```yaml\n").skip(1).enumerate() {
        let body = block.split("\n```").next().unwrap_or("");
        if !body.starts_with("services:") {
            continue;
        }
        let file = dir.path().join(format!("snippet-{i}.yaml"));
        std::fs::write(&file, body).unwrap();
        bin()
            .args(["lint", "--fail-on", "warning"])
            .arg(&file)
            .assert()
            .code(0);
        linted += 1;
    }
    assert!(linted > 0, "README.md has no Compose snippet any more");
}
