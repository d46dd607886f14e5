/*
** httpd.h -- a minimal HTTP/1.x server on a libuv loop, for one path
** (the metrics endpoint).
**
** It answers by itself everything but a good GET or HEAD of its path:
** 400 (malformed request), 404 (another path), 405 (another method), 408
** (request not complete in time), 431 (request line and headers over the
** bound), 503 (the owner did not answer within the timeout), 505 (HTTP
** other than 1.0 and 1.1). A good request waits for the
** owner, which is told through `on_ready` and answers every waiting request
** at once with httpd_respond(). Every answer carries Content-Length and
** `Connection: close`; the connection then closes (after a lingering read
** of what the client still sends, so it gets the answer, not a reset).
**
** Every handle is unreferenced: the server never keeps uv_run() going on
** its own, so it never keeps a process alive. Nothing here calls Lua.
*/
#ifndef CACHERT_HTTPD_H
#define CACHERT_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct Httpd Httpd;

/* A request of the path is complete and waits for httpd_respond(); called
** once until the owner responds (later requests wait with the first).
** Called from a loop callback: it must not close the server. Returns
** false when the owner could not take note (out of memory): the next
** request calls it again. */
typedef bool (*httpd_ready_cb)(void *ud);

typedef struct HttpdConfig {
    const char *host;         /* a numeric IPv4 or IPv6 address */
    int port;                 /* 0 to 65535; 0: an ephemeral port */
    const char *path;         /* the path served, e.g. "/metrics" */
    uint64_t timeout_ms;      /* to receive the request; again to send */
    size_t max_request_bytes; /* request line and headers */
    size_t max_conns;         /* more are accepted and closed at once */
    httpd_ready_cb on_ready;
    void *ud;
} HttpdConfig;

#define HTTPD_DEFAULT_MAX_REQUEST_BYTES 8192
#define HTTPD_DEFAULT_MAX_CONNS         64

/* Binds cfg->host:cfg->port and listens on `loop`. `cfg` is copied (its
** strings too). Returns CR_OK and the server in *out; CR_ENOMEM; or
** CR_EINVAL (a host that is not a numeric address, or the bind or listen
** failed) with a message in `err` (e.g. "cannot listen on 127.0.0.1:9145:
** address already in use"); nothing is left open on failure. */
int httpd_open(uv_loop_t *loop, const HttpdConfig *cfg, Httpd **out, char *err,
               size_t errlen);

/* The bound address (numeric) and port: the ephemeral port for port 0.
** Valid until httpd_close(). */
const char *httpd_host(const Httpd *h);
int httpd_port(const Httpd *h);

/* Requests waiting for httpd_respond(). */
size_t httpd_waiting(const Httpd *h);

/* Answers every waiting request with `status` (200 or 500, say) and the
** `len` bytes of `body` (copied; NULL when len is 0), of `content_type`;
** HEAD requests get the headers only. Waiting requests later call
** on_ready again. Returns false when out of memory (those requests are
** closed unanswered). */
bool httpd_respond(Httpd *h, int status, const char *content_type,
                   const char *body, size_t len);

/* Closes the listener and every connection (answers being sent are cut
** short). The memory is freed by the loop once every handle's close
** callback has run: run the loop (evloop_close does) before closing it.
** `h` must not be used afterwards. */
void httpd_close(Httpd *h);

#endif
