/*
 * ec_signal.h - interrupts a program asks for: SIGINT, SIGTERM and SIGHUP
 * caught into a flag that the waits of the core (core.sleep, m:poll) and
 * the Lua layer's loops read, so that a command line can stop cleanly and
 * print what it has.  The library installs no handler unless asked
 * (core.catch_signals).
 *
 * In Lua:
 *   core.catch_signals{ "INT", "TERM" }   -- sigaction, no SA_RESTART
 *   core.interrupted()        -> "SIGINT", count | nil   (signals since the last clear)
 *   core.clear_interrupted()
 */
#ifndef EC_SIGNAL_H
#define EC_SIGNAL_H

#include "ec_compat.h"

/* Signals caught since the last core.clear_interrupted (0: none). */
long ec_signal_pending(void);

/* Whether core.catch_signals installed a handler: the waits of the core
 * then sleep in slices of at most EC_SIGNAL_SLICE seconds, so that a
 * signal landing just before a system call (which then sees no EINTR)
 * is still seen within a slice. */
int ec_signal_catching(void);
#define EC_SIGNAL_SLICE 0.25

/* core.catch_signals(names) */
int ec_signal_lua_catch(lua_State *L);

/* core.interrupted() -> name, count | nothing */
int ec_signal_lua_interrupted(lua_State *L);

/* core.clear_interrupted() */
int ec_signal_lua_clear(lua_State *L);

#endif
