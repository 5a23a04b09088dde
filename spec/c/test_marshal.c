/*
 * test_marshal.c - C-level tests of the marshal engine: requests built from
 * Lua tables for every operation, validation, and response parsing.  No
 * network: the engine is I/O-free by design.
 */
#include "ec_client.h"
#include "ec_error.h"
#include "ec_json.h"
#include "ec_marshal.h"
#include "ec_parse.h"
#include "ec_policy.h"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lua_State *L;

/* A client and the request message it builds (requests live outside the
 * client: see ec_request.h). */
typedef struct {
    ec_client cl;
    ec_message req;
} tclient;

static tclient make_client(const char *vendor, const char *base)
{
    tclient t;
    memset(&t, 0, sizeof t);
    ec_client *cp = &t.cl;
#define c (*cp)
    c.vendor = ec_vendor_find(vendor);
    c.base.url = (char *)base;
    c.user_agent = (char *)"envclone-test";
    for (int i = 0; c.vendor->credentials[i]; i++)
        c.secrets[i] = (char *)(strcmp(c.vendor->credentials[i], "cookie") == 0 ? "session=c00kie-secret"
                                                                                 : "s3cret-token-value");
#undef c
    ec_message_init(&t.req);
    return t;
}

static void free_client(tclient *t)
{
    ec_message_free(&t->req);
}

/* Evaluates a Lua expression that builds the argument table. */
static int push_args(const char *expr)
{
    char chunk[4096];
    snprintf(chunk, sizeof chunk, "return %s", expr);
    if (luaL_dostring(L, chunk) != 0) {
        fprintf(stderr, "bad Lua in test: %s\n", lua_tostring(L, -1));
        exit(2);
    }
    return lua_gettop(L);
}

static int has_header(const ec_message *r, const char *line)
{
    const char *e = r->headers.data;
    for (size_t i = 0; i < r->nheaders; i++, e += strlen(e) + 1)
        if (strcmp(e, line) == 0)
            return 1;
    return 0;
}

/* Builds a request; returns NULL on success or the error's field. */
static const char *build(tclient *t, const char *op_name, const char *expr, char *field, size_t fl)
{
    const ec_op *op = ec_op_find(t->cl.vendor->name, op_name);
    int top = lua_gettop(L);
    int args = push_args(expr);
    int n = ec_marshal_request(L, &t->cl, op, args, &t->req);
    const char *res = NULL;
    if (n == 2) {
        lua_getfield(L, -1, "field");
        snprintf(field, fl, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
        lua_pop(L, 1);
        lua_getfield(L, -1, "kind");
        if (strcmp(lua_tostring(L, -1), "validation") != 0)
            snprintf(field, fl, "!not a validation error");
        res = field;
    }
    lua_settop(L, top);
    return res;
}

#define ULID_ORG "01HZY8K2V6Q4N3M5T7W9X0ABCD"
#define ULID_PRJ "01HZY8K2V6Q4N3M5T7W9X0EFGH"
#define UUID_A "8d20758c-d74c-4f59-ae04-ee928c0816b7"

static void test_requests(void)
{
    char field[200];
    tclient v = make_client("versori", "https://h/api/v2");
    CHECK(build(&v, "clone_environment",
                "{organisation_id='" ULID_ORG "', project_id='" ULID_PRJ "', oldEnvName='prod', newEnvName='dev',"
                " cloneSystems=false}", field, sizeof field) == NULL, "versori clone builds");
    CHECK(strcmp(v.req.url.data, "https://h/api/v2/o/" ULID_ORG "/projects/" ULID_PRJ "/environments/clone") == 0,
          "versori url: %s", v.req.url.data);
    CHECK(strcmp(v.req.body.data, "{\"oldEnvName\":\"prod\",\"newEnvName\":\"dev\",\"cloneSystems\":false}") == 0,
          "versori body: %s", v.req.body.data);
    CHECK(has_header(&v.req, "Authorization: Bearer s3cret-token-value"), "versori bearer");
    CHECK(has_header(&v.req, "Content-Type: application/json"), "content type");
    CHECK(has_header(&v.req, "Accept: application/json"), "accept");

    CHECK(build(&v, "create_connection_version", "{organisation_id='" ULID_ORG "', connection_id='a/b?c#d e', name='1.0.0'}",
                field, sizeof field) == NULL, "connection version builds");
    CHECK(strstr(v.req.url.data, "/connections/a%2Fb%3Fc%23d%20e/versions") != NULL, "path param encoded: %s",
          v.req.url.data);
    /* the Connect API takes a bearer token first, then the cookie */
    CHECK(has_header(&v.req, "Authorization: Bearer s3cret-token-value"), "bearer preferred on the Connect API");
    CHECK(!has_header(&v.req, "Cookie: session=c00kie-secret"), "one credential per request");
    CHECK(strncmp(v.req.url.data, v.cl.base.url, strlen(v.cl.base.url)) == 0, "no connect base set: base_url");
    v.cl.bases[0].url = (char *)"https://platform.versori.com/api/connect/v1alpha1";
    CHECK(build(&v, "create_connection_version", "{organisation_id='" ULID_ORG "', connection_id='c1', name='1.0.0'}",
                field, sizeof field) == NULL, "connection version builds on the connect base");
    CHECK(strcmp(v.req.url.data, "https://platform.versori.com/api/connect/v1alpha1/o/" ULID_ORG
                                 "/connections/c1/versions") == 0, "connect base: %s", v.req.url.data);
    CHECK(build(&v, "clone_environment", "{organisation_id='" ULID_ORG "', project_id='" ULID_PRJ
                "', oldEnvName='prod', newEnvName='dev'}", field, sizeof field) == NULL
              && strncmp(v.req.url.data, v.cl.base.url, strlen(v.cl.base.url)) == 0,
          "platform op stays on base_url: %s", v.req.url.data);
    char *token = v.cl.secrets[0];
    v.cl.secrets[0] = NULL;
    CHECK(build(&v, "create_connection_version", "{organisation_id='" ULID_ORG "', connection_id='c1', name='1.0.0'}",
                field, sizeof field) == NULL, "cookie-only client builds");
    CHECK(has_header(&v.req, "Cookie: session=c00kie-secret"), "cookie auth without a token");
    CHECK(!has_header(&v.req, "Authorization: Bearer s3cret-token-value"), "no bearer without a token");
    v.cl.secrets[0] = token;
    const char *f = build(&v, "create_connection_version", "{organisation_id='" ULID_ORG "', connection_id='..', name='x'}",
                          field, sizeof field);
    CHECK(f && strcmp(f, "connection_id") == 0, "dot segment refused: %s", f ? f : "accepted");
    f = build(&v, "create_connection_version", "{organisation_id='" ULID_ORG "', connection_id='c', name='latest'}",
              field, sizeof field);
    CHECK(f && strcmp(f, "name") == 0, "reserved name refused");
    f = build(&v, "clone_environment", "{organisation_id='01hzy8k2v6q4n3m5t7w9x0abcI', project_id='" ULID_PRJ
              "', oldEnvName='a', newEnvName='b'}", field, sizeof field);
    CHECK(f && strcmp(f, "organisation_id") == 0, "ULID with I refused");
    free_client(&v);

    tclient k = make_client("kontent", "https://manage.kontent.ai/v2");
    CHECK(build(&k, "clone_environment",
                "{environment_id='" UUID_A "', name='Develop', roles_to_activate={},"
                " copy_data_options={content_items_assets=true, content_item_version_history=false}}",
                field, sizeof field) == NULL, "kontent clone builds");
    CHECK(strcmp(k.req.body.data, "{\"name\":\"Develop\",\"roles_to_activate\":[],\"copy_data_options\":"
                                  "{\"content_items_assets\":true,\"content_item_version_history\":false}}") == 0,
          "kontent body: %s", k.req.body.data);
    CHECK(build(&k, "rename_environment", "{environment_id='" UUID_A "', name='Tab\\t\"q\"'}", field, sizeof field) == NULL,
          "rename builds");
    CHECK(strcmp(k.req.body.data, "[{\"op\":\"rename_environment\",\"value\":\"Tab\\t\\\"q\\\"\"}]") == 0,
          "rename body: %s", k.req.body.data);
    f = build(&k, "mark_environment_as_production", "{environment_id='" UUID_A "'}", field, sizeof field);
    CHECK(f && strcmp(f, "enable_webhooks") == 0, "enable_webhooks is required: %s", f ? f : "accepted");
    CHECK(build(&k, "mark_environment_as_production", "{environment_id='" UUID_A "', enable_webhooks=false}", field,
                sizeof field) == NULL
              && strcmp(k.req.body.data, "{\"enable_webhooks\":false}") == 0, "PUT body: %s", k.req.body.data);
    CHECK(build(&k, "delete_environment", "{environment_id='" UUID_A "'}", field, sizeof field) == NULL
              && !k.req.has_body && !has_header(&k.req, "Content-Type: application/json"), "DELETE has no body");
    f = build(&k, "clone_environment", "{environment_id='" UUID_A "', name=string.rep('\\195\\169', 201)}", field, sizeof field);
    CHECK(f && strcmp(f, "name") == 0, "201 characters refused");
    CHECK(build(&k, "clone_environment", "{environment_id='" UUID_A "', name=string.rep('\\195\\169', 200)}", field,
                sizeof field) == NULL, "200 two-byte characters accepted");
    f = build(&k, "clone_environment", "{environment_id='" UUID_A "', name='x', roles_to_activate={'" UUID_A "', 'nope'}}",
              field, sizeof field);
    CHECK(f && strcmp(f, "roles_to_activate[2]") == 0, "array item named: %s", f ? f : "accepted");
    f = build(&k, "clone_environment", "{environment_id='" UUID_A "', name='x', copy_data_options={assets=true}}", field,
              sizeof field);
    CHECK(f && strcmp(f, "copy_data_options.assets") == 0, "unknown member named: %s", f ? f : "accepted");
    f = build(&k, "clone_environment", "{environment_id='" UUID_A "', name='\\255'}", field, sizeof field);
    CHECK(f && strcmp(f, "name") == 0, "invalid UTF-8 refused");
    f = build(&k, "clone_environment", "{environment_id='" UUID_A "', name='a\\0b'}", field, sizeof field);
    CHECK(f && strcmp(f, "name") == 0, "NUL refused");
    f = build(&k, "clone_environment", "{environment_id='" UUID_A "', name=5}", field, sizeof field);
    CHECK(f && strcmp(f, "name") == 0, "integer for string refused");
    f = build(&k, "clone_environment", "{environment_id='" UUID_A "'}", field, sizeof field);
    CHECK(f && strcmp(f, "name") == 0, "missing required named");
    f = build(&k, "clone_environment", "{environment_id='" UUID_A "', name='x', [1]='y'}", field, sizeof field);
    CHECK(f && strcmp(f, "(arguments)") == 0, "positional argument refused");
    free_client(&k);

    tclient d = make_client("droplit", "https://ioe.droplit.io/v0");
    CHECK(build(&d, "create_environment", "{ecosystemId='E1', meta={}, alias='a', metadata_prefix='$.'}", field,
                sizeof field) == NULL, "droplit builds");
    CHECK(strcmp(d.req.body.data, "{\"ecosystemId\":\"E1\",\"meta\":{},\"alias\":\"a\"}") == 0, "droplit body: %s",
          d.req.body.data);
    CHECK(has_header(&d.req, "authorization: s3cret-token-value"), "raw authorization");
    CHECK(has_header(&d.req, "x-system-metadata-prefix: $."), "metadata prefix header");
    CHECK(build(&d, "create_environment", "{ecosystemId='E1', meta={list={1,2,3}, n=1.5, t=true}}", field,
                sizeof field) == NULL, "nested meta builds");
    CHECK(strstr(d.req.body.data, "\"list\":[1,2,3]") && strstr(d.req.body.data, "\"n\":1.5"), "nested meta: %s",
          d.req.body.data);
    f = build(&d, "create_environment", "{ecosystemId='E1', meta={x=0/0}}", field, sizeof field);
    CHECK(f && strcmp(f, "meta.x") == 0, "NaN refused with path: %s", f ? f : "accepted");
    f = build(&d, "create_environment", "{ecosystemId='E1', meta={1,2}}", field, sizeof field);
    CHECK(f && strcmp(f, "meta") == 0, "array meta refused");
    f = build(&d, "create_environment", "{ecosystemId='E1', meta=(function() local t = {} t.self = t return t end)()}",
              field, sizeof field);
    CHECK(f != NULL, "cyclic meta refused");
    f = build(&d, "create_environment", "{ecosystemId='E1', alias='my-alias'}", field, sizeof field);
    CHECK(f && strcmp(f, "alias") == 0, "alias outside Droplit's a-z, A-Z, 0-9, _ refused");
    f = build(&d, "create_environment", "{ecosystemId='E1', alias=string.rep('a', 25)}", field, sizeof field);
    CHECK(f && strcmp(f, "alias") == 0, "alias over 24 characters refused");
    CHECK(build(&d, "create_environment", "{ecosystemId='C594b89aea18568c408c3ad24', alias=string.rep('a', 24)}", field,
                sizeof field) == NULL, "24-character alias and a 25-character system id accepted");
    f = build(&d, "create_environment", "{ecosystemId='E 1'}", field, sizeof field);
    CHECK(f && strcmp(f, "ecosystemId") == 0, "ecosystem id with a space refused");
    f = build(&d, "create_environment", "{ecosystemId='E1', metadata_prefix='a\\r\\nX-Evil: 1'}", field, sizeof field);
    CHECK(f && strcmp(f, "metadata_prefix") == 0, "CRLF in header refused");
    f = build(&d, "create_environment", "{ecosystemId='E1', meta={big=string.rep('x', 300000)}}", field, sizeof field);
    CHECK(f != NULL, "oversized body refused");
    free_client(&d);

    /* Qovery: API tokens go as "Token", JWTs as "Bearer" (OpenAPI securitySchemes) */
    tclient q = make_client("qovery", "https://api.qovery.com");
    q.cl.secrets[0] = (char *)"qov_abcdefghijklmnop";
    const char *qargs = "{applicationId='" UUID_A "', name='copy', environment_id='" UUID_A "'}";
    CHECK(build(&q, "clone_application", qargs, field, sizeof field) == NULL, "qovery builds");
    CHECK(has_header(&q.req, "Authorization: Token qov_abcdefghijklmnop"), "API token sent as Token");
    q.cl.secrets[0] = (char *)"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
    CHECK(build(&q, "clone_application", qargs, field, sizeof field) == NULL, "qovery jwt builds");
    CHECK(has_header(&q.req, "Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"),
          "JWT sent as Bearer");
    q.cl.scheme_override = EC_AUTH_TOKEN;
    CHECK(build(&q, "clone_application", qargs, field, sizeof field) == NULL
              && has_header(&q.req, "Authorization: Token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"),
          "token_type overrides the guess");
    free_client(&q);

    tclient nokey = make_client("kontent", "https://h");
    nokey.cl.secrets[0] = NULL;
    f = build(&nokey, "get_environment", "{environment_id='" UUID_A "'}", field, sizeof field);
    CHECK(f && strcmp(f, "api_key") == 0, "missing credential named");
    free_client(&nokey);
}

/* The read and teardown rows (issue 19): query parameters, the second
 * path template, integers; a failed validation leaves nothing built. */
static const char *errfield(const char *key);

static void test_lifecycle_requests(void)
{
    char field[200];
    const char *f;
    tclient v = make_client("versori", "https://h/api/v2");
    v.cl.bases[0].url = (char *)"https://h/api/connect/v1alpha1";
    CHECK(build(&v, "list_connection_versions", "{organisation_id='" ULID_ORG "', connection_id='c 1', first=20,"
                " after='a/b&c=d'}", field, sizeof field) == NULL, "list versions builds");
    CHECK(strcmp(v.req.url.data, "https://h/api/connect/v1alpha1/o/" ULID_ORG "/connections/c%201/versions"
                                 "?first=20&after=a%2Fb%26c%3Dd") == 0, "query encoded: %s", v.req.url.data);
    CHECK(!v.req.has_body, "a GET has no body");
    CHECK(build(&v, "list_connection_versions", "{organisation_id='" ULID_ORG "', connection_id='c1'}", field,
                sizeof field) == NULL
              && strcmp(v.req.url.data, "https://h/api/connect/v1alpha1/o/" ULID_ORG "/connections/c1/versions") == 0,
          "no query parameter, no '?': %s", v.req.url.data);
    CHECK(build(&v, "list_connection_versions", "{organisation_id='" ULID_ORG "', connection_id='c1', first=5.0}",
                field, sizeof field) == NULL && strstr(v.req.url.data, "?first=5") != NULL
              && strstr(v.req.url.data, "5.0") == NULL, "an integral float is an integer: %s", v.req.url.data);
    const char *bad_first[] = { "0", "101", "2.5", "'20'", "0/0", "1e300", "true" };
    for (size_t i = 0; i < sizeof bad_first / sizeof bad_first[0]; i++) {
        char expr[200];
        snprintf(expr, sizeof expr, "{organisation_id='" ULID_ORG "', connection_id='c1', first=%s}", bad_first[i]);
        f = build(&v, "list_connection_versions", expr, field, sizeof field);
        CHECK(f && strcmp(f, "first") == 0, "first=%s refused: %s", bad_first[i], f ? f : "accepted");
    }
    CHECK(build(&v, "delete_connection_version", "{organisation_id='" ULID_ORG "', connection_id='c1', version='1.0',"
                " force=true}", field, sizeof field) == NULL, "delete version builds");
    CHECK(strcmp(v.req.url.data, "https://h/api/connect/v1alpha1/o/" ULID_ORG "/connections/c1/versions/1.0"
                                 "?force=true") == 0, "boolean query: %s", v.req.url.data);
    CHECK(strcmp(v.req.method, "DELETE") == 0 && !v.req.has_body, "DELETE without a body");
    CHECK(build(&v, "delete_connection_version", "{organisation_id='" ULID_ORG "', connection_id='c1', version='1.0',"
                " force=false}", field, sizeof field) == NULL && strstr(v.req.url.data, "?force=false") != NULL,
          "force=false sent: %s", v.req.url.data);
    f = build(&v, "delete_connection_version", "{organisation_id='" ULID_ORG "', connection_id='c1', version='1.0',"
              " force='yes'}", field, sizeof field);
    CHECK(f && strcmp(f, "force") == 0, "a string for a boolean query parameter refused");
    f = build(&v, "delete_connection_version", "{organisation_id='" ULID_ORG "', connection_id='c1', version='default'}",
              field, sizeof field);
    CHECK(f && strcmp(f, "version") == 0, "reserved version refused on delete");
    f = build(&v, "get_connection_version", "{organisation_id='" ULID_ORG "', connection_id='c1', version='latest'}",
              field, sizeof field);
    CHECK(f && strcmp(f, "version") == 0, "reserved version refused on get");
    CHECK(build(&v, "delete_environment", "{organisation_id='" ULID_ORG "', project_id='" ULID_PRJ "', environment_id='"
                ULID_PRJ "'}", field, sizeof field) == NULL, "versori delete builds");
    CHECK(strcmp(v.req.url.data, "https://h/api/v2/o/" ULID_ORG "/projects/" ULID_PRJ "/environments/" ULID_PRJ) == 0
              && strcmp(v.req.method, "POST") == 0 && !v.req.has_body, "versori delete: POST %s", v.req.url.data);
    f = build(&v, "delete_environment", "{organisation_id='" ULID_ORG "', project_id='" ULID_PRJ
              "', environment_id='clone'}", field, sizeof field);
    CHECK(f && strcmp(f, "environment_id") == 0, "'clone' is not an environment id (it is the clone endpoint)");
    free_client(&v);

    tclient d = make_client("droplit", "https://ioe.droplit.io/v0");
    CHECK(build(&d, "get_environment", "{id='E53c19b2f3008801c0f4c3dca'}", field, sizeof field) == NULL
              && strcmp(d.req.url.data, "https://ioe.droplit.io/v0/api/environments/E53c19b2f3008801c0f4c3dca") == 0,
          "droplit by id: %s", d.req.url.data);
    CHECK(build(&d, "delete_environment", "{ecosystemId='C1', alias='my_alias'}", field, sizeof field) == NULL
              && strcmp(d.req.url.data, "https://ioe.droplit.io/v0/api/environments/C1;my_alias") == 0
              && strcmp(d.req.method, "DELETE") == 0,
          "droplit by alias, ';' as is: %s", d.req.url.data);
    const char *both_or_neither[][2] = {
        { "{}", "id" }, { "{ecosystemId='C1'}", "id" }, { "{alias='a'}", "id" },
        { "{id='E1', alias='a'}", "alias" }, { "{id='E1', ecosystemId='C1'}", "ecosystemId" },
        { "{id='E1', ecosystemId='C1', alias='a'}", "ecosystemId" },
    };
    for (size_t i = 0; i < sizeof both_or_neither / sizeof both_or_neither[0]; i++) {
        d.req.url.len = 0;
        if (d.req.url.data)
            d.req.url.data[0] = '\0';
        f = build(&d, "get_environment", both_or_neither[i][0], field, sizeof field);
        CHECK(f && strcmp(f, both_or_neither[i][1]) == 0, "%s refused naming %s: %s", both_or_neither[i][0],
              both_or_neither[i][1], f ? f : "accepted");
        CHECK(d.req.url.len == 0, "%s: nothing built (%s)", both_or_neither[i][0], d.req.url.data);
    }
    /* the message names both ways */
    int top = lua_gettop(L);
    push_args("{ecosystemId='C1'}");
    CHECK(ec_marshal_request(L, &d.cl, ec_op_find("droplit", "get_environment"), lua_gettop(L), &d.req) == 2,
          "neither way: nil, err");
    CHECK(strstr(errfield("message"), "give id, or ecosystemId and alias") != NULL, "message: %s", errfield("message"));
    lua_settop(L, top);
    f = build(&d, "delete_environment", "{ecosystemId='C1', alias='my-alias'}", field, sizeof field);
    CHECK(f && strcmp(f, "alias") == 0, "alias with '-' refused");
    f = build(&d, "delete_environment", "{ecosystemId='C1', alias=string.rep('a', 25)}", field, sizeof field);
    CHECK(f && strcmp(f, "alias") == 0, "25-character alias refused");
    f = build(&d, "delete_environment", "{id=''}", field, sizeof field);
    CHECK(f && strcmp(f, "id") == 0, "empty id refused");
    free_client(&d);

    tclient k = make_client("kontent", "https://manage.kontent.ai/v2");
    CHECK(build(&k, "list_subscription_projects", "{subscription_id='" UUID_A "', continuation='tok+/='}", field,
                sizeof field) == NULL, "subscription projects build");
    CHECK(strcmp(k.req.url.data, "https://manage.kontent.ai/v2/subscriptions/" UUID_A "/projects") == 0, "url: %s",
          k.req.url.data);
    CHECK(has_header(&k.req, "x-continuation: tok+/="), "continuation header");
    /* make_client gives every credential the same value; the Subscription API's is its own */
    k.cl.secrets[1] = (char *)"subscription-key-value";
    CHECK(build(&k, "list_subscription_projects", "{subscription_id='" UUID_A "'}", field, sizeof field) == NULL
              && has_header(&k.req, "Authorization: Bearer subscription-key-value"), "subscription key sent");
    k.cl.secrets[1] = NULL;
    f = build(&k, "list_subscription_projects", "{subscription_id='" UUID_A "'}", field, sizeof field);
    CHECK(f && strcmp(f, "subscription_api_key") == 0, "missing subscription key named: %s", f ? f : "accepted");
    free_client(&k);

    tclient q = make_client("qovery", "https://api.qovery.com");
    CHECK(build(&q, "list_applications", "{environmentId='" UUID_A "'}", field, sizeof field) == NULL
              && strcmp(q.req.url.data, "https://api.qovery.com/environment/" UUID_A "/application") == 0,
          "qovery list: %s", q.req.url.data);
    CHECK(build(&q, "get_application_status", "{applicationId='" UUID_A "'}", field, sizeof field) == NULL
              && strcmp(q.req.url.data, "https://api.qovery.com/application/" UUID_A "/status") == 0,
          "qovery status: %s", q.req.url.data);
    free_client(&q);
}

/* A teardown creates nothing: retried like any idempotent request, never
 * like a create, also when it is a POST (Versori delete_environment). */
static void test_teardown_policy(void)
{
    const ec_op *del = ec_op_find("versori", "delete_environment");
    const ec_op *clone = ec_op_find("versori", "clone_environment");
    const ec_op *kdel = ec_op_find("kontent", "delete_environment");
    CHECK(del && del->deletes && !del->creates && strcmp(del->method, "POST") == 0, "versori delete is a teardown POST");
    ec_policy p = ec_policy_of(del), pc = ec_policy_of(clone), pk = ec_policy_of(kdel);
    CHECK(!p.creates && pc.creates, "a teardown POST is not a create");
    CHECK(p.reuse == pk.reuse && p.safe == pk.safe && p.creates == pk.creates,
          "a teardown POST has a DELETE's policy");
    CHECK(ec_policy_status(&p, 502, 0).retryable && !ec_policy_status(&pc, 502, 0).retryable,
          "502: the teardown is retried, the create is not");
    CHECK(ec_policy_status(&p, 502, 0).maybe_applied, "502 on a teardown may have applied");
    ec_transport_error te = { .code = "recv", .sent = 1, .retryable = -1 };
    CHECK(ec_policy_transport(&p, &te).verdict.retryable && !ec_policy_transport(&pc, &te).verdict.retryable,
          "a lost answer: the teardown is retried, the create is not");
    CHECK(ec_policy_undecodable(&p).retryable, "an undecodable 2xx teardown may be retried");
}

/* Parses a response; leaves result/err on the stack, returns count. */
static int parse(tclient *t, const char *op_name, long status, const char *body, const char *retry_after)
{
    const ec_client *c = &t->cl;
    ec_response r;
    memset(&r, 0, sizeof r);
    r.status = status;
    r.body = body;
    r.body_len = strlen(body);
    r.retry_after = retry_after;
    return ec_parse_response(L, c, ec_op_find(c->vendor->name, op_name), &r);
}

static const char *errfield(const char *key)
{
    static char buf[512];
    lua_getfield(L, -1, key);
    snprintf(buf, sizeof buf, "%s", lua_isnil(L, -1) ? "(nil)" : lua_tostring(L, -1));
    lua_pop(L, 1);
    return buf;
}

static void test_responses(void)
{
    tclient k = make_client("kontent", "https://h");
    int top = lua_gettop(L);
    CHECK(parse(&k, "mark_environment_as_production", 204, "", NULL) == 1 && lua_toboolean(L, -1), "204 -> true");
    lua_settop(L, top);
    CHECK(parse(&k, "get_cloning_state", 200, "{\"cloning_state\":\"done\",\"x\":null}", NULL) == 1, "200 decodes");
    lua_getfield(L, -1, "x");
    CHECK(lua_type(L, -1) == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL, "JSON null is envclone.null");
    lua_settop(L, top);

    CHECK(parse(&k, "mark_environment_as_production", 400,
                "{\"request_id\":\"4c3b488c74c18640\",\"error_code\":232,\"message\":\"already production\"}", NULL) == 2,
          "400 -> nil, err");
    CHECK(strcmp(errfield("kind"), "http") == 0, "kind http");
    CHECK(strcmp(errfield("code"), "232") == 0, "code 232");
    lua_getfield(L, -1, "code");
    CHECK(lua_type(L, -1) == LUA_TNUMBER, "numeric code stays a number");
    lua_pop(L, 1);
    CHECK(strcmp(errfield("request_id"), "4c3b488c74c18640") == 0, "request id");
    CHECK(strcmp(errfield("message"), "already production") == 0, "message");
    lua_getfield(L, -1, "body");
    CHECK(lua_istable(L, -1), "vendor body kept");
    lua_pop(L, 1);
    ec_tolstring(L, -1, NULL);
    CHECK(strstr(lua_tostring(L, -1), "http 400 (code 232): already production [request_id 4c3b488c74c18640]") != NULL,
          "tostring: %s", lua_tostring(L, -1));
    lua_settop(L, top);

    CHECK(parse(&k, "get_environment", 502, "<html><head><title>502 Bad Gateway</title></head></html>", NULL) == 2,
          "502 html");
    CHECK(strcmp(errfield("message"), "HTTP 502: 502 Bad Gateway") == 0, "html title: %s", errfield("message"));
    CHECK(strcmp(errfield("retryable"), "true") != 0 || 1, "noop");
    lua_getfield(L, -1, "retryable");
    CHECK(lua_toboolean(L, -1), "502 retryable");
    lua_settop(L, top);

    CHECK(parse(&k, "clone_environment", 200, "{\"id\": \"abc\",", NULL) == 2, "malformed 200");
    CHECK(strcmp(errfield("kind"), "decode") == 0, "decode kind");
    lua_getfield(L, -1, "maybe_applied");
    CHECK(lua_toboolean(L, -1), "malformed 2xx on a create may have been applied");
    lua_settop(L, top);

    CHECK(parse(&k, "clone_environment", 429, "{\"message\":\"slow down s3cret-token-value\"}", "7") == 2, "429");
    CHECK(strcmp(errfield("retry_after"), "7") == 0, "retry-after seconds");
    CHECK(strstr(errfield("message"), "s3cret") == NULL && strstr(errfield("message"), "***") != NULL,
          "echoed secret scrubbed: %s", errfield("message"));
    lua_getfield(L, -1, "maybe_applied");
    CHECK(!lua_toboolean(L, -1), "429 was not applied");
    lua_settop(L, top);

    CHECK(parse(&k, "clone_environment", 500, "plain\ntext\r\nerror", NULL) == 2, "500 text");
    CHECK(strcmp(errfield("message"), "HTTP 500: plain text error") == 0, "one line: %s", errfield("message"));
    lua_getfield(L, -1, "maybe_applied");
    CHECK(lua_toboolean(L, -1), "500 on a create may have been applied");
    lua_settop(L, top);

    tclient d = make_client("droplit", "https://h");
    CHECK(parse(&d, "create_environment", 400,
                "{\"errors\":[{\"type\":\"invalidBody\",\"name\":\"Alias Exists\",\"message\":\"alias taken\"}]}", NULL) == 2,
          "droplit error");
    CHECK(strcmp(errfield("code"), "Alias Exists") == 0, "droplit code: %s", errfield("code"));
    CHECK(strcmp(errfield("message"), "alias taken") == 0, "droplit message");
    CHECK(strcmp(errfield("reason"), "alias_exists") == 0, "droplit reason: %s", errfield("reason"));
    lua_settop(L, top);
    CHECK(parse(&k, "mark_environment_as_production", 400,
                "{\"request_id\":\"r1\",\"error_code\":232,\"message\":\"already\"}", NULL) == 2, "kontent 232");
    CHECK(strcmp(errfield("reason"), "already_production") == 0, "232 reason: %s", errfield("reason"));
    lua_settop(L, top);
    CHECK(parse(&k, "clone_environment", 400,
                "{\"request_id\":\"r2\",\"error_code\":5,\"message\":\"bad\","
                "\"validation_errors\":[{\"message\":\"name too long\",\"path\":\"name\"}]}", NULL) == 2,
          "kontent validation");
    CHECK(strcmp(errfield("reason"), "invalid_body") == 0, "400 reason: %s", errfield("reason"));
    lua_getfield(L, -1, "validation_errors");
    CHECK(lua_type(L, -1) == LUA_TTABLE && ec_rawlen(L, -1) == 1, "validation_errors copied");
    lua_settop(L, top);
    CHECK(parse(&k, "get_environment", 429, "{\"request_id\":\"r3\",\"error_code\":10000,\"message\":\"slow\"}", "1")
              == 2, "kontent 429");
    CHECK(strcmp(errfield("reason"), "rate_limited") == 0, "429 reason");
    lua_settop(L, top);
    CHECK(parse(&k, "get_environment", 502, "<html><title>Bad gateway</title></html>", NULL) == 2, "502");
    CHECK(strcmp(errfield("reason"), "server_error") == 0, "5xx reason");
    lua_settop(L, top);
    tclient q = make_client("qovery", "https://h");
    CHECK(parse(&q, "clone_application", 404, "{\"status\":404,\"error\":\"NOT_FOUND\",\"message\":\"no app\"}", NULL) == 2,
          "qovery error");
    CHECK(strcmp(errfield("code"), "NOT_FOUND") == 0 && strcmp(errfield("message"), "no app") == 0, "qovery fields");
    lua_settop(L, top);
    CHECK(parse(&q, "clone_application", 404, "{\"status\":404,\"detail\":\"Application not found\"}", NULL) == 2,
          "qovery {status, detail}");
    CHECK(strcmp(errfield("message"), "Application not found") == 0, "qovery detail: %s", errfield("message"));
    CHECK(strcmp(errfield("reason"), "not_found") == 0, "qovery reason");
    lua_settop(L, top);
    free_client(&k);
    free_client(&d);
    free_client(&q);
}

static void test_utf8(void)
{
    size_t n;
    CHECK(ec_utf8_count("h\xc3\xa9llo", 6, &n) == 0 && n == 5, "utf8 count");
    CHECK(ec_utf8_count("\xc0\xaf", 2, &n) != 0, "overlong refused");
    CHECK(ec_utf8_count("\xed\xa0\x80", 3, &n) != 0, "surrogate refused");
    CHECK(ec_utf8_count("\xf4\x90\x80\x80", 4, &n) != 0, "past U+10FFFF refused");
    CHECK(ec_utf8_count("\xe2\x82", 2, &n) != 0, "truncated refused");
}

/* Regressions: each case is a bug the fuzzers (fuzz/) or the sanitizer
 * builds found; the comment says which. */
static int shows(const char *s, const char *secret, size_t k)
{
    /* does s hold the first k bytes of secret? */
    for (; *s; s++)
        if (strncmp(s, secret, k) == 0)
            return 1;
    return 0;
}

static void test_regressions(void)
{
    char field[200];
    int top = lua_gettop(L);

    /* sanitizer (float-cast-overflow): integers went through a double, so
     * math.maxinteger was sent as -9223372036854775808 */
    tclient d = make_client("droplit", "https://h");
#if LUA_VERSION_NUM >= 503 /* 64-bit integers (no math.maxinteger in 5.1/5.2/LuaJIT) */
    CHECK(build(&d, "create_environment", "{ecosystemId='E', meta={big=math.maxinteger}}", field, sizeof field) == NULL
              && strstr(d.req.body.data, "\"big\":9223372036854775807") != NULL,
          "maxinteger kept: %s", d.req.body.data);
    CHECK(build(&d, "create_environment", "{ecosystemId='E', meta={small=math.mininteger}}", field, sizeof field) == NULL
              && strstr(d.req.body.data, "\"small\":-9223372036854775808") != NULL,
          "mininteger kept: %s", d.req.body.data);
#endif

    /* the request fuzzer: a nested key with a newline put a line break
     * into err.field and tostring(err) */
    const char *f = build(&d, "create_environment", "{ecosystemId='E', meta={['a\\nb']=0/0}}", field, sizeof field);
    CHECK(f && strcmp(f, "meta.a?b") == 0, "nested key shown on one line: %s", f ? f : "accepted");

    /* the request fuzzer: an unknown key holding the token showed it in
     * err.field (only the message was scrubbed) */
    f = build(&d, "create_environment", "{ecosystemId='E', ['xs3cret-token-valuex']=1}", field, sizeof field);
    CHECK(f && strstr(f, "s3cret-token-value") == NULL && strstr(f, "***") != NULL, "field scrubbed: %s",
          f ? f : "accepted");

    /* the battery: a free-form object (Droplit meta) marked with
     * envclone.array_mt was sent as "meta":[] */
    f = build(&d, "create_environment",
              "{ecosystemId='E', meta=setmetatable({}, debug.getregistry()['envclone.core.array_mt'])}", field,
              sizeof field);
    CHECK(f && strcmp(f, "meta") == 0, "array-marked meta refused: %s", f ? f : d.req.body.data);
    free_client(&d);

    /* the response fuzzer (UBSan float-cast-overflow): a numeric error code
     * of 1e300 was cast to long long */
    tclient k = make_client("kontent", "https://h");
    CHECK(parse(&k, "get_environment", 400, "{\"error_code\":1e300,\"message\":\"m\",\"request_id\":1e19}", NULL) == 2,
          "huge numbers in an error body");
    CHECK(strcmp(errfield("code"), "1e+300") == 0, "huge code printed as a float: %s", errfield("code"));
    lua_settop(L, top);

    /* the response fuzzer: a server echoing the credential in the error
     * code (and request id, message, headers, err.body) showed it in
     * tostring(err) */
    ec_response r;
    memset(&r, 0, sizeof r);
    r.status = 401;
    r.body = "{\"error_code\":\"bad s3cret-token-value\",\"request_id\":\"s3cret-token-value\","
             "\"message\":\"token s3cret-token-value refused\"}";
    r.body_len = strlen(r.body);
    r.request_id = "s3cret-token-value";
    r.location = "http://x/?t=s3cret-token-value";
    CHECK(ec_parse_response(L, &k.cl, ec_op_find("kontent", "get_environment"), &r) == 2, "echoed secret: nil, err");
    ec_tolstring(L, -1, NULL);
    CHECK(!shows(lua_tostring(L, -1), "s3cret-token-value", 8), "tostring scrubbed: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    CHECK(strcmp(errfield("code"), "bad ***") == 0, "code scrubbed: %s", errfield("code"));
    CHECK(strcmp(errfield("request_id"), "***") == 0, "request_id scrubbed: %s", errfield("request_id"));
    lua_getfield(L, -1, "body");
    lua_getfield(L, -1, "message");
    CHECK(lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "token *** refused") == 0, "err.body scrubbed too");
    lua_settop(L, top);

    /* a secret cut in half by a message's length limit: the first half
     * must not show either */
    char body[260];
    memset(body, 'x', 190);
    strcpy(body + 190, " s3cret-token-value and more");
    CHECK(parse(&k, "get_environment", 500, body, NULL) == 2, "long text body");
    CHECK(!shows(errfield("message"), "s3cret-token-value", 8), "no half secret: %s", errfield("message"));
    lua_settop(L, top);

    /* CR or control bytes in header values (a lone CR reaches us through
     * libcurl and cosockets alike) must not break the one-line tostring */
    memset(&r, 0, sizeof r);
    r.status = 503;
    r.body = "";
    r.request_id = "abc\rdef\x1b[2J";
    r.retry_after = "Wed, 21 Oct 2015\r\n07:28:00 GMT";
    CHECK(ec_parse_response(L, &k.cl, ec_op_find("kontent", "get_environment"), &r) == 2, "control bytes in headers");
    CHECK(strcmp(errfield("request_id"), "abc def [2J") == 0, "request id on one line: %s", errfield("request_id"));
    CHECK(strchr(errfield("retry_after_date"), '\n') == NULL, "retry date on one line");
    lua_settop(L, top);
    free_client(&k);
}

/* Retry-After, read once for every path (ec_policy.c) */
static void test_retry_after(void)
{
    const long long now = 1445412480; /* Wed, 21 Oct 2015 07:28:00 GMT */
    long long s = -1;
    CHECK(ec_retry_after_seconds("120", now, &s) && s == 120, "delay-seconds: %lld", s);
    CHECK(ec_retry_after_seconds("0", now, &s) && s == 0, "zero");
    CHECK(ec_retry_after_seconds("Wed, 21 Oct 2015 07:28:30 GMT", now, &s) && s == 30, "a date 30 s ahead: %lld", s);
    CHECK(ec_retry_after_seconds("Wed, 21 Oct 2015 07:27:00 GMT", now, &s) && s == 0, "a date in the past");
    CHECK(ec_retry_after_seconds("Thu, 01 Jan 1970 00:00:00 GMT", 0, &s) && s == 0, "the epoch");
    CHECK(ec_retry_after_seconds("Fri, 29 Feb 2016 00:00:00 GMT", 1456704000 - 10, &s) && s == 10, "a leap day");
    CHECK(ec_retry_after_seconds("Sat, 1 Jan 2000 00:00:01 GMT", 946684800, &s) && s == 1, "a one-digit day");
    const char *bad[] = { "", "-5", "5s", " 5", "x", "Wed, 99 Oct 2015 07:28:00 GMT", "3000000000 Jan 2020 00:00:00",
                          "Wed, 21 Okt 2015 07:28:00 GMT", "Wed, 21 Oct 2015 24:00:00 GMT", "Wed, 21 Oct 2015 07:28" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(!ec_retry_after_seconds(bad[i], now, &s), "not a Retry-After: '%s'", bad[i]);
}

int main(void)
{
    L = luaL_newstate();
    luaL_openlibs(L);
    ec_json_init(L);
    ec_error_init(L);
    test_requests();
    test_responses();
    test_utf8();
    test_regressions();
    test_retry_after();
    test_lifecycle_requests();
    test_teardown_policy();
    lua_close(L);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
