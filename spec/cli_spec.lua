-- The `envclone` command line as a user runs it: spawned processes against
-- the emulator (stdout and stderr are files here, not terminals; the
-- terminal behaviour is in cli_tty_spec.lua). Subcommands and flags come
-- from the operation table, exit codes are distinct per failure kind, and
-- credentials come from the environment or a 0600 file and are never echoed.
local emu = require("spec.support.emu")
local cjson = require("cjson.safe")
local envclone = require("envclone")

local e

local BUILD = os.getenv("ENVCLONE_BUILD") or "build"

-- Runs bin/envclone with env vars `env`; returns exit code, stdout, stderr.
local function run(env, args, lua)
  local out, err = os.tmpname(), os.tmpname()
  local parts = { "env" }
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. emu.quote(v) end
  parts[#parts + 1] = lua or os.getenv("ENVCLONE_LUA") or "lua5.4"
  parts[#parts + 1] = "bin/envclone"
  for _, a in ipairs(args) do parts[#parts + 1] = emu.quote(a) end
  local ok, how, code = os.execute(table.concat(parts, " ") .. " >" .. out .. " 2>" .. err .. " </dev/null")
  if type(ok) == "number" then code = ok / 256 end -- Lua 5.1
  if ok == true then code = 0 end
  local stdout, stderr = emu.read_file(out), emu.read_file(err)
  os.remove(out)
  os.remove(err)
  return code, stdout, stderr, how
end

-- The environment with no credential at all (the spec's own process may have some).
local function bare_env()
  return { ENVCLONE_BUILD = BUILD, KONTENT_API_KEY = "", VERSORI_TOKEN = "", VERSORI_COOKIE = "",
    QOVERY_TOKEN = "", DROPLIT_TOKEN = "" }
end

local env_var = { versori = "VERSORI_TOKEN", qovery = "QOVERY_TOKEN", kontent = "KONTENT_API_KEY",
  droplit = "DROPLIT_TOKEN" }

local function vendor_env(vendor)
  local env = bare_env()
  env["ENVCLONE_" .. vendor:upper() .. "_URL"] = e.base_urls[vendor]
  for option, var in pairs({ token = env_var[vendor], api_key = env_var[vendor], cookie = "VERSORI_COOKIE" }) do
    if e.credentials[vendor][option] then env[var] = e.credentials[vendor][option] end
  end
  return env
end

local function kontent_env() return vendor_env("kontent") end

local function last_request(operation)
  local found
  for _, r in ipairs(e:requests()) do if r.operation == operation then found = r end end
  return found
end

-- stdout on a failure in JSON mode (stdout is a file here): one line, one
-- JSON document, {"error": {...}} of kind `kind`.
local function assert_error_doc(out, kind)
  local doc = cjson.decode(out)
  assert.is_table(doc, out)
  assert.is_table(doc.error, out)
  assert.are.equal(kind, doc.error.kind, out)
  assert.are.equal("\n", out:match("\n.*$"), out)
  return doc.error
end

local function kebab(name) return (name:gsub("(%l)(%u)", "%1-%2"):gsub("_", "-"):lower()) end

setup(function() e = emu.start{ kontent_clone_seconds = 0.2 } end)
teardown(function() if e then e:stop() end end)
before_each(function() e:reset() end)

describe("envclone subcommands", function()
  it("clones with generated flags, waits, and prints JSON when stdout is not a terminal", function()
    local code, out, err = run(kontent_env(), { "kontent", "clone-environment",
      "--environment-id", e.seed.kontent.environment_id, "--name", "Develop",
      "--roles-to-activate", e.seed.kontent.role_id .. "," .. e.seed.kontent.role_id,
      "--copy-data-options.content-items-assets", "--no-copy-data-options.content-item-version-history",
      "--wait", "--poll-interval", "0.1" })
    assert.are.equal(0, code, err)
    assert.are.equal("", err) -- no progress line when stderr is not a terminal
    local doc = assert(cjson.decode(out))
    assert.is_string(doc.result.id)
    assert.are.equal("done", doc.state.cloning_state)
    local role = e.seed.kontent.role_id
    assert.are.same({ name = "Develop", roles_to_activate = { role, role },
      copy_data_options = { content_items_assets = true, content_item_version_history = false } },
      cjson.decode(last_request("kontent.clone_environment").body))
  end)

  it("keeps the library's field=value form and snake_case names", function()
    local code, out, err = run(kontent_env(), { "kontent", "clone_environment",
      "environment_id=" .. e.seed.kontent.environment_id, "name=From the shell",
      "roles_to_activate=" .. e.seed.kontent.role_id, 'copy_data_options={"content_items_assets":false}' })
    assert.are.equal(0, code, err)
    assert.is_string(assert(cjson.decode(out)).result.id)
    assert.are.equal('{"name":"From the shell","roles_to_activate":["' .. e.seed.kontent.role_id
      .. '"],"copy_data_options":{"content_items_assets":false}}', last_request("kontent.clone_environment").body)
  end)

  it("droplit create-environment --meta takes a JSON object", function()
    local code, out, err = run(vendor_env("droplit"), { "droplit", "create-environment",
      "--ecosystem-id", e.seed.droplit.ecosystem_id, "--meta", '{"customer":"acme","tier":"gold"}',
      "--alias", "acme_cli", "--output", "json" })
    assert.are.equal(0, code, err)
    assert.are.equal("acme_cli", assert(cjson.decode(out)).result.alias)
    local r = last_request("droplit.create_environment")
    assert.are.same({ ecosystemId = e.seed.droplit.ecosystem_id, meta = { customer = "acme", tier = "gold" },
      alias = "acme_cli" }, cjson.decode(r.body))
  end)

  -- issue 11, input 4: [] stays [] on the way in and on the way out
  it("sends and prints an empty JSON array as [] (not {})", function()
    local code, out, err = run(vendor_env("droplit"), { "droplit", "create-environment",
      "--ecosystem-id", e.seed.droplit.ecosystem_id, "--meta", '{"tags":[],"labels":{},"n":1}', "--output", "json" })
    assert.are.equal(0, code, err)
    local body = last_request("droplit.create_environment").body
    assert.matches('"tags":[]', body, 1, true)
    assert.matches('"labels":{}', body, 1, true)
    -- the emulator echoes meta as sent; the printed answer keeps both
    assert.matches('"tags":[]', out, 1, true)
    assert.matches('"labels":{}', out, 1, true)
    local code2, out2, err2 = run(vendor_env("versori"), { "versori", "clone-environment",
      "--organisation-id", e.seed.versori.organisation_id, "--project-id", e.seed.versori.project_id,
      "--old-env-name", "production", "--new-env-name", "cli-arrays", "--output", "json" })
    assert.are.equal(0, code2, err2)
    assert.matches('"files":[]', out2, 1, true)
    assert.is_nil(out2:find('"files":{}', 1, true))
  end)

  -- issue 11, input 5: integers as written, both ways
  it("reads and writes integers exactly (no 14-digit rounding, nothing past 2^53 lost)", function()
    local code, out, err = run(vendor_env("droplit"), { "droplit", "create-environment",
      "--ecosystem-id", e.seed.droplit.ecosystem_id, "--meta", '{"order":123456789012345,"ext":9007199254740993,'
        .. '"ratio":0.1}', "--output", "json" })
    assert.are.equal(0, code, err)
    local body = last_request("droplit.create_environment").body
    for _, piece in ipairs{ '"order":123456789012345', '"ratio":0.1' } do
      assert.matches(piece, body, 1, true)
      assert.matches(piece, out, 1, true)
    end
    if math.type then -- Lua 5.3+: 64-bit integers (on LuaJIT a number is a double)
      assert.matches('"ext":9007199254740993', body, 1, true)
      assert.matches('"ext":9007199254740993', out, 1, true)
    end
    assert.is_nil(out:find("e+14", 1, true), out)
  end)

  it("versori and qovery subcommands reach their routes", function()
    local s = e.seed
    local code, out, err = run(vendor_env("versori"), { "versori", "create-connection-version",
      "--organisation-id", s.versori.organisation_id, "--connection-id", s.versori.connection_id, "--name", "v2.1.0" })
    assert.are.equal(0, code, err)
    assert.is_table(cjson.decode(out).result)
    -- either of the operation's credentials will do (Bearer token or cookie)
    local token_only = vendor_env("versori")
    token_only.VERSORI_COOKIE = ""
    code, out, err = run(token_only, { "versori", "create-connection-version", "--organisation-id",
      s.versori.organisation_id, "--connection-id", s.versori.connection_id, "--name", "v2.2.0" })
    assert.are.equal(0, code, err)
    assert.is_table(cjson.decode(out).result)
    code, out, err = run(vendor_env("qovery"), { "qovery", "clone-application", "--application-id",
      s.qovery.application_id, "--name", "web-preview", "--environment-id", s.qovery.environment_id })
    assert.are.equal(0, code, err)
    assert.is_table(cjson.decode(out).result)
    -- one request each that acts (a create may look its key up first: a GET)
    local acting = 0
    for _, r in ipairs(e:requests()) do if r.method ~= "GET" then acting = acting + 1 end end
    assert.are.equal(3, acting)
  end)

  it("Kontent: KONTENT_SUBSCRIPTION_API_KEY and KONTENT_SUBSCRIPTION_ID make clones adoptable", function()
    local env = kontent_env()
    env.KONTENT_SUBSCRIPTION_API_KEY = e.credentials.kontent.subscription_api_key
    env.KONTENT_SUBSCRIPTION_ID = e.seed.kontent.subscription_id
    local argv = { "kontent", "clone-environment", "--environment-id", e.seed.kontent.environment_id,
      "--name", "PR 7", "--if-exists", "adopt" }
    local code, out, err = run(env, argv)
    assert.are.equal(0, code, err)
    local first = cjson.decode(out).result
    code, out, err = run(env, argv)
    assert.are.equal(0, code, err)
    local second = cjson.decode(out).result
    assert.is_true(second.adopted)
    assert.are.equal(first.id, second.id)
    assert.is_nil(out:find(e.credentials.kontent.subscription_api_key, 1, true))
    assert.are.equal(1, e:stats().by_operation["kontent.clone_environment"])
    -- without the key: refused before sending, and the message says what is missing
    code, out = run(kontent_env(), argv)
    assert.are.equal(3, code)
    assert.matches("subscription_api_key", cjson.decode(out).error.message, 1, true)
  end)

  it("a key held twice: exit 4, kind conflict, reason ambiguous, the matches' ids; text says adopted", function()
    local env = kontent_env()
    env.KONTENT_SUBSCRIPTION_API_KEY = e.credentials.kontent.subscription_api_key
    env.KONTENT_SUBSCRIPTION_ID = e.seed.kontent.subscription_id
    local argv = { "kontent", "clone-environment", "--environment-id", e.seed.kontent.environment_id,
      "--name", "Twin", "--no-reconcile" }
    assert.are.equal(0, (run(env, argv)))
    assert.are.equal(0, (run(env, argv))) -- Kontent's names are not unique: two
    argv[#argv] = "--if-exists"
    argv[#argv + 1] = "adopt"
    local code, out = run(env, argv)
    assert.are.equal(4, code, out)
    local doc = cjson.decode(out).error
    assert.are.equal("conflict", doc.kind)
    assert.are.equal("ambiguous", doc.reason)
    assert.are.equal(2, #doc.matches)
    assert.is_string(doc.matches[1])
    -- a single match, in text: the head line says it was adopted
    local v = vendor_env("versori")
    local s = e.seed.versori
    local vargv = { "versori", "clone-environment", "--organisation-id", s.organisation_id, "--project-id",
      s.project_id, "--old-env-name", "production", "--new-env-name", "once", "--if-exists", "adopt",
      "--output", "text" }
    assert.are.equal(0, (run(v, vargv)))
    local vcode, vout = run(v, vargv)
    assert.are.equal(0, vcode, vout)
    assert.matches("adopted (it existed) in environments of", vout, 1, true)
  end)

  it("--if-exists adopt: run twice, the second creates nothing and says adopted; --no-reconcile sends one", function()
    local s = e.seed
    local argv = { "qovery", "clone-application", "--application-id", s.qovery.application_id,
      "--name", "pr-42", "--environment-id", s.qovery.environment_id, "--if-exists", "adopt" }
    local code, out, err = run(vendor_env("qovery"), argv)
    assert.are.equal(0, code, err)
    local first = cjson.decode(out).result
    assert.is_nil(first.adopted)
    code, out, err = run(vendor_env("qovery"), argv)
    assert.are.equal(0, code, err)
    local second = cjson.decode(out).result
    assert.is_true(second.adopted)
    assert.are.equal(first.id, second.id)
    assert.are.equal(1, e:stats().by_operation["qovery.clone_application"])
    e:reset()
    code, out, err = run(vendor_env("qovery"), { "qovery", "clone-application", "--application-id",
      s.qovery.application_id, "--name", "pr-43", "--environment-id", s.qovery.environment_id, "--no-reconcile" })
    assert.are.equal(0, code, err)
    assert.are.equal("pr-43", cjson.decode(out).result.name)
    assert.are.equal(1, e:stats().requests)
    -- a bad value, or an operation with no lookup: usage errors, nothing sent
    code = run(vendor_env("qovery"), { "qovery", "clone-application", "--application-id", s.qovery.application_id,
      "--name", "pr-44", "--environment-id", s.qovery.environment_id, "--if-exists", "merge" })
    assert.are.equal(2, code)
    code, out = run(vendor_env("qovery"), { "qovery", "get-application", "--application-id",
      s.qovery.application_id, "--if-exists", "adopt", "--output", "json" })
    assert.are.equal(2, code)
    assert.are.equal("--if-exists", cjson.decode(out).error.flag)
    assert.are.equal(1, e:stats().requests)
  end)

  it("--output text prints a summary, hiding keys; JSON never echoes the credential", function()
    local code, out, err = run(kontent_env(), { "kontent", "clone-environment", "--environment-id",
      e.seed.kontent.environment_id, "--name", "Text", "--wait", "--poll-interval", "0.1", "--output", "text" })
    assert.are.equal(0, code, err)
    assert.matches("^kontent clone%-environment: ok, cloning done after %d+ s\n", out)
    assert.matches("\n  id%s+%x+%-", out)
    assert.is_nil(out:find(e.credentials.kontent.api_key, 1, true))
    local _, json = run(kontent_env(), { "kontent", "clone-environment", "--environment-id",
      e.seed.kontent.environment_id, "--name", "Json" })
    -- the emulator echoes the management key it was called with, as Kontent does
    assert.are.equal("***", assert(cjson.decode(json)).result.management_api_key)
    assert.is_nil(json:find(e.credentials.kontent.api_key, 1, true))
  end)
end)

describe("envclone help", function()
  it("lists the vendors and operations, and each vendor's operations", function()
    local code, out = run(bare_env(), { "--help" })
    assert.are.equal(0, code)
    for _, op in ipairs(envclone.operations) do
      assert.truthy(out:find(kebab(op.name), 1, true), op.name)
    end
    assert.matches("Exit status: 0 success", out)
    local vcode, vout = run(bare_env(), { "kontent", "--help" })
    assert.are.equal(0, vcode)
    assert.matches("delete%-environment%s+DELETE%s+/projects/{environment_id}", vout)
    assert.is_nil(vout:find("create-environment", 1, true))
  end)

  it("every operation's --help shows each field of the table: flag, type, format, required", function()
    for _, op in ipairs(envclone.operations) do
      local code, out, err = run(bare_env(), { op.vendor, kebab(op.name), "--help" })
      assert.are.equal(0, code, err)
      assert.truthy(out:find(op.method .. " " .. op.path, 1, true), op.name)
      if op.page then assert.truthy(out:find("Vendor page: " .. op.page, 1, true), op.name .. " page") end
      local summary = op.summary or op.description
      if summary then
        assert.truthy(out:gsub("%s+", " "):find(summary:gsub("%s+", " "), 1, true), op.name .. " summary")
      end
      for _, f in ipairs(op.fields) do
        -- the field's block: its flag line and the indented lines under it
        local head, body = out:match("\n(  %-%-" .. kebab(f.name):gsub("%-", "%%-") .. "%f[%s][^\n]*)\n(.-)\n  %S")
        assert.is_string(head, op.name .. ": no flag for " .. f.name)
        body = body:gsub("%s+", " ")
        assert.are.equal(f.required, head:find(" %*$") ~= nil, op.name .. "." .. f.name .. " required mark")
        assert.truthy(body:find(f.type == "table (object)" and "JSON object" or f.type, 1, true), f.name .. " type")
        if f.format then assert.truthy(body:find(f.format, 1, true), f.name .. " format") end
        if f.charset then assert.truthy(body:find("only " .. f.charset, 1, true), f.name .. " charset") end
        if f.description then
          assert.truthy(body:find(f.description:gsub("%s+", " "), 1, true), f.name .. " description")
        end
      end
      assert.are.equal(envclone.waiters[op.vendor .. "." .. op.name] ~= nil, out:find("--wait ", 1, true) ~= nil)
    end
  end)

  it("--version prints envclone's version and libcurl's, exit 0, nothing sent", function()
    local core = require("envclone.core")
    local code, out, err = run(bare_env(), { "--version" })
    assert.are.equal(0, code, err)
    assert.are.equal("", err)
    assert.are.equal("envclone " .. core.version .. "\n" .. core.transport_version() .. "\n", out)
    assert.are.equal(envclone._VERSION, "envclone " .. core.version)
    assert.matches("^libcurl/", core.transport_version())
    assert.are.equal(0, e:stats().requests)
  end)

  it("no field flag is shadowed by a command-line option", function()
    local _, out = run(bare_env(), { "--help" })
    local options = {}
    for flag in out:gmatch("\n  (%-%-[%w-]+)") do options[flag] = true end
    assert.is_true(options["--wait"] and options["--output"] and true)
    for _, op in ipairs(envclone.operations) do
      for _, f in ipairs(op.fields) do
        assert.is_nil(options["--" .. kebab(f.name)], op.name .. "." .. f.name)
        assert.is_nil(options["--no-" .. kebab(f.name)], op.name .. "." .. f.name)
      end
    end
  end)
end)

describe("envclone exit codes", function()
  it("2: usage errors, one line on stderr, nothing sent", function()
    for _, args in ipairs{
      {},
      { "nobody", "clone" },
      { "kontent", "nope" },
      { "kontent", "rename-environment", "--environment-id", e.seed.kontent.environment_id, "--nmae", "x" },
      { "kontent", "get-environment", "--environment-id", e.seed.kontent.environment_id, "--wait" },
      { "kontent", "clone-environment", "--environment-id", e.seed.kontent.environment_id, "--name", "x",
        "--copy-data-options.content-items-assets=maybe" },
      { "kontent", "get-environment", "--environment-id" },
      { "kontent", "get-environment", "--output", "yaml" },
    } do
      local code, out, err = run(kontent_env(), args)
      assert.are.equal(2, code, table.concat(args, " "))
      assert_error_doc(out, "usage")
      if #args > 0 then
        assert.matches("^envclone: [^\n]+\n$", err)
      else
        assert.matches("^usage: envclone", err)
      end
    end
    assert.are.equal(0, e:stats().requests)
  end)

  it("2: an unknown flag close to a known one gets a did-you-mean, nothing sent", function()
    local id = e.seed.kontent.environment_id
    for _, case in ipairs{
      { { "kontent", "rename-environment", "--environment-id", id, "--nmae", "x" }, "--nmae", "--name" },
      { { "kontent", "rename-environment", "--environment-id", id, "--nmae=x" }, "--nmae", "--name" },
      { { "kontent", "get-environment", "--enviroment-id", id }, "--enviroment-id", "--environment-id" },
      { { "kontent", "get-environment", "--environment-id", id, "--outptu", "json" }, "--outptu", "--output" },
      { { "kontent", "clone-environment", "--environment-id", id, "--name", "x", "--wiat" }, "--wiat", "--wait" },
      { { "batch", "x.json", "--max-inflight", "2" }, "--max-inflight", "--max-in-flight" },
    } do
      local code, out, err = run(kontent_env(), case[1])
      assert.are.equal(2, code, table.concat(case[1], " "))
      assert_error_doc(out, "usage")
      assert.are.equal("envclone: unknown option '" .. case[2] .. "' (did you mean '" .. case[3] .. "'?)\n", err)
    end
    -- nothing close: no suggestion, the hint as before
    local code, _, err = run(kontent_env(), { "kontent", "get-environment", "--environment-id", id, "--zzzzzz" })
    assert.are.equal(2, code)
    assert.matches("^envclone: unknown option '%-%-zzzzzz' for kontent get%-environment %(try ", err)
    assert.is_nil(err:find("did you mean", 1, true))
    assert.are.equal(0, e:stats().requests)
  end)

  it("2: a bad client option names its environment variable or flag, without a Lua source position", function()
    local id = e.seed.kontent.environment_id
    local env = kontent_env()
    env.KONTENT_API_KEY = "short"
    local code, out, err = run(env, { "kontent", "get-environment", "--environment-id", id })
    assert.are.equal(2, code)
    assert_error_doc(out, "usage")
    assert.are.equal("envclone: KONTENT_API_KEY: must be 8 to 8192 characters long\n", err)
    env = kontent_env()
    env.ENVCLONE_KONTENT_URL = "ftp://127.0.0.1/"
    code, out, err = run(env, { "kontent", "get-environment", "--environment-id", id })
    assert.are.equal(2, code)
    assert_error_doc(out, "usage")
    assert.are.equal("envclone: ENVCLONE_KONTENT_URL: must start with http:// or https://\n", err)
    code, out, err = run(kontent_env(), { "kontent", "get-environment", "--environment-id", id, "--base-url", "x" })
    assert.are.equal(2, code)
    assert_error_doc(out, "usage")
    assert.matches("^envclone: %-%-base%-url: must start with http", err)
    for _, flag in ipairs{ "--wait-timeout", "--poll-interval" } do
      code, out, err = run(kontent_env(), { "kontent", "clone-environment", "--environment-id", id, "--name", "x",
        "--wait", flag, "-1" })
      assert.are.equal(2, code)
      assert_error_doc(out, "usage")
      assert.are.equal("envclone: " .. flag .. " must be a positive number of seconds, got '-1'\n", err)
    end
    assert.are.equal(0, e:stats().requests)
  end)

  it("2: no credential is a usage error, before anything is sent", function()
    local code, _, err = run(bare_env(), { "kontent", "get-environment", "--environment-id",
      e.seed.kontent.environment_id, "--base-url", e.base_urls.kontent })
    assert.are.equal(2, code)
    assert.matches("needs KONTENT_API_KEY", err)
    assert.are.equal(0, e:stats().requests)
  end)

  it("3: validation, nothing sent", function()
    local code, out, err = run(kontent_env(), { "kontent", "rename-environment",
      "--environment-id", e.seed.kontent.environment_id, "--name", ("x"):rep(201) })
    assert.are.equal(3, code)
    assert_error_doc(out, "validation")
    -- the flag the user typed, then the library's name for it
    assert.matches("%-%-name %(field 'name'%) must be 1%-200 characters", err)
    local code2, _, err2 = run(kontent_env(), { "kontent", "get_environment", "environment_id=x", "colour=red" })
    assert.are.equal(3, code2)
    assert.matches("unknown field 'colour'", err2)
    assert.are.equal(0, e:stats().requests)
  end)

  it("4: the vendor's HTTP error; the credential is never printed", function()
    local code, out, err = run(kontent_env(), { "kontent", "delete-environment",
      "--environment-id", e.seed.kontent.environment_id })
    assert.are.equal(4, code)
    assert_error_doc(out, "http")
    assert.matches("^[^\n]*http 400 %(code 233%)[^\n]*\n$", err)
    local env = kontent_env()
    env.KONTENT_API_KEY = "wrong-but-secret-key"
    local code2, _, err2 = run(env, { "kontent", "get-environment", "--environment-id", e.seed.kontent.environment_id })
    assert.are.equal(4, code2)
    assert.matches("http 401", err2)
    assert.is_nil(err2:find("wrong-but-secret-key", 1, true))
  end)

  it("5: transport (nothing listens)", function()
    local socket = require("socket")
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    local code, out, err = run(kontent_env(), { "kontent", "get-environment", "--environment-id",
      e.seed.kontent.environment_id, "--base-url", "http://127.0.0.1:" .. port .. "/kontent/v2", "--no-retry" })
    assert.are.equal(5, code)
    assert_error_doc(out, "transport")
    assert.matches("transport", err)
  end)

  it("6: the wait timed out; stderr names the clone that was created", function()
    e:config{ kontent_clone_seconds = 30 }
    local code, out, err = run(kontent_env(), { "kontent", "clone-environment", "--environment-id",
      e.seed.kontent.environment_id, "--name", "Slow", "--wait", "--wait-timeout", "0.5", "--poll-interval", "0.1" })
    assert.are.equal(6, code)
    assert_error_doc(out, "timeout")
    local id = err:match("%(created ([%x-]+)%)\n$")
    assert.is_string(id, err)
    assert.are.equal(1, e:stats().applied.creates)
  end)

  it("7: the wait ended in a failed state", function()
    e:config{ kontent_clone_outcome = "failed", kontent_clone_seconds = 0.1 }
    local code, _, err = run(kontent_env(), { "kontent", "clone-environment", "--environment-id",
      e.seed.kontent.environment_id, "--name", "Doomed", "--wait", "--poll-interval", "0.1" })
    assert.are.equal(7, code, err)
    assert.matches("cloning failed", err)
    assert.is_nil(err:find("200", 1, true), err) -- a failed state is not an HTTP status
  end)
end)

describe("envclone output that cannot be written", function()
  -- Runs bin/envclone under bash with stdout sent where `redirect` says
  -- ("> /dev/full", "| true" with SIGPIPE ignored); returns exit code and stderr.
  local function run_to(env, args, redirect)
    local err, codefile = os.tmpname(), os.tmpname()
    local parts = { "env" }
    for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. emu.quote(v) end
    parts[#parts + 1] = os.getenv("ENVCLONE_LUA") or "lua5.4"
    parts[#parts + 1] = "bin/envclone"
    for _, a in ipairs(args) do parts[#parts + 1] = emu.quote(a) end
    local script = "trap '' PIPE; " .. table.concat(parts, " ") .. " 2>" .. err .. " </dev/null " .. redirect
      .. "; echo ${PIPESTATUS[0]} >" .. codefile
    os.execute("bash -c " .. emu.quote(script))
    local code = tonumber((emu.read_file(codefile):gsub("%s+$", "")))
    local stderr = emu.read_file(err)
    os.remove(err)
    os.remove(codefile)
    return code, stderr
  end

  it("stdout on a full disk or a closed pipe: non-zero exit and one line on stderr", function()
    local id = e.seed.kontent.environment_id
    local batch = os.tmpname()
    local f = assert(io.open(batch, "w"))
    f:write('[{"vendor": "kontent", "operation": "get-environment", "args": {"environment_id": "' .. id .. '"}}]')
    f:close()
    -- "| true": the reader has gone before the CLI writes (at the end, after a call)
    for _, redirect in ipairs{ ">/dev/full", "| true" } do
      for _, args in ipairs{
        { "kontent", "get-environment", "--environment-id", id, "--output", "json" },
        { "kontent", "get-environment", "--environment-id", id, "--output", "text" },
        { "--help" },
        { "list" },
        { "--version" },
        { "batch", batch },
      } do
        local what = redirect .. ": " .. table.concat(args, " ")
        local code, err = run_to(kontent_env(), args, redirect)
        assert.is_true(code ~= 0, what)
        assert.matches("^envclone: cannot write to stdout: [^\n]+\n$", err, 1, what)
      end
    end
    os.remove(batch)
  end)
end)

describe("envclone credentials", function()
  local function write(path, text, mode)
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    assert(os.execute("chmod " .. mode .. " " .. path))
  end

  it("--credentials FILE with mode 0600 supplies the credential", function()
    local path = os.tmpname()
    write(path, "# kontent\n\nexport KONTENT_API_KEY=" .. e.credentials.kontent.api_key .. "\n", "600")
    local env = kontent_env()
    env.KONTENT_API_KEY = "wrong-key-in-the-environment"
    local code, out, err = run(env, { "kontent", "get-environment", "--environment-id",
      e.seed.kontent.environment_id, "--credentials", path })
    os.remove(path)
    assert.are.equal(0, code, err)
    assert.matches('"environment":"Production"', out)
  end)

  it("--credentials FILE: one pair of surrounding quotes is not part of the value", function()
    local path = os.tmpname()
    local key = e.credentials.kontent.api_key
    for _, line in ipairs{ 'KONTENT_API_KEY="' .. key .. '"', "KONTENT_API_KEY='" .. key .. "'" } do
      write(path, line .. "\n", "600")
      local code, out, err = run(bare_env(), { "kontent", "get-environment", "--environment-id",
        e.seed.kontent.environment_id, "--credentials", path, "--base-url", e.base_urls.kontent })
      assert.are.equal(0, code, line .. ": " .. err)
      assert.matches('"environment":"Production"', out)
    end
    write(path, 'KONTENT_API_KEY="short"\n', "600")
    local code, _, err = run(bare_env(), { "kontent", "get-environment", "--environment-id",
      e.seed.kontent.environment_id, "--credentials", path, "--base-url", e.base_urls.kontent })
    assert.are.equal(2, code)
    assert.are.equal("envclone: KONTENT_API_KEY in " .. path .. ": must be 8 to 8192 characters long\n", err)
    write(path, 'KONTENT_API_KEY="' .. key .. '"\n', "640") -- quotes or not, still only 0600
    code = run(bare_env(), { "kontent", "get-environment", "--environment-id",
      e.seed.kontent.environment_id, "--credentials", path, "--base-url", e.base_urls.kontent })
    os.remove(path)
    assert.are.equal(2, code)
    assert.are.equal(2, #e:requests())
  end)

  it("--credentials FILE reads .env syntax: inline comments, quotes, spaces around =", function()
    local read = require("envclone.cli.credentials").read
    local path = os.tmpname()
    for line, want in pairs{
      ["KONTENT_API_KEY=abc  # a comment"] = "abc",
      ["KONTENT_API_KEY=abc\t# a comment"] = "abc",
      ["KONTENT_API_KEY = abc"] = "abc",
      ["KONTENT_API_KEY = \"abc\""] = "abc",
      ["KONTENT_API_KEY='abc'"] = "abc",
      ["  export KONTENT_API_KEY = 'abc'  # comment"] = "abc",
      ["KONTENT_API_KEY=\"a#b c\"  # comment"] = "a#b c",
      ["KONTENT_API_KEY='a # b'"] = "a # b",
      ["KONTENT_API_KEY=a#b"] = "a#b", -- no space before #: part of the value
      ["KONTENT_API_KEY=abc   "] = "abc",
      ["KONTENT_API_KEY=\"\""] = "",
      ["KONTENT_API_KEY="] = "",
      ["KONTENT_API_KEY=\"abc"] = "\"abc", -- no closing quote: taken as written
    } do
      write(path, line .. "\n", "600")
      assert.are.same({ KONTENT_API_KEY = want }, read(path), line)
    end
    -- end to end: the comment and the quotes do not reach the vendor
    local key = e.credentials.kontent.api_key
    write(path, "# kontent\nKONTENT_API_KEY = \"" .. key .. "\"   # from the emulator\n", "600")
    local code, out, err = run(bare_env(), { "kontent", "get-environment", "--environment-id",
      e.seed.kontent.environment_id, "--credentials", path, "--base-url", e.base_urls.kontent })
    assert.are.equal(0, code, err)
    assert.matches('"environment":"Production"', out)
    write(path, "KONTENT_API_KEY=" .. e.credentials.kontent.api_key .. " # comment\n", "644") -- still only 0600
    code = run(bare_env(), { "kontent", "get-environment", "--environment-id",
      e.seed.kontent.environment_id, "--credentials", path, "--base-url", e.base_urls.kontent })
    os.remove(path)
    assert.are.equal(2, code)
    assert.are.equal(1, #e:requests())
  end)

  it("refuses a file others can read, and never prints what is in it", function()
    local path = os.tmpname()
    local secret = "kontent-SECRET-in-a-file-77"
    write(path, "KONTENT_API_KEY=" .. secret .. "\n", "644")
    local code, out, err = run(kontent_env(), { "kontent", "get-environment", "--environment-id",
      e.seed.kontent.environment_id, "--credentials", path })
    assert.are.equal(2, code)
    assert_error_doc(out, "usage")
    assert.matches("must be 0600", err)
    write(path, "KONTENT_KEY=" .. secret .. "\n", "600") -- misspelt name
    local code2, _, err2 = run(kontent_env(), { "kontent", "get-environment", "--environment-id",
      e.seed.kontent.environment_id, "--credentials", path })
    os.remove(path)
    assert.are.equal(2, code2)
    assert.matches("line 1: unknown name KONTENT_KEY", err2)
    assert.is_nil((err .. err2):find(secret, 1, true))
    assert.are.equal(0, e:stats().requests)
  end)

  it("never reads a credential from the command line", function()
    local env = kontent_env()
    env.KONTENT_API_KEY = nil
    local code, _, err = run(env, { "kontent", "get_environment", "environment_id=" .. e.seed.kontent.environment_id,
      "api_key=" .. e.credentials.kontent.api_key })
    assert.are.equal(2, code)
    assert.is_nil(err:find(e.credentials.kontent.api_key, 1, true))
    local code2, _, err2 = run(env, { "kontent", "get-environment", "--environment-id", e.seed.kontent.environment_id,
      "--api-key", e.credentials.kontent.api_key })
    assert.are.equal(2, code2)
    assert.is_nil(err2:find(e.credentials.kontent.api_key, 1, true))
    assert.are.equal(0, e:stats().requests)
  end)

  it("ignores proxies named in the environment: the credential goes to base_url only", function()
    local socket = require("socket")
    local trap = assert(socket.bind("127.0.0.1", 0))
    local _, port = trap:getsockname()
    local env = kontent_env()
    env.http_proxy = "http://127.0.0.1:" .. port
    env.HTTP_PROXY, env.ALL_PROXY = env.http_proxy, env.http_proxy
    local code, out, err = run(env, { "kontent", "get-environment", "--environment-id", e.seed.kontent.environment_id })
    assert.are.equal(0, code, err)
    assert.matches('"environment":"Production"', out)
    trap:settimeout(0)
    assert.is_nil(trap:accept(), "the proxy was contacted")
    trap:close()
    assert.are.equal(1, e:stats().requests)
  end)
end)

describe("envclone list and emulator", function()
  it("lists every operation on one line", function()
    local code, out = run(bare_env(), { "list" })
    assert.are.equal(0, code)
    local n = 0
    for _ in out:gmatch("[^\n]+") do n = n + 1 end
    -- every operation, and every waiter as a command of its own
    local waiters, seen = 0, {}
    for _, op in ipairs(envclone.operations) do
      local name = op.waiter and op.vendor .. "." .. op.waiter.name
      if name and not seen[name] then seen[name], waiters = true, waiters + 1 end
    end
    assert.is_true(waiters >= 1)
    assert.are.equal(#envclone.operations + waiters + 1, n)
    assert.matches("droplit%s+create%-environment%s+POST%s+ecosystemId%*:string", out)
    assert.matches("kontent%s+wait%-for%-cloning%s+GET%s+environment_id%*:string", out)
  end)

  -- The emulator is Lua 5.4 code (as everywhere in the suite, it runs under
  -- lua5.4 even when the specs run under LuaJIT): its lines come from a lua5.4 child.
  local function emulator_cli_env(url)
    local p = assert(io.popen("lua5.4 -e " .. emu.quote("package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path "
      .. "for _, l in ipairs(require('envclone.emulator.main').cli_env(" .. string.format("%q", url) .. ")) do "
      .. "print(l) end")))
    local lines = {}
    for l in p:lines() do lines[#lines + 1] = l end
    p:close()
    assert.is_true(#lines > 0, "no lines from the emulator")
    return lines
  end

  it("envclone emulator --help names the CLI's variables and the demo credentials; they reach the emulator",
    function()
    local code, help = run(bare_env(), { "emulator", "--help" }, "lua5.4")
    assert.are.equal(0, code)
    assert.matches("%(default on%)", help)
    assert.is_nil(help:find("(default true)", 1, true))
    assert.matches("export KONTENT_API_KEY=" .. e.credentials.kontent.api_key:gsub("%-", "%%-") .. "\n", help)
    assert.matches("export ENVCLONE_KONTENT_URL=http://HOST:PORT/kontent/v2\n", help)
    -- every vendor: the lines for this emulator are enough for a call that needs a credential
    local env = bare_env()
    for _, line in ipairs(emulator_cli_env(e.url)) do
      local name, value = line:match("^([%w_]+)=(.*)$")
      env[name] = value
    end
    local calls = {
      { "kontent", "get-environment", "--environment-id", e.seed.kontent.environment_id },
      { "versori", "create-connection-version", "--organisation-id", e.seed.versori.organisation_id,
        "--connection-id", e.seed.versori.connection_id, "--name", "v9.9.9" },
    }
    for _, args in ipairs(calls) do
      local c, _, err = run(env, args)
      assert.are.equal(0, c, table.concat(args, " ") .. ": " .. err)
    end
  end)

  -- The README's commands (the tour's included) run as pasted: spec/readme_blocks_spec.lua.

  it("envclone emulator starts the emulator, with a fault plan", function()
    local port_file = os.tmpname()
    os.remove(port_file)
    local plan = '{"rules":[{"operation":"kontent.get_environment","queue":["503"]}]}'
    local p = assert(io.popen("exec lua5.4 bin/envclone emulator --port 0 --port-file " .. port_file
      .. " --faults " .. emu.quote(plan) .. " --quiet --max-lifetime 60 >/dev/null 2>&1 </dev/null & echo $!"))
    local pid = tonumber(p:read("*l"))
    p:close()
    local port = tonumber(emu.wait_for_port_file(pid, port_file, "^(%d+)\n", 10))
    local other = setmetatable({ pid = pid, port_file = port_file, log_file = os.tmpname(),
      url = "http://127.0.0.1:" .. tostring(port) }, getmetatable(e))
    local status = port and other:request("GET", "/_emulator/stats")
    local env = kontent_env()
    env.ENVCLONE_KONTENT_URL = other.url .. "/kontent/v2"
    local code, _, err = run(env, { "kontent", "get-environment", "--environment-id", e.seed.kontent.environment_id,
      "--no-retry" })
    other:stop()
    assert.is_number(port)
    assert.are.equal(200, status)
    assert.are.equal(4, code)
    assert.matches("http 503", err)
  end)
end)
