/*
 * fuzz_common.h - shared set-up and invariant checks of the libFuzzer
 * harnesses (fuzz_request.c, fuzz_response.c).
 *
 * One Lua state for the whole run (luaL_newstate + openlibs; lua-cjson is
 * found on Debian's default cpath), one client per vendor set up as in
 * spec/c/test_marshal.c, with credentials the checks look for.  Every
 * broken invariant calls abort(), which libFuzzer reports as a crash and
 * saves the input.
 */
#ifndef EC_FUZZ_COMMON_H
#define EC_FUZZ_COMMON_H

#include "ec_client.h"
#include "ec_error.h"
#include "ec_json.h"
#include "ec_marshal.h"
#include "ec_parse.h"
#include "fuzz_assert.h"

#include <ctype.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FUZZ_TOKEN "fuzz-s3cret-token-value"
#define FUZZ_COOKIE "session=fuzz-c00kie-secret"
#define FUZZ_BASE "https://fuzz.invalid/base"

static lua_State *L;
static ec_client fuzz_clients[8];
static ec_message fuzz_messages[8]; /* the request each client builds */
static int fuzz_cjson_decode_ref = LUA_NOREF;


/* Process set-up: the clients, and lua-cjson kept loaded so that opening a
 * fresh Lua state per input is cheap (lua_close would otherwise unload it). */
static void fuzz_init(void)
{
    lua_State *l = luaL_newstate();
    luaL_openlibs(l);
    lua_getglobal(l, "package");
    lua_getfield(l, -1, "searchpath");
    lua_pushliteral(l, "cjson");
    lua_getfield(l, -3, "cpath");
    lua_call(l, 2, 1);
    const char *path = lua_tostring(l, -1);
    if (path == NULL || dlopen(path, RTLD_NOW | RTLD_GLOBAL) == NULL) {
        fprintf(stderr, "fuzz: lua-cjson not found on the Lua cpath\n");
        exit(1);
    }
    lua_close(l);
    for (size_t i = 0; i < ec_vendors_count; i++) {
        ec_client *c = &fuzz_clients[i];
        memset(c, 0, sizeof *c);
        c->vendor = &ec_vendors[i];
        c->base.url = (char *)FUZZ_BASE;
        c->user_agent = (char *)"envclone-fuzz";
        for (int k = 0; c->vendor->credentials[k]; k++)
            c->secrets[k] = (char *)(strcmp(c->vendor->credentials[k], "cookie") == 0 ? FUZZ_COOKIE : FUZZ_TOKEN);
        ec_message_init(&fuzz_messages[i]);
    }
}

/* A fresh Lua state per input: every allocation of a run is freed by the
 * end of the run, so LeakSanitizer checks each input exactly.  It is also
 * faster than one state kept across inputs, whose not-yet-collected garbage
 * makes libFuzzer run a full leak scan after nearly every input. */
static void fuzz_state_open(void)
{
    L = luaL_newstate();
    luaL_openlibs(L);
    ec_json_init(L);
    ec_error_init(L);
    /* our own decoder, to check request bodies independently of the engine */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson.safe");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "decode");
    fuzz_cjson_decode_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
}

static void fuzz_state_close(void)
{
    lua_close(L);
    L = NULL;
}

static inline ec_client *fuzz_client_for(const ec_op *op)
{
    for (size_t i = 0; i < ec_vendors_count; i++)
        if (strcmp(ec_vendors[i].name, op->vendor) == 0)
            return &fuzz_clients[i];
    abort();
}

/* Does s show one of the client's secrets? */
static inline int fuzz_contains_secret(const ec_client *c, const char *s, size_t n)
{
    for (int i = 0; i < EC_MAX_SECRETS; i++) {
        const char *secret = c->secrets[i];
        if (secret == NULL)
            continue;
        size_t sl = strlen(secret);
        for (size_t j = 0; j + sl <= n; j++)
            if (memcmp(s + j, secret, sl) == 0)
                return 1;
    }
    return 0;
}

static inline int fuzz_one_line(const char *s, size_t n)
{
    return memchr(s, '\n', n) == NULL && memchr(s, '\r', n) == NULL;
}

/* Checks the error object at idx: kind among `kinds`, tostring one line
 * and free of secrets, and so are message, code, request_id and field. */
static inline void fuzz_check_error(const ec_client *c, int idx, const char *const *kinds)
{
    idx = lua_absindex(L, idx);
    FUZZ_ASSERT(lua_type(L, idx) == LUA_TTABLE, "error is a %s, not a table", luaL_typename(L, idx));
    lua_getfield(L, idx, "kind");
    const char *kind = lua_tostring(L, -1);
    int ok = 0;
    for (const char *const *k = kinds; kind && *k; k++)
        ok |= strcmp(*k, kind) == 0;
    FUZZ_ASSERT(ok, "unexpected error kind %s", kind ? kind : "(nil)");
    lua_pop(L, 1);
    size_t n;
    const char *line = luaL_tolstring(L, idx, &n);
    FUZZ_ASSERT(fuzz_one_line(line, n), "tostring(err) spans lines: %s", line);
    FUZZ_ASSERT(!fuzz_contains_secret(c, line, n), "tostring(err) shows a secret: %s", line);
    lua_pop(L, 1);
    lua_getfield(L, idx, "body"); /* the raw text of an undecodable 2xx: may span lines, never shows a secret */
    if (lua_type(L, -1) == LUA_TSTRING) {
        const char *s = lua_tolstring(L, -1, &n);
        FUZZ_ASSERT(!fuzz_contains_secret(c, s, n), "err.body shows a secret");
    }
    lua_pop(L, 1);
    static const char *const fields[] = { "message", "code", "request_id", "field", "retry_after_date", NULL };
    for (const char *const *f = fields; *f; f++) {
        lua_getfield(L, idx, *f);
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *s = lua_tolstring(L, -1, &n);
            FUZZ_ASSERT(fuzz_one_line(s, n), "err.%s spans lines", *f);
            FUZZ_ASSERT(!fuzz_contains_secret(c, s, n), "err.%s shows a secret: %s", *f, s);
        }
        lua_pop(L, 1);
    }
}

/* libFuzzer's one-time set-up hook, shared by both harnesses. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init();
    return 0;
}

#endif
