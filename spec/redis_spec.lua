-- redis_spec.lua -- the `cache` API against a real redis-server: every
-- operation, TTLs in milliseconds, namespaces and databases, `cached`,
-- concurrency, SCAN-based clear, AUTH and ACL users, a server absent at
-- start, foreign bytes under a key and the documented MessagePack format.
-- Each describe starts its own private server (helpers.start_redis) and
-- stops it by PID in teardown. Failure modes under load are in
-- redis_failover_spec.lua. Tests tagged #multidb use several databases,
-- which a Redis Cluster does not have: lua.cluster (the spec on a
-- cluster, spec/helpers.lua CACHERT_SPEC_CLUSTER) leaves them out.

local helpers = require "helpers"
local core = require "cache.core"
local sched = require "cachert"

local sh, in_task = helpers.sh, helpers.in_task

local function pack(...)
    return { n = select("#", ...), ... }
end

-- Managers made by a spec; disconnected after each test.
local manager, disconnect_all =
    helpers.manager_maker { timeout = 2, pool_size = 4 }
local raw_get = helpers.raw_get

local function integer_reply(server, cmd)
    return tonumber((server.cli("--raw " .. cmd):match("^%-?%d+")))
end

-- The value of a stat line (e.g. "calls") for a command in INFO commandstats.
local function cmdstat(info, cmd, field)
    local line = info:match("cmdstat_" .. cmd .. ":([^\r\n]*)")
    if not line then return nil end
    return tonumber(line:match(field .. "=([%d%.]+)"))
end

describe("cache over Redis #redis", function()
    local server

    setup(function()
        server = helpers.start_redis("--enable-debug-command local --databases 4")
    end)

    teardown(function()
        disconnect_all()
        helpers.stop_redis(server)
    end)

    before_each(function()
        server.cli("FLUSHALL")
    end)

    after_each(disconnect_all)

    describe("connect", function()
        it("returns true when the server answers", function()
            assert.is_true(manager(server):connect())
        end)

        it("reports using_redis = true and backend = 'redis'", function()
            local c = manager(server)
            c:connect()
            local s = c:stats()
            assert.is_true(s.using_redis)
            assert.are.equal("redis", s.backend)
        end)

        it("names the backend in tostring", function()
            local c = manager(server)
            c:connect()
            assert.are.equal("cache.Manager (redis)", tostring(c))
        end)

        it("returns true again when already connected", function()
            local c = manager(server)
            c:connect()
            assert.is_true(c:connect())
        end)

        it("reports a db number the server does not have, without raising #multidb", function()
            local c = manager(server, { db = 9 })   -- the server has 4
            assert.is_false(c:connect())
            assert.matches("DB index is out of range", c:stats().last_error)
        end)
    end)

    describe("get and set", function()
        it("reads back what it wrote", function()
            local c = manager(server)
            c:connect()
            assert.is_true(c:set("greeting", "hello"))
            assert.are.same({ "hello", true }, { c:get("greeting") })
        end)

        it("writes the value to Redis, not to the memory store", function()
            local c = manager(server)
            c:connect()
            c:set("k", "v")
            assert.are.equal(core.encode("v"), raw_get(server, "k"))
            assert.are.equal(0, c:stats().keys)
        end)

        it("reads a value another manager wrote", function()
            local a, b = manager(server), manager(server)
            a:connect()
            b:connect()
            a:set("shared", { 1, 2, 3 })
            assert.are.same({ { 1, 2, 3 }, true }, { b:get("shared") })
        end)

        it("returns the default and false for a missing key", function()
            local c = manager(server)
            c:connect()
            assert.are.same({ "dflt", false }, { c:get("nope", "dflt") })
        end)

        it("stores nil as a value: get gives nil, true", function()
            local c = manager(server)
            c:connect()
            c:set("n", nil)
            assert.are.same({ n = 2, nil, true }, pack(c:get("n", 1)))
        end)

        it("round-trips every kind of value", function()
            local c = manager(server)
            c:connect()
            local values = {
                int = 42, neg = -7, big = 2 ^ 53, float = 0.1, inf = math.huge,
                ninf = -math.huge, yes = true, no = false, empty = "",
                bin = "\0\1\2\255", utf8 = "h\195\169llo",
                long = ("x"):rep(100000),
                nested = { a = { b = { c = { 1, 2, { "deep" } } } }, [10] = "ten" },
                holes = { 1, nil, 3, n = 3 },
                mixed = { 1, 2, x = "y", [true] = false, [1.5] = "f" },
                empty_table = {},
            }
            for k, v in pairs(values) do c:set(k, v) end
            for k, v in pairs(values) do
                assert.are.same({ v, true }, { c:get(k) }, k)
            end
        end)

        it("round-trips nan and -0.0 bit-exactly", function()
            local c = manager(server)
            c:connect()
            c:set("nan", 0 / 0)
            c:set("negzero", -0.0)
            local nan = c:get("nan")
            assert.is_true(nan ~= nan)
            assert.are.equal("-0", tostring(c:get("negzero")))
        end)

        it("returns a fresh table on every get", function()
            local c = manager(server)
            c:connect()
            c:set("t", { 1 })
            local t = c:get("t")
            t[1] = 99
            assert.are.same({ 1 }, (c:get("t")))
        end)

        it("sets the TTL in milliseconds (PTTL)", function()
            local c = manager(server)
            c:connect()
            -- neither rounded down nor up to whole seconds; 900 ms of slack
            -- for a loaded machine
            c:set("k", "v", 100.9)
            local pttl = integer_reply(server, "PTTL k")
            assert.is_true(pttl > 100000 and pttl <= 100900, "PTTL " .. pttl)
        end)

        it("uses the manager's default TTL when none is given", function()
            local c = manager(server, { default_ttl = 7 })
            c:connect()
            c:set("k", "v")
            local pttl = integer_reply(server, "PTTL k")
            assert.is_true(pttl > 6000 and pttl <= 7000, "PTTL " .. pttl)
        end)

        it("stores without expiry for a TTL of 0", function()
            local c = manager(server)
            c:connect()
            c:set("k", "v", 0)
            assert.are.equal(-1, integer_reply(server, "PTTL k"))
        end)

        it("rounds a sub-millisecond TTL up to 1 ms, never to no expiry", function()
            local c = manager(server)
            c:connect()
            c:set("k", "v", 0.0001)
            assert.are_not.equal(-1, integer_reply(server, "PTTL k"))
        end)

        it("misses once the TTL has passed", function()
            local c = manager(server)
            c:connect()
            c:set("k", "v", 0.05)
            sched.sleep(0.15)
            assert.are.same({ nil, false }, { c:get("k") })
        end)

        it("accepts number keys as their tostring", function()
            local c = manager(server)
            c:connect()
            c:set(42, "n")
            assert.are.equal(core.encode("n"), raw_get(server, "42"))
            assert.are.equal("n", (c:get("42")))
        end)

        it("keeps binary keys binary", function()
            local c = manager(server)
            c:connect()
            c:set("a\0b", 1)
            c:set("a\0c", 2)
            assert.are.equal(1, (c:get("a\0b")))
            assert.are.equal(2, (c:get("a\0c")))
        end)
    end)

    describe("delete", function()
        it("returns true and removes the key from Redis", function()
            local c = manager(server)
            c:connect()
            c:set("k", 1)
            assert.is_true(c:delete("k"))
            assert.is_nil(raw_get(server, "k"))
            assert.are.same({ nil, false }, { c:get("k") })
        end)

        it("returns false when there was no key", function()
            local c = manager(server)
            c:connect()
            assert.is_false(c:delete("nope"))
        end)
    end)

    describe("exists", function()
        it("is true for a stored key and false otherwise", function()
            local c = manager(server)
            c:connect()
            c:set("k", false)
            assert.is_true(c:exists("k"))
            assert.is_false(c:exists("nope"))
        end)

        it("sees a key written by another client", function()
            local c = manager(server)
            c:connect()
            server.cli("SET foreign x")
            assert.is_true(c:exists("foreign"))
        end)
    end)

    describe("clear", function()
        local function seed(c)
            for _, k in ipairs { "user:1", "user:2", "user:10", "post:1",
                                 "usr:1", "u*er", "item:a", "item:b", "item:c" } do
                c:set(k, k)
            end
        end

        it("removes the keys matching a pattern and returns how many", function()
            local c = manager(server)
            c:connect()
            seed(c)
            assert.are.equal(3, c:clear("user:*"))
            assert.are.equal(6, integer_reply(server, "DBSIZE"))
            assert.is_nil(raw_get(server, "user:10"))
            assert.is_not_nil(raw_get(server, "usr:1"))
        end)

        it("uses Redis glob classes and escapes", function()
            local c = manager(server)
            c:connect()
            seed(c)
            assert.are.equal(2, c:clear("item:[ab]"))
            assert.are.equal(1, c:clear("u\\*er"))
            assert.are.equal(1, c:clear("user:?0"))
            assert.is_not_nil(raw_get(server, "item:c"))
            assert.is_not_nil(raw_get(server, "user:1"))
        end)

        it("clears everything of the manager by default", function()
            local c = manager(server)
            c:connect()
            seed(c)
            assert.are.equal(9, c:clear())
            assert.are.equal(0, integer_reply(server, "DBSIZE"))
        end)

        it("returns 0 when nothing matches", function()
            local c = manager(server)
            c:connect()
            seed(c)
            assert.are.equal(0, c:clear("zzz*"))
        end)

        describe("on 100,000 keys", function()
            it("removes them with SCAN and UNLINK, never KEYS or FLUSH*", function()
                local c = manager(server)
                c:connect()
                -- given: 100,000 keys bulk:0..99999 and three others
                server.cli("DEBUG POPULATE 100000 bulk 64")
                for i = 1, 3 do c:set("keep:" .. i, i) end
                assert.are.equal(100003, integer_reply(server, "DBSIZE"))
                server.cli("CONFIG RESETSTAT")
                -- when
                local n = c:clear("bulk:*")
                -- then
                assert.are.equal(100000, n)
                assert.are.equal(3, integer_reply(server, "DBSIZE"))
                local info = server.cli("INFO commandstats")
                assert.is_nil(cmdstat(info, "keys", "calls"))
                assert.is_nil(cmdstat(info, "flushdb", "calls"))
                assert.is_nil(cmdstat(info, "flushall", "calls"))
                assert.is_true((cmdstat(info, "scan", "calls") or 0) >= 1, info)
                assert.is_true((cmdstat(info, "unlink", "calls") or 0) >= 1, info)
                assert.is_nil(cmdstat(info, "del", "calls"))
            end)
        end)
    end)

    describe("mget and mset", function()
        it("mget returns values in order with nil holes and n", function()
            local c = manager(server)
            c:connect()
            c:set("a", 1)
            c:set("b", "two")
            c:set("c", { 3 })
            local out = c:mget { "a", "missing", "c", "b" }
            assert.are.same({ n = 4, 1, nil, { 3 }, "two" }, out)
        end)

        it("mget of no keys is empty", function()
            local c = manager(server)
            c:connect()
            assert.are.same({ n = 0 }, c:mget {})
        end)

        it("mset stores every pair in Redis", function()
            local c = manager(server)
            c:connect()
            assert.is_true(c:mset { x = 1, y = "why", z = { 1, 2 } })
            assert.are.equal(core.encode(1), raw_get(server, "x"))
            assert.are.equal(core.encode("why"), raw_get(server, "y"))
            assert.are.equal(core.encode({ 1, 2 }), raw_get(server, "z"))
        end)

        it("mset applies the TTL to every key (PTTL)", function()
            local c = manager(server)
            c:connect()
            -- 30 s: a slow machine (TLS, sanitizers, load) may take seconds
            -- between the MSET and the PTTL of redis-cli
            c:mset({ x = 1, y = 2 }, 30)
            for _, k in ipairs { "x", "y" } do
                local pttl = integer_reply(server, "PTTL " .. k)
                assert.is_true(pttl > 15000 and pttl <= 30000, k .. ": PTTL " .. pttl)
            end
        end)
    end)

    describe("stats", function()
        it("counts hits, misses, sets and deletes served by Redis", function()
            local c = manager(server)
            c:connect()
            c:set("a", 1)
            c:set("b", 2)
            c:get("a")
            c:get("zzz")
            c:delete("a")
            c:delete("zzz")
            local s = c:stats()
            assert.are.same({ 1, 1, 2, 1, 0, 0.5, 0 },
                            { s.hits, s.misses, s.sets, s.deletes, s.errors,
                              s.hit_rate, s.reconnects })
        end)

        it("counts the keys a clear removed as deletes", function()
            local c = manager(server)
            c:connect()
            c:mset { a = 1, b = 2, c = 3 }
            c:clear("*")
            assert.are.equal(3, c:stats().deletes)
        end)

        it("get_stats is the same function", function()
            local c = manager(server)
            c:connect()
            c:set("a", 1)
            assert.are.same(c:stats(), c:get_stats())
        end)
    end)

    describe("disconnect", function()
        it("returns true and switches to the memory store", function()
            local c = manager(server)
            c:connect()
            assert.is_true(c:disconnect())
            local s = c:stats()
            assert.is_false(s.using_redis)
            assert.are.equal("memory", s.backend)
        end)

        it("leaves Redis alone while the memory store serves", function()
            local c = manager(server)
            c:connect()
            c:set("k", "redis")
            c:disconnect()
            assert.are.same({ nil, false }, { c:get("k") })
            c:set("k", "memory")
            assert.are.equal("memory", (c:get("k")))
            assert.are.equal(core.encode("redis"), raw_get(server, "k"))
        end)

        it("invalidates in Redis what changed meanwhile, on the next connect", function()
            local c = manager(server)
            c:connect()
            c:set("k", "redis")
            c:set("gone", 1)
            c:set("kept", 2)
            c:disconnect()
            c:set("k", "memory")
            c:delete("gone")
            assert.is_true(c:connect())
            -- never written back: another process may have written newer
            assert.is_nil(raw_get(server, "k"))
            assert.is_nil(raw_get(server, "gone"))
            assert.are.same({ nil, false }, { c:get("k") })
            assert.are.equal(2, (c:get("kept")))
        end)
    end)

    describe("changes made before the first connect", function()
        it("a delete removes the older value Redis holds", function()
            server.cli("SET k old")
            local c = manager(server)
            c:delete("k")
            assert.is_true(c:connect())
            assert.is_nil(raw_get(server, "k"))
            assert.are.same({ nil, false }, { c:get("k") })
        end)

        it("a set removes the older value Redis holds, without writing its own", function()
            server.cli("SET k old")
            local c = manager(server)
            c:set("k", "new")
            assert.is_true(c:connect())
            assert.is_nil(raw_get(server, "k"))
            assert.are.same({ nil, false }, { c:get("k") })
        end)

        it("a clear removes the matching keys Redis holds", function()
            server.cli("MSET p1 old p2 old q old")
            local c = manager(server)
            c:clear("p*")
            assert.is_true(c:connect())
            assert.are.same({ nil, nil, "old" },
                            { raw_get(server, "p1"), raw_get(server, "p2"),
                              raw_get(server, "q") })
        end)
    end)

    describe("connect from several tasks at once", function()
        it("gives every caller the outcome", function()
            local c = manager(server)
            local results = in_task(function()
                local tasks, out = {}, {}
                for i = 1, 5 do tasks[i] = sched.spawn(c.connect, c) end
                for i = 1, 5 do out[i] = tasks[i]:join() end
                return out
            end)
            assert.are.same({ true, true, true, true, true }, results)
        end)
    end)

    describe("a value Redis refuses (maxmemory)", function()
        after_each(function() server.cli("CONFIG SET maxmemory 0") end)

        it("makes set return false and the reason, and drops the old value", function()
            local c = manager(server)
            c:connect()
            c:set("k", "old")
            server.cli("CONFIG SET maxmemory 1")
            local ok, err = c:set("k", "new")
            server.cli("CONFIG SET maxmemory 0")
            assert.is_false(ok)
            assert.matches("OOM", err)
            local s = c:stats()
            assert.are.same({ 1, true }, { s.errors, s.using_redis })
            -- once set has returned, no client may read the old value
            assert.is_nil(raw_get(server, "k"), "Redis still holds the old value")
        end)

        it("makes the next get miss", function()
            local c = manager(server)
            c:connect()
            c:set("k", "old")
            server.cli("CONFIG SET maxmemory 1")
            c:set("k", "new")
            server.cli("CONFIG SET maxmemory 0")
            assert.are.same({ nil, false }, { c:get("k") })
        end)
    end)

    describe("large requests", function()
        it("round-trips a 5 MB value", function()
            local c = manager(server)
            c:connect()
            local big = ("0123456789abcdef"):rep(5 * 65536)
            assert.is_true(c:set("big", big))
            assert.are.equal(big, (c:get("big")))
        end)

        it("mget of 2,000 keys, half of them present", function()
            local c = manager(server)
            c:connect()
            local map, keys = {}, {}
            for i = 1, 2000 do
                keys[i] = "m" .. i
                if i % 2 == 0 then map[keys[i]] = i end
            end
            c:mset(map)
            local out = c:mget(keys)
            assert.are.equal(2000, out.n)
            for i = 1, 2000 do
                assert.are.equal(i % 2 == 0 and i or nil, out[i])
            end
        end)
    end)

    describe("namespaces and databases", function()
        it("keeps db 0 / namespace a: and db 3 / namespace b: apart #multidb", function()
            local a = manager(server, { db = 0, namespace = "a:" })
            local b = manager(server, { db = 3, namespace = "b:" })
            assert.is_true(a:connect())
            assert.is_true(b:connect())
            a:set("k", "A")
            b:set("k", "B")
            assert.are.equal("A", (a:get("k")))
            assert.are.equal("B", (b:get("k")))
            assert.are.equal(core.encode("A"), raw_get(server, "a:k", 0))
            assert.are.equal(core.encode("B"), raw_get(server, "b:k", 3))
            assert.is_nil(raw_get(server, "b:k", 0))
            assert.is_nil(raw_get(server, "a:k", 3))
            assert.is_nil(raw_get(server, "k", 0))
        end)

        it("clears only its own namespace and database #multidb", function()
            local a = manager(server, { db = 0, namespace = "a:" })
            local b = manager(server, { db = 3, namespace = "b:" })
            local b0 = manager(server, { db = 0, namespace = "b:" })
            a:connect()
            b:connect()
            b0:connect()
            a:mset { k1 = 1, k2 = 2 }
            b:mset { k1 = 1, k2 = 2 }
            b0:mset { k1 = 1 }
            server.cli("SET plain 1")
            assert.are.equal(2, a:clear())
            assert.are.same({ 1, 1 }, { (b:get("k1")), (b0:get("k1")) })
            assert.are.equal(2, integer_reply(server, "-n 0 DBSIZE"))  -- b:k1, plain
            assert.are.equal(2, integer_reply(server, "-n 3 DBSIZE"))
        end)

        it("applies the namespace to delete, exists, mget and mset", function()
            local a = manager(server, { namespace = "a:" })
            local b = manager(server, { namespace = "b:" })
            a:connect()
            b:connect()
            a:mset { x = 1, y = 2 }
            assert.is_false(b:exists("x"))
            assert.is_false(b:delete("x"))
            assert.are.same({ n = 2 }, b:mget { "x", "y" })
            assert.are.same({ n = 2, 1, 2 }, a:mget { "x", "y" })
            assert.is_true(a:delete("x"))
            assert.is_nil(raw_get(server, "a:x"))
        end)

        it("matches a namespace with glob characters literally in clear", function()
            local c = manager(server, { namespace = "n*[x]:" })
            c:connect()
            c:set("k", 1)
            server.cli("SET nAx:k 1")        -- n*[x]:* unescaped would match it
            assert.are.equal(1, c:clear())
            assert.is_not_nil(raw_get(server, "nAx:k"))
        end)
    end)

    describe("cached", function()
        it("stores under prefix:arg, so delete('video:42') invalidates it", function()
            local c = manager(server)
            c:connect()
            local calls = 0
            local get_video = c:cached(300, "video")(function(id)
                calls = calls + 1
                return { id = id, title = "t" .. id }
            end)
            assert.are.same({ id = 42, title = "t42" }, get_video(42))
            assert.are.same({ id = 42, title = "t42" }, get_video(42))
            assert.are.equal(1, calls)
            assert.are.equal(core.encode({ id = 42, title = "t42" }),
                             raw_get(server, "video:42"))
            assert.is_true(c:delete("video:42"))
            get_video(42)
            assert.are.equal(2, calls)
        end)

        it("sets the TTL of its entries in Redis", function()
            local c = manager(server)
            c:connect()
            local f = c:cached(3, "p")(function(x) return x end)
            f("a")
            local pttl = integer_reply(server, "PTTL p:a")
            assert.is_true(pttl > 2000 and pttl <= 3000, "PTTL " .. pttl)
        end)

        it("reads an entry another manager computed", function()
            local a, b = manager(server), manager(server)
            a:connect()
            b:connect()
            local calls = 0
            local function fn(x) calls = calls + 1; return x * 2 end
            a:cached(60, "dbl")(fn)(21)
            assert.are.equal(42, b:cached(60, "dbl")(fn)(21))
            assert.are.equal(1, calls)
        end)

        it("returns every value fn returned, trailing nils included", function()
            local c = manager(server)
            c:connect()
            local f = c:cached(60, "multi")(function() return 1, nil, "x", nil end)
            f()
            local r = { n = select("#", f()), f() }
            assert.are.same({ n = 4, 1, nil, "x", nil }, r)
        end)

        it("runs fn once for 100 concurrent callers (single flight)", function()
            local c = manager(server)
            c:connect()
            local calls = 0
            local slow = c:cached(60, "sf")(function(id)
                calls = calls + 1
                sched.sleep(0.05)
                return { id = id }
            end)
            local results = in_task(function()
                local tasks, out = {}, {}
                for i = 1, 100 do tasks[i] = sched.spawn(slow, 7) end
                for i = 1, 100 do out[i] = tasks[i]:join() end
                return out
            end)
            assert.are.equal(1, calls)
            for i = 1, 100 do assert.are.same({ id = 7 }, results[i]) end
        end)

        it("invalidate clears prefix:* in Redis", function()
            local c = manager(server)
            c:connect()
            local f = c:cached(60, "inv")(function(x) return x end)
            f("a")
            f("b")
            c:invalidate("inv")(function() end)()
            assert.are.equal(0, integer_reply(server, "DBSIZE"))
        end)
    end)

    describe("with 1,000 concurrent tasks", function()
        it("sets and gets each task's own key without an error", function()
            local c = manager(server, { pool_size = 10 })
            c:connect()
            local failures = in_task(function()
                local tasks, failed = {}, {}
                for i = 1, 1000 do
                    tasks[i] = sched.spawn(function()
                        local value = { i = i, s = ("x"):rep(i % 50) }
                        assert(c:set("conc:" .. i, value))
                        local got, found = c:get("conc:" .. i)
                        if not found or got.i ~= i or got.s ~= value.s then
                            failed[#failed + 1] = i
                        end
                        assert(c:exists("conc:" .. i))
                    end)
                end
                for i = 1, 1000 do tasks[i]:join() end
                return failed
            end)
            assert.are.same({}, failures)
            assert.are.equal(1000, integer_reply(server, "DBSIZE"))
            local s = c:stats()
            assert.are.same({ 0, true, 1000, 1000 },
                            { s.errors, s.using_redis, s.sets, s.hits })
        end)
    end)

    describe("bytes cachert did not write", function()
        local function put_raw(key, octal_printf)
            sh(("printf '%s' | %sredis-cli %s -p %d -x SET '%s'")
               :format(octal_printf, helpers.NO_PRELOAD, server.cli_tls, server.port, key))
        end

        for name, bytes in pairs {
            ["a reserved byte 0xc1"] = "\\301",
            ["plain text 'hello' (a fixint and trailing bytes)"] = "hello",
            ["a truncated array"] = "\\222\\001",
            ["a str32 claiming 4 GB"] = "\\333\\377\\377\\377\\377",
        } do
            it("read as a miss with an error counted: " .. name, function()
                local c = manager(server)
                c:connect()
                put_raw("junk", bytes)
                local before = c:stats().errors
                assert.are.same({ "dflt", false }, { c:get("junk", "dflt") })
                local s = c:stats()
                assert.are.equal(before + 1, s.errors)
                assert.are.equal(1, s.misses)
                assert.are.equal(0, s.hits)
            end)
        end

        it("is left in Redis (another program may own it)", function()
            local c = manager(server)
            c:connect()
            server.cli("SET junk hello")
            c:get("junk")
            assert.are.equal("hello", raw_get(server, "junk"))
        end)

        it("reads a key of another type (a list) as a miss", function()
            local c = manager(server)
            c:connect()
            server.cli("RPUSH alist 1 2")
            assert.are.same({ nil, false }, { c:get("alist") })
            assert.is_true(c:stats().errors >= 1)
            assert.is_true(c:stats().using_redis)
        end)

        it("gives mget a hole and counts the error", function()
            local c = manager(server)
            c:connect()
            c:set("good", 1)
            server.cli("SET junk hello")
            assert.are.same({ n = 2, 1 }, c:mget { "good", "junk" })
            assert.are.equal(1, c:stats().errors)
        end)

        it("makes cached recompute and overwrite the entry", function()
            local c = manager(server)
            c:connect()
            server.cli("SET video:5 hello")
            local calls = 0
            local f = c:cached(60, "video")(function(id)
                calls = calls + 1
                return "v" .. id
            end)
            assert.are.equal("v5", f(5))
            assert.are.equal(1, calls)
            assert.are.equal(core.encode("v5"), raw_get(server, "video:5"))
        end)
    end)

    describe("the stored format", function()
        local cases = {
            { "{1, 2}", { 1, 2 }, "\146\1\2" },
            { "'hi'", "hi", "\162hi" },
            { "true", true, "\195" },
            { "false", false, "\194" },
            { "nil", nil, "\192" },
            { "-1", -1, "\255" },
            { "300", 300, "\205\1\44" },
            { "1.5", 1.5, "\203\63\248\0\0\0\0\0\0" },
            { "{a = 1}", { a = 1 }, "\129\161a\1" },
            { "binary '\\255\\0'", "\255\0", "\196\2\255\0" },
            { "a 40-byte string", ("s"):rep(40), "\217\40" .. ("s"):rep(40) },
        }
        for _, case in ipairs(cases) do
            it("is MessagePack, byte for byte: " .. case[1], function()
                local c = manager(server)
                c:connect()
                c:set("fmt", case[2])
                assert.are.equal(case[3], raw_get(server, "fmt"))
            end)
        end

        it("shows as the escaped MessagePack in redis-cli --no-raw", function()
            local c = manager(server)
            c:connect()
            c:set("a", { 1, 2 })
            c:set("b", "hi")
            assert.are.equal('"\\x92\\x01\\x02"\n', server.cli("--no-raw GET a"))
            assert.are.equal('"\\xa2hi"\n', server.cli("--no-raw GET b"))
        end)

        it("is decoded by Python's msgpack", function()
            local _, status = sh(helpers.NO_PRELOAD .. "/usr/bin/python3 -c 'import msgpack'")
            if status ~= 0 then
                pending("python3-msgpack is not installed")
                return
            end
            local c = manager(server)
            c:connect()
            c:set("py", { name = "Ada", tags = { "x", "y" }, n = 42, pi = 1.5,
                          ok = true, blob = "\255\0" })
            local out, code = sh((helpers.NO_PRELOAD .. "redis-cli %s -p %d --raw GET py | "
                .. "head -c -1 | " .. helpers.NO_PRELOAD
                .. "/usr/bin/python3 -c 'import msgpack, sys; "
                .. "d = msgpack.unpackb(sys.stdin.buffer.read(), raw=False); "
                .. "print(sorted(d.items()))'"):format(server.cli_tls, server.port))
            assert.are.equal(0, code, out)
            assert.are.equal("[('blob', b'\\xff\\x00'), ('n', 42), ('name', 'Ada'), "
                .. "('ok', True), ('pi', 1.5), ('tags', ['x', 'y'])]\n", out)
        end)
    end)
end)

describe("AUTH #redis", function()
    local server

    setup(function()
        server = helpers.start_redis("--requirepass s3cret", { password = "s3cret" })
        server.cli("ACL SETUSER alice on '>pw' '~*' '&*' '+@all'")
    end)

    teardown(function()
        disconnect_all()
        helpers.stop_redis(server)
    end)

    after_each(disconnect_all)

    it("connects with the right password", function()
        local c = manager(server, { password = "s3cret" })
        assert.is_true(c:connect())
        c:set("k", "v")
        assert.are.equal("v", (c:get("k")))
    end)

    it("returns false for a wrong password and says why", function()
        local c = manager(server, { password = "wrong" })
        assert.is_false(c:connect())
        local s = c:stats()
        assert.is_false(s.using_redis)
        local err = s.last_error or ""
        assert.is_truthy(err:match("WRONGPASS") or err:match("invalid"), err)
    end)

    it("does not retry a wrong password in a tight loop", function()
        local function connections()
            return tonumber(server.cli("INFO stats"):match("total_connections_received:(%d+)"))
        end
        local c = manager(server, { password = "wrong", pool_size = 2 })
        c:connect()
        local before = connections()
        sched.sleep(1)
        assert.is_true(connections() - before <= 20,
                       (connections() - before) .. " connections in 1 s")
    end)

    it("returns false without a password and says why", function()
        local c = manager(server)
        assert.is_false(c:connect())
        local err = c:stats().last_error or ""
        assert.is_truthy(err:match("NOAUTH") or err:match("[Aa]uth"), err)
    end)

    it("serves from memory after a refused AUTH, without raising", function()
        local c = manager(server, { password = "wrong" })
        c:connect()
        assert.is_true(c:set("k", 1))
        assert.are.equal(1, (c:get("k")))
        assert.are.equal("memory", c:stats().backend)
    end)

    it("connects as an ACL user with username and password", function()
        local c = manager(server, { username = "alice", password = "pw" })
        assert.is_true(c:connect())
        c:set("k", "alice")
        assert.are.equal(core.encode("alice"), raw_get(server, "k"))
    end)

    it("refuses an ACL user with a wrong password", function()
        local c = manager(server, { username = "alice", password = "nope" })
        assert.is_false(c:connect())
        assert.is_truthy((c:stats().last_error or ""):match("WRONGPASS"))
    end)

    it("connects as an ACL user given in the url option", function()
        local c = manager(server, { url = ("redis://alice:pw@127.0.0.1:%d/0")
                                          :format(server.port) })
        assert.is_true(c:connect())
    end)

    it("connects as an ACL user given in REDIS_URL", function()
        local scheme = server.tls and "rediss" or "redis"
        local out, code = sh(("REDIS_URL='%s://alice:pw@127.0.0.1:%d/0' REDIS_TLS_CA_FILE=%s %s -e "
            .. "'local c = require \"cache\"; print(c.connect(), c.stats().backend)'")
            :format(scheme, server.port, server.tls and server.tls .. "/ca.pem" or "''",
                    helpers.cachert_bin()))
        assert.are.equal(0, code, out)
        assert.are.equal("true\tredis\n", out)
    end)
end)

describe("a server absent at start #redis", function()
    local port, server

    setup(function()
        -- a port nobody listens on: a server's, once it has stopped
        server = helpers.start_redis(nil, { standalone = true })
        port = server.port
        helpers.kill_redis(server, "TERM")
    end)

    teardown(function()
        disconnect_all()
        helpers.stop_redis(server)
    end)

    after_each(disconnect_all)

    it("makes connect return false quickly, without raising", function()
        local c = manager(server, { port = port })
        local t0 = sched.now()
        assert.is_false(c:connect())
        assert.is_true(sched.now() - t0 < 1.5)
    end)

    it("keeps the reason in stats().last_error", function()
        local c = manager(server, { port = port })
        c:connect()
        assert.matches("refused", c:stats().last_error)
    end)

    it("serves every operation from memory", function()
        local c = manager(server, { port = port })
        c:connect()
        assert.is_true(c:set("a", 1))
        assert.is_true(c:mset { b = 2, c = 3 })
        assert.are.equal(1, (c:get("a")))
        assert.are.same({ n = 2, 2, 3 }, c:mget { "b", "c" })
        assert.is_true(c:exists("a"))
        assert.is_true(c:delete("a"))
        assert.are.equal(2, c:clear())
        local s = c:stats()
        assert.are.same({ false, "memory" }, { s.using_redis, s.backend })
    end)

    it("switches to Redis when the server appears, invalidating the writes", function()
        local c = manager(server, { port = port })
        c:connect()
        c:set("early", "bird")
        helpers.restart_redis(server)
        local ok = helpers.wait_for(function() return c:stats().using_redis end, 8)
        assert.is_true(ok)
        assert.is_nil(raw_get(server, "early"))
        assert.are.same({ nil, false }, { c:get("early") })
        helpers.kill_redis(server, "TERM")
    end)
end)
