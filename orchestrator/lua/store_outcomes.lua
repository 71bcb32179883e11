-- Store the outcomes of several calls at once, as Celery's Redis result backend stores one task's:
-- SET the encoded meta (with its expiry) and PUBLISH it on the same key, for the waiting client.
-- As Celery does (it reads the key first), an outcome never replaces a SUCCESS already stored: a
-- call run twice (a redelivered chunk) keeps the result its client may already have.
--
-- KEYS[i]      result key of call i (celery-task-meta-<task id>)
-- ARGV[2i-1]   expiry of call i in seconds; 0: no expiry
-- ARGV[2i]     encoded meta of call i (JSON)
--
-- Returns how many outcomes were stored.
local stored = 0
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  local kept = false
  if current then
    local ok, meta = pcall(cjson.decode, current)
    kept = ok and type(meta) == 'table' and meta['status'] == 'SUCCESS'
  end
  if not kept then
    local ttl = tonumber(ARGV[2 * i - 1])
    local value = ARGV[2 * i]
    if ttl > 0 then
      redis.call('SET', key, value, 'EX', ttl)
    else
      redis.call('SET', key, value)
    end
    redis.call('PUBLISH', key, value)
    stored = stored + 1
  end
end
return stored
