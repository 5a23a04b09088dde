-- examples/openresty/nginx.conf as shipped, run by nginx against the
-- emulator: only its port, pid, log and temp paths, the module directory and
-- the LuaJIT build directory are swapped for the test's (each swap must
-- match exactly once, so the example cannot drift from this test). The admin
-- endpoint refuses calls without the token, clones on request, reports the
-- cloning state, deletes, and turns a validation error into a 400 with
-- nothing sent.
--
-- Part of the ctest "nginx" entry (busted --pattern=_test spec/nginx).
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson.safe")
local emu = require("spec.support.emu")
local nginx = require("spec.support.nginx")

local TOKEN = "admin-token-for-the-example-test"

local e, server

-- Replaces `from` (plain text) by `to`; it must occur exactly once.
local function swap(text, from, to)
  local at = text:find(from, 1, true)
  assert(at and not text:find(from, at + 1, true), "examples/openresty/nginx.conf: expected '" .. from .. "' once")
  return text:sub(1, at - 1) .. to .. text:sub(at + #from)
end

local function call(method, path, body, token)
  local chunks = {}
  local headers = { authorization = token ~= false and ("Bearer " .. (token or TOKEN)) or nil }
  if body then
    body = cjson.encode(body)
    headers["content-type"], headers["content-length"] = "application/json", tostring(#body)
  end
  http.TIMEOUT = 15
  local ok, status = http.request{ url = "http://127.0.0.1:" .. server.port .. path, method = method, headers = headers,
    source = body and ltn12.source.string(body) or nil, sink = ltn12.sink.table(chunks) }
  assert(ok, tostring(status))
  local text = table.concat(chunks)
  return status, cjson.decode(text) or text
end

setup(function()
  e = emu.start{ kontent_clone_seconds = 0.5 }
  server = nginx.new()
  local tmp = server.tmp
  local conf = nginx.read("examples/openresty/nginx.conf")
  conf = swap(conf, "worker_processes auto;", "worker_processes 1;")
  conf = swap(conf, "pid /tmp/envclone-example-nginx.pid;", "pid " .. tmp .. "/nginx.pid;")
  conf = swap(conf, "error_log stderr notice;", "error_log " .. tmp .. "/error.log notice;")
  conf = swap(conf, "client_body_temp_path /tmp/envclone-example-nginx-body;",
    "client_body_temp_path " .. tmp .. "/body;")
  conf = swap(conf, "$prefix/build-jit/?.so", nginx.abspath(nginx.JIT_BUILD) .. "/?.so")
  conf = swap(conf, "listen 127.0.0.1:8080;", "listen 127.0.0.1:" .. server.port .. ";")
  conf = swap(conf, "load_module /usr/lib/nginx/modules/ndk_http_module.so;", "load_module " .. nginx.MODULES
    .. "/ndk_http_module.so;")
  conf = swap(conf, "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;", "load_module " .. nginx.MODULES
    .. "/ngx_http_lua_module.so;")
  server:write_conf(conf)
  server:start{ prefix = nginx.abspath("."), env = "env KONTENT_API_KEY=" .. emu.quote(e.credentials.kontent.api_key)
    .. " ENVCLONE_KONTENT_URL=" .. emu.quote(e.base_urls.kontent) .. " ENVCLONE_ADMIN_TOKEN=" .. TOKEN }
end)

teardown(function()
  if server then server:cleanup() end
  if e then e:stop() end
end)

before_each(function() e:reset() end)

after_each(function() server:assert_no_lua_errors() end)

describe("examples/openresty: the admin endpoint", function()
  it("refuses calls without the admin token, and sends nothing", function()
    assert.are.equal(401, (call("POST", "/admin/environments", { name = "x" }, false)))
    assert.are.equal(401, (call("GET", "/admin/environments/x", nil, "wrong-token-of-the-same-size-000")))
    assert.are.equal(0, e:stats().requests)
  end)

  it("clones on request, reports the cloning state, and deletes", function()
    local status, doc = call("POST", "/admin/environments", { environment_id = e.seed.kontent.environment_id,
      name = "Preview from nginx" })
    assert.are.equal(201, status, cjson.encode(doc))
    assert.is_string(doc.id)
    assert.are.equal("in_progress", doc.cloning_state)
    assert.is_nil(doc.management_api_key) -- the new environment's keys stay out of the answer
    local state
    for _ = 1, 50 do
      local st, d = call("GET", "/admin/environments/" .. doc.id)
      assert.are.equal(200, st)
      state = d.cloning_state
      if state == "done" then break end
      socket.sleep(0.1)
    end
    assert.are.equal("done", state)
    assert.are.equal(204, (call("DELETE", "/admin/environments/" .. doc.id)))
    assert.are.equal(1, e:stats().applied.creates)
  end)

  it("waits with wait = true (ngx.sleep) and answers the final state", function()
    local status, doc = call("POST", "/admin/environments", { environment_id = e.seed.kontent.environment_id,
      name = "Waited", wait = true })
    assert.are.equal(201, status, cjson.encode(doc))
    assert.are.equal("done", doc.cloning_state)
  end)

  it("answers a validation error with 400 and the field, and sends nothing", function()
    local status, doc = call("POST", "/admin/environments", { environment_id = e.seed.kontent.environment_id,
      name = ("x"):rep(201) })
    assert.are.equal(400, status)
    assert.are.equal("validation", doc.kind)
    assert.are.equal("name", doc.field)
    local st2, doc2 = call("POST", "/admin/environments", { environment_id = "not-a-uuid", name = "x" })
    assert.are.equal(400, st2)
    assert.are.equal("environment_id", doc2.field)
    assert.are.equal(0, e:stats().requests)
  end)

  it("passes the vendor's refusal on: the production environment cannot be deleted", function()
    local status, doc = call("DELETE", "/admin/environments/" .. e.seed.kontent.environment_id)
    assert.are.equal(400, status)
    assert.are.equal(233, doc.code)
  end)
end)
