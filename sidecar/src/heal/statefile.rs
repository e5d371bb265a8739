//! The governor's history on disk, so its budgets and backoff survive its own restart: where the
//! file lives by default, and a write that a crash or power loss leaves either old or new, never
//! torn (a uniquely named temporary file in the same directory, fsynced, renamed over the old
//! one, then the directory fsynced so the rename itself is durable).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::history::Saved;

/// The file's name under its directory.
pub const FILE_NAME: &str = "heal.json";
/// The directory used when `XDG_STATE_HOME` is not set and it can be written.
pub const SYSTEM_DIR: &str = "/var/lib/healthcheck-sidecar";

/// Where the history is kept when `--heal-state` does not say: `$XDG_STATE_HOME/healthcheck-sidecar`
/// when set, else `/var/lib/healthcheck-sidecar`, else `$HOME/.local/state/healthcheck-sidecar`;
/// the first whose directory can be created and written. `Err` lists what was tried and why not.
pub fn default_path(env: impl Fn(&str) -> Option<String>) -> Result<PathBuf, String> {
    default_path_in(env, Path::new(SYSTEM_DIR))
}

/// [`default_path`] with another system directory (tests must not write to /var/lib).
fn default_path_in(
    env: impl Fn(&str) -> Option<String>,
    system_dir: &Path,
) -> Result<PathBuf, String> {
    let mut tried = Vec::new();
    let mut candidates = Vec::new();
    if let Some(x) = env("XDG_STATE_HOME").filter(|x| x.starts_with('/')) {
        candidates.push(PathBuf::from(x).join("healthcheck-sidecar"));
    }
    candidates.push(system_dir.to_path_buf());
    if let Some(home) = env("HOME").filter(|h| h.starts_with('/') && h != "/") {
        candidates.push(PathBuf::from(home).join(".local/state/healthcheck-sidecar"));
    }
    for dir in candidates {
        match writable(&dir) {
            Ok(()) => return Ok(dir.join(FILE_NAME)),
            Err(e) => tried.push(format!("{}: {e}", dir.display())),
        }
    }
    Err(tried.join("; "))
}

/// Creates `dir` if needed and checks a file can be created in it.
fn writable(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = temp_name(&dir.join(FILE_NAME));
    std::fs::File::create(&probe)?;
    std::fs::remove_file(&probe)
}

/// A temporary name beside `path` that no other writer uses (process id and a counter), so two
/// sidecars given the same file, or a write racing a slow one, never share a half-written file.
fn temp_name(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| FILE_NAME.to_owned());
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Writes `saved` to `path` durably: temp file, fsync, rename, fsync of the directory.
pub fn write(path: &Path, saved: &Saved) -> std::io::Result<()> {
    let body = serde_json::to_vec(saved).map_err(std::io::Error::other)?;
    let tmp = temp_name(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The saved history in `path`: `None` when there is no file yet; an error names what is wrong.
pub fn read(path: &Path) -> Result<Option<Saved>, String> {
    match std::fs::read(path) {
        Ok(body) => serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| format!("not a heal history: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write replaces the file whole, leaves no temporary file behind, and reads back equal;
    /// temporary names differ between writes.
    #[test]
    fn write_is_whole_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        assert_eq!(read(&path), Ok(None));
        let mut saved = Saved {
            v: 2,
            ..Saved::default()
        };
        saved.containers.insert("a".into(), Default::default());
        write(&path, &saved).unwrap();
        write(&path, &saved).unwrap();
        assert_eq!(read(&path), Ok(Some(saved)));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME]);
        assert_ne!(temp_name(&path), temp_name(&path));
        std::fs::write(&path, b"{").unwrap();
        assert!(read(&path).unwrap_err().starts_with("not a heal history"));
    }

    /// The default place: XDG_STATE_HOME when set and writable; when nothing can be written, an
    /// error naming every place tried.
    #[test]
    fn default_place() {
        let dir = tempfile::tempdir().unwrap();
        let xdg = dir.path().to_string_lossy().into_owned();
        let env = |k: &str| (k == "XDG_STATE_HOME").then(|| xdg.clone());
        let system = dir.path().join("var-lib");
        assert_eq!(
            default_path_in(env, &system),
            Ok(dir.path().join("healthcheck-sidecar").join(FILE_NAME))
        );
        // Without XDG_STATE_HOME: the system directory.
        assert_eq!(
            default_path_in(|_| None, &system),
            Ok(system.join(FILE_NAME))
        );
        // A file where the directory should be: nothing writable under it.
        let blocked = dir.path().join("blocked");
        std::fs::write(&blocked, b"").unwrap();
        let b = blocked.to_string_lossy().into_owned();
        let env = |k: &str| match k {
            "XDG_STATE_HOME" | "HOME" => Some(b.clone()),
            _ => None,
        };
        let e = default_path_in(env, &blocked.join("lib")).unwrap_err();
        assert!(e.contains("blocked/healthcheck-sidecar: "), "{e}");
        assert!(e.contains("blocked/lib: "), "{e}");
        assert!(
            e.contains("blocked/.local/state/healthcheck-sidecar: "),
            "{e}"
        );
    }
}
