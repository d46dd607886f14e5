/*
** test_reply.c -- the reply objects of reply.h: on generated RESP2 replies
** (strings with every byte value, errors, statuses, integers, nils, nested
** arrays, empty and nil arrays), fed in random slices, the reader built on
** reply_reader_new() gives the same tree as hiredis's own reader; a kept
** reply outlives reply_free() until reply_release(); a protocol error in
** the middle of an array frees what was built (valgrind.reply checks that
** nothing leaks).
*/
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "reply.h"
#include "test.h"

static uint32_t rng_state = 88172645u;

static uint32_t rnd(void)
{
    return test_xorshift32(&rng_state);
}

typedef struct Out {
    char *data;
    size_t len, cap;
} Out;

static void put(Out *o, const char *s, size_t n)
{
    if (o->len + n > o->cap) {
        o->cap = (o->len + n) * 2;
        o->data = realloc(o->data, o->cap);
        ASSERT_NOT_NULL(o->data);
    }
    memcpy(o->data + o->len, s, n);
    o->len += n;
}

static void putf(Out *o, const char *fmt, long long v)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), fmt, v);
    put(o, buf, (size_t)n);
}

/* One generated reply, nested at most `depth` more levels. */
static void gen(Out *o, int depth)
{
    switch (rnd() % (depth > 0 ? 6 : 4)) {
    case 0: { /* bulk string, any bytes */
        size_t len = rnd() % 8 == 0 ? 0 : rnd() % 200;
        putf(o, "$%lld\r\n", (long long)len);
        for (size_t i = 0; i < len; i++) {
            char ch = (char)(rnd() & 0xff);
            put(o, &ch, 1);
        }
        put(o, "\r\n", 2);
        break;
    }
    case 1:
        if (rnd() % 2)
            put(o, "-ERR no\r\n", 9);
        else
            put(o, "+OK\r\n", 5);
        break;
    case 2:
        putf(o, ":%lld\r\n", (long long)(int32_t)rnd() * (long long)rnd());
        break;
    case 3:
        put(o, "$-1\r\n", 5);
        break;
    case 4:
        if (rnd() % 2)
            put(o, "*-1\r\n", 5);
        else
            put(o, "*0\r\n", 4);
        break;
    default: {
        int n = 1 + (int)(rnd() % 5);
        putf(o, "*%lld\r\n", n);
        for (int i = 0; i < n; i++)
            gen(o, depth - 1);
    }
    }
}

static void assert_same(const redisReply *a, const redisReply *b)
{
    ASSERT_EQ_INT(a->type, b->type);
    switch (a->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_ERROR:
    case REDIS_REPLY_STATUS:
        ASSERT_EQ_MEM(a->str, a->len, b->str, b->len);
        ASSERT_EQ_INT(0, b->str[b->len]); /* NUL-terminated as hiredis's */
        break;
    case REDIS_REPLY_INTEGER:
        ASSERT_EQ_INT(a->integer, b->integer);
        break;
    case REDIS_REPLY_ARRAY:
        ASSERT_EQ_INT(a->elements, b->elements);
        for (size_t i = 0; i < a->elements; i++)
            assert_same(a->element[i], b->element[i]);
        break;
    default:
        break;
    }
}

/* Feeds `o` to both readers in random slices; compares every reply. */
static int compare_readers(const Out *o)
{
    redisReader *ours = reply_reader_new(), *theirs = redisReaderCreate();
    ASSERT_NOT_NULL(ours);
    ASSERT_NOT_NULL(theirs);
    int replies = 0;
    for (size_t at = 0; at < o->len;) {
        size_t n = 1 + rnd() % 300;
        if (n > o->len - at)
            n = o->len - at;
        ASSERT_EQ_INT(REDIS_OK, redisReaderFeed(ours, o->data + at, n));
        ASSERT_EQ_INT(REDIS_OK, redisReaderFeed(theirs, o->data + at, n));
        at += n;
        for (;;) {
            void *a = NULL, *b = NULL;
            ASSERT_EQ_INT(REDIS_OK, redisReaderGetReply(theirs, &a));
            ASSERT_EQ_INT(REDIS_OK, redisReaderGetReply(ours, &b));
            ASSERT_TRUE((a == NULL) == (b == NULL));
            if (a == NULL)
                break;
            assert_same(a, b);
            freeReplyObject(a);
            reply_free(b);
            replies++;
        }
    }
    redisReaderFree(ours);
    redisReaderFree(theirs);
    return replies;
}

static void test_reply_trees_equal_hiredis_readers_on_generated_replies(void)
{
    for (int round = 0; round < 500; round++) {
        Out o = {0};
        int n = 1 + (int)(rnd() % 8);
        for (int i = 0; i < n; i++)
            gen(&o, 3);
        ASSERT_EQ_INT(n, compare_readers(&o));
        free(o.data);
    }
}

static void test_reply_kept_outlives_reply_free_until_released(void)
{
    redisReader *rd = reply_reader_new();
    ASSERT_NOT_NULL(rd);
    const char in[] = "$5\r\nhello\r\n*2\r\n:7\r\n$2\r\nab\r\n";
    ASSERT_EQ_INT(REDIS_OK, redisReaderFeed(rd, in, sizeof(in) - 1));
    void *obj;
    ASSERT_EQ_INT(REDIS_OK, redisReaderGetReply(rd, &obj));
    const redisReply *kept = reply_keep(obj);
    reply_free(obj); /* what the connection does after the callback */
    void *arr;
    ASSERT_EQ_INT(REDIS_OK, redisReaderGetReply(rd, &arr));
    ASSERT_NOT_NULL(arr);
    reply_free(arr); /* not kept: freed at once */
    redisReaderFree(rd);
    ASSERT_EQ_INT(REDIS_REPLY_STRING, kept->type);
    ASSERT_EQ_MEM("hello", 5, kept->str, kept->len);
    reply_release(kept);
    reply_release(NULL);
}

static void test_reply_error_mid_array_frees_what_was_built(void)
{
    redisReader *rd = reply_reader_new();
    ASSERT_NOT_NULL(rd);
    const char in[] = "*3\r\n$3\r\nabc\r\n*2\r\n:1\r\n!bad\r\n";
    ASSERT_EQ_INT(REDIS_OK, redisReaderFeed(rd, in, sizeof(in) - 1));
    void *obj = NULL;
    ASSERT_EQ_INT(REDIS_ERR, redisReaderGetReply(rd, &obj));
    ASSERT_NULL(obj);
    redisReaderFree(rd);
    /* and a reader freed with half a reply inside */
    rd = reply_reader_new();
    ASSERT_NOT_NULL(rd);
    const char half[] = "*2\r\n$3\r\nabc\r\n*5\r\n:1\r\n";
    ASSERT_EQ_INT(REDIS_OK, redisReaderFeed(rd, half, sizeof(half) - 1));
    ASSERT_EQ_INT(REDIS_OK, redisReaderGetReply(rd, &obj));
    ASSERT_NULL(obj);
    redisReaderFree(rd);
}

static const TestCase cases[] = {
    TEST_CASE(test_reply_trees_equal_hiredis_readers_on_generated_replies),
    TEST_CASE(test_reply_kept_outlives_reply_free_until_released),
    TEST_CASE(test_reply_error_mid_array_frees_what_was_built),
    {NULL, NULL},
};

TEST_MAIN(cases)
