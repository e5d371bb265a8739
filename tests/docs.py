"""Every snippet and cross-reference in the user documentation, checked against the code.

Run by tests/docs.sh (which builds the probe first); see it for what is checked and how. Prints
one line per finding and exits 1 if there is any, so a snippet cannot drift from the code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROBE = os.environ.get("HEALTHCHECK_BIN") or str(ROOT / "target/debug/healthcheck")
VENV_PYTHON = ROOT / "target/pyvenv/bin/python"

# What users read: the README, the documents it links, the example stack.
USER_DOCS = ["README.md", "sidecar/HEAL.md", "deploy/kubernetes/README.md",
             "ready-signal/python/README.md", "ready-signal/PROTOCOL.md"]
# Files whose links and anchors must resolve too (linked from the above).
LINKED_DOCS = USER_DOCS + ["BENCHMARKS.md", "RELIABILITY.md"]
COMPOSE_FILES = ["examples/compose-v2/compose.yaml", "docker/compose.yml"]
# Words of the project's internals that mean nothing to a user (the protocol spec may use them,
# never an issue number).
INTERNAL = [r"\bissue \d+", r"\blayout 2\b", r"Observer::all", r"\babi3\b"]
INTERNAL_PROSE = [r"\bepoch", r"\bfenc(e|ed|ing)\b"]

findings: list[str] = []
checked: dict[str, int] = {}


def finding(where: str, what: str) -> None:
    findings.append(f"{where}: {what}")


def count(what: str, n: int = 1) -> None:
    checked[what] = checked.get(what, 0) + n


def blocks(path: str):
    """(language, first line number, text) of every fenced code block."""
    lines = (ROOT / path).read_text().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\S*)\s*$", lines[i])
        if m:
            indent, lang, start, body = m.group(1), m.group(2), i + 1, []
            i += 1
            while i < len(lines) and not re.match(rf"^{indent}```\s*$", lines[i]):
                body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
                i += 1
            yield lang, start + 1, "\n".join(body) + "\n"
        i += 1


# --- compose files and YAML snippets -------------------------------------------------------------

def compose_cmd() -> list[str] | None:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


COMPOSE = compose_cmd()
V1 = COMPOSE == ["docker-compose"]


def validate_compose(where: str, text: str, directory: Path) -> None:
    """`compose config` on the file. Compose v1 rejects the v2-only key `start_interval`: it is
    removed for v1 after checking it is a duration beside a start_period above zero (the engine
    ignores it otherwise), and counted as not validated by Compose."""
    if V1:
        for m in re.finditer(r"^(\s*)start_interval:\s*(\S+).*\n", text, re.M):
            if not re.fullmatch(r"\d+(ms|s|m|h)", m.group(2)):
                finding(where, f"start_interval {m.group(2)!r} is not a duration")
            count("start_interval lines not validated by Compose v1 (removed before it ran)")
        if "start_interval" in text and not re.search(r"start_period:\s*[1-9]", text):
            finding(where, "start_interval without a start_period above zero is ignored by the engine")
        text = re.sub(r"^\s*start_interval:.*\n", "", text, flags=re.M)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=directory, delete=False) as f:
        f.write(text)
        name = f.name
    try:
        env = dict(os.environ, REDIS_IMAGE="redis:7.2", NATS_IMAGE="nats:2.10")
        r = subprocess.run([*COMPOSE, "-p", "docscheck", "-f", name, "config", "-q"],
                           capture_output=True, text=True, env=env, cwd=directory)
        if r.returncode != 0:
            finding(where, f"{' '.join(COMPOSE)} config rejects it: {r.stderr.strip()}")
        count(f"Compose files validated by `{' '.join(COMPOSE)} config`")
    finally:
        os.unlink(name)


def as_compose(text: str) -> str | None:
    """A Compose snippet as a whole file: one with `services:` as is, an indented service
    fragment under `services:`, anything else (Kubernetes, Prometheus) None."""
    if re.search(r"^services:", text, re.M):
        return text
    if re.match(r"^  [a-z][\w-]*:\s*$", text.split("\n", 1)[0]):
        return "services:\n" + text
    return None


def probe_commands(node, found: list[list[str]]) -> None:
    """Every argv in the YAML that runs the probe (a healthcheck `test`, an entrypoint, ...)."""
    if isinstance(node, dict):
        for value in node.values():
            probe_commands(value, found)
    elif isinstance(node, list):
        strings = [x for x in node if isinstance(x, str)]
        if len(strings) == len(node):
            for i, arg in enumerate(node):
                if arg.endswith("/healthcheck"):
                    found.append(node[i:])
                    break
            else:
                for x in node:
                    probe_commands(x, found)
        else:
            for x in node:
                probe_commands(x, found)


def check_probe_argv(where: str, argv: list[str], secrets: Path) -> None:
    """The targets of a probe or `wait` command line parse: the probe, given them with a 50 ms
    deadline, reports no configuration error (it cannot reach the hosts here; it must only
    accept what the docs tell users to write)."""
    args = argv[1:]
    if args[:1] == ["install"]:
        count("probe command lines checked")
        return
    if args[:1] == ["wait"]:
        args = args[1:]
        if "--" in args:
            args = args[: args.index("--")]
    targets, i = [], 0
    while i < len(args):
        if args[i] in ("--timeout", "--format", "--config"):
            i += 2
            continue
        targets.append(args[i])
        i += 1
    if not targets:
        count("probe command lines checked")
        return
    # Secret files the docs name (/run/secrets/...) exist in a scratch directory instead.
    rewritten = [t.replace("/run/secrets/", f"{secrets}/") for t in targets]
    for t in rewritten:
        for path in re.findall(r"_file=([^&]+)", t):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text("docs-check-secret\n")
    env = {"PATH": "/usr/bin:/bin", "READY_SIGNAL_DIR": str(secrets / "records"),
           "READY_SIGNAL_REDIS_URL": "redis://127.0.0.1:1", "HOSTNAME": "docscheck"}
    r = subprocess.run([PROBE, "--format", "json", "--timeout", "50ms", *rewritten],
                       capture_output=True, text=True, env=env)
    try:
        verdict = json.loads(r.stdout)
    except ValueError:
        finding(where, f"the probe printed no JSON for {targets}: {r.stdout!r} {r.stderr!r}")
        return
    bad = [t for t in verdict.get("targets", []) if t.get("kind") == "config"]
    if verdict.get("kind") == "config" or bad:
        finding(where, f"{' '.join(argv)}: configuration error: {verdict.get('reason') or bad}")
    count("probe command lines checked")


def check_yaml(where: str, text: str, directory: Path, secrets: Path) -> None:
    compose = as_compose(text)
    try:
        doc = yaml.safe_load(compose or text)
    except yaml.YAMLError as e:
        finding(where, f"not YAML: {e}")
        return
    count("YAML snippets parsed")
    if compose is not None and COMPOSE:
        validate_compose(where, compose, directory)
    found: list[list[str]] = []
    probe_commands(doc, found)
    for argv in found:
        check_probe_argv(where, argv, secrets)


# --- shell, Python, Rust, Dockerfile snippets ---------------------------------------------------

def check_sh(where: str, text: str, secrets: Path) -> None:
    r = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
    if r.returncode != 0:
        finding(where, f"bash -n: {r.stderr.strip()}")
    count("shell snippets parsed by bash -n")
    for line in text.split("\n"):
        line = line.split(" #")[0].strip()
        m = re.match(r"^(?:HEALTHCHECK_NO_INSTALL=1 )?bash (\S+)", line)
        if m and not (ROOT / m.group(1)).is_file():
            finding(where, f"`{line}`: {m.group(1)} does not exist")
        for path in re.findall(r"-f (\S+\.Dockerfile|\S+/Dockerfile)", line):
            if not (ROOT / path).is_file():
                finding(where, f"`{line}`: {path} does not exist")
        m = re.match(r"^pip install (\./\S+)$", line)
        if m and not (ROOT / m.group(1) / "pyproject.toml").is_file():
            finding(where, f"`{line}`: no Python project at {m.group(1)}")
        m = re.match(r"^healthcheck(?: wait)?\s+(.*)$", line)
        if m and "TARGET" not in line and "[" not in line:
            check_probe_argv(where, ["/healthcheck", *line.split()[1:]], secrets)
        count("shell command lines checked")


def python_attributes() -> set[str] | None:
    """ReadySignal's attributes, from the package built into target/pyvenv (None without it)."""
    if not VENV_PYTHON.exists():
        return None
    r = subprocess.run([str(VENV_PYTHON), "-c",
                        "import ready_signal, json; print(json.dumps(dir(ready_signal.ReadySignal)))"],
                       capture_output=True, text=True)
    return set(json.loads(r.stdout)) if r.returncode == 0 else None


PY_ATTRS = python_attributes()


def check_python(where: str, text: str) -> None:
    wrapped = "async def __snippet__():\n" + "".join(f"    {l}\n" for l in text.split("\n"))
    try:
        compile(wrapped, where, "exec")
    except SyntaxError as e:
        finding(where, f"Python does not compile: {e}")
    count("Python snippets compiled")
    if PY_ATTRS is None:
        return
    for name in set(re.findall(r"\bsignal\.([a-z_]+)", text)):
        if name not in PY_ATTRS and name not in ("signal", "SIGTERM", "SIGINT"):
            finding(where, f"ReadySignal has no `{name}`")
        count("Python ReadySignal calls checked against the package")


RUST_HANDLE = (ROOT / "ready-signal/src/publisher/handle.rs").read_text()


def check_rust(where: str, text: str) -> None:
    for name in set(re.findall(r"\bsignal\.([a-z_]+)\(", text)):
        if not re.search(rf"pub (async )?fn {name}\b", RUST_HANDLE):
            finding(where, f"ready_signal::Handle has no `{name}`")
        count("Rust Handle calls checked against the crate")


IMAGE_FILES = {"/healthcheck", "/ready-signal", "/healthcheck-sidecar"}


def check_dockerfile(where: str, text: str) -> None:
    for m in re.finditer(r"COPY --from=healthcheck\S* (.+)", text):
        paths = m.group(1).split()[:-1]
        for p in paths:
            if p not in IMAGE_FILES:
                finding(where, f"the healthcheck image has no {p}")
        count("Dockerfile COPY lines checked against the image's files")


# --- links, anchors, paths, words, numbers ----------------------------------------------------

def slug(heading: str) -> str:
    s = heading.strip().lower()
    s = re.sub(r"[`*_]", "", s)
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    out, in_code = set(), False
    for line in path.read_text().split("\n"):
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(r"^#{1,6} ", line):
            out.add(slug(line.lstrip("#")))
    return out


def strip_code(text: str) -> str:
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.sub(r"`[^`]*`", "", text, flags=re.S)


def check_links(path: str) -> None:
    text = (ROOT / path).read_text()
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for m in re.finditer(r"\]\(([^)\s]+)\)", prose):
        link = m.group(1)
        if re.match(r"^[a-z]+://", link) or link.startswith("mailto:"):
            continue
        file, _, anchor = link.partition("#")
        target = (ROOT / path).parent / file if file else ROOT / path
        if not target.exists():
            finding(path, f"link to {link}: {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target} does not exist")
        elif anchor and target.is_file() and anchor not in anchors(target):
            finding(path, f"link to {link}: no heading makes the anchor #{anchor}")
        count("links and anchors resolved")
    # Paths of this repository written in backticks must exist.
    for m in re.finditer(r"`((?:docker|deploy|config|examples|healthcheck|ready-signal|sidecar|tests|bench)/[\w./-]*)`", text):
        p = m.group(1).rstrip(".")
        if "*" in p or "{" in p or p.startswith("bench/results"):  # generated by bench/run.sh
            continue
        if not (ROOT / p).exists() and not ((ROOT / path).parent / p).exists():
            finding(path, f"`{p}` does not exist")
        count("repository paths in backticks resolved")


def check_words(path: str) -> None:
    text = (ROOT / path).read_text()
    if path.endswith(".yml") or path.endswith(".yaml"):
        text = "\n".join(l for l in text.split("\n") if l.lstrip().startswith("#"))
    issue_only = path == "ready-signal/PROTOCOL.md"
    for pattern in INTERNAL[:1] if issue_only else INTERNAL:
        for m in re.finditer(pattern, text, re.I):
            finding(path, f"internal word in user documentation: {m.group(0)!r}")
    if not issue_only:
        prose = strip_code(text) if path.endswith(".md") else text
        for pattern in INTERNAL_PROSE:
            for m in re.finditer(pattern, prose, re.I):
                finding(path, f"internal word in user documentation: {m.group(0)!r}")
    count("documents checked for internal words")


def duration_s(rust: str, name: str) -> float:
    m = re.search(rf"pub const {name}: Duration = Duration::from_(secs|millis)\((\d+)\)", rust)
    if not m:
        raise SystemExit(f"tests/docs.py: {name} not found in ready-signal/src/publisher/mod.rs")
    return int(m.group(2)) / (1000 if m.group(1) == "millis" else 1)


def check_times() -> None:
    """The README's times table follows from the crate's defaults; no document states another
    stale time."""
    rust = (ROOT / "ready-signal/src/publisher/mod.rs").read_text()
    interval = duration_s(rust, "DEFAULT_INTERVAL")
    stall = duration_s(rust, "DEFAULT_STALL_AFTER")
    ttl_n = int(re.search(r"DEFAULT_TTL_INTERVALS: u32 = (\d+)", rust).group(1))
    ttl = interval * ttl_n
    readme = (ROOT / "README.md").read_text()
    g = lambda x: f"{x:g} s"
    expected = [
        f"`interval` {g(interval)}, `stall_after` {g(stall)}",
        f"TTL three intervals, {g(ttl)}" if ttl_n == 3 else f"TTL {ttl_n} intervals",
        f"`stall_after`: **{g(stall)}**",
        f"`stall_after` + 2 × `interval`: **{g(stall + 2 * interval)}**",
        f"`stall_after` + TTL: **{g(stall + ttl)}**",
    ]
    for e in expected:
        if e not in readme:
            finding("README.md", f"the times table does not say {e!r} (from the crate's defaults)")
        count("times derived from the crate's defaults")
    for path in USER_DOCS:
        text = (ROOT / path).read_text()
        for m in re.finditer(r"stale (?:after|within|at most) [^.()]*?\(?(\d+(?:\.\d+)?) ?s\b", text):
            if float(m.group(1)) not in (stall + 2 * interval,):
                # Only statements about the defaults: those saying "here" or "default".
                ctx = text[max(0, m.start() - 80): m.end() + 20]
                if re.search(r"default|here", ctx):
                    finding(path, f"a stale time other than the defaults' {g(stall + 2 * interval)}: {m.group(0)!r}")


def main() -> int:
    secrets = Path(tempfile.mkdtemp(prefix="docs-check-"))
    try:
        for path in LINKED_DOCS:
            check_links(path)
        for path in USER_DOCS + COMPOSE_FILES:
            check_words(path)
        check_times()
        for path in USER_DOCS:
            for lang, line, text in blocks(path):
                where = f"{path}:{line}"
                if lang == "yaml":
                    check_yaml(where, text, ROOT / "examples/compose-v2", secrets)
                elif lang in ("sh", "bash"):
                    check_sh(where, text, secrets)
                elif lang == "python":
                    check_python(where, text)
                elif lang == "rust":
                    check_rust(where, text)
                elif lang == "dockerfile":
                    check_dockerfile(where, text)
                count(f"code blocks ({lang or 'plain'})")
        for path in COMPOSE_FILES:
            text = (ROOT / path).read_text()
            check_yaml(path, text, (ROOT / path).parent, secrets)
    finally:
        shutil.rmtree(secrets, ignore_errors=True)
    for what, n in sorted(checked.items()):
        print(f"  {n:4d}  {what}")
    if COMPOSE is None:
        print("  no Compose here: Compose snippets were parsed as YAML only")
    elif V1:
        print("  Compose v1 here: v2-only keys (start_interval) checked by form, not by Compose")
    if PY_ATTRS is None:
        print("  no built ready_signal package in target/pyvenv: Python calls were not checked against it")
    for f in findings:
        print(f"FAIL {f}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
