-- Exactly once inside nginx (issue 19): creates whose answers are lost
-- found by key, a re-run with if_exists = "adopt", and the teardown, all
-- over cosockets in an envclone.batch. Handlers: spec/nginx/exactly_once_app.lua.
--
-- Part of the ctest "nginx" entry (busted --pattern=_test spec/nginx).
local http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson.safe")
local emu = require("spec.support.emu")
local nginx = require("spec.support.nginx")
local creates = require("spec.support.creates")

local e, server

local function get(path)
  local chunks = {}
  http.TIMEOUT = 60
  local ok, status = http.request{ url = "http://127.0.0.1:" .. server.port .. path, sink = ltn12.sink.table(chunks) }
  assert(ok, tostring(status))
  assert.are.equal(200, status, table.concat(chunks))
  return assert(cjson.decode(table.concat(chunks)))
end

-- objects of a run still there: (total, names made more than once)
local function made(tag) return creates.made(e:control("GET", "objects"), e.seed, tag) end

setup(function()
  e = emu.start{}
  server = nginx.new()
  server:write_lua("envclone_exactly_once_conf", { base_urls = e.base_urls, credentials = e.credentials,
    seed = e.seed })
  local app = "require('spec.nginx.exactly_once_app')"
  server:write_conf(server:conf{ workers = 1, http = { "lua_socket_log_errors off;" }, server = {
    "location = /create { content_by_lua_block { " .. app .. ".create() } }",
    "location = /teardown { content_by_lua_block { " .. app .. ".teardown() } }",
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

describe("exactly once inside nginx (cosockets)", function()
  it("lost answers reconciled, adopt re-run sends no create, teardown finishes then reports already_gone",
    function()
      e:reset()
      local rules = {}
      for _, op in ipairs{ "versori.clone_environment", "versori.create_connection_version",
        "qovery.clone_application", "droplit.create_environment" } do
        rules[#rules + 1] = { operation = op, rate = 0.3, kinds = { "close_after", "applied_502" } }
      end
      e:faults{ seed = 7, rules = rules }
      local first = get("/create?n=120&tag=ng")
      assert.are.equal(120, first.ok, cjson.encode(first.errors))
      assert.are.equal(0, first.maybe_applied)
      assert.is_true(first.reconciled > 10, "some answers were lost and found")
      local total, dups = made("ng")
      assert.are.equal(120, total)
      assert.are.same({}, dups)
      e:clear_faults()
      local creates_before = e:stats().applied.creates
      local again = get("/create?n=120&tag=ng&adopt=1")
      assert.are.equal(120, again.adopted, cjson.encode(again.errors))
      assert.are.equal(creates_before, e:stats().applied.creates)
      local gone = get("/teardown?n=120&tag=ng")
      assert.are.equal(120, gone.deleted, cjson.encode(gone.errors))
      assert.are.equal(0, gone.already_gone)
      assert.are.equal(30, gone.deleted_state, "each Qovery deletion waited to DELETED")
      assert.are.equal(0, (made("ng")))
      local twice = get("/teardown?n=120&tag=ng")
      assert.are.equal(120, twice.already_gone, cjson.encode(twice.errors))
    end)
end)
