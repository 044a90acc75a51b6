-- Sliding-window counters, decided atomically in one round trip. The same
-- arithmetic as `WindowLimiter` in src/layers/rate_limit.rs: the count of
-- the current window plus the previous window's count weighted by how much
-- of it still overlaps.
--
-- KEYS[i]: one hash per limit: s = start of the current window (ms, Redis's
-- own clock, so every replica agrees), p = count of the previous window,
-- c = count of the current one. It expires after two windows without a
-- write: by then both counts would have rolled out anyway.
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
  local window = tonumber(ARGV[j + 4])
  local v = redis.call('HMGET', key, 's', 'p', 'c')
  local s = tonumber(v[1])
  local p = tonumber(v[2]) or 0
  local c = tonumber(v[3]) or 0
  if s == nil or s > now then
    s = now
  end
  local into = now - s
  if into >= 2 * window then
    p = 0
    c = 0
    s = now
    into = 0
  elseif into >= window then
    p = c
    c = 0
    s = s + window
    into = into - window
  end
  local frac = into / window
  local estimate = p * (1 - frac) + c
  local want = n
  local fits
  if op == 'a' then
    fits = estimate + n <= limit
  elseif op == 'c' then
    fits = estimate < limit
    want = 1
  else
    fits = true
  end
  if not fits then
    -- The time until `want` more fit: the previous window's count fades
    -- out linearly, so the end of this window is not always enough.
    local function faded(count, room)
      if count == 0 then
        return 0
      end
      local f = 1 - room / count
      if f < 0 then
        return 0
      elseif f > 1 then
        return 1
      end
      return f
    end
    local wait
    if c + want <= limit then
      wait = window * faded(p, limit - c - want) - into
    else
      wait = window - into + window * faded(c, limit - want)
    end
    return {0, i, 0, math.max(math.ceil(wait), 1)}
  end
  if op ~= 'c' then
    c = c + n
    redis.call('HSET', key, 's', string.format('%d', s), 'p', string.format('%d', p),
      'c', string.format('%d', c))
    redis.call('PEXPIRE', key, 2 * window)
  end
  local used = math.ceil(p * (1 - frac) + c)
  result = {1, i, math.max(limit - used, 0), s + window - now}
end
return result
