/*
** journal.c -- the outage journal: a bounded key log plus a bounded list
** of patterns.
**
** Keys are appended to a log (a length, then the bytes) at the cost of a
** memcpy, because the engine journals every memory write, and most
** managers never connect: a hash-set insert per write cost a quarter of
** the memory store's throughput. When the log holds 2 * max_keys entries it
** is compacted (duplicates dropped, through a Store used as a hash set), so
** appends are amortised O(1); more than max_keys distinct keys overflow.
** Memory: at most 2 * max_keys * (4 + key length) bytes plus the patterns.
*/
#include "journal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "store.h"

struct Journal {
    char *log; /* entries: uint32_t length, then that many bytes */
    size_t len;
    size_t cap;
    size_t nkeys; /* entries in the log (duplicates included) */
    char **patterns;
    size_t *plens;
    size_t npatterns;
    size_t max_keys;
    size_t max_patterns;
    bool overflow;
};

/* -- Helpers ------------------------------------------------------------ */

static char *copy_bytes(const char *s, size_t len)
{
    char *c = malloc(len + 1);
    if (c != NULL) {
        memcpy(c, s, len);
        c[len] = '\0';
    }
    return c;
}

static void drop_details(Journal *j)
{
    for (size_t i = 0; i < j->npatterns; i++)
        free(j->patterns[i]);
    j->npatterns = 0;
    j->len = 0;
    j->nkeys = 0;
}

static bool append(Journal *j, const char *key, size_t klen)
{
    uint32_t n = (uint32_t)klen;
    size_t need = j->len + sizeof(n) + klen;
    if (klen > UINT32_MAX)
        return false;
    if (need > j->cap) {
        size_t cap = j->cap ? j->cap : 4096;
        while (cap < need)
            cap *= 2;
        char *log = realloc(j->log, cap);
        if (log == NULL)
            return false;
        j->log = log;
        j->cap = cap;
    }
    memcpy(j->log + j->len, &n, sizeof(n));
    memcpy(j->log + j->len + sizeof(n), key, klen);
    j->len = need;
    j->nkeys++;
    return true;
}

/* Calls fn for each log entry; stops when it returns false. */
static bool each_entry(const Journal *j,
                       bool (*fn)(void *, const char *, size_t), void *ud)
{
    size_t off = 0;
    while (off < j->len) {
        uint32_t n;
        memcpy(&n, j->log + off, sizeof(n));
        if (!fn(ud, j->log + off + sizeof(n), n))
            return false;
        off += sizeof(n) + n;
    }
    return true;
}

static bool into_set(void *ud, const char *key, size_t klen)
{
    return store_set(ud, key, klen, "", 0, 0, 0) == CR_OK;
}

static bool into_log(void *ud, const char *key, size_t klen, const char *val,
                     size_t vlen, uint64_t ttl_left_ms)
{
    (void)val;
    (void)vlen;
    (void)ttl_left_ms;
    return append(ud, key, klen);
}

/* Drops duplicate keys from the log. Returns false when out of memory. */
static bool compact(Journal *j)
{
    Store *set = store_new(0, 0);
    if (set == NULL || !each_entry(j, into_set, set)) {
        store_free(set);
        return false;
    }
    StoreStats st;
    store_stats(set, &st);
    j->len = 0;
    j->nkeys = 0;
    store_foreach(set, 0, into_log, j); /* fits: no more than before */
    store_free(set);
    return j->nkeys == st.keys;
}

static bool into_batch(void *ud, const char *key, size_t klen)
{
    return journal_batch_add_key(ud, key, klen);
}

/* -- Public API --------------------------------------------------------- */

Journal *journal_new(size_t max_keys, size_t max_patterns)
{
    Journal *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->patterns = calloc(max_patterns ? max_patterns : 1, sizeof(char *));
    j->plens = calloc(max_patterns ? max_patterns : 1, sizeof(size_t));
    if (j->patterns == NULL || j->plens == NULL) {
        free(j->patterns);
        free(j->plens);
        free(j);
        return NULL;
    }
    j->max_keys = max_keys;
    j->max_patterns = max_patterns;
    return j;
}

void journal_free(Journal *j)
{
    if (j == NULL)
        return;
    drop_details(j);
    free(j->log);
    free(j->patterns);
    free(j->plens);
    free(j);
}

void journal_overflow(Journal *j)
{
    if (!j->overflow) {
        j->overflow = true;
        drop_details(j);
    }
}

void journal_key(Journal *j, const char *key, size_t klen)
{
    if (j->overflow)
        return;
    if (j->nkeys >= 2 * j->max_keys &&
        (!compact(j) || j->nkeys > j->max_keys)) {
        journal_overflow(j);
        return;
    }
    if (!append(j, key, klen))
        journal_overflow(j);
}

void journal_pattern(Journal *j, const char *pattern, size_t plen)
{
    if (j->overflow)
        return;
    for (size_t i = 0; i < j->npatterns; i++)
        if (j->plens[i] == plen && memcmp(j->patterns[i], pattern, plen) == 0)
            return;
    char *p = j->npatterns < j->max_patterns ? copy_bytes(pattern, plen) : NULL;
    if (p == NULL) {
        journal_overflow(j);
        return;
    }
    j->patterns[j->npatterns] = p;
    j->plens[j->npatterns] = plen;
    j->npatterns++;
}

bool journal_empty(const Journal *j)
{
    return !j->overflow && j->npatterns == 0 && j->nkeys == 0;
}

void journal_counts(Journal *j, size_t *keys, size_t *patterns, bool *overflow)
{
    if (!j->overflow && (!compact(j) || j->nkeys > j->max_keys))
        j->overflow = true; /* as journal_take would find it */
    if (j->overflow)
        drop_details(j);
    *overflow = j->overflow;
    *keys = j->nkeys;
    *patterns = j->npatterns;
}

void journal_take(Journal *j, JournalBatch *out)
{
    memset(out, 0, sizeof(*out));
    out->overflow = j->overflow;
    if (!j->overflow) {
        if (!compact(j) || j->nkeys > j->max_keys ||
            !each_entry(j, into_batch, out) ||
            (out->patterns = malloc((j->npatterns ? j->npatterns : 1) *
                                    sizeof(char *))) == NULL ||
            (out->plens = malloc((j->npatterns ? j->npatterns : 1) *
                                 sizeof(size_t))) == NULL) {
            journal_batch_free(out);
            out->overflow = true;
        } else {
            /* the pattern strings move to the batch */
            memcpy(out->patterns, j->patterns, j->npatterns * sizeof(char *));
            memcpy(out->plens, j->plens, j->npatterns * sizeof(size_t));
            out->npatterns = j->npatterns;
            j->npatterns = 0;
        }
    }
    j->overflow = false;
    drop_details(j);
}

void journal_restore(Journal *j, JournalBatch *b)
{
    if (b->overflow)
        journal_overflow(j);
    for (size_t i = 0; i < b->npatterns; i++)
        journal_pattern(j, b->patterns[i], b->plens[i]);
    for (size_t i = 0; i < b->nkeys; i++)
        journal_key(j, b->keys[i], b->klens[i]);
    journal_batch_free(b);
}

bool journal_batch_add_key(JournalBatch *b, const char *key, size_t klen)
{
    if (b->nkeys == b->kcap) {
        size_t cap = b->kcap ? 2 * b->kcap : 64;
        char **keys = realloc(b->keys, cap * sizeof(*keys));
        if (keys != NULL)
            b->keys = keys;
        size_t *klens = realloc(b->klens, cap * sizeof(*klens));
        if (klens != NULL)
            b->klens = klens;
        if (keys == NULL || klens == NULL) {
            b->overflow = true;
            return false;
        }
        b->kcap = cap;
    }
    char *k = copy_bytes(key, klen);
    if (k == NULL) {
        b->overflow = true;
        return false;
    }
    b->keys[b->nkeys] = k;
    b->klens[b->nkeys] = klen;
    b->nkeys++;
    return true;
}

void journal_batch_free(JournalBatch *b)
{
    for (size_t i = 0; i < b->npatterns; i++)
        free(b->patterns[i]);
    for (size_t i = 0; i < b->nkeys; i++)
        free(b->keys[i]);
    free(b->patterns);
    free(b->plens);
    free(b->keys);
    free(b->klens);
    memset(b, 0, sizeof(*b));
}
