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

local NGINX = os.getenv("ENVCLONE_NGINX") or "/usr/sbin/nginx"
local MODULES = os.getenv("ENVCLONE_NGINX_MODULES") or "/usr/lib/nginx/modules"
local JIT_BUILD = os.getenv("ENVCLONE_JIT_BUILD") or "build-jit"

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

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function abspath(p)
  if p:sub(1, 1) == "/" then return p end
  return (sh("pwd"):gsub("%s+$", "")) .. "/" .. p
end

local function get(path)
  local chunks = {}
  http.TIMEOUT = 10
  local ok, status = http.request{ url = "http://127.0.0.1:" .. port .. path, sink = ltn12.sink.table(chunks) }
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
  tmp = sh("mktemp -d"):gsub("%s+$", "")
  os.execute("chmod 755 " .. emu.quote(tmp))
  local s = assert(socket.bind("127.0.0.1", 0))
  port = select(2, s:getsockname())
  s:close()
  write(tmp .. "/envclone_limits_conf.lua", "return require('cjson').decode([==[" .. cjson.encode({
    api_key = e.credentials.kontent.api_key, base_url = e.base_urls.kontent,
    environment_id = e.seed.kontent.environment_id }) .. "]==])\n")
  local repo = abspath(".")
  local user = sh("id -u"):match("^0%s*$") and "user root root;\n" or ""
  write(tmp .. "/nginx.conf", table.concat({
    user .. "worker_processes 2;",
    "daemon off;",
    "master_process on;",
    "pid " .. tmp .. "/nginx.pid;",
    "error_log " .. tmp .. "/error.log notice;",
    "load_module " .. MODULES .. "/ndk_http_module.so;",
    "load_module " .. MODULES .. "/ngx_http_lua_module.so;",
    "events { worker_connections 64; }",
    "http {",
    "  access_log off;",
    "  client_body_temp_path " .. tmp .. "/body;",
    "  lua_package_path '" .. repo .. "/lua/?.lua;" .. repo .. "/lua/?/init.lua;" .. repo .. "/?.lua;"
      .. tmp .. "/?.lua;;';",
    "  lua_package_cpath '" .. abspath(JIT_BUILD) .. "/?.so;;';",
    "  lua_shared_dict envclone_limits 1m;",
    "  lua_shared_dict jobs 1m;",
    "  init_worker_by_lua_block { require('spec.nginx.limits_app').init_worker() }",
    "  server {",
    "    listen 127.0.0.1:" .. port .. ";",
    "    location / { content_by_lua_block { require('spec.nginx.limits_app').handle() } }",
    "  }",
    "}",
    "",
  }, "\n"))
  local check = sh(NGINX .. " -t -p " .. emu.quote(tmp) .. " -c " .. emu.quote(tmp .. "/nginx.conf") .. " 2>&1")
  assert(check:find("test is successful", 1, true), "nginx -t failed:\n" .. check)
  nginx_pid = tonumber(sh("timeout -k 5 300 " .. NGINX .. " -p " .. emu.quote(tmp) .. " -c "
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
  local master = tmp and tonumber(read(tmp .. "/nginx.pid"):match("%d+"))
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

before_each(function()
  e:reset()
  e:config{ kontent_rate_limit = true }
end)

after_each(function()
  local log = read(tmp .. "/error.log")
  assert.is_nil(log:match("%[error%][^\n]*lua[^\n]*"), log:match("%[error%][^\n]*"))
end)

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
