"""An asyncio agent for the tests, frozen on demand in the ways the field saw.

    python agent.py NAME --control DIR [--ticks work|watch] [--interval S] [--ttl S]
                    [--stall-after S] [--finish S]

Files created in DIR steer it (checked on every iteration of the work loop):
- ``block``: the loop thread blocks in ``time.sleep`` while the file exists (a blocking call on
  the loop: every task stops, the watchdog included);
- ``deadlock``: the work awaits two tasks that deadlock on two locks (the loop keeps turning);
- ``ccall``: the loop thread calls libc ``sleep(3)`` through ``ctypes.PyDLL``, which keeps the
  GIL for the whole call (a C call that never returns, for three seconds); ``ccall-busy`` first
  declares ``busy(10)``.
Ticks come from the work loop (``--ticks work``) or only from ``watch_loop()`` (``watch``).
``--ticks idle`` never gets work: it waits for input (``wait_for_stop()``) inside
``waiting()``; ``idle-bare`` waits the same way without ``waiting()``. In both, a task on the
loop obeys ``block``.
SIGTERM: ``handle_sigterm()``; the current item then takes ``--finish`` seconds before exit.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import sys
import time

from ready_signal import ReadySignal


async def deadlock() -> None:
    a, b = asyncio.Lock(), asyncio.Lock()

    async def one() -> None:
        async with a:
            await asyncio.sleep(0.05)
            async with b:
                pass

    async def two() -> None:
        async with b:
            await asyncio.sleep(0.05)
            async with a:
                pass

    await asyncio.gather(one(), two())


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("name")
    p.add_argument("--control", required=True)
    p.add_argument("--ticks", choices=["work", "watch", "idle", "idle-bare"], default="work")
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--ttl", type=float, default=1.5)
    p.add_argument("--stall-after", type=float, default=0.3)
    p.add_argument("--finish", type=float, default=0.0)
    args = p.parse_args()
    control = args.control

    def has(name: str) -> bool:
        return os.path.exists(os.path.join(control, name))

    async with ReadySignal(args.name, interval=args.interval, ttl=args.ttl,
                           stall_after=args.stall_after) as signal:
        signal.handle_sigterm()
        if args.ticks == "watch":
            signal.watch_loop(period=args.interval / 2)
        print("started", signal.instance, flush=True)
        signal.ready()
        if args.ticks in ("idle", "idle-bare"):
            async def freezer() -> None:
                while True:
                    while has("block"):
                        time.sleep(0.05)  # blocking on the loop thread, while idle
                    await asyncio.sleep(0.02)

            frozen = asyncio.get_running_loop().create_task(freezer())
            if args.ticks == "idle":
                async with signal.waiting():
                    await signal.wait_for_stop()  # input that never comes
            else:
                await signal.wait_for_stop()
            frozen.cancel()
        while not signal.stop_requested:
            await asyncio.sleep(0.02)  # one work item
            while has("block"):
                time.sleep(0.05)  # blocking on the loop thread
            if has("deadlock"):
                await deadlock()
            if has("ccall") or has("ccall-busy"):
                if has("ccall-busy"):
                    signal.busy(10)
                os.unlink(os.path.join(control, "ccall" if has("ccall") else "ccall-busy"))
                ctypes.PyDLL(None).sleep(3)  # holds the GIL for three seconds
                print("ccall returned", flush=True)
            if args.ticks == "work":
                signal.tick()
        # SIGTERM arrived: `stopping` is published; finish the item, then leave (removes it).
        print("finishing", flush=True)
        await asyncio.sleep(args.finish)
    print("closed", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
