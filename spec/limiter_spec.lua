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

  it("a slot held by a call that never ended (its batch was dropped) frees after the client's timeout", function()
    local lim = limiter.new("kontent", "http://h", nil, nil, 2)
    limiter.acquire(lim, { environment_id = "G" }) -- never released
    local t0 = t
    limiter.release(limiter.acquire(lim, { environment_id = "G" }), true)
    assert.is_true(t - t0 >= 2 and t - t0 < 3.1)
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
end)
