/*
** test_codec.c -- the MessagePack codec: round trips, exact bytes, decoder
** rejections (every one leaves the stack as it was) and encoder error
** messages.
*/
#include "codec.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>
#include <msgpack/pack.h>

#include "status.h"
#include "lua_equal.h"
#include "test.h"

/* -- Helpers ----------------------------------------------------------- */

static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();
    ASSERT_NOT_NULL(L);
    luaL_openlibs(L);
    return L;
}

/* Runs Lua code and leaves its `nresults` results on the stack. */
static void push_lua_n(lua_State *L, const char *code, int nresults)
{
    if (luaL_loadstring(L, code) != 0 || lua_pcall(L, 0, nresults, 0) != 0)
        TEST_FAIL_("lua error: %s", lua_tostring(L, -1));
}

static void push_lua(lua_State *L, const char *code)
{
    push_lua_n(L, code, 1);
}

static int encode_cf(lua_State *L)
{
    CodecBuf *b = lua_touserdata(L, 1);
    const char *root = lua_tostring(L, 2);
    codec_encode(L, 3, b, root);
    return 0;
}

static int encode_multi_cf(lua_State *L)
{
    CodecBuf *b = lua_touserdata(L, 1);
    codec_encode_multi(L, 2, lua_gettop(L) - 1, b);
    return 0;
}

/* Encodes (and pops) the top value under pcall. Returns NULL on success,
** or the error message (a string left on the stack). */
static const char *try_encode(lua_State *L, CodecBuf *b)
{
    lua_pushcfunction(L, encode_cf);
    lua_pushlightuserdata(L, b);
    lua_pushliteral(L, "value");
    lua_pushvalue(L, -4);
    lua_remove(L, -5);
    if (lua_pcall(L, 3, 0, 0) != 0)
        return lua_tostring(L, -1);
    return NULL;
}

static void encode(lua_State *L, CodecBuf *b)
{
    const char *err = try_encode(L, b);
    if (err != NULL)
        TEST_FAIL_("unexpected encode error: %s", err);
}

/* Encodes the top `n` values as a multi (and pops them). */
static const char *try_encode_multi(lua_State *L, int n, CodecBuf *b)
{
    lua_pushcfunction(L, encode_multi_cf);
    lua_insert(L, -n - 1);
    lua_pushlightuserdata(L, b);
    lua_insert(L, -n - 1);
    if (lua_pcall(L, n + 1, 0, 0) != 0)
        return lua_tostring(L, -1);
    return NULL;
}

static void expect_bytes(lua_State *L, const char *code, const char *bytes,
                         size_t len)
{
    CodecBuf b = {0};
    push_lua(L, code);
    encode(L, &b);
    if (b.len != len || memcmp(b.data, bytes, len) != 0) {
        fprintf(stderr, "encoding of %s:", code);
        for (size_t i = 0; i < b.len; i++)
            fprintf(stderr, " %02x", (unsigned char)b.data[i]);
        fputc('\n', stderr);
    }
    ASSERT_EQ_MEM(bytes, len, b.data, b.len);
    codec_buf_free(&b);
}

static void expect_encode_error(lua_State *L, const char *code,
                                const char *message)
{
    CodecBuf b = {0};
    int top = lua_gettop(L);
    push_lua(L, code);
    const char *err = try_encode(L, &b);
    ASSERT_NOT_NULL(err);
    ASSERT_EQ_STR(message, err);
    lua_settop(L, top);
    codec_buf_free(&b);
}

/* Decodes a copy of exactly `len` bytes, so AddressSanitizer sees any read
** past the end. */
static void expect_corrupt(lua_State *L, const char *data, size_t len)
{
    int top = lua_gettop(L);
    char *copy = malloc(len > 0 ? len : 1);
    ASSERT_NOT_NULL(copy);
    memcpy(copy, data, len);
    ASSERT_EQ_INT(CR_ECORRUPT, codec_decode(L, copy, len, 0));
    ASSERT_EQ_INT(top, lua_gettop(L));
    ASSERT_EQ_INT(CR_ECORRUPT, codec_decode(L, copy, len, 1));
    ASSERT_EQ_INT(top, lua_gettop(L));
    free(copy);
}

static uint64_t bits_of(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

/* Encodes the top value, decodes it, checks the copy equals it; pops the
** original and leaves the copy on the stack. */
static void round_trip(lua_State *L, CodecBuf *b)
{
    lua_pushvalue(L, -1);
    encode(L, b);
    int top = lua_gettop(L);
    ASSERT_EQ_INT(1, codec_decode(L, b->data, b->len, 0));
    ASSERT_EQ_INT(top + 1, lua_gettop(L));
    ASSERT_TRUE(lua_deep_equal(L, -1, -2));
    lua_remove(L, -2);
}

static void round_trip_lua(lua_State *L, const char *code)
{
    CodecBuf b = {0};
    push_lua(L, code);
    round_trip(L, &b);
    lua_pop(L, 1);
    codec_buf_free(&b);
}

/* -- Encoding ---------------------------------------------------------- */

static void test_codec_encodes_small_values_to_expected_bytes(void)
{
    lua_State *L = new_state();
    expect_bytes(L, "return 1", "\x01", 1);
    expect_bytes(L, "return 'a'", "\xa1\x61", 2);
    expect_bytes(L, "return {1, 2}", "\x92\x01\x02", 3);
    expect_bytes(L, "return nil", "\xc0", 1);
    expect_bytes(L, "return true", "\xc3", 1);
    expect_bytes(L, "return false", "\xc2", 1);
    expect_bytes(L, "return {}", "\x80", 1);
    expect_bytes(L, "return -1", "\xff", 1);
    expect_bytes(L, "return -32", "\xe0", 1);
    expect_bytes(L, "return -33", "\xd0\xdf", 2);
    expect_bytes(L, "return 127", "\x7f", 1);
    expect_bytes(L, "return 128", "\xcc\x80", 2);
    expect_bytes(L, "return 255", "\xcc\xff", 2);
    expect_bytes(L, "return 256", "\xcd\x01\x00", 3);
    expect_bytes(L, "return 65536", "\xce\x00\x01\x00\x00", 5);
    expect_bytes(L, "return 2^32", "\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 9);
    expect_bytes(L, "return 2^63", "\xcf\x80\x00\x00\x00\x00\x00\x00\x00", 9);
    expect_bytes(L, "return -2^63", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9);
    expect_bytes(L, "return 0.5", "\xcb\x3f\xe0\x00\x00\x00\x00\x00\x00", 9);
    expect_bytes(L, "return 2^64", "\xcb\x43\xf0\x00\x00\x00\x00\x00\x00", 9);
    expect_bytes(L, "return {x = 1}", "\x81\xa1x\x01", 4);
    expect_bytes(L, "return {[1.5] = true}",
                 "\x81\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00\xc3", 11);
    lua_close(L);
}

static void test_codec_writes_negative_zero_as_a_float(void)
{
    lua_State *L = new_state();
    expect_bytes(L, "return -0.0", "\xcb\x80\x00\x00\x00\x00\x00\x00\x00", 9);
    expect_bytes(L, "return 0", "\x00", 1);
    lua_close(L);
}

static void test_codec_round_trips_integers_exactly(void)
{
    static const double values[] = {0,
                                    -1,
                                    127,
                                    128,
                                    255,
                                    256,
                                    65535,
                                    65536,
                                    2147483648.0,
                                    -2147483649.0,
                                    4294967296.0,
                                    9007199254740992.0,
                                    -9007199254740992.0,
                                    9223372036854775808.0,
                                    -9223372036854775808.0,
                                    18446744073709549568.0};
    lua_State *L = new_state();
    CodecBuf b = {0};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        lua_pushnumber(L, values[i]);
        round_trip(L, &b);
        ASSERT_TRUE(lua_tonumber(L, -1) == values[i]);
        ASSERT_TRUE((unsigned char)b.data[0] != 0xcb); /* an int marker */
        lua_pop(L, 1);
    }
    codec_buf_free(&b);
    lua_close(L);
}

static void test_codec_round_trips_floats_bit_exactly(void)
{
    const double values[] = {0.1, 1e308,    -0.0,     INFINITY,  -INFINITY,
                             1.5, 4.9e-324, -2.5e-10, 1e300 * 10};
    lua_State *L = new_state();
    CodecBuf b = {0};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        lua_pushnumber(L, values[i]);
        round_trip(L, &b);
        ASSERT_EQ_INT(0xcb, (unsigned char)b.data[0]);
        ASSERT_TRUE(bits_of(lua_tonumber(L, -1)) == bits_of(values[i]));
        lua_pop(L, 1);
    }
    lua_pushnumber(L, -0.0);
    round_trip(L, &b);
    ASSERT_TRUE(signbit(lua_tonumber(L, -1)));
    lua_pop(L, 1);
    codec_buf_free(&b);
    lua_close(L);
}

static void test_codec_writes_nan_with_the_bits_lua_holds(void)
{
    /* LuaJIT canonicalises every NaN it is given; those bits survive. */
    lua_State *L = new_state();
    CodecBuf b = {0};
    push_lua(L, "return 0/0");
    uint64_t bits = bits_of(lua_tonumber(L, -1));
    round_trip(L, &b);
    ASSERT_EQ_INT(9, b.len);
    ASSERT_EQ_INT(0xcb, (unsigned char)b.data[0]);
    uint64_t written = 0;
    for (int i = 1; i < 9; i++)
        written = written << 8 | (unsigned char)b.data[i];
    ASSERT_TRUE(written == bits);
    ASSERT_TRUE(isnan(lua_tonumber(L, -1)));
    ASSERT_TRUE(bits_of(lua_tonumber(L, -1)) == bits);
    lua_pop(L, 1);

    /* Another writer's NaN (payload 1) still decodes as a NaN. */
    const char other[] = "\xcb\x7f\xf0\x00\x00\x00\x00\x00\x01";
    ASSERT_EQ_INT(1, codec_decode(L, other, 9, 0));
    ASSERT_TRUE(isnan(lua_tonumber(L, -1)));
    lua_pop(L, 1);
    codec_buf_free(&b);
    lua_close(L);
}

static void test_codec_round_trips_strings_with_nuls(void)
{
    lua_State *L = new_state();
    CodecBuf b = {0};
    lua_pushlstring(L, "a\0b\0", 4);
    round_trip(L, &b);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    ASSERT_EQ_MEM("a\0b\0", 4, s, len);
    ASSERT_EQ_MEM("\xa4"
                  "a\0b\0",
                  5, b.data, b.len);
    lua_pop(L, 1);
    round_trip_lua(L, "return ''");
    round_trip_lua(L, "return ('x'):rep(31)");
    round_trip_lua(L, "return ('x'):rep(32)");
    round_trip_lua(L, "return ('x'):rep(255)");
    round_trip_lua(L, "return ('x'):rep(256)");
    round_trip_lua(L, "return ('x'):rep(65535)");
    round_trip_lua(L, "return ('x'):rep(65536)");
    round_trip_lua(L, "return ('\\255'):rep(70000)");
    codec_buf_free(&b);
    lua_close(L);
}

static unsigned char first_byte_of(lua_State *L, const char *s, size_t len)
{
    CodecBuf b = {0};
    lua_pushlstring(L, s, len);
    round_trip(L, &b);
    size_t out_len;
    const char *out = lua_tolstring(L, -1, &out_len);
    ASSERT_EQ_MEM(s, len, out, out_len);
    lua_pop(L, 1);
    unsigned char c = (unsigned char)b.data[0];
    codec_buf_free(&b);
    return c;
}

static void test_codec_writes_valid_utf8_as_str_and_other_bytes_as_bin(void)
{
    static const char *const valid[] = {
        "hello",
        "caf\xc3\xa9",
        "\xe2\x82\xac",     /* U+20AC */
        "\xed\x9f\xbf",     /* U+D7FF, just below the surrogates */
        "\xee\x80\x80",     /* U+E000, just above them */
        "\xef\xbf\xbf",     /* U+FFFF */
        "\xf0\x9f\x98\x80", /* U+1F600 */
        "\xf4\x8f\xbf\xbf", /* U+10FFFF */
        "0123456789abcdef\xc2\x80",
        NULL};
    static const char *const invalid[] = {
        "\xc0\xaf",                  /* overlong '/' */
        "\xc1\xbf",                  /* overlong */
        "\xe0\x80\xaf",              /* overlong, 3 bytes */
        "\xf0\x80\x80\xaf",          /* overlong, 4 bytes */
        "\xed\xa0\x80",              /* U+D800, a surrogate */
        "\xed\xbf\xbf",              /* U+DFFF */
        "\xf4\x90\x80\x80",          /* U+110000 */
        "\xf5\x80\x80\x80",          /* F5: never valid */
        "\xff",                      /* never valid */
        "\x80",                      /* lone continuation */
        "abc\xc3",                   /* truncated 2-byte sequence */
        "\xe2\x82",                  /* truncated 3-byte sequence */
        "\xf0\x9f\x98",              /* truncated 4-byte sequence */
        "\xc3\x28",                  /* bad continuation */
        "01234567890123456789\xe2(", /* after an ASCII run */
        NULL};
    lua_State *L = new_state();
    for (int i = 0; valid[i] != NULL; i++)
        ASSERT_EQ_INT(0xa0 | strlen(valid[i]),
                      first_byte_of(L, valid[i], strlen(valid[i])));
    for (int i = 0; invalid[i] != NULL; i++)
        ASSERT_EQ_INT(0xc4, first_byte_of(L, invalid[i], strlen(invalid[i])));
    ASSERT_EQ_INT(0xa3, first_byte_of(L, "a\0b", 3)); /* NUL is valid UTF-8 */
    ASSERT_EQ_INT(0xa0, first_byte_of(L, "", 0));
    lua_close(L);
}

static void test_codec_round_trips_arrays(void)
{
    lua_State *L = new_state();
    round_trip_lua(L, "return {1, 2, 3}");
    round_trip_lua(L, "return {'a', true, false, 1.5, {}, {1}}");
    round_trip_lua(L, "local t = {} for i = 1, 70000 do t[i] = i end "
                      "return t");
    lua_close(L);
}

static void test_codec_writes_arrays_with_holes_as_maps(void)
{
    lua_State *L = new_state();
    CodecBuf b = {0};
    push_lua(L, "return {1, nil, 3}");
    round_trip(L, &b);
    ASSERT_EQ_INT(0x82, (unsigned char)b.data[0]);
    lua_rawgeti(L, -1, 2);
    ASSERT_TRUE(lua_isnil(L, -1));
    lua_pop(L, 2);
    round_trip_lua(L, "return {[2] = 'b'}");
    round_trip_lua(L, "return {[1] = 'a', [3] = 'c'}");
    codec_buf_free(&b);
    lua_close(L);
}

static void test_codec_decodes_nil_array_elements_as_holes(void)
{
    lua_State *L = new_state();
    ASSERT_EQ_INT(1, codec_decode(L, "\x93\x01\xc0\x03", 4, 0));
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    lua_rawgeti(L, -3, 3);
    ASSERT_EQ_INT(1, lua_tonumber(L, -3));
    ASSERT_TRUE(lua_isnil(L, -2));
    ASSERT_EQ_INT(3, lua_tonumber(L, -1));
    lua_close(L);
}

static void test_codec_round_trips_nested_maps(void)
{
    lua_State *L = new_state();
    round_trip_lua(L, "return {a = {b = {c = {d = 'deep'}}}, list = {1, {x = "
                      "2}}, [-7] = 'neg'}");
    round_trip_lua(L, "local t = {} for i = 1, 1000 do t['k' .. i] = {i} end "
                      "return t");
    lua_close(L);
}

static void test_codec_writes_shared_subtables_once_per_reference(void)
{
    lua_State *L = new_state();
    CodecBuf b = {0};
    push_lua(L, "local s = {1} return {s, s}");
    round_trip(L, &b);
    ASSERT_EQ_MEM("\x92\x91\x01\x91\x01", 5, b.data, b.len);
    lua_pop(L, 1);
    round_trip_lua(L, "local s = {x = 1} return {a = s, b = {s, {s}}}");
    codec_buf_free(&b);
    lua_close(L);
}

static void test_codec_round_trips_mixed_keys(void)
{
    lua_State *L = new_state();
    round_trip_lua(L, "return {[true] = 't', [false] = 'f', [1.5] = 'x', x = "
                      "1.5, [1] = 'one', [-0.5] = {}, ['\\0'] = 0}");
    lua_close(L);
}

static void test_codec_ignores_metatables(void)
{
    lua_State *L = new_state();
    CodecBuf b = {0};
    push_lua(L, "return setmetatable({1}, {__index = function() return 9 "
                "end, __len = function() return 5 end, __pairs = error})");
    encode(L, &b);
    ASSERT_EQ_MEM("\x91\x01", 2, b.data, b.len);
    codec_buf_free(&b);
    lua_close(L);
}

static void test_codec_round_trips_multi_with_trailing_nils(void)
{
    lua_State *L = new_state();
    CodecBuf b = {0};
    lua_pushnumber(L, 1);
    lua_pushnil(L);
    lua_pushliteral(L, "x");
    lua_pushnil(L);
    lua_pushnil(L);
    ASSERT_NULL(try_encode_multi(L, 5, &b));
    ASSERT_EQ_INT(0, lua_gettop(L));
    ASSERT_EQ_MEM("\xc7\x07\x01\x95\x01\xc0\xa1x\xc0\xc0", 10, b.data, b.len);

    ASSERT_EQ_INT(5, codec_decode(L, b.data, b.len, 1));
    ASSERT_EQ_INT(5, lua_gettop(L));
    ASSERT_EQ_INT(1, lua_tonumber(L, 1));
    ASSERT_TRUE(lua_isnil(L, 2));
    ASSERT_EQ_STR("x", lua_tostring(L, 3));
    ASSERT_TRUE(lua_isnil(L, 4) && lua_isnil(L, 5));
    lua_settop(L, 0);

    ASSERT_EQ_INT(1, codec_decode(L, b.data, b.len, 0));
    lua_getfield(L, 1, "n");
    ASSERT_EQ_INT(5, lua_tonumber(L, -1));
    lua_rawgeti(L, 1, 3);
    ASSERT_EQ_STR("x", lua_tostring(L, -1));
    lua_settop(L, 0);
    codec_buf_free(&b);
    lua_close(L);
}

static void test_codec_round_trips_a_multi_of_no_values(void)
{
    lua_State *L = new_state();
    CodecBuf b = {0};
    ASSERT_NULL(try_encode_multi(L, 0, &b));
    ASSERT_EQ_MEM("\xd4\x01\x90", 3, b.data, b.len);
    ASSERT_EQ_INT(0, codec_decode(L, b.data, b.len, 1));
    ASSERT_EQ_INT(0, lua_gettop(L));
    ASSERT_EQ_INT(1, codec_decode(L, b.data, b.len, 0));
    lua_getfield(L, 1, "n");
    ASSERT_EQ_INT(0, lua_tonumber(L, -1));
    codec_buf_free(&b);
    lua_close(L);
}

static void test_codec_writes_large_multis_with_wider_ext_headers(void)
{
    lua_State *L = new_state();
    CodecBuf b = {0};
    for (int i = 0; i < 300; i++)
        lua_pushliteral(L, "value");
    ASSERT_NULL(try_encode_multi(L, 300, &b));
    ASSERT_EQ_INT(0xc8, (unsigned char)b.data[0]); /* ext 16 */
    ASSERT_EQ_INT(300, codec_decode(L, b.data, b.len, 1));
    ASSERT_EQ_STR("value", lua_tostring(L, 300));
    codec_buf_free(&b);
    lua_close(L);
}

static void test_codec_reuses_a_buffer_across_encodes(void)
{
    lua_State *L = new_state();
    CodecBuf b = {0};
    push_lua(L, "return ('x'):rep(1000)");
    encode(L, &b);
    ASSERT_EQ_INT(1003, b.len);
    lua_pushnumber(L, 1);
    encode(L, &b);
    ASSERT_EQ_MEM("\x01", 1, b.data, b.len);
    codec_buf_free(&b);
    codec_buf_free(&b); /* idempotent */
    ASSERT_NULL(b.data);
    lua_close(L);
}

/* -- Decoding other writers -------------------------------------------- */

static int sbuf_write(void *data, const char *buf, size_t len)
{
    CodecBuf *b = data;
    if (b->len + len > b->cap) {
        b->cap = (b->len + len) * 2;
        b->data = realloc(b->data, b->cap);
        ASSERT_NOT_NULL(b->data);
    }
    memcpy(b->data + b->len, buf, len);
    b->len += len;
    return 0;
}

static void test_codec_decodes_msgpack_from_another_writer(void)
{
    lua_State *L = new_state();
    CodecBuf b = {0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, sbuf_write);
    msgpack_pack_map(&pk, 7);
    msgpack_pack_fix_int64(&pk, 1); /* int 64 for a small key */
    msgpack_pack_float(&pk, 0.5f);
    msgpack_pack_fix_uint16(&pk, 2);
    msgpack_pack_float(&pk, 0.1f);
    msgpack_pack_fix_int8(&pk, -3);
    msgpack_pack_bin_with_body(&pk, "\x00\xff", 2);
    msgpack_pack_str_with_body(&pk, "list", 4);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_fix_uint64(&pk, UINT64_C(18446744073709551615));
    msgpack_pack_fix_int64(&pk, INT64_MIN);
    msgpack_pack_float(&pk, 1.5f); /* float key */
    msgpack_pack_true(&pk);
    msgpack_pack_false(&pk); /* boolean key */
    msgpack_pack_nil(&pk);   /* nil value: no entry */
    /* a str 16 holding a short string */
    sbuf_write(&b, "\xda\x00\x02hi\xa0", 6);

    ASSERT_EQ_INT(1, codec_decode(L, b.data, b.len, 0));
    push_lua(L, "return {[1] = 0.5, [2] = 0.10000000149011612, [-3] = "
                "'\\0\\255', list = {2^64, -2^63}, [1.5] = true, hi = ''}");
    ASSERT_TRUE(lua_deep_equal(L, -1, -2));
    codec_buf_free(&b);
    lua_close(L);
}

static void test_codec_decodes_every_header_width(void)
{
    lua_State *L = new_state();
    /* array 16 / 32, map 16 / 32, str 32, bin 16 / 32, int 16 / 32, uint 8 */
    ASSERT_EQ_INT(1, codec_decode(L, "\xdc\x00\x01\xd1\xff\xfe", 6, 0));
    ASSERT_EQ_INT(
        1, codec_decode(L, "\xdd\x00\x00\x00\x01\xd2\xff\xff\xff\xfd", 10, 0));
    ASSERT_EQ_INT(1, codec_decode(L, "\xde\x00\x01\xa1k\xcc\x05", 7, 0));
    ASSERT_EQ_INT(1, codec_decode(L, "\xdf\x00\x00\x00\x01\xa1k\xc3", 8, 0));
    ASSERT_EQ_INT(1, codec_decode(L, "\xdb\x00\x00\x00\x01z", 6, 0));
    ASSERT_EQ_INT(1, codec_decode(L, "\xc5\x00\x01y", 4, 0));
    ASSERT_EQ_INT(1, codec_decode(L, "\xc6\x00\x00\x00\x01w", 6, 0));
    ASSERT_EQ_INT(1, codec_decode(L, "\xd9\x01v", 3, 0));
    ASSERT_EQ_INT(1, codec_decode(L, "\xc4\x01u", 3, 0));
    push_lua_n(L,
               "return {-2}, {-3}, {k = 5}, {k = true}, 'z', 'y', 'w', 'v', "
               "'u'",
               9);
    ASSERT_EQ_INT(18, lua_gettop(L));
    for (int i = 1; i <= 9; i++)
        ASSERT_TRUE(lua_deep_equal(L, i, i + 9));
    lua_close(L);
}

static void test_codec_decodes_64bit_integers_as_numbers(void)
{
    lua_State *L = new_state();
    ASSERT_EQ_INT(
        1, codec_decode(L, "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9, 0));
    ASSERT_TRUE(lua_tonumber(L, -1) == 18446744073709551616.0);
    ASSERT_EQ_INT(
        1, codec_decode(L, "\xd3\xff\xff\xff\xff\xff\xff\xff\xff", 9, 0));
    ASSERT_TRUE(lua_tonumber(L, -1) == -1.0);
    ASSERT_EQ_INT(
        1, codec_decode(L, "\xd3\x00\x20\x00\x00\x00\x00\x00\x01", 9, 0));
    ASSERT_TRUE(lua_tonumber(L, -1) == 9007199254740993.0);
    lua_close(L);
}

/* -- Decoder rejections ------------------------------------------------ */

static void test_codec_rejects_every_truncation_of_a_complex_encoding(void)
{
    lua_State *L = new_state();
    CodecBuf b = {0};
    push_lua(L, "return {a = {1, 2.5, 'three', {x = true}}, [true] = "
                "('y'):rep(300), n = -70000, f = 1e100, b = '\\255\\0', "
                "big = 2^40, e = {}}");
    encode(L, &b);
    lua_pushnil(L); /* something under the decoder, to see it untouched */
    for (size_t i = 0; i < b.len; i++)
        expect_corrupt(L, b.data, i);
    ASSERT_EQ_INT(1, lua_gettop(L));
    ASSERT_TRUE(lua_isnil(L, 1));

    lua_settop(L, 0);
    lua_pushnumber(L, 1);
    push_lua(L, "return {1, {2}}");
    lua_pushliteral(L, "s");
    ASSERT_NULL(try_encode_multi(L, 3, &b));
    for (size_t i = 0; i < b.len; i++)
        expect_corrupt(L, b.data, i);
    codec_buf_free(&b);
    lua_close(L);
}

static void test_codec_rejects_trailing_bytes(void)
{
    lua_State *L = new_state();
    expect_corrupt(L, "\x01\x02", 2);
    expect_corrupt(L,
                   "\xa1"
                   "ab",
                   3);
    expect_corrupt(L,
                   "\xd9\x01"
                   "ab",
                   4);
    expect_corrupt(L, "\x92\x01\x02\xc0", 4);
    expect_corrupt(L, "\xd4\x01\x90\x00", 4);
    expect_corrupt(L, "\xd5\x01\x90\x01", 4); /* payload longer than array */
    expect_corrupt(L, "", 0);
    lua_close(L);
}

typedef struct Alloc {
    size_t largest;
} Alloc;

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    Alloc *a = ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (nsize > a->largest)
        a->largest = nsize;
    return realloc(ptr, nsize);
}

static void test_codec_rejects_huge_claimed_lengths_without_allocating(void)
{
    Alloc a = {0};
    lua_State *L = lua_newstate(counting_alloc, &a);
    ASSERT_NOT_NULL(L);
    a.largest = 0;
    expect_corrupt(L, "\xdd\xff\xff\xff\xff", 5); /* array 32 */
    expect_corrupt(L, "\xdf\xff\xff\xff\xff", 5); /* map 32 */
    expect_corrupt(L, "\xdb\xff\xff\xff\xff", 5); /* str 32 */
    expect_corrupt(L, "\xc6\xff\xff\xff\xff", 5); /* bin 32 */
    expect_corrupt(L, "\xdc\xff\xff\x01", 4);     /* array 16 */
    expect_corrupt(L, "\xde\x00\x02\x01\x01\x01", 6);
    expect_corrupt(L, "\xc9\xff\xff\xff\xff\x01\x90", 7); /* ext 32 */
    expect_corrupt(L, "\xc7\x05\x01\xdd\xff\xff\xff\xff", 8);
    expect_corrupt(L, "\x91\xdd\x7f\xff\xff\xff\x01", 7);
    ASSERT_TRUE(a.largest < 4096);
    lua_close(L);
}

static void test_codec_rejects_unknown_ext_types(void)
{
    lua_State *L = new_state();
    expect_corrupt(L, "\xd4\x02\x90", 3);             /* type 2 */
    expect_corrupt(L, "\xd6\xff\x00\x00\x00\x01", 6); /* timestamp */
    expect_corrupt(L, "\xc7\x01\x00\x90", 4);         /* type 0 */
    expect_corrupt(L, "\xc7\x00\x01", 3);             /* empty payload */
    expect_corrupt(L, "\xd4\x01\x01", 3);             /* not an array */
    expect_corrupt(L, "\x91\xd4\x01\x90", 4);         /* nested multi */
    expect_corrupt(L, "\xd5\x01\x91\xd4\x01\x90", 6); /* multi in multi */
    expect_corrupt(L, "\x81\xa1k\xd4\x01\x90", 6);    /* multi as value */
    expect_corrupt(L, "\xc1", 1);                     /* never used */
    lua_close(L);
}

static void test_codec_rejects_nesting_deeper_than_the_limit(void)
{
    lua_State *L = new_state();
    char bytes[CODEC_MAX_DEPTH + 2];
    memset(bytes, 0x91, sizeof(bytes));
    bytes[CODEC_MAX_DEPTH] = 0x01;
    ASSERT_EQ_INT(1, codec_decode(L, bytes, CODEC_MAX_DEPTH + 1, 0));
    lua_pop(L, 1);
    bytes[CODEC_MAX_DEPTH] = (char)0x91;
    bytes[CODEC_MAX_DEPTH + 1] = 0x01;
    expect_corrupt(L, bytes, CODEC_MAX_DEPTH + 2);

    /* maps count the same way: {k = {k = ... }} */
    char maps[3 * (CODEC_MAX_DEPTH + 1) + 1];
    for (int i = 0; i <= CODEC_MAX_DEPTH; i++)
        memcpy(maps + 3 * i, "\x81\xa1k", 3);
    maps[3 * CODEC_MAX_DEPTH] = 0x01;
    ASSERT_EQ_INT(1, codec_decode(L, maps, 3 * CODEC_MAX_DEPTH + 1, 0));
    lua_pop(L, 1);
    maps[3 * CODEC_MAX_DEPTH] = (char)0x81;
    maps[3 * (CODEC_MAX_DEPTH + 1)] = 0x01;
    expect_corrupt(L, maps, sizeof(maps));
    lua_close(L);
}

static void test_codec_survives_100000_nested_array_markers(void)
{
    lua_State *L = new_state();
    size_t n = 100000;
    char *bytes = malloc(n);
    ASSERT_NOT_NULL(bytes);
    memset(bytes, 0x91, n);
    expect_corrupt(L, bytes, n);
    memset(bytes, 0x81, n);
    expect_corrupt(L, bytes, n);
    free(bytes);
    lua_close(L);
}

static void test_codec_rejects_nil_nan_array_and_map_keys(void)
{
    lua_State *L = new_state();
    expect_corrupt(L, "\x81\xc0\x01", 3);
    expect_corrupt(L, "\x81\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00\x01", 11);
    expect_corrupt(L, "\x81\xca\x7f\xc0\x00\x00\x01", 7);
    expect_corrupt(L, "\x81\x90\x01", 3);
    expect_corrupt(L, "\x81\x80\x01", 3);
    expect_corrupt(L, "\x81\xdc\x00\x00\x01", 5);
    expect_corrupt(L, "\x81\xde\x00\x00\x01", 5);
    ASSERT_EQ_INT(1, codec_decode(L, "\x81\xcb\x7f\xf0\0\0\0\0\0\0\x01", 11,
                                  0)); /* inf is a fine key */
    lua_close(L);
}

/* -- Encoder errors ---------------------------------------------------- */

static void test_codec_names_the_type_and_path_of_unstorable_values(void)
{
    lua_State *L = new_state();
    expect_encode_error(L, "return print", "cannot cache a function at value");
    expect_encode_error(L, "return {callbacks = {1, print}}",
                        "cannot cache a function at value.callbacks[2]");
    expect_encode_error(L, "return io.stdout",
                        "cannot cache a userdata at value");
    expect_encode_error(L, "return {co = coroutine.create(print)}",
                        "cannot cache a thread at value.co");
    expect_encode_error(L, "return {[true] = {[2.5] = print}}",
                        "cannot cache a function at value[true][2.5]");
    expect_encode_error(L, "return {[-3] = {[2^63] = print}}",
                        "cannot cache a function at value[-3]"
                        "[9223372036854775808]");
    expect_encode_error(L, "return {[0.1] = print}",
                        "cannot cache a function at "
                        "value[0.10000000000000001]");
    expect_encode_error(L, "return {['weird \"key\"\\n'] = print}",
                        "cannot cache a function at "
                        "value[\"weird \\\"key\\\"\\10\"]");
    expect_encode_error(L, "return {['end'] = {['1a'] = {_ok = print}}}",
                        "cannot cache a function at "
                        "value[\"end\"][\"1a\"]._ok");
    expect_encode_error(L, "return {[('k'):rep(50)] = print}",
                        "cannot cache a function at value[\"kkkkkkkkkkkkkkkkkk"
                        "kkkkkkkkkkkkkkkkkkkkkk\"...]");
    lua_close(L);
}

static void test_codec_rejects_lightuserdata_as_userdata(void)
{
    lua_State *L = new_state();
    CodecBuf b = {0};
    lua_newtable(L);
    lua_pushlightuserdata(L, &b);
    lua_setfield(L, -2, "p");
    ASSERT_EQ_STR("cannot cache a userdata at value.p", try_encode(L, &b));
    codec_buf_free(&b);
    lua_close(L);
}

static void test_codec_rejects_cyclic_tables(void)
{
    lua_State *L = new_state();
    expect_encode_error(L, "local t = {a = {}} t.a.self = t return t",
                        "cannot cache a cyclic table at value.a.self");
    expect_encode_error(L, "local t = {} t[1] = t return t",
                        "cannot cache a cyclic table at value[1]");
    expect_encode_error(L, "local t = {} t.a = {b = {}} t.a.b.c = t.a return t",
                        "cannot cache a cyclic table at value.a.b.c");
    lua_close(L);
}

static void test_codec_rejects_tables_nested_deeper_than_the_limit(void)
{
    lua_State *L = new_state();
    round_trip_lua(L, "local t = {} local r = t for i = 2, 100 do t.a = {} "
                      "t = t.a end return r");
    expect_encode_error(L,
                        "local t = {} local r = t for i = 2, 101 do t.a = {} "
                        "t = t.a end return r",
                        "cannot cache a table nested deeper than 100 levels at "
                        "value.a.a.a.a.a.a.a.a(84 more).a.a.a.a.a.a.a.a");
    expect_encode_error(L,
                        "local t = {} local r = t for i = 2, 1000 do t[1] = {} "
                        "t = t[1] end return r",
                        "cannot cache a table nested deeper than 100 levels at "
                        "value[1][1][1][1][1][1][1][1](84 more)"
                        "[1][1][1][1][1][1][1][1]");
    lua_close(L);
}

static void test_codec_rejects_keys_that_are_not_scalars(void)
{
    lua_State *L = new_state();
    expect_encode_error(L, "return {x = {[{}] = 1}}",
                        "cannot cache a table as a key at value.x");
    expect_encode_error(L, "return {[print] = 1}",
                        "cannot cache a function as a key at value");
    lua_close(L);
}

static void test_codec_names_multi_values_result_i(void)
{
    lua_State *L = new_state();
    CodecBuf b = {0};
    lua_pushnumber(L, 1);
    push_lua(L, "return {x = print}");
    ASSERT_EQ_STR("cannot cache a function at result[2].x",
                  try_encode_multi(L, 2, &b));
    lua_settop(L, 0);
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushcfunction(L, encode_cf);
    ASSERT_EQ_STR("cannot cache a function at result[3]",
                  try_encode_multi(L, 3, &b));
    codec_buf_free(&b);
    lua_close(L);
}

static void test_codec_uses_the_given_root_name(void)
{
    lua_State *L = new_state();
    CodecBuf b = {0};
    lua_pushcfunction(L, encode_cf);
    lua_pushlightuserdata(L, &b);
    lua_pushliteral(L, "args");
    push_lua(L, "return {{}, {f = print}}");
    ASSERT_TRUE(lua_pcall(L, 3, 0, 0) != 0);
    ASSERT_EQ_STR("cannot cache a function at args[2].f", lua_tostring(L, -1));
    codec_buf_free(&b);
    lua_close(L);
}

static const TestCase cases[] = {
    TEST_CASE(test_codec_encodes_small_values_to_expected_bytes),
    TEST_CASE(test_codec_writes_negative_zero_as_a_float),
    TEST_CASE(test_codec_round_trips_integers_exactly),
    TEST_CASE(test_codec_round_trips_floats_bit_exactly),
    TEST_CASE(test_codec_writes_nan_with_the_bits_lua_holds),
    TEST_CASE(test_codec_round_trips_strings_with_nuls),
    TEST_CASE(test_codec_writes_valid_utf8_as_str_and_other_bytes_as_bin),
    TEST_CASE(test_codec_round_trips_arrays),
    TEST_CASE(test_codec_writes_arrays_with_holes_as_maps),
    TEST_CASE(test_codec_decodes_nil_array_elements_as_holes),
    TEST_CASE(test_codec_round_trips_nested_maps),
    TEST_CASE(test_codec_writes_shared_subtables_once_per_reference),
    TEST_CASE(test_codec_round_trips_mixed_keys),
    TEST_CASE(test_codec_ignores_metatables),
    TEST_CASE(test_codec_round_trips_multi_with_trailing_nils),
    TEST_CASE(test_codec_round_trips_a_multi_of_no_values),
    TEST_CASE(test_codec_writes_large_multis_with_wider_ext_headers),
    TEST_CASE(test_codec_reuses_a_buffer_across_encodes),
    TEST_CASE(test_codec_decodes_msgpack_from_another_writer),
    TEST_CASE(test_codec_decodes_every_header_width),
    TEST_CASE(test_codec_decodes_64bit_integers_as_numbers),
    TEST_CASE(test_codec_rejects_every_truncation_of_a_complex_encoding),
    TEST_CASE(test_codec_rejects_trailing_bytes),
    TEST_CASE(test_codec_rejects_huge_claimed_lengths_without_allocating),
    TEST_CASE(test_codec_rejects_unknown_ext_types),
    TEST_CASE(test_codec_rejects_nesting_deeper_than_the_limit),
    TEST_CASE(test_codec_survives_100000_nested_array_markers),
    TEST_CASE(test_codec_rejects_nil_nan_array_and_map_keys),
    TEST_CASE(test_codec_names_the_type_and_path_of_unstorable_values),
    TEST_CASE(test_codec_rejects_lightuserdata_as_userdata),
    TEST_CASE(test_codec_rejects_cyclic_tables),
    TEST_CASE(test_codec_rejects_tables_nested_deeper_than_the_limit),
    TEST_CASE(test_codec_rejects_keys_that_are_not_scalars),
    TEST_CASE(test_codec_names_multi_values_result_i),
    TEST_CASE(test_codec_uses_the_given_root_name),
    {NULL, NULL},
};

TEST_MAIN(cases)
