/*
 * ec_request.c - the request object (see ec_request.h): one call of one
 * operation, its exchanges over the client's libcurl handle, and its Lua
 * face for transports written in Lua.
 */
#include "ec_request.h"
#include "ec_curl.h"
#include "ec_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- buffers ------------------------------------------------------------- */

static ec_reqbufs *bufs_take(ec_client *c)
{
    ec_reqbufs *b = c->spare;
    if (b != NULL) {
        c->spare = NULL;
        return b; /* cleared by ec_marshal_request */
    }
    return ec_reqbufs_new();
}

void ec_request_release(ec_request *r)
{
    ec_reqbufs *b = r->b;
    ec_client *c = r->client;
    r->b = NULL;
    r->client = NULL;
    if (b != NULL) {
        ec_exchange_trim(&b->ex);
        if (c != NULL && !c->closed && c->spare == NULL)
            c->spare = b;
        else
            ec_reqbufs_free(b);
    }
    if (c != NULL)
        ec_client_unref(c);
}

ec_reqbufs *ec_request_end_kept(ec_request *r)
{
    ec_reqbufs *b = r->b;
    r->b = NULL;
    if (b != NULL) {
        ec_exchange_trim(&b->ex);
        /* they hold the client's credential (headers, libcurl's list):
         * once the client is closed they are wiped, not kept */
        if (r->client == NULL || r->client->closed) {
            ec_reqbufs_free(b);
            b = NULL;
        }
    }
    ec_request_release(r);
    return b;
}

/* ---- the transport-error constructor ------------------------------------- */

int ec_request_push_transport_error(lua_State *L, const ec_request *r, const ec_transport_error *te)
{
    return ec_parse_transport_error(L, r->client, r->op, te);
}

static int push_parsed(lua_State *L, const ec_request *r, const ec_response *resp)
{
    return ec_parse_response(L, r->client, r->op, resp);
}

/* ---- exchanges over libcurl ---------------------------------------------- */

int ec_request_finish(lua_State *L, ec_easy *e, ec_request *r, int rc)
{
    ec_response resp = { 0 };
    ec_transport_error te;
    if (ec_curl_finish(e, &r->b->ex, rc, &resp, &te) != 0)
        return ec_request_push_transport_error(L, r, &te);
    return push_parsed(L, r, &resp);
}

/* The answer unparsed, as a transport written in Lua hands it to
 * req:parse: a table {status, headers, body} (headers: the captured ones,
 * lower-case names). */
static void push_response(lua_State *L, const ec_response *resp)
{
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)resp->status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, resp->body, resp->body_len);
    lua_setfield(L, -2, "body");
    lua_createtable(L, 0, 4);
    ec_setfield_string(L, "content-type", resp->content_type);
    ec_setfield_string(L, "retry-after", resp->retry_after);
    ec_setfield_string(L, "x-request-id", resp->request_id);
    ec_setfield_string(L, "location", resp->location);
    lua_setfield(L, -2, "headers");
}

/* One blocking exchange of r on e: pushes the result (raw: the response
 * table), or nil and the transport error; returns how many. */
static int perform(lua_State *L, ec_easy *e, ec_request *r, int raw)
{
    ec_response resp = { 0 };
    ec_transport_error te;
    if (ec_curl_perform(e, &r->client->settings, &r->policy, &r->b->msg, &r->b->ex, &resp, &te) != 0)
        return ec_request_push_transport_error(L, r, &te);
    if (!raw)
        return push_parsed(L, r, &resp);
    push_response(L, &resp);
    return 1;
}

/* ---- Lua ------------------------------------------------------------------ */

ec_request *ec_request_check(lua_State *L, int idx)
{
    ec_request *r = luaL_checkudata(L, idx, EC_REQUEST_MT);
    if (r->b == NULL)
        luaL_error(L, "envclone: this %s.%s request is finished (made again per call)", r->op->vendor, r->op->name);
    if (r->client->closed)
        luaL_error(L, "envclone: the %s client is closed", r->op->vendor);
    return r;
}

int ec_request_push_new(lua_State *L, ec_client *c, const ec_op *op, int args)
{
    args = lua_absindex(L, args);
    ec_request *r = lua_newuserdata(L, sizeof *r);
    memset(r, 0, sizeof *r);
    luaL_getmetatable(L, EC_REQUEST_MT);
    lua_setmetatable(L, -2);
    r->op = op;
    r->policy = ec_policy_of(op);
    r->b = bufs_take(c);
    if (r->b == NULL)
        return luaL_error(L, "envclone: out of memory");
    ec_client_ref(c);
    r->client = c;
    int n = ec_marshal_request(L, c, op, args, &r->b->msg);
    if (n) {
        /* nil, err above the request: drop the request, keep nil, err */
        ec_request_release(r);
        lua_remove(L, -3);
        return n;
    }
    return 1;
}

int ec_request_call(lua_State *L, ec_client *c, const ec_op *op, int args, int defer)
{
    args = lua_absindex(L, args);
    if (defer) {
        defer = lua_absindex(L, defer);
        /* a coroutine may be a batch task, whose calls go through the batch */
        if (lua_pushthread(L) != 1) {
            lua_pop(L, 1);
            return 0;
        }
        lua_pop(L, 1);
    }
    /* The buffers stay the client's spare set throughout: should anything
     * raise (out of memory), nothing is owned by this C frame. */
    if (c->spare == NULL && (c->spare = ec_reqbufs_new()) == NULL)
        return luaL_error(L, "envclone: out of memory");
    ec_request tmp;
    int n = ec_request_prepare(L, &tmp, c, op, args, defer, c->spare);
    if (n == EC_MARSHAL_DEFERRED)
        return 0;
    if (n)
        return n; /* nil, validation error */
    n = perform(L, ec_client_easy(L, c), &tmp, 0);
    if (n == 1)
        return 1;
    /* a failed exchange: the request becomes an object, for the retries */
    c->spare = NULL;
    ec_client_ref(c);
    ec_request_push_object(L, &tmp);
    return 3;
}

void ec_request_push_object(lua_State *L, const ec_request *r)
{
    ec_request *u = lua_newuserdata(L, sizeof *u);
    *u = *r;
    luaL_getmetatable(L, EC_REQUEST_MT);
    lua_setmetatable(L, -2);
}

int ec_request_prepare(lua_State *L, ec_request *r, ec_client *c, const ec_op *op, int args, int defer,
                       ec_reqbufs *b)
{
    memset(r, 0, sizeof *r);
    r->op = op;
    r->policy = ec_policy_of(op);
    int n = ec_marshal_request_ex(L, c, op, args, &b->msg, defer);
    if (n)
        return n; /* deferred, or nil + the validation error */
    r->b = b;
    r->client = c;
    return 0;
}

/* ---- the operation closures (ec_core.c makes them, one per row) --------- */

/* op.request(client, args) -> request | nil, err (validation): a request
 * for any transport (see ec_request.h). */
int ec_request_lua_request(lua_State *L)
{
    const ec_op *op = lua_touserdata(L, lua_upvalueindex(1));
    ec_client *c = ec_client_check(L, 1);
    ec_client_check_op(L, c, op);
    return ec_request_push_new(L, c, op, 2);
}

/* op.call(client, args[, defer]) -> result | nil, err[, request]: a
 * request sent once over the client's libcurl handle, in one C call (the
 * sequential path).  After a failed exchange the request comes third, so a
 * retry sends it again without building it anew.  `defer`: a set of
 * argument names the caller handles itself; with it, nothing at all comes
 * back (and nothing is sent) when args hold one of them or the call runs in
 * a coroutine. */
int ec_request_lua_call(lua_State *L)
{
    const ec_op *op = lua_touserdata(L, lua_upvalueindex(1));
    ec_client *c = ec_client_check(L, 1);
    ec_client_check_op(L, c, op);
    lua_settop(L, 3);
    int defer = 0;
    if (!lua_isnil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        defer = 3;
    }
    return ec_request_call(L, c, op, 2, defer);
}

static int l_gc(lua_State *L)
{
    ec_request *r = luaL_checkudata(L, 1, EC_REQUEST_MT);
    ec_request_release(r);
    return 0;
}

/* Scheme, host (brackets kept for IPv6), port and the path with query of
 * the request's URL, read from the API root it starts with: the client's
 * constructor checked and split that once (ec_client.h). */
typedef struct {
    int tls;
    const char *host;
    size_t host_len;
    long port;
    const char *path;
    int default_port;
} ec_target;

static void target_of(const ec_request *r, ec_target *t)
{
    const ec_root *root = ec_client_root(r->client, r->op);
    const char *url = r->b->msg.url.data;
    t->tls = root->tls;
    t->host = url + root->host;
    t->host_len = root->host_len;
    t->port = root->port;
    t->default_port = root->default_port;
    t->path = url[root->path] ? url + root->path : "/";
}

/* req:wire() -> the HTTP/1.1 request as bytes, for transports that write
 * it themselves (cosockets).  It holds the credential: send it, never log it. */
static int l_wire(lua_State *L)
{
    ec_request *r = ec_request_check(L, 1);
    const ec_message *m = &r->b->msg;
    ec_target t;
    target_of(r, &t);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, r->op->method);
    luaL_addchar(&b, ' ');
    luaL_addstring(&b, t.path);
    luaL_addstring(&b, " HTTP/1.1\r\nHost: ");
    /* Host names the authority as the URL does (the port when not the default) */
    luaL_addlstring(&b, t.host, t.host_len);
    if (!t.default_port) {
        char port[16];
        snprintf(port, sizeof port, ":%ld", t.port);
        luaL_addstring(&b, port);
    }
    luaL_addstring(&b, "\r\n");
    const char *entry = m->headers.data;
    for (size_t i = 0; i < m->nheaders; i++) {
        size_t n = strlen(entry);
        luaL_addlstring(&b, entry, n);
        luaL_addstring(&b, "\r\n");
        entry += n + 1;
    }
    const char *method = r->op->method;
    if (m->has_body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0) {
        char cl[48];
        snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", m->has_body ? m->body.len : (size_t)0);
        luaL_addstring(&b, cl);
    }
    luaL_addstring(&b, "Connection: keep-alive\r\n\r\n");
    if (m->has_body)
        luaL_addlstring(&b, m->body.data, m->body.len);
    luaL_pushresult(&b);
    return 1;
}

/* req:headers() -> { [name] = value } as sent, the credential included:
 * for host transports that take headers as a table.  Never log it. */
static int l_headers(lua_State *L)
{
    ec_request *r = ec_request_check(L, 1);
    const ec_message *m = &r->b->msg;
    lua_createtable(L, 0, (int)m->nheaders);
    const char *entry = m->headers.data;
    for (size_t i = 0; i < m->nheaders; i++) {
        size_t n = strlen(entry);
        const char *colon = strchr(entry, ':');
        lua_pushlstring(L, entry, (size_t)(colon - entry));
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        lua_pushstring(L, v);
        lua_rawset(L, -3);
        entry += n + 1;
    }
    return 1;
}

/* req:send() -> result | nil, err: one attempt over the client's libcurl
 * easy handle.  A request that succeeded is finished (its buffers go back
 * to the client for the next call). */
static int l_send(lua_State *L)
{
    ec_request *r = ec_request_check(L, 1);
    ec_client *c = r->client;
    int n = perform(L, ec_client_easy(L, c), r, 0);
    if (n == 1)
        ec_request_release(r);
    return n;
}

/* req:curl() -> response | nil, err: the libcurl transport as a host
 * transport would be (the answer is not parsed). */
static int l_curl(lua_State *L)
{
    ec_request *r = ec_request_check(L, 1);
    ec_client *c = r->client;
    return perform(L, ec_client_easy(L, c), r, 1);
}

/* The value of header `name` (lower case) in the table at idx, matched
 * without regard to case; NULL when absent. */
static const char *find_header(lua_State *L, int idx, const char *name)
{
    lua_getfield(L, idx, name);
    if (lua_type(L, -1) == LUA_TTABLE) { /* several values: the first */
        lua_rawgeti(L, -1, 1);
        lua_remove(L, -2);
    }
    if (lua_type(L, -1) == LUA_TSTRING) {
        const char *v = lua_tostring(L, -1);
        lua_pop(L, 1); /* still referenced by the table */
        return v;
    }
    lua_pop(L, 1);
    /* a host that kept the server's spelling ("Content-Type") */
    const char *found = NULL;
    lua_pushnil(L);
    while (found == NULL && lua_next(L, idx) != 0) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING
            && strcasecmp(lua_tostring(L, -2), name) == 0) {
            found = lua_tostring(L, -1);
            lua_pop(L, 1);
            break;
        }
        lua_pop(L, 1);
    }
    if (found)
        lua_pop(L, 1); /* the key */
    return found;
}

/* req:parse(response) -> result | nil, err.  response: { status = 200,
 * headers = { ["content-type"] = ... }, body = "..." }. */
static int l_parse(lua_State *L)
{
    ec_request *r = ec_request_check(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    ec_response resp;
    memset(&resp, 0, sizeof resp);
    lua_getfield(L, 2, "status");
    if (!ec_isinteger(L, -1) || lua_tointeger(L, -1) < 100 || lua_tointeger(L, -1) > 999)
        return luaL_error(L, "envclone: response.status must be an integer HTTP status");
    resp.status = (long)lua_tointeger(L, -1);
    lua_getfield(L, 2, "body");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "envclone: response.body must be a string");
    resp.body = lua_isnil(L, -1) ? "" : lua_tolstring(L, -1, &resp.body_len);
    lua_getfield(L, 2, "headers");
    if (lua_type(L, -1) == LUA_TTABLE) {
        int h = lua_gettop(L);
        resp.content_type = find_header(L, h, "content-type");
        resp.retry_after = find_header(L, h, "retry-after");
        resp.request_id = find_header(L, h, "x-request-id");
        if (resp.request_id == NULL)
            resp.request_id = find_header(L, h, "request-id");
        resp.location = find_header(L, h, "location");
    } else if (!lua_isnil(L, -1)) {
        return luaL_error(L, "envclone: response.headers must be a table");
    }
    int n = push_parsed(L, r, &resp);
    if (n == 1)
        ec_request_release(r);
    return n;
}

/* req:fail(code, message, sent[, retryable]) -> nil, err: the error of a
 * failed exchange, for transports written in Lua.  code: "resolve",
 * "connect", "tls", "timeout", "send", "recv", "protocol", "too_large",
 * "headers_too_large", "unavailable", "proxy" or "transport"; sent: may any
 * byte of the request have reached the server? */
static int l_fail(lua_State *L)
{
    ec_request *r = luaL_checkudata(L, 1, EC_REQUEST_MT);
    const char *code = luaL_checkstring(L, 2);
    if (!ec_policy_transport_known(code))
        return luaL_error(L, "envclone: unknown transport error code '%s'", code);
    ec_transport_error te;
    te.code = code;
    snprintf(te.message, sizeof te.message, "%s", luaL_optstring(L, 3, code));
    te.sent = lua_toboolean(L, 4);
    te.retryable = lua_isnoneornil(L, 5) ? -1 : lua_toboolean(L, 5);
    return ec_request_push_transport_error(L, r, &te);
}

static int l_release(lua_State *L)
{
    ec_request_release(luaL_checkudata(L, 1, EC_REQUEST_MT));
    return 0;
}

static int l_tostring(lua_State *L)
{
    ec_request *r = luaL_checkudata(L, 1, EC_REQUEST_MT);
    lua_pushfstring(L, "envclone.request (%s.%s %s%s)", r->op->vendor, r->op->name, r->op->method,
                    r->b ? "" : ", finished");
    return 1;
}

static void push_seconds(lua_State *L, long ms)
{
    lua_pushnumber(L, (lua_Number)ms / 1000.0);
}

/* The fields: read-only, computed on access (none of them is secret). */
static int l_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1)); /* a method? */
    if (!lua_isnil(L, -1))
        return 1;
    ec_request *r = luaL_checkudata(L, 1, EC_REQUEST_MT);
    const char *k = luaL_checkstring(L, 2);
    const ec_op *op = r->op;
    if (strcmp(k, "method") == 0)
        lua_pushstring(L, op->method);
    else if (strcmp(k, "vendor") == 0)
        lua_pushstring(L, op->vendor);
    else if (strcmp(k, "operation") == 0)
        lua_pushstring(L, op->name);
    else if (strcmp(k, "reuse") == 0)
        lua_pushboolean(L, r->policy.reuse);
    else if (strcmp(k, "creates") == 0)
        lua_pushboolean(L, r->policy.creates);
    else if (strcmp(k, "safe") == 0)
        lua_pushboolean(L, r->policy.safe);
    else if (strcmp(k, "finished") == 0)
        lua_pushboolean(L, r->b == NULL);
    else if (r->b == NULL)
        lua_pushnil(L); /* the rest lived in the buffers */
    else {
        const ec_client *c = r->client;
        const ec_message *m = &r->b->msg;
        ec_target t;
        target_of(r, &t);
        if (strcmp(k, "url") == 0)
            lua_pushlstring(L, m->url.data, m->url.len);
        else if (strcmp(k, "body") == 0 && m->has_body)
            lua_pushlstring(L, m->body.data, m->body.len);
        else if (strcmp(k, "scheme") == 0)
            lua_pushstring(L, t.tls ? "https" : "http");
        else if (strcmp(k, "host") == 0)
            lua_pushlstring(L, t.host, t.host_len);
        else if (strcmp(k, "port") == 0)
            lua_pushinteger(L, t.port);
        else if (strcmp(k, "path") == 0)
            lua_pushstring(L, t.path);
        else if (strcmp(k, "timeout") == 0)
            push_seconds(L, c->settings.timeout_ms);
        else if (strcmp(k, "connect_timeout") == 0)
            push_seconds(L, c->settings.connect_timeout_ms);
        else if (strcmp(k, "max_response_size") == 0)
            lua_pushinteger(L, (lua_Integer)c->settings.max_response_size);
        else if (strcmp(k, "insecure") == 0)
            lua_pushboolean(L, c->settings.insecure);
        else if (strcmp(k, "ca_file") == 0)
            lua_pushstring(L, c->settings.ca_file); /* nil when NULL */
        else if (strcmp(k, "proxy") == 0)
            lua_pushstring(L, c->settings.proxy);
        else if (strcmp(k, "http_version") == 0)
            lua_pushstring(L, ec_client_http_version(c));
        else
            lua_pushnil(L);
    }
    return 1;
}

static const luaL_Reg methods[] = {
    { "send", l_send },
    { "curl", l_curl },
    { "parse", l_parse },
    { "fail", l_fail },
    { "wire", l_wire },
    { "headers", l_headers },
    { "release", l_release },
    { NULL, NULL }
};

void ec_request_init(lua_State *L)
{
    if (luaL_newmetatable(L, EC_REQUEST_MT)) {
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
        ec_newlib(L, methods);
        lua_pushcclosure(L, l_index, 1);
        lua_setfield(L, -2, "__index");
        lua_pushliteral(L, "envclone.request");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
}
