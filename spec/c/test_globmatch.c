/*
** test_globmatch.c -- globmatch() against Redis's KEYS semantics.
**
** The table below is also in spec/glob_cases.lua, whose spec replays it
** against a real redis-server; keep the two in step. Every expected value
** was checked against redis-server 7.0 (KEYS and SCAN MATCH).
*/

#include "globmatch.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "glob_model.h"
#include "test.h"

typedef struct GlobCase {
    const char *pattern;
    size_t plen;
    const char *subject;
    size_t slen;
    bool expected;
} GlobCase;

#define GLOB_CASE(p, s, e)                                                     \
    {                                                                          \
        p, sizeof(p) - 1, s, sizeof(s) - 1, e                                  \
    }

static const GlobCase glob_cases[] = {
    GLOB_CASE("", "", true),
    GLOB_CASE("a", "", false),
    GLOB_CASE("", "a", false),
    GLOB_CASE("hello", "hello", true),
    GLOB_CASE("hello", "hell", false),
    GLOB_CASE("hello", "helloo", false),
    GLOB_CASE("Hello", "hello", false),
    GLOB_CASE("*", "", true),
    GLOB_CASE("**", "", false),
    GLOB_CASE("*", "anything", true),
    GLOB_CASE("**", "x", true),
    GLOB_CASE("***", "abc", true),
    GLOB_CASE("a*", "a", true),
    GLOB_CASE("a*", "abc", true),
    GLOB_CASE("a*", "ba", false),
    GLOB_CASE("*a", "a", true),
    GLOB_CASE("*a", "ba", true),
    GLOB_CASE("*a", "ab", false),
    GLOB_CASE("a*b", "ab", true),
    GLOB_CASE("a*b", "axxxb", true),
    GLOB_CASE("a*b", "axxxbx", false),
    GLOB_CASE("a*b*c", "abc", true),
    GLOB_CASE("a*b*c", "aXbYc", true),
    GLOB_CASE("a*b*c", "acb", false),
    GLOB_CASE("*ab*cd*", "xxabyycdzz", true),
    GLOB_CASE("*ab*cd*", "xxcdyyabzz", false),
    GLOB_CASE("user:*:name", "user:42:name", true),
    GLOB_CASE("user:*:name", "user:42:email", false),
    GLOB_CASE("a**b", "ab", true),
    GLOB_CASE("*b*", "abc", true),
    GLOB_CASE("*x*", "abc", false),
    GLOB_CASE("a*a*a*b", "aaaaaaab", true),
    GLOB_CASE("a*a*a*b", "aaaaaaaa", false),
    GLOB_CASE("*aab", "aaab", true),
    GLOB_CASE("?", "", false),
    GLOB_CASE("?", "a", true),
    GLOB_CASE("?", "ab", false),
    GLOB_CASE("??", "ab", true),
    GLOB_CASE("a?c", "abc", true),
    GLOB_CASE("a?c", "ac", false),
    GLOB_CASE("*?", "a", true),
    GLOB_CASE("?*", "", false),
    GLOB_CASE("*?*", "ab", true),
    GLOB_CASE("a?", "a", false),
    GLOB_CASE("[abc]", "a", true),
    GLOB_CASE("[abc]", "c", true),
    GLOB_CASE("[abc]", "d", false),
    GLOB_CASE("[abc]", "", false),
    GLOB_CASE("[abc]", "ab", false),
    GLOB_CASE("[^abc]", "d", true),
    GLOB_CASE("[^abc]", "a", false),
    GLOB_CASE("[a-z]", "m", true),
    GLOB_CASE("[a-z]", "A", false),
    GLOB_CASE("[a-z]", "z", true),
    GLOB_CASE("[z-a]", "m", true),
    GLOB_CASE("[z-a]", "A", false),
    GLOB_CASE("[0-9a-f]", "c", true),
    GLOB_CASE("[0-9a-f]", "g", false),
    GLOB_CASE("[^a-z]", "m", false),
    GLOB_CASE("[^a-z]", "M", true),
    GLOB_CASE("x[ab]y", "xby", true),
    GLOB_CASE("[ab]*", "b", true),
    GLOB_CASE("*[ab]", "xxa", true),
    GLOB_CASE("*[ab]", "xxc", false),
    GLOB_CASE("[", "a", false),
    GLOB_CASE("[", "[", false),
    GLOB_CASE("[", "", false),
    GLOB_CASE("a[", "a", false),
    GLOB_CASE("a[", "a[", false),
    GLOB_CASE("[a", "a", true),
    GLOB_CASE("[a", "[a", false),
    GLOB_CASE("[ab", "b", true),
    GLOB_CASE("[ab", "c", false),
    GLOB_CASE("[^", "a", true),
    GLOB_CASE("[^", "", false),
    GLOB_CASE("[^", "ab", false),
    GLOB_CASE("[^a", "b", true),
    GLOB_CASE("[^a", "a", false),
    GLOB_CASE("[]", "]", false),
    GLOB_CASE("[]", "", false),
    GLOB_CASE("[]", "[]", false),
    GLOB_CASE("[]a]", "a]", false),
    GLOB_CASE("[][]", "][", false),
    GLOB_CASE("[]x", "x", false),
    GLOB_CASE("[^]", "x", true),
    GLOB_CASE("[^]", "]", true),
    GLOB_CASE("[^]", "", false),
    GLOB_CASE("[^]]", "x]", true),
    GLOB_CASE("[a-]", "a", true),
    GLOB_CASE("[a-]", "]", true),
    GLOB_CASE("[a-]", "_", true),
    GLOB_CASE("[a-]", "-", false),
    GLOB_CASE("[a-]", "b", false),
    GLOB_CASE("[a-]x", "x", true),
    GLOB_CASE("[a-]x", "ax", false),
    GLOB_CASE("[-a]", "-", true),
    GLOB_CASE("[-a]", "a", true),
    GLOB_CASE("[-a]", "b", false),
    GLOB_CASE("[a-b-c]", "-", true),
    GLOB_CASE("[--a]", "-", true),
    GLOB_CASE("[--a]", "0", true),
    GLOB_CASE("[a-", "-", true),
    GLOB_CASE("[a-", "b", false),
    GLOB_CASE("[a-b", "b", true),
    GLOB_CASE("[a-b", "c", false),
    GLOB_CASE("[\\]]", "]", true),
    GLOB_CASE("[\\]]", "\\", false),
    GLOB_CASE("[\\]", "]", true),
    GLOB_CASE("[\\]", "\\", false),
    GLOB_CASE("[\\", "\\", true),
    GLOB_CASE("[\\", "x", false),
    GLOB_CASE("[a\\", "\\", true),
    GLOB_CASE("[\\a-z]", "-", true),
    GLOB_CASE("[\\a-z]", "m", false),
    GLOB_CASE("[\\a-z]", "z", true),
    GLOB_CASE("[a-\\]", "_", true),
    GLOB_CASE("[a-\\]", "\\", true),
    GLOB_CASE("[a-\\]", "b", false),
    GLOB_CASE("[\\^a]", "^", true),
    GLOB_CASE("[a^]", "^", true),
    GLOB_CASE("[*]", "*", true),
    GLOB_CASE("[*]", "x", false),
    GLOB_CASE("[?]", "?", true),
    GLOB_CASE("[?]", "x", false),
    GLOB_CASE("[[]", "[", true),
    GLOB_CASE("[ab]]", "a]", true),
    GLOB_CASE("[ab]]", "a", false),
    GLOB_CASE("\\*", "*", true),
    GLOB_CASE("\\*", "x", false),
    GLOB_CASE("\\?", "?", true),
    GLOB_CASE("\\?", "a", false),
    GLOB_CASE("\\[a]", "[a]", true),
    GLOB_CASE("\\[a]", "a", false),
    GLOB_CASE("\\a", "a", true),
    GLOB_CASE("\\\\", "\\", true),
    GLOB_CASE("\\", "\\", true),
    GLOB_CASE("\\", "", false),
    GLOB_CASE("a\\", "a\\", true),
    GLOB_CASE("a\\", "a", false),
    GLOB_CASE("*\\*", "ab*", true),
    GLOB_CASE("*\\*", "ab", false),
    GLOB_CASE("\\**", "*abc", true),
    GLOB_CASE("\\**", "abc", false),
    GLOB_CASE("\000", "\000", true),
    GLOB_CASE("a\000b", "a\000b", true),
    GLOB_CASE("a\000b", "a", false),
    GLOB_CASE("a?b", "a\000b", true),
    GLOB_CASE("*\000", "xyz\000", true),
    GLOB_CASE("[\000]", "\000", true),
    GLOB_CASE("[^\000]", "\000", false),
    GLOB_CASE("\377", "\377", true),
    GLOB_CASE("\377*", "\377\376", true),
    GLOB_CASE("[\200-\377]", "\220", true),
    GLOB_CASE("[\200-\377]", "a", false),
    GLOB_CASE("[a-\377]", "\200", false),
    GLOB_CASE("[a-\377]", "\377", true),
    GLOB_CASE("[a-\377]", "\000", true),
    GLOB_CASE("[a-\377]", "a", true),
    GLOB_CASE("[a-\377]", "b", false),
    GLOB_CASE("[\001-\177]", "\200", false),
    GLOB_CASE("[^\001-\177]", "\200", true),
    GLOB_CASE("*", "\000\001\377", true),
    GLOB_CASE("\\\000", "\000", true),
};

/* -- Helpers ----------------------------------------------------------- */

/* ref_globmatch() comes from glob_model.h. */

static bool match_str(const char *pattern, const char *subject)
{
    return globmatch(pattern, strlen(pattern), subject, strlen(subject));
}

/* Copies `n` bytes to a heap block of exactly n bytes (never 0), so that
** ASan reports any read past the given length. */
static char *exact_copy(const char *bytes, size_t n)
{
    char *out = malloc(n > 0 ? n : 1);
    ASSERT_NOT_NULL(out);
    memcpy(out, bytes, n);
    return out;
}

static char *repeat(const char *unit, size_t times)
{
    size_t ulen = strlen(unit);
    char *out = malloc(ulen * times + 1);
    ASSERT_NOT_NULL(out);
    for (size_t i = 0; i < times; i++)
        memcpy(out + i * ulen, unit, ulen);
    out[ulen * times] = '\0';
    return out;
}

/* -- Cases ------------------------------------------------------------- */

static void test_globmatch_agrees_with_redis_on_the_case_table(void)
{
    size_t n = sizeof(glob_cases) / sizeof(glob_cases[0]);
    for (size_t i = 0; i < n; i++) {
        const GlobCase *c = &glob_cases[i];
        char *p = exact_copy(c->pattern, c->plen);
        char *s = exact_copy(c->subject, c->slen);
        bool got = globmatch(p, c->plen, s, c->slen);
        if (got != c->expected)
            TEST_FAIL_("case %zu: pattern \"%s\" subject \"%s\": expected %d",
                       i, c->pattern, c->subject, (int)c->expected);
        free(p);
        free(s);
    }
}

/* The model and the matcher both against the table (Redis's answers): a
** model that drifted would make the exhaustive test below prove nothing. */
static void test_globmatch_and_its_reference_agree_with_redis_on_the_table(void)
{
    size_t n = sizeof(glob_cases) / sizeof(glob_cases[0]);
    for (size_t i = 0; i < n; i++) {
        const GlobCase *c = &glob_cases[i];
        bool ref = ref_globmatch(c->pattern, c->plen, c->subject, c->slen);
        if (ref != c->expected)
            TEST_FAIL_("case %zu: reference disagrees with redis", i);
        if (globmatch(c->pattern, c->plen, c->subject, c->slen) != ref)
            TEST_FAIL_("case %zu: globmatch disagrees with the reference", i);
    }
}

/* Every pattern of up to 4 bytes over a small alphabet against every subject
** of up to 3 bytes: the iterative matcher must agree with the recursive
** model everywhere, not only on hand-picked cases. */
static void test_globmatch_agrees_with_recursive_reference_exhaustively(void)
{
    static const char palpha[] = "ab*?[]^-\\";
    static const char salpha[] = "ab]-\\^";
    size_t np = sizeof(palpha) - 1;
    size_t ns = sizeof(salpha) - 1;
    char p[4];
    char s[3];
    size_t checked = 0;

    for (size_t plen = 0; plen <= 4; plen++) {
        size_t pcount = 1;
        for (size_t k = 0; k < plen; k++)
            pcount *= np;
        for (size_t pi = 0; pi < pcount; pi++) {
            size_t v = pi;
            for (size_t k = 0; k < plen; k++, v /= np)
                p[k] = palpha[v % np];
            for (size_t slen = 0; slen <= 3; slen++) {
                size_t scount = 1;
                for (size_t k = 0; k < slen; k++)
                    scount *= ns;
                for (size_t si = 0; si < scount; si++) {
                    size_t w = si;
                    for (size_t k = 0; k < slen; k++, w /= ns)
                        s[k] = salpha[w % ns];
                    if (globmatch(p, plen, s, slen) !=
                        ref_globmatch(p, plen, s, slen))
                        TEST_FAIL_("pattern \"%.*s\" subject \"%.*s\"",
                                   (int)plen, p, (int)slen, s);
                    checked++;
                }
            }
        }
    }
    ASSERT_TRUE(checked > 1000000);
}

static void test_globmatch_escaped_star_matches_literal_star(void)
{
    ASSERT_TRUE(match_str("\\*", "*"));
    ASSERT_FALSE(match_str("\\*", "x"));
    ASSERT_TRUE(match_str("a\\*b", "a*b"));
    ASSERT_FALSE(match_str("a\\*b", "axxb"));
}

static void
test_globmatch_lone_star_matches_empty_subject_but_double_does_not(void)
{
    ASSERT_TRUE(globmatch("*", 1, "", 0));
    ASSERT_FALSE(globmatch("**", 2, "", 0));
    ASSERT_FALSE(globmatch("?", 1, "", 0));
    ASSERT_TRUE(globmatch("", 0, "", 0));
}

static void test_globmatch_compares_nul_bytes_like_any_other_byte(void)
{
    ASSERT_TRUE(globmatch("a\0*", 3, "a\0bc", 4));
    ASSERT_FALSE(globmatch("a\0*", 3, "a", 1));
    ASSERT_TRUE(globmatch("?\0?", 3, "x\0y", 3));
    ASSERT_FALSE(globmatch("a", 1, "a\0", 2));
    ASSERT_TRUE(globmatch("[\0-\1]", 5, "\1", 1));
}

static void test_globmatch_ranges_compare_bytes_as_signed_like_redis(void)
{
    ASSERT_TRUE(match_str("[a-\xff]", "\xff"));
    ASSERT_TRUE(match_str("[a-\xff]", "0"));
    ASSERT_FALSE(match_str("[a-\xff]", "\x80"));
    ASSERT_TRUE(match_str("[\x80-\xff]", "\xc3"));
}

static void test_globmatch_pathological_pattern_finishes_fast(void)
{
    size_t slen = 10000;
    char *subject = malloc(slen);
    const char *pattern = "a*a*a*a*a*a*a*a*a*a*a*b";
    clock_t start;
    double seconds;

    ASSERT_NOT_NULL(subject);
    memset(subject, 'a', slen);
    start = clock();
    for (int i = 0; i < 10; i++)
        ASSERT_FALSE(globmatch(pattern, strlen(pattern), subject, slen));
    seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
    ASSERT_TRUE(seconds < 1.0); /* ~10 * 10 * 10000 steps, not 10000^10 */
    subject[slen - 1] = 'b';
    ASSERT_TRUE(globmatch(pattern, strlen(pattern), subject, slen));
    free(subject);
}

/* Redis stops at 1000 nested '*' runs; the 1001st run may only end the
** pattern. Checked against redis-server 7.0. */
static void
test_globmatch_gives_up_after_a_thousand_star_groups_like_redis(void)
{
    char *subject = repeat("a", 1010);
    char *p1000 = repeat("*a", 1000);
    char *p1001 = repeat("*a", 1001);
    char *tail1001 = repeat("a*", 1001);
    char *tail1002 = repeat("a*", 1002);

    ASSERT_TRUE(globmatch(p1000, strlen(p1000), subject, 1000));
    ASSERT_TRUE(globmatch(p1000, strlen(p1000), subject, 1010));
    ASSERT_FALSE(globmatch(p1001, strlen(p1001), subject, 1001));
    ASSERT_TRUE(globmatch(tail1001, strlen(tail1001), subject, 1001));
    ASSERT_FALSE(globmatch(tail1002, strlen(tail1002), subject, 1002));
    free(subject);
    free(p1000);
    free(p1001);
    free(tail1001);
    free(tail1002);
}

static void test_globmatch_is_literal_only_without_special_bytes(void)
{
    ASSERT_TRUE(globmatch_is_literal("", 0));
    ASSERT_TRUE(globmatch_is_literal("user:42", 7));
    ASSERT_TRUE(globmatch_is_literal("a]^-b", 5));
    ASSERT_TRUE(globmatch_is_literal("a\0b", 3));
    ASSERT_FALSE(globmatch_is_literal("user:*", 6));
    ASSERT_FALSE(globmatch_is_literal("a?", 2));
    ASSERT_FALSE(globmatch_is_literal("[a]", 3));
    ASSERT_FALSE(globmatch_is_literal("a\\b", 3));
    ASSERT_FALSE(globmatch_is_literal("a\0*", 3));
}

static void test_globmatch_literal_patterns_match_only_themselves(void)
{
    size_t n = sizeof(glob_cases) / sizeof(glob_cases[0]);
    for (size_t i = 0; i < n; i++) {
        const GlobCase *c = &glob_cases[i];
        if (!globmatch_is_literal(c->pattern, c->plen))
            continue;
        bool same =
            c->plen == c->slen && memcmp(c->pattern, c->subject, c->plen) == 0;
        ASSERT_EQ_INT(same,
                      globmatch(c->pattern, c->plen, c->subject, c->slen));
    }
}

/* The literal head of a pattern: escapes resolved, up to the first
** wildcard; `whole` only when the pattern matches that one string. */
static void check_prefix(const char *pattern, const char *head, bool whole)
{
    char out[64];
    bool got_whole = !whole;
    size_t n = globmatch_prefix(pattern, strlen(pattern), out, &got_whole);
    ASSERT_EQ_MEM(head, strlen(head), out, n);
    ASSERT_EQ_INT(whole, got_whole);
}

static void test_globmatch_prefix_resolves_escapes_up_to_a_wildcard(void)
{
    check_prefix("user:42", "user:42", true);
    check_prefix("", "", true);
    check_prefix("a\\*b", "a*b", true);
    check_prefix("a\\?\\[x]", "a?[x]", true);
    check_prefix("ab\\", "ab\\", true); /* a trailing '\' is itself */
    check_prefix("ns:*", "ns:", false);
    check_prefix("n\\[1]:k?", "n[1]:k", false);
    check_prefix("[ab]c", "", false);
    check_prefix("*", "", false);
}

/* Against the matcher: a whole pattern matches its head and nothing one
** byte longer or shorter; every match of any pattern starts with its head. */
static void test_globmatch_prefix_agrees_with_the_matcher_on_the_table(void)
{
    size_t n = sizeof(glob_cases) / sizeof(glob_cases[0]);
    for (size_t i = 0; i < n; i++) {
        const GlobCase *c = &glob_cases[i];
        char head[256];
        bool whole;
        if (c->plen > sizeof(head))
            continue;
        size_t hlen = globmatch_prefix(c->pattern, c->plen, head, &whole);
        if (whole) {
            ASSERT_TRUE(globmatch(c->pattern, c->plen, head, hlen));
            bool same = c->slen == hlen && memcmp(c->subject, head, hlen) == 0;
            ASSERT_EQ_INT(same,
                          globmatch(c->pattern, c->plen, c->subject, c->slen));
        }
        if (globmatch(c->pattern, c->plen, c->subject, c->slen))
            ASSERT_TRUE(c->slen >= hlen && memcmp(c->subject, head, hlen) == 0);
    }
}

static const TestCase cases[] = {
    TEST_CASE(test_globmatch_prefix_resolves_escapes_up_to_a_wildcard),
    TEST_CASE(test_globmatch_prefix_agrees_with_the_matcher_on_the_table),
    TEST_CASE(test_globmatch_agrees_with_redis_on_the_case_table),
    TEST_CASE(test_globmatch_and_its_reference_agree_with_redis_on_the_table),
    TEST_CASE(test_globmatch_agrees_with_recursive_reference_exhaustively),
    TEST_CASE(test_globmatch_escaped_star_matches_literal_star),
    TEST_CASE(
        test_globmatch_lone_star_matches_empty_subject_but_double_does_not),
    TEST_CASE(test_globmatch_compares_nul_bytes_like_any_other_byte),
    TEST_CASE(test_globmatch_ranges_compare_bytes_as_signed_like_redis),
    TEST_CASE(test_globmatch_pathological_pattern_finishes_fast),
    TEST_CASE(test_globmatch_gives_up_after_a_thousand_star_groups_like_redis),
    TEST_CASE(test_globmatch_is_literal_only_without_special_bytes),
    TEST_CASE(test_globmatch_literal_patterns_match_only_themselves),
    {NULL, NULL},
};

TEST_MAIN(cases)
