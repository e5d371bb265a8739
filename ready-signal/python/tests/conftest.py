"""Real servers and the project's binaries for the Python package's tests.

redis-server and nats-server are found like the Rust harness (tests/src/lib.rs) finds them:
``REDIS_SERVER_BIN`` / ``NATS_SERVER_BIN``, else PATH, /usr/sbin, /usr/bin. The probe and the CLI
are the workspace's debug builds (``cargo build -p healthcheck -p ready-signal-cli``), or
``HEALTHCHECK_BIN`` / ``READY_SIGNAL_BIN``. Each server gets a free loopback port, a temp dir
and a log that a failure shows.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
AGENT = HERE / "agent.py"


def find_binary(name: str, env: str, package: str) -> str:
    """The server binary: ``$env``, else ``name`` on PATH, /usr/sbin or /usr/bin."""
    if os.environ.get(env):
        return os.environ[env]
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/usr/bin"
    found = shutil.which(name, path=path)
    if not found:
        pytest.fail(f"{name} not found on PATH: install the Debian package `{package}` "
                    f"(apt-get install -y {package}) or set {env}", pytrace=False)
    return found


def workspace_binary(name: str, env: str, package: str) -> str:
    if os.environ.get(env):
        return os.environ[env]
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    path = target / "debug" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: build it with `cargo build -p {package}` or set {env}",
                    pytrace=False)
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process on a free loopback port, killed at the end of the session."""

    def __init__(self, argv: List[str], port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.proc = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{argv[0]} did not accept on port {port}:\n"
                                       f"{log.read_text(errors='replace')}")
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = find_binary("redis-server", "REDIS_SERVER_BIN", "redis-server")
    port = free_port()
    d = tmp_path_factory.mktemp("redis")
    server = Server([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", str(d)], port, d / "redis.log")
    yield f"redis://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = find_binary("nats-server", "NATS_SERVER_BIN", "nats-server")
    port = free_port()
    d = tmp_path_factory.mktemp("nats")
    server = Server([binary, "-a", "127.0.0.1", "-p", str(port)], port, d / "nats.log")
    yield f"nats://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def healthcheck() -> str:
    return workspace_binary("healthcheck", "HEALTHCHECK_BIN", "healthcheck")


@pytest.fixture(scope="session")
def cli() -> str:
    return workspace_binary("ready-signal", "READY_SIGNAL_BIN", "ready-signal-cli")


class Stack:
    """One test's namespace on the shared servers, the probe, and agents run as processes."""

    def __init__(self, redis_url: str, nats_url: str, healthcheck: str, tmp: Path) -> None:
        self.redis_url = redis_url
        self.nats_url = nats_url
        self.healthcheck = healthcheck
        self.tmp = tmp
        self.namespace = "t" + uuid.uuid4().hex[:12]
        self.procs: List[subprocess.Popen] = []

    def env(self, **extra: str) -> Dict[str, str]:
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("READY_SIGNAL_"):
                del env[k]
        env.update(READY_SIGNAL_REDIS_URL=self.redis_url, READY_SIGNAL_NATS_URL=self.nats_url,
                   READY_SIGNAL_NAMESPACE=self.namespace, PYTHONUNBUFFERED="1")
        env.update(extra)
        return env

    def probe(self, target: str) -> Tuple[int, str]:
        """Runs the real probe; its exit code and its line."""
        out = subprocess.run([self.healthcheck, "--timeout", "2s", target], env=self.env(),
                             capture_output=True, text=True, timeout=10)
        return out.returncode, (out.stdout + out.stderr).strip()

    def wait_probe(self, target: str, predicate: Callable[[int, str], bool],
                   timeout: float = 15.0, what: str = "") -> Tuple[int, str]:
        deadline = time.monotonic() + timeout
        code, line = self.probe(target)
        while not predicate(code, line):
            if time.monotonic() > deadline:
                raise AssertionError(f"{target}: not {what or 'as expected'} within {timeout}s; "
                                     f"last: exit {code}: {line}")
            time.sleep(0.05)
            code, line = self.probe(target)
        return code, line

    def wait_healthy(self, target: str, timeout: float = 15.0) -> str:
        return self.wait_probe(target, lambda c, _: c == 0, timeout, "healthy")[1]

    def wait_says(self, target: str, word: str, timeout: float = 15.0) -> str:
        return self.wait_probe(target, lambda c, l: c == 1 and word in l, timeout, word)[1]

    def agent(self, name: str, *args: str, control: Optional[Path] = None,
              env: Optional[Dict[str, str]] = None) -> "Agent":
        control = control or (self.tmp / f"control-{name}")
        control.mkdir(exist_ok=True)
        proc = subprocess.Popen([sys.executable, str(AGENT), name, "--control", str(control), *args],
                                env=self.env(**(env or {})), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        self.procs.append(proc)
        return Agent(proc, control)

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


class Agent:
    """tests/agent.py running in its own process, steered by files in its control directory."""

    def __init__(self, proc: subprocess.Popen, control: Path) -> None:
        self.proc = proc
        self.control = control
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("started "):
            proc.kill()
            rest = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"agent did not start: {line}{rest}")
        self.instance = line.split()[1]

    def touch(self, name: str) -> None:
        (self.control / name).touch()

    def remove(self, name: str) -> None:
        (self.control / name).unlink()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.stdout.read() if self.proc.stdout else ""


@pytest.fixture
def stack(redis_url: str, nats_url: str, healthcheck: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(redis_url, nats_url, healthcheck, tmp_path)
    yield s
    s.close()
