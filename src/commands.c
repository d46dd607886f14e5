/*
** commands.c -- the builders of commands.h. Words are literals whose
** length is known at compile time (LIT), numbers are written by resp.h:
** building a command costs no strlen or printf.
*/
#include "commands.h"

#include <string.h>

#include "resp.h"

static void arg(RedisCmd *c, const char *s, size_t len)
{
    c->argv[c->argc] = s;
    c->lens[c->argc++] = len;
}

/* A NUL-terminated argument of unknown length (a caller's name or
** password). */
static void word(RedisCmd *c, const char *s)
{
    arg(c, s, strlen(s));
}

/* A string literal, its length counted by the compiler. */
#define LIT(c, s) arg((c), "" s, sizeof(s) - 1)

#define START(c, name) ((c)->argc = 0, LIT((c), name))

/* A number argument, in the RedisCmd's own digits (one per command). */
static void num_u64(RedisCmd *c, uint64_t v)
{
    arg(c, c->num, (size_t)(resp_u64(c->num, v) - c->num));
}

static void num_i64(RedisCmd *c, int64_t v)
{
    arg(c, c->num, (size_t)(resp_i64(c->num, v) - c->num));
}

void cmd_get(RedisCmd *c, const char *key, size_t klen)
{
    START(c, "GET");
    arg(c, key, klen);
}

void cmd_exists(RedisCmd *c, const char *key, size_t klen)
{
    START(c, "EXISTS");
    arg(c, key, klen);
}

void cmd_lock(RedisCmd *c, const char *key, size_t klen, const char *token,
              size_t tlen, uint64_t ttl_ms)
{
    START(c, "SET");
    arg(c, key, klen);
    arg(c, token, tlen);
    LIT(c, "NX");
    LIT(c, "PX");
    num_u64(c, ttl_ms);
}

void cmd_unlock(RedisCmd *c, const char *key, size_t klen, const char *token,
                size_t tlen)
{
    START(c, "EVAL");
    LIT(c, "if redis.call('get', KEYS[1]) == ARGV[1] then "
           "return redis.call('del', KEYS[1]) else return 0 end");
    LIT(c, "1");
    arg(c, key, klen);
    arg(c, token, tlen);
}

void cmd_pttl(RedisCmd *c, const char *key, size_t klen)
{
    START(c, "PTTL");
    arg(c, key, klen);
}

void cmd_unlink(RedisCmd *c, const char *key, size_t klen)
{
    START(c, "UNLINK");
    arg(c, key, klen);
}

void cmd_set(RedisCmd *c, const char *key, size_t klen, const char *val,
             size_t vlen, uint64_t ttl_ms)
{
    START(c, "SET");
    arg(c, key, klen);
    arg(c, val, vlen);
    if (ttl_ms > 0) {
        LIT(c, "PX");
        num_u64(c, ttl_ms);
    }
}

void cmd_set_probe(RedisCmd *c, const char *key, size_t klen)
{
    START(c, "SET");
    arg(c, key, klen);
    arg(c, "", 0);
    LIT(c, "XX");
    LIT(c, "PX");
    LIT(c, "1");
}

void cmd_scan(RedisCmd *c, const char *cursor, const char *count,
              const char *match, size_t mlen)
{
    START(c, "SCAN");
    word(c, cursor);
    LIT(c, "COUNT");
    word(c, count);
    if (match != NULL) {
        LIT(c, "MATCH");
        arg(c, match, mlen);
    }
}

void cmd_unlink_head(const char **argv, size_t *argvlen)
{
    argv[0] = "UNLINK";
    argvlen[0] = 6;
}

void cmd_auth(RedisCmd *c, const char *user, const char *password)
{
    START(c, "AUTH");
    if (user != NULL)
        word(c, user);
    word(c, password);
}

void cmd_select(RedisCmd *c, int db)
{
    START(c, "SELECT");
    num_i64(c, db);
}

void cmd_ping(RedisCmd *c)
{
    START(c, "PING");
}

void cmd_role(RedisCmd *c)
{
    START(c, "ROLE");
}

void cmd_sentinel_master_addr(RedisCmd *c, const char *name)
{
    START(c, "SENTINEL");
    LIT(c, "get-master-addr-by-name");
    word(c, name);
}

void cmd_client_id(RedisCmd *c)
{
    START(c, "CLIENT");
    LIT(c, "ID");
}

void cmd_tracking(RedisCmd *c, long long redirect, const char *prefix,
                  size_t plen)
{
    START(c, "CLIENT");
    LIT(c, "TRACKING");
    LIT(c, "on");
    LIT(c, "REDIRECT");
    num_i64(c, redirect);
    if (plen > 0) {
        LIT(c, "BCAST");
        LIT(c, "PREFIX");
        arg(c, prefix, plen);
    }
}

void cmd_subscribe(RedisCmd *c, const char *const *channels, int n)
{
    START(c, "SUBSCRIBE");
    for (int i = 0; i < n && c->argc < CMD_MAX_ARGS; i++)
        word(c, channels[i]);
}

void cmd_cluster_slots(RedisCmd *c)
{
    START(c, "CLUSTER");
    LIT(c, "SLOTS");
}

void cmd_asking(RedisCmd *c)
{
    START(c, "ASKING");
}

void cmd_info(RedisCmd *c, const char *section)
{
    START(c, "INFO");
    if (section != NULL)
        word(c, section);
}
