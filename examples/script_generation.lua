-- examples/script_generation.lua -- caching an expensive AI call (the seed's
-- Example 1): the same niche and duration generate the script once an hour.
--
-- Run: ./build/cachert examples/script_generation.lua

local cache = require "cache"
local cachert = require "cachert"

print("cache.connect() ->", cache.connect())   -- false: memory store, no Redis

local ai_calls = 0

-- Stands in for an AI model call (seconds in real life, 0.2 s here).
local function ollama_generate(prompt)
    ai_calls = ai_calls + 1
    cachert.sleep(0.2)
    return "SCRIPT: " .. prompt
end

-- Cached for 1 hour under "script:..." per (niche, duration) pair.
local generate_script = cache.cached(3600, "script")(function(niche, duration)
    return ollama_generate(("Generate a %d-second script for %s"):format(duration, niche))
end)

local function timed(label, ...)
    local start = cachert.now()
    local script = generate_script(...)
    print(("%-36s %7.1f ms  %s"):format(label, (cachert.now() - start) * 1000, script))
end

timed("first call (AI generation):", "meditation", 600)
timed("second call (cached):", "meditation", 600)
timed("other duration (AI generation):", "meditation", 300)
timed("again (cached):", "meditation", 300)

-- Three concurrent requests for a new niche: the first runs the AI call, the
-- other two wait for its result (single flight) instead of calling again.
local start, calls_before = cachert.now(), ai_calls
local tasks = {}
for i = 1, 3 do
    tasks[i] = cachert.spawn(generate_script, "yoga", 60)
end
for i = 1, 3 do
    tasks[i]:join()
end
print(("%-36s %7.1f ms  %d tasks, %d AI call")
      :format("3 concurrent calls (single flight):", (cachert.now() - start) * 1000,
              #tasks, ai_calls - calls_before))
print("AI calls:", ai_calls)

local stats = cache.stats()
print(("hits: %d, misses: %d, hit rate: %.2f%%, using redis: %s (backend: %s)")
      :format(stats.hits, stats.misses, stats.hit_rate * 100,
              tostring(stats.using_redis), stats.backend))
