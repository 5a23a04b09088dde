/*
 * ec_mask.c - finds a client's secrets in any echoed form and masks them
 * (see ec_mask.h for the forms and why).
 *
 * A secret is turned into "patterns": the secret itself, and the base64
 * and base64url characters that only its bits decide at each of the three
 * alignments.  A pattern is matched character by character against the
 * text, where each text position may hold the character itself or one
 * encoding of it (%2B, \u002b, \/, &#43;, &plus;, ...), so mixed and
 * partly encoded echoes match too.  Base64 characters are computed on the
 * fly, so masking never allocates and cannot fail half-way.
 */
#include "ec_mask.h"

#include <string.h>

#define NO_MATCH ((size_t)-1)
/* verbatim, then base64 at alignments 0..2, then base64url at 0..2 */
#define PATTERN_KINDS 7

typedef struct {
    const unsigned char *secret;
    size_t slen;
    int kind;       /* 0 verbatim, 1..3 base64, 4..6 base64url */
    size_t first;   /* first 6-bit group made only of the secret's bits */
    size_t len;     /* pattern length in characters */
} pattern;

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static int pattern_init(pattern *p, const char *secret, int kind)
{
    p->secret = (const unsigned char *)secret;
    p->slen = secret ? strlen(secret) : 0;
    p->kind = kind;
    if (p->slen < EC_SECRET_MIN || p->slen > EC_SECRET_MAX)
        return 0;
    if (kind == 0) {
        p->first = 0;
        p->len = p->slen;
        return 1;
    }
    /* The secret starts `align` bytes into a 3-byte base64 block: the
     * groups lying wholly within its bits are the same whatever surrounds it. */
    size_t align = (size_t)(kind - 1) % 3;
    size_t start_bit = 8 * align, end_bit = start_bit + 8 * p->slen;
    p->first = (start_bit + 5) / 6;
    size_t last = end_bit / 6; /* one past the last whole group */
    p->len = last > p->first ? last - p->first : 0;
    return p->len >= EC_SECRET_MIN;
}

static unsigned char pattern_char(const pattern *p, size_t j)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (p->kind == 0)
        return p->secret[j];
    size_t align = (size_t)(p->kind - 1) % 3;
    size_t bit = 6 * (p->first + j) - 8 * align; /* offset into the secret's bits */
    size_t byte = bit / 8;
    unsigned hi = p->secret[byte];
    unsigned lo = byte + 1 < p->slen ? p->secret[byte + 1] : 0;
    unsigned v = (((hi << 8) | lo) >> (10 - bit % 8)) & 63;
    return (unsigned char)(p->kind <= 3 ? b64[v] : b64url[v]);
}

static const struct {
    const char *name;
    unsigned char ch;
} entities[] = {
    { "amp;", '&' },    { "lt;", '<' },     { "gt;", '>' },      { "quot;", '"' },   { "apos;", '\'' },
    { "sol;", '/' },    { "plus;", '+' },   { "equals;", '=' },  { "percnt;", '%' }, { "num;", '#' },
    { "colon;", ':' },  { "quest;", '?' },  { "commat;", '@' },  { "lowbar;", '_' }, { "period;", '.' },
    { "comma;", ',' },  { "excl;", '!' },   { "dollar;", '$' },  { "ast;", '*' },    { "semi;", ';' },
    { "lpar;", '(' },   { "rpar;", ')' },   { "tilde;", '~' },   { "hyphen;", '-' }, { "dash;", '-' },
    { NULL, 0 }
};

/* Reads one encoded character at s[i]: percent (%2B), JSON (\u002B, \/),
 * HTML (&#43; &#x2b; &plus;) or form encoding ('+' for a space).  Returns
 * its length and sets *ch, or 0 when no encoding starts there. */
static size_t decode_at(const unsigned char *s, size_t n, size_t i, unsigned char *ch)
{
    size_t left = n - i;
    switch (s[i]) {
    case '%':
        if (left >= 3 && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            *ch = (unsigned char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            return 3;
        }
        return 0;
    case '+':
        *ch = ' ';
        return 1;
    case '\\':
        if (left < 2)
            return 0;
        if (s[i + 1] == 'u') {
            if (left < 6)
                return 0;
            unsigned v = 0;
            for (size_t k = 2; k < 6; k++) {
                int h = hexval(s[i + k]);
                if (h < 0)
                    return 0;
                v = v * 16 + (unsigned)h;
            }
            if (v >= 0x80) /* a code point, not a byte of a UTF-8 secret */
                return 0;
            *ch = (unsigned char)v;
            return 6;
        }
        {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *at = memchr(from, s[i + 1], sizeof from - 1);
            if (at == NULL || s[i + 1] == '\0')
                return 0;
            *ch = (unsigned char)to[at - from];
            return 2;
        }
    case '&':
        if (left >= 3 && s[i + 1] == '#') {
            size_t k = i + 2;
            int hex = k < n && (s[k] == 'x' || s[k] == 'X');
            k += (size_t)hex;
            unsigned v = 0;
            size_t digits = 0;
            while (k < n && digits < 8) {
                int d = hex ? hexval(s[k]) : (s[k] >= '0' && s[k] <= '9' ? s[k] - '0' : -1);
                if (d < 0)
                    break;
                v = v * (hex ? 16U : 10U) + (unsigned)d;
                k++;
                digits++;
            }
            if (digits == 0 || k >= n || s[k] != ';' || v > 0xFF)
                return 0;
            *ch = (unsigned char)v;
            return k + 1 - i;
        }
        for (int e = 0; entities[e].name; e++) {
            size_t len = strlen(entities[e].name);
            if (left > len && memcmp(s + i + 1, entities[e].name, len) == 0) {
                *ch = entities[e].ch;
                return len + 1;
            }
        }
        return 0;
    default:
        return 0;
    }
}

/* Could s[i..n) be the start of an encoding cut off by the end of the text? */
static int cut_escape(const unsigned char *s, size_t n, size_t i)
{
    return n - i < 10 && (s[i] == '%' || s[i] == '\\' || s[i] == '&');
}

/* The encoding families an echo is written in: where a position could be
 * read both as itself and as the start of an encoding (a secret holding
 * '%', '\\', '&' or ' '), the family tried decides, and the caller tries
 * each: JSON-escaped text keeps '%' and '&' as they are, percent-encoded
 * text keeps '\\', and so on. */
static const char families[] = { 0, '%', '\\', '&' };

/* Matches pattern p at s[i] reading encodings of `family` first (0: the
 * characters themselves first); returns the end of the match or NO_MATCH. */
static size_t match_at(const pattern *p, const unsigned char *s, size_t n, size_t i, char family)
{
    for (size_t j = 0; j < p->len; j++) {
        if (i >= n) /* the text ends inside the secret: a cut message */
            return j >= EC_SECRET_MIN ? n : NO_MATCH;
        unsigned char want = pattern_char(p, j), got = 0;
        size_t enc = decode_at(s, n, i, &got);
        int enc_ok = enc > 0 && got == want;
        int raw_ok = s[i] == want;
        int preferred = family != 0 && (s[i] == (unsigned char)family || (family == '%' && s[i] == '+'));
        if (enc_ok && (preferred || !raw_ok))
            i += enc;
        else if (raw_ok)
            i++;
        else if (j >= EC_SECRET_MIN && enc == 0 && cut_escape(s, n, i))
            return n; /* cut in the middle of an encoded character */
        else
            return NO_MATCH;
    }
    return i;
}

#define MAX_LISTED 16 /* secrets given to core.mask */

typedef struct {
    pattern p[MAX_LISTED * PATTERN_KINDS];
    size_t count;
} pattern_set;

static void patterns_from(const char *const *secrets, size_t nsecrets, pattern_set *ps)
{
    ps->count = 0;
    for (size_t k = 0; k < nsecrets && k < MAX_LISTED; k++)
        for (int kind = 0; kind < PATTERN_KINDS; kind++)
            if (secrets[k] && pattern_init(&ps->p[ps->count], secrets[k], kind))
                ps->count++;
}

static void patterns_of(const ec_client *c, pattern_set *ps)
{
    ps->count = 0;
    if (c != NULL)
        patterns_from((const char *const *)c->secrets, EC_MAX_SECRETS, ps);
}

/* The first match at or after `from`: sets [*start, *end) and returns 1. */
static int next_match(const pattern_set *ps, const unsigned char *s, size_t n, size_t from, size_t *start,
                      size_t *end)
{
    for (size_t i = from; i < n; i++) {
        size_t best = NO_MATCH;
        int maybe_encoded = s[i] == '%' || s[i] == '\\' || s[i] == '&' || s[i] == '+';
        for (size_t k = 0; k < ps->count; k++) {
            const pattern *p = &ps->p[k];
            if (!maybe_encoded && s[i] != pattern_char(p, 0))
                continue;
            for (size_t f = 0; f < sizeof families; f++) {
                size_t e = match_at(p, s, n, i, families[f]);
                if (e != NO_MATCH && (best == NO_MATCH || e > best))
                    best = e;
            }
        }
        if (best != NO_MATCH) {
            *start = i;
            *end = best;
            return 1;
        }
    }
    return 0;
}

int ec_mask_has(const ec_client *c, const char *s, size_t n)
{
    pattern_set ps;
    size_t a, b;
    patterns_of(c, &ps);
    return ps.count > 0 && next_match(&ps, (const unsigned char *)s, n, 0, &a, &b);
}

size_t ec_mask_inplace(const ec_client *c, char *s, size_t n, size_t size)
{
    pattern_set ps;
    patterns_of(c, &ps);
    const unsigned char *u = (const unsigned char *)s;
    size_t in = 0, out = 0, a, b;
    while (ps.count > 0 && next_match(&ps, u, n, in, &a, &b)) {
        memmove(s + out, s + in, a - in);
        out += a - in;
        memcpy(s + out, "***", 3); /* every match is at least EC_SECRET_MIN long */
        out += 3;
        in = b;
    }
    memmove(s + out, s + in, n - in);
    out += n - in;
    if (out < size)
        s[out] = '\0';
    return out;
}

void ec_mask_cstr(const ec_client *c, char *s)
{
    size_t n = strlen(s);
    ec_mask_inplace(c, s, n, n + 1);
}

static void push_masked(lua_State *L, const pattern_set *ps, const char *s, size_t n);

void ec_mask_push(lua_State *L, const ec_client *c, const char *s, size_t n)
{
    pattern_set ps;
    patterns_of(c, &ps);
    push_masked(L, &ps, s, n);
}

int ec_mask_lua(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *secrets[MAX_LISTED];
    size_t count = 0;
    for (lua_Integer i = 1; count < MAX_LISTED; i++) {
        lua_rawgeti(L, 2, i);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            break;
        }
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "envclone.core.mask: secrets[%d] must be a string", (int)i);
        secrets[count++] = lua_tostring(L, -1); /* still referenced by the table */
        lua_pop(L, 1);
    }
    pattern_set ps;
    patterns_from(secrets, count, &ps);
    push_masked(L, &ps, s, n);
    return 1;
}

static void push_masked(lua_State *L, const pattern_set *ps, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t in = 0, a, b;
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    while (ps->count > 0 && next_match(ps, u, n, in, &a, &b)) {
        luaL_addlstring(&buf, s + in, a - in);
        luaL_addlstring(&buf, "***", 3);
        in = b;
    }
    luaL_addlstring(&buf, s + in, n - in);
    luaL_pushresult(&buf);
}
