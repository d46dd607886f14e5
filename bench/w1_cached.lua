-- W1 hot-hit memoization through cachert's `cache.cached` (in-memory store,
-- or over Redis with the near cache).
-- Usage: build/cachert bench/w1_cached.lua [anchor] [N] [port]
--    or: LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua/?.so;;" \
--        luajit bench/w1_cached.lua [anchor] [N]
-- The workload is the anchors' W1 (../shared/bench/w1_memo.lua): fn(x) = "value:" .. x
-- memoized as cache.cached(300, "fn")(fn), called with 42 read per call from a 4-slot
-- array; 100,000 warm-up calls + 3 timed batches of N (1,000,000) calls; reports the
-- median batch in ns/call. anchor defaults to cachert-cached under the cachert
-- executable and cachert-cached-luajit under any other interpreter. With a
-- port, the function is cached on a manager backed by the redis-server on
-- 127.0.0.1:port with a near cache (near = { max_items = 10000 }): the first
-- call misses, the second reads Redis, every other one is a near hit (name
-- the anchor cachert-cached-near).
local here = (arg and arg[0] or ""):match("^(.*[/\\])") or "./"
package.path = here .. "lib/?.lua;" .. package.path

local B = require "bench"
local cache = require "cache"

local host = arg and arg[-1] or ""
local anchor = arg[1] or (host:match("cachert$") and "cachert-cached" or "cachert-cached-luajit")
local N = tonumber(arg[2]) or 1000000
local PORT = tonumber(arg[3])
local WARMUP, BATCHES = 100000, 3
local ARG = 42
local ARGS = { ARG, ARG, ARG, ARG }
local band = require("bit").band

local function fn(x) return "value:" .. x end

local mgr = cache.default()
if PORT then
    mgr = cache.new{ host = "127.0.0.1", port = PORT, namespace = "",
                     near = { max_items = 10000 } }
    assert(mgr:connect(), "cannot use redis on port " .. PORT)
    mgr:delete("fn:42")
end
local m = mgr:cached(300, "fn")(fn)
local sink, batches = 0, {}
for i = 1, WARMUP do sink = sink + #m(ARGS[band(i, 3) + 1]) end
for b = 1, BATCHES do
    local t0 = B.now()
    for i = 1, N do sink = sink + #m(ARGS[band(i, 3) + 1]) end
    batches[b] = (B.now() - t0) * 1e9 / N
end
assert(sink == (WARMUP + BATCHES * N) * #fn(ARG))
-- Every call after the first was served from the store.
local st = mgr:stats()
assert(st.misses == 1 and st.hits == WARMUP + BATCHES * N - 1,
       ("unexpected stats: hits %d misses %d"):format(st.hits, st.misses))
assert(not PORT or (st.using_redis and st.near_hits == WARMUP + BATCHES * N - 2),
       "over Redis, every call but the first two must be a near hit")
B.result("W1", anchor, "ns_per_call", B.median(batches), "ns")
