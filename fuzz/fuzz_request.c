/*
 * fuzz_request.c - libFuzzer harness of the request side of the marshal
 * engine: ec_marshal_request (validation, path encoding, JSON encoding,
 * headers) for every operation of the table.
 *
 * Input layout:
 *   byte 0   operation (index into ec_ops, modulo the count)
 *   byte 1   flags: bit 0 = fill in valid values for the required fields the
 *            input leaves out (so inputs get past "required" and reach the
 *            encoders); bit 1 = the rest is JSON text, decoded with lua-cjson
 *            into the argument table (the seed corpus is the vendor pages'
 *            example bodies); otherwise, or when the JSON does not decode,
 *   rest     a little program that builds the argument table: keys taken
 *            from the operation's fields or made up, values of every Lua
 *            type (strings with odd bytes, integers, NaN/inf, booleans,
 *            JSON null, functions, userdata, nested, cyclic and very deep
 *            tables, array-marked tables).
 *
 * Invariants (abort() = a finding):
 *   success -> the body is valid JSON (lua-cjson decodes it) of the right
 *              shape; the URL is the base URL followed by the path template
 *              with only unreserved characters and %XX escapes, no dot
 *              segment, and as many '/' as the template; header lines have
 *              no CR/LF and include the credential header.
 *   failure -> nil + an error with kind "validation" naming the field;
 *              tostring(err) is one line and shows no secret.
 *   never   -> a Lua error raised out of the engine, a crash, ASan/UBSan.
 */
#include "fuzz_common.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

typedef struct {
    const uint8_t *p;
    size_t n;
} cursor;

static unsigned next8(cursor *c)
{
    if (c->n == 0)
        return 0;
    c->n--;
    return *c->p++;
}

static uint64_t next64(cursor *c)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | next8(c);
    return v;
}

static const char *const odd_strings[] = {
    ".", "..", "...", "../", "../../x", "%2e", "%2e%2e", "..%2f", "a/b", "a?b=1", "a#f", "a b", "\r\n",
    "a\r\nX-Injected: 1", "\n", "\r", "\t", "\x7f", "a\0b", "\xff", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
    "\xe2\x82", "\xc3\xa9", "default", "latest", "", " ", "null", "true", "01HZY8K2V6Q4N3M5T7W9X0ABCD",
    "01hzy8k2v6q4n3m5t7w9x0abcd", "81HZY8K2V6Q4N3M5T7W9X0ABCD", "01HZY8K2V6Q4N3M5T7W9X0ABCU",
    "8d20758c-d74c-4f59-ae04-ee928c0816b7", "8D20758C-D74C-4F59-AE04-EE928C0816B7",
    "8d20758c-d74c-4f59-ae04-ee928c0816bg", "{8d20758c-d74c-4f59-ae04-ee928c0816b7}", FUZZ_TOKEN, "$.",
    "\xe2\x80\xa8", "\xef\xbb\xbf", "\\", "\"", "\\u0000",
};
#define N_ODD (sizeof odd_strings / sizeof odd_strings[0])

static const char *const extra_keys[] = {
    "content_items_assets", "content_item_version_history", "retry", "wait", "base_url", "token", "api_key",
    "__index", "", "a.b", "meta", "name", "x", "1", "\xff", "a\nb", "a\0b",
};
#define N_EXTRA (sizeof extra_keys / sizeof extra_keys[0])

static size_t field_count(const ec_op *op)
{
    size_t n = 0;
    while (op->fields[n].name)
        n++;
    return n;
}

static void push_bytes(cursor *c, size_t len)
{
    if (len > c->n)
        len = c->n;
    lua_pushlstring(L, (const char *)c->p, len);
    c->p += len;
    c->n -= len;
}

static void push_string(cursor *c)
{
    unsigned k = next8(c);
    switch (k % 8) {
    case 0:
    case 1:
        push_bytes(c, next8(c) % 64);
        break;
    case 2: {
        const char *s = odd_strings[next8(c) % N_ODD];
        size_t len = strlen(s);
        if (strcmp(s, "a\0b") == 0 || strcmp(s, "\\u0000") == 0)
            len = 3;
        lua_pushlstring(L, s, len);
        break;
    }
    case 3: {
        /* long strings: up to ~1 MB of one byte */
        size_t len = (size_t)next8(c) * 4099 + next8(c);
        char ch = (char)next8(c);
        luaL_Buffer b;
        memset(luaL_buffinitsize(L, &b, len), ch ? ch : 'x', len);
        luaL_pushresultsize(&b, len);
        break;
    }
    case 4: {
        /* a template with one byte changed */
        const char *s = odd_strings[next8(c) % N_ODD];
        char buf[64];
        size_t len = strlen(s);
        if (len >= sizeof buf)
            len = sizeof buf - 1;
        memcpy(buf, s, len);
        if (len > 0)
            buf[next8(c) % len] = (char)next8(c);
        lua_pushlstring(L, buf, len);
        break;
    }
    default:
        push_bytes(c, next8(c));
        break;
    }
}

static double bits_to_double(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static void push_value(cursor *c, const ec_op *op, int depth);

static void push_key(cursor *c, const ec_op *op)
{
    unsigned k = next8(c);
    switch (k % 8) {
    case 0:
    case 1:
    case 2:
    case 3:
        lua_pushstring(L, op->fields[(k / 8) % field_count(op)].name);
        break;
    case 4:
        if (k / 8 % 2)
            lua_pushlstring(L, "a\0b", 3);
        else
            lua_pushstring(L, extra_keys[(k / 8) % N_EXTRA]);
        break;
    case 5:
        lua_pushinteger(L, (lua_Integer)(k / 8 % 5) + 1 + (k >= 248 ? (lua_Integer)next64(c) : 0));
        break;
    case 6:
        push_bytes(c, next8(c) % 16);
        break;
    default:
        if (k / 8 % 2)
            lua_pushboolean(L, (int)(k / 16 % 2));
        else
            lua_pushnumber(L, 0.5 + (double)(k / 16));
        break;
    }
}

static void push_table(cursor *c, const ec_op *op, int depth)
{
    luaL_checkstack(L, 8, "fuzz");
    lua_newtable(L);
    unsigned n = next8(c) % 7;
    for (unsigned i = 0; i < n && c->n > 0; i++) {
        push_key(c, op);
        push_value(c, op, depth + 1);
        lua_rawset(L, -3);
    }
    unsigned flags = next8(c);
    if (flags % 16 == 1) {
        ec_json_push_array_mt(L);
        lua_setmetatable(L, -2);
    } else if (flags % 16 == 2) {
        /* a cycle */
        lua_pushliteral(L, "self");
        lua_pushvalue(L, -2);
        lua_rawset(L, -3);
    }
}

/* {a = {a = ... }} or {{{...}}}, `levels` deep, without recursion. */
static void push_deep(unsigned levels, int array)
{
    lua_newtable(L);
    lua_pushvalue(L, -1); /* outer, current */
    for (unsigned i = 0; i < levels; i++) {
        lua_newtable(L);
        if (array)
            lua_rawseti(L, -2, 1);
        else
            lua_setfield(L, -2, "a");
        if (array)
            lua_rawgeti(L, -1, 1);
        else
            lua_getfield(L, -1, "a");
        lua_remove(L, -2);
    }
    lua_pop(L, 1);
}

static void push_value(cursor *c, const ec_op *op, int depth)
{
    luaL_checkstack(L, 8, "fuzz");
    unsigned k = next8(c);
    if (depth > 48)
        k = 5;
    switch (k % 13) {
    case 0:
    case 1:
        push_string(c);
        break;
    case 2:
        lua_pushinteger(L, (lua_Integer)next64(c));
        break;
    case 3:
        lua_pushnumber(L, bits_to_double(next64(c)));
        break;
    case 4: {
        static const double special[] = { 0.0, -0.0, 1.5, 1e308, -1e308, 4.9e-324, 9007199254740993.0,
                                          9.2233720368547758e18, -9.2233720368547758e18, 1e19 };
        unsigned s = next8(c) % 13;
        if (s == 10)
            lua_pushnumber(L, NAN);
        else if (s == 11)
            lua_pushnumber(L, INFINITY);
        else if (s == 12)
            lua_pushnumber(L, -INFINITY);
        else
            lua_pushnumber(L, special[s]);
        break;
    }
    case 5:
        lua_pushboolean(L, (int)(k / 13 % 2));
        break;
    case 6:
    case 7:
        push_table(c, op, depth);
        break;
    case 8:
        lua_pushlightuserdata(L, NULL); /* JSON null */
        break;
    case 9:
        push_deep(next8(c) % 128 + (k >= 128 ? 128u : 0u), (int)(k / 13 % 2));
        break;
    case 10:
        if (k / 13 % 3 == 0)
            lua_getglobal(L, "print");
        else if (k / 13 % 3 == 1)
            lua_newuserdata(L, 1);
        else
            lua_pushlightuserdata(L, (void *)&fuzz_clients[0]);
        break;
    case 11: {
        /* an array-marked table of strings */
        lua_newtable(L);
        unsigned n = next8(c) % 5;
        for (unsigned i = 1; i <= n; i++) {
            push_string(c);
            lua_rawseti(L, -2, (lua_Integer)i);
        }
        ec_json_push_array_mt(L);
        lua_setmetatable(L, -2);
        break;
    }
    default:
        lua_pushnil(L);
        break;
    }
}

static void push_valid(const ec_field *f)
{
    switch (f->type) {
    case EC_T_BOOLEAN:
        lua_pushboolean(L, 1);
        return;
    case EC_T_INTEGER:
        lua_pushinteger(L, (lua_Integer)(f->min_value > 1 ? f->min_value : 1));
        return;
    case EC_T_STRING_ARRAY:
    case EC_T_OBJECT:
    case EC_T_FREE_OBJECT:
        lua_newtable(L);
        return;
    case EC_T_STRING:
        break;
    }
    switch (f->format) {
    case EC_FMT_ULID:
        lua_pushliteral(L, "01HZY8K2V6Q4N3M5T7W9X0ABCD");
        break;
    case EC_FMT_UUID:
        lua_pushliteral(L, "8d20758c-d74c-4f59-ae04-ee928c0816b7");
        break;
    default:
        lua_pushliteral(L, "valid-1");
        break;
    }
}

/* Request invariants on success. */
static void check_request(const ec_client *cl, const ec_op *op)
{
    const ec_message *r = &fuzz_messages[cl - fuzz_clients];
    size_t blen = strlen(cl->base.url);
    FUZZ_ASSERT(r->url.len >= blen && memcmp(r->url.data, cl->base.url, blen) == 0, "URL lost the base URL");
    FUZZ_ASSERT(strlen(r->url.data) == r->url.len, "URL holds a NUL byte");
    size_t slashes = 0, tmpl_slashes = 0;
    for (const char *t = op->path; *t; t++)
        tmpl_slashes += *t == '/';
    const char *u = r->url.data + blen;
    /* a literal ';' only where a template has one (Droplit's {ecosystemId};{alias}) */
    int semicolon_ok = strchr(op->path, ';') != NULL || (op->alt_path && strchr(op->alt_path, ';') != NULL);
    int in_query = 0;
    for (size_t i = 0; u[i]; i++) {
        unsigned char ch = (unsigned char)u[i];
        if (ch == '?' && !in_query) {
            /* the query: name=value pairs of the row's query fields, values encoded as the path's */
            in_query = 1;
        } else if (in_query && (ch == '=' || ch == '&')) {
            continue;
        } else if (ch == ';' && semicolon_ok && !in_query) {
            continue;
        } else if (ch == '/' && !in_query) {
            slashes++;
            /* no "." or ".." segment */
            const char *seg = u + i + 1;
            size_t sl = strcspn(seg, "/");
            FUZZ_ASSERT(!((sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.')),
                        "dot segment in %s", r->url.data);
        } else if (ch == '%') {
            FUZZ_ASSERT(isxdigit((unsigned char)u[i + 1]) && isxdigit((unsigned char)u[i + 2]), "bad escape in %s",
                        r->url.data);
        } else {
            FUZZ_ASSERT((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-'
                            || ch == '.' || ch == '_' || ch == '~',
                        "raw byte 0x%02x in the URL path %s", ch, r->url.data);
        }
    }
    FUZZ_ASSERT(slashes == tmpl_slashes, "a path parameter changed the path: %s", r->url.data);

    const char *e = r->headers.data;
    int auth = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        size_t n = strlen(e);
        FUZZ_ASSERT(memchr(e, '\r', n) == NULL && memchr(e, '\n', n) == NULL, "CR/LF in header %s", e);
        FUZZ_ASSERT(strstr(e, ": ") != NULL, "header without ': '");
        auth |= strstr(e, FUZZ_TOKEN) != NULL || strstr(e, FUZZ_COOKIE) != NULL;
        e += n + 1;
    }
    FUZZ_ASSERT(e <= r->headers.data + r->headers.len, "header count overruns the buffer");
    FUZZ_ASSERT(auth, "no credential header");

    if (op->body == EC_BODY_NONE) {
        FUZZ_ASSERT(!r->has_body, "a body for a %s", op->method);
        return;
    }
    FUZZ_ASSERT(r->has_body && r->body.len <= EC_MAX_BODY, "body missing or too large");
    lua_rawgeti(L, LUA_REGISTRYINDEX, fuzz_cjson_decode_ref);
    lua_pushlstring(L, r->body.data, r->body.len);
    lua_call(L, 1, 2);
    FUZZ_ASSERT(lua_type(L, -2) == LUA_TTABLE, "the body is not valid JSON (%s): %.300s",
                lua_tostring(L, -1) ? lua_tostring(L, -1) : "?", r->body.data);
    FUZZ_ASSERT(op->body == EC_BODY_PATCH_OP ? r->body.data[0] == '[' : r->body.data[0] == '{',
                "body has the wrong shape: %.100s", r->body.data);
    lua_pop(L, 2);
}

/* Runs in protected mode: any Lua error out of the engine is a finding. */
static int run(lua_State *l)
{
    const ec_op *op = lua_touserdata(l, lua_upvalueindex(1));
    ec_client *cl = lua_touserdata(l, lua_upvalueindex(2));
    int top = lua_gettop(l);
    int n = ec_marshal_request(l, cl, op, 1, &fuzz_messages[cl - fuzz_clients]);
    if (n == 0) {
        FUZZ_ASSERT(lua_gettop(l) == top, "success left %d values on the stack", lua_gettop(l) - top);
        check_request(cl, op);
        return 0;
    }
    FUZZ_ASSERT(n == 2 && lua_gettop(l) == top + 2 && lua_isnil(l, -2), "failure is not nil, err");
    static const char *const kinds[] = { "validation", NULL };
    fuzz_check_error(cl, -1, kinds);
    lua_getfield(l, -1, "field");
    /* a string; empty only when the offending key itself is "" */
    FUZZ_ASSERT(lua_type(l, -1) == LUA_TSTRING, "validation error names no field");
    lua_pop(l, 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    cursor c = { data + 2, size - 2 };
    const ec_op *op = &ec_ops[data[0] % ec_ops_count];
    ec_client *cl = fuzz_client_for(op);
    int flags = data[1];
    fuzz_state_open();
    int top = lua_gettop(L);

    lua_pushlightuserdata(L, (void *)op);
    lua_pushlightuserdata(L, cl);
    lua_pushcclosure(L, run, 2);

    int have_args = 0;
    if (flags & 2) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, fuzz_cjson_decode_ref);
        lua_pushlstring(L, (const char *)c.p, c.n);
        lua_call(L, 1, 1);
        if (!lua_isnil(L, -1))
            have_args = 1;
        else
            lua_pop(L, 1);
    }
    if (!have_args) {
        if (c.n > 0 && next8(&c) % 8 == 0)
            push_value(&c, op, 0); /* sometimes not even a table */
        else
            push_table(&c, op, 0);
    }
    if ((flags & 1) && lua_type(L, -1) == LUA_TTABLE) {
        for (const ec_field *f = op->fields; f->name; f++) {
            if (!f->required)
                continue;
            lua_getfield(L, -1, f->name);
            int missing = lua_isnil(L, -1);
            lua_pop(L, 1);
            if (missing) {
                push_valid(f);
                lua_setfield(L, -2, f->name);
            }
        }
    }
    if (lua_pcall(L, 1, 0, 0) != 0) {
        fprintf(stderr, "a Lua error escaped the marshal engine: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_settop(L, top);
    fuzz_state_close();
    return 0;
}
