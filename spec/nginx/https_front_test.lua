-- envclone inside nginx over HTTPS (issue 17): content_by_lua handlers
-- (spec/nginx/https_app.lua) call the emulator through this nginx's own TLS
-- front end — `listen ... ssl http2`, a CA made at test time — over
-- cosockets, with verification on (lua_ssl_trusted_certificate, SNI). The
-- cosocket transport speaks HTTP/1.1, which the front end offers beside h2.
-- The front end's access log says what went over the wire.
--
-- Run by ctest (test "nginx") with the other spec/nginx/*_test.lua files.
local socket = require("socket")
local cjson = require("cjson.safe")
local emu = require("spec.support.emu")
local nginx = require("spec.support.nginx")
local pki = require("spec.support.pki")

local e, server, front_port, pki_dir

local function get(path)
  local c = assert(socket.tcp())
  c:settimeout(60)
  assert(c:connect("127.0.0.1", server.port))
  c:send("GET " .. path .. " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
  local text = c:receive("*a") or ""
  c:close()
  return tonumber(text:match("^HTTP/%d%.%d (%d%d%d)")), cjson.decode(text:match("\r\n\r\n(.*)$") or "")
end

-- The front end's access log: { protocol, connection, reused, method, status }.
local function front_log()
  local out = {}
  for line in nginx.read(server.tmp .. "/front.log"):gmatch("[^\n]+") do
    local protocol, connection, reused, method, status = line:match("^(%S+) (%S+) (%S+) (%S+) (%S+)")
    out[#out + 1] = { protocol = protocol, connection = connection, reused = reused, method = method,
      status = status }
  end
  return out
end

local function clear_log() nginx.write(server.tmp .. "/front.log", "") end

setup(function()
  e = emu.start{ kontent_clone_seconds = 0.2 }
  local path
  pki_dir, path = pki.make()
  server = nginx.new()
  front_port = nginx.free_port()
  local origin = "https://127.0.0.1:" .. front_port
  local options = {}
  for vendor, url in pairs(e.base_urls) do
    if e.credentials[vendor] then
      local o = { base_url = origin .. url:sub(#e.url + 1) }
      for k, v in pairs(e.credentials[vendor]) do o[k] = v end
      for option, extra in pairs(e.extra_base_urls[vendor] or {}) do o[option] = origin .. extra:sub(#e.url + 1) end
      options[vendor] = o
    end
  end
  server:write_lua("envclone_https_conf", { options = options, seed = e.seed })
  server:write_conf(server:conf{ workers = 1, connections = 256, http = {
    "lua_socket_log_errors off;",
    "lua_ssl_trusted_certificate " .. path("ca.pem") .. ";",
    "lua_ssl_verify_depth 2;",
    "log_format front '$server_protocol $connection $ssl_session_reused $request_method $status';",
    "server {",
    "  listen 127.0.0.1:" .. front_port .. " ssl http2;",
    "  ssl_certificate " .. path("server.pem") .. ";",
    "  ssl_certificate_key " .. path("server.key") .. ";",
    "  access_log " .. server.tmp .. "/front.log front;",
    "  location / { proxy_pass http://127.0.0.1:" .. e.port .. "; proxy_http_version 1.1;"
      .. " proxy_set_header Connection \"\"; }",
    "}",
  }, server = {
    "location / { content_by_lua_block { require('spec.nginx.https_app').handle() } }",
  } })
  server:start{ lifetime = 300 }
end)

teardown(function()
  if server then server:cleanup() end
  pki.remove(pki_dir)
  if e then e:stop() end
end)

before_each(function()
  e:reset()
  clear_log()
end)

after_each(function()
  server:assert_no_lua_errors()
end)

describe("cosockets to an HTTPS front end (verification on)", function()
  it("run all ten operations and the waiter; only GETs reuse a pooled connection", function()
    local status, body = get("/tour?tag=cosocket")
    assert.are.equal(200, status)
    assert.are.equal("", body.failures)
    assert.are.equal(11, body.steps)
    local log = front_log()
    assert.is_true(#log >= 11, #log .. " requests")
    local seen, gets, get_conns = {}, 0, {}
    for _, l in ipairs(log) do
      assert.are.equal("HTTP/1.1", l.protocol)
      -- (a create's lookup by key, a GET before it, finds nothing: 404)
      if not (l.method == "GET" and l.status == "404") then assert.matches("^2", l.status) end
      if l.method == "GET" then
        gets = gets + 1
        get_conns[l.connection] = true
      else
        assert.is_nil(seen[l.connection], l.method .. " on a reused connection")
      end
      seen[l.connection] = true
    end
    local n = 0
    for _ in pairs(get_conns) do n = n + 1 end
    assert.is_true(n < gets, "GETs shared pooled connections")
  end)

  it("clone_environment with wait = true", function()
    local status, body = get("/wait?tag=cosocket")
    assert.are.equal(200, status)
    assert.is_true(body.ok, body.state)
    assert.are.equal("done", body.state)
  end)

  it("a batch of 48 mixed calls", function()
    local status, body = get("/batch?n=48")
    assert.are.equal(200, status)
    assert.are.equal(48, body.succeeded, table.concat(body.errors or {}, "\n"))
    local log = front_log()
    assert.are.equal(48, #log)
    local creates = {}
    for _, l in ipairs(log) do
      if l.method ~= "GET" then
        assert.is_nil(creates[l.connection], "two creates on one connection")
        creates[l.connection] = true
      end
    end
  end)
end)
