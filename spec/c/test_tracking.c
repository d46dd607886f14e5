/*
** test_tracking.c -- a pool with client-side caching (tracking.h) against
** a private redis-server: the subscriber and CLIENT TRACKING on the data
** connections, invalidations of keys read, FLUSHALL, BCAST with a prefix,
** the subscriber killed (flush, then tracking again), a server that
** refuses CLIENT TRACKING, and closing. Also run under valgrind.
**
** Every wait is bounded by a uv timer; every test ends with every handle
** closed (uv_loop_close == 0) and its server stopped.
*/
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "pool.h"
#include "pool_harness.h"
#include "redis_fixture.h"
#include "status.h"
#include "test.h"

typedef PoolHarness Harness;

/* What the pool told: counts per event, the keys of the last TRACK_KEYS. */
typedef struct Events {
    int keys, flushed, flush, ready, refused;
    char last_keys[256];
    char refusal[256];
} Events;

static void on_event(void *ud, TrackEvent ev, const redisReply *keys,
                     const char *message)
{
    Events *e = ud;
    switch (ev) {
    case TRACK_KEYS:
        e->keys++;
        e->last_keys[0] = '\0';
        for (size_t i = 0; i < keys->elements; i++) {
            size_t n = strlen(e->last_keys);
            snprintf(e->last_keys + n, sizeof(e->last_keys) - n, "%s%.*s",
                     i ? "," : "", (int)keys->element[i]->len,
                     keys->element[i]->str);
        }
        break;
    case TRACK_FLUSHED:
        e->flushed++;
        break;
    case TRACK_FLUSH:
        e->flush++;
        break;
    case TRACK_READY:
        e->ready++;
        break;
    case TRACK_REFUSED:
        e->refused++;
        snprintf(e->refusal, sizeof(e->refusal), "%s", message);
        break;
    }
}

static void start(Harness *h, const char *const *extra)
{
    memset(h, 0, sizeof(*h));
    ASSERT_TRUE(redis_fixture_start(&h->fx, extra));
    ASSERT_EQ_INT(0, uv_loop_init(&h->loop));
    h->clock = &h->loop;
}

static PoolConfig config(const Harness *h, size_t size, Events *ev,
                         const char *prefix)
{
    PoolConfig cfg = {.host = "127.0.0.1",
                      .port = h->fx.port,
                      .size = size,
                      .connect_timeout_ms = 2000,
                      .command_timeout_ms = 500};
    cfg.tracking.enabled = true;
    cfg.tracking.prefix = prefix;
    cfg.tracking.prefix_len = prefix != NULL ? strlen(prefix) : 0;
    cfg.tracking.on_event = on_event;
    cfg.tracking.ud = ev;
    return cfg;
}

/* A side-channel command; its first reply line. */
static void query(Harness *h, const char *cmd, char *line, size_t n)
{
    ASSERT_TRUE(redis_fixture_query(&h->fx, cmd, line, n));
}

static void get(Harness *h, const char *key)
{
    Result r = run(h, 2, (const char *[]){"GET", key}, NULL);
    ASSERT_EQ_INT(CR_OK, r.status);
    result_free(&r);
}

static void test_tracking_tells_the_keys_read_then_changed(void)
{
    Harness h;
    Events ev;
    memset(&ev, 0, sizeof(ev));
    start(&h, NULL);
    PoolConfig cfg = config(&h, 3, &ev, NULL);
    open_pool(&h, &cfg);
    ASSERT_TRUE(wait_count(&h.loop, &ev.ready, 1, 5000));
    ASSERT_TRUE(pool_tracking_ready(h.pool));
    ASSERT_TRUE(ev.flush >= 1); /* starting: nothing tracked before it */

    char line[256];
    query(&h, "SET never-read 1", line, sizeof(line));
    query(&h, "SET read 1", line, sizeof(line));
    get(&h, "read");
    query(&h, "SET read 2", line, sizeof(line));
    ASSERT_TRUE(wait_count(&h.loop, &ev.keys, 1, 5000));
    ASSERT_EQ_STR("read", ev.last_keys);
    /* one-shot: read again to be told again; never-read never */
    query(&h, "SET read 3", line, sizeof(line));
    query(&h, "SET never-read 2", line, sizeof(line));
    get(&h, "read");
    query(&h, "DEL read", line, sizeof(line));
    ASSERT_TRUE(wait_count(&h.loop, &ev.keys, 2, 5000));
    ASSERT_EQ_STR("read", ev.last_keys);

    query(&h, "FLUSHALL", line, sizeof(line));
    ASSERT_TRUE(wait_count(&h.loop, &ev.flushed, 1, 5000));
    ASSERT_EQ_INT(0, ev.refused);
    finish(&h);
}

static void test_tracking_bcast_tells_every_key_under_the_prefix(void)
{
    Harness h;
    Events ev;
    memset(&ev, 0, sizeof(ev));
    start(&h, NULL);
    PoolConfig cfg = config(&h, 2, &ev, "ns:");
    open_pool(&h, &cfg);
    ASSERT_TRUE(wait_count(&h.loop, &ev.ready, 1, 5000));
    char line[256];
    query(&h, "SET other 1", line, sizeof(line));
    query(&h, "SET ns:unread 1", line, sizeof(line));
    ASSERT_TRUE(wait_count(&h.loop, &ev.keys, 1, 5000));
    ASSERT_EQ_STR("ns:unread", ev.last_keys);
    finish(&h);
}

static void test_tracking_flushes_and_comes_back_when_the_subscriber_dies(void)
{
    Harness h;
    Events ev;
    memset(&ev, 0, sizeof(ev));
    start(&h, NULL);
    PoolConfig cfg = config(&h, 2, &ev, NULL);
    open_pool(&h, &cfg);
    ASSERT_TRUE(wait_count(&h.loop, &ev.ready, 1, 5000));
    int flush0 = ev.flush;
    char line[256];
    query(&h, "CLIENT KILL TYPE pubsub", line, sizeof(line));
    ASSERT_EQ_STR(":1", line);
    ASSERT_TRUE(wait_count(&h.loop, &ev.flush, flush0 + 1, 5000));
    /* a new subscriber, tracking redirected to it: told again */
    ASSERT_TRUE(wait_count(&h.loop, &ev.ready, 2, 5000));
    ASSERT_TRUE(pool_tracking_ready(h.pool));
    ASSERT_TRUE(pool_ready(h.pool)); /* the data connections never noticed */
    query(&h, "SET k 1", line, sizeof(line));
    get(&h, "k");
    query(&h, "SET k 2", line, sizeof(line));
    ASSERT_TRUE(wait_count(&h.loop, &ev.keys, 1, 5000));
    ASSERT_EQ_STR("k", ev.last_keys);
    finish(&h);
}

static void test_tracking_flushes_when_a_data_connection_is_replaced(void)
{
    Harness h;
    Events ev;
    memset(&ev, 0, sizeof(ev));
    start(&h, NULL);
    PoolConfig cfg = config(&h, 1, &ev, NULL);
    open_pool(&h, &cfg);
    ASSERT_TRUE(wait_count(&h.loop, &ev.ready, 1, 5000));
    redis_fixture_sleep_ms(150); /* past the replacement's minimum age */
    int flush0 = ev.flush;
    char line[256];
    query(&h, "CLIENT KILL TYPE normal SKIPME no", line, sizeof(line));
    ASSERT_TRUE(wait_count(&h.loop, &ev.flush, flush0 + 1, 5000));
    /* the replacement tracks before anything else it carries */
    query(&h, "SET r 1", line, sizeof(line));
    get(&h, "r");
    query(&h, "SET r 2", line, sizeof(line));
    ASSERT_TRUE(wait_count(&h.loop, &ev.keys, 1, 5000));
    ASSERT_EQ_STR("r", ev.last_keys);
    finish(&h);
}

static void test_tracking_refused_by_an_acl_is_reported_once(void)
{
    Harness h;
    Events ev;
    memset(&ev, 0, sizeof(ev));
    /* a user that may read and write keys but not run CLIENT */
    static const char *const extra[] = {
        "--user", "app", "on", ">pw", "~*", "&*", "+@all", "-client", NULL};
    start(&h, extra);
    PoolConfig cfg = config(&h, 2, &ev, NULL);
    cfg.username = "app";
    cfg.password = "pw";
    open_pool(&h, &cfg);
    ASSERT_TRUE(pool_ready(h.pool));
    ASSERT_TRUE(wait_count(&h.loop, &ev.refused, 1, 5000));
    ASSERT_TRUE(strstr(ev.refusal, "refused") != NULL);
    ASSERT_FALSE(pool_tracking_ready(h.pool));
    get(&h, "still-works");
    ASSERT_EQ_INT(0, ev.ready);
    finish(&h);
}

static void test_tracking_close_with_the_subscriber_connecting(void)
{
    Harness h;
    Events ev;
    memset(&ev, 0, sizeof(ev));
    start(&h, NULL);
    PoolConfig cfg = config(&h, 2, &ev, "p:");
    h.pool = pool_new(&h.loop, &cfg, on_state, &h);
    ASSERT_NOT_NULL(h.pool);
    pool_connect(h.pool);
    run_for(&h.loop, 5); /* the attempt starts: nothing is ready yet */
    finish(&h);
}

static const TestCase cases[] = {
    TEST_CASE(test_tracking_tells_the_keys_read_then_changed),
    TEST_CASE(test_tracking_bcast_tells_every_key_under_the_prefix),
    TEST_CASE(test_tracking_flushes_and_comes_back_when_the_subscriber_dies),
    TEST_CASE(test_tracking_flushes_when_a_data_connection_is_replaced),
    TEST_CASE(test_tracking_refused_by_an_acl_is_reported_once),
    TEST_CASE(test_tracking_close_with_the_subscriber_connecting),
    {NULL, NULL},
};

TEST_MAIN(cases)
