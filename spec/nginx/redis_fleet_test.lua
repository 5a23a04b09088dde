-- The fleet on one Redis (rate_limit_store): four Lua processes on one
-- emulator and two nginx workers on another (two machines that share only
-- Redis), all calling one Kontent environment with the emulators' Kontent
-- limits on. Counted from the two emulators' request logs: 0 x 429, never
-- more than 10 in any sliding second, never two in flight at once (each
-- request is held 30 ms by the emulator, so two in flight would arrive less
-- than 30 ms apart). Again with half the processes' clocks moved by +-0.5 s
-- and by +-5 s (a test-only offset): still within the limits, because the
-- clock is Redis's. The test-only client-clock switch breaks it (asserted:
-- the test can fail).
--
-- Both sides keep their limits under one origin (limiter.test_origin, a
-- test hook): the two emulators' ports stand in for one vendor.
--
-- Part of the ctest "nginx" entry (busted --pattern=_test spec/nginx).
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson.safe")
local emu = require("spec.support.emu")
local nginx = require("spec.support.nginx")
local rs = require("spec.support.redis")

local N = 6          -- calls per process or worker: 36 at 10/s, about 3.6 s a run
local HOLD = 0.03    -- the emulators' answer delay (s)

local ea, eb, server, r

local function get(path)
  local chunks = {}
  http.TIMEOUT = 10
  local ok, status = http.request{ url = "http://127.0.0.1:" .. server.port .. path, sink = ltn12.sink.table(chunks) }
  assert(ok, tostring(status))
  assert.are.equal(200, status, table.concat(chunks))
  return cjson.decode(table.concat(chunks))
end

describe("rate_limit_store: 4 Lua processes and 2 nginx workers on one Redis", function()
  if not rs.available() then
    it("needs redis-server (scripts/deps.sh test)", function() error("redis-server is not installed") end)
    return
  end

  setup(function()
    r = rs.start{ password = "fleet-pw" }
    ea = emu.start{ kontent_rate_limit = true }
    eb = emu.start{ kontent_rate_limit = true }
    server = nginx.new()
    server:write_lua("envclone_redis_fleet_conf", { api_key = eb.credentials.kontent.api_key,
      base_url = eb.base_urls.kontent, environment_id = eb.seed.kontent.environment_id, store = r.url,
      origin = "kontent.test" })
    server:write_conf(server:conf{ workers = 2, http = {
      "lua_shared_dict jobs 1m;",
      -- a paused Redis is a read timeout, which nginx would log as an error of its own
      "lua_socket_log_errors off;",
      "init_worker_by_lua_block { require('spec.nginx.redis_fleet_app').init_worker() }",
    }, server = {
      "location / { content_by_lua_block { require('spec.nginx.redis_fleet_app').handle() } }",
    } })
    server:start()
  end)

  teardown(function()
    if server then server:cleanup() end
    if ea then ea:stop() end
    if eb then eb:stop() end
    if r then r:stop() end
  end)

  after_each(function() server:assert_no_lua_errors() end)

  -- One run: offsets[i] is Lua process i's clock offset; client_clock the
  -- test-only switch for the processes with an offset. Returns the merged
  -- counts.
  local function run(offsets, client_clock, n)
    local calls_each = n or N
    for _, e in ipairs{ ea, eb } do
      e:reset()
      e:config{ kontent_rate_limit = true }
      e:faults{ delay = HOLD }
    end
    r:call("FLUSHALL")
    local at = socket.gettime() + 1.0
    local lua = os.getenv("ENVCLONE_LUA") or "lua5.4"
    local procs = {}
    for i, off in ipairs(offsets) do
      local out, errf = os.tmpname(), os.tmpname()
      local envs = {
        "WORKER_URL=" .. emu.quote(ea.base_urls.kontent), "WORKER_KEY=" .. emu.quote(ea.credentials.kontent.api_key),
        "WORKER_ENV=" .. emu.quote(eb.seed.kontent.environment_id), "WORKER_STORE=" .. emu.quote(r.url),
        "WORKER_N=" .. calls_each, "WORKER_ORIGIN=kontent.test", "WORKER_START_AT=" .. string.format("%.3f", at),
        "ENVCLONE_TEST_CLOCK_OFFSET=" .. off,
        "ENVCLONE_TEST_CLIENT_CLOCK=" .. (client_clock and "1" or "0"),
      }
      local cmd = "env " .. table.concat(envs, " ") .. " timeout 60 " .. lua .. " spec/support/redis_worker.lua >"
        .. out .. " 2>" .. errf .. " & echo $!"
      local p = assert(io.popen(cmd, "r"))
      procs[i] = { pid = tonumber(p:read("*l")), out = out, err = errf }
      p:close()
    end
    local job = string.format("%d", get("/start?n=" .. calls_each .. "&at=" .. string.format("%.3f", at)).id)
    local deadline = socket.gettime() + 40
    local workers
    repeat
      socket.sleep(0.1)
      local res = get("/results?id=" .. job)
      if res["0"] and res["1"] then workers = res end
      local running = false
      for _, p in ipairs(procs) do running = running or emu.alive(p.pid) end
    until (workers and not running) or socket.gettime() > deadline
    assert.is_truthy(workers, "the nginx workers did not finish")
    local statuses = { workers["0"], workers["1"] }
    for i, p in ipairs(procs) do
      local text = emu.read_file(p.out) or ""
      local list = cjson.decode(text)
      assert.is_truthy(list, "Lua process " .. i .. ": " .. text .. (emu.read_file(p.err) or ""))
      statuses[#statuses + 1] = list
      os.remove(p.out)
      os.remove(p.err)
    end
    -- count from the emulators' logs
    local times, n429, calls = {}, 0, 0
    local in_flight = 0
    for _, e in ipairs{ ea, eb } do
      for _, entry in ipairs(e:requests()) do
        if entry.path:find("/projects/", 1, true) then
          calls = calls + 1
          if entry.status == 429 then n429 = n429 + 1 else times[#times + 1] = entry.time end
        end
      end
      local c = e:concurrency().max_in_flight_per_key.kontent
      in_flight = math.max(in_flight, c and c[eb.seed.kontent.environment_id] or 0)
      e:clear_faults()
    end
    table.sort(times)
    local over, min_gap = 0, math.huge
    for i = 1, #times do
      if times[i + 10] and times[i + 10] - times[i] < 1.0 then over = over + 1 end
      if times[i + 1] then min_gap = math.min(min_gap, times[i + 1] - times[i]) end
    end
    local not_ok = 0
    for _, list in ipairs(statuses) do
      for _, s in ipairs(list) do if s ~= 200 then not_ok = not_ok + 1 end end
    end
    return { calls = calls, n429 = n429, over = over, min_gap = min_gap, in_flight = in_flight, not_ok = not_ok,
      statuses = statuses }
  end

  local function within_limits(c)
    local why = cjson.encode(c)
    assert.are.equal(6 * N, c.calls, why) -- (the default N)
    assert.are.equal(0, c.n429, why)
    assert.are.equal(0, c.not_ok, why)
    assert.are.equal(0, c.over, why)
    assert.are.equal(1, c.in_flight, why)
    -- one at a time across both machines: arrivals at least one answer delay apart
    assert.is_true(c.min_gap >= HOLD - 0.003, why)
  end

  it("0 x 429, at most 10 in any second, never two in flight", function()
    within_limits(run({ 0, 0, 0, 0 }))
  end)

  it("the same with clocks moved by +-0.5 s and +-5 s: the clock is Redis's", function()
    within_limits(run({ 0.5, -0.5, 0, 0 }))
    within_limits(run({ 5, -5, 0, 0 }))
  end)

  it("inside nginx, Redis paused: the workers go on through the fallback, one log line each", function()
    eb:reset()
    eb:config{ kontent_rate_limit = true }
    r:call("FLUSHALL")
    local before = select(2, server:log():gsub("rate_limit_store [^\n]* unavailable", ""))
    r:pause()
    local ok, err = pcall(function()
      local job = string.format("%d", get("/start?n=4&at=0").id)
      local deadline, res = socket.gettime() + 20
      repeat
        socket.sleep(0.1)
        res = get("/results?id=" .. job)
      until (res["0"] and res["1"]) or socket.gettime() > deadline
      assert.are.same({ 200, 200, 200, 200 }, res["0"])
      assert.are.same({ 200, 200, 200, 200 }, res["1"])
      local log = server:log()
      local lines = select(2, log:gsub("rate_limit_store [^\n]* unavailable", "")) - before
      assert.is_true(lines >= 1 and lines <= 2, log)
      assert.is_nil(log:find("fleet-pw", 1, true))
    end)
    r:resume()
    assert(ok, err)
  end)

  it("the client-clock switch (test only) breaks the limits: this test can fail", function()
    -- a clock 0.5 s ahead counts the others' ends out of its second half a second early
    local c = run({ 0.5, -0.5, 0, 0 }, true, 10)
    if os.getenv("FLEET_DEBUG") then print(cjson.encode(c)) end
    local broken = c.n429 > 0 or c.over > 0 or c.in_flight > 1 or c.min_gap < HOLD - 0.003
    assert.is_true(broken, cjson.encode(c))
  end)
end)
