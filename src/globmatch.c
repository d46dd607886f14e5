/*
** globmatch.c -- Redis-compatible glob matching, written from scratch.
**
** Every token of a pattern other than `*` (a byte, `?`, `\x` or a bracket
** class) consumes exactly one subject byte, and how many pattern bytes it
** spans depends only on the pattern. For such patterns a greedy scan that
** remembers only the most recent `*` is exact: if the rest after a later `*`
** matches no suffix, letting an earlier `*` swallow more cannot help. So the
** matcher runs in O(plen * slen) time and O(1) space, with no recursion.
**
** Redis behaviours reproduced on purpose (checked against redis-server 7.0
** on x86-64; spec/glob_cases.lua holds the cases):
**   - an empty subject matches only the empty pattern, except that the
**     pattern "*" alone matches everything (KEYS and SCAN special-case it;
**     "**" does not match "");
**   - range bounds and the subject byte compare as *signed* chars, so
**     [a-\xff] is the range \xff..a and matches \x00 but not \x80;
**   - an unterminated class ends the pattern: "[ab" matches "a" or "b";
**     a range may swallow the `]`, so "[a-]" is the range ]..a, unclosed;
**   - a `\` at the very end of the pattern, or of an unclosed class, is a
**     literal backslash;
**   - Redis gives up (no match) once its recursion passes 1000 nested `*`
**     groups, i.e. when the 1001st run of `*` is followed by more pattern.
*/

#include "globmatch.h"

/* Redis stops matching beyond this many nested runs of '*'. */
#define GLOBMATCH_MAX_STAR_GROUPS 1000

/* -- Tokens ------------------------------------------------------------ */

/* Compares like Redis on a platform where char is signed. */
static int sbyte(char c)
{
    return (int)(signed char)c;
}

/* Matches byte `c` against the class starting at pattern[i] == '['. Stores
** in *next the index just past the class: after its ']', or plen when the
** class is never closed. */
static bool class_matches(const char *pattern, size_t plen, size_t i, char c,
                          size_t *next)
{
    bool negate = false;
    bool hit = false;

    i++; /* skip '[' */
    if (i < plen && pattern[i] == '^') {
        negate = true;
        i++;
    }
    for (;;) {
        if (i >= plen) {
            *next = plen; /* unterminated: the class ends the pattern */
            break;
        }
        if (pattern[i] == '\\' && i + 1 < plen) {
            hit |= pattern[i + 1] == c;
            i += 2;
        } else if (pattern[i] == ']') {
            *next = i + 1;
            break;
        } else if (i + 2 < plen && pattern[i + 1] == '-') {
            int lo = sbyte(pattern[i]);
            int hi = sbyte(pattern[i + 2]);
            if (lo > hi) {
                int t = lo;
                lo = hi;
                hi = t;
            }
            hit |= sbyte(c) >= lo && sbyte(c) <= hi;
            i += 3;
        } else {
            hit |= pattern[i] == c;
            i++;
        }
    }
    return hit != negate;
}

/* Matches one non-star token at pattern[i] against byte `c`; stores the
** index just past the token in *next. */
static bool token_matches(const char *pattern, size_t plen, size_t i, char c,
                          size_t *next)
{
    switch (pattern[i]) {
    case '?':
        *next = i + 1;
        return true;
    case '[':
        return class_matches(pattern, plen, i, c, next);
    case '\\':
        if (i + 1 < plen) {
            *next = i + 2;
            return pattern[i + 1] == c;
        }
        break; /* trailing backslash: a literal '\' */
    default:
        break;
    }
    *next = i + 1;
    return pattern[i] == c;
}

/* Returns the index just past the non-star token at pattern[i]. */
static size_t token_end(const char *pattern, size_t plen, size_t i)
{
    size_t next;
    (void)token_matches(pattern, plen, i, '\0', &next);
    return next;
}

/* True when Redis's recursion limit would reject every subject: the
** (GLOBMATCH_MAX_STAR_GROUPS + 1)th run of '*' has more pattern after it.
** Runs once per call; O(plen). */
static bool too_many_stars(const char *pattern, size_t plen)
{
    size_t groups = 0;
    size_t i = 0;

    while (i < plen) {
        if (pattern[i] != '*') {
            i = token_end(pattern, plen, i);
            continue;
        }
        while (i < plen && pattern[i] == '*')
            i++;
        if (++groups > GLOBMATCH_MAX_STAR_GROUPS)
            return i < plen;
    }
    return false;
}

/* -- Public API -------------------------------------------------------- */

bool globmatch(const char *pattern, size_t plen, const char *str, size_t slen)
{
    size_t p = 0;
    size_t s = 0;
    size_t star_p = 0; /* pattern index just after the last '*' run */
    size_t star_s = 0; /* subject index that run currently stops at */
    bool have_star = false;

    if (plen == 1 && pattern[0] == '*')
        return true; /* Redis's "match everything", even "" */
    if (slen == 0)
        return plen == 0; /* Redis never lets '*' match an empty subject */
    if (too_many_stars(pattern, plen))
        return false;

    while (s < slen) {
        if (p < plen && pattern[p] == '*') {
            while (p < plen && pattern[p] == '*')
                p++;
            if (p == plen)
                return true; /* a trailing '*' takes the rest */
            have_star = true;
            star_p = p;
            star_s = s;
            continue;
        }
        if (p < plen) {
            size_t next;
            if (token_matches(pattern, plen, p, str[s], &next)) {
                p = next;
                s++;
                continue;
            }
        }
        if (!have_star)
            return false;
        /* Let the last '*' take one more byte and retry the rest. */
        p = star_p;
        s = ++star_s;
    }
    while (p < plen && pattern[p] == '*')
        p++;
    return p == plen;
}

bool globmatch_is_literal(const char *pattern, size_t plen)
{
    for (size_t i = 0; i < plen; i++) {
        switch (pattern[i]) {
        case '*':
        case '?':
        case '[':
        case '\\':
            return false;
        default:
            break;
        }
    }
    return true;
}

size_t globmatch_prefix(const char *pattern, size_t plen, char *out,
                        bool *whole)
{
    size_t n = 0;
    for (size_t i = 0; i < plen; i++) {
        char c = pattern[i];
        if (c == '*' || c == '?' || c == '[') {
            *whole = false;
            return n;
        }
        if (c == '\\' && i + 1 < plen) /* a trailing '\' is itself */
            c = pattern[++i];
        out[n++] = c;
    }
    *whole = true;
    return n;
}
