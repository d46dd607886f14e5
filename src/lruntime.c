/*
** lruntime.c -- cache.core's runtime: the libuv loop the scheduler polls,
** the requests tasks wait on, and the queue of log messages for the Lua
** handler.
**
** Per-state context: one Runtime userdata (the loop) is the first upvalue
** of every cache.core function; no C globals, so two lua_States never
** collide.
*/
#include "lruntime.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lhttpd.h"
#include "log.h"
#include "reply.h"
#include "status.h"

Runtime *runtime_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

EvLoop *runtime_sched(lua_State *L)
{
    return &runtime_of(L)->sched;
}

/* -- Logging ------------------------------------------------------------ */

/* The engines' Logger: one line on stderr, or queued for the handler. */
void runtime_log(void *ud, int level, const char *msg)
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

static void req_free(Req *r)
{
    if (r->owned != NULL)
        free(r->owned);
    reply_release(r->reply);
    if (!r->heap)
        return;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        r->rt->head = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    else
        r->rt->tail = r->prev;
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
void detach_requests(const Runtime *rt, const Engine *e)
{
    for (Req *r = rt->head; r != NULL; r = r->next)
        if (r->engine == e)
            r->engine = NULL;
}

/* Keeps a scan step's page in `r` (the keys packed in r->val). */
static void copy_page(Req *r, const EngineScanPage *page)
{
    size_t total = 1;
    for (size_t i = 0; i < page->nkeys; i++)
        total += sizeof(size_t) + page->klens[i];
    r->owned = malloc(total);
    if (r->owned == NULL) {
        r->status = CR_ENOMEM;
        return;
    }
    r->val = r->owned;
    char *p = r->owned;
    for (size_t i = 0; i < page->nkeys; i++) {
        memcpy(p, &page->klens[i], sizeof(size_t));
        memcpy(p + sizeof(size_t), page->keys[i], page->klens[i]);
        p += sizeof(size_t) + page->klens[i];
    }
    r->vlen = (size_t)(p - r->owned);
    r->nkeys = page->nkeys;
    r->more = !page->done;
    r->node = page->next_node;
    snprintf(r->cursor, sizeof(r->cursor), "%s", page->next_cursor);
    r->memory = page->memory;
}

void on_req_done(void *ud, const EngineResult *res)
{
    Req *r = ud;
    r->done = true;
    r->status = res->status;
    r->found = res->found;
    r->count = res->count;
    r->ttl_ms = res->ttl_ms;
    if (res->err != NULL)
        snprintf(r->err, sizeof(r->err), "%s", res->err);
    if (res->page != NULL)
        copy_page(r, res->page);
    if (res->val != NULL && res->reply != NULL) {
        /* decoded from the reply itself when the task finishes */
        r->reply = reply_keep(res->reply);
        r->val = res->val;
        r->vlen = res->vlen;
    } else if (res->val != NULL) {
        r->owned = malloc(res->vlen ? res->vlen : 1);
        if (r->owned != NULL) {
            memcpy(r->owned, res->val, res->vlen);
            r->val = r->owned;
            r->vlen = res->vlen;
        } else {
            r->status = CR_ENOMEM; /* reported as a miss */
        }
    }
    if (!r->in_call)
        evloop_wake(&r->rt->sched, r->id);
}

void on_req_connected(void *ud, bool using_redis)
{
    EngineResult res = {0};
    res.found = using_redis;
    on_req_done(ud, &res);
}

/* [-0, +n, m] The results of a scan step or an INFO request. */
static int push_inspection(lua_State *L, const Req *r)
{
    if (r->status != CR_OK) {
        lua_pushnil(L);
        lua_pushstring(L, r->err[0] ? r->err : cr_strerror(r->status));
        return 2;
    }
    if (r->kind == REQ_INFO) {
        if (r->found)
            lua_pushlstring(L, r->val, r->vlen);
        else
            lua_pushboolean(L, 0);
        lua_pushnumber(L, (lua_Number)r->count);
        return 2;
    }
    lua_createtable(L, (int)r->nkeys, 0);
    const char *p = r->val;
    for (size_t i = 0; i < r->nkeys; i++) {
        size_t klen;
        memcpy(&klen, p, sizeof(klen));
        lua_pushlstring(L, p + sizeof(klen), klen);
        lua_rawseti(L, -2, (int)i + 1);
        p += sizeof(klen) + klen;
    }
    if (r->more)
        lua_pushnumber(L, (lua_Number)r->node);
    else
        lua_pushnil(L);
    lua_pushstring(L, r->cursor);
    lua_pushnumber(L, (lua_Number)r->count);
    lua_pushstring(L, r->memory ? "memory" : "redis");
    return 5;
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
    case REQ_GET_RAW:
        lua_pushboolean(L, r->found && r->status == CR_OK);
        if (!r->found || r->status != CR_OK)
            return 1;
        lua_pushlstring(L, r->val, r->vlen);
        return 2;
    case REQ_SCAN:
    case REQ_INFO:
        return push_inspection(L, r);
    case REQ_PTTL:
        lua_pushnumber(L, r->status == CR_OK ? (lua_Number)r->ttl_ms : -2);
        return 1;
    case REQ_FLUSH:
        lua_pushboolean(L, r->found);
        lua_pushnumber(L, (lua_Number)r->left.keys);
        lua_pushnumber(L, (lua_Number)r->left.patterns);
        lua_pushboolean(L, r->left.overflow);
        return 4;
    default: /* REQ_DELETE, REQ_EXISTS, REQ_CONNECT, REQ_LOCK, REQ_UNLOCK */
        lua_pushboolean(L, r->found);
        return 1;
    }
}

int run_request(lua_State *L, Engine *e, int kind, const char *key, size_t klen,
                req_start_fn start)
{
    Req local;
    Runtime *rt = runtime_of(L);
    bool heap =
        engine_using_redis(e) || kind == REQ_CONNECT || kind == REQ_FLUSH;
    Req *r = &local;
    size_t room_at = 0, room = 0;
    if (heap) {
        if (key != NULL && (kind == REQ_GET || kind == REQ_GET_RESULTS)) {
            size_t align = _Alignof(max_align_t);
            room_at = (sizeof(*r) + klen + align - 1) / align * align;
            room = engine_get_room(klen);
        }
        r = malloc(room > 0 ? room_at + room : sizeof(*r) + klen);
        if (r == NULL)
            return luaL_error(L, "%s", cr_strerror(CR_ENOMEM));
    }
    memset(r, 0, sizeof(*r));
    if (room > 0) {
        r->room = (char *)r + room_at;
        r->room_size = room;
    }
    r->rt = rt;
    r->engine = e;
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
    int pending = start(e, r, L);
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

/* core.poll(block [, ids]) -> n, pending: runs one loop iteration; the ids
** woken since the last poll (possibly none) go to ids[1..n] (entries after
** n are left as they were), and pending counts the timers and requests
** still out. The scheduler passes the same table on every poll, so a poll
** allocates nothing once the table has grown to the largest batch. */
static int core_poll(lua_State *L)
{
    EvLoop *s = runtime_sched(L);
    bool has_buf = !lua_isnoneornil(L, 2);
    if (has_buf)
        luaL_checktype(L, 2, LUA_TTABLE);
    size_t n = evloop_poll(s, lua_toboolean(L, 1));
    if (runtime_of(L)->logs != NULL || runtime_of(L)->logs_dropped > 0)
        drain_logs(L, runtime_of(L));
    for (size_t i = 0; has_buf && i < n; i++) {
        lua_pushnumber(L, (lua_Number)s->woken[i]);
        lua_rawseti(L, 2, (int)i + 1);
    }
    s->nwoken = 0;
    lua_pushnumber(L, (lua_Number)n);
    lua_pushnumber(L, (lua_Number)(s->ntimers + s->npending));
    return 2;
}

static int runtime_gc(lua_State *L)
{
    Runtime *rt = lua_touserdata(L, 1);
    lhttpd_close_all(rt);
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

/* [-0, +1, m] Pushes this state's Runtime, creating it on first use. */
void push_runtime(lua_State *L)
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

const luaL_Reg runtime_funcs[] = {
    {"finish", core_finish}, {"now", core_now},       {"timer", core_timer},
    {"poll", core_poll},     {"on_log", core_on_log}, {NULL, NULL},
};
