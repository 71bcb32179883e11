-- Take one of a server's fleet-wide concurrency slots, if one is free.
--
-- KEYS[1]  limit key: sorted set, member = holder id, score = lease end (ms since epoch)
-- ARGV[1]  now (ms)
-- ARGV[2]  limit: how many holders may run at once
-- ARGV[3]  holder id (the task id)
-- ARGV[4]  lease end (ms): a holder that died without releasing frees its slot then
--
-- Returns 1 when the slot is taken (or already held by this holder), 0 when all are busy.
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  return 1
end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], tonumber(ARGV[4]), ARGV[3])
  local longest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[1], math.floor(tonumber(longest[2])) + 1000)
  return 1
end
return 0
