--- Qovery in the emulator: application clone. Seed page 001.
--
-- Source: Qovery's OpenAPI spec (github.com/Qovery/qovery-openapi-spec, `openapi.yaml`):
-- `POST /application/{applicationId}/clone` (operationId cloneApplication) answers
-- 202 "Application clone has been requested" with an Application, 401, 403, 404, and 409
-- "Operation is in progress"; the request is a CloneServiceRequest {name, environment_id}
-- (both required, environment_id a uuid); `securitySchemes`: bearerAuth (JWT,
-- `Authorization: Bearer`) and ApiKeyAuth (`Authorization: Token <token>`), either one.
-- @module envclone.emulator.vendors.qovery

local json = require("envclone.emulator.json")
local util = require("envclone.emulator.util")

local object, array, NULL = json.object, json.array, json.null

local V = { name = "qovery" }

V.bases = { qovery = "/qovery" }

V.credentials = { token = "emu-qovery-token" }

V.seed = {
  application_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a",
  application_name = "web",
  environment_id = "5b1c2e9a-3f4d-4e6a-9b8c-7d6e5f4a3b2c",
}

local SEED_TIME = "2024-01-15T09:30:00Z"

-- Errors are {status, detail}. Not in the OpenAPI file (its error responses have no
-- schema): the shape the issue gives for Qovery's answers (older ones carried
-- {error, message}, which envclone's client still reads).
local function err(status, message)
  return { status = status, json = object{ status = status, detail = message } }
end

--- Settings of this vendor (control API `PUT /_emulator/config` and `--qovery-...` flags).
V.config = {
  { key = "qovery_delete_seconds", default = 0.3, kind = "number", arg = "S",
    help = "seconds of each deletion stage (DELETE_QUEUED, DELETING, DELETED), then gone",
    check = function(v)
      if type(v) ~= "number" or v ~= v or v < 0 or v > 3600 then
        return nil, "qovery_delete_seconds must be a number of seconds in [0, 3600]"
      end
      return v
    end },
}

--- The generic error in Qovery's shape.
function V.error(_, status, message)
  return err(status, message)
end

function V.new_state()
  local qs = V.seed
  return {
    environments = { [qs.environment_id] = { id = qs.environment_id } },
    applications = { [qs.application_id] = object{
      id = qs.application_id, created_at = SEED_TIME, updated_at = SEED_TIME,
      environment = object{ id = qs.environment_id },
      name = qs.application_name, description = "",
      healthchecks = object(),
      icon_uri = "app://qovery-console/application",
      service_type = "APPLICATION",
      storage = array(),
      git_repository = object{
        provider = "GITHUB", owner = "envclone", url = "https://github.com/envclone/web.git",
        name = "envclone/web", has_access = true, branch = "main", root_path = "/",
      },
      maximum_cpu = 16000, maximum_memory = 16384, maximun_gpu = 0,
      build_mode = "DOCKER", dockerfile_path = "Dockerfile",
      cpu = 500, memory = 512, gpu = 0,
      min_running_instances = 1, max_running_instances = 1,
      auto_preview = true, auto_deploy = true,
      ports = array(), arguments = array(),
      annotations_groups = array(), labels_groups = array(),
      docker_target_build_stage = NULL,
    } },
    deleting = {},   -- application id -> clock time its DELETE was accepted
  }
end

-- The deletion stages, in order, each `qovery_delete_seconds` long (StateEnum,
-- Qovery/qovery-openapi-spec@651aed53 openapi.yaml:25928-25957); after the last the
-- application is gone (404). Emulator choice: evaluated when read, with the config in
-- force at that moment (like Kontent's cloning state).
local DELETE_STAGES = { "DELETE_QUEUED", "DELETING", "DELETED" }

local function deletion_state(emu, qs, id)
  local started = qs.deleting[id]
  if not started then return nil end
  local stage = emu.config.qovery_delete_seconds
  local elapsed = emu.clock() - started
  if stage <= 0 then return "GONE" end
  local k = math.floor(elapsed / stage) + 1
  return DELETE_STAGES[k] or "GONE"
end

-- Removes the applications whose deletion has run through every stage.
local function sweep(emu, qs)
  for id in pairs(qs.deleting) do
    if deletion_state(emu, qs, id) == "GONE" then
      qs.deleting[id] = nil
      qs.applications[id] = nil
    end
  end
end

-- The live application's state. Emulator choice: every application the emulator holds is
-- deployed ("DEPLOYED"), a clone included; a deleting one shows its deletion stage.
local function app_state(emu, qs, id)
  return deletion_state(emu, qs, id) or "DEPLOYED"
end

-- Both schemes carry the same API token here (a JWT in Bearer is what the console sends).
local function authorised(req)
  return util.auth_scheme(req, "Token") == V.credentials.token or util.bearer(req) == V.credentials.token
end

local function clone_application(emu, ctx)
  local req, qs = ctx.req, ctx.state
  if not authorised(req) then
    return err(401, "Access token is missing or invalid")   -- components/responses/401
  end
  local source = qs.applications[ctx.params.applicationId]
  if not source then
    return err(404, "application " .. ctx.params.applicationId .. " not found")
  end
  -- Emulator choice: the operation lists no 400, but a body the API cannot read gets the
  -- API-wide components/responses/400 "Bad request".
  local body, derr = json.decode_object(req.body)
  if not body then return err(400, derr) end
  local _, msg = util.check_fields(body, { { "name", "string", true }, { "environment_id", "string", true } })
  if msg then return err(400, msg) end
  if not util.is_uuid(body.environment_id) then
    return err(400, "environment_id must be a uuid")
  end
  local env_id = body.environment_id:lower()
  if not qs.environments[env_id] then
    return err(404, "environment " .. body.environment_id .. " not found")
  end
  -- Application.name: "name is case insensitive"; a second service of that name in the
  -- environment is a 409 (the spec's wording on blueprint creation: "A service with this name
  -- already exists in the environment"; 409 is among cloneApplication's statuses).
  -- An application being deleted keeps its name until it is gone (DELETED, then swept).
  sweep(emu, qs)
  local wanted = body.name:lower()
  for _, app in pairs(qs.applications) do
    if app.environment.id == env_id and app.name:lower() == wanted then
      return err(409, "a service named '" .. body.name .. "' already exists in environment " .. env_id)
    end
  end
  if emu:capacity_reached() then
    return err(503, "emulator capacity reached; reset it")
  end
  local now = util.iso_time(emu.clock())
  local app = util.deep_copy(source)
  app.id = util.new_uuid()
  app.name = body.name
  app.environment = object{ id = env_id }
  app.created_at = now
  app.updated_at = now
  qs.applications[app.id] = app
  emu:applied(ctx.op, body.name, true)
  return { status = 202, json = app }
end

-- Auth, then the application of the path (swept first: a deleted one is gone).
local function find_app(emu, ctx)
  local qs = ctx.state
  if not authorised(ctx.req) then return nil, err(401, "Access token is missing or invalid") end
  sweep(emu, qs)
  local app = qs.applications[ctx.params.applicationId]
  if not app then return nil, err(404, "application " .. ctx.params.applicationId .. " not found") end
  return app
end

-- getApplication (openapi.yaml:7484-7503): the Application; still there while it is deleted.
local function get_application(emu, ctx)
  local app, answer = find_app(emu, ctx)
  if not app then return answer end
  return { status = 200, json = app }
end

-- getApplicationStatus (openapi.yaml:7562-7582): Status {id, state, service_deployment_status,
-- last_deployment_date, is_part_last_deployment}. Emulator choice: the last three are fixed.
local function get_application_status(emu, ctx)
  local app, answer = find_app(emu, ctx)
  if not app then return answer end
  return { status = 200, json = object{
    id = app.id, state = app_state(emu, ctx.state, app.id),
    service_deployment_status = "UP_TO_DATE", last_deployment_date = app.updated_at,
    is_part_last_deployment = true,
  } }
end

local function sorted_apps(qs, env_id)
  local list = {}
  for _, app in pairs(qs.applications) do
    if not env_id or app.environment.id == env_id then list[#list + 1] = app end
  end
  table.sort(list, function(a, b)
    if a.created_at ~= b.created_at then return a.created_at < b.created_at end
    return a.id < b.id
  end)
  return list
end

-- listApplication (openapi.yaml:6445-6466): {results: Application[]}, no pagination; an
-- application being deleted is listed until it is gone.
local function list_applications(emu, ctx)
  local qs = ctx.state
  if not authorised(ctx.req) then return err(401, "Access token is missing or invalid") end
  local env_id = ctx.params.environmentId:lower()
  if not qs.environments[env_id] then
    return err(404, "environment " .. ctx.params.environmentId .. " not found")
  end
  sweep(emu, qs)
  return { status = 200, json = object{ results = array(sorted_apps(qs, env_id)) } }
end

-- deleteApplication (openapi.yaml:7538-7560): 204, 404 when not found; the deletion then runs
-- in the background (DELETE_STAGES). Emulator choice: a DELETE of an application already being
-- deleted answers 204 again and does not restart the stages.
local function delete_application(emu, ctx)
  local app, answer = find_app(emu, ctx)
  if not app then return answer end
  local qs = ctx.state
  -- Emulator choice: an application already DELETED is gone for a DELETE
  -- (the 404 it answers a moment later), as for Qovery's Terraform provider
  if deletion_state(emu, qs, app.id) == "DELETED" then
    return err(404, "application " .. app.id .. " not found")
  end
  if not qs.deleting[app.id] then
    qs.deleting[app.id] = emu.clock()
    emu:applied(ctx.op, nil, false)
  end
  return { status = 204 }
end

V.routes = {
  { "POST", "application/:applicationId/clone", "clone_application", clone_application },
  { "GET", "application/:applicationId", "get_application", get_application },
  { "GET", "application/:applicationId/status", "get_application_status", get_application_status },
  { "GET", "environment/:environmentId/application", "list_applications", list_applications },
  { "DELETE", "application/:applicationId", "delete_application", delete_application },
}

function V.state_view(emu, state)
  sweep(emu, state)
  local apps = object()
  for id, app in pairs(state.applications) do apps[id] = app end
  return object{ applications = apps }
end

--- Objects for counting (`GET /_emulator/objects`): per environment, application names ->
-- count (as stored; Qovery compares them case-insensitively) and each application's id,
-- name and state (a deleting one included, until it is gone).
function V.objects_view(emu, state)
  sweep(emu, state)
  local envs = object()
  for env_id in pairs(state.environments) do
    local names, apps = object(), array()
    for _, app in ipairs(sorted_apps(state, env_id)) do
      util.increment(names, app.name)
      apps[#apps + 1] = object{ id = app.id, name = app.name, state = app_state(emu, state, app.id) }
    end
    envs[env_id] = object{ count = #apps, names = names, applications = apps }
  end
  return object{ environments = envs }
end

return V
