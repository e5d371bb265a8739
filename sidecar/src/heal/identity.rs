//! Whether the governor may heal at all: it must never restart its own container, so a sidecar
//! that runs in a container whose id it cannot find heals nothing and says why (fail closed).
//! Outside any container it heals: there is no container of its own to restart.
//!
//! Finding the id is [`super::selfid`]'s job; this module only tells "not in a container" from
//! "in one, id unknown", from the marks container engines leave: `/.dockerenv` (Docker),
//! `/run/.containerenv` (Podman), the `container` variable (Podman, systemd-nspawn, LXC), a
//! container engine's name in `/proc/1/cgroup`, an overlay root file system in
//! `/proc/self/mountinfo`.

/// What the sidecar knows of its own container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelfIdentity {
    /// Its container id (full, or the 12-character short id).
    Found(String),
    /// Not in a container: nothing of its own can be restarted.
    NotInContainer,
    /// In a container (the marks listed) whose id it cannot find.
    Unknown {
        /// The marks that say it runs in a container, in words.
        marks: Vec<&'static str>,
    },
}

impl SelfIdentity {
    /// Why the governor must not heal, when it must not.
    pub fn refusal(&self) -> Option<String> {
        match self {
            SelfIdentity::Unknown { marks } => Some(format!(
                "runs in a container ({}) whose id it cannot find: healing refused, as it could \
                 restart itself (give its id with --heal-self ID, or --heal-self none when it \
                 runs in no container it watches)",
                marks.join(", ")
            )),
            _ => None,
        }
    }

    /// The id, when found.
    pub fn id(&self) -> Option<&str> {
        match self {
            SelfIdentity::Found(id) => Some(id),
            _ => None,
        }
    }
}

/// The marks of a container engine, read through `exists` (a path) and `read` (a file's text or
/// an environment variable's value, named `env:NAME`).
pub fn container_marks(
    exists: impl Fn(&str) -> bool,
    read: impl Fn(&str) -> Option<String>,
) -> Vec<&'static str> {
    let mut marks = Vec::new();
    if exists("/.dockerenv") {
        marks.push("/.dockerenv exists");
    }
    if exists("/run/.containerenv") {
        marks.push("/run/.containerenv exists");
    }
    if read("env:container").is_some_and(|v| !v.is_empty()) {
        marks.push("the container variable is set");
    }
    const ENGINES: [&str; 6] = [
        "docker",
        "containerd",
        "kubepods",
        "libpod",
        "podman",
        "lxc",
    ];
    if read("/proc/1/cgroup").is_some_and(|t| {
        t.lines().any(|l| {
            let path = l.splitn(3, ':').nth(2).unwrap_or("");
            ENGINES.iter().any(|e| path.contains(e))
        })
    }) {
        marks.push("/proc/1/cgroup names a container engine");
    }
    if read("/proc/self/mountinfo").is_some_and(|t| {
        t.lines().any(|l| {
            let mut f = l.split_whitespace();
            f.nth(4) == Some("/")
                && l.split(" - ")
                    .nth(1)
                    .is_some_and(|fs| fs.starts_with("overlay"))
        })
    }) {
        marks.push("the root file system is an overlay");
    }
    marks
}

/// What this process knows of its own container: `id` (from [`super::selfid::find`]) when found,
/// else whether the marks say it runs in one.
pub fn classify(id: Option<String>, marks: Vec<&'static str>) -> SelfIdentity {
    match id {
        Some(id) => SelfIdentity::Found(id),
        None if marks.is_empty() => SelfIdentity::NotInContainer,
        None => SelfIdentity::Unknown { marks },
    }
}

/// This process's identity, from the real files.
pub fn detect() -> SelfIdentity {
    let marks = container_marks(
        |p| std::path::Path::new(p).exists(),
        |p| match p.strip_prefix("env:") {
            Some(name) => std::env::var(name).ok(),
            None => std::fs::read_to_string(p).ok(),
        },
    );
    classify(super::selfid::find(), marks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks_of(files: &[(&str, &str)]) -> Vec<&'static str> {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        container_marks(
            |p| files.iter().any(|(k, _)| k == p),
            |p| files.iter().find(|(k, _)| k == p).map(|(_, v)| v.clone()),
        )
    }

    /// Each engine's mark is recognised; a plain host has none.
    #[test]
    fn marks() {
        assert_eq!(
            marks_of(&[
                ("/proc/1/cgroup", "0::/init.scope\n"),
                (
                    "/proc/self/mountinfo",
                    "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
                )
            ]),
            Vec::<&str>::new()
        );
        assert_eq!(marks_of(&[("/.dockerenv", "")]), ["/.dockerenv exists"]);
        assert_eq!(
            marks_of(&[("/run/.containerenv", ""), ("env:container", "podman")]),
            ["/run/.containerenv exists", "the container variable is set"]
        );
        assert_eq!(
            marks_of(&[("/proc/1/cgroup", "12:pids:/kubepods/burstable/pod1/abc\n")]),
            ["/proc/1/cgroup names a container engine"]
        );
        assert_eq!(
            marks_of(&[(
                "/proc/self/mountinfo",
                "812 790 0:52 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/x\n"
            )]),
            ["the root file system is an overlay"]
        );
    }

    /// Found: heals. No marks: heals (nothing of its own to restart). Marks and no id: refuses,
    /// naming the marks and the way out.
    #[test]
    fn refusal() {
        assert_eq!(classify(Some("ab".repeat(32)), vec!["x"]).refusal(), None);
        assert_eq!(classify(None, vec![]), SelfIdentity::NotInContainer);
        assert_eq!(classify(None, vec![]).refusal(), None);
        let why = classify(None, vec!["/.dockerenv exists"])
            .refusal()
            .unwrap();
        assert!(why.contains("/.dockerenv exists"), "{why}");
        assert!(why.contains("whose id it cannot find"), "{why}");
        assert!(why.contains("--heal-self"), "{why}");
    }
}
