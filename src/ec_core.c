/*
 * ec_core.c - the envclone.core Lua module: luaopen, the tables it
 * publishes (core.operations with one closure per row and way of calling:
 * call, request, start; core.vendors; core.limits) and the functions of
 * the module table.  It sits above every other file of src/ and holds no
 * rule of its own: the closures' bodies are ec_request.c's and
 * ec_multi.c's, the client is ec_client.c's.
 */
#include "ec_client.h"
#include "ec_clock.h"
#include "ec_compat.h"
#include "ec_curl.h"
#include "ec_error.h"
#include "ec_file.h"
#include "ec_http1.h"
#include "ec_json.h"
#include "ec_jsondec.h"
#include "ec_mask.h"
#include "ec_multi.h"
#include "ec_ops.h"
#include "ec_policy.h"
#include "ec_request.h"
#include "ec_signal.h"
#include "ec_transport.h"

#include <time.h>

/* core.request(client, opname, args) -> request | nil, err */
static int l_request(lua_State *L)
{
    ec_client *c = ec_client_check(L, 1);
    const char *name = luaL_checkstring(L, 2);
    const ec_op *op = ec_op_find(c->vendor->name, name);
    if (op == NULL)
        return luaL_error(L, "envclone: %s has no operation '%s'", c->vendor->name, name);
    return ec_request_push_new(L, c, op, 3);
}

static void push_field(lua_State *L, const ec_field *f)
{
    lua_createtable(L, 0, 8);
    lua_pushstring(L, f->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, ec_location_name(f->in));
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
    } else if (f->type == EC_T_INTEGER && (f->min_value != 0 || f->max_value != 0)) {
        lua_pushinteger(L, (lua_Integer)f->min_value);
        lua_setfield(L, -2, "min_value");
        lua_pushinteger(L, (lua_Integer)f->max_value);
        lua_setfield(L, -2, "max_value");
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

/* A NULL-terminated list of strings as a Lua array. */
static void push_strings(lua_State *L, const char *const *list)
{
    lua_newtable(L);
    for (int i = 0; list && list[i]; i++) {
        lua_pushstring(L, list[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

/* A lookup's argument map: { read's argument = create's argument or client setting }. */
static void push_arg_map(lua_State *L, const ec_arg_map *m, const char *key)
{
    if (m[0].arg == NULL)
        return;
    lua_newtable(L);
    for (int i = 0; i < EC_MAX_LOOKUP_ARGS && m[i].arg; i++) {
        lua_pushstring(L, m[i].from);
        lua_setfield(L, -2, m[i].arg);
    }
    lua_setfield(L, -2, key);
}

/* op.lookup: how to find what a create makes by its natural key. */
static void push_lookup(lua_State *L, const ec_lookup *k)
{
    lua_createtable(L, 0, 18);
    ec_setfield_string(L, "read", k->read);
    push_arg_map(L, k->args, "args");
    push_arg_map(L, k->client_args, "client_args");
    ec_setfield_string(L, "list", k->list);
    ec_setfield_string(L, "sublist", k->sublist);
    ec_setfield_string(L, "group_arg", k->group_arg);
    ec_setfield_string(L, "key", k->key);
    ec_setfield_string(L, "key_arg", k->key_arg);
    ec_setfield_string(L, "match", k->match == EC_MATCH_FOLD ? "fold" : "exact");
    ec_setfield_string(L, "id", k->id);
    lua_pushboolean(L, k->unique);
    lua_setfield(L, -2, "unique");
    ec_setfield_string(L, "exists_reason", k->exists_reason);
    ec_setfield_string(L, "credential", k->credential);
    ec_setfield_string(L, "result", k->result == EC_RESULT_READ ? "read" : "object");
    ec_setfield_string(L, "page_arg", k->page_arg);
    ec_setfield_string(L, "page_next", k->page_next);
    ec_setfield_string(L, "source", k->source);
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
        ec_setfield_string(L, "alt_path", op->alt_path);
        lua_pushboolean(L, op->creates);
        lua_setfield(L, -2, "creates");
        lua_pushboolean(L, op->deletes);
        lua_setfield(L, -2, "deletes");
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
            push_strings(L, w->pending);
            lua_setfield(L, -2, "pending");
            ec_setfield_string(L, "failed_message", w->failed_message);
            if (w->not_yet_status) {
                lua_pushinteger(L, w->not_yet_status);
                lua_setfield(L, -2, "not_yet_status");
            }
            if (w->done_status) {
                lua_pushinteger(L, w->done_status);
                lua_setfield(L, -2, "done_status");
            }
            ec_setfield_string(L, "id_from_args", w->id_arg_from);
            lua_setfield(L, -2, "waiter");
        }
        if (op->lookup) {
            push_lookup(L, op->lookup);
            lua_setfield(L, -2, "lookup");
        }
        lua_newtable(L);
        int n = 0;
        for (const ec_field *f = op->fields; f->name; f++) {
            push_field(L, f);
            lua_rawseti(L, -2, ++n);
        }
        lua_setfield(L, -2, "fields");
        lua_pushlightuserdata(L, (void *)op);
        lua_pushcclosure(L, ec_request_lua_call, 1);
        lua_setfield(L, -2, "call");
        lua_pushlightuserdata(L, (void *)op);
        lua_pushcclosure(L, ec_request_lua_request, 1);
        lua_setfield(L, -2, "request");
        lua_pushlightuserdata(L, (void *)op);
        lua_pushcclosure(L, ec_multi_lua_start, 1);
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
        push_strings(L, v->credentials);
        lua_setfield(L, -2, "credentials");
        /* non-secret options: name -> the format the constructor checks */
        lua_newtable(L);
        for (int k = 0; v->settings && v->settings[k].name; k++) {
            lua_pushstring(L, ec_format_name(v->settings[k].format));
            lua_setfield(L, -2, v->settings[k].name);
        }
        lua_setfield(L, -2, "settings");
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
 * uses ngx.sleep instead (see envclone.runtime).  Ends early, or at once,
 * while a signal caught by core.catch_signals is pending (ec_signal.c). */
static int l_sleep(lua_State *L)
{
    lua_Number secs = luaL_checknumber(L, 1);
    if (!(secs > 0))
        return 0;
    if (secs > 86400)
        secs = 86400;
    /* A pending signal of core.catch_signals ends the sleep (its handler
     * has no SA_RESTART: nanosleep returns EINTR); any other EINTR sleeps
     * on.  Slices bound the wait for a signal that lands just before a
     * nanosleep starts. */
    double deadline = ec_now() + secs;
    for (;;) {
        if (ec_signal_pending() > 0)
            break;
        double left = deadline - ec_now();
        if (left <= 0)
            break;
        if (ec_signal_catching() && left > EC_SIGNAL_SLICE)
            left = EC_SIGNAL_SLICE;
        struct timespec ts;
        ts.tv_sec = (time_t)left;
        ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* core.now(): monotonic seconds, for timeouts that survive clock changes. */
static int l_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)ec_now());
    return 1;
}

/* core.retry_after_seconds(text) -> the seconds a Retry-After value asks
 * for (delay-seconds, or an HTTP-date against the wall clock), or nil:
 * ec_retry_after_seconds, for the Lua layer. */
static int l_retry_after_seconds(lua_State *L)
{
    long long secs;
    if (!ec_retry_after_seconds(luaL_checkstring(L, 1), (long long)time(NULL), &secs))
        return 0;
    lua_pushinteger(L, (lua_Integer)secs);
    return 1;
}

/* core.transport_version() -> "libcurl/7.88.1 OpenSSL/3.0.x ...": a
 * function, so that require does not initialise libcurl. */
static int l_transport_version(lua_State *L)
{
    lua_pushstring(L, ec_curl_version());
    return 1;
}

static const luaL_Reg core_functions[] = {
    { "client", ec_client_lua_new },
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
    { "retry_after_seconds", l_retry_after_seconds },
    { "catch_signals", ec_signal_lua_catch },
    { "interrupted", ec_signal_lua_interrupted },
    { "clear_interrupted", ec_signal_lua_clear },
    { "write_file_atomic", ec_file_lua_write_atomic },
    { "lock_file", ec_file_lua_lock },
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
    ec_file_init(L);

    ec_client_init(L);

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
