-- W3 keyspace for cachert: RESP commands `SET key:<n> <encoded value64(n)>`,
-- n = 0..count-1, on stdout, for `redis-cli --pipe` (as the anchors load theirs
-- with ../shared/bench/lib/load_keys.py, but with values in cachert's format).
-- Usage: build/cachert bench/w3_load.lua [count] | redis-cli -p PORT --pipe
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
