-- glob_spec.lua -- the Redis glob cases of spec/glob_cases.lua, replayed
-- through a manager's clear() on the memory store and against a real
-- redis-server, so the memory store and Redis provably agree.

local helpers = require "helpers"
local cache = require "cache"
local cases = require "glob_cases"

-- A readable, unique name for a byte string: non-printable bytes as \ddd,
-- long strings cut (with their length, so cut names stay apart).
local function show(s)
    local shown = s:gsub("[^\32-\126]", function(ch) return ("\\%03d"):format(ch:byte()) end)
                   :gsub('"', '\\"')
    if #shown > 24 then
        shown = shown:sub(1, 24) .. ("...(%d bytes)"):format(#s)
    end
    return '"' .. shown .. '"'
end

local function title(case)
    return ("pattern %s %s %s"):format(show(case[1]),
                                       case[3] and "matches" or "does not match",
                                       show(case[2]))
end

describe("clear() on the memory store", function()
    local c

    lazy_setup(function()
        c = cache.new { host = "127.0.0.1", port = 1, max_items = 0, max_memory = 0 }
    end)

    for _, case in ipairs(cases) do
        local pattern, subject, expected = case[1], case[2], case[3]
        it("follows Redis: " .. title(case), function()
            c:clear()
            c:set(subject, true)
            assert.are.equal(expected and 1 or 0, c:clear(pattern))
        end)
    end
end)

describe("glob patterns on a real redis-server #redis", function()
    -- Runs in the server: for each (pattern, subject) pair of hex-encoded
    -- arguments, SET the subject alone in the db, then count the keys that
    -- KEYS and SCAN MATCH return for the pattern. Hex keeps NULs and
    -- invalid UTF-8 intact through the command line.
    local SCRIPT = [[
local function unhex(h)
    return (h:gsub('..', function(x) return string.char(tonumber(x, 16)) end))
end
local out = {}
for i = 1, #ARGV, 2 do
    local pattern, subject = unhex(ARGV[i]), unhex(ARGV[i + 1])
    redis.call('FLUSHDB')
    redis.call('SET', subject, '1')
    local keys = #redis.call('KEYS', pattern)
    local scanned, cursor = 0, '0'
    repeat
        local r = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 100)
        cursor, scanned = r[1], scanned + #r[2]
    until cursor == '0'
    out[#out + 1] = keys .. ':' .. scanned
end
redis.call('FLUSHDB')
return table.concat(out, ',')
]]

    local server, keys_count, scan_count

    local function hex(s)
        return (s:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end))
    end

    lazy_setup(function()
        server = helpers.start_redis()
        local script = server.dir .. "/glob.lua"
        local f = assert(io.open(script, "wb"))
        f:write(SCRIPT)
        f:close()
        local args = {}
        for _, case in ipairs(cases) do
            -- an empty string becomes "" for the shell
            args[#args + 1] = "'" .. hex(case[1]) .. "' '" .. hex(case[2]) .. "'"
        end
        local out = server.cli("--raw --eval " .. script .. " , " .. table.concat(args, " "))
        keys_count, scan_count = {}, {}
        for k, s in out:gmatch("(%d+):(%d+)") do
            keys_count[#keys_count + 1] = tonumber(k)
            scan_count[#scan_count + 1] = tonumber(s)
        end
        assert(#keys_count == #cases, "unexpected redis-cli output: " .. out:sub(1, 200))
    end)

    lazy_teardown(function()
        helpers.stop_redis(server)
    end)

    for i, case in ipairs(cases) do
        it("agrees with KEYS: " .. title(case), function()
            assert.are.equal(case[3] and 1 or 0, keys_count[i])
        end)
    end

    it("gives the same answer with SCAN MATCH as with KEYS for every case", function()
        assert.are.same(keys_count, scan_count)
    end)
end)
