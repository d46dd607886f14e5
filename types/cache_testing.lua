---@meta cache.testing
-- LuaLS type stubs for `require "cache.testing"` (declarations only: never
-- loaded at run time), the helper for users' own specs (docs/testing.md).
-- spec/types_spec.lua checks that every function and option is declared.

---@class cache.testing.Options
---@field namespace? string prefix for every key and pattern (default "")
---@field default_ttl? number TTL in seconds when a call gives none; 0 = no expiry (default 300)
---@field max_items? integer memory-store entry limit; 0 = none (default 100000)
---@field max_memory? integer|string memory-store byte limit, e.g. "256mb" (default 64mb)
---@field max_value_bytes? integer|string largest key + encoded value a set accepts
---@field codec? "msgpack" value format
---@field log_level? "error"|"warn"|"info"|"debug"|"off" what cachert logs

---Isolated memory-only managers and a clock that tests move forward.
local testing = {}

---A fresh memory-only manager with its own store, counters at 0; settings
---from `options` and the defaults only (no environment, no .env); connect()
---returns false without touching the network.
---@param options? cache.testing.Options
---@return cache.Manager
function testing.new(options) end

---A fresh test manager becomes the default one (cache.get, cache.cached
---without cache=, ...) until teardown(); calls nest. For before_each.
---@param options? cache.testing.Options
---@return cache.Manager
function testing.setup(options) end

---Restores the default manager the last setup() replaced. For after_each.
function testing.teardown() end

---Runs fn(manager) with a fresh test manager as the default one and
---restores the previous default afterwards, also when fn raises.
---@generic R
---@param fn fun(manager: cache.Manager): R
---@param options? cache.testing.Options
---@return R
function testing.isolate(fn, options) end

---Moves the memory-store clock of every live manager `seconds` forward
---(>= 0, rounded to the millisecond): TTLs expire without sleeping.
---Redis TTLs, cachert.sleep and timers keep real time.
---@param seconds number
---@return number now testing.now()
function testing.advance(seconds) end

---The test clock in seconds: cachert.now() plus everything advanced.
---@return number
function testing.now() end

---Seconds advance() added so far, in all.
---@return number
function testing.advanced() end

return testing
