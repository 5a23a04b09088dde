-- Client-side rate limits (envclone.limiter): the algorithm on a virtual
-- clock, then sequential calls against the emulator with Kontent's own
-- limits enforced (10/s and 400/min per environment, 429 + error_code 10000).
local envclone = require("envclone")
local limiter = require("envclone.limiter")
local runtime = require("envclone.runtime")
local emu = require("spec.support.emu")

describe("limiter on a virtual clock", function()
  local saved_now, saved_sleep, t
  before_each(function()
    saved_now, saved_sleep = runtime.now, runtime.sleep
    t = 1000
    runtime.now = function() return t end
    runtime.sleep = function(s) t = t + s end
  end)
  after_each(function()
    runtime.now, runtime.sleep = saved_now, saved_sleep
  end)

  -- starts[i], ends[i] of n calls of `took` seconds each through limiter `lim`
  local function run(lim, n, took, key)
    local starts, ends = {}, {}
    for i = 1, n do
      local ticket = limiter.acquire(lim, { environment_id = key or "E" })
      starts[i] = t
      t = t + took
      ends[i] = t
      limiter.release(ticket, true)
    end
    return starts, ends
  end

  it("Kontent: never 11 in a sliding second nor 401 in a sliding minute, and no slower than that", function()
    local lim = limiter.new("kontent", "http://h", nil, nil, 5)
    local starts, ends = run(lim, 1000, 0.001)
    -- the server receives a call between its start and its end: any 11 calls
    -- (401 calls) span more than 1 s (60 s) however the network delays them
    for i = 11, 1000 do
      assert.is_true(starts[i] - ends[i - 10] >= 1, "call " .. i)
    end
    for i = 401, 1000 do
      assert.is_true(starts[i] - ends[i - 400] >= 60, "call " .. i)
    end
    -- a token bucket would have burst again at once; a limiter that is too
    -- careful would fall behind the schedule: 400 in the first ~40 s, the
    -- next 400 from 60 s, the last 200 from 120 s
    assert.is_true(starts[1000] - starts[1] < 141, tostring(starts[1000] - starts[1]))
    assert.is_true(starts[1000] - starts[1] > 139, tostring(starts[1000] - starts[1]))
  end)

  -- OpenResty's clock (ngx.now after ngx.update_time) reads whole
  -- milliseconds, rounded down: an end is logged up to 1 ms before the moment
  -- it describes, so before the server saw that call.
  local function ms_clock() runtime.now = function() return math.floor(t * 1000) / 1000 end end

  it("a millisecond clock: a start just as the 10th last end leaves the window still spans a second", function()
    ms_clock()
    local lim = limiter.new("kontent", "http://h", nil, nil, 5)
    t = 1000.0001
    local _, ends = run(lim, 10, 0.0008)
    -- the caller comes back just as the first end (logged 1000.000, in truth
    -- 1000.0009) is a second old on the clock: the server may have seen that
    -- call at 1000.0009 and sees this one at its start
    t = 1001.0002
    local starts = run(lim, 1, 0.0008)
    assert.is_true(starts[1] - ends[1] >= 1, string.format("%.4f", starts[1] - ends[1]))
  end)

  it("two workers sharing one log on a millisecond clock: never 11 in a second, never two at once", function()
    ms_clock()
    local lim = limiter.new("kontent", "http://h", nil, nil, 5)
    -- each worker: a pause, then a call; sleeps yield to this scheduler, which
    -- runs whichever worker wakes first (as nginx's event loop does)
    runtime.sleep = function(s) coroutine.yield(t + s) end
    local calls = {}
    local function worker(w)
      return coroutine.create(function()
        for i = 1, 150 do
          runtime.sleep(((i * 7 + w * 3) % 11) * 0.0031)
          local ticket = limiter.acquire(lim, { environment_id = "W" })
          local call = { start = t }
          runtime.sleep(0.0002 + ((i * 5 + w) % 9) * 0.00041)
          call.stop = t
          calls[#calls + 1] = call
          limiter.release(ticket, true)
        end
      end)
    end
    local ready = { { co = worker(1), at = t }, { co = worker(2), at = t } }
    for _ = 1, 100000 do
      table.sort(ready, function(a, b) return a.at < b.at end)
      local w = table.remove(ready, 1)
      if not w then break end
      t = math.max(t, w.at)
      local ok, at = coroutine.resume(w.co)
      assert(ok, at)
      if coroutine.status(w.co) == "suspended" then ready[#ready + 1] = { co = w.co, at = at } end
    end
    assert.are.equal(300, #calls)
    table.sort(calls, function(a, b) return a.start < b.start end)
    for i = 2, #calls do
      assert.is_true(calls[i].start >= calls[i - 1].stop, "call " .. i .. " overlaps")
    end
    for i = 11, #calls do
      local span = calls[i].start - calls[i - 10].stop
      assert.is_true(span >= 1, string.format("call %d: 11 calls within %.4f s", i, span))
    end
  end)

  it("a wait that raises (an interrupt) leaves the queue: later calls on the key go on", function()
    local lim = limiter.new("kontent", "http://h", { per_second = 1 }, nil, 5)
    limiter.release(limiter.acquire(lim, { environment_id = "E" }), true)
    local sleep = runtime.sleep
    runtime.sleep = function() error("interrupted!", 0) end
    assert.has_error(function() limiter.acquire(lim, { environment_id = "E" }) end, "interrupted!")
    runtime.sleep = sleep
    -- at once: a waiter left behind would head the queue, go stale while
    -- the next call waits behind it, and take that call down with it
    for _ = 1, 3 do
      local ticket = limiter.acquire(lim, { environment_id = "E" })
      assert.is_table(ticket)
      limiter.release(ticket, true)
    end
  end)

  it("keys are independent: other environments never wait", function()
    local lim = limiter.new("kontent", "http://h", nil, nil, 5)
    run(lim, 10, 0.001, "A")
    local t0 = t
    run(lim, 10, 0.001, "B")
    assert.is_true(t - t0 < 0.011 + 1e-9)
  end)

  it("a client's own limits replace the vendor's, field by field; false removes them", function()
    local lim = limiter.new("kontent", "http://h", { per_second = 2 }, nil, 5)
    local starts = run(lim, 5, 0.001)
    assert.is_true(starts[5] - starts[1] >= 2)
    assert.are.equal(400, lim.policy.per_minute)
    assert.is_false(limiter.new("kontent", "http://h", false, nil, 5))
    -- vendors with no documented limit get none
    assert.is_false(limiter.new("droplit", "http://h", nil, nil, 5))
    local q = limiter.new("qovery", "http://h", { concurrency_per_key = 2 }, nil, 5)
    assert.are.same({ concurrency_per_key = 2 }, q.policy)
  end)

  it("an attempt that never reached the server leaves the log", function()
    local lim = limiter.new("kontent", "http://h", { per_second = 1 }, nil, 5)
    for _ = 1, 5 do limiter.release(limiter.acquire(lim, { environment_id = "V" }), false) end
    assert.are.equal(1000, t)
  end)

  it("one call at a time per key, first come first served", function()
    local lim = limiter.new("kontent", "http://h", { per_second = 100 }, nil, 5)
    runtime.sleep = function(s) t = t + s; coroutine.yield() end
    local order = {}
    local first = limiter.acquire(lim, { environment_id = "C" })
    local waiters = {}
    for i = 1, 3 do
      waiters[i] = coroutine.create(function()
        local ticket = limiter.acquire(lim, { environment_id = "C" })
        order[#order + 1] = i
        coroutine.yield()
        limiter.release(ticket, true)
      end)
      coroutine.resume(waiters[i])
    end
    -- a different key is not held up
    local other = limiter.acquire(lim, { environment_id = "D" })
    limiter.release(other, true)
    for _ = 1, 5 do
      for i = 3, 1, -1 do coroutine.resume(waiters[i]) end
    end
    assert.are.same({}, order)
    limiter.release(first, true)
    for _ = 1, 50 do
      for i = 3, 1, -1 do
        if coroutine.status(waiters[i]) == "suspended" then coroutine.resume(waiters[i]) end
      end
    end
    assert.are.same({ 1, 2, 3 }, order)
  end)

  it("a slot whose holder was dropped mid-call (its batch was dropped) frees, within the client's timeout + 1 s",
    function()
    local lim = limiter.new("kontent", "http://h", nil, nil, 2)
    local holder = coroutine.create(function()
      limiter.acquire(lim, { environment_id = "G" }) -- never released
      coroutine.yield()
    end)
    coroutine.resume(holder)
    holder = nil -- luacheck: ignore 311 (dropped: only the collector can tell)
    local t0 = t
    limiter.release(limiter.acquire(lim, { environment_id = "G" }), true)
    assert.is_true(t - t0 < 3.1, tostring(t - t0))
  end)

  -- issue 23, item 2: a slot follows its attempt, not a guess of how long it takes
  it("a slot whose attempt still runs is never freed by time: the next call waits for its end", function()
    local lim = limiter.new("kontent", "http://h", nil, nil, 2) -- timeout 2 s: the old guess was 3 s
    local held = limiter.acquire(lim, { environment_id = "L" })
    runtime.sleep = function(s) t = t + s; coroutine.yield() end
    local started
    local next_call = coroutine.create(function()
      local ticket = limiter.acquire(lim, { environment_id = "L" })
      started = t
      limiter.release(ticket, true)
    end)
    local t0 = t
    -- the first attempt waits for a wire slot, then for the server: 10 s
    while t - t0 < 10 and coroutine.status(next_call) ~= "dead" do assert(coroutine.resume(next_call)) end
    assert.is_nil(started, "started " .. tostring(started and started - t0) .. " s after the first")
    limiter.release(held, true)
    for _ = 1, 10 do
      if coroutine.status(next_call) == "dead" then break end
      assert(coroutine.resume(next_call))
    end
    assert.is_true(started ~= nil and started - t0 >= 10)
  end)

  -- issue 23, item 1: a queue of thousands of waiters on one key costs what a
  -- queue of ten does: each waiter has its index, and only the head looks
  it("waiting does not grow with the queue: 5000 waiters on one key, a few looks per start", function()
    -- a batch's loop, in miniature, on the virtual clock: sleep and wake
    runtime.sleep = saved_sleep -- inside a task: the loop's sleep
    local sleeping, ready, looks = {}, {}, 0
    local loop = {}
    function loop.sleep(_, s)
      looks = looks + 1
      coroutine.yield(s)
    end
    function loop.wake(_, co)
      if sleeping[co] then
        sleeping[co] = nil
        ready[#ready + 1] = co
      end
    end
    local lim = limiter.new("kontent", "http://h", nil, nil, 5)
    local starts, n = {}, 5000
    for _ = 1, n do
      local co = coroutine.create(function()
        local ticket = limiter.acquire(lim, { environment_id = "Q" })
        starts[#starts + 1] = t
        local t1 = t + 0.002 -- on the wire
        while t < t1 do coroutine.yield(t1 - t, "wire") end
        limiter.release(ticket, true)
      end)
      runtime.attach(co, loop)
      ready[#ready + 1] = co
    end
    local looks_at = {}
    for _ = 1, 100000 do
      if #starts >= 60 then break end
      if #ready == 0 then
        -- the clock moves to the earliest sleeper's time
        local first
        for co, at in pairs(sleeping) do
          if not first or at < sleeping[first] then first = co end
        end
        t = math.max(t, sleeping[first])
        for co, at in pairs(sleeping) do
          if at <= t then
            sleeping[co] = nil
            ready[#ready + 1] = co
          end
        end
      end
      local batch = ready
      ready = {}
      for _, co in ipairs(batch) do
        local ok, s = coroutine.resume(co)
        assert(ok, s)
        if coroutine.status(co) == "suspended" then sleeping[co] = t + s end
      end
      looks_at[#starts] = looks_at[#starts] or looks
    end
    assert.are.equal(60, #starts)
    -- at the limit: ten in the first second, then one per 100 ms
    assert.is_true(starts[60] - starts[1] < 5.2, tostring(starts[60] - starts[1]))
    -- from the 10th start to the 60th: the looks per start, whatever the queue's length
    local per_start = (looks_at[60] - looks_at[10]) / 50
    assert.is_true(per_start <= 4, per_start .. " looks per start")
  end)

  -- issue 23, item 4: what a key leaves behind is freed once its windows have
  -- passed, whether or not that key is used again
  it("the state of keys no longer used is freed: 5000 one-off environments leave nothing behind", function()
    local lim = limiter.new("kontent", "http://h", nil, nil, 5)
    local function one_off(from, n)
      for i = from, from + n - 1 do
        limiter.release(limiter.acquire(lim, { environment_id = "one-off-" .. i }), true)
        t = t + 0.001
      end
    end
    collectgarbage()
    local keys0 = limiter.local_keys()
    local kib = {}
    for round = 1, 5 do
      one_off(round * 1000, 1000)
      -- a minute later (Kontent's longest window), a call to any other key
      t = t + 61
      one_off(0, 1)
      assert.is_true(limiter.local_keys() - keys0 <= 1, "round " .. round .. ": " .. limiter.local_keys() .. " keys")
      assert.is_true(limiter.queued_keys() <= 2, limiter.queued_keys() .. " queues")
      collectgarbage()
      kib[round] = collectgarbage("count")
    end
    -- about 590 bytes a key, 570 KiB a round, before
    assert.is_true(kib[5] - kib[1] < 100, string.format("%.0f KiB more after 4000 more keys", kib[5] - kib[1]))
  end)

  -- issue 23, item 5: one origin, however it is spelt, has one limit
  it("keys by origin: scheme and host case-folded, the default port written out", function()
    assert.are.equal("http://localhost:8080", limiter.origin("HTTP://LOCALHOST:8080/v2"))
    assert.are.equal("http://localhost:80", limiter.origin("http://localhost/v2/"))
    assert.are.equal("http://localhost:80", limiter.origin("http://LocalHost:80"))
    assert.are.equal("https://manage.kontent.ai:443", limiter.origin("https://Manage.Kontent.AI/v2"))
    assert.are.equal("https://manage.kontent.ai:443", limiter.origin("https://manage.kontent.ai.:443/v2?x=1"))
    assert.are.equal("http://[::1]:8080", limiter.origin("http://[::1]:8080/v2"))
    local a = limiter.new("kontent", "HTTPS://Manage.Kontent.ai/v2", { per_second = 2 }, nil, 5)
    local b = limiter.new("kontent", "https://manage.kontent.ai:443/v2/", { per_second = 2 }, nil, 5)
    local starts = {}
    for i = 1, 4 do
      local ticket = limiter.acquire(i % 2 == 1 and a or b, { environment_id = "O" })
      starts[i] = t
      t = t + 0.001
      limiter.release(ticket, true)
    end
    assert.is_true(starts[3] - starts[1] >= 1, "two spellings, two limits")
    -- another port, another origin
    local c = limiter.new("kontent", "https://manage.kontent.ai:8443/v2", { per_second = 2 }, nil, 5)
    local t0 = t
    limiter.release(limiter.acquire(c, { environment_id = "O" }), true)
    assert.are.equal(t0, t)
  end)

  it("rate_limit_dict outside nginx keeps the limits in this process", function()
    local lim = limiter.new("kontent", "http://d", { per_second = 2 }, "envclone_limits", 5)
    local starts = run(lim, 3, 0.001, "S")
    assert.is_true(starts[3] - starts[1] >= 1)
  end)

  it("malformed options raise", function()
    local bad = { { per_sec = 1 }, { per_second = 0 }, { per_second = 1.5 }, { per_minute = "10" },
      { concurrency_per_key = math.huge }, 3, "x" }
    for _, v in ipairs(bad) do
      assert.has_error(function() envclone.kontent{ rate_limit = v } end)
    end
    assert.has_error(function() envclone.kontent{ rate_limit_dict = 3 } end)
  end)
end)

-- issue 23, item 3: an error in your own code leaves the client usable
describe("limiter and a host transport that raises", function()
  it("an error raised by perform does not hold the environment's slot; it propagates as raised", function()
    local calls = 0
    local k = envclone.kontent{ api_key = "limiter-spec-key", base_url = "http://127.0.0.1:9/v2", timeout = 3,
      retry = false, transport = { perform = function()
        calls = calls + 1
        if calls == 1 then error("boom") end
        return nil, "socket went away"
      end } }
    local env = "8d20758c-d74c-4f59-ae04-ee928c0816b7"
    local ok, raised = pcall(k.get_environment, k, { environment_id = env })
    assert.is_false(ok)
    assert.matches("limiter_spec.lua:%d+: boom$", raised)
    -- the next call to that environment does not wait for the slot (it used
    -- to wait for the client's timeout plus a second)
    local t0 = runtime.now()
    local res, err = k:get_environment{ environment_id = env }
    assert.is_nil(res)
    assert.are.equal("transport", err.kind)
    assert.is_true(runtime.now() - t0 < 0.5, string.format("waited %.2f s", runtime.now() - t0))
    assert.are.equal(2, calls)
  end)
end)

describe("limiter against the emulator (Kontent's limits enforced)", function()
  local e, ENV
  setup(function()
    e = emu.start{ kontent_rate_limit = true }
    ENV = e.seed.kontent.environment_id
  end)
  teardown(function() e:stop() end)
  before_each(function() e:reset() end)

  it("a loop of 100 calls to one environment never sees a 429", function()
    local retried = 0
    local k = e:client("kontent", { on_retry = function() retried = retried + 1 end })
    for i = 1, 100 do
      local env, err = k:get_environment{ environment_id = ENV }
      assert.is_table(env, "call " .. i .. ": " .. tostring(err))
    end
    assert.are.equal(0, retried)
    local statuses = {}
    for _, r in ipairs(e:requests()) do statuses[r.status] = (statuses[r.status] or 0) + 1 end
    assert.are.same({ [200] = 100 }, statuses)
  end)

  it("without the limiter the same loop is throttled by the emulator (429, error_code 10000)", function()
    local k = e:client("kontent", { rate_limit = false, retry = false })
    local err
    for _ = 1, 30 do
      local env
      env, err = k:get_environment{ environment_id = ENV }
      if not env then break end
    end
    assert.is_not_nil(err)
    assert.are.equal(429, err.status)
    assert.are.equal(10000, err.code, tostring(err))
  end)

  it("an invalid call waits for nothing and counts for nothing", function()
    local k = e:client("kontent", { rate_limit = { per_second = 1 } })
    local t0 = runtime.now()
    for _ = 1, 5 do
      local res, err = k:get_environment{ environment_id = "not a uuid" }
      assert.is_nil(res)
      assert.are.equal("validation", err.kind)
    end
    -- counted, the second would have waited a second
    assert.is_true(runtime.now() - t0 < 0.9)
    assert(k:get_environment{ environment_id = ENV })
    assert.are.equal(1, #e:requests())
  end)

  -- issue 23, item 2: a call keeps its environment's slot while it waits for
  -- a wire slot (max_in_flight) and while it is in flight, however long
  it("max_in_flight = 2, a 1.5 s server: calls to one environment never overlap at the server", function()
    e:faults{ delay = 1.5 }
    -- renames: a fresh connection each, so none waits for another's
    local k = e:client("kontent", { timeout = 2, retry = false })
    local b = envclone.batch{ max_in_flight = 2 }
    local function rename(env, after)
      return function()
        if after then runtime.sleep(after) end -- yields to the batch: others fill the wire meanwhile
        return k:rename_environment{ environment_id = env, name = "overlap" }
      end
    end
    local other = "6f1c5e2a-0b7d-4c11-9a3e-2b9d4f6a8c0"
    -- 0-1.5 s two renames of other environments hold the wire, then from
    -- 1.5 s two more, which queued at 0.1 s; the first rename of ENV takes
    -- its slot at 0.2 s, queues behind them and goes on the wire at 3 s; the
    -- second waits for that slot from 0.25 s. A slot lost after the
    -- client's timeout + 1 s (at 3.2 s) let it onto the free wire slot while
    -- the first was still at the server.
    b:add(rename(other .. "3", 0.1))
    b:add(rename(other .. "4", 0.1))
    local first = b:add(rename(ENV, 0.2))
    local second = b:add(rename(ENV, 0.25))
    b:add(rename(other .. "1"))
    b:add(rename(other .. "2"))
    local results = b:run()
    assert.is_true(results[first].ok, tostring(results[first].err))
    assert.is_true(results[second].ok, tostring(results[second].err))
    assert.are.equal(1, e:concurrency().max_in_flight_per_key.kontent[ENV])
  end)

  -- issue 23, item 5
  it("clients on http://localhost:P and HTTP://LOCALHOST:P share one limit: no 429", function()
    local path = e.base_urls.kontent:match("^http://127%.0%.0%.1:%d+(.*)$")
    local lower = e:client("kontent", { base_url = "http://localhost:" .. e.port .. path, retry = false })
    local upper = e:client("kontent", { base_url = "HTTP://LOCALHOST:" .. e.port .. path, retry = false })
    local t0 = runtime.now()
    for i = 1, 20 do
      local env, err = (i % 2 == 1 and lower or upper):get_environment{ environment_id = ENV }
      assert.is_table(env, "call " .. i .. ": " .. tostring(err))
    end
    -- 20 calls at 10 per second
    assert.is_true(runtime.now() - t0 > 1)
  end)
end)
