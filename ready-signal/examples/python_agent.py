#!/usr/bin/env python3
"""A ready-signal agent in Python, with redis-py alone (PROTOCOL.md, "A Python agent").

Usage: READY_SIGNAL_REDIS_URL=redis://host:6379 python3 python_agent.py AGENT
It publishes starting, then ready, heartbeats from its work loop, and on SIGTERM publishes
stopping and removes its record. `healthcheck ready://AGENT` reads it like a Rust agent.
"""

import os
import random
import signal
import socket
import sys
import time

import redis

# The write script of PROTOCOL.md, verbatim: fenced by instance id, timed by Redis's clock.
WRITE = r'''-- ready-signal write script, protocol version 1 (PROTOCOL.md, "Writing").
-- KEYS: record hash, replicas zset, agents zset.
-- ARGV: op ('put' or 'del'), instance, state, reason, pid, host, interval_ms, ttl_ms,
--       agent, replica, dead_listed_ms.
-- Returns 1 when applied, 0 when a newer instance owns the record (the fence).
local cur = redis.call('HMGET', KEYS[1], 'instance', 'state', 'since_ms', 'seq')
if cur[1] and cur[1] > ARGV[2] then return 0 end
if ARGV[1] == 'del' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[10])
  return 1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[8])
local since = now
local seq = 1
if cur[1] == ARGV[2] then
  seq = (tonumber(cur[4]) or 0) + 1
  if cur[2] == ARGV[3] and cur[3] then since = tonumber(cur[3]) end
end
redis.call('HSET', KEYS[1], 'v', '1', 'agent', ARGV[9], 'replica', ARGV[10], 'instance', ARGV[2],
  'state', ARGV[3], 'reason', ARGV[4], 'pid', ARGV[5], 'host', ARGV[6], 'interval_ms', ARGV[7],
  'ttl_ms', ARGV[8], 'since_ms', string.format('%d', since), 'beat_ms', string.format('%d', now),
  'seq', string.format('%d', seq))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[10])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[11]))
redis.call('PEXPIRE', KEYS[2], 86400000)
redis.call('ZADD', KEYS[3], now + ttl, ARGV[9])
redis.call('PEXPIRE', KEYS[3], 86400000)
return 1
'''

NAMESPACE = os.environ.get("READY_SIGNAL_NAMESPACE") or "default"
AGENT = sys.argv[1] if len(sys.argv) > 1 else "py-agent"
REPLICA = os.environ.get("READY_SIGNAL_REPLICA") or socket.gethostname()
INTERVAL_MS = 1000
TTL_MS = 3 * INTERVAL_MS
# Instance id: start time in Unix ms (13 digits), then 8 random hex digits.
INSTANCE = "%013d-%08x" % (int(time.time() * 1000), random.getrandbits(32))

store = redis.Redis.from_url(os.environ["READY_SIGNAL_REDIS_URL"], socket_timeout=1)
write = store.register_script(WRITE)


def publish(state, reason="", op="put"):
    keys = [
        f"ready-signal:{NAMESPACE}:{AGENT}:r:{REPLICA}",
        f"ready-signal:{NAMESPACE}:{AGENT}:replicas",
        f"ready-signal:{NAMESPACE}:agents",
    ]
    args = [op, INSTANCE, state, reason, os.getpid(), socket.gethostname(),
            INTERVAL_MS, TTL_MS, AGENT, REPLICA, 60000]
    try:
        return write(keys=keys, args=args) == 1
    except redis.RedisError as e:  # a store outage must never stop the work
        print(f"ready-signal: {e}", file=sys.stderr)
        return False


stopping = False


def on_term(signum, frame):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)

publish("starting")
time.sleep(0.2)  # warm up
state = "ready"
publish(state)
last_beat = time.monotonic()
while not stopping:
    time.sleep(0.1)  # one work item
    # The heartbeat is sent from the work loop itself: if the loop hangs, the record expires.
    if time.monotonic() - last_beat >= INTERVAL_MS / 1000:
        publish(state)
        last_beat = time.monotonic()

publish("stopping")
publish("stopping", op="del")
