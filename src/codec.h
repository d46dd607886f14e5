/*
** codec.h -- Lua values <-> MessagePack bytes.
**
** Storable: nil, booleans, numbers, strings, tables whose keys are
** booleans, numbers or strings and whose values are storable, nested at
** most CODEC_MAX_DEPTH tables deep. Numbers that are integers (and not
** -0.0) that fit int64/uint64 are written as MessagePack integers, every
** other number as float64 (bit-exact: -0.0, inf, nan). A string that is
** valid UTF-8 is a `str`, any other a `bin`. A table whose keys are exactly
** 1..n is an array, any other (including the empty table) a map. Shared
** subtables are written once per reference; a cycle is an error.
**
** A "multi" value (the results of a function call, nils included) is an
** ext value of type CODEC_EXT_MULTI whose payload is a MessagePack array of
** the values, so a count of trailing nils survives.
**
** Decoding never raises on bad bytes: corrupt, truncated, too deep or
** unsupported input gives CR_ECORRUPT with nothing left on the stack.
** Decoding never executes code.
*/
#ifndef CACHERT_CODEC_H
#define CACHERT_CODEC_H

#include <stddef.h>

#include <lua.h>

#define CODEC_MAX_DEPTH 100
#define CODEC_EXT_MULTI 1

/* A growable byte buffer. The owner keeps it alive across Lua errors (put
** it inside a userdata) so an error raised mid-encode leaks nothing;
** codec_buf_free() releases its memory. Zero-initialise before first use. */
typedef struct CodecBuf {
    char *data;
    size_t len;
    size_t cap;
} CodecBuf;

void codec_buf_free(CodecBuf *b);

/* Makes room for `n` bytes from the start of `b` (b->len is unchanged).
** Returns CR_OK or CR_ENOMEM. */
int codec_buf_reserve(CodecBuf *b, size_t n);

/* Encodes the value at stack index `idx` into `b` (b->len is reset first).
** [-0, +0, e]: raises a Lua error for an unstorable value, with a message
** such as "cannot cache a function at value.callbacks[2]", where `root`
** names the value ("value"). Also raises on out of memory. */
void codec_encode(lua_State *L, int idx, CodecBuf *b, const char *root);

/* Encodes the `n` stack slots starting at `first` as one multi value
** (CODEC_EXT_MULTI). The path names the i-th value "result[i]".
** [-0, +0, e] as codec_encode. */
void codec_encode_multi(lua_State *L, int first, int n, CodecBuf *b);

/* Decodes `len` bytes. A plain value pushes one Lua value and returns 1. A
** multi value pushes its n values and returns n when `unpack_multi` is
** non-zero, or pushes one table { n = n, ... } and returns 1 otherwise.
** Returns CR_ECORRUPT (negative) with nothing pushed when the bytes are not
** one complete value this codec accepts (trailing bytes included).
** [-0, +n, m] */
int codec_decode(lua_State *L, const char *data, size_t len, int unpack_multi);

/* Details of the functions above:
**
** - Encoder errors are raised with lua_error and no position prefix:
**     cannot cache a <type()> at <path>
**     cannot cache a <type()> as a key at <path of the table>
**     cannot cache a cyclic table at <path>
**     cannot cache a table nested deeper than 100 levels at <path>
**   The path starts with `root` (NULL means "value"; "result" for a multi)
**   and adds `.name` for identifier-like string keys, `["other"]` for other
**   strings (quotes, backslashes and control bytes escaped as in Lua; cut
**   after 40 bytes as `["abc"...]`), `[2]` / `[0.10000000000000001]` for
**   numbers, `[true]` for booleans. A path of more than 16 steps keeps 8 at
**   each end: `value.a.a.a.a.a.a.a.a(84 more).a.a.a.a.a.a.a.a`. When the
**   buffer cannot grow the message is "not enough memory". Nothing but the
**   buffer is allocated, so an error leaks nothing (b may be half-written).
** - NaN: LuaJIT keeps a single canonical NaN, so every NaN is written with
**   those bits, and any NaN read decodes to it.
** - codec_decode needs one free stack slot for a scalar (like any push)
**   and checks the stack itself for containers. With unpack_multi, a multi
**   of more values than a C function may push (LUAI_MAXCSTACK, 8000 in
**   LuaJIT) gives CR_ECORRUPT; decode it with unpack_multi == 0 instead.
** - Decoded integers (any width, int64/uint64 included) and float32 become
**   lua_Number; map entries whose value is nil are skipped. */

/* Writes the MessagePack header of the string `s` (`len` bytes, which must
** be < 2^32) to `out` (room for 5 bytes): a str when `s` is valid UTF-8,
** else a bin. Returns the header's length; the body is `s` itself. Lets a
** caller store a string without a lua_State. */
size_t codec_string_header(const char *s, size_t len, unsigned char *out);

#endif
