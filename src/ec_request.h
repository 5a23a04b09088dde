/*
 * ec_request.h - one call as an object: made from (client, operation,
 * arguments) by ec_marshal, performed by any transport, its outcome
 * turned into a result or an error by ec_parse; and the one-call fast path
 * (ec_request_call), where the request never becomes an object unless the
 * exchange fails.
 *
 * A request holds its message (URL, headers with the credential, body)
 * and the policy its operation row decides once (ec_policy.h).  It also
 * holds the state of one exchange on a libcurl easy handle, so any number
 * of requests of one client can be in flight at once (libcurl multi,
 * coroutines).
 *
 * In Lua it is a userdata ("envclone.request") with __gc and __close; its
 * fields (url, host, port, path, timeouts, ...) and methods (send, curl,
 * parse, fail, wire, headers, release) serve transports written in Lua.
 */
#ifndef EC_REQUEST_H
#define EC_REQUEST_H

#include "ec_client.h"
#include "ec_compat.h"
#include "ec_curl.h"
#include "ec_marshal.h"
#include "ec_policy.h"
#include "ec_transport.h"

#define EC_REQUEST_MT "envclone.core.request"

typedef struct ec_request {
    ec_client *client; /* counted reference (ec_client_ref) */
    const ec_op *op;
    ec_reqbufs *b;     /* its message and exchange (ec_client.h); NULL once released */
    ec_policy policy;  /* from the row, once (ec_policy.h) */
    int in_flight; /* on a multi handle's wire (ec_multi.c) */
} ec_request;

/* Fills r, in storage the caller owns, for op with `args` (stack index),
 * in the buffers b, which stay the caller's.  0: r is ready; it holds no
 * client reference yet: a request that outlives the caller's C frame takes
 * one (ec_client_ref), and is then ended with ec_request_end_kept or made
 * an object with ec_request_push_object.  EC_MARSHAL_DEFERRED: args hold
 * a name of the `defer` set (nothing pushed); else nil and the validation
 * error are pushed and their count returned. */
int ec_request_prepare(lua_State *L, ec_request *r, ec_client *c, const ec_op *op, int args, int defer,
                       ec_reqbufs *b);

/* Ends a request whose buffers the caller keeps: drops its client
 * reference and returns the buffers (a large answer's freed), or NULL
 * when the client is closed (then they are wiped and freed). */
ec_reqbufs *ec_request_end_kept(ec_request *r);

/* Pushes a request userdata that takes over r (its buffers and client
 * reference): for retries, after a failed exchange. */
void ec_request_push_object(lua_State *L, const ec_request *r);

/* The lua_CFunctions of every operation's `request` and `call` (upvalue 1:
 * the row; ec_core.c makes the closures):
 *   op.request(client, args) -> request | nil, err (validation)
 *   op.call(client, args[, defer]) -> result | nil, err[, request]
 * (ec_request_push_new and ec_request_call above). */
int ec_request_lua_request(lua_State *L);
int ec_request_lua_call(lua_State *L);

/* Sets up the request userdata's metatable (methods, __gc, __close). */
void ec_request_init(lua_State *L);

/* Validates `args` (stack index) for op and pushes a new request, or
 * nil + a validation error.  Returns the number of values pushed. */
int ec_request_push_new(lua_State *L, ec_client *c, const ec_op *op, int args);

/* One attempt of op over the client's libcurl handle, the sequential fast
 * path: the request is built in the client's spare buffers and becomes a
 * Lua object only when the exchange fails.  Pushes the result (1), nil and
 * a validation error (2), or nil, the error and the request (3).  With a
 * `defer` table (stack index; 0 = none) it pushes nothing and sends
 * nothing (0) when args hold one of the names in it, or when it runs in a
 * coroutine: the caller then takes its general path. */
int ec_request_call(lua_State *L, ec_client *c, const ec_op *op, int args, int defer);

/* The request at idx, raising when it is not one or was released. */
ec_request *ec_request_check(lua_State *L, int idx);

/* Frees a request's buffers (wiping the credential) or hands them back
 * to its client as the spare set.  Idempotent. */
void ec_request_release(ec_request *r);

/* Pushes nil and the error object for a failed exchange of r (the one
 * constructor: ec_parse_transport_error).  Returns 2. */
int ec_request_push_transport_error(lua_State *L, const ec_request *r, const ec_transport_error *te);

/* libcurl (ec_multi.c): makes e ready to carry r (ec_curl_setup): 0, or
 * -1 with te filled. */
static inline int ec_request_setup(ec_easy *e, ec_request *r, ec_transport_error *te)
{
    return ec_curl_setup(e, &r->client->settings, &r->policy, &r->b->msg, &r->b->ex, te);
}

/* The transfer of r on e ended with CURLcode rc: pushes the parsed result,
 * or nil + the transport error; returns how many. */
int ec_request_finish(lua_State *L, ec_easy *e, ec_request *r, int rc);

#endif
