/*
** test_store.c -- the in-memory store: values, LRU order, limits, TTL,
** sweep, clear, stats. Time is always passed in; nothing sleeps.
*/

#include "store.h"

#include <stdbool.h>
#include <stdint.h>

#include "status.h"
#include "test.h"

#define NOW    1000 /* an arbitrary "now" in milliseconds */
#define NEVER  0    /* expires_at_ms for entries without a TTL */
#define OVH    STORE_ENTRY_OVERHEAD
#define STR(s) s, strlen(s)

/* -- Helpers ----------------------------------------------------------- */

static Store *new_store(size_t max_items, size_t max_bytes)
{
    Store *s = store_new(max_items, max_bytes);
    ASSERT_NOT_NULL(s);
    return s;
}

static void set_str(Store *s, const char *key, const char *val,
                    uint64_t expires_at_ms)
{
    ASSERT_EQ_INT(CR_OK, store_set(s, STR(key), STR(val), expires_at_ms, NOW));
}

/* Asserts that `key` holds `val` (a NUL-terminated string) at `now_ms`. */
static void expect_value(Store *s, const char *key, const char *val,
                         uint64_t now_ms)
{
    size_t vlen = 0;
    const char *got = store_get(s, STR(key), now_ms, &vlen);
    if (got == NULL)
        TEST_FAIL_("expected \"%s\" under \"%s\", got a miss", val, key);
    ASSERT_EQ_MEM(val, strlen(val), got, vlen);
}

static void expect_miss(Store *s, const char *key, uint64_t now_ms)
{
    size_t vlen = 0;
    ASSERT_NULL(store_get(s, STR(key), now_ms, &vlen));
}

typedef struct Order {
    char keys[64]; /* the first byte of each key visited, in order */
    size_t n;
    size_t stop_after; /* 0: visit everything */
    uint64_t ttl[64];
} Order;

static bool collect(void *ud, const char *key, size_t klen, const char *val,
                    size_t vlen, uint64_t ttl_left_ms)
{
    Order *o = ud;
    (void)val;
    (void)vlen;
    if (o->n + 1 < sizeof(o->keys)) {
        o->ttl[o->n] = ttl_left_ms;
        o->keys[o->n++] = klen > 0 ? key[0] : '_';
        o->keys[o->n] = '\0';
    }
    return o->stop_after == 0 || o->n < o->stop_after;
}

/* Returns the live keys, most recently used first, as one string of their
** first bytes. Does not change the order. */
static const char *order_of(Store *s, uint64_t now_ms)
{
    static Order o;
    memset(&o, 0, sizeof(o));
    store_foreach(s, now_ms, collect, &o);
    return o.keys;
}

static StoreStats stats_of(Store *s)
{
    StoreStats st;
    store_stats(s, &st);
    return st;
}

/* -- Values ------------------------------------------------------------ */

static void test_store_get_returns_what_set_stored(void)
{
    Store *s = new_store(0, 0);
    set_str(s, "user:1", "alice", NEVER);
    set_str(s, "user:2", "bob", NEVER);
    expect_value(s, "user:1", "alice", NOW);
    expect_value(s, "user:2", "bob", NOW);
    expect_miss(s, "user:3", NOW);
    ASSERT_TRUE(store_exists(s, STR("user:1"), NOW));
    ASSERT_FALSE(store_exists(s, STR("user:3"), NOW));
    store_free(s);
}

static void test_store_overwrite_replaces_value_and_accounting(void)
{
    Store *s = new_store(0, 0);
    set_str(s, "k", "short", NEVER);
    set_str(s, "k", "a much longer value", NEVER);
    expect_value(s, "k", "a much longer value", NOW);
    ASSERT_EQ_INT(1, stats_of(s).keys);
    ASSERT_EQ_INT(OVH + 1 + strlen("a much longer value"),
                  stats_of(s).memory_bytes);
    store_free(s);
}

static void test_store_delete_removes_and_reports_liveness(void)
{
    Store *s = new_store(0, 0);
    set_str(s, "k", "v", NEVER);
    ASSERT_TRUE(store_delete(s, STR("k"), NOW));
    ASSERT_FALSE(store_delete(s, STR("k"), NOW));
    expect_miss(s, "k", NOW);
    ASSERT_EQ_INT(0, stats_of(s).keys);
    ASSERT_EQ_INT(0, stats_of(s).memory_bytes);
    store_free(s);
}

static void test_store_keys_and_values_are_binary_safe(void)
{
    Store *s = new_store(0, 0);
    size_t vlen = 99;
    const char *v;

    ASSERT_EQ_INT(CR_OK, store_set(s, "a\0b", 3, "1\0", 2, NEVER, NOW));
    ASSERT_EQ_INT(CR_OK, store_set(s, "a\0c", 3, "2", 1, NEVER, NOW));
    ASSERT_EQ_INT(CR_OK, store_set(s, "a", 1, "3", 1, NEVER, NOW));
    ASSERT_EQ_INT(CR_OK, store_set(s, "", 0, "", 0, NEVER, NOW));
    v = store_get(s, "a\0b", 3, NOW, &vlen);
    ASSERT_EQ_MEM("1\0", 2, v, vlen);
    v = store_get(s, "a\0c", 3, NOW, &vlen);
    ASSERT_EQ_MEM("2", 1, v, vlen);
    v = store_get(s, "a", 1, NOW, &vlen);
    ASSERT_EQ_MEM("3", 1, v, vlen);
    v = store_get(s, "", 0, NOW, &vlen);
    ASSERT_NOT_NULL(v);
    ASSERT_EQ_INT(0, vlen);
    ASSERT_NULL(store_get(s, "a\0", 2, NOW, &vlen));
    ASSERT_EQ_INT(4, stats_of(s).keys);
    store_free(s);
}

/* -- LRU order and limits ---------------------------------------------- */

static void test_store_evicts_least_recent_when_full(void)
{
    Store *s = new_store(3, 0);
    set_str(s, "a", "1", NEVER);
    set_str(s, "b", "2", NEVER);
    set_str(s, "c", "3", NEVER);
    expect_value(s, "a", "1", NOW); /* order now a c b */
    set_str(s, "d", "4", NEVER);    /* evicts b */
    ASSERT_EQ_STR("dac", order_of(s, NOW));
    ASSERT_TRUE(store_exists(s, STR("c"), NOW)); /* exists does not touch */
    set_str(s, "a", "5", NEVER);                 /* overwrite touches */
    set_str(s, "e", "6", NEVER);                 /* evicts c */
    ASSERT_EQ_STR("ead", order_of(s, NOW));
    expect_miss(s, "b", NOW);
    expect_miss(s, "c", NOW);
    expect_value(s, "a", "5", NOW);
    ASSERT_EQ_INT(2, stats_of(s).evictions);
    ASSERT_EQ_INT(3, stats_of(s).keys);
    store_free(s);
}

static void test_store_exists_does_not_change_lru_order(void)
{
    Store *s = new_store(0, 0);
    set_str(s, "a", "1", NEVER);
    set_str(s, "b", "2", NEVER);
    ASSERT_TRUE(store_exists(s, STR("a"), NOW));
    ASSERT_EQ_STR("ba", order_of(s, NOW));
    expect_value(s, "a", "1", NOW);
    ASSERT_EQ_STR("ab", order_of(s, NOW));
    store_free(s);
}

static void test_store_evicts_by_bytes_from_the_least_recent_end(void)
{
    /* Room for exactly three entries of 1-byte keys and 9-byte values. */
    Store *s = new_store(0, 3 * (OVH + 10));
    set_str(s, "a", "123456789", NEVER);
    set_str(s, "b", "123456789", NEVER);
    set_str(s, "c", "123456789", NEVER);
    ASSERT_EQ_INT(0, stats_of(s).evictions);
    expect_value(s, "a", "123456789", NOW);
    set_str(s, "d", "12345678901", NEVER); /* 2 bytes more: b and c go */
    ASSERT_EQ_STR("da", order_of(s, NOW));
    set_str(s, "e", "1", NEVER); /* fits in the room left */
    ASSERT_EQ_STR("eda", order_of(s, NOW));
    ASSERT_EQ_INT(2, stats_of(s).evictions);
    ASSERT_TRUE(stats_of(s).memory_bytes <= 3 * (OVH + 10));
    store_free(s);
}

static void test_store_rejects_entry_bigger_than_byte_limit_and_drops_old(void)
{
    size_t limit = 2 * (OVH + 10);
    Store *s = new_store(0, limit);
    static char big[512];

    memset(big, 'x', sizeof(big));
    set_str(s, "k", "small", NEVER);
    set_str(s, "other", "v", NEVER);
    ASSERT_EQ_INT(CR_ETOOBIG,
                  store_set(s, STR("k"), big, sizeof(big), NEVER, NOW));
    expect_miss(s, "k", NOW); /* the stale value is gone too */
    expect_value(s, "other", "v", NOW);
    ASSERT_EQ_INT(0, stats_of(s).evictions);
    /* With a 2-byte key, OVH + 2 + (OVH + 18) is exactly the limit. */
    ASSERT_EQ_INT(CR_ETOOBIG,
                  store_set(s, STR("k2"), big, OVH + 19, NEVER, NOW));
    ASSERT_EQ_INT(CR_OK, store_set(s, STR("k2"), big, OVH + 18, NEVER, NOW));
    ASSERT_EQ_INT(1, stats_of(s).keys);
    ASSERT_EQ_INT(limit, stats_of(s).memory_bytes);
    store_free(s);
}

static void test_store_set_limits_shrinking_evicts_least_recent(void)
{
    Store *s = new_store(0, 0);
    const char *keys[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++)
        set_str(s, keys[i], "v", NEVER);
    expect_value(s, "b", "v", NOW);
    store_set_limits(s, 3, 0);
    ASSERT_EQ_STR("bed", order_of(s, NOW));
    ASSERT_EQ_INT(2, stats_of(s).evictions);
    store_set_limits(s, 0, 2 * (OVH + 2));
    ASSERT_EQ_STR("be", order_of(s, NOW));
    ASSERT_EQ_INT(3, stats_of(s).evictions);
    ASSERT_EQ_INT(0, stats_of(s).max_items);
    ASSERT_EQ_INT(2 * (OVH + 2), stats_of(s).max_bytes);
    store_free(s);
}

static void test_store_evicting_an_expired_entry_counts_as_expired(void)
{
    Store *s = new_store(2, 0);
    set_str(s, "a", "1", NOW + 10);
    set_str(s, "b", "2", NEVER);
    ASSERT_EQ_INT(CR_OK,
                  store_set(s, STR("c"), STR("3"), NEVER, NOW + 10)); /* a */
    ASSERT_EQ_INT(CR_OK,
                  store_set(s, STR("d"), STR("4"), NEVER, NOW + 10)); /* b */
    ASSERT_EQ_INT(1, stats_of(s).expired);
    ASSERT_EQ_INT(1, stats_of(s).evictions);
    store_free(s);
}

/* -- Expiry ------------------------------------------------------------ */

static void test_store_entry_expires_exactly_at_expires_at_ms(void)
{
    Store *s = new_store(0, 0);
    set_str(s, "k", "v", NOW + 100);
    expect_value(s, "k", "v", NOW + 99);
    expect_miss(s, "k", NOW + 100);
    ASSERT_EQ_INT(1, stats_of(s).expired);
    ASSERT_EQ_INT(0, stats_of(s).keys);
    ASSERT_EQ_INT(0, stats_of(s).memory_bytes);
    store_free(s);
}

static void test_store_exists_and_delete_expire_lazily(void)
{
    Store *s = new_store(0, 0);
    set_str(s, "a", "1", NOW + 5);
    set_str(s, "b", "2", NOW + 5);
    ASSERT_EQ_INT(2, stats_of(s).keys); /* nothing expires by itself */
    ASSERT_FALSE(store_exists(s, STR("a"), NOW + 5));
    ASSERT_FALSE(store_delete(s, STR("b"), NOW + 5)); /* it was not live */
    ASSERT_EQ_INT(2, stats_of(s).expired);
    ASSERT_EQ_INT(0, stats_of(s).keys);
    store_free(s);
}

static void test_store_overwrite_renews_or_removes_expiry(void)
{
    Store *s = new_store(0, 0);
    set_str(s, "k", "1", NOW + 5);
    set_str(s, "k", "2", NEVER);
    expect_value(s, "k", "2", NOW + 1000000);
    ASSERT_EQ_INT(0, stats_of(s).expired);
    store_free(s);
}

static void test_store_set_with_a_past_expiry_stores_nothing(void)
{
    Store *s = new_store(0, 0);
    set_str(s, "k", "old", NEVER);
    ASSERT_EQ_INT(CR_OK, store_set(s, STR("k"), STR("new"), NOW, NOW));
    expect_miss(s, "k", NOW);
    ASSERT_EQ_INT(0, stats_of(s).keys);
    ASSERT_EQ_INT(0, stats_of(s).memory_bytes);
    store_free(s);
}

static void test_store_sweep_with_budget_removes_every_expired_entry(void)
{
    Store *s = new_store(0, 0);
    char key[16];
    size_t removed = 0;
    int calls = 0;

    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        /* Every third entry lives forever. */
        ASSERT_EQ_INT(CR_OK, store_set(s, STR(key), STR("v"),
                                       i % 3 == 0 ? NEVER : NOW + 10, NOW));
    }
    ASSERT_EQ_INT(0, store_sweep(s, NOW + 9, 5000));
    while (stats_of(s).keys > 334) {
        size_t n = store_sweep(s, NOW + 10, 64);
        ASSERT_TRUE(n <= 64);
        removed += n;
        ASSERT_TRUE(++calls <= 1000 / 64 + 2);
    }
    ASSERT_EQ_INT(666, removed);
    ASSERT_EQ_INT(666, stats_of(s).expired);
    ASSERT_EQ_INT(334, stats_of(s).keys);
    ASSERT_EQ_INT(0, store_sweep(s, NOW + 10, 5000));
    store_free(s);
}

static void test_store_sweep_resumes_after_its_cursor_entry_is_removed(void)
{
    Store *s = new_store(0, 0);
    size_t vlen;

    set_str(s, "a", "1", NOW + 10); /* tail */
    set_str(s, "b", "2", NOW + 10);
    set_str(s, "c", "3", NOW + 10);
    set_str(s, "d", "4", NOW + 10);
    set_str(s, "z", "5", NOW + 5); /* head; lets the sweep run at NOW + 5 */
    ASSERT_EQ_INT(0, store_sweep(s, NOW + 5, 1)); /* cursor now on b */
    ASSERT_TRUE(store_delete(s, STR("b"), NOW));
    ASSERT_NOT_NULL(store_get(s, STR("c"), NOW, &vlen)); /* c moves ahead */
    ASSERT_EQ_INT(1, store_sweep(s, NOW + 10, 1));       /* d */
    ASSERT_EQ_INT(1, store_sweep(s, NOW + 10, 1));       /* z */
    ASSERT_EQ_INT(1, store_sweep(s, NOW + 10, 1));       /* c, pass ends */
    ASSERT_EQ_INT(1, store_sweep(s, NOW + 10, 1));       /* a, new pass */
    ASSERT_EQ_INT(0, stats_of(s).keys);
    store_free(s);
}

/* Until the earliest expiry comes, a sweep has nothing to remove and
** examines nothing; a set with an earlier expiry brings that time forward. */
static void test_store_sweep_waits_for_the_earliest_expiry(void)
{
    Store *s = new_store(0, 0);

    set_str(s, "a", "1", NOW + 10);
    set_str(s, "b", "2", NOW + 20);
    set_str(s, "n", "3", 0); /* never expires */
    ASSERT_EQ_INT(0, store_sweep(s, NOW + 9, 5000));
    ASSERT_EQ_INT(1, store_sweep(s, NOW + 10, 5000)); /* a; the pass ends */
    ASSERT_EQ_INT(0, store_sweep(s, NOW + 15, 5000)); /* waits for b */
    set_str(s, "c", "4", NOW + 12);
    ASSERT_EQ_INT(1, store_sweep(s, NOW + 15, 5000)); /* c */
    ASSERT_EQ_INT(0, store_sweep(s, NOW + 19, 5000));
    ASSERT_EQ_INT(1, store_sweep(s, NOW + 20, 5000)); /* b */
    ASSERT_EQ_INT(1, stats_of(s).keys);
    ASSERT_EQ_INT(3, stats_of(s).expired);
    store_free(s);
}

/* -- Reads with a lazy clock -------------------------------------------- */

static int clock_reads;
static uint64_t clock_now;

static uint64_t test_clock(void)
{
    clock_reads++;
    return clock_now;
}

/* store_get_timed reads the clock only for a found entry that expires, and
** treats that entry as store_get does at that time. */
static void test_store_get_timed_reads_the_clock_only_for_expiring_hits(void)
{
    Store *s = new_store(0, 0);
    size_t vlen = 0;
    uint64_t exp = 1, now = 1;

    set_str(s, "forever", "1", 0);
    set_str(s, "brief", "22", NOW + 10);
    clock_reads = 0;
    clock_now = NOW + 9;
    ASSERT_NULL(
        store_get_timed(s, STR("absent"), test_clock, &vlen, &exp, &now));
    ASSERT_EQ_INT(0, clock_reads);
    ASSERT_NOT_NULL(
        store_get_timed(s, STR("forever"), test_clock, &vlen, &exp, &now));
    ASSERT_EQ_INT(0, clock_reads);
    ASSERT_EQ_INT(1, vlen);
    ASSERT_EQ_INT(0, exp);
    ASSERT_EQ_INT(0, now);
    ASSERT_NOT_NULL(
        store_get_timed(s, STR("brief"), test_clock, &vlen, &exp, &now));
    ASSERT_EQ_INT(1, clock_reads);
    ASSERT_EQ_INT(2, vlen);
    ASSERT_EQ_INT(NOW + 10, exp);
    ASSERT_EQ_INT(NOW + 9, now);
    clock_now = NOW + 10; /* expired exactly at its time */
    ASSERT_NULL(
        store_get_timed(s, STR("brief"), test_clock, &vlen, &exp, &now));
    ASSERT_EQ_INT(2, clock_reads);
    ASSERT_EQ_INT(1, stats_of(s).expired);
    ASSERT_EQ_INT(1, stats_of(s).keys);
    store_free(s);
}

/* -- Clear ------------------------------------------------------------- */

static void test_store_clear_with_a_literal_pattern_deletes_one_key(void)
{
    Store *s = new_store(0, 0);
    set_str(s, "user:1", "a", NEVER);
    set_str(s, "user:10", "b", NEVER);
    ASSERT_EQ_INT(1, store_clear(s, STR("user:1"), NOW));
    ASSERT_EQ_INT(0, store_clear(s, STR("user:1"), NOW));
    expect_value(s, "user:10", "b", NOW);
    store_free(s);
}

static void test_store_clear_with_a_glob_removes_only_matching_keys(void)
{
    Store *s = new_store(0, 0);
    set_str(s, "user:1", "a", NEVER);
    set_str(s, "user:2", "b", NEVER);
    set_str(s, "user:3", "c", NOW + 1); /* expired when cleared */
    set_str(s, "session:1", "d", NEVER);
    set_str(s, "user:*", "e", NEVER);
    ASSERT_EQ_INT(1, store_clear(s, STR("user:\\*"), NOW + 1));
    ASSERT_EQ_INT(2, store_clear(s, STR("user:[0-9]"), NOW + 1));
    ASSERT_EQ_INT(1, stats_of(s).expired);
    ASSERT_EQ_INT(1, stats_of(s).keys);
    expect_value(s, "session:1", "d", NOW + 1);
    ASSERT_EQ_INT(1, store_clear(s, STR("*"), NOW + 1));
    ASSERT_EQ_INT(0, stats_of(s).keys);
    store_free(s);
}

static void test_store_clear_star_also_removes_the_empty_key(void)
{
    Store *s = new_store(0, 0);
    ASSERT_EQ_INT(CR_OK, store_set(s, "", 0, STR("v"), NEVER, NOW));
    set_str(s, "k", "v", NEVER);
    ASSERT_EQ_INT(2, store_clear(s, STR("*"), NOW));
    store_free(s);
}

/* -- Stats and iteration ----------------------------------------------- */

static void test_store_memory_bytes_is_overhead_plus_key_and_value_lengths(void)
{
    Store *s = new_store(0, 0);
    size_t sum = 0;
    char key[16];
    char val[64];

    ASSERT_TRUE(OVH >= 3 * sizeof(void *) + 8 && OVH <= 48);
    memset(val, 'v', sizeof(val));
    for (int i = 0; i < 50; i++) {
        int klen = snprintf(key, sizeof(key), "key%d", i);
        ASSERT_EQ_INT(
            CR_OK, store_set(s, key, (size_t)klen, val, (size_t)i, NEVER, NOW));
        sum += (size_t)klen + (size_t)i;
    }
    ASSERT_EQ_INT(50 * OVH + sum, stats_of(s).memory_bytes);
    ASSERT_TRUE(store_delete(s, STR("key7"), NOW));
    ASSERT_EQ_INT(49 * OVH + sum - 4 - 7, stats_of(s).memory_bytes);
    store_free(s);
}

static void test_store_stats_count_evictions_expired_and_keys(void)
{
    Store *s = new_store(2, 0);
    StoreStats st;

    set_str(s, "a", "1", NOW + 1);
    set_str(s, "b", "2", NEVER);
    set_str(s, "c", "3", NEVER); /* evicts a while it is live */
    expect_miss(s, "a", NOW);
    ASSERT_EQ_INT(CR_OK, store_set(s, STR("d"), STR("4"), NOW + 5, NOW));
    expect_miss(s, "d", NOW + 5);
    store_stats(s, &st);
    ASSERT_EQ_INT(2, st.evictions); /* a, then b */
    ASSERT_EQ_INT(1, st.expired);   /* d */
    ASSERT_EQ_INT(1, st.keys);
    ASSERT_EQ_INT(OVH + 2, st.memory_bytes);
    ASSERT_EQ_INT(2, st.max_items);
    ASSERT_EQ_INT(0, st.max_bytes);
    store_free(s);
}

static void test_store_foreach_visits_live_entries_most_recent_first(void)
{
    Store *s = new_store(0, 0);
    Order o;

    set_str(s, "a", "1", NEVER);
    set_str(s, "b", "2", NOW + 50);
    set_str(s, "c", "3", NOW + 5);
    set_str(s, "d", "4", NEVER);
    expect_value(s, "b", "2", NOW);
    memset(&o, 0, sizeof(o));
    store_foreach(s, NOW + 5, collect, &o); /* c has expired */
    ASSERT_EQ_STR("bda", o.keys);
    ASSERT_EQ_INT(45, o.ttl[0]);
    ASSERT_EQ_INT(0, o.ttl[1]);
    memset(&o, 0, sizeof(o));
    o.stop_after = 2;
    store_foreach(s, NOW, collect, &o);
    ASSERT_EQ_STR("bd", o.keys);
    ASSERT_EQ_INT(4, stats_of(s).keys); /* foreach removes nothing */
    store_free(s);
}

static void test_store_grows_to_100000_keys_and_shrinks_back(void)
{
    Store *s = new_store(0, 0);
    char key[32];
    size_t vlen;

    for (int i = 0; i < 100000; i++) {
        int n = snprintf(key, sizeof(key), "key:%d", i);
        ASSERT_EQ_INT(CR_OK,
                      store_set(s, key, (size_t)n, key, (size_t)n, NEVER, NOW));
    }
    ASSERT_EQ_INT(100000, stats_of(s).keys);
    for (int i = 0; i < 100000; i += 7) {
        int n = snprintf(key, sizeof(key), "key:%d", i);
        const char *v = store_get(s, key, (size_t)n, NOW, &vlen);
        ASSERT_NOT_NULL(v);
        ASSERT_EQ_MEM(key, (size_t)n, v, vlen);
    }
    for (int i = 0; i < 99990; i++) {
        int n = snprintf(key, sizeof(key), "key:%d", i);
        ASSERT_TRUE(store_delete(s, key, (size_t)n, NOW));
    }
    ASSERT_EQ_INT(10, stats_of(s).keys);
    for (int i = 99990; i < 100000; i++) {
        int n = snprintf(key, sizeof(key), "key:%d", i);
        ASSERT_NOT_NULL(store_get(s, key, (size_t)n, NOW, &vlen));
    }
    ASSERT_EQ_INT(10, store_clear(s, STR("key:*"), NOW));
    ASSERT_EQ_INT(0, stats_of(s).memory_bytes);
    set_str(s, "again", "ok", NEVER);
    expect_value(s, "again", "ok", NOW);
    store_free(s);
}

/* -- Hash table under churn -------------------------------------------- */

/* xorshift32: deterministic test data (the seed of the store is not). */
static uint32_t rnd_state = 2463534242u;

static uint32_t rnd(void)
{
    return test_xorshift32(&rnd_state);
}

/* Key number n: 1 to 37 bytes, with NUL and high bytes, so every length
** path of hashing and comparing is used. Distinct n give distinct keys. */
static size_t key_of(unsigned n, char *buf)
{
    size_t len = 1 + n % 37;
    for (size_t j = 0; j < len; j++)
        buf[j] = (char)((n * 31 + j * 7) & 0xff);
    buf[0] = (char)(n & 0xff);
    if (len > 1)
        buf[1] = (char)(n >> 8);
    return len;
}

/* Many small stores (16 slots, so clusters are long and wrap around the
** end): every key deleted in a random order leaves the others findable. */
static void test_store_deleting_inside_clusters_keeps_other_keys_found(void)
{
    char key[40];
    size_t vlen;

    for (int round = 0; round < 300; round++) {
        Store *s = new_store(0, 0); /* a new random seed each round */
        unsigned order[12];
        bool gone[12] = {false};
        for (unsigned n = 0; n < 12; n++) {
            size_t k = key_of(n, key);
            ASSERT_EQ_INT(CR_OK, store_set(s, key, k, key, k, NEVER, NOW));
            order[n] = n;
        }
        for (unsigned i = 11; i > 0; i--) { /* Fisher-Yates shuffle */
            unsigned j = rnd() % (i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (unsigned i = 0; i < 12; i++) {
            size_t k = key_of(order[i], key);
            ASSERT_TRUE(store_delete(s, key, k, NOW));
            gone[order[i]] = true;
            for (unsigned n = 0; n < 12; n++) {
                const char *v;
                k = key_of(n, key);
                v = store_get(s, key, k, NOW, &vlen);
                if (gone[n]) {
                    ASSERT_NULL(v);
                } else {
                    ASSERT_NOT_NULL(v);
                    ASSERT_EQ_MEM(key, k, v, vlen);
                }
            }
        }
        ASSERT_EQ_INT(0, stats_of(s).keys);
        store_free(s);
    }
}

/* The table grows at 3/4 full and then drains into the new one a few
** slots per call: gets and deletes during the drain still find (and only
** find) the right keys, including entries whose probe run is cut by the
** drain position. Many stores, so many random seeds and cluster shapes. */
static void test_store_finds_keys_while_the_table_drains(void)
{
    char key[40];
    size_t vlen;

    for (int round = 0; round < 600; round++) {
        Store *s = new_store(0, 0);
        unsigned n = round % 2 ? 3 * 64 / 4 + 1 : 3 * 256 / 4 + 1;
        bool gone[3 * 256 / 4 + 1] = {false};
        size_t live = n;

        for (unsigned i = 0; i < n; i++) { /* the last set starts a resize */
            size_t k = key_of(i, key);
            ASSERT_EQ_INT(CR_OK, store_set(s, key, k, key, k, NEVER, NOW));
        }
        for (unsigned i = 0; i < n / 4; i++) {
            unsigned m = rnd() % n;
            size_t k = key_of(m, key);
            if (rnd() % 3 == 0 && !gone[m]) {
                ASSERT_TRUE(store_delete(s, key, k, NOW));
                gone[m] = true;
                live--;
            } else if (gone[m]) {
                ASSERT_NULL(store_get(s, key, k, NOW, &vlen));
            } else {
                ASSERT_NOT_NULL(store_get(s, key, k, NOW, &vlen));
            }
        }
        ASSERT_EQ_INT(live, stats_of(s).keys);
        for (unsigned i = 0; i < n; i++) {
            size_t k = key_of(i, key);
            ASSERT_EQ_INT(!gone[i], store_exists(s, key, k, NOW));
        }
        store_free(s);
    }
}

/* A sliding window of keys with deletes and gets while the table grows,
** while it drains into a larger one, and while it shrinks. */
static void test_store_resizes_under_churn_without_losing_keys(void)
{
    enum { WINDOW = 3000, TOTAL = 20000 };
    Store *s = new_store(0, 0);
    char key[40];
    size_t vlen;

    for (unsigned i = 0; i < TOTAL; i++) {
        size_t k = key_of(i, key);
        unsigned window = i < TOTAL / 2 ? WINDOW : WINDOW / 20;
        ASSERT_EQ_INT(CR_OK, store_set(s, key, k, key, k, NEVER, NOW));
        /* Drop every key older than the window (many at once when it
        ** narrows). */
        for (unsigned old = i - window; i >= window; old--) {
            k = key_of(old, key);
            if (!store_delete(s, key, k, NOW) || old == 0)
                break;
        }
        k = key_of(i - rnd() % (i < window ? i + 1 : window), key);
        ASSERT_NOT_NULL(store_get(s, key, k, NOW, &vlen));
        ASSERT_EQ_MEM(key, k, store_get(s, key, k, NOW, &vlen), vlen);
    }
    ASSERT_EQ_INT(WINDOW / 20, stats_of(s).keys);
    store_free(s);
}

/* -- Model-based test --------------------------------------------------- */

/* A naive reference: one slot per key number, the LRU order as a use
** counter, every limit and expiry rule of store.h spelled out. */
enum { MODEL_KEYS = 2000 };

typedef struct ModelEntry {
    bool present;
    char val[24];
    size_t vlen;
    uint64_t expires_at_ms;
    uint64_t used; /* larger = more recently used */
} ModelEntry;

typedef struct Model {
    ModelEntry e[MODEL_KEYS];
    unsigned keys; /* key numbers in use: 0 .. keys - 1 */
    size_t count, bytes, max_items, max_bytes;
    uint64_t evictions, expired, now, clock;
} Model;

static bool model_expired(const ModelEntry *e, uint64_t now)
{
    return e->expires_at_ms != 0 && now >= e->expires_at_ms;
}

static void model_remove(Model *m, unsigned n)
{
    char key[40];
    m->e[n].present = false;
    m->count--;
    m->bytes -= OVH + key_of(n, key) + m->e[n].vlen;
}

static void model_evict(Model *m)
{
    while ((m->max_items != 0 && m->count > m->max_items) ||
           (m->max_bytes != 0 && m->bytes > m->max_bytes)) {
        unsigned lru = MODEL_KEYS;
        for (unsigned n = 0; n < m->keys; n++)
            if (m->e[n].present &&
                (lru == MODEL_KEYS || m->e[n].used < m->e[lru].used))
                lru = n;
        if (model_expired(&m->e[lru], m->now))
            m->expired++;
        else
            m->evictions++;
        model_remove(m, lru);
    }
}

/* Looks a key up as get/exists/delete do: an expired entry is removed. */
static ModelEntry *model_lookup(Model *m, unsigned n, uint64_t now)
{
    if (now > m->now)
        m->now = now;
    if (!m->e[n].present)
        return NULL;
    if (model_expired(&m->e[n], now)) {
        m->expired++;
        model_remove(m, n);
        return NULL;
    }
    return &m->e[n];
}

static int by_recent_use(const void *a, const void *b, void *m)
{
    const ModelEntry *e = ((Model *)m)->e;
    uint64_t ua = e[*(const unsigned *)a].used;
    uint64_t ub = e[*(const unsigned *)b].used;
    return ua < ub ? 1 : ua > ub ? -1 : 0;
}

typedef struct Walk {
    Model *m;
    unsigned order[MODEL_KEYS];
    size_t n, visited;
    uint64_t now;
} Walk;

static bool check_visit(void *ud, const char *key, size_t klen, const char *val,
                        size_t vlen, uint64_t ttl_left_ms)
{
    Walk *w = ud;
    char want[40];
    const ModelEntry *e;
    size_t wlen;

    ASSERT_TRUE(w->visited < w->n);
    e = &w->m->e[w->order[w->visited]];
    wlen = key_of(w->order[w->visited], want);
    ASSERT_EQ_MEM(want, wlen, key, klen);
    ASSERT_EQ_MEM(e->val, e->vlen, val, vlen);
    ASSERT_EQ_INT(e->expires_at_ms ? e->expires_at_ms - w->now : 0,
                  ttl_left_ms);
    w->visited++;
    return true;
}

/* The store's stats and its live entries, most recent first, are the
** model's. */
static void check_against_model(Store *s, Model *m, uint64_t now)
{
    static Walk w;
    StoreStats st = stats_of(s);
    unsigned tmp;

    ASSERT_EQ_INT(m->count, st.keys);
    ASSERT_EQ_INT(m->bytes, st.memory_bytes);
    ASSERT_EQ_INT(m->evictions, st.evictions);
    ASSERT_EQ_INT(m->expired, st.expired);
    w.m = m;
    w.n = 0;
    w.visited = 0;
    w.now = now;
    for (unsigned n = 0; n < m->keys; n++)
        if (m->e[n].present && !model_expired(&m->e[n], now))
            w.order[w.n++] = n;
    for (size_t i = 1; i < w.n; i++) /* insertion sort, most recent first */
        for (size_t j = i;
             j > 0 && by_recent_use(&w.order[j - 1], &w.order[j], m) > 0; j--) {
            tmp = w.order[j];
            w.order[j] = w.order[j - 1];
            w.order[j - 1] = tmp;
        }
    store_foreach(s, now, check_visit, &w);
    ASSERT_EQ_INT(w.n, w.visited);
}

static void model_step(Store *s, Model *m, uint64_t now, bool draining)
{
    char key[40];
    unsigned n = rnd() % m->keys;
    size_t klen = key_of(n, key);
    uint32_t op = rnd() % 100;
    size_t vlen;

    if (op < (draining ? 15u : 45u)) { /* set */
        char val[24];
        uint64_t exp = rnd() % 2 ? NEVER : now + rnd() % 60 - 5;
        size_t len = rnd() % sizeof(val);
        for (size_t j = 0; j < len; j++)
            val[j] = (char)rnd();
        ASSERT_EQ_INT(CR_OK, store_set(s, key, klen, val, len, exp, now));
        if (now > m->now)
            m->now = now;
        if (m->e[n].present) {
            if (model_expired(&m->e[n], now))
                m->expired++;
            model_remove(m, n);
        }
        if (exp == NEVER || now < exp) {
            ModelEntry *e = &m->e[n];
            e->present = true;
            memcpy(e->val, val, len);
            e->vlen = len;
            e->expires_at_ms = exp;
            e->used = ++m->clock;
            m->count++;
            m->bytes += OVH + klen + len;
            model_evict(m);
        }
    } else if (op < 75) { /* get */
        ModelEntry *e = model_lookup(m, n, now);
        uint64_t exp = 0;
        const char *v = store_get_expiring(s, key, klen, now, &vlen, &exp);
        if (e == NULL) {
            ASSERT_NULL(v);
        } else {
            ASSERT_NOT_NULL(v);
            ASSERT_EQ_MEM(e->val, e->vlen, v, vlen);
            ASSERT_EQ_INT(e->expires_at_ms, exp);
            e->used = ++m->clock;
        }
    } else if (op < 85) { /* exists */
        bool live = model_lookup(m, n, now) != NULL;
        ASSERT_EQ_INT(live, store_exists(s, key, klen, now));
    } else if (op < 98) { /* delete */
        bool live = false;
        if (now > m->now)
            m->now = now;
        if (m->e[n].present) {
            live = !model_expired(&m->e[n], now);
            if (!live)
                m->expired++;
            model_remove(m, n);
        }
        ASSERT_EQ_INT(live, store_delete(s, key, klen, now));
    } else if (op < 99) { /* sweep the whole list */
        size_t removed = 0;
        if (now > m->now)
            m->now = now;
        for (unsigned i = 0; i < m->keys; i++)
            if (m->e[i].present && model_expired(&m->e[i], now)) {
                m->expired++;
                model_remove(m, i);
                removed++;
            }
        ASSERT_EQ_INT(removed, store_sweep(s, now, SIZE_MAX));
    } else { /* change the item limit */
        m->max_items = m->max_items != 0 ? 0 : 1 + rnd() % m->keys;
        store_set_limits(s, m->max_items, m->max_bytes);
        model_evict(m);
    }
}

/* Random operations on small and large key sets, with and without limits,
** filling up and draining (so the table grows and shrinks), checked
** against the naive model after every operation. */
static void test_store_matches_a_naive_model_under_random_operations(void)
{
    static Model m;
    static const unsigned keyspace[] = {5, 13, 60, 400, MODEL_KEYS};

    for (int round = 0; round < 15; round++) {
        uint64_t now = NOW;
        Store *s;
        memset(&m, 0, sizeof(m));
        m.keys = keyspace[round % 5];
        m.max_items = round % 3 == 0 ? 0 : 1 + rnd() % m.keys;
        m.max_bytes = round % 4 == 1 ? (OVH + 40) * (1 + rnd() % m.keys) : 0;
        s = new_store(m.max_items, m.max_bytes);
        for (int i = 0; i < 6000; i++) {
            now += rnd() % 3;
            model_step(s, &m, now, i >= 3000);
            if (i % 50 == 0 || m.keys < 100)
                check_against_model(s, &m, now);
        }
        check_against_model(s, &m, now);
        store_free(s);
    }
}

static void test_store_free_accepts_null(void)
{
    store_free(NULL);
}

static const TestCase cases[] = {
    TEST_CASE(test_store_get_returns_what_set_stored),
    TEST_CASE(test_store_overwrite_replaces_value_and_accounting),
    TEST_CASE(test_store_delete_removes_and_reports_liveness),
    TEST_CASE(test_store_keys_and_values_are_binary_safe),
    TEST_CASE(test_store_evicts_least_recent_when_full),
    TEST_CASE(test_store_exists_does_not_change_lru_order),
    TEST_CASE(test_store_evicts_by_bytes_from_the_least_recent_end),
    TEST_CASE(test_store_rejects_entry_bigger_than_byte_limit_and_drops_old),
    TEST_CASE(test_store_set_limits_shrinking_evicts_least_recent),
    TEST_CASE(test_store_evicting_an_expired_entry_counts_as_expired),
    TEST_CASE(test_store_entry_expires_exactly_at_expires_at_ms),
    TEST_CASE(test_store_exists_and_delete_expire_lazily),
    TEST_CASE(test_store_overwrite_renews_or_removes_expiry),
    TEST_CASE(test_store_set_with_a_past_expiry_stores_nothing),
    TEST_CASE(test_store_sweep_with_budget_removes_every_expired_entry),
    TEST_CASE(test_store_sweep_resumes_after_its_cursor_entry_is_removed),
    TEST_CASE(test_store_sweep_waits_for_the_earliest_expiry),
    TEST_CASE(test_store_clear_with_a_literal_pattern_deletes_one_key),
    TEST_CASE(test_store_clear_with_a_glob_removes_only_matching_keys),
    TEST_CASE(test_store_clear_star_also_removes_the_empty_key),
    TEST_CASE(test_store_memory_bytes_is_overhead_plus_key_and_value_lengths),
    TEST_CASE(test_store_stats_count_evictions_expired_and_keys),
    TEST_CASE(test_store_foreach_visits_live_entries_most_recent_first),
    TEST_CASE(test_store_grows_to_100000_keys_and_shrinks_back),
    TEST_CASE(test_store_deleting_inside_clusters_keeps_other_keys_found),
    TEST_CASE(test_store_finds_keys_while_the_table_drains),
    TEST_CASE(test_store_resizes_under_churn_without_losing_keys),
    TEST_CASE(test_store_matches_a_naive_model_under_random_operations),
    TEST_CASE(test_store_free_accepts_null),
    TEST_CASE(test_store_get_timed_reads_the_clock_only_for_expiring_hits),
    {NULL, NULL},
};

TEST_MAIN(cases)
