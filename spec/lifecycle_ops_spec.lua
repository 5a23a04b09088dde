-- The read and teardown rows of the operation table (issue 19) on the wire:
-- against a scripted loopback server (spec/support/capture_server.lua) that
-- records every request, each new operation sends exactly the method, path
-- (Droplit's `;` as is), query and auth header of its row; bad input is a
-- validation error and reaches the server not at all. Also: the new columns
-- as envclone.operations shows them, Kontent's second credential and its
-- subscription_id setting.
local envclone = require("envclone")
local emu = require("spec.support.emu")
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson.safe")

local ORG = "01HZY8K2V6Q4N3M5T7W9X0ABCD"
local PRJ = "01HZY8K2V6Q4N3M5T7W9X0EFGH"
local ENV = "01HZY8K2V6Q4N3M5T7W9X0JKMN"
local APP = "8d20758c-d74c-4f59-ae04-ee928c0816b7"
local QENV = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
local KENV = "0f4e28ba-2fa1-41d2-883f-0016d3cca427"
local SUB = "2c4e28ba-2fa1-41d2-883f-0016d3cca427"
local CREDS = {
  versori = { token = "versori-captured-token" },
  qovery = { token = "qov_captured_token_1" },
  kontent = { api_key = "kontent-management-key", subscription_api_key = "kontent-subscription-key-7" },
  droplit = { token = "droplit-captured-token" },
}

local srv -- { pid, url, port_file, log_file }

local function control(method, path, body)
  local chunks = {}
  local saved = http.TIMEOUT
  http.TIMEOUT = 10
  local ok, code = http.request{ url = srv.url .. path, method = method, sink = ltn12.sink.table(chunks),
    headers = { ["content-length"] = tostring(body and #body or 0) }, source = body and ltn12.source.string(body) }
  http.TIMEOUT = saved
  assert(ok and code == 200, "capture server " .. method .. " " .. path .. ": " .. tostring(code))
  return cjson.decode(table.concat(chunks))
end

local function answer(status, body) control("PUT", "/_capture/answer", status .. "\n" .. (body or "{}")) end
local function captured() return control("GET", "/_capture/log") end

setup(function()
  local port_file, log_file = os.tmpname(), os.tmpname()
  os.remove(port_file)
  local cmd = string.format("exec env -u LD_PRELOAD lua5.4 spec/support/capture_server.lua --port-file %s "
    .. "--max-lifetime 120 >%s 2>&1 </dev/null & echo $!", emu.quote(port_file), emu.quote(log_file))
  local p = assert(io.popen(cmd, "r"))
  local pid = tonumber(p:read("*l"))
  p:close()
  local port = emu.wait_for_port_file(pid, port_file, "^(%d+)\n")
  assert(port, "the capture server did not start: " .. tostring(emu.read_file(log_file)))
  srv = { pid = pid, url = "http://127.0.0.1:" .. port, port_file = port_file, log_file = log_file }
end)

teardown(function()
  if not srv then return end
  pcall(control, "POST", "/_capture/shutdown")
  for _ = 1, 100 do
    if not emu.alive(srv.pid) then break end
    socket.sleep(0.02)
  end
  if emu.alive(srv.pid) then os.execute("kill -KILL " .. srv.pid .. " 2>/dev/null") end
  os.remove(srv.port_file)
  os.remove(srv.log_file)
end)

before_each(function()
  control("DELETE", "/_capture/log")
  answer(200, "{}")
end)

local ROOTS = { versori = "/api/v2", qovery = "", kontent = "/v2", droplit = "/v0" }

local function client(vendor, extra)
  local opts = { base_url = srv.url .. ROOTS[vendor], retry = false, rate_limit = false }
  for k, v in pairs(CREDS[vendor]) do opts[k] = v end
  for k, v in pairs(extra or {}) do opts[k] = v end
  return envclone[vendor](opts)
end

local CONNECT = "/api/connect/v1alpha1/o/" .. ORG .. "/connections"

-- { vendor, operation, args, status answered, method, target, header, value }
local wire_cases = {
  { "versori", "get_project", { organisation_id = ORG, project_id = PRJ }, 200,
    "GET", "/api/v2/o/" .. ORG .. "/projects/" .. PRJ, "authorization", "Bearer versori-captured-token" },
  { "versori", "delete_environment", { organisation_id = ORG, project_id = PRJ, environment_id = ENV }, 200,
    "POST", "/api/v2/o/" .. ORG .. "/projects/" .. PRJ .. "/environments/" .. ENV, "authorization",
    "Bearer versori-captured-token" },
  { "versori", "get_connection_version", { organisation_id = ORG, connection_id = "conn 1", version = "1.0.0" }, 200,
    "GET", CONNECT .. "/conn%201/versions/1.0.0", "authorization", "Bearer versori-captured-token" },
  { "versori", "list_connection_versions", { organisation_id = ORG, connection_id = "c1", first = 50,
    before = "b1", after = "a/1&x=y" }, 200,
    "GET", CONNECT .. "/c1/versions?first=50&before=b1&after=a%2F1%26x%3Dy", "authorization",
    "Bearer versori-captured-token" },
  { "versori", "list_connection_versions", { organisation_id = ORG, connection_id = "c1" }, 200,
    "GET", CONNECT .. "/c1/versions", "authorization", "Bearer versori-captured-token" },
  { "versori", "delete_connection_version", { organisation_id = ORG, connection_id = "c1", version = "1.0.0",
    force = true }, 204,
    "DELETE", CONNECT .. "/c1/versions/1.0.0?force=true", "authorization", "Bearer versori-captured-token" },
  { "versori", "delete_connection_version", { organisation_id = ORG, connection_id = "c1", version = "2" }, 204,
    "DELETE", CONNECT .. "/c1/versions/2", "authorization", "Bearer versori-captured-token" },
  { "qovery", "get_application", { applicationId = APP }, 200,
    "GET", "/application/" .. APP, "authorization", "Token qov_captured_token_1" },
  { "qovery", "get_application_status", { applicationId = APP }, 200,
    "GET", "/application/" .. APP .. "/status", "authorization", "Token qov_captured_token_1" },
  { "qovery", "list_applications", { environmentId = QENV }, 200,
    "GET", "/environment/" .. QENV .. "/application", "authorization", "Token qov_captured_token_1" },
  { "qovery", "delete_application", { applicationId = APP }, 204,
    "DELETE", "/application/" .. APP, "authorization", "Token qov_captured_token_1" },
  { "kontent", "list_subscription_projects", { subscription_id = SUB }, 200,
    "GET", "/v2/subscriptions/" .. SUB .. "/projects", "authorization", "Bearer kontent-subscription-key-7" },
  { "kontent", "list_subscription_projects", { subscription_id = SUB, continuation = "+tok/en=" }, 200,
    "GET", "/v2/subscriptions/" .. SUB .. "/projects", "x-continuation", "+tok/en=" },
  { "kontent", "delete_environment", { environment_id = KENV }, 204,
    "DELETE", "/v2/projects/" .. KENV, "authorization", "Bearer kontent-management-key" },
  { "droplit", "get_environment", { id = "E53c19b2f3008801c0f4c3dca" }, 200,
    "GET", "/v0/api/environments/E53c19b2f3008801c0f4c3dca", "authorization", "droplit-captured-token" },
  { "droplit", "get_environment", { ecosystemId = "C1", alias = "my_alias" }, 200,
    "GET", "/v0/api/environments/C1;my_alias", "authorization", "droplit-captured-token" },
  { "droplit", "delete_environment", { ecosystemId = "C594b89aea18568c408c3ad24", alias = "pr_42" }, 200,
    "DELETE", "/v0/api/environments/C594b89aea18568c408c3ad24;pr_42", "authorization", "droplit-captured-token" },
  { "droplit", "delete_environment", { id = "E1" }, 204,
    "DELETE", "/v0/api/environments/E1", "authorization", "droplit-captured-token" },
}

describe("the read and teardown rows on the wire", function()
  for _, case in ipairs(wire_cases) do
    local vendor, name, args, status, method, target, header, value =
      case[1], case[2], case[3], case[4], case[5], case[6], case[7], case[8]
    it(vendor .. "." .. name .. ": " .. method .. " " .. target, function()
      answer(status, "{}")
      local c = client(vendor)
      local res, err = c[name](c, args)
      c:close()
      assert.is_not_nil(res, tostring(err))
      local log = captured()
      assert.are.equal(1, #log)
      assert.are.equal(method, log[1].method)
      assert.are.equal(target, log[1].target)
      assert.are.equal(value, log[1].headers[header])
      assert.are.equal("", log[1].body) -- reads and teardowns carry no body
      if method == "POST" then
        assert.are.equal("0", log[1].headers["content-length"])
      end
      -- no body, no type (libcurl's own form type for an empty POST removed)
      assert.is_nil(log[1].headers["content-type"])
    end)
  end
end)

describe("a host transport carries the same request", function()
  it("the query and Droplit's ';' reach a Lua transport in request.url as they go on the wire", function()
    package.path = "examples/?.lua;" .. package.path
    local inner = require("luasocket_transport").new()
    local urls = {}
    local transport = { perform = function(req)
      urls[#urls + 1] = req.method .. " " .. req.url
      return inner.perform(req)
    end }
    local v = client("versori", { transport = transport })
    assert(v:list_connection_versions{ organisation_id = ORG, connection_id = "c1", first = 3, after = "x y" })
    v:close()
    answer(204, "")
    local d = client("droplit", { transport = transport })
    assert(d:delete_environment{ ecosystemId = "C1", alias = "pr_7" })
    d:close()
    assert.are.same({ "GET " .. srv.url .. CONNECT .. "/c1/versions?first=3&after=x%20y",
      "DELETE " .. srv.url .. "/v0/api/environments/C1;pr_7" }, urls)
    local log = captured()
    assert.are.same({ CONNECT .. "/c1/versions?first=3&after=x%20y", "/v0/api/environments/C1;pr_7" },
      { log[1].target, log[2].target })
  end)
end)

-- { label, vendor, operation, args, field named (nil: any) }
local bad_cases = {
  { "a reserved version on delete", "versori", "delete_connection_version",
    { organisation_id = ORG, connection_id = "c1", version = "latest" }, "version" },
  { "a reserved version on delete (default)", "versori", "delete_connection_version",
    { organisation_id = ORG, connection_id = "c1", version = "default", force = true }, "version" },
  { "a reserved version on get", "versori", "get_connection_version",
    { organisation_id = ORG, connection_id = "c1", version = "default" }, "version" },
  { "an empty version", "versori", "get_connection_version",
    { organisation_id = ORG, connection_id = "c1", version = "" }, "version" },
  { "'clone' as the environment id (the clone endpoint's path)", "versori", "delete_environment",
    { organisation_id = ORG, project_id = PRJ, environment_id = "clone" }, "environment_id" },
  { "a non-ULID environment id", "versori", "delete_environment",
    { organisation_id = ORG, project_id = PRJ, environment_id = "01HZY8K2V6Q4N3M5T7W9X0JKMU" }, "environment_id" },
  { "first = 0", "versori", "list_connection_versions", { organisation_id = ORG, connection_id = "c1", first = 0 },
    "first" },
  { "first = 101", "versori", "list_connection_versions",
    { organisation_id = ORG, connection_id = "c1", first = 101 }, "first" },
  { "first = 2.5", "versori", "list_connection_versions",
    { organisation_id = ORG, connection_id = "c1", first = 2.5 }, "first" },
  { "first as a string", "versori", "list_connection_versions",
    { organisation_id = ORG, connection_id = "c1", first = "20" }, "first" },
  { "force as a string", "versori", "delete_connection_version",
    { organisation_id = ORG, connection_id = "c1", version = "1", force = "true" }, "force" },
  { "an empty application id", "qovery", "delete_application", { applicationId = "" }, "applicationId" },
  { "a non-UUID environment id", "qovery", "list_applications", { environmentId = "env-1" }, "environmentId" },
  { "a non-UUID subscription id", "kontent", "list_subscription_projects", { subscription_id = "sub" },
    "subscription_id" },
  { "a continuation token with CR LF", "kontent", "list_subscription_projects",
    { subscription_id = SUB, continuation = "a\r\nX-Evil: 1" }, "continuation" },
  { "an alias with '-'", "droplit", "delete_environment", { ecosystemId = "C1", alias = "my-alias" }, "alias" },
  { "an alias of 25 characters", "droplit", "get_environment", { ecosystemId = "C1", alias = ("a"):rep(25) },
    "alias" },
  { "an empty alias", "droplit", "delete_environment", { ecosystemId = "C1", alias = "" }, "alias" },
  { "an empty id", "droplit", "delete_environment", { id = "" }, "id" },
  { "neither way", "droplit", "delete_environment", {}, "id" },
  { "half of the alias way", "droplit", "get_environment", { ecosystemId = "C1" }, "id" },
  { "both ways", "droplit", "delete_environment", { id = "E1", ecosystemId = "C1", alias = "a" }, "ecosystemId" },
  { "an id and an alias", "droplit", "get_environment", { id = "E1", alias = "a" }, "alias" },
}

describe("bad input to the read and teardown rows", function()
  for _, case in ipairs(bad_cases) do
    local label, vendor, name, args, field = case[1], case[2], case[3], case[4], case[5]
    it(vendor .. "." .. name .. ": " .. label .. " is refused, nothing sent", function()
      local c = client(vendor)
      local ok, res, err = pcall(c[name], c, args)
      c:close()
      if ok then
        assert.is_nil(res)
        assert.is_true(envclone.is_error(err), tostring(err))
        assert.are.equal("validation", err.kind, tostring(err))
        assert.are.equal(field, err.field, tostring(err))
      else
        assert.matches(field, tostring(res), 1, true)
      end
      assert.are.equal(0, #captured())
    end)
  end

  it("a Droplit address error names both ways", function()
    local c = client("droplit")
    local res, err = c:get_environment{ ecosystemId = "C1" }
    assert.is_nil(res)
    assert.matches("give id, or ecosystemId and alias", err.message, 1, true)
    res, err = c:delete_environment{ id = "E1", ecosystemId = "C1", alias = "a" }
    assert.is_nil(res)
    assert.matches("give id, or ecosystemId and alias, not both", err.message, 1, true)
    c:close()
    assert.are.equal(0, #captured())
  end)

  it("the Subscription API without a subscription key: refused, naming it, nothing sent", function()
    local c = envclone.kontent{ base_url = srv.url .. "/v2", api_key = CREDS.kontent.api_key, retry = false }
    local res, err = c:list_subscription_projects{ subscription_id = SUB }
    c:close()
    assert.is_nil(res)
    assert.are.equal("validation", err.kind)
    assert.are.equal("subscription_api_key", err.field)
    assert.are.equal(0, #captured())
  end)
end)

describe("Kontent's subscription settings", function()
  it("subscription_id and the credentials held show in settings(), never a value", function()
    local c = client("kontent", { subscription_id = SUB })
    local s = c._handle:settings()
    assert.are.equal(SUB, s.subscription_id)
    assert.are.same({ api_key = true, subscription_api_key = true }, s.credentials_held)
    for _, v in pairs(s) do
      assert.is_nil(tostring(v):find(CREDS.kontent.subscription_api_key, 1, true))
    end
    local text = tostring(c._handle)
    assert.matches("subscription_api_key=***", text, 1, true)
    assert.is_nil(text:find(CREDS.kontent.subscription_api_key, 1, true))
    c:close()
    local only = envclone.kontent{ base_url = srv.url, api_key = CREDS.kontent.api_key }
    assert.are.same({ api_key = true }, only._handle:settings().credentials_held)
    assert.is_nil(only._handle:settings().subscription_id)
    only:close()
  end)

  it("a subscription_id that is not a UUID raises at construction, naming it", function()
    local ok, msg = pcall(envclone.kontent, { api_key = CREDS.kontent.api_key, subscription_id = "my-sub" })
    assert.is_false(ok)
    assert.matches("subscription_id", tostring(msg), 1, true)
    assert.matches("UUID", tostring(msg), 1, true)
    ok, msg = pcall(envclone.kontent, { api_key = CREDS.kontent.api_key, subscription_id = 5 })
    assert.is_false(ok)
    assert.matches("subscription_id", tostring(msg), 1, true)
  end)

  it("subscription_api_key is masked in errors like api_key", function()
    local key = CREDS.kontent.subscription_api_key
    answer(401, cjson.encode{ message = "key " .. key .. " refused", error_code = "bad " .. key,
      request_id = key })
    local c = client("kontent", { subscription_id = SUB })
    local res, err = c:list_subscription_projects{ subscription_id = SUB }
    assert.is_nil(res)
    assert.are.equal(401, err.status, tostring(err))
    local text = tostring(err) .. " " .. cjson.encode(err.body or {}) .. " " .. tostring(err.code) .. " "
      .. tostring(err.request_id) .. " " .. tostring(err.message)
    assert.is_nil(text:find(key, 1, true), text)
    assert.is_nil(text:find(key:sub(1, 8), 1, true), text)
    assert.matches("***", tostring(err.message), 1, true)
    -- and in a validation error that would echo it
    res, err = c:get_environment{ environment_id = KENV, [key] = 1 }
    assert.is_nil(res)
    assert.is_nil((tostring(err) .. tostring(err.field)):find(key, 1, true), tostring(err))
    -- a secret too short is refused like api_key's
    local ok = pcall(envclone.kontent, { api_key = CREDS.kontent.api_key, subscription_api_key = "short" })
    assert.is_false(ok)
    c:close()
  end)
end)

describe("the new columns in envclone.operations", function()
  local function op(vendor, name)
    for _, o in ipairs(envclone.operations) do
      if o.vendor == vendor and o.name == name then return o end
    end
    error("no operation " .. vendor .. "." .. name)
  end

  it("deletes marks every teardown, and only those", function()
    local teardowns = { ["versori.delete_environment"] = true, ["versori.delete_connection_version"] = true,
      ["qovery.delete_application"] = true, ["kontent.delete_environment"] = true,
      ["droplit.delete_environment"] = true }
    for _, o in ipairs(envclone.operations) do
      assert.are.equal(teardowns[o.vendor .. "." .. o.name] == true, o.deletes, o.vendor .. "." .. o.name)
      if o.deletes then assert.is_false(o.creates) end
    end
    assert.are.equal("not_found", op("kontent", "delete_environment").applied_reason)
  end)

  it("alt_path, query and integer fields", function()
    local g = op("droplit", "get_environment")
    assert.are.equal("/api/environments/{id}", g.path)
    assert.are.equal("/api/environments/{ecosystemId};{alias}", g.alt_path)
    for _, f in ipairs(g.fields) do assert.is_false(f.required, f.name) end
    local l = op("versori", "list_connection_versions")
    local first = l.fields[3]
    assert.are.same({ "first", "query", "integer", 1, 100 },
      { first.name, first["in"], first.type, first.min_value, first.max_value })
    assert.are.equal("query", op("versori", "delete_connection_version").fields[4]["in"])
    assert.is_nil(op("versori", "get_project").alt_path)
  end)

  it("waiters: pending as a list, done_status, id_from_args", function()
    local k = op("kontent", "clone_environment").waiter
    assert.are.same({ "in_progress" }, k.pending)
    assert.is_nil(k.id_from_args)
    assert.are.equal("id", k.id_result)
    local q = op("qovery", "delete_application").waiter
    assert.are.same({ name = "wait_for_deletion", poll = "get_application_status", id_arg = "applicationId",
      id_from_args = "applicationId", state_field = "state", done = "DELETED", done_status = 404,
      failed = "DELETE_ERROR", pending = { "DELETE_QUEUED", "DELETING", "WAITING_DELETING" },
      failed_message = "application deletion failed" }, q)
  end)

  it("lookups on the create rows", function()
    local function lk(vendor, name)
      local l = op(vendor, name).lookup
      assert.is_string(l.source)
      l.source = nil
      return l
    end
    assert.are.same({ read = "get_project", args = { organisation_id = "organisation_id", project_id = "project_id" },
      list = "environments", key = "name", key_arg = "newEnvName", match = "exact", id = "id", unique = true,
      result = "read" }, lk("versori", "clone_environment"))
    assert.are.same({ read = "get_connection_version", args = { organisation_id = "organisation_id",
      connection_id = "connection_id", version = "name" }, key = "name", key_arg = "name", match = "exact",
      id = "id", unique = true, exists_reason = "conflict", result = "object" },
      lk("versori", "create_connection_version"))
    assert.are.same({ read = "list_applications", args = { environmentId = "environment_id" }, list = "results",
      key = "name", key_arg = "name", match = "fold", id = "id", unique = true, exists_reason = "conflict",
      result = "object" }, lk("qovery", "clone_application"))
    assert.are.same({ read = "list_subscription_projects", client_args = { subscription_id = "subscription_id" },
      list = "projects", sublist = "environments", group_arg = "environment_id", key = "name", key_arg = "name",
      match = "exact", id = "id", unique = false, credential = "subscription_api_key",
      page_arg = "continuation", page_next = "pagination.continuation_token", result = "object" },
      lk("kontent", "clone_environment"))
    assert.are.same({ read = "get_environment", args = { ecosystemId = "ecosystemId", alias = "alias" },
      key = "alias", key_arg = "alias", match = "exact", id = "id", unique = true, exists_reason = "alias_exists",
      result = "object" }, lk("droplit", "create_environment"))
    -- every lookup's read is an operation of the same vendor, its arguments real fields of both rows
    for _, o in ipairs(envclone.operations) do
      if o.lookup then
        local read = op(o.vendor, o.lookup.read)
        local has = function(row, n)
          for _, f in ipairs(row.fields) do if f.name == n then return true end end
          return false
        end
        for a, from in pairs(o.lookup.args or {}) do
          assert.is_true(has(read, a), o.lookup.read .. " has no " .. a)
          assert.is_true(has(o, from), o.name .. " has no " .. from)
        end
        assert.is_true(has(o, o.lookup.key_arg), o.name .. " has no " .. o.lookup.key_arg)
      end
    end
    assert.are.equal("UUID", (envclone.core or require("envclone.core")).vendors.kontent.settings.subscription_id
      :match("UUID"))
  end)

  it("the published-version reason (GUESS: no documented code)", function()
    answer(409, cjson.encode{ code = "version_published", message = "published" })
    local c = client("versori")
    local res, err = c:delete_connection_version{ organisation_id = ORG, connection_id = "c1", version = "1" }
    c:close()
    assert.is_nil(res)
    assert.are.equal("published", err.reason, tostring(err))
  end)
end)
