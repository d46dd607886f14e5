-- cache -- the public module: managers, the module-level default manager,
-- cached / invalidate and with.
--
-- A manager validates arguments here (misuse raises at the caller's line),
-- applies its namespace and converts TTLs to milliseconds, then makes one
-- call into cache.core, which looks up and decodes (or encodes and stores)
-- in C. Backend failures never raise out of get/set/delete: they are
-- counted in stats() and absorbed by the memory store.

local core = require "cache.core"
local config = require "cache.config"
local util = require "cache.util"
local ttl_ms = config.ttl_ms
local direct = require "cache.direct"

local type, error, setmetatable, tostring, pairs =
    type, error, setmetatable, tostring, pairs
local core_set, core_delete, core_exists = core.set, core.delete, core.exists
local lookup, set_string = direct.lookup, direct.set_string

local _M = { _VERSION = "0.1.0" }

local methods = {}
local mt = { __index = methods, __name = "cache.Manager" }
mt.__tostring = function(self)
    return "cache.Manager (" .. self.backend .. ")"
end

-- Helpers -------------------------------------------------------------------

-- Characters with a meaning in Redis glob patterns.
local function glob_escape(s)
    return (s:gsub("[%*%?%[%]\\]", "\\%0"))
end
_M.glob_escape = glob_escape

local function check_self(self, fname)
    if getmetatable(self) ~= mt then
        error(("bad self in %s: expected a cache manager (use c:%s(...))")
              :format(fname, fname), 3)
    end
end

-- Returns the full key (namespace applied). Raises at the caller's caller.
local function check_key(self, key)
    if getmetatable(self) ~= mt then
        error("bad self: call manager methods as c:name(...)", 3)
    end
    local tk = type(key)
    if tk == "string" then
        local ns = self.namespace
        return ns == "" and key or ns .. key
    elseif tk == "number" then
        return self.namespace .. tostring(key)
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

-- cache.new and cache.with: `level` is the error level of the line to
-- blame for bad options.
local function new_manager(opts, level)
    local ok, cfg = pcall(config.resolve, opts)
    if not ok then
        error(cfg, level)
    end
    local self = setmetatable({
        cfg = cfg,
        namespace = cfg.namespace,
        default_ttl_ms = ttl_ms(cfg.default_ttl),
        engine = core.new(cfg.max_items, cfg.max_memory),
        eptr = false,           -- the engine as FFI cdata (cache.direct)
        backend = "memory",
        inflight = {},          -- single flight: key -> waiting tasks
    }, mt)
    self.eptr = direct.engine(self.engine)
    return self
end

--- Creates a manager with its own memory store (and, later, Redis pool).
-- Options (all optional): host, port, db, username, password, url,
-- pool_size, timeout, default_ttl, namespace, max_items, max_memory, codec.
function _M.new(opts)
    local self = new_manager(opts, 3)
    return self
end

--- Tries Redis; returns true when Redis is in use, false on the memory store.
-- Raises for a malformed Redis setting, naming it and its source.
function methods:connect()
    check_self(self, "connect")
    local ok, err = pcall(config.redis, self.cfg)
    if not ok then
        error(err, 2)
    end
    -- No Redis backend yet: the memory store serves every call.
    self.backend = "memory"
    return false
end

--- Releases the Redis connections; the memory store keeps serving.
function methods:disconnect()
    check_self(self, "disconnect")
    self.backend = "memory"
    return true
end

local function found_or_default(default, found, value)
    if found then
        return value, true
    end
    return default, false
end

--- value, found = c:get(key, default?)
function methods:get(key, default)
    local k = check_key(self, key)
    return found_or_default(default, lookup(self.eptr, k, false))
end

--- true | false, err = c:set(key, value, ttl?)
function methods:set(key, value, ttl)
    local k = check_key(self, key)
    if type(value) == "string" then
        return set_string(self.eptr, k, value, check_ttl(self, ttl))
    end
    return core_set(self.engine, k, value, check_ttl(self, ttl))
end

--- c:delete(key) -> true if a key was deleted
function methods:delete(key)
    return core_delete(self.engine, check_key(self, key))
end

--- c:exists(key) -> boolean
function methods:exists(key)
    return core_exists(self.engine, check_key(self, key))
end

--- c:clear(pattern?) -> number of keys deleted; pattern defaults to "*"
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
    local n = core.clear(self.engine, pattern)
    return n
end

--- c:mget(keys) -> array of values (nil holes allowed), with .n
function methods:mget(keys)
    if type(keys) ~= "table" then
        error("keys must be a table, got " .. type(keys), 2)
    end
    local n = keys.n or #keys
    local full = {}
    for i = 1, n do
        full[i] = check_key(self, keys[i])
    end
    local out = { n = n }
    local e = self.eptr
    for i = 1, n do
        out[i] = found_or_default(nil, lookup(e, full[i], false))
    end
    return out
end

--- c:mset(map, ttl?) -> true
-- Every key and value is checked before anything is stored.
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
            error(("%s (key %s)"):format(blob, tostring(key)), 2)
        end
    end
    local engine = self.engine
    for i = 1, n do
        local ok, err = core.set_raw(engine, keys[i], blobs[i], ms)
        if not ok then
            return false, err
        end
    end
    return true
end

--- The statistics table (see README).
function methods:stats()
    check_self(self, "stats")
    local s = core.stats(self.engine)
    local total = s.hits + s.misses
    s.hit_rate = total > 0 and s.hits / total or 0
    s.backend = self.backend
    s.namespace = self.namespace
    return s
end
methods.get_stats = methods.stats

-- The default manager and module-level functions --------------------------

local default

--- The module-level manager, created on first use from the environment.
function _M.default()
    if not default then
        default = _M.new()
    end
    return default
end
local default_manager = _M.default

local cached = require "cache.cached"

function methods:cached(ttl, prefix)
    check_self(self, "cached")
    return cached.cached(ttl, prefix, self)
end

function methods:invalidate(prefix)
    check_self(self, "invalidate")
    return cached.invalidate(prefix, self)
end

-- Every method is also a module function on the default manager. Tail
-- calls keep error levels pointing at the caller's line.
for _, name in ipairs { "connect", "disconnect", "get", "set", "delete",
                        "exists", "clear", "mget", "mset", "stats",
                        "get_stats" } do
    local method = methods[name]
    _M[name] = function(...)
        return method(default or default_manager(), ...)
    end
end
_M.get_stats = _M.stats

function _M.cached(ttl, prefix)
    return cached.cached(ttl, prefix, nil)
end

function _M.invalidate(prefix)
    return cached.invalidate(prefix, nil)
end

--- Runs fn(c) with a connected manager and always disconnects, also when
-- fn raises (then the error is re-raised). `opts` is a manager, or options
-- for a new one; without it the default manager is used.
function _M.with(fn, opts)
    if not util.is_callable(fn) then
        error("fn must be callable", 2)
    end
    local c
    if getmetatable(opts) == mt then
        c = opts
    elseif opts == nil then
        c = default_manager()
    elseif type(opts) == "table" then
        c = new_manager(opts, 3)
    else
        error("options must be a table or a manager", 2)
    end
    c:connect()
    local function finish(ok, ...)
        c:disconnect()
        if not ok then
            error((...), 0)
        end
        return ...
    end
    return finish(pcall(fn, c))
end

_M.Manager = methods
_M._mt = mt
_M._default_getter = function() return default or default_manager() end
cached.bind(_M)

return _M
