/*
 * ec_ops.c - the rows of the operation table, one per vendor operation,
 * transcribed from the vendor pages (the README lists them) and, where a
 * vendor's own spec or SDK says more, from that source (cited per row).
 * Field names are the vendors' own.  Every row uses named columns; a
 * column left out is zero/NULL, which always means "none" or "default".
 */
#include "ec_ops.h"

#include <string.h>

/* Path parameters are required, non-empty strings. */
#define PATH_PARAM .in = EC_IN_PATH, .type = EC_T_STRING, .required = 1, .min_len = 1

/* ---- Versori ------------------------------------------------------------- */

static const char *const versori_reserved_versions[] = { "default", "latest", NULL };

/* Platform API v2, "Clone Environment" (seed 000). */
static const ec_field versori_clone_environment[] = {
    { .name = "organisation_id", PATH_PARAM, .format = EC_FMT_ULID,
      .description = "The organisation's id (string<ulid>)." },
    { .name = "project_id", PATH_PARAM, .format = EC_FMT_ULID,
      .description = "The project's id (string<ulid>)." },
    { .name = "oldEnvName", .type = EC_T_STRING, .required = 1, .min_len = 1,
      .description = "The name of the source environment to clone from." },
    { .name = "newEnvName", .type = EC_T_STRING, .required = 1, .min_len = 1,
      .description = "The name of the new environment to create." },
    { .name = "executionPool", .type = EC_T_STRING, .min_len = 1,
      .description = "Optional override execution pool for the new environment. Defaults to the source "
                     "environment's execution pool." },
    { .name = "cloneSystems", .type = EC_T_BOOLEAN,
      .description = "If true, copies systems from the source environment to the new environment (default false)." },
    { .name = "copyStaticUserVariables", .type = EC_T_BOOLEAN,
      .description = "If true, copies static user variables from the source environment to the new "
                     "environment (default false)." },
    { .name = NULL }
};

/* Connect API v1alpha1, "Create Connection Version" (seed 003). */
static const ec_field versori_create_connection_version[] = {
    /* The page types organisation_id as a plain string; Versori organisation
     * ids are ULIDs everywhere else, so the same rule applies here. */
    { .name = "organisation_id", PATH_PARAM, .format = EC_FMT_ULID,
      .description = "The organisation's id (a ULID)." },
    { .name = "connection_id", PATH_PARAM,
      .description = "ID is the unique identifier of the Connection." },
    { .name = "name", .type = EC_T_STRING, .required = 1, .min_len = 1, .reserved = versori_reserved_versions,
      .description = "Name denotes the actual version value for the Connection, e.g. SemVer, CalVer or an "
                     "incrementing number. The names \"default\" and \"latest\" are reserved words and cannot be used." },
    { .name = "fromVersion", .type = EC_T_STRING, .min_len = 1,
      .description = "FromVersion is the name of another ConnectionVersion from which this ConnectionVersion "
                     "should be created. If not provided, it is created from scratch with no child resources." },
    { .name = NULL }
};

/* ---- Qovery --------------------------------------------------------------- */

/* "Clone application" (seed 001). */
static const ec_field qovery_clone_application[] = {
    { .name = "applicationId", PATH_PARAM, .format = EC_FMT_UUID, .description = "Application ID (string<uuid>)." },
    { .name = "name", .type = EC_T_STRING, .required = 1, .min_len = 1,
      .description = "The new application's name (case insensitive)." },
    { .name = "environment_id", .type = EC_T_STRING, .required = 1, .min_len = 1, .format = EC_FMT_UUID,
      .description = "The environment to clone the application into (string<uuid>)." },
    { .name = NULL }
};

/* ---- Kontent.ai Management API v2 (seed 002) -------------------------------- */

/* Kontent environment ids are UUIDs (every example on the page is one). */
#define KONTENT_ENV \
    { .name = "environment_id", PATH_PARAM, .format = EC_FMT_UUID, .description = "Identifies your environment." }

static const ec_field kontent_copy_data_options[] = {
    { .name = "content_items_assets", .type = EC_T_BOOLEAN,
      .description = "Clone content items and assets (default true)." },
    { .name = "content_item_version_history", .type = EC_T_BOOLEAN,
      .description = "Clone up to 50 versions of each content item's history (default true)." },
    { .name = NULL }
};

static const ec_field kontent_clone_environment[] = {
    KONTENT_ENV,
    { .name = "name", .type = EC_T_STRING, .required = 1, .min_len = 1, .max_len = 200,
      .description = "The new environment's name." },
    { .name = "roles_to_activate", .type = EC_T_STRING_ARRAY, .item_format = EC_FMT_UUID,
      .description = "The user roles to activate specified by role ID. These roles will be activated in addition "
                     "to the users with the Project manager role." },
    { .name = "copy_data_options", .type = EC_T_OBJECT, .children = kontent_copy_data_options,
      .description = "Specifies what content to clone from the source environment." },
    { .name = NULL }
};

static const ec_field kontent_environment_only[] = { KONTENT_ENV, { .name = NULL } };

static const ec_field kontent_mark_environment_as_production[] = {
    KONTENT_ENV,
    /* Required: the official SDK's request contract requires it
     * (@kontent-ai/management-sdk, MarkEnvironmentAsProductionData), so the
     * choice about webhooks during a production swap is always explicit. */
    { .name = "enable_webhooks", .type = EC_T_BOOLEAN, .required = 1,
      .description = "Whether webhooks stay enabled in the environment that becomes production." },
    { .name = NULL }
};

static const ec_field kontent_rename_environment[] = {
    KONTENT_ENV,
    { .name = "name", .type = EC_T_STRING, .required = 1, .min_len = 1, .max_len = 200,
      .description = "The environment's new display name." },
    { .name = NULL }
};

/* ---- Droplit.io ------------------------------------------------------------ */

/* IDs and aliases: only a-z, A-Z, 0-9 and _ (docs.droplit.io/reference/
 * identifiers and /reference/aliases).  Both pages also say "between 1 and
 * 24 characters", but the system-generated ids in Droplit's own examples
 * (C594b89aea18568c408c3ad24, E53c19b2f3008801c0f4c3dca) have 25: the
 * length cap applies to aliases, which users choose, and not to ids. */
static const ec_charset droplit_id_chars = {
    .chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", .name = "a-z, A-Z, 0-9 and _"
};

static const ec_field droplit_create_environment[] = {
    { .name = "ecosystemId", .type = EC_T_STRING, .required = 1, .min_len = 1, .charset = &droplit_id_chars, .description = "The ID of the ecosystem." },
    { .name = "meta", .type = EC_T_FREE_OBJECT, .description = "The metadata associated with the environment." },
    { .name = "alias", .type = EC_T_STRING, .min_len = 1, .max_len = 24, .charset = &droplit_id_chars,
      .description = "The alias associated with the environment (1-24 of a-z, A-Z, 0-9, _; case sensitive)." },
    { .name = "metadata_prefix", .in = EC_IN_HEADER, .type = EC_T_STRING, .wire = "x-system-metadata-prefix",
      .min_len = 1, .max_len = 64, .format = EC_FMT_TOKEN,
      .description = "A customized metadata prefix. The default is \"$\"." },
    { .name = NULL }
};

/* ---- the table ------------------------------------------------------------- */

#define KONTENT_AUTH { { .credential = "api_key", .scheme = EC_AUTH_BEARER } }
#define KONTENT_PAGE "https://kontent.ai/learn/docs/apis/openapi/management-api-v2/#tag/Environments"

/* Kontent clones in the background: "Get environment cloning state" says
 * in_progress, then done or failed; a new environment may answer 404 for a
 * moment after the clone call (KONTENT_PAGE). */
static const ec_waiter kontent_cloning = {
    .name = "wait_for_cloning", .poll = "get_cloning_state", .id_arg = "environment_id", .id_result = "id",
    .state_field = "cloning_state", .done = "done", .failed = "failed", .pending = "in_progress",
    .failed_message = "environment cloning failed", .not_yet_status = 404,
};

const ec_op ec_ops[] = {
    { .vendor = "versori", .name = "clone_environment", .method = "POST",
      .path = "/o/{organisation_id}/projects/{project_id}/environments/clone",
      .auth = { { .credential = "token", .scheme = EC_AUTH_BEARER } },
      .body = EC_BODY_OBJECT, .creates = 1, .success = { 200 },
      .fields = versori_clone_environment,
      .summary = "Clone an environment within a project.",
      .page = "https://docs.versori.com/latest/api-reference/platform-api-v2/environments/clone-environment" },
    /* The Connect API (versori/user-docs openapi/connect-api-v1alpha1.yaml,
     * servers: https://platform.versori.com/api/connect/v1alpha1) takes a
     * bearerToken or the cookie. */
    { .vendor = "versori", .name = "create_connection_version", .method = "POST", .base = "connect",
      .path = "/o/{organisation_id}/connections/{connection_id}/versions",
      .auth = { { .credential = "token", .scheme = EC_AUTH_BEARER },
                { .credential = "cookie", .scheme = EC_AUTH_COOKIE } },
      .body = EC_BODY_OBJECT, .creates = 1, .success = { 201 },
      .fields = versori_create_connection_version,
      .summary = "Create a new version of a Connection.",
      .page = "https://docs.versori.com/latest/api-reference/connect-api-v1alpha1/connections/create-connection-version" },
    /* Qovery's OpenAPI spec: 202 "Application clone has been requested";
     * securitySchemes ApiKeyAuth ("Token <t>") and bearerAuth (JWT). */
    { .vendor = "qovery", .name = "clone_application", .method = "POST",
      .path = "/application/{applicationId}/clone",
      .auth = { { .credential = "token", .scheme = EC_AUTH_TOKEN_OR_JWT } },
      .body = EC_BODY_OBJECT, .creates = 1, .success = { 202 },
      .fields = qovery_clone_application,
      .summary = "Clone an application into an environment.",
      .page = "https://api-doc.qovery.com/#tag/Applications/operation/cloneApplication" },
    { .vendor = "kontent", .name = "clone_environment", .method = "POST",
      .path = "/projects/{environment_id}/clone-environment", .auth = KONTENT_AUTH,
      .body = EC_BODY_OBJECT, .creates = 1, .success = { 200 }, .waiter = &kontent_cloning,
      .fields = kontent_clone_environment,
      .summary = "Create a clone of an existing environment.", .page = KONTENT_PAGE },
    { .vendor = "kontent", .name = "get_cloning_state", .method = "GET",
      .path = "/projects/{environment_id}/environment-cloning-state", .auth = KONTENT_AUTH,
      .success = { 200 }, .fields = kontent_environment_only,
      .summary = "Retrieve the cloning status of the specified environment.", .page = KONTENT_PAGE },
    { .vendor = "kontent", .name = "get_environment", .method = "GET",
      .path = "/projects/{environment_id}", .auth = KONTENT_AUTH,
      .success = { 200 }, .fields = kontent_environment_only,
      .summary = "Retrieve the ID and display name of your project's environment.", .page = KONTENT_PAGE },
    { .vendor = "kontent", .name = "mark_environment_as_production", .method = "PUT",
      .path = "/projects/{environment_id}/mark-environment-as-production", .auth = KONTENT_AUTH,
      .body = EC_BODY_OBJECT, .success = { 204 }, .applied_reason = "already_production",
      .fields = kontent_mark_environment_as_production,
      .summary = "Mark the environment as production (swaps it with the current production environment).",
      .page = KONTENT_PAGE },
    { .vendor = "kontent", .name = "rename_environment", .method = "PATCH",
      .path = "/projects/{environment_id}", .auth = KONTENT_AUTH,
      .body = EC_BODY_PATCH_OP, .patch_op = "rename_environment", .success = { 200 },
      .fields = kontent_rename_environment,
      .summary = "Change the display name of an environment.", .page = KONTENT_PAGE },
    { .vendor = "kontent", .name = "delete_environment", .method = "DELETE",
      .path = "/projects/{environment_id}", .auth = KONTENT_AUTH,
      .success = { 204 }, .applied_reason = "not_found", .fields = kontent_environment_only,
      .summary = "Delete a non-production environment.", .page = KONTENT_PAGE },
    { .vendor = "droplit", .name = "create_environment", .method = "POST",
      .path = "/api/environments/",
      .auth = { { .credential = "token", .scheme = EC_AUTH_RAW } },
      .body = EC_BODY_OBJECT, .creates = 1, .success = { 201 },
      .fields = droplit_create_environment,
      .summary = "Create an environment.", .page = "https://docs.droplit.io/docs/environments-create" },
};
const size_t ec_ops_count = sizeof ec_ops / sizeof ec_ops[0];

/* ---- vendors ----------------------------------------------------------------- */

static const char *const versori_credentials[] = { "token", "cookie", NULL };
static const char *const qovery_credentials[] = { "token", NULL };
static const char *const kontent_credentials[] = { "api_key", NULL };
static const char *const droplit_credentials[] = { "token", NULL };

static const ec_base versori_bases[] = {
    { .name = "connect", .url = "https://platform.versori.com/api/connect/v1alpha1",
      .option = "connect_base_url", .relative = "../connect/v1alpha1" },
    { .name = NULL }
};

/* Versori errors: {code, message, fields, details} (platform-api-v2 and
 * connect-api OpenAPI files, schema Error). */
static const ec_reason_rule versori_reasons[] = {
    { .status = 400, .code = "reserved_name", .reason = "reserved_name" },
    { .status = 0 }
};

/* Qovery errors: {status, detail} (OpenAPI responses), older {error, message}. */
static const ec_reason_rule qovery_reasons[] = { { .status = 0 } };

/* Kontent: {request_id, error_code, message, validation_errors[]}
 * (kontent.ai/learn Management API v2 "Errors"; 232/233 from seed 002; 429
 * answers error_code 10000 with Retry-After). */
static const ec_reason_rule kontent_reasons[] = {
    { .code = "232", .reason = "already_production" },
    { .code = "233", .reason = "production_not_deletable" },
    { .code = "10000", .reason = "rate_limited" },
    { .status = 0 }
};

/* Droplit's standard error structure {errors: [{type, name, parameter,
 * message}]}; names from the environments-create page (seed 004). */
static const ec_reason_rule droplit_reasons[] = {
    { .code = "Body Parameters Missing", .reason = "invalid_body" },
    { .code = "No Query String Allowed", .reason = "query_not_allowed" },
    { .code = "Alias Exists", .reason = "alias_exists" },
    { .code = "Alias Invalid", .reason = "alias_invalid" },
    { .code = "Metadata Format Invalid", .reason = "metadata_invalid" },
    { .code = "Ecosystem Missing", .reason = "ecosystem_missing" },
    { .status = 0 }
};

const ec_vendor ec_vendors[] = {
    { .name = "versori", .default_base_url = "https://platform.versori.com/api/v2", .bases = versori_bases,
      .credentials = versori_credentials,
      .errors = { .code = { "code" }, .message = { "message" }, .details = "fields" },
      .reasons = versori_reasons },
    { .name = "qovery", .default_base_url = "https://api.qovery.com", .credentials = qovery_credentials,
      .scheme_option = "token_type",
      .errors = { .code = { "error" }, .message = { "detail", "message", "error" } },
      .reasons = qovery_reasons },
    /* Kontent asks for at most 10 requests/s and 400/min per environment
     * and no parallel requests to one environment (Management API v2,
     * "Rate limitation"). */
    { .name = "kontent", .default_base_url = "https://manage.kontent.ai/v2", .credentials = kontent_credentials,
      .errors = { .code = { "error_code" }, .message = { "message" }, .request_id = { "request_id" },
                  .details = "validation_errors" },
      .reasons = kontent_reasons,
      .rate_limit = { .key = "environment_id", .per_second = 10, .per_minute = 400, .concurrency_per_key = 1 } },
    { .name = "droplit", .default_base_url = "https://ioe.droplit.io/v0", .credentials = droplit_credentials,
      .errors = { .code = { "errors.1.name", "errors.1.type" }, .message = { "errors.1.message" } },
      .reasons = droplit_reasons },
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

/* The catalogue's generic part: what an HTTP status means whatever the vendor. */
static const ec_reason_rule generic_reasons[] = {
    { .status = 400, .reason = "invalid_body" },
    { .status = 401, .reason = "unauthorized" },
    { .status = 403, .reason = "forbidden" },
    { .status = 404, .reason = "not_found" },
    { .status = 409, .reason = "conflict" },
    { .status = 422, .reason = "invalid_body" },
    { .status = 429, .reason = "rate_limited" },
    { .status = 0 }
};

static const char *match_reason(const ec_reason_rule *r, long status, const char *code)
{
    for (; r && r->reason; r++) {
        if (r->status != 0 && r->status != status)
            continue;
        if (r->code != NULL && (code == NULL || strcmp(r->code, code) != 0))
            continue;
        return r->reason;
    }
    return NULL;
}

const char *ec_error_reason(const ec_vendor *v, long status, const char *code)
{
    const char *r = match_reason(v->reasons, status, code);
    if (r == NULL)
        r = match_reason(generic_reasons, status, code);
    if (r == NULL && status >= 500)
        r = "server_error";
    return r;
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

const char *ec_auth_name(ec_auth a)
{
    switch (a) {
    case EC_AUTH_UNSET: return "none";
    case EC_AUTH_BEARER: return "Authorization: Bearer";
    case EC_AUTH_COOKIE: return "Cookie";
    case EC_AUTH_RAW: return "authorization (raw token)";
    case EC_AUTH_TOKEN: return "Authorization: Token";
    case EC_AUTH_TOKEN_OR_JWT: return "Authorization: Token (API token) or Bearer (JWT)";
    }
    return "?";
}
