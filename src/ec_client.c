/*
 * ec_client.c - the client (see ec_client.h): its constructor and the
 * checks of its options, its API roots, its references, closing and
 * wiping, its spare buffers and easy handle, its userdata and methods
 * (client:close, client:vendor, client:settings).
 */
#include "ec_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EC_DEFAULT_TIMEOUT_MS 30000L
#define EC_DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define EC_DEFAULT_MAX_RESPONSE ((size_t)8 * 1024 * 1024)
#define EC_MAX_BASE_URL 2048

/* ---- buffers ------------------------------------------------------------- */

void ec_reqbufs_free(ec_reqbufs *b)
{
    if (b == NULL)
        return;
    ec_message_free(&b->msg);
    ec_exchange_free(&b->ex);
    free(b);
}

ec_reqbufs *ec_reqbufs_new(void)
{
    ec_reqbufs *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    ec_message_init(&b->msg);
    ec_exchange_init(&b->ex);
    return b;
}

static void free_spare(ec_client *c)
{
    ec_reqbufs_free(c->spare);
    c->spare = NULL;
}

ec_easy *ec_client_easy_new(lua_State *L, ec_client *c)
{
    if ((c->easy = ec_easy_new()) == NULL)
        luaL_error(L, "envclone: could not create a libcurl handle");
    return c->easy;
}

/* ---- references, closing, wiping ----------------------------------------- */

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
    free_spare(c);
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
    free(c->base.url);
    for (int i = 0; i < EC_MAX_BASES; i++) {
        free(c->bases[i].url);
        c->bases[i].url = NULL;
    }
    for (int i = 0; i < EC_MAX_SETTINGS; i++)
        free(c->options[i]);
    free(c->user_agent);
    free(c->settings.ca_file);
    free(c->settings.proxy);
    free(c);
}

/* ---- what requests read --------------------------------------------------- */

const char *ec_client_secret(const ec_client *c, const char *name)
{
    if (c->closed) /* what a closed client still holds only masks (ec_client.h) */
        return NULL;
    const char *const *creds = c->vendor->credentials;
    for (int i = 0; creds[i] && i < EC_MAX_SECRETS; i++)
        if (strcmp(creds[i], name) == 0)
            return c->secrets[i];
    return NULL;
}

const char *ec_client_option(const ec_client *c, const char *name)
{
    for (int i = 0; c->vendor->settings && c->vendor->settings[i].name && i < EC_MAX_SETTINGS; i++)
        if (strcmp(c->vendor->settings[i].name, name) == 0)
            return c->options[i];
    return NULL;
}

const char *ec_client_http_version(const ec_client *c)
{
    return c->settings.http_version == EC_HTTP_1_1 ? "1.1" : c->settings.http_version == EC_HTTP_2 ? "2" : "auto";
}

const ec_root *ec_client_root(const ec_client *c, const ec_op *op)
{
    if (op->base != NULL && c->vendor->bases != NULL)
        for (int i = 0; c->vendor->bases[i].name && i < EC_MAX_BASES; i++)
            if (strcmp(c->vendor->bases[i].name, op->base) == 0 && c->bases[i].url != NULL)
                return &c->bases[i];
    return &c->base;
}

const char *ec_client_base(const ec_client *c, const ec_op *op)
{
    return ec_client_root(c, op)->url;
}

/* A JWT is three base64url segments joined by dots (RFC 7519 §7.2, JWS
 * compact serialisation); an opaque API token such as qov_... is not. */
static int is_jwt(const char *s)
{
    int dots = 0;
    size_t seg = 0;
    for (; *s; s++) {
        if (*s == '.') {
            if (seg == 0)
                return 0;
            dots++;
            seg = 0;
        } else if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'
                   || *s == '_' || *s == '=') {
            seg++;
        } else {
            return 0;
        }
    }
    return dots == 2 && seg > 0;
}

ec_auth ec_client_scheme(const ec_client *c, ec_auth scheme, const char *secret)
{
    if (scheme != EC_AUTH_TOKEN_OR_JWT)
        return scheme;
    if (c->scheme_override != EC_AUTH_UNSET)
        return c->scheme_override;
    return is_jwt(secret) ? EC_AUTH_BEARER : EC_AUTH_TOKEN;
}

/* ---- the userdata and its constructor ------------------------------------ */

/* The Lua userdata is a box holding the client: requests share it. */
typedef struct {
    ec_client *c;
} client_box;

ec_client *ec_client_arg(lua_State *L, int idx)
{
    client_box *box = luaL_checkudata(L, idx, EC_CLIENT_MT);
    if (box->c == NULL)
        luaL_error(L, "envclone: the client is being built");
    return box->c;
}

ec_client *ec_client_check(lua_State *L, int idx)
{
    ec_client *c = ec_client_arg(L, idx);
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
    for (const ec_setting *o = v->settings; o && o->name; o++)
        if (strcmp(o->name, key) == 0)
            return 1;
    return v->scheme_option != NULL && strcmp(v->scheme_option, key) == 0;
}

/* Checks url (base_url, a vendor's other roots, the proxy) and splits it
 * into out (out->url is left alone): the one place the C core reads a URL.
 * Requests are split by their root (ec_client_root), never parsed again. */
static void parse_url(lua_State *L, const char *vendor, const char *option, const char *url, ec_root *out)
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
    /* host, and port when given: every transport reads them from here
     * (req.host, req.port, the Host header), so they must be well-formed */
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
    long v = 0;
    if (port) {
        size_t plen = (size_t)(authority + alen - port);
        for (size_t i = 0; i < plen; i++) {
            if (port[i] < '0' || port[i] > '9' || v > 65535)
                luaL_error(L, "envclone.%s: %s has an invalid port", vendor, option);
            v = v * 10 + (port[i] - '0');
        }
        if (plen == 0 || v < 1 || v > 65535)
            luaL_error(L, "envclone.%s: %s has an invalid port", vendor, option);
    }
    out->tls = strncasecmp(url, "https://", 8) == 0;
    out->host = (size_t)(authority - url);
    out->host_len = hlen;
    out->port = port ? v : (out->tls ? 443 : 80);
    out->default_port = out->port == (out->tls ? 443 : 80);
    out->path = (size_t)(authority + alen - url);
}

/* out: a checked copy of url without trailing slashes (owned by the
 * client), split.  The slashes go after the split: they follow the
 * authority, so its offsets stay right. */
static void make_root(lua_State *L, const char *vendor, const char *option, const char *url, ec_root *out)
{
    parse_url(L, vendor, option, url, out);
    char *copy = dup_string(L, url);
    size_t n = strlen(copy);
    while (n > 0 && copy[n - 1] == '/')
        copy[--n] = '\0';
    out->url = copy;
}

/* A sibling root of base_url: base_url read as a directory ("/api/v2/"),
 * with a reference made of "../" segments and a path resolved against it
 * as RFC 3986 §5.2 does ("../connect/v1alpha1" -> "/api/connect/v1alpha1"). */
static void resolve_base(lua_State *L, const char *vendor, const char *option, const ec_root *base, const char *rel,
                         ec_root *out)
{
    char buf[EC_MAX_BASE_URL + 256];
    size_t n = strlen(base->url);
    size_t root = base->path; /* the path's "../" stop at the authority */
    if (n >= sizeof buf)
        luaL_error(L, "envclone.%s: base_url is too long", vendor);
    memcpy(buf, base->url, n + 1);
    for (; strncmp(rel, "../", 3) == 0; rel += 3) {
        while (n > root && buf[n - 1] != '/')
            n--;
        if (n > root)
            n--;
    }
    snprintf(buf + n, sizeof buf - n, "/%s", rel);
    make_root(L, vendor, option, buf, out);
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
        ec_root parts;
        parse_url(L, vendor, "proxy", proxy, &parts);
        /* a path would be ignored by libcurl, and means a typo */
        const char *path = proxy + parts.path;
        if (*path == '/' && path[1] != '\0')
            luaL_error(L, "envclone.%s: option 'proxy' must be \"http://host:port\" (no path)", vendor);
    }
    const ec_root *roots[1 + EC_MAX_BASES] = { &c->base };
    for (int i = 0; i < EC_MAX_BASES; i++)
        roots[1 + i] = &c->bases[i];
    for (int i = 0; i < 1 + EC_MAX_BASES; i++)
        if (roots[i]->url && !roots[i]->tls)
            luaL_error(L, "envclone.%s: a proxy would see the credential of a plain-http request to %s: "
                          "use https, or no proxy", vendor, roots[i]->url);
    c->settings.proxy = dup_string(L, proxy);
}

/* core.client(vendor, opts) -> client userdata */
int ec_client_lua_new(lua_State *L)
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
        if (strlen(s) < EC_SECRET_MIN || strlen(s) > EC_SECRET_MAX)
            return luaL_error(L, "envclone.%s: option '%s' must be %d to %d characters long", vname, name,
                              EC_SECRET_MIN, EC_SECRET_MAX);
        c->secrets[i] = dup_string(L, s);
    }
    /* the vendor's non-secret settings (Kontent's subscription_id), checked
     * by their format: a wrong one raises now, not on the first call */
    for (int i = 0; vendor->settings && vendor->settings[i].name && i < EC_MAX_SETTINGS; i++) {
        const ec_setting *o = &vendor->settings[i];
        const char *s = opt_string(L, 2, vname, o->name);
        if (s == NULL)
            continue;
        if (!ec_format_ok(o->format, s, strlen(s)) || !header_safe(s) || *s == '\0')
            return luaL_error(L, "envclone.%s: option '%s' must be %s", vname, o->name, ec_format_name(o->format));
        c->options[i] = dup_string(L, s);
    }
    const char *base = opt_string(L, 2, vname, "base_url");
    make_root(L, vname, "base_url", base ? base : vendor->default_base_url, &c->base);
    /* A vendor's further API roots: their own option, else (base_url given:
     * a proxy, staging or the emulator) a sibling of base_url, else the
     * vendor's default. */
    for (int i = 0; vendor->bases && vendor->bases[i].name && i < EC_MAX_BASES; i++) {
        const ec_base *b = &vendor->bases[i];
        const char *own = opt_string(L, 2, vname, b->option);
        if (own)
            make_root(L, vname, b->option, own, &c->bases[i]);
        else if (base)
            resolve_base(L, vname, b->option, &c->base, b->relative, &c->bases[i]);
        else
            make_root(L, vname, b->option, b->url, &c->bases[i]);
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
    ec_client *c = ec_client_arg(L, 1);
    if (c->closed) {
        lua_pushfstring(L, "envclone.%s client (closed)", c->vendor->name);
        return 1;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "envclone.");
    luaL_addstring(&b, c->vendor->name);
    luaL_addstring(&b, " client (");
    luaL_addstring(&b, c->base.url);
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
    ec_client *c = ec_client_arg(L, 1);
    lua_pushstring(L, c->vendor->name);
    lua_pushstring(L, c->closed ? NULL : c->base.url);
    return 2;
}

/* client:settings() -> the non-secret settings, for transports written in
 * Lua (they need the timeouts and TLS choices; never the credentials). */
static int l_client_settings(lua_State *L)
{
    ec_client *c = ec_client_check(L, 1);
    lua_createtable(L, 0, 8);
    lua_pushstring(L, c->vendor->name);
    lua_setfield(L, -2, "vendor");
    lua_pushstring(L, c->base.url);
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
    for (int i = 0; c->vendor->settings && c->vendor->settings[i].name && i < EC_MAX_SETTINGS; i++) {
        if (c->options[i]) {
            lua_pushstring(L, c->options[i]);
            lua_setfield(L, -2, c->vendor->settings[i].name);
        }
    }
    /* which credentials the client holds (names only: a read that needs
     * another one, such as Kontent's subscription_api_key, can tell) */
    lua_newtable(L);
    for (int i = 0; c->vendor->credentials[i] && i < EC_MAX_SECRETS; i++) {
        if (c->secrets[i]) {
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, c->vendor->credentials[i]);
        }
    }
    lua_setfield(L, -2, "credentials_held");
    return 1;
}

ec_client *ec_client_test(lua_State *L, int idx)
{
    client_box *box = ec_testudata(L, idx, EC_CLIENT_MT);
    return box != NULL ? box->c : NULL;
}

static const luaL_Reg client_methods[] = {
    { "close", l_client_close },
    { "vendor", l_client_vendor },
    { "settings", l_client_settings },
    { NULL, NULL }
};

void ec_client_init(lua_State *L)
{
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
}
