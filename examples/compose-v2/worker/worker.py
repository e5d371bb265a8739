"""The example stack's worker: an asyncio loop that takes jobs from a Redis list.

Readiness and liveness, as the README's "Add it to your stack" explains them:
- `ready()` once connected, `not_ready(reason)` while Redis cannot be reached: readiness, read
  from Redis by `healthcheck wait` (the api) and the sidecar;
- the loop's progress keeps the record fresh: `tick()` after every job, and `waiting()` around
  the wait for the next one, so a worker with nothing to do stays fresh while its loop turns,
  and one whose loop freezes goes stale within `stall_after` whatever it was doing: liveness,
  read from the record file by the container's own healthcheck.
"""

from __future__ import annotations

import asyncio
import json
import os

import redis.asyncio as redis
from ready_signal import ReadySignal


async def handle(job: dict) -> None:
    await asyncio.sleep(0.1)  # the real work


async def main() -> None:
    queue = redis.Redis.from_url(os.environ.get("JOBS_REDIS_URL", "redis://redis:6379"))
    async with ReadySignal("worker", stall_after=10) as signal:
        signal.handle_sigterm()                       # docker stop: `stopping`, then finish
        while not signal.stop_requested:
            try:
                async with signal.waiting():          # idle is not frozen
                    item = await queue.blpop(["jobs"], timeout=1)
            except redis.ConnectionError as e:
                signal.not_ready(f"jobs queue: {e}")  # readiness says why; liveness unaffected
                await asyncio.sleep(1)
                continue
            signal.ready()
            if item is not None:
                await handle(json.loads(item[1]))
            signal.tick()                             # progress, from the work itself
        await queue.aclose()


if __name__ == "__main__":
    asyncio.run(main())
