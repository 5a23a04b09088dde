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

local NGINX = os.getenv("ENVCLONE_NGINX") or "/usr/sbin/nginx"
local MODULES = os.getenv("ENVCLONE_NGINX_MODULES") or "/usr/lib/nginx/modules"
local JIT_BUILD = os.getenv("ENVCLONE_JIT_BUILD") or "build-jit"
local TOKEN = "admin-token-for-the-example-test"

local e, tmp, port, nginx_pid

local function sh(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  return out
end

local function read(path)
  local f = io.open(path, "r")
  if not f then return "" end
  local text = f:read("*a")
  f:close()
  return text
end

local function abspath(p)
  if p:sub(1, 1) == "/" then return p end
  return (sh("pwd"):gsub("%s+$", "")) .. "/" .. p
end

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
  local ok, status = http.request{ url = "http://127.0.0.1:" .. port .. path, method = method, headers = headers,
    source = body and ltn12.source.string(body) or nil, sink = ltn12.sink.table(chunks) }
  assert(ok, tostring(status))
  local text = table.concat(chunks)
  return status, cjson.decode(text) or text
end

setup(function()
  e = emu.start{ kontent_clone_seconds = 0.5 }
  tmp = sh("mktemp -d"):gsub("%s+$", "")
  os.execute("chmod 755 " .. emu.quote(tmp))
  local s = assert(socket.bind("127.0.0.1", 0))
  port = select(2, s:getsockname())
  s:close()
  local conf = read("examples/openresty/nginx.conf")
  conf = swap(conf, "worker_processes auto;", "worker_processes 1;")
  conf = swap(conf, "pid /tmp/envclone-example-nginx.pid;", "pid " .. tmp .. "/nginx.pid;")
  conf = swap(conf, "error_log stderr notice;", "error_log " .. tmp .. "/error.log notice;")
  conf = swap(conf, "client_body_temp_path /tmp/envclone-example-nginx-body;",
    "client_body_temp_path " .. tmp .. "/body;")
  conf = swap(conf, "$prefix/build-jit/?.so", abspath(JIT_BUILD) .. "/?.so")
  conf = swap(conf, "listen 127.0.0.1:8080;", "listen 127.0.0.1:" .. port .. ";")
  conf = swap(conf, "load_module /usr/lib/nginx/modules/ndk_http_module.so;", "load_module " .. MODULES
    .. "/ndk_http_module.so;")
  conf = swap(conf, "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;", "load_module " .. MODULES
    .. "/ngx_http_lua_module.so;")
  if sh("id -u"):match("^0%s*$") then
    conf = "user root root; # the repository may be readable by root only\n" .. conf
  end
  local f = assert(io.open(tmp .. "/nginx.conf", "w"))
  f:write(conf)
  f:close()
  local env = "env KONTENT_API_KEY=" .. emu.quote(e.credentials.kontent.api_key)
    .. " ENVCLONE_KONTENT_URL=" .. emu.quote(e.base_urls.kontent) .. " ENVCLONE_ADMIN_TOKEN=" .. TOKEN
  local prefix = emu.quote(abspath("."))
  local check = sh(env .. " " .. NGINX .. " -t -p " .. prefix .. " -c " .. emu.quote(tmp .. "/nginx.conf") .. " 2>&1")
  assert(check:find("test is successful", 1, true), "nginx -t failed:\n" .. check)
  nginx_pid = tonumber(sh(env .. " timeout -k 5 300 " .. NGINX .. " -p " .. prefix .. " -c "
    .. emu.quote(tmp .. "/nginx.conf") .. " >" .. emu.quote(tmp .. "/stdout") .. " 2>&1 </dev/null & echo $!"))
  for _ = 1, 200 do -- 10 s at most
    local c = socket.tcp()
    c:settimeout(0.2)
    local up = c:connect("127.0.0.1", port)
    c:close()
    if up then return end
    if not emu.alive(nginx_pid) then break end
    socket.sleep(0.05)
  end
  error("nginx did not come up:\n" .. read(tmp .. "/error.log") .. read(tmp .. "/stdout"))
end)

teardown(function()
  local master = tonumber(read(tmp .. "/nginx.pid"):match("%d+"))
  for _, pid in ipairs({ master, nginx_pid }) do
    if emu.alive(pid) then os.execute("kill -TERM " .. pid .. " 2>/dev/null") end
  end
  for _ = 1, 100 do
    if not emu.alive(master) and not emu.alive(nginx_pid) then break end
    socket.sleep(0.05)
  end
  for _, pid in ipairs({ master, nginx_pid }) do
    if emu.alive(pid) then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
  end
  if e then e:stop() end
  if tmp and tmp:match("^/tmp/") then os.execute("rm -rf " .. emu.quote(tmp)) end
end)

before_each(function() e:reset() end)

after_each(function()
  local log = read(tmp .. "/error.log")
  assert.is_nil(log:match("%[error%][^\n]*lua[^\n]*"), log:match("%[error%][^\n]*"))
end)

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
