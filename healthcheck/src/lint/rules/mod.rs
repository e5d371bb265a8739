//! The rules: one file per family, each a function over the whole project that pushes findings.
//! [`RULES`] is the one list of ids, severities, reasons and fixes (LINT.md's table is tested
//! against it).

mod common;
mod dependency;
mod heal;
mod image;
mod port;
mod secret;
mod selfref;
mod table;
mod timeout;
mod timing;

use super::finding::Finding;
use super::model::Project;

pub use super::finding::Rule;
pub use table::RULES;

/// Runs every family.
pub(crate) fn check(project: &Project) -> Vec<Finding> {
    let mut out = Vec::new();
    port::check(project, &mut out);
    image::check(project, &mut out);
    timeout::check(project, &mut out);
    secret::check(project, &mut out);
    timing::check(project, &mut out);
    dependency::check(project, &mut out);
    selfref::check(project, &mut out);
    heal::check(project, &mut out);
    out
}
