--- For users' own specs: isolated managers and a clock that tests move
-- forward instead of sleeping. The guide is docs/testing.md.
--
--     local testing = require "cache.testing"
--     before_each(testing.setup)     -- a fresh, memory-only default manager
--     after_each(testing.teardown)   -- the previous default back
--     ... testing.advance(301)       -- a 300 s TTL has now expired
--
-- @module cache.testing

-- A test manager is memory only: its settings come from its options and
-- the defaults alone (neither the environment nor .env is read, so a
-- REDIS_URL there changes nothing) and connect() returns false without
-- touching the network. Each has its own memory store, so tests never see
-- each other's keys, and its counters start at 0.
--
-- The clock: advance(seconds) moves the memory-store clock of every live
-- manager of this Lua state forward (TTLs, neg_ttl, stale_ttl windows and
-- the sweep of expired entries read it). Real time keeps flowing on top;
-- the clock never goes back. Redis's TTLs, cachert.sleep, timers and the
-- near cache (which only exists with Redis) keep real time.

local cache = require "cache"
local core = require "cache.core"
local sched = require "cachert"

local is_callable = require("cache.util").is_callable

local type, error, tostring, pairs, pcall = type, error, tostring, pairs, pcall
local floor = math.floor

local hooks = cache._testing

local _M = {}

-- The options a memory-only manager can use (the others are Redis's).
local OPTIONS = { "namespace", "default_ttl", "max_items", "max_memory",
                  "max_value_bytes", "codec", "log_level" }
local ALLOWED = {}
for _, name in ipairs(OPTIONS) do ALLOWED[name] = true end

local MAX_SECONDS = 9e12    -- cache.core takes less than 9e15 ms at a time

-- Milliseconds advanced so far, in all (never decreases).
local advanced_ms = 0

-- Raises at `level` (counted from the caller of check_options) for
-- options a test manager does not take.
local function check_options(opts, fname, level)
    if opts == nil then return end
    if type(opts) ~= "table" then
        error(("cache.testing.%s: options must be a table or nil, got %s")
              :format(fname, type(opts)), level + 1)
    end
    for k in pairs(opts) do
        if not ALLOWED[k] then
            error(("cache.testing.%s: option '%s' is not for a test manager, which "
                   .. "is memory only (options: %s)")
                  :format(fname, tostring(k), table.concat(OPTIONS, ", ")), level + 1)
        end
    end
end

-- A new isolated manager whose clock has caught up with the test clock
-- (its store is empty: starting later changes nothing else).
local function new_test_manager(opts, level)
    local m = hooks.new(opts, level + 1)
    -- cache.core takes less than MAX_SECONDS at a time (the sum may be more;
    -- the engine's clock saturates anyway)
    if advanced_ms > 0 then
        core.advance_clock(m.engine, math.min(advanced_ms, MAX_SECONDS * 1000 - 1))
    end
    return m
end

--- A fresh memory-only manager with its own store; nothing comes from
-- the environment or `.env`, and `connect()` returns false.
-- @tparam[opt] table opts namespace, default_ttl, max_items, max_memory,
-- max_value_bytes, codec, log_level (as for `cache.new`)
-- @treturn cache.Manager
-- @raise any other option (they are Redis's)
function _M.new(opts)
    check_options(opts, "new", 2)
    local m = new_test_manager(opts, 2)
    return m
end

-- The defaults that setup() replaced, innermost last (false: there was
-- none yet; cache makes one from the environment on first use).
local saved = {}

--- Makes a fresh test manager the default one (`cache.get`,
-- `cache.cached(...)` without `cache=`, ...) until `teardown()`. Calls
-- nest. Fits busted's `before_each(testing.setup)`.
-- @tparam[opt] table opts as for `new`
-- @treturn cache.Manager the new default manager
function _M.setup(opts)
    check_options(opts, "setup", 2)
    local m = new_test_manager(opts, 2)
    saved[#saved + 1] = hooks.swap_default(m) or false
    return m
end

--- Brings back the default manager that the last `setup()` replaced.
-- @raise when there is no `setup()` to undo
function _M.teardown()
    local n = #saved
    if n == 0 then
        error("cache.testing.teardown: no setup() to undo", 2)
    end
    local previous = saved[n]
    saved[n] = nil
    hooks.swap_default(previous or nil)
end

-- Undoes the setup()s above `depth` (fn may have left its own).
local function finish(depth, ok, ...)
    while #saved > depth do _M.teardown() end
    if not ok then error((...), 0) end
    return ...
end

--- Runs `fn(manager)` with a fresh test manager as the default one, and
-- restores the previous default afterwards, also when `fn` raises (the
-- error is re-raised).
-- @tparam function fn
-- @tparam[opt] table opts as for `new`
-- @return fn's results
function _M.isolate(fn, opts)
    if not is_callable(fn) then
        error("cache.testing.isolate: fn must be callable, got " .. type(fn), 2)
    end
    check_options(opts, "isolate", 2)
    local depth = #saved
    local m = _M.setup(opts)
    return finish(depth, pcall(fn, m))
end

--- Moves the memory-store clock of every live manager forward, so entries
-- expire without sleeping (TTLs, `neg_ttl`, `stale_ttl` windows). Redis
-- TTLs, `cachert.sleep` and timers keep real time.
-- @tparam number seconds >= 0, fractions allowed (rounded to the millisecond)
-- @treturn number `testing.now()`
function _M.advance(seconds)
    if type(seconds) ~= "number" or seconds ~= seconds then
        error("cache.testing.advance: seconds must be a number, got "
              .. (type(seconds) == "number" and "nan" or type(seconds)), 2)
    elseif seconds < 0 then
        error("cache.testing.advance: seconds must be >= 0 (the clock never goes "
              .. "back), got " .. tostring(seconds), 2)
    elseif seconds >= MAX_SECONDS then
        error(("cache.testing.advance: seconds must be < %g, got %s")
              :format(MAX_SECONDS, tostring(seconds)), 2)
    end
    local ms = floor(seconds * 1000 + 0.5)
    if ms > 0 then
        advanced_ms = advanced_ms + ms
        for m in pairs(hooks.live) do
            if m.engine then core.advance_clock(m.engine, ms) end
        end
    end
    return _M.now()
end

--- The test clock: the monotonic clock (`cachert.now()`) plus everything
-- `advance()` added.
-- @treturn number seconds
function _M.now()
    return sched.now() + advanced_ms / 1000
end

--- How far `advance()` has moved the clock, in all.
-- @treturn number seconds
function _M.advanced()
    return advanced_ms / 1000
end

return _M
