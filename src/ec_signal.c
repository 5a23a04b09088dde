/*
 * ec_signal.c - the interrupt flag (see ec_signal.h).  The handler only
 * counts: everything else happens where the program next looks (a wait of
 * the core returns early, a batch's loop stops starting calls).  No
 * SA_RESTART, so poll(2) and nanosleep(2) end with EINTR when a signal
 * arrives; libcurl takes an EINTR as "nothing happened yet" and returns.
 */
#include "ec_signal.h"

#include <signal.h>
#include <string.h>

static int catching;
static volatile sig_atomic_t pending; /* since the last clear */
static volatile sig_atomic_t last;    /* the first signal since the last clear */

static void on_signal(int sig)
{
    if (pending == 0)
        last = sig;
    pending = pending + 1;
}

long ec_signal_pending(void)
{
    return (long)pending;
}

int ec_signal_catching(void)
{
    return catching;
}

static const struct {
    const char *name;
    int sig;
} known[] = {
    { "INT", SIGINT },
    { "TERM", SIGTERM },
    { "HUP", SIGHUP },
};

static const char *name_of(int sig)
{
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (known[i].sig == sig)
            return known[i].name;
    return "?";
}

/* core.catch_signals{ "INT", "TERM", ... }: every name checked before any
 * handler is installed. */
int ec_signal_lua_catch(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int sigs[sizeof known / sizeof known[0]];
    size_t n = 0;
    for (int i = 1;; i++) {
        lua_rawgeti(L, 1, i);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            break;
        }
        const char *s = lua_tostring(L, -1);
        if (s == NULL || lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "envclone.core.catch_signals: item %d is not a signal name", i);
        if (strncmp(s, "SIG", 3) == 0)
            s += 3;
        int sig = 0;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            if (strcmp(s, known[k].name) == 0)
                sig = known[k].sig;
        if (sig == 0)
            return luaL_error(L, "envclone.core.catch_signals: unknown signal '%s' (INT, TERM or HUP)", s);
        lua_pop(L, 1);
        if (n < sizeof sigs / sizeof sigs[0])
            sigs[n++] = sig;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the waits must see EINTR */
    for (size_t i = 0; i < n; i++)
        if (sigaction(sigs[i], &sa, NULL) != 0)
            return luaL_error(L, "envclone.core.catch_signals: sigaction failed for SIG%s", name_of(sigs[i]));
    if (n > 0)
        catching = 1;
    return 0;
}

int ec_signal_lua_interrupted(lua_State *L)
{
    int count = pending;
    if (count == 0)
        return 0;
    lua_pushfstring(L, "SIG%s", name_of(last));
    lua_pushinteger(L, (lua_Integer)count);
    return 2;
}

int ec_signal_lua_clear(lua_State *L)
{
    (void)L;
    pending = 0;
    return 0;
}
