-- cache/near.lua -- the near cache: decoded values of Redis hits kept in
-- the process, coherent with Redis through client-side caching.
--
-- The C side (src/near.c, src/tracking.c) keeps a subscriber connection
-- per Redis node and queues the keys Redis says changed; this side keeps
-- the values. Every lookup first compares the engine's `seq` (read
-- through the FFI, no C call) with the one it saw last, and drains the
-- queue when it moved: an invalidation that has reached the process is
-- applied before the next near hit, within the same loop turn.
--
-- Entries: `new` and `old` generations. A hit in `new` costs one table
-- lookup; a hit in `old` moves the entry to `new`; when `new` holds half
-- the items (or half the bytes) allowed, `old` is dropped (evicted) and
-- `new` becomes `old`. So at most max_items entries / max_bytes bytes are
-- kept, and what was used since the last rotation survives it (a
-- second-chance approximation of LRU, with no work per hit).
--
-- A GET reply is kept only when tracking covered it from its send to its
-- reply: at send time the engine must say `ready`, and a placeholder
-- (pend[key] = token) is left; an invalidation of the key, a flush, or a
-- write by this process removes it, and a reply that finds its token gone
-- is returned but not kept. Expiry: PTTL is asked with the GET; the entry
-- lasts at most that long (measured from the send, so never longer than
-- in Redis), judged by the loop's clock (cachert._clock: read after each
-- poll and every 128 cache calls), and by the clock itself near the end.
--
-- Values: strings, numbers, booleans and nil are returned as they are;
-- tables are kept decoded and returned as fresh deep copies.

local ffi = require "ffi"
local core = require "cache.core"
local util = require "cache.util"

local type, pairs, ipairs, huge, unpack =
    type, pairs, ipairs, math.huge, unpack
local pack = util.pack
local sub = string.sub

local _M = {}

if not pcall(ffi.typeof, "cachert_near_state") then
    ffi.cdef [[
typedef struct cachert_near_state { uint32_t seq; int32_t ready; } cachert_near_state;
]]
end
-- The scheduler's clock: milliseconds on the monotonic clock, and its
-- reading as of the last poll or slice check.
local clock_ms = require("cachert")._clock_ms
local loop_clock = require("cachert")._clock

-- An entry expiring within this of the loop's clock is checked against the
-- clock itself.
local SLACK_MS = 10

-- Entry kinds: what an entry may answer.
local SCALAR = 0      -- any lookup; returned as is
local TABLE = 1       -- one table (from `cached`, or a get of a table that
                      -- `cached` wrote with one result): any lookup
local GET_TABLE = 2   -- a table from get(): maybe a multi value's {n=}
local MULTI = 3       -- `cached` results other than exactly one
_M.SCALAR, _M.TABLE, _M.GET_TABLE, _M.MULTI = SCALAR, TABLE, GET_TABLE, MULTI

local ENTRY_OVERHEAD = 96     -- bytes per entry besides key and value

-- Sizes -----------------------------------------------------------------------

local function value_size(v, depth)
    local tv = type(v)
    if tv == "string" then
        return 24 + #v
    elseif tv ~= "table" then
        return 16
    end
    if depth > 100 then return 0 end
    local n = 56
    for k, x in pairs(v) do
        n = n + 32 + value_size(k, depth + 1) + value_size(x, depth + 1)
    end
    return n
end

-- A fresh copy of a decoded table (no metatables, no cycles, no shared
-- subtables: the codec writes a shared one once per reference).
local function copy(t)
    local c = {}
    for k, v in pairs(t) do
        c[k] = type(v) == "table" and copy(v) or v
    end
    return c
end

-- State -------------------------------------------------------------------

--- The near cache of a manager's engine, or nil when max_items is 0.
function _M.new(engine, max_items, max_bytes)
    if not max_items or max_items <= 0 then
        return nil
    end
    local half = math.max(1, math.floor(max_items / 2))
    return {
        S = ffi.cast("const cachert_near_state *", core.near_state(engine)),
        engine = engine,
        seen = 0,
        new = {}, old = {},
        n_new = 0, n_old = 0, b_new = 0, b_old = 0,
        half_items = half,
        single = max_items < 2,
        half_bytes = max_bytes > 0 and max_bytes / 2 or huge,
        pend = {}, tok = 0,
        hits = 0, evictions = 0,
    }
end

-- Removes `key`'s entry; true when there was one.
local function remove(N, key)
    local ent = N.new[key]
    if ent then
        N.new[key] = nil
        N.n_new, N.b_new = N.n_new - 1, N.b_new - ent[3]
        return true
    end
    ent = N.old[key]
    if ent then
        N.old[key] = nil
        N.n_old, N.b_old = N.n_old - 1, N.b_old - ent[3]
        return true
    end
    return false
end

local function flush(N)
    N.new, N.old, N.pend = {}, {}, {}
    N.n_new, N.n_old, N.b_new, N.b_old = 0, 0, 0, 0
end

--- Applies what the engine queued: invalidated keys, or a flush.
local function sync(N)
    N.seen = N.S.seq
    local everything, keys = core.near_drain(N.engine)
    if everything then
        flush(N)
        return
    end
    local pend = N.pend
    for i = 1, #keys do
        local k = keys[i]
        pend[k] = nil
        remove(N, k)
    end
end
_M.sync = sync

-- `new` is full: `old` goes (its entries evicted), `new` becomes `old`.
local function rotate(N)
    N.evictions = N.evictions + N.n_old
    if N.single then
        N.evictions = N.evictions + N.n_new
        N.old, N.n_old, N.b_old = {}, 0, 0
    else
        N.old, N.n_old, N.b_old = N.new, N.n_new, N.b_new
    end
    N.new, N.n_new, N.b_new = {}, 0, 0
end

-- Puts `ent` (in neither generation) into `new`, rotating when full.
local function put_new(N, key, ent)
    local size = ent[3]
    if N.n_new >= N.half_items or N.b_new + size > N.half_bytes then
        rotate(N)
    end
    N.new[key] = ent
    N.n_new, N.b_new = N.n_new + 1, N.b_new + size
end

local function insert(N, key, ent)
    remove(N, key)
    if ent[3] <= N.half_bytes then  -- else larger than a generation may hold
        put_new(N, key, ent)
    end
end

-- Lookups -----------------------------------------------------------------

--- The live entry of `key` that a lookup of this kind (`results`: a
-- `cached` lookup, else get) may use, or nil. Counts a near hit.
function _M.lookup(N, key, results)
    if N.S.seq ~= N.seen then
        sync(N)
    end
    local ent = N.new[key]
    if ent == nil then
        ent = N.old[key]
        if ent == nil then
            return nil
        end
        remove(N, key)              -- used again: into `new`
        put_new(N, key, ent)
    end
    local exp = ent[4]
    if exp <= loop_clock.ms + SLACK_MS and clock_ms() >= exp then
        remove(N, key)
        return nil
    end
    local kind = ent[2]
    if kind == (results and GET_TABLE or MULTI) then
        return nil                  -- decoded for the other kind of lookup
    end
    N.hits = N.hits + 1
    return ent
end

--- The value(s) of an entry lookup() returned, tables as fresh copies.
function _M.values(ent)
    local kind, v = ent[2], ent[1]
    if kind == SCALAR then
        return v
    elseif kind ~= MULTI then
        return copy(v)
    end
    local out = { n = v.n }
    for i = 1, v.n do
        local x = v[i]
        out[i] = type(x) == "table" and copy(x) or x
    end
    return unpack(out, 1, out.n)
end

-- Writes by this process --------------------------------------------------

--- Forgets `key` (this process writes or deletes it): a GET of it in
-- flight will not be kept either.
function _M.forget(N, key)
    N.pend[key] = nil
    remove(N, key)
end

--- Forgets what a clear of `pattern` removes: the keys under its literal
-- head when it is "<literal>*", else everything.
function _M.forget_pattern(N, pattern)
    local head = pattern:match("^(.-)%*$")
    if head and not head:find("[%*%?%[\\]") then
        local n = #head
        for _, t in ipairs { N.new, N.old, N.pend } do
            for k in pairs(t) do
                if sub(k, 1, n) == head then
                    if t == N.pend then N.pend[k] = nil else remove(N, k) end
                end
            end
        end
        return
    end
    flush(N)
end

-- Fetching from Redis -----------------------------------------------------

-- Keeps a reply: `r` holds GET's results (found, values...), `ttl` PTTL's.
local function keep(N, key, tok, sent_ms, ttl, results, r)
    if N.S.seq ~= N.seen then
        sync(N)
    end
    if N.pend[key] ~= tok then
        return                      -- invalidated, flushed or written meanwhile
    end
    N.pend[key] = nil
    if not r[1] or ttl == -2 then
        return                      -- a miss, or gone between GET and PTTL
    end
    local kind, v
    local n = r.n - 1
    if results and n ~= 1 then
        kind, v = MULTI, { n = n, unpack(r, 2, r.n) }
    else
        v = r[2]
        if type(v) ~= "table" then
            kind = SCALAR
        else
            kind = results and TABLE or GET_TABLE
        end
    end
    local size = ENTRY_OVERHEAD + #key + value_size(v, 0)
    local exp = ttl >= 0 and sent_ms + ttl or huge
    insert(N, key, { v, kind, size, exp })
end

--- Before a GET of `key` is sent: a token and the send time when
-- tracking covers it (pass them to keep() with the reply), else nil.
local function begin(N, key)
    if N.S.seq ~= N.seen then
        sync(N)
    end
    if N.S.ready == 0 then
        return nil
    end
    local tok = N.tok + 1
    N.tok = tok
    N.pend[key] = tok
    return tok, clock_ms()
end
_M.begin = begin

-- The caller gets copies of tables: the entry keeps the decoded originals.
local function copy_results(r)
    if r[1] then
        for i = 2, r.n do
            if type(r[i]) == "table" then r[i] = copy(r[i]) end
        end
    end
end

-- As _M.finish, but returns the results packed (tables copied) and the
-- key's PTTL.
local function finish_packed(N, m, key, results, tok, sent_ms, g, p, finish)
    local r = pack(finish(m, unpack(g, 1, g.n)))
    local ttl = finish(m, unpack(p, 1, p.n))
    keep(N, key, tok, sent_ms, ttl, results, r)
    copy_results(r)
    return r, ttl
end

--- After the replies of a GET begin() covered: keeps it when it may be
-- kept, and returns its results (found, values...) for the caller.
-- `g` and `p` are core.get's and core.pttl's immediate results (packed).
function _M.finish(N, m, key, results, tok, sent_ms, g, p, finish)
    local r = finish_packed(N, m, key, results, tok, sent_ms, g, p, finish)
    return unpack(r, 1, r.n)
end

--- GET `key` from Redis (the engine is on Redis: direct lookups said so),
-- keeping the reply when tracking covers it. Returns what core.get's
-- finish returns: found, value(s); tables in it are the caller's own.
function _M.fetch(N, m, key, results, finish)
    local engine = m.engine
    local tok, sent_ms = begin(N, key)
    if not tok then
        return finish(m, core.get(engine, key, results))
    end
    local g = pack(core.get(engine, key, results))
    local p = pack(core.pttl(engine, key))
    return _M.finish(N, m, key, results, tok, sent_ms, g, p, finish)
end

--- As fetch, with the results packed and the key's PTTL in ms (-1: no
-- expiry, -2: missing) as a second result.
function _M.fetch_packed(N, m, key, results, finish)
    local engine = m.engine
    local tok, sent_ms = begin(N, key)
    local g = pack(core.get(engine, key, results))
    local p = pack(core.pttl(engine, key))
    if not tok then
        return pack(finish(m, unpack(g, 1, g.n))), finish(m, unpack(p, 1, p.n))
    end
    return finish_packed(N, m, key, results, tok, sent_ms, g, p, finish)
end

--- Milliseconds left of an entry lookup() returned (-1: no expiry).
function _M.ttl_left(ent)
    local exp = ent[4]
    if exp == huge then return -1 end
    local left = exp - clock_ms()
    return left > 0 and left or 0
end

--- Waits (sleeping 2 ms at a time, at most `seconds`) until tracking
-- covers the GETs sent from now on; true when it does. connect() calls it
-- so that the first reads after it can be kept.
function _M.wait_ready(N, seconds)
    local sched = require "cachert"
    local deadline = sched.now() + seconds
    while N.S.ready == 0 and sched.now() < deadline do
        sched.sleep(0.002)
    end
    return N.S.ready ~= 0
end

--- Entries kept now.
function _M.count(N)
    return N.n_new + N.n_old
end

return _M
