/*
** near.c -- the engine's side of the near cache: what the subscribers
** (tracking.h) report, kept for the Lua side (lua/cache/near.lua), which
** holds the values themselves.
**
** Lua reads EngineNear through the FFI on every near lookup: `seq` moves
** whenever something is waiting to be drained (keys to evict, or a flush),
** so a hit that finds it unchanged costs one load and a compare; `ready`
** says whether a GET sent now is tracked (its reply may be kept). The keys
** wait here as length-prefixed bytes until engine_near_drain(); past
** NEAR_QUEUE_MAX_BYTES they are dropped for a flush.
*/
#include <stdlib.h>
#include <string.h>

#include "engine_impl.h"

#define NEAR_QUEUE_MAX_BYTES (4u << 20)

static void clear_queue(Engine *e)
{
    free(e->nq);
    e->nq = NULL;
    e->nq_len = e->nq_cap = 0;
}

void near_refresh(Engine *e)
{
    bool ready = e->near_on && e->mode == MODE_REDIS && e->noutages == 0 &&
                 e->backend != NULL && backend_tracking_ready(e->backend);
    if (!ready && e->near.ready) {
        /* whatever made it unready may have lost invalidations */
        e->near.ready = 0;
        near_flush(e);
        return;
    }
    e->near.ready = ready ? 1 : 0;
}

void near_flush(Engine *e)
{
    if (!e->near_on)
        return;
    clear_queue(e);
    e->nq_flush = true;
    e->near.seq++;
    near_refresh(e);
}

static bool append_key(Engine *e, const char *key, size_t klen)
{
    size_t need = e->nq_len + sizeof(uint32_t) + klen;
    if (klen > UINT32_MAX || need > NEAR_QUEUE_MAX_BYTES)
        return false;
    if (need > e->nq_cap) {
        size_t cap = e->nq_cap ? e->nq_cap * 2 : 1024;
        while (cap < need)
            cap *= 2;
        char *q = realloc(e->nq, cap);
        if (q == NULL)
            return false;
        e->nq = q;
        e->nq_cap = cap;
    }
    uint32_t len = (uint32_t)klen;
    memcpy(e->nq + e->nq_len, &len, sizeof(len));
    memcpy(e->nq + e->nq_len + sizeof(len), key, klen);
    e->nq_len = need;
    return true;
}

void near_on_event(void *ud, TrackEvent ev, const redisReply *keys,
                   const char *message)
{
    Engine *e = ud;
    switch (ev) {
    case TRACK_KEYS:
        e->stats.invalidations += keys->elements;
        if (e->nq_flush)
            break; /* everything goes anyway */
        for (size_t i = 0; i < keys->elements; i++) {
            const redisReply *k = keys->element[i];
            if (k->type == REDIS_REPLY_STRING &&
                !append_key(e, k->str, k->len)) {
                near_flush(e); /* too many at once: drop them all */
                return;
            }
        }
        e->near.seq++;
        break;
    case TRACK_FLUSHED:
        e->stats.invalidations++;
        near_flush(e);
        break;
    case TRACK_FLUSH:
        near_flush(e);
        break;
    case TRACK_READY:
        near_refresh(e);
        break;
    case TRACK_REFUSED:
        log_msg(&e->log, LOG_WARN, "near cache off: %s", message);
        set_last_error(e, CR_EREPLY, message);
        near_flush(e);
        break;
    }
}

bool engine_near_drain(Engine *e, engine_key_cb cb, void *ud)
{
    bool flush = e->nq_flush;
    e->nq_flush = false;
    if (!flush) {
        for (size_t at = 0; at < e->nq_len;) {
            uint32_t len;
            memcpy(&len, e->nq + at, sizeof(len));
            cb(ud, e->nq + at + sizeof(len), len);
            at += sizeof(len) + len;
        }
    }
    e->nq_len = 0;
    if (e->nq_cap > 64 * 1024)
        clear_queue(e); /* a burst does not pin memory */
    return flush;
}

const EngineNear *engine_near_state(const Engine *e)
{
    return &e->near;
}

void near_free(Engine *e)
{
    clear_queue(e);
}
