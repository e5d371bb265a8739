#!/usr/bin/env python3
"""The field's approach to a health probe: redis-py PING, nats-py connect + flush, urllib GET.

Usage: python_probe.py REDIS_URL NATS_URL HTTP_URL   (exits 0 only if all three are healthy)
Used by bench/run.sh as the comparison point for `healthcheck REDIS NATS HTTP`.
"""

import asyncio
import sys
import urllib.request

import nats
import redis


async def check_nats(url: str) -> None:
    nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0)
    try:
        await nc.flush(timeout=2)
    finally:
        await nc.close()


def main() -> int:
    redis_url, nats_url, http_url = sys.argv[1:4]
    r = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    if not r.ping():
        return 1
    asyncio.run(check_nats(nats_url))
    with urllib.request.urlopen(http_url, timeout=2) as resp:
        if not 200 <= resp.status < 300:
            return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - a probe reports any failure as unhealthy
        print(f"unhealthy: {e}", file=sys.stderr)
        sys.exit(1)
