-- examples/sentinel.lua -- a cache on a Sentinel-managed primary: the
-- sentinels name the primary, cachert confirms it with ROLE and follows
-- failovers by itself (no error reaches the script; the memory store
-- serves for the second or two a failover takes).
--
-- Run against your sentinels:
--   REDIS_SENTINELS=10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379 \
--   REDIS_SENTINEL_MASTER=mymaster ./build/cachert examples/sentinel.lua
-- or with one URL: REDIS_URL=redis+sentinel://h1:26379,h2:26379/mymaster/0
-- Sentinels that require a password: REDIS_SENTINEL_PASSWORD (the data
-- nodes' own password goes in REDIS_PASSWORD or the URL). Add
-- REDIS_TLS=yes (and REDIS_TLS_CA_FILE) when every node speaks TLS.
-- Without sentinels it runs on the memory store: no server needed.

local cache = require "cache"
local cachert = require "cachert"

local c = cache.new { namespace = "example:sentinel:", command_timeout = 0.5 }
print("connected to redis:", c:connect())
if not c:stats().using_redis then
    print("why not:", c:stats().last_error)
end

local lookups = 0
local profile = c:cached(60, "profile")(function(id)
    lookups = lookups + 1
    cachert.sleep(0.01)                     -- stands in for a database query
    return { id = id, name = "user " .. id }
end)
for _ = 1, 3 do
    for id = 1, 4 do profile(id) end
end
local s = c:stats()
print(("hits: %d, misses: %d, hit rate: %.2f%%, backend: %s, lookups: %d")
      :format(s.hits, s.misses, s.hit_rate * 100, s.backend, lookups))
c:disconnect()
