/*
 * peer_multi.c - the raw libcurl multi floor for bench/batch.sh.
 *
 *   peer_multi N PORT K [PREFIX [WORD...]]
 *
 * N GETs of the Kontent cloning state from the loopback stand-in on
 * 127.0.0.1:PORT, K in flight at once on one multi handle: K easy handles,
 * each set up once (options, the same headers envclone sends) and re-added
 * as soon as its transfer is done, connections reused. The loop waits in
 * curl_multi_poll, as envclone's batch does. Bodies are read into a buffer
 * per handle and the status checked; the JSON is not parsed.
 *
 * PREFIX (default "/kontent/v2") selects the server's location, e.g.
 * "/slow/kontent/v2" for the stand-in that answers after a delay.
 *
 * "tuned" sets up libcurl as envclone does (src/ec_curl.c): the URL handed
 * over parsed (CURLOPT_CURLU) and a 1 KiB receive buffer.  It shows what of
 * envclone's standing comes from those two settings, which any C program
 * could make.
 *
 * Other WORDs (bench/https.sh), in any order:
 *   https     https://127.0.0.1:PORT: libcurl's default there, HTTP/2 offered
 *             by ALPN, and the multi handle multiplexes (CURLPIPE_MULTIPLEX,
 *             its default); peer verification on
 *   ca=FILE   CURLOPT_CAINFO on every handle
 *   h1        CURLOPT_HTTP_VERSION = CURL_HTTP_VERSION_1_1
 *   pipewait  CURLOPT_PIPEWAIT: a transfer waits for the connection being
 *             set up to say whether it multiplexes rather than open its own
 *             (envclone sets it on every call that may reuse a connection)
 *   share     a CURLSH sharing TLS sessions and DNS answers, as envclone's
 *             process-wide share (src/ec_curl.c)
 *   post      Kontent's clone_environment (POST, the body envclone sends)
 *             instead of the GET, each on a fresh connection closed when
 *             done (CURLOPT_FRESH_CONNECT + CURLOPT_FORBID_REUSE), as an
 *             envclone batch sends creates (src/ec_multi.c)
 *   warmup=N  the untimed run first (default 200 transfers)
 *   name=NAME the client name printed
 *
 * Prints one line:
 *   RESULT client=c-libcurl-multi[-tuned] op=get|post n=<N> wall=<seconds> cpu=<seconds>
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

struct slot {
    CURL *e;
    CURLU *u; /* "tuned": the parsed URL */
    char body[4096];
    size_t len;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct slot *s = ud;
    size_t n = size * nmemb;
    if (s->len + n >= sizeof s->body)
        return 0;
    memcpy(s->body + s->len, data, n);
    s->len += n;
    return n;
}

static double now(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs n transfers with k in flight; 0, or -1 on a failed transfer. */
static int run(CURLM *m, struct slot *slots, int k, long n)
{
    long started = 0, done = 0;
    for (int i = 0; i < k && started < n; i++, started++) {
        slots[i].len = 0;
        curl_multi_add_handle(m, slots[i].e);
    }
    while (done < n) {
        int running = 0;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        int any = 0;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            any = 1;
            CURL *e = msg->easy_handle;
            CURLcode rc = msg->data.result;
            struct slot *s = NULL;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&s);
            long status = 0;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            curl_multi_remove_handle(m, e);
            if (rc != CURLE_OK || status != 200 || s->len == 0) {
                fprintf(stderr, "peer_multi: %s, status %ld\n", curl_easy_strerror(rc), status);
                return -1;
            }
            done++;
            if (started < n) {
                started++;
                s->len = 0;
                curl_multi_add_handle(m, e);
            }
        }
        if (!any && done < n)
            curl_multi_poll(m, NULL, 0, 1000, NULL);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: peer_multi N PORT K [PREFIX [tuned] [https] [ca=FILE] [h1] [pipewait] [share] "
                        "[post] [warmup=N] [name=NAME]]\n");
        return 2;
    }
    long n = strtol(argv[1], NULL, 10);
    int port = atoi(argv[2]);
    int k = atoi(argv[3]);
    if (n < 1 || k < 1 || k > 1024)
        return 2;
    const char *prefix = argc > 4 ? argv[4] : "/kontent/v2";
    int tuned = 0, https = 0, h1 = 0, pipewait = 0, share = 0, post = 0;
    long warmup = 200;
    const char *ca = NULL, *name = NULL;
    for (int i = 5; i < argc; i++) {
        const char *w = argv[i];
        if (strcmp(w, "tuned") == 0)
            tuned = 1;
        else if (strcmp(w, "https") == 0)
            https = 1;
        else if (strcmp(w, "h1") == 0)
            h1 = 1;
        else if (strcmp(w, "pipewait") == 0)
            pipewait = 1;
        else if (strcmp(w, "share") == 0)
            share = 1;
        else if (strcmp(w, "post") == 0)
            post = 1;
        else if (strncmp(w, "warmup=", 7) == 0)
            warmup = strtol(w + 7, NULL, 10);
        else if (strncmp(w, "ca=", 3) == 0)
            ca = w + 3;
        else if (strncmp(w, "name=", 5) == 0)
            name = w + 5;
        else {
            fprintf(stderr, "peer_multi: unknown word %s\n", w);
            return 2;
        }
    }
    char url[512];
    snprintf(url, sizeof url, "%s://127.0.0.1:%d%s/projects/%s/%s", https ? "https" : "http", port, prefix, UUID,
             post ? "clone-environment" : "environment-cloning-state");

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLSH *sh = NULL;
    if (share) {
        /* one thread: no lock callbacks needed */
        sh = curl_share_init();
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    }
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Authorization: Bearer k");
    h = curl_slist_append(h, "Accept: application/json");
    if (post)
        h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "User-Agent: peer_multi/1");
    h = curl_slist_append(h, "Expect:");
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)k);
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)k);
    struct slot *slots = calloc((size_t)k, sizeof *slots);
    for (int i = 0; i < k; i++) {
        CURL *e = curl_easy_init();
        slots[i].e = e;
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &slots[i]);
        curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)&slots[i]);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
        if (post) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, BODY);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(sizeof BODY - 1));
            curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
            curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
        } else {
            curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        }
        if (ca != NULL)
            curl_easy_setopt(e, CURLOPT_CAINFO, ca);
        if (h1)
            curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        if (pipewait)
            curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
        if (sh != NULL)
            curl_easy_setopt(e, CURLOPT_SHARE, sh);
        if (tuned) {
            CURLU *u = curl_url();
            if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
                return 1;
            slots[i].u = u;
            curl_easy_setopt(e, CURLOPT_CURLU, u);
            curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 1024L);
        }
    }
    if (warmup > 0 && run(m, slots, k, warmup) != 0)
        return 1;
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    if (run(m, slots, k, n) != 0)
        return 1;
    double w1 = now(CLOCK_MONOTONIC), c1 = now(CLOCK_PROCESS_CPUTIME_ID);
    if (name != NULL)
        printf("RESULT client=%s", name);
    else
        printf("RESULT client=c-libcurl-multi%s", tuned ? "-tuned" : "");
    printf(" op=%s n=%ld wall=%.6f cpu=%.6f\n", post ? "post" : "get", n, w1 - w0, c1 - c0);
    for (int i = 0; i < k; i++) {
        curl_easy_cleanup(slots[i].e);
        curl_url_cleanup(slots[i].u);
    }
    free(slots);
    curl_multi_cleanup(m);
    if (sh != NULL)
        curl_share_cleanup(sh);
    curl_slist_free_all(h);
    curl_global_cleanup();
    return 0;
}
