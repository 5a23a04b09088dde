-- Specs of the emulator's reads, deletes, "applied, then lost" faults and object counts,
-- talking raw HTTP (luasocket) to a spawned emulator: never envclone's client.
-- Run from the repository root: lua5.4 /usr/bin/busted spec/emulator_lifecycle_spec.lua

local socket = require("socket")
local cjson = require("cjson.safe")
local emu = require("spec.support.emu")

local ORG = "01HZY8K2V6Q4N3M5T7W9X0ABCD"
local PROJECT = "01HZY8K2V6Q4N3M5T7W9X0EFGH"
local CONN = "01HZY8K2V6Q4N3M5T7W9X0JKMN"
local QOVERY_APP = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
local QOVERY_ENV = "5b1c2e9a-3f4d-4e6a-9b8c-7d6e5f4a3b2c"
local KONTENT_ENV = "8d20758c-d74c-4f59-ae04-ee928c0816b7"
local ECO = "E5cdeSeedEcosystem01"
local ECO2 = "E5cdeSeedEcosystem02"
local SUBSCRIPTION = "0f6b2c1e-7a4d-4e8b-9c3f-5d2a1b8e6c40"

local VERSORI_AUTH = { authorization = "Bearer emu-versori-token" }
local QOVERY_AUTH = { authorization = "Token emu-qovery-token" }
local KONTENT_AUTH = { authorization = "Bearer emu-kontent-key" }
local DROPLIT_AUTH = { authorization = "emu-droplit-token" }

local e

-- One request; returns status, decoded JSON (or nil), headers, raw body. Raises on a
-- transport failure unless `may_fail` (then nil, error).
local function call(method, path, opts, may_fail)
  opts = opts or {}
  local status, body, headers = e:request(method, path, opts)
  if not status then
    if may_fail then return nil, body end
    error("transport failure: " .. tostring(body), 2)
  end
  return status, cjson.decode(body), headers, body
end

-- Sends one request on a new connection with the target exactly as given (socket.url would
-- take `;` apart); returns status, decoded JSON, raw body.
local function raw(method, target, headers)
  local c = socket.tcp()
  c:settimeout(5)
  assert(c:connect("127.0.0.1", e.port))
  local lines = { method .. " " .. target .. " HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
    "Content-Length: 0" }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n"))
  local chunks = {}
  for _ = 1, 1000 do
    local d, err, partial = c:receive(8192)
    chunks[#chunks + 1] = d or partial
    if not d then assert(err == "closed", err) break end
  end
  c:close()
  local text = table.concat(chunks)
  local status = tonumber(text:match("^HTTP/1%.1 (%d+)"))
  local body = text:match("\r\n\r\n(.*)$") or ""
  return status, cjson.decode(body), body
end

local function objects() return e:control("GET", "objects") end

local BASE_DROPLIT = "/droplit/v0/api/environments/"

local V2 = "/versori/api/v2/o/" .. ORG .. "/projects/" .. PROJECT
local CONNECT = "/versori/api/connect/v1alpha1/o/" .. ORG .. "/connections/" .. CONN .. "/versions"

local function versori_clone(name)
  return call("POST", V2 .. "/environments/clone",
    { body = { oldEnvName = "staging", newEnvName = name }, headers = VERSORI_AUTH }, true)
end

local function create_version(name)
  return call("POST", CONNECT, { body = { name = name }, headers = VERSORI_AUTH }, true)
end

local function qovery_clone(name)
  return call("POST", "/qovery/application/" .. QOVERY_APP .. "/clone",
    { body = { name = name, environment_id = QOVERY_ENV }, headers = QOVERY_AUTH }, true)
end

local function kontent_clone(name)
  return call("POST", "/kontent/v2/projects/" .. KONTENT_ENV .. "/clone-environment",
    { body = { name = name }, headers = KONTENT_AUTH }, true)
end

local function droplit_create(alias, eco)
  return call("POST", "/droplit/v0/api/environments",
    { body = { ecosystemId = eco or ECO, alias = alias }, headers = DROPLIT_AUTH }, true)
end

setup(function()
  e = emu.start{ kontent_clone_seconds = 0.3 }
end)

teardown(function()
  if e then e:stop() end
end)

before_each(function()
  e:reset()
end)

describe("Versori platform: get_project and delete_environment", function()
  it("reads the project, 404 when absent", function()
    local status, body = call("GET", V2, { headers = VERSORI_AUTH })
    assert.are.equal(200, status)
    assert.are.equal(PROJECT, body.id)
    assert.are.equal(2, #body.environments)
    local env = body.environments[1]
    for _, k in ipairs{ "id", "name", "status", "createdAt", "updatedAt" } do assert.is_not_nil(env[k], k) end
    local s2, b2 = call("GET", "/versori/api/v2/o/" .. ORG .. "/projects/01HZY8K2V6Q4N3M5T7W9X0ZZZZ",
      { headers = VERSORI_AUTH })
    assert.are.equal(404, s2)
    assert.are.equal("project_not_found", b2.code)
    assert.is_string(b2.message)
    assert.are.equal(401, (call("GET", V2)))
  end)

  it("the clone route still wins for 'clone'; delete by ULID returns the project without it", function()
    local status, project = versori_clone("pr-1")
    assert.are.equal(200, status)
    local id
    for _, env in ipairs(project.environments) do if env.name == "pr-1" then id = env.id end end
    assert.is_string(id)
    assert.are.equal(1, e:stats().applied.by_operation["versori.clone_environment"])
    assert.is_nil(e:stats().by_operation["versori.delete_environment"])

    local s2, after = call("POST", V2 .. "/environments/" .. id, { headers = VERSORI_AUTH })
    assert.are.equal(200, s2)
    assert.are.equal(PROJECT, after.id)
    assert.are.equal(2, #after.environments)
    for _, env in ipairs(after.environments) do assert.are_not.equal(id, env.id) end
    local s3, gone = call("POST", V2 .. "/environments/" .. id, { headers = VERSORI_AUTH })
    assert.are.equal(404, s3)
    assert.are.equal("environment_not_found", gone.code)
    assert.is_string(gone.message)
    assert.are.equal(404, (call("POST", V2 .. "/environments/not-a-ulid", { headers = VERSORI_AUTH })))
    assert.are.equal(2, #select(2, call("GET", V2, { headers = VERSORI_AUTH })).environments)
  end)

  it("a second clone with an existing newEnvName answers 409", function()
    assert.are.equal(200, (versori_clone("dup")))
    local status, body = versori_clone("dup")
    assert.are.equal(409, status)
    assert.are.equal("environment_exists", body.code)
    assert.are.equal(1, objects().versori.projects[PROJECT].names.dup)
  end)
end)

describe("Versori Connect: connection versions", function()
  it("gets a version by name (and by the reserved names), 404 when absent", function()
    local status, v = call("GET", CONNECT .. "/v1", { headers = VERSORI_AUTH })
    assert.are.equal(200, status)
    assert.are.equal("v1", v.name)
    assert.is_string(v.publishedAt)            -- the seeded version is published
    assert.are.equal("v1", select(2, call("GET", CONNECT .. "/latest", { headers = VERSORI_AUTH })).name)
    local s2, b2 = call("GET", CONNECT .. "/nope", { headers = VERSORI_AUTH })
    assert.are.equal(404, s2)
    assert.are.equal("version_not_found", b2.code)
    assert.is_string(b2.message)
  end)

  it("lists in pages of `first` with opaque cursors", function()
    for _, n in ipairs{ "v2", "v3", "v4" } do assert.are.equal(201, (create_version(n))) end
    local s, p1 = call("GET", CONNECT, { headers = VERSORI_AUTH })
    assert.are.equal(200, s)
    assert.are.equal(4, #p1.items)                -- default first = 20
    assert.are.equal(4, p1.pageInfo.totalCount)
    assert.are.equal(cjson.null, p1.pageInfo.next)
    assert.are.equal(cjson.null, p1.pageInfo.prev)

    local _, a = call("GET", CONNECT .. "?first=2", { headers = VERSORI_AUTH })
    assert.are.same({ "v1", "v2" }, { a.items[1].name, a.items[2].name })
    assert.is_string(a.pageInfo.next)
    assert.are.equal(cjson.null, a.pageInfo.prev)
    local _, b = call("GET", CONNECT .. "?first=2&after=" .. a.pageInfo.next, { headers = VERSORI_AUTH })
    assert.are.same({ "v3", "v4" }, { b.items[1].name, b.items[2].name })
    assert.are.equal(cjson.null, b.pageInfo.next)
    assert.is_string(b.pageInfo.prev)
    local _, c = call("GET", CONNECT .. "?first=2&before=" .. b.pageInfo.prev, { headers = VERSORI_AUTH })
    assert.are.same({ "v1", "v2" }, { c.items[1].name, c.items[2].name })
    assert.are.equal(400, (call("GET", CONNECT .. "?after=bogus", { headers = VERSORI_AUTH })))
    assert.are.equal(400, (call("GET", CONNECT .. "?first=0", { headers = VERSORI_AUTH })))
  end)

  it("deletes: 204, 404 when gone, 409 for a published version without force=true", function()
    assert.are.equal(201, (create_version("draft")))
    local s0, b0 = create_version("draft")
    assert.are.equal(409, s0)
    assert.are.equal("version_exists", b0.code)
    local status, body = call("DELETE", CONNECT .. "/v1", { headers = VERSORI_AUTH })
    assert.are.equal(409, status)
    assert.are.equal("version_published", body.code)
    assert.is_string(body.message)
    assert.are.equal(409, (call("DELETE", CONNECT .. "/v1?force=false", { headers = VERSORI_AUTH })))
    assert.are.equal(400, (call("DELETE", CONNECT .. "/latest", { headers = VERSORI_AUTH })))
    assert.are.equal(204, (call("DELETE", CONNECT .. "/v1?force=true", { headers = VERSORI_AUTH })))
    assert.are.equal(404, (call("DELETE", CONNECT .. "/v1?force=true", { headers = VERSORI_AUTH })))
    assert.are.equal(204, (call("DELETE", CONNECT .. "/draft", { headers = VERSORI_AUTH })))
    assert.are.equal(404, (call("GET", CONNECT .. "/draft", { headers = VERSORI_AUTH })))
    assert.are.equal(0, objects().versori.connections[CONN].count)
  end)
end)

describe("Qovery: applications", function()
  local function status_of(id)
    local s, b = call("GET", "/qovery/application/" .. id .. "/status", { headers = QOVERY_AUTH })
    return s, b
  end

  it("reads an application, its status and the environment's list", function()
    local s, app = call("GET", "/qovery/application/" .. QOVERY_APP, { headers = QOVERY_AUTH })
    assert.are.equal(200, s)
    assert.are.equal("web", app.name)
    local s2, st = status_of(QOVERY_APP)
    assert.are.equal(200, s2)
    assert.are.same({ QOVERY_APP, "DEPLOYED" }, { st.id, st.state })
    local s3, list = call("GET", "/qovery/environment/" .. QOVERY_ENV .. "/application", { headers = QOVERY_AUTH })
    assert.are.equal(200, s3)
    assert.are.equal(1, #list.results)
    assert.are.equal(QOVERY_APP, list.results[1].id)
    assert.are.equal(404, (call("GET", "/qovery/application/00000000-0000-4000-8000-000000000000",
      { headers = QOVERY_AUTH })))
    assert.are.equal(404, (call("GET", "/qovery/environment/00000000-0000-4000-8000-000000000000/application",
      { headers = QOVERY_AUTH })))
    assert.are.equal(401, (call("GET", "/qovery/application/" .. QOVERY_APP)))
  end)

  it("deletes in the background: DELETE_QUEUED, DELETING, DELETED, then 404", function()
    -- stages long enough that the checks made while DELETING end within it on a busy machine
    e:config{ qovery_delete_seconds = 0.6 }
    local s, app = qovery_clone("api")
    assert.are.equal(202, s)
    assert.are.equal(204, (call("DELETE", "/qovery/application/" .. app.id, { headers = QOVERY_AUTH })))
    local seen, t0 = {}, socket.gettime()
    local final
    for _ = 1, 200 do                                   -- bounded: 200 polls, ~10 s at most
      local st, body = status_of(app.id)
      if st == 404 then final = 404 break end
      assert.are.equal(200, st)
      if seen[#seen] ~= body.state then seen[#seen + 1] = body.state end
      if body.state == "DELETING" then
        -- still listed, its name still taken, a second DELETE answers 204 again
        local _, list = call("GET", "/qovery/environment/" .. QOVERY_ENV .. "/application", { headers = QOVERY_AUTH })
        assert.are.equal(2, #list.results)
        assert.are.equal(409, (qovery_clone("API")))
        assert.are.equal(204, (call("DELETE", "/qovery/application/" .. app.id, { headers = QOVERY_AUTH })))
      end
      socket.sleep(0.03)
    end
    assert.are.equal(404, final)
    assert.are.same({ "DELETE_QUEUED", "DELETING", "DELETED" }, seen)
    assert.is_true(socket.gettime() - t0 >= 1.7)
    assert.are.equal(404, (call("GET", "/qovery/application/" .. app.id, { headers = QOVERY_AUTH })))
    assert.are.equal(404, (call("DELETE", "/qovery/application/" .. app.id, { headers = QOVERY_AUTH })))
    local _, list = call("GET", "/qovery/environment/" .. QOVERY_ENV .. "/application", { headers = QOVERY_AUTH })
    assert.are.equal(1, #list.results)
    assert.are.equal(202, (qovery_clone("api")))        -- the name is free again
    assert.are.equal(1, e:stats().applied.by_operation["qovery.delete_application"])
  end)

  it("counts applications per environment with their state", function()
    local _, app = qovery_clone("worker")
    call("DELETE", "/qovery/application/" .. app.id, { headers = QOVERY_AUTH })
    local env = objects().qovery.environments[QOVERY_ENV]
    assert.are.equal(2, env.count)
    assert.are.equal(1, env.names.worker)
    local states = {}
    for _, a in ipairs(env.applications) do states[a.name] = a.state end
    assert.are.same({ web = "DEPLOYED", worker = "DELETE_QUEUED" }, states)
  end)
end)

describe("Kontent: Subscription API and deletes", function()
  local SUB = "/kontent/v2/subscriptions/" .. SUBSCRIPTION .. "/projects"
  local SUB_AUTH = { authorization = "Bearer emu-kontent-subscription-key" }

  -- Every page of the project list, following x-continuation; bounded at 20 pages.
  local function all_pages()
    local pages, token = {}, nil
    for _ = 1, 20 do
      local headers = { authorization = SUB_AUTH.authorization, ["x-continuation"] = token }
      local s, body = call("GET", SUB, { headers = headers })
      assert.are.equal(200, s)
      pages[#pages + 1] = body
      if body.pagination.continuation_token == cjson.null then return pages end
      token = body.pagination.continuation_token
      assert.is_string(token)
    end
    error("more than 20 pages")
  end

  it("pages the subscription's projects, two at a time; the token is null at the end", function()
    local pages = all_pages()
    assert.are.equal(2, #pages)
    assert.are.equal(2, #pages[1].projects)
    assert.are.equal(1, #pages[2].projects)
    assert.are.equal(cjson.null, pages[2].pagination.next_page)
    local names = {}
    for _, page in ipairs(pages) do
      for _, p in ipairs(page.projects) do
        names[#names + 1] = p.name
        assert.is_true(p.is_active)
        assert.are.equal(1, #p.environments)
        assert.is_string(p.environments[1].id)
        assert.is_string(p.environments[1].name)
      end
    end
    assert.are.same({ "Sample project", "Second project", "Third project" }, names)
    -- the page size is a setting
    e:config{ kontent_subscription_page_size = 5 }
    assert.are.equal(1, #all_pages())
  end)

  it("refuses other keys, unknown subscriptions and bad tokens", function()
    local s, body = call("GET", SUB, { headers = KONTENT_AUTH })
    assert.are.equal(401, s)
    assert.is_number(body.error_code)
    -- and the Management API refuses the subscription key
    assert.are.equal(401, (call("GET", "/kontent/v2/projects/" .. KONTENT_ENV, { headers = SUB_AUTH })))
    assert.are.equal(404, (call("GET", "/kontent/v2/subscriptions/00000000-0000-4000-8000-000000000000/projects",
      { headers = SUB_AUTH })))
    assert.are.equal(400, (call("GET", SUB, { headers = { authorization = SUB_AUTH.authorization,
      ["x-continuation"] = "bogus" } })))
  end)

  it("lists clones in their source's project; names are not unique", function()
    local s1, c1 = kontent_clone("Preview")
    local s2, c2 = kontent_clone("Preview")
    assert.are.same({ 200, 200 }, { s1, s2 })
    assert.are_not.equal(c1.id, c2.id)
    local envs = all_pages()[1].projects[1].environments
    assert.are.equal(3, #envs)
    assert.are.same({ "Production", "Preview", "Preview" }, { envs[1].name, envs[2].name, envs[3].name })
    local project = objects().kontent.projects["4b5e0a8c-1f2d-4c3b-8a9e-6d7f0b1c2d3e"]
    assert.are.equal(3, project.count)
    table.sort(project.names.Preview)
    local want = { c1.id, c2.id }
    table.sort(want)
    assert.are.same(want, project.names.Preview)
  end)

  it("deletes: 204, then 404; the production environment 400 error_code 233", function()
    local _, clone = kontent_clone("Gone")
    local s, body = call("DELETE", "/kontent/v2/projects/" .. KONTENT_ENV, { headers = KONTENT_AUTH })
    assert.are.same({ 400, 233 }, { s, body.error_code })
    assert.are.equal(204, (call("DELETE", "/kontent/v2/projects/" .. clone.id, { headers = KONTENT_AUTH })))
    local s2, b2 = call("DELETE", "/kontent/v2/projects/" .. clone.id, { headers = KONTENT_AUTH })
    assert.are.same({ 404, 100 }, { s2, b2.error_code })
  end)

  it("with kontent_refuse_delete_while_cloning, a delete while in_progress is refused (GUESS)", function()
    e:config{ kontent_refuse_delete_while_cloning = true, kontent_clone_seconds = -1 }
    local _, clone = kontent_clone("Busy")
    local s, body = call("DELETE", "/kontent/v2/projects/" .. clone.id, { headers = KONTENT_AUTH })
    assert.are.equal(409, s)
    assert.matches("being cloned", body.message, 1, true)
    e:config{ kontent_clone_seconds = 0 }
    assert.are.equal(204, (call("DELETE", "/kontent/v2/projects/" .. clone.id, { headers = KONTENT_AUTH })))
  end)
end)

describe("Droplit: environments by id or by {ecosystemId};{alias}", function()
  local BASE = "/droplit/v0/api/environments/"

  it("reads by id and by the scoped alias, each side percent-decoded on its own", function()
    local s, created = droplit_create("pr_7")
    assert.are.equal(201, s)
    local s1, by_id = raw("GET", BASE .. created.id, DROPLIT_AUTH)
    assert.are.equal(200, s1)
    assert.are.same({ created.id, ECO, created.createdAt }, { by_id.id, by_id.ecosystemId, by_id.createdAt })
    assert.is_table(by_id.meta)
    local s2, by_alias = raw("GET", BASE .. ECO .. ";pr_7", DROPLIT_AUTH)
    assert.are.equal(200, s2)
    assert.are.equal(created.id, by_alias.id)
    assert.are.equal("pr_7", by_alias.alias)
    assert.are.equal(200, (raw("GET", BASE .. "E5cdeSeedEcosystem%301;pr%5F7", DROPLIT_AUTH)))
    -- an encoded ';' is part of a field, not the separator; aliases are scoped per ecosystem
    assert.are.equal(404, (raw("GET", BASE .. ECO .. "%3Bpr_7", DROPLIT_AUTH)))
    local s3, other = raw("GET", BASE .. ECO2 .. ";pr_7", DROPLIT_AUTH)
    assert.are.equal(404, s3)
    assert.are.equal("Environment Not Found", other.errors[1].name)
    assert.are.equal(401, (raw("GET", BASE .. created.id)))
  end)

  it("a second create with the alias answers 400 Alias Exists", function()
    assert.are.equal(201, (droplit_create("same")))
    local s, body = droplit_create("same")
    assert.are.equal(400, s)
    assert.are.equal("Alias Exists", body.errors[1].name)
    assert.are.equal(201, (droplit_create("same", ECO2)))
    local ecos = objects().droplit.ecosystems
    assert.are.same({ 1, 1 }, { ecos[ECO].aliases.same, ecos[ECO2].aliases.same })
  end)

  it("deletes by id or alias: 200, then 404 Environment Not Found; the alias is free again", function()
    local _, a = droplit_create("del_me")
    assert.are.equal(200, (raw("DELETE", BASE .. ECO .. ";del_me", DROPLIT_AUTH)))
    local s, body = raw("GET", BASE .. a.id, DROPLIT_AUTH)
    assert.are.equal(404, s)
    assert.are.equal("Environment Not Found", body.errors[1].name)
    assert.are.equal(404, (raw("DELETE", BASE .. ECO .. ";del_me", DROPLIT_AUTH)))
    local _, b = droplit_create("del_me")
    assert.are.equal(200, (raw("DELETE", BASE .. b.id, DROPLIT_AUTH)))
    assert.are.equal(404, (raw("DELETE", BASE .. b.id, DROPLIT_AUTH)))
    assert.are.equal(0, objects().droplit.ecosystems[ECO].count)
  end)
end)

describe("faults: applied, then lost", function()
  -- each vendor's create, with what finds the object afterwards in /_emulator/objects
  local creates = {
    { "versori.clone_environment", function() return versori_clone("lost") end,
      function(o) return o.versori.projects[PROJECT].names.lost end },
    { "versori.create_connection_version", function() return create_version("lost") end,
      function(o) return o.versori.connections[CONN].names.lost end },
    { "qovery.clone_application", function() return qovery_clone("lost") end,
      function(o) return o.qovery.environments[QOVERY_ENV].names.lost end },
    { "kontent.clone_environment", function() return kontent_clone("lost") end,
      function(o)
        local ids = o.kontent.projects["4b5e0a8c-1f2d-4c3b-8a9e-6d7f0b1c2d3e"].names.lost
        return ids and #ids
      end },
    { "droplit.create_environment", function() return droplit_create("lost") end,
      function(o) return o.droplit.ecosystems[ECO].aliases.lost end },
  }

  for _, c in ipairs(creates) do
    local op, create, count = c[1], c[2], c[3]

    it("applied_502 on " .. op .. ": 502 with a proxy's body, the object created", function()
      e:faults{ rules = { { operation = op, queue = { "applied_502" } } } }
      local status, decoded, headers, body = create()
      assert.are.equal(502, status)
      assert.is_nil(decoded)                                -- not the vendor's JSON
      assert.matches("502 Bad Gateway", body, 1, true)
      assert.matches("^text/html", headers["content-type"])
      assert.are.equal(1, count(objects()))
      assert.are.equal(1, e:stats().applied.by_operation[op])
      local last = e:requests()
      assert.are.same({ "applied_502", 502 }, { last[#last].fault, last[#last].status })
    end)

    it("close_after on " .. op .. ": no answer, the object created", function()
      e:faults{ rules = { { operation = op, queue = { "close_after" } } } }
      local status, err = create()
      assert.is_nil(status)
      assert.is_string(err)
      assert.are.equal(1, count(objects()))
    end)
  end

  it("a fault rule accepts the new operations' names", function()
    for _, op in ipairs{ "versori.get_project", "versori.delete_environment", "versori.get_connection_version",
        "versori.list_connection_versions", "versori.delete_connection_version", "qovery.get_application",
        "qovery.get_application_status", "qovery.list_applications", "qovery.delete_application",
        "kontent.list_subscription_projects", "droplit.get_environment", "droplit.delete_environment" } do
      e:faults{ rules = { { operation = op, queue = { "applied_502" } } } }
    end
    local s = e:request("PUT", "/_emulator/faults", { body = { rules = { { operation = "qovery.nope" } } } })
    assert.are.equal(400, s)
    -- a delete under applied_502: applied, then lost
    e:faults{ rules = { { operation = "droplit.delete_environment", queue = { "applied_502" } } } }
    local _, a = droplit_create("x")
    assert.are.equal(502, (raw("DELETE", BASE_DROPLIT .. a.id, DROPLIT_AUTH)))
    assert.are.equal(404, (raw("GET", BASE_DROPLIT .. a.id, DROPLIT_AUTH)))
  end)
end)

describe("/_emulator/objects and state", function()
  it("keeps the state view's keys and counts every vendor's objects", function()
    local state = e:state()
    assert.is_table(state.versori.organisations[ORG].projects[PROJECT])
    assert.is_table(state.qovery.applications[QOVERY_APP])
    assert.is_table(state.kontent.environments[KONTENT_ENV])
    assert.is_table(state.droplit.environments)
    local o = objects()
    assert.are.same({ production = 1, staging = 1 }, o.versori.projects[PROJECT].names)
    assert.are.equal(1, o.versori.connections[CONN].count)
    assert.are.equal(1, o.qovery.environments[QOVERY_ENV].count)
    assert.are.equal(3, #(function()
      local list = {}
      for id in pairs(o.kontent.projects) do list[#list + 1] = id end
      return list
    end)())
    assert.are.same({ 0, 0 }, { o.droplit.ecosystems[ECO].count, o.droplit.ecosystems[ECO].without_alias })
  end)
end)
