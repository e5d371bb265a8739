-- ready-signal write script, protocol version 1, revision 5 (PROTOCOL.md, "Writing").
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
