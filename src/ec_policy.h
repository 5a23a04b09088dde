/*
 * ec_policy.h - what an operation row means for sending a call and for
 * its failures, in one place.
 *
 * From the row, once per call: may the request go out on a reused
 * connection, is it a GET (a failure never leaves anything applied), is
 * it a create (a retry could create twice).  From a failure: may a later
 * attempt help (err.retryable) and may the server have acted
 * (err.maybe_applied), for an HTTP status, a 2xx whose body could not be
 * read, or a transport's failure code.  The retry layer reads only those
 * two fields, so this file is the whole of "when is a call retried".
 * Plain C: no Lua here.
 */
#ifndef EC_POLICY_H
#define EC_POLICY_H

#include "ec_ops.h"
#include "ec_transport.h"

typedef struct {
    int reuse;   /* may go out on a reused connection: only GETs */
    int safe;    /* a GET: a failure never leaves anything applied */
    int creates; /* a retry could create twice */
} ec_policy;

/* The policy of op's calls. */
ec_policy ec_policy_of(const ec_op *op);

/* What a failure means to the caller. */
typedef struct {
    int retryable;     /* a later attempt may succeed and is safe to make */
    int maybe_applied; /* the server may have acted on the request */
} ec_verdict;

/* An HTTP answer outside 2xx; has_retry_after: it came with Retry-After. */
ec_verdict ec_policy_status(const ec_policy *p, long status, int has_retry_after);

/* A 2xx whose body is not JSON: the server did act. */
ec_verdict ec_policy_undecodable(const ec_policy *p);

/* A transport's failure, as the error object shows it. */
typedef struct {
    const char *code;  /* err.code: te->code, or "transport" for an unknown one */
    const char *kind;  /* err.kind: "transport" or "timeout" */
    int sent;          /* err.sent: request bytes may have reached the server */
    ec_verdict verdict;
} ec_failure;

/* Is code one of the transport codes ("connect", "recv", ...)? */
int ec_policy_transport_known(const char *code);

ec_failure ec_policy_transport(const ec_policy *p, const ec_transport_error *te);

/* A Retry-After value (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date
 * ("Wed, 21 Oct 2015 07:28:00 GMT", read as its day, month, year and
 * time, in UTC) taken against `now` (seconds since the epoch).  Returns 1
 * and the seconds to wait in *secs (0 for a date in the past), or 0 when
 * the value is neither.  The one reading of the header: the error's
 * `retry_after` and core.retry_after_seconds for the Lua layer. */
int ec_retry_after_seconds(const char *value, long long now, long long *secs);

#endif
