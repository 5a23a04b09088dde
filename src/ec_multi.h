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
 *   m:close()                 -- also __gc and __close: removes and frees every transfer
 *
 * A request stays referenced by the multi while it is in flight, so its
 * buffers (which libcurl writes into) outlive the transfer whatever Lua
 * drops.  Answers go through the same parse path as a single call
 * (ec_request_finish).
 */
#ifndef EC_MULTI_H
#define EC_MULTI_H

#include "ec_client.h"
#include "ec_compat.h"

#define EC_MULTI_MT "envclone.core.multi"

typedef struct ec_multi ec_multi;

/* The open multi handle at idx (raises otherwise). */
ec_multi *ec_multi_check(lua_State *L, int idx);

/* Puts one call of op, with arguments at stack index `args`, on mu with no
 * request object (op.start, m:fill).  Pushes true and returns 1; or pushes
 * nil and the validation error (nothing sent) and returns 2; or returns 0,
 * pushing nothing, when the client is closed, args is not a table or holds
 * a key of the table at `defer` (a stack index, 0 = none), or the transfer
 * could not be started: the caller's single-call path takes those.  Its transfer's m:next() gives id, result, or id, nil, err,
 * request (the failed call's request, for the retries). */
int ec_multi_start(lua_State *L, ec_multi *mu, ec_client *c, const ec_op *op, int args, lua_Integer id,
                   int defer);

/* From ec_core.c: the operation of an op.start function at idx, or NULL
 * when idx holds anything else; the client in the core handle at idx, or
 * NULL when it holds anything else. */
const ec_op *ec_op_of_start(lua_State *L, int idx);
ec_client *ec_client_test(lua_State *L, int idx);

/* Sets up the multi userdata's metatable. */
void ec_multi_init(lua_State *L);

/* core.multi(opts) -> multi userdata (the Lua constructor). */
int ec_multi_new(lua_State *L);

#endif
