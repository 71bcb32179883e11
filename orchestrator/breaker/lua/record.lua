-- breaker_record.lua: record the outcome of one admitted call. One atomic decision.
--
-- KEYS[1]  mcpo:breaker:<server>          hash, the breaker (layout: see breaker_admit.lua)
-- KEYS[2]  mcpo:breaker:<server>:trials   zset of half-open trial leases
-- KEYS[3]  mcpo:breaker:<server>:calls    list, rate mode count window: newest first, '1' = failure
-- KEYS[4]  mcpo:breaker:<server>:buckets  hash, rate mode time window: '<bucket>:n' calls and
--                                         '<bucket>:f' failures, bucket = floor(now / bucket_ms)
-- ARGV[1]  now, epoch milliseconds (the caller's clock)
-- ARGV[2]  server name (for the transition event only)
-- ARGV[3]  events channel (mcpo:breaker:events)
-- ARGV[4]  generation the call was admitted under (an older one makes this a no-op)
-- ARGV[5]  trial id the call holds (0 = not a trial)
-- ARGV[6]  "1" = the call counts as a failure, "0" = success, "-" = neither (the caller's own
--          mistake, e.g. an unknown tool: it says nothing about the server; a trial slot is freed)
-- ARGV[7]  policy JSON: mode, failure_threshold, success_threshold, open_ms, backoff,
--          max_open_ms, rate, window_type, window_size, bucket_ms, buckets, minimum_calls
--
-- Returns {state, generation, applied 0|1, from_state ("" unless this call changed the state)}

local key, trials, calls_key, buckets_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = tonumber(ARGV[1])
local f = redis.call('HMGET', key, 'state', 'gen')
local state = f[1] or 'closed'
local gen = tonumber(f[2]) or 0
if tonumber(ARGV[4]) ~= gen or (state ~= 'closed' and state ~= 'half_open') then
  return {state, gen, 0, ''}
end
local failed = ARGV[6] == '1'
if ARGV[6] == '-' then
  if state == 'half_open' then
    redis.call('ZREM', trials, ARGV[5])
  end
  return {state, gen, 0, ''}
end
local p = cjson.decode(ARGV[7])

local function clear_counts()
  redis.call('DEL', trials, calls_key, buckets_key)
  redis.call('HSET', key, 'failures', 0, 'successes', 0, 'win_calls', 0, 'win_failures', 0)
end

-- Move to state `to` with a new generation and fresh counters; publish the transition.
local function change(to)
  local from = state
  state, gen = to, gen + 1
  clear_counts()
  redis.call('HSET', key, 'state', to, 'gen', gen, 'changed_at', now)
  redis.call('HINCRBY', key, 'transitions', 1)
  redis.call('PUBLISH', ARGV[3], cjson.encode(
    {server = ARGV[2], from = from, to = to, generation = gen, at = now}))
  return {state, gen, 1, from}
end

local function trip()
  local level = (tonumber(redis.call('HGET', key, 'backoff_level')) or 0) + 1
  local wait = math.floor(math.min(p.open_ms * p.backoff ^ (level - 1), p.max_open_ms))
  redis.call('HINCRBY', key, 'trips', 1)
  redis.call('HSET', key, 'opened_at', now, 'open_until', now + wait, 'backoff_level', level)
  return change('open')
end

-- Count-based window: push the outcome, drop the oldest beyond window_size; returns calls, failures.
local function count_window()
  redis.call('LPUSH', calls_key, failed and '1' or '0')
  local c = redis.call('HINCRBY', key, 'win_calls', 1)
  local n = failed and redis.call('HINCRBY', key, 'win_failures', 1)
    or tonumber(redis.call('HGET', key, 'win_failures')) or 0
  while c > p.window_size do
    if redis.call('RPOP', calls_key) == '1' then
      n = redis.call('HINCRBY', key, 'win_failures', -1)
    end
    c = redis.call('HINCRBY', key, 'win_calls', -1)
  end
  return c, n
end

-- Time-based window: bump this bucket, drop buckets that left the window; returns calls, failures.
local function time_window()
  local bucket = math.floor(now / p.bucket_ms)
  redis.call('HINCRBY', buckets_key, bucket .. ':n', 1)
  if failed then
    redis.call('HINCRBY', buckets_key, bucket .. ':f', 1)
  end
  local c, n = 0, 0
  local all = redis.call('HGETALL', buckets_key)
  for i = 1, #all, 2 do
    local b, kind = string.match(all[i], '^(-?%d+):(%a)$')
    if tonumber(b) <= bucket - p.buckets then
      redis.call('HDEL', buckets_key, all[i])
    elseif kind == 'n' then
      c = c + tonumber(all[i + 1])
    else
      n = n + tonumber(all[i + 1])
    end
  end
  return c, n
end

if state == 'half_open' then
  redis.call('ZREM', trials, ARGV[5])
  if failed then
    return trip()
  end
  if redis.call('HINCRBY', key, 'successes', 1) >= p.success_threshold then
    redis.call('HSET', key, 'backoff_level', 0)
    return change('closed')
  end
  return {state, gen, 1, ''}
end

-- closed
if p.mode == 'consecutive' then
  if not failed then
    if (tonumber(redis.call('HGET', key, 'failures')) or 0) > 0 then
      redis.call('HSET', key, 'failures', 0)
    end
    return {state, gen, 1, ''}
  end
  if redis.call('HINCRBY', key, 'failures', 1) >= p.failure_threshold then
    return trip()
  end
  return {state, gen, 1, ''}
end

local c, n
if p.window_type == 'count' then
  c, n = count_window()
else
  c, n = time_window()
end
if c >= p.minimum_calls and n / c >= p.rate then
  return trip()
end
return {state, gen, 1, ''}
