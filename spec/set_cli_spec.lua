-- `envclone plan|apply|destroy` (issue 21) as a CI job runs them: SIGKILL
-- at random moments of an apply and re-runs until it finishes (exactly 8
-- objects, the state file valid JSON after every kill), two applies of one
-- set at once, destroy and destroy again, bad set files.
local emu = require("spec.support.emu")
local sets = require("spec.support.sets")
local cjson = require("cjson.safe")
local socket = require("socket")

local e, seed
local BUILD = os.getenv("ENVCLONE_BUILD") or "build"
local LUA = os.getenv("ENVCLONE_LUA") or "lua5.4"
local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p " .. tmp)

-- The emulator's URL and no credential: the command line takes the emulator's demo ones.
local function env()
  return { ENVCLONE_BUILD = BUILD, ENVCLONE_EMULATOR_URL = e.url, KONTENT_API_KEY = "", VERSORI_TOKEN = "",
    VERSORI_COOKIE = "", QOVERY_TOKEN = "", DROPLIT_TOKEN = "", KONTENT_SUBSCRIPTION_API_KEY = "",
    ENVCLONE_KONTENT_URL = "", ENVCLONE_QOVERY_URL = "", ENVCLONE_DROPLIT_URL = "", ENVCLONE_VERSORI_URL = "" }
end

local n_spawn = 0
-- Starts `envclone args...` in the background: `pid`, `finished()` (exit status or nil), `wait(s)`, `out()`, `kill()`.
local function spawn(args)
  n_spawn = n_spawn + 1
  local dir = tmp .. "/run" .. n_spawn
  assert(os.execute("mkdir " .. dir))
  local parts = { "env" }
  for k, v in pairs(env()) do parts[#parts + 1] = k .. "=" .. emu.quote(v) end
  parts[#parts + 1] = LUA
  parts[#parts + 1] = "bin/envclone"
  for _, a in ipairs(args) do parts[#parts + 1] = emu.quote(a) end
  local cmd = table.concat(parts, " ")
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
  local h = { pid = pid }
  function h.finished() return tonumber(emu.read_file(dir .. "/rc") or "") end
  function h.wait(seconds)
    local limit = socket.gettime() + seconds
    while socket.gettime() < limit do
      local rc = h.finished()
      if rc then return rc end
      socket.sleep(0.01)
    end
  end
  function h.out() return emu.read_file(dir .. "/out") end
  function h.err() return emu.read_file(dir .. "/err") end
  function h.kill(sig) os.execute("kill -" .. (sig or "KILL") .. " " .. pid .. " 2>/dev/null") end
  return h
end

-- Runs `envclone args...` to its end: exit status, decoded stdout (or its text), stderr.
local function run(args, seconds)
  local h = spawn(args)
  local rc = h.wait(seconds or 30)
  if not rc then h.kill() end
  local out = h.out() or ""
  return rc, cjson.decode(out) or out, h.err()
end

local set_file
setup(function()
  e = emu.start{ kontent_clone_seconds = 0.2 }
  seed = e.seed
  set_file = tmp .. "/preview.json"
  local f = assert(io.open(set_file, "w"))
  local text = cjson.encode(sets.spec(seed))
  f:write(text)
  f:close()
end)
teardown(function()
  e:stop()
  os.execute("rm -rf " .. emu.quote(tmp))
end)

local function statuses(doc)
  local t = {}
  for _, o in ipairs(type(doc) == "table" and doc.objects or {}) do t[o.id] = o.status end
  return t
end

describe("envclone plan|apply|destroy", function()
  it("SIGKILL at 20 random moments, re-run until done: 8 objects each time, state file valid JSON", function()
    e:faults{ delay = 0.01 }
    -- how long a whole apply takes, to kill inside it
    local t0 = socket.gettime()
    local rc0, doc0 = run({ "apply", set_file, "--set", "k0", "--output", "json" })
    local full = socket.gettime() - t0
    assert.are.equal(0, rc0, cjson.encode(doc0))
    math.randomseed(21)
    local killed_inside, reruns = 0, 0
    for round = 1, 20 do
      local name = "k" .. round
      local state = set_file .. "." .. name .. ".state.json"
      local h = spawn({ "apply", set_file, "--set", name, "--output", "json" })
      socket.sleep(math.random() * full)
      h.kill()
      if not h.wait(5) then error("the killed run did not end") end
      if h.finished() ~= 0 then killed_inside = killed_inside + 1 end
      local text = emu.read_file(state)
      if text then assert.is_table(cjson.decode(text), "round " .. round .. ": state file not JSON: " .. text) end
      local rc, doc
      for _ = 1, 5 do
        rc, doc = run({ "apply", set_file, "--set", name, "--output", "json" })
        reruns = reruns + 1
        if rc == 0 then break end
      end
      assert.are.equal(0, rc, "round " .. round .. ": " .. cjson.encode(statuses(doc)))
      assert.is_nil(doc.counts.failed)
      local total, dups, counts = sets.count(e, seed, name)
      assert.are.equal(8, total, "round " .. round .. ": " .. cjson.encode(counts))
      assert.are.same({}, dups)
    end
    print(string.format("\n    20 kills (%d inside the run, a full run %.2f s), %d re-runs", killed_inside, full,
      reruns))
    assert.is_true(killed_inside >= 10)
  end)

  it("destroy killed at random moments, run again: 0 objects left, exit 0", function()
    e:faults{ delay = 0.02 }
    math.randomseed(22)
    for round = 1, 3 do
      local name = "kd" .. round
      assert.are.equal(0, (run({ "apply", set_file, "--set", name })))
      local h = spawn({ "destroy", set_file, "--set", name, "--output", "json" })
      socket.sleep(math.random() * 0.6)
      h.kill()
      h.wait(5)
      local rc, doc = run({ "destroy", set_file, "--set", name, "--output", "json" })
      assert.are.equal(0, rc, cjson.encode(statuses(doc)))
      assert.are.equal(0, (sets.count(e, seed, name)), "round " .. round)
    end
    e:clear_faults()
  end)

  it("SIGTERM (a cancelled CI job): exit 143, every result so far printed; the re-run finishes", function()
    e:faults{ delay = 0.05 }
    local h = spawn({ "apply", set_file, "--set", "term", "--output", "json" })
    socket.sleep(0.4)
    h.kill("TERM")
    local rc = h.wait(20)
    e:clear_faults()
    assert.are.equal(143, rc, h.err())
    local doc = cjson.decode(h.out())
    assert.are.equal("SIGTERM", doc.interrupted)
    assert.are.equal(9, #doc.objects)
    local rc2, again = run({ "apply", set_file, "--set", "term", "--output", "json" })
    assert.are.equal(0, rc2, cjson.encode(again))
    local total, dups = sets.count(e, seed, "term")
    assert.are.equal(8, total)
    assert.are.same({}, dups)
  end)

  it("two applies of one set at once: 8 objects; the second waits for the first's lock and adopts", function()
    e:clear_faults()
    local a = spawn({ "apply", set_file, "--set", "twice", "--output", "json" })
    local b = spawn({ "apply", set_file, "--set", "twice", "--output", "json" })
    assert.are.equal(0, a.wait(30), a.err())
    assert.are.equal(0, b.wait(30), b.err())
    local da, db = cjson.decode(a.out()), cjson.decode(b.out())
    local created = (da.counts.created or 0) + (db.counts.created or 0)
    assert.are.equal(8, created, a.out() .. b.out())
    assert.are.equal(8, (da.counts.adopted or 0) + (db.counts.adopted or 0))
    local total, dups = sets.count(e, seed, "twice")
    assert.are.equal(8, total)
    assert.are.same({}, dups)
    -- with --lock-timeout 0 a run that meets another's lock refuses at once (exit 1), sending nothing
    local lock = assert(require("envclone.core").lock_file(set_file .. ".twice.state.json.lock", 0))
    local requests = e:stats().requests
    local rc, doc = run({ "apply", set_file, "--set", "twice", "--lock-timeout", "0", "--output", "json" })
    lock:unlock()
    assert.are.equal(1, rc)
    assert.are.equal("locked", doc.error.reason)
    assert.are.equal(requests, e:stats().requests)
  end)

  it("plan, apply, destroy, destroy again: all already_gone, exit 0", function()
    local rc, plan = run({ "plan", set_file, "--set", "pr-9", "--output", "json" })
    assert.are.equal(0, rc)
    assert.are.equal(8, plan.counts.create)
    assert.are.equal(0, (run({ "apply", set_file, "--set", "pr-9" })))
    local rc2, again = run({ "apply", set_file, "--set", "pr-9", "--output", "json" })
    assert.are.equal(0, rc2)
    assert.are.equal(8, again.counts.adopted)
    local rc3, dplan = run({ "plan", set_file, "--set", "pr-9", "--destroy", "--output", "json" })
    assert.are.equal(0, rc3)
    assert.are.equal(8, dplan.counts.delete)
    local rc4, d = run({ "destroy", set_file, "--set", "pr-9", "--output", "json" })
    assert.are.equal(0, rc4, cjson.encode(d))
    assert.are.equal(8, d.counts.deleted)
    assert.are.equal(0, (sets.count(e, seed, "pr-9")))
    local rc5, d2 = run({ "destroy", set_file, "--set", "pr-9", "--output", "json" })
    assert.are.equal(0, rc5)
    assert.are.equal(8, d2.counts.already_gone)
    -- the text form, and several sets in one command
    local rc6, text = run({ "apply", set_file, "--set", "m1", "--set", "m2", "--output", "text" })
    assert.are.equal(0, rc6)
    assert.matches("apply m1: ok", text, 1, true)
    assert.matches("apply m2: ok", text, 1, true)
  end)

  it("on a terminal: one progress line per object on stderr, the JSON on stdout", function()
    local tmux = require("spec.support.tmux")
    if not tmux.available() then pending("tmux is not installed") return end
    local term = tmux.new()
    local parts = { "env" }
    for k, v in pairs(env()) do parts[#parts + 1] = k .. "=" .. emu.quote(v) end
    local out = tmp .. "/tty.json"
    for _, a in ipairs{ LUA, "bin/envclone", "apply", set_file, "--set", "tty1", "--output", "json" } do
      parts[#parts + 1] = emu.quote(a)
    end
    term:run(table.concat(parts, " ") .. " >" .. emu.quote(out))
    local final = term:wait(30, 0.1)
    term:stop()
    assert.is_string(final)
    assert.matches("EXIT=0", final)
    assert.matches("apply tty1: web created %x+%-", final)
    assert.matches("apply tty1: content_name updated", final)
    assert.matches("apply tty1: created 8, updated 1", final, 1, true)
    assert.are.equal("tty1", cjson.decode(emu.read_file(out)).set)
  end)

  it("bad input: exit 3, the file, the object and the field named, nothing sent", function()
    e:reset()
    local function write(name, text)
      local path = tmp .. "/" .. name
      local f = assert(io.open(path, "w"))
      f:write(text)
      f:close()
      return path
    end
    local cases = {
      { write("notjson.json", '{"objects": '), "notjson.json: not valid JSON" },
      { write("vendor.json", '{"objects": {"web": {"vendor": "heroku", "operation": "x"}}}'),
        "vendor.json: objects.web.vendor: unknown vendor 'heroku'" },
      { write("cycle.json", cjson.encode({ objects = {
        a = { vendor = "droplit", operation = "create_environment", args = { ecosystemId = "E1", alias = "a{b.id}" } },
        b = { vendor = "droplit", operation = "create_environment", args = { ecosystemId = "E1" },
          after = { "a" } } } })),
        "a dependency cycle: a -> b -> a" },
      { write("var.json", cjson.encode({ objects = { a = { vendor = "droplit", operation = "create_environment",
        args = { ecosystemId = "E1", alias = "{pull_request}" } } } })), "unknown template variable {pull_request}" },
    }
    for _, c in ipairs(cases) do
      local rc, doc, err = run({ "apply", c[1], "--set", "pr-1", "--output", "json" })
      assert.are.equal(3, rc, c[2] .. ": " .. tostring(err))
      assert.matches(c[2], doc.error.message, 1, true)
      assert.matches(c[2], err, 1, true)
    end
    assert.are.equal(2, (run({ "apply", set_file, "--bogus" })))
    -- whole numbers as every command takes them: "16.0" and "1e3" are usage errors
    for _, n in ipairs{ "16.0", "1e3", "0" } do
      local nrc, _, nerr = run({ "apply", set_file, "--set", "pr-1", "--max-in-flight", n })
      assert.are.equal(2, nrc, n)
      assert.matches("--max-in-flight needs a whole number", nerr, 1, true)
    end
    assert.are.equal(2, (run({ "apply" })))
    local rc, help = run({ "destroy", "--help" })
    assert.are.equal(0, rc)
    assert.matches("envclone destroy SET.json", help, 1, true)
    assert.are.equal(0, e:stats().requests)
  end)
end)
