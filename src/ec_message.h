/*
 * ec_message.h - the request message: the method, URL, header entries and
 * JSON body of one call, as ec_marshal.c builds it from the arguments and
 * every transport sends it (ec_curl.c; req:wire() and req:headers() for a
 * transport written in Lua).  Plain C structs: no Lua here.
 */
#ifndef EC_MESSAGE_H
#define EC_MESSAGE_H

#include <stddef.h>

#include "ec_buf.h"

#define EC_MAX_BODY ((size_t)256 * 1024)        /* request bodies; far above any real call */
#define EC_MAX_URL ((size_t)4096)               /* the whole URL */
#define EC_MAX_HEADERS ((size_t)64 * 1024)      /* all header entries */

typedef struct {
    const char *method; /* "GET", "POST", ...: the operation row's */
    ec_buf url;         /* full URL */
    ec_buf body;        /* JSON; meaningful when has_body */
    int has_body;
    ec_buf headers;     /* "Name: value" entries, each NUL-terminated; holds the credential */
    size_t nheaders;
} ec_message;

/* Buffers with the caps above (nothing is allocated until used). */
static inline void ec_message_init(ec_message *m)
{
    m->method = NULL;
    ec_buf_init(&m->url, EC_MAX_URL);
    ec_buf_init(&m->body, EC_MAX_BODY);
    ec_buf_init(&m->headers, EC_MAX_HEADERS);
    m->has_body = 0;
    m->nheaders = 0;
}

/* Empty again, the buffers kept for the next message. */
static inline void ec_message_clear(ec_message *m)
{
    ec_buf_clear(&m->url);
    ec_buf_clear(&m->body);
    ec_buf_clear(&m->headers);
    m->has_body = 0;
    m->nheaders = 0;
}

/* Frees the buffers, wiping the headers (they held a credential). */
static inline void ec_message_free(ec_message *m)
{
    if (m->headers.data)
        ec_wipe(m->headers.data, m->headers.cap);
    ec_buf_free(&m->url);
    ec_buf_free(&m->body);
    ec_buf_free(&m->headers);
}

#endif
