/*
 * ec_curl.h - the libcurl transport: settings + message in, response or
 * transport error out.  Plain C: it knows nothing of Lua, clients or
 * requests, so a C program (spec/c/test_curl.c) can drive it alone.
 *
 * An easy handle (ec_easy) carries one exchange at a time; the exchange's
 * state (ec_exchange: what the callbacks capture, libcurl's header list)
 * is the caller's memory, so any number of messages can be in flight, one
 * per handle, on a libcurl multi handle (ec_multi.c):
 *
 *   ec_curl_setup(e, settings, policy, msg, x, &te)   -- 0, or -1 with te
 *   ... curl_easy_perform(ec_easy_curl(e)), or a multi handle ...
 *   ec_curl_finish(e, x, rc, &resp, &te)              -- 0 with resp, or -1 with te
 *
 * or ec_curl_perform() for the two around a blocking curl_easy_perform.
 * Options that depend only on the settings are set once per handle (again
 * only when the handle last carried other settings: ec_settings.id); a
 * call sets only what differs per message.
 */
#ifndef EC_CURL_H
#define EC_CURL_H

#include <stddef.h>

#include "ec_buf.h"
#include "ec_http1.h"
#include "ec_message.h"
#include "ec_policy.h"
#include "ec_transport.h"

typedef struct ec_easy ec_easy;
struct curl_slist;

/* What one exchange captured, and libcurl's copy of its headers. */
typedef struct {
    ec_buf body;
    size_t header_bytes;
    int too_large;      /* 1: body past max_response_size, 2: headers past the cap */
    ec_http1_head head; /* what RFC 9112 refuses and libcurl does not (ec_http1.c) */
    int bad_head;       /* the head was refused: head.why says why */
    char *fold;         /* the captured value an obs-fold line would continue */
    size_t fold_cap;
    char content_type[128];
    char retry_after[64];
    char request_id[128];
    int request_id_x;   /* request_id came from X-Request-Id, which wins over Request-Id */
    void *curl;         /* the CURL * carrying the exchange */
    int h2_prior_knowledge; /* plain-http HTTP/2 was asked for: every answer is HTTP/2 */
    int http_version;   /* the settings' (EC_HTTP_*), for the failure's message */
    int proxied;        /* the settings name a proxy */
    char location[512];
    char errbuf[256];   /* CURL_ERROR_SIZE */
    /* HTTP/2 (creates only, see ec_curl.c): did the server say it did not
     * process the request? */
    long h2_stream;     /* our stream id; 0 = unknown */
    long goaway_last;   /* GOAWAY's last-stream-id; -1 = no GOAWAY */
    int refused;        /* RST_STREAM REFUSED_STREAM */
    struct curl_slist *slist; /* the message's headers as libcurl takes them (the credential) */
} ec_exchange;

/* libcurl's process-wide set-up, done on first use (not at require):
 * 0, or -1 when it failed. */
int ec_curl_global_init(void);

/* "libcurl/7.88.1 OpenSSL/3.0.x ..." for diagnostics (initialises libcurl). */
const char *ec_curl_version(void);

/* A new easy handle (NULL when out of memory); ec_easy_free(NULL) is a no-op. */
ec_easy *ec_easy_new(void);
void ec_easy_free(ec_easy *e);

/* The CURL * inside (for curl_multi_add_handle, CURLOPT_PRIVATE). */
void *ec_easy_curl(ec_easy *e);

/* An exchange's state: empty; freed (the header list wiped: it holds the
 * credential); trimmed (a large answer's buffer is not kept). */
void ec_exchange_init(ec_exchange *x);
void ec_exchange_free(ec_exchange *x);
static inline void ec_exchange_trim(ec_exchange *x)
{
    if (x->body.cap > (size_t)256 * 1024)
        ec_buf_free(&x->body);
}

/* Makes e ready to carry m under settings s: the settings' options (only
 * when e last carried other settings), then the message's URL, method,
 * headers, body and the policy's connection-reuse rule, and where the
 * answer is captured (x, which must stay put until the exchange ends).
 * Returns 0, or -1 with te filled (out of memory building the headers). */
int ec_curl_setup(ec_easy *e, const ec_settings *s, const ec_policy *p, const ec_message *m, ec_exchange *x,
                  ec_transport_error *te);

/* The transfer on e ended with CURLcode rc: 0 and the answer in resp (its
 * strings live in x until its next exchange), or -1 and te classified. */
int ec_curl_finish(ec_easy *e, ec_exchange *x, int rc, ec_response *resp, ec_transport_error *te);

/* Setup, curl_easy_perform and finish in one go (a sequential call). */
int ec_curl_perform(ec_easy *e, const ec_settings *s, const ec_policy *p, const ec_message *m, ec_exchange *x,
                    ec_response *resp, ec_transport_error *te);

#endif
