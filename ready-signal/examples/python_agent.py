#!/usr/bin/env python3
"""A ready-signal agent in Python, with redis-py alone (PROTOCOL.md, "A Python agent").

Usage: READY_SIGNAL_REDIS_URL=redis://host:6379 python3 python_agent.py AGENT
It publishes starting, then ready, heartbeats from its work loop, and on SIGTERM publishes
stopping and removes its record. `healthcheck ready://AGENT` reads it like a Rust agent.
It honours READY_SIGNAL_REDIS_PASSWORD_FILE, READY_SIGNAL_NAMESPACE, READY_SIGNAL_REPLICA and
READY_SIGNAL_INSTANCE, and stops writing while a newer instance holds its record.
"""

import os
import random
import re
import signal
import socket
import sys
import time
import unicodedata

import redis

# The write script of PROTOCOL.md, verbatim: fenced by epoch, timed by Redis's clock.
WRITE = r'''-- ready-signal write script, protocol version 1, revision 5 (PROTOCOL.md, "Writing").
-- KEYS: record hash, replicas zset, agents zset, epoch counter, due index (zset).
-- ARGV: op ('put', 'retake' or 'del'), instance, epoch (0 when the writer has none yet),
--       state, reason, pid, host, interval_ms, ttl_ms, agent, replica,
--       container (64 lowercase hex digits, or empty).
-- Returns the writer's epoch when applied, 0 when a newer instance owns the record (fenced).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op, epoch = ARGV[1], tonumber(ARGV[3]) or 0
local cur = redis.call('HMGET', KEYS[1], 'instance', 'epoch', 'state', 'since_ms', 'seq', 'pid',
  'host', 'container', 'started_ms', 'started_epoch')
local held = tonumber(cur[2]) or 0
local mine = cur[1] == ARGV[2]
if cur[1] and not mine then
  if op ~= 'put' or epoch > 0 and held > epoch then return 0 end
end
if mine and held > epoch then epoch = held end
if op == 'del' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[11])
  if KEYS[5] then redis.call('ZREM', KEYS[5], ARGV[10] .. ':' .. ARGV[11]) end
else
  if epoch == 0 or not mine then
    -- A new epoch is above every one handed out; a known one never leaves the counter behind.
    local last = tonumber(redis.call('GET', KEYS[4])) or 0
    if epoch == 0 then epoch = math.max(last + 1, now) end
    if epoch > last then redis.call('SET', KEYS[4], string.format('%d', epoch)) end
  end
  local ttl = tonumber(ARGV[9])
  local since, seq, pid, host = now, 1, ARGV[6], ARGV[7]
  -- Taking the record: the instance starts now, by this clock, under this epoch.
  local container, started, sepoch = ARGV[12] or '', now, epoch
  if mine then
    -- One instance, one process tree: pid, host, container and start stay its first writer's.
    seq = (tonumber(cur[5]) or 0) + 1
    pid, host = cur[6] or pid, cur[7] or host
    if cur[3] == ARGV[4] and cur[4] then since = tonumber(cur[4]) end
    container, started, sepoch = cur[8] or '', tonumber(cur[9]) or 0, tonumber(cur[10]) or 0
  end
  redis.call('HSET', KEYS[1], 'v', '1', 'agent', ARGV[10], 'replica', ARGV[11],
    'instance', ARGV[2], 'epoch', string.format('%d', epoch), 'state', ARGV[4],
    'reason', ARGV[5], 'pid', pid, 'host', host, 'interval_ms', ARGV[8],
    'ttl_ms', ARGV[9], 'since_ms', string.format('%d', since),
    'beat_ms', string.format('%d', now), 'seq', string.format('%d', seq),
    'container', container, 'started_ms', string.format('%d', started),
    'started_epoch', string.format('%d', sepoch))
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[11])
  if KEYS[5] then
    -- The due index: when this replica turns stale unless it beats again (2 intervals).
    local due = now + 2 * tonumber(ARGV[8])
    redis.call('ZADD', KEYS[5], due, ARGV[10] .. ':' .. ARGV[11])
    -- It lives at least as long as this entry's deadline plus the 60 s horizon.
    if redis.call('PTTL', KEYS[5]) < due - now + 60000 then
      redis.call('PEXPIRE', KEYS[5], due - now + 60000)
    end
  end
end
-- Entries past their deadline by more than the 60 s horizon leave the due index.
if KEYS[5] then redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - 60000) end
-- The indexes clean themselves: expired members leave, each set lives as long as its last one.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if top[2] then
  redis.call('PEXPIRE', KEYS[2], tonumber(top[2]) - now)
  redis.call('ZADD', KEYS[3], top[2], ARGV[10])
else
  redis.call('ZREM', KEYS[3], ARGV[10])
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
top = redis.call('ZREVRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if top[2] then redis.call('PEXPIRE', KEYS[3], tonumber(top[2]) - now) end
return epoch
'''


def env(name, default=None):
    """An environment variable; empty counts as unset."""
    return os.environ.get(name) or default


NAMESPACE = env("READY_SIGNAL_NAMESPACE", "default")
AGENT = sys.argv[1] if len(sys.argv) > 1 else "py-agent"
REPLICA = env("READY_SIGNAL_REPLICA", socket.gethostname())
INTERVAL_MS = 1000
TTL_MS = 3 * INTERVAL_MS
# Instance id: names this process (13 digits of start time in Unix ms, 8 lowercase hex digits).
# It orders nothing; Redis hands out the epoch that does.
INSTANCE = env("READY_SIGNAL_INSTANCE") or "%013d-%08x" % (
    int(time.time() * 1000) % 10**13, random.getrandbits(32))

pool = redis.ConnectionPool.from_url(env("READY_SIGNAL_REDIS_URL"), socket_timeout=1)
password_file = env("READY_SIGNAL_REDIS_PASSWORD_FILE")
if password_file:  # the file's content, without trailing CR/LF, replaces the URL's password
    try:
        with open(password_file, encoding="utf-8") as f:
            password = f.read().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as e:  # never a silent fallback to no password
        sys.exit(f"READY_SIGNAL_REDIS_PASSWORD_FILE: {password_file}: {e}")
    if not password:
        sys.exit(f"READY_SIGNAL_REDIS_PASSWORD_FILE: {password_file}: the file is empty")
    pool.connection_kwargs["password"] = password
store = redis.Redis(connection_pool=pool)
write = store.register_script(WRITE)

epoch = 0        # handed out by the script at this instance's first write
fenced = False   # a newer instance holds the record: only retake until it is gone


def container_id():
    """The container this process runs in (PROTOCOL.md, "The container and the
    instance's start"), or "" outside one."""
    full_id = re.compile(r"[0-9a-f]{64}")
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for fields in (line.split() for line in f):
                if fields[4] in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf"):
                    parts = fields[3].split("/")
                    for parent, part in zip(parts, parts[1:]):
                        if parent.endswith("containers") and full_id.fullmatch(part):
                            return part
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            for part in f.read().replace("\n", "/").split("/"):
                part = re.sub(r"^(docker|libpod|cri-containerd|crio)-|\.scope$", "", part)
                if full_id.fullmatch(part):
                    return part
    except OSError:
        pass
    return ""


CONTAINER = container_id()
ESCAPES = {"\0": "\\0", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def one_line(text):
    """A reason as stored (PROTOCOL.md, "States"): control characters escaped (a newline reads
    \\n), then cut to 200 bytes between whole characters and escapes."""
    out, size = [], 0
    for c in text:
        unit = ESCAPES.get(c, "\\u{%x}" % ord(c)) if unicodedata.category(c) == "Cc" else c
        size += len(unit.encode(errors="backslashreplace"))
        if size > 200:
            break
        out.append(unit)
    return "".join(out)


def publish(state, reason="", op="put"):
    global epoch, fenced
    if fenced and op == "put":
        op = "retake"
    keys = [
        f"ready-signal:{NAMESPACE}:{AGENT}:r:{REPLICA}",
        f"ready-signal:{NAMESPACE}:{AGENT}:replicas",
        f"ready-signal:{NAMESPACE}:agents",
        f"ready-signal:{NAMESPACE}:epoch",
        f"ready-signal:{NAMESPACE}:due",
    ]
    args = [op, INSTANCE, epoch, state, one_line(reason), os.getpid(), socket.gethostname(),
            INTERVAL_MS, TTL_MS, AGENT, REPLICA, CONTAINER]
    try:
        applied = int(write(keys=keys, args=args))
    except redis.RedisError as e:  # a store outage must never stop the work
        print(f"ready-signal: {e}", file=sys.stderr)
        return False
    if applied > 0:
        if fenced:
            print("ready-signal: the newer instance's record is gone; publishing again",
                  file=sys.stderr)
        epoch, fenced = applied, False
    elif op != "del":
        if not fenced:
            print("ready-signal: a newer instance owns this record; not writing it",
                  file=sys.stderr)
        epoch, fenced = 0, True
    return applied > 0


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
    # While fenced, the same call only retakes the record once the newer one is gone.
    if time.monotonic() - last_beat >= INTERVAL_MS / 1000:
        publish(state)
        last_beat = time.monotonic()

if not fenced:  # a fenced instance leaves the newer instance's record alone
    publish("stopping")
    publish("stopping", op="del")
