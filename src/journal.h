/*
** journal.h -- what changed while the engine could not use Redis.
**
** The engine records every key it set or deleted, and every pattern it
** cleared, while it served from the memory store. Before switching back to
** Redis it replays them as invalidation: every recorded pattern is cleared
** in Redis and every recorded key removed there (never written: another
** process may have stored a newer value meanwhile), so nothing deleted,
** overwritten or cleared during the outage is ever served from Redis
** again. Keys are a set (a key changed ten times is removed once).
**
** The journal is bounded (max_keys keys, max_patterns patterns). Past a
** bound it overflows: it forgets the details and remembers only that it
** overflowed, and the engine then clears everything in its namespace in
** Redis before switching back (correctness over hit rate).
*/
#ifndef CACHERT_JOURNAL_H
#define CACHERT_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>

typedef struct Journal Journal;

/* What journal_take() moves out. Every string is malloc'd and owned by the
** batch; journal_batch_free() releases them. */
typedef struct JournalBatch {
    bool overflow;
    char **patterns;
    size_t *plens;
    size_t npatterns;
    char **keys;
    size_t *klens;
    size_t nkeys;
    size_t kcap; /* room in keys and klens */
} JournalBatch;

/* Returns NULL when out of memory. */
Journal *journal_new(size_t max_keys, size_t max_patterns);

void journal_free(Journal *j);

/* Records a changed key (binary safe). Out of memory counts as overflow. */
void journal_key(Journal *j, const char *key, size_t klen);

/* Records a cleared pattern (once: a pattern already recorded is not added
** again). Out of memory counts as overflow. */
void journal_pattern(Journal *j, const char *pattern, size_t plen);

/* Forgets the details and remembers that something changed. */
void journal_overflow(Journal *j);

bool journal_empty(const Journal *j);

/* How many distinct keys and patterns it holds, and whether it overflowed
** (then keys and patterns are 0). */
void journal_counts(Journal *j, size_t *keys, size_t *patterns, bool *overflow);

/* Moves the journal's content into *out (the journal is then empty and not
** overflowed). On out of memory *out says overflow. */
void journal_take(Journal *j, JournalBatch *out);

/* Puts a batch whose replay failed back, merged with what was recorded
** since; frees the batch's content. */
void journal_restore(Journal *j, JournalBatch *b);

/* Appends a copy of `key` to the batch's keys. Returns false (and sets
** b->overflow) when out of memory. */
bool journal_batch_add_key(JournalBatch *b, const char *key, size_t klen);

void journal_batch_free(JournalBatch *b);

#endif
