-- W2 in-memory LRU store mix through a cachert manager (c:get / c:set).
-- Usage: build/cachert bench/w2_lru.lua [anchor]
-- The workload is the anchors' W2 (../shared/bench/w2_lru.lua): 100,000 keys "key:<n>",
-- one 64-byte value, capacity 50,000 entries (cache.new{ max_items = 50000,
-- max_memory = 0 }, 0 = no byte limit), 1,000,000 pre-generated ops from xorshift32
-- (x = next(); n = x % 100000; x = next(); set iff x % 10 == 0), sets with ttl 3600,
-- a get miss does not insert. One run = one untimed warm-up pass on a throwaway manager
-- + 3 timed passes, each on a fresh manager; reports the median pass. An exact LRU gives
-- get_hits = 312231 and sets = 100260.
local here = (arg and arg[0] or ""):match("^(.*[/\\])") or "./"
package.path = here .. "lib/?.lua;" .. package.path

local B = require "bench"
local cache = require "cache"

local anchor = arg[1] or "cachert-manager"
local KEYS, CAP, OPS, TTL, BATCHES = 100000, 50000, 1000000, 3600, 3

local keys = {}
for n = 0, KEYS - 1 do keys[n] = "key:" .. n end
local value = string.rep("x", 64)
local op_key, op_set = {}, {}
local rnd = B.xorshift32()
for i = 1, OPS do
    op_key[i] = keys[rnd() % KEYS]
    op_set[i] = (rnd() % 10 == 0)
end

local function new_manager()
    return cache.new { max_items = CAP, max_memory = 0 }
end

local function run(c, nops)
    local hits, sets = 0, 0
    for i = 1, nops do
        local k = op_key[i]
        if op_set[i] then
            c:set(k, value, TTL); sets = sets + 1
        elseif c:get(k) ~= nil then
            hits = hits + 1
        end
    end
    return hits, sets
end

run(new_manager(), OPS)                 -- untimed warm-up pass on a throwaway manager
local rates, hits, sets = {}, nil, nil
for b = 1, BATCHES do                   -- each pass: fresh empty manager, all OPS ops
    local c = new_manager()
    local t0 = B.now()
    hits, sets = run(c, OPS)
    rates[b] = OPS / (B.now() - t0)
    local st = c:stats()
    assert(st.keys == CAP and st.hits == hits and st.sets == sets,
           ("unexpected stats: keys %d hits %d sets %d"):format(st.keys, st.hits, st.sets))
end
B.result("W2", anchor, "ops_per_s", B.median(rates), "ops/s")
B.result("W2", anchor, "get_hits", hits, "count")
B.result("W2", anchor, "sets", sets, "count")
