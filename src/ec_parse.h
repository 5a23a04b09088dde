/*
 * ec_parse.h - an exchange's outcome -> what the caller gets back: the
 * decoded result, or nil and an error object.  I/O-free: every transport
 * (libcurl in C, any transport written in Lua through req:parse and
 * req:fail) ends here, and tests drive it directly.
 */
#ifndef EC_PARSE_H
#define EC_PARSE_H

#include "ec_client.h"
#include "ec_compat.h"
#include "ec_transport.h"

/* An answer: pushes the decoded result (true for an empty 2xx) and
 * returns 1, or pushes nil + an error object ("http", "decode") and
 * returns 2. */
int ec_parse_response(lua_State *L, const ec_client *c, const ec_op *op,
                      const ec_response *resp);

/* THE transport-error constructor: pushes nil and the error object for a
 * failed exchange of op (kind, code, message, sent, retryable,
 * maybe_applied: ec_policy_transport).  c may be NULL (a request already
 * released).  Returns 2. */
int ec_parse_transport_error(lua_State *L, const ec_client *c, const ec_op *op, const ec_transport_error *te);

#endif
