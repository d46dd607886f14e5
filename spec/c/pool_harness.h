/*
** pool_harness.h -- a PoolHarness for the pool and TLS tests: a loop, a
** pool and a private redis-server, with every state the pool reported;
** opening, running one command, finishing (every handle closed).
*/
#ifndef CACHERT_POOL_HARNESS_H
#define CACHERT_POOL_HARNESS_H

#include "pool.h"
#include "redis_fixture.h"
#include "reply_capture.h"

#define MAX_STATES 64

typedef struct PoolHarness {
    uv_loop_t loop;
    uv_loop_t *clock; /* the loop whose time on_state records */
    Pool *pool;
    RedisFixture fx;
    int nstates;
    int states[MAX_STATES];
    uint64_t state_ms[MAX_STATES];
    char message[512];
    int ready;
    int down;
} PoolHarness;

/* The pool_state_cb of a PoolHarness `ud`. */
static inline void on_state(void *ud, int status, const char *message)
{
    PoolHarness *h = ud;
    if (h->nstates < MAX_STATES) {
        h->states[h->nstates] = status;
        h->state_ms[h->nstates] = uv_now(h->clock);
    }
    h->nstates++;
    snprintf(h->message, sizeof(h->message), "%s", message);
    if (status == CR_OK)
        h->ready++;
    else
        h->down++;
}

/* Creates the pool, connects, and waits for the first state report. */
static inline void open_pool(PoolHarness *h, const PoolConfig *cfg)
{
    h->pool = pool_new(&h->loop, cfg, on_state, h);
    ASSERT_NOT_NULL(h->pool);
    pool_connect(h->pool);
    ASSERT_TRUE(wait_count(&h->loop, &h->nstates, 1, 5000));
}

/* Closes the pool, runs the loop dry, checks every handle closed, and
** stops the server. */
static inline void finish(PoolHarness *h)
{
    if (h->pool != NULL)
        pool_close(h->pool);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(0, uv_loop_close(&h->loop));
    redis_fixture_stop(&h->fx);
}

/* Runs one command to its reply (bounded wait); the caller frees it. */
static inline Result run(PoolHarness *h, int argc, const char **argv,
                         const size_t *lens)
{
    Result r;
    memset(&r, 0, sizeof(r));
    ASSERT_EQ_INT(CR_OK, pool_command(h->pool, argc, argv, lens, on_reply, &r));
    ASSERT_TRUE(wait_count(&h->loop, &r.calls, 1, 5000));
    ASSERT_EQ_INT(1, r.calls);
    return r;
}

/* The text of a bulk-string reply to `inline_cmd` (INFO, CLIENT LIST) from
** the plain server at `port`, over a fresh blocking socket; the side
** channel of the batching tests. False when no whole reply came within
** 2 s or it did not fit `outlen`. */
static inline bool server_text(int port, const char *inline_cmd, char *out,
                               size_t outlen)
{
    int fd = redis_fixture_send_inline(port, inline_cmd);
    if (fd < 0)
        return false;
    bool ok = false;
    size_t got = 0;
    struct pollfd pfd = {fd, POLLIN, 0};
    while (got + 1 < outlen && poll(&pfd, 1, 2000) == 1) {
        ssize_t r = read(fd, out + got, outlen - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        out[got] = '\0';
        char *eol = strstr(out, "\r\n");
        long len = out[0] == '$' ? strtol(out + 1, NULL, 10) : -1;
        if (eol != NULL && len >= 0 &&
            got >= (size_t)(eol + 2 - out) + (size_t)len + 2) {
            size_t start = (size_t)(eol + 2 - out);
            memmove(out, out + start, (size_t)len);
            out[len] = '\0';
            ok = true;
            break;
        }
    }
    close(fd);
    return ok;
}

/* How many times `needle` occurs in `text`. */
static inline int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *at = strstr(text, needle); at != NULL;
         at = strstr(at + 1, needle))
        n++;
    return n;
}

#endif
