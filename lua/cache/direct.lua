-- cache/direct.lua -- the hot read path into the memory store, via the FFI.
--
-- A lua_CFunction call costs ~60 ns before it does any work; an FFI call a
-- few ns. get() looks the key up through a C function pointer and decodes
-- the common MessagePack scalars (strings, small integers, nil, booleans,
-- float64) right here from the store's bytes; anything else (tables, multi
-- values, other numbers) is copied out and handed to the C decoder. The
-- store's bytes are only valid until the next store call: they are copied
-- (ffi.string) or decoded before anything else touches the store.
-- Both entry points count as cache calls for the scheduler's fairness
-- (cachert._tick: the running task may yield before the call).

local ffi = require "ffi"
local core = require "cache.core"
local tick = require("cachert")._tick

local C_DECODE, C_DECODE_RESULTS = core.decode, core.decode_results
local ffi_string, ffi_cast = ffi.string, ffi.cast
local tonumber = tonumber
local band, bor, lshift = bit.band, bit.bor, bit.lshift

-- The layout of CacheDirectApi in src/lcache.h, which this cdef
-- duplicates: API_VERSION must equal CACHE_DIRECT_API_VERSION there, and
-- both change whenever a member does. `version` and `size` lead every
-- version of the struct, so they can be read before the rest is trusted.
local API_VERSION = 1

ffi.cdef [[
typedef struct cachert_direct_api_header {
    uint32_t version;
    uint32_t size;
} cachert_direct_api_header;
typedef struct cachert_direct_api {
    uint32_t version;
    uint32_t size;
    int (*get)(void *e, const char *key, size_t klen, const char **val,
               size_t *vlen);
    void (*corrupt)(void *e, const char *key, size_t klen);
    int (*set_string)(void *e, const char *key, size_t klen, const char *str,
                      size_t slen, double ttl_ms);
} cachert_direct_api;
]]

--- Returns `p` (what core.direct_api() returns) as a pointer to the API
-- struct, after checking that the C module laid the struct out as the
-- cdef above says: its version must be `version` and its size `size`.
-- On a mismatch it raises rather than falling back to the slower
-- cache.core calls: a mismatch means lua/cache and cache.core come from
-- different builds, so cache.core's other conventions cannot be trusted
-- either, and a clear error at require time beats wrong results or a
-- crash through a misread function pointer later.
local function check_api(p, version, size)
    if p == nil then
        error("cache.direct: cache.core returned no direct API", 0)
    end
    local h = ffi_cast("const cachert_direct_api_header *", p)
    if h.version ~= version or h.size ~= size then
        error(("cache.direct: cache.core's direct API is version %d (%d bytes) "
               .. "but lua/cache/direct.lua expects version %d (%d bytes): "
               .. "the Lua modules and cache.core come from different builds")
              :format(h.version, h.size, version, size), 0)
    end
    return ffi_cast("const cachert_direct_api *", p)
end

local api = check_api(core.direct_api(), API_VERSION,
                      ffi.sizeof("cachert_direct_api"))
local api_get, api_corrupt, api_set_string = api.get, api.corrupt, api.set_string
local strerror = core.strerror
local vbuf = ffi.new("const char *[1]")
local lbuf = ffi.new("size_t[1]")

local _M = {}

--- The engine pointer of a manager userdata, as FFI cdata.
function _M.engine(ud)
    return ffi_cast("void *", core.engine_ptr(ud))
end

local function slow_decode(e, key, p, len, results)
    local bytes = ffi_string(p, len)
    if results then
        local function check(ok, ...)
            if ok then return true, ... end
            api_corrupt(e, key, #key)
            return false
        end
        return check(C_DECODE_RESULTS(bytes))
    end
    local v, ok = C_DECODE(bytes)
    if ok then return true, v end
    api_corrupt(e, key, #key)
    return false
end

-- Returns true, value... on a hit (a multi value unpacked when `results`),
-- false on a miss or when the stored bytes could not be decoded, and nil
-- when Redis is in use (ask core.get).
local function lookup(e, key, results)
    tick()
    local rc = api_get(e, key, #key, vbuf, lbuf)
    if rc == 0 then
        return false
    elseif rc < 0 then
        return nil
    end
    local p = ffi_cast("const uint8_t *", vbuf[0])
    local len = tonumber(lbuf[0])
    local b = p[0]
    if b >= 0xa0 and b <= 0xbf and len == b - 0xa0 + 1 then  -- fixstr
        return true, ffi_string(p + 1, len - 1)
    elseif (b == 0xd9 or b == 0xc4) and len >= 2 and len == p[1] + 2 then
        return true, ffi_string(p + 2, len - 2)             -- str8 / bin8
    elseif (b == 0xda or b == 0xc5) and len >= 3
        and len == bor(lshift(p[1], 8), p[2]) + 3 then
        return true, ffi_string(p + 3, len - 3)             -- str16 / bin16
    elseif b < 0x80 and len == 1 then
        return true, b                                       -- positive fixint
    elseif b == 0xc0 and len == 1 then
        return true, nil
    elseif b == 0xc3 and len == 1 then
        return true, true
    elseif b == 0xc2 and len == 1 then
        return true, false
    elseif band(b, 0xe0) == 0xe0 and len == 1 then
        return true, b - 256                                 -- negative fixint
    end
    return slow_decode(e, key, p, len, results)
end

_M.lookup = lookup

-- For specs: the check this module ran on cache.core's direct API, and
-- the version its cdef describes.
_M._check_api = check_api
_M._API_VERSION = API_VERSION

--- Stores a string value; returns true, or false and the reason, or nil
-- when Redis is in use (ask core.set).
function _M.set_string(e, key, str, ttl_ms)
    tick()
    local rc = api_set_string(e, key, #key, str, #str, ttl_ms)
    if rc == 0 then return true end
    if rc == 1 then return nil end
    return false, strerror(rc)
end

return _M
