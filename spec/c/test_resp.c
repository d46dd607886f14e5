/*
** test_resp.c -- the RESP writer (resp.h): exact bytes for known commands,
** empty and binary arguments, numbers at every digit count, lengths too
** large to write; then, on generated argv from a fixed seed, equality with
** hiredis 0.14's redisFormatCommandArgv (the formatter it replaces, used
** here as an oracle only) and hiredis's reader parsing the output back, fed
** in random slices, to the same argv. The builders of commands.h that
** carry numbers are checked through it too.
*/
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "commands.h"
#include "resp.h"
#include "test.h"

/* -- Helpers ------------------------------------------------------------ */

/* The command in a fresh buffer (the caller frees it); *len gets its
** length, checked against what resp_write_command wrote. */
static char *format(int argc, const char *const *argv, const size_t *lens,
                    size_t *len)
{
    *len = resp_command_len(argc, argv, lens);
    char *buf = malloc(*len + 1);
    ASSERT_NOT_NULL(buf);
    char *end = resp_write_command(buf, argc, argv, lens);
    ASSERT_EQ_INT(*len, end - buf);
    return buf;
}

static void assert_formats(const char *expected, size_t elen, int argc,
                           const char *const *argv, const size_t *lens)
{
    size_t len;
    char *buf = format(argc, argv, lens, &len);
    ASSERT_EQ_MEM(expected, elen, buf, len);
    free(buf);
}

#define ASSERT_FORMATS(lit, argc, argv, lens)                                  \
    assert_formats("" lit, sizeof(lit) - 1, (argc), (argv), (lens))

static void assert_cmd(const char *expected, size_t elen, const RedisCmd *c)
{
    assert_formats(expected, elen, c->argc, c->argv, c->lens);
}

#define ASSERT_CMD(lit, cmd) assert_cmd("" lit, sizeof(lit) - 1, (cmd))

static uint32_t rng_state = 2463534242u;

static uint32_t rnd(void)
{
    return test_xorshift32(&rng_state);
}

/* A generated command: up to 12 arguments of 0..300 bytes (every byte
** value, CR and LF included; no NUL when nul_free), now and then one of
** 70,000 bytes. */
typedef struct GenCmd {
    int argc;
    char *argv[12];
    size_t lens[12];
} GenCmd;

static void gen(GenCmd *g, bool nul_free)
{
    g->argc = 1 + (int)(rnd() % 12);
    for (int i = 0; i < g->argc; i++) {
        size_t len = rnd() % 16 == 0 ? 70000 : rnd() % 301;
        if (rnd() % 8 == 0)
            len = 0;
        g->argv[i] = malloc(len + 1);
        ASSERT_NOT_NULL(g->argv[i]);
        for (size_t j = 0; j < len; j++) {
            char ch = (char)(rnd() & 0xff);
            if (rnd() % 8 == 0)
                ch = "\r\n$*"[rnd() % 4];
            g->argv[i][j] = nul_free && ch == 0 ? 'z' : ch;
        }
        g->argv[i][len] = 0;
        g->lens[i] = len;
    }
}

static void gen_free(GenCmd *g)
{
    for (int i = 0; i < g->argc; i++)
        free(g->argv[i]);
}

/* -- Known commands --------------------------------------------------- */

static void test_resp_writes_a_get_as_an_array_of_bulk_strings(void)
{
    const char *argv[] = {"GET", "key:1"};
    size_t lens[] = {3, 5};
    ASSERT_FORMATS("*2\r\n$3\r\nGET\r\n$5\r\nkey:1\r\n", 2, argv, lens);
}

static void test_resp_takes_nul_terminated_arguments_without_lengths(void)
{
    const char *argv[] = {"SET", "k", "value", "PX", "1500"};
    ASSERT_FORMATS("*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n$2\r\nPX\r\n"
                   "$4\r\n1500\r\n",
                   5, argv, NULL);
}

static void test_resp_writes_empty_arguments_and_an_empty_command(void)
{
    const char *argv[] = {"SET", "", ""};
    size_t lens[] = {3, 0, 0};
    ASSERT_FORMATS("*3\r\n$3\r\nSET\r\n$0\r\n\r\n$0\r\n\r\n", 3, argv, lens);
    ASSERT_FORMATS("*0\r\n", 0, argv, lens);
}

static void test_resp_copies_binary_arguments_byte_for_byte(void)
{
    const char key[] = {'a', 0, '\r', '\n', (char)0xff, '$'};
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, sizeof(key)};
    ASSERT_FORMATS("*2\r\n$3\r\nGET\r\n$6\r\na\0\r\n\xff$\r\n", 2, argv, lens);
}

static void test_resp_writes_numbers_of_every_digit_count(void)
{
    char buf[RESP_U64_DIGITS + 2], want[32];
    uint64_t v = 0;
    for (int digits = 1; digits <= 20; digits++) {
        /* 10^(d-1) - 1 (the largest of one digit less, but 0 for d = 1),
        ** 10^(d-1), and a mixed value of d digits */
        uint64_t tries[3] = {v > 0 ? v - 1 : 0, v, v + v / 7 + 3};
        for (int t = 0; t < 3; t++) {
            snprintf(want, sizeof(want), "%llu", (unsigned long long)tries[t]);
            char *end = resp_u64(buf, tries[t]);
            ASSERT_EQ_MEM(want, strlen(want), buf, (size_t)(end - buf));
        }
        v = v == 0 ? 10 : v * 10; /* 10^19 still fits; 10^20 is unused */
    }
    char *end = resp_u64(buf, UINT64_MAX);
    ASSERT_EQ_MEM("18446744073709551615", 20, buf, (size_t)(end - buf));
    end = resp_i64(buf, INT64_MIN);
    ASSERT_EQ_MEM("-9223372036854775808", 20, buf, (size_t)(end - buf));
    end = resp_i64(buf, -1);
    ASSERT_EQ_MEM("-1", 2, buf, (size_t)(end - buf));
    end = resp_i64(buf, INT64_MAX);
    ASSERT_EQ_MEM("9223372036854775807", 19, buf, (size_t)(end - buf));
}

static void test_resp_counts_lengths_past_what_hiredis_sums_in_an_int(void)
{
    /* Only counted, never written: 3 GiB and 10^12 bytes. */
    const char *argv[] = {"SET", "k", "v"};
    size_t lens[] = {3, (size_t)3 << 30, (size_t)1000000000000ull};
    size_t want =
        4 + 9 + (1 + 10 + 2 + lens[1] + 2) + (1 + 13 + 2 + lens[2] + 2);
    ASSERT_EQ_INT(want, resp_command_len(3, argv, lens));
}

static void test_resp_writes_a_one_mib_argument_with_its_length(void)
{
    size_t big = 1048576 + 12345;
    char *val = malloc(big);
    ASSERT_NOT_NULL(val);
    memset(val, 'x', big);
    const char *argv[] = {"SET", "k", val};
    size_t lens[] = {3, 1, big};
    size_t len;
    char *buf = format(3, argv, lens, &len);
    const char head[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1060921\r\n";
    ASSERT_EQ_INT(sizeof(head) - 1 + big + 2, len);
    ASSERT_EQ_MEM(head, sizeof(head) - 1, buf, sizeof(head) - 1);
    ASSERT_EQ_MEM(val, big, buf + sizeof(head) - 1, big);
    ASSERT_EQ_MEM("\r\n", 2, buf + len - 2, 2);
    free(buf);
    free(val);
}

/* -- Against hiredis ---------------------------------------------------- */

static void test_resp_equals_hiredis_format_on_generated_argv(void)
{
    for (int n = 0; n < 2000; n++) {
        GenCmd g;
        bool nul_free = n % 2 == 1;
        gen(&g, nul_free);
        /* with NULL lengths every argument is taken up to its NUL */
        const size_t *lens = nul_free ? NULL : g.lens;
        char *want;
        int wlen =
            redisFormatCommandArgv(&want, g.argc, (const char **)g.argv, lens);
        ASSERT_TRUE(wlen > 0);
        size_t len;
        char *buf = format(g.argc, (const char *const *)g.argv, lens, &len);
        ASSERT_EQ_MEM(want, (size_t)wlen, buf, len);
        free(buf);
        redisFreeCommand(want);
        gen_free(&g);
    }
}

static void test_resp_output_parses_back_to_the_same_argv(void)
{
    enum { BATCH = 5 };
    for (int round = 0; round < 300; round++) {
        GenCmd g[BATCH];
        size_t total = 0;
        for (int i = 0; i < BATCH; i++) {
            gen(&g[i], false);
            total += resp_command_len(g[i].argc, (const char *const *)g[i].argv,
                                      g[i].lens);
        }
        /* BATCH commands back to back, as in an output buffer */
        char *buf = malloc(total);
        ASSERT_NOT_NULL(buf);
        char *p = buf;
        for (int i = 0; i < BATCH; i++)
            p = resp_write_command(p, g[i].argc, (const char *const *)g[i].argv,
                                   g[i].lens);
        ASSERT_EQ_INT(total, p - buf);
        redisReader *rd = redisReaderCreate();
        ASSERT_NOT_NULL(rd);
        int got = 0;
        for (size_t at = 0; at < total || got < BATCH;) {
            size_t slice = 1 + rnd() % 512; /* a reply split anywhere */
            if (slice > total - at)
                slice = total - at;
            if (slice > 0)
                ASSERT_EQ_INT(REDIS_OK, redisReaderFeed(rd, buf + at, slice));
            at += slice;
            void *obj;
            while (got < BATCH) {
                ASSERT_EQ_INT(REDIS_OK, redisReaderGetReply(rd, &obj));
                if (obj == NULL)
                    break;
                const redisReply *r = obj;
                const GenCmd *want = &g[got++];
                ASSERT_EQ_INT(REDIS_REPLY_ARRAY, r->type);
                ASSERT_EQ_INT(want->argc, r->elements);
                for (int i = 0; i < want->argc; i++) {
                    ASSERT_EQ_INT(REDIS_REPLY_STRING, r->element[i]->type);
                    ASSERT_EQ_MEM(want->argv[i], want->lens[i],
                                  r->element[i]->str, r->element[i]->len);
                }
                freeReplyObject(obj);
            }
            ASSERT_TRUE(at < total || got == BATCH);
        }
        redisReaderFree(rd);
        free(buf);
        for (int i = 0; i < BATCH; i++)
            gen_free(&g[i]);
    }
}

/* -- The builders' numbers ---------------------------------------------- */

static void test_resp_builders_write_their_numbers_in_decimal(void)
{
    RedisCmd c;
    cmd_set(&c, "k", 1, "v", 1, 0);
    ASSERT_CMD("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", &c);
    cmd_set(&c, "k", 1, "v", 1, 86400000);
    ASSERT_CMD("*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nPX\r\n"
               "$8\r\n86400000\r\n",
               &c);
    cmd_lock(&c, "k", 1, "t", 1, 9000000000000000ull);
    ASSERT_CMD("*6\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nt\r\n$2\r\nNX\r\n"
               "$2\r\nPX\r\n$16\r\n9000000000000000\r\n",
               &c);
    cmd_select(&c, 15);
    ASSERT_CMD("*2\r\n$6\r\nSELECT\r\n$2\r\n15\r\n", &c);
    cmd_tracking(&c, 1234567, "p:", 2);
    ASSERT_CMD("*8\r\n$6\r\nCLIENT\r\n$8\r\nTRACKING\r\n$2\r\non\r\n"
               "$8\r\nREDIRECT\r\n$7\r\n1234567\r\n$5\r\nBCAST\r\n"
               "$6\r\nPREFIX\r\n$2\r\np:\r\n",
               &c);
    cmd_info(&c, NULL);
    ASSERT_CMD("*1\r\n$4\r\nINFO\r\n", &c);
    cmd_info(&c, "server");
    ASSERT_CMD("*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n", &c);
}

static const TestCase cases[] = {
    TEST_CASE(test_resp_writes_a_get_as_an_array_of_bulk_strings),
    TEST_CASE(test_resp_takes_nul_terminated_arguments_without_lengths),
    TEST_CASE(test_resp_writes_empty_arguments_and_an_empty_command),
    TEST_CASE(test_resp_copies_binary_arguments_byte_for_byte),
    TEST_CASE(test_resp_writes_numbers_of_every_digit_count),
    TEST_CASE(test_resp_counts_lengths_past_what_hiredis_sums_in_an_int),
    TEST_CASE(test_resp_writes_a_one_mib_argument_with_its_length),
    TEST_CASE(test_resp_equals_hiredis_format_on_generated_argv),
    TEST_CASE(test_resp_output_parses_back_to_the_same_argv),
    TEST_CASE(test_resp_builders_write_their_numbers_in_decimal),
    {NULL, NULL},
};

TEST_MAIN(cases)
