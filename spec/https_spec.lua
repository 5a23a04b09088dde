-- HTTPS as the vendors serve it (issue 17): the emulator behind nginx as a
-- TLS front end — one server `listen ... ssl http2` (HTTP/2 offered by ALPN,
-- as the vendors' CDNs answer) and one `listen ... ssl` (HTTP/1.1 only) —
-- with a CA made at test time and verification on. Through each: all ten
-- operations and the waiter, a batch of 48 mixed calls, and the README demo.
-- nginx's access log ($server_protocol $connection $ssl_session_reused) is
-- what the assertions read: which protocol ran, which requests shared a
-- connection, which handshakes were resumed.
local envclone = require("envclone")
local emu = require("spec.support.emu")
local tls_front = require("spec.support.tls_front")
local tour = require("spec.support.ten_ops")
local socket = require("socket")

local e, front
local VENDORS = { "versori", "qovery", "kontent", "droplit" }

setup(function()
  e = emu.start{ kontent_clone_seconds = 0.2 }
  front = tls_front.start(e)
end)

teardown(function()
  if front then front:stop() end
  if e then e:stop() end
end)

local function clients(origin, extra)
  local c = {}
  for _, vendor in ipairs(VENDORS) do c[vendor] = envclone[vendor](front:client_options(vendor, origin, extra)) end
  return c
end

local function close_all(c)
  for _, client in pairs(c) do client:close() end
end

-- The access log entries of `port` once there are `n` of them (nginx writes
-- a line when it has finished the request: a moment after the client has
-- its answer).
local function log_of(port, n)
  local entries
  for _ = 1, 100 do
    entries = {}
    for _, l in ipairs(front:log()) do
      if tonumber(l.port) == port then entries[#entries + 1] = l end
    end
    if #entries >= n then return entries end
    socket.sleep(0.02)
  end
  return entries
end

local function count_keys(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- Connections by method class: { gets = {conn = count}, others = {conn = count} }.
local function connections(entries)
  local gets, others = {}, {}
  for _, l in ipairs(entries) do
    local t = l.method == "GET" and gets or others
    t[l.connection] = (t[l.connection] or 0) + 1
  end
  return gets, others
end

local fronts = {
  { name = "HTTP/2 by ALPN (listen ssl http2)", origin = "h2", port = "h2_port", protocol = "HTTP/2.0" },
  { name = "HTTP/1.1 only (listen ssl)", origin = "h1", port = "h1_port", protocol = "HTTP/1.1" },
}

for _, f in ipairs(fronts) do
  describe("through nginx, " .. f.name, function()
    before_each(function()
      e:reset()
      front:clear_log()
    end)

    it("runs all ten operations and the waiter; only GETs reuse a connection", function()
      local c = clients(front[f.origin])
      local steps = tour.run(c, e.seed, "t" .. f.origin)
      close_all(c)
      assert.are.equal("", tour.failures(steps))
      assert.are.equal(#tour.names, #steps)
      local entries = log_of(front[f.port], 10)
      assert.is_true(#entries >= 11, "at least one request per operation and a poll")
      local seen_before = {}
      for _, l in ipairs(entries) do
        assert.are.equal(f.protocol, l.protocol, l.method .. " " .. l.uri)
        -- (a create's lookup by key, a GET before it, finds nothing: 404)
        if not (l.method == "GET" and l.status == "404") then
          assert.matches("^2", l.status, l.method .. " " .. l.uri)
        end
        if l.method ~= "GET" then
          -- a create (or PUT/PATCH/DELETE) opens its own connection: nothing went before it there
          assert.is_nil(seen_before[l.connection], l.method .. " " .. l.uri .. " went out on a reused connection")
        end
        seen_before[l.connection] = true
      end
      local gets = connections(entries)
      local n_gets = 0
      for _, k in pairs(gets) do n_gets = n_gets + k end
      assert.is_true(n_gets >= 3, "the waiter's polls and the reads")
      assert.is_true(count_keys(gets) < n_gets, "GETs shared connections")
    end)

    it("runs a batch of 48 mixed calls: GETs share connections, creates do not", function()
      -- the limiter would keep Kontent's GETs to one environment one at a
      -- time; here the question is how they share connections
      local c = clients(front[f.origin], { rate_limit = false })
      local b = envclone.batch{ max_in_flight = 48 }
      local env = e.seed.kontent.environment_id
      for _ = 1, 32 do b:add(c.kontent, "get_environment", { environment_id = env }) end
      for i = 1, 4 do
        b:add(c.droplit, "create_environment", { ecosystemId = e.seed.droplit.ecosystem_id, alias = "b_" .. i })
        b:add(c.qovery, "clone_application", { applicationId = e.seed.qovery.application_id,
          environment_id = e.seed.qovery.environment_id, name = "batch-" .. i })
        b:add(c.versori, "clone_environment", { organisation_id = e.seed.versori.organisation_id,
          project_id = e.seed.versori.project_id, oldEnvName = "staging", newEnvName = "batch-" .. i })
        b:add(c.kontent, "clone_environment", { environment_id = env, name = "Batch " .. i })
      end
      local r = b:run()
      close_all(c)
      assert.are.equal(48, r.succeeded, (r.failed or 0) .. " failed")
      -- and one GET before each Droplit, Qovery and Versori create: its lookup
      -- by key (envclone.reconcile; Kontent's needs a subscription key)
      local entries = log_of(front[f.port], 60)
      assert.are.equal(60, #entries)
      local gets, others = connections(entries)
      for _, l in ipairs(entries) do assert.are.equal(f.protocol, l.protocol) end
      -- each create on a connection no other create used
      for conn, n in pairs(others) do assert.are.equal(1, n, "two creates on connection " .. conn) end
      if f.protocol == "HTTP/2.0" then
        -- multiplexed: the 44 GETs ride a few connections as streams
        assert.is_true(count_keys(gets) <= 3, count_keys(gets) .. " connections for 44 GETs")
      else
        assert.is_true(count_keys(gets) <= 44)
      end
    end)

    it("resumes the TLS session on each create after the first (a fresh connection, not a full handshake)",
      function()
        local opts = front:client_options("droplit", front[f.origin])
        opts.reconcile = false -- the creates alone: no lookup GET between them
        local d = envclone.droplit(opts)
        for i = 1, 10 do
          assert(d:create_environment{ ecosystemId = e.seed.droplit.ecosystem_id, alias = "r_" .. i })
        end
        d:close()
        local entries = log_of(front[f.port], 10)
        assert.are.equal(10, #entries)
        local conns, resumed = {}, 0
        for i, l in ipairs(entries) do
          conns[l.connection] = true
          if i > 1 and l.reused == "r" then resumed = resumed + 1 end
        end
        assert.are.equal(10, count_keys(conns), "a connection per create")
        assert.are.equal(9, resumed, "handshakes resumed after the first")
      end)

    -- the examples are Lua 5.4 scripts (the LuaJIT run of this file has no Lua 5.4 core to give them)
    local demo_it = _VERSION == "Lua 5.4" and it or pending
    demo_it("runs the README demo (examples/demo.lua with ENVCLONE_CA_FILE)", function()
      local cmd = "ENVCLONE_EMULATOR_URL=" .. emu.quote(front[f.origin]) .. " ENVCLONE_CA_FILE=" .. emu.quote(front.ca)
        .. " LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH=" .. emu.quote((os.getenv("ENVCLONE_BUILD") or "build")
        .. "/?.so;;") .. " lua5.4 examples/demo.lua 2>&1"
      local p = assert(io.popen(cmd))
      local out = p:read("*a")
      local ok = p:close()
      assert.is_truthy(ok, out)
      assert.matches("demo finished", out)
      local entries = log_of(front[f.port], 6)
      assert.is_true(#entries >= 6, out)
      for _, l in ipairs(entries) do assert.are.equal(f.protocol, l.protocol) end
    end)
  end)
end

describe("http_version", function()
  before_each(function()
    e:reset()
    front:clear_log()
  end)

  it('"1.1" speaks HTTP/1.1 to a server that offers HTTP/2', function()
    local k = envclone.kontent(front:client_options("kontent", front.h2, { http_version = "1.1" }))
    assert(k:get_environment{ environment_id = e.seed.kontent.environment_id })
    k:close()
    local entries = log_of(front.h2_port, 1)
    assert.are.equal("HTTP/1.1", entries[1].protocol)
  end)

  it('"auto" and "2" speak HTTP/2 where ALPN offers it, HTTP/1.1 where it does not', function()
    for _, v in ipairs{ "auto", "2" } do
      for _, origin in ipairs{ "h2", "h1" } do
        front:clear_log()
        local k = envclone.kontent(front:client_options("kontent", front[origin], { http_version = v }))
        assert(k:get_environment{ environment_id = e.seed.kontent.environment_id })
        k:close()
        local entries = log_of(front[origin .. "_port"], 1)
        assert.are.equal(origin == "h2" and "HTTP/2.0" or "HTTP/1.1", entries[1].protocol, v .. " " .. origin)
      end
    end
  end)

  it('"2" over plain http to an HTTP/1.1 server fails as a transport error, and a create is not re-sent', function()
    local d = e:client("droplit", { http_version = "2", retry = { max_attempts = 3, base_delay = 0.01 } })
    local before = e:stats().requests
    local res, err = d:create_environment{ ecosystemId = e.seed.droplit.ecosystem_id }
    assert.is_nil(res)
    assert.are.equal("transport", err.kind, tostring(err))
    assert.is_true(e:stats().requests - before <= 1)
    assert.is_true(err.attempts == 1 or err.maybe_applied == false, tostring(err))
  end)

  it("takes only auto, 1.1 and 2", function()
    for _, bad in ipairs{ "3", "1.0", "h2", 2, true } do
      assert.has_error(function() e:client("kontent", { http_version = bad }) end)
    end
    assert.has_error(function() e:client("kontent", { http_version = "2", transport = "cosocket" }) end,
      nil)
  end)
end)
