/*
 * ec_multi.c - the libcurl multi transport (see ec_multi.h).
 *
 * One CURLM per batch.  Each request in flight occupies a slot: an easy
 * handle, the request, and a registry reference that keeps the request
 * (whose buffers libcurl writes into) alive until the transfer is taken out.
 * Finished slots keep their easy handle for the next request, so a batch
 * builds at most as many easy handles as it has requests in flight.
 *
 * A call started in C (op.start, m:fill: a batch's plain call) needs no
 * request object: the slot holds the request and a set of buffers it keeps
 * from one call to the next, as a C program keeps one buffer per easy
 * handle; the URL, headers and libcurl's header list are rebuilt in place,
 * and the options on the handle stay set.  Only a failed call's request
 * becomes an object (for the retries), taking the buffers with it.
 */
#include "ec_multi.h"
#include "ec_clock.h"
#include "ec_curl.h"
#include "ec_request.h"
#include "ec_signal.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ec_slot {
    ec_easy *e;
    ec_request *r;   /* NULL when the slot is idle; &own for a call started in C */
    int ref;         /* registry reference to the request userdata; LUA_NOREF: own */
    ec_request own;  /* the request of a call started in C */
    ec_reqbufs *bufs; /* kept for the slot's next call started in C (NULL: none yet) */
    lua_Integer id;  /* the caller's name for the transfer */
    struct ec_slot *prev, *next;
} ec_slot;

typedef struct ec_multi {
    CURLM *m;
    ec_slot *busy;   /* requests in flight (or finished, not yet taken) */
    ec_slot *idle;   /* slots with an easy handle kept for reuse */
    long added;      /* transfers added and not yet taken by next() */
    int closed;
} ec_multi;

static void slot_unlink(ec_slot **list, ec_slot *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        *list = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

static void slot_push(ec_slot **list, ec_slot *s)
{
    s->prev = NULL;
    s->next = *list;
    if (*list)
        (*list)->prev = s;
    *list = s;
}

/* Frees a slot: its handle, the request it carries (an m:add one only
 * loses its reference; a request of its own, even one a raising parse
 * left behind, is ended) and its buffers, wiped. */
static void slot_free(lua_State *L, ec_slot *s)
{
    ec_easy_free(s->e);
    if (s->r != NULL && s->ref != LUA_NOREF) {
        s->r->in_flight = 0;
        luaL_unref(L, LUA_REGISTRYINDEX, s->ref);
    }
    if (s->own.client != NULL) /* its buffers are s->bufs */
        s->bufs = ec_request_end_kept(&s->own);
    ec_reqbufs_free(s->bufs);
    free(s);
}

static void multi_release(lua_State *L, ec_multi *mu)
{
    if (mu->closed)
        return;
    mu->closed = 1;
    /* a batch dropped half-way: every transfer still in flight is removed
     * (a handle must leave its multi before it is cleaned up) */
    ec_slot *s = mu->busy;
    mu->busy = NULL;
    while (s) {
        ec_slot *next = s->next;
        curl_multi_remove_handle(mu->m, ec_easy_curl(s->e));
        slot_free(L, s);
        s = next;
    }
    s = mu->idle;
    mu->idle = NULL;
    while (s) {
        ec_slot *next = s->next;
        slot_free(L, s);
        s = next;
    }
    curl_multi_cleanup(mu->m);
    mu->m = NULL;
    mu->added = 0;
}

static ec_multi *check_multi(lua_State *L, int idx)
{
    ec_multi *mu = luaL_checkudata(L, idx, EC_MULTI_MT);
    if (mu->closed)
        luaL_error(L, "envclone: this multi handle is closed");
    return mu;
}

/* core.multi{ max_connections = n } */
int ec_multi_new(lua_State *L)
{
    long maxconn = 0;
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_getfield(L, 1, "max_connections");
        if (!lua_isnil(L, -1)) {
            if (!ec_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > 100000)
                return luaL_error(L, "envclone: max_connections must be an integer from 1 to 100000");
            maxconn = (long)lua_tointeger(L, -1);
        }
        lua_pop(L, 1);
    } else if (!lua_isnoneornil(L, 1)) {
        return luaL_error(L, "envclone: core.multi takes a table of options");
    }
    if (ec_curl_global_init() != 0)
        return luaL_error(L, "envclone: libcurl global initialisation failed");
    ec_multi *mu = lua_newuserdata(L, sizeof *mu);
    mu->m = NULL;
    mu->busy = mu->idle = NULL;
    mu->added = 0;
    mu->closed = 1; /* until built, so __gc frees only what exists */
    luaL_getmetatable(L, EC_MULTI_MT);
    lua_setmetatable(L, -2);
    mu->m = curl_multi_init();
    if (mu->m == NULL)
        return luaL_error(L, "envclone: could not create a libcurl multi handle");
    mu->closed = 0;
    if (maxconn > 0) {
        /* never more connections open than requests allowed in flight: an
         * idle one is closed before a new one opens */
        curl_multi_setopt(mu->m, CURLMOPT_MAX_TOTAL_CONNECTIONS, maxconn);
        curl_multi_setopt(mu->m, CURLMOPT_MAXCONNECTS, maxconn);
    }
    return 1;
}

/* An idle slot (or a new one), unlinked; NULL when out of memory.  A
 * request of its own that a raising parse left in it is ended first. */
static ec_slot *slot_take(ec_multi *mu)
{
    ec_slot *s = mu->idle;
    if (s) {
        slot_unlink(&mu->idle, s);
        if (s->own.client != NULL)
            s->bufs = ec_request_end_kept(&s->own);
        return s;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->e = ec_easy_new();
    if (s->e == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

/* Puts r on the wire in slot s (taken by slot_take).  0, or -1 with te
 * filled and s back among the idle ones. */
static int launch(ec_multi *mu, ec_slot *s, ec_request *r, lua_Integer id, ec_transport_error *te)
{
    if (ec_request_setup(s->e, r, te) != 0) {
        slot_push(&mu->idle, s);
        return -1;
    }
    CURL *h = ec_easy_curl(s->e);
    curl_easy_setopt(h, CURLOPT_PRIVATE, (void *)s);
    /* a request that may not reuse a connection goes out on a fresh one
     * (ec_curl_setup); closing that one when done, instead of caching it,
     * keeps the connections open at most max_connections */
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, r->policy.reuse ? 0L : 1L);
    CURLMcode mc = curl_multi_add_handle(mu->m, h);
    if (mc != CURLM_OK) {
        slot_push(&mu->idle, s);
        te->code = "transport";
        te->sent = 0;
        te->retryable = 0;
        snprintf(te->message, sizeof te->message, "libcurl multi: %s", curl_multi_strerror(mc));
        return -1;
    }
    s->r = r;
    s->id = id;
    r->in_flight = 1;
    slot_push(&mu->busy, s);
    mu->added++;
    return 0;
}

/* m:add(request, id) -> true | nil, err */
static int l_add(lua_State *L)
{
    ec_multi *mu = check_multi(L, 1);
    ec_request *r = ec_request_check(L, 2);
    lua_Integer id = luaL_checkinteger(L, 3);
    if (r->in_flight)
        return luaL_error(L, "envclone: this request is already in flight");
    /* the reference first: luaL_ref may raise, and nothing is on the wire yet */
    lua_pushvalue(L, 2);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    ec_slot *s = slot_take(mu);
    if (s == NULL) {
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
        return luaL_error(L, "envclone: could not create a libcurl handle");
    }
    ec_transport_error te;
    s->ref = ref;
    if (launch(mu, s, r, id, &te) != 0) {
        s->ref = LUA_NOREF;
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
        return ec_request_push_transport_error(L, r, &te);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Puts one call of op, with arguments at stack index `args`, on mu with no
 * request object (op.start, m:fill).  Pushes true and returns 1; or pushes
 * nil and the validation error (nothing sent) and returns 2; or returns 0,
 * pushing nothing, when the client is closed, args is not a table or holds
 * a key of the table at `defer` (a stack index, 0 = none), or the transfer
 * could not be started: the caller's single-call path takes those.  Its
 * transfer's m:next() gives id, result, or id, nil, err, request (the
 * failed call's request, for the retries). */
static int start(lua_State *L, ec_multi *mu, ec_client *c, const ec_op *op, int args, lua_Integer id, int defer)
{
    /* a closed client or arguments that are not a table: left to the
     * caller's single-call path, which raises or validates as it always does */
    if (c->closed || lua_type(L, args) != LUA_TTABLE)
        return 0;
    ec_slot *s = slot_take(mu);
    if (s == NULL)
        return luaL_error(L, "envclone: could not create a libcurl handle");
    /* the slot stays among the idle ones until it is launched: should
     * marshalling raise (out of memory), the multi still owns it */
    slot_push(&mu->idle, s);
    if (s->bufs == NULL && (s->bufs = ec_reqbufs_new()) == NULL)
        return luaL_error(L, "envclone: out of memory");
    int n = ec_request_prepare(L, &s->own, c, op, args, defer, s->bufs);
    if (n != 0)
        return n == EC_MARSHAL_DEFERRED ? 0 : n;
    ec_client_ref(c); /* the request outlives this frame */
    slot_unlink(&mu->idle, s);
    ec_transport_error te;
    if (launch(mu, s, &s->own, id, &te) != 0) {
        /* it could not be started (out of memory, libcurl refusing it):
         * the caller's single-call path tries again and reports the
         * failure as a single call does */
        s->bufs = ec_request_end_kept(&s->own);
        return 0;
    }
    s->ref = LUA_NOREF;
    lua_pushboolean(L, 1);
    return 1;
}

/* op.start(multi, client, args, id[, defer]) -> true | nil, err | nothing:
 * one call put on a batch's multi handle with no request object (see
 * ec_multi.h); `defer` as for op.call; nothing also when the client is
 * closed or args is not a table. */
int ec_multi_lua_start(lua_State *L)
{
    ec_multi *mu = check_multi(L, 1);
    const ec_op *op = lua_touserdata(L, lua_upvalueindex(1));
    ec_client *c = ec_client_arg(L, 2);
    ec_client_check_op(L, c, op);
    lua_Integer id = luaL_checkinteger(L, 4);
    /* m:drain finds a call's item at 4 * id */
    luaL_argcheck(L, id >= 1 && id <= LUA_MAXINTEGER / 4, 4, "an id from 1 to maxinteger / 4");
    lua_settop(L, 5);
    int defer = 0;
    if (!lua_isnil(L, 5)) {
        luaL_checktype(L, 5, LUA_TTABLE);
        defer = 5;
    }
    return start(L, mu, c, op, 3, id, defer);
}

/* The operation of an op.start function at idx (its upvalue), or NULL
 * when idx holds anything else. */
static const ec_op *op_of_start(lua_State *L, int idx)
{
    if (lua_tocfunction(L, idx) != ec_multi_lua_start || lua_getupvalue(L, idx, 1) == NULL)
        return NULL;
    const ec_op *op = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return op;
}

/* m:poll(seconds[, acted]) -> transfers finished and not yet taken by
 * next().  Drives every transfer; while none has finished, sleeps in
 * poll(2) until a socket or a libcurl timer needs attention, for at most
 * `seconds` in all.  Looping here, not in Lua, keeps a batch's loop to one
 * turn per finished transfer or so: with answers arriving one by one, most
 * wake-ups finish nothing.  It also returns once more than `acted` (0)
 * signals caught by core.catch_signals are pending: the batch's loop
 * passes how many it has acted on already (ec_signal.h). */
static int l_poll(lua_State *L)
{
    ec_multi *mu = check_multi(L, 1);
    lua_Number secs = luaL_optnumber(L, 2, 0);
    long acted = (long)luaL_optinteger(L, 3, 0);
    int running = 0;
    curl_multi_perform(mu->m, &running);
    if (running == mu->added && running > 0 && secs > 0) {
        double deadline = ec_now() + (secs > 86400 ? 86400 : secs);
        for (;;) {
            double left = deadline - ec_now();
            if (left <= 0 || ec_signal_pending() > acted)
                break;
            if (ec_signal_catching() && left > EC_SIGNAL_SLICE)
                left = EC_SIGNAL_SLICE;
            if (curl_multi_poll(mu->m, NULL, 0, (int)(left * 1000.0 + 0.999), NULL) != CURLM_OK)
                break; /* the caller sees nothing finished and comes back */
            curl_multi_perform(mu->m, &running);
            if (running != mu->added || running == 0)
                break;
        }
    }
    lua_pushinteger(L, (lua_Integer)(mu->added - running));
    return 1;
}

/* Takes one finished transfer out: pushes its id and what its request
 * gave (result | nil, err | nil, err, request: see ec_multi.h) and returns
 * how many values it pushed, or 0 when no transfer has finished.  *own:
 * the transfer was a call started in C (start). */
static int take(lua_State *L, ec_multi *mu, int *own)
{
    int left = 0;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(mu->m, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *h = msg->easy_handle;
        CURLcode rc = msg->data.result;
        char *priv = NULL;
        curl_easy_getinfo(h, CURLINFO_PRIVATE, &priv);
        ec_slot *s = (ec_slot *)(void *)priv;
        curl_multi_remove_handle(mu->m, h); /* msg is invalid from here */
        if (s == NULL)
            continue;
        slot_unlink(&mu->busy, s);
        mu->added--;
        ec_request *r = s->r;
        s->r = NULL;
        r->in_flight = 0;
        /* idle again before anything can raise (a memory error while the
         * answer is parsed): a request it still holds is ended on reuse */
        slot_push(&mu->idle, s);
        lua_pushinteger(L, s->id);
        int n;
        *own = s->ref == LUA_NOREF;
        if (*own) {
            n = ec_request_finish(L, s->e, r, (int)rc);
            if (n == 1) {
                s->bufs = ec_request_end_kept(r);
            } else {
                /* a failed call: its request becomes an object, for the
                 * retries, and takes the buffers with it */
                ec_request_push_object(L, r);
                memset(r, 0, sizeof *r);
                s->bufs = NULL;
                n++;
            }
        } else {
            lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref); /* holds r while it is parsed */
            luaL_unref(L, LUA_REGISTRYINDEX, s->ref);
            s->ref = LUA_NOREF;
            n = ec_request_finish(L, s->e, r, (int)rc);
            lua_remove(L, -1 - n); /* the request userdata */
            if (n == 1)
                ec_request_release(r); /* done: its buffers go back to the client */
        }
        return n + 1;
    }
    return 0;
}

/* m:next() -> id, result | id, nil, err[, request] | nil */
static int l_next(lua_State *L)
{
    ec_multi *mu = check_multi(L, 1);
    int own;
    int n = take(L, mu, &own);
    if (n == 0)
        lua_pushnil(L);
    return n ? n : 1;
}

/* m:drain(results, items) -> count[, id, ... as m:next()]: takes finished
 * transfers out; each call started in C that succeeded is recorded as a
 * batch records it, `results[id] = { ok = true, value = result }`, and
 * its item (items[4 * id - 3 .. 4 * id]) dropped; the first other
 * transfer stops the drain and comes back after the count.  A batch's
 * loop spends most of its time here: this keeps the common case out of
 * the Lua interpreter. */
static int l_drain(lua_State *L)
{
    ec_multi *mu = check_multi(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    lua_Integer count = 0;
    int own, n;
    while ((n = take(L, mu, &own)) != 0) {
        /* stack: results, items, id, values... */
        if (!own || n != 2) {
            lua_pushinteger(L, count);
            lua_insert(L, 4);
            return n + 1;
        }
        lua_Integer id = lua_tointeger(L, 4);
        lua_createtable(L, 0, 2);
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "ok");
        lua_pushvalue(L, 5);
        lua_setfield(L, -2, "value");
        lua_rawseti(L, 2, id);
        for (lua_Integer k = 4 * id - 3; k <= 4 * id; k++) {
            lua_pushnil(L);
            lua_rawseti(L, 3, k);
        }
        lua_settop(L, 3);
        count++;
    }
    lua_pushinteger(L, count);
    return 1;
}

/* m:fill(items, from, to, room, handles[, defer]) -> next[, err]: starts
 * items from..to as calls in C (start), at most `room` of them,
 * and returns the index of the first one it did not start.  items holds 4
 * values an item: method, client, args and its operation's `start`
 * function (false for anything else); handles maps a client to its core
 * handle when its calls may start in C.  It stops at an item that may not
 * (no start function, a client not in handles or mapped to false,
 * arguments holding a name of `defer`, ...), which the caller starts
 * itself; or at one whose arguments are invalid, returning its validation
 * error after the index (nothing was sent). */
static int l_fill(lua_State *L)
{
    ec_multi *mu = check_multi(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer i = luaL_checkinteger(L, 3);
    lua_Integer to = luaL_checkinteger(L, 4);
    lua_Integer room = luaL_checkinteger(L, 5);
    luaL_argcheck(L, i >= 1 && to <= LUA_MAXINTEGER / 4, 3, "items from 1 to maxinteger / 4");
    luaL_checktype(L, 6, LUA_TTABLE);
    lua_settop(L, 7);
    int defer = lua_istable(L, 7) ? 7 : 0;
    for (; i <= to && room > 0; i++, room--) {
        lua_rawgeti(L, 2, 4 * i);     /* 8: the start function, or false */
        lua_rawgeti(L, 2, 4 * i - 2); /* 9: the client */
        lua_rawget(L, 6);             /* 9: its handle, false or nil */
        lua_rawgeti(L, 2, 4 * i - 1); /* 10: the arguments */
        const ec_op *op = op_of_start(L, 8);
        ec_client *c = op != NULL ? ec_client_test(L, 9) : NULL;
        if (c == NULL || !ec_client_serves(c, op))
            break;
        int n = start(L, mu, c, op, 10, i, defer);
        if (n == 0)
            break;
        if (n == 2) {
            lua_pushinteger(L, i);
            lua_insert(L, -3);
            lua_remove(L, -2); /* the nil */
            return 2;
        }
        lua_settop(L, 7);
    }
    lua_settop(L, 7);
    lua_pushinteger(L, i);
    return 1;
}

static int l_count(lua_State *L)
{
    ec_multi *mu = check_multi(L, 1);
    lua_pushinteger(L, mu->added);
    return 1;
}

static int l_close(lua_State *L)
{
    multi_release(L, luaL_checkudata(L, 1, EC_MULTI_MT));
    return 0;
}

static int l_tostring(lua_State *L)
{
    ec_multi *mu = luaL_checkudata(L, 1, EC_MULTI_MT);
    if (mu->closed)
        lua_pushliteral(L, "envclone.multi (closed)");
    else
        lua_pushfstring(L, "envclone.multi (%d in flight)", (int)mu->added);
    return 1;
}

static const luaL_Reg methods[] = {
    { "add", l_add },
    { "poll", l_poll },
    { "next", l_next },
    { "drain", l_drain },
    { "fill", l_fill },
    { "count", l_count },
    { "close", l_close },
    { NULL, NULL }
};

void ec_multi_init(lua_State *L)
{
    if (luaL_newmetatable(L, EC_MULTI_MT)) {
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
        ec_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushliteral(L, "envclone.multi");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
}
