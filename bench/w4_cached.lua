-- W4 `cached` hits over Redis: C concurrent tasks call one memoized function.
-- Usage: build/cachert bench/w4_cached.lua <concurrency> <near|plain> [port]
--        (port: else $W4_PORT, else $ANCHOR_PORT, else 6390; host 127.0.0.1)
-- The workload is the anchors' W4 (../shared/bench/w4_py_cached_redis.py):
-- fn(x) = "value:" .. x memoized as c:cached(300, "fn")(fn) on a manager backed
-- by Redis; the argument 42 is read per call from a 4-slot array; 1,000
-- warm-up calls (the first one misses and stores fn:42), then C tasks call
-- until 20,000 calls at C = 1, 100,000 otherwise, or 15 s. Latency = time
-- around each call; throughput = completed / elapsed. `near`: the manager has
-- a near cache (near = { max_items = 10000 }), so hits are served in the
-- process after the first one from Redis; `plain`: every hit is a Redis GET.
-- The run fails (exit 1) unless every timed call was a hit, with no error.
local here = (arg and arg[0] or ""):match("^(.*[/\\])") or "./"
package.path = here .. "lib/?.lua;" .. package.path

local B = require "bench"
local tasks = require "tasks"
local cache = require "cache"

local USAGE = "usage: w4_cached.lua <concurrency> <near|plain> [port]"
local C = assert(tonumber(arg[1]), USAGE)
local MODE = assert(({ near = "near", plain = "plain" })[arg[2]], USAGE)
local PORT = tonumber(arg[3] or os.getenv("W4_PORT") or os.getenv("ANCHOR_PORT") or 6390)
local N = C == 1 and 20000 or 100000
local DEADLINE_S, WARMUP = 15.0, 1000
local name = ("cachert-cached-%s-c%d"):format(MODE, C)
local band = require("bit").band

local c = cache.new{ host = "127.0.0.1", port = PORT, namespace = "",
                     near = MODE == "near" and { max_items = 10000 } or false }
if not c:connect() then
    io.stderr:write(("w4_cached: cannot use redis on 127.0.0.1:%d: %s\n")
        :format(PORT, tostring(c:stats().last_error)))
    os.exit(1)
end
c:delete("fn:42")      -- the first warm-up call misses, as the anchor's does

local function fn(x) return "value:" .. x end
local m = c:cached(300, "fn")(fn)
local ARGS = { 42, 42, 42, 42 }

for i = 1, WARMUP do
    assert(m(ARGS[band(i, 3) + 1]) == "value:42")
end
local before = c:stats()
assert(before.misses <= 1 and before.errors == 0, "warm-up: unexpected misses or errors")

local lat, done, elapsed = tasks.run(C, N, DEADLINE_S, function(i)
    local v = m(ARGS[band(i, 3) + 1])
    if v ~= "value:42" then error("wrong value " .. tostring(v), 0) end
end)
local after = c:stats()
c:disconnect()

local hits, misses = after.hits - before.hits, after.misses - before.misses
if hits ~= done or misses ~= 0 or after.errors ~= 0 or not after.using_redis then
    io.stderr:write(("w4_cached: %d calls but %d hits, %d misses, %d errors, using_redis %s, "
        .. "last_error %s\n"):format(done, hits, misses, after.errors,
        tostring(after.using_redis), tostring(after.last_error)))
    os.exit(1)
end

local function percentile(p) return tasks.percentile(lat, p) end
B.result("W4", name, "calls_per_s", done / elapsed, "calls/s")
B.result("W4", name, "p50_us", percentile(50) * 1e6, "us")
B.result("W4", name, "p99_us", percentile(99) * 1e6, "us")
B.result("W4", name, "calls", done, "count")
B.result("W4", name, "near_hits", after.near_hits - before.near_hits, "count")
