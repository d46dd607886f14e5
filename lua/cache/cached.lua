-- cache/cached.lua -- the cached / invalidate decorators.
--
-- Keys: one string or number argument maps to prefix .. ":" .. arg (numbers
-- written exactly), so cache.delete("video:42") invalidates get_video(42).
-- Every other argument list maps to prefix .. ":" .. ARGS_MARK .. an
-- injective, order-independent encoding of the arguments (see encode_args);
-- a single string that itself starts with ARGS_MARK takes that form too, so
-- the two forms can never collide.
--
-- Results: one value is stored as itself (so cache.get sees it), any other
-- count as a multi value; a hit returns exactly what fn returned. Concurrent
-- callers of one missing key wait for the first one (single flight).

local core = require "cache.core"
local util = require "cache.util"
local pack, is_callable, format_number = util.pack, util.is_callable, util.format_number
local config = require "cache.config"
local sched = require "cachert"

local type, error, select, tostring, pairs, getmetatable, pcall =
    type, error, select, tostring, pairs, getmetatable, pcall
local byte, concat, sort = string.byte, table.concat, table.sort
local unpack = unpack
local core_get, core_set_raw, core_encode_results, core_decode_results =
    core.get, core.set_raw, core.encode_results, core.decode_results
local lookup = require("cache.direct").lookup
local near = require "cache.near"
local near_lookup, near_values, near_fetch, near_forget =
    near.lookup, near.values, near.fetch, near.forget
local NEAR_SCALAR = near.SCALAR
local tick = sched._tick

local _M = {}

local ARGS_MARK = "\31"           -- never the first byte of a scalar key
local ARGS_MARK_BYTE = 31
local MEMO_MAX = 256              -- keys remembered per cached function
local MAX_DEPTH = core.MAX_DEPTH
_M.ARGS_MARK = ARGS_MARK

local cache                         -- the cache module (set by bind)
local finish                        -- its request finisher

-- Keys ----------------------------------------------------------------------

local encode_value

local function encode_table(t, out, path, visiting, depth)
    if visiting[t] then
        error("cannot build a cache key from a cyclic table at " .. path, 0)
    end
    if depth > MAX_DEPTH then
        error("cannot build a cache key from a table nested deeper than "
              .. MAX_DEPTH .. " levels at " .. path, 0)
    end
    visiting[t] = true
    local entries = {}
    for k, v in pairs(t) do
        local kbuf = {}
        encode_value(k, kbuf, path .. "[key]", visiting, depth + 1)
        local kstr = concat(kbuf)
        local vbuf = { kstr, "=" }
        encode_value(v, vbuf, path .. "[" .. tostring(k) .. "]", visiting, depth + 1)
        entries[#entries + 1] = concat(vbuf)
    end
    visiting[t] = nil
    sort(entries)                   -- distinct keys encode differently
    out[#out + 1] = "{" .. #entries .. "|"
    for i = 1, #entries do
        out[#out + 1] = entries[i]
        out[#out + 1] = "|"
    end
    out[#out + 1] = "}"
end

-- Appends the typed, self-delimiting token of v to out.
function encode_value(v, out, path, visiting, depth)
    local tv = type(v)
    if tv == "string" then
        out[#out + 1] = "s" .. #v .. ":" .. v
    elseif tv == "number" then
        out[#out + 1] = "d" .. format_number(v) .. ";"
    elseif tv == "nil" then
        out[#out + 1] = "n"
    elseif tv == "boolean" then
        out[#out + 1] = v and "t" or "f"
    elseif tv == "table" then
        encode_table(v, out, path, visiting, depth)
    else
        error("cannot build a cache key from a " .. tv .. " at " .. path, 0)
    end
end

--- The key suffix for an argument list other than one plain scalar.
local function encode_args(n, ...)
    local out = { ARGS_MARK, n, "|" }
    for i = 1, n do
        encode_value((select(i, ...)), out, "args[" .. i .. "]", {}, 1)
        out[#out + 1] = "|"
    end
    return concat(out)
end

-- The key for one argument that is a plain scalar (prefix:arg), or nil.
local function scalar_key(prefix, a)
    local ta = type(a)
    if ta == "number" then
        return prefix .. ":" .. format_number(a)
    elseif ta == "string" and byte(a, 1) ~= ARGS_MARK_BYTE then
        return prefix .. ":" .. a
    end
    return nil
end

--- The key (without namespace) for calling a function cached under
-- `prefix` with these arguments.
local function build_key(prefix, ...)
    local n = select("#", ...)
    return n == 1 and scalar_key(prefix, (...))
        or prefix .. ":" .. encode_args(n, ...)
end
_M.build_key = build_key

--- cache.key(prefix, ...): the key (before any namespace) under which a
-- function cached with `prefix` stores these arguments, so that
-- cache.delete(cache.key("user", id)) invalidates get_user(id).
function _M.key(prefix, ...)
    if type(prefix) ~= "string" then
        error("prefix must be a string, got " .. type(prefix), 2)
    end
    local ok, key = pcall(build_key, prefix, ...)
    if not ok then
        error(key, 2)           -- an argument that cannot be keyed
    end
    return key
end

-- Raises at the caller of the caller of full_key (the wrapper's caller).
local function custom_key(prefix, keyfn, ...)
    local k = keyfn(...)
    local tk = type(k)
    if tk == "number" then
        return prefix .. ":" .. format_number(k)
    elseif tk ~= "string" then
        error("key function must return a string or a number, got " .. tk, 4)
    end
    return prefix .. ":" .. k
end

-- The full key (namespace included) of a call with these arguments.
local function full_key(m, p, keyfn, ...)
    local key
    if keyfn then
        key = custom_key(p, keyfn, ...)
    elseif select("#", ...) == 1 then
        key = scalar_key(p, (...))
    end
    key = key or p .. ":" .. encode_args(select("#", ...), ...)
    local ns = m.namespace
    return ns == "" and key or ns .. key
end

-- Without a prefix, the function's source and first line name it.
local function derive_prefix(fn)
    local f = fn
    if type(f) ~= "function" then
        f = getmetatable(f).__call
    end
    local info = debug.getinfo(f, "S")
    if info.what == "C" then
        error("a prefix is required to cache a C function", 3)
    end
    -- The whole source name: short_src cuts long paths, which could collide.
    return info.source:gsub("^[@=]", "") .. ":" .. info.linedefined
end

-- Options -------------------------------------------------------------------

local function check_ttl_option(ttl)
    if ttl == nil then return nil end
    local ms, err = config.ttl_ms(ttl)
    if not ms then
        error(err, 3)
    end
    return ms
end

-- Raises at `level` (of the caller) for a key `allowed` does not list.
local function check_option_names(opts, allowed, level)
    for k in pairs(opts) do
        if not allowed[k] then
            error("unknown option '" .. tostring(k) .. "'", level + 1)
        end
    end
end

local CACHED_OPTIONS = { ttl = true, prefix = true, cache = true, key = true,
                         neg_ttl = true, stale_ttl = true, lock = true }

local DEFAULT_LOCK_SECONDS = 10

-- The table form's neg_ttl, stale_ttl and lock, as milliseconds (neg_ms
-- false: nil/false results are not stored; stale_ms and lock_ms nil: off).
local function parse_extras(opts)
    if type(opts) ~= "table" then return nil, nil, nil end
    local neg_ms
    if opts.neg_ttl == false then
        neg_ms = false
    elseif opts.neg_ttl ~= nil then
        local ms, err = config.ttl_ms(opts.neg_ttl)
        if not ms then error("neg_ttl: " .. err .. " (or false)", 3) end
        neg_ms = ms
    end
    local stale_ms
    if opts.stale_ttl ~= nil then
        local ms, err = config.ttl_ms(opts.stale_ttl)
        if not ms then error("stale_ttl: " .. err, 3) end
        stale_ms = ms > 0 and ms or nil
    end
    local lock_ms
    local lock = opts.lock
    if lock == true then
        lock_ms = DEFAULT_LOCK_SECONDS * 1000
    elseif lock ~= nil and lock ~= false then
        if type(lock) ~= "number" or lock ~= lock or lock <= 0 or lock == math.huge then
            error("lock must be true, false or a number of seconds > 0, got "
                  .. (type(lock) == "number" and tostring(lock) or type(lock)), 3)
        end
        lock_ms = math.ceil(lock * 1000)
    end
    return neg_ms, stale_ms, lock_ms
end

local function parse_options(ttl, prefix, manager, allowed)
    local keyfn
    if type(ttl) == "table" then
        local opts = ttl
        check_option_names(opts, allowed, 3)
        ttl, prefix, keyfn = opts.ttl, opts.prefix, opts.key
        manager = opts.cache or manager
    end
    if prefix ~= nil and type(prefix) ~= "string" then
        error("prefix must be a string, got " .. type(prefix), 3)
    end
    if manager ~= nil and getmetatable(manager) ~= cache._mt then
        error("cache must be a cache manager", 3)
    end
    if keyfn ~= nil and not is_callable(keyfn) then
        error("key must be a function", 3)
    end
    return ttl, prefix, manager, keyfn
end

-- cached --------------------------------------------------------------------

-- A process-unique prefix for lock tokens (16 random bytes, hex), so a
-- lock is released only by the process and the call that took it.
local token_base, token_count
local function new_token()
    if not token_base then
        local f = io.open("/dev/urandom", "rb")
        local bytes = f and f:read(16) or tostring(os.time()) .. tostring({})
        if f then f:close() end
        token_base = bytes:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end)
        token_count = 0
    end
    token_count = token_count + 1
    return token_base .. ":" .. token_count
end

-- The lock of `key` (which carries the namespace): in the namespace, like
-- the engine's probe key, so clears and tracking prefixes cover it.
local function lock_key(m, key)
    local ns = m.namespace
    return ns .. "cachert:lock:" .. key:sub(#ns + 1)
end

-- The TTL in ms that fn's results (packed, after pcall's status) are
-- stored with, or false when they are not stored (neg_ttl = false).
local function store_ttl(w, m, res)
    local ttl = w.ttl_ms or m.default_ttl_ms
    if (res.n < 2 or not res[2]) and w.neg_ms ~= nil then
        ttl = w.neg_ms         -- a nil or false result: its own TTL
        if ttl == false then return false end
    end
    if w.stale_ms and ttl > 0 then
        ttl = ttl + w.stale_ms  -- kept past ttl for the stale window
    end
    return ttl
end

-- Encodes fn's results (packed, after pcall's status) and stores them;
-- returns the bytes. Raises when they cannot be encoded or stored.
local function store(w, m, key, res)
    local blob = core_encode_results(unpack(res, 2, res.n))
    local ttl = store_ttl(w, m, res)
    if ttl then
        if m.near then near_forget(m.near, key) end
        finish(m, core_set_raw(m.engine, key, blob, ttl))
    end
    return blob
end

-- Redis's answer for `key` (through the near cache when it is on).
local function remote(m, key)
    local N = m.near
    if N then
        return near_fetch(N, m, key, true, finish)
    end
    return finish(m, core_get(m.engine, key, true))
end

-- found, values... of `key`, wherever the manager keeps it.
local function read(m, key)
    local N = m.near
    if N then
        local ent = near_lookup(N, key, true)
        if ent then return true, near_values(ent) end
    end
    local function direct(found, ...)
        if found == nil then return remote(m, key) end
        return found, ...
    end
    return direct(lookup(m.eptr, key, true))
end

-- fn's results (packed, pcall form) for `key` under the cross-process
-- lock: computed and stored here once the lock is ours, or the value
-- another process stored while this one waited (its `stored` is false:
-- nothing to store). A lock whose owner died expires after lock_ms.
local function compute_locked(w, m, key, args)
    local lkey, token = lock_key(m, key), new_token()
    local delay = 0.002
    while true do
        if finish(m, core.lock(m.engine, lkey, token, w.lock_ms)) then
            -- the value may have landed between the miss and the lock
            local r = pack(read(m, key))
            local res
            if r[1] then
                res = r
            else
                res = pack(pcall(w.fn, unpack(args, 1, args.n)))
                if res[1] then
                    local ok, err = pcall(store, w, m, key, res)
                    if not ok then res = { false, err, n = 2 } end
                end
            end
            finish(m, core.unlock(m.engine, lkey, token))
            return res
        end
        sched.sleep(delay)
        delay = math.min(delay * 2, 0.05)
        local r = pack(read(m, key))
        if r[1] then return r end
    end
end

-- The miss path: run fn once per key, even for concurrent callers. The
-- results are encoded once; waiters decode their own copy of those bytes
-- (tables are fresh copies, and a waiter's call counts one miss, no hit).
-- Nothing between taking the key and waking the waiters may raise: a key
-- left in m.inflight would make every later caller wait forever.
local function call_and_store(w, m, key, args)
    local flight = m.inflight[key]
    local me = sched.current()
    if flight and me and flight.leader ~= me then
        flight.waiters[#flight.waiters + 1] = me
        local ok, res = sched.suspend()
        if not ok then
            error(res, 0)
        end
        return select(2, core_decode_results(res))
    end
    flight = { leader = me, waiters = {} }
    m.inflight[key] = flight
    local res, ok, blob
    if w.lock_ms then
        local done
        done, res = pcall(compute_locked, w, m, key, args)
        if not done then res = { false, res, n = 2 } end
        ok = res[1]
        if ok then
            ok, blob = pcall(core_encode_results, unpack(res, 2, res.n))
        else
            blob = res[2]
        end
    else
        res = pack(pcall(w.fn, unpack(args, 1, args.n)))
        ok, blob = res[1], res[2]
        if ok then
            ok, blob = pcall(store, w, m, key, res)
        end
    end
    m.inflight[key] = nil
    for i = 1, #flight.waiters do
        sched.wake(flight.waiters[i], ok, blob)
    end
    if not ok then
        error(blob, 0)   -- fn's error, or why its results cannot be stored
    end
    return unpack(res, 2, res.n)
end

-- `found` is nil when Redis is in use: then ask it (the values may be
-- in flight together with other tasks' requests).
local function finish_one(w, m, key, a, found, ...)
    if found then return ... end
    if found == nil then
        return finish_one(w, m, key, a, remote(m, key))
    end
    return call_and_store(w, m, key, { n = 1, a })
end

local function finish_many(w, m, key, args, found, ...)
    if found then return ... end
    if found == nil then
        return finish_many(w, m, key, args, remote(m, key))
    end
    return call_and_store(w, m, key, args)
end

-- stale_ttl ------------------------------------------------------------------

-- found, values... of `key` (packed), and the milliseconds it has left
-- (-1: no expiry, -2: missing).
local function read_with_ttl(m, key)
    local N = m.near
    if N then
        local ent = near_lookup(N, key, true)
        if ent then
            tick()
            return pack(true, near_values(ent)), near.ttl_left(ent)
        end
    end
    local r = pack(lookup(m.eptr, key, true))
    if r[1] == false then
        return r, -2
    elseif r[1] then                  -- the memory store: at once
        return r, finish(m, core.pttl(m.engine, key))
    elseif N then
        return near.fetch_packed(N, m, key, true, finish)
    end
    local g = pack(core_get(m.engine, key, true))
    local p = pack(core.pttl(m.engine, key))
    return pack(finish(m, unpack(g, 1, g.n))), finish(m, unpack(p, 1, p.n))
end

-- fn's results (pcall form) stored for `key`; under the lock when the
-- wrapper has one, and then only by the process that took it (nil when
-- another one holds it: that one refreshes).
local function recompute(w, m, key, args)
    local lkey, token
    if w.lock_ms then
        lkey, token = lock_key(m, key), new_token()
        if not finish(m, core.lock(m.engine, lkey, token, w.lock_ms)) then
            return nil
        end
    end
    local res = pack(pcall(w.fn, unpack(args, 1, args.n)))
    if res[1] then
        local ok, err = pcall(store, w, m, key, res)
        if not ok then res = { false, err, n = 2 } end
    end
    if lkey then finish(m, core.unlock(m.engine, lkey, token)) end
    return res
end

-- A stale hit: one task of this process recomputes `key` in the
-- background (the callers keep getting the stale value meanwhile, also
-- when fn raises: that is logged and the next stale hit tries again).
local function refresh(w, m, key, args)
    local busy = m.refreshing
    if busy[key] then return end
    busy[key] = true
    sched.spawn(function()
        local ok, res = pcall(recompute, w, m, key, args)
        busy[key] = nil
        local err = not ok and res or (res and not res[1] and res[2])
        if err then
            cache._log(m, "warn", ("cached: recomputing stale %q failed, serving the "
                .. "stale value until it expires: %s"):format(key, tostring(err)))
        end
    end)
end

local function stale_call(w, m, key, args)
    local r, left = read_with_ttl(m, key)
    if r[1] then
        if left >= 0 and left <= w.stale_ms then
            m.stale_served = m.stale_served + 1
            refresh(w, m, key, args)
        end
        return unpack(r, 2, r.n)
    end
    return call_and_store(w, m, key, args)
end

-- A near hit: the entry's value(s), tables as fresh copies.
local function near_hit(ent)
    tick()
    if ent[2] == NEAR_SCALAR then return ent[1] end
    return near_values(ent)
end

--- cache.cached(ttl?, prefix?)(fn) or cache.cached{ ttl=, prefix=, cache=,
-- key=, neg_ttl=, stale_ttl=, lock= }(fn): fn memoized under
-- prefix:<arguments> for ttl seconds (docs/api.md: cache.cached).
function _M.cached(ttl, prefix, manager)
    local keyfn
    local opts = ttl
    ttl, prefix, manager, keyfn = parse_options(ttl, prefix, manager, CACHED_OPTIONS)
    local ttl_ms = check_ttl_option(ttl)
    local neg_ms, stale_ms, lock_ms = parse_extras(opts)
    return function(fn)
        if not is_callable(fn) then
            error("fn must be callable, got " .. type(fn), 2)
        end
        local p = prefix or derive_prefix(fn)
        local w = { fn = fn, ttl_ms = ttl_ms, neg_ms = neg_ms, stale_ms = stale_ms,
                    lock_ms = lock_ms }
        local get_default = cache._default_getter
        -- The full key of one scalar argument, remembered per wrapper (for
        -- the namespace memo_ns): a hit then skips number formatting and
        -- concatenation. NaN cannot index a table and -0 == 0 would share
        -- "0"'s key, so neither is remembered; a full memo starts over.
        local memo, memo_n, memo_ns = {}, 0, false
        if stale_ms then
            return function(...)
                local m = manager or get_default()
                return stale_call(w, m, full_key(m, p, keyfn, ...), pack(...))
            end
        end
        return function(...)
            local m = manager or get_default()
            local key
            if not keyfn and select("#", ...) == 1 then
                local a = ...
                local ns = m.namespace
                if ns == memo_ns then key = memo[a] end
                if not key then
                    key = scalar_key(p, a)
                    if key and ns ~= "" then key = ns .. key end
                    if key and a == a and a ~= 0 then
                        if ns ~= memo_ns or memo_n >= MEMO_MAX then
                            memo, memo_n, memo_ns = {}, 0, ns
                        end
                        memo[a], memo_n = key, memo_n + 1
                    end
                end
                if key then
                    local N = m.near
                    if N then
                        local ent = near_lookup(N, key, true)
                        if ent then return near_hit(ent) end
                    end
                    return finish_one(w, m, key, a, lookup(m.eptr, key, true))
                end
            end
            key = full_key(m, p, keyfn, ...)
            local N = m.near
            if N then
                local ent = near_lookup(N, key, true)
                if ent then return near_hit(ent) end
            end
            return finish_many(w, m, key, pack(...), lookup(m.eptr, key, true))
        end
    end
end

-- invalidate ----------------------------------------------------------------

local INVALIDATE_OPTIONS = { prefix = true, cache = true }

local function clear_after(m, pattern, ok, ...)
    if not ok then
        error((...), 0)
    end
    m:clear(pattern)
    return ...
end

--- cache.invalidate(prefix)(fn) or cache.invalidate{ prefix=, cache= }(fn):
-- after fn returns without error, clears prefix:* and returns fn's results.
function _M.invalidate(prefix, manager)
    if type(prefix) == "table" then
        local opts = prefix
        check_option_names(opts, INVALIDATE_OPTIONS, 2)
        prefix, manager = opts.prefix, opts.cache or manager
    end
    if manager ~= nil and getmetatable(manager) ~= cache._mt then
        error("cache must be a cache manager", 2)
    end
    if type(prefix) ~= "string" then
        error("prefix must be a string, got " .. type(prefix), 2)
    end
    local pattern = cache.glob_escape(prefix) .. ":*"
    return function(fn)
        if not is_callable(fn) then
            error("fn must be callable, got " .. type(fn), 2)
        end
        local get_default = cache._default_getter
        return function(...)
            return clear_after(manager or get_default(), pattern, pcall(fn, ...))
        end
    end
end

function _M.bind(mod)
    cache = mod
    finish = mod._finish
end

return _M
