/*
** lhttpd.c -- the thin binding of the metrics endpoint (httpd.c).
**
** A server is a userdata holding the Httpd and the id the loop reports
** when requests wait for an answer (evloop_notify). Lua never runs in the
** server's callbacks: lua/cache/metrics.lua hears of the id from the
** scheduler's poll, renders the text and hands it to core.httpd_respond.
** Open servers are also on the Runtime's list, so that the Runtime closes
** any left open before it closes the loop, whatever the order finalizers
** run in at lua_close.
*/
#include "lhttpd.h"

#include <math.h>
#include <string.h>

#include <lauxlib.h>

#include "httpd.h"
#include "status.h"

#define HTTPD_MT "cachert.HttpServer"

struct HttpBinding {
    Httpd *h; /* NULL once closed */
    Runtime *rt;
    int64_t id;
    struct HttpBinding *prev, *next; /* on rt->servers while open */
};
typedef struct HttpBinding HttpBinding;

static const char PLAIN_TEXT[] = "text/plain; charset=utf-8";

/* -- Helpers ------------------------------------------------------------ */

static bool on_ready(void *ud)
{
    HttpBinding *b = ud;
    return evloop_notify(&b->rt->sched, b->id);
}

static void close_binding(HttpBinding *b)
{
    if (b->h == NULL)
        return;
    httpd_close(b->h);
    b->h = NULL;
    if (b->prev != NULL)
        b->prev->next = b->next;
    else
        b->rt->servers = b->next;
    if (b->next != NULL)
        b->next->prev = b->prev;
    b->prev = b->next = NULL;
}

/* [-0, +0, v] The open server at `idx`; raises for anything else. */
static HttpBinding *check_server(lua_State *L, int idx)
{
    HttpBinding *b = luaL_checkudata(L, idx, HTTPD_MT);
    if (b->h == NULL)
        luaL_error(L, "the metrics server is closed");
    return b;
}

/* -- Functions ---------------------------------------------------------- */

/* core.httpd_listen(host, port, timeout_seconds, path) -> server, id |
** nil, message. The host is a numeric address; port 0 is an ephemeral
** port. The Lua side (cache.metrics) checks the arguments first. */
static int core_httpd_listen(lua_State *L)
{
    Runtime *rt = runtime_of(L);
    const char *host = luaL_checkstring(L, 1);
    lua_Number port = luaL_checknumber(L, 2);
    lua_Number timeout = luaL_checknumber(L, 3);
    const char *path = luaL_checkstring(L, 4);
    luaL_argcheck(L, port >= 0 && port <= 65535 && port == floor(port), 2,
                  "port must be an integer from 0 to 65535");
    luaL_argcheck(L, timeout > 0 && timeout <= 86400, 3,
                  "timeout must be > 0 and at most 86400 seconds");
    luaL_argcheck(L, path[0] == '/', 4, "path must start with /");
    /* The userdata first, closed: nothing to leak if anything raises. */
    HttpBinding *b = lua_newuserdata(L, sizeof(*b));
    memset(b, 0, sizeof(*b));
    b->rt = rt;
    luaL_getmetatable(L, HTTPD_MT);
    lua_setmetatable(L, -2);
    HttpdConfig cfg = {
        .host = host,
        .port = (int)port,
        .path = path,
        .timeout_ms = (uint64_t)ceil(timeout * 1000.0),
        .max_request_bytes = HTTPD_DEFAULT_MAX_REQUEST_BYTES,
        .max_conns = HTTPD_DEFAULT_MAX_CONNS,
        .on_ready = on_ready,
        .ud = b,
    };
    char err[256];
    Httpd *h = NULL;
    if (httpd_open(&rt->sched.loop, &cfg, &h, err, sizeof(err)) != CR_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    b->h = h;
    b->id = evloop_new_id(&rt->sched);
    b->next = rt->servers;
    if (rt->servers != NULL)
        rt->servers->prev = b;
    rt->servers = b;
    lua_pushnumber(L, (lua_Number)b->id);
    return 2;
}

/* core.httpd_address(server) -> host, port (as bound) */
static int core_httpd_address(lua_State *L)
{
    HttpBinding *b = check_server(L, 1);
    lua_pushstring(L, httpd_host(b->h));
    lua_pushinteger(L, httpd_port(b->h));
    return 2;
}

/* core.httpd_waiting(server) -> requests waiting for an answer */
static int core_httpd_waiting(lua_State *L)
{
    HttpBinding *b = check_server(L, 1);
    lua_pushnumber(L, (lua_Number)httpd_waiting(b->h));
    return 1;
}

/* core.httpd_respond(server, status, body, content_type?) -> true | false
** (out of memory): answers every waiting request. */
static int core_httpd_respond(lua_State *L)
{
    HttpBinding *b = check_server(L, 1);
    int status = (int)luaL_checkinteger(L, 2);
    size_t len;
    const char *body = luaL_checklstring(L, 3, &len);
    const char *type = luaL_optstring(L, 4, PLAIN_TEXT);
    luaL_argcheck(L, status >= 100 && status <= 599, 2,
                  "status must be from 100 to 599");
    lua_pushboolean(L, httpd_respond(b->h, status, type, body, len));
    return 1;
}

/* core.httpd_close(server); also __gc. Idempotent. */
static int core_httpd_close(lua_State *L)
{
    close_binding(luaL_checkudata(L, 1, HTTPD_MT));
    return 0;
}

/* -- Registration ------------------------------------------------------- */

static const luaL_Reg httpd_funcs[] = {
    {"httpd_listen", core_httpd_listen},
    {"httpd_address", core_httpd_address},
    {"httpd_waiting", core_httpd_waiting},
    {"httpd_respond", core_httpd_respond},
    {"httpd_close", core_httpd_close},
    {NULL, NULL},
};

void lhttpd_close_all(Runtime *rt)
{
    while (rt->servers != NULL)
        close_binding(rt->servers);
}

void lhttpd_open(lua_State *L)
{
    if (luaL_newmetatable(L, HTTPD_MT)) {
        lua_pushcfunction(L, core_httpd_close);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    for (const luaL_Reg *f = httpd_funcs; f->name != NULL; f++) {
        lua_pushvalue(L, -2);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -2, f->name);
    }
}
