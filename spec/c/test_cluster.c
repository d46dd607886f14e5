/*
** test_cluster.c -- the Cluster backend (src/cluster.c) against a live
** 3 + 3 Redis Cluster (spec/c/cluster_fixture.h): routing by slot to every
** primary, a multi-slot UNLINK summed, MOVED and ASK on a slot moved by
** hand, TRYAGAIN while a slot's keys are split by a migration, a primary
** SIGKILLed (only its slots unusable, then its promoted replica), and no
** seed answering. The side channel is hiredis's blocking API.
*/
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "backend.h"
#include "cluster_fixture.h"
#include "reply_capture.h"
#include "slot.h"
#include "status.h"
#include "test.h"

typedef struct Harness {
    uv_loop_t loop;
    ClusterFixture cf;
    Backend *b;
    RedisAddr seed;
    int nstates;
    int ready;
    int down;
    char message[1024];
} Harness;

static void on_state(void *ud, int status, const char *message)
{
    Harness *h = ud;
    h->nstates++;
    if (status == CR_OK)
        h->ready++;
    else
        h->down++;
    snprintf(h->message, sizeof(h->message), "%s", message);
}

static void open_backend(Harness *h, const RedisAddr *seeds, size_t n)
{
    RedisConfig cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.pool.size = 2;
    cfg.pool.connect_timeout_ms = 1000;
    cfg.pool.command_timeout_ms = 1000;
    cfg.cluster = true;
    cfg.cluster_nodes = seeds;
    cfg.ncluster_nodes = n;
    h->b = backend_new(&h->loop, &cfg, on_state, h);
    ASSERT_NOT_NULL(h->b);
    backend_connect(h->b);
    ASSERT_TRUE(wait_count(&h->loop, &h->nstates, 1, 10000));
}

/* Starts the cluster and a backend seeded with its first node. */
static void start(Harness *h)
{
    memset(h, 0, sizeof(*h));
    ASSERT_TRUE(cluster_fixture_start(&h->cf));
    ASSERT_EQ_INT(0, uv_loop_init(&h->loop));
    h->seed.host = "127.0.0.1";
    h->seed.port = h->cf.nodes[0].fx.port;
    open_backend(h, &h->seed, 1);
    ASSERT_EQ_INT(1, h->ready);
}

static void finish(Harness *h)
{
    if (h->b != NULL)
        backend_close(h->b);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(0, uv_loop_close(&h->loop));
    cluster_fixture_stop(&h->cf);
}

/* One command through the backend to its reply. */
static Result run(Harness *h, int argc, const char **argv)
{
    Result r;
    memset(&r, 0, sizeof(r));
    ASSERT_EQ_INT(CR_OK, backend_command(h->b, argc, argv, NULL, on_reply, &r));
    ASSERT_TRUE(wait_count(&h->loop, &r.calls, 1, 5000));
    ASSERT_EQ_INT(1, r.calls);
    return r;
}

static void set_ok(Harness *h, const char *key, const char *value)
{
    Result r = run(h, 3, (const char *[]){"SET", key, value});
    ASSERT_EQ_INT(CR_OK, r.status);
    ASSERT_EQ_INT(REDIS_REPLY_STATUS, r.type);
    result_free(&r);
}

static long long side_integer(int port, const char *fmt, const char *arg)
{
    redisReply *r = cluster_fixture_command(port, fmt, arg);
    ASSERT_NOT_NULL(r);
    ASSERT_EQ_INT(REDIS_REPLY_INTEGER, r->type);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static bool is_primary(int port)
{
    redisReply *r = cluster_fixture_command(port, "ROLE");
    bool yes = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
               strcmp(r->element[0]->str, "master") == 0;
    if (r != NULL)
        freeReplyObject(r);
    return yes;
}

/* The node index holding `key` (a primary with it in its keyspace). */
static int owner_of(const Harness *h, const char *key)
{
    char slot[16];
    snprintf(slot, sizeof(slot), "%u", slot_of(key, strlen(key)));
    for (int i = 0; i < CLUSTER_FIXTURE_NODES; i++)
        if (h->cf.nodes[i].fx.pid != 0 && is_primary(h->cf.nodes[i].fx.port) &&
            side_integer(h->cf.nodes[i].fx.port, "CLUSTER COUNTKEYSINSLOT %s",
                         slot) > 0)
            return i;
    return -1;
}

static void node_id(int port, char *out, size_t size)
{
    redisReply *r = cluster_fixture_command(port, "CLUSTER MYID");
    ASSERT_NOT_NULL(r);
    ASSERT_EQ_INT(REDIS_REPLY_STRING, r->type);
    snprintf(out, size, "%s", r->str);
    freeReplyObject(r);
}

/* -- Cases -------------------------------------------------------------- */

static void test_cluster_routes_keys_to_every_primary(void)
{
    Harness h;
    start(&h);
    size_t known, up;
    backend_node_counts(h.b, &known, &up);
    ASSERT_EQ_INT(3, (int)known);
    for (int i = 0; i < 300; i++) {
        char key[32], val[32];
        snprintf(key, sizeof(key), "route:%d", i);
        snprintf(val, sizeof(val), "v%d", i);
        set_ok(&h, key, val);
    }
    int with_keys = 0;
    for (int i = 0; i < CLUSTER_FIXTURE_NODES; i++) {
        int port = h.cf.nodes[i].fx.port;
        if (is_primary(port) && side_integer(port, "DBSIZE%s", "") > 50)
            with_keys++;
    }
    ASSERT_EQ_INT(3, with_keys);
    for (int i = 0; i < 300; i += 7) {
        char key[32], val[32];
        snprintf(key, sizeof(key), "route:%d", i);
        snprintf(val, sizeof(val), "v%d", i);
        Result r = run(&h, 2, (const char *[]){"GET", key});
        ASSERT_EQ_INT(REDIS_REPLY_STRING, r.type);
        ASSERT_EQ_STR(val, r.str);
        result_free(&r);
    }
    backend_node_counts(h.b, &known, &up);
    ASSERT_EQ_INT(3, (int)up);
    finish(&h);
}

static void test_cluster_sums_an_unlink_across_slots(void)
{
    Harness h;
    start(&h);
    const char *argv[61];
    char keys[60][16];
    argv[0] = "UNLINK";
    for (int i = 0; i < 60; i++) {
        snprintf(keys[i], sizeof(keys[i]), "u%d", i);
        if (i < 50)
            set_ok(&h, keys[i], "x");
        argv[i + 1] = keys[i];
    }
    Result r = run(&h, 61, argv);
    ASSERT_EQ_INT(CR_OK, r.status);
    ASSERT_EQ_INT(REDIS_REPLY_INTEGER, r.type);
    ASSERT_EQ_INT(50, (int)r.integer); /* 10 never existed */
    finish(&h);
}

/* A slot moved by hand from its owner to another primary: begin_move
** (IMPORTING on the target, MIGRATING on the source), migrate_key (one key
** at a time), end_move (SETSLOT NODE on every node). */
typedef struct Move {
    int from, to;
    char from_id[64], to_id[64];
    unsigned slot;
} Move;

static void begin_move(Harness *h, const char *key, Move *m)
{
    m->slot = slot_of(key, strlen(key));
    m->from = owner_of(h, key);
    ASSERT_TRUE(m->from >= 0);
    m->to = -1;
    for (int i = 0; i < CLUSTER_FIXTURE_NODES && m->to < 0; i++)
        if (i != m->from && is_primary(h->cf.nodes[i].fx.port))
            m->to = i;
    ASSERT_TRUE(m->to >= 0);
    int fp = h->cf.nodes[m->from].fx.port, tp = h->cf.nodes[m->to].fx.port;
    node_id(fp, m->from_id, sizeof(m->from_id));
    node_id(tp, m->to_id, sizeof(m->to_id));
    redisReply *r = cluster_fixture_command(
        tp, "CLUSTER SETSLOT %u IMPORTING %s", m->slot, m->from_id);
    freeReplyObject(r);
    r = cluster_fixture_command(fp, "CLUSTER SETSLOT %u MIGRATING %s", m->slot,
                                m->to_id);
    ASSERT_NOT_NULL(r);
    ASSERT_EQ_INT(REDIS_REPLY_STATUS, r->type);
    freeReplyObject(r);
}

static void migrate_key(Harness *h, const Move *m, const char *key)
{
    redisReply *r = cluster_fixture_command(h->cf.nodes[m->from].fx.port,
                                            "MIGRATE 127.0.0.1 %d %s 0 5000",
                                            h->cf.nodes[m->to].fx.port, key);
    ASSERT_NOT_NULL(r);
    ASSERT_EQ_INT(REDIS_REPLY_STATUS, r->type);
    freeReplyObject(r);
}

static void end_move(Harness *h, const Move *m)
{
    for (int i = 0; i < CLUSTER_FIXTURE_NODES; i++) {
        redisReply *r = cluster_fixture_command(h->cf.nodes[i].fx.port,
                                                "CLUSTER SETSLOT %u NODE %s",
                                                m->slot, m->to_id);
        if (r != NULL)
            freeReplyObject(r);
    }
}

static long long stat_of(int port, const char *section, const char *name)
{
    redisReply *r = cluster_fixture_command(port, "INFO %s", section);
    ASSERT_NOT_NULL(r);
    const char *p = strstr(r->str, name);
    long long v = 0;
    if (p != NULL)
        v = strtoll(p + strlen(name), NULL, 10);
    freeReplyObject(r);
    return v;
}

static void test_cluster_follows_ask_then_moved(void)
{
    Harness h;
    start(&h);
    set_ok(&h, "{mv}a", "1");
    Move m;
    begin_move(&h, "{mv}a", &m);
    migrate_key(&h, &m, "{mv}a");
    int tp = h.cf.nodes[m.to].fx.port;
    /* the key lives on the importing node now: ASK + ASKING */
    Result r = run(&h, 2, (const char *[]){"GET", "{mv}a"});
    ASSERT_EQ_INT(REDIS_REPLY_STRING, r.type);
    ASSERT_EQ_STR("1", r.str);
    result_free(&r);
    ASSERT_TRUE(stat_of(tp, "commandstats", "cmdstat_asking:calls=") >= 1);
    end_move(&h, &m);
    /* the owner changed: MOVED, then the map says so */
    set_ok(&h, "{mv}a", "2");
    r = run(&h, 2, (const char *[]){"GET", "{mv}a"});
    ASSERT_EQ_STR("2", r.str);
    result_free(&r);
    ASSERT_EQ_INT(1, (int)side_integer(tp, "EXISTS %s", "{mv}a"));
    finish(&h);
}

static void test_cluster_retries_tryagain_until_the_migration_ends(void)
{
    Harness h;
    start(&h);
    set_ok(&h, "{ta}a", "1");
    set_ok(&h, "{ta}b", "2");
    Move m;
    begin_move(&h, "{ta}a", &m);
    migrate_key(&h, &m, "{ta}a");
    int fp = h.cf.nodes[m.from].fx.port;
    long long before = stat_of(fp, "errorstats", "errorstat_TRYAGAIN:count=");
    /* one key here, one there: the source answers TRYAGAIN */
    Result r;
    memset(&r, 0, sizeof(r));
    ASSERT_EQ_INT(CR_OK,
                  backend_command(h.b, 3,
                                  (const char *[]){"UNLINK", "{ta}a", "{ta}b"},
                                  NULL, on_reply, &r));
    run_for(&h.loop, 40);
    ASSERT_EQ_INT(0, r.calls); /* still retrying */
    ASSERT_TRUE(stat_of(fp, "errorstats", "errorstat_TRYAGAIN:count=") >
                before);
    migrate_key(&h, &m, "{ta}b"); /* now both are there: ASK to the target */
    ASSERT_TRUE(wait_count(&h.loop, &r.calls, 1, 3000));
    ASSERT_EQ_INT(CR_OK, r.status);
    ASSERT_EQ_INT(REDIS_REPLY_INTEGER, r.type);
    ASSERT_EQ_INT(2, (int)r.integer);
    end_move(&h, &m);
    finish(&h);
}

static void test_cluster_loses_only_a_killed_primarys_slots(void)
{
    Harness h;
    start(&h);
    set_ok(&h, "victim", "v");
    int victim = owner_of(&h, "victim");
    ASSERT_TRUE(victim >= 0);
    unsigned vslot = slot_of("victim", 6);
    /* a key on another primary */
    char other[32] = "";
    for (int i = 0; i < 1000 && other[0] == '\0'; i++) {
        char k[32];
        snprintf(k, sizeof(k), "other:%d", i);
        set_ok(&h, k, "o");
        if (owner_of(&h, k) != victim)
            snprintf(other, sizeof(other), "%s", k);
    }
    ASSERT_TRUE(other[0] != '\0');
    int ready_before = h.ready;
    redis_fixture_kill(&h.cf.nodes[victim].fx, SIGKILL);
    /* the next command on its slot fails; the others go on */
    Result r;
    memset(&r, 0, sizeof(r));
    int rc = backend_command(h.b, 2, (const char *[]){"GET", "victim"}, NULL,
                             on_reply, &r);
    if (rc == CR_OK) {
        ASSERT_TRUE(wait_count(&h.loop, &r.calls, 1, 3000));
        ASSERT_TRUE(r.status != CR_OK);
    } else {
        ASSERT_EQ_INT(CR_ECONNRESET, rc);
    }
    run_for(&h.loop, 50);
    ASSERT_FALSE(backend_slot_ready(h.b, vslot));
    ASSERT_TRUE(backend_slot_ready(h.b, slot_of(other, strlen(other))));
    ASSERT_TRUE(backend_ready(h.b));
    Result o = run(&h, 2, (const char *[]){"GET", other});
    ASSERT_EQ_STR("o", o.str);
    result_free(&o);
    uint8_t bits[SLOT_COUNT / 8];
    char name[64];
    backend_slot_group(h.b, false, vslot, bits, name, sizeof(name));
    int n = 0;
    for (int s = 0; s < SLOT_COUNT; s++)
        n += (bits[s / 8] >> (s % 8)) & 1;
    ASSERT_EQ_INT(5461, n); /* redis-cli gave it a third of the slots */
    /* its replica is promoted: the slot is served again */
    uint64_t t0 = cluster_fixture_now_ms();
    while (!backend_slot_ready(h.b, vslot) &&
           cluster_fixture_now_ms() - t0 < 15000)
        run_for(&h.loop, 20);
    ASSERT_TRUE(backend_slot_ready(h.b, vslot));
    printf("slot %u served again %llu ms after the SIGKILL\n", vslot,
           (unsigned long long)(cluster_fixture_now_ms() - t0));
    ASSERT_TRUE(h.ready > ready_before); /* "primary ... connected" */
    r = run(&h, 2, (const char *[]){"GET", "victim"});
    ASSERT_EQ_INT(CR_OK, r.status);
    result_free(&r);
    size_t known, up;
    backend_node_counts(h.b, &known, &up);
    ASSERT_EQ_INT(3, (int)known);
    ASSERT_EQ_INT(3, (int)up);
    finish(&h);
}

static void test_cluster_reports_no_seed_answering(void)
{
    Harness h;
    memset(&h, 0, sizeof(h));
    ASSERT_EQ_INT(0, uv_loop_init(&h.loop));
    RedisAddr seeds[2] = {{"127.0.0.1", redis_fixture_free_port()},
                          {"127.0.0.1", redis_fixture_free_port()}};
    open_backend(&h, seeds, 2);
    ASSERT_EQ_INT(1, h.down);
    ASSERT_FALSE(backend_ready(h.b));
    ASSERT_NOT_NULL(strstr(h.message, "no node answers"));
    ASSERT_EQ_INT(CR_ECONNRESET,
                  backend_command(h.b, 2, (const char *[]){"GET", "k"}, NULL,
                                  on_reply, NULL));
    backend_close(h.b);
    uv_run(&h.loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(0, uv_loop_close(&h.loop));
}

static const TestCase cases[] = {
    TEST_CASE(test_cluster_routes_keys_to_every_primary),
    TEST_CASE(test_cluster_sums_an_unlink_across_slots),
    TEST_CASE(test_cluster_follows_ask_then_moved),
    TEST_CASE(test_cluster_retries_tryagain_until_the_migration_ends),
    TEST_CASE(test_cluster_loses_only_a_killed_primarys_slots),
    TEST_CASE(test_cluster_reports_no_seed_answering),
    {NULL, NULL},
};

TEST_MAIN(cases)
