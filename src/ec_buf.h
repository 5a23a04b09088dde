/*
 * ec_buf.h - a growable byte buffer with a hard size cap.
 * Every append reports failure instead of growing past the cap, so callers
 * turn "too large" into an error rather than an allocation spiral.
 */
#ifndef EC_BUF_H
#define EC_BUF_H

#include <stddef.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;   /* allocated bytes */
    size_t limit; /* largest len allowed; 0 = no limit */
} ec_buf;

void ec_buf_init(ec_buf *b, size_t limit);
void ec_buf_free(ec_buf *b);
void ec_buf_clear(ec_buf *b);
/* Room for `extra` more bytes (and the terminating NUL): 0, or -1 when out
 * of memory or past the limit. */
int ec_buf_reserve(ec_buf *b, size_t extra);
/* 0 on success, -1 when out of memory or past the limit. */
int ec_buf_add(ec_buf *b, const char *s, size_t n);
int ec_buf_adds(ec_buf *b, const char *s);
int ec_buf_addc_slow(ec_buf *b, char c);
/* One byte: a store when there is room (JSON punctuation, per call). */
static inline int ec_buf_addc(ec_buf *b, char c)
{
    if (b->len + 2 <= b->cap && (b->limit == 0 || b->len < b->limit)) {
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
        return 0;
    }
    return ec_buf_addc_slow(b, c);
}
/* Overwrites n bytes with zeros in a way the compiler keeps (secrets). */
void ec_wipe(void *p, size_t n);
/* NUL-terminated view of the contents (the NUL is not counted in len). */
const char *ec_buf_cstr(ec_buf *b);

#endif
