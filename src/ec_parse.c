/*
 * ec_parse.c - an exchange's outcome as the caller sees it: an answer
 * becomes the decoded result or an error object (the vendor's error body
 * read by its row's shape, masked), a transport's failure becomes the
 * transport error object.  The meaning of a failure for the retries is
 * ec_policy.c's.  Both transports end here.
 */
#include "ec_parse.h"
#include "ec_error.h"
#include "ec_json.h"
#include "ec_jsondec.h"
#include "ec_mask.h"
#include "ec_policy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Decodes body (ec_jsondec.c); pushes the value, or nothing and writes a reason. */
static int decode_json(lua_State *L, const char *body, size_t len, char *why, size_t whylen)
{
    lua_getfield(L, LUA_REGISTRYINDEX, EC_JSON_ARRAY_MT);
    int rc = ec_json_decode(L, body, len, lua_gettop(L), why, whylen);
    lua_remove(L, rc == 0 ? -2 : -1);
    return rc;
}

/* JSON's whitespace (RFC 8259 §2), not isspace()'s: that one follows the
 * C locale, where 0xA0 may be a space. */
static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return 0;
    return 1;
}

/* Copies s into out as one printable line, at most outlen-1 bytes. */
static void one_line(const char *s, size_t n, char *out, size_t outlen)
{
    size_t j = 0;
    int space = 0;
    for (size_t i = 0; i < n && j + 1 < outlen; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7F) {
            space = j > 0;
            continue;
        }
        if (space && j + 2 < outlen)
            out[j++] = ' ';
        space = 0;
        out[j++] = (char)ch;
    }
    out[j] = '\0';
}

/* Reads a string or number at a dotted path ("errors.1.message") of the
 * table on top of the stack; returns a pointer valid while the table is. */
static const char *lookup(lua_State *L, const char *path, char *tmp, size_t tmplen)
{
    char key[64];
    lua_pushvalue(L, -1);
    while (*path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof key || lua_type(L, -1) != LUA_TTABLE) {
            lua_pop(L, 1);
            return NULL;
        }
        memcpy(key, path, n);
        key[n] = '\0';
        if (isdigit((unsigned char)key[0]))
            lua_rawgeti(L, -1, (lua_Integer)strtol(key, NULL, 10));
        else
            lua_getfield(L, -1, key);
        lua_remove(L, -2);
        path += n + (dot ? 1 : 0);
    }
    const char *res = NULL;
    if (lua_type(L, -1) == LUA_TNUMBER) {
        if (ec_json_format_number(L, -1, tmp, tmplen) == 0) /* locale-free, integers exact */
            res = tmp;
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        one_line(s, n, tmp, tmplen);
        res = tmp;
    }
    lua_pop(L, 1);
    return res;
}

/* The first of n dotted paths (a NULL ends them early) that holds a value. */
static const char *first_of(lua_State *L, const char *const *paths, size_t n, char *tmp, size_t tmplen)
{
    for (size_t i = 0; i < n && paths[i]; i++) {
        const char *v = lookup(L, paths[i], tmp, tmplen);
        if (v && *v)
            return v;
    }
    return NULL;
}

#define FIRST_OF(L, paths, tmp) first_of((L), (paths), sizeof(paths) / sizeof((paths)[0]), (tmp), sizeof(tmp))

static void html_title(const char *body, size_t n, char *out, size_t outlen)
{
    out[0] = '\0';
    const char *end = body + n;
    for (const char *p = body; p + 7 <= end; p++) {
        if (strncasecmp(p, "<title>", 7) != 0)
            continue;
        const char *start = p + 7;
        const char *q = start;
        while (q + 8 <= end && strncasecmp(q, "</title>", 8) != 0)
            q++;
        one_line(start, (size_t)(q - start), out, outlen);
        return;
    }
}

/* err.retry_after: the seconds Retry-After asks for, whether it gave
 * seconds or a date (ec_retry_after_seconds); a date is also kept as
 * written, in err.retry_after_date */
static void set_retry_after(lua_State *L, const char *header)
{
    if (header == NULL)
        return;
    long long secs;
    if (ec_retry_after_seconds(header, (long long)time(NULL), &secs))
        ec_error_int(L, "retry_after", (long)secs);
    if (header[0] < '0' || header[0] > '9')
        ec_error_str(L, "retry_after_date", header);
}

/* A header value as one printable line without secrets, or NULL. */
static const char *clean_header(const ec_client *c, const char *v, char *out, size_t outlen)
{
    if (v == NULL)
        return NULL;
    /* masked whole, then cut (a cut first could leave part of a secret) */
    size_t n = strlen(v);
    char *copy = malloc(n + 1);
    if (copy == NULL) {
        snprintf(out, outlen, "***");
        return out;
    }
    memcpy(copy, v, n + 1);
    n = ec_mask_inplace(c, copy, n, n + 1);
    one_line(copy, n, out, outlen);
    free(copy);
    return out;
}

int ec_parse_response(lua_State *L, const ec_client *c, const ec_op *op, const ec_response *resp)
{
    char why[200], tmp[400], msg[512];
    lua_checkstack(L, 8);
    long st = resp->status;
    if (st >= 200 && st < 300) {
        if (resp->body_len == 0 || is_blank(resp->body, resp->body_len)) {
            lua_pushboolean(L, 1);
            return 1;
        }
        if (decode_json(L, resp->body, resp->body_len, why, sizeof why) == 0)
            return 1;
        char cthdr[128], ridhdr[128];
        const char *ct = clean_header(c, resp->content_type, cthdr, sizeof cthdr);
        snprintf(msg, sizeof msg, "the server answered %ld with a body that is not valid JSON (%s; content-type %s)",
                 st, why, ct ? ct : "none");
        lua_pushnil(L);
        ec_error_new(L, c, op, "decode", msg);
        ec_error_int(L, "status", st);
        ec_error_str(L, "request_id", clean_header(c, resp->request_id, ridhdr, sizeof ridhdr));
        ec_policy pol = ec_policy_of(op);
        ec_verdict verdict = ec_policy_undecodable(&pol);
        ec_error_bool(L, "maybe_applied", verdict.maybe_applied);
        ec_error_bool(L, "retryable", verdict.retryable);
        /* the raw text, so that a caller can still find a new id by hand */
        ec_mask_push(L, c, resp->body, resp->body_len);
        lua_setfield(L, -2, "body");
        return 2;
    }

    /* An error body may echo the credential (a proxy's "invalid token
     * XYZ", percent- or JSON-escaped): everything below reads a copy masked
     * before decoding, so no message, code, request id or err.body can
     * carry one, however it is cut or escaped. A success body is returned
     * as sent (Kontent's clone result holds the API key on purpose). */
    char ridhdr[128], lochdr[320], rahdr[64];
    size_t body_len;
    ec_mask_push(L, c, resp->body, resp->body_len);
    const char *body = lua_tolstring(L, -1, &body_len);
    int masked = lua_gettop(L);
    const char *location = clean_header(c, resp->location, lochdr, sizeof lochdr);
    const char *retry_after = clean_header(c, resp->retry_after, rahdr, sizeof rahdr);
    const char *code = NULL, *message = NULL, *request_id = clean_header(c, resp->request_id, ridhdr, sizeof ridhdr);
    char codebuf[128], msgbuf[400], ridbuf[128];
    int have_body = 0;
    if (body_len > 0 && decode_json(L, body, body_len, why, sizeof why) == 0) {
        have_body = 1;
        if (lua_type(L, -1) == LUA_TTABLE) {
            /* where each part lives is the vendor row's knowledge */
            const ec_error_shape *shape = &c->vendor->errors;
            code = FIRST_OF(L, shape->code, codebuf);
            message = FIRST_OF(L, shape->message, msgbuf);
            if (code && message && strcmp(code, message) == 0) /* Qovery's old {error} alone */
                code = NULL;
            const char *rid = FIRST_OF(L, shape->request_id, ridbuf);
            if (rid)
                request_id = rid;

        }
    }
    if (message == NULL) {
        if (st >= 300 && st < 400) {
            snprintf(msgbuf, sizeof msgbuf, "redirect not followed%s%s", location ? " to " : "",
                     location ? location : "");
        } else {
            html_title(body, body_len, tmp, sizeof tmp);
            if (tmp[0] == '\0')
                one_line(body, body_len < 200 ? body_len : 200, tmp, sizeof tmp);
            snprintf(msgbuf, sizeof msgbuf, "HTTP %ld%s%s", st, tmp[0] ? ": " : "", tmp);
        }
        message = msgbuf;
    }
    lua_pushnil(L);
    if (have_body)
        lua_insert(L, -2); /* nil, body */
    ec_error_new(L, c, op, "http", message);
    ec_error_int(L, "status", st);
    if (code && code[0] && strspn(code, "0123456789") == strlen(code) && strlen(code) < 10)
        ec_error_int(L, "code", strtol(code, NULL, 10)); /* Kontent's error_code is a number */
    else
        ec_error_str(L, "code", code);
    ec_error_str(L, "request_id", request_id);
    ec_error_str(L, "reason", ec_error_reason(c->vendor, st, code));
    /* Kontent's validation_errors[], Versori's fields: the caller's list of what to fix */
    if (have_body && c->vendor->errors.details && lua_type(L, -2) == LUA_TTABLE) {
        lua_getfield(L, -2, c->vendor->errors.details);
        if (lua_type(L, -1) == LUA_TTABLE)
            lua_setfield(L, -2, "validation_errors");
        else
            lua_pop(L, 1);
    }
    ec_policy pol = ec_policy_of(op);
    ec_verdict verdict = ec_policy_status(&pol, st, resp->retry_after != NULL);
    ec_error_bool(L, "retryable", verdict.retryable);
    ec_error_bool(L, "maybe_applied", verdict.maybe_applied);
    set_retry_after(L, retry_after);
    if (have_body) {
        lua_insert(L, -2); /* nil, err, body */
        lua_setfield(L, -2, "body");
    }
    lua_remove(L, masked);
    return 2;
}

int ec_parse_transport_error(lua_State *L, const ec_client *c, const ec_op *op, const ec_transport_error *te)
{
    ec_policy pol = ec_policy_of(op);
    ec_failure f = ec_policy_transport(&pol, te);
    char msg[400];
    if (strcmp(te->code, "headers_too_large") == 0)
        snprintf(msg, sizeof msg,
                 "the response headers are larger than the limit (%zu KiB in all, %zu KiB a line); not read further",
                 EC_MAX_HEADER_BYTES / 1024, EC_MAX_HEADER_LINE / 1024);
    else if (strcmp(te->code, "too_large") == 0)
        snprintf(msg, sizeof msg, "the response body is larger than max_response_size (%zu bytes); not read further",
                 c ? c->settings.max_response_size : (size_t)0);
    else
        snprintf(msg, sizeof msg, "%s", te->message);
    lua_pushnil(L);
    ec_error_new(L, c, op, f.kind, msg);
    ec_error_str(L, "code", f.code);
    ec_error_bool(L, "retryable", f.verdict.retryable);
    ec_error_bool(L, "maybe_applied", f.verdict.maybe_applied);
    ec_error_bool(L, "sent", f.sent);
    return 2;
}
