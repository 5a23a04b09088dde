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

/* Platform API v2 reads and teardown (versori/cli@f592f0c8 versori-api.yaml:
 * GetProject :109-131, DeleteEnvironment :271-295). */
#define VERSORI_ORG_PROJECT \
    { .name = "organisation_id", PATH_PARAM, .format = EC_FMT_ULID, \
      .description = "The organisation's id (string<ulid>)." }, \
    { .name = "project_id", PATH_PARAM, .format = EC_FMT_ULID, .description = "The project's id (string<ulid>)." }

static const ec_field versori_get_project[] = { VERSORI_ORG_PROJECT, { .name = NULL } };

/* The environment is addressed by its id, a ULID: the same path with
 * "clone" in that place is the clone endpoint, so nothing else may go there. */
static const ec_field versori_delete_environment[] = {
    VERSORI_ORG_PROJECT,
    { .name = "environment_id", PATH_PARAM, .format = EC_FMT_ULID,
      .description = "The id of the environment to unpublish and remove (string<ulid>)." },
    { .name = NULL }
};

/* Connect API v1alpha1 versions (versori/user-docs@a3a98009
 * openapi/connect-api-v1alpha1.yaml: list :518-543, get :545-566, delete
 * :598-625; "latest" and "default" select other versions, :3624-3632). */
#define VERSORI_CONNECTION \
    { .name = "organisation_id", PATH_PARAM, .format = EC_FMT_ULID, .description = "The organisation's id (a ULID)." }, \
    { .name = "connection_id", PATH_PARAM, .description = "ID is the unique identifier of the Connection." }
#define VERSORI_VERSION \
    { .name = "version", PATH_PARAM, .reserved = versori_reserved_versions, \
      .description = "The version's name. The reserved names \"default\" and \"latest\" select other versions and " \
                     "are refused here." }

static const ec_field versori_get_connection_version[] = { VERSORI_CONNECTION, VERSORI_VERSION, { .name = NULL } };

static const ec_field versori_list_connection_versions[] = {
    VERSORI_CONNECTION,
    { .name = "first", .in = EC_IN_QUERY, .type = EC_T_INTEGER, .min_value = 1, .max_value = 100,
      .description = "The number of versions to return (default 20)." },
    { .name = "before", .in = EC_IN_QUERY, .type = EC_T_STRING, .min_len = 1,
      .description = "A cursor: the versions before it (pageInfo.prev of an earlier answer)." },
    { .name = "after", .in = EC_IN_QUERY, .type = EC_T_STRING, .min_len = 1,
      .description = "A cursor: the versions after it (pageInfo.next of an earlier answer)." },
    { .name = NULL }
};

static const ec_field versori_delete_connection_version[] = {
    VERSORI_CONNECTION, VERSORI_VERSION,
    { .name = "force", .in = EC_IN_QUERY, .type = EC_T_BOOLEAN,
      .description = "Delete a published version too (\"only in exceptional circumstances\"; otherwise unpublish "
                     "it first)." },
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

/* Reads and teardown (Qovery/qovery-openapi-spec@651aed53 openapi.yaml:
 * listApplication :6445-6466, application :7484-7503, delete :7538-7560,
 * status :7562-7582). */
static const ec_field qovery_application_only[] = {
    { .name = "applicationId", PATH_PARAM, .format = EC_FMT_UUID, .description = "Application ID (string<uuid>)." },
    { .name = NULL }
};

static const ec_field qovery_list_applications[] = {
    { .name = "environmentId", PATH_PARAM, .format = EC_FMT_UUID, .description = "Environment ID (string<uuid>)." },
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

/* Subscription API: the only list of environments (Enterprise or Flex
 * plans; https://kontent.ai/learn/docs/apis/openapi/subscription-api,
 * kontent-ai/management-sdk-js@2008c8c1 lib/contracts/subscription-contracts.ts:4-19). */
static const ec_field kontent_list_subscription_projects[] = {
    { .name = "subscription_id", PATH_PARAM, .format = EC_FMT_UUID, .description = "Identifies your subscription." },
    { .name = "continuation", .in = EC_IN_HEADER, .type = EC_T_STRING, .wire = "x-continuation", .min_len = 1,
      .format = EC_FMT_TOKEN,
      .description = "The continuation token of the previous page (pagination.continuation_token), sent as "
                     "x-continuation." },
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

/* An environment by its id, or by its alias scoped by its ecosystem
 * ("{ecosystemId};{alias}": docs.droplit.io/reference/aliases and
 * /reference/identifiers; applying it to environments is GUESS, the docs'
 * example is a device).  Each field belongs to one of the two paths, so
 * none is required on its own; the marshal engine wants exactly one path
 * complete. */
static const ec_field droplit_environment_address[] = {
    { .name = "id", .in = EC_IN_PATH, .type = EC_T_STRING, .min_len = 1, .charset = &droplit_id_chars,
      .description = "The environment's ID (give it, or ecosystemId and alias)." },
    { .name = "ecosystemId", .in = EC_IN_PATH, .type = EC_T_STRING, .min_len = 1, .charset = &droplit_id_chars,
      .description = "The ID of the environment's ecosystem (with alias, instead of id)." },
    { .name = "alias", .in = EC_IN_PATH, .type = EC_T_STRING, .min_len = 1, .max_len = 24,
      .charset = &droplit_id_chars,
      .description = "The environment's alias within its ecosystem (1-24 of a-z, A-Z, 0-9, _; case sensitive)." },
    { .name = NULL }
};

/* ---- lookups: how to find what a create makes, by its natural key ------------- */

/* GUESS: unique (names are used as keys by the clone and sync endpoints;
 * uniqueness is not stated); a duplicate clone's answer is undocumented. */
static const ec_lookup versori_clone_environment_lookup = {
    .read = "get_project",
    .args = { { "organisation_id", "organisation_id" }, { "project_id", "project_id" } },
    .list = "environments", .key = "name", .key_arg = "newEnvName", .match = EC_MATCH_EXACT, .id = "id",
    .unique = 1, .exists_reason = NULL, .result = EC_RESULT_READ,
    .source = "versori/cli@f592f0c8 versori-api.yaml:109-131 (GetProject -> Project.environments[]), :240-269 "
              "(the clone answers the Project); pkg/cmd/projects/environments/create.go:89-117 (Name == newEnvName). "
              "GUESS: names unique",
};

/* GUESS: a duplicate name is refused with reason "conflict". */
static const ec_lookup versori_create_connection_version_lookup = {
    .read = "get_connection_version",
    .args = { { "organisation_id", "organisation_id" }, { "connection_id", "connection_id" }, { "version", "name" } },
    .list = NULL, .key = "name", .key_arg = "name", .match = EC_MATCH_EXACT, .id = "id",
    .unique = 1, .exists_reason = "conflict", .result = EC_RESULT_OBJECT,
    .source = "versori/user-docs@a3a98009 openapi/connect-api-v1alpha1.yaml:545-566 (GetConnectionVersion by name, "
              "404 when absent). GUESS: exists_reason conflict",
};

static const ec_lookup qovery_clone_application_lookup = {
    .read = "list_applications",
    .args = { { "environmentId", "environment_id" } },
    .list = "results", .key = "name", .key_arg = "name", .match = EC_MATCH_FOLD, .id = "id",
    .unique = 1, .exists_reason = "conflict", .result = EC_RESULT_OBJECT,
    .source = "Qovery/qovery-openapi-spec@651aed53 openapi.yaml:6445-6466 (listApplication), :17253-17254 (name is "
              "case insensitive), :6495 (409: name already taken); Qovery/qovery-cli@210d6c63 utils/qovery.go:1270-1279 "
              "(names compared trimmed)",
};

/* Names are not unique (GUESS: not enforced): the Lua layer snapshots the
 * matching ids before the clone and accepts one new id after it. */
static const ec_lookup kontent_clone_environment_lookup = {
    .read = "list_subscription_projects",
    .client_args = { { "subscription_id", "subscription_id" } },
    .list = "projects", .sublist = "environments", .group_arg = "environment_id",
    .key = "name", .key_arg = "name", .match = EC_MATCH_EXACT, .id = "id",
    .unique = 0, .credential = "subscription_api_key", .result = EC_RESULT_OBJECT,
    .page_arg = "continuation", .page_next = "pagination.continuation_token",
    .source = "https://kontent.ai/learn/docs/apis/openapi/subscription-api; kontent-ai/management-sdk-js@2008c8c1 "
              "lib/contracts/subscription-contracts.ts:4-19. GUESS: names not unique",
};

static const ec_lookup droplit_create_environment_lookup = {
    .read = "get_environment",
    .args = { { "ecosystemId", "ecosystemId" }, { "alias", "alias" } },
    .list = NULL, .key = "alias", .key_arg = "alias", .match = EC_MATCH_EXACT, .id = "id",
    .unique = 1, .exists_reason = "alias_exists", .result = EC_RESULT_OBJECT,
    .source = "https://docs.droplit.io/reference/aliases (unique per parent scope, {ecosystemId};{alias}), "
              "https://docs.droplit.io/reference/environments-info; create: 400 \"Alias Exists\"",
};

/* ---- the table ------------------------------------------------------------- */

#define KONTENT_AUTH { { .credential = "api_key", .scheme = EC_AUTH_BEARER } }
#define KONTENT_PAGE "https://kontent.ai/learn/docs/apis/openapi/management-api-v2/#tag/Environments"

/* Kontent clones in the background: "Get environment cloning state" says
 * in_progress, then done or failed; a new environment may answer 404 for a
 * moment after the clone call (KONTENT_PAGE). */
static const char *const kontent_cloning_pending[] = { "in_progress", NULL };
static const ec_waiter kontent_cloning = {
    .name = "wait_for_cloning", .poll = "get_cloning_state", .id_arg = "environment_id", .id_result = "id",
    .state_field = "cloning_state", .done = "done", .failed = "failed", .pending = kontent_cloning_pending,
    .failed_message = "environment cloning failed", .not_yet_status = 404,
};

/* Qovery deletes in the background: poll the status until DELETED or 404
 * (openapi.yaml:25928-25957 for the states; Qovery/terraform-provider-qovery@c186979c
 * client/application.go:238-267 waits the same way). */
static const char *const qovery_deletion_pending[] = { "DELETE_QUEUED", "DELETING", "WAITING_DELETING", NULL };
static const ec_waiter qovery_deletion = {
    .name = "wait_for_deletion", .poll = "get_application_status", .id_arg = "applicationId",
    .id_arg_from = "applicationId", .state_field = "state", .done = "DELETED", .done_status = 404,
    .failed = "DELETE_ERROR", .pending = qovery_deletion_pending, .failed_message = "application deletion failed",
};

#define VERSORI_CONNECT_AUTH \
    { { .credential = "token", .scheme = EC_AUTH_BEARER }, { .credential = "cookie", .scheme = EC_AUTH_COOKIE } }
#define VERSORI_PLATFORM_SPEC "https://github.com/versori/cli/blob/f592f0c8/versori-api.yaml"
#define VERSORI_CONNECT_SPEC "https://github.com/versori/user-docs/blob/a3a98009/openapi/connect-api-v1alpha1.yaml"
#define QOVERY_AUTH { { .credential = "token", .scheme = EC_AUTH_TOKEN_OR_JWT } }
#define DROPLIT_AUTH { { .credential = "token", .scheme = EC_AUTH_RAW } }

const ec_op ec_ops[] = {
    { .vendor = "versori", .name = "clone_environment", .method = "POST",
      .path = "/o/{organisation_id}/projects/{project_id}/environments/clone",
      .auth = { { .credential = "token", .scheme = EC_AUTH_BEARER } },
      .body = EC_BODY_OBJECT, .creates = 1, .success = { 200 },
      .fields = versori_clone_environment, .lookup = &versori_clone_environment_lookup,
      .summary = "Clone an environment within a project.",
      .page = "https://docs.versori.com/latest/api-reference/platform-api-v2/environments/clone-environment" },
    /* The Connect API (versori/user-docs openapi/connect-api-v1alpha1.yaml,
     * servers: https://platform.versori.com/api/connect/v1alpha1) takes a
     * bearerToken or the cookie. */
    { .vendor = "versori", .name = "create_connection_version", .method = "POST", .base = "connect",
      .path = "/o/{organisation_id}/connections/{connection_id}/versions",
      .auth = VERSORI_CONNECT_AUTH,
      .body = EC_BODY_OBJECT, .creates = 1, .success = { 201 },
      .fields = versori_create_connection_version, .lookup = &versori_create_connection_version_lookup,
      .summary = "Create a new version of a Connection.",
      .page = "https://docs.versori.com/latest/api-reference/connect-api-v1alpha1/connections/create-connection-version" },
    /* versori/cli@f592f0c8 versori-api.yaml:109-131 (GetProject): 200 Project,
     * environments[] included, no paging. */
    { .vendor = "versori", .name = "get_project", .method = "GET",
      .path = "/o/{organisation_id}/projects/{project_id}",
      .auth = { { .credential = "token", .scheme = EC_AUTH_BEARER } },
      .success = { 200 }, .fields = versori_get_project,
      .summary = "Get a project, with its environments.", .page = VERSORI_PLATFORM_SPEC },
    /* versori-api.yaml:271-295 (DeleteEnvironment): "will unpublish and remove
     * an environment from the project"; 200 Project.  A POST that creates
     * nothing.  Not in the public docs site's spec.  Already gone: GUESS 404. */
    { .vendor = "versori", .name = "delete_environment", .method = "POST",
      .path = "/o/{organisation_id}/projects/{project_id}/environments/{environment_id}",
      .auth = { { .credential = "token", .scheme = EC_AUTH_BEARER } },
      .deletes = 1, .success = { 200 }, .fields = versori_delete_environment,
      .summary = "Unpublish and remove an environment from the project.", .page = VERSORI_PLATFORM_SPEC },
    /* connect-api-v1alpha1.yaml:545-566 (GetConnectionVersion): by name, 404 when absent. */
    { .vendor = "versori", .name = "get_connection_version", .method = "GET", .base = "connect",
      .path = "/o/{organisation_id}/connections/{connection_id}/versions/{version}", .auth = VERSORI_CONNECT_AUTH,
      .success = { 200 }, .fields = versori_get_connection_version,
      .summary = "Get a version of a Connection by its name.", .page = VERSORI_CONNECT_SPEC },
    /* connect-api-v1alpha1.yaml:518-543: {pageInfo {totalCount, next, prev}, items[]}. */
    { .vendor = "versori", .name = "list_connection_versions", .method = "GET", .base = "connect",
      .path = "/o/{organisation_id}/connections/{connection_id}/versions", .auth = VERSORI_CONNECT_AUTH,
      .success = { 200 }, .fields = versori_list_connection_versions,
      .summary = "List the versions of a Connection.", .page = VERSORI_CONNECT_SPEC },
    /* connect-api-v1alpha1.yaml:598-625: 204; a published version needs
     * force.  Already gone: GUESS 404 (the GET documents it). */
    { .vendor = "versori", .name = "delete_connection_version", .method = "DELETE", .base = "connect",
      .path = "/o/{organisation_id}/connections/{connection_id}/versions/{version}", .auth = VERSORI_CONNECT_AUTH,
      .deletes = 1, .success = { 204 }, .fields = versori_delete_connection_version,
      .summary = "Delete a version of a Connection.", .page = VERSORI_CONNECT_SPEC },
    /* Qovery's OpenAPI spec: 202 "Application clone has been requested";
     * securitySchemes ApiKeyAuth ("Token <t>") and bearerAuth (JWT). */
    { .vendor = "qovery", .name = "clone_application", .method = "POST",
      .path = "/application/{applicationId}/clone",
      .auth = { { .credential = "token", .scheme = EC_AUTH_TOKEN_OR_JWT } },
      .body = EC_BODY_OBJECT, .creates = 1, .success = { 202 },
      .fields = qovery_clone_application, .lookup = &qovery_clone_application_lookup,
      .summary = "Clone an application into an environment.",
      .page = "https://api-doc.qovery.com/#tag/Applications/operation/cloneApplication" },
    /* openapi.yaml:7484-7503 */
    { .vendor = "qovery", .name = "get_application", .method = "GET", .path = "/application/{applicationId}",
      .auth = QOVERY_AUTH, .success = { 200 }, .fields = qovery_application_only,
      .summary = "Get application by ID.", .page = "https://api-doc.qovery.com/#tag/Application-Main-Calls/operation/getApplication" },
    /* openapi.yaml:7562-7582: {id, state, ...} */
    { .vendor = "qovery", .name = "get_application_status", .method = "GET",
      .path = "/application/{applicationId}/status", .auth = QOVERY_AUTH, .success = { 200 },
      .fields = qovery_application_only, .summary = "Get application status.",
      .page = "https://api-doc.qovery.com/#tag/Application-Main-Calls/operation/getApplicationStatus" },
    /* openapi.yaml:6445-6466: {results: Application[]}, no paging */
    { .vendor = "qovery", .name = "list_applications", .method = "GET",
      .path = "/environment/{environmentId}/application", .auth = QOVERY_AUTH, .success = { 200 },
      .fields = qovery_list_applications, .summary = "List applications of an environment.",
      .page = "https://api-doc.qovery.com/#tag/Applications/operation/listApplication" },
    /* openapi.yaml:7538-7560: 204, 404 when not found; the deletion then
     * runs in the background (qovery_deletion). */
    { .vendor = "qovery", .name = "delete_application", .method = "DELETE", .path = "/application/{applicationId}",
      .auth = QOVERY_AUTH, .deletes = 1, .success = { 204 }, .waiter = &qovery_deletion,
      .fields = qovery_application_only, .summary = "Delete an application.",
      .page = "https://api-doc.qovery.com/#tag/Application-Main-Calls/operation/deleteApplication" },
    { .vendor = "kontent", .name = "clone_environment", .method = "POST",
      .path = "/projects/{environment_id}/clone-environment", .auth = KONTENT_AUTH,
      .body = EC_BODY_OBJECT, .creates = 1, .success = { 200 }, .waiter = &kontent_cloning,
      .fields = kontent_clone_environment, .lookup = &kontent_clone_environment_lookup,
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
      .deletes = 1, .success = { 204 }, .applied_reason = "not_found", .fields = kontent_environment_only,
      .summary = "Delete a non-production environment.", .page = KONTENT_PAGE },
    /* Subscription API (Bearer Subscription API key): {projects: [{id, name,
     * is_active, environments: [{id, name}]}], pagination: {continuation_token,
     * next_page}}, paged by the x-continuation request header. */
    { .vendor = "kontent", .name = "list_subscription_projects", .method = "GET",
      .path = "/subscriptions/{subscription_id}/projects",
      .auth = { { .credential = "subscription_api_key", .scheme = EC_AUTH_BEARER } },
      .success = { 200 }, .fields = kontent_list_subscription_projects,
      .summary = "List the subscription's projects and their environments.",
      .page = "https://kontent.ai/learn/docs/apis/openapi/subscription-api" },
    { .vendor = "droplit", .name = "create_environment", .method = "POST",
      .path = "/api/environments/",
      .auth = DROPLIT_AUTH,
      .body = EC_BODY_OBJECT, .creates = 1, .success = { 201 },
      .fields = droplit_create_environment, .lookup = &droplit_create_environment_lookup,
      .summary = "Create an environment.", .page = "https://docs.droplit.io/docs/environments-create" },
    /* https://docs.droplit.io/reference/environments-info: {createdAt,
     * ecosystemId, id, meta}; 404 "Environment Not Found". */
    { .vendor = "droplit", .name = "get_environment", .method = "GET",
      .path = "/api/environments/{id}", .alt_path = "/api/environments/{ecosystemId};{alias}",
      .auth = DROPLIT_AUTH, .success = { 200 }, .fields = droplit_environment_address,
      .summary = "Get an environment's info, by its ID or by its ecosystem and alias.",
      .page = "https://docs.droplit.io/reference/environments-info" },
    /* GUESS, unverified: no Droplit page documents deleting an environment;
     * the route, 200/204 and the 404 "Environment Not Found" are by analogy
     * with https://docs.droplit.io/reference/devices-delete. */
    { .vendor = "droplit", .name = "delete_environment", .method = "DELETE",
      .path = "/api/environments/{id}", .alt_path = "/api/environments/{ecosystemId};{alias}",
      .auth = DROPLIT_AUTH, .deletes = 1, .success = { 200, 204 }, .fields = droplit_environment_address,
      .summary = "Delete an environment (unverified: by analogy with Droplit's device delete).",
      .page = "https://docs.droplit.io/reference/devices-delete" },
};
const size_t ec_ops_count = sizeof ec_ops / sizeof ec_ops[0];

/* ---- vendors ----------------------------------------------------------------- */

static const char *const versori_credentials[] = { "token", "cookie", NULL };
static const char *const qovery_credentials[] = { "token", NULL };
/* subscription_api_key: the Subscription API's own key (list_subscription_projects). */
static const char *const kontent_credentials[] = { "api_key", "subscription_api_key", NULL };
/* The subscription the Subscription API reads (a UUID; not a secret). */
static const ec_setting kontent_settings[] = { { .name = "subscription_id", .format = EC_FMT_UUID }, { .name = NULL } };
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
    /* GUESS: the Connect spec documents no code for deleting a published
     * version without force (connect-api-v1alpha1.yaml:598-625). */
    { .code = "version_published", .reason = "published" },
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
      .settings = kontent_settings,
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
    case EC_T_INTEGER: return "integer";
    }
    return "?";
}

/* ASCII only: toupper() and isxdigit() follow the C locale, which
 * os.setlocale can change (to one where 0xE9 is a letter). */
static int is_crockford(unsigned char ch)
{
    if (ch >= 'a' && ch <= 'z')
        ch = (unsigned char)(ch - 'a' + 'A');
    return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z' && ch != 'I' && ch != 'L' && ch != 'O' && ch != 'U');
}

static int is_hex(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

int ec_format_ok(ec_format f, const char *s, size_t n)
{
    switch (f) {
    case EC_FMT_NONE:
        return 1;
    case EC_FMT_ULID:
        if (n != 26 || s[0] < '0' || s[0] > '7')
            return 0;
        for (size_t i = 0; i < n; i++)
            if (!is_crockford((unsigned char)s[i]))
                return 0;
        return 1;
    case EC_FMT_UUID: {
        /* 8-4-4-4-12 hex digits, each group a run */
        static const unsigned char groups[5] = { 8, 4, 4, 4, 12 };
        if (n != 36)
            return 0;
        const unsigned char *p = (const unsigned char *)s;
        for (int g = 0; g < 5; g++) {
            if (g > 0 && *p++ != '-')
                return 0;
            for (unsigned k = 0; k < groups[g]; k++)
                if (!is_hex(*p++))
                    return 0;
        }
        return 1;
    }
    case EC_FMT_TOKEN:
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7E)
                return 0;
        return 1;
    }
    return 0;
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

const char *ec_location_name(ec_location l)
{
    switch (l) {
    case EC_IN_BODY: return "body";
    case EC_IN_PATH: return "path";
    case EC_IN_HEADER: return "header";
    case EC_IN_QUERY: return "query";
    }
    return "?";
}
