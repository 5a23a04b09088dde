#include "ec_buf.h"

#include <stdlib.h>
#include <string.h>

void ec_buf_init(ec_buf *b, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit;
}

void ec_buf_free(ec_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void ec_buf_clear(ec_buf *b)
{
    b->len = 0;
}

int ec_buf_reserve(ec_buf *b, size_t extra)
{
    if (b->limit && (extra > b->limit || b->len > b->limit - extra))
        return -1;
    size_t need = b->len + extra + 1; /* room for the terminating NUL */
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > ((size_t)-1) / 2)
            return -1;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int ec_buf_add(ec_buf *b, const char *s, size_t n)
{
    if (ec_buf_reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int ec_buf_adds(ec_buf *b, const char *s)
{
    return ec_buf_add(b, s, strlen(s));
}

int ec_buf_addc_slow(ec_buf *b, char c)
{
    return ec_buf_add(b, &c, 1);
}

const char *ec_buf_cstr(ec_buf *b)
{
    if (b->data == NULL && ec_buf_reserve(b, 0) != 0)
        return "";
    return b->data;
}

void ec_wipe(void *p, size_t n)
{
    volatile unsigned char *q = p;
    while (n--)
        *q++ = 0;
}
