/*
 * ec_client.h - one client: a vendor, its base URL, its credentials and
 * its settings.  Secrets live only here, in C memory: they are copied in
 * by the constructor, written into auth headers, and never handed back to
 * Lua (except in the wire form a Lua transport must write).  Closing a
 * client ends their use in requests at once; the memory is wiped once the
 * client is closed and no request made from it is left (a batched call in
 * flight when a task closed the client: its answer is still masked with
 * them), at the latest when the last reference goes.
 *
 * A client is shared by the Lua userdata that owns it and by every request
 * made from it (a count of references), so a request in flight keeps the
 * memory it reads alive even when the client is closed or collected.
 * Request state lives in the request (ec_request.h), never here: a client
 * may have any number of requests in flight.
 */
#ifndef EC_CLIENT_H
#define EC_CLIENT_H

#include <stddef.h>

#include "ec_buf.h"
#include "ec_ops.h"
#include "ec_transport.h"

#define EC_MAX_SECRETS 4
#define EC_MAX_BASES 2
#define EC_CLIENT_MT "envclone.core.client"

struct ec_reqbufs;
struct ec_easy;

typedef struct ec_client {
    const ec_vendor *vendor;
    char *base_url;
    char *bases[EC_MAX_BASES];     /* parallel to vendor->bases */
    ec_auth scheme_override;       /* from vendor->scheme_option; EC_AUTH_UNSET: by the credential */
    char *secrets[EC_MAX_SECRETS]; /* parallel to vendor->credentials; NULL = not set */
    char *user_agent;
    ec_settings settings;          /* timeouts, TLS, proxy, http_version, size cap (ec_transport.h) */
    int closed;
    int refs;                      /* the owning userdata + live requests */
    int boxed;                     /* 1 while the owning userdata holds its reference */
    struct ec_reqbufs *spare;      /* buffers of the last finished request, for the next one */
    struct ec_easy *easy;          /* this client's easy handle (made on first use) */
} ec_client;

/* The option's text for an EC_HTTP_* value. */
const char *ec_client_http_version(const ec_client *c);

/* The secret for credential option `name`, or NULL when the client has none. */
const char *ec_client_secret(const ec_client *c, const char *name);

/* The API root `op` is sent to: base_url, or the vendor base it names. */
const char *ec_client_base(const ec_client *c, const ec_op *op);

/* The scheme a credential goes out with (resolves EC_AUTH_TOKEN_OR_JWT). */
ec_auth ec_client_scheme(const ec_client *c, ec_auth scheme, const char *secret);

/* Reference counting: the memory goes when the last reference does. */
void ec_client_ref(ec_client *c);
void ec_client_unref(ec_client *c);

#endif
