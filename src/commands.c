/*
** commands.c -- the builders of commands.h.
*/
#include "commands.h"

#include <stdio.h>
#include <string.h>

static void arg(RedisCmd *c, const char *s, size_t len)
{
    c->argv[c->argc] = s;
    c->lens[c->argc++] = len;
}

static void word(RedisCmd *c, const char *s)
{
    arg(c, s, strlen(s));
}

static void start(RedisCmd *c, const char *name)
{
    c->argc = 0;
    word(c, name);
}

void cmd_get(RedisCmd *c, const char *key, size_t klen)
{
    start(c, "GET");
    arg(c, key, klen);
}

void cmd_exists(RedisCmd *c, const char *key, size_t klen)
{
    start(c, "EXISTS");
    arg(c, key, klen);
}

void cmd_lock(RedisCmd *c, const char *key, size_t klen, const char *token,
              size_t tlen, uint64_t ttl_ms)
{
    start(c, "SET");
    arg(c, key, klen);
    arg(c, token, tlen);
    word(c, "NX");
    word(c, "PX");
    snprintf(c->num, sizeof(c->num), "%llu", (unsigned long long)ttl_ms);
    word(c, c->num);
}

void cmd_unlock(RedisCmd *c, const char *key, size_t klen, const char *token,
                size_t tlen)
{
    start(c, "EVAL");
    word(c, "if redis.call('get', KEYS[1]) == ARGV[1] then "
            "return redis.call('del', KEYS[1]) else return 0 end");
    word(c, "1");
    arg(c, key, klen);
    arg(c, token, tlen);
}

void cmd_pttl(RedisCmd *c, const char *key, size_t klen)
{
    start(c, "PTTL");
    arg(c, key, klen);
}

void cmd_unlink(RedisCmd *c, const char *key, size_t klen)
{
    start(c, "UNLINK");
    arg(c, key, klen);
}

void cmd_set(RedisCmd *c, const char *key, size_t klen, const char *val,
             size_t vlen, uint64_t ttl_ms)
{
    start(c, "SET");
    arg(c, key, klen);
    arg(c, val, vlen);
    if (ttl_ms > 0) {
        word(c, "PX");
        snprintf(c->num, sizeof(c->num), "%llu", (unsigned long long)ttl_ms);
        word(c, c->num);
    }
}

void cmd_set_probe(RedisCmd *c, const char *key, size_t klen)
{
    start(c, "SET");
    arg(c, key, klen);
    arg(c, "", 0);
    word(c, "XX");
    word(c, "PX");
    word(c, "1");
}

void cmd_scan(RedisCmd *c, const char *cursor, const char *count,
              const char *match, size_t mlen)
{
    start(c, "SCAN");
    word(c, cursor);
    word(c, "COUNT");
    word(c, count);
    if (match != NULL) {
        word(c, "MATCH");
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
    start(c, "AUTH");
    if (user != NULL)
        word(c, user);
    word(c, password);
}

void cmd_select(RedisCmd *c, int db)
{
    start(c, "SELECT");
    snprintf(c->num, sizeof(c->num), "%d", db);
    word(c, c->num);
}

void cmd_ping(RedisCmd *c)
{
    start(c, "PING");
}

void cmd_role(RedisCmd *c)
{
    start(c, "ROLE");
}

void cmd_sentinel_master_addr(RedisCmd *c, const char *name)
{
    start(c, "SENTINEL");
    word(c, "get-master-addr-by-name");
    word(c, name);
}

void cmd_client_id(RedisCmd *c)
{
    start(c, "CLIENT");
    word(c, "ID");
}

void cmd_tracking(RedisCmd *c, long long redirect, const char *prefix,
                  size_t plen)
{
    start(c, "CLIENT");
    word(c, "TRACKING");
    word(c, "on");
    word(c, "REDIRECT");
    snprintf(c->num, sizeof(c->num), "%lld", redirect);
    word(c, c->num);
    if (plen > 0) {
        word(c, "BCAST");
        word(c, "PREFIX");
        arg(c, prefix, plen);
    }
}

void cmd_subscribe(RedisCmd *c, const char *const *channels, int n)
{
    start(c, "SUBSCRIBE");
    for (int i = 0; i < n && c->argc < CMD_MAX_ARGS; i++)
        word(c, channels[i]);
}

void cmd_cluster_slots(RedisCmd *c)
{
    start(c, "CLUSTER");
    word(c, "SLOTS");
}

void cmd_asking(RedisCmd *c)
{
    start(c, "ASKING");
}
