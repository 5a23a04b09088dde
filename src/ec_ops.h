/*
 * ec_ops.h - the operation table: every vendor operation as data.
 *
 * Vendors differ only in the rows of this table; the marshal engine, the
 * transports and the Lua layer read it and never branch on a vendor name.
 * Adding an operation is adding a row in ec_ops.c.
 */
#ifndef EC_OPS_H
#define EC_OPS_H

#include <stddef.h>

typedef enum {
    EC_T_STRING,       /* Lua string */
    EC_T_BOOLEAN,      /* Lua boolean */
    EC_T_STRING_ARRAY, /* sequence of strings; {} encodes as [] */
    EC_T_OBJECT,       /* table with the fields listed in `children` */
    EC_T_FREE_OBJECT   /* any JSON object (string keys); {} encodes as {} */
} ec_type;

typedef enum {
    EC_FMT_NONE,
    EC_FMT_ULID,   /* 26 chars of Crockford base32, first char 0-7 */
    EC_FMT_UUID,   /* 8-4-4-4-12 hex digits */
    EC_FMT_TOKEN   /* header-safe: printable ASCII, no CR/LF/NUL */
} ec_format;

typedef enum {
    EC_IN_PATH,   /* substituted into the path, percent-encoded */
    EC_IN_BODY,   /* member of the JSON body */
    EC_IN_HEADER  /* a request header; `wire` is the header name */
} ec_location;

typedef enum {
    EC_AUTH_BEARER, /* Authorization: Bearer <credential> */
    EC_AUTH_COOKIE, /* Cookie: <credential> */
    EC_AUTH_RAW     /* authorization: <credential> (no scheme) */
} ec_auth;

typedef enum {
    EC_BODY_NONE,     /* no body */
    EC_BODY_OBJECT,   /* {"field": value, ...}; {} when no field is given */
    EC_BODY_PATCH_OP  /* [{"op": patch_op, "value": <the one body field>}] */
} ec_body_shape;

typedef struct ec_field {
    const char *name;   /* the Lua argument name: the vendor's own field name */
    ec_location in;
    ec_type type;
    int required;
    const char *wire;   /* header name (EC_IN_HEADER); NULL = name */
    size_t min_len;     /* in characters (UTF-8 code points) for strings */
    size_t max_len;     /* 0 = EC_DEFAULT_MAX_LEN */
    ec_format format;
    const char *const *reserved; /* NULL-terminated list of refused values */
    const struct ec_field *children; /* EC_T_OBJECT members, ends with {NULL} */
    ec_format item_format; /* EC_T_STRING_ARRAY items */
} ec_field;

typedef struct {
    const char *vendor;       /* "kontent" */
    const char *name;         /* "clone_environment": the Lua method name */
    const char *method;       /* "POST" */
    const char *path;         /* "/projects/{environment_id}/clone-environment" */
    ec_auth auth;
    const char *credential;   /* client option holding the secret: "token" */
    ec_body_shape body;
    const char *patch_op;     /* EC_BODY_PATCH_OP only */
    int creates;              /* 1: not idempotent, a retry could create twice */
    const ec_field *fields;   /* ends with {NULL} */
} ec_op;

typedef struct {
    const char *name;              /* "kontent" */
    const char *default_base_url;
    const char *const *credentials; /* option names holding secrets, NULL-terminated */
} ec_vendor;

#define EC_DEFAULT_MAX_LEN 1024  /* characters, for strings the page leaves open */
#define EC_MAX_NESTING 32        /* free-form objects (Droplit meta) */
#define EC_MAX_ARRAY_ITEMS 1000  /* roles_to_activate and other string arrays */

extern const ec_op ec_ops[];
extern const size_t ec_ops_count;
extern const ec_vendor ec_vendors[];
extern const size_t ec_vendors_count;

const ec_op *ec_op_find(const char *vendor, const char *name);
const ec_vendor *ec_vendor_find(const char *name);
const char *ec_type_name(ec_type t);
const char *ec_format_name(ec_format f);

#endif
