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
  }
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

V.routes = {
  { "POST", "application/:applicationId/clone", "clone_application", clone_application },
}

function V.state_view(_, state)
  local apps = object()
  for id, app in pairs(state.applications) do apps[id] = app end
  return object{ applications = apps }
end

return V
