/*
** ldirect.h -- the memory store's C functions for the FFI (ldirect.c).
*/
#ifndef CACHERT_LDIRECT_H
#define CACHERT_LDIRECT_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "engine.h"

/* The functions lua/cache/direct.lua calls through the FFI; its ffi.cdef
** duplicates this struct, so the struct says which layout it is: direct.lua
** compares `version` and `size` with its own cdef (ffi.sizeof) before it
** uses anything else, and refuses to load on a mismatch. Bump the version
** whenever a member changes (type, order, meaning); `version` and `size`
** stay the first two members of every version. Engine is opaque to Lua
** (void *). */
#define CACHE_DIRECT_API_VERSION 1

typedef struct CacheDirectApi {
    uint32_t version; /* CACHE_DIRECT_API_VERSION */
    uint32_t size;    /* sizeof(CacheDirectApi) */
    /* engine_direct_get: 1 and the encoded value on a hit, 0 on a miss,
    ** -1 when Redis is in use (ask core.get instead). */
    int (*get)(Engine *e, const char *key, size_t klen, const char **val,
               size_t *vlen);
    /* engine_get_corrupt: the caller could not decode the last hit. */
    void (*corrupt)(Engine *e, const char *key, size_t klen);
    /* engine_set of a string value: CR_OK or a negative CR_E* code; 1 when
    ** Redis is in use or the value may be over the size limit (ask
    ** core.set instead). */
    int (*set_string)(Engine *e, const char *key, size_t klen, const char *str,
                      size_t slen, double ttl_ms);
} CacheDirectApi;

/* core.direct_api() -> light userdata: const CacheDirectApi *, whose
** version and size direct.lua checks against its cdef. */
int core_direct_api(lua_State *L);

#endif
