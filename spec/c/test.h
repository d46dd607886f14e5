/*
** test.h -- a tiny assertion and test-case header for the C unit tests.
**
** Each test binary lists its cases with TEST_CASE(name) in a TEST_LIST and
** calls TEST_MAIN(list): with no argument it runs every case, with
** arguments the cases of those names, in list order (ctest registers one
** entry per case; a valgrind entry may name a subset). A failed
** assertion prints both operands, the expression, the file and the line,
** and exits 1.
*/
#ifndef CACHERT_TEST_H
#define CACHERT_TEST_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_FAIL_(...)                                                        \
    do {                                                                       \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                        \
        fprintf(stderr, __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                   \
        exit(1);                                                               \
    } while (0)

#define ASSERT_TRUE(e)                                                         \
    do {                                                                       \
        if (!(e))                                                              \
            TEST_FAIL_("assertion failed: %s", #e);                            \
    } while (0)

#define ASSERT_FALSE(e) ASSERT_TRUE(!(e))

#define ASSERT_NULL(p)                                                         \
    do {                                                                       \
        const void *p_ = (p);                                                  \
        if (p_ != NULL)                                                        \
            TEST_FAIL_("expected NULL: %s is %p", #p, p_);                     \
    } while (0)

#define ASSERT_NOT_NULL(p)                                                     \
    do {                                                                       \
        if ((p) == NULL)                                                       \
            TEST_FAIL_("unexpected NULL: %s", #p);                             \
    } while (0)

#define ASSERT_EQ_INT(expected, actual)                                        \
    do {                                                                       \
        intmax_t e_ = (intmax_t)(expected), a_ = (intmax_t)(actual);           \
        if (e_ != a_)                                                          \
            TEST_FAIL_("%s == %s: expected %jd, got %jd", #expected, #actual,  \
                       e_, a_);                                                \
    } while (0)

#define ASSERT_EQ_STR(expected, actual)                                        \
    do {                                                                       \
        const char *e_ = (expected), *a_ = (actual);                           \
        if (a_ == NULL || strcmp(e_, a_) != 0)                                 \
            TEST_FAIL_("%s == %s: expected \"%s\", got \"%s\"", #expected,     \
                       #actual, e_, a_ ? a_ : "(null)");                       \
    } while (0)

#define ASSERT_EQ_MEM(expected, elen, actual, alen)                            \
    do {                                                                       \
        size_t el_ = (elen), al_ = (alen);                                     \
        if (el_ != al_ || memcmp((expected), (actual), el_) != 0)              \
            TEST_FAIL_("%s == %s: contents differ (%zu vs %zu bytes)",         \
                       #expected, #actual, el_, al_);                          \
    } while (0)

typedef struct TestCase {
    const char *name;
    void (*fn)(void);
} TestCase;

#define TEST_CASE(name)                                                        \
    {                                                                          \
#name, name                                                            \
    }

static inline bool test_named(const char *name, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return true;
    return argc <= 1;
}

static inline int test_main(const TestCase *cases, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const TestCase *c = cases;
        while (c->name != NULL && strcmp(argv[i], c->name) != 0)
            c++;
        if (c->name == NULL) {
            fprintf(stderr, "no test case named %s\n", argv[i]);
            return 1;
        }
    }
    int ran = 0;
    for (const TestCase *c = cases; c->name != NULL; c++) {
        if (!test_named(c->name, argc, argv))
            continue;
        c->fn();
        printf("ok %s\n", c->name);
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "no test cases\n");
        return 1;
    }
    return 0;
}

/* xorshift32: deterministic test data from a seed the test keeps. */
static inline uint32_t test_xorshift32(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

#define TEST_MAIN(cases)                                                       \
    int main(int argc, char **argv)                                            \
    {                                                                          \
        return test_main(cases, argc, argv);                                   \
    }

#endif
