--- The cache module: managers, the module-level default manager, the
-- `cached` / `invalidate` decorators and `with`.
--
-- Every `Manager` method is also a module function acting on the default
-- manager: `cache.get(key)` is `cache.default():get(key)`. The guide with
-- examples is docs/api.md; settings are in docs/configuration.md.
-- @module cache

-- A manager validates arguments here (misuse raises at the caller's line),
-- applies its namespace and converts TTLs to milliseconds, then makes one
-- call into cache.core, which looks up and decodes (or encodes and stores)
-- in C. Backend failures never raise out of get/set/delete: they are
-- counted in stats() and absorbed by the memory store.

local core = require "cache.core"
local config = require "cache.config"
local util = require "cache.util"
local cachert = require "cachert"
local wait, tick = cachert.wait, cachert._tick
local pack, unpack, format_number = util.pack, unpack, util.format_number
local ttl_ms = config.ttl_ms
local direct = require "cache.direct"
local near = require "cache.near"

local type, error, setmetatable, tostring, pairs, rawset =
    type, error, setmetatable, tostring, pairs, rawset
local getmetatable = getmetatable   -- check_key runs on every get and set
local core_get, core_set, core_delete, core_exists, core_finish =
    core.get, core.set, core.delete, core.exists, core.finish
local lookup, set_string = direct.lookup, direct.set_string
local near_lookup, near_values, near_fetch, near_forget =
    near.lookup, near.values, near.fetch, near.forget

local _M = { _VERSION = "0.1.0" }

local methods = {}
local mt = { __index = methods, __name = "cache.Manager" }
mt.__tostring = function(self)
    return "cache.Manager (" .. (core.stats(self.engine).using_redis
                                  and "redis" or "memory") .. ")"
end
-- A manager has no settable fields: `c.default_ttl = 600` (the seed's
-- style) would otherwise be silently ignored. The fields the module uses
-- are all created by new_manager, so assigning them never gets here; a
-- method may still be replaced on one manager (a spy in a test, say).
mt.__newindex = function(self, name, value)
    if methods[name] == nil then
        error("unknown field '" .. tostring(name) .. "': a manager's settings are "
              .. "options of cache.new{...}", 2)
    end
    rawset(self, name, value)
end

-- Every manager alive, and the Redis settings of those that connected
-- once (kept here, not in a field: they hold the password), for the
-- journal's last chance at exit.
-- (live[m] is m's creation number: cache.metrics lists them in that order.)
local live = setmetatable({}, { __mode = "k" })
local created = 0
local redis_settings = setmetatable({}, { __mode = "k" })

-- Helpers -------------------------------------------------------------------

-- Characters with a meaning in Redis glob patterns.
local function glob_escape(s)
    return (s:gsub("[%*%?%[%]\\]", "\\%0"))
end

--- Escapes the glob characters `* ? [ ] \` of `text`, so that a pattern
-- matches it literally (`cache.clear(cache.glob_escape(id) .. ":*")`).
-- @tparam string text
-- @treturn string
function _M.glob_escape(text)
    if type(text) ~= "string" then
        error("text must be a string, got " .. type(text), 2)
    end
    return glob_escape(text)
end

local function check_self(self, fname)
    if getmetatable(self) ~= mt then
        error(("bad self in %s: expected a cache manager (use c:%s(...))")
              :format(fname, fname), 3)
    end
end

-- Returns the full key (namespace applied); a number is written exactly,
-- as in `cached` keys. Raises at the caller's caller.
local function check_key(self, key)
    if getmetatable(self) ~= mt then
        error("bad self: call manager methods as c:name(...)", 3)
    end
    local tk = type(key)
    if tk == "string" then
        local ns = self.namespace
        return ns == "" and key or ns .. key
    elseif tk == "number" then
        return self.namespace .. format_number(key)
    end
    error("key must be a string or a number, got " .. tk, 3)
end

-- Seconds (nil = the manager's default) -> milliseconds.
local function check_ttl(self, ttl)
    if ttl == nil then
        return self.default_ttl_ms
    end
    local ms, err = ttl_ms(ttl)
    if not ms then
        error(err, 3)
    end
    return ms
end


-- Managers ------------------------------------------------------------------

local function no_env() return nil end

-- cache.new and cache.with: `level` is the error level of the line to
-- blame for bad options. `isolated` (cache.testing): settings from `opts`
-- and the defaults alone (no environment, no .env), and connect() never
-- reaches Redis.
local function new_manager(opts, level, isolated)
    local ok, cfg
    if isolated then
        ok, cfg = pcall(config.resolve, opts, no_env, "")
    else
        ok, cfg = pcall(config.resolve, opts)
    end
    if not ok then
        error(cfg, level)
    end
    local self = setmetatable({
        cfg = cfg,
        namespace = cfg.namespace,
        default_ttl_ms = ttl_ms(cfg.default_ttl),
        engine = core.new(cfg.max_items, cfg.max_memory,
                          glob_escape(cfg.namespace) .. "*", cfg.journal_max_keys,
                          cfg.max_value_bytes, cfg.log_level),
        eptr = false,           -- the engine as FFI cdata (cache.direct)
        inflight = {},          -- single flight: key -> waiting tasks
        near = false,           -- the near cache (cache.near), when on
        refreshing = {},        -- stale_ttl: keys being recomputed
        stale_served = 0,       -- stale_ttl: calls answered with a stale value
        memory_only = isolated or false,
    }, mt)
    self.eptr = direct.engine(self.engine)
    if cfg.near then
        self.near = near.new(self.engine, cfg.near_max_items, cfg.near_max_memory)
    end
    created = created + 1
    live[self] = created
    return self
end

--- Creates a manager with its own memory store (and, after `connect`, its
-- own Redis pool). Options not given come from the environment, then a
-- `.env` file, then the defaults (docs/configuration.md).
-- @tparam[opt] table opts host, port, db, username, password, url,
-- pool_size, timeout, connect_timeout, command_timeout, default_ttl,
-- namespace, max_items, max_memory, max_value_bytes, journal_max_keys,
-- codec, log_level, exit_flush_timeout, tls, sentinels, sentinel_master,
-- sentinel_username, sentinel_password, cluster, cluster_nodes,
-- near = { max_items=, max_memory= } | true | false
-- @treturn Manager
-- @raise a malformed option, naming it and its source
function _M.new(opts)
    local self = new_manager(opts, 3)
    return self
end

-- The results of a core operation: at once (`false, results...`: the
-- memory store answered, which counts for the scheduler's fairness), or for
-- a Redis request (`true, id`) once the loop has reported its id.
-- `owner` (the manager) is handed to core.finish (which ignores it) so it
-- stays referenced while the request is out, even when the caller kept no
-- reference to it.
local function finish(owner, pending, ...)
    if not pending then
        tick()
        return ...
    end
    local id = ...
    wait(id)
    return core_finish(id, owner)
end
_M._finish = finish

--- A manager: its own memory store, Redis pool and settings (`cache.new`).
-- @type Manager

--- Connects to Redis (settings from the options, environment and .env).
-- When Redis cannot be reached the memory store serves and Redis is
-- retried in the background (the reason is in `stats().last_error`).
-- @treturn boolean true when Redis is in use, false when the memory store serves
-- @raise a malformed Redis setting, naming it and its source
-- @function Manager:connect
function methods:connect()
    check_self(self, "connect")
    if self.memory_only then return false end
    local ok, settings = pcall(config.redis, self.cfg)
    if not ok then
        error(settings, 2)
    end
    if self.near then
        settings.near = true
        if self.namespace ~= "" then settings.near_prefix = self.namespace end
    end
    redis_settings[self] = settings
    local using_redis = finish(self, core.connect(self.engine, settings))
    if using_redis and self.near then
        near.wait_ready(self.near, settings.connect_timeout or 2)
    end
    return using_redis
end

--- Closes the Redis connections; the memory store serves until `connect()`.
-- @treturn boolean true
-- @function Manager:disconnect
function methods:disconnect()
    check_self(self, "disconnect")
    core.disconnect(self.engine)
    return true
end

--- Reads a value.
-- @tparam string|number key
-- @param[opt] default returned when the key is absent or expired
-- @return the value (a fresh copy of a table), or `default`
-- @treturn boolean found (a stored `nil` gives `nil, true`)
-- @function Manager:get
function methods:get(key, default)
    local k = check_key(self, key)
    local N = self.near
    if N then
        local ent = near_lookup(N, k, false)
        if ent then
            tick()
            return near_values(ent), true
        end
    end
    local found, value = lookup(self.eptr, k, false)
    if found == nil then
        if N then
            found, value = near_fetch(N, self, k, false, finish)
        else
            found, value = finish(self, core_get(self.engine, k, false))
        end
    end
    if found then
        return value, true
    end
    return default, false
end

--- Stores a value.
-- @tparam string|number key
-- @param value nil, boolean, number, string or table (docs/values.md)
-- @tparam[opt] number ttl seconds, fractions allowed; 0 = no expiry;
-- nil = the manager's default
-- @treturn boolean true, or false and a reason when no backend can take it
-- @raise a value that cannot be stored (naming its type and path), a bad key or TTL
-- @function Manager:set
function methods:set(key, value, ttl)
    local k = check_key(self, key)
    local ms = check_ttl(self, ttl)
    if self.near then near_forget(self.near, k) end
    if type(value) == "string" then
        local ok, err = set_string(self.eptr, k, value, ms)
        if ok ~= nil then
            return ok, err
        end
    end
    return finish(self, core_set(self.engine, k, value, ms))
end

--- Deletes a key.
-- @tparam string|number key
-- @treturn boolean true if a key was deleted, false if there was none
-- @function Manager:delete
function methods:delete(key)
    local k = check_key(self, key)
    if self.near then near_forget(self.near, k) end
    return finish(self, core_delete(self.engine, k))
end

--- Tells whether a key holds a value (expired keys do not).
-- @tparam string|number key
-- @treturn boolean
-- @function Manager:exists
function methods:exists(key)
    return finish(self, core_exists(self.engine, check_key(self, key)))
end

--- Deletes the keys matching a Redis glob pattern (SCAN + UNLINK on Redis,
-- never KEYS), within the manager's namespace.
-- @tparam[opt="*"] string pattern
-- @treturn integer the number of keys deleted
-- @function Manager:clear
function methods:clear(pattern)
    if pattern == nil then
        pattern = "*"
    elseif type(pattern) ~= "string" then
        error("pattern must be a string, got " .. type(pattern), 2)
    end
    local ns = self.namespace
    if ns ~= "" then
        pattern = glob_escape(ns) .. pattern
    end
    if self.near then near.forget_pattern(self.near, pattern) end
    return finish(self, core.clear(self.engine, pattern))
end

-- One step of a key listing: SCAN on Redis (node after node on a
-- Cluster), the whole listing at once on the memory store. `cursor` is
-- opaque to callers: "0" to start, and "0" again when done; it is the
-- server's cursor, after "<node>:" past a Cluster's first node. Returns
-- next_cursor, keys (namespace removed), keys unlinked, "redis" | "memory";
-- or nil, err. With `unlink`, the keys found are also removed.
local function scan_step(self, pattern, cursor, count, unlink)
    local node, server_cursor = 0, cursor
    local n, rest = cursor:match("^(%d+):(%d+)$")
    if n then
        node, server_cursor = tonumber(n), rest
    elseif not cursor:match("^%d+$") then
        error("cursor must be \"0\" or a cursor scan returned, got \"" .. cursor .. "\"", 3)
    end
    local ns = self.namespace
    if ns ~= "" then
        pattern = glob_escape(ns) .. pattern
    end
    if unlink and self.near then near.forget_pattern(self.near, pattern) end
    local keys, next_node, next_cursor, unlinked, where =
        finish(self, core.scan(self.engine, node, server_cursor, pattern, count, unlink))
    if keys == nil then
        return nil, next_node
    end
    if ns ~= "" then
        local from = #ns + 1
        for i = 1, #keys do keys[i] = keys[i]:sub(from) end
    end
    if next_node == nil then
        next_cursor = "0"
    elseif next_node > 0 then
        next_cursor = ("%d:%s"):format(next_node, next_cursor)
    end
    return next_cursor, keys, unlinked, where
end

local function check_scan_args(pattern, cursor, count)
    if type(pattern) ~= "string" then
        error("pattern must be a string, got " .. type(pattern), 3)
    end
    if cursor == nil then
        cursor = "0"
    elseif type(cursor) ~= "string" then
        error("cursor must be a string, got " .. type(cursor), 3)
    end
    if count == nil then
        count = 1000
    elseif type(count) ~= "number" or count < 1 or count > 1e9 or count % 1 ~= 0 then
        error("count must be an integer from 1 to 1e9, got " .. tostring(count), 3)
    end
    return cursor, count
end

--- One step of listing the keys matching a glob pattern, in the namespace
-- (the keys come back without it): SCAN on Redis (never KEYS), every
-- Cluster primary in turn; the whole memory store at once when Redis is
-- not in use. Start with cursor "0" (or nil); the listing is complete
-- when "0" comes back.
-- @tparam string pattern
-- @tparam[opt="0"] string cursor
-- @tparam[opt=1000] integer count SCAN's COUNT hint
-- @treturn string next_cursor, or nil and an error (Redis failed: nothing
-- is answered from the memory store instead)
-- @treturn {string,...} keys
-- @function Manager:scan
function methods:scan(pattern, cursor, count)
    check_self(self, "scan")
    cursor, count = check_scan_args(pattern, cursor, count)
    local next_cursor, keys = scan_step(self, pattern, cursor, count, false)
    return next_cursor, keys
end

-- For the `cachert` commands (lua/cachert/cli.lua): a scan step that also
-- unlinks what it found (a clear with progress), and a node's INFO.
_M._inspect = {
    scan = function(self, pattern, cursor, count, unlink)
        check_self(self, "scan")
        cursor, count = check_scan_args(pattern, cursor, count)
        return scan_step(self, pattern, cursor, count, unlink)
    end,
    info = function(self, node, section)
        return finish(self, core.info(self.engine, node, section))
    end,
    get_raw = function(self, key)
        return finish(self, core.get_raw(self.engine, check_key(self, key)))
    end,
    pttl = function(self, key)
        return finish(self, core.pttl(self.engine, check_key(self, key)))
    end,
}

--- Reads several values at once.
-- @tparam {string|number,...} keys an array (with `.n` when it has holes)
-- @treturn table the values in the same order, absent ones `nil`, with `.n`
-- @function Manager:mget

-- Over Redis every GET is sent before the first reply is awaited, so they
-- travel together.
function methods:mget(keys)
    if type(keys) ~= "table" then
        error("keys must be a table, got " .. type(keys), 2)
    end
    local n = keys.n or #keys
    local full = {}
    for i = 1, n do
        -- with keys.n, a nil entry is a hole: its value is nil
        if keys[i] ~= nil or keys.n == nil then
            full[i] = check_key(self, keys[i])
        end
    end
    local out, pending = { n = n }, {}
    local e, engine, N = self.eptr, self.engine, self.near
    for i, k in pairs(full) do
        local ent = N and near_lookup(N, k, false)
        if ent then
            out[i] = near_values(ent)
        else
            local found, value = lookup(e, k, false)
            if found == nil then
                local tok, sent_ms
                if N then tok, sent_ms = near.begin(N, k) end
                pending[i] = { pack(core_get(engine, k, false)),
                               tok and pack(core.pttl(engine, k)), tok, sent_ms }
            elseif found then
                out[i] = value
            end
        end
    end
    for i, p in pairs(pending) do
        local found, value
        if p[3] then
            found, value = near.finish(N, self, full[i], false, p[3], p[4], p[1], p[2],
                                       finish)
        else
            found, value = finish(self, unpack(p[1], 1, p[1].n))
        end
        if found then
            out[i] = value
        end
    end
    return out
end

--- Stores several values with one TTL. Every key and value is checked
-- before anything is stored (misuse raises and stores nothing); then every
-- pair is attempted, and the first one refused is named in the error.
-- @tparam table map key -> value
-- @tparam[opt] number ttl seconds, as for `set`
-- @treturn boolean true, or false and a reason naming the key
-- @function Manager:mset
function methods:mset(map, ttl)
    if type(map) ~= "table" then
        error("map must be a table, got " .. type(map), 2)
    end
    local ms = check_ttl(self, ttl)
    local keys, blobs, n = {}, {}, 0
    for key, value in pairs(map) do
        n = n + 1
        keys[n] = check_key(self, key)
        local ok, blob = pcall(core.encode, value)
        blobs[n] = blob
        if not ok then
            error(("%s (key %s)"):format(blob, keys[n]:sub(#self.namespace + 1)), 2)
        end
    end
    local engine, pending = self.engine, {}
    for i = 1, n do
        if self.near then near_forget(self.near, keys[i]) end
        pending[i] = pack(core.set_raw(engine, keys[i], blobs[i], ms))
    end
    local result, reason = true, nil
    for i = 1, n do
        local ok, err = finish(self, unpack(pending[i], 1, pending[i].n))
        if not ok and result then
            result = false
            reason = ("%s (key %s)"):format(tostring(err),
                                            keys[i]:sub(#self.namespace + 1))
        end
    end
    return result, reason
end

--- The manager's statistics (`get_stats` is the same function).
-- @treturn table hits, misses, hit_rate (0..1), sets, deletes, errors,
-- using_redis, backend ("redis" or "memory"), evictions, expired, keys and
-- memory_bytes (of the memory store), reconnects, near_hits, near_keys,
-- near_evictions, invalidations, stale_served, namespace, and the
-- topology's fields (docs/api.md, cache.stats)
-- @function Manager:stats
function methods:stats()
    check_self(self, "stats")
    local s = core.stats(self.engine)
    local N = self.near
    if N and N.S.seq ~= N.seen then near.sync(N) end
    s.near_hits = N and N.hits or 0
    s.near_keys = N and near.count(N) or 0
    s.near_evictions = N and N.evictions or 0
    s.stale_served = self.stale_served
    s.hits = s.hits + s.near_hits
    local total = s.hits + s.misses
    s.hit_rate = total > 0 and s.hits / total or 0
    s.backend = s.using_redis and "redis" or "memory"
    s.namespace = self.namespace
    return s
end
methods.get_stats = methods.stats

local cached = require "cache.cached"

--- `cache.cached` on this manager.
-- @function Manager:cached
function methods:cached(ttl, prefix)
    check_self(self, "cached")
    return cached.cached(ttl, prefix, self)
end

--- `cache.invalidate` on this manager.
-- @function Manager:invalidate
function methods:invalidate(prefix)
    check_self(self, "invalidate")
    return cached.invalidate(prefix, self)
end

-- The default manager and module-level functions --------------------------

local default

-- Creates the default manager; a malformed setting is blamed on the line
-- `level` frames up from new_manager (the user's call).
local function create_default(level)
    default = new_manager(nil, level)
    return default
end

--- The default manager, the module functions (each the `Manager` method of
-- the same name on the default manager) and the decorators.
-- @section default

--- The module-level manager that the module functions use, created on
-- first use from the environment and `.env`.
-- @treturn Manager
function _M.default()
    return default or create_default(4)
end

--- The key `cached` uses for these arguments under `prefix`, before the
-- manager's namespace (which get/set/delete add): `cache.key("video", 42)`
-- is `"video:42"`, so `cache.delete(cache.key("video", id))` invalidates
-- `get_video(id)`.
-- @tparam string prefix
-- @param ... the arguments of the call
-- @treturn string
-- @function key
_M.key = cached.key

-- Module functions: each is the `Manager` method of the same name, on the
-- default manager (`cache.default()`).

--- `cache.default():connect()`: true when Redis is in use.
-- @function connect

--- `cache.default():disconnect()`.
-- @function disconnect

--- `cache.default():get(key, default)`: value, found.
-- @function get

--- `cache.default():set(key, value, ttl)`: true, or false and a reason.
-- @function set

--- `cache.default():delete(key)`: true if a key was deleted.
-- @function delete

--- `cache.default():exists(key)`: boolean.
-- @function exists

--- `cache.default():clear(pattern)`: the number of keys deleted.
-- @function clear

--- `cache.default():mget(keys)`: the values, with `.n`.
-- @function mget

--- `cache.default():mset(map, ttl)`: true, or false and a reason.
-- @function mset

--- `cache.default():stats()`: the statistics table.
-- @function stats

--- The same function as `stats`.
-- @function get_stats

--- `cache.default():scan(pattern, cursor, count)`: next_cursor, keys.
-- @function scan

-- Every method is also a module function on the default manager. Tail
-- calls keep error levels pointing at the caller's line.
for _, name in ipairs { "connect", "disconnect", "get", "set", "delete",
                        "exists", "clear", "mget", "mset", "stats",
                        "get_stats", "scan" } do
    local method = methods[name]
    _M[name] = function(...)
        return method(default or create_default(4), ...)
    end
end
_M.get_stats = _M.stats

--- Memoizes a function: `cache.cached(ttl, prefix)(fn)` returns a function
-- that answers from the cache and calls `fn` on a miss, storing all of its
-- results (nils included) under `prefix .. ":" .. arg` for one string or
-- number argument, an exact encoding of the arguments otherwise. Errors of
-- `fn` propagate and are not cached; concurrent callers of one missing key
-- run `fn` once.
-- @tparam[opt] number|table ttl seconds, or the options table
-- `{ ttl=, prefix=, cache=, key=, neg_ttl=, stale_ttl=, lock= }` (docs/api.md)
-- @tparam[opt] string prefix default: derived from fn's source and line
-- @treturn function the decorator: call it with `fn`
function _M.cached(ttl, prefix)
    return cached.cached(ttl, prefix, nil)
end

--- `cache.invalidate(prefix)(fn)` returns a function that calls `fn` and,
-- when it returns without error, clears `prefix .. ":*"`, then returns
-- `fn`'s results.
-- @tparam string prefix
-- @treturn function the decorator: call it with `fn`
function _M.invalidate(prefix)
    return cached.invalidate(prefix, nil)
end

--- Runs `fn(c)` with a connected manager and always disconnects, also when
-- `fn` raises (then the error is re-raised): the seed's CacheContext.
-- @tparam function fn
-- @tparam[opt] Manager|table opts a manager, or options for a new one;
-- default: the default manager
-- @return fn's results
function _M.with(fn, opts)
    if not util.is_callable(fn) then
        error("fn must be callable", 2)
    end
    local c
    if getmetatable(opts) == mt then
        c = opts
    elseif opts == nil then
        c = default or create_default(4)
    elseif type(opts) == "table" then
        c = new_manager(opts, 3)
    else
        error("options must be a table or a manager", 2)
    end
    local valid, err = pcall(config.redis, c.cfg, true)   -- quiet: connect warns
    if not valid then
        error(err, 2)      -- a malformed setting: blame the caller's line
    end
    c:connect()
    local function close_and_return(ok, ...)
        c:disconnect()
        if not ok then
            error((...), 0)
        end
        return ...
    end
    return close_and_return(pcall(fn, c))
end

--- Every live manager's statistics in the Prometheus text exposition
-- format 0.0.4: counters `cachert_<field>_total`, gauges, one `# HELP` and
-- `# TYPE` per family, labels `namespace` and `manager` (docs/metrics.md).
-- @treturn string
function _M.metrics()
    return require("cache.metrics").render(live, default)
end

-- Logging -------------------------------------------------------------------

local log_handler = false

--- Sends cachert's log messages to `fn(level, message)` ("error", "warn",
-- "info", "debug"; each manager keeps the levels its CACHE_LOG_LEVEL
-- allows), called from the event loop, never inside a cache call: it must
-- not yield.
-- @tparam function|nil fn nil restores the default, one line on stderr
function _M.on_log(fn)
    if fn ~= nil and not util.is_callable(fn) then
        error("fn must be callable or nil, got " .. type(fn), 2)
    end
    log_handler = fn or false
    core.on_log(fn and function(level, msg) return fn(level, msg) end or nil)
end

-- A message from the Lua side, as the C side logs: through the handler,
-- else one line on stderr; dropped below the manager's level.
local function log(self, level, msg)
    local levels = config.LOG_LEVELS
    if self and levels[level] > levels[self.cfg.log_level] then return end
    if log_handler then
        local ok, err = pcall(log_handler, level, msg)
        if ok then return end
        msg = "error in the log handler: " .. tostring(err)
    end
    io.stderr:write("cachert: ", msg, "\n")
end
_M._log = log
-- The configuration's warnings (a .env line another tool wrote badly):
-- no manager yet, so no level but the handler's.
config.warn = function(msg) log(nil, "warn", msg) end

-- At exit ---------------------------------------------------------------------

local function flush_one(self, seconds)
    local settings = redis_settings[self]
    if settings == nil or self.engine == nil then return end
    local flushed, keys, patterns, overflow =
        finish(self, core.flush(self.engine, settings, seconds))
    if flushed then return end
    local what = overflow and "every key of its namespace (the journal overflowed)"
        or ("%d keys and %d patterns"):format(keys, patterns)
    log(self, "warn", ("exiting with %s changed during a Redis outage and not "
        .. "invalidated there (no answer within CACHE_EXIT_FLUSH_TIMEOUT = %g s): "
        .. "other processes may read their old values")
        :format(what, self.cfg.exit_flush_timeout))
end

-- Gives every manager's outage journal its last chance: waits for Redis
-- at most CACHE_EXIT_FLUSH_TIMEOUT in all (each manager's own setting
-- bounds its share), and warns about what could not be invalidated.
function _M._flush_all()
    local now = core.now
    local managers = {}
    for m in pairs(live) do managers[#managers + 1] = m end
    local started = now()
    for _, m in ipairs(managers) do
        local budget = m.cfg.exit_flush_timeout
        local ok, err = pcall(flush_one, m, math.max(0, budget - (now() - started)))
        if not ok then log(m, "error", "at exit: " .. tostring(err)) end
    end
end

do
    local sched = require "cachert"
    if sched.at_exit then sched.at_exit(_M._flush_all) end
end

_M.Manager = methods
_M._mt = mt
-- For cache.testing: an isolated manager (blame `level` frames above the
-- caller), the default manager swapped (returns the previous one; nil:
-- made from the environment again on next use), every live manager.
_M._testing = {
    new = function(opts, level)
        local m = new_manager(opts, level + 2, true)
        return m
    end,
    swap_default = function(m)
        local old = default
        default = m
        return old
    end,
    live = live,
}
-- For cached/invalidate wrappers: user -> wrapper -> this -> create_default.
_M._default_getter = function() return default or create_default(5) end
cached.bind(_M)

return _M
