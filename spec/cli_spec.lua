-- The `envclone` command line against the emulator: arguments, exit codes,
-- JSON output, and credentials taken from the environment only.
local emu = require("spec.support.emu")
local cjson = require("cjson.safe")

local e

-- Runs bin/envclone with env vars `env`; returns exit code, stdout, stderr.
local function run(env, args)
  local out, err = os.tmpname(), os.tmpname()
  local parts = { "env" }
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. emu.quote(v) end
  parts[#parts + 1] = os.getenv("ENVCLONE_LUA") or "lua5.4"
  parts[#parts + 1] = "bin/envclone"
  for _, a in ipairs(args) do parts[#parts + 1] = emu.quote(a) end
  local ok, how, code = os.execute(table.concat(parts, " ") .. " >" .. out .. " 2>" .. err)
  if type(ok) == "number" then code = ok / 256 end -- Lua 5.1
  if ok == true then code = 0 end
  local stdout, stderr = emu.read_file(out), emu.read_file(err)
  os.remove(out)
  os.remove(err)
  return code, stdout, stderr, how
end

local function kontent_env()
  return { KONTENT_API_KEY = e.credentials.kontent.api_key, ENVCLONE_KONTENT_URL = e.base_urls.kontent,
    ENVCLONE_BUILD = os.getenv("ENVCLONE_BUILD") or "build" }
end

setup(function() e = emu.start{ kontent_clone_seconds = 0.2 } end)
teardown(function() if e then e:stop() end end)
before_each(function() e:reset() end)

describe("envclone command line", function()
  it("clones with typed arguments and prints the result as JSON", function()
    local code, out, err = run(kontent_env(), { "kontent", "clone_environment",
      "environment_id=" .. e.seed.kontent.environment_id, "name=From the shell",
      "roles_to_activate=" .. e.seed.kontent.role_id, 'copy_data_options={"content_items_assets":false}',
      "--wait" })
    assert.are.equal(0, code, err)
    local doc = assert(cjson.decode(out))
    assert.is_string(doc.result.id)
    assert.are.equal("done", doc.state.cloning_state)
    local log = e:requests()
    local clone
    for _, r in ipairs(log) do if r.operation == "kontent.clone_environment" then clone = r end end
    assert.are.equal('{"name":"From the shell","roles_to_activate":["' .. e.seed.kontent.role_id
      .. '"],"copy_data_options":{"content_items_assets":false}}', clone.body)
  end)

  it("exits 2 on a validation error and sends nothing", function()
    local code, out, err = run(kontent_env(), { "kontent", "rename_environment",
      "environment_id=" .. e.seed.kontent.environment_id, "name=" .. ("x"):rep(201) })
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("field 'name' must be 1%-200 characters", err)
    assert.are.equal(0, e:stats().requests)
    local code2, _, err2 = run(kontent_env(), { "kontent", "get_environment", "environment_id=x", "colour=red" })
    assert.are.equal(2, code2)
    assert.matches("unknown field 'colour'", err2)
  end)

  it("exits 1 with the vendor's error, and never prints the credential", function()
    local code, out, err = run(kontent_env(), { "kontent", "delete_environment",
      "environment_id=" .. e.seed.kontent.environment_id })
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("http 400 %(code 233%)", err)
    local env = kontent_env()
    env.KONTENT_API_KEY = "wrong-but-secret-key"
    local code2, _, err2 = run(env, { "kontent", "get_environment",
      "environment_id=" .. e.seed.kontent.environment_id })
    assert.are.equal(1, code2)
    assert.matches("http 401", err2)
    assert.is_nil(err2:find("wrong-but-secret-key", 1, true))
  end)

  it("reads credentials only from the environment", function()
    local env = kontent_env()
    env.KONTENT_API_KEY = nil
    local code, _, err = run(env, { "kontent", "get_environment", "environment_id=" .. e.seed.kontent.environment_id,
      "api_key=" .. e.credentials.kontent.api_key })
    assert.are.equal(2, code)
    assert.matches("unknown field 'api_key'", err)
    assert.is_nil(err:find(e.credentials.kontent.api_key, 1, true))
    assert.are.equal(0, e:stats().requests)
  end)

  it("ignores proxies named in the environment: the credential goes to base_url only", function()
    local socket = require("socket")
    local trap = assert(socket.bind("127.0.0.1", 0))
    local _, port = trap:getsockname()
    local env = kontent_env()
    env.http_proxy = "http://127.0.0.1:" .. port
    env.HTTP_PROXY, env.ALL_PROXY = env.http_proxy, env.http_proxy
    local code, out, err = run(env, { "kontent", "get_environment",
      "environment_id=" .. e.seed.kontent.environment_id })
    assert.are.equal(0, code, err)
    assert.matches('"environment":"Production"', out)
    trap:settimeout(0)
    assert.is_nil(trap:accept(), "the proxy was contacted")
    trap:close()
    assert.are.equal(1, e:stats().requests)
  end)

  it("lists the operations, and explains usage", function()
    local code, out = run({ ENVCLONE_BUILD = os.getenv("ENVCLONE_BUILD") or "build" }, { "list" })
    assert.are.equal(0, code)
    local n = 0
    for _ in out:gmatch("\n[a-z]+%s+[a-z_]+%s+[A-Z]+") do n = n + 1 end
    assert.are.equal(9, n) -- ten lines; the first has no leading newline
    assert.matches("droplit%s+create_environment%s+POST%s+ecosystemId%*:string", out)
    local ucode, _, uerr = run({}, {})
    assert.are.equal(2, ucode)
    assert.matches("usage: envclone", uerr)
    local bcode, _, berr = run(kontent_env(), { "kontent", "nope" })
    assert.are.equal(2, bcode)
    assert.matches("unknown operation", berr)
  end)
end)
