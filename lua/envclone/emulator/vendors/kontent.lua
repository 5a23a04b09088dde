--- Kontent.ai in the emulator: Management API v2 environment operations.
-- Seed page 002.
-- @module envclone.emulator.vendors.kontent

local json = require("envclone.emulator.json")
local util = require("envclone.emulator.util")

local object, NULL = json.object, json.null

local V = { name = "kontent" }

V.bases = { kontent = "/kontent/v2" }

-- `subscription_api_key`: the Subscription API's own key (Bearer; Enterprise or Flex plans,
-- https://kontent.ai/learn/docs/apis/openapi/subscription-api), scoped to `seed.subscription_id`;
-- the Management API refuses it, and the Subscription API refuses `api_key`.
V.credentials = { api_key = "emu-kontent-key", subscription_api_key = "emu-kontent-subscription-key" }

V.seed = {
  environment_id = "8d20758c-d74c-4f59-ae04-ee928c0816b7",
  project_name = "Sample project",
  environment_name = "Production",
  role_id = "ee483b59-5a24-4010-b277-ae224c34bc71",
  -- a valid key without the permission: answered 403 (Kontent's errors page: "403 Forbidden:
  -- The provided API key is valid but doesn't provide permission for the specified resource")
  api_key_without_permission = "emu-kontent-key-without-permission",
  -- The subscription the Subscription API key (`credentials.subscription_api_key`) is scoped to.
  subscription_id = "0f6b2c1e-7a4d-4e8b-9c3f-5d2a1b8e6c40",
  -- Projects of the subscription (Emulator choice: ids of their own, distinct from any
  -- environment's id); the first holds the seed environment above, each other one a
  -- production environment. More than a page of them (kontent_subscription_page_size).
  projects = {
    { id = "4b5e0a8c-1f2d-4c3b-8a9e-6d7f0b1c2d3e", name = "Sample project",
      environment_id = "8d20758c-d74c-4f59-ae04-ee928c0816b7" },
    { id = "5c6f1b9d-2e3a-4d4c-9b0f-7e8a1c2d3e4f", name = "Second project",
      environment_id = "9e31869d-e85d-4a6a-bf15-ff039d1927c8" },
    { id = "6d7a2c0e-3f4b-4e5d-8c1a-8f9b2d3e4f50", name = "Third project",
      environment_id = "af42970e-f96e-4b7b-8026-00140e2a38d9" },
  },
}

-- Management API rate limits, per environment, in sliding windows: "10 requests per second,
-- 400 requests per minute ... The scope of API rate limits is per environment. Requests made
-- with multiple API keys to a single environment count against a single rate limit."
-- (https://kontent.ai/learn/docs/apis/management-api-v2/api-limitations)
local LIMITS = { { window = 1, max = 10 }, { window = 60, max = 400 } }
local LONGEST_WINDOW = 60
local MAX_LIMITED_KEYS = 10000   -- environments tracked at once before stale ones are swept

--- Settings of this vendor (control API `PUT /_emulator/config` and `--kontent-...` flags).
V.config = {
  { key = "kontent_clone_seconds", default = 2, kind = "number", arg = "S",
    help = "seconds a clone stays in_progress (< 0: never)",
    check = function(v)
      if type(v) ~= "number" or v ~= v or v > 86400 then
        return nil, "kontent_clone_seconds must be a number (< 0: never finishes)"
      end
      return v
    end },
  -- "canceled" is no state Kontent documents: a test of how a client meets one
  { key = "kontent_clone_outcome", default = "done", kind = "string", arg = "done|failed|canceled",
    help = "how a clone ends (canceled: a state Kontent does not document)",
    check = function(v)
      if v ~= "done" and v ~= "failed" and v ~= "canceled" then
        return nil, "kontent_clone_outcome must be \"done\", \"failed\" or \"canceled\""
      end
      return v
    end },
  { key = "kontent_subscription_page_size", default = 2, kind = "number", arg = "N",
    help = "projects per page of the Subscription API (small, so paging is exercised)",
    check = function(v)
      if type(v) ~= "number" or v ~= math.floor(v) or v < 1 or v > 100 then
        return nil, "kontent_subscription_page_size must be an integer from 1 to 100"
      end
      return math.tointeger(v)
    end },
  -- GUESS: what Kontent does with a delete while the clone is in_progress is not documented;
  -- on, it is refused (409, error_code 409). Off by default, as before: clients delete fresh
  -- clones at once in the existing tests.
  { key = "kontent_refuse_delete_while_cloning", default = false, kind = "boolean", arg = "on|off",
    help = "refuse (409) deleting an environment whose clone is in_progress (GUESS)",
    check = function(v)
      if type(v) ~= "boolean" then return nil, "kontent_refuse_delete_while_cloning must be true or false" end
      return v
    end },
  { key = "kontent_rate_limit", default = true, kind = "boolean", arg = "on|off",
    help = "10 req/s and 400 req/min per environment, else 429",
    check = function(v)
      if type(v) ~= "boolean" then return nil, "kontent_rate_limit must be true or false" end
      return v
    end },
}

-- Error object {request_id, error_code, message[, validation_errors]}: Kontent's errors page
-- (https://kontent.ai/learn/docs/apis/management-api-v2/errors, "Error object"); 232 and 233
-- are the seed page's examples; 10000 is the rate-limit code (api-limitations page).
-- Emulator choice (no page gives these numbers): 5 for validation, 7 for a missing or wrong
-- key, 100 for an unknown environment; any other status uses the HTTP status as error_code.
local CODES = { [400] = 5, [401] = 7, [404] = 100, [429] = 10000 }
local RATE_LIMIT_MESSAGE = "API rate limit exceeded. Please retry your request later."

local function err(ctx, status, code, message)
  return { status = status, json = object{
    request_id = ctx.request_id, error_code = code, message = message } }
end

-- A request body the API refuses: error_code 5 with `validation_errors` (the error object's
-- list of what is wrong; Emulator choice: each entry is {message, path}, path "" for the body).
local function invalid(ctx, path, message)
  local resp = err(ctx, 400, 5, "The provided request body is invalid. See 'validation_errors' for more information.")
  resp.json.validation_errors = json.array{ object{ message = message, path = path or "" } }
  return resp
end

--- The generic error in Kontent's shape (a 429 always carries the documented body).
function V.error(ctx, status, message)
  ctx = ctx or {}
  ctx.request_id = ctx.request_id or util.new_hex(16)
  if status == 429 then message = RATE_LIMIT_MESSAGE end
  return err(ctx, status, CODES[status] or status, message)
end

--- Requests are limited and counted per environment.
function V.limit_key(ctx)
  return ctx.params and ctx.params.environment_id
end

-- Drops the timestamps that left the longest window; nil when none is left.
local function prune(times, now)
  local first = 1
  while times[first] and times[first] <= now - LONGEST_WINDOW do first = first + 1 end
  if first > 1 then times = table.move(times, first, #times, 1, {}) end
  return times[1] and times or nil
end

--- The rate limit: admits the request (recording it) or answers 429 with Retry-After, the
-- whole seconds until the oldest request of the full window leaves it. Only admitted
-- requests count (Emulator choice: the pages do not say whether refused ones do).
function V.admit(emu, ctx, key)
  if not key or not emu.config.kontent_rate_limit then return nil end
  local windows, now = ctx.state.windows, emu.clock()
  if windows.count > MAX_LIMITED_KEYS then
    windows.count = 0
    for k, times in pairs(windows.by_key) do
      windows.by_key[k] = prune(times, now)
      if windows.by_key[k] then windows.count = windows.count + 1 end
    end
  end
  local times = windows.by_key[key] and prune(windows.by_key[key], now) or {}
  local wait = 0
  for _, limit in ipairs(LIMITS) do
    local n, in_window = #times, 0
    for i = n, 1, -1 do
      if times[i] <= now - limit.window then break end
      in_window = in_window + 1
    end
    if in_window >= limit.max then
      wait = math.max(wait, times[n - limit.max + 1] + limit.window - now)
    end
  end
  if wait > 0 then
    windows.by_key[key] = times[1] and times or nil
    local resp = V.error(ctx, 429)
    resp.headers = { ["Retry-After"] = tostring(math.max(1, math.ceil(wait))) }
    return resp
  end
  if not windows.by_key[key] then windows.count = windows.count + 1 end
  times[#times + 1] = now
  windows.by_key[key] = times
  return nil
end

--- Every Kontent answer carries a request id, in the body of errors and in X-Request-Id.
function V.begin(ctx)
  ctx.request_id = util.new_hex(16)
end

function V.finish(ctx, resp)
  if ctx.request_id then
    resp.headers = resp.headers or {}
    resp.headers["X-Request-Id"] = ctx.request_id
  end
end

function V.new_state()
  local ks = V.seed
  local state = {
    environments = {},
    projects = {},     -- in the subscription's order: {id, name, is_active}
    seq = 0,           -- creation order of the environments (the list's order)
    windows = { by_key = {}, count = 0 },  -- rate-limit timestamps per environment
  }
  for _, p in ipairs(ks.projects) do
    state.projects[#state.projects + 1] = { id = p.id, name = p.name, is_active = true }
    state.seq = state.seq + 1
    state.environments[p.environment_id] = {
      id = p.environment_id, project = p.name, project_id = p.id, name = ks.environment_name,
      is_production = true, seq = state.seq,
    }
  end
  return state
end

-- Cloning state of an environment. Emulator choice: evaluated when read, with
-- the config in force at that moment; once `done`/`failed` has been seen it stays.
local function cloning_state(emu, env)
  local c = env.cloning
  if not c then return "done" end
  if c.final then return c.final end
  local secs = emu.config.kontent_clone_seconds
  if secs < 0 or emu.clock() - c.started < secs then return "in_progress" end
  c.final = emu.config.kontent_clone_outcome
  return c.final
end

local function view(env)
  return object{ id = env.id, name = env.project, environment = env.name, is_production = env.is_production }
end

-- Auth + environment lookup shared by all Kontent operations.
local function find_env(ctx)
  local key = util.bearer(ctx.req)
  if key == V.seed.api_key_without_permission then
    return nil, err(ctx, 403, 403,
      "The provided API key doesn't provide permission for the specified resource.")
  end
  if key ~= V.credentials.api_key then
    return nil, err(ctx, 401, 7,
      "Missing or invalid API key. Please include a valid Management API key in the Authorization header.")
  end
  local env = ctx.state.environments[ctx.params.environment_id]
  if not env then
    return nil, err(ctx, 404, 100,
      "The environment " .. ctx.params.environment_id .. " does not exist.")
  end
  return env
end

local function clone_environment(emu, ctx)
  local source, failure = find_env(ctx)
  if not source then return failure end
  local body, members = json.decode_object(ctx.req.body)
  if not body then return invalid(ctx, nil, members) end
  local field, msg = util.check_fields(body, { { "name", "string", true } })
  if field then return invalid(ctx, field, msg) end
  local len = util.count_chars(body.name)
  if not len or len < 1 or len > 200 then
    return invalid(ctx, "name", "The name must be 1 to 200 characters long.")
  end
  local roles = body.roles_to_activate
  if roles ~= nil and roles ~= NULL then
    if json.kind(members.roles_to_activate) ~= "array" then
      return invalid(ctx, "roles_to_activate", "roles_to_activate must be an array of role IDs.")
    end
    for _, r in ipairs(roles) do
      if type(r) ~= "string" then
        return invalid(ctx, "roles_to_activate", "roles_to_activate must contain role IDs (strings).")
      end
    end
  end
  local opts = body.copy_data_options
  if opts ~= nil and opts ~= NULL then
    if json.kind(members.copy_data_options) ~= "object" then
      return invalid(ctx, "copy_data_options", "copy_data_options must be an object.")
    end
    for _, k in ipairs{ "content_items_assets", "content_item_version_history" } do
      if opts[k] ~= nil and opts[k] ~= NULL and type(opts[k]) ~= "boolean" then
        return invalid(ctx, "copy_data_options." .. k, "copy_data_options." .. k .. " must be a boolean.")
      end
    end
  end
  if emu:capacity_reached() then
    return err(ctx, 503, 503, "Emulator capacity reached; reset it.")
  end
  -- A clone lands in its source's project. Names are not unique (not documented either way:
  -- GUESS that Kontent does not enforce it), so a second clone with one name succeeds.
  ctx.state.seq = ctx.state.seq + 1
  local env = {
    id = util.new_uuid(), project = source.project, project_id = source.project_id, name = body.name,
    is_production = false, cloning = { started = emu.clock() }, seq = ctx.state.seq,
  }
  ctx.state.environments[env.id] = env
  emu:applied(ctx.op, body.name, true)
  return { status = 200, json = object{
    id = env.id,
    management_api_key = util.bearer(ctx.req),
    secured_delivery_api_key = NULL,
    delivery_preview_api_key = NULL,
  } }
end

local function get_cloning_state(emu, ctx)
  local env, failure = find_env(ctx)
  if not env then return failure end
  return { status = 200, json = object{ cloning_state = cloning_state(emu, env) } }
end

local function get_environment(_, ctx)
  local env, failure = find_env(ctx)
  if not env then return failure end
  return { status = 200, json = view(env) }
end

local function mark_environment_as_production(emu, ctx)
  local env, failure = find_env(ctx)
  if not env then return failure end
  local raw = ctx.req.body
  if raw and raw:find("%S") then
    local body, derr = json.decode_object(raw)
    if not body then return invalid(ctx, nil, derr) end
    local field, msg = util.check_fields(body, { { "enable_webhooks", "boolean" } })
    if msg then return invalid(ctx, field, msg) end
  end
  if env.is_production then
    return err(ctx, 400, 232, "The environment " .. env.id .. " is already marked as production.")
  end
  for _, other in pairs(ctx.state.environments) do
    if other.project_id == env.project_id then other.is_production = false end
  end
  env.is_production = true
  emu:applied(ctx.op, nil, false)
  return { status = 204 }
end

local function rename_environment(emu, ctx)
  local env, failure = find_env(ctx)
  if not env then return failure end
  local raw = ctx.req.body or ""
  local ops, derr = json.decode(raw)
  if ops == nil then
    return invalid(ctx, nil, "The request body is not valid JSON: " .. tostring(derr))
  end
  if json.kind(raw) ~= "array" or #ops < 1 then
    return invalid(ctx, nil, "The request body must be an array with at least one operation.")
  end
  local name
  for i, op in ipairs(ops) do
    if type(op) ~= "table" or op.op ~= "rename_environment" then
      return invalid(ctx, "[" .. (i - 1) .. "].op", "The only allowed op is rename_environment.")
    end
    local len = type(op.value) == "string" and util.count_chars(op.value)
    if not len or len < 1 or len > 200 then
      return invalid(ctx, "[" .. (i - 1) .. "].value", "The value must be a string of 1 to 200 characters.")
    end
    name = op.value
  end
  env.name = name
  emu:applied(ctx.op, nil, false)
  return { status = 200, json = view(env) }
end

local function delete_environment(emu, ctx)
  local env, failure = find_env(ctx)
  if not env then return failure end
  if env.is_production then
    return err(ctx, 400, 233, "The production environment can\u{2019}t be deleted.")
  end
  if emu.config.kontent_refuse_delete_while_cloning and cloning_state(emu, env) == "in_progress" then
    -- GUESS (see the setting): refused until the clone is done or failed
    return err(ctx, 409, 409, "The environment " .. env.id .. " is still being cloned; "
      .. "wait until its cloning state is done or failed.")
  end
  ctx.state.environments[env.id] = nil
  emu:applied(ctx.op, nil, false)
  return { status = 204 }
end

-- Environments of a project, in creation order, as the Subscription API lists them.
local function project_environments(state, project_id)
  local list = {}
  for _, env in pairs(state.environments) do
    if env.project_id == project_id then list[#list + 1] = env end
  end
  table.sort(list, function(a, b) return a.seq < b.seq end)
  return list
end

-- Emulator choice: the continuation token is opaque to clients; here "ct" and the offset.
local function continuation_token(offset) return "ct" .. offset end

local SUBSCRIPTION_API_KEY = V.credentials.subscription_api_key

-- Subscription API `GET /v2/subscriptions/{subscription_id}/projects`
-- (https://kontent.ai/learn/docs/apis/openapi/subscription-api;
-- kontent-ai/management-sdk-js@2008c8c1 lib/contracts/subscription-contracts.ts:4-19):
-- Bearer Subscription API key; paged by the `x-continuation` request header; answers
-- {projects: [{id, name, is_active, environments: [{id, name}]}], pagination:
-- {continuation_token, next_page}}. Emulator choices: `kontent_subscription_page_size`
-- projects per page; on the last page continuation_token and next_page are null, otherwise
-- next_page is this path; an unknown token is a 400; an unknown subscription a 404; the
-- Management API key is not accepted here (401).
local function list_subscription_projects(emu, ctx)
  local ks = V.seed
  if util.bearer(ctx.req) ~= SUBSCRIPTION_API_KEY then
    return err(ctx, 401, 7,
      "Missing or invalid API key. Please include a valid Subscription API key in the Authorization header.")
  end
  if ctx.params.subscription_id ~= ks.subscription_id then
    return err(ctx, 404, 100, "The subscription " .. ctx.params.subscription_id .. " does not exist.")
  end
  local offset = 0
  local token = ctx.req.headers["x-continuation"]
  if token and token ~= "" then
    offset = tonumber(token:match("^ct(%d+)$") or "")
    if not offset or offset > #ctx.state.projects then
      return err(ctx, 400, 5, "The continuation token is invalid.")
    end
  end
  local size = emu.config.kontent_subscription_page_size
  local projects = json.array()
  for i = offset + 1, math.min(#ctx.state.projects, offset + size) do
    local p = ctx.state.projects[i]
    local envs = json.array()
    for _, env in ipairs(project_environments(ctx.state, p.id)) do
      envs[#envs + 1] = object{ id = env.id, name = env.name }
    end
    projects[#projects + 1] = object{ id = p.id, name = p.name, is_active = p.is_active, environments = envs }
  end
  local more = offset + size < #ctx.state.projects
  return { status = 200, json = object{
    projects = projects,
    pagination = object{
      continuation_token = more and continuation_token(offset + size) or NULL,
      next_page = more and ctx.req.path or NULL,
    },
  } }
end

V.routes = {
  { "GET", "subscriptions/:subscription_id/projects", "list_subscription_projects", list_subscription_projects },
  { "POST", "projects/:environment_id/clone-environment", "clone_environment", clone_environment },
  { "GET", "projects/:environment_id/environment-cloning-state", "get_cloning_state", get_cloning_state },
  { "GET", "projects/:environment_id", "get_environment", get_environment },
  { "PUT", "projects/:environment_id/mark-environment-as-production", "mark_environment_as_production",
    mark_environment_as_production },
  { "PATCH", "projects/:environment_id", "rename_environment", rename_environment },
  { "DELETE", "projects/:environment_id", "delete_environment", delete_environment },
}

function V.state_view(emu, state)
  local envs = object()
  for id, env in pairs(state.environments) do
    local v = view(env)
    v.cloning_state = cloning_state(emu, env)
    envs[id] = v
  end
  return object{ environments = envs }
end

--- Objects for counting (`GET /_emulator/objects`): per project, environment names -> the
-- ids holding that name (names are not unique), and the count.
function V.objects_view(_, state)
  local projects = object()
  for _, p in ipairs(state.projects) do
    local names, n = object(), 0
    for _, env in ipairs(project_environments(state, p.id)) do
      names[env.name] = names[env.name] or json.array()
      table.insert(names[env.name], env.id)
      n = n + 1
    end
    projects[p.id] = object{ name = p.name, count = n, names = names }
  end
  return object{ projects = projects }
end

return V
