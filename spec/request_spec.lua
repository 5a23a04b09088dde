-- The request object and the public transport interface: a request made by
-- the C core per call, carried by libcurl or by a host's own transport
-- (here the LuaSocket one of examples/luasocket_transport.lua) against the
-- emulator, with one set of policy, parsing and error rules.
package.path = "examples/?.lua;" .. package.path
local core = require("envclone.core")
local emu = require("spec.support.emu")
local luasocket_transport = require("luasocket_transport")

local e, seed

setup(function()
  e = emu.start{ kontent_clone_seconds = 0.2 }
  seed = e.seed
end)

teardown(function()
  if e then e:stop() end
end)

before_each(function() e:reset() end)

local function handle(vendor)
  return e:client(vendor, { retry = false })._handle
end

-- A transport that records each request it carries, then lets LuaSocket send it.
local function recording(log)
  local inner = luasocket_transport.new()
  return { perform = function(req)
    log[#log + 1] = { method = req.method, url = req.url, reuse = req.reuse, creates = req.creates }
    return inner.perform(req)
  end }
end

describe("a request object", function()
  it("is made by the C core per call, with the policy of its operation row", function()
    local k = handle("kontent")
    local env = seed.kontent.environment_id
    local get = assert(core.request(k, "get_environment", { environment_id = env }))
    assert.are.same({ "GET", "kontent", "get_environment", true, false, true },
      { get.method, get.vendor, get.operation, get.reuse, get.creates, get.safe })
    assert.are.equal(e.base_urls.kontent .. "/projects/" .. env, get.url)
    assert.is_nil(get.body)
    local clone = assert(core.request(k, "clone_environment", { environment_id = env, name = "x" }))
    assert.are.same({ "POST", false, true, false }, { clone.method, clone.reuse, clone.creates, clone.safe })
    assert.are.equal('{"name":"x"}', clone.body)
    local del = assert(core.request(k, "delete_environment", { environment_id = env }))
    -- not a create, but not a GET either: a fresh connection (libcurl's silent re-send)
    assert.are.same({ false, false, false }, { del.reuse, del.creates, del.safe })
    assert.are.equal(5, get.timeout)
    assert.is_number(get.connect_timeout)
    assert.is_number(get.max_response_size)
  end)

  it("gives its wire form and headers to Lua transports, and never prints the credential", function()
    local k = handle("kontent")
    local key = e.credentials.kontent.api_key
    local req = assert(core.request(k, "clone_environment", { environment_id = seed.kontent.environment_id,
      name = "wire" }))
    local wire = req:wire()
    assert.truthy(wire:find("^POST /kontent/v2/projects/[%x-]+/clone%-environment HTTP/1%.1\r\n"))
    assert.truthy(wire:find("\r\nHost: 127.0.0.1:" .. req.port .. "\r\n", 1, true))
    assert.truthy(wire:find("\r\nAuthorization: Bearer " .. key .. "\r\n", 1, true))
    assert.truthy(wire:find("\r\nContent-Length: " .. #req.body .. "\r\n", 1, true))
    assert.truthy(wire:find('\r\n\r\n{"name":"wire"}$'))
    assert.are.equal("Bearer " .. key, req:headers().Authorization)
    assert.is_nil(tostring(req):find(key, 1, true))
  end)

  it("refuses bad input with nothing built, and is finished once parsed", function()
    local k = handle("kontent")
    local req, err = core.request(k, "get_environment", { environment_id = "nope" })
    assert.is_nil(req)
    assert.are.same({ "validation", "environment_id" }, { err.kind, err.field })
    req = assert(core.request(k, "get_environment", { environment_id = seed.kontent.environment_id }))
    local res = assert(req:parse{ status = 200, headers = { ["Content-Type"] = "application/json" },
      body = '{"id":"a"}' })
    assert.are.equal("a", res.id)
    assert.is_true(req.finished)
    assert.has_error(function() req:wire() end,
      "envclone: this kontent.get_environment request is finished (made again per call)")
    req:release() -- idempotent
    assert.has_error(function() req:parse{ status = "200" } end)
  end)

  it("one client has many requests in flight: each keeps its own state", function()
    local k = handle("kontent")
    local env = seed.kontent.environment_id
    local a = assert(core.request(k, "get_environment", { environment_id = env }))
    local b = assert(core.request(k, "get_cloning_state", { environment_id = env }))
    local c = assert(core.request(k, "get_environment", { environment_id = "00000000-0000-4000-8000-000000000000" }))
    local _, cerr = c:send()
    local bres = assert(b:send())
    local ares = assert(a:send())
    assert.are.equal(env, ares.id)
    assert.is_string(bres.cloning_state)
    assert.are.same({ "http", 404 }, { cerr.kind, cerr.status })
  end)

  it("outlives its client's Lua object, and refuses to run once the client is closed", function()
    local c = e:client("kontent", { retry = false })
    local req = assert(core.request(c._handle, "get_environment", { environment_id = seed.kontent.environment_id }))
    local alive = assert(core.request(c._handle, "get_environment", { environment_id = seed.kontent.environment_id }))
    c:close()
    assert.has_error(function() req:send() end, "envclone: the kontent client is closed")
    local h = e:client("kontent", { retry = false })._handle
    req = assert(core.request(h, "get_environment", { environment_id = seed.kontent.environment_id }))
    h = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    assert.are.equal(seed.kontent.environment_id, assert(req:send()).id)
    alive:release()
  end)
end)

describe("the transport-error constructor (req:fail)", function()
  local function fail(op, code, sent, retryable)
    local k = handle("kontent")
    local args = { environment_id = seed.kontent.environment_id, name = op == "clone_environment" and "x" or nil }
    local req = assert(core.request(k, op, args))
    local res, err = req:fail(code, "m", sent, retryable)
    assert.is_nil(res)
    return { err.kind, err.code, err.sent, err.retryable, err.maybe_applied }
  end

  it("decides kind, retryable and maybe_applied from the code and the request's policy", function()
    assert.are.same({ "transport", "connect", false, true, false }, fail("get_environment", "connect", true))
    assert.are.same({ "transport", "connect", false, true, false }, fail("clone_environment", "connect", true))
    assert.are.same({ "timeout", "timeout", true, true, false }, fail("get_environment", "timeout", true))
    -- a create that may have reached the server: never sent again, maybe applied
    assert.are.same({ "timeout", "timeout", true, false, true }, fail("clone_environment", "timeout", true))
    assert.are.same({ "transport", "recv", true, false, true }, fail("clone_environment", "recv", true))
    assert.are.same({ "transport", "recv", false, true, false }, fail("clone_environment", "recv", false))
    assert.are.same({ "transport", "recv", true, true, true }, fail("delete_environment", "recv", true))
    assert.are.same({ "transport", "tls", false, false, false }, fail("get_environment", "tls", false, false))
    assert.are.same({ "transport", "too_large", true, false, false }, fail("get_environment", "too_large", true))
    assert.are.same({ "transport", "unavailable", false, false, false }, fail("get_environment", "unavailable", true))
    assert.has_error(function() fail("get_environment", "nonsense", true) end,
      "envclone: unknown transport error code 'nonsense'")
  end)

  it("writes the size messages itself", function()
    local req = assert(core.request(handle("kontent"), "get_environment",
      { environment_id = seed.kontent.environment_id }))
    local _, err = req:fail("headers_too_large", nil, true)
    assert.are.equal("too_large", err.code)
    assert.matches("256 KiB in all, 100 KiB a line", err.message, 1, true)
  end)
end)

describe("a host transport (transport = { perform = ... })", function()
  it("carries every call with the same results as libcurl", function()
    local log = {}
    local host = e:client("kontent", { transport = recording(log) })
    local curl = e:client("kontent", { transport = "curl" })
    local env = seed.kontent.environment_id
    assert.are.same(assert(curl:get_environment{ environment_id = env }),
      assert(host:get_environment{ environment_id = env }))
    local clone = assert(host:clone_environment{ environment_id = env, name = "host", wait = true,
      wait_interval = 0.05 })
    assert.is_string(clone.id)
    assert.are.same({ method = "GET", url = e.base_urls.kontent .. "/projects/" .. env, reuse = true, creates = false },
      log[1])
    assert.are.same({ "POST", false, true }, { log[2].method, log[2].reuse, log[2].creates })
    assert.is_true(#log >= 3) -- the waiter's polls went through it too
    local _, herr = host:get_environment{ environment_id = "00000000-0000-4000-8000-000000000000" }
    local _, cerr = curl:get_environment{ environment_id = "00000000-0000-4000-8000-000000000000" }
    for _, f in ipairs{ "kind", "status", "code", "message", "retryable", "maybe_applied", "attempts" } do
      assert.are.equal(cerr[f], herr[f], f)
    end
  end)

  it("bad input never reaches the transport", function()
    local log = {}
    local _, err = e:client("kontent", { transport = recording(log) }):get_environment{ environment_id = "x" }
    assert.are.equal("validation", err.kind)
    assert.are.equal(0, #log)
  end)

  it("gets retries by the request's policy: a GET again after a 503, a create never after a lost answer", function()
    local log = {}
    local retry = { max_attempts = 3, base_delay = 0.001 }
    local c = e:client("kontent", { transport = recording(log), retry = retry })
    e:faults{ rules = { { operation = "kontent.get_environment", queue = { "503" } } } }
    assert(c:get_environment{ environment_id = seed.kontent.environment_id })
    assert.are.equal(2, #log)
    log = {}
    c = e:client("kontent", { transport = recording(log), retry = retry, timeout = 1 })
    e:faults{ rules = { { operation = "kontent.clone_environment", queue = { "close_after" } } } }
    local _, err = c:clone_environment{ environment_id = seed.kontent.environment_id, name = "once" }
    assert.are.same({ "recv", true, true, false, 1 },
      { err.code, err.sent, err.maybe_applied, err.retryable, err.attempts }, err.message)
    assert.are.equal(1, #log)
    assert.are.equal(1, e:stats().applied.creates)
  end)

  it("a transport that returns a plain error string: the request may have been sent", function()
    local c = e:client("kontent", { transport = { perform = function() return nil, "socket went away" end },
      retry = { max_attempts = 3, base_delay = 0.001 } })
    local _, err = c:clone_environment{ environment_id = seed.kontent.environment_id, name = "x" }
    assert.are.same({ "transport", "transport", true, true, 1 },
      { err.kind, err.code, err.sent, err.maybe_applied, err.attempts })
    assert.matches("socket went away", err.message, 1, true)
  end)

  it("a transport that returns something else is a programmer error", function()
    local c = e:client("kontent", { transport = { perform = function() return 42 end } })
    assert.has_error(function() c:get_environment{ environment_id = seed.kontent.environment_id } end,
      "envclone: transport.perform must return a response table, or nil and an error")
    assert.has_error(function() e:client("kontent", { transport = { } }) end)
  end)
end)
