/*
** codec.c -- Lua values <-> MessagePack bytes.
**
** Encoding walks the value with the raw Lua API (metatables are ignored)
** and writes through msgpack-c's packer (libmsgpack-dev; its pack functions
** are inline) into the caller's CodecBuf. The walk keeps its path from the
** root in fixed arrays sized by CODEC_MAX_DEPTH: per level, the stack slot
** of the map key or the array index, and the table itself for the cycle
** check. So the encoder allocates nothing but the buffer, and may raise
** anywhere without leaking. Cost: O(bytes) plus O(depth) per table (cycle
** check); a table's keys are walked twice (count and classify, then write),
** since MessagePack headers carry the count.
**
** Decoding is hand-written, not msgpack-c's unpacker: that one builds an
** intermediate object tree in a zone (one more allocation and copy of every
** value) and has a fixed 32-level stack, below CODEC_MAX_DEPTH. Here the
** bytes go straight to the Lua stack in one pass. Every length is checked
** against the bytes left before anything is allocated (each element takes
** at least one byte), so a short input claiming a huge array fails at once.
** On failure the stack top is restored; nothing but Lua memory errors
** raises.
*/

#include "codec.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack/pack.h>

#include "status.h"

/* Longest string key shown whole in an error path, and how many path items
** are shown at each end of a longer path. */
#define PATH_KEY_SHOWN  40
#define PATH_ENDS_SHOWN 8

/* Stack slots the decoder may need for containers: a table, a key and a
** value per level. */
#define DECODE_STACK (3 * CODEC_MAX_DEPTH + 8)

/* -- Buffer ------------------------------------------------------------ */

int codec_buf_reserve(CodecBuf *b, size_t n)
{
    if (n <= b->cap)
        return CR_OK;
    char *data = realloc(b->data, n);
    if (data == NULL)
        return CR_ENOMEM;
    b->data = data;
    b->cap = n;
    return CR_OK;
}

void codec_buf_free(CodecBuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* -- UTF-8 ------------------------------------------------------------- */

/* Strict UTF-8 (Unicode table 3-7): no overlong forms, no surrogates,
** nothing above U+10FFFF. ASCII runs are checked 8 bytes at a time. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            while (len - i >= 8) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & UINT64_C(0x8080808080808080))
                    break;
                i += 8;
            }
            continue;
        }
        size_t need;
        unsigned lo = 0x80, hi = 0xbf; /* range of the second byte */
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            if (c == 0xe0)
                lo = 0xa0; /* overlong */
            else if (c == 0xed)
                hi = 0x9f; /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            if (c == 0xf0)
                lo = 0x90; /* overlong */
            else if (c == 0xf4)
                hi = 0x8f; /* above U+10FFFF */
        } else {
            return false; /* continuation, overlong C0/C1, F5..FF */
        }
        if (len - i - 1 < need || s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        i += need + 1;
    }
    return true;
}

/* -- Encoder state ----------------------------------------------------- */

enum { PATH_KEY, PATH_INDEX };

typedef struct PathItem {
    int kind;     /* PATH_KEY or PATH_INDEX */
    int slot;     /* PATH_KEY: stack slot holding the key */
    size_t index; /* PATH_INDEX: 1-based array index */
} PathItem;

typedef struct Encoder {
    lua_State *L;
    CodecBuf *b;
    msgpack_packer pk;
    const char *root;
    int npath;
    /* one item per table entered, plus result[i] of a multi */
    PathItem path[CODEC_MAX_DEPTH + 1];
    const void *tables[CODEC_MAX_DEPTH]; /* tables on the current path */
} Encoder;

/* A bounded string builder on the C stack: appends are cut at the end. */
typedef struct Out {
    char *p;
    size_t len, cap;
} Out;

static void out_mem(Out *o, const char *s, size_t n)
{
    if (n > o->cap - o->len)
        n = o->cap - o->len;
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void out_str(Out *o, const char *s)
{
    out_mem(o, s, strlen(s));
}

/* Raises the string built in `o` as the error value, without a position
** prefix (the message is about the value, not about a line of code). */
static void raise_out(lua_State *L, Out *o)
{
    lua_pushlstring(L, o->p, o->len);
    lua_error(L);
}

static void raise_oom(lua_State *L)
{
    lua_pushliteral(L, "not enough memory");
    lua_error(L);
}

/* -- Buffer writes (the packer's callback) ----------------------------- */

/* Grows the buffer to take `n` more bytes; raises when it cannot (b still
** owns its old block then). */
static void buf_grow(Encoder *e, size_t n)
{
    CodecBuf *b = e->b;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2)
            raise_oom(e->L);
        cap *= 2;
    }
    char *data = realloc(b->data, cap);
    if (data == NULL)
        raise_oom(e->L);
    b->data = data;
    b->cap = cap;
}

static inline void buf_reserve(Encoder *e, size_t n)
{
    if (n > e->b->cap - e->b->len)
        buf_grow(e, n);
}

static int buf_write(void *data, const char *s, size_t n)
{
    Encoder *e = data;
    CodecBuf *b = e->b;
    if (n > b->cap - b->len)
        buf_grow(e, n);
    memcpy(b->data + b->len, s, n); /* n > 0: empty bodies are skipped */
    b->len += n;
    return 0;
}

/* -- Error paths ------------------------------------------------------- */

/* Returns true and sets *i (or *u) when d is written as a MessagePack
** integer: integral, not -0.0, within int64 (or, above it, uint64). */
static bool number_is_int(lua_Number d, int64_t *i, uint64_t *u, bool *neg)
{
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
        int64_t v = (int64_t)d;
        if ((lua_Number)v != d || (v == 0 && signbit(d)))
            return false;
        *i = v;
        *neg = true;
        return true;
    }
    if (d >= 9223372036854775808.0 && d < 18446744073709551616.0) {
        *u = (uint64_t)d; /* every double in this range is integral */
        *neg = false;
        return true;
    }
    return false;
}

static bool is_identifier(const char *s, size_t len)
{
    static const char *const reserved[] = {
        "and",      "break",  "do",   "else", "elseif", "end",   "false", "for",
        "function", "goto",   "if",   "in",   "local",  "nil",   "not",   "or",
        "repeat",   "return", "then", "true", "until",  "while", NULL};
    if (len == 0 || len > PATH_KEY_SHOWN)
        return false;
    if (!(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') ||
          (s[0] >= 'A' && s[0] <= 'Z')))
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9')))
            return false;
    }
    for (int k = 0; reserved[k] != NULL; k++)
        if (strlen(reserved[k]) == len && memcmp(reserved[k], s, len) == 0)
            return false;
    return true;
}

/* Appends ["..."] with quotes, backslashes and control bytes escaped as in
** Lua source; keys longer than PATH_KEY_SHOWN bytes are cut: ["abc"...]. */
static void out_quoted(Out *o, const char *s, size_t len)
{
    bool cut = len > PATH_KEY_SHOWN;
    const char *end = s + (cut ? PATH_KEY_SHOWN : len);
    out_str(o, "[\"");
    for (; s < end; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            out_mem(o, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\%u", c);
            out_str(o, esc);
        } else {
            out_mem(o, (const char *)&c, 1);
        }
    }
    out_str(o, cut ? "\"...]" : "\"]");
}

static void out_item(Encoder *e, Out *o, const PathItem *it)
{
    lua_State *L = e->L;
    char num[48];
    if (it->kind == PATH_INDEX) {
        snprintf(num, sizeof(num), "[%zu]", it->index);
        out_str(o, num);
        return;
    }
    switch (lua_type(L, it->slot)) {
    case LUA_TBOOLEAN:
        out_str(o, lua_toboolean(L, it->slot) ? "[true]" : "[false]");
        break;
    case LUA_TNUMBER: {
        lua_Number d = lua_tonumber(L, it->slot);
        int64_t i;
        uint64_t u;
        bool neg;
        if (!number_is_int(d, &i, &u, &neg))
            snprintf(num, sizeof(num), "[%.17g]", d);
        else if (neg)
            snprintf(num, sizeof(num), "[%" PRId64 "]", i);
        else
            snprintf(num, sizeof(num), "[%" PRIu64 "]", u);
        out_str(o, num);
        break;
    }
    default: { /* string: keys of other types never get onto the path */
        size_t len;
        const char *s = lua_tolstring(L, it->slot, &len);
        if (is_identifier(s, len)) {
            out_str(o, ".");
            out_mem(o, s, len);
        } else {
            out_quoted(o, s, len);
        }
        break;
    }
    }
}

/* Raises "cannot cache <what> at <path>". A path longer than twice
** PATH_ENDS_SHOWN items keeps both ends: value.a.a(84 more).a.a */
static void raise_at(Encoder *e, const char *what)
{
    char msg[2048];
    Out o = {msg, 0, sizeof(msg)};
    out_str(&o, "cannot cache ");
    out_str(&o, what);
    out_str(&o, " at ");
    out_str(&o, e->root);
    for (int k = 0; k < e->npath; k++) {
        if (e->npath > 2 * PATH_ENDS_SHOWN && k == PATH_ENDS_SHOWN) {
            char more[32];
            snprintf(more, sizeof(more), "(%d more)",
                     e->npath - 2 * PATH_ENDS_SHOWN);
            out_str(&o, more);
            k = e->npath - PATH_ENDS_SHOWN;
        }
        out_item(e, &o, &e->path[k]);
    }
    raise_out(e->L, &o);
}

/* Raises "cannot cache a <type()>[ as a key] at <path>". */
static void raise_type(Encoder *e, int idx, bool as_key)
{
    char what[64];
    snprintf(what, sizeof(what), "a %s%s",
             lua_typename(e->L, lua_type(e->L, idx)),
             as_key ? " as a key" : "");
    raise_at(e, what);
}

/* -- Encoder ----------------------------------------------------------- */

static void encode_number(Encoder *e, lua_Number d)
{
    int64_t i;
    uint64_t u;
    bool neg;
    if (!number_is_int(d, &i, &u, &neg))
        msgpack_pack_double(&e->pk, d); /* bit-exact: nan, inf, -0.0 */
    else if (neg)
        msgpack_pack_int64(&e->pk, i); /* smallest form, uint for i >= 0 */
    else
        msgpack_pack_uint64(&e->pk, u);
}

static void encode_string(Encoder *e, int idx)
{
    size_t len;
    const char *s = lua_tolstring(e->L, idx, &len);
    if (utf8_valid((const unsigned char *)s, len)) {
        msgpack_pack_str(&e->pk, len);
        if (len > 0)
            msgpack_pack_str_body(&e->pk, s, len);
    } else {
        msgpack_pack_bin(&e->pk, len);
        msgpack_pack_bin_body(&e->pk, s, len); /* invalid, so len > 0 */
    }
}

/* Encodes a map key already checked to be a boolean, number or string. */
static void encode_key(Encoder *e, int idx)
{
    switch (lua_type(e->L, idx)) {
    case LUA_TBOOLEAN:
        if (lua_toboolean(e->L, idx))
            msgpack_pack_true(&e->pk);
        else
            msgpack_pack_false(&e->pk);
        break;
    case LUA_TNUMBER:
        encode_number(e, lua_tonumber(e->L, idx));
        break;
    default:
        encode_string(e, idx);
        break;
    }
}

static void encode_value(Encoder *e, int idx, int depth);

/* Encodes the table at absolute slot `idx`, which sits `depth` tables deep
** (the root table is depth 1). */
static void encode_table(Encoder *e, int idx, int depth)
{
    lua_State *L = e->L;
    const void *t = lua_topointer(L, idx);
    for (int k = 0; k < depth - 1; k++)
        if (e->tables[k] == t) {
            raise_at(e, "a cyclic table");
            return;
        }
    if (depth > CODEC_MAX_DEPTH) {
        char what[64];
        snprintf(what, sizeof(what), "a table nested deeper than %d levels",
                 CODEC_MAX_DEPTH);
        raise_at(e, what);
        return;
    }
    e->tables[depth - 1] = t;
    if (!lua_checkstack(L, 3))
        raise_oom(L);

    /* Pass 1: count the keys, check their types, and see whether they are
    ** exactly 1..n: n keys, all positive integers, the largest being n. */
    size_t n = 0;
    lua_Number max = 0;
    bool seq = true;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        switch (lua_type(L, -2)) {
        case LUA_TNUMBER: {
            lua_Number k = lua_tonumber(L, -2);
            if (seq && k >= 1 && k < 9007199254740992.0 &&
                (lua_Number)(int64_t)k == k) {
                if (k > max)
                    max = k;
            } else {
                seq = false;
            }
            break;
        }
        case LUA_TBOOLEAN:
        case LUA_TSTRING:
            seq = false;
            break;
        default:
            raise_type(e, -2, true);
            return;
        }
        n++;
        lua_pop(L, 1);
    }

    int top = lua_gettop(L);
    PathItem *item = &e->path[e->npath++];
    if (seq && n > 0 && (lua_Number)n == max && n <= INT_MAX) {
        msgpack_pack_array(&e->pk, n);
        item->kind = PATH_INDEX;
        for (int i = 1; i <= (int)n; i++) {
            item->index = (size_t)i;
            lua_rawgeti(L, idx, i);
            encode_value(e, top + 1, depth + 1);
            lua_pop(L, 1);
        }
    } else {
        msgpack_pack_map(&e->pk, n);
        item->kind = PATH_KEY;
        item->slot = top + 1;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            encode_key(e, top + 1);
            encode_value(e, top + 2, depth + 1);
            lua_pop(L, 1);
        }
    }
    e->npath--;
}

/* Encodes the value at absolute slot `idx`; a table there would be `depth`
** tables deep. */
static void encode_value(Encoder *e, int idx, int depth)
{
    switch (lua_type(e->L, idx)) {
    case LUA_TNIL:
        msgpack_pack_nil(&e->pk);
        break;
    case LUA_TBOOLEAN:
        if (lua_toboolean(e->L, idx))
            msgpack_pack_true(&e->pk);
        else
            msgpack_pack_false(&e->pk);
        break;
    case LUA_TNUMBER:
        encode_number(e, lua_tonumber(e->L, idx));
        break;
    case LUA_TSTRING:
        encode_string(e, idx);
        break;
    case LUA_TTABLE:
        encode_table(e, idx, depth);
        break;
    default: /* function, userdata, thread, cdata */
        raise_type(e, idx, false);
        break;
    }
}

static void encoder_init(Encoder *e, lua_State *L, CodecBuf *b,
                         const char *root)
{
    e->L = L;
    e->b = b;
    e->root = root;
    e->npath = 0;
    b->len = 0;
    msgpack_packer_init(&e->pk, e, buf_write);
}

static int abs_index(lua_State *L, int idx)
{
    return idx < 0 && idx > LUA_REGISTRYINDEX ? lua_gettop(L) + idx + 1 : idx;
}

/* The header of an ext value: at most 6 bytes (ext32). */
typedef struct ExtHeader {
    char bytes[8];
    size_t len;
} ExtHeader;

static int header_write(void *data, const char *s, size_t n)
{
    ExtHeader *h = data;
    memcpy(h->bytes + h->len, s, n);
    h->len += n;
    return 0;
}

void codec_encode(lua_State *L, int idx, CodecBuf *b, const char *root)
{
    Encoder e;
    encoder_init(&e, L, b, root != NULL ? root : "value");
    encode_value(&e, abs_index(L, idx), 1);
}

void codec_encode_multi(lua_State *L, int first, int n, CodecBuf *b)
{
    Encoder e;
    encoder_init(&e, L, b, "result");
    first = abs_index(L, first);
    if (n < 0)
        n = 0;
    /* The payload goes first, then its ext header is slid in front of it:
    ** the header's size depends on the payload's. */
    msgpack_pack_array(&e.pk, (size_t)n);
    PathItem *item = &e.path[e.npath++];
    item->kind = PATH_INDEX;
    for (int i = 0; i < n; i++) {
        item->index = (size_t)i + 1;
        encode_value(&e, first + i, 1);
    }
    e.npath--;

    ExtHeader h = {{0}, 0};
    msgpack_packer hp;
    msgpack_packer_init(&hp, &h, header_write);
    msgpack_pack_ext(&hp, b->len, CODEC_EXT_MULTI);
    buf_reserve(&e, h.len);
    memmove(b->data + h.len, b->data, b->len);
    memcpy(b->data, h.bytes, h.len);
    b->len += h.len;
}

/* -- Decoder ----------------------------------------------------------- */

typedef struct Decoder {
    lua_State *L;
    const unsigned char *p, *end;
} Decoder;

static uint16_t load16(const unsigned char *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t load32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static uint64_t load64(const unsigned char *p)
{
    return (uint64_t)load32(p) << 32 | load32(p + 4);
}

static size_t left(const Decoder *d)
{
    return (size_t)(d->end - d->p);
}

/* Reads a big-endian length of `width` bytes (1, 2 or 4). */
static bool read_len(Decoder *d, int width, size_t *n)
{
    if (left(d) < (size_t)width)
        return false;
    if (width == 1)
        *n = d->p[0];
    else if (width == 2)
        *n = load16(d->p);
    else
        *n = load32(d->p);
    d->p += width;
    return true;
}

static bool decode_value(Decoder *d, int depth);

static bool decode_string(Decoder *d, size_t n)
{
    if (n > left(d))
        return false;
    lua_pushlstring(d->L, (const char *)d->p, n);
    d->p += n;
    return true;
}

/* Decodes `n` elements into a new table at 1..n; nils leave holes. */
static bool decode_array(Decoder *d, size_t n, int depth)
{
    lua_State *L = d->L;
    if (depth > CODEC_MAX_DEPTH || n > left(d) || n > INT_MAX)
        return false; /* every element takes at least one byte */
    lua_createtable(L, (int)n, 0);
    for (size_t i = 1; i <= n; i++) {
        if (!decode_value(d, depth + 1))
            return false;
        if (lua_isnil(L, -1))
            lua_pop(L, 1);
        else
            lua_rawseti(L, -2, (int)i);
    }
    return true;
}

static bool decode_map(Decoder *d, size_t n, int depth)
{
    lua_State *L = d->L;
    if (depth > CODEC_MAX_DEPTH || n > left(d) / 2 || n > INT_MAX)
        return false; /* every pair takes at least two bytes */
    lua_createtable(L, 0, (int)n);
    for (size_t i = 0; i < n; i++) {
        if (d->p == d->end)
            return false;
        unsigned c = *d->p;
        if (c == 0xc0 || (c >= 0x80 && c <= 0x9f) || (c >= 0xdc && c <= 0xdf))
            return false; /* nil, array or map key: refused before decoding */
        if (!decode_value(d, depth + 1))
            return false;
        if (lua_type(L, -1) == LUA_TNUMBER && isnan(lua_tonumber(L, -1)))
            return false;
        if (!decode_value(d, depth + 1))
            return false;
        if (lua_isnil(L, -1))
            lua_pop(L, 2);
        else
            lua_rawset(L, -3);
    }
    return true;
}

/* Decodes one value (never an ext) and pushes it; a container here is
** `depth` deep. On failure the stack may hold partial results. */
static bool decode_value(Decoder *d, int depth)
{
    lua_State *L = d->L;
    size_t n;
    if (d->p == d->end)
        return false;
    unsigned c = *d->p++;
    if (c <= 0x7f) {
        lua_pushnumber(L, c);
        return true;
    }
    if (c >= 0xe0) {
        lua_pushnumber(L, (int8_t)c);
        return true;
    }
    if (c <= 0x8f)
        return decode_map(d, c & 0x0f, depth);
    if (c <= 0x9f)
        return decode_array(d, c & 0x0f, depth);
    if (c <= 0xbf)
        return decode_string(d, c & 0x1f);
    switch (c) {
    case 0xc0:
        lua_pushnil(L);
        return true;
    case 0xc2:
    case 0xc3:
        lua_pushboolean(L, c == 0xc3);
        return true;
    case 0xc4: /* bin 8 */
    case 0xd9: /* str 8 */
        return read_len(d, 1, &n) && decode_string(d, n);
    case 0xc5:
    case 0xda:
        return read_len(d, 2, &n) && decode_string(d, n);
    case 0xc6:
    case 0xdb:
        return read_len(d, 4, &n) && decode_string(d, n);
    case 0xca: { /* float 32 */
        if (left(d) < 4)
            return false;
        uint32_t bits = load32(d->p);
        float f;
        memcpy(&f, &bits, 4);
        d->p += 4;
        lua_pushnumber(L, (lua_Number)f);
        return true;
    }
    case 0xcb: { /* float 64 */
        if (left(d) < 8)
            return false;
        uint64_t bits = load64(d->p);
        double f;
        memcpy(&f, &bits, 8);
        d->p += 8;
        lua_pushnumber(L, f);
        return true;
    }
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: { /* uint 8..64 */
        size_t w = (size_t)1 << (c - 0xcc);
        if (left(d) < w)
            return false;
        uint64_t u = w == 1   ? d->p[0]
                     : w == 2 ? load16(d->p)
                     : w == 4 ? load32(d->p)
                              : load64(d->p);
        d->p += w;
        lua_pushnumber(L, (lua_Number)u);
        return true;
    }
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: { /* int 8..64 */
        size_t w = (size_t)1 << (c - 0xd0);
        if (left(d) < w)
            return false;
        int64_t i = w == 1   ? (int8_t)d->p[0]
                    : w == 2 ? (int16_t)load16(d->p)
                    : w == 4 ? (int32_t)load32(d->p)
                             : (int64_t)load64(d->p);
        d->p += w;
        lua_pushnumber(L, (lua_Number)i);
        return true;
    }
    case 0xdc:
        return read_len(d, 2, &n) && decode_array(d, n, depth);
    case 0xdd:
        return read_len(d, 4, &n) && decode_array(d, n, depth);
    case 0xde:
        return read_len(d, 2, &n) && decode_map(d, n, depth);
    case 0xdf:
        return read_len(d, 4, &n) && decode_map(d, n, depth);
    default: /* 0xc1 (never used), ext: only a whole input may be a multi */
        return false;
    }
}

static bool is_ext(unsigned c)
{
    return (c >= 0xc7 && c <= 0xc9) || (c >= 0xd4 && c <= 0xd8);
}

/* Decodes a whole input that is an ext value: it must be a multi, its
** payload exactly one array. Returns the number of values pushed, or -1. */
static int decode_multi(Decoder *d, int unpack_multi)
{
    lua_State *L = d->L;
    unsigned c = *d->p++;
    size_t plen;
    if (c >= 0xd4) {
        plen = (size_t)1 << (c - 0xd4); /* fixext 1..16 */
    } else if (!read_len(d, 1 << (c - 0xc7), &plen)) {
        return -1;
    }
    if (left(d) < 1 || (int8_t)*d->p != CODEC_EXT_MULTI)
        return -1;
    d->p++;
    if (plen != left(d) || plen == 0)
        return -1;

    size_t n = 0;
    bool ok;
    c = *d->p++;
    if (c >= 0x90 && c <= 0x9f) {
        n = c & 0x0f;
        ok = true;
    } else {
        ok = (c == 0xdc && read_len(d, 2, &n)) ||
             (c == 0xdd && read_len(d, 4, &n));
    }
    if (!ok || n > left(d) || n > INT_MAX - DECODE_STACK)
        return -1;

    if (unpack_multi) {
        if (!lua_checkstack(L, (int)n + DECODE_STACK))
            return -1; /* more values than a C function may push */
        for (size_t i = 0; i < n; i++)
            if (!decode_value(d, 1))
                return -1;
        return (int)n;
    }
    lua_createtable(L, (int)n, 1);
    for (size_t i = 1; i <= n; i++) {
        if (!decode_value(d, 1))
            return -1;
        if (lua_isnil(L, -1))
            lua_pop(L, 1);
        else
            lua_rawseti(L, -2, (int)i);
    }
    lua_pushliteral(L, "n");
    lua_pushnumber(L, (lua_Number)n);
    lua_rawset(L, -3);
    return 1;
}

int codec_decode(lua_State *L, const char *data, size_t len, int unpack_multi)
{
    const unsigned char *p = (const unsigned char *)data;
    /* Hot path: the whole input is one short string (fixstr, str 8, bin 8). */
    if (len > 0) {
        unsigned c = p[0];
        if ((c & 0xe0) == 0xa0) {
            if (len - 1 == (c & 0x1f)) {
                lua_pushlstring(L, data + 1, len - 1);
                return 1;
            }
        } else if ((c == 0xd9 || c == 0xc4) && len >= 2 && len - 2 == p[1]) {
            lua_pushlstring(L, data + 2, len - 2);
            return 1;
        }
    }

    int top = lua_gettop(L);
    Decoder d = {L, p, p + len};
    int pushed;
    if (!lua_checkstack(L, DECODE_STACK)) {
        pushed = -1;
    } else if (len > 0 && is_ext(p[0])) {
        pushed = decode_multi(&d, unpack_multi);
    } else {
        pushed = decode_value(&d, 1) ? 1 : -1;
    }
    if (pushed < 0 || d.p != d.end) {
        lua_settop(L, top);
        return CR_ECORRUPT;
    }
    return pushed;
}

/* -- Scalars without Lua ---------------------------------------------- */

size_t codec_string_header(const char *s, size_t len, unsigned char *out)
{
    bool text = utf8_valid((const unsigned char *)s, len);
    if (text && len < 32) {
        out[0] = (unsigned char)(0xa0 | len);
        return 1;
    }
    unsigned base = text ? 0xd9 : 0xc4; /* str8/16/32 or bin8/16/32 */
    if (len < 0x100) {
        out[0] = (unsigned char)base;
        out[1] = (unsigned char)len;
        return 2;
    }
    if (len < 0x10000) {
        out[0] = (unsigned char)(base + 1);
        out[1] = (unsigned char)(len >> 8);
        out[2] = (unsigned char)len;
        return 3;
    }
    out[0] = (unsigned char)(base + 2);
    for (int i = 0; i < 4; i++)
        out[1 + i] = (unsigned char)(len >> (24 - 8 * i));
    return 5;
}
