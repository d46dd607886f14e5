/*
** test_pool.c -- the Redis pool against private redis-server processes:
** commands and binary values, pipelining, AUTH/ACL/SELECT, maxclients, an
** absent, killed, slow or mute server, replies that arrive while the
** process is busy past their deadline, a busy server that keeps answering
** (the timeout is its silence), the reconnect backoff (growth, cap, jitter,
** reset after a healthy period, a server dropping every connection once
** ready), idle connections closed by the server, and closing with commands
** pending.
**
** Every wait is bounded by a uv timer; every test ends with every handle
** closed (uv_loop_close == 0) and its server stopped.
*/
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <uv.h>

#include "conn.h"
#include "pool.h"
#include "redis_fixture.h"
#include "pool_harness.h"
#include "status.h"
#include "test.h"

typedef PoolHarness Harness;

/* -- Helpers ------------------------------------------------------------ */

/* Runs the loop until the pool has replaced `n` connections after idle
** closes, or `ms` pass; true on the first. Returns as soon as the n-th
** replacement started, before it can be ready. */
static bool wait_replaced(Harness *h, uint64_t n, uint64_t ms)
{
    bool expired = false;
    uv_timer_t guard;
    uv_timer_init(&h->loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard, ms, 0);
    while (pool_replaced(h->pool) < n && !expired)
        uv_run(&h->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&h->loop, UV_RUN_NOWAIT);
    return pool_replaced(h->pool) >= n;
}

static PoolConfig config(const Harness *h, size_t size)
{
    PoolConfig cfg = {.host = "127.0.0.1",
                      .port = h->fx.port,
                      .size = size,
                      .connect_timeout_ms = 2000,
                      .command_timeout_ms = 2000};
    return cfg;
}

/* Starts a server with `extra` arguments and a loop. */
static void start(Harness *h, const char *const *extra)
{
    memset(h, 0, sizeof(*h));
    ASSERT_TRUE(redis_fixture_start(&h->fx, extra));
    ASSERT_EQ_INT(0, uv_loop_init(&h->loop));
    h->clock = &h->loop;
}

static void expect_status(Harness *h, const char *want, int argc,
                          const char **argv)
{
    Result r = run(h, argc, argv, NULL);
    ASSERT_EQ_INT(CR_OK, r.status);
    ASSERT_EQ_STR(want, r.str);
    result_free(&r);
}

/* Makes the server hold every client's commands for `ms` (CLIENT PAUSE),
** through the fixture's side channel. */
static void pause_clients(Harness *h, int ms)
{
    char cmd[32];
    char line[64];
    snprintf(cmd, sizeof(cmd), "CLIENT PAUSE %d", ms);
    ASSERT_TRUE(redis_fixture_query(&h->fx, cmd, line, sizeof(line)));
    ASSERT_EQ_STR("+OK", line);
}

/* -- Commands ----------------------------------------------------------- */

static void on_reply_then_set(void *ud, int status, const redisReply *r)
{
    Result *res = ud;
    on_reply(ud, status, r);
    static const char *argv[] = {"SET", "chained", "yes"};
    ASSERT_EQ_INT(CR_OK, pool_command(((Harness *)res->owner)->pool, 3, argv,
                                      NULL, on_reply, res + 1));
}

static void test_pool_runs_get_and_set_with_binary_values(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 2);
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    ASSERT_TRUE(pool_ready(h.pool));

    static const char value[] = "a\0b\r\n\xff\x80$3\r\n*1";
    const char *set[] = {"SET", "bin\0key", value};
    size_t setlen[] = {3, 7, sizeof(value) - 1};
    Result r = run(&h, 3, set, setlen);
    ASSERT_EQ_INT(REDIS_REPLY_STATUS, r.type);
    ASSERT_EQ_STR("OK", r.str);
    result_free(&r);
    r = run(&h, 2, (const char *[]){"GET", "bin\0key"}, (size_t[]){3, 7});
    ASSERT_EQ_INT(REDIS_REPLY_STRING, r.type);
    ASSERT_EQ_MEM(value, sizeof(value) - 1, r.str, r.len);
    result_free(&r);

    r = run(&h, 2, (const char *[]){"GET", "missing"}, NULL);
    ASSERT_EQ_INT(CR_OK, r.status);
    ASSERT_EQ_INT(REDIS_REPLY_NIL, r.type);
    result_free(&r);

    /* The server said no: still CR_OK, with an error reply. */
    r = run(&h, 2, (const char *[]){"INCR", "bin\0key"}, (size_t[]){4, 7});
    ASSERT_EQ_INT(CR_OK, r.status);
    ASSERT_EQ_INT(REDIS_REPLY_ERROR, r.type);
    result_free(&r);

    /* A value spanning many reads. */
    size_t big_len = 1024 * 1024 + 7;
    char *big = malloc(big_len);
    ASSERT_NOT_NULL(big);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)(i * 131 + 7);
    r = run(&h, 3, (const char *[]){"SET", "big", big},
            (size_t[]){3, 3, big_len});
    ASSERT_EQ_STR("OK", r.str);
    result_free(&r);
    r = run(&h, 2, (const char *[]){"GET", "big"}, NULL);
    ASSERT_EQ_MEM(big, big_len, r.str, r.len);
    result_free(&r);
    free(big);

    /* A reply callback may queue the next command. */
    Result chain[2];
    memset(chain, 0, sizeof(chain));
    chain[0].owner = &h;
    ASSERT_EQ_INT(CR_OK, pool_command(h.pool, 1, (const char *[]){"PING"}, NULL,
                                      on_reply_then_set, &chain[0]));
    ASSERT_TRUE(wait_count(&h.loop, &chain[1].calls, 1, 3000));
    ASSERT_EQ_STR("PONG", chain[0].str);
    ASSERT_EQ_STR("OK", chain[1].str);
    result_free(&chain[0]);
    result_free(&chain[1]);

    ASSERT_EQ_INT(CR_EINVAL, pool_command(h.pool, 0, set, NULL, on_reply, &r));
    ASSERT_EQ_INT(0, pool_pending(h.pool));
    finish(&h);
}

/* Commands of one loop turn leave in batches: each POOL_WRITE_BATCH-th
** command queued on a connection writes its batch right away, and the
** rest goes at the end of the turn. 1000 INCRs: ceil(1000 / batch)
** writes, replies in order. */
static void test_pool_writes_each_batch_as_soon_as_it_is_queued(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 1);
    open_pool(&h, &cfg);
    ASSERT_TRUE(pool_ready(h.pool));
    enum { N = 1000 };
    Result *res = calloc(N, sizeof(*res));
    ASSERT_NOT_NULL(res);
    uint64_t writes = pool_writes(h.pool);
    const char *incr[] = {"INCR", "counter"};
    for (int i = 0; i < N; i++) {
        ASSERT_EQ_INT(CR_OK,
                      pool_command(h.pool, 2, incr, NULL, on_reply, &res[i]));
        /* no loop turn yet: only whole batches are out */
        ASSERT_EQ_INT((i + 1) / POOL_WRITE_BATCH, pool_writes(h.pool) - writes);
    }
    ASSERT_EQ_INT(N, pool_pending(h.pool));
    ASSERT_TRUE(wait_count(&h.loop, &res[N - 1].calls, 1, 5000));
    for (int i = 0; i < N; i++) { /* in order: the i-th INCR saw i + 1 */
        ASSERT_EQ_INT(1, res[i].calls);
        ASSERT_EQ_INT(CR_OK, res[i].status);
        ASSERT_EQ_INT(i + 1, res[i].integer);
    }
    /* the last partial batch at the end of the turn */
    ASSERT_EQ_INT((N + POOL_WRITE_BATCH - 1) / POOL_WRITE_BATCH,
                  pool_writes(h.pool) - writes);
    ASSERT_EQ_INT(0, pool_pending(h.pool));
    free(res);
    finish(&h);
}

/* Polls the server (side channel, bounded) until INCRBY counter 0 says
** `n`: it has run n INCRs. */
static bool wait_counter(Harness *h, int n)
{
    char want[32];
    char line[64];
    snprintf(want, sizeof(want), ":%d", n);
    for (int i = 0; i < 200; i++) {
        if (redis_fixture_query(&h->fx, "INCRBY counter 0", line,
                                sizeof(line)) &&
            strcmp(line, want) == 0)
            return true;
        redis_fixture_sleep_ms(10);
    }
    return false;
}

/* The point of batches: the server runs the first one while the next is
** being queued. Here the loop never turns between the two, and the server
** has run the first batch before the second is even queued; both batches'
** replies then come in order. */
static void test_pool_server_runs_a_batch_while_the_next_is_queued(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 1);
    open_pool(&h, &cfg);
    ASSERT_TRUE(pool_ready(h.pool));
    enum { N = 2 * POOL_WRITE_BATCH };
    Result res[N];
    memset(res, 0, sizeof(res));
    uint64_t writes = pool_writes(h.pool);
    const char *incr[] = {"INCR", "counter"};
    for (int i = 0; i < N; i++) {
        ASSERT_EQ_INT(CR_OK,
                      pool_command(h.pool, 2, incr, NULL, on_reply, &res[i]));
        if (i + 1 == POOL_WRITE_BATCH) /* the first batch, run already */
            ASSERT_TRUE(wait_counter(&h, POOL_WRITE_BATCH));
    }
    ASSERT_TRUE(wait_counter(&h, N)); /* the second, still in the same turn */
    ASSERT_EQ_INT(2, pool_writes(h.pool) - writes);
    for (int i = 0; i < N; i++)
        ASSERT_EQ_INT(0, res[i].calls); /* nothing read yet */
    ASSERT_TRUE(wait_count(&h.loop, &res[N - 1].calls, 1, 5000));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ_INT(1, res[i].calls);
        ASSERT_EQ_INT(i + 1, res[i].integer);
    }
    ASSERT_EQ_INT(2, pool_writes(h.pool) - writes); /* nothing left over */
    finish(&h);
}

static void test_pool_keeps_the_loop_alive_only_while_it_has_work(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 2);
    h.pool = pool_new(&h.loop, &cfg, on_state, &h);
    ASSERT_NOT_NULL(h.pool);
    pool_connect(h.pool);
    uv_run(&h.loop, UV_RUN_DEFAULT); /* returns once connected */
    ASSERT_EQ_INT(1, h.ready);
    Result r;
    memset(&r, 0, sizeof(r));
    ASSERT_EQ_INT(CR_OK, pool_command(h.pool, 1, (const char *[]){"PING"}, NULL,
                                      on_reply, &r));
    uv_run(&h.loop, UV_RUN_DEFAULT); /* returns once answered */
    ASSERT_EQ_INT(1, r.calls);
    ASSERT_EQ_STR("PONG", r.str);
    result_free(&r);
    finish(&h);
}

/* Fewer commands than a batch stay on one connection, in one write at the
** end of the loop turn, whatever the pool size. */
static void test_pool_sends_a_few_commands_of_one_turn_in_one_write(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 4);
    open_pool(&h, &cfg);
    ASSERT_TRUE(pool_ready(h.pool));
    enum { N = POOL_WRITE_BATCH - 1 };
    Result res[N];
    memset(res, 0, sizeof(res));
    uint64_t writes = pool_writes(h.pool);
    for (int i = 0; i < N; i++)
        ASSERT_EQ_INT(CR_OK,
                      pool_command(h.pool, 2, (const char *[]){"ECHO", "x"},
                                   NULL, on_reply, &res[i]));
    ASSERT_EQ_INT(0, pool_writes(h.pool) - writes); /* waits for the turn */
    ASSERT_TRUE(wait_count(&h.loop, &res[N - 1].calls, 1, 5000));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ_INT(1, res[i].calls);
        ASSERT_EQ_STR("x", res[i].str);
        result_free(&res[i]);
    }
    ASSERT_EQ_INT(1, pool_writes(h.pool) - writes); /* all on one */
    char clients[8192];
    ASSERT_TRUE(
        server_text(h.fx.port, "CLIENT LIST", clients, sizeof(clients)));
    ASSERT_EQ_INT(1, count_of(clients, "cmd=echo"));
    finish(&h);
}

/* Once a connection has POOL_SPREAD_DEPTH commands pending, the next go to
** the next connection: two connections carry four batches each, every
** batch written as soon as it was queued. */
static void test_pool_spreads_batches_over_its_connections(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 4);
    open_pool(&h, &cfg);
    ASSERT_TRUE(pool_ready(h.pool));
    enum { N = 2 * POOL_SPREAD_DEPTH };
    Result res[N];
    memset(res, 0, sizeof(res));
    uint64_t writes = pool_writes(h.pool);
    for (int i = 0; i < N; i++)
        ASSERT_EQ_INT(CR_OK,
                      pool_command(h.pool, 2, (const char *[]){"ECHO", "x"},
                                   NULL, on_reply, &res[i]));
    /* before the turn ends */
    ASSERT_EQ_INT(N / POOL_WRITE_BATCH, pool_writes(h.pool) - writes);
    /* Two connections answer independently: wait for every reply. */
    for (int i = 0; i < N; i++)
        ASSERT_TRUE(wait_count(&h.loop, &res[i].calls, 1, 5000));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ_INT(1, res[i].calls);
        ASSERT_EQ_STR("x", res[i].str);
        result_free(&res[i]);
    }
    ASSERT_EQ_INT(N / POOL_WRITE_BATCH, pool_writes(h.pool) - writes);
    char clients[8192];
    ASSERT_TRUE(
        server_text(h.fx.port, "CLIENT LIST", clients, sizeof(clients)));
    ASSERT_EQ_INT(2, count_of(clients, "cmd=echo"));
    finish(&h);
}

/* Many tasks, each waiting for its reply before sending the next command
** (as cachert's tasks do), over several connections: batches form from
** what the replies of one read wake, several are in flight at once, and
** every reply is the answer to its own command (ECHO of a unique id). */
enum { CHAINS = 100, CHAIN_LEN = 40 };

typedef struct Chain {
    Harness *h;
    int id;
    int sent; /* commands sent, the one awaited included */
    int ok;   /* replies that echoed the right id */
    int bad;
} Chain;

static void chain_send(Chain *ch);

static void on_chain_reply(void *ud, int status, const redisReply *r)
{
    Chain *ch = ud;
    char want[32];
    int n = snprintf(want, sizeof(want), "c%d:%d", ch->id, ch->sent);
    if (status == CR_OK && r->type == REDIS_REPLY_STRING &&
        r->len == (size_t)n && memcmp(r->str, want, (size_t)n) == 0)
        ch->ok++;
    else
        ch->bad++;
    if (ch->sent < CHAIN_LEN)
        chain_send(ch);
}

static void chain_send(Chain *ch)
{
    char arg[32];
    ch->sent++;
    snprintf(arg, sizeof(arg), "c%d:%d", ch->id, ch->sent);
    ASSERT_EQ_INT(CR_OK,
                  pool_command(ch->h->pool, 2, (const char *[]){"ECHO", arg},
                               NULL, on_chain_reply, ch));
}

static void test_pool_answers_many_tasks_in_order_over_many_connections(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 4);
    open_pool(&h, &cfg);
    ASSERT_TRUE(pool_ready(h.pool));
    Chain chains[CHAINS];
    int done = 0;
    uint64_t writes = pool_writes(h.pool);
    for (int i = 0; i < CHAINS; i++) {
        chains[i] = (Chain){.h = &h, .id = i};
        chain_send(&chains[i]);
    }
    /* POOL_SPREAD_DEPTH commands on the first connection, the rest on the
    ** next: every whole batch written at once, what is left at the end of
    ** the turn */
    ASSERT_EQ_INT(CHAINS / POOL_WRITE_BATCH, pool_writes(h.pool) - writes);
    for (int i = 0; i < CHAINS; i++) {
        ASSERT_TRUE(wait_count(&h.loop, &chains[i].ok, CHAIN_LEN, 10000));
        done += chains[i].ok;
        ASSERT_EQ_INT(0, chains[i].bad);
    }
    ASSERT_EQ_INT(CHAINS * CHAIN_LEN, done);
    ASSERT_EQ_INT(0, pool_pending(h.pool));
    char clients[8192];
    ASSERT_TRUE(
        server_text(h.fx.port, "CLIENT LIST", clients, sizeof(clients)));
    ASSERT_TRUE(count_of(clients, "cmd=echo") >= 2); /* several carried them */
    finish(&h);
}

/* -- AUTH and SELECT ---------------------------------------------------- */

static const char *const requirepass[] = {"--requirepass", "s3cret", NULL};

static void test_pool_authenticates_with_a_good_password(void)
{
    Harness h;
    start(&h, requirepass);
    PoolConfig cfg = config(&h, 2);
    cfg.password = "s3cret";
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    expect_status(&h, "OK", 3, (const char *[]){"SET", "k", "v"});
    finish(&h);
}

static void test_pool_reports_a_wrong_password_as_eauth(void)
{
    Harness h;
    start(&h, requirepass);
    PoolConfig cfg = config(&h, 2);
    cfg.password = "wrong";
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_EAUTH, h.states[0]);
    ASSERT_TRUE(strstr(h.message, "WRONGPASS") != NULL);
    ASSERT_FALSE(pool_ready(h.pool));
    Result r;
    ASSERT_EQ_INT(
        CR_ECONNRESET,
        pool_command(h.pool, 1, (const char *[]){"PING"}, NULL, on_reply, &r));
    pool_close(h.pool);

    /* No password at all: the handshake's PING gets -NOAUTH. */
    memset(h.states, 0, sizeof(h.states));
    h.nstates = 0;
    cfg.password = NULL;
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_EAUTH, h.states[0]);
    ASSERT_TRUE(strstr(h.message, "NOAUTH") != NULL);
    finish(&h);
}

static const char *const acl_user[] = {"--user", "alice", "on", ">alicepw",
                                       "~*",     "+@all", NULL};

static void test_pool_authenticates_an_acl_user(void)
{
    Harness h;
    start(&h, acl_user);
    PoolConfig cfg = config(&h, 1);
    cfg.host = "localhost"; /* through the resolver */
    cfg.username = "alice";
    cfg.password = "alicepw";
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    Result r = run(&h, 2, (const char *[]){"ACL", "WHOAMI"}, NULL);
    ASSERT_EQ_STR("alice", r.str);
    result_free(&r);
    pool_close(h.pool);

    h.nstates = 0;
    cfg.password = "bobpw";
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_EAUTH, h.states[0]);
    finish(&h);
}

static void test_pool_select_isolates_databases(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 1);
    open_pool(&h, &cfg);
    Harness h3; /* same loop and server, its own state record */
    memset(&h3, 0, sizeof(h3));
    h3.clock = &h.loop;
    cfg.db = 3;
    h3.pool = pool_new(&h.loop, &cfg, on_state, &h3);
    ASSERT_NOT_NULL(h3.pool);
    pool_connect(h3.pool);
    ASSERT_TRUE(wait_count(&h.loop, &h3.nstates, 1, 3000));
    ASSERT_EQ_INT(CR_OK, h3.states[0]);

    expect_status(&h, "OK", 3, (const char *[]){"SET", "k", "zero"});
    Result r;
    memset(&r, 0, sizeof(r));
    ASSERT_EQ_INT(CR_OK, pool_command(h3.pool, 2, (const char *[]){"GET", "k"},
                                      NULL, on_reply, &r));
    ASSERT_TRUE(wait_count(&h.loop, &r.calls, 1, 3000));
    ASSERT_EQ_INT(REDIS_REPLY_NIL, r.type);
    memset(&r, 0, sizeof(r));
    ASSERT_EQ_INT(CR_OK, pool_command(h3.pool, 3,
                                      (const char *[]){"SET", "k", "three"},
                                      NULL, on_reply, &r));
    ASSERT_TRUE(wait_count(&h.loop, &r.calls, 1, 3000));
    result_free(&r);
    r = run(&h, 2, (const char *[]){"GET", "k"}, NULL);
    ASSERT_EQ_STR("zero", r.str);
    result_free(&r);
    pool_close(h3.pool);

    /* A database the server does not have is refused like a password. */
    h3.nstates = 0;
    cfg.db = 99;
    h3.pool = pool_new(&h.loop, &cfg, on_state, &h3);
    pool_connect(h3.pool);
    ASSERT_TRUE(wait_count(&h.loop, &h3.nstates, 1, 3000));
    ASSERT_EQ_INT(CR_EAUTH, h3.states[0]);
    ASSERT_TRUE(strstr(h3.message, "DB index") != NULL);
    pool_close(h3.pool);
    finish(&h);
}

/* The server turns the connection away before the handshake ("-ERR max
** number of clients reached", then closes): a refusal of its own, not a
** bad password, with the server's words in the message. */
static void test_pool_reports_max_clients_as_a_refusal_not_a_login_error(void)
{
    Harness h;
    start(&h, (const char *const[]){"--maxclients", "1", NULL});
    int held = redis_fixture_hold(&h.fx, 3000); /* the only client allowed */
    ASSERT_TRUE(held >= 0);
    PoolConfig cfg = config(&h, 1);
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_EREJECTED, h.states[0]);
    ASSERT_TRUE(strstr(h.message, "max number of clients reached") != NULL);
    ASSERT_EQ_STR("redis refused the connection", cr_strerror(CR_EREJECTED));
    ASSERT_EQ_STR("EREJECTED", cr_errname(CR_EREJECTED));
    ASSERT_FALSE(pool_ready(h.pool));

    /* Once the client leaves, the retries get in. */
    close(held);
    ASSERT_TRUE(wait_count(&h.loop, &h.ready, 1, 3000));
    expect_status(&h, "PONG", 1, (const char *[]){"PING"});
    finish(&h);
}

/* -- Failures ----------------------------------------------------------- */

/* Slack around a measured gap between two attempts' reports: the timer
** fires on time, but each report comes after a resolve and a connect. */
#define GAP_SLACK_LOW_MS  30
#define GAP_SLACK_HIGH_MS 100

/* The nominal backoff before attempt i + 1 (i >= 1): doubling, capped. */
static uint64_t nominal_gap(int i)
{
    uint64_t gap = POOL_BACKOFF_MIN_MS;
    for (int k = 1; k < i; k++)
        gap *= 2;
    return gap < POOL_BACKOFF_MAX_MS ? gap : POOL_BACKOFF_MAX_MS;
}

/* A gap is the nominal one, jittered into [4/5 of it, all of it]. */
static void assert_backoff_gap(uint64_t gap, uint64_t nominal)
{
    uint64_t low = nominal * 4 / 5 - GAP_SLACK_LOW_MS;
    uint64_t high = nominal + GAP_SLACK_HIGH_MS;
    if (gap < low || gap > high)
        TEST_FAIL_("gap of %llu ms outside [%llu, %llu] (nominal %llu ms)",
                   (unsigned long long)gap, (unsigned long long)low,
                   (unsigned long long)high, (unsigned long long)nominal);
}

/* Against a port nobody listens on (refused at once), the gaps between
** attempts double from the minimum and level off at the maximum: seven
** gaps, the last capped (uncapped it would be 6.4 s, jittered >= 5.12 s),
** each jittered. About 11 s. */
static void test_pool_backoff_grows_to_the_maximum_and_stays_there(void)
{
    Harness h;
    memset(&h, 0, sizeof(h));
    ASSERT_EQ_INT(0, uv_loop_init(&h.loop));
    h.clock = &h.loop;
    h.fx.port = redis_fixture_free_port(); /* nobody listens there */
    PoolConfig cfg = config(&h, 3);
    h.pool = pool_new(&h.loop, &cfg, on_state, &h);
    pool_connect(h.pool);
    enum { GAPS = 7 };
    ASSERT_EQ_INT(POOL_BACKOFF_MAX_MS, nominal_gap(GAPS)); /* one capped */
    uint64_t bound = 0;
    for (int i = 1; i <= GAPS; i++)
        bound += nominal_gap(i) + GAP_SLACK_HIGH_MS;
    wait_count(&h.loop, &h.nstates, GAPS + 1, bound);
    int jittered = 0;
    for (int i = 1; i < h.nstates && i <= GAPS; i++) {
        uint64_t gap = h.state_ms[i] - h.state_ms[i - 1];
        assert_backoff_gap(gap, nominal_gap(i));
        if (gap * 100 < nominal_gap(i) * 95)
            jittered++;
    }
    ASSERT_EQ_INT(GAPS + 1, h.nstates);
    /* Each gap is drawn from [80%, 100%]: all seven in the top quarter
    ** would happen about once in 16,000 runs. */
    ASSERT_TRUE(jittered > 0);
    for (int i = 0; i <= GAPS; i++)
        ASSERT_EQ_INT(CR_ECONNREFUSED, h.states[i]);
    ASSERT_TRUE(strstr(h.message, "refused") != NULL);
    Result r;
    ASSERT_EQ_INT(
        CR_ECONNRESET,
        pool_command(h.pool, 1, (const char *[]){"PING"}, NULL, on_reply, &r));
    finish(&h);
}

/* The backoff grows while the server is away (four attempts refused), the
** server comes back, the pool stays ready for longer than
** POOL_HEALTHY_RESET_MS, the server goes away again: the first retry comes
** after the minimum gap again, not after the grown one. */
static void test_pool_backoff_starts_over_after_a_healthy_period(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 1);
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    run_for(&h.loop, 2 * POOL_BACKOFF_MIN_MS); /* not a fresh connection */

    /* Refused four times: gaps of about 100, 200 and 400 ms. */
    redis_fixture_kill(&h.fx, SIGKILL);
    ASSERT_TRUE(wait_count(&h.loop, &h.down, 4, 3000));
    ASSERT_EQ_INT(CR_ECONNREFUSED, h.states[4]);
    for (int i = 2; i <= 4; i++)
        assert_backoff_gap(h.state_ms[i] - h.state_ms[i - 1],
                           nominal_gap(i - 1));
    /* Back, and healthy for longer than the reset period. */
    ASSERT_TRUE(redis_fixture_restart(&h.fx));
    ASSERT_TRUE(wait_count(&h.loop, &h.ready, 2, 3000));
    int n = h.nstates;
    run_for(&h.loop, POOL_HEALTHY_RESET_MS + 500);
    ASSERT_EQ_INT(n, h.nstates);
    expect_status(&h, "PONG", 1, (const char *[]){"PING"});
    run_for(&h.loop, 2 * POOL_BACKOFF_MIN_MS);

    /* Away again: the retry comes after the minimum (the grown backoff
    ** would be 1.6 s). */
    redis_fixture_kill(&h.fx, SIGKILL);
    ASSERT_TRUE(wait_count(&h.loop, &h.down, 6, 3000));
    ASSERT_EQ_INT(n + 2, h.nstates);
    ASSERT_EQ_INT(CR_ECONNREFUSED, h.states[n]);
    ASSERT_EQ_INT(CR_ECONNREFUSED, h.states[n + 1]);
    assert_backoff_gap(h.state_ms[n + 1] - h.state_ms[n], POOL_BACKOFF_MIN_MS);
    finish(&h);
}

/* A fake server that answers the handshake's PING and drops the
** connection DROP_AFTER_MS later (a proxy with no backend, a server in a
** crash loop), counting the connections it accepted. */
#define DROP_AFTER_MS    10
#define DROP_MAX_CLIENTS 256

typedef struct Dropper Dropper;

typedef struct DropClient {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t req;
    Dropper *d;
    int index; /* in d->clients */
    int open_handles;
    bool answered;
    bool closing;
} DropClient;

struct Dropper {
    uv_tcp_t server;
    int accepts;
    DropClient *clients[DROP_MAX_CLIENTS]; /* NULL once freed */
};

static void on_drop_client_closed(uv_handle_t *handle)
{
    DropClient *dc = handle->data;
    if (--dc->open_handles == 0) {
        dc->d->clients[dc->index] = NULL;
        free(dc);
    }
}

static void drop_client(DropClient *dc)
{
    if (dc->closing)
        return;
    dc->closing = true;
    uv_close((uv_handle_t *)&dc->tcp, on_drop_client_closed);
    uv_close((uv_handle_t *)&dc->timer, on_drop_client_closed);
}

static void on_drop_timer(uv_timer_t *t)
{
    drop_client(t->data);
}

static void on_drop_written(uv_write_t *req, int status)
{
    DropClient *dc = req->data;
    (void)status;
    if (!dc->closing)
        uv_timer_start(&dc->timer, on_drop_timer, DROP_AFTER_MS, 0);
}

static void on_drop_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char scratch[4096];
    (void)h;
    (void)hint;
    *buf = uv_buf_init(scratch, sizeof(scratch));
}

static void on_drop_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    DropClient *dc = s->data;
    static char pong[] = "+PONG\r\n";
    (void)buf;
    if (nread < 0) {
        drop_client(dc);
    } else if (nread > 0 && !dc->answered) {
        dc->answered = true; /* one PING: no AUTH, no SELECT configured */
        uv_buf_t out = uv_buf_init(pong, sizeof(pong) - 1);
        dc->req.data = dc;
        ASSERT_EQ_INT(0, uv_write(&dc->req, s, &out, 1, on_drop_written));
    }
}

static void on_drop_connection(uv_stream_t *server, int status)
{
    Dropper *d = server->data;
    ASSERT_EQ_INT(0, status);
    ASSERT_TRUE(d->accepts < DROP_MAX_CLIENTS);
    DropClient *dc = calloc(1, sizeof(*dc));
    ASSERT_NOT_NULL(dc);
    uv_tcp_init(server->loop, &dc->tcp);
    uv_timer_init(server->loop, &dc->timer);
    dc->tcp.data = dc;
    dc->timer.data = dc;
    dc->open_handles = 2;
    dc->d = d;
    dc->index = d->accepts;
    d->clients[d->accepts++] = dc;
    ASSERT_EQ_INT(0, uv_accept(server, (uv_stream_t *)&dc->tcp));
    ASSERT_EQ_INT(
        0, uv_read_start((uv_stream_t *)&dc->tcp, on_drop_alloc, on_drop_read));
}

/* Listens on a loopback port of the kernel's choice; returns it. */
static int dropper_start(Dropper *d, uv_loop_t *loop)
{
    memset(d, 0, sizeof(*d));
    struct sockaddr_in sa;
    int len = sizeof(sa);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_init(loop, &d->server);
    d->server.data = d;
    ASSERT_EQ_INT(0, uv_tcp_bind(&d->server, (struct sockaddr *)&sa, 0));
    ASSERT_EQ_INT(0,
                  uv_listen((uv_stream_t *)&d->server, 64, on_drop_connection));
    uv_tcp_getsockname(&d->server, (struct sockaddr *)&sa, &len);
    return ntohs(sa.sin_port);
}

static void dropper_stop(Dropper *d)
{
    for (int i = 0; i < d->accepts; i++)
        if (d->clients[i] != NULL)
            drop_client(d->clients[i]);
    uv_close((uv_handle_t *)&d->server, NULL);
}

/* Every attempt gets the whole pool ready and loses it at once: the
** backoff must not start over on each of them. Gaps of at least 80, 160,
** 320, 640, 1280, 2560 ms: at most 6 attempts in 5 s (about 45 when each
** ready pool reset the backoff). */
static void test_pool_backs_off_a_server_that_drops_connections_when_ready(void)
{
    Harness h;
    memset(&h, 0, sizeof(h));
    ASSERT_EQ_INT(0, uv_loop_init(&h.loop));
    h.clock = &h.loop;
    Dropper d;
    h.fx.port = dropper_start(&d, &h.loop);
    enum { SIZE = 2 };
    PoolConfig cfg = config(&h, SIZE);
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]); /* each attempt gets ready... */
    run_for(&h.loop, 5000);
    int attempts = d.accepts / SIZE;
    ASSERT_EQ_INT(SIZE * attempts, d.accepts);
    if (attempts < 4 || attempts > 7)
        TEST_FAIL_("%d attempts in 5 s, expected 4 to 7", attempts);
    ASSERT_TRUE(h.ready >= attempts - 1);
    ASSERT_TRUE(h.down >= attempts - 1); /* ...and is lost right after */
    for (int i = 1; i < h.nstates && i < MAX_STATES; i += 2)
        ASSERT_EQ_INT(CR_ECONNRESET, h.states[i]);
    pool_close(h.pool);
    h.pool = NULL;
    dropper_stop(&d);
    finish(&h);
}

/* pool_fail (the engine's answer to READONLY) goes through the same
** backoff: a server that keeps being failed right after each reconnect is
** retried after gaps of about 100, 200, 400 ms, not 100 ms every time. */
static void test_pool_fail_reconnects_with_the_growing_backoff(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 2);
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    uint64_t failed_ms[3];
    for (int i = 0; i < 3; i++) {
        uv_update_time(&h.loop);
        failed_ms[i] = uv_now(&h.loop);
        pool_fail(h.pool, CR_EREADONLY, "READONLY from a test");
        ASSERT_FALSE(pool_ready(h.pool));
        ASSERT_EQ_INT(CR_EREADONLY, h.states[2 * i + 1]);
        ASSERT_EQ_STR("READONLY from a test", h.message);
        ASSERT_TRUE(wait_count(&h.loop, &h.ready, i + 2, 3000));
        /* from the failure to ready: the gap and a connect */
        assert_backoff_gap(h.state_ms[2 * i + 2] - failed_ms[i],
                           nominal_gap(i + 1));
    }
    expect_status(&h, "PONG", 1, (const char *[]){"PING"});
    finish(&h);
}

static void test_pool_survives_a_server_killed_and_restarted(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 2);
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    Load load;
    load_start(&load, &h.loop, &h.pool);
    ASSERT_TRUE(wait_count(&h.loop, &load.ok, 500, 5000));

    redis_fixture_kill(&h.fx, SIGKILL);
    Result res[50];
    memset(res, 0, sizeof(res));
    for (int i = 0; i < 50; i++) /* queued to a dead server */
        ASSERT_EQ_INT(CR_OK,
                      pool_command(h.pool, 2, (const char *[]){"GET", "k1"},
                                   NULL, on_reply, &res[i]));
    ASSERT_TRUE(wait_count(&h.loop, &h.down, 1, 3000));
    ASSERT_FALSE(pool_ready(h.pool));
    ASSERT_EQ_INT(0, pool_pending(h.pool));
    for (int i = 0; i < 50; i++) {
        ASSERT_EQ_INT(1, res[i].calls);
        ASSERT_TRUE(res[i].status < 0);
    }
    ASSERT_EQ_INT(load.issued, load.ok + load.failed); /* nothing hangs */
    run_for(&h.loop, 150);
    ASSERT_TRUE(load.rejected > 0);

    ASSERT_TRUE(redis_fixture_restart(&h.fx));
    ASSERT_TRUE(wait_count(&h.loop, &h.ready, 2, 6000));
    int ok_before = load.ok;
    ASSERT_TRUE(wait_count(&h.loop, &load.ok, ok_before + 200, 5000));
    load_stop(&load);
    expect_status(&h, "OK", 3, (const char *[]){"SET", "after", "restart"});
    Result r = run(&h, 2, (const char *[]){"GET", "after"}, NULL);
    ASSERT_EQ_STR("restart", r.str);
    result_free(&r);
    finish(&h);
    ASSERT_EQ_INT(load.issued, load.ok + load.failed);
}

static void test_pool_times_out_a_slow_server_and_recovers(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 1);
    cfg.command_timeout_ms = 100;
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    pause_clients(&h, 500);

    uv_update_time(&h.loop);
    uint64_t t0 = uv_now(&h.loop);
    Result r;
    memset(&r, 0, sizeof(r));
    ASSERT_EQ_INT(CR_OK, pool_command(h.pool, 2, (const char *[]){"GET", "k"},
                                      NULL, on_reply, &r));
    ASSERT_TRUE(wait_count(&h.loop, &r.calls, 1, 1000));
    uint64_t elapsed = uv_now(&h.loop) - t0;
    ASSERT_EQ_INT(CR_ETIMEDOUT, r.status);
    ASSERT_TRUE(elapsed >= 100 && elapsed < 400);
    ASSERT_EQ_INT(1, h.down);
    ASSERT_EQ_INT(CR_ETIMEDOUT, h.states[1]);

    /* The reconnect's PING waits out the pause; then all is well. */
    ASSERT_TRUE(wait_count(&h.loop, &h.ready, 2, 3000));
    r = run(&h, 1, (const char *[]){"PING"}, NULL);
    ASSERT_EQ_STR("PONG", r.str);
    result_free(&r);
    finish(&h);
}

static void test_pool_times_out_a_server_that_never_answers(void)
{
    Harness h;
    memset(&h, 0, sizeof(h));
    ASSERT_EQ_INT(0, uv_loop_init(&h.loop));
    h.clock = &h.loop;
    /* A socket that listens and never reads: the TCP connect succeeds. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ_INT(0, bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
    ASSERT_EQ_INT(0, listen(fd, 8));
    ASSERT_EQ_INT(0, getsockname(fd, (struct sockaddr *)&sa, &len));
    h.fx.port = ntohs(sa.sin_port);
    PoolConfig cfg = config(&h, 1);
    cfg.connect_timeout_ms = 200;
    uv_update_time(&h.loop);
    uint64_t t0 = uv_now(&h.loop);
    open_pool(&h, &cfg);
    uint64_t elapsed = uv_now(&h.loop) - t0;
    ASSERT_EQ_INT(CR_ETIMEDOUT, h.states[0]);
    ASSERT_TRUE(elapsed >= 200 && elapsed < 600);
    finish(&h);
    close(fd);
}

/* The process keeps the CPU (here: sleeps without running the loop) past
** the command timeout while the reply sits unread in the socket: the reply
** is what the command gets, not a timeout. */
static void test_pool_delivers_a_reply_that_came_while_the_loop_was_busy(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 1);
    cfg.command_timeout_ms = 100;
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    expect_status(&h, "OK", 3, (const char *[]){"SET", "k", "v"});

    /* The server holds the GET back for 50 ms, so its reply cannot be read
    ** before the busy stretch begins... */
    pause_clients(&h, 50);
    Result r;
    memset(&r, 0, sizeof(r));
    ASSERT_EQ_INT(CR_OK, pool_command(h.pool, 2, (const char *[]){"GET", "k"},
                                      NULL, on_reply, &r));
    uint64_t writes = pool_writes(h.pool);
    uv_run(&h.loop, UV_RUN_NOWAIT); /* writes it */
    ASSERT_EQ_INT(writes + 1, pool_writes(h.pool));
    ASSERT_EQ_INT(0, r.calls);
    /* ...which outlasts the pause and the command timeout. */
    redis_fixture_sleep_ms(300);

    ASSERT_TRUE(wait_count(&h.loop, &r.calls, 1, 1000));
    ASSERT_EQ_INT(CR_OK, r.status);
    ASSERT_EQ_STR("v", r.str);
    result_free(&r);
    ASSERT_EQ_INT(0, h.down);
    ASSERT_TRUE(pool_ready(h.pool));
    expect_status(&h, "PONG", 1, (const char *[]){"PING"});
    ASSERT_EQ_INT(1, h.nstates);
    finish(&h);
}

/* The same busy stretch, but the server does not answer: the timeout is
** reported as soon as the loop runs again, not a timeout later. */
static void test_pool_times_out_a_silent_server_right_after_a_busy_stretch(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 1);
    cfg.command_timeout_ms = 100;
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    pause_clients(&h, 600);
    Result r;
    memset(&r, 0, sizeof(r));
    ASSERT_EQ_INT(CR_OK, pool_command(h.pool, 2, (const char *[]){"GET", "k"},
                                      NULL, on_reply, &r));
    uv_run(&h.loop, UV_RUN_NOWAIT); /* writes it */
    ASSERT_EQ_INT(0, r.calls);
    redis_fixture_sleep_ms(300);

    uv_update_time(&h.loop);
    uint64_t t0 = uv_now(&h.loop);
    ASSERT_TRUE(wait_count(&h.loop, &r.calls, 1, 1000));
    ASSERT_EQ_INT(CR_ETIMEDOUT, r.status);
    ASSERT_TRUE(uv_now(&h.loop) - t0 < 50);
    ASSERT_EQ_INT(1, h.down);
    ASSERT_EQ_INT(CR_ETIMEDOUT, h.states[1]);
    ASSERT_TRUE(strstr(h.message, "no reply within 100 ms") != NULL);

    /* The reconnect's PING waits out the pause; then all is well. */
    ASSERT_TRUE(wait_count(&h.loop, &h.ready, 2, 3000));
    expect_status(&h, "PONG", 1, (const char *[]){"PING"});
    finish(&h);
}

/* -- A busy server: its silence, not a command's wait, times out ------- */

#define BUSY_TIMEOUT_MS 50
#define BUSY_KEYS       "20000" /* DEBUG POPULATE: about 20 SCAN calls */
#define BUSY_FIRST      100000  /* INCRs written in the first turn */
#define BUSY_PER_SCAN   10000   /* INCRs queued ahead of each next SCAN */
#define BUSY_SLOW_EVERY 200     /* a slower command (a SCAN) per INCRs */
#define BUSY_BATCHES    64

static const char *const debug_command[] = {"--enable-debug-command", "yes",
                                            NULL};

typedef struct Batch {
    struct Busy *b;
    uint64_t issued_ms; /* loop time (updated) when it was queued */
} Batch;

typedef struct Busy {
    Harness *h;
    Batch batches[BUSY_BATCHES];
    int nbatches;
    long long incrs;   /* INCRs queued */
    long long replies; /* INCR replies, each the next integer */
    long long slow;    /* slow commands queued */
    long long slow_replies;
    int wrong;
    int scans;
    long long keys;        /* keys the SCANs returned */
    bool scanned;          /* the cursor came back to 0 */
    uint64_t max_wait_ms;  /* from pool_command to its reply, the longest */
    uint64_t scan_sent_ms; /* the SCAN in flight, queued at */
    char cursor[32];
} Busy;

static void note_wait(Busy *b, uint64_t issued_ms)
{
    uint64_t wait = uv_now(b->h->clock) - issued_ms;
    if (wait > b->max_wait_ms)
        b->max_wait_ms = wait;
}

static void on_busy_incr(void *ud, int status, const redisReply *r)
{
    Batch *batch = ud;
    Busy *b = batch->b;
    b->replies++;
    if (status != CR_OK || r->type != REDIS_REPLY_INTEGER ||
        r->integer != b->replies)
        b->wrong++;
    note_wait(b, batch->issued_ms);
}

/* A SCAN that examines 5000 keys and matches none: about a millisecond
** of the server's time, an empty page for us. */
static void on_busy_slow(void *ud, int status, const redisReply *r)
{
    Batch *batch = ud;
    Busy *b = batch->b;
    b->slow_replies++;
    if (status != CR_OK || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        b->wrong++;
    note_wait(b, batch->issued_ms);
}

/* n INCRs, and a slow command after every BUSY_SLOW_EVERY of them: few
** enough in each of the server's reads (16 KiB) that it answers every
** few milliseconds, but the whole batch takes it a good while. */
static void queue_incrs(Busy *b, int n)
{
    static const char *slow[] = {"SCAN",      "0",     "MATCH",
                                 "nomatch:*", "COUNT", "5000"};
    ASSERT_TRUE(b->nbatches < BUSY_BATCHES);
    Batch *batch = &b->batches[b->nbatches++];
    batch->b = b;
    uv_update_time(b->h->clock);
    batch->issued_ms = uv_now(b->h->clock);
    for (int i = 1; i <= n; i++) {
        ASSERT_EQ_INT(CR_OK, pool_command(b->h->pool, 2,
                                          (const char *[]){"INCR", "counter"},
                                          NULL, on_busy_incr, batch));
        if (i % BUSY_SLOW_EVERY == 0) {
            ASSERT_EQ_INT(CR_OK, pool_command(b->h->pool, 6, slow, NULL,
                                              on_busy_slow, batch));
            b->slow++;
        }
    }
    b->incrs += n;
}

static void on_busy_scan(void *ud, int status, const redisReply *r);

static void queue_scan(Busy *b)
{
    uv_update_time(b->h->clock);
    b->scan_sent_ms = uv_now(b->h->clock);
    const char *argv[] = {"SCAN", b->cursor, "COUNT", "1000"};
    ASSERT_EQ_INT(CR_OK,
                  pool_command(b->h->pool, 4, argv, NULL, on_busy_scan, b));
}

/* A clear's SCAN loop, each next SCAN queued behind a batch of INCRs. */
static void on_busy_scan(void *ud, int status, const redisReply *r)
{
    Busy *b = ud;
    ASSERT_EQ_INT(CR_OK, status);
    ASSERT_EQ_INT(REDIS_REPLY_ARRAY, r->type);
    ASSERT_EQ_INT(2, r->elements);
    note_wait(b, b->scan_sent_ms);
    b->scans++;
    b->keys += (long long)r->element[1]->elements;
    snprintf(b->cursor, sizeof(b->cursor), "%s", r->element[0]->str);
    if (strcmp(b->cursor, "0") == 0) {
        b->scanned = true;
        return;
    }
    queue_incrs(b, BUSY_PER_SCAN);
    queue_scan(b);
}

/* Runs the loop until the SCAN loop ended and every INCR was answered. */
static bool wait_busy(Busy *b, uint64_t ms)
{
    uv_loop_t *loop = b->h->clock;
    bool expired = false;
    uv_timer_t guard;
    uv_timer_init(loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard, ms, 0);
    while (
        !(b->scanned && b->replies == b->incrs && b->slow_replies == b->slow) &&
        b->h->down == 0 && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return b->scanned && b->replies == b->incrs && b->slow_replies == b->slow;
}

/* A deep pipeline and a SCAN loop queued behind it: the server takes far
** longer than the command timeout to answer it all, but it keeps
** answering, so nothing times out and the pool stays ready. */
static void test_pool_does_not_time_out_a_busy_server_that_keeps_answering(void)
{
    Harness h;
    start(&h, debug_command);
    char line[64];
    ASSERT_TRUE(redis_fixture_query(&h.fx, "DEBUG POPULATE " BUSY_KEYS, line,
                                    sizeof(line)));
    ASSERT_EQ_STR("+OK", line);
    PoolConfig cfg = config(&h, 1);
    cfg.command_timeout_ms = BUSY_TIMEOUT_MS;
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);

    Busy *b = calloc(1, sizeof(*b));
    ASSERT_NOT_NULL(b);
    b->h = &h;
    snprintf(b->cursor, sizeof(b->cursor), "0");
    queue_incrs(b, BUSY_FIRST);
    queue_scan(b);
    ASSERT_TRUE(wait_busy(b, 30000));
    ASSERT_EQ_INT(0, h.down);
    ASSERT_EQ_INT(1, h.nstates);
    ASSERT_TRUE(pool_ready(h.pool));
    ASSERT_EQ_INT(0, b->wrong);
    ASSERT_TRUE(b->keys >= atoi(BUSY_KEYS));
    ASSERT_TRUE(b->scans >= 10);
    /* The premise: replies came much later than the timeout after their
    ** command was queued (the old per-command deadline failed here). */
    if (b->max_wait_ms < 3 * BUSY_TIMEOUT_MS)
        TEST_FAIL_("the longest wait was %llu ms: not a busy server",
                   (unsigned long long)b->max_wait_ms);
    free(b);
    expect_status(&h, "PONG", 1, (const char *[]){"PING"});
    finish(&h);
}

typedef struct Stream {
    Harness *h;
    int replies;
    int failed;
    int status;         /* the first failure's */
    uint64_t failed_ms; /* loop time of the first failure */
    bool stop;          /* issue no more */
} Stream;

static void on_stream_reply(void *ud, int status, const redisReply *r);

static void queue_stream_batch(Stream *st)
{
    for (int i = 0; i < 100; i++)
        ASSERT_EQ_INT(CR_OK, pool_command(st->h->pool, 2,
                                          (const char *[]){"INCR", "n"}, NULL,
                                          on_stream_reply, st));
}

/* Keeps about 100 commands in flight: each 100th reply queues 100 more. */
static void on_stream_reply(void *ud, int status, const redisReply *r)
{
    Stream *st = ud;
    (void)r;
    if (status != CR_OK) {
        if (st->failed++ == 0) {
            st->status = status;
            uv_update_time(st->h->clock);
            st->failed_ms = uv_now(st->h->clock);
        }
        return;
    }
    if (++st->replies % 100 == 0 && !st->stop)
        queue_stream_batch(st);
}

/* A server that answers a steady stream for several timeouts, then stops
** (SIGSTOP): the silence is noticed about one timeout after it began. */
static void test_pool_times_out_a_busy_server_that_goes_silent(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 1);
    cfg.command_timeout_ms = 100;
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    Stream st;
    memset(&st, 0, sizeof(st));
    st.h = &h;
    queue_stream_batch(&st);
    run_for(&h.loop, 4 * cfg.command_timeout_ms);
    ASSERT_EQ_INT(0, h.down);
    ASSERT_EQ_INT(0, st.failed);
    ASSERT_TRUE(st.replies >= 1000); /* streaming, for 4 timeouts */

    ASSERT_EQ_INT(0, kill(h.fx.pid, SIGSTOP));
    uv_update_time(&h.loop);
    uint64_t stopped_ms = uv_now(&h.loop);
    ASSERT_TRUE(wait_count(&h.loop, &h.down, 1, 2000));
    st.stop = true;
    ASSERT_EQ_INT(0, kill(h.fx.pid, SIGCONT));
    ASSERT_TRUE(st.failed >= 1);
    ASSERT_EQ_INT(CR_ETIMEDOUT, st.status);
    ASSERT_EQ_INT(CR_ETIMEDOUT, h.states[1]);
    ASSERT_TRUE(strstr(h.message, "no reply within 100 ms") != NULL);
    uint64_t silent_ms = st.failed_ms - stopped_ms;
    if (silent_ms + 20 < cfg.command_timeout_ms ||
        silent_ms > cfg.command_timeout_ms + 150)
        TEST_FAIL_("timed out %llu ms after the server stopped",
                   (unsigned long long)silent_ms);
    ASSERT_TRUE(wait_count(&h.loop, &h.ready, 2, 3000));
    expect_status(&h, "PONG", 1, (const char *[]){"PING"});
    finish(&h);
}

/* A command queued, then the process busy past the timeout before the
** loop writes it: its wait in cachert's own queue does not count. The
** server answers 50 ms after the write (CLIENT PAUSE 50), within the
** timeout of silence. */
static void test_pool_does_not_count_the_wait_before_a_command_is_written(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 1);
    cfg.command_timeout_ms = 100;
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    expect_status(&h, "OK", 3, (const char *[]){"SET", "k", "v"});
    Result r;
    memset(&r, 0, sizeof(r));
    uint64_t writes = pool_writes(h.pool);
    ASSERT_EQ_INT(CR_OK, pool_command(h.pool, 2, (const char *[]){"GET", "k"},
                                      NULL, on_reply, &r));
    redis_fixture_sleep_ms(300); /* busy: the loop does not run */
    pause_clients(&h, 50);
    ASSERT_EQ_INT(writes, pool_writes(h.pool)); /* not written yet */

    ASSERT_TRUE(wait_count(&h.loop, &r.calls, 1, 1000));
    ASSERT_EQ_INT(CR_OK, r.status);
    ASSERT_EQ_STR("v", r.str);
    result_free(&r);
    ASSERT_EQ_INT(0, h.down);
    ASSERT_EQ_INT(1, h.nstates);
    finish(&h);
}

typedef struct ConnState {
    int calls;
    int status;
} ConnState;

static void on_conn_state(void *ud, Conn *c, int status, const char *message)
{
    ConnState *s = ud;
    (void)c;
    (void)message;
    s->calls++;
    s->status = status;
}

/* The handshake's replies count as replies too: a connection whose
** handshake answer arrived while the process was busy past the connect
** timeout becomes ready. */
static void test_conn_becomes_ready_when_its_handshake_reply_waited(void)
{
    Harness h;
    start(&h, NULL);
    pause_clients(&h, 500);
    ConnConfig cfg = {.host = "127.0.0.1",
                      .port = h.fx.port,
                      .connect_timeout_ms = 300,
                      .command_timeout_ms = 300};
    ConnState st = {0, 0};
    Conn *c = conn_new(&h.loop, &cfg, on_conn_state, &st);
    ASSERT_NOT_NULL(c);
    /* Resolved, connected, handshake written (bounded)... */
    for (int i = 0; i < 250 && conn_writes(c) == 0; i++) {
        uv_run(&h.loop, UV_RUN_NOWAIT);
        redis_fixture_sleep_ms(1);
    }
    ASSERT_EQ_INT(1, conn_writes(c));
    ASSERT_EQ_INT(0, st.calls); /* the server holds the PING back */
    /* ...then busy past the pause and the connect timeout. */
    redis_fixture_sleep_ms(800);

    ASSERT_TRUE(wait_count(&h.loop, &st.calls, 1, 1000));
    ASSERT_EQ_INT(CR_OK, st.status);
    ASSERT_TRUE(conn_ready(c));
    conn_close(c);
    finish(&h);
}

typedef struct Liar {
    uv_tcp_t server;
    uv_tcp_t client;
    uv_write_t req;
    bool accepted;
} Liar;

static void on_liar_connection(uv_stream_t *server, int status)
{
    Liar *l = server->data;
    ASSERT_EQ_INT(0, status);
    ASSERT_FALSE(l->accepted);
    uv_tcp_init(server->loop, &l->client);
    ASSERT_EQ_INT(0, uv_accept(server, (uv_stream_t *)&l->client));
    l->accepted = true;
    static char http[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
    uv_buf_t buf = uv_buf_init(http, sizeof(http) - 1);
    ASSERT_EQ_INT(0,
                  uv_write(&l->req, (uv_stream_t *)&l->client, &buf, 1, NULL));
}

static void test_pool_fails_a_server_speaking_another_protocol(void)
{
    Harness h;
    memset(&h, 0, sizeof(h));
    ASSERT_EQ_INT(0, uv_loop_init(&h.loop));
    h.clock = &h.loop;
    Liar liar;
    memset(&liar, 0, sizeof(liar));
    struct sockaddr_in sa;
    int len = sizeof(sa);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_init(&h.loop, &liar.server);
    liar.server.data = &liar;
    ASSERT_EQ_INT(0, uv_tcp_bind(&liar.server, (struct sockaddr *)&sa, 0));
    ASSERT_EQ_INT(
        0, uv_listen((uv_stream_t *)&liar.server, 8, on_liar_connection));
    uv_tcp_getsockname(&liar.server, (struct sockaddr *)&sa, &len);
    h.fx.port = ntohs(sa.sin_port);
    PoolConfig cfg = config(&h, 1);
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_EPROTO, h.states[0]);
    ASSERT_TRUE(strstr(h.message, "Protocol error") != NULL);
    pool_close(h.pool);
    h.pool = NULL;
    uv_close((uv_handle_t *)&liar.server, NULL);
    if (liar.accepted)
        uv_close((uv_handle_t *)&liar.client, NULL);
    finish(&h);
}

/* -- Idle connections closed by the server ----------------------------- */

static const char *const idle_timeout[] = {"--timeout", "1", NULL};

static long long client_id(Harness *h)
{
    Result r = run(h, 2, (const char *[]){"CLIENT", "ID"}, NULL);
    ASSERT_EQ_INT(CR_OK, r.status);
    ASSERT_EQ_INT(REDIS_REPLY_INTEGER, r.type);
    return r.integer;
}

static void test_pool_stays_ready_across_idle_closes(void)
{
    Harness h;
    start(&h, idle_timeout);
    PoolConfig cfg = config(&h, 2);
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    long long before = client_id(&h);
    expect_status(&h, "OK", 3, (const char *[]){"SET", "k", "v"});

    /* The server drops both idle connections after 1 s or so (and their
    ** replacements again later): no state report, no outage. */
    run_for(&h.loop, 2500);
    ASSERT_EQ_INT(1, h.nstates);
    ASSERT_EQ_INT(0, h.down);
    ASSERT_TRUE(pool_ready(h.pool));
    ASSERT_TRUE(pool_replaced(h.pool) >= 2);
    ASSERT_EQ_INT(0, pool_pending(h.pool));

    /* Right after the next round of closes (fresh connections: no race
    ** with the server's idle timer), commands go through. */
    uint64_t n = pool_replaced(h.pool);
    ASSERT_TRUE(wait_replaced(&h, n + 2, 3000));
    Result r = run(&h, 2, (const char *[]){"GET", "k"}, NULL);
    ASSERT_EQ_INT(CR_OK, r.status);
    ASSERT_EQ_STR("v", r.str);
    result_free(&r);
    ASSERT_TRUE(client_id(&h) > before); /* a new connection answered */
    ASSERT_EQ_INT(1, h.nstates);
    ASSERT_TRUE(pool_ready(h.pool));

    /* Idle replacements do not keep the loop alive. */
    uv_run(&h.loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(1, h.nstates);
    finish(&h);
}

static void test_pool_of_one_serves_a_command_right_after_an_idle_close(void)
{
    Harness h;
    start(&h, idle_timeout);
    PoolConfig cfg = config(&h, 1);
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    long long before = client_id(&h);

    /* The only connection is closed; its replacement is still resolving
    ** when these are issued: they wait for its handshake, in order. */
    ASSERT_TRUE(wait_replaced(&h, 1, 3000));
    ASSERT_TRUE(pool_ready(h.pool));
    enum { N = 5 };
    Result res[N];
    memset(res, 0, sizeof(res));
    for (int i = 0; i < N - 1; i++)
        ASSERT_EQ_INT(CR_OK,
                      pool_command(h.pool, 2, (const char *[]){"INCR", "n"},
                                   NULL, on_reply, &res[i]));
    ASSERT_EQ_INT(CR_OK,
                  pool_command(h.pool, 2, (const char *[]){"CLIENT", "ID"},
                               NULL, on_reply, &res[N - 1]));
    ASSERT_EQ_INT(N, pool_pending(h.pool)); /* the handshake not counted */
    ASSERT_EQ_INT(0, res[0].calls);         /* never inside pool_command */
    ASSERT_TRUE(wait_count(&h.loop, &res[N - 1].calls, 1, 3000));
    for (int i = 0; i < N - 1; i++) {
        ASSERT_EQ_INT(1, res[i].calls);
        ASSERT_EQ_INT(CR_OK, res[i].status);
        ASSERT_EQ_INT(i + 1, res[i].integer);
    }
    ASSERT_EQ_INT(CR_OK, res[N - 1].status);
    ASSERT_TRUE(res[N - 1].integer > before);
    ASSERT_EQ_INT(1, h.nstates);
    ASSERT_EQ_INT(0, pool_pending(h.pool));

    /* The replacement, idle, does not keep the loop alive. */
    uv_run(&h.loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(1, h.nstates);
    finish(&h);
}

static void test_pool_reports_a_server_killed_while_idle_once_it_refuses(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 1);
    open_pool(&h, &cfg);
    ASSERT_EQ_INT(CR_OK, h.states[0]);
    expect_status(&h, "PONG", 1, (const char *[]){"PING"});
    run_for(&h.loop, 2 * POOL_BACKOFF_MIN_MS); /* not a fresh connection */

    /* Nothing pending: the close looks idle, the replacement is refused. */
    redis_fixture_kill(&h.fx, SIGKILL);
    ASSERT_TRUE(wait_replaced(&h, 1, 3000));
    Result r;
    memset(&r, 0, sizeof(r));
    ASSERT_EQ_INT(CR_OK, pool_command(h.pool, 1, (const char *[]){"PING"}, NULL,
                                      on_reply, &r));
    ASSERT_TRUE(wait_count(&h.loop, &h.down, 1, 3000));
    ASSERT_EQ_INT(2, h.nstates);
    ASSERT_EQ_INT(CR_ECONNREFUSED, h.states[1]);
    ASSERT_TRUE(strstr(h.message, "refused") != NULL);
    ASSERT_FALSE(pool_ready(h.pool));
    ASSERT_EQ_INT(1, r.calls); /* queued on the replacement: failed with it */
    ASSERT_EQ_INT(CR_ECONNREFUSED, r.status);
    ASSERT_EQ_INT(
        CR_ECONNRESET,
        pool_command(h.pool, 1, (const char *[]){"PING"}, NULL, on_reply, &r));

    /* Then the usual backoff, until the server is back. */
    ASSERT_TRUE(redis_fixture_restart(&h.fx));
    ASSERT_TRUE(wait_count(&h.loop, &h.ready, 2, 6000));
    expect_status(&h, "PONG", 1, (const char *[]){"PING"});
    ASSERT_EQ_INT(1, r.calls);
    finish(&h);
}

static void test_pool_fails_commands_pending_when_the_server_closes(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 1);
    open_pool(&h, &cfg);
    run_for(&h.loop, 2 * POOL_BACKOFF_MIN_MS);
    /* A command awaits its reply when the server drops the connection
    ** (CLIENT KILL, from a side channel): a real failure. */
    Result r;
    memset(&r, 0, sizeof(r));
    ASSERT_EQ_INT(CR_OK,
                  pool_command(h.pool, 3, (const char *[]){"BLPOP", "q", "0"},
                               NULL, on_reply, &r));
    run_for(&h.loop, 50); /* written, blocked */
    char line[64];
    ASSERT_TRUE(redis_fixture_query(&h.fx, "CLIENT KILL TYPE normal", line,
                                    sizeof(line)));
    ASSERT_EQ_STR(":1", line);
    ASSERT_TRUE(wait_count(&h.loop, &h.down, 1, 3000));
    ASSERT_EQ_INT(1, r.calls);
    ASSERT_EQ_INT(CR_ECONNRESET, r.status);
    ASSERT_EQ_INT(0, pool_replaced(h.pool));
    ASSERT_TRUE(wait_count(&h.loop, &h.ready, 2, 3000));
    finish(&h);
}

/* -- SIGPIPE ------------------------------------------------------------ */

static int sigpipe_handler_kind(void)
{
    struct sigaction sa;
    ASSERT_EQ_INT(0, sigaction(SIGPIPE, NULL, &sa));
    if (sa.sa_flags & SA_SIGINFO)
        return 2;
    return sa.sa_handler == SIG_DFL ? 0 : sa.sa_handler == SIG_IGN ? 1 : 2;
}

/* conn_quiet_sigpipe (called by the first conn_new) replaces only the
** default disposition, with a handler, which exec() resets: a child
** program gets the default back. The ignored case runs in a child, which
** starts with this process's state: so this case comes first. */
static void test_conn_quiet_sigpipe_changes_only_the_default_disposition(void)
{
    int status;
    pid_t pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        struct sigaction ign;
        memset(&ign, 0, sizeof(ign));
        ign.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &ign, NULL);
        conn_quiet_sigpipe();
        _exit(sigpipe_handler_kind() == 1 ? 0 : 1); /* still ignored */
    }
    ASSERT_EQ_INT(pid, waitpid(pid, &status, 0));
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    conn_quiet_sigpipe();
    ASSERT_EQ_INT(2, sigpipe_handler_kind()); /* from the default: handled */
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", "kill -s PIPE $$; exit 0", (char *)NULL);
        _exit(127);
    }
    ASSERT_EQ_INT(pid, waitpid(pid, &status, 0));
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE);
}

/* A server killed while the process is busy: its connection gets the FIN,
** unread. The first batch written to it is answered by a reset, and the
** next write fails with EPIPE, which raises SIGPIPE: the connection
** reports a reset, the pool goes down, and the process lives on. */
static void test_pool_survives_writing_to_a_killed_server(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 1);
    open_pool(&h, &cfg);
    ASSERT_TRUE(pool_ready(h.pool));
    ASSERT_EQ_INT(2, sigpipe_handler_kind());
    redis_fixture_kill(&h.fx, SIGKILL);
    redis_fixture_sleep_ms(50); /* busy: the loop does not read the FIN */
    enum { N = 3 * POOL_WRITE_BATCH };
    Result res[N];
    memset(res, 0, sizeof(res));
    uint64_t writes = pool_writes(h.pool);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ_INT(CR_OK,
                      pool_command(h.pool, 2, (const char *[]){"GET", "k"},
                                   NULL, on_reply, &res[i]));
        if ((i + 1) % POOL_WRITE_BATCH == 0)
            redis_fixture_sleep_ms(20); /* the reset comes back */
    }
    /* the first write went out, the second failed, none was tried after */
    ASSERT_EQ_INT(1, pool_writes(h.pool) - writes);
    ASSERT_TRUE(wait_count(&h.loop, &h.down, 1, 3000));
    ASSERT_EQ_INT(CR_ECONNRESET, h.states[1]);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ_INT(1, res[i].calls);
        ASSERT_EQ_INT(CR_ECONNRESET, res[i].status);
    }
    finish(&h);
}

/* -- Closing ------------------------------------------------------------ */

static void test_pool_close_fails_pending_commands_synchronously(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 3);
    open_pool(&h, &cfg);
    enum { N = 10 };
    Result res[2 * N];
    memset(res, 0, sizeof(res));
    /* Written and awaiting replies (the server holds them back)... */
    pause_clients(&h, 300);
    for (int i = 0; i < N; i++)
        ASSERT_EQ_INT(CR_OK, pool_command(h.pool, 1, (const char *[]){"PING"},
                                          NULL, on_reply, &res[i]));
    run_for(&h.loop, 50);
    ASSERT_EQ_INT(1, pool_writes(h.pool));
    /* ...and queued, not yet written. */
    for (int i = N; i < 2 * N; i++)
        ASSERT_EQ_INT(CR_OK, pool_command(h.pool, 1, (const char *[]){"PING"},
                                          NULL, on_reply, &res[i]));
    ASSERT_EQ_INT(2 * N, pool_pending(h.pool));
    pool_close(h.pool);
    h.pool = NULL;
    for (int i = 0; i < 2 * N; i++) {
        ASSERT_EQ_INT(1, res[i].calls);
        ASSERT_EQ_INT(CR_ECONNRESET, res[i].status);
    }
    finish(&h);
    for (int i = 0; i < 2 * N; i++)
        ASSERT_EQ_INT(1, res[i].calls); /* and never again */
}

static void on_reply_then_close(void *ud, int status, const redisReply *r)
{
    Harness *h = ((Result *)ud)->owner;
    on_reply(ud, status, r);
    if (h->pool != NULL) {
        pool_close(h->pool);
        h->pool = NULL;
    }
}

static void test_pool_close_from_inside_a_reply_callback_is_safe(void)
{
    Harness h;
    start(&h, NULL);
    PoolConfig cfg = config(&h, 2);
    open_pool(&h, &cfg);
    enum { N = 6 };
    Result res[N];
    memset(res, 0, sizeof(res));
    for (int i = 0; i < N; i++) {
        res[i].owner = &h;
        ASSERT_EQ_INT(CR_OK, pool_command(h.pool, 1, (const char *[]){"PING"},
                                          NULL, on_reply_then_close, &res[i]));
    }
    int any = 0;
    for (int i = 0; i < N; i++) /* whichever reply comes first closes */
        if (wait_count(&h.loop, &res[i].calls, 1, 3000))
            any++;
    ASSERT_EQ_INT(N, any);
    ASSERT_NULL(h.pool);
    int ok = 0;
    for (int i = 0; i < N; i++) {
        ASSERT_EQ_INT(1, res[i].calls);
        if (res[i].status == CR_OK)
            ok++;
        else
            ASSERT_EQ_INT(CR_ECONNRESET, res[i].status);
        result_free(&res[i]);
    }
    ASSERT_EQ_INT(1, ok);
    finish(&h);
}

static const TestCase cases[] = {
    /* first: it needs SIGPIPE as the process started (see there) */
    TEST_CASE(test_conn_quiet_sigpipe_changes_only_the_default_disposition),
    TEST_CASE(test_pool_runs_get_and_set_with_binary_values),
    TEST_CASE(test_pool_writes_each_batch_as_soon_as_it_is_queued),
    TEST_CASE(test_pool_server_runs_a_batch_while_the_next_is_queued),
    TEST_CASE(test_pool_keeps_the_loop_alive_only_while_it_has_work),
    TEST_CASE(test_pool_sends_a_few_commands_of_one_turn_in_one_write),
    TEST_CASE(test_pool_spreads_batches_over_its_connections),
    TEST_CASE(test_pool_answers_many_tasks_in_order_over_many_connections),
    TEST_CASE(test_pool_authenticates_with_a_good_password),
    TEST_CASE(test_pool_reports_a_wrong_password_as_eauth),
    TEST_CASE(test_pool_authenticates_an_acl_user),
    TEST_CASE(test_pool_select_isolates_databases),
    TEST_CASE(test_pool_reports_max_clients_as_a_refusal_not_a_login_error),
    TEST_CASE(test_pool_backoff_grows_to_the_maximum_and_stays_there),
    TEST_CASE(test_pool_backoff_starts_over_after_a_healthy_period),
    TEST_CASE(test_pool_backs_off_a_server_that_drops_connections_when_ready),
    TEST_CASE(test_pool_fail_reconnects_with_the_growing_backoff),
    TEST_CASE(test_pool_survives_a_server_killed_and_restarted),
    TEST_CASE(test_pool_times_out_a_slow_server_and_recovers),
    TEST_CASE(test_pool_times_out_a_server_that_never_answers),
    TEST_CASE(test_pool_delivers_a_reply_that_came_while_the_loop_was_busy),
    TEST_CASE(test_pool_times_out_a_silent_server_right_after_a_busy_stretch),
    TEST_CASE(test_pool_does_not_time_out_a_busy_server_that_keeps_answering),
    TEST_CASE(test_pool_times_out_a_busy_server_that_goes_silent),
    TEST_CASE(test_pool_does_not_count_the_wait_before_a_command_is_written),
    TEST_CASE(test_conn_becomes_ready_when_its_handshake_reply_waited),
    TEST_CASE(test_pool_fails_a_server_speaking_another_protocol),
    TEST_CASE(test_pool_stays_ready_across_idle_closes),
    TEST_CASE(test_pool_of_one_serves_a_command_right_after_an_idle_close),
    TEST_CASE(test_pool_reports_a_server_killed_while_idle_once_it_refuses),
    TEST_CASE(test_pool_fails_commands_pending_when_the_server_closes),
    TEST_CASE(test_pool_survives_writing_to_a_killed_server),
    TEST_CASE(test_pool_close_fails_pending_commands_synchronously),
    TEST_CASE(test_pool_close_from_inside_a_reply_callback_is_safe),
    {NULL, NULL},
};

TEST_MAIN(cases)
