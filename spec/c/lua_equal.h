/*
** lua_equal.h -- raw deep equality of two Lua values, for the codec's C
** tests and fuzz target: do a value and its decoded copy match?
**
** Numbers compare by bits (so -0.0 differs from 0.0), except that any two
** NaNs are equal: LuaJIT keeps one canonical NaN. Tables compare by their
** raw contents, recursively; metatables are ignored.
*/
#ifndef CACHERT_LUA_EQUAL_H
#define CACHERT_LUA_EQUAL_H

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include <lua.h>

static bool lua_same_number(double x, double y)
{
    return (isnan(x) && isnan(y)) || memcmp(&x, &y, sizeof(x)) == 0;
}

/* [-0, +0, m] Indices may be negative. */
static bool lua_deep_equal(lua_State *L, int a, int b)
{
    if (a < 0)
        a = lua_gettop(L) + a + 1;
    if (b < 0)
        b = lua_gettop(L) + b + 1;
    if (!lua_checkstack(L, 4))
        return false;
    if (lua_type(L, a) != lua_type(L, b))
        return false;
    switch (lua_type(L, a)) {
    case LUA_TNUMBER:
        return lua_same_number(lua_tonumber(L, a), lua_tonumber(L, b));
    case LUA_TTABLE: {
        int na = 0, nb = 0;
        lua_pushnil(L);
        while (lua_next(L, a)) {
            na++;
            lua_pushvalue(L, -2);
            lua_rawget(L, b);
            bool eq = lua_deep_equal(L, -1, -2);
            lua_pop(L, 2);
            if (!eq) {
                lua_pop(L, 1);
                return false;
            }
        }
        lua_pushnil(L);
        while (lua_next(L, b)) {
            nb++;
            lua_pop(L, 1);
        }
        return na == nb;
    }
    default:
        return lua_rawequal(L, a, b);
    }
}

#endif
