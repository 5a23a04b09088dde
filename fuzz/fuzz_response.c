/*
 * fuzz_response.c - libFuzzer harness of the response side of the marshal
 * engine: ec_parse_response (status, headers, body -> result or error).
 *
 * Input layout, readable so that seeds are plain text files:
 *   line 1     "<status> <operation index>"   e.g. "400 6"
 *   lines      "Name: value" headers, up to an empty line; Content-Type,
 *              Retry-After, X-Request-Id / Request-Id and Location are used
 *   the rest   the body, any bytes
 * Anything malformed is read leniently (missing numbers take defaults).
 *
 * Invariants (abort() = a finding):
 *   - never a crash, an ASan/UBSan report or a Lua error;
 *   - 2xx -> a result, or nil + an error of kind "decode";
 *     otherwise nil + an error of kind "http" carrying the status;
 *   - a GET is never reported as maybe_applied;
 *   - tostring(err), err.message, err.code and err.request_id are one line
 *     and never show the client's secrets (the server may echo them).
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Copies a header value (up to end of line, no NUL) into out. */
static void take_value(const char *v, const char *end, char *out, size_t outlen)
{
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    size_t n = 0;
    while (v < end && n + 1 < outlen)
        out[n++] = *v ? *v : ' ', v++;
    out[n] = '\0';
}

static int run(lua_State *l)
{
    const ec_op *op = lua_touserdata(l, lua_upvalueindex(1));
    const ec_client *cl = lua_touserdata(l, lua_upvalueindex(2));
    const ec_response *resp = lua_touserdata(l, lua_upvalueindex(3));
    int top = lua_gettop(l);
    int n = ec_parse_response(l, cl, op, resp);
    int ok2xx = resp->status >= 200 && resp->status < 300;
    if (n == 1) {
        FUZZ_ASSERT(ok2xx, "a result for status %ld", resp->status);
        FUZZ_ASSERT(lua_gettop(l) == top + 1 && !lua_isnil(l, -1), "result is nil");
        return 0;
    }
    FUZZ_ASSERT(n == 2 && lua_gettop(l) == top + 2 && lua_isnil(l, -2), "failure is not nil, err");
    static const char *const decode[] = { "decode", NULL };
    static const char *const http[] = { "http", NULL };
    fuzz_check_error(cl, -1, ok2xx ? decode : http);
    lua_getfield(l, -1, "status");
    FUZZ_ASSERT(lua_tointeger(l, -1) == resp->status, "err.status is not the status");
    lua_pop(l, 1);
    if (strcmp(op->method, "GET") == 0) {
        lua_getfield(l, -1, "maybe_applied");
        FUZZ_ASSERT(!lua_toboolean(l, -1), "a GET reported as maybe applied");
        lua_pop(l, 1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    long status = 200;
    unsigned opi = 0;
    if (p < end && isdigit((unsigned char)*p)) {
        status = 0;
        for (int i = 0; i < 4 && p < end && isdigit((unsigned char)*p); i++)
            status = status * 10 + (*p++ - '0');
    }
    while (p < end && *p == ' ')
        p++;
    if (p < end && isdigit((unsigned char)*p)) {
        for (int i = 0; i < 3 && p < end && isdigit((unsigned char)*p); i++)
            opi = opi * 10 + (unsigned)(*p++ - '0');
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    p = nl ? nl + 1 : end;

    char ct[256], ra[128], rid[256], loc[1024];
    int have_ct = 0, have_ra = 0, have_rid = 0, have_loc = 0;
    while (p < end && *p != '\n' && !(*p == '\r' && p + 1 < end && p[1] == '\n')) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon) {
            size_t nlen = (size_t)(colon - p);
            if (nlen == 12 && strncasecmp(p, "Content-Type", 12) == 0)
                take_value(colon + 1, le, ct, sizeof ct), have_ct = 1;
            else if (nlen == 11 && strncasecmp(p, "Retry-After", 11) == 0)
                take_value(colon + 1, le, ra, sizeof ra), have_ra = 1;
            else if ((nlen == 12 && strncasecmp(p, "X-Request-Id", 12) == 0)
                     || (nlen == 10 && strncasecmp(p, "Request-Id", 10) == 0))
                take_value(colon + 1, le, rid, sizeof rid), have_rid = 1;
            else if (nlen == 8 && strncasecmp(p, "Location", 8) == 0)
                take_value(colon + 1, le, loc, sizeof loc), have_loc = 1;
        }
        p = eol ? eol + 1 : end;
    }
    if (p < end)
        p += (*p == '\r') ? 2 : 1; /* the empty line */
    if (p > end)
        p = end;

    ec_response resp;
    memset(&resp, 0, sizeof resp);
    resp.status = status;
    /* the body in its own allocation, so ASan sees any read past its end */
    size_t blen = (size_t)(end - p);
    char *body = malloc(blen ? blen : 1);
    if (body == NULL)
        return 0;
    memcpy(body, p, blen);
    resp.body = body;
    resp.body_len = blen;
    resp.content_type = have_ct ? ct : NULL;
    resp.retry_after = have_ra ? ra : NULL;
    resp.request_id = have_rid ? rid : NULL;
    resp.location = have_loc ? loc : NULL;

    const ec_op *op = &ec_ops[opi % ec_ops_count];
    fuzz_state_open();
    int top = lua_gettop(L);
    lua_pushlightuserdata(L, (void *)op);
    lua_pushlightuserdata(L, fuzz_client_for(op));
    lua_pushlightuserdata(L, &resp);
    lua_pushcclosure(L, run, 3);
    if (lua_pcall(L, 0, 0, 0) != 0) {
        fprintf(stderr, "a Lua error escaped the response parser: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_settop(L, top);
    free(body);
    fuzz_state_close();
    return 0;
}
