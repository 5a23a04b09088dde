/*
 * ec_core.c - the envclone.core Lua module: client userdata, one Lua
 * function per operation (closures over rows of the operation table), and
 * the prepare/parse pair that non-libcurl transports use.
 */
#include "ec_client.h"
#include "ec_compat.h"
#include "ec_error.h"
#include "ec_curl.h"
#include "ec_http1.h"
#include "ec_json.h"
#include "ec_jsondec.h"
#include "ec_marshal.h"
#include "ec_mask.h"
#include "ec_clock.h"
#include "ec_multi.h"
#include "ec_request.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <strings.h>

#define EC_VERSION "0.1.0"
#define EC_DEFAULT_TIMEOUT_MS 30000L
#define EC_DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define EC_DEFAULT_MAX_RESPONSE ((size_t)8 * 1024 * 1024)
#define EC_MAX_BASE_URL 2048

static void wipe_free(char *s)
{
    if (s == NULL)
        return;
    volatile char *p = s;
    while (*p)
        *p++ = '\0';
    free(s);
}

void ec_client_ref(ec_client *c)
{
    c->refs++;
}

static void wipe_secrets(ec_client *c)
{
    for (int i = 0; i < EC_MAX_SECRETS; i++) {
        wipe_free(c->secrets[i]);
        c->secrets[i] = NULL;
    }
}

/* A closed client's secrets serve only to mask: they stay while a request
 * made from it is alive (refs above the owning userdata's), since its
 * answer -- a 401 that echoes the key -- is still to be parsed and masked
 * with them; the last such request's ec_client_unref wipes them. */
static void client_close(ec_client *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    ec_easy_free(c->easy);
    c->easy = NULL;
    ec_client_free_spare(c);
    if (c->refs <= c->boxed)
        wipe_secrets(c);
}

void ec_client_unref(ec_client *c)
{
    if (--c->refs > 0) {
        if (c->closed && c->refs <= c->boxed)
            wipe_secrets(c);
        return;
    }
    client_close(c);
    wipe_secrets(c); /* closed earlier, with requests alive */
    free(c->base_url);
    for (int i = 0; i < EC_MAX_BASES; i++) {
        free(c->bases[i]);
        c->bases[i] = NULL;
    }
    free(c->user_agent);
    free(c->settings.ca_file);
    free(c->settings.proxy);
    free(c);
}

/* The Lua userdata is a box holding the client: requests share it. */
typedef struct {
    ec_client *c;
} client_box;

static ec_client *to_client(lua_State *L, int idx)
{
    client_box *box = luaL_checkudata(L, idx, EC_CLIENT_MT);
    if (box->c == NULL)
        luaL_error(L, "envclone: the client is being built");
    return box->c;
}

static ec_client *check_client(lua_State *L, int idx)
{
    ec_client *c = to_client(L, idx);
    if (c->closed)
        luaL_error(L, "envclone: the %s client is closed", c->vendor->name);
    return c;
}

static char *dup_string(lua_State *L, const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        luaL_error(L, "envclone: out of memory");
    return d;
}

/* Programmer errors in constructor options raise, naming the option. */
static const char *opt_string(lua_State *L, int opts, const char *vendor, const char *key)
{
    lua_getfield(L, opts, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "envclone.%s: option '%s' must be a string, got %s", vendor, key, luaL_typename(L, -1));
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    /* C sees a string only up to its first NUL: "tok\0en" would silently
     * become "tok", and "http://h\0.evil" would pass the base_url checks */
    if (strlen(s) != len)
        luaL_error(L, "envclone.%s: option '%s' must not contain NUL bytes", vendor, key);
    lua_pop(L, 1); /* still referenced by opts */
    return s;
}

static double opt_seconds(lua_State *L, int opts, const char *vendor, const char *key, double dflt)
{
    lua_getfield(L, opts, key);
    double v = dflt;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "envclone.%s: option '%s' must be a number of seconds, got %s", vendor, key,
                       luaL_typename(L, -1));
        v = lua_tonumber(L, -1);
        if (!(v > 0 && v <= 86400))
            luaL_error(L, "envclone.%s: option '%s' must be between 0 and 86400 seconds", vendor, key);
    }
    lua_pop(L, 1);
    return v;
}

static int header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7F)
            return 0;
    return 1;
}

static const char *const common_options[] = {
    "base_url", "timeout", "connect_timeout", "user_agent", "max_response_size", "ca_file", "insecure", "proxy",
    "http_version", NULL
};

static int known_option(const ec_vendor *v, const char *key)
{
    for (const char *const *o = common_options; *o; o++)
        if (strcmp(*o, key) == 0)
            return 1;
    for (const char *const *o = v->credentials; *o; o++)
        if (strcmp(*o, key) == 0)
            return 1;
    for (const ec_base *b = v->bases; b && b->name; b++)
        if (strcmp(b->option, key) == 0)
            return 1;
    return v->scheme_option != NULL && strcmp(v->scheme_option, key) == 0;
}

static void check_base_url(lua_State *L, const char *vendor, const char *option, const char *url)
{
    size_t n = strlen(url);
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
        luaL_error(L, "envclone.%s: %s must start with http:// or https://", vendor, option);
    if (n > EC_MAX_BASE_URL)
        luaL_error(L, "envclone.%s: %s is longer than %d bytes", vendor, option, EC_MAX_BASE_URL);
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7F || *p == '?' || *p == '#')
            luaL_error(L, "envclone.%s: %s must not contain spaces, control characters, '?' or '#'", vendor, option);
    /* user:password@host would be a credential outside envclone's secret
     * handling (printed by tostring, sent on every request) */
    const char *authority = strstr(url, "://") + 3;
    size_t alen = strcspn(authority, "/");
    if (memchr(authority, '@', alen) != NULL)
        luaL_error(L, "envclone.%s: %s must not contain user information (user:password@); "
                      "pass credentials as options", vendor, option);
    /* host, and port when given: every transport splits the URL the same
     * way (ec_request.c), so it must be well-formed here, once */
    const char *port = NULL;
    size_t hlen = alen;
    if (authority[0] == '[') {
        const char *rb = memchr(authority, ']', alen);
        if (rb == NULL || rb == authority + 1)
            luaL_error(L, "envclone.%s: %s has a malformed IPv6 host", vendor, option);
        hlen = (size_t)(rb + 1 - authority);
        if (hlen < alen && authority[hlen] != ':')
            luaL_error(L, "envclone.%s: %s has a malformed IPv6 host", vendor, option);
    } else {
        const char *colon = memchr(authority, ':', alen);
        if (colon)
            hlen = (size_t)(colon - authority);
    }
    if (hlen < alen)
        port = authority + hlen + 1;
    if (hlen == 0)
        luaL_error(L, "envclone.%s: %s has no host", vendor, option);
    if (port) {
        size_t plen = (size_t)(authority + alen - port);
        long v = 0;
        for (size_t i = 0; i < plen; i++) {
            if (port[i] < '0' || port[i] > '9' || v > 65535)
                luaL_error(L, "envclone.%s: %s has an invalid port", vendor, option);
            v = v * 10 + (port[i] - '0');
        }
        if (plen == 0 || v < 1 || v > 65535)
            luaL_error(L, "envclone.%s: %s has an invalid port", vendor, option);
    }
}

/* A checked copy of url without trailing slashes, owned by the caller. */
static char *dup_base_url(lua_State *L, const char *vendor, const char *option, const char *url)
{
    check_base_url(L, vendor, option, url);
    char *copy = dup_string(L, url);
    size_t n = strlen(copy);
    while (n > 0 && copy[n - 1] == '/')
        copy[--n] = '\0';
    return copy;
}

/* A sibling root of base_url: base_url read as a directory ("/api/v2/"),
 * with a reference made of "../" segments and a path resolved against it
 * as RFC 3986 §5.2 does ("../connect/v1alpha1" -> "/api/connect/v1alpha1"). */
static char *resolve_base(lua_State *L, const char *vendor, const char *option, const char *base, const char *rel)
{
    char buf[EC_MAX_BASE_URL + 256];
    size_t n = strlen(base);
    size_t root = (size_t)(strstr(base, "://") + 3 - base);
    root += strcspn(base + root, "/");
    if (n >= sizeof buf)
        luaL_error(L, "envclone.%s: base_url is too long", vendor);
    memcpy(buf, base, n + 1);
    for (; strncmp(rel, "../", 3) == 0; rel += 3) {
        while (n > root && buf[n - 1] != '/')
            n--;
        if (n > root)
            n--;
    }
    snprintf(buf + n, sizeof buf - n, "/%s", rel);
    return dup_base_url(L, vendor, option, buf);
}

/* proxy = "http://host:port" or "env".  A proxy must never see a
 * credential: requests go through it only inside a CONNECT tunnel carrying
 * TLS, so every API root must be https. */
static void check_proxy(lua_State *L, const char *vendor, ec_client *c, const char *proxy)
{
    if (proxy == NULL)
        return;
    if (strcmp(proxy, "env") != 0) {
        if (strncasecmp(proxy, "http://", 7) != 0)
            luaL_error(L, "envclone.%s: option 'proxy' must be \"http://host:port\" or \"env\"", vendor);
        check_base_url(L, vendor, "proxy", proxy);
        /* a path would be ignored by libcurl, and means a typo */
        const char *path = strchr(proxy + 7, '/');
        if (path != NULL && path[1] != '\0')
            luaL_error(L, "envclone.%s: option 'proxy' must be \"http://host:port\" (no path)", vendor);
    }
    const char *roots[1 + EC_MAX_BASES] = { c->base_url };
    for (int i = 0; i < EC_MAX_BASES; i++)
        roots[1 + i] = c->bases[i];
    for (int i = 0; i < 1 + EC_MAX_BASES; i++)
        if (roots[i] && strncasecmp(roots[i], "https://", 8) != 0)
            luaL_error(L, "envclone.%s: a proxy would see the credential of a plain-http request to %s: "
                          "use https, or no proxy", vendor, roots[i]);
    c->settings.proxy = dup_string(L, proxy);
}

/* core.client(vendor, opts) -> client userdata */
static int l_client(lua_State *L)
{
    const char *vname = luaL_checkstring(L, 1);
    const ec_vendor *vendor = ec_vendor_find(vname);
    if (vendor == NULL)
        return luaL_error(L, "envclone: unknown vendor '%s'", vname);
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    luaL_checktype(L, 2, LUA_TTABLE);

    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING || !known_option(vendor, lua_tostring(L, -1)))
            return luaL_error(L, "envclone.%s: unknown option '%s'", vname,
                              lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1));
    }

    client_box *box = lua_newuserdata(L, sizeof *box);
    box->c = NULL;
    luaL_getmetatable(L, EC_CLIENT_MT);
    lua_setmetatable(L, -2);
    ec_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return luaL_error(L, "envclone: out of memory");
    box->c = c; /* from here on, __gc frees whatever exists if an option raises */
    static unsigned long next_id = 0;
    c->settings.id = ++next_id;
    c->refs = 1;
    c->boxed = 1;
    c->vendor = vendor;

    for (int i = 0; vendor->credentials[i] && i < EC_MAX_SECRETS; i++) {
        const char *name = vendor->credentials[i];
        const char *s = opt_string(L, 2, vname, name);
        if (s == NULL)
            continue;
        /* never echo the value: it is a secret */
        if (*s == '\0' || !header_safe(s))
            return luaL_error(L, "envclone.%s: option '%s' must be non-empty and free of control characters",
                              vname, name);
        /* a shorter value could not be told from ordinary words when it is
         * masked in messages and bodies (ec_mask.h); no real credential is */
        if (strlen(s) < EC_MASK_MIN_SECRET || strlen(s) > EC_MASK_MAX_SECRET)
            return luaL_error(L, "envclone.%s: option '%s' must be %d to %d characters long", vname, name,
                              EC_MASK_MIN_SECRET, EC_MASK_MAX_SECRET);
        c->secrets[i] = dup_string(L, s);
    }
    const char *base = opt_string(L, 2, vname, "base_url");
    c->base_url = dup_base_url(L, vname, "base_url", base ? base : vendor->default_base_url);
    /* A vendor's further API roots: their own option, else (base_url given:
     * a proxy, staging or the emulator) a sibling of base_url, else the
     * vendor's default. */
    for (int i = 0; vendor->bases && vendor->bases[i].name && i < EC_MAX_BASES; i++) {
        const ec_base *b = &vendor->bases[i];
        const char *own = opt_string(L, 2, vname, b->option);
        if (own)
            c->bases[i] = dup_base_url(L, vname, b->option, own);
        else if (base)
            c->bases[i] = resolve_base(L, vname, b->option, c->base_url, b->relative);
        else
            c->bases[i] = dup_base_url(L, vname, b->option, b->url);
    }
    if (vendor->scheme_option) {
        const char *t = opt_string(L, 2, vname, vendor->scheme_option);
        if (t && strcmp(t, "Token") == 0)
            c->scheme_override = EC_AUTH_TOKEN;
        else if (t && strcmp(t, "Bearer") == 0)
            c->scheme_override = EC_AUTH_BEARER;
        else if (t)
            return luaL_error(L, "envclone.%s: option '%s' must be \"Token\" or \"Bearer\"", vname,
                              vendor->scheme_option);
    }

    const char *ua = opt_string(L, 2, vname, "user_agent");
    if (ua && !header_safe(ua))
        return luaL_error(L, "envclone.%s: option 'user_agent' must not contain control characters", vname);
    c->user_agent = dup_string(L, ua ? ua : "envclone/" EC_VERSION);
    const char *ca = opt_string(L, 2, vname, "ca_file");
    if (ca)
        c->settings.ca_file = dup_string(L, ca);

    c->settings.timeout_ms = (long)(opt_seconds(L, 2, vname, "timeout", EC_DEFAULT_TIMEOUT_MS / 1000.0) * 1000);
    c->settings.connect_timeout_ms =
        (long)(opt_seconds(L, 2, vname, "connect_timeout", EC_DEFAULT_CONNECT_TIMEOUT_MS / 1000.0) * 1000);
    if (c->settings.timeout_ms < 1)
        c->settings.timeout_ms = 1;
    if (c->settings.connect_timeout_ms < 1)
        c->settings.connect_timeout_ms = 1;

    lua_getfield(L, 2, "max_response_size");
    c->settings.max_response_size = EC_DEFAULT_MAX_RESPONSE;
    if (!lua_isnil(L, -1)) {
        /* written so that NaN fails too (it compares false both ways) */
        if (lua_type(L, -1) != LUA_TNUMBER || !(lua_tonumber(L, -1) >= 1 && lua_tonumber(L, -1) <= 1024.0 * 1024 * 1024))
            return luaL_error(L, "envclone.%s: option 'max_response_size' must be a number of bytes (1 to 1 GiB)",
                              vname);
        c->settings.max_response_size = (size_t)lua_tonumber(L, -1);
    }
    lua_pop(L, 1);

    lua_getfield(L, 2, "insecure");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
        return luaL_error(L, "envclone.%s: option 'insecure' must be a boolean", vname);
    c->settings.insecure = lua_toboolean(L, -1);
    lua_pop(L, 1);

    check_proxy(L, vname, c, opt_string(L, 2, vname, "proxy"));

    const char *hv = opt_string(L, 2, vname, "http_version");
    if (hv == NULL || strcmp(hv, "auto") == 0)
        c->settings.http_version = EC_HTTP_AUTO;
    else if (strcmp(hv, "1.1") == 0)
        c->settings.http_version = EC_HTTP_1_1;
    else if (strcmp(hv, "2") == 0)
        c->settings.http_version = EC_HTTP_2;
    else
        return luaL_error(L, "envclone.%s: option 'http_version' must be \"auto\", \"1.1\" or \"2\"", vname);

    /* the libcurl handle is made on the first call: requiring envclone and
     * building clients costs no libcurl set-up */
    return 1;
}

static int l_client_close(lua_State *L)
{
    client_box *box = luaL_checkudata(L, 1, EC_CLIENT_MT);
    if (box->c)
        client_close(box->c);
    return 0;
}

static int l_client_gc(lua_State *L)
{
    client_box *box = luaL_checkudata(L, 1, EC_CLIENT_MT);
    if (box->c) {
        ec_client *c = box->c;
        box->c = NULL;
        c->boxed = 0;
        ec_client_unref(c);
    }
    return 0;
}

static int l_client_tostring(lua_State *L)
{
    ec_client *c = to_client(L, 1);
    if (c->closed) {
        lua_pushfstring(L, "envclone.%s client (closed)", c->vendor->name);
        return 1;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "envclone.");
    luaL_addstring(&b, c->vendor->name);
    luaL_addstring(&b, " client (");
    luaL_addstring(&b, c->base_url);
    for (int i = 0; c->vendor->credentials[i] && i < EC_MAX_SECRETS; i++) {
        luaL_addstring(&b, ", ");
        luaL_addstring(&b, c->vendor->credentials[i]);
        luaL_addstring(&b, c->secrets[i] ? "=***" : "=unset");
    }
    luaL_addchar(&b, ')');
    luaL_pushresult(&b);
    return 1;
}

static int l_client_vendor(lua_State *L)
{
    ec_client *c = to_client(L, 1);
    lua_pushstring(L, c->vendor->name);
    lua_pushstring(L, c->closed ? NULL : c->base_url);
    return 2;
}

/* client:settings() -> the non-secret settings, for transports written in
 * Lua (they need the timeouts and TLS choices; never the credentials). */
static int l_client_settings(lua_State *L)
{
    ec_client *c = check_client(L, 1);
    lua_createtable(L, 0, 8);
    lua_pushstring(L, c->vendor->name);
    lua_setfield(L, -2, "vendor");
    lua_pushstring(L, c->base_url);
    lua_setfield(L, -2, "base_url");
    lua_pushnumber(L, (lua_Number)c->settings.timeout_ms / 1000.0);
    lua_setfield(L, -2, "timeout");
    lua_pushnumber(L, (lua_Number)c->settings.connect_timeout_ms / 1000.0);
    lua_setfield(L, -2, "connect_timeout");
    lua_pushnumber(L, (lua_Number)c->settings.max_response_size);
    lua_setfield(L, -2, "max_response_size");
    lua_pushboolean(L, c->settings.insecure);
    lua_setfield(L, -2, "insecure");
    if (c->settings.ca_file) {
        lua_pushstring(L, c->settings.ca_file);
        lua_setfield(L, -2, "ca_file");
    }
    lua_pushstring(L, c->user_agent);
    lua_setfield(L, -2, "user_agent");
    lua_pushstring(L, ec_client_http_version(c));
    lua_setfield(L, -2, "http_version");
    return 1;
}

static void check_op_for(lua_State *L, const ec_op *op, const ec_client *c)
{
    if (strcmp(c->vendor->name, op->vendor) != 0)
        luaL_error(L, "envclone: %s.%s called on a %s client", op->vendor, op->name, c->vendor->name);
}

/* op.request(client, args) -> request | nil, err (validation): a request
 * for any transport (see ec_request.h). */
static int l_op_request(lua_State *L)
{
    const ec_op *op = lua_touserdata(L, lua_upvalueindex(1));
    ec_client *c = check_client(L, 1);
    check_op_for(L, op, c);
    return ec_request_push_new(L, c, op, 2);
}

/* op.call(client, args[, defer]) -> result | nil, err[, request]: a
 * request sent once over the client's libcurl handle, in one C call (the
 * sequential path).  After a failed exchange the request comes third, so a
 * retry sends it again without building it anew.  `defer`: a set of
 * argument names the caller handles itself; with it, nothing at all comes
 * back (and nothing is sent) when args hold one of them or the call runs in
 * a coroutine. */
static int l_op_call(lua_State *L)
{
    const ec_op *op = lua_touserdata(L, lua_upvalueindex(1));
    ec_client *c = check_client(L, 1);
    check_op_for(L, op, c);
    lua_settop(L, 3);
    int defer = 0;
    if (!lua_isnil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        defer = 3;
    }
    return ec_request_call(L, c, op, 2, defer);
}

/* op.start(multi, client, args, id[, defer]) -> true | nil, err | nothing:
 * one call put on a batch's multi handle with no request object (see
 * ec_multi.h); `defer` as for op.call; nothing also when the client is
 * closed or args is not a table. */
static int l_op_start(lua_State *L)
{
    ec_multi *mu = ec_multi_check(L, 1);
    const ec_op *op = lua_touserdata(L, lua_upvalueindex(1));
    ec_client *c = to_client(L, 2);
    check_op_for(L, op, c);
    lua_Integer id = luaL_checkinteger(L, 4);
    /* m:drain finds a call's item at 4 * id */
    luaL_argcheck(L, id >= 1 && id <= LUA_MAXINTEGER / 4, 4, "an id from 1 to maxinteger / 4");
    lua_settop(L, 5);
    int defer = 0;
    if (!lua_isnil(L, 5)) {
        luaL_checktype(L, 5, LUA_TTABLE);
        defer = 5;
    }
    return ec_multi_start(L, mu, c, op, 3, id, defer);
}

const ec_op *ec_op_of_start(lua_State *L, int idx)
{
    if (lua_tocfunction(L, idx) != l_op_start || lua_getupvalue(L, idx, 1) == NULL)
        return NULL;
    const ec_op *op = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return op;
}

ec_client *ec_client_test(lua_State *L, int idx)
{
    client_box *box = luaL_testudata(L, idx, EC_CLIENT_MT);
    return box != NULL ? box->c : NULL;
}

/* core.request(client, opname, args) -> request | nil, err */
static int l_request(lua_State *L)
{
    ec_client *c = check_client(L, 1);
    const char *name = luaL_checkstring(L, 2);
    const ec_op *op = ec_op_find(c->vendor->name, name);
    if (op == NULL)
        return luaL_error(L, "envclone: %s has no operation '%s'", c->vendor->name, name);
    return ec_request_push_new(L, c, op, 3);
}

static void push_field(lua_State *L, const ec_field *f)
{
    static const char *const where[] = { "body", "path", "header" };
    lua_createtable(L, 0, 8);
    lua_pushstring(L, f->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, where[f->in]);
    lua_setfield(L, -2, "in");
    lua_pushstring(L, ec_type_name(f->type));
    lua_setfield(L, -2, "type");
    lua_pushboolean(L, f->required);
    lua_setfield(L, -2, "required");
    ec_setfield_string(L, "wire", f->wire);
    ec_setfield_string(L, "description", f->description);
    if (f->charset)
        ec_setfield_string(L, "charset", f->charset->name);
    if (f->format != EC_FMT_NONE || f->item_format != EC_FMT_NONE) {
        lua_pushstring(L, ec_format_name(f->format != EC_FMT_NONE ? f->format : f->item_format));
        lua_setfield(L, -2, "format");
    }
    /* the limits the validator applies, so tests and docs can read them */
    if (f->type == EC_T_STRING) {
        lua_pushinteger(L, (lua_Integer)f->min_len);
        lua_setfield(L, -2, "min_len");
        lua_pushinteger(L, (lua_Integer)(f->max_len ? f->max_len : EC_DEFAULT_MAX_LEN));
        lua_setfield(L, -2, "max_len");
    } else if (f->type == EC_T_STRING_ARRAY) {
        lua_pushinteger(L, EC_MAX_ARRAY_ITEMS);
        lua_setfield(L, -2, "max_items");
    } else if (f->type == EC_T_FREE_OBJECT) {
        lua_pushinteger(L, EC_MAX_NESTING);
        lua_setfield(L, -2, "max_depth");
    }
    if (f->reserved) {
        lua_newtable(L);
        for (int i = 0; f->reserved[i]; i++) {
            lua_pushstring(L, f->reserved[i]);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, "reserved");
    }
    if (f->children) {
        lua_newtable(L);
        int n = 0;
        for (const ec_field *c = f->children; c->name; c++) {
            push_field(L, c);
            lua_rawseti(L, -2, ++n);
        }
        lua_setfield(L, -2, "members");
    }
}

/* core.operations: a read-only description of the table, for the Lua layer
 * (method generation, retry rules) and for docs. */
static void push_operations(lua_State *L)
{
    lua_createtable(L, (int)ec_ops_count, 0);
    for (size_t i = 0; i < ec_ops_count; i++) {
        const ec_op *op = &ec_ops[i];
        lua_createtable(L, 0, 8);
        lua_pushstring(L, op->vendor);
        lua_setfield(L, -2, "vendor");
        lua_pushstring(L, op->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, op->method);
        lua_setfield(L, -2, "method");
        lua_pushstring(L, op->path);
        lua_setfield(L, -2, "path");
        lua_pushboolean(L, op->creates);
        lua_setfield(L, -2, "creates");
        /* credential: the first (preferred) one; credentials: all, in order */
        lua_pushstring(L, op->auth[0].credential);
        lua_setfield(L, -2, "credential");
        lua_newtable(L);
        for (int k = 0; k < EC_MAX_AUTH_WAYS && op->auth[k].credential; k++) {
            lua_createtable(L, 0, 2);
            lua_pushstring(L, op->auth[k].credential);
            lua_setfield(L, -2, "credential");
            lua_pushstring(L, ec_auth_name(op->auth[k].scheme));
            lua_setfield(L, -2, "scheme");
            lua_rawseti(L, -2, k + 1);
        }
        lua_setfield(L, -2, "auth");
        lua_newtable(L);
        for (int k = 0; k < EC_MAX_STATUSES && op->success[k]; k++) {
            lua_pushinteger(L, op->success[k]);
            lua_rawseti(L, -2, k + 1);
        }
        lua_setfield(L, -2, "success");
        ec_setfield_string(L, "base", op->base);
        ec_setfield_string(L, "summary", op->summary);
        ec_setfield_string(L, "page", op->page);
        ec_setfield_string(L, "applied_reason", op->applied_reason);
        if (op->waiter) {
            const ec_waiter *w = op->waiter;
            lua_createtable(L, 0, 10);
            ec_setfield_string(L, "name", w->name);
            ec_setfield_string(L, "poll", w->poll);
            ec_setfield_string(L, "id_arg", w->id_arg);
            ec_setfield_string(L, "id_result", w->id_result);
            ec_setfield_string(L, "state_field", w->state_field);
            ec_setfield_string(L, "done", w->done);
            ec_setfield_string(L, "failed", w->failed);
            ec_setfield_string(L, "pending", w->pending);
            ec_setfield_string(L, "failed_message", w->failed_message);
            if (w->not_yet_status) {
                lua_pushinteger(L, w->not_yet_status);
                lua_setfield(L, -2, "not_yet_status");
            }
            lua_setfield(L, -2, "waiter");
        }
        lua_newtable(L);
        int n = 0;
        for (const ec_field *f = op->fields; f->name; f++) {
            push_field(L, f);
            lua_rawseti(L, -2, ++n);
        }
        lua_setfield(L, -2, "fields");
        lua_pushlightuserdata(L, (void *)op);
        lua_pushcclosure(L, l_op_call, 1);
        lua_setfield(L, -2, "call");
        lua_pushlightuserdata(L, (void *)op);
        lua_pushcclosure(L, l_op_request, 1);
        lua_setfield(L, -2, "request");
        lua_pushlightuserdata(L, (void *)op);
        lua_pushcclosure(L, l_op_start, 1);
        lua_setfield(L, -2, "start");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

static void push_vendors(lua_State *L)
{
    lua_createtable(L, 0, (int)ec_vendors_count);
    for (size_t i = 0; i < ec_vendors_count; i++) {
        const ec_vendor *v = &ec_vendors[i];
        lua_createtable(L, 0, 2);
        lua_pushstring(L, v->default_base_url);
        lua_setfield(L, -2, "base_url");
        lua_newtable(L);
        for (int k = 0; v->credentials[k]; k++) {
            lua_pushstring(L, v->credentials[k]);
            lua_rawseti(L, -2, k + 1);
        }
        lua_setfield(L, -2, "credentials");
        lua_newtable(L);
        for (int k = 0; v->bases && v->bases[k].name; k++) {
            lua_createtable(L, 0, 2);
            lua_pushstring(L, v->bases[k].url);
            lua_setfield(L, -2, "url");
            lua_pushstring(L, v->bases[k].option);
            lua_setfield(L, -2, "option");
            lua_setfield(L, -2, v->bases[k].name);
        }
        lua_setfield(L, -2, "bases");
        if (v->scheme_option) {
            lua_pushstring(L, v->scheme_option);
            lua_setfield(L, -2, "scheme_option");
        }
        /* the documented limit, for the Lua rate limiter */
        if (v->rate_limit.key) {
            lua_createtable(L, 0, 4);
            lua_pushstring(L, v->rate_limit.key);
            lua_setfield(L, -2, "key");
            lua_pushinteger(L, v->rate_limit.per_second);
            lua_setfield(L, -2, "per_second");
            lua_pushinteger(L, v->rate_limit.per_minute);
            lua_setfield(L, -2, "per_minute");
            lua_pushinteger(L, v->rate_limit.concurrency_per_key);
            lua_setfield(L, -2, "concurrency_per_key");
            lua_setfield(L, -2, "rate_limit");
        }
        lua_setfield(L, -2, v->name);
    }
}

/* core.sleep(seconds): a blocking sleep for plain Lua; OpenResty code
 * uses ngx.sleep instead (see envclone.runtime). */
static int l_sleep(lua_State *L)
{
    lua_Number secs = luaL_checknumber(L, 1);
    if (!(secs > 0))
        return 0;
    if (secs > 86400)
        secs = 86400;
    struct timespec ts;
    ts.tv_sec = (time_t)secs;
    ts.tv_nsec = (long)((secs - (lua_Number)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    return 0;
}

/* core.now(): monotonic seconds, for timeouts that survive clock changes. */
static int l_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)ec_now());
    return 1;
}

/* core.transport_version() -> "libcurl/7.88.1 OpenSSL/3.0.x ...": a
 * function, so that require does not initialise libcurl. */
static int l_transport_version(lua_State *L)
{
    lua_pushstring(L, ec_curl_version());
    return 1;
}

static const luaL_Reg client_methods[] = {
    { "close", l_client_close },
    { "vendor", l_client_vendor },
    { "settings", l_client_settings },
    { NULL, NULL }
};

static const luaL_Reg core_functions[] = {
    { "client", l_client },
    { "multi", ec_multi_new },
    { "request", l_request },
    { "transport_version", l_transport_version },
    { "error", ec_error_lua_new },
    { "json_decode", ec_json_lua_decode },
    { "json_encode", ec_json_lua_encode },
    { "mask", ec_mask_lua },
    { "http1_head", ec_http1_lua_new },
    { "sleep", l_sleep },
    { "now", l_now },
    { NULL, NULL }
};

/* The only exported symbol of core_impl.so (loaded by core.so: ec_loader.c). */
__attribute__((visibility("default"))) int luaopen_envclone_core_impl(lua_State *L);

int luaopen_envclone_core_impl(lua_State *L)
{
    ec_json_init(L);
    ec_error_init(L);
    ec_request_init(L);
    ec_multi_init(L);

    if (luaL_newmetatable(L, EC_CLIENT_MT)) {
        lua_pushcfunction(L, l_client_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_client_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_client_tostring);
        lua_setfield(L, -2, "__tostring");
        ec_newlib(L, client_methods);
        lua_setfield(L, -2, "__index");
        lua_pushliteral(L, "envclone.client");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);

    ec_newlib(L, core_functions);
    push_operations(L);
    lua_setfield(L, -2, "operations");
    push_vendors(L);
    lua_setfield(L, -2, "vendors");
    luaL_getmetatable(L, EC_ERROR_MT);
    lua_setfield(L, -2, "error_mt");
    ec_json_push_array_mt(L);
    lua_setfield(L, -2, "array_mt");
    lua_pushlightuserdata(L, NULL); /* the same value as cjson.null */
    lua_setfield(L, -2, "null");
    lua_pushliteral(L, EC_VERSION);
    lua_setfield(L, -2, "version");
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)EC_MAX_HEADER_BYTES);
    lua_setfield(L, -2, "max_header_bytes");
    lua_pushinteger(L, (lua_Integer)EC_MAX_HEADER_LINE);
    lua_setfield(L, -2, "max_header_line");
    lua_setfield(L, -2, "limits");
    return 1;
}
