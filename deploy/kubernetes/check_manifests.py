#!/usr/bin/env python3
"""Checks the Kubernetes manifests beyond their schemas (validate.sh runs this after
kubernetes-validate), with the rules the project's field notes set for probes and secrets:

- kustomization.yaml lists every manifest and every file it generates from, and they exist;
- no secret in any argv (a container's command/args or an exec probe's command, which
  `kubectl describe` and the kubelet's events show) and no secret value in the environment:
  passwords come from files of a mounted Secret (`*_FILE` variables, `password_file=`);
- every exec probe's `timeoutSeconds` is above the probe's own `--timeout`, so the probe ends
  by itself and says which target hung;
- liveness and startup probes check only the agent's own record (`ready://`), never a shared
  dependency (redis://, nats://, http://, tcp://): that restarts every pod at once;
- every `healthcheck` argv is accepted by the built binary: each one is run, with the
  container's environment and the Secret's files stood in under a temporary directory, with
  `--format json`; a configuration error prints a line instead of the JSON verdict. The
  targets themselves are unreachable here (no cluster), which is expected.

Usage: check_manifests.py DIR HEALTHCHECK_BIN [SIDECAR_BIN]
"""

import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

# Image entrypoints, for containers that give only `args`.
ENTRYPOINTS = {
    "healthcheck": ["/healthcheck"],
    "healthcheck-demo/agent": ["/agent"],
}

# What a secret on a command line looks like: an option or flag carrying it, or a URL userinfo
# with a password (`redis://user:pass@host`).
SECRET_ARG = re.compile(
    r"(^|[?&;\s])(password|pass|token|secret|nkey|auth)=(?!$)"
    r"|^--?(password|pass|token|auth|secret|requirepass|masterauth)\b"
    r"|://[^/@\s]*:[^/@\s]+@",
    re.IGNORECASE,
)
SECRET_ENV = re.compile(r"(PASSWORD|PASS|TOKEN|SECRET|NKEY|CREDS)", re.IGNORECASE)
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")
SHARED_DEPENDENCY = re.compile(r"^(redis|rediss|redis\+sentinel|nats|tls|http|https|tcp)://")

errors = []


def error(where, message):
    errors.append(f"{where}: {message}")


def seconds(duration):
    m = DURATION.match(duration)
    if not m:
        return None
    value, unit = float(m.group(1)), m.group(2) or "s"
    return value / 1000 if unit == "ms" else value * 60 if unit == "m" else value


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def pod_spec(doc):
    kind = doc.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return doc["spec"]
    return None


def check_kustomization(directory):
    path = os.path.join(directory, "kustomization.yaml")
    k = load_all(path)[0]
    where = "kustomization.yaml"
    if k.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or k.get("kind") != "Kustomization":
        error(where, "apiVersion/kind must be kustomize.config.k8s.io/v1beta1 Kustomization")
    known = {"apiVersion", "kind", "labels", "resources", "configMapGenerator", "images",
             "namespace", "commonAnnotations", "patches"}
    for key in k:
        if key not in known:
            error(where, f"unexpected key `{key}`")
    listed = set(k.get("resources", []))
    for r in listed:
        if not os.path.isfile(os.path.join(directory, r)):
            error(where, f"resource {r} does not exist")
    for gen in k.get("configMapGenerator", []):
        for f in gen.get("files", []):
            if not os.path.isfile(os.path.join(directory, f.split("=")[-1])):
                error(where, f"configMapGenerator {gen.get('name')}: file {f} does not exist")
    for name in sorted(os.listdir(directory)):
        if name.endswith(".yaml") and name not in ("kustomization.yaml", "secrets.example.yaml"):
            if name not in listed:
                error(where, f"{name} is not listed in resources")


def secret_files(directory, docs_by_file):
    """Secret name -> keys, from secrets.example.yaml (the shapes the manifests mount)."""
    keys = {}
    for doc in docs_by_file.get("secrets.example.yaml", []):
        if doc.get("kind") == "Secret":
            data = {**doc.get("data", {}), **doc.get("stringData", {})}
            keys[doc["metadata"]["name"]] = sorted(data)
    return keys


def container_env(where, container, remap):
    env = {}
    for e in container.get("env", []):
        name = e["name"]
        if "value" in e:
            value = str(e["value"])
            if SECRET_ENV.search(name) and not name.endswith("_FILE") and not name.endswith("_USER") \
                    and not name.endswith("_USERNAME"):
                error(where, f"environment variable {name} holds a secret value: use {name}_FILE")
            env[name] = remap(value)
        elif "valueFrom" in e:
            if "secretKeyRef" in e["valueFrom"]:
                error(where, f"environment variable {name} comes from a Secret: mount it as a file")
            field = e["valueFrom"].get("fieldRef", {}).get("fieldPath", "")
            # What the kubelet would put there, for the probe's parse.
            env[name] = {"metadata.name": "worker-5d8f9c7b6-x2x4q"}.get(field, "stand-in")
    return env


def run_healthcheck(where, binary, argv, env, stand_in_root):
    """Runs one healthcheck argv (without the program) and reports a configuration error."""
    if argv and argv[0] == "wait":
        # `wait` shares the probe's target grammar; run the targets once as a probe. Its
        # --timeout is checked as a duration; a `-- CMD` part is the command, not targets.
        rest = argv[1:]
        if "--" in rest:
            rest = rest[: rest.index("--")]
        targets, i = [], 0
        while i < len(rest):
            if rest[i] == "--timeout":
                if i + 1 >= len(rest) or seconds(rest[i + 1]) is None:
                    error(where, f"wait --timeout needs a duration, not {rest[i + 1:i + 2]}")
                i += 2
                continue
            targets.append(rest[i])
            i += 1
        argv = ["--timeout", "1ms"] + targets
    elif argv and argv[0] == "install":
        if len(argv) != 2:
            error(where, f"install takes one directory, not {argv[1:]}")
        return
    cmd = [binary, "--format", "json"] + argv
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    try:
        out = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        error(where, f"healthcheck {' '.join(argv)} did not exit within 30 s")
        return
    if out.returncode not in (0, 1):
        error(where, f"healthcheck exited {out.returncode}: only 0 and 1 are allowed")
    try:
        verdict = json.loads(out.stdout)
    except json.JSONDecodeError:
        error(where, f"healthcheck rejects its arguments {argv}: {(out.stdout + out.stderr).strip()}")
        return
    # Configuration and usage errors are JSON too under --format json, with kind "config".
    if verdict.get("kind") == "config":
        error(where, f"healthcheck rejects its arguments {argv}: {verdict.get('reason', '')}")
        return
    for t in verdict.get("targets", []):
        reason = t.get("reason") or ""
        # Unreachable hosts are expected here; a stand-in secret file that cannot be read
        # (a wrong path in the manifest) is not.
        if stand_in_root in reason:
            error(where, f"{t.get('target')}: {reason}")


def check_probe_timeout(where, probe, argv):
    timeout = probe.get("timeoutSeconds", 1)
    if "--timeout" in argv:
        i = argv.index("--timeout")
        value = seconds(argv[i + 1]) if i + 1 < len(argv) else None
        if value is None:
            error(where, "--timeout needs a duration")
        elif value >= timeout:
            error(where, f"--timeout {argv[i + 1]} is not below timeoutSeconds {timeout}")
    else:
        # The probe's default deadline is 900 ms.
        if timeout <= 0.9:
            error(where, f"timeoutSeconds {timeout} is not above the probe's default 900ms")


def main():
    directory, binary = sys.argv[1], sys.argv[2]
    sidecar = sys.argv[3] if len(sys.argv) > 3 else None
    check_kustomization(directory)
    docs_by_file = {
        name: load_all(os.path.join(directory, name))
        for name in sorted(os.listdir(directory))
        if name.endswith(".yaml") and name != "kustomization.yaml"
    }
    secrets = secret_files(directory, docs_by_file)
    checked = 0
    with tempfile.TemporaryDirectory(prefix="k8s-stand-in-") as root:
        for fname, docs in docs_by_file.items():
            for doc in docs:
                spec = pod_spec(doc)
                if spec is None:
                    continue
                volumes = {v["name"]: v for v in spec.get("volumes", [])}
                for kind in ("initContainers", "containers"):
                    for c in spec.get(kind, []):
                        where = f"{fname}: {doc['kind']}/{doc['metadata']['name']} {kind[:-1]} {c['name']}"
                        # Secret volumes mounted by this container, stood in under `root`.
                        mounts = []
                        for m in c.get("volumeMounts", []):
                            vol = volumes.get(m["name"])
                            if vol is None:
                                error(where, f"volumeMount {m['name']} has no volume")
                                continue
                            if "secret" in vol:
                                name = vol["secret"]["secretName"]
                                if name not in secrets:
                                    error(where, f"Secret {name} is not in secrets.example.yaml")
                                target = os.path.join(root, m["mountPath"].lstrip("/"))
                                os.makedirs(target, exist_ok=True)
                                for key in secrets.get(name, []):
                                    with open(os.path.join(target, key), "w") as f:
                                        f.write("stand-in-password\n")
                                mounts.append(m["mountPath"].rstrip("/") + "/")

                        def remap(value, mounts=mounts):
                            for mp in mounts:
                                value = value.replace(mp, os.path.join(root, mp.lstrip("/")))
                            return value

                        # Every secret file named in env or argv must lie in a mounted Secret.
                        files = [(e["name"], str(e["value"])) for e in c.get("env", [])
                                 if e["name"].endswith("_FILE") and "value" in e]
                        arg_lists = [c.get("command") or [], c.get("args") or []] + [
                            c[p]["exec"]["command"] for p in ("startupProbe", "readinessProbe", "livenessProbe")
                            if p in c and "exec" in c[p]]
                        files += [(m.group(1), m.group(2)) for args in arg_lists for a in args
                                  for m in re.finditer(r"(\w+_file)=([^&]+)", a)]
                        for name, path in files:
                            if not any(path.startswith(mp) for mp in mounts):
                                error(where, f"{name}={path} is not in a mounted Secret ({mounts})")
                        env = container_env(where, c, remap)
                        image = c["image"].rsplit(":", 1)[0]
                        argv = list(c.get("command") or ENTRYPOINTS.get(image, [])) + list(c.get("args", []))
                        runs = [("argv", argv, None)]
                        for p in ("startupProbe", "readinessProbe", "livenessProbe"):
                            probe = c.get(p)
                            if probe and "exec" in probe:
                                runs.append((p, list(probe["exec"]["command"]), probe))
                        for label, cmd, probe in runs:
                            w = f"{where} {label}"
                            for arg in cmd:
                                if SECRET_ARG.search(arg):
                                    error(w, f"secret on the command line: {arg!r}")
                            if not cmd:
                                continue
                            prog = os.path.basename(cmd[0])
                            if prog == "healthcheck":
                                if probe is not None:
                                    check_probe_timeout(w, probe, cmd)
                                if label in ("startupProbe", "livenessProbe"):
                                    for arg in cmd[1:]:
                                        if SHARED_DEPENDENCY.match(arg):
                                            error(w, f"checks a shared dependency {arg}: a failing "
                                                     "Redis/NATS would restart every pod")
                                    for arg in cmd[1:]:
                                        if arg.startswith("ready://") and "store=file" not in arg:
                                            error(w, f"{arg} reads the shared store: add "
                                                     "store=file (the agent's own record file)")
                                run_healthcheck(w, binary, [remap(a) for a in cmd[1:]], env, root)
                                checked += 1
                            elif prog == "healthcheck-sidecar":
                                if sidecar and os.path.isfile(sidecar):
                                    # clap reads every flag before it acts on --help: a bad
                                    # flag or value is an error, good ones print the help.
                                    out = subprocess.run([sidecar] + cmd[1:] + ["--help"],
                                                         capture_output=True, text=True, timeout=30)
                                    if out.returncode != 0:
                                        error(w, f"healthcheck-sidecar rejects {cmd[1:]}: "
                                                 f"{(out.stdout + out.stderr).strip()[:500]}")
                                    checked += 1
                                else:
                                    print(f"note: {w}: healthcheck-sidecar not built here; its flags "
                                          "are not checked", file=sys.stderr)
    if errors:
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"manifests ok: {checked} healthcheck command lines accepted, no secret in argv or env")


if __name__ == "__main__":
    main()
