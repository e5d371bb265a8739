"""Agents frozen the ways the field saw, each judged by the real probe while the process lives.

Agents run tests/agent.py with interval 0.1 s, stall_after 0.3 s and TTL 1.5 s: stale is
expected about 0.5 s after the last tick (stall_after + 2 intervals), dead after the TTL.
"""

from __future__ import annotations

import time

import redis


# The documented times (README, "Python agents"): stale at most stall_after + 2 intervals after
# the last tick, dead at most stall_after + TTL after it. SLACK covers the probe's own runs and
# polling on a loaded machine; the lower bound shows the record is not dropped before stall_after.
STALL_AFTER, INTERVAL, TTL, SLACK = 0.3, 0.1, 1.5, 1.5


def _stale_then_dead(stack, target: str, agent, frozen_at: float) -> None:
    """Waits for stale, then dead, within the documented times, while the agent lives."""
    stack.wait_says(target, "stale", timeout=10)
    stale = time.monotonic() - frozen_at
    assert agent.alive(), agent.output()
    stack.wait_says(target, "dead", timeout=10)
    dead = time.monotonic() - frozen_at
    assert agent.alive(), agent.output()
    assert STALL_AFTER - 0.05 <= stale <= STALL_AFTER + 2 * INTERVAL + SLACK, f"stale after {stale:.2f}s"
    assert dead <= STALL_AFTER + TTL + SLACK, f"dead after {dead:.2f}s"


def test_blocked_event_loop_goes_stale_then_dead_then_recovers(stack) -> None:
    """A blocking call on the asyncio loop stops the ticks: stale, then dead, while the process
    lives; when the call returns, the record is ready again."""
    agent = stack.agent("py-block")
    target = "ready://py-block"
    stack.wait_healthy(target)
    frozen_at = time.monotonic()
    agent.touch("block")
    _stale_then_dead(stack, target, agent, frozen_at)
    agent.remove("block")
    stack.wait_healthy(target)


def test_watch_loop_alone_catches_a_blocked_loop(stack) -> None:
    """watch_loop() proves the loop turns: blocking the loop stops its ticks too."""
    agent = stack.agent("py-block-watch", "--ticks", "watch")
    target = "ready://py-block-watch"
    stack.wait_healthy(target)
    frozen_at = time.monotonic()
    agent.touch("block")
    _stale_then_dead(stack, target, agent, frozen_at)
    agent.remove("block")
    stack.wait_healthy(target)


def test_deadlocked_tasks_go_stale_but_watch_loop_alone_stays_fresh(stack) -> None:
    """Two tasks deadlocked: an agent ticking from its work goes stale then dead; an agent
    whose only ticks come from watch_loop() stays ready, because its loop keeps turning (the
    documented limit of watch_loop)."""
    work = stack.agent("py-deadlock-work")
    watch = stack.agent("py-deadlock-watch", "--ticks", "watch")
    stack.wait_healthy("ready://py-deadlock-work")
    stack.wait_healthy("ready://py-deadlock-watch")
    work.touch("deadlock")
    watch.touch("deadlock")
    began = time.monotonic()
    _stale_then_dead(stack, "ready://py-deadlock-work", work, began)
    # Well past the point the work agent was judged dead: the watched one is still ready.
    while time.monotonic() - began < 2.5:
        code, line = stack.probe("ready://py-deadlock-watch")
        assert code == 0, f"watch_loop agent not ready during the deadlock: {line}"
        time.sleep(0.1)
    assert work.alive() and watch.alive()


def test_c_call_holding_the_gil_goes_stale_while_the_process_lives(stack) -> None:
    """A C call that keeps the GIL (libc sleep(3) through ctypes.PyDLL) stops the ticks: the
    record goes stale then dead within the documented times while the process lives, and is
    ready again when the call returns."""
    agent = stack.agent("py-ccall")
    target = "ready://py-ccall"
    stack.wait_healthy(target)
    frozen_at = time.monotonic()
    agent.touch("ccall")
    _stale_then_dead(stack, target, agent, frozen_at)
    stack.wait_healthy(target, timeout=10)


def test_publisher_refreshes_while_the_gil_is_held(stack) -> None:
    """With a busy() budget declared, the record keeps being refreshed while the agent's thread
    holds the GIL in C for three seconds: the publisher (the crate's thread) never needs the GIL."""
    agent = stack.agent("py-gil")
    target = "ready://py-gil"
    stack.wait_healthy(target)
    r = redis.Redis.from_url(stack.redis_url)
    key = f"ready-signal:{stack.namespace}:py-gil:r:{_replica(r, stack, 'py-gil')}"
    agent.touch("ccall-busy")
    # The call starts within an iteration (20 ms); sample seq through part of its 3 s.
    time.sleep(0.3)
    seq0 = int(r.hget(key, "seq"))
    for _ in range(10):
        code, line = stack.probe(target)
        assert code == 0, f"not ready while the GIL was held under a busy budget: {line}"
        time.sleep(0.1)
    seq1 = int(r.hget(key, "seq"))
    assert seq1 >= seq0 + 5, f"seq {seq0} -> {seq1}: the publisher did not write without the GIL"
    assert agent.alive()


def _replica(r: redis.Redis, stack, agent: str) -> str:
    members = r.zrange(f"ready-signal:{stack.namespace}:{agent}:replicas", 0, -1)
    assert len(members) == 1, members
    return members[0].decode()
