/*
 * ec_curl.c - the libcurl transport.
 *
 * Safety defaults live here: http/https only, no redirects followed (so a
 * credential never travels to another host), TLS verification on, connect
 * and total timeouts always set, a cap on the response body and headers.
 */
#include "ec_transport.h"

#include "ec_http1.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EC_MAX_HEADER_BYTES ((size_t)256 * 1024)

struct ec_transport {
    CURL *easy;
    ec_buf body;
    size_t header_bytes;
    int too_large;      /* 1: body past max_response_size, 2: headers past EC_MAX_HEADER_BYTES */
    ec_http1_head head; /* what RFC 9112 refuses and libcurl does not (ec_http1.c) */
    int bad_head;       /* the head was refused: head.why says why */
    char *fold;         /* the captured value an obs-fold line would continue */
    size_t fold_cap;
    size_t max_body;
    char content_type[128];
    char retry_after[64];
    char request_id[128];
    char location[512];
    char errbuf[CURL_ERROR_SIZE];
};

int ec_transport_global_init(void)
{
    static int done = 0;
    if (!done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return -1;
        done = 1;
    }
    return 0;
}

const char *ec_transport_version(void)
{
    return curl_version();
}

ec_transport *ec_transport_new(void)
{
    ec_transport *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->easy = curl_easy_init();
    if (t->easy == NULL) {
        free(t);
        return NULL;
    }
    ec_buf_init(&t->body, 0);
    return t;
}

void ec_transport_free(ec_transport *t)
{
    if (t == NULL)
        return;
    curl_easy_cleanup(t->easy);
    ec_buf_free(&t->body);
    free(t);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    ec_transport *t = ud;
    size_t n = size * nmemb;
    if (ec_buf_add(&t->body, data, n) != 0) {
        t->too_large = 1;
        return 0; /* aborts the transfer */
    }
    return n;
}

/* Copies the value of header line `line` into out when its name is `name`;
 * an obs-fold line (name NULL) adds its text to the last value captured,
 * after one SP (RFC 9112 §5.2). */
static void capture(ec_transport *t, const char *line, size_t n, const char *name, char *out, size_t outlen)
{
    size_t nl = name ? strlen(name) : 0;
    if (name == NULL && t->fold != NULL) {
        out = t->fold + strlen(t->fold);
        outlen = t->fold_cap - (size_t)(out - t->fold);
        if (out > t->fold && outlen > 1) {
            *out++ = ' ';
            outlen--;
        }
    } else if (name == NULL || n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':') {
        return;
    } else {
        t->fold = out;
        t->fold_cap = outlen;
        nl++;
    }
    const char *v = line + nl;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t len = (size_t)(end - v);
    if (len >= outlen)
        len = outlen - 1;
    memcpy(out, v, len);
    out[len] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    ec_transport *t = ud;
    size_t n = size * nmemb;
    t->header_bytes += n;
    if (t->header_bytes > EC_MAX_HEADER_BYTES) {
        t->too_large = 2;
        return 0;
    }
    int line = ec_http1_head_line(&t->head, data, n);
    if (line < 0) {
        t->bad_head = 1;
        return 0; /* aborts the transfer */
    }
    if (line == 1) {
        capture(t, data, n, NULL, NULL, 0);
        return n;
    }
    t->fold = NULL;
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* a new response (after 100 Continue): forget the previous one */
        t->content_type[0] = t->retry_after[0] = t->request_id[0] = t->location[0] = '\0';
        return n;
    }
    capture(t, data, n, "Content-Type", t->content_type, sizeof t->content_type);
    capture(t, data, n, "Retry-After", t->retry_after, sizeof t->retry_after);
    capture(t, data, n, "X-Request-Id", t->request_id, sizeof t->request_id);
    capture(t, data, n, "Request-Id", t->request_id, sizeof t->request_id);
    capture(t, data, n, "Location", t->location, sizeof t->location);
    return n;
}

static void classify(ec_transport *t, CURLcode rc, long request_size, ec_transport_error *err)
{
    err->kind = "transport";
    err->code = "transport";
    err->sent = request_size > 0;
    err->retryable = 0;
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        err->code = "resolve";
        err->sent = 0;
        err->retryable = 1;
        break;
    case CURLE_COULDNT_CONNECT:
        err->code = "connect";
        err->sent = 0;
        err->retryable = 1;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        err->kind = "timeout";
        err->code = "timeout";
        err->retryable = 1;
        break;
    case CURLE_SSL_CONNECT_ERROR:
        err->code = "tls";
        err->sent = 0; /* the handshake comes before any byte of the request */
        err->retryable = 1;
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
        err->code = "tls";
        err->sent = 0;
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
        /* also "Received HTTP/0.9": a garbage answer to a request that went
         * out, so `sent` stays what libcurl measured */
        err->code = "protocol";
        break;
    case CURLE_URL_MALFORMAT:
        err->code = "protocol";
        err->sent = 0;
        break;
    case CURLE_FILESIZE_EXCEEDED:
        err->code = "too_large";
        break;
    case CURLE_WRITE_ERROR:
        err->code = t->too_large ? "too_large" : t->bad_head ? "protocol" : "transport";
        break;
    case CURLE_BAD_FUNCTION_ARGUMENT: /* libcurl's header store refusing a line of the answer */
        if (t->header_bytes > 0)
            err->code = "protocol";
        break;
    case CURLE_WEIRD_SERVER_REPLY:  /* a head libcurl cannot read ("Header without colon", ...) */
    case CURLE_BAD_CONTENT_ENCODING: /* a transfer coding envclone never asked for */
        err->code = "protocol";
        break;
    case CURLE_OUT_OF_MEMORY:
        /* libcurl 7.x reports one header line over its own 100 KiB limit as
         * "out of memory"; once a status line is in, that is what it is */
        if (t->header_bytes > 0) {
            err->code = "too_large";
            t->too_large = 2;
        }
        break;
    case CURLE_SEND_ERROR:
        err->code = "send";
        err->retryable = 1;
        break;
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        err->code = "recv";
        err->retryable = 1;
        break;
    default:
        break;
    }
    if (strcmp(err->code, "too_large") == 0 && t->too_large == 2)
        snprintf(err->message, sizeof err->message,
                 "the response headers are larger than the limit (%zu KiB in all, 100 KiB a line); not read further",
                 EC_MAX_HEADER_BYTES / 1024);
    else if (strcmp(err->code, "too_large") == 0)
        snprintf(err->message, sizeof err->message,
                 "the response body is larger than max_response_size (%zu bytes); not read further", t->max_body);
    else if (t->bad_head)
        snprintf(err->message, sizeof err->message, "malformed HTTP response: %s", t->head.why);
    else
        snprintf(err->message, sizeof err->message, "%s", t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc));
}

/* The header list holds the credential: wipe it before it goes back to
 * the allocator. */
static void free_headers(struct curl_slist *headers)
{
    for (struct curl_slist *h = headers; h != NULL; h = h->next) {
        volatile char *p = h->data;
        while (*p)
            *p++ = '\0';
    }
    curl_slist_free_all(headers);
}

int ec_transport_perform(ec_transport *t, const ec_client *c, const ec_op *op,
                         ec_response *resp, ec_transport_error *err)
{
    CURL *h = t->easy;
    const ec_request *req = &c->req;
    struct curl_slist *headers = NULL;

    /* reset keeps the connection cache: only the options start afresh */
    curl_easy_reset(h);
    ec_buf_clear(&t->body);
    t->body.limit = c->max_response_size;
    t->max_body = c->max_response_size;
    t->header_bytes = 0;
    t->too_large = 0;
    t->bad_head = 0;
    t->fold = NULL;
    ec_http1_head_reset(&t->head);
    t->errbuf[0] = t->content_type[0] = t->retry_after[0] = t->request_id[0] = t->location[0] = '\0';

    const char *entry = req->headers.data;
    for (size_t i = 0; i < req->nheaders; i++) {
        struct curl_slist *next = curl_slist_append(headers, entry);
        if (next == NULL)
            goto oom;
        headers = next;
        entry += strlen(entry) + 1;
    }
    /* no "Expect: 100-continue" round trip; no "Transfer-Encoding" either */
    struct curl_slist *next = curl_slist_append(headers, "Expect:");
    if (next == NULL)
        goto oom;
    headers = next;

    curl_easy_setopt(h, CURLOPT_URL, ec_buf_cstr((ec_buf *)&req->url));
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    /* the credential goes to base_url and nowhere else: proxies named in
     * the environment (http_proxy, https_proxy, ALL_PROXY) are not used; to
     * go through a proxy, make it base_url */
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    /* libcurl silently re-sends a request when a reused connection turns
     * out to be closed before any answer byte.  For a create whose
     * connection the server closed after acting, that is a second clone;
     * for a PUT/PATCH/DELETE, a second application whose answer (404,
     * "already production") hides that the first one worked.  So only GETs
     * reuse connections; everything else goes out on a fresh one. */
    curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, strcmp(op->method, "GET") == 0 ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, c->insecure ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, c->insecure ? 0L : 2L);
    if (c->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_response_size);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t->errbuf);

    if (strcmp(op->method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(op->method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, op->method);
        if (req->has_body) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body.data);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body.len);
        } else if (strcmp(op->method, "POST") == 0) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        }
    }

    CURLcode rc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    free_headers(headers);
    if (rc == CURLE_OK && !ec_http1_head_complete(&t->head)) {
        /* libcurl returns the status of a head the connection cut short */
        rc = CURLE_PARTIAL_FILE;
        snprintf(t->errbuf, sizeof t->errbuf, "the answer ended inside its headers");
    }
    if (rc != CURLE_OK) {
        long request_size = 0;
        curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &request_size);
        classify(t, rc, request_size, err);
        return -1;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    resp->status = status;
    resp->body = t->body.data ? t->body.data : "";
    resp->body_len = t->body.len;
    resp->content_type = t->content_type[0] ? t->content_type : NULL;
    resp->retry_after = t->retry_after[0] ? t->retry_after : NULL;
    resp->request_id = t->request_id[0] ? t->request_id : NULL;
    resp->location = t->location[0] ? t->location : NULL;
    return 0;

oom:
    free_headers(headers);
    err->kind = "transport";
    err->code = "transport";
    err->sent = 0;
    err->retryable = 0;
    snprintf(err->message, sizeof err->message, "out of memory building the request headers");
    return -1;
}
