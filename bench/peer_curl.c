/*
 * peer_curl.c - the raw libcurl floor for bench/run.sh.
 *
 *   peer_curl get|post N PORT [reuse|fresh] [once|each]
 *
 * N sequential requests to the loopback Kontent stand-in on 127.0.0.1:PORT,
 * on one easy handle, with the same headers envclone sends (Authorization:
 * Bearer, Accept, Content-Type on POST, User-Agent). The body is read into a
 * growable buffer and the status checked; the JSON is not parsed.
 *
 *   reuse  keep-alive: the connection is reused (the default)
 *   fresh  CURLOPT_FRESH_CONNECT on every request, as envclone does for
 *          creates (clone_environment)
 *   once   options and header list are set up once, before the loop (the
 *          default: what a hand-written libcurl client does)
 *   each   curl_easy_reset + every setopt + a new header slist per request,
 *          as envclone's transport does (src/ec_curl.c): isolates the cost
 *          of that pattern from the rest of envclone's work
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
#define WARMUP 50

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
};

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
        fprintf(stderr, "usage: peer_curl get|post N PORT [reuse|fresh] [once|each]\n");
        return 2;
    }
    int post = strcmp(argv[1], "post") == 0;
    long n = strtol(argv[2], NULL, 10);
    int port = atoi(argv[3]);
    int fresh = argc > 4 && strcmp(argv[4], "fresh") == 0;
    int each = argc > 5 && strcmp(argv[5], "each") == 0;

    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/kontent/v2/projects/%s/%s", port, UUID,
             post ? "clone-environment" : "environment-cloning-state");
    struct buf body = { 0 };
    struct setup s = { url, post, fresh, &body };

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *e = curl_easy_init();
    struct curl_slist *h = headers(post);
    configure(e, &s, h);

    for (int i = 0; i < WARMUP; i++)
        if (one(e, &s, each) != 0)
            return 1;
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    for (long i = 0; i < n; i++)
        if (one(e, &s, each) != 0)
            return 1;
    double w1 = now(CLOCK_MONOTONIC), c1 = now(CLOCK_PROCESS_CPUTIME_ID);

    printf("RESULT client=c-libcurl%s%s op=%s n=%ld wall=%.6f cpu=%.6f\n", fresh ? "-fresh" : "",
           each ? "-reset-each" : "", post ? "post" : "get", n, w1 - w0, c1 - c0);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    free(body.data);
    curl_global_cleanup();
    return 0;
}
