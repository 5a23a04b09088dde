/*
 * ec_http1.c - see ec_http1.h. The rules and their sections are listed in
 * lua/envclone/http1.lua; spec/support/http1_cases.lua has one case each.
 */
#include "ec_http1.h"
#include "ec_compat.h"

#include <string.h>
#include <strings.h>

void ec_http1_head_reset(ec_http1_head *h, int framed_ok)
{
    memset(h, 0, sizeof *h);
    h->framed_ok = framed_ok;
}

int ec_http1_head_complete(const ec_http1_head *h)
{
    return h->state == EC_H1_TRAILERS;
}

/* tchar (RFC 9110 §5.6.2) as a bit per byte value: every header line of
 * every call passes here */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1,
    ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
    ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static int refuse(ec_http1_head *h, const char *why)
{
    h->why = why;
    return -1;
}

static int three_digits(const char *s)
{
    return s[0] >= '1' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9';
}

/* libcurl's line for an HTTP/2 head: "HTTP/2" SP 3DIGIT [SP] (there is
 * no reason phrase; the framing is the protocol's) */
static int framed_status_line(ec_http1_head *h, const char *s, size_t n)
{
    if (n < 10 || (n > 10 && s[10] != ' ') || !three_digits(s + 7))
        return refuse(h, "a malformed HTTP/2 status line");
    int status = (s[7] - '0') * 100 + (s[8] - '0') * 10 + (s[9] - '0');
    h->framed = 1;
    h->interim = status < 200;
    h->state = EC_H1_FIELDS;
    return 0;
}

/* "HTTP/1.x" SP 3DIGIT [SP reason] */
static int status_line(ec_http1_head *h, const char *s, size_t n)
{
    if (h->framed_ok && n >= 7 && memcmp(s, "HTTP/2 ", 7) == 0)
        return framed_status_line(h, s, n);
    if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') || s[8] != ' '
        || !three_digits(s + 9) || (n > 12 && s[12] != ' '))
        return refuse(h, "the answer does not start with an HTTP/1.0 or HTTP/1.1 status line");
    int status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    if (status == 101)
        return refuse(h, "101 Switching Protocols, though no upgrade was asked for");
    h->http10 = s[7] == '0';
    h->interim = status < 200;
    h->bodyless = h->head_request || status < 200 || status == 204 || status == 304;
    h->state = EC_H1_FIELDS;
    return 0;
}

/* The elements of a Content-Length or Transfer-Encoding value (a
 * comma-separated list, empty elements dropped: RFC 9110 §5.6.1). */
static int framing_field(ec_http1_head *h, int is_length, const char *v, const char *end)
{
    const char *start = v;
    while (start < end && (is_ows(*start) || *start == ','))
        start++;
    if (is_length && start == end)
        return refuse(h, "an empty Content-Length (RFC 9112 §6.3)");
    while (v < end) {
        while (v < end && (is_ows(*v) || *v == ','))
            v++;
        const char *e = v;
        while (e < end && *e != ',')
            e++;
        const char *last = e;
        while (last > v && is_ows(last[-1]))
            last--;
        if (last > v && !is_length) {
            if ((size_t)(last - v) != 7 || strncasecmp(v, "chunked", 7) != 0 || ++h->chunked > 1)
                return refuse(h, "a transfer coding other than one chunked, which was not asked for (RFC 9112 §6.1)");
            if (h->http10)
                return refuse(h, "Transfer-Encoding in an HTTP/1.0 answer (RFC 9112 §6.1)");
        } else if (last > v) {
            while (v < last - 1 && *v == '0')
                v++;
            size_t len = (size_t)(last - v);
            for (const char *d = v; d < last; d++)
                if (*d < '0' || *d > '9')
                    return refuse(h, "a Content-Length that is not a number (RFC 9112 §6.3)");
            if (len >= sizeof h->length) /* past any cap (libcurl refuses it): compared by its first 23 digits */
                len = sizeof h->length - 1;
            if (h->length[0] != '\0' && (strlen(h->length) != len || memcmp(h->length, v, len) != 0))
                return refuse(h, "two different Content-Length values (RFC 9112 §6.3)");
            memcpy(h->length, v, len);
            h->length[len] = '\0';
        }
        v = e;
    }
    return 0;
}

int ec_http1_head_line(ec_http1_head *h, const char *line, size_t n)
{
    /* the line end: LF, or CRLF (RFC 9112 §2.2) */
    if (n > 0 && line[n - 1] == '\n')
        n--;
    if (n > 0 && line[n - 1] == '\r')
        n--;
    if (memchr(line, '\0', n) != NULL || memchr(line, '\r', n) != NULL) {
        h->incomplete = h->state == EC_H1_TRAILERS && memchr(line, '\0', n) == NULL;
        return refuse(h, "a header line holds a NUL or a bare CR (RFC 9112 §2.2)");
    }
    if (h->state == EC_H1_STATUS)
        return status_line(h, line, n);
    if (n == 0) {
        if (h->state == EC_H1_FIELDS && h->interim) {
            int head_request = h->head_request;
            ec_http1_head_reset(h, h->framed_ok); /* another head follows */
            h->head_request = head_request;
        } else {
            h->state = EC_H1_TRAILERS; /* the trailer section (or its end): no field to continue */
            h->fields = h->prev_framing = 0;
        }
        return 0;
    }
    if (h->framed)
        return 0; /* an HTTP/2 field: nghttp2 has checked it, and there is no folding */
    if (is_ows(line[0])) {
        if (h->fields == 0)
            return refuse(h, "whitespace before the first header field (RFC 9112 §2.2)");
        if (h->prev_framing)
            return refuse(h, "a folded Content-Length or Transfer-Encoding field (RFC 9112 §5.2)");
        return 1;
    }
    size_t name_len = 0;
    while (name_len < n && tchar[(unsigned char)line[name_len]])
        name_len++;
    const char *colon = name_len < n && line[name_len] == ':' ? line + name_len : NULL;
    if (colon == NULL)
        name_len = 0;
    if (name_len == 0)
        return refuse(h, "a header line that is not 'name: value' (RFC 9112 §5.1)");
    h->fields++;
    int is_length = name_len == 14 && strncasecmp(line, "Content-Length", 14) == 0;
    int is_coding = name_len == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0;
    h->prev_framing = is_length || is_coding;
    if (h->state == EC_H1_FIELDS && !h->bodyless && h->prev_framing)
        return framing_field(h, is_length, colon + 1, line + n);
    return 0;
}

#define EC_HTTP1_MT "envclone.http1_head"

static int l_line(lua_State *L)
{
    ec_http1_head *h = luaL_checkudata(L, 1, EC_HTTP1_MT);
    size_t n;
    const char *line = luaL_checklstring(L, 2, &n);
    if (h->why != NULL)
        return luaL_error(L, "envclone: http1_head: the head was already refused");
    int r = ec_http1_head_line(h, line, n);
    if (r >= 0) {
        lua_pushstring(L, r == 1 ? "fold" : "ok");
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, h->why);
    lua_pushstring(L, h->incomplete ? "recv" : "protocol");
    return 3;
}

int ec_http1_lua_new(lua_State *L)
{
    int head_request = lua_toboolean(L, 1);
    ec_http1_head *h = lua_newuserdata(L, sizeof *h);
    ec_http1_head_reset(h, 0); /* the cosocket reader speaks HTTP/1.1 only */
    h->head_request = head_request;
    if (luaL_newmetatable(L, EC_HTTP1_MT)) {
        static const luaL_Reg methods[] = { { "line", l_line }, { NULL, NULL } };
        ec_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_setmetatable(L, -2);
    return 1;
}
