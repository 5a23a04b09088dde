-- JSON that round-trips exactly in any locale (issue 11, inputs 1-4 and 6;
-- the command line's 4 and 5 are in cli_spec.lua). Requests go to the
-- emulator, which records the exact bytes it received; scripted answers
-- come from spec/support/hostile_server.lua. The locale cases run in a
-- child Lua under a de_DE.UTF-8 locale built with localedef
-- (spec/support/locale.lua), so they need nothing installed but `locales`.
local envclone = require("envclone")
local emu = require("spec.support.emu")
local hostile = require("spec.support.hostile")
local locale = require("spec.support.locale")

local has_integers = math.type ~= nil -- Lua 5.3+; on 5.1/LuaJIT every number is a double
local ENV = "8d20758c-d74c-4f59-ae04-ee928c0816b7"
local KEY = "json-spec-api-key-0123456789"

local e, srv

local function last_body()
  local log = e:requests()
  return log[#log].body
end

local function droplit() return e:client("droplit", nil, { retry = false }) end

local function kontent()
  return envclone.kontent{ api_key = KEY, base_url = srv.url .. "/v2", timeout = 5, retry = false }
end

-- Scripts a 200 JSON answer and reads it back through get_environment.
local function answer(body, status)
  srv:script(status or 200, { "Content-Type: application/json" }, body)
  return kontent():get_environment{ environment_id = ENV }
end

setup(function()
  e = emu.start()
  srv = hostile.start()
end)

teardown(function()
  if srv then srv:stop() end
  if e then e:stop() end
  locale.cleanup()
end)

before_each(function() e:reset() end)

-- A child script's helpers: check() prints FAIL lines, the parent wants none
-- and the final DONE.
local PRELUDE = [[
local function check(cond, what) if not cond then io.write("FAIL ", tostring(what), "\n") end end
local function german()
  assert(os.setlocale("de_DE.UTF-8", "numeric"), "de_DE.UTF-8 is not available")
  -- LuaJIT formats numbers itself; PUC Lua shows that C's printf now writes 1,5
  if not rawget(_G, "jit") then check(string.format("%.1f", 1.5) == "1,5", "the German locale is not in force") end
end
]]

local function run_child(code, env)
  local out, ok = locale.run(PRELUDE .. code .. "\nio.write('DONE\\n')\n", env)
  assert.is_true(ok, out)
  assert.is_nil(out:find("FAIL", 1, true), out)
  assert.matches("DONE\n$", out)
  return out
end

describe("input 1: requests under a German numeric locale", function()
  it("send 1.5 and [1.5,2.25], not 1,5 and [1,5,2,25]", function()
    run_child([[
      german()
      local envclone = require("envclone")
      local d = envclone.droplit{ token = os.getenv("TOKEN"), base_url = os.getenv("URL"), retry = false }
      local env, err = d:create_environment{ ecosystemId = os.getenv("ECO"),
        meta = { ratio = 1.5, dims = { 1.5, 2.25 } } }
      check(env, err)
      check(env and env.meta.ratio == 1.5, "ratio read back")
      check(env and #env.meta.dims == 2 and env.meta.dims[1] == 1.5 and env.meta.dims[2] == 2.25, "dims read back")
    ]], { TOKEN = e.credentials.droplit.token, URL = e.base_urls.droplit, ECO = e.seed.droplit.ecosystem_id })
    local body = last_body()
    assert.matches('"ratio":1.5', body, 1, true)
    assert.matches('"dims":[1.5,2.25]', body, 1, true)
  end)
end)

describe("input 2: answers read under a locale switched after loading, or before", function()
  local function read_in_child(order, body, checks)
    srv:script(200, { "Content-Type: application/json" }, body)
    return run_child([[
      local order = os.getenv("ORDER")
      if order == "german_then_c" then german() end
      local envclone = require("envclone")
      if order == "german_then_c" then
        assert(os.setlocale("C", "numeric"))
      else
        german()
      end
      local k = envclone.kontent{ api_key = os.getenv("KEY"), base_url = os.getenv("URL"), retry = false }
      local r, err = k:get_environment{ environment_id = os.getenv("ENV") }
      check(r, err)
      r = r or {}
    ]] .. checks, { ORDER = order, KEY = KEY, URL = srv.url .. "/v2", ENV = ENV })
  end

  for _, order in ipairs{ "load_then_german", "german_then_c" } do
    it(order .. ': {"ports":[80,443],"ratio":0.5} decodes', function()
      read_in_child(order, '{"ports":[80,443],"ratio":0.5}', [[
        check(type(r.ports) == "table" and #r.ports == 2, "two ports")
        check(r.ports[1] == 80 and r.ports[2] == 443, "80 and 443")
        check(r.ratio == 0.5, "ratio is 0.5")
      ]])
    end)

    it(order .. ": [80,443] is two integers, not 80.443", function()
      read_in_child(order, "[80,443]", [[
        check(#r == 2 and r[1] == 80 and r[2] == 443, "two numbers")
        if math.type then check(math.type(r[1]) == "integer", "80 is an integer") end
      ]])
    end)
  end
end)

describe("input 3: integers and floats are exact", function()
  it("a JSON integer is a Lua integer, exactly, up to 64 bits", function()
    local r = assert(answer('{"cpu":1250,"big":9007199254740993,"min":-9223372036854775808,'
      .. '"max":9223372036854775807,"float":1250.0,"exp":1e2,"huge":18446744073709551616}'))
    assert.are.equal(1250, r.cpu)
    if has_integers then
      assert.are.equal("integer", math.type(r.cpu))
      assert.are.equal(9007199254740993, r.big)
      assert.are.equal(math.mininteger, r.min)
      assert.are.equal(math.maxinteger, r.max)
      assert.are.equal("float", math.type(r.float), "1250.0 is written as a float")
      assert.are.equal("float", math.type(r.exp))
      assert.are.equal("float", math.type(r.huge), "past 64 bits: the nearest double")
    end
    assert.are.equal(18446744073709551616, r.huge)
  end)

  it("sends integers as written and floats in the shortest form that reads back the same", function()
    local meta = { cpu = 1250, tenth = 0.1, third = 1 / 3, big_float = 1e300, small = 5e-324, neg = -2.5 }
    if has_integers then
      meta.exact = 9007199254740993
      meta.max = math.maxinteger
      meta.one = 1.0
    end
    local env = assert(droplit():create_environment{ ecosystemId = e.seed.droplit.ecosystem_id, meta = meta })
    local body = last_body()
    for _, piece in ipairs{ '"cpu":1250', '"tenth":0.1', '"third":0.3333333333333333', '"big_float":1e+300',
      '"small":4.94065645841247e-324', '"neg":-2.5' } do
      assert.matches(piece, body, 1, true)
    end
    if has_integers then
      assert.matches('"exact":9007199254740993', body, 1, true)
      assert.matches('"max":9223372036854775807', body, 1, true)
      assert.matches('"one":1.0', body, 1, true)
      assert.are.equal("float", math.type(env.meta.one))
    end
    -- and the emulator's echo of meta reads back to the very same values
    for k, v in pairs(meta) do assert.are.equal(v, env.meta[k], k) end
  end)
end)

describe("input 4: an empty array stays an array", function()
  it("decodes [] to a table marked with envclone.array_mt, and {} to a plain table", function()
    local r = assert(answer('{"files":[],"labels":{},"nested":[[],{}],"list":[1,2]}'))
    assert.are.equal(envclone.array_mt, getmetatable(r.files))
    assert.is_nil(getmetatable(r.labels))
    assert.are.equal(envclone.array_mt, getmetatable(r.nested[1]))
    assert.is_nil(getmetatable(r.nested[2]))
    assert.are.equal(envclone.array_mt, getmetatable(r.list))
  end)

  it("re-sends what it decoded as it came: [] as [] and {} as {}", function()
    local r = assert(answer('{"files":[],"labels":{},"nested":[[],{}]}'))
    assert(droplit():create_environment{ ecosystemId = e.seed.droplit.ecosystem_id,
      meta = { files = r.files, labels = r.labels, nested = r.nested } })
    local body = last_body()
    assert.matches('"files":[]', body, 1, true)
    assert.matches('"labels":{}', body, 1, true)
    assert.matches('"nested":[[],{}]', body, 1, true)
  end)

  it("a Versori clone's empty files list is an array", function()
    local v = e:client("versori", nil, { retry = false })
    local project = assert(v:clone_environment{ organisation_id = e.seed.versori.organisation_id,
      project_id = e.seed.versori.project_id, oldEnvName = "production", newEnvName = "dev-json" })
    local seen = 0
    for _, env in ipairs(project.environments) do
      assert.are.equal(envclone.array_mt, getmetatable(env.files), env.name)
      assert.are.equal(0, #env.files)
      seen = seen + 1
    end
    assert.is_true(seen > 0)
  end)
end)

describe("input 6: lenient where the standard allows it", function()
  it("skips a UTF-8 byte-order mark before a 2xx body", function()
    local r = assert(answer("\239\187\191" .. '{"id":"new-1"}'))
    assert.are.equal("new-1", r.id)
  end)

  it("decodes a lone surrogate escape to U+FFFD, and a pair to its character", function()
    local r = assert(answer('{"id":"new-2","name":"a\\ud83db","low":"\\ude00","pair":"\\ud83d\\ude00",'
      .. '"high_then_other":"\\ud83d\\u0041"}'))
    assert.are.equal("new-2", r.id)
    assert.are.equal("a\239\191\189b", r.name)
    assert.are.equal("\239\191\189", r.low)
    assert.are.equal("\240\159\152\128", r.pair)
    assert.are.equal("\239\191\189A", r.high_then_other)
  end)

  it("keeps the raw text of a 2xx it cannot decode in err.body, secrets masked", function()
    local k = kontent()
    local raw = '{"id":"new-3","echo":"' .. KEY .. '","name":'
    srv:script(201, { "Content-Type: application/json" }, raw)
    local res, err = k:get_environment{ environment_id = ENV }
    assert.is_nil(res)
    assert.are.equal("decode", err.kind)
    assert.are.equal(201, err.status)
    assert.are.equal('{"id":"new-3","echo":"***","name":', err.body)
    assert.is_nil(tostring(err):find(KEY, 1, true))
    assert.matches("not valid JSON", err.message)
  end)

  it("a create answered with an undecodable 2xx says maybe_applied and keeps the body", function()
    srv:script(201, { "Content-Type: application/json" }, '{"id":"01HZY8K2V6Q4N3M5T7W9X0NEW1", oops')
    local d = envclone.droplit{ token = KEY, base_url = srv.url, timeout = 5, retry = false }
    local res, err = d:create_environment{ ecosystemId = e.seed.droplit.ecosystem_id }
    assert.is_nil(res)
    assert.are.equal("decode", err.kind)
    assert.is_true(err.maybe_applied)
    assert.matches("01HZY8K2V6Q4N3M5T7W9X0NEW1", err.body, 1, true)
  end)
end)

describe("core.json_decode / core.json_encode", function()
  local core = require("envclone.core")

  it("round-trip exactly", function()
    local text = '{"a":[],"b":{},"c":[1,2.5,"x",true,false,null],"d":-0.0001}'
    local v = assert(core.json_decode(text))
    local again = assert(core.json_decode(assert(core.json_encode(v))))
    assert.are.equal(envclone.array_mt, getmetatable(again.a))
    assert.is_nil(next(again.b))
    assert.is_nil(getmetatable(again.b))
    assert.are.equal(envclone.null, again.c[6])
    assert.are.equal(-0.0001, again.d)
  end)

  -- the decoder makes each table once its members are read, up to a bound
  -- (ec_jsondec.c, PENDING_MAX = 16), then grows it: both sides of the bound
  it("decode objects and arrays of any size, the last of duplicate keys winning", function()
    for _, n in ipairs{ 1, 2, 15, 16, 17, 33, 200 } do
      local keys, items = {}, {}
      for i = 1, n do
        keys[#keys + 1] = string.format('"k%d":%d', i, i)
        items[#items + 1] = string.format('{"i":%d,"a":[%d]}', i, i)
      end
      -- the duplicate of k1 comes last, after the bound when n > 16
      local obj = assert(core.json_decode("{" .. table.concat(keys, ",") .. ',"k1":"last"}'))
      local arr = assert(core.json_decode("[" .. table.concat(items, ",") .. "]"))
      assert.are.equal("last", obj.k1)
      assert.are.equal(n, #arr)
      assert.are.equal(envclone.array_mt, getmetatable(arr))
      for i = 1, n do
        if i > 1 then assert.are.equal(i, obj["k" .. i]) end
        assert.are.equal(i, arr[i].i)
        assert.are.same({ i }, arr[i].a)
        assert.are.equal(envclone.array_mt, getmetatable(arr[i].a))
      end
      local count = 0
      for _ in pairs(obj) do count = count + 1 end
      assert.are.equal(n, count)
      -- a fault after the members read so far leaves nothing behind
      local v, err = core.json_decode("[" .. table.concat(items, ",") .. ",]")
      assert.is_nil(v)
      assert.matches("at byte %d+$", err)
      v, err = core.json_decode("{" .. table.concat(keys, ",") .. ',"x"}')
      assert.is_nil(v)
      assert.matches("at byte %d+$", err)
    end
  end)

  it("refuse what is not JSON, with a position and no excerpt", function()
    for _, bad in ipairs{ "", "01", "1.", ".5", "+1", "[1,]", '{"a" 1}', "NaN", "[", '"\\x"', "[1] 2", "tru" } do
      local v, err = core.json_decode(bad)
      assert.is_nil(v, bad)
      assert.matches("^envclone.json_decode: .* at byte %d+$", err)
    end
    local v, err = core.json_encode({ 1, x = 2 })
    assert.is_nil(v)
    assert.matches("mixes", err)
    assert.is_nil((core.json_encode(0 / 0)))
  end)
end)

describe("answers of any size arrive whole", function()
  -- libcurl's receive buffer follows the answers a handle gets (1 KiB to
  -- 16 KiB, src/ec_curl.c): a large answer after small ones, and small
  -- ones after it, are read whole, one call after another and in a batch
  local function body_of(n)
    local items = {}
    for i = 1, n do items[i] = string.format('"item-%06d"', i) end
    return '{"id":"' .. ENV .. '","items":[' .. table.concat(items, ",") .. ']}'
  end
  local sizes = { 1, 40000, 2, 9000, 40000, 3 }

  it("one call after another, over one client", function()
    local k = kontent()
    for _, n in ipairs(sizes) do
      srv:script(200, { "Content-Type: application/json" }, body_of(n))
      local r = assert(k:get_environment{ environment_id = ENV })
      assert.are.equal(n, #r.items)
      assert.are.equal(string.format("item-%06d", n), r.items[n])
    end
  end)

  it("in a batch", function()
    local k = kontent()
    for _, n in ipairs(sizes) do
      srv:script(200, { "Content-Type: application/json" }, body_of(n))
      local b = envclone.batch{ max_in_flight = 1 }
      b:add(k, "get_environment", { environment_id = ENV })
      b:add(k, "get_environment", { environment_id = ENV })
      local results = b:run()
      for i = 1, 2 do
        assert.is_true(results[i].ok, tostring(results[i].err))
        assert.are.equal(n, #results[i].value.items)
      end
    end
  end)
end)
