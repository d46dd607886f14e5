/*
** recovery.c -- the way back to Redis after an outage (MODE_RECOVERING).
**
** Never writes a remembered value into Redis: other processes may have
** written newer ones meanwhile. First a probe (not a read-only replica,
** the ACL user may run every command cachert sends), then the journal's
** replay as invalidation: all journaled patterns in one SCAN pass (the
** whole namespace after an overflow), then UNLINK of every journaled key,
** ENGINE_UNLINK_BATCH per command; then the switch (engine.c), which drops
** what the memory store held. A key the ACL user may not touch is found
** by unlinking one by one and dropped (counted, logged) rather than
** keeping the manager off Redis for good.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clearscan.h"
#include "commands.h"
#include "engine_impl.h"
#include "slot.h"
#include "status.h"

void replay_failed(Engine *e, int status)
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
        cmd_unlink_head(argv, lens);
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
    /* a Cluster's slots in outages take their share (outage.c) */
    outages_take_batch(e, &e->batch);
    const ClearScanHooks *hooks = outage_replay_hooks(e);
    e->next_key = 0;
    int rc = CR_OK;
    if (e->batch.overflow) {
        e->stats.journal_overflows++;
        const char *all = e->clear_all;
        rc = clearscan_start(e->backend, &all, &e->clear_all_len, 1, hooks,
                             on_patterns_cleared, e);
    } else if (e->batch.npatterns > 0) {
        rc = clearscan_start(e->backend, (const char *const *)e->batch.patterns,
                             e->batch.plens, e->batch.npatterns, hooks,
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

void start_recovery(Engine *e)
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
    /* A Cluster with primaries down: their slots become outages (on memory,
    ** replayed when they answer); the others come back now. */
    if (backend_has_slots(e->backend) && outages_for_unready(e) == SLOT_COUNT) {
        snprintf(e->replay_err, sizeof(e->replay_err),
                 "no primary of the cluster is connected");
        replay_failed(e, CR_ECONNRESET);
        return;
    }
    /* Every command cachert sends, each harmless on the probe key (on a
    ** Cluster, one in a slot that answers): SET ... XX writes nothing
    ** where the key is absent, but a replica still refuses it. */
    RedisCmd probe[5];
    char live[320];
    size_t klen = outage_live_probe(e, live, sizeof(live));
    const char *key = klen > 0 ? live : e->probe_key;
    if (klen == 0)
        klen = e->probe_klen;
    cmd_get(&probe[0], key, klen);
    cmd_exists(&probe[1], key, klen);
    cmd_set_probe(&probe[2], key, klen);
    cmd_unlink(&probe[3], key, klen);
    cmd_scan(&probe[4], "0", "1", key, klen);
    for (size_t i = 0; i < 5; i++) {
        RedisCmd *c = &probe[i];
        int rc = CR_EINVAL;
        if (i < 4)
            rc = backend_command(e->backend, c->argc, c->argv, c->lens,
                                 on_probed, e);
        /* SCAN on the first node that holds slots (a Cluster's seed may be
        ** a replica) */
        for (size_t n = 0;
             i == 4 && rc == CR_EINVAL && n < backend_nodes(e->backend); n++)
            rc = backend_node_command(e->backend, n, c->argc, c->argv, c->lens,
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
