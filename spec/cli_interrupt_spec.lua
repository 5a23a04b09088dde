-- Interrupts that lose nothing: SIGINT and SIGTERM sent to `envclone` at
-- random moments of a 40-call batch and of a `--wait`, against the emulator
-- with its answers delayed (so that calls are on the wire when the signal
-- lands). Every object the emulator holds afterwards appears in stdout
-- with its id, stdout is one valid JSON document, the exit status is 130 /
-- 143; a wait with an 8 s poll interval ends within 0.5 s of the signal.
-- And in Lua: b:run() interrupted raises kind "interrupted" with every
-- result.
local emu = require("spec.support.emu")
local cjson = require("cjson.safe")
local socket = require("socket")

local e
local BUILD = os.getenv("ENVCLONE_BUILD") or "build"
local LUA = os.getenv("ENVCLONE_LUA") or "lua5.4"

-- The newcomer's environment: the emulator's URL, no credential (the
-- command line takes the emulator's demo credentials then).
local function env()
  return { ENVCLONE_BUILD = BUILD, ENVCLONE_EMULATOR_URL = e.url, KONTENT_API_KEY = "", VERSORI_TOKEN = "",
    VERSORI_COOKIE = "", QOVERY_TOKEN = "", DROPLIT_TOKEN = "", ENVCLONE_KONTENT_URL = "",
    ENVCLONE_QOVERY_URL = "", ENVCLONE_DROPLIT_URL = "", ENVCLONE_VERSORI_URL = "" }
end

-- Starts `envclone args...` in the background; returns a handle with
-- `pid`, `finished()` (exit status or nil), `out()`, `err()`.
local function spawn(args)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  local parts = { "env" }
  for k, v in pairs(env()) do parts[#parts + 1] = k .. "=" .. emu.quote(v) end
  parts[#parts + 1] = LUA
  parts[#parts + 1] = "bin/envclone"
  for _, a in ipairs(args) do parts[#parts + 1] = emu.quote(a) end
  local cmd = table.concat(parts, " ")
  -- the shell waits for the command and writes its exit status to a file
  os.execute("sh -c " .. emu.quote(cmd .. " >" .. dir .. "/out 2>" .. dir .. "/err </dev/null & p=$!; echo $p >"
    .. dir .. "/pid; wait $p; echo $? >" .. dir .. "/rc.tmp; mv " .. dir .. "/rc.tmp " .. dir .. "/rc")
    .. " >/dev/null 2>&1 &")
  local pid
  local deadline = socket.gettime() + 10
  repeat
    pid = tonumber(emu.read_file(dir .. "/pid") or "")
    if not pid then socket.sleep(0.005) end
  until pid or socket.gettime() > deadline
  assert(pid, "the command did not start")
  local h = { pid = pid, dir = dir }
  function h.finished() return tonumber(emu.read_file(dir .. "/rc") or "") end
  function h.wait(seconds)
    local limit = socket.gettime() + seconds
    while socket.gettime() < limit do
      local rc = h.finished()
      if rc then return rc end
      socket.sleep(0.005)
    end
  end
  function h.out() return emu.read_file(dir .. "/out") end
  function h.err() return emu.read_file(dir .. "/err") end
  function h.kill(sig) os.execute("kill -" .. sig .. " " .. pid .. " 2>/dev/null") end
  function h.clean() os.execute("rm -rf " .. dir) end
  return h
end

-- Waits until the emulator has seen `n` requests (the command is past its
-- checks and has asked for the signals: nothing is sent before).
local function wait_requests(n, seconds)
  local limit = socket.gettime() + seconds
  while socket.gettime() < limit do
    if e:stats().requests >= n then return true end
    socket.sleep(0.01)
  end
  return false
end

-- The ids of the objects the emulator made (not its seed).
local function created_ids()
  local state = e:state()
  local seed = e.seed
  local ids = {}
  for id in pairs(state.qovery.applications) do
    if id ~= seed.qovery.application_id then ids[#ids + 1] = id end
  end
  for id in pairs(state.droplit.environments) do ids[#ids + 1] = id end
  local seeded = {}
  for _, k in ipairs{ "environment_id", "second_environment_id", "third_environment_id" } do
    if seed.kontent[k] then seeded[seed.kontent[k]] = true end
  end
  for id, environment in pairs(state.kontent.environments) do
    if not seeded[id] and not environment.is_production then ids[#ids + 1] = id end
  end
  return ids
end

local function write_file(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

-- 40 creates over three vendors; `plain`: no lookup by key before them
-- (reconcile = false), so the first request of each call is its create
local function batch_file(run, plain)
  local s = e.seed
  local calls = {}
  for i = 1, 40 do
    local w = i % 3
    if w == 0 then
      calls[i] = { vendor = "qovery", operation = "clone-application", args = {
        ["application-id"] = s.qovery.application_id, ["environment-id"] = s.qovery.environment_id,
        name = "r" .. run .. "q" .. i } }
    elseif w == 1 then
      calls[i] = { vendor = "droplit", operation = "create-environment",
        args = { ecosystemId = s.droplit.ecosystem_id, alias = "r" .. run .. "d" .. i } }
    else
      calls[i] = { vendor = "kontent", operation = "clone-environment",
        args = { environment_id = s.kontent.environment_id, name = "r" .. run .. "k" .. i } }
    end
    if plain then calls[i].args.reconcile = false end
  end
  return write_file(cjson.encode(calls))
end

setup(function() e = emu.start{ kontent_clone_seconds = 30 } end)
teardown(function() if e then e:stop() end end)
before_each(function() e:reset() end)

describe("envclone interrupted", function()
  for _, case in ipairs{ { sig = "INT", code = 130 }, { sig = "TERM", code = 143 } } do
    it("SIG" .. case.sig .. " at random moments of a 40-call batch: every create printed with its id, exit "
      .. case.code, function()
      math.randomseed(case.code)
      local started = socket.gettime()
      for run = 1, 10 do
        e:reset()
        -- answers delayed, some slower still: calls are on the wire when the signal lands
        e:faults{ seed = run, delay = 0.05, rules = { { operation = "*", rate = 0.2, kinds = { "slow" },
          slow_seconds = 0.3 } } }
        local file = batch_file(run)
        local h = spawn{ "batch", file, "--max-in-flight", "6" }
        assert.is_true(wait_requests(1, 10), "no request reached the emulator")
        socket.sleep(math.random() * 0.6)
        h.kill(case.sig)
        local rc = h.wait(10)
        local out, err = h.out(), h.err()
        h.clean()
        os.remove(file)
        e:clear_faults()
        assert.are.equal(case.code, rc, "run " .. run .. ": " .. tostring(err))
        local results = cjson.decode(out)
        assert.is_table(results, "run " .. run .. ": stdout is not JSON: " .. tostring(out))
        assert.are.equal(40, #results)
        for i, r in ipairs(results) do
          assert.are.equal(i, r.index)
          if not r.ok then
            assert.is_string(r.error.kind)
            if r.error.kind == "interrupted" then assert.are.equal("SIG" .. case.sig, r.error.signal) end
          end
        end
        for _, id in ipairs(created_ids()) do
          assert.is_truthy(out:find(id, 1, true), "run " .. run .. ": created " .. id .. " is not in the output")
        end
        assert.matches("interrupted by SIG" .. case.sig, err)
        assert.is_nil(err:find("traceback", 1, true))
      end
      assert.is_true(socket.gettime() - started < 30, "10 runs took too long")
    end)
  end

  for _, case in ipairs{ { sig = "INT", code = 130 }, { sig = "TERM", code = 143 } } do
    it("SIG" .. case.sig .. " during --wait: the created id in the JSON error, exit " .. case.code, function()
      math.randomseed(case.code + 1)
      for run = 1, 3 do
        e:reset()
        e:faults{ delay = 0.1 }
        local h = spawn{ "kontent", "clone-environment", "--environment-id", e.seed.kontent.environment_id,
          "--name", "w" .. run, "--wait", "--poll-interval", "0.2" }
        assert.is_true(wait_requests(1, 10))
        socket.sleep(math.random() * 0.5)
        h.kill(case.sig)
        local rc = h.wait(10)
        local out, err = h.out(), h.err()
        h.clean()
        e:clear_faults()
        assert.are.equal(case.code, rc, err)
        local doc = cjson.decode(out)
        assert.is_table(doc, out)
        local ids = created_ids()
        assert.are.equal(1, #ids, "the emulator holds the clone")
        assert.are.equal("interrupted", doc.error.kind, out)
        assert.are.equal("SIG" .. case.sig, doc.error.signal)
        assert.are.equal(ids[1], doc.error.created.id)
        assert.matches("%(created " .. ids[1]:gsub("%-", "%%-") .. "%)", err)
      end
    end)
  end

  it("a second signal abandons the calls on the wire at once, marked maybe applied", function()
    -- every answer takes 5 s: the first signal would wait for them
    e:faults{ rules = { { operation = "*", rate = 1, kinds = { "slow" }, slow_seconds = 5 } } }
    local file = batch_file(99, true) -- creates on the wire, not their lookups
    local h = spawn{ "batch", file, "--max-in-flight", "4" }
    assert.is_true(wait_requests(1, 10))
    socket.sleep(0.2)
    h.kill("INT")
    socket.sleep(0.3)
    assert.is_nil(h.finished(), "the first signal waits for the calls on the wire")
    local t0 = socket.gettime()
    h.kill("INT")
    local rc = h.wait(5)
    local took = socket.gettime() - t0
    local out = h.out()
    h.clean()
    os.remove(file)
    e:clear_faults()
    assert.are.equal(130, rc)
    assert.is_true(took < 1, string.format("took %.2f s", took))
    local results = cjson.decode(out)
    assert.are.equal(40, #results)
    -- abandoned: sent; maybe applied unless only a lookup (a GET) was on the wire
    local abandoned, acting, never = 0, 0, 0
    for _, r in ipairs(results) do
      if r.error and r.error.kind == "interrupted" then
        if r.error.message:find("abandoned", 1, true) then
          abandoned = abandoned + 1
          assert.is_true(r.error.sent, cjson.encode(r))
          if r.error.maybe_applied then acting = acting + 1 end
        elseif r.error.sent == false then
          never = never + 1
        end
      end
    end
    assert.is_true(abandoned >= 1 and acting >= 1, out)
    assert.is_true(never >= 30, out)
  end)

  it("SIGINT during a wait with an 8 s poll interval ends the command within 0.5 s", function()
    local h = spawn{ "kontent", "clone-environment", "--environment-id", e.seed.kontent.environment_id,
      "--name", "slow-poll", "--wait", "--poll-interval", "8" }
    -- the clone and the first poll have been answered: the command sleeps
    assert.is_true(wait_requests(2, 10))
    socket.sleep(0.3)
    local t0 = socket.gettime()
    h.kill("INT")
    local rc = h.wait(5)
    local took = socket.gettime() - t0
    local out = h.out()
    h.clean()
    assert.are.equal(130, rc)
    assert.is_true(took < 0.5, string.format("took %.2f s", took))
    assert.are.equal(created_ids()[1], cjson.decode(out).error.created.id)
  end)

  it("in Lua: b:run() interrupted raises kind 'interrupted' carrying every result", function()
    -- a process of its own: the signal handlers stay out of the test runner
    local script = write_file([[
      local envclone = require("envclone")
      local core = require("envclone.core")
      local cjson = require("cjson.safe")
      local k = envclone.kontent{ api_key = os.getenv("EMU_KEY"), base_url = os.getenv("EMU_URL") }
      core.catch_signals{ "INT" }
      assert(core.interrupted() == nil)
      local b = envclone.batch{ max_in_flight = 2 }
      for i = 1, 12 do
        b:add(k, "clone_environment", { environment_id = os.getenv("EMU_ENV"), name = "lua" .. i,
          wait = true, wait_interval = 5 })
      end
      local pid = io.open("/proc/self/stat"):read("*l"):match("^(%d+)")
      os.execute("(sleep 0.4; kill -INT " .. pid .. ") &")
      local ok, err = pcall(b.run, b)
      local out = { ok = ok, kind = err.kind, signal = err.signal, n = #err.results, items = {} }
      for i, r in ipairs(err.results) do
        out.items[i] = { ok = r.ok, kind = r.err and r.err.kind, sent = r.err and r.err.sent,
          created = r.err and r.err.created and r.err.created.id }
      end
      print(cjson.encode(out))
    ]])
    local cmd = "EMU_URL=" .. emu.quote(e.base_urls.kontent)
      .. " EMU_KEY=" .. emu.quote(e.credentials.kontent.api_key)
      .. " EMU_ENV=" .. emu.quote(e.seed.kontent.environment_id)
      .. " LUA_PATH=" .. emu.quote(package.path) .. " LUA_CPATH=" .. emu.quote(package.cpath)
      .. " " .. LUA .. " " .. script
    local p = io.popen(cmd)
    local text = p:read("*a")
    p:close()
    os.remove(script)
    local doc = cjson.decode(text)
    assert.is_table(doc, text)
    assert.is_false(doc.ok)
    assert.are.equal("interrupted", doc.kind)
    assert.are.equal("SIGINT", doc.signal)
    assert.are.equal(12, doc.n)
    local ids, never = created_ids(), 0
    local printed = {}
    for _, item in ipairs(doc.items) do
      assert.are.equal("interrupted", item.kind)
      if item.created then printed[item.created] = true end
      if item.sent == false then never = never + 1 end
    end
    assert.is_true(#ids >= 1 and never >= 1, text)
    for _, id in ipairs(ids) do assert.is_true(printed[id], id .. " not in the results: " .. text) end
  end)

  it("in Lua: an interrupt while a lost create is looked up says sent and maybe_applied", function()
    e:faults{ rules = { { operation = "qovery.clone_application", queue = { "close_before" } } } }
    local script = write_file([[
      local envclone = require("envclone")
      local core = require("envclone.core")
      local cjson = require("cjson.safe")
      local q = envclone.qovery{ token = os.getenv("EMU_KEY"), base_url = os.getenv("EMU_URL") }
      core.catch_signals{ "INT" }
      local pid = io.open("/proc/self/stat"):read("*l"):match("^(%d+)")
      os.execute("(sleep 0.5; kill -INT " .. pid .. ") &")
      local ok, err = pcall(q.clone_application, q, { applicationId = os.getenv("EMU_APP"),
        environment_id = os.getenv("EMU_ENV"), name = "looked-up", reconcile = { grace = 5 } })
      print(cjson.encode{ ok = ok, kind = err.kind, sent = err.sent, maybe_applied = err.maybe_applied,
        lost = err.lost_error ~= nil })
    ]])
    local cmd = "EMU_URL=" .. emu.quote(e.base_urls.qovery)
      .. " EMU_KEY=" .. emu.quote(e.credentials.qovery.token)
      .. " EMU_APP=" .. emu.quote(e.seed.qovery.application_id)
      .. " EMU_ENV=" .. emu.quote(e.seed.qovery.environment_id)
      .. " LUA_PATH=" .. emu.quote(package.path) .. " LUA_CPATH=" .. emu.quote(package.cpath)
      .. " " .. LUA .. " " .. script
    local p = io.popen(cmd)
    local text = p:read("*a")
    p:close()
    os.remove(script)
    local doc = cjson.decode(text)
    assert.is_table(doc, text)
    assert.are.same({ ok = false, kind = "interrupted", sent = true, maybe_applied = true, lost = true }, doc)
  end)

  it("in Lua: a clone's wait interrupted raises kind 'interrupted' carrying created, at once", function()
    local script = write_file([[
      local envclone = require("envclone")
      local core = require("envclone.core")
      local socket = require("socket")
      local cjson = require("cjson.safe")
      local k = envclone.kontent{ api_key = os.getenv("EMU_KEY"), base_url = os.getenv("EMU_URL") }
      core.catch_signals{ "INT" }
      local pid = io.open("/proc/self/stat"):read("*l"):match("^(%d+)")
      os.execute("(sleep 0.4; kill -INT " .. pid .. ") &")
      local t0 = socket.gettime()
      local ok, err = pcall(k.clone_environment, k, { environment_id = os.getenv("EMU_ENV"), name = "direct",
        wait = true, wait_interval = 8 })
      print(cjson.encode{ ok = ok, kind = err.kind, signal = err.signal, took = socket.gettime() - t0,
        created = err.created and err.created.id })
    ]])
    local cmd = "EMU_URL=" .. emu.quote(e.base_urls.kontent)
      .. " EMU_KEY=" .. emu.quote(e.credentials.kontent.api_key)
      .. " EMU_ENV=" .. emu.quote(e.seed.kontent.environment_id)
      .. " LUA_PATH=" .. emu.quote(package.path) .. " LUA_CPATH=" .. emu.quote(package.cpath)
      .. " " .. LUA .. " " .. script
    local p = io.popen(cmd)
    local text = p:read("*a")
    p:close()
    os.remove(script)
    local doc = cjson.decode(text)
    assert.is_table(doc, text)
    assert.is_false(doc.ok)
    assert.are.equal("interrupted", doc.kind, text)
    assert.are.equal("SIGINT", doc.signal)
    assert.is_true(doc.took < 1.5, text)
    assert.are.equal(created_ids()[1], doc.created)
  end)
end)
