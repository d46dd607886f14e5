-- scan_spec.lua -- c:scan(pattern, cursor, count): one step of a key
-- listing, on the memory store (every matching key at once) and on a
-- real redis-server (SCAN steps until the cursor is "0" again), the
-- namespace applied to the pattern and removed from the keys; and the
-- scan step that unlinks what it found (the `cachert clear` command's).

local helpers = require "helpers"
local cache = require "cache"

local in_task = helpers.in_task

local function sorted(t)
    table.sort(t)
    return t
end

-- Every key of a listing, following the cursor; the number of steps.
local function list_all(c, pattern, count)
    local all, cursor, steps = {}, "0", 0
    repeat
        local next_cursor, keys = c:scan(pattern, cursor, count)
        assert(next_cursor, keys)
        for _, k in ipairs(keys) do all[#all + 1] = k end
        cursor, steps = next_cursor, steps + 1
    until cursor == "0" or steps > 10000
    return sorted(all), steps
end

describe("cache scan", function()
    describe("on the memory store", function()
        it("lists every matching key in one step, namespace removed", function()
            local c = cache.new { namespace = "ns:" }
            for _, k in ipairs { "a1", "a2", "b1", "a*" } do c:set(k, 1) end
            local other = cache.new()
            other:set("a9", 1)                       -- another manager's store
            local cursor, keys = c:scan("a?")
            assert.are.equal("0", cursor)
            assert.are.same({ "a*", "a1", "a2" }, sorted(keys))
        end)

        it("takes the namespace's glob characters literally", function()
            local c = cache.new { namespace = "n[1]:" }
            c:set("k", 1)
            assert.are.same({ "k" }, select(2, c:scan("*")))
        end)

        it("does not list expired keys", function()
            local c = cache.new()
            c:set("gone", 1, 0.001)
            c:set("kept", 1)
            in_task(function() require("cachert").sleep(0.01) end)
            assert.are.same({ "kept" }, select(2, c:scan("*")))
        end)

        it("is a module function on the default manager", function()
            cache.set("scan_spec:default", 1)
            assert.are.same({ "scan_spec:default" }, select(2, cache.scan("scan_spec:*")))
        end)

        it("rejects bad arguments", function()
            local c = cache.new()
            assert.has_error(function() c:scan(nil) end, "pattern must be a string, got nil")
            assert.has_error(function() c:scan("*", 5) end, "cursor must be a string, got number")
            assert.has_error(function() c:scan("*", "x") end,
                             'cursor must be "0" or a cursor scan returned, got "x"')
            assert.has_error(function() c:scan("*", "0", 0) end,
                             "count must be an integer from 1 to 1e9, got 0")
        end)
    end)

    describe("on Redis #redis", function()
        local server, url

        setup(function()
            server = helpers.start_redis(nil, { standalone = true })
            url = "redis://127.0.0.1:" .. server.port
        end)

        teardown(function()
            helpers.stop_redis(server)
        end)

        before_each(function()
            server.cli("FLUSHALL")
        end)

        it("walks the whole keyspace in steps, namespace applied", function()
            in_task(function()
                local c = cache.new { url = url, namespace = "sp:", log_level = "error" }
                assert.is_true(c:connect())
                local map, want = {}, {}
                for i = 1, 2500 do
                    map["k" .. i] = i
                    want[i] = "k" .. i
                end
                map["x"] = 1
                assert.is_true(c:mset(map))
                server.cli("SET other:k1 1")           -- outside the namespace
                local keys, steps = list_all(c, "k*", 100)
                assert.are.same(sorted(want), keys)
                assert.is_true(steps > 5)                 -- really stepped
                c:disconnect()
            end)
        end)

        it("unlinks what a step finds with the clear step", function()
            in_task(function()
                local c = cache.new { url = url, namespace = "sp:", log_level = "error" }
                assert.is_true(c:connect())
                local map = {}
                for i = 1, 3000 do map["d" .. i] = i end
                map.keep = 1
                assert.is_true(c:mset(map))
                local cursor, found, removed = "0", 0, 0
                repeat
                    local next_cursor, keys, unlinked, where =
                        cache._inspect.scan(c, "d*", cursor, 500, true)
                    assert.are.equal("redis", where)
                    found, removed = found + #keys, removed + unlinked
                    cursor = next_cursor
                until cursor == "0"
                assert.are.equal(3000, removed)
                assert.are.equal(3000, found)
                assert.are.equal("1", (server.cli("DBSIZE"):match("%d+")))
                assert.are.equal(3000, c:stats().deletes)
                c:disconnect()
            end)
        end)

        it("reports a refused SCAN as a failure, not as memory keys", function()
            in_task(function()
                server.cli("ACL SETUSER noscan on '>pw' '~*' '+@all'")
                local c = cache.new { url = "redis://noscan:pw@127.0.0.1:" .. server.port,
                                      log_level = "error" }
                assert.is_true(c:connect())
                c:set("k", 1)
                -- revoked after the connect (whose probe needs SCAN)
                server.cli("ACL SETUSER noscan -scan")
                local cursor, err = c:scan("*")
                assert.is_nil(cursor)
                assert.matches("NOPERM", err)
                assert.are.equal(1, c:stats().errors)
                c:disconnect()
                server.cli("ACL DELUSER noscan")
            end)
        end)
    end)
end)
