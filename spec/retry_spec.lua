-- Retries that never double a clone, Retry-After, and waiters, against the
-- fault-injecting emulator. Delays are shrunk through options (base_delay,
-- the emulator's retry_after and slow_seconds), never by skipping a rule.
local envclone = require("envclone")
local core = require("envclone.core")
local emu = require("spec.support.emu")

local e, seed

local function client(vendor, extra) return e:client(vendor, extra) end

setup(function()
  e = emu.start{ kontent_clone_seconds = 0.3 }
  seed = e.seed
end)

teardown(function()
  if e then e:stop() end
end)

before_each(function() e:reset() end)

describe("retries of creates", function()
  it("1000 creates under 30% faults of every kind: nothing lost, nothing doubled", function()
    e:faults{ seed = 20261127, rules = { { operation = "*", rate = 0.3,
      kinds = { "429", "503", "close_before", "close_after", "slow", "truncated", "malformed" },
      retry_after = 0, slow_seconds = 0.4 } } }
    local retry = { max_attempts = 4, base_delay = 0.001, max_delay = 0.01 }
    -- this spec is about retries: Kontent's client-side limits (400/min) would
    -- only stretch it to a minute (spec/limiter_spec.lua covers them)
    -- lost answers are looked up (Kontent: no subscription key, so never);
    -- the emulator's writes are visible at once, so a short grace suffices
    local reconcile = { grace = 0.1 }
    local kontent = client("kontent", { timeout = 0.2, retry = retry, rate_limit = false })
    local droplit = client("droplit", { timeout = 0.2, retry = retry, reconcile = reconcile })
    local qovery = client("qovery", { timeout = 0.2, retry = retry, reconcile = reconcile })
    local ops = core.operations
    local function op_of(vendor, name)
      for _, op in ipairs(ops) do if op.vendor == vendor and op.name == name then return op end end
    end
    local calls = {
      function(i) return kontent:clone_environment{ environment_id = seed.kontent.environment_id,
        name = "k-" .. i } end,
      function(i) return droplit:create_environment{ ecosystemId = seed.droplit.ecosystem_id,
        alias = "d_" .. i } end,
      function(i) return qovery:clone_application{ applicationId = seed.qovery.application_id,
        environment_id = seed.qovery.environment_id, name = "q-" .. i } end,
    }
    local call_ops = { op_of("kontent", "clone_environment"), op_of("droplit", "create_environment"),
      op_of("qovery", "clone_application") }
    local successes, maybe, exhausted, retried = 0, 0, 0, 0
    for i = 1, 1000 do
      local which = i % 3 + 1
      local res, err = calls[which](i)
      if res ~= nil then
        successes = successes + 1
      else
        assert.is_true(envclone.is_error(err))
        if err.maybe_applied then
          maybe = maybe + 1
        else
          -- not applied: it must have used every attempt on a retryable error
          assert.are.equal(retry.max_attempts, err.attempts, tostring(err))
          assert.is_true(require("envclone.retry").retryable(call_ops[which], err), tostring(err))
          exhausted = exhausted + 1
        end
      end
    end
    local stats = e:stats()
    print(string.format("\n    1000 creates: %d ok, %d maybe_applied, %d exhausted; %d requests; %d applied",
      successes, maybe, exhausted, stats.requests, stats.applied.creates))
    for name, count in pairs(stats.created_names) do
      assert.are.equal(1, count, name .. " was created twice")
    end
    for _, n in pairs(stats.by_operation) do retried = retried + n end
    assert.are.equal(1000, successes + maybe + exhausted)
    assert.is_true(stats.applied.creates >= successes, "lost a success")
    assert.is_true(stats.applied.creates <= successes + maybe, "created more than was reported")
    assert.is_true(retried > 1000, "faults must have caused retries")
    assert.is_true(maybe > 0 and successes > 700)
  end)

  it("honours Retry-After: 1 (at least one second, not much more)", function()
    e:faults{ rules = { { operation = "kontent.clone_environment", queue = { "429" }, retry_after = 1 } } }
    local seen = {}
    local k = client("kontent", { on_retry = function(err, attempt, delay)
      seen[#seen + 1] = { status = err.status, attempt = attempt, delay = delay } end })
    local t0 = core.now()
    local clone = assert(k:clone_environment{ environment_id = seed.kontent.environment_id, name = "After" })
    local elapsed = core.now() - t0
    assert.is_string(clone.id)
    assert.is_true(elapsed >= 1.0, "waited only " .. elapsed)
    assert.is_true(elapsed < 1.8, "waited " .. elapsed)
    assert.are.same({ { status = 429, attempt = 1, delay = 1 } }, seen)
    assert.are.equal(1, e:stats().applied.creates)
  end)

  it("gives up when Retry-After is past max_retry_after, and says so", function()
    e:faults{ rules = { { operation = "kontent.clone_environment", queue = { "503" }, retry_after = 30 } } }
    local k = client("kontent", { retry = { max_retry_after = 5 } })
    local res, err = k:clone_environment{ environment_id = seed.kontent.environment_id, name = "Late" }
    assert.is_nil(res)
    assert.are.equal(503, err.status)
    assert.are.equal(30, err.retry_after)
    assert.are.equal(1, err.attempts)
    assert.are.equal(0, e:stats().applied.creates)
  end)

  it("retries a 503 on a create once, creating exactly one", function()
    e:faults{ rules = { { operation = "droplit.create_environment", queue = { "503" }, retry_after = 0 } } }
    local d = client("droplit", { retry = { base_delay = 0.001 } })
    assert(d:create_environment{ ecosystemId = seed.droplit.ecosystem_id, alias = "once" })
    local stats = e:stats()
    assert.are.equal(2, stats.by_operation["droplit.create_environment"])
    assert.are.equal(1, stats.applied.creates)
  end)

  it("never re-sends a create after the connection dropped mid-request: it finds it by key", function()
    e:faults{ rules = { { operation = "versori.clone_environment", queue = { "close_after" } } } }
    local v = client("versori")
    local res = assert(v:clone_environment{ organisation_id = seed.versori.organisation_id,
      project_id = seed.versori.project_id, oldEnvName = "production", newEnvName = "dropped" })
    assert.is_true(res.reconciled)
    assert.is_true(res.lost_error.maybe_applied)
    assert.are.equal(1, e:stats().by_operation["versori.clone_environment"])
    assert.are.equal(1, e:stats().applied.creates)
    local n = 0
    for _, env in ipairs(res.environments) do if env.name == "dropped" then n = n + 1 end end
    assert.are.equal(1, n, "the reconciled answer is the project holding the new environment")
  end)

  it("never retries a create after the connection dropped mid-request (reconcile = false)", function()
    e:faults{ rules = { { operation = "versori.clone_environment", queue = { "close_after" } } } }
    local v = client("versori", { reconcile = false })
    local res, err = v:clone_environment{ organisation_id = seed.versori.organisation_id,
      project_id = seed.versori.project_id, oldEnvName = "production", newEnvName = "dropped" }
    assert.is_nil(res)
    assert.is_true(err.maybe_applied)
    assert.are.equal(1, err.attempts)
    assert.are.equal(1, e:stats().requests)
    assert.are.equal(1, e:stats().applied.creates)
    assert.matches("may have applied", tostring(err))
  end)

  it("never retries a create that timed out", function()
    e:faults{ rules = { { operation = "qovery.clone_application", queue = { "slow" }, slow_seconds = 1 } } }
    local q = client("qovery", { timeout = 0.3 })
    local res, err = q:clone_application{ applicationId = seed.qovery.application_id,
      environment_id = seed.qovery.environment_id, name = "slowpoke", reconcile = false }
    assert.is_nil(res)
    assert.are.equal("timeout", err.kind)
    assert.is_true(err.maybe_applied)
    assert.are.equal(1, err.attempts)
  end)

  it("retries a create whose connection was refused, and reports the attempts", function()
    local k = envclone.kontent{ api_key = "k-123456", base_url = "http://127.0.0.1:9",
      retry = { base_delay = 0.001 } }
    local _, err = k:clone_environment{ environment_id = seed.kontent.environment_id, name = "nowhere" }
    assert.are.equal("connect", err.code)
    assert.are.equal(3, err.attempts)
    assert.is_false(err.maybe_applied)
    assert.matches("after 3 attempts", tostring(err))
  end)
end)

describe("retries of idempotent calls", function()
  it("a DELETE whose connection dropped after acting: the retry's 404 means the first attempt applied", function()
    local logged = {}
    local k = client("kontent", { retry = { base_delay = 0.001 },
      log = function(level, msg, info) logged[#logged + 1] = { level = level, msg = msg, info = info } end })
    local clone = assert(k:clone_environment{ environment_id = seed.kontent.environment_id, name = "ToDelete" })
    assert(k:get_environment{ environment_id = clone.id }) -- leaves a pooled connection behind
    e:faults{ rules = { { operation = "kontent.delete_environment", queue = { "close_after" } } } }
    -- attempt 1 deleted it and lost the answer; attempt 2 got 404: that is success
    assert.is_true(k:delete_environment{ environment_id = clone.id }.deleted)
    local said
    for _, l in ipairs(logged) do
      if l.level == "info" and l.msg:find("earlier attempt", 1, true) then said = l end
    end
    assert.is_table(said, "the log hook is told why a 404 counts as success")
    assert.are.equal("not_found", said.info.reason)
    assert.are.equal(2, said.info.attempt)
    local deletes = 0
    for _, r in ipairs(e:requests()) do
      if r.operation == "kontent.delete_environment" then deletes = deletes + 1 end
    end
    assert.are.equal(2, deletes, "libcurl must not re-send on its own")
  end)

  it("a 404 on the FIRST attempt of a DELETE is already_gone (success, one attempt)", function()
    local k = client("kontent", { retry = { base_delay = 0.001 } })
    local res = assert(k:delete_environment{ environment_id = "00000000-0000-4000-8000-00000000dead" })
    assert.is_true(res.deleted)
    assert.is_true(res.already_gone)
    assert.are.equal(1, e:stats().requests)
  end)

  it("mark-as-production answered 500 then 232 on the retry: the first attempt applied", function()
    local k = client("kontent", { retry = { base_delay = 0.001 } })
    local clone = assert(k:clone_environment{ environment_id = seed.kontent.environment_id, name = "SwapMe" })
    e:faults{ rules = { { operation = "kontent.mark_environment_as_production", queue = { "close_after" } } } }
    assert.is_true(k:mark_environment_as_production{ environment_id = clone.id, enable_webhooks = false })
    assert.are.equal(true, k:get_environment{ environment_id = clone.id }.is_production)
  end)


  it("an HTTP-date Retry-After is honoured and reported in seconds; a nonsense date is ignored", function()
    local r = require("envclone.retry")
    assert.is_nil(r.seconds_until("3000000000 Jan 2020 00:00:00"))
    assert.is_nil(r.seconds_until("Wed, 99 Oct 2015 07:28:00 GMT"))
    assert.are.equal(0, r.seconds_until("Wed, 21 Oct 2015 07:28:00 GMT"))
    local err = { retry_after_date = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 5) }
    assert.is_true(math.abs(r.retry_after(err) - 5) <= 1)
  end)

  it("retries a GET after a dropped connection and a 502-class error", function()
    e:faults{ rules = { { operation = "kontent.get_environment", queue = { "close_before", "503" },
      retry_after = 0 } } }
    local attempts = 0
    local k = client("kontent", { retry = { base_delay = 0.001 }, on_retry = function() attempts = attempts + 1 end })
    local info = assert(k:get_environment{ environment_id = seed.kontent.environment_id })
    assert.are.equal("Production", info.environment)
    assert.are.equal(2, attempts)
    assert.are.equal(3, e:stats().requests)
  end)

  it("retry = false makes one attempt; a call can raise max_attempts", function()
    e:faults{ rules = { { operation = "kontent.get_environment", queue = { "503", "503", "503" },
      retry_after = 0 } } }
    local k = client("kontent", { retry = false })
    local _, err = k:get_environment{ environment_id = seed.kontent.environment_id }
    assert.are.equal(1, err.attempts)
    assert.are.equal(503, err.status)
    local info = assert(k:get_environment{ environment_id = seed.kontent.environment_id,
      retry = { max_attempts = 3, base_delay = 0.001 } })
    assert.are.equal("Production", info.environment)
    assert.are.equal(4, e:stats().requests)
  end)

  it("backs off exponentially with full jitter under the cap", function()
    local r = require("envclone.retry")
    local p = r.policy{ base_delay = 0.1, max_delay = 0.5 }
    for attempt = 1, 8 do
      for _ = 1, 50 do
        local d = r.delay(p, attempt, {})
        assert.is_true(d >= 0 and d <= math.min(0.5, 0.1 * 2 ^ (attempt - 1)))
      end
    end
    assert.are.equal(3, r.delay(p, 1, { retry_after = 3 }))
    assert.is_true(math.abs(r.seconds_until(os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 10)) - 10) <= 1)
  end)

  it("a log hook sees each attempt", function()
    e:faults{ rules = { { operation = "kontent.get_environment", queue = { "503" }, retry_after = 0 } } }
    local lines = {}
    local k = client("kontent", { log = function(level, msg) lines[#lines + 1] = level .. " " .. msg end })
    assert(k:get_environment{ environment_id = seed.kontent.environment_id })
    assert.are.equal(2, #lines)
    assert.matches("http 503", lines[1])
  end)
end)

describe("waiters", function()
  it("returns once the emulator flips the state to done, calling on_progress each poll", function()
    local k = client("kontent")
    local clone = assert(k:clone_environment{ environment_id = seed.kontent.environment_id, name = "W" })
    local progress = {}
    local state = assert(k:wait_for_cloning{ environment_id = clone.id, timeout = 5, interval = 0.05,
      on_progress = function(s, elapsed, poll) progress[#progress + 1] = { s.cloning_state, elapsed, poll } end })
    assert.are.equal("done", state.cloning_state)
    assert.is_true(#progress >= 2)
    for i, p in ipairs(progress) do
      assert.are.equal(i < #progress and "in_progress" or "done", p[1])
      assert.are.equal(i, p[3])
    end
    local polls = 0
    for _, entry in ipairs(e:requests()) do
      if entry.operation == "kontent.get_cloning_state" then polls = polls + 1 end
    end
    -- every poll reported, the last (done) one included
    assert.are.equal(#progress, polls)
  end)

  it("treats a 404 on the new environment's cloning state as 'not visible yet' during the grace period",
    function()
    local k = client("kontent")
    -- the clone call answers at once; its cloning state is not visible for the first two polls
    e:faults{ rules = { { operation = "kontent.get_cloning_state", queue = { "404", "404" } } } }
    local seen = {}
    local clone, state = k:clone_environment{ environment_id = seed.kontent.environment_id, name = "Grace",
      wait = true, wait_interval = 0.05, wait_timeout = 5,
      on_progress = function(s) seen[#seen + 1] = s and s.cloning_state end }
    assert.is_table(clone, tostring(state))
    assert.are.equal("done", state.cloning_state)
    assert.are.equal("not_visible_yet", seen[1])
    assert.are.equal("not_visible_yet", seen[2])
    -- after the grace period the same 404 ends the wait: the environment is really not there
    e:faults{ rules = { { operation = "kontent.get_cloning_state", queue = { "404", "404", "404" } } } }
    local _, err = k:wait_for_cloning{ environment_id = clone.id, grace = 0.06, interval = 0.05, timeout = 5 }
    assert.are.equal(404, err.status)
    assert.are.equal("not_found", err.reason)
  end)

  it("times out cleanly when the clone never finishes", function()
    e:config{ kontent_clone_seconds = -1 }
    local k = client("kontent")
    local clone = assert(k:clone_environment{ environment_id = seed.kontent.environment_id, name = "Never" })
    local t0 = core.now()
    local state, err = k:wait_for_cloning{ environment_id = clone.id, timeout = 0.5, interval = 0.05 }
    local elapsed = core.now() - t0
    assert.is_nil(state)
    assert.are.equal("timeout", err.kind)
    assert.are.equal("in_progress", err.state.cloning_state)
    assert.is_true(elapsed >= 0.5 and elapsed < 1.5, "took " .. elapsed)
    assert.matches("in_progress", tostring(err))
  end)

  it("reports a failed clone with the state seen", function()
    e:config{ kontent_clone_outcome = "failed", kontent_clone_seconds = 0 }
    local k = client("kontent")
    local clone = assert(k:clone_environment{ environment_id = seed.kontent.environment_id, name = "Broken" })
    local _, err = k:wait_for_cloning{ environment_id = clone.id, timeout = 2, interval = 0.05 }
    assert.are.equal("state", err.kind)
    assert.are.equal("failed", err.state.cloning_state)
  end)

  it("a cloning state Kontent does not document ('canceled'): polled for unknown_timeout, then an error "
    .. "naming it (issue 23, question 2)", function()
    e:config{ kontent_clone_outcome = "canceled", kontent_clone_seconds = 0 }
    local k = client("kontent")
    local clone = assert(k:clone_environment{ environment_id = seed.kontent.environment_id, name = "Canceled" })
    local seen = {}
    local t0 = core.now()
    local state, err = k:wait_for_cloning{ environment_id = clone.id, timeout = 30, interval = 0.05,
      unknown_timeout = 0.5, on_progress = function(s) seen[#seen + 1] = s and s.cloning_state end }
    local took = core.now() - t0
    assert.is_nil(state)
    assert.are.equal("state", err.kind, tostring(err))
    assert.are.equal("unknown_state", err.reason)
    assert.are.equal("canceled", err.state.cloning_state)
    assert.matches("'canceled'", tostring(err))
    assert.matches("in_progress, done, failed", err.message, 1, true)
    assert.is_true(took >= 0.5 and took < 3, "took " .. took .. " s (the wait's timeout is 30 s)")
    -- it kept polling for the while, and on_progress saw each poll, the last one too
    assert.is_true(#seen >= 3, #seen .. " polls")
    for _, s in ipairs(seen) do assert.are.equal("canceled", s) end
    -- unknown_timeout = 0: an undocumented state ends the wait at its first poll
    local polls = 0
    local _, err0 = k:wait_for_cloning{ environment_id = clone.id, timeout = 30, interval = 0.05,
      unknown_timeout = 0, on_progress = function(_, _, poll) polls = poll end }
    assert.are.equal("unknown_state", err0.reason)
    assert.are.equal(1, polls)
    -- the option is checked like the others
    assert.has_error(function()
      k:wait_for_cloning{ environment_id = clone.id, unknown_timeout = -1 }
    end)
    assert.has_error(function()
      k:wait_for_cloning{ environment_id = clone.id, unknown_timeout = 0 / 0 }
    end)
  end)

  it("grows the interval up to the cap", function()
    local polls, t0 = {}, core.now()
    local res, err = envclone.wait(function(poll)
      polls[#polls + 1] = core.now() - t0
      return false, poll
    end, { timeout = 0.7, interval = 0.05, backoff = 2, max_interval = 0.2 })
    assert.is_nil(res)
    assert.are.equal("timeout", err.kind)
    -- 0, .05, .15, .35, .55 (+ the last poll at the deadline)
    assert.is_true(#polls >= 4 and #polls <= 7, #polls .. " polls")
    assert.is_true(polls[3] - polls[2] > polls[2] - polls[1])
  end)

  it("respects Retry-After from a throttled poll", function()
    e:faults{ rules = { { operation = "kontent.get_cloning_state", queue = { "429" }, retry_after = 1 } } }
    local k = client("kontent", { retry = false })
    local t0 = core.now()
    local state = assert(k:wait_for_cloning{ environment_id = seed.kontent.environment_id, timeout = 5,
      interval = 0.05 })
    assert.are.equal("done", state.cloning_state)
    assert.is_true(core.now() - t0 >= 1.0)
  end)

  it("clone_environment{wait = true} clones and waits in one call", function()
    local k = client("kontent")
    local clone, state = k:clone_environment{ environment_id = seed.kontent.environment_id, name = "OneCall",
      wait = true, wait_interval = 0.05 }
    assert.is_string(clone.id)
    assert.are.equal("done", state.cloning_state)
    assert.are.equal("done", assert(k:get_cloning_state{ environment_id = clone.id }).cloning_state)
  end)

  it("refuses wait = true where no waiter exists before sending, and misspelt wait options", function()
    local d = client("droplit")
    assert.has_error(function()
      d:create_environment{ ecosystemId = seed.droplit.ecosystem_id, alias = "never", wait = true }
    end, "envclone: wait = true is not supported by droplit.create_environment")
    assert.are.equal(0, e:stats().requests)

    local k = client("kontent")
    assert.has_error(function()
      k:wait_for_cloning{ environment_id = seed.kontent.environment_id, timout = 1 }
    end, "envclone: wait_for_cloning: unknown argument 'timout'")
    assert.has_error(function() envclone.wait(function() return true end, { intervall = 1 }) end,
      "envclone.wait: unknown option 'intervall'")
    assert.has_error(function() envclone.wait(function() return true end, { timeout = 0 / 0 }) end)
    assert.are.equal(0, e:stats().requests)
  end)

  it("checks every per-call option before sending: a bad wait option raises and creates nothing, in a batch too "
    .. "(issue 23, item 6)", function()
    local k = client("kontent")
    local bad = {
      { wait_interval = -1 }, { wait_interval = 0 / 0 }, { wait_interval = math.huge }, { wait_interval = "1" },
      { wait_timeout = -5 }, { wait_timeout = 0 / 0 }, { wait_timeout = math.huge },
      { wait_grace = -1 }, { wait_grace = 0 / 0 },
      { on_progress = "print" }, { on_progress = {} }, { wait = "yes" },
      { retry = { max_attempts = -1 } }, { retry = "twice" },
    }
    local function args_with(extra)
      local a = { environment_id = seed.kontent.environment_id, name = "NeverMade", wait = true }
      for key, v in pairs(extra) do a[key] = v end
      return a
    end
    for _, extra in ipairs(bad) do
      local key = next(extra)
      local ok, msg = pcall(k.clone_environment, k, args_with(extra))
      assert.is_false(ok, key .. " = " .. tostring(extra[key]) .. " was accepted")
      assert.matches(key, tostring(msg), 1, true)
      assert.are.equal(0, e:stats().requests, key .. " = " .. tostring(extra[key]) .. " sent the create")
    end
    -- the raise points at the caller's line
    local _, msg = pcall(function()
      local res = k:clone_environment(args_with{ wait_interval = -1 })
      return res
    end)
    assert.matches("^spec/retry_spec%.lua:%d+: envclone: argument 'wait_interval'", msg)
    -- a batch: b:add raises at once, as for any programmer error
    local b = envclone.batch()
    for _, extra in ipairs(bad) do
      local key = next(extra)
      assert.has_error(function() b:add(k, "clone_environment", args_with(extra)) end, nil, key)
    end
    -- a task making such a call fails before sending
    local t = b:add(function() return k:clone_environment(args_with{ wait_timeout = 0 / 0 }) end)
    local results = b:run()
    assert.is_false(results[t].ok)
    assert.matches("wait_timeout", results[t].err.message)
    assert.are.equal(0, e:stats().requests)
    -- good options still work, with no wait too
    local clone, state = k:clone_environment(args_with{ wait_interval = 0.05, wait_timeout = 5, wait_grace = 0 })
    assert.is_string(clone.id, tostring(state))
    assert.are.equal("done", state.cloning_state)
  end)

  it("envclone.wait polls any condition, e.g. a Qovery application until it appears", function()
    local q = client("qovery")
    local n = 0
    local app = assert(envclone.wait(function()
      n = n + 1
      if n < 3 then return false, "not yet" end
      return true, assert(q:clone_application{ applicationId = seed.qovery.application_id,
        environment_id = seed.qovery.environment_id, name = "appears" })
    end, { interval = 0.01, timeout = 2 }))
    assert.are.equal("appears", app.name)
    assert.are.equal(3, n)
  end)
end)
