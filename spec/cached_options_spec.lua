-- cached_options_spec.lua -- the table form's neg_ttl, stale_ttl and lock
-- (DESIGN.md "More cached options"), on the memory store and on Redis;
-- the lock with several real processes (spec/agent_helpers.lua) calling
-- one missing key at once. Every wait is bounded; servers and agents are
-- stopped by PID in teardown.

local helpers = require "helpers"
local agents = require "agent_helpers"
local cache = require "cache"
local core = require "cache.core"
local sched = require "cachert"

local in_task, wait_for = helpers.in_task, helpers.wait_for

-- Runs the option specs against a manager made by `make()`.
local function option_specs(backend, make)
    describe("neg_ttl (" .. backend .. ")", function()
        it("keeps nil and false results for their own TTL", function()
            in_task(function()
                local c = make()
                local calls = 0
                local answer
                local f = c:cached { ttl = 60, prefix = "neg", neg_ttl = 0.2 } (function()
                    calls = calls + 1
                    return answer
                end)
                answer = nil
                assert.is_nil(f(1))
                assert.is_nil(f(1))
                assert.are.equal(1, calls)
                answer = false
                assert.are.equal(false, f(2))
                assert.are.equal(false, f(2))
                assert.are.equal(2, calls)
                answer = "found"
                assert.are.equal("found", f(3))
                sched.sleep(0.3)
                -- the negatives expired, the positive did not
                assert.are.equal("found", f(1))
                assert.are.equal("found", f(2))
                assert.are.equal(5, calls)
                assert.are.equal("found", f(3))
                assert.are.equal(5, calls)
            end)
        end)

        it("counts a call whose first result is nil as negative, whatever follows",
           function()
            in_task(function()
                local c = make()
                local f = c:cached { ttl = 60, prefix = "neg2", neg_ttl = 0.15 } (function(x)
                    return nil, "no such user " .. x
                end)
                assert.are.same({ nil, "no such user 7" }, { f(7) })
                assert.is_true(select(2, c:get("neg2:7")))
                sched.sleep(0.25)
                assert.are.same({ nil, false }, { c:get("neg2:7") })
            end)
        end)

        it("stores no nil result with neg_ttl = false", function()
            in_task(function()
                local c = make()
                local calls = 0
                local f = c:cached { ttl = 60, prefix = "neg3", neg_ttl = false } (function(x)
                    calls = calls + 1
                    if x == 0 then return nil end
                    return x
                end)
                f(0); f(0)
                assert.are.equal(2, calls)
                assert.are.same({ nil, false }, { c:get("neg3:0") })
                f(1); f(1)
                assert.are.equal(3, calls)
            end)
        end)
    end)

    describe("stale_ttl (" .. backend .. ")", function()
        it("returns the old value at once after ttl while one task recomputes", function()
            in_task(function()
                local c = make()
                local calls, version = 0, 1
                local f = c:cached { ttl = 0.2, stale_ttl = 5, prefix = "swr" } (function(x)
                    calls = calls + 1
                    if calls > 1 then sched.sleep(0.2) end   -- a slow recompute
                    return x .. ":v" .. version
                end)
                assert.are.equal("a:v1", f("a"))
                version = 2
                sched.sleep(0.25)                -- past ttl, inside the window
                local t0 = sched.now()
                local got = {}
                local tasks = {}
                for i = 1, 20 do
                    tasks[i] = sched.spawn(function() got[i] = f("a") end)
                end
                for i = 1, 20 do tasks[i]:join() end
                assert.is_true(sched.now() - t0 < 0.15, "callers waited for fn")
                for i = 1, 20 do assert.are.equal("a:v1", got[i]) end
                assert.is_true(c:stats().stale_served >= 20)
                assert.is_true(wait_for(function() return f("a") == "a:v2" end, 3))
                assert.are.equal(2, calls)      -- exactly one recompute
            end)
        end)

        it("serves the stale value when fn raises in the window, counts and logs it",
           function()
            in_task(function()
                local c = make()
                local logged = {}
                cache.on_log(function(level, msg) logged[#logged + 1] = level .. ": " .. msg end)
                local fail = false
                local f = c:cached { ttl = 0.2, stale_ttl = 5, prefix = "soe" } (function()
                    if fail then error("backend down") end
                    return "good"
                end)
                local ok, err = pcall(function()
                    assert.are.equal("good", f())
                    fail = true
                    sched.sleep(0.25)
                    local before = c:stats().stale_served
                    for _ = 1, 5 do
                        assert.are.equal("good", f())
                        sched.sleep(0.02)
                    end
                    assert.is_true(c:stats().stale_served >= before + 5)
                    assert.is_true(wait_for(function()
                        for _, line in ipairs(logged) do
                            if line:match("backend down") then return true end
                        end
                    end, 2))
                end)
                cache.on_log(nil)
                assert(ok, err)
            end)
        end)

        it("recomputes in the caller once ttl + stale_ttl have passed", function()
            in_task(function()
                local c = make()
                local calls = 0
                local f = c:cached { ttl = 0.1, stale_ttl = 0.1, prefix = "gone" } (function()
                    calls = calls + 1
                    return calls
                end)
                assert.are.equal(1, f())
                sched.sleep(0.3)
                assert.are.equal(2, f())           -- not stale: gone
                assert.are.equal(0, c:stats().stale_served)
            end)
        end)
    end)

    describe("lock (" .. backend .. ")", function()
        it("runs fn once for concurrent callers of this process", function()
            in_task(function()
                local c = make()
                local calls = 0
                local f = c:cached { ttl = 60, prefix = "lk", lock = 2 } (function(x)
                    calls = calls + 1
                    sched.sleep(0.05)
                    return { x = x }
                end)
                local tasks = {}
                for i = 1, 10 do tasks[i] = sched.spawn(function() return f(1) end) end
                for i = 1, 10 do assert.are.same({ x = 1 }, tasks[i]:join()) end
                assert.are.equal(1, calls)
            end)
        end)

        it("raises for a bad lock option", function()
            local c = make()
            assert.has_error(function() c:cached { lock = -1 } end,
                             "lock must be true, false or a number of seconds > 0, got -1")
            assert.has_error(function() c:cached { lock = "yes" } end,
                             "lock must be true, false or a number of seconds > 0, got string")
            assert.has_error(function() c:cached { neg_ttl = -1 } end,
                             "neg_ttl: ttl must be >= 0 (or false)")
            assert.has_error(function() c:cached { stale_ttl = "x" } end,
                             "stale_ttl: ttl must be a number, got string")
        end)
    end)
end

describe("cached options on the memory store", function()
    option_specs("memory", function() return cache.new { namespace = "mem:" } end)
end)

describe("cached options on Redis #redis", function()
    local server
    local made = {}

    setup(function()
        server = helpers.start_redis(nil, { standalone = true })
    end)

    teardown(function()
        for _, m in ipairs(made) do pcall(m.disconnect, m) end
        helpers.stop_redis(server)
    end)

    local function make()
        local m = cache.new { host = "127.0.0.1", port = server.port, namespace = "opt:" }
        made[#made + 1] = m
        assert(in_task(function() return m:connect() end))
        return m
    end

    option_specs("redis", make)

    it("stores with ttl + stale_ttl, and negatives with neg_ttl + stale_ttl", function()
        in_task(function()
            local c = make()
            local f = c:cached { ttl = 10, stale_ttl = 20, neg_ttl = 3, prefix = "ttls" } (
                function(x) if x == 0 then return nil end return x end)
            f(1); f(0)
            local pos = tonumber(server.cli("PTTL opt:ttls:1"))
            local neg = tonumber(server.cli("PTTL opt:ttls:0"))
            assert.is_true(pos > 29000 and pos <= 30000, pos)
            assert.is_true(neg > 22000 and neg <= 23000, neg)
        end)
    end)

    it("releases only its own lock", function()
        in_task(function()
            local c = make()
            local function done(...) return cache._finish(c, ...) end
            assert.is_true(done(core.lock(c.engine, "opt:L", "mine", 5000)))
            assert.is_false(done(core.lock(c.engine, "opt:L", "theirs", 5000)))
            assert.is_false(done(core.unlock(c.engine, "opt:L", "theirs")))
            assert.are.equal("1\n", server.cli("EXISTS opt:L"))
            assert.is_true(done(core.unlock(c.engine, "opt:L", "mine")))
            assert.are.equal("0\n", server.cli("EXISTS opt:L"))
            local ms = tonumber(server.cli("PTTL opt:L"))
            assert.are.equal(-2, ms)
        end)
    end)

    describe("with several processes calling one missing key at once", function()
        local procs = {}
        local dir

        setup(function()
            dir = helpers.sh("mktemp -d /tmp/cachert-lock-XXXXXX"):gsub("%s+$", "")
            for i = 1, 3 do
                procs[i] = agents.start()
                assert(procs[i]:call(([[
                    c = cache.new { host = "127.0.0.1", port = %d, namespace = "opt:" }
                    calls_file = %q
                    f = c:cached { ttl = 60, prefix = "fleet", lock = 3 } (function(x)
                        local out = assert(io.open(calls_file, "a"))
                        out:write("computed\n")
                        out:close()
                        cachert.sleep(0.3)
                        return "value:" .. x
                    end)
                    return c:connect()]]):format(server.port, dir .. "/calls")))
            end
        end)

        teardown(function()
            for _, a in ipairs(procs) do a:stop() end
            if dir and dir:match("^/tmp/cachert%-lock%-") then helpers.sh("rm -rf " .. dir) end
        end)

        local function count_calls()
            return select(2, helpers.slurp(dir .. "/calls"):gsub("computed", ""))
        end

        it("runs fn once; the others get the value when it lands", function()
            in_task(function()
                local at = sched.now() + 0.3
                for _, a in ipairs(procs) do
                    a:send(([[
                        while cachert.now() < %.6f do cachert.sleep(0.001) end
                        return f(42)]]):format(at))
                end
                for _, a in ipairs(procs) do
                    assert.are.equal("value:42", a:result(10))
                end
                assert.are.equal(1, count_calls())
                assert.are.equal("0\n", server.cli("EXISTS opt:cachert:lock:fleet:42"))
            end)
        end)

        it("takes over a lock whose owner died once it expires", function()
            in_task(function()
                local before = count_calls()
                -- the first process takes the lock and is killed mid-fn
                procs[1]:send([[return f(7)]])
                assert.is_true(wait_for(function()
                    return server.cli("EXISTS opt:cachert:lock:fleet:7") == "1\n"
                end, 5))
                helpers.stop_process(procs[1].pid, 0)
                local t0 = sched.now()
                procs[2]:send([[return f(7)]])
                assert.are.equal("value:7", procs[2]:result(10))
                local waited = sched.now() - t0
                -- the lock (3 s) had to expire first; then one more compute
                assert.is_true(waited > 1.5, waited)
                assert.are.equal(before + 2, count_calls())
            end)
        end)
    end)
end)
