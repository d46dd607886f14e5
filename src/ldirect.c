/*
** ldirect.c -- the memory store for the FFI (lua/cache/direct.lua).
**
** direct.lua reads the memory store through these plain C functions: an
** FFI call costs a few ns where a lua_CFunction costs ~60, and a hit on a
** string value then needs no C API call at all. The table of function
** pointers is handed to Lua as a light userdata, so the same code works in
** the executable and in the loadable module (no dlsym needed).
*/
#include "ldirect.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "engine_direct.h"
#include "status.h"

/* Stores the string `str` as its MessagePack encoding: header and body are
** assembled on the stack for short strings, in a temporary block above. */
static int direct_set_string(Engine *e, const char *key, size_t klen,
                             const char *str, size_t slen, double ttl_ms)
{
    unsigned char small[512];
    /* Over the size limit: core.set reports it with the sizes in full. */
    if (engine_using_redis(e) || klen + slen + 5 > engine_max_value_bytes(e))
        return 1;
    size_t total = slen + 5;
    unsigned char *buf = total <= sizeof(small) ? small : malloc(total);
    if (buf == NULL)
        return CR_ENOMEM;
    size_t hlen = codec_string_header(str, slen, buf);
    memcpy(buf + hlen, str, slen);
    int rc = engine_set(e, key, klen, (const char *)buf, hlen + slen,
                        (uint64_t)ttl_ms);
    if (buf != small)
        free(buf);
    return rc;
}

static const CacheDirectApi direct_api = {
    .version = CACHE_DIRECT_API_VERSION,
    .size = sizeof(CacheDirectApi),
    .get = engine_direct_get,
    .corrupt = engine_get_corrupt,
    .set_string = direct_set_string,
};

int core_direct_api(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&direct_api);
    return 1;
}
