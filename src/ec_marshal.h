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

#define EC_MAX_BODY ((size_t)256 * 1024) /* request bodies; far above any real call */

/* One HTTP request as the marshal engine builds it. */
typedef struct {
    ec_buf url;     /* full URL */
    ec_buf body;    /* JSON; meaningful when has_body */
    int has_body;
    ec_buf headers; /* "Name: value" entries, each NUL-terminated; holds the credential */
    size_t nheaders;
} ec_message;

/* Buffers with the engine's caps; ec_message_free wipes the headers. */
void ec_message_init(ec_message *m);
void ec_message_free(ec_message *m);

typedef struct {
    long status;
    const char *body;
    size_t body_len;
    const char *content_type; /* NULL when absent */
    const char *retry_after;  /* raw Retry-After header, NULL when absent */
    const char *request_id;   /* X-Request-Id / Request-Id header, NULL when absent */
    const char *location;     /* Location header on redirects */
} ec_response;

/* Creates the array metatable (envclone.array_mt) in the registry. */
void ec_marshal_init(lua_State *L);

/* Pushes the metatable that marks a Lua table as a JSON array. */
void ec_marshal_push_array_mt(lua_State *L);

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
