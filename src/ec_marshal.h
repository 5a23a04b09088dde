/*
 * ec_marshal.h - the marshal engine: a call's Lua arguments, validated
 * against its operation row, -> the request message (URL with percent-
 * encoded path parameters, headers with the credential, JSON body).  It
 * does no I/O, so every transport (libcurl, OpenResty cosockets) shares it
 * and tests can drive it directly.  Answers are ec_parse.c's.
 */
#ifndef EC_MARSHAL_H
#define EC_MARSHAL_H

#include "ec_client.h"
#include "ec_compat.h"
#include "ec_message.h"

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

#endif
