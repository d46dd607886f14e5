-- examples/redis_fallback.lua -- Redis first, the memory store when Redis
-- is away, and the statistics that tell which one answered.
--
-- Run without Redis (the memory store serves):
--   ./build/cachert examples/redis_fallback.lua
-- Run against a Redis server:
--   REDIS_URL=redis://127.0.0.1:6379/0 ./build/cachert examples/redis_fallback.lua
-- Stop the server while it runs, or start it later: the calls go on without
-- raising, and the manager switches back once Redis answers again.

local cache = require "cache"
local cachert = require "cachert"

local c = cache.new { namespace = "example:", command_timeout = 0.5 }
local using_redis = c:connect()
print("connected to redis:", using_redis)
if not using_redis then
    print("why not:", c:stats().last_error)
end

local lookups = 0
local get_profile = c:cached(60, "profile")(function(user_id)
    lookups = lookups + 1
    cachert.sleep(0.05)                     -- stands in for a database query
    return { id = user_id, name = "user " .. user_id }
end)

for round = 1, 3 do
    for id = 1, 5 do
        get_profile(id)
    end
    local s = c:stats()
    print(("round %d: backend %-6s hits %2d misses %2d errors %d reconnects %d")
          :format(round, s.backend, s.hits, s.misses, s.errors, s.reconnects))
end
print("database lookups:", lookups)          -- 5: one per user, then hits

-- The summary comes before disconnect(), which hands the manager over to
-- the memory store (it would then report using redis: false).
local s = c:stats()
print(("hits: %d, misses: %d, hit rate: %.2f%%, using redis: %s (backend: %s)")
      :format(s.hits, s.misses, s.hit_rate * 100, tostring(s.using_redis),
              s.backend))

c:clear("profile:*")                         -- SCAN + UNLINK on Redis
c:disconnect()
