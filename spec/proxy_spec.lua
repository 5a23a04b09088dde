-- An explicit proxy (issue 13): `proxy = "http://host:port"` sends every
-- request through a CONNECT tunnel, so the proxy sees TLS and never a
-- credential; a plain-http API root with a proxy is refused; proxies named
-- in the environment are used only with proxy = "env". Against a loopback
-- CONNECT proxy (spec/support/connect_proxy_server.lua) and the TLS hostile
-- server, both on 127.0.0.1.
local envclone = require("envclone")
local hostile = require("spec.support.hostile")
local connect_proxy = require("spec.support.connect_proxy")
local pki = require("spec.support.pki")
local emu = require("spec.support.emu")

local ENV = "8d20758c-d74c-4f59-ae04-ee928c0816b7"
local KEY = "proxy-spec-api-key-0123456789"

local dir, path, srv, proxy

setup(function()
  dir, path = pki.make()
  srv = hostile.start{ tls = { cert = path("server.pem"), key = path("server.key") } }
  srv:mode("good")
  proxy = connect_proxy.start()
end)

teardown(function()
  if proxy then proxy:stop() end
  if srv then srv:stop() end
  pki.remove(dir)
end)

local function client(extra)
  local opts = { api_key = KEY, base_url = srv.url .. "/v2", ca_file = path("ca.pem"), timeout = 5,
    connect_timeout = 5, retry = false, proxy = proxy.url }
  for k, v in pairs(extra or {}) do
    if v == emu.OMIT then opts[k] = nil else opts[k] = v end
  end
  return envclone.kontent(opts)
end

-- The CONNECT heads the proxy logged since `before` (its log's length).
local function heads_since(before)
  local log = proxy:seen()
  return log:sub(before + 1)
end

describe("proxy = 'http://host:port'", function()
  it("tunnels a GET and a create with CONNECT; the proxy never sees the credential", function()
    local log0 = #proxy:seen()
    local c = client()
    assert(c:get_environment{ environment_id = ENV })
    local env, err = c:clone_environment{ environment_id = ENV, name = "Through the proxy" }
    assert.is_table(env, tostring(err))
    local heads = heads_since(log0)
    local port = srv.url:match(":(%d+)$")
    assert.truthy(heads:find("CONNECT 127.0.0.1:" .. port .. " HTTP/1.1", 1, true), heads)
    local _, connects = heads:gsub("CONNECT ", "")
    assert.are.equal(2, connects, "the create went out on a fresh connection, so a second tunnel")
    assert.is_nil(heads:find("PLAIN", 1, true), "no request outside a tunnel")
    local log, bytes = proxy:seen()
    assert.is_nil(log:find(KEY, 1, true), "no credential in what the proxy read")
    assert.is_nil(log:lower():find("authorization", 1, true))
    assert.is_true(#bytes > 0, "the tunnel carried bytes")
    assert.is_nil(bytes:find(KEY, 1, true), "the tunnel carried TLS only")
    assert.is_nil(bytes:find("GET /", 1, true))
    assert.is_true(srv:stats().last_had_credential, "the server, behind the tunnel, got the credential")
  end)

  it("refuses a plain-http API root: the proxy would see the credential", function()
    local ok, msg = pcall(client, { base_url = "http://127.0.0.1:9/v2", ca_file = emu.OMIT })
    assert.is_false(ok)
    assert.matches("a proxy would see the credential of a plain%-http request to http://127.0.0.1:9/v2", msg)
    assert.is_nil(msg:find(KEY, 1, true))
  end)

  it("refuses malformed proxy settings with a clear message", function()
    for _, bad in ipairs{ "socks5://127.0.0.1:1080", "127.0.0.1:3128", "http://user:pw@127.0.0.1:3128",
      "http://127.0.0.1:3128/path", "http://127.0.0.1:99999" } do
      local ok, msg = pcall(client, { proxy = bad })
      assert.is_false(ok, bad)
      assert.matches("proxy", msg, 1, true)
      assert.is_nil(msg:find("pw@", 1, true))
    end
    assert.has_error(function() client{ proxy = 3128 } end)
  end)

  it("a proxy that refuses the tunnel: code 'proxy', nothing sent", function()
    -- the proxy answers 502 when it cannot reach the target
    local c = client{ base_url = "https://127.0.0.1:9/v2" }
    local _, err = c:clone_environment{ environment_id = ENV, name = "x" }
    assert.are.same({ "transport", "proxy", false, false, false },
      { err.kind, err.code, err.sent, err.maybe_applied, err.retryable }, tostring(err))
    assert.matches("502", err.message)
  end)

  it("a proxy that is down: connect error, nothing sent, retryable", function()
    local _, err = client{ proxy = "http://127.0.0.1:9" }:get_environment{ environment_id = ENV }
    assert.are.same({ "transport", "connect", false, true }, { err.kind, err.code, err.sent, err.retryable },
      tostring(err))
  end)
end)

describe("proxies in the environment", function()
  -- a child process, with https_proxy set, makes one call and prints the error code or "ok"
  local function child(proxy_option, extra_env)
    local script = string.format([[
      local envclone = require("envclone")
      local c = envclone.kontent{ api_key = %q, base_url = %q, ca_file = %q, timeout = 5, retry = false%s }
      local res, err = c:get_environment{ environment_id = %q }
      io.write(res and "ok" or err.code)]], KEY, srv.url .. "/v2", path("ca.pem"),
      proxy_option and (", proxy = " .. string.format("%q", proxy_option)) or "", ENV)
    local cmd = "env https_proxy=" .. emu.quote(proxy.url) .. " HTTPS_PROXY=" .. emu.quote(proxy.url)
      .. " ALL_PROXY=" .. emu.quote(proxy.url) .. " " .. (extra_env or "") .. " "
      .. (os.getenv("ENVCLONE_LUA") or "lua5.4")
      .. " -e " .. emu.quote(script) .. " 2>&1"
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    return out
  end

  it("are ignored unless proxy = 'env'", function()
    local before = #proxy:seen()
    assert.are.equal("ok", child(nil))
    assert.are.equal(before, #proxy:seen(), "the environment's proxy was not used")
    assert.are.equal("ok", child("env"))
    assert.truthy(heads_since(before):find("CONNECT 127.0.0.1:", 1, true), "proxy = 'env' used it")
    assert.is_nil((proxy:seen()):find(KEY, 1, true))
  end)

  it("no_proxy applies with proxy = 'env' only; an explicit proxy is used whatever it says", function()
    local no_proxy = "no_proxy=127.0.0.1 NO_PROXY=127.0.0.1"
    local before = #proxy:seen()
    assert.are.equal("ok", child("env", no_proxy))
    assert.are.equal(before, #proxy:seen(), "proxy = 'env' honours no_proxy")
    assert.are.equal("ok", child(proxy.url, no_proxy))
    assert.truthy(heads_since(before):find("CONNECT 127.0.0.1:", 1, true), "the explicit proxy was used")
  end)
end)

describe("the cosocket transport with a proxy", function()
  it("is unavailable, with a clear message, and opens no socket", function()
    local sockets = 0
    rawset(_G, "ngx", {
      get_phase = function() return "content" end, sleep = function() end, update_time = function() end,
      now = function() return os.time() end,
      socket = { tcp = function() sockets = sockets + 1 error("no socket expected") end },
    })
    local ok, res, err = pcall(function()
      return client{ transport = "cosocket", ca_file = emu.OMIT }:get_environment{ environment_id = ENV }
    end)
    rawset(_G, "ngx", nil)
    assert.is_true(ok, tostring(res))
    assert.is_nil(res)
    assert.are.same({ "transport", "unavailable", false }, { err.kind, err.code, err.sent })
    assert.matches("proxy", err.message)
    assert.are.equal(0, sockets)
  end)
end)
