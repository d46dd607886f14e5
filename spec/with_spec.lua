-- spec/with_spec.lua -- cache.with: connect, run fn, always disconnect.
-- Runs under luajit and under cachert.

local cache = require "cache"

-- The message of the error fn raises, after checking that its position
-- names this file: misuse is reported at the caller's line.
local function caller_error(fn)
    local ok, err = pcall(fn)
    assert.is_false(ok)
    local where, msg = tostring(err):match("^(.-):%d+: (.*)$")
    assert.are.equal("with_spec.lua", where and where:match("[^/]*$"))
    return msg
end

local function pack(...)
    return { n = select("#", ...), ... }
end

-- A manager whose connect / disconnect calls are logged, in order, in
-- the returned log.
local function spied_manager()
    local c = cache.new()
    local log = {}
    function c.connect(self)
        log[#log + 1] = "connect"
        return cache.Manager.connect(self)
    end
    function c.disconnect(self)
        log[#log + 1] = "disconnect"
        return cache.Manager.disconnect(self)
    end
    return c, log
end

describe("cache.with", function()
    it("runs fn with the default manager when given no options", function()
        local seen
        cache.with(function(c) seen = c end)
        assert.are.equal(cache.default(), seen)
    end)

    it("returns every value fn returned, trailing nils included", function()
        assert.are.same({ n = 3, "a", nil, nil },
                        pack(cache.with(function() return "a", nil, nil end)))
    end)

    it("runs fn with the manager given as options", function()
        local c = cache.new()
        local seen
        cache.with(function(m) seen = m end, c)
        assert.are.equal(c, seen)
    end)

    it("connects before fn and disconnects after it", function()
        local c, log = spied_manager()
        cache.with(function() log[#log + 1] = "fn" end, c)
        assert.are.same({ "connect", "fn", "disconnect" }, log)
    end)

    it("disconnects when fn raises", function()
        local c, log = spied_manager()
        local ok, err = pcall(cache.with, function() error("boom", 0) end, c)
        assert.are.same({ false, "boom" }, { ok, err })
        assert.are.same({ "connect", "disconnect" }, log)
    end)

    it("re-raises the same error value", function()
        local e = { code = 1 }
        local _, err = pcall(cache.with, function() error(e) end, cache.new())
        assert.are.equal(e, err)
    end)

    it("re-raises a string error unchanged", function()
        local _, err = pcall(cache.with, function() error("boom", 0) end, cache.new())
        assert.are.equal("boom", err)
    end)

    it("creates a new manager from an options table", function()
        local seen
        cache.with(function(c) seen = c end, { namespace = "w:" })
        assert.are_not.equal(cache.default(), seen)
    end)

    it("configures the new manager from the options table", function()
        local namespace = cache.with(function(c) return c:stats().namespace end,
                                     { namespace = "w:" })
        assert.are.equal("w:", namespace)
    end)

    it("keeps the entries of a new manager out of the default one", function()
        cache.delete("with:k")
        cache.with(function(c) c:set("with:k", 1) end, {})
        assert.is_false(cache.exists("with:k"))
    end)

    it("lets fn use the manager it is given", function()
        local c = cache.new()
        cache.with(function(m) m:set("k", "v") end, c)
        assert.are.same({ "v", true }, { c:get("k") })
    end)

    it("rejects a fn that is not callable", function()
        assert.are.equal("fn must be callable",
                         caller_error(function() cache.with(42) end))
    end)

    it("rejects options that are neither a table nor a manager", function()
        assert.are.equal("options must be a table or a manager",
                         caller_error(function() cache.with(function() end, "x") end))
    end)

    it("reports an unknown option at the caller's line", function()
        assert.are.equal("unknown option 'bogus'",
                         caller_error(function() cache.with(function() end, { bogus = 1 }) end))
    end)

    it("does not run fn when the options are malformed", function()
        local ran = false
        local ok, err = pcall(cache.with, function() ran = true end, { port = "abc" })
        assert.is_false(ok)
        assert.matches("option port must be an integer between 1 and 65535", err, 1, true)
        assert.is_false(ran)
    end)
end)
