/*
** engine.h -- one cache manager's backend: it picks the store that answers,
** counts the statistics and runs the periodic expiry sweep.
**
** The engine works on encoded bytes (the binding calls the codec), so it is
** free of lua.h and C tests can drive it directly. Today the only backend is
** the in-memory store; the Redis pool slots in behind these same calls.
*/
#ifndef CACHERT_ENGINE_H
#define CACHERT_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "store.h"

#define ENGINE_SWEEP_INTERVAL_MS 100
#define ENGINE_SWEEP_BUDGET      1000 /* entries examined per sweep tick */

typedef struct Engine Engine;

typedef struct EngineConfig {
    size_t max_items; /* fallback store limits; 0 = no limit */
    size_t max_bytes;
} EngineConfig;

typedef struct EngineStats {
    uint64_t hits;
    uint64_t misses;
    uint64_t sets;
    uint64_t deletes; /* delete calls that removed a key, plus keys cleared */
    uint64_t errors;
    uint64_t reconnects;
    bool using_redis;
    const char *last_error; /* NULL when no error happened; static or owned
                               by the engine until the next engine call */
    StoreStats store;
} EngineStats;

/* Creates an engine whose sweep timer runs on `loop` (unreferenced, so it
** never keeps the loop alive). Returns NULL when out of memory. Release it
** with engine_close(). */
Engine *engine_new(uv_loop_t *loop, const EngineConfig *cfg);

/* Frees the store at once and the engine itself once libuv has closed its
** timer (on the next loop turn). Must not be called twice. */
void engine_close(Engine *e);

/* Milliseconds on the engine's monotonic clock (CLOCK_MONOTONIC). */
uint64_t engine_now_ms(void);

/* Looks up `key`; counts a hit or a miss. The returned bytes are valid
** until the next engine call. NULL on a miss. */
const char *engine_get(Engine *e, const char *key, size_t klen, size_t *vlen);

/* Undoes the hit counted by the last engine_get and counts a miss and an
** error instead: the caller could not decode what was stored. The entry is
** removed so the next call recomputes it. */
void engine_get_corrupt(Engine *e, const char *key, size_t klen);

/* Stores `val` for `ttl_ms` milliseconds (0 = no expiry). Returns CR_OK or
** a negative CR_E* code (counted as an error, reason in last_error). */
int engine_set(Engine *e, const char *key, size_t klen, const char *val,
               size_t vlen, uint64_t ttl_ms);

/* Returns true when a live key was removed. */
bool engine_delete(Engine *e, const char *key, size_t klen);

bool engine_exists(Engine *e, const char *key, size_t klen);

/* Removes every key matching the Redis glob; returns how many. */
size_t engine_clear(Engine *e, const char *pattern, size_t plen);

/* Changes the fallback store's limits (evicting at once if needed). */
void engine_set_limits(Engine *e, size_t max_items, size_t max_bytes);

void engine_stats(const Engine *e, EngineStats *out);

#endif
