-- `envclone batch FILE` as a user runs it: a spawned process against the
-- emulator, a JSON array of results on stdout in the file's order, the usage
-- exit code (and nothing sent) for a file that is not a valid batch, and a
-- progress line in a terminal (tmux).
local emu = require("spec.support.emu")
local tmux = require("spec.support.tmux")
local cjson = require("cjson.safe")

local e
local BUILD = os.getenv("ENVCLONE_BUILD") or "build"

local function write_file(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

-- Every vendor's URL and credentials, as the user's environment.
local function env_all()
  local env = { ENVCLONE_BUILD = BUILD, VERSORI_TOKEN = e.credentials.versori.token,
    VERSORI_COOKIE = e.credentials.versori.cookie, QOVERY_TOKEN = e.credentials.qovery.token,
    KONTENT_API_KEY = e.credentials.kontent.api_key, DROPLIT_TOKEN = e.credentials.droplit.token }
  for vendor, url in pairs(e.base_urls) do env["ENVCLONE_" .. vendor:upper() .. "_URL"] = url end
  return env
end

local function command(env, args)
  local parts = { "env" }
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. emu.quote(v) end
  parts[#parts + 1] = os.getenv("ENVCLONE_LUA") or "lua5.4"
  parts[#parts + 1] = "bin/envclone"
  for _, a in ipairs(args) do parts[#parts + 1] = emu.quote(a) end
  return table.concat(parts, " ")
end

local function run(env, args)
  local out, err = os.tmpname(), os.tmpname()
  local ok, _, code = os.execute(command(env, args) .. " >" .. out .. " 2>" .. err .. " </dev/null")
  if type(ok) == "number" then code = ok / 256 end -- Lua 5.1
  if ok == true then code = 0 end
  local stdout, stderr = emu.read_file(out), emu.read_file(err)
  os.remove(out)
  os.remove(err)
  return code, stdout, stderr
end

-- stdout on a failure in JSON mode: one line, one document {"error": {...}} of kind `kind`.
local function assert_error_doc(out, kind)
  local doc = cjson.decode(out)
  assert.is_table(doc, out)
  assert.is_table(doc.error, out)
  assert.are.equal(kind, doc.error.kind, out)
  assert.are.equal("\n", out:match("\n.*$"), out)
end

-- The requests of the operations `calls` name (a create may look its key
-- up first with another operation's GET: not counted).
local function call_requests(calls)
  local named = {}
  for _, c in ipairs(calls) do named[c.vendor .. "." .. c.operation:gsub("-", "_")] = true end
  local n = 0
  for _, r in ipairs(e:requests()) do
    if named[r.operation] then n = n + 1 end
  end
  return n
end

local function calls_json(n)
  local calls = {}
  for i = 1, n do
    local which = i % 4
    if which == 0 then
      calls[i] = { vendor = "versori", operation = "clone-environment", args = {
        organisation_id = e.seed.versori.organisation_id, project_id = e.seed.versori.project_id,
        oldEnvName = "staging", newEnvName = "cli" .. i } }
    elseif which == 1 then
      calls[i] = { vendor = "qovery", operation = "clone_application", args = {
        applicationId = e.seed.qovery.application_id, environment_id = e.seed.qovery.environment_id,
        name = "cli" .. i } }
    elseif which == 2 then
      calls[i] = { vendor = "kontent", operation = "get-environment",
        args = { environment_id = e.seed.kontent.environment_id } }
    else
      calls[i] = { vendor = "droplit", operation = "create-environment",
        args = { ecosystemId = e.seed.droplit.ecosystem_id, alias = "cli" .. i } }
    end
  end
  return calls
end

setup(function() e = emu.start{} end)
teardown(function() if e then e:stop() end end)
before_each(function() e:reset() end)

describe("envclone batch FILE", function()
  it("runs the calls together and prints a JSON array of results in the file's order", function()
    local calls = calls_json(24)
    local file = write_file(cjson.encode(calls))
    local code, out, err = run(env_all(), { "batch", file, "--max-in-flight", "4" })
    os.remove(file)
    assert.are.equal(0, code, err)
    local results = cjson.decode(out)
    assert.are.equal(24, #results)
    for i, r in ipairs(results) do
      assert.is_true(r.ok, i .. ": " .. out)
      -- each result says which call it belongs to
      assert.are.equal(i, r.index)
      assert.are.equal(calls[i].vendor, r.vendor)
      assert.are.equal(calls[i].operation:gsub("_", "-"), r.operation)
      if calls[i].vendor == "kontent" then
        assert.are.equal(e.seed.kontent.environment_id, r.result.id)
      end
      -- and its key arguments, a create's natural key included (Droplit's optional alias)
      if calls[i].vendor == "droplit" then assert.are.equal(calls[i].args.alias, r.args.alias) end
    end
    assert.are.equal(24, call_requests(calls))
    assert.is_nil(out:find(e.credentials.kontent.api_key, 1, true))
    assert.are.equal("", err) -- no progress line when stderr is not a terminal
  end)

  it("an invalid call anywhere: every call checked, nothing sent, exit 3", function()
    local calls = calls_json(4)
    calls[2] = { vendor = "kontent", operation = "get-environment", args = { environment_id = "not-a-uuid" } }
    local file = write_file(cjson.encode(calls))
    local code, out = run(env_all(), { "batch", file })
    os.remove(file)
    assert.are.equal(3, code) -- validation
    local results = cjson.decode(out)
    assert.are.equal(4, #results)
    assert.is_false(results[2].valid)
    assert.are.equal("validation", results[2].error.kind)
    assert.are.equal("environment_id", results[2].error.field)
    assert.is_true(results[1].valid and results[3].valid and results[4].valid)
    assert.is_nil(results[1].ok)
    assert.are.equal(0, #e:requests())
  end)

  it("--check: one bad call among 20 is named, nothing is sent, with or without --check", function()
    local calls = calls_json(20)
    -- a misspelt argument in call 13, kebab-case names elsewhere
    calls[13] = { vendor = "droplit", operation = "create-environment",
      args = { ["ecosystem-id"] = e.seed.droplit.ecosystem_id, aliass = "x" } }
    calls[14] = { vendor = "kontent", operation = "get-environment",
      args = { ["environment-id"] = e.seed.kontent.environment_id } }
    local file = write_file(cjson.encode(calls))
    for _, args in ipairs{ { "batch", file, "--check" }, { "batch", file } } do
      local code, out, err = run(env_all(), args)
      assert.are.equal(3, code, err)
      local checked = cjson.decode(out)
      assert.are.equal(20, #checked)
      for i, item in ipairs(checked) do
        assert.are.equal(i ~= 13, item.valid, i .. ": " .. out)
      end
      assert.are.equal("validation", checked[13].error.kind)
      assert.matches("aliass", checked[13].error.message)
      assert.matches("call 13: .*aliass", err)
      assert.matches("1 of 20 calls invalid; nothing was sent", err)
    end
    assert.are.equal(0, #e:requests())
    -- the same file with the argument fixed: --check passes and still sends nothing
    calls[13].args.alias, calls[13].args.aliass = "x13", nil
    local good = write_file(cjson.encode(calls))
    local code, out = run(env_all(), { "batch", good, "--check" })
    os.remove(file)
    os.remove(good)
    assert.are.equal(0, code)
    assert.are.equal(20, #cjson.decode(out))
    assert.are.equal(0, #e:requests())
  end)

  it("a call that fails after the batch was sent has its own error; the batch exits 8", function()
    local calls = calls_json(4)
    -- Kontent refuses to delete the production environment: an HTTP 400
    calls[3] = { vendor = "kontent", operation = "delete-environment",
      args = { environment_id = e.seed.kontent.environment_id } }
    local file = write_file(cjson.encode(calls))
    local code, out = run(env_all(), { "batch", file })
    os.remove(file)
    assert.are.equal(8, code)
    local results = cjson.decode(out)
    assert.are.equal(4, #results)
    assert.is_false(results[3].ok)
    assert.are.equal("http", results[3].error.kind)
    assert.are.equal(400, results[3].error.status)
    assert.is_true(results[1].ok and results[2].ok and results[4].ok)
  end)

  it("--max-in-flight takes a whole number only: 16.0, 1e3, 0x10 are usage errors, nothing sent", function()
    local file = write_file(cjson.encode(calls_json(4)))
    for _, n in ipairs{ "16.0", "1e3", "0x10", "4.5", " 4", "+4", "100001", "inf", "nan" } do
      for _, args in ipairs{ { "batch", file, "--max-in-flight", n }, { "batch", file, "--max-in-flight=" .. n } } do
        local code, out, err = run(env_all(), args)
        assert.are.equal(2, code, n .. ": " .. err)
        assert_error_doc(out, "usage")
        assert.matches("^envclone: %-%-max%-in%-flight needs a whole number from 1 to 100000[^\n]*\n$", err)
      end
    end
    local code, _, err = run(env_all(), { "batch", file, "--max-in-flight", "16" })
    os.remove(file)
    assert.are.equal(0, code, err)
    assert.are.equal(4, call_requests(calls_json(4)))
  end)

  it("a vendor message that is not UTF-8 prints as valid JSON, invalid bytes as U+FFFD", function()
    local hostile = require("spec.support.hostile")
    local h = hostile.start{}
    -- ISO-8859-1, as some vendors' gateways answer: "Ungültige Umgebung: 50 €" has \xFC and \x80
    local latin1 = "Ung\xFCltige Umgebung: 50 \x80 \xC3"
    local ok, err = pcall(function()
      h:script(400, { "Content-Type: application/json" }, '{"message":"' .. latin1 .. '","error_code":1}')
      local env = env_all()
      env.ENVCLONE_DROPLIT_URL = h.url
      local file = write_file(cjson.encode{
        { vendor = "kontent", operation = "get-environment",
          args = { environment_id = e.seed.kontent.environment_id } },
        { vendor = "droplit", operation = "create-environment",
          args = { ecosystemId = e.seed.droplit.ecosystem_id, alias = "latin1" } } })
      local code, out, stderr = run(env, { "batch", file })
      os.remove(file)
      assert.are.equal(8, code, stderr) -- some calls failed
      assert.is_nil(stderr:find("traceback", 1, true))
      local doc = assert(cjson.decode(out), out)
      assert.is_true(doc[1].ok)
      assert.are.equal("Production", doc[1].result.environment)
      assert.is_false(doc[2].ok)
      assert.matches("Ung\xEF\xBF\xBDltige Umgebung: 50 \xEF\xBF\xBD \xEF\xBF\xBD", doc[2].error.message, 1, true)
      -- one operation, a 200 whose strings are ISO-8859-1: JSON and text alike
      h:script(200, { "Content-Type: application/json" }, '{"id":"x1","environment":"M\xFCnchen"}')
      env.ENVCLONE_KONTENT_URL = h.url
      for _, fmt in ipairs{ "json", "text" } do
        local c2, out2, err2 = run(env, { "kontent", "get-environment", "--environment-id",
          e.seed.kontent.environment_id, "--output", fmt })
        assert.are.equal(0, c2, err2)
        assert.matches("M\xEF\xBF\xBDnchen", out2, 1, true)
        if fmt == "json" then assert.are.equal("M\xEF\xBF\xBDnchen", assert(cjson.decode(out2)).result.environment) end
      end
    end)
    h:stop()
    assert(ok, err)
  end)

  it("refuses a file that is not a batch with the usage status, before sending anything", function()
    local cases = {
      "not json",
      '{"vendor": "kontent"}',
      '[{"vendor": "nope", "operation": "get-environment", "args": {}}]',
      '[{"vendor": "kontent", "operation": "get-environmen", "args": {}}]',
      '[{"vendor": "kontent", "operation": "get-environment", "args": [1]}]',
      '[{"vendor": "kontent", "operation": "get-environment", "arg": {}}]',
      '[1]',
      '{}', -- an empty object is not an empty array
      ' \n{ }',
    }
    local good = cjson.encode(calls_json(4))
    for _, text in ipairs(cases) do
      -- a valid call first: the bad one later in the file still stops everything
      local file = write_file(text:sub(1, 1) == "[" and (good:sub(1, -2) .. "," .. text:sub(2)) or text)
      local code, out, err = run(env_all(), { "batch", file })
      os.remove(file)
      assert.are.equal(2, code, text .. ": " .. err)
      assert_error_doc(out, "usage")
      assert.matches("^envclone: batch", err)
    end
    local code = run(env_all(), { "batch", "/nonexistent/batch.json" })
    assert.are.equal(2, code)
    local file = write_file(good)
    assert.are.equal(2, (run(env_all(), { "batch", file, "--max-in-flight", "0" })))
    assert.are.equal(2, (run(env_all(), { "batch", file, "--bogus" })))
    assert.are.equal(2, (run(env_all(), { "batch" })))
    local env = env_all()
    env.VERSORI_TOKEN = ""
    local c2, _, err2 = run(env, { "batch", file })
    assert.are.equal(2, c2)
    assert.matches("VERSORI_TOKEN", err2)
    local empty = write_file(" []\n")
    local c4, out4, err4 = run(env_all(), { "batch", empty })
    os.remove(empty)
    assert.are.equal(0, c4, err4)
    assert.are.equal("[]\n", out4)
    local bad_key = env_all()
    bad_key.KONTENT_API_KEY = "short"
    local c5, _, err5 = run(bad_key, { "batch", file })
    assert.are.equal(2, c5)
    assert.are.equal("envclone: KONTENT_API_KEY: must be 8 to 8192 characters long\n", err5)
    os.remove(file)
    assert.are.equal(0, #e:requests())
    local c3, help = run(env_all(), { "batch", "--help" })
    assert.are.equal(0, c3)
    assert.matches("usage: envclone batch FILE", help)
  end)

  it("shows a progress line on a terminal, and keeps stdout JSON", function()
    if not tmux.available() then pending("tmux is not installed") end
    e:faults{ delay = 0.1 }
    local file = write_file(cjson.encode(calls_json(30)))
    local out = os.tmpname()
    local term = tmux.new()
    term:run(command(env_all(), { "batch", file, "--max-in-flight", "2" }) .. " >" .. emu.quote(out))
    local seen = {}
    local final = term:wait(30, 0.05, function(screen)
      for line in screen:gmatch("[^\n]+") do
        local done = line:match("^batch: (%d+)/30 done, 0 failed, [%d.]+s elapsed$")
        if done then seen[#seen + 1] = tonumber(done) end
      end
    end)
    term:stop()
    os.remove(file)
    local results = cjson.decode(emu.read_file(out) or "")
    os.remove(out)
    assert.is_string(final, "the command did not finish")
    assert.matches("EXIT=0", final)
    assert.is_true(#seen >= 1, "the progress line was seen")
    assert.matches("batch: 30 calls, 30 succeeded, 0 failed in [%d.]+s", final)
    assert.are.equal(30, #results)
  end)
end)
