/*
 * ec_curl.c - the libcurl transport.
 *
 * Safety defaults live here: http and https only, no redirects followed (so
 * a credential never travels to another host), TLS verification on, connect
 * and total timeouts always set, a cap on the response body and headers, no
 * proxy from the environment unless asked for.
 */
#include "ec_curl.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { M_NONE, M_GET, M_POST, M_CUSTOM };

#if LIBCURL_VERSION_NUM < 0x073f00 /* no URL API before 7.63.0: libcurl parses the text */
typedef void CURLU;
#define curl_url_cleanup(u) ((void)(u))
#endif

struct ec_easy {
    CURL *h;
    unsigned long settings_id; /* whose settings the handle holds; 0 = none */
    int method;              /* how the method options were left (M_*) */
    long fresh;              /* CURLOPT_FRESH_CONNECT as last set; -1 = unknown */
    int watch_h2;            /* the HTTP/2 watch (on_debug) is on */
    const ec_exchange *ex;   /* where the callbacks write */
    CURLU *url;              /* the last request's URL, parsed (see set_url) */
    char *url_text;          /* ... and as text; NULL: url holds nothing */
    int url_on_handle;       /* both are what the handle's URL options hold */
    long buffer_size;        /* CURLOPT_BUFFERSIZE as set; 0 = libcurl's default */
    long next_buffer_size;   /* what the last answer asks for (see receive_buffer) */
};

/* One share for the process: TLS sessions and DNS answers.  A create goes
 * out on a fresh connection (ec_policy.c), which over https is a TLS
 * handshake each time; with the session libcurl kept from the last one it
 * is resumed (an abbreviated handshake), whichever easy handle or batch
 * slot carries it.  libcurl matches a session to its host, port and TLS
 * settings (CA file, verification), so clients that differ in those never
 * share one.  The locks make the share safe in a host that runs Lua states
 * on several threads. */
static CURLSH *share;
static pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
    (void)h;
    (void)access;
    (void)ud;
    pthread_mutex_lock(&share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
    (void)h;
    (void)ud;
    pthread_mutex_unlock(&share_locks[data]);
}

static void share_init(void)
{
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&share_locks[i], NULL);
    share = curl_share_init();
    if (share == NULL)
        return; /* then each handle keeps its own cache, as without a share */
    curl_share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
}

int ec_curl_global_init(void)
{
    static int done = 0;
    if (!done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return -1;
        share_init();
        done = 1;
    }
    return 0;
}

const char *ec_curl_version(void)
{
    if (ec_curl_global_init() != 0)
        return "libcurl (not initialised)";
    return curl_version();
}

ec_easy *ec_easy_new(void)
{
    if (ec_curl_global_init() != 0)
        return NULL;
    ec_easy *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->h = curl_easy_init();
    if (e->h == NULL) {
        free(e);
        return NULL;
    }
    e->fresh = -1;
    return e;
}

void ec_easy_free(ec_easy *e)
{
    if (e == NULL)
        return;
    curl_easy_cleanup(e->h);
    curl_url_cleanup(e->url);
    free(e->url_text);
    free(e);
}

/* The request's URL, handed to libcurl parsed (CURLOPT_CURLU) as well as
 * as text.  Given only the text, libcurl parses it and prints it back on
 * every transfer, about 13k instructions (callgrind, 7.88) of the ~65k a
 * loopback GET costs it; given a parsed URL, it copies that instead.  The
 * parse is kept for the next request with the same URL (a waiter polling
 * one state, a batch reading many).  It is parsed with the flags libcurl
 * would use (CURLU_PATH_AS_IS: CURLOPT_PATH_AS_IS is set); the text stays
 * set for libcurl's messages and CURLINFO_EFFECTIVE_URL.  Should the parse
 * fail, libcurl is left to parse the text itself, and to say why.  Both
 * options stay set from one transfer to the next: an unchanged URL is not
 * set again (libcurl copies the text each time it is). */
static void set_url(ec_easy *e, const char *text)
{
    CURL *h = e->h;
#if LIBCURL_VERSION_NUM >= 0x073f00 /* CURLOPT_CURLU: 7.63.0 */
    if (e->url_text != NULL && strcmp(e->url_text, text) == 0) {
        if (!e->url_on_handle) {
            curl_easy_setopt(h, CURLOPT_URL, text);
            curl_easy_setopt(h, CURLOPT_CURLU, e->url);
            e->url_on_handle = 1;
        }
        return;
    }
    free(e->url_text);
    e->url_text = NULL;
    if (e->url == NULL)
        e->url = curl_url();
    if (e->url != NULL && curl_url_set(e->url, CURLUPART_URL, text, CURLU_PATH_AS_IS) == CURLUE_OK)
        e->url_text = strdup(text);
    curl_easy_setopt(h, CURLOPT_URL, text);
    curl_easy_setopt(h, CURLOPT_CURLU, e->url_text != NULL ? e->url : NULL);
    e->url_on_handle = e->url_text != NULL;
#else
    curl_easy_setopt(h, CURLOPT_URL, text);
#endif
}

/* The receive buffer: sized to the answers the handle has been getting.
 *
 * libcurl mallocs its receive buffer (CURLOPT_BUFFERSIZE, 16 KiB by
 * default) at the start of every transfer and frees it at the end.  In a
 * Lua 5.4 process, whose collector leaves glibc's heap in small pieces, a
 * 16 KiB block is carved from the top of the heap, and freeing it lets
 * glibc trim the top and grow it again on the next transfer: page faults
 * that cost a batch of loopback GETs about 10% of its time (bench/batch.sh,
 * 0.88x C libcurl multi with 16 KiB, 0.94-0.96x with 1-2 KiB).  These APIs
 * answer with a few hundred bytes to a few KiB, so the buffer starts at
 * 1 KiB and follows the last answer's size (head and body, rounded up to
 * a power of two, at most libcurl's 16 KiB default): a large answer costs
 * more reads once, then the buffer grows. */
#define EC_MIN_BUFFER 1024L
#define EC_MAX_BUFFER 16384L

static void receive_buffer(ec_easy *e, int may_multiplex)
{
    long want = e->next_buffer_size ? e->next_buffer_size : EC_MIN_BUFFER;
    /* Over HTTP/2, libcurl 7.88 writes one stream's DATA into another
     * transfer's receive buffer while it drains the shared connection, and
     * it copies as much as its own buffer holds: with buffers of different
     * sizes on one connection that is a heap overflow (ASan, a batch of
     * GETs multiplexed with PIPEWAIT through nginx `ssl http2`; the class
     * of curl/curl#10525).  A transfer that may share an HTTP/2 connection
     * keeps libcurl's one default size, the same for every handle. */
    if (may_multiplex)
        want = EC_MAX_BUFFER;
    if (want != e->buffer_size) {
        curl_easy_setopt(e->h, CURLOPT_BUFFERSIZE, want);
        e->buffer_size = want;
    }
}

static void remember_answer_size(ec_easy *e, const ec_exchange *x)
{
    size_t n = x->header_bytes + x->body.len;
    long size = EC_MIN_BUFFER;
    while (size < EC_MAX_BUFFER && (size_t)size < n)
        size *= 2;
    e->next_buffer_size = size;
}

void *ec_easy_curl(ec_easy *e)
{
    return e->h;
}

static void slist_free(struct curl_slist *headers);

void ec_exchange_init(ec_exchange *x)
{
    memset(x, 0, sizeof *x);
    ec_buf_init(&x->body, 0);
}

void ec_exchange_free(ec_exchange *x)
{
    ec_buf_free(&x->body);
    slist_free(x->slist);
    x->slist = NULL;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    ec_exchange *x = ud;
    size_t n = size * nmemb;
    if (ec_buf_add(&x->body, data, n) != 0) {
        x->too_large = 1;
        return 0; /* aborts the transfer */
    }
    return n;
}

/* Copies the value of header line `line` into out when its name is `name`;
 * an obs-fold line (name NULL) adds its text to the last value captured,
 * after one SP (RFC 9112 §5.2). */
static void capture(ec_exchange *x, const char *line, size_t n, const char *name, size_t nl, char *out,
                    size_t outlen)
{
    if (name == NULL && x->fold != NULL) {
        out = x->fold + strlen(x->fold);
        outlen = x->fold_cap - (size_t)(out - x->fold);
        if (out > x->fold && outlen > 1) {
            *out++ = ' ';
            outlen--;
        }
    } else if (name == NULL || n <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0) {
        return;
    } else {
        x->fold = out;
        x->fold_cap = outlen;
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

#define CAPTURE(line, n, name, out) capture(x, (line), (n), (name), sizeof(name) - 1, (out), sizeof(out))

/* OpenSSL's SSL_get0_alpn_selected, from the libssl libcurl loaded (it
 * is not linked here: envclone builds against libcurl alone). */
typedef void (*alpn_selected_fn)(const void *ssl, const unsigned char **data, unsigned int *len);

static alpn_selected_fn openssl_alpn_selected(void)
{
    static int looked = 0;
    static alpn_selected_fn fn = NULL;
    if (!looked) {
        const char *const sonames[] = { "libssl.so.3", "libssl.so.1.1", NULL };
        for (int i = 0; fn == NULL && sonames[i] != NULL; i++) {
            void *lib = dlopen(sonames[i], RTLD_LAZY | RTLD_NOLOAD);
            void *sym = lib != NULL ? dlsym(lib, "SSL_get0_alpn_selected") : NULL;
            memcpy(&fn, &sym, sizeof fn); /* POSIX: a data pointer to dlsym's function */
        }
        looked = 1;
    }
    return fn;
}

/* Is the answer libcurl hands over as "HTTP/2 200" really an HTTP/2
 * stream?  libcurl 7.88 also takes that text as a status line from an
 * HTTP/1.x server, and reports HTTP/2 (CURLINFO_HTTP_VERSION) for both:
 * only the connection knows.  Over TLS, it is HTTP/2 when ALPN agreed on
 * "h2" (read from OpenSSL; with another TLS library libcurl's word is
 * taken); over plain http only with prior knowledge (http_version = "2"). */
static int framed_connection(const ec_exchange *x)
{
    struct curl_tlssessioninfo *tls = NULL;
    if (curl_easy_getinfo(x->curl, CURLINFO_TLS_SSL_PTR, &tls) != CURLE_OK || tls == NULL
        || tls->backend == CURLSSLBACKEND_NONE || tls->internals == NULL)
        return x->h2_prior_knowledge;
    if (tls->backend != CURLSSLBACKEND_OPENSSL)
        return 1;
    alpn_selected_fn alpn = openssl_alpn_selected();
    if (alpn == NULL)
        return 1;
    const unsigned char *proto = NULL;
    unsigned int len = 0;
    alpn(tls->internals, &proto, &len);
    return len == 2 && memcmp(proto, "h2", 2) == 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    ec_exchange *x = ud;
    size_t n = size * nmemb;
    x->header_bytes += n;
    if (x->header_bytes > EC_MAX_HEADER_BYTES) {
        x->too_large = 2;
        return 0;
    }
    /* what RFC 9112 refuses and libcurl does not (ec_http1.c); an HTTP/2
     * head is libcurl's to check, once the connection says it is one */
    if (x->head.state == EC_H1_STATUS && n > 7 && memcmp(data, "HTTP/2 ", 7) == 0)
        x->head.framed_ok = framed_connection(x);
    int line = ec_http1_head_line(&x->head, data, n);
    if (line < 0) {
        x->bad_head = 1;
        return 0; /* aborts the transfer */
    }
    if (line == 1) {
        capture(x, data, n, NULL, 0, NULL, 0);
        return n;
    }
    x->fold = NULL;
    switch (data[0] | 0x20) { /* the first letter, folded: most lines match none */
    case 'h':
        if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) { /* a new response (after 1xx): forget the last */
            x->content_type[0] = x->retry_after[0] = x->request_id[0] = x->location[0] = '\0';
            x->request_id_x = 0;
        }
        break;
    case 'c':
        CAPTURE(data, n, "Content-Type", x->content_type);
        break;
    case 'r':
        CAPTURE(data, n, "Retry-After", x->retry_after);
        /* X-Request-Id wins over Request-Id in whichever order they come,
         * as ec_request.c reads a Lua transport's headers */
        if (!x->request_id_x)
            CAPTURE(data, n, "Request-Id", x->request_id);
        break;
    case 'x':
        if (n > 13 && data[12] == ':' && strncasecmp(data, "X-Request-Id", 12) == 0) {
            CAPTURE(data, n, "X-Request-Id", x->request_id);
            x->request_id_x = 1;
        }
        break;
    case 'l':
        CAPTURE(data, n, "Location", x->location);
        break;
    default:
        break;
    }
    return n;
}

/* What an HTTP/2 server said about a create it did not answer, read from
 * libcurl's informational lines (7.88 has no other way to tell it): the
 * request's stream id, a GOAWAY's last-stream-id, a REFUSED_STREAM.  Only
 * CURLINFO_TEXT is looked at; header and data lines (the credential) are
 * not read, not copied. */
static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
    (void)h;
    ec_exchange *x = ud;
    if (type != CURLINFO_TEXT || size > 512)
        return 0;
    char line[513];
    memcpy(line, data, size);
    line[size] = '\0';
    const char *p;
    if ((p = strstr(line, "Using Stream ID: ")) != NULL)
        x->h2_stream = strtol(p + 17, NULL, 10);
    else if (strstr(line, "GOAWAY") != NULL && (p = strstr(line, "last_stream=")) != NULL)
        x->goaway_last = strtol(p + 12, NULL, 10);
    if (strstr(line, "REFUSED_STREAM") != NULL)
        x->refused = 1;
    return 0;
}

/* Did an HTTP/2 server say it did not process the request?  A GOAWAY whose
 * last-stream-id is below the request's stream, or REFUSED_STREAM (RFC 9113
 * §6.8, §8.7): then nothing was applied, and a retry is safe. */
static int h2_not_processed(const ec_exchange *x)
{
    if (x->refused || strstr(x->errbuf, "REFUSED_STREAM") != NULL)
        return 1;
    return x->goaway_last >= 0 && x->h2_stream > 0 && x->goaway_last < x->h2_stream;
}

/* CURLcode -> one of the transport codes of ec_policy.c, and what is
 * known about whether the request went out. */
static void classify(const ec_exchange *x, CURLcode rc, long request_size, int http_version,
                     ec_transport_error *te)
{
    te->code = "transport";
    te->sent = request_size > 0;
    te->retryable = -1;
    te->message[0] = '\0';
    switch (rc) {
#if LIBCURL_VERSION_NUM >= 0x074900
    case CURLE_PROXY: /* a SOCKS or tunnel handshake failure */
        te->code = "proxy";
        te->sent = 0;
        break;
#endif
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        te->code = "resolve";
        te->sent = 0;
        break;
    case CURLE_COULDNT_CONNECT:
        te->code = "connect";
        te->sent = 0;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        te->code = "timeout";
        break;
    case CURLE_SSL_CONNECT_ERROR:
        te->code = "tls";
        te->sent = 0; /* the handshake comes before any byte of the request */
        if (strstr(x->errbuf, "no application protocol") != NULL) {
            /* the server accepts none of the protocols ALPN offered (RFC
             * 7301 §3.2): libcurl offers h2 and http/1.1, or http/1.1 alone
             * with http_version = "1.1"; asking again meets the same refusal */
            te->retryable = 0;
            snprintf(te->message, sizeof te->message, "protocol mismatch: %s (TLS alert no_application_protocol) [%.120s]",
                     http_version == EC_HTTP_1_1
                         ? "the server speaks none of the HTTP versions offered by ALPN: only http/1.1 was, as "
                           "http_version = \"1.1\" asks, so it likely speaks only HTTP/2"
                         : "the server speaks neither HTTP/2 (h2) nor HTTP/1.1, the versions offered by ALPN",
                     x->errbuf);
            return;
        }
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
        te->code = "tls";
        te->sent = 0;
        te->retryable = 0; /* a certificate does not get better by asking again */
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
        /* also "Received HTTP/0.9": a garbage answer to a request that went
         * out, so `sent` stays what libcurl measured */
        te->code = "protocol";
        break;
    case CURLE_URL_MALFORMAT:
        te->code = "protocol";
        te->sent = 0;
        break;
    case CURLE_FILESIZE_EXCEEDED:
        te->code = "too_large";
        break;
    case CURLE_WRITE_ERROR:
        te->code = x->too_large == 2 ? "headers_too_large" : x->too_large ? "too_large"
                   : x->bad_head ? "protocol" : "transport";
        break;
    case CURLE_BAD_FUNCTION_ARGUMENT: /* libcurl's header store refusing a line of the answer */
        if (x->header_bytes > 0)
            te->code = "protocol";
        break;
    case CURLE_WEIRD_SERVER_REPLY:  /* a head libcurl cannot read ("Header without colon", ...) */
    case CURLE_BAD_CONTENT_ENCODING: /* a transfer coding envclone never asked for */
        te->code = "protocol";
        break;
    case CURLE_OUT_OF_MEMORY:
        /* libcurl 7.x reports one header line over its own 100 KiB limit as
         * "out of memory"; once a status line is in, that is what it is */
        if (x->header_bytes > 0)
            te->code = "headers_too_large";
        break;
    case CURLE_SEND_ERROR:
        te->code = "send";
        break;
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:        /* the HTTP/2 session failed: the connection's equivalent of a drop */
    case CURLE_HTTP2_STREAM: /* the stream was reset */
        te->code = "recv";
        break;
    default:
        break;
    }
    if (x->too_large == 2)
        te->code = "headers_too_large";
    if (te->sent && h2_not_processed(x)) {
        te->sent = 0; /* the server said so: it did not act */
        snprintf(te->message, sizeof te->message, "%s (the HTTP/2 server did not process it)",
                 x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
        return;
    }
    if (x->bad_head)
        snprintf(te->message, sizeof te->message, "malformed HTTP response: %s", x->head.why);
    else
        snprintf(te->message, sizeof te->message, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
}

/* The header list holds the credential: wipe it before it goes back to
 * the allocator. */
static void slist_free(struct curl_slist *headers)
{
    for (struct curl_slist *h = headers; h != NULL; h = h->next)
        ec_wipe(h->data, strlen(h->data));
    curl_slist_free_all(headers);
}

/* The entries that end a request's header list after its own: none; or
 * "Expect:" (no 100-continue round trip before a body); or, for a POST
 * without a body (Versori's delete_environment), "Expect:" and
 * "Content-Type:" too -- libcurl would otherwise label the empty POST
 * application/x-www-form-urlencoded, which it is not. */
static const char *const tail_none[] = { NULL };
static const char *const tail_body[] = { "Expect:", NULL };
static const char *const tail_empty_post[] = { "Expect:", "Content-Type:", NULL };

/* Does the list hold exactly the message's headers and `tail` (then it
 * is reused)? */
static int slist_matches(const struct curl_slist *l, const ec_message *m, const char *const *tail)
{
    const char *entry = m->headers.data;
    for (size_t i = 0; i < m->nheaders; i++, l = l->next) {
        if (l == NULL || strcmp(l->data, entry) != 0)
            return 0;
        entry += strlen(entry) + 1;
    }
    for (; *tail; tail++, l = l->next)
        if (l == NULL || strcmp(l->data, *tail) != 0)
            return 0;
    return l == NULL;
}

static struct curl_slist *build_slist(const ec_message *m, const char *const *tail)
{
    struct curl_slist *headers = NULL;
    const char *entry = m->headers.data;
    for (size_t i = 0; i < m->nheaders; i++) {
        struct curl_slist *next = curl_slist_append(headers, entry);
        if (next == NULL)
            goto oom;
        headers = next;
        entry += strlen(entry) + 1;
    }
    /* (a request without a tail leaves it out: libcurl scans the list for
     * many names on every transfer, so a shorter list is a cheaper one) */
    for (; *tail; tail++) {
        struct curl_slist *next = curl_slist_append(headers, *tail);
        if (next == NULL)
            goto oom;
        headers = next;
    }
    return headers;
oom:
    slist_free(headers);
    return NULL;
}

/* The options that depend only on the settings. */
static void set_settings(CURL *h, const ec_settings *s)
{
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    /* the credential goes to its API root and nowhere else: proxies named in
     * the environment (http_proxy, https_proxy, ALL_PROXY) are not used
     * unless the client says proxy = "env"; a proxy only ever carries a
     * CONNECT tunnel (the constructor allows https roots only with one), so
     * it sees TLS and never a credential */
    if (s->proxy == NULL) {
        curl_easy_setopt(h, CURLOPT_PROXY, "");
    } else {
        if (strcmp(s->proxy, "env") != 0)
            curl_easy_setopt(h, CURLOPT_PROXY, s->proxy);
        curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, 1L);
        /* the proxy's "200 Connection established" is not the answer */
        curl_easy_setopt(h, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    }
    /* no_proxy / NO_PROXY from the environment only with proxy = "env",
     * like the proxy itself (without this libcurl reads both, with getenv,
     * on every transfer) */
    if (s->proxy == NULL || strcmp(s->proxy, "env") != 0)
        curl_easy_setopt(h, CURLOPT_NOPROXY, "");
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (share != NULL)
        curl_easy_setopt(h, CURLOPT_SHARE, share);
    /* "auto" leaves libcurl's default: HTTP/2 offered by ALPN over https,
     * HTTP/1.1 over http.  "2" over http is HTTP/2 with prior knowledge
     * (h2c, no Upgrade round trip); over https libcurl 7.88 still lets
     * ALPN settle it. */
    if (s->http_version == EC_HTTP_1_1)
        curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    else if (s->http_version == EC_HTTP_2)
        curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, s->insecure ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, s->insecure ? 0L : 2L);
    if (s->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)s->max_response_size);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
}

int ec_curl_setup(ec_easy *e, const ec_settings *s, const ec_policy *p, const ec_message *m, ec_exchange *x,
                  ec_transport_error *te)
{
    CURL *h = e->h;

    if (e->settings_id != s->id) {
        /* another client's handle (a batch): start from libcurl's defaults;
         * the connection cache survives a reset */
        curl_easy_reset(h);
        set_settings(h, s);
        e->settings_id = s->id;
        e->method = M_NONE;
        e->fresh = -1;
        e->ex = NULL;
        e->watch_h2 = 0;
        e->url_on_handle = 0;
        e->buffer_size = 0;
    }
    ec_buf_clear(&x->body);
    x->body.limit = s->max_response_size;
    x->header_bytes = 0;
    x->too_large = 0;
    x->bad_head = 0;
    x->fold = NULL;
    x->h2_stream = 0;
    x->goaway_last = -1;
    x->refused = 0;
    ec_http1_head_reset(&x->head, 0); /* HTTP/2: see framed_connection */
    x->curl = h;
    x->h2_prior_knowledge = s->http_version == EC_HTTP_2 && strncmp(m->url.data, "http:", 5) == 0;
    x->http_version = s->http_version;
    x->proxied = s->proxy != NULL;
    x->request_id_x = 0;
    x->errbuf[0] = x->content_type[0] = x->retry_after[0] = x->request_id[0] = x->location[0] = '\0';
    if (e->ex != x) {
        curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
        e->ex = x;
    }

    const char *method = m->method;
    int is_get = method[0] == 'G';
    int is_post = method[0] == 'P' && method[1] == 'O';
    const char *const *tail = m->has_body ? tail_body : is_post ? tail_empty_post : tail_none;
    if (x->slist == NULL || !slist_matches(x->slist, m, tail)) {
        slist_free(x->slist);
        x->slist = build_slist(m, tail);
        if (x->slist == NULL && (*tail || m->nheaders > 0)) {
            te->code = "transport";
            te->sent = 0;
            te->retryable = 0;
            snprintf(te->message, sizeof te->message, "out of memory building the request headers");
            return -1;
        }
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->slist);
    set_url(e, m->url.data); /* never NULL: a built message has a URL */
    receive_buffer(e, s->http_version != EC_HTTP_1_1
                          && (strncmp(m->url.data, "https", 5) == 0 || s->http_version == EC_HTTP_2));
    /* A create over https may meet HTTP/2 (unless http_version = "1.1"):
     * watch what the server says of a stream it does not answer (on_debug).  Only creates need it (an
     * idempotent call is retried anyway), and they open a connection and
     * make a TLS handshake each, beside which the watch costs little. */
    int watch = p->creates && s->http_version != EC_HTTP_1_1 && strncmp(m->url.data, "https", 5) == 0;
    if (watch != e->watch_h2) {
        curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, watch ? on_debug : NULL);
        curl_easy_setopt(h, CURLOPT_VERBOSE, (long)watch);
        e->watch_h2 = watch;
    }
    if (watch)
        curl_easy_setopt(h, CURLOPT_DEBUGDATA, x);
    /* the connection-reuse rule is the policy's (ec_policy.c) */
    long fresh = p->reuse ? 0L : 1L;
    if (e->fresh != fresh) {
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, fresh);
        /* a call that may reuse a connection waits, in a batch, for the
         * one being set up to say whether it multiplexes (HTTP/2 by ALPN)
         * rather than open one of its own: a batch's GETs to one host
         * share a connection as streams */
        curl_easy_setopt(h, CURLOPT_PIPEWAIT, fresh ? 0L : 1L);
        /* TCP keep-alive probes only help a connection that waits in the
         * cache for the next call; one used once skips its 3 setsockopt */
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, fresh ? 0L : 1L);
        e->fresh = fresh;
    }

    if (is_get || (!is_post && !m->has_body)) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (m->has_body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)m->body.len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, m->body.data);
    } else {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    }
    int want = is_get ? M_GET : is_post ? M_POST : M_CUSTOM;
    if (want == M_CUSTOM)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    else if (e->method == M_CUSTOM || e->method == M_NONE)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, (char *)NULL);
    e->method = want;
    return 0;
}

static void fill_error(ec_easy *e, const ec_exchange *x, CURLcode rc, ec_transport_error *te)
{
    long request_size = 0;
    curl_easy_getinfo(e->h, CURLINFO_REQUEST_SIZE, &request_size);
    classify(x, rc, request_size, x->http_version, te);
    long connect_code = 0;
    if (x->proxied && curl_easy_getinfo(e->h, CURLINFO_HTTP_CONNECTCODE, &connect_code) == CURLE_OK
        && connect_code >= 300) {
        /* the proxy refused the tunnel: nothing of the request went out */
        te->code = "proxy";
        te->sent = 0;
        snprintf(te->message, sizeof te->message, "the proxy refused the CONNECT tunnel (HTTP %ld)", connect_code);
    }
}

static void fill_response(ec_easy *e, const ec_exchange *x, ec_response *resp)
{
    long status = 0;
    curl_easy_getinfo(e->h, CURLINFO_RESPONSE_CODE, &status);
    resp->status = status;
    resp->body = x->body.data ? x->body.data : "";
    resp->body_len = x->body.len;
    resp->content_type = x->content_type[0] ? x->content_type : NULL;
    resp->retry_after = x->retry_after[0] ? x->retry_after : NULL;
    resp->request_id = x->request_id[0] ? x->request_id : NULL;
    resp->location = x->location[0] ? x->location : NULL;
}

/* libcurl returns the status of a head the connection cut short. */
static int check_head(ec_exchange *x, int rc)
{
    if (rc == CURLE_OK && !ec_http1_head_complete(&x->head)) {
        snprintf(x->errbuf, sizeof x->errbuf, "the answer ended inside its headers");
        return CURLE_PARTIAL_FILE;
    }
    return rc;
}

int ec_curl_finish(ec_easy *e, ec_exchange *x, int rc, ec_response *resp, ec_transport_error *te)
{
    remember_answer_size(e, x);
    rc = check_head(x, rc);
    if (rc != CURLE_OK) {
        fill_error(e, x, (CURLcode)rc, te);
        return -1;
    }
    fill_response(e, x, resp);
    return 0;
}

int ec_curl_perform(ec_easy *e, const ec_settings *s, const ec_policy *p, const ec_message *m, ec_exchange *x,
                    ec_response *resp, ec_transport_error *te)
{
    if (ec_curl_setup(e, s, p, m, x, te) != 0)
        return -1;
    CURLcode rc = curl_easy_perform(e->h);
    return ec_curl_finish(e, x, (int)rc, resp, te);
}
