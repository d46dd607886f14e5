/*
** engine.c -- backend choice, statistics, the outage journal's replay and
** the expiry sweep.
**
** Invariants: every public call leaves the counters consistent with what
** the caller was told (a get that returned bytes is a hit until the caller
** reports them corrupt); in MODE_REDIS the memory store is empty (it is
** emptied on the switch), so an outage starts from nothing stale; a key
** written, deleted or cleared in MODE_MEMORY is in the journal until it
** has been replayed into Redis; in MODE_RECOVERING reads come from memory
** and writes wait (deferred) until the switch, so the replay converges in
** one round however busy the writers are. The sweep timer removes at most
** ENGINE_SWEEP_BUDGET expired entries per tick.
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
    Journal *journal;    /* what changed while not on Redis */
    bool ever_connected; /* reached MODE_REDIS once: later ones reconnect */
    bool attempting;     /* the pool's first attempt has no outcome yet */
    bool quiet;          /* disconnecting or closing: not an error */
    bool outage_logged;
    char *clear_all;
    size_t clear_all_len;
    struct Waiter *waiters; /* connect() calls waiting for an outcome */
    size_t nwaiters;
    struct Op *deferred; /* writes waiting for the end of the replay */
    struct Op *deferred_tail;
    /* replay state (MODE_RECOVERING) */
    JournalBatch batch;
    size_t next_pattern;
    size_t next_key;
    size_t in_flight;
    int replay_status;
    bool clearing_all; /* replaying an overflow: the namespace not cleared */
    char last_error[256];
};

typedef struct Waiter {
    engine_connect_cb done;
    void *ud;
} Waiter;

enum { OP_GET, OP_SET, OP_DELETE, OP_EXISTS, OP_CLEAR };

/* The arguments of one get/set/delete/exists/clear (key = the pattern). */
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

/* A call in flight on Redis (or deferred): its arguments, with key and
** value copied into data so the memory store can still answer if Redis
** fails. */
typedef struct Op {
    OpArgs a;
    int kind;
    struct Op *next; /* on the deferred list */
    char data[];
} Op;

/* Answers an operation from the memory store. */
typedef void (*memory_fn)(const OpArgs *a);

static void start_recovery(Engine *e);
static int issue(Op *op);

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
        free(e->waiters);
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

static bool add_memory_key(void *ud, const char *key, size_t klen,
                           const char *val, size_t vlen, uint64_t ttl_left_ms)
{
    (void)val;
    (void)vlen;
    (void)ttl_left_ms;
    return journal_batch_add_key(ud, key, klen);
}

static Op *op_new(const OpArgs *a, int kind)
{
    Op *op = malloc(sizeof(*op) + a->klen + a->vlen);
    if (op == NULL)
        return NULL;
    op->a = *a;
    op->kind = kind;
    op->next = NULL;
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

static void memory_clear(const OpArgs *a)
{
    EngineResult r = {0};
    r.count = engine_clear(a->e, a->key, a->klen);
    a->done(a->ud, &r);
}

static const memory_fn memory_of[] = {memory_get, memory_set, memory_delete,
                                      memory_exists, memory_clear};

/* The operation could not even be queued (out of memory): it fails, and
** nothing is switched, since Redis itself is fine. */
static void fail_op(const OpArgs *a, int code)
{
    EngineResult r = {0};
    count_error(a->e, code, NULL);
    r.status = code;
    r.err = a->e->last_error;
    a->done(a->ud, &r);
}

/* -- Redis calls ---------------------------------------------------------- */

/* Runs `a`: on the memory store in MODE_MEMORY (and reads in
** MODE_RECOVERING), returning 0 after `done` ran; deferred until the
** switch for writes in MODE_RECOVERING; on Redis in MODE_REDIS, returning 1
** when `done` will run later. */
static int run_op(const OpArgs *a, int kind)
{
    Engine *e = a->e;
    if (e->mode == MODE_MEMORY ||
        (e->mode == MODE_RECOVERING && (kind == OP_GET || kind == OP_EXISTS))) {
        memory_of[kind](a);
        return 0;
    }
    Op *op = op_new(a, kind);
    if (op == NULL) {
        fail_op(a, CR_ENOMEM);
        return 0;
    }
    if (e->mode == MODE_RECOVERING) {
        if (e->deferred_tail != NULL)
            e->deferred_tail->next = op;
        else
            e->deferred = op;
        e->deferred_tail = op;
        return 1;
    }
    return issue(op);
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

/* The UNLINK sent after a refused SET answered: only now is the old value
** gone, so only now does the set report its failure. */
static void on_refused_set_unlinked(void *ud, int status,
                                    const redisReply *reply)
{
    Op *op = ud;
    (void)reply;
    if (status != CR_OK) { /* lost: the memory store takes the value */
        transport_failed(op, status, memory_set);
        return;
    }
    EngineResult r = {0};
    r.status = CR_EREPLY;
    r.err = op->a.e->last_error;
    complete(op, &r);
}

static void on_set(void *ud, int status, const redisReply *reply)
{
    Op *op = ud;
    Engine *e = op->a.e;
    if (status != CR_OK) {
        transport_failed(op, status, memory_set);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        /* Redis refused the value (maxmemory, ...): drop the old one so it
        ** is not served as if the set had worked, then report. */
        count_error(e, CR_EREPLY, reply->str);
        const char *argv[] = {"UNLINK", op->a.key};
        size_t lens[] = {6, op->a.klen};
        int rc =
            pool_command(e->pool, 2, argv, lens, on_refused_set_unlinked, op);
        if (rc == CR_ECONNRESET)
            transport_failed(op, rc, memory_set);
        else if (rc != CR_OK) { /* the old value stays: say so */
            EngineResult r = {0};
            r.status = rc;
            r.err = e->last_error;
            complete(op, &r);
        }
        return;
    }
    e->stats.sets++;
    EngineResult r = {0};
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

/* Sends `op` to Redis. Returns 1, or 0 after completing it: on the memory
** store when the pool is down (the engine switches), as a failure when
** the command could not be queued. */
static int issue(Op *op)
{
    const OpArgs *a = &op->a;
    Engine *e = a->e;
    static const char *const names[] = {"GET", "SET", "UNLINK", "EXISTS"};
    static const pool_reply_cb callbacks[] = {on_get, on_set, on_delete,
                                              on_exists};
    int rc;
    if (op->kind == OP_CLEAR) {
        rc = clearscan_start(e->pool, a->key, a->klen, on_cleared, op);
    } else {
        char px[32];
        snprintf(px, sizeof(px), "%llu", (unsigned long long)a->ttl_ms);
        const char *argv[] = {names[op->kind], a->key, a->val, "PX", px};
        size_t lens[] = {strlen(names[op->kind]), a->klen, a->vlen, 2,
                         strlen(px)};
        int argc = op->kind != OP_SET ? 2 : a->ttl_ms > 0 ? 5 : 3;
        rc = pool_command(e->pool, argc, argv, lens, callbacks[op->kind], op);
    }
    if (rc == CR_OK)
        return 1;
    if (rc == CR_ECONNRESET) { /* the pool is down: its state says so */
        e->stats.errors++;
        lose_redis(e, rc, NULL);
        memory_of[op->kind](a);
    } else {
        fail_op(a, rc);
    }
    free(op);
    return 0;
}

/* Runs the writes deferred during a replay: on Redis after the switch, or
** on the memory store (journaled) when the replay failed. */
static void run_deferred(Engine *e)
{
    Op *op = e->deferred;
    e->deferred = e->deferred_tail = NULL;
    while (op != NULL) {
        Op *next = op->next;
        op->next = NULL;
        if (e->mode == MODE_REDIS) {
            issue(op);
        } else {
            memory_of[op->kind](&op->a);
            free(op);
        }
        op = next;
    }
}

/* -- Recovery: replaying the journal --------------------------------------- */

static void finish_connect(Engine *e, bool using_redis)
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

static void on_retry(uv_timer_t *t)
{
    Engine *e = t->data;
    if (e->mode == MODE_MEMORY && e->pool != NULL && pool_ready(e->pool))
        start_recovery(e);
}

static void replay_failed(Engine *e, int status)
{
    /* Failing before the namespace was cleared: the next attempt must
    ** clear it again (the batch's own flag was reused). */
    if (e->clearing_all)
        e->batch.overflow = true;
    e->clearing_all = false;
    journal_restore(e->journal, &e->batch);
    e->mode = MODE_MEMORY;
    run_deferred(e);
    if (!e->quiet) {
        count_error(e, status, "while replaying the outage journal");
        if (e->pool != NULL && pool_ready(e->pool))
            /* The server said no, or memory ran out: the pool stays up,
            ** so nothing else would trigger another attempt. */
            uv_timer_start(&e->retry_timer, on_retry, POOL_BACKOFF_MAX_MS, 0);
    }
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
    run_deferred(e);
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
    switch_to_redis(e); /* writes waited, so nothing changed meanwhile */
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
    e->clearing_all = false;
    /* The details are gone, but every key the memory store holds was
    ** written since (it is empty on the switch to Redis): replay those. */
    store_foreach(e->store, engine_now_ms(), add_memory_key, &e->batch);
    if (e->batch.overflow) { /* out of memory collecting them */
        replay_failed(e, CR_ENOMEM);
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
        e->clearing_all = true;
        e->batch.overflow = false; /* reused below: out of memory */
        int rc = clearscan_start(e->pool, e->clear_all, e->clear_all_len,
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
        e->attempting = false;
        if (e->mode == MODE_MEMORY)
            start_recovery(e);
        return;
    }
    bool first = e->attempting && !e->ever_connected;
    e->attempting = false;
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
    e->clear_all_len = cfg->clear_all_pattern ? cfg->clear_all_len : 1;
    e->clear_all = malloc(e->clear_all_len + 1);
    e->store = store_new(cfg->max_items, cfg->max_bytes);
    e->journal = journal_new(cfg->journal_max_keys ? cfg->journal_max_keys
                                                   : ENGINE_JOURNAL_MAX_KEYS,
                             ENGINE_JOURNAL_MAX_PATTERNS);
    if (e->store == NULL || e->clear_all == NULL || e->journal == NULL) {
        store_free(e->store);
        journal_free(e->journal);
        free(e->clear_all);
        free(e);
        return NULL;
    }
    memcpy(e->clear_all, all, e->clear_all_len);
    e->clear_all[e->clear_all_len] = '\0';
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
    if (e->mode == MODE_REDIS) {
        done(ud, true);
        return 0;
    }
    if (e->pool != NULL && e->mode == MODE_MEMORY && !e->attempting &&
        !pool_ready(e->pool)) {
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
    if (e->pool == NULL) {
        e->pool = pool_new(e->loop, cfg, on_pool_state, e);
        if (e->pool == NULL) {
            count_error(e, CR_ENOMEM, NULL);
            finish_connect(e, false);
            return 0;
        }
        e->attempting = true;
        pool_connect(e->pool);
    } else if (e->mode == MODE_MEMORY) { /* ready, a replay to retry */
        uv_timer_stop(&e->retry_timer);
        start_recovery(e);
        if (e->nwaiters == 0) /* finished at once */
            return 0;
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
    OpArgs a = {e, key, klen, NULL, 0, 0, done, ud};
    return run_op(&a, OP_GET);
}

int engine_set_async(Engine *e, const char *key, size_t klen, const char *val,
                     size_t vlen, uint64_t ttl_ms, engine_done_cb done,
                     void *ud)
{
    OpArgs a = {e, key, klen, val, vlen, ttl_ms, done, ud};
    return run_op(&a, OP_SET);
}

int engine_delete_async(Engine *e, const char *key, size_t klen,
                        engine_done_cb done, void *ud)
{
    OpArgs a = {e, key, klen, NULL, 0, 0, done, ud};
    return run_op(&a, OP_DELETE);
}

int engine_exists_async(Engine *e, const char *key, size_t klen,
                        engine_done_cb done, void *ud)
{
    OpArgs a = {e, key, klen, NULL, 0, 0, done, ud};
    return run_op(&a, OP_EXISTS);
}

int engine_clear_async(Engine *e, const char *pattern, size_t plen,
                       engine_done_cb done, void *ud)
{
    OpArgs a = {e, pattern, plen, NULL, 0, 0, done, ud};
    return run_op(&a, OP_CLEAR);
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
    journal_key(e->journal, key, klen);
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
    journal_key(e->journal, key, klen);
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
    journal_pattern(e->journal, pattern, plen);
    size_t n = store_clear(e->store, pattern, plen, engine_now_ms());
    e->stats.deletes += n;
    return n;
}

void engine_stats(const Engine *e, EngineStats *out)
{
    *out = e->stats;
    out->using_redis = e->mode == MODE_REDIS;
    store_stats(e->store, &out->store);
}
