/*
** resp.c -- the RESP writer of resp.h. Two passes per command: the length
** (so the caller reserves once), then the bytes.
*/
#include "resp.h"

#include <string.h>

/* Decimal digits of v (1 for 0). */
static size_t digits(uint64_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

char *resp_u64(char *dst, uint64_t v)
{
    size_t n = digits(v);
    for (size_t i = n; i > 0; i--) {
        dst[i - 1] = (char)('0' + v % 10);
        v /= 10;
    }
    return dst + n;
}

char *resp_i64(char *dst, int64_t v)
{
    if (v >= 0)
        return resp_u64(dst, (uint64_t)v);
    *dst++ = '-';
    /* -(v + 1) + 1: INT64_MIN has no positive int64 */
    return resp_u64(dst, (uint64_t)(-(v + 1)) + 1);
}

static size_t arg_len(const char *const *argv, const size_t *lens, int i)
{
    return lens != NULL ? lens[i] : strlen(argv[i]);
}

size_t resp_command_len(int argc, const char *const *argv, const size_t *lens)
{
    size_t total = 1 + digits((uint64_t)argc) + 2; /* *<argc>\r\n */
    for (int i = 0; i < argc; i++) {
        size_t len = arg_len(argv, lens, i);
        total += 1 + digits(len) + 2 + len + 2; /* $<len>\r\n<bytes>\r\n */
    }
    return total;
}

static char *crlf(char *p)
{
    p[0] = '\r';
    p[1] = '\n';
    return p + 2;
}

char *resp_write_command(char *dst, int argc, const char *const *argv,
                         const size_t *lens)
{
    char *p = dst;
    *p++ = '*';
    p = crlf(resp_u64(p, (uint64_t)argc));
    for (int i = 0; i < argc; i++) {
        size_t len = arg_len(argv, lens, i);
        *p++ = '$';
        p = crlf(resp_u64(p, len));
        if (len > 0)
            memcpy(p, argv[i], len);
        p = crlf(p + len);
    }
    return p;
}
