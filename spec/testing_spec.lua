-- spec/testing_spec.lua -- cache.testing: isolated memory-only managers,
-- the default manager swapped per test, and the clock that advance()
-- moves instead of sleeping. Runs under luajit and under cachert.

local helpers = require "helpers"
local cache = require "cache"
local testing = require "cache.testing"
local sched = require "cachert"
local ffi = require "ffi"

local in_task, wait_for = helpers.in_task, helpers.wait_for

pcall(ffi.cdef, [[
int setenv(const char *name, const char *value, int overwrite);
int unsetenv(const char *name);
char *getcwd(char *buf, size_t size);
int chdir(const char *path);
]])

-- The message of the error fn raises, after checking that its position
-- names this file: misuse is reported at the caller's line.
local function caller_error(fn)
    local ok, err = pcall(fn)
    assert.is_false(ok)
    local where, msg = tostring(err):match("^(.-):%d+: (.*)$")
    assert.are.equal("testing_spec.lua", where and where:match("[^/]*$"))
    return msg
end

-- Runs fn with the variables of `vars` set in the process environment
-- (os.getenv reads it), then unsets them, also when fn raises.
local function with_env(vars, fn)
    for k, v in pairs(vars) do ffi.C.setenv(k, v, 1) end
    local ok, err = pcall(fn)
    for k in pairs(vars) do ffi.C.unsetenv(k) end
    if not ok then error(err, 0) end
end

-- Redis's count of connections it accepted (each redis-cli call is one).
local function connections(server)
    return tonumber(server.cli("info stats"):match("total_connections_received:(%d+)"))
end

describe("cache.testing.new", function()
    it("makes memory-only managers, each with its own store and counters at 0", function()
        local a, b = testing.new(), testing.new()
        assert.are.equal("cache.Manager (memory)", tostring(a))
        assert.is_true(a:set("k", "a"))
        assert.are.equal("a", a:get("k"))
        assert.is_nil(b:get("k"))
        local s = b:stats()
        assert.are.equal(0, s.hits)
        assert.are.equal(1, s.misses)
        assert.are.equal(0, s.sets)
        assert.are.equal("memory", s.backend)
        assert.is_false(a:connect())
        assert.are.equal("memory", a:stats().backend)
    end)

    it("takes the memory-store options", function()
        local c = testing.new { namespace = "app:", default_ttl = 5, max_items = 2 }
        assert.are.equal("app:", c:stats().namespace)
        c:set("a", 1); c:set("b", 2); c:set("c", 3)
        assert.are.equal(2, c:stats().keys)
        testing.advance(5.1)
        assert.is_false(c:exists("c"))      -- default_ttl = 5
    end)

    it("ignores REDIS_URL and CACHE_* in the environment: no connection is made", function()
        local server = helpers.start_redis("", { standalone = true })
        finally(function() helpers.stop_redis(server) end)
        with_env({ REDIS_URL = "redis://127.0.0.1:" .. server.port,
                   CACHE_NAMESPACE = "fromenv:", CACHE_DEFAULT_TTL = "1" }, function()
            -- the variables are seen: a plain manager would use that server
            assert.are.equal("fromenv:", cache.new():stats().namespace)
            local before = connections(server)
            in_task(function()
                local c = testing.new()
                local t0 = sched.now()
                assert.is_false(c:connect())
                assert.is_true(sched.now() - t0 < 0.05)
                assert.are.equal("", c:stats().namespace)
                c:set("k", "v")
                testing.advance(2)        -- CACHE_DEFAULT_TTL=1 was not used
                assert.are.equal("v", c:get("k"))
                testing.isolate(function(m)
                    assert.is_false(cache.connect())
                    assert.is_true(cache.set("k2", "v2"))
                    assert.are.equal("v2", cache.with(function(w)
                        assert.are.equal(m, w)
                        return w:get("k2")
                    end))
                end)
                sched.sleep(0.1)          -- a connection would be made by now
            end)
            -- only this INFO connected since the first one
            assert.are.equal(before + 1, connections(server))
            assert.are.equal("0", server.cli("dbsize"):match("%d+"))
        end)
    end)

    it("ignores the .env file of the working directory", function()
        local dir = helpers.sh("mktemp -d /tmp/cachert-testing-XXXXXX"):gsub("%s+$", "")
        local f = assert(io.open(dir .. "/.env", "w"))
        f:write("CACHE_NAMESPACE=dotenv:\nREDIS_URL=redis://127.0.0.1:1\n")
        f:close()
        local buf = ffi.new("char[4096]")
        local cwd = ffi.string(assert(ffi.C.getcwd(buf, 4096)))
        local plain, test
        assert.are.equal(0, ffi.C.chdir(dir))
        local ok, err = pcall(function()
            plain = cache.new():stats().namespace
            test = testing.new():stats().namespace
        end)
        ffi.C.chdir(cwd)
        helpers.sh("rm -rf " .. dir)
        assert(ok, err)
        assert.are.equal("dotenv:", plain)
        assert.are.equal("", test)
    end)

    it("rejects bad options at the caller's line", function()
        assert.are.equal("cache.testing.new: options must be a table or nil, got string",
                         caller_error(function() testing.new("x") end))
        for _, name in ipairs { "url", "host", "port", "near", "cluster", "sentinels",
                                "journal_max_keys", "bogus" } do
            assert.matches("option '" .. name .. "' is not for a test manager, which is "
                           .. "memory only %(options: namespace, default_ttl,",
                           caller_error(function() testing.new { [name] = 1 } end))
        end
        assert.matches("default_ttl", caller_error(function()
            testing.new { default_ttl = -1 }
        end))
        assert.matches("^cache.testing.setup: option 'url'", caller_error(function()
            testing.setup { url = "redis://x" }
        end))
        assert.matches("^cache.testing.isolate: option 'tls'", caller_error(function()
            testing.isolate(function() end, { tls = true })
        end))
    end)
end)

describe("cache.testing.setup / teardown", function()
    local first_test_manager

    before_each(function() testing.setup() end)
    after_each(function() testing.teardown() end)

    it("gives each test a fresh default manager (1: writes)", function()
        first_test_manager = cache.default()
        cache.set("left:behind", "x")
        local f = cache.cached(300, "lookup")(function(id) return "v" .. id end)
        assert.are.equal("v1", f(1))
        assert.are.equal(2, cache.stats().sets)
    end)

    it("gives each test a fresh default manager (2: nothing is left)", function()
        -- runs after test 1 (busted keeps the order): its keys are gone
        assert.is_not_nil(first_test_manager)
        assert.are_not.equal(first_test_manager, cache.default())
        assert.is_nil(cache.get("left:behind"))
        local calls = 0
        local f = cache.cached(300, "lookup")(function(id)
            calls = calls + 1
            return "v" .. id
        end)
        assert.are.equal("v1", f(1))
        assert.are.equal(1, calls)
        local s = cache.stats()
        assert.are.equal(1, s.sets)
        assert.are.equal(0, s.hits)
        assert.are.equal(1, s.keys)
    end)

    it("covers code that cached at module level through the default manager", function()
        local calls = 0
        -- made once, as a module would, before this test's setup of it
        local lookup = cache.cached(60, "mod")(function(x)
            calls = calls + 1
            return x * 2
        end)
        assert.are.equal(4, lookup(2))
        testing.teardown()
        testing.setup()           -- another test: a fresh default
        assert.are.equal(4, lookup(2))
        assert.are.equal(2, calls)
        assert.are.equal(4, lookup(2))
        assert.are.equal(2, calls)
    end)
end)

describe("cache.testing: restoring the default manager", function()
    it("teardown restores the previous default, nested calls in order", function()
        local outer = cache.default()
        outer:set("outer", 1)
        local a = testing.setup()
        assert.are.equal(a, cache.default())
        assert.is_nil(cache.get("outer"))
        local b = testing.setup()
        assert.are.equal(b, cache.default())
        testing.teardown()
        assert.are.equal(a, cache.default())
        testing.teardown()
        assert.are.equal(outer, cache.default())
        assert.are.equal(1, cache.get("outer"))
    end)

    it("isolate restores it after fn returns or raises", function()
        local outer = cache.default()
        local seen
        local r1, r2 = testing.isolate(function(m)
            seen = m
            assert.are.equal(m, cache.default())
            return "a", "b"
        end)
        assert.are.equal("a", r1)
        assert.are.equal("b", r2)
        assert.are_not.equal(outer, seen)
        assert.are.equal(outer, cache.default())
        local ok, err = pcall(testing.isolate, function()
            testing.setup()        -- left behind: isolate undoes it too
            error("boom", 0)
        end)
        assert.is_false(ok)
        assert.are.equal("boom", err)
        assert.are.equal(outer, cache.default())
        assert.are.equal("", testing.isolate(function(m) return m:stats().namespace end,
                                             { default_ttl = 1 }))
    end)

    it("teardown without setup raises", function()
        assert.are.equal("cache.testing.teardown: no setup() to undo",
                         caller_error(function() testing.teardown() end))
        assert.are.equal("cache.testing.isolate: fn must be callable, got nil",
                         caller_error(function() testing.isolate() end))
    end)
end)

describe("cache.testing.advance", function()
    before_each(function() testing.setup() end)
    after_each(function() testing.teardown() end)

    it("expires a 300 s TTL after 301 s, not after 299 s, without sleeping", function()
        local t0 = sched.now()
        cache.set("k", "v", 300)
        testing.advance(299)
        assert.are.equal("v", cache.get("k"))
        assert.is_true(cache.exists("k"))
        testing.advance(2)
        assert.is_nil(cache.get("k"))
        assert.is_false(cache.exists("k"))
        assert.are.equal(1, cache.stats().expired)
        -- and in one step
        cache.set("k", "v", 300)
        testing.advance(301)
        assert.is_false(cache.exists("k"))
        assert.is_true(sched.now() - t0 < 1)
    end)

    it("leaves expired keys out of scan and clear", function()
        cache.set("a", 1, 10)
        cache.set("b", 2, 0)
        testing.advance(20)
        local cursor, keys = cache.scan("*")
        assert.are.equal("0", cursor)
        assert.are.same({ "b" }, keys)
        assert.are.equal(1, cache.clear("*"))
    end)

    it("counts TTLs set after an advance from the advanced clock", function()
        testing.advance(1000)
        cache.set("k", "v", 10)
        testing.advance(9.9)
        assert.are.equal("v", cache.get("k"))
        testing.advance(0.1)
        assert.is_nil(cache.get("k"))
    end)

    it("moves every live manager's clock, cache.new's too", function()
        local plain = cache.new()            -- not connected: memory store
        local other = testing.new()
        plain:set("k", 1, 60)
        other:set("k", 1, 60)
        cache.set("forever", 1, 0)
        testing.advance(61)
        assert.is_false(plain:exists("k"))
        assert.is_false(other:exists("k"))
        assert.is_true(cache.exists("forever"))
    end)

    it("returns testing.now(): the monotonic clock plus what was advanced", function()
        local before, added = testing.now(), testing.advanced()
        local now = testing.advance(10)
        assert.are.equal(added + 10, testing.advanced())
        assert.is_true(now >= before + 10)
        assert.is_true(now < before + 11)
        assert.is_true(now - testing.advanced() <= sched.now())
        assert.is_true(testing.now() >= now)  -- real time flows on top
    end)

    it("rounds to the millisecond", function()
        local function ms() return math.floor(testing.advanced() * 1000 + 0.5) end
        local added = ms()
        testing.advance(0.0004)
        assert.are.equal(added, ms())
        testing.advance(0.0006)
        assert.are.equal(added + 1, ms())
        testing.advance(0)
        assert.are.equal(added + 1, ms())
        cache.set("k", "v", 0.002)
        testing.advance(0.0016)              -- 2 ms in all: expired
        assert.is_false(cache.exists("k"))
    end)

    it("rejects what would not move the clock forward, at the caller's line", function()
        local added = testing.advanced()
        assert.are.equal("cache.testing.advance: seconds must be a number, got string",
                         caller_error(function() testing.advance("1") end))
        assert.are.equal("cache.testing.advance: seconds must be a number, got nil",
                         caller_error(function() testing.advance() end))
        assert.are.equal("cache.testing.advance: seconds must be a number, got nan",
                         caller_error(function() testing.advance(0 / 0) end))
        assert.are.equal("cache.testing.advance: seconds must be >= 0 (the clock never "
                         .. "goes back), got -1",
                         caller_error(function() testing.advance(-1) end))
        assert.matches("^cache.testing.advance: seconds must be < ",
                       caller_error(function() testing.advance(math.huge) end))
        assert.are.equal(added, testing.advanced())
    end)

    it("makes cached() recompute once its ttl has passed", function()
        local calls = 0
        local f = cache.cached(300, "rc")(function(id)
            calls = calls + 1
            return id .. ":" .. calls
        end)
        assert.are.equal("a:1", f("a"))
        testing.advance(299)
        assert.are.equal("a:1", f("a"))
        testing.advance(2)
        assert.are.equal("a:2", f("a"))
        assert.are.equal(2, calls)
        -- an explicit manager and the lock option (locks are Redis's: on
        -- memory it is always granted)
        local m = testing.new()
        local g = cache.cached { ttl = 30, prefix = "rc2", cache = m, lock = 5 } (
            function() calls = calls + 1; return calls end)
        assert.are.equal(3, g())
        testing.advance(29)
        assert.are.equal(3, g())
        testing.advance(1)
        assert.are.equal(4, g())
    end)

    it("expires neg_ttl's nil and false results on their own TTL", function()
        local calls, answer = 0, nil
        local f = cache.cached { ttl = 300, neg_ttl = 10, prefix = "neg" } (function()
            calls = calls + 1
            return answer
        end)
        assert.is_nil(f())
        assert.is_nil(f())
        assert.are.equal(1, calls)
        testing.advance(9)
        assert.is_nil(f())
        assert.are.equal(1, calls)
        answer = "found"
        testing.advance(2)
        assert.are.equal("found", f())
        assert.are.equal(2, calls)
        testing.advance(299)
        assert.are.equal("found", f())
        assert.are.equal(2, calls)
    end)

    it("walks through stale_ttl's window: fresh, stale (refreshed behind), gone", function()
        in_task(function()
            local calls = 0
            local f = cache.cached { ttl = 60, stale_ttl = 30, prefix = "swr" } (function()
                calls = calls + 1
                return calls
            end)
            assert.are.equal(1, f())
            testing.advance(59)
            assert.are.equal(1, f())                  -- fresh
            assert.are.equal(0, cache.stats().stale_served)
            testing.advance(2)
            assert.are.equal(1, f())                  -- stale: served, refreshed
            assert.are.equal(1, cache.stats().stale_served)
            assert.is_true(wait_for(function() return calls == 2 end, 5))
            assert.are.equal(2, f())                  -- the refreshed value
            testing.advance(91)                       -- past ttl + stale_ttl
            assert.are.equal(3, f())                  -- recomputed in the caller
            assert.are.equal(1, cache.stats().stale_served)
        end)
    end)
end)

-- Last in the file: it leaves the test clock ~500,000 years ahead, where a
-- double no longer holds testing.now() to the millisecond.
describe("cache.testing after huge advances", function()
    it("still makes test managers (each takes the sum, capped)", function()
        testing.advance(8e12)
        testing.advance(8e12)
        local m = testing.new()
        m:set("k", "v", 1)
        assert.are.equal("v", m:get("k"))
    end)
end)
