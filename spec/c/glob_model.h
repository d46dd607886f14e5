/*
** glob_model.h -- a reference model of Redis's glob matching, for the C
** tests and the fuzz target to compare src/globmatch.c against.
**
** Written independently of src/globmatch.c: a direct, recursive model (one
** call per '*', trying every split). It is slow on long inputs.
*/
#ifndef CACHERT_GLOB_MODEL_H
#define CACHERT_GLOB_MODEL_H

#include <stdbool.h>
#include <stddef.h>

/* Reference matcher: a direct, recursive model of Redis's algorithm (one
** call per '*', trying every split), written independently of
** src/globmatch.c so the two can be compared. `give_up` plays the part of
** Redis's early exit: once the rest after some '*' matched no suffix, no
** longer match of an earlier '*' can succeed. */
static bool ref_match(const char *p, size_t pl, const char *s, size_t sl,
                      int nesting, bool *give_up)
{
    if (nesting > 1000)
        return false;
    while (pl > 0 && sl > 0) {
        if (*p == '*') {
            while (pl > 1 && p[1] == '*') {
                p++;
                pl--;
            }
            if (pl == 1)
                return true;
            for (; sl > 0; s++, sl--) {
                if (ref_match(p + 1, pl - 1, s, sl, nesting + 1, give_up))
                    return true;
                if (*give_up)
                    return false;
            }
            *give_up = true;
            return false;
        }
        if (*p == '[') {
            bool neg;
            bool hit = false;
            p++;
            pl--;
            neg = pl > 0 && *p == '^';
            if (neg) {
                p++;
                pl--;
            }
            while (pl > 0 && *p != ']') {
                if (*p == '\\' && pl >= 2) {
                    hit = hit || p[1] == *s;
                    p += 2;
                    pl -= 2;
                } else if (pl >= 3 && p[1] == '-') {
                    signed char a = (signed char)p[0];
                    signed char b = (signed char)p[2];
                    signed char c = (signed char)*s;
                    hit = hit ||
                          (a <= b ? (c >= a && c <= b) : (c >= b && c <= a));
                    p += 3;
                    pl -= 3;
                } else {
                    hit = hit || *p == *s;
                    p++;
                    pl--;
                }
            }
            if (hit == neg)
                return false;
            if (pl > 0) { /* step over ']' */
                p++;
                pl--;
            }
        } else if (*p == '\\' && pl >= 2) {
            if (p[1] != *s)
                return false;
            p += 2;
            pl -= 2;
        } else if (*p == '?') {
            p++;
            pl--;
        } else {
            if (*p != *s)
                return false;
            p++;
            pl--;
        }
        s++;
        sl--;
        if (sl == 0) {
            while (pl > 0 && *p == '*') {
                p++;
                pl--;
            }
        }
    }
    return pl == 0 && sl == 0;
}

static bool ref_globmatch(const char *p, size_t pl, const char *s, size_t sl)
{
    bool give_up = false;
    if (pl == 1 && p[0] == '*')
        return true;
    return ref_match(p, pl, s, sl, 0, &give_up);
}

#endif
