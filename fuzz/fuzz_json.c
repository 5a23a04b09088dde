/*
 * fuzz_json.c - libFuzzer harness of envclone's own JSON decoder
 * (src/ec_jsondec.c), checked against lua-cjson and against itself.
 *
 * The input is the JSON text, any bytes.  Invariants (abort() = a finding):
 *   - never a crash, an ASan/UBSan report or a Lua error;
 *   - differential: where both accept, envclone's value equals lua-cjson's
 *     (numbers compared as doubles, since lua-cjson has no integers; every
 *     array of ours carries envclone.array_mt).  Where only one accepts,
 *     the input must hold one of the documented differences: a leading
 *     byte-order mark or a lone surrogate escape (only envclone reads
 *     them), a NUL byte (lua-cjson stops reading there) or a number that
 *     strtod reads but RFC 8259 does not ("1.", "-.5": only lua-cjson);
 *   - exactness: when the value can be encoded (ec_json_add_value:
 *     valid UTF-8, finite, 32 levels), decoding the encoding gives the very
 *     same value back: integers as integers, floats bit for bit, arrays
 *     marked, [] and {} kept apart.
 * lua-cjson runs with decode_invalid_numbers(false) and the same depth
 * limit; the process stays in the "C" locale, where lua-cjson is right.
 */
#include "ec_jsondec.h"
#include "fuzz_common.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { LOOSE, EXACT };

static int same(lua_State *l, int a, int b, int mode, int depth);

static int same_table(lua_State *l, int a, int b, int mode, int depth)
{
    if (lua_type(l, b) != LUA_TTABLE)
        return 0;
    if (!lua_getmetatable(l, a))
        lua_pushnil(l);
    ec_json_push_array_mt(l);
    int a_array = lua_rawequal(l, -1, -2);
    lua_pop(l, 2);
    if (mode == EXACT) {
        if (!lua_getmetatable(l, b))
            lua_pushnil(l);
        ec_json_push_array_mt(l);
        int b_array = lua_rawequal(l, -1, -2);
        lua_pop(l, 2);
        if (a_array != b_array)
            return 0;
    }
    size_t na = 0, nb = 0;
    lua_pushnil(l);
    while (lua_next(l, a) != 0) {
        na++;
        lua_pushvalue(l, -2);
        lua_rawget(l, b);
        int ok = !lua_isnil(l, -1) && same(l, lua_gettop(l) - 1, lua_gettop(l), mode, depth + 1);
        lua_pop(l, 2);
        if (!ok) {
            lua_pop(l, 1);
            return 0;
        }
    }
    lua_pushnil(l);
    while (lua_next(l, b) != 0) {
        nb++;
        lua_pop(l, 1);
    }
    return na == nb;
}

/* Are the values at a and b the same (LOOSE: numbers as doubles, array marks
 * of b ignored; EXACT: number subtypes, float bits and array marks too)? */
static int same(lua_State *l, int a, int b, int mode, int depth)
{
    a = lua_absindex(l, a);
    b = lua_absindex(l, b);
    FUZZ_ASSERT(depth < 600 && lua_checkstack(l, 8), "compare recursion");
    if (lua_type(l, a) != lua_type(l, b))
        return 0;
    switch (lua_type(l, a)) {
    case LUA_TNUMBER:
        if (mode == EXACT) {
            if (lua_isinteger(l, a) != lua_isinteger(l, b))
                return 0;
            if (lua_isinteger(l, a))
                return lua_tointeger(l, a) == lua_tointeger(l, b);
            double x = (double)lua_tonumber(l, a), y = (double)lua_tonumber(l, b);
            return memcmp(&x, &y, sizeof x) == 0;
        }
        return (double)lua_tonumber(l, a) == (double)lua_tonumber(l, b);
    case LUA_TSTRING: {
        size_t la, lb;
        const char *sa = lua_tolstring(l, a, &la), *sb = lua_tolstring(l, b, &lb);
        return la == lb && memcmp(sa, sb, la) == 0;
    }
    case LUA_TBOOLEAN:
        return lua_toboolean(l, a) == lua_toboolean(l, b);
    case LUA_TLIGHTUSERDATA:
        return lua_touserdata(l, a) == lua_touserdata(l, b);
    case LUA_TTABLE:
        return same_table(l, a, b, mode, depth);
    default:
        return 0;
    }
}

/* The documented differences between the two decoders (see the top):
 * envclone alone reads a byte-order mark and surrogate escapes lua-cjson
 * refuses; lua-cjson alone reads strtod-only numbers; a NUL byte ends
 * lua-cjson's reading. `cjson_err` is lua-cjson's message, `why` ours. */
static int known_difference(const char *s, size_t n, int ours, const char *cjson_err, const char *why)
{
    if (memchr(s, '\0', n) != NULL)
        return 1;
    if (ours)
        return (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0 && strstr(cjson_err, "at character 1") != NULL)
               || strstr(cjson_err, "invalid unicode escape") != NULL;
    return strncmp(why, "invalid number", 14) == 0;
}

static long accepted_both, accepted_ours_only, accepted_cjson_only, roundtrips;

static int run(lua_State *l)
{
    size_t n;
    const char *s = lua_tolstring(l, 1, &n);
    /* 2: the array metatable, 3: lua-cjson's decode */
    ec_json_push_array_mt(l);
    lua_getglobal(l, "require");
    lua_pushliteral(l, "cjson.safe");
    lua_call(l, 1, 1);
    lua_getfield(l, -1, "new");
    lua_call(l, 0, 1);
    lua_getfield(l, -1, "decode_invalid_numbers");
    lua_pushboolean(l, 0);
    lua_call(l, 1, 0);
    lua_getfield(l, -1, "decode_max_depth");
    lua_pushinteger(l, EC_JSON_MAX_DEPTH);
    lua_call(l, 1, 0);
    lua_getfield(l, -1, "decode");
    lua_replace(l, 3);
    lua_settop(l, 3);

    char why[128];
    int ours = ec_json_decode(l, s, n, 2, why, sizeof why) == 0; /* value at 4 */
    if (!ours)
        lua_pushnil(l);
    lua_pushvalue(l, 3);
    lua_pushlstring(l, s, n);
    lua_call(l, 1, 2);
    char cjson_err[256] = "";
    if (lua_type(l, -1) == LUA_TSTRING)
        snprintf(cjson_err, sizeof cjson_err, "%s", lua_tostring(l, -1));
    lua_pop(l, 1);
    int theirs = !lua_isnil(l, 5); /* value at 5 */
    if (!ours)
        FUZZ_ASSERT(strlen(why) > 0 && strstr(why, " at byte ") != NULL, "a failure without a reason");

    if (ours && theirs) {
        accepted_both++;
        FUZZ_ASSERT(same(l, 4, 5, LOOSE, 0), "envclone and lua-cjson decode to different values");
    } else if (ours != theirs) {
        FUZZ_ASSERT(known_difference(s, n, ours, cjson_err, why), "only %s accepts this input (%s)",
                    ours ? "envclone" : "lua-cjson", ours ? cjson_err : why);
        if (ours)
            accepted_ours_only++;
        else
            accepted_cjson_only++;
    }

    if (ours) {
        ec_buf b;
        ec_buf_init(&b, (size_t)64 * 1024 * 1024);
        char err[300];
        int enc = ec_json_add_value(l, 4, &b, 2, "v", err, sizeof err) == 0;
        if (enc) {
            /* the text is copied into Lua so the C buffer can go before any Lua call can raise */
            lua_pushlstring(l, b.data ? b.data : "", b.len);
            ec_buf_free(&b);
            size_t tn;
            const char *text = lua_tolstring(l, -1, &tn);
            FUZZ_ASSERT(ec_json_decode(l, text, tn, 2, why, sizeof why) == 0, "our own encoding does not decode: %s",
                        why);
            FUZZ_ASSERT(same(l, 4, -1, EXACT, 0) && same(l, -1, 4, EXACT, 0), "decode(encode(v)) is not v: %s", text);
            roundtrips++;
        } else {
            ec_buf_free(&b);
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_state_open();
    lua_pushcfunction(L, run);
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, 0) != 0) {
        fprintf(stderr, "a Lua error escaped the JSON decoder: %s\n", lua_tostring(L, -1));
        abort();
    }
    fuzz_state_close();
    static long runs;
    if (++runs % 10000 == 0)
        fprintf(stderr, "fuzz_json: %ld runs: both accepted %ld, only envclone %ld, only lua-cjson %ld, "
                        "round trips %ld\n", runs, accepted_both, accepted_ours_only, accepted_cjson_only, roundtrips);
    return 0;
}
