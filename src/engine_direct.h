/*
** engine_direct.h -- the memory-store read of lua/cache/direct.lua in one
** call (ldirect.c hands it to the FFI): the mode test and engine_get
** together, without a call per layer on the path of every get.
*/
#ifndef CACHERT_ENGINE_DIRECT_H
#define CACHERT_ENGINE_DIRECT_H

#include <stddef.h>

#include "engine.h"

/* 1 and the encoded value (valid until the next store call) on a hit, 0 on
** a miss, -1 when Redis is in use (ask engine_get_async instead). */
int engine_direct_get(Engine *e, const char *key, size_t klen, const char **val,
                      size_t *vlen);

#endif
