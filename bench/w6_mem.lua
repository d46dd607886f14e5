-- W6 memory per entry in a cachert manager's in-memory store.
-- Usage: build/cachert bench/w6_mem.lua [anchor]
-- 1,000,000 entries "key:<n>" -> value64(n) (distinct 64-byte values), set with ttl 3600
-- (as a TTL cache does; compare with the redis-set-ex anchor) into
-- cache.new{ max_items = 2000000, max_memory = 1 GiB }, limits that never evict here.
-- Reports:
--   bytes_per_entry      the store's own accounting, stats().memory_bytes / 1e6
--                        (entry header + key + encoded value; the bucket array and
--                        malloc rounding are not counted)
--   rss_bytes_per_entry  process RSS delta / 1e6, both ends measured after a full GC
--                        (the Lua strings built while filling are garbage by then)
local here = (arg and arg[0] or ""):match("^(.*[/\\])") or "./"
package.path = here .. "lib/?.lua;" .. package.path

local B = require "bench"
local cache = require "cache"

local anchor = arg[1] or "cachert-manager"
local N, TTL = 1000000, 3600

local function full_gc() collectgarbage("collect"); collectgarbage("collect") end

full_gc()
local rss0 = B.rss_bytes()
local c = cache.new { max_items = 2 * N, max_memory = 1024 * 1024 * 1024 }
local mem0 = c:stats().memory_bytes
for n = 0, N - 1 do c:set("key:" .. n, B.value64(n), TTL) end
full_gc()
local rss1 = B.rss_bytes()
local st = c:stats()
assert(st.keys == N and st.evictions == 0 and st.sets == N,
       ("unexpected stats: keys %d evictions %d sets %d"):format(st.keys, st.evictions, st.sets))
B.result("W6", anchor, "bytes_per_entry", (st.memory_bytes - mem0) / N, "B")
B.result("W6", anchor, "rss_bytes_per_entry", (rss1 - rss0) / N, "B")
