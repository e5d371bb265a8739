//! Which container this process runs in, from what the kernel shows it: the one answer the
//! writer records (so a healer links a replica to its container by id, never by a host name
//! that two containers may share) and the sidecar uses for itself (so it never restarts itself).
//!
//! Sources, tried in order, each robust where the previous is not:
//! 1. `/proc/self/mountinfo`: the engine bind-mounts `/etc/hostname` (and `/etc/hosts`,
//!    `/etc/resolv.conf`) from the container's own directory: Docker's
//!    `.../containers/<id>/hostname`, Podman's `.../overlay-containers/<id>/userdata/hostname`.
//!    True on cgroup v1 and v2, with or without a private cgroup namespace, with any host name.
//! 2. `/proc/self/cgroup`: `/docker/<id>` (cgroup v1), `docker-<id>.scope`,
//!    `libpod-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope` (cgroup v2 without a
//!    private cgroup namespace, which shows only `0::/`).
//! 3. The host name, which Docker sets to the 12-digit short id unless told otherwise: never a
//!    full id, so [`find`] does not use it; [`short_id_from_hostname`] gives it to a caller that
//!    can resolve a prefix against the engine (the sidecar, for itself).
//!
//! An id is exactly 64 lowercase hex digits ([`is_id`]); anything else is not an id, and outside
//! a container (or in one that hides all of the above) the answer is `None`, never a guess.

use std::sync::OnceLock;

/// Length of a full container id (Docker, Podman, containerd): 64 lowercase hex digits.
pub const ID_LEN: usize = 64;

/// Whether `s` is a full container id: exactly 64 lowercase hex digits.
///
/// ```
/// assert!(ready_signal::container::is_id(&"ab12".repeat(16)));
/// assert!(!ready_signal::container::is_id("ab12"));
/// assert!(!ready_signal::container::is_id(&"AB12".repeat(16)));
/// ```
pub fn is_id(s: &str) -> bool {
    s.len() == ID_LEN && s.bytes().all(is_lower_hex)
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// The files an engine bind-mounts from the container's own directory.
const ENGINE_MOUNTS: [&str; 3] = ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];

/// The container id in a `/proc/self/mountinfo` text: the `<id>` directory, under a directory
/// whose name ends in `containers` (Docker's `containers/`, Podman's `overlay-containers/`), of
/// the file mounted on `/etc/hostname`, `/etc/hosts` or `/etc/resolv.conf`.
///
/// A Kubernetes pod's files come from the pod's directory or a sandbox (`sandboxes/<id>`, the
/// pause container's id), which this rule does not take for the container's.
pub fn from_mountinfo(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        if !ENGINE_MOUNTS.contains(&mount_point) {
            return None;
        }
        let parts: Vec<&str> = root.split('/').collect();
        parts.windows(2).find_map(|pair| {
            (pair[0].ends_with("containers") && is_id(pair[1])).then(|| pair[1].to_string())
        })
    })
}

/// Prefixes of the cgroup (v2: scope) names engines give a container; `libpod-conmon-<id>` is
/// Podman's monitor process, not the container, and is not among them.
const SCOPE_PREFIXES: [&str; 4] = ["docker-", "libpod-", "cri-containerd-", "crio-"];

/// The container id in a `/proc/self/cgroup` text: a path component that is an id
/// (`/docker/<id>`, `/kubepods/.../<id>`) or an engine's scope for one (`docker-<id>.scope`,
/// `libpod-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`).
pub fn from_cgroup(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let path = line.splitn(3, ':').nth(2)?;
        path.split('/').find_map(|part| {
            let part = part.strip_suffix(".scope").unwrap_or(part);
            let id = SCOPE_PREFIXES
                .iter()
                .find_map(|p| part.strip_prefix(p))
                .unwrap_or(part);
            is_id(id).then(|| id.to_string())
        })
    })
}

/// The host name when it looks like a container's short id (12 lowercase hex digits, Docker's
/// default host name). Only a hint: a host name is whatever the container was given, so a
/// caller trusts it only after the engine confirms a container with that id prefix.
pub fn short_id_from_hostname(hostname: &str) -> Option<String> {
    let h = hostname.trim();
    (h.len() == 12 && h.bytes().all(is_lower_hex)).then(|| h.to_string())
}

/// This process's full container id from the kernel's files (mountinfo, then cgroup); `None`
/// outside a container or in one that hides both. Reads the files at every call (see
/// [`current`] for the cached answer).
pub fn find() -> Option<String> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    read("/proc/self/mountinfo")
        .and_then(|t| from_mountinfo(&t))
        .or_else(|| read("/proc/self/cgroup").and_then(|t| from_cgroup(&t)))
}

/// [`find`], read once per process: a process never changes containers.
pub fn current() -> Option<&'static str> {
    static CURRENT: OnceLock<Option<String>> = OnceLock::new();
    CURRENT.get_or_init(find).as_deref()
}

/// This host's short id from `/etc/hostname` ([`short_id_from_hostname`]), for a caller that
/// found no full id and can ask the engine which container has that prefix.
pub fn short_id() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .and_then(|t| short_id_from_hostname(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e8a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7";

    /// Docker: the id comes from the /etc/hostname bind mount, as on cgroup v2 with a cgroup
    /// namespace and any host name.
    #[test]
    fn docker_mountinfo() {
        let text = format!(
            "812 790 0:52 / / rw,relatime master:1 - overlay overlay rw\n\
             830 812 8:1 /var/lib/docker/containers/{ID}/resolv.conf /etc/resolv.conf rw - ext4 /dev/sda1 rw\n\
             831 812 8:1 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n"
        );
        assert_eq!(from_mountinfo(&text).as_deref(), Some(ID));
        assert_eq!(
            from_mountinfo("1 0 0:1 / / rw - overlay overlay rw\n"),
            None
        );
    }

    /// Podman (rootful and rootless) keeps the files under `overlay-containers/<id>/userdata`.
    #[test]
    fn podman_mountinfo() {
        for root in [
            format!("/var/lib/containers/storage/overlay-containers/{ID}/userdata/hostname"),
            format!("/run/user/1000/containers/overlay-containers/{ID}/userdata/hostname"),
        ] {
            let text = format!("1204 1190 0:26 {root} /etc/hostname rw,nosuid - tmpfs tmpfs rw\n");
            assert_eq!(from_mountinfo(&text).as_deref(), Some(ID), "{root}");
        }
    }

    /// An id-shaped directory that is not a container's (an overlay layer, a Kubernetes
    /// sandbox, a volume mounted elsewhere) is not taken.
    #[test]
    fn other_ids_in_mountinfo_are_not_taken() {
        let text = format!(
            "1 0 0:1 /var/lib/docker/overlay2/{ID}/diff /data rw - overlay overlay rw\n\
             2 0 0:1 /var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/{ID}/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n\
             3 0 0:1 /var/lib/docker/containers/{ID}/hostname /srv/hostname rw - ext4 /dev/sda1 rw\n"
        );
        assert_eq!(from_mountinfo(&text), None);
        let upper = ID.to_uppercase();
        let text = format!(
            "1 0 8:1 /var/lib/docker/containers/{upper}/hostname /etc/hostname rw - ext4 x rw\n"
        );
        assert_eq!(from_mountinfo(&text), None);
    }

    /// cgroup v1 paths and the engines' v2 scopes carry the id; a namespaced v2 `0::/` does
    /// not, and Podman's monitor (`libpod-conmon-`) is not the container.
    #[test]
    fn cgroup_paths() {
        for text in [
            format!("12:memory:/docker/{ID}\n"),
            format!("0::/system.slice/docker-{ID}.scope\n"),
            format!("0::/machine.slice/libpod-{ID}.scope/container\n"),
            format!("0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-{ID}.scope\n"),
            format!("0::/kubepods/burstable/pod0b0c/{ID}\n"),
        ] {
            assert_eq!(from_cgroup(&text).as_deref(), Some(ID), "{text}");
        }
        assert_eq!(from_cgroup("0::/\n"), None);
        assert_eq!(
            from_cgroup("0::/user.slice/user-1000.slice/session-3.scope\n"),
            None
        );
        assert_eq!(
            from_cgroup(&format!("0::/machine.slice/libpod-conmon-{ID}.scope\n")),
            None
        );
    }

    /// Rootful Podman 4.3 with the cgroupfs manager on cgroup v1 (no systemd), as read inside a
    /// container on the project's machine (docker/e2e-podman.sh runs the sidecar there): the
    /// run-files under `/run/containers/storage`, the cgroup under `/libpod_parent/libpod-<id>`.
    #[test]
    fn podman_rootful_cgroupfs_as_seen_here() {
        let mountinfo = format!(
            "88 82 254:0 /run/containers/storage/overlay-containers/{ID}/userdata/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw,discard\n"
        );
        assert_eq!(from_mountinfo(&mountinfo).as_deref(), Some(ID));
        let cgroup = format!(
            "9:name=systemd:/libpod_parent/libpod-{ID}\n8:pids:/libpod_parent/libpod-{ID}\n"
        );
        assert_eq!(from_cgroup(&cgroup).as_deref(), Some(ID));
    }

    /// Only a 12-hex host name is taken for a short id, and never for a full one.
    #[test]
    fn hostname_short_id() {
        assert_eq!(
            short_id_from_hostname("3f4e8a1b2c3d\n").as_deref(),
            Some("3f4e8a1b2c3d")
        );
        assert_eq!(short_id_from_hostname("sidecar"), None);
        assert_eq!(short_id_from_hostname(ID), None);
    }

    /// This test process runs on the host or in a container; either way the answer is a full
    /// id or nothing.
    #[test]
    fn current_is_an_id_or_nothing() {
        assert!(current().is_none_or(is_id));
        assert_eq!(current().map(str::to_string), find());
    }
}
