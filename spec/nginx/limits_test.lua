-- Kontent's limits shared by all nginx workers through `rate_limit_dict`:
-- nginx with two workers, each running the same job at once from a timer
-- (spec/nginx/limits_app.lua): 15 calls each to one Kontent environment,
-- against the emulator enforcing Kontent's limits. With the lua_shared_dict
-- the two workers together keep 10 requests/s and one at a time (no 429);
-- without it each worker keeps its own limit and together they go over.
--
-- Part of the ctest "nginx" entry (busted --pattern=_test spec/nginx).
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson.safe")
local emu = require("spec.support.emu")
local nginx = require("spec.support.nginx")

local e, server

local function get(path)
  local chunks = {}
  http.TIMEOUT = 10
  local ok, status = http.request{ url = "http://127.0.0.1:" .. server.port .. path, sink = ltn12.sink.table(chunks) }
  assert(ok, tostring(status))
  assert.are.equal(200, status, table.concat(chunks))
  return cjson.decode(table.concat(chunks))
end

-- Posts a job and waits (at most 60 s) until both workers reported.
local function run_job(n, dict)
  local id = string.format("%d", get("/start?n=" .. n .. (dict and "&dict=1" or "")).id)
  local deadline = socket.gettime() + 60
  repeat
    local r = get("/results?id=" .. id)
    if r["0"] and r["1"] then return r["0"], r["1"] end
    socket.sleep(0.1)
  until socket.gettime() > deadline
  error("the two workers did not both finish job " .. id)
end

setup(function()
  e = emu.start{}
  server = nginx.new()
  server:write_lua("envclone_limits_conf", { api_key = e.credentials.kontent.api_key, base_url = e.base_urls.kontent,
    environment_id = e.seed.kontent.environment_id })
  server:write_conf(server:conf{ workers = 2, http = {
    "lua_shared_dict jobs 1m;",
    "init_worker_by_lua_block { require('spec.nginx.limits_app').init_worker() }",
  }, server = {
    "location / { content_by_lua_block { require('spec.nginx.limits_app').handle() } }",
  } })
  server:start()
end)

teardown(function()
  if server then server:cleanup() end
  if e then e:stop() end
end)

before_each(function()
  e:reset()
  e:config{ kontent_rate_limit = true }
end)

after_each(function() server:assert_no_lua_errors() end)

local function count(list, status)
  local n = 0
  for _, s in ipairs(list) do if s == status then n = n + 1 end end
  return n
end

describe("rate_limit_dict: Kontent's limits shared by two nginx workers", function()
  it("with the shared dict, 2 x 15 calls at once to one environment: no 429, never two at once", function()
    local t0 = socket.gettime()
    local w0, w1 = run_job(15, true)
    assert.are.equal(15, count(w0, 200), cjson.encode(w0))
    assert.are.equal(15, count(w1, 200), cjson.encode(w1))
    -- 30 calls at 10 per second: at least two seconds between the first and the last
    assert.is_true(socket.gettime() - t0 > 1.9)
    assert.are.equal(1, e:concurrency().max_in_flight_per_key.kontent[e.seed.kontent.environment_id])
  end)

  it("without it, each worker keeps its own limit and together they are throttled (the control)", function()
    local w0, w1 = run_job(15, false)
    assert.is_true(count(w0, 429) + count(w1, 429) > 0, cjson.encode({ w0, w1 }))
  end)
end)
