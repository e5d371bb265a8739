"""The package next to the protocol's other writers: the ready-signal CLI and PROTOCOL.md's
redis-py agent. One record format, one fence."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import redis

from conftest import ROOT
from ready_signal import ReadySignal


def test_cli_and_package_replicas_read_together(stack, cli, monkeypatch) -> None:
    """A replica published by the package and one by the CLI make `min=2`; the CLI's older
    instance cannot remove the package's newer record (fenced)."""
    for k, v in stack.env().items():
        if k.startswith("READY_SIGNAL_"):
            monkeypatch.setenv(k, v)
    with ReadySignal("py-cli", replica="py", interval=0.1, ttl=1.5, stall_after=60) as signal:
        signal.ready()
        stack.wait_healthy("ready://py-cli?replica=py")
        out = subprocess.run([cli, "--replica", "cli", "ready", "py-cli"], env=stack.env(),
                             capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stderr
        stack.wait_healthy("ready://py-cli?min=2")
        # Same instance rule, other writer: an explicit older instance id is refused.
        older = "0000000000001-00000000"
        out = subprocess.run([cli, "--replica", "py", "stopping", "py-cli"],
                             env=stack.env(READY_SIGNAL_INSTANCE=older),
                             capture_output=True, text=True, timeout=10)
        assert out.returncode != 0 and "newer instance" in out.stderr, out
        code, line = stack.probe("ready://py-cli?replica=py")
        assert code == 0, line


def _protocol_example() -> str:
    text = (ROOT / "ready-signal" / "PROTOCOL.md").read_text()
    section = text.split("## A Python agent", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_protocol_example_and_package_share_one_fence(stack, tmp_path) -> None:
    """PROTOCOL.md's redis-py agent publishes a replica; the package started later on the same
    replica owns the record and the example's heartbeats no longer overwrite it."""
    script = tmp_path / "python_agent.py"
    script.write_text(_protocol_example())
    example = subprocess.Popen([sys.executable, str(script), "py-proto"],
                               env=stack.env(READY_SIGNAL_REPLICA="shared"),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stack.procs.append(example)
    target = "ready://py-proto?replica=shared"
    stack.wait_healthy(target)
    r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    key = f"ready-signal:{stack.namespace}:py-proto:r:shared"
    theirs = r.hget(key, "instance")
    with ReadySignal("py-proto", replica="shared", redis_url=stack.redis_url,
                     namespace=stack.namespace, interval=0.1, ttl=1.5, stall_after=60) as signal:
        assert signal.instance > theirs
        signal.ready()
        # The publisher's first write is asynchronous: wait until the record is ours.
        deadline = time.monotonic() + 5
        while r.hget(key, "instance") != signal.instance:
            assert time.monotonic() < deadline, "the package never took over the record"
            time.sleep(0.02)
        stack.wait_healthy(target)
        # The example heartbeats every second: give it two chances to overwrite.
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            assert r.hget(key, "instance") == signal.instance
            time.sleep(0.1)
        assert example.poll() is None, example.communicate()[0]
