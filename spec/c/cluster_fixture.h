/*
** cluster_fixture.h -- a private Redis Cluster for one C test: 6 nodes on
** loopback, 3 primaries with one replica each.
**
** cluster_fixture_start() starts six redis-server processes through
** redis_fixture.h (so each has PR_SET_PDEATHSIG, is stopped by its PID
** only and always reaped), each on a free data port and a free bus port
** (`--cluster-port`: the default, port + 10000, may be taken or out of
** range) with `--cluster-node-timeout 1000 --repl-diskless-sync-delay 0
** --repl-ping-replica-period 1` and its own temp directory for nodes.conf
** (and a replica's dump.rdb). Then `redis-cli --cluster create ...
** --cluster-replicas 1 --cluster-yes` joins them, and the fixture waits
** until every node says cluster_state:ok and lists 6 online nodes in
** CLUSTER SHARDS (2.5-3.5 s on an idle machine; see
** shared/redis-topologies.md). cluster_fixture_stop() stops every node
** and removes the directories.
**
** The side channel is hiredis's blocking API (cluster_fixture_command),
** never the code under test.
*/
#ifndef CACHERT_CLUSTER_FIXTURE_H
#define CACHERT_CLUSTER_FIXTURE_H

#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>

#include <hiredis/hiredis.h>

#include "redis_fixture.h"

#define CLUSTER_FIXTURE_NODES     6
#define CLUSTER_FIXTURE_PRIMARIES 3
#define CLUSTER_FIXTURE_CREATE_MS 30000 /* redis-cli --cluster create */
#define CLUSTER_FIXTURE_READY_MS  30000 /* after it: state ok, all online */

typedef struct ClusterNode {
    RedisFixture fx; /* fx.extra points into this struct */
    char bus_port[16];
    char dir[64]; /* its temp directory, "" when none */
} ClusterNode;

/* Must not move while running: each node's arguments point into it. */
typedef struct ClusterFixture {
    ClusterNode nodes[CLUSTER_FIXTURE_NODES];
    uint64_t create_ms; /* from the first spawn to the end of create */
    uint64_t ready_ms;  /* from the first spawn to ready */
} ClusterFixture;

static inline uint64_t cluster_fixture_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Runs one command (printf-style, as redisCommand: %b for binary keys)
** on 127.0.0.1:port. Returns the reply (the caller frees it with
** freeReplyObject) or NULL when the node did not answer. */
static inline redisReply *cluster_fixture_command(int port, const char *fmt,
                                                  ...)
{
    struct timeval tv = {2, 0};
    redisContext *ctx = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (ctx == NULL || ctx->err) {
        redisFree(ctx);
        return NULL;
    }
    redisSetTimeout(ctx, tv);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(ctx, fmt, ap);
    va_end(ap);
    redisFree(ctx);
    return r;
}

/* The value of `field` in a flat RESP2 array of key, value pairs (the
** shape of CLUSTER SHARDS entries), or NULL. */
static inline const redisReply *cluster_fixture_field(const redisReply *r,
                                                      const char *field)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[i]->str, field) == 0)
            return r->element[i + 1];
    return NULL;
}

/* The number of nodes with health "online" in CLUSTER SHARDS on `port`,
** or -1 when it did not answer. */
static inline int cluster_fixture_online(int port)
{
    redisReply *r = cluster_fixture_command(port, "CLUSTER SHARDS");
    int online = -1;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY) {
        online = 0;
        for (size_t s = 0; s < r->elements; s++) {
            const redisReply *nodes =
                cluster_fixture_field(r->element[s], "nodes");
            for (size_t n = 0;
                 nodes != NULL && nodes->type == REDIS_REPLY_ARRAY &&
                 n < nodes->elements;
                 n++) {
                const redisReply *h =
                    cluster_fixture_field(nodes->element[n], "health");
                if (h != NULL && h->type == REDIS_REPLY_STRING &&
                    strcmp(h->str, "online") == 0)
                    online++;
            }
        }
    }
    freeReplyObject(r);
    return online;
}

/* Every node says cluster_state:ok and sees all 6 nodes online. */
static inline bool cluster_fixture_ready(const ClusterFixture *cf)
{
    for (size_t i = 0; i < CLUSTER_FIXTURE_NODES; i++) {
        int port = cf->nodes[i].fx.port;
        redisReply *r = cluster_fixture_command(port, "CLUSTER INFO");
        bool ok = r != NULL && r->type == REDIS_REPLY_STRING &&
                  strstr(r->str, "cluster_state:ok") != NULL;
        freeReplyObject(r);
        if (!ok || cluster_fixture_online(port) != CLUSTER_FIXTURE_NODES)
            return false;
    }
    return true;
}

/* Removes a node's directory and the files the server left in it. */
static inline void cluster_fixture_remove_dir(ClusterNode *node)
{
    if (node->dir[0] == '\0')
        return;
    DIR *d = opendir(node->dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[sizeof(node->dir) + 256];
        snprintf(path, sizeof(path), "%s/%s", node->dir, e->d_name);
        unlink(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(node->dir);
    node->dir[0] = '\0';
}

/* Stops every node by its PID and removes its directory. Safe to call
** twice and after a failed start. */
static inline void cluster_fixture_stop(ClusterFixture *cf)
{
    for (size_t i = 0; i < CLUSTER_FIXTURE_NODES; i++) {
        redis_fixture_stop(&cf->nodes[i].fx);
        cluster_fixture_remove_dir(&cf->nodes[i]);
    }
}

/* Starts `node` in a fresh directory on free data and bus ports. */
static inline bool cluster_fixture_spawn(ClusterNode *node)
{
    snprintf(node->dir, sizeof(node->dir), "/tmp/cachert-cluster-XXXXXX");
    if (mkdtemp(node->dir) == NULL) {
        node->dir[0] = '\0';
        return false;
    }
    RedisFixture *fx = &node->fx;
    const char **x = fx->extra;
    size_t n = 0;
    x[n++] = "--cluster-enabled";
    x[n++] = "yes";
    x[n++] = "--cluster-port";
    x[n++] = node->bus_port; /* filled in below, per try */
    x[n++] = "--cluster-config-file";
    x[n++] = "nodes.conf"; /* relative to --dir */
    x[n++] = "--dir";
    x[n++] = node->dir;
    x[n++] = "--cluster-node-timeout";
    x[n++] = "1000";
    x[n++] = "--repl-diskless-sync-delay";
    x[n++] = "0";
    x[n++] = "--repl-ping-replica-period";
    x[n++] = "1";
    x[n] = NULL;
    for (int tries = 0; tries < REDIS_FIXTURE_TRIES; tries++) {
        fx->port = redis_fixture_free_port();
        int bus = redis_fixture_free_port();
        if (fx->port <= 0 || bus <= 0 || bus == fx->port)
            continue;
        snprintf(node->bus_port, sizeof(node->bus_port), "%d", bus);
        if (redis_fixture_spawn(fx))
            return true;
    }
    return false;
}

/* Runs `redis-cli --cluster create <6 nodes> --cluster-replicas 1
** --cluster-yes` and waits (bounded) for it to exit 0. */
static inline bool cluster_fixture_create(ClusterFixture *cf)
{
    char addrs[CLUSTER_FIXTURE_NODES][32];
    const char *argv[CLUSTER_FIXTURE_NODES + 8];
    int argc = 0;
    argv[argc++] = "redis-cli";
    argv[argc++] = "--cluster";
    argv[argc++] = "create";
    for (size_t i = 0; i < CLUSTER_FIXTURE_NODES; i++) {
        snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%d",
                 cf->nodes[i].fx.port);
        argv[argc++] = addrs[i];
    }
    argv[argc++] = "--cluster-replicas";
    argv[argc++] = "1";
    argv[argc++] = "--cluster-yes";
    argv[argc] = NULL;

    pid_t pid = redis_fixture_exec(argv);
    if (pid < 0)
        return false;
    int status = 0;
    for (int waited = 0; waited < CLUSTER_FIXTURE_CREATE_MS; waited += 10) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) && WEXITSTATUS(status) == 0;
        redis_fixture_sleep_ms(10);
    }
    redis_fixture_reap(&pid, SIGKILL);
    return false;
}

/* Starts the whole cluster (see the top). False, with everything stopped,
** when a node did not start or the cluster was not ready within
** CLUSTER_FIXTURE_READY_MS. */
static inline bool cluster_fixture_start(ClusterFixture *cf)
{
    memset(cf, 0, sizeof(*cf));
    uint64_t t0 = cluster_fixture_now_ms();
    bool ok = true;
    for (size_t i = 0; ok && i < CLUSTER_FIXTURE_NODES; i++)
        ok = cluster_fixture_spawn(&cf->nodes[i]);
    ok = ok && cluster_fixture_create(cf);
    cf->create_ms = cluster_fixture_now_ms() - t0;
    uint64_t deadline = cluster_fixture_now_ms() + CLUSTER_FIXTURE_READY_MS;
    while (ok && !cluster_fixture_ready(cf)) {
        ok = cluster_fixture_now_ms() < deadline;
        redis_fixture_sleep_ms(50);
    }
    cf->ready_ms = cluster_fixture_now_ms() - t0;
    if (!ok)
        cluster_fixture_stop(cf);
    return ok;
}

#endif
