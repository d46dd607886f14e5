/*
** main.c -- the cachert executable: command line, Lua state, exit codes.
**
**   cachert [options] [script [args...]]
**
** Options follow luajit: -e chunk, -l name, -i, -v (also --version),
** -h (also --help), --, and "-" for stdin; with nothing to run, a terminal
** gets the prompt and a piped stdin is executed as the script. Every chunk
** (each -e, the script, each interactive line) runs as the main task of the
** scheduler in lua/cachert.lua, on the libuv loop, until every task it
** spawned has finished. The Lua modules of lua/ are compiled into the
** executable, so `require "cache"` needs no path set-up.
**
** The end of the program is one path, however it ends (the last chunk
** returned, an uncaught error, os.exit, SIGINT/SIGTERM/SIGHUP): the
** scheduler's exit phase runs the cachert.at_exit hooks on the loop, then
** the Lua state is closed, which closes every manager. Signals are caught
** only when no interactive prompt will run (see evloop.h); at the prompt
** they keep their default action, as in luajit.
*/
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>

#include "conn.h"
#include "evloop.h"
#include "lcache.h"
#include "luasrc.h"

#define PROGNAME "cachert"
#define PROMPT   "> "
#define PROMPT2  ">> "

static const char usage_text[] =
    "usage: " PROGNAME " [options]... [script [args]...]\n"
    "Runs a Lua script on cachert's event loop, with the cache module.\n"
    "Available options are:\n"
    "  -e chunk  Execute string 'chunk'.\n"
    "  -l name   Require library 'name'.\n"
    "  -i        Enter interactive mode after executing 'script'.\n"
    "  -v        Show version information (also --version).\n"
    "  -h        Show this help (also --help).\n"
    "  --metrics HOST:PORT  Serve cache.metrics() (Prometheus) at\n"
    "            http://HOST:PORT/metrics while the program runs ([::1]:PORT\n"
    "            for IPv6; only that address is bound).\n"
    "  --        Stop handling options.\n"
    "  -         Execute stdin and stop handling options.\n"
    "With no script, starts an interactive prompt (like luajit); when stdin "
    "is\n"
    "not a terminal, executes it instead.\n"
    "\n"
    "usage: " PROGNAME " get KEY | keys PATTERN | clear PATTERN | stats | "
    "help [command]\n"
    "Inspects the cache in Redis (see '" PROGNAME " help', docs/cli.md):\n"
    "  get KEY        Print a key's value, decoded, and its TTL.\n"
    "  keys PATTERN   List the keys matching a glob (SCAN), --limit N.\n"
    "  clear PATTERN  Delete the keys matching a glob (SCAN + UNLINK).\n"
    "  stats          Print the server's and the cache's figures.\n"
    "  help           Print the commands' options and exit codes.\n"
    "To run a script named like a command, give its path (./get) or put\n"
    "-- before it (" PROGNAME " -- get).\n";

/* The inspection commands (lua/cachert/cli.lua): a first non-option
** argument naming one runs it instead of a script. */
static const char *const subcommands[] = {"get",   "keys", "clear",
                                          "stats", "help", NULL};

/* -- Helpers ------------------------------------------------------------ */

static void print_version(void)
{
    printf(PROGNAME " " CACHERT_VERSION " -- %s\n", LUAJIT_VERSION);
}

/* [-1, +0, -] Prints the message on top of the stack and pops it. */
static void report(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, PROGNAME ": %s\n", msg != NULL ? msg : "(error object)");
    fflush(stderr);
    lua_pop(L, 1);
}

static int traceback(lua_State *L)
{
    if (!lua_isstring(L, 1))
        return 1;
    lua_getglobal(L, "debug");
    lua_getfield(L, -1, "traceback");
    lua_pushvalue(L, 1);
    lua_pushinteger(L, 2);
    lua_call(L, 2, 1);
    return 1;
}

/* [-(n+1), +0, -] Runs the function below `nargs` arguments as the main
** task. Returns the exit status (0 or 1); the scheduler prints errors. */
static int run_main_task(lua_State *L, int nargs)
{
    lua_pushcfunction(L, traceback);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cachert");
    if (lua_pcall(L, 1, 1, -3) != 0) {
        report(L);
        lua_pop(L, nargs + 2);
        return 1;
    }
    lua_getfield(L, -1, "_main");
    lua_remove(L, -2);           /* fn args... tb _main */
    lua_insert(L, -(nargs + 3)); /* _main fn args... tb */
    int tb = lua_gettop(L) - (nargs + 2);
    lua_insert(L, tb); /* tb _main fn args... */
    int rc = lua_pcall(L, nargs + 1, 1, tb);
    int status = 1;
    if (rc != 0)
        report(L);
    else {
        status = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    lua_remove(L, tb);
    return status;
}

/* --metrics HOST:PORT: cachert.serve_metrics(address) before anything
** runs. Returns 0, or 1 after printing why (a malformed address raises, a
** bind failure returns nil and a message). */
static int start_metrics(lua_State *L, const char *address)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cachert");
    int rc = lua_pcall(L, 1, 1, 0);
    if (rc == 0) {
        lua_getfield(L, -1, "serve_metrics");
        lua_remove(L, -2);
        lua_pushstring(L, address);
        rc = lua_pcall(L, 1, 2, 0);
    }
    if (rc == 0 && !lua_isnil(L, -2)) {
        lua_pop(L, 2);
        return 0;
    }
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, PROGNAME ": --metrics %s: %s\n", address,
            msg != NULL ? msg : "(error object)");
    lua_settop(L, 0);
    return 1;
}

static int loader_embedded(lua_State *L)
{
    const LuaSource *src = lua_touserdata(L, lua_upvalueindex(1));
    if (luaL_loadbuffer(L, src->code, src->len, src->chunkname) != 0)
        return lua_error(L);
    lua_pushstring(L, src->module);
    lua_call(L, 1, 1);
    return 1;
}

/* Puts cache.core and the embedded Lua modules into package.preload. */
static void preload_modules(lua_State *L)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_cache_core);
    lua_setfield(L, -2, "cache.core");
    for (const LuaSource *s = cachert_lua_sources; s->module != NULL; s++) {
        lua_pushlightuserdata(L, (void *)s);
        lua_pushcclosure(L, loader_embedded, 1);
        lua_setfield(L, -2, s->module);
    }
    lua_pop(L, 2);
}

/* os.exit runs the exit phase (the at_exit hooks) and closes the Lua state
** first unless told not to (its second argument is false): finalizers then
** run, so managers release their stores and connections, as they do when a
** script simply ends. A signal that arrived meanwhile decides the code. */
static void close_state_on_exit(lua_State *L)
{
    static const char code[] =
        "local exit, loaded = os.exit, package.loaded\n"
        "os.exit = function(code, close)\n"
        "  if close == nil then close = true end\n"
        "  local cachert = loaded.cachert\n"
        "  if type(cachert) == 'table' and cachert._exit then\n"
        "    code = cachert._exit(code, true)\n"
        "  end\n"
        "  return exit(code, close)\n"
        "end\n";
    if (luaL_dostring(L, code) != 0)
        report(L);
}

/* Runs the scheduler's exit phase, if the scheduler was ever loaded (no
** hook can have been registered otherwise). Returns the exit status. */
static int run_exit_phase(lua_State *L, int status)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_getfield(L, -1, "cachert");
    lua_remove(L, -2);
    lua_remove(L, -2);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return status;
    }
    lua_pushcfunction(L, traceback);
    lua_getfield(L, -2, "_exit");
    lua_pushinteger(L, status);
    if (lua_pcall(L, 1, 1, -3) != 0) {
        report(L);
        status = 1;
    } else {
        status = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    return status;
}

/* Sets the global `arg` as luajit does: arg[0] is the script, arguments
** after it are 1..n, the interpreter and options are negative. */
static void set_arg_table(lua_State *L, char **argv, int argc, int script)
{
    lua_createtable(L, argc - script, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

static int run_chunk_from_file(lua_State *L, const char *path, char **argv,
                               int argc, int first_arg)
{
    if (luaL_loadfile(L, path) != 0) {
        report(L);
        return 1;
    }
    int nargs = argc - first_arg;
    luaL_checkstack(L, nargs, "too many arguments");
    for (int i = first_arg; i < argc; i++)
        lua_pushstring(L, argv[i]);
    return run_main_task(L, nargs);
}

static int run_string(lua_State *L, const char *code, const char *name)
{
    if (luaL_loadbuffer(L, code, strlen(code), name) != 0) {
        report(L);
        return 1;
    }
    return run_main_task(L, 0);
}

static bool is_subcommand(const char *a)
{
    for (const char *const *c = subcommands; *c != NULL; c++)
        if (strcmp(a, *c) == 0)
            return true;
    return false;
}

/* Runs cachert.cli's main(name, args...) as the main task. */
static int run_subcommand(lua_State *L, char **argv, int argc, int first)
{
    static const char code[] = "return require('cachert.cli').main(...)";
    if (luaL_loadbuffer(L, code, sizeof(code) - 1, "=cachert.cli") != 0) {
        report(L);
        return 1;
    }
    int nargs = argc - first;
    luaL_checkstack(L, nargs, "too many arguments");
    for (int i = first; i < argc; i++)
        lua_pushstring(L, argv[i]);
    return run_main_task(L, nargs);
}

static int require_library(lua_State *L, const char *name)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, name);
    if (lua_pcall(L, 1, 1, 0) != 0) {
        report(L);
        return 1;
    }
    lua_setglobal(L, name);
    return 0;
}

/* -- Interactive prompt ------------------------------------------------- */

static int incomplete(lua_State *L, int status)
{
    if (status != LUA_ERRSYNTAX)
        return 0;
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    return len >= 7 && strcmp(msg + len - 7, "'<eof>'") == 0;
}

/* Reads one statement (continuing lines while it is incomplete) and leaves
** its compiled function on the stack. Returns -1 at end of input, 0 with a
** function pushed, 1 after reporting a syntax error. */
static int read_statement(lua_State *L)
{
    char line[4096];
    fputs(PROMPT, stdout);
    fflush(stdout);
    if (fgets(line, sizeof(line), stdin) == NULL)
        return -1;
    lua_pushstring(L, line[0] == '=' ? line + 1 : line);
    if (line[0] == '=') {
        lua_pushliteral(L, "return ");
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    for (;;) {
        size_t len;
        const char *code = lua_tolstring(L, -1, &len);
        /* An expression is printed: try it as a return first. select()
        ** keeps every value, and keeps a call out of tail position so an
        ** error names the line ("stdin:1:"), as luajit does. */
        lua_pushfstring(L, "return select(1, %s\n)", code);
        if (luaL_loadbuffer(L, lua_tostring(L, -1), lua_objlen(L, -1),
                            "=stdin") == 0) {
            lua_remove(L, -2);
            lua_remove(L, -2);
            return 0;
        }
        lua_pop(L, 2);
        int status = luaL_loadbuffer(L, code, len, "=stdin");
        if (status == 0) {
            lua_remove(L, -2);
            return 0;
        }
        if (!incomplete(L, status)) {
            report(L);
            lua_pop(L, 1);
            return 1;
        }
        lua_pop(L, 1);
        fputs(PROMPT2, stdout);
        fflush(stdout);
        if (fgets(line, sizeof(line), stdin) == NULL) {
            lua_pop(L, 1);
            return -1;
        }
        lua_pushstring(L, line);
        lua_concat(L, 2);
    }
}

static const char print_results[] =
    "local n = select('#', ...) if n > 0 then print(...) end";

static void interactive(lua_State *L)
{
    int rc;
    /* Each statement runs as a main task whose results are printed. */
    if (luaL_loadstring(L, "local f, p = ... return function(...) "
                           "return p(f(...)) end") != 0) {
        report(L);
        return;
    }
    int wrap = lua_gettop(L);
    if (luaL_loadstring(L, print_results) != 0) {
        report(L);
        return;
    }
    int printer = lua_gettop(L);
    print_version();
    while ((rc = read_statement(L)) != -1) {
        if (rc != 0)
            continue;
        lua_pushvalue(L, wrap);
        lua_insert(L, -2);
        lua_pushvalue(L, printer);
        lua_call(L, 2, 1);
        run_main_task(L, 0);
    }
    fputc('\n', stdout);
    lua_pop(L, 2);
}

/* -- main --------------------------------------------------------------- */

int main(int argc, char **argv)
{
    evloop_reserve_stdio(); /* before anything can open a descriptor */
    /* A peer that closed its socket (Redis, a metrics scraper) must not end
    ** the process through SIGPIPE: see conn.h. */
    conn_quiet_sigpipe();
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, PROGNAME ": cannot create the Lua state\n");
        return 1;
    }
    luaL_openlibs(L); /* includes jit, ffi and bit */
    preload_modules(L);
    close_state_on_exit(L);

    /* First pass: find where options stop and the script starts. */
    int script = argc, want_repl = 0, ran_something = 0, has_chunk = 0, i;
    bool subcommand = false;
    const char *metrics = NULL;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            script = i;
            subcommand = is_subcommand(a); /* never after "--" */
            break;
        }
        if (strcmp(a, "--") == 0) {
            script = i + 1;
            break;
        }
        if (strcmp(a, "-") == 0) {
            script = i;
            break;
        }
        if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, PROGNAME ": '%s' needs an argument\n%s", a,
                        usage_text);
                lua_close(L);
                return 1;
            }
            has_chunk |= a[1] == 'e';
            i++;
        } else if (strcmp(a, "--metrics") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, PROGNAME ": '%s' needs an argument\n%s", a,
                        usage_text);
                lua_close(L);
                return 1;
            }
            metrics = argv[++i];
        } else if (strncmp(a, "--metrics=", 10) == 0) {
            metrics = a + 10;
        } else if (strcmp(a, "-i") == 0) {
            want_repl = 1;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
            print_version();
            ran_something = 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_text, stdout);
            lua_close(L);
            return 0;
        } else {
            fprintf(stderr, PROGNAME ": unrecognized option '%s'\n%s", a,
                    usage_text);
            lua_close(L);
            return 1;
        }
    }
    set_arg_table(L, argv, argc, script);
    if (!want_repl &&
        (ran_something || has_chunk || script < argc || !isatty(STDIN_FILENO)))
        evloop_catch_signals(); /* no prompt will run */

    if (metrics != NULL && start_metrics(L, metrics) != 0) {
        lua_close(L);
        return 1;
    }
    int status = 0;
    for (i = 1; i < script && status == 0; i++) {
        if (strcmp(argv[i], "-e") == 0) {
            status = run_string(L, argv[++i], "=(command line)");
            ran_something = 1;
        } else if (strcmp(argv[i], "-l") == 0) {
            status = require_library(L, argv[++i]);
        }
    }
    if (status == 0 && subcommand) {
        status = run_subcommand(L, argv, argc, script);
        ran_something = 1;
    } else if (status == 0 && script < argc) {
        const char *path = strcmp(argv[script], "-") == 0 ? NULL : argv[script];
        status = run_chunk_from_file(L, path, argv, argc, script + 1);
        ran_something = 1;
    }
    /* As luajit: with nothing to run, a terminal gets the prompt and any
    ** other stdin is executed as a script. */
    if (status == 0 && !want_repl && !ran_something && !isatty(STDIN_FILENO))
        status = run_chunk_from_file(L, NULL, argv, argc, argc);
    else if (status == 0 && (want_repl || !ran_something))
        interactive(L);
    status = run_exit_phase(L, status);
    fflush(stdout);
    lua_close(L);
    if (evloop_first_signal() != 0) /* also one that came during lua_close */
        status = 128 + evloop_first_signal();
    return status;
}
