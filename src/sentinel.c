/*
** sentinel.c -- the Sentinel backend (sentinel.h): discovery rounds, the
** ROLE check, the +switch-master subscription.
**
** States: IDLE -> ASKING (a sentinel query in flight) -> CONNECTING (a pool
** to the address named) -> CONFIRMING (ROLE sent on it) -> READY; any of
** ASKING..READY -> WAITING (the retry timer runs; the round failed) ->
** ASKING; anything -> CLOSED. `pool` is set in CONNECTING, CONFIRMING and
** READY only; `query` in ASKING only. The subscription (`sub`) lives beside
** that machine: it only starts rounds.
**
** Teardown order: the state changes first, then the pool is closed (its
** pending commands fail into the engine, which may call back: it sees a
** backend that is not ready), then on_state reports. Any callback may
** close the backend; the struct is freed only in the timers' close
** callbacks, which libuv runs later, so after a callback returns the code
** here checks for CLOSED and stops.
*/
#include "sentinel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "conn.h"
#include "status.h"
#include "tls.h"

enum {
    ST_IDLE,
    ST_ASKING,
    ST_CONNECTING,
    ST_CONFIRMING,
    ST_READY,
    ST_WAITING,
    ST_CLOSED
};

/* Room for the messages on_state reports (every sentinel's answer). */
#define SENTINEL_MSG_SIZE 1024

typedef struct Sentinel {
    Backend base;
    uv_loop_t *loop;
    pool_state_cb on_state;
    void *ud;

    /* Configuration: owned copies. */
    PoolConfig pool_cfg;  /* a copy; host and port unused: the address named */
    RedisAddr *sentinels; /* hosts owned */
    size_t nsentinels;
    char *master;
    char *sentinel_username;
    char *sentinel_password;
    /* TLS to the sentinels too (the data nodes' pools make their own):
    ** loaded at the first round, again after a failure to load it. */
    TlsContext *tls_ctx;
    Logger log;

    int state;
    Pool *pool;
    char *addr_host; /* the primary named last, or NULL */
    int addr_port;
    size_t addr_from;  /* the sentinel that named it */
    uint64_t ready_ms; /* loop time READY began */
    Backoff backoff;   /* between discovery rounds */
    uv_timer_t retry_timer;
    /* A failover of the primary at hold_host:hold_port started (see
    ** sentinel.h): not used again until hold_until_ms (loop time). */
    char hold_host[128];
    int hold_port;
    uint64_t hold_until_ms;
    bool report_pending; /* the retry timer reports a failed round first */

    /* The round in progress (ASKING). */
    Conn *query;
    size_t query_index; /* the sentinel asked now */
    size_t asked;       /* sentinels asked in this round */
    size_t preferred;   /* where the next round starts */
    int unknown;        /* answers "no such master" */
    int refused;        /* logins refused */
    int first_error;    /* the first other failure's code */
    char round_msg[SENTINEL_MSG_SIZE];

    /* The +switch-master subscription. */
    Conn *sub;
    size_t sub_index;
    bool subscribed;
    uint64_t sub_ok_ms;   /* loop time the subscription was confirmed */
    Backoff sub_backoff;  /* between subscription attempts */
    uv_timer_t sub_timer; /* resubscribes, or pings while subscribed */

    int open_handles;
    char msg[SENTINEL_MSG_SIZE];
} Sentinel;

static void start_round(Sentinel *s, size_t first);
static void start_sub(Sentinel *s);

/* -- Lifetime ----------------------------------------------------------- */

static void free_sentinel(Sentinel *s)
{
    for (size_t i = 0; i < s->nsentinels; i++)
        free((char *)s->sentinels[i].host);
    free(s->sentinels);
    pool_config_free(&s->pool_cfg);
    free(s->master);
    free(s->sentinel_username);
    free(s->sentinel_password);
    free(s->addr_host);
    tls_context_free(s->tls_ctx);
    free(s);
}

static void on_closed(uv_handle_t *h)
{
    Sentinel *s = h->data;
    if (--s->open_handles == 0)
        free_sentinel(s);
}

static char *copy_string(const char *src, bool *oom)
{
    if (src == NULL)
        return NULL;
    char *d = strdup(src);
    if (d == NULL)
        *oom = true;
    return d;
}

/* Appends "; "-separated text to a message buffer, cut at its size. */
static void append_msg(char *buf, size_t size, const char *text)
{
    size_t len = strlen(buf);
    const char *parts[2] = {len > 0 ? "; " : "", text};
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(parts[i]);
        if (n > size - 1 - len)
            n = size - 1 - len; /* cut explicitly */
        memcpy(buf + len, parts[i], n);
        len += n;
    }
    buf[len] = '\0';
}

static void on_retry(uv_timer_t *t);

/* Reports a failed round (unless closed meanwhile) and schedules the
** next one after the backoff. */
static void fail_round(Sentinel *s, int code, const char *message)
{
    s->state = ST_WAITING;
    s->on_state(s->ud, code, message);
    if (s->state != ST_WAITING)
        return; /* closed, or a switch started a round, from the callback */
    uv_timer_start(&s->retry_timer, on_retry, backoff_next(&s->backoff), 0);
    uv_unref((uv_handle_t *)&s->retry_timer);
}

/* A round that failed inside backend_connect() (or another caller that
** is not a loop callback): on_state must not run there, so the retry
** timer reports `code` and round_msg on the next loop turn. */
static void report_later(Sentinel *s, int code)
{
    s->first_error = code;
    s->report_pending = true;
    s->state = ST_WAITING;
    uv_timer_start(&s->retry_timer, on_retry, 0, 0);
    uv_ref((uv_handle_t *)&s->retry_timer);
}

static void on_retry(uv_timer_t *t)
{
    Sentinel *s = t->data;
    if (s->report_pending) { /* a round that failed inside connect() */
        s->report_pending = false;
        fail_round(s, s->first_error, s->round_msg);
        return;
    }
    start_round(s, s->preferred);
}

/* -- The data node ------------------------------------------------------ */

/* Closes the pool, if any, after leaving the states that use it. */
static void drop_pool(Sentinel *s, int next_state)
{
    Pool *p = s->pool;
    s->state = next_state;
    s->pool = NULL;
    if (p != NULL)
        pool_close(p); /* the engine's pending commands fail now */
}

/* The primary is lost or unusable (the pool went down, backend_fail, ROLE
** said replica, a switch): close the pool, report `code`, and start a
** round at once when `now` or when it had been healthy, else after the
** backoff. */
static void lose_master(Sentinel *s, int code, const char *message, bool now)
{
    if (s->state == ST_READY &&
        uv_now(s->loop) - s->ready_ms >= POOL_HEALTHY_RESET_MS) {
        backoff_reset(&s->backoff);
        now = true;
    }
    snprintf(s->msg, sizeof(s->msg), "%s", message);
    drop_pool(s, ST_WAITING);
    if (s->state != ST_WAITING)
        return; /* closed from a callback */
    if (!now) {
        fail_round(s, code, s->msg);
        return;
    }
    s->on_state(s->ud, code, s->msg);
    if (s->state == ST_WAITING)
        start_round(s, s->preferred);
}

static void on_role(void *ud, int status, const redisReply *r)
{
    Sentinel *s = ud;
    /* A transport failure comes through on_pool_state next. */
    if (status != CR_OK || s->state != ST_CONFIRMING)
        return;
    const char *role = NULL;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING)
        role = r->element[0]->str;
    bool nopermission =
        r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOPERM", 6) == 0;
    if (nopermission || (role != NULL && strcmp(role, "master") == 0)) {
        const RedisAddr *from = &s->sentinels[s->addr_from];
        s->state = ST_READY;
        s->ready_ms = uv_now(s->loop);
        snprintf(s->msg, sizeof(s->msg),
                 "connected to master '%s' at %s:%d (named by sentinel "
                 "%s:%d)",
                 s->master, s->addr_host, s->addr_port, from->host, from->port);
        s->on_state(s->ud, CR_OK, s->msg);
        return;
    }
    char text[SENTINEL_MSG_SIZE];
    if (role != NULL)
        snprintf(text, sizeof(text),
                 "master '%s' at %s:%d says it is a %s (ROLE), not the "
                 "master; asking the sentinels again",
                 s->master, s->addr_host, s->addr_port, role);
    else
        snprintf(text, sizeof(text),
                 "master '%s' at %s:%d: unexpected answer to ROLE: %s",
                 s->master, s->addr_host, s->addr_port,
                 r->type == REDIS_REPLY_ERROR ? r->str : "not an array");
    lose_master(s, role != NULL ? CR_EREADONLY : CR_EREPLY, text, false);
}

static void on_pool_state(void *ud, int status, const char *message)
{
    Sentinel *s = ud;
    if (status == CR_OK) {
        if (s->state != ST_CONNECTING)
            return;
        s->state = ST_CONFIRMING;
        RedisCmd cmd;
        cmd_role(&cmd);
        int rc =
            pool_command(s->pool, cmd.argc, cmd.argv, cmd.lens, on_role, s);
        if (rc != CR_OK)
            lose_master(s, rc, cr_strerror(rc), false);
        return;
    }
    char text[SENTINEL_MSG_SIZE];
    snprintf(text, sizeof(text), "master '%s' at %s:%d: %s", s->master,
             s->addr_host, s->addr_port, message);
    lose_master(s, status, text, false);
}

/* The sentinels named host:port: open a pool there; ROLE follows. */
static void use_address(Sentinel *s, const char *host, size_t hlen, int port)
{
    if (uv_now(s->loop) < s->hold_until_ms && port == s->hold_port &&
        strlen(s->hold_host) == hlen && memcmp(s->hold_host, host, hlen) == 0) {
        char text[SENTINEL_MSG_SIZE];
        snprintf(text, sizeof(text),
                 "master '%s' at %s:%d is being failed over; waiting for the "
                 "sentinels to name the new primary",
                 s->master, s->hold_host, s->hold_port);
        fail_round(s, CR_ECONNRESET, text);
        return;
    }
    char *h = malloc(hlen + 1);
    if (h == NULL) {
        fail_round(s, CR_ENOMEM, cr_strerror(CR_ENOMEM));
        return;
    }
    memcpy(h, host, hlen);
    h[hlen] = '\0';
    free(s->addr_host);
    s->addr_host = h;
    s->addr_port = port;
    s->addr_from = s->query_index;
    PoolConfig cfg = s->pool_cfg;
    cfg.host = s->addr_host;
    cfg.port = port;
    s->pool = pool_new(s->loop, &cfg, on_pool_state, s);
    if (s->pool == NULL) {
        fail_round(s, CR_ENOMEM, cr_strerror(CR_ENOMEM));
        return;
    }
    s->state = ST_CONNECTING;
    pool_connect(s->pool);
}

/* -- Discovery rounds --------------------------------------------------- */

static void ask(Sentinel *s);

/* Parses a port sent as a string; 0 when it is not one. */
static int parse_port(const redisReply *r)
{
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 5)
        return 0;
    int port = 0;
    for (size_t i = 0; i < r->len; i++) {
        if (r->str[i] < '0' || r->str[i] > '9')
            return 0;
        port = port * 10 + (r->str[i] - '0');
    }
    return port <= 65535 ? port : 0;
}

/* The round ends without an address: one report for every answer. */
static void end_round(Sentinel *s)
{
    int code = s->unknown > 0   ? CR_EINVAL
               : s->refused > 0 ? CR_EAUTH
                                : s->first_error;
    s->first_error = code;
    fail_round(s, code, s->round_msg);
}

/* One sentinel failed us: note why, ask the next or end the round. */
static void sentinel_failed(Sentinel *s, int code, const char *text)
{
    const RedisAddr *a = &s->sentinels[s->query_index];
    char entry[SENTINEL_MSG_SIZE];
    if (code == CR_EINVAL) {
        s->unknown++;
        snprintf(entry, sizeof(entry),
                 "sentinel %s:%d does not know master "
                 "'%s'",
                 a->host, a->port, s->master);
    } else {
        if (code == CR_EAUTH)
            s->refused++;
        else if (s->first_error == CR_OK)
            s->first_error = code;
        snprintf(entry, sizeof(entry), "sentinel %s:%d: %s", a->host, a->port,
                 text);
    }
    append_msg(s->round_msg, sizeof(s->round_msg), entry);
    if (s->asked < s->nsentinels) {
        s->query_index = (s->query_index + 1) % s->nsentinels;
        ask(s);
    } else {
        end_round(s);
    }
}

static void close_query(Sentinel *s)
{
    Conn *c = s->query;
    s->query = NULL;
    if (c != NULL)
        conn_close(c); /* its reply callback ignores the failure */
}

static void on_query_reply(void *ud, int status, const redisReply *r)
{
    Sentinel *s = ud;
    /* Transport failures come through on_query_state, closes from here. */
    if (status != CR_OK || s->state != ST_ASKING)
        return;
    close_query(s);
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len > 0 &&
        parse_port(r->element[1]) > 0) {
        s->preferred = s->query_index;
        use_address(s, r->element[0]->str, r->element[0]->len,
                    parse_port(r->element[1]));
        return;
    }
    if (r->type == REDIS_REPLY_NIL) {
        sentinel_failed(s, CR_EINVAL, NULL);
        return;
    }
    bool login =
        r->type == REDIS_REPLY_ERROR && (strncmp(r->str, "NOAUTH", 6) == 0 ||
                                         strncmp(r->str, "WRONGPASS", 9) == 0 ||
                                         strncmp(r->str, "NOPERM", 6) == 0);
    sentinel_failed(s,
                    login                          ? CR_EAUTH
                    : r->type == REDIS_REPLY_ERROR ? CR_EREPLY
                                                   : CR_EPROTO,
                    r->type == REDIS_REPLY_ERROR
                        ? r->str
                        : "unexpected answer to get-master-addr-by-name");
}

static void on_query_state(void *ud, Conn *c, int status, const char *message)
{
    Sentinel *s = ud;
    if (status == CR_OK || c != s->query)
        return;
    char text[SENTINEL_MSG_SIZE];
    snprintf(text, sizeof(text), "%s", message);
    close_query(s);
    if (s->state == ST_ASKING)
        sentinel_failed(s, status, text);
}

static ConnConfig sentinel_conn_config(const Sentinel *s, size_t i)
{
    ConnConfig cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.host = s->sentinels[i].host;
    cfg.port = s->sentinels[i].port;
    cfg.username = s->sentinel_username;
    cfg.password = s->sentinel_password;
    cfg.connect_timeout_ms = s->pool_cfg.connect_timeout_ms;
    cfg.command_timeout_ms = s->pool_cfg.command_timeout_ms;
    cfg.tls = s->tls_ctx; /* the name checked: the sentinel's host */
    return cfg;
}

/* Asks sentinel query_index for the master's address. */
static void ask(Sentinel *s)
{
    s->asked++;
    ConnConfig cfg = sentinel_conn_config(s, s->query_index);
    RedisCmd cmd;
    cmd_sentinel_master_addr(&cmd, s->master);
    Conn *c = conn_new(s->loop, &cfg, on_query_state, s);
    if (c != NULL && conn_command(c, cmd.argc, cmd.argv, cmd.lens,
                                  on_query_reply, s) != CR_OK) {
        conn_close(c);
        c = NULL;
    }
    if (c == NULL) { /* out of memory: reported from the retry timer */
        snprintf(s->round_msg, sizeof(s->round_msg), "%s",
                 cr_strerror(CR_ENOMEM));
        report_later(s, CR_ENOMEM);
        return;
    }
    s->query = c; /* held until the handshake is done, then written */
}

/* Loads the TLS context for the sentinels when TLS is on and it is not
** loaded yet. False, the reason in round_msg, on failure. */
static bool load_tls(Sentinel *s)
{
    if (!s->pool_cfg.tls.enabled || s->tls_ctx != NULL)
        return true;
    char err[SENTINEL_MSG_SIZE - 16];
    s->tls_ctx = tls_context_new(&s->pool_cfg.tls, err, sizeof(err));
    if (s->tls_ctx == NULL)
        snprintf(s->round_msg, sizeof(s->round_msg), "TLS: %s", err);
    return s->tls_ctx != NULL;
}

/* Starts asking the sentinels, `first` first. */
static void start_round(Sentinel *s, size_t first)
{
    uv_timer_stop(&s->retry_timer);
    s->report_pending = false;
    close_query(s);
    if (!load_tls(s)) {
        report_later(s, CR_ETLS);
        return;
    }
    s->state = ST_ASKING;
    s->asked = 0;
    s->unknown = 0;
    s->refused = 0;
    s->first_error = CR_OK;
    s->round_msg[0] = '\0';
    s->query_index = first % s->nsentinels;
    ask(s);
}

/* -- The subscription --------------------------------------------------- */

static void on_sub_timer(uv_timer_t *t);

/* The subscription failed: close it, try the next sentinel after the
** backoff (starting over when it had been up for a healthy while). */
static void lose_sub(Sentinel *s)
{
    Conn *c = s->sub;
    s->sub = NULL;
    if (s->subscribed &&
        uv_now(s->loop) - s->sub_ok_ms >= POOL_HEALTHY_RESET_MS)
        backoff_reset(&s->sub_backoff);
    s->subscribed = false;
    if (c != NULL)
        conn_close(c);
    if (s->state == ST_CLOSED)
        return;
    s->sub_index = (s->sub_index + 1) % s->nsentinels;
    uv_timer_start(&s->sub_timer, on_sub_timer, backoff_next(&s->sub_backoff),
                   0);
}

/* Our master moved: rediscover now, starting with sentinel `ask_first`. */
static void master_moved(Sentinel *s, const char *text, size_t ask_first)
{
    s->preferred = ask_first;
    backoff_reset(&s->backoff);
    switch (s->state) {
    case ST_CONNECTING:
    case ST_CONFIRMING:
    case ST_READY:
        lose_master(s, CR_ECONNRESET, text, true);
        break;
    case ST_ASKING:
    case ST_WAITING:
        start_round(s, s->preferred);
        break;
    default:
        break;
    }
}

/* True when the sentinel names another address than the one in use. */
static bool moved_from(const Sentinel *s, const char *host, size_t hlen,
                       int port)
{
    return s->addr_host == NULL || port != s->addr_port ||
           strlen(s->addr_host) != hlen || memcmp(s->addr_host, host, hlen);
}

/* "+try-failover master <name> <ip> <port>": the sentinel starts failing
** our primary over. Writes it takes from now on may be lost (the replica
** stops replicating when promoted): leave it, and do not take it again
** until +switch-master or SENTINEL_FAILOVER_HOLD_MS. */
static void on_try_failover(Sentinel *s, const char *line)
{
    char type[16], name[256], ip[128];
    int port;
    if (sscanf(line, "%15s %255s %127s %d", type, name, ip, &port) != 4 ||
        strcmp(type, "master") != 0 || strcmp(name, s->master) != 0)
        return;
    snprintf(s->hold_host, sizeof(s->hold_host), "%s", ip);
    s->hold_port = port;
    s->hold_until_ms = uv_now(s->loop) + SENTINEL_FAILOVER_HOLD_MS;
    if ((s->state != ST_READY && s->state != ST_CONNECTING &&
         s->state != ST_CONFIRMING) ||
        moved_from(s, ip, strlen(ip), port))
        return;
    char text[SENTINEL_MSG_SIZE];
    snprintf(text, sizeof(text),
             "master '%s' at %s:%d is being failed over (sentinel %s:%d)",
             s->master, ip, port, s->sentinels[s->sub_index].host,
             s->sentinels[s->sub_index].port);
    log_msg(&s->log, LOG_INFO, "%s", text);
    lose_master(s, CR_ECONNRESET, text, false);
}

static void on_push(void *ud, const redisReply *r)
{
    Sentinel *s = ud;
    if (r->elements != 3 || r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[2]->type != REDIS_REPLY_STRING)
        return;
    char line[600];
    if (r->element[2]->len >= sizeof(line))
        return;
    memcpy(line, r->element[2]->str, r->element[2]->len);
    line[r->element[2]->len] = '\0';
    if (strcmp(r->element[1]->str, "+try-failover") == 0) {
        on_try_failover(s, line);
        return;
    }
    /* "+switch-master": "<name> <old ip> <old port> <new ip> <new port>" */
    char name[256], old_ip[128], new_ip[128];
    int old_port, new_port;
    if (sscanf(line, "%255s %127s %d %127s %d", name, old_ip, &old_port, new_ip,
               &new_port) != 5 ||
        strcmp(name, s->master) != 0)
        return;
    s->hold_until_ms = 0; /* the failover is over */
    if (s->state == ST_READY &&
        !moved_from(s, new_ip, strlen(new_ip), new_port))
        return; /* already there */
    char text[SENTINEL_MSG_SIZE];
    snprintf(text, sizeof(text),
             "master '%s' switched from %s:%d to %s:%d (sentinel %s:%d)",
             s->master, old_ip, old_port, new_ip, new_port,
             s->sentinels[s->sub_index].host, s->sentinels[s->sub_index].port);
    log_msg(&s->log, LOG_INFO, "%s", text);
    master_moved(s, text, s->sub_index); /* it announced: it knows */
}

/* The subscribing sentinel's view, asked before SUBSCRIBE: catches a
** switch that happened while no subscription was up. */
static void on_sub_check(void *ud, int status, const redisReply *r)
{
    Sentinel *s = ud;
    if (status != CR_OK || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    int port = parse_port(r->element[1]);
    if (port == 0 ||
        (s->state != ST_READY && s->state != ST_CONNECTING &&
         s->state != ST_CONFIRMING) ||
        !moved_from(s, r->element[0]->str, r->element[0]->len, port))
        return;
    char text[SENTINEL_MSG_SIZE];
    snprintf(text, sizeof(text),
             "master '%s' is at %.*s:%d now, says sentinel %s:%d", s->master,
             (int)r->element[0]->len, r->element[0]->str, port,
             s->sentinels[s->sub_index].host, s->sentinels[s->sub_index].port);
    /* This sentinel may lag behind (it names an old primary that may still
    ** say "master"): the round starts with the one that named ours. */
    master_moved(s, text, s->preferred);
}

static void on_subscribed(void *ud, int status, const redisReply *r)
{
    Sentinel *s = ud;
    if (status != CR_OK || s->sub == NULL)
        return;
    if (r->type != REDIS_REPLY_ARRAY) { /* refused (an ACL, ...) */
        lose_sub(s);
        return;
    }
    s->subscribed = true;
    s->sub_ok_ms = uv_now(s->loop);
    uv_timer_start(&s->sub_timer, on_sub_timer, SENTINEL_PING_MS,
                   SENTINEL_PING_MS);
}

static void on_pong(void *ud, int status, const redisReply *r)
{
    (void)ud, (void)status, (void)r; /* a silent sentinel fails the conn */
}

static void on_sub_state(void *ud, Conn *c, int status, const char *message)
{
    Sentinel *s = ud;
    (void)message;
    if (status != CR_OK && c == s->sub)
        lose_sub(s);
}

static void on_sub_timer(uv_timer_t *t)
{
    Sentinel *s = t->data;
    if (s->sub == NULL) {
        start_sub(s);
        return;
    }
    RedisCmd ping;
    cmd_ping(&ping);
    if (s->subscribed && conn_command(s->sub, ping.argc, ping.argv, ping.lens,
                                      on_pong, s) == CR_OK)
        conn_flush(s->sub);
}

/* Connects to sentinel sub_index: checks the address, then subscribes. */
static void start_sub(Sentinel *s)
{
    static const char *const channels[] = {"+switch-master", "+try-failover"};
    if (!load_tls(s)) { /* the round reports why */
        lose_sub(s);
        return;
    }
    ConnConfig cfg = sentinel_conn_config(s, s->sub_index);
    cfg.background = true;
    RedisCmd check, subscribe;
    cmd_sentinel_master_addr(&check, s->master);
    cmd_subscribe(&subscribe, channels, 2);
    Conn *c = conn_new(s->loop, &cfg, on_sub_state, s);
    s->sub = c;
    s->subscribed = false;
    if (c != NULL) {
        conn_set_push_handler(c, on_push, s);
        if (conn_command(c, check.argc, check.argv, check.lens, on_sub_check,
                         s) == CR_OK &&
            conn_command(c, subscribe.argc, subscribe.argv, subscribe.lens,
                         on_subscribed, s) == CR_OK)
            return;
    }
    lose_sub(s); /* out of memory: try again later */
}

/* -- The backend -------------------------------------------------------- */

static void sentinel_connect(Backend *b)
{
    Sentinel *s = (Sentinel *)b;
    if (s->state != ST_IDLE)
        return;
    start_sub(s);
    start_round(s, 0);
}

static int sentinel_command(Backend *b, int argc, const char **argv,
                            const size_t *argvlen, pool_reply_cb cb, void *ud)
{
    Sentinel *s = (Sentinel *)b;
    if (s->state != ST_READY)
        return CR_ECONNRESET;
    return pool_command(s->pool, argc, argv, argvlen, cb, ud);
}

static bool sentinel_ready(const Backend *b)
{
    const Sentinel *s = (const Sentinel *)b;
    return s->state == ST_READY && pool_ready(s->pool);
}

static bool sentinel_tracking_ready(const Backend *b)
{
    const Sentinel *s = (const Sentinel *)b;
    return s->state == ST_READY && pool_tracking_ready(s->pool);
}

static void sentinel_fail(Backend *b, int status, const char *message)
{
    Sentinel *s = (Sentinel *)b;
    if (s->state != ST_READY && s->state != ST_CONNECTING &&
        s->state != ST_CONFIRMING)
        return; /* already rediscovering */
    char text[SENTINEL_MSG_SIZE];
    snprintf(text, sizeof(text),
             "master '%s' at %s:%d: %s; asking the "
             "sentinels again",
             s->master, s->addr_host, s->addr_port, message);
    lose_master(s, status, text, false);
}

static void sentinel_close(Backend *b)
{
    Sentinel *s = (Sentinel *)b;
    if (s->state == ST_CLOSED)
        return;
    drop_pool(s, ST_CLOSED);
    close_query(s);
    Conn *sub = s->sub;
    s->sub = NULL;
    if (sub != NULL)
        conn_close(sub);
    uv_close((uv_handle_t *)&s->retry_timer, on_closed);
    uv_close((uv_handle_t *)&s->sub_timer, on_closed);
}

static const BackendVtbl sentinel_vtbl = {
    .connect = sentinel_connect,
    .command = sentinel_command, /* one node: no nodes / node_command */
    .ready = sentinel_ready,
    .fail = sentinel_fail,
    .close = sentinel_close,
    .tracking_ready = sentinel_tracking_ready,
};

Backend *sentinel_new(uv_loop_t *loop, const RedisConfig *cfg,
                      pool_state_cb on_state, void *ud)
{
    Sentinel *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    bool oom = false;
    s->sentinels = calloc(cfg->nsentinels, sizeof(*s->sentinels));
    oom = s->sentinels == NULL;
    for (size_t i = 0; !oom && i < cfg->nsentinels; i++) {
        s->sentinels[i].host = copy_string(cfg->sentinels[i].host, &oom);
        s->sentinels[i].port = cfg->sentinels[i].port;
        s->nsentinels = i + 1;
    }
    PoolConfig data_nodes = cfg->pool;
    data_nodes.host = NULL;
    data_nodes.port = 0;
    if (!oom && !pool_config_copy(&s->pool_cfg, &data_nodes))
        oom = true;
    s->master = copy_string(
        cfg->sentinel_master != NULL ? cfg->sentinel_master : "mymaster", &oom);
    s->sentinel_username = copy_string(cfg->sentinel_username, &oom);
    s->sentinel_password = copy_string(cfg->sentinel_password, &oom);
    if (oom || s->nsentinels == 0) {
        free_sentinel(s);
        return NULL;
    }
    s->base.vt = &sentinel_vtbl;
    s->log = cfg->log;
    s->loop = loop;
    s->on_state = on_state;
    s->ud = ud;
    s->state = ST_IDLE;
    uint64_t seed = uv_hrtime() ^ (uint64_t)(uintptr_t)s;
    backoff_init(&s->backoff, seed);
    backoff_init(&s->sub_backoff, seed + 1);
    uv_timer_init(loop, &s->retry_timer);
    s->retry_timer.data = s;
    uv_unref((uv_handle_t *)&s->retry_timer);
    uv_timer_init(loop, &s->sub_timer);
    s->sub_timer.data = s;
    uv_unref((uv_handle_t *)&s->sub_timer);
    s->open_handles = 2;
    return &s->base;
}
