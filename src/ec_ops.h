/*
 * ec_ops.h - the operation table: every vendor operation as data.
 *
 * Vendors differ only in the rows of this table; the marshal engine, the
 * transports and the Lua layer read it and never branch on a vendor name.
 * Adding an operation is adding a row in ec_ops.c.  Rows use designated
 * initializers (named columns): a new attribute is a new member here, set
 * only in the rows that need it and read by the code that uses it.
 */
#ifndef EC_OPS_H
#define EC_OPS_H

#include <stddef.h>

typedef enum {
    EC_T_STRING,       /* Lua string */
    EC_T_BOOLEAN,      /* Lua boolean */
    EC_T_STRING_ARRAY, /* sequence of strings; {} encodes as [] */
    EC_T_OBJECT,       /* table with the fields listed in `children` */
    EC_T_FREE_OBJECT,  /* any JSON object (string keys); {} encodes as {} */
    EC_T_INTEGER       /* Lua integer, or a float with an integral value; min_value..max_value */
} ec_type;

typedef enum {
    EC_FMT_NONE,
    EC_FMT_ULID,   /* 26 chars of Crockford base32, first char 0-7 */
    EC_FMT_UUID,   /* 8-4-4-4-12 hex digits */
    EC_FMT_TOKEN   /* header-safe: printable ASCII, no CR/LF/NUL */
} ec_format;

typedef enum {
    EC_IN_BODY,   /* member of the JSON body (the default) */
    EC_IN_PATH,   /* substituted into the path, percent-encoded */
    EC_IN_HEADER, /* a request header; `wire` is the header name */
    EC_IN_QUERY   /* a query parameter `wire` (or `name`), percent-encoded; booleans as true/false */
} ec_location;

typedef enum {
    EC_AUTH_UNSET,        /* no choice made (a client's scheme override) */
    EC_AUTH_BEARER,       /* Authorization: Bearer <credential> */
    EC_AUTH_COOKIE,       /* Cookie: <credential> */
    EC_AUTH_RAW,          /* authorization: <credential> (no scheme) */
    EC_AUTH_TOKEN,        /* Authorization: Token <credential> */
    EC_AUTH_TOKEN_OR_JWT  /* Token, or Bearer when the credential is a JWT;
                             the vendor's scheme_option overrides */
} ec_auth;

typedef enum {
    EC_BODY_NONE,     /* no body */
    EC_BODY_OBJECT,   /* {"field": value, ...}; {} when no field is given */
    EC_BODY_PATCH_OP  /* [{"op": patch_op, "value": <the one body field>}] */
} ec_body_shape;

typedef struct {
    const char *chars;         /* the only bytes a string may hold */
    const char *name;          /* the same, as users read it */
} ec_charset;

typedef struct ec_field {
    const char *name;          /* the Lua argument name: the vendor's own field name */
    ec_location in;
    ec_type type;
    int required;
    const char *wire;          /* header name (EC_IN_HEADER); NULL = name */
    size_t min_len;            /* in characters (UTF-8 code points) for strings */
    size_t max_len;            /* 0 = EC_DEFAULT_MAX_LEN */
    ec_format format;
    const char *const *reserved;     /* NULL-terminated list of refused values */
    const struct ec_field *children; /* EC_T_OBJECT members, ends with {NULL} */
    ec_format item_format;     /* EC_T_STRING_ARRAY items */
    const ec_charset *charset; /* NULL: any UTF-8 */
    const char *description;   /* the vendor's own words (CLI help, docs) */
    long long min_value;       /* EC_T_INTEGER: the range; both 0 = any integer */
    long long max_value;
} ec_field;

/* One way to authenticate an operation: the client option holding the
 * secret and how it goes on the wire.  An operation lists its ways in order
 * of preference; the first whose credential the client holds is used. */
typedef struct {
    const char *credential;
    ec_auth scheme;
} ec_auth_way;

/* What follows a call the vendor finishes later (Kontent's cloning,
 * Qovery's deletion): the waiter method `name` polls operation `poll` until
 * the answer's `state_field` is `done` (or `failed`), or the poll answers
 * `done_status` (a deletion's 404); `pending` lists the documented states
 * meaning "not yet" -- any other is one the vendor never documented, polled
 * only for a bounded while.  The polled object's id is `id_result` in the
 * call's answer (a create), or the call's own argument `id_arg_from` (a
 * deletion).  Data, read by the Lua layer's one generic waiter
 * (lua/envclone/init.lua). */
typedef struct {
    const char *name;          /* the client method: "wait_for_cloning" */
    const char *poll;          /* the operation it calls: "get_cloning_state" */
    const char *id_arg;        /* the poll's argument naming the new object: "environment_id" */
    const char *id_result;     /* where the create's answer holds it: "id" */
    const char *state_field;   /* the polled answer's state: "cloning_state" */
    const char *done;          /* "done" */
    const char *failed;        /* "failed" */
    const char *const *pending; /* NULL-terminated: { "in_progress", NULL } */
    const char *failed_message;/* the error message when it failed */
    int not_yet_status;        /* a status meaning "not visible yet" during the grace period (0: none) */
    int done_status;           /* a poll status meaning "done" (a deletion's 404; 0: none) */
    const char *id_arg_from;   /* NULL: id_result of the answer; else the call's argument holding the id */
} ec_waiter;

/* A read's argument and where its value comes from: a create's argument
 * (ec_lookup.args) or a client setting (ec_lookup.client_args). */
typedef struct {
    const char *arg;           /* the read's argument */
    const char *from;          /* the create's argument, or the client setting */
} ec_arg_map;

typedef enum { EC_MATCH_EXACT, EC_MATCH_FOLD } ec_match;      /* fold: trimmed, ASCII case-insensitive */
typedef enum { EC_RESULT_OBJECT, EC_RESULT_READ } ec_lookup_result;

#define EC_MAX_LOOKUP_ARGS 4

/* How to find what a create makes by its natural key (reconciliation of a
 * lost answer, if_exists = "adopt"): data for the Lua layer
 * (lua/envclone/reconcile.lua), exported as op.lookup. */
typedef struct {
    const char *read;          /* the vendor's operation to call: "get_project" */
    ec_arg_map args[EC_MAX_LOOKUP_ARGS];        /* ends with {NULL} */
    ec_arg_map client_args[EC_MAX_LOOKUP_ARGS]; /* ends with {NULL} */
    const char *list;          /* dotted path of the candidates' array; NULL: the read is addressed by the key */
    const char *sublist;       /* the candidates are this array of a list item ... */
    const char *group_arg;     /* ... whose sublist holds an item with id == this create argument */
    const char *key;           /* the candidate's field compared ... */
    const char *key_arg;       /* ... with this create argument */
    ec_match match;
    const char *id;            /* the candidate's id field */
    int unique;                /* the vendor keeps the key unique */
    const char *exists_reason; /* the vendor's "key already taken" reason (NULL: none documented) */
    const char *credential;    /* the read needs this credential (NULL: the create's own) */
    ec_lookup_result result;   /* a reconciled create returns the matching object, or the read's answer */
    const char *page_arg;      /* the read's paging argument (NULL: no paging) */
    const char *page_next;     /* dotted path of the next page's token in the read's answer */
    const char *source;        /* the citation */
} ec_lookup;

#define EC_MAX_AUTH_WAYS 3
#define EC_MAX_STATUSES 4

typedef struct {
    const char *vendor;       /* "kontent" */
    const char *name;         /* "clone_environment": the Lua method name */
    const char *method;       /* "POST" */
    const char *base;         /* NULL: the vendor's base_url; else a name in ec_vendor.bases */
    const char *path;         /* "/projects/{environment_id}/clone-environment" */
    /* A second template, used when path's parameters are not all given:
     * exactly one of the two must be complete (Droplit: by id, or by
     * {ecosystemId};{alias}). */
    const char *alt_path;
    ec_auth_way auth[EC_MAX_AUTH_WAYS]; /* ends with {NULL} */
    ec_body_shape body;
    const char *patch_op;     /* EC_BODY_PATCH_OP only */
    int creates;              /* 1: not idempotent, a retry could create twice */
    int deletes;              /* 1: a teardown (idempotent; the Lua layer reads 404 as already gone) */
    int success[EC_MAX_STATUSES]; /* the success statuses the vendor documents; 0 ends */
    /* A retry that meets this reason after an earlier attempt whose outcome
     * is unknown means that attempt applied (a DELETE's not_found). */
    const char *applied_reason;
    const ec_waiter *waiter;  /* a call finished later: how to wait for it (call option wait = true) */
    const ec_lookup *lookup;  /* a create: how to find what it makes by its natural key */
    const ec_field *fields;   /* ends with {NULL} */
    const char *summary;      /* the vendor page's one-line description */
    const char *page;         /* the vendor page this row follows */
} ec_op;

/* A second API root of a vendor that splits its APIs. */
typedef struct {
    const char *name;         /* "connect": named by ec_op.base */
    const char *url;          /* default */
    const char *option;       /* client option overriding it: "connect_base_url" */
    const char *relative;     /* when only base_url is given: resolved against it */
} ec_base;

/* Maps a vendor error to a stable reason: status (0 = any) and code (the
 * vendor's error code as text, NULL = any). */
typedef struct {
    int status;
    const char *code;
    const char *reason;
} ec_reason_rule;

/* Where a vendor's error body keeps its parts: dotted paths, first hit wins. */
typedef struct {
    const char *code[3];
    const char *message[3];
    const char *request_id[2];
    const char *details;      /* copied into err.validation_errors */
} ec_error_shape;

/* Client-side rate limit, before the vendor has to answer 429. */
typedef struct {
    const char *key;          /* argument whose value keys the limit; NULL = no limit */
    int per_second;           /* sliding 1 s window; 0 = none */
    int per_minute;           /* sliding 60 s window; 0 = none */
    int concurrency_per_key;  /* calls in flight per key; 0 = unbounded */
} ec_rate_limit;

/* A non-secret client option of one vendor (Kontent's subscription_id),
 * checked by the constructor and shown by client:settings(). */
typedef struct {
    const char *name;
    ec_format format;
} ec_setting;

#define EC_MAX_SETTINGS 2

typedef struct {
    const char *name;              /* "kontent" */
    const char *default_base_url;
    const ec_base *bases;          /* further API roots, ends with {NULL}; may be NULL */
    const char *const *credentials; /* option names holding secrets, NULL-terminated */
    const ec_setting *settings;    /* non-secret options, ends with {NULL}; may be NULL */
    const char *scheme_option;     /* option choosing EC_AUTH_TOKEN_OR_JWT's scheme, or NULL */
    ec_error_shape errors;
    const ec_reason_rule *reasons; /* vendor-specific rules, ends with {0, NULL, NULL} */
    ec_rate_limit rate_limit;
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
const char *ec_auth_name(ec_auth a);
const char *ec_location_name(ec_location l);

/* Does s (n bytes) have format f?  ASCII rules, whatever the C locale. */
int ec_format_ok(ec_format f, const char *s, size_t n);

/* The stable reason for a vendor error (status, vendor code or NULL):
 * the vendor's own rules first, then the generic ones by status. */
const char *ec_error_reason(const ec_vendor *v, long status, const char *code);

#endif
