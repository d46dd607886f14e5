-- examples/quickstart.lua -- the cache module in one page: basic operations,
-- the cached / invalidate decorators and the statistics.
--
-- Run it with `make run`, or `./build/cachert examples/quickstart.lua`.
-- No Redis is needed: without one, the in-memory store answers every call.

local cache = require "cache"
local cachert = require "cachert"

local function show(what, ...)
    local out = {}
    for i = 1, select("#", ...) do
        out[i] = tostring((select(i, ...)))
    end
    print(("%-28s -> %s"):format(what, table.concat(out, ", ")))
end

-- Basic operations ------------------------------------------------------------

show("cache.connect()", cache.connect())         -- false: the memory store

cache.set("user:123", { name = "John" }, 60)     -- a table, for 60 seconds
local user, found = cache.get("user:123")
show('cache.get("user:123")', user.name, found)
show('cache.exists("user:123")', cache.exists("user:123"))
show('cache.delete("user:123")', cache.delete("user:123"))
show('cache.get("user:123", "?")', cache.get("user:123", "?"))

cache.set("user:1", "Ann")
cache.set("user:2", "Bob")
show('cache.clear("user:*")', cache.clear("user:*"))

-- Decorators --------------------------------------------------------------------

local videos = { [42] = { id = 42, title = "Lua in 10 minutes" } }   -- "database"
local db_queries = 0

-- Stands in for an expensive database query: 0.2 s per call.
local get_video_metadata = cache.cached(300, "video")(function(video_id)
    db_queries = db_queries + 1
    cachert.sleep(0.2)
    return videos[video_id]
end)

-- Clears every "video:*" entry after the update succeeds.
local update_video = cache.invalidate("video")(function(video_id, data)
    videos[video_id].title = data.title
end)

local function timed(label, video_id)
    local start = cachert.now()
    local video = get_video_metadata(video_id)
    print(("%-28s -> %-20s %6.1f ms"):format(label, ("%q"):format(video.title),
                                            (cachert.now() - start) * 1000))
end

timed("first call (database)", 42)
timed("second call (cache hit)", 42)
show('cache.exists("video:42")', cache.exists("video:42"))
update_video(42, { title = "Lua in 5 minutes" })
show("after update_video(42, ...)", cache.exists("video:42"))
timed("next call (database)", 42)
show("database queries", db_queries)

-- Statistics ----------------------------------------------------------------------

local stats = cache.stats()
print(("hits: %d  misses: %d  hit rate: %.2f%%  using redis: %s  backend: %s")
      :format(stats.hits, stats.misses, stats.hit_rate * 100,
              tostring(stats.using_redis), stats.backend))

cache.disconnect()
