/*
** store.h -- the in-memory fallback store (hash table + LRU list).
**
** Keys and values are binary-safe byte strings with explicit lengths.
** get/set/delete/exists are O(1) on average. Every entry carries an absolute
** expiry time in milliseconds (0 = never). Time is never read here: callers
** pass `now_ms` (any monotonic millisecond clock), so tests are
** deterministic.
**
** Memory accounting: memory_bytes is the sum, over live entries, of
** STORE_ENTRY_OVERHEAD + key length + value length. The hash bucket array is
** not counted. max_bytes limits that sum; max_items limits the entry count;
** 0 means "no limit". When a set leaves either limit exceeded, entries are
** evicted from the least recently used end until both hold again.
**
** An entry with expires_at_ms != 0 is expired once now_ms >= expires_at_ms
** (so it is still served at expires_at_ms - 1, and no longer at
** expires_at_ms). Keys and values are each limited to UINT32_MAX bytes.
*/
#ifndef CACHERT_STORE_H
#define CACHERT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Store Store;

typedef struct StoreStats {
    uint64_t evictions; /* entries dropped to respect a limit */
    uint64_t expired;   /* entries removed because their TTL passed */
    size_t keys;        /* entries currently held (may include expired
                           ones not yet swept) */
    size_t memory_bytes;
    size_t max_items;
    size_t max_bytes;
} StoreStats;

/* Per-entry bytes counted by memory_bytes besides key and value. */
extern const size_t STORE_ENTRY_OVERHEAD;

/* Creates an empty store. Returns NULL when out of memory. The caller owns
** the store and frees it with store_free(). */
Store *store_new(size_t max_items, size_t max_bytes);

/* Frees the store and every entry. NULL is allowed. */
void store_free(Store *s);

/* Looks up `key`. An expired entry counts as missing: it is removed and
** counted in `expired`. A hit makes the entry the most recently used.
** Returns a pointer to the value bytes and stores the length in *vlen; the
** pointer points into the store and is valid only until the next call that
** modifies the store (set, delete, clear, sweep, or another get). Returns
** NULL on a miss; a miss is not an error. */
const char *store_get(Store *s, const char *key, size_t klen, uint64_t now_ms,
                      size_t *vlen);

/* Like store_get, and also stores the entry's absolute expiry (0 = never)
** in *expires_at_ms, so a caller that passed a lower bound of the time can
** re-check an entry close to expiry against a precise clock. */
const char *store_get_expiring(Store *s, const char *key, size_t klen,
                               uint64_t now_ms, size_t *vlen,
                               uint64_t *expires_at_ms);

/* A millisecond clock for store_get_timed. */
typedef uint64_t (*store_clock_fn)(void);

/* Like store_get_expiring, but asks `clock` for the time only when the key
** is there with an expiry: a miss, or an entry that never expires, reads no
** clock. *now_ms is the time read, 0 when none was. */
const char *store_get_timed(Store *s, const char *key, size_t klen,
                            store_clock_fn clock, size_t *vlen,
                            uint64_t *expires_at_ms, uint64_t *now_ms);

/* Like store_get, but does not change the LRU order (Redis EXISTS). */
bool store_exists(Store *s, const char *key, size_t klen, uint64_t now_ms);

/* Stores a copy of `val` under a copy of `key`, replacing any previous
** entry, with absolute expiry `expires_at_ms` (0 = never), as the most
** recently used entry; then evicts as needed. Returns CR_OK, CR_ENOMEM, or
** CR_ETOOBIG when this one entry alone exceeds max_bytes. On any error the
** previous entry for `key` (if any) is removed too, so a stale value is
** never served after a failed overwrite. A key or value over UINT32_MAX
** bytes also gives CR_ETOOBIG, even with no byte limit. An entry that is
** already expired (expires_at_ms != 0 and <= now_ms) is not stored: the
** previous entry is removed and the result is CR_OK. */
int store_set(Store *s, const char *key, size_t klen, const char *val,
              size_t vlen, uint64_t expires_at_ms, uint64_t now_ms);

/* Removes `key`. Returns true when a live (unexpired) entry was removed. */
bool store_delete(Store *s, const char *key, size_t klen, uint64_t now_ms);

/* Removes every entry whose key matches the Redis glob `pattern`. Returns
** the number of live entries removed (expired ones are removed too but
** counted in `expired`, not in the result). O(n) in the entry count, or
** O(1) when the pattern is a literal key. */
size_t store_clear(Store *s, const char *pattern, size_t plen, uint64_t now_ms);

/* Removes expired entries, examining at most `budget` entries (or buckets)
** per call and resuming where the previous call stopped, so a periodic
** timer can call it without stalling the loop. Returns the number of
** entries removed. The cursor walks the LRU list from its tail, examining
** exactly min(budget, entries left in the pass) entries; a pass ends at the
** most recent entry and the next call starts a new one, so n entries take
** about n / budget calls to be checked. Entries used during a pass move
** ahead of the cursor and are examined again. While now_ms is before the
** earliest expiry that the last finished pass saw or a set stored since,
** nothing can have expired: the call examines nothing and returns 0. */
size_t store_sweep(Store *s, uint64_t now_ms, size_t budget);

/* Changes the limits; evicts at once if the store is now over them. An
** evicted entry whose time had passed at the latest now_ms given to any
** call counts as expired, any other as an eviction. */
void store_set_limits(Store *s, size_t max_items, size_t max_bytes);

/* Fills *out with the current counters. */
void store_stats(const Store *s, StoreStats *out);

/* Visits every live entry (unexpired at now_ms), most recently used first.
** `fn` returns false to stop early. The store must not be modified from
** `fn`. `ttl_left_ms` is 0 for entries that never expire. */
typedef bool (*store_visit_cb)(void *ud, const char *key, size_t klen,
                               const char *val, size_t vlen,
                               uint64_t ttl_left_ms);
void store_foreach(const Store *s, uint64_t now_ms, store_visit_cb fn,
                   void *ud);

#endif
