/*
 * ec_jsondec.c - the JSON decoder (see ec_jsondec.h for what it reads, and
 * why it is envclone's own rather than lua-cjson's).
 */
#include "ec_jsondec.h"
#include "ec_json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    lua_State *L;
    const unsigned char *s;
    size_t n, i;
    int array_mt;
    char *why;
    size_t whylen;
} dec;

static int fail(dec *d, const char *what)
{
    snprintf(d->why, d->whylen, "%s at byte %zu", what, d->i + 1);
    return -1;
}

/* The scanning loops work on local copies of d->s, d->i and d->n: through
 * d, every byte loaded (an unsigned char, which may alias anything) would
 * make the compiler reload and store all three on each byte. */
static void skip_ws(dec *d)
{
    const unsigned char *s = d->s;
    size_t i = d->i, n = d->n;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    d->i = i;
}

/* Advances d->i to the next '"' or '\\' (or the end). */
static void skip_plain(dec *d)
{
    const unsigned char *s = d->s;
    size_t i = d->i, n = d->n;
    while (i < n && s[i] != '"' && s[i] != '\\')
        i++;
    d->i = i;
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = p[k];
        unsigned h;
        if (c >= '0' && c <= '9')
            h = c - '0';
        else if (c >= 'a' && c <= 'f')
            h = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            h = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + h;
    }
    *out = v;
    return 0;
}

static void add_utf8(luaL_Buffer *b, unsigned cp)
{
    char u[4];
    size_t len;
    if (cp < 0x80) {
        u[0] = (char)cp;
        len = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        len = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        len = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        len = 4;
    }
    luaL_addlstring(b, u, len);
}

/* Reads a \uXXXX escape at s[i] (i at the backslash) and, for a high
 * surrogate directly followed by a low one, the pair; a surrogate without
 * its partner is U+FFFD (RFC 8259 section 8.2 leaves it to the parser). */
static int read_u_escape(dec *d, unsigned *cp)
{
    unsigned v;
    if (d->i + 6 > d->n || hex4(d->s + d->i + 2, &v) != 0)
        return fail(d, "invalid \\u escape");
    d->i += 6;
    if (v >= 0xD800 && v <= 0xDBFF) {
        unsigned lo;
        if (d->i + 6 <= d->n && d->s[d->i] == '\\' && d->s[d->i + 1] == 'u' && hex4(d->s + d->i + 2, &lo) == 0
            && lo >= 0xDC00 && lo <= 0xDFFF) {
            d->i += 6;
            *cp = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
            return 0;
        }
        *cp = 0xFFFD;
        return 0;
    }
    *cp = (v >= 0xDC00 && v <= 0xDFFF) ? 0xFFFD : v;
    return 0;
}

/* d->i at the opening quote; pushes the string. */
static int read_string(dec *d)
{
    size_t start = ++d->i;
    /* The first run of plain bytes is found with memchr (vectorised in
     * libc; the byte loop cost 7 instructions a byte, most of decoding a
     * clone result's ids and keys): the closing quote, then a backslash
     * before it.  Runs after an escape go byte by byte (skip_plain), so no
     * byte is looked at more than three times. */
    const unsigned char *q = memchr(d->s + start, '"', d->n - start);
    size_t end = q ? (size_t)(q - d->s) : d->n;
    const unsigned char *bs = memchr(d->s + start, '\\', end - start);
    d->i = bs ? (size_t)(bs - d->s) : end;
    if (d->i < d->n && d->s[d->i] == '"') { /* no escapes: the common case */
        lua_pushlstring(d->L, (const char *)d->s + start, d->i - start);
        d->i++;
        return 0;
    }
    luaL_Buffer b;
    luaL_buffinit(d->L, &b);
    luaL_addlstring(&b, (const char *)d->s + start, d->i - start);
    for (;;) {
        if (d->i >= d->n) {
            luaL_pushresult(&b);
            lua_pop(d->L, 1);
            return fail(d, "unterminated string");
        }
        unsigned char c = d->s[d->i];
        if (c == '"') {
            d->i++;
            luaL_pushresult(&b);
            return 0;
        }
        if (c != '\\') {
            size_t run = d->i;
            skip_plain(d);
            luaL_addlstring(&b, (const char *)d->s + run, d->i - run);
            continue;
        }
        if (d->i + 1 >= d->n) {
            luaL_pushresult(&b);
            lua_pop(d->L, 1);
            return fail(d, "unterminated string");
        }
        unsigned char e = d->s[d->i + 1];
        char out = 0;
        switch (e) {
        case '"': out = '"'; break;
        case '\\': out = '\\'; break;
        case '/': out = '/'; break;
        case 'b': out = '\b'; break;
        case 'f': out = '\f'; break;
        case 'n': out = '\n'; break;
        case 'r': out = '\r'; break;
        case 't': out = '\t'; break;
        case 'u': {
            unsigned cp;
            if (read_u_escape(d, &cp) != 0) {
                luaL_pushresult(&b);
                lua_pop(d->L, 1);
                return -1;
            }
            add_utf8(&b, cp);
            continue;
        }
        default:
            luaL_pushresult(&b);
            lua_pop(d->L, 1);
            return fail(d, "invalid escape in a string");
        }
        luaL_addchar(&b, out);
        d->i += 2;
    }
}

static int digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Pushes the number at d->i, read to the letter of RFC 8259's grammar. */
static int read_number(dec *d)
{
    size_t start = d->i;
    int is_int = 1;
    if (d->s[d->i] == '-')
        d->i++;
    if (d->i >= d->n || !digit(d->s[d->i]))
        return fail(d, "invalid number");
    if (d->s[d->i] == '0')
        d->i++;
    else
        while (d->i < d->n && digit(d->s[d->i]))
            d->i++;
    if (d->i < d->n && d->s[d->i] == '.') {
        is_int = 0;
        d->i++;
        if (d->i >= d->n || !digit(d->s[d->i]))
            return fail(d, "invalid number (no digit after '.')");
        while (d->i < d->n && digit(d->s[d->i]))
            d->i++;
    }
    if (d->i < d->n && (d->s[d->i] == 'e' || d->s[d->i] == 'E')) {
        is_int = 0;
        d->i++;
        if (d->i < d->n && (d->s[d->i] == '+' || d->s[d->i] == '-'))
            d->i++;
        if (d->i >= d->n || !digit(d->s[d->i]))
            return fail(d, "invalid number (no digit in the exponent)");
        while (d->i < d->n && digit(d->s[d->i]))
            d->i++;
    }
    const char *tok = (const char *)d->s + start;
    size_t len = d->i - start;
#if LUA_VERSION_NUM >= 503
    if (is_int) {
        int neg = tok[0] == '-';
        uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        int fits = 1;
        for (size_t k = (size_t)neg; k < len && fits; k++) {
            unsigned dgt = (unsigned)(tok[k] - '0');
            if (v > (limit - dgt) / 10)
                fits = 0;
            else
                v = v * 10 + dgt;
        }
        if (fits) {
            /* -2^63 has no positive twin: negate in unsigned arithmetic */
            lua_pushinteger(d->L, neg ? (lua_Integer)(0 - v) : (lua_Integer)v);
            return 0;
        }
    }
#else
    (void)is_int;
#endif
    double v;
    if (ec_json_strtod(tok, len, &v) != 0)
        return fail(d, "invalid number");
    lua_pushnumber(d->L, (lua_Number)v);
    return 0;
}

static int literal(dec *d, const char *word, size_t len)
{
    if (d->n - d->i < len || memcmp(d->s + d->i, word, len) != 0)
        return fail(d, "invalid token");
    d->i += len;
    return 0;
}

static int read_value(dec *d, int depth);

/* Members and items wait on the Lua stack, and their table is made once
 * their count is known (or PENDING_MAX of them are waiting): a table filled
 * one key at a time from empty is rehashed at 1, 2, 4, 8... keys, which cost
 * more than all the rest of decoding a small answer (callgrind: 3.3k of the
 * 7.7k instructions that decoding Kontent's 4-key clone result took).  The
 * bound keeps what waits at one level small (the stack needs at most about
 * 2 * PENDING_MAX slots a level, EC_JSON_MAX_DEPTH levels); past it the
 * table grows as before.  The slot at `base` was reserved (nil) for the
 * table. */
#define PENDING_MAX 16

static void make_array(dec *d, int base, int items)
{
    lua_State *L = d->L;
    lua_createtable(L, items, 0);
    if (d->array_mt) {
        lua_pushvalue(L, d->array_mt);
        lua_setmetatable(L, -2);
    }
    lua_replace(L, base);
    for (int k = items; k >= 1; k--) /* distinct indices: any order does */
        lua_rawseti(L, base, k);
}

static void make_object(dec *d, int base, int pairs)
{
    lua_State *L = d->L;
    lua_createtable(L, 0, pairs);
    lua_replace(L, base);
    /* in the text's order, so that the last of duplicate keys wins */
    for (int k = 0; k < pairs; k++) {
        lua_pushvalue(L, base + 1 + 2 * k);
        lua_pushvalue(L, base + 2 + 2 * k);
        lua_rawset(L, base);
    }
    lua_settop(L, base);
}

/* Room for one more waiting member; none (or too many waiting) makes the
 * table now.  make_object and make_array need 3 slots: what the last
 * successful check (this one's 8, or read_value's 6 before the container)
 * left after the members pushed since. */
static int may_wait(lua_State *L, int waiting)
{
    return waiting < PENDING_MAX && lua_checkstack(L, 8);
}

static int read_array(dec *d, int depth)
{
    lua_State *L = d->L;
    d->i++;
    skip_ws(d);
    if (d->i < d->n && d->s[d->i] == ']') {
        d->i++;
        lua_pushnil(L);
        make_array(d, lua_gettop(L), 0);
        return 0;
    }
    lua_pushnil(L);
    int base = lua_gettop(L), waiting = 0, made = 0;
    for (lua_Integer k = 1;; k++) {
        if (!made && !may_wait(L, waiting)) {
            make_array(d, base, waiting);
            made = 1;
        }
        if (read_value(d, depth) != 0)
            return -1;
        if (made)
            lua_rawseti(L, base, k);
        else
            waiting++;
        skip_ws(d);
        if (d->i < d->n && d->s[d->i] == ',') {
            d->i++;
            continue;
        }
        if (d->i < d->n && d->s[d->i] == ']') {
            d->i++;
            if (!made)
                make_array(d, base, waiting);
            return 0;
        }
        return fail(d, "expected ',' or ']' in an array");
    }
}

static int read_object(dec *d, int depth)
{
    lua_State *L = d->L;
    d->i++;
    skip_ws(d);
    if (d->i < d->n && d->s[d->i] == '}') {
        d->i++;
        lua_newtable(L);
        return 0;
    }
    lua_pushnil(L);
    int base = lua_gettop(L), waiting = 0, made = 0;
    for (;;) {
        skip_ws(d);
        if (d->i >= d->n || d->s[d->i] != '"')
            return fail(d, "expected a string key in an object");
        if (!made && !may_wait(L, waiting)) {
            make_object(d, base, waiting);
            made = 1;
        }
        if (read_string(d) != 0)
            return -1;
        skip_ws(d);
        if (d->i >= d->n || d->s[d->i] != ':')
            return fail(d, "expected ':' after an object key");
        d->i++;
        if (read_value(d, depth) != 0)
            return -1;
        if (made)
            lua_rawset(L, base);
        else
            waiting++;
        skip_ws(d);
        if (d->i < d->n && d->s[d->i] == ',') {
            d->i++;
            continue;
        }
        if (d->i < d->n && d->s[d->i] == '}') {
            d->i++;
            if (!made)
                make_object(d, base, waiting);
            return 0;
        }
        return fail(d, "expected ',' or '}' in an object");
    }
}

/* depth: the arrays and objects around the value */
static int read_value(dec *d, int depth)
{
    skip_ws(d);
    if (d->i >= d->n)
        return fail(d, "unexpected end of the text");
    switch (d->s[d->i]) {
    case '{':
    case '[':
        /* as lua-cjson's decode_max_depth: at most that many open at once */
        if (depth + 1 > EC_JSON_MAX_DEPTH)
            return fail(d, "nested too deeply");
        if (!lua_checkstack(d->L, 6))
            return fail(d, "nested too deeply for the Lua stack");
        return d->s[d->i] == '{' ? read_object(d, depth + 1) : read_array(d, depth + 1);
    case '"':
        return read_string(d);
    case 't':
        if (literal(d, "true", 4) != 0)
            return -1;
        lua_pushboolean(d->L, 1);
        return 0;
    case 'f':
        if (literal(d, "false", 5) != 0)
            return -1;
        lua_pushboolean(d->L, 0);
        return 0;
    case 'n':
        if (literal(d, "null", 4) != 0)
            return -1;
        lua_pushlightuserdata(d->L, NULL); /* envclone.null, as cjson.null */
        return 0;
    default:
        if (d->s[d->i] == '-' || digit(d->s[d->i]))
            return read_number(d);
        return fail(d, "invalid token");
    }
}

int ec_json_decode(lua_State *L, const char *s, size_t n, int array_mt, char *why, size_t whylen)
{
    dec d;
    d.L = L;
    d.s = (const unsigned char *)s;
    d.n = n;
    d.i = 0;
    d.array_mt = array_mt;
    d.why = why;
    d.whylen = whylen;
    int top = lua_gettop(L);
    if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) /* a byte-order mark (RFC 8259 8.1 allows skipping it) */
        d.i = 3;
    if (read_value(&d, 0) != 0) {
        lua_settop(L, top);
        return -1;
    }
    skip_ws(&d);
    if (d.i != n) {
        lua_settop(L, top);
        return fail(&d, "unexpected text after the JSON value");
    }
    return 0;
}

int ec_json_lua_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_settop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, EC_JSON_ARRAY_MT);
    char why[128];
    if (ec_json_decode(L, s, n, 2, why, sizeof why) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "envclone.json_decode: %s", why);
        return 2;
    }
    return 1;
}
