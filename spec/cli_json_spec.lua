-- JSON mode, always: with `--output json` (or stdout not a terminal) every
-- failing exit status prints one JSON document on stdout, {"error": {...}},
-- and every output matches doc/cli-output.schema.json (checked here by a
-- small validator of the schema subset the file uses). Keys print in a
-- stable order; errors name the flag the user typed.
local emu = require("spec.support.emu")
local cjson = require("cjson.safe")

local e
local BUILD = os.getenv("ENVCLONE_BUILD") or "build"

local function env(vendor_urls)
  local t = { ENVCLONE_BUILD = BUILD, ENVCLONE_EMULATOR_URL = e.url, KONTENT_API_KEY = "", VERSORI_TOKEN = "",
    VERSORI_COOKIE = "", QOVERY_TOKEN = "", DROPLIT_TOKEN = "", ENVCLONE_KONTENT_URL = "",
    ENVCLONE_QOVERY_URL = "", ENVCLONE_DROPLIT_URL = "", ENVCLONE_VERSORI_URL = "" }
  for k, v in pairs(vendor_urls or {}) do t[k] = v end
  return t
end

local function run(args, environment)
  local out, err = os.tmpname(), os.tmpname()
  local parts = { "env" }
  for k, v in pairs(environment or env()) do parts[#parts + 1] = k .. "=" .. emu.quote(v) end
  parts[#parts + 1] = os.getenv("ENVCLONE_LUA") or "lua5.4"
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

local function write_file(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

-- The schema, and a validator of the subset it uses ($ref to $defs, anyOf,
-- allOf, type, enum, properties, required, additionalProperties = false,
-- items). Returns nil when `v` matches, else where and why it does not.
local schema = assert(cjson.decode((assert(emu.read_file("doc/cli-output.schema.json")))))

local function json_type(v)
  if v == cjson.null then return "null" end
  local t = type(v)
  if t == "number" then
    return (v == math.floor(v)) and "integer" or "number"
  elseif t == "string" or t == "boolean" then
    return t
  elseif t == "table" then
    if next(v) == nil then return "empty" end
    return v[1] ~= nil and "array" or "object"
  end
  return t
end

local function type_ok(want, got)
  if want == got then return true end
  if want == "number" and got == "integer" then return true end
  if got == "empty" and (want == "object" or want == "array") then return true end
  return false
end

local function check(s, v, path)
  path = path or "$"
  if s["$ref"] then
    local name = s["$ref"]:match("^#/%$defs/(.+)$")
    return check(assert(schema["$defs"][name], s["$ref"]), v, path)
  end
  if s.anyOf then
    local why = {}
    for _, sub in ipairs(s.anyOf) do
      local err = check(sub, v, path)
      if not err then return nil end
      why[#why + 1] = err
    end
    return path .. ": matches none of anyOf (" .. table.concat(why, "; ") .. ")"
  end
  for _, sub in ipairs(s.allOf or {}) do
    local err = check(sub, v, path)
    if err then return err end
  end
  local got = json_type(v)
  if s.type then
    local ok = false
    for _, t in ipairs(type(s.type) == "table" and s.type or { s.type }) do ok = ok or type_ok(t, got) end
    if not ok then return path .. ": a " .. got .. ", not " .. cjson.encode(s.type) end
  end
  if s.enum then
    local ok = false
    for _, x in ipairs(s.enum) do ok = ok or x == v end
    if not ok then return path .. ": " .. tostring(v) .. " is not one of the enum" end
  end
  if type(v) == "table" and (got == "object" or got == "empty") then
    for _, k in ipairs(s.required or {}) do
      if v[k] == nil then return path .. ": no member " .. k end
    end
    for k, x in pairs(v) do
      local sub = s.properties and s.properties[k]
      if sub then
        local err = check(sub, x, path .. "." .. k)
        if err then return err end
      elseif s.additionalProperties == false then
        return path .. ": unexpected member " .. tostring(k)
      end
    end
  end
  if type(v) == "table" and got == "array" and s.items then
    for i, x in ipairs(v) do
      local err = check(s.items, x, path .. "[" .. i .. "]")
      if err then return err end
    end
  end
  return nil
end

-- stdout is one line, one JSON document matching the schema; returns it.
local function document(out)
  assert.is_string(out)
  assert.are.equal("\n", out:match("\n.*$"), "one line: " .. out)
  local doc = cjson.decode(out)
  assert.is_table(doc, out)
  local err = check(schema, doc)
  assert.is_nil(err, err)
  return doc
end

setup(function() e = emu.start{ kontent_clone_seconds = 0.3 } end)
teardown(function() if e then e:stop() end end)
before_each(function() e:reset() end)

describe("envclone --output json", function()
  it("the validator used here refuses what the schema does not allow", function()
    assert.is_nil(check(schema, { error = { kind = "http", message = "x", status = 400 } }))
    assert.is_string(check(schema, { error = { kind = "http" } }))                      -- no message
    assert.is_string(check(schema, { error = { kind = "nope", message = "x" } }))       -- kind not in the enum
    assert.is_string(check(schema, { error = { kind = "http", message = "x", colour = 1 } }))
    assert.is_string(check(schema, { error = { kind = "http", message = "x", status = "400" } }))
    assert.is_string(check(schema, { { index = 1, vendor = "k", operation = "o", args = {} } })) -- neither ok nor valid
    assert.is_nil(check(schema, { { index = 1, vendor = "k", operation = "o", args = {}, ok = true, result = 1 } }))
  end)

  it("each failing exit status, 2 to 7, prints one valid JSON document on stdout", function()
    local id = e.seed.kontent.environment_id
    local socket = require("socket")
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    local cases = {
      { 2, "usage", { "kontent", "get-environment", "--environment-id", id, "--outptu", "json" } },
      { 2, "usage", { "kontent", "get-environment", "--output", "json" }, { KONTENT_API_KEY = "short" } },
      { 2, "usage", { "kontent", "--output", "json" } },
      { 2, "usage", { "batch", "/nonexistent.json", "--output", "json" } },
      { 3, "validation", { "kontent", "rename-environment", "--environment-id", id, "--name", ("x"):rep(201),
        "--output", "json" } },
      { 4, "http", { "kontent", "delete-environment", "--environment-id", id, "--output", "json" } },
      { 5, "transport", { "kontent", "get-environment", "--environment-id", id, "--base-url",
        "http://127.0.0.1:" .. port .. "/kontent/v2", "--no-retry", "--output", "json" },
        { KONTENT_API_KEY = "emu-kontent-key" } },
      { 6, "timeout", { "kontent", "clone-environment", "--environment-id", id, "--name", "slow", "--wait",
        "--wait-timeout", "0.2", "--poll-interval", "0.05", "--output", "json" } },
    }
    for _, c in ipairs(cases) do
      local code, out, err = run(c[3], env(c[4]))
      assert.are.equal(c[1], code, table.concat(c[3], " ") .. ": " .. err)
      local doc = document(out)
      assert.are.equal(c[2], doc.error.kind, out)
      assert.is_string(doc.error.message)
      if c[2] == "timeout" then assert.is_string(doc.error.created.id) end
      if c[2] == "http" then
        assert.are.equal(400, doc.error.status)
        assert.are.equal(false, doc.error.maybe_applied)
        assert.is_string(doc.error.request_id)
      end
      if c[2] == "transport" then assert.are.equal(false, doc.error.sent) end
    end
    -- 7: the wait ended in a failed state
    e:config{ kontent_clone_outcome = "failed" }
    local code, out = run({ "kontent", "clone-environment", "--environment-id", id, "--name", "doomed", "--wait",
      "--poll-interval", "0.05" })
    assert.are.equal(7, code)
    local doc = document(out)
    assert.are.equal("state", doc.error.kind)
    assert.is_string(doc.error.created.id)
    e:config{ kontent_clone_outcome = "done" }
  end)

  it("prints the same bytes for the same answer, members in the documented order", function()
    local args = { "kontent", "get-environment", "--environment-id", e.seed.kontent.environment_id }
    local _, first = run(args)
    local _, second = run(args)
    assert.are.equal(first, second)
    document(first)
    local _, out = run({ "kontent", "delete-environment", "--environment-id", e.seed.kontent.environment_id })
    -- kind, reason, status, code, message, maybe_applied, ..., request_id, ..., vendor, operation
    local last = 0
    for _, key in ipairs{ "kind", "reason", "status", "code", "message", "maybe_applied", "request_id", "vendor",
      "operation" } do
      local at = out:find('"' .. key .. '":', 1, true)
      assert.is_number(at, key .. " in " .. out)
      assert.is_true(at > last, key .. " out of order: " .. out)
      last = at
    end
  end)

  it("batch results and batch --check match the schema and say which call each is", function()
    local s = e.seed
    local calls = {
      { vendor = "kontent", operation = "get-environment", args = { ["environment-id"] = s.kontent.environment_id } },
      { vendor = "droplit", operation = "create_environment",
        args = { ecosystemId = s.droplit.ecosystem_id, alias = "json1" } },
      { vendor = "kontent", operation = "delete-environment", args = { environment_id = s.kontent.environment_id } },
    }
    local file = write_file(cjson.encode(calls))
    local code, out = run({ "batch", file, "--check" })
    assert.are.equal(0, code)
    local checked = document(out)
    assert.are.equal(3, #checked)
    for i, item in ipairs(checked) do
      assert.are.equal(i, item.index)
      assert.is_true(item.valid)
    end
    assert.are.equal("create-environment", checked[2].operation)
    assert.are.equal(s.droplit.ecosystem_id, checked[2].args.ecosystemId)
    assert.are.equal(0, #e:requests())
    code, out = run({ "batch", file })
    os.remove(file)
    assert.are.equal(8, code) -- the delete failed, the others succeeded
    local results = document(out)
    assert.is_true(results[1].ok and results[2].ok)
    assert.are.equal("http", results[3].error.kind)
    assert.is_nil(out:find(e.credentials.droplit.token, 1, true))
  end)

  it("a validation error names the flag the user typed, in JSON and in the text", function()
    local s = e.seed
    local code, out, err = run({ "versori", "clone-environment", "--organisation-id", s.versori.organisation_id,
      "--project-id", s.versori.project_id, "--old-env-name", "staging", "--new-env-name", ("n"):rep(1025) })
    assert.are.equal(3, code, err)
    local doc = document(out)
    assert.are.equal("newEnvName", doc.error.field)
    assert.are.equal("--new-env-name", doc.error.flag)
    assert.matches("%-%-new%-env%-name %(field 'newEnvName'%)", err)
    assert.are.equal(0, #e:requests())
  end)
end)
