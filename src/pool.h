/*
** pool.h -- a pool of Redis connections on a libuv loop, with automatic
** pipelining, per-command deadlines and reconnection with backoff.
**
** cachert owns its sockets through libuv and uses hiredis only to format
** commands (redisFormatCommandArgv) and parse replies (redisReader); see
** DESIGN.md for why hiredis's async context is not used.
**
** Pipelining: pool_command() appends the formatted command to a
** connection's output buffer. A connection writes its buffer as soon as
** POOL_WRITE_BATCH commands are queued there, and every buffer left is
** written from a uv_prepare callback, once per loop turn, just before the
** loop polls. So commands issued by many tasks in the same turn leave in
** batches, and the server works on the first batch while the tasks
** prepare the next (a single write per turn would make client and server
** take turns). A few commands in a turn still leave in one write. Writes
** go through uv_try_write, so a connection usually has nothing in flight
** afterwards and can send its next batch in the same turn; what the
** kernel does not take at once waits in one uv_write in flight (conn.h),
** behind which that connection's later batches wait until a later turn.
** Replies are matched to commands in order, per connection. Each command
** goes to the first ready connection with fewer than POOL_SPREAD_DEPTH (a
** few batches) commands pending (queued or awaiting a reply), else to the
** one with the fewest: a few commands share one write, several batches
** share a connection (their replies come in one read), and a deeper load
** spreads so that several connections carry batches at once.
**
** Deadlines: connect_timeout_ms bounds a connection's start (resolve,
** connect, handshake). command_timeout_ms bounds the server's silence,
** not a command's age: a connection with commands outstanding (written,
** awaiting a reply) fails when nothing was read from it for
** command_timeout_ms since the last read or since the oldest outstanding
** command was written, whichever is later (conn.h). So the time a command
** waits in cachert's own queue (the output buffer until the loop turn
** ends, the process busy) never counts, and a server that is busy but
** answering (a deep pipeline, a clear's many SCAN round trips, each
** queued behind the other tasks' commands) is never declared lost: such a
** long exchange is bounded only by the server answering, not by the
** timeout. Deadlines are judged after the loop has polled the sockets: a
** reply that arrived while the process was busy past the deadline (a task
** that kept the CPU, the loop not running) is delivered as CR_OK; only a
** server that has said nothing by the deadline counts (CR_ETIMEDOUT,
** reported within about a millisecond of the deadline, or as soon as the
** loop runs again). The check costs nothing per command: a timestamp per
** read, one timer per connection, re-armed about once per timeout while
** the connection is busy.
**
** Failure: a connection that fails (refused, reset, protocol error, or a
** server silent past the deadline; but see "Idle close" below) fails every
** command pending on it, is closed and never reused. The pool then reports
** itself down and reconnects every connection after a backoff; it reports
** itself ready again once all of them have connected, authenticated and
** selected the database.
** When the pool goes down, every connection is closed at once: commands
** pending on the failed one fail with its error (e.g. CR_ETIMEDOUT,
** CR_ECONNRESET), those pending on the others with CR_ECONNRESET. Such a
** command may or may not have been executed by the server. pool_command()
** already returns CR_ECONNRESET while those callbacks run.
**
** Backoff: the gaps between attempts double from POOL_BACKOFF_MIN_MS up
** to POOL_BACKOFF_MAX_MS, each one jittered: a uniformly random gap in
** [4/5 of it, all of it] (so never above POOL_BACKOFF_MAX_MS; the 20%
** spread keeps a fleet of processes from reconnecting in step). The
** sequence starts over from POOL_BACKOFF_MIN_MS only when the pool fails
** after it had stayed ready for at least POOL_HEALTHY_RESET_MS; becoming
** ready is not enough. So a server that accepts connections and drops them
** right after the handshake (a proxy with no backend, a crash loop) sees
** gaps of at most 0.1, 0.2, 0.4, 0.8, 1.6 and 3.2 s, then of 4 to 5 s,
** instead of ten attempts a second with the whole pool each time.
** pool_fail() goes through the same backoff.
**
** Idle close: a server with an idle timeout (`timeout N` in redis.conf,
** common on managed Redis), CLIENT KILL or a proxy closes connections that
** carry no traffic. When the pool is ready and the server closes (EOF or
** ECONNRESET) a connection that had no command queued or awaiting a reply,
** nothing was lost: the pool replaces that connection quietly with a new
** one (same handshake), stays ready, does not call on_state and fails
** nothing. Meanwhile pool_command() uses the other ready connections, or,
** when none is ready (a pool of one, or all of them closed at once), queues
** the command on a replacement, which writes it right after its handshake
** succeeds (connect_timeout_ms bounds that wait; then the server's silence
** is bounded as always). If a
** replacement fails (refused, rejected AUTH or SELECT, connect timeout),
** the pool goes down as described above, with that error (commands queued
** on it fail with it), and reconnects with backoff; so a server killed
** while the pool is idle is reported down once it refuses the replacement.
** A connection closed while a command was queued or awaited on it, or less
** than POOL_BACKOFF_MIN_MS after it became ready, is a failure as above.
** pool_replaced() counts the quiet replacements.
**
** TLS: with cfg.tls.enabled, pool_new loads the CA bundle and the client
** certificate once into a context its connections share. When that fails
** (a missing or unreadable file, a key that does not match), the pool does
** not crash nor refuse: every attempt fails with CR_ETLS and the message
** ("TLS: cannot load CA file F: No such file or directory"), retried with
** the backoff (loading again, so a fixed file is picked up). A TLS
** handshake failure (certificate not trusted, host name mismatch, client
** certificate required) is CR_ETLS too; like a wrong password, it is not
** transient, but the pool keeps retrying with backoff all the same.
**
** Loop liveness: the pool keeps the loop alive only while a reply is
** awaited or a connection attempt is in flight (so uv_run() returns after
** pool_connect() once on_state has reported the first outcome); idle
** connections, the flush hook, the backoff timer and the connections'
** deadline timers and checks do not (they are unreferenced, like the
** engine's sweep timer). A quiet replacement's
** handles keep the loop alive only while a command is queued on it; its
** resolve and TCP connect requests do while they last (libuv requests
** cannot be unreferenced; connect_timeout_ms bounds them).
**
** Re-entrancy: callbacks may call pool_command() and pool_close(); after
** pool_close() the memory is freed once the outermost callback returns and
** libuv has closed every handle.
*/
#ifndef CACHERT_POOL_H
#define CACHERT_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "backoff.h"

#include "tls.h"
#include "tracking.h"

#define POOL_BACKOFF_MIN_MS   BACKOFF_MIN_MS /* backoff.h */
#define POOL_BACKOFF_MAX_MS   BACKOFF_MAX_MS
#define POOL_HEALTHY_RESET_MS 3000 /* ready this long: the backoff restarts */
/* Commands queued on a connection that make it write them at once rather
** than at the end of the loop turn. Measured with W3 (50 tasks doing GETs,
** bench/w3_get.lua, 2 CPUs): 16, 24 and 32 all gave 1.3-1.5x the
** throughput of one write per turn with p50 latency down a third; 8 was
** worse (a write and a server read per 8 GETs cost more than the overlap
** gains); 16 had the lowest p50 and overlaps from 17 waiting tasks up. */
#ifndef POOL_WRITE_BATCH
#define POOL_WRITE_BATCH 16
#endif

/* Commands pending on a connection (queued or awaiting a reply) before the
** next command goes to another one: a few batches. Deeper than a batch:
** the replies of several batches on one socket come in one read, and
** each connection in use costs a read per loop turn; spreading at every
** batch cost 5-10 % of W3's throughput. Shallow enough that a connection
** stuck behind a slow command takes few more. */
#ifndef POOL_SPREAD_DEPTH
#define POOL_SPREAD_DEPTH (4 * POOL_WRITE_BATCH)
#endif

typedef struct Pool Pool;

typedef struct PoolConfig {
    const char *host; /* name or address; copied by pool_new */
    int port;
    int db;                      /* SELECT when not 0 */
    const char *username;        /* ACL user, or NULL; copied */
    const char *password;        /* AUTH when not NULL; copied */
    size_t size;                 /* connections; 0 is taken as 1 */
    uint64_t connect_timeout_ms; /* resolve + connect + handshake; 0: none */
    uint64_t command_timeout_ms; /* server silence (see the top); 0: none */
    TlsConfig tls; /* tls.enabled: TLS on every connection; strings copied */
    /* Client-side caching (tracking.h): a subscriber connection more, and
    ** CLIENT TRACKING on the data connections; prefix copied. */
    TrackingConfig tracking;
} PoolConfig;

/* A command's outcome. status is CR_OK with `reply` set (which may be a
** REDIS_REPLY_ERROR: the server said no), or a negative CR_E* code with
** reply NULL (the transport failed: ETIMEDOUT, ECONNRESET, ...). The reply
** belongs to the pool and is valid only during the callback. Called exactly
** once for every command pool_command() accepted, always from a loop
** callback or from pool_close(), never from inside pool_command(). */
typedef void (*pool_reply_cb)(void *ud, int status, const redisReply *reply);

/* The pool's state changed: CR_OK when every connection is ready, or a
** negative CR_E* code when it went down or could not come up (CR_EAUTH for
** a rejected password, user or database, CR_EREJECTED for another refusal
** of the handshake such as "max number of clients reached",
** CR_ECONNREFUSED, CR_ETIMEDOUT, CR_ETLS, ...), with a human-readable
** message that keeps the server's own text (valid during the callback only).
*Called
** from loop callbacks only. */
typedef void (*pool_state_cb)(void *ud, int status, const char *message);

/* A deep copy of `src` into `dst`: every string duplicated (NULL stays
** NULL). False when out of memory, with nothing left to free. Release it
** with pool_config_free(). */
bool pool_config_copy(PoolConfig *dst, const PoolConfig *src);
void pool_config_free(PoolConfig *cfg);

/* Creates a pool (not yet connecting). Returns NULL when out of memory. */
Pool *pool_new(uv_loop_t *loop, const PoolConfig *cfg, pool_state_cb on_state,
               void *ud);

/* Starts connecting every connection; on_state reports the outcome. While
** down, the pool keeps retrying with backoff until pool_close(). */
void pool_connect(Pool *p);

/* Queues a command (argv: argc >= 1 binary-safe strings, copied; argvlen
** may be NULL for NUL-terminated strings) on a ready connection (the first
** with fewer than POOL_SPREAD_DEPTH commands pending, else the one with the
** fewest), or on a quiet replacement when none is ready (see above); the
** connection writes its queue at once when that makes POOL_WRITE_BATCH.
** Returns CR_OK, and `cb` is called later; or CR_ECONNRESET when the pool
** is not ready, CR_EINVAL when argc < 1, or CR_ENOMEM, and then `cb` is
** never called. May be called from any callback, including a reply
** callback. */
int pool_command(Pool *p, int argc, const char **argv, const size_t *argvlen,
                 pool_reply_cb cb, void *ud);

/* As pool_command(), preceded by ASKING on the same connection (a Redis
** Cluster ASK redirection: ASKING covers the next command only). */
int pool_command_asking(Pool *p, int argc, const char **argv,
                        const size_t *argvlen, pool_reply_cb cb, void *ud);

/* True when the pool is ready for commands. */
bool pool_ready(const Pool *p);

/* Commands queued or awaiting a reply, over all connections. */
size_t pool_pending(const Pool *p);

/* Writes of commands since pool_new (handshakes not counted): one per
** POOL_WRITE_BATCH commands queued on a connection, plus one per
** connection with commands left at the end of a loop turn. For tests and
** stats. */
uint64_t pool_writes(const Pool *p);

/* Connections replaced quietly after the server closed them while idle
** (see the top) since pool_new. For tests and stats. */
uint64_t pool_replaced(const Pool *p);

/* With cfg.tracking: true while every command sent from now on is
** tracked (the pool ready, its subscriber subscribed and, without BCAST,
** every connection's CLIENT TRACKING acknowledged). */
bool pool_tracking_ready(const Pool *p);

/* Takes a ready (or connecting) pool down as if a connection had failed
** with `status`: pending commands fail with CR_ECONNRESET, on_state reports
** `status` and `message`, and reconnection starts with backoff. For a
** server that answers but must not be used (e.g. a demoted primary
** replying READONLY): new connections may reach the right one. The retry
** follows the backoff above: repeated calls while the pool never stays
** ready for POOL_HEALTHY_RESET_MS space the attempts out. */
void pool_fail(Pool *p, int status, const char *message);

/* Fails every pending command with CR_ECONNRESET (callbacks run before
** this returns), stops reconnecting, closes every handle and frees the pool
** once libuv has closed them. on_state is not called again. May be called
** from inside any pool callback; `p` must not be used afterwards. */
void pool_close(Pool *p);

#endif
