-- redis_refusals_spec.lua -- a Redis that answers but says no: a value
-- over the size limit, a read-only replica (a demoted primary), an ACL
-- user without a command cachert needs, at connect and at run time. None
-- of them may let a manager serve an old value or take Redis away from
-- the other callers; last_error carries the server's text. Also: a clear
-- of a literal pattern is one UNLINK, and the memory store's sweep timer
-- sleeps while Redis serves. Each describe starts its own servers.

local helpers = require "helpers"
local cache = require "cache"

local in_task = helpers.in_task

local manager, disconnect_all =
    helpers.manager_maker { timeout = 2, command_timeout = 1, pool_size = 2 }

local function exists(server, key)
    return server.cli(("--raw EXISTS '%s'"):format(key)) == "1\n"
end

local function calls(server, cmd)
    local info = server.cli("INFO commandstats")
    local line = info:match("cmdstat_" .. cmd .. ":([^\r\n]*)")
    return line and tonumber(line:match("calls=(%d+)")) or 0
end

-- Waits (in a task) until `c` is back on Redis, at most `seconds`.
local function back_on_redis(c, seconds)
    return in_task(helpers.wait_for, function()
        return c:stats().using_redis
    end, seconds)
end

describe("a value over the size limit #redis", function()
    local server
    setup(function() server = helpers.start_redis() end)
    teardown(function() helpers.stop_redis(server) end)
    after_each(disconnect_all)

    it("is refused before it is sent, naming its size and the limit, without an outage", function()
        local c = manager(server)
        assert.is_true(c:connect())
        assert.is_true(c:set("big", "old"))
        assert.is_true(c:set("other", "kept"))
        -- 512 MiB of bytes encode to 512 MiB + 5: one past Redis's limit
        local huge = string.rep("x", 512 * 1024 * 1024)
        local ok, err = c:set("big", huge)
        huge = nil -- luacheck: ignore
        collectgarbage()
        assert.is_false(ok)
        -- the key's 3 bytes count too
        assert.matches("536870920 bytes", err, 1, true)
        assert.matches("> 536870912", err, 1, true)
        assert.matches("CACHE_MAX_VALUE_BYTES", err, 1, true)
        local s = c:stats()
        assert.is_true(s.using_redis)
        assert.are.equal(0, s.reconnects)
        assert.are.equal(1, s.errors)
        -- like the memory store, a refused set leaves no old value behind
        assert.are.same({ nil, false }, { c:get("big") })
        assert.is_false(exists(server, "big"))
        assert.are.equal("kept", (c:get("other")))
    end)

    it("in mset, is refused alone: the other pairs are stored (CACHE_MAX_VALUE_BYTES)", function()
        local c = manager(server, { max_value_bytes = 100 })
        assert.is_true(c:connect())
        local ok, err = c:mset { a = 1, big = string.rep("x", 200), c = 3 }
        assert.is_false(ok)
        assert.matches("value is larger than the value size limit", err, 1, true)
        assert.matches("(key big)", err, 1, true)
        assert.are.same({ 1, 3 }, { c:get("a"), (c:get("c")) })
        assert.is_true(exists(server, "a") and exists(server, "c"))
        assert.is_false(exists(server, "big"))
        assert.is_true(c:stats().using_redis)
    end)

    it("is refused the same way on the memory store", function()
        local c = cache.new { max_memory = 0 }
        assert.is_true(c:set("big", "old"))
        local ok, err = c:set("big", string.rep("x", 512 * 1024 * 1024))
        collectgarbage()
        assert.is_false(ok)
        assert.matches("536870920 bytes", err, 1, true)
        assert.are.same({ nil, false }, { c:get("big") })
    end)
end)

describe("a clear of a pattern that matches one key only #redis", function()
    local server
    setup(function() server = helpers.start_redis() end)
    teardown(function() helpers.stop_redis(server) end)
    after_each(disconnect_all)

    it("is one UNLINK, no SCAN", function()
        local c = manager(server, { namespace = "n[1]:" })
        assert.is_true(c:connect())
        c:mset { ["key:123"] = 1, ["key:1234"] = 2, ["a*b"] = 3, ["axb"] = 4 }
        local scans = calls(server, "scan")
        assert.are.equal(1, c:clear("key:123"))
        assert.are.equal(1, c:clear("a\\*b"))       -- escaped: only "a*b"
        assert.are.equal(0, c:clear("absent"))
        assert.are.equal(scans, calls(server, "scan"))
        assert.is_false(exists(server, "n[1]:key:123"))
        assert.is_false(exists(server, "n[1]:a*b"))
        assert.are.same({ 2, 4 }, { c:get("key:1234"), (c:get("axb")) })
        assert.are.equal(2, c:stats().deletes)
    end)
end)

describe("a read-only replica #redis", function()
    local primary, replica
    setup(function()
        primary = helpers.start_redis()
        replica = helpers.start_redis()
        primary.cli("SET k old")
        replica.cli("REPLICAOF 127.0.0.1 " .. primary.port)
        assert.is_true(in_task(helpers.wait_for, function()
            return exists(replica, "k")
        end, 10), "the replica synced")
    end)
    teardown(function()
        helpers.stop_redis(replica)
        helpers.stop_redis(primary)
    end)
    after_each(disconnect_all)

    it("is found at connect: the manager stays on memory and says why", function()
        local c = manager(replica)
        assert.is_false(c:connect())
        local s = c:stats()
        assert.is_false(s.using_redis)
        assert.matches("READONLY", s.last_error, 1, true)
        -- the replica's old value is not served
        assert.are.same({ nil, false }, { c:get("k") })
    end)
end)

describe("a primary demoted while in use #redis", function()
    local server, other, c
    local r = {}
    setup(function()
        server = helpers.start_redis()
        other = helpers.start_redis()
        c = manager(server)
        r.connected = c:connect()
        c:mset { k = "old", p1 = "old", keep = "old" }
        local o = manager(other)
        assert(o:connect())
        o:mset { k = "old", p1 = "old", keep = "old" }
        -- demoted: it now replicates a server holding the same data
        server.cli("REPLICAOF 127.0.0.1 " .. other.port)
        in_task(helpers.wait_for, function()
            return server.cli("ROLE"):match("connected") ~= nil
        end, 10)
        r.deleted = { c:delete("k") }
        r.cleared = c:clear("p*")
        r.get_k = { c:get("k") }
        r.get_p1 = { c:get("p1") }
        r.stats = c:stats()
        r.k_still_in_redis = exists(server, "k")
        -- promoted again: the manager comes back and forgets k, p1 there too
        server.cli("REPLICAOF NO ONE")
        r.recovered = back_on_redis(c, 15)
    end)
    teardown(function()
        disconnect_all()
        helpers.stop_redis(other)
        helpers.stop_redis(server)
    end)

    it("counts READONLY as a lost connection: memory serves", function()
        assert.is_true(r.connected)
        assert.is_false(r.stats.using_redis)
        assert.matches("READONLY", r.stats.last_error, 1, true)
        assert.is_true(r.k_still_in_redis, "the delete could not reach Redis")
    end)

    it("never serves the old value of a key it deleted or cleared", function()
        assert.are.same({ nil, false }, r.get_k)
        assert.are.same({ nil, false }, r.get_p1)
    end)

    it("recovers once the server is a primary again and invalidates there", function()
        assert.is_true(r.recovered)
        assert.is_false(exists(server, "k"))
        assert.is_false(exists(server, "p1"))
        assert.are.same({ nil, false }, { c:get("k") })
        assert.are.equal("old", (c:get("keep")))
    end)
end)

describe("an ACL user without a command cachert needs #redis", function()
    local server
    setup(function()
        server = helpers.start_redis()
        server.cli("ACL SETUSER nounlink on '>pw' '~*' '+@all' '-unlink'")
        server.cli("ACL SETUSER noscan on '>pw' '~*' '+@all' '-scan'")
        server.cli("ACL SETUSER full on '>pw' '~*' '+@all'")
        server.cli("SET k old")
    end)
    teardown(function() helpers.stop_redis(server) end)
    after_each(disconnect_all)

    for _, case in ipairs { { "nounlink", "unlink" }, { "noscan", "scan" } } do
        it("is found at connect, naming the missing command (" .. case[2] .. ")", function()
            local c = manager(server, { username = case[1], password = "pw" })
            assert.is_false(c:connect())
            local s = c:stats()
            assert.is_false(s.using_redis)
            assert.matches("NOPERM", s.last_error, 1, true)
            assert.matches("'" .. case[2] .. "'", s.last_error, 1, true)
            assert.are.same({ nil, false }, { c:get("k") })
        end)
    end

    it("refused at run time, never lets the old value be served", function()
        local c = manager(server, { username = "full", password = "pw" })
        assert.is_true(c:connect())
        c:mset { d = "old", p1 = "old", p2 = "old" }
        server.cli("ACL SETUSER full -unlink -scan")
        local deleted = c:delete("d")
        local cleared = c:clear("p*")
        local s = c:stats()
        assert.is_false(s.using_redis)
        assert.matches("NOPERM", s.last_error, 1, true)
        assert.is_true(exists(server, "d"))
        assert.are.same({ nil, false }, { c:get("d") })
        assert.are.same({ nil, false }, { c:get("p1") })
        assert.is_false(deleted)
        assert.are.equal(0, cleared)
        -- allowed again: the replay removes them in Redis too
        server.cli("ACL SETUSER full +unlink +scan")
        assert.is_true(back_on_redis(c, 15))
        assert.is_false(exists(server, "d"))
        assert.is_false(exists(server, "p1"))
        assert.is_false(exists(server, "p2"))
    end)
end)

describe("the memory store's sweep timer #redis", function()
    local server
    setup(function() server = helpers.start_redis() end)
    teardown(function() helpers.stop_redis(server) end)

    -- A fresh cachert process sleeps 1 s with one manager, connected to
    -- `port` or not, and prints how often its loop thread blocked (once
    -- per wake-up): the sweep timer ticks every 100 ms.
    local function wakeups(port)
        local script = os.tmpname()
        local f = assert(io.open(script, "w"))
        f:write(([[
            local cache, sched = require "cache", require "cachert"
            local c = cache.new { host = "127.0.0.1", port = %d }
            if %s then assert(c:connect(), "connected") end
            c:get("k")
            local function switches()
                local st = assert(io.open("/proc/self/status")):read("*a")
                return tonumber(st:match("\nvoluntary_ctxt_switches:%%s*(%%d+)"))
            end
            local before = switches()
            sched.sleep(1)
            print(switches() - before)
        ]]):format(port or 1, port and "true" or "false"))
        f:close()
        local out = helpers.sh(helpers.cachert_bin() .. " " .. script)
        os.remove(script)
        return assert(tonumber(out:match("^(%d+)")), out)
    end

    it("wakes the loop every 100 ms on the memory store (the control)", function()
        local n = wakeups(nil)
        assert.is_true(n >= 8, n .. " wake-ups in 1 s")
    end)

    it("does not run while Redis serves", function()
        local n = wakeups(server.port)
        assert.is_true(n <= 4, n .. " wake-ups in 1 s")
    end)
end)
