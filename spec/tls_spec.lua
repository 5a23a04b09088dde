-- TLS (issue 6): a loopback HTTPS server (spec/support/hostile_server.lua
-- with lua-sec) whose certificate is made at test time by a throwaway CA
-- (openssl CLI). Verification is on by default; ca_file trusts a private
-- CA; insecure = true is an explicit, working opt-out.
local envclone = require("envclone")
local hostile = require("spec.support.hostile")

local ENV = "8d20758c-d74c-4f59-ae04-ee928c0816b7"
local KEY = "tls-spec-api-key-0123456789"

local dir, srv

local pki = require("spec.support.pki")
local path

local function client(extra)
  local opts = { api_key = KEY, base_url = srv.url .. "/v2", timeout = 5, connect_timeout = 5, retry = false }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return envclone.kontent(opts)
end

local function tls_error(res, err)
  assert.is_nil(res)
  assert.is_true(envclone.is_error(err), tostring(err))
  assert.are.equal("transport", err.kind, tostring(err))
  assert.are.equal("tls", err.code, tostring(err))
  assert.is_false(err.sent, "nothing of the request was sent")
  assert.is_false(err.maybe_applied)
  assert.is_nil(tostring(err):find(KEY, 1, true))
end

setup(function()
  dir, path = pki.make()
  srv = hostile.start{ tls = { cert = path("server.pem"), key = path("server.key") } }
  srv:mode("good")
end)

teardown(function()
  if srv then srv:stop() end
  pki.remove(dir)
end)

describe("TLS", function()
  it("verifies by default: a self-signed chain fails with kind transport, code tls", function()
    local before = srv:stats()
    tls_error(client():get_environment{ environment_id = ENV })
    local after = srv:stats()
    assert.are.equal(before.requests, after.requests, "no HTTP request (and no credential) reached the server")
    assert.is_true(after.handshake_failures > before.handshake_failures, "the handshake was refused")
  end)

  it("a create is refused the same way, and may be retried: nothing was sent", function()
    local res, err = client():clone_environment{ environment_id = ENV, name = "X" }
    tls_error(res, err)
  end)

  it("succeeds with ca_file pointing at the CA", function()
    local env = assert(client{ ca_file = path("ca.pem") }:get_environment{ environment_id = ENV })
    assert.are.equal("Production", env.environment)
    assert.is_true(srv:stats().last_had_credential)
  end)

  it("fails with ca_file pointing at another CA", function()
    tls_error(client{ ca_file = path("other-ca.pem") }:get_environment{ environment_id = ENV })
  end)

  it("fails with a ca_file that does not exist", function()
    tls_error(client{ ca_file = path("missing.pem") }:get_environment{ environment_id = ENV })
  end)

  it("checks the host name: the CA's certificate for 127.0.0.1 does not do for localhost", function()
    local c = client{ ca_file = path("ca.pem"), base_url = "https://localhost:" .. srv.port .. "/v2" }
    tls_error(c:get_environment{ environment_id = ENV })
  end)

  it("refuses an expired certificate from the trusted CA: code tls, nothing sent, not retried", function()
    local old = hostile.start{ tls = { cert = path("expired.pem"), key = path("expired.key") } }
    old:mode("good")
    local ok, err = pcall(function()
      local c = envclone.kontent{ api_key = KEY, base_url = old.url .. "/v2", timeout = 5, ca_file = path("ca.pem"),
        retry = { max_attempts = 3, base_delay = 0.001 } }
      for _, call in ipairs{ { "get_environment", {} }, { "clone_environment", { name = "X" } } } do
        local args = call[2]
        args.environment_id = ENV
        local res, e = c[call[1]](c, args)
        tls_error(res, e)
        assert.matches("expired", e.message)
        assert.are.equal(1, e.attempts, "a certificate does not get better by asking again")
      end
      assert.are.equal(0, old:stats().requests, "no HTTP request reached the server")
    end)
    old:stop()
    assert(ok, err)
  end)

  it("insecure = true is an explicit opt-out that works", function()
    local c = client{ insecure = true }
    assert.is_true(c._handle:settings().insecure)
    local env = assert(c:get_environment{ environment_id = ENV })
    assert.are.equal("Production", env.environment)
    assert.is_false(client()._handle:settings().insecure, "off unless asked for")
  end)

  it("insecure takes only a boolean", function()
    assert.has_error(function() client{ insecure = "yes" } end)
    assert.has_error(function() client{ insecure = 1 } end)
  end)
end)
