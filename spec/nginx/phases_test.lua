-- envclone called from the nginx phases where cosockets are disabled
-- (issue 23, item 11): balancer_by_lua, set_by_lua, header_filter_by_lua,
-- body_filter_by_lua and log_by_lua. A call there cannot send without
-- blocking the worker, so it returns nil, err with code "unavailable" and
-- sends nothing, as in init_worker_by_lua; it never raises nginx's "API
-- disabled in the context of ...". From a timer, where cosockets work, the
-- same calls go out. Handlers: spec/nginx/phases_app.lua.
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
  return status, table.concat(chunks)
end

-- The recorded outcomes, once every key of `keys` is there (5 s at most).
local function results(keys)
  local deadline = socket.gettime() + 5
  while true do
    local _, body = get("/results")
    local r = assert(cjson.decode(body))
    local missing
    for _, k in ipairs(keys) do
      if not r[k] then missing = k end
    end
    if not missing then return r end
    if socket.gettime() > deadline then error("no outcome recorded for " .. missing .. ": " .. body) end
    socket.sleep(0.05)
  end
end

setup(function()
  e = emu.start{}
  server = nginx.new()
  server:write_lua("envclone_phases_conf", { base_urls = e.base_urls, credentials = e.credentials, seed = e.seed,
    port = server.port })
  local app = "require('spec.nginx.phases_app')"
  server:write_conf(server:conf{ http = {
    "lua_shared_dict phases 1m;",
    "upstream envclone_phases { server 127.0.0.1:" .. server.port .. "; balancer_by_lua_block { " .. app
      .. ".balancer() } }",
  }, server = {
    "location = /ok { return 200 'ok\\n'; }",
    "location = /balanced { proxy_pass http://envclone_phases/ok; }",
    "location = /set { set_by_lua_block $phase_result { return " .. app .. ".set() } return 200 $phase_result; }",
    "location = /filters { content_by_lua_block { ngx.say('filtered') }"
      .. " header_filter_by_lua_block { " .. app .. ".header_filter() }"
      .. " body_filter_by_lua_block { " .. app .. ".body_filter() }"
      .. " log_by_lua_block { " .. app .. ".log() } }",
    "location = /timer { content_by_lua_block { " .. app .. ".timer() } }",
    "location = /results { content_by_lua_block { " .. app .. ".results() } }",
  } })
  server:start()
end)

teardown(function()
  if server then server:cleanup() end
  if e then e:stop() end
end)

after_each(function()
  server:assert_no_lua_errors()
end)

describe("envclone where nginx disables cosockets", function()
  it("balancer, set, header_filter, body_filter and log: nil, err with code 'unavailable', nothing sent",
    function()
      e:reset()
      local status, body = get("/balanced")
      assert.are.equal(200, status, body)
      assert.are.equal("ok\n", body)
      status, body = get("/set")
      assert.are.equal(200, status, body)
      assert.are.equal("set ran", body)
      status, body = get("/filters")
      assert.are.equal(200, status, body)
      local phases = { "balancer", "set", "header_filter", "body_filter", "log" }
      local keys = {}
      for _, p in ipairs(phases) do
        keys[#keys + 1] = p .. ":droplit"
        keys[#keys + 1] = p .. ":kontent"
      end
      local r = results(keys)
      for _, k in ipairs(keys) do
        local rec = r[k]
        assert.is_false(rec.raised, k .. " raised: " .. tostring(rec.message))
        assert.is_false(rec.ok, k)
        assert.are.equal("transport", rec.kind, k)
        assert.are.equal("unavailable", rec.code, k)
        assert.is_false(rec.sent, k)
        assert.is_nil(rec.text:find("emu-", 1, true), "no credential in the message")
      end
      assert.are.equal(0, #e:requests(), "nothing reached the emulator")
    end)

  it("a timer, where cosockets work, sends the same calls", function()
    e:reset()
    local status, body = get("/timer")
    assert.are.equal(200, status, body)
    local r = results{ "timer:droplit", "timer:kontent" }
    for _, k in ipairs{ "timer:droplit", "timer:kontent" } do
      assert.is_false(r[k].raised, k .. " raised: " .. tostring(r[k].message))
      assert.is_true(r[k].ok, k .. ": " .. tostring(r[k].text))
    end
    -- the Droplit create's lookup by alias, the create, the Kontent GET
    assert.are.equal(3, #e:requests())
    assert.are.equal(1, e:stats().by_operation["droplit.create_environment"])
  end)
end)
