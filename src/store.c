/*
** store.c -- the in-memory fallback store.
**
** Each entry is one malloc block: a header (44 bytes on 64-bit), the key,
** then the value. It sits in a chained hash table (keyed by a SipHash-1-3
** of the key with a per-store random seed, so chosen keys cannot pile into
** one bucket) and on one doubly-linked list ordered by last use, most
** recent at the head; eviction takes the tail. get/set/delete/exists are
** O(1) on average.
**
** The table doubles when it holds more entries than buckets and shrinks
** when under 1/8 full. Resizing is incremental, as in Redis's dict: while a
** second table exists, each operation moves a few buckets across, so no
** single call pays for rehashing everything. If the new bucket array cannot
** be allocated the store keeps working with longer chains.
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

#define MIN_BUCKETS      16 /* power of two */
#define REHASH_MAX_EMPTY 10 /* empty buckets skipped per bucket moved */

typedef struct Entry {
    struct Entry *newer;    /* toward the most recently used end */
    struct Entry *older;    /* toward the least recently used end */
    struct Entry *chain;    /* next entry in the same bucket */
    uint64_t expires_at_ms; /* 0 = never */
    uint32_t hash;
    uint32_t klen;
    uint32_t vlen;
    char data[]; /* klen key bytes, then vlen value bytes */
} Entry;

/* The header is what precedes the key; sizeof(Entry) would add 4 bytes of
** tail padding that the allocation does not contain. */
const size_t STORE_ENTRY_OVERHEAD = offsetof(Entry, data);

typedef struct Table {
    Entry **buckets; /* NULL when the table is not in use */
    size_t mask;     /* bucket count - 1 */
    size_t used;     /* entries in this table */
} Table;

struct Store {
    Table t[2];        /* t[1] is in use only while resizing */
    size_t rehash_pos; /* next bucket of t[0] to move while resizing */
    Entry *mru;
    Entry *lru;
    Entry *sweep_next; /* where store_sweep resumes; NULL: at the tail */
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

#define ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                               \
    do {                                                                       \
        v0 += v1;                                                              \
        v1 = ROTL64(v1, 13);                                                   \
        v1 ^= v0;                                                              \
        v0 = ROTL64(v0, 32);                                                   \
        v2 += v3;                                                              \
        v3 = ROTL64(v3, 16);                                                   \
        v3 ^= v2;                                                              \
        v0 += v3;                                                              \
        v3 = ROTL64(v3, 21);                                                   \
        v3 ^= v0;                                                              \
        v2 += v1;                                                              \
        v1 = ROTL64(v1, 17);                                                   \
        v1 ^= v2;                                                              \
        v2 = ROTL64(v2, 32);                                                   \
    } while (0)

/* SipHash-1-3 (one compression round, three finalisation rounds): keyed,
** so bucket positions are unpredictable without the seed. Words are read
** in host byte order; that changes the values, not the quality. */
static uint32_t hash_key(const Store *s, const char *key, size_t klen)
{
    const unsigned char *in = (const unsigned char *)key;
    const unsigned char *end = in + (klen - klen % 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ s->k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ s->k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ s->k0;
    uint64_t v3 = 0x7465646279746573ULL ^ s->k1;
    uint64_t last = (uint64_t)klen << 56;
    uint64_t h;

    for (; in != end; in += 8) {
        uint64_t m;
        memcpy(&m, in, sizeof(m));
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = 0; i < klen % 8; i++)
        last |= (uint64_t)in[i] << (8 * i);
    v3 ^= last;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    h = v0 ^ v1 ^ v2 ^ v3;
    return (uint32_t)(h ^ (h >> 32));
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
    return s->t[1].buckets != NULL;
}

static Entry **bucket_of(const Table *t, uint32_t hash)
{
    return &t->buckets[hash & t->mask];
}

/* Returns the entry for `key` and, in *link, the pointer that points at
** it (for replacing or unlinking it), or NULL. */
static Entry *find(const Store *s, const char *key, size_t klen, uint32_t hash,
                   Entry ***link)
{
    for (int i = 0; i < 2; i++) {
        if (s->t[i].buckets == NULL)
            break;
        for (Entry **l = bucket_of(&s->t[i], hash); *l; l = &(*l)->chain) {
            Entry *e = *l;
            if (e->hash == hash && e->klen == klen &&
                memcmp(e->data, key, klen) == 0) {
                if (link != NULL)
                    *link = l;
                return e;
            }
        }
    }
    return NULL;
}

/* Starts moving entries to a table of `nbuckets` (a power of two). Without
** memory for it, nothing changes: chains just get longer. */
static void start_resize(Store *s, size_t nbuckets)
{
    Entry **b = calloc(nbuckets, sizeof(*b));
    if (b == NULL)
        return;
    s->t[1].buckets = b;
    s->t[1].mask = nbuckets - 1;
    s->t[1].used = 0;
    s->rehash_pos = 0;
}

/* Moves up to `steps` buckets of t[0] into t[1]. */
static void rehash_step(Store *s, int steps)
{
    size_t empty_left = (size_t)steps * REHASH_MAX_EMPTY;

    if (!resizing(s))
        return;
    while (steps-- > 0 && s->t[0].used > 0) {
        Entry *e;
        while (s->t[0].buckets[s->rehash_pos] == NULL) {
            s->rehash_pos++; /* some bucket at or after here is non-empty */
            if (--empty_left == 0)
                return;
        }
        e = s->t[0].buckets[s->rehash_pos];
        s->t[0].buckets[s->rehash_pos++] = NULL;
        while (e != NULL) {
            Entry *next = e->chain;
            Entry **b = bucket_of(&s->t[1], e->hash);
            e->chain = *b;
            *b = e;
            s->t[0].used--;
            s->t[1].used++;
            e = next;
        }
    }
    if (s->t[0].used == 0) {
        free(s->t[0].buckets);
        s->t[0] = s->t[1];
        s->t[1].buckets = NULL;
        s->t[1].mask = 0;
        s->t[1].used = 0;
    }
}

static void maybe_resize(Store *s)
{
    size_t nbuckets = s->t[0].mask + 1;
    size_t want;

    if (resizing(s))
        return;
    if (s->t[0].used > nbuckets && nbuckets <= SIZE_MAX / 2 / sizeof(Entry *)) {
        start_resize(s, nbuckets * 2);
    } else if (nbuckets > MIN_BUCKETS && s->t[0].used < nbuckets / 8) {
        want = MIN_BUCKETS;
        while (want < s->t[0].used * 2)
            want *= 2;
        start_resize(s, want);
    }
}

static void table_insert(Store *s, Entry *e)
{
    Table *t = resizing(s) ? &s->t[1] : &s->t[0];
    Entry **b = bucket_of(t, e->hash);

    e->chain = *b;
    *b = e;
    t->used++;
    maybe_resize(s);
}

static void table_remove(Store *s, Entry *e)
{
    for (int i = 0; i < 2; i++) {
        if (s->t[i].buckets == NULL)
            break;
        for (Entry **l = bucket_of(&s->t[i], e->hash); *l; l = &(*l)->chain) {
            if (*l == e) {
                *l = e->chain;
                s->t[i].used--;
                maybe_resize(s);
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

/* Finds a live entry; an expired one is removed and counted. */
static Entry *lookup(Store *s, const char *key, size_t klen, uint64_t now_ms)
{
    Entry *e;

    note_now(s, now_ms);
    rehash_step(s, 1);
    e = find(s, key, klen, hash_key(s, key, klen), NULL);
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
    if (s == NULL)
        return NULL;
    s->t[0].buckets = calloc(MIN_BUCKETS, sizeof(*s->t[0].buckets));
    if (s->t[0].buckets == NULL) {
        free(s);
        return NULL;
    }
    s->t[0].mask = MIN_BUCKETS - 1;
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
    free(s->t[0].buckets);
    free(s->t[1].buckets);
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

bool store_exists(Store *s, const char *key, size_t klen, uint64_t now_ms)
{
    return lookup(s, key, klen, now_ms) != NULL;
}

int store_set(Store *s, const char *key, size_t klen, const char *val,
              size_t vlen, uint64_t expires_at_ms, uint64_t now_ms)
{
    uint32_t hash = hash_key(s, key, klen);
    Entry **link = NULL;
    Entry *old;
    Entry *e;
    size_t bytes;
    size_t alloc;

    note_now(s, now_ms);
    rehash_step(s, 2); /* before find: it moves entries between tables */
    old = find(s, key, klen, hash, &link);
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
    alloc = bytes < sizeof(Entry) ? sizeof(Entry) : bytes;
    e = malloc(alloc);
    if (e == NULL) {
        if (old != NULL)
            drop_entry(s, old, now_ms);
        return CR_ENOMEM;
    }
    e->expires_at_ms = expires_at_ms;
    e->hash = hash;
    e->klen = (uint32_t)klen;
    e->vlen = (uint32_t)vlen;
    if (klen > 0)
        memcpy(e->data, key, klen);
    if (vlen > 0)
        memcpy(e->data + klen, val, vlen);

    if (old != NULL) {
        /* Same key, same bucket: swap the new entry into the old's place. */
        e->chain = old->chain;
        *link = e;
        lru_unlink(s, old);
        if (is_expired(old, now_ms))
            s->expired++;
        s->count--;
        s->memory_bytes -= entry_bytes(old);
        free(old);
    } else {
        table_insert(s, e);
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
    e = find(s, key, klen, hash_key(s, key, klen), NULL);
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
** costs O(budget), with no empty buckets to skip. */
size_t store_sweep(Store *s, uint64_t now_ms, size_t budget)
{
    size_t removed = 0;
    Entry *e;

    note_now(s, now_ms);
    rehash_step(s, 1);
    e = s->sweep_next != NULL ? s->sweep_next : s->lru;
    for (; e != NULL && budget > 0; budget--) {
        Entry *next = e->newer;
        if (is_expired(e, now_ms)) {
            drop_entry(s, e, now_ms);
            removed++;
        }
        e = next;
    }
    s->sweep_next = e;
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
