/*
 * ec_ops.c - the rows of the operation table, one per vendor operation,
 * transcribed from the vendor pages (shared/seeds at design time; the
 * README lists the source pages).  Field names are the vendors' own.
 */
#include "ec_ops.h"

#include <string.h>

#define END_FIELDS { NULL, EC_IN_BODY, EC_T_STRING, 0, NULL, 0, 0, EC_FMT_NONE, NULL, NULL, EC_FMT_NONE }

/* Shorthands that keep each row on one line. */
#define PATH(n, fmt)        { n, EC_IN_PATH, EC_T_STRING, 1, NULL, 1, 0, fmt, NULL, NULL, EC_FMT_NONE }
#define STR(n, req, lo, hi) { n, EC_IN_BODY, EC_T_STRING, req, NULL, lo, hi, EC_FMT_NONE, NULL, NULL, EC_FMT_NONE }
#define STRF(n, req, fmt)   { n, EC_IN_BODY, EC_T_STRING, req, NULL, 1, 0, fmt, NULL, NULL, EC_FMT_NONE }
#define BOOL(n)             { n, EC_IN_BODY, EC_T_BOOLEAN, 0, NULL, 0, 0, EC_FMT_NONE, NULL, NULL, EC_FMT_NONE }

/* ---- Versori platform API v2 ------------------------------------------ */

static const char *const versori_reserved_versions[] = { "default", "latest", NULL };

static const ec_field versori_clone_environment[] = {
    PATH("organisation_id", EC_FMT_ULID),
    PATH("project_id", EC_FMT_ULID),
    STR("oldEnvName", 1, 1, 0),
    STR("newEnvName", 1, 1, 0),
    STR("executionPool", 0, 1, 0),
    BOOL("cloneSystems"),
    BOOL("copyStaticUserVariables"),
    END_FIELDS
};

static const ec_field versori_create_connection_version[] = {
    /* The page types organisation_id as a plain string; Versori organisation
     * ids are ULIDs everywhere else, so the same rule applies here. */
    PATH("organisation_id", EC_FMT_ULID),
    PATH("connection_id", EC_FMT_NONE),
    { "name", EC_IN_BODY, EC_T_STRING, 1, NULL, 1, 0, EC_FMT_NONE, versori_reserved_versions, NULL, EC_FMT_NONE },
    STR("fromVersion", 0, 1, 0),
    END_FIELDS
};

/* ---- Qovery ------------------------------------------------------------ */

static const ec_field qovery_clone_application[] = {
    PATH("applicationId", EC_FMT_UUID),
    STR("name", 1, 1, 0),
    STRF("environment_id", 1, EC_FMT_UUID),
    END_FIELDS
};

/* ---- Kontent.ai Management API v2 --------------------------------------- */

/* Kontent environment ids are UUIDs (every example on the page is one). */
#define KONTENT_ENV PATH("environment_id", EC_FMT_UUID)

static const ec_field kontent_copy_data_options[] = {
    BOOL("content_items_assets"),
    BOOL("content_item_version_history"),
    END_FIELDS
};

static const ec_field kontent_clone_environment[] = {
    KONTENT_ENV,
    STR("name", 1, 1, 200),
    { "roles_to_activate", EC_IN_BODY, EC_T_STRING_ARRAY, 0, NULL, 0, 0, EC_FMT_NONE, NULL, NULL, EC_FMT_UUID },
    { "copy_data_options", EC_IN_BODY, EC_T_OBJECT, 0, NULL, 0, 0, EC_FMT_NONE, NULL, kontent_copy_data_options, EC_FMT_NONE },
    END_FIELDS
};

static const ec_field kontent_environment_only[] = { KONTENT_ENV, END_FIELDS };

static const ec_field kontent_mark_environment_as_production[] = {
    KONTENT_ENV,
    BOOL("enable_webhooks"),
    END_FIELDS
};

static const ec_field kontent_rename_environment[] = {
    KONTENT_ENV,
    STR("name", 1, 1, 200),
    END_FIELDS
};

/* ---- Droplit.io ---------------------------------------------------------- */

static const ec_field droplit_create_environment[] = {
    STR("ecosystemId", 1, 1, 0),
    { "meta", EC_IN_BODY, EC_T_FREE_OBJECT, 0, NULL, 0, 0, EC_FMT_NONE, NULL, NULL, EC_FMT_NONE },
    STR("alias", 0, 1, 256),
    { "metadata_prefix", EC_IN_HEADER, EC_T_STRING, 0, "x-system-metadata-prefix", 1, 64, EC_FMT_TOKEN, NULL, NULL, EC_FMT_NONE },
    END_FIELDS
};

/* ---- the table ------------------------------------------------------------ */

const ec_op ec_ops[] = {
    { "versori", "clone_environment", "POST",
      "/o/{organisation_id}/projects/{project_id}/environments/clone",
      EC_AUTH_BEARER, "token", EC_BODY_OBJECT, NULL, 1, versori_clone_environment },
    { "versori", "create_connection_version", "POST",
      "/o/{organisation_id}/connections/{connection_id}/versions",
      EC_AUTH_COOKIE, "cookie", EC_BODY_OBJECT, NULL, 1, versori_create_connection_version },
    { "qovery", "clone_application", "POST",
      "/application/{applicationId}/clone",
      EC_AUTH_BEARER, "token", EC_BODY_OBJECT, NULL, 1, qovery_clone_application },
    { "kontent", "clone_environment", "POST",
      "/projects/{environment_id}/clone-environment",
      EC_AUTH_BEARER, "api_key", EC_BODY_OBJECT, NULL, 1, kontent_clone_environment },
    { "kontent", "get_cloning_state", "GET",
      "/projects/{environment_id}/environment-cloning-state",
      EC_AUTH_BEARER, "api_key", EC_BODY_NONE, NULL, 0, kontent_environment_only },
    { "kontent", "get_environment", "GET",
      "/projects/{environment_id}",
      EC_AUTH_BEARER, "api_key", EC_BODY_NONE, NULL, 0, kontent_environment_only },
    { "kontent", "mark_environment_as_production", "PUT",
      "/projects/{environment_id}/mark-environment-as-production",
      EC_AUTH_BEARER, "api_key", EC_BODY_OBJECT, NULL, 0, kontent_mark_environment_as_production },
    { "kontent", "rename_environment", "PATCH",
      "/projects/{environment_id}",
      EC_AUTH_BEARER, "api_key", EC_BODY_PATCH_OP, "rename_environment", 0, kontent_rename_environment },
    { "kontent", "delete_environment", "DELETE",
      "/projects/{environment_id}",
      EC_AUTH_BEARER, "api_key", EC_BODY_NONE, NULL, 0, kontent_environment_only },
    { "droplit", "create_environment", "POST",
      "/api/environments/",
      EC_AUTH_RAW, "token", EC_BODY_OBJECT, NULL, 1, droplit_create_environment },
};
const size_t ec_ops_count = sizeof ec_ops / sizeof ec_ops[0];

static const char *const versori_credentials[] = { "token", "cookie", NULL };
static const char *const token_only[] = { "token", NULL };
static const char *const api_key_only[] = { "api_key", NULL };

const ec_vendor ec_vendors[] = {
    { "versori", "https://platform.versori.com/api/v2", versori_credentials },
    { "qovery", "https://api.qovery.com", token_only },
    { "kontent", "https://manage.kontent.ai/v2", api_key_only },
    { "droplit", "https://ioe.droplit.io/v0", token_only },
};
const size_t ec_vendors_count = sizeof ec_vendors / sizeof ec_vendors[0];

const ec_op *ec_op_find(const char *vendor, const char *name)
{
    for (size_t i = 0; i < ec_ops_count; i++)
        if (strcmp(ec_ops[i].vendor, vendor) == 0 && strcmp(ec_ops[i].name, name) == 0)
            return &ec_ops[i];
    return NULL;
}

const ec_vendor *ec_vendor_find(const char *name)
{
    for (size_t i = 0; i < ec_vendors_count; i++)
        if (strcmp(ec_vendors[i].name, name) == 0)
            return &ec_vendors[i];
    return NULL;
}

const char *ec_type_name(ec_type t)
{
    switch (t) {
    case EC_T_STRING: return "string";
    case EC_T_BOOLEAN: return "boolean";
    case EC_T_STRING_ARRAY: return "array of strings";
    case EC_T_OBJECT:
    case EC_T_FREE_OBJECT: return "table (object)";
    }
    return "?";
}

const char *ec_format_name(ec_format f)
{
    switch (f) {
    case EC_FMT_ULID: return "a ULID (26 characters of Crockford base32)";
    case EC_FMT_UUID: return "a UUID (8-4-4-4-12 hex digits)";
    case EC_FMT_TOKEN: return "printable ASCII without CR, LF or NUL";
    case EC_FMT_NONE: return "a string";
    }
    return "?";
}
