-- Specs of the envclone emulator, talking raw HTTP (luasocket) to a spawned process.
-- Run from the repository root: lua5.4 /usr/bin/busted spec/emulator_spec.lua

local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson.safe")
local emu = require("spec.support.emu")

local VERSORI_ORG = "01HZY8K2V6Q4N3M5T7W9X0ABCD"
local VERSORI_PROJECT = "01HZY8K2V6Q4N3M5T7W9X0EFGH"
local VERSORI_CONN = "01HZY8K2V6Q4N3M5T7W9X0JKMN"
local QOVERY_APP = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
local QOVERY_ENV = "5b1c2e9a-3f4d-4e6a-9b8c-7d6e5f4a3b2c"
local KONTENT_ENV = "8d20758c-d74c-4f59-ae04-ee928c0816b7"
local DROPLIT_ECO = "E5cdeSeedEcosystem01"

local e -- the emulator under test

--- One HTTP request with socket.http; returns status, decoded JSON (or nil), headers, raw body.
local function call(method, url, opts)
  opts = opts or {}
  local body = opts.body
  if type(body) == "table" then body = assert(cjson.encode(body)) end
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  if body then
    headers["content-length"] = tostring(#body)
    if headers["content-type"] == nil then headers["content-type"] = "application/json" end
    if headers["content-type"] == false then headers["content-type"] = nil end
  end
  local chunks = {}
  local ok, status, resp_headers = http.request{
    url = url, method = method, headers = headers,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(chunks),
  }
  assert(ok, status)
  local raw = table.concat(chunks)
  return status, cjson.decode(raw), resp_headers, raw
end

--- Sends raw bytes on a new connection and reads until the server closes it.
local function raw_exchange(data, timeout)
  local c = socket.tcp()
  c:settimeout(timeout or 5)
  assert(c:connect("127.0.0.1", e.port))
  assert(c:send(data))
  local chunks, err = {}, nil
  for _ = 1, 10000 do
    local d, rerr, partial = c:receive(8192)
    if d then
      chunks[#chunks + 1] = d
    else
      if partial and #partial > 0 then chunks[#chunks + 1] = partial end
      err = rerr
      break
    end
  end
  c:close()
  return table.concat(chunks), err
end

local function raw_request(method, path, headers, body)
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1", "Connection: close" }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  return raw_exchange(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or ""))
end

local function parse_raw(raw)
  local head, body = raw:match("^(.-)\r\n\r\n(.*)$")
  if not head then return nil end
  local headers = {}
  for name, value in head:gmatch("\r\n([^:]+): ([^\r]*)") do headers[name:lower()] = value end
  return tonumber(head:match("^HTTP/1%.1 (%d+)")), headers, body
end

-- Vendor calls -------------------------------------------------------------

local function versori_clone(body, headers)
  return call("POST", e.base_urls.versori .. "/o/" .. VERSORI_ORG .. "/projects/" .. VERSORI_PROJECT
    .. "/environments/clone", {
      body = body, headers = headers or { authorization = "Bearer emu-versori-token" } })
end

-- Connection versions live on the Connect API (connect-api-v1alpha1.yaml servers).
local function versori_version(body, headers, conn, base)
  return call("POST", e.base_urls[base or "versori_connect"] .. "/o/" .. VERSORI_ORG .. "/connections/"
    .. (conn or VERSORI_CONN) .. "/versions",
    { body = body, headers = headers or { cookie = "session=emu-versori-cookie" } })
end

local function qovery_clone(body, headers, app)
  return call("POST", e.base_urls.qovery .. "/application/" .. (app or QOVERY_APP) .. "/clone", {
    body = body, headers = headers or { authorization = "Bearer emu-qovery-token" } })
end

local KONTENT_AUTH = { authorization = "Bearer emu-kontent-key" }

local function kontent(method, env, suffix, body, headers)
  return call(method, e.base_urls.kontent .. "/projects/" .. env .. (suffix or ""), {
    body = body, headers = headers or KONTENT_AUTH })
end

local function kontent_clone(name, extra)
  local body = { name = name }
  for k, v in pairs(extra or {}) do body[k] = v end
  return kontent("POST", KONTENT_ENV, "/clone-environment", body)
end

local function droplit_create(body, headers, suffix)
  return call("POST", e.base_urls.droplit .. "/api/environments" .. (suffix or "/"), {
    body = body, headers = headers or { authorization = "emu-droplit-token" } })
end

local function versori_clone_raw(new_name)
  local body = cjson.encode{ oldEnvName = "staging", newEnvName = new_name }
  return raw_request("POST", "/versori/api/v2/o/" .. VERSORI_ORG .. "/projects/" .. VERSORI_PROJECT
    .. "/environments/clone", { Authorization = "Bearer emu-versori-token",
      ["Content-Type"] = "application/json" }, body)
end

---------------------------------------------------------------------------

describe("envclone emulator", function()
  setup(function()
    e = emu.start{ kontent_clone_seconds = 0.5 }
  end)

  teardown(function()
    if e then e:stop() end
  end)

  before_each(function()
    e:reset()
  end)

  describe("process", function()
    it("listens on a free port and exposes the base urls", function()
      assert.is_true(e.port > 0)
      assert.are.equal("http://127.0.0.1:" .. e.port .. "/kontent/v2", e.base_urls.kontent)
      assert.are.equal("emu-versori-token", e.credentials.versori.token)
      assert.are.equal(KONTENT_ENV, e.seed.kontent.environment_id)
    end)

    it("refuses hosts other than 127.0.0.1 and ::1", function()
      local p = io.popen("lua5.4 bin/envclone-emulator --host 0.0.0.0 --port 0 2>&1; echo rc=$?")
      local out = p:read("a")
      p:close()
      assert.matches("refusing to listen", out, 1, true)
      assert.matches("rc=1", out, 1, true)
    end)

    it("takes a fault plan at start, kept across resets; main() is the entry", function()
      local f = emu.start{ faults = { rules = { { operation = "kontent.get_environment", queue = { "503" } } } } }
      local url = f.base_urls.kontent .. "/projects/" .. KONTENT_ENV
      assert.are.equal(503, (call("GET", url, { headers = KONTENT_AUTH })))
      assert.are.equal(200, (call("GET", url, { headers = KONTENT_AUTH })))
      f:reset()
      assert.are.equal(503, (call("GET", url, { headers = KONTENT_AUTH })))
      f:stop()
      local p = io.popen("lua5.4 -e 'package.path=\"lua/?.lua;lua/?/init.lua;\"..package.path "
        .. "os.exit(require(\"envclone.emulator.main\").main({\"--faults\", \"{bad\"}, "
        .. "{ prog = \"envclone emulator\" }))' 2>&1; echo rc=$?")
      local out = p:read("a")
      p:close()
      assert.matches("envclone emulator: --faults: invalid fault plan", out, 1, true)
      assert.matches("rc=2", out, 1, true)
    end)

    it("rejects unknown arguments", function()
      local p = io.popen("lua5.4 bin/envclone-emulator --bogus 2>&1; echo rc=$?")
      local out = p:read("a")
      p:close()
      assert.matches("unknown argument", out, 1, true)
      assert.matches("rc=2", out, 1, true)
    end)
  end)

  describe("versori.clone_environment", function()
    it("clones an environment and returns the project", function()
      local status, body, _, raw = versori_clone{ oldEnvName = "staging", newEnvName = "dev" }
      assert.are.equal(200, status)
      assert.are.equal(VERSORI_PROJECT, body.id)
      assert.are.equal("Demo project", body.name)
      assert.are.equal(3, #body.environments)
      local env = body.environments[3]
      assert.are.equal("dev", env.name)
      -- ProjectEnvironment's required fields and status vocabulary (versori/user-docs platform-api.yaml)
      for _, e2 in ipairs(body.environments) do
        for _, k in ipairs{ "id", "name", "status", "createdAt", "updatedAt", "publicUrl", "config" } do
          assert.is_not_nil(e2[k], k)
        end
        assert.matches('"lastDeployedAt":', raw, 1, true)
        assert.is_truthy(({ running = 1, suspended = 1, error = 1, draft = 1 })[e2.status], e2.status)
        assert.matches("^https://", e2.publicUrl)
      end
      assert.are.equal("running", body.environments[1].status)
      assert.are.equal("draft", env.status)
      assert.matches('"lastDeployedAt":null', raw, 1, true)
      assert.are.equal("default", env.executionPool)
      assert.matches("^[0-9A-HJKMNP-TV-Z]+$", env.id)
      assert.are.equal(26, #env.id)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", env.createdAt)
      assert.matches('"labels":{}', raw, 1, true)
      assert.matches('"currentFiles":{"files":[],"labels":{}}', raw, 1, true)
      assert.matches('"sentimentHistory":[]', raw, 1, true)
      -- later clones see the new environment
      local s2 = versori_clone{ oldEnvName = "dev", newEnvName = "dev2", executionPool = "big" }
      assert.are.equal(200, s2)
    end)

    it("uses the given execution pool", function()
      local _, body = versori_clone{ oldEnvName = "staging", newEnvName = "dev", executionPool = "big" }
      assert.are.equal("big", body.environments[3].executionPool)
    end)

    it("takes the bearer token or the session cookie (security: bearerToken, cookie)", function()
      local s1, b1 = versori_clone({ oldEnvName = "staging", newEnvName = "dev" }, {})
      assert.are.equal(401, s1)
      assert.are.equal("unauthorized", b1.code)
      assert.is_string(b1.message)
      assert.are.same({}, b1.fields)
      local s2 = versori_clone({ oldEnvName = "staging", newEnvName = "dev" }, { authorization = "Bearer nope" })
      assert.are.equal(401, s2)
      assert.are.equal(401, (versori_clone({ oldEnvName = "staging", newEnvName = "dev" },
        { cookie = "session=wrong" })))
      local s3 = versori_clone({ oldEnvName = "staging", newEnvName = "dev" },
        { cookie = "session=emu-versori-cookie" })
      assert.are.equal(200, s3)
      assert.are.equal(1, e:stats().applied.creates)
    end)

    it("answers 404 for unknown organisation, project or source environment", function()
      local s1, b1 = call("POST", e.base_urls.versori .. "/o/01HZY8K2V6Q4N3M5T7W9X0ZZZZ/projects/"
        .. VERSORI_PROJECT .. "/environments/clone", {
          body = { oldEnvName = "staging", newEnvName = "dev" },
          headers = { authorization = "Bearer emu-versori-token" } })
      assert.are.equal(404, s1)
      assert.are.equal("organisation_not_found", b1.code)
      local s2, b2 = call("POST", e.base_urls.versori .. "/o/" .. VERSORI_ORG
        .. "/projects/01HZY8K2V6Q4N3M5T7W9X0ZZZZ/environments/clone", {
          body = { oldEnvName = "staging", newEnvName = "dev" },
          headers = { authorization = "Bearer emu-versori-token" } })
      assert.are.equal(404, s2)
      assert.are.equal("project_not_found", b2.code)
      local s3, b3 = versori_clone{ oldEnvName = "nope", newEnvName = "dev" }
      assert.are.equal(404, s3)
      assert.are.equal("environment_not_found", b3.code)
    end)

    it("answers 409 when the new environment exists", function()
      local status, body = versori_clone{ oldEnvName = "production", newEnvName = "staging" }
      assert.are.equal(409, status)
      assert.are.equal("environment_exists", body.code)
      assert.is_string(body.message)
    end)

    it("answers 400 for missing fields, wrong types and invalid JSON", function()
      local s1, b1 = versori_clone{ oldEnvName = "staging" }
      assert.are.equal(400, s1)
      assert.are.equal("invalid_request", b1.code)
      assert.are.equal("newEnvName", b1.fields[1].field)   -- ErrorField {field, message}
      assert.is_string(b1.fields[1].message)
      assert.are.equal("", b1.details)
      assert.are.equal(400, (versori_clone{ oldEnvName = "staging", newEnvName = "x", cloneSystems = "yes" }))
      assert.are.equal(400, (versori_clone{ oldEnvName = 5, newEnvName = "x" }))
      assert.are.equal(400, (versori_clone("{not json")))
      assert.are.equal(400, (versori_clone("[]")))
      assert.are.equal(0, e:stats().applied.creates)
    end)
  end)

  describe("versori.create_connection_version", function()
    it("creates a version that becomes the latest", function()
      local status, body, _, raw = versori_version{ name = "v2", fromVersion = "v1" }
      assert.are.equal(201, status)
      assert.are.equal("v2", body.name)
      assert.are.equal("", body.description)
      assert.is_true(body.isLatest)
      assert.is_false(body.isDefault)
      assert.matches('"publishedAt":null', raw, 1, true)
      assert.is_string(body.id)
      local versions = e:state().versori.organisations[VERSORI_ORG].connections[VERSORI_CONN].versions
      assert.are.equal("v1", versions[1].name)
      assert.is_false(versions[1].isLatest)
      assert.is_true(versions[1].isDefault)
      assert.is_true(versions[2].isLatest)
    end)

    it("is served under the Connect API base with Bearer or cookie", function()
      assert.are.equal("http://127.0.0.1:" .. e.port .. "/versori/api/connect/v1alpha1", e.base_urls.versori_connect)
      local s0, b0 = versori_version({ name = "v2" }, {})
      assert.are.equal(401, s0)
      assert.are.equal("unauthorized", b0.code)
      assert.are.equal("", b0.cause)            -- the Connect API's Error has `cause`, not `details`
      assert.is_nil(b0.details)
      assert.are.equal(401, (versori_version({ name = "v2" }, { cookie = "session=wrong" })))
      assert.are.equal(401, (versori_version({ name = "v2" }, { authorization = "Bearer wrong" })))
      assert.are.equal(201, (versori_version({ name = "v2" }, { authorization = "Bearer emu-versori-token" })))
      assert.are.equal(201, (versori_version({ name = "v3" })))
    end)

    it("is not a platform API v2 path", function()
      local status, body = versori_version({ name = "v2" }, nil, nil, "versori")
      assert.are.equal(404, status)
      assert.are.equal("not_found", body.code)
      assert.are.equal("", body.details)
      assert.are.equal(1, #e:state().versori.organisations[VERSORI_ORG].connections[VERSORI_CONN].versions)
    end)

    it("rejects reserved names, duplicates, unknown versions and connections", function()
      local s1, b1 = versori_version{ name = "default" }
      assert.are.equal(400, s1)
      assert.are.equal("reserved_name", b1.code)
      assert.are.equal("reserved_name", select(2, versori_version{ name = "latest" }).code)
      local s2, b2 = versori_version{ name = "v1" }
      assert.are.equal(409, s2)
      assert.are.equal("version_exists", b2.code)
      local s3 = versori_version{ name = "v3", fromVersion = "v9" }
      assert.are.equal(404, s3)
      local s4 = versori_version({ name = "v3" }, nil, "01HZY8K2V6Q4N3M5T7W9X0ZZZZ")
      assert.are.equal(404, s4)
      assert.are.equal(400, (versori_version{ fromVersion = "v1" }))
      assert.are.equal(0, e:stats().applied.creates)
    end)
  end)

  describe("qovery.clone_application", function()
    it("clones an application: 202 with the Application", function()
      local status, body, _, raw = qovery_clone{ name = "web-copy", environment_id = QOVERY_ENV }
      assert.are.equal(202, status)
      -- Application's required fields (Base, then environment, name, healthchecks, icon_uri, service_type)
      for _, k in ipairs{ "id", "created_at", "environment", "name", "healthchecks", "icon_uri", "service_type" } do
        assert.is_not_nil(body[k], k)
      end
      assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", body.id)
      assert.are_not.equal(QOVERY_APP, body.id)
      assert.are.equal("web-copy", body.name)
      assert.are.equal(QOVERY_ENV, body.environment.id)
      assert.are.equal("APPLICATION", body.service_type)
      assert.are.equal("app://qovery-console/application", body.icon_uri)
      assert.is_true(body.auto_preview)
      assert.matches('"ports":[]', raw, 1, true)
      assert.matches('"arguments":[]', raw, 1, true)
      assert.matches('"healthchecks":{}', raw, 1, true)
      -- the clone can be cloned in turn
      assert.are.equal(202, (qovery_clone({ name = "web-copy-2", environment_id = QOVERY_ENV }, nil, body.id)))
    end)

    it("takes the token as `Token` (ApiKeyAuth) or `Bearer` (bearerAuth)", function()
      local status, body = qovery_clone({ name = "x", environment_id = QOVERY_ENV }, {})
      assert.are.equal(401, status)
      assert.are.same({ status = 401, detail = body.detail }, body)
      assert.is_string(body.detail)
      assert.are.equal(401, (qovery_clone({ name = "x", environment_id = QOVERY_ENV },
        { authorization = "Bearer emu-versori-token" })))
      assert.are.equal(401, (qovery_clone({ name = "x", environment_id = QOVERY_ENV },
        { authorization = "Token emu-versori-token" })))
      assert.are.equal(401, (qovery_clone({ name = "x", environment_id = QOVERY_ENV },
        { authorization = "emu-qovery-token" })))
      assert.are.equal(202, (qovery_clone({ name = "x", environment_id = QOVERY_ENV },
        { authorization = "Token emu-qovery-token" })))
      assert.are.equal(202, (qovery_clone({ name = "y", environment_id = QOVERY_ENV },
        { authorization = "token emu-qovery-token" })))
    end)

    it("answers 404 for an unknown application", function()
      local status, body = qovery_clone({ name = "x", environment_id = QOVERY_ENV }, nil,
        "00000000-0000-4000-8000-000000000000")
      assert.are.equal(404, status)
      assert.are.same({ status = 404, detail = body.detail }, body)
    end)

    it("answers 404 for an unknown environment, 400 for bad bodies, 409 for a taken name", function()
      local s1, b1 = qovery_clone{ name = "x", environment_id = "00000000-0000-4000-8000-000000000000" }
      assert.are.equal(404, s1)
      assert.are.equal(404, b1.status)
      assert.matches("not found", b1.detail, 1, true)
      assert.are.equal(400, (qovery_clone{ name = "x", environment_id = "not-a-uuid" }))
      assert.are.equal(400, (qovery_clone{ environment_id = QOVERY_ENV }))
      -- names are case-insensitive and unique per environment
      local s2, b2 = qovery_clone{ name = "WEB", environment_id = QOVERY_ENV }
      assert.are.equal(409, s2)
      assert.matches("already exists", b2.detail, 1, true)
      assert.are.equal(0, e:stats().applied.creates)
    end)
  end)

  describe("kontent", function()
    it("clones an environment, readable at once, in_progress then done", function()
      local status, body, headers, raw = kontent_clone("Develop", {
        roles_to_activate = { "ee483b59-5a24-4010-b277-ae224c34bc71" },
        copy_data_options = { content_items_assets = true, content_item_version_history = false },
      })
      assert.are.equal(200, status)
      assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", body.id)
      assert.are.equal("emu-kontent-key", body.management_api_key)
      assert.matches('"secured_delivery_api_key":null', raw, 1, true)
      assert.matches('"delivery_preview_api_key":null', raw, 1, true)
      assert.matches("^%x+$", headers["x-request-id"])
      assert.are.equal(16, #headers["x-request-id"])

      local s2, env = kontent("GET", body.id)
      assert.are.equal(200, s2)
      assert.are.same({ id = body.id, name = "Sample project", environment = "Develop", is_production = false }, env)
      local _, st = kontent("GET", body.id, "/environment-cloning-state")
      assert.are.equal("in_progress", st.cloning_state)
      socket.sleep(0.6)
      _, st = kontent("GET", body.id, "/environment-cloning-state")
      assert.are.equal("done", st.cloning_state)
    end)

    it("reports the seed environment as done", function()
      local status, st = kontent("GET", KONTENT_ENV, "/environment-cloning-state")
      assert.are.equal(200, status)
      assert.are.same({ cloning_state = "done" }, st)
      local _, env = kontent("GET", KONTENT_ENV)
      assert.are.same({ id = KONTENT_ENV, name = "Sample project", environment = "Production",
        is_production = true }, env)
    end)

    it("can make cloning fail or never finish", function()
      e:config{ kontent_clone_outcome = "failed", kontent_clone_seconds = 0 }
      local _, a = kontent_clone("A")
      assert.are.equal("failed", select(2, kontent("GET", a.id, "/environment-cloning-state")).cloning_state)
      e:config{ kontent_clone_outcome = "done", kontent_clone_seconds = -1 }
      local _, b = kontent_clone("B")
      socket.sleep(0.1)
      assert.are.equal("in_progress", select(2, kontent("GET", b.id, "/environment-cloning-state")).cloning_state)
      e:config{ kontent_clone_seconds = 0 }
      assert.are.equal("done", select(2, kontent("GET", b.id, "/environment-cloning-state")).cloning_state)
    end)

    it("checks the API key", function()
      local status, body, headers = kontent("GET", KONTENT_ENV, nil, nil, {})
      assert.are.equal(401, status)
      assert.are.equal(7, body.error_code)
      assert.are.equal(headers["x-request-id"], body.request_id)
      assert.are.equal(401, (kontent("GET", KONTENT_ENV, nil, nil, { authorization = "Bearer wrong" })))
      assert.are.equal(401, (kontent("GET", KONTENT_ENV, nil, nil, { authorization = "emu-kontent-key" })))
    end)

    it("answers 403 to a valid key without the permission", function()
      local status, body, headers = kontent("GET", KONTENT_ENV, nil, nil,
        { authorization = "Bearer " .. e.seed.kontent.api_key_without_permission })
      assert.are.equal(403, status)
      assert.are.equal(headers["x-request-id"], body.request_id)
      assert.is_number(body.error_code)
      assert.matches("permission", body.message, 1, true)
      assert.are.equal(0, e:stats().applied.creates)
    end)

    it("answers 404 for unknown environments", function()
      local status, body, headers = kontent("GET", "00000000-0000-4000-8000-000000000000")
      assert.are.equal(404, status)
      assert.are.equal(100, body.error_code)
      assert.matches("^%x+$", body.request_id)
      assert.are.equal(16, #body.request_id)
      assert.are.equal(headers["x-request-id"], body.request_id)
      assert.are.equal(404, (kontent("POST", "nope", "/clone-environment", { name = "x" })))
    end)

    it("validates the clone body", function()
      local s1, b1 = kontent_clone("")
      assert.are.equal(400, s1)
      assert.are.equal(5, b1.error_code)
      assert.are.equal("name", b1.validation_errors[1].path)
      assert.is_string(b1.validation_errors[1].message)
      assert.are.equal(400, (kontent_clone(string.rep("x", 201))))
      assert.are.equal(200, (kontent_clone(string.rep("é", 200))))
      assert.are.equal(400, (kontent("POST", KONTENT_ENV, "/clone-environment",
        '{"name":"x","roles_to_activate":{}}')))
      assert.are.equal(400, (kontent("POST", KONTENT_ENV, "/clone-environment",
        '{"name":"x","copy_data_options":[]}')))
      assert.are.equal(400, (kontent("POST", KONTENT_ENV, "/clone-environment",
        '{"name":"x","copy_data_options":{"content_items_assets":"yes"}}')))
      assert.are.equal(400, (kontent("POST", KONTENT_ENV, "/clone-environment", "{oops")))
      assert.are.equal(1, e:stats().applied.creates)
    end)

    it("marks an environment as production (swap)", function()
      local _, clone = kontent_clone("Next")
      local status, _, _, raw = kontent("PUT", clone.id, "/mark-environment-as-production",
        { enable_webhooks = false })
      assert.are.equal(204, status)
      assert.are.equal("", raw)
      assert.is_true(select(2, kontent("GET", clone.id)).is_production)
      assert.is_false(select(2, kontent("GET", KONTENT_ENV)).is_production)
      local s2, b2 = kontent("PUT", clone.id, "/mark-environment-as-production")
      assert.are.equal(400, s2)
      assert.are.equal(232, b2.error_code)
      assert.are.equal("The environment " .. clone.id .. " is already marked as production.", b2.message)
      -- an empty body is fine too
      assert.are.equal(204, (kontent("PUT", KONTENT_ENV, "/mark-environment-as-production")))
      assert.are.equal(400, (kontent("PUT", clone.id, "/mark-environment-as-production",
        { enable_webhooks = "no" })))
    end)

    it("renames an environment", function()
      local status, body = kontent("PATCH", KONTENT_ENV, nil,
        { { op = "rename_environment", value = "My Little Production" } })
      assert.are.equal(200, status)
      assert.are.same({ id = KONTENT_ENV, name = "Sample project", environment = "My Little Production",
        is_production = true }, body)
      assert.are.equal("My Little Production", select(2, kontent("GET", KONTENT_ENV)).environment)
      for _, bad in ipairs{
        '{"op":"rename_environment","value":"x"}', "[]", '[{"op":"rename","value":"x"}]',
        '[{"op":"rename_environment","value":""}]', '[{"op":"rename_environment"}]', "nope",
      } do
        local s, b = kontent("PATCH", KONTENT_ENV, nil, bad)
        assert.are.equal(400, s, bad)
        assert.are.equal(5, b.error_code, bad)
      end
    end)

    it("deletes non-production environments only", function()
      local s1, b1 = kontent("DELETE", KONTENT_ENV)
      assert.are.equal(400, s1)
      assert.are.equal(233, b1.error_code)
      assert.are.equal("The production environment can\u{2019}t be deleted.", b1.message)
      local _, clone = kontent_clone("Temp")
      local s2, _, _, raw = kontent("DELETE", clone.id)
      assert.are.equal(204, s2)
      assert.are.equal("", raw)
      assert.are.equal(404, (kontent("GET", clone.id)))
      assert.are.equal(404, (kontent("GET", clone.id, "/environment-cloning-state")))
      assert.are.equal(1, e:stats().applied.by_operation["kontent.delete_environment"])
    end)
  end)

  describe("droplit.create_environment", function()
    it("creates an environment", function()
      local status, body, _, raw = droplit_create{ ecosystemId = DROPLIT_ECO }
      assert.are.equal(201, status)
      assert.matches("^E%w+$", body.id)
      assert.are.equal(21, #body.id)
      assert.are.equal(DROPLIT_ECO, body.ecosystemId)
      assert.matches("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$", body.createdAt)
      assert.matches('"meta":{}', raw, 1, true)
      assert.is_nil(body.alias)
    end)

    it("echoes alias and meta, with or without the trailing slash", function()
      local status, body, _, raw = droplit_create({ ecosystemId = DROPLIT_ECO, alias = "My_env_1a" }, nil, "")
      assert.are.equal(201, status)
      assert.are.equal("My_env_1a", body.alias)
      local s2, _, _, raw2 = droplit_create('{"ecosystemId":"' .. DROPLIT_ECO .. '","meta":{"a":[],"b":{}}}',
        { authorization = "emu-droplit-token", ["x-system-metadata-prefix"] = "_" })
      assert.are.equal(201, s2)
      assert.matches('"meta":{"a":[],"b":{}}', raw2, 1, true)
      assert.matches('"alias":"My_env_1a"', raw, 1, true)
      local prefixes = {}
      for _, env in pairs(e:state().droplit.environments) do prefixes[env.alias or "none"] = env.metadata_prefix end
      assert.are.same({ My_env_1a = "$", none = "_" }, prefixes)
    end)

    it("uses the raw authorization header", function()
      local body = { ecosystemId = DROPLIT_ECO }
      local s1, b1 = droplit_create(body, {})
      assert.are.equal(401, s1)
      assert.are.equal("unauthorized", b1.errors[1].type)
      assert.are.equal(401, (droplit_create(body, { authorization = "Bearer emu-droplit-token" })))
      assert.are.equal(401, (droplit_create(body, { authorization = "wrong" })))
    end)

    local function droplit_error(expect_status, expect_name, body, headers, suffix)
      local status, b = droplit_create(body, headers, suffix)
      assert.are.equal(expect_status, status)
      assert.are.equal(expect_name, b.errors[1].name)
      return b.errors[1]
    end

    it("answers the page's errors", function()
      local auth = { authorization = "emu-droplit-token" }
      local err = droplit_error(400, "No Query String Allowed", { ecosystemId = DROPLIT_ECO }, nil, "/?x=1")
      assert.are.equal("invalidParameters", err.type)
      droplit_error(400, "Body Parameters Missing", '{"ecosystemId":"' .. DROPLIT_ECO .. '"}',
        { authorization = "emu-droplit-token", ["content-type"] = "text/plain" })
      err = droplit_error(400, "Body Parameters Missing", { alias = "x" })
      assert.are.equal("ecosystemId", err.parameter)
      err = droplit_error(404, "Ecosystem Missing", { ecosystemId = "Enope" })
      assert.are.equal("ecosystemId", err.parameter)
      -- docs.droplit.io/reference/aliases: 1 to 24 of a-z, A-Z, 0-9, _
      for _, alias in ipairs{ "has space", string.rep("a", 25), "", "a-b", "a.b", "@thing1", "é" } do
        droplit_error(400, "Alias Invalid", { ecosystemId = DROPLIT_ECO, alias = alias }, auth)
      end
      assert.are.equal(201, (droplit_create{ ecosystemId = DROPLIT_ECO, alias = string.rep("Z", 24) }))
      assert.are.equal(201, (droplit_create{ ecosystemId = DROPLIT_ECO, alias = "Dup" }))  -- case-sensitive
      droplit_error(400, "Alias Invalid", '{"ecosystemId":"' .. DROPLIT_ECO .. '","alias":5}')
      droplit_error(400, "Metadata Format Invalid", '{"ecosystemId":"' .. DROPLIT_ECO .. '","meta":[]}')
      droplit_error(400, "Metadata Format Invalid", '{"ecosystemId":"' .. DROPLIT_ECO .. '","meta":"x"}')
      assert.are.equal(201, (droplit_create{ ecosystemId = DROPLIT_ECO, alias = "dup" }))
      err = droplit_error(400, "Alias Exists", { ecosystemId = DROPLIT_ECO, alias = "dup" })
      assert.are.equal("invalidBody", err.type)
      assert.are.equal("alias", err.parameter)
      -- "For environments, the alias is unique within the parent ecosystem."
      assert.are.equal(201, (droplit_create{ ecosystemId = e.seed.droplit.other_ecosystem_id, alias = "dup" }))
      assert.are.equal(4, e:stats().applied.creates)
    end)
  end)

  describe("routing and HTTP", function()
    it("answers 404 for unknown paths and 405 for wrong methods", function()
      local s1, b1 = call("GET", e.url .. "/nowhere")
      assert.are.equal(404, s1)
      assert.is_table(b1)
      local s2, b2 = call("GET", e.base_urls.versori .. "/o/x/nothing")
      assert.are.equal(404, s2)
      assert.are.equal("not_found", b2.code)
      local s3, _, h3 = call("GET", e.base_urls.droplit .. "/api/environments")
      assert.are.equal(405, s3)
      assert.are.equal("POST", h3["allow"])
      local s4, _, h4 = call("POST", e.base_urls.kontent .. "/projects/" .. KONTENT_ENV, { body = "{}" })
      assert.are.equal(405, s4)
      assert.are.equal("DELETE, GET, PATCH", (h4["allow"]:gsub("(%u+), (%u+), (%u+)", function(...)
        local t = { ... }
        table.sort(t)
        return table.concat(t, ", ")
      end)))
    end)

    it("keeps connections alive", function()
      local c = socket.tcp()
      c:settimeout(5)
      assert(c:connect("127.0.0.1", e.port))
      for _ = 1, 3 do
        assert(c:send("GET /_emulator/stats HTTP/1.1\r\nHost: x\r\n\r\n"))
        local line = c:receive("*l")
        assert.are.equal("HTTP/1.1 200 OK", line)
        local len
        for _ = 1, 50 do
          local h = c:receive("*l")
          if h == "" then break end
          len = len or tonumber(h:match("^Content%-Length: (%d+)"))
        end
        assert.is_table(cjson.decode((c:receive(len))))
      end
      c:close()
    end)

    it("bounds bodies and headers, refuses chunked bodies, honours Expect", function()
      local raw = raw_exchange("POST /droplit/v0/api/environments HTTP/1.1\r\nHost: x\r\n"
        .. "Content-Length: 2000000\r\n\r\n")
      assert.are.equal(413, (parse_raw(raw)))
      assert.are.equal(1, e:stats().requests)
      raw = raw_exchange("POST /droplit/v0/api/environments HTTP/1.1\r\nHost: x\r\n"
        .. "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
      assert.are.equal(411, (parse_raw(raw)))
      raw = raw_exchange("GET /_emulator/stats HTTP/1.1\r\nX-Big: " .. string.rep("a", 70000) .. "\r\n\r\n")
      assert.are.equal(431, (parse_raw(raw)))
      raw = raw_exchange("garbage\r\n\r\n")
      assert.are.equal(400, (parse_raw(raw)))
      local body = cjson.encode{ ecosystemId = DROPLIT_ECO, meta = { pad = string.rep("p", 2000) } }
      local c = socket.tcp()
      c:settimeout(5)
      assert(c:connect("127.0.0.1", e.port))
      assert(c:send("POST /droplit/v0/api/environments HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        .. "Authorization: emu-droplit-token\r\nContent-Type: application/json\r\n"
        .. "Expect: 100-continue\r\nContent-Length: " .. #body .. "\r\n\r\n"))
      assert.are.equal("HTTP/1.1 100 Continue", c:receive("*l"))
      assert.are.equal("", c:receive("*l"))
      assert(c:send(body))
      raw = c:receive("*a")
      c:close()
      assert.are.equal(201, (parse_raw(raw)))
    end)
  end)

  describe("control endpoints", function()
    it("counts requests, operations, applied changes and created names", function()
      versori_clone{ oldEnvName = "staging", newEnvName = "dev" }
      versori_clone{ oldEnvName = "staging", newEnvName = "dev" }          -- 409
      versori_clone({ oldEnvName = "staging", newEnvName = "x" }, {})     -- 401
      kontent_clone("Develop")
      droplit_create{ ecosystemId = DROPLIT_ECO, alias = "a1" }
      call("GET", e.base_urls.qovery .. "/nothing")                       -- 404, counted
      local s = e:stats()
      assert.are.equal(6, s.requests)
      assert.are.same({ ["versori.clone_environment"] = 3, ["kontent.clone_environment"] = 1,
        ["droplit.create_environment"] = 1 }, s.by_operation)
      assert.are.equal(3, s.applied.creates)
      assert.are.same({ ["versori.clone_environment"] = 1, ["kontent.clone_environment"] = 1,
        ["droplit.create_environment"] = 1 }, s.applied.by_operation)
      assert.are.same({ ["versori.clone_environment:dev"] = 1, ["kontent.clone_environment:Develop"] = 1,
        ["droplit.create_environment:a1"] = 1 }, s.created_names)
    end)

    it("logs the last 200 vendor requests", function()
      droplit_create({ ecosystemId = DROPLIT_ECO }, nil, "/?q=1")
      local log = e:requests()
      assert.are.equal(1, #log)
      local r = log[1]
      assert.are.equal("POST", r.method)
      assert.are.equal("/droplit/v0/api/environments/", r.path)
      assert.are.equal("q=1", r.query)
      assert.are.equal("emu-droplit-token", r.headers["authorization"])
      assert.are.equal("application/json", r.headers["content-type"])
      assert.are.same({ ecosystemId = DROPLIT_ECO }, cjson.decode(r.body))
      assert.are.equal("droplit.create_environment", r.operation)
      assert.are.equal(400, r.status)
      for _ = 1, 205 do call("GET", e.base_urls.kontent .. "/projects/" .. KONTENT_ENV, { headers = KONTENT_AUTH }) end
      log = e:requests()
      assert.are.equal(200, #log)
      assert.are.equal("kontent.get_environment", log[1].operation)
      assert.are.equal(206, e:stats().requests)
    end)

    it("resets state, counters, log and faults", function()
      local _, clone = kontent_clone("Gone")
      e:faults{ rules = { { operation = "*", rate = 1, kinds = { "503" } } } }
      e:config{ kontent_clone_seconds = 5 }
      e:reset()
      assert.are.equal(404, (kontent("GET", clone.id)))
      assert.are.equal(200, (kontent("GET", KONTENT_ENV)))
      local s = e:stats()
      assert.are.equal(2, s.requests)
      assert.are.equal(0, s.applied.creates)
      assert.are.equal(2, #e:requests())
      assert.are.equal(0.5, e:config{}.kontent_clone_seconds)
    end)

    it("validates config and fault plans", function()
      assert.are.equal(400, (e:request("PUT", "/_emulator/config", { body = { kontent_clone_outcome = "maybe" } })))
      assert.are.equal(400, (e:request("PUT", "/_emulator/faults", { body = { rules = { { kinds = { "boom" } } } } })))
      assert.are.equal(400, (e:request("PUT", "/_emulator/faults",
        { body = { rules = { { operation = "nope.op", rate = 1, kinds = { "429" } } } } })))
      assert.are.equal(400, (e:request("PUT", "/_emulator/faults", { body = { rules = { { rate = 2 } } } })))
      assert.are.equal(405, (e:request("GET", "/_emulator/reset")))
    end)
  end)

  describe("faults", function()
    it("429 from the queue: Retry-After, vendor body, nothing applied", function()
      e:faults{ rules = { { operation = "kontent.clone_environment", queue = { "429" }, retry_after = 2 } } }
      local status, body, headers = kontent_clone("Develop")
      assert.are.equal(429, status)
      assert.are.equal("2", headers["retry-after"])
      assert.are.equal(body.request_id, headers["x-request-id"])
      -- Kontent's documented rate-limit body (management-api-v2/api-limitations)
      assert.are.equal(10000, body.error_code)
      assert.are.equal("API rate limit exceeded. Please retry your request later.", body.message)
      local s = e:stats()
      assert.are.equal(0, s.applied.creates)
      assert.are.equal(1, s.requests)
      assert.are.equal("429", e:requests()[1].fault)
      -- the queue is used up: the next one goes through
      assert.are.equal(200, (kontent_clone("Develop")))
      assert.are.equal(1, e:stats().applied.creates)
    end)

    it("503 with each vendor's error body", function()
      e:faults{ rules = { { operation = "*", rate = 1, kinds = { "503" }, retry_after = 1 } } }
      local s1, b1, h1 = versori_clone{ oldEnvName = "staging", newEnvName = "dev" }
      assert.are.equal(503, s1)
      assert.are.equal("1", h1["retry-after"])
      assert.are.equal("service_unavailable", b1.code)
      local s2, b2 = qovery_clone{ name = "x", environment_id = QOVERY_ENV }
      assert.are.equal(503, s2)
      assert.are.same({ status = 503, detail = "service unavailable" }, b2)
      local s3, b3 = droplit_create{ ecosystemId = DROPLIT_ECO }
      assert.are.equal(503, s3)
      assert.is_string(b3.errors[1].type)
      assert.are.equal(0, e:stats().applied.creates)
    end)

    it("close_before: no answer, nothing applied", function()
      e:faults{ rules = { { operation = "versori.clone_environment", queue = { "close_before" } } } }
      local raw = versori_clone_raw("dev")
      assert.are.equal("", raw)
      assert.are.equal(0, e:stats().applied.creates)
      assert.are.equal(1, e:stats().requests)
    end)

    it("close_after: no answer, change applied", function()
      e:faults{ rules = { { operation = "versori.clone_environment", queue = { "close_after" } } } }
      local raw = versori_clone_raw("dev")
      assert.are.equal("", raw)
      local s = e:stats()
      assert.are.equal(1, s.applied.creates)
      assert.are.equal(1, s.created_names["versori.clone_environment:dev"])
      assert.are.equal("close_after", e:requests()[1].fault)
      -- a retry sees the environment already there
      assert.are.equal(409, (versori_clone{ oldEnvName = "staging", newEnvName = "dev" }))
    end)

    it("slow: applied, answered late, others not blocked", function()
      e:faults{ rules = { { operation = "versori.clone_environment", queue = { "slow" }, slow_seconds = 1 } } }
      local c = socket.tcp()
      c:settimeout(5)
      assert(c:connect("127.0.0.1", e.port))
      local body = cjson.encode{ oldEnvName = "staging", newEnvName = "dev" }
      local t0 = socket.gettime()
      assert(c:send("POST /versori/api/v2/o/" .. VERSORI_ORG .. "/projects/" .. VERSORI_PROJECT
        .. "/environments/clone HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        .. "Authorization: Bearer emu-versori-token\r\nContent-Type: application/json\r\n"
        .. "Content-Length: " .. #body .. "\r\n\r\n" .. body))
      socket.sleep(0.1)
      assert.are.equal(200, (kontent("GET", KONTENT_ENV)))
      assert.is_true(socket.gettime() - t0 < 0.8)
      local raw = c:receive("*a")
      c:close()
      local elapsed = socket.gettime() - t0
      assert.are.equal(200, (parse_raw(raw)))
      assert.is_true(elapsed >= 0.9, "answered after " .. elapsed)
      assert.are.equal(1, e:stats().applied.creates)
    end)

    it("truncated: full Content-Length, half the body", function()
      e:faults{ rules = { { operation = "versori.clone_environment", queue = { "truncated" } } } }
      local status, headers, body = parse_raw(versori_clone_raw("dev"))
      assert.are.equal(200, status)
      assert.is_true(#body < tonumber(headers["content-length"]))
      assert.is_true(#body > 0)
      assert.are.equal(1, e:stats().applied.creates)
    end)

    it("malformed: success status, invalid JSON", function()
      e:faults{ rules = { { operation = "droplit.create_environment", queue = { "malformed" } } } }
      local status, body, _, raw = droplit_create{ ecosystemId = DROPLIT_ECO, alias = "m1" }
      assert.are.equal(201, status)
      assert.is_nil(body)
      assert.matches("^{", raw)
      assert.are.equal(1, e:stats().applied.creates)
    end)

    it("picks faults reproducibly from the seed and only for matching operations", function()
      local function run()
        e:reset()
        e:faults{ seed = 7, rules = { { operation = "kontent.get_environment", rate = 0.5,
          kinds = { "429", "503" } } } }
        local statuses = {}
        for i = 1, 12 do statuses[i] = (kontent("GET", KONTENT_ENV)) end
        assert.are.equal(201, (droplit_create{ ecosystemId = DROPLIT_ECO }))
        return statuses
      end
      local a, b = run(), run()
      assert.are.same(a, b)
      local seen = {}
      for _, s in ipairs(a) do seen[s] = true end
      assert.is_true(seen[200] and (seen[429] or seen[503]) and true or false)
      e:clear_faults()
      assert.are.equal(200, (kontent("GET", KONTENT_ENV)))
    end)

    it("survives clients that hang up before the answer", function()
      e:faults{ rules = { { operation = "kontent.get_environment", queue = { "slow" }, slow_seconds = 0.3 } } }
      local c = socket.tcp()
      c:settimeout(5)
      assert(c:connect("127.0.0.1", e.port))
      assert(c:send("GET /kontent/v2/projects/" .. KONTENT_ENV .. " HTTP/1.1\r\nHost: x\r\n"
        .. "Authorization: Bearer emu-kontent-key\r\n\r\n"))
      socket.sleep(0.05)
      c:close()
      socket.sleep(0.5)
      assert.is_true(e:alive())
      assert.are.equal(1, e:stats().requests)
    end)

    it("delay does not serialise connections", function()
      e:faults{ delay = 1 }
      local socks = {}
      local t0 = socket.gettime()
      for i = 1, 5 do
        local c = socket.tcp()
        c:settimeout(5)
        assert(c:connect("127.0.0.1", e.port))
        assert(c:send("GET /kontent/v2/projects/" .. KONTENT_ENV .. " HTTP/1.1\r\nHost: x\r\n"
          .. "Authorization: Bearer emu-kontent-key\r\nConnection: close\r\n\r\n"))
        socks[i] = c
      end
      for _, c in ipairs(socks) do
        local raw = c:receive("*a")
        c:close()
        assert.are.equal(200, (parse_raw(raw)))
      end
      local elapsed = socket.gettime() - t0
      assert.is_true(elapsed >= 0.9 and elapsed < 3, "took " .. elapsed)
    end)
  end)
end)
