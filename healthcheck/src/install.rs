//! `healthcheck install DIR`: copy the binaries into a shared volume.
//!
//! Scratch images have no `cp`, so a short-lived init container runs this to fill a volume that
//! unmodified redis, nats and agent containers mount read-only for their exec-form healthchecks,
//! or a Dockerfile stage runs it to put every binary into another image in one step.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The companion binaries installed beside `healthcheck` when they sit next to it: the
/// `ready-signal` CLI (shell and wrapped agents) and `healthcheck-sidecar` (the stack's watcher).
/// The project's image has all three; an image without the sidecar installs the other two.
pub const COMPANIONS: [&str; 2] = ["ready-signal", "healthcheck-sidecar"];

/// Copies the running executable, and companions found beside it, into `dir`.
///
/// Each file is written under a temporary name and renamed, so a container starting meanwhile
/// never executes a half-written binary. Returns the installed paths.
pub fn install(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let me = std::env::current_exe()?;
    fs::create_dir_all(dir)?;
    let mut installed = vec![copy_executable(&me, &dir.join("healthcheck"))?];
    if let Some(here) = me.parent() {
        for name in COMPANIONS {
            let source = here.join(name);
            if source.is_file() {
                installed.push(copy_executable(&source, &dir.join(name))?);
            }
        }
    }
    Ok(installed)
}

fn copy_executable(from: &Path, to: &Path) -> io::Result<PathBuf> {
    let tmp = to.with_extension("tmp-install");
    fs::copy(from, &tmp).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("copy {} to {}: {e}", from.display(), tmp.display()),
        )
    })?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
    fs::rename(&tmp, to)?;
    Ok(to.to_path_buf())
}
