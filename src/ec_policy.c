/*
 * ec_policy.c - see ec_policy.h.
 */
#include "ec_policy.h"

#include <stdlib.h>
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

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H.
 * Hinnant's days_from_civil); a day past the month's end runs on into
 * the next month, as mktime does. */
static long long days_from_civil(long long y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int two(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* "D Mon YYYY HH:MM:SS" at s (D: the one or two digits there); 1 and *t
 * when it is */
static int date_at(const char *s, long long *t)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int dl = digits(s, 2) ? 2 : digits(s, 1) ? 1 : 0;
    if (dl == 0)
        return 0;
    int day = dl == 2 ? two(s) : s[0] - '0';
    const char *p = s + dl;
    if (p[0] != ' ' || p[4] != ' ' || !digits(p + 5, 4) || p[9] != ' ' || !digits(p + 10, 2) || p[12] != ':'
        || !digits(p + 13, 2) || p[15] != ':' || !digits(p + 16, 2))
        return 0;
    int month = 0;
    for (size_t i = 0; i < 12; i++)
        if (strncmp(p + 1, months + 3 * i, 3) == 0)
            month = (int)i + 1;
    long long hour = two(p + 10), min = two(p + 13), sec = two(p + 16);
    if (month == 0 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return 0;
    long long year = (long long)two(p + 5) * 100 + two(p + 7);
    *t = days_from_civil(year, month, day) * 86400 + hour * 3600 + min * 60 + sec;
    return 1;
}

int ec_retry_after_seconds(const char *value, long long now, long long *secs)
{
    if (value == NULL || value[0] == '\0')
        return 0;
    char *end;
    long long n = strtoll(value, &end, 10);
    if (value[0] >= '0' && value[0] <= '9' && *end == '\0') {
        *secs = n;
        return 1;
    }
    size_t len = strlen(value);
    for (size_t i = 0; i + 19 <= len; i++) {
        long long t;
        /* a day starts a run of digits: in "3000000000 Jan ..." no day is found */
        if ((i == 0 || value[i - 1] < '0' || value[i - 1] > '9') && date_at(value + i, &t)) {
            *secs = t > now ? t - now : 0;
            return 1;
        }
    }
    return 0;
}
