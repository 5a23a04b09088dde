/*
 * peer_curl.c - the raw libcurl floor for bench/run.sh and bench/https.sh.
 *
 *   peer_curl get|post N PORT [WORD...]
 *
 * N sequential requests to the loopback Kontent stand-in on 127.0.0.1:PORT,
 * on one easy handle, with the same headers envclone sends (Authorization:
 * Bearer, Accept, Content-Type on POST, User-Agent). The body is read into a
 * growable buffer and the status checked; the JSON is not parsed.
 *
 * WORDs, in any order:
 *   reuse  keep-alive: the connection is reused (the default)
 *   fresh  CURLOPT_FRESH_CONNECT on every request, as envclone does for
 *          creates (clone_environment)
 *   once   options and header list are set up once, before the loop (the
 *          default: what a hand-written libcurl client does)
 *   each   curl_easy_reset + every setopt + a new header slist per request,
 *          as envclone's transport once did: isolates the cost of that
 *          pattern from the rest of envclone's work
 *   https  https://127.0.0.1:PORT (libcurl's default there: HTTP/2 offered
 *          by ALPN; peer verification on)
 *   ca=FILE  CURLOPT_CAINFO
 *   h1     CURLOPT_HTTP_VERSION = CURL_HTTP_VERSION_1_1
 *   share  a CURLSH sharing TLS sessions and DNS answers, as envclone's
 *          process-wide share (src/ec_curl.c)
 *   pipewait  CURLOPT_PIPEWAIT (envclone sets it on calls that may reuse a
 *          connection; it changes nothing for one easy handle)
 *   watch  CURLOPT_VERBOSE with a debug callback that reads each text line
 *          the way envclone's HTTP/2 watch (on_debug, src/ec_curl.c) does:
 *          what that watch costs libcurl
 *   nosessions  CURLOPT_SSL_SESSIONID_CACHE = 0: every TLS handshake a full
 *          one (what a create costs when no session is kept, as in a batch)
 *   warmup=N  untimed requests first (default 50)
 *   name=NAME  the client name printed (default c-libcurl[-fresh][-reset-each])
 *
 * Prints one line:
 *   RESULT client=<name> op=<get|post> n=<N> wall=<seconds> cpu=<seconds>
 * where cpu is this process's CPU time (user + system) for the timed loop.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define UUID "8d20758c-d74c-4f59-ae04-ee928c0816b7"
#define BODY                                                                                       \
    "{\"name\":\"Develop\",\"roles_to_activate\":[],\"copy_data_options\":{\"content_items_assets\":" \
    "true,\"content_item_version_history\":false}}"

struct buf {
    char *data;
    size_t len, cap;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (p == NULL)
            return 0;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static double now(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct setup {
    const char *url;
    int post, fresh;
    struct buf *body;
    const char *ca;
    int h1, pipewait, watch, nosessions;
    CURLSH *share;
};

/* What envclone's on_debug does with each text line (src/ec_curl.c). */
struct watch {
    long stream, goaway_last;
    int refused;
};

static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
    (void)h;
    struct watch *w = ud;
    if (type != CURLINFO_TEXT || size > 512)
        return 0;
    char line[513];
    memcpy(line, data, size);
    line[size] = '\0';
    const char *p;
    if ((p = strstr(line, "Using Stream ID: ")) != NULL)
        w->stream = strtol(p + 17, NULL, 10);
    else if (strstr(line, "GOAWAY") != NULL && (p = strstr(line, "last_stream=")) != NULL)
        w->goaway_last = strtol(p + 12, NULL, 10);
    if (strstr(line, "REFUSED_STREAM") != NULL)
        w->refused = 1;
    return 0;
}

static struct watch watched;

static struct curl_slist *headers(int post)
{
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Authorization: Bearer k");
    h = curl_slist_append(h, "Accept: application/json");
    if (post)
        h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "User-Agent: peer_curl/1");
    h = curl_slist_append(h, "Expect:");
    return h;
}

static void configure(CURL *e, const struct setup *s, struct curl_slist *h)
{
    curl_easy_setopt(e, CURLOPT_URL, s->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s->body);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, s->fresh ? 1L : 0L);
    if (s->ca != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, s->ca);
    if (s->h1)
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    if (s->pipewait)
        curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    if (s->nosessions)
        curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L);
    if (s->share != NULL)
        curl_easy_setopt(e, CURLOPT_SHARE, s->share);
    if (s->watch) {
        curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, on_debug);
        curl_easy_setopt(e, CURLOPT_DEBUGDATA, &watched);
        curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
    }
    if (s->post) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, BODY);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(sizeof BODY - 1));
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
}

static int one(CURL *e, const struct setup *s, int each)
{
    struct curl_slist *h = NULL;
    if (each) {
        curl_easy_reset(e);
        h = headers(s->post);
        configure(e, s, h);
    }
    s->body->len = 0;
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (each) {
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
        curl_slist_free_all(h);
    }
    if (rc != CURLE_OK || status != 200 || s->body->len == 0) {
        fprintf(stderr, "peer_curl: %s, status %ld\n", curl_easy_strerror(rc), status);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: peer_curl get|post N PORT [reuse|fresh] [once|each] [https] [ca=FILE] [h1] "
                        "[share] [pipewait] [watch] [nosessions] [warmup=N] [name=NAME]\n");
        return 2;
    }
    int post = strcmp(argv[1], "post") == 0;
    long n = strtol(argv[2], NULL, 10);
    int port = atoi(argv[3]);
    int fresh = 0, each = 0, https = 0, h1 = 0, share = 0, pipewait = 0, watch = 0, nosessions = 0;
    long warmup = 50;
    const char *ca = NULL, *name = NULL;
    for (int i = 4; i < argc; i++) {
        const char *w = argv[i];
        if (strcmp(w, "fresh") == 0)
            fresh = 1;
        else if (strcmp(w, "each") == 0)
            each = 1;
        else if (strcmp(w, "https") == 0)
            https = 1;
        else if (strcmp(w, "h1") == 0)
            h1 = 1;
        else if (strcmp(w, "share") == 0)
            share = 1;
        else if (strcmp(w, "pipewait") == 0)
            pipewait = 1;
        else if (strcmp(w, "watch") == 0)
            watch = 1;
        else if (strcmp(w, "nosessions") == 0)
            nosessions = 1;
        else if (strncmp(w, "ca=", 3) == 0)
            ca = w + 3;
        else if (strncmp(w, "warmup=", 7) == 0)
            warmup = strtol(w + 7, NULL, 10);
        else if (strncmp(w, "name=", 5) == 0)
            name = w + 5;
        else if (strcmp(w, "reuse") != 0 && strcmp(w, "once") != 0) {
            fprintf(stderr, "peer_curl: unknown word %s\n", w);
            return 2;
        }
    }

    char url[256];
    snprintf(url, sizeof url, "%s://127.0.0.1:%d/kontent/v2/projects/%s/%s", https ? "https" : "http", port, UUID,
             post ? "clone-environment" : "environment-cloning-state");
    struct buf body = { 0 };

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLSH *sh = NULL;
    if (share) {
        /* one thread: no lock callbacks needed */
        sh = curl_share_init();
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    }
    struct setup s = { url, post, fresh, &body, ca, h1, pipewait, watch, nosessions, sh };
    CURL *e = curl_easy_init();
    struct curl_slist *h = headers(post);
    configure(e, &s, h);

    for (long i = 0; i < warmup; i++)
        if (one(e, &s, each) != 0)
            return 1;
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    for (long i = 0; i < n; i++)
        if (one(e, &s, each) != 0)
            return 1;
    double w1 = now(CLOCK_MONOTONIC), c1 = now(CLOCK_PROCESS_CPUTIME_ID);

    if (name != NULL)
        printf("RESULT client=%s", name);
    else
        printf("RESULT client=c-libcurl%s%s", fresh ? "-fresh" : "", each ? "-reset-each" : "");
    printf(" op=%s n=%ld wall=%.6f cpu=%.6f\n", post ? "post" : "get", n, w1 - w0, c1 - c0);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    if (sh != NULL)
        curl_share_cleanup(sh);
    free(body.data);
    curl_global_cleanup();
    return 0;
}
