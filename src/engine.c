/*
** engine.c -- the mode machine (which of Redis and the memory store
** answers), the memory store's answers, statistics, outage logging, the
** expiry sweep and the public API. Redis calls are in redis_ops.c, the
** way back to Redis in recovery.c (engine_impl.h).
**
** Invariants: every public call leaves the counters consistent with what
** the caller was told (a get that returned bytes is a hit until the caller
** reports them corrupt); in MODE_REDIS the memory store is empty (it is
** emptied on the switch) and its sweep timer stopped, so an outage starts
** from nothing stale; a key written, deleted or cleared in MODE_MEMORY is
** in the journal until Redis has been told to forget it.
**
** While recovering (MODE_RECOVERING: the probe and the journal's replay,
** recovery.c), reads come from memory; writes go to Redis at once (and
** to memory, see mirror_to_memory), so nobody waits for a replay and
** nothing new is journaled while it runs: one round ends it, however busy
** the writers (a write that fails is journaled and the replay fails with
** it).
*/
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_direct.h"
#include "engine_impl.h"
#include "globmatch.h"
#include "slot.h"
#include "status.h"

/* -- Helpers ------------------------------------------------------------ */

/* A lower bound of engine_now_ms() for ~5 ns instead of ~27 ns: reads
** answer from it and use the precise clock only for an entry that expires
** within coarse_slack_ms of it. */
static uint64_t coarse_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void on_sweep(uv_timer_t *t)
{
    Engine *e = t->data;
    store_sweep(e->store, store_now_ms(e), ENGINE_SWEEP_BUDGET);
}

/* The store is empty in MODE_REDIS: nothing to sweep there. */
void set_mode(Engine *e, Mode mode)
{
    if (mode == MODE_REDIS && e->mode != MODE_REDIS)
        uv_timer_stop(&e->sweep_timer);
    else if (mode != MODE_REDIS && e->mode == MODE_REDIS)
        uv_timer_start(&e->sweep_timer, on_sweep, ENGINE_SWEEP_INTERVAL_MS,
                       ENGINE_SWEEP_INTERVAL_MS);
    bool changed = e->mode != mode;
    e->mode = mode;
    if (changed)
        near_flush(e); /* an outage, or back from one: nothing kept holds */
}

static void on_handle_closed(uv_handle_t *h)
{
    Engine *e = h->data;
    if (--e->open_handles == 0) {
        free(e->clear_all);
        free(e->probe_key);
        free(e->waiters);
        near_free(e);
        free(e);
    }
}

void set_last_error(Engine *e, int code, const char *msg)
{
    snprintf(e->last_error, sizeof(e->last_error), "%s%s%s", cr_strerror(code),
             msg != NULL ? ": " : "", msg != NULL ? msg : "");
    e->stats.last_error = e->last_error;
}

void count_error(Engine *e, int code, const char *msg)
{
    e->stats.errors++;
    set_last_error(e, code, msg);
}

/* What a server's error text means: a demoted primary (READONLY), a
** missing ACL permission (NOPERM), or any other refusal. */
int error_status(const char *text)
{
    if (strncmp(text, "READONLY", 8) == 0)
        return CR_EREADONLY;
    if (strncmp(text, "NOPERM", 6) == 0)
        return CR_ENOPERM;
    return CR_EREPLY;
}

int reply_status(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR ? error_status(reply->str)
                                            : CR_EPROTO;
}

const char *reply_text(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR ? reply->str : NULL;
}

/* Warns once per outage (`logged` says whether this one was), and at
** most once per ENGINE_LOG_INTERVAL_MS: a flapping server must not flood
** the log. The next warning counts those held back; "back" is said only
** after a warning that went out. */
void warn_outage(Engine *e, bool *logged, const char *what, const char *then)
{
    if (e->quiet || *logged)
        return;
    *logged = true;
    uint64_t now = engine_now_ms();
    if (e->warned && now - e->last_warn_ms < ENGINE_LOG_INTERVAL_MS) {
        e->held_back++;
        return;
    }
    e->warned = true;
    e->back_due = true;
    e->last_warn_ms = now;
    if (e->held_back > 0)
        log_msg(&e->log, LOG_WARN,
                "%s (%s); %s (%u more since the last "
                "message)",
                what, e->last_error, then, e->held_back);
    else
        log_msg(&e->log, LOG_WARN, "%s (%s); %s", what, e->last_error, then);
    e->held_back = 0;
}

/* Redis could not be reached or broke: serve from memory until it is back
** and the journal replayed (the backend keeps reconnecting by itself). */
void lose_redis(Engine *e, int code, const char *msg)
{
    if (e->quiet)
        return;
    set_last_error(e, code, msg);
    if (e->mode == MODE_REDIS) {
        set_mode(e, MODE_MEMORY);
        outages_merge(e); /* every slot on memory now: one journal */
        if (e->backend != NULL && backend_has_slots(e->backend) &&
            backend_ready(e->backend))
            /* a Cluster stays "ready": no state change will come */
            schedule_retry(e, code);
        warn_outage(e, &e->outage_logged, "redis unavailable",
                    "serving from the memory store until it is back");
    }
}

/* The next attempt after a refusal: new connections when a replica
** answered (a DNS name or proxy may lead to the new primary), else the
** probe and replay again. */
static void on_retry(uv_timer_t *t)
{
    Engine *e = t->data;
    if (e->mode != MODE_MEMORY || e->backend == NULL ||
        !backend_ready(e->backend))
        return;
    if (e->retry_readonly)
        backend_fail(e->backend, CR_EREADONLY, e->last_error);
    else
        start_recovery(e);
}

void schedule_retry(Engine *e, int code)
{
    e->retry_readonly = code == CR_EREADONLY;
    uv_timer_start(&e->retry_timer, on_retry, POOL_BACKOFF_MAX_MS, 0);
}

/* Redis answers but refused something this manager needs (a demoted
** primary, a missing permission): stop using it so nothing it still holds
** is served, and try again later. A read-only server gets new connections
** (a DNS name or proxy may lead to the new primary); otherwise the backend
** stays up, so a timer brings the next attempt. */
void distrust_redis(Engine *e, int code, const char *msg)
{
    if (e->quiet)
        return;
    lose_redis(e, code, msg);
    if (e->mode == MODE_RECOVERING)
        return; /* the replay ends and retries by itself */
    if (code == CR_EREADONLY)
        backend_fail(e->backend, code, e->last_error);
    else if (e->backend != NULL && backend_ready(e->backend) &&
             !uv_is_active((uv_handle_t *)&e->retry_timer))
        schedule_retry(e, code);
}

/* -- Memory versions with a callback -------------------------------------- */

void memory_get(const OpArgs *a)
{
    EngineResult r = {0};
    r.val = engine_get(a->e, a->key, a->klen, &r.vlen);
    r.found = r.val != NULL;
    a->done(a->ud, &r);
}

void memory_set(const OpArgs *a)
{
    EngineResult r = {0};
    r.status = engine_set(a->e, a->key, a->klen, a->val, a->vlen, a->ttl_ms);
    if (r.status != CR_OK)
        r.err = a->e->last_error;
    a->done(a->ud, &r);
}

/* A set refused (by Redis, or for its size: ttl_ms TTL_TOO_BIG), finished
** on the memory store: the key is forgotten there (and journaled, so
** Redis forgets it too), and the set fails. */
void memory_refused_set(const OpArgs *a)
{
    EngineResult r = {0};
    engine_delete(a->e, a->key, a->klen);
    r.status = a->ttl_ms == TTL_TOO_BIG ? CR_EVALUETOOBIG : CR_EREPLY;
    r.err = a->e->last_error;
    a->done(a->ud, &r);
}

void memory_delete(const OpArgs *a)
{
    EngineResult r = {0};
    r.found = engine_delete(a->e, a->key, a->klen);
    a->done(a->ud, &r);
}

void memory_exists(const OpArgs *a)
{
    EngineResult r = {0};
    r.found = engine_exists(a->e, a->key, a->klen);
    a->done(a->ud, &r);
}

void memory_clear(const OpArgs *a)
{
    EngineResult r = {0};
    r.count = engine_clear(a->e, a->key, a->klen);
    a->done(a->ud, &r);
}

void memory_pttl(const OpArgs *a)
{
    EngineResult r = {0};
    uint64_t now = store_now_ms(a->e);
    uint64_t expires_at;
    size_t vlen;
    if (store_get_expiring(a->e->store, a->key, a->klen, now, &vlen,
                           &expires_at) == NULL)
        r.ttl_ms = -2;
    else
        r.ttl_ms = expires_at == 0 ? -1 : (int64_t)(expires_at - now);
    a->done(a->ud, &r);
}

void memory_lock(const OpArgs *a)
{
    EngineResult r = {0};
    r.found = true;
    a->done(a->ud, &r);
}

static const memory_fn memory_of[] = {
    [OP_GET] = memory_get,       [OP_SET] = memory_set,
    [OP_DELETE] = memory_delete, [OP_EXISTS] = memory_exists,
    [OP_CLEAR] = memory_clear,   [OP_PTTL] = memory_pttl,
    [OP_LOCK] = memory_lock,     [OP_UNLOCK] = memory_lock};

bool too_big(const Op *op)
{
    return op->kind == OP_SET && op->a.ttl_ms == TTL_TOO_BIG;
}

void memory_op(const Op *op)
{
    if (too_big(op))
        memory_refused_set(&op->a);
    else
        memory_of[op->kind](&op->a);
}

/* The operation could not even be queued (out of memory, too large): it
** fails, and nothing is switched, since Redis itself is fine. */
void fail_op(const OpArgs *a, int code)
{
    EngineResult r = {0};
    count_error(a->e, code, NULL);
    r.status = code;
    r.err = a->e->last_error;
    a->done(a->ud, &r);
}

/* A set larger than max_value: say how large, against what. */
static void count_too_big(Engine *e, size_t bytes)
{
    char msg[128];
    snprintf(msg, sizeof(msg),
             "%zu bytes (key + encoded value) > %zu (CACHE_MAX_VALUE_BYTES)",
             bytes, e->max_value);
    count_error(e, CR_EVALUETOOBIG, msg);
}

/* -- Running a call: the memory store or Redis ------------------------------
 */

/* While the journal is replayed the memory store answers reads, so a write
** sent to Redis then is made there too (not journaled: Redis has it), and
** this process reads its own writes until the switch empties the store. A
** replayed UNLINK may remove such a value from Redis afterwards: a miss,
** never an old value. */
static void mirror_to_memory(Engine *e, const Op *op)
{
    const OpArgs *a = &op->a;
    uint64_t now = store_now_ms(e);
    if (op->kind == OP_LOCK || op->kind == OP_UNLOCK)
        return; /* a lock lives in Redis only */
    if (op->kind == OP_SET && !too_big(op))
        store_set(e->store, a->key, a->klen, a->val, a->vlen,
                  a->ttl_ms == 0 ? 0 : now + a->ttl_ms, now);
    else if (op->kind == OP_CLEAR)
        store_clear(e->store, a->key, a->klen, now);
    else
        store_delete(e->store, a->key, a->klen, now);
}

/* The outage of the one key a clear's pattern matches (a pattern that
** matches one string is a delete), or NULL. */
static Outage *clear_outage(const Engine *e, const char *pattern, size_t plen)
{
    if (e->noutages == 0)
        return NULL;
    char *key = malloc(plen + 1);
    if (key == NULL)
        return NULL;
    bool whole;
    size_t klen = globmatch_prefix(pattern, plen, key, &whole);
    Outage *o = whole ? outage_of(e, key, klen) : NULL;
    free(key);
    return o;
}

/* Runs `a`: on the memory store in MODE_MEMORY (and reads in
** MODE_RECOVERING), returning 0 after `done` ran; else on Redis (writes in
** MODE_RECOVERING on the memory store too, see mirror_to_memory),
** returning 1 when `done` will run later. Nothing waits for a replay. */
static int run_op(const OpArgs *a, int kind)
{
    Engine *e = a->e;
    bool read = kind == OP_GET || kind == OP_EXISTS || kind == OP_PTTL;
    Outage *o = kind != OP_CLEAR ? outage_of(e, a->key, a->klen)
                                 : clear_outage(e, a->key, a->klen);
    if (e->mode == MODE_MEMORY || (e->mode == MODE_RECOVERING && read) ||
        (o != NULL && (read || !outage_replaying(o)))) {
        memory_of[kind](a);
        return 0;
    }
    if (a->klen > e->max_value) { /* never formatted: hiredis sums in int */
        count_too_big(e, a->klen);
        fail_op(a, CR_EVALUETOOBIG);
        return 0;
    }
    OpArgs args = *a;
    if (kind == OP_SET && a->klen + a->vlen > e->max_value) {
        args.vlen = 0; /* not copied: only the old value is unlinked */
        args.ttl_ms = TTL_TOO_BIG;
    }
    Op *op = op_new(&args, kind);
    if (op == NULL) {
        fail_op(a, CR_ENOMEM);
        return 0;
    }
    if (too_big(op))
        count_too_big(e, a->klen + a->vlen);
    if (e->mode == MODE_RECOVERING || o != NULL)
        mirror_to_memory(e, op);
    return issue(op);
}

/* -- Switching ------------------------------------------------------------ */

void finish_connect(Engine *e, bool using_redis)
{
    Waiter *w = e->waiters;
    size_t n = e->nwaiters;
    if (n == 0)
        return;
    e->waiters = NULL;
    e->nwaiters = 0;
    for (size_t i = 0; i < n; i++)
        w[i].done(w[i].ud, using_redis);
    free(w);
}

void switch_to_redis(Engine *e)
{
    set_mode(e, MODE_REDIS);
    /* What it holds was written during the outage: Redis has newer (but
    ** for a Cluster's slots still in an outage). */
    outages_switch_memory(e);
    if (e->ever_connected)
        e->stats.reconnects++;
    if (e->back_due && !e->quiet)
        log_msg(&e->log, LOG_WARN, "redis is back; serving from it again");
    e->ever_connected = true;
    e->outage_logged = false;
    e->refusal_logged = false;
    e->back_due = false;
    finish_connect(e, true);
    finish_flush(e, true);
}

static void on_backend_state(void *ud, int status, const char *message)
{
    Engine *e = ud;
    if (status == CR_OK) {
        e->attempting = false;
        log_msg(&e->log, LOG_INFO, "%s", message);
        if (e->mode == MODE_MEMORY)
            start_recovery(e);
        else
            outages_try(e); /* a Cluster's primary is back */
        return;
    }
    bool first = e->attempting && !e->ever_connected;
    e->attempting = false;
    lose_redis(e, status, message);
    if (first)
        warn_outage(e, &e->outage_logged, "redis unavailable",
                    "serving from the memory store, retrying in the "
                    "background");
    else if (!e->quiet)
        log_msg(&e->log, LOG_DEBUG, "reconnect attempt failed: %s",
                e->last_error);
    finish_connect(e, false);
}

/* The backend `cfg` describes, logging through the engine's logger. */
static Backend *new_backend(Engine *e, const RedisConfig *cfg)
{
    RedisConfig with_log = *cfg;
    with_log.log = e->log;
    e->near_on = cfg->pool.tracking.enabled;
    with_log.pool.tracking.on_event = near_on_event;
    with_log.pool.tracking.ud = e;
    return backend_new(e->loop, &with_log, on_backend_state, e);
}

/* -- At exit: one last chance for the journal ----------------------------- */

void finish_flush(Engine *e, bool flushed)
{
    engine_flush_cb done = e->flush_done;
    if (done == NULL)
        return;
    e->flush_done = NULL;
    uv_timer_stop(&e->flush_timer);
    EngineJournalCounts left = {0};
    if (!flushed)
        engine_journal_counts(e, &left);
    done(e->flush_ud, flushed, &left);
}

static void on_flush_timeout(uv_timer_t *t)
{
    finish_flush(t->data, false);
}

/* -- Public API --------------------------------------------------------- */

void engine_journal_counts(Engine *e, EngineJournalCounts *out)
{
    journal_counts(e->journal, &out->keys, &out->patterns, &out->overflow);
    if (e->mode == MODE_RECOVERING) { /* the batch is out of the journal */
        out->keys += e->batch.nkeys;
        out->patterns += e->batch.npatterns;
        out->overflow = out->overflow || e->batch.overflow;
    }
    outages_counts(e, out);
}

int engine_flush(Engine *e, const RedisConfig *cfg, uint64_t timeout_ms,
                 engine_flush_cb done, void *ud)
{
    EngineJournalCounts left;
    engine_journal_counts(e, &left);
    bool empty = !left.overflow && left.keys == 0 && left.patterns == 0;
    if ((e->mode == MODE_REDIS && e->noutages == 0) ||
        (empty && e->mode == MODE_MEMORY)) {
        done(ud, true, &left);
        return 0;
    }
    if (e->flush_done != NULL || timeout_ms == 0 ||
        (e->backend == NULL && cfg == NULL)) {
        done(ud, false, &left);
        return 0;
    }
    e->flush_done = done;
    e->flush_ud = ud;
    uv_timer_start(&e->flush_timer, on_flush_timeout, timeout_ms, 0);
    if (e->backend == NULL) {
        e->backend = new_backend(e, cfg);
        if (e->backend == NULL) {
            finish_flush(e, false);
            return 0;
        }
        e->attempting = true;
        backend_connect(e->backend);
    } else if (e->mode == MODE_MEMORY && backend_ready(e->backend)) {
        start_recovery(e); /* else: the backend's next attempt starts it */
    }
    return e->flush_done != NULL;
}

size_t engine_max_value_bytes(const Engine *e)
{
    return e->max_value;
}

uint64_t engine_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t engine_advance_clock(Engine *e, uint64_t ms)
{
    uint64_t room = ENGINE_CLOCK_OFFSET_MAX - e->clock_offset_ms;
    e->clock_offset_ms += ms < room ? ms : room;
    return e->clock_offset_ms;
}

Engine *engine_new(uv_loop_t *loop, const EngineConfig *cfg)
{
    Engine *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    struct timespec res;
    /* Twice the tick, so a late tick cannot make a stale read look live. */
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0 && res.tv_sec == 0)
        e->coarse_slack_ms = 2 * ((uint64_t)res.tv_nsec / 1000000u + 1);
    else
        e->coarse_slack_ms = UINT64_MAX / 2; /* always ask the precise clock */
    const char *all = cfg->clear_all_pattern ? cfg->clear_all_pattern : "*";
    e->clear_all_len = cfg->clear_all_pattern ? cfg->clear_all_len : 1;
    e->clear_all = malloc(e->clear_all_len + 1);
    /* The probe key lives in the namespace: the literal head of clear_all. */
    e->probe_key = malloc(e->clear_all_len + sizeof(ENGINE_PROBE_KEY_SUFFIX));
    e->store = store_new(cfg->max_items, cfg->max_bytes);
    e->journal_max_keys =
        cfg->journal_max_keys ? cfg->journal_max_keys : ENGINE_JOURNAL_MAX_KEYS;
    e->journal = journal_new(e->journal_max_keys, ENGINE_JOURNAL_MAX_PATTERNS);
    if (e->store == NULL || e->clear_all == NULL || e->probe_key == NULL ||
        e->journal == NULL) {
        store_free(e->store);
        journal_free(e->journal);
        free(e->clear_all);
        free(e->probe_key);
        free(e);
        return NULL;
    }
    memcpy(e->clear_all, all, e->clear_all_len);
    e->clear_all[e->clear_all_len] = '\0';
    bool whole;
    e->probe_klen =
        globmatch_prefix(e->clear_all, e->clear_all_len, e->probe_key, &whole);
    memcpy(e->probe_key + e->probe_klen, ENGINE_PROBE_KEY_SUFFIX,
           sizeof(ENGINE_PROBE_KEY_SUFFIX));
    e->probe_klen += sizeof(ENGINE_PROBE_KEY_SUFFIX) - 1;
    e->max_value =
        cfg->max_value_bytes && cfg->max_value_bytes < ENGINE_MAX_VALUE_BYTES
            ? cfg->max_value_bytes
            : ENGINE_MAX_VALUE_BYTES;
    e->loop = loop;
    e->mode = MODE_MEMORY;
    uv_timer_init(loop, &e->sweep_timer);
    uv_timer_init(loop, &e->retry_timer);
    uv_timer_init(loop, &e->flush_timer);
    uv_timer_init(loop, &e->outage_timer);
    e->sweep_timer.data = e;
    e->retry_timer.data = e;
    e->flush_timer.data = e;
    e->outage_timer.data = e;
    e->open_handles = 4;
    e->log = cfg->log;
    uv_timer_start(&e->sweep_timer, on_sweep, ENGINE_SWEEP_INTERVAL_MS,
                   ENGINE_SWEEP_INTERVAL_MS);
    uv_unref((uv_handle_t *)&e->sweep_timer);
    uv_unref((uv_handle_t *)&e->retry_timer);
    uv_unref((uv_handle_t *)&e->outage_timer);
    return e;
}

void engine_close(Engine *e)
{
    finish_flush(e, false);
    engine_disconnect(e);
    e->quiet = true;
    outages_free(e);
    journal_free(e->journal);
    e->journal = NULL;
    /* The store goes now, not on the next loop turn: a script that drops
    ** managers without running the loop must get their memory back. */
    store_free(e->store);
    e->store = NULL;
    uv_timer_stop(&e->sweep_timer);
    uv_timer_stop(&e->retry_timer);
    uv_timer_stop(&e->flush_timer);
    uv_close((uv_handle_t *)&e->flush_timer, on_handle_closed);
    uv_close((uv_handle_t *)&e->sweep_timer, on_handle_closed);
    uv_close((uv_handle_t *)&e->retry_timer, on_handle_closed);
    uv_timer_stop(&e->outage_timer);
    uv_close((uv_handle_t *)&e->outage_timer, on_handle_closed);
}

int engine_connect(Engine *e, const RedisConfig *cfg, engine_connect_cb done,
                   void *ud)
{
    if (e->mode == MODE_REDIS) {
        done(ud, true);
        return 0;
    }
    if (e->backend != NULL && e->mode == MODE_MEMORY && !e->attempting &&
        !backend_ready(e->backend)) {
        done(ud, false); /* down, retrying in the background: say so now */
        return 0;
    }
    Waiter *w = realloc(e->waiters, (e->nwaiters + 1) * sizeof(*w));
    if (w == NULL) {
        count_error(e, CR_ENOMEM, NULL);
        done(ud, false);
        return 0;
    }
    e->waiters = w;
    e->waiters[e->nwaiters].done = done;
    e->waiters[e->nwaiters].ud = ud;
    e->nwaiters++;
    if (e->backend == NULL) {
        e->backend = new_backend(e, cfg);
        if (e->backend == NULL) {
            count_error(e, CR_ENOMEM, NULL);
            finish_connect(e, false);
            return 0;
        }
        e->attempting = true;
        backend_connect(e->backend);
    } else if (e->mode == MODE_MEMORY && backend_ready(e->backend)) {
        start_recovery(e);    /* ready, a recovery to retry */
        if (e->nwaiters == 0) /* finished at once */
            return 0;
    }
    return 1;
}

void engine_disconnect(Engine *e)
{
    if (e->backend == NULL)
        return;
    bool was_quiet = e->quiet;
    e->quiet = true; /* the failures backend_close causes are not errors */
    Backend *b = e->backend;
    backend_close(b);
    e->backend = NULL;
    if (e->mode == MODE_RECOVERING && e->in_flight == 0)
        replay_failed(e, CR_ECONNRESET);
    outages_merge(e);
    uv_timer_stop(&e->outage_timer);
    set_mode(e, MODE_MEMORY);
    e->attempting = false;
    uv_timer_stop(&e->retry_timer);
    finish_connect(e, false);
    e->quiet = was_quiet;
}

bool engine_using_redis(const Engine *e)
{
    return e->mode != MODE_MEMORY;
}

int engine_get_async(Engine *e, const char *key, size_t klen,
                     engine_done_cb done, void *ud)
{
    OpArgs a = {e, key, klen, NULL, 0, 0, done, ud, NULL, 0};
    return run_op(&a, OP_GET);
}

size_t engine_get_room(size_t klen)
{
    return sizeof(Op) + klen;
}

int engine_get_async_in(Engine *e, void *room, size_t size, const char *key,
                        size_t klen, engine_done_cb done, void *ud)
{
    OpArgs a = {e, key, klen, NULL, 0, 0, done, ud, room, size};
    return run_op(&a, OP_GET);
}

int engine_set_async(Engine *e, const char *key, size_t klen, const char *val,
                     size_t vlen, uint64_t ttl_ms, engine_done_cb done,
                     void *ud)
{
    OpArgs a = {e, key, klen, val, vlen, ttl_ms, done, ud, NULL, 0};
    return run_op(&a, OP_SET);
}

int engine_pttl_async(Engine *e, const char *key, size_t klen,
                      engine_done_cb done, void *ud)
{
    OpArgs a = {e, key, klen, NULL, 0, 0, done, ud, NULL, 0};
    return run_op(&a, OP_PTTL);
}

int engine_lock_async(Engine *e, const char *key, size_t klen,
                      const char *token, size_t tlen, uint64_t ttl_ms,
                      engine_done_cb done, void *ud)
{
    OpArgs a = {e, key, klen, token, tlen, ttl_ms, done, ud, NULL, 0};
    return run_op(&a, OP_LOCK);
}

int engine_unlock_async(Engine *e, const char *key, size_t klen,
                        const char *token, size_t tlen, engine_done_cb done,
                        void *ud)
{
    OpArgs a = {e, key, klen, token, tlen, 0, done, ud, NULL, 0};
    return run_op(&a, OP_UNLOCK);
}

int engine_delete_async(Engine *e, const char *key, size_t klen,
                        engine_done_cb done, void *ud)
{
    OpArgs a = {e, key, klen, NULL, 0, 0, done, ud, NULL, 0};
    return run_op(&a, OP_DELETE);
}

int engine_exists_async(Engine *e, const char *key, size_t klen,
                        engine_done_cb done, void *ud)
{
    OpArgs a = {e, key, klen, NULL, 0, 0, done, ud, NULL, 0};
    return run_op(&a, OP_EXISTS);
}

int engine_clear_async(Engine *e, const char *pattern, size_t plen,
                       engine_done_cb done, void *ud)
{
    OpArgs a = {e, pattern, plen, NULL, 0, 0, done, ud, NULL, 0};
    return run_op(&a, OP_CLEAR);
}

static inline const char *store_read(Engine *e, const char *key, size_t klen,
                                     size_t *vlen)
{
    uint64_t lower; /* read only for an entry that expires */
    uint64_t expires_at;
    /* The coarse clock without the offset is still a lower bound of the
    ** store's: it never drops a live entry; the check below adds it. */
    const char *v = store_get_timed(e->store, key, klen, coarse_now_ms, vlen,
                                    &expires_at, &lower);
    if (v != NULL && expires_at != 0 &&
        expires_at <= lower + e->clock_offset_ms + e->coarse_slack_ms) {
        uint64_t now = store_now_ms(e);
        if (now >= expires_at) { /* expired after all: remove, count it */
            store_exists(e->store, key, klen, now);
            v = NULL;
        }
    }
    if (v != NULL)
        e->stats.hits++;
    else
        e->stats.misses++;
    return v;
}

const char *engine_get(Engine *e, const char *key, size_t klen, size_t *vlen)
{
    return store_read(e, key, klen, vlen);
}

int engine_direct_get(Engine *e, const char *key, size_t klen, const char **val,
                      size_t *vlen)
{
    if (e->mode != MODE_MEMORY)
        return -1;
    *val = store_read(e, key, klen, vlen);
    return *val != NULL;
}

void engine_get_corrupt(Engine *e, const char *key, size_t klen)
{
    e->stats.hits--;
    e->stats.misses++;
    count_error(e, CR_ECORRUPT, NULL);
    if (e->mode != MODE_REDIS || outage_of(e, key, klen) != NULL)
        store_delete(e->store, key, klen, store_now_ms(e));
}

int engine_set(Engine *e, const char *key, size_t klen, const char *val,
               size_t vlen, uint64_t ttl_ms)
{
    uint64_t now = store_now_ms(e);
    journal_key(journal_for(e, key, klen), key, klen);
    if (klen + vlen > e->max_value) { /* as big as the store's: the old goes */
        store_delete(e->store, key, klen, now);
        count_too_big(e, klen + vlen);
        return CR_EVALUETOOBIG;
    }
    int rc = store_set(e->store, key, klen, val, vlen,
                       ttl_ms == 0 ? 0 : now + ttl_ms, now);
    if (rc != CR_OK) {
        count_error(e, rc, NULL);
        return rc;
    }
    e->stats.sets++;
    return CR_OK;
}

bool engine_delete(Engine *e, const char *key, size_t klen)
{
    journal_key(journal_for(e, key, klen), key, klen);
    bool removed = store_delete(e->store, key, klen, store_now_ms(e));
    if (removed)
        e->stats.deletes++;
    return removed;
}

bool engine_exists(Engine *e, const char *key, size_t klen)
{
    return store_exists(e->store, key, klen, store_now_ms(e));
}

size_t engine_clear(Engine *e, const char *pattern, size_t plen)
{
    /* A pattern that matches one string is journaled as that key: its
    ** replay is an UNLINK, not a pass over the keyspace. */
    char small[256];
    char *key = plen <= sizeof(small) ? small : malloc(plen);
    bool whole = false;
    size_t klen =
        key != NULL ? globmatch_prefix(pattern, plen, key, &whole) : 0;
    if (outages_possible(e) && !e->quiet) {
        /* A Cluster on Redis: the other slots were cleared there; those on
        ** memory record it for their replay. */
        Outage *o = whole ? outage_of(e, key, klen) : NULL;
        if (o != NULL)
            journal_key(journal_for(e, key, klen), key, klen);
        else if (!whole)
            outages_journal_pattern(e, pattern, plen);
    } else if (whole)
        journal_key(journal_for(e, key, klen), key, klen);
    else
        journal_pattern(e->journal, pattern, plen);
    if (key != small)
        free(key);
    size_t n = store_clear(e->store, pattern, plen, store_now_ms(e));
    e->stats.deletes += n;
    return n;
}

void engine_stats(const Engine *e, EngineStats *out)
{
    *out = e->stats;
    out->using_redis = e->mode == MODE_REDIS;
    if (e->backend != NULL && backend_has_slots(e->backend)) {
        out->cluster = true;
        backend_node_counts(e->backend, &out->cluster_nodes,
                            &out->cluster_nodes_up);
        out->cluster_slots_on_memory =
            e->mode == MODE_REDIS ? outages_slots(e) : SLOT_COUNT;
    }
    store_stats(e->store, &out->store);
}
