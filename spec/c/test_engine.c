/*
** test_engine.c -- the engine's counters, expiry and timer life cycle.
*/
#include <stdint.h>
#include <time.h>

#include <uv.h>

#include "engine.h"
#include "status.h"
#include "test.h"

static const EngineConfig unlimited = {0, 0, NULL, 0, 0, 0, {0, NULL, NULL}};

static void close_engine(uv_loop_t *loop, Engine *e)
{
    engine_close(e);
    uv_run(loop, UV_RUN_DEFAULT); /* runs the close callback that frees e */
    ASSERT_EQ_INT(0, uv_loop_close(loop));
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_engine_counts_hits_misses_and_sets(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    Engine *e = engine_new(&loop, &unlimited);
    size_t vlen;
    ASSERT_NULL(engine_get(e, "k", 1, &vlen));
    ASSERT_EQ_INT(CR_OK, engine_set(e, "k", 1, "\xa1v", 2, 0));
    const char *v = engine_get(e, "k", 1, &vlen);
    ASSERT_EQ_MEM("\xa1v", 2, v, vlen);
    EngineStats st;
    engine_stats(e, &st);
    ASSERT_EQ_INT(1, st.hits);
    ASSERT_EQ_INT(1, st.misses);
    ASSERT_EQ_INT(1, st.sets);
    ASSERT_EQ_INT(0, st.errors);
    ASSERT_EQ_INT(1, st.store.keys);
    close_engine(&loop, e);
}

static void test_engine_turns_a_corrupt_hit_into_a_counted_miss(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    Engine *e = engine_new(&loop, &unlimited);
    size_t vlen;
    engine_set(e, "k", 1, "\xc1", 1, 0);
    ASSERT_NOT_NULL(engine_get(e, "k", 1, &vlen));
    engine_get_corrupt(e, "k", 1);
    EngineStats st;
    engine_stats(e, &st);
    ASSERT_EQ_INT(0, st.hits);
    ASSERT_EQ_INT(1, st.misses);
    ASSERT_EQ_INT(1, st.errors);
    ASSERT_EQ_STR(cr_strerror(CR_ECORRUPT), st.last_error);
    ASSERT_FALSE(engine_exists(e, "k", 1));
    close_engine(&loop, e);
}

static void test_engine_expires_an_entry_at_its_ttl_to_the_millisecond(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    Engine *e = engine_new(&loop, &unlimited);
    size_t vlen;
    /* The coarse clock alone would still call this entry live. Live
    ** only if the get came within the TTL (a loaded machine may be late). */
    uint64_t t0 = engine_now_ms();
    ASSERT_EQ_INT(CR_OK, engine_set(e, "k", 1, "\x01", 1, 3));
    const char *v = engine_get(e, "k", 1, &vlen);
    if (engine_now_ms() - t0 < 2)
        ASSERT_NOT_NULL(v);
    sleep_ms(5);
    ASSERT_NULL(engine_get(e, "k", 1, &vlen));
    EngineStats st;
    engine_stats(e, &st);
    ASSERT_EQ_INT(1, st.store.expired);
    ASSERT_EQ_INT(0, st.store.keys);
    close_engine(&loop, e);
}

static void test_engine_counts_a_set_larger_than_the_store_as_an_error(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    EngineConfig tiny = {0, 64, NULL, 0, 0, 0, {0, NULL, NULL}};
    Engine *e = engine_new(&loop, &tiny);
    char big[128] = {0};
    ASSERT_EQ_INT(CR_ETOOBIG, engine_set(e, "k", 1, big, sizeof(big), 0));
    EngineStats st;
    engine_stats(e, &st);
    ASSERT_EQ_INT(0, st.sets);
    ASSERT_EQ_INT(1, st.errors);
    close_engine(&loop, e);
}

static void on_stop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void test_engine_sweep_timer_removes_expired_entries_unasked(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    Engine *e = engine_new(&loop, &unlimited);
    for (int i = 0; i < 100; i++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", i);
        engine_set(e, key, strlen(key), "\x01", 1, 1);
    }
    /* The timer is unreferenced: keep the loop alive with one of ours. */
    uv_timer_t stop;
    uv_timer_init(&loop, &stop);
    uv_timer_start(&stop, on_stop, 3 * ENGINE_SWEEP_INTERVAL_MS, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&stop, NULL);
    EngineStats st;
    engine_stats(e, &st);
    ASSERT_EQ_INT(0, st.store.keys);
    ASSERT_EQ_INT(100, st.store.expired);
    close_engine(&loop, e);
}

static void test_engine_advance_clock_expires_entries_without_sleeping(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    Engine *e = engine_new(&loop, &unlimited);
    size_t vlen;
    ASSERT_EQ_INT(CR_OK, engine_set(e, "k", 1, "\x01", 1, 300000));
    ASSERT_EQ_INT(CR_OK, engine_set(e, "forever", 7, "\x02", 1, 0));
    /* Real time flows on top of the offset: the margins (10 s, 1 s) keep a
    ** slow run (valgrind on a loaded machine) from expiring entries early. */
    ASSERT_EQ_INT(290000, engine_advance_clock(e, 290000));
    ASSERT_NOT_NULL(engine_get(e, "k", 1, &vlen));
    ASSERT_TRUE(engine_exists(e, "k", 1));
    ASSERT_EQ_INT(300000, engine_advance_clock(e, 10000));
    ASSERT_NULL(engine_get(e, "k", 1, &vlen));
    ASSERT_NOT_NULL(engine_get(e, "forever", 7, &vlen));
    /* a TTL set after an advance counts from the advanced clock */
    ASSERT_EQ_INT(CR_OK, engine_set(e, "k", 1, "\x01", 1, 2000));
    engine_advance_clock(e, 1000);
    ASSERT_TRUE(engine_exists(e, "k", 1));
    engine_advance_clock(e, 1000);
    ASSERT_FALSE(engine_exists(e, "k", 1));
    EngineStats st;
    engine_stats(e, &st);
    ASSERT_EQ_INT(2, st.store.expired);
    /* the sum saturates instead of wrapping around */
    ASSERT_TRUE(engine_advance_clock(e, UINT64_MAX) == ENGINE_CLOCK_OFFSET_MAX);
    ASSERT_TRUE(engine_advance_clock(e, 5) == ENGINE_CLOCK_OFFSET_MAX);
    ASSERT_NOT_NULL(engine_get(e, "forever", 7, &vlen));
    close_engine(&loop, e);
}

static void test_engine_sweep_reads_the_advanced_clock(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    Engine *e = engine_new(&loop, &unlimited);
    for (int i = 0; i < 50; i++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", i);
        engine_set(e, key, strlen(key), "\x01", 1, 60000);
    }
    engine_advance_clock(e, 60000);
    uv_timer_t stop;
    uv_timer_init(&loop, &stop);
    uv_timer_start(&stop, on_stop, 3 * ENGINE_SWEEP_INTERVAL_MS, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&stop, NULL);
    EngineStats st;
    engine_stats(e, &st);
    ASSERT_EQ_INT(0, st.store.keys);
    ASSERT_EQ_INT(50, st.store.expired);
    close_engine(&loop, e);
}

static const TestCase cases[] = {
    TEST_CASE(test_engine_counts_hits_misses_and_sets),
    TEST_CASE(test_engine_turns_a_corrupt_hit_into_a_counted_miss),
    TEST_CASE(test_engine_expires_an_entry_at_its_ttl_to_the_millisecond),
    TEST_CASE(test_engine_counts_a_set_larger_than_the_store_as_an_error),
    TEST_CASE(test_engine_sweep_timer_removes_expired_entries_unasked),
    TEST_CASE(test_engine_advance_clock_expires_entries_without_sleeping),
    TEST_CASE(test_engine_sweep_reads_the_advanced_clock),
    {NULL, NULL},
};

TEST_MAIN(cases)
