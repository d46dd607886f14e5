/*
** engine.c -- backend choice, statistics, the outage journal's replay and
** the expiry sweep.
**
** Invariants: every public call leaves the counters consistent with what
** the caller was told (a get that returned bytes is a hit until the caller
** reports them corrupt); in MODE_REDIS the memory store is empty (it is
** emptied on the switch), so an outage starts from nothing stale; a key
** written, deleted or cleared outside MODE_REDIS after the first connect is
** in the journal until it has been replayed into Redis. The sweep timer
** removes at most ENGINE_SWEEP_BUDGET expired entries per tick.
*/
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clearscan.h"
#include "journal.h"
#include "status.h"

typedef enum Mode {
    MODE_MEMORY,     /* the memory store answers (journaling once connected) */
    MODE_REDIS,      /* Redis answers; the memory store is empty */
    MODE_RECOVERING, /* Redis is back; the journal is being replayed */
} Mode;

struct Engine {
    uv_loop_t *loop;
    Store *store;
    uv_timer_t sweep_timer;
    uv_timer_t retry_timer; /* retries a replay the server refused */
    int open_handles;       /* the engine is freed when this reaches 0 */
    EngineStats stats;
    uint64_t coarse_slack_ms; /* how far the coarse clock may lag */
    Mode mode;
    Pool *pool;          /* NULL until connect, and after disconnect */
    Journal *journal;    /* NULL until the first connect */
    bool dirty;          /* a delete or clear before the first connect */
    bool ever_connected; /* reached MODE_REDIS once: later ones reconnect */
    bool quiet;          /* disconnecting or closing: not an error */
    bool outage_logged;
    char *clear_all;
    size_t journal_max_keys;
    engine_connect_cb connect_done;
    void *connect_ud;
    /* replay state (MODE_RECOVERING) */
    JournalBatch batch;
    size_t next_pattern;
    size_t next_key;
    size_t in_flight;
    int replay_status;
    char last_error[256];
};

/* The arguments of one get/set/delete/exists. */
typedef struct OpArgs {
    Engine *e;
    const char *key;
    size_t klen;
    const char *val; /* set only */
    size_t vlen;
    uint64_t ttl_ms;
    engine_done_cb done;
    void *ud;
} OpArgs;

/* A call in flight on Redis: its arguments, with key and value copied into
** data so the memory store can still answer if Redis fails. */
typedef struct Op {
    OpArgs a;
    char data[];
} Op;

/* Answers an operation from the memory store. */
typedef void (*memory_fn)(const OpArgs *a);

static void start_recovery(Engine *e);

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
    store_sweep(e->store, engine_now_ms(), ENGINE_SWEEP_BUDGET);
}

static void on_handle_closed(uv_handle_t *h)
{
    Engine *e = h->data;
    if (--e->open_handles == 0) {
        free(e->clear_all);
        free(e);
    }
}

static void set_last_error(Engine *e, int code, const char *msg)
{
    snprintf(e->last_error, sizeof(e->last_error), "%s%s%s", cr_strerror(code),
             msg != NULL ? ": " : "", msg != NULL ? msg : "");
    e->stats.last_error = e->last_error;
}

static void count_error(Engine *e, int code, const char *msg)
{
    e->stats.errors++;
    set_last_error(e, code, msg);
}

/* Redis could not be reached or broke: serve from memory until it is back
** and the journal replayed (the pool keeps reconnecting by itself). */
static void lose_redis(Engine *e, int code, const char *msg)
{
    if (e->quiet)
        return;
    set_last_error(e, code, msg);
    if (e->mode == MODE_REDIS) {
        e->mode = MODE_MEMORY;
        if (!e->outage_logged)
            fprintf(stderr,
                    "cachert: redis unavailable (%s); serving from the "
                    "memory store until it is back\n",
                    e->last_error);
        e->outage_logged = true;
    }
}

static void journal_write(Engine *e, const char *key, size_t klen)
{
    if (e->journal != NULL)
        journal_key(e->journal, key, klen);
}

static void journal_removal(Engine *e, const char *key, size_t klen)
{
    if (e->journal != NULL)
        journal_key(e->journal, key, klen);
    else
        e->dirty = true;
}

static bool journal_visit(void *ud, const char *key, size_t klen,
                          const char *val, size_t vlen, uint64_t ttl_left_ms)
{
    (void)val;
    (void)vlen;
    (void)ttl_left_ms;
    journal_key(ud, key, klen);
    return true;
}

static Op *op_new(const OpArgs *a)
{
    Op *op = malloc(sizeof(*op) + a->klen + a->vlen);
    if (op == NULL)
        return NULL;
    op->a = *a;
    memcpy(op->data, a->key, a->klen);
    op->a.key = op->data;
    if (a->vlen > 0)
        memcpy(op->data + a->klen, a->val, a->vlen);
    op->a.val = op->data + a->klen;
    return op;
}

/* -- Memory versions with a callback -------------------------------------- */

static void memory_get(const OpArgs *a)
{
    EngineResult r = {0};
    r.val = engine_get(a->e, a->key, a->klen, &r.vlen);
    r.found = r.val != NULL;
    a->done(a->ud, &r);
}

static void memory_set(const OpArgs *a)
{
    EngineResult r = {0};
    r.status = engine_set(a->e, a->key, a->klen, a->val, a->vlen, a->ttl_ms);
    if (r.status != CR_OK)
        r.err = cr_strerror(r.status);
    a->done(a->ud, &r);
}

static void memory_delete(const OpArgs *a)
{
    EngineResult r = {0};
    r.found = engine_delete(a->e, a->key, a->klen);
    a->done(a->ud, &r);
}

static void memory_exists(const OpArgs *a)
{
    EngineResult r = {0};
    r.found = engine_exists(a->e, a->key, a->klen);
    a->done(a->ud, &r);
}

/* -- Redis calls ---------------------------------------------------------- */

/* Runs `a` on Redis as argv (argv[1] is the key) when Redis is in use:
** returns 1 and `cb` completes it later. Otherwise, or when the command
** cannot be queued, answers from the memory store and returns 0. */
static int run_op(const OpArgs *a, int argc, const char **argv,
                  const size_t *lens, pool_reply_cb cb, memory_fn memory)
{
    Engine *e = a->e;
    Op *op = e->mode == MODE_REDIS ? op_new(a) : NULL;
    if (op == NULL) {
        memory(a);
        return 0;
    }
    int rc = pool_command(e->pool, argc, argv, lens, cb, op);
    if (rc == CR_OK)
        return 1;
    e->stats.errors++;
    lose_redis(e, rc, NULL);
    memory(&op->a);
    free(op);
    return 0;
}

/* The transport failed under `op`: count it, switch, answer from memory. */
static void transport_failed(Op *op, int status, memory_fn memory)
{
    Engine *e = op->a.e;
    if (!e->quiet)
        e->stats.errors++;
    lose_redis(e, status, NULL);
    memory(&op->a);
    free(op);
}

static void complete(Op *op, const EngineResult *r)
{
    op->a.done(op->a.ud, r);
    free(op);
}

static void on_get(void *ud, int status, const redisReply *reply)
{
    Op *op = ud;
    Engine *e = op->a.e;
    if (status != CR_OK) {
        transport_failed(op, status, memory_get);
        return;
    }
    EngineResult r = {0};
    if (reply->type == REDIS_REPLY_STRING) {
        e->stats.hits++;
        r.found = true;
        r.val = reply->str;
        r.vlen = reply->len;
    } else {
        e->stats.misses++;
        if (reply->type != REDIS_REPLY_NIL)
            count_error(e, CR_EREPLY,
                        reply->type == REDIS_REPLY_ERROR ? reply->str : NULL);
    }
    complete(op, &r);
}

static void on_ignore(void *ud, int status, const redisReply *reply)
{
    (void)ud;
    (void)status;
    (void)reply;
}

static void on_set(void *ud, int status, const redisReply *reply)
{
    Op *op = ud;
    Engine *e = op->a.e;
    if (status != CR_OK) {
        transport_failed(op, status, memory_set);
        return;
    }
    EngineResult r = {0};
    if (reply->type == REDIS_REPLY_ERROR) {
        /* Redis refused the value (maxmemory, ...): drop the old one so
        ** it is not served as if the set had worked. */
        count_error(e, CR_EREPLY, reply->str);
        const char *argv[] = {"UNLINK", op->a.key};
        size_t lens[] = {6, op->a.klen};
        pool_command(e->pool, 2, argv, lens, on_ignore, NULL);
        r.status = CR_EREPLY;
        r.err = e->last_error;
    } else {
        e->stats.sets++;
    }
    complete(op, &r);
}

/* Replies of UNLINK and EXISTS: an integer. */
static void on_integer(Op *op, int status, const redisReply *reply,
                       memory_fn memory, bool is_delete)
{
    Engine *e = op->a.e;
    if (status != CR_OK) {
        transport_failed(op, status, memory);
        return;
    }
    EngineResult r = {0};
    if (reply->type == REDIS_REPLY_INTEGER) {
        r.found = reply->integer > 0;
        if (is_delete)
            e->stats.deletes += (uint64_t)reply->integer;
    } else {
        count_error(e, CR_EREPLY,
                    reply->type == REDIS_REPLY_ERROR ? reply->str : NULL);
    }
    complete(op, &r);
}

static void on_delete(void *ud, int status, const redisReply *reply)
{
    on_integer(ud, status, reply, memory_delete, true);
}

static void on_exists(void *ud, int status, const redisReply *reply)
{
    on_integer(ud, status, reply, memory_exists, false);
}

static void on_cleared(void *ud, int status, uint64_t removed)
{
    Op *op = ud;
    Engine *e = op->a.e;
    EngineResult r = {0};
    e->stats.deletes += removed;
    r.count = removed;
    if (status == CR_EREPLY || status == CR_EPROTO) {
        count_error(e, status, NULL);
    } else if (status != CR_OK) {
        /* Lost midway: finish the clear where the data now lives. */
        if (!e->quiet)
            e->stats.errors++;
        lose_redis(e, status, NULL);
        r.count += engine_clear(e, op->a.key, op->a.klen);
    }
    complete(op, &r);
}

/* -- Recovery: replaying the journal --------------------------------------- */

static void finish_connect(Engine *e, bool using_redis)
{
    engine_connect_cb done = e->connect_done;
    if (done != NULL) {
        e->connect_done = NULL;
        done(e->connect_ud, using_redis);
    }
}

static void on_retry(uv_timer_t *t)
{
    Engine *e = t->data;
    if (e->mode == MODE_MEMORY && e->pool != NULL && pool_ready(e->pool))
        start_recovery(e);
}

static void replay_failed(Engine *e, int status)
{
    journal_restore(e->journal, &e->batch);
    e->mode = MODE_MEMORY;
    if (e->quiet)
        return;
    count_error(e, status, "while replaying the outage journal");
    if (status == CR_EREPLY || status == CR_EPROTO)
        /* The server said no: the pool stays up, so nothing else would
        ** trigger another attempt. */
        uv_timer_start(&e->retry_timer, on_retry, POOL_BACKOFF_MAX_MS, 0);
    finish_connect(e, false);
}

static void switch_to_redis(Engine *e)
{
    e->mode = MODE_REDIS;
    store_clear(e->store, "*", 1, engine_now_ms());
    if (e->ever_connected) {
        e->stats.reconnects++;
        if (e->outage_logged)
            fprintf(stderr, "cachert: redis is back; serving from it again\n");
    }
    e->ever_connected = true;
    e->outage_logged = false;
    finish_connect(e, true);
}

static void replay_keys(Engine *e);

static void on_key_replayed(void *ud, int status, const redisReply *reply)
{
    Engine *e = ud;
    e->in_flight--;
    if (status == CR_OK && reply->type == REDIS_REPLY_ERROR)
        status = CR_EREPLY;
    if (status != CR_OK && e->replay_status == CR_OK)
        e->replay_status = status;
    if (e->quiet && e->in_flight == 0 && e->mode == MODE_RECOVERING) {
        replay_failed(e, CR_ECONNRESET);
        return;
    }
    replay_keys(e);
}

/* Writes each journaled key's memory state to Redis, a bounded number at a
** time (they are independent: any order is right). */
static void replay_keys(Engine *e)
{
    if (e->replay_status != CR_OK) {
        if (e->in_flight == 0)
            replay_failed(e, e->replay_status);
        return;
    }
    uint64_t now = engine_now_ms();
    while (e->in_flight < ENGINE_REPLAY_IN_FLIGHT &&
           e->next_key < e->batch.nkeys) {
        const char *key = e->batch.keys[e->next_key];
        size_t klen = e->batch.klens[e->next_key];
        size_t vlen;
        uint64_t expires_at;
        const char *val =
            store_get_expiring(e->store, key, klen, now, &vlen, &expires_at);
        char px[32];
        const char *argv[5];
        size_t lens[5];
        int argc;
        if (val == NULL) {
            argv[0] = "UNLINK";
            argc = 2;
        } else {
            argv[0] = "SET";
            argv[2] = val;
            lens[2] = vlen;
            argc = 3;
            if (expires_at != 0) {
                snprintf(px, sizeof(px), "%llu",
                         (unsigned long long)(expires_at - now));
                argv[3] = "PX";
                lens[3] = 2;
                argv[4] = px;
                lens[4] = strlen(px);
                argc = 5;
            }
        }
        lens[0] = strlen(argv[0]);
        argv[1] = key;
        lens[1] = klen;
        int rc = pool_command(e->pool, argc, argv, lens, on_key_replayed, e);
        if (rc != CR_OK) {
            e->replay_status = rc;
            break;
        }
        e->next_key++;
        e->in_flight++;
    }
    if (e->in_flight > 0)
        return;
    if (e->replay_status != CR_OK) {
        replay_failed(e, e->replay_status);
        return;
    }
    journal_batch_free(&e->batch);
    if (!journal_empty(e->journal))
        start_recovery(e); /* written meanwhile: once more */
    else
        switch_to_redis(e);
}

static void replay_patterns(Engine *e);

static void on_pattern_replayed(void *ud, int status, uint64_t removed)
{
    Engine *e = ud;
    (void)removed;
    if (status != CR_OK) {
        replay_failed(e, status);
        return;
    }
    replay_patterns(e);
}

static void replay_patterns(Engine *e)
{
    if (e->next_pattern >= e->batch.npatterns) {
        replay_keys(e);
        return;
    }
    size_t i = e->next_pattern++;
    int rc = clearscan_start(e->pool, e->batch.patterns[i], e->batch.plens[i],
                             on_pattern_replayed, e);
    if (rc != CR_OK)
        replay_failed(e, rc);
}

static void on_all_cleared(void *ud, int status, uint64_t removed)
{
    Engine *e = ud;
    (void)removed;
    if (status != CR_OK) {
        replay_failed(e, status);
        return;
    }
    replay_patterns(e);
}

static void start_recovery(Engine *e)
{
    e->mode = MODE_RECOVERING;
    journal_take(e->journal, &e->batch);
    e->next_pattern = 0;
    e->next_key = 0;
    e->in_flight = 0;
    e->replay_status = CR_OK;
    if (e->batch.overflow) {
        e->stats.journal_overflows++;
        int rc = clearscan_start(e->pool, e->clear_all, strlen(e->clear_all),
                                 on_all_cleared, e);
        if (rc != CR_OK)
            replay_failed(e, rc);
        return;
    }
    replay_patterns(e);
}

static void on_pool_state(void *ud, int status, const char *message)
{
    Engine *e = ud;
    if (status == CR_OK) {
        if (e->mode == MODE_MEMORY)
            start_recovery(e);
        return;
    }
    bool first = e->connect_done != NULL && !e->ever_connected;
    lose_redis(e, status, message);
    if (first && !e->quiet && !e->outage_logged)
        fprintf(stderr,
                "cachert: redis unavailable (%s); serving from the memory "
                "store, retrying in the background\n",
                e->last_error);
    if (first)
        e->outage_logged = true;
    finish_connect(e, false);
}

/* -- Public API --------------------------------------------------------- */

uint64_t engine_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
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
    e->clear_all = malloc(strlen(all) + 1);
    e->store = store_new(cfg->max_items, cfg->max_bytes);
    if (e->store == NULL || e->clear_all == NULL) {
        store_free(e->store);
        free(e->clear_all);
        free(e);
        return NULL;
    }
    strcpy(e->clear_all, all);
    e->journal_max_keys =
        cfg->journal_max_keys ? cfg->journal_max_keys : ENGINE_JOURNAL_MAX_KEYS;
    e->loop = loop;
    e->mode = MODE_MEMORY;
    uv_timer_init(loop, &e->sweep_timer);
    uv_timer_init(loop, &e->retry_timer);
    e->sweep_timer.data = e;
    e->retry_timer.data = e;
    e->open_handles = 2;
    uv_timer_start(&e->sweep_timer, on_sweep, ENGINE_SWEEP_INTERVAL_MS,
                   ENGINE_SWEEP_INTERVAL_MS);
    uv_unref((uv_handle_t *)&e->sweep_timer);
    uv_unref((uv_handle_t *)&e->retry_timer);
    return e;
}

void engine_close(Engine *e)
{
    engine_disconnect(e);
    e->quiet = true;
    journal_free(e->journal);
    e->journal = NULL;
    /* The store goes now, not on the next loop turn: a script that drops
    ** managers without running the loop must get their memory back. */
    store_free(e->store);
    e->store = NULL;
    uv_timer_stop(&e->sweep_timer);
    uv_timer_stop(&e->retry_timer);
    uv_close((uv_handle_t *)&e->sweep_timer, on_handle_closed);
    uv_close((uv_handle_t *)&e->retry_timer, on_handle_closed);
}

int engine_connect(Engine *e, const PoolConfig *cfg, engine_connect_cb done,
                   void *ud)
{
    if (e->connect_done != NULL)
        return CR_EINVAL;
    if (e->mode == MODE_REDIS) {
        done(ud, true);
        return 0;
    }
    if (e->journal == NULL) {
        e->journal =
            journal_new(e->journal_max_keys, ENGINE_JOURNAL_MAX_PATTERNS);
        if (e->journal == NULL) {
            count_error(e, CR_ENOMEM, NULL);
            done(ud, false);
            return 0;
        }
        if (e->dirty)
            journal_overflow(e->journal);
        else /* what was written before: Redis may hold older values */
            store_foreach(e->store, engine_now_ms(), journal_visit, e->journal);
    }
    e->connect_done = done;
    e->connect_ud = ud;
    if (e->pool == NULL) {
        e->pool = pool_new(e->loop, cfg, on_pool_state, e);
        if (e->pool == NULL) {
            count_error(e, CR_ENOMEM, NULL);
            finish_connect(e, false);
            return 0;
        }
        pool_connect(e->pool);
    }
    return 1;
}

void engine_disconnect(Engine *e)
{
    if (e->pool == NULL)
        return;
    bool was_quiet = e->quiet;
    e->quiet = true; /* the failures pool_close causes are not errors */
    Pool *p = e->pool;
    pool_close(p);
    e->pool = NULL;
    if (e->mode == MODE_RECOVERING && e->in_flight == 0)
        replay_failed(e, CR_ECONNRESET);
    e->mode = MODE_MEMORY;
    uv_timer_stop(&e->retry_timer);
    finish_connect(e, false);
    e->quiet = was_quiet;
}

bool engine_using_redis(const Engine *e)
{
    return e->mode == MODE_REDIS;
}

int engine_get_async(Engine *e, const char *key, size_t klen,
                     engine_done_cb done, void *ud)
{
    OpArgs a = {e, key, klen, NULL, 0, 0, done, ud};
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, klen};
    return run_op(&a, 2, argv, lens, on_get, memory_get);
}

int engine_set_async(Engine *e, const char *key, size_t klen, const char *val,
                     size_t vlen, uint64_t ttl_ms, engine_done_cb done,
                     void *ud)
{
    OpArgs a = {e, key, klen, val, vlen, ttl_ms, done, ud};
    char px[32];
    snprintf(px, sizeof(px), "%llu", (unsigned long long)ttl_ms);
    const char *argv[] = {"SET", key, val, "PX", px};
    size_t lens[] = {3, klen, vlen, 2, strlen(px)};
    return run_op(&a, ttl_ms > 0 ? 5 : 3, argv, lens, on_set, memory_set);
}

int engine_delete_async(Engine *e, const char *key, size_t klen,
                        engine_done_cb done, void *ud)
{
    OpArgs a = {e, key, klen, NULL, 0, 0, done, ud};
    const char *argv[] = {"UNLINK", key};
    size_t lens[] = {6, klen};
    return run_op(&a, 2, argv, lens, on_delete, memory_delete);
}

int engine_exists_async(Engine *e, const char *key, size_t klen,
                        engine_done_cb done, void *ud)
{
    OpArgs a = {e, key, klen, NULL, 0, 0, done, ud};
    const char *argv[] = {"EXISTS", key};
    size_t lens[] = {6, klen};
    return run_op(&a, 2, argv, lens, on_exists, memory_exists);
}

int engine_clear_async(Engine *e, const char *pattern, size_t plen,
                       engine_done_cb done, void *ud)
{
    OpArgs a = {e, pattern, plen, NULL, 0, 0, done, ud};
    Op *op = e->mode == MODE_REDIS ? op_new(&a) : NULL;
    if (op != NULL) {
        int rc = clearscan_start(e->pool, pattern, plen, on_cleared, op);
        if (rc == CR_OK)
            return 1;
        free(op);
        e->stats.errors++;
        lose_redis(e, rc, NULL);
    }
    EngineResult r = {0};
    r.count = engine_clear(e, pattern, plen);
    done(ud, &r);
    return 0;
}

const char *engine_get(Engine *e, const char *key, size_t klen, size_t *vlen)
{
    uint64_t lower = coarse_now_ms();
    uint64_t expires_at;
    const char *v =
        store_get_expiring(e->store, key, klen, lower, vlen, &expires_at);
    if (v != NULL && expires_at != 0 &&
        expires_at <= lower + e->coarse_slack_ms) {
        uint64_t now = engine_now_ms();
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

void engine_get_corrupt(Engine *e, const char *key, size_t klen)
{
    e->stats.hits--;
    e->stats.misses++;
    count_error(e, CR_ECORRUPT, NULL);
    if (e->mode != MODE_REDIS)
        store_delete(e->store, key, klen, engine_now_ms());
}

int engine_set(Engine *e, const char *key, size_t klen, const char *val,
               size_t vlen, uint64_t ttl_ms)
{
    uint64_t now = engine_now_ms();
    journal_write(e, key, klen);
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
    journal_removal(e, key, klen);
    bool removed = store_delete(e->store, key, klen, engine_now_ms());
    if (removed)
        e->stats.deletes++;
    return removed;
}

bool engine_exists(Engine *e, const char *key, size_t klen)
{
    return store_exists(e->store, key, klen, engine_now_ms());
}

size_t engine_clear(Engine *e, const char *pattern, size_t plen)
{
    if (e->journal != NULL)
        journal_pattern(e->journal, pattern, plen);
    else
        e->dirty = true;
    size_t n = store_clear(e->store, pattern, plen, engine_now_ms());
    e->stats.deletes += n;
    return n;
}

void engine_set_limits(Engine *e, size_t max_items, size_t max_bytes)
{
    store_set_limits(e->store, max_items, max_bytes);
}

void engine_stats(const Engine *e, EngineStats *out)
{
    *out = e->stats;
    out->using_redis = e->mode == MODE_REDIS;
    store_stats(e->store, &out->store);
}
