"""asyncio, SIGTERM, interpreter exit and fork: how a Python process's life maps to the record."""

from __future__ import annotations

import asyncio
import json
import signal as sig
import socket
import subprocess
import sys
import textwrap
import time

import redis

from ready_signal import ReadySignal


def test_async_close_does_not_block_the_loop(stack, tmp_path) -> None:
    """`await signal.close()` against a store that never answers takes its timeouts on another
    thread: a task on the loop keeps running meanwhile. (The peer is a fake: a listening socket
    that accepts and never replies, a fault a real Redis does not produce on demand.)"""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    url = f"redis://127.0.0.1:{silent.getsockname()[1]}"

    async def run() -> tuple:
        turns = 0

        async def spin() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0.01)

        spinner = asyncio.create_task(spin())
        async with ReadySignal("py-aclose", redis_url=url, dir=tmp_path, replica="r",
                               interval=0.5) as signal:
            signal.ready()
            async with signal.busy(5):
                await asyncio.sleep(0.05)
            began, before = time.monotonic(), turns
        took, during = time.monotonic() - began, turns - before
        spinner.cancel()
        return took, during

    try:
        took, during = asyncio.run(run())
    finally:
        silent.close()
    assert took >= 0.4, f"close took {took:.2f}s: it did not wait for the store"
    assert during >= took / 0.01 / 4, f"the loop turned {during} times in {took:.2f}s of close"


def test_sigterm_publishes_stopping_and_lets_the_agent_finish(stack) -> None:
    """SIGTERM with handle_sigterm(): the probe reads `stopping` while the agent finishes its
    item; then the agent leaves `async with`, exits 0 and the record is gone."""
    agent = stack.agent("py-term", "--finish", "1.5")
    target = "ready://py-term"
    stack.wait_healthy(target)
    agent.proc.send_signal(sig.SIGTERM)
    stack.wait_says(target, "stopping", timeout=5)
    assert agent.alive()
    assert agent.proc.wait(timeout=10) == 0
    assert "dead" in stack.probe(target)[1]
    out = agent.output()
    assert "finishing" in out and "closed" in out, out


def _script(stack, code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=stack.env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_interpreter_exit_removes_the_record(stack) -> None:
    """An agent that never closes its signal: at interpreter exit the record is removed at once,
    not left to expire (TTL 30 s here)."""
    proc = _script(stack, """
        import sys
        from ready_signal import ReadySignal
        signal = ReadySignal("py-exit", interval=1, ttl=30)
        signal.ready()
        print("started", flush=True)
        sys.stdin.readline()
    """)
    assert proc.stdout and proc.stdout.readline().startswith("started")
    stack.wait_healthy("ready://py-exit")
    proc.communicate("\n", timeout=10)
    assert proc.returncode == 0
    code, line = stack.probe("ready://py-exit")
    assert code == 1 and "no record" in line, line


def test_fork_child_gets_no_publisher(stack, tmp_path) -> None:
    """A forked child's inherited signal is closed: states raise PublisherError, tick() does
    nothing, its exit removes nothing; it can start its own signal under another replica."""
    gate = tmp_path / "child-exit"
    proc = _script(stack, f"""
        import json, os, sys, time
        from ready_signal import ReadySignal, PublisherError
        parent = ReadySignal("py-fork", replica="parent", interval=0.1, ttl=1.5, stall_after=60)
        parent.ready()
        pid = os.fork()
        if pid == 0:
            seen = {{"closed": parent.closed}}
            try:
                parent.ready()
            except PublisherError as e:
                seen["raised"] = str(e)
            parent.tick()
            with ReadySignal("py-fork", replica="child", interval=0.1, ttl=1.5) as child:
                child.ready()
                print("child", json.dumps(seen), flush=True)
                while not os.path.exists({str(gate)!r}):
                    time.sleep(0.02)
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        print("child exited", status, flush=True)
        sys.stdin.readline()
    """)
    assert proc.stdout
    line = proc.stdout.readline()
    assert line.startswith("child "), line
    seen = json.loads(line.split(" ", 1)[1])
    assert seen["closed"] is True
    assert "inherited through fork" in seen["raised"]
    stack.wait_healthy("ready://py-fork?replica=child")
    stack.wait_healthy("ready://py-fork?replica=parent")
    gate.touch()
    assert proc.stdout.readline().strip() == "child exited 0"
    assert "no record" in stack.probe("ready://py-fork?replica=child")[1]
    code, line = stack.probe("ready://py-fork?replica=parent")
    assert code == 0, f"the child's exit touched the parent's record: {line}"
    proc.communicate("\n", timeout=10)
    assert "no record" in stack.probe("ready://py-fork?replica=parent")[1]
