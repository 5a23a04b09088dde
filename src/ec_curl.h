/*
 * ec_curl.h - the libcurl transport, one easy handle per exchange.
 *
 * A sequential client performs on its own easy handle (connections and TLS
 * sessions are reused across calls).  A batch adds requests to a libcurl
 * multi handle instead: ec_curl_setup(easy, request), curl_multi_add_handle,
 * and once the transfer is done ec_curl_finish(L, easy, request, rc).
 * Options that depend only on the client are set once per handle; a call
 * sets only what differs per request.
 */
#ifndef EC_CURL_H
#define EC_CURL_H

#include "ec_request.h"

typedef struct ec_easy ec_easy;

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

/* Makes e ready to carry r: the client's options (only when e last carried
 * another client's request), then the request's URL, method, headers, body
 * and connection-reuse rule, and where the answer is captured (in r).
 * Returns 0, or -1 with te filled (out of memory, bad proxy set-up). */
int ec_curl_setup(ec_easy *e, ec_request *r, ec_transport_error *te);

/* The transfer on e for r ended with CURLcode rc: pushes the parsed result,
 * or nil + an error object (from the one transport-error constructor).
 * Returns the number of values pushed. */
int ec_curl_finish(lua_State *L, ec_easy *e, ec_request *r, int rc);

/* The same, as the raw answer: pushes a response table {status, headers,
 * body} (headers: the captured ones, lower-case names), or nil + error. */
int ec_curl_finish_raw(lua_State *L, ec_easy *e, ec_request *r, int rc);

/* Setup, curl_easy_perform and finish on e in one go (a sequential call). */
int ec_curl_perform(lua_State *L, ec_easy *e, ec_request *r, int raw);

#endif
