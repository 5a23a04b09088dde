-- envclone.cosocket without nginx: a scripted stand-in for ngx.socket.tcp
-- checks the request bytes, the response parser (split at awkward places),
-- the caps, TLS settings, pooling and the error objects. The real thing runs
-- in spec/nginx/nginx_test.lua.
local envclone = require("envclone")
local core = require("envclone.core")
local cosocket = require("envclone.cosocket")

local ENV = "8d20758c-d74c-4f59-ae04-ee928c0816b7"

-- A socket that plays `script`: the response bytes arrive `piece` bytes at a time.
local function fake_socket(script)
  local s = { script = script }
  local resp, pos = script.response or "", 1
  local function eof() return script.eof or "closed" end
  function s.settimeouts() end
  function s.connect(self, host, port, opts)
    self.host, self.port, self.opts = host, port, opts
    if script.connect_err then return nil, script.connect_err end
    return 1
  end
  function s.getreusedtimes() return script.reused or 0 end
  function s.sslhandshake(self, _, name, verify)
    self.tls = { name = name, verify = verify }
    if script.tls_err then return nil, script.tls_err end
    return true
  end
  function s.send(self, data)
    self.wire = data
    if script.send_err then return nil, script.send_err end
    return #data
  end
  function s.receiveany(_, max)
    if pos > #resp then return nil, eof() end
    local n = math.min(max, script.piece or 7, #resp - pos + 1)
    local d = resp:sub(pos, pos + n - 1)
    pos = pos + n
    return d
  end
  function s.receive(_, n)
    local avail = #resp - pos + 1
    if avail < n then
      local d = resp:sub(pos)
      pos = #resp + 1
      return nil, eof(), d
    end
    local d = resp:sub(pos, pos + n - 1)
    pos = pos + n
    return d
  end
  function s.setkeepalive(self, idle, size)
    self.kept = { idle = idle, size = size }
    return 1
  end
  function s.close(self) self.closed = true return 1 end
  return s
end

local sockets -- the sockets handed out, in order
local scripts -- what the next sockets play

local function install_ngx()
  rawset(_G, "ngx", {
    get_phase = function() return "content" end,
    sleep = function() end,
    update_time = function() end,
    now = function() return core.now() end,
    socket = { tcp = function()
      local s = fake_socket(table.remove(scripts, 1) or {})
      sockets[#sockets + 1] = s
      return s
    end },
  })
end

local function response(status, headers, body)
  local lines = { "HTTP/1.1 " .. status .. " X" }
  for _, h in ipairs(headers or {}) do lines[#lines + 1] = h end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

local function kontent(extra)
  local opts = { api_key = "secret-api-key-123", base_url = "http://127.0.0.1:8080/kontent/v2", retry = false,
    transport = "cosocket" }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return envclone.kontent(opts)
end

describe("envclone.cosocket outside nginx", function()
  it("says it is unavailable, and sends nothing", function()
    assert.is_false(cosocket.available())
    local res, err = kontent():get_environment{ environment_id = ENV }
    assert.is_nil(res)
    assert.are.equal("transport", err.kind)
    assert.are.equal("unavailable", err.code)
    assert.is_false(err.sent)
    assert.is_false(err.maybe_applied)
    assert.is_false(err.retryable)
    assert.matches("OpenResty", tostring(err))
  end)

  it("reads the target from the request the C core built (one URL check, at the constructor)", function()
    local function target(base)
      local h = core.client("kontent", { api_key = "k-split-url-key", base_url = base })
      local req = assert(core.request(h, "get_environment", { environment_id = ENV }))
      return { req.scheme, req.host, req.port, req.path }
    end
    assert.are.same({ "https", "api.example.com", 443, "/v2/projects/" .. ENV },
      target("https://api.example.com/v2"))
    assert.are.same({ "http", "[::1]", 8080, "/projects/" .. ENV }, target("http://[::1]:8080"))
    assert.has_error(function() target("http://user:pw@host/") end)
    assert.has_error(function() target("http://host:99999/") end)
    assert.has_error(function() target("http://:80/") end)
  end)
end)

describe("transport = 'auto' inside nginx", function()
  after_each(function() rawset(_G, "ngx", nil) end)

  for _, phase in ipairs{ "init_worker", "log", "header_filter" } do
    it("never falls back to blocking libcurl in the " .. phase .. " phase", function()
      sockets, scripts = {}, {}
      install_ngx()
      rawget(_G, "ngx").get_phase = function() return phase end
      local c = kontent{ transport = "auto", base_url = "http://127.0.0.1:9/kontent/v2" }
      local res, err = c:get_environment{ environment_id = ENV }
      assert.is_nil(res)
      assert.are.equal("unavailable", err.code)
      assert.is_false(err.sent)
      assert.are.equal(0, #sockets)
    end)
  end
end)

describe("envclone.cosocket with a scripted socket", function()
  before_each(function()
    sockets, scripts = {}, {}
    install_ngx()
  end)
  after_each(function() rawset(_G, "ngx", nil) end)

  it("writes an HTTP/1.1 request and parses a Content-Length answer; a create's connection is not pooled", function()
    local answer = '{"id":"' .. ENV:sub(1, 8) .. '","name":"n"}'
    scripts[1] = { response = response(200, { "Content-Type: application/json", "Content-Length: " .. #answer,
      "X-Request-Id: r-1" }, answer) }
    local c = kontent{ pool_size = 7, keepalive_timeout = 5 }
    local res = assert(c:clone_environment{ environment_id = ENV, name = "Dev" })
    assert.are.equal("n", res.name)
    local s = sockets[1]
    assert.are.equal("127.0.0.1", s.host)
    assert.are.equal(8080, s.port)
    assert.are.equal("envclone:http:127.0.0.1:8080:kontent:plain:fresh", s.opts.pool)
    assert.is_nil(s.kept)
    local head, body = s.wire:match("^(.-)\r\n\r\n(.*)$")
    assert.are.equal('{"name":"Dev"}', body)
    local lines = {}
    for l in (head .. "\r\n"):gmatch("(.-)\r\n") do lines[#lines + 1] = l end
    assert.are.equal("POST /kontent/v2/projects/" .. ENV .. "/clone-environment HTTP/1.1", lines[1])
    assert.are.equal("Host: 127.0.0.1:8080", lines[2])
    assert.truthy(head:find("\r\nAuthorization: Bearer secret-api-key-123\r\n", 1, true))
    assert.truthy(head:find("\r\nContent-Length: 14\r\n", 1, true))
    assert.truthy(head:find("\r\nConnection: keep-alive", 1, true))
    -- an idempotent call's connection goes back to the pool
    local info = '{"id":"' .. ENV .. '","environment":"E"}'
    scripts[1] = { response = response(200, { "Content-Length: " .. #info }, info) }
    assert(c:get_environment{ environment_id = ENV })
    assert.are.equal("envclone:http:127.0.0.1:8080:kontent:plain:pooled", sockets[2].opts.pool)
    assert.are.equal(7, sockets[2].opts.pool_size)
    assert.are.same({ idle = 5000, size = 7 }, sockets[2].kept)
  end)

  it("reads chunked bodies and skips 100 Continue; Connection: close is honoured", function()
    local body = '{"id":"x","environment":"Chunked"}'
    local chunked = string.format("%x", 10) .. ";ext=1\r\n" .. body:sub(1, 10) .. "\r\n"
      .. string.format("%X", #body - 10) .. "\r\n" .. body:sub(11) .. "\r\n0\r\nTrailer: t\r\n\r\n"
    scripts[1] = { response = "HTTP/1.1 100 Continue\r\n\r\n" .. response(200, { "Transfer-Encoding: chunked",
      "Connection: close", "Content-Type: application/json" }, chunked) }
    local res = assert(kontent():get_environment{ environment_id = ENV })
    assert.are.equal("Chunked", res.environment)
    assert.is_true(sockets[1].closed)
    assert.is_nil(sockets[1].kept)
    assert.is_nil(sockets[1].wire:find("Content-Length", 1, true)) -- a GET has no body
  end)

  it("passes HTTP errors to the same parser as libcurl (Kontent error body, request id)", function()
    local err_body = '{"request_id":"abc","error_code":232,"message":"already production"}'
    scripts[1] = { response = response(400, { "Content-Type: application/json",
      "Content-Length: " .. #err_body }, err_body) }
    local _, err = kontent():mark_environment_as_production{ environment_id = ENV, enable_webhooks = true }
    assert.are.equal("http", err.kind)
    assert.are.equal(400, err.status)
    assert.are.equal(232, err.code)
    assert.are.equal("abc", err.request_id)
    assert.truthy(sockets[1].wire:find("PUT ", 1, true) == 1)
  end)

  it("maps connect failures as libcurl does (nothing sent)", function()
    scripts[1] = { connect_err = "connection refused" }
    local _, err = kontent():clone_environment{ environment_id = ENV, name = "x" }
    assert.are.same({ "transport", "connect", false, false, true },
      { err.kind, err.code, err.sent, err.maybe_applied, err.retryable })
    scripts[1] = { connect_err = "timeout" }
    _, err = kontent():clone_environment{ environment_id = ENV, name = "x" }
    assert.are.same({ "timeout", "timeout", false, true }, { err.kind, err.code, err.sent, err.retryable })
    scripts[1] = { connect_err = "no resolver defined to resolve \"api.example\"" }
    _, err = kontent():get_environment{ environment_id = ENV }
    assert.are.equal("resolve", err.code)
    assert.matches("resolver", err.message)
    scripts[1] = { connect_err = "api.example could not be resolved (3: Host not found)" }
    _, err = kontent():get_environment{ environment_id = ENV }
    assert.are.same({ "resolve", true }, { err.code, err.retryable })
  end)

  it("a create that got no answer may have been applied; a dead pooled GET is sent again once", function()
    scripts[1] = { response = "", reused = 1 }
    local _, err = kontent():clone_environment{ environment_id = ENV, name = "x" }
    -- not retryable: a create that may have reached the server is never sent again
    assert.are.same({ "transport", "recv", true, true, false },
      { err.kind, err.code, err.sent, err.maybe_applied, err.retryable })
    assert.are.equal(1, #sockets) -- never sent twice
    local ok_body = '{"id":"y","environment":"E"}'
    sockets = {}
    scripts[1] = { response = "", reused = 1 }
    scripts[2] = { response = response(200, { "Content-Length: " .. #ok_body }, ok_body) }
    assert.are.equal("E", assert(kontent():get_environment{ environment_id = ENV }).environment)
    assert.are.equal(2, #sockets)
  end)

  it("a truncated body and a read timeout are errors after sending", function()
    scripts[1] = { response = response(200, { "Content-Length: 100" }, '{"id":') }
    local _, err = kontent():get_environment{ environment_id = ENV }
    assert.are.same({ "recv", true, false }, { err.code, err.sent, err.maybe_applied })
    scripts[1] = { response = "HTTP/1.1 200 OK\r\n", eof = "timeout" }
    _, err = kontent():clone_environment{ environment_id = ENV, name = "x" }
    assert.are.same({ "timeout", "timeout", true, true }, { err.kind, err.code, err.sent, err.maybe_applied })
    scripts[1] = { send_err = "broken pipe" }
    _, err = kontent():clone_environment{ environment_id = ENV, name = "x" }
    assert.are.same({ "send", true, true }, { err.code, err.sent, err.maybe_applied })
  end)

  it("caps headers at 256 KiB and bodies at max_response_size", function()
    local big = {}
    for i = 1, 300 do big[i] = "X-Big-" .. i .. ": " .. ("v"):rep(1000) end
    scripts[1] = { response = response(200, big, ""), piece = 65536 }
    local _, err = kontent():get_environment{ environment_id = ENV }
    assert.are.same({ "transport", "too_large", false }, { err.kind, err.code, err.retryable })
    assert.matches("headers", err.message)
    scripts[1] = { response = response(200, { "X-Long: " .. ("v"):rep(110 * 1024) }, ""), piece = 65536 }
    _, err = kontent():get_environment{ environment_id = ENV }
    assert.are.equal("too_large", err.code) -- one line over 100 KiB, as libcurl
    scripts[1] = { response = response(200, { "Content-Length: 1000" }, ("x"):rep(1000)) }
    _, err = kontent{ max_response_size = 100 }:get_environment{ environment_id = ENV }
    assert.are.equal("too_large", err.code)
    assert.matches("max_response_size (100 bytes)", err.message, 1, true)
    scripts[1] = { response = response(200, { "Transfer-Encoding: chunked" },
      "3e8\r\n" .. ("x"):rep(1000) .. "\r\n0\r\n\r\n") }
    _, err = kontent{ max_response_size = 100 }:get_environment{ environment_id = ENV }
    assert.are.equal("too_large", err.code)
    scripts[1] = { response = response(200, {}, ("x"):rep(1000)) } -- no length: read to the end
    _, err = kontent{ max_response_size = 100 }:get_environment{ environment_id = ENV }
    assert.are.equal("too_large", err.code)
  end)

  it("refuses malformed answers", function()
    scripts[1] = { response = "SSH-2.0-OpenSSH\r\n\r\n" }
    local _, err = kontent():get_environment{ environment_id = ENV }
    assert.are.same({ "transport", "protocol", true }, { err.kind, err.code, err.sent })
    -- a chunked body that cannot be decoded is incomplete (RFC 9112 §8), as with libcurl
    scripts[1] = { response = response(200, { "Transfer-Encoding: chunked" }, "zz\r\n") }
    _, err = kontent():get_environment{ environment_id = ENV }
    assert.are.same({ "recv", true }, { err.code, err.retryable })
  end)

  it("verifies TLS by default, by host name; insecure turns it off; ca_file cannot apply", function()
    local ok_body = '{"id":"y"}'
    scripts[1] = { response = response(200, { "Content-Length: " .. #ok_body }, ok_body) }
    assert(kontent{ base_url = "https://manage.example/v2" }:get_environment{ environment_id = ENV })
    assert.are.same({ name = "manage.example", verify = true }, sockets[1].tls)
    assert.are.equal(443, sockets[1].port)
    assert.truthy(sockets[1].wire:find("\r\nHost: manage.example\r\n", 1, true))
    assert.are.equal("envclone:https:manage.example:443:kontent:verify:pooled", sockets[1].opts.pool)

    scripts[1] = { response = response(200, { "Content-Length: " .. #ok_body }, ok_body) }
    assert(kontent{ base_url = "https://manage.example/v2", insecure = true }:get_environment{ environment_id = ENV })
    assert.is_false(sockets[2].tls.verify)
    assert.matches(":insecure:pooled$", sockets[2].opts.pool)

    scripts[1] = { tls_err = "20: unable to get local issuer certificate" }
    local _, err = kontent{ base_url = "https://manage.example/v2" }:get_environment{ environment_id = ENV }
    assert.are.same({ "transport", "tls", false, false }, { err.kind, err.code, err.sent, err.retryable })

    local n = #sockets
    _, err = kontent{ base_url = "https://manage.example/v2", ca_file = "/tmp/ca.pem" }
      :get_environment{ environment_id = ENV }
    assert.are.equal("tls", err.code)
    assert.matches("lua_ssl_trusted_certificate", err.message)
    assert.are.equal(n, #sockets)
  end)

  it("validation errors are the core's, before any socket", function()
    local _, err = kontent():clone_environment{ environment_id = "nope", name = "x" }
    assert.are.equal("validation", err.kind)
    assert.are.equal("environment_id", err.field)
    assert.are.equal(0, #sockets)
  end)

  it("never puts the credential in an error", function()
    scripts[1] = { connect_err = "connection refused" }
    local _, err = kontent():get_environment{ environment_id = ENV }
    assert.is_nil(tostring(err):find("secret-api-key", 1, true))
  end)
end)
