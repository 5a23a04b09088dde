-- Issue 23, question 3: `lua_code_cache off` gives every request a Lua VM of
-- its own, so a limiter state kept in the VM lasts one request. envclone's
-- answer: with `rate_limit_dict` the state lives in the shared dict and the
-- limits hold (16 requests at once to one Kontent environment, against the
-- emulator enforcing Kontent's 10/s: no 429, one at a time); without it a
-- limited client logs a warning, once per worker. With the code cache on
-- (one VM per worker) there is nothing to warn about.
--
-- Part of the ctest "nginx" entry (busted --pattern=_test spec/nginx).
local socket = require("socket")
local emu = require("spec.support.emu")
local nginx = require("spec.support.nginx")

local WARNING = "lua_code_cache is off"

local e

-- An nginx, one worker, with the code cache `cache` ("on" or "off").
local function start(cache)
  local server = nginx.new()
  server:write_lua("envclone_code_cache_conf", { api_key = e.credentials.kontent.api_key,
    base_url = e.base_urls.kontent, environment_id = e.seed.kontent.environment_id })
  server:write_conf(server:conf{ workers = 1, http = { "lua_code_cache " .. cache .. ";" }, server = {
    "location /call { content_by_lua_block { require('spec.nginx.code_cache_app').handle() } }",
  } })
  server:start()
  return server
end

-- `n` requests to `path` at once (curl, in the background); their answers.
local function at_once(server, path, n)
  local url = emu.quote("http://127.0.0.1:" .. server.port .. path)
  local out = nginx.sh("for i in $(seq " .. n .. "); do curl -s -m 30 " .. url .. " & done; wait")
  local answers = {}
  for line in out:gmatch("[^\n]+") do answers[#answers + 1] = line end
  table.sort(answers)
  return answers
end

local function count(text, word)
  local n = 0
  for _ in text:gmatch(word:gsub("%p", "%%%0")) do n = n + 1 end
  return n
end

setup(function() e = emu.start{ kontent_rate_limit = true } end)
teardown(function() if e then e:stop() end end)
before_each(function() e:reset() end)

describe("lua_code_cache off", function()
  local server
  setup(function() server = start("off") end)
  teardown(function() if server then server:cleanup() end end)
  after_each(function() server:assert_no_lua_errors() end)

  it("with rate_limit_dict the limits hold: 16 requests at once, no 429, one at a time", function()
    local t0 = socket.gettime()
    local answers = at_once(server, "/call?dict=1", 16)
    local all = {}
    for i = 1, 16 do all[i] = "200" end
    assert.are.same(all, answers)
    -- 16 calls at 10 per second
    assert.is_true(socket.gettime() - t0 > 0.9)
    assert.are.equal(1, e:concurrency().max_in_flight_per_key.kontent[e.seed.kontent.environment_id])
    assert.are.equal(0, count(server:log(), WARNING))
  end)

  it("without it, a limited client logs a warning once per worker", function()
    for _ = 1, 3 do assert.are.same({ "200" }, at_once(server, "/call", 1)) end
    assert.are.equal(1, count(server:log(), WARNING), server:log())
  end)
end)

describe("lua_code_cache on", function()
  it("one VM per worker: no warning", function()
    local server = start("on")
    finally(function() server:cleanup() end)
    for _ = 1, 3 do assert.are.same({ "200" }, at_once(server, "/call", 1)) end
    assert.are.equal(0, count(server:log(), WARNING), server:log())
    server:assert_no_lua_errors()
  end)
end)
