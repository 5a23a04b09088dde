/*
 * ec_error.c - error objects: construction (messages masked by ec_mask), __tostring.
 */
#include "ec_error.h"
#include "ec_json.h"
#include "ec_mask.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define EC_MSG_MAX 512

void ec_error_str(lua_State *L, const char *key, const char *value)
{
    ec_setfield_string(L, key, value);
}

void ec_error_int(lua_State *L, const char *key, long value)
{
    lua_pushinteger(L, (lua_Integer)value);
    lua_setfield(L, -2, key);
}

void ec_error_bool(lua_State *L, const char *key, int value)
{
    lua_pushboolean(L, value);
    lua_setfield(L, -2, key);
}

void ec_error_new(lua_State *L, const ec_client *c, const ec_op *op,
                  const char *kind, const char *message)
{
    /* masked whole, then cut: a cut first could leave part of a secret */
    message = message ? message : "";
    ec_mask_push(L, c, message, strlen(message));
    size_t mlen;
    const char *masked = lua_tolstring(L, -1, &mlen);
    lua_pushlstring(L, masked, mlen < EC_MSG_MAX ? mlen : EC_MSG_MAX - 1);
    lua_remove(L, -2);

    lua_createtable(L, 0, 12);
    lua_insert(L, -2);
    lua_setfield(L, -2, "message");
    ec_error_str(L, "kind", kind);
    ec_error_str(L, "vendor", op ? op->vendor : (c && c->vendor ? c->vendor->name : NULL));
    ec_error_str(L, "operation", op ? op->name : NULL);
    ec_error_bool(L, "retryable", 0);
    ec_error_bool(L, "maybe_applied", 0);
    ec_error_int(L, "attempts", 1);
    luaL_getmetatable(L, EC_ERROR_MT);
    lua_setmetatable(L, -2);
}

int ec_error_validation(lua_State *L, const ec_client *c, const ec_op *op,
                        const char *field, const char *fmt, ...)
{
    char msg[EC_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): a clang 14 false positive */
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lua_pushnil(L);
    ec_error_new(L, c, op, "validation", msg);
    /* the field may be a caller's key: it gets the message's scrubbing */
    if (field) {
        ec_mask_push(L, c, field, strlen(field));
        lua_setfield(L, -2, "field");
    }
    return 2;
}

/* Appends prefix, the value of err[key] and suffix when the field is a
 * string or a number.  The value is copied out before the pop: a number
 * converted by lua_tostring would otherwise be a string nothing refers to,
 * free for the collector while the buffer grows. */
static void add_field(luaL_Buffer *b, lua_State *L, const char *key, const char *prefix,
                      const char *suffix)
{
    char value[1024];
    lua_getfield(L, 1, key);
    int type = lua_type(L, -1);
    if (type == LUA_TNUMBER) {
        /* locale-free, and exact for integers */
        if (ec_json_format_number(L, -1, value, sizeof value) != 0)
            snprintf(value, sizeof value, "?");
    } else if (type == LUA_TSTRING) {
        snprintf(value, sizeof value, "%s", lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    if (type != LUA_TNUMBER && type != LUA_TSTRING)
        return;
    luaL_addstring(b, prefix);
    luaL_addstring(b, value);
    luaL_addstring(b, suffix);
}

static lua_Number field_number(lua_State *L, const char *key)
{
    lua_getfield(L, 1, key);
    lua_Number n = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return n;
}

static int field_is_true(lua_State *L, const char *key)
{
    lua_getfield(L, 1, key);
    int yes = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return yes;
}

/* envclone: kontent.clone_environment: http 400 (code 232): message
 * [field 'name'] [request_id ...] [after 3 attempts] [may have been applied] */
static int error_tostring(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "envclone: ");
    add_field(&b, L, "vendor", "", "");
    add_field(&b, L, "operation", ".", ": ");
    lua_getfield(L, 1, "kind");
    int has_kind = lua_type(L, -1) == LUA_TSTRING;
    lua_pop(L, 1);
    if (has_kind)
        add_field(&b, L, "kind", "", "");
    else
        luaL_addstring(&b, "error");
    add_field(&b, L, "status", " ", "");
    add_field(&b, L, "code", " (code ", ")");
    add_field(&b, L, "message", ": ", "");
    add_field(&b, L, "field", " [field '", "']");
    add_field(&b, L, "request_id", " [request_id ", "]");
    lua_Number attempts = field_number(L, "attempts");
    if (attempts > 1) {
        char tmp[64];
        snprintf(tmp, sizeof tmp, " [after %.0f attempts]", (double)attempts);
        luaL_addstring(&b, tmp);
    }
    if (field_is_true(L, "maybe_applied"))
        luaL_addstring(&b, " [the server may have applied it: check before retrying]");
    luaL_pushresult(&b);
    return 1;
}

int ec_error_lua_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_createtable(L, 0, 12);
    ec_error_bool(L, "retryable", 0);
    ec_error_bool(L, "maybe_applied", 0);
    ec_error_int(L, "attempts", 1);
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
    luaL_getmetatable(L, EC_ERROR_MT);
    lua_setmetatable(L, -2);
    return 1;
}

void ec_error_init(lua_State *L)
{
    if (luaL_newmetatable(L, EC_ERROR_MT)) {
        lua_pushcfunction(L, error_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "envclone.error");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
}
