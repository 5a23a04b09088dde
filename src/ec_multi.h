/*
 * ec_multi.h - the libcurl multi transport: many requests in flight on one
 * thread, driven by a batch's event loop (lua/envclone/batch.lua).
 *
 * In Lua:
 *   local m = core.multi{ max_connections = 16 }
 *   m:add(request, id)        -> true | nil, err   (err: the request's transport error)
 *   m:poll(seconds)           -> transfers finished, not yet taken (waits at most `seconds`)
 *   m:next()                  -> id, result | id, nil, err | nil   (one finished transfer, parsed)
 *   m:drain(results, items)   -> count[, id, ...]   (see l_drain)
 *   m:fill(items, from, to, room, handles[, defer]) -> next[, err]   (see l_fill)
 *   op.start(m, client, args, id[, defer])   (below)
 *   m:close()                 -- also __gc and __close: removes and frees every transfer
 *
 * A request stays referenced by the multi while it is in flight, so its
 * buffers (which libcurl writes into) outlive the transfer whatever Lua
 * drops.  Answers go through the same parse path as a single call
 * (ec_request_finish).
 */
#ifndef EC_MULTI_H
#define EC_MULTI_H

#include "ec_compat.h"

#define EC_MULTI_MT "envclone.core.multi"

/* op.start(multi, client, args, id[, defer]) -> true | nil, err | nothing:
 * the lua_CFunction of every operation's `start` (its upvalue 1: the row;
 * ec_core.c makes the closures).  One call put on the multi handle with no
 * request object; `defer` as for op.call; nothing when the client is
 * closed, args is not a table or holds a name of `defer`: the caller's
 * single-call path takes those.  m:fill recognises these functions in a
 * batch's items by this address. */
int ec_multi_lua_start(lua_State *L);

/* Sets up the multi userdata's metatable. */
void ec_multi_init(lua_State *L);

/* core.multi(opts) -> multi userdata (the Lua constructor). */
int ec_multi_new(lua_State *L);

#endif
