/*
 * ec_client.h - one client: a vendor, its base URL, its credentials and
 * its transport.  Secrets live only here, in C memory: they are copied in
 * by the constructor, written into auth headers, wiped on close, and never
 * handed back to Lua.
 */
#ifndef EC_CLIENT_H
#define EC_CLIENT_H

#include <stddef.h>

#include "ec_buf.h"
#include "ec_ops.h"

#define EC_MAX_SECRETS 4
#define EC_MAX_BASES 2
#define EC_CLIENT_MT "envclone.core.client"

struct ec_transport;

typedef struct {
    ec_buf url;     /* full URL */
    ec_buf body;    /* JSON; meaningful when has_body */
    int has_body;
    ec_buf headers; /* "Name: value" entries, each NUL-terminated */
    size_t nheaders;
} ec_request;

typedef struct {
    const ec_vendor *vendor;
    char *base_url;
    char *bases[EC_MAX_BASES];     /* parallel to vendor->bases */
    ec_auth scheme_override;       /* from vendor->scheme_option; EC_AUTH_UNSET: by the credential */
    char *secrets[EC_MAX_SECRETS]; /* parallel to vendor->credentials; NULL = not set */
    char *user_agent;
    char *ca_file;
    int insecure;                  /* skip TLS verification: explicit opt-in only */
    long timeout_ms;
    long connect_timeout_ms;
    size_t max_response_size;
    int closed;
    ec_request req;                /* reused for every call: no per-call allocations */
    struct ec_transport *transport;
} ec_client;

/* The secret for credential option `name`, or NULL when the client has none. */
const char *ec_client_secret(const ec_client *c, const char *name);

/* The API root `op` is sent to: base_url, or the vendor base it names. */
const char *ec_client_base(const ec_client *c, const ec_op *op);

/* The scheme a credential goes out with (resolves EC_AUTH_TOKEN_OR_JWT). */
ec_auth ec_client_scheme(const ec_client *c, ec_auth scheme, const char *secret);

#endif
