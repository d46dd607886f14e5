/*
** pool.c -- N connections, the flush hook, the up/down state machine.
**
** States: IDLE -> CONNECTING -> READY; CONNECTING or READY -> DOWN on any
** connection's failure, which closes every connection; DOWN -> CONNECTING
** when the backoff timer fires; anything -> CLOSED (pool_close). The pool
** becomes READY once all its connections are. pool_command() picks among
** ready connections: the first one with fewer than POOL_SPREAD_DEPTH
** commands pending, else the one with the fewest; O(size) per command at
** worst. Filling one connection up to a few batches keeps the replies of
** several in one read (each connection in use costs a read); past that
** the next connections take the next batches, and a pipeline stuck
** behind a slow command takes no more.
**
** Backoff (backoff.h, seeded from the clock and the pool's address): it
** goes back to POOL_BACKOFF_MIN_MS only when the pool fails after having
** been READY for POOL_HEALTHY_RESET_MS: judged when the failure comes
** (ready_ms), so a healthy pool costs no timer.
**
** Idle close: in READY, a connection the server closed while it was idle
** (conn_idle_closed) is replaced in its slot by a new one, connected in
** the background (ConnConfig.background), and the pool stays READY. Until
** the replacement is ready, commands go to the other ready connections,
** or, when none is, are queued on a replacement (conn_command holds them
** until its handshake is done). The replacement failing is a failure like
** any other: DOWN. A connection closed sooner than POOL_BACKOFF_MIN_MS
** after it became ready is not replaced (DOWN instead), so a server that
** drops every connection at once cannot make the pool reconnect in a
** tight loop.
**
** Pipelining: pool_command() flushes the connection it queued on once
** POOL_WRITE_BATCH commands wait there, and marks the pool dirty; the
** uv_prepare hook runs once per loop turn, just before the loop polls,
** and flushes every connection with output. A connection whose previous
** write is still in flight (conn.h: only when the kernel did not take a
** batch at once) keeps the pool dirty until a later turn.
*/
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "conn.h"
#include "status.h"

enum { POOL_IDLE, POOL_CONNECTING, POOL_READY, POOL_DOWN, POOL_CLOSED };

typedef struct Slot {
    Conn *conn;        /* NULL outside CONNECTING and READY */
    uint64_t ready_ms; /* loop time it became ready */
} Slot;

struct Pool {
    uv_loop_t *loop;
    ConnConfig conn_cfg; /* points at the copies below */
    PoolConfig cfg;      /* a copy (pool_config_copy), freed with the pool */
    TlsContext *tls_ctx; /* NULL: plain, or not loaded yet (see pool.h) */
    size_t size;
    Slot *slots;
    size_t nready; /* connections ready */
    int state;
    pool_state_cb on_state;
    void *ud;

    uv_prepare_t flush_hook;
    uv_timer_t retry_timer;
    int open_handles;
    int in_callback;
    bool dirty; /* some connection may hold unwritten commands */
    Backoff backoff;
    uint64_t ready_ms; /* loop time the pool last became READY */
    uint64_t writes;
    uint64_t replaced;
    Tracker tracker;   /* cfg.tracking: the subscriber (tracking.h) */
    size_t track_acks; /* CLIENT TRACKING commands awaiting their reply */
    bool track_ready;  /* see pool_tracking_ready */
    char errstr[CONN_ERRSTR_SIZE];
};

/* -- Lifetime ----------------------------------------------------------- */

static void free_members(Pool *p)
{
    free(p->slots);
    pool_config_free(&p->cfg);
    tls_context_free(p->tls_ctx);
}

static void maybe_free(Pool *p)
{
    if (p->state != POOL_CLOSED || p->open_handles > 0 || p->in_callback > 0)
        return;
    free_members(p);
    free(p);
}

static void on_closed(uv_handle_t *h)
{
    Pool *p = h->data;
    p->open_handles--;
    maybe_free(p);
}

/* Closes every connection; their pending callbacks run now. A callback may
** call pool_close(), which continues with the slots left. */
static void close_conns(Pool *p)
{
    p->nready = 0;
    for (size_t i = 0; i < p->size; i++) {
        Conn *c = p->slots[i].conn;
        p->slots[i].conn = NULL;
        if (c != NULL)
            conn_close(c);
    }
}

/* -- State machine ------------------------------------------------------ */

static void lose_tracking(Pool *p);

/* Callers schedule the retry unless a callback closed the pool. */
static void go_down(Pool *p, int status, const char *message)
{
    snprintf(p->errstr, sizeof(p->errstr), "%s", message);
    p->state = POOL_DOWN; /* first: callbacks below see a pool that is down */
    p->in_callback++;
    lose_tracking(p);
    close_conns(p);
    if (p->state == POOL_DOWN) /* no pool_close() from a reply callback */
        p->on_state(p->ud, status, p->errstr);
    p->in_callback--;
}

static void on_retry(uv_timer_t *t);

/* -- Tracking (tracking.h) ----------------------------------------------- */

/* Tracking stops covering the pool: the owner flushes what it kept. */
static void lose_tracking(Pool *p)
{
    if (!p->cfg.tracking.enabled)
        return;
    tracker_stop(&p->tracker);
    p->track_ready = false;
    tracker_event(&p->tracker, TRACK_FLUSH, NULL, NULL);
}

static void maybe_tracking_ready(Pool *p)
{
    if (p->track_acks == 0 && p->tracker.subscribed && !p->tracker.refused &&
        !p->track_ready) {
        p->track_ready = true;
        tracker_event(&p->tracker, TRACK_READY, NULL, NULL);
    }
}

static void on_track_ack(void *ud, int status, const redisReply *r)
{
    Pool *p = ud;
    p->track_acks--;
    if (status == CR_OK && r->type == REDIS_REPLY_ERROR &&
        !p->tracker.refused) {
        char msg[CONN_ERRSTR_SIZE];
        snprintf(msg, sizeof(msg), "CLIENT TRACKING refused: %.*s", (int)r->len,
                 r->str);
        p->tracker.refused = true;
        tracker_stop(&p->tracker);
        p->track_ready = false;
        tracker_event(&p->tracker, TRACK_REFUSED, NULL, msg);
        return;
    }
    maybe_tracking_ready(p);
}

/* Queues CLIENT TRACKING on REDIRECT <subscriber> on `c` (without BCAST:
** the data connections track what they read). */
static void track_conn(Pool *p, Conn *c)
{
    if (c == NULL || tracker_bcast(&p->tracker) || !p->tracker.subscribed)
        return;
    RedisCmd cmd;
    cmd_tracking(&cmd, p->tracker.id, NULL, 0);
    if (conn_command(c, cmd.argc, cmd.argv, cmd.lens, on_track_ack, p) ==
        CR_OK) {
        p->track_acks++;
        p->dirty = true;
    }
}

/* The subscriber is subscribed with `id`, or was lost (0). */
static void on_track_id(void *owner, long long id)
{
    Pool *p = owner;
    if (id == 0) {
        p->track_ready = false;
        tracker_event(&p->tracker, TRACK_FLUSH, NULL, NULL);
        return;
    }
    for (size_t i = 0; i < p->size; i++)
        track_conn(p, p->slots[i].conn);
    maybe_tracking_ready(p);
}

static void schedule_retry(Pool *p)
{
    uv_timer_start(&p->retry_timer, on_retry, backoff_next(&p->backoff), 0);
    uv_unref((uv_handle_t *)&p->retry_timer); /* retries run in background */
}

/* The pool failed (a connection, an attempt, or pool_fail): down, and the
** next attempt after the backoff, which starts over only when the pool had
** been READY long enough to call the server healthy. */
static void fail_pool(Pool *p, int status, const char *message)
{
    if (p->state == POOL_READY &&
        uv_now(p->loop) - p->ready_ms >= POOL_HEALTHY_RESET_MS)
        backoff_reset(&p->backoff);
    go_down(p, status, message);
    if (p->state == POOL_DOWN) /* not closed from a callback */
        schedule_retry(p);
}

static void on_conn_state(void *ud, Conn *c, int status, const char *message);

static Slot *slot_of(Pool *p, const Conn *c)
{
    for (size_t i = 0; i < p->size; i++)
        if (p->slots[i].conn == c)
            return &p->slots[i];
    return NULL; /* not reached: only connections in a slot report */
}

/* A connection the server closed while idle: a new one takes its slot,
** quietly (no on_state; it keeps the loop alive only for commands queued
** on it). False when out of memory. */
static bool replace_conn(Pool *p, Slot *s)
{
    ConnConfig cfg = p->conn_cfg;
    cfg.background = true;
    Conn *c = conn_new(p->loop, &cfg, on_conn_state, p);
    if (c == NULL)
        return false;
    Conn *old = s->conn;
    s->conn = c;
    p->nready--;
    p->replaced++;
    conn_close(old); /* nothing pending on it: no callback runs */
    if (p->cfg.tracking.enabled && !tracker_bcast(&p->tracker)) {
        /* what the server tracked for `old` is forgotten */
        tracker_event(&p->tracker, TRACK_FLUSH, NULL, NULL);
        track_conn(p, c); /* before anything else it carries */
    }
    return true;
}

static void on_conn_state(void *ud, Conn *c, int status, const char *message)
{
    Pool *p = ud;
    Slot *s = slot_of(p, c);
    if (status == CR_OK) {
        if (s != NULL)
            s->ready_ms = uv_now(p->loop);
        p->nready++;
        if (p->state == POOL_READY) { /* a replacement */
            p->dirty = true;          /* what it held may wait for a write */
            return;
        }
        if (p->nready < p->size)
            return;
        p->state = POOL_READY;
        p->ready_ms = uv_now(p->loop);
        snprintf(p->errstr, sizeof(p->errstr), "connected to %s:%d",
                 p->cfg.host, p->conn_cfg.port);
        p->in_callback++;
        p->on_state(p->ud, CR_OK, p->errstr);
        p->in_callback--;
        maybe_free(p);
        return;
    }
    if (p->state == POOL_READY && s != NULL && conn_idle_closed(c) &&
        uv_now(p->loop) - s->ready_ms >= POOL_BACKOFF_MIN_MS &&
        replace_conn(p, s))
        return;
    fail_pool(p, status, message);
    maybe_free(p);
}

/* Loads the TLS context if it is not yet (its files may have been fixed
** since the last attempt). False, with the message in errstr, on failure. */
static bool load_tls(Pool *p)
{
    if (!p->cfg.tls.enabled || p->tls_ctx != NULL)
        return true;
    char err[CONN_ERRSTR_SIZE - 8];
    p->tls_ctx = tls_context_new(&p->cfg.tls, err, sizeof(err));
    p->conn_cfg.tls = p->tls_ctx;
    if (p->tls_ctx == NULL)
        snprintf(p->errstr, sizeof(p->errstr), "TLS: %s", err);
    return p->tls_ctx != NULL;
}

static void start_attempt(Pool *p)
{
    p->state = POOL_CONNECTING;
    p->nready = 0;
    if (!load_tls(p)) {
        char msg[CONN_ERRSTR_SIZE];
        snprintf(msg, sizeof(msg), "%s", p->errstr);
        fail_pool(p, CR_ETLS, msg);
        return;
    }
    for (size_t i = 0; i < p->size; i++) {
        p->slots[i].conn = conn_new(p->loop, &p->conn_cfg, on_conn_state, p);
        if (p->slots[i].conn == NULL) {
            fail_pool(p, CR_ENOMEM, cr_strerror(CR_ENOMEM));
            return;
        }
    }
    if (p->cfg.tracking.enabled) {
        p->track_ready = false;
        tracker_event(&p->tracker, TRACK_FLUSH, NULL, NULL); /* not yet */
        tracker_start(&p->tracker);
    }
}

static void on_retry(uv_timer_t *t)
{
    Pool *p = t->data;
    p->in_callback++;
    start_attempt(p);
    p->in_callback--;
    maybe_free(p);
}

static void on_flush(uv_prepare_t *h)
{
    Pool *p = h->data;
    if (!p->dirty)
        return;
    p->dirty = false;
    for (size_t i = 0; i < p->size && p->state == POOL_READY; i++) {
        Conn *c = p->slots[i].conn;
        if (!conn_ready(c))
            continue; /* a replacement writes what it holds once ready */
        if (conn_flush(c))
            p->writes++;
        else if (conn_has_output(c))
            p->dirty = true; /* a write is in flight: next turn */
    }
}

/* -- Public API --------------------------------------------------------- */

static char *copy_string(const char *s, bool *oom)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *oom = true;
    return d;
}

bool pool_config_copy(PoolConfig *dst, const PoolConfig *src)
{
    bool oom = false;
    *dst = *src;
    dst->host = copy_string(src->host, &oom);
    dst->username = copy_string(src->username, &oom);
    dst->password = copy_string(src->password, &oom);
    dst->tls.ca_file = copy_string(src->tls.ca_file, &oom);
    dst->tls.cert_file = copy_string(src->tls.cert_file, &oom);
    dst->tls.key_file = copy_string(src->tls.key_file, &oom);
    dst->tls.server_name = copy_string(src->tls.server_name, &oom);
    dst->tracking.prefix = NULL;
    if (src->tracking.prefix_len > 0) {
        char *prefix = malloc(src->tracking.prefix_len);
        if (prefix != NULL)
            memcpy(prefix, src->tracking.prefix, src->tracking.prefix_len);
        else
            oom = true;
        dst->tracking.prefix = prefix;
    }
    if (oom) {
        pool_config_free(dst);
        return false;
    }
    return true;
}

void pool_config_free(PoolConfig *cfg)
{
    free((char *)cfg->host);
    free((char *)cfg->username);
    free((char *)cfg->password);
    free((char *)cfg->tls.ca_file);
    free((char *)cfg->tls.cert_file);
    free((char *)cfg->tls.key_file);
    free((char *)cfg->tls.server_name);
    free((char *)cfg->tracking.prefix);
    memset(cfg, 0, sizeof(*cfg));
}

Pool *pool_new(uv_loop_t *loop, const PoolConfig *cfg, pool_state_cb on_state,
               void *ud)
{
    Pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->size = cfg->size > 0 ? cfg->size : 1;
    p->slots = calloc(p->size, sizeof(*p->slots));
    PoolConfig named = *cfg;
    if (named.host == NULL)
        named.host = "localhost";
    if (p->slots == NULL || !pool_config_copy(&p->cfg, &named)) {
        free(p->slots);
        free(p);
        return NULL;
    }
    p->conn_cfg.host = p->cfg.host;
    p->conn_cfg.port = cfg->port;
    p->conn_cfg.db = cfg->db;
    p->conn_cfg.username = p->cfg.username;
    p->conn_cfg.password = p->cfg.password;
    p->conn_cfg.connect_timeout_ms = cfg->connect_timeout_ms;
    p->conn_cfg.command_timeout_ms = cfg->command_timeout_ms;
    p->conn_cfg.tls_server_name = p->cfg.tls.server_name;
    /* Loaded once here; a failure is reported by the first attempt. */
    load_tls(p);
    p->loop = loop;
    p->on_state = on_state;
    p->ud = ud;
    p->state = POOL_IDLE;
    backoff_init(&p->backoff, uv_hrtime() ^ (uint64_t)(uintptr_t)p);

    uv_prepare_init(loop, &p->flush_hook);
    p->flush_hook.data = p;
    uv_prepare_start(&p->flush_hook, on_flush);
    uv_unref((uv_handle_t *)&p->flush_hook);
    uv_timer_init(loop, &p->retry_timer);
    p->retry_timer.data = p;
    uv_unref((uv_handle_t *)&p->retry_timer);
    tracker_init(&p->tracker, loop, &p->cfg.tracking, &p->conn_cfg, on_track_id,
                 p);
    p->open_handles = 3;
    return p;
}

void pool_connect(Pool *p)
{
    if (p->state != POOL_IDLE)
        return;
    p->state = POOL_CONNECTING;
    /* From a loop callback, so on_state never runs inside pool_connect.
    ** Referenced: the loop runs at least until the first outcome. */
    uv_timer_start(&p->retry_timer, on_retry, 0, 0);
    uv_ref((uv_handle_t *)&p->retry_timer);
}

/* The connection the next command goes to: among ready connections the
** first with fewer than POOL_SPREAD_DEPTH pending, else the one with the
** fewest; when none is ready (every one is being replaced after an idle
** close), among the replacements, the same way. */
static Conn *pick_conn(const Pool *p)
{
    Conn *best = NULL;
    size_t best_pending = SIZE_MAX;
    for (int pass = 0; pass < 2 && best == NULL; pass++) {
        for (size_t i = 0; i < p->size; i++) {
            Conn *c = p->slots[i].conn;
            if (pass == 0 && !conn_ready(c))
                continue;
            size_t n = conn_pending(c);
            if (n < best_pending) {
                best = c;
                best_pending = n;
            }
            if (best_pending < POOL_SPREAD_DEPTH)
                break;
        }
    }
    return best;
}

/* A command was queued on `c`: a batch's worth goes out now, the rest at
** the end of the loop turn (on_flush). */
static void queued_on(Pool *p, Conn *c)
{
    p->dirty = true;
    if (conn_queued(c) >= POOL_WRITE_BATCH && conn_flush(c))
        p->writes++;
}

int pool_command(Pool *p, int argc, const char **argv, const size_t *argvlen,
                 pool_reply_cb cb, void *ud)
{
    if (p->state != POOL_READY)
        return CR_ECONNRESET;
    if (argc < 1 || argv == NULL)
        return CR_EINVAL;
    Conn *c = pick_conn(p);
    int rc = conn_command(c, argc, argv, argvlen, cb, ud);
    if (rc == CR_OK)
        queued_on(p, c);
    return rc;
}

static void on_asking(void *ud, int status, const redisReply *reply)
{
    (void)ud;
    (void)status;
    (void)reply; /* the command after it carries the outcome */
}

int pool_command_asking(Pool *p, int argc, const char **argv,
                        const size_t *argvlen, pool_reply_cb cb, void *ud)
{
    if (p->state != POOL_READY)
        return CR_ECONNRESET;
    if (argc < 1 || argv == NULL)
        return CR_EINVAL;
    RedisCmd asking;
    cmd_asking(&asking);
    Conn *c = pick_conn(p);
    int rc =
        conn_command(c, asking.argc, asking.argv, asking.lens, on_asking, NULL);
    if (rc == CR_OK)
        rc = conn_command(c, argc, argv, argvlen, cb, ud);
    if (rc == CR_OK)
        queued_on(p, c); /* ASKING and its command, queued together */
    return rc;
}

bool pool_ready(const Pool *p)
{
    return p->state == POOL_READY;
}

bool pool_tracking_ready(const Pool *p)
{
    return p->state == POOL_READY && p->track_ready;
}

size_t pool_pending(const Pool *p)
{
    size_t n = 0;
    if (p->state != POOL_CONNECTING && p->state != POOL_READY)
        return 0;
    for (size_t i = 0; i < p->size; i++)
        if (p->slots[i].conn != NULL)
            n += conn_pending(p->slots[i].conn);
    return n;
}

uint64_t pool_writes(const Pool *p)
{
    return p->writes;
}

uint64_t pool_replaced(const Pool *p)
{
    return p->replaced;
}

void pool_fail(Pool *p, int status, const char *message)
{
    if (p->state != POOL_READY && p->state != POOL_CONNECTING)
        return;
    p->in_callback++;
    fail_pool(p, status, message);
    p->in_callback--;
    maybe_free(p);
}

void pool_close(Pool *p)
{
    if (p->state == POOL_CLOSED)
        return;
    p->state = POOL_CLOSED;
    p->in_callback++;
    lose_tracking(p);
    close_conns(p);
    p->in_callback--;
    tracker_close(&p->tracker, on_closed);
    uv_close((uv_handle_t *)&p->flush_hook, on_closed);
    uv_close((uv_handle_t *)&p->retry_timer, on_closed);
    maybe_free(p);
}
