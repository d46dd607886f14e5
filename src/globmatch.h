/*
** globmatch.h -- Redis-compatible glob matching (KEYS / SCAN MATCH).
**
** Syntax, with exactly Redis's semantics:
**   *        any run of bytes, including none
**   ?        exactly one byte
**   [abc]    one byte from the set;  [^abc] one byte not in the set
**   [a-z]    a range (reversed ranges such as [z-a] are accepted)
**   \x       the byte x literally (also inside [...])
** Everything is byte-wise and binary safe: both inputs carry explicit
** lengths and may contain NUL bytes.
*/
#ifndef CACHERT_GLOBMATCH_H
#define CACHERT_GLOBMATCH_H

#include <stdbool.h>
#include <stddef.h>

/* Returns true when `str` (slen bytes) matches `pattern` (plen bytes).
** Runs in O(plen * slen) time and O(1) stack, whatever the pattern. */
bool globmatch(const char *pattern, size_t plen, const char *str, size_t slen);

/* Returns true when `pattern` matches only itself (no *, ?, [ or \), so a
** caller can answer it with one lookup instead of a scan. */
bool globmatch_is_literal(const char *pattern, size_t plen);

/* Writes to `out` (room for plen bytes) the bytes every match of `pattern`
** starts with: its literal head, escapes resolved, up to the first *, ? or
** [. Returns its length; *whole says whether that is the whole pattern,
** i.e. the pattern matches exactly that one string (e.g. "user\\*1" matches
** only "user*1"). */
size_t globmatch_prefix(const char *pattern, size_t plen, char *out,
                        bool *whole);

#endif
