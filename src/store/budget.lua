-- One budget decision, atomically, in one round trip. The same arithmetic
-- as the `budget` layer's Ledger (src/layers/budget/ledger.rs): a
-- reservation fits when spent + reserved + amount <= limit.
--
-- KEYS[1]: hash of spend: field = bucket number (a calendar period's start,
--          or a rolling bucket's number, as the replica computed it), value
--          = amount spent in it; field "r" = the total reserved in flight.
-- KEYS[2]: hash of reservations in flight: field = reservation id, value =
--          its amount.
-- KEYS[3]: sorted set of the same ids, scored by when each expires (ms,
--          Redis's clock): a lease, renewed by the replica that holds it
--          while its request is in flight, so a replica that died with a
--          reservation in flight holds it one lease at most.
-- ARGV: op ("r" reserve, "s" settle, "k" keep: renew leases, "v" view),
--       oldest bucket that still counts, current bucket (where a settlement
--       counts), limit, amount (reserve), reservation id (reserve, settle;
--       empty: a settlement that only adds spend), actual cost (settle),
--       lease (ms), key lifetime (ms: past the period's end), then (keep)
--       the ids whose leases to renew: those already released stay so.
-- Amounts are integers, passed as strings and only ever added by HINCRBY
-- (exact); sums and comparisons are exact up to 2^53.
-- Returns {admitted (1/0), spent, reserved, in flight, bucket, amount, ...}
-- with the buckets that still count.
if redis.replicate_commands then
  redis.replicate_commands()
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]
local oldest = tonumber(ARGV[2])
local current = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local amount = ARGV[5]
local id = ARGV[6]
local actual = ARGV[7]
local hold_ms = tonumber(ARGV[8])
local key_ms = tonumber(ARGV[9])

-- Release the reservation `rid`, if it is still held.
local function release(rid)
  local q = redis.call('HGET', KEYS[2], rid)
  if q then
    if q ~= '0' then
      redis.call('HINCRBY', KEYS[1], 'r', '-' .. q)
    end
    redis.call('HDEL', KEYS[2], rid)
  end
  redis.call('ZREM', KEYS[3], rid)
end

for _, rid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do
  release(rid)
end

if op == 's' then
  release(id)
  if actual ~= '0' then
    redis.call('HINCRBY', KEYS[1], ARGV[3], actual)
  end
elseif op == 'k' then
  for i = 10, #ARGV do
    redis.call('ZADD', KEYS[3], 'XX', now + hold_ms, ARGV[i])
  end
end

local spent = 0
local reserved = 0
local buckets = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local field = all[i]
  if field == 'r' then
    reserved = math.max(tonumber(all[i + 1]) or 0, 0)
  else
    local bucket = tonumber(field)
    if bucket == nil or bucket < oldest then
      redis.call('HDEL', KEYS[1], field)
    else
      local a = tonumber(all[i + 1]) or 0
      spent = spent + a
      buckets[#buckets + 1] = bucket
      buckets[#buckets + 1] = a
    end
  end
end

local admitted = 1
if op == 'r' then
  if spent + reserved + tonumber(amount) <= limit then
    if amount ~= '0' then
      redis.call('HINCRBY', KEYS[1], 'r', amount)
    end
    redis.call('HSET', KEYS[2], id, amount)
    redis.call('ZADD', KEYS[3], now + hold_ms, id)
    reserved = reserved + tonumber(amount)
  else
    admitted = 0
  end
end

local ttl = math.max(key_ms, hold_ms)
for i = 1, 3 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
local out = {admitted, spent, reserved, redis.call('ZCARD', KEYS[3])}
for i = 1, #buckets do
  out[#out + 1] = buckets[i]
end
return out
