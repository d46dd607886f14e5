/*
** backend.h -- the one interface the engine talks to Redis through.
**
** A backend carries commands to "Redis" whatever its shape: one standalone
** server (a pool, pool.h), a primary found through Sentinel (sentinel.h),
** or a Cluster (a router over one pool per primary). The engine sees the
** same contract from each:
**
**   - backend_command() queues a command and calls back exactly once with
**     a reply or a transport failure, exactly as pool_command() (pool.h);
**   - on_state reports CR_OK when commands can be sent, a negative CR_E*
**     code with a message when they cannot (down, or could not come up);
**     the backend retries by itself, with backoff, until closed;
**   - backend_fail() is the engine telling the backend that what answers
**     must not be used (a READONLY reply: a demoted primary): reconnect,
**     rediscovering the primary where the backend knows how;
**   - keyspace-wide work (a clear's SCAN) runs once per node:
**     backend_nodes() says how many, backend_node_command() addresses
**     one; a command naming keys goes to the node that owns them.
**
** Callbacks may call any backend function; backend_close() from inside a
** callback frees the backend once the outermost callback returns.
*/
#ifndef CACHERT_BACKEND_H
#define CACHERT_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "log.h"
#include "pool.h"
#include "status.h"

typedef struct Backend Backend;

/* host:port of a Sentinel or of a Cluster seed node. */
typedef struct RedisAddr {
    const char *host;
    int port;
} RedisAddr;

typedef struct RedisConfig {
    /* The data nodes: connection settings, credentials, db, TLS. host and
    ** port are not used when sentinels are given (they are discovered). */
    PoolConfig pool;
    /* Sentinel when nsentinels > 0: the primary named sentinel_master is
    ** discovered through them (copied by backend_new). */
    const RedisAddr *sentinels;
    size_t nsentinels;
    const char *sentinel_master;
    const char *sentinel_username; /* AUTH to the sentinels, or NULL */
    const char *sentinel_password;
    /* Cluster when `cluster` is true: the slot map is read from the seed
    ** nodes (cluster_nodes, or pool.host:pool.port when ncluster_nodes is
    ** 0); pool.db must be 0. Copied by backend_new. */
    bool cluster;
    const RedisAddr *cluster_nodes;
    size_t ncluster_nodes;
    Logger log; /* where topology changes are told (the engine's) */
} RedisConfig;

typedef struct BackendVtbl {
    void (*connect)(Backend *b);
    int (*command)(Backend *b, int argc, const char **argv,
                   const size_t *argvlen, pool_reply_cb cb, void *ud);
    /* NULL for a backend of one node: node 0 takes command(). */
    size_t (*nodes)(const Backend *b);
    int (*node_command)(Backend *b, size_t node, int argc, const char **argv,
                        const size_t *argvlen, pool_reply_cb cb, void *ud);
    bool (*ready)(const Backend *b);
    void (*fail)(Backend *b, int status, const char *message);
    void (*close)(Backend *b);
    /* A Cluster's slots (NULL for a backend of one node, see below). */
    bool (*slot_ready)(const Backend *b, unsigned slot);
    void (*slot_group)(const Backend *b, bool by_node, size_t which,
                       uint8_t *bits, char *name, size_t nlen);
    void (*node_counts)(const Backend *b, size_t *known, size_t *up);
    uint64_t (*epoch)(const Backend *b);
    /* Client-side caching (tracking.h): every command sent from now on is
    ** tracked, wherever it goes. */
    bool (*tracking_ready)(const Backend *b);
} BackendVtbl;

struct Backend {
    const BackendVtbl *vt;
};

/* Creates the backend `cfg` describes (not yet connecting); on_state as
** pool_state_cb. Returns NULL when out of memory. */
Backend *backend_new(uv_loop_t *loop, const RedisConfig *cfg,
                     pool_state_cb on_state, void *ud);

/* Starts connecting; on_state reports the outcome. */
static inline void backend_connect(Backend *b)
{
    b->vt->connect(b);
}

/* As pool_command(): CR_OK and `cb` later, or an error code and no call. */
static inline int backend_command(Backend *b, int argc, const char **argv,
                                  const size_t *argvlen, pool_reply_cb cb,
                                  void *ud)
{
    return b->vt->command(b, argc, argv, argvlen, cb, ud);
}

/* Nodes a keyspace-wide command must visit (1 but for a Cluster). */
static inline size_t backend_nodes(const Backend *b)
{
    return b->vt->nodes != NULL ? b->vt->nodes(b) : 1;
}

/* A keyless command (SCAN) for node `node` < backend_nodes(); CR_EINVAL
** for a node that holds no slots now (a Cluster replica): skip it. A
** command naming keys (UNLINK) is routed by its keys as by command(). */
static inline int backend_node_command(Backend *b, size_t node, int argc,
                                       const char **argv, const size_t *argvlen,
                                       pool_reply_cb cb, void *ud)
{
    if (b->vt->node_command != NULL)
        return b->vt->node_command(b, node, argc, argv, argvlen, cb, ud);
    return node == 0 ? b->vt->command(b, argc, argv, argvlen, cb, ud)
                     : CR_EINVAL;
}

/* True when commands can be sent. */
static inline bool backend_ready(const Backend *b)
{
    return b->vt->ready(b);
}

/* As pool_fail(): drop what answers, reconnect with backoff. */
static inline void backend_fail(Backend *b, int status, const char *message)
{
    b->vt->fail(b, status, message);
}

/* -- A Cluster's slots ------------------------------------------------------
** A Cluster fails one primary at a time: its slots, not the whole
** keyspace. The engine asks which slots went with a failed command (or a
** failed node of a clear) and when they can be used again. */

/* True for a backend of many slots (a Cluster). */
static inline bool backend_has_slots(const Backend *b)
{
    return b->vt->slot_ready != NULL;
}

/* True when `slot`'s owner in the current map is connected. */
static inline bool backend_slot_ready(const Backend *b, unsigned slot)
{
    return b->vt->slot_ready(b, slot);
}

/* Sets in `bits` (SLOT_COUNT bits) every slot of the primary that owns
** slot `which` (by_node false) or of node `which` < backend_nodes() (by_node
** true): the slots that fail together. With no owner, every slot without
** one. `name` gets "host:port" (or a description) for the log. */
static inline void backend_slot_group(const Backend *b, bool by_node,
                                      size_t which, uint8_t *bits, char *name,
                                      size_t nlen)
{
    b->vt->slot_group(b, by_node, which, bits, name, nlen);
}

/* A number that changes whenever slots change owner (0 without slots). */
static inline uint64_t backend_map_epoch(const Backend *b)
{
    return b->vt->epoch != NULL ? b->vt->epoch(b) : 0;
}

/* Primaries in the current map, and how many of them are connected. */
static inline void backend_node_counts(const Backend *b, size_t *known,
                                       size_t *up)
{
    if (b->vt->node_counts != NULL) {
        b->vt->node_counts(b, known, up);
    } else {
        *known = 1;
        *up = b->vt->ready(b) ? 1 : 0;
    }
}

/* True while every command sent from now on is tracked (RedisConfig's
** pool.tracking: the pools' subscribers are subscribed and tracking is
** acknowledged, on every primary of a Cluster). */
static inline bool backend_tracking_ready(const Backend *b)
{
    return b->vt->tracking_ready(b);
}

/* As pool_close(): pending commands fail with CR_ECONNRESET first. */
static inline void backend_close(Backend *b)
{
    b->vt->close(b);
}

#endif
