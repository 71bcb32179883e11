-- breaker_admit.lua: may one call to this server go ahead now? One atomic decision.
--
-- KEYS[1]  mcpo:breaker:<server>         hash, the breaker (layout below)
-- KEYS[2]  mcpo:breaker:<server>:trials  zset of half-open trial leases: member = trial id,
--                                        score = lease expiry (ms); expired leases are reclaimed
-- ARGV[1]  now, epoch milliseconds (the caller's clock)
-- ARGV[2]  server name (for the transition event only)
-- ARGV[3]  events channel (mcpo:breaker:events)
-- ARGV[4]  half_open_max_calls: trial slots in half-open across all callers
-- ARGV[5]  trial lease, ms
-- ARGV[6]  "0" = admit; "1" = peek: decide without taking a trial slot or changing state;
--          "2" = recover: a health probe reached the upstream, so an open breaker of generation
--          ARGV[7] goes half-open now instead of at open_until (no trial slot is taken)
-- ARGV[7]  recover only: the generation the probe saw open (any other generation: no change)
--
-- Returns {allowed 0|1, state, generation, retry_after_ms (-1 = unknown), trial_id (0 = none),
--          from_state ("" unless this call changed the state)}
--
-- Hash layout of KEYS[1] (a missing hash is a fresh closed breaker, generation 0):
--   state          closed | open | half_open | forced_open | disabled
--   gen            generation, +1 on every state change; outcomes of older generations are ignored
--   failures       consecutive mode: failures in a row while closed
--   successes      trial successes in the current half-open period
--   win_calls      rate mode, count window: calls in the window (time window: see :buckets)
--   win_failures   rate mode, count window: failures in the window
--   opened_at      ms of the last trip;   open_until: ms when half-open trials may start
--   backoff_level  trips in a row without closing (the open wait grows with it)
--   trips          total trips;   transitions: total state changes;   changed_at: ms of the last
--   trial_seq      last trial id handed out
-- On a transition the script PUBLISHes {"server","from","to","generation","at"} to ARGV[3].

local key, trials = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
local peek = ARGV[6] == '1'
local recover = ARGV[6] == '2'
local f = redis.call('HMGET', key, 'state', 'gen', 'open_until')
local state = f[1] or 'closed'
local gen = tonumber(f[2]) or 0

if recover and (state ~= 'open' or gen ~= tonumber(ARGV[7])) then
  return {0, state, gen, -1, 0, ''}
end
if state == 'closed' or state == 'disabled' then
  return {1, state, gen, 0, 0, ''}
end
if state == 'forced_open' then
  return {0, state, gen, -1, 0, ''}
end

local from = ''
if state == 'open' then
  local open_until = tonumber(f[3]) or 0
  if now < open_until and not recover then
    return {0, state, gen, open_until - now, 0, ''}
  end
  if peek then
    return {1, state, gen, 0, 0, ''}
  end
  from, state, gen = 'open', 'half_open', gen + 1
  redis.call('HSET', key, 'state', state, 'gen', gen, 'successes', 0, 'changed_at', now)
  redis.call('HINCRBY', key, 'transitions', 1)
  redis.call('DEL', trials)
  redis.call('PUBLISH', ARGV[3], cjson.encode(
    {server = ARGV[2], from = from, to = state, generation = gen, at = now}))
  if recover then
    return {1, state, gen, 0, 0, from}
  end
end

-- half_open: hand out a trial slot if one is free (expired leases are free again).
redis.call('ZREMRANGEBYSCORE', trials, '-inf', now)
if redis.call('ZCARD', trials) >= tonumber(ARGV[4]) then
  local first = redis.call('ZRANGE', trials, 0, 0, 'WITHSCORES')
  return {0, state, gen, tonumber(first[2]) - now, 0, from}
end
if peek then
  return {1, state, gen, 0, 0, from}
end
local id = redis.call('HINCRBY', key, 'trial_seq', 1)
redis.call('ZADD', trials, now + tonumber(ARGV[5]), id)
return {1, state, gen, 0, id, from}
