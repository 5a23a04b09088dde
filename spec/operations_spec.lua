-- The ten operations end to end against the emulator: success, each
-- validation rule (and that nothing was sent), each vendor error.
local envclone = require("envclone")
local emu = require("spec.support.emu")
local cjson = require("cjson.safe")

local e, seed, creds

local function requests() return e:stats().requests end

-- Asserts a validation failure naming `field`, and that no request left.
local function rejects(field, fn)
  local before = requests()
  local res, err = fn()
  assert.is_nil(res)
  assert.is_true(envclone.is_error(err), "expected an error object, got " .. tostring(err))
  assert.are.equal("validation", err.kind, tostring(err))
  assert.are.equal(field, err.field, tostring(err))
  assert.are.equal(before, requests(), "a rejected call must send nothing")
  return err
end

local function last_request()
  local log = e:requests()
  return log[#log]
end

local function client(vendor, extra) return e:client(vendor, extra, { retry = false }) end

setup(function()
  e = emu.start{ kontent_clone_seconds = 0.5 }
  seed, creds = e.seed, e.credentials
end)

teardown(function()
  if e then e:stop() end
end)

before_each(function() e:reset() end)

describe("versori", function()
  local function args(extra)
    local a = { organisation_id = seed.versori.organisation_id, project_id = seed.versori.project_id,
      oldEnvName = "production", newEnvName = "dev-1" }
    for k, v in pairs(extra or {}) do a[k] = v end
    return a
  end

  it("clones an environment with Bearer auth and the exact JSON body", function()
    local v = client("versori")
    local project = assert(v:clone_environment(args{ cloneSystems = true, copyStaticUserVariables = false }))
    local names = {}
    for _, env in ipairs(project.environments) do names[env.name] = env end
    assert.is_truthy(names["dev-1"], "the clone is in the project")
    local req = last_request()
    assert.are.equal("POST", req.method)
    assert.are.equal("/versori/api/v2/o/" .. seed.versori.organisation_id .. "/projects/"
      .. seed.versori.project_id .. "/environments/clone", req.path)
    assert.are.equal("Bearer " .. creds.versori.token, req.headers.authorization)
    assert.are.equal("application/json", req.headers["content-type"])
    assert.are.equal("application/json", req.headers.accept)
    assert.are.equal('{"oldEnvName":"production","newEnvName":"dev-1","cloneSystems":true,'
      .. '"copyStaticUserVariables":false}', req.body)
  end)

  it("leaves optional fields out", function()
    assert(client("versori"):clone_environment(args()))
    assert.are.equal('{"oldEnvName":"production","newEnvName":"dev-1"}', last_request().body)
  end)

  it("validates before sending", function()
    local v = client("versori")
    rejects("organisation_id", function() return v:clone_environment(args{ organisation_id = "not-a-ulid" }) end)
    rejects("project_id", function() return v:clone_environment(args{ project_id = "8ZHZY8K2V6Q4N3M5T7W9X0EFGH" }) end)
    rejects("oldEnvName", function() return v:clone_environment(args{ oldEnvName = 42 }) end)
    rejects("newEnvName", function() return v:clone_environment(args{ newEnvName = "" }) end)
    rejects("cloneSystems", function() return v:clone_environment(args{ cloneSystems = "yes" }) end)
    rejects("executionPool", function() return v:clone_environment(args{ executionPool = { "a" } }) end)
    local err = rejects("newEnvNmae", function() return v:clone_environment(args{ newEnvNmae = "x" }) end)
    assert.matches("did you mean 'newEnvName'", err.message, 1, true)
    local a = args()
    a.project_id = nil
    rejects("project_id", function() return v:clone_environment(a) end)
    rejects("(arguments)", function() return v:clone_environment("dev") end)
  end)

  it("needs the token and says so", function()
    local v = client("versori", { token = emu.OMIT })
    rejects("token", function() return v:clone_environment(args()) end)
  end)

  it("returns Versori's error for a duplicate environment", function()
    local v = client("versori")
    local res, err = v:clone_environment(args{ newEnvName = "staging" })
    assert.is_nil(res)
    assert.are.equal("http", err.kind)
    assert.are.equal(409, err.status)
    assert.are.equal("environment_exists", err.code)
    assert.is_false(err.maybe_applied)
  end)

  it("reports a wrong token as 401", function()
    local v = client("versori", { token = "wrong-token-value" })
    local _, err = v:clone_environment(args())
    assert.are.equal(401, err.status)
    assert.is_nil(tostring(err):find("wrong-token-value", 1, true))
  end)

  describe("create_connection_version", function()
    local function cargs(extra)
      local a = { organisation_id = seed.versori.organisation_id, connection_id = seed.versori.connection_id,
        name = "v2" }
      for k, v in pairs(extra or {}) do a[k] = v end
      return a
    end

    it("creates a version on the Connect API with the bearer token, preferred over the cookie", function()
      local v = client("versori")
      assert(v:create_connection_version(cargs{ name = "v2b" }))
      local req = last_request()
      assert.are.equal("Bearer " .. creds.versori.token, req.headers.authorization)
      assert.is_nil(req.headers.cookie)
    end)

    it("sends a Connect API call to connect_base_url, and derives it from base_url when only that is set",
      function()
      local srv = require("spec.support.hostile").start()
      local ok, err = pcall(function()
        local path = "/o/" .. seed.versori.organisation_id .. "/connections/" .. seed.versori.connection_id
          .. "/versions"
        -- a connect_base_url of its own wins
        local v = envclone.versori{ cookie = creds.versori.cookie, base_url = srv.url .. "/p/api/v2",
          connect_base_url = srv.url .. "/elsewhere/connect/v1alpha1/", retry = false }
        assert(v:create_connection_version(cargs{ name = "v3" }))
        assert.are.equal("/elsewhere/connect/v1alpha1" .. path, srv:stats().last_path)
        -- base_url alone: the Connect API is its sibling ../connect/v1alpha1
        v = envclone.versori{ token = creds.versori.token, base_url = srv.url .. "/x/api/v2/", retry = false }
        assert(v:create_connection_version(cargs{ name = "v3" }))
        assert.are.equal("/x/api/connect/v1alpha1" .. path, srv:stats().last_path)
        -- the platform API stays on base_url
        assert(v:clone_environment{ organisation_id = seed.versori.organisation_id,
          project_id = seed.versori.project_id, oldEnvName = "a", newEnvName = "b" })
        assert.matches("^/x/api/v2/o/", srv:stats().last_path)
      end)
      srv:stop()
      assert(ok, err)
      -- with neither set, the vendor's own Connect API root
      assert.are.equal("https://platform.versori.com/api/connect/v1alpha1",
        require("envclone.core").vendors.versori.bases.connect.url)
    end)

    it("creates a version with cookie auth when the client holds no token", function()
      local v = client("versori", { token = emu.OMIT })
      local version = assert(v:create_connection_version(cargs{ fromVersion = "v1" }))
      assert.are.equal("v2", version.name)
      assert.is_true(version.isLatest)
      assert.are.equal(envclone.null, version.publishedAt)
      local req = last_request()
      assert.are.equal(creds.versori.cookie, req.headers.cookie)
      assert.is_nil(req.headers.authorization)
      assert.are.equal('{"name":"v2","fromVersion":"v1"}', req.body)
    end)

    it("refuses the reserved names before sending", function()
      local v = client("versori")
      rejects("name", function() return v:create_connection_version(cargs{ name = "default" }) end)
      local err = rejects("name", function() return v:create_connection_version(cargs{ name = "latest" }) end)
      assert.matches("reserved", err.message)
    end)

    it("needs the token or the cookie", function()
      local v = client("versori", { cookie = emu.OMIT, token = emu.OMIT })
      rejects("token", function() return v:create_connection_version(cargs()) end)
    end)

    it("percent-encodes the connection id so it cannot change the path", function()
      local v = client("versori")
      local _, err = v:create_connection_version(cargs{ connection_id = "../../projects?x=1#y" })
      assert.are.equal(404, err.status)
      assert.are.equal("/versori/api/connect/v1alpha1/o/" .. seed.versori.organisation_id
        .. "/connections/..%2F..%2Fprojects%3Fx%3D1%23y/versions", last_request().path)
      rejects("connection_id", function() return v:create_connection_version(cargs{ connection_id = ".." }) end)
    end)

    it("returns Versori's error for a duplicate version", function()
      local v = client("versori")
      local _, err = v:create_connection_version(cargs{ name = "v1" })
      assert.are.equal(409, err.status)
      assert.are.equal("version_exists", err.code)
    end)
  end)
end)

describe("qovery", function()
  local function args(extra)
    local a = { applicationId = seed.qovery.application_id, name = "web-copy",
      environment_id = seed.qovery.environment_id }
    for k, v in pairs(extra or {}) do a[k] = v end
    return a
  end

  it("clones an application", function()
    local app = assert(client("qovery"):clone_application(args()))
    assert.are.equal("web-copy", app.name)
    assert.are.equal(seed.qovery.environment_id, app.environment.id)
    local req = last_request()
    assert.are.equal("/qovery/application/" .. seed.qovery.application_id .. "/clone", req.path)
    -- an API token (not a JWT) goes out as "Token", Qovery's ApiKeyAuth scheme
    assert.are.equal("Token " .. creds.qovery.token, req.headers.authorization)
    assert.are.equal('{"name":"web-copy","environment_id":"' .. seed.qovery.environment_id .. '"}', req.body)
  end)

  it("sends a JWT as Bearer, and token_type overrides the choice", function()
    local jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    client("qovery", { token = jwt }):clone_application(args{ name = "jwt-copy" })
    assert.are.equal("Bearer " .. jwt, last_request().headers.authorization)
    client("qovery", { token_type = "Bearer" }):clone_application(args{ name = "bearer-copy" })
    assert.are.equal("Bearer " .. creds.qovery.token, last_request().headers.authorization)
    client("qovery", { token = jwt, token_type = "Token" }):clone_application(args{ name = "token-copy" })
    assert.are.equal("Token " .. jwt, last_request().headers.authorization)
    assert.has_error(function() envclone.qovery{ token = creds.qovery.token, token_type = "Basic" } end,
      'envclone.qovery: option \'token_type\' must be "Token" or "Bearer"')
  end)

  it("validates UUIDs and names before sending", function()
    local q = client("qovery")
    rejects("applicationId", function() return q:clone_application(args{ applicationId = "web" }) end)
    rejects("environment_id", function() return q:clone_application(args{ environment_id = "env-1" }) end)
    rejects("name", function() return q:clone_application(args{ name = true }) end)
    rejects("name", function() return q:clone_application(args{ name = ("n"):rep(1025) }) end)
  end)

  it("parses Qovery's error body", function()
    local _, err = client("qovery"):clone_application(args{ applicationId = "00000000-0000-4000-8000-000000000000" })
    assert.are.equal(404, err.status)
    assert.are.equal("not_found", err.reason)
    assert.matches("not found", err.message, 1, true)   -- Qovery's {status, detail}
    assert.is_table(err.body)
  end)
end)

describe("kontent", function()
  local env_id

  before_each(function() env_id = seed.kontent.environment_id end)

  it("clones, reports progress, reads back, renames and deletes", function()
    local k = client("kontent")
    local clone = assert(k:clone_environment{ environment_id = env_id, name = "Develop",
      roles_to_activate = { seed.kontent.role_id },
      copy_data_options = { content_items_assets = true, content_item_version_history = false } })
    assert.is_string(clone.id)
    local req = last_request()
    assert.are.equal("Bearer " .. creds.kontent.api_key, req.headers.authorization)
    assert.are.equal('{"name":"Develop","roles_to_activate":["' .. seed.kontent.role_id .. '"],'
      .. '"copy_data_options":{"content_items_assets":true,"content_item_version_history":false}}', req.body)

    assert.are.equal("in_progress", assert(k:get_cloning_state{ environment_id = clone.id }).cloning_state)
    local info = assert(k:get_environment{ environment_id = clone.id })
    assert.are.equal("Develop", info.environment)
    assert.is_false(info.is_production)

    local renamed = assert(k:rename_environment{ environment_id = clone.id, name = "QA" })
    assert.are.equal("QA", renamed.environment)
    assert.are.equal('[{"op":"rename_environment","value":"QA"}]', last_request().body)
    assert.are.equal("PATCH", last_request().method)

    assert.is_true(k:delete_environment{ environment_id = clone.id }.deleted)
    assert.are.equal("DELETE", last_request().method)
    local _, err = k:get_environment{ environment_id = clone.id }
    assert.are.equal(404, err.status)
  end)

  it("sends an empty roles list as [] and an empty options object as {}", function()
    local k = client("kontent")
    assert(k:clone_environment{ environment_id = env_id, name = "E", roles_to_activate = {}, copy_data_options = {} })
    assert.are.equal('{"name":"E","roles_to_activate":[],"copy_data_options":{}}', last_request().body)
  end)

  it("waits until the clone is done", function()
    local k = client("kontent")
    local clone = assert(k:clone_environment{ environment_id = env_id, name = "Waited" })
    local polls = 0
    local state = assert(k:wait_for_cloning{ environment_id = clone.id, timeout = 10, interval = 0.1,
      on_progress = function() polls = polls + 1 end })
    assert.are.equal("done", state.cloning_state)
    assert.is_true(polls >= 1)
  end)

  it("marks production, and Kontent's errors 232 and 233 come through", function()
    local k = client("kontent")
    local clone = assert(k:clone_environment{ environment_id = env_id, name = "Next prod" })
    assert.is_true(k:mark_environment_as_production{ environment_id = clone.id, enable_webhooks = false })
    assert.are.equal('{"enable_webhooks":false}', last_request().body)
    assert.are.equal("PUT", last_request().method)
    local res, err = k:mark_environment_as_production{ environment_id = clone.id, enable_webhooks = true }
    assert.is_nil(res)
    assert.are.equal(400, err.status)
    assert.are.equal(232, err.code)
    assert.are.equal("already_production", err.reason)
    assert.matches("already marked as production", err.message)
    assert.is_string(err.request_id)
    assert.matches("request_id " .. err.request_id, tostring(err), 1, true)
    local _, derr = k:delete_environment{ environment_id = clone.id }
    assert.are.equal(233, derr.code)
    assert.are.equal("production_not_deletable", derr.reason)
    -- the swap made the old production deletable
    assert.is_true(k:delete_environment{ environment_id = env_id }.deleted)
  end)

  it("validates names, ids, roles and options before sending", function()
    local k = client("kontent")
    rejects("environment_id", function() return k:get_environment{ environment_id = "8d20758c" } end)
    rejects("environment_id", function() return k:get_cloning_state{} end)
    rejects("name", function() return k:clone_environment{ environment_id = env_id, name = "" } end)
    rejects("name", function() return k:clone_environment{ environment_id = env_id, name = ("x"):rep(201) } end)
    assert(k:clone_environment{ environment_id = env_id, name = ("é"):rep(200) })
    rejects("name", function() return k:rename_environment{ environment_id = env_id, name = ("x"):rep(201) } end)
    rejects("roles_to_activate", function()
      return k:clone_environment{ environment_id = env_id, name = "x", roles_to_activate = "admin" } end)
    rejects("roles_to_activate[1]", function()
      return k:clone_environment{ environment_id = env_id, name = "x", roles_to_activate = { "admin" } } end)
    rejects("roles_to_activate", function()
      return k:clone_environment{ environment_id = env_id, name = "x",
        roles_to_activate = { a = seed.kontent.role_id } } end)
    rejects("copy_data_options.content_items_assets", function()
      return k:clone_environment{ environment_id = env_id, name = "x",
        copy_data_options = { content_items_assets = "yes" } } end)
    rejects("copy_data_options.assets", function()
      return k:clone_environment{ environment_id = env_id, name = "x", copy_data_options = { assets = true } } end)
    rejects("enable_webhooks", function()
      return k:mark_environment_as_production{ environment_id = env_id, enable_webhooks = 1 } end)
  end)

  it("a wrong key gives Kontent's 401", function()
    local _, err = client("kontent", { api_key = "wrong-key-value" }):get_environment{ environment_id = env_id }
    assert.are.equal(401, err.status)
    assert.is_number(err.code)
  end)
end)

describe("droplit", function()
  it("creates an environment with the raw authorization header", function()
    local d = client("droplit")
    local env = assert(d:create_environment{ ecosystemId = seed.droplit.ecosystem_id, alias = "blue",
      meta = {}, metadata_prefix = "$." })
    assert.are.equal(seed.droplit.ecosystem_id, env.ecosystemId)
    assert.is_string(env.id)
    local req = last_request()
    assert.are.equal("/droplit/v0/api/environments/", req.path)
    assert.are.equal(creds.droplit.token, req.headers.authorization)
    assert.are.equal("$.", req.headers["x-system-metadata-prefix"])
    assert.are.equal('{"ecosystemId":"' .. seed.droplit.ecosystem_id .. '","meta":{},"alias":"blue"}', req.body)
  end)

  it("keeps meta's types", function()
    local d = client("droplit")
    local env = assert(d:create_environment{ ecosystemId = seed.droplit.ecosystem_id,
      meta = { n = 3, f = 1.5, b = false, s = "x", list = envclone.array{}, nested = { k = { "a" } } } })
    assert.are.equal(3, env.meta.n)
    assert.are.equal(1.5, env.meta.f)
    assert.is_false(env.meta.b)
    local body = cjson.decode(last_request().body)
    assert.are.equal("x", body.meta.s)
    assert.matches('"list":%[%]', last_request().body)
  end)

  it("returns Droplit's standard error for a duplicate alias", function()
    local d = client("droplit")
    assert(d:create_environment{ ecosystemId = seed.droplit.ecosystem_id, alias = "dup" })
    local res, err = d:create_environment{ ecosystemId = seed.droplit.ecosystem_id, alias = "dup" }
    assert.is_nil(res)
    assert.are.equal(400, err.status)
    assert.are.equal("Alias Exists", err.code)
    local _, missing = d:create_environment{ ecosystemId = "nope" }
    assert.are.equal(404, missing.status)
  end)

  it("validates before sending", function()
    local d = client("droplit")
    rejects("ecosystemId", function() return d:create_environment{} end)
    rejects("meta", function() return d:create_environment{ ecosystemId = "e", meta = { 1, 2 } } end)
    rejects("meta", function() return d:create_environment{ ecosystemId = "e", meta = "x" } end)
    rejects("meta.x", function() return d:create_environment{ ecosystemId = "e", meta = { x = math.huge } } end)
    rejects("alias", function() return d:create_environment{ ecosystemId = "e", alias = 7 } end)
    rejects("metadata_prefix", function()
      return d:create_environment{ ecosystemId = "e", metadata_prefix = "x\r\nInjected: 1" } end)
  end)
end)

describe("errors and secrets", function()
  it("never show a credential", function()
    local secret = "top-secret-token-" .. ("z"):rep(8)
    local d = client("droplit", { token = secret })
    assert.is_nil(tostring(d):find(secret, 1, true))
    assert.matches("token=***", tostring(d), 1, true)
    local _, err = d:create_environment{ ecosystemId = seed.droplit.ecosystem_id }
    assert.are.equal(401, err.status)
    local line = tostring(err)
    assert.is_nil(line:find(secret, 1, true))
    assert.is_nil(line:find("\n"))
  end)

  it("a closed client raises a clear error", function()
    local k = client("kontent")
    k:close()
    assert.matches("closed", tostring(k))
    assert.has_error(function() k:get_environment{ environment_id = seed.kontent.environment_id } end,
      "envclone: the kontent client is closed")
    -- the error points at the caller's line, not into envclone
    local _, msg = pcall(function()
      local r = k:get_environment{ environment_id = seed.kontent.environment_id }
      return r
    end)
    assert.matches("^spec/operations_spec%.lua:%d+: envclone: the kontent client is closed$", msg)
  end)

  it("constructors reject bad options loudly", function()
    assert.has_error(function() envclone.kontent{ api_key = "k-123456", tiemout = 3 } end)
    assert.has_error(function() envclone.kontent{ api_key = "k-123456", base_url = "ftp://x" } end)
    assert.has_error(function() envclone.kontent{ api_key = "a\r\nb" } end)
    assert.has_error(function() envclone.kontent("key") end)
    assert.has_error(function()
      envclone.kontent{ api_key = "k-123456", base_url = "https://user:pw@manage.kontent.ai/v2" } end,
      "envclone.kontent: base_url must not contain user information (user:password@); pass credentials as options")
    assert.is_truthy(envclone.kontent{ api_key = "k-123456", base_url = "https://h/v2/@scope" })
  end)

  it("a connection refused is a transport error that was not sent", function()
    local k = envclone.kontent{ api_key = "k-123456", base_url = "http://127.0.0.1:9", retry = false,
      connect_timeout = 2 }
    local _, err = k:get_environment{ environment_id = seed.kontent.environment_id }
    assert.are.equal("transport", err.kind)
    assert.are.equal("connect", err.code)
    assert.is_false(err.sent)
    assert.is_false(err.maybe_applied)
  end)
end)

describe("the read and teardown rows, once each, through the client", function()
  -- the last `n` requests' operation names, oldest first
  local function last_ops(n)
    local log, out = e:requests(), {}
    for i = #log - n + 1, #log do out[#out + 1] = log[i].operation end
    return out
  end

  describe("versori", function()
    local org, project, conn

    before_each(function()
      org, project, conn = seed.versori.organisation_id, seed.versori.project_id, seed.versori.connection_id
    end)

    it("get_project reads the project and its environments", function()
      local p = assert(client("versori"):get_project{ organisation_id = org, project_id = project })
      assert.are.equal(project, p.id)
      local names = {}
      for _, env in ipairs(p.environments) do names[#names + 1] = env.name end
      assert.are.same(seed.versori.environments, names)
      local req = last_request()
      assert.are.same({ "GET", "/versori/api/v2/o/" .. org .. "/projects/" .. project },
        { req.method, req.path })
      assert.are.equal("Bearer " .. creds.versori.token, req.headers.authorization)
    end)

    it("delete_environment removes a clone by its ULID; a second delete is already_gone", function()
      local v = client("versori")
      local cloned = assert(v:clone_environment{ organisation_id = org, project_id = project,
        oldEnvName = "staging", newEnvName = "pr-19" })
      local id
      for _, env in ipairs(cloned.environments) do if env.name == "pr-19" then id = env.id end end
      assert.is_string(id)
      local args = { organisation_id = org, project_id = project, environment_id = id }
      local res = assert(v:delete_environment(args))
      assert.is_true(res.deleted)
      assert.is_nil(res.already_gone)
      assert.are.equal(project, res.answer.id) -- the answer is the project, without it
      for _, env in ipairs(res.answer.environments) do assert.are_not.equal(id, env.id) end
      local req = last_request()
      assert.are.same({ "POST", "/versori/api/v2/o/" .. org .. "/projects/" .. project .. "/environments/" .. id },
        { req.method, req.path })
      local again = assert(v:delete_environment(args))
      assert.are.same({ true, true }, { again.deleted, again.already_gone })
      local p = assert(v:get_project{ organisation_id = org, project_id = project })
      assert.are.equal(#seed.versori.environments, #p.environments)
      -- a name where the ULID goes: refused, nothing sent
      rejects("environment_id", function()
        return v:delete_environment{ organisation_id = org, project_id = project, environment_id = "clone" }
      end)
    end)

    it("connection versions: get, list page by page, delete (force for a published one)", function()
      local v = client("versori")
      local function at(extra)
        local a = { organisation_id = org, connection_id = conn }
        for k, x in pairs(extra or {}) do a[k] = x end
        return a
      end
      assert(v:create_connection_version(at{ name = "v2" }))
      local got = assert(v:get_connection_version(at{ version = "v2" }))
      assert.are.equal("v2", got.name)
      assert.are.equal("/versori/api/connect/v1alpha1/o/" .. org .. "/connections/" .. conn .. "/versions/v2",
        last_request().path)
      -- one version a page, following pageInfo.next (bounded: 10 pages)
      local names, after = {}, nil
      for _ = 1, 10 do
        local page = assert(v:list_connection_versions(at{ first = 1, after = after }))
        assert.are.equal("first=1" .. (after and "&after=" .. after or ""), last_request().query)
        for _, item in ipairs(page.items) do names[#names + 1] = item.name end
        after = page.pageInfo.next
        if type(after) ~= "string" then break end
      end
      assert.are.same({ seed.versori.version, "v2" }, names)

      -- the seed's version is published: refused without force, once (never retried)
      local retrying = e:client("versori")
      local before = requests()
      local res, err = retrying:delete_connection_version(at{ version = seed.versori.version })
      assert.is_nil(res)
      assert.are.same({ "http", 409, "published" }, { err.kind, err.status, err.reason }, tostring(err))
      assert.are.equal(before + 1, requests(), "a refused delete is not retried")
      local forced = assert(retrying:delete_connection_version(at{ version = seed.versori.version, force = true }))
      assert.are.same({ true }, { forced.deleted, forced.already_gone })
      assert.are.same({ "DELETE", "force=true" }, { last_request().method, last_request().query })
      local _, gone = v:get_connection_version(at{ version = seed.versori.version })
      assert.are.equal("not_found", gone.reason)
      -- a draft needs no force; the second delete finds it gone
      assert.is_true(assert(v:delete_connection_version(at{ version = "v2" })).deleted)
      local again = assert(v:delete_connection_version(at{ version = "v2" }))
      assert.is_true(again.already_gone)
      rejects("version", function() return v:delete_connection_version(at{ version = "latest", force = true }) end)
    end)
  end)

  describe("qovery", function()
    it("get_application, get_application_status and list_applications read the seed application", function()
      local q = client("qovery")
      local app_id, env_id = seed.qovery.application_id, seed.qovery.environment_id
      local app = assert(q:get_application{ applicationId = app_id })
      assert.are.same({ app_id, seed.qovery.application_name }, { app.id, app.name })
      assert.are.equal("/qovery/application/" .. app_id, last_request().path)
      local status = assert(q:get_application_status{ applicationId = app_id })
      assert.are.same({ app_id, "DEPLOYED" }, { status.id, status.state })
      assert.are.equal("/qovery/application/" .. app_id .. "/status", last_request().path)
      local list = assert(q:list_applications{ environmentId = env_id })
      assert.are.equal(1, #list.results)
      assert.are.equal(app_id, list.results[1].id)
      assert.are.equal("/qovery/environment/" .. env_id .. "/application", last_request().path)
      local _, err = q:get_application{ applicationId = "00000000-0000-4000-8000-000000000000" }
      assert.are.same({ 404, "not_found" }, { err.status, err.reason })
    end)

    it("delete_application with wait = true returns at DELETED; a second delete is already_gone", function()
      e:config{ qovery_delete_seconds = 0.1 }
      local q = client("qovery")
      local app = assert(q:clone_application{ applicationId = seed.qovery.application_id, name = "pr-19",
        environment_id = seed.qovery.environment_id })
      local before = requests()
      local res, state = q:delete_application{ applicationId = app.id, wait = true, wait_interval = 0.05 }
      assert.is_table(res, tostring(state))
      assert.is_true(res.deleted)
      assert.is_nil(res.already_gone)
      assert.are.equal("DELETED", res.state.state)
      assert.are.equal("DELETED", state.state)
      -- the DELETE, then status polls until DELETED or 404
      local ops = last_ops(requests() - before)
      assert.are.equal("qovery.delete_application", ops[1])
      assert.is_true(#ops >= 2)
      for i = 2, #ops do assert.are.equal("qovery.get_application_status", ops[i]) end
      -- DELETED is final; the application then leaves the list (a 404): 2 s at most
      local err
      for _ = 1, 40 do
        local found
        found, err = q:get_application{ applicationId = app.id }
        if not found then break end
        require("socket").sleep(0.05)
      end
      assert.are.equal("not_found", err and err.reason)
      local again = assert(q:delete_application{ applicationId = app.id, wait = true, wait_interval = 0.05 })
      assert.are.same({ true, true }, { again.deleted, again.already_gone })
      assert.are.equal("qovery.delete_application", last_request().operation) -- nothing to wait for
      local list = assert(q:list_applications{ environmentId = seed.qovery.environment_id })
      assert.are.equal(1, #list.results)
    end)
  end)

  describe("kontent", function()
    it("list_subscription_projects pages through every project by continuation", function()
      local k = client("kontent")
      local names, token, pages = {}, nil, 0
      for _ = 1, 10 do
        local page = assert(k:list_subscription_projects{ subscription_id = seed.kontent.subscription_id,
          continuation = token })
        pages = pages + 1
        local req = last_request()
        assert.are.equal("Bearer " .. creds.kontent.subscription_api_key, req.headers.authorization)
        assert.are.equal(token, req.headers["x-continuation"])
        for _, p in ipairs(page.projects) do names[#names + 1] = p.name end
        token = page.pagination.continuation_token
        if type(token) ~= "string" then break end
      end
      local want = {}
      for _, p in ipairs(seed.kontent.projects) do want[#want + 1] = p.name end
      assert.are.same(want, names)
      assert.is_true(pages >= 2, "the seed's projects take more than one page")
      -- without the subscription key the call cannot be made, and nothing is sent
      local plain = client("kontent", { subscription_api_key = emu.OMIT })
      local before = requests()
      local res, err = plain:list_subscription_projects{ subscription_id = seed.kontent.subscription_id }
      assert.is_nil(res)
      assert.is_truthy(tostring(err):find("subscription_api_key", 1, true), tostring(err))
      assert.are.equal(before, requests())
    end)

    it("delete_environment: a clone goes, then already_gone; production is refused, never retried", function()
      local k = client("kontent")
      local clone = assert(k:clone_environment{ environment_id = seed.kontent.environment_id, name = "PR 19" })
      local res = assert(k:delete_environment{ environment_id = clone.id })
      assert.are.same({ true }, { res.deleted, res.already_gone })
      local again = assert(k:delete_environment{ environment_id = clone.id })
      assert.are.same({ true, true }, { again.deleted, again.already_gone })
      local retrying = e:client("kontent")
      local before = requests()
      local gone, err = retrying:delete_environment{ environment_id = seed.kontent.environment_id }
      assert.is_nil(gone)
      assert.are.same({ "http", 400, 233, "production_not_deletable" },
        { err.kind, err.status, err.code, err.reason }, tostring(err))
      assert.are.equal(before + 1, requests(), "a refused delete is not retried")
      assert(k:get_environment{ environment_id = seed.kontent.environment_id })
    end)
  end)

  describe("droplit", function()
    local eco

    before_each(function() eco = seed.droplit.ecosystem_id end)

    it("get_environment by id and by ecosystemId and alias", function()
      local d = client("droplit")
      local env = assert(d:create_environment{ ecosystemId = eco, alias = "pr_19" })
      local by_id = assert(d:get_environment{ id = env.id })
      assert.are.same({ env.id, eco }, { by_id.id, by_id.ecosystemId })
      assert.are.equal("/droplit/v0/api/environments/" .. env.id, last_request().path)
      local by_alias = assert(d:get_environment{ ecosystemId = eco, alias = "pr_19" })
      assert.are.equal(env.id, by_alias.id)
      assert.are.equal("/droplit/v0/api/environments/" .. eco .. ";pr_19", last_request().path)
      local _, err = d:get_environment{ ecosystemId = seed.droplit.other_ecosystem_id, alias = "pr_19" }
      assert.are.same({ 404, "not_found" }, { err.status, err.reason })
      rejects("id", function() return d:get_environment{ ecosystemId = eco } end)
    end)

    it("delete_environment by id and by alias; a second delete is already_gone", function()
      local d = client("droplit")
      local a = assert(d:create_environment{ ecosystemId = eco, alias = "del_a" })
      local b = assert(d:create_environment{ ecosystemId = eco, alias = "del_b" })
      local res = assert(d:delete_environment{ ecosystemId = eco, alias = "del_a" })
      assert.are.same({ true }, { res.deleted, res.already_gone })
      assert.are.same({ "DELETE", "/droplit/v0/api/environments/" .. eco .. ";del_a" },
        { last_request().method, last_request().path })
      local _, err = d:get_environment{ id = a.id }
      assert.are.equal("not_found", err.reason)
      assert.is_true(assert(d:delete_environment{ ecosystemId = eco, alias = "del_a" }).already_gone)
      res = assert(d:delete_environment{ id = b.id })
      assert.are.same({ true }, { res.deleted, res.already_gone })
      assert.are.equal("/droplit/v0/api/environments/" .. b.id, last_request().path)
      assert.is_true(assert(d:delete_environment{ id = b.id }).already_gone)
      assert.are.equal(0, e:control("GET", "objects").droplit.ecosystems[eco].count)
    end)
  end)
end)
