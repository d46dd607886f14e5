/*
** fuzz_codec.c -- libFuzzer target for the codec.
**
** Decodes arbitrary bytes (as a plain value and with multis unpacked) into
** one persistent lua_State. A decode that fails must leave the stack empty.
** A decode that succeeds must re-encode without error, the re-encoding
** must decode to an equal value, and encoding that again must give the
** same bytes. Map order is the table's traversal order, which can differ
** between two equal tables filled in different orders; so differing bytes
** are accepted only when they have the same length and decode to an equal
** value. Any violation traps.
*/
#include "codec.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <lauxlib.h>

#include "lua_equal.h"

static lua_State *L;
static CodecBuf first, second;

static int encode_cf(lua_State *L1)
{
    CodecBuf *b = lua_touserdata(L1, 1);
    int multi = lua_toboolean(L1, 2);
    if (multi)
        codec_encode_multi(L1, 3, lua_gettop(L1) - 2, b);
    else
        codec_encode(L1, 3, b, "value");
    return 0;
}

/* Encodes stack slots 1..n (a multi, or the single value at 1) into `b`
** under pcall; returns false if the encoder raised. The stack is kept. */
static bool encode_slots(int n, bool multi, CodecBuf *b)
{
    int top = lua_gettop(L);
    if (!lua_checkstack(L, n + 4))
        __builtin_trap();
    lua_pushcfunction(L, encode_cf);
    lua_pushlightuserdata(L, b);
    lua_pushboolean(L, multi);
    for (int i = 1; i <= n; i++)
        lua_pushvalue(L, top - n + i);
    bool ok = lua_pcall(L, n + 2, 0, 0) == 0;
    lua_settop(L, top);
    return ok;
}

static void check(const uint8_t *data, size_t size, int unpack_multi)
{
    bool is_multi = size > 0 && ((data[0] >= 0xc7 && data[0] <= 0xc9) ||
                                 (data[0] >= 0xd4 && data[0] <= 0xd8));
    int n = codec_decode(L, (const char *)data, size, unpack_multi);
    if (n < 0) {
        if (lua_gettop(L) != 0)
            __builtin_trap();
        return;
    }
    if (lua_gettop(L) != n)
        __builtin_trap();

    bool multi = is_multi && unpack_multi;
    if (!encode_slots(n, multi, &first)) {
        /* Only { n = n, ... } around values already 100 deep may fail. */
        if (!is_multi || unpack_multi)
            __builtin_trap();
        lua_settop(L, 0);
        return;
    }

    int n2 = codec_decode(L, first.data, first.len, unpack_multi);
    if (n2 != n)
        __builtin_trap();
    for (int i = 1; i <= n; i++)
        if (!lua_deep_equal(L, i, n + i))
            __builtin_trap();
    lua_settop(L, 0);
    if (codec_decode(L, first.data, first.len, unpack_multi) != n)
        __builtin_trap();
    if (!encode_slots(n, multi, &second))
        __builtin_trap();
    if (second.len != first.len)
        __builtin_trap();
    if (memcmp(first.data, second.data, first.len) != 0) {
        /* same values in another map order: must decode equal */
        if (codec_decode(L, second.data, second.len, unpack_multi) != n)
            __builtin_trap();
        for (int i = 1; i <= n; i++)
            if (!lua_deep_equal(L, i, n + i))
                __builtin_trap();
    }
    lua_settop(L, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned runs;
    if (L == NULL)
        L = luaL_newstate();
    check(data, size, 0);
    check(data, size, 1);
    if (++runs % 1024 == 0)
        lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
