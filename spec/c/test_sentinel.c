/*
** test_sentinel.c -- the Sentinel backend (sentinel.h) against a private
** topology (sentinel_fixture.h): discovery, a SIGKILLed primary and a
** SENTINEL FAILOVER under a flow of commands (with the measured times),
** sentinels down, an old primary restarted, a refused sentinel login, an
** unknown master name.
**
** Every wait is bounded by a uv timer; every test ends with every handle
** closed (uv_loop_close == 0) and its processes stopped by PID.
*/
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <uv.h>

#include "backend.h"
#include "conn.h"
#include "reply_capture.h"
#include "sentinel_fixture.h"
#include "status.h"
#include "test.h"

#define MAX_STATES 256

typedef struct Harness {
    uv_loop_t loop;
    SentinelFixture sf;
    Backend *b;
    RedisAddr addrs[SENTINEL_FIXTURE_COUNT + 1];
    size_t naddrs;
    int nstates;
    int states[MAX_STATES];
    uint64_t state_ms[MAX_STATES];
    char message[1024];
    char ready_message[1024];
    int ready;
    int down;

    /* The flow of commands (a SET every FLOW_MS while ready). */
    uv_timer_t flow;
    bool flowing;
    int sent;
    int ok;
    int failed;  /* transport failures: the backend went down under them */
    int refused; /* refused by the backend (not ready) */

    /* The test's own +switch-master subscriber. */
    Conn *watch;
    int switches;
    uint64_t switch_ms;
} Harness;

#define FLOW_MS 5

/* -- Helpers ------------------------------------------------------------ */

static void on_state(void *ud, int status, const char *message)
{
    Harness *h = ud;
    if (h->nstates < MAX_STATES) {
        h->states[h->nstates] = status;
        h->state_ms[h->nstates] = sentinel_fixture_now_ms();
    }
    h->nstates++;
    snprintf(h->message, sizeof(h->message), "%s", message);
    if (status == CR_OK) {
        h->ready++;
        snprintf(h->ready_message, sizeof(h->ready_message), "%s", message);
    } else {
        h->down++;
    }
}

/* Starts the topology (sentinels with `password`, or none) and a loop. */
static void start(Harness *h, const char *password)
{
    memset(h, 0, sizeof(*h));
    ASSERT_TRUE(sentinel_fixture_start(&h->sf, password));
    ASSERT_EQ_INT(0, uv_loop_init(&h->loop));
    for (size_t i = 0; i < SENTINEL_FIXTURE_COUNT; i++) {
        h->addrs[i].host = "127.0.0.1";
        h->addrs[i].port = h->sf.sentinels[i].port;
    }
    h->naddrs = SENTINEL_FIXTURE_COUNT;
}

static RedisConfig config(const Harness *h, const char *master,
                          const char *sentinel_password)
{
    RedisConfig cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.pool.size = 2;
    cfg.pool.connect_timeout_ms = 1000;
    cfg.pool.command_timeout_ms = 1000;
    cfg.sentinels = h->addrs;
    cfg.nsentinels = h->naddrs;
    cfg.sentinel_master = master;
    cfg.sentinel_password = sentinel_password;
    return cfg;
}

/* Creates the backend and waits for its first report. */
static void open_backend(Harness *h, const RedisConfig *cfg)
{
    h->b = backend_new(&h->loop, cfg, on_state, h);
    ASSERT_NOT_NULL(h->b);
    backend_connect(h->b);
    ASSERT_TRUE(wait_count(&h->loop, &h->nstates, 1, 10000));
}

static void finish(Harness *h)
{
    if (h->flowing) {
        uv_close((uv_handle_t *)&h->flow, NULL);
        h->flowing = false;
    }
    if (h->watch != NULL)
        conn_close(h->watch);
    if (h->b != NULL)
        backend_close(h->b);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(0, uv_loop_close(&h->loop));
    sentinel_fixture_stop(&h->sf);
}

/* Runs one command through the backend to its reply. */
static Result run(Harness *h, int argc, const char **argv)
{
    Result r;
    memset(&r, 0, sizeof(r));
    ASSERT_EQ_INT(CR_OK, backend_command(h->b, argc, argv, NULL, on_reply, &r));
    ASSERT_TRUE(wait_count(&h->loop, &r.calls, 1, 3000));
    ASSERT_EQ_INT(1, r.calls);
    return r;
}

/* SET key value through the backend; asserts +OK. */
static void set_through(Harness *h, const char *key, const char *value)
{
    Result r = run(h, 3, (const char *[]){"SET", key, value});
    ASSERT_EQ_INT(CR_OK, r.status);
    ASSERT_EQ_STR("OK", r.str);
    result_free(&r);
}

/* GET key straight from the data node on `port` ("" when absent). */
static void expect_on_node(int port, const char *key, const char *want)
{
    redisReply *r = sentinel_fixture_command(port, NULL, "GET %s", key);
    ASSERT_NOT_NULL(r);
    ASSERT_EQ_STR(want, r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

static void expect_role(int port, const char *want)
{
    char role[32];
    ASSERT_TRUE(sentinel_fixture_role(port, role, sizeof(role)));
    ASSERT_EQ_STR(want, role);
}

/* The ready message names the data node it connected to. */
static void expect_ready_on(const Harness *h, int port)
{
    char where[64];
    snprintf(where, sizeof(where), "127.0.0.1:%d ", port);
    if (strstr(h->ready_message, where) == NULL)
        TEST_FAIL_("ready on the wrong node: \"%s\", expected %s",
                   h->ready_message, where);
}

/* -- The flow of commands ----------------------------------------------- */

static void on_flow_reply(void *ud, int status, const redisReply *r)
{
    Harness *h = ud;
    if (status == CR_OK && r->type != REDIS_REPLY_ERROR)
        h->ok++;
    else
        h->failed++;
}

static void on_flow(uv_timer_t *t)
{
    Harness *h = t->data;
    char key[32];
    snprintf(key, sizeof(key), "flow:%d", h->sent);
    if (!backend_ready(h->b) ||
        backend_command(h->b, 3, (const char *[]){"SET", key, "v"}, NULL,
                        on_flow_reply, h) != CR_OK) {
        h->refused++;
        return;
    }
    h->sent++;
}

static void start_flow(Harness *h)
{
    uv_timer_init(&h->loop, &h->flow);
    h->flow.data = h;
    uv_timer_start(&h->flow, on_flow, FLOW_MS, FLOW_MS);
    h->flowing = true;
}

/* -- The test's own subscriber ------------------------------------------ */

static void on_watch_message(void *ud, const redisReply *r)
{
    Harness *h = ud;
    (void)r;
    if (h->switches++ == 0)
        h->switch_ms = sentinel_fixture_now_ms();
}

static void on_watch_state(void *ud, Conn *c, int status, const char *message)
{
    (void)ud, (void)c;
    if (status != CR_OK)
        TEST_FAIL_("the test's subscriber failed: %s", message);
}

static void on_watch_subscribed(void *ud, int status, const redisReply *r)
{
    int *done = ud;
    (void)r;
    ASSERT_EQ_INT(CR_OK, status);
    (*done)++;
}

/* Subscribes the test itself to +switch-master on sentinel `i`. */
static void watch_switches(Harness *h, size_t i)
{
    ConnConfig cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.host = "127.0.0.1";
    cfg.port = h->sf.sentinels[i].port;
    cfg.password = h->sf.password;
    cfg.connect_timeout_ms = 2000;
    cfg.background = true;
    h->watch = conn_new(&h->loop, &cfg, on_watch_state, h);
    ASSERT_NOT_NULL(h->watch);
    conn_set_push_handler(h->watch, on_watch_message, h);
    int done = 0;
    ASSERT_EQ_INT(CR_OK,
                  conn_command(h->watch, 2,
                               (const char *[]){"SUBSCRIBE", "+switch-master"},
                               NULL, on_watch_subscribed, &done));
    ASSERT_TRUE(wait_count(&h->loop, &done, 1, 3000));
}

/* The first report at or after `since` that is `ready` (CR_OK) or down. */
static int first_state(const Harness *h, int from, bool ready)
{
    for (int i = from; i < h->nstates && i < MAX_STATES; i++)
        if ((h->states[i] == CR_OK) == ready)
            return i;
    return -1;
}

/* Runs a failover (triggered by `trigger`) under the flow of commands and
** checks the backend follows it: down, then ready on the old replica,
** where commands land; prints the measured times. */
static void follow_failover(Harness *h, void (*trigger)(Harness *),
                            const char *what)
{
    int new_port = h->sf.replica.port;
    watch_switches(h, 2);
    start_flow(h);
    run_for(&h->loop, 200);
    ASSERT_TRUE(h->ok > 0);
    int mark = h->nstates;
    int ready_before = h->ready;
    uint64_t t0 = sentinel_fixture_now_ms();
    trigger(h);
    ASSERT_TRUE(wait_count(&h->loop, &h->ready, ready_before + 1, 20000));
    int down = first_state(h, mark, false);
    int up = first_state(h, mark, true);
    ASSERT_TRUE(down >= 0 && up > down);
    expect_ready_on(h, new_port);
    ASSERT_TRUE(wait_count(&h->loop, &h->switches, 1, 5000));
    uint64_t ready_ms = h->state_ms[up];
    printf("%s: down after %llu ms, ready on the new primary after %llu ms; "
           "+switch-master seen by the test after %llu ms, ready %lld ms "
           "after it (%d reports, last down: %s)\n",
           what, (unsigned long long)(h->state_ms[down] - t0),
           (unsigned long long)(ready_ms - t0),
           (unsigned long long)(h->switch_ms - t0),
           (long long)ready_ms - (long long)h->switch_ms, h->nstates - mark,
           h->down > 0 ? "yes" : "no");
    /* Well under 3 s after the sentinels agreed. */
    ASSERT_TRUE(ready_ms < h->switch_ms + 3000);
    /* Commands flow again, and land on the new primary. */
    int ok_before = h->ok;
    run_for(&h->loop, 200);
    ASSERT_TRUE(h->ok > ok_before);
    set_through(h, "after:switch", "new");
    expect_role(new_port, "master");
    expect_on_node(new_port, "after:switch", "new");
    printf("%s: %d commands answered, %d failed with the old primary, %d "
           "not sent while down\n",
           what, h->ok, h->failed, h->refused);
}

static void kill_primary(Harness *h)
{
    redis_fixture_kill(&h->sf.primary, SIGKILL);
}

static void failover_via(Harness *h, size_t i)
{
    redisReply *r =
        sentinel_fixture_command(h->sf.sentinels[i].port, h->sf.password,
                                 "SENTINEL FAILOVER " SENTINEL_FIXTURE_MASTER);
    ASSERT_NOT_NULL(r);
    if (r->type == REDIS_REPLY_ERROR)
        TEST_FAIL_("SENTINEL FAILOVER: %s", r->str);
    freeReplyObject(r);
}

static void sentinel_failover(Harness *h)
{
    failover_via(h, 0);
}

/* Forced by the last sentinel: it needs no agreement from the others. */
static void sentinel_failover_on_the_last(Harness *h)
{
    failover_via(h, SENTINEL_FIXTURE_COUNT - 1);
}

/* -- Tests -------------------------------------------------------------- */

static void test_sentinel_discovers_the_primary_and_commands_land_on_it(void)
{
    Harness h;
    start(&h, NULL);
    RedisConfig cfg = config(&h, SENTINEL_FIXTURE_MASTER, NULL);
    open_backend(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    ASSERT_TRUE(backend_ready(h.b));
    ASSERT_EQ_INT(1, (int)backend_nodes(h.b));
    expect_ready_on(&h, h.sf.primary.port);
    set_through(&h, "discovered", "yes");
    expect_on_node(h.sf.primary.port, "discovered", "yes");
    finish(&h);
}

static void test_sentinel_follows_a_killed_primary_to_the_promoted_replica(void)
{
    Harness h;
    start(&h, NULL);
    RedisConfig cfg = config(&h, SENTINEL_FIXTURE_MASTER, NULL);
    open_backend(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    follow_failover(&h, kill_primary, "SIGKILL of the primary");
    finish(&h);
}

static void test_sentinel_follows_sentinel_failover(void)
{
    Harness h;
    start(&h, NULL);
    RedisConfig cfg = config(&h, SENTINEL_FIXTURE_MASTER, NULL);
    open_backend(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    follow_failover(&h, sentinel_failover, "SENTINEL FAILOVER");
    finish(&h);
}

static void test_sentinel_discovers_and_follows_with_one_sentinel_left(void)
{
    Harness h;
    start(&h, NULL);
    RedisConfig cfg = config(&h, SENTINEL_FIXTURE_MASTER, NULL);
    open_backend(&h, &cfg); /* subscribed to sentinel 0 */
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    sentinel_fixture_kill(&h.sf, 0, SIGKILL);
    sentinel_fixture_kill(&h.sf, 1, SIGKILL);
    /* A fresh backend asks the dead ones first. */
    Harness fresh;
    memset(&fresh, 0, sizeof(fresh));
    ASSERT_EQ_INT(0, uv_loop_init(&fresh.loop));
    memcpy(fresh.addrs, h.addrs, sizeof(h.addrs));
    fresh.naddrs = h.naddrs;
    fresh.sf = h.sf;
    RedisConfig fresh_cfg = config(&fresh, SENTINEL_FIXTURE_MASTER, NULL);
    open_backend(&fresh, &fresh_cfg);
    ASSERT_EQ_INT(CR_OK, fresh.states[0]);
    expect_ready_on(&fresh, h.sf.primary.port);
    backend_close(fresh.b);
    uv_run(&fresh.loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(0, uv_loop_close(&fresh.loop));
    /* The first one's subscription moves to the last sentinel (after its
    ** backoff), which alone can force a failover. */
    run_for(&h.loop, 1000);
    follow_failover(&h, sentinel_failover_on_the_last,
                    "SENTINEL FAILOVER with one sentinel left");
    finish(&h);
}

static void test_sentinel_never_uses_an_old_primary_restarted(void)
{
    Harness h;
    start(&h, NULL);
    RedisConfig cfg = config(&h, SENTINEL_FIXTURE_MASTER, NULL);
    open_backend(&h, &cfg);
    set_through(&h, "old:key", "old");
    kill_primary(&h);
    ASSERT_TRUE(wait_count(&h.loop, &h.ready, 2, 20000));
    expect_ready_on(&h, h.sf.replica.port);
    /* The old primary comes back as a master with no data. */
    ASSERT_TRUE(redis_fixture_restart(&h.sf.primary));
    expect_role(h.sf.primary.port, "master");
    /* Made to rediscover (as a READONLY reply would), and a fresh backend:
    ** both go where the sentinels say. */
    int ready = h.ready;
    backend_fail(h.b, CR_EREADONLY, "READONLY (test)");
    ASSERT_TRUE(wait_count(&h.loop, &h.ready, ready + 1, 10000));
    expect_ready_on(&h, h.sf.replica.port);
    set_through(&h, "restarted:key", "new");
    expect_on_node(h.sf.replica.port, "restarted:key", "new");
    expect_on_node(h.sf.primary.port, "restarted:key", "");
    expect_on_node(h.sf.replica.port, "old:key", "old");
    finish(&h);
}

static void test_sentinel_reports_a_refused_sentinel_login_as_eauth(void)
{
    Harness h;
    start(&h, "sekret");
    RedisConfig cfg = config(&h, SENTINEL_FIXTURE_MASTER, "wrong");
    open_backend(&h, &cfg);
    ASSERT_EQ_INT(CR_EAUTH, h.states[0]);
    char want[64];
    snprintf(want, sizeof(want), "sentinel 127.0.0.1:%d: WRONGPASS",
             h.sf.sentinels[0].port);
    if (strstr(h.message, want) == NULL)
        TEST_FAIL_("unexpected message: %s", h.message);
    ASSERT_FALSE(backend_ready(h.b));
    /* Retried with backoff: still refused, no crash. */
    ASSERT_TRUE(wait_count(&h.loop, &h.nstates, 2, 3000));
    ASSERT_EQ_INT(CR_EAUTH, h.states[1]);
    backend_close(h.b);
    /* No password at all: NOAUTH, the same code. */
    cfg = config(&h, SENTINEL_FIXTURE_MASTER, NULL);
    h.nstates = 0;
    open_backend(&h, &cfg);
    ASSERT_EQ_INT(CR_EAUTH, h.states[0]);
    if (strstr(h.message, "NOAUTH") == NULL)
        TEST_FAIL_("unexpected message: %s", h.message);
    backend_close(h.b);
    /* The right one works. */
    cfg = config(&h, SENTINEL_FIXTURE_MASTER, "sekret");
    h.nstates = 0;
    open_backend(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    finish(&h);
}

static void test_sentinel_reports_an_unknown_master_name_clearly(void)
{
    Harness h;
    start(&h, NULL);
    RedisConfig cfg = config(&h, "nosuch", NULL);
    open_backend(&h, &cfg);
    ASSERT_EQ_INT(CR_EINVAL, h.states[0]);
    if (strstr(h.message, "does not know master 'nosuch'") == NULL)
        TEST_FAIL_("unexpected message: %s", h.message);
    ASSERT_FALSE(backend_ready(h.b));
    finish(&h);
}

static void test_sentinel_lists_every_sentinel_tried_when_none_answers(void)
{
    Harness h;
    memset(&h, 0, sizeof(h));
    ASSERT_EQ_INT(0, uv_loop_init(&h.loop));
    for (size_t i = 0; i < 2; i++) {
        h.addrs[i].host = "127.0.0.1";
        h.addrs[i].port = redis_fixture_free_port();
    }
    h.naddrs = 2;
    RedisConfig cfg = config(&h, SENTINEL_FIXTURE_MASTER, NULL);
    open_backend(&h, &cfg);
    ASSERT_EQ_INT(CR_ECONNREFUSED, h.states[0]);
    for (size_t i = 0; i < 2; i++) {
        char want[32];
        snprintf(want, sizeof(want), "sentinel 127.0.0.1:%d:", h.addrs[i].port);
        if (strstr(h.message, want) == NULL)
            TEST_FAIL_("%s missing from: %s", want, h.message);
    }
    backend_close(h.b);
    uv_run(&h.loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(0, uv_loop_close(&h.loop));
}

static const TestCase cases[] = {
    TEST_CASE(test_sentinel_discovers_the_primary_and_commands_land_on_it),
    TEST_CASE(test_sentinel_follows_a_killed_primary_to_the_promoted_replica),
    TEST_CASE(test_sentinel_follows_sentinel_failover),
    TEST_CASE(test_sentinel_discovers_and_follows_with_one_sentinel_left),
    TEST_CASE(test_sentinel_never_uses_an_old_primary_restarted),
    TEST_CASE(test_sentinel_reports_a_refused_sentinel_login_as_eauth),
    TEST_CASE(test_sentinel_reports_an_unknown_master_name_clearly),
    TEST_CASE(test_sentinel_lists_every_sentinel_tried_when_none_answers),
    {NULL, NULL},
};

TEST_MAIN(cases)
