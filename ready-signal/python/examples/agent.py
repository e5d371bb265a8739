#!/usr/bin/env python3
"""An asyncio agent using the ready_signal package, and a way to freeze its loop.

The example stack's `agent-py` service (docker/compose.yml) runs it. `AGENT_NAME` names it
(default `py-example`), `WORK_MS` sets one work item's duration (default 200), `HEARTBEAT_MS`
and `STALL_AFTER_MS` the publisher's interval and stall_after; the stores come from the
`READY_SIGNAL_*` variables.

- SIGUSR1 freezes the event loop: a blocking call on the loop's thread, as the field's
  deadlocked asyncio worker did. Every task stops (the loop watchdog too); the process, its
  signal handling and the publisher (the crate's own thread) stay alive. No more ticks: the
  record goes stale, then dead, and the container's probe turns unhealthy.
- SIGUSR2 thaws it.
- SIGTERM: publish `stopping`, finish the current item, remove the record, exit 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

from ready_signal import ReadySignal

frozen = False


def freeze(*_: object) -> None:
    global frozen
    frozen = True


def thaw(*_: object) -> None:
    global frozen
    frozen = False


def blocking_freeze() -> None:
    # Runs on the loop's thread and blocks it. Python runs the SIGUSR2 handler between two
    # sleeps (signal.signal handlers run on the main thread whatever the loop is doing).
    print("agent: event loop frozen (SIGUSR2 thaws it)", file=sys.stderr, flush=True)
    while frozen:
        time.sleep(0.05)
    print("agent: event loop thawed", file=sys.stderr, flush=True)


def ms(name: str) -> "float | None":
    value = os.environ.get(name)
    return int(value) / 1000 if value else None


async def main() -> None:
    name = os.environ.get("AGENT_NAME") or "py-example"
    work = ms("WORK_MS") or 0.2
    # Plain handlers, not loop.add_signal_handler: they must run while the loop is blocked.
    signal.signal(signal.SIGUSR1, freeze)
    signal.signal(signal.SIGUSR2, thaw)
    async with ReadySignal(name, interval=ms("HEARTBEAT_MS"),
                           stall_after=ms("STALL_AFTER_MS")) as ready:
        ready.handle_sigterm()  # SIGTERM: `stopping`, then leave the loop below
        print(f"agent {name}: instance {ready.instance} starting", file=sys.stderr, flush=True)
        await asyncio.sleep(work)  # "starting": warm up
        ready.ready()
        print(f"agent {name}: ready", file=sys.stderr, flush=True)
        while not ready.stop_requested:
            await asyncio.sleep(work)  # one work item
            if frozen:
                blocking_freeze()
            ready.tick()  # progress, from the work itself
        print(f"agent {name}: stopping", file=sys.stderr, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
