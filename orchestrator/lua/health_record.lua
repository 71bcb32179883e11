-- Record the outcome of one health check and derive the server's status, atomically.
--
-- KEYS[1]  health key: hash of the server's health record (orchestrator.keys.health_key)
-- ARGV[1]  '1' when the check succeeded, '0' when it failed (no MCP session), 'u' when the MCP
--          session answered but its upstream did not (unreachable, refusing the key, 5xx, timing out)
-- ARGV[2]  now (epoch seconds, as text)
-- ARGV[3]  down after: consecutive failures that mark the server down (K >= 1)
-- ARGV[4..] field, value pairs stored as they are (latency_ms, worker, last_error, ...)
--
-- Status: healthy after any success; degraded after an upstream failure, or after 1..K-1
-- consecutive failures; down after K consecutive failures that were not upstream failures.
-- Returns {status, consecutive failures, previous status or ''}.
local failures
if ARGV[1] == '1' then
  failures = 0
  redis.call('HSET', KEYS[1], 'consecutive_failures', 0, 'last_success_at', ARGV[2])
else
  failures = redis.call('HINCRBY', KEYS[1], 'consecutive_failures', 1)
  redis.call('HSET', KEYS[1], 'last_failure_at', ARGV[2])
end
local status = 'healthy'
if ARGV[1] == 'u' then
  status = 'degraded'
elseif failures >= tonumber(ARGV[3]) then
  status = 'down'
elseif failures > 0 then
  status = 'degraded'
end
local previous = redis.call('HGET', KEYS[1], 'status') or ''
if previous ~= status then
  redis.call('HSET', KEYS[1], 'changed_at', ARGV[2])
end
redis.call('HSET', KEYS[1], 'status', status, 'last_check_at', ARGV[2], 'down_after', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'checks', 1)
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return {status, failures, previous}
