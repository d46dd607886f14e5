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
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "engine.h"
#include "lcache.h"
#include "evloop.h"
#include "status.h"

#define MANAGER_MT  "cachert.Manager"
#define RUNTIME_MT  "cachert.Runtime"
#define RUNTIME_KEY "cachert.runtime"

typedef struct Runtime {
    EvLoop sched;
    CodecBuf scratch; /* for core.encode */
} Runtime;

typedef struct Manager {
    Engine *engine; /* NULL once closed */
    CodecBuf buf;   /* reused encode buffer; survives a raised error */
} Manager;

/* -- Helpers ------------------------------------------------------------ */

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

/* [-0, +1/2, m] Pushes `false, message` for a failed store operation. */
static int push_failure(lua_State *L, int rc)
{
    lua_pushboolean(L, 0);
    lua_pushstring(L, cr_strerror(rc));
    return 2;
}

/* -- Manager ------------------------------------------------------------ */

/* core.new(max_items, max_bytes) -> manager */
static int core_new(lua_State *L)
{
    EngineConfig cfg;
    lua_Number items = luaL_checknumber(L, 1);
    lua_Number bytes = luaL_checknumber(L, 2);
    luaL_argcheck(L, items >= 0, 1, "max_items must be >= 0");
    luaL_argcheck(L, bytes >= 0, 2, "max_bytes must be >= 0");
    cfg.max_items = (size_t)items;
    cfg.max_bytes = (size_t)bytes;
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
        m->engine = NULL;
        /* At lua_close the Runtime may be finalized first: let the loop
        ** run the close callback that frees the engine. */
        if (runtime_sched(L)->closed)
            uv_run(&runtime_sched(L)->loop, UV_RUN_NOWAIT);
    }
    codec_buf_free(&m->buf);
    return 0;
}

/* core.get(m, key, default) -> value, true | default, false */
static int core_get(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    size_t klen, vlen;
    const char *key = luaL_checklstring(L, 2, &klen);
    const char *v = engine_get(m->engine, key, klen, &vlen);
    if (v != NULL && codec_decode(L, v, vlen, 0) == 1) {
        lua_pushboolean(L, 1);
        return 2;
    }
    if (v != NULL)
        engine_get_corrupt(m->engine, key, klen);
    lua_settop(L, 3);
    lua_pushboolean(L, 0);
    return 2;
}

/* core.get_results(m, key) -> true, ... | false
** The `cached` hit path: a multi value comes back as its values. */
static int core_get_results(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    size_t klen, vlen;
    const char *key = luaL_checklstring(L, 2, &klen);
    const char *v = engine_get(m->engine, key, klen, &vlen);
    if (v != NULL) {
        int top = lua_gettop(L);
        lua_pushboolean(L, 1);
        int n = codec_decode(L, v, vlen, 1);
        if (n >= 0)
            return n + 1;
        lua_settop(L, top);
        engine_get_corrupt(m->engine, key, klen);
    }
    lua_pushboolean(L, 0);
    return 1;
}

static int finish_set(lua_State *L, Manager *m, const char *key, size_t klen,
                      uint64_t ttl_ms)
{
    int rc = engine_set(m->engine, key, klen, m->buf.data, m->buf.len, ttl_ms);
    if (rc != CR_OK)
        return push_failure(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.set(m, key, value, ttl_ms) -> true | false, err */
static int core_set(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    size_t klen;
    const char *key = luaL_checklstring(L, 2, &klen);
    luaL_checkany(L, 3);
    uint64_t ttl_ms = check_ttl_ms(L, 4);
    codec_encode(L, 3, &m->buf, "value");
    return finish_set(L, m, key, klen, ttl_ms);
}

/* core.set_results(m, key, ttl_ms, ...) -> true | false, err
** Stores every value after ttl_ms as one multi value. */
static int core_set_results(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    size_t klen;
    const char *key = luaL_checklstring(L, 2, &klen);
    uint64_t ttl_ms = check_ttl_ms(L, 3);
    codec_encode_multi(L, 4, lua_gettop(L) - 3, &m->buf);
    return finish_set(L, m, key, klen, ttl_ms);
}

/* core.set_raw(m, key, bytes, ttl_ms) -> true | false, err
** Stores bytes made by core.encode / core.encode_results. */
static int core_set_raw(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    size_t klen, vlen;
    const char *key = luaL_checklstring(L, 2, &klen);
    const char *val = luaL_checklstring(L, 3, &vlen);
    uint64_t ttl_ms = check_ttl_ms(L, 4);
    int rc = engine_set(m->engine, key, klen, val, vlen, ttl_ms);
    if (rc != CR_OK)
        return push_failure(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.delete(m, key) -> boolean */
static int core_delete(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    size_t klen;
    const char *key = luaL_checklstring(L, 2, &klen);
    lua_pushboolean(L, engine_delete(m->engine, key, klen));
    return 1;
}

/* core.exists(m, key) -> boolean */
static int core_exists(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    size_t klen;
    const char *key = luaL_checklstring(L, 2, &klen);
    lua_pushboolean(L, engine_exists(m->engine, key, klen));
    return 1;
}

/* core.clear(m, pattern) -> count */
static int core_clear(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    size_t plen;
    const char *pattern = luaL_checklstring(L, 2, &plen);
    lua_pushnumber(L, (lua_Number)engine_clear(m->engine, pattern, plen));
    return 1;
}

/* core.set_limits(m, max_items, max_bytes) */
static int core_set_limits(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    lua_Number items = luaL_checknumber(L, 2);
    lua_Number bytes = luaL_checknumber(L, 3);
    luaL_argcheck(L, items >= 0, 2, "max_items must be >= 0");
    luaL_argcheck(L, bytes >= 0, 3, "max_bytes must be >= 0");
    engine_set_limits(m->engine, (size_t)items, (size_t)bytes);
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
static int core_encode_results(lua_State *L)
{
    int n = lua_gettop(L);
    CodecBuf *b = &runtime_of(L)->scratch;
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
    *val = engine_get(e, key, klen, vlen);
    return *val != NULL;
}

/* Stores the string `str` as its MessagePack encoding: header and body are
** assembled on the stack for short strings, in a temporary block above. */
static int direct_set_string(Engine *e, const char *key, size_t klen,
                             const char *str, size_t slen, double ttl_ms)
{
    unsigned char small[512];
    if (slen > UINT32_MAX)
        return CR_ETOOBIG;
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
    .get = direct_get,
    .corrupt = engine_get_corrupt,
    .set_string = direct_set_string,
};

/* core.direct_api() -> light userdata: const CacheDirectApi * */
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

/* core.timer(seconds, id): wake `id` after that long (evloop_poll). */
static int core_timer(lua_State *L)
{
    lua_Number sec = luaL_checknumber(L, 1);
    lua_Number id = luaL_checknumber(L, 2);
    luaL_argcheck(L, sec >= 0 && sec < 1e12, 1, "seconds out of range");
    /* Round up: a sleep never ends early. */
    if (evloop_timer(runtime_sched(L), (uint64_t)ceil(sec * 1000.0),
                     (int64_t)id) != CR_OK)
        return luaL_error(L, "%s", cr_strerror(CR_ENOMEM));
    return 0;
}

/* core.poll(block) -> array of woken ids (possibly empty), pending timers */
static int core_poll(lua_State *L)
{
    EvLoop *s = runtime_sched(L);
    size_t n = evloop_poll(s, lua_toboolean(L, 1));
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushnumber(L, (lua_Number)s->woken[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    s->nwoken = 0;
    lua_pushnumber(L, (lua_Number)s->ntimers);
    return 2;
}

static int runtime_gc(lua_State *L)
{
    Runtime *rt = lua_touserdata(L, 1);
    evloop_close(&rt->sched);
    codec_buf_free(&rt->scratch);
    return 0;
}

/* -- Registration ------------------------------------------------------- */

static const luaL_Reg core_funcs[] = {
    {"new", core_new},
    {"close", manager_close},
    {"get", core_get},
    {"get_results", core_get_results},
    {"set", core_set},
    {"set_results", core_set_results},
    {"delete", core_delete},
    {"exists", core_exists},
    {"clear", core_clear},
    {"set_limits", core_set_limits},
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
