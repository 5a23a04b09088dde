/*
 * ec_http1.h - the RFC 9112 rules for a response's head (status line,
 * field lines, framing fields, trailer lines), checked line by line, in one
 * place for both transports: the libcurl transport feeds it from its header
 * callback (where libcurl 7.88 is more lenient), the cosocket transport's
 * reader (lua/envclone/http1.lua) through core.http1_head(). Refused: two
 * differing Content-Length values, whitespace before a colon, a bare CR, a
 * folded framing field, a Transfer-Encoding other than chunked, an
 * unrequested 101, a status line that is not HTTP/1.0 or HTTP/1.1. I/O-free.
 *
 * An HTTP/2 answer is framed by its protocol, which libcurl (with
 * nghttp2) reads and checks itself, and hands over as a status line
 * "HTTP/2 200" and lower-case field lines: a checker made for a transport
 * that speaks them (`framed_ok`) takes such a head and applies none of the
 * HTTP/1.1 rules to it, only noting where it ends.  The cosocket reader
 * speaks HTTP/1.1 only, and refuses it.
 */
#ifndef EC_HTTP1_H
#define EC_HTTP1_H

#include <stddef.h>

struct lua_State; /* no lua.h here: the libcurl transport includes this header */

typedef struct {
    int state;          /* EC_H1_* below */
    int head_request;   /* the answer to a HEAD: no framing fields apply */
    int interim;        /* a 1xx head: another head follows */
    int bodyless;       /* 1xx, 204, 304: no framing fields apply (RFC 9112 §6.3 rule 1) */
    int http10;         /* the response is HTTP/1.0 */
    int fields;         /* field lines in this section so far */
    int prev_framing;   /* the previous field line was Content-Length or Transfer-Encoding */
    int chunked;        /* "chunked" codings seen */
    char length[24];    /* the Content-Length seen, leading zeros dropped ("" if none) */
    const char *why;    /* what was refused, for the error message */
    int incomplete;     /* refused as an incomplete message (a bare CR in a trailer line) */
    int framed_ok;      /* this connection speaks HTTP/2 (kept across a 1xx head) */
    int framed;         /* this head is HTTP/2: no HTTP/1.1 rule applies */
} ec_http1_head;

enum { EC_H1_STATUS = 0, EC_H1_FIELDS, EC_H1_TRAILERS };

/* Ready for a new response; framed_ok: an HTTP/2 head is taken as libcurl
 * hands it over (the libcurl transport sets it when the connection is
 * HTTP/2), else refused. */
void ec_http1_head_reset(ec_http1_head *h, int framed_ok);

/* One line as libcurl's header callback hands it over (status line, field
 * line, the empty line ending a head, or a trailer line), with its line end.
 * Returns 0 when it is acceptable, 1 when it is an obs-fold continuing the
 * previous field (RFC 9112 §5.2: its value follows after one SP), -1 when
 * the response must be refused (h->why says why). */
int ec_http1_head_line(ec_http1_head *h, const char *line, size_t n);

/* Has a final (non-1xx) head been read to its empty line? */
int ec_http1_head_complete(const ec_http1_head *h);

/* core.http1_head([head_request]) -> a checker (userdata envclone.http1_head) whose
 * :line(text) returns "ok", "fold" (an obs-fold continuing the previous
 * field), or nil, why, code ("protocol"; "recv" for a bare CR in a trailer
 * line, where libcurl's chunked decoder gives up). */
int ec_http1_lua_new(struct lua_State *L);

#endif
