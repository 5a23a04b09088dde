/*
 * ec_marshal.h - the marshal engine: Lua arguments -> HTTP request, and
 * HTTP response -> Lua result or error object.  It does no I/O, so every
 * transport (libcurl, OpenResty cosockets) shares it and tests can drive it
 * directly.
 */
#ifndef EC_MARSHAL_H
#define EC_MARSHAL_H

#include "ec_client.h"
#include "ec_compat.h"
#include "ec_message.h"
#include "ec_transport.h"

/* Validates the argument table at `args` for `op` and builds m.
 * Returns 0, or pushes nil + a validation error and returns 2.  Nothing is
 * sent on failure: transports only ever see a request that passed. */
int ec_marshal_request(lua_State *L, const ec_client *c, const ec_op *op, int args, ec_message *m);

/* The same, where the table at stack index `defer` (0: none) names
 * arguments the caller handles itself (the Lua layer's call options): when
 * args hold one, nothing is built or pushed and EC_MARSHAL_DEFERRED is
 * returned. */
#define EC_MARSHAL_DEFERRED (-1)
int ec_marshal_request_ex(lua_State *L, const ec_client *c, const ec_op *op, int args, ec_message *m, int defer);

/* Pushes the decoded result (true for an empty 2xx) and returns 1, or
 * pushes nil + an error object and returns 2. */
int ec_parse_response(lua_State *L, const ec_client *c, const ec_op *op,
                      const ec_response *resp);

#endif
