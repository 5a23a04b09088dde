/*
 * leak_canary.c - a Lua C module that leaks on purpose.  scripts/asan.sh and
 * scripts/valgrind.sh load it once, with exactly the preloads, options and
 * suppression files the real runs use, and require that the leak IS
 * reported: so a "zero errors" result can be trusted to mean zero, not that
 * the set-up (nodlclose.so, the suppression files) hides leaks in a
 * module's code.
 */
#include <lua.h>
#include <stdlib.h>
#include <string.h>

int luaopen_leak_canary(lua_State *L);

static void *volatile sink;

int luaopen_leak_canary(lua_State *L)
{
    char *p = malloc(4096);
    if (p != NULL)
        memset(p, 'x', 4096);
    sink = p;
    sink = NULL; /* the only pointer is gone: a definite leak */
    lua_pushboolean(L, 1);
    return 1;
}
