/*
** redis_ops.c -- a manager's get/set/delete/exists/clear on the backend,
** and their replies.
**
** Every reply is one of three things: an answer (counted, returned), a
** transport failure (the engine switches to the memory store, which
** completes the call: transport_failed), or a refusal. A refused delete or
** clear leaves the old value in Redis, so the engine stops trusting it and
** the memory store completes and journals the call (invalidation_refused);
** a refused set first UNLINKs the old value, so it is not served as if
** the set had worked.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clearscan.h"
#include "commands.h"
#include "engine_impl.h"
#include "globmatch.h"
#include "slot.h"
#include "status.h"

#define CLEAR_MAX_PASSES 2 /* extra SCAN passes after the map changed */

Op *op_new(const OpArgs *a, int kind)
{
    size_t size = sizeof(Op) + a->klen + a->vlen;
    bool lent = a->room != NULL && a->room_size >= size;
    Op *op = lent ? a->room : malloc(size);
    if (op == NULL)
        return NULL;
    op->lent = lent;
    op->a = *a;
    op->kind = kind;
    op->epoch = 0;
    op->passes = 0;
    op->cleared = 0;
    memcpy(op->data, a->key, a->klen);
    op->a.key = op->data;
    if (a->vlen > 0)
        memcpy(op->data + a->klen, a->val, a->vlen);
    op->a.val = op->data + a->klen;
    return op;
}

void op_free(Op *op)
{
    if (!op->lent)
        free(op);
}

/* Redis failed under `op`: on a Cluster only the slots failing with its
** key go to memory (outage.c); else the whole manager does. */
static void lose(Engine *e, const Op *op, int status)
{
    if (!outages_possible(e)) {
        lose_redis(e, status, NULL);
        return;
    }
    set_last_error(e, status, NULL);
    if (op->kind != OP_CLEAR) {
        outage_begin(e, false, slot_of(op->a.key, op->a.klen), status);
        return;
    }
    /* a scan's lost nodes are outages already; a clear of one key: its
    ** UNLINK failed */
    char *key = malloc(op->a.klen + 1);
    bool whole = false;
    size_t klen =
        key != NULL ? globmatch_prefix(op->a.key, op->a.klen, key, &whole) : 0;
    if (whole)
        outage_begin(e, false, slot_of(key, klen), status);
    else if (key == NULL)
        lose_redis(e, CR_ENOMEM, NULL);
    free(key);
}

/* The transport failed under `op`: count it, switch, answer from memory. */
static void transport_failed(Op *op, int status, memory_fn memory)
{
    Engine *e = op->a.e;
    if (!e->quiet)
        e->stats.errors++;
    lose(e, op, status);
    memory(&op->a);
    op_free(op);
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
    op_free(op);
}

static void complete(Op *op, const EngineResult *r)
{
    op->a.done(op->a.ud, r);
    op_free(op);
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
        r.reply = reply;
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
    RedisCmd cmd;
    cmd_unlink(&cmd, op->a.key, op->a.klen);
    int rc = backend_command(e->backend, cmd.argc, cmd.argv, cmd.lens,
                             on_refused_set_unlinked, op);
    if (rc == CR_ECONNRESET || rc == CR_ECLUSTERDOWN) {
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
                op_free(op);
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

static void on_pttl(void *ud, int status, const redisReply *reply)
{
    Op *op = ud;
    if (status != CR_OK) {
        transport_failed(op, status, memory_pttl);
        return;
    }
    EngineResult r = {0};
    r.ttl_ms = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -2;
    complete(op, &r);
}

/* The lock's SET NX PX (+OK when taken, nil when another holds it) or
** its release, a compare-and-delete (1 when it was ours and is gone). A
** refused lock (OOM, an ACL) counts as taken: the caller computes rather
** than wait for a value nobody computes. */
static void on_lock_reply(void *ud, int status, const redisReply *reply)
{
    Op *op = ud;
    if (status != CR_OK) {
        transport_failed(op, status, memory_lock);
        return;
    }
    EngineResult r = {0};
    if (reply->type == REDIS_REPLY_ERROR) {
        count_error(op->a.e, reply_status(reply), reply_text(reply));
        r.found = op->kind == OP_LOCK;
    } else if (op->kind == OP_LOCK) {
        r.found = reply->type != REDIS_REPLY_NIL;
    } else {
        r.found = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
    }
    complete(op, &r);
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
    op->cleared += removed;
    if (status == CR_OK && !e->quiet && e->backend != NULL &&
        backend_map_epoch(e->backend) != op->epoch &&
        op->passes < CLEAR_MAX_PASSES) {
        /* Slots changed owner meanwhile (a failover, resharding): a node
        ** scanned before it took slots over was not scanned for them.
        ** Once more, on the new map. */
        op->passes++;
        op->epoch = backend_map_epoch(e->backend);
        if (clearscan_start(e->backend, &op->a.key, &op->a.klen, 1,
                            outage_clear_hooks(e), on_cleared, op) == CR_OK)
            return;
    }
    r.count = op->cleared;
    if (e->noutages > 0 && e->mode == MODE_REDIS && status == CR_OK)
        /* A Cluster's slots on memory: the clear is theirs too. */
        r.count += engine_clear(e, op->a.key, op->a.klen);
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
        RedisCmd cmd;
        cmd_unlink(&cmd, key, klen);
        rc = backend_command(a->e->backend, cmd.argc, cmd.argv, cmd.lens,
                             on_clear_literal, op);
    } else {
        op->epoch = backend_map_epoch(a->e->backend);
        rc = clearscan_start(a->e->backend, &a->key, &a->klen, 1,
                             outage_clear_hooks(a->e), on_cleared, op);
    }
    free(key);
    return rc;
}

/* Sends `op` to Redis. Returns 1, or 0 after completing it: on the memory
** store when the backend is down (the engine switches), as a failure when
** the command could not be queued. A set refused for its size sends only
** the UNLINK of the old value, then fails. */
int issue(Op *op)
{
    const OpArgs *a = &op->a;
    Engine *e = a->e;
    static const pool_reply_cb callbacks[] = {
        [OP_GET] = on_get,           [OP_SET] = on_set,
        [OP_DELETE] = on_delete,     [OP_EXISTS] = on_exists,
        [OP_PTTL] = on_pttl,         [OP_LOCK] = on_lock_reply,
        [OP_UNLOCK] = on_lock_reply,
    };
    int rc;
    if (too_big(op)) {
        unlink_refused_set(op);
        return 1;
    }
    if (op->kind == OP_CLEAR) {
        rc = issue_clear(op);
    } else {
        RedisCmd cmd;
        if (op->kind == OP_GET)
            cmd_get(&cmd, a->key, a->klen);
        else if (op->kind == OP_SET)
            cmd_set(&cmd, a->key, a->klen, a->val, a->vlen, a->ttl_ms);
        else if (op->kind == OP_DELETE)
            cmd_unlink(&cmd, a->key, a->klen);
        else if (op->kind == OP_PTTL)
            cmd_pttl(&cmd, a->key, a->klen);
        else if (op->kind == OP_LOCK)
            cmd_lock(&cmd, a->key, a->klen, a->val, a->vlen, a->ttl_ms);
        else if (op->kind == OP_UNLOCK)
            cmd_unlock(&cmd, a->key, a->klen, a->val, a->vlen);
        else
            cmd_exists(&cmd, a->key, a->klen);
        rc = backend_command(e->backend, cmd.argc, cmd.argv, cmd.lens,
                             callbacks[op->kind], op);
    }
    if (rc == CR_OK)
        return 1;
    if (rc == CR_ECONNRESET || rc == CR_ECLUSTERDOWN) { /* down: see state */
        e->stats.errors++;
        lose(e, op, rc);
        memory_op(op);
    } else {
        fail_op(a, rc);
    }
    op_free(op);
    return 0;
}
