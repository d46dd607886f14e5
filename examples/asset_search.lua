-- examples/asset_search.lua -- caching an external API search (the seed's
-- Example 2) to save API quota: results are kept for 30 minutes.
--
-- Lua has no default arguments, so `count` defaults inside the function.
-- search_assets("q") and search_assets("q", 5) are different argument lists;
-- a key function makes them share one entry, "assets:<query>:<count>".
--
-- Run: ./build/cachert examples/asset_search.lua

local cache = require "cache"
local cachert = require "cachert"

local DEFAULT_COUNT = 5

print("cache.connect() ->", cache.connect())   -- false: memory store, no Redis

local api_requests = 0

-- Stands in for the Pexels video search API (rate limited, 0.2 s here).
local function pexels_search_videos(query, per_page)
    api_requests = api_requests + 1
    cachert.sleep(0.2)
    local videos = {}
    for i = 1, per_page do
        videos[i] = { id = 1000 + i, url = ("https://example.com/%s/%d.mp4")
                                          :format(query:gsub(" ", "-"), i) }
    end
    return videos
end

local search_assets = cache.cached {
    ttl = 1800,                                    -- 30 minutes
    prefix = "assets",
    key = function(query, count)
        return query .. ":" .. (count or DEFAULT_COUNT)
    end,
} (function(query, count)
    return pexels_search_videos(query, count or DEFAULT_COUNT)
end)

local function timed(label, ...)
    local start = cachert.now()
    local assets = search_assets(...)
    print(("%-32s %7.1f ms  %d assets, first %s")
          :format(label, (cachert.now() - start) * 1000, #assets, assets[1].url))
end

timed("first call (API request):", "peaceful nature", 5)
timed("second call (cached):", "peaceful nature", 5)
timed("default count (cached):", "peaceful nature")
timed("count 3 (API request):", "peaceful nature", 3)
print('entry "assets:peaceful nature:5" ->', cache.exists("assets:peaceful nature:5"))
print("API requests:", api_requests)

local stats = cache.stats()
print(("hits: %d, misses: %d, hit rate: %.2f%%, using redis: %s (backend: %s)")
      :format(stats.hits, stats.misses, stats.hit_rate * 100,
              tostring(stats.using_redis), stats.backend))
