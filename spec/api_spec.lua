-- api_spec.lua -- the `cache` module API on the memory store: managers,
-- get/set/delete/exists/clear/mget/mset/stats, key and TTL rules, limits.
-- No Redis: managers point at a closed loopback port, so connect() falls
-- back to the memory store.

local helpers = require "helpers"
local cache = require "cache"
local core = require "cache.core"

-- Nothing listens on port 1: connect() is refused at once.
local NO_REDIS = { host = "127.0.0.1", port = 1, timeout = 1 }

local function manager(opts)
    local o = {}
    for k, v in pairs(NO_REDIS) do o[k] = v end
    for k, v in pairs(opts or {}) do o[k] = v end
    return cache.new(o)
end

local function pack(...)
    return { n = select("#", ...), ... }
end

-- The message a call raised, or nil.
local function error_of(fn)
    local ok, err = pcall(fn)
    if ok then return nil end
    return err
end

-- Bytes one entry adds to memory_bytes, derived from a reference entry so
-- the spec does not depend on the C struct layout.
local function entry_overhead()
    local c = manager()
    c:set("k", "v")
    return c:stats().memory_bytes - #"k" - #core.encode("v")
end

describe("cache.new", function()
    it("returns a manager with every API function as a method", function()
        local c = manager()
        for _, name in ipairs { "connect", "disconnect", "get", "set", "delete",
                                "exists", "clear", "mget", "mset", "stats",
                                "get_stats" } do
            assert.are.equal("function", type(c[name]))
        end
    end)

    it("raises for an unknown option", function()
        assert.has_error(function() cache.new { bogus = 1 } end,
                         "unknown option 'bogus'")
    end)

    it("raises when the options are not a table", function()
        assert.has_error(function() cache.new("x") end, "options must be a table")
    end)

    it("raises an unknown option at the caller's line", function()
        local line = debug.getinfo(1, "l").currentline + 1
        local err = error_of(function() cache.new { bogus = 1 } end)
        assert.are.equal("api_spec.lua:" .. line .. ": unknown option 'bogus'",
                         err:match("[^/]*$"))
    end)

    it("gives each manager its own store", function()
        local a, b = manager(), manager()
        a:set("k", "a")
        assert.are.same({ nil, false }, { b:get("k") })
    end)

    it("gives each manager its own statistics", function()
        local a, b = manager(), manager()
        a:set("k", 1)
        a:get("k")
        assert.are.same({ 0, 0, 0 },
                        { b:stats().sets, b:stats().hits, b:stats().misses })
    end)
end)

describe("a manager's fields", function()
    it("raise when an unknown field is written, naming it", function()
        local c = manager()
        local line = debug.getinfo(1, "l").currentline + 1
        local err = error_of(function() c.default_ttl = 600 end)
        assert.are.equal("api_spec.lua:" .. line .. ": unknown field 'default_ttl': "
                         .. "a manager's settings are options of cache.new{...}",
                         err:match("[^/]*$"))
    end)

    it("raise for any unknown name", function()
        local c = manager()
        assert.are.same({ "unknown field 'colour'", "unknown field '1'" },
                        { error_of(function() c.colour = "red" end):match("unknown field '%w+'"),
                          error_of(function() c[1] = true end):match("unknown field '%w+'") })
    end)

    it("let one manager's method be replaced", function()
        local c, other = manager(), manager()
        c.get = function() return "spy" end
        assert.are.same({ "spy", nil }, { c:get("k"), (other:get("k")) })
    end)

    it("store nothing when an unknown field is written", function()
        local c = manager()
        local ok, err = pcall(function() c.default_ttl = 600 end)
        assert.is_false(ok)
        assert.matches("unknown field 'default_ttl'", err, 1, true)
        assert.is_nil(rawget(c, "default_ttl"))
    end)

    it("read as before", function()
        local c = manager { namespace = "ns:" }
        assert.are.same({ "ns:", "function", nil },
                        { c.namespace, type(c.get), c.default_ttl })
    end)
end)

describe("connect", function()
    it("returns false when Redis is unreachable", function()
        local c = manager()
        assert.is_false(c:connect())
    end)

    it("leaves the manager on the memory store when Redis is unreachable", function()
        local c = manager()
        c:connect()
        local s = c:stats()
        assert.are.same({ false, "memory" }, { s.using_redis, s.backend })
    end)

    it("keeps serving from the memory store after disconnect", function()
        local c = manager()
        c:connect()
        c:set("k", "v")
        c:disconnect()
        assert.are.same({ "v", true }, { c:get("k") })
    end)
end)

describe("get", function()
    it("returns a stored value and true", function()
        local c = manager()
        c:set("k", "v")
        assert.are.same({ "v", true }, { c:get("k") })
    end)

    it("returns nil and false for a missing key", function()
        local c = manager()
        assert.are.same({ n = 2, nil, false }, pack(c:get("k")))
    end)

    it("returns the default and false for a missing key", function()
        local c = manager()
        assert.are.same({ "dflt", false }, { c:get("k", "dflt") })
    end)

    it("returns nil and true for a stored nil", function()
        local c = manager()
        c:set("k", nil)
        assert.are.same({ n = 2, nil, true }, pack(c:get("k")))
    end)

    it("returns a stored nil rather than the default", function()
        local c = manager()
        c:set("k", nil)
        assert.are.same({ n = 2, nil, true }, pack(c:get("k", "dflt")))
    end)

    it("returns false and true for a stored false", function()
        local c = manager()
        c:set("k", false)
        assert.are.same({ false, true }, { c:get("k") })
    end)

    it("returns a copy: mutating it leaves the cached table unchanged", function()
        local c = manager()
        c:set("k", { a = 1, list = { 1, 2 } })
        local t = c:get("k")
        t.a = 2
        t.list[1] = 99
        assert.are.same({ a = 1, list = { 1, 2 } }, (c:get("k")))
    end)

    it("returns a fresh table on every call", function()
        local c = manager()
        c:set("k", {})
        assert.are_not.equal(c:get("k"), c:get("k"))
    end)

    it("is not affected by mutating the table after set", function()
        local c = manager()
        local t = { a = 1 }
        c:set("k", t)
        t.a = 2
        assert.are.same({ a = 1 }, (c:get("k")))
    end)

    it("counts a hit for a stored key", function()
        local c = manager()
        c:set("k", 1)
        c:get("k")
        assert.are.same({ 1, 0 }, { c:stats().hits, c:stats().misses })
    end)

    it("counts a miss for a missing key", function()
        local c = manager()
        c:get("k")
        assert.are.same({ 0, 1 }, { c:stats().hits, c:stats().misses })
    end)
end)

describe("keys", function()
    it("are binary safe: bytes after a NUL count", function()
        local c = manager()
        c:set("a\0b", 1)
        c:set("a\0c", 2)
        assert.are.same({ 1, 2 }, { (c:get("a\0b")), (c:get("a\0c")) })
    end)

    it("do not match a key that is a prefix up to a NUL", function()
        local c = manager()
        c:set("a\0b", 1)
        assert.is_false(c:exists("a"))
    end)

    it("may be the empty string", function()
        local c = manager()
        c:set("", "empty")
        assert.are.same({ "empty", true }, { c:get("") })
    end)

    it("may be invalid UTF-8", function()
        local c = manager()
        c:set("\255\254", 1)
        assert.are.same({ 1, true }, { c:get("\255\254") })
    end)

    it("write an integer as its digits", function()
        local c = manager()
        c:set(42, "v")
        assert.are.same({ "v", true }, { c:get("42") })
    end)

    it("write a float in its shortest exact form", function()
        local c = manager()
        c:set(1.5, "v")
        assert.are.same({ "v", true }, { c:get("1.5") })
    end)

    it("keep 123456789012345 and 123456789012346 apart", function()
        local c = manager()
        c:set(123456789012345, "A")
        assert.are.same({ n = 2, nil, false }, pack(c:get(123456789012346)))
    end)

    it("write a 15-digit integer with all its digits", function()
        local c = manager()
        c:set(123456789012345, "A")
        assert.are.same({ "A", true }, { c:get("123456789012345") })
    end)

    it("write 2^53 + 2 with all its digits", function()
        local c = manager()
        c:set(2 ^ 53 + 2, "v")
        assert.are.same({ "v", true }, { c:get("9007199254740994") })
    end)

    it("write 0.1 + 0.2 in the shortest form that reads back", function()
        local c = manager()
        c:set(0.1 + 0.2, "v")
        assert.are.same({ "v", true }, { c:get("0.30000000000000004") })
    end)

    it("keep 1 and 1.0000000000000002 apart", function()
        local c = manager()
        c:set(1, "one")
        c:set(1.0000000000000002, "more")
        assert.are.same({ "one", "more" }, { (c:get(1)), (c:get("1.0000000000000002")) })
    end)

    it("are written exactly by delete", function()
        local c = manager()
        c:set("123456789012345", "A")
        c:set("123456789012346", "B")
        assert.are.same({ true, true }, { c:delete(123456789012346), c:exists("123456789012345") })
    end)

    it("are written exactly by exists", function()
        local c = manager()
        c:set("123456789012345", "A")
        assert.are.same({ true, false },
                        { c:exists(123456789012345), c:exists(123456789012346) })
    end)

    it("are written exactly by mget", function()
        local c = manager()
        c:set("123456789012345", "A")
        assert.are.same({ n = 2, "A" }, c:mget { 123456789012345, 123456789012346 })
    end)

    it("are written exactly by mset", function()
        local c = manager()
        c:mset { [123456789012345] = "A", [0.1 + 0.2] = "B" }
        assert.are.same({ "A", "B" }, { (c:get("123456789012345")),
                                        (c:get("0.30000000000000004")) })
    end)

    it("are written exactly after a namespace", function()
        local c = manager { namespace = "ns:" }
        c:set(123456789012345, "A")
        assert.are.same({ n = 2, nil, false }, pack(c:get(123456789012346)))
    end)

    it("find a string-keyed value by the equal number", function()
        local c = manager()
        c:set("7", "v")
        assert.are.same({ "v", true }, { c:get(7) })
    end)

    for _, case in ipairs {
        { "boolean", true }, { "table", {} }, { "nil", nil },
        { "function", print }, { "userdata", io.stdout },
    } do
        local tname, key = case[1], case[2]
        it("reject a " .. tname .. " key in get", function()
            local c = manager()
            assert.has_error(function() c:get(key) end,
                             "key must be a string or a number, got " .. tname)
        end)
    end

    for _, name in ipairs { "set", "delete", "exists" } do
        it("reject a boolean key in " .. name, function()
            local c = manager()
            assert.has_error(function() c[name](c, true) end,
                             "key must be a string or a number, got boolean")
        end)
    end

    it("reject a bad key at the caller's line", function()
        local c = manager()
        local line = debug.getinfo(1, "l").currentline + 1
        local err = error_of(function() c:set({}, 1) end)
        assert.are.equal("api_spec.lua:" .. line
                         .. ": key must be a string or a number, got table",
                         err:match("[^/]*$"))
    end)
end)

describe("set", function()
    it("returns true", function()
        local c = manager()
        assert.is_true(c:set("k", "v"))
    end)

    it("replaces the previous value", function()
        local c = manager()
        c:set("k", "old")
        c:set("k", "new")
        assert.are.same({ "new", true }, { c:get("k") })
    end)

    it("counts every successful set", function()
        local c = manager()
        c:set("a", 1)
        c:set("a", 2)
        c:set("b", 3)
        assert.are.equal(3, c:stats().sets)
    end)

    it("raises for a value that cannot be cached", function()
        local c = manager()
        assert.has_error(function() c:set("k", print) end,
                         "cannot cache a function at value")
    end)
end)

describe("ttl", function()
    it("raises for a negative ttl", function()
        local c = manager()
        assert.has_error(function() c:set("k", 1, -1) end, "ttl must be >= 0")
    end)

    it("raises for a string ttl", function()
        local c = manager()
        assert.has_error(function() c:set("k", 1, "10") end,
                         "ttl must be a number, got string")
    end)

    it("raises for a table ttl", function()
        local c = manager()
        assert.has_error(function() c:set("k", 1, {}) end,
                         "ttl must be a number, got table")
    end)

    it("raises for a nan ttl", function()
        local c = manager()
        assert.has_error(function() c:set("k", 1, 0 / 0) end,
                         "ttl must be a number, got nan")
    end)

    it("raises for an infinite ttl", function()
        local c = manager()
        assert.has_error(function() c:set("k", 1, math.huge) end,
                         "ttl must be finite (use 0 for no expiry)")
    end)

    it("accepts a very long finite ttl", function()
        local c = manager()
        assert.is_true(c:set("k", 1, 1e300))
    end)

    it("accepts a very long finite default ttl", function()
        local c = manager { default_ttl = 1e300 }
        assert.is_true(c:set("k", 1))
    end)

    it("raises a bad ttl at the caller's line", function()
        local c = manager()
        local line = debug.getinfo(1, "l").currentline + 1
        local err = error_of(function() c:set("k", 1, -1) end)
        assert.are.equal("api_spec.lua:" .. line .. ": ttl must be >= 0",
                         err:match("[^/]*$"))
    end)

    it("stores nothing when the ttl is invalid", function()
        local c = manager()
        c:set("k", "old")
        local ok, err = pcall(c.set, c, "k", "new", -1)
        assert.is_false(ok)
        assert.matches("ttl must be >= 0", err, 1, true)
        assert.are.same({ "old", true }, { c:get("k") })
    end)

    it("keeps a 50 ms entry before it expires", function()
        local c = manager()
        c:set("k", "v", 0.05)
        assert.are.same({ "v", true }, { c:get("k") })
    end)

    describe("once the time has passed", function()
        -- given: one manager per behaviour, all set before a single sleep
        local m = {}
        lazy_setup(function()
            m.short = manager()
            m.short:set("k", "v", 0.05)
            m.tiny = manager()
            m.tiny:set("k", "v", 0.0004)
            m.default = manager { default_ttl = 0.05 }
            m.default:set("k", "v")
            m.zero = manager { default_ttl = 0.05 }
            m.zero:set("k", "v", 0)
            m.long = manager()
            m.long:set("k", "v", 60)
            m.exists = manager()
            m.exists:set("k", "v", 0.05)
            m.stats = manager()
            m.stats:set("k", "v", 0.05)
            m.mset = manager()
            m.mset:mset({ a = 1, b = 2 }, 0.05)
            -- when
            helpers.in_task(function() require("cachert").sleep(0.1) end)
        end)

        it("misses a key whose fractional ttl passed", function()
            assert.are.same({ "dflt", false }, { m.short:get("k", "dflt") })
        end)

        it("misses a key whose sub-millisecond ttl was rounded up, not to 0", function()
            assert.are.same({ nil, false }, { m.tiny:get("k") })
        end)

        it("misses a key stored with the manager's default ttl", function()
            assert.are.same({ nil, false }, { m.default:get("k") })
        end)

        it("keeps a key stored with ttl 0 despite a short default", function()
            assert.are.same({ "v", true }, { m.zero:get("k") })
        end)

        it("keeps a key whose ttl has not passed", function()
            assert.are.same({ "v", true }, { m.long:get("k") })
        end)

        it("reports an expired key as not existing", function()
            assert.is_false(m.exists:exists("k"))
        end)

        it("counts the expired key as a miss and in expired", function()
            m.stats:get("k")
            local s = m.stats:stats()
            assert.are.same({ hits = 0, misses = 1, expired = 1, keys = 0 },
                            { hits = s.hits, misses = s.misses,
                              expired = s.expired, keys = s.keys })
        end)

        it("expires every key of an mset with a ttl", function()
            local r = m.mset:mget { "a", "b" }
            assert.are.same({ n = 2 }, r)
        end)
    end)
end)

describe("delete", function()
    it("returns true when it removed a key", function()
        local c = manager()
        c:set("k", 1)
        assert.is_true(c:delete("k"))
    end)

    it("returns false when there was no key", function()
        local c = manager()
        assert.is_false(c:delete("k"))
    end)

    it("makes the next get miss", function()
        local c = manager()
        c:set("k", 1)
        c:delete("k")
        assert.are.same({ nil, false }, { c:get("k") })
    end)

    it("counts only deletes that removed a key", function()
        local c = manager()
        c:set("k", 1)
        c:delete("k")
        c:delete("k")
        assert.are.equal(1, c:stats().deletes)
    end)

    it("removes a stored nil", function()
        local c = manager()
        c:set("k", nil)
        assert.is_true(c:delete("k"))
    end)
end)

describe("exists", function()
    it("is true for a stored key", function()
        local c = manager()
        c:set("k", 1)
        assert.is_true(c:exists("k"))
    end)

    it("is true for a stored nil", function()
        local c = manager()
        c:set("k", nil)
        assert.is_true(c:exists("k"))
    end)

    it("is false for a missing key", function()
        local c = manager()
        assert.is_false(c:exists("k"))
    end)

    it("counts neither a hit nor a miss", function()
        local c = manager()
        c:set("k", 1)
        c:exists("k")
        c:exists("zz")
        assert.are.same({ 0, 0 }, { c:stats().hits, c:stats().misses })
    end)
end)

describe("clear", function()
    it("removes every key without a pattern and returns the count", function()
        local c = manager()
        c:set("a", 1)
        c:set("b", 2)
        assert.are.same({ 2, 0 }, { c:clear(), c:stats().keys })
    end)

    it("removes only the keys matching the pattern", function()
        local c = manager()
        c:set("user:1", 1)
        c:set("user:2", 2)
        c:set("video:1", 3)
        assert.are.equal(2, c:clear("user:*"))
    end)

    it("keeps the keys not matching the pattern", function()
        local c = manager()
        c:set("user:1", 1)
        c:set("video:1", 3)
        c:clear("user:*")
        assert.are.same({ 3, true }, { c:get("video:1") })
    end)

    it("returns 0 when nothing matches", function()
        local c = manager()
        c:set("a", 1)
        assert.are.equal(0, c:clear("b*"))
    end)

    it("counts the cleared keys as deletes", function()
        local c = manager()
        c:set("a", 1)
        c:set("b", 2)
        c:clear()
        assert.are.equal(2, c:stats().deletes)
    end)

    it("raises for a pattern that is not a string", function()
        local c = manager()
        assert.has_error(function() c:clear(1) end, "pattern must be a string, got number")
    end)
end)

describe("namespace", function()
    it("is prefixed to every stored key", function()
        local plain, ns = manager(), manager { namespace = "ns:" }
        plain:set("k", "v")
        ns:set("k", "v")
        assert.are.equal(#"ns:", ns:stats().memory_bytes - plain:stats().memory_bytes)
    end)

    it("is transparent to get", function()
        local c = manager { namespace = "ns:" }
        c:set("k", "v")
        assert.are.same({ "v", true }, { c:get("k") })
    end)

    it("is transparent to number keys", function()
        local c = manager { namespace = "ns:" }
        c:set(42, "v")
        assert.are.same({ "v", true }, { c:get("42") })
    end)

    it("is transparent to patterns", function()
        local c = manager { namespace = "ns:" }
        c:set("user:1", 1)
        c:set("video:1", 2)
        assert.are.equal(1, c:clear("user:*"))
    end)

    it("is matched literally when it contains glob characters", function()
        local c = manager { namespace = "[x]*?\\" }
        c:set("a", 1)
        assert.are.equal(1, c:clear("a"))
    end)

    it("is reported by stats", function()
        local c = manager { namespace = "ns:" }
        assert.are.equal("ns:", c:stats().namespace)
    end)
end)

describe("mget", function()
    it("returns the values in key order with n", function()
        local c = manager()
        c:set("a", 1)
        c:set("b", 2)
        assert.are.same({ n = 2, 1, 2 }, c:mget { "a", "b" })
    end)

    it("takes keys.n, so the key list itself may have holes", function()
        local c = manager()
        c:set("a", 1)
        assert.are.same({ n = 3, 1, nil, 1 }, c:mget { n = 3, "a", nil, "a" })
    end)

    it("leaves a nil hole for a missing key", function()
        local c = manager()
        c:set("b", 2)
        assert.are.same({ n = 3, nil, 2, nil }, c:mget { "a", "b", "c" })
    end)

    it("returns an empty result for no keys", function()
        local c = manager()
        assert.are.same({ n = 0 }, c:mget {})
    end)

    it("counts a hit or a miss per key", function()
        local c = manager()
        c:set("a", 1)
        c:mget { "a", "a", "zz" }
        assert.are.same({ 2, 1 }, { c:stats().hits, c:stats().misses })
    end)

    it("returns fresh tables", function()
        local c = manager()
        c:set("a", { 1 })
        local r = c:mget { "a" }
        r[1][1] = 99
        assert.are.same({ 1 }, (c:get("a")))
    end)

    it("raises when keys is not a table", function()
        local c = manager()
        assert.has_error(function() c:mget("a") end, "keys must be a table, got string")
    end)

    it("raises for a bad key among the keys", function()
        local c = manager()
        assert.has_error(function() c:mget { "a", true } end,
                         "key must be a string or a number, got boolean")
    end)
end)

describe("mset", function()
    it("returns true", function()
        local c = manager()
        assert.is_true(c:mset { a = 1 })
    end)

    it("stores every pair", function()
        local c = manager()
        c:mset { a = 1, b = { x = true }, [3] = "three" }
        assert.are.same({ n = 3, 1, { x = true }, "three" }, c:mget { "a", "b", 3 })
    end)

    it("stores nothing when one value cannot be cached", function()
        local c = manager()
        local ok, err = pcall(c.mset, c, { a = 1, b = print, c = 3 })
        assert.is_false(ok)
        assert.matches("cannot cache a function at value (key b)", err, 1, true)
        assert.are.equal(0, c:stats().keys)
    end)

    describe("when a backend refuses one pair", function()
        local size                  -- bytes of one entry "k<n>" = 8 bytes
        local c, ok, err

        lazy_setup(function()
            -- given: room for the small pairs, not for the big one
            size = entry_overhead() + #"k1" + #core.encode("12345678")
            c = manager { max_memory = 3 * size }
            -- when
            ok, err = c:mset { k1 = "12345678", big = string.rep("x", 4 * size),
                               k2 = "12345678" }
        end)

        it("returns false and the reason, naming the refused key", function()
            assert.are.same({ false, "entry is larger than the store's byte limit (key big)" },
                            { ok, err })
        end)

        it("stores every other pair", function()
            assert.are.same({ n = 3, "12345678", nil, "12345678" },
                            c:mget { "k1", "big", "k2" })
        end)
    end)

    it("names a refused number key exactly", function()
        local c = manager { max_memory = 10 }
        assert.are.same({ false, "entry is larger than the store's byte limit "
                                 .. "(key 123456789012345)" },
                        { c:mset { [123456789012345] = "too big for 10 bytes" } })
    end)

    it("names the key of a value that cannot be cached", function()
        local c = manager()
        assert.has_error(function() c:mset { b = print } end,
                         "cannot cache a function at value (key b)")
    end)

    it("raises for a bad key in the map", function()
        local c = manager()
        assert.has_error(function() c:mset { [true] = 1 } end,
                         "key must be a string or a number, got boolean")
    end)

    it("raises when the map is not a table", function()
        local c = manager()
        assert.has_error(function() c:mset(nil) end, "map must be a table, got nil")
    end)

    it("raises for a negative ttl", function()
        local c = manager()
        assert.has_error(function() c:mset({ a = 1 }, -1) end, "ttl must be >= 0")
    end)
end)

describe("stats", function()
    it("has every documented field with its type", function()
        local s = manager():stats()
        local types = {}
        for _, f in ipairs { "hits", "misses", "hit_rate", "sets", "deletes", "errors",
                             "using_redis", "backend", "evictions", "expired", "keys",
                             "memory_bytes", "reconnects" } do
            types[f] = type(s[f])
        end
        assert.are.same({
            hits = "number", misses = "number", hit_rate = "number", sets = "number",
            deletes = "number", errors = "number", using_redis = "boolean",
            backend = "string", evictions = "number", expired = "number",
            keys = "number", memory_bytes = "number", reconnects = "number",
        }, types)
    end)

    it("counts exactly after a known sequence", function()
        -- given
        local c = manager()
        -- when
        c:set("a", 1)
        c:set("b", 2)
        c:set("b", 3)
        c:get("a")
        c:get("b")
        c:get("a")
        c:get("zz")
        c:delete("a")
        c:delete("zz")
        c:exists("b")
        -- then
        local s = c:stats()
        assert.are.same(
            { hits = 3, misses = 1, hit_rate = 0.75, sets = 3, deletes = 1, errors = 0,
              keys = 1, evictions = 0, expired = 0 },
            { hits = s.hits, misses = s.misses, hit_rate = s.hit_rate, sets = s.sets,
              deletes = s.deletes, errors = s.errors, keys = s.keys,
              evictions = s.evictions, expired = s.expired })
    end)

    it("reports a hit rate of 0 before any get", function()
        assert.are.equal(0, manager():stats().hit_rate)
    end)

    it("reports a hit rate of hits / (hits + misses)", function()
        local c = manager()
        c:set("a", 1)
        c:get("a")
        c:get("x")
        c:get("y")
        assert.are.equal(1 / 3, c:stats().hit_rate)
    end)

    it("counts memory as overhead + key + encoded value per entry", function()
        local c = manager()
        local overhead = entry_overhead()
        c:set("a", "x")
        c:set("bbb", { 1, 2, 3 })
        assert.are.equal(2 * overhead + #"a" + #core.encode("x") + #"bbb"
                         + #core.encode({ 1, 2, 3 }), c:stats().memory_bytes)
    end)

    it("reports no memory once every key is cleared", function()
        local c = manager()
        c:set("a", "x")
        c:clear()
        assert.are.equal(0, c:stats().memory_bytes)
    end)

    it("returns a new table on every call", function()
        local c = manager()
        local s = c:stats()
        s.hits = 100
        assert.are.equal(0, c:stats().hits)
    end)

    it("is the same method as get_stats", function()
        local c = manager()
        assert.are.equal(c.stats, c.get_stats)
    end)

    it("raises when called without a manager", function()
        local c = manager()
        assert.has_error(function() c.stats() end,
                         "bad self in stats: expected a cache manager (use c:stats(...))")
    end)
end)

describe("max_items", function()
    it("evicts the least recently used key", function()
        -- given
        local c = manager { max_items = 3 }
        c:set("a", 1)
        c:set("b", 2)
        c:set("c", 3)
        c:get("a")
        -- when
        c:set("d", 4)
        -- then
        assert.are.same({ a = true, b = false, c = true, d = true },
                        { a = c:exists("a"), b = c:exists("b"),
                          c = c:exists("c"), d = c:exists("d") })
    end)

    it("counts the eviction", function()
        local c = manager { max_items = 2 }
        c:set("a", 1)
        c:set("b", 2)
        c:set("c", 3)
        assert.are.same({ 1, 2 }, { c:stats().evictions, c:stats().keys })
    end)

    it("treats an overwrite as a use", function()
        local c = manager { max_items = 2 }
        c:set("a", 1)
        c:set("b", 2)
        c:set("a", 10)
        c:set("c", 3)
        assert.are.same({ true, false }, { c:exists("a"), c:exists("b") })
    end)

    it("does not treat exists as a use", function()
        local c = manager { max_items = 2 }
        c:set("a", 1)
        c:set("b", 2)
        c:exists("a")
        c:set("c", 3)
        assert.are.same({ false, true }, { c:exists("a"), c:exists("b") })
    end)
end)

describe("max_memory", function()
    local size                  -- bytes of one entry "k<n>" = 8 bytes

    lazy_setup(function()
        size = entry_overhead() + #"k1" + #core.encode("12345678")
    end)

    it("evicts the least recently used keys to stay under the byte limit", function()
        local c = manager { max_memory = 2 * size + 1 }
        c:set("k1", "12345678")
        c:set("k2", "12345678")
        c:set("k3", "12345678")
        assert.are.same({ false, true, true },
                        { c:exists("k1"), c:exists("k2"), c:exists("k3") })
    end)

    it("keeps memory_bytes within the limit", function()
        local c = manager { max_memory = 2 * size + 1 }
        for i = 1, 5 do c:set("k" .. i, "12345678") end
        assert.are.same({ 2 * size, 3 }, { c:stats().memory_bytes, c:stats().evictions })
    end)

    it("accepts a size with a unit", function()
        assert.are.equal(256 * 1024 * 1024, manager({ max_memory = "256mb" }):stats().max_memory)
    end)

    describe("when one value is larger than the limit", function()
        it("returns false and the reason from set", function()
            local c = manager { max_memory = size }
            assert.are.same({ false, "entry is larger than the store's byte limit" },
                            { c:set("k1", string.rep("x", 100)) })
        end)

        it("removes the previous value of the key", function()
            local c = manager { max_memory = size }
            c:set("k1", "12345678")
            c:set("k1", string.rep("x", 100))
            assert.are.same({ nil, false }, { c:get("k1") })
        end)

        it("counts an error and no set", function()
            local c = manager { max_memory = size }
            c:set("k1", string.rep("x", 100))
            assert.are.same({ 1, 0 }, { c:stats().errors, c:stats().sets })
        end)

        it("keeps the other keys", function()
            local c = manager { max_memory = 2 * size }
            c:set("k1", "12345678")
            c:set("k2", string.rep("x", 100))
            assert.are.same({ "12345678", true }, { c:get("k1") })
        end)
    end)
end)

describe("cache.glob_escape", function()
    it("escapes every glob character", function()
        assert.are.equal("a\\*\\?\\[b\\]\\\\", cache.glob_escape("a*?[b]\\"))
    end)

    it("raises for a number at the caller's line", function()
        local line = debug.getinfo(1, "l").currentline + 1
        local err = error_of(function() cache.glob_escape(5) end)
        assert.are.equal("api_spec.lua:" .. line .. ": text must be a string, got number",
                         err:match("[^/]*$"))
    end)

    it("raises for nil", function()
        assert.has_error(function() cache.glob_escape() end, "text must be a string, got nil")
    end)
end)

describe("module-level functions", function()
    local names = { "connect", "disconnect", "get", "set", "delete", "exists",
                    "clear", "mget", "mset", "stats", "get_stats" }

    before_each(function()
        cache.clear()
    end)

    for _, name in ipairs(names) do
        it("include cache." .. name, function()
            assert.are.equal("function", type(cache[name]))
        end)
    end

    it("use the default manager", function()
        cache.set("api_spec:k", "v")
        assert.are.same({ "v", true }, { cache.default():get("api_spec:k") })
    end)

    it("count in the default manager's stats", function()
        local before = cache.stats().sets
        cache.set("api_spec:k", "v")
        assert.are.equal(before + 1, cache.stats().sets)
    end)

    it("are isolated from a new manager", function()
        cache.set("api_spec:k", "default")
        local c = manager()
        assert.are.same({ nil, false }, { c:get("api_spec:k") })
    end)

    it("offer get_stats as the same function as stats", function()
        assert.are.equal(cache.stats, cache.get_stats)
    end)

    it("raise a bad ttl at the caller's line", function()
        local line = debug.getinfo(1, "l").currentline + 1
        local err = error_of(function() cache.set("api_spec:k", 1, -1) end)
        assert.are.equal("api_spec.lua:" .. line .. ": ttl must be >= 0",
                         err:match("[^/]*$"))
    end)

    it("raise a bad key at the caller's line", function()
        local line = debug.getinfo(1, "l").currentline + 1
        local err = error_of(function() cache.get(true) end)
        assert.are.equal("api_spec.lua:" .. line
                         .. ": key must be a string or a number, got boolean",
                         err:match("[^/]*$"))
    end)
end)

-- Issue 6 (8j, 8k, core.new limits): the internal protocol of cache.core.
-- Requests are only asynchronous over Redis, so this block starts its own
-- private redis-server (helpers.start_redis) and stops it by PID.
describe("cache.core safety #redis", function()
    local ffi = require "ffi"
    local direct = require "cache.direct"
    local sched = require "cachert"
    local server, c

    -- A manager connected to the private server; not kept anywhere else.
    local function connected()
        local m = cache.new{ host = "127.0.0.1", port = server.port,
                             timeout = 2, pool_size = 2 }
        assert.is_true(m:connect())
        return m
    end

    -- The message of an error a call raised, without the position.
    local function message_of(fn)
        local err = error_of(fn)
        return err and (err:gsub("^[^\n]-:%d+: ", ""))
    end

    -- Starts core.get and checks that it went out to Redis: returns its id.
    local function get_async(engine, key)
        local pending, id = core.get(engine, key, false)
        assert.is_true(pending)
        assert.are.equal("number", type(id))
        return id
    end

    setup(function()
        server = helpers.start_redis()
        c = connected()
    end)

    teardown(function()
        if c then c:disconnect() end
        helpers.stop_redis(server)
    end)

    describe("core.finish", function()
        it("returns the results of an id the loop reported, once", function()
            helpers.in_task(function()
                assert.is_true(c:set("safety:k", "v"))
                local id = get_async(c.engine, "safety:k")
                sched.wait(id)
                assert.are.same({ n = 2, true, "v" }, pack(core.finish(id)))
                assert.are.equal("no pending request " .. id,
                                 message_of(function() core.finish(id) end))
            end)
        end)

        it("raises for a request still out, and still finishes it later",
           function()
            helpers.in_task(function()
                local id = get_async(c.engine, "safety:absent")
                assert.are.equal("request " .. id .. " has not finished",
                                 message_of(function() core.finish(id) end))
                sched.wait(id)
                assert.are.same({ n = 1, false }, pack(core.finish(id)))
            end)
        end)

        it("raises for ids that were never issued", function()
            local timer = core.timer(0)   -- an id, but of a timer
            helpers.in_task(function() sched.wait(timer) end)
            for _, id in ipairs { 0, -1, 1.5, timer, 2 ^ 53, 2 ^ 63, 1 / 0,
                                  -1 / 0 } do
                assert.are.equal("no pending request " .. tostring(id),
                                 message_of(function() core.finish(id) end))
            end
            assert.matches("^no pending request [-]?nan$",
                           message_of(function() core.finish(0 / 0) end))
        end)

        it("raises for values that are not ids, pointers included", function()
            local bogus = { core.direct_api(), core.engine_ptr(c.engine), "1",
                            true, {}, print, c.engine, ffi.new("int[1]") }
            for i = 1, #bogus do
                local err = message_of(function() core.finish(bogus[i]) end)
                assert.matches("bad argument #1 to '[^']*' %(request id expected, got "
                               .. type(bogus[i]) .. "%)", err)
            end
            assert.matches("request id expected, got no value",
                           message_of(function() core.finish() end))
        end)

        it("finishes 50 requests in flight in any order", function()
            helpers.in_task(function()
                for i = 1, 50 do
                    assert.is_true(c:set("safety:n" .. i, i))
                end
                local ids = {}
                for i = 1, 50 do
                    ids[i] = get_async(c.engine, "safety:n" .. i)
                end
                for i = 1, 50 do sched.wait(ids[i]) end
                -- newest, oldest, then from the middle outwards
                local order = { 50, 1 }
                for i = 25, 2, -1 do
                    order[#order + 1] = i
                    order[#order + 1] = 51 - i
                end
                assert.are.equal(50, #order)
                for _, i in ipairs(order) do
                    assert.are.same({ n = 2, true, i }, pack(core.finish(ids[i])))
                end
                for i = 1, 50 do
                    assert.are.equal("no pending request " .. ids[i],
                                     message_of(function() core.finish(ids[i]) end))
                end
            end)
        end)

        it("serves 50 concurrent tasks through the public API", function()
            helpers.in_task(function()
                assert.is_true(c:set("safety:w3", "value"))
                local tasks = {}
                for i = 1, 50 do
                    tasks[i] = sched.spawn(function()
                        return c:get("safety:w3")
                    end)
                end
                for i = 1, 50 do
                    assert.are.same({ n = 2, "value", true },
                                    pack(tasks[i]:join()))
                end
            end)
        end)
    end)

    describe("a request whose manager was closed while it was out", function()
        it("finishes once, as a miss", function()
            helpers.in_task(function()
                local m = connected()
                assert.is_true(m:set("safety:closed", "v"))
                local id = get_async(m.engine, "safety:closed")
                core.close(m.engine)
                assert.are.same({ n = 1, false }, pack(core.finish(id)))
                assert.are.equal("no pending request " .. id,
                                 message_of(function() core.finish(id) end))
            end)
        end)

        it("does not report an undecodable hit to the freed engine", function()
            helpers.in_task(function()
                local m = connected()
                -- 0xc1 is never used in MessagePack: the hit cannot be decoded
                assert.is_true(m:get("safety:probe") == nil)
                local ok, id = core.set_raw(m.engine, "safety:bad", "\193", 0)
                if ok then
                    sched.wait(id)
                    core.finish(id)
                end
                id = get_async(m.engine, "safety:bad")
                sched.wait(id)              -- the reply is in
                core.close(m.engine)
                core.poll(false)            -- the engine is freed now
                assert.are.same({ n = 1, false }, pack(core.finish(id)))
            end)
        end)

        it("finishes once when the manager was garbage-collected", function()
            -- The manager is unreachable once this returns.
            local function start()
                local m = connected()
                assert.is_true(m:set("safety:gc", "v"))
                return get_async(m.engine, "safety:gc")
            end
            helpers.in_task(function()
                local id = start()
                collectgarbage()
                collectgarbage()
                sched.wait(id)
                -- a miss, not "v": the collection failed the request
                assert.are.same({ n = 1, false }, pack(core.finish(id)))
                assert.are.equal("no pending request " .. id,
                                 message_of(function() core.finish(id) end))
            end)
        end)
    end)

    describe("the FFI direct API check", function()
        local size = ffi.sizeof("cachert_direct_api")

        it("accepts cache.core's struct", function()
            local api = direct._check_api(core.direct_api(),
                                          direct._API_VERSION, size)
            assert.are.equal(direct._API_VERSION, api.version)
            assert.are.equal(size, api.size)
        end)

        it("raises on another version", function()
            local v = direct._API_VERSION
            assert.has_error(function()
                direct._check_api(core.direct_api(), v + 1, size)
            end, ("cache.direct: cache.core's direct API is version %d (%d bytes) "
                  .. "but lua/cache/direct.lua expects version %d (%d bytes): "
                  .. "the Lua modules and cache.core come from different builds")
                 :format(v, size, v + 1, size))
        end)

        it("raises on another size", function()
            assert.matches("is version %d+ %(" .. size .. " bytes%) but "
                           .. "lua/cache/direct.lua expects version %d+ %("
                           .. (size + 8) .. " bytes%)",
                           message_of(function()
                               direct._check_api(core.direct_api(),
                                                 direct._API_VERSION, size + 8)
                           end))
        end)

        it("raises when the C side describes another layout", function()
            local fake = ffi.new("cachert_direct_api_header[1]",
                                 { { direct._API_VERSION + 1, size - 8 } })
            assert.matches("direct API is version " .. (direct._API_VERSION + 1)
                           .. " %(" .. (size - 8) .. " bytes%)",
                           message_of(function()
                               direct._check_api(fake, direct._API_VERSION, size)
                           end))
            assert.has_error(function()
                direct._check_api(nil, direct._API_VERSION, size)
            end, "cache.direct: cache.core returned no direct API")
        end)
    end)

    describe("core.new", function()
        it("takes max_value_bytes from 0 to 512 MiB, or nil", function()
            for _, v in ipairs { 0, 1, 536870912 } do
                core.close(core.new(10, 1000, "*", 0, v))
            end
            core.close(core.new(10, 1000, "*", nil, nil))
        end)

        it("raises for max_value_bytes out of range", function()
            for _, v in ipairs { -1, 536870913, 1 / 0, 0 / 0 } do
                assert.matches("bad argument #5 to '[^']*' %(max_value_bytes must be "
                               .. "a number from 0 to 536870912, got ",
                               message_of(function() core.new(10, 1000, "*", 0, v) end))
            end
            assert.matches("bad argument #5 to '[^']*' %(number expected, got string%)",
                           message_of(function() core.new(10, 1000, "*", 0, "x") end))
        end)

        it("raises for counts and sizes that are not finite or >= 2^53",
           function()
            local args = { 10, 1000, "*", 0 }
            for _, pos in ipairs { 1, 2, 4 } do
                local name = ({ "max_items", "max_bytes", nil, "journal_max_keys" })[pos]
                for _, v in ipairs { -1, 2 ^ 53, 1 / 0, -1 / 0, 0 / 0 } do
                    local a = { unpack(args) }
                    a[pos] = v
                    assert.matches(("bad argument #%d to '[^']*' %%(%s must be a number "
                                    .. "from 0 to 2%%^53 %%- 1, got "):format(pos, name),
                                   message_of(function() core.new(unpack(a, 1, 4)) end))
                end
                local a = { unpack(args) }
                a[pos] = 2 ^ 53 - 1
                core.close(core.new(unpack(a, 1, 4)))
            end
        end)
    end)
end)
