/*
 * ec_json.c - a small, strict JSON encoder for request bodies, and the
 * locale-free number conversions that the encoder and the decoder share.
 */
#include "ec_json.h"
#include "ec_ops.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* snprintf("%g") and strtod follow LC_NUMERIC, which a script may set at
 * any time (os.setlocale): numbers are converted under a "C" locale made
 * once and switched to for this thread only, around the conversion alone
 * (no Lua call in between, so no error can leave the thread switched). */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

static locale_t get_c_locale(void)
{
    pthread_once(&c_locale_once, make_c_locale);
    return c_locale;
}

int ec_json_strtod(const char *tok, size_t len, double *out)
{
    char small[64];
    locale_t c = get_c_locale();
    if (c == (locale_t)0)
        return -1;
    char *buf = len < sizeof small ? small : malloc(len + 1);
    if (buf == NULL)
        return -1;
    memcpy(buf, tok, len);
    buf[len] = '\0';
    char *end;
    locale_t old = uselocale(c);
    *out = strtod(buf, &end);
    uselocale(old);
    int ok = end == buf + len;
    if (buf != small)
        free(buf);
    return ok ? 0 : -1;
}

int ec_json_format_double(double v, char *out, size_t outlen)
{
    locale_t c = get_c_locale();
    if (c == (locale_t)0 || !isfinite(v) || outlen < 32)
        return -1;
    locale_t old = uselocale(c);
    /* the shortest of 15, 16, 17 significant digits that reads back as v
     * (17 always does) */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, outlen, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    uselocale(old);
#if LUA_VERSION_NUM >= 503
    /* a Lua float stays a float when read back (1.0, not the integer 1) */
    if (strpbrk(out, ".eE") == NULL) {
        size_t n = strlen(out);
        if (n + 3 <= outlen)
            memcpy(out + n, ".0", 3);
    }
#endif
    return 0;
}

int ec_json_format_number(lua_State *L, int idx, char *out, size_t outlen)
{
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx)) {
        /* not via lua_tonumber: a double cannot hold math.maxinteger */
        snprintf(out, outlen, "%lld", (long long)lua_tointeger(L, idx));
        return 0;
    }
#endif
    return ec_json_format_double((double)lua_tonumber(L, idx), out, outlen);
}

int ec_utf8_count(const char *s, size_t n, size_t *chars)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t count = 0, i = 0;
    while (i < n && p[i] < 0x80) /* ids and names are ASCII: one test a byte */
        i++;
    count = i;
    while (i < n) {
        unsigned c = p[i];
        size_t len;
        unsigned cp;
        if (c < 0x80) {
            len = 1;
            cp = c;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return -1;
        }
        if (i + len > n)
            return -1;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return -1;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)
            || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return -1;
        i += len;
        count++;
    }
    if (chars)
        *chars = count;
    return 0;
}

int ec_json_add_string(ec_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (ec_buf_addc(b, '"') != 0)
        return -1;
    size_t run = 0; /* bytes copied verbatim in one go */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20 || c == 0x7F) {
                u[0] = '\\'; u[1] = 'u'; u[2] = '0'; u[3] = '0';
                u[4] = hex[c >> 4]; u[5] = hex[c & 15]; u[6] = '\0';
                esc = u;
            }
        }
        if (esc == NULL) {
            run++;
            continue;
        }
        if (ec_buf_add(b, s + i - run, run) != 0 || ec_buf_adds(b, esc) != 0)
            return -1;
        run = 0;
    }
    if (ec_buf_add(b, s + n - run, run) != 0)
        return -1;
    return ec_buf_addc(b, '"');
}

typedef struct {
    lua_State *L;
    ec_buf *out;
    int array_mt;
    char *err;
    size_t errlen;
    char path[256];
} encoder;

static int fail(encoder *e, const char *rule)
{
    snprintf(e->err, e->errlen, "%s: %s", e->path, rule);
    return -1;
}

static int fail_oom(encoder *e)
{
    return fail(e, "the request body is larger than the limit");
}

static int encode(encoder *e, int idx, int depth);

/* Writes ".key" for an error path: the key is caller data, so it is shown
 * as printable ASCII only (other bytes as '?'), keeping the error one line. */
static void path_key(char *out, size_t outlen, const char *key, size_t klen)
{
    size_t j = 0;
    if (outlen < 2)
        return;
    out[j++] = '.';
    for (size_t i = 0; i < klen && j + 1 < outlen; i++) {
        unsigned char ch = (unsigned char)key[i];
        out[j++] = (char)((ch >= 0x20 && ch < 0x7F) ? ch : '?');
    }
    out[j] = '\0';
}

/* Array when every key is an integer 1..n with no gaps (or an explicit
 * array_mt table); object when every key is a string.  Anything else is
 * ambiguous and refused. */
static int table_kind(encoder *e, int idx, size_t *len, int *is_array)
{
    lua_State *L = e->L;
    size_t nkeys = 0, nstring = 0;
    lua_Number maxkey = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        nkeys++;
        if (lua_type(L, -1) == LUA_TSTRING) {
            nstring++;
        } else if (lua_type(L, -1) == LUA_TNUMBER && ec_isinteger(L, -1) && lua_tonumber(L, -1) >= 1) {
            if (lua_tonumber(L, -1) > maxkey)
                maxkey = lua_tonumber(L, -1);
        } else {
            lua_pop(L, 1);
            return fail(e, "keys must be strings (object) or 1..n (array)");
        }
    }
    int explicit_array = 0;
    if (e->array_mt && lua_getmetatable(L, idx)) {
        explicit_array = lua_rawequal(L, -1, e->array_mt);
        lua_pop(L, 1);
    }
    if (nstring == 0 && (nkeys > 0 || explicit_array)) {
        if ((size_t)maxkey != nkeys)
            return fail(e, "array has holes (keys must be 1..n)");
        *is_array = 1;
        *len = nkeys;
        return 0;
    }
    if (nstring != nkeys)
        return fail(e, "table mixes array items and object keys");
    *is_array = 0;
    *len = nkeys;
    return 0;
}

static int encode_table(encoder *e, int idx, int depth)
{
    lua_State *L = e->L;
    if (depth > EC_MAX_NESTING)
        return fail(e, "nested deeper than 32 levels");
    if (!lua_checkstack(L, 4))
        return fail(e, "nested too deeply");
    size_t len;
    int is_array;
    if (table_kind(e, idx, &len, &is_array) != 0)
        return -1;
    size_t plen = strlen(e->path);
    if (is_array) {
        if (ec_buf_addc(e->out, '[') != 0)
            return fail_oom(e);
        for (size_t i = 1; i <= len; i++) {
            snprintf(e->path + plen, sizeof e->path - plen, "[%zu]", i);
            lua_rawgeti(L, idx, (lua_Integer)i);
            int rc = (i > 1 && ec_buf_addc(e->out, ',') != 0) ? fail_oom(e) : encode(e, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
            if (rc != 0)
                return -1;
        }
        e->path[plen] = '\0';
        return ec_buf_addc(e->out, ']') == 0 ? 0 : fail_oom(e);
    }
    if (ec_buf_addc(e->out, '{') != 0)
        return fail_oom(e);
    int first = 1;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        size_t klen;
        const char *key = lua_tolstring(L, -2, &klen); /* keys are strings here */
        path_key(e->path + plen, sizeof e->path - plen, key, klen);
        if (memchr(key, '\0', klen) != NULL || ec_utf8_count(key, klen, NULL) != 0) {
            lua_pop(L, 2);
            return fail(e, "keys must be valid UTF-8 without NUL bytes");
        }
        if ((!first && ec_buf_addc(e->out, ',') != 0) || ec_json_add_string(e->out, key, klen) != 0
            || ec_buf_addc(e->out, ':') != 0) {
            lua_pop(L, 2);
            return fail_oom(e);
        }
        first = 0;
        if (encode(e, lua_gettop(L), depth + 1) != 0) {
            lua_pop(L, 2);
            return -1;
        }
        lua_pop(L, 1);
    }
    e->path[plen] = '\0';
    return ec_buf_addc(e->out, '}') == 0 ? 0 : fail_oom(e);
}

static int encode(encoder *e, int idx, int depth)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (memchr(s, '\0', n) != NULL)
            return fail(e, "strings must not contain NUL bytes");
        if (ec_utf8_count(s, n, NULL) != 0)
            return fail(e, "strings must be valid UTF-8");
        return ec_json_add_string(e->out, s, n) == 0 ? 0 : fail_oom(e);
    }
    case LUA_TNUMBER: {
        char num[64];
        if (!ec_isinteger(L, idx) && !isfinite((double)lua_tonumber(L, idx)))
            return fail(e, "numbers must be finite (JSON has no NaN or inf)");
        if (ec_json_format_number(L, idx, num, sizeof num) != 0)
            return fail(e, "this number cannot be written (no C locale)");
        return ec_buf_adds(e->out, num) == 0 ? 0 : fail_oom(e);
    }
    case LUA_TBOOLEAN:
        return ec_buf_adds(e->out, lua_toboolean(L, idx) ? "true" : "false") == 0 ? 0 : fail_oom(e);
    case LUA_TLIGHTUSERDATA:
        /* cjson.null (envclone.null) is the NULL light userdata */
        if (lua_touserdata(L, idx) == NULL)
            return ec_buf_adds(e->out, "null") == 0 ? 0 : fail_oom(e);
        return fail(e, "light userdata other than envclone.null cannot be sent");
    case LUA_TTABLE:
        return encode_table(e, idx, depth);
    default:
        return fail(e, "this Lua type cannot be sent as JSON");
    }
}

int ec_json_add_value(lua_State *L, int idx, ec_buf *b, int array_mt_idx,
                      const char *path, char *errbuf, size_t errlen)
{
    encoder e;
    e.L = L;
    e.out = b;
    e.array_mt = array_mt_idx;
    e.err = errbuf;
    e.errlen = errlen;
    snprintf(e.path, sizeof e.path, "%s", path);
    int top = lua_gettop(L);
    int rc = encode(&e, idx, 1);
    lua_settop(L, top);
    return rc;
}

static int json_buf_gc(lua_State *L)
{
    ec_buf_free(lua_touserdata(L, 1));
    return 0;
}

void ec_json_init(lua_State *L)
{
    /* Marks a table as a JSON array, so that an empty one encodes as [];
     * the decoder gives every JSON array this metatable. */
    lua_newtable(L);
    lua_pushliteral(L, "envclone.array");
    lua_setfield(L, -2, "__name");
    lua_setfield(L, LUA_REGISTRYINDEX, EC_JSON_ARRAY_MT);
}

void ec_json_push_array_mt(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, EC_JSON_ARRAY_MT);
}

int ec_json_lua_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    /* the buffer is owned by a userdata, so a Lua error mid-way cannot leak it */
    ec_buf *b = lua_newuserdata(L, sizeof *b);
    ec_buf_init(b, EC_JSON_ENCODE_LIMIT);
    if (luaL_newmetatable(L, "envclone.core.json_buffer")) {
        lua_pushcfunction(L, json_buf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, 2);
    lua_getfield(L, LUA_REGISTRYINDEX, EC_JSON_ARRAY_MT);
    char why[300];
    if (ec_json_add_value(L, 1, b, 3, "value", why, sizeof why) != 0) {
        ec_buf_clear(b);
        lua_pushnil(L);
        lua_pushfstring(L, "envclone.json_encode: %s", why);
        return 2;
    }
    lua_pushlstring(L, b->data ? b->data : "", b->len);
    ec_buf_clear(b);
    return 1;
}
