/*
** lruntime.h -- cache.core's runtime: the loop, the requests Lua waits on,
** and the log queue (lruntime.c). lcache.c (the manager operations) starts
** requests through run_request(); the loop wakes the waiting task when the
** engine has answered.
*/
#ifndef CACHERT_LRUNTIME_H
#define CACHERT_LRUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "engine.h"
#include "evloop.h"

#define RUNTIME_MT      "cachert.Runtime"
#define RUNTIME_KEY     "cachert.runtime"
#define LOG_HANDLER_KEY "cachert.log_handler"
/* Log messages held for the handler; more are counted, not kept. */
#define LOG_QUEUE_MAX 256

/* The largest count, size or id taken from Lua: 2^53 - 1, so that the
** value is an exact integer in a lua_Number and fits a size_t. */
#define MAX_SIZE_ARG 9007199254740991.0

typedef struct Req Req;
struct HttpBinding; /* lhttpd.c */

/* A log message waiting for the Lua handler. */
typedef struct LogEntry {
    struct LogEntry *next;
    int level;
    char msg[];
} LogEntry;

typedef struct Runtime {
    EvLoop sched;
    CodecBuf scratch; /* for core.encode */
    /* Engines log from loop callbacks, where Lua must not run: with a
    ** handler set (cache.on_log), messages wait here until core.poll. */
    bool log_handler;
    LogEntry *logs, *logs_tail;
    size_t nlogs;
    size_t logs_dropped;
    /* Heap requests not finished yet, oldest (smallest id) first: ids only
    ** grow and new requests go at the tail, so the list stays sorted. */
    Req *head, *tail;
    /* Metrics servers still open (lhttpd.c): closed before the loop. */
    struct HttpBinding *servers;
} Runtime;

/* -- Requests -------------------------------------------------------------
** Every operation returns either `false, results...` (it completed now: the
** memory store answered, or Redis failed at once) or `true, id` (Redis will
** answer; the loop reports `id` when it did, and core.finish(id) then
** returns the same results). The results of each kind:
**   get: found, value (or found, values... for a `cached` multi value)
**   set: ok, err      delete, exists: boolean      clear: count
**   connect: using_redis      pttl: milliseconds (-1: none, -2: missing)
**   lock: taken               unlock: released
**   get_raw: found, bytes (undecoded)
**   scan: keys, next_node, next_cursor, unlinked, where ("redis" or
**         "memory"); next_node nil when done | nil, err
**   info: text, nodes | false (a node to skip), nodes | nil, err
** Lua never holds a pointer to a request: a heap Req lives in the Runtime's
** list until core.finish(id) finds it there and frees it, so a second
** finish, an unknown id or a value of another type raises instead of
** touching freed or foreign memory, and lua_close frees the ones nobody
** finished. A Req whose manager is closed (or collected) while it is out
** forgets the engine (see detach_requests). */
enum {
    REQ_GET,
    REQ_GET_RESULTS,
    REQ_SET,
    REQ_DELETE,
    REQ_EXISTS,
    REQ_CLEAR,
    REQ_CONNECT,
    REQ_FLUSH,
    REQ_PTTL,
    REQ_LOCK,
    REQ_UNLOCK,
    REQ_GET_RAW,
    REQ_SCAN,
    REQ_INFO
};

struct Req {
    Req *prev, *next; /* on the Runtime's list while heap-allocated */
    Runtime *rt;
    Engine *engine; /* NULL once the manager was closed */
    int64_t id;
    int kind;
    bool heap;
    bool done;
    bool in_call; /* the engine has not returned yet: nobody to wake */
    bool found;
    int status;
    uint64_t count;
    int64_t ttl_ms;                 /* pttl */
    EngineJournalCounts left;       /* flush: what Redis was not told */
    const char *val;                /* get, info: the value's bytes, in `reply`
                                       or in `owned`; scan: the keys, each a
                                       size_t length then its bytes (`owned`) */
    char *owned;                    /* a copy val points into, or NULL */
    const struct redisReply *reply; /* kept (reply.h): holds val, or NULL */
    void *room; /* get from Redis: the engine's room in this block */
    size_t room_size;
    size_t nkeys; /* scan */
    size_t node;  /* scan: the next step's node, cursor */
    char cursor[ENGINE_SCAN_CURSOR_MAX + 1];
    bool more;   /* scan: not done */
    bool memory; /* scan: the memory store answered */
    size_t vlen;
    char err[160];
    const char *key; /* get: for engine_get_corrupt; the Lua string's
                        bytes while in the call, a copy after the Req */
    size_t klen;
};

/* Starts the engine call of request `r` (arguments on L's stack); returns
** 1 when the engine will answer later. */
typedef int (*req_start_fn)(Engine *e, Req *r, lua_State *L);

/* Runs `start` for a request of `kind`: on the C stack when the memory
** store will answer at once, else on the heap. A get from Redis (key given)
** gets one block for the Req, its key and the engine's state (room, for
** engine_get_async_in), and its value is decoded from the reply itself,
** kept until the Req is freed. Returns what the Lua function returns:
** `false, results...` or `true, id`. */
int run_request(lua_State *L, Engine *e, int kind, const char *key, size_t klen,
                req_start_fn start);
/* The Runtime of the calling function (its first upvalue). */
Runtime *runtime_of(lua_State *L);
EvLoop *runtime_sched(lua_State *L);
/* [-0, +1, m] Pushes this state's Runtime, creating it on first use. */
void push_runtime(lua_State *L);
/* The engines' Logger function (ud: the Runtime). */
void runtime_log(void *ud, int level, const char *msg);

/* Completion callbacks to hand the engine with a Req as `ud`. */
void on_req_done(void *ud, const EngineResult *res);
void on_req_connected(void *ud, bool using_redis);
/* The requests of a closed engine forget it. */
void detach_requests(const Runtime *rt, const Engine *e);

/* core.finish, core.now, core.timer, core.poll, core.on_log. */
extern const luaL_Reg runtime_funcs[];

#endif
