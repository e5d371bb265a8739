//! Why inputs could not be linted, and the reading of files that names them in its errors.

use std::path::Path;

use super::yaml;

/// Why the inputs could not be linted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LintError {
    /// A file that cannot be read or is not what it must be: the place (`path[:line]`) and why.
    #[error("{0}: {1}")]
    Input(String, String),
    /// Nothing to lint was found.
    #[error("{0}")]
    NothingFound(String),
    /// A flag's value is wrong.
    #[error("{0}")]
    Usage(String),
}

/// Reads a file, naming it in the error.
pub(crate) fn read(path: &Path) -> Result<String, LintError> {
    std::fs::read_to_string(path)
        .map_err(|e| LintError::Input(path.display().to_string(), format!("cannot read: {e}")))
}

/// A YAML error as a lint error naming the file and line.
pub(crate) fn yaml_error(path: &Path, e: &yaml::YamlError) -> LintError {
    LintError::Input(
        yaml::place(path, e.line),
        format!("not valid YAML (column {}): {}", e.column, e.reason),
    )
}
