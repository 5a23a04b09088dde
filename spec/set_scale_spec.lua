-- Sets at scale (issue 21): 20 sets (20 pull requests) applied by one
-- envclone.batch with the emulator's Kontent limits on: no 429, every object
-- made once, and the wall time against the same sets applied one by one.
-- Each request is answered 50 ms late (the fault plan's `delay`), as over a
-- network: what a batch saves is the waiting.
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
  e = emu.start{ kontent_clone_seconds = 0.1, kontent_rate_limit = true, faults = { delay = 0.05 } }
  seed = e.seed
end)
teardown(function()
  e:stop()
  os.execute("rm -rf " .. emu.quote(tmp))
end)

describe("20 sets", function()
  it("in one batch within Kontent's limits: no 429, 8 objects each, faster than one by one", function()
    local throttled = 0
    local copts = sets.client_options(e, { on_retry = function(err)
      if err.status == 429 then throttled = throttled + 1 end
    end })
    -- Kontent's environments recorded in the state files (no Subscription API
    -- key): its every lookup would read the whole subscription, whose limit
    -- (10/s for the origin) would then be all the wall time measured
    copts.kontent.subscription_api_key = nil
    local function make(prefix)
      local list = {}
      for i = 1, 20 do
        list[i] = assert(envclone.set(sets.spec(seed), { name = prefix .. i, client_options = copts,
          state = tmp .. "/" .. prefix .. i .. ".json" }))
      end
      return list
    end
    local t0 = core.now()
    local results = set.run_all(make("b"), "apply")
    local together = core.now() - t0
    for i, r in ipairs(results) do
      assert.is_true(r.ok, i .. ": " .. tostring(r.error))
      assert.are.equal(8, r.counts.created)
      local total, dups = sets.count(e, seed, "b" .. i)
      assert.are.equal(8, total)
      assert.are.same({}, dups)
    end
    assert.are.equal(0, throttled, "no 429 from the emulator")
    local requests = e:stats().requests
    t0 = core.now()
    for _, s in ipairs(make("c")) do assert.is_true(assert(s:apply()).ok) end
    local one_by_one = core.now() - t0
    print(string.format("\n    20 sets x 8 objects (%d requests, 50 ms each): %.2f s in one batch, %.2f s one by one",
      requests, together, one_by_one))
    assert.are.equal(0, throttled)
    -- the floor of the batch is Kontent's own limit: 40 clones of one source
    -- environment, one at a time and 10 a second, take 4 s whatever the batch
    assert.is_true(together < one_by_one)
    -- and all 40 sets again: nothing created
    local creates = e:stats().applied.creates
    for _, r in ipairs(set.run_all(make("b"), "apply")) do
      assert.is_true(r.ok, tostring(r.error) .. " " .. require("cjson").encode(r.counts))
    end
    assert.are.equal(creates, e:stats().applied.creates)
  end)
end)
