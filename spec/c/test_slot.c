/*
** test_slot.c -- Redis Cluster key slots (slot.h): CRC16-XMODEM against its
** bitwise definition and known vectors, the hash-tag rules and their edge
** cases, binary keys; then against a live 6-node cluster
** (cluster_fixture.h): CLUSTER KEYSLOT on every node for generated keys,
** and a slot map that covers every slot once, whose owners accept the keys
** slot_of() sends them and whose other primaries answer MOVED to them.
**
** Generated keys come from a fixed seed, so a failure names a key that
** the next run generates again.
*/
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cluster_fixture.h"
#include "slot.h"
#include "test.h"

/* -- Helpers ------------------------------------------------------------ */

/* The CRC straight from its definition: one bit at a time, MSB first. */
static uint16_t crc16_bitwise(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021)
                                 : (uint16_t)(crc << 1);
    }
    return crc;
}

static uint16_t slot_of_str(const char *s)
{
    return slot_of(s, strlen(s));
}

/* splitmix64: a fixed, portable sequence (rand() differs across libcs). */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

#define KEY_MAX 64

/* Writes generated key number i into out (KEY_MAX bytes); returns its
** length. Five kinds in turn: plain text, a text tag, random bytes (NUL,
** '{' and '}' included), short strings over "{}a\0x" (every tag edge case
** many times over), and a tag of random bytes between random bytes. */
static size_t generated_key(uint64_t *rng, int i, char *out)
{
    static const char braces[] = {'{', '}', 'a', '\0', 'x'};
    size_t len = 0;
    switch (i % 5) {
    case 0:
        return (size_t)snprintf(out, KEY_MAX, "key:%d", i);
    case 1:
        return (size_t)snprintf(out, KEY_MAX, "{user%d}.field%d", i / 5, i);
    case 2:
        len = next_random(rng) % 41;
        for (size_t k = 0; k < len; k++)
            out[k] = (char)(next_random(rng) & 0xff);
        return len;
    case 3:
        len = next_random(rng) % 13;
        for (size_t k = 0; k < len; k++)
            out[k] = braces[next_random(rng) % sizeof(braces)];
        return len;
    default:
        for (int part = 0; part < 3; part++) {
            size_t n = next_random(rng) % 9;
            for (size_t k = 0; k < n; k++)
                out[len++] = (char)(next_random(rng) & 0xff);
            if (part < 2)
                out[len++] = part == 0 ? '{' : '}';
        }
        return len;
    }
}

static void print_key(const char *key, size_t len)
{
    fprintf(stderr, "key (%zu bytes):", len);
    for (size_t i = 0; i < len; i++)
        fprintf(stderr, " %02x", (unsigned char)key[i]);
    fputc('\n', stderr);
}

static void start_cluster(ClusterFixture *cf)
{
    ASSERT_TRUE(cluster_fixture_start(cf));
    printf("6-node cluster: created after %llu ms, ready after %llu ms\n",
           (unsigned long long)cf->create_ms, (unsigned long long)cf->ready_ms);
}

/* -- CRC16 -------------------------------------------------------------- */

static void test_slot_crc16_of_123456789_is_0x31c3(void)
{
    ASSERT_EQ_INT(0x31C3, slot_crc16("123456789", 9));
    ASSERT_EQ_INT(12739, slot_of_str("123456789"));
}

static void test_slot_crc16_table_matches_the_bitwise_definition(void)
{
    char buf[KEY_MAX];
    /* every byte value after every register value's high byte */
    for (int hi = 0; hi < 256; hi++) {
        for (int b = 0; b < 256; b++) {
            buf[0] = (char)hi;
            buf[1] = (char)b;
            ASSERT_EQ_INT(crc16_bitwise(buf, 2), slot_crc16(buf, 2));
        }
    }
    uint64_t rng = 1;
    for (int i = 0; i < 10000; i++) {
        size_t len = next_random(&rng) % sizeof(buf);
        for (size_t k = 0; k < len; k++)
            buf[k] = (char)(next_random(&rng) & 0xff);
        ASSERT_EQ_INT(crc16_bitwise(buf, len), slot_crc16(buf, len));
    }
}

/* Values CLUSTER KEYSLOT gave on Redis 7.0.15. */
static void test_slot_matches_known_cluster_keyslot_values(void)
{
    ASSERT_EQ_INT(12182, slot_of_str("foo"));
    ASSERT_EQ_INT(866, slot_of_str("hello"));
    ASSERT_EQ_INT(11058, slot_of_str("somekey"));
    ASSERT_EQ_INT(1649, slot_of_str("user:1000"));
    ASSERT_EQ_INT(2515, slot_of_str("foo{hash_tag}"));
    ASSERT_EQ_INT(2515, slot_of_str("bar{hash_tag}"));
    ASSERT_EQ_INT(3443, slot_of_str("{user1000}.following"));
    ASSERT_EQ_INT(8363, slot_of_str("foo{}{bar}"));
    ASSERT_EQ_INT(4015, slot_of_str("foo{{bar}}zap"));
}

/* -- Hash tags ---------------------------------------------------------- */

static void test_slot_hashes_only_the_tag_of_a_tagged_key(void)
{
    uint16_t user = slot_of_str("user1000");
    ASSERT_EQ_INT(user, slot_of_str("{user1000}.following"));
    ASSERT_EQ_INT(user, slot_of_str("{user1000}.followers"));
    ASSERT_EQ_INT(user, slot_of_str("x{user1000}"));
    ASSERT_EQ_INT(user, slot_of_str("{user1000}"));
    /* only the first tag counts */
    ASSERT_EQ_INT(slot_of_str("bar"), slot_of_str("foo{bar}{zap}"));
    /* a '}' before the first '{' is ordinary */
    ASSERT_EQ_INT(slot_of_str("c"), slot_of_str("a}b{c}"));
}

static void test_slot_hashes_the_whole_key_when_the_first_tag_is_empty(void)
{
    ASSERT_EQ_INT(slot_crc16("foo{}{bar}", 10) % SLOT_COUNT,
                  slot_of_str("foo{}{bar}"));
    ASSERT_EQ_INT(slot_crc16("{}", 2) % SLOT_COUNT, slot_of_str("{}"));
    ASSERT_EQ_INT(slot_crc16("{}x}", 4) % SLOT_COUNT, slot_of_str("{}x}"));
}

static void test_slot_tag_runs_from_the_first_open_to_the_next_close(void)
{
    ASSERT_EQ_INT(slot_of_str("{bar"), slot_of_str("foo{{bar}}zap"));
    ASSERT_EQ_INT(slot_of_str("{"), slot_of_str("{{}"));
    ASSERT_EQ_INT(slot_of_str("a{b"), slot_of_str("{a{b}c}"));
}

static void test_slot_hashes_the_whole_key_without_a_closing_brace(void)
{
    const char *keys[] = {"{", "foo{", "{bar", "}{", "foo}bar{", "{{{", NULL};
    for (int i = 0; keys[i] != NULL; i++)
        ASSERT_EQ_INT(crc16_bitwise(keys[i], strlen(keys[i])) % SLOT_COUNT,
                      slot_of_str(keys[i]));
}

static void test_slot_of_the_empty_key_is_0(void)
{
    ASSERT_EQ_INT(0, slot_of("", 0));
    ASSERT_EQ_INT(0, slot_of(NULL, 0));
    ASSERT_EQ_INT(0, slot_crc16(NULL, 0));
}

/* -- Binary keys -------------------------------------------------------- */

static void test_slot_hashes_every_byte_of_a_key_with_nul_bytes(void)
{
    ASSERT_EQ_INT(8383, slot_of("a\0b", 3)); /* CLUSTER KEYSLOT, 7.0.15 */
    ASSERT_EQ_INT(crc16_bitwise("a\0b", 3) % SLOT_COUNT, slot_of("a\0b", 3));
    ASSERT_TRUE(slot_of("a\0b", 3) != slot_of("a", 1));
    ASSERT_TRUE(slot_of("\0", 1) == 0); /* CRC of one zero byte is 0 */
    ASSERT_EQ_INT(crc16_bitwise("\0\0\xff", 3) % SLOT_COUNT,
                  slot_of("\0\0\xff", 3));
}

static void test_slot_finds_tags_around_and_containing_nul_bytes(void)
{
    /* a NUL is an ordinary byte: it ends neither the key nor the tag */
    ASSERT_EQ_INT(slot_of("b\0c", 3), slot_of("a\0{b\0c}d", 8));
    ASSERT_EQ_INT(slot_of("\0", 1), slot_of("{\0}x", 4));
    ASSERT_EQ_INT(crc16_bitwise("\0{}\0", 4) % SLOT_COUNT,
                  slot_of("\0{}\0", 4));
}

/* -- A live cluster ----------------------------------------------------- */

static void test_slot_agrees_with_cluster_keyslot_on_generated_keys(void)
{
    ClusterFixture cf;
    start_cluster(&cf);
    redisContext *ctx[CLUSTER_FIXTURE_NODES];
    for (size_t n = 0; n < CLUSTER_FIXTURE_NODES; n++) {
        struct timeval tv = {2, 0};
        ctx[n] = redisConnectWithTimeout("127.0.0.1", cf.nodes[n].fx.port, tv);
        ASSERT_TRUE(ctx[n] != NULL && ctx[n]->err == 0);
        redisSetTimeout(ctx[n], tv);
    }
    uint64_t rng = 42;
    char key[KEY_MAX];
    int tagged = 0;
    int binary = 0;
    for (int i = 0; i < 1500; i++) {
        size_t len = generated_key(&rng, i, key);
        redisReply *r = redisCommand(ctx[i % CLUSTER_FIXTURE_NODES],
                                     "CLUSTER KEYSLOT %b", key, len);
        ASSERT_NOT_NULL(r);
        if (r->type != REDIS_REPLY_INTEGER || r->integer != slot_of(key, len))
            print_key(key, len);
        ASSERT_EQ_INT(REDIS_REPLY_INTEGER, r->type);
        ASSERT_EQ_INT(r->integer, slot_of(key, len));
        freeReplyObject(r);
        tagged +=
            memchr(key, '{', len) != NULL && memchr(key, '}', len) != NULL;
        binary += memchr(key, '\0', len) != NULL;
    }
    for (size_t n = 0; n < CLUSTER_FIXTURE_NODES; n++)
        redisFree(ctx[n]);
    cluster_fixture_stop(&cf);
    printf("1500 keys agree with CLUSTER KEYSLOT (%d with braces, %d with "
           "NUL bytes)\n",
           tagged, binary);
    ASSERT_TRUE(tagged > 300 && binary > 100);
}

/* The node of `cf` listening on `port`, or -1. */
static int node_index(const ClusterFixture *cf, long long port)
{
    for (int n = 0; n < CLUSTER_FIXTURE_NODES; n++)
        if (cf->nodes[n].fx.port == port)
            return n;
    return -1;
}

/* SET `key` on `port` and check the answer: +OK on the owner, else
** -MOVED <slot_of(key)> 127.0.0.1:<owner>. */
static void expect_set_routed(int port, int owner, const char *key, size_t len)
{
    redisReply *r = cluster_fixture_command(port, "SET %b v", key, len);
    ASSERT_NOT_NULL(r);
    if (port == owner) {
        ASSERT_EQ_INT(REDIS_REPLY_STATUS, r->type);
        ASSERT_EQ_STR("OK", r->str);
    } else {
        char moved[64];
        snprintf(moved, sizeof(moved), "MOVED %u 127.0.0.1:%d",
                 (unsigned)slot_of(key, len), owner);
        ASSERT_EQ_INT(REDIS_REPLY_ERROR, r->type);
        ASSERT_EQ_STR(moved, r->str);
    }
    freeReplyObject(r);
}

static void test_slot_map_of_a_live_cluster_covers_every_slot_once(void)
{
    ClusterFixture cf;
    start_cluster(&cf);
    redisReply *r =
        cluster_fixture_command(cf.nodes[0].fx.port, "CLUSTER SLOTS");
    ASSERT_NOT_NULL(r);
    ASSERT_EQ_INT(REDIS_REPLY_ARRAY, r->type);
    static int owner[SLOT_COUNT]; /* port of each slot's primary, 0: none */
    memset(owner, 0, sizeof(owner));
    int primaries[CLUSTER_FIXTURE_PRIMARIES];
    int nprimaries = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *range = r->element[i];
        ASSERT_TRUE(range->type == REDIS_REPLY_ARRAY && range->elements >= 3);
        const redisReply *primary = range->element[2];
        ASSERT_TRUE(primary->type == REDIS_REPLY_ARRAY &&
                    primary->elements >= 2);
        long long port = primary->element[1]->integer;
        ASSERT_TRUE(node_index(&cf, port) >= 0);
        bool known = false;
        for (int p = 0; p < nprimaries; p++)
            known = known || primaries[p] == port;
        if (!known) {
            ASSERT_TRUE(nprimaries < CLUSTER_FIXTURE_PRIMARIES);
            primaries[nprimaries++] = (int)port;
        }
        long long first = range->element[0]->integer;
        long long last = range->element[1]->integer;
        ASSERT_TRUE(0 <= first && first <= last && last < SLOT_COUNT);
        for (long long s = first; s <= last; s++) {
            ASSERT_EQ_INT(0, owner[s]); /* no slot listed twice */
            owner[s] = (int)port;
        }
    }
    freeReplyObject(r);
    ASSERT_EQ_INT(CLUSTER_FIXTURE_PRIMARIES, nprimaries);
    for (int s = 0; s < SLOT_COUNT; s++)
        if (owner[s] == 0)
            TEST_FAIL_("slot %d is not covered", s);
    for (int p = 0; p < nprimaries; p++) {
        char role[16] = "";
        redisReply *rr = cluster_fixture_command(primaries[p], "ROLE");
        ASSERT_TRUE(rr != NULL && rr->type == REDIS_REPLY_ARRAY &&
                    rr->elements > 0);
        snprintf(role, sizeof(role), "%s", rr->element[0]->str);
        freeReplyObject(rr);
        ASSERT_EQ_STR("master", role);
    }
    /* The owner slot_of() names takes the key; the others send it there. */
    const char *keys[] = {"123456789", "foo", "{user1000}.following",
                          "foo{{bar}}zap", "a\0b"};
    const size_t lens[] = {9, 3, 20, 13, 3};
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        int to = owner[slot_of(keys[k], lens[k])];
        for (int p = 0; p < nprimaries; p++)
            expect_set_routed(primaries[p], to, keys[k], lens[k]);
    }
    cluster_fixture_stop(&cf);
}

static const TestCase cases[] = {
    TEST_CASE(test_slot_crc16_of_123456789_is_0x31c3),
    TEST_CASE(test_slot_crc16_table_matches_the_bitwise_definition),
    TEST_CASE(test_slot_matches_known_cluster_keyslot_values),
    TEST_CASE(test_slot_hashes_only_the_tag_of_a_tagged_key),
    TEST_CASE(test_slot_hashes_the_whole_key_when_the_first_tag_is_empty),
    TEST_CASE(test_slot_tag_runs_from_the_first_open_to_the_next_close),
    TEST_CASE(test_slot_hashes_the_whole_key_without_a_closing_brace),
    TEST_CASE(test_slot_of_the_empty_key_is_0),
    TEST_CASE(test_slot_hashes_every_byte_of_a_key_with_nul_bytes),
    TEST_CASE(test_slot_finds_tags_around_and_containing_nul_bytes),
    TEST_CASE(test_slot_agrees_with_cluster_keyslot_on_generated_keys),
    TEST_CASE(test_slot_map_of_a_live_cluster_covers_every_slot_once),
    {NULL, NULL},
};

TEST_MAIN(cases)
