/*
** resp.h -- writing commands in RESP, the Redis protocol's request form:
** `*<argc>\r\n` then `$<len>\r\n<bytes>\r\n` for each argument.
**
** Every command cachert sends goes through here (conn.c writes it straight
** into the connection's output buffer). Numbers are written by hand, with
** no printf: formatting was most of a GET's client-side cost with hiredis
** 0.14's redisFormatCommandArgv. Arguments are binary safe; the output is
** byte for byte what hiredis formats. Nothing here allocates.
*/
#ifndef CACHERT_RESP_H
#define CACHERT_RESP_H

#include <stddef.h>
#include <stdint.h>

/* Digits a uint64 takes in decimal, at most (UINT64_MAX has 20). */
#define RESP_U64_DIGITS 20

/* Bytes the command of `argc` (>= 0) arguments takes; lens[i] is argv[i]'s
** length, or with lens NULL every argument is NUL-terminated. */
size_t resp_command_len(int argc, const char *const *argv, const size_t *lens);

/* Writes that command at dst, which has room for resp_command_len() bytes;
** returns the end of what was written. */
char *resp_write_command(char *dst, int argc, const char *const *argv,
                         const size_t *lens);

/* Writes `v` in decimal at dst (room for RESP_U64_DIGITS bytes, no NUL);
** returns the end. resp_i64 adds a '-' for a negative value (room for one
** byte more). */
char *resp_u64(char *dst, uint64_t v);
char *resp_i64(char *dst, int64_t v);

#endif
