-- A circuit or cooldown transition: written, then published to the other
-- replicas, in one round trip.
-- KEYS[1]: the state key. ARGV: mode, ttl (ms), channel, message.
-- mode "set" writes the key for ttl; "extend" writes it only when that
-- lengthens it (a cooldown never shortens); "del" deletes it.
if ARGV[1] == 'del' then
  redis.call('DEL', KEYS[1])
else
  local ms = tonumber(ARGV[2])
  if ARGV[1] == 'set' or redis.call('PTTL', KEYS[1]) < ms then
    redis.call('SET', KEYS[1], '1', 'PX', ms)
  end
end
return redis.call('PUBLISH', ARGV[3], ARGV[4])
