/*
** conn.c -- one Redis connection: libuv socket, output buffer, redisReader.
**
** States run one way: RESOLVING -> CONNECTING -> [TLS ->] HANDSHAKE ->
** READY, and from any of them to FAILED (sticky error, reported once) and
** CLOSING (conn_close). Pending commands sit in a ring buffer in the order they
** were written, so the n-th reply belongs to the n-th entry: O(1) per
** command. The handshake (AUTH, SELECT, PING) is queued by conn_new, so its
** entries come first; commands accepted before READY wait in `held` and
** join the output buffer when the handshake succeeds, never before (a
** command must not run after a rejected AUTH or SELECT).
**
** Deadlines: one timer serves two: the connect deadline until READY, then
** the server's silence. A READY connection with commands outstanding
** (handed to uv_write and not yet answered) fails when nothing was read
** from its socket for command_timeout_ms since `heard_ms`: the later of
** the last read and the write that made commands outstanding again after
** none were. So what is measured is the server's silence, not the time a
** command waited in cachert's own queue (the output buffer, a write in
** flight, the process busy) nor the length of a pipeline the server keeps
** answering. The hot path pays a timestamp per read and one per write that
** starts an outstanding stretch; no timer work per command. The timer is
** armed when such a stretch starts and, when it fires early (the server
** spoke meanwhile), re-armed for the moved deadline: about once per
** timeout per busy connection. The timer only notices that a deadline is
** due; it does not judge it, because libuv runs timers before it polls:
** after the process kept the CPU past a deadline (a Lua task that does not
** yield), the reply may be sitting unread in the socket. So a due deadline
** starts a uv_check handle, which runs right after the poll, and a 1 ms
** timer that keeps that poll from blocking. The check fails the connection
** only for a deadline that had passed before the poll began (checked_ms):
** a byte that had arrived by then was read in that poll and moved the
** deadline. It stops itself once nothing is due. So the cost is one check
** per loop turn per connection, and only while a deadline is due.
**
** Transport: plain TCP writes `out` itself. With TLS (cfg.tls) the socket
** carries ciphertext: the TLS state runs the TLS handshake; conn_flush
** encrypts `out` into `cout`, and the ciphertext any SSL call produces
** (handshake, alerts, post-handshake messages) is appended to `cout` right
** after the call and written unless a write is in flight (on_write then
** sends what accumulated). Bytes read are fed to the session and the
** plaintext it yields goes to the redisReader. So there is still at most
** one write in flight, and everything else (the FIFO, deadlines, the idle
** close) works on plaintext and sees no difference.
**
** Lifetime: the struct holds three handles (socket, timer, check) and may
** have a getaddrinfo request in flight. It is freed only when every close
** callback and the getaddrinfo callback have run, and no callback of ours
** is on the stack (in_callback), as hiredis does with REDIS_IN_CALLBACK.
*/
#include "conn.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "reply.h"
#include "resp.h"
#include "status.h"

enum {
    CONN_RESOLVING,
    CONN_CONNECTING,
    CONN_TLS, /* TCP connected, TLS handshake running */
    CONN_HANDSHAKE,
    CONN_READY,
    CONN_FAILED,
    CONN_CLOSING
};

typedef struct Pending {
    conn_reply_cb cb;
    void *ud;
} Pending;

typedef struct OutBuf {
    char *data;
    size_t len;
    size_t cap;
} OutBuf;

struct Conn {
    uv_loop_t *loop;
    ConnConfig cfg;
    conn_state_cb on_state;
    void *ud;
    int state;

    uv_getaddrinfo_t gai;
    bool gai_active;              /* its callback has not run yet */
    struct addrinfo *addrs;       /* resolved list, freed with the conn */
    struct addrinfo *next_addr;   /* next address to try on a refusal */
    int resolve_error;            /* sync uv_getaddrinfo failure, reported
                                     from the timer */
    int write_error;              /* sync uv_write failure, likewise */
    uint64_t connect_deadline_ms; /* loop time; UINT64_MAX: none */

    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    uv_timer_t timer;
    uv_check_t check;    /* judges due deadlines after the poll */
    uint64_t checked_ms; /* loop time before that poll began */
    int open_handles;    /* initialised and not yet through on_closed */
    bool tcp_closing;    /* uv_close called on tcp (retry or close) */
    bool reading;
    bool writing;    /* write_req in flight: `inflight` must stay alive */
    OutBuf out;      /* commands not yet written */
    OutBuf inflight; /* the buffer of the write in flight */
    OutBuf held;     /* commands accepted before READY */
    uint64_t writes;

    TlsSession *tls;      /* NULL: plain TCP; created once TCP connected */
    OutBuf cout;          /* TLS: ciphertext not yet written */
    bool tls_write_error; /* encrypting in conn_flush failed, likewise */
    bool heard_redis;     /* the reader got bytes: for the hints on close */

    redisReader *reader;
    Pending *fifo; /* ring buffer of cap entries */
    size_t head;
    size_t count;
    size_t cap;
    size_t handshake_left; /* handshake entries still in the FIFO */
    /* The FIFO holds, in order: entries written (handed to uv_write) and
    ** awaiting their reply, then n_out entries in `out`, then n_held in
    ** `held` (before READY only). */
    size_t n_out;
    size_t n_held;
    uint64_t heard_ms; /* loop time silence is measured from (see top) */

    conn_push_cb push_cb; /* pub/sub messages, or NULL (conn.h) */
    void *push_ud;

    int in_callback;
    bool closing;
    bool idle_closed; /* the server closed it while READY and idle */
    int err;
    char errstr[CONN_ERRSTR_SIZE];
    char rbuf[CONN_READ_CHUNK];
};

/* -- Lifetime ----------------------------------------------------------- */

static void free_conn(Conn *c)
{
    redisReaderFree(c->reader);
    uv_freeaddrinfo(c->addrs);
    free(c->fifo);
    free(c->out.data);
    free(c->inflight.data);
    free(c->held.data);
    free(c->cout.data);
    tls_session_free(c->tls);
    free(c);
}

static void maybe_free(Conn *c)
{
    if (c->closing && c->open_handles == 0 && !c->gai_active &&
        c->in_callback == 0)
        free_conn(c);
}

static void on_closed(uv_handle_t *h)
{
    Conn *c = h->data;
    c->open_handles--;
    maybe_free(c);
}

/* Copies `msg` into the fixed-size errstr, cutting it explicitly. */
static void set_errstr(Conn *c, const char *msg, size_t len)
{
    if (len >= sizeof(c->errstr))
        len = sizeof(c->errstr) - 1;
    memcpy(c->errstr, msg, len);
    c->errstr[len] = '\0';
}

/* Records the first failure, stops I/O and tells the owner, who closes. */
static void fail(Conn *c, int code, const char *msg)
{
    if (c->err != CR_OK || c->closing)
        return; /* sticky: the first failure wins */
    c->err = code;
    set_errstr(c, msg, strlen(msg));
    c->state = CONN_FAILED;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    uv_timer_stop(&c->timer);
    uv_check_stop(&c->check);
    c->in_callback++;
    c->on_state(c->ud, c, code, c->errstr);
    c->in_callback--;
}

/* `fmt` takes the host (%s), the port (%d) and `detail` (%s), in order.
** Nothing to format once failed or closing: the first failure wins, and
** after conn_close() the borrowed host may be gone (a write callback
** with an error can run after the owner freed it). */
static void failf(Conn *c, int code, const char *fmt, const char *detail)
{
    if (c->err != CR_OK || c->closing)
        return;
    char msg[CONN_ERRSTR_SIZE];
    snprintf(msg, sizeof(msg), fmt, c->cfg.host, c->cfg.port, detail);
    fail(c, code, msg);
}

/* -- Pending FIFO ------------------------------------------------------- */

static bool reserve_pending(Conn *c)
{
    if (c->count < c->cap)
        return true;
    size_t cap = c->cap ? c->cap * 2 : 64;
    Pending *f = malloc(cap * sizeof(*f));
    if (f == NULL)
        return false;
    for (size_t i = 0; i < c->count; i++) /* unwrap the ring */
        f[i] = c->fifo[(c->head + i) % c->cap];
    free(c->fifo);
    c->fifo = f;
    c->head = 0;
    c->cap = cap;
    return true;
}

static void on_handshake_reply(void *ud, int status, const redisReply *r);

/* The owner's commands in the FIFO (the handshake's not counted). */
static size_t commands_pending(const Conn *c)
{
    return c->count - c->handshake_left;
}

/* Keeps the loop alive exactly while a reply is awaited: one of the owner's
** commands, or the handshake unless cfg.background. Before the socket is
** initialised (conn_new queues the handshake first) there is nothing to do:
** conn_new calls this again once it is. */
static void update_ref(Conn *c)
{
    if (c->open_handles == 0 || c->tcp_closing)
        return;
    if (commands_pending(c) > 0 || (!c->cfg.background && c->count > 0))
        uv_ref((uv_handle_t *)&c->tcp);
    else
        uv_unref((uv_handle_t *)&c->tcp);
}

/* Entries written and awaiting a reply, the handshake's included. */
static size_t outstanding(const Conn *c)
{
    return c->count - c->n_out - c->n_held;
}

/* A new entry, unwritten: its bytes are in `out` (or `held` when `held`). */
static void push_pending(Conn *c, conn_reply_cb cb, void *ud, bool held)
{
    Pending *p = &c->fifo[(c->head + c->count) % c->cap];
    p->cb = cb;
    p->ud = ud;
    c->count++;
    if (held)
        c->n_held++;
    else
        c->n_out++;
    if (cb == on_handshake_reply)
        c->handshake_left++;
    update_ref(c);
}

/* The handshake's entries are counted off here, before their callback. */
static Pending pop_pending(Conn *c)
{
    Pending p = c->fifo[c->head];
    if (outstanding(c) == 0) { /* unwritten: only conn_close pops those */
        if (c->n_out > 0)
            c->n_out--;
        else
            c->n_held--;
    }
    c->head = (c->head + 1) % c->cap;
    c->count--;
    if (p.cb == on_handshake_reply)
        c->handshake_left--;
    update_ref(c);
    return p;
}

/* -- Output ------------------------------------------------------------- */

/* Room for `len` more bytes. */
static bool outbuf_reserve(OutBuf *b, size_t len)
{
    if (b->cap - b->len < len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < len)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (d == NULL)
            return false;
        b->data = d;
        b->cap = cap;
    }
    return true;
}

static bool outbuf_append(OutBuf *b, const char *data, size_t len)
{
    if (!outbuf_reserve(b, len))
        return false;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return true;
}

/* Frees a buffer grown past CONN_OUTBUF_KEEP once it is empty, so one
** burst does not pin memory. */
static void outbuf_trim(OutBuf *b)
{
    if (b->len == 0 && b->cap > CONN_OUTBUF_KEEP) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

/* Formats the command straight into the buffer (resp.h). */
static int append_command(OutBuf *b, int argc, const char **argv,
                          const size_t *argvlen)
{
    size_t len = resp_command_len(argc, argv, argvlen);
    if (!outbuf_reserve(b, len))
        return CR_ENOMEM;
    resp_write_command(b->data + b->len, argc, argv, argvlen);
    b->len += len;
    return CR_OK;
}

static void on_timer(uv_timer_t *t);
static void on_write(uv_write_t *req, int status);
static void peer_closed(Conn *c, ssize_t nread);

/* A write failed (in on_write, or synchronously: from the timer). */
static void write_failed(Conn *c, int status)
{
    if ((status == UV_EPIPE || status == UV_ECONNRESET) &&
        (c->state == CONN_TLS || c->state == CONN_HANDSHAKE)) {
        peer_closed(c, UV_ECONNRESET); /* it said why, or gets a hint */
        return;
    }
    failf(c, CR_ECONNRESET, "write to %s:%d: %s", uv_strerror(status));
}

/* A synchronous write failure, reported from the timer: the writes run
** inside the owner's loops (pool_command, the flush hook), which must not
** see the connection fail under them. The sticky write_error also stops
** every later write, so a broken socket is written to once at most. */
static void defer_write_error(Conn *c, int status)
{
    c->write_error = status;
    uv_timer_start(&c->timer, on_timer, 0, 0);
    uv_ref((uv_handle_t *)&c->timer);
}

/* Hands `src` to the socket; src is left empty. First uv_try_write: the
** kernel usually takes the whole batch at once, and then no write is in
** flight, so the next batch may follow in the same loop turn (pool.h).
** What it did not take (a full socket buffer) goes out through uv_write
** from `inflight` (src gets the old inflight's memory): at most one write
** in flight, whose on_write runs in a later loop turn. uv_try_write may
** raise SIGPIPE on a socket the server closed: see conn_quiet_sigpipe(). */
static bool start_write(Conn *c, OutBuf *src)
{
    uv_buf_t buf;
    buf.base = src->data;
    buf.len = src->len;
    int n = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    if (n == UV_EAGAIN)
        n = 0;
    if (n < 0) {
        src->len = 0;
        defer_write_error(c, n);
        return false;
    }
    c->writes++;
    if ((size_t)n == src->len) {
        src->len = 0;
        outbuf_trim(src);
        return true;
    }
    OutBuf spare = c->inflight;
    c->inflight = *src;
    *src = spare;
    src->len = 0;
    buf.base = c->inflight.data + n;
    buf.len = c->inflight.len - (size_t)n;
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (rc < 0) {
        c->inflight.len = 0;
        defer_write_error(c, rc);
        return false;
    }
    c->writing = true;
    return true;
}

/* Appends the session's pending ciphertext to cout. */
static bool drain_tls(Conn *c)
{
    size_t n = tls_out_len(c->tls);
    if (n == 0)
        return true;
    if (!outbuf_reserve(&c->cout, n))
        return false;
    c->cout.len += tls_out_read(c->tls, c->cout.data + c->cout.len, n);
    return true;
}

/* After an SSL call from a loop callback: drains its ciphertext and writes
** it unless a write is in flight (on_write sends it then). */
static void send_tls(Conn *c)
{
    if (!drain_tls(c)) {
        fail(c, CR_ENOMEM, cr_strerror(CR_ENOMEM));
        return;
    }
    if (!c->writing && c->cout.len > 0 && c->state != CONN_FAILED &&
        c->state != CONN_CLOSING)
        start_write(c, &c->cout);
}

static void on_write(uv_write_t *req, int status)
{
    Conn *c = req->data;
    c->writing = false;
    c->inflight.len = 0;
    outbuf_trim(&c->inflight);
    if (status < 0 && status != UV_ECANCELED) {
        write_failed(c, status);
        return;
    }
    if (c->tls == NULL)
        return;
    send_tls(c); /* records produced while this write was in flight */
    /* Bytes that waited behind it: the Redis handshake after the TLS
    ** handshake's last write, or commands held until READY whose flush
    ** found a TLS record going out (a connection without a pool has no
    ** flush hook to send them later). */
    if (!c->writing && (c->state == CONN_HANDSHAKE || c->state == CONN_READY))
        conn_flush(c);
}

/* -- Deadlines ---------------------------------------------------------- */

static void on_check(uv_check_t *h);

/* The deadline in force: the connect deadline until READY; then, while
** commands are outstanding, command_timeout_ms of silence after heard_ms.
** UINT64_MAX when there is none. */
static uint64_t next_deadline(const Conn *c)
{
    if (c->state != CONN_READY)
        return c->connect_deadline_ms;
    if (c->cfg.command_timeout_ms == 0 || outstanding(c) == 0)
        return UINT64_MAX;
    return c->heard_ms + c->cfg.command_timeout_ms;
}

static void start_timer(Conn *c, uint64_t deadline_ms)
{
    uint64_t now = uv_now(c->loop);
    uv_timer_start(&c->timer, on_timer,
                   deadline_ms > now ? deadline_ms - now : 0, 0);
}

/* Arms the timer for the earliest deadline. Leaves alone a report that is
** due now (resolve_error, write_error). */
static void arm_timer(Conn *c)
{
    if (c->resolve_error != 0 || c->write_error != 0 || c->tls_write_error)
        return;
    uint64_t dl = next_deadline(c);
    if (dl == UINT64_MAX)
        uv_timer_stop(&c->timer);
    else
        start_timer(c, dl);
}

static void on_timer(uv_timer_t *t)
{
    Conn *c = t->data;
    if (c->resolve_error != 0) {
        failf(c, CR_ECONNREFUSED, "resolve %s:%d: %s",
              uv_strerror(c->resolve_error));
        return;
    }
    if (c->write_error != 0) {
        write_failed(c, c->write_error);
        return;
    }
    if (c->tls_write_error) {
        failf(c, CR_ETLS, "%s:%d: TLS error: %s", tls_error(c->tls));
        return;
    }
    uint64_t now = uv_now(c->loop);
    if (next_deadline(c) > now) {
        arm_timer(c); /* fired early (its command was answered), or idle */
        return;
    }
    /* Due. But timers run before the poll: when the process kept the CPU
    ** past the deadline, a reply (or the connect, or the handshake's
    ** reply) may be waiting unread. on_check judges right after the poll,
    ** which reads it; meanwhile this timer keeps the poll from blocking.
    ** 1 ms, not 0: on libuv 1.44 a timer restarted with 0 ms from its own
    ** callback runs again in the same pass, before any poll. */
    if (!uv_is_active((uv_handle_t *)&c->check)) {
        c->checked_ms = now;
        uv_check_start(&c->check, on_check);
    }
    uv_timer_start(&c->timer, on_timer, 1, 0);
}

/* Runs right after the poll, only while a deadline is due. A deadline that
** had passed by checked_ms (loop time taken before this poll began) is a
** timeout: a byte that had arrived by then was read in this poll (and
** moved the deadline). */
static void on_check(uv_check_t *h)
{
    Conn *c = h->data;
    uint64_t before = c->checked_ms;
    uint64_t now = uv_now(c->loop);
    uint64_t dl = next_deadline(c);
    c->checked_ms = now;
    if (dl > now) { /* answered: nothing is due any more */
        uv_check_stop(h);
        arm_timer(c);
        return;
    }
    if (dl > before)
        return; /* due only since this poll began: judged after the next */
    char ms[24];
    if (c->state != CONN_READY && c->connect_deadline_ms <= before) {
        snprintf(ms, sizeof(ms), "%llu",
                 (unsigned long long)c->cfg.connect_timeout_ms);
        failf(c, CR_ETIMEDOUT,
              c->state == CONN_TLS
                  ? "TLS handshake with %s:%d: no answer within %s ms "
                    "(a server that does not speak TLS stays silent)"
                  : "connect to %s:%d: no answer within %s ms",
              ms);
        return;
    }
    snprintf(ms, sizeof(ms), "%llu",
             (unsigned long long)c->cfg.command_timeout_ms);
    failf(c, CR_ETIMEDOUT,
          "%s:%d: no reply within %s ms (silent with commands outstanding)",
          ms);
}

/* -- Input -------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    Conn *c = h->data;
    (void)hint;
    buf->base = c->rbuf;
    buf->len = sizeof(c->rbuf);
}

/* The server closed the socket (`nread`: UV_EOF, a read error), or sent
** TLS close_notify (UV_EOF). */
static void peer_closed(Conn *c, ssize_t nread)
{
    bool closed = nread == UV_EOF || nread == UV_ECONNRESET;
    /* Closed by the server (its idle timeout, CLIENT KILL, a restart)
    ** while nothing was queued or awaited: nothing is lost. */
    c->idle_closed = c->state == CONN_READY && c->count == 0 && closed;
    if (closed && c->state == CONN_HANDSHAKE && !c->heard_redis) {
        /* Before any Redis reply: a TLS port closes on a plaintext
        ** client; under TLS 1.3 a server rejects a client certificate
        ** (or its absence) only after the handshake. */
        if (c->tls == NULL)
            failf(c, CR_ECONNRESET, "%s:%d: %s",
                  "server closed the connection during the handshake; "
                  "if it requires TLS, use rediss:// or tls = true");
        else
            failf(c, CR_ETLS, "%s:%d: %s",
                  c->cfg.tls != NULL && tls_context_anonymous(c->cfg.tls)
                      ? "server closed the connection after the TLS "
                        "handshake; it may require a client certificate "
                        "(set cert_file and key_file)"
                      : "server closed the connection after the TLS "
                        "handshake; it may have rejected the client "
                        "certificate");
    } else if (c->state == CONN_TLS && closed) {
        failf(c, CR_ETLS, "%s:%d: TLS handshake failed: %s",
              "the server closed the connection");
    } else if (nread == UV_EOF) {
        failf(c, CR_ECONNRESET, "%s:%d: %s", "server closed the connection");
    } else {
        failf(c, CR_ECONNRESET, "read from %s:%d: %s", uv_strerror((int)nread));
    }
}

/* Plaintext for the redisReader. False when the connection failed. */
static bool feed_reader(Conn *c, const char *data, size_t len)
{
    c->heard_redis = true;
    if (redisReaderFeed(c->reader, data, len) != REDIS_OK) {
        fail(c, CR_EPROTO, c->reader->errstr);
        return false;
    }
    return true;
}

/* True for a pub/sub message: ["message", channel, payload] or
** ["pmessage", pattern, channel, payload]. */
static bool is_message(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return false;
    const redisReply *kind = r->element[0];
    return (kind->len == 7 && memcmp(kind->str, "message", 7) == 0) ||
           (kind->len == 8 && memcmp(kind->str, "pmessage", 8) == 0);
}

/* Hands every complete reply to its command, or a pub/sub message to the
** push handler. */
static void dispatch_replies(Conn *c)
{
    while (c->state == CONN_READY || c->state == CONN_HANDSHAKE) {
        void *reply = NULL;
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            fail(c, CR_EPROTO, c->reader->errstr);
            break;
        }
        if (reply == NULL)
            break; /* need more bytes */
        if (c->push_cb != NULL && (outstanding(c) == 0 || is_message(reply))) {
            c->push_cb(c->push_ud, reply);
            reply_free(reply);
            continue;
        }
        if (outstanding(c) == 0) {
            reply_free(reply);
            fail(c, CR_EPROTO, "reply without a command");
            break;
        }
        Pending p = pop_pending(c);
        p.cb(p.ud, CR_OK, reply);
        reply_free(reply);
    }
}

/* A TLS failure: during either handshake it is the handshake's. */
static void fail_tls(Conn *c)
{
    failf(c, CR_ETLS,
          c->state == CONN_READY ? "%s:%d: TLS error: %s"
                                 : "%s:%d: TLS handshake failed: %s",
          tls_error(c->tls));
}

/* TLS: `buf` holds ciphertext; once fed to the session, rbuf is free to
** take the plaintext. Replies complete before a close or an error are
** still delivered. */
static void read_tls(Conn *c, const char *buf, size_t len)
{
    if (!tls_feed(c->tls, buf, len)) {
        fail(c, CR_ENOMEM, cr_strerror(CR_ENOMEM));
        return;
    }
    if (c->state == CONN_TLS) {
        int rc = tls_handshake(c->tls);
        send_tls(c);
        if (rc == TLS_ERROR)
            fail_tls(c);
        if (rc != TLS_OK || c->state != CONN_TLS)
            return;
        c->state = CONN_HANDSHAKE;
        conn_flush(c); /* the Redis handshake, queued by conn_new */
    }
    int rc;
    size_t n;
    while ((rc = tls_read(c->tls, c->rbuf, sizeof(c->rbuf), &n)) == TLS_OK)
        if (!feed_reader(c, c->rbuf, n))
            return;
    send_tls(c); /* e.g. the answer to a key update */
    dispatch_replies(c);
    if (c->state != CONN_READY && c->state != CONN_HANDSHAKE)
        return; /* failed, or closed by a callback */
    if (rc == TLS_CLOSED)
        peer_closed(c, UV_EOF);
    else if (rc == TLS_ERROR)
        fail_tls(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    Conn *c = s->data;
    if (nread == 0)
        return; /* EAGAIN */
    if (nread < 0) {
        peer_closed(c, nread);
        return;
    }
    /* The server spoke: the silence starts again (loop time, taken right
    ** after the poll that found these bytes). */
    c->heard_ms = uv_now(c->loop);
    c->in_callback++;
    if (c->tls != NULL)
        read_tls(c, buf->base, (size_t)nread);
    else if (feed_reader(c, buf->base, (size_t)nread))
        dispatch_replies(c);
    c->in_callback--;
    maybe_free(c);
}

/* -- Handshake ---------------------------------------------------------- */

/* The status of a handshake's error reply `err`:
** - CR_EAUTH for a rejected login or database: WRONGPASS, NOAUTH, NOPERM,
**   "ERR invalid password" (before Redis 6), AUTH without a password set
**   on the server, and SELECT's "DB index" / "not allowed" errors;
** - CR_ECONNREFUSED for a server that cannot serve yet (LOADING, BUSY,
**   MASTERDOWN), like a refused connect: worth a retry;
** - CR_EREJECTED for anything else: the server refused this connection,
**   e.g. "ERR max number of clients reached" (sent right after accept),
**   "DENIED" (protected mode). Not a credentials problem. */
static int handshake_error(const char *err)
{
    static const char *const auth[] = {
        "WRONGPASS",
        "NOAUTH",
        "NOPERM",
        "ERR invalid password",
        "ERR AUTH", /* AUTH <password> called without any password... */
        "ERR Client sent AUTH",
        "ERR DB index",
        "ERR invalid DB index",
        "ERR SELECT"};
    static const char *const transient[] = {"LOADING", "BUSY", "MASTERDOWN"};
    for (size_t i = 0; i < sizeof(auth) / sizeof(auth[0]); i++)
        if (strncmp(err, auth[i], strlen(auth[i])) == 0)
            return CR_EAUTH;
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
        if (strncmp(err, transient[i], strlen(transient[i])) == 0)
            return CR_ECONNREFUSED;
    return CR_EREJECTED;
}

static void on_handshake_reply(void *ud, int status, const redisReply *r)
{
    Conn *c = ud;
    if (status != CR_OK)
        return; /* the connection is closing; its error is already set */
    if (r->type == REDIS_REPLY_ERROR) {
        fail(c, handshake_error(r->str), r->str);
        return;
    }
    if (c->handshake_left > 0) /* counted off by pop_pending */
        return;
    c->state = CONN_READY;
    /* Commands accepted while connecting go out now, behind the handshake
    ** (their FIFO entries already are). out is empty here: nothing but
    ** the handshake was queued there before READY. */
    if (c->held.len > 0) {
        if (!outbuf_append(&c->out, c->held.data, c->held.len)) {
            fail(c, CR_ENOMEM, cr_strerror(CR_ENOMEM));
            return;
        }
        c->held.len = 0;
        c->n_out += c->n_held;
        c->n_held = 0;
        conn_flush(c); /* if a write is in flight, the owner's next flush */
    }
    arm_timer(c); /* the connect deadline ends; the silence's starts */
    c->in_callback++;
    c->on_state(c->ud, c, CR_OK, "ready");
    c->in_callback--;
}

static int queue_internal(Conn *c, RedisCmd *cmd)
{
    if (!reserve_pending(c))
        return CR_ENOMEM;
    int rc = append_command(&c->out, cmd->argc, cmd->argv, cmd->lens);
    if (rc == CR_OK)
        push_pending(c, on_handshake_reply, c, false);
    return rc;
}

/* Queues AUTH and SELECT when configured, then PING: a server that wants a
** password we were not given answers -NOAUTH to PING, so that mistake is
** reported at connect rather than as an error reply to every command. */
static int queue_handshake(Conn *c)
{
    RedisCmd cmd;
    int rc = CR_OK;
    if (c->cfg.password != NULL) {
        cmd_auth(&cmd, c->cfg.username, c->cfg.password);
        rc = queue_internal(c, &cmd);
    }
    if (rc == CR_OK && c->cfg.db != 0) {
        cmd_select(&cmd, c->cfg.db);
        rc = queue_internal(c, &cmd);
    }
    if (rc == CR_OK) {
        cmd_ping(&cmd);
        rc = queue_internal(c, &cmd);
    }
    return rc;
}

/* -- Connecting --------------------------------------------------------- */

static void connect_next(Conn *c);

/* The socket of a refused attempt is closed: a fresh one tries the next
** address (a failed connect leaves the old one unusable). */
static void on_retry_closed(uv_handle_t *h)
{
    Conn *c = h->data;
    if (c->closing) { /* conn_close left this handle to us */
        c->open_handles--;
        maybe_free(c);
        return;
    }
    c->tcp_closing = false;
    uv_tcp_init(c->loop, &c->tcp);
    c->tcp.data = c;
    uv_unref((uv_handle_t *)&c->tcp);
    update_ref(c);
    c->in_callback++;
    connect_next(c);
    c->in_callback--;
}

static void connect_failed(Conn *c, int status)
{
    if (c->next_addr != NULL) {
        c->tcp_closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_retry_closed);
        return;
    }
    failf(c, CR_ECONNREFUSED, "connect to %s:%d: %s", uv_strerror(status));
}

static void on_connect(uv_connect_t *req, int status)
{
    Conn *c = req->data;
    if (status == UV_ECANCELED || c->closing || c->state != CONN_CONNECTING)
        return;
    if (status < 0) {
        connect_failed(c, status);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        failf(c, CR_ECONNRESET, "read from %s:%d: %s", uv_strerror(rc));
        return;
    }
    c->reading = true;
    if (c->cfg.tls == NULL) {
        c->state = CONN_HANDSHAKE;
        conn_flush(c); /* the handshake, queued by conn_new */
        return;
    }
    char err[TLS_ERRSTR_SIZE];
    c->tls = tls_session_new(c->cfg.tls, c->cfg.host, c->cfg.tls_server_name,
                             err, sizeof(err));
    if (c->tls == NULL) {
        failf(c, CR_ETLS, "%s:%d: TLS: %s", err);
        return;
    }
    c->state = CONN_TLS;
    if (tls_handshake(c->tls) == TLS_ERROR) { /* sends the ClientHello */
        fail_tls(c);
        return;
    }
    send_tls(c);
}

static void connect_next(Conn *c)
{
    struct addrinfo *ai = c->next_addr;
    c->next_addr = ai->ai_next;
    c->connect_req.data = c;
    int rc = uv_tcp_connect(&c->connect_req, &c->tcp, ai->ai_addr, on_connect);
    if (rc < 0)
        connect_failed(c, rc);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    Conn *c = req->data;
    c->gai_active = false;
    c->addrs = res;
    if (c->closing) {
        maybe_free(c);
        return;
    }
    if (status < 0 || res == NULL) {
        failf(c, CR_ECONNREFUSED, "resolve %s:%d: %s",
              uv_strerror(status < 0 ? status : UV_EAI_NONAME));
        return;
    }
    c->next_addr = res;
    c->state = CONN_CONNECTING;
    c->in_callback++;
    connect_next(c);
    c->in_callback--;
}

/* -- Public API --------------------------------------------------------- */

Conn *conn_new(uv_loop_t *loop, const ConnConfig *cfg, conn_state_cb on_state,
               void *ud)
{
    conn_quiet_sigpipe(); /* before its first write (conn.h) */
    Conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->reader = reply_reader_new();
    if (c->reader == NULL) {
        free(c);
        return NULL;
    }
    c->reader->maxbuf = CONN_READER_MAXBUF;
    c->loop = loop;
    c->cfg = *cfg;
    c->on_state = on_state;
    c->ud = ud;
    c->state = CONN_RESOLVING;
    c->err = CR_OK;
    /* First in the FIFO, before any command (no handle yet: no ref). */
    if (queue_handshake(c) != CR_OK) {
        free_conn(c);
        return NULL;
    }
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    uv_unref((uv_handle_t *)&c->tcp);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_unref((uv_handle_t *)&c->timer); /* a guard: requests keep the loop */
    uv_check_init(loop, &c->check);
    c->check.data = c;
    uv_unref((uv_handle_t *)&c->check); /* likewise */
    c->open_handles = 3;
    update_ref(c); /* referenced while replies are due */
    c->write_req.data = c;
    c->connect_deadline_ms = UINT64_MAX;
    if (cfg->connect_timeout_ms != 0) {
        uv_update_time(loop); /* see conn_command */
        c->connect_deadline_ms = uv_now(loop) + cfg->connect_timeout_ms;
        uv_timer_start(&c->timer, on_timer, cfg->connect_timeout_ms, 0);
    }

    char port[16];
    snprintf(port, sizeof(port), "%d", cfg->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    c->gai.data = c;
    int rc =
        uv_getaddrinfo(loop, &c->gai, on_resolved, cfg->host, port, &hints);
    if (rc < 0) {
        /* Reported from a loop callback, as on_state promises. */
        c->resolve_error = rc;
        uv_timer_start(&c->timer, on_timer, 0, 0);
        uv_ref((uv_handle_t *)&c->timer);
    } else {
        c->gai_active = true;
    }
    return c;
}

int conn_command(Conn *c, int argc, const char **argv, const size_t *argvlen,
                 conn_reply_cb cb, void *ud)
{
    if (c->state == CONN_FAILED || c->state == CONN_CLOSING)
        return CR_ECONNRESET;
    if (!reserve_pending(c))
        return CR_ENOMEM;
    bool ready = c->state == CONN_READY;
    int rc = append_command(ready ? &c->out : &c->held, argc, argv, argvlen);
    if (rc != CR_OK)
        return rc;
    push_pending(c, cb, ud, !ready); /* no deadline until it is written */
    return CR_OK;
}

/* TLS: encrypts `out` into cout, in slices so the session's buffer stays
** small. False when it failed (the error is reported from the timer). */
static bool encrypt_out(Conn *c)
{
    enum { SLICE = 64 * 1024 };
    bool ok = true;
    for (size_t at = 0; ok && at < c->out.len; at += SLICE) {
        size_t n = c->out.len - at < SLICE ? c->out.len - at : SLICE;
        ok = tls_write(c->tls, c->out.data + at, n) == TLS_OK;
        if (ok && !drain_tls(c)) {
            defer_write_error(c, UV_ENOMEM);
            return false;
        }
    }
    c->out.len = 0;
    outbuf_trim(&c->out);
    if (!ok) {
        c->tls_write_error = true;
        uv_timer_start(&c->timer, on_timer, 0, 0);
        uv_ref((uv_handle_t *)&c->timer);
    }
    return ok;
}

bool conn_flush(Conn *c)
{
    if (c->writing || c->out.len == 0 || c->write_error != 0 ||
        c->tls_write_error ||
        (c->state != CONN_READY && c->state != CONN_HANDSHAKE))
        return false;
    if (c->tls != NULL ? !encrypt_out(c) || !start_write(c, &c->cout)
                       : !start_write(c, &c->out))
        return false;
    if (outstanding(c) == 0) {
        /* Commands are outstanding again from now: the silence is measured
        ** from this write. The loop's clock stands still while Lua runs
        ** (tasks, or a script outside tasks that did not poll for a
        ** while): read the real time, once per such write. */
        uv_update_time(c->loop);
        c->heard_ms = uv_now(c->loop);
        if (c->state == CONN_READY && c->cfg.command_timeout_ms != 0 &&
            !uv_is_active((uv_handle_t *)&c->timer))
            start_timer(c, c->heard_ms + c->cfg.command_timeout_ms);
    }
    c->n_out = 0;
    return true;
}

bool conn_has_output(const Conn *c)
{
    return c->out.len > 0;
}

size_t conn_queued(const Conn *c)
{
    return c->state == CONN_READY ? c->n_out : 0;
}

/* Does nothing: its presence makes a write to a closed socket fail with
** EPIPE instead of ending the process. */
static void on_sigpipe(int signum)
{
    (void)signum;
}

void conn_quiet_sigpipe(void)
{
    static bool done; /* once per process: a later choice of the user's
                         (even SIG_DFL) is theirs */
    if (done)
        return;
    done = true;
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) != 0 || (old.sa_flags & SA_SIGINFO) ||
        old.sa_handler != SIG_DFL)
        return; /* ignored or handled already: left alone */
    struct sigaction quiet;
    memset(&quiet, 0, sizeof(quiet));
    quiet.sa_handler = on_sigpipe;
    quiet.sa_flags = SA_RESTART;
    sigemptyset(&quiet.sa_mask);
    sigaction(SIGPIPE, &quiet, NULL);
}

bool conn_ready(const Conn *c)
{
    return c->state == CONN_READY;
}

size_t conn_pending(const Conn *c)
{
    return commands_pending(c);
}

bool conn_idle_closed(const Conn *c)
{
    return c->idle_closed;
}

uint64_t conn_writes(const Conn *c)
{
    return c->writes;
}

void conn_set_push_handler(Conn *c, conn_push_cb cb, void *ud)
{
    c->push_cb = cb;
    c->push_ud = ud;
}

int conn_error(const Conn *c, const char **message)
{
    if (message != NULL)
        *message = c->errstr;
    return c->err;
}

void conn_close(Conn *c)
{
    if (c->closing)
        return;
    if (c->err == CR_OK) {
        c->err = CR_ECONNRESET;
        set_errstr(c, "connection closed", strlen("connection closed"));
    }
    c->closing = true;
    c->state = CONN_CLOSING;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    uv_timer_stop(&c->timer);
    c->in_callback++;
    while (c->count > 0) {
        Pending p = pop_pending(c);
        p.cb(p.ud, c->err, NULL);
    }
    c->in_callback--;
    if (c->gai_active)
        uv_cancel((uv_req_t *)&c->gai); /* its callback still runs */
    if (!c->tcp_closing) {
        c->tcp_closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
    uv_close((uv_handle_t *)&c->timer, on_closed);
    uv_close((uv_handle_t *)&c->check, on_closed);
    maybe_free(c);
}
