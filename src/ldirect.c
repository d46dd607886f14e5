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

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "engine_direct.h"
#include "status.h"

/* True when no byte of `s` has its top bit set: ASCII is valid UTF-8, so
** the header is a str's (utf8_valid's byte-wise checks cost ~2 instructions
** per byte; this ORs 8 bytes at a time). */
static bool is_ascii(const char *s, size_t len)
{
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, sizeof(w));
        acc |= w;
    }
    for (; i < len; i++)
        acc |= (unsigned char)s[i];
    return (acc & UINT64_C(0x8080808080808080)) == 0;
}

/* The MessagePack str header (fixstr, str8, str16, str32) for `len` bytes;
** what codec_string_header writes for valid UTF-8. */
static size_t str_header(size_t len, unsigned char *out)
{
    if (len < 32) {
        out[0] = (unsigned char)(0xa0 | len);
        return 1;
    }
    if (len < 0x100) {
        out[0] = 0xd9;
        out[1] = (unsigned char)len;
        return 2;
    }
    if (len < 0x10000) {
        out[0] = 0xda;
        out[1] = (unsigned char)(len >> 8);
        out[2] = (unsigned char)len;
        return 3;
    }
    out[0] = 0xdb;
    for (int i = 0; i < 4; i++)
        out[1 + i] = (unsigned char)(len >> (24 - 8 * i));
    return 5;
}

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
    size_t hlen = is_ascii(str, slen) ? str_header(slen, buf)
                                      : codec_string_header(str, slen, buf);
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
