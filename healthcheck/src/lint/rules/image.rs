//! HC002 and HC003: tests the image cannot run (no shell, a missing tool).

use super::super::finding::Finding;
use super::super::images::{self, WATCHED};
use super::super::model::{Project, Test, commands, is_shell, program};
use super::common::{check_key, finding};

pub(super) fn check(project: &Project, out: &mut Vec<Finding>) {
    for unit in &project.units {
        let Some(image) = images::contents(unit.image.as_deref(), unit.built_from.as_deref())
        else {
            continue;
        };
        for c in &unit.checks {
            let key = format!("{}.test", check_key(c));
            let words = c.words();
            let shell_form = matches!(c.test, Test::Shell(_))
                || matches!(&c.test, Test::Exec(argv) if argv.first().is_some_and(|p| is_shell(p)));
            if shell_form && !image.shell {
                let form = if matches!(c.test, Test::Shell(_)) {
                    "shell form (CMD-SHELL or a string)"
                } else {
                    "a shell (sh -c)"
                };
                out.push(finding(
                    "HC002",
                    unit,
                    &key,
                    &c.at,
                    format!(
                        "{}: {key}: {form} in {}, which has no /bin/sh",
                        unit.name, image.what
                    ),
                ));
                continue;
            }
            for cmd in commands(&words) {
                let Some((prog, _)) = program(&cmd) else {
                    continue;
                };
                let path = cmd
                    .iter()
                    .find(|w| w.ends_with(prog))
                    .cloned()
                    .unwrap_or_default();
                // A tool from a mounted volume (an injected probe) is there whatever the image.
                let mounted = path.starts_with('/')
                    && unit
                        .mounts
                        .iter()
                        .any(|m| path.starts_with(&format!("{}/", m.trim_end_matches('/'))));
                if WATCHED.contains(&prog)
                    && !image.tools.contains(&prog)
                    && !mounted
                    && !is_shell(prog)
                {
                    out.push(finding(
                        "HC003",
                        unit,
                        &key,
                        &c.at,
                        format!(
                            "{}: {key}: runs {prog}, which {} does not have",
                            unit.name, image.what
                        ),
                    ));
                }
            }
        }
    }
}
