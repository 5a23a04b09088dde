/*
 * ec_compat.h - the only place that knows Lua 5.1 (LuaJIT) from 5.2-5.4.
 * Everything else in src/ is written against the 5.4 API and these shims.
 */
#ifndef EC_COMPAT_H
#define EC_COMPAT_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#if LUA_VERSION_NUM < 502
/* Lua 5.1 / LuaJIT */
#  define ec_rawlen(L, i) lua_objlen((L), (i))
#  define ec_newlib(L, l) (lua_newtable(L), luaL_register((L), NULL, (l)))
#  define lua_absindex(L, i) ((i) > 0 || (i) <= LUA_REGISTRYINDEX ? (i) : lua_gettop(L) + (i) + 1)
#  include <stdint.h>
#  define LUA_MAXINTEGER PTRDIFF_MAX /* lua_Integer is ptrdiff_t in 5.1 */
static inline void ec_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    luaL_checkstack(L, nup, "too many upvalues");
    for (; l->name != NULL; l++) {
        for (int i = 0; i < nup; i++)
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
static inline int ec_isinteger(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TNUMBER)
        return 0;
    lua_Number n = lua_tonumber(L, idx);
    /* range first: casting NaN, inf or 1e300 to long long is undefined */
    return n >= -9007199254740992.0 && n <= 9007199254740992.0 && n == (lua_Number)(long long)n;
}
static inline void *ec_testudata(lua_State *L, int idx, const char *tname)
{
    void *p = lua_touserdata(L, idx);
    if (p == NULL || !lua_getmetatable(L, idx))
        return NULL;
    luaL_getmetatable(L, tname);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same ? p : NULL;
}
/* luaL_tolstring (5.2+): honours __tostring, pushes the string. */
static inline const char *ec_tolstring(lua_State *L, int idx, size_t *len)
{
    if (!luaL_callmeta(L, idx, "__tostring")) {
        switch (lua_type(L, idx)) {
        case LUA_TNUMBER:
        case LUA_TSTRING:
            lua_pushvalue(L, idx);
            break;
        case LUA_TBOOLEAN:
            lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false");
            break;
        case LUA_TNIL:
            lua_pushliteral(L, "nil");
            break;
        default:
            lua_pushfstring(L, "%s: %p", luaL_typename(L, idx), lua_topointer(L, idx));
            break;
        }
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "'__tostring' must return a string");
    }
    return lua_tolstring(L, -1, len);
}
#else
#  define ec_rawlen(L, i) lua_rawlen((L), (i))
#  define ec_newlib(L, l) luaL_newlib((L), (l))
#  define ec_setfuncs(L, l, n) luaL_setfuncs((L), (l), (n))
#  define ec_testudata(L, i, t) luaL_testudata((L), (i), (t))
#  define ec_tolstring(L, i, n) luaL_tolstring((L), (i), (n))
#  if LUA_VERSION_NUM >= 503
#    define ec_isinteger(L, i) lua_isinteger((L), (i))
#  else
static inline int ec_isinteger(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TNUMBER)
        return 0;
    lua_Number n = lua_tonumber(L, idx);
    /* range first: casting NaN, inf or 1e300 to long long is undefined */
    return n >= -9007199254740992.0 && n <= 9007199254740992.0 && n == (lua_Number)(long long)n;
}
#  endif
#endif

/* t[key] = value for the table on top of the stack; nothing for NULL. */
static inline void ec_setfield_string(lua_State *L, const char *key, const char *value)
{
    if (value == NULL)
        return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
}

#endif /* EC_COMPAT_H */
