/*
** sentinel_fixture.h -- a private Sentinel topology for one C test: a
** primary, a replica and three redis-sentinel processes on loopback.
**
** sentinel_fixture_start() starts the primary and the replica
** (redis_fixture.h, `--repl-diskless-sync-delay 0`, the replica with
** `--replicaof`), waits for the replica's master_link_status:up (sentinels
** started earlier see no replica for ~10 s), then starts three sentinels,
** each on a free port with a fresh config file in its own temp directory
** (`sentinel monitor mymaster 127.0.0.1 P 2`, down-after 1000 ms,
** failover-timeout 3000 ms; with a password, `requirepass` and
** `sentinel sentinel-pass`), and waits until each one sees the master, one
** replica and the two other sentinels. Processes get PR_SET_PDEATHSIG,
** are stopped by their PID only and are always reaped.
**
** The side channel is hiredis's blocking API (sentinel_fixture_command):
** the fixture and the tests ask ROLE, GET, INFO, SENTINEL ... with it,
** never through the code under test.
*/
#ifndef CACHERT_SENTINEL_FIXTURE_H
#define CACHERT_SENTINEL_FIXTURE_H

#include <stdarg.h>
#include <stdlib.h>

#include <hiredis/hiredis.h>

#include "redis_fixture.h"

#define SENTINEL_FIXTURE_COUNT    3
#define SENTINEL_FIXTURE_MASTER   "mymaster"
#define SENTINEL_FIXTURE_READY_MS 20000

typedef struct SentinelProc {
    pid_t pid; /* 0 when not running */
    int port;
    char dir[64];   /* its temp directory */
    char conf[128]; /* its config file, in dir */
} SentinelProc;

typedef struct SentinelFixture {
    RedisFixture primary;
    RedisFixture replica;
    char primary_port[16];
    SentinelProc sentinels[SENTINEL_FIXTURE_COUNT];
    const char *password; /* the sentinels' requirepass, or NULL */
} SentinelFixture;

static inline uint64_t sentinel_fixture_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Runs one command (printf-style, as redisCommand) on 127.0.0.1:port,
** AUTH first when `password` is given. Returns the reply (the caller
** frees it with freeReplyObject) or NULL when the server did not answer. */
static inline redisReply *
sentinel_fixture_command(int port, const char *password, const char *fmt, ...)
{
    struct timeval tv = {2, 0};
    redisContext *ctx = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (ctx == NULL || ctx->err) {
        redisFree(ctx);
        return NULL;
    }
    redisSetTimeout(ctx, tv);
    redisReply *r = NULL;
    if (password != NULL) {
        r = redisCommand(ctx, "AUTH %s", password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            freeReplyObject(r);
            redisFree(ctx);
            return NULL;
        }
        freeReplyObject(r);
    }
    va_list ap;
    va_start(ap, fmt);
    r = redisvCommand(ctx, fmt, ap);
    va_end(ap);
    redisFree(ctx);
    return r;
}

/* The first element of ROLE on a data node ("master", "slave"), copied
** into out; false when it did not answer. */
static inline bool sentinel_fixture_role(int port, char *out, size_t outlen)
{
    redisReply *r = sentinel_fixture_command(port, NULL, "ROLE");
    bool ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
              r->element[0]->type == REDIS_REPLY_STRING;
    if (ok)
        snprintf(out, outlen, "%s", r->element[0]->str);
    freeReplyObject(r);
    return ok;
}

/* The port sentinel `i` names for the master, or 0. */
static inline int sentinel_fixture_master_port(const SentinelFixture *sf,
                                               size_t i)
{
    redisReply *r = sentinel_fixture_command(
        sf->sentinels[i].port, sf->password,
        "SENTINEL get-master-addr-by-name " SENTINEL_FIXTURE_MASTER);
    int port = 0;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING)
        port = atoi(r->element[1]->str);
    freeReplyObject(r);
    return port;
}

/* The number of elements of `SENTINEL <what> mymaster` on sentinel i, or
** -1. */
static inline int sentinel_fixture_count(const SentinelFixture *sf, size_t i,
                                         const char *what)
{
    redisReply *r = sentinel_fixture_command(sf->sentinels[i].port,
                                             sf->password, "SENTINEL %s %s",
                                             what, SENTINEL_FIXTURE_MASTER);
    int n = r != NULL && r->type == REDIS_REPLY_ARRAY ? (int)r->elements : -1;
    freeReplyObject(r);
    return n;
}

static inline bool sentinel_fixture_link_up(int port)
{
    redisReply *r = sentinel_fixture_command(port, NULL, "INFO replication");
    bool up = r != NULL && r->type == REDIS_REPLY_STRING &&
              strstr(r->str, "master_link_status:up") != NULL;
    freeReplyObject(r);
    return up;
}

/* Stops sentinel `i` with `sig` (SIGKILL for a crash) and reaps it. */
static inline void sentinel_fixture_kill(SentinelFixture *sf, size_t i, int sig)
{
    redis_fixture_reap(&sf->sentinels[i].pid, sig);
}

/* Writes sentinel i's config file for port sp->port. */
static inline bool sentinel_fixture_write_conf(const SentinelFixture *sf,
                                               const SentinelProc *sp)
{
    FILE *f = fopen(sp->conf, "w");
    if (f == NULL)
        return false;
    fprintf(f,
            "port %d\nbind 127.0.0.1\ndaemonize no\nlogfile \"\"\n"
            "dir %s\n"
            "sentinel monitor %s 127.0.0.1 %s 2\n"
            "sentinel down-after-milliseconds %s 1000\n"
            "sentinel failover-timeout %s 3000\n",
            sp->port, sp->dir, SENTINEL_FIXTURE_MASTER, sf->primary_port,
            SENTINEL_FIXTURE_MASTER, SENTINEL_FIXTURE_MASTER);
    if (sf->password != NULL)
        fprintf(f, "requirepass %s\nsentinel sentinel-pass %s\n", sf->password,
                sf->password);
    return fclose(f) == 0;
}

/* Starts sentinel i on a free port; false when it died or stayed silent. */
static inline bool sentinel_fixture_spawn(SentinelFixture *sf, size_t i)
{
    SentinelProc *sp = &sf->sentinels[i];
    for (int tries = 0; tries < REDIS_FIXTURE_TRIES; tries++) {
        sp->port = redis_fixture_free_port();
        if (sp->port <= 0 || !sentinel_fixture_write_conf(sf, sp))
            continue;
        const char *const argv[] = {"redis-sentinel", sp->conf, NULL};
        pid_t pid = redis_fixture_exec(argv);
        if (pid < 0)
            return false;
        sp->pid = pid;
        char line[128];
        for (int waited = 0; waited < REDIS_FIXTURE_START_MS; waited += 10) {
            if (waitpid(pid, NULL, WNOHANG) == pid) {
                sp->pid = 0;
                break;
            }
            if (redis_fixture_query_port(sp->port, "PING", line, sizeof(line),
                                         500) &&
                (line[0] == '+' || line[0] == '-'))
                return true;
            redis_fixture_sleep_ms(10);
        }
        sentinel_fixture_kill(sf, i, SIGKILL);
    }
    return false;
}

/* Every running sentinel sees the master, 1 replica, 2 other sentinels. */
static inline bool sentinel_fixture_settled(const SentinelFixture *sf)
{
    for (size_t i = 0; i < SENTINEL_FIXTURE_COUNT; i++) {
        if (sf->sentinels[i].pid <= 0)
            continue;
        if (sentinel_fixture_master_port(sf, i) == 0 ||
            sentinel_fixture_count(sf, i, "replicas") != 1 ||
            sentinel_fixture_count(sf, i, "sentinels") !=
                SENTINEL_FIXTURE_COUNT - 1)
            return false;
    }
    return true;
}

static inline void sentinel_fixture_stop(SentinelFixture *sf)
{
    for (size_t i = 0; i < SENTINEL_FIXTURE_COUNT; i++) {
        SentinelProc *sp = &sf->sentinels[i];
        sentinel_fixture_kill(sf, i, SIGTERM);
        if (sp->dir[0] != '\0') {
            unlink(sp->conf);
            rmdir(sp->dir);
            sp->dir[0] = '\0';
        }
    }
    redis_fixture_stop(&sf->replica);
    redis_fixture_stop(&sf->primary);
}

/* Starts the whole topology (see the top); `password` (or NULL) is the
** sentinels' own. False, with everything stopped, when it did not settle
** within SENTINEL_FIXTURE_READY_MS. */
static inline bool sentinel_fixture_start(SentinelFixture *sf,
                                          const char *password)
{
    memset(sf, 0, sizeof(*sf));
    sf->password = password;
    static const char *const primary_args[] = {"--repl-diskless-sync-delay",
                                               "0", NULL};
    if (!redis_fixture_start(&sf->primary, primary_args))
        return false;
    snprintf(sf->primary_port, sizeof(sf->primary_port), "%d",
             sf->primary.port);
    const char *replica_args[] = {"--repl-diskless-sync-delay",
                                  "0",
                                  "--replicaof",
                                  "127.0.0.1",
                                  sf->primary_port,
                                  NULL};
    bool ok = redis_fixture_start(&sf->replica, replica_args);
    uint64_t deadline = sentinel_fixture_now_ms() + SENTINEL_FIXTURE_READY_MS;
    while (ok && !sentinel_fixture_link_up(sf->replica.port)) {
        ok = sentinel_fixture_now_ms() < deadline;
        redis_fixture_sleep_ms(20);
    }
    for (size_t i = 0; ok && i < SENTINEL_FIXTURE_COUNT; i++) {
        SentinelProc *sp = &sf->sentinels[i];
        snprintf(sp->dir, sizeof(sp->dir), "/tmp/cachert-sentinel-XXXXXX");
        ok = mkdtemp(sp->dir) != NULL;
        if (!ok) {
            sp->dir[0] = '\0';
            break;
        }
        char conf[sizeof(sp->conf)]; /* not from sp->dir into sp itself */
        snprintf(conf, sizeof(conf), "%s/sentinel.conf", sp->dir);
        memcpy(sp->conf, conf, sizeof(conf));
        ok = sentinel_fixture_spawn(sf, i);
    }
    while (ok && !sentinel_fixture_settled(sf)) {
        ok = sentinel_fixture_now_ms() < deadline;
        redis_fixture_sleep_ms(50);
    }
    if (!ok)
        sentinel_fixture_stop(sf);
    return ok;
}

#endif
