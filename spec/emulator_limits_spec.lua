-- The emulator's Kontent rate limit (10 requests/s and 400 requests/min per environment,
-- sliding windows) and its concurrency report. The windows are checked in process with a
-- fake clock (Lua 5.4: the emulator's own interpreter); the rest against a spawned process.

local socket = require("socket")
local cjson = require("cjson.safe")
local emu = require("spec.support.emu")

local KONTENT_ENV = "8d20758c-d74c-4f59-ae04-ee928c0816b7"
local KEY = "emu-kontent-key"

local in_process = _VERSION == "Lua 5.4"
local emulator = in_process and require("envclone.emulator")
local emulator_main = in_process and require("envclone.emulator.main") -- its command line

describe("emulator: Kontent rate limit, in process", function()
  if not in_process then
    pending("needs Lua 5.4 (the emulator's interpreter)")
    return
  end

  local e, clock
  before_each(function()
    clock = { now = 1000 }
    e = assert(emulator.new{ quiet = true, clock = function() return clock.now end })
  end)

  local function get(env, key)
    return e:handle{ method = "GET", path = "/kontent/v2/projects/" .. (env or KONTENT_ENV), query = nil,
      headers = { authorization = "Bearer " .. (key or KEY) }, body = "" }
  end

  local function at(t, env, key)
    clock.now = 1000 + t
    return get(env, key)
  end

  it("is on by default: the 11th request within a second is refused with Kontent's body", function()
    for i = 1, 10 do assert.are.equal(200, at(0.05 * i).status, "request " .. i) end
    local resp = at(0.6)
    assert.are.equal(429, resp.status)
    assert.are.equal("1", resp.headers["Retry-After"])
    assert.are.equal(10000, resp.json.error_code)
    assert.are.equal("API rate limit exceeded. Please retry your request later.", resp.json.message)
    assert.are.equal(resp.headers["X-Request-Id"], resp.json.request_id)
    assert.are.equal(11, e.stats.requests)
  end)

  it("slides: a second after the oldest request exactly one more is admitted", function()
    for i = 0, 9 do assert.are.equal(200, at(0.1 * i).status) end
    assert.are.equal(429, at(0.99).status)
    assert.are.equal(200, at(1.0).status)        -- the request at 0.0 has left the window
    assert.are.equal(429, at(1.05).status)       -- the one at 0.1 has not (a refilled bucket would admit it)
    assert.are.equal(200, at(1.1).status)
    -- refused requests do not count: the window holds 0.2 .. 1.1 now
    assert.are.equal(429, at(1.15).status)
  end)

  it("allows 400 in any 60 s, then answers 429 until the oldest leaves the minute", function()
    for i = 0, 399 do
      assert.are.equal(200, at(0.15 * i).status, "request " .. i)
    end
    local resp = at(59.9)
    assert.are.equal(429, resp.status)
    assert.are.equal("1", resp.headers["Retry-After"])
    assert.are.equal(200, at(60.0).status)
    assert.are.equal(429, at(60.1).status)
    assert.are.equal(200, at(60.15).status)
  end)

  it("counts per environment, whatever the key", function()
    local clone = e:handle{ method = "POST",
      path = "/kontent/v2/projects/" .. KONTENT_ENV .. "/clone-environment",
      headers = { authorization = "Bearer " .. KEY }, body = '{"name":"Other"}' }
    assert.are.equal(200, clone.status)
    local other = clone.json.id
    for i = 1, 4 do assert.are.equal(200, at(0.01 * i).status) end
    for i = 1, 5 do
      local key = emulator.seed.kontent.api_key_without_permission
      assert.are.equal(403, at(0.1 + 0.01 * i, KONTENT_ENV, key).status)
    end
    assert.are.equal(429, at(0.2).status)
    assert.are.equal(200, at(0.2, other).status)
    -- other vendors have no limit
    for _ = 1, 20 do
      assert.are.equal(201, e:handle{ method = "POST", path = "/droplit/v0/api/environments",
        headers = { authorization = "emu-droplit-token", ["content-type"] = "application/json" },
        body = '{"ecosystemId":"E5cdeSeedEcosystem01"}' }.status)
    end
  end)

  it("can be switched off at start and through the control API", function()
    e = assert(emulator.new{ quiet = true, kontent_rate_limit = false, clock = function() return clock.now end })
    for _ = 1, 30 do assert.are.equal(200, get().status) end
    local function put(body)
      return e:handle{ method = "PUT", path = "/_emulator/config", headers = {}, body = body }.status
    end
    assert.are.equal(200, put('{"kontent_rate_limit":true}'))
    for _ = 1, 10 do assert.are.equal(200, get().status) end
    assert.are.equal(429, get().status)
    assert.are.equal(400, put('{"kontent_rate_limit":"no"}'))
    assert.is_nil(emulator.new{ kontent_rate_limit = "off" })
  end)

  it("takes --kontent-rate-limit on|off and --no-kontent-rate-limit", function()
    assert.is_false(assert(emulator_main.parse_args{ "--kontent-rate-limit", "off" }).kontent_rate_limit)
    assert.is_true(assert(emulator_main.parse_args{ "--kontent-rate-limit=on" }).kontent_rate_limit)
    assert.is_false(assert(emulator_main.parse_args{ "--no-kontent-rate-limit" }).kontent_rate_limit)
    assert.is_nil(assert(emulator_main.parse_args{}).kontent_rate_limit)
    local _, err = emulator_main.parse_args{ "--kontent-rate-limit", "maybe" }
    assert.matches("on or off", err, 1, true)
  end)
end)

describe("emulator: rate limit and concurrency, over HTTP", function()
  local e
  setup(function() e = emu.start{ kontent_rate_limit = true } end)
  teardown(function() if e then e:stop() end end)
  before_each(function() e:reset() end)

  local function kontent_get(env)
    return e:request("GET", "/kontent/v2/projects/" .. (env or KONTENT_ENV),
      { headers = { authorization = "Bearer " .. KEY } })
  end

  it("answers 429 with Retry-After and error_code 10000 past 10 requests a second", function()
    local statuses, refused = {}, nil
    for i = 1, 15 do
      local status, body, headers = kontent_get()
      statuses[i] = status
      if status == 429 and not refused then refused = { body = cjson.decode(body), headers = headers } end
    end
    assert.is_truthy(refused, table.concat(statuses, " "))
    assert.are.equal(10000, refused.body.error_code)
    assert.is_string(refused.body.request_id)
    assert.matches("^%d+$", refused.headers["retry-after"])
    local ok = 0
    for _, s in ipairs(statuses) do if s == 200 then ok = ok + 1 end end
    assert.is_true(ok >= 10 and ok < 15, table.concat(statuses, " "))
    assert.is_true(e:config{}.kontent_rate_limit)
    e:config{ kontent_rate_limit = false }
    assert.are.equal(200, (kontent_get()))
  end)

  -- Opens n connections that each send one request and are answered after `delay`.
  local function overlap(paths, delay)
    e:faults{ delay = delay }
    local socks = {}
    for i, path in ipairs(paths) do
      local c = socket.tcp()
      c:settimeout(5)
      assert(c:connect("127.0.0.1", e.port))
      assert(c:send("GET " .. path .. " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " .. KEY
        .. "\r\nConnection: close\r\n\r\n"))
      socks[i] = c
    end
    for _, c in ipairs(socks) do
      assert.matches("^HTTP/1.1 ", c:receive("*a"))
      c:close()
    end
    e:clear_faults()
  end

  it("reports the most concurrent connections, requests and requests per Kontent environment", function()
    e:config{ kontent_rate_limit = false }
    local before = e:concurrency()
    assert.are.equal(0, before.max_connections)
    assert.are.equal(0, before.max_requests_in_flight)
    local env = "/kontent/v2/projects/" .. KONTENT_ENV
    local other = "/kontent/v2/projects/00000000-0000-4000-8000-000000000000"
    overlap({ env, env, env, other, other }, 0.3)
    local c = e:concurrency()
    assert.are.equal(5, c.max_connections)
    assert.are.equal(5, c.max_requests_in_flight)
    assert.are.equal(3, c.max_in_flight_per_key.kontent[KONTENT_ENV])
    assert.are.equal(2, c.max_in_flight_per_key.kontent["00000000-0000-4000-8000-000000000000"])
    assert.are.equal(0, c.requests_in_flight)
    -- control calls are not vendor connections; DELETE restarts the maxima
    local r = e:reset_concurrency()
    assert.are.equal(0, r.max_connections)
    assert.are.same({}, r.max_in_flight_per_key)
    overlap({ env, env }, 0.2)
    assert.are.equal(2, e:concurrency().max_in_flight_per_key.kontent[KONTENT_ENV])
    e:reset()
    assert.are.equal(0, e:concurrency().max_requests_in_flight)
  end)

  it("sequential requests never overlap", function()
    e:config{ kontent_rate_limit = false }
    e:faults{ delay = 0.02 }
    for _ = 1, 5 do assert.are.equal(200, (kontent_get())) end
    local c = e:concurrency()
    assert.are.equal(1, c.max_in_flight_per_key.kontent[KONTENT_ENV])
    assert.are.equal(1, c.max_requests_in_flight)
  end)
end)

describe("emulator: an operation is a route and a handler in its vendor module", function()
  if not in_process then
    pending("needs Lua 5.4 (the emulator's interpreter)")
    return
  end

  it("serves, counts, logs and faults a route added to one vendor module, with no core change", function()
    local kontent = require("envclone.emulator.vendors.kontent")
    local saved = package.loaded["envclone.emulator"]
    package.loaded["envclone.emulator"] = nil
    table.insert(kontent.routes, { "GET", "projects/:environment_id/ping", "ping", function(em, ctx)
      em:applied(ctx.op, nil, false)
      return { status = 200, json = { environment = ctx.params.environment_id } }
    end })
    local ok, fresh = pcall(require, "envclone.emulator")
    table.remove(kontent.routes)
    package.loaded["envclone.emulator"] = saved
    assert(ok, fresh)
    local e = assert(fresh.new{ quiet = true })
    assert.is_truthy(("\n" .. table.concat(fresh.operations, "\n") .. "\n"):find("\nkontent.ping\n", 1, true))
    local function ping()
      return e:handle{ method = "GET", path = "/kontent/v2/projects/" .. KONTENT_ENV .. "/ping",
        headers = {}, body = "" }
    end
    local resp = ping()
    assert.are.equal(200, resp.status)
    assert.are.equal(KONTENT_ENV, resp.json.environment)
    assert.is_string(resp.headers["X-Request-Id"])       -- the vendor's own decoration
    assert.are.equal(1, e.stats.by_operation["kontent.ping"])
    assert.are.equal(1, e.stats.applied.by_operation["kontent.ping"])
    e.faults = assert(fresh.parse_fault_plan('{"rules":[{"operation":"kontent.ping","queue":["503"]}]}'))
    resp = ping()
    assert.are.equal(503, resp.status)
    assert.are.equal(503, resp.json.error_code)
  end)
end)
