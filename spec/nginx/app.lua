--- The request handlers of the nginx integration test (spec/nginx/run.lua
-- writes the nginx.conf that loads them). Runs inside nginx under LuaJIT.
--
--   /droplit/create?alias=A[&transport=T][&bad=1][&retry=1][&early=1]  Droplit create_environment
--   /kontent/clone?name=N[&wait=1]                 Kontent clone_environment (+ waiter)
--   /compare?case=C                                the same call through libcurl and cosockets
--   /chunked[?pad=N][&max=N][&tls=1][&ca_file=1]    a call to the fake vendor below
--   /fake/...                                      a fake vendor answering with chunked bodies
--   /stats                                         envclone.cosocket counters of this worker
--   /h1?item=NAME                                  a case or fault of spec/support/http1_cases.lua,
--                                                  against the hostile server, through both transports
--   /batch?case=C[&max=N]                          a batch (mixed, limits, tasks) inside the handler
--   /batch_raising                                 a batch whose on_progress raises
-- @module spec.nginx.app
local cjson = require("cjson.safe")
local envclone = require("envclone")
local cosocket = require("envclone.cosocket")
local conf = require("envclone_test_conf") -- written by spec/nginx/run.lua
local h1cases = require("spec.support.http1_cases")

local M = {}

-- Clients live per worker and are reused by every request (connection reuse).
local clients = {}

local function client(vendor, extra)
  local key = vendor .. (extra and cjson.encode(extra) or "")
  if clients[key] then return clients[key] end
  local opts = { base_url = conf.base_urls[vendor], timeout = 5, retry = false }
  for k, v in pairs(conf.credentials[vendor]) do opts[k] = v end
  for k, v in pairs(extra or {}) do opts[k] = v end
  clients[key] = envclone[vendor](opts)
  return clients[key]
end

-- A plain table copy of an error object (cjson ignores metatables).
local function plain(err)
  if type(err) ~= "table" then return err end
  local t = {}
  for k, v in pairs(err) do t[k] = v end
  t.text = tostring(err)
  return t
end

local function reply(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(value))
end

local function result_or_error(res, err)
  if res ~= nil then return reply(200, { ok = true, result = res }) end
  return reply(err.kind == "validation" and 400 or 502, { ok = false, err = plain(err) })
end

local function droplit_create(args)
  local d = client("droplit", { transport = args.transport,
    retry = args.retry and { max_attempts = 3, base_delay = 0.01 } or false })
  if args.early then d = M.early end
  local ecosystem = args.bad and "" or conf.seed.droplit.ecosystem_id
  return result_or_error(d:create_environment{ ecosystemId = ecosystem, alias = args.alias })
end

local function kontent_clone(args)
  local k = client("kontent")
  local res, err = k:clone_environment{ environment_id = conf.seed.kontent.environment_id, name = args.name,
    wait = args.wait and true or nil, wait_interval = 0.2, wait_timeout = 20 }
  if res ~= nil then return reply(200, { ok = true, result = res, state = err }) end
  return result_or_error(res, err)
end

-- The cases of /compare: each returns the result and error of one call with
-- the given client options.
local cases = {}

function cases.validation(opts)
  return client("kontent", opts):clone_environment{ environment_id = "not-a-uuid", name = "x" }
end

function cases.refused(opts)
  opts.base_url = conf.closed_url .. "/kontent/v2"
  return client("kontent", opts):get_environment{ environment_id = conf.seed.kontent.environment_id }
end

function cases.refused_create(opts)
  opts.base_url = conf.closed_url .. "/droplit/v0"
  return client("droplit", opts):create_environment{ ecosystemId = conf.seed.droplit.ecosystem_id }
end

function cases.not_found(opts)
  return client("kontent", opts):get_environment{ environment_id = "00000000-0000-4000-8000-000000000000" }
end

function cases.duplicate(opts)
  local d = client("droplit", opts)
  d:create_environment{ ecosystemId = conf.seed.droplit.ecosystem_id, alias = "dup_" .. opts.transport }
  return d:create_environment{ ecosystemId = conf.seed.droplit.ecosystem_id, alias = "dup_" .. opts.transport }
end

function cases.unauthorized(opts)
  opts.token = "wrong-token-value"
  return client("droplit", opts):create_environment{ ecosystemId = conf.seed.droplit.ecosystem_id }
end

-- the next three run with a fault queued at the emulator (set by run.lua)
function cases.fault_get(opts)
  return client("kontent", opts):get_environment{ environment_id = conf.seed.kontent.environment_id }
end

function cases.fault_create(opts)
  return client("droplit", opts):create_environment{ ecosystemId = conf.seed.droplit.ecosystem_id }
end

function cases.timeout(opts)
  opts.timeout = 0.3
  return client("kontent", opts):get_environment{ environment_id = conf.seed.kontent.environment_id }
end

function cases.too_large(opts)
  opts.max_response_size = 16
  return client("kontent", opts):get_environment{ environment_id = conf.seed.kontent.environment_id }
end

function cases.warm_droplit(opts)
  return client("droplit", opts):create_environment{ ecosystemId = conf.seed.droplit.ecosystem_id }
end

-- TLS against `openssl s_server -www` (a self-signed certificate nobody
-- trusts; it answers HTML, so a call that gets through ends in a decode error)
function cases.tls_untrusted(opts)
  opts.base_url = conf.tls_url .. "/kontent/v2"
  return client("kontent", opts):get_environment{ environment_id = conf.seed.kontent.environment_id }
end

function cases.tls_insecure(opts)
  opts.base_url, opts.insecure = conf.tls_url .. "/kontent/v2", true
  return client("kontent", opts):get_environment{ environment_id = conf.seed.kontent.environment_id }
end

function cases.ok_get(opts)
  return client("kontent", opts):get_environment{ environment_id = conf.seed.kontent.environment_id }
end

-- /compare?case=C&transports=curl,cosocket: runs the case with each transport.
local function compare(args)
  local case = cases[args.case]
  if not case then return reply(404, { ok = false, message = "no such case" }) end
  local out = {}
  for t in (args.transports or "curl,cosocket"):gmatch("[^,]+") do
    local res, err = case({ transport = t })
    out[t] = { result = res, err = plain(err) }
  end
  return reply(200, out)
end

-- A fake Kontent answering with a chunked body (nginx chunks a Lua
-- response without Content-Length): GET /fake/kontent/v2/projects/{id}.
local function fake()
  local id = ngx.var.uri:match("/projects/([%x-]+)$")
  if ngx.req.get_headers()["authorization"] ~= "Bearer " .. conf.credentials.kontent.api_key then
    ngx.status = 401
    ngx.header["Content-Type"] = "application/json"
    ngx.print('{"request_id":"fake","error_code":0,"message":"wrong key"}')
    return
  end
  ngx.header["Content-Type"] = "application/json; charset=utf-8"
  ngx.header["X-Request-Id"] = "fake-chunked"
  -- the environment id 00000000-0000-4000-8000-NNNNNNNNNNNN asks for NNN bytes of padding
  local pad = ("x"):rep(id and id:match("^00000000%-") and tonumber(id:sub(-12)) or 10)
  local parts = { '{"id":"' .. id .. '",', '"environment":"Chunked",', '"pad":"' .. pad .. '",',
    '"is_production":false}' }
  for _, p in ipairs(parts) do
    ngx.print(p)
    ngx.flush(true)
  end
end

local function chunked(args)
  -- tls=1: over https to nginx itself, whose certificate lua_ssl_trusted_certificate lists
  local base = args.tls and conf.self_tls_url or conf.self_url
  local k = client("kontent", { base_url = base .. "/fake/kontent/v2", transport = "cosocket",
    max_response_size = tonumber(args.max), ca_file = args.ca_file and conf.cert or nil })
  local id = args.pad and string.format("00000000-0000-4000-8000-%012d", tonumber(args.pad))
    or conf.seed.kontent.environment_id
  return result_or_error(k:get_environment{ environment_id = id })
end

-- /h1?item=NAME: the item through libcurl, then cosockets; the test has
-- set the hostile server's answer.
local function h1(args)
  local item = h1cases.by_name[args.item]
  for _, f in ipairs(h1cases.faults) do
    if f.name == args.item then item = f end
  end
  if not item then return reply(404, { ok = false, message = "no such item" }) end
  local base = item.refused and conf.closed_url or conf.hostile_url
  local function now()
    ngx.update_time()
    return ngx.now()
  end
  local out = {}
  for _, t in ipairs({ "curl", "cosocket" }) do
    local res, err, took = h1cases.run(envclone, item, base, t, now)
    out[t] = { result = res, err = err, took = took, wrong = h1cases.check(item, res, err, cjson.decode) }
  end
  return reply(200, out)
end

--- init_by_lua: a client built while nginx starts (transport "auto" picks
-- cosockets later, per call, in the request handlers).
function M.init()
  M.early = envclone.droplit{ base_url = conf.base_urls.droplit, token = conf.credentials.droplit.token,
    retry = false, timeout = 5 }
end

--- init_worker_by_lua: cosockets do not work in this phase; a cosocket-only
-- client must say so (and send nothing).
function M.init_worker()
  local d = envclone.droplit{ base_url = conf.base_urls.droplit, token = conf.credentials.droplit.token,
    transport = "cosocket", retry = false }
  local res, err = d:create_environment{ ecosystemId = conf.seed.droplit.ecosystem_id, alias = "init_worker" }
  M.init_worker_result = { result = res, err = plain(err) }
  d:close()
end

-- /batch?case=C: a batch run inside the handler (ngx.thread + cosockets);
-- answers with a summary of its results.
local batch_cases = {}

local function mixed_item(i)
  local name = string.format("n%03dx", i)
  local which = i % 4
  if which == 0 then
    return client("versori"), "clone_environment", { organisation_id = conf.seed.versori.organisation_id,
      project_id = conf.seed.versori.project_id, oldEnvName = "staging", newEnvName = name }
  elseif which == 1 then
    return client("qovery"), "clone_application", { applicationId = conf.seed.qovery.application_id,
      environment_id = conf.seed.qovery.environment_id, name = name }
  elseif which == 2 then
    return client("kontent"), "get_environment", { environment_id = conf.seed.kontent.environment_id }
  end
  return client("droplit"), "create_environment", { ecosystemId = conf.seed.droplit.ecosystem_id, alias = name }
end

function batch_cases.mixed(b)
  for i = 1, 40 do b:add(mixed_item(i)) end
  b:add(client("kontent"), "get_environment", { environment_id = "not-a-uuid" })
  b:add(function() error("boom") end)
end

function batch_cases.limits(b)
  -- Kontent's limits kept across workers in a lua_shared_dict
  local k = client("kontent", { rate_limit_dict = "envclone_limits" })
  for _ = 1, 30 do b:add(k, "get_environment", { environment_id = conf.seed.kontent.environment_id }) end
end

function batch_cases.tasks(b)
  local k = client("kontent")
  for i = 1, 10 do
    b:add(function()
      local env = assert(k:clone_environment{ environment_id = conf.seed.kontent.environment_id,
        name = "ngx-" .. i, wait = true, wait_interval = 0.2 })
      return assert(k:rename_environment{ environment_id = env.id, name = "NGX " .. i })
    end)
  end
end

local function batch(args)
  local b = envclone.batch{ max_in_flight = tonumber(args.max) or 8 }
  batch_cases[args.case](b)
  local t0 = ngx.now()
  local results = b:run()
  ngx.update_time()
  local out = { succeeded = results.succeeded, failed = results.failed, n = #results,
    elapsed = ngx.now() - t0, items = {} }
  for i, r in ipairs(results) do
    out.items[i] = { ok = r.ok, kind = r.err and r.err.kind, status = r.err and r.err.status,
      vendor = r.err and r.err.vendor, operation = r.err and r.err.operation,
      message = r.err and r.err.message }
  end
  local ok, err = pcall(b.add, b, function() end)
  out.add_after_run = { ok = ok, err = tostring(err) }
  return reply(200, out)
end

-- /batch_raising: a batch whose on_progress raises once two items are done
-- (issue 23, item 9): b:run() raises it, as in plain Lua, and no item runs on.
local function batch_raising()
  local k = client("kontent", { rate_limit = false })
  local done_seen = 0
  local b = envclone.batch{ max_in_flight = 2, on_progress = function(done)
    done_seen = done
    if done == 2 then error("stop here from on_progress") end
  end }
  for _ = 1, 10 do b:add(k, "get_environment", { environment_id = conf.seed.kontent.environment_id }) end
  local ok, err = pcall(b.run, b)
  ngx.sleep(1) -- an item still running would reach the emulator meanwhile
  return reply(200, { raised = not ok, message = tostring(err), done = done_seen })
end

local function stats()
  return reply(200, { counters = cosocket.counters, init_worker = M.init_worker_result })
end

--- Dispatches one request by URI.
function M.handle()
  local args = ngx.req.get_uri_args()
  local uri = ngx.var.uri
  if uri == "/droplit/create" then return droplit_create(args) end
  if uri == "/kontent/clone" then return kontent_clone(args) end
  if uri == "/compare" then return compare(args) end
  if uri == "/chunked" then return chunked(args) end
  if uri:sub(1, 6) == "/fake/" then return fake() end
  if uri == "/stats" then return stats() end
  if uri == "/h1" then return h1(args) end
  if uri == "/batch" then return batch(args) end
  if uri == "/batch_raising" then return batch_raising() end
  if uri == "/lua-ping" then return reply(200, { ok = true }) end
  return reply(404, { ok = false, message = "no such location" })
end

return M
