/*
** sentinel.h -- the Sentinel backend: the primary that a set of Redis
** Sentinels names, confirmed with ROLE, followed across failovers.
**
** Discovery (a "round"): the sentinels are asked in turn, starting with
** the one that answered last, `SENTINEL get-master-addr-by-name <name>` on
** a short-lived connection (sentinel_username/password, db 0). The first
** address named is then confirmed on the data node itself: a pool
** (pool.h, with cfg->pool's credentials, db, timeouts, size and TLS) is
** opened to it, and ROLE is asked on it; only "master" makes the backend
** ready (on_state CR_OK). A node that answers "slave" (the sentinels have
** not caught up yet) ends the round with CR_EREADONLY; the next round
** follows the backoff. The sentinels are the authority: a node that says
** "master" but is not the one they name (an old primary restarted with
** its old data) is never used. A ROLE refused with NOPERM (an ACL user
** without it) leaves the sentinels' word alone; the engine's probe still
** refuses a replica.
**
** A round that finds no usable primary reports one error and is retried
** after the backoff (POOL_BACKOFF_* with the pool's jitter and its healthy
** reset): CR_EINVAL when a sentinel answered that it does not know the
** master ("sentinel 127.0.0.1:26379 does not know master 'x'"), else
** CR_EAUTH when a sentinel refused the login, else the first transport
** error (CR_ECONNREFUSED, CR_ETIMEDOUT...); the message lists every
** sentinel tried with its answer. A data node that cannot be reached gives
** the pool's code, its message prefixed by the master's name and address.
**
** Following failovers: one connection, to one sentinel at a time, is
** subscribed to `+switch-master` and `+try-failover`
** (conn_set_push_handler). A failover of our primary announced by that
** sentinel (+try-failover) takes the backend down at once (CR_ECONNRESET):
** the old primary keeps accepting writes until it is demoted, and those it
** takes after the replica's promotion are lost; its address is then not
** used for SENTINEL_FAILOVER_HOLD_MS, or until +switch-master. Only the
** sentinel that leads a failover announces it: one forced with SENTINEL
** FAILOVER on another sentinel is seen at +switch-master only, about a
** second after the promotion (writes in that window are lost, as Redis's
** replication allows; `min-replicas-to-write` on the servers narrows it).
** On a switch of
** our master the pool is closed at once (pending commands fail with
** CR_ECONNRESET), on_state reports CR_ECONNRESET with the old and new
** addresses, and a round starts right away with the sentinel that
** announced it. Before subscribing, that connection asks its sentinel for
** the master's address, so a switch missed while no subscription was up is
** caught when the next one starts. It sends PING every SENTINEL_PING_MS
** (command_timeout_ms bounds the answer), so a sentinel that hangs is
** noticed too. A lost subscription moves to the next sentinel after its
** own backoff.
**
** Lost primary: when the pool goes down, or backend_fail() is called (a
** READONLY reply), the pool is closed and a round starts instead of
** reconnecting to the old address: at once when the primary had been
** ready for POOL_HEALTHY_RESET_MS, else after the backoff's next gap
** (100 ms at first), so a primary that drops every connection cannot make
** the backend spin.
**
** nodes() is 1. TLS (cfg->pool.tls) applies to the sentinel connections
** too, with the same CA and client certificate; their names are checked
** against each sentinel's own host (server_name is the data nodes').
**
** Loop liveness: as the pool's. Queries keep the loop alive while they
** wait for an answer, and so does a subscription attempt until its
** SUBSCRIBE is answered (connect_timeout_ms bounds it); the retry and
** subscription timers and the idle subscription do not.
*/
#ifndef CACHERT_SENTINEL_H
#define CACHERT_SENTINEL_H

#include <uv.h>

#include "backend.h"

/* How long a primary whose failover started (+try-failover) is not used,
** unless +switch-master comes first. */
#define SENTINEL_FAILOVER_HOLD_MS 5000

/* Gap between the keep-alive PINGs on the subscription. */
#define SENTINEL_PING_MS 1000

/* Creates the Sentinel backend for `cfg` (cfg->nsentinels > 0; every
** string and the sentinel list are copied), not yet connecting. on_state as
** pool_state_cb. Returns NULL when out of memory. */
Backend *sentinel_new(uv_loop_t *loop, const RedisConfig *cfg,
                      pool_state_cb on_state, void *ud);

#endif
