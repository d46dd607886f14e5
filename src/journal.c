/*
** journal.c -- the outage journal: a bounded set of keys plus a bounded
** list of patterns.
**
** The key set is a Store without limits or TTLs whose values are empty:
** it already is a binary-safe, seeded, O(1) hash set. Memory is at most
** max_keys * (STORE_ENTRY_OVERHEAD + key length) plus the patterns.
*/
#include "journal.h"

#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "store.h"

struct Journal {
    Store *keys;
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
    store_clear(j->keys, "*", 1, 0);
}

typedef struct Collect {
    JournalBatch *b;
    bool failed;
} Collect;

static bool collect_key(void *ud, const char *key, size_t klen, const char *val,
                        size_t vlen, uint64_t ttl_left_ms)
{
    Collect *c = ud;
    (void)val;
    (void)vlen;
    (void)ttl_left_ms;
    char *k = copy_bytes(key, klen);
    if (k == NULL) {
        c->failed = true;
        return false;
    }
    c->b->keys[c->b->nkeys] = k;
    c->b->klens[c->b->nkeys] = klen;
    c->b->nkeys++;
    return true;
}

/* -- Public API --------------------------------------------------------- */

Journal *journal_new(size_t max_keys, size_t max_patterns)
{
    Journal *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->keys = store_new(0, 0);
    j->patterns = calloc(max_patterns ? max_patterns : 1, sizeof(char *));
    j->plens = calloc(max_patterns ? max_patterns : 1, sizeof(size_t));
    if (j->keys == NULL || j->patterns == NULL || j->plens == NULL) {
        store_free(j->keys);
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
    store_free(j->keys);
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
    if (store_exists(j->keys, key, klen, 0))
        return;
    StoreStats st;
    store_stats(j->keys, &st);
    if (st.keys >= j->max_keys ||
        store_set(j->keys, key, klen, "", 0, 0, 0) != CR_OK)
        journal_overflow(j);
}

void journal_pattern(Journal *j, const char *pattern, size_t plen)
{
    if (j->overflow)
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
    StoreStats st;
    store_stats(j->keys, &st);
    return !j->overflow && j->npatterns == 0 && st.keys == 0;
}

void journal_take(Journal *j, JournalBatch *out)
{
    memset(out, 0, sizeof(*out));
    out->overflow = j->overflow;
    if (!j->overflow) {
        StoreStats st;
        store_stats(j->keys, &st);
        size_t n = st.keys ? st.keys : 1;
        out->keys = malloc(n * sizeof(char *));
        out->klens = malloc(n * sizeof(size_t));
        out->patterns =
            malloc((j->npatterns ? j->npatterns : 1) * sizeof(char *));
        out->plens = malloc((j->npatterns ? j->npatterns : 1) * sizeof(size_t));
        Collect c = {out, false};
        if (out->keys && out->klens && out->patterns && out->plens)
            store_foreach(j->keys, 0, collect_key, &c);
        else
            c.failed = true;
        if (c.failed) {
            journal_batch_free(out);
            memset(out, 0, sizeof(*out));
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
