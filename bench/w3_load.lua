-- W3 keyspace for cachert: RESP commands `SET key:<n> <encoded value64(n)>`,
-- n = 0..count-1, on stdout, for `redis-cli --pipe` (as the anchors load theirs
-- with ../shared/bench/lib/load_keys.py, but with values in cachert's format).
-- Usage: build/cachert bench/w3_load.lua [count] | redis-cli -p PORT --pipe
--        build/cachert bench/w3_load.lua count cluster PORT  (a Redis Cluster)
--
-- A value written by redis-cli as raw bytes is not MessagePack, so cachert would
-- read it as a corrupt value (a miss and an error). Each value here is what
-- cache.set stores for the 64-byte string value64(n): cache.core.encode's bytes,
-- a MessagePack str8 (0xd9 0x40, then the 64 bytes): 66 bytes. No TTL, like the
-- anchors' keyspace.
local here = (arg and arg[0] or ""):match("^(.*[/\\])") or "./"
package.path = here .. "lib/?.lua;" .. package.path

local B = require "bench"
local core = require "cache.core"

local count = tonumber(arg[1]) or 100000

if arg[2] == "cluster" then
    -- A Redis Cluster: redis-cli --pipe does not follow MOVED, so the keys
    -- go through cachert itself (the same bytes: cache.set encodes the
    -- string as core.encode does), 50 tasks at a time, seed 127.0.0.1:arg[3].
    local cachert = require "cachert"
    local c = require("cache").new { cluster_nodes = { "127.0.0.1:" .. assert(arg[3], "port") },
                                     namespace = "" }
    assert(c:connect(), "w3_load: the cluster is not answering")
    local tasks = {}
    for t = 1, 50 do
        tasks[t] = cachert.spawn(function()
            for n = t - 1, count - 1, 50 do
                assert(c:set("key:" .. n, B.value64(n), 0))
            end
        end)
    end
    for t = 1, 50 do tasks[t]:join() end
    local st = c:stats()
    assert(st.errors == 0 and st.using_redis, tostring(st.last_error))
    c:disconnect()
    return
end

local out, buf = io.stdout, {}
for n = 0, count - 1 do
    local key = "key:" .. n
    local val = core.encode(B.value64(n))
    assert(#val == 66 and val:byte(1) == 0xd9 and val:byte(2) == 64,
           "unexpected encoding of value64(" .. n .. ")")
    buf[#buf + 1] = ("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n")
        :format(#key, key, #val, val)
    if #buf == 10000 then
        out:write(table.concat(buf))
        buf = {}
    end
end
out:write(table.concat(buf))
out:flush()
