/*
** tracking.h -- client-side caching over RESP2 for one pool: the
** subscriber connection the server sends invalidations to.
**
** hiredis 0.14 speaks RESP2 only, so invalidations cannot arrive on the
** data connections themselves: one more connection per pool (the
** subscriber) asks CLIENT ID, then SUBSCRIBEs to __redis__:invalidate,
** and the data connections send CLIENT TRACKING on REDIRECT <that id>.
** With a namespace, the subscriber instead registers BCAST PREFIX
** <namespace> redirected to itself before subscribing: every change under
** the prefix is told once, whatever the pool size, and the data
** connections need no tracking (so losing one of them loses nothing).
**
** What the owner (the engine) hears, through TrackingConfig.on_event:
**   TRACK_KEYS   these keys changed (or expired, or were evicted);
**   TRACK_FLUSHED FLUSHDB/FLUSHALL (a null message): everything changed;
**   TRACK_FLUSH  anything may have changed: tracking was lost or is being
**                set up again
**                (the subscriber or, without BCAST, a data connection lost,
**                the pool down, starting or closed);
**   TRACK_READY  tracking covers every command sent from now on;
**   TRACK_REFUSED the server refused CLIENT TRACKING or SUBSCRIBE (an ACL,
**                a server before 6.0): off for this pool, message says why.
** RESP2 tells a tracking client nothing when its redirect target dies
** (TRACKINGINFO shows broken_redirect, nobody is sent anything): the
** subscriber's loss is noticed here (its socket, or no answer to a PING
** sent every TRACKING_PING_MS within the command timeout) and reported as
** TRACK_FLUSH; the subscriber reconnects with backoff and tracking is
** set up again before TRACK_READY.
*/
#ifndef CACHERT_TRACKING_H
#define CACHERT_TRACKING_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "backoff.h"
#include "conn.h"

#define TRACKING_PING_MS 1000

typedef enum TrackEvent {
    TRACK_KEYS,
    TRACK_FLUSHED,
    TRACK_FLUSH,
    TRACK_READY,
    TRACK_REFUSED,
} TrackEvent;

/* `keys`: with TRACK_KEYS, an array of key names (valid during the call);
** `message`: with TRACK_REFUSED, the server's text. Called from loop
** callbacks, and from pool_close(). */
typedef void (*tracking_event_cb)(void *ud, TrackEvent ev,
                                  const redisReply *keys, const char *message);

typedef struct TrackingConfig {
    bool enabled;
    const char *prefix; /* BCAST PREFIX when prefix_len > 0; copied */
    size_t prefix_len;
    tracking_event_cb on_event;
    void *ud;
} TrackingConfig;

/* The subscriber of one pool. Embedded in the pool; the pool says when
** to run (tracker_start while it connects or is ready, tracker_stop when
** it goes down) and hears the subscriber's id (0: lost). */
typedef void (*tracker_id_cb)(void *owner, long long id);

typedef struct Tracker {
    TrackingConfig cfg; /* prefix borrowed from the pool's config copy */
    uv_loop_t *loop;
    const ConnConfig *conn_cfg; /* the pool's, borrowed */
    Conn *sub;
    long long id;     /* the subscriber's CLIENT ID (from its answer on) */
    bool subscribed;  /* SUBSCRIBE confirmed: invalidations reach it */
    bool running;     /* wanted by the pool: reconnect after a loss */
    bool refused;     /* the server said no: never again for this pool */
    uv_timer_t timer; /* PING while subscribed; the retry while not */
    Backoff backoff;
    tracker_id_cb on_id;
    void *owner;
} Tracker;

/* Initialises `t` (its timer is a handle of `loop`: close it with
** tracker_close). cfg->prefix must outlive `t`. */
void tracker_init(Tracker *t, uv_loop_t *loop, const TrackingConfig *cfg,
                  const ConnConfig *conn_cfg, tracker_id_cb on_id, void *owner);

/* Connects the subscriber now (again), unless refused or connected. */
void tracker_start(Tracker *t);

/* Closes the subscriber without a retry; on_id is not called. */
void tracker_stop(Tracker *t);

/* tracker_stop, then closes the timer with `closed` as its close callback
** (the handle's data is the owner). */
void tracker_close(Tracker *t, uv_close_cb closed);

/* Tells the owner's TrackingConfig.on_event. */
void tracker_event(Tracker *t, TrackEvent ev, const redisReply *keys,
                   const char *message);

/* True for BCAST mode (a prefix): the data connections track nothing. */
static inline bool tracker_bcast(const Tracker *t)
{
    return t->cfg.prefix_len > 0;
}

#endif
