-- Exactly once (issue 19): creates whose answer is lost are found by their
-- natural key, re-runs adopt, teardown finishes -- against the emulator's
-- "applied, then the answer lost" faults (close_after: the connection
-- drops after the create is applied; applied_502: a proxy's 502 after it).
local envclone = require("envclone")
local emu = require("spec.support.emu")

local e, seed
setup(function()
  e = emu.start()
  seed = e.seed
end)
teardown(function() e:stop() end)
before_each(function() e:reset() end)

local CREATES = { "versori.clone_environment", "versori.create_connection_version", "qovery.clone_application",
  "droplit.create_environment" }

local function lost_answers(rate, ops, seed_value)
  local rules = {}
  for _, op in ipairs(ops or CREATES) do
    rules[#rules + 1] = { operation = op, rate = rate, kinds = { "close_after", "applied_502" } }
  end
  e:faults{ seed = seed_value or 19, rules = rules }
end

local function clients(extra)
  return { versori = e:client("versori", extra), qovery = e:client("qovery", extra),
    droplit = e:client("droplit", extra) }
end

local creates = require("spec.support.creates")

local function mixed(c, i, tag) return creates.mixed(c, i, tag, seed) end

-- counts of the emulator's objects made by a run: total, duplicates, name -> count
local function made(tag) return creates.made(e:control("GET", "objects"), seed, tag) end

local function run_batch(c, n, tag, extra_args)
  local b = envclone.batch{ max_in_flight = 16 }
  for i = 1, n do
    local client, op, args = mixed(c, i, tag)
    for k, v in pairs(extra_args or {}) do args[k] = v end
    b:add(client, op, args)
  end
  return b:run()
end

describe("exactly once", function()
  it("1,000 creates, 30% of answers lost after applying: 1,000 objects, all success, 0 maybe_applied", function()
    lost_answers(0.3)
    local c = clients{ reconcile = { grace = 1 } }
    local results = run_batch(c, 1000, "r1")
    local reconciled, maybe = 0, 0
    for i = 1, 1000 do
      local r = results[i]
      assert.is_true(r.ok, i .. ": " .. tostring(r.err))
      if r.value.reconciled then
        reconciled = reconciled + 1
        assert.is_true(r.value.lost_error.maybe_applied)
      end
    end
    for i = 1, 1000 do if not results[i].ok and results[i].err.maybe_applied then maybe = maybe + 1 end end
    local total, dups = made("r1")
    local stats = e:stats()
    local faulted = 0
    for _, n in pairs(stats.faults) do faulted = faulted + n end
    print(string.format("\n    1000 creates: %d reconciled, %d maybe_applied, %d answers lost, %d requests",
      reconciled, maybe, faulted, stats.requests))
    assert.are.equal(1000, total)
    assert.are.same({}, dups)
    assert.are.equal(0, maybe)
    assert.are.equal(faulted, reconciled, "every lost answer reconciled, and only those")
    assert.is_true(reconciled > 200 and reconciled < 400)
    for _, op in ipairs(CREATES) do
      assert.are.equal(250, stats.by_operation[op], op .. " sent once per call")
    end
  end)

  it("sequential calls: the same, and a run again with if_exists = adopt creates nothing", function()
    lost_answers(0.3)
    local c = clients{ reconcile = { grace = 1 } }
    for i = 1, 80 do
      local client, op, args = mixed(c, i, "s1")
      local res = client[op](client, args)
      assert.is_table(res, op .. " " .. i)
    end
    assert.are.equal(80, (made("s1")))
    local before = e:stats().by_operation
    for i = 1, 80 do
      local client, op, args = mixed(c, i, "s1")
      args.if_exists = "adopt"
      local res, err = client[op](client, args)
      assert.is_table(res, tostring(err))
      assert.is_true(res.adopted, op .. " " .. i)
    end
    local after = e:stats().by_operation
    for _, op in ipairs(CREATES) do assert.are.equal(before[op], after[op], op .. " sent on the adopt run") end
    local total, dups = made("s1")
    assert.are.equal(80, total)
    assert.are.same({}, dups)
  end)

  it("a batch run twice with if_exists = adopt: the second creates nothing and adopts every object", function()
    local c = clients()
    local first = run_batch(c, 200, "a1", { if_exists = "adopt" })
    assert.are.equal(200, first.succeeded)
    local sent = {}
    for _, op in ipairs(CREATES) do sent[op] = e:stats().by_operation[op] end
    local second = run_batch(c, 200, "a1", { if_exists = "adopt" })
    assert.are.equal(200, second.succeeded)
    for i = 1, 200 do assert.is_true(second[i].value.adopted, tostring(i)) end
    for _, op in ipairs(CREATES) do assert.are.equal(sent[op], e:stats().by_operation[op]) end
    assert.are.equal(200, (made("a1")))
  end)

  it("Kontent with a Subscription API key, in a batch within Kontent's limits: reconciled, 0 duplicates, no 429",
    function()
    lost_answers(0.3, { "kontent.clone_environment" })
    -- the client keeps Kontent's limits (10/s, one at a time per environment),
    -- the emulator enforces them (429 past them): none may be met
    local throttled = 0
    local k = e:client("kontent", { subscription_id = seed.kontent.subscription_id, reconcile = { grace = 1 },
      on_retry = function(err) if err.status == 429 then throttled = throttled + 1 end end })
    local b = envclone.batch{ max_in_flight = 8 }
    for i = 1, 40 do
      b:add(k, "clone_environment", { environment_id = seed.kontent.environment_id, name = "k1-" .. i })
    end
    local results = b:run()
    assert.are.equal(0, throttled)
    local reconciled = 0
    for i = 1, 40 do
      assert.is_true(results[i].ok, tostring(results[i].err))
      if results[i].value.reconciled then reconciled = reconciled + 1 end
    end
    assert.is_true(reconciled > 3)
    local names = e:control("GET", "objects").kontent.projects
    local n = 0
    for _, p in pairs(names) do
      for name, ids in pairs(p.names) do
        if name:find("k1-", 1, true) == 1 then
          assert.are.equal(1, #ids, name .. " made twice")
          n = n + 1
        end
      end
    end
    assert.are.equal(40, n)
    assert.are.equal(40, e:stats().by_operation["kontent.clone_environment"])
  end)

  it("Kontent without a Subscription API key: every lost answer maybe_applied, none re-sent", function()
    lost_answers(0.3, { "kontent.clone_environment" })
    local k = e:client("kontent", { rate_limit = false, subscription_api_key = emu.OMIT })
    local lost, ok = 0, 0
    for i = 1, 40 do
      local res, err = k:clone_environment{ environment_id = seed.kontent.environment_id, name = "k2-" .. i }
      if res then
        ok = ok + 1
      else
        assert.is_true(err.maybe_applied, tostring(err))
        assert.matches("subscription_api_key", err.not_reconciled, 1, true)
        lost = lost + 1
      end
    end
    assert.is_true(lost > 3)
    assert.are.equal(40, ok + lost)
    assert.are.equal(40, e:stats().by_operation["kontent.clone_environment"])
    assert.is_nil(e:stats().by_operation["kontent.list_subscription_projects"])
  end)

  it("Droplit without an alias: a lost answer is maybe_applied, and says why it was not looked up", function()
    e:faults{ rules = { { operation = "droplit.create_environment", queue = { "close_after" } } } }
    local d = e:client("droplit")
    local res, err = d:create_environment{ ecosystemId = seed.droplit.ecosystem_id }
    assert.is_nil(res)
    assert.is_true(err.maybe_applied)
    assert.matches("without 'alias' has no key", err.not_reconciled, 1, true)
    assert.are.equal(1, e:stats().requests)
  end)

  it("a create that never arrived (no object after the grace window) is sent once more", function()
    e:faults{ rules = { { operation = "qovery.clone_application", queue = { "close_before" } } } }
    local q = e:client("qovery", { reconcile = { grace = 0.3 } })
    local res = assert(q:clone_application{ applicationId = seed.qovery.application_id,
      environment_id = seed.qovery.environment_id, name = "second-chance" })
    assert.is_nil(res.reconciled)
    assert.are.equal(2, e:stats().by_operation["qovery.clone_application"])
    assert.are.equal(1, e:stats().applied.creates)
  end)

  it("a reconciliation read that fails leaves maybe_applied with the read's failure, never a second create", function()
    -- the lookup read answers 503 every time (retried, then given up)
    e:faults{ rules = {
      { operation = "versori.clone_environment", queue = { "close_after" } },
      { operation = "versori.get_project", rate = 1, kinds = { "503" }, retry_after = 0 },
    } }
    local v = e:client("versori", { retry = { base_delay = 0.001, max_attempts = 2 } })
    local res, err = v:clone_environment{ organisation_id = seed.versori.organisation_id,
      project_id = seed.versori.project_id, oldEnvName = "production", newEnvName = "unseen" }
    assert.is_nil(res)
    assert.is_true(err.maybe_applied)
    assert.are.equal(503, err.reconcile_error.status)
    assert.are.equal(1, e:stats().by_operation["versori.clone_environment"])
    -- a wrong Subscription API key: 401 on the read, the clone's lost answer stands
    e:reset()
    e:faults{ rules = { { operation = "kontent.clone_environment", queue = { "applied_502" } } } }
    local k = e:client("kontent", { rate_limit = false, subscription_id = seed.kontent.subscription_id,
      subscription_api_key = "wrong-subscription-key" })
    local kres, kerr = k:clone_environment{ environment_id = seed.kontent.environment_id, name = "unseen" }
    assert.is_nil(kres)
    assert.is_true(kerr.maybe_applied)
    assert.are.equal(401, kerr.reconcile_error.status)
    assert.are.equal(1, e:stats().by_operation["kontent.clone_environment"])
  end)

  it("adopt: a key taken between the lookup and the create (the vendor's 'exists') is adopted", function()
    local d = e:client("droplit")
    local first = assert(d:create_environment{ ecosystemId = seed.droplit.ecosystem_id, alias = "racer" })
    -- the lookup before the create does not see it yet (a 404 from the emulator)
    e:faults{ rules = { { operation = "droplit.get_environment", queue = { "404" } } } }
    local res = assert(d:create_environment{ ecosystemId = seed.droplit.ecosystem_id, alias = "racer",
      if_exists = "adopt" })
    assert.is_true(res.adopted)
    assert.are.equal(first.id, res.id)
    assert.are.equal(2, e:stats().by_operation["droplit.create_environment"]) -- the second refused: Alias Exists
    assert.are.equal(1, e:stats().applied.creates)
  end)

  describe("ambiguous: an error, never an adoption", function()
    it("a key held before the create whose answer was lost: reason exists (each unique-key vendor)", function()
      local c = clients()
      for i = 0, 3 do
        local client, op, args = mixed(c, i, "pre")
        assert(client[op](client, args))
        e:faults{ rules = { { operation = client._handle:vendor() .. "." .. op, queue = { "close_after" } } } }
        local res, err = client[op](client, args)
        assert.is_nil(res, op)
        assert.are.equal("exists", err.reason, op .. ": " .. tostring(err))
        assert.is_false(err.maybe_applied)
        e:clear_faults()
      end
      assert.are.equal(4, (made("pre")))
    end)

    it("two matches: Qovery names trimmed and case-folded; Kontent names not unique", function()
      local q = e:client("qovery", { reconcile = false })
      assert(q:clone_application{ applicationId = seed.qovery.application_id,
        environment_id = seed.qovery.environment_id, name = "twin" })
      assert(q:clone_application{ applicationId = seed.qovery.application_id,
        environment_id = seed.qovery.environment_id, name = " twin " })
      local q2 = e:client("qovery")
      local res, err = q2:clone_application{ applicationId = seed.qovery.application_id,
        environment_id = seed.qovery.environment_id, name = "TWIN", if_exists = "adopt" }
      assert.is_nil(res)
      assert.are.equal("ambiguous", err.reason)
      assert.are.equal(2, #err.matches)
      local k = e:client("kontent", { rate_limit = false, reconcile = false })
      for _ = 1, 2 do assert(k:clone_environment{ environment_id = seed.kontent.environment_id, name = "Twin" }) end
      local k2 = e:client("kontent", { rate_limit = false, subscription_id = seed.kontent.subscription_id })
      local kres, kerr = k2:clone_environment{ environment_id = seed.kontent.environment_id, name = "Twin",
        if_exists = "adopt" }
      assert.is_nil(kres)
      assert.are.equal("ambiguous", kerr.reason)
      assert.is_false(kerr.sent)
    end)
  end)

  it("teardown of everything made: gone, Qovery's waited to DELETED; again: already_gone; production refused",
    function()
      local c = clients()
      local made_here = {}
      for i = 1, 8 do
        local client, op, args = mixed(c, i, "td")
        made_here[i] = { client = client, op = op, args = args, res = assert(client[op](client, args)) }
      end
      local k = e:client("kontent", { rate_limit = false })
      local clone = assert(k:clone_environment{ environment_id = seed.kontent.environment_id, name = "td-k",
        wait = true, wait_interval = 0.05 })
      local function teardown_all()
        local out = {}
        for _, m in ipairs(made_here) do
          local a, res, err = m.args
          if m.op == "clone_environment" then
            local id
            for _, env in ipairs(m.res.environments) do if env.name == a.newEnvName then id = env.id end end
            res, err = c.versori:delete_environment{ organisation_id = a.organisation_id, project_id = a.project_id,
              environment_id = id }
          elseif m.op == "create_connection_version" then
            res, err = c.versori:delete_connection_version{ organisation_id = a.organisation_id,
              connection_id = a.connection_id, version = a.name }
          elseif m.op == "clone_application" then
            res, err = c.qovery:delete_application{ applicationId = m.res.id, wait = true, wait_interval = 0.05 }
            if res and not res.already_gone then assert.are.equal("DELETED", res.state.state) end
          else
            res, err = c.droplit:delete_environment{ ecosystemId = a.ecosystemId, alias = a.alias }
          end
          assert.is_table(res, tostring(err))
          assert.is_true(res.deleted)
          out[#out + 1] = res.already_gone == true
        end
        local kres = assert(k:delete_environment{ environment_id = clone.id })
        out[#out + 1] = kres.already_gone == true
        return out
      end
      for _, gone in ipairs(teardown_all()) do assert.is_false(gone) end
      local left, _, counts = made("td")
      assert.are.equal(0, left, require("cjson").encode(counts))
      for _, gone in ipairs(teardown_all()) do assert.is_true(gone) end
      local _, perr = k:delete_environment{ environment_id = seed.kontent.environment_id }
      assert.are.equal("production_not_deletable", perr.reason)
      assert.are.equal(1, perr.attempts)
    end)

  it("bad input sends nothing", function()
    local c = clients()
    local V = seed.versori
    local cases = {
      function() return c.versori:delete_connection_version{ organisation_id = V.organisation_id,
        connection_id = V.connection_id, version = "latest" } end,
      function() return c.versori:delete_environment{ organisation_id = V.organisation_id,
        project_id = V.project_id, environment_id = "clone" } end,
      function() return c.versori:clone_environment{ organisation_id = V.organisation_id,
        project_id = V.project_id, oldEnvName = "production", newEnvName = "", if_exists = "adopt" } end,
      function() return c.droplit:create_environment{ ecosystemId = seed.droplit.ecosystem_id, alias = "no-dash",
        if_exists = "adopt" } end,
      function() return c.droplit:delete_environment{ ecosystemId = seed.droplit.ecosystem_id,
        alias = string.rep("a", 25) } end,
      function() return c.droplit:create_environment{ ecosystemId = seed.droplit.ecosystem_id,
        if_exists = "adopt" } end,
    }
    for i, f in ipairs(cases) do
      local res, err = f()
      assert.is_nil(res, tostring(i))
      assert.are.equal("validation", err.kind, i .. ": " .. tostring(err))
    end
    assert.has_error(function()
      c.droplit:create_environment{ ecosystemId = seed.droplit.ecosystem_id, alias = "x", if_exists = "merge" }
    end, "envclone: if_exists must be \"error\" or \"adopt\", got merge")
    assert.are.equal(0, e:stats().requests)
  end)
end)
