/*
** tracking.c -- the subscriber connection of tracking.h.
**
** Its life: CLIENT ID, then (BCAST) CLIENT TRACKING on REDIRECT <itself>
** BCAST PREFIX <prefix>, then SUBSCRIBE __redis__:invalidate; once the
** subscription is confirmed the owner hears the id. A PING every
** TRACKING_PING_MS keeps the server's silence bounded by the connection's
** command timeout (a subscriber cut off without a reset would otherwise
** look healthy forever). Any failure closes it; while the pool wants it,
** a new one follows after a backoff.
*/
#include "tracking.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "status.h"

#define INVALIDATE_CHANNEL "__redis__:invalidate"

static void connect_sub(Tracker *t);

void tracker_event(Tracker *t, TrackEvent ev, const redisReply *keys,
                   const char *message)
{
    if (t->cfg.on_event != NULL)
        t->cfg.on_event(t->cfg.ud, ev, keys, message);
}

static void on_pong(void *ud, int status, const redisReply *r)
{
    (void)ud, (void)status, (void)r; /* a silent server fails the conn */
}

static void on_timer(uv_timer_t *h)
{
    /* the timer's data is the owner's (its close callback wants that) */
    Tracker *t = (Tracker *)(void *)((char *)h - offsetof(Tracker, timer));
    if (t->sub == NULL) {
        if (t->running && !t->refused)
            connect_sub(t);
        return;
    }
    if (!t->subscribed)
        return;
    RedisCmd ping;
    cmd_ping(&ping);
    if (conn_command(t->sub, ping.argc, ping.argv, ping.lens, on_pong, t) ==
        CR_OK)
        conn_flush(t->sub);
}

/* Closes the subscriber; the owner hears of a lost id; a retry follows
** while the pool wants one. */
static void lose_sub(Tracker *t)
{
    Conn *c = t->sub;
    bool had = t->subscribed;
    t->sub = NULL;
    t->id = 0;
    t->subscribed = false;
    uv_timer_stop(&t->timer);
    if (c != NULL)
        conn_close(c);
    if (t->running && !t->refused) {
        uv_timer_start(&t->timer, on_timer, backoff_next(&t->backoff), 0);
        uv_unref((uv_handle_t *)&t->timer);
    }
    if (had)
        t->on_id(t->owner, 0);
}

/* The server said no to a step of the set-up: tracking stays off. */
static void refuse(Tracker *t, const redisReply *r, const char *what)
{
    char msg[CONN_ERRSTR_SIZE];
    snprintf(msg, sizeof(msg), "%s refused: %.*s", what,
             r != NULL && r->type == REDIS_REPLY_ERROR ? (int)r->len : 14,
             r != NULL && r->type == REDIS_REPLY_ERROR ? r->str
                                                       : "unexpected reply");
    t->refused = true;
    lose_sub(t);
    tracker_event(t, TRACK_REFUSED, NULL, msg);
}

static void on_push(void *ud, const redisReply *r)
{
    Tracker *t = ud;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[1]->len != strlen(INVALIDATE_CHANNEL) ||
        memcmp(r->element[1]->str, INVALIDATE_CHANNEL, r->element[1]->len) != 0)
        return;
    const redisReply *keys = r->element[2];
    if (keys->type == REDIS_REPLY_ARRAY)
        tracker_event(t, TRACK_KEYS, keys, NULL);
    else /* a null: FLUSHDB / FLUSHALL */
        tracker_event(t, TRACK_FLUSHED, NULL, NULL);
}

static void on_subscribed(void *ud, int status, const redisReply *r)
{
    Tracker *t = ud;
    if (status != CR_OK || t->sub == NULL)
        return;
    if (r->type != REDIS_REPLY_ARRAY) {
        refuse(t, r, "SUBSCRIBE " INVALIDATE_CHANNEL);
        return;
    }
    backoff_reset(&t->backoff);
    t->subscribed = true;
    uv_timer_start(&t->timer, on_timer, TRACKING_PING_MS, TRACKING_PING_MS);
    uv_unref((uv_handle_t *)&t->timer);
    t->on_id(t->owner, t->id);
}

static void on_self_tracking(void *ud, int status, const redisReply *r)
{
    Tracker *t = ud;
    if (status == CR_OK && t->sub != NULL && r->type == REDIS_REPLY_ERROR)
        refuse(t, r, "CLIENT TRACKING");
}

static void on_client_id(void *ud, int status, const redisReply *r)
{
    Tracker *t = ud;
    if (status != CR_OK || t->sub == NULL)
        return;
    if (r->type != REDIS_REPLY_INTEGER || r->integer <= 0) {
        refuse(t, r, "CLIENT ID");
        return;
    }
    t->id = r->integer; /* not told to the owner before SUBSCRIBE's answer */
    static const char *const channels[] = {INVALIDATE_CHANNEL};
    RedisCmd track, sub;
    cmd_tracking(&track, t->id, t->cfg.prefix, t->cfg.prefix_len);
    cmd_subscribe(&sub, channels, 1);
    if ((tracker_bcast(t) &&
         conn_command(t->sub, track.argc, track.argv, track.lens,
                      on_self_tracking, t) != CR_OK) ||
        conn_command(t->sub, sub.argc, sub.argv, sub.lens, on_subscribed, t) !=
            CR_OK) {
        lose_sub(t);
        return;
    }
    conn_flush(t->sub);
}

static void on_sub_state(void *ud, Conn *c, int status, const char *message)
{
    Tracker *t = ud;
    (void)message;
    if (status != CR_OK && c == t->sub)
        lose_sub(t);
}

static void connect_sub(Tracker *t)
{
    ConnConfig cfg = *t->conn_cfg;
    cfg.background = true;
    RedisCmd id;
    cmd_client_id(&id);
    t->id = 0;
    t->sub = conn_new(t->loop, &cfg, on_sub_state, t);
    if (t->sub != NULL) {
        conn_set_push_handler(t->sub, on_push, t);
        if (conn_command(t->sub, id.argc, id.argv, id.lens, on_client_id, t) ==
            CR_OK)
            return;
    }
    lose_sub(t); /* out of memory: later */
}

void tracker_init(Tracker *t, uv_loop_t *loop, const TrackingConfig *cfg,
                  const ConnConfig *conn_cfg, tracker_id_cb on_id, void *owner)
{
    memset(t, 0, sizeof(*t));
    t->cfg = *cfg;
    t->loop = loop;
    t->conn_cfg = conn_cfg;
    t->on_id = on_id;
    t->owner = owner;
    backoff_init(&t->backoff, uv_hrtime() ^ (uint64_t)(uintptr_t)t);
    uv_timer_init(loop, &t->timer);
    t->timer.data = owner;
    uv_unref((uv_handle_t *)&t->timer);
}

void tracker_start(Tracker *t)
{
    if (!t->cfg.enabled || t->refused)
        return;
    t->running = true;
    if (t->sub == NULL) {
        uv_timer_stop(&t->timer);
        connect_sub(t);
    }
}

void tracker_stop(Tracker *t)
{
    t->running = false;
    uv_timer_stop(&t->timer);
    Conn *c = t->sub;
    t->sub = NULL;
    t->id = 0;
    t->subscribed = false;
    if (c != NULL)
        conn_close(c);
}

void tracker_close(Tracker *t, uv_close_cb closed)
{
    tracker_stop(t);
    uv_close((uv_handle_t *)&t->timer, closed);
}
