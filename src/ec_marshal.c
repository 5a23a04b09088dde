/*
 * ec_marshal.c - a call's arguments -> its request message: each field
 * validated as it is written (URL, body, headers), driven entirely by the
 * operation table.
 */
#include "ec_marshal.h"
#include "ec_error.h"
#include "ec_json.h"
#include "ec_mask.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Validation state: the first problem found, reported once at the top. */
typedef struct {
    lua_State *L;
    const ec_op *op;
    const ec_client *c;
    ec_message *m;
    int defer;    /* stack index of a set of argument names the caller handles itself; 0 = none */
    int deferred; /* one of them was found */
    int array_mt; /* stack index of envclone.array_mt */
    int slots;    /* stack index of op->fields[0]'s argument; the others follow (check_known_keys) */
    char field[160];
    char msg[400];
} vctx;

static int bad(vctx *v, const char *field, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int bad(vctx *v, const char *field, const char *fmt, ...)
{
    va_list ap;
    snprintf(v->field, sizeof v->field, "%s", field);
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): va_start is right above; a clang 14 false positive */
    vsnprintf(v->msg, sizeof v->msg, fmt, ap);
    va_end(ap);
    return -1;
}

/* Pushes t[name] from the table at the absolute index idx without
 * metamethods: no caller code may run while a request is being built (an
 * __index that closed the client or made a call would pull the buffers
 * away underneath). */
static void raw_field(lua_State *L, int idx, const char *name)
{
    lua_pushstring(L, name);
    lua_rawget(L, idx);
}

/* The argument of f, one of op->fields: check_known_keys read every
 * argument once (lua_next) and left each in its field's slot, so the
 * builders below need no lookup by name (a rawget with the name pushed
 * cost about 170 instructions a field). */
static void push_arg(vctx *v, const ec_field *f)
{
    lua_pushvalue(v->L, v->slots + (int)(f - v->op->fields));
}

/* Pushes count nils: the slots of a list of fields; returns the first. */
static int push_slots(lua_State *L, const ec_field *fields)
{
    int count = 0;
    for (const ec_field *f = fields; f->name; f++)
        count++;
    luaL_checkstack(L, count + 16, "envclone: too many fields");
    int first = lua_gettop(L) + 1;
    for (int i = 0; i < count; i++)
        lua_pushnil(L);
    return first;
}

static int too_large(vctx *v, const char *field)
{
    return bad(v, field, "field '%s' makes the request body larger than %zu KiB", field, EC_MAX_BODY / 1024);
}

/* A short, printable excerpt of a rejected value for the message; "***"
 * for a value that shows a credential (a cut excerpt could hide it from
 * the masking of the whole message). */
static void excerpt(const ec_client *c, const char *s, size_t n, char *out, size_t outlen)
{
    size_t j = 0;
    if (ec_mask_has(c, s, n)) {
        snprintf(out, outlen, "***");
        return;
    }
    for (size_t i = 0; i < n && j + 5 < outlen; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (i == 40) {
            memcpy(out + j, "...", 3);
            j += 3;
            break;
        }
        out[j++] = (char)((ch >= 0x20 && ch < 0x7F && ch != '"') ? ch : '?');
    }
    out[j] = '\0';
}

static const char *lua_type_of(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TNUMBER && ec_isinteger(L, idx))
        return "integer";
    return lua_typename(L, lua_type(L, idx));
}

/* Classes of bytes, spelled out as bits per byte value (every byte of every
 * id and path argument passes here): isxdigit() and isalnum() follow the C
 * locale, which os.setlocale can change to one where 0xE9 is a letter. */
enum {
    B_UNRESERVED = 1, /* RFC 3986 §2.3 */
    B_HEX = 2,        /* an ASCII hex digit */
    B_UH = B_UNRESERVED | B_HEX,
};
static const unsigned char byte_class[256] = {
    ['-'] = B_UNRESERVED, ['.'] = B_UNRESERVED, ['_'] = B_UNRESERVED, ['~'] = B_UNRESERVED, ['0'] = B_UH,
    ['1'] = B_UH, ['2'] = B_UH, ['3'] = B_UH, ['4'] = B_UH, ['5'] = B_UH, ['6'] = B_UH, ['7'] = B_UH, ['8'] = B_UH,
    ['9'] = B_UH, ['A'] = B_UH, ['B'] = B_UH, ['C'] = B_UH, ['D'] = B_UH, ['E'] = B_UH, ['F'] = B_UH, ['a'] = B_UH,
    ['b'] = B_UH, ['c'] = B_UH, ['d'] = B_UH, ['e'] = B_UH, ['f'] = B_UH, ['G'] = B_UNRESERVED,
    ['H'] = B_UNRESERVED, ['I'] = B_UNRESERVED, ['J'] = B_UNRESERVED, ['K'] = B_UNRESERVED, ['L'] = B_UNRESERVED,
    ['M'] = B_UNRESERVED, ['N'] = B_UNRESERVED, ['O'] = B_UNRESERVED, ['P'] = B_UNRESERVED, ['Q'] = B_UNRESERVED,
    ['R'] = B_UNRESERVED, ['S'] = B_UNRESERVED, ['T'] = B_UNRESERVED, ['U'] = B_UNRESERVED, ['V'] = B_UNRESERVED,
    ['W'] = B_UNRESERVED, ['X'] = B_UNRESERVED, ['Y'] = B_UNRESERVED, ['Z'] = B_UNRESERVED, ['g'] = B_UNRESERVED,
    ['h'] = B_UNRESERVED, ['i'] = B_UNRESERVED, ['j'] = B_UNRESERVED, ['k'] = B_UNRESERVED, ['l'] = B_UNRESERVED,
    ['m'] = B_UNRESERVED, ['n'] = B_UNRESERVED, ['o'] = B_UNRESERVED, ['p'] = B_UNRESERVED, ['q'] = B_UNRESERVED,
    ['r'] = B_UNRESERVED, ['s'] = B_UNRESERVED, ['t'] = B_UNRESERVED, ['u'] = B_UNRESERVED, ['v'] = B_UNRESERVED,
    ['w'] = B_UNRESERVED, ['x'] = B_UNRESERVED, ['y'] = B_UNRESERVED, ['z'] = B_UNRESERVED,
};

/* Checks the string rules of a field for the value at idx. */
static int check_string(vctx *v, const ec_field *f, const char *name, int idx,
                        ec_format fmt, const char **out, size_t *outlen)
{
    lua_State *L = v->L;
    if (lua_type(L, idx) != LUA_TSTRING)
        return bad(v, name, "field '%s' must be a string, got %s", name, lua_type_of(L, idx));
    size_t n, chars;
    const char *s = lua_tolstring(L, idx, &n);
    if (memchr(s, '\0', n) != NULL)
        return bad(v, name, "field '%s' must not contain NUL bytes", name);
    if (ec_utf8_count(s, n, &chars) != 0)
        return bad(v, name, "field '%s' must be valid UTF-8", name);
    size_t lo = f ? f->min_len : 1;
    size_t hi = (f && f->max_len) ? f->max_len : EC_DEFAULT_MAX_LEN;
    if (chars < lo || chars > hi)
        return bad(v, name, "field '%s' must be %zu-%zu characters long, got %zu", name, lo, hi, chars);
    if (!ec_format_ok(fmt, s, n)) {
        char shown[64]; /* a credential passed as an id is not echoed, not even in part */
        excerpt(v->c, s, n, shown, sizeof shown);
        return bad(v, name, "field '%s' must be %s, got \"%s\"", name, ec_format_name(fmt), shown);
    }
    if (f && f->charset && strspn(s, f->charset->chars) != n) {
        char shown[64];
        excerpt(v->c, s, n, shown, sizeof shown);
        return bad(v, name, "field '%s' may hold only the characters %s, got \"%s\"", name,
                   f->charset->name, shown);
    }
    if (f && f->reserved) {
        for (const char *const *r = f->reserved; *r; r++)
            if (strcmp(*r, s) == 0)
                return bad(v, name, "field '%s' must not be the reserved word \"%s\"", name, *r);
    }
    if (f && f->in == EC_IN_PATH) {
        /* A lone "." or ".." would be resolved as a dot-segment by servers
         * and proxies and so change the path, even percent-encoded. */
        if (strspn(s, ".") == n)
            return bad(v, name, "field '%s' must not be \".\" or \"..\"", name);
    }
    if (f && f->in == EC_IN_HEADER && !ec_format_ok(EC_FMT_TOKEN, s, n))
        return bad(v, name, "field '%s' is sent as a header and must not contain CR, LF or control characters", name);
    *out = s;
    *outlen = n;
    return 0;
}

/* Checks an EC_T_INTEGER value: a Lua integer, or a float with an
 * integral value (Lua 5.1 and LuaJIT have no other), within the field's
 * min_value..max_value when it has one. */
static int check_integer(vctx *v, const ec_field *f, const char *name, int idx, long long *out)
{
    lua_State *L = v->L;
    if (lua_type(L, idx) != LUA_TNUMBER)
        return bad(v, name, "field '%s' must be an integer, got %s", name, lua_type_of(L, idx));
    long long n;
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx)) {
        n = (long long)lua_tointeger(L, idx);
    } else
#endif
    {
        lua_Number d = lua_tonumber(L, idx);
        /* range first: casting NaN, inf or 1e300 to long long is undefined */
        if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || d != (lua_Number)(long long)d)
            return bad(v, name, "field '%s' must be an integer, got a number with a fraction or out of range", name);
        n = (long long)d;
    }
    if ((f->min_value != 0 || f->max_value != 0) && (n < f->min_value || n > f->max_value))
        return bad(v, name, "field '%s' must be between %lld and %lld, got %lld", name, f->min_value, f->max_value, n);
    *out = n;
    return 0;
}

/* Is the table at idx a sequence 1..n (n may be 0)? */
static int is_sequence(lua_State *L, int idx, size_t *len)
{
    size_t count = 0;
    lua_Number max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TNUMBER || !ec_isinteger(L, -1) || lua_tonumber(L, -1) < 1) {
            lua_pop(L, 1);
            return 0;
        }
        if (lua_tonumber(L, -1) > max)
            max = lua_tonumber(L, -1);
        count++;
    }
    *len = count;
    return (size_t)max == count;
}

static int encode_field(vctx *v, const ec_field *f, const char *name, int idx, ec_buf *out);

/* [,]"name": for a member of a JSON object. The names come from the
 * operation table (the vendors' field names: letters, digits, '_'), so
 * they need no escaping; test_marshal and the fuzzer decode every body. */
static int add_key(ec_buf *out, const char *name, int first)
{
    size_t n = strlen(name);
    if (ec_buf_reserve(out, n + (first ? 3 : 4)) != 0) /* one check for the bytes around the name */
        return -1;
    char *p = out->data + out->len;
    if (!first)
        *p++ = ',';
    *p++ = '"';
    memcpy(p, name, n);
    p += n;
    *p++ = '"';
    *p++ = ':';
    *p = '\0';
    out->len = (size_t)(p - out->data);
    return 0;
}

/* out = a + b + c, cut to fit (names of nested fields for messages: no
 * snprintf on the path every call takes). */
static void join3(char *out, size_t outlen, const char *a, const char *b, const char *c)
{
    size_t used = 0;
    const char *parts[3] = { a, b, c };
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(parts[i]);
        if (n > outlen - 1 - used)
            n = outlen - 1 - used;
        memcpy(out + used, parts[i], n);
        used += n;
    }
    out[used] = '\0';
}

/* "name[i]" for the items of an array. */
static void item_name(char *out, size_t outlen, const char *name, size_t i)
{
    char num[24];
    char *p = num + sizeof num;
    *--p = '\0';
    *--p = ']';
    do {
        *--p = (char)('0' + i % 10);
        i /= 10;
    } while (i > 0);
    *--p = '[';
    join3(out, outlen, name, p, "");
}

static int encode_object_fields(vctx *v, const ec_field *children, const char *parent, int idx, ec_buf *out)
{
    lua_State *L = v->L;
    char child[160];
    /* Unknown members first: a typo must not be dropped silently.  Each
     * known member's value goes to its slot (as push_arg's). */
    int slots = push_slots(L, children);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        const ec_field *known = NULL;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (const ec_field *c = children; c->name; c++)
                if (strcmp(c->name, lua_tostring(L, -2)) == 0)
                    known = c;
        if (known != NULL) {
            lua_replace(L, slots + (int)(known - children)); /* the value; the key stays for lua_next */
            continue;
        }
        lua_pop(L, 1);
        char shown[64] = "?";
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t n;
            const char *k = lua_tolstring(L, -1, &n);
            excerpt(v->c, k, n, shown, sizeof shown);
        }
        lua_pop(L, 1);
        snprintf(child, sizeof child, "%s.%s", parent, shown);
        return bad(v, child, "field '%s' is not a member of '%s'", child, parent);
    }
    if (ec_buf_addc(out, '{') != 0)
        return too_large(v, parent);
    int first = 1;
    for (const ec_field *c = children; c->name; c++) {
        join3(child, sizeof child, parent, ".", c->name);
        lua_pushvalue(L, slots + (int)(c - children));
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            if (c->required)
                return bad(v, child, "field '%s' is required", child);
            continue;
        }
        if (add_key(out, c->name, first) != 0) {
            lua_pop(L, 1);
            return too_large(v, child);
        }
        first = 0;
        int rc = encode_field(v, c, child, lua_gettop(L), out);
        lua_pop(L, 1);
        if (rc != 0)
            return -1;
    }
    lua_settop(L, slots - 1);
    return ec_buf_addc(out, '}') == 0 ? 0 : too_large(v, parent);
}

/* Validates the value at idx against f and appends its JSON to out. */
static int encode_field(vctx *v, const ec_field *f, const char *name, int idx, ec_buf *out)
{
    lua_State *L = v->L;
    switch (f->type) {
    case EC_T_STRING: {
        const char *s = NULL;
        size_t n = 0;
        if (check_string(v, f, name, idx, f->format, &s, &n) != 0)
            return -1;
        return ec_json_add_string(out, s, n) == 0 ? 0 : too_large(v, name);
    }
    case EC_T_BOOLEAN:
        if (lua_type(L, idx) != LUA_TBOOLEAN)
            return bad(v, name, "field '%s' must be a boolean, got %s", name, lua_type_of(L, idx));
        if (lua_toboolean(L, idx))
            return ec_buf_add(out, "true", 4) == 0 ? 0 : too_large(v, name);
        return ec_buf_add(out, "false", 5) == 0 ? 0 : too_large(v, name);
    case EC_T_INTEGER: {
        long long n = 0;
        char num[24];
        if (check_integer(v, f, name, idx, &n) != 0)
            return -1;
        int w = snprintf(num, sizeof num, "%lld", n);
        return ec_buf_add(out, num, (size_t)w) == 0 ? 0 : too_large(v, name);
    }
    case EC_T_STRING_ARRAY: {
        size_t len;
        if (lua_type(L, idx) != LUA_TTABLE)
            return bad(v, name, "field '%s' must be an array of strings, got %s", name, lua_type_of(L, idx));
        if (!is_sequence(L, idx, &len))
            return bad(v, name, "field '%s' must be an array (keys 1..n), not an object", name);
        if (len > EC_MAX_ARRAY_ITEMS)
            return bad(v, name, "field '%s' must have at most %d items, got %zu", name, EC_MAX_ARRAY_ITEMS, len);
        if (ec_buf_addc(out, '[') != 0)
            return too_large(v, name);
        char item[160];
        ec_field item_rules = { .name = name, .type = EC_T_STRING, .required = 1, .min_len = 1, .format = f->item_format };
        for (size_t i = 1; i <= len; i++) {
            item_name(item, sizeof item, name, i);
            lua_rawgeti(L, idx, (lua_Integer)i);
            const char *s = NULL;
            size_t n = 0;
            int rc = check_string(v, &item_rules, item, lua_gettop(L), f->item_format, &s, &n);
            if (rc == 0 && ((i > 1 && ec_buf_addc(out, ',') != 0) || ec_json_add_string(out, s, n) != 0))
                rc = too_large(v, name);
            lua_pop(L, 1);
            if (rc != 0)
                return -1;
        }
        return ec_buf_addc(out, ']') == 0 ? 0 : too_large(v, name);
    }
    case EC_T_OBJECT:
        if (lua_type(L, idx) != LUA_TTABLE)
            return bad(v, name, "field '%s' must be a table (object), got %s", name, lua_type_of(L, idx));
        return encode_object_fields(v, f->children, name, idx, out);
    case EC_T_FREE_OBJECT: {
        if (lua_type(L, idx) != LUA_TTABLE)
            return bad(v, name, "field '%s' must be a table (object), got %s", name, lua_type_of(L, idx));
        size_t len;
        lua_pushnil(L);
        int nonempty = lua_next(L, idx);
        if (nonempty)
            lua_pop(L, 2);
        int marked = 0;
        if (lua_getmetatable(L, idx)) {
            lua_getfield(L, LUA_REGISTRYINDEX, EC_JSON_ARRAY_MT);
            marked = lua_rawequal(L, -1, -2);
            lua_pop(L, 2);
        }
        if (marked || (nonempty && is_sequence(L, idx, &len)))
            return bad(v, name, "field '%s' must be an object (string keys), not an array", name);
        char why[300];
        size_t mark = out->len;
        lua_getfield(L, LUA_REGISTRYINDEX, EC_JSON_ARRAY_MT);
        int rc = ec_json_add_value(L, idx, out, lua_gettop(L), name, why, sizeof why);
        lua_pop(L, 1);
        if (rc != 0) {
            out->len = mark;
            /* why reads "meta.a.b: rule": name the nested field itself */
            char *sep = strstr(why, ": ");
            if (sep == NULL)
                return bad(v, name, "field '%s': %s", name, why);
            *sep = '\0';
            return bad(v, why, "field '%s': %s", why, sep + 2);
        }
        return 0;
    }
    }
    return bad(v, name, "field '%s' has an unknown type", name);
}

static const ec_field *find_field(const ec_op *op, const char *name)
{
    for (const ec_field *f = op->fields; f->name; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

/* ASCII-only case folding: field names are ASCII, and the locale must not matter. */
static int ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* Levenshtein distance, for "did you mean" on unknown fields. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 99;
    size_t row[65] = { 0 };
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t sub = prev + (ascii_lower((unsigned char)a[i - 1]) != ascii_lower((unsigned char)b[j - 1]));
            size_t best = row[j] + 1 < row[j - 1] + 1 ? row[j] + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            prev = cur;
        }
    }
    return row[lb];
}

static int check_known_keys(vctx *v, int args)
{
    lua_State *L = v->L;
    lua_pushnil(L);
    while (lua_next(L, args) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 1);
            const char *t = lua_type_of(L, -1);
            lua_pop(L, 1);
            return bad(v, "(arguments)", "arguments must be named (string keys), got a %s key", t);
        }
        size_t klen;
        const char *key = lua_tolstring(L, -2, &klen);
        const ec_field *field = find_field(v->op, key);
        if (field != NULL) {
            lua_replace(L, v->slots + (int)(field - v->op->fields)); /* the value (push_arg); the key stays for lua_next */
            continue;
        }
        lua_pop(L, 1);
        if (v->defer) {
            lua_pushvalue(L, -1);
            lua_rawget(L, v->defer);
            int mine = lua_toboolean(L, -1);
            lua_pop(L, 1);
            if (mine) {
                lua_pop(L, 1);
                v->deferred = 1;
                return -1;
            }
        }
        char shown[64] = "";
        excerpt(v->c, key, klen, shown, sizeof shown);
        const char *best = NULL;
        size_t best_d = 3; /* suggest only close matches */
        for (const ec_field *f = v->op->fields; f->name; f++) {
            size_t d = distance(shown, f->name);
            if (d < best_d) {
                best_d = d;
                best = f->name;
            }
        }
        lua_pop(L, 1);
        if (best)
            return bad(v, shown, "unknown field '%s' (did you mean '%s'?)", shown, best);
        char list[256] = "";
        size_t used = 0;
        for (const ec_field *f = v->op->fields; f->name && used < sizeof list; f++) {
            int w = snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", f->name);
            if (w < 0)
                break;
            used += (size_t)w;
        }
        return bad(v, shown, "unknown field '%s' (accepted: %s)", shown, list);
    }
    return 0;
}

/* Appends "name: prefix value" (prefix: an auth scheme and its space, or "")
 * as one entry: one length check, one copy per part. */
static int add_header2(ec_message *req, const char *name, const char *prefix, const char *value)
{
    size_t nl = strlen(name), pl = strlen(prefix), vl = strlen(value);
    size_t n = nl + 2 + pl + vl + 1;
    ec_buf *b = &req->headers;
    if (ec_buf_reserve(b, n) != 0)
        return -1;
    char *p = b->data + b->len;
    memcpy(p, name, nl);
    p += nl;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, prefix, pl);
    p += pl;
    memcpy(p, value, vl);
    p += vl;
    *p = '\0';
    b->len += n;
    b->data[b->len] = '\0';
    req->nheaders++;
    return 0;
}

static int add_header(ec_message *req, const char *name, const char *value)
{
    return add_header2(req, name, "", value);
}

/* RFC 3986 §2.1: every byte but the unreserved ones (byte_class) as %XX. */
static int percent_encode(ec_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && (byte_class[(unsigned char)s[run]] & B_UNRESERVED))
            run++;
        if (run > i && ec_buf_add(b, s + i, run - i) != 0) /* an id is usually one run */
            return -1;
        if (run == n)
            break;
        unsigned char ch = (unsigned char)s[run];
        char enc[3] = { '%', hex[ch >> 4], hex[ch & 15] };
        if (ec_buf_add(b, enc, 3) != 0)
            return -1;
        i = run + 1;
    }
    return 0;
}

/* The next "{name}" of a path template from *p on: copies name, moves *p
 * past it; 0 when there is none left. */
static int next_param(const char **p, char *name, size_t namelen)
{
    const char *open = strchr(*p, '{');
    const char *close = open ? strchr(open, '}') : NULL;
    if (close == NULL || (size_t)(close - open - 1) >= namelen)
        return 0;
    memcpy(name, open + 1, (size_t)(close - open - 1));
    name[close - open - 1] = '\0';
    *p = close + 1;
    return 1;
}

/* Is argument `name` given (not nil)? */
static int arg_given(vctx *v, int args, const char *name)
{
    const ec_field *f = find_field(v->op, name);
    if (f != NULL)
        push_arg(v, f);
    else
        raw_field(v->L, args, name);
    int given = !lua_isnil(v->L, -1);
    lua_pop(v->L, 1);
    return given;
}

/* Does template t name parameter `name`? */
static int template_has(const char *t, const char *name)
{
    char n[64];
    while (next_param(&t, n, sizeof n))
        if (strcmp(n, name) == 0)
            return 1;
    return 0;
}

/* The first parameter of t that is missing (want_given 0) or, with
 * want_given 1, given and not in `except`; NULL when none. */
static const char *template_find(vctx *v, int args, const char *t, int want_given, const char *except,
                                 char *out, size_t outlen)
{
    while (next_param(&t, out, outlen)) {
        int given = arg_given(v, args, out);
        if (want_given ? (given && !template_has(except, out)) : !given)
            return out;
    }
    return NULL;
}

/* "id" / "ecosystemId and alias": a template's parameters, for messages. */
static void template_words(const char *t, char *out, size_t outlen)
{
    char n[64];
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; next_param(&t, n, sizeof n) && used < outlen; i++) {
        int w = snprintf(out + used, outlen - used, "%s%s", i ? " and " : "", n);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* The template of this call: the path, or (an operation with alt_path)
 * the one of the two whose parameters are all given.  Exactly one must
 * be: neither, or arguments of both ways, is a validation error. */
static const char *choose_template(vctx *v, int args)
{
    const ec_op *op = v->op;
    if (op->alt_path == NULL)
        return op->path;
    char missing[64], extra[64], a[128], b[128];
    int complete_path = template_find(v, args, op->path, 0, NULL, missing, sizeof missing) == NULL;
    int complete_alt = template_find(v, args, op->alt_path, 0, NULL, extra, sizeof extra) == NULL;
    template_words(op->path, a, sizeof a);
    template_words(op->alt_path, b, sizeof b);
    if (!complete_path && !complete_alt) {
        bad(v, missing, "give %s, or %s", a, b);
        return NULL;
    }
    const char *chosen = complete_path ? op->path : op->alt_path;
    const char *other = complete_path ? op->alt_path : op->path;
    if (template_find(v, args, other, 1, chosen, extra, sizeof extra) != NULL) {
        bad(v, extra, "give %s, or %s, not both", a, b);
        return NULL;
    }
    return chosen;
}

/* The query string: each EC_IN_QUERY argument given, as name=value
 * (percent-encoded; booleans true/false, integers in decimal). */
static int build_query(vctx *v)
{
    lua_State *L = v->L;
    ec_buf *url = &v->m->url;
    char sep = '?';
    for (const ec_field *f = v->op->fields; f->name; f++) {
        if (f->in != EC_IN_QUERY)
            continue;
        push_arg(v, f);
        int idx = lua_gettop(L);
        if (lua_isnil(L, idx)) {
            lua_pop(L, 1);
            if (f->required)
                return bad(v, f->name, "field '%s' is required", f->name);
            continue;
        }
        const char *wire = f->wire ? f->wire : f->name;
        int rc = 0;
        if (ec_buf_addc(url, sep) != 0 || percent_encode(url, wire, strlen(wire)) != 0 || ec_buf_addc(url, '=') != 0)
            rc = bad(v, f->name, "URL is too long");
        sep = '&';
        if (rc == 0) {
            const char *s = NULL;
            size_t n = 0;
            char num[24];
            long long i = 0;
            switch (f->type) {
            case EC_T_BOOLEAN:
                if (lua_type(L, idx) != LUA_TBOOLEAN)
                    rc = bad(v, f->name, "field '%s' must be a boolean, got %s", f->name, lua_type_of(L, idx));
                else
                    s = lua_toboolean(L, idx) ? "true" : "false";
                n = s ? strlen(s) : 0;
                break;
            case EC_T_INTEGER:
                rc = check_integer(v, f, f->name, idx, &i);
                if (rc == 0) {
                    n = (size_t)snprintf(num, sizeof num, "%lld", i);
                    s = num;
                }
                break;
            default:
                rc = check_string(v, f, f->name, idx, f->format, &s, &n);
                break;
            }
            if (rc == 0 && percent_encode(url, s, n) != 0)
                rc = bad(v, f->name, "URL is too long");
        }
        lua_pop(L, 1);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int build_url(vctx *v, int args)
{
    lua_State *L = v->L;
    ec_message *req = v->m;
    const char *p = choose_template(v, args);
    if (p == NULL)
        return -1;
    if (ec_buf_adds(&req->url, ec_client_base(v->c, v->op)) != 0)
        return bad(v, "base_url", "base_url is too long");
    while (*p) {
        const char *open = strchr(p, '{');
        if (open == NULL) {
            if (ec_buf_adds(&req->url, p) != 0)
                return bad(v, "base_url", "URL is too long");
            break;
        }
        const char *close = strchr(open, '}');
        char name[64];
        size_t nlen = (size_t)(close - open - 1);
        if (close == NULL || nlen >= sizeof name)
            return bad(v, "(path)", "bad path template");
        memcpy(name, open + 1, nlen);
        name[nlen] = '\0';
        if (ec_buf_add(&req->url, p, (size_t)(open - p)) != 0)
            return bad(v, name, "URL is too long");
        const ec_field *f = find_field(v->op, name);
        if (f != NULL)
            push_arg(v, f);
        else
            raw_field(L, args, name);
        const char *s = NULL;
        size_t n = 0;
        int rc;
        if (lua_isnil(L, -1))
            rc = bad(v, name, "field '%s' is required", name);
        else
            rc = check_string(v, f, name, lua_gettop(L), f ? f->format : EC_FMT_NONE, &s, &n);
        if (rc == 0 && percent_encode(&req->url, s, n) != 0)
            rc = bad(v, name, "URL is too long");
        lua_pop(L, 1);
        if (rc != 0)
            return -1;
        p = close + 1;
    }
    return build_query(v);
}

static int build_body(vctx *v)
{
    lua_State *L = v->L;
    const ec_op *op = v->op;
    ec_message *req = v->m;
    ec_buf *out = &req->body;
    if (op->body == EC_BODY_NONE)
        return 0;
    req->has_body = 1;
    if (op->body == EC_BODY_PATCH_OP) {
        if (ec_buf_adds(out, "[{\"op\":") != 0 || ec_json_add_string(out, op->patch_op, strlen(op->patch_op)) != 0
            || ec_buf_adds(out, ",\"value\":") != 0)
            return too_large(v, op->patch_op);
    } else if (ec_buf_addc(out, '{') != 0) {
        return too_large(v, "(body)");
    }
    int first = 1;
    for (const ec_field *f = op->fields; f->name; f++) {
        if (f->in != EC_IN_BODY)
            continue;
        push_arg(v, f);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            if (f->required)
                return bad(v, f->name, "field '%s' is required", f->name);
            continue;
        }
        int rc = 0;
        if (op->body == EC_BODY_OBJECT) {
            if (add_key(out, f->name, first) != 0)
                rc = too_large(v, f->name);
        }
        first = 0;
        if (rc == 0)
            rc = encode_field(v, f, f->name, lua_gettop(L), out);
        lua_pop(L, 1);
        if (rc != 0)
            return -1;
    }
    if (ec_buf_adds(out, op->body == EC_BODY_PATCH_OP ? "}]" : "}") != 0)
        return too_large(v, "(body)");
    return 0;
}

static int build_headers(vctx *v)
{
    lua_State *L = v->L;
    const ec_client *c = v->c;
    const ec_op *op = v->op;
    ec_message *req = v->m;
    const ec_auth_way *way = op->auth;
    const char *secret = NULL;
    for (; way->credential && (secret = ec_client_secret(c, way->credential)) == NULL; way++)
        ;
    if (secret == NULL)
        return bad(v, op->auth[0].credential, "this %s client has no '%s': pass %s = ... to envclone.%s{} (needed by %s)",
                   op->vendor, op->auth[0].credential, op->auth[0].credential, op->vendor, op->name);
    int rc = 0;
    switch (ec_client_scheme(c, way->scheme, secret)) {
    case EC_AUTH_UNSET: /* not in the table: every way names its scheme */
    case EC_AUTH_BEARER:
        rc = add_header2(req, "Authorization", "Bearer ", secret);
        break;
    case EC_AUTH_TOKEN:
    case EC_AUTH_TOKEN_OR_JWT:
        rc = add_header2(req, "Authorization", "Token ", secret);
        break;
    case EC_AUTH_COOKIE:
        rc = add_header(req, "Cookie", secret);
        break;
    case EC_AUTH_RAW:
        rc = add_header(req, "authorization", secret);
        break;
    }
    rc = rc || add_header(req, "Accept", "application/json");
    if (req->has_body)
        rc = rc || add_header(req, "Content-Type", "application/json");
    if (c->user_agent)
        rc = rc || add_header(req, "User-Agent", c->user_agent);
    if (rc)
        return bad(v, "(headers)", "request headers are too large");
    for (const ec_field *f = op->fields; f->name; f++) {
        if (f->in != EC_IN_HEADER)
            continue;
        push_arg(v, f);
        const char *s;
        size_t n;
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            if (f->required)
                return bad(v, f->name, "field '%s' is required", f->name);
            continue;
        }
        rc = check_string(v, f, f->name, lua_gettop(L), f->format, &s, &n);
        if (rc == 0 && add_header(req, f->wire ? f->wire : f->name, s) != 0)
            rc = bad(v, f->name, "request headers are too large");
        lua_pop(L, 1);
        if (rc != 0)
            return -1;
    }
    return 0;
}

int ec_marshal_request(lua_State *L, const ec_client *c, const ec_op *op, int args, ec_message *req)
{
    return ec_marshal_request_ex(L, c, op, args, req, 0);
}

int ec_marshal_request_ex(lua_State *L, const ec_client *c, const ec_op *op, int args, ec_message *req, int defer)
{
    vctx v;
    v.L = L;
    v.op = op;
    v.c = c;
    v.m = req;
    v.defer = defer;
    v.deferred = 0;
    v.array_mt = 0;
    v.field[0] = v.msg[0] = '\0';
    ec_message_clear(req);
    req->method = op->method;

    if (lua_type(L, args) != LUA_TTABLE)
        return ec_error_validation(L, c, op, "(arguments)", "arguments must be a table, got %s", lua_type_of(L, args));
    args = lua_absindex(L, args);
    int top = lua_gettop(L);
    v.slots = push_slots(L, op->fields);
    if (check_known_keys(&v, args) != 0 || build_url(&v, args) != 0 || build_body(&v) != 0
        || build_headers(&v) != 0) {
        lua_settop(L, top);
        ec_buf_clear(&req->url); /* nothing of a refused call is left to send */
        ec_buf_clear(&req->body);
        ec_buf_clear(&req->headers); /* holds the credential */
        if (v.deferred)
            return EC_MARSHAL_DEFERRED;
        return ec_error_validation(L, c, op, v.field, "%s", v.msg);
    }
    lua_settop(L, top);
    return 0;
}
