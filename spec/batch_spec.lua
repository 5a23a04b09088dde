-- Batches (envclone.batch) against the emulator: many calls and tasks on one
-- thread over libcurl's multi interface (or, under nginx, ngx.thread and
-- cosockets: spec/nginx), results in order, max_in_flight on the wire,
-- Kontent's limits kept, and nothing left behind by a raising task or a
-- batch dropped half-way.
local envclone = require("envclone")
local runtime = require("envclone.runtime")
local emu = require("spec.support.emu")

local e, seed

-- TCP sockets this process holds open (Linux: the socket inodes of
-- /proc/PID/fd that /proc/net/tcp lists; libcurl's multi handle also holds
-- a socketpair of its own, which is not a connection).
local function open_sockets()
  local pid = io.open("/proc/self/stat"):read("*l"):match("^%d+")
  local mine = {}
  local p = io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null")
  for line in p:lines() do
    local inode = line:match("socket:%[(%d+)%]")
    if inode then mine[inode] = true end
  end
  p:close()
  local n = 0
  for _, file in ipairs{ "/proc/net/tcp", "/proc/net/tcp6" } do
    local f = io.open(file)
    if f then
      for line in f:lines() do
        local inode = line:match("^%s*%d+:%s+%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+(%d+)")
        if inode and mine[inode] then n = n + 1 end
      end
      f:close()
    end
  end
  return n
end

setup(function()
  e = emu.start{ kontent_clone_seconds = 1 }
  seed = e.seed
end)
teardown(function() e:stop() end)
before_each(function() e:reset() end)

-- One call per index: a create whose name tells it apart, over the four vendors.
local function mixed_call(clients, i)
  local name = string.format("b%03dx", i)
  local which = i % 7
  if which == 0 or which == 4 then
    return name, clients.versori, "clone_environment", { organisation_id = seed.versori.organisation_id,
      project_id = seed.versori.project_id, oldEnvName = "staging", newEnvName = name }
  elseif which == 1 or which == 5 then
    return name, clients.qovery, "clone_application", { applicationId = seed.qovery.application_id,
      environment_id = seed.qovery.environment_id, name = name }
  elseif which == 2 then
    return name, clients.kontent, "clone_environment", { environment_id = seed.kontent.environment_id,
      name = name }
  end
  return name, clients.droplit, "create_environment", { ecosystemId = seed.droplit.ecosystem_id, alias = name }
end

local function clients_for(extra)
  local c = {}
  for _, v in ipairs{ "versori", "qovery", "kontent", "droplit" } do c[v] = e:client(v, extra) end
  return c
end

describe("envclone.batch", function()
  it("200 mixed calls over four vendors under faults: 200 results in order, each failure on its own call", function()
    e:faults{ seed = 12, rules = { { operation = "*", rate = 0.3,
      kinds = { "429", "503", "close_before", "malformed", "truncated" }, retry_after = 0 } } }
    -- one request per call: no lookup by key (spec/exactly_once_spec.lua has those)
    local clients = clients_for{ retry = false, reconcile = false }
    local b = envclone.batch{ max_in_flight = 16 }
    local calls = {}
    for i = 1, 200 do
      local name, client, op, args = mixed_call(clients, i)
      assert.are.equal(i, b:add(client, op, args))
      calls[i] = { name = name, vendor = client._handle:vendor(), op = op }
    end
    local results = b:run()
    assert.are.equal(200, #results)
    assert.are.equal(200, results.succeeded + results.failed)
    assert.is_true(results.failed > 20 and results.succeeded > 100)
    -- the emulator's log says what happened to each name: one request each
    local log = e:requests()
    assert.are.equal(200, #log)
    local by_name = {}
    for _, entry in ipairs(log) do
      local name = entry.body:match('"(b%d%d%dx)"')
      assert.is_nil(by_name[name], "sent twice: " .. tostring(name))
      by_name[name] = entry
    end
    for i, r in ipairs(results) do
      local c, entry = calls[i], by_name[calls[i].name]
      assert.is_table(entry, c.name)
      local clean = entry.fault == envclone.null and entry.status >= 200 and entry.status < 300
      assert.are.equal(clean, r.ok, i .. " " .. c.name .. " " .. tostring(r.err))
      if not r.ok then
        assert.is_true(envclone.is_error(r.err))
        assert.are.equal(c.vendor, r.err.vendor)
        assert.are.equal(c.op, r.err.operation)
        if r.err.kind == "http" then assert.are.equal(entry.status, r.err.status) end
      else
        assert.is_table(r.value)
      end
    end
  end)

  it("with retries on, 30% faults: every call has its own result and nothing is created twice", function()
    e:faults{ seed = 5, rules = { { operation = "*", rate = 0.3,
      kinds = { "429", "503", "close_before", "close_after", "malformed" }, retry_after = 0 } } }
    local clients = clients_for{ retry = { max_attempts = 4, base_delay = 0.01, max_delay = 0.05 } }
    local b = envclone.batch{ max_in_flight = 8 }
    for i = 1, 100 do
      local _, client, op, args = mixed_call(clients, i)
      b:add(client, op, args)
    end
    local results = b:run()
    assert.are.equal(100, #results)
    local stats = e:stats()
    for name, count in pairs(stats.created_names) do
      assert.are.equal(1, count, name .. " was created twice")
    end
    local maybe = 0
    for _, r in ipairs(results) do
      if not r.ok and r.err.maybe_applied then maybe = maybe + 1 end
    end
    assert.is_true(stats.applied.creates >= results.succeeded)
    assert.is_true(stats.applied.creates <= results.succeeded + maybe)
  end)

  it("max_in_flight = 8: the emulator never sees more than 8 connections or requests at once (and sees more than 1)",
    function()
      e:faults{ delay = 0.02 }
      local k = e:client("kontent", { rate_limit = false })
      local q = e:client("qovery")
      local b = envclone.batch{ max_in_flight = 8 }
      for _ = 1, 80 do b:add(k, "get_environment", { environment_id = seed.kontent.environment_id }) end
      local results = b:run()
      assert.are.equal(80, results.succeeded)
      local c = e:concurrency()
      assert.is_true(c.max_connections <= 8 and c.max_connections > 1, tostring(c.max_connections))
      assert.is_true(c.max_requests_in_flight <= 8 and c.max_requests_in_flight > 1)
      -- creates go out on fresh connections (never re-sent by libcurl): still
      -- at most 8 requests in flight, and this process never holds more than
      -- 8 sockets (the emulator may count a closed one a moment longer: it
      -- sees the close only when it next reads that socket)
      e:reset_concurrency()
      local base, most = open_sockets(), 0
      local creates_done = 0
      b = envclone.batch{ max_in_flight = 8, on_progress = function() creates_done = creates_done + 1 end }
      -- a task that looks while the creates are on the wire (its sleeps
      -- yield to the batch; it holds no slot). Added first, so that it is
      -- already looking when the first creates go out, however slowly this
      -- machine schedules it.
      b:add(function()
        while creates_done < 40 do
          most = math.max(most, open_sockets() - base)
          runtime.sleep(0.003)
        end
      end)
      for i = 1, 40 do
        b:add(q, "clone_application", { applicationId = seed.qovery.application_id,
          environment_id = seed.qovery.environment_id, name = "q" .. i })
      end
      assert.are.equal(41, b:run().succeeded)
      c = e:concurrency()
      assert.is_true(c.max_requests_in_flight <= 8 and c.max_requests_in_flight > 1)
      assert.is_true(most <= 8 and most > 1, tostring(most))
    end)

  it("60 Kontent calls to one environment: no 429, never two at once, other work runs meanwhile", function()
    e:config{ kontent_rate_limit = true }
    e:faults{ delay = 0.01 }
    local k = e:client("kontent", { retry = false })
    local d = e:client("droplit")
    local ENV = seed.kontent.environment_id
    local b = envclone.batch{ max_in_flight = 16 }
    local cpu0 = os.clock()
    for i = 1, 60 do
      b:add(k, "get_environment", { environment_id = ENV })
      if i % 3 == 0 then
        b:add(d, "create_environment", { ecosystemId = seed.droplit.ecosystem_id, alias = "d" .. i })
      end
    end
    local results = b:run()
    assert.are.equal(0, results.failed)
    -- about 6 s of waiting for the limit, without spinning: the queued calls
    -- look again only as their turn may come (polling every 2 ms took 1.9 s
    -- of CPU for 100 calls)
    if not os.getenv("ENVCLONE_SANITIZER") then
      assert.is_true(os.clock() - cpu0 < 0.5, "CPU " .. (os.clock() - cpu0) .. " s")
    end
    for _, entry in ipairs(e:requests()) do assert.are_not.equal(429, entry.status) end
    local c = e:concurrency()
    assert.are.equal(1, c.max_in_flight_per_key.kontent[ENV])
    assert.is_true(c.max_requests_in_flight > 1)
  end)

  it("20 tasks of clone -> wait -> rename all finish, and were in flight together", function()
    local k = e:client("kontent")
    local ENV = seed.kontent.environment_id
    local b = envclone.batch{ max_in_flight = 16 }
    for i = 1, 20 do
      b:add(function()
        local env, state = assert(k:clone_environment{ environment_id = ENV, name = "pr-" .. i,
          wait = true, wait_interval = 0.2 })
        assert(state.cloning_state == "done")
        return assert(k:rename_environment{ environment_id = env.id, name = "PR " .. i }), env.id
      end)
    end
    local t0 = runtime.now()
    local results = b:run()
    local elapsed = runtime.now() - t0
    assert.are.equal(20, results.succeeded, results.failed > 0 and tostring(results[1].err) or "")
    local ids = {}
    for _, r in ipairs(results) do
      assert.is_string(r.extra)
      assert.is_nil(ids[r.extra])
      ids[r.extra] = true
    end
    -- each clone takes 1 s on the emulator: one after another that is 20 s
    assert.is_true(elapsed < 10, tostring(elapsed))
    -- the waits overlapped: the emulator saw polls of several new environments at once
    local per_env = e:concurrency().max_in_flight_per_key.kontent
    local envs = 0
    for _ in pairs(per_env) do envs = envs + 1 end
    assert.is_true(envs > 10)
    assert.are.equal(20, e:stats().applied.by_operation["kontent.clone_environment"])
  end)

  it("a plain call keeps a single call's retries, create rule and per-call options", function()
    -- (such a call goes onto the wire without a task; a task takes over
    -- only after its first attempt failed)
    e:faults{ rules = {
      { operation = "kontent.get_environment", rate = 1, kinds = { "503" }, retry_after = 0 },
      { operation = "droplit.create_environment", queue = { "close_after" } },
      { operation = "qovery.clone_application", queue = { "503" }, retry_after = 0 },
    } }
    local policy = { max_attempts = 3, base_delay = 0.01, max_delay = 0.02 }
    local k = e:client("kontent", { rate_limit = false, retry = policy })
    local d = e:client("droplit", { retry = policy })
    local q = e:client("qovery", { retry = policy })
    local env = { environment_id = seed.kontent.environment_id }
    local b = envclone.batch{ max_in_flight = 4 }
    local get3 = b:add(k, "get_environment", env)
    local get1 = b:add(k, "get_environment", { environment_id = seed.kontent.environment_id, retry = false })
    local create = b:add(d, "create_environment", { ecosystemId = seed.droplit.ecosystem_id, alias = "once" })
    local clone = b:add(q, "clone_application", { applicationId = seed.qovery.application_id,
      environment_id = seed.qovery.environment_id, name = "second-try" })
    local results = b:run()
    assert.is_false(results[get3].ok)
    assert.are.equal(503, results[get3].err.status)
    assert.are.equal(3, results[get3].err.attempts)
    assert.are.equal(1, results[get1].err.attempts)
    -- the create's answer was lost after the emulator applied it: not sent
    -- again, but found by its alias
    assert.is_true(results[create].ok, tostring(results[create].err))
    assert.is_true(results[create].value.reconciled)
    assert.is_true(results[create].value.lost_error.maybe_applied)
    assert.are.equal(1, results[create].value.lost_error.attempts)
    assert.are.equal(1, e:stats().by_operation["droplit.create_environment"])
    -- a 503 before anything was applied: the create is retried once, and succeeds
    assert.is_true(results[clone].ok, tostring(results[clone].err))
    assert.is_string(results[clone].value.id)
    local sent = {}
    for _, entry in ipairs(e:requests()) do sent[entry.operation] = (sent[entry.operation] or 0) + 1 end
    assert.are.equal(4, sent["kontent.get_environment"])
    assert.are.equal(1, sent["droplit.create_environment"])
    assert.are.equal(2, sent["qovery.clone_application"])
  end)

  it("a task that raises, or returns nil and an error, fails alone", function()
    local k = e:client("kontent")
    local b = envclone.batch()
    b:add(function() error("boom") end)
    b:add(function() error(select(2, k:get_environment{ environment_id = "nope" })) end)
    b:add(function() return k:get_environment{ environment_id = "nope" } end)
    b:add(function() error({ "not an error object" }) end)
    local ok = b:add(k, "get_environment", { environment_id = seed.kontent.environment_id })
    local results = b:run()
    assert.are.equal("task", results[1].err.kind)
    assert.matches("boom", results[1].err.message)
    assert.are.equal("validation", results[2].err.kind) -- an envclone error raised is kept
    assert.are.equal("validation", results[3].err.kind)
    assert.are.equal("task", results[4].err.kind)
    assert.is_true(results[ok].ok)
    assert.are.equal(1, results.succeeded)
    assert.are.equal(4, results.failed)
  end)

  it("bad input: raises for programmer errors, a validation result for bad arguments, nothing sent", function()
    local k = e:client("kontent")
    local b = envclone.batch()
    assert.has_error(function() b:add("kontent", "get_environment", {}) end)
    assert.has_error(function() b:add({}, "get_environment", {}) end)
    assert.has_error(function() b:add(k, "get_environmen", {}) end)
    assert.has_error(function() b:add(k, "close") end)
    assert.has_error(function() b:add(k, "_transport_for") end)
    assert.has_error(function() envclone.batch{ max_in_flight = 0 } end)
    assert.has_error(function() envclone.batch{ max_in_flight = 2.5 } end)
    assert.has_error(function() envclone.batch{ max_inflight = 2 } end)
    assert.has_error(function() envclone.batch{ on_progress = 1 } end)
    local i = b:add(k, "get_environment", { environment_id = "not-a-uuid" })
    local j = b:add(k, "rename_environment", { environment_id = seed.kontent.environment_id })
    local added_inside
    b:add(function() added_inside = pcall(b.add, b, function() end) end)
    local results = b:run()
    assert.are.equal("validation", results[i].err.kind)
    assert.are.equal("environment_id", results[i].err.field)
    assert.are.equal("validation", results[j].err.kind)
    assert.is_false(added_inside)
    assert.are.equal(0, #e:requests())
    assert.has_error(function() b:add(function() end) end)
    assert.has_error(function() b:run() end)
  end)

  it("a call on a closed client, or with arguments that are not a table, fails alone as a single call would",
    function()
      local k = e:client("kontent", { rate_limit = false })
      local closed = e:client("kontent", { rate_limit = false })
      closed:close()
      local b = envclone.batch()
      local i = b:add(closed, "get_environment", { environment_id = seed.kontent.environment_id })
      local j = b:add(k, "get_environment", "not a table")
      local ok = b:add(k, "get_environment", { environment_id = seed.kontent.environment_id })
      local results = b:run()
      local _, single = pcall(closed.get_environment, closed, { environment_id = seed.kontent.environment_id })
      assert.is_false(results[i].ok)
      assert.matches("closed", results[i].err.message)
      assert.matches("closed", tostring(single))
      local _, single_err = k:get_environment("not a table")
      assert.is_false(results[j].ok)
      assert.are.equal("validation", single_err.kind)
      assert.are.equal(single_err.message, results[j].err.message)
      assert.is_true(results[ok].ok)
      assert.are.equal(1, #e:requests())
    end)

  it("a client closed while one of its calls waits to retry fails that call alone", function()
    e:faults{ rules = { { operation = "kontent.get_environment", rate = 1, kinds = { "503" }, retry_after = 1 } } }
    local k = e:client("kontent", { rate_limit = false, retry = { max_attempts = 3 } })
    local d = e:client("droplit")
    local b = envclone.batch{ max_in_flight = 4 }
    local call = b:add(k, "get_environment", { environment_id = seed.kontent.environment_id })
    local closer = b:add(function() runtime.sleep(0.05); k:close(); return "closed" end)
    local other = b:add(d, "create_environment", { ecosystemId = seed.droplit.ecosystem_id, alias = "after_close" })
    local ok, results = pcall(b.run, b)
    assert.is_true(ok, tostring(results))
    assert.is_false(results[call].ok)
    assert.matches("closed", results[call].err.message)
    assert.are.equal("closed", results[closer].value)
    assert.is_true(results[other].ok, tostring(results[other].err))
  end)

  it("plain calls, invalid ones, waits and tasks interleaved: every result in its place, only valid calls sent",
    function()
      local k = e:client("kontent", { rate_limit = false })
      local d = e:client("droplit", { reconcile = false }) -- one request per create
      local env = seed.kontent.environment_id
      local b = envclone.batch{ max_in_flight = 4 }
      local want = {}
      for i = 1, 60 do
        if i % 7 == 0 then
          want[b:add(function() return "task " .. i end)] = "task"
        elseif i % 5 == 0 then
          want[b:add(k, "get_environment", { environment_id = "nope-" .. i })] = "invalid"
        elseif i % 11 == 0 then
          want[b:add(k, "get_environment", { environment_id = env, retry = false })] = "option"
        elseif i % 2 == 0 then
          local args = { ecosystemId = seed.droplit.ecosystem_id, alias = "mix" .. i }
          want[b:add(d, "create_environment", args)] = "create"
        else
          want[b:add(k, "get_environment", { environment_id = env })] = "get"
        end
      end
      local results = b:run()
      local sent = 0
      for i = 1, 60 do
        local r, w = results[i], want[i]
        if w == "invalid" then
          assert.is_false(r.ok)
          assert.are.equal("validation", r.err.kind)
        else
          assert.is_true(r.ok, i .. " " .. w .. " " .. tostring(r.err))
          sent = sent + (w == "task" and 0 or 1)
          if w == "task" then assert.are.equal("task " .. i, r.value) end
          if w == "create" then assert.is_string(r.value.id) end
          if w == "get" or w == "option" then assert.are.equal(env, r.value.id) end
        end
      end
      assert.are.equal(60, results.succeeded + results.failed)
      assert.are.equal(sent, #e:requests())
    end)

  it("on_progress sees every item once, done counting up to total", function()
    local k = e:client("kontent", { rate_limit = false })
    local seen, last = {}, 0
    local b = envclone.batch{ max_in_flight = 4, on_progress = function(done, total, i, r)
      assert.are.equal(last + 1, done)
      last = done
      assert.are.equal(10, total)
      assert.is_nil(seen[i])
      seen[i] = r.ok
    end }
    for _ = 1, 10 do b:add(k, "get_environment", { environment_id = seed.kontent.environment_id }) end
    b:run()
    assert.are.equal(10, last)
  end)

  it("a batch dropped half-way and collected leaves no connection and no request behind", function()
    e:faults{ delay = 0.2 }
    local k = e:client("kontent", { rate_limit = false })
    local before = open_sockets()
    -- 1: on_progress raises in the middle of the batch
    local b = envclone.batch{ max_in_flight = 8, on_progress = function(done)
      if done == 3 then error("stop here") end
    end }
    for _ = 1, 30 do b:add(k, "get_environment", { environment_id = seed.kontent.environment_id }) end
    assert.has_error(function() b:run() end, nil)
    -- 2: run inside a coroutine that is never resumed again
    local b2 = envclone.batch{ max_in_flight = 8, on_progress = function() coroutine.yield() end }
    for _ = 1, 30 do b2:add(k, "get_environment", { environment_id = seed.kontent.environment_id }) end
    local co = coroutine.create(function() b2:run() end)
    assert.is_true(coroutine.resume(co))
    assert.are.equal("suspended", coroutine.status(co))
    assert.is_true(open_sockets() > before)
    b, b2, co = nil, nil, nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    assert.are.equal(before, open_sockets())
    -- the client still works, outside and inside a new batch
    assert(k:get_environment{ environment_id = seed.kontent.environment_id })
    local b3 = envclone.batch()
    b3:add(k, "get_environment", { environment_id = seed.kontent.environment_id })
    assert.are.equal(1, b3:run().succeeded)
  end)

  it("outside a batch, calls inside plain coroutines block as before", function()
    local k = e:client("kontent", { rate_limit = false })
    local co = coroutine.wrap(function()
      return k:get_environment{ environment_id = seed.kontent.environment_id }
    end)
    assert.is_table(co())
  end)

  it("a task returning nil and a message (not an error object) fails with that message (issue 23, item 8)",
    function()
      local b = envclone.batch()
      local i = b:add(function() return nil, "no quota left" end)
      local j = b:add(function() return nil, { reason = "a table" } end)
      local k = b:add(function() return nil end) -- nothing: a success with no value
      local l = b:add(function() return false, "false is a value" end)
      local results = b:run()
      assert.is_false(results[i].ok)
      assert.is_true(envclone.is_error(results[i].err))
      assert.are.equal("task", results[i].err.kind)
      assert.are.equal("no quota left", results[i].err.message)
      assert.matches("no quota left", tostring(results[i].err), 1, true)
      assert.is_false(results[j].ok)
      assert.are.equal("task", results[j].err.kind)
      assert.is_true(results[k].ok)
      assert.is_true(results[l].ok)
      assert.is_false(results[l].value)
      assert.are.equal(2, results.failed)
      assert.are.equal(2, results.succeeded)
    end)

  it("a task's own bare coroutine.yield() lets the batch's loop run: the wire is polled before it resumes "
    .. "(issue 23, item 7)", function()
    local k = e:client("kontent", { rate_limit = false })
    local got, asleep_done
    local b = envclone.batch()
    local call = b:add(function()
      got = assert(k:get_environment{ environment_id = seed.kontent.environment_id })
      return got.id
    end)
    local sleeper = b:add(function() runtime.sleep(0.05); asleep_done = true; return "slept" end)
    -- waits for the others by yielding to the scheduler, bounded by the clock
    local waiter = b:add(function()
      local t0, yields, values = runtime.now(), 0, 0
      while not (got and asleep_done) do
        if runtime.now() - t0 > 5 then error("the batch's loop never ran while this task yielded") end
        values = values + select("#", coroutine.yield("ignored"))
        yields = yields + 1
      end
      return yields, values
    end)
    local results = b:run()
    assert.is_true(results[call].ok, tostring(results[call].err))
    assert.are.equal(seed.kontent.environment_id, results[call].value)
    assert.are.equal("slept", results[sleeper].value)
    assert.is_true(results[waiter].ok, tostring(results[waiter].err))
    assert.is_true(results[waiter].value >= 1)
    assert.are.equal(0, results[waiter].extra, "resumed with nothing")
    assert.are.equal(1, #e:requests())
  end)
end)
