-- W3 Redis GETs through cachert: C concurrent tasks on one manager.
-- Usage: build/cachert bench/w3_get.lua <concurrency> <pool_size> [port]
--        (port: else $W3_PORT, else $ANCHOR_PORT, else 6390; host 127.0.0.1)
-- The workload is the clients' W3 of ../shared/bench/README.md (as
-- w3_py_get.py and node/w3_ioredis.js): keys key:<n>, n = 0..99,999, loaded
-- beforehand by bench/w3_load.lua (cachert's MessagePack of value64(n));
-- request i reads key:<x_i % 100000> (x_i = the i-th xorshift32 output);
-- 1,000 sequential warm-up GETs (the keys of requests 0..999), then C tasks
-- (cachert.spawn) pull the next request index from a shared counter until
-- 20,000 requests at C = 1, 100,000 otherwise, or 15 s. Latency = time
-- around each awaited c:get (cachert.now()); throughput = completed / elapsed.
-- The manager has an explicit pool of <pool_size> connections; the anchor is
-- named cachert-get-c<C>-pool<pool_size>. The run fails (exit 1) unless every
-- GET, warm-up included, was a hit with a 64-byte value served by Redis.
-- Over TLS: the manager reads REDIS_TLS / REDIS_TLS_CA_FILE (and the other
-- REDIS_TLS_* variables) itself, e.g. REDIS_TLS=yes REDIS_TLS_CA_FILE=ca.pem;
-- with REDIS_TLS on, the workload is named W3-TLS instead of W3. On a Redis
-- Cluster: REDIS_CLUSTER=yes (the port is the seed node's); named W3-CLUSTER.
-- Also reported: the client's CPU per GET during the timed run (getrusage of
-- this process, user + sys, over the GETs completed) and the Lua bytes
-- allocated per GET (with the GC stopped, in a run of its own afterwards:
-- see below), in all and beyond the value's own string.
local here = (arg and arg[0] or ""):match("^(.*[/\\])") or "./"
package.path = here .. "lib/?.lua;" .. package.path

local B = require "bench"
local tasks = require "tasks"
local cache = require "cache"
local cachert = require "cachert"
local ffi = require "ffi"

ffi.cdef [[
typedef struct { long tv_sec; long tv_usec; } w3_timeval;
typedef struct { w3_timeval ru_utime, ru_stime; long ru_rest[14]; } w3_rusage;
int getrusage(int who, w3_rusage *usage);
]]
local rusage = ffi.new("w3_rusage")
-- This process's user + sys CPU time, and its sys time, in microseconds.
local function cpu_us()
    assert(ffi.C.getrusage(0, rusage) == 0)     -- RUSAGE_SELF
    local u, s = rusage.ru_utime, rusage.ru_stime
    local sys = tonumber(s.tv_sec) * 1e6 + tonumber(s.tv_usec)
    return tonumber(u.tv_sec) * 1e6 + tonumber(u.tv_usec) + sys, sys
end

local C = assert(tonumber(arg[1]), "usage: w3_get.lua <concurrency> <pool_size> [port]")
local POOL = assert(tonumber(arg[2]), "usage: w3_get.lua <concurrency> <pool_size> [port]")
local PORT = tonumber(arg[3] or os.getenv("W3_PORT") or os.getenv("ANCHOR_PORT") or 6390)
local N = C == 1 and 20000 or 100000
local DEADLINE_S, WARMUP, KEYSPACE = 15.0, 1000, 100000
local name = ("cachert-get-c%d-pool%d"):format(C, POOL)
local TLS = ({ yes = true, ["true"] = true, ["1"] = true, on = true })
    [(os.getenv("REDIS_TLS") or ""):lower()] or false
local CLUSTER = ({ yes = true, ["true"] = true, ["1"] = true, on = true })
    [(os.getenv("REDIS_CLUSTER") or ""):lower()] or false
local WORKLOAD = TLS and "W3-TLS" or CLUSTER and "W3-CLUSTER" or "W3"

-- Request i (0-based) reads keys[i + 1].
local keys, rand = {}, B.xorshift32()
for i = 1, N do
    keys[i] = "key:" .. rand() % KEYSPACE
end

local c = cache.new{ host = "127.0.0.1", port = PORT, db = 0, pool_size = POOL,
                     namespace = "" }
if not c:connect() then
    io.stderr:write(("w3_get: cannot use redis on 127.0.0.1:%d%s: %s\n")
        :format(PORT, TLS and " (TLS)" or "", tostring(c:stats().last_error)))
    os.exit(1)
end

local function check(v, found, key)
    if not found or type(v) ~= "string" or #v ~= 64 then
        error(("GET %s: expected a 64-byte string, got %s (found %s); is the keyspace loaded "
               .. "with bench/w3_load.lua?"):format(key, tostring(v), tostring(found)), 0)
    end
end

for i = 1, WARMUP do
    local key = keys[i]
    local v, found = c:get(key)
    check(v, found, key)
end
-- The warm-up values are exactly value64(n).
assert(c:get("key:0") == B.value64(0) and c:get("key:99999") == B.value64(99999))

local before = c:stats()
local cpu0, sys0 = cpu_us()
local lat, done, elapsed = tasks.run(C, N, DEADLINE_S, function(i)
    local key = keys[i + 1]
    local v, found = c:get(key)
    check(v, found, key)
end)
local cpu1, sys1 = cpu_us()
local cpu, sys = cpu1 - cpu0, sys1 - sys0

-- Lua bytes allocated per GET, in two parts, each exact:
-- * beyond the value: C tasks share ALLOC_N GETs (the keys of requests
--   0..ALLOC_N-1) with the GC stopped, counted from their start to their
--   last GET (collectgarbage("count")). The values read are kept
--   from a pass over the same keys just before, so each GET finds its
--   value's string interned already and the count is the rest: the
--   scheduler, the cache module, cache.core (plus the tasks' first growth
--   of their stacks).
-- * the value: a new 64-byte Lua string, as the timed run makes one per
--   GET (the smallest count over a few made with the GC stopped: the
--   others include a growth of the string table, which a running GC
--   shrinks again).
-- Counting new values directly would add the string table's growth (it
-- doubles as the GC-stopped heap fills with values), tens of bytes per
-- GET from one run to the next.
local ALLOC_N = C == 1 and 5000 or 20000     -- exact either way; c=1 is slow
local values = {}
for i = 1, ALLOC_N do
    local key = keys[i]
    local v, found = c:get(key)
    check(v, found, key)
    values[i] = v
end
collectgarbage("collect")
collectgarbage("stop")
local nxt, left, kb1 = 0, C, nil
local function alloc_worker()
    while nxt < ALLOC_N do
        local i = nxt
        nxt = i + 1
        local key = keys[i + 1]
        local v, found = c:get(key)
        check(v, found, key)
    end
    left = left - 1
    if left == 0 then kb1 = collectgarbage("count") end
end
local workers = {}
for w = 1, C do workers[w] = cachert.spawn(alloc_worker) end
local kb0 = collectgarbage("count")     -- they start when the main task waits
for w = 1, C do workers[w]:join() end
assert(#values == ALLOC_N)
local beyond_value = (kb1 - kb0) * 1024 / ALLOC_N
local str_bytes, sbuf = math.huge, ffi.new("uint8_t[64]")
for i = 1, 16 do
    sbuf[0], sbuf[1], sbuf[2] = i, 0xff, 0xfe   -- no value64() string starts so
    local k = collectgarbage("count")
    values[i] = ffi.string(sbuf, 64)            -- (kept until the count is read)
    str_bytes = math.min(str_bytes, (collectgarbage("count") - k) * 1024)
end
collectgarbage("restart")
local after = c:stats()
c:disconnect()

local hits, misses = after.hits - before.hits, after.misses - before.misses
if hits ~= done + 2 * ALLOC_N or misses ~= 0 or after.errors ~= 0 or not after.using_redis
    or after.reconnects ~= 0 then
    io.stderr:write(("w3_get: %d requests but %d hits, %d misses, %d errors, using_redis %s, "
        .. "reconnects %d, last_error %s\n"):format(done + 2 * ALLOC_N, hits, misses, after.errors,
        tostring(after.using_redis), after.reconnects, tostring(after.last_error)))
    os.exit(1)
end

local function percentile(p) return tasks.percentile(lat, p) end
B.result(WORKLOAD, name, "ops_per_s", done / elapsed, "ops/s")
B.result(WORKLOAD, name, "p50_us", percentile(50) * 1e6, "us")
B.result(WORKLOAD, name, "p99_us", percentile(99) * 1e6, "us")
B.result(WORKLOAD, name, "requests", done, "count")
B.result(WORKLOAD, name, "cpu_us_per_get", cpu / done, "us")
B.result(WORKLOAD, name, "cpu_sys_us_per_get", sys / done, "us")
B.result(WORKLOAD, name, "lua_bytes_per_get", beyond_value + str_bytes, "B")
B.result(WORKLOAD, name, "lua_bytes_per_get_beyond_value", beyond_value, "B")
