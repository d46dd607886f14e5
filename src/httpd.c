/*
** httpd.c -- the metrics endpoint's HTTP/1.x server (see httpd.h).
**
** One Conn per accepted connection, with two handles (the socket and a
** timer); it goes READING -> (WAITING ->) WRITING -> LINGER -> closed, and
** is freed once both handles' close callbacks have run. The Httpd itself
** is freed when it was closed and its listener and last Conn are gone.
** Requests are read into a buffer of max_request_bytes + 1 and parsed once
** the blank line ending the headers arrived: no state machine across
** reads, and the bound on the buffer is the bound on the work.
*/
#include "httpd.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

enum { CONN_READING, CONN_WAITING, CONN_WRITING, CONN_LINGER, CONN_CLOSING };

/* After the answer was sent, what the client still sends is read and
** dropped this long, so that closing does not reset the connection (and
** lose the answer) while the client is still writing. */
#define LINGER_MS 2000

typedef struct Conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write;
    uv_shutdown_t shutdown;
    Httpd *h;
    struct Conn *prev, *next; /* on h->conns until freed */
    int state;
    int open_handles; /* of tcp and timer, not closed yet */
    bool head;        /* a HEAD request: no body in the answer */
    bool http10;      /* answer as HTTP/1.0 */
    char *out;        /* the answer being written */
    size_t len;       /* bytes of the request in buf */
    char buf[];       /* max_request_bytes + 1 */
} Conn;

struct Httpd {
    uv_loop_t *loop;
    uv_tcp_t listener;
    HttpdConfig cfg;
    char *path;
    char host[64];
    int port;
    Conn *conns;
    size_t nconns;    /* Conns not freed yet */
    size_t nwaiting;  /* Conns in CONN_WAITING */
    bool signalled;   /* on_ready called and not yet responded to */
    bool closing;     /* httpd_close() was called */
    bool listener_up; /* the listener's close callback has not run */
    /* A connection refused for want of memory is accepted into this and
    ** closed at once: libuv stops watching a listener whose queued
    ** connection is never accepted, which would end the endpoint. */
    uv_tcp_t spare;
    bool spare_busy; /* spare is open or closing */
};

/* -- Statuses ----------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* -- Lifetime ----------------------------------------------------------- */

static void maybe_free_server(Httpd *h)
{
    if (h->closing && !h->listener_up && h->nconns == 0 && !h->spare_busy) {
        free(h->path);
        free(h);
    }
}

static void on_conn_handle_closed(uv_handle_t *handle)
{
    Conn *c = handle->data;
    if (--c->open_handles > 0)
        return;
    Httpd *h = c->h;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    h->nconns--;
    free(c->out);
    free(c);
    maybe_free_server(h);
}

/* A waiting request is answered or gone. With none left, a later one
** signals the owner again even if the owner never answered (its handler
** failed): the endpoint does not stay stuck on 503s. */
static void leave_waiting(Httpd *h)
{
    if (--h->nwaiting == 0)
        h->signalled = false;
}

/* Closes both handles; pending writes and shutdowns get UV_ECANCELED. */
static void conn_close(Conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    if (c->state == CONN_WAITING)
        leave_waiting(c->h);
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_listener_closed(uv_handle_t *handle)
{
    Httpd *h = handle->data;
    h->listener_up = false;
    maybe_free_server(h);
}

/* -- Answers ------------------------------------------------------------ */

static void on_timeout(uv_timer_t *t);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *handle, size_t hint, uv_buf_t *buf)
{
    Conn *c = handle->data;
    size_t cap = c->h->cfg.max_request_bytes + 1;
    (void)hint;
    if (c->state != CONN_READING)
        c->len = 0; /* lingering: the bytes are dropped */
    buf->base = c->buf + c->len;
    buf->len = cap - c->len;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    Conn *c = req->data;
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    c->state = CONN_LINGER;
    uv_timer_start(&c->timer, on_timeout, LINGER_MS, 0);
}

static void on_written(uv_write_t *req, int status)
{
    Conn *c = req->data;
    free(c->out);
    c->out = NULL;
    if (c->state == CONN_CLOSING)
        return;
    /* FIN first, then drain until the client closes too. */
    c->shutdown.data = c;
    if (status < 0 ||
        uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        conn_close(c);
}

/* Starts writing the answer; the connection closes after it. */
static void conn_answer(Conn *c, int status, const char *extra_headers,
                        const char *content_type, const char *body, size_t len)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.%d %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "%s"
                     "Connection: close\r\n"
                     "\r\n",
                     c->http10 ? 0 : 1, status, reason(status), content_type,
                     len, extra_headers);
    if (c->state == CONN_WAITING)
        leave_waiting(c->h);
    c->state = CONN_WRITING;
    uv_read_stop((uv_stream_t *)&c->tcp);
    size_t body_len = c->head ? 0 : len;
    if (n < 0 || (size_t)n >= sizeof(head) ||
        (c->out = malloc((size_t)n + body_len + 1)) == NULL) {
        conn_close(c);
        return;
    }
    memcpy(c->out, head, (size_t)n);
    if (body_len > 0)
        memcpy(c->out + n, body, body_len);
    uv_buf_t buf = uv_buf_init(c->out, (unsigned int)((size_t)n + body_len));
    c->write.data = c;
    /* A slow reader gets one more timeout to take the answer. */
    uv_timer_start(&c->timer, on_timeout, c->h->cfg.timeout_ms, 0);
    if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0)
        conn_close(c);
}

/* A short text/plain answer of the server's own. */
static void conn_error(Conn *c, int status, const char *text)
{
    const char *extra = status == 405 ? "Allow: GET, HEAD\r\n" : "";
    conn_answer(c, status, extra, "text/plain; charset=utf-8", text,
                strlen(text));
}

static void on_timeout(uv_timer_t *t)
{
    Conn *c = t->data;
    switch (c->state) {
    case CONN_READING:
        conn_error(c, 408, "request not received in time\n");
        break;
    case CONN_WAITING: /* the owner never answered: its loop is stuck */
        conn_error(c, 503, "metrics not rendered in time\n");
        break;
    default: /* the answer was not taken in time, or lingering is over */
        conn_close(c);
        break;
    }
}

/* -- Parsing ------------------------------------------------------------ */

static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* The length of the line at `p` (`end` excluded) without its CRLF or LF,
** and the start of the next one in *next; -1 for a line with a bare CR. */
static long line_length(const char *p, const char *end, const char **next)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL)
        return -1;
    *next = nl + 1;
    const char *stop = (nl > p && nl[-1] == '\r') ? nl - 1 : nl;
    if (memchr(p, '\r', (size_t)(stop - p)) != NULL)
        return -1;
    return (long)(stop - p);
}

static bool equal_nocase(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

/* Checks the headers from `p` to the blank line; counts Host headers. */
static bool headers_ok(const char *p, const char *end, int *hosts)
{
    for (;;) {
        const char *next;
        long len = line_length(p, end, &next);
        if (len < 0)
            return false;
        if (len == 0)
            return true;
        const char *colon = memchr(p, ':', (size_t)len);
        if (colon == NULL || colon == p)
            return false; /* also a folded line (leading space or tab) */
        for (const char *q = p; q < colon; q++)
            if (!is_tchar((unsigned char)*q))
                return false;
        for (const char *q = colon + 1; q < p + len; q++) {
            unsigned char ch = (unsigned char)*q;
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return false;
        }
        if (equal_nocase(p, (size_t)(colon - p), "host"))
            (*hosts)++;
        p = next;
    }
}

/* Parses the complete request in c->buf (its headers end at `end`) and
** either answers it or makes it wait for the owner. */
static void conn_request(Conn *c, const char *end)
{
    Httpd *h = c->h;
    const char *p = c->buf, *next;
    long len = line_length(p, end, &next);
    if (len <= 0 || memchr(c->buf, '\0', (size_t)(end - c->buf)) != NULL) {
        conn_error(c, 400, "malformed request\n");
        return;
    }
    /* METHOD SP target SP HTTP/x.y, single spaces */
    const char *line_end = p + len;
    const char *sp1 = memchr(p, ' ', (size_t)len);
    const char *sp2 =
        sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
    if (sp1 == NULL || sp2 == NULL || sp1 == p || sp2 == sp1 + 1 ||
        memchr(sp2 + 1, ' ', (size_t)(line_end - sp2 - 1)) != NULL) {
        conn_error(c, 400, "malformed request line\n");
        return;
    }
    for (const char *q = p; q < sp1; q++)
        if (!is_tchar((unsigned char)*q)) {
            conn_error(c, 400, "malformed request method\n");
            return;
        }
    for (const char *q = sp1 + 1; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q == 0x7f) {
            conn_error(c, 400, "malformed request target\n");
            return;
        }
    /* A HEAD gets no body, whatever the answer (errors included). */
    size_t mlen = (size_t)(sp1 - p);
    c->head = mlen == 4 && memcmp(p, "HEAD", 4) == 0;
    const char *ver = sp2 + 1;
    size_t vlen = (size_t)(line_end - ver);
    if (vlen != 8 || memcmp(ver, "HTTP/", 5) != 0 || ver[5] < '0' ||
        ver[5] > '9' || ver[6] != '.' || ver[7] < '0' || ver[7] > '9') {
        conn_error(c, 400, "malformed HTTP version\n");
        return;
    }
    c->http10 = ver[5] == '1' && ver[7] == '0';
    if (ver[5] != '1' || (ver[7] != '0' && ver[7] != '1')) {
        c->http10 = false;
        conn_error(c, 505, "only HTTP/1.0 and HTTP/1.1 are served\n");
        return;
    }
    int hosts = 0;
    if (!headers_ok(next, end, &hosts)) {
        conn_error(c, 400, "malformed header\n");
        return;
    }
    if (hosts > 1 || (hosts == 0 && !c->http10)) {
        conn_error(c, 400, "an HTTP/1.1 request needs one Host header\n");
        return;
    }
    /* The path, with any query string ignored. */
    size_t tlen = (size_t)(sp2 - sp1 - 1);
    const char *query = memchr(sp1 + 1, '?', tlen);
    if (query != NULL)
        tlen = (size_t)(query - sp1 - 1);
    if (tlen != strlen(h->path) || memcmp(sp1 + 1, h->path, tlen) != 0) {
        char text[128];
        snprintf(text, sizeof(text), "not found: the metrics are at %s\n",
                 h->path);
        conn_error(c, 404, text);
        return;
    }
    if (!c->head && !(mlen == 3 && memcmp(p, "GET", 3) == 0)) {
        conn_error(c, 405, "method not allowed: use GET\n");
        return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->state = CONN_WAITING;
    h->nwaiting++;
    if (!h->signalled)
        h->signalled = h->cfg.on_ready(h->cfg.ud);
}

/* The end of the headers (just past the blank line) in buf[0, len), or
** NULL; the search starts at `from`. */
static const char *headers_end(const char *buf, size_t len, size_t from)
{
    for (size_t i = from; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            return buf + i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return buf + i + 3;
    }
    return NULL;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    Conn *c = s->data;
    (void)buf;
    if (c->state == CONN_CLOSING)
        return;
    if (nread < 0) {
        if (c->state == CONN_READING && nread == UV_EOF && c->len > 0)
            conn_error(c, 400, "incomplete request\n"); /* half-closed */
        else if (c->state == CONN_READING || c->state == CONN_LINGER)
            conn_close(c);
        return;
    }
    if (c->state != CONN_READING)
        return; /* lingering: dropped */
    size_t from = c->len > 2 ? c->len - 2 : 0;
    c->len += (size_t)nread;
    const char *end = headers_end(c->buf, c->len, from);
    if (end != NULL)
        conn_request(c, end);
    else if (c->len > c->h->cfg.max_request_bytes)
        conn_error(c, 431, "request line and headers too large\n");
}

/* -- Listener ----------------------------------------------------------- */

static void on_spare_closed(uv_handle_t *handle)
{
    Httpd *h = handle->data;
    h->spare_busy = false;
    maybe_free_server(h);
}

/* Accepts the queued connection and closes it (the client sees a reset).
** With the spare still closing from the last refusal, the connection stays
** queued: this is out of memory twice within one loop turn. */
static void refuse_connection(Httpd *h, uv_stream_t *server)
{
    if (h->spare_busy)
        return;
    h->spare_busy = true;
    uv_tcp_init(h->loop, &h->spare);
    h->spare.data = h;
    (void)uv_accept(server, (uv_stream_t *)&h->spare);
    uv_close((uv_handle_t *)&h->spare, on_spare_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    Httpd *h = server->data;
    if (status < 0 || h->closing)
        return;
    Conn *c = malloc(sizeof(*c) + h->cfg.max_request_bytes + 1);
    if (c == NULL) {
        refuse_connection(h, server);
        return;
    }
    memset(c, 0, sizeof(*c));
    c->h = h;
    uv_tcp_init(h->loop, &c->tcp);
    uv_timer_init(h->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->state = CONN_READING;
    c->next = h->conns;
    if (h->conns != NULL)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    uv_unref((uv_handle_t *)&c->tcp);
    uv_unref((uv_handle_t *)&c->timer);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        h->nconns > h->cfg.max_conns ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, h->cfg.timeout_ms, 0);
}

/* -- Public API --------------------------------------------------------- */

int httpd_open(uv_loop_t *loop, const HttpdConfig *cfg, Httpd **out, char *err,
               size_t errlen)
{
    struct sockaddr_storage addr;
    bool v6 = strchr(cfg->host, ':') != NULL;
    int rc =
        v6 ? uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&addr)
           : uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&addr);
    const char *fmt = v6 ? "[%s]:%d" : "%s:%d";
    char where[96];
    snprintf(where, sizeof(where), fmt, cfg->host, cfg->port);
    if (rc != 0) {
        snprintf(err, errlen,
                 "cannot listen on %s: the host must be a numeric IPv4 or "
                 "IPv6 address",
                 where);
        return CR_EINVAL;
    }
    Httpd *h = calloc(1, sizeof(*h));
    char *path = strdup(cfg->path);
    if (h == NULL || path == NULL) {
        free(h);
        free(path);
        snprintf(err, errlen, "%s", cr_strerror(CR_ENOMEM));
        return CR_ENOMEM;
    }
    h->loop = loop;
    h->cfg = *cfg;
    h->path = path;
    h->cfg.path = path;
    h->cfg.host = NULL; /* the caller's string: h->host holds the bound one */
    uv_tcp_init(loop, &h->listener);
    h->listener.data = h;
    h->listener_up = true;
    uv_unref((uv_handle_t *)&h->listener);
    /* Only this address: no dual-stack listening on an IPv6 one. */
    rc = uv_tcp_bind(&h->listener, (const struct sockaddr *)&addr,
                     v6 ? UV_TCP_IPV6ONLY : 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&h->listener, 64, on_connection);
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    if (rc == 0)
        rc = uv_tcp_getsockname(&h->listener, (struct sockaddr *)&bound, &blen);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", where,
                 uv_strerror(rc));
        h->closing = true;
        uv_close((uv_handle_t *)&h->listener, on_listener_closed);
        return CR_EINVAL;
    }
    if (bound.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&bound;
        uv_ip6_name(a, h->host, sizeof(h->host));
        h->port = ntohs(a->sin6_port);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&bound;
        uv_ip4_name(a, h->host, sizeof(h->host));
        h->port = ntohs(a->sin_port);
    }
    *out = h;
    return CR_OK;
}

const char *httpd_host(const Httpd *h)
{
    return h->host;
}

int httpd_port(const Httpd *h)
{
    return h->port;
}

size_t httpd_waiting(const Httpd *h)
{
    return h->nwaiting;
}

bool httpd_respond(Httpd *h, int status, const char *content_type,
                   const char *body, size_t len)
{
    bool ok = true;
    h->signalled = false;
    Conn *c = h->conns;
    while (c != NULL) {
        Conn *next = c->next; /* conn_answer may close c, not free it */
        if (c->state == CONN_WAITING) {
            conn_answer(c, status, "", content_type, body, len);
            ok = ok && c->out != NULL;
        }
        c = next;
    }
    return ok;
}

void httpd_close(Httpd *h)
{
    if (h->closing)
        return;
    h->closing = true;
    for (Conn *c = h->conns; c != NULL; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&h->listener, on_listener_closed);
}
