-- values_spec.lua -- what a value looks like after set + get on the memory
-- store, the errors for values that cannot be cached, the MessagePack bytes
-- of a few values (cache.core.encode) and decoding of bad bytes.

local cache = require "cache"
local core = require "cache.core"

local function manager()
    return cache.new { host = "127.0.0.1", port = 1 }
end

-- The value read back after storing v.
local function roundtrip(v)
    local c = manager()
    assert(c:set("k", v))
    local out, found = c:get("k")
    assert(found, "stored value not found")
    return out
end

local function hex(s)
    return (s:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end))
end

describe("a value after set and get", function()
    describe("of a scalar", function()
        it("is nil for nil", function()
            assert.is_nil(roundtrip(nil))
        end)

        it("is true for true", function()
            assert.is_true(roundtrip(true))
        end)

        it("is false for false", function()
            assert.is_false(roundtrip(false))
        end)

        for _, n in ipairs { 0, 1, -1, 127, 128, -32, -33, 255, 65535, 65536,
                             2 ^ 31, -2 ^ 31, 2 ^ 32, -2 ^ 32 - 1 } do
            it("is the integer " .. ("%.0f"):format(n) .. " exactly", function()
                assert.are.equal(n, roundtrip(n))
            end)
        end

        it("is 2^53 exactly", function()
            assert.are.equal(2 ^ 53, roundtrip(2 ^ 53))
        end)

        it("is -2^53 exactly", function()
            assert.are.equal(-2 ^ 53, roundtrip(-2 ^ 53))
        end)

        it("keeps 2^53 and 2^53 + 2 apart", function()
            assert.are.equal(2 ^ 53 + 2, roundtrip(2 ^ 53 + 2))
        end)

        it("is 2^63 exactly", function()
            assert.are.equal(2 ^ 63, roundtrip(2 ^ 63))
        end)

        it("is -2^63 exactly", function()
            assert.are.equal(-2 ^ 63, roundtrip(-2 ^ 63))
        end)

        it("is 2^64 exactly", function()
            assert.are.equal(2 ^ 64, roundtrip(2 ^ 64))
        end)

        it("is 1/3 bit-exactly", function()
            assert.are.equal(1 / 3, roundtrip(1 / 3))
        end)

        it("is 0.1 bit-exactly", function()
            assert.are.equal(0.1, roundtrip(0.1))
        end)

        it("is 1.0000000000000002 bit-exactly, not 1", function()
            local x = 1 + 2 ^ -52
            assert.are.equal(x, roundtrip(x))
        end)

        it("is the smallest subnormal bit-exactly", function()
            local x = 2 ^ -1074
            assert.are.equal(x, roundtrip(x))
        end)

        it("is the largest double", function()
            local x = 1.7976931348623157e308
            assert.are.equal(x, roundtrip(x))
        end)

        it("keeps the sign of -0.0", function()
            assert.are.equal(-math.huge, 1 / roundtrip(-0.0))
        end)

        it("keeps 0 positive", function()
            assert.are.equal(math.huge, 1 / roundtrip(0))
        end)

        it("is nan for nan", function()
            local x = roundtrip(0 / 0)
            assert.is_true(x ~= x)
        end)

        it("is inf for inf", function()
            assert.are.equal(math.huge, roundtrip(math.huge))
        end)

        it("is -inf for -inf", function()
            assert.are.equal(-math.huge, roundtrip(-math.huge))
        end)
    end)

    describe("of a string", function()
        it("is the empty string", function()
            assert.are.equal("", roundtrip(""))
        end)

        it("keeps NUL bytes", function()
            assert.are.equal("a\0b\0", roundtrip("a\0b\0"))
        end)

        it("keeps invalid UTF-8", function()
            assert.are.equal("\255\254\192\128", roundtrip("\255\254\192\128"))
        end)

        it("keeps every byte value", function()
            local t = {}
            for i = 0, 255 do t[#t + 1] = string.char(i) end
            local s = table.concat(t)
            assert.are.equal(s, roundtrip(s))
        end)

        it("keeps UTF-8 text", function()
            assert.are.equal("h\195\169llo \226\130\172", roundtrip("h\195\169llo \226\130\172"))
        end)

        it("keeps a 1 MiB binary string", function()
            local s = string.rep("\0\1\255x", 256 * 1024)
            assert.are.equal(s, roundtrip(s))
        end)

        -- set() stores a string through the FFI (ASCII gets its str header
        -- without the UTF-8 check): the stored bytes must be core.encode's.
        it("is stored as core.encode writes it, at every header size", function()
            local ffi = require "ffi"
            local direct = require "cache.direct"
            local api = direct._check_api(core.direct_api(), direct._API_VERSION,
                                          ffi.sizeof("cachert_direct_api"))
            local val = ffi.new("const char *[1]")
            local len = ffi.new("size_t[1]")
            local c = manager()
            for _, n in ipairs { 0, 1, 7, 8, 9, 31, 32, 255, 256, 65535, 65536 } do
                for _, tail in ipairs { "", "\195\169", "\255" } do
                    local s = ("x"):rep(n) .. tail
                    assert(c:set("k", s))
                    assert.are.equal(1, api.get(c.eptr, "k", 1, val, len))
                    assert.are.equal(hex(core.encode(s)):sub(1, 64),
                                     hex(ffi.string(val[0], len[0])):sub(1, 64))
                    assert.is_true(core.encode(s) == ffi.string(val[0], len[0]))
                    assert.are.equal(s, (c:get("k")))
                end
            end
        end)
    end)

    describe("of a table", function()
        it("is an equal array", function()
            assert.are.same({ 1, "two", 3.5, false }, roundtrip { 1, "two", 3.5, false })
        end)

        it("is an empty table", function()
            assert.are.same({}, roundtrip {})
        end)

        it("keeps the holes of an array", function()
            assert.are.same({ [1] = 1, [3] = 3, [10] = 10 },
                            roundtrip { 1, nil, 3, [10] = 10 })
        end)

        it("keeps an array that starts with a hole", function()
            assert.are.same({ [2] = "b" }, roundtrip { nil, "b" })
        end)

        it("keeps a long array", function()
            local t = {}
            for i = 1, 1000 do t[i] = i * 2 end
            assert.are.same(t, roundtrip(t))
        end)

        it("keeps nested maps", function()
            local v = { user = { name = "ann", tags = { "a", "b" },
                                 address = { city = "X", zip = 12345 } } }
            assert.are.same(v, roundtrip(v))
        end)

        it("keeps keys of mixed types apart", function()
            local v = { [true] = "bool", [1.5] = "float", x = "string",
                        [1] = "int", ["1"] = "string one", [-7] = "negative" }
            assert.are.same(v, roundtrip(v))
        end)

        it("keeps number keys numbers", function()
            local v = roundtrip { [10] = "a", [20] = "b" }
            assert.are.same({ "a", nil }, { v[10], v["10"] })
        end)

        it("keeps a false key", function()
            assert.are.equal("f", roundtrip({ [false] = "f" })[false])
        end)

        it("decodes both references to a shared subtable as equal", function()
            local shared = { x = 1 }
            local v = roundtrip { a = shared, b = shared }
            assert.are.same(v.a, v.b)
        end)

        it("decodes a shared subtable as two distinct tables", function()
            local shared = { x = 1 }
            local v = roundtrip { a = shared, b = shared }
            assert.are_not.equal(v.a, v.b)
        end)

        it("keeps a table nested MAX_DEPTH deep", function()
            local v = {}
            local cur = v
            for _ = 2, core.MAX_DEPTH do
                cur[1] = {}
                cur = cur[1]
            end
            cur[1] = "bottom"
            assert.are.same(v, roundtrip(v))
        end)

        it("ignores a metatable", function()
            local v = setmetatable({ a = 1 }, { __index = function() return "x" end })
            assert.is_nil(getmetatable(roundtrip(v)))
        end)

        it("drops the metatable of a nested table", function()
            local point = setmetatable({ x = 1 }, { __tostring = function() return "point" end })
            assert.is_nil(getmetatable(roundtrip({ p = point }).p))
        end)

        it("keeps only the raw fields, not what __index would give", function()
            local v = setmetatable({ a = 1 }, { __index = { b = 2 } })
            assert.are.same({ a = 1 }, roundtrip(v))
        end)
    end)
end)

describe("a value that cannot be cached", function()
    local c
    before_each(function()
        c = manager()
    end)

    it("raises naming a function", function()
        assert.has_error(function() c:set("k", print) end,
                         "cannot cache a function at value")
    end)

    it("raises naming the path of a nested function", function()
        assert.has_error(function() c:set("k", { callbacks = { 1, print } }) end,
                         "cannot cache a function at value.callbacks[2]")
    end)

    it("raises naming a userdata", function()
        assert.has_error(function() c:set("k", { out = io.stdout }) end,
                         "cannot cache a userdata at value.out")
    end)

    it("raises naming a thread", function()
        assert.has_error(function() c:set("k", { coroutine.create(print) }) end,
                         "cannot cache a thread at value[1]")
    end)

    it("raises naming a cyclic table", function()
        local t = { list = {} }
        t.list[1] = t
        assert.has_error(function() c:set("k", t) end,
                         "cannot cache a cyclic table at value.list[1]")
    end)

    it("raises for a table that contains itself", function()
        local t = {}
        t.self = t
        assert.has_error(function() c:set("k", t) end,
                         "cannot cache a cyclic table at value.self")
    end)

    it("raises for a table nested deeper than MAX_DEPTH", function()
        local v = {}
        local cur = v
        for _ = 1, core.MAX_DEPTH do
            cur[1] = {}
            cur = cur[1]
        end
        assert.has_error(function() c:set("k", v) end,
                         ("cannot cache a table nested deeper than %d levels at value%s(%d more)%s")
                         :format(core.MAX_DEPTH, ("[1]"):rep(8), core.MAX_DEPTH - 16,
                                 ("[1]"):rep(8)))
    end)

    it("raises naming a table key", function()
        assert.has_error(function() c:set("k", { a = { [{}] = 1 } }) end,
                         "cannot cache a table as a key at value.a")
    end)

    it("raises naming a function key", function()
        assert.has_error(function() c:set("k", { [print] = 1 }) end,
                         "cannot cache a function as a key at value")
    end)

    it("quotes a string key that is not an identifier", function()
        assert.has_error(function() c:set("k", { ["my key"] = print }) end,
                         'cannot cache a function at value["my key"]')
    end)

    it("writes number and boolean keys in brackets", function()
        assert.has_error(function() c:set("k", { [1.5] = { [true] = print } }) end,
                         "cannot cache a function at value[1.5][true]")
    end)

    it("leaves the previous value of the key in place", function()
        c:set("k", "old")
        local ok, err = pcall(c.set, c, "k", { print })
        assert.is_false(ok)
        assert.matches("cannot cache a function at value[1]", err, 1, true)
        assert.are.same({ "old", true }, { c:get("k") })
    end)

    it("does not count a set or an error", function()
        local ok, err = pcall(c.set, c, "k", { print })
        assert.is_false(ok)
        assert.matches("cannot cache a function at value[1]", err, 1, true)
        assert.are.same({ 0, 0 }, { c:stats().sets, c:stats().errors })
    end)
end)

describe("cache.core.encode", function()
    it("writes nil as c0", function()
        assert.are.equal("c0", hex(core.encode(nil)))
    end)

    it("writes booleans as c3 and c2", function()
        assert.are.equal("c3c2", hex(core.encode(true)) .. hex(core.encode(false)))
    end)

    it("writes a small integer as a positive fixint", function()
        assert.are.equal("07", hex(core.encode(7)))
    end)

    it("writes -1 as a negative fixint", function()
        assert.are.equal("ff", hex(core.encode(-1)))
    end)

    it("writes 2^53 as a uint64", function()
        assert.are.equal("cf0020000000000000", hex(core.encode(2 ^ 53)))
    end)

    it("writes -2^53 as an int64", function()
        assert.are.equal("d3ffe0000000000000", hex(core.encode(-2 ^ 53)))
    end)

    it("writes 1.5 as a float64", function()
        assert.are.equal("cb3ff8000000000000", hex(core.encode(1.5)))
    end)

    it("writes -0.0 as a float64 with the sign bit", function()
        assert.are.equal("cb8000000000000000", hex(core.encode(-0.0)))
    end)

    it("writes 2^64 as a float64", function()
        assert.are.equal("cb43f0000000000000", hex(core.encode(2 ^ 64)))
    end)

    it("writes ASCII text as a str", function()
        assert.are.equal("a3616263", hex(core.encode("abc")))
    end)

    it("writes UTF-8 text as a str", function()
        assert.are.equal("a2c3a9", hex(core.encode("\195\169")))
    end)

    it("writes a string with a NUL byte as a str", function()
        assert.are.equal("a100", hex(core.encode("\0")))
    end)

    it("writes a 32-byte string as a str8", function()
        assert.are.equal("d920", hex(core.encode(("x"):rep(32)):sub(1, 2)))
    end)

    it("writes invalid UTF-8 as a bin", function()
        assert.are.equal("c401ff", hex(core.encode("\255")))
    end)

    it("writes an overlong UTF-8 sequence as a bin", function()
        assert.are.equal("c402c080", hex(core.encode("\192\128")))
    end)

    it("writes a UTF-16 surrogate as a bin", function()
        assert.are.equal("c403eda080", hex(core.encode("\237\160\128")))
    end)

    it("writes a code point above U+10FFFF as a bin", function()
        assert.are.equal("c404f4908080", hex(core.encode("\244\144\128\128")))
    end)

    it("writes a sequence as an array", function()
        assert.are.equal("920102", hex(core.encode { 1, 2 }))
    end)

    it("writes the empty table as a map", function()
        assert.are.equal("80", hex(core.encode {}))
    end)

    it("writes an array with holes as a map", function()
        assert.are.equal("8201010303", hex(core.encode { 1, nil, 3 }))
    end)

    it("raises for a function", function()
        assert.has_error(function() core.encode(print) end,
                         "cannot cache a function at value")
    end)
end)

describe("cache.core.decode", function()
    it("reads what encode wrote", function()
        assert.are.same({ { a = { 1, 2 } }, true }, { core.decode(core.encode { a = { 1, 2 } }) })
    end)

    it("returns nil and false for empty input", function()
        assert.are.same({ n = 2, nil, false }, { n = 2, core.decode("") })
    end)

    it("returns nil and false for the reserved byte c1", function()
        assert.are.same({ n = 2, nil, false }, { n = 2, core.decode("\193") })
    end)

    it("returns nil and false for a truncated float", function()
        assert.are.same({ n = 2, nil, false }, { n = 2, core.decode("\203\0\0\0") })
    end)

    it("returns nil and false for a truncated string", function()
        assert.are.same({ n = 2, nil, false }, { n = 2, core.decode("\163ab") })
    end)

    it("returns nil and false for a truncated array", function()
        assert.are.same({ n = 2, nil, false }, { n = 2, core.decode("\146\1") })
    end)

    it("returns nil and false for trailing bytes", function()
        assert.are.same({ n = 2, nil, false }, { n = 2, core.decode("\1\2") })
    end)

    it("returns nil and false for an array that claims 2^32-1 elements", function()
        assert.are.same({ n = 2, nil, false },
                        { n = 2, core.decode("\221\255\255\255\255\1") })
    end)

    it("returns nil and false for a map with a nil key", function()
        assert.are.same({ n = 2, nil, false }, { n = 2, core.decode("\129\192\1") })
    end)

    it("returns nil and false for nesting deeper than MAX_DEPTH", function()
        local bytes = ("\145"):rep(core.MAX_DEPTH + 1) .. "\1"
        assert.are.same({ n = 2, nil, false }, { n = 2, core.decode(bytes) })
    end)

    it("returns nil and false for every truncation of a valid encoding", function()
        local bytes = core.encode { a = { 1, 2.5, "xyz" }, [true] = { x = false } }
        local decoded = 0
        for i = 0, #bytes - 1 do
            if select(2, core.decode(bytes:sub(1, i))) then
                decoded = decoded + 1
            end
        end
        assert.are.equal(0, decoded)
    end)
end)
