/*
 * ec_multi.h - the libcurl multi transport: many requests in flight on one
 * thread, driven by a batch's event loop (lua/envclone/batch.lua).
 *
 * In Lua:
 *   local m = core.multi{ max_connections = 16 }
 *   m:add(request, id)        -> true | nil, err   (err: the request's transport error)
 *   m:poll(seconds)           -> transfers still running (waits at most `seconds`)
 *   m:next()                  -> id, result | id, nil, err | nil   (one finished transfer, parsed)
 *   m:close()                 -- also __gc and __close: removes and frees every transfer
 *
 * A request stays referenced by the multi while it is in flight, so its
 * buffers (which libcurl writes into) outlive the transfer whatever Lua
 * drops.  Answers go through the same parse path as a single call
 * (ec_curl_finish).
 */
#ifndef EC_MULTI_H
#define EC_MULTI_H

#include "ec_client.h"
#include "ec_compat.h"

#define EC_MULTI_MT "envclone.core.multi"

/* op.start(multi, client, args, id[, defer]) (ec_core.c): puts one call of
 * op on the multi at stack index `multi`, with no request object.  Pushes
 * true; or nil and an error (validation: nothing sent; or the transport's
 * failure to start it); or nothing when `defer` (a stack index, 0 = none)
 * names a key args hold.  Its transfer's m:next() gives id, result, or id,
 * nil, err, request (the failed call's request, for the retries). */
int ec_multi_start(lua_State *L, int multi, ec_client *c, const ec_op *op, int args, lua_Integer id,
                   int defer);

/* Sets up the multi userdata's metatable. */
void ec_multi_init(lua_State *L);

/* core.multi(opts) -> multi userdata (the Lua constructor). */
int ec_multi_new(lua_State *L);

#endif
