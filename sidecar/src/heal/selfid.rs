//! Finding the sidecar's own container, so the governor never restarts it whatever its labels say
//! (a service must never be responsible for its own restart).
//!
//! Tried in order, each robust where the previous is not:
//! 1. `/proc/self/mountinfo`: Docker bind-mounts `/etc/hostname` (and `hosts`, `resolv.conf`) from
//!    `.../containers/<64 hex>/`; true on cgroup v1 and v2, with or without a private cgroup
//!    namespace.
//! 2. `/proc/self/cgroup`: `/docker/<id>` or `docker-<id>.scope` (cgroup v1, or v2 without a
//!    cgroup namespace).
//! 3. The host name, which Docker sets to the 12-character short id unless told otherwise; the
//!    caller only trusts it when a container with that id prefix exists.

/// A 64-character lowercase hex container id at the start of `s`, if there is one.
fn id_at(s: &str) -> Option<&str> {
    let id = s.get(..64)?;
    id.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        .then_some(id)
}

/// The container id in a `/proc/self/mountinfo` text: the directory of the `/etc/hostname` mount.
pub fn from_mountinfo(text: &str) -> Option<String> {
    text.lines()
        .filter(|l| l.split_whitespace().nth(4) == Some("/etc/hostname"))
        .find_map(|l| {
            let root = l.split_whitespace().nth(3)?;
            let at = root.find("/containers/")? + "/containers/".len();
            id_at(&root[at..]).map(str::to_owned)
        })
}

/// The container id in a `/proc/self/cgroup` text (`.../docker/<id>` or `docker-<id>.scope`).
pub fn from_cgroup(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let path = l.splitn(3, ':').nth(2)?;
        path.split('/').find_map(|part| {
            let part = part.strip_prefix("docker-").unwrap_or(part);
            id_at(part).map(str::to_owned)
        })
    })
}

/// The host name when it looks like a short container id (12 lowercase hex characters).
pub fn from_hostname(hostname: &str) -> Option<String> {
    let h = hostname.trim();
    (h.len() == 12
        && h.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then(|| h.to_owned())
}

/// This process's container id, full when the kernel's files say it, else the short id from the
/// host name; `None` outside a container (or one that hides all three).
pub fn find() -> Option<String> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    read("/proc/self/mountinfo")
        .and_then(|t| from_mountinfo(&t))
        .or_else(|| read("/proc/self/cgroup").and_then(|t| from_cgroup(&t)))
        .or_else(|| read("/etc/hostname").and_then(|t| from_hostname(&t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e8a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7";

    /// The id comes from the /etc/hostname bind mount, as on cgroup v2 with a cgroup namespace.
    #[test]
    fn mountinfo_hostname_mount() {
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

    /// cgroup v1 paths and systemd scopes carry the id; a namespaced v2 `0::/` does not.
    #[test]
    fn cgroup_paths() {
        assert_eq!(
            from_cgroup(&format!("12:memory:/docker/{ID}\n")).as_deref(),
            Some(ID)
        );
        let scope = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(from_cgroup(&scope).as_deref(), Some(ID));
        assert_eq!(from_cgroup("0::/\n"), None);
    }

    /// Only a 12-hex host name is taken for a short id.
    #[test]
    fn hostname_short_id() {
        assert_eq!(
            from_hostname("3f4e8a1b2c3d\n").as_deref(),
            Some("3f4e8a1b2c3d")
        );
        assert_eq!(from_hostname("sidecar"), None);
    }
}
