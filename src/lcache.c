/*
** lcache.c -- cache.core: the thin Lua binding of the engine, the codec and
** the scheduler's loop.
**
** The public module is lua/cache/init.lua; it validates arguments, applies
** the namespace and converts TTLs to milliseconds before calling here, so
** each function below is one whole operation (look up + decode, encode +
** store) and crosses the C boundary once.
**
** Per-state context: one Runtime userdata (the loop) is the first upvalue
** of every function; no C globals, so two lua_States never collide.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "engine.h"
#include "lcache.h"
#include "evloop.h"
#include "log.h"
#include "status.h"

#define MANAGER_MT      "cachert.Manager"
#define RUNTIME_MT      "cachert.Runtime"
#define RUNTIME_KEY     "cachert.runtime"
#define LOG_HANDLER_KEY "cachert.log_handler"
/* Log messages held for the handler; more are counted, not kept. */
#define LOG_QUEUE_MAX 256

typedef struct Req Req;

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
} Runtime;

typedef struct Manager {
    Engine *engine; /* NULL once closed */
    CodecBuf buf;   /* reused encode buffer; survives a raised error */
} Manager;

/* -- Helpers ------------------------------------------------------------ */

static void detach_requests(const Runtime *rt, const Engine *e);

/* [-0, +0, v] The manager at `idx`; raises for anything else. */
static Manager *check_manager(lua_State *L, int idx)
{
    Manager *m = luaL_checkudata(L, idx, MANAGER_MT);
    if (m->engine == NULL)
        luaL_error(L, "manager is closed");
    return m;
}

static Runtime *runtime_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static EvLoop *runtime_sched(lua_State *L)
{
    return &runtime_of(L)->sched;
}

/* [-0, +0, v] A TTL argument already converted to milliseconds. */
static uint64_t check_ttl_ms(lua_State *L, int idx)
{
    lua_Number ms = luaL_checknumber(L, idx);
    luaL_argcheck(L, ms >= 0 && ms < 9.0e15, idx, "ttl out of range");
    return (uint64_t)ms;
}

/* -- Logging ------------------------------------------------------------ */

/* The engines' Logger: one line on stderr, or queued for the handler. */
static void runtime_log(void *ud, int level, const char *msg)
{
    Runtime *rt = ud;
    if (!rt->log_handler) {
        fprintf(stderr, "cachert: %s\n", msg);
        return;
    }
    size_t len = strlen(msg);
    LogEntry *entry =
        rt->nlogs < LOG_QUEUE_MAX ? malloc(sizeof(*entry) + len + 1) : NULL;
    if (entry == NULL) {
        rt->logs_dropped++;
        return;
    }
    entry->next = NULL;
    entry->level = level;
    memcpy(entry->msg, msg, len + 1);
    if (rt->logs_tail != NULL)
        rt->logs_tail->next = entry;
    else
        rt->logs = entry;
    rt->logs_tail = entry;
    rt->nlogs++;
}

/* [-0, +0, -] Calls the handler for each queued message (a failing
** handler is reported on stderr and does not stop the others). */
static void drain_logs(lua_State *L, Runtime *rt)
{
    while (rt->logs != NULL || rt->logs_dropped > 0) {
        LogEntry *entry = rt->logs;
        char dropped[96];
        int level = LOG_WARN;
        const char *msg = dropped;
        if (entry != NULL) {
            rt->logs = entry->next;
            if (rt->logs == NULL)
                rt->logs_tail = NULL;
            rt->nlogs--;
            level = entry->level;
            msg = entry->msg;
        } else {
            snprintf(dropped, sizeof(dropped),
                     "%zu log messages dropped (the handler fell behind)",
                     rt->logs_dropped);
            rt->logs_dropped = 0;
        }
        lua_getfield(L, LUA_REGISTRYINDEX, LOG_HANDLER_KEY);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            fprintf(stderr, "cachert: %s\n", msg);
        } else {
            lua_pushstring(L, log_level_name(level));
            lua_pushstring(L, msg);
            if (lua_pcall(L, 2, 0, 0) != 0) {
                fprintf(stderr, "cachert: error in the log handler: %s\n",
                        lua_tostring(L, -1));
                lua_pop(L, 1);
            }
        }
        free(entry);
    }
}

/* core.on_log(fn | nil): fn(level, message) receives what the engines
** log, from the loop's next turn; nil restores the stderr lines. */
static int core_on_log(lua_State *L)
{
    Runtime *rt = runtime_of(L);
    if (!lua_isnil(L, 1))
        luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, LOG_HANDLER_KEY);
    rt->log_handler = true; /* queued: drain_logs prints them if nil */
    drain_logs(L, rt);
    rt->log_handler = !lua_isnil(L, 1);
    return 0;
}

static int check_log_level(lua_State *L, int idx)
{
    return luaL_checkoption(L, idx, "warn", log_level_names);
}

/* -- Manager ------------------------------------------------------------ */

/* The largest count or size core.new takes: 2^53 - 1, so that the value
** is an exact integer in a lua_Number and fits a size_t. */
#define MAX_SIZE_ARG 9007199254740991.0

/* [-0, +0, v] Argument `idx` as a size_t (0 when absent): a number from 0
** to `max` (fractions are cut); raises naming `name` and `max_text`
** otherwise, also for nan and infinities. */
static size_t check_size_arg(lua_State *L, int idx, const char *name,
                             lua_Number max, const char *max_text)
{
    lua_Number v = luaL_optnumber(L, idx, 0);
    if (!(v >= 0 && v <= max)) /* the negation is true for nan */
        return (size_t)luaL_argerror(
            L, idx,
            lua_pushfstring(L, "%s must be a number from 0 to %s, got %f", name,
                            max_text, v));
    return (size_t)v;
}

/* core.new(max_items, max_bytes, clear_all_pattern?, journal_max_keys?,
** max_value_bytes?) -> manager
** max_items, max_bytes: 0 = no limit; journal_max_keys, max_value_bytes:
** nil or 0 = the engine's default. Counts and sizes are below 2^53;
** max_value_bytes at most ENGINE_MAX_VALUE_BYTES (512 MiB). The Lua
** config layer checks its settings first: this is defence. */
static int core_new(lua_State *L)
{
    EngineConfig cfg;
    memset(&cfg, 0, sizeof(cfg));
    luaL_checknumber(L, 1);
    luaL_checknumber(L, 2);
    cfg.max_items = check_size_arg(L, 1, "max_items", MAX_SIZE_ARG, "2^53 - 1");
    cfg.max_bytes = check_size_arg(L, 2, "max_bytes", MAX_SIZE_ARG, "2^53 - 1");
    cfg.clear_all_pattern = luaL_optlstring(L, 3, "*", &cfg.clear_all_len);
    cfg.journal_max_keys =
        check_size_arg(L, 4, "journal_max_keys", MAX_SIZE_ARG, "2^53 - 1");
    cfg.max_value_bytes =
        check_size_arg(L, 5, "max_value_bytes",
                       (lua_Number)ENGINE_MAX_VALUE_BYTES, "536870912");
    _Static_assert(ENGINE_MAX_VALUE_BYTES == 536870912, "fix the message");
    cfg.log.level = check_log_level(L, 6);
    cfg.log.fn = runtime_log;
    cfg.log.ud = runtime_of(L);
    Manager *m = lua_newuserdata(L, sizeof(*m));
    memset(m, 0, sizeof(*m));
    luaL_getmetatable(L, MANAGER_MT);
    lua_setmetatable(L, -2);
    m->engine = engine_new(&runtime_sched(L)->loop, &cfg);
    if (m->engine == NULL)
        return luaL_error(L, "%s", cr_strerror(CR_ENOMEM));
    return 1;
}

/* __gc; also core.close(m). Idempotent. */
static int manager_close(lua_State *L)
{
    Manager *m = luaL_checkudata(L, 1, MANAGER_MT);
    if (m->engine != NULL) {
        engine_close(m->engine);
        detach_requests(runtime_of(L), m->engine);
        m->engine = NULL;
        /* At lua_close the Runtime may be finalized first: let the loop
        ** run the close callback that frees the engine. */
        if (runtime_sched(L)->closed)
            uv_run(&runtime_sched(L)->loop, UV_RUN_NOWAIT);
    }
    codec_buf_free(&m->buf);
    return 0;
}

/* -- Requests -------------------------------------------------------------
** Every operation returns either `false, results...` (it completed now: the
** memory store answered, or Redis failed at once) or `true, id` (Redis will
** answer; the loop reports `id` when it did, and core.finish(id) then
** returns the same results). The results of each kind:
**   get: found, value (or found, values... for a `cached` multi value)
**   set: ok, err      delete, exists: boolean      clear: count
**   connect: using_redis
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
    REQ_FLUSH
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
    EngineJournalCounts left; /* flush: what Redis was not told */
    char *val;                /* get: a copy of the value's bytes */
    size_t vlen;
    char err[160];
    const char *key; /* get: for engine_get_corrupt; the Lua string's
                        bytes while in the call, a copy after the Req */
    size_t klen;
};

static void req_free(Req *r)
{
    if (!r->heap) {
        free(r->val);
        return;
    }
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        r->rt->head = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    else
        r->rt->tail = r->prev;
    free(r->val);
    free(r);
}

/* The pending heap request `id`, or NULL. The list is sorted by id, so the
** search walks in from both ends at once and stops as soon as `id` is out
** of the remaining range: finishing the oldest or the newest request (the
** common cases) takes one step, any other at most half the list. */
static Req *find_req(const Runtime *rt, int64_t id)
{
    Req *lo = rt->head, *hi = rt->tail;
    while (lo != NULL && lo->id <= id && id <= hi->id) {
        if (lo->id == id)
            return lo;
        if (hi->id == id)
            return hi;
        if (lo == hi)
            break;
        lo = lo->next; /* once lo and hi cross, the range is empty */
        hi = hi->prev;
    }
    return NULL;
}

/* engine_close fails the engine's outstanding requests at once, and the
** engine itself is freed on the next loop turn: requests not finished yet
** drop their pointer to it (their results stay readable; a hit that cannot
** be decoded is then simply a miss, not reported to the freed engine). */
static void detach_requests(const Runtime *rt, const Engine *e)
{
    for (Req *r = rt->head; r != NULL; r = r->next)
        if (r->engine == e)
            r->engine = NULL;
}

static void on_req_done(void *ud, const EngineResult *res)
{
    Req *r = ud;
    r->done = true;
    r->status = res->status;
    r->found = res->found;
    r->count = res->count;
    if (res->err != NULL)
        snprintf(r->err, sizeof(r->err), "%s", res->err);
    if (res->val != NULL) {
        r->val = malloc(res->vlen ? res->vlen : 1);
        if (r->val != NULL) {
            memcpy(r->val, res->val, res->vlen);
            r->vlen = res->vlen;
        } else {
            r->status = CR_ENOMEM; /* reported as a miss */
        }
    }
    if (!r->in_call)
        evloop_wake(&r->rt->sched, r->id);
}

static void on_req_connected(void *ud, bool using_redis)
{
    EngineResult res = {0};
    res.found = using_redis;
    on_req_done(ud, &res);
}

/* [-0, +n, m] Pushes a finished request's results; returns how many. */
static int push_results(lua_State *L, Req *r)
{
    switch (r->kind) {
    case REQ_GET:
    case REQ_GET_RESULTS: {
        int top = lua_gettop(L);
        if (r->found && r->status == CR_OK) {
            lua_pushboolean(L, 1);
            int n =
                codec_decode(L, r->val, r->vlen, r->kind == REQ_GET_RESULTS);
            if (n >= 0)
                return n + 1;
            lua_settop(L, top);
            if (r->engine != NULL)
                engine_get_corrupt(r->engine, r->key, r->klen);
        }
        lua_pushboolean(L, 0);
        return 1;
    }
    case REQ_SET:
        if (r->status == CR_OK) {
            lua_pushboolean(L, 1);
            return 1;
        }
        lua_pushboolean(L, 0);
        lua_pushstring(L, r->err[0] ? r->err : cr_strerror(r->status));
        return 2;
    case REQ_CLEAR:
        lua_pushnumber(L, (lua_Number)r->count);
        return 1;
    case REQ_FLUSH:
        lua_pushboolean(L, r->found);
        lua_pushnumber(L, (lua_Number)r->left.keys);
        lua_pushnumber(L, (lua_Number)r->left.patterns);
        lua_pushboolean(L, r->left.overflow);
        return 4;
    default: /* REQ_DELETE, REQ_EXISTS, REQ_CONNECT */
        lua_pushboolean(L, r->found);
        return 1;
    }
}

/* Runs `start` for a request of `kind`: on the C stack when the memory
** store will answer at once, else on the heap. Returns what the Lua
** function returns: `false, results...` or `true, id`. */
typedef int (*req_start_fn)(Engine *e, Req *r, lua_State *L);

static int run_request(lua_State *L, Manager *m, int kind, const char *key,
                       size_t klen, req_start_fn start)
{
    Req local;
    Runtime *rt = runtime_of(L);
    bool heap = engine_using_redis(m->engine) || kind == REQ_CONNECT ||
                kind == REQ_FLUSH;
    Req *r = &local;
    if (heap) {
        r = malloc(sizeof(*r) + klen);
        if (r == NULL)
            return luaL_error(L, "%s", cr_strerror(CR_ENOMEM));
    }
    memset(r, 0, sizeof(*r));
    r->rt = rt;
    r->engine = m->engine;
    r->kind = kind;
    r->heap = heap;
    r->key = key;
    r->klen = klen;
    if (heap) {
        if (klen > 0) {
            memcpy(r + 1, key, klen);
            r->key = (const char *)(r + 1);
        }
        r->id = evloop_new_id(&rt->sched); /* larger than any listed */
        r->prev = rt->tail;
        if (rt->tail != NULL)
            rt->tail->next = r;
        else
            rt->head = r;
        rt->tail = r;
    }
    r->in_call = true;
    int pending = start(m->engine, r, L);
    r->in_call = false;
    if (!pending) {
        lua_pushboolean(L, 0);
        int n = push_results(L, r);
        req_free(r);
        return n + 1;
    }
    evloop_begin(&rt->sched);
    lua_pushboolean(L, 1);
    lua_pushnumber(L, (lua_Number)r->id);
    return 2;
}

/* core.finish(id) -> the results of the request `id`, once the loop has
** reported it; the request is then gone. Raises for anything that is not
** the id of a pending request (finished already, never issued, not an
** integer, not a number) and for a request still out. Further arguments
** are ignored: callers pass the manager to keep it referenced until here. */
static int core_finish(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TNUMBER)
        return luaL_typerror(L, 1, "request id");
    lua_Number n = lua_tonumber(L, 1);
    Req *r = NULL;
    if (n >= 1 && n <= MAX_SIZE_ARG && n == floor(n))
        r = find_req(runtime_of(L), (int64_t)n);
    if (r == NULL)
        return luaL_error(L, "no pending request %f", n);
    if (!r->done)
        return luaL_error(L, "request %f has not finished", n);
    int n_results = push_results(L, r);
    req_free(r);
    return n_results;
}

/* -- Manager operations -------------------------------------------------- */

/* The engine call of each request kind that takes one key (or pattern). */
typedef int (*keyed_async_fn)(Engine *e, const char *key, size_t klen,
                              engine_done_cb done, void *ud);

static const keyed_async_fn keyed_async[] = {
    [REQ_GET] = engine_get_async,       [REQ_GET_RESULTS] = engine_get_async,
    [REQ_DELETE] = engine_delete_async, [REQ_EXISTS] = engine_exists_async,
    [REQ_CLEAR] = engine_clear_async,
};

/* Starts a request of a one-key kind; the key is argument 2. */
static int start_keyed(Engine *e, Req *r, lua_State *L)
{
    size_t klen;
    const char *key = lua_tolstring(L, 2, &klen);
    return keyed_async[r->kind](e, key, klen, on_req_done, r);
}

/* core.get(m, key, unpack_multi) */
static int core_get(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    size_t klen;
    const char *key = luaL_checklstring(L, 2, &klen);
    int kind = lua_toboolean(L, 3) ? REQ_GET_RESULTS : REQ_GET;
    return run_request(L, m, kind, key, klen, start_keyed);
}

static int start_set(Engine *e, Req *r, lua_State *L)
{
    Manager *m = lua_touserdata(L, 1);
    size_t klen;
    const char *key = lua_tolstring(L, 2, &klen);
    uint64_t ttl_ms = (uint64_t)lua_tonumber(L, 4);
    return engine_set_async(e, key, klen, m->buf.data, m->buf.len, ttl_ms,
                            on_req_done, r);
}

/* core.set(m, key, value, ttl_ms): encodes value, then stores it */
static int core_set(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    luaL_checkstring(L, 2);
    luaL_checkany(L, 3);
    check_ttl_ms(L, 4);
    codec_encode(L, 3, &m->buf, "value");
    return run_request(L, m, REQ_SET, NULL, 0, start_set);
}

/* core.set_raw(m, key, bytes, ttl_ms): stores bytes made by core.encode or
** core.encode_results */
static int core_set_raw(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    size_t vlen;
    luaL_checkstring(L, 2);
    const char *val = luaL_checklstring(L, 3, &vlen);
    check_ttl_ms(L, 4);
    if (codec_buf_reserve(&m->buf, vlen) != CR_OK)
        return luaL_error(L, "%s", cr_strerror(CR_ENOMEM));
    memcpy(m->buf.data, val, vlen);
    m->buf.len = vlen;
    return run_request(L, m, REQ_SET, NULL, 0, start_set);
}

/* core.delete(m, key) */
static int core_delete(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    luaL_checkstring(L, 2);
    return run_request(L, m, REQ_DELETE, NULL, 0, start_keyed);
}

/* core.exists(m, key) */
static int core_exists(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    luaL_checkstring(L, 2);
    return run_request(L, m, REQ_EXISTS, NULL, 0, start_keyed);
}

/* core.clear(m, pattern) */
static int core_clear(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    luaL_checkstring(L, 2);
    return run_request(L, m, REQ_CLEAR, NULL, 0, start_keyed);
}

static const char *opt_field(lua_State *L, int t, const char *name)
{
    lua_getfield(L, t, name);
    const char *v = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1); /* the string stays alive in the table */
    return v;
}

static lua_Number num_field(lua_State *L, int t, const char *name,
                            lua_Number dflt)
{
    lua_getfield(L, t, name);
    lua_Number v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
}

/* Seconds to milliseconds, rounding up: a positive timeout is never 0 ms
** (which means no deadline at all). */
static uint64_t seconds_to_ms(lua_Number sec)
{
    if (!(sec > 0))
        return 0;
    return sec >= 9.0e12 ? (uint64_t)9.0e15 : (uint64_t)ceil(sec * 1000.0);
}

static uint64_t ms_field(lua_State *L, int t, const char *name, lua_Number dflt)
{
    return seconds_to_ms(num_field(L, t, name, dflt));
}

/* The RedisConfig of a settings table (config.redis()) at `t`; its
** strings stay in the table, the sentinel addresses in a userdata left on
** the stack (both live until the call returns: backend_new copies). */
static void read_redis_config(lua_State *L, int t, RedisConfig *cfg)
{
    PoolConfig *pc = &cfg->pool;
    memset(cfg, 0, sizeof(*cfg));
    pc->host = opt_field(L, t, "host");
    pc->port = (int)num_field(L, t, "port", 6379);
    pc->db = (int)num_field(L, t, "db", 0);
    pc->username = opt_field(L, t, "username");
    pc->password = opt_field(L, t, "password");
    pc->size = (size_t)num_field(L, t, "pool_size", 1);
    pc->connect_timeout_ms = ms_field(L, t, "connect_timeout", 2);
    pc->command_timeout_ms = ms_field(L, t, "command_timeout", 1);
    cfg->sentinel_master = opt_field(L, t, "sentinel_master");
    cfg->sentinel_username = opt_field(L, t, "sentinel_username");
    cfg->sentinel_password = opt_field(L, t, "sentinel_password");
    lua_getfield(L, t, "sentinels");
    size_t n = lua_istable(L, -1) ? lua_objlen(L, -1) : 0;
    if (n > 0) {
        int list = lua_gettop(L);
        RedisAddr *addrs = lua_newuserdata(L, n * sizeof(*addrs));
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, list, (int)i + 1);
            int one = lua_gettop(L);
            addrs[i].host = opt_field(L, one, "host");
            addrs[i].port = (int)num_field(L, one, "port", 26379);
            lua_pop(L, 1);
        }
        cfg->sentinels = addrs;
        cfg->nsentinels = n;
    }
}

static int start_connect(Engine *e, Req *r, lua_State *L)
{
    RedisConfig cfg;
    read_redis_config(L, 2, &cfg);
    int rc = engine_connect(e, &cfg, on_req_connected, r);
    if (rc < 0) { /* a connect is already pending */
        EngineResult res = {0};
        on_req_done(r, &res);
        return 0;
    }
    return rc;
}

/* core.connect(m, settings): settings as config.redis() returns them */
static int core_connect(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    return run_request(L, m, REQ_CONNECT, NULL, 0, start_connect);
}

static void on_req_flushed(void *ud, bool flushed,
                           const EngineJournalCounts *left)
{
    Req *r = ud;
    r->left = *left;
    EngineResult res = {0};
    res.found = flushed;
    on_req_done(r, &res);
}

static int start_flush(Engine *e, Req *r, lua_State *L)
{
    RedisConfig cfg;
    bool have_cfg = lua_istable(L, 2);
    if (have_cfg)
        read_redis_config(L, 2, &cfg);
    uint64_t ms = seconds_to_ms(lua_tonumber(L, 3));
    return engine_flush(e, have_cfg ? &cfg : NULL, ms, on_req_flushed, r);
}

/* core.flush(m, settings | nil, seconds) -> flushed, keys, patterns,
** overflow: at exit, waits up to `seconds` for Redis to take the outage
** journal (connecting with settings when disconnected). */
static int core_flush(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    luaL_checknumber(L, 3);
    return run_request(L, m, REQ_FLUSH, NULL, 0, start_flush);
}

/* core.disconnect(m) */
static int core_disconnect(lua_State *L)
{
    engine_disconnect(check_manager(L, 1)->engine);
    return 0;
}

static void set_number(lua_State *L, const char *name, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, name);
}

/* core.stats(m) -> table of the engine's counters */
static int core_stats(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    EngineStats st;
    engine_stats(m->engine, &st);
    lua_createtable(L, 0, 16);
    set_number(L, "hits", (double)st.hits);
    set_number(L, "misses", (double)st.misses);
    set_number(L, "sets", (double)st.sets);
    set_number(L, "deletes", (double)st.deletes);
    set_number(L, "errors", (double)st.errors);
    set_number(L, "reconnects", (double)st.reconnects);
    set_number(L, "evictions", (double)st.store.evictions);
    set_number(L, "expired", (double)st.store.expired);
    set_number(L, "keys", (double)st.store.keys);
    set_number(L, "memory_bytes", (double)st.store.memory_bytes);
    set_number(L, "max_items", (double)st.store.max_items);
    set_number(L, "max_memory", (double)st.store.max_bytes);
    set_number(L, "journal_overflows", (double)st.journal_overflows);
    lua_pushboolean(L, st.using_redis);
    lua_setfield(L, -2, "using_redis");
    if (st.last_error != NULL) {
        lua_pushstring(L, st.last_error);
        lua_setfield(L, -2, "last_error");
    }
    return 1;
}

/* -- Codec ----------------------------------------------------------------
** Exposed for tools and specs: what the engine stores for a value. */

/* core.encode(value) -> bytes; uses the Runtime's scratch buffer. */
static int core_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    CodecBuf *b = &runtime_of(L)->scratch;
    codec_encode(L, 1, b, "value");
    lua_pushlstring(L, b->data, b->len);
    return 1;
}

/* core.strerror(code) -> message of a CR_* status code */
static int core_strerror(lua_State *L)
{
    lua_pushstring(L, cr_strerror((int)luaL_checkinteger(L, 1)));
    return 1;
}

/* core.encode_results(...) -> bytes: one value as itself, any other count
** as a multi value (what `cached` stores). */
/* Decoding pushes every result at once, and a C function may push at most
** LUAI_MAXCSTACK (8000) values, fewer when called deep in a coroutine:
** more results are refused when stored, not found unreadable later. */
#define MAX_CACHED_RESULTS 7000

static int core_encode_results(lua_State *L)
{
    int n = lua_gettop(L);
    CodecBuf *b = &runtime_of(L)->scratch;
    if (n > MAX_CACHED_RESULTS)
        return luaL_error(L, "cannot cache %d results: at most %d", n,
                          MAX_CACHED_RESULTS);
    if (n == 1)
        codec_encode(L, 1, b, "result[1]");
    else
        codec_encode_multi(L, 1, n, b);
    lua_pushlstring(L, b->data, b->len);
    return 1;
}

/* core.decode(bytes) -> value, true | nil, false */
static int core_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    if (codec_decode(L, s, len, 0) == 1) {
        lua_pushboolean(L, 1);
        return 2;
    }
    lua_pushnil(L);
    lua_pushboolean(L, 0);
    return 2;
}

/* -- Direct access for the FFI ---------------------------------------------
** lua/cache/direct.lua reads the memory store through these plain C
** functions: an FFI call costs a few ns where a lua_CFunction costs ~60, and
** a hit on a string value then needs no C API call at all. The table of
** function pointers is handed to Lua as a light userdata, so the same code
** works in the executable and in the loadable module (no dlsym needed). */

static int direct_get(Engine *e, const char *key, size_t klen, const char **val,
                      size_t *vlen)
{
    if (engine_using_redis(e))
        return -1;
    *val = engine_get(e, key, klen, vlen);
    return *val != NULL;
}

/* Stores the string `str` as its MessagePack encoding: header and body are
** assembled on the stack for short strings, in a temporary block above. */
static int direct_set_string(Engine *e, const char *key, size_t klen,
                             const char *str, size_t slen, double ttl_ms)
{
    unsigned char small[512];
    /* Over the size limit: core.set reports it with the sizes in full. */
    if (engine_using_redis(e) || klen + slen + 5 > engine_max_value_bytes(e))
        return 1;
    size_t total = slen + 5;
    unsigned char *buf = total <= sizeof(small) ? small : malloc(total);
    if (buf == NULL)
        return CR_ENOMEM;
    size_t hlen = codec_string_header(str, slen, buf);
    memcpy(buf + hlen, str, slen);
    int rc = engine_set(e, key, klen, (const char *)buf, hlen + slen,
                        (uint64_t)ttl_ms);
    if (buf != small)
        free(buf);
    return rc;
}

static const CacheDirectApi direct_api = {
    .version = CACHE_DIRECT_API_VERSION,
    .size = sizeof(CacheDirectApi),
    .get = direct_get,
    .corrupt = engine_get_corrupt,
    .set_string = direct_set_string,
};

/* core.direct_api() -> light userdata: const CacheDirectApi *, whose
** version and size direct.lua checks against its cdef. */
static int core_direct_api(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&direct_api);
    return 1;
}

/* core.engine_ptr(m) -> light userdata: the manager's Engine *, valid while
** the manager is alive and open. */
static int core_engine_ptr(lua_State *L)
{
    lua_pushlightuserdata(L, check_manager(L, 1)->engine);
    return 1;
}

/* core.decode_results(bytes) -> true, values... | false
** A multi value comes back as its values, any other value as itself. */
static int core_decode_results(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_pushboolean(L, 1);
    int n = codec_decode(L, s, len, 1);
    if (n >= 0)
        return n + 1;
    lua_pushboolean(L, 0);
    return 1;
}

/* -- Runtime (the loop) ------------------------------------------------- */

/* core.now() -> seconds on the monotonic clock, as a float */
static int core_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
    return 1;
}

/* core.timer(seconds) -> id: the loop reports id after that long. */
static int core_timer(lua_State *L)
{
    lua_Number sec = luaL_checknumber(L, 1);
    luaL_argcheck(L, sec >= 0 && sec < 1e12, 1, "seconds out of range");
    EvLoop *loop = runtime_sched(L);
    int64_t id = evloop_new_id(loop);
    /* Round up: a sleep never ends early. */
    if (evloop_timer(loop, (uint64_t)ceil(sec * 1000.0), id) != CR_OK)
        return luaL_error(L, "%s", cr_strerror(CR_ENOMEM));
    lua_pushnumber(L, (lua_Number)id);
    return 1;
}

/* core.poll(block) -> array of woken ids (possibly empty), and how many
** timers and requests are still pending */
static int core_poll(lua_State *L)
{
    EvLoop *s = runtime_sched(L);
    size_t n = evloop_poll(s, lua_toboolean(L, 1));
    if (runtime_of(L)->logs != NULL || runtime_of(L)->logs_dropped > 0)
        drain_logs(L, runtime_of(L));
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushnumber(L, (lua_Number)s->woken[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    s->nwoken = 0;
    lua_pushnumber(L, (lua_Number)(s->ntimers + s->npending));
    return 2;
}

static int runtime_gc(lua_State *L)
{
    Runtime *rt = lua_touserdata(L, 1);
    evloop_close(&rt->sched);
    while (rt->head != NULL) /* begun, never finished: the state is gone */
        req_free(rt->head);
    while (rt->logs != NULL) {
        LogEntry *entry = rt->logs;
        rt->logs = entry->next;
        free(entry);
    }
    codec_buf_free(&rt->scratch);
    return 0;
}

/* -- Registration ------------------------------------------------------- */

static const luaL_Reg core_funcs[] = {
    {"new", core_new},
    {"close", manager_close},
    {"get", core_get},
    {"set", core_set},
    {"finish", core_finish},
    {"connect", core_connect},
    {"disconnect", core_disconnect},
    {"delete", core_delete},
    {"exists", core_exists},
    {"clear", core_clear},
    {"stats", core_stats},
    {"encode", core_encode},
    {"encode_results", core_encode_results},
    {"set_raw", core_set_raw},
    {"decode", core_decode},
    {"strerror", core_strerror},
    {"decode_results", core_decode_results},
    {"direct_api", core_direct_api},
    {"engine_ptr", core_engine_ptr},
    {"now", core_now},
    {"timer", core_timer},
    {"poll", core_poll},
    {"flush", core_flush},
    {"on_log", core_on_log},
    {NULL, NULL},
};

/* [-0, +1, m] Pushes this state's Runtime, creating it on first use. */
static void push_runtime(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, RUNTIME_KEY);
    if (!lua_isnil(L, -1))
        return;
    lua_pop(L, 1);
    Runtime *rt = lua_newuserdata(L, sizeof(*rt));
    memset(rt, 0, sizeof(*rt));
    if (evloop_init(&rt->sched) != CR_OK)
        luaL_error(L, "cannot create the event loop");
    luaL_newmetatable(L, RUNTIME_MT);
    lua_pushcfunction(L, runtime_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, RUNTIME_KEY);
}

CR_EXPORT int luaopen_cache_core(lua_State *L)
{
    push_runtime(L); /* first, so it is finalized after every manager */
    if (luaL_newmetatable(L, MANAGER_MT)) {
        lua_pushvalue(L, -2);
        lua_pushcclosure(L, manager_close, 1);
        lua_setfield(L, -2, "__gc");
        lua_pushliteral(L, "cachert.Manager");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
    lua_createtable(L, 0, sizeof(core_funcs) / sizeof(core_funcs[0]));
    for (const luaL_Reg *f = core_funcs; f->name != NULL; f++) {
        lua_pushvalue(L, -2);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -2, f->name);
    }
    lua_pushinteger(L, CODEC_MAX_DEPTH);
    lua_setfield(L, -2, "MAX_DEPTH");
    return 1;
}
