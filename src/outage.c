/*
** outage.c -- a Cluster's partial outages: the slots of one failed primary
** served from the memory store while every other slot stays on Redis.
**
** When a command fails in transport (or CLUSTERDOWN) on a Cluster in
** MODE_REDIS, the slots that fail with it (the owner's, backend_slot_group)
** become an Outage with its own journal: their reads and writes go to the
** memory store, which journals them there. Once every one of its slots has
** a connected owner again (the node back, or its replica promoted), a
** recovery round runs as for a whole outage (recovery.c), limited to those
** slots: a probe (EXISTS of a key in one of them), then the journal's
** patterns as one SCAN pass over the primaries keeping only keys of these
** slots, then UNLINK of its keys; meanwhile reads of these slots still come
** from memory and writes go to Redis and memory (mirror_to_memory). Then
** the slots' keys leave the memory store and the slots are Redis's again.
** A round that fails puts the batch back and the timer tries again.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "clearscan.h"
#include "commands.h"
#include "engine_impl.h"
#include "slot.h"
#include "status.h"

#define OUTAGE_RETRY_MS 100 /* how often a recovery is attempted */

struct Outage {
    Engine *e;
    char name[300]; /* the failed primary, for the log */
    uint8_t slots[SLOT_COUNT / 8];
    size_t nslots;
    Journal *journal;
    bool replaying;
    /* taken out of the engine (outages_merge) while callbacks were due:
    ** freed by the last of them */
    bool detached;
    size_t pending; /* callbacks due: probe, scan, UNLINKs */
    JournalBatch batch;
    size_t next_key;
    size_t in_flight;
    int status;
    uint64_t since_ms;
    uint64_t round_ms;
    Backoff backoff; /* between failed rounds */
    uint64_t next_try_ms;
    char probe[300]; /* a key in one of the slots */
    size_t probe_len;
};

static bool has_slot(const Outage *o, unsigned s)
{
    return (o->slots[s / 8] >> (s % 8)) & 1u;
}

bool outages_possible(const Engine *e)
{
    return e->mode == MODE_REDIS && e->backend != NULL &&
           backend_has_slots(e->backend);
}

Outage *outage_of(const Engine *e, const char *key, size_t klen)
{
    if (e->noutages == 0)
        return NULL;
    return e->slot_outage[slot_of(key, klen)];
}

bool outage_replaying(const Outage *o)
{
    return o->replaying;
}

Journal *journal_for(Engine *e, const char *key, size_t klen)
{
    Outage *o = outage_of(e, key, klen);
    return o != NULL ? o->journal : e->journal;
}

void outages_journal_pattern(Engine *e, const char *pattern, size_t plen)
{
    /* a replaying one too: its round may have scanned before this clear;
    ** a non-empty journal makes it run another */
    for (size_t i = 0; i < e->noutages; i++)
        journal_pattern(e->outages[i]->journal, pattern, plen);
}

void outages_counts(const Engine *e, EngineJournalCounts *out)
{
    for (size_t i = 0; i < e->noutages; i++) {
        const Outage *o = e->outages[i];
        size_t keys, patterns;
        bool overflow;
        journal_counts(o->journal, &keys, &patterns, &overflow);
        out->keys += keys;
        out->patterns += patterns;
        out->overflow = out->overflow || overflow;
        if (o->replaying) {
            out->keys += o->batch.nkeys;
            out->patterns += o->batch.npatterns;
            out->overflow = out->overflow || o->batch.overflow;
        }
    }
}

size_t outages_slots(const Engine *e)
{
    size_t n = 0;
    for (size_t i = 0; i < e->noutages; i++)
        n += e->outages[i]->nslots;
    return n;
}

static void outage_free(Outage *o)
{
    journal_batch_free(&o->batch);
    journal_free(o->journal);
    free(o);
}

/* A callback of `o` ran: true when `o` was detached (and is freed with
** its last callback), so the callback has nothing left to do. */
static bool called_back(Outage *o)
{
    o->pending--;
    if (!o->detached)
        return false;
    if (o->pending == 0)
        outage_free(o);
    return true;
}

/* Takes `o` out of the engine (its slots are Redis's again). */
static void remove_outage(Engine *e, Outage *o)
{
    for (size_t s = 0; s < SLOT_COUNT; s++)
        if (e->slot_outage[s] == o)
            e->slot_outage[s] = NULL;
    for (size_t i = 0; i < e->noutages; i++) {
        if (e->outages[i] == o) {
            e->outages[i] = e->outages[--e->noutages];
            break;
        }
    }
    outage_free(o);
    if (e->noutages == 0) {
        uv_timer_stop(&e->outage_timer);
        near_refresh(e); /* the near cache may be used again */
    }
}

void outages_merge(Engine *e)
{
    while (e->noutages > 0) {
        Outage *o = e->outages[--e->noutages];
        JournalBatch b;
        journal_take(o->journal, &b);
        journal_restore(e->journal, &b);
        if (o->replaying) { /* its batch is out: back to the main one */
            journal_restore(e->journal, &o->batch);
            o->replaying = false;
        }
        if (o->pending > 0)
            o->detached = true; /* its callbacks free it */
        else
            outage_free(o);
    }
    outages_free(e);
    uv_timer_stop(&e->outage_timer);
}

void outages_free(Engine *e)
{
    while (e->noutages > 0)
        outage_free(e->outages[--e->noutages]);
    free(e->outages);
    e->outages = NULL;
    free(e->slot_outage);
    e->slot_outage = NULL;
}

static void on_outage_timer(uv_timer_t *t);

/* A key of the probe key's shape whose hash tag puts it in one of `o`'s
** slots (a few tries: the outage holds a share of all slots). */
/* How many "{n}" suffixes to try for a probe key in some slot: one when a
** hash tag in the namespace pins every key, the probe's too, to one slot. */
static unsigned probe_tries(const Engine *e)
{
    char a[300], b[300];
    int la = snprintf(a, sizeof(a), "%.*s{0}",
                      (int)(e->probe_klen < 200 ? e->probe_klen : 200),
                      e->probe_key);
    int lb = snprintf(b, sizeof(b), "%.*s{1}",
                      (int)(e->probe_klen < 200 ? e->probe_klen : 200),
                      e->probe_key);
    return slot_of(a, (size_t)la) == slot_of(b, (size_t)lb) ? 1
                                                            : 10u * SLOT_COUNT;
}

/* Writes into buf the first `head` bytes of the probe key with "{n}"
** appended, for the first n whose slot `want` accepts; returns its length,
** or 0 when none does. */
static size_t
probe_key_where(const Engine *e, size_t head, char *buf, size_t size,
                bool (*want)(const Engine *e, const void *ud, unsigned slot),
                const void *ud)
{
    unsigned tries = probe_tries(e);
    for (unsigned n = 0; n < tries; n++) {
        int len = snprintf(buf, size, "%.*s{%u}", (int)head, e->probe_key, n);
        if (want(e, ud, slot_of(buf, (size_t)len)))
            return (size_t)len;
    }
    return 0;
}

static bool in_outage(const Engine *e, const void *ud, unsigned slot)
{
    (void)e;
    return has_slot(ud, slot);
}

static void choose_probe(Engine *e, Outage *o)
{
    o->probe_len = probe_key_where(e, e->probe_klen < 200 ? e->probe_klen : 200,
                                   o->probe, sizeof(o->probe), in_outage, o);
}

void outage_begin(Engine *e, bool by_node, size_t which, int status)
{
    if (e->quiet || e->backend == NULL || !backend_has_slots(e->backend))
        return;
    if (e->slot_outage == NULL) {
        e->slot_outage = calloc(SLOT_COUNT, sizeof(*e->slot_outage));
        if (e->slot_outage == NULL) {
            lose_redis(e, CR_ENOMEM, NULL);
            return;
        }
    }
    Outage *o = calloc(1, sizeof(*o));
    Outage **list = realloc(e->outages, (e->noutages + 1) * sizeof(*list));
    if (list != NULL)
        e->outages = list;
    Journal *j = o != NULL ? journal_new(e->journal_max_keys,
                                         ENGINE_JOURNAL_MAX_PATTERNS)
                           : NULL;
    if (o == NULL || list == NULL || j == NULL) {
        free(o);
        journal_free(j);
        lose_redis(e, CR_ENOMEM, NULL); /* the whole manager on memory */
        return;
    }
    o->e = e;
    o->journal = j;
    o->since_ms = engine_now_ms();
    backoff_init(&o->backoff, o->since_ms ^ (uint64_t)(uintptr_t)o);
    backend_slot_group(e->backend, by_node, which, o->slots, o->name,
                       sizeof(o->name));
    /* Slots already in an outage stay in theirs. */
    for (unsigned s = 0; s < SLOT_COUNT; s++) {
        if (!has_slot(o, s))
            continue;
        if (e->slot_outage[s] != NULL) {
            o->slots[s / 8] &= (uint8_t) ~(1u << (s % 8));
        } else {
            e->slot_outage[s] = o;
            o->nslots++;
        }
    }
    if (o->nslots == 0) {
        outage_free(o);
        return;
    }
    choose_probe(e, o);
    e->outages[e->noutages++] = o;
    near_flush(e); /* its slots' invalidations are lost meanwhile */
    set_last_error(e, status, NULL);
    log_msg(&e->log, LOG_WARN,
            "redis cluster node %s unavailable (%s): its %zu slots are served "
            "from the memory store until it or its replica answers; the "
            "other slots stay on redis",
            o->name, e->last_error, o->nslots);
    if (!uv_is_active((uv_handle_t *)&e->outage_timer))
        uv_timer_start(&e->outage_timer, on_outage_timer, OUTAGE_RETRY_MS,
                       OUTAGE_RETRY_MS);
}

/* -- A recovery round --------------------------------------------------- */

static void round_failed(Outage *o, int status)
{
    journal_restore(o->journal, &o->batch);
    o->replaying = false;
    /* the next round after a backoff: a round may SCAN every primary */
    o->next_try_ms = engine_now_ms() + backoff_next(&o->backoff);
    log_msg(&o->e->log, LOG_DEBUG,
            "redis cluster node %s: recovery attempt failed (%s)", o->name,
            cr_strerror(status));
}

/* The memory keys to drop: those of outage `o`'s slots, or (o NULL) those
** of the slots in no outage. */
struct Drop {
    const Engine *e;
    const Outage *o;
    char **keys;
    size_t *lens;
    size_t n, cap;
    bool oom;
};

static bool collect(void *ud, const char *key, size_t klen, const char *val,
                    size_t vlen, uint64_t ttl_left_ms)
{
    struct Drop *d = ud;
    (void)val;
    (void)vlen;
    (void)ttl_left_ms;
    unsigned s = slot_of(key, klen);
    if (d->o != NULL ? !has_slot(d->o, s) : d->e->slot_outage[s] != NULL)
        return true;
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 64;
        char **keys = realloc(d->keys, cap * sizeof(*keys));
        size_t *lens = keys ? realloc(d->lens, cap * sizeof(*lens)) : NULL;
        if (keys != NULL)
            d->keys = keys;
        if (lens == NULL) {
            d->oom = true;
            return false;
        }
        d->lens = lens;
        d->cap = cap;
    }
    char *k = malloc(klen ? klen : 1);
    if (k == NULL) {
        d->oom = true;
        return false;
    }
    memcpy(k, key, klen);
    d->keys[d->n] = k;
    d->lens[d->n++] = klen;
    return true;
}

/* Drops the memory keys `o`'s slots hold (o NULL: those of the slots in
** no outage). */
static void drop_memory(Engine *e, const Outage *o)
{
    struct Drop d = {e, o, NULL, NULL, 0, 0, false};
    uint64_t now = store_now_ms(e);
    store_foreach(e->store, now, collect, &d);
    for (size_t i = 0; i < d.n; i++) {
        store_delete(e->store, d.keys[i], d.lens[i], now);
        free(d.keys[i]);
    }
    free(d.keys);
    free(d.lens);
    if (d.oom) /* cannot tell which keys are the slots': drop them all */
        store_clear(e->store, "*", 1, now);
}

void outages_switch_memory(Engine *e)
{
    if (e->noutages == 0)
        store_clear(e->store, "*", 1, store_now_ms(e));
    else
        drop_memory(e, NULL);
}

/* The round succeeded: the slots' keys leave the memory store (Redis has
** newer), the slots are Redis's again. */
static void round_done(Outage *o)
{
    Engine *e = o->e;
    if (!journal_empty(o->journal)) { /* a write failed meanwhile */
        journal_batch_free(&o->batch);
        o->replaying = false;
        return;
    }
    drop_memory(e, o);
    uint64_t now = engine_now_ms();
    log_msg(&e->log, LOG_WARN,
            "redis cluster: the %zu slots of %s are on redis again after "
            "%llu ms (%zu keys and %zu patterns of its journal invalidated%s)",
            o->nslots, o->name, (unsigned long long)(now - o->since_ms),
            o->batch.nkeys, o->batch.npatterns,
            o->batch.overflow ? ", the namespace cleared in them" : "");
    e->stats.reconnects++;
    remove_outage(e, o);
    if (e->noutages == 0 && e->mode == MODE_REDIS)
        finish_flush(e, true);
}

static void replay_keys(Outage *o);

static void on_keys_unlinked(void *ud, int status, const redisReply *reply)
{
    Outage *o = ud;
    if (called_back(o))
        return;
    o->in_flight--;
    if (o->status == CR_OK) {
        if (status != CR_OK)
            o->status = status;
        else if (reply->type != REDIS_REPLY_INTEGER)
            o->status = reply_status(reply);
    }
    replay_keys(o);
}

static void replay_keys(Outage *o)
{
    Engine *e = o->e;
    while (o->status == CR_OK &&
           o->in_flight < ENGINE_REPLAY_IN_FLIGHT / ENGINE_UNLINK_BATCH &&
           o->next_key < o->batch.nkeys) {
        const char *argv[ENGINE_UNLINK_BATCH + 1];
        size_t lens[ENGINE_UNLINK_BATCH + 1];
        int argc = 1;
        cmd_unlink_head(argv, lens);
        while (argc <= ENGINE_UNLINK_BATCH && o->next_key < o->batch.nkeys) {
            argv[argc] = o->batch.keys[o->next_key];
            lens[argc++] = o->batch.klens[o->next_key++];
        }
        int rc = e->quiet || e->backend == NULL
                     ? CR_ECONNRESET
                     : backend_command(e->backend, argc, argv, lens,
                                       on_keys_unlinked, o);
        if (rc != CR_OK) {
            o->status = rc;
        } else {
            o->in_flight++;
            o->pending++;
        }
    }
    if (o->in_flight > 0)
        return;
    if (o->status != CR_OK)
        round_failed(o, o->status);
    else
        round_done(o);
}

static bool keep_slot(void *ud, const char *key, size_t klen)
{
    return has_slot(ud, slot_of(key, klen));
}

/* A node lost while the replay scans: skip it when it owns none of the
** outage's slots (its keys are not the outage's business); else the
** round fails. */
static bool replay_node_lost(void *ud, size_t node, int status)
{
    Outage *o = ud;
    uint8_t bits[SLOT_COUNT / 8];
    char name[64];
    (void)status;
    backend_slot_group(o->e->backend, true, node, bits, name, sizeof(name));
    for (size_t i = 0; i < sizeof(bits); i++)
        if (bits[i] & o->slots[i])
            return false;
    return true;
}

static void on_patterns_cleared(void *ud, int status, uint64_t removed,
                                const char *err)
{
    Outage *o = ud;
    (void)removed;
    (void)err;
    if (called_back(o))
        return;
    if (status != CR_OK) {
        round_failed(o, status);
        return;
    }
    replay_keys(o);
}

static void replay(Outage *o)
{
    Engine *e = o->e;
    o->next_key = 0;
    o->status = CR_OK;
    ClearScanHooks hooks = {keep_slot, replay_node_lost, o};
    int rc = CR_OK;
    if (o->batch.overflow) {
        e->stats.journal_overflows++;
        const char *all = e->clear_all;
        rc = clearscan_start(e->backend, &all, &e->clear_all_len, 1, &hooks,
                             on_patterns_cleared, o);
    } else if (o->batch.npatterns > 0) {
        rc = clearscan_start(e->backend, (const char *const *)o->batch.patterns,
                             o->batch.plens, o->batch.npatterns, &hooks,
                             on_patterns_cleared, o);
    } else {
        replay_keys(o);
        return;
    }
    if (rc != CR_OK)
        round_failed(o, rc);
    else
        o->pending++;
}

static void on_probed(void *ud, int status, const redisReply *reply)
{
    Outage *o = ud;
    if (called_back(o))
        return;
    if (status == CR_OK && reply->type == REDIS_REPLY_ERROR)
        status = reply_status(reply);
    if (status != CR_OK || o->e->quiet) {
        round_failed(o, status != CR_OK ? status : CR_ECONNRESET);
        return;
    }
    replay(o);
}

/* Starts a round for `o` when every one of its slots has a connected
** owner. */
static void try_recover(Outage *o)
{
    Engine *e = o->e;
    if (o->replaying || e->backend == NULL || engine_now_ms() < o->next_try_ms)
        return;
    for (unsigned s = 0; s < SLOT_COUNT; s++)
        if (has_slot(o, s) && !backend_slot_ready(e->backend, s))
            return;
    o->replaying = true;
    o->round_ms = engine_now_ms();
    journal_take(o->journal, &o->batch);
    RedisCmd cmd;
    cmd_exists(&cmd, o->probe, o->probe_len);
    int rc =
        backend_command(e->backend, cmd.argc, cmd.argv, cmd.lens, on_probed, o);
    if (rc != CR_OK)
        round_failed(o, rc);
    else
        o->pending++;
}

void outages_try(Engine *e)
{
    if (e->mode != MODE_REDIS || e->backend == NULL || e->noutages == 0)
        return;
    /* try_recover never ends a round before returning (its probe answers
    ** later), so no outage leaves the list while it is walked */
    for (size_t i = 0; i < e->noutages; i++)
        try_recover(e->outages[i]);
}

static void on_outage_timer(uv_timer_t *t)
{
    outages_try(t->data);
}

/* -- clear(pattern) on a Cluster with nodes lost ------------------------ */

static bool clear_node_lost(void *ud, size_t node, int status)
{
    Engine *e = ud;
    if (e->quiet || !outages_possible(e))
        return false; /* closing, or all on memory: the clear fails */
    outage_begin(e, true, node, status);
    return outages_possible(e); /* false: out of memory, all on memory */
}

const ClearScanHooks *outage_clear_hooks(Engine *e)
{
    static ClearScanHooks hooks = {NULL, clear_node_lost, NULL};
    if (!outages_possible(e))
        return NULL;
    hooks.ud = e;
    return &hooks;
}

/* -- A whole manager's way back on a Cluster with primaries down ---------
** recovery.c replays the main journal on the primaries that answer; the
** slots of those that do not become outages first, and take their share
** of the journal with them. */

size_t outages_for_unready(Engine *e)
{
    for (unsigned s = 0; s < SLOT_COUNT; s++)
        if ((e->slot_outage == NULL || e->slot_outage[s] == NULL) &&
            !backend_slot_ready(e->backend, s))
            outage_begin(e, false, s, CR_ECONNRESET);
    return outages_slots(e);
}

void outages_take_batch(Engine *e, JournalBatch *b)
{
    if (e->noutages == 0)
        return;
    size_t kept = 0;
    for (size_t i = 0; i < b->nkeys; i++) {
        Outage *o = outage_of(e, b->keys[i], b->klens[i]);
        if (o != NULL) {
            journal_key(o->journal, b->keys[i], b->klens[i]);
            free(b->keys[i]);
        } else {
            b->keys[kept] = b->keys[i];
            b->klens[kept++] = b->klens[i];
        }
    }
    b->nkeys = kept;
    for (size_t i = 0; i < b->npatterns; i++)
        outages_journal_pattern(e, b->patterns[i], b->plens[i]);
    for (size_t i = 0; b->overflow && i < e->noutages; i++)
        journal_overflow(e->outages[i]->journal);
}

static bool keep_live_slot(void *ud, const char *key, size_t klen)
{
    const Engine *e = ud;
    return e->slot_outage[slot_of(key, klen)] == NULL;
}

/* A node lost during the main replay: fine when all its slots are in
** outages (they replay on their own). */
static bool main_node_lost(void *ud, size_t node, int status)
{
    Engine *e = ud;
    uint8_t bits[SLOT_COUNT / 8];
    char name[64];
    (void)status;
    backend_slot_group(e->backend, true, node, bits, name, sizeof(name));
    for (unsigned s = 0; s < SLOT_COUNT; s++)
        if (((bits[s / 8] >> (s % 8)) & 1u) && e->slot_outage[s] == NULL)
            return false;
    return true;
}

const ClearScanHooks *outage_replay_hooks(Engine *e)
{
    static ClearScanHooks hooks = {keep_live_slot, main_node_lost, NULL};
    if (e->noutages == 0)
        return NULL;
    hooks.ud = e;
    return &hooks;
}

static bool live_slot(const Engine *e, const void *ud, unsigned slot)
{
    (void)ud;
    return e->slot_outage[slot] == NULL && backend_slot_ready(e->backend, slot);
}

size_t outage_live_probe(Engine *e, char *buf, size_t size)
{
    if (e->noutages == 0 || size < e->probe_klen + 16)
        return 0;
    return probe_key_where(e, e->probe_klen, buf, size, live_slot, NULL);
}
