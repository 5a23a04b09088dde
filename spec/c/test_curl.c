/*
 * test_curl.c - the libcurl transport (src/ec_curl.c) driven from C alone:
 * settings + message in, response or transport error out, with no Lua
 * state and no client.  A loopback HTTP/1.1 server runs in a thread of
 * this program; each check is one exchange against it:
 *   - a GET: status, body and the captured headers (Content-Type,
 *     X-Request-Id, Retry-After), and what the server read (method, path,
 *     the message's headers, no Expect);
 *   - a second GET on the same handle, and a POST with a body (a create:
 *     a fresh connection, the body and its length as sent);
 *   - a refused connection: code "connect", nothing sent, and what the
 *     policy makes of it (retryable, not maybe_applied, even for a create);
 *   - a head RFC 9112 refuses ("Content-Length :"): code "protocol";
 *   - an answer past max_response_size: code "too_large".
 * ctest: c_curl.
 */
#include "ec_curl.h"
#include "ec_ops.h"
#include "ec_policy.h"
#include "check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the loopback server ------------------------------------------------- */

#define BODY_OK "{\"id\":\"8d20758c-d74c-4f59-ae04-ee928c0816b7\",\"name\":\"Production\"}"

static int listener = -1;
static char last_request[8192]; /* the last request the server read, head and body */

/* What the server answers to a path. */
static const char *answer_for(const char *path)
{
    static char ok[512];
    if (strncmp(path, "/ok", 3) == 0) {
        snprintf(ok, sizeof ok,
                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Request-Id: req-1\r\n"
                 "Retry-After: 7\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 strlen(BODY_OK), BODY_OK);
        return ok;
    }
    if (strncmp(path, "/create", 7) == 0)
        return "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 12\r\n"
               "Connection: close\r\n\r\n{\"id\":\"new\"}";
    if (strncmp(path, "/bad", 4) == 0) /* whitespace before the colon: RFC 9112 §5.1 */
        return "HTTP/1.1 200 OK\r\nContent-Length : 2\r\nConnection: close\r\n\r\nok";
    return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
}

/* Reads one request (head, then Content-Length bytes of body) into
 * last_request; 0, or -1 when the connection ends first. */
static int read_request(int fd)
{
    size_t n = 0;
    char *end = NULL;
    while (end == NULL) {
        if (n + 1 >= sizeof last_request)
            return -1;
        ssize_t r = recv(fd, last_request + n, sizeof last_request - 1 - n, 0);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        last_request[n] = '\0';
        end = strstr(last_request, "\r\n\r\n");
    }
    size_t want = (size_t)(end + 4 - last_request);
    const char *cl = strstr(last_request, "Content-Length: ");
    if (cl != NULL && cl < end)
        want += (size_t)strtoul(cl + 16, NULL, 10);
    while (n < want && n + 1 < sizeof last_request) {
        ssize_t r = recv(fd, last_request + n, sizeof last_request - 1 - n, 0);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        last_request[n] = '\0';
    }
    return 0;
}

/* One connection at a time, one request each, until the listener closes. */
static void *serve(void *ud)
{
    (void)ud;
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0)
            return NULL;
        if (read_request(fd) == 0) {
            char path[256] = "";
            sscanf(last_request, "%*s %255s", path);
            const char *a = answer_for(path);
            size_t len = strlen(a);
            for (size_t off = 0; off < len;) {
                ssize_t w = send(fd, a + off, len - off, MSG_NOSIGNAL);
                if (w <= 0)
                    break;
                off += (size_t)w;
            }
        }
        close(fd);
    }
}

/* A socket bound to a free loopback port; its port in *port. */
static int bound_socket(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0
        || getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        perror("test_curl: socket");
        exit(2);
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* ---- messages ---------------------------------------------------------------- */

static void add_header(ec_message *m, const char *entry)
{
    ec_buf_add(&m->headers, entry, strlen(entry) + 1); /* NUL-terminated entries */
    m->nheaders++;
}

/* A message as ec_marshal would build it for method and url. */
static void make_message(ec_message *m, const char *method, const char *url, const char *body)
{
    ec_message_clear(m);
    m->method = method;
    ec_buf_adds(&m->url, url);
    add_header(m, "Authorization: Bearer test-curl-secret");
    add_header(m, "Accept: application/json");
    if (body != NULL) {
        m->has_body = 1;
        ec_buf_adds(&m->body, body);
        add_header(m, "Content-Type: application/json");
    }
    add_header(m, "User-Agent: envclone-test");
}

static ec_settings make_settings(unsigned long id)
{
    ec_settings s;
    memset(&s, 0, sizeof s);
    s.id = id;
    s.timeout_ms = 10000;
    s.connect_timeout_ms = 5000;
    s.max_response_size = (size_t)1024 * 1024;
    s.http_version = EC_HTTP_AUTO;
    return s;
}

static int has_line(const char *request, const char *line)
{
    char want[256];
    snprintf(want, sizeof want, "\r\n%s\r\n", line);
    return strstr(request, want) != NULL;
}

int main(void)
{
    int port;
    listener = bound_socket(&port);
    if (listen(listener, 8) != 0) {
        perror("test_curl: listen");
        return 2;
    }
    pthread_t server;
    pthread_create(&server, NULL, serve, NULL);

    char url[128];
    ec_easy *e = ec_easy_new();
    CHECK(e != NULL, "ec_easy_new");
    if (e == NULL)
        return 1;
    ec_settings s = make_settings(1);
    ec_policy get = ec_policy_of(ec_op_find("kontent", "get_environment"));
    ec_policy create = ec_policy_of(ec_op_find("kontent", "clone_environment"));
    CHECK(get.reuse && get.safe && !get.creates, "the GET row's policy");
    CHECK(!create.reuse && !create.safe && create.creates, "the create row's policy");
    ec_message m;
    ec_message_init(&m);
    ec_exchange x;
    ec_exchange_init(&x);
    ec_response resp;
    ec_transport_error te;

    /* a GET */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok/projects/abc", port);
    make_message(&m, "GET", url, NULL);
    memset(&resp, 0, sizeof resp);
    int rc = ec_curl_perform(e, &s, &get, &m, &x, &resp, &te);
    CHECK(rc == 0, "GET: %s", rc == 0 ? "" : te.message);
    if (rc == 0) {
        CHECK(resp.status == 200, "GET: status %ld", resp.status);
        CHECK(resp.body_len == strlen(BODY_OK) && memcmp(resp.body, BODY_OK, resp.body_len) == 0, "GET: body %.*s",
              (int)resp.body_len, resp.body);
        CHECK(resp.content_type && strcmp(resp.content_type, "application/json") == 0, "GET: content type");
        CHECK(resp.request_id && strcmp(resp.request_id, "req-1") == 0, "GET: request id");
        CHECK(resp.retry_after && strcmp(resp.retry_after, "7") == 0, "GET: retry-after");
        CHECK(resp.location == NULL, "GET: no location");
    }
    CHECK(strncmp(last_request, "GET /ok/projects/abc HTTP/1.1\r\n", 31) == 0, "GET: request line %.40s",
          last_request);
    CHECK(has_line(last_request, "Authorization: Bearer test-curl-secret"), "GET: the credential header sent");
    CHECK(has_line(last_request, "Accept: application/json"), "GET: Accept sent");
    CHECK(has_line(last_request, "User-Agent: envclone-test"), "GET: User-Agent sent");
    CHECK(strstr(last_request, "Expect:") == NULL && strstr(last_request, "Content-Length") == NULL,
          "GET: no Expect, no body");

    /* the same handle again (its settings kept), then a create with a body */
    rc = ec_curl_perform(e, &s, &get, &m, &x, &resp, &te);
    CHECK(rc == 0 && resp.status == 200, "GET again: rc %d status %ld", rc, resp.status);
    static const char create_body[] = "{\"name\":\"Develop\"}";
    snprintf(url, sizeof url, "http://127.0.0.1:%d/create", port);
    make_message(&m, "POST", url, create_body);
    rc = ec_curl_perform(e, &s, &create, &m, &x, &resp, &te);
    CHECK(rc == 0 && resp.status == 201, "POST: rc %d status %ld %s", rc, resp.status, rc ? te.message : "");
    CHECK(rc == 0 && resp.body_len == 12 && memcmp(resp.body, "{\"id\":\"new\"}", 12) == 0, "POST: body");
    CHECK(strncmp(last_request, "POST /create HTTP/1.1\r\n", 23) == 0, "POST: request line");
    CHECK(has_line(last_request, "Content-Length: 18") && has_line(last_request, "Content-Type: application/json"),
          "POST: length and type");
    const char *sent_body = strstr(last_request, "\r\n\r\n");
    CHECK(sent_body && strcmp(sent_body + 4, create_body) == 0, "POST: body as sent");

    /* a refused connection: nothing sent, a retry is safe, even for a create */
    int closed_port;
    close(bound_socket(&closed_port));
    snprintf(url, sizeof url, "http://127.0.0.1:%d/create", closed_port);
    make_message(&m, "POST", url, create_body);
    rc = ec_curl_perform(e, &s, &create, &m, &x, &resp, &te);
    CHECK(rc == -1, "refused: rc %d", rc);
    CHECK(rc == -1 && strcmp(te.code, "connect") == 0, "refused: code %s", te.code);
    CHECK(rc == -1 && te.sent == 0, "refused: sent %d", te.sent);
    if (rc == -1) {
        ec_failure f = ec_policy_transport(&create, &te);
        CHECK(strcmp(f.code, "connect") == 0 && strcmp(f.kind, "transport") == 0, "refused: %s/%s", f.code, f.kind);
        CHECK(f.verdict.retryable && !f.verdict.maybe_applied && !f.sent, "refused: retryable, not maybe_applied");
    }

    /* a head RFC 9112 refuses */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/bad", port);
    make_message(&m, "GET", url, NULL);
    rc = ec_curl_perform(e, &s, &get, &m, &x, &resp, &te);
    CHECK(rc == -1 && strcmp(te.code, "protocol") == 0, "bad head: code %s", rc ? te.code : "(none)");
    CHECK(rc == -1 && strstr(te.message, "malformed HTTP response") != NULL, "bad head: %s", te.message);
    CHECK(rc == -1 && te.sent == 1, "bad head: the request went out");

    /* an answer past max_response_size (other settings: the handle is set again) */
    ec_settings small = make_settings(2);
    small.max_response_size = 16;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", port);
    make_message(&m, "GET", url, NULL);
    rc = ec_curl_perform(e, &small, &get, &m, &x, &resp, &te);
    CHECK(rc == -1 && strcmp(te.code, "too_large") == 0, "too large: code %s", rc ? te.code : "(none)");

    ec_exchange_free(&x);
    ec_message_free(&m);
    ec_easy_free(e);
    shutdown(listener, SHUT_RDWR);
    close(listener);
    pthread_join(server, NULL);
    printf("test_curl: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
