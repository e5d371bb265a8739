"""Every published state, read back by the real probe (`healthcheck ready://`) and on NATS."""

from __future__ import annotations

import asyncio
import json

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
            signal.not_ready("warming cache\nsecond line is dropped")
            line = await asyncio.to_thread(stack.wait_says, target, "not-ready")
            assert "(warming cache)" in line and "second line" not in line
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
        assert events[2]["reason"] == "warming cache"

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
