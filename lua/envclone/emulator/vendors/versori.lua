--- Versori in the emulator: the platform API v2 (environment clone, seed page 000) and the
-- Connect API v1alpha1 (connection versions, seed page 003).
--
-- Sources: Versori's public docs repository (github.com/versori/user-docs):
-- `openapi/platform-api.yaml` (servers `https://platform.versori.com/api/v2`; schemas
-- Project, ProjectEnvironment, CloneEnvironmentRequest, Error) and
-- `openapi/connect-api-v1alpha1.yaml` (as of commit 2155eea^; servers
-- `https://platform.versori.com/api/connect/v1alpha1`; ConnectionVersion, Error).
-- @module envclone.emulator.vendors.versori

local json = require("envclone.emulator.json")
local util = require("envclone.emulator.util")

local object, array, NULL = json.object, json.array, json.null

local V = { name = "versori" }

-- The platform API and the Connect API have bases of their own (each spec's `servers`);
-- the platform API v2 has no connection-version path, so it answers 404 there.
V.bases = {
  versori = "/versori/api/v2",
  versori_connect = "/versori/api/connect/v1alpha1",
}

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

-- Emulator choice: the specs give `code` as "a machine-readable error code" without a list.
local CODES = {
  [400] = "invalid_request", [401] = "unauthorized", [404] = "not_found",
  [405] = "method_not_allowed", [409] = "conflict", [411] = "length_required",
  [413] = "payload_too_large", [429] = "rate_limited", [431] = "headers_too_large",
  [500] = "internal_error", [503] = "service_unavailable",
}

-- Error: {code, message} required, `fields` [{field, message}] and `details` optional
-- (platform-api.yaml, Error / ErrorField); the Connect API names the last one `cause`
-- (connect-api-v1alpha1.yaml, Error). Both always carry `fields` here, [] when none.
local function err(ctx, status, code, message, fields)
  local body = object{ code = code, message = message, fields = array(fields or {}) }
  if ctx and ctx.base == "versori_connect" then body.cause = "" else body.details = "" end
  return { status = status, json = body }
end

--- The generic error (404/405/429/503, parse errors...) in Versori's shape.
function V.error(ctx, status, message)
  return err(ctx, status, CODES[status] or "error", message)
end

-- A validation error naming its field (ErrorField).
local function invalid(ctx, field, message)
  return err(ctx, 400, "invalid_request", message,
    field and { object{ field = field, message = message } } or nil)
end

-- Emulator choice: the spec has `publicUrl: string` (required) with no format; this is a
-- made-up host under .invalid, one per environment.
local function public_url(project_id, name)
  return "https://" .. project_id:lower() .. "-" .. name:lower():gsub("[^%w]+", "-")
    .. ".versori.invalid"
end

-- ProjectEnvironment: required id, name, status ("One of running|suspended|error|draft"),
-- createdAt, updatedAt, publicUrl, lastDeployedAt, config (platform-api.yaml).
local function environment(project_id, id, name, pool, created, status, deployed)
  return object{
    id = id, name = name, status = status, createdAt = created, updatedAt = created,
    publicUrl = public_url(project_id, name), lastDeployedAt = deployed or NULL,
    config = object(), executionPool = pool, files = array(), labels = object(),
  }
end

function V.new_state()
  local vs = V.seed
  local pid = vs.project_id
  local project = object{
    id = pid,
    name = vs.project_name,
    environments = array{
      environment(pid, "01HZY8K2V6Q4N3M5T7W9X0PRDN", "production", vs.execution_pool, SEED_TIME,
        "running", SEED_TIME),
      environment(pid, "01HZY8K2V6Q4N3M5T7W9X0STGE", "staging", vs.execution_pool, SEED_TIME,
        "running", SEED_TIME),
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

-- Both APIs declare `security: [bearerToken, cookie]` (either one).
local function authorised(ctx)
  local req = ctx.req
  return req.headers["cookie"] == V.credentials.cookie or util.bearer(req) == V.credentials.token
end

local function unauthorised(ctx)
  return err(ctx, 401, "unauthorized", "missing or invalid bearer token or session cookie")
end

-- What both operations check first, in this order: the credentials, the organisation in the
-- path, the `noun` (a project or a connection: org[noun .. "s"], id in the path parameter
-- noun .. "_id"), and a JSON object as the body. Returns the item and the body, or nil, nil and
-- the error answer.
local function org_item(ctx, noun)
  local p = ctx.params
  if not authorised(ctx) then return nil, unauthorised(ctx) end
  local org = ctx.state.orgs[p.organisation_id]
  if not org then
    return nil, err(ctx, 404, "organisation_not_found", "organisation " .. p.organisation_id .. " not found")
  end
  local id = p[noun .. "_id"]
  local item = org[noun .. "s"][id]
  if not item then
    return nil, err(ctx, 404, noun .. "_not_found", noun .. " " .. id .. " not found")
  end
  return item
end

local function org_item_and_body(ctx, noun)
  local item, answer = org_item(ctx, noun)
  if not item then return nil, nil, answer end
  local body, derr = json.decode_object(ctx.req.body)
  if not body then return nil, nil, invalid(ctx, nil, derr) end
  return item, body
end

local function clone_environment(emu, ctx)
  local project, body, answer = org_item_and_body(ctx, "project")
  if answer then return answer end
  -- CloneEnvironmentRequest: oldEnvName and newEnvName required
  local field, msg = util.check_fields(body, {
    { "oldEnvName", "string", true }, { "newEnvName", "string", true },
    { "executionPool", "string" }, { "cloneSystems", "boolean" },
    { "copyStaticUserVariables", "boolean" },
  })
  if msg then return invalid(ctx, field, msg) end
  local source = util.find_by_name(project.environments, body.oldEnvName)
  if not source then
    return err(ctx, 404, "environment_not_found", "environment '" .. body.oldEnvName .. "' not found")
  end
  if util.find_by_name(project.environments, body.newEnvName) then
    return err(ctx, 409, "environment_exists", "environment '" .. body.newEnvName .. "' already exists")
  end
  if emu:capacity_reached() then
    return err(ctx, 503, "service_unavailable", "emulator capacity reached; reset it")
  end
  local now = emu.clock()
  -- "Optional override execution pool ... Defaults to the source environment's execution pool."
  local pool = body.executionPool
  if pool == nil or pool == NULL then pool = source.executionPool end
  -- Emulator choice: a clone is not deployed yet, so it starts as "draft" with no lastDeployedAt.
  local env = environment(project.id, util.new_ulid(now), body.newEnvName, pool, util.iso_time(now), "draft")
  table.insert(project.environments, env)
  project.updatedAt = util.iso_time(now)
  emu:applied(ctx.op, body.newEnvName, true)
  return { status = 200, json = project }
end

local function create_connection_version(emu, ctx)
  local conn, body, answer = org_item_and_body(ctx, "connection")
  if answer then return answer end
  -- ConnectionVersionCreate: name required, fromVersion optional
  local field, msg = util.check_fields(body, { { "name", "string", true }, { "fromVersion", "string" } })
  if msg then return invalid(ctx, field, msg) end
  -- "The names "default" and "latest" are reserved words and cannot be used."
  -- Emulator choice: matched exactly (lower case), as written.
  if body.name == "default" or body.name == "latest" then
    return err(ctx, 400, "reserved_name", "the version name '" .. body.name .. "' is reserved",
      { object{ field = "name", message = "reserved word" } })
  end
  if util.find_by_name(conn.versions, body.name) then
    return err(ctx, 409, "version_exists", "version '" .. body.name .. "' already exists")
  end
  local from = body.fromVersion
  if from ~= nil and from ~= NULL and not util.find_by_name(conn.versions, from) then
    return err(ctx, 404, "version_not_found", "version '" .. from .. "' not found")
  end
  if emu:capacity_reached() then
    return err(ctx, 503, "service_unavailable", "emulator capacity reached; reset it")
  end
  local now = util.iso_time(emu.clock())
  for _, v in ipairs(conn.versions) do v.isLatest = false end
  -- "The ConnectionVersion will be created as a draft (i.e. publishedAt will be `null`)."
  local version = object{
    id = util.new_ulid(emu.clock()), name = body.name, description = "",
    isLatest = true, isDefault = false, createdAt = now, updatedAt = now, publishedAt = NULL,
  }
  table.insert(conn.versions, version)
  emu:applied(ctx.op, body.name, true)
  return { status = 201, json = version }
end

-- GetProject (versori/cli@f592f0c8 versori-api.yaml:109-131): 200 the Project, 404 when absent.
local function get_project(_, ctx)
  local project, answer = org_item(ctx, "project")
  if not project then return answer end
  return { status = 200, json = project }
end

local function is_ulid(s)
  return #s == 26 and s:upper():find("^[0-9A-HJKMNP-TV-Z]+$") ~= nil
end

-- DeleteEnvironment (versori-api.yaml:271-295): "will unpublish and remove an environment from
-- the project"; a POST addressed by the environment's id (ULID), answering 200 with the Project.
-- GUESS (the spec documents only 200 and `default: Error`): an unknown id, a non-ULID one
-- included, is a 404 Error {code "environment_not_found", message}. No body is needed.
local function delete_environment(emu, ctx)
  local project, answer = org_item(ctx, "project")
  if not project then return answer end
  local id = ctx.params.environment_id
  for i, env in ipairs(project.environments) do
    if is_ulid(id) and env.id == id then
      table.remove(project.environments, i)
      project.updatedAt = util.iso_time(emu.clock())
      emu:applied(ctx.op, nil, false)
      return { status = 200, json = project }
    end
  end
  return err(ctx, 404, "environment_not_found", "environment " .. id .. " not found")
end

-- A version by name; "The names "default" and "latest" are reserved" and select the default
-- and the latest version (connect-api-v1alpha1.yaml:3624-3632).
local function find_version(conn, name)
  for i, v in ipairs(conn.versions) do
    if (name == "latest" and v.isLatest) or (name == "default" and v.isDefault) or v.name == name then
      return v, i
    end
  end
  return nil
end

local function version_not_found(ctx, name)
  return err(ctx, 404, "version_not_found", "version '" .. name .. "' not found")
end

-- GetConnectionVersion (user-docs@a3a98009 openapi/connect-api-v1alpha1.yaml:545-566).
local function get_connection_version(_, ctx)
  local conn, answer = org_item(ctx, "connection")
  if not conn then return answer end
  local v = find_version(conn, ctx.params.version)
  if not v then return version_not_found(ctx, ctx.params.version) end
  return { status = 200, json = v }
end

local function query_params(req)
  local q = {}
  for k, v in (req.query or ""):gmatch("([^&=]+)=?([^&]*)") do
    q[k] = v:gsub("%+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return q
end

-- Emulator choice: a cursor is "c" followed by the version's id (opaque to clients).
local function cursor_of(v) return "c" .. v.id end

local function index_of_cursor(conn, cursor)
  for i, v in ipairs(conn.versions) do
    if cursor_of(v) == cursor then return i end
  end
  return nil
end

-- ListConnectionVersions (connect-api-v1alpha1.yaml:518-543): query `first` (default 20),
-- `after`, `before`; answer {pageInfo {totalCount, next, prev}, items[]}, in creation order.
-- Emulator choices: `first` is 1..100 (400 otherwise); an unknown cursor is a 400;
-- `next`/`prev` are the cursors to pass as `after`/`before`, null at either end.
local function list_connection_versions(_, ctx)
  local conn, answer = org_item(ctx, "connection")
  if not conn then return answer end
  local q = query_params(ctx.req)
  local first = 20
  if q.first then
    first = tonumber(q.first)
    if not first or first ~= math.floor(first) or first < 1 or first > 100 then
      return invalid(ctx, "first", "first must be an integer from 1 to 100")
    end
  end
  local all = conn.versions
  local lo, hi = 1, #all          -- the window the cursors leave
  if q.after and q.after ~= "" then
    local i = index_of_cursor(conn, q.after)
    if not i then return invalid(ctx, "after", "unknown cursor") end
    lo = i + 1
  end
  if q.before and q.before ~= "" then
    local i = index_of_cursor(conn, q.before)
    if not i then return invalid(ctx, "before", "unknown cursor") end
    hi = i - 1
  end
  local from, to = lo, math.min(hi, lo + first - 1)
  if q.before and q.before ~= "" and not (q.after and q.after ~= "") then
    from = math.max(lo, hi - first + 1)   -- the page just before the cursor
    to = hi
  end
  local items = array()
  for i = from, to do items[#items + 1] = all[i] end
  return { status = 200, json = object{
    pageInfo = object{
      totalCount = #all,
      next = (to < #all and to >= from) and cursor_of(all[to]) or NULL,
      prev = (from > 1 and to >= from) and cursor_of(all[from]) or NULL,
    },
    items = items,
  } }
end

-- DeleteConnectionVersion (connect-api-v1alpha1.yaml:598-625): 204; `force` deletes a published
-- version ("only in exceptional circumstances"), otherwise it must be unpublished first.
-- GUESS (not documented): a published version without force=true is a 409 Error
-- {code "version_published"}; an absent version is a 404 (as the GET documents).
-- Emulator choice: the reserved names are refused here (400 "reserved_name"): a client must
-- address a delete by the version's own name.
local function delete_connection_version(emu, ctx)
  local conn, answer = org_item(ctx, "connection")
  if not conn then return answer end
  local name = ctx.params.version
  if name == "latest" or name == "default" then
    return err(ctx, 400, "reserved_name", "the version name '" .. name .. "' is reserved",
      { object{ field = "version", message = "reserved word" } })
  end
  local force = query_params(ctx.req).force
  if force ~= nil and force ~= "true" and force ~= "false" then
    return invalid(ctx, "force", "force must be true or false")
  end
  local v, i = find_version(conn, name)
  if not v then return version_not_found(ctx, name) end
  if v.publishedAt ~= NULL and force ~= "true" then
    return err(ctx, 409, "version_published",
      "version '" .. name .. "' is published: unpublish it first, or delete with force=true")
  end
  table.remove(conn.versions, i)
  if v.isLatest and conn.versions[#conn.versions] then conn.versions[#conn.versions].isLatest = true end
  emu:applied(ctx.op, nil, false)
  return { status = 204 }
end

-- Path templates relative to the base; ":name" segments are parameters. The clone route's
-- literal `clone` wins over `:environment_id` (the core prefers literal segments).
V.routes = {
  { "POST", "o/:organisation_id/projects/:project_id/environments/clone", "clone_environment", clone_environment },
  { "GET", "o/:organisation_id/projects/:project_id", "get_project", get_project },
  { "POST", "o/:organisation_id/projects/:project_id/environments/:environment_id", "delete_environment",
    delete_environment },
  { "POST", "o/:organisation_id/connections/:connection_id/versions", "create_connection_version",
    create_connection_version, base = "versori_connect" },
  { "GET", "o/:organisation_id/connections/:connection_id/versions", "list_connection_versions",
    list_connection_versions, base = "versori_connect" },
  { "GET", "o/:organisation_id/connections/:connection_id/versions/:version", "get_connection_version",
    get_connection_version, base = "versori_connect" },
  { "DELETE", "o/:organisation_id/connections/:connection_id/versions/:version", "delete_connection_version",
    delete_connection_version, base = "versori_connect" },
}

--- Objects for counting (`GET /_emulator/objects`): per project, environment names -> count;
-- per connection, version names -> count.
function V.objects_view(_, state)
  local projects, connections = object(), object()
  for _, org in pairs(state.orgs) do
    for pid, p in pairs(org.projects) do
      local names = object()
      for _, env in ipairs(p.environments) do util.increment(names, env.name) end
      projects[pid] = object{ count = #p.environments, names = names }
    end
    for cid, c in pairs(org.connections) do
      local names = object()
      for _, v in ipairs(c.versions) do util.increment(names, v.name) end
      connections[cid] = object{ count = #c.versions, names = names }
    end
  end
  return object{ projects = projects, connections = connections }
end

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
