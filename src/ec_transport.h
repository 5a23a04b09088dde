/*
 * ec_transport.h - the libcurl transport: one easy handle per client, so
 * connections (and TLS sessions) are reused across calls.
 */
#ifndef EC_TRANSPORT_H
#define EC_TRANSPORT_H

#include "ec_client.h"
#include "ec_marshal.h"

typedef struct ec_transport ec_transport;

typedef struct {
    const char *kind;  /* "transport" or "timeout" */
    const char *code;  /* "resolve", "connect", "tls", "timeout", "send", "recv", "too_large", "protocol", "transport" */
    int sent;          /* some request bytes may have reached the server */
    int retryable;     /* a retry can help (the Lua layer still checks `sent` for creates) */
    char message[320];
} ec_transport_error;

/* Global libcurl set-up; call once per process before any handle. */
int ec_transport_global_init(void);

/* "libcurl/7.88.1 OpenSSL/3.0.x ..." for diagnostics. */
const char *ec_transport_version(void);

ec_transport *ec_transport_new(void);
void ec_transport_free(ec_transport *t);

/* Sends c->req.  On success fills resp (pointers valid until the next
 * call) and returns 0; otherwise fills err and returns -1. */
int ec_transport_perform(ec_transport *t, const ec_client *c, const ec_op *op,
                         ec_response *resp, ec_transport_error *err);

#endif
