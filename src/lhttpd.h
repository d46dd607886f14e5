/*
** lhttpd.h -- cache.core's binding of the metrics endpoint (httpd.c): the
** core.httpd_* functions (see lhttpd.c).
*/
#ifndef CACHERT_LHTTPD_H
#define CACHERT_LHTTPD_H

#include <lua.h>

#include "lruntime.h"

/* [-0, +0, m] Adds the core.httpd_* functions to the module table on top
** of the stack, as closures over the Runtime just below it, and creates
** the servers' metatable. */
void lhttpd_open(lua_State *L);

/* Closes every server still open on `rt` (its loop is about to close). */
void lhttpd_close_all(Runtime *rt);

#endif
