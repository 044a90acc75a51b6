-- Window counters, decided atomically in one round trip. The same
-- arithmetic as `WindowLimiter` in src/layers/rate_limit.rs: each key has
-- its own window, started by its first count after the previous one ended;
-- a refusal says the time until that window ends (never more than the
-- window), and a request made then is counted in a fresh window.
--
-- KEYS[i]: one hash per limit: s = start of the key's window (ms, Redis's
-- own clock, so every replica agrees), c = the count in it. It expires when
-- its window ends.
-- ARGV: four per key: op, n, limit, window (ms). op "a" counts n if that
-- fits, "c" checks that the count is under the limit (counts nothing), "f"
-- counts n whatever the limit (usage reported after the fact).
-- Checks come before the acquire: the first refusal ends the script, and a
-- refused request counts nowhere.
-- Returns {1, i, remaining, reset_ms} for the last key when everything
-- fits, or {0, i, 0, wait_ms} for the first key that refused.
if redis.replicate_commands then
  redis.replicate_commands()
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local result = {1, 0, 0, 0}
for i = 1, #KEYS do
  local key = KEYS[i]
  local j = (i - 1) * 4
  local op = ARGV[j + 1]
  local n = tonumber(ARGV[j + 2])
  local limit = tonumber(ARGV[j + 3])
  local window = math.max(tonumber(ARGV[j + 4]), 1)
  local v = redis.call('HMGET', key, 's', 'c')
  local s = tonumber(v[1])
  local c = tonumber(v[2]) or 0
  if s == nil or s > now or now - s >= window then
    s = now
    c = 0
  end
  local reset = s + window - now
  local fits
  if op == 'a' then
    fits = c + n <= limit
  elseif op == 'c' then
    fits = c < limit
  else
    fits = true
  end
  if not fits then
    return {0, i, 0, math.max(reset, 1)}
  end
  if op ~= 'c' then
    c = c + n
    redis.call('HSET', key, 's', string.format('%d', s), 'c', string.format('%d', c))
    redis.call('PEXPIRE', key, math.max(reset, 1))
  end
  result = {1, i, math.max(limit - c, 0), reset}
end
return result
