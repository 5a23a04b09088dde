/*
 * ec_policy.c - see ec_policy.h.
 */
#include "ec_policy.h"

#include <string.h>

/* Connection reuse: only GETs go out on a reused connection.  libcurl (and
 * the cosocket transport, which follows it) re-sends a request when a
 * reused connection turns out to be closed before any answer byte; for a
 * create whose connection the server closed after acting that is a second
 * clone, and for a PUT/PATCH/DELETE a second application whose answer (404,
 * "already production") hides that the first one worked. */
ec_policy ec_policy_of(const ec_op *op)
{
    int get = strcmp(op->method, "GET") == 0;
    ec_policy p = { .reuse = get, .safe = get, .creates = op->creates != 0 };
    return p;
}

/* Statuses a later attempt may get past (RFC 9110 §15.5.9, §15.6; Kontent's
 * error page asks clients to retry 5xx).  A create only where the server
 * says it did not act: 429, and 503 with a Retry-After (a bare 503 may come
 * from a gateway that had passed the request on).
 *
 * Could the server have acted on a request that got this status?  429,
 * and 503 with a Retry-After, are the server saying "not now"; a bare 503
 * may come from a gateway that had already passed the request on, and
 * other 5xx leave it open too. */
ec_verdict ec_policy_status(const ec_policy *p, long status, int has_retry_after)
{
    ec_verdict v;
    if (p->creates)
        v.retryable = status == 429 || (status == 503 && has_retry_after);
    else
        v.retryable = status == 408 || status == 429 || status == 500 || status == 502 || status == 503
                      || status == 504;
    v.maybe_applied = !p->safe && status >= 500 && !(status == 503 && has_retry_after);
    return v;
}

/* A 2xx means the server did act: never retry a create over it. */
ec_verdict ec_policy_undecodable(const ec_policy *p)
{
    ec_verdict v = { .retryable = !p->creates, .maybe_applied = !p->safe };
    return v;
}

/* The transport codes: what a transport passes (ec_transport_error.code,
 * req:fail's first argument), what the error shows, and what the failure
 * says by itself. */
static const struct {
    const char *name;   /* what a transport passes */
    const char *code;   /* err.code */
    const char *kind;   /* err.kind */
    int retryable;      /* a retry can help (before the create rule) */
    int never_sent;     /* the failure comes before any request byte */
} codes[] = {
    { "resolve", "resolve", "transport", 1, 1 },
    { "connect", "connect", "transport", 1, 1 },
    { "tls", "tls", "transport", 1, 1 },
    { "unavailable", "unavailable", "transport", 0, 1 },
    { "timeout", "timeout", "timeout", 1, 0 },
    { "send", "send", "transport", 1, 0 },
    { "recv", "recv", "transport", 1, 0 },
    { "protocol", "protocol", "transport", 0, 0 },
    { "too_large", "too_large", "transport", 0, 0 },
    { "headers_too_large", "too_large", "transport", 0, 0 },
    { "proxy", "proxy", "transport", 0, 1 },
    { "transport", "transport", "transport", 0, 0 },
};

static int code_index(const char *name)
{
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(codes[i].name, name) == 0)
            return (int)i;
    return -1;
}

int ec_policy_transport_known(const char *code)
{
    return code_index(code) >= 0;
}

ec_failure ec_policy_transport(const ec_policy *p, const ec_transport_error *te)
{
    int i = code_index(te->code);
    if (i < 0)
        i = code_index("transport");
    ec_failure f;
    f.code = codes[i].code;
    f.kind = codes[i].kind;
    f.sent = codes[i].never_sent ? 0 : te->sent != 0;
    f.verdict.retryable = te->retryable >= 0 ? te->retryable : codes[i].retryable;
    /* a create that may have reached the server is never sent again */
    if (p->creates && f.sent)
        f.verdict.retryable = 0;
    /* only a request that may have reached the server may have acted */
    f.verdict.maybe_applied = f.sent && !p->safe;
    return f;
}
