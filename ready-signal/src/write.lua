-- ready-signal write script, protocol version 1 (PROTOCOL.md, "Writing").
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
