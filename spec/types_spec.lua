-- types_spec.lua -- the LuaLS stubs in types/ (docs/api.md: Editor types) declare
-- every public function of `cache` and `cachert`, every manager method,
-- every cached{} and cache.new option and every stats field, and nothing
-- that does not exist.

local cache = require "cache"
local cachert = require "cachert"
local config = require "cache.config"

local function slurp(path)
    local f = assert(io.open(path, "rb"))
    local text = f:read("*a")
    f:close()
    return text
end

local CACHE_STUB = slurp("types/cache.lua")
local CACHERT_STUB = slurp("types/cachert.lua")
local TESTING_STUB = slurp("types/cache_testing.lua")

-- Names declared with `function <owner><sep>name(`.
local function declared(text, owner, sep)
    local names = {}
    for name in text:gmatch("\nfunction " .. owner .. sep .. "([%w_]+)%(") do
        names[name] = true
    end
    return names
end

-- The `---@field name` lines of class `class`.
local function fields(text, class)
    local block = text:match("%-%-%-@class " .. class:gsub("%.", "%%.") .. "\n(.-)\n\n")
    assert(block, "no class " .. class)
    local names = {}
    for name in block:gmatch("%-%-%-@field ([%w_]+)") do names[name] = true end
    return names
end

local function public(module)
    local names = {}
    for k, v in pairs(module) do
        if type(v) == "function" and not k:match("^_") then names[k] = true end
    end
    return names
end

local function keys(t)
    local out = {}
    for k in pairs(t) do out[#out + 1] = k end
    table.sort(out)
    return out
end

describe("types/", function()
    it("parse as Lua", function()
        assert(loadstring(CACHE_STUB, "types/cache.lua"))
        assert(loadstring(CACHERT_STUB, "types/cachert.lua"))
        assert(loadstring(TESTING_STUB, "types/cache_testing.lua"))
    end)

    it("declare exactly the functions and options of cache.testing", function()
        local testing = require "cache.testing"
        assert.are.same(keys(public(testing)), keys(declared(TESTING_STUB, "testing", "%.")))
        -- the options it takes, as its error for another one lists them
        local _, err = pcall(testing.new, { not_an_option = 1 })
        local want = {}
        for name in tostring(err):match("%(options: ([^)]*)%)"):gmatch("[%w_]+") do
            want[name] = true
        end
        assert.are.same(keys(want), keys(fields(TESTING_STUB, "cache.testing.Options")))
    end)

    it("declare exactly the functions of cache", function()
        assert.are.same(keys(public(cache)), keys(declared(CACHE_STUB, "cache", "%.")))
    end)

    it("declare exactly the methods of a manager", function()
        assert.are.same(keys(public(cache.Manager)),
                        keys(declared(CACHE_STUB, "Manager", ":")))
    end)

    it("declare exactly the functions of cachert", function()
        assert.are.same(keys(public(cachert)), keys(declared(CACHERT_STUB, "cachert", "%.")))
    end)

    it("declare every stats field, the near-cache ones included", function()
        local s = cache.new{ near = true }:stats()
        local want = {}
        for k in pairs(s) do want[k] = true end
        want.last_error, want.cluster = true, true      -- present only sometimes
        assert.are.same(keys(want), keys(fields(CACHE_STUB, "cache.Stats")))
    end)

    it("declare every option of cache.new", function()
        local want = { near = true }
        for name in pairs(config.ENV) do
            if not name:match("^tls_") and not name:match("^near_") then want[name] = true end
        end
        assert.are.same(keys(want), keys(fields(CACHE_STUB, "cache.Options")))
    end)

    it("declare exactly the options cached{} accepts", function()
        local valid = { ttl = 1, prefix = "p", cache = cache.default(),
                        key = function() return 1 end, neg_ttl = 1, stale_ttl = 1,
                        lock = true }
        for name, v in pairs(valid) do
            assert.has_no.errors(function() cache.cached{ [name] = v } end)
        end
        assert.are.same(keys(valid), keys(fields(CACHE_STUB, "cache.CachedOptions")))
        assert.has_error(function() cache.cached{ not_an_option = 1 } end,
                         "unknown option 'not_an_option'")
    end)
end)
