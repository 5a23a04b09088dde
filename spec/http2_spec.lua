-- HTTP/2 (issue 13): over HTTPS libcurl negotiates h2 by ALPN, and an HTTP/2
-- server can end a request in ways HTTP/1.1 has no words for. They are
-- classified as their HTTP/1.1 equivalents (a connection that dropped after
-- the request: code "recv"): retried for idempotent calls; for a create,
-- maybe_applied, unless the server said the stream was not processed
-- (GOAWAY with a last-stream-id below the request's stream, or
-- REFUSED_STREAM: RFC 9113 §6.8, §8.7), when nothing was applied and a
-- retry is safe. Against spec/support/h2_server.lua on 127.0.0.1, which
-- speaks only h2: a request it counts arrived as an HTTP/2 HEADERS frame.
--
-- Issue 17: the same server also answers (HEADERS with HPACK, then DATA), so
-- every method, the retries that end in success (GOAWAY, REFUSED_STREAM,
-- 429 with Retry-After, 503), the request id and a batch run over real
-- HTTP/2 framing; before libcurl's HTTP/2 answers were read, each of these
-- failed as a malformed HTTP/1.1 answer. And a client set to
-- http_version = "1.1" meets a server that offers only h2.
local envclone = require("envclone")
local socket = require("socket")
local pki = require("spec.support.pki")
local emu = require("spec.support.emu")

local ENV = "8d20758c-d74c-4f59-ae04-ee928c0816b7"
local KEY = "http2-spec-api-key-0123456789"

local dir, path
local servers = {}

setup(function()
  dir, path = pki.make()
end)

teardown(function()
  for _, s in pairs(servers) do os.execute("kill " .. s.pid .. " 2>/dev/null") os.remove(s.stats) end
  pki.remove(dir)
end)

-- The server runs under LuaJIT where there is one: its FFI lets it read the
-- ClientHello's ALPN list and send the alert RFC 7301 prescribes.
local LUAJIT = (function()
  local r = os.execute("command -v luajit >/dev/null 2>&1")
  return r == true or r == 0
end)()

-- Starts a server in `mode` (a script of actions: spec/support/h2_server.lua),
-- under `lua` (default LuaJIT, else Lua 5.4).
local function start(mode, lua)
  lua = lua or (LUAJIT and "luajit" or "lua5.4")
  local port_file, stats = os.tmpname(), os.tmpname()
  os.remove(port_file)
  local cmd = string.format("exec env -u LD_PRELOAD %s spec/support/h2_server.lua %s %s %s %s %s 300"
    .. " >/dev/null 2>&1 </dev/null & echo $!", lua, emu.quote(port_file), emu.quote(stats), mode,
    emu.quote(path("server.pem")), emu.quote(path("server.key")))
  local p = assert(io.popen(cmd))
  local pid = tonumber(p:read("*l"))
  p:close()
  local port = assert(tonumber(emu.wait_for_port_file(pid, port_file, "^(%d+)\n")), "h2 server did not start")
  os.remove(port_file)
  local s = { pid = pid, stats = stats, url = "https://127.0.0.1:" .. port }
  servers[#servers + 1] = s
  return s
end

-- A server in `mode`, started once (for modes whose every request gets the same action).
local cached = {}
local function server(mode)
  cached[mode] = cached[mode] or start(mode)
  return cached[mode]
end

-- HTTP/2 requests (HEADERS frames) the server has seen.
local function requests(s)
  return tonumber((emu.read_file(s.stats) or ""):match(" (%d+)")) or 0
end

-- The server's counts, and one { conn, stream, method, path, action } per request.
local function stats(s)
  local text = emu.read_file(s.stats) or ""
  local c, r, p, a = text:match("^(%d+) (%d+) (%d+) (%d+)\n")
  local t = { connections = tonumber(c), requests = tonumber(r), processed = tonumber(p), alpn_refused = tonumber(a),
    log = {} }
  for conn, stream, method, target, action in text:gmatch("request %d+ conn (%d+) stream (%d+) (%S+) (%S+) (%S+)") do
    t.log[#t.log + 1] = { conn = tonumber(conn), stream = tonumber(stream), method = method, path = target,
      action = action }
  end
  return t
end

-- A Kontent client of server `s`; `retries` collects what on_retry saw.
local function client(s, extra)
  local retries = {}
  local opts = { api_key = KEY, base_url = s.url .. "/v2", ca_file = path("ca.pem"), timeout = 5,
    retry = { max_attempts = 3, base_delay = 0.001 },
    on_retry = function(err, attempt, delay)
      retries[#retries + 1] = { err = err, attempt = attempt, delay = delay }
    end }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return envclone.kontent(opts), retries
end

local function call(mode, what)
  local s = server(mode)
  local c = envclone.kontent{ api_key = KEY, base_url = s.url .. "/v2", ca_file = path("ca.pem"), timeout = 3,
    retry = { max_attempts = 2, base_delay = 0.001 } }
  local before = requests(s)
  local res, err
  if what == "get" then
    res, err = c:get_environment{ environment_id = ENV }
  else
    res, err = c:clone_environment{ environment_id = ENV, name = "h2" }
  end
  c:close()
  assert.is_nil(res)
  assert.is_true(requests(s) > before, "the request reached the server over HTTP/2")
  assert.is_nil(tostring(err):find(KEY, 1, true))
  return { err.kind, err.code, err.retryable, err.maybe_applied, err.attempts }, err
end

describe("an HTTP/2 server that ends the request without an answer", function()
  it("GOAWAY with last-stream-id 0 on the first request: a GET is retried", function()
    assert.are.same({ "transport", "recv", true, false, 2 }, call("goaway0", "get"))
  end)

  it("GOAWAY with last-stream-id 0: a create was not processed, so it is retried and not maybe_applied", function()
    local got, err = call("goaway0", "create")
    assert.are.same({ "transport", "recv", true, false, 2 }, got, tostring(err))
    assert.is_false(err.sent)
    assert.matches("did not process it", err.message)
  end)

  it("REFUSED_STREAM: the same (libcurl also tries a fresh connection itself)", function()
    assert.are.same({ "transport", "recv", true, false, 2 }, call("refused", "get"))
    assert.are.same({ "transport", "recv", true, false, 2 }, call("refused", "create"))
  end)

  it("GOAWAY naming the request's stream as processed, then no answer: a GET is retried, a create maybe_applied",
    function()
      assert.are.same({ "transport", "recv", true, false, 2 }, call("goaway_after", "get"))
      local got, err = call("goaway_after", "create")
      assert.are.same({ "transport", "recv", false, true, 1 }, got)
      assert.is_true(err.sent)
    end)

  it("RST_STREAM INTERNAL_ERROR: a GET is retried, a create maybe_applied and never sent twice", function()
    assert.are.same({ "transport", "recv", true, false, 2 }, call("reset", "get"))
    local s = server("reset")
    local before = requests(s)
    assert.are.same({ "transport", "recv", false, true, 1 }, call("reset", "create"))
    assert.are.equal(before + 1, requests(s))
  end)
end)

describe("an HTTP/2 server that answers", function()
  local PATH = "/v2/projects/" .. ENV

  it("every method envclone uses: the answer is read and decoded, the request was HTTP/2", function()
    local s = start("ok")
    local c = client(s)
    local cases = {
      { "GET", PATH, function() return c:get_environment{ environment_id = ENV } end,
        function(res) assert.are.same({ id = ENV, name = "h2 project", environment = "Production",
          is_production = false }, res) end },
      { "POST", PATH .. "/clone-environment", function() return c:clone_environment{ environment_id = ENV,
          name = "Over h2" } end,
        function(res)
          assert.are.equal("00000000-0000-4000-8000-000000000002", res.id)
          assert.are.equal("h2-management-key", res.management_api_key)
          assert.are.equal(envclone.null, res.secured_delivery_api_key)
        end },
      { "PUT", PATH .. "/mark-environment-as-production", function() return c:mark_environment_as_production{
          environment_id = ENV, enable_webhooks = true } end,
        function(res) assert.is_true(res) end },
      { "PATCH", PATH, function() return c:rename_environment{ environment_id = ENV, name = "Renamed over h2" } end,
        function(res) assert.are.equal("Renamed over h2", res.environment) end },
      { "DELETE", PATH, function() return c:delete_environment{ environment_id = ENV } end,
        function(res) assert.is_true(res.deleted) end },
    }
    for i, case in ipairs(cases) do
      local method, target, run, check = case[1], case[2], case[3], case[4]
      local res, err = run()
      assert.is_nil(err, method .. ": " .. tostring(err))
      check(res)
      -- the server logs a request from its HPACK-decoded :method and :path
      -- pseudo-headers: it arrived as HTTP/2
      local seen = stats(s).log[i]
      assert.are.same({ method, target, "ok" }, { seen.method, seen.path, seen.action }, method)
    end
    c:close()
    local st = stats(s)
    assert.are.equal(#cases, st.requests)
    assert.are.equal(#cases, st.processed)
  end)

  it("GOAWAY with last-stream-id 0 on a GET: retried on a new connection, and it succeeds", function()
    local s = start("goaway0_then_ok")
    local c, retries = client(s)
    local res, err = c:get_environment{ environment_id = ENV }
    c:close()
    assert.is_nil(err, tostring(err))
    assert.are.equal(ENV, res.id)
    assert.are.equal(1, #retries, "attempts 2")
    assert.are.same({ "transport", "recv" }, { retries[1].err.kind, retries[1].err.code })
    local st = stats(s)
    assert.are.same({ "goaway0", "ok" }, { st.log[1].action, st.log[2].action })
    assert.are_not.equal(st.log[1].conn, st.log[2].conn)
    assert.are.equal(1, st.processed)
  end)

  it("REFUSED_STREAM on a create: retried, it succeeds, and the server processed it once", function()
    local s = start("refused_then_ok")
    local c, retries = client(s)
    local res, err = c:clone_environment{ environment_id = ENV, name = "refused once" }
    c:close()
    assert.is_nil(err, tostring(err))
    assert.matches("^00000000%-0000%-4000%-8000%-", res.id)
    -- libcurl tries a refused stream again on a fresh connection itself; should
    -- it give up, envclone retries (nothing was processed)
    assert.is_true(#retries <= 1)
    local st = stats(s)
    assert.are.equal(2, st.requests)
    assert.are.equal(1, st.processed, "processed once")
    assert.are.same({ "refused", "ok" }, { st.log[1].action, st.log[2].action })
  end)

  it("429 with retry-after 1: the retry waits at least that long, then succeeds (a GET and a create)", function()
    for _, what in ipairs{ "get", "create" } do
      local s = start("429_then_ok")
      local c, retries = client(s)
      local t0 = socket.gettime()
      local res, err
      if what == "get" then
        res, err = c:get_environment{ environment_id = ENV }
      else
        res, err = c:clone_environment{ environment_id = ENV, name = "after 429" }
      end
      local elapsed = socket.gettime() - t0
      c:close()
      assert.is_nil(err, tostring(err))
      assert.is_string(res.id)
      assert.are.equal(1, #retries, what)
      assert.are.equal(429, retries[1].err.status)
      assert.are.equal(1, retries[1].err.retry_after)
      assert.are.equal(1, retries[1].delay)
      assert.is_true(elapsed >= 1, string.format("%s: the retry came %.3f s after the first attempt", what, elapsed))
      local st = stats(s)
      assert.are.equal(2, st.requests)
      assert.are.equal(1, st.processed)
    end
  end)

  it("a 503 on a GET: retried, and it succeeds", function()
    local s = start("503_then_503_then_ok")
    local c, retries = client(s)
    local res, err = c:get_environment{ environment_id = ENV }
    c:close()
    assert.is_nil(err, tostring(err))
    assert.are.equal(ENV, res.id)
    assert.are.equal(2, #retries, "attempts 3")
    assert.are.same({ 503, 503 }, { retries[1].err.status, retries[2].err.status })
    assert.are.equal(3, stats(s).requests)
  end)

  it("the request id of an HTTP/2 error answer; X-Request-Id wins over Request-Id in either order", function()
    for _, mode in ipairs{ "rid_x", "rid_xr", "rid_rx" } do
      local c = client(server(mode))
      local res, err = c:get_environment{ environment_id = ENV }
      c:close()
      assert.is_nil(res)
      assert.are.same({ "http", 404, "not_found" }, { err.kind, err.status, err.reason }, mode)
      assert.are.equal("h2-x-request-id", err.request_id, mode)
      assert.matches("[request_id h2-x-request-id]", tostring(err), 1, true)
    end
  end)

  it("a batch: its GETs ride few connections as streams, each create its own, every answer read", function()
    local s = start("ok")
    local c = client(s)
    local b = envclone.batch{ max_in_flight = 16 }
    for i = 1, 24 do
      if i % 6 == 0 then
        b:add(c, "clone_environment", { environment_id = ENV, name = "batch " .. i })
      else
        b:add(c, "get_environment", { environment_id = ENV })
      end
    end
    local results = b:run()
    c:close()
    for i, r in ipairs(results) do assert.is_true(r.ok, i .. ": " .. tostring(r.err)) end
    assert.are.equal(ENV, results[1].value.id)
    local st = stats(s)
    assert.are.equal(24, st.processed)
    local get_conns, post_conns, uses = {}, {}, {}
    for _, r in ipairs(st.log) do
      uses[r.conn] = (uses[r.conn] or 0) + 1
      if r.method == "GET" then get_conns[r.conn] = true else post_conns[#post_conns + 1] = r.conn end
    end
    local n = 0
    for _ in pairs(get_conns) do n = n + 1 end
    assert.is_true(n <= 2, n .. " connections carried the 20 GETs")
    assert.are.equal(4, #post_conns)
    for _, conn in ipairs(post_conns) do assert.are.equal(1, uses[conn], "a create shares no connection") end
  end)
end)

describe("http_version = \"1.1\" against a server that offers only h2", function()
  it("a clear tls error naming the mismatch, nothing sent, nothing retried; auto succeeds there", function()
    if not LUAJIT then
      pending("needs LuaJIT: the server reads the ClientHello's ALPN list through its FFI")
      return
    end
    local s = start("ok")
    for _, what in ipairs{ "create", "get" } do
      local c, retries = client(s, { http_version = "1.1" })
      local res, err
      if what == "get" then
        res, err = c:get_environment{ environment_id = ENV }
      else
        res, err = c:clone_environment{ environment_id = ENV, name = "h1 to h2" }
      end
      c:close()
      assert.is_nil(res)
      assert.are.same({ "transport", "tls", false, false, false, 1 },
        { err.kind, err.code, err.sent, err.retryable, err.maybe_applied, err.attempts }, tostring(err))
      assert.are.equal(0, #retries)
      assert.matches("protocol mismatch", err.message, 1, true)
      assert.matches("speaks only HTTP/2", err.message, 1, true)
      assert.matches('http_version = "1.1"', err.message, 1, true)
      assert.matches("no application protocol", err.message, 1, true)
      assert.is_nil(tostring(err):find(KEY, 1, true))
    end
    local st = stats(s)
    assert.are.same({ 2, 0, 0, 2 }, { st.alpn_refused, st.requests, st.processed, st.connections })
    local c = client(s)
    local res, err = c:clone_environment{ environment_id = ENV, name = "auto" }
    c:close()
    assert.is_nil(err, tostring(err))
    assert.is_string(res.id)
    assert.are.equal(1, stats(s).processed)
  end)

  it("a server that leaves ALPN unanswered and drops the HTTP/1.1 request: a create is not sent twice", function()
    -- under Lua 5.4 the server has no FFI: OpenSSL completes the handshake
    -- without ALPN, the client speaks HTTP/1.1 and the server, waiting for
    -- the HTTP/2 preface, closes. The client cannot tell this from a drop
    -- after the request: maybe_applied, not retried
    local s = start("ok", "lua5.4")
    local c, retries = client(s, { http_version = "1.1" })
    local res, err = c:clone_environment{ environment_id = ENV, name = "h1 to h2" }
    c:close()
    assert.is_nil(res)
    assert.are.same({ "transport", "recv", false, true, 1 },
      { err.kind, err.code, err.retryable, err.maybe_applied, err.attempts }, tostring(err))
    assert.are.equal(0, #retries)
    local st = stats(s)
    assert.are.same({ 1, 0, 0 }, { st.connections, st.requests, st.processed })
  end)
end)
