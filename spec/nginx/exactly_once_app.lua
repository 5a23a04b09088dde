--- The handlers of spec/nginx/exactly_once_test.lua: the exactly-once
-- creates (lookup by key, adopt) and the teardown of issue 19, inside
-- nginx over cosockets, in one envclone.batch per request.
-- @module spec.nginx.exactly_once_app
local cjson = require("cjson.safe")
local envclone = require("envclone")
local conf = require("envclone_exactly_once_conf") -- written by the test
local creates = require("spec.support.creates")

local M = {}

local function client(vendor, extra)
  local opts = { base_url = conf.base_urls[vendor], timeout = 5, transport = "cosocket", reconcile = { grace = 1 } }
  for k, v in pairs(conf.credentials[vendor]) do opts[k] = v end
  if vendor == "versori" then opts.connect_base_url = conf.base_urls.versori_connect end
  for k, v in pairs(extra or {}) do opts[k] = v end
  return envclone[vendor](opts)
end

local function mixed(c, i, tag) return creates.mixed(c, i, tag, conf.seed) end

local function clients()
  return { versori = client("versori"), qovery = client("qovery"), droplit = client("droplit") }
end

--- GET /create?n=N&tag=T[&adopt=1]: N creates in one batch; answers the counts.
function M.create()
  local args = ngx.req.get_uri_args()
  local n, tag = tonumber(args.n), args.tag
  local c = clients()
  local b = envclone.batch{ max_in_flight = 16 }
  for i = 1, n do
    local cl, op, a = mixed(c, i, tag)
    if args.adopt then a.if_exists = "adopt" end
    b:add(cl, op, a)
  end
  local results = b:run()
  local out = { ok = 0, reconciled = 0, adopted = 0, maybe_applied = 0, errors = {} }
  for i = 1, n do
    local r = results[i]
    if r.ok then
      out.ok = out.ok + 1
      if r.value.reconciled then out.reconciled = out.reconciled + 1 end
      if r.value.adopted then out.adopted = out.adopted + 1 end
    else
      if r.err.maybe_applied then out.maybe_applied = out.maybe_applied + 1 end
      out.errors[#out.errors + 1] = tostring(r.err)
    end
  end
  ngx.say(cjson.encode(out))
end

--- GET /teardown?n=N&tag=T: deletes what /create made, Qovery's waited
-- for; answers how many were deleted and how many were already gone.
function M.teardown()
  local args = ngx.req.get_uri_args()
  local n, tag = tonumber(args.n), args.tag
  local c = clients()
  local s = conf.seed
  -- the Versori environments and Qovery applications by name, to delete by id
  local project = assert(c.versori:get_project{ organisation_id = s.versori.organisation_id,
    project_id = s.versori.project_id })
  local env_ids = {}
  for _, env in ipairs(project.environments) do env_ids[env.name] = env.id end
  local apps = assert(c.qovery:list_applications{ environmentId = s.qovery.environment_id })
  local app_ids = {}
  for _, app in ipairs(apps.results) do app_ids[app.name] = app.id end
  local b = envclone.batch{ max_in_flight = 16 }
  for i = 1, n do
    local _, op, a = mixed(c, i, tag)
    if op == "clone_environment" then
      b:add(c.versori, "delete_environment", { organisation_id = a.organisation_id, project_id = a.project_id,
        environment_id = env_ids[a.newEnvName] or "01HZY8K2V6Q4N3M5T7W9X0ZZZZ" })
    elseif op == "create_connection_version" then
      b:add(c.versori, "delete_connection_version", { organisation_id = a.organisation_id,
        connection_id = a.connection_id, version = a.name })
    elseif op == "clone_application" then
      b:add(c.qovery, "delete_application", { applicationId = app_ids[a.name] or "00000000-0000-4000-8000-000000000000",
        wait = true, wait_interval = 0.05 })
    else
      b:add(c.droplit, "delete_environment", { ecosystemId = a.ecosystemId, alias = a.alias })
    end
  end
  local results = b:run()
  local out = { deleted = 0, already_gone = 0, deleted_state = 0, errors = {} }
  for i = 1, n do
    local r = results[i]
    if r.ok then
      out.deleted = out.deleted + 1
      if r.value.already_gone then out.already_gone = out.already_gone + 1 end
      if r.value.state and r.value.state.state == "DELETED" then out.deleted_state = out.deleted_state + 1 end
    else
      out.errors[#out.errors + 1] = tostring(r.err)
    end
  end
  ngx.say(cjson.encode(out))
end

-- a handler's error with its traceback in the error log
for name, fn in pairs(M) do
  M[name] = function()
    local ok, err = xpcall(fn, debug.traceback)
    if not ok then error(err, 0) end
  end
end

return M
