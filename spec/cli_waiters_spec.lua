-- Waiters as commands, progress and diagnostics without a terminal, and
-- the newcomer's path: every waiter of the operation table is a command
-- (derived from the `waiter` column), `kontent wait-for-cloning` resumes
-- a wait an earlier `--wait` gave up on; `--progress` writes a line per
-- poll, per retry, per finished call; `--verbose` / `--debug` print the
-- client's log lines and never a credential; ENVCLONE_EMULATOR_URL is the
-- one variable a newcomer needs, and the emulator's demo credentials are
-- never sent anywhere but this machine.
local emu = require("spec.support.emu")
local cjson = require("cjson.safe")
local envclone = require("envclone")

local e
local BUILD = os.getenv("ENVCLONE_BUILD") or "build"

local function env(extra)
  local t = { ENVCLONE_BUILD = BUILD, ENVCLONE_EMULATOR_URL = e.url, KONTENT_API_KEY = "", VERSORI_TOKEN = "",
    VERSORI_COOKIE = "", QOVERY_TOKEN = "", DROPLIT_TOKEN = "", ENVCLONE_KONTENT_URL = "",
    ENVCLONE_QOVERY_URL = "", ENVCLONE_DROPLIT_URL = "", ENVCLONE_VERSORI_URL = "" }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local function run(args, environment, lua)
  local out, err = os.tmpname(), os.tmpname()
  local parts = { "env" }
  for k, v in pairs(environment or env()) do parts[#parts + 1] = k .. "=" .. emu.quote(v) end
  parts[#parts + 1] = lua or os.getenv("ENVCLONE_LUA") or "lua5.4"
  parts[#parts + 1] = "bin/envclone"
  for _, a in ipairs(args) do parts[#parts + 1] = emu.quote(a) end
  local ok, _, code = os.execute(table.concat(parts, " ") .. " >" .. out .. " 2>" .. err .. " </dev/null")
  if type(ok) == "number" then code = ok / 256 end
  if ok == true then code = 0 end
  local stdout, stderr = emu.read_file(out), emu.read_file(err)
  os.remove(out)
  os.remove(err)
  return code, stdout, stderr
end

local function kebab(name) return (name:gsub("(%l)(%u)", "%1-%2"):gsub("_", "-"):lower()) end

setup(function() e = emu.start{ kontent_clone_seconds = 1 } end)
teardown(function() if e then e:stop() end end)
before_each(function()
  e:reset()
  e:clear_faults()
end)

describe("envclone waiters as commands", function()
  it("every waiter of the operation table is a command with its help", function()
    local n = 0
    for _, op in ipairs(envclone.operations) do
      if op.waiter then
        n = n + 1
        local code, out = run({ op.vendor, "--help" })
        assert.are.equal(0, code)
        assert.matches("\n  " .. kebab(op.waiter.name) .. " ", out, 1, true)
        local c2, help = run({ op.vendor, kebab(op.waiter.name), "--help" })
        assert.are.equal(0, c2)
        assert.matches("--" .. kebab(op.waiter.id_arg), help, 1, true)
        assert.matches("--wait-timeout", help, 1, true)
        assert.is_nil(help:find("\n  --wait ", 1, true)) -- a waiter is a wait: no --wait
      end
    end
    assert.is_true(n >= 2, "the table has waiters")
  end)

  it("kontent wait-for-cloning resumes a wait that an earlier --wait gave up on", function()
    e:config{ kontent_clone_seconds = 1 }
    local code, out, err = run({ "kontent", "clone-environment", "--environment-id", e.seed.kontent.environment_id,
      "--name", "resume", "--wait", "--wait-timeout", "0.2", "--poll-interval", "0.05" })
    assert.are.equal(6, code, err)
    local id = cjson.decode(out).error.created.id
    assert.is_string(id)
    local c2, out2, err2 = run({ "kontent", "wait-for-cloning", "--environment-id", id, "--poll-interval", "0.1",
      "--wait-timeout", "10", "--progress" })
    assert.are.equal(0, c2, err2)
    assert.are.equal("done", cjson.decode(out2).result.cloning_state)
    -- a line per poll on stderr, the last one says done
    local polls = {}
    for n, what in err2:gmatch("wait: poll (%d+): cloning ([%w_]+)") do polls[#polls + 1] = { tonumber(n), what } end
    assert.is_true(#polls >= 2, err2)
    assert.are.equal("done", polls[#polls][2])
    -- a waiter's own options are refused on a create, --wait on a waiter
    local c3, _, err3 = run({ "kontent", "wait-for-cloning", "--environment-id", id, "--wait" })
    assert.are.equal(2, c3)
    assert.matches("is a wait", err3)
  end)

  it("qovery wait-for-deletion follows a delete made earlier", function()
    local app = e.seed.qovery.application_id
    local code, _, err = run({ "qovery", "delete-application", "--application-id", app })
    assert.are.equal(0, code, err)
    local c2, out2, err2 = run({ "qovery", "wait-for-deletion", "--application-id", app, "--poll-interval", "0.1" })
    assert.are.equal(0, c2, err2)
    assert.are.equal("DELETED", cjson.decode(out2).result.state)
  end)
end)

describe("envclone progress and diagnostics", function()
  it("--progress: a line per finished call, per retry and per poll, with no terminal", function()
    -- the first get-environment is answered 503: one retry
    e:faults{ rules = { { operation = "kontent.get_environment", queue = { "503" }, retry_after = 0 } } }
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(cjson.encode{
      { vendor = "kontent", operation = "get-environment", args = { environment_id = e.seed.kontent.environment_id } },
      { vendor = "kontent", operation = "clone-environment", args = { environment_id = e.seed.kontent.environment_id,
        name = "p1", wait = true, wait_interval = 0.2 } },
      { vendor = "droplit", operation = "create-environment", args = { ecosystemId = e.seed.droplit.ecosystem_id } },
    })
    f:close()
    local code, out, err = run({ "batch", path, "--progress" })
    os.remove(path)
    assert.are.equal(0, code, err)
    assert.are.equal(3, #cjson.decode(out))
    local finished = 0
    for _ in err:gmatch("batch: %d/3 done") do finished = finished + 1 end
    assert.are.equal(3, finished, err)
    assert.matches("retry: kontent get%-environment attempt 1 failed %(http 503%)", err)
    assert.matches("call 2: wait: poll 1: cloning in_progress", err)
    assert.matches("batch: 3 calls, 3 succeeded, 0 failed", err)
  end)

  it("--verbose and --debug print the client's log lines, never a credential", function()
    e:faults{ rules = { { operation = "kontent.get_environment", queue = { "503" }, retry_after = 0 } } }
    local key = e.credentials.kontent.api_key
    for _, flag in ipairs{ "--verbose", "--debug" } do
      e:reset()
      e:faults{ rules = { { operation = "kontent.get_environment", queue = { "503" }, retry_after = 0 } } }
      local code, out, err = run({ "kontent", "get-environment", "--environment-id", e.seed.kontent.environment_id,
        flag }, env({ KONTENT_API_KEY = key, ENVCLONE_KONTENT_URL = e.base_urls.kontent, ENVCLONE_EMULATOR_URL = "" }))
      assert.are.equal(0, code, err)
      assert.is_table(cjson.decode(out))
      if flag == "--debug" then
        assert.matches("envclone: %[debug%] ", err)
        assert.matches("503", err)
      end
      assert.is_nil(err:find(key, 1, true), err)
      assert.is_nil(out:find(key, 1, true))
    end
    -- a clone's answer holds the new environment's key: never on stderr
    local code, _, err = run({ "kontent", "clone-environment", "--environment-id", e.seed.kontent.environment_id,
      "--name", "dbg", "--debug" }, env({ KONTENT_API_KEY = key, ENVCLONE_KONTENT_URL = e.base_urls.kontent }))
    assert.are.equal(0, code, err)
    assert.is_nil(err:find(key, 1, true), err)
  end)
end)

describe("envclone --rate-limit-store", function()
  it("a malformed URL is a usage error naming the flag; a Redis store holds the limits", function()
    local code, out, err = run({ "kontent", "get-environment", "--environment-id", e.seed.kontent.environment_id,
      "--rate-limit-store", "nope" })
    assert.are.equal(2, code)
    assert.matches("^envclone: %-%-rate%-limit%-store: ", err)
    assert.are.equal("usage", cjson.decode(out).error.kind)
    if not os.execute("command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1") then
      pending("redis-server is not installed")
      return
    end
    local socket = require("socket")
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    local pidfile = os.tmpname()
    os.execute("redis-server --port " .. port .. " --save '' --appendonly no >/dev/null 2>&1 & echo $! >" .. pidfile)
    local pid = tonumber(emu.read_file(pidfile))
    os.remove(pidfile)
    local ok, perr = pcall(function()
      local deadline = socket.gettime() + 5
      while not os.execute("redis-cli -p " .. port .. " ping >/dev/null 2>&1") and socket.gettime() < deadline do
        socket.sleep(0.05)
      end
      local c2, out2, err2 = run({ "kontent", "get-environment", "--environment-id", e.seed.kontent.environment_id,
        "--rate-limit-store", "redis://127.0.0.1:" .. port .. "/0" })
      assert.are.equal(0, c2, err2)
      assert.is_table(cjson.decode(out2).result)
      local p = io.popen("redis-cli -p " .. port .. " --scan --pattern 'envclone:*'")
      local keys = p:read("*a")
      p:close()
      assert.matches("envclone:", keys)
    end)
    os.execute("kill " .. pid)
    assert(ok, perr)
  end)
end)

describe("envclone for a newcomer", function()
  it("ENVCLONE_EMULATOR_URL alone reaches every vendor with the demo credentials", function()
    local s = e.seed
    for _, args in ipairs{
      { "kontent", "get-environment", "--environment-id", s.kontent.environment_id },
      { "qovery", "clone-application", "--application-id", s.qovery.application_id, "--environment-id",
        s.qovery.environment_id, "--name", "newcomer" },
      { "droplit", "create-environment", "--ecosystem-id", s.droplit.ecosystem_id },
      { "versori", "create-connection-version", "--organisation-id", s.versori.organisation_id, "--connection-id",
        s.versori.connection_id, "--name", "v9" },
    } do
      local code, out, err = run(args)
      assert.are.equal(0, code, table.concat(args, " ") .. ": " .. err)
      assert.is_table(cjson.decode(out).result)
    end
  end)

  it("refuses to send the emulator's demo credentials to a host that is not this machine", function()
    for _, case in ipairs{
      -- no URL: the real vendor
      env({ ENVCLONE_EMULATOR_URL = "", KONTENT_API_KEY = e.credentials.kontent.api_key }),
      -- a URL that is not loopback
      env({ ENVCLONE_EMULATOR_URL = "", KONTENT_API_KEY = e.credentials.kontent.api_key,
        ENVCLONE_KONTENT_URL = "https://manage.kontent.ai.invalid/v2" }),
      env({ ENVCLONE_EMULATOR_URL = "http://10.1.2.3:8790" }),
    } do
      local code, out, err = run({ "kontent", "get-environment", "--environment-id", e.seed.kontent.environment_id },
        case)
      assert.are.equal(2, code, err)
      assert.matches("demo credential; refusing to send it", err)
      assert.are.equal("usage", cjson.decode(out).error.kind)
    end
    assert.are.equal(0, #e:requests())
    -- to this machine, by any loopback name, it goes
    local code = run({ "kontent", "get-environment", "--environment-id", e.seed.kontent.environment_id },
      env({ ENVCLONE_EMULATOR_URL = e.url:gsub("127%.0%.0%.1", "localhost") }))
    assert.are.equal(0, code)
  end)

  it("envclone emulator --help lists the seed objects", function()
    -- the emulator is Lua 5.4 code: `envclone emulator` runs under lua5.4
    local code, out = run({ "emulator", "--help" }, nil, "lua5.4")
    assert.are.equal(0, code)
    assert.matches("Seed objects", out, 1, true)
    for _, id in ipairs{ e.seed.kontent.environment_id, e.seed.versori.organisation_id, e.seed.versori.project_id,
      e.seed.qovery.application_id, e.seed.droplit.ecosystem_id } do
      assert.matches(id, out, 1, true)
    end
  end)

  it("versori clone-environment on a terminal shows the new environment, not the project", function()
    local s = e.seed
    local code, out, err = run({ "versori", "clone-environment", "--organisation-id", s.versori.organisation_id,
      "--project-id", s.versori.project_id, "--old-env-name", "staging", "--new-env-name", "pr-42",
      "--output", "text" })
    assert.are.equal(0, code, err)
    assert.matches("^versori clone%-environment: ok, created in environments of " .. s.versori.project_id, out)
    assert.matches("\n  name +pr%-42\n", out)
    local new_id = out:match("\n  id +(%w+)\n")
    assert.is_string(new_id)
    assert.are_not.equal(s.versori.project_id, new_id)
    for line in out:gmatch("[^\n]+") do assert.is_true(#line < 200, "a long line: " .. line) end
  end)
end)
