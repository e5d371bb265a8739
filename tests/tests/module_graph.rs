//! Dependencies between a crate's modules point one way (STYLE.md "Module graph", issue 22): this
//! test runs `tests/modgraph.py` on every workspace member's `src` and fails listing the cycles,
//! so a new `use` that closes a circle is caught where it is written, not at the next review.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (this package lives in `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `python3 tests/modgraph.py <src>`, run from the workspace root.
fn modgraph(src: &Path) -> Output {
    Command::new("python3")
        .arg(root().join("tests/modgraph.py"))
        .arg(src)
        .current_dir(root())
        .output()
        .expect("python3 runs tests/modgraph.py")
}

/// The workspace's members, as the root Cargo.toml lists them (`members = [...]` on one line).
fn members() -> Vec<String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("root Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("the root Cargo.toml lists its members on one `members = [...]` line");
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Every member's module graph is acyclic.
#[test]
fn every_crate_has_an_acyclic_module_graph() {
    let members = members();
    for expected in ["healthcheck", "ready-signal", "sidecar"] {
        assert!(
            members.iter().any(|m| m == expected),
            "workspace members {members:?} lack {expected}: the list was misread"
        );
    }
    let mut failures = Vec::new();
    for member in &members {
        let src = Path::new(member).join("src");
        assert!(
            root().join(&src).is_dir(),
            "{} is not a directory",
            src.display()
        );
        let out = modgraph(&src);
        if !out.status.success() {
            failures.push(format!(
                "{}\n{}{}",
                src.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "module cycles (python3 tests/modgraph.py <crate>/src --edges shows the edges):\n{}",
        failures.join("\n")
    );
}

/// The checker sees a cycle: two modules that use each other are reported, and it exits 1.
#[test]
fn the_checker_reports_a_cycle() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let src = dir.path().join("src");
    std::fs::create_dir(&src).expect("src/");
    for (file, text) in [
        ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
        ("a.rs", "use crate::b::B;\npub struct A;\n"),
        ("b.rs", "pub struct B;\npub fn f() { crate::a::A; }\n"),
        ("c.rs", "use super::a::A;\n"),
    ] {
        std::fs::write(src.join(file), text).expect("a module file");
    }
    let out = modgraph(&src);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("cycle: a <-> b\n"), "{stdout}");
    assert!(stdout.contains("1 cycles"), "{stdout}");
}
