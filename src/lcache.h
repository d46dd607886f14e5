/*
** lcache.h -- the loadable module cache.core (see lcache.c).
*/
#ifndef CACHERT_LCACHE_H
#define CACHERT_LCACHE_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

/* Debian's luaconf.h gives LUALIB_API no visibility attribute, and the
** project builds with hidden visibility: export the entry point by hand. */
#define CR_EXPORT __attribute__((visibility("default")))

CR_EXPORT int luaopen_cache_core(lua_State *L);

#endif
