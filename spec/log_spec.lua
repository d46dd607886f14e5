-- log_spec.lua -- what cachert tells, and where: cache.on_log receives
-- (level, message) from the loop; CACHE_LOG_LEVEL keeps error / warn
-- (default) / info / debug / off; a flapping server is warned about at
-- most once per 10 s. Also the engine's own bounds that only the log
-- shows: a key the server refuses to unlink during a replay is dropped
-- and logged, not a reason to stay off Redis; positive timeouts below a
-- millisecond still bound connect(); REDIS_CONNECT_TIMEOUT bounds a
-- connect to a silent server.

local helpers = require "helpers"
local cache = require "cache"
local sched = require "cachert"

local in_task, wait_for = helpers.in_task, helpers.wait_for
local manager, disconnect_all =
    helpers.manager_maker { timeout = 1, command_timeout = 0.2, pool_size = 1 }

-- Collects what cache.on_log receives while fn runs (in a task).
local function logged(fn)
    local got = {}
    cache.on_log(function(level, msg) got[#got + 1] = { level, msg } end)
    local ok, err = pcall(in_task, fn)
    in_task(sched.sleep, 0.05)       -- the loop's next turn delivers the rest
    cache.on_log(nil)
    assert(ok, err)
    return got
end

local function count(got, level, pattern)
    local n = 0
    for _, m in ipairs(got) do
        if m[1] == level and m[2]:find(pattern, 1, true) then n = n + 1 end
    end
    return n
end

local function recovered(c)
    return function() return c:stats().using_redis end
end

describe("cache.on_log #redis", function()
    local server
    setup(function() server = helpers.start_redis() end)
    teardown(function() helpers.stop_redis(server) end)
    after_each(disconnect_all)

    it("receives the outage and the recovery, as warnings", function()
        local c = manager(server)
        local got = logged(function()
            assert(c:connect())
            helpers.kill_redis(server, "STOP")
            c:get("k")                                  -- times out
            helpers.kill_redis(server, "CONT")
            assert(wait_for(recovered(c), 10), "recovered")
        end)
        assert.are.equal(1, count(got, "warn", "redis unavailable"))
        assert.are.equal(1, count(got, "warn", "redis is back"))
        assert.are.equal(0, count(got, "info", ""))     -- warn is the default
    end)

    it("keeps state changes at info and reconnect attempts at debug", function()
        local c = manager(server, { log_level = "debug" })
        local got = logged(function()
            assert(c:connect())
            c:set("x", 1)
            helpers.kill_redis(server, "STOP")
            c:delete("x")                               -- times out: journaled
            sched.sleep(0.5)                            -- attempts time out too
            helpers.kill_redis(server, "CONT")
            assert(wait_for(recovered(c), 10), "recovered")
        end)
        assert.is_true(count(got, "info", "connected to 127.0.0.1:" .. server.port) >= 2)
        assert.are.equal(1, count(got, "info", "outage journal replayed: 1 keys"))
        assert.is_true(count(got, "debug", "reconnect attempt failed") >= 1)
    end)

    it("gets nothing at level off", function()
        local c = manager(server, { log_level = "off" })
        local got = logged(function()
            assert(c:connect())
            helpers.kill_redis(server, "STOP")
            c:get("k")
            helpers.kill_redis(server, "CONT")
            assert(wait_for(recovered(c), 10), "recovered")
        end)
        assert.are.same({}, got)
    end)

    it("warns once about a server that flaps", function()
        local c = manager(server)
        local got = logged(function()
            assert(c:connect())
            for _ = 1, 4 do                     -- four outages in a few seconds
                server.cli("CLIENT PAUSE 400 ALL")
                c:get("k")                      -- times out after 0.2 s
                assert(wait_for(recovered(c), 10), "recovered")
            end
        end)
        assert.are.equal(1, count(got, "warn", "redis unavailable"))
        assert.are.equal(1, count(got, "warn", "redis is back"))
        assert.are.equal(4, c:stats().reconnects)
    end)

    it("rejects a handler that is not callable", function()
        local ok, err = pcall(cache.on_log, 42)
        assert.is_false(ok)
        assert.matches("fn must be callable or nil, got number", err, 1, true)
    end)
end)

describe("a replayed key the ACL user may not touch #redis", function()
    local server
    setup(function()
        server = helpers.start_redis()
        server.cli("ACL SETUSER app on '>pw' '~*' '+@all'")
    end)
    teardown(function() helpers.stop_redis(server) end)
    after_each(disconnect_all)

    it("is dropped and logged; the manager goes back to Redis", function()
        local c = manager(server, { username = "app", password = "pw" })
        local got = logged(function()
            assert(c:connect())
            -- from now on the user may touch a:* keys only
            server.cli("ACL SETUSER app resetkeys '~a:*'")
            helpers.kill_redis(server, "STOP")
            c:get("a:probe")                    -- times out: the outage
            c:set("a:1", 1)                     -- journaled
            c:set("b:1", 1)                     -- journaled, refused on replay
            helpers.kill_redis(server, "CONT")
            assert(wait_for(recovered(c), 10), "back on Redis")
        end)
        local s = c:stats()
        assert.is_true(s.using_redis)
        assert.matches("NOPERM", s.last_error, 1, true)
        assert.are.equal(1, count(got, "warn",
                                  "1 keys of the outage journal could not be invalidated"))
        assert.are.same({ nil, false }, { c:get("a:1") })
    end)
end)

describe("timeouts of a silent server #redis", function()
    local server
    setup(function() server = helpers.start_redis() end)
    teardown(function()
        helpers.kill_redis(server, "CONT")
        helpers.stop_redis(server)
    end)
    after_each(disconnect_all)

    -- connect() to a server that accepts TCP (the kernel does) but never
    -- answers; returns the outcome and how long it took.
    local function connect_silent(opts)
        helpers.kill_redis(server, "STOP")
        local c = manager(server, opts)
        local t0 = sched.now()
        local ok = in_task(function() return c:connect() end)
        local took = sched.now() - t0
        helpers.kill_redis(server, "CONT")
        return ok, took, c
    end

    it("bounds connect() by a timeout below a millisecond", function()
        local ok, took, c = connect_silent { timeout = 0.0004, connect_timeout = 0.0004 }
        assert.is_false(ok)
        assert.is_true(took < 1, took .. " s")
        assert.matches("timed out", c:stats().last_error, 1, true)
    end)

    it("gives up a connect after REDIS_CONNECT_TIMEOUT (2 s), not REDIS_POOL_TIMEOUT", function()
        local ok, took = connect_silent { timeout = 20 }
        assert.is_false(ok)
        assert.is_true(took >= 1.9 and took < 3, took .. " s")
    end)
end)

describe("a .env warning", function()
    it("goes to cache.on_log like the engine's messages", function()
        local dir = helpers.sh("mktemp -d /tmp/cachert-envlog-XXXXXX"):gsub("%s+$", "")
        local f = assert(io.open(dir .. "/.env", "w"))
        f:write('OTHER_TOOL="unterminated\nCACHE_DEFAULT_TTL=60\n')
        f:close()
        f = assert(io.open(dir .. "/script.lua", "w"))
        f:write([[
            local cache = require "cache"
            cache.on_log(function(level, msg) print(level .. " | " .. msg) end)
            print(cache.new():stats().keys)
        ]])
        f:close()
        local out, status = helpers.sh(("cd %s && %s script.lua 2>stderr; cat stderr")
            :format(dir, helpers.cachert_bin()))
        helpers.sh("rm -rf " .. dir)
        assert.are.equal(0, status, out)
        assert.matches("warn | .env:1: ignored OTHER_TOOL", out, 1, true)
        assert.is_nil(out:find("cachert: ", 1, true), out)
    end)
end)

describe("a reply of the wrong type", function()
    local pid, dir
    setup(function()
        dir = helpers.sh("mktemp -d /tmp/cachert-fake-XXXXXX"):gsub("%s+$", "")
        -- a server that answers GET with an integer: no real Redis does
        pid = helpers.start_process(("exec python3 spec/fake_redis.py %s/port ':1'")
            :format(dir), dir .. "/log")
        assert(helpers.wait_for(function()
            return tonumber(helpers.slurp(dir .. "/port")) ~= nil
        end, 10), "the fake server started: " .. helpers.slurp(dir .. "/log"))
    end)
    teardown(function()
        helpers.stop_process(pid)
        if dir and dir:match("^/tmp/cachert%-fake%-") then helpers.sh("rm -rf " .. dir) end
    end)
    after_each(disconnect_all)

    it("is a protocol error in last_error, not an error reply", function()
        local c = manager({ port = tonumber(helpers.slurp(dir .. "/port")) })
        assert.is_true(in_task(function() return c:connect() end))
        assert.are.same({ nil, false }, { in_task(function() return c:get("k") end) })
        local s = c:stats()
        assert.are.equal(1, s.errors)
        assert.are.equal("redis protocol error", s.last_error)
    end)
end)
