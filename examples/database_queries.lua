-- examples/database_queries.lua -- caching expensive database queries (the
-- seed's Example 4): the popular videos for a minute, the total count for
-- five minutes. Adding a video invalidates the cached count.
--
-- Run: ./build/cachert examples/database_queries.lua

local cache = require "cache"
local cachert = require "cachert"

print("cache.connect() ->", cache.connect())   -- false: memory store, no Redis

-- Stands in for a videos table (each query takes 0.15 s here).
local db = { queries = 0, videos = {} }
for i = 1, 50 do
    db.videos[i] = { id = i, title = "Video " .. i, views = (i * 7919) % 1000 }
end

local function query(fn)
    db.queries = db.queries + 1
    cachert.sleep(0.15)
    return fn()
end

-- ORDER BY views DESC LIMIT limit
local get_popular_videos = cache.cached(60, "popular_videos")(function(limit)
    limit = limit or 10
    return query(function()
        local sorted = {}
        for i, v in ipairs(db.videos) do sorted[i] = v end
        table.sort(sorted, function(a, b) return a.views > b.views end)
        local top = {}
        for i = 1, math.min(limit, #sorted) do top[i] = sorted[i] end
        return top
    end)
end)

-- SELECT count(*)
local get_total_video_count = cache.cached(300, "video_count")(function()
    return query(function() return #db.videos end)
end)

-- Inserting a video makes the cached count stale: clear "video_count:*".
local add_video = cache.invalidate("video_count")(function(video)
    db.videos[#db.videos + 1] = video
end)

local function timed(label, fn, ...)
    local start = cachert.now()
    local result = fn(...)
    local shown = type(result) == "table"
        and ("%d videos, top: %s (%d views)"):format(#result, result[1].title, result[1].views)
        or tostring(result)
    print(("%-32s %7.1f ms  %s"):format(label, (cachert.now() - start) * 1000, shown))
end

timed("popular videos (database):", get_popular_videos, 10)
timed("popular videos (cached):", get_popular_videos, 10)
print('cached as "popular_videos:10" ->', cache.exists("popular_videos:10"))
timed("total count (database):", get_total_video_count)
timed("total count (cached):", get_total_video_count)
add_video({ id = 51, title = "Video 51", views = 0 })
timed("count after insert (database):", get_total_video_count)
timed("count again (cached):", get_total_video_count)
print("database queries:", db.queries)

local stats = cache.stats()
print(("hits: %d, misses: %d, hit rate: %.2f%%, using redis: %s (backend: %s)")
      :format(stats.hits, stats.misses, stats.hit_rate * 100,
              tostring(stats.using_redis), stats.backend))
