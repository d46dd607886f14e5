/*
** lcache.c -- cache.core: the thin Lua binding of the managers (one
** engine each) and of the codec; the module's registration. The loop and
** the requests tasks wait on are in lruntime.c, the FFI's functions in
** ldirect.c.
**
** The public module is lua/cache/init.lua; it validates arguments, applies
** the namespace and converts TTLs to milliseconds before calling here, so
** each function below is one whole operation (look up + decode, encode +
** store) and crosses the C boundary once.
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
#include "ldirect.h"
#include "lhttpd.h"
#include "lruntime.h"
#include "log.h"
#include "status.h"

#define MANAGER_MT "cachert.Manager"
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

/* [-0, +0, v] A TTL argument already converted to milliseconds. */
static uint64_t check_ttl_ms(lua_State *L, int idx)
{
    lua_Number ms = luaL_checknumber(L, idx);
    luaL_argcheck(L, ms >= 0 && ms < 9.0e15, idx, "ttl out of range");
    return (uint64_t)ms;
}

static int check_log_level(lua_State *L, int idx)
{
    return luaL_checkoption(L, idx, "warn", log_level_names);
}

/* -- Manager ------------------------------------------------------------ */

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

/* -- Manager operations -------------------------------------------------- */

/* The engine call of each request kind that takes one key (or pattern). */
typedef int (*keyed_async_fn)(Engine *e, const char *key, size_t klen,
                              engine_done_cb done, void *ud);

static const keyed_async_fn keyed_async[] = {
    [REQ_GET] = engine_get_async,       [REQ_GET_RESULTS] = engine_get_async,
    [REQ_DELETE] = engine_delete_async, [REQ_EXISTS] = engine_exists_async,
    [REQ_CLEAR] = engine_clear_async,   [REQ_PTTL] = engine_pttl_async,
    [REQ_GET_RAW] = engine_get_async,
};

/* Starts a request of a one-key kind; the key is argument 2. */
static int start_keyed(Engine *e, Req *r, lua_State *L)
{
    size_t klen;
    const char *key = lua_tolstring(L, 2, &klen);
    if (r->room != NULL) /* a get: one block for the Req and the engine */
        return engine_get_async_in(e, r->room, r->room_size, key, klen,
                                   on_req_done, r);
    return keyed_async[r->kind](e, key, klen, on_req_done, r);
}

/* core.get(m, key, unpack_multi) */
static int core_get(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    size_t klen;
    const char *key = luaL_checklstring(L, 2, &klen);
    int kind = lua_toboolean(L, 3) ? REQ_GET_RESULTS : REQ_GET;
    return run_request(L, m->engine, kind, key, klen, start_keyed);
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
    return run_request(L, m->engine, REQ_SET, NULL, 0, start_set);
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
    return run_request(L, m->engine, REQ_SET, NULL, 0, start_set);
}

/* core.get_raw(m, key) -> found, bytes: the stored bytes, undecoded */
static int core_get_raw(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    luaL_checkstring(L, 2);
    return run_request(L, m->engine, REQ_GET_RAW, NULL, 0, start_keyed);
}

static int start_scan(Engine *e, Req *r, lua_State *L)
{
    size_t plen;
    size_t node = (size_t)lua_tonumber(L, 2);
    const char *cursor = lua_tostring(L, 3);
    const char *pattern = lua_tolstring(L, 4, &plen);
    size_t count = (size_t)lua_tonumber(L, 5);
    return engine_scan_async(e, node, cursor, pattern, plen, count,
                             lua_toboolean(L, 6), on_req_done, r);
}

/* core.scan(m, node, cursor, pattern, count, unlink): one step of a key
** listing (engine_scan_async); start at node 0, cursor "0". */
static int core_scan(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    check_size_arg(L, 2, "node", MAX_SIZE_ARG, "2^53 - 1");
    luaL_checkstring(L, 3);
    luaL_checkstring(L, 4);
    check_size_arg(L, 5, "count", 1e9, "1e9");
    lua_settop(L, 6);
    return run_request(L, m->engine, REQ_SCAN, NULL, 0, start_scan);
}

static int start_info(Engine *e, Req *r, lua_State *L)
{
    return engine_info_async(e, (size_t)lua_tonumber(L, 2), lua_tostring(L, 3),
                             on_req_done, r);
}

/* core.info(m, node, section?): node `node`'s INFO text */
static int core_info(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    check_size_arg(L, 2, "node", MAX_SIZE_ARG, "2^53 - 1");
    luaL_optstring(L, 3, NULL);
    lua_settop(L, 3);
    return run_request(L, m->engine, REQ_INFO, NULL, 0, start_info);
}

/* core.delete(m, key) */
static int core_delete(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    luaL_checkstring(L, 2);
    return run_request(L, m->engine, REQ_DELETE, NULL, 0, start_keyed);
}

/* core.exists(m, key) */
static int core_exists(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    luaL_checkstring(L, 2);
    return run_request(L, m->engine, REQ_EXISTS, NULL, 0, start_keyed);
}

/* core.pttl(m, key): milliseconds left (-1: no expiry, -2: missing) */
static int core_pttl(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    luaL_checkstring(L, 2);
    return run_request(L, m->engine, REQ_PTTL, NULL, 0, start_keyed);
}

static int start_lock(Engine *e, Req *r, lua_State *L)
{
    size_t klen, tlen;
    const char *key = lua_tolstring(L, 2, &klen);
    const char *token = lua_tolstring(L, 3, &tlen);
    if (r->kind == REQ_UNLOCK)
        return engine_unlock_async(e, key, klen, token, tlen, on_req_done, r);
    uint64_t ttl_ms = (uint64_t)lua_tonumber(L, 4);
    return engine_lock_async(e, key, klen, token, tlen, ttl_ms, on_req_done, r);
}

/* core.lock(m, key, token, ttl_ms) -> taken: SET key token NX PX ttl_ms */
static int core_lock(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    luaL_checkstring(L, 2);
    luaL_checkstring(L, 3);
    check_ttl_ms(L, 4);
    return run_request(L, m->engine, REQ_LOCK, NULL, 0, start_lock);
}

/* core.unlock(m, key, token) -> released (only while key holds token) */
static int core_unlock(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    luaL_checkstring(L, 2);
    luaL_checkstring(L, 3);
    return run_request(L, m->engine, REQ_UNLOCK, NULL, 0, start_lock);
}

/* -- Near cache (lua/cache/near.lua keeps the values) --------------------- */

/* core.near_state(m) -> the engine's EngineNear, as a light userdata for
** the FFI (valid while the manager is open) */
static int core_near_state(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    lua_pushlightuserdata(L, (void *)engine_near_state(m->engine));
    return 1;
}

static void push_key(void *ud, const char *key, size_t klen)
{
    lua_State *L = ud;
    lua_pushlstring(L, key, klen);
    lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
}

/* core.near_drain(m) -> true (evict everything) | false, {keys...} */
static int core_near_drain(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    lua_pushboolean(L, 0);
    lua_newtable(L);
    if (!engine_near_drain(m->engine, push_key, L))
        return 2;
    lua_pushboolean(L, 1);
    return 1;
}

/* core.clear(m, pattern) */
static int core_clear(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    luaL_checkstring(L, 2);
    return run_request(L, m->engine, REQ_CLEAR, NULL, 0, start_keyed);
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
** strings stay in the table, the sentinel and the cluster node addresses
** in one userdata per list left on the stack (all live until the call
** returns: backend_new copies). */
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
    lua_getfield(L, t, "tls");
    if (lua_istable(L, -1)) {
        int tls = lua_gettop(L);
        pc->tls.enabled = true;
        pc->tls.ca_file = opt_field(L, tls, "ca_file");
        pc->tls.cert_file = opt_field(L, tls, "cert_file");
        pc->tls.key_file = opt_field(L, tls, "key_file");
        pc->tls.server_name = opt_field(L, tls, "server_name");
        lua_getfield(L, tls, "verify");
        pc->tls.verify = lua_isnil(L, -1) || lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1); /* its strings stay alive in the settings table */
    cfg->sentinel_master = opt_field(L, t, "sentinel_master");
    cfg->sentinel_username = opt_field(L, t, "sentinel_username");
    cfg->sentinel_password = opt_field(L, t, "sentinel_password");
    lua_getfield(L, t, "cluster");
    cfg->cluster = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, t, "near");
    pc->tracking.enabled = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, t, "near_prefix"); /* stays alive in `t` */
    if (lua_isstring(L, -1))
        pc->tracking.prefix = lua_tolstring(L, -1, &pc->tracking.prefix_len);
    lua_pop(L, 1);
    /* config.redis() never gives both lists; each still gets a userdata
    ** of its own, so the code does not depend on it */
    const struct {
        const char *field;
        int port; /* of an address without one */
        const RedisAddr **addrs;
        size_t *n;
    } lists[] = {
        {"sentinels", 26379, &cfg->sentinels, &cfg->nsentinels},
        {"cluster_nodes", 6379, &cfg->cluster_nodes, &cfg->ncluster_nodes},
    };
    for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]); l++) {
        lua_getfield(L, t, lists[l].field);
        size_t n = lua_istable(L, -1) ? lua_objlen(L, -1) : 0;
        if (n == 0) {
            lua_pop(L, 1);
            continue;
        }
        int list = lua_gettop(L);
        RedisAddr *addrs = lua_newuserdata(L, n * sizeof(*addrs));
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, list, (int)i + 1);
            int one = lua_gettop(L);
            addrs[i].host = opt_field(L, one, "host");
            addrs[i].port = (int)num_field(L, one, "port", lists[l].port);
            lua_pop(L, 1);
        }
        lua_replace(L, list); /* the userdata stays; the hosts stay in `t` */
        *lists[l].addrs = addrs;
        *lists[l].n = n;
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
    return run_request(L, m->engine, REQ_CONNECT, NULL, 0, start_connect);
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
    return run_request(L, m->engine, REQ_FLUSH, NULL, 0, start_flush);
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
    set_number(L, "invalidations", (double)st.invalidations);
    lua_pushboolean(L, st.using_redis);
    lua_setfield(L, -2, "using_redis");
    if (st.cluster) {
        lua_createtable(L, 0, 3);
        set_number(L, "nodes", (double)st.cluster_nodes);
        set_number(L, "nodes_up", (double)st.cluster_nodes_up);
        set_number(L, "slots_on_memory", (double)st.cluster_slots_on_memory);
        lua_setfield(L, -2, "cluster");
    }
    if (st.last_error != NULL) {
        lua_pushstring(L, st.last_error);
        lua_setfield(L, -2, "last_error");
    }
    return 1;
}

/* core.advance_clock(m, ms) -> total ms: moves the manager's memory-store
** clock forward (cache.testing.advance); ms = 0 only reads the total. */
static int core_advance_clock(lua_State *L)
{
    Manager *m = check_manager(L, 1);
    lua_Number ms = luaL_checknumber(L, 2);
    luaL_argcheck(L, ms >= 0 && ms < 9.0e15, 2,
                  "milliseconds must be >= 0 and < 9e15");
    lua_pushnumber(L, (double)engine_advance_clock(m->engine, (uint64_t)ms));
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

/* -- Registration ------------------------------------------------------- */

static const luaL_Reg core_funcs[] = {
    {"new", core_new},
    {"close", manager_close},
    {"get", core_get},
    {"set", core_set},
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
    {"flush", core_flush},
    {"pttl", core_pttl},
    {"get_raw", core_get_raw},
    {"scan", core_scan},
    {"info", core_info},
    {"lock", core_lock},
    {"unlock", core_unlock},
    {"near_state", core_near_state},
    {"near_drain", core_near_drain},
    {"advance_clock", core_advance_clock},
    {NULL, NULL},
};

/* [-0, +0, m] t[f.name] = f as a closure over the Runtime, with the
** module table on top and the Runtime below it. */
static void add_function(lua_State *L, const luaL_Reg *f)
{
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, f->func, 1);
    lua_setfield(L, -2, f->name);
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
    lua_createtable(L, 0, 32);
    for (const luaL_Reg *f = core_funcs; f->name != NULL; f++)
        add_function(L, f);
    for (const luaL_Reg *f = runtime_funcs; f->name != NULL; f++)
        add_function(L, f);
    lhttpd_open(L);
    lua_pushinteger(L, CODEC_MAX_DEPTH);
    lua_setfield(L, -2, "MAX_DEPTH");
    return 1;
}
