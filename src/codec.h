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
int codec_decode(lua_State *L, const char *data, size_t len,
                 int unpack_multi);

#endif
