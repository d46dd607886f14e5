/*
** backend.c -- backend_new() (Sentinel when sentinels are given:
** sentinel.h; Cluster when cluster is set: cluster.h) and the standalone
** backend: one pool.
*/
#include "backend.h"

#include <stdlib.h>

#include "cluster.h"
#include "sentinel.h"

typedef struct Standalone {
    Backend base;
    Pool *pool;
} Standalone;

static Pool *pool_of(const Backend *b)
{
    return ((const Standalone *)b)->pool;
}

static void standalone_connect(Backend *b)
{
    pool_connect(pool_of(b));
}

static int standalone_command(Backend *b, int argc, const char **argv,
                              const size_t *argvlen, pool_reply_cb cb, void *ud)
{
    return pool_command(pool_of(b), argc, argv, argvlen, cb, ud);
}

static bool standalone_ready(const Backend *b)
{
    return pool_ready(pool_of(b));
}

static bool standalone_tracking_ready(const Backend *b)
{
    return pool_tracking_ready(pool_of(b));
}

static void standalone_fail(Backend *b, int status, const char *message)
{
    pool_fail(pool_of(b), status, message);
}

/* The pool frees itself once its handles are closed. The wrapper goes
** right after pool_close() has run the pending callbacks (which may still
** call the backend); nothing keeps a pointer to it afterwards (the engine
** forgets its backend when closing it, and the pool never points back). */
static void standalone_close(Backend *b)
{
    pool_close(pool_of(b));
    free(b);
}

static const BackendVtbl standalone_vtbl = {
    .connect = standalone_connect,
    .command = standalone_command, /* one node: no nodes / node_command */
    .ready = standalone_ready,
    .fail = standalone_fail,
    .close = standalone_close,
    .tracking_ready = standalone_tracking_ready,
};

Backend *backend_new(uv_loop_t *loop, const RedisConfig *cfg,
                     pool_state_cb on_state, void *ud)
{
    if (cfg->nsentinels > 0)
        return sentinel_new(loop, cfg, on_state, ud);
    if (cfg->cluster)
        return cluster_new(loop, cfg, on_state, ud);
    Standalone *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->base.vt = &standalone_vtbl;
    s->pool = pool_new(loop, &cfg->pool, on_state, ud);
    if (s->pool == NULL) {
        free(s);
        return NULL;
    }
    return &s->base;
}
