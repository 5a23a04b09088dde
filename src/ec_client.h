/*
 * ec_client.h - one client: a vendor, its API roots, its credentials, its
 * transport settings, its libcurl handle, and the Lua userdata that owns
 * it (envclone.core.client, made by core.client).
 *
 * Secrets live only here, in C memory: they are copied in by the
 * constructor, written into auth headers, and never handed back to Lua
 * (except in the wire form a Lua transport must write).  Closing a client
 * ends their use in requests at once; the memory is wiped once the client
 * is closed and no request made from it is left (a batched call in flight
 * when a task closed the client: its answer is still masked with them),
 * at the latest when the last reference goes.
 *
 * A client is shared by the Lua userdata that owns it and by every request
 * made from it (a count of references), so a request in flight keeps the
 * memory it reads alive even when the client is closed or collected.
 * Request state lives in the request (ec_request.h), never here: a client
 * may have any number of requests in flight.  It keeps only one spare set
 * of request buffers, so that a sequential caller allocates nothing per
 * call.
 *
 * Its API roots are checked and split once, by the constructor: every
 * request URL starts with one of them, so a request's scheme, host, port
 * and path are read from its root (ec_client_root), never parsed again.
 */
#ifndef EC_CLIENT_H
#define EC_CLIENT_H

#include <stddef.h>
#include <string.h>

#include "ec_compat.h"
#include "ec_curl.h"
#include "ec_message.h"
#include "ec_ops.h"
#include "ec_transport.h"

#define EC_VERSION "0.1.0" /* core.version, and the default User-Agent */
#define EC_MAX_SECRETS 4
#define EC_MAX_BASES 2
#define EC_CLIENT_MT "envclone.core.client"

/* Secrets are 8 to 8192 bytes long: a shorter value could not be told
 * from ordinary words when it is masked in messages and bodies
 * (ec_mask.h); no real credential is. */
#define EC_SECRET_MIN 8
#define EC_SECRET_MAX 8192

/* An API root: "https://host:port/path", checked, without trailing
 * slashes, and split once. */
typedef struct {
    char *url;
    int tls;          /* https */
    size_t host;      /* where the host starts in url (IPv6: its '[') */
    size_t host_len;  /* brackets kept for IPv6 */
    long port;        /* given, or the scheme's default */
    int default_port; /* the port is the scheme's default (Host leaves it out) */
    size_t path;      /* where the authority ends: the path, if any, starts here */
} ec_root;

/* The buffers of one call: the message ec_marshal builds and the state of
 * its libcurl exchange.  Freeing wipes the credential. */
typedef struct ec_reqbufs {
    ec_message msg;
    ec_exchange ex;
} ec_reqbufs;

typedef struct ec_client {
    const ec_vendor *vendor;
    ec_root base;                  /* base_url */
    ec_root bases[EC_MAX_BASES];   /* parallel to vendor->bases; url NULL = none */
    ec_auth scheme_override;       /* from vendor->scheme_option; EC_AUTH_UNSET: by the credential */
    char *secrets[EC_MAX_SECRETS]; /* parallel to vendor->credentials; NULL = not set */
    char *options[EC_MAX_SETTINGS]; /* parallel to vendor->settings (non-secret); NULL = not set */
    char *user_agent;
    ec_settings settings;          /* timeouts, TLS, proxy, http_version, size cap (ec_transport.h) */
    int closed;
    int refs;                      /* the owning userdata + live requests */
    int boxed;                     /* 1 while the owning userdata holds its reference */
    ec_reqbufs *spare;             /* buffers of the last finished request, for the next one */
    ec_easy *easy;                 /* this client's easy handle (made on first use) */
} ec_client;

/* The option's text for the http_version setting: "auto", "1.1", "2". */
const char *ec_client_http_version(const ec_client *c);

/* The secret for credential option `name`, or NULL when the client has
 * none or is closed. */
const char *ec_client_secret(const ec_client *c, const char *name);

/* The API root `op` is sent to: base_url, or the vendor base it names. */
const ec_root *ec_client_root(const ec_client *c, const ec_op *op);
const char *ec_client_base(const ec_client *c, const ec_op *op); /* its url */

/* The value of the vendor's non-secret setting `name` (ec_vendor.settings),
 * or NULL when the client has none. */
const char *ec_client_option(const ec_client *c, const char *name);

/* The scheme a credential goes out with (resolves EC_AUTH_TOKEN_OR_JWT). */
ec_auth ec_client_scheme(const ec_client *c, ec_auth scheme, const char *secret);

/* Reference counting: the memory goes when the last reference does. */
void ec_client_ref(ec_client *c);
void ec_client_unref(ec_client *c);

/* A set of call buffers (NULL when out of memory); freeing wipes them. */
ec_reqbufs *ec_reqbufs_new(void);
void ec_reqbufs_free(ec_reqbufs *b);

/* The client's easy handle, made on first use (raises when it cannot be). */
ec_easy *ec_client_easy_new(lua_State *L, ec_client *c);
static inline ec_easy *ec_client_easy(lua_State *L, ec_client *c)
{
    return c->easy != NULL ? c->easy : ec_client_easy_new(L, c);
}

/* Lua: core.client(vendor, opts) -> client userdata (options checked here;
 * a wrong one raises, naming it). */
int ec_client_lua_new(lua_State *L);

/* Sets up the client userdata's metatable. */
void ec_client_init(lua_State *L);

/* The client in the userdata at idx: raising unless it is one
 * (ec_client_arg), also when it is closed (ec_client_check); or NULL
 * (ec_client_test). */
ec_client *ec_client_arg(lua_State *L, int idx);
ec_client *ec_client_check(lua_State *L, int idx);
ec_client *ec_client_test(lua_State *L, int idx);

/* Does c serve op (the same vendor)?  ec_client_check_op raises when not
 * (inline: every call asks). */
static inline int ec_client_serves(const ec_client *c, const ec_op *op)
{
    return strcmp(c->vendor->name, op->vendor) == 0;
}
static inline void ec_client_check_op(lua_State *L, const ec_client *c, const ec_op *op)
{
    if (!ec_client_serves(c, op))
        luaL_error(L, "envclone: %s.%s called on a %s client", op->vendor, op->name, c->vendor->name);
}

#endif
