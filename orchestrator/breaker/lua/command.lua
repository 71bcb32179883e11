-- breaker_command.lua: an operator sets a server's breaker state. One atomic step.
--
-- KEYS[1]  mcpo:breaker:<server>          hash, the breaker (layout: see breaker_admit.lua)
-- KEYS[2]  mcpo:breaker:<server>:trials   zset of half-open trial leases   (cleared)
-- KEYS[3]  mcpo:breaker:<server>:calls    list, count window               (cleared)
-- KEYS[4]  mcpo:breaker:<server>:buckets  hash, time window buckets        (cleared)
-- ARGV[1]  now, epoch milliseconds
-- ARGV[2]  server name (for the transition event only)
-- ARGV[3]  events channel (mcpo:breaker:events)
-- ARGV[4]  target state: closed (a reset) | forced_open | disabled
--
-- Returns {state, generation, from_state}. Always bumps the generation, so outcomes of calls
-- admitted before the command are ignored; counters, windows and the open backoff are reset.

local key = KEYS[1]
local now = tonumber(ARGV[1])
local f = redis.call('HMGET', key, 'state', 'gen')
local from = f[1] or 'closed'
local gen = (tonumber(f[2]) or 0) + 1
local to = ARGV[4]
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', key, 'state', to, 'gen', gen, 'changed_at', now, 'failures', 0, 'successes', 0,
  'win_calls', 0, 'win_failures', 0, 'backoff_level', 0)
redis.call('HINCRBY', key, 'transitions', 1)
redis.call('PUBLISH', ARGV[3], cjson.encode(
  {server = ARGV[2], from = from, to = to, generation = gen, at = now}))
return {to, gen, from}
