/*
** cluster.h -- the Redis Cluster backend (backend.h): a router over one
** auto-pipelined pool per primary.
**
** The slot map comes from CLUSTER SLOTS, asked of a seed (the configured
** nodes) and then of any connected node. A command goes to the pool of its
** key's slot owner (slot.h), so the commands of one loop turn leave in one
** write per node. Replies redirect: MOVED updates the map at once and asks
** for a fresh one; ASK sends ASKING + the command to the importing node
** (that command only); TRYAGAIN retries after CLUSTER_TRYAGAIN_MS; at most
** CLUSTER_MAX_REDIRECTS per command, then it fails with CR_ECLUSTERDOWN.
** CLUSTERDOWN, an unreachable owner or a slot without one fail the command
** with a transport status (CR_ECLUSTERDOWN, CR_ECONNRESET, ...): the engine
** serves that primary's slots from memory (backend_slot_group) until
** backend_slot_ready says they are back, while every other slot stays on
** Redis. A command for a node still connecting waits for its handshake.
** UNLINK of many keys is split by slot (CROSSSLOT otherwise) and its
** integer replies summed.
**
** on_state: an error only while no map was ever loaded (every seed down or
** refusing) or no primary of the first map answers; CR_OK once a map is
** loaded and every primary in it has connected or failed (at least one
** connected: those down are a partial outage), and again whenever a
** primary connects or the map changes (slots may be usable again). Losing a
*primary after that
** is never a whole-backend outage: the pools reconnect by themselves and
** the map is asked again (every CLUSTER_REFRESH_MS while a primary is down
** or a slot has no owner) until the cluster has promoted a replica.
*/
#ifndef CACHERT_CLUSTER_H
#define CACHERT_CLUSTER_H

#include "backend.h"

#define CLUSTER_MAX_REDIRECTS 5
#define CLUSTER_TRYAGAIN_MS   25
#define CLUSTER_REFRESH_MS    200

/* A Cluster backend for `cfg` (cfg->cluster true); NULL when out of
** memory. Seeds: cfg->cluster_nodes, else cfg->pool.host:port. */
Backend *cluster_new(uv_loop_t *loop, const RedisConfig *cfg,
                     pool_state_cb on_state, void *ud);

#endif
