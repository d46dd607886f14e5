/*
** engine.h -- one cache manager's backend: Redis when it answers, the
** in-memory store otherwise; the statistics; the periodic expiry sweep.
**
** The engine works on encoded bytes (the binding calls the codec), so it is
** free of lua.h and C tests can drive it directly.
**
** Modes. Until engine_connect() and whenever Redis cannot be used, the
** memory store serves every call, synchronously (engine_get, engine_set,
** ...). While Redis is in use (engine_using_redis()), calls go through the
** *_async functions, whose callbacks run later from the loop. A transport
** failure switches the engine to the memory store at once (the failed call
** completes there), and the backend reconnects in the background with backoff.
** A READONLY reply (a demoted primary) counts as a lost connection; any
** other refusal of a delete or clear also moves the engine to the memory
** store (the old value may still be in Redis), retried later.
**
** No stale data in a fleet: many processes share one Redis, so a manager
** coming back never writes values it remembers (others may have written
** newer ones). It probes the server (not a replica; the ACL user may run
** GET, SET, EXISTS, UNLINK and SCAN: else it stays on memory, the reason
** in last_error, and retries), then replays its journal (journal.h) as
** invalidation: every journaled pattern in one SCAN pass, UNLINK of every
** journaled key, and only then switches back, emptying the memory store.
** While it replays, reads come from the memory store, and writes go to
** Redis at once (and to the memory store, so the process reads its own
** writes until the switch): nobody waits for the replay. A replayed UNLINK
** may remove a value written meanwhile: a miss, never an old value. Writes
** made before the first engine_connect() are journaled like outage writes:
*Redis may
** hold older values from an earlier run.
**
** Size: a set whose key + value exceed max_value_bytes is refused before
** anything is sent (CR_EVALUETOOBIG) and, as the memory store does for an
** entry over its byte limit, the key's old value is removed.
*/
#ifndef CACHERT_ENGINE_H
#define CACHERT_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "log.h"
#include "backend.h"
#include "store.h"

#define ENGINE_SWEEP_INTERVAL_MS 100
#define ENGINE_SWEEP_BUDGET      1000 /* entries examined per sweep tick */

typedef struct Engine Engine;

#define ENGINE_JOURNAL_MAX_KEYS     100000
#define ENGINE_JOURNAL_MAX_PATTERNS 1000
#define ENGINE_REPLAY_IN_FLIGHT     1000 /* journal keys replayed at once */
#define ENGINE_MAX_VALUE_BYTES      ((size_t)512 * 1024 * 1024)

typedef struct EngineConfig {
    size_t max_items; /* fallback store limits; 0 = no limit */
    size_t max_bytes;
    /* A pattern matching every key of this manager (its escaped namespace
    ** then "*"), cleared in Redis after a journal overflow; NULL for "*".
    ** Copied; binary safe (clear_all_len bytes). */
    const char *clear_all_pattern;
    size_t clear_all_len;
    size_t journal_max_keys; /* 0 = ENGINE_JOURNAL_MAX_KEYS */
    /* Largest key + encoded value a set accepts (Redis's bulk limit is
    ** 512 MiB and hiredis 0.14 sums lengths in an int); 0 =
    ** ENGINE_MAX_VALUE_BYTES. Larger values are refused before anything
    ** is sent, with CR_EVALUETOOBIG. */
    size_t max_value_bytes;
    Logger log; /* where outages, refusals and state changes are told */
} EngineConfig;

typedef struct EngineStats {
    uint64_t hits;
    uint64_t misses;
    uint64_t sets;
    uint64_t deletes; /* delete calls that removed a key, plus keys cleared */
    uint64_t errors;
    uint64_t reconnects;
    uint64_t journal_overflows;
    uint64_t invalidations; /* near cache: keys invalidated + flushes */
    bool using_redis;
    /* A Cluster's view (cluster false otherwise): primaries in the slot
    ** map, those connected, and slots served from memory meanwhile. */
    bool cluster;
    size_t cluster_nodes;
    size_t cluster_nodes_up;
    size_t cluster_slots_on_memory;
    const char *last_error; /* NULL when no error happened; owned by the
                               engine, valid until the next engine call */
    StoreStats store;
} EngineStats;

/* The outcome of an *_async call. */
typedef struct EngineResult {
    int status;      /* CR_OK; for a set, a CR_E* code when no backend took
                        the value */
    const char *err; /* with a failed status: a message (callback only) */
    bool found;      /* get: hit; delete: a key was removed; exists */
    const char *val; /* get: the value's bytes, valid during the callback */
    size_t vlen;
    /* get, info from Redis: the reply holding val (reply.h), which the
    ** callback may keep with reply_keep() instead of copying val; NULL
    ** when val lives elsewhere (the memory store) */
    const struct redisReply *reply;
    uint64_t count; /* clear: keys removed */
    int64_t ttl_ms; /* pttl: ms left, -1 without expiry, -2 missing */
    const struct EngineScanPage *page; /* engine_scan_async only */
} EngineResult;

/* Called exactly once per *_async call, with the result (valid during the
** call only). */
typedef void (*engine_done_cb)(void *ud, const EngineResult *r);

/* engine_connect's outcome: true when Redis is in use. */
typedef void (*engine_connect_cb)(void *ud, bool using_redis);

/* Creates an engine whose sweep timer runs on `loop` (unreferenced, so it
** never keeps the loop alive). Returns NULL when out of memory. Release it
** with engine_close(). */
Engine *engine_new(uv_loop_t *loop, const EngineConfig *cfg);

/* Closes the backend (pending calls complete on the memory store first),
** frees the store at once and the engine itself once libuv has closed its
** handles (on the next loop turn). Must not be called twice. */
void engine_close(Engine *e);

/* Starts using Redis with `cfg` (copied; ignored when a backend exists):
** connects the backend, replays the journal, switches. Returns 1 when `done`
** will be called later from the loop (once the first attempt succeeded or
** failed: failed attempts keep being retried in the background), or 0
** after calling `done` already (Redis in use: true; the backend down and
** retrying: false; out of memory: false). Several connects may wait at
** once; each gets the outcome. */
int engine_connect(Engine *e, const RedisConfig *cfg, engine_connect_cb done,
                   void *ud);

/* Stops using Redis: closes the backend (pending Redis calls complete on the
** memory store) and keeps journaling for a later engine_connect(). */
void engine_disconnect(Engine *e);

/* True while calls must go through the *_async functions (Redis in use,
** or its journal being replayed). */
bool engine_using_redis(const Engine *e);

/* Redis versions of get / set / delete / exists / clear, for when
** engine_using_redis(). Each returns 1 when `done` will be called later
** from the loop, or 0 after completing on the memory store (Redis was not
** in use or just failed) and calling `done` already. */
int engine_get_async(Engine *e, const char *key, size_t klen,
                     engine_done_cb done, void *ud);
/* engine_get_async keeping its state while Redis answers (the Op, with a
** copy of the key) in the caller's `room` of `size` bytes, aligned for any
** type, instead of a block of its own, when size >= engine_get_room(klen):
** the caller allocates one block for its request and the engine's. The
** room must stay valid until `done` has returned (`done` must not free it:
** the engine looks at it once more right after); the engine does not touch
** it afterwards. Else (NULL, too small) as engine_get_async. */
size_t engine_get_room(size_t klen);
int engine_get_async_in(Engine *e, void *room, size_t size, const char *key,
                        size_t klen, engine_done_cb done, void *ud);
int engine_set_async(Engine *e, const char *key, size_t klen, const char *val,
                     size_t vlen, uint64_t ttl_ms, engine_done_cb done,
                     void *ud);
int engine_delete_async(Engine *e, const char *key, size_t klen,
                        engine_done_cb done, void *ud);
int engine_exists_async(Engine *e, const char *key, size_t klen,
                        engine_done_cb done, void *ud);
int engine_clear_async(Engine *e, const char *pattern, size_t plen,
                       engine_done_cb done, void *ud);

/* PTTL (the near cache's expiry for a value it keeps): ttl_ms in the
** result; on the memory store always -2 (the near cache is not used
** there). Returns as the functions above. */
int engine_pttl_async(Engine *e, const char *key, size_t klen,
                      engine_done_cb done, void *ud);

/* A lock for single flight across processes (`cached{lock=}`): SET key
** token NX PX ttl_ms; found: taken. engine_unlock_async removes it only
** while it holds token; found: removed. On the memory store both succeed
** at once (only this process uses it; its own single flight applies). */
int engine_lock_async(Engine *e, const char *key, size_t klen,
                      const char *token, size_t tlen, uint64_t ttl_ms,
                      engine_done_cb done, void *ud);
int engine_unlock_async(Engine *e, const char *key, size_t klen,
                        const char *token, size_t tlen, engine_done_cb done,
                        void *ud);

/* -- Inspection (inspect.c): listing keys, a node's INFO -------------------
** For tools (the `cachert keys/clear/stats` commands) rather than the hot
** path: they never fall back to the memory store midway. */

/* What one step of engine_scan_async() found; every pointer is valid
** during the callback only. */
typedef struct EngineScanPage {
    const char *const *keys; /* the matching keys of this step */
    const size_t *klens;
    size_t nkeys;
    uint64_t unlinked; /* keys removed by this step (unlink) */
    bool done;         /* the listing is complete: no next step */
    size_t next_node;  /* else where the next step starts */
    const char *next_cursor;
    bool memory; /* the memory store answered (Redis not in use) */
} EngineScanPage;

#define ENGINE_SCAN_CURSOR_MAX 20 /* digits of a SCAN cursor (uint64) */

/* One step of listing the keys matching the glob `pattern` (binary safe):
** on Redis, SCAN `cursor` MATCH pattern COUNT `count` on node `node` (<
** backend_nodes(); a Cluster's replicas are skipped), then, with `unlink`,
** UNLINK of the keys found (counted in deletes). Start at node 0, cursor
** "0"; each step's page says where the next one starts, until done. A key
** may be listed twice and one written meanwhile may be missed, as with
** SCAN. On the memory store (Redis not in use) one step lists every
** matching key (and removes them with `unlink`). r->page is set on
** success; a failure (the connection lost, a refusal such as NOPERM)
** gives a status and a message, counted as an error, and never moves to
** the memory store. `cursor` is digits only (else CR_EINVAL). Returns as
** the *_async functions above. */
int engine_scan_async(Engine *e, size_t node, const char *cursor,
                      const char *pattern, size_t plen, size_t count,
                      bool unlink, engine_done_cb done, void *ud);

/* The INFO text of node `node` (< r->count, the number of nodes): r->val
** and r->vlen; r->found is false for a node to skip (a Cluster replica).
** Redis not in use: status CR_ECONNRESET, completed at once. `section`
** (NUL-terminated, may be NULL for the default sections) is INFO's
** argument. Returns as the *_async functions above. */
int engine_info_async(Engine *e, size_t node, const char *section,
                      engine_done_cb done, void *ud);

/* The largest key + encoded value a set accepts (EngineConfig). */
size_t engine_max_value_bytes(const Engine *e);

/* What the outage journal holds: Redis has not been told to forget it. */
typedef struct EngineJournalCounts {
    size_t keys;     /* distinct keys */
    size_t patterns; /* distinct patterns */
    bool overflow;   /* details forgotten: the whole namespace is owed */
} EngineJournalCounts;

void engine_journal_counts(Engine *e, EngineJournalCounts *out);

/* flushed: the journal was replayed (or was empty); else `left` says what
** Redis was not told. */
typedef void (*engine_flush_cb)(void *ud, bool flushed,
                                const EngineJournalCounts *left);

/* At exit: gives a non-empty outage journal one last, bounded chance.
** Waits up to `timeout_ms` for Redis to be in use again (connecting with
** `cfg` when the engine has no backend, e.g. after engine_disconnect(); a
** NULL cfg then means no chance), i.e. for the journal to be replayed.
** Returns 1 when `done` will be called later from the loop, or 0 after
** calling it (nothing to flush, Redis in use, no backend and no cfg, a
** flush already waiting, timeout 0). The timer keeps the loop alive. */
int engine_flush(Engine *e, const RedisConfig *cfg, uint64_t timeout_ms,
                 engine_flush_cb done, void *ud);

/* Milliseconds on the engine's monotonic clock (CLOCK_MONOTONIC). */
uint64_t engine_now_ms(void);

/* Moves this engine's memory-store clock `ms` forward, for tests that make
** TTLs expire without sleeping (cache.testing): every expiry, TTL left and
** sweep of the store then reads engine_now_ms() plus the sum advanced (it
** saturates at ENGINE_CLOCK_OFFSET_MAX). Redis's TTLs, timers, backoff and
** log pacing keep real time. Returns the new sum. */
#define ENGINE_CLOCK_OFFSET_MAX ((uint64_t)1 << 62)
uint64_t engine_advance_clock(Engine *e, uint64_t ms);

/* The memory store's get/set/delete/exists/clear, for when Redis is not
** in use (writes are journaled once the engine has connected). */

/* Looks up `key`; counts a hit or a miss. The returned bytes are valid
** until the next engine call. NULL on a miss. */
const char *engine_get(Engine *e, const char *key, size_t klen, size_t *vlen);

/* Undoes the hit counted by the last get (either kind) and counts a miss
** and an error instead: the caller could not decode what was stored. A
** memory entry is removed so the next call recomputes it; a Redis value is
** left alone (another program may have written it). */
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

void engine_stats(const Engine *e, EngineStats *out);

/* -- The near cache's coherence (near.c; the values live in Lua) ---------
** RedisConfig.pool.tracking.enabled at engine_connect turns tracking on
** (tracking.h). EngineNear is read by Lua through the FFI: `seq` changes
** whenever engine_near_drain() has something to give; `ready` is 1 while
** a GET sent now is tracked, so that its reply may be kept. It stays at
** this address for the engine's life. */
typedef struct EngineNear {
    uint32_t seq; /* wraps; Lua only compares it for equality */
    int32_t ready;
} EngineNear;

const EngineNear *engine_near_state(const Engine *e);

typedef void (*engine_key_cb)(void *ud, const char *key, size_t klen);

/* Hands every key invalidated since the last drain to `cb`; returns true,
** giving no key, when everything must go instead (a flush, tracking
** lost or set up again). */
bool engine_near_drain(Engine *e, engine_key_cb cb, void *ud);

#endif
