"""Every published state, read back by the real probe (`healthcheck ready://`) and on NATS."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys

import nats
import pytest

from ready_signal import ReadySignal

FAST = dict(interval=0.1, ttl=1.5, stall_after=5)


async def _events(url: str, subject: str, out: list, ready: asyncio.Event, stop: asyncio.Event) -> None:
    nc = await nats.connect(url)

    async def append(msg) -> None:
        out.append(json.loads(msg.data))

    sub = await nc.subscribe(subject, cb=append)
    await nc.flush()
    ready.set()
    await stop.wait()
    await sub.unsubscribe()
    await nc.drain()


def test_every_state_reaches_the_probe_and_nats(stack, monkeypatch) -> None:
    """starting, ready, not-ready (with its reason), stopping and closed each read as such by
    the probe, and each transition arrives on NATS as PROTOCOL.md's event."""
    for k, v in stack.env().items():
        if k.startswith("READY_SIGNAL_"):
            monkeypatch.setenv(k, v)
    target = "ready://py-states?replica=r1"
    events: list = []

    async def run() -> None:
        ready, stop = asyncio.Event(), asyncio.Event()
        listener = asyncio.create_task(_events(
            stack.nats_url, f"ready-signal.{stack.namespace}.py-states.*", events, ready, stop))
        await asyncio.wait_for(ready.wait(), 10)
        async with ReadySignal("py-states", replica="r1", **FAST) as signal:
            line = await asyncio.to_thread(stack.wait_says, target, "starting")
            assert "py-states: starting" in line
            signal.ready()
            await asyncio.to_thread(stack.wait_healthy, target)
            signal.not_ready("warming cache\nsecond line")
            line = await asyncio.to_thread(stack.wait_says, target, "not-ready")
            # PROTOCOL.md: one-line reasons, control characters escaped at write time.
            assert "(warming cache\\nsecond line)" in line and "\n" not in line
            signal.starting()
            await asyncio.to_thread(stack.wait_says, target, "starting")
            signal.stopping()
            await asyncio.to_thread(stack.wait_says, target, "stopping")
            instance = signal.instance
        line = await asyncio.to_thread(stack.wait_says, target, "dead")
        assert "no record" in line
        await asyncio.sleep(0.2)
        stop.set()
        await listener
        # Transitions in order (a catch-up republish after a NATS reconnect repeats a state).
        states = [e["state"] for i, e in enumerate(events)
                  if i == 0 or events[i - 1]["state"] != e["state"]]
        assert states == ["starting", "ready", "not-ready", "starting", "stopping"], events
        assert {e["instance"] for e in events} == {instance}
        assert events[2]["reason"] == "warming cache\\nsecond line"

    asyncio.run(run())


def test_identity_properties(stack, monkeypatch) -> None:
    """agent, replica and instance come from the crate: the instance follows PROTOCOL.md's form,
    and READY_SIGNAL_REPLICA names the replica when none is passed."""
    monkeypatch.setenv("READY_SIGNAL_DIR", str(stack.tmp))
    monkeypatch.setenv("READY_SIGNAL_REPLICA", "from-env")
    with ReadySignal("py-ident", interval=0.1) as signal:
        assert (signal.agent, signal.replica) == ("py-ident", "from-env")
        head, tail = signal.instance.split("-")
        assert len(head) == 13 and head.isdigit() and len(tail) == 8
        assert int(tail, 16) >= 0 and tail == tail.lower()
        assert not signal.closed and signal.last_error is None
    assert signal.closed


def test_a_nats_seed_list_with_a_dead_first_seed(stack) -> None:
    """The seed-list form of the NATS URL passes through to the crate: with the first seed
    refusing connections, the agent's events arrive through the live seed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    live = stack.nats_url.rsplit(":", 1)[1]
    url = f"nats://127.0.0.1:{dead},127.0.0.1:{live}"
    events: list = []

    async def run() -> None:
        ready, stop = asyncio.Event(), asyncio.Event()
        listener = asyncio.create_task(_events(
            stack.nats_url, f"ready-signal.{stack.namespace}.py-seeds.*", events, ready, stop))
        await asyncio.wait_for(ready.wait(), 10)
        async with ReadySignal("py-seeds", replica="r1", nats_url=url,
                               redis_url=stack.redis_url, namespace=stack.namespace,
                               **FAST) as signal:
            signal.ready()
            for _ in range(200):
                if any(e["state"] == "ready" for e in events):
                    break
                await asyncio.sleep(0.05)
            assert signal.last_error is None, signal.last_error
        stop.set()
        await listener
        assert [e["state"] for e in events][:2] == ["starting", "ready"], events

    asyncio.run(run())


def test_a_publisher_in_a_container_records_its_id(stack, tmp_path) -> None:
    """The package records the container it runs in, as the crate finds it: a process in its own
    mount namespace whose /etc/hostname is bind-mounted from .../containers/<id>/hostname, the
    layout Docker gives every container (a real mount made with unshare, not a Docker container;
    needs root). Outside it, this process records none."""
    cid = "3f4e8a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7"
    engine = tmp_path / "docker" / "containers" / cid
    engine.mkdir(parents=True)
    (engine / "hostname").write_text("3f4e8a1b2c3d\n")
    child = (
        "import sys, time, redis\n"
        "from ready_signal import ReadySignal\n"
        "with ReadySignal('py-box', replica='r1', interval=0.1) as s:\n"
        "    s.ready()\n"
        "    time.sleep(0.5)\n"
        "    key = f'ready-signal:{sys.argv[1]}:py-box:r:r1'\n"
        "    stored = redis.Redis.from_url(sys.argv[2]).hget(key, 'container').decode()\n"
        "    print(s.container, stored)\n"
    )
    out = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f'mount --bind "$0/hostname" /etc/hostname && exec "$1" -c "$2" "$3" "$4"',
         str(engine), sys.executable, child, stack.namespace, stack.redis_url],
        env=stack.env(), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"unshare --mount (needs root) or the agent failed: {out.stderr}"
    assert out.stdout.split() == [cid, cid]
    with ReadySignal("py-host", interval=0.1, dir=str(tmp_path)) as signal:
        assert signal.container is None or len(signal.container) == 64
