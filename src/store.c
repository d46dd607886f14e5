/*
** store.c -- the in-memory fallback store.
**
** Each entry is one malloc block: a header (36 bytes on 64-bit), the key,
** then the value. It is on one doubly-linked list ordered by last use, most
** recent at the head (eviction takes the tail), and in an open-addressing
** hash table with linear probing. get/set/delete/exists are O(1) on
** average.
**
** The table is two parallel arrays: a 32-bit tag per slot (the key's hash;
** 0 = empty, 1 = moved) and a pointer per slot. A probe reads only tags, 16
** per cache line, and dereferences an entry only when all 32 bits match,
** so a miss usually costs one cache line of tags and no entry, and a hit
** one entry. Deletion shifts the rest of the cluster back (no tombstones).
** 12 bytes per slot, at most 3/4 full: 16 to 32 bytes per entry, against 16
** (bucket pointer plus chain pointer) for the chained table this replaced.
**
** The table doubles at 3/4 full and shrinks to a quarter under 1/16 full,
** never below its first size (room for max_items, up to PRESIZE_SLOTS).
** Resizing is incremental, as in Redis's dict: while the new table exists,
** every get/exists/delete/sweep examines 16 slots of the old one and every
** set 32, moving their entries across, so no single call pays for
** rehashing everything. The old table only loses entries while it drains,
** and a moved or deleted slot there is marked "moved" rather than emptied,
** so probes for the entries behind it still reach them; the old table is
** freed once empty. If a larger table cannot be allocated the store goes on
** with the fuller one, and a set that would fill its last free slot fails
** with CR_ENOMEM.
**
** Hashing: a seeded multiply-and-fold hash (the idea of wyhash and
** rapidhash; written here) of the key, with a 128-bit random seed per
** store. Before this it was SipHash-1-3, which cost about as much as the
** rest of a short-key lookup. The trade-off, for hash flooding: without the
** seed an attacker cannot choose keys that share a slot, as with SipHash;
** but unlike SipHash this is not a cryptographic PRF, so there is no proof
** that observing which keys collide (by timing) teaches nothing about the
** seed. An attacker who learned the seed could make keys collide, and
** with linear probing the cost is a long run of slots (a lookup degrading
** toward O(n)), as with long chains before.
**
** Expiry is lazy (get, exists, delete, clear notice it) plus store_sweep(),
** whose cursor walks the LRU list from the tail. Time is never read here.
*/

#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __linux__
#include <sys/random.h>
#endif

#include "globmatch.h"
#include "status.h"

#define MIN_SLOTS     16         /* power of two */
#define PRESIZE_SLOTS (1u << 12) /* most slots reserved up front */
#define REHASH_SLOTS  16         /* old-table slots examined per step */
#define TAG_EMPTY     0u         /* slot never used since the table was made */
#define TAG_MOVED     1u         /* slot emptied in a table being drained */
#define TAG_MIN       2u         /* the smallest tag of an entry */

/* For the few helpers of the read path: a call there costs as much as
** the work (register saves, the probe's arguments). */
#if defined(__GNUC__)
#define HOT_INLINE static inline __attribute__((always_inline))
#else
#define HOT_INLINE static inline
#endif

typedef struct Entry {
    struct Entry *newer;    /* toward the most recently used end */
    struct Entry *older;    /* toward the least recently used end */
    uint64_t expires_at_ms; /* 0 = never */
    uint32_t hash;          /* the key's tag, >= TAG_MIN */
    uint32_t klen;
    uint32_t vlen;
    char data[]; /* klen key bytes, then vlen value bytes */
} Entry;

/* The header is what precedes the key; sizeof(Entry) would add 4 bytes of
** tail padding that the allocation does not contain. */
const size_t STORE_ENTRY_OVERHEAD = offsetof(Entry, data);

/* Open addressing with linear probing. Slot i holds tags[i] and
** entries[i]; the tags sit in their own array so a probe reads 4 bytes per
** slot (16 slots per cache line) and dereferences an entry only when its
** whole 32-bit tag matches. */
typedef struct Table {
    Entry **entries; /* NULL when not in use; its block also holds tags */
    uint32_t *tags;  /* TAG_EMPTY, TAG_MOVED or the entry's hash */
    size_t mask;     /* slot count - 1 */
    size_t used;     /* entries in this table */
} Table;

struct Store {
    Table t[2];        /* t[1] is in use only while resizing */
    size_t rehash_pos; /* next slot of t[0] to move while resizing */
    size_t min_slots;  /* never shrink below this (presized from max_items) */
    Entry *mru;
    Entry *lru;
    Entry *sweep_next;    /* where store_sweep resumes; NULL: at the tail */
    uint64_t next_expiry; /* no entry expires before this: sweeps wait */
    uint64_t pass_min;    /* earliest expiry seen or set during this pass */
    size_t count;
    size_t memory_bytes;
    size_t max_items;
    size_t max_bytes;
    uint64_t evictions;
    uint64_t expired;
    uint64_t now_ms; /* latest now_ms seen: set_limits has none */
    uint64_t k0, k1; /* hash seed */
};

/* -- Hashing ----------------------------------------------------------- */

/* Folds a 64-bit hash to a 32-bit tag, avoiding the two marker values. */
HOT_INLINE uint32_t tag_of(uint64_t h)
{
    uint32_t tag = (uint32_t)(h ^ (h >> 32));
    return tag < TAG_MIN ? tag + TAG_MIN : tag;
}

static uint64_t load64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static uint32_t load32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* 64 x 64 -> 128-bit multiply, folded to 64 bits by xoring the halves. */
HOT_INLINE uint64_t fold_mul(uint64_t a, uint64_t b)
{
#ifdef __SIZEOF_INT128__
    unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
#else
    uint64_t al = a & 0xffffffffu, ah = a >> 32;
    uint64_t bl = b & 0xffffffffu, bh = b >> 32;
    uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    uint64_t mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
    uint64_t lo = (ll & 0xffffffffu) | (mid << 32);
    uint64_t hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
    return lo ^ hi;
#endif
}

/* Odd constants: 2^64 divided by the golden ratio, and an arbitrary one. */
#define HASH_C1 0x9e3779b97f4a7c15ULL
#define HASH_C2 0xd6e8feb86659fd93ULL

/* Seeded multiply-and-fold hash: each 16-byte block is xored with the
** secret seed and multiplied, so where a key lands depends on 128 secret
** bits. Keys of up to 16 bytes take one multiply plus one to finish. */
HOT_INLINE uint32_t hash_key(const Store *s, const char *key, size_t klen)
{
    const unsigned char *u = (const unsigned char *)key;
    uint64_t acc = s->k0 ^ ((uint64_t)klen * HASH_C1);
    uint64_t a, b;

    if (klen <= 16) {
        if (klen >= 8) {
            a = load64(key);
            b = load64(key + klen - 8);
        } else if (klen >= 4) {
            a = load32(key);
            b = load32(key + klen - 4);
        } else if (klen > 0) {
            a = (uint64_t)u[0] | (uint64_t)u[klen / 2] << 8 |
                (uint64_t)u[klen - 1] << 16;
            b = 0;
        } else {
            a = b = 0;
        }
    } else {
        size_t left = klen;
        for (; left > 16; left -= 16, key += 16)
            acc = fold_mul(load64(key) ^ s->k1, load64(key + 8) ^ acc);
        a = load64(key + left - 16);
        b = load64(key + left - 8);
    }
    acc = fold_mul(a ^ s->k1, b ^ acc);
    return tag_of(fold_mul(acc ^ HASH_C2, s->k0 ^ HASH_C1));
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Fills the seed from the kernel; falls back to the clock and addresses,
** which is weaker but never fails. */
static void seed_hash(Store *s)
{
    uint64_t seed[2] = {0, 0};
    bool ok = false;

#ifdef __linux__
    ok = getrandom(seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed);
#endif
    if (!ok) {
        FILE *f = fopen("/dev/urandom", "rb");
        if (f != NULL) {
            ok = fread(seed, sizeof(seed), 1, f) == 1;
            fclose(f);
        }
    }
    if (!ok) {
        struct timespec ts = {0, 0};
        (void)clock_gettime(CLOCK_REALTIME, &ts);
        seed[0] = mix64((uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)s);
        seed[1] = mix64((uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)&ts);
    }
    s->k0 = seed[0];
    s->k1 = seed[1];
}

/* -- Hash table -------------------------------------------------------- */

static bool resizing(const Store *s)
{
    return s->t[1].entries != NULL;
}

/* memcmp(a, b, n) == 0, with two overlapping loads for keys of 4 to 16
** bytes (the common short key) instead of a call. */
HOT_INLINE bool key_eq(const char *a, const char *b, size_t n)
{
    if (n >= 8 && n <= 16)
        return load64(a) == load64(b) && load64(a + n - 8) == load64(b + n - 8);
    if (n >= 4 && n < 8)
        return load32(a) == load32(b) && load32(a + n - 4) == load32(b + n - 4);
    return n == 0 || memcmp(a, b, n) == 0;
}

/* Returns the slot of `key` in `t`, or SIZE_MAX. Every table keeps at
** least one TAG_EMPTY slot, so the probe ends. */
HOT_INLINE size_t probe_key(const Table *t, const char *key, size_t klen,
                            uint32_t hash)
{
    for (size_t i = hash & t->mask;; i = (i + 1) & t->mask) {
        uint32_t tag = t->tags[i];
        if (tag == hash) {
            const Entry *e = t->entries[i];
            if (e->klen == klen && key_eq(e->data, key, klen))
                return i;
        } else if (tag == TAG_EMPTY) {
            return SIZE_MAX;
        }
    }
}

/* Returns the entry for `key`, and in *where and *slot its table and slot
** (for replacing it in place), or NULL. */
static Entry *find(Store *s, const char *key, size_t klen, uint32_t hash,
                   Table **where, size_t *slot)
{
    for (int n = 0; n < 2; n++) {
        Table *t = &s->t[n];
        size_t i;
        if (t->entries == NULL)
            break;
        i = probe_key(t, key, klen, hash);
        if (i != SIZE_MAX) {
            if (where != NULL) {
                *where = t;
                *slot = i;
            }
            return t->entries[i];
        }
    }
    return NULL;
}

/* Allocates an empty table of `nslots` (a power of two). */
static bool table_alloc(Table *t, size_t nslots)
{
    void *block;

    if (nslots > SIZE_MAX / (sizeof(Entry *) + sizeof(uint32_t)))
        return false;
    block = calloc(nslots, sizeof(Entry *) + sizeof(uint32_t));
    if (block == NULL)
        return false;
    t->entries = block;
    t->tags = (uint32_t *)(t->entries + nslots);
    t->mask = nslots - 1;
    t->used = 0;
    return true;
}

static void table_put(Table *t, Entry *e)
{
    size_t i = e->hash & t->mask;

    while (t->tags[i] != TAG_EMPTY)
        i = (i + 1) & t->mask;
    t->tags[i] = e->hash;
    t->entries[i] = e;
    t->used++;
}

/* Starts moving entries to a table of `nslots`. Without memory for it,
** nothing changes: the store goes on with the fuller table. */
static void start_resize(Store *s, size_t nslots)
{
    if (table_alloc(&s->t[1], nslots))
        s->rehash_pos = 0;
}

/* Examines up to `steps` * REHASH_SLOTS slots of t[0], moving their entries
** into t[1]. A moved slot becomes TAG_MOVED, not empty, so probes for the
** entries still behind it in t[0] go on past it. t[0] takes no inserts
** while it drains, so it keeps its empty slots and every probe ends. */
static void rehash_step(Store *s, int steps)
{
    Table *from = &s->t[0];
    size_t left = (size_t)steps * REHASH_SLOTS;

    if (!resizing(s))
        return;
    for (; left > 0 && from->used > 0; left--) {
        size_t i = s->rehash_pos++; /* a live slot is at or after i */
        if (from->tags[i] >= TAG_MIN) {
            table_put(&s->t[1], from->entries[i]);
            from->tags[i] = TAG_MOVED;
            from->used--;
        }
    }
    if (from->used == 0) {
        free(from->entries);
        s->t[0] = s->t[1];
        memset(&s->t[1], 0, sizeof(s->t[1]));
    }
}

/* Grows at 3/4 full. While a table drains, each get moves 16 slots and each
** set 32, so a table of n slots is drained within n/32 sets: the new table
** (2n slots) reaches at most 3n/4 + n/32 entries, under 1/2 full. */
static void maybe_grow(Store *s)
{
    size_t nslots = s->t[0].mask + 1;

    if (!resizing(s) && s->t[0].used >= nslots / 4 * 3)
        start_resize(s, nslots * 2);
}

/* Shrinks to 1/4 of the slots when under 1/16 full: with at most n/32 sets
** while draining, the new table holds under n/16 + n/32 entries of n/4
** slots (3/8 full). */
static void maybe_shrink(Store *s)
{
    size_t nslots = s->t[0].mask + 1;

    if (!resizing(s) && nslots / 4 >= s->min_slots &&
        s->t[0].used < nslots / 16)
        start_resize(s, nslots / 4);
}

/* Puts a new entry in the table that takes inserts. Returns false only
** when the table is full because no larger one could be allocated. */
static bool table_insert(Store *s, Entry *e)
{
    Table *t;

    maybe_grow(s);
    t = resizing(s) ? &s->t[1] : &s->t[0];
    if (t->used + 2 > t->mask + 1)
        return false; /* keep one slot empty so every probe ends */
    table_put(t, e);
    return true;
}

/* Empties slot i of a table that takes inserts, moving later entries of
** the cluster back so no probe meets a hole before its entry (backward
** shift deletion: no tombstones). */
static void slot_clear(Table *t, size_t i)
{
    size_t j = i;

    for (;;) {
        uint32_t tag;
        j = (j + 1) & t->mask;
        tag = t->tags[j];
        if (tag == TAG_EMPTY)
            break;
        /* The entry at j may fill the hole at i unless its home slot lies
        ** cyclically in (i, j]. */
        if (((j - (tag & t->mask)) & t->mask) >= ((j - i) & t->mask)) {
            t->tags[i] = tag;
            t->entries[i] = t->entries[j];
            i = j;
        }
    }
    t->tags[i] = TAG_EMPTY;
    t->entries[i] = NULL;
}

static void table_remove(Store *s, Entry *e)
{
    for (int n = 0; n < 2; n++) {
        Table *t = &s->t[n];
        if (t->entries == NULL)
            break;
        for (size_t i = e->hash & t->mask; t->tags[i] != TAG_EMPTY;
             i = (i + 1) & t->mask) {
            if (t->tags[i] == e->hash && t->entries[i] == e) {
                if (n == 0 && resizing(s)) {
                    t->tags[i] = TAG_MOVED; /* draining: keep probes going */
                    t->entries[i] = NULL;
                } else {
                    slot_clear(t, i);
                }
                t->used--;
                maybe_shrink(s);
                return;
            }
        }
    }
}

/* -- Entry list -------------------------------------------------------- */

static void lru_unlink(Store *s, Entry *e)
{
    if (s->sweep_next == e)
        s->sweep_next = e->newer; /* keep the sweep cursor valid */
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        s->mru = e->older;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        s->lru = e->newer;
}

static void lru_push_mru(Store *s, Entry *e)
{
    e->newer = NULL;
    e->older = s->mru;
    if (s->mru != NULL)
        s->mru->newer = e;
    else
        s->lru = e;
    s->mru = e;
}

static void touch(Store *s, Entry *e)
{
    if (s->mru == e)
        return;
    lru_unlink(s, e);
    lru_push_mru(s, e);
}

/* -- Entries ----------------------------------------------------------- */

static size_t entry_bytes(const Entry *e)
{
    return STORE_ENTRY_OVERHEAD + e->klen + e->vlen;
}

/* The size of an entry's block: store_set allocates no less than Entry. */
static size_t alloc_size(size_t bytes)
{
    return bytes < sizeof(Entry) ? sizeof(Entry) : bytes;
}

/* Expired exactly at expires_at_ms, not one millisecond later. */
static bool is_expired(const Entry *e, uint64_t now_ms)
{
    return e->expires_at_ms != 0 && now_ms >= e->expires_at_ms;
}

static void note_now(Store *s, uint64_t now_ms)
{
    if (now_ms > s->now_ms)
        s->now_ms = now_ms;
}

static void remove_entry(Store *s, Entry *e)
{
    table_remove(s, e);
    lru_unlink(s, e);
    s->count--;
    s->memory_bytes -= entry_bytes(e);
    free(e);
}

/* Removes an entry for a reason other than a limit: counted in `expired`
** if its time had passed. Returns true when it was live. */
static bool drop_entry(Store *s, Entry *e, uint64_t now_ms)
{
    bool live = !is_expired(e, now_ms);
    if (!live)
        s->expired++;
    remove_entry(s, e);
    return live;
}

static bool over_limits(const Store *s)
{
    return (s->max_items != 0 && s->count > s->max_items) ||
           (s->max_bytes != 0 && s->memory_bytes > s->max_bytes);
}

static void evict(Store *s)
{
    while (over_limits(s) && s->lru != NULL) {
        Entry *e = s->lru;
        if (is_expired(e, s->now_ms))
            s->expired++; /* it was dead anyway */
        else
            s->evictions++;
        remove_entry(s, e);
    }
}

/* Finds the entry of `key`, live or not. Inlined, with the probe: this is
** every read's path. */
HOT_INLINE Entry *find_entry(Store *s, const char *key, size_t klen)
{
    uint32_t hash = hash_key(s, key, klen);
    size_t i;

    if (resizing(s))
        rehash_step(s, 1); /* may end the resize: test again below */
    i = probe_key(&s->t[0], key, klen, hash);
    if (i != SIZE_MAX)
        return s->t[0].entries[i];
    if (resizing(s)) {
        i = probe_key(&s->t[1], key, klen, hash);
        if (i != SIZE_MAX)
            return s->t[1].entries[i];
    }
    return NULL;
}

/* Finds a live entry; an expired one is removed and counted. */
HOT_INLINE Entry *lookup(Store *s, const char *key, size_t klen,
                         uint64_t now_ms)
{
    Entry *e;

    note_now(s, now_ms);
    e = find_entry(s, key, klen);
    if (e != NULL && is_expired(e, now_ms)) {
        drop_entry(s, e, now_ms);
        return NULL;
    }
    return e;
}

/* -- Public API -------------------------------------------------------- */

Store *store_new(size_t max_items, size_t max_bytes)
{
    Store *s = calloc(1, sizeof(*s));
    size_t nslots = MIN_SLOTS;

    if (s == NULL)
        return NULL;
    /* Room for max_items at most 3/4 full, up to PRESIZE_SLOTS. */
    while (nslots < PRESIZE_SLOTS && nslots / 4 * 3 < max_items)
        nslots *= 2;
    if (!table_alloc(&s->t[0], nslots)) {
        free(s);
        return NULL;
    }
    s->min_slots = nslots;
    s->next_expiry = s->pass_min = UINT64_MAX;
    s->max_items = max_items;
    s->max_bytes = max_bytes;
    seed_hash(s);
    return s;
}

void store_free(Store *s)
{
    Entry *e;

    if (s == NULL)
        return;
    e = s->mru;
    while (e != NULL) {
        Entry *next = e->older;
        free(e);
        e = next;
    }
    free(s->t[0].entries);
    free(s->t[1].entries);
    free(s);
}

const char *store_get(Store *s, const char *key, size_t klen, uint64_t now_ms,
                      size_t *vlen)
{
    Entry *e = lookup(s, key, klen, now_ms);
    if (e == NULL)
        return NULL;
    touch(s, e);
    if (vlen != NULL)
        *vlen = e->vlen;
    return e->data + e->klen;
}

const char *store_get_expiring(Store *s, const char *key, size_t klen,
                               uint64_t now_ms, size_t *vlen,
                               uint64_t *expires_at_ms)
{
    Entry *e = lookup(s, key, klen, now_ms);
    if (e == NULL)
        return NULL;
    touch(s, e);
    *vlen = e->vlen;
    *expires_at_ms = e->expires_at_ms;
    return e->data + e->klen;
}

const char *store_get_timed(Store *s, const char *key, size_t klen,
                            store_clock_fn clock, size_t *vlen,
                            uint64_t *expires_at_ms, uint64_t *now_ms)
{
    Entry *e = find_entry(s, key, klen);
    uint64_t now = 0;

    if (e == NULL)
        return NULL;
    if (e->expires_at_ms != 0) {
        now = clock();
        note_now(s, now);
        if (is_expired(e, now)) {
            drop_entry(s, e, now);
            return NULL;
        }
    }
    touch(s, e);
    *vlen = e->vlen;
    *expires_at_ms = e->expires_at_ms;
    *now_ms = now;
    return e->data + e->klen;
}

bool store_exists(Store *s, const char *key, size_t klen, uint64_t now_ms)
{
    return lookup(s, key, klen, now_ms) != NULL;
}

int store_set(Store *s, const char *key, size_t klen, const char *val,
              size_t vlen, uint64_t expires_at_ms, uint64_t now_ms)
{
    uint32_t hash = hash_key(s, key, klen);
    Table *where = NULL;
    size_t slot = 0;
    Entry *old;
    Entry *e;
    size_t bytes;
    size_t alloc;
    bool in_place = false; /* e is old's block, still in its slot */

    note_now(s, now_ms);
    rehash_step(s, 2); /* before find: it moves entries between tables */
    old = find(s, key, klen, hash, &where, &slot);
    if (klen > UINT32_MAX || vlen > UINT32_MAX ||
        (s->max_bytes != 0 &&
         (klen > s->max_bytes || vlen > s->max_bytes ||
          STORE_ENTRY_OVERHEAD + klen + vlen > s->max_bytes))) {
        if (old != NULL)
            drop_entry(s, old, now_ms);
        return CR_ETOOBIG;
    }
    if (expires_at_ms != 0 && now_ms >= expires_at_ms) {
        if (old != NULL)
            drop_entry(s, old, now_ms);
        return CR_OK; /* dead on arrival: nothing to keep */
    }

    bytes = STORE_ENTRY_OVERHEAD + klen + vlen;
    alloc = alloc_size(bytes);
    if (old != NULL && alloc <= alloc_size(entry_bytes(old))) {
        /* Its block is big enough: rewrite it where it is. */
        lru_unlink(s, old);
        if (is_expired(old, now_ms))
            s->expired++;
        s->count--;
        s->memory_bytes -= entry_bytes(old);
        e = old;
        old = NULL;
        in_place = true;
    } else if (old == NULL && s->max_items != 0 && s->count >= s->max_items &&
               s->lru != NULL && alloc <= alloc_size(entry_bytes(s->lru))) {
        /* The insert would evict the least recently used entry first
        ** anyway (evict() below): evict it now and take its block. */
        e = s->lru;
        if (is_expired(e, s->now_ms))
            s->expired++;
        else
            s->evictions++;
        table_remove(s, e);
        lru_unlink(s, e);
        s->count--;
        s->memory_bytes -= entry_bytes(e);
    } else {
        e = malloc(alloc);
        if (e == NULL) {
            if (old != NULL)
                drop_entry(s, old, now_ms);
            return CR_ENOMEM;
        }
    }
    e->expires_at_ms = expires_at_ms;
    if (expires_at_ms != 0) {
        if (expires_at_ms < s->next_expiry)
            s->next_expiry = expires_at_ms;
        if (expires_at_ms < s->pass_min)
            s->pass_min = expires_at_ms;
    }
    e->hash = hash;
    e->klen = (uint32_t)klen;
    e->vlen = (uint32_t)vlen;
    if (klen > 0 && !in_place)
        memcpy(e->data, key, klen);
    if (vlen > 0)
        memcpy(e->data + klen, val, vlen);

    if (old != NULL) {
        /* Same key, same tag: the new entry takes the old one's slot. */
        where->entries[slot] = e;
        lru_unlink(s, old);
        if (is_expired(old, now_ms))
            s->expired++;
        s->count--;
        s->memory_bytes -= entry_bytes(old);
        free(old);
    } else if (!in_place && !table_insert(s, e)) {
        free(e);
        return CR_ENOMEM; /* the table is full and could not grow */
    }
    lru_push_mru(s, e);
    s->count++;
    s->memory_bytes += bytes;
    evict(s);
    return CR_OK;
}

bool store_delete(Store *s, const char *key, size_t klen, uint64_t now_ms)
{
    Entry *e;

    note_now(s, now_ms);
    rehash_step(s, 1);
    e = find(s, key, klen, hash_key(s, key, klen), NULL, NULL);
    return e != NULL && drop_entry(s, e, now_ms);
}

size_t store_clear(Store *s, const char *pattern, size_t plen, uint64_t now_ms)
{
    size_t removed = 0;
    Entry *e;

    if (globmatch_is_literal(pattern, plen))
        return store_delete(s, pattern, plen, now_ms) ? 1 : 0;
    note_now(s, now_ms);
    e = s->mru;
    while (e != NULL) {
        Entry *next = e->older;
        if (globmatch(pattern, plen, e->data, e->klen) &&
            drop_entry(s, e, now_ms))
            removed++;
        e = next;
    }
    return removed;
}

/* The cursor walks from the tail toward the head and stops at the head;
** the next call starts a new pass at the tail. Entries used or inserted
** during a pass move ahead of the cursor and are examined again. Each call
** costs O(budget), with no empty buckets to skip. A finished pass has seen
** every live entry's expiry (sets add theirs), so until the earliest of
** them comes, nothing can have expired and a call returns at once instead
** of walking (and missing the cache on) entries that all live on. */
size_t store_sweep(Store *s, uint64_t now_ms, size_t budget)
{
    size_t removed = 0;
    Entry *e;

    note_now(s, now_ms);
    rehash_step(s, 1);
    if (now_ms < s->next_expiry)
        return 0;
    e = s->sweep_next;
    if (e == NULL) { /* a new pass */
        e = s->lru;
        s->pass_min = UINT64_MAX;
    }
    for (; e != NULL && budget > 0; budget--) {
        Entry *next = e->newer;
        if (is_expired(e, now_ms)) {
            drop_entry(s, e, now_ms);
            removed++;
        } else if (e->expires_at_ms != 0 && e->expires_at_ms < s->pass_min)
            s->pass_min = e->expires_at_ms;
        e = next;
    }
    s->sweep_next = e;
    if (e == NULL)
        s->next_expiry = s->pass_min; /* the pass is over */
    return removed;
}

void store_set_limits(Store *s, size_t max_items, size_t max_bytes)
{
    s->max_items = max_items;
    s->max_bytes = max_bytes;
    evict(s);
}

void store_stats(const Store *s, StoreStats *out)
{
    out->evictions = s->evictions;
    out->expired = s->expired;
    out->keys = s->count;
    out->memory_bytes = s->memory_bytes;
    out->max_items = s->max_items;
    out->max_bytes = s->max_bytes;
}

void store_foreach(const Store *s, uint64_t now_ms, store_visit_cb fn, void *ud)
{
    for (const Entry *e = s->mru; e != NULL; e = e->older) {
        if (is_expired(e, now_ms))
            continue;
        if (!fn(ud, e->data, e->klen, e->data + e->klen, e->vlen,
                e->expires_at_ms != 0 ? e->expires_at_ms - now_ms : 0))
            break;
    }
}
