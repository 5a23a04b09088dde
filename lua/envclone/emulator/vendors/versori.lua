--- Versori in the emulator: platform API v2 (environment clone) and
-- connection versions. Seed pages 000 and 003.
-- @module envclone.emulator.vendors.versori

local json = require("envclone.emulator.json")
local util = require("envclone.emulator.util")

local object, array, NULL = json.object, json.array, json.null

local V = { name = "versori" }

V.bases = { versori = "/versori/api/v2" }

V.credentials = { token = "emu-versori-token", cookie = "session=emu-versori-cookie" }

V.seed = {
  organisation_id = "01HZY8K2V6Q4N3M5T7W9X0ABCD",
  project_id = "01HZY8K2V6Q4N3M5T7W9X0EFGH",
  project_name = "Demo project",
  environments = { "production", "staging" },
  execution_pool = "default",
  connection_id = "01HZY8K2V6Q4N3M5T7W9X0JKMN",
  version = "v1",
}

local SEED_TIME = "2024-01-15T09:30:00Z"

local CODES = {
  [400] = "invalid_request", [401] = "unauthorized", [404] = "not_found",
  [405] = "method_not_allowed", [409] = "conflict", [411] = "length_required",
  [413] = "payload_too_large", [429] = "rate_limited", [431] = "headers_too_large",
  [500] = "internal_error", [503] = "service_unavailable",
}

local function err(status, code, message)
  return { status = status, json = object{ code = code, message = message } }
end

--- The generic error (404/405/429/503, parse errors...) in Versori's shape.
function V.error(_, status, message)
  return err(status, CODES[status] or "error", message)
end

local function environment(id, name, pool, created)
  return object{
    id = id, name = name, status = "active", createdAt = created, updatedAt = created,
    executionPool = pool, files = array(), labels = object(),
  }
end

function V.new_state()
  local vs = V.seed
  local project = object{
    id = vs.project_id,
    name = vs.project_name,
    environments = array{
      environment("01HZY8K2V6Q4N3M5T7W9X0PRDN", "production", vs.execution_pool, SEED_TIME),
      environment("01HZY8K2V6Q4N3M5T7W9X0STGE", "staging", vs.execution_pool, SEED_TIME),
    },
    currentFiles = object{ files = array(), labels = object() },
    createdAt = SEED_TIME,
    updatedAt = SEED_TIME,
    settings = object{
      acceptCodeChangesAutomatically = false, testingMockWithAI = false,
      planningChatVersion = "v1", chatStoredInDB = true,
    },
    metadata = object{ sentimentHistory = array() },
    dynamicVariablesSchema = object(),
  }
  local connection = {
    id = vs.connection_id,
    versions = {
      object{ id = "01HZY8K2V6Q4N3M5T7W9X0V1AA", name = vs.version, description = "",
        isLatest = true, isDefault = true, createdAt = SEED_TIME, updatedAt = SEED_TIME,
        publishedAt = SEED_TIME },
    },
  }
  return { orgs = { [vs.organisation_id] = {
    projects = { [vs.project_id] = project },
    connections = { [vs.connection_id] = connection },
  } } }
end

local function clone_environment(emu, ctx)
  local req, p = ctx.req, ctx.params
  if util.bearer(req) ~= V.credentials.token then
    return err(401, "unauthorized", "missing or invalid bearer token")
  end
  local org = ctx.state.orgs[p.organisation_id]
  if not org then
    return err(404, "organisation_not_found", "organisation " .. p.organisation_id .. " not found")
  end
  local project = org.projects[p.project_id]
  if not project then
    return err(404, "project_not_found", "project " .. p.project_id .. " not found")
  end
  local body, derr = json.decode_object(req.body)
  if not body then return err(400, "invalid_request", derr) end
  local _, msg = util.check_fields(body, {
    { "oldEnvName", "string", true }, { "newEnvName", "string", true },
    { "executionPool", "string" }, { "cloneSystems", "boolean" },
    { "copyStaticUserVariables", "boolean" },
  })
  if msg then return err(400, "invalid_request", msg) end
  local source = util.find_by_name(project.environments, body.oldEnvName)
  if not source then
    return err(404, "environment_not_found", "environment '" .. body.oldEnvName .. "' not found")
  end
  if util.find_by_name(project.environments, body.newEnvName) then
    return err(409, "environment_exists", "environment '" .. body.newEnvName .. "' already exists")
  end
  if emu:capacity_reached() then
    return err(503, "service_unavailable", "emulator capacity reached; reset it")
  end
  local now = emu.clock()
  local pool = body.executionPool
  if pool == nil or pool == NULL then pool = source.executionPool end
  local env = environment(util.new_ulid(now), body.newEnvName, pool, util.iso_time(now))
  table.insert(project.environments, env)
  project.updatedAt = util.iso_time(now)
  emu:applied(ctx.op, body.newEnvName, true)
  return { status = 200, json = project }
end

local function create_connection_version(emu, ctx)
  local req, p = ctx.req, ctx.params
  if req.headers["cookie"] ~= V.credentials.cookie then
    return err(401, "unauthorized", "missing or invalid session cookie")
  end
  local org = ctx.state.orgs[p.organisation_id]
  if not org then
    return err(404, "organisation_not_found", "organisation " .. p.organisation_id .. " not found")
  end
  local conn = org.connections[p.connection_id]
  if not conn then
    return err(404, "connection_not_found", "connection " .. p.connection_id .. " not found")
  end
  local body, derr = json.decode_object(req.body)
  if not body then return err(400, "invalid_request", derr) end
  local _, msg = util.check_fields(body, { { "name", "string", true }, { "fromVersion", "string" } })
  if msg then return err(400, "invalid_request", msg) end
  -- Emulator choice: the reserved words are matched exactly (lower case), as written on the page.
  if body.name == "default" or body.name == "latest" then
    return err(400, "reserved_name", "the version name '" .. body.name .. "' is reserved")
  end
  if util.find_by_name(conn.versions, body.name) then
    return err(409, "version_exists", "version '" .. body.name .. "' already exists")
  end
  local from = body.fromVersion
  if from ~= nil and from ~= NULL and not util.find_by_name(conn.versions, from) then
    return err(404, "version_not_found", "version '" .. from .. "' not found")
  end
  if emu:capacity_reached() then
    return err(503, "service_unavailable", "emulator capacity reached; reset it")
  end
  local now = util.iso_time(emu.clock())
  for _, v in ipairs(conn.versions) do v.isLatest = false end
  local version = object{
    id = util.new_ulid(emu.clock()), name = body.name, description = "",
    isLatest = true, isDefault = false, createdAt = now, updatedAt = now, publishedAt = NULL,
  }
  table.insert(conn.versions, version)
  emu:applied(ctx.op, body.name, true)
  return { status = 201, json = version }
end

-- Path templates relative to the base; ":name" segments are parameters.
V.routes = {
  { "POST", "o/:organisation_id/projects/:project_id/environments/clone", "clone_environment", clone_environment },
  { "POST", "o/:organisation_id/connections/:connection_id/versions", "create_connection_version",
    create_connection_version },
}

--- The vendor's state for `GET /_emulator/state`.
function V.state_view(_, state)
  local orgs = object()
  for id, org in pairs(state.orgs) do
    local conns = object()
    for cid, c in pairs(org.connections) do conns[cid] = object{ id = c.id, versions = array(c.versions) } end
    local projects = object()
    for pid, p in pairs(org.projects) do projects[pid] = p end
    orgs[id] = object{ projects = projects, connections = conns }
  end
  return object{ organisations = orgs }
end

return V
