/*
** engine.c -- backend choice, statistics, the outage journal's replay and
** the expiry sweep.
**
** Invariants: every public call leaves the counters consistent with what
** the caller was told (a get that returned bytes is a hit until the caller
** reports them corrupt); in MODE_REDIS the memory store is empty (it is
** emptied on the switch) and its sweep timer stopped, so an outage starts
** from nothing stale; a key written, deleted or cleared in MODE_MEMORY is
** in the journal until Redis has been told to forget it.
**
** Recovery (MODE_RECOVERING) never writes a remembered value into Redis:
** other processes may have written newer ones meanwhile. It checks the
** server first (a probe: not a read-only replica, the ACL user may run
** every command cachert sends), then replays the journal as invalidation:
** all journaled patterns in one SCAN pass, then UNLINK of every journaled
** key, then the switch, which drops what the memory store held. Reads
** come from memory meanwhile; writes go to Redis at once (and to memory,
** see mirror_to_memory), so nobody waits for a replay and nothing new is
** journaled while it runs: one round ends it, however busy the writers
** (a write that fails is journaled and the replay fails with it).
*/
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "clearscan.h"
#include "globmatch.h"
#include "journal.h"
#include "log.h"
#include "status.h"

typedef enum Mode {
    MODE_MEMORY,     /* the memory store answers (journaling) */
    MODE_REDIS,      /* Redis answers; the memory store is empty */
    MODE_RECOVERING, /* Redis is back; probing it, then the replay */
} Mode;

#define ENGINE_UNLINK_BATCH     256 /* journal keys per UNLINK */
#define ENGINE_PROBE_KEY_SUFFIX "cachert:probe"
#define ENGINE_LOG_INTERVAL_MS  10000 /* at most one outage warning per */

struct Engine {
    uv_loop_t *loop;
    Store *store;
    uv_timer_t sweep_timer;
    uv_timer_t retry_timer; /* retries a recovery the server refused */
    int open_handles;       /* the engine is freed when this reaches 0 */
    EngineStats stats;
    uint64_t coarse_slack_ms; /* how far the coarse clock may lag */
    size_t max_value;         /* key + value bytes a set accepts */
    Mode mode;
    Backend *backend;    /* NULL until connect, and after disconnect */
    Journal *journal;    /* what changed while not on Redis */
    bool ever_connected; /* reached MODE_REDIS once: later ones reconnect */
    bool attempting;     /* the backend's first attempt has no outcome yet */
    bool quiet;          /* disconnecting or closing: not an error */
    Logger log;
    bool outage_logged;  /* this outage was warned about (or held back) */
    bool refusal_logged; /* a failed probe or replay was warned about */
    bool warned;         /* some warning was logged: last_warn_ms is set */
    bool back_due;       /* a warning went out: say when Redis is back */
    unsigned held_back;  /* warnings not logged since the last one */
    uint64_t last_warn_ms;
    uint64_t round_started_ms; /* the replay's start, for its log line */
    /* at-exit flush (engine_flush) */
    uv_timer_t flush_timer;
    engine_flush_cb flush_done;
    void *flush_ud;
    bool retry_readonly; /* the retry timer reconnects: a replica answered */
    char *clear_all;     /* escaped namespace + "*" */
    size_t clear_all_len;
    char *probe_key; /* namespace + ENGINE_PROBE_KEY_SUFFIX */
    size_t probe_klen;
    struct Waiter *waiters; /* connect() calls waiting for an outcome */
    size_t nwaiters;
    /* recovery state (MODE_RECOVERING) */
    JournalBatch batch;
    size_t next_key;
    size_t in_flight;    /* probe or UNLINK commands out */
    int replay_status;   /* the first failure of this round */
    size_t unlink_batch; /* keys per UNLINK: 1 after a key was refused */
    bool key_refused;    /* a batch held a key the ACL user may not touch */
    size_t keys_dropped; /* keys refused one by one: not invalidated */
    char dropped_err[160];
    char replay_err[160]; /* the server's text for replay_status */
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

/* A call in flight on Redis: its arguments, with key and
** value copied into data so the memory store can still answer if Redis
** fails. */
typedef struct Op {
    OpArgs a;
    int kind;
    char data[];
} Op;

/* The ttl_ms of a set refused for its size: only its UNLINK is sent (see
** issue()). Real TTLs stay below 9e15 ms. */
#define TTL_TOO_BIG UINT64_MAX

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

/* The store is empty in MODE_REDIS: nothing to sweep there. */
static void set_mode(Engine *e, Mode mode)
{
    if (mode == MODE_REDIS && e->mode != MODE_REDIS)
        uv_timer_stop(&e->sweep_timer);
    else if (mode != MODE_REDIS && e->mode == MODE_REDIS)
        uv_timer_start(&e->sweep_timer, on_sweep, ENGINE_SWEEP_INTERVAL_MS,
                       ENGINE_SWEEP_INTERVAL_MS);
    e->mode = mode;
}

static void on_handle_closed(uv_handle_t *h)
{
    Engine *e = h->data;
    if (--e->open_handles == 0) {
        free(e->clear_all);
        free(e->probe_key);
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

/* What a server's error text means: a demoted primary (READONLY), a
** missing ACL permission (NOPERM), or any other refusal. */
static int error_status(const char *text)
{
    if (strncmp(text, "READONLY", 8) == 0)
        return CR_EREADONLY;
    if (strncmp(text, "NOPERM", 6) == 0)
        return CR_ENOPERM;
    return CR_EREPLY;
}

static int reply_status(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR ? error_status(reply->str)
                                            : CR_EPROTO;
}

static const char *reply_text(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR ? reply->str : NULL;
}

/* Warns once per outage (`logged` says whether this one was), and at
** most once per ENGINE_LOG_INTERVAL_MS: a flapping server must not flood
** the log. The next warning counts those held back; "back" is said only
** after a warning that went out. */
static void warn_outage(Engine *e, bool *logged, const char *what,
                        const char *then)
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
static void lose_redis(Engine *e, int code, const char *msg)
{
    if (e->quiet)
        return;
    set_last_error(e, code, msg);
    if (e->mode == MODE_REDIS) {
        set_mode(e, MODE_MEMORY);
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

static void schedule_retry(Engine *e, int code)
{
    e->retry_readonly = code == CR_EREADONLY;
    uv_timer_start(&e->retry_timer, on_retry, POOL_BACKOFF_MAX_MS, 0);
}

/* Redis answers but refused something this manager needs (a demoted
** primary, a missing permission): stop using it so nothing it still holds
** is served, and try again later. A read-only server gets new connections
** (a DNS name or proxy may lead to the new primary); otherwise the backend
** stays up, so a timer brings the next attempt. */
static void distrust_redis(Engine *e, int code, const char *msg)
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

static Op *op_new(const OpArgs *a, int kind)
{
    Op *op = malloc(sizeof(*op) + a->klen + a->vlen);
    if (op == NULL)
        return NULL;
    op->a = *a;
    op->kind = kind;
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
        r.err = a->e->last_error;
    a->done(a->ud, &r);
}

/* A set refused (by Redis, or for its size: ttl_ms TTL_TOO_BIG), finished
** on the memory store: the key is forgotten there (and journaled, so
** Redis forgets it too), and the set fails. */
static void memory_refused_set(const OpArgs *a)
{
    EngineResult r = {0};
    engine_delete(a->e, a->key, a->klen);
    r.status = a->ttl_ms == TTL_TOO_BIG ? CR_EVALUETOOBIG : CR_EREPLY;
    r.err = a->e->last_error;
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

static bool too_big(const Op *op)
{
    return op->kind == OP_SET && op->a.ttl_ms == TTL_TOO_BIG;
}

static void memory_op(const Op *op)
{
    if (too_big(op))
        memory_refused_set(&op->a);
    else
        memory_of[op->kind](&op->a);
}

/* The operation could not even be queued (out of memory, too large): it
** fails, and nothing is switched, since Redis itself is fine. */
static void fail_op(const OpArgs *a, int code)
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

/* -- Redis calls ---------------------------------------------------------- */

/* While the journal is replayed the memory store answers reads, so a write
** sent to Redis then is made there too (not journaled: Redis has it), and
** this process reads its own writes until the switch empties the store. A
** replayed UNLINK may remove such a value from Redis afterwards: a miss,
** never an old value. */
static void mirror_to_memory(Engine *e, const Op *op)
{
    const OpArgs *a = &op->a;
    uint64_t now = engine_now_ms();
    if (op->kind == OP_SET && !too_big(op))
        store_set(e->store, a->key, a->klen, a->val, a->vlen,
                  a->ttl_ms == 0 ? 0 : now + a->ttl_ms, now);
    else if (op->kind == OP_CLEAR)
        store_clear(e->store, a->key, a->klen, now);
    else
        store_delete(e->store, a->key, a->klen, now);
}

/* Runs `a`: on the memory store in MODE_MEMORY (and reads in
** MODE_RECOVERING), returning 0 after `done` ran; else on Redis (writes in
** MODE_RECOVERING on the memory store too, see mirror_to_memory),
** returning 1 when `done` will run later. Nothing waits for a replay. */
static int run_op(const OpArgs *a, int kind)
{
    Engine *e = a->e;
    if (e->mode == MODE_MEMORY ||
        (e->mode == MODE_RECOVERING && (kind == OP_GET || kind == OP_EXISTS))) {
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
    if (e->mode == MODE_RECOVERING)
        mirror_to_memory(e, op);
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

/* Redis refused an invalidating command (UNLINK, SCAN, the UNLINK after a
** refused SET): the old value may still be there, so the manager stops
** using Redis; `memory` completes the call on the memory store, which
** journals it for the next replay. */
static void invalidation_refused(Op *op, const redisReply *reply,
                                 memory_fn memory)
{
    Engine *e = op->a.e;
    int code = reply_status(reply);
    count_error(e, code, reply_text(reply));
    distrust_redis(e, code, reply_text(reply));
    if (e->mode == MODE_REDIS) { /* quiet: closing */
        EngineResult r = {0};
        op->a.done(op->a.ud, &r);
    } else {
        memory(&op->a);
    }
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
            count_error(e, reply_status(reply), reply_text(reply));
    }
    complete(op, &r);
}

/* The UNLINK sent after a refused SET answered: only now is the old value
** gone, so only now does the set report its failure. */
static void on_refused_set_unlinked(void *ud, int status,
                                    const redisReply *reply)
{
    Op *op = ud;
    if (status != CR_OK) { /* lost: the memory store forgets the key */
        transport_failed(op, status, memory_refused_set);
        return;
    }
    if (reply->type != REDIS_REPLY_INTEGER) {
        invalidation_refused(op, reply, memory_refused_set);
        return;
    }
    EngineResult r = {0};
    r.status = too_big(op) ? CR_EVALUETOOBIG : CR_EREPLY;
    r.err = op->a.e->last_error;
    complete(op, &r);
}

static void unlink_refused_set(Op *op)
{
    Engine *e = op->a.e;
    const char *argv[] = {"UNLINK", op->a.key};
    size_t lens[] = {6, op->a.klen};
    int rc =
        backend_command(e->backend, 2, argv, lens, on_refused_set_unlinked, op);
    if (rc == CR_ECONNRESET) {
        transport_failed(op, rc, memory_refused_set);
    } else if (rc != CR_OK) { /* out of memory: the old value may stay */
        EngineResult r = {0};
        r.status = rc;
        r.err = e->last_error;
        complete(op, &r);
    }
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
        int code = reply_status(reply);
        count_error(e, code, reply->str);
        if (code == CR_EREADONLY) { /* demoted: the memory store takes it */
            distrust_redis(e, code, reply->str);
            if (e->mode != MODE_REDIS) {
                memory_set(&op->a);
                free(op);
                return;
            }
        }
        /* Redis refused the value (maxmemory, ...): drop the old one so it
        ** is not served as if the set had worked, then report. */
        unlink_refused_set(op);
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
        r.count = (uint64_t)reply->integer;
        if (is_delete)
            e->stats.deletes += (uint64_t)reply->integer;
    } else if (is_delete) {
        invalidation_refused(op, reply, memory);
        return;
    } else {
        count_error(e, reply_status(reply), reply_text(reply));
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

/* A clear of a pattern that matches one key only: its UNLINK. */
static void on_clear_literal(void *ud, int status, const redisReply *reply)
{
    on_integer(ud, status, reply, memory_clear, true);
}

static void on_cleared(void *ud, int status, uint64_t removed, const char *err)
{
    Op *op = ud;
    Engine *e = op->a.e;
    EngineResult r = {0};
    e->stats.deletes += removed;
    r.count = removed;
    if (status == CR_EREPLY) {
        /* Refused midway: what is left may be served no more. */
        int code = error_status(err != NULL ? err : "");
        count_error(e, code, err);
        distrust_redis(e, code, err);
        if (e->mode != MODE_REDIS)
            r.count += engine_clear(e, op->a.key, op->a.klen);
    } else if (status == CR_EPROTO) {
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

/* A clear of `op`: one UNLINK when its pattern matches one string only,
** else the SCAN + UNLINK loop. */
static int issue_clear(Op *op)
{
    const OpArgs *a = &op->a;
    char *key = malloc(a->klen + 1);
    if (key == NULL)
        return CR_ENOMEM;
    bool whole;
    size_t klen = globmatch_prefix(a->key, a->klen, key, &whole);
    int rc;
    if (whole) {
        const char *argv[] = {"UNLINK", key};
        size_t lens[] = {6, klen};
        rc =
            backend_command(a->e->backend, 2, argv, lens, on_clear_literal, op);
    } else {
        rc = clearscan_start(a->e->backend, &a->key, &a->klen, 1, on_cleared,
                             op);
    }
    free(key);
    return rc;
}

/* Sends `op` to Redis. Returns 1, or 0 after completing it: on the memory
** store when the backend is down (the engine switches), as a failure when
** the command could not be queued. A set refused for its size sends only
** the UNLINK of the old value, then fails. */
static int issue(Op *op)
{
    const OpArgs *a = &op->a;
    Engine *e = a->e;
    static const char *const names[] = {"GET", "SET", "UNLINK", "EXISTS"};
    static const pool_reply_cb callbacks[] = {on_get, on_set, on_delete,
                                              on_exists};
    int rc;
    if (too_big(op)) {
        unlink_refused_set(op);
        return 1;
    }
    if (op->kind == OP_CLEAR) {
        rc = issue_clear(op);
    } else {
        char px[32];
        snprintf(px, sizeof(px), "%llu", (unsigned long long)a->ttl_ms);
        const char *argv[] = {names[op->kind], a->key, a->val, "PX", px};
        size_t lens[] = {strlen(names[op->kind]), a->klen, a->vlen, 2,
                         strlen(px)};
        int argc = op->kind != OP_SET ? 2 : a->ttl_ms > 0 ? 5 : 3;
        rc = backend_command(e->backend, argc, argv, lens, callbacks[op->kind],
                             op);
    }
    if (rc == CR_OK)
        return 1;
    if (rc == CR_ECONNRESET) { /* the backend is down: its state says so */
        e->stats.errors++;
        lose_redis(e, rc, NULL);
        memory_op(op);
    } else {
        fail_op(a, rc);
    }
    free(op);
    return 0;
}

/* -- Recovery: probe, then replay the journal as invalidation ------------- */

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

static void replay_failed(Engine *e, int status)
{
    journal_restore(e->journal, &e->batch);
    set_mode(e, MODE_MEMORY);
    if (!e->quiet) {
        const char *what = e->replay_err[0] ? e->replay_err : NULL;
        count_error(e, status, what);
        warn_outage(e, &e->refusal_logged, "redis cannot be used yet",
                    "serving from the memory store, retrying in the "
                    "background");
        if (e->backend != NULL && backend_ready(e->backend))
            /* The server said no, or memory ran out: the backend stays up,
            ** so nothing else would trigger another attempt. */
            schedule_retry(e, status);
    }
    finish_connect(e, false);
}

static void finish_flush(Engine *e, bool flushed);

static void switch_to_redis(Engine *e)
{
    set_mode(e, MODE_REDIS);
    /* What it holds was written during the outage: Redis has newer. */
    store_clear(e->store, "*", 1, engine_now_ms());
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

/* Records the first failure of a round, with the server's text. */
static void note_failure(Engine *e, int status, const char *text)
{
    if (e->replay_status != CR_OK)
        return;
    e->replay_status = status;
    snprintf(e->replay_err, sizeof(e->replay_err), "%s",
             text != NULL ? text : "");
}

static void replay_keys(Engine *e);

/* One round is over: another when something was journaled meanwhile (a
** transport failure the replay did not see), else the switch. */
static void round_done(Engine *e)
{
    if (e->batch.overflow || e->batch.nkeys > 0 || e->batch.npatterns > 0)
        log_msg(&e->log, LOG_INFO,
                "outage journal replayed: %s%zu keys and %zu patterns "
                "invalidated in %llu ms",
                e->batch.overflow ? "the namespace cleared (overflow), " : "",
                e->batch.nkeys, e->batch.npatterns,
                (unsigned long long)(engine_now_ms() - e->round_started_ms));
    journal_batch_free(&e->batch);
    if (!journal_empty(e->journal)) {
        start_recovery(e);
        return;
    }
    switch_to_redis(e);
}

/* NOPERM comes in two kinds: "no permissions to run the 'x' command"
** (the ACL user lacks a command) and one about the keys (an ACL key
** pattern). True for the first. */
static bool command_refused(const char *text)
{
    return error_status(text) == CR_ENOPERM && strstr(text, "to run") != NULL;
}

/* A reply refusing a key, not the command: an ACL key pattern. */
static bool key_refusal(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR &&
           error_status(reply->str) == CR_ENOPERM &&
           !command_refused(reply->str);
}

static void on_keys_unlinked(void *ud, int status, const redisReply *reply)
{
    Engine *e = ud;
    e->in_flight--;
    if (status != CR_OK) {
        note_failure(e, status, NULL);
    } else if (key_refusal(reply)) {
        /* One key may not be ours to delete: find it by unlinking one by
        ** one, then drop it (counted and logged) rather than stay off
        ** Redis for good. */
        if (e->unlink_batch > 1) {
            e->key_refused = true;
        } else {
            e->keys_dropped++;
            snprintf(e->dropped_err, sizeof(e->dropped_err), "%s", reply->str);
        }
    } else if (reply->type != REDIS_REPLY_INTEGER) {
        note_failure(e, reply_status(reply), reply_text(reply));
    }
    if (e->quiet && e->in_flight == 0 && e->mode == MODE_RECOVERING) {
        replay_failed(e, CR_ECONNRESET);
        return;
    }
    replay_keys(e);
}

/* UNLINKs every journaled key, ENGINE_UNLINK_BATCH per command, a bounded
** number of commands at a time. */
static void replay_keys(Engine *e)
{
    if (e->replay_status != CR_OK) {
        if (e->in_flight == 0)
            replay_failed(e, e->replay_status);
        return;
    }
    while (e->in_flight < ENGINE_REPLAY_IN_FLIGHT / ENGINE_UNLINK_BATCH &&
           e->next_key < e->batch.nkeys) {
        const char *argv[ENGINE_UNLINK_BATCH + 1];
        size_t lens[ENGINE_UNLINK_BATCH + 1];
        int argc = 1;
        argv[0] = "UNLINK";
        lens[0] = 6;
        while (argc <= (int)e->unlink_batch && e->next_key < e->batch.nkeys) {
            argv[argc] = e->batch.keys[e->next_key];
            lens[argc++] = e->batch.klens[e->next_key++];
        }
        int rc =
            backend_command(e->backend, argc, argv, lens, on_keys_unlinked, e);
        if (rc != CR_OK) {
            e->replay_status = rc;
            break;
        }
        e->in_flight++;
    }
    if (e->in_flight > 0)
        return;
    if (e->replay_status != CR_OK) {
        replay_failed(e, e->replay_status);
        return;
    }
    if (e->key_refused) { /* again, one key per UNLINK */
        e->key_refused = false;
        e->unlink_batch = 1;
        e->next_key = 0;
        replay_keys(e);
        return;
    }
    if (e->keys_dropped > 0) {
        e->stats.errors++;
        set_last_error(e, CR_ENOPERM, e->dropped_err);
        log_msg(&e->log, LOG_WARN,
                "%zu keys of the outage journal could not be invalidated "
                "(%s): other processes may read their old values",
                e->keys_dropped, e->dropped_err);
    }
    round_done(e);
}

static void on_patterns_cleared(void *ud, int status, uint64_t removed,
                                const char *err)
{
    Engine *e = ud;
    (void)removed;
    if (status != CR_OK) {
        note_failure(e, err != NULL ? error_status(err) : status, err);
        replay_failed(e, e->replay_status);
        return;
    }
    replay_keys(e);
}

/* Takes the journal and replays it: after an overflow, everything in the
** namespace; else every pattern in one SCAN pass, then the keys. */
static void replay_journal(Engine *e)
{
    journal_take(e->journal, &e->batch);
    e->next_key = 0;
    int rc = CR_OK;
    if (e->batch.overflow) {
        e->stats.journal_overflows++;
        const char *all = e->clear_all;
        rc = clearscan_start(e->backend, &all, &e->clear_all_len, 1,
                             on_patterns_cleared, e);
    } else if (e->batch.npatterns > 0) {
        rc = clearscan_start(e->backend, (const char *const *)e->batch.patterns,
                             e->batch.plens, e->batch.npatterns,
                             on_patterns_cleared, e);
    } else {
        replay_keys(e);
        return;
    }
    if (rc != CR_OK) {
        e->replay_status = rc;
        replay_failed(e, rc);
    }
}

/* The probe's commands, each harmless on the probe key: SET ... XX writes
** nothing where the key is absent, but a replica still refuses it. */
static const char *const probe_cmds[][7] = {
    {"GET", NULL},
    {"EXISTS", NULL},
    {"SET", NULL, "", "XX", "PX", "1"},
    {"UNLINK", NULL},
    {"SCAN", "0", "MATCH", NULL, "COUNT", "1"},
};
static const int probe_argc[] = {2, 2, 6, 2, 6};

static void on_probed(void *ud, int status, const redisReply *reply)
{
    Engine *e = ud;
    e->in_flight--;
    if (status != CR_OK) {
        note_failure(e, status, NULL);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        /* Only a replica or a command the ACL user may not run stops the
        ** recovery: the probe key itself is not ours to judge (a key
        ** pattern in the ACL, an OOM refusal of SET are fine). */
        int code = error_status(reply->str);
        if (code == CR_EREADONLY || command_refused(reply->str))
            note_failure(e, code, reply->str);
    }
    if (e->in_flight > 0)
        return;
    if (e->quiet && e->mode == MODE_RECOVERING) {
        replay_failed(e, CR_ECONNRESET);
        return;
    }
    if (e->replay_status != CR_OK) {
        replay_failed(e, e->replay_status);
        return;
    }
    replay_journal(e);
}

static void start_recovery(Engine *e)
{
    uv_timer_stop(&e->retry_timer);
    set_mode(e, MODE_RECOVERING);
    memset(&e->batch, 0, sizeof(e->batch));
    e->next_key = 0;
    e->in_flight = 0;
    e->replay_status = CR_OK;
    e->replay_err[0] = '\0';
    e->round_started_ms = engine_now_ms();
    e->unlink_batch = ENGINE_UNLINK_BATCH;
    e->key_refused = false;
    e->keys_dropped = 0;
    size_t n = sizeof(probe_argc) / sizeof(probe_argc[0]);
    for (size_t i = 0; i < n; i++) {
        const char *argv[7];
        size_t lens[7];
        for (int j = 0; j < probe_argc[i]; j++) {
            argv[j] =
                probe_cmds[i][j] != NULL ? probe_cmds[i][j] : e->probe_key;
            lens[j] =
                probe_cmds[i][j] != NULL ? strlen(argv[j]) : e->probe_klen;
        }
        int rc = backend_command(e->backend, probe_argc[i], argv, lens,
                                 on_probed, e);
        if (rc != CR_OK) {
            e->replay_status = rc;
            break;
        }
        e->in_flight++;
    }
    if (e->in_flight == 0)
        replay_failed(e, e->replay_status);
}

static void on_backend_state(void *ud, int status, const char *message)
{
    Engine *e = ud;
    if (status == CR_OK) {
        e->attempting = false;
        log_msg(&e->log, LOG_INFO, "%s", message);
        if (e->mode == MODE_MEMORY)
            start_recovery(e);
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

/* -- At exit: one last chance for the journal ----------------------------- */

static void finish_flush(Engine *e, bool flushed)
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
}

int engine_flush(Engine *e, const RedisConfig *cfg, uint64_t timeout_ms,
                 engine_flush_cb done, void *ud)
{
    EngineJournalCounts left;
    engine_journal_counts(e, &left);
    bool empty = !left.overflow && left.keys == 0 && left.patterns == 0;
    if (e->mode == MODE_REDIS || (empty && e->mode == MODE_MEMORY)) {
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
        e->backend = backend_new(e->loop, cfg, on_backend_state, e);
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
    e->journal = journal_new(cfg->journal_max_keys ? cfg->journal_max_keys
                                                   : ENGINE_JOURNAL_MAX_KEYS,
                             ENGINE_JOURNAL_MAX_PATTERNS);
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
    e->sweep_timer.data = e;
    e->retry_timer.data = e;
    e->flush_timer.data = e;
    e->open_handles = 3;
    e->log = cfg->log;
    uv_timer_start(&e->sweep_timer, on_sweep, ENGINE_SWEEP_INTERVAL_MS,
                   ENGINE_SWEEP_INTERVAL_MS);
    uv_unref((uv_handle_t *)&e->sweep_timer);
    uv_unref((uv_handle_t *)&e->retry_timer);
    return e;
}

void engine_close(Engine *e)
{
    finish_flush(e, false);
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
    uv_timer_stop(&e->flush_timer);
    uv_close((uv_handle_t *)&e->flush_timer, on_handle_closed);
    uv_close((uv_handle_t *)&e->sweep_timer, on_handle_closed);
    uv_close((uv_handle_t *)&e->retry_timer, on_handle_closed);
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
        e->backend = backend_new(e->loop, cfg, on_backend_state, e);
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
    /* A pattern that matches one string is journaled as that key: its
    ** replay is an UNLINK, not a pass over the keyspace. */
    char small[256];
    char *key = plen <= sizeof(small) ? small : malloc(plen);
    bool whole = false;
    size_t klen =
        key != NULL ? globmatch_prefix(pattern, plen, key, &whole) : 0;
    if (whole)
        journal_key(e->journal, key, klen);
    else
        journal_pattern(e->journal, pattern, plen);
    if (key != small)
        free(key);
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
