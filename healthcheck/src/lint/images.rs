//! What is known about an image's contents without pulling it: whether it has a shell, and which
//! of the usual probe tools it has. Only images whose contents are fixed by their maintainers
//! are listed (scratch, distroless, the official nats and redis images, alpine and busybox,
//! Debian's slim images, this project's own); anything else is unknown and never flagged.

/// The tools the rules look for in a test (by program name). A program outside this list is
/// never reported as missing: the image may well have it.
pub(crate) const WATCHED: [&str; 16] = [
    "curl",
    "wget",
    "nc",
    "ncat",
    "netcat",
    "redis-cli",
    "pg_isready",
    "mysqladmin",
    "sh",
    "bash",
    "python",
    "python3",
    "node",
    "grpc_health_probe",
    "nats",
    "healthcheck",
];

/// What an image is known to contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Contents {
    /// How the image is described in a finding (`the official nats image (FROM scratch)`).
    pub(crate) what: String,
    /// Whether `/bin/sh` exists.
    pub(crate) shell: bool,
    /// Which of [`WATCHED`] it has.
    pub(crate) tools: &'static [&'static str],
}

const BUSYBOX: &[&str] = &["sh", "wget", "nc"];
const NOTHING: &[&str] = &[];

/// The image's name without registry, `library/`, tag or digest, and its tag.
pub(crate) fn split(image: &str) -> (String, String) {
    let image = image.split('@').next().unwrap_or(image);
    let (name, tag) = match image.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (image, "latest"),
    };
    let name = name
        .strip_prefix("docker.io/")
        .unwrap_or(name)
        .strip_prefix("library/")
        .unwrap_or_else(|| name.strip_prefix("docker.io/").unwrap_or(name));
    (name.to_string(), tag.to_string())
}

/// The contents of `image`, when known. `built_from` is the base of the Dockerfile a service
/// builds, which decides over its `image:` name.
pub(crate) fn contents(image: Option<&str>, built_from: Option<&str>) -> Option<Contents> {
    if let Some(base) = built_from {
        let mut c = contents(Some(base), None)?;
        c.what = format!("an image built FROM {base}");
        return Some(c);
    }
    let image = image?;
    let (name, tag) = split(image);
    let last = name.rsplit('/').next().unwrap_or(&name);
    let alpine = tag.contains("alpine");
    let known = |what: &str, shell: bool, tools: &'static [&'static str]| {
        Some(Contents {
            what: what.to_string(),
            shell,
            tools,
        })
    };
    match name.as_str() {
        "scratch" => known("scratch (an empty image)", false, NOTHING),
        "nats" if !alpine => known("the official nats image (FROM scratch)", false, &["nats"]),
        "redis" | "valkey/valkey" if !alpine => known(
            "the official redis image (Debian slim: no curl, no wget)",
            true,
            &["sh", "bash", "redis-cli"],
        ),
        "postgres" if !alpine => known(
            "the official postgres image (Debian: no curl, no wget)",
            true,
            &["sh", "bash", "pg_isready"],
        ),
        "busybox" => known("busybox (no curl)", true, BUSYBOX),
        "alpine" => known("alpine (busybox: no curl, no bash)", true, BUSYBOX),
        // This project's images: docker/Dockerfile and docker/images/ (all FROM scratch).
        "healthcheck" | "healthcheck-demo/agent" | "healthcheck-demo/python-agent" => known(
            "this project's scratch image (no shell: use the exec form)",
            false,
            &["healthcheck"],
        ),
        "healthcheck-demo/script-agent" => known(
            "this project's script-agent image (busybox only)",
            true,
            BUSYBOX,
        ),
        _ if name.starts_with("gcr.io/distroless/") && !tag.contains("debug") => {
            known("a distroless image (no shell, no tools)", false, NOTHING)
        }
        _ if name.starts_with("cgr.dev/chainguard/static") => {
            known("chainguard/static (no shell, no tools)", false, NOTHING)
        }
        _ if alpine && matches!(last, "redis" | "valkey") => known(
            "an alpine redis image (busybox: no curl)",
            true,
            &["sh", "wget", "nc", "redis-cli"],
        ),
        _ if alpine && last == "postgres" => known(
            "an alpine postgres image (busybox: no curl)",
            true,
            &["sh", "wget", "nc", "pg_isready"],
        ),
        _ if alpine && last == "nats" => known(
            "the alpine nats image (busybox: no curl)",
            true,
            &["sh", "wget", "nc", "nats"],
        ),
        "debian" | "ubuntu" => known(
            "a Debian or Ubuntu base image (no curl, no wget)",
            true,
            &["sh", "bash"],
        ),
        "python" if tag.contains("slim") => known(
            "a python slim image (no curl, no wget)",
            true,
            &["sh", "bash", "python", "python3"],
        ),
        "node" if tag.contains("slim") => known(
            "a node slim image (no curl, no wget)",
            true,
            &["sh", "bash", "node"],
        ),
        "node" if alpine => known(
            "a node alpine image (busybox: no curl)",
            true,
            &["sh", "wget", "nc", "node"],
        ),
        "python" if alpine => known(
            "a python alpine image (busybox: no curl)",
            true,
            &["sh", "wget", "nc", "python", "python3"],
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Registry prefixes, tags and digests do not hide a known image.
    #[test]
    fn names() {
        assert_eq!(
            split("docker.io/library/nats:2.10"),
            ("nats".into(), "2.10".into())
        );
        assert_eq!(
            split("localhost:5000/app"),
            ("localhost:5000/app".into(), "latest".into())
        );
        assert!(!contents(Some("nats:2.10"), None).unwrap().shell);
        assert!(contents(Some("nats:2.10-alpine"), None).unwrap().shell);
        assert!(
            !contents(Some("gcr.io/distroless/static-debian12:nonroot"), None)
                .unwrap()
                .shell
        );
        assert!(contents(Some("gcr.io/distroless/base:debug"), None).is_none());
        assert!(!contents(Some("app"), Some("scratch")).unwrap().shell);
        assert!(contents(Some("myorg/app:1"), None).is_none());
    }
}
