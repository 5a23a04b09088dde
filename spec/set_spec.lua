-- Sets (issue 21): plan, apply and destroy a 4-vendor set against the
-- emulator; re-runs create nothing; the state file for what has no lookup;
-- 20 sets in one batch within Kontent's limits; lost answers; bad input.
local envclone = require("envclone")
local set = require("envclone.set")
local core = require("envclone.core")
local emu = require("spec.support.emu")
local sets = require("spec.support.sets")

local e, seed
local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p " .. tmp)

setup(function()
  e = emu.start{ kontent_clone_seconds = 0.1 }
  seed = e.seed
end)
teardown(function()
  e:stop()
  os.execute("rm -rf " .. emu.quote(tmp))
end)
before_each(function() e:reset() end)

local n_state = 0
local function state_path()
  n_state = n_state + 1
  return tmp .. "/state" .. n_state .. ".json"
end

local function new_set(name, opts, spec)
  opts = opts or {}
  opts.name = name
  opts.client_options = opts.client_options or sets.client_options(e)
  if opts.state == nil then opts.state = state_path() end
  return assert(envclone.set(spec or sets.spec(seed), opts))
end

local function statuses(r)
  local t = {}
  for id, o in pairs(r.objects) do t[id] = o.status end
  return t
end

local function read_json(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return core.json_decode(text)
end

describe("envclone.set", function()
  it("apply makes the 8 objects; apply again creates 0 and adopts each", function()
    local s = new_set("pr-1")
    local plan = assert(s:plan())
    assert.are.equal(8, plan.counts.create + 0)
    assert.are.equal(0, e:stats().applied.creates, "plan sends no create")
    local seen = {}
    local r = assert(s:apply{ on_object = function(name, id, res)
      seen[#seen + 1] = id .. "=" .. res.status
      assert.are.equal("pr-1", name)
      error("a hook's error is ignored")
    end })
    assert.is_true(r.ok, require("cjson").encode(statuses(r)))
    assert.are.equal(9, #seen)
    assert.are.equal(8, r.counts.created)
    assert.are.equal(1, r.counts.updated)
    local total, dups = sets.count(e, seed, "pr-1")
    assert.are.equal(8, total)
    assert.are.same({}, dups)
    local creates = e:stats().applied.creates
    local again = assert(s:apply())
    assert.is_true(again.ok)
    assert.are.equal(8, again.counts.adopted)
    assert.are.equal(1, again.counts.unchanged)
    assert.is_nil(again.counts.created)
    assert.are.equal(creates, e:stats().applied.creates, "the second apply created nothing")
    assert.are.equal(8, (sets.count(e, seed, "pr-1")))
    -- the plan now says exists for each create
    local p2 = assert(s:plan())
    assert.are.equal(8, p2.counts.exists)
    assert.are.equal(1, p2.counts.unchanged)
    -- the state file is JSON and names each object's id
    local st = read_json(s.state_path)
    assert.are.equal("pr-1", st.set)
    assert.are.equal("created", st.objects.web.status)
    assert.are.equal(r.objects.web.object_id, st.objects.web.id)
  end)

  it("destroy removes every object (Qovery waited to DELETED); again: all already_gone", function()
    local s = new_set("pr-2")
    assert.is_true(assert(s:apply()).ok)
    local plan = assert(s:plan{ destroy = true })
    assert.are.equal(8, plan.counts.delete)
    local d = assert(s:destroy())
    assert.is_true(d.ok, require("cjson").encode(statuses(d)))
    assert.are.equal(8, d.counts.deleted)
    assert.are.equal(1, d.counts.kept)
    assert.are.equal("DELETED", d.objects.web.state.state)
    assert.are.equal("DELETED", d.objects.api.state.state)
    assert.are.equal(0, (sets.count(e, seed, "pr-2")))
    local again = assert(s:destroy())
    assert.is_true(again.ok)
    assert.are.equal(8, again.counts.already_gone)
    -- and the same with no state file at all: every object found by its key
    local s2 = new_set("pr-2", { state = false })
    local d2 = assert(s2:destroy())
    assert.are.equal(8, d2.counts.already_gone)
  end)

  it("destroy in reverse order: api before web; a refusal is reported and the rest go on", function()
    local s = new_set("pr-3")
    assert(s:apply())
    -- the production environment, adopted under its own name, cannot be deleted
    local spec = sets.spec(seed)
    spec.objects.prod = { vendor = "kontent", operation = "clone_environment",
      client = { subscription_id = seed.kontent.subscription_id },
      args = { environment_id = seed.kontent.environment_id, name = seed.kontent.environment_name } }
    local s2 = new_set("pr-3", { state = s.state_path }, spec)
    local r = assert(s2:destroy())
    assert.are.equal("refused", r.objects.prod.status, tostring(r.objects.prod.error))
    assert.are.equal("production_not_deletable", r.objects.prod.error.reason)
    assert.are.equal(8, r.counts.deleted)
    assert.is_false(r.ok)
    local log = e:requests()
    local api_at, web_at
    for i, q in ipairs(log) do
      if q.operation == "qovery.delete_application" then
        if q.path:find(r.objects.api.object_id, 1, true) then api_at = i else web_at = web_at or i end
      end
    end
    assert.is_true(api_at < web_at, "api (after web) is deleted first")
  end)

  it("the state file is the only record without a lookup: a pending entry is unknown, never a second create",
    function()
      local spec = { objects = {
        k = { vendor = "kontent", operation = "clone_environment", args = {
          environment_id = seed.kontent.environment_id, name = "{set}", wait_interval = 0.05 } },
        d = { vendor = "droplit", operation = "create_environment",
          args = { ecosystemId = seed.droplit.ecosystem_id } },
      } }
      local copts = sets.client_options(e)
      copts.kontent.subscription_api_key = nil
      -- no state file: refused before sending, with why
      local s0 = assert(envclone.set(spec, { name = "so-1", client_options = copts, state = false }))
      local _, err = s0:apply()
      assert.are.equal("validation", err.kind)
      assert.matches("needs a state file", err.message, 1, true)
      assert.matches("subscription_api_key", err.message, 1, true)
      -- a state file that cannot be written: refused too
      local s1 = assert(envclone.set(spec, { name = "so-1", client_options = copts,
        state = "/nonexistent/dir/s.json" }))
      local _, err1 = s1:apply()
      assert.matches("cannot be written", err1.message, 1, true)
      assert.are.equal(0, e:stats().requests)

      local path = state_path()
      local s = assert(envclone.set(spec, { name = "so-1", client_options = copts, state = path }))
      local r = assert(s:apply())
      assert.are.equal(2, r.counts.created)
      local again = assert(s:apply())
      assert.are.equal(2, again.counts.unchanged)
      assert.are.equal(1, e:stats().applied.by_operation["kontent.clone_environment"])
      -- deleted behind the set's back: the read by id says so, and apply makes it again
      assert(e:client("droplit"):delete_environment{ id = r.objects.d.object_id })
      local p0 = assert(s:plan())
      assert.are.equal("create", p0.objects.d.status)
      assert.matches("gone since", p0.objects.d.why, 1, true)
      local re = assert(s:apply())
      assert.are.equal("created", re.objects.d.status)
      assert.are.equal("unchanged", re.objects.k.status)
      -- a run killed between "pending" and the id: the next refuses to guess
      local st = read_json(path)
      st.objects.k = { status = "pending", vendor = "kontent", operation = "clone_environment" }
      assert(core.write_file_atomic(path, core.json_encode(st)))
      local plan = assert(s:plan())
      assert.are.equal("unknown", plan.objects.k.status)
      local u = assert(s:apply())
      assert.are.equal("unknown", u.objects.k.status)
      assert.matches("may exist", u.objects.k.why, 1, true)
      assert.is_false(u.ok)
      assert.are.equal(1, e:stats().applied.by_operation["kontent.clone_environment"])
      local forced = assert(s:apply{ recreate_unknown = true })
      assert.are.equal("created", forced.objects.k.status)
      assert.are.equal(2, e:stats().applied.by_operation["kontent.clone_environment"])
      -- destroy deletes by the recorded ids; again: already_gone
      local d = assert(s:destroy())
      assert.are.equal(2, d.counts.deleted)
      assert.are.equal(2, assert(s:destroy()).counts.already_gone)
      assert.are.equal(2, e:stats().applied.by_operation["droplit.create_environment"])
    end)

  it("a caller's own clients (opts.clients) are used and left open; client options are shared per vendor", function()
    local d = e:client("droplit")
    local spec = { objects = {
      a = { vendor = "droplit", operation = "create_environment", args = { ecosystemId = seed.droplit.ecosystem_id,
        alias = "own_{set_id}" } },
      b = { vendor = "droplit", operation = "create_environment", args = { ecosystemId = seed.droplit.ecosystem_id,
        alias = "own_{set_id}_b" }, after = { "a" } },
    } }
    local s = assert(envclone.set(spec, { name = "c1", clients = { droplit = d }, state = false }))
    local r = assert(s:apply())
    assert.are.equal(2, r.counts.created)
    assert.are.equal("b", r.order[2])
    -- still usable: the set did not close it
    assert(d:get_environment{ id = r.objects.a.object_id })
    -- a vendor with neither clients nor client_options: an error naming the object, nothing sent
    local s2 = assert(envclone.set(spec, { name = "c2", state = false }))
    local requests = e:stats().requests
    local _, err = s2:apply()
    assert.matches("objects.a.vendor: no client options for droplit", err.message, 1, true)
    assert.are.equal(requests, e:stats().requests)
  end)

  it("two runs of one set: the second waits for the lock, or refuses with lock_timeout = 0", function()
    local s = new_set("pr-4")
    local lock = assert(core.lock_file(s.state_path .. ".lock", 0))
    local s2 = new_set("pr-4", { state = s.state_path, lock_timeout = 0 })
    local _, err = s2:apply()
    assert.are.equal("locked", err.reason)
    assert.are.equal(0, e:stats().requests)
    lock:unlock()
    assert.is_true(assert(s2:apply()).ok)
  end)

  it("30% of creates applied, then the answer lost: the same counts, 0 duplicates", function()
    local rules = {}
    for _, op in ipairs{ "versori.clone_environment", "versori.create_connection_version", "qovery.clone_application",
      "kontent.clone_environment", "droplit.create_environment" } do
      rules[#rules + 1] = { operation = op, rate = 0.3, kinds = { "close_after", "applied_502" } }
    end
    e:faults{ seed = 21, rules = rules }
    local copts = sets.client_options(e, { reconcile = { grace = 0.5 } })
    local list = {}
    for i = 1, 5 do list[i] = new_set("f" .. i, { client_options = copts }) end
    local results = set.run_all(list, "apply")
    local lost = 0
    for _, n in pairs(e:stats().faults) do lost = lost + n end
    for i, r in ipairs(results) do
      assert.is_true(r.ok, i .. ": " .. require("cjson").encode(statuses(r)))
      local total, dups = sets.count(e, seed, "f" .. i)
      assert.are.equal(8, total)
      assert.are.same({}, dups)
    end
    assert.is_true(lost > 5, "faults were injected: " .. lost)
    -- and again: nothing new
    local creates = e:stats().applied.creates
    for _, r in ipairs(set.run_all(list, "apply")) do assert.is_true(r.ok) end
    assert.are.equal(creates, e:stats().applied.creates)
  end)

  it("doc/set.schema.json is scripts/set_schema.lua's output; examples/preview_set.json is a valid set", function()
    local p = assert(io.popen((os.getenv("ENVCLONE_LUA") or "lua5.4") .. " scripts/set_schema.lua"))
    local generated = p:read("*a")
    p:close()
    assert.are.equal(emu.read_file("doc/set.schema.json"), generated)
    local spec = assert(set.load("examples/preview_set.json"))
    local s = assert(envclone.set(spec, { name = "pr-123", file = "examples/preview_set.json" }))
    assert.are.equal(9, #s.order)
  end)

  describe("bad input: an error naming the place, nothing sent", function()
    local function bad(spec, pattern, field, opts)
      local s, err = envclone.set(spec, opts or { name = "x", file = "preview.json",
        client_options = sets.client_options(e) })
      assert.is_nil(s, pattern)
      assert.are.equal("validation", err.kind)
      assert.matches(pattern, err.message, 1, true)
      if field then assert.are.equal(field, err.field) end
      return err
    end
    local function obj(extra)
      local o = { vendor = "droplit", operation = "create_environment",
        args = { ecosystemId = "E1", alias = "a{set_id}" } }
      for k, v in pairs(extra or {}) do o[k] = v end
      return o
    end

    it("not JSON, not an object", function()
      local path = tmp .. "/bad.json"
      local f = assert(io.open(path, "w"))
      f:write('{ "objects": ')
      f:close()
      local _, err = set.load(path)
      assert.matches(path .. ": not valid JSON", err.message, 1, true)
      f = assert(io.open(path, "w"))
      f:write('[1, 2]')
      f:close()
      local _, err2 = set.load(path)
      assert.matches("must hold a JSON object", err2.message, 1, true)
    end)

    it("unknown vendor, operation, field, member; a delete or a read as an object", function()
      local err = bad({ objects = { web = obj{ vendor = "heroku" } } },
        "preview.json: objects.web.vendor: unknown vendor", "vendor")
      assert.are.equal("web", err.object)
      assert.are.equal("preview.json", err.file)
      bad({ objects = { web = obj{ operation = "clone_app" } } },
        "objects.web.operation: unknown operation 'clone_app'")
      bad({ objects = { web = obj{ args = { ecosystemId = "E1", colour = "red" } } } },
        "objects.web.args.colour: unknown field of droplit.create_environment", "args.colour")
      bad({ objects = { web = obj{ depends = {} } } }, "objects.web.depends: unknown member")
      bad({ objects = { web = obj{ operation = "delete_environment" } } }, "a set declares creates and updates")
      bad({ objects = { web = obj{ operation = "get_environment" } } }, "only reads")
      bad({ objects = {} }, "'objects' must be an object of one or more")
      bad({ objects = { ["9x"] = obj() } }, "an object id is")
    end)

    it("a dependency cycle, an unknown dependency", function()
      bad({ objects = { a = obj{ after = { "b" } }, b = obj{ args = { ecosystemId = "E1", alias = "{a.id}" } } } },
        "a dependency cycle: a -> b -> a")
      bad({ objects = { a = obj{ after = { "ghost" } } } }, "objects.a.after: names object 'ghost'")
      bad({ objects = { a = obj{ args = { ecosystemId = "{ghost.id}" } } } }, "names object 'ghost'")
    end)

    it("a template variable with no value, or unknown; a secret in a template", function()
      bad({ objects = { a = obj{ args = { ecosystemId = "E1", alias = "{pr}" } } } },
        "objects.a.args.alias: unknown template variable {pr}")
      bad({ objects = { a = obj(), b = obj{ args = { ecosystemId = "E1", alias = "{a.management_api_key}" } } } },
        "cannot carry a secret")
    end)

    it("two objects with one natural key (Qovery's names case-folded)", function()
      local Q = seed.qovery
      local function app(name)
        return { vendor = "qovery", operation = "clone_application", args = { applicationId = Q.application_id,
          environment_id = Q.environment_id, name = name } }
      end
      bad({ objects = { a = app("web-{set}"), b = app(" WEB-{set} ") } },
        "objects.b.args.name: has the same natural key as object 'a'")
      bad({ objects = { a = obj(), b = obj() } }, "has the same natural key")
    end)

    it("credentials or their destination in a set file", function()
      bad({ objects = { a = obj{ client = { token = "x" } } } }, "objects.a.client.token: not allowed in a set file")
      bad({ objects = { a = obj{ client = { base_url = "http://evil.example" } } } }, "client.base_url: not allowed")
    end)

    it("a template reading a field the result does not have: that object fails, naming it", function()
      local spec = { objects = {
        a = obj{ args = { ecosystemId = seed.droplit.ecosystem_id, alias = "tf{set_id}" } },
        b = obj{ args = { ecosystemId = seed.droplit.ecosystem_id, alias = "{a.colour}" } },
      } }
      local s = assert(envclone.set(spec, { name = "x", file = "t.json", client_options = sets.client_options(e),
        state = state_path() }))
      local r = assert(s:apply())
      assert.are.equal("created", r.objects.a.status)
      assert.are.equal("failed", r.objects.b.status)
      assert.matches("t.json: objects.b.args: template variable {a.colour} has no value (the result of object 'a' "
        .. "has no field 'colour')", r.objects.b.error.message, 1, true)
    end)

    it("a field the vendor would refuse: the object fails validation, nothing sent", function()
      local s = assert(envclone.set({ objects = { a = obj{ args = { ecosystemId = "E1", alias = "no-dash-{set}" } } } },
        { name = "x", client_options = sets.client_options(e), state = state_path() }))
      local r = assert(s:apply())
      assert.are.equal("failed", r.objects.a.status)
      assert.are.equal("validation", r.objects.a.error.kind)
      assert.are.equal(0, e:stats().requests)
    end)

    it("a set with no name; a state file of another set", function()
      bad({ objects = { a = obj() } }, "the set needs a name", nil, { client_options = sets.client_options(e) })
      local path = state_path()
      assert(core.write_file_atomic(path, '{"version":1,"set":"other","objects":{}}'))
      local s = assert(envclone.set({ objects = { a = obj() } }, { name = "x", client_options = sets.client_options(e),
        state = path }))
      local _, err = s:apply()
      assert.matches("belongs to set 'other'", err.message, 1, true)
      assert.are.equal(0, e:stats().requests)
    end)
  end)
end)
