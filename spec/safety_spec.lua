-- Lua state safety and secrets (issue 6).
--  * An error raised inside a user hook (on_retry, log, on_progress) or an
--    argument table's metamethod propagates cleanly: pcall catches it, the
--    same client keeps working, and (under scripts/asan.sh) nothing leaks.
--  * Every method of a closed client raises a clear error.
--  * Tokens, cookies and API keys never show in tostring(client),
--    tostring(err), err fields, log hook output or raise messages.
local envclone = require("envclone")
local core = require("envclone.core")
local emu = require("spec.support.emu")
local hostile = require("spec.support.hostile")

local e, seed, creds, ENV

local function client(vendor, extra) return e:client(vendor, extra, { retry = false }) end

local function requests() return e:stats().requests end

-- One 503 with Retry-After: 0 for the next get_environment.
local function one_503()
  e:faults{ rules = { { operation = "kontent.get_environment", queue = { "503" }, retry_after = 0 } } }
end

setup(function()
  e = emu.start{ kontent_clone_seconds = 0.3 }
  seed, creds = e.seed, e.credentials
  ENV = seed.kontent.environment_id
end)

teardown(function()
  if e then e:stop() end
end)

before_each(function() e:reset() end)

describe("an error raised in a hook", function()
  it("on_retry: propagates through pcall, and the client still works", function()
    local calls = 0
    local k = client("kontent", { retry = { max_attempts = 3, base_delay = 0 },
      on_retry = function(err, attempt, delay)
        calls = calls + 1
        assert(envclone.is_error(err) and attempt == 1 and delay == 0)
        error("boom from on_retry")
      end })
    for round = 1, 3 do
      one_503()
      local before = requests()
      local ok, msg = pcall(k.get_environment, k, { environment_id = ENV })
      assert.is_false(ok)
      assert.matches("boom from on_retry", tostring(msg))
      assert.are.equal(round, calls)
      assert.are.equal(before + 1, requests(), "the raise stopped the retries")
      e:clear_faults()
      local env = assert(k:get_environment{ environment_id = ENV })
      assert.are.equal(seed.kontent.environment_name, env.environment)
    end
  end)

  it("log: propagates through pcall, and the client still works", function()
    local raise = true
    local lines = 0
    local k = client("kontent", { log = function()
      lines = lines + 1
      if raise then error({ code = "table error from log" }) end
    end })
    local ok, err = pcall(k.get_environment, k, { environment_id = ENV })
    assert.is_false(ok)
    assert.are.equal("table error from log", err.code, "the hook's own error value comes through")
    assert.is_false((pcall(k.get_environment, k, { environment_id = "bad" }))) -- the log of a validation error
    raise = false
    assert(k:get_environment{ environment_id = ENV })
    local _, verr = k:get_environment{ environment_id = "bad" }
    assert.are.equal("validation", verr.kind)
    assert.is_true(lines >= 4)
  end)

  it("on_progress (wait_for_cloning): propagates, the client still works, the clone completes", function()
    local k = client("kontent")
    local clone = assert(k:clone_environment{ environment_id = ENV, name = "Hooked" })
    local ok, msg = pcall(k.wait_for_cloning, k, { environment_id = clone.id, timeout = 10, interval = 0.05,
      on_progress = function() error("boom from on_progress") end })
    assert.is_false(ok)
    assert.matches("boom from on_progress", tostring(msg))
    local state = assert(k:wait_for_cloning{ environment_id = clone.id, timeout = 10, interval = 0.05 })
    assert.are.equal("done", state.cloning_state)
  end)

  it("on_progress through a call's wait = true option: the same", function()
    local k = client("kontent")
    local ok, msg = pcall(k.clone_environment, k, { environment_id = ENV, name = "Waited", wait = true,
      wait_interval = 0.05, on_progress = function() error("boom in wait") end })
    assert.is_false(ok)
    assert.matches("boom in wait", tostring(msg))
    assert(k:get_environment{ environment_id = ENV })
  end)

  it("a hook raising after a create succeeded: the error keeps what was created (issue 23, question 1)", function()
    local function creates() return e:stats().applied.creates end
    -- 1: the log hook raises on the create's success line
    local k = client("kontent", { log = function(_, msg)
      if msg:find("clone_environment ok", 1, true) then error("boom after create") end
    end })
    local ok, err = pcall(k.clone_environment, k, { environment_id = ENV, name = "LogRaised" })
    assert.is_false(ok)
    assert.is_true(envclone.is_error(err), tostring(err))
    assert.are.equal("hook", err.kind)
    assert.matches("boom after create", tostring(err.cause))
    assert.matches("boom after create", tostring(err))
    assert.matches("kontent.clone_environment: hook", tostring(err), 1, true)
    assert.is_string(err.created.id)
    assert.is_nil(err.created.management_api_key, "only the id: Kontent's answer holds the API key")
    assert.are.equal(1, creates())
    assert(k:get_cloning_state{ environment_id = err.created.id }) -- it exists
    -- a create without a waiter keeps its whole answer
    local d = client("droplit", { log = function(_, msg)
      if msg:find("create_environment ok", 1, true) then error({ code = "a table" }) end
    end })
    ok, err = pcall(d.create_environment, d, { ecosystemId = seed.droplit.ecosystem_id, alias = "hooked" })
    assert.is_false(ok)
    assert.are.equal("hook", err.kind)
    assert.are.equal("a table", err.cause.code, "the hook's own error value is err.cause")
    assert.are.equal("hooked", err.created.alias)
    assert.is_string(err.created.id)
    -- 2: on_progress raises during wait = true
    local plain = client("kontent")
    ok, err = pcall(plain.clone_environment, plain, { environment_id = ENV, name = "ProgressRaised", wait = true,
      wait_interval = 0.05, on_progress = function() error("boom in wait") end })
    assert.is_false(ok)
    assert.are.equal("hook", err.kind)
    assert.matches("boom in wait", tostring(err.cause))
    assert.is_string(err.created.id)
    assert(plain:wait_for_cloning{ environment_id = err.created.id, timeout = 10, interval = 0.05 })
    -- 3: the log hook raises on a poll of the wait
    local polled = client("kontent", { log = function(_, msg)
      if msg:find("get_cloning_state", 1, true) then error("boom in a poll") end
    end })
    ok, err = pcall(polled.clone_environment, polled, { environment_id = ENV, name = "PollRaised", wait = true,
      wait_interval = 0.05 })
    assert.is_false(ok)
    assert.are.equal("hook", err.kind)
    assert.is_string(err.created.id)
    -- 4: in a batch task, the error (an envclone error) is the task's result
    local b = envclone.batch()
    local i = b:add(function()
      return plain:clone_environment{ environment_id = ENV, name = "TaskRaised", wait = true, wait_interval = 0.05,
        on_progress = function() error("boom in a task") end }
    end)
    local results = b:run()
    assert.is_false(results[i].ok)
    assert.are.equal("hook", results[i].err.kind)
    assert.is_string(results[i].err.created.id)
    assert.are.equal(5, creates(), "each create made once")
    -- 5: a hook raising in a call that creates nothing propagates unchanged
    local g = client("kontent", { log = function() error({ code = "unchanged" }) end })
    ok, err = pcall(g.get_environment, g, { environment_id = ENV })
    assert.is_false(ok)
    assert.are.equal("unchanged", err.code)
    assert.is_false(envclone.is_error(err))
  end)

  it("an argument table's __index and __pairs are never consulted (no caller code runs mid-call)", function()
    local k = client("kontent")
    local mt = { __index = function() error("boom from __index") end,
      __pairs = function() error("boom from __pairs") end }
    local args = setmetatable({ environment_id = ENV, enable_webhooks = true }, mt)
    for _ = 1, 20 do
      local res, err = k:mark_environment_as_production(args)
      assert.is_nil(res) -- already production: Kontent's 232, which proves the request went out whole
      assert.are.equal(232, err.code)
    end
    assert.are.equal('{"enable_webhooks":true}', e:requests()[1].body)
  end)

  it("many raising calls and dropped clients leave no state behind (leaks: see scripts/asan.sh)", function()
    -- rate_limit = false: 200 calls at Kontent's 10/s would take 20 s
    local k = client("kontent", { log = function() error("x") end, rate_limit = false })
    for _ = 1, 200 do
      assert.is_false((pcall(k.get_environment, k, { environment_id = ENV })))
    end
    for _ = 1, 200 do
      local c = client("droplit")
      c:close()
      client("versori") -- never closed: __gc frees it
    end
    collectgarbage()
    collectgarbage()
    assert(client("kontent"):get_environment{ environment_id = ENV })
  end)
end)

describe("arguments with metamethods", function()
  it("are read raw: an __index that closes the client never runs, and nothing crashes", function()
    local d = client("droplit")
    local ran = false
    local args = setmetatable({ ecosystemId = seed.droplit.ecosystem_id }, { __index = function()
      ran = true
      d:close()
      return "$."
    end })
    local env = assert(d:create_environment(args))
    assert.is_false(ran)
    assert.are.equal(seed.droplit.ecosystem_id, env.ecosystemId)
    assert.is_nil(e:requests()[1].headers["x-system-metadata-prefix"])
    d:close()
  end)

  it("a credential passed as an id is not echoed in the validation error", function()
    local k = client("kontent")
    local _, err = k:get_environment{ environment_id = creds.kontent.api_key }
    assert.are.equal("validation", err.kind)
    assert.is_nil(tostring(err):find(creds.kontent.api_key:sub(1, 6), 1, true))
    assert.matches('got "***"', err.message, 1, true)
  end)
end)

describe("a closed client", function()
  local function closed_error(vendor)
    return "envclone: the " .. vendor .. " client is closed"
  end

  for _, vendor in ipairs{ "versori", "qovery", "kontent", "droplit" } do
    it(vendor .. ": every method raises a clear error; close is idempotent", function()
      local c = client(vendor)
      c:close()
      c:close()
      local methods = 0
      for _, op in ipairs(envclone.operations) do
        if op.vendor == vendor then
          local ok, msg = pcall(c[op.name], c, {})
          assert.is_false(ok, op.name)
          assert.are.equal(closed_error(vendor), (tostring(msg):gsub("^[^:]*:%d+: ", "")))
          methods = methods + 1
        end
      end
      assert.is_true(methods >= 1)
      if vendor == "kontent" then
        assert.has_error(function() c:wait_for_cloning{ environment_id = ENV, timeout = 1 } end, closed_error(vendor))
      end
      -- the C handle itself, as transports written in Lua use it
      assert.has_error(function() c._handle:settings() end, closed_error(vendor))
      -- one of this vendor's own operations, so the only reason to raise is the closed client
      local own
      for _, op in ipairs(envclone.operations) do
        if op.vendor == vendor then own = own or op.name end
      end
      assert.has_error(function() core.request(c._handle, own, {}) end, closed_error(vendor))
      assert.matches("(closed)", tostring(c), 1, true)
      for _, secret in pairs(creds[vendor]) do
        assert.is_nil(tostring(c):find(secret, 1, true))
      end
    end)
  end

  it("a to-be-closed variable closes the client at the end of its scope (Lua 5.4)", function()
    if _VERSION ~= "Lua 5.4" then
      pending("`<close>` is Lua 5.4 syntax: not testable under " .. _VERSION)
    end
    local chunk = assert(load([[
      local client, env_id = ...
      do
        local c <close> = client
        assert(c:get_environment{ environment_id = env_id })
      end
      return client
    ]]))
    local c = chunk(client("kontent"), ENV)
    assert.has_error(function() c:get_environment{ environment_id = ENV } end, closed_error("kontent"))
  end)
end)

describe("secrets", function()
  -- long, unique credentials, so any fragment of them is easy to spot
  local SECRETS = {
    versori = { token = "versori-SECRET-token-1a2b3c4d5e", cookie = "session=versori-SECRET-cookie-6f7a8b" },
    qovery = { token = "qovery-SECRET-token-9c0d1e2f3a" },
    kontent = { api_key = "kontent-SECRET-key-4b5c6d7e8f", subscription_api_key = "kontent-SECRET-subkey-7d8e9f0a1b" },
    droplit = { token = "droplit-SECRET-token-0a1b2c3d4e" },
  }
  local texts = {}

  local function collect(v, depth)
    depth = depth or 0
    if depth > 8 then return end
    if type(v) == "table" then
      if envclone.is_error(v) then texts[#texts + 1] = tostring(v) end
      for k, x in pairs(v) do
        collect(k, depth + 1)
        collect(x, depth + 1)
      end
    elseif v ~= nil then
      texts[#texts + 1] = tostring(v)
    end
  end

  local function logger(level, msg, fields)
    collect(level)
    collect(msg)
    collect(fields)
  end

  local function assert_clean()
    assert.is_true(#texts > 20, "collected " .. #texts .. " texts")
    for _, text in ipairs(texts) do
      for _, vendor in pairs(SECRETS) do
        for _, secret in pairs(vendor) do
          -- neither the secret nor its distinctive part
          local core_part = secret:match("SECRET%-[%w%-]+")
          assert.is_nil(text:find(core_part, 1, true), "a secret shows in: " .. text)
        end
      end
    end
  end

  local function wrong_client(vendor, extra)
    local opts = { base_url = e.base_urls[vendor], timeout = 5, retry = false, log = logger,
      on_retry = function(err) collect(err) end }
    for k, v in pairs(SECRETS[vendor]) do opts[k] = v end
    for k, v in pairs(extra or {}) do opts[k] = v end
    return envclone[vendor](opts)
  end

  it("never show in tostring(client), errors, err fields, retries or the log hook", function()
    for vendor in pairs(SECRETS) do
      local c = wrong_client(vendor)
      collect(tostring(c))
      collect(c._handle:settings())
      for _, op in ipairs(envclone.operations) do
        if op.vendor == vendor then
          collect({ c[op.name](c, {}) })                       -- validation error
          collect({ c[op.name](c, { bogus = SECRETS[vendor][op.credential] }) })
        end
      end
      c:close()
      collect(tostring(c))
    end
    -- 401s from the emulator (the credentials are wrong), with retries and logs
    local k = wrong_client("kontent", { retry = { max_attempts = 2, base_delay = 0 } })
    collect({ k:get_environment{ environment_id = ENV } })
    one_503()
    collect({ k:get_environment{ environment_id = ENV } })
    collect({ wrong_client("versori"):create_connection_version{ organisation_id = seed.versori.organisation_id,
      connection_id = seed.versori.connection_id, name = "x" } })
    collect({ wrong_client("droplit"):create_environment{ ecosystemId = seed.droplit.ecosystem_id } })
    -- transport errors
    collect({ wrong_client("qovery", { base_url = "http://127.0.0.1:9", connect_timeout = 2 })
      :clone_application{ applicationId = seed.qovery.application_id, name = "n",
        environment_id = seed.qovery.environment_id } })
    -- bad constructor options: the raise never echoes a credential
    for vendor, cs in pairs(SECRETS) do
      for name, secret in pairs(cs) do
        collect(select(2, pcall(envclone[vendor], { [name] = secret .. "\r\n" })))
        collect(select(2, pcall(envclone[vendor], { [name] = secret, tiemout = secret })))
      end
    end
    assert_clean()
  end)

  it("a server that echoes the credential everywhere cannot make it show", function()
    local srv = hostile.start()
    local ok, err = pcall(function()
      srv:mode("echo")
      for vendor in pairs(SECRETS) do
        local c = wrong_client(vendor, { base_url = srv.url })
        for _, op in ipairs(envclone.operations) do
          if op.vendor == vendor then
            local args = {}
            for _, f in ipairs(op.fields) do
              if f.required then
                if f.type == "boolean" then
                  args[f.name] = false
                else
                  args[f.name] = (f.format or ""):find("ULID") and seed.versori.organisation_id
                    or (f.format or ""):find("UUID") and ENV or "x"
                end
              end
            end
            -- a row addressed by either of two paths (Droplit: id, or
            -- ecosystemId;alias): the first path's parameters
            for name in op.path:gmatch("{([^}]+)}") do
              if args[name] == nil then args[name] = "x" end
            end
            local res, rerr = c[op.name](c, args)
            assert.is_nil(res)
            assert.are.equal(401, rerr.status, tostring(rerr))
            assert.is_true(srv:stats().last_had_credential, "the credential did go to the server")
            collect(rerr) -- message, code, request_id and the decoded body
          end
        end
      end
    end)
    srv:stop()
    assert(ok, err)
    assert_clean()
  end)
end)
