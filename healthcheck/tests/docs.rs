//! The docs of target options checked against their one definition,
//! `healthcheck::TARGET_OPTIONS`: `healthcheck --help` and README's table of targets must name
//! every option each kind of target takes, and nothing else as an option.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeSet;

use healthcheck::TARGET_OPTIONS;

/// The option names written `name=` in `text`.
fn options_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices('=') {
        let name: String = text[..i]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// The rows of README's table of targets whose target is of `scheme`: `(target, options)` cells.
fn readme_rows(readme: &str, scheme: &str) -> Vec<(String, String)> {
    let start = readme
        .find("| target | proves | options |")
        .expect("README.md has no `| target | proves | options |` table");
    readme[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split(" | ").collect();
            let target = cells.first()?.trim_start_matches("| ").to_string();
            let options = cells.last()?.trim_end_matches(" |").to_string();
            let schemes: Vec<&str> = target
                .split('`')
                .skip(1)
                .step_by(2)
                .filter_map(|t| t.split_once("://").map(|(s, _)| s))
                .collect();
            schemes.contains(&scheme).then_some((target, options))
        })
        .collect()
}

/// Every option of every kind of target is in README's table, in a row for its scheme, and every
/// `name=` in those rows' options is one the definition lists.
#[test]
fn readme_table_names_every_target_option() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let mut problems = Vec::new();
    for kind in TARGET_OPTIONS {
        let defined: BTreeSet<String> = kind.options.iter().map(|o| o.to_string()).collect();
        let mut documented = BTreeSet::new();
        for scheme in kind.schemes {
            for (target, options) in readme_rows(&readme, scheme) {
                // An option may be shown in the target itself (`redis://host:port?cluster=true`).
                let query = target.split_once('?').map_or("", |(_, q)| q);
                documented.extend(options_in(query));
                documented.extend(options_in(&options));
            }
        }
        for missing in defined.difference(&documented) {
            problems.push(format!(
                "- {:?} option `{missing}=` is not in README's table",
                kind.schemes
            ));
        }
        for extra in documented.difference(&defined) {
            problems.push(format!(
                "+ {:?} README lists `{extra}=`, which is not defined",
                kind.schemes
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "README's table of targets differs from healthcheck::TARGET_OPTIONS:\n{}",
        problems.join("\n")
    );
}

/// `healthcheck --help` names every option of every kind of target.
#[test]
fn help_names_every_target_option() {
    let out = harness::clean_command(env!("CARGO_BIN_EXE_healthcheck"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let named = options_in(&help);
    let mut missing = Vec::new();
    for kind in TARGET_OPTIONS {
        for o in kind.options {
            if !named.contains(*o) {
                missing.push(format!("{:?} {o}=", kind.schemes));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "--help does not name: {missing:?}\n{help}"
    );
}
