/*
** engine_impl.h -- what the engine's three files share: the Engine itself,
** a call in flight (Op), and the steps each file offers the others.
**
**   engine.c    the mode machine (MEMORY / REDIS / RECOVERING), the memory
**               store's answers, statistics, logging, the public API;
**   redis_ops.c issuing get/set/delete/exists/clear on the backend and
**               handling their replies (failures hand back to engine.c);
**   recovery.c  coming back to Redis: the probe, then the journal's
**               replay as invalidation, then the switch.
**
** Not a public header: only those three include it.
*/
#ifndef CACHERT_ENGINE_IMPL_H
#define CACHERT_ENGINE_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "backend.h"
#include "engine.h"
#include "journal.h"
#include "log.h"
#include "tracking.h"

typedef enum Mode {
    MODE_MEMORY,     /* the memory store answers (journaling) */
    MODE_REDIS,      /* Redis answers; the memory store is empty */
    MODE_RECOVERING, /* Redis is back; probing it, then the replay */
} Mode;

#define ENGINE_UNLINK_BATCH     256 /* journal keys per UNLINK */
#define ENGINE_PROBE_KEY_SUFFIX "cachert:probe"
#define ENGINE_LOG_INTERVAL_MS  10000 /* at most one outage warning per */

struct Engine {
    uv_loop_t *loop;
    Store *store;
    uv_timer_t sweep_timer;
    uv_timer_t retry_timer; /* retries a recovery the server refused */
    int open_handles;       /* the engine is freed when this reaches 0 */
    EngineStats stats;
    uint64_t coarse_slack_ms; /* how far the coarse clock may lag */
    uint64_t clock_offset_ms; /* engine_advance_clock: added to the store's */
    size_t max_value;         /* key + value bytes a set accepts */
    Mode mode;
    Backend *backend;    /* NULL until connect, and after disconnect */
    Journal *journal;    /* what changed while not on Redis */
    bool ever_connected; /* reached MODE_REDIS once: later ones reconnect */
    bool attempting;     /* the backend's first attempt has no outcome yet */
    bool quiet;          /* disconnecting or closing: not an error */
    Logger log;
    bool outage_logged;  /* this outage was warned about (or held back) */
    bool refusal_logged; /* a failed probe or replay was warned about */
    bool warned;         /* some warning was logged: last_warn_ms is set */
    bool back_due;       /* a warning went out: say when Redis is back */
    unsigned held_back;  /* warnings not logged since the last one */
    uint64_t last_warn_ms;
    uint64_t round_started_ms; /* the replay's start, for its log line */
    /* at-exit flush (engine_flush) */
    uv_timer_t flush_timer;
    engine_flush_cb flush_done;
    void *flush_ud;
    bool retry_readonly; /* the retry timer reconnects: a replica answered */
    char *clear_all;     /* escaped namespace + "*" */
    size_t clear_all_len;
    char *probe_key; /* namespace + ENGINE_PROBE_KEY_SUFFIX */
    size_t probe_klen;
    struct Waiter *waiters; /* connect() calls waiting for an outcome */
    size_t nwaiters;
    /* recovery state (MODE_RECOVERING) */
    JournalBatch batch;
    size_t next_key;
    size_t in_flight;    /* probe or UNLINK commands out */
    int replay_status;   /* the first failure of this round */
    size_t unlink_batch; /* keys per UNLINK: 1 after a key was refused */
    bool key_refused;    /* a batch held a key the ACL user may not touch */
    size_t keys_dropped; /* keys refused one by one: not invalidated */
    char dropped_err[160];
    char replay_err[160]; /* the server's text for replay_status */
    char last_error[256];
    size_t journal_max_keys;
    /* a Cluster's partial outages (outage.c), in MODE_REDIS only */
    struct Outage **outages;
    size_t noutages;
    struct Outage **slot_outage; /* SLOT_COUNT entries once needed */
    uv_timer_t outage_timer;     /* retries their recovery */
    /* near cache (near.c) */
    EngineNear near;
    bool near_on;  /* tracking asked for at connect */
    bool nq_flush; /* a flush waits to be drained */
    char *nq;      /* keys waiting: uint32 length + bytes each */
    size_t nq_len, nq_cap;
};

typedef struct Waiter {
    engine_connect_cb done;
    void *ud;
} Waiter;

enum {
    OP_GET,
    OP_SET,
    OP_DELETE,
    OP_EXISTS,
    OP_CLEAR,
    OP_PTTL,
    OP_LOCK,
    OP_UNLOCK
};

/* The arguments of one get/set/delete/exists/clear (key = the pattern). */
typedef struct OpArgs {
    Engine *e;
    const char *key;
    size_t klen;
    const char *val; /* set only */
    size_t vlen;
    uint64_t ttl_ms;
    engine_done_cb done;
    void *ud;
    void *room; /* the caller's memory for the Op, or NULL (op_new) */
    size_t room_size;
} OpArgs;

/* A call in flight on Redis: its arguments, with key and
** value copied into data so the memory store can still answer if Redis
** fails. */
typedef struct Op {
    OpArgs a;
    int kind;
    /* a clear on a Cluster: the map's epoch at its start, passes made and
    ** keys removed by the earlier ones (see on_cleared) */
    uint64_t epoch;
    unsigned passes;
    uint64_t cleared;
    bool lent; /* in the caller's room (engine_get_async_in): not freed */
    char data[];
} Op;

/* The ttl_ms of a set refused for its size: only its UNLINK is sent (see
** issue()). Real TTLs stay below 9e15 ms. */
#define TTL_TOO_BIG UINT64_MAX

/* Answers an operation from the memory store. */
typedef void (*memory_fn)(const OpArgs *a);

/* -- engine.c: modes, errors, logging, the memory store's answers -------- */

/* The memory store's clock: engine_now_ms() plus what tests advanced. */
static inline uint64_t store_now_ms(const Engine *e)
{
    return engine_now_ms() + e->clock_offset_ms;
}

void set_mode(Engine *e, Mode mode);
void set_last_error(Engine *e, int code, const char *msg);
void count_error(Engine *e, int code, const char *msg);
/* READONLY -> CR_EREADONLY, NOPERM -> CR_ENOPERM, else CR_EREPLY. */
int error_status(const char *text);
int reply_status(const redisReply *reply);
const char *reply_text(const redisReply *reply);
void warn_outage(Engine *e, bool *logged, const char *what, const char *then);
/* A transport failure: MODE_REDIS -> MODE_MEMORY, warned once. */
void lose_redis(Engine *e, int code, const char *msg);
/* A refusal (READONLY, NOPERM): off Redis, reconnect or retry later. */
void distrust_redis(Engine *e, int code, const char *msg);
void schedule_retry(Engine *e, int code);
void finish_connect(Engine *e, bool using_redis);
/* Ends an engine_flush() wait (flushed: nothing left to replay). */
void finish_flush(Engine *e, bool flushed);
void switch_to_redis(Engine *e);

void memory_get(const OpArgs *a);
void memory_set(const OpArgs *a);
void memory_refused_set(const OpArgs *a);
void memory_delete(const OpArgs *a);
void memory_exists(const OpArgs *a);
void memory_clear(const OpArgs *a);
void memory_pttl(const OpArgs *a);
void memory_lock(const OpArgs *a);
bool too_big(const Op *op);
void memory_op(const Op *op);
void fail_op(const OpArgs *a, int code);

/* -- redis_ops.c ---------------------------------------------------------- */

/* A copy of `a` (key and value included) to send, in a->room when it is
** large enough. NULL: out of memory. */
Op *op_new(const OpArgs *a, int kind);
/* Frees `op` unless it lives in the caller's room. */
void op_free(Op *op);
/* Sends `op` to Redis. Returns 1, or 0 after completing it: on the memory
** store when the backend is down (the engine switches), as a failure when
** the command could not be queued. A set refused for its size sends only
** the UNLINK of the old value, then fails. */
int issue(Op *op);

/* -- outage.c: a Cluster's slots of one failed primary on memory --------- */

typedef struct Outage Outage;
struct ClearScanHooks;

/* True when a failure may be partial: a Cluster, on Redis. */
bool outages_possible(const Engine *e);
/* The outage serving `key`'s slot, or NULL. */
Outage *outage_of(const Engine *e, const char *key, size_t klen);
/* True while its journal is being replayed (writes go to Redis too). */
bool outage_replaying(const Outage *o);
/* Where a memory write of `key` is journaled. */
Journal *journal_for(Engine *e, const char *key, size_t klen);
/* A clear answered by memory: every outage not replaying records it. */
void outages_journal_pattern(Engine *e, const char *pattern, size_t plen);
/* The slots failing with slot `which` (by_node: with node `which`) go to
** the memory store, with a journal of their own. */
void outage_begin(Engine *e, bool by_node, size_t which, int status);
/* Starts the recovery of every outage whose slots are served again. */
void outages_try(Engine *e);
void outages_counts(const Engine *e, EngineJournalCounts *out);
size_t outages_slots(const Engine *e);
/* Moves every outage's journal into the main one (the whole manager goes
** to memory), then frees them. */
void outages_merge(Engine *e);
void outages_free(Engine *e);
/* Hooks for a clear's scan: a lost node becomes an outage (NULL when not
** on a Cluster). */
const struct ClearScanHooks *outage_clear_hooks(Engine *e);
/* The switch to Redis empties the memory store but for the outages'
** slots. */
void outages_switch_memory(Engine *e);
/* The whole manager coming back on a Cluster (recovery.c): the slots whose
** primary is not connected become outages first (returns how many slots
** are in outages), take their keys and every pattern of the main batch
** `b`; the main replay scans with outage_replay_hooks (the other slots
** only, skipping nodes whose slots are all in outages) and probes with
** outage_live_probe (a key of a live slot, written into buf; 0: use the
** usual probe key). */
size_t outages_for_unready(Engine *e);
void outages_take_batch(Engine *e, JournalBatch *b);
const struct ClearScanHooks *outage_replay_hooks(Engine *e);
size_t outage_live_probe(Engine *e, char *buf, size_t size);

/* -- near.c: the near cache's coherence -------------------------------- */

/* The pools' TrackingConfig.on_event (ud: the engine). */
void near_on_event(void *ud, TrackEvent ev, const redisReply *keys,
                   const char *message);
/* Everything kept may be stale: Lua empties its near cache. */
void near_flush(Engine *e);
/* Recomputes EngineNear.ready (after a mode or backend change). */
void near_refresh(Engine *e);
void near_free(Engine *e);

/* -- recovery.c ----------------------------------------------------------- */

/* The backend is ready: probe it, replay the journal, switch. */
void start_recovery(Engine *e);
/* Ends a recovery that failed with `status`: the journal is kept, the
** engine stays on memory, a retry is scheduled when the backend is up. */
void replay_failed(Engine *e, int status);

#endif
