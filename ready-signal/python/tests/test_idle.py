"""Idle is not frozen: an agent waiting for input inside ``waiting()`` stays fresh however long
it waits, and one whose loop freezes while it waits is still caught within ``stall_after``.

Agents run tests/agent.py with interval 0.1 s, stall_after 0.3 s and TTL 1.5 s.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from ready_signal import ReadySignal

from test_freeze import STALL_AFTER, _stale_then_dead


def test_idle_inside_waiting_stays_fresh_for_ten_stall_afters(stack) -> None:
    """An agent that gets no work for ten times stall_after, waiting inside waiting(), is judged
    ready by the probe throughout; the same agent waiting without waiting() goes stale."""
    idle = stack.agent("py-idle", "--ticks", "idle")
    bare = stack.agent("py-idle-bare", "--ticks", "idle-bare")
    stack.wait_healthy("ready://py-idle")
    began = time.monotonic()
    while time.monotonic() - began < 10 * STALL_AFTER:
        code, line = stack.probe("ready://py-idle")
        assert code == 0, f"idle agent not ready {time.monotonic() - began:.2f}s into the wait: {line}"
        time.sleep(0.1)
    # The control, idle as long without waiting(): it looks frozen (stale, by now dead).
    code, line = stack.probe("ready://py-idle-bare")
    assert code == 1 and ("stale" in line or "dead" in line), line
    assert idle.alive() and bare.alive()
    # (output() ends the agent: last.) Its publisher stopped refreshing for want of progress.
    assert "no progress from the work loop" in bare.output()


def test_loop_frozen_while_waiting_goes_stale_then_recovers(stack) -> None:
    """A blocking call on the loop while the agent waits inside waiting() stops its ticks: stale
    within the documented time, then dead, while the process lives; ready again once it returns."""
    agent = stack.agent("py-idle-block", "--ticks", "idle")
    target = "ready://py-idle-block"
    stack.wait_healthy(target)
    frozen_at = time.monotonic()
    agent.touch("block")
    _stale_then_dead(stack, target, agent, frozen_at)
    agent.remove("block")
    stack.wait_healthy(target)


def test_waiting_is_async_only(tmp_path) -> None:
    """`with signal.waiting()` in synchronous code is a TypeError that says what to do instead."""
    with ReadySignal("py-idle-sync", dir=tmp_path) as signal:
        with pytest.raises(TypeError, match="async with"):
            with signal.waiting():
                pass


def test_waiting_returns_what_the_block_awaited(tmp_path) -> None:
    """The scope is transparent: the awaited value comes through, exceptions propagate, and the
    loop's callback is cancelled when the block ends."""

    async def main() -> None:
        async with ReadySignal("py-idle-value", dir=tmp_path, stall_after=0.4) as signal:
            queue: "asyncio.Queue[int]" = asyncio.Queue()
            asyncio.get_running_loop().call_later(0.05, queue.put_nowait, 7)
            async with signal.waiting() as scope:
                got = await queue.get()
            assert got == 7
            assert scope._timer is None
            with pytest.raises(KeyError):
                async with signal.waiting():
                    raise KeyError("boom")

    asyncio.run(main())
