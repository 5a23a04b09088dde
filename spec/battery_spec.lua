-- The bad-input battery (issue 6): every operation x every validation rule,
-- table-driven from the operation table (envclone.operations), against the
-- emulator. Each bad input must give `nil, err` with kind "validation" and
-- the offending field named, and the emulator must have received nothing.
-- Path parameters that are free-form strings are percent-encoded instead:
-- the emulator must see exactly one request, on the encoded path. Bad
-- constructor options (credentials, user_agent, base_url, ...) raise.
-- The case count is printed at the end.
local envclone = require("envclone")
local emu = require("spec.support.emu")

local NAN, INF = 0 / 0, math.huge
local MB = 1048576

local e, seed, creds
local counts = { rejected = 0, encoded = 0, raised = 0 }
local outputs = {} -- every tostring(err) and raise message, grepped for secrets at the end

-- Valid arguments for each operation (every bad case changes one thing).
-- Creates carry their lookup's key (the accept case checks the lookup read
-- goes first); reads and deletes name objects that exist in the emulator's
-- seed, or that `prepare` below makes before the accept case. A row this
-- table does not cover raises (see `check_valid`): a new operation must get
-- its valid arguments here, never be skipped.
local function valid_args(op)
  local s = seed[op.vendor]
  local by_op = {
    ["versori.clone_environment"] = { organisation_id = s.organisation_id, project_id = s.project_id,
      oldEnvName = "production", newEnvName = "battery-ok" },
    ["versori.create_connection_version"] = { organisation_id = s.organisation_id,
      connection_id = s.connection_id, name = "battery-ok" },
    ["versori.get_project"] = { organisation_id = s.organisation_id, project_id = s.project_id },
    -- a well-formed ULID; the accept case uses the seed's staging environment (prepare)
    ["versori.delete_environment"] = { organisation_id = s.organisation_id, project_id = s.project_id,
      environment_id = "01HZY8K2V6Q4N3M5T7W9X0BATT" },
    ["versori.get_connection_version"] = { organisation_id = s.organisation_id,
      connection_id = s.connection_id, version = s.version },
    ["versori.list_connection_versions"] = { organisation_id = s.organisation_id,
      connection_id = s.connection_id, first = 2 },
    -- the seed version is published: without force the vendor refuses it
    ["versori.delete_connection_version"] = { organisation_id = s.organisation_id,
      connection_id = s.connection_id, version = s.version, force = true },
    ["qovery.clone_application"] = { applicationId = s.application_id, name = "battery-ok",
      environment_id = s.environment_id },
    ["qovery.get_application"] = { applicationId = s.application_id },
    ["qovery.get_application_status"] = { applicationId = s.application_id },
    ["qovery.list_applications"] = { environmentId = s.environment_id },
    ["qovery.delete_application"] = { applicationId = s.application_id },
    ["kontent.list_subscription_projects"] = { subscription_id = s.subscription_id },
    ["droplit.create_environment"] = { ecosystemId = s.ecosystem_id, alias = "battery_new" },
    -- by the alternative path (ecosystemId;alias); the environment is made by prepare
    ["droplit.get_environment"] = { ecosystemId = s.ecosystem_id, alias = "battery_ok" },
    ["droplit.delete_environment"] = { ecosystemId = s.ecosystem_id, alias = "battery_ok" },
    ["kontent.mark_environment_as_production"] = { environment_id = s.environment_id, enable_webhooks = false },
  }
  local a = by_op[op.vendor .. "." .. op.name]
  if not a then -- Kontent's Management API: operations on one environment, some with a name
    a = {}
    for _, f in ipairs(op.fields) do
      if f.name == "environment_id" and op.vendor == "kontent" then a.environment_id = s.environment_id end
    end
    if a.environment_id then
      for _, f in ipairs(op.fields) do
        if f.name == "name" then a.name = "battery-ok" end
      end
    end
  end
  local copy = {}
  for k, v in pairs(a) do copy[k] = v end
  return copy
end

-- The other address of a row with two paths (op.alt_path): well-formed
-- values for the main path's parameters, for the "both paths" cases.
local main_path_args = {
  ["droplit.get_environment"] = { id = "E5cdeBatteryEnvironment01" },
  ["droplit.delete_environment"] = { id = "E5cdeBatteryEnvironment01" },
}

local function params_of(path)
  local set, list = {}, {}
  for name in (path or ""):gmatch("{([^}]+)}") do
    set[name] = true
    list[#list + 1] = name
  end
  return set, list
end

-- Raises, naming the row, when the battery has no (or incomplete) valid
-- arguments for it: a new row must fail loudly, not be skipped.
local function check_valid(op)
  local id = op.vendor .. "." .. op.name
  local args = valid_args(op)
  local fields = {}
  for _, f in ipairs(op.fields) do fields[f.name] = f end
  local function fail(why)
    error("battery: no valid arguments for " .. id .. " (" .. why .. "): add them to valid_args in "
      .. "spec/battery_spec.lua", 0)
  end
  if next(args) == nil then fail("none") end
  for k in pairs(args) do
    if not fields[k] then fail("'" .. tostring(k) .. "' is not a field of the row") end
  end
  for _, f in ipairs(op.fields) do
    if f.required and args[f.name] == nil then fail("required field '" .. f.name .. "' missing") end
  end
  if op.alt_path then
    if not main_path_args[id] then fail("no main_path_args for a row with two paths") end
    local _, alt = params_of(op.alt_path)
    for _, p in ipairs(alt) do
      if args[p] == nil then fail("the alternative path's '" .. p .. "' missing") end
    end
  end
  if op.lookup and args[op.lookup.key_arg] == nil then
    fail("the lookup key '" .. op.lookup.key_arg .. "' missing")
  end
  return args
end

-- The valid arguments by a row's main path (op.path) instead of its
-- alternative one: the alternative path's own parameters out, the main
-- path's in. nil for a row with one path.
local function main_args(op, values)
  if not op.alt_path then return nil end
  local args = valid_args(op)
  local main = params_of(op.path)
  local alt = params_of(op.alt_path)
  for p in pairs(alt) do
    if not main[p] then args[p] = nil end
  end
  for k, v in pairs(values or main_path_args[op.vendor .. "." .. op.name]) do args[k] = v end
  return args
end

local function with(args, key, value)
  args[key] = value
  return args
end

local function format_of(f)
  local fmt = f.format or ""
  if fmt:find("ULID") then return "ulid" end
  if fmt:find("UUID") then return "uuid" end
  if fmt:find("printable") then return "token" end
  return nil
end

local function kind_of(f)
  if f.type == "string" or f.type == "boolean" or f.type == "integer" then return f.type end
  if f.type == "array of strings" then return "array" end
  if f.members then return "object" end
  return "free"
end

local function deep(levels)
  local root = {}
  local t = root
  for _ = 1, levels do
    t.a = {}
    t = t.a
  end
  return root
end

local function holes() return { [1] = "x", [3] = "y" } end

-- Values of every Lua type, minus those the field takes.
local function wrong_types(f)
  local k = kind_of(f)
  local out = {}
  local all = {
    { "an integer", 42 }, { "a float", 4.5 }, { "NaN", NAN }, { "inf", INF }, { "-inf", -INF },
    { "true", true }, { "false", false }, { "a string", "x" }, { "the string 'true'", "true" },
    { "a function", print }, { "userdata", io.stdout }, { "a coroutine", coroutine.create(print) },
    { "JSON null (envclone.null)", envclone.null },
    { "a table", { "x" } }, { "an empty table", {} },
  }
  for _, c in ipairs(all) do
    local t = type(c[2])
    -- every number is a case of integer_rules (42 may well be in range)
    local takes = (k == "string" and t == "string") or (k == "boolean" and t == "boolean")
      or (k == "integer" and t == "number")
      or ((k == "array" or k == "object" or k == "free") and t == "table")
    if not takes then out[#out + 1] = c end
  end
  return out
end

-- Rules for a string field: { label, value, expected field }.
local function string_rules(f)
  local name = f.name
  local r = {
    { "empty string", "" },
    { "one character over max_len (" .. f.max_len .. ")", ("x"):rep(f.max_len + 1) },
    { "a 1 MB string", ("x"):rep(MB) },
    { "a NUL byte", "a\0b" },
    { "invalid UTF-8 (lone 0xFF)", "\255" },
    { "invalid UTF-8 (overlong '/')", "\192\175" },
    { "invalid UTF-8 (UTF-16 surrogate)", "\237\160\128" },
    { "invalid UTF-8 (past U+10FFFF)", "\244\144\128\128" },
    { "invalid UTF-8 (truncated)", "\226\130" },
  }
  local fmt = format_of(f)
  if fmt == "ulid" then
    for _, v in ipairs{ "not-a-ulid", "81HZY8K2V6Q4N3M5T7W9X0ABCD", "01HZY8K2V6Q4N3M5T7W9X0ABCU",
      "01HZY8K2V6Q4N3M5T7W9X0ABC", "01HZY8K2V6Q4N3M5T7W9X0ABCDE", "01HZY8K2V6Q4N3M5T7W9X0AB-D" } do
      r[#r + 1] = { "not a ULID: " .. v, v }
    end
  elseif fmt == "uuid" then
    for _, v in ipairs{ "8d20758c", "8d20758cd74c4f59ae04ee928c0816b7", "8d20758c-d74c-4f59-ae04-ee928c0816bg",
      "{8d20758c-d74c-4f59-ae04-ee928c0816b7}", "8d20758c-d74c-4f59-ae04-ee928c0816b7 ",
      -- 36 bytes, each wrong in one place: a dash moved, a dash for a digit, a digit for a dash, a group's edge
      "8d20758-cd74c-4f59-ae04-ee928c0816b7", "8d20758c-d74c-4f59-ae04-ee928c0816b-",
      "8d20758c0d74c-4f59-ae04-ee928c0816b7", "gd20758c-d74c-4f59-ae04-ee928c0816b7",
      "8d20758c-d74c-4f59-ae0z-ee928c0816b7" } do
      r[#r + 1] = { "not a UUID: " .. v, v }
    end
  elseif fmt == "token" then -- a header value
    for _, c in ipairs{ { "CR LF (header injection)", "a\r\nX-Injected: 1" }, { "CR", "a\rb" }, { "LF", "a\nb" },
      { "a tab", "a\tb" }, { "DEL", "a\127" }, { "non-ASCII", "\195\169" } } do
      r[#r + 1] = { c[1] .. " in a header value", c[2] }
    end
  end
  if f.charset then
    for _, c in ipairs{ { "a dash", "a-b" }, { "a space", "a b" }, { "a dot", "a.b" }, { "a semicolon", "a;b" },
      { "a slash", "a/b" }, { "non-ASCII", "\195\169" } } do
      r[#r + 1] = { c[1] .. " (outside " .. f.charset .. ")", c[2] }
    end
  end
  if f["in"] == "path" then
    for _, v in ipairs{ ".", "..", "..." } do r[#r + 1] = { "the dot segment '" .. v .. "'", v } end
    if fmt then -- a formatted id cannot hold path syntax at all
      for _, v in ipairs{ "../x", "a/b", "a?b=1", "a#frag", "%2e%2e", "..%2f" } do
        r[#r + 1] = { "path syntax " .. v, v }
      end
    end
  end
  if fmt == "ulid" or fmt == "uuid" then
    -- the client's own credential as a value: refused, and never shown
    r[#r + 1] = { "the credential as the value", "CREDENTIAL" }
  end
  for _, word in ipairs(f.reserved or {}) do r[#r + 1] = { "the reserved word " .. word, word } end
  for _, c in ipairs(r) do c[3] = name end
  return r
end

-- Rules for an integer field: numbers that are no integer or out of range.
local function integer_rules(f)
  local r = {
    { "a float", 4.5 }, { "NaN", NAN }, { "inf", INF }, { "-inf", -INF }, { "2^53", 2 ^ 53 },
    { "the string '5'", "5" },
  }
  if f.min_value then r[#r + 1] = { "one under min_value (" .. f.min_value .. ")", f.min_value - 1 } end
  if f.max_value then r[#r + 1] = { "one over max_value (" .. f.max_value .. ")", f.max_value + 1 } end
  for _, c in ipairs(r) do c[3] = f.name end
  return r
end

local function array_rules(f)
  local name, ok = f.name, seed.kontent.role_id
  local many = {}
  for i = 1, f.max_items + 1 do many[i] = ok end
  return {
    { "an object, not an array", { a = ok }, name },
    { "an array with holes", { [1] = ok, [3] = ok }, name },
    { "a float key", { [1.5] = ok }, name },
    { "more than max_items (" .. f.max_items .. ")", many, name },
    { "a number item", { ok, 5 }, name .. "[2]" },
    { "a badly formatted item", { "nope" }, name .. "[1]" },
    { "a table item", { {} }, name .. "[1]" },
    { "a NUL in an item", { ok, "a\0b" }, name .. "[2]" },
    { "a null item", { envclone.null }, name .. "[1]" },
    { "a NaN item", { NAN }, name .. "[1]" },
  }
end

local function object_rules(f)
  local name = f.name
  local r = {
    { "an unknown member", { assets = true }, name .. ".assets" },
    { "an array instead of members", { true }, name .. ".?" },
  }
  for _, m in ipairs(f.members) do
    for _, w in ipairs(wrong_types(m)) do
      r[#r + 1] = { "member " .. m.name .. " = " .. w[1], { [m.name] = w[2] }, name .. "." .. m.name }
    end
  end
  return r
end

local function free_rules(f)
  local name = f.name
  local cyclic = {}
  cyclic.self = cyclic
  return {
    { "an array", { 1, 2 }, name },
    { "an empty array marked with envclone.array", envclone.array{}, name },
    { "NaN inside", { x = NAN }, name .. ".x" },
    { "inf inside", { x = INF }, name .. ".x" },
    { "-inf inside", { x = -INF }, name .. ".x" },
    { "100 levels of nesting", deep(100), "^" .. name .. "%.a%.a" },
    { "one level past max_depth (" .. f.max_depth .. ")", deep(f.max_depth), "^" .. name .. "%.a" },
    { "a cycle", cyclic, "^" .. name .. "%.self" },
    { "a function inside", { x = print }, name .. ".x" },
    { "userdata inside", { x = io.stdout }, name .. ".x" },
    { "a float key", { [1.5] = 1 }, name },
    { "a boolean key", { [true] = 1 }, name },
    { "mixed array items and keys", { 1, x = 2 }, name },
    { "an inner array with holes", { h = holes() }, name .. ".h" },
    { "a NUL in a key", { ["a\0b"] = 1 }, name .. ".a?b" },
    { "invalid UTF-8 in a key", { ["\255"] = 1 }, name .. ".?" },
    -- a CR LF in a key is valid JSON; under a NaN it must still name the key on one line
    { "NaN under a key with CR LF", { ["a\r\nb"] = NAN }, name .. ".a??b" },
    { "invalid UTF-8 in a value", { x = "\255" }, name .. ".x" },
    { "a NUL in a value", { x = "a\0b" }, name .. ".x" },
    { "a 1 MB value (body over 256 KiB)", { big = ("x"):rep(MB) }, name .. ".big" },
  }
end

-- All rejection cases of one operation: { label, args, expected field }
-- (the field a string, a "^pattern", or a set of the fields allowed).
local function cases_for(op)
  check_valid(op)
  local cases = {}
  local function add(label, args, field) cases[#cases + 1] = { label, args, field } end
  -- a field of only the main path of a row with two paths breaks the main
  -- path's arguments (added to the alternative ones it would be "not both")
  local main, alt = params_of(op.path), params_of(op.alt_path)
  local function base(f)
    if op.alt_path and main[f.name] and not alt[f.name] then return main_args(op) end
    return valid_args(op)
  end
  for _, f in ipairs(op.fields) do
    local where = f.name .. ": "
    if f.required then
      add(where .. "missing (required)", with(base(f), f.name, nil), f.name)
    end
    for _, w in ipairs(wrong_types(f)) do
      add(where .. w[1], with(base(f), f.name, w[2]), f.name)
    end
    local k = kind_of(f)
    local rules = k == "string" and string_rules(f) or k == "array" and array_rules(f)
      or k == "object" and object_rules(f) or k == "free" and free_rules(f)
      or k == "integer" and integer_rules(f) or {}
    for _, r in ipairs(rules) do
      local v = r[2] == "CREDENTIAL" and creds[op.vendor][op.credential] or r[2]
      add(where .. r[1], with(base(f), f.name, v), r[3])
    end
  end
  if op.alt_path then
    -- exactly one address: not none, not half of one, not both
    local _, main_list = params_of(op.path)
    local _, alt_list = params_of(op.alt_path)
    local none = valid_args(op)
    for _, p in ipairs(alt_list) do none[p] = nil end
    add("no address (neither " .. op.path .. " nor " .. op.alt_path .. ")", none, main_list[1])
    for _, p in ipairs(alt_list) do
      add("the alternative path without " .. p, with(valid_args(op), p, nil), main_list[1])
    end
    local alt_set = {}
    for _, p in ipairs(alt_list) do alt_set[p] = true end
    for _, p in ipairs(main_list) do
      add("both paths (" .. p .. " with " .. table.concat(alt_list, " and ") .. ")",
        with(valid_args(op), p, main_path_args[op.vendor .. "." .. op.name][p]), alt_set)
      local half = main_args(op)
      half[alt_list[1]] = valid_args(op)[alt_list[1]]
      add("the main path with the alternative's " .. alt_list[1], half, alt_set)
    end
  end
  -- unknown and malformed names
  local first = op.fields[1].name
  local typo = first:sub(1, 1) .. first:sub(3, 3) .. first:sub(2, 2) .. first:sub(4)
  if typo == first then typo = first .. first:sub(-1) end -- "id": no letters to swap
  add("unknown field", with(valid_args(op), "bogus", 1), "bogus")
  add("a typo of '" .. first .. "'", with(valid_args(op), typo, "x"), typo)
  add("a positional argument", with(valid_args(op), 1, "x"), "(arguments)")
  add("a boolean key", with(valid_args(op), true, "x"), "(arguments)")
  add("a float key", with(valid_args(op), 2.5, "x"), "(arguments)")
  add("a key with CR LF", with(valid_args(op), "a\r\nb", 1), "a??b")
  add("a 1 MB key", with(valid_args(op), ("k"):rep(MB), 1), ("k"):rep(40) .. "...")
  add("a credential passed per call", with(valid_args(op), op.credential, "x"), op.credential)
  add("the credential as a key", with(valid_args(op), creds[op.vendor][op.credential], 1), "***")
  return cases
end

-- Kontent's client holds subscription_id (with the subscription key from
-- the emulator's credentials), so its clone's lookup runs like the others'.
local function client(vendor)
  return e:client(vendor, { subscription_id = vendor == "kontent" and seed.kontent.subscription_id or nil },
    { retry = false })
end

local function requests() return e:stats().requests end

-- Kontent's answers to the valid arguments aimed at the production
-- environment (the emulator's only seed environment): code 232 "already
-- marked as production", code 233 "the production environment can't be
-- deleted" (Kontent Management API v2 error codes).
local production_rules = {
  ["kontent.mark_environment_as_production"] = 232,
  ["kontent.delete_environment"] = 233,
}

local function check_output(text)
  outputs[#outputs + 1] = text
  assert.is_nil(text:find("[\r\n]"), "one line: " .. text)
end

-- The cases are built before the emulator starts, from the emulator module's
-- own seed and credential tables (it is Lua 5.4 code: under LuaJIT, lua5.4
-- hands them over as JSON).
do
  local ok, emulator = pcall(require, "envclone.emulator")
  if ok then
    seed, creds = emulator.seed, emulator.credentials
  else
    local p = assert(io.popen("lua5.4 -e \"package.path='./lua/?.lua;'..package.path "
      .. "local m = require('envclone.emulator') "
      .. "io.write(require('cjson').encode({ seed = m.seed, credentials = m.credentials }))\"", "r"))
    local t = require("cjson").decode(p:read("*a"))
    p:close()
    seed, creds = t.seed, t.credentials
  end
end

setup(function()
  e = emu.start{}
  seed, creds = e.seed or seed, e.credentials or creds
end)

teardown(function()
  if e then e:stop() end
  local total = counts.rejected + counts.encoded + counts.raised
  print(string.format("\nbattery: %d cases: %d bad arguments rejected before sending, %d path parameters "
    .. "percent-encoded, %d bad constructor options raised", total, counts.rejected, counts.encoded, counts.raised))
end)

local function row(vendor, name)
  for _, op in ipairs(envclone.operations) do
    if op.vendor == vendor and op.name == name then return op end
  end
end

-- One request to the emulator's vendor routes, outside envclone's client
-- (what the accept cases need to exist first); returns the decoded answer.
local function emu_call(method, base, path, auth, body)
  local status, text = e:request(method, e.base_urls[base]:sub(#e.url + 1) .. path,
    { headers = auth, body = body })
  assert(status and status < 300, "emulator " .. method .. " " .. path .. ": " .. tostring(status) .. " "
    .. tostring(text))
  return require("cjson").decode(text)
end

local function droplit_environment(args)
  local env = emu_call("POST", "droplit", "/api/environments", { authorization = creds.droplit.token },
    { ecosystemId = args.ecosystemId, alias = args.alias })
  return { id = env.id }
end

-- What an accept case's object needs, made after the emulator's reset:
-- returns the main path's values for a row with two paths.
local prepare = {
  ["versori.delete_environment"] = function(args)
    local project = emu_call("GET", "versori", "/o/" .. args.organisation_id .. "/projects/" .. args.project_id,
      { authorization = "Bearer " .. creds.versori.token })
    local found
    for _, env in ipairs(project.environments) do
      if env.name == "staging" then found = env.id end
    end
    args.environment_id = assert(found, "no staging environment in the emulator's seed")
  end,
  ["droplit.get_environment"] = droplit_environment,
  ["droplit.delete_environment"] = droplit_environment,
}

-- The accept case: the valid arguments reach the operation's own route
-- (after the create's lookup read, when the row has a lookup), and the
-- vendor answers with a documented success, so a 404 (an object that does
-- not exist) fails it.
local function accepts(op, by_main_path)
  local id = op.vendor .. "." .. op.name
  e:reset() -- each accept case against the seed: a delete before must not have removed its object
  local args = valid_args(op)
  local values = prepare[id] and prepare[id](args)
  if by_main_path then args = main_args(op, values) end
  local c = client(op.vendor)
  local before = requests()
  local res, err = c[op.name](c, args)
  local sent = requests() - before
  local log = e:requests()
  -- the request reached this operation's own route (not the emulator's 404
  -- for an unknown path), once, last...
  assert.are.equal(id, log[#log].operation)
  if op.lookup then
    -- ...after the lookup's read (the snapshot; a paged list reads each page)
    local read = row(op.vendor, op.lookup.read)
    assert.is_true(sent >= 2 and sent <= 11, id .. ": " .. sent .. " requests for the lookup and the create")
    for i = #log - sent + 1, #log - 1 do
      assert.are.equal(op.vendor .. "." .. op.lookup.read, log[i].operation)
      local ok = not op.lookup.list and log[i].status == 404 -- a read by the key: not there yet
      for _, st in ipairs(read.success) do ok = ok or st == log[i].status end
      assert.is_true(ok, "the lookup read answered " .. tostring(log[i].status))
    end
  else
    assert.are.equal(1, sent)
  end
  -- ...and the vendor accepted it, or refused it by the one rule the seed
  -- environment meets (it is the production environment)
  local refusal = production_rules[id]
  if refusal then
    assert.is_nil(res)
    assert.are.equal("http", err.kind, tostring(err))
    assert.are.equal(400, err.status, tostring(err))
    assert.are.equal(refusal, err.code, tostring(err))
  else
    assert.is_not_nil(res, tostring(err))
    -- with a status the vendor documents for it (the table's success column)
    local documented = false
    for _, st in ipairs(op.success) do documented = documented or st == log[#log].status end
    assert.is_true(documented, id .. " answered " .. tostring(log[#log].status))
    if op.deletes then
      assert.is_true(res.deleted)
      assert.is_nil(res.already_gone, id .. ": the object was not there")
    end
  end
end

for _, op in ipairs(envclone.operations) do
  describe(op.vendor .. "." .. op.name, function()
    local ok, cases = pcall(cases_for, op)
    if not ok then
      it("has valid arguments in the battery", function() error(cases, 0) end)
      return
    end

    it("accepts the battery's valid arguments (each case below breaks one thing)", function()
      accepts(op, false)
    end)
    if op.alt_path then
      it("accepts the valid arguments by its main path " .. op.path, function() accepts(op, true) end)
    end

    for _, case in ipairs(cases) do
      local label, args, field = case[1], case[2], case[3]
      it(label, function()
        local c = client(op.vendor)
        local before = requests()
        local res, err = c[op.name](c, args)
        assert.is_nil(res)
        assert.is_true(envclone.is_error(err), "expected an error object, got " .. tostring(err))
        assert.are.equal("validation", err.kind, tostring(err))
        if type(field) == "table" then
          assert.is_true(field[err.field] ~= nil, "unexpected field: " .. tostring(err))
        elseif field:sub(1, 1) == "^" then
          assert.matches(field, err.field, tostring(err))
        else
          assert.are.equal(field, err.field, tostring(err))
        end
        assert.are.equal(op.vendor, err.vendor)
        assert.are.equal(op.name, err.operation)
        assert.are.equal(before, requests(), "a rejected call must send nothing")
        check_output(tostring(err))
        counts.rejected = counts.rejected + 1
      end)
    end

    it("refuses arguments that are not a table", function()
      local c = client(op.vendor)
      local before = requests()
      for _, bad in ipairs{ "x", 42, true, false } do
        local res, err = c[op.name](c, bad)
        assert.is_nil(res)
        assert.are.equal("validation", err.kind)
        assert.are.equal("(arguments)", err.field)
        check_output(tostring(err))
        counts.rejected = counts.rejected + 1
      end
      local res, err = c[op.name](c)
      assert.is_nil(res)
      assert.are.equal("(arguments)", err.field)
      counts.rejected = counts.rejected + 1
      assert.are.equal(before, requests())
    end)
  end)
end

describe("limits are exact (checked with core.request, which sends nothing)", function()
  local core = require("envclone.core")
  it("max_len and max_depth are the last accepted values", function()
    local k = core.client("kontent", { api_key = "k-battery" })
    assert.is_userdata(core.request(k, "rename_environment", { environment_id = seed.kontent.environment_id,
      name = ("\195\169"):rep(200) }))
    local d = core.client("droplit", { token = "t-battery" })
    local inside = {}
    local t = inside
    for _ = 2, 32 do
      t.a = {}
      t = t.a
    end
    assert.is_userdata(core.request(d, "create_environment", { ecosystemId = "E", meta = inside }))
    assert.is_nil(core.request(d, "create_environment", { ecosystemId = "E", meta = { wrap = inside } }))
  end)
end)

describe("free-form path parameters are percent-encoded, never refused or passed raw", function()
  local function pct(s)
    return (s:gsub("[^%w%-%._~]", function(ch) return string.format("%%%02X", ch:byte()) end))
  end
  local values = { "../x", "../../projects?x=1#y", "a/b", "a?b=1", "a#frag", "%2e%2e", "..%2f", ".%2e",
    "a b", "a\r\nX-Injected: 1", "\195\169", "~user", "a+b", "a;b", "a&b=c" }
  -- every path field without a format or a character set, of every row
  for _, op in ipairs(envclone.operations) do
    local id = op.vendor .. "." .. op.name
    for _, f in ipairs(op.fields) do
      if f["in"] == "path" and not f.format and not f.charset then
        for _, v in ipairs(values) do
          it(string.format("%s %s %q", id, f.name, v), function()
            local args = valid_args(op)
            for _, g in ipairs(op.fields) do
              if g["in"] == "query" then args[g.name] = nil end -- the query string must stay empty
            end
            args[f.name] = v
            -- the create's own request line is the subject: its lookup read
            -- (get_connection_version, a row of its own here) is skipped
            if op.lookup then args.reconcile = false end
            local c = client(op.vendor)
            local before = requests()
            local res, err = c[op.name](c, args)
            assert.are.equal(before + 1, requests(), "exactly one request")
            local log = e:requests()
            -- the vendor's own route, and not found: the value stayed one segment
            assert.are.equal(id, log[#log].operation)
            assert.are.equal(404, log[#log].status)
            if op.deletes then
              assert.is_true(res and res.already_gone, tostring(err))
            else
              assert.is_nil(res)
              assert.are.equal(404, err.status, tostring(err))
              check_output(tostring(err))
            end
            local base = op.vendor .. (op.base and "_" .. op.base or "")
            local want = e.base_urls[base]:sub(#e.url + 1) .. op.path:gsub("{([^}]+)}", function(name)
              return pct(args[name])
            end)
            assert.are.equal(want, log[#log].path)
            assert.are.equal("", log[#log].query, "nothing leaked into the query string")
            assert.is_nil(log[#log].headers["x-injected"], "no header injected")
            counts.encoded = counts.encoded + 1
          end)
        end
      end
    end
  end
end)

describe("bad constructor options raise (programmer errors), without echoing secrets", function()
  local SECRET = "SECRET-VALUE-4711"
  local bad_secret = { SECRET .. "\r\nX-Injected: 1", SECRET .. "\n", SECRET .. "\r", SECRET .. "\0tail", "", 42, true,
    { SECRET } }
  local common = {
    user_agent = { "ua\r\nX-Injected: 1", "ua\n", "ua\0", 42 },
    base_url = { "ftp://h", "file:///etc/passwd", "gopher://h", "http://h h", "http://h\r\nX: 1", "http://h/?q=1",
      "http://h/#f", "http://h\0.evil.example", "", "//h", "h", 42, "http://" .. ("a"):rep(3000) },
    ca_file = { 42, "/a\0b" },
    timeout = { 0, -1, NAN, INF, 86401, "5" },
    connect_timeout = { 0, -1, NAN, "5" },
    max_response_size = { 0, -1, NAN, INF, 2 ^ 31, "1" },
    insecure = { "yes", 1, "true" },
    retry = { "x", { max_attempts = -1 }, { bogus = 1 }, { base_delay = NAN } },
    on_retry = { "x", 1 },
    log = { "x", 1 },
    tiemout = { 3 },
  }
  -- a vendor's own settings (Kontent's Subscription API subscription, a UUID)
  local settings = {
    kontent = { subscription_id = { "not-a-uuid", "", 42, true, "8d20758c-d74c-4f59-ae04-ee928c0816b7\r\nX: 1",
      "{8d20758c-d74c-4f59-ae04-ee928c0816b7}" } },
  }
  for vendor in pairs(creds) do
    local base = {}
    for k, v in pairs(creds[vendor]) do base[k] = v end
    local function try(label, key, value)
      it(vendor .. " " .. key .. " = " .. label, function()
        local opts = {}
        for k, v in pairs(base) do opts[k] = v end
        opts[key] = value
        local ok, msg = pcall(envclone[vendor], opts)
        assert.is_false(ok, "accepted")
        msg = tostring(msg)
        assert.matches("envclone", msg)
        assert.is_nil(msg:find(SECRET, 1, true), "the raise shows the secret: " .. msg)
        outputs[#outputs + 1] = msg
        counts.raised = counts.raised + 1
      end)
    end
    for cred in pairs(creds[vendor]) do
      for i, v in ipairs(bad_secret) do try(string.format("bad value #%d", i), cred, v) end
    end
    for key, values in pairs(common) do
      for i, v in ipairs(values) do try(string.format("bad value #%d (%s)", i, type(v)), key, v) end
    end
    for key, values in pairs(settings[vendor] or {}) do
      for i, v in ipairs(values) do try(string.format("bad value #%d (%s)", i, type(v)), key, v) end
    end
    it(vendor .. " options that are not a table", function()
      assert.has_error(function() envclone[vendor]("key") end)
      assert.has_error(function() envclone[vendor](42) end)
      counts.raised = counts.raised + 2
    end)
  end
end)

describe("the battery's own output", function()
  it("never shows a credential", function()
    assert.is_true(#outputs > 100)
    for _, text in ipairs(outputs) do
      for _, vendor_creds in pairs(creds) do
        for _, secret in pairs(vendor_creds) do
          assert.is_nil(text:find(secret, 1, true), "secret in: " .. text)
        end
      end
      assert.is_nil(text:find("SECRET-VALUE-4711", 1, true), "secret in: " .. text)
    end
  end)
end)
