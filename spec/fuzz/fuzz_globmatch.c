/*
** fuzz_globmatch.c -- libFuzzer target for globmatch().
**
** Input: the first byte chooses the pattern length (modulo what is left),
** the pattern follows, and the remaining bytes are the subject. Both are
** copied into heap blocks of exactly their length, so ASan reports any read
** past them. Small inputs are also checked against a recursive model of
** Redis's algorithm, and globmatch_prefix() against the matcher; any
** disagreement traps.
*/

#include "globmatch.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "glob_model.h"

#define REF_MAX_LEN 64 /* the reference can be slow on long inputs */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t rest;
    size_t plen;
    size_t slen;
    char *pattern;
    char *subject;
    bool got;

    if (size == 0)
        return 0;
    rest = size - 1;
    plen = data[0] % (rest + 1);
    slen = rest - plen;
    pattern = malloc(plen > 0 ? plen : 1);
    subject = malloc(slen > 0 ? slen : 1);
    if (pattern == NULL || subject == NULL) {
        free(pattern);
        free(subject);
        return 0;
    }
    if (plen > 0)
        memcpy(pattern, data + 1, plen);
    if (slen > 0)
        memcpy(subject, data + 1 + plen, slen);

    got = globmatch(pattern, plen, subject, slen);
    if (globmatch_is_literal(pattern, plen)) {
        bool same = plen == slen && memcmp(pattern, subject, plen) == 0;
        if (got != same)
            __builtin_trap();
    }
    if (plen < REF_MAX_LEN && slen < REF_MAX_LEN &&
        got != ref_globmatch(pattern, plen, subject, slen))
        __builtin_trap();

    /* globmatch_prefix: every match starts with the head; a whole pattern
    ** matches its head, and only it. */
    char *head = malloc(plen > 0 ? plen : 1);
    if (head != NULL) {
        bool whole;
        size_t hlen = globmatch_prefix(pattern, plen, head, &whole);
        if (got && (slen < hlen || memcmp(subject, head, hlen) != 0))
            __builtin_trap();
        if (whole && !globmatch(pattern, plen, head, hlen))
            __builtin_trap();
        if (whole && got != (slen == hlen && memcmp(subject, head, hlen) == 0))
            __builtin_trap();
        free(head);
    }

    free(pattern);
    free(subject);
    return 0;
}
