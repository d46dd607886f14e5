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
local here = (arg and arg[0] or ""):match("^(.*[/\\])") or "./"
package.path = here .. "lib/?.lua;" .. package.path

local B = require "bench"
local tasks = require "tasks"
local cache = require "cache"

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
local lat, done, elapsed = tasks.run(C, N, DEADLINE_S, function(i)
    local key = keys[i + 1]
    local v, found = c:get(key)
    check(v, found, key)
end)
local after = c:stats()
c:disconnect()

local hits, misses = after.hits - before.hits, after.misses - before.misses
if hits ~= done or misses ~= 0 or after.errors ~= 0 or not after.using_redis
    or after.reconnects ~= 0 then
    io.stderr:write(("w3_get: %d requests but %d hits, %d misses, %d errors, using_redis %s, "
        .. "reconnects %d, last_error %s\n"):format(done, hits, misses, after.errors,
        tostring(after.using_redis), after.reconnects, tostring(after.last_error)))
    os.exit(1)
end

local function percentile(p) return tasks.percentile(lat, p) end
B.result(WORKLOAD, name, "ops_per_s", done / elapsed, "ops/s")
B.result(WORKLOAD, name, "p50_us", percentile(50) * 1e6, "us")
B.result(WORKLOAD, name, "p99_us", percentile(99) * 1e6, "us")
B.result(WORKLOAD, name, "requests", done, "count")
