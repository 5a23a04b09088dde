/*
 * ec_transport.h - what passes between the C core and a transport: the
 * settings a transport applies (ec_settings), the answer it hands back
 * (ec_response), or the failure it classified (ec_transport_error).  The
 * libcurl transport (ec_curl.c) fills them in C; a transport written in
 * Lua reads the settings from client:settings() and the request's fields,
 * and hands back a response table (req:parse) or a code (req:fail), which
 * ec_request.c turns into the same structs.  Plain C: no Lua here.
 */
#ifndef EC_TRANSPORT_H
#define EC_TRANSPORT_H

#include <stddef.h>

/* Caps on what a server may send back before the body (both transports). */
#define EC_MAX_HEADER_BYTES ((size_t)256 * 1024) /* all header lines of one response */
#define EC_MAX_HEADER_LINE ((size_t)100 * 1024)  /* one line (libcurl's own limit) */

/* The `http_version` option: "auto" (libcurl's default: HTTP/2 by ALPN
 * over https, HTTP/1.1 over http), "1.1", "2". */
enum { EC_HTTP_AUTO = 0, EC_HTTP_1_1, EC_HTTP_2 };

/* A client's transport settings (the strings are the client's: it made
 * them and frees them). */
typedef struct {
    unsigned long id;           /* unique in the process: whose settings a handle holds */
    long timeout_ms;
    long connect_timeout_ms;
    size_t max_response_size;
    char *ca_file;              /* NULL: the system's CA store */
    char *proxy;                /* explicit proxy URL, "env", or NULL (none) */
    int insecure;               /* skip TLS verification: explicit opt-in only */
    int http_version;           /* EC_HTTP_* above */
} ec_settings;

/* An answer, as a transport read it.  The strings belong to the
 * transport and stay valid until it carries the next exchange. */
typedef struct {
    long status;
    const char *body;
    size_t body_len;
    const char *content_type; /* NULL when absent */
    const char *retry_after;  /* raw Retry-After header, NULL when absent */
    const char *request_id;   /* X-Request-Id / Request-Id header, NULL when absent */
    const char *location;     /* Location header on redirects */
} ec_response;

/* A failed exchange, as classified by a transport.  What it means for a
 * retry (err.retryable, err.maybe_applied) is ec_policy.c's to say. */
typedef struct {
    const char *code;   /* a code of ec_policy.c's table: "connect", "recv", ... */
    int sent;           /* some request bytes may have reached the server */
    int retryable;      /* -1: the code's default; 0/1: the transport knows better */
    char message[320];
} ec_transport_error;

#endif
